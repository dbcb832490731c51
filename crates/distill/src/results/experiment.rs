//! The experiment table of `results.json`: one typed row per experiment, written as the
//! `columns` and `rows` arrays that `SCHEMA.md` describes.
//!
//! Each experiment's row is a struct implementing [`TableRow`]: its columns and its cells
//! are arrays of the same length, so a row can never be ragged. The table is written through
//! its stored form (`StoredTable`, the JSON layout) and read back through it, refusing a
//! file whose rows do not fit the named experiment's columns.

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::PairedComparison;
use crate::config::Experiment;

/// One experiment's results as a table, with the settings that shaped it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "StoredTable", try_from = "StoredTable")]
pub struct ExperimentTable {
    /// Heading of the table.
    pub title: String,
    /// What is compared and why, one paragraph.
    pub description: String,
    /// Settings that shaped the table, as name/value text.
    pub settings: Vec<Setting>,
    /// The rows; they name the experiment and fix the columns.
    pub rows: ExperimentRows,
    /// Sentences that read the table, computed from its numbers.
    pub findings: Vec<String>,
    /// A line chart of the table (absent when the experiment has none).
    pub chart: Option<LineChart>,
    /// One entry per row: the row's student against its baseline row's student on test
    /// (null for a baseline row and rows compared with nothing).
    pub comparisons: Vec<Option<PairedComparison>>,
}

impl ExperimentTable {
    /// The experiment's name, e.g. "compression".
    pub fn name(&self) -> &'static str {
        self.rows.experiment().name()
    }

    /// The columns, in cell order.
    pub fn columns(&self) -> Vec<Column> {
        self.rows.columns()
    }

    /// Every row as cells, one per column.
    pub fn cells(&self) -> Vec<Vec<Cell>> {
        self.rows.cells()
    }

    /// Drops chart points and reference lines that are not finite numbers (JSON has no NaN:
    /// they would be written as null and the file could not be read back).
    pub fn drop_non_finite(&mut self) {
        if let Some(chart) = &mut self.chart {
            for series in &mut chart.series {
                series
                    .points
                    .retain(|p| p[0].is_finite() && p[1].is_finite());
            }
            chart.references.retain(|r| r.y.is_finite());
        }
    }
}

/// The rows of one experiment's table.
#[derive(Debug, Clone, PartialEq)]
pub enum ExperimentRows {
    Compression(Vec<CompressionRow>),
    Munge(Vec<MungeRow>),
    OmitClass {
        /// The omitted class's name (it heads the last column).
        class_name: String,
        rows: Vec<OmitClassRow>,
    },
    Temperature(Vec<TemperatureRow>),
    SmallData(Vec<SmallDataRow>),
}

impl ExperimentRows {
    /// The experiment the rows belong to.
    pub fn experiment(&self) -> Experiment {
        match self {
            ExperimentRows::Compression(_) => Experiment::Compression,
            ExperimentRows::Munge(_) => Experiment::Munge,
            ExperimentRows::OmitClass { .. } => Experiment::OmitClass,
            ExperimentRows::Temperature(_) => Experiment::Temperature,
            ExperimentRows::SmallData(_) => Experiment::SmallData,
        }
    }

    /// The number of rows.
    pub fn len(&self) -> usize {
        match self {
            ExperimentRows::Compression(rows) => rows.len(),
            ExperimentRows::Munge(rows) => rows.len(),
            ExperimentRows::OmitClass { rows, .. } => rows.len(),
            ExperimentRows::Temperature(rows) => rows.len(),
            ExperimentRows::SmallData(rows) => rows.len(),
        }
    }

    /// True for a table without rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The columns, in cell order.
    pub fn columns(&self) -> Vec<Column> {
        match self {
            ExperimentRows::Compression(rows) => columns_of(rows),
            ExperimentRows::Munge(rows) => columns_of(rows),
            ExperimentRows::OmitClass { class_name, rows } => {
                let mut columns = columns_of(rows);
                for column in &mut columns {
                    column.label = column.label.replace(CLASS_PLACEHOLDER, class_name);
                }
                columns
            }
            ExperimentRows::Temperature(rows) => columns_of(rows),
            ExperimentRows::SmallData(rows) => columns_of(rows),
        }
    }

    /// Every row as cells, one per column.
    pub fn cells(&self) -> Vec<Vec<Cell>> {
        match self {
            ExperimentRows::Compression(rows) => cells_of(rows),
            ExperimentRows::Munge(rows) => cells_of(rows),
            ExperimentRows::OmitClass { rows, .. } => cells_of(rows),
            ExperimentRows::Temperature(rows) => cells_of(rows),
            ExperimentRows::SmallData(rows) => cells_of(rows),
        }
    }

    /// The rows of the experiment `name` from their cells, checked against the columns
    /// stored beside them.
    fn from_cells(name: &str, columns: &[Column], cells: Vec<Vec<Cell>>) -> Result<Self, String> {
        let experiment = Experiment::ALL
            .into_iter()
            .find(|e| e.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Experiment::ALL.iter().map(|e| e.name()).collect();
                format!(
                    "experiment.name = {name:?}: expected one of {}",
                    names.join(", ")
                )
            })?;
        let rows = match experiment {
            Experiment::Compression => ExperimentRows::Compression(rows_of(cells)?),
            Experiment::Munge => ExperimentRows::Munge(rows_of(cells)?),
            Experiment::OmitClass => ExperimentRows::OmitClass {
                class_name: omitted_class_name(columns)?,
                rows: rows_of(cells)?,
            },
            Experiment::Temperature => ExperimentRows::Temperature(rows_of(cells)?),
            Experiment::SmallData => ExperimentRows::SmallData(rows_of(cells)?),
        };
        let expected = rows.columns();
        if columns != expected {
            let labels = |columns: &[Column]| -> Vec<String> {
                columns
                    .iter()
                    .map(|c| format!("{} ({:?})", c.label, c.kind))
                    .collect()
            };
            return Err(format!(
                "experiment {name}: columns [{}], expected [{}]",
                labels(columns).join(", "),
                labels(&expected).join(", ")
            ));
        }
        Ok(rows)
    }
}

/// Stands for the omitted class's name in [`OmitClassRow::COLUMNS`].
const CLASS_PLACEHOLDER: &str = "{class}";

/// The omitted class's name from the label of the omit-class table's last column.
fn omitted_class_name(columns: &[Column]) -> Result<String, String> {
    let template = OmitClassRow::COLUMNS[OmitClassRow::COLUMNS.len() - 1].0;
    let (prefix, suffix) = template
        .split_once(CLASS_PLACEHOLDER)
        .expect("the template names the class");
    columns
        .last()
        .and_then(|c| c.label.strip_prefix(prefix)?.strip_suffix(suffix))
        .map(str::to_string)
        .ok_or_else(|| format!("experiment omit-class: the last column is not {template:?}"))
}

/// One row of an experiment table: `N` cells under `N` columns.
pub trait TableRow<const N: usize>: Sized {
    /// Label and kind of each column, in cell order.
    const COLUMNS: [(&'static str, ColumnKind); N];
    /// The row's cells, as `results.json` holds them.
    fn cells(&self) -> [Cell; N];
    /// The row back from its cells (`Err`: which cell is not what the column holds).
    fn from_cells(cells: [Cell; N]) -> Result<Self, String>;
}

fn columns_of<const N: usize, R: TableRow<N>>(_rows: &[R]) -> Vec<Column> {
    R::COLUMNS
        .iter()
        .map(|&(label, kind)| Column {
            label: label.to_string(),
            kind,
        })
        .collect()
}

fn cells_of<const N: usize, R: TableRow<N>>(rows: &[R]) -> Vec<Vec<Cell>> {
    rows.iter().map(|row| row.cells().to_vec()).collect()
}

fn rows_of<const N: usize, R: TableRow<N>>(cells: Vec<Vec<Cell>>) -> Result<Vec<R>, String> {
    cells
        .into_iter()
        .enumerate()
        .map(|(i, row)| {
            let found = row.len();
            let row: [Cell; N] = row
                .try_into()
                .map_err(|_| format!("experiment row {i}: {found} cells, expected {N}"))?;
            R::from_cells(row).map_err(|e| format!("experiment row {i}: {e}"))
        })
        .collect()
}

/// `compression`: one student per transfer set.
#[derive(Debug, Clone, PartialEq)]
pub struct CompressionRow {
    pub transfer_set: String,
    pub true_labels_seen: usize,
    pub validation_accuracy: f64,
    pub test_accuracy: f64,
}

impl TableRow<4> for CompressionRow {
    const COLUMNS: [(&'static str, ColumnKind); 4] = [
        ("transfer set", ColumnKind::Text),
        ("true labels seen", ColumnKind::Count),
        ("validation accuracy", ColumnKind::Percent),
        ("test accuracy", ColumnKind::Percent),
    ];

    fn cells(&self) -> [Cell; 4] {
        [
            Cell::Text(self.transfer_set.clone()),
            Cell::whole(self.true_labels_seen),
            Cell::real(self.validation_accuracy),
            Cell::real(self.test_accuracy),
        ]
    }

    fn from_cells([transfer_set, seen, validation, test]: [Cell; 4]) -> Result<Self, String> {
        Ok(CompressionRow {
            transfer_set: transfer_set.into_text()?,
            true_labels_seen: seen.into_whole()?,
            validation_accuracy: validation.into_real()?,
            test_accuracy: test.into_real()?,
        })
    }
}

/// `munge`: one student per transfer set; `multiplier` k is absent for the student on the
/// originals with true labels.
#[derive(Debug, Clone, PartialEq)]
pub struct MungeRow {
    pub transfer_set: String,
    pub multiplier: Option<usize>,
    pub validation_accuracy: f64,
    pub test_accuracy: f64,
    pub test_errors: usize,
}

impl TableRow<5> for MungeRow {
    const COLUMNS: [(&'static str, ColumnKind); 5] = [
        ("transfer set", ColumnKind::Text),
        ("k", ColumnKind::Count),
        ("validation accuracy", ColumnKind::Percent),
        ("test accuracy", ColumnKind::Percent),
        ("test errors", ColumnKind::Count),
    ];

    fn cells(&self) -> [Cell; 5] {
        [
            Cell::Text(self.transfer_set.clone()),
            self.multiplier.map_or(Cell::Empty, Cell::whole),
            Cell::real(self.validation_accuracy),
            Cell::real(self.test_accuracy),
            Cell::whole(self.test_errors),
        ]
    }

    fn from_cells([transfer_set, k, validation, test, errors]: [Cell; 5]) -> Result<Self, String> {
        Ok(MungeRow {
            transfer_set: transfer_set.into_text()?,
            multiplier: k.optional(Cell::into_whole)?,
            validation_accuracy: validation.into_real()?,
            test_accuracy: test.into_real()?,
            test_errors: errors.into_whole()?,
        })
    }
}

/// `omit-class`: one student, with its output-bias shift where one was applied, and its
/// test accuracy on the omitted class (absent when the test split lacks the class).
#[derive(Debug, Clone, PartialEq)]
pub struct OmitClassRow {
    pub student: String,
    pub transfer_set: String,
    pub bias_shift: Option<f64>,
    pub validation_accuracy: f64,
    pub test_accuracy: f64,
    pub test_accuracy_on_class: Option<f64>,
}

impl TableRow<6> for OmitClassRow {
    const COLUMNS: [(&'static str, ColumnKind); 6] = [
        ("student", ColumnKind::Text),
        ("transfer set", ColumnKind::Text),
        ("bias shift", ColumnKind::Number),
        ("validation accuracy", ColumnKind::Percent),
        ("test accuracy", ColumnKind::Percent),
        ("test accuracy on {class}", ColumnKind::Percent),
    ];

    fn cells(&self) -> [Cell; 6] {
        [
            Cell::Text(self.student.clone()),
            Cell::Text(self.transfer_set.clone()),
            Cell::optional_real(self.bias_shift),
            Cell::real(self.validation_accuracy),
            Cell::real(self.test_accuracy),
            Cell::optional_real(self.test_accuracy_on_class),
        ]
    }

    fn from_cells(
        [student, transfer_set, shift, validation, test, on_class]: [Cell; 6],
    ) -> Result<Self, String> {
        Ok(OmitClassRow {
            student: student.into_text()?,
            transfer_set: transfer_set.into_text()?,
            bias_shift: shift.optional(Cell::into_real)?,
            validation_accuracy: validation.into_real()?,
            test_accuracy: test.into_real()?,
            test_accuracy_on_class: on_class.optional(Cell::into_real)?,
        })
    }
}

/// `temperature`: one student; T and alpha are absent for hard labels and logit matching.
#[derive(Debug, Clone, PartialEq)]
pub struct TemperatureRow {
    /// "hard labels", "logit matching (L2)" or "distillation".
    pub targets: String,
    pub temperature: Option<f64>,
    pub alpha: Option<f64>,
    pub validation_accuracy: f64,
    pub test_accuracy: f64,
    pub test_errors: usize,
}

impl TableRow<6> for TemperatureRow {
    const COLUMNS: [(&'static str, ColumnKind); 6] = [
        ("targets", ColumnKind::Text),
        ("T", ColumnKind::Number),
        ("alpha", ColumnKind::Number),
        ("validation accuracy", ColumnKind::Percent),
        ("test accuracy", ColumnKind::Percent),
        ("test errors", ColumnKind::Count),
    ];

    fn cells(&self) -> [Cell; 6] {
        [
            Cell::Text(self.targets.clone()),
            Cell::optional_real(self.temperature),
            Cell::optional_real(self.alpha),
            Cell::real(self.validation_accuracy),
            Cell::real(self.test_accuracy),
            Cell::whole(self.test_errors),
        ]
    }

    fn from_cells(
        [targets, temperature, alpha, validation, test, errors]: [Cell; 6],
    ) -> Result<Self, String> {
        Ok(TemperatureRow {
            targets: targets.into_text()?,
            temperature: temperature.optional(Cell::into_real)?,
            alpha: alpha.optional(Cell::into_real)?,
            validation_accuracy: validation.into_real()?,
            test_accuracy: test.into_real()?,
            test_errors: errors.into_whole()?,
        })
    }
}

/// `small-data`: one student, with its epochs, its last training accuracy, and its best
/// validation epoch, whose weights the test accuracy is of.
#[derive(Debug, Clone, PartialEq)]
pub struct SmallDataRow {
    pub transfer_set: String,
    pub epochs: usize,
    pub final_train_accuracy: Option<f64>,
    pub best_validation_accuracy: Option<f64>,
    /// 1-based; written as a JSON float (`3.0`), as results.json files always had it.
    pub best_epoch: Option<usize>,
    pub test_accuracy: f64,
}

impl TableRow<6> for SmallDataRow {
    const COLUMNS: [(&'static str, ColumnKind); 6] = [
        ("transfer set", ColumnKind::Text),
        ("epochs", ColumnKind::Count),
        ("final train accuracy", ColumnKind::Percent),
        ("best validation accuracy", ColumnKind::Percent),
        ("at epoch", ColumnKind::Count),
        ("test accuracy (best validation epoch)", ColumnKind::Percent),
    ];

    fn cells(&self) -> [Cell; 6] {
        [
            Cell::Text(self.transfer_set.clone()),
            Cell::whole(self.epochs),
            Cell::optional_real(self.final_train_accuracy),
            Cell::optional_real(self.best_validation_accuracy),
            Cell::optional_real(self.best_epoch.map(|e| e as f64)),
            Cell::real(self.test_accuracy),
        ]
    }

    fn from_cells(
        [transfer_set, epochs, train, validation, at_epoch, test]: [Cell; 6],
    ) -> Result<Self, String> {
        Ok(SmallDataRow {
            transfer_set: transfer_set.into_text()?,
            epochs: epochs.into_whole()?,
            final_train_accuracy: train.optional(Cell::into_real)?,
            best_validation_accuracy: validation.optional(Cell::into_real)?,
            best_epoch: at_epoch.optional(Cell::into_whole_from_float)?,
            test_accuracy: test.into_real()?,
        })
    }
}

/// One cell of an experiment table, as `results.json` holds it.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    /// A whole number, written without a decimal point.
    Whole(u64),
    /// Any other number (finite: JSON has no NaN).
    Real(f64),
    /// No value: null in the file, "-" in tables.
    Empty,
}

impl Cell {
    pub fn whole(value: usize) -> Cell {
        Cell::Whole(value as u64)
    }

    /// A number; [`Cell::Empty`] for one that is not finite (written as null).
    pub fn real(value: f64) -> Cell {
        if value.is_finite() {
            Cell::Real(value)
        } else {
            Cell::Empty
        }
    }

    pub fn optional_real(value: Option<f64>) -> Cell {
        value.map_or(Cell::Empty, Cell::real)
    }

    /// The cell as a number (`None` for text and empty cells).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Cell::Whole(n) => Some(n as f64),
            Cell::Real(x) => Some(x),
            Cell::Text(_) | Cell::Empty => None,
        }
    }

    fn into_text(self) -> Result<String, String> {
        match self {
            Cell::Text(text) => Ok(text),
            other => Err(format!("expected text, found {other}")),
        }
    }

    fn into_whole(self) -> Result<usize, String> {
        match self {
            Cell::Whole(n) => usize::try_from(n).map_err(|_| format!("{n} is too large")),
            other => Err(format!("expected a whole number, found {other}")),
        }
    }

    /// A whole number, also from a float without a fraction (how some columns write it).
    fn into_whole_from_float(self) -> Result<usize, String> {
        match self {
            Cell::Real(x) if x >= 0.0 && x.fract() == 0.0 && x <= usize::MAX as f64 => {
                Ok(x as usize)
            }
            other => other.into_whole(),
        }
    }

    /// A number; null reads as NaN, since a number that was not finite was written so.
    fn into_real(self) -> Result<f64, String> {
        match self {
            Cell::Real(x) => Ok(x),
            Cell::Whole(n) => Ok(n as f64),
            Cell::Empty => Ok(f64::NAN),
            other => Err(format!("expected a number, found {other}")),
        }
    }

    /// `None` for an empty cell, else what `read` makes of it.
    fn optional<T>(self, read: fn(Cell) -> Result<T, String>) -> Result<Option<T>, String> {
        match self {
            Cell::Empty => Ok(None),
            cell => read(cell).map(Some),
        }
    }
}

impl std::fmt::Display for Cell {
    /// As in the JSON file: text quoted, null as `null`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cell::Text(text) => write!(f, "{text:?}"),
            Cell::Whole(n) => write!(f, "{n}"),
            Cell::Real(x) => write!(f, "{x:?}"),
            Cell::Empty => f.write_str("null"),
        }
    }
}

impl Serialize for Cell {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Cell::Text(text) => serializer.serialize_str(text),
            Cell::Whole(n) => serializer.serialize_u64(*n),
            Cell::Real(x) => serializer.serialize_f64(*x),
            Cell::Empty => serializer.serialize_unit(),
        }
    }
}

impl<'de> Deserialize<'de> for Cell {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Cell, D::Error> {
        deserializer.deserialize_any(CellVisitor)
    }
}

struct CellVisitor;

impl Visitor<'_> for CellVisitor {
    type Value = Cell;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string, a number or null")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Cell, E> {
        Ok(Cell::Text(text.to_string()))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Cell, E> {
        Ok(Cell::Whole(n))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Cell, E> {
        Ok(Cell::Real(n as f64))
    }

    fn visit_f64<E: de::Error>(self, x: f64) -> Result<Cell, E> {
        Ok(Cell::Real(x))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Cell, E> {
        Ok(Cell::Empty)
    }
}

/// The table as `results.json` lays it out: the experiment's name, its columns, and each
/// row as an array of cells.
#[derive(Serialize, Deserialize)]
struct StoredTable {
    name: String,
    title: String,
    description: String,
    settings: Vec<Setting>,
    columns: Vec<Column>,
    rows: Vec<Vec<Cell>>,
    findings: Vec<String>,
    chart: Option<LineChart>,
    #[serde(default)]
    comparisons: Vec<Option<PairedComparison>>,
}

impl From<ExperimentTable> for StoredTable {
    fn from(table: ExperimentTable) -> StoredTable {
        StoredTable {
            name: table.name().to_string(),
            columns: table.columns(),
            rows: table.cells(),
            title: table.title,
            description: table.description,
            settings: table.settings,
            findings: table.findings,
            chart: table.chart,
            comparisons: table.comparisons,
        }
    }
}

impl TryFrom<StoredTable> for ExperimentTable {
    type Error = String;

    fn try_from(stored: StoredTable) -> Result<ExperimentTable, String> {
        Ok(ExperimentTable {
            rows: ExperimentRows::from_cells(&stored.name, &stored.columns, stored.rows)?,
            title: stored.title,
            description: stored.description,
            settings: stored.settings,
            findings: stored.findings,
            chart: stored.chart,
            comparisons: stored.comparisons,
        })
    }
}

/// A named setting, as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Setting {
    pub name: String,
    pub value: String,
}

/// A column of an experiment table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub label: String,
    pub kind: ColumnKind,
}

/// How a column's values are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnKind {
    Text,
    /// A fraction shown as a percentage.
    Percent,
    /// A whole number.
    Count,
    /// Any other number.
    Number,
}

/// A line chart: series of (x, y) points, and horizontal reference lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineChart {
    pub x_label: String,
    pub y_label: String,
    /// Logarithmic x axis.
    pub log_x: bool,
    pub series: Vec<Series>,
    pub references: Vec<Reference>,
}

/// One line of a chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub name: String,
    /// (x, y) points in x order.
    pub points: Vec<[f64; 2]>,
}

/// A horizontal line at `y`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    pub name: String,
    pub y: f64,
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::testutil::sample_results;

    fn table(rows: ExperimentRows) -> ExperimentTable {
        ExperimentTable {
            rows,
            ..sample_results().experiment.unwrap()
        }
    }

    /// One table of each experiment, with empty and non-finite values where rows have them.
    fn every_experiment() -> Vec<ExperimentTable> {
        vec![
            table(ExperimentRows::Compression(vec![CompressionRow {
                transfer_set: "100 labeled examples, true labels".into(),
                true_labels_seen: 100,
                validation_accuracy: 0.5,
                test_accuracy: 0.625,
            }])),
            table(ExperimentRows::Munge(vec![
                MungeRow {
                    transfer_set: "50 original examples, true labels".into(),
                    multiplier: None,
                    validation_accuracy: 0.4,
                    test_accuracy: 0.45,
                    test_errors: 550,
                },
                MungeRow {
                    transfer_set: "50 original + 100 MUNGE (k = 2)".into(),
                    multiplier: Some(2),
                    validation_accuracy: 0.41,
                    test_accuracy: 0.46,
                    test_errors: 540,
                },
            ])),
            table(ExperimentRows::OmitClass {
                class_name: "Dress".into(),
                rows: vec![OmitClassRow {
                    student: "student-omit-kd-bias".into(),
                    transfer_set: "training split without Dress".into(),
                    bias_shift: Some(f64::from(2.5f32)),
                    validation_accuracy: 0.7,
                    test_accuracy: 0.69,
                    test_accuracy_on_class: None,
                }],
            }),
            sample_results().experiment.unwrap(),
            table(ExperimentRows::SmallData(vec![SmallDataRow {
                transfer_set: "30 examples (2.0%), soft targets".into(),
                epochs: 12,
                final_train_accuracy: Some(0.9),
                best_validation_accuracy: None,
                best_epoch: Some(7),
                test_accuracy: 0.55,
            }])),
        ]
    }

    /// The rows as results.json has always written them: one array per row, whole numbers
    /// without a decimal point, other numbers as floats, null for no value.
    fn rows_as_before(rows: &ExperimentRows) -> Value {
        let number = |x: Option<f64>| x.map_or(Value::Null, Value::from);
        let rows: Vec<Value> = match rows {
            ExperimentRows::Compression(rows) => rows
                .iter()
                .map(|r| {
                    json!([
                        r.transfer_set,
                        r.true_labels_seen,
                        r.validation_accuracy,
                        r.test_accuracy
                    ])
                })
                .collect(),
            ExperimentRows::Munge(rows) => rows
                .iter()
                .map(|r| {
                    json!([
                        r.transfer_set,
                        r.multiplier,
                        r.validation_accuracy,
                        r.test_accuracy,
                        r.test_errors
                    ])
                })
                .collect(),
            ExperimentRows::OmitClass { rows, .. } => rows
                .iter()
                .map(|r| {
                    json!([
                        r.student,
                        r.transfer_set,
                        number(r.bias_shift),
                        r.validation_accuracy,
                        r.test_accuracy,
                        number(r.test_accuracy_on_class)
                    ])
                })
                .collect(),
            ExperimentRows::Temperature(rows) => rows
                .iter()
                .map(|r| {
                    json!([
                        r.targets,
                        number(r.temperature),
                        number(r.alpha),
                        r.validation_accuracy,
                        r.test_accuracy,
                        r.test_errors
                    ])
                })
                .collect(),
            ExperimentRows::SmallData(rows) => rows
                .iter()
                .map(|r| {
                    json!([
                        r.transfer_set,
                        r.epochs,
                        number(r.final_train_accuracy),
                        number(r.best_validation_accuracy),
                        number(r.best_epoch.map(|e| e as f64)),
                        r.test_accuracy
                    ])
                })
                .collect(),
        };
        Value::Array(rows)
    }

    #[test]
    fn rows_are_written_as_before_and_read_back() {
        for table in every_experiment() {
            let json = serde_json::to_string_pretty(&table).unwrap();
            let value: Value = serde_json::from_str(&json).unwrap();
            assert_eq!(
                serde_json::to_string_pretty(&value["rows"]).unwrap(),
                serde_json::to_string_pretty(&rows_as_before(&table.rows)).unwrap(),
                "{}",
                table.name()
            );
            assert_eq!(value["name"], table.name());
            // The fields in the order results.json has always had them.
            let positions: Vec<usize> = [
                "name",
                "title",
                "description",
                "settings",
                "columns",
                "rows",
                "findings",
                "chart",
                "comparisons",
            ]
            .iter()
            .map(|key| json.find(&format!("\n  \"{key}\": ")).expect(key))
            .collect();
            assert!(positions.is_sorted(), "{json}");
            let back: ExperimentTable = serde_json::from_str(&json).unwrap();
            assert_eq!(back, table);
        }
        // The one float a count column holds: small-data's best epoch.
        let small = &every_experiment()[4];
        assert!(
            serde_json::to_string(small)
                .unwrap()
                .contains(",12,0.9,null,7.0,0.55]")
        );
    }

    #[test]
    fn columns_follow_the_rows() {
        let tables = every_experiment();
        let labels = |table: &ExperimentTable| -> Vec<String> {
            table.columns().into_iter().map(|c| c.label).collect()
        };
        assert_eq!(labels(&tables[2]).last().unwrap(), "test accuracy on Dress");
        for table in &tables {
            for row in table.cells() {
                assert_eq!(row.len(), table.columns().len(), "{}", table.name());
            }
        }
        assert_eq!(labels(&tables[3])[..3], ["targets", "T", "alpha"]);
    }

    #[test]
    fn rows_that_do_not_fit_the_experiment_are_refused() {
        let json = serde_json::to_value(&every_experiment()[0]).unwrap();
        let refused = |edit: &dyn Fn(&mut Value)| -> String {
            let mut json = json.clone();
            edit(&mut json);
            serde_json::from_value::<ExperimentTable>(json)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            refused(&|j| {
                j["rows"][0].as_array_mut().unwrap().pop();
            }),
            "experiment row 0: 3 cells, expected 4"
        );
        assert_eq!(
            refused(&|j| j["rows"][0][1] = json!(0.5)),
            "experiment row 0: expected a whole number, found 0.5"
        );
        assert_eq!(
            refused(&|j| j["rows"][0][0] = json!(3)),
            "experiment row 0: expected text, found 3"
        );
        assert!(
            refused(&|j| j["name"] = json!("colour"))
                .starts_with("experiment.name = \"colour\": expected one of compression, munge")
        );
        assert!(
            refused(&|j| j["columns"][1]["label"] = json!("labels")).starts_with(
                "experiment compression: columns [transfer set (Text), labels (Count)"
            )
        );
    }

    #[test]
    fn non_finite_numbers_are_written_as_null() {
        assert_eq!(Cell::real(f64::NAN), Cell::Empty);
        assert_eq!(Cell::real(f64::INFINITY), Cell::Empty);
        assert_eq!(Cell::optional_real(Some(0.25)), Cell::Real(0.25));
        let mut table = every_experiment().remove(0);
        let ExperimentRows::Compression(rows) = &mut table.rows else {
            unreachable!()
        };
        rows[0].validation_accuracy = f64::NAN;
        let json = serde_json::to_string(&table).unwrap();
        assert!(json.contains(",100,null,0.625]"), "{json}");
        let back: ExperimentTable = serde_json::from_str(&json).unwrap();
        let ExperimentRows::Compression(rows) = &back.rows else {
            unreachable!()
        };
        assert!(rows[0].validation_accuracy.is_nan());
    }
}
