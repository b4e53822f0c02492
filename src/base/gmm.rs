//! Gaussian-mixture base with K diagonal components.
//!
//! Parameters `logits[K]`, `loc[K][D]`, `log_scale[K][D]`; weights w = softmax(logits);
//! lₖ(z) = ln wₖ − Σᵢ [½ln 2π + sₖᵢ + ½((zᵢ − μₖᵢ)e^{−sₖᵢ})²]; log q₀(z) = logsumexpₖ lₖ(z).
//! Gradients use the responsibilities rₖ = e^{lₖ − log q₀}: ∂/∂zᵢ = −Σₖ rₖ uₖᵢ/σₖᵢ,
//! ∂/∂μₖᵢ = rₖ uₖᵢ/σₖᵢ, ∂/∂sₖᵢ = rₖ(uₖᵢ² − 1), ∂/∂logitₖ = rₖ − wₖ, with u = (z − μ)/σ.

use crate::nn::dense::lane_sum;
use crate::real::Real;
use crate::shape::TILE;

/// Splits the base parameters into (logits, loc, log_scale).
#[inline]
pub(crate) fn split<T>(dim: usize, k: usize, params: &[T]) -> (&[T], &[T], &[T]) {
    let (logits, rest) = params.split_at(k.min(params.len()));
    let (loc, log_scale) = rest.split_at((k * dim).min(rest.len()));
    (logits, loc, log_scale)
}

/// ln Σ exp(logits), stable: generic over the flow's precision, unlike the weight code's f64
/// sums (`crate::logsum`, whose module docs say why both exist).
pub(crate) fn log_sum_exp<T: Real>(logits: &[T]) -> T {
    let m = logits.iter().fold(-T::MAX, |a, &b| a.max(b));
    let s = logits.iter().fold(T::ZERO, |a, &b| a + (b - m).exp());
    m + s.ln()
}

/// Writes lₖ for every component and lane into `comp` (`K·TILE`).
fn component_logs<T: Real>(dim: usize, k: usize, params: &[T], z: &[T], comp: &mut [T]) {
    let (logits, loc, log_scale) = split(dim, k, params);
    let lse = log_sum_exp(logits);
    for (((row, &logit), mu), ls) in comp
        .chunks_exact_mut(TILE)
        .zip(logits)
        .zip(loc.chunks_exact(dim))
        .zip(log_scale.chunks_exact(dim))
    {
        let mut c = logit - lse;
        for &s in ls {
            c -= T::HALF_LN_2PI + s;
        }
        let mut acc = [c; TILE];
        for ((zr, &m), &s) in z.chunks_exact(TILE).zip(mu).zip(ls) {
            let inv = (-s).exp();
            for (a, &v) in acc.iter_mut().zip(zr) {
                let u = (v - m) * inv;
                *a -= T::HALF * u * u;
            }
        }
        row.copy_from_slice(&acc);
    }
}

/// Per-lane logsumexp over the K rows of `comp`.
fn lanes_log_sum_exp<T: Real>(comp: &[T], out: &mut [T; TILE]) {
    let mut m = [-T::MAX; TILE];
    for row in comp.chunks_exact(TILE) {
        for (a, &v) in m.iter_mut().zip(row) {
            *a = a.max(v);
        }
    }
    let mut s = [T::ZERO; TILE];
    for row in comp.chunks_exact(TILE) {
        for ((a, &v), &mx) in s.iter_mut().zip(row).zip(&m) {
            *a += (v - mx).exp();
        }
    }
    for ((o, &mx), &sv) in out.iter_mut().zip(&m).zip(&s) {
        *o = mx + sv.ln();
    }
}

pub(crate) fn log_prob_tile<T: Real>(
    dim: usize,
    k: usize,
    params: &[T],
    z: &[T],
    out: &mut [T; TILE],
    scratch: &mut [T],
) {
    let n = (k * TILE).min(scratch.len());
    let comp = &mut scratch[..n];
    component_logs(dim, k, params, z, comp);
    lanes_log_sum_exp(comp, out);
}

/// [`log_prob_tile`] for one point `z` (`dim` values): the component terms as
/// `component_logs` forms them, each computed once and folded into a running logsumexp
/// (the running maximum rescales the sum when it moves).
pub(crate) fn log_prob_one<T: Real>(dim: usize, k: usize, params: &[T], z: &[T]) -> T {
    let (logits, loc, log_scale) = split(dim, k, params);
    let lse = log_sum_exp(logits);
    let (mut m, mut sum) = (-T::MAX, T::ZERO);
    let comps = loc
        .chunks_exact(dim.max(1))
        .zip(log_scale.chunks_exact(dim.max(1)));
    for (&logit, (mu, ls)) in logits.iter().zip(comps) {
        let mut c = logit - lse;
        for &s in ls {
            c -= T::HALF_LN_2PI + s;
        }
        for ((&v, &mu), &s) in z.iter().zip(mu).zip(ls) {
            let u = (v - mu) * (-s).exp();
            c -= T::HALF * u * u;
        }
        if c > m {
            sum = sum * (m - c).exp() + T::ONE;
            m = c;
        } else {
            sum += (c - m).exp();
        }
    }
    m + sum.ln()
}

// Same shape as base/gaussian.rs::backward_tile and base/mod.rs::backward_tile (duplicates): the
// dispatcher and each base's kernel share the argument list; the per-component inner loop here
// is the Gaussian's plus the responsibility weights, which a shared helper would have to take
// as a parameter in the hot lane loop.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward_tile<T: Real>(
    dim: usize,
    k: usize,
    params: &[T],
    z: &[T],
    coef: &[T; TILE],
    gz: &mut [T],
    gparams: &mut [T],
    scratch: &mut [T],
) {
    let n = (k * TILE).min(scratch.len());
    let comp = &mut scratch[..n];
    component_logs(dim, k, params, z, comp);
    let mut lse = [T::ZERO; TILE];
    lanes_log_sum_exp(comp, &mut lse);
    // comp ← coef · rₖ
    for row in comp.chunks_exact_mut(TILE) {
        for ((v, &l), &c) in row.iter_mut().zip(&lse).zip(coef) {
            *v = (*v - l).exp() * c;
        }
    }
    let (logits, loc, log_scale) = split(dim, k, params);
    let (g_logits, g_rest) = gparams.split_at_mut(k.min(gparams.len()));
    let (g_loc, g_log_scale) = g_rest.split_at_mut((k * dim).min(g_rest.len()));
    let lse_logits = log_sum_exp(logits);
    let coef_sum = lane_sum(coef);
    gz.iter_mut().for_each(|v| *v = T::ZERO);
    for ((((rc, mu), ls), gmu), gls) in comp
        .chunks_exact(TILE)
        .zip(loc.chunks_exact(dim))
        .zip(log_scale.chunks_exact(dim))
        .zip(g_loc.chunks_exact_mut(dim))
        .zip(g_log_scale.chunks_exact_mut(dim))
    {
        let rc: &[T; TILE] = match rc.try_into() {
            Ok(r) => r,
            Err(_) => return,
        };
        for (((((zr, gr), &m), &s), gm), gs) in z
            .chunks_exact(TILE)
            .zip(gz.chunks_exact_mut(TILE))
            .zip(mu)
            .zip(ls)
            .zip(gmu.iter_mut())
            .zip(gls.iter_mut())
        {
            let inv = (-s).exp();
            let mut sum_m = [T::ZERO; TILE];
            let mut sum_s = [T::ZERO; TILE];
            for ((((&v, g), &r), sm), ss) in zr
                .iter()
                .zip(gr.iter_mut())
                .zip(rc)
                .zip(sum_m.iter_mut())
                .zip(sum_s.iter_mut())
            {
                let u = (v - m) * inv;
                let d = r * u * inv;
                *g -= d;
                *sm = d;
                *ss = r * (u * u - T::ONE);
            }
            *gm += lane_sum(&sum_m);
            *gs += lane_sum(&sum_s);
        }
    }
    // ∂/∂logitⱼ = Σ_lanes coef·(rⱼ − wⱼ)
    for ((g, rc), &logit) in g_logits.iter_mut().zip(comp.chunks_exact(TILE)).zip(logits) {
        let w = (logit - lse_logits).exp();
        let mut acc = [T::ZERO; TILE];
        acc.iter_mut().zip(rc).for_each(|(a, &r)| *a = r);
        *g += lane_sum(&acc) - w * coef_sum;
    }
}

pub(crate) fn sample_one<'a, T: Real>(
    dim: usize,
    k: usize,
    params: &[T],
    draws: &mut crate::rng::Draws<'_>,
    coords: impl Iterator<Item = &'a mut T>,
) {
    let (logits, loc, log_scale) = split(dim, k, params);
    let lse = log_sum_exp(logits).to_f64();
    let u = draws.uniform();
    let mut cum = 0.0;
    let mut chosen = k.saturating_sub(1);
    for (j, &l) in logits.iter().enumerate() {
        cum += libm::exp(l.to_f64() - lse);
        if u < cum {
            chosen = j;
            break;
        }
    }
    let mu = loc.chunks_exact(dim).nth(chosen).unwrap_or(&[]);
    let ls = log_scale.chunks_exact(dim).nth(chosen).unwrap_or(&[]);
    for ((v, &m), &s) in coords.zip(mu).zip(ls) {
        *v = m + s.exp() * T::from_f64(draws.normal());
    }
}
