//! The run's data set, read and split as its settings say: the splits a study trains,
//! selects and tests on, and the pool of training examples left over.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::locate::{self, CurlFetch, DatasetSource, Fetch, SearchEnv};
use super::split::{Split, subsample, train_validation_split};
use super::tabular::{CsvTable, FeatureScaling, read_csv};
use super::{Dataset, DatasetKind};
use crate::config::{CsvConfig, RunConfig};
use crate::seeds::derive_seed;

/// Stands in for the downloader when downloads are not allowed.
pub struct NoDownload;

impl Fetch for NoDownload {
    fn fetch(&self, _: &str, _: &Path, _: u64) -> Result<(), String> {
        Err("downloads disabled by --no-download".into())
    }
}

/// The data of a run, split and ready for training.
#[derive(Debug, Clone)]
pub struct StudyData {
    /// The data set's name, e.g. "Fashion-MNIST", or "CSV wine.csv" for the user's own file.
    pub name: String,
    /// Folder the data files were read from (the training file for CSV data).
    pub source_dir: PathBuf,
    /// How the data was found (for the plan line).
    pub origin: String,
    pub train: Dataset,
    pub validation: Dataset,
    pub test: Dataset,
    /// The official training examples in neither `train` nor `validation`, labels kept
    /// (empty unless `data.train_size` or `data.max_labeled` leaves some out): unlabeled
    /// transfer data for `distill.unlabeled` and the experiments.
    pub pool: Dataset,
    /// CSV data: the standardisation fitted on `train` and applied to every split and the
    /// pool (a model trained here expects features scaled this way).
    pub feature_scaling: Option<FeatureScaling>,
}

impl StudyData {
    /// How the examples look, for messages: "images of 28x28", "images of 3x32x32",
    /// "rows of 13 features".
    pub fn example_description(&self) -> String {
        let data = &self.train;
        if data.is_tabular() {
            let plural = if data.width == 1 { "" } else { "s" };
            format!("rows of {} feature{plural}", data.width)
        } else {
            format!("images of {}", data.image_size_text())
        }
    }
}

/// Finds (or, unless `no_download`, downloads) the configured data set, reads it and splits
/// it as the configuration says (seeded by `config.seed`).
pub fn load_data(config: &RunConfig, no_download: bool) -> Result<StudyData> {
    match config.data.dataset.source() {
        Some(source) => load_known(config, source, no_download),
        None => load_csv(config),
    }
}

fn load_known(config: &RunConfig, source: &DatasetSource, no_download: bool) -> Result<StudyData> {
    let env = SearchEnv::from_process();
    let fetcher: &dyn Fetch = if no_download { &NoDownload } else { &CurlFetch };
    let files = locate::locate_or_download(config.data.dir.as_deref(), &env, source, fetcher)?;
    let (full_train, full_test) = files.load(source)?;
    split_data(
        config,
        source.name.to_string(),
        files.dir.clone(),
        files.origin.to_string(),
        full_train,
        full_test,
    )
}

/// The CSV data set: the training file, a test file or a held-out part of the training
/// file, then the usual split, then standardisation with the training split's statistics.
fn load_csv(config: &RunConfig) -> Result<StudyData> {
    debug_assert_eq!(config.data.dataset, DatasetKind::Csv);
    let csv = &config.data.csv;
    let Some(train_path) = &csv.train else {
        bail!(
            "the csv data set needs its training file: set data.csv.train or pass --csv-train FILE"
        );
    };
    let files = read_csv_files(config, csv, train_path)?;
    let file_name = train_path.file_name().map_or_else(
        || train_path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut data = split_data(
        config,
        format!("CSV {file_name}"),
        train_path.clone(),
        files.origin,
        files.train,
        files.test,
    )?;
    standardise(&mut data, train_path, &files.table)?;
    Ok(data)
}

/// The CSV training file's table, and its examples as the full training and test sets.
struct CsvFiles {
    table: CsvTable,
    train: Dataset,
    test: Dataset,
    /// Where the test set came from (for the plan line).
    origin: String,
}

/// Reads the training file, and the test file or else holds out `test_fraction` of the
/// training file's rows (stratified where the data settings say so).
fn read_csv_files(config: &RunConfig, csv: &CsvConfig, train_path: &Path) -> Result<CsvFiles> {
    let options = csv.options();
    let table = read_csv(train_path, &options)?;
    let classes = table.class_names()?;
    let all = table.to_dataset(&classes)?;
    if let Some(test_path) = &csv.test {
        let test_table = read_csv(test_path, &options)?;
        table.check_same_columns(&test_table)?;
        return Ok(CsvFiles {
            test: test_table.to_dataset(&classes)?,
            train: all,
            table,
            origin: format!("test file {}", test_path.display()),
        });
    }
    let held_out = ((all.n as f64 * csv.test_fraction).round() as usize).clamp(1, all.n - 1);
    let Split { train, validation } = train_validation_split(
        &all.labels,
        held_out,
        None,
        config.data.stratified,
        derive_seed(config.seed, "csv-test", 0),
    )
    .context("holding out the test part of the CSV file")?;
    Ok(CsvFiles {
        origin: format!(
            "test set: {held_out} of its {} rows held out (data.csv.test_fraction = {})",
            all.n, csv.test_fraction
        ),
        train: all.select(&train),
        test: all.select(&validation),
        table,
    })
}

/// Fits the feature standardisation on the training split and applies it to every split
/// and the pool, refusing a value it would take past f32's range.
fn standardise(data: &mut StudyData, train_path: &Path, table: &CsvTable) -> Result<()> {
    let scaling = FeatureScaling::fit(&data.train);
    for (what, set) in [
        ("training", &mut data.train),
        ("validation", &mut data.validation),
        ("test", &mut data.test),
        ("unused training", &mut data.pool),
    ] {
        scaling.apply(set).map_err(|bad| {
            anyhow::anyhow!(
                "{}: column {}: the value {:e} (example {} of the {what} rows) standardises to a number past f32's range (training mean {:e}, standard deviation {:e}); rescale or drop the column",
                train_path.display(),
                table.feature_column_name(bad.feature),
                bad.value,
                bad.example,
                bad.mean,
                bad.std
            )
        })?;
    }
    data.feature_scaling = Some(scaling);
    Ok(())
}

/// Carves the validation split (and the training subsample) out of the official training
/// set, subsamples the test set, and keeps the rest of the training set as the pool.
fn split_data(
    config: &RunConfig,
    name: String,
    source_dir: PathBuf,
    origin: String,
    full_train: Dataset,
    full_test: Dataset,
) -> Result<StudyData> {
    for (what, set) in [("training", &full_train), ("test", &full_test)] {
        if set.n == 0 {
            bail!(
                "{}: the {name} {what} set has 0 examples; need at least 1",
                source_dir.display()
            );
        }
    }
    let Split { train, validation } = split_training_set(config, &name, &full_train)?;
    let pool = unused(full_train.n, &[&train, &validation]);
    let test_indices = test_subsample(config, &full_test)?;
    Ok(StudyData {
        name,
        train: full_train.select(&train),
        validation: full_train.select(&validation),
        pool: full_train.select(&pool),
        test: full_test.select(&test_indices),
        source_dir,
        origin,
        feature_scaling: None,
    })
}

/// The validation split and the training split (subsampled to `data.train_size` or capped
/// at `data.max_labeled`) of the
/// official training set, refusing a validation split that leaves nothing to train on.
fn split_training_set(config: &RunConfig, name: &str, full_train: &Dataset) -> Result<Split> {
    let data = &config.data;
    let validation_size = data.validation_count(full_train.n);
    let split = train_validation_split(
        &full_train.labels,
        validation_size,
        data.train_count(full_train.n),
        data.stratified,
        config.seed,
    )
    .with_context(|| {
        format!("splitting the {name} training set (see --validation-size and --train-size)")
    })?;
    if split.train.is_empty() {
        match data.validation_size {
            Some(_) => bail!(
                "data.validation_size = {validation_size} takes all {} examples of the {name} training set: none are left to train on",
                full_train.n
            ),
            None => bail!(
                "the {name} training set has {} example(s): too few to split into validation and training examples",
                full_train.n
            ),
        }
    }
    Ok(split)
}

/// The indices below `n` in none of `used`, in order.
fn unused(n: usize, used: &[&[usize]]) -> Vec<usize> {
    let mut taken = vec![false; n];
    for &index in used.iter().copied().flatten() {
        taken[index] = true;
    }
    (0..n).filter(|&i| !taken[i]).collect()
}

/// The test examples evaluated: all, or a (stratified) subsample of `data.test_size`.
fn test_subsample(config: &RunConfig, full_test: &Dataset) -> Result<Vec<usize>> {
    let all_test: Vec<usize> = (0..full_test.n).collect();
    Ok(match config.data.test_size {
        Some(size) if size > full_test.n => {
            bail!(
                "data.test_size = {size}, but the test set has only {} examples",
                full_test.n
            )
        }
        Some(size) => subsample(
            &all_test,
            &full_test.labels,
            size,
            config.data.stratified,
            config.seed,
        ),
        None => all_test,
    })
}

/// Where teacher logits are cached between runs: `$XDG_CACHE_HOME/darkknowledge/teacher-logits`
/// (or `~/.cache/...`, `%LOCALAPPDATA%\darkknowledge\...`); `None` when no such folder is known.
pub fn default_cache_dir() -> Option<PathBuf> {
    let env = SearchEnv::from_process();
    let base = env
        .xdg_cache_home
        .clone()
        .or_else(|| env.home.as_ref().map(|h| h.join(".cache")))
        .or_else(|| env.local_app_data.clone())?;
    Some(base.join("darkknowledge").join("teacher-logits"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Preset;
    use crate::testutil::temp_dir;

    fn names(count: usize) -> Vec<String> {
        (0..count).map(|c| c.to_string()).collect()
    }

    /// The splits of `full` used as both the training and the test set.
    fn split_both(config: &RunConfig, full: &Dataset) -> StudyData {
        let (train, test) = (full.clone(), full.clone());
        split_data(
            config,
            "t".into(),
            PathBuf::new(),
            String::new(),
            train,
            test,
        )
        .unwrap()
    }

    #[test]
    fn the_unused_training_examples_form_the_pool() {
        // Example i has the single feature i, so the splits can be told apart by value.
        let features: Vec<f32> = (0..20).map(|i| i as f32).collect();
        let labels: Vec<u8> = (0..20).map(|i| (i % 2) as u8).collect();
        let full = Dataset::from_features(features, labels, 1, names(2));
        let mut config = RunConfig::preset(Preset::Tiny);
        config.data.validation_size = Some(4);
        config.data.train_size = Some(10);
        config.data.test_size = None;
        let data = split_both(&config, &full);
        assert_eq!((data.train.n, data.validation.n, data.pool.n), (10, 4, 6));
        let mut seen: Vec<f32> = [&data.train, &data.validation, &data.pool]
            .iter()
            .flat_map(|set| set.to_f32())
            .collect();
        seen.sort_by(f32::total_cmp);
        assert_eq!(
            seen,
            full.to_f32(),
            "train, validation and pool partition the set"
        );
        for (i, value) in data.pool.to_f32().iter().enumerate() {
            assert_eq!(
                data.pool.labels[i],
                (*value as usize % 2) as u8,
                "labels kept"
            );
        }
        config.data.train_size = None;
        let data = split_both(&config, &full);
        assert_eq!((data.train.n, data.pool.n), (16, 0));
        assert_eq!(data.pool.example_shape(), [1, 1, 1]);
    }

    #[test]
    fn the_quick_preset_splits_a_small_set_on_its_defaults() {
        let features: Vec<f32> = (0..1_000).map(|i| i as f32).collect();
        let labels: Vec<u8> = (0..1_000).map(|i| (i % 10) as u8).collect();
        let full = Dataset::from_features(features, labels, 1, names(10));
        let config = RunConfig::preset(Preset::Quick);
        let data = split_both(&config, &full);
        assert_eq!(
            (data.train.n, data.validation.n),
            (800, 200),
            "a fifth validates"
        );
    }

    #[test]
    fn empty_sets_are_refused_before_training() {
        let full = Dataset::from_features(vec![0.0, 1.0, 2.0, 3.0], vec![0, 1, 0, 1], 1, names(2));
        let empty = Dataset::from_features(Vec::new(), Vec::new(), 1, names(2));
        let mut config = RunConfig::preset(Preset::Tiny);
        config.data.validation_size = Some(2);
        config.data.train_size = None;
        config.data.test_size = None;
        let split = |train: &Dataset, test: &Dataset, config: &RunConfig| {
            let result = split_data(
                config,
                "Small".into(),
                PathBuf::from("/data/small"),
                String::new(),
                train.clone(),
                test.clone(),
            );
            format!("{:#}", result.expect_err("refused"))
        };
        assert_eq!(
            split(&full, &empty, &config),
            "/data/small: the Small test set has 0 examples; need at least 1"
        );
        assert_eq!(
            split(&empty, &full, &config),
            "/data/small: the Small training set has 0 examples; need at least 1"
        );
        config.data.validation_size = Some(4);
        let text = split(&full, &full, &config);
        assert!(text.contains("none are left to train on"), "{text}");
        config.data.validation_size = None;
        let one = Dataset::from_features(vec![0.0], vec![0], 1, names(2));
        assert_eq!(
            split(&one, &full, &config),
            "the Small training set has 1 example(s): too few to split into validation and training examples"
        );
    }

    #[test]
    fn csv_with_a_test_file_is_standardised_with_the_training_split() {
        let dir = temp_dir("load-csv");
        let train = dir.path().join("train.csv");
        let test = dir.path().join("test.csv");
        let rows: String = (0..40)
            .map(|i| format!("{},{}\n", 10 + i % 4, ["a", "b"][i % 2]))
            .collect();
        std::fs::write(&train, format!("x,label\n{rows}")).unwrap();
        std::fs::write(&test, "x,label\n100,b\n10,a\n").unwrap();
        let mut config = RunConfig::preset(Preset::Tiny);
        config.data.dataset = DatasetKind::Csv;
        config.data.csv.train = Some(train.clone());
        config.data.csv.test = Some(test.clone());
        config.data.validation_size = Some(8);
        config.data.train_size = None;
        config.data.test_size = None;
        let data = load_data(&config, true).unwrap();
        assert_eq!(data.name, "CSV train.csv");
        assert_eq!(data.source_dir, train);
        assert!(data.origin.contains("test.csv"), "{}", data.origin);
        assert_eq!((data.train.n, data.validation.n, data.test.n), (32, 8, 2));
        assert_eq!(data.example_description(), "rows of 1 feature");
        let scaling = data.feature_scaling.as_ref().unwrap();
        let expected = (100.0 - scaling.mean[0]) / scaling.std[0];
        assert_eq!(data.test.example_f32(0), vec![expected]);
        assert_eq!(data.test.labels, vec![1, 0]);

        // Without a test file, a stratified fifth of the file is held out.
        config.data.csv.test = None;
        let data = load_data(&config, true).unwrap();
        assert_eq!((data.train.n + data.validation.n, data.test.n), (32, 8));
        assert_eq!(data.test.class_counts(), vec![4, 4]);
        assert!(
            data.origin.contains("8 of its 40 rows held out"),
            "{}",
            data.origin
        );
    }
}
