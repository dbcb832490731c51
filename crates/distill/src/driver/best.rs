//! The weights of the best validation epoch, kept on the GPU.
//!
//! After an epoch that validates better than every earlier one, the model's parameter
//! buffers are copied into a snapshot with buffer-to-buffer copies (no read-back); at the
//! end of training the snapshot is copied back, so the model holds the best epoch's weights.

use anyhow::Result;
use dk_nn::Model;
use dk_tensor::{DType, GpuContext, Tensor};

/// How good one validated epoch is: accuracy first, ties broken by the lower NLL.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    pub accuracy: f64,
    pub nll: f64,
}

impl Score {
    /// True when `self` is strictly better than `other`.
    pub fn beats(&self, other: &Score) -> bool {
        self.accuracy > other.accuracy || (self.accuracy == other.accuracy && self.nll < other.nll)
    }
}

/// A copy of a model's parameters and the epoch it was taken after.
pub struct BestWeights {
    copies: Vec<Tensor>,
    live: Vec<Tensor>,
    best: Option<(usize, Score)>,
}

impl BestWeights {
    /// Allocates one buffer per parameter tensor of `model` (nothing is copied yet).
    pub fn new(ctx: &GpuContext, model: &Model) -> Result<BestWeights> {
        let live: Vec<Tensor> = model.parameters().to_vec();
        let copies = live
            .iter()
            .map(|p| Tensor::zeros(ctx, p.shape(), DType::F32))
            .collect::<dk_tensor::Result<Vec<_>>>()?;
        Ok(BestWeights {
            copies,
            live,
            best: None,
        })
    }

    /// Records `score` for `epoch`; snapshots the weights when it is the best so far.
    /// Returns whether it was.
    pub fn offer(&mut self, ctx: &GpuContext, epoch: usize, score: Score) -> bool {
        let improved = self.best.is_none_or(|(_, best)| score.beats(&best));
        if improved {
            self.best = Some((epoch, score));
            copy_all(ctx, &self.live, &self.copies);
        }
        improved
    }

    /// The best epoch so far and its score.
    pub fn best(&self) -> Option<(usize, Score)> {
        self.best
    }

    /// Epochs validated since the best one (0 right after an improvement).
    pub fn epochs_since_best(&self, epoch: usize) -> usize {
        self.best.map_or(0, |(best, _)| epoch - best)
    }

    /// Copies the best epoch's weights back into the model (no-op before any epoch).
    pub fn restore(&self, ctx: &GpuContext) {
        if self.best.is_some() {
            copy_all(ctx, &self.copies, &self.live);
        }
    }
}

fn copy_all(ctx: &GpuContext, from: &[Tensor], to: &[Tensor]) {
    let mut encoder = ctx.encoder();
    for (src, dst) in from.iter().zip(to) {
        encoder.copy_buffer_to_buffer(src.buffer(), 0, dst.buffer(), 0, src.buffer().size());
    }
    ctx.queue.submit(Some(encoder.finish()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_first_then_nll() {
        let a = Score {
            accuracy: 0.9,
            nll: 0.5,
        };
        let more_accurate = Score {
            accuracy: 0.91,
            nll: 0.9,
        };
        let same_but_surer = Score {
            accuracy: 0.9,
            nll: 0.4,
        };
        assert!(more_accurate.beats(&a));
        assert!(same_but_surer.beats(&a));
        assert!(!a.beats(&a), "a tie is not an improvement");
        assert!(!a.beats(&more_accurate));
    }
}
