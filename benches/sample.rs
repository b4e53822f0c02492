//! Drawing 4096 samples θ ~ q with their log q (base draw + forward pass) on the peer workload,
//! f32 and f64, for the peer shape and the H=128 and D=6 variants. Throughput: samples.
mod common;

use common::*;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lwflow::{Flow, Real};
use std::hint::black_box;
use std::time::Duration;

fn bench_type<T: Real>(c: &mut Criterion, ty: &str) {
    let mut group = c.benchmark_group(format!("sample/{ty}"));
    group
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let n = 4096;
    for (name, dim, hidden) in VARIANTS {
        let shape = peer_shape(dim, hidden);
        let p: Vec<T> = params(&shape, 2);
        let flow = Flow::new(shape, &p).unwrap();
        let mut ws = vec![T::ZERO; shape.eval_workspace_len()];
        let mut theta = vec![T::ZERO; n * dim];
        let mut log_q = vec![T::ZERO; n];
        let mut r = rng(3);
        // Checked before it is timed: the reported log q is the density of the samples.
        flow.sample(&mut r, &mut theta, &mut log_q, &mut ws)
            .unwrap();
        let mut check = vec![T::ZERO; n];
        flow.log_prob(&theta, &mut check, &mut ws).unwrap();
        for (a, b) in log_q.iter().zip(&check) {
            let (a, b) = (a.to_f64(), b.to_f64());
            assert!((a - b).abs() <= 1e-3 * (1.0 + b.abs()), "{a} {b}");
        }
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::new(name, n), |b| {
            b.iter(|| {
                flow.sample(&mut r, black_box(&mut theta), &mut log_q, &mut ws)
                    .unwrap()
            })
        });
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    bench_type::<f32>(c, "f32");
    bench_type::<f64>(c, "f64");
}

criterion_group!(sample, benches);
criterion_main!(sample);
