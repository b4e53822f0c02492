//! Diagonal Gaussian base: log q₀(z) = −Σᵢ [½ln 2π + sᵢ + ½((zᵢ − μᵢ)e^{−sᵢ})²] with trainable
//! mean μ and log-scale s (parameters `loc[D]`, `log_scale[D]`), or the fixed standard normal.

use crate::real::Real;
use crate::shape::TILE;

/// Standard normal N(0, I).
pub(crate) fn log_prob_standard<T: Real>(z: &[T], out: &mut [T; TILE]) {
    let rows = z.len() / TILE;
    let c = -T::HALF_LN_2PI * T::from_usize(rows);
    *out = [c; TILE];
    for zr in z.chunks_exact(TILE) {
        for (o, &v) in out.iter_mut().zip(zr) {
            *o -= T::HALF * v * v;
        }
    }
}

pub(crate) fn backward_standard<T: Real>(z: &[T], coef: &[T; TILE], gz: &mut [T]) {
    for (gr, zr) in gz.chunks_exact_mut(TILE).zip(z.chunks_exact(TILE)) {
        for ((g, &v), &c) in gr.iter_mut().zip(zr).zip(coef) {
            *g = -v * c;
        }
    }
}

pub(crate) fn log_prob_tile<T: Real>(dim: usize, params: &[T], z: &[T], out: &mut [T; TILE]) {
    let (loc, log_scale) = params.split_at(dim.min(params.len()));
    *out = [T::ZERO; TILE];
    for ((zr, &m), &ls) in z.chunks_exact(TILE).zip(loc).zip(log_scale) {
        let inv = (-ls).exp();
        let c = -(T::HALF_LN_2PI + ls);
        for (o, &v) in out.iter_mut().zip(zr) {
            let u = (v - m) * inv;
            *o += c - T::HALF * u * u;
        }
    }
}

/// [`log_prob_tile`] for one point `z` (`dim` values).
pub(crate) fn log_prob_one<T: Real>(dim: usize, params: &[T], z: &[T]) -> T {
    let (loc, log_scale) = params.split_at(dim.min(params.len()));
    let mut out = T::ZERO;
    for ((&v, &m), &ls) in z.iter().zip(loc).zip(log_scale) {
        let u = (v - m) * (-ls).exp();
        out += -(T::HALF_LN_2PI + ls) - T::HALF * u * u;
    }
    out
}

// Same shape as base/gmm.rs::backward_tile (duplicates): the mixture's inner loop is this one
// plus the responsibility weights; kept separate so this hot lane loop carries none.
pub(crate) fn backward_tile<T: Real>(
    dim: usize,
    params: &[T],
    z: &[T],
    coef: &[T; TILE],
    gz: &mut [T],
    gparams: &mut [T],
) {
    let (loc, log_scale) = params.split_at(dim.min(params.len()));
    let (g_loc, g_log_scale) = gparams.split_at_mut(dim.min(gparams.len()));
    for (((((zr, gr), &m), &ls), gm), gs) in z
        .chunks_exact(TILE)
        .zip(gz.chunks_exact_mut(TILE))
        .zip(loc)
        .zip(log_scale)
        .zip(g_loc.iter_mut())
        .zip(g_log_scale.iter_mut())
    {
        let inv = (-ls).exp();
        let mut sum_m = [T::ZERO; TILE];
        let mut sum_s = [T::ZERO; TILE];
        for s in 0..TILE {
            let u = (zr[s] - m) * inv;
            // ∂/∂z = −u/σ, ∂/∂μ = +u/σ, ∂/∂s = u² − 1
            let d = u * inv * coef[s];
            gr[s] = -d;
            sum_m[s] = d;
            sum_s[s] = (u * u - T::ONE) * coef[s];
        }
        *gm += crate::nn::dense::lane_sum(&sum_m);
        *gs += crate::nn::dense::lane_sum(&sum_s);
    }
}
