//! The report's experiment section: the experiment's description, settings, table,
//! findings and line chart.

use std::fmt::Write as _;

use super::{PALETTE, Plot, escape, range};
use crate::driver::experiments::{COMPARISON_COLUMNS, comparison_cells, format_cell};
use crate::results::{ColumnKind, ExperimentTable, LineChart};

pub fn experiment_section(page: &mut String, table: &ExperimentTable) {
    let _ = writeln!(
        page,
        "<section id=\"experiment\">\n<h2>Experiment {}: {}</h2>\n<p>{}</p>",
        escape(&table.name),
        escape(&table.title),
        escape(&table.description)
    );
    page.push_str("<p class=\"meta\">");
    let settings: Vec<String> = table
        .settings
        .iter()
        .map(|s| format!("{}: {}", escape(&s.name), escape(&s.value)))
        .collect();
    page.push_str(&settings.join(" &middot; "));
    page.push_str("</p>\n<div class=\"scroll\">\n<table>\n<tr>");
    for column in &table.columns {
        let class = if column.kind == ColumnKind::Text {
            " class=\"l\""
        } else {
            ""
        };
        let _ = write!(page, "<th{class}>{}</th>", escape(&column.label));
    }
    let compared = !table.comparisons.is_empty();
    if compared {
        let _ = write!(
            page,
            "<th class=\"l\">{}</th><th>vs baseline, points (95% CI)</th><th>McNemar p</th>",
            COMPARISON_COLUMNS[0]
        );
    }
    page.push_str("</tr>\n");
    for (i, row) in table.rows.iter().enumerate() {
        page.push_str("<tr>");
        for (value, column) in row.iter().zip(&table.columns) {
            let class = if column.kind == ColumnKind::Text {
                " class=\"l\""
            } else {
                ""
            };
            let _ = write!(
                page,
                "<td{class}>{}</td>",
                escape(&format_cell(value, column.kind))
            );
        }
        if compared {
            let comparison = table.comparisons.get(i).and_then(Option::as_ref);
            let [baseline, versus, p] = comparison_cells(comparison);
            let _ = write!(
                page,
                "<td class=\"l\">{}</td><td>{}</td><td>{}</td>",
                escape(&baseline),
                escape(&versus),
                escape(&p)
            );
        }
        page.push_str("</tr>\n");
    }
    page.push_str("</table>\n</div>\n");
    if compared {
        page.push_str("<p class=\"meta\">vs baseline: test accuracy minus the baseline row's, in points, with the 95% paired bootstrap interval; McNemar p: exact two-sided test on the test examples exactly one of the two gets right.</p>\n");
    }
    if !table.findings.is_empty() {
        page.push_str("<ul>\n");
        for finding in &table.findings {
            let _ = writeln!(page, "<li>{}</li>", escape(finding));
        }
        page.push_str("</ul>\n");
    }
    if let Some(chart) = &table.chart {
        line_chart(page, chart);
    }
    page.push_str("</section>\n");
}

/// Series as coloured polylines with dots, references as dashed grey lines.
fn line_chart(page: &mut String, chart: &LineChart) {
    let xs = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p[0]));
    let ys = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p[1]))
        .chain(chart.references.iter().map(|r| r.y));
    let (Some(x_range), Some(y_range)) = (range(xs), range(ys)) else {
        return;
    };
    let log_x = chart.log_x && x_range.0 > 0.0;
    let plot = Plot::new(640.0, 340.0, x_range, y_range, log_x);
    let percent = chart.y_label.contains("accuracy");
    page.push_str("<figure>\n");
    let y_label = if percent {
        format!("{} (%)", chart.y_label)
    } else {
        chart.y_label.clone()
    };
    plot.begin(page, &chart.x_label, &y_label, |v| {
        if percent {
            format!("{:.1}", 100.0 * v)
        } else {
            format!("{v:.3}")
        }
    });
    for reference in &chart.references {
        let y = plot.y(reference.y);
        let _ = writeln!(
            page,
            "<line class=\"series\" x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#888\" stroke-dasharray=\"5,4\"/>",
            plot.x(x_range.0),
            plot.x(x_range.1)
        );
    }
    for (i, series) in chart.series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let points: Vec<(f64, f64)> = series
            .points
            .iter()
            .filter(|p| p[0].is_finite() && p[1].is_finite() && (!log_x || p[0] > 0.0))
            .map(|p| (plot.x(p[0]), plot.y(p[1])))
            .collect();
        let line: Vec<String> = points
            .iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect();
        let _ = writeln!(
            page,
            "<polyline class=\"series\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
            line.join(" ")
        );
        for (x, y) in points {
            let _ = writeln!(
                page,
                "<circle class=\"series\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\" fill=\"{colour}\"/>"
            );
        }
    }
    page.push_str("</svg>\n<figcaption>");
    let mut keys: Vec<String> = chart
        .series
        .iter()
        .enumerate()
        .map(|(i, s)| {
            format!(
                "<span style=\"color:{}\">&#9632;</span> {}",
                PALETTE[i % PALETTE.len()],
                escape(&s.name)
            )
        })
        .collect();
    keys.extend(
        chart
            .references
            .iter()
            .map(|r| format!("<span style=\"color:#888\">- -</span> {}", escape(&r.name))),
    );
    page.push_str(&keys.join(" &nbsp; "));
    page.push_str("</figcaption>\n</figure>\n");
}
