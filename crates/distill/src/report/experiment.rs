//! The experiment's table and chart: in report.html (description, settings, table, findings
//! and line chart) and as aligned text for the terminal ([`text_table`]). Both take the
//! table's text from [`row_texts`], the one place a row becomes text.

use std::fmt::Write as _;

use super::{PALETTE, Plot, escape, range};
use crate::results::{
    Cell, ColumnKind, ExperimentTable, LineChart, PairedComparison, Reference, Series, format_p,
};

/// Labels of the columns that [`comparison_cells`] adds to a table with comparisons, in
/// the terminal; report.html spells the last two out.
pub const COMPARISON_COLUMNS: [&str; 3] = ["baseline", "vs baseline (95% CI)", "p"];

/// One cell as text: percentages with two decimals, counts whole, other numbers with up to
/// three decimals, an empty cell as "-".
pub fn format_cell(cell: &Cell, kind: ColumnKind) -> String {
    let number = match cell {
        Cell::Empty => return "-".into(),
        Cell::Text(text) => return text.clone(),
        Cell::Whole(n) => *n as f64,
        Cell::Real(x) => *x,
    };
    match kind {
        ColumnKind::Percent => format!("{:.2}%", 100.0 * number),
        ColumnKind::Count => format!("{}", number.round()),
        ColumnKind::Number | ColumnKind::Text => {
            // Up to three decimals, without trailing zeros: 0.5, 0.75, 20.
            let text = format!("{number:.3}");
            text.trim_end_matches('0').trim_end_matches('.').to_string()
        }
    }
}

/// A row's comparison as three cells: the baseline's name, the difference in points with
/// its 95% interval, McNemar's p ("-" each without a comparison).
pub fn comparison_cells(comparison: Option<&PairedComparison>) -> [String; 3] {
    match comparison {
        Some(c) => [
            c.baseline.clone(),
            c.points_with_interval(),
            format_p(c.p_value),
        ],
        None => ["-".into(), "-".into(), "-".into()],
    }
}

/// True when the table shows the comparison columns.
fn has_comparisons(table: &ExperimentTable) -> bool {
    !table.comparisons.is_empty()
}

/// Every row as text: its cells formatted by their column's kind, then its comparison
/// cells when the table has comparisons.
pub fn row_texts(table: &ExperimentTable) -> Vec<Vec<String>> {
    let columns = table.columns();
    table
        .cells()
        .iter()
        .enumerate()
        .map(|(i, cells)| {
            let mut texts: Vec<String> = cells
                .iter()
                .zip(&columns)
                .map(|(cell, column)| format_cell(cell, column.kind))
                .collect();
            if has_comparisons(table) {
                let comparison = table.comparisons.get(i).and_then(Option::as_ref);
                texts.extend(comparison_cells(comparison));
            }
            texts
        })
        .collect()
}

/// The experiment table as plain text for the terminal, with the comparison columns when
/// the table has comparisons.
pub fn text_table(table: &ExperimentTable) -> String {
    let headings = text_headings(table);
    let rows = row_texts(table);
    let widths = column_widths(&headings, &rows);
    let line = |items: Vec<&str>| aligned_line(&items, &headings, &widths);
    let mut out = format!("{}\n", table.title);
    out.push_str(&line(
        headings.iter().map(|(label, _)| label.as_str()).collect(),
    ));
    for row in &rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    for finding in &table.findings {
        out.push_str(&format!("- {finding}\n"));
    }
    if has_comparisons(table) {
        out.push_str("vs baseline: test accuracy minus the baseline row's, in points, 95% paired bootstrap interval; p: McNemar's exact test\n");
    }
    out
}

/// Each column's label and kind, the comparison columns included.
fn text_headings(table: &ExperimentTable) -> Vec<(String, ColumnKind)> {
    let mut headings: Vec<(String, ColumnKind)> = table
        .columns()
        .into_iter()
        .map(|c| (c.label, c.kind))
        .collect();
    if has_comparisons(table) {
        headings.push((COMPARISON_COLUMNS[0].into(), ColumnKind::Text));
        headings.extend(
            COMPARISON_COLUMNS[1..]
                .iter()
                .map(|&l| (l.to_string(), ColumnKind::Number)),
        );
    }
    headings
}

/// The widest text of each column, its label included, in characters.
fn column_widths(headings: &[(String, ColumnKind)], rows: &[Vec<String>]) -> Vec<usize> {
    headings
        .iter()
        .enumerate()
        .map(|(i, (label, _))| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([label.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect()
}

/// One line of the text table: text columns left-aligned, numbers right-aligned, two
/// spaces between columns.
fn aligned_line(items: &[&str], headings: &[(String, ColumnKind)], widths: &[usize]) -> String {
    let mut out = String::new();
    for (i, (item, width)) in items.iter().zip(widths).enumerate() {
        let pad = " ".repeat(width - item.chars().count());
        if headings[i].1 == ColumnKind::Text {
            out.push_str(&format!("{item}{pad}"));
        } else {
            out.push_str(&format!("{pad}{item}"));
        }
        out.push_str(if i + 1 < items.len() { "  " } else { "\n" });
    }
    out
}

/// The report's experiment section.
pub fn experiment_section(page: &mut String, table: &ExperimentTable) {
    let _ = writeln!(
        page,
        "<section id=\"experiment\">\n<h2>Experiment {}: {}</h2>\n<p>{}</p>",
        escape(table.name()),
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
    page.push_str("</p>\n");
    html_table(page, table);
    if has_comparisons(table) {
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

/// The table in HTML: text columns (the baseline's name included) left-aligned.
fn html_table(page: &mut String, table: &ExperimentTable) {
    let class_of = |kind: ColumnKind| {
        if kind == ColumnKind::Text {
            " class=\"l\""
        } else {
            ""
        }
    };
    let columns = table.columns();
    page.push_str("<div class=\"scroll\">\n<table>\n<tr>");
    for column in &columns {
        let _ = write!(
            page,
            "<th{}>{}</th>",
            class_of(column.kind),
            escape(&column.label)
        );
    }
    if has_comparisons(table) {
        let _ = write!(
            page,
            "<th class=\"l\">{}</th><th>vs baseline, points (95% CI)</th><th>McNemar p</th>",
            COMPARISON_COLUMNS[0]
        );
    }
    page.push_str("</tr>\n");
    let kinds: Vec<ColumnKind> = columns
        .iter()
        .map(|c| c.kind)
        .chain([ColumnKind::Text, ColumnKind::Number, ColumnKind::Number])
        .collect();
    for row in row_texts(table) {
        page.push_str("<tr>");
        for (text, &kind) in row.iter().zip(&kinds) {
            let _ = write!(page, "<td{}>{}</td>", class_of(kind), escape(text));
        }
        page.push_str("</tr>\n");
    }
    page.push_str("</table>\n</div>\n");
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
    // A log axis needs positive values: a chart reaching 0 or below is drawn linear.
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
        reference_line(page, &plot, reference, x_range);
    }
    for (i, series) in chart.series.iter().enumerate() {
        series_line(page, &plot, series, PALETTE[i % PALETTE.len()], log_x);
    }
    page.push_str("</svg>\n<figcaption>");
    page.push_str(&chart_keys(chart));
    page.push_str("</figcaption>\n</figure>\n");
}

/// A reference value as a dashed grey line across the whole x range.
fn reference_line(page: &mut String, plot: &Plot, reference: &Reference, x_range: (f64, f64)) {
    let y = plot.y(reference.y);
    let _ = writeln!(
        page,
        "<line class=\"series\" x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#888\" stroke-dasharray=\"5,4\"/>",
        plot.x(x_range.0),
        plot.x(x_range.1)
    );
}

/// A series as a polyline with a dot on each point it can place (finite, and positive x
/// on a log axis).
fn series_line(page: &mut String, plot: &Plot, series: &Series, colour: &str, log_x: bool) {
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

/// The caption's key: each series' colour and name, then each reference's.
fn chart_keys(chart: &LineChart) -> String {
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
    keys.join(" &nbsp; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::ExperimentRows;
    use crate::testutil::sample_results;

    #[test]
    fn cells_format_by_column_kind() {
        let number = |cell: Cell| format_cell(&cell, ColumnKind::Number);
        assert_eq!(number(Cell::Real(0.75)), "0.75");
        assert_eq!(number(Cell::Real(20.0)), "20");
        assert_eq!(number(Cell::Real(0.1234)), "0.123");
        assert_eq!(
            format_cell(&Cell::Real(0.851), ColumnKind::Percent),
            "85.10%"
        );
        assert_eq!(format_cell(&Cell::Whole(1490), ColumnKind::Count), "1490");
        assert_eq!(format_cell(&Cell::Real(3.0), ColumnKind::Count), "3");
        assert_eq!(format_cell(&Cell::Empty, ColumnKind::Percent), "-");
        assert_eq!(
            format_cell(&Cell::Text("a b".into()), ColumnKind::Text),
            "a b"
        );
    }

    #[test]
    fn text_table_aligns_columns_and_formats_cells() {
        let mut table = sample_results().experiment.unwrap();
        let comparisons = std::mem::take(&mut table.comparisons);
        let text = text_table(&table);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], table.title);
        assert_eq!(
            lines[1],
            "targets       T  alpha  validation accuracy  test accuracy  test errors"
        );
        // Hard labels have no T or alpha: "-", right-aligned like the numbers.
        assert_eq!(
            lines[2],
            "hard labels   -      -               85.20%         84.90%         1510"
        );
        assert_eq!(
            lines[4],
            "distillation  4    0.5               86.60%         86.20%         1380"
        );
        assert!(text.contains("- T = 4 beats"), "{text}");
        assert!(
            !text.contains("baseline"),
            "no comparisons, no columns: {text}"
        );

        // With comparisons: three more columns, "-" on the baseline row.
        table.comparisons = comparisons;
        let text = text_table(&table);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[1].ends_with("baseline      vs baseline (95% CI)       p"),
            "{text}"
        );
        assert!(
            lines[2].ends_with("-                                -       -"),
            "{text}"
        );
        let versus = table.comparisons[2].as_ref().unwrap();
        assert!(
            lines[4].ends_with(&format!(
                "1380  student-hard  {}  {}",
                versus.points_with_interval(),
                format_p(versus.p_value)
            )),
            "{text}"
        );
        assert!(text.contains("p: McNemar's exact test"), "{text}");
    }

    #[test]
    fn html_and_text_show_the_same_cells() {
        let table = sample_results().experiment.unwrap();
        let mut page = String::new();
        experiment_section(&mut page, &table);
        let text = text_table(&table);
        for row in row_texts(&table) {
            assert_eq!(row.len(), table.columns().len() + 3);
            for cell in &row {
                assert!(page.contains(&format!(">{}</td>", escape(cell))), "{cell}");
                assert!(text.contains(cell.as_str()), "{cell}");
            }
        }
        let ExperimentRows::Temperature(rows) = &table.rows else {
            panic!("the sample is a temperature table");
        };
        assert_eq!(row_texts(&table).len(), rows.len());
        assert!(page.contains("<th class=\"l\">targets</th><th>T</th>"));
    }
}
