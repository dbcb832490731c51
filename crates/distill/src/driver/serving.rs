//! Serving cost on the run's adapter: latency of one example and throughput of a batch.
//!
//! Latency is the median of a few timed forward passes at batch 1, each recorded,
//! submitted, waited for and read back (what a caller serving one request pays).
//! Throughput is examples per second over a few back-to-back passes at the throughput
//! batch size, waited for at the end. A couple of untimed passes warm the pipelines first.

use std::time::Instant;

use anyhow::Result;
use dk_nn::{Inference, Model};
use dk_tensor::GpuContext;

use crate::results::ServingCost;

const WARMUP: usize = 2;
const LATENCY_RUNS: usize = 7;
const THROUGHPUT_RUNS: usize = 5;

pub fn measure(ctx: &GpuContext, model: &Model, throughput_batch: usize) -> Result<ServingCost> {
    let single = Inference::new(ctx, model, 1)?;
    let mut times = Vec::with_capacity(LATENCY_RUNS);
    for run in 0..WARMUP + LATENCY_RUNS {
        let started = Instant::now();
        let mut encoder = ctx.encoder();
        single.record(&mut encoder);
        ctx.submit_and_wait(encoder);
        single.logits().to_f32(ctx)?;
        if run >= WARMUP {
            times.push(started.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    let latency_batch1_ms = times[times.len() / 2];

    let batched = Inference::new(ctx, model, throughput_batch)?;
    for _ in 0..WARMUP {
        let mut encoder = ctx.encoder();
        batched.record(&mut encoder);
        ctx.submit_and_wait(encoder);
    }
    let started = Instant::now();
    for _ in 0..THROUGHPUT_RUNS {
        let mut encoder = ctx.encoder();
        batched.record(&mut encoder);
        ctx.queue.submit(Some(encoder.finish()));
    }
    ctx.wait();
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    Ok(ServingCost {
        latency_batch1_ms,
        throughput_per_s: (THROUGHPUT_RUNS * throughput_batch) as f64 / seconds,
        throughput_batch,
    })
}

/// The ensemble runs its members one after the other: latencies add, and so do the
/// times per example (throughput is the harmonic combination).
pub fn ensemble(members: &[ServingCost]) -> ServingCost {
    ServingCost {
        latency_batch1_ms: members.iter().map(|m| m.latency_batch1_ms).sum(),
        throughput_per_s: 1.0
            / members
                .iter()
                .map(|m| 1.0 / m.throughput_per_s)
                .sum::<f64>(),
        throughput_batch: members.first().map_or(0, |m| m.throughput_batch),
    }
}
