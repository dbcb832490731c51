//! `report.html`: one self-contained page (inline CSS and SVG, no scripts, no external
//! resources) rendered from [`Results`]: the experiment's table and chart (when the run
//! made one), the summary table, learning curves, accuracy against serving cost, the
//! (T, alpha) search, and the dark knowledge itself.
//!
//! Every piece of text from the results is HTML-escaped.

mod experiment;
mod terminal;

pub use experiment::{format_cell, row_texts, text_table};
pub use terminal::summary_table;

use std::fmt::Write as _;
use std::path::Path;

use crate::results::{DarkKnowledge, EpochStats, ModelResult, Results, format_p};
use crate::run_dir::write_atomic;

/// Line and point colours, one per model (cycled).
const PALETTE: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em;overflow-wrap:break-word}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}.scroll{overflow-x:auto;max-width:100%}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3;vertical-align:bottom}td.l,th.l{text-align:left}td.l{white-space:nowrap}td.wrap{white-space:normal}tr.best td{font-weight:bold}
details{margin:.5em 0}summary{cursor:pointer;font-size:.9em}
.warn{background:#fff4e5;border-left:4px solid #ff9800;padding:.5em 1em;margin:.3em 0}
.meta{color:#555;font-size:.9em}.row{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start}
figure{margin:0;max-width:100%}figcaption{font-size:.85em;color:#444;text-align:center}
svg{max-width:100%;height:auto}.wide svg{max-width:none}
svg text{font-family:system-ui,sans-serif}
@media (max-width:600px){body{margin:1em auto;padding:0 .6em}h1{font-size:1.3em}}";

/// HTML-escapes text for element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

fn percent(fraction: f64) -> String {
    format!("{:.2}%", 100.0 * fraction)
}

fn optional(value: Option<f64>, show: impl Fn(f64) -> String) -> String {
    value.map_or_else(|| "–".to_string(), show)
}

/// Thousands, millions: 269322 -> "269k", 10000000 -> "10.0M".
fn compact(count: u64) -> String {
    match count {
        0..=9_999 => count.to_string(),
        10_000..=999_999 => format!("{}k", (count as f64 / 1e3).round()),
        _ => format!("{:.1}M", count as f64 / 1e6),
    }
}

/// Writes the report atomically.
pub fn write_report(path: &Path, results: &Results) -> std::io::Result<()> {
    write_atomic(path, render_report(results).as_bytes())
}

/// The whole page.
pub fn render_report(results: &Results) -> String {
    let run = &results.run;
    let mut page = String::new();
    let title = format!("darkknowledge: {} distillation report", run.dataset.name);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>\n{STYLE}\n</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        escape(&title),
        escape(&title)
    );
    let _ = writeln!(
        page,
        "<p class=\"meta\">{} &middot; adapter {} ({}{}) &middot; preset {} &middot; seed {} &middot; train {}{} / validation {} / test {} &middot; data from {} &middot; version {}</p>",
        escape(&run.started_utc),
        escape(&run.adapter.name),
        escape(&run.adapter.backend),
        if run.adapter.is_cpu {
            ", software: timings are CPU timings"
        } else {
            ""
        },
        escape(run.config.preset.name()),
        run.seed,
        run.dataset.train,
        match run.dataset.unlabeled {
            0 => String::new(),
            n => format!(" (+ {n} unlabeled for the distilled students)"),
        },
        run.dataset.validation,
        run.dataset.test,
        escape(&run.dataset.source_dir),
        escape(&run.tool_version),
    );
    if !results.warnings.is_empty() {
        page.push_str("<section id=\"warnings\">\n<h2>Warnings</h2>\n");
        for warning in &results.warnings {
            let _ = writeln!(page, "<p class=\"warn\">{}</p>", escape(warning));
        }
        page.push_str("</section>\n");
    }
    if let Some(table) = &results.experiment {
        experiment::experiment_section(&mut page, table);
    }
    summary_section(&mut page, results);
    curves_section(&mut page, results);
    cost_section(&mut page, results);
    grid_section(&mut page, results);
    per_class_section(&mut page, results);
    if let Some(dark) = &results.dark_knowledge {
        dark_knowledge_section(&mut page, dark, &run.dataset.class_names);
    }
    page.push_str("</body>\n</html>\n");
    page
}

fn summary_section(page: &mut String, results: &Results) {
    let repeats = results.repeat_count();
    page.push_str("<section id=\"summary\">\n<h2>Summary</h2>\n<div class=\"scroll\">\n<table>\n<tr><th class=\"l\">model</th><th class=\"l\">role</th><th class=\"l\">spec</th><th>params</th><th>FLOPs/ example</th><th>test accuracy</th>");
    if let Some(n) = repeats {
        let _ = write!(page, "<th>mean &plusmn; sd, {n} repeats (%)</th>");
    }
    page.push_str("<th>vs student-hard, points (95% CI)</th><th>McNemar p</th><th>gap recovered</th><th>T</th><th>alpha</th></tr>\n");
    let best_student = results
        .models
        .iter()
        .filter(|m| m.role.is_student())
        .max_by(|a, b| a.test.accuracy.total_cmp(&b.test.accuracy))
        .map(|m| m.name.as_str());
    for model in &results.models {
        let best = Some(model.name.as_str()) == best_student;
        summary_row(page, model, best, repeats.is_some());
    }
    page.push_str("</table>\n</div>\n");
    more_measures(page, results);
    page.push_str("<p class=\"meta\">Gap recovered: (student - hard-label student) / (ensemble - hard-label student), test accuracy. ECE: 15 equal-width confidence bins. Bold: the best student. vs student-hard: test accuracy minus the hard-label student's, in points, with the 95% paired bootstrap interval (test examples resampled with replacement, the same draws for both models); McNemar p: exact two-sided test on the examples exactly one of the two gets right.");
    if repeats.is_some() {
        page.push_str(" With repeats, the comparisons use the first repeat of each student; mean &plusmn; sd is over all repeats, each with its own seeds.");
    }
    page.push_str("</p>\n");
    seed_comparisons(page, results);
    page.push_str("</section>\n");
}

/// One model's row of the summary table (`best`: the best student, shown in bold).
fn summary_row(page: &mut String, model: &ModelResult, best: bool, with_repeats: bool) {
    let class = if best { " class=\"best\"" } else { "" };
    let _ = write!(
        page,
        "<tr{class}><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l wrap\">{}</td><td>{}</td><td>{}</td><td>{}</td>",
        escape(&model.name),
        model.role.label(),
        escape(&model.spec),
        compact(model.params),
        compact(model.flops_per_example),
        percent(model.test.accuracy),
    );
    if with_repeats {
        let spread = model.repeats.as_ref().map(|r| r.mean_pm_sd());
        let _ = write!(
            page,
            "<td>{}</td>",
            escape(spread.as_deref().unwrap_or("–"))
        );
    }
    let versus = model.versus_hard.as_ref();
    let _ = writeln!(
        page,
        "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        versus.map_or_else(|| "–".into(), |v| escape(&v.points_with_interval())),
        versus.map_or_else(|| "–".into(), |v| format_p(v.p_value)),
        optional(model.gap_recovered, percent),
        optional(model.temperature.map(f64::from), |t| format!("{t}")),
        optional(model.alpha.map(f64::from), |a| format!("{a}")),
    );
}

/// With repeats: each student against student-hard over them, as a list.
fn seed_comparisons(page: &mut String, results: &Results) {
    let lines: Vec<String> = results
        .models
        .iter()
        .filter_map(|m| {
            let v = m.repeats.as_ref()?.versus_hard.as_ref()?;
            Some(format!(
                "<li>{}: {}</li>",
                escape(&m.name),
                escape(&v.summary())
            ))
        })
        .collect();
    if !lines.is_empty() {
        let _ = writeln!(
            page,
            "<p>Against student-hard over the repeats (paired t-test on the per-repeat differences in test accuracy; the students of one repeat share initial weights and batch order):</p>\n<ul>\n{}\n</ul>",
            lines.join("\n")
        );
    }
}

/// The summary's secondary measures (errors, calibration, agreement, serving), folded away.
fn more_measures(page: &mut String, results: &Results) {
    page.push_str("<details>\n<summary>Errors, calibration and serving</summary>\n<div class=\"scroll\">\n<table>\n<tr><th class=\"l\">model</th><th>errors</th><th>NLL</th><th>ECE</th><th>agreement with ensemble</th><th>latency b=1 (ms)</th><th>throughput (ex/s)</th></tr>\n");
    for model in &results.models {
        let _ = writeln!(
            page,
            "<tr><td class=\"l\">{}</td><td>{} / {}</td><td>{:.4}</td><td>{:.4}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&model.name),
            model.test.errors,
            model.test.examples,
            model.test.nll,
            model.test.ece,
            optional(model.test.agreement_with_ensemble, percent),
            optional(
                model.serving.as_ref().map(|s| s.latency_batch1_ms),
                |v| format!("{v:.3}")
            ),
            optional(
                model.serving.as_ref().map(|s| s.throughput_per_s),
                |v| format!("{v:.0}")
            ),
        );
    }
    page.push_str("</table>\n</div>\n</details>\n");
}

/// A plot area with margins and linear or log10 axes.
struct Plot {
    width: f64,
    height: f64,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    x_range: (f64, f64),
    y_range: (f64, f64),
    x_log: bool,
}

impl Plot {
    /// A plot whose axes cover `x_range` and `y_range` (the data's extremes) with room to
    /// spare: see [`padded_range`].
    fn new(width: f64, height: f64, x_range: (f64, f64), y_range: (f64, f64), x_log: bool) -> Plot {
        Plot {
            width,
            height,
            left: 62.0,
            right: 16.0,
            top: 14.0,
            bottom: 44.0,
            x_range: padded_range(x_range, x_log),
            y_range: padded_range(y_range, false),
            x_log,
        }
    }

    fn x(&self, value: f64) -> f64 {
        let (lo, hi, v) = if self.x_log {
            (
                self.x_range.0.log10(),
                self.x_range.1.log10(),
                value.log10(),
            )
        } else {
            (self.x_range.0, self.x_range.1, value)
        };
        self.left + (v - lo) / (hi - lo) * (self.width - self.left - self.right)
    }

    fn y(&self, value: f64) -> f64 {
        let (lo, hi) = self.y_range;
        self.height
            - self.bottom
            - (value - lo) / (hi - lo) * (self.height - self.top - self.bottom)
    }

    /// Opens the `<svg>`, draws the frame, ticks and axis labels.
    fn begin(
        &self,
        svg: &mut String,
        x_label: &str,
        y_label: &str,
        y_format: impl Fn(f64) -> String,
    ) {
        self.open_frame(svg, x_label, y_label);
        self.draw_y_ticks(svg, y_format);
        self.draw_x_ticks(svg);
        self.draw_axis_labels(svg, x_label, y_label);
    }

    /// The `<svg>` element and the plot area's rectangle.
    fn open_frame(&self, svg: &mut String, x_label: &str, y_label: &str) {
        let _ = writeln!(
            svg,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{} against {}\">",
            escape(y_label),
            escape(x_label),
            w = self.width,
            h = self.height
        );
        let (x0, x1) = (self.left, self.width - self.right);
        let (y0, y1) = (self.height - self.bottom, self.top);
        let _ = writeln!(
            svg,
            "<rect class=\"plot-area\" x=\"{x0}\" y=\"{y1}\" width=\"{}\" height=\"{}\" fill=\"#fafafa\" stroke=\"#999\"/>",
            x1 - x0,
            y0 - y1
        );
    }

    /// Horizontal grid lines across the plot area, labelled on the left.
    fn draw_y_ticks(&self, svg: &mut String, y_format: impl Fn(f64) -> String) {
        let (x0, x1) = (self.left, self.width - self.right);
        for value in self.y_ticks() {
            let y = self.y(value);
            let _ = writeln!(
                svg,
                "<line x1=\"{x0}\" y1=\"{y:.1}\" x2=\"{x1}\" y2=\"{y:.1}\" stroke=\"#e4e4e4\"/>"
            );
            let _ = writeln!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
                x0 - 4.0,
                y + 4.0,
                escape(&y_format(value))
            );
        }
    }

    /// Tick marks below the plot area, labelled underneath.
    fn draw_x_ticks(&self, svg: &mut String) {
        let y0 = self.height - self.bottom;
        for value in self.x_ticks() {
            let x = self.x(value);
            let _ = writeln!(
                svg,
                "<line x1=\"{x:.1}\" y1=\"{y0}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#999\"/>",
                y0 + 4.0
            );
            let _ = writeln!(
                svg,
                "<text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{}</text>",
                y0 + 16.0,
                escape(&self.x_tick_label(value))
            );
        }
    }

    /// An x tick's text: large values on a log axis in thousands and millions.
    fn x_tick_label(&self, value: f64) -> String {
        if self.x_log && value >= 1.0 {
            compact(value.round() as u64)
        } else if self.x_log {
            // Shortest form of a power of ten times 1, 2 or 5, without f64 noise.
            format!("{}", value as f32)
        } else {
            format!("{value}")
        }
    }

    /// The axis titles: the x title under the ticks, the y title turned along the left edge.
    fn draw_axis_labels(&self, svg: &mut String, x_label: &str, y_label: &str) {
        let (x0, x1) = (self.left, self.width - self.right);
        let (y0, y1) = (self.height - self.bottom, self.top);
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"middle\">{}</text>",
            (x0 + x1) / 2.0,
            self.height - 6.0,
            escape(x_label)
        );
        let _ = writeln!(
            svg,
            "<text x=\"12\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 12 {:.1})\">{}</text>",
            (y0 + y1) / 2.0,
            (y0 + y1) / 2.0,
            escape(y_label)
        );
    }

    /// Multiples of one round step (1, 2 or 5 times a power of ten) inside the y range, at
    /// most seven; the range's two ends when it has no usable span.
    fn y_ticks(&self) -> Vec<f64> {
        let (lo, hi) = self.y_range;
        let span = hi - lo;
        if !(span.is_finite() && span > 0.0) {
            return [lo, hi].into_iter().filter(|v| v.is_finite()).collect();
        }
        let power = 10f64.powf((span / 10.0).log10().floor());
        // The smallest round step that leaves at most seven ticks.
        let ends = |step: f64| ((lo / step).ceil(), (hi / step).floor());
        let Some((step, (first, last))) = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0]
            .iter()
            .map(|m| m * power)
            .map(|step| (step, ends(step)))
            .find(|(_, (first, last))| last - first < 7.0)
        else {
            return vec![lo, hi];
        };
        if !(first.is_finite() && last.is_finite() && first <= last) {
            return vec![lo, hi];
        }
        (0..=(last - first) as usize)
            .map(|i| (first + i as f64) * step)
            .collect()
    }

    fn x_ticks(&self) -> Vec<f64> {
        let (lo, hi) = self.x_range;
        // An axis whose ends are not finite (or not positive on a log scale) gets its two
        // ends at most: the loops below would never end.
        let usable = lo.is_finite() && hi.is_finite() && lo <= hi && (!self.x_log || lo > 0.0);
        if !usable {
            return [lo, hi].into_iter().filter(|v| v.is_finite()).collect();
        }
        if self.x_log {
            // Powers of ten; over two decades or less, also their doubles and fives
            // (1, 2, 5, 10, 20 for a temperature axis).
            let in_range = |v: f64| v >= lo * 0.9999 && v <= hi * 1.0001;
            let few_decades = hi / lo <= 100.0;
            let mut ticks = Vec::new();
            let mut power = 10f64.powf(lo.log10().floor());
            // f64 spans about 630 decades: the bound is never reached on a usable axis.
            for _ in 0..MAX_TICK_STEPS {
                if power > hi * 1.0001 {
                    break;
                }
                let steps: &[f64] = if few_decades {
                    &[1.0, 2.0, 5.0]
                } else {
                    &[1.0]
                };
                ticks.extend(steps.iter().map(|m| m * power).filter(|&v| in_range(v)));
                power *= 10.0;
            }
            if ticks.len() < 2 {
                ticks = vec![lo, hi];
            }
            ticks
        } else {
            let span = (hi - lo).max(1.0);
            let step = (span / 8.0).ceil().max(1.0);
            let mut ticks = Vec::new();
            let mut value = lo.ceil();
            // Bounded: past 2^53 the step may vanish against the value.
            for _ in 0..MAX_TICK_STEPS {
                if value > hi + 1e-9 {
                    break;
                }
                ticks.push(value);
                value += step;
            }
            ticks
        }
    }
}

/// The share of an axis's span added at each end, so that the extreme points and their
/// markers stay clear of the frame.
const AXIS_PADDING: f64 = 0.06;

/// An axis range that holds `(lo, hi)` with [`AXIS_PADDING`] of the span added at each end (of
/// the span of log10 on a log axis). A zero span becomes a non-zero one around the value:
/// plus and minus 6% of it, or 0.5 around zero (half a decade each way on a log axis).
/// Ends that are not finite (or not positive on a log axis) are left as they are.
fn padded_range((lo, hi): (f64, f64), log: bool) -> (f64, f64) {
    if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
        return (lo, hi);
    }
    if log {
        if lo <= 0.0 {
            return (lo, hi);
        }
        let (low, high) = padded_linear(lo.log10(), hi.log10(), 0.5);
        return (10f64.powf(low), 10f64.powf(high));
    }
    padded_linear(lo, hi, AXIS_PADDING * lo.abs())
}

/// `(lo, hi)` widened by [`AXIS_PADDING`] of the span, or by `half_width` (0.5 when that is
/// zero) around a single value.
fn padded_linear(lo: f64, hi: f64, half_width: f64) -> (f64, f64) {
    let span = hi - lo;
    let pad = if span > 0.0 {
        AXIS_PADDING * span
    } else if half_width > 0.0 {
        half_width
    } else {
        0.5
    };
    let padded = (lo - pad, hi + pad);
    // Next to f64's limits the padding may overflow or vanish against the value.
    if padded.0.is_finite() && padded.1.is_finite() && padded.0 < padded.1 {
        padded
    } else {
        (lo, hi)
    }
}

/// The most tick positions an axis loop visits.
const MAX_TICK_STEPS: usize = 1_000;

fn range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

fn legend(page: &mut String, models: &[(&ModelResult, &str)]) {
    page.push_str("<p class=\"meta\">");
    for (model, colour) in models {
        let _ = write!(
            page,
            "<span style=\"color:{colour}\">&#9632;</span> {} &nbsp; ",
            escape(&model.name)
        );
    }
    page.push_str("</p>\n");
}

/// Caption, y-axis label, the plotted value of an epoch, whether it is a percentage.
type CurveChart = (&'static str, &'static str, fn(&EpochStats) -> f64, bool);

/// Axis label and a model's position on it (None: not measured).
type CostAxis = (&'static str, fn(&ModelResult) -> Option<f64>);

/// A model on a cost chart: its colour, x, and its accuracy interval (see
/// [`accuracy_interval`]).
type CostPoint<'m> = (&'m ModelResult, &'m str, f64, Option<(f64, f64)>);

/// Every model with its colour: by position among all models, so that a model has one
/// colour in every figure.
fn coloured_models(results: &Results) -> Vec<(&ModelResult, &'static str)> {
    results
        .models
        .iter()
        .enumerate()
        .map(|(i, m)| (m, PALETTE[i % PALETTE.len()]))
        .collect()
}

/// The learning-curve charts: validation accuracy, hard-label loss, soft-target loss.
fn curve_charts() -> [CurveChart; 3] {
    [
        (
            "validation accuracy (a circle marks the kept epoch)",
            "validation accuracy (%)",
            |e| e.validation_accuracy,
            true,
        ),
        (
            "training cross-entropy of the true labels",
            "hard-label loss",
            |e| e.train_hard_loss.unwrap_or(e.train_loss),
            false,
        ),
        (
            "training soft term: KL(teacher || student) at T, or the logit MSE",
            "soft-target loss",
            |e| e.train_soft_loss.unwrap_or(f64::NAN),
            false,
        ),
    ]
}

fn curves_section(page: &mut String, results: &Results) {
    let trained: Vec<(&ModelResult, &str)> = coloured_models(results)
        .into_iter()
        .filter(|(m, _)| !m.curve.is_empty())
        .collect();
    page.push_str("<section id=\"curves\">\n<h2>Learning curves</h2>\n");
    if trained.is_empty() {
        page.push_str("<p>No training curves recorded.</p>\n</section>\n");
        return;
    }
    let epochs = trained
        .iter()
        .flat_map(|(m, _)| m.curve.iter().map(|e| e.epoch as f64));
    let x_range = range(epochs).unwrap_or((1.0, 1.0));
    page.push_str("<div class=\"row\">\n");
    for chart in curve_charts() {
        curve_chart(page, &trained, x_range, chart);
    }
    page.push_str("</div>\n");
    legend(page, &trained);
    page.push_str("</section>\n");
}

/// One learning-curve figure of every trained model (none when no model has the measure).
fn curve_chart(
    page: &mut String,
    trained: &[(&ModelResult, &str)],
    x_range: (f64, f64),
    (caption, y_label, value, is_percent): CurveChart,
) {
    let values = trained.iter().flat_map(|(m, _)| m.curve.iter().map(value));
    let Some(y_range) = range(values) else {
        return;
    };
    let plot = Plot::new(500.0, 300.0, x_range, y_range, false);
    page.push_str("<figure>\n");
    plot.begin(page, "epoch", y_label, |v| {
        if is_percent {
            format!("{:.1}", 100.0 * v)
        } else {
            format!("{v:.3}")
        }
    });
    for (model, colour) in trained {
        curve_line(page, &plot, model, colour, value, is_percent);
    }
    page.push_str("</svg>\n");
    let _ = writeln!(
        page,
        "<figcaption>{caption} per epoch</figcaption>\n</figure>"
    );
}

/// One model's curve, with a circle on the kept epoch on a percentage chart.
fn curve_line(
    page: &mut String,
    plot: &Plot,
    model: &ModelResult,
    colour: &str,
    value: fn(&EpochStats) -> f64,
    is_percent: bool,
) {
    let points: Vec<String> = model
        .curve
        .iter()
        .filter(|e| value(e).is_finite())
        .map(|e| format!("{:.1},{:.1}", plot.x(e.epoch as f64), plot.y(value(e))))
        .collect();
    // A model without this measure (no soft term for a teacher) draws nothing.
    if points.is_empty() {
        return;
    }
    let _ = writeln!(
        page,
        "<polyline class=\"series\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
        points.join(" ")
    );
    let kept = model
        .best_epoch
        .and_then(|b| model.curve.iter().find(|e| e.epoch == b));
    if let Some(e) = kept.filter(|e| is_percent && value(e).is_finite()) {
        let _ = writeln!(
            page,
            "<circle class=\"series\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>",
            plot.x(e.epoch as f64),
            plot.y(value(e))
        );
    }
}

/// The cost axes: FLOPs and measured latency, both on a log scale.
fn cost_axes() -> [CostAxis; 2] {
    [
        ("FLOPs per example (log scale)", |m| {
            Some(m.flops_per_example as f64).filter(|&v| v > 0.0)
        }),
        ("latency at batch 1, ms (log scale)", |m| {
            m.serving
                .as_ref()
                .map(|s| s.latency_batch1_ms)
                .filter(|&v| v > 0.0)
        }),
    ]
}

fn cost_section(page: &mut String, results: &Results) {
    page.push_str(
        "<section id=\"cost\">\n<h2>Accuracy against serving cost</h2>\n<div class=\"row\">\n",
    );
    let coloured = coloured_models(results);
    let bars: Vec<Option<(f64, f64)>> = results
        .models
        .iter()
        .map(|m| accuracy_interval(results, m))
        .collect();
    // One y range for both charts, bars included, so that they compare at a glance.
    let y_values = results
        .models
        .iter()
        .map(|m| m.test.accuracy)
        .chain(bars.iter().flatten().flat_map(|&(low, high)| [low, high]));
    let y_range = range(y_values).unwrap_or((0.0, 1.0));
    for (x_label, x_of) in cost_axes() {
        let points: Vec<CostPoint> = coloured
            .iter()
            .zip(&bars)
            .filter_map(|(&(m, c), &bar)| x_of(m).map(|x| (m, c, x, bar)))
            .collect();
        cost_chart(page, x_label, &points, y_range);
    }
    page.push_str("</div>\n");
    if bars.iter().any(Option::is_some) {
        page.push_str("<p class=\"meta\">Bars: student-hard's test accuracy plus the 95% paired bootstrap interval of each student's difference from it, i.e. where the student's accuracy lies relative to that baseline.</p>\n");
    }
    page.push_str("</section>\n");
}

/// One figure of test accuracy against a cost (none when no model has that cost).
fn cost_chart(page: &mut String, x_label: &str, points: &[CostPoint], y_range: (f64, f64)) {
    let Some((lo, hi)) = range(points.iter().map(|p| p.2)) else {
        return;
    };
    let plot = Plot::new(500.0, 320.0, (lo, hi), y_range, true);
    page.push_str("<figure>\n");
    plot.begin(page, x_label, "test accuracy (%)", |v| {
        format!("{:.1}", 100.0 * v)
    });
    // Students of one spec share an x: their bars are spread sideways to stay apart.
    let mut bar_xs: Vec<f64> = Vec::new();
    for point in points {
        cost_point(page, &plot, point, &mut bar_xs);
    }
    page.push_str("</svg>\n");
    let _ = writeln!(
        page,
        "<figcaption>test accuracy against {}</figcaption>\n</figure>",
        escape(x_label)
    );
}

/// A model's point, its bar (set aside from the bars already at its x, listed in
/// `bar_xs`) and its name.
fn cost_point(page: &mut String, plot: &Plot, point: &CostPoint, bar_xs: &mut Vec<f64>) {
    let (model, colour, x, bar) = point;
    let (px, py) = (plot.x(*x), plot.y(model.test.accuracy));
    if let Some((low, high)) = bar {
        let k = bar_xs.iter().filter(|&&b| (b - px).abs() < 1.0).count();
        bar_xs.push(px);
        let side = if k % 2 == 1 { 1.0 } else { -1.0 };
        let bar_x = px + side * 6.0 * k.div_ceil(2) as f64;
        error_bar(page, bar_x, plot.y(*low), plot.y(*high), colour);
    }
    let _ = writeln!(
        page,
        "<circle class=\"series\" cx=\"{px:.1}\" cy=\"{py:.1}\" r=\"5\" fill=\"{colour}\"><title>{}</title></circle>",
        escape(&model.name)
    );
    // Names in the right half go to the left of their point, to stay on the chart.
    let (label_x, anchor) = if px > plot.width / 2.0 {
        (px - 7.0, "end")
    } else {
        (px + 7.0, "start")
    };
    let _ = writeln!(
        page,
        "<text x=\"{label_x:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"{anchor}\">{}</text>",
        py - 6.0,
        escape(&model.name)
    );
}

/// A model's accuracy interval against the hard-label student: that student's accuracy
/// plus the 95% interval of the difference (`None` without a comparison).
fn accuracy_interval(results: &Results, model: &ModelResult) -> Option<(f64, f64)> {
    let versus = model.versus_hard.as_ref()?;
    let baseline = results.models.iter().find(|m| m.name == versus.baseline)?;
    let base = baseline.test.accuracy;
    Some((base + versus.ci_low, base + versus.ci_high))
}

/// A vertical error bar with short caps at `x`, from `y_low` to `y_high` (SVG coordinates).
fn error_bar(page: &mut String, x: f64, y_low: f64, y_high: f64, colour: &str) {
    let _ = writeln!(
        page,
        "<path d=\"M{x:.1},{y_low:.1}V{y_high:.1}M{:.1},{y_low:.1}H{:.1}M{:.1},{y_high:.1}H{:.1}\" stroke=\"{colour}\" stroke-width=\"1.5\" fill=\"none\" class=\"series ci\"/>",
        x - 2.5,
        x + 2.5,
        x - 2.5,
        x + 2.5
    );
}

fn grid_section(page: &mut String, results: &Results) {
    if results.grid.is_empty() {
        return;
    }
    page.push_str("<section id=\"grid\">\n<h2>Temperature and alpha, chosen on validation</h2>\n<div class=\"scroll\">\n<table>\n<tr><th>T</th><th>alpha</th><th>validation accuracy</th><th>validation NLL</th><th class=\"l\">chosen</th></tr>\n");
    for point in &results.grid {
        let _ = writeln!(
            page,
            "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td></tr>",
            if point.chosen { " class=\"best\"" } else { "" },
            point.temperature,
            point.alpha,
            percent(point.validation_accuracy),
            optional(point.validation_nll, |v| format!("{v:.4}")),
            if point.chosen { "&#10003;" } else { "" },
        );
    }
    page.push_str("</table>\n</div>\n</section>\n");
}

/// One row per class, one column per model: the class count may be large, the models few.
fn per_class_section(page: &mut String, results: &Results) {
    let names = &results.run.dataset.class_names;
    let classes = results
        .models
        .iter()
        .map(|m| m.test.per_class_accuracy.len())
        .max()
        .unwrap_or(0)
        .max(names.len());
    page.push_str("<section id=\"per-class\">\n<h2>Test accuracy per class (%)</h2>\n<div class=\"scroll\">\n<table>\n<tr><th class=\"l\">class</th>");
    for model in &results.models {
        let _ = write!(page, "<th>{}</th>", escape(&model.name));
    }
    page.push_str("</tr>\n");
    for class in 0..classes {
        let _ = write!(
            page,
            "<tr><td class=\"l\">{}</td>",
            escape(&class_name(names, class))
        );
        for model in &results.models {
            let value = model.test.per_class_accuracy.get(class).copied().flatten();
            let _ = write!(
                page,
                "<td>{}</td>",
                optional(value, |v| format!("{:.1}", 100.0 * v))
            );
        }
        page.push_str("</tr>\n");
    }
    page.push_str("</table>\n</div>\n</section>\n");
}

fn class_name(names: &[String], index: usize) -> String {
    names
        .get(index)
        .cloned()
        .unwrap_or_else(|| format!("class {index}"))
}

fn dark_knowledge_section(page: &mut String, dark: &DarkKnowledge, names: &[String]) {
    page.push_str("<section id=\"dark-knowledge\">\n<h2>Dark knowledge</h2>\n");
    let _ = writeln!(
        page,
        "<p>The ensemble's class probabilities for test example {} (true class: {}) at several temperatures. At T = 1 nearly all mass is on one class; raising T reveals which wrong classes the ensemble finds similar: the information a student learns from soft targets.</p>",
        dark.example_index,
        escape(&class_name(names, dark.true_class))
    );
    page.push_str("<div class=\"row\">\n");
    example_picture(page, dark, names);
    for at in &dark.probabilities {
        bar_chart(
            page,
            &at.probabilities,
            names,
            dark.true_class,
            at.temperature,
        );
    }
    page.push_str("</div>\n");
    heatmap(
        page,
        &dark.mean_soft_targets,
        names,
        dark.soft_target_temperature,
    );
    page.push_str("</section>\n");
}

/// The example as an SVG of pixel rects: grey for one channel, colour for three planes
/// (red, green, blue). Tabular examples have no picture (an empty `image`): nothing is drawn.
fn example_picture(page: &mut String, dark: &DarkKnowledge, names: &[String]) {
    let Some(plane) = dark.width.checked_mul(dark.height) else {
        return;
    };
    if plane == 0 || dark.image.is_empty() || !dark.image.len().is_multiple_of(plane) {
        return;
    }
    let channels = dark.image.len() / plane;
    if channels != 1 && channels != 3 {
        return;
    }
    let cell = if dark.width.max(dark.height) > 28 {
        5.0
    } else {
        6.0
    };
    let _ = writeln!(
        page,
        "<figure>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" shape-rendering=\"crispEdges\" role=\"img\">",
        w = dark.width as f64 * cell,
        h = dark.height as f64 * cell
    );
    for index in 0..plane {
        let (row, col) = (index / dark.width, index % dark.width);
        let (r, g, b) = if channels == 3 {
            (
                dark.image[index],
                dark.image[plane + index],
                dark.image[2 * plane + index],
            )
        } else {
            let grey = dark.image[index];
            (grey, grey, grey)
        };
        let _ = writeln!(
            page,
            "<rect x=\"{}\" y=\"{}\" width=\"{cell}\" height=\"{cell}\" fill=\"rgb({r},{g},{b})\"/>",
            col as f64 * cell,
            row as f64 * cell
        );
    }
    let _ = writeln!(
        page,
        "</svg>\n<figcaption>test example {} ({})</figcaption>\n</figure>",
        dark.example_index,
        escape(&class_name(names, dark.true_class))
    );
}

/// Horizontal bars, one per class, probabilities on a linear 0..1 scale with the value printed.
fn bar_chart(
    page: &mut String,
    probabilities: &[f32],
    names: &[String],
    true_class: usize,
    temperature: f32,
) {
    let (label_width, bar_width, row_height) = (82.0, 120.0, 17.0);
    let height = row_height * probabilities.len() as f64 + 4.0;
    let width = label_width + bar_width + 50.0;
    let _ = writeln!(
        page,
        "<figure>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\">"
    );
    for (class, &p) in probabilities.iter().enumerate() {
        let y = class as f64 * row_height + 2.0;
        let colour = if class == true_class {
            "#2ca02c"
        } else {
            "#1f77b4"
        };
        let _ = writeln!(
            page,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
            label_width - 4.0,
            y + 12.0,
            escape(&class_name(names, class))
        );
        let _ = writeln!(
            page,
            "<rect x=\"{label_width}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\"/>",
            (p as f64).clamp(0.0, 1.0) * bar_width,
            row_height - 4.0
        );
        let _ = writeln!(
            page,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\">{}</text>",
            label_width + (p as f64).clamp(0.0, 1.0) * bar_width + 3.0,
            y + 11.0,
            format_probability(p as f64)
        );
    }
    let _ = writeln!(
        page,
        "</svg>\n<figcaption>T = {temperature}</figcaption>\n</figure>"
    );
}

fn format_probability(p: f64) -> String {
    if p >= 0.01 {
        format!("{p:.2}")
    } else {
        format!("{p:.0e}")
    }
}

/// True class (rows) x class (columns) matrix of mean probabilities; colour = sqrt(p) so the
/// small off-diagonal values stay visible.
fn heatmap(page: &mut String, matrix: &[Vec<f64>], names: &[String], temperature: f32) {
    let classes = matrix.len();
    if classes == 0 {
        return;
    }
    let (label, cell) = (90.0, 44.0);
    let size_x = label + cell * classes as f64 + 60.0;
    let size_y = 80.0 + cell * classes as f64 + 10.0;
    let _ = writeln!(
        page,
        "<h3>Mean soft targets at T = {temperature}</h3>\n<p>Row: true class; column: the ensemble's mean probability for each class over the test examples of that class. Off the diagonal lies the dark knowledge.</p>"
    );
    let _ = writeln!(
        page,
        "<div class=\"scroll\">\n<figure class=\"wide\">\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{size_x}\" height=\"{size_y}\" viewBox=\"0 0 {size_x} {size_y}\" role=\"img\">"
    );
    for column in 0..classes {
        let x = label + (column as f64 + 0.5) * cell;
        let _ = writeln!(
            page,
            "<text x=\"{x:.1}\" y=\"76\" font-size=\"10\" text-anchor=\"start\" transform=\"rotate(-40 {x:.1} 76)\">{}</text>",
            escape(&class_name(names, column))
        );
    }
    for (row, values) in matrix.iter().enumerate() {
        let y = 80.0 + row as f64 * cell;
        let _ = writeln!(
            page,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">{}</text>",
            label - 4.0,
            y + cell / 2.0 + 4.0,
            escape(&class_name(names, row))
        );
        for (column, &p) in values.iter().enumerate() {
            let shade = p.clamp(0.0, 1.0).sqrt();
            let level = (255.0 * (1.0 - shade)).round() as u8;
            let text_colour = if shade > 0.6 { "#fff" } else { "#000" };
            let x = label + column as f64 * cell;
            let _ = writeln!(
                page,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{cell}\" height=\"{cell}\" fill=\"rgb({level},{level},255)\" stroke=\"#fff\"/>"
            );
            let _ = writeln!(
                page,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\" text-anchor=\"middle\" fill=\"{text_colour}\">{}</text>",
                x + cell / 2.0,
                y + cell / 2.0 + 3.0,
                format_probability(p)
            );
        }
    }
    let _ = writeln!(
        page,
        "</svg>\n<figcaption>mean softmax(ensemble logits / {temperature}) by true class</figcaption>\n</figure>\n</div>"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::sample_results;

    /// Checks that every opened tag of the elements this module emits is closed in order
    /// (void and self-closing tags aside).
    fn assert_balanced(html: &str) {
        let void = ["meta", "br", "hr", "img", "link", "!DOCTYPE"];
        let mut stack: Vec<String> = Vec::new();
        let mut rest = html;
        while let Some(start) = rest.find('<') {
            let end = rest[start..].find('>').expect("unterminated tag") + start;
            let tag = &rest[start + 1..end];
            rest = &rest[end + 1..];
            let name: String = tag
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '!')
                .collect();
            if tag.ends_with('/') || void.iter().any(|v| v.eq_ignore_ascii_case(&name)) {
                continue;
            }
            if tag.starts_with('/') {
                let open = stack
                    .pop()
                    .unwrap_or_else(|| panic!("</{name}> closes nothing"));
                assert_eq!(open, name, "</{name}> closes <{open}>");
            } else {
                stack.push(name);
            }
        }
        assert!(stack.is_empty(), "unclosed: {stack:?}");
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
    }

    #[test]
    fn page_is_balanced_and_has_every_section() {
        let results = sample_results();
        let html = render_report(&results);
        assert_balanced(&html);
        for id in [
            "warnings",
            "summary",
            "curves",
            "cost",
            "grid",
            "per-class",
            "dark-knowledge",
            "experiment",
        ] {
            assert!(
                html.contains(&format!("<section id=\"{id}\">")),
                "missing section {id}"
            );
        }
        // The sample warning contains markup: it must arrive escaped.
        assert!(html.contains("example warning &lt;with&gt; markup &amp; ampersand"));
        assert!(!html.contains("<with>"));
        assert!(!html.contains("<script"), "no scripts");
        assert!(
            !html.contains("http://")
                || html.matches("http://").count()
                    == html.matches("http://www.w3.org/2000/svg").count(),
            "only the SVG namespace URL"
        );
        // 28 x 28 pixel rects, four bar charts, a 10 x 10 heatmap.
        assert_eq!(
            html.matches("fill=\"rgb(200,200,200)\"").count()
                + html.matches("fill=\"rgb(30,30,30)\"").count(),
            784
        );
        for t in ["T = 1", "T = 2", "T = 5", "T = 20"] {
            assert!(
                html.contains(&format!("<figcaption>{t}</figcaption>")),
                "missing {t}"
            );
        }
        assert!(html.contains("Ankle boot") && html.contains("T-shirt/top"));
    }

    #[test]
    fn comparisons_and_repeats_are_shown() {
        let results = sample_results();
        let html = render_report(&results);
        let kd = results.model(crate::results::Role::StudentKd).unwrap();
        let versus = kd.versus_hard.as_ref().unwrap();
        assert!(html.contains(&format!("<td>{}</td>", versus.points_with_interval())));
        assert!(html.contains(&format!("<td>{}</td>", format_p(versus.p_value))));
        assert!(html.contains("mean &plusmn; sd, 3 repeats (%)"));
        assert!(html.contains(&format!(
            "<td>{}</td>",
            kd.repeats.as_ref().unwrap().mean_pm_sd()
        )));
        let seeds = kd.repeats.as_ref().unwrap().versus_hard.as_ref().unwrap();
        assert!(html.contains(&format!(
            "<li>student-kd: {}</li>",
            escape(&seeds.summary())
        )));
        assert_eq!(
            html.matches("<li>student-").count(),
            1,
            "student-hard has no line"
        );
        // One error bar per cost chart for student-kd, the only model compared.
        assert_eq!(html.matches("class=\"series ci\"").count(), 2);
        // student-kd: 0.892 + [0.0051, 0.0139], the bar spans that much of the y axis.
        let (low, high) = accuracy_interval(&results, kd).unwrap();
        assert!((low - 0.8971).abs() < 1e-9 && (high - 0.9059).abs() < 1e-9);
        // The experiment table gains the comparison columns.
        assert!(html.contains("<th>vs baseline, points (95% CI)</th>"));
    }

    #[test]
    fn colour_examples_are_drawn_in_colour_and_tabular_ones_not_at_all() {
        let mut results = sample_results();
        let dark = results.dark_knowledge.as_mut().unwrap();
        // A 2x3 colour image: red plane 10, green 20, blue 30.
        dark.height = 2;
        dark.width = 3;
        dark.image = [vec![10; 6], vec![20; 6], vec![30; 6]].concat();
        let html = render_report(&results);
        assert_balanced(&html);
        assert_eq!(html.matches("fill=\"rgb(10,20,30)\"").count(), 6);

        let dark = results.dark_knowledge.as_mut().unwrap();
        dark.height = 1;
        dark.width = 13;
        dark.image.clear();
        let html = render_report(&results);
        assert_balanced(&html);
        assert!(html.contains("<section id=\"dark-knowledge\">"));
        assert!(
            !html.contains("shape-rendering=\"crispEdges\""),
            "no picture"
        );
        assert!(
            html.contains("<figcaption>T = 20</figcaption>"),
            "the bars stay"
        );
    }

    #[test]
    fn renders_sparse_results() {
        let mut results = sample_results();
        results.dark_knowledge = None;
        results.grid.clear();
        results.warnings.clear();
        for model in &mut results.models {
            model.curve.clear();
            model.serving = None;
        }
        results.models.truncate(1);
        let html = render_report(&results);
        assert_balanced(&html);
        assert!(html.contains("No training curves recorded."));
        assert!(!html.contains("id=\"dark-knowledge\""));
    }

    #[test]
    fn a_curve_only_some_models_have_draws_only_theirs() {
        let mut results = sample_results();
        // Only student-kd has a soft term.
        let soft = results.models[3].name.clone();
        for model in &mut results.models {
            for (i, epoch) in model.curve.iter_mut().enumerate() {
                epoch.train_soft_loss = (model.name == soft).then_some(1.0 - 0.1 * i as f64);
            }
        }
        let html = render_report(&results);
        assert!(html.contains("aria-label=\"soft-target loss against epoch\""));
        assert!(!html.contains("points=\"\""), "an empty series");
        assert_eq!(
            html.matches("<polyline class=\"series\"").count(),
            3 + 3 + 1 + 1
        );
    }

    #[test]
    fn axis_ticks_end_on_extreme_ranges() {
        for (range, log) in [
            ((5e-324 / 1.6, 5e-324 * 1.6), true),
            ((1.7e308 / 1.6, 1.7e308 * 1.6), true),
            ((1e-300, 1e300), true),
            ((0.0, 10.0), true),
            ((1e17, 1e17 + 64.0), false),
            ((f64::NEG_INFINITY, 3.0), false),
        ] {
            let plot = Plot::new(500.0, 320.0, range, (0.0, 1.0), log);
            let ticks = plot.x_ticks();
            assert!(
                ticks.len() <= MAX_TICK_STEPS * 3,
                "{range:?}: {}",
                ticks.len()
            );
            assert!(ticks.iter().all(|t| t.is_finite()), "{range:?}: {ticks:?}");
        }
    }

    fn close(a: (f64, f64), b: (f64, f64)) -> bool {
        (a.0 - b.0).abs() < 1e-9 && (a.1 - b.1).abs() < 1e-9
    }

    #[test]
    fn axis_ranges_are_padded_and_never_empty() {
        // 6% of the span at each end.
        assert!(close(padded_range((0.8, 0.9), false), (0.794, 0.906)));
        assert!(close(padded_range((-2.0, 3.0), false), (-2.3, 3.3)));
        // A single value: 6% of it each way, or 0.5 around zero.
        assert!(close(padded_range((2.0, 2.0), false), (1.88, 2.12)));
        assert!(close(padded_range((0.0, 0.0), false), (-0.5, 0.5)));
        // Log axes pad the decades: 1e3..1e5 spans two, so 0.12 decade more at each end.
        let (lo, hi) = padded_range((1e3, 1e5), true);
        assert!(close((lo.log10(), hi.log10()), (2.88, 5.12)));
        let (lo, hi) = padded_range((100.0, 100.0), true);
        assert!(close((lo.log10(), hi.log10()), (1.5, 2.5)));
        // Ends that cannot be padded stay.
        let open = (f64::NEG_INFINITY, 3.0);
        assert_eq!(padded_range(open, false), open);
        assert_eq!(padded_range((0.0, 10.0), true), (0.0, 10.0));
        assert_eq!(
            padded_range((f64::MAX, f64::MAX), false),
            (f64::MAX, f64::MAX)
        );
    }

    #[test]
    fn y_ticks_are_round_and_inside_the_range() {
        for ((lo, hi), expected) in [
            ((0.773, 0.918), vec![0.78, 0.8, 0.82, 0.84, 0.86, 0.88, 0.9]),
            ((0.263, 0.837), vec![0.3, 0.4, 0.5, 0.6, 0.7, 0.8]),
            ((-3.0, 40.0), vec![0.0, 10.0, 20.0, 30.0, 40.0]),
        ] {
            let plot = Plot {
                y_range: (lo, hi),
                ..Plot::new(500.0, 300.0, (1.0, 2.0), (0.0, 1.0), false)
            };
            let ticks = plot.y_ticks();
            assert_eq!(ticks.len(), expected.len(), "{ticks:?}");
            for (tick, want) in ticks.iter().zip(&expected) {
                assert!((tick - want).abs() < 1e-9, "{ticks:?}");
            }
        }
        // Every padded range gets at least two ticks.
        for span in [1e-12, 0.003, 0.7, 9.0, 1e6] {
            let plot = Plot::new(500.0, 300.0, (1.0, 2.0), (5.0, 5.0 + span), false);
            assert!(plot.y_ticks().len() >= 2, "{span}: {:?}", plot.y_ticks());
        }
    }

    #[test]
    fn extreme_points_stay_clear_of_the_frame() {
        let plot = Plot::new(500.0, 300.0, (1.0, 10.0), (0.8, 0.9), false);
        let (left, right) = (plot.left, plot.width - plot.right);
        let (top, bottom) = (plot.top, plot.height - plot.bottom);
        // At least 6% of the 422 x 242 px area between a data extreme and the frame.
        assert!(plot.x(1.0) - left > 20.0 && right - plot.x(10.0) > 20.0);
        assert!(plot.y(0.9) - top > 10.0 && bottom - plot.y(0.8) > 10.0);
        let plot = Plot::new(500.0, 300.0, (3e4, 4e7), (0.5, 0.5), true);
        assert!(plot.x(3e4) - plot.left > 20.0);
        assert!(plot.width - plot.right - plot.x(4e7) > 20.0);
        assert!(plot.y(0.5) > plot.top + 10.0);
    }

    #[test]
    fn log_axis_ticks_are_powers_of_ten() {
        let plot = Plot::new(400.0, 300.0, (3e4, 4e7), (0.8, 0.9), true);
        assert_eq!(plot.x_ticks(), vec![1e5, 1e6, 1e7]);
        assert!(plot.x(1e5) < plot.x(1e6) && plot.x(1e6) < plot.x(1e7));
        // Equal steps per decade.
        let step = plot.x(1e6) - plot.x(1e5);
        assert!((plot.x(1e7) - plot.x(1e6) - step).abs() < 1e-9);
        // Two decades or less: the 2s and 5s too.
        let plot = Plot::new(400.0, 300.0, (1.0, 20.0), (0.8, 0.9), true);
        let ticks = plot.x_ticks();
        for expected in [2.0, 5.0, 10.0, 20.0] {
            assert!(
                ticks.iter().any(|&t| (t - expected).abs() < 1e-9),
                "{ticks:?}"
            );
        }
    }

    /// Writes the sample report for a visual check:
    /// `cargo test -p dk-distill --lib report::tests::write_preview -- --ignored`.
    #[test]
    #[ignore = "writes a preview file for a visual check"]
    fn write_preview() {
        let path = std::env::temp_dir().join("dk-report-preview.html");
        write_report(&path, &sample_results()).unwrap();
        assert!(path.is_file());
        println!("wrote {}", path.display());
    }
}
