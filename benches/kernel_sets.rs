//! The kernel sets side by side in one binary and sitting (`lwflow::kernels`): the peer
//! workload's train step at B = 4096, log_prob of 4096 and of one sample, f32, with every set
//! this CPU supports. The portable set is what a default build ran before sets were chosen at
//! run time; compare with a `-C target-cpu=native` build of the `train_step` / `log_prob`
//! benches for the best the compiler gives.
mod common;

use common::*;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lwflow::kernels::{detect, use_kernels, Kernels};
use lwflow::{Adam, Flow};
use std::hint::black_box;
use std::time::Duration;

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("kernels");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let shape = peer_shape(2, 64);
    for set in [Kernels::Portable, Kernels::Avx2, Kernels::Avx512] {
        if use_kernels(set).is_err() {
            continue;
        }
        let name = format!("{set:?}");
        let batch = 4096;
        let (theta, weights) = weighted_samples::<f32>(batch, 2, 1);
        let mut p: Vec<f32> = params(&shape, 2);
        let mut grad = vec![0.0f32; shape.param_len()];
        let mut state = vec![0.0f32; shape.optimizer_len()];
        let mut ws = vec![0.0f32; shape.workspace_len()];
        let adam = Adam::default();
        let mut t = 1u64;
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(BenchmarkId::new(format!("{name}/train_step"), batch), |b| {
            b.iter(|| {
                let loss = Flow::new(shape, &p)
                    .and_then(|f| f.loss_and_gradient(&theta, &weights, &mut grad, &mut ws))
                    .unwrap();
                adam.step(&shape, &mut p, &grad, &mut state, t).unwrap();
                t += 1;
                black_box(loss)
            })
        });
        let p: Vec<f32> = params(&shape, 2);
        let flow = Flow::new(shape, &p).unwrap();
        for n in [4096usize, 1] {
            let (theta, _) = weighted_samples::<f32>(n, 2, 1);
            let mut out = vec![0.0f32; n];
            group.throughput(Throughput::Elements(n as u64));
            group.bench_function(BenchmarkId::new(format!("{name}/log_prob"), n), |b| {
                b.iter(|| flow.log_prob(black_box(&theta), &mut out, &mut ws).unwrap())
            });
        }
    }
    use_kernels(detect()).unwrap();
    group.finish();
}

criterion_group!(kernel_benches, benches);
criterion_main!(kernel_benches);
