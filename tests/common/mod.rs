//! Helpers shared by the integration tests.
#![allow(dead_code)]

use lwflow::rand_core::{Rng, SeedableRng};
use lwflow::{init_params, Real, Shape};
use rand_xoshiro::Xoshiro256PlusPlus;

pub fn rng(seed: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(seed)
}

/// Uniform on [lo, hi).
pub fn uniform(rng: &mut impl Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
}

/// Parameters with every entry random and non-zero (including the zero-initialised last
/// layers): `init_params`, then every parameter perturbed by U(-amp, amp).
pub fn random_params<T: Real>(shape: &Shape, seed: u64, amp: f64) -> Vec<T> {
    let mut r = rng(seed);
    let mut p = vec![T::ZERO; shape.param_len()];
    init_params(shape, &mut p, &mut r).unwrap();
    for v in p.iter_mut() {
        *v = T::from_f64(v.to_f64() + uniform(&mut r, -amp, amp));
    }
    p
}

pub fn random_points<T: Real>(n: usize, d: usize, seed: u64, half_width: f64) -> Vec<T> {
    let mut r = rng(seed);
    (0..n * d)
        .map(|_| T::from_f64(uniform(&mut r, -half_width, half_width)))
        .collect()
}
