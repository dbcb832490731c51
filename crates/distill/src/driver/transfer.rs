//! The distilled students' transfer set in the standard study: the training split, plus up
//! to `distill.unlabeled` images of the pool that the ensemble labels (Bucila, Caruana and
//! Niculescu-Mizil's transfer set). The hard-label student cannot learn from an image
//! without its label; a distilled student can, which is where distillation pays most when
//! labels are scarce. Every student trains for the same number of steps whatever its set.

use anyhow::Result;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::experiments::relabel;
use super::gpu_data::GpuSplit;
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
        let count = unlabeled_count(session.config, session.data);
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

    /// Describes the set for the results' `transfer_set`.
    pub fn description(&self) -> String {
        match self.unlabeled {
            0 => "training split".into(),
            n => format!("training split + {n} unlabeled images labeled by the ensemble"),
        }
    }
}

/// The pool images the standard study's distilled students learn from: `distill.unlabeled`,
/// at most the pool's size; none in an experiment, which chooses its own transfer sets.
pub fn unlabeled_count(config: &RunConfig, data: &StudyData) -> usize {
    match config.experiment {
        None => config.distill.unlabeled.min(data.pool.n),
        Some(_) => 0,
    }
}

/// Epochs of a distilled student on a transfer set of `transfer_n` examples: whole epochs
/// within the hard-label student's steps on the `train_n` examples of the training split
/// (at least one), so that distillation never wins by training longer.
pub fn transfer_epochs(
    student: &ModelConfig,
    batch: usize,
    train_n: usize,
    transfer_n: usize,
) -> usize {
    let hard_steps = student.epochs_for(train_n, batch) * steps_per_epoch(train_n, batch);
    (hard_steps / steps_per_epoch(transfer_n, batch)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // A budget in epochs: 3 epochs of 117 steps, less than one epoch of 429.
        assert_eq!(transfer_epochs(&student(None), 128, 15_000, 55_000), 1);
        assert_eq!(transfer_epochs(&student(None), 128, 15_000, 30_000), 1);
        assert_eq!(transfer_epochs(&student(None), 128, 30_000, 30_000), 3);
    }
}
