//! Reader for the user's own tabular data: a CSV file of numeric feature columns and one
//! label column.
//!
//! - The first row is a header when the setting says so, or (when it does not) when none
//!   of its fields is a number, or some field is not a number where the second row has one.
//! - The label column is named by header or 0-based index; by default the column named
//!   `label` (any case), else the last column. Every other column is a feature and must hold
//!   finite numbers in every row.
//! - Labels may be numbers or any text. The distinct values of the training file become
//!   the classes in sorted order (numerically when all are numbers), named by their values.
//! - Features stay f32; [`FeatureScaling`] standardises them per column with the training
//!   split's mean and standard deviation (a constant column is only centred).

use std::cmp::Ordering;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::dataset::{Dataset, Storage};

/// Which column holds the labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LabelColumn {
    /// 0-based position.
    Index(usize),
    /// Header name.
    Name(String),
}

impl FromStr for LabelColumn {
    type Err = std::convert::Infallible;

    /// Digits are an index, anything else a header name.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text.trim().parse::<usize>() {
            Ok(index) => LabelColumn::Index(index),
            Err(_) => LabelColumn::Name(text.trim().to_string()),
        })
    }
}

impl fmt::Display for LabelColumn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabelColumn::Index(index) => write!(f, "{index}"),
            LabelColumn::Name(name) => f.write_str(name),
        }
    }
}

/// How to read a CSV file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CsvOptions {
    /// The label column (absent: `label`, else the last column).
    pub label: Option<LabelColumn>,
    /// Whether the first row is a header (absent: detected).
    pub header: Option<bool>,
}

/// Everything that can be wrong with a CSV file. Each message names the file, the line or
/// column, and what was expected, on one line.
#[derive(Debug, Error)]
pub enum CsvError {
    #[error("{path}: cannot read file: {cause}")]
    Io {
        path: PathBuf,
        // In the message, not the error chain, so that `{:#}` names it once.
        cause: std::io::Error,
    },
    #[error("{path}: line {line}: {message}")]
    Syntax {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error("{path}: the file is empty, expected rows of numeric features and a label column")]
    Empty { path: PathBuf },
    #[error("{path}: only a header row, expected data rows below it")]
    NoRows { path: PathBuf },
    #[error("{path}: line {line}: {found} fields, expected {expected} like the first row")]
    Ragged {
        path: PathBuf,
        line: u64,
        found: usize,
        expected: usize,
    },
    #[error(
        "{path}: line {line}, column {column}: `{text}` is not a number (feature columns must be numeric)"
    )]
    NotNumeric {
        path: PathBuf,
        line: u64,
        column: String,
        text: String,
    },
    #[error(
        "{path}: line {line}, column {column}: `{text}` is not finite, expected a finite number (no NaN or infinity)"
    )]
    NotFinite {
        path: PathBuf,
        line: u64,
        column: String,
        text: String,
    },
    #[error("{path}: line {line}, column {column}: the label is empty")]
    EmptyLabel {
        path: PathBuf,
        line: u64,
        column: String,
    },
    #[error("{path}: label column {wanted} not found; the columns are: {available}")]
    NoLabelColumn {
        path: PathBuf,
        wanted: String,
        available: String,
    },
    #[error("{path}: only the label column {column}, expected at least one feature column")]
    NoFeatures { path: PathBuf, column: String },
    #[error(
        "{path}: label column {column}: every row has the label `{value}`, expected at least 2 classes"
    )]
    SingleClass {
        path: PathBuf,
        column: String,
        value: String,
    },
    #[error("{path}: label column {column}: {found} distinct labels, expected at most 256 classes")]
    TooManyClasses {
        path: PathBuf,
        column: String,
        found: usize,
    },
    #[error(
        "{path}: line {line}, column {column}: label `{value}` does not occur in the training file (classes: {classes})"
    )]
    UnknownLabel {
        path: PathBuf,
        line: u64,
        column: String,
        value: String,
        classes: String,
    },
    #[error("{path}: columns: found {found}, expected those of the training file: {expected}")]
    ColumnsDiffer {
        path: PathBuf,
        found: String,
        expected: String,
    },
}

/// A CSV file read into raw features and label texts.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvTable {
    pub path: PathBuf,
    /// The header's names, or `None` without a header.
    pub header: Option<Vec<String>>,
    /// Position of the label column.
    pub label_index: usize,
    /// Feature values, `rows * feature_count` row-major, as in the file.
    pub features: Vec<f32>,
    pub feature_count: usize,
    /// The label of each row, as written (trimmed).
    pub labels: Vec<String>,
    /// The 1-based line of each row, for messages.
    pub lines: Vec<u64>,
}

impl CsvTable {
    /// How messages name feature `feature` (0-based among the features): its header name
    /// in backticks, else its column's position in the file.
    pub fn feature_column_name(&self, feature: usize) -> String {
        let index = if feature < self.label_index {
            feature
        } else {
            feature + 1
        };
        self.column_name(index)
    }

    /// How messages name column `index`: its header name in backticks, else its position.
    fn column_name(&self, index: usize) -> String {
        describe_column(self.header.as_deref(), index)
    }

    /// The classes of this (training) file: its distinct labels in sorted order
    /// (numerically when all are numbers). Numerically equal labels (`1`, `1.0`, `01`) are
    /// one class, named by the spelling that sorts first.
    pub fn class_names(&self) -> Result<Vec<String>, CsvError> {
        let mut names: Vec<String> = self.labels.clone();
        let all_numbers = names.iter().all(|name| label_number(name).is_some());
        names.sort_by(|a, b| {
            if all_numbers {
                let (x, y) = (label_number(a).unwrap(), label_number(b).unwrap());
                x.total_cmp(&y).then_with(|| a.cmp(b))
            } else {
                a.cmp(b)
            }
        });
        names.dedup_by(|later, earlier| same_label(later, earlier));
        if !all_numbers {
            // Text order may separate equal numbers ("1", "1.0" around "1a"): merge those too.
            let mut merged: Vec<String> = Vec::with_capacity(names.len());
            for name in names {
                if !merged.iter().any(|kept| same_label(kept, &name)) {
                    merged.push(name);
                }
            }
            names = merged;
        }
        let column = self.column_name(self.label_index);
        match names.len() {
            0 | 1 => Err(CsvError::SingleClass {
                path: self.path.clone(),
                column,
                value: names.pop().unwrap_or_default(),
            }),
            found if found > 256 => Err(CsvError::TooManyClasses {
                path: self.path.clone(),
                column,
                found,
            }),
            _ => Ok(names),
        }
    }

    /// The table as a [`Dataset`] with the given classes (raw, unstandardised features).
    pub fn to_dataset(&self, class_names: &[String]) -> Result<Dataset, CsvError> {
        let mut labels = Vec::with_capacity(self.labels.len());
        for (value, &line) in self.labels.iter().zip(&self.lines) {
            let Some(class) = class_names
                .iter()
                .position(|name| name == value)
                .or_else(|| class_names.iter().position(|name| same_label(name, value)))
            else {
                return Err(CsvError::UnknownLabel {
                    path: self.path.clone(),
                    line,
                    column: self.column_name(self.label_index),
                    value: value.clone(),
                    classes: class_names.join(", "),
                });
            };
            labels.push(class as u8);
        }
        Ok(Dataset::from_features(
            self.features.clone(),
            labels,
            self.feature_count,
            class_names.to_vec(),
        ))
    }

    /// Error unless `other` (a test file) has the columns of `self` (the training file).
    pub fn check_same_columns(&self, other: &CsvTable) -> Result<(), CsvError> {
        let columns = |table: &CsvTable| match &table.header {
            Some(names) => names.join(", "),
            None => format!("{} unnamed columns", table.feature_count + 1),
        };
        let same_count = self.feature_count == other.feature_count;
        let same_names = match (&self.header, &other.header) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        if same_count && same_names && self.label_index == other.label_index {
            return Ok(());
        }
        Err(CsvError::ColumnsDiffer {
            path: other.path.clone(),
            found: columns(other),
            expected: columns(self),
        })
    }
}

fn describe_column(header: Option<&[String]>, index: usize) -> String {
    match header.and_then(|names| names.get(index)) {
        Some(name) => format!("`{name}`"),
        None => index.to_string(),
    }
}

/// A label's value when it is a finite number (`1`, `1.0`, `-0`, `1e0`), else `None`;
/// `-0` counts as 0.
fn label_number(text: &str) -> Option<f64> {
    text.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .map(|v| v + 0.0)
}

/// Whether two labels name one class: the same text, or numerically equal numbers.
fn same_label(a: &str, b: &str) -> bool {
    a == b || matches!((label_number(a), label_number(b)), (Some(x), Some(y)) if x == y)
}

fn is_number(text: &str) -> bool {
    text.parse::<f64>().is_ok()
}

/// Whether `first` is a header row, judged against the row after it.
fn looks_like_header(first: &[String], second: Option<&[String]>) -> bool {
    if first.iter().all(|field| !is_number(field)) {
        return true;
    }
    second.is_some_and(|second| {
        first
            .iter()
            .zip(second)
            .any(|(a, b)| !is_number(a) && is_number(b))
    })
}

/// Where the label column is.
fn find_label_column(
    path: &Path,
    header: Option<&[String]>,
    columns: usize,
    wanted: Option<&LabelColumn>,
) -> Result<usize, CsvError> {
    let available = || match header {
        Some(names) => names
            .iter()
            .map(|name| format!("`{name}`"))
            .collect::<Vec<_>>()
            .join(", "),
        None => format!(
            "{columns} unnamed columns (no header row), 0 to {}",
            columns - 1
        ),
    };
    let missing = |wanted: String| CsvError::NoLabelColumn {
        path: path.to_path_buf(),
        wanted,
        available: available(),
    };
    match wanted {
        Some(LabelColumn::Index(index)) if *index < columns => Ok(*index),
        Some(LabelColumn::Index(index)) => Err(missing(index.to_string())),
        Some(LabelColumn::Name(name)) => header
            .and_then(|names| names.iter().position(|n| n == name))
            .ok_or_else(|| missing(format!("`{name}`"))),
        None => Ok(header
            .and_then(|names| names.iter().position(|n| n.eq_ignore_ascii_case("label")))
            .unwrap_or(columns - 1)),
    }
}

/// Reads a CSV file: header, label column, finite numeric features.
pub fn read_csv(path: &Path, options: &CsvOptions) -> Result<CsvTable, CsvError> {
    let mut rows = read_records(path)?;
    if rows.is_empty() {
        return Err(CsvError::Empty {
            path: path.to_path_buf(),
        });
    }
    let has_header = options
        .header
        .unwrap_or_else(|| looks_like_header(&rows[0].1, rows.get(1).map(|r| r.1.as_slice())));
    let header = has_header.then(|| rows.remove(0).1);
    if rows.is_empty() {
        return Err(CsvError::NoRows {
            path: path.to_path_buf(),
        });
    }
    let columns = header.as_ref().map_or(rows[0].1.len(), Vec::len);
    let label_index = find_label_column(path, header.as_deref(), columns, options.label.as_ref())?;
    if columns < 2 {
        return Err(CsvError::NoFeatures {
            path: path.to_path_buf(),
            column: describe_column(header.as_deref(), label_index),
        });
    }
    let feature_count = columns - 1;
    let mut table = CsvTable {
        path: path.to_path_buf(),
        header,
        label_index,
        features: Vec::with_capacity(rows.len() * feature_count),
        feature_count,
        labels: Vec::with_capacity(rows.len()),
        lines: Vec::with_capacity(rows.len()),
    };
    for (line, fields) in rows {
        table.push_row(line, fields)?;
    }
    Ok(table)
}

/// Every record of the file, fields trimmed, with the 1-based line it starts on.
fn read_records(path: &Path) -> Result<Vec<(u64, Vec<String>)>, CsvError> {
    let bytes = std::fs::read(path).map_err(|source| CsvError::Io {
        path: path.to_path_buf(),
        cause: source,
    })?;
    // Line numbers come from byte offsets: the reader counts no blank lines, and a record
    // "starts" at the blank lines before it.
    let newlines: Vec<usize> = bytes
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'\n')
        .map(|(at, _)| at)
        .collect();
    let line_at = |position: Option<&csv::Position>| {
        position.map_or(0, |p| {
            let mut at = p.byte() as usize;
            while at < bytes.len() && matches!(bytes[at], b'\n' | b'\r') {
                at += 1;
            }
            newlines.partition_point(|&newline| newline < at) as u64 + 1
        })
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes.as_slice());
    let mut rows: Vec<(u64, Vec<String>)> = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|err| syntax_error(path, line_at(err.position()), err))?;
        let line = line_at(record.position());
        rows.push((line, record.iter().map(str::to_string).collect()));
    }
    Ok(rows)
}

impl CsvTable {
    /// Appends one data row (file line `line`) after checking its width, its label and
    /// every feature; fields are checked left to right, so the first bad one is reported.
    fn push_row(&mut self, line: u64, fields: Vec<String>) -> Result<(), CsvError> {
        let columns = self.feature_count + 1;
        if fields.len() != columns {
            return Err(CsvError::Ragged {
                path: self.path.clone(),
                line,
                found: fields.len(),
                expected: columns,
            });
        }
        for (index, text) in fields.into_iter().enumerate() {
            let column = || describe_column(self.header.as_deref(), index);
            if index == self.label_index {
                if text.is_empty() {
                    return Err(CsvError::EmptyLabel {
                        path: self.path.clone(),
                        line,
                        column: column(),
                    });
                }
                self.labels.push(text);
                continue;
            }
            let value = parse_feature(&self.path, line, column, text)?;
            self.features.push(value);
        }
        self.lines.push(line);
        Ok(())
    }
}

/// A feature field's value: a finite number, else an error naming its line and column.
fn parse_feature(
    path: &Path,
    line: u64,
    column: impl Fn() -> String,
    text: String,
) -> Result<f32, CsvError> {
    let Ok(value) = text.parse::<f32>() else {
        return Err(CsvError::NotNumeric {
            path: path.to_path_buf(),
            line,
            column: column(),
            text,
        });
    };
    if !value.is_finite() {
        return Err(CsvError::NotFinite {
            path: path.to_path_buf(),
            line,
            column: column(),
            text,
        });
    }
    Ok(value)
}

fn syntax_error(path: &Path, line: u64, err: csv::Error) -> CsvError {
    let message = match err.kind() {
        csv::ErrorKind::Utf8 { .. } => "invalid UTF-8 text".to_string(),
        csv::ErrorKind::Io(io) => io.to_string(),
        _ => err.to_string(),
    };
    CsvError::Syntax {
        path: path.to_path_buf(),
        line,
        message: message.replace('\n', " "),
    }
}

/// A feature value that does not standardise to a finite f32.
#[derive(Debug, Clone, PartialEq)]
pub struct NotFiniteFeature {
    /// 0-based feature (not file column) index.
    pub feature: usize,
    /// 0-based example index in the data set that was scaled.
    pub example: usize,
    pub value: f32,
    pub mean: f32,
    pub std: f32,
}

/// Per-column standardisation: `(x - mean) / std`, or `x - mean` where `std` is 0.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureScaling {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl FeatureScaling {
    /// The mean and (population) standard deviation of each feature of `data`.
    pub fn fit(data: &Dataset) -> FeatureScaling {
        let width = data.width;
        let Storage::Features(values) = &data.images else {
            panic!("FeatureScaling::fit needs tabular data");
        };
        let count = data.n.max(1) as f64;
        let mut mean = vec![0f64; width];
        for row in values.chunks_exact(width) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += f64::from(v);
            }
        }
        mean.iter_mut().for_each(|m| *m /= count);
        let mut variance = vec![0f64; width];
        for row in values.chunks_exact(width) {
            for ((s, &v), m) in variance.iter_mut().zip(row).zip(&mean) {
                *s += (f64::from(v) - m).powi(2);
            }
        }
        FeatureScaling {
            mean: mean.iter().map(|&m| m as f32).collect(),
            std: variance
                .iter()
                .map(|&s| (s / count).sqrt() as f32)
                .collect(),
        }
    }

    /// Standardises `data`'s features in place, computing in f64. A value whose
    /// standardised form is not a finite f32 (a huge value far from a narrow column, or
    /// values near f32's limits) leaves `data` unchanged and is returned.
    pub fn apply(&self, data: &mut Dataset) -> Result<(), NotFiniteFeature> {
        let Storage::Features(values) = &mut data.images else {
            panic!("FeatureScaling::apply needs tabular data");
        };
        let width = self.mean.len();
        let scaled: Vec<f32> = values
            .iter()
            .enumerate()
            .map(|(i, &v)| self.standardise(i % width, v))
            .collect();
        if let Some(at) = scaled.iter().position(|v| !v.is_finite()) {
            return Err(NotFiniteFeature {
                feature: at % width,
                example: at / width,
                value: values[at],
                mean: self.mean[at % width],
                std: self.std[at % width],
            });
        }
        *values = scaled;
        Ok(())
    }

    fn standardise(&self, feature: usize, value: f32) -> f32 {
        let centred = f64::from(value) - f64::from(self.mean[feature]);
        let std = f64::from(self.std[feature]);
        (match std.partial_cmp(&0.0) {
            Some(Ordering::Greater) => centred / std,
            _ => centred,
        }) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::temp_dir;

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn error_text<T: std::fmt::Debug>(result: Result<T, CsvError>) -> String {
        let text = result.expect_err("expected an error").to_string();
        assert!(!text.contains('\n'), "one line: {text}");
        text
    }

    #[test]
    fn reads_header_label_and_string_classes() {
        let dir = temp_dir("csv-ok");
        let path = write(
            &dir,
            "flowers.csv",
            "width,species,height\n1.5,setosa,2\n -3e-1 , virginica ,4\n\n0,setosa,1e2\n",
        );
        // No column is named `label`, so the last one is taken and `species` is a feature.
        let message = error_text(read_csv(&path, &CsvOptions::default()));
        assert!(
            message.contains("line 2, column `species`: `setosa` is not a number"),
            "{message}"
        );
        let options = CsvOptions {
            label: Some("species".parse().unwrap()),
            header: None,
        };
        let table = read_csv(&path, &options).unwrap();
        assert_eq!(table.label_index, 1);
        assert_eq!(table.features, vec![1.5, 2.0, -0.3, 4.0, 0.0, 100.0]);
        assert_eq!(table.lines, vec![2, 3, 5]);
        let classes = table.class_names().unwrap();
        assert_eq!(classes, vec!["setosa", "virginica"]);
        let data = table.to_dataset(&classes).unwrap();
        assert_eq!(data.labels, vec![0, 1, 0]);
        assert_eq!(data.example_shape(), [1, 1, 2]);
        assert_eq!(data.class_names, classes);
    }

    #[test]
    fn integer_labels_sort_numerically_and_headers_are_detected() {
        let dir = temp_dir("csv-int");
        // No header; the default label column is the last one.
        let path = write(&dir, "plain.csv", "0.5,1,10\n0.25,2,2\n1,3,1\n");
        let table = read_csv(&path, &CsvOptions::default()).unwrap();
        assert!(table.header.is_none());
        assert_eq!(table.class_names().unwrap(), vec!["1", "2", "10"]);
        assert_eq!(
            table
                .to_dataset(&table.class_names().unwrap())
                .unwrap()
                .labels,
            vec![2, 1, 0]
        );
        // A column named `label` wins over the last column, in any case.
        let path = write(&dir, "named.csv", "Label,x\n1,0.5\n0,0.7\n");
        let table = read_csv(&path, &CsvOptions::default()).unwrap();
        assert_eq!((table.label_index, table.feature_count), (0, 1));
        // A header with a numeric name is found by comparing with the next row.
        let path = write(&dir, "numbered.csv", "1,x2,y\n0.5,0.5,a\n0.1,0.2,b\n");
        assert!(
            read_csv(&path, &CsvOptions::default())
                .unwrap()
                .header
                .is_some()
        );
        // The setting overrides detection.
        let path = write(&dir, "forced.csv", "1,2,0\n3,4,1\n");
        let forced = CsvOptions {
            header: Some(true),
            ..CsvOptions::default()
        };
        let table = read_csv(&path, &forced).unwrap();
        assert_eq!(table.header, Some(vec!["1".into(), "2".into(), "0".into()]));
        assert_eq!(table.labels, vec!["1"]);
    }

    #[test]
    fn bad_files_name_the_file_line_and_column() {
        let dir = temp_dir("csv-bad");
        let cases: [(&str, &str, CsvOptions, &[&str]); 10] = [
            (
                "empty.csv",
                "",
                CsvOptions::default(),
                &["empty.csv: the file is empty"],
            ),
            (
                "header.csv",
                "a,b,label\n",
                CsvOptions::default(),
                &["header.csv: only a header row"],
            ),
            (
                "ragged.csv",
                "a,b,label\n1,2,x\n3,y\n",
                CsvOptions::default(),
                &["ragged.csv: line 3: 2 fields, expected 3"],
            ),
            (
                "text.csv",
                "a,b,label\n1,2,x\n3,abc,y\n",
                CsvOptions::default(),
                &["text.csv: line 3, column `b`: `abc` is not a number"],
            ),
            (
                "nan.csv",
                "a,b,label\n1,NaN,x\n3,4,y\n",
                CsvOptions::default(),
                &["nan.csv: line 2, column `b`: `NaN` is not finite"],
            ),
            (
                "inf.csv",
                "1,2,x\n3,-inf,y\n",
                CsvOptions::default(),
                &["inf.csv: line 2, column 1: `-inf` is not finite"],
            ),
            (
                "one.csv",
                "a,label\n1,x\n2,x\n",
                CsvOptions::default(),
                &[
                    "one.csv: label column `label`: every row has the label `x`, expected at least 2 classes",
                ],
            ),
            (
                "nolabel.csv",
                "a,b,c\n1,2,x\n3,4,y\n",
                CsvOptions {
                    label: Some("kind".parse().unwrap()),
                    header: None,
                },
                &["nolabel.csv: label column `kind` not found; the columns are: `a`, `b`, `c`"],
            ),
            (
                "index.csv",
                "1,2,x\n3,4,y\n",
                CsvOptions {
                    label: Some(LabelColumn::Index(5)),
                    header: None,
                },
                &[
                    "index.csv: label column 5 not found",
                    "3 unnamed columns (no header row), 0 to 2",
                ],
            ),
            (
                "nofeatures.csv",
                "label\nx\ny\n",
                CsvOptions::default(),
                &["nofeatures.csv: only the label column `label`"],
            ),
        ];
        for (name, text, options, needles) in cases {
            let path = write(&dir, name, text);
            let result = read_csv(&path, &options).and_then(|t| t.class_names().map(|_| t));
            let message = error_text(result);
            for needle in needles {
                assert!(
                    message.contains(needle),
                    "{name}: missing {needle:?} in {message}"
                );
            }
        }
        let message = error_text(read_csv(
            &dir.path().join("absent.csv"),
            &CsvOptions::default(),
        ));
        assert!(
            message.contains("absent.csv: cannot read file"),
            "{message}"
        );
        let path = dir.path().join("latin1.csv");
        std::fs::write(&path, b"a,label\n1,x\n\n2,caf\xe9\n").unwrap();
        let message = error_text(read_csv(&path, &CsvOptions::default()));
        assert!(
            message.contains("latin1.csv: line 4: invalid UTF-8 text"),
            "{message}"
        );
        let path = write(&dir, "empty-label.csv", "a,label\n1,x\n2,\n3,y\n");
        let message = error_text(read_csv(&path, &CsvOptions::default()));
        assert!(
            message.contains("empty-label.csv: line 3, column `label`: the label is empty"),
            "{message}"
        );
    }

    #[test]
    fn a_test_file_must_match_the_training_file() {
        let dir = temp_dir("csv-test-file");
        let train = read_csv(
            &write(&dir, "train.csv", "a,b,label\n1,2,x\n3,4,y\n"),
            &CsvOptions::default(),
        )
        .unwrap();
        let classes = train.class_names().unwrap();
        let test = read_csv(
            &write(&dir, "test.csv", "a,b,label\n1,2,y\n3,4,z\n"),
            &CsvOptions::default(),
        )
        .unwrap();
        train.check_same_columns(&test).unwrap();
        let message = error_text(test.to_dataset(&classes));
        assert!(
            message.contains("test.csv: line 3, column `label`: label `z` does not occur in the training file (classes: x, y)"),
            "{message}"
        );
        let other = read_csv(
            &write(&dir, "other.csv", "a,c,label\n1,2,y\n"),
            &CsvOptions::default(),
        )
        .unwrap();
        let message = error_text(train.check_same_columns(&other));
        assert!(
            message.contains("other.csv: columns: found a, c, label, expected those of the training file: a, b, label"),
            "{message}"
        );
    }

    #[test]
    fn scaling_standardises_with_the_fitted_statistics() {
        let names = vec!["a".to_string(), "b".to_string()];
        // Column 0: 1, 3 (mean 2, std 1); column 1 constant 5 (only centred).
        let train = Dataset::from_features(vec![1.0, 5.0, 3.0, 5.0], vec![0, 1], 2, names.clone());
        let scaling = FeatureScaling::fit(&train);
        assert_eq!(scaling.mean, vec![2.0, 5.0]);
        assert_eq!(scaling.std, vec![1.0, 0.0]);
        let mut test = Dataset::from_features(vec![4.0, 6.0], vec![1], 2, names.clone());
        scaling.apply(&mut test).unwrap();
        assert_eq!(test.to_f32(), vec![2.0, 1.0]);

        // Values near f32's limits: the statistics in f64 stay finite, and so do these.
        let huge = Dataset::from_features(
            vec![3.4e38, 0.0, -3.4e38, 0.0],
            vec![0, 1],
            2,
            names.clone(),
        );
        let scaling = FeatureScaling::fit(&huge);
        assert_eq!(scaling.mean[0], 0.0);
        let mut copy = huge.clone();
        scaling.apply(&mut copy).unwrap();
        assert_eq!(copy.to_f32(), vec![1.0, 0.0, -1.0, 0.0]);
        // A huge value against a narrow column does not fit: refused, data unchanged.
        let narrow = Dataset::from_features(vec![0.0, 0.0, 1.0, 0.0], vec![0, 1], 2, names.clone());
        let scaling = FeatureScaling::fit(&narrow);
        let mut wild = Dataset::from_features(vec![0.5, 0.0, 3.0e38, 0.0], vec![0, 1], 2, names);
        let bad = scaling.apply(&mut wild).unwrap_err();
        assert_eq!((bad.feature, bad.example, bad.value), (0, 1, 3.0e38));
        assert_eq!(wild.to_f32(), vec![0.5, 0.0, 3.0e38, 0.0]);
    }

    #[test]
    fn numerically_equal_labels_are_one_class() {
        let dir = temp_dir("csv-equal-labels");
        let path = write(
            &dir,
            "t.csv",
            "x,label
1,1
2,1.0
3,2
4,01
5,-0
6,0
",
        );
        let table = read_csv(&path, &CsvOptions::default()).unwrap();
        let classes = table.class_names().unwrap();
        assert_eq!(classes, vec!["-0", "01", "2"]);
        let data = table.to_dataset(&classes).unwrap();
        assert_eq!(data.labels, vec![1, 1, 2, 1, 0, 0]);
        // Mixed with text, equal numbers still merge.
        let path = write(
            &dir,
            "m.csv",
            "x,label
1,1
2,1a
3,1.0
",
        );
        let table = read_csv(&path, &CsvOptions::default()).unwrap();
        assert_eq!(table.class_names().unwrap(), vec!["1", "1a"]);
        assert_eq!(table.feature_column_name(0), "`x`");
    }
}
