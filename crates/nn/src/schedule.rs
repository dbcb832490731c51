//! Learning-rate schedules: the rate of every optimizer step as a pure function of the step.
//!
//! Steps are numbered from 1 like the [`Trainer`](crate::Trainer)'s updates (the first update
//! is step 1); step 0 stands for "before training". A schedule scales the optimizer's rate,
//! called the peak here, so the same schedule fits any optimizer and rate.

use std::f64::consts::PI;

/// How the learning rate moves over training, relative to the optimizer's (peak) rate.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum LrSchedule {
    /// The peak rate at every step.
    #[default]
    Constant,
    /// `peak * factor^k` during steps `k * every_steps + 1 ..= (k + 1) * every_steps`:
    /// multiplied by `factor` (in (0, 1]) every `every_steps` (> 0) steps.
    StepDecay { factor: f32, every_steps: u32 },
    /// Linear warm-up, `peak * step / warmup_steps`, reaching the peak at step `warmup_steps`;
    /// then half a cosine from the peak down to `min_fraction * peak` (`min_fraction` in
    /// [0, 1]) at step `total_steps`, which it keeps after that.
    Cosine {
        warmup_steps: u32,
        total_steps: u32,
        min_fraction: f32,
    },
}

impl LrSchedule {
    /// Step decay: multiply the rate by `factor` every `every_steps` steps.
    pub fn step_decay(factor: f32, every_steps: u32) -> Self {
        LrSchedule::StepDecay {
            factor,
            every_steps,
        }
    }

    /// Linear warm-up over `warmup_steps`, then cosine decay to `min_fraction` of the peak at
    /// step `total_steps`.
    pub fn cosine(warmup_steps: u32, total_steps: u32, min_fraction: f32) -> Self {
        LrSchedule::Cosine {
            warmup_steps,
            total_steps,
            min_fraction,
        }
    }

    /// Learning rate of step `step` (1-based) for peak rate `peak_lr`. Computed in f64 and
    /// rounded once; finite and >= 0 for a schedule that passes [`Self::check`] and a finite
    /// peak >= 0.
    pub fn lr_at(&self, peak_lr: f32, step: u32) -> f32 {
        let peak = f64::from(peak_lr);
        let lr = match *self {
            LrSchedule::Constant => peak,
            LrSchedule::StepDecay {
                factor,
                every_steps,
            } => {
                // A zero period is rejected by `check`; treat it as 1 rather than divide by 0.
                let decays = step.saturating_sub(1) / every_steps.max(1);
                let decays = i32::try_from(decays).unwrap_or(i32::MAX);
                peak * f64::from(factor).powi(decays)
            }
            LrSchedule::Cosine {
                warmup_steps,
                total_steps,
                min_fraction,
            } => cosine_lr(
                peak,
                step,
                warmup_steps,
                total_steps,
                f64::from(min_fraction),
            ),
        };
        lr as f32
    }

    /// Check the values for a training run of `total_steps` optimizer steps; the error is one
    /// line naming the bad value.
    pub fn check(&self, total_steps: u32) -> Result<(), String> {
        self.check_values()?;
        match *self {
            LrSchedule::Cosine { warmup_steps, .. } if warmup_steps > total_steps => Err(format!(
                "lr schedule: warmup_steps is {warmup_steps}, longer than the training run \
                 ({total_steps} steps)"
            )),
            _ => Ok(()),
        }
    }

    /// The checks that need no training length (the [`Trainer`](crate::Trainer) runs these).
    pub(crate) fn check_values(&self) -> Result<(), String> {
        match *self {
            LrSchedule::Constant => Ok(()),
            LrSchedule::StepDecay {
                factor,
                every_steps,
            } => {
                if !(factor > 0.0 && factor <= 1.0) {
                    return Err(format!(
                        "lr schedule: step decay factor must be in (0, 1], got {factor}"
                    ));
                }
                if every_steps == 0 {
                    return Err("lr schedule: step decay every_steps must be > 0, got 0".into());
                }
                Ok(())
            }
            LrSchedule::Cosine {
                warmup_steps,
                total_steps,
                min_fraction,
            } => {
                if !(0.0..=1.0).contains(&min_fraction) {
                    return Err(format!(
                        "lr schedule: cosine min_fraction must be in [0, 1], got {min_fraction}"
                    ));
                }
                if total_steps == 0 {
                    return Err("lr schedule: cosine total_steps must be > 0, got 0".into());
                }
                if warmup_steps > total_steps {
                    return Err(format!(
                        "lr schedule: warmup_steps ({warmup_steps}) exceeds the cosine's \
                         total_steps ({total_steps})"
                    ));
                }
                Ok(())
            }
        }
    }
}

/// Warm-up then cosine decay; see [`LrSchedule::Cosine`].
fn cosine_lr(peak: f64, step: u32, warmup: u32, total: u32, min_fraction: f64) -> f64 {
    if warmup > 0 && step <= warmup {
        return peak * f64::from(step) / f64::from(warmup);
    }
    let floor = peak * min_fraction;
    if step >= total {
        return floor;
    }
    // warmup <= step < total here, so the span is > 0.
    let progress = f64::from(step - warmup) / f64::from(total - warmup);
    floor + (peak - floor) * 0.5 * (1.0 + (PI * progress).cos())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: f32, want: f64) -> bool {
        (f64::from(got) - want).abs() <= 1e-7 * want.abs().max(1e-30)
    }

    #[track_caller]
    fn assert_lr(schedule: LrSchedule, step: u32, want: f64) {
        let got = schedule.lr_at(0.1, step);
        assert!(
            close(got, want),
            "{schedule:?} at step {step}: lr {got}, expected {want} (peak 0.1, rel tol 1e-7)"
        );
    }

    #[test]
    fn constant_is_the_peak_at_every_step() {
        for step in [0, 1, 2, 1000, u32::MAX] {
            assert_lr(LrSchedule::Constant, step, 0.1);
        }
        assert_eq!(LrSchedule::default(), LrSchedule::Constant);
    }

    #[test]
    fn step_decay_multiplies_after_each_period() {
        let s = LrSchedule::step_decay(0.5, 3);
        for (step, want) in [
            (0, 0.1),
            (1, 0.1),
            (3, 0.1),
            (4, 0.05),
            (6, 0.05),
            (7, 0.025),
            (30, 0.1 * 0.5f64.powi(9)),
        ] {
            assert_lr(s, step, want);
        }
        // Factor 1 is a constant rate; a very late step underflows to 0, never NaN.
        assert_lr(LrSchedule::step_decay(1.0, 1), 1_000_000, 0.1);
        assert_eq!(LrSchedule::step_decay(0.5, 1).lr_at(0.1, u32::MAX), 0.0);
    }

    #[test]
    fn cosine_warms_up_linearly_then_decays_to_the_floor() {
        let s = LrSchedule::cosine(4, 12, 0.1);
        let floor = 0.01;
        assert_lr(s, 0, 0.0);
        assert_lr(s, 1, 0.025);
        assert_lr(s, 3, 0.075);
        assert_lr(s, 4, 0.1); // end of warm-up: the peak
        // Half-way through the decay (step 8 of 4..12): the mean of peak and floor.
        assert_lr(s, 8, (0.1 + floor) / 2.0);
        let quarter = floor + (0.1 - floor) * 0.5 * (1.0 + (PI / 4.0).cos());
        assert_lr(s, 6, quarter);
        assert_lr(s, 12, floor); // last step
        assert_lr(s, 13, floor); // past the end
        assert_lr(s, u32::MAX, floor);
        // Strictly decreasing through the decay.
        let rates: Vec<f32> = (4..=12).map(|step| s.lr_at(0.1, step)).collect();
        assert!(rates.windows(2).all(|w| w[1] < w[0]), "{rates:?}");
    }

    #[test]
    fn cosine_edge_cases_without_warmup_or_decay() {
        // No warm-up: the peak at steps 0, then decay to 0 at the last step.
        let s = LrSchedule::cosine(0, 10, 0.0);
        assert_lr(s, 0, 0.1);
        assert_lr(s, 1, 0.1 * 0.5 * (1.0 + (PI / 10.0).cos()));
        assert_eq!(s.lr_at(0.1, 10), 0.0);
        // Warm-up as long as the run: the last step is at the peak, later steps at the floor.
        let s = LrSchedule::cosine(5, 5, 0.2);
        assert_lr(s, 1, 0.02);
        assert_lr(s, 5, 0.1);
        assert_lr(s, 6, 0.02);
        // A one-step run.
        let s = LrSchedule::cosine(0, 1, 0.5);
        assert_lr(s, 1, 0.05);
        // Peak 0 stays 0.
        assert_eq!(LrSchedule::cosine(3, 9, 0.5).lr_at(0.0, 2), 0.0);
    }

    #[test]
    fn check_accepts_sensible_values() {
        for s in [
            LrSchedule::Constant,
            LrSchedule::step_decay(1.0, 1),
            LrSchedule::step_decay(0.1, 100),
            LrSchedule::cosine(0, 1, 0.0),
            LrSchedule::cosine(100, 1000, 1.0),
        ] {
            assert_eq!(s.check(1000), Ok(()), "{s:?}");
        }
        assert_eq!(LrSchedule::Constant.check(0), Ok(()));
    }

    #[test]
    fn check_names_nonsense_values_in_one_line() {
        let cases = [
            (LrSchedule::step_decay(0.0, 10), "factor"),
            (LrSchedule::step_decay(-0.5, 10), "factor"),
            (LrSchedule::step_decay(1.5, 10), "factor"),
            (LrSchedule::step_decay(f32::NAN, 10), "factor"),
            (LrSchedule::step_decay(0.5, 0), "every_steps"),
            (LrSchedule::cosine(0, 100, -0.1), "min_fraction"),
            (LrSchedule::cosine(0, 100, 1.5), "min_fraction"),
            (LrSchedule::cosine(0, 100, f32::NAN), "min_fraction"),
            (LrSchedule::cosine(0, 0, 0.0), "total_steps"),
            (LrSchedule::cosine(200, 100, 0.0), "warmup_steps"),
            // Warm-up longer than the training run (1000 steps).
            (LrSchedule::cosine(1001, 5000, 0.0), "1000 steps"),
        ];
        for (schedule, word) in cases {
            let err = schedule.check(1000).unwrap_err();
            assert!(
                err.contains(word) && !err.contains('\n'),
                "{schedule:?}: {err}"
            );
        }
    }
}
