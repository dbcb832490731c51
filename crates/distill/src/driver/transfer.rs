//! The distilled students' transfer set in the standard study: the training split, plus up
//! to `distill.unlabeled` images of the pool that the ensemble labels (Bucila, Caruana and
//! Niculescu-Mizil's transfer set). The hard-label student cannot learn from an image
//! without its label; a distilled student can, which is where distillation pays most when
//! labels are scarce. A distilled student trains for whole epochs of its larger set within
//! the hard-label student's steps, so that distillation never wins by training longer; the
//! images added are capped so that one such epoch fits (and so that the set fits one GPU
//! buffer binding), and the plan says when that leaves fewer than asked.

use anyhow::Result;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::experiments::relabel;
use super::gpu_data::{GpuSplit, examples_fitting};
use super::session::Session;
use super::teachers::{Teachers, mean_rows};
use crate::config::{ModelConfig, RunConfig, steps_per_epoch};
use crate::data::StudyData;
use crate::metrics;
use crate::seeds::derive_seed;

/// What the distilled students learn from, row by row.
pub struct TransferSet {
    /// The training split followed by the unlabeled images, whose label buffer holds the
    /// ensemble's argmax (`None`: the training split alone).
    pub extended: Option<GpuSplit>,
    /// Pool images added to the training split.
    pub unlabeled: usize,
    /// The ensemble's targets: mean log-softmax of the members.
    pub ensemble: Vec<f32>,
    /// The members' mean raw logits (logit matching's targets).
    pub mean_raw: Vec<f32>,
    /// The best member's logits.
    pub best_teacher: Vec<f32>,
}

impl TransferSet {
    /// The training split, and `distill.unlabeled` images of the pool (at most the pool)
    /// drawn by a seeded shuffle and labeled by every member.
    pub fn prepare(session: &Session, teachers: &Teachers) -> Result<TransferSet> {
        let pool = &session.data.pool;
        let limit = session.ctx.limits.max_storage_buffer_binding_size;
        let (count, _) = unlabeled_count(session.config, session.data, limit);
        let best = &teachers.transfer_logits[teachers.best];
        if count == 0 {
            return Ok(TransferSet {
                extended: None,
                unlabeled: 0,
                ensemble: teachers.ensemble_targets.clone(),
                mean_raw: teachers.mean_raw_logits.clone(),
                best_teacher: best.clone(),
            });
        }
        let mut order: Vec<usize> = (0..pool.n).collect();
        let seed = derive_seed(session.config.seed, "unlabeled", 0);
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let images = pool.select(&order[..count]);
        let members = teachers.member_logits(
            session,
            &GpuSplit::upload(session.ctx, "unlabeled", &images)?,
        )?;
        let refs: Vec<&[f32]> = members.iter().map(Vec::as_slice).collect();
        let ensemble = metrics::ensemble_logits(&refs, session.classes);
        let extended = session.data.train.concat(&relabel(&images, &ensemble));
        session.console.say(format!(
            "the ensemble labels {count} of the {} unlabeled images for the distilled students",
            pool.n
        ));
        Ok(TransferSet {
            extended: Some(GpuSplit::upload(session.ctx, "transfer", &extended)?),
            unlabeled: count,
            ensemble: [teachers.ensemble_targets.as_slice(), &ensemble].concat(),
            mean_raw: [teachers.mean_raw_logits.as_slice(), &mean_rows(&refs)].concat(),
            best_teacher: [best.as_slice(), &members[teachers.best]].concat(),
        })
    }

    /// The split the distilled students train on.
    pub fn split<'s>(&'s self, session: &'s Session) -> &'s GpuSplit {
        self.extended.as_ref().unwrap_or(&session.train)
    }

    /// Epochs of a distilled student on this set ([`transfer_epochs`]).
    pub fn epochs(&self, session: &Session) -> usize {
        let config = session.config;
        transfer_epochs(
            &config.student,
            config.batch_size,
            session.train.n,
            self.split(session).n,
        )
    }

    /// Describes the set for the students' jobs (`StudentJob::transfer_set`).
    pub fn description(&self) -> String {
        match self.unlabeled {
            0 => "training split".into(),
            n => format!("training split + {n} unlabeled images labeled by the ensemble"),
        }
    }
}

/// The pool images the standard study's distilled students learn from: `distill.unlabeled`,
/// at most the pool, at most what lets one epoch of the larger set fit within the hard-label
/// student's steps, and at most what fits one storage binding of `max_binding_bytes`; none
/// in an experiment, which chooses its own transfer sets. Returns the count and, when it is
/// below the setting, the line that says why.
pub fn unlabeled_count(
    config: &RunConfig,
    data: &StudyData,
    max_binding_bytes: u64,
) -> (usize, Option<String>) {
    let wanted = config.distill.unlabeled;
    if config.experiment.is_some() || wanted == 0 {
        return (0, None);
    }
    if data.pool.n == 0 {
        let note = format!(
            "distill.unlabeled (--unlabeled) = {wanted}: none used, as every training example keeps its label (--max-labeled or --train-size withholds some)"
        );
        return (0, Some(note));
    }
    let (train_n, batch) = (data.train.n, config.batch_size);
    let hard_steps = hard_label_steps(&config.student, batch, train_n);
    let fits_binding = examples_fitting(&data.train, max_binding_bytes);
    let limits = [
        (data.pool.n, format!("the pool holds {}", data.pool.n)),
        (
            (hard_steps * batch).saturating_sub(train_n),
            format!(
                "one epoch of the distilled students must fit in the hard-label student's {hard_steps} steps"
            ),
        ),
        (
            fits_binding.saturating_sub(train_n),
            format!(
                "the set must fit one buffer binding of this adapter ({fits_binding} examples)"
            ),
        ),
    ];
    let (count, why) = limits
        .into_iter()
        .min_by_key(|(room, _)| *room)
        .expect("three limits");
    if count >= wanted {
        return (wanted, None);
    }
    let note = format!("distill.unlabeled (--unlabeled) = {wanted}: {count} used, as {why}");
    (count, Some(note))
}

/// Epochs of a distilled student on a transfer set of `transfer_n` examples: whole epochs
/// within the hard-label student's steps on the `train_n` examples of the training split
/// (at least one; [`unlabeled_count`] keeps the set small enough for one to fit).
pub fn transfer_epochs(
    student: &ModelConfig,
    batch: usize,
    train_n: usize,
    transfer_n: usize,
) -> usize {
    (hard_label_steps(student, batch, train_n) / steps_per_epoch(transfer_n, batch)).max(1)
}

/// Steps the hard-label student takes: whole epochs of the `train_n` training examples.
fn hard_label_steps(student: &ModelConfig, batch: usize, train_n: usize) -> usize {
    student.epochs_for(train_n, batch) * steps_per_epoch(train_n, batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::blank_study;

    #[test]
    fn distilled_students_never_take_more_steps_than_the_hard_label_one() {
        let student = |steps| ModelConfig {
            steps,
            epochs: 3,
            ..ModelConfig::default()
        };
        // 4,500 steps on 15,000 examples at batch 128: 39 epochs of 117 = 4,563 steps; a
        // 55,000-example epoch is 429 steps, and 10 of them (4,290) fit.
        assert_eq!(
            transfer_epochs(&student(Some(4_500)), 128, 15_000, 55_000),
            10
        );
        // The same set: the same epochs.
        assert_eq!(
            transfer_epochs(&student(Some(4_500)), 128, 15_000, 15_000),
            39
        );
        assert_eq!(transfer_epochs(&student(None), 128, 30_000, 30_000), 3);
        // A budget in epochs: 3 epochs of 117 steps (351) hold one epoch of up to 44,928.
        assert_eq!(transfer_epochs(&student(None), 128, 15_000, 44_928), 1);
    }

    fn study(train: usize, pool: usize) -> StudyData {
        blank_study(train, 10, pool)
    }

    #[test]
    fn unlabeled_images_are_capped_and_the_plan_says_why() {
        let mut config = RunConfig::preset(crate::config::Preset::Quick);
        let data = study(15_000, 40_000);
        let unlimited = u64::MAX;
        assert_eq!(unlabeled_count(&config, &data, unlimited), (40_000, None));
        config.distill.unlabeled = 50_000;
        let (count, note) = unlabeled_count(&config, &data, unlimited);
        assert_eq!(count, 40_000);
        assert_eq!(
            note.unwrap(),
            "distill.unlabeled (--unlabeled) = 50000: 40000 used, as the pool holds 40000"
        );
        // 3 epochs of 117 steps at batch 128: 44,928 examples in one epoch, 29,928 added.
        config.student.steps = None;
        config.student.epochs = 3;
        let (count, note) = unlabeled_count(&config, &data, unlimited);
        assert_eq!(count, 29_928);
        assert!(
            note.unwrap()
                .ends_with("in the hard-label student's 351 steps")
        );
        // 128 MiB of 784-byte images: 171,196 examples.
        config.student.steps = Some(1_000_000);
        let (count, note) = unlabeled_count(&config, &study(150_000, 40_000), 128 << 20);
        assert_eq!(count, 21_196);
        assert!(note.unwrap().ends_with("(171196 examples)"));
        let (count, note) = unlabeled_count(&config, &study(15_000, 0), unlimited);
        assert_eq!(count, 0);
        assert!(
            note.unwrap()
                .contains("none used, as every training example keeps its label")
        );
        config.experiment = Some(crate::config::Experiment::Munge);
        assert_eq!(unlabeled_count(&config, &data, unlimited), (0, None));
    }
}
