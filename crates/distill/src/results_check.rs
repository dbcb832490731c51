//! Plausibility checks of a `results.json` before a report is drawn from it
//! (`--report-from`): a file edited by hand, or damaged, may hold sizes that overflow or
//! numbers that no axis can show. Every value the report multiplies or puts on a
//! logarithmic axis is checked; the first bad one is named with its place in the file.

use crate::results::Results;

/// The largest image side a report draws (pixels).
pub const MAX_IMAGE_SIDE: usize = 4_096;
/// Bounds of the serving-cost numbers: a latency in ms and a throughput in examples per
/// second outside these are not measurements.
const TIME_RANGE_MS: (f64, f64) = (1e-9, 1e9);
const THROUGHPUT_RANGE: (f64, f64) = (1e-9, 1e15);
/// The largest magnitude of a value on an experiment chart.
const MAX_CHART_VALUE: f64 = 1e15;

fn in_range(value: f64, (lo, hi): (f64, f64)) -> bool {
    value.is_finite() && value >= lo && value <= hi
}

/// `Ok` when the report can be drawn from `results`; else one line naming the field.
pub fn check_for_report(results: &Results) -> Result<(), String> {
    let version = results.schema_version;
    if version != crate::results::SCHEMA_VERSION {
        return Err(format!(
            "schema_version = {version}: this dk-distill reads version {} (SCHEMA.md)",
            crate::results::SCHEMA_VERSION
        ));
    }
    for (i, model) in results.models.iter().enumerate() {
        let accuracy = model.test.accuracy;
        if !(0.0..=1.0).contains(&accuracy) {
            return Err(format!(
                "models[{i}].test.accuracy = {accuracy}: expected a share in [0, 1]"
            ));
        }
        if let Some(serving) = &model.serving {
            let latency = serving.latency_batch1_ms;
            if !in_range(latency, TIME_RANGE_MS) {
                return Err(format!(
                    "models[{i}].serving.latency_batch1_ms = {latency:e}: expected a time between {:e} and {:e} ms",
                    TIME_RANGE_MS.0, TIME_RANGE_MS.1
                ));
            }
            let throughput = serving.throughput_per_s;
            if !in_range(throughput, THROUGHPUT_RANGE) {
                return Err(format!(
                    "models[{i}].serving.throughput_per_s = {throughput:e}: expected between {:e} and {:e} examples per second",
                    THROUGHPUT_RANGE.0, THROUGHPUT_RANGE.1
                ));
            }
        }
    }
    if let Some(dark) = &results.dark_knowledge {
        check_picture(dark.height, dark.width, dark.image.len())?;
    }
    if let Some(chart) = results.experiment.as_ref().and_then(|e| e.chart.as_ref()) {
        let values = chart
            .series
            .iter()
            .flat_map(|s| s.points.iter().flatten())
            .chain(chart.references.iter().map(|r| &r.y));
        if let Some(bad) = values.into_iter().find(|v| v.abs() > MAX_CHART_VALUE) {
            return Err(format!(
                "experiment.chart holds {bad:e}: expected values of magnitude at most {MAX_CHART_VALUE:e}"
            ));
        }
    }
    Ok(())
}

/// The example picture: sides of at most [`MAX_IMAGE_SIDE`] and 0, 1 or 3 planes of pixels.
fn check_picture(height: usize, width: usize, pixels: usize) -> Result<(), String> {
    for (key, side) in [
        ("dark_knowledge.height", height),
        ("dark_knowledge.width", width),
    ] {
        if side > MAX_IMAGE_SIDE {
            return Err(format!("{key} = {side}: expected at most {MAX_IMAGE_SIDE}"));
        }
    }
    let plane = height * width; // both sides are small now: no overflow
    if pixels != 0 && pixels != plane && pixels != 3 * plane {
        return Err(format!(
            "dark_knowledge.image has {pixels} values: expected 0, {plane} or {} for {height}x{width}",
            3 * plane
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::sample_results;

    #[test]
    fn sample_results_pass() {
        assert_eq!(check_for_report(&sample_results()), Ok(()));
    }

    #[test]
    fn absurd_sizes_and_times_are_named() {
        let mut results = sample_results();
        results.schema_version = 99;
        assert_eq!(
            check_for_report(&results).unwrap_err(),
            "schema_version = 99: this dk-distill reads version 1 (SCHEMA.md)"
        );
        let mut results = sample_results();
        let dark = results.dark_knowledge.as_mut().unwrap();
        dark.height = 1 << 32;
        dark.width = 1 << 32;
        assert_eq!(
            check_for_report(&results).unwrap_err(),
            "dark_knowledge.height = 4294967296: expected at most 4096"
        );
        let mut results = sample_results();
        results.dark_knowledge.as_mut().unwrap().image.push(0);
        assert!(
            check_for_report(&results)
                .unwrap_err()
                .starts_with("dark_knowledge.image has")
        );
        for (latency, shown) in [(1.7e308, "1.7e308"), (5e-324, "5e-324"), (0.0, "0e0")] {
            let mut results = sample_results();
            results.models[1]
                .serving
                .as_mut()
                .unwrap()
                .latency_batch1_ms = latency;
            assert_eq!(
                check_for_report(&results).unwrap_err(),
                format!(
                    "models[1].serving.latency_batch1_ms = {shown}: expected a time between 1e-9 and 1e9 ms"
                )
            );
        }
    }
}
