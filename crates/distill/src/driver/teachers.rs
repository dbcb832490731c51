//! The teachers and their ensemble.
//!
//! K models from different seeds, each checkpointed (atomically) into the run folder as soon
//! as it is trained, so an interrupted run keeps every finished teacher; or, with
//! [`RunOptions::teachers_from`](super::RunOptions), loaded from an earlier run folder whose
//! data and teacher settings match. Their logits on the training split (the standard
//! transfer set) are cached on disk, keyed by the data and the teachers' parameters, and
//! combined into the ensemble: the mean of the members' log-softmax.

use std::path::Path;

use anyhow::{Context, Result, bail};
use dk_nn::{LossConfig, Model};

use super::evaluate::predict;
use super::gpu_data::GpuSplit;
use super::session::{EVAL_BATCH, Session, Trainee, training_plan};
use super::train::Trained;
use crate::config::{DataConfig, Experiment, RunConfig, parse_config_text};
use crate::metrics;
use crate::results::{Role, format_p};
use crate::seeds::derive_seed;
use crate::stats;
use crate::teacher_cache::{self, Source};

/// The trained teachers and what the students learn from.
pub struct Teachers {
    pub members: Vec<Trainee>,
    /// Each member's logits on the training split, in example order.
    pub transfer_logits: Vec<Vec<f32>>,
    /// The ensemble's targets on the training split: mean log-softmax of the members.
    pub ensemble_targets: Vec<f32>,
    /// Mean of the members' raw logits on the training split (logit matching's targets).
    pub mean_raw_logits: Vec<f32>,
    /// The ensemble's validation accuracy.
    pub validation_accuracy: f64,
    /// Index of the member with the best validation accuracy.
    pub best: usize,
}

impl Teachers {
    /// Trains (or loads) the teachers and computes the ensemble's targets on the training split.
    pub fn prepare(session: &Session) -> Result<Teachers> {
        let members = match &session.options.teachers_from {
            Some(dir) => load_teachers(session, dir)?,
            None => train_teachers(session)?,
        };
        let transfer_logits = transfer_logits(session, &members)?;
        let refs: Vec<&[f32]> = transfer_logits.iter().map(Vec::as_slice).collect();
        let classes = session.classes;
        let ensemble_targets = metrics::ensemble_logits(&refs, classes);
        let mean_raw_logits = mean_rows(&refs);
        let validation: Vec<&[f32]> = members
            .iter()
            .map(|t| t.trained.validation_logits.as_slice())
            .collect();
        let ensemble_validation = metrics::ensemble_logits(&validation, classes);
        let validation_accuracy = metrics::accuracy(
            &ensemble_validation,
            classes,
            &session.validation.host_labels,
        );
        let best = (0..members.len())
            .max_by(|&a, &b| {
                members[a]
                    .final_validation()
                    .total_cmp(&members[b].final_validation())
            })
            .expect("at least one teacher");
        report_ensemble(
            session,
            &members,
            (validation_accuracy, &ensemble_validation),
            best,
        );
        warn_if_memorised(session, &ensemble_targets);
        Ok(Teachers {
            members,
            transfer_logits,
            ensemble_targets,
            mean_raw_logits,
            validation_accuracy,
            best,
        })
    }

    /// The ensemble's targets (mean log-softmax) on another transfer set.
    pub fn label(&self, session: &Session, split: &GpuSplit) -> Result<Vec<f32>> {
        let logits = self.member_logits(session, split)?;
        let refs: Vec<&[f32]> = logits.iter().map(Vec::as_slice).collect();
        Ok(metrics::ensemble_logits(&refs, session.classes))
    }

    /// Each member's logits on `split`, in example order.
    pub fn member_logits(&self, session: &Session, split: &GpuSplit) -> Result<Vec<Vec<f32>>> {
        self.members
            .iter()
            .map(|t| predict(session.ctx, &t.model, split, EVAL_BATCH))
            .collect()
    }
}

/// Members that all give the same answer on at least this share of the validation
/// examples any of them gets wrong are "too alike": averaging cannot correct a mistake they
/// share. A share rather than their plain agreement, which is high whenever they are
/// accurate.
const SHARED_MISTAKES: f64 = 0.5;

/// Members whose last-epoch training accuracy exceeds their validation accuracy by less than
/// this have not fit their data yet: "undertrained".
const UNDERFIT_GAP: f64 = 0.02;

/// Says each member's validation accuracy, the ensemble's and its margin over the best
/// member; warns, with McNemar's p and the likely reason, when the ensemble does not beat
/// that member. `ensemble` is the ensemble's validation accuracy and logits.
fn report_ensemble(
    session: &Session,
    members: &[Trainee],
    (ensemble, ensemble_logits): (f64, &[f32]),
    best: usize,
) {
    let (classes, labels) = (session.classes, &session.validation.host_labels);
    let scores: Vec<String> = members
        .iter()
        .map(|m| format!("{} {:.2}%", m.name, 100.0 * m.final_validation()))
        .collect();
    let margin = ensemble - members[best].final_validation();
    session.console.say(format!(
        "validation: {}; ensemble of {} {:.2}% ({:+.2} points over the best member)",
        scores.join(", "),
        members.len(),
        100.0 * ensemble,
        100.0 * margin
    ));
    if members.len() < 2 || margin > 0.0 {
        return;
    }
    session.warn(format!(
        "the ensemble ({:.2}%) does not beat its best member {} ({:.2}%) on validation ({}): {}",
        100.0 * ensemble,
        members[best].name,
        100.0 * members[best].final_validation(),
        paired_counts(
            ensemble_logits,
            &members[best].trained.validation_logits,
            classes,
            labels
        ),
        ensemble_diagnosis(session, members)
    ));
}

/// The ensemble's probability of the true label at or above which a training example
/// counts as memorised, and the share of such examples that makes the warning below.
const MEMORISED_PROBABILITY: f32 = 0.9;
const MEMORISED_SHARE: f64 = 0.95;

/// Warns when the ensemble gives nearly every training example its label with near
/// certainty: its soft targets there are the labels, so distillation on the training
/// split has nothing to add, and only examples the teachers have not seen can carry their
/// dark knowledge (measured: on 3,200 MNIST images the distilled student scores 0.5 points
/// below hard labels, and MUNGE examples at k = 4 gain 1.5 points at matched steps).
fn warn_if_memorised(session: &Session, ensemble_targets: &[f32]) {
    if session.config.experiment.is_some() {
        return;
    }
    let labels = &session.train.host_labels;
    let share = metrics::confident_share(
        ensemble_targets,
        session.classes,
        labels,
        MEMORISED_PROBABILITY,
    );
    if let Some(warning) = memorised_warning(share, labels.len()) {
        session.warn(warning);
    }
}

/// The warning for `share` of `examples` training examples memorised, if it is one.
fn memorised_warning(share: f64, examples: usize) -> Option<String> {
    (share >= MEMORISED_SHARE).then(|| format!(
        "the teachers fit their {examples} training examples almost perfectly: the ensemble gives {:.1}% of them their label with probability >= {MEMORISED_PROBABILITY}, so its soft targets there are close to the labels and distillation on them can add little; examples the teachers have not seen carry more: --experiment munge (synthetic examples labeled by the ensemble) or more unlabeled data",
        100.0 * share
    ))
}

/// The examples only the ensemble gets right, those only the member gets right, and
/// McNemar's exact p of the difference.
fn paired_counts(ensemble: &[f32], member: &[f32], classes: usize, labels: &[u8]) -> String {
    let (ensemble_only, member_only) = stats::discordant_counts(
        &metrics::correct_predictions(ensemble, classes, labels),
        &metrics::correct_predictions(member, classes, labels),
    );
    format!(
        "examples right only for the ensemble: {ensemble_only}, only for the member: {member_only}; McNemar p = {}",
        format_p(stats::mcnemar_exact_p(ensemble_only, member_only))
    )
}

/// Why an ensemble may not beat its best member: members too alike, or undertrained.
fn ensemble_diagnosis(session: &Session, members: &[Trainee]) -> String {
    let logits: Vec<&[f32]> = members
        .iter()
        .map(|m| m.trained.validation_logits.as_slice())
        .collect();
    let labels = &session.validation.host_labels;
    let shared = metrics::shared_mistakes(&logits, session.classes, labels);
    // Training accuracy close to validation accuracy: the members have not fit their data
    // yet (with a decaying learning rate the last epoch is usually the best anyway).
    let fit_gaps: Vec<f64> = members
        .iter()
        .filter_map(|m| m.trained.curve.last())
        .map(|e| e.train_accuracy - e.validation_accuracy)
        .collect();
    let mean_fit_gap = fit_gaps.iter().sum::<f64>() / fit_gaps.len().max(1) as f64;
    if shared >= SHARED_MISTAKES {
        format!(
            "the members are too alike (on {:.1}% of the validation examples that any of them gets wrong, all give the same answer); make them differ more (dropout, shifts) or add members",
            100.0 * shared
        )
    } else if !fit_gaps.is_empty() && mean_fit_gap < UNDERFIT_GAP {
        format!(
            "the members are undertrained: their training accuracy is within {:.1} points of their validation accuracy; train them longer (teacher.steps) or make them larger",
            100.0 * mean_fit_gap.max(0.0)
        )
    } else {
        format!(
            "the members fit their training data and give the same answer on only {:.1}% of the validation examples that any of them gets wrong; the ensemble may need more or different members",
            100.0 * shared
        )
    }
}

fn teacher_name(k: usize) -> String {
    format!("teacher-{}", k + 1)
}

fn train_teachers(session: &Session) -> Result<Vec<Trainee>> {
    let config = session.config;
    // Written before the first teacher, so the teachers of an interrupted run can serve
    // another (--teachers-from) as soon as they are saved.
    write_training_data_key(session)?;
    let mut members = Vec::with_capacity(config.teachers);
    for k in 0..config.teachers {
        let name = teacher_name(k);
        session.console.say(format!(
            "training {name} of {} ({})",
            config.teachers,
            session.teacher_spec.text()
        ));
        let model = Model::new(
            session.ctx,
            session.teacher_spec.clone(),
            derive_seed(config.seed, "teacher", k as u64),
        )?;
        let mut plan = training_plan(
            "teacher",
            &config.teacher,
            LossConfig::HardLabels,
            derive_seed(config.seed, "teacher-dropout", k as u64),
            derive_seed(config.seed, "teacher-data", k as u64),
        );
        plan.epochs = config
            .teacher
            .epochs_for(session.train.n, config.batch_size);
        plan.batch = config.batch_size;
        plan.log_epochs = !session.options.quiet;
        let (model, trained, checkpoint) =
            session.train_or_resume(&name, model, &plan, &session.train)?;
        members.push(teacher(name, model, trained, checkpoint));
    }
    Ok(members)
}

fn write_training_data_key(session: &Session) -> Result<()> {
    session
        .run_dir
        .write(
            TRAINING_DATA_KEY,
            format!("{}\n", training_data_key(&session.data.train)).as_bytes(),
        )
        .with_context(|| format!("writing {TRAINING_DATA_KEY}"))?;
    Ok(())
}

fn teacher(name: String, model: Model, trained: Trained, checkpoint: String) -> Trainee {
    Trainee {
        checkpoint: Some(checkpoint),
        name,
        role: Role::Teacher,
        model,
        trained,
        distilled: None,
        transfer_set: "training split, true labels".into(),
        test_logits: None,
    }
}

/// The checkpoint file of the model called `name`: `<name>.safetensors`, with characters
/// other than letters, digits, `-`, `.` and `=` written as `_` (`student-kd T=4 a=0.5` gives
/// `student-kd_T=4_a=0.5.safetensors`).
pub fn checkpoint_file(name: &str) -> String {
    let stem: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '=') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{stem}.safetensors")
}

/// Writes the model's checkpoint into the run folder (atomically: a temporary sibling,
/// then a rename) and returns its file name there.
pub fn save(session: &Session, model: &Model, name: &str) -> Result<String> {
    let file = checkpoint_file(name);
    let path = session.run_dir.path(&file);
    model
        .save(session.ctx, &path)
        .with_context(|| format!("saving {}", path.display()))?;
    Ok(file)
}

/// The file beside the teacher checkpoints that fingerprints the data they were trained on.
const TRAINING_DATA_KEY: &str = "teachers-training-data.txt";

/// A fingerprint of the teachers' training split (its examples and labels, in order).
pub fn training_data_key(data: &crate::data::Dataset) -> String {
    format!(
        "{:032x}",
        teacher_cache::transfer_key(&data.images, &data.labels, &[])
    )
}

/// The labeled examples the teachers of a run learn from: the compression experiment's
/// `labeled` subset, else the whole training split.
fn teacher_labels(config: &RunConfig) -> Option<usize> {
    match config.experiment {
        Some(Experiment::Compression) => config.experiments.compression.labeled,
        _ => None,
    }
}

/// Checks, before anything is written, that the teachers of the earlier run folder `dir`
/// may serve this run: trained with the same data, seed and teacher settings (otherwise
/// they could have seen labels or examples that this run withholds), and not in the
/// folder this run is about to write.
pub fn check_teachers_from(config: &RunConfig, dir: &Path, validation_used: usize) -> Result<()> {
    if let Some(out) = &config.out_dir {
        let same = match (std::fs::canonicalize(out), std::fs::canonicalize(dir)) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if same {
            bail!(
                "{}: the run folder is the folder the teachers come from; choose another --out",
                out.display()
            );
        }
    }
    let config_path = dir.join("config.toml");
    let text = std::fs::read_to_string(&config_path).with_context(|| {
        format!(
            "--teachers-from {}: cannot read {} (is it the folder of a dk-distill run?)",
            dir.display(),
            config_path.display()
        )
    })?;
    let earlier = parse_config_text(&text, &config_path, None)?;
    let mut differences = Vec::new();
    if earlier.seed != config.seed {
        differences.push(format!("seed {} vs {}", earlier.seed, config.seed));
    }
    if earlier.teachers != config.teachers {
        differences.push(format!(
            "teachers {} vs {}",
            earlier.teachers, config.teachers
        ));
    }
    let earlier_data = with_validation_resolved(&earlier.data, validation_used);
    let data = with_validation_resolved(&config.data, validation_used);
    if earlier_data != data {
        differences.push(data_difference(&earlier_data, &data));
    }
    if teacher_labels(&earlier) != teacher_labels(config) {
        differences.push(format!(
            "the teachers' labeled examples ({} vs {})",
            describe_labels(teacher_labels(&earlier)),
            describe_labels(teacher_labels(config))
        ));
    }
    if earlier.teacher != config.teacher {
        differences.push("the [teacher] settings".into());
    }
    if earlier.batch_size != config.batch_size {
        differences.push("batch_size".into());
    }
    if !differences.is_empty() {
        bail!(
            "{}: the teachers there were trained with other settings ({}); train new ones (drop --teachers-from) or match the settings",
            config_path.display(),
            differences.join(", ")
        );
    }
    check_teacher_checkpoints(config.teachers, dir)
}

/// Every teacher's checkpoint is in `dir`, so that a run never trains students only to
/// find a teacher missing.
fn check_teacher_checkpoints(teachers: usize, dir: &Path) -> Result<()> {
    let missing: Vec<String> = (0..teachers)
        .map(|k| format!("{}.safetensors", teacher_name(k)))
        .filter(|file| !dir.join(file).is_file())
        .collect();
    if !missing.is_empty() {
        bail!(
            "--teachers-from {}: no {} there; name a run folder whose teachers finished training",
            dir.display(),
            missing.join(", ")
        );
    }
    Ok(())
}

fn describe_labels(labeled: Option<usize>) -> String {
    labeled.map_or("the whole training split".into(), |n| {
        format!("{n} of the training split")
    })
}

/// Loads `teacher-k.safetensors` from an earlier run folder that [`check_teachers_from`]
/// accepted, after checking that the training data is the same, example for example.
fn load_teachers(session: &Session, dir: &Path) -> Result<Vec<Trainee>> {
    let config = session.config;
    let key_path = dir.join(TRAINING_DATA_KEY);
    let earlier_key = std::fs::read_to_string(&key_path).with_context(|| {
        format!(
            "{}: cannot read the fingerprint of the teachers' training data",
            key_path.display()
        )
    })?;
    if earlier_key.trim() != training_data_key(&session.data.train) {
        bail!(
            "{}: the teachers there were trained on other training data (the files or the split differ); train new ones (drop --teachers-from)",
            key_path.display()
        );
    }
    write_training_data_key(session)?;
    let mut members = Vec::with_capacity(config.teachers);
    for k in 0..config.teachers {
        let name = teacher_name(k);
        let source = dir.join(format!("{name}.safetensors"));
        let model = Model::load_as(session.ctx, session.teacher_spec.clone(), &source)
            .with_context(|| format!("--teachers-from: cannot load {name}"))?;
        let validation_logits = predict(session.ctx, &model, &session.validation, EVAL_BATCH)?;
        let validation_accuracy = metrics::accuracy(
            &validation_logits,
            session.classes,
            &session.validation.host_labels,
        );
        session.console.say(format!(
            "{name}: loaded from {} (validation accuracy {:.2}%)",
            source.display(),
            100.0 * validation_accuracy
        ));
        let checkpoint = save(session, &model, &name)?;
        // Trained in the earlier run: no curve in this one.
        let trained = Trained::without_curve(validation_logits, validation_accuracy);
        members.push(teacher(name, model, trained, checkpoint));
    }
    Ok(members)
}

/// The folder of the teachers' logit cache: the user's cache folder, or the run folder's
/// `cache/` when there is none or it cannot be made (the cache only saves time).
fn logit_cache_dir(session: &Session) -> Result<std::path::PathBuf> {
    let own = session.run_dir.path("cache");
    if let Some(dir) = &session.options.cache_dir {
        match std::fs::create_dir_all(dir) {
            Ok(()) => return Ok(dir.clone()),
            Err(err) => eprintln!(
                "note: cannot use the logit cache {} ({err}); caching in {} instead",
                dir.display(),
                own.display()
            ),
        }
    }
    std::fs::create_dir_all(&own)
        .with_context(|| format!("creating the logit cache {}", own.display()))?;
    Ok(own)
}

/// Each teacher's logits on the training split, from the cache when the data and the
/// checkpoint are the same.
fn transfer_logits(session: &Session, members: &[Trainee]) -> Result<Vec<Vec<f32>>> {
    let cache_dir = logit_cache_dir(session)?;
    let train = &session.data.train;
    let mut all = Vec::with_capacity(members.len());
    for teacher in members {
        let values = teacher.model.read_values(session.ctx)?;
        let bytes = teacher_cache::teacher_bytes(teacher.model.spec().text(), &values);
        let key = teacher_cache::transfer_key(&train.images, &train.labels, &[&bytes]);
        let path = cache_dir.join(format!("{key:032x}.logits"));
        let (cached, source) =
            teacher_cache::load_or_compute(&path, key, train.n, session.classes, || {
                predict(session.ctx, &teacher.model, &session.train, EVAL_BATCH)
            })?;
        if let Some(index) = cached.logits.iter().position(|v| !v.is_finite()) {
            bail!(
                "{}: its logit {index} on the training split is {}: the teacher's weights are not usable (training diverged?); train new teachers",
                teacher.name,
                cached.logits[index]
            );
        }
        let how = match source {
            Source::Computed { reason } => format!("computed ({reason}), cached in"),
            _ => "from the cache".into(),
        };
        session.console.say(format!(
            "{}: transfer-set logits {how} {}",
            teacher.name,
            path.display()
        ));
        all.push(cached.logits);
    }
    Ok(all)
}

/// Element-wise mean of equally long logit arrays (the members' raw logits, the targets of
/// logit matching: Ba & Caruana regress the logits, not log-probabilities).
pub fn mean_rows(members: &[&[f32]]) -> Vec<f32> {
    let mut mean = vec![0f64; members[0].len()];
    for member in members {
        for (m, &v) in mean.iter_mut().zip(member.iter()) {
            *m += v as f64;
        }
    }
    mean.into_iter()
        .map(|m| (m / members.len() as f64) as f32)
        .collect()
}

/// `data` with an absent validation size replaced by `validation`, the count this run
/// uses: on the same data set an absent size and that number select the same split.
fn with_validation_resolved(data: &DataConfig, validation: usize) -> DataConfig {
    DataConfig {
        validation_size: Some(data.validation_size.unwrap_or(validation)),
        ..data.clone()
    }
}

/// Names the validation size when it is the only data setting that differs.
fn data_difference(earlier: &DataConfig, now: &DataConfig) -> String {
    let only_validation = DataConfig {
        validation_size: now.validation_size,
        ..earlier.clone()
    } == *now;
    match (earlier.validation_size, now.validation_size) {
        (Some(before), Some(after)) if only_validation => {
            format!("data.validation_size {before} vs {after}")
        }
        _ => "the [data] settings".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Preset, effective_config_toml};
    use crate::testutil::temp_dir;

    #[test]
    fn teachers_from_must_match_the_settings_and_not_be_the_run_folder() {
        let dir = temp_dir("teachers-from");
        let earlier = RunConfig::preset(Preset::Tiny);
        std::fs::write(
            dir.path().join("config.toml"),
            effective_config_toml(&earlier),
        )
        .unwrap();
        let mut config = earlier.clone();
        config.experiment = Some(Experiment::OmitClass);
        config.student.epochs = 9;
        let text = format!(
            "{:#}",
            check_teachers_from(&config, dir.path(), 500).unwrap_err()
        );
        assert_eq!(
            text,
            format!(
                "--teachers-from {}: no teacher-1.safetensors, teacher-2.safetensors there; name a run folder whose teachers finished training",
                dir.path().display()
            )
        );
        for k in 0..earlier.teachers {
            let file = format!("{}.safetensors", teacher_name(k));
            std::fs::write(dir.path().join(file), b"checked when loaded").unwrap();
        }
        check_teachers_from(&config, dir.path(), 500).expect("students may differ");
        // An absent validation size is the count the run uses; another count differs.
        let mut automatic = config.clone();
        automatic.data.validation_size = None;
        check_teachers_from(&automatic, dir.path(), 500).expect("the same split");
        let text = format!(
            "{:#}",
            check_teachers_from(&automatic, dir.path(), 400).unwrap_err()
        );
        assert!(text.contains("(data.validation_size 500 vs 400"), "{text}");

        config.seed += 1;
        config.teacher.epochs += 1;
        let text = format!(
            "{:#}",
            check_teachers_from(&config, dir.path(), 500).unwrap_err()
        );
        assert!(text.contains("config.toml"), "{text}");
        assert!(
            text.contains("seed 1 vs 2") && text.contains("[teacher]"),
            "{text}"
        );

        // Teachers trained on the whole split must not serve a compression run whose
        // teachers may see only part of it.
        let mut config = earlier.clone();
        config.experiment = Some(Experiment::Compression);
        config.experiments.compression.labeled = Some(500);
        let text = format!(
            "{:#}",
            check_teachers_from(&config, dir.path(), 500).unwrap_err()
        );
        assert!(text.contains("500 of the training split"), "{text}");

        let mut config = earlier.clone();
        config.out_dir = Some(dir.path().to_path_buf());
        let text = format!(
            "{:#}",
            check_teachers_from(&config, dir.path(), 500).unwrap_err()
        );
        assert!(text.contains("choose another --out"), "{text}");

        let missing = dir.path().join("nothing-here");
        let text = format!(
            "{:#}",
            check_teachers_from(&earlier, &missing, 500).unwrap_err()
        );
        assert!(
            text.starts_with(&format!(
                "--teachers-from {}: cannot read",
                missing.display()
            )) && text.contains("the folder of a dk-distill run"),
            "{text}"
        );
    }

    #[test]
    fn the_ensemble_and_its_best_member_are_compared_example_by_example() {
        // Two classes, four examples labeled 0: the ensemble gets the first two right, the
        // member the last three, so one is right only for the ensemble and two only for it.
        let ensemble = [1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0];
        let member = [0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0];
        assert_eq!(
            paired_counts(&ensemble, &member, 2, &[0, 0, 0, 0]),
            "examples right only for the ensemble: 1, only for the member: 2; McNemar p = 1.00"
        );
    }

    #[test]
    fn memorised_teachers_are_named_only_past_the_share() {
        assert_eq!(
            memorised_warning(0.67, 55_000),
            None,
            "Fashion-MNIST's quick teachers"
        );
        let text = memorised_warning(0.995, 3_200).expect("a warning");
        assert!(
            text.starts_with("the teachers fit their 3200 training examples almost perfectly")
                && text.contains("99.5% of them")
                && text.contains("--experiment munge"),
            "{text}"
        );
    }
}
