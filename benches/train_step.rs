//! One training step (loss + gradient + Adam) on the peer workload, f32 and f64, at batch 256,
//! 1024 and 4096; the wider (H=128) and 6-D variants at batch 1024; the recompute mode
//! (`loss_and_gradient_recompute`, O(tile) workspace) of the peer shape at 256 and 4096.
//! Throughput: samples.
mod common;

use common::*;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lwflow::{Adam, Flow, Real};
use std::hint::black_box;
use std::time::Duration;

fn bench_type<T: Real>(c: &mut Criterion, ty: &str) {
    let mut group = c.benchmark_group(format!("train_step/{ty}"));
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let runs = VARIANTS
        .iter()
        .map(|&(name, dim, hidden)| (name, dim, hidden, false))
        .chain([("D2H64-recompute", 2, 64, true)]);
    for (name, dim, hidden, recompute) in runs {
        let batches: &[usize] = match name {
            "D2H64" => &[256, 1024, 4096],
            "D2H64-recompute" => &[256, 4096],
            _ => &[1024],
        };
        let shape = peer_shape(dim, hidden);
        for &batch in batches {
            let (theta, weights) = weighted_samples::<T>(batch, dim, 1);
            let mut p: Vec<T> = params(&shape, 2);
            let mut grad = vec![T::ZERO; shape.param_len()];
            let mut state = vec![T::ZERO; shape.optimizer_len()];
            let ws_len = if recompute {
                shape.recompute_workspace_len()
            } else {
                shape.workspace_len()
            };
            let mut ws = vec![T::ZERO; ws_len];
            let adam = Adam::default();
            let mut t = 1u64;
            let mut step = |p: &mut Vec<T>, t: &mut u64| {
                let loss = Flow::new(shape, p)
                    .and_then(|f| {
                        if recompute {
                            f.loss_and_gradient_recompute(&theta, &weights, &mut grad, &mut ws)
                        } else {
                            f.loss_and_gradient(&theta, &weights, &mut grad, &mut ws)
                        }
                    })
                    .unwrap();
                adam.step(&shape, p, &grad, &mut state, *t).unwrap();
                *t += 1;
                loss
            };
            // Checked before it is timed: a finite loss that Adam lowers over a few steps.
            let first = step(&mut p, &mut t);
            for _ in 0..20 {
                step(&mut p, &mut t);
            }
            let later = step(&mut p, &mut t);
            assert!(
                first.is_finite() && later.is_finite() && later < first,
                "{first} {later}"
            );
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_function(BenchmarkId::new(name, batch), |b| {
                b.iter(|| black_box(step(&mut p, &mut t)))
            });
        }
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    bench_type::<f32>(c, "f32");
    bench_type::<f64>(c, "f64");
}

criterion_group!(train_step, benches);
criterion_main!(train_step);
