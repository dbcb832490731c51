//! `dk-distill --report-from` on the sample results: a results.json in, a report.html out
//! whose plots all have a plot area and series. With `DK_REPORT_SAMPLE_DIR` set, the two files
//! are written into that folder and kept there: CI opens that report.html in headless
//! Chromium (`.ci/report_layout.mjs`) to check its layout at desktop and phone widths.

mod common;

use std::process::Command;

use dk_distill::testutil::sample_results;

#[test]
fn report_from_sample_results() {
    let scratch;
    let dir = match std::env::var_os("DK_REPORT_SAMPLE_DIR") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => {
            scratch = common::temp_dir("report-page");
            scratch.path().to_path_buf()
        }
    };
    std::fs::create_dir_all(&dir).unwrap();
    let results_path = dir.join("results.json");
    let json = serde_json::to_string_pretty(&sample_results()).unwrap();
    std::fs::write(&results_path, json).unwrap();

    let output = Command::new(env!("CARGO_BIN_EXE_dk-distill"))
        .arg("--report-from")
        .arg(&results_path)
        .output()
        .expect("running dk-distill");
    assert!(
        output.status.success(),
        "dk-distill --report-from failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let html = std::fs::read_to_string(dir.join("report.html")).expect("report.html written");
    // Two learning-curve charts (the sample records no soft term), two cost charts and the
    // experiment's chart, each with its plot area and drawn series.
    let plots = html.matches("<rect class=\"plot-area\"").count();
    assert_eq!(plots, 5, "plot areas in the sample report");
    for svg in html.split("<svg").skip(1) {
        let svg = &svg[..svg.find("</svg>").expect("closed <svg>")];
        if svg.contains("class=\"plot-area\"") {
            assert!(svg.contains("class=\"series"), "a plot without series");
        } else {
            assert!(
                !svg.contains("class=\"series"),
                "series without a plot area"
            );
        }
    }
    assert!(
        html.contains("<details>"),
        "the secondary measures fold away"
    );
}
