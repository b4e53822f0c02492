//! Importance-sampling diagnostics: the evidence estimate ln Ẑ with its standard error, the
//! Kish effective sample size and the Pareto-smoothed importance sampling shape k̂ of the
//! weights' upper tail.
//!
//! The input is a set of log-weights log wᵢ = log L(θᵢ) + log π(θᵢ) − log g(θᵢ) for θᵢ drawn
//! from a proposal g ([`importance_log_weights`](crate::train::weights::importance_log_weights)
//! computes them). Everything is computed in log space shifted by the largest log-weight, so
//! the result does not depend on an additive constant (log-weights of −1e5 work). −∞ is a valid
//! zero weight; NaN and +∞ are refused.
//!
//! k̂ follows Vehtari, Simpson, Gelman, Yao and Gabry, *Pareto smoothed importance sampling*
//! (JMLR 25(72), 2024), exactly as ArviZ's `psislw` computes it (`tests/diagnostics.rs`
//! compares the two):
//!
//! - tail length M = ⌈min(n/5, 3√n)⌉ (the relative efficiency r_eff is 1: independent draws);
//! - threshold u = the (M+1)-th largest log-weight, raised to ln(`f64::MIN_POSITIVE`) relative
//!   to the maximum; the tail is every weight strictly above u (ties at u, and weights that
//!   are zero in `f64`, are left out, so the tail can be shorter than M);
//! - a generalized Pareto distribution is fitted to the exceedances wᵢ − u by the empirical-Bayes
//!   estimator of Zhang and Stephens (*Technometrics* 51(3), 2009), with m = 30 + ⌊√M⌋ grid
//!   points and weights below 10ε dropped, then shrunk by the weakly informative prior of PSIS:
//!   k̂ ← (M·k̂ + 10·0.5)/(M + 10).
//!
//! Reading k̂ (the paper's guidance): below 0.5 the importance-sampling estimate converges at
//! the usual rate; up to min(1 − 1/log₁₀ n, 0.7) it is usable; above that the estimate of Ẑ and
//! of any expectation is unreliable, however large the ESS looks.
//!
//! With fewer than 5 tail points (n < 21, or too many tied or zero weights: for instance all
//! weights equal) no tail can be fitted: [`pareto_k_hat`] and [`importance_summary`] then
//! return [`Error::DegenerateWeights`] instead of a non-finite k̂ (ArviZ returns +∞ there).

use crate::error::{check_min, Error};
use crate::logsum::Scaled;

/// Summary of a set of importance log-weights log wᵢ = log L(θᵢ) + log π(θᵢ) − log g(θᵢ),
/// θᵢ ~ g ([`importance_summary`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ImportanceSummary {
    /// Number of samples (zero weights included).
    pub n: usize,
    /// ln of the mean weight: the evidence estimate ln Ẑ = max + ln mean(exp(log w − max)).
    pub log_z: f64,
    /// Standard error of ln Ẑ by the delta method: sd(w) / (√n · mean(w)), with the sample
    /// standard deviation (divisor n − 1).
    pub log_z_se: f64,
    /// Kish effective sample size (Σw)²/Σw², in [1, n].
    pub ess: f64,
    /// Σ w̃ᵢ (ln wᵢ − ln Ẑ) with the self-normalised weights w̃: when the proposal g is the
    /// density being checked (its own fresh draws), an estimate of KL(p‖g), the share of
    /// information g loses about the posterior. Unlike k̂, which sees only where g is too
    /// thin, it also sees mass that g spends where p has none (bridges between modes).
    pub kl: f64,
    /// Pareto-smoothed importance sampling shape k̂ of the weights' upper tail
    /// ([`pareto_k_hat`]); `None` when no tail can be fitted (fewer than 5 tail points: n < 21,
    /// ties such as all-equal weights, or too many zero weights).
    pub k_hat: Option<f64>,
}

/// Length of the scratch buffer [`pareto_k_hat`] and [`importance_summary`] need for `n`
/// log-weights: `n` (a sorted copy).
pub const fn scratch_len(n: usize) -> usize {
    n
}

/// Grid weights below this are dropped from the Zhang–Stephens posterior mean (as in PSIS).
const NEGLIGIBLE: f64 = 10.0 * f64::EPSILON;
/// Fewest tail points a generalized Pareto fit accepts.
const MIN_TAIL: usize = 5;

/// Checks the log-weights and returns their maximum (finite).
fn checked_sums(log_w: &[f64]) -> Result<Scaled, Error> {
    if log_w.is_empty() {
        return Err(Error::EmptyBatch);
    }
    if log_w.iter().any(|&v| v.is_nan() || v == f64::INFINITY) {
        return Err(Error::NonFinite);
    }
    Scaled::of(log_w.iter().copied()).ok_or(Error::DegenerateWeights)
}

/// The PSIS shape k̂ of the upper tail of the weights exp(`log_w`) (module docs for the exact
/// procedure). `scratch` needs [`scratch_len`]`(log_w.len())` elements; its contents on return
/// are unspecified.
///
/// Errors: `EmptyBatch` for no log-weights; `BufferTooSmall` for a short `scratch`;
/// `NonFinite` for a NaN or +∞ log-weight; `DegenerateWeights` when every weight is zero (all
/// −∞), when fewer than 5 weights lie above the threshold (n < 21, ties, zero weights), or when
/// the fit does not give a finite shape.
pub fn pareto_k_hat(log_w: &[f64], scratch: &mut [f64]) -> Result<f64, Error> {
    let max = checked_sums(log_w)?.max;
    check_min(scratch, scratch_len(log_w.len()))?;
    k_hat_checked(log_w, max, scratch)
}

/// ln Ẑ, its standard error, the ESS and k̂ of the log-weights `log_w` in one call
/// ([`ImportanceSummary`]). `scratch` as for [`pareto_k_hat`]. Errors: those of
/// [`pareto_k_hat`] except that a tail too short to fit gives `k_hat: None` (equal weights,
/// the ideal case, have no tail at all) instead of `DegenerateWeights`.
pub fn importance_summary(log_w: &[f64], scratch: &mut [f64]) -> Result<ImportanceSummary, Error> {
    let sums = checked_sums(log_w)?;
    check_min(scratch, scratch_len(log_w.len()))?;
    let (max, sum) = (sums.max, sums.sum);
    let n = log_w.len();
    let nf = n as f64;
    let mean = sum / nf;
    let (mut ss, mut kl) = (0.0, 0.0);
    let log_mean = libm::log(mean);
    for &v in log_w {
        let e = sums.weight(v);
        let d = e - mean;
        ss += d * d;
        if e > 0.0 {
            kl += e * (v - max - log_mean);
        }
    }
    kl /= sum;
    let sd = if n > 1 {
        libm::sqrt(ss / (nf - 1.0))
    } else {
        0.0
    };
    let k_hat = match k_hat_checked(log_w, max, scratch) {
        Ok(k) => Some(k),
        Err(Error::DegenerateWeights) => None,
        Err(e) => return Err(e),
    };
    Ok(ImportanceSummary {
        n,
        log_z: max + libm::log(mean),
        log_z_se: sd / (libm::sqrt(nf) * mean),
        ess: sums.kish_ess(),
        kl,
        k_hat,
    })
}

/// k̂ for checked input: `max` the finite maximum of `log_w`, `scratch` long enough.
fn k_hat_checked(log_w: &[f64], max: f64, scratch: &mut [f64]) -> Result<f64, Error> {
    let n = log_w.len();
    let nf = n as f64;
    // M = ⌈min(n/5, 3√n)⌉ (r_eff = 1), and the threshold is the (M+1)-th largest.
    let m = libm::ceil(f64::min(nf / 5.0, 3.0 * libm::sqrt(nf))) as usize;
    if m < MIN_TAIL || m >= n {
        return Err(Error::DegenerateWeights);
    }
    let x = &mut scratch[..n];
    for (s, &v) in x.iter_mut().zip(log_w) {
        *s = v - max;
    }
    x.sort_unstable_by(f64::total_cmp);
    let cutoff = f64::max(x[n - m - 1], libm::log(f64::MIN_POSITIVE));
    // The tail: every value strictly above the cutoff (a suffix of the sorted copy).
    let start = n - x.iter().rev().take_while(|&&v| v > cutoff).count();
    let tail = &mut x[start..];
    if tail.len() < MIN_TAIL {
        return Err(Error::DegenerateWeights);
    }
    // Exceedances over the threshold weight, ascending.
    let exp_cutoff = libm::exp(cutoff);
    for v in tail.iter_mut() {
        *v = libm::exp(*v) - exp_cutoff;
    }
    let k = gpd_shape(tail);
    if k.is_finite() {
        Ok(k)
    } else {
        Err(Error::DegenerateWeights)
    }
}

/// Zhang–Stephens empirical-Bayes estimate of the generalized Pareto shape of the ascending,
/// non-negative exceedances `y` (at least [`MIN_TAIL`]), with the PSIS prior adjustment.
/// Returns NaN or ±∞ when the fit fails (a zero quantile or maximum, no usable grid point).
fn gpd_shape(y: &[f64]) -> f64 {
    let len = y.len();
    let lf = len as f64;
    let grid = 30 + libm::sqrt(lf) as usize;
    let gf = grid as f64;
    let y_max = y[len - 1];
    let y_quarter = y[(lf / 4.0 + 0.5) as usize - 1];
    if !(y_quarter > 0.0) || !(y_max > 0.0) {
        return f64::NAN;
    }
    // Grid point j of θ = b (Zhang & Stephens' parametrisation: F(y) = 1 − (1 − b·y)^(1/k)).
    let b_at =
        |j: usize| (1.0 - libm::sqrt(gf / (j as f64 + 0.5))) / (3.0 * y_quarter) + 1.0 / y_max;
    // Shape k(b) = mean ln(1 − b·y) (the PSIS sign: k > 0 is a heavy tail).
    let k_of = |b: f64| y.iter().map(|&v| libm::log1p(-b * v)).sum::<f64>() / lf;
    // Profile log-likelihood of grid point j.
    let profile = |j: usize| {
        let b = b_at(j);
        let k = k_of(b);
        lf * (libm::log(-b / k) - k - 1.0)
    };
    // First pass: the largest profile log-likelihood, to normalise the weights
    // wⱼ = exp(ℓⱼ) / Σ exp(ℓᵢ) = 1 / Σ exp(ℓᵢ − ℓⱼ) without overflow.
    let Some(sums) = Scaled::of((0..grid).map(profile).filter(|l| l.is_finite())) else {
        return f64::NAN;
    };
    // Second pass: the posterior mean of b over the non-negligible grid weights.
    let (mut wsum, mut bsum) = (0.0, 0.0);
    for j in 0..grid {
        let l = profile(j);
        if !l.is_finite() {
            continue;
        }
        let w = sums.weight(l) / sums.sum;
        if w >= NEGLIGIBLE {
            wsum += w;
            bsum += w * b_at(j);
        }
    }
    let k = k_of(bsum / wsum);
    // Weakly informative prior: shrink towards 0.5 with the weight of 10 observations.
    (lf * k + 10.0 * 0.5) / (lf + 10.0)
}
