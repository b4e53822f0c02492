//! log q(θ) on the peer workload, f32 and f64: a batch of 4096 (throughput: samples) and a
//! single sample (latency), for the peer shape and the H=128 and D=6 variants.
mod common;

use common::*;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lwflow::{Flow, Real};
use std::hint::black_box;
use std::time::Duration;

fn bench_type<T: Real>(c: &mut Criterion, ty: &str) {
    let mut group = c.benchmark_group(format!("log_prob/{ty}"));
    group
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (name, dim, hidden) in VARIANTS {
        let shape = peer_shape(dim, hidden);
        let p: Vec<T> = params(&shape, 2);
        let flow = Flow::new(shape, &p).unwrap();
        let mut ws = vec![T::ZERO; shape.eval_workspace_len()];
        for batch in [4096usize, 1] {
            let (theta, _) = weighted_samples::<T>(batch, dim, 1);
            let mut out = vec![T::ZERO; batch];
            // Checked before it is timed: finite, and the single sample agrees with the
            // first row of the batch.
            flow.log_prob(&theta, &mut out, &mut ws).unwrap();
            assert!(out.iter().all(|v| v.is_finite()));
            if batch == 1 {
                let (big, _) = weighted_samples::<T>(4096, dim, 1);
                let mut big_out = vec![T::ZERO; 4096];
                flow.log_prob(&big, &mut big_out, &mut ws).unwrap();
                let diff = (out[0] - big_out[0]).abs().to_f64();
                assert!(diff <= 1e-4 * (1.0 + big_out[0].abs().to_f64()), "{diff}");
            }
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_function(BenchmarkId::new(name, batch), |b| {
                b.iter(|| flow.log_prob(black_box(&theta), &mut out, &mut ws).unwrap())
            });
        }
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    bench_type::<f32>(c, "f32");
    bench_type::<f64>(c, "f64");
}

criterion_group!(log_prob, benches);
criterion_main!(log_prob);
