//! Uniform and normal draws for the exact posterior samplers and the test data: the same
//! stream as the core's own (private) draws, so a seed gives the numbers it gave when these
//! samplers lived in the core.
//!
//! A duplicate of the core's `src/rng.rs`, on purpose: the core keeps its draw helpers private
//! (they are not part of the library), and this crate is the yardstick the core is measured
//! against, so it may not reach inside it. The bits are pinned by `tests/refine_tasks.rs`
//! (the paper tasks' exact samples, bit for bit) and the tests of the Cortex-M pipeline.

use lwflow::rand_core::Rng;

/// A source of uniform and normal draws over a borrowed generator, computed in `f64` by the
/// Box–Muller transform. Normals come in pairs; the spare is kept for the next call, so a
/// `Draws` consumes one `u64` per uniform and two per pair of normals. Deterministic: the same
/// generator state gives the same draws on every platform with IEEE-754 `f64` and the same
/// `libm`.
pub struct Draws<'r> {
    rng: &'r mut dyn Rng,
    spare: Option<f64>,
}

impl<'r> Draws<'r> {
    /// Wraps a generator.
    pub fn new(rng: &'r mut dyn Rng) -> Self {
        Draws { rng, spare: None }
    }

    /// A uniform draw on the open interval (0, 1) with 53 random bits.
    #[inline]
    pub fn uniform(&mut self) -> f64 {
        ((self.rng.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform integer in `0..n` (`n ≥ 1`), by Lemire's multiply-shift (bias < n / 2⁶⁴).
    #[inline]
    pub fn below(&mut self, n: usize) -> usize {
        ((self.rng.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// A standard normal draw.
    #[inline]
    pub fn normal(&mut self) -> f64 {
        if let Some(v) = self.spare.take() {
            return v;
        }
        let u1 = self.uniform();
        let u2 = self.uniform();
        let r = libm::sqrt(-2.0 * libm::log(u1));
        let (s, c) = libm::sincos(2.0 * core::f64::consts::PI * u2);
        self.spare = Some(r * s);
        r * c
    }
}
