//! Prior sampling and self-normalised importance weights.
//!
//! Weights are computed in log space: wᵢ = exp(ℓᵢ − max ℓ) / mean(exp(ℓ − max ℓ)), so
//! log-likelihoods of −1e5 (or any offset) give the same weights as their shifted values.
//! For samples from a proposal g with prior π, pass ℓᵢ = log L(θᵢ) + log π(θᵢ) − log g(θᵢ)
//! ([`importance_log_weights`]).

use crate::error::{check_len, Error};
use crate::logsum::Scaled;
use crate::real::Real;
use crate::rng::Draws;
use rand_core::Rng;

/// What to do with a NaN or +∞ log-likelihood (−∞ is a valid zero weight).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonFinitePolicy {
    /// Refuse the whole set with [`Error::NonFinite`] (the default).
    Error,
    /// Give such samples weight 0 and count them in [`WeightStats::skipped`].
    Skip,
}

/// Summary of a normalised weight set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WeightStats {
    /// Kish effective sample size (Σw)²/Σw².
    pub ess: f64,
    /// Number of samples.
    pub n: usize,
    /// Samples given weight 0 because their log-likelihood was NaN or +∞ (policy `Skip`).
    pub skipped: usize,
    /// log of the mean of exp(ℓ): the log-evidence estimate ln Ẑ = max ℓ + ln mean(exp(ℓ − max ℓ)).
    pub log_mean_weight: f64,
}

/// Fills `theta` (`n·D` with `D = lo.len()`) with uniform draws on the open box (lo, hi).
pub fn sample_box<T: Real, R: Rng + ?Sized>(
    lo: &[T],
    hi: &[T],
    rng: &mut R,
    theta: &mut [T],
) -> Result<(), Error> {
    check_len(hi, lo.len())?;
    if lo.is_empty() {
        return Err(Error::InvalidArgument);
    }
    if !crate::real::all_finite(lo) || !crate::real::all_finite(hi) {
        return Err(Error::NonFinite);
    }
    if lo.iter().zip(hi).any(|(a, b)| a >= b) {
        return Err(Error::InvalidArgument);
    }
    if theta.is_empty() {
        return Err(Error::EmptyBatch);
    }
    if theta.len() % lo.len() != 0 {
        return Err(Error::LengthMismatch {
            expected: (theta.len() / lo.len() + 1) * lo.len(),
            actual: theta.len(),
        });
    }
    let mut adapter = crate::rng::RngRef(rng);
    let mut draws = Draws::new(&mut adapter);
    for row in theta.chunks_exact_mut(lo.len()) {
        for ((v, &a), &b) in row.iter_mut().zip(lo).zip(hi) {
            // Inside the open box: a draw that rounds onto an edge in T is drawn again (at
            // most 64 times; the midpoint is a last resort), so every draw has a finite
            // density under a flow that lives on the box.
            *v = a + (b - a) * T::HALF;
            for _ in 0..64 {
                let x = a + (b - a) * T::from_f64(draws.uniform());
                if x > a && x < b {
                    *v = x;
                    break;
                }
            }
        }
    }
    Ok(())
}

/// ℓᵢ = log L(θᵢ) + log π(θᵢ) − log g(θᵢ) for samples drawn from a proposal g, into `out`.
pub fn importance_log_weights(
    log_likelihood: &[f64],
    log_prior: &[f64],
    log_proposal: &[f64],
    out: &mut [f64],
) -> Result<(), Error> {
    let n = log_likelihood.len();
    check_len(log_prior, n)?;
    check_len(log_proposal, n)?;
    check_len(out, n)?;
    if log_proposal.iter().any(|v| !v.is_finite()) || log_prior.iter().any(|v| v.is_nan()) {
        return Err(Error::NonFinite);
    }
    for (((o, &l), &p), &g) in out
        .iter_mut()
        .zip(log_likelihood)
        .zip(log_prior)
        .zip(log_proposal)
    {
        *o = l + p - g;
    }
    Ok(())
}

/// Normalises log-weights ℓ into weights of mean 1 (`weights`, same length) and reports
/// their ESS. Refuses an empty set (`EmptyBatch`), NaN/+∞ under [`NonFinitePolicy::Error`]
/// (`NonFinite`), and a set whose weights are all zero or whose ESS is below `min_ess`
/// (`DegenerateWeights`). `weights` is written only on success.
pub fn normalise_log_weights<T: Real>(
    log_w: &[f64],
    policy: NonFinitePolicy,
    min_ess: f64,
    weights: &mut [T],
) -> Result<WeightStats, Error> {
    let n = log_w.len();
    if n == 0 {
        return Err(Error::EmptyBatch);
    }
    check_len(weights, n)?;
    if min_ess.is_nan() {
        return Err(Error::NonFinite);
    }
    let bad = |v: f64| v.is_nan() || v == f64::INFINITY;
    let skipped = log_w.iter().filter(|&&v| bad(v)).count();
    if skipped > 0 && policy == NonFinitePolicy::Error {
        return Err(Error::NonFinite);
    }
    let usable = |v: f64| if bad(v) { f64::NEG_INFINITY } else { v };
    let sums = Scaled::of(log_w.iter().map(|&v| usable(v))).ok_or(Error::DegenerateWeights)?;
    let ess = sums.kish_ess();
    if !(ess >= min_ess) {
        return Err(Error::DegenerateWeights);
    }
    let scale = n as f64 / sums.sum;
    for (w, &v) in weights.iter_mut().zip(log_w) {
        *w = T::from_f64(sums.weight(usable(v)) * scale);
    }
    Ok(WeightStats {
        ess,
        n,
        skipped,
        log_mean_weight: sums.log_mean(n),
    })
}

/// Kish effective sample size (Σw)²/Σw² of non-negative weights (0 for an empty or all-zero set).
pub fn effective_sample_size<T: Real>(weights: &[T]) -> f64 {
    let (s, s2) = weights.iter().fold((0.0, 0.0), |(a, b), &w| {
        let w = w.to_f64();
        (a + w, b + w * w)
    });
    if s2 > 0.0 {
        s * s / s2
    } else {
        0.0
    }
}

/// Draws `n` prior samples on the box [lo, hi] into `theta` (`n·D`), evaluates the batched
/// log-likelihood callback on them in chunks of at most `batch` samples
/// (`log_likelihood(chunk_theta, chunk_out)` fills one `f64` per sample and returns `false`
/// to abort), stores the values in `log_l` (`n`) and normalises them into `weights` (`n`).
///
/// Errors: those of [`sample_box`] and [`normalise_log_weights`]; `Callback` if the callback
/// aborts; `InvalidArgument` for `batch == 0`.
#[allow(clippy::too_many_arguments)]
pub fn sample_and_weigh<T: Real, R: Rng + ?Sized, F: FnMut(&[T], &mut [f64]) -> bool>(
    lo: &[T],
    hi: &[T],
    rng: &mut R,
    batch: usize,
    mut log_likelihood: F,
    policy: NonFinitePolicy,
    min_ess: f64,
    theta: &mut [T],
    log_l: &mut [f64],
    weights: &mut [T],
) -> Result<WeightStats, Error> {
    if batch == 0 {
        return Err(Error::InvalidArgument);
    }
    check_len(theta, log_l.len().saturating_mul(lo.len()))?;
    check_len(weights, log_l.len())?;
    sample_box(lo, hi, rng, theta)?;
    let d = lo.len();
    // A batch larger than n is one call; capped first, so batch · D cannot overflow (an
    // uncapped 2^63 · 2 wrapped to a chunk size of 0).
    let batch = batch.min(log_l.len().max(1));
    for (rows, out) in theta.chunks(batch * d).zip(log_l.chunks_mut(batch)) {
        if !log_likelihood(rows, out) {
            return Err(Error::Callback);
        }
    }
    normalise_log_weights(log_l, policy, min_ess, weights)
}
