//! End-to-end time to accuracy: task 2D2 from prior draws to a flow with KL(p‖q) ≤ 0.01 —
//! prior sampling, likelihood, weights, weighted EM + BIC for the base, minibatch training with
//! early stopping — on the peer's flow (D=2, H=64, 8 couplings), f32 and f64.
//!
//! The KL is checked (20,000 exact posterior draws) before the fit is timed. With
//! `LWFLOW_FIT_ONCE=1` the binary runs one fit, prints its KL and wall time and exits, so
//! `/usr/bin/time -v` can report the peak RSS of a whole run.
mod common;

use common::*;
use criterion::{criterion_group, Criterion, Throughput};
use lwflow::base::em::EmConfig;
use lwflow::train::*;
use lwflow::{Flow, Real, Shape};
use lwflow_tasks::{metrics, Draws, Task};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Prior draws (the method's N; the weights' ESS is ≈ 1,300 of them).
const N: usize = 20_000;
const KL_TARGET: f64 = 0.01;

fn config() -> FitConfig {
    let train = TrainConfig {
        max_epochs: 20,
        patience: 5,
        ..TrainConfig::default()
    };
    FitConfig {
        base: BaseChoice::Auto(4),
        em: EmConfig::default(),
        train,
        init_seed: 3,
    }
}

/// Draws, weighs and fits; returns the fitted shape and parameters.
fn fit_2d2<T: Real>(seed: u64) -> (Shape, Vec<T>) {
    let task = Task::T2D2;
    let d = task.dim();
    let template = peer_shape(d, 64);
    let cfg = config();
    let mut r = rng(seed);
    let mut theta = vec![T::ZERO; N * d];
    sample_box(
        &[T::from_f64(-6.0); 2],
        &[T::from_f64(6.0); 2],
        &mut r,
        &mut theta,
    )
    .unwrap();
    let log_l: Vec<f64> = theta
        .chunks(d)
        .map(|t| task.log_likelihood(&[t[0].to_f64(), t[1].to_f64()]))
        .collect();
    let mut w = vec![T::ZERO; N];
    normalise_log_weights(&log_l, NonFinitePolicy::Error, 100.0, &mut w).unwrap();
    let mut params = vec![T::ZERO; cfg.base.max_shape(&template).param_len()];
    let need = FitMemory::new(&template, &cfg, N);
    let (mut reals, mut order, mut em) = (
        vec![T::ZERO; need.reals],
        vec![0u32; need.order],
        vec![0.0; need.em],
    );
    let buf = FitBuffers::split(&template, &cfg, N, &mut reals, &mut order, &mut em).unwrap();
    let rep = fit(&template, &cfg, &mut params, &theta, &w, buf, |_| true).unwrap();
    params.truncate(rep.shape.param_len());
    (rep.shape, params)
}

/// KL(p‖q) over 20,000 exact posterior draws.
fn kl<T: Real>(shape: Shape, params: &[T]) -> f64 {
    let task = Task::T2D2;
    let m = 20_000;
    let mut r = rng(99);
    let mut draws = Draws::new(&mut r);
    let mut post = vec![0.0f64; m * 2];
    for row in post.chunks_mut(2) {
        task.sample_posterior(&mut draws, row);
    }
    let post_t: Vec<T> = post.iter().map(|&v| T::from_f64(v)).collect();
    let mut log_q = vec![T::ZERO; m];
    let mut ws = vec![T::ZERO; shape.eval_workspace_len()];
    Flow::new(shape, params)
        .unwrap()
        .log_prob(&post_t, &mut log_q, &mut ws)
        .unwrap();
    let log_p: Vec<f64> = post.chunks(2).map(|t| task.log_posterior(t)).collect();
    let log_q: Vec<f64> = log_q.iter().map(|v| v.to_f64()).collect();
    metrics::kl_from_posterior_samples(&log_p, &log_q).unwrap()
}

fn bench_type<T: Real>(c: &mut Criterion, ty: &str) {
    let (shape, p) = fit_2d2::<T>(1);
    let k = kl(shape, &p);
    assert!(k <= KL_TARGET, "KL {k} above {KL_TARGET}");
    let mut group = c.benchmark_group("fit_2d2");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(N as u64));
    group.bench_function(ty, |b| b.iter(|| black_box(fit_2d2::<T>(black_box(1)))));
    group.finish();
}

fn benches(c: &mut Criterion) {
    bench_type::<f32>(c, "f32");
    bench_type::<f64>(c, "f64");
}

criterion_group!(fit_benches, benches);

fn main() {
    if std::env::var_os("LWFLOW_FIT_ONCE").is_some() {
        let t0 = Instant::now();
        let (shape, p) = fit_2d2::<f32>(1);
        let secs = t0.elapsed().as_secs_f64();
        println!(
            "fit 2D2 f32: {secs:.3} s, K = {}, KL = {:.5}",
            shape.components(),
            kl(shape, &p)
        );
        return;
    }
    fit_benches();
    Criterion::default().configure_from_args().final_summary();
}
