//! Command-line flags that override a run's settings.

use std::path::PathBuf;

use super::{Experiment, OptimizerKind, Preset, RunConfig, ScheduleKind};
use crate::data::DatasetKind;
use crate::data::tabular::LabelColumn;

/// Command-line overrides: each flag, when given, replaces the setting from the preset and
/// the config file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Overrides {
    /// Preset of defaults: default (laptop GPU), quick (software Vulkan such as lavapipe), tiny (CI smoke test)
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// Run one of the papers' experiments instead of the standard comparison
    #[arg(long, value_enum, value_name = "NAME")]
    pub experiment: Option<Experiment>,
    /// Data set: fashion-mnist, mnist, kmnist, cifar10, or csv (your own file, see --csv-train)
    #[arg(long, value_enum, value_name = "NAME")]
    pub dataset: Option<DatasetKind>,
    /// Folder holding the data set's files, or one subfolder per data set (fashion-mnist,
    /// mnist, kmnist, cifar10): the IDX files, or CIFAR-10's cifar-10-batches-bin (skips the search)
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// CSV data set: the training file (numeric feature columns and one label column)
    #[arg(long, value_name = "FILE")]
    pub csv_train: Option<PathBuf>,
    /// CSV data set: a test file with the same columns [default: hold out part of the training file]
    #[arg(long, value_name = "FILE")]
    pub csv_test: Option<PathBuf>,
    /// CSV data set: the label column, a header name or a 0-based index [default: `label`, else the last column]
    #[arg(long, value_name = "COLUMN")]
    pub csv_label: Option<LabelColumn>,
    /// CSV data set: whether the first row is a header [default: detected]
    #[arg(long, value_name = "BOOL")]
    pub csv_header: Option<bool>,
    /// Run folder for checkpoints, results.json and report.html [default: runs/<UTC timestamp>]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Seed of the split, initialisation, shuffling, dropout and jitter
    #[arg(long, allow_negative_numbers = true)]
    pub seed: Option<u64>,
    /// Number of teachers in the ensemble
    #[arg(long, value_name = "K", allow_negative_numbers = true)]
    pub teachers: Option<usize>,
    /// Teacher architecture, e.g. 784-1200-1200-10 or c16k3-c16k3-p2-c32k3-c32k3-p2-256-10
    #[arg(long, value_name = "SPEC")]
    pub teacher_spec: Option<String>,
    /// Student architecture, e.g. 784-256-256-10
    #[arg(long, value_name = "SPEC")]
    pub student_spec: Option<String>,
    /// Epochs of both teachers and students (the specific flags below win)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub epochs: Option<usize>,
    /// Teacher training epochs
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub teacher_epochs: Option<usize>,
    /// Student training epochs
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub student_epochs: Option<usize>,
    /// Training length of teachers and students in optimisation steps, whatever the data
    /// size (replaces the epochs; the specific flags below win)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub steps: Option<usize>,
    /// Teacher training length in optimisation steps
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub teacher_steps: Option<usize>,
    /// Student training length in optimisation steps (without it, a preset's student gets
    /// up to 5x the preset's steps, at most 20,000, when fitted to a cheaper spec or, outside
    /// experiments, trained on fewer examples than the preset's own split: the product of
    /// both ratios; in an experiment, `experiments.student_steps` where set; the plan says so)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub student_steps: Option<usize>,
    /// Early stopping of teachers and students: stop after N epochs without a better
    /// validation accuracy (the best epoch's weights are kept either way)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub patience: Option<usize>,
    /// Mini-batch size
    #[arg(long, value_name = "B", allow_negative_numbers = true)]
    pub batch_size: Option<usize>,
    /// Train each student of the standard study N times with different seeds (mean and sd)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub repeats: Option<usize>,
    /// Optimizer of teachers and students: adam, adamw (decoupled weight decay), sgd
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerKind>,
    /// Learning rate of teachers and students (the peak of the schedule)
    #[arg(long, allow_negative_numbers = true)]
    pub lr: Option<f32>,
    /// Teachers' learning rate
    #[arg(long, allow_negative_numbers = true, value_name = "LR")]
    pub teacher_lr: Option<f32>,
    /// Students' learning rate
    #[arg(long, allow_negative_numbers = true, value_name = "LR")]
    pub student_lr: Option<f32>,
    /// Weight decay of teachers and students (L2 for adam and sgd, decoupled for adamw)
    #[arg(long, allow_negative_numbers = true, value_name = "W")]
    pub weight_decay: Option<f32>,
    /// SGD: Nesterov momentum (true) or classical momentum (false)
    #[arg(long, value_name = "BOOL")]
    pub nesterov: Option<bool>,
    /// Learning-rate schedule of teachers and students: constant, step, cosine
    #[arg(long, value_enum, value_name = "KIND")]
    pub schedule: Option<ScheduleKind>,
    /// Cosine schedule: share of the training steps spent in the linear learning-rate
    /// warm-up, in [0, 1)
    #[arg(long, allow_negative_numbers = true, value_name = "SHARE")]
    pub warmup: Option<f32>,
    /// Step schedule: multiply the learning rate by this factor in (0, 1] ...
    #[arg(long, allow_negative_numbers = true, value_name = "F")]
    pub decay_factor: Option<f32>,
    /// ... every this many epochs
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub decay_epochs: Option<usize>,
    /// Cosine schedule: the final learning rate as a share of the peak, in [0, 1]
    #[arg(long, allow_negative_numbers = true, value_name = "SHARE")]
    pub min_lr: Option<f32>,
    /// Teachers' label smoothing in [0, 1) (it flattens the soft targets students learn from)
    #[arg(long, allow_negative_numbers = true, value_name = "E")]
    pub label_smoothing: Option<f32>,
    /// Teachers' dropout rate on input pixels
    #[arg(long, value_name = "RATE", allow_negative_numbers = true)]
    pub dropout_input: Option<f32>,
    /// Teachers' dropout rate after hidden layers
    #[arg(long, value_name = "RATE", allow_negative_numbers = true)]
    pub dropout_hidden: Option<f32>,
    /// Teachers' random image shift in pixels (0 = no jitter)
    #[arg(long, value_name = "PIXELS", allow_negative_numbers = true)]
    pub max_shift: Option<u32>,
    /// Teachers' max-norm constraint on each unit's incoming weights
    #[arg(long, allow_negative_numbers = true)]
    pub max_norm: Option<f32>,
    /// Distillation temperature [default: chosen on validation from the grid]
    #[arg(long, value_name = "T", allow_negative_numbers = true)]
    pub temperature: Option<f32>,
    /// Soft-target weight in [0, 1] [default: chosen on validation from the grid]
    #[arg(long, allow_negative_numbers = true)]
    pub alpha: Option<f32>,
    /// Temperatures tried on validation, comma-separated
    #[arg(
        long,
        value_name = "T,..",
        value_delimiter = ',',
        allow_hyphen_values = true
    )]
    pub temperature_grid: Option<Vec<f32>>,
    /// Alphas tried on validation, comma-separated
    #[arg(
        long,
        value_name = "A,..",
        value_delimiter = ',',
        allow_hyphen_values = true
    )]
    pub alpha_grid: Option<Vec<f32>>,
    /// Unlabeled images of the pool that the ensemble labels for the distilled students, besides the training split (0: none) [default: the preset's]
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub unlabeled: Option<usize>,
    /// Training examples [default: all that the validation split leaves, at most --max-labeled, or the preset's]
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub train_size: Option<usize>,
    /// At most this many training examples keep their labels; the rest join the pool of unlabeled images (ignored with --train-size) [default: no cap, or the preset's]
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub max_labeled: Option<usize>,
    /// Validation examples carved from the training set [default: a fifth of it, at most 5,000, or the preset's]
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub validation_size: Option<usize>,
    /// Test examples [default: the whole test set, or the preset's]
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub test_size: Option<usize>,
    /// Split and subsample with a plain shuffle instead of stratifying by class
    #[arg(long)]
    pub plain_split: bool,
}

/// Replaces `target` with the flag's value when the flag was given.
fn set<T: Clone>(target: &mut T, value: &Option<T>) {
    if let Some(value) = value {
        *target = value.clone();
    }
}

/// Replaces an optional setting when its flag was given (the flag cannot clear it).
fn set_some<T: Clone>(target: &mut Option<T>, value: &Option<T>) {
    if value.is_some() {
        target.clone_from(value);
    }
}

impl Overrides {
    /// Applies every flag that was given. Each flag sets settings of its own, except the
    /// learning rates: a model's own rate is applied after the one for both, so it wins.
    pub fn apply(&self, config: &mut RunConfig) {
        self.apply_run(config);
        self.apply_data(config);
        self.apply_training_length(config);
        self.apply_recipes(config);
        self.apply_teacher_regularisation(config);
        self.apply_distillation(config);
    }

    /// Preset, experiment, output folder, seed, ensemble, specs, batch and repeats.
    fn apply_run(&self, config: &mut RunConfig) {
        set(&mut config.preset, &self.preset);
        set_some(&mut config.experiment, &self.experiment);
        set_some(&mut config.out_dir, &self.out);
        set(&mut config.seed, &self.seed);
        set(&mut config.teachers, &self.teachers);
        set(&mut config.teacher.spec, &self.teacher_spec);
        set(&mut config.student.spec, &self.student_spec);
        set(&mut config.batch_size, &self.batch_size);
        set(&mut config.repeats, &self.repeats);
    }

    /// The data set, its files and the split sizes.
    fn apply_data(&self, config: &mut RunConfig) {
        let data = &mut config.data;
        set(&mut data.dataset, &self.dataset);
        set_some(&mut data.dir, &self.data_dir);
        set_some(&mut data.csv.train, &self.csv_train);
        set_some(&mut data.csv.test, &self.csv_test);
        set_some(&mut data.csv.label, &self.csv_label);
        set_some(&mut data.csv.header, &self.csv_header);
        set_some(&mut data.train_size, &self.train_size);
        set_some(&mut data.max_labeled, &self.max_labeled);
        set_some(&mut data.validation_size, &self.validation_size);
        set_some(&mut data.test_size, &self.test_size);
        if self.plain_split {
            data.stratified = false;
        }
    }

    /// Optimizer and schedule flags of both models, then each model's own learning rate.
    fn apply_recipes(&self, config: &mut RunConfig) {
        for model in [&mut config.teacher, &mut config.student] {
            set(&mut model.optimizer.kind, &self.optimizer);
            set(&mut model.optimizer.lr, &self.lr);
            set(&mut model.optimizer.weight_decay, &self.weight_decay);
            set(&mut model.optimizer.nesterov, &self.nesterov);
            let schedule = &mut model.schedule;
            set(&mut schedule.kind, &self.schedule);
            set(&mut schedule.warmup, &self.warmup);
            set(&mut schedule.decay_factor, &self.decay_factor);
            set(&mut schedule.decay_epochs, &self.decay_epochs);
            set(&mut schedule.min_lr, &self.min_lr);
        }
        set(&mut config.teacher.optimizer.lr, &self.teacher_lr);
        set(&mut config.student.optimizer.lr, &self.student_lr);
    }

    /// The teachers' regularisation: label smoothing, dropout, shifts and max-norm.
    fn apply_teacher_regularisation(&self, config: &mut RunConfig) {
        let teacher = &mut config.teacher;
        set(&mut teacher.label_smoothing, &self.label_smoothing);
        set(&mut teacher.dropout_input, &self.dropout_input);
        set(&mut teacher.dropout_hidden, &self.dropout_hidden);
        set(&mut teacher.max_shift, &self.max_shift);
        set_some(&mut teacher.max_norm, &self.max_norm);
    }

    /// The distillation setting and the grid searched on validation.
    fn apply_distillation(&self, config: &mut RunConfig) {
        let distill = &mut config.distill;
        set_some(&mut distill.temperature, &self.temperature);
        set_some(&mut distill.alpha, &self.alpha);
        set(&mut distill.temperature_grid, &self.temperature_grid);
        set(&mut distill.alpha_grid, &self.alpha_grid);
        set(&mut distill.unlabeled, &self.unlabeled);
    }

    /// Steps and patience. A model's own flags win over the flags for both; within one
    /// level a step budget wins over epochs, and an epochs flag clears a preset's budget.
    fn apply_training_length(&self, config: &mut RunConfig) {
        let pairs = [
            (&mut config.teacher, self.teacher_epochs, self.teacher_steps),
            (&mut config.student, self.student_epochs, self.student_steps),
        ];
        for (model, epochs, steps) in pairs {
            let (epochs, steps) = if epochs.is_some() || steps.is_some() {
                (epochs, steps)
            } else {
                (self.epochs, self.steps)
            };
            if let Some(epochs) = epochs {
                model.epochs = epochs;
                model.steps = None;
            }
            if steps.is_some() {
                model.steps = steps;
            }
            if self.patience.is_some() {
                model.patience = self.patience;
            }
        }
    }
}
