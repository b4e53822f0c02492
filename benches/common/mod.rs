//! Shared set-up of the benches: the peer workload of `docs/TASKS.md` ("The peer workload"), fixed
//! seeds, and the FLOP count used to turn times into GFLOP/s.
#![allow(dead_code)]

use lwflow::rand_core::{Rng, SeedableRng};
use lwflow::train::{normalise_log_weights, sample_box, NonFinitePolicy};
use lwflow::{init_params, Real, Shape};
use lwflow_tasks::Task;
use rand_xoshiro::Xoshiro256PlusPlus;

/// The peer workload's flow: D, 8 couplings of MLP [⌈D/2⌉, H, H, 2⌊D/2⌋], ReLU, trainable
/// diagonal Gaussian base (lwflow's default soft clamp of 3 is on: one more tanh per coupling
/// than normflows, so lwflow does slightly more work).
pub fn peer_shape(dim: usize, hidden: usize) -> Shape {
    Shape::new(dim, hidden, 8)
}

/// The three shapes every bench runs: the peer's (D=2, H=64), wider (H=128), higher-dimensional
/// (D=6).
pub const VARIANTS: [(&str, usize, usize); 3] =
    [("D2H64", 2, 64), ("D2H128", 2, 128), ("D6H64", 6, 64)];

pub fn rng(seed: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(seed)
}

/// `n` prior draws θ ~ U([-6, 6]^D) and their weights (mean 1). D = 2 uses task 2D2's
/// likelihood (as the peer); other D an isotropic N(0, 2²I) likelihood.
pub fn weighted_samples<T: Real>(n: usize, dim: usize, seed: u64) -> (Vec<T>, Vec<T>) {
    let mut r = rng(seed);
    let mut theta = vec![T::ZERO; n * dim];
    sample_box(
        &vec![T::from_f64(-6.0); dim],
        &vec![T::from_f64(6.0); dim],
        &mut r,
        &mut theta,
    )
    .unwrap();
    let log_l: Vec<f64> = theta
        .chunks(dim)
        .map(|t| {
            let t: Vec<f64> = t.iter().map(|v| v.to_f64()).collect();
            if dim == 2 {
                Task::T2D2.log_likelihood(&t)
            } else {
                -t.iter().map(|v| v * v).sum::<f64>() / 8.0
            }
        })
        .collect();
    let mut w = vec![T::ZERO; n];
    normalise_log_weights(&log_l, NonFinitePolicy::Error, 1.0, &mut w).unwrap();
    (theta, w)
}

/// `init_params` (identity flow, as normflows' `init_zeros`), then every parameter moved by
/// U(-0.05, 0.05) so the flow is not the identity and no layer is all zeros.
pub fn params<T: Real>(shape: &Shape, seed: u64) -> Vec<T> {
    let mut r = rng(seed);
    let mut p = vec![T::ZERO; shape.param_len()];
    init_params(shape, &mut p, &mut r).unwrap();
    for v in p.iter_mut() {
        let u = (r.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        *v = T::from_f64(v.to_f64() + 0.1 * (u - 0.5));
    }
    p
}

/// Multiply-adds per sample of one pass through every conditioner MLP (the FLOP model of
/// `docs/TASKS.md`: 34,304 for the peer shape). One log_prob or sample costs 2× this in FLOPs;
/// a training step (forward, input gradient, weight gradient) 6×.
pub fn macs_per_sample(shape: &Shape) -> usize {
    (0..shape.dense_layers())
        .map(|k| {
            let (i, o) = shape.dense_dims(k);
            i * o
        })
        .sum::<usize>()
        * shape.couplings
}
