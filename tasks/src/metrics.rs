//! Accuracy metrics of a fitted posterior q against the truth p (`docs/TASKS.md`, "Metrics").
//!
//! - KL(p‖q) = E_p[log p − log q], from exact posterior samples or from weighted samples
//!   (self-normalised importance sampling).
//! - Average marginal Wasserstein-1: (1/D) Σ_d W1 of the d-th marginals of two (weighted)
//!   empirical distributions, W1 = ∫|F_a − F_b| dx.
//! - Bridge mass: share of q-samples where p < 10⁻³ · max p.
//! - Tail mass (refinement suite): share of q-samples whose log p is below the 0.1 % quantile
//!   of log p over exact posterior samples ([`Task::tail_threshold`](crate::Task::tail_threshold)).
//! - Mode shares: share of samples nearest (Euclidean) to each component mean.

use lwflow::Error;

/// Threshold of the bridge-mass metric, relative to the peak density.
pub const BRIDGE_THRESHOLD: f64 = 1e-3;

/// `LengthMismatch` unless `buf` has exactly `expected` elements (the core's check, which is
/// private to it).
fn check_len<X>(buf: &[X], expected: usize) -> Result<(), Error> {
    if buf.len() == expected {
        Ok(())
    } else {
        Err(Error::LengthMismatch {
            expected,
            actual: buf.len(),
        })
    }
}

/// KL(p‖q) = mean(log p − log q) over exact posterior samples (`log_p` normalised).
pub fn kl_from_posterior_samples(log_p: &[f64], log_q: &[f64]) -> Result<f64, Error> {
    check_len(log_q, log_p.len())?;
    if log_p.is_empty() {
        return Err(Error::EmptyBatch);
    }
    Ok(log_p.iter().zip(log_q).map(|(p, q)| p - q).sum::<f64>() / log_p.len() as f64)
}

/// KL(p‖q) from samples θᵢ of a proposal g: `log_target` = log L(θᵢ) + log π(θᵢ)
/// (unnormalised), `log_proposal` = log g(θᵢ), `log_q` = log q(θᵢ). With
/// wᵢ ∝ exp(log_target − log_proposal) self-normalised and Ẑ = mean exp(log_target −
/// log_proposal): KL ≈ Σ w̃ᵢ (log_target − ln Ẑ − log q).
pub fn kl_from_weighted_samples(
    log_target: &[f64],
    log_proposal: &[f64],
    log_q: &[f64],
) -> Result<f64, Error> {
    let n = log_target.len();
    check_len(log_proposal, n)?;
    check_len(log_q, n)?;
    if n == 0 {
        return Err(Error::EmptyBatch);
    }
    let lw = |i: usize| log_target[i] - log_proposal[i];
    // The core's weight sums (`logsum`) are private: the same computation, written out.
    let max = (0..n).map(lw).fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return Err(Error::DegenerateWeights);
    }
    let sum: f64 = (0..n).map(|i| libm::exp(lw(i) - max)).sum();
    let log_z = max + libm::log(sum / n as f64);
    let mut kl = 0.0;
    for i in 0..n {
        let w = libm::exp(lw(i) - max) / sum;
        if w > 0.0 {
            kl += w * (log_target[i] - log_z - log_q[i]);
        }
    }
    Ok(kl)
}

/// Weighted negative log-likelihood −Σ wᵢ log qᵢ / Σ wᵢ.
pub fn weighted_nll(weights: &[f64], log_q: &[f64]) -> Result<f64, Error> {
    check_len(log_q, weights.len())?;
    let den: f64 = weights.iter().sum();
    if !(den > 0.0) {
        return Err(Error::DegenerateWeights);
    }
    Ok(-weights
        .iter()
        .zip(log_q)
        .map(|(w, l)| if *w > 0.0 { w * l } else { 0.0 })
        .sum::<f64>()
        / den)
}

/// W1 between two weighted 1-D empirical distributions given as (value, weight) pairs;
/// sorts both slices in place. Weights need not be normalised.
pub fn wasserstein1(a: &mut [(f64, f64)], b: &mut [(f64, f64)]) -> Result<f64, Error> {
    if a.is_empty() || b.is_empty() {
        return Err(Error::EmptyBatch);
    }
    if a.iter()
        .chain(b.iter())
        .any(|(v, w)| !v.is_finite() || !w.is_finite())
    {
        return Err(Error::NonFinite);
    }
    if a.iter().chain(b.iter()).any(|(_, w)| *w < 0.0) {
        return Err(Error::InvalidArgument);
    }
    let (sa, sb): (f64, f64) = (a.iter().map(|p| p.1).sum(), b.iter().map(|p| p.1).sum());
    if !(sa > 0.0 && sb > 0.0) {
        return Err(Error::DegenerateWeights);
    }
    a.sort_unstable_by(|x, y| x.0.total_cmp(&y.0));
    b.sort_unstable_by(|x, y| x.0.total_cmp(&y.0));
    // Sweep the merged support: between consecutive points both CDFs are constant.
    let (mut i, mut j) = (0, 0);
    let (mut fa, mut fb) = (0.0f64, 0.0f64);
    let mut x = a[0].0.min(b[0].0);
    let mut w1 = 0.0;
    while i < a.len() || j < b.len() {
        let next = match (a.get(i), b.get(j)) {
            (Some(p), Some(q)) => p.0.min(q.0),
            (Some(p), None) => p.0,
            (None, Some(q)) => q.0,
            (None, None) => break,
        };
        w1 += (fa - fb).abs() * (next - x);
        x = next;
        while i < a.len() && a[i].0 <= x {
            fa += a[i].1 / sa;
            i += 1;
        }
        while j < b.len() && b[j].0 <= x {
            fb += b[j].1 / sb;
            j += 1;
        }
    }
    Ok(w1)
}

/// Average marginal W1 between samples `xa` (`n_a·D`, optional weights `wa`) and `xb`
/// (`n_b·D`, optional `wb`); `scratch_a` and `scratch_b` need `n_a` and `n_b` pairs.
#[allow(clippy::too_many_arguments)]
pub fn average_marginal_w1(
    xa: &[f64],
    wa: Option<&[f64]>,
    xb: &[f64],
    wb: Option<&[f64]>,
    dim: usize,
    scratch_a: &mut [(f64, f64)],
    scratch_b: &mut [(f64, f64)],
) -> Result<f64, Error> {
    if dim == 0 {
        return Err(Error::InvalidArgument);
    }
    let (na, nb) = (xa.len() / dim, xb.len() / dim);
    check_len(xa, na * dim)?;
    check_len(xb, nb * dim)?;
    if let Some(w) = wa {
        check_len(w, na)?;
    }
    if let Some(w) = wb {
        check_len(w, nb)?;
    }
    check_len(scratch_a, na)?;
    check_len(scratch_b, nb)?;
    let mut total = 0.0;
    for d in 0..dim {
        for (i, s) in scratch_a.iter_mut().enumerate() {
            *s = (xa[i * dim + d], wa.map_or(1.0, |w| w[i]));
        }
        for (i, s) in scratch_b.iter_mut().enumerate() {
            *s = (xb[i * dim + d], wb.map_or(1.0, |w| w[i]));
        }
        total += wasserstein1(scratch_a, scratch_b)?;
    }
    Ok(total / dim as f64)
}

/// Share of samples whose true log-density is below ln(10⁻³) + `log_peak` (NaN and −∞
/// count as below).
pub fn bridge_mass(log_p_at_samples: &[f64], log_peak: f64) -> Result<f64, Error> {
    if log_p_at_samples.is_empty() {
        return Err(Error::EmptyBatch);
    }
    let cut = log_peak + libm::log(BRIDGE_THRESHOLD);
    let low = log_p_at_samples.iter().filter(|&&v| !(v >= cut)).count();
    Ok(low as f64 / log_p_at_samples.len() as f64)
}

/// Tail mass: share of q-samples whose true log p is below `log_p_threshold` (NaN and −∞
/// count as below). With the threshold at the 0.1 % quantile of log p over exact posterior
/// samples ([`Task::tail_threshold`](crate::Task::tail_threshold)) a perfect q scores
/// 0.1 % on every task and dimension.
pub fn tail_mass(log_p_at_q_samples: &[f64], log_p_threshold: f64) -> Result<f64, Error> {
    if log_p_at_q_samples.is_empty() {
        return Err(Error::EmptyBatch);
    }
    if log_p_threshold.is_nan() {
        return Err(Error::NonFinite);
    }
    let low = log_p_at_q_samples
        .iter()
        .filter(|&&v| !(v >= log_p_threshold))
        .count();
    Ok(low as f64 / log_p_at_q_samples.len() as f64)
}

/// Mode shares: `out[k]` = share of the samples (`n·dim`) nearest, in Euclidean distance, to
/// mean k (`means` holds K = `out.len()` means of `dim` values). Ties go to the lower k; a
/// sample with a non-finite coordinate is nearest to no mean (it counts in n only, so the
/// shares then sum to less than 1). `out` is written only on success.
pub fn mode_shares(
    samples: &[f64],
    dim: usize,
    means: &[f64],
    out: &mut [f64],
) -> Result<(), Error> {
    if dim == 0 || out.is_empty() {
        return Err(Error::InvalidArgument);
    }
    let k = out.len();
    check_len(means, k.checked_mul(dim).ok_or(Error::InvalidArgument)?)?;
    let n = samples.len() / dim;
    check_len(samples, n * dim)?;
    if n == 0 {
        return Err(Error::EmptyBatch);
    }
    if means.iter().any(|m| !m.is_finite()) {
        return Err(Error::NonFinite);
    }
    out.iter_mut().for_each(|o| *o = 0.0);
    for p in samples.chunks_exact(dim) {
        if !p.iter().all(|v| v.is_finite()) {
            continue;
        }
        let mut best = 0;
        let mut best_d = f64::INFINITY;
        for (j, m) in means.chunks_exact(dim).enumerate() {
            let d2: f64 = p.iter().zip(m).map(|(a, b)| (a - b) * (a - b)).sum();
            if d2 < best_d {
                best = j;
                best_d = d2;
            }
        }
        if let Some(o) = out.get_mut(best) {
            *o += 1.0;
        }
    }
    out.iter_mut().for_each(|o| *o /= n as f64);
    Ok(())
}
