//! What every phase of a run shares: the adapter, the settings, the splits on the GPU, the
//! run folder, the console, and the one way a student is trained.
//!
//! Every student of a run (of one repeat, see `--repeats`) starts from the same initial
//! weights and uses the same batch order seeds, so students on the same transfer set differ
//! only in their targets.

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result};
use dk_nn::{LossConfig, Model, ModelSpec, Optimizer, TrainConfig};
use dk_tensor::ops::optim::{AdamParams, SgdParams};
use dk_tensor::{GpuContext, Tensor};
use indicatif::{ProgressBar, ProgressStyle};

use super::evaluate::predict;
use super::gpu_data::{GpuSplit, SplitTooLarge};
use super::resume::{restore, run_key, write_record};
use super::teachers::{checkpoint_file, save, training_data_key};
use super::train::{TrainPlan, Trained, train};
use crate::config::{
    ModelConfig, OptimizerKind, RunConfig, effective_config_toml, steps_per_epoch,
};
use crate::data::StudyData;
use crate::results::{EpochStats, Role, TimeEstimate};
use crate::run_dir::RunDir;
use crate::seeds::derive_seed;

/// Uploads one of the run's splits; one too large for the adapter is refused naming `flag`,
/// the setting that makes it smaller.
fn upload_split(
    ctx: &GpuContext,
    name: &'static str,
    data: &crate::data::Dataset,
    flag: &str,
) -> Result<GpuSplit> {
    GpuSplit::upload(ctx, name, data).map_err(|err| naming_flag(err, flag))
}

/// `err`, with the flag to pass when it says a split is too large.
fn naming_flag(err: anyhow::Error, flag: &str) -> anyhow::Error {
    match err.downcast::<SplitTooLarge>() {
        Ok(too_large) => anyhow::anyhow!("{too_large}: pass {flag} {} or less", too_large.fits),
        Err(err) => err,
    }
}

/// How a run behaves beyond its settings.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Folder of the teacher-logit cache (`None`: the run folder's `cache/`).
    pub cache_dir: Option<PathBuf>,
    /// Load the teachers from this earlier run folder instead of training them.
    pub teachers_from: Option<PathBuf>,
    /// No progress bars or phase lines (tests).
    pub quiet: bool,
    /// Allow `out_dir` to be an earlier run folder, whose files are then replaced.
    pub overwrite: bool,
    /// Continue the run in `out_dir`: take over every model it finished with these
    /// settings instead of training it again ([`super::resume`]).
    pub resume: bool,
    /// The plan, printed once the settings have passed [`super::study::check_run`] and before
    /// anything is written or trained.
    pub plan: Option<String>,
}

/// Batch size of evaluation passes (independent of the training batch).
pub const EVAL_BATCH: usize = 500;

/// Phase lines and progress bars, silent in quiet mode.
pub struct Console {
    pub quiet: bool,
}

impl Console {
    pub fn say(&self, line: impl AsRef<str>) {
        if !self.quiet {
            println!("{}", line.as_ref());
        }
    }

    pub fn bar(&self, phase: &str) -> ProgressBar {
        if self.quiet {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(1);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>24} [{bar:30}] {pos}/{len} batches {elapsed_precise} {msg}",
            )
            .expect("a valid progress template")
            .progress_chars("=> "),
        );
        bar.set_prefix(phase.to_string());
        bar
    }
}

/// A trained model with what the report needs of it.
pub struct Trainee {
    pub name: String,
    pub role: Role,
    pub model: Model,
    pub trained: Trained,
    /// The temperature and soft-term weight of a distilled student (none for the others).
    pub distilled: Option<(f32, f32)>,
    /// What the model was trained on, in words (for experiment tables).
    pub transfer_set: String,
    /// Logits on the test split, filled by [`Session::test_logits`].
    pub test_logits: Option<Vec<f32>>,
    /// Its checkpoint's file name in the run folder, once saved.
    pub checkpoint: Option<String>,
}

impl Trainee {
    /// Validation accuracy of the kept epoch (the best one, see `train`).
    pub fn final_validation(&self) -> f64 {
        self.trained.validation_accuracy
    }

    /// The epoch with the best validation accuracy (the first of ties).
    pub fn best_epoch(&self) -> Option<&EpochStats> {
        self.trained.curve.iter().reduce(|best, e| {
            if e.validation_accuracy > best.validation_accuracy {
                e
            } else {
                best
            }
        })
    }
}

/// One student to train.
pub struct StudentJob<'s> {
    pub name: String,
    pub role: Role,
    pub loss: LossConfig,
    /// The transfer set: images and the labels fed to the hard-label term.
    pub split: &'s GpuSplit,
    /// Per-example targets `[split.n, C]` for `Distill` and `LogitMse`.
    pub targets: Option<&'s Tensor>,
    pub epochs: usize,
    pub transfer_set: String,
}

/// The shared state of one run.
pub struct Session<'a> {
    pub ctx: &'a GpuContext,
    pub config: &'a RunConfig,
    pub data: &'a StudyData,
    pub options: &'a RunOptions,
    pub console: Console,
    pub run_dir: RunDir,
    pub teacher_spec: ModelSpec,
    pub student_spec: ModelSpec,
    pub train: GpuSplit,
    pub validation: GpuSplit,
    pub test: GpuSplit,
    pub classes: usize,
    /// Warnings for results.json and the report, in the order they arose.
    pub warnings: RefCell<Vec<String>>,
    /// The time estimated before training ([`super::estimate`]).
    pub estimate: RefCell<Option<TimeEstimate>>,
    /// Training seconds of every student trained so far, the discarded ones of the (T,
    /// alpha) search and the repeats included, as the estimate counts them.
    pub student_seconds: Cell<f64>,
    pub started: Instant,
    pub started_at: SystemTime,
    /// The settings and training data this run's models are trained with ([`run_key`]).
    pub run_key: String,
}

impl<'a> Session<'a> {
    /// Creates the run folder (with `config.toml`) and uploads the splits; `specs` are the
    /// teacher's and the student's, as [`super::study::check_run`] checked them.
    pub fn open(
        ctx: &'a GpuContext,
        config: &'a RunConfig,
        data: &'a StudyData,
        options: &'a RunOptions,
        (teacher_spec, student_spec): (ModelSpec, ModelSpec),
    ) -> Result<Session<'a>> {
        let started_at = SystemTime::now();
        let started = Instant::now();
        let console = Console {
            quiet: options.quiet,
        };
        let classes = data.train.classes;
        let (run_dir, note) = match (&config.out_dir, options.resume) {
            (Some(dir), true) => RunDir::resume(dir, started_at)?,
            (out, _) => RunDir::create(out.as_deref(), started_at, options.overwrite)?,
        };
        if let Some(note) = note {
            eprintln!("note: {note}");
        }
        run_dir
            .write("config.toml", effective_config_toml(config).as_bytes())
            .context("writing config.toml")?;
        console.say(format!("run folder: {}", run_dir.root().display()));
        Ok(Session {
            ctx,
            config,
            data,
            options,
            console,
            run_dir,
            teacher_spec,
            student_spec,
            train: upload_split(ctx, "training", &data.train, "--train-size")?,
            validation: upload_split(ctx, "validation", &data.validation, "--validation-size")?,
            test: upload_split(ctx, "test", &data.test, "--test-size")?,
            classes,
            warnings: RefCell::new(Vec::new()),
            estimate: RefCell::new(None),
            student_seconds: Cell::new(0.0),
            started,
            started_at,
            run_key: run_key(config, &training_data_key(&data.train)),
        })
    }

    /// Trains `model` by `plan` on `split`, saves it as `name` with its training record and
    /// returns it with what training produced and its checkpoint file. When resuming, a
    /// model this run's settings already finished is loaded instead.
    pub fn train_or_resume(
        &self,
        name: &str,
        model: Model,
        plan: &TrainPlan,
        split: &GpuSplit,
    ) -> Result<(Model, Trained, String)> {
        let checkpoint = checkpoint_file(name);
        if self.options.resume {
            let spec = model.spec().clone();
            let found = restore(
                self.ctx,
                &self.run_dir,
                &checkpoint,
                &self.run_key,
                (&spec, &self.validation),
            )?;
            if let Some((model, trained)) = found {
                self.console.say(format!(
                    "{name}: finished earlier, taken over from {checkpoint} (validation {:.2}%)",
                    100.0 * trained.validation_accuracy
                ));
                return Ok((model, trained, checkpoint));
            }
        }
        let bar = self.console.bar(name);
        let trained = train(self.ctx, &model, split, &self.validation, plan, &bar)
            .with_context(|| format!("training {name}"))?;
        bar.finish_and_clear();
        let lr_setting = format!("{}.optimizer.lr", plan.role);
        if let Some(warning) = trained.divergence_warning(name, &lr_setting) {
            self.warn(warning);
        }
        // Saved as soon as it is trained: an interrupted run keeps every finished model.
        let checkpoint = save(self, &model, name)?;
        write_record(&self.run_dir, &checkpoint, &self.run_key, &trained)?;
        Ok((model, trained, checkpoint))
    }

    /// A student on the training split for the configured student epochs.
    pub fn on_training_split<'s>(
        &'s self,
        name: &str,
        role: Role,
        loss: LossConfig,
        targets: Option<&'s Tensor>,
    ) -> StudentJob<'s> {
        StudentJob {
            name: name.to_string(),
            role,
            loss,
            split: &self.train,
            targets,
            epochs: self.student_epochs(self.train.n),
            transfer_set: "training split".into(),
        }
    }

    /// Epochs of a student on a transfer set of `examples` examples (the step budget, when
    /// set, is the same whatever the set's size).
    pub fn student_epochs(&self, examples: usize) -> usize {
        self.config
            .student
            .epochs_for(examples, self.config.batch_size)
    }

    /// Trains one student of the run's student spec.
    pub fn train_student(&self, job: StudentJob) -> Result<Trainee> {
        self.train_student_repeat(job, 0)
    }

    /// Trains one student with the initial weights, dropout masks and batch order of
    /// repeat `repeat` (0: those every student of the run shares).
    pub fn train_student_repeat(&self, job: StudentJob, repeat: u64) -> Result<Trainee> {
        let config = self.config;
        self.console.say(format!(
            "training {} ({}, {} examples, {})",
            job.name,
            self.student_spec.text(),
            job.split.n,
            length_text(job.epochs, job.split.n, config.batch_size)
        ));
        let model = Model::new(
            self.ctx,
            self.student_spec.clone(),
            derive_seed(config.seed, "student", repeat),
        )?;
        let mut plan = training_plan(
            "student",
            &config.student,
            job.loss,
            derive_seed(config.seed, "student-dropout", repeat),
            derive_seed(config.seed, "student-data", repeat),
        );
        plan.epochs = job.epochs;
        plan.batch = config.batch_size;
        plan.teacher_logits = job.targets;
        plan.log_epochs = !self.options.quiet;
        let (model, trained, checkpoint) =
            self.train_or_resume(&job.name, model, &plan, job.split)?;
        self.student_seconds
            .set(self.student_seconds.get() + trained.seconds);
        let distilled = match job.loss {
            LossConfig::Distill { temperature, alpha } => Some((temperature, alpha)),
            _ => None,
        };
        Ok(Trainee {
            name: job.name,
            role: job.role,
            model,
            trained,
            distilled,
            transfer_set: job.transfer_set,
            test_logits: None,
            checkpoint: Some(checkpoint),
        })
    }

    /// The trainee's logits on the test split (computed once).
    pub fn test_logits<'t>(&self, trainee: &'t mut Trainee) -> Result<&'t [f32]> {
        if trainee.test_logits.is_none() {
            trainee.test_logits = Some(predict(self.ctx, &trainee.model, &self.test, EVAL_BATCH)?);
        }
        Ok(trainee.test_logits.as_deref().expect("just computed"))
    }

    /// Uploads per-example targets `[n, C]`.
    pub fn upload_targets(&self, logits: &[f32]) -> Result<Tensor> {
        let n = logits.len() / self.classes;
        Ok(Tensor::from_f32(self.ctx, logits, &[n, self.classes])?)
    }

    /// Records a warning for results.json and the report (and says it unless quiet).
    pub fn warn(&self, warning: String) {
        if !self.options.quiet {
            eprintln!("\n!!! WARNING: {warning}\n");
        }
        self.warnings.borrow_mut().push(warning);
    }
}

/// The optimizer of a model's settings.
pub fn optimizer(config: &ModelConfig) -> Optimizer {
    let o = &config.optimizer;
    match o.kind {
        OptimizerKind::Adam | OptimizerKind::Adamw => Optimizer::Adam(AdamParams {
            lr: o.lr,
            weight_decay: o.weight_decay,
            decoupled: o.kind == OptimizerKind::Adamw,
            ..AdamParams::default()
        }),
        OptimizerKind::Sgd => Optimizer::Sgd(SgdParams {
            lr: o.lr,
            momentum: o.momentum,
            nesterov: o.nesterov,
            weight_decay: o.weight_decay,
        }),
    }
}

/// The plan of one model of `role` ("teacher" or "student") trained with `config`'s
/// recipe: its epochs, schedule, patience, regularisers and optimizer. The caller sets the
/// batch, the targets and, where the transfer set differs, the epochs.
pub fn training_plan<'a>(
    role: &'static str,
    config: &ModelConfig,
    loss: LossConfig,
    dropout_seed: u64,
    data_seed: u64,
) -> TrainPlan<'a> {
    let mut train_config = TrainConfig::new(optimizer(config));
    train_config.loss = loss;
    train_config.max_norm = config.max_norm;
    train_config.seed = dropout_seed;
    train_config.label_smoothing = config.label_smoothing;
    TrainPlan {
        role,
        epochs: config.epochs,
        batch: 1,
        max_shift: config.max_shift,
        config: train_config,
        schedule: config.schedule.clone(),
        patience: config.patience,
        teacher_logits: None,
        data_seed,
        log_epochs: false,
    }
}

/// "12 epochs of 156 steps = 1872 steps" for a model trained `epochs` epochs on `examples` examples.
pub fn length_text(epochs: usize, examples: usize, batch: usize) -> String {
    let per_epoch = steps_per_epoch(examples, batch);
    format!(
        "{epochs} epochs of {per_epoch} steps = {} steps",
        epochs * per_epoch
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_too_large_names_the_flag_that_shrinks_it() {
        let too_large = SplitTooLarge {
            name: "validation".into(),
            examples: 10,
            values_per_example: 4,
            bytes: 160,
            limit: 100,
            fits: 6,
        };
        let text = naming_flag(too_large.into(), "--validation-size").to_string();
        assert!(
            text.starts_with("the validation split is too large")
                && text.ends_with("6 examples fit: pass --validation-size 6 or less"),
            "{text}"
        );
        let other = naming_flag(anyhow::anyhow!("out of memory"), "--test-size");
        assert_eq!(other.to_string(), "out of memory");
    }
}
