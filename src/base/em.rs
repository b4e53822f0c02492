//! Weighted EM for a diagonal Gaussian mixture, with weighted k-means++ seeding, a variance
//! floor, restarts, and the number of components chosen by BIC.
//!
//! Each sample θᵢ carries an importance weight wᵢ ≥ 0. E-step: rᵢₖ ∝ πₖ N(θᵢ; μₖ, diag σₖ²);
//! M-step: Nₖ = Σ wᵢrᵢₖ, πₖ = Nₖ/Σw, μₖ = Σ wᵢrᵢₖθᵢ/Nₖ, σₖ² = Σ wᵢrᵢₖ(θᵢ − μₖ)²/Nₖ + floor.
//! Model selection: with weighted mean log-likelihood ℓ̄ and effective sample size n (Kish),
//! BIC(K) = −2nℓ̄ + p ln n with p = (K − 1) + 2KD free parameters; the smallest BIC wins.
//! Everything is computed in `f64` and is deterministic for a given seed.

use crate::error::{check_len, check_min, Error};
use crate::real::Real;
use crate::rng::Draws;
use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

const LN_2PI: f64 = 1.837_877_066_409_345_3;

/// EM settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EmConfig {
    /// Iteration cap per restart.
    pub max_iter: usize,
    /// Stop when the weighted mean log-likelihood improves by less than this.
    pub tol: f64,
    /// Variance floor, relative to the weighted variance of the data in each dimension.
    pub var_floor: f64,
    /// Independent k-means++ seedings; the best log-likelihood wins.
    pub restarts: usize,
    /// Samples with wᵢ below this fraction of the largest weight are ignored (they carry no
    /// information and dominate the run time on prior samples).
    pub min_weight: f64,
    /// Seed of the seedings.
    pub seed: u64,
}

impl Default for EmConfig {
    fn default() -> Self {
        EmConfig {
            max_iter: 200,
            tol: 1e-6,
            var_floor: 1e-6,
            restarts: 3,
            min_weight: 1e-10,
            seed: 0,
        }
    }
}

/// Result of one fit; the mixture itself is in the caller's buffers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MixtureFit {
    /// Components K.
    pub components: usize,
    /// Weighted mean log-likelihood ℓ̄ = Σ wᵢ log p(θᵢ) / Σ wᵢ.
    pub mean_log_likelihood: f64,
    /// Kish effective sample size of the weights.
    pub ess: f64,
    /// BIC (see the module docs).
    pub bic: f64,
    /// EM iterations of the winning restart.
    pub iterations: usize,
}

/// `f64` scratch elements needed by [`fit_mixture`] and [`select_components`] for up to
/// `k` components in `d` dimensions.
/// Saturates instead of overflowing, so a huge request asks for an impossible length rather
/// than a wrong one.
pub const fn scratch_len(k: usize, d: usize) -> usize {
    let per = k.saturating_add(k.saturating_mul(d).saturating_mul(2));
    // best-restart, current, accumulators, precomputed constants; per-sample log terms; data stats
    per.saturating_mul(5)
        .saturating_add(k)
        .saturating_add(d.saturating_mul(2))
}

struct Stats {
    w_sum: f64,
    ess: f64,
}

impl EmConfig {
    /// Checks the settings: at least one iteration and one restart; `tol`, `var_floor` and
    /// `min_weight` finite and ≥ 0 (`InvalidArgument` otherwise).
    pub fn validate(&self) -> Result<(), Error> {
        let finite_non_negative = [self.tol, self.var_floor, self.min_weight]
            .iter()
            .all(|v| v.is_finite() && *v >= 0.0);
        if self.restarts == 0 || self.max_iter == 0 || !finite_non_negative {
            return Err(Error::InvalidArgument);
        }
        Ok(())
    }
}

fn validate<T: Real>(
    samples: &[T],
    weights: &[T],
    d: usize,
    k: usize,
    cfg: &EmConfig,
) -> Result<Stats, Error> {
    cfg.validate()?;
    if d == 0 || k == 0 {
        return Err(Error::InvalidArgument);
    }
    let n = weights.len();
    if n == 0 {
        return Err(Error::EmptyBatch);
    }
    check_len(samples, n.saturating_mul(d))?;
    if !crate::real::all_finite(samples) || !crate::real::all_finite(weights) {
        return Err(Error::NonFinite);
    }
    if weights.iter().any(|&w| w < T::ZERO) {
        return Err(Error::InvalidArgument);
    }
    let (s, s2) = weights.iter().fold((0.0, 0.0), |(a, b), &w| {
        (a + w.to_f64(), b + w.to_f64() * w.to_f64())
    });
    if s <= 0.0 {
        return Err(Error::DegenerateWeights);
    }
    Ok(Stats {
        w_sum: s,
        ess: s * s / s2,
    })
}

/// One mixture as three views: weights `[K]`, means `[K][D]`, variances `[K][D]`.
struct Mix<'a> {
    pi: &'a mut [f64],
    mu: &'a mut [f64],
    var: &'a mut [f64],
}

fn split_mix(buf: &mut [f64], k: usize, d: usize) -> (Mix<'_>, &mut [f64]) {
    let (pi, rest) = buf.split_at_mut(k);
    let (mu, rest) = rest.split_at_mut(k * d);
    let (var, rest) = rest.split_at_mut(k * d);
    (Mix { pi, mu, var }, rest)
}

fn copy_mix(dst: &mut Mix<'_>, src: &Mix<'_>) {
    dst.pi.copy_from_slice(src.pi);
    dst.mu.copy_from_slice(src.mu);
    dst.var.copy_from_slice(src.var);
}

/// Weighted k-means++ seeding of `k` means; variances set to the data variance, equal weights.
fn seed_kmeanspp<T: Real>(
    samples: &[T],
    weights: &[T],
    d: usize,
    thr: f64,
    data_var: &[f64],
    m: &mut Mix<'_>,
    draws: &mut Draws<'_>,
) {
    let k = m.pi.len();
    let n = weights.len();
    let point = |i: usize| &samples[i * d..(i + 1) * d];
    let dist2 = |x: &[T], c: &[f64]| {
        x.iter()
            .zip(c)
            .map(|(&a, &b)| (a.to_f64() - b) * (a.to_f64() - b))
            .sum::<f64>()
    };
    for j in 0..k {
        // Probability ∝ w · (squared distance to the nearest chosen centre), or ∝ w for the first.
        let score = |i: usize| {
            let w = weights[i].to_f64();
            if w < thr {
                return 0.0;
            }
            if j == 0 {
                return w;
            }
            let x = point(i);
            let best = m.mu[..j * d]
                .chunks_exact(d)
                .map(|c| dist2(x, c))
                .fold(f64::INFINITY, f64::min);
            w * best
        };
        let total: f64 = (0..n).map(score).sum();
        let mut chosen = n - 1;
        if total > 0.0 {
            let target = draws.uniform() * total;
            let mut cum = 0.0;
            for i in 0..n {
                cum += score(i);
                if cum >= target {
                    chosen = i;
                    break;
                }
            }
        }
        for (c, &x) in m.mu[j * d..(j + 1) * d].iter_mut().zip(point(chosen)) {
            *c = x.to_f64();
        }
    }
    m.pi.iter_mut().for_each(|p| *p = 1.0 / k as f64);
    for var in m.var.chunks_exact_mut(d) {
        var.copy_from_slice(data_var);
    }
}

/// Runs EM from the mixture in `m`; returns (mean log-likelihood, iterations).
#[allow(clippy::too_many_arguments)]
fn run_em<T: Real>(
    samples: &[T],
    weights: &[T],
    d: usize,
    thr: f64,
    floor: &[f64],
    cfg: &EmConfig,
    w_sum: f64,
    m: &mut Mix<'_>,
    acc: &mut Mix<'_>,
    pre: &mut Mix<'_>,
    logs: &mut [f64],
) -> (f64, usize) {
    let mut prev = f64::NEG_INFINITY;
    let mut ll = f64::NEG_INFINITY;
    let mut iters = 0;
    for it in 1..=cfg.max_iter {
        iters = it;
        precompute(m, d, pre);
        ll = e_step(samples, weights, d, thr, m, pre, acc, logs) / w_sum;
        m_step(acc, floor, d, w_sum, m);
        if (ll - prev).abs() <= cfg.tol * ll.abs().max(1.0) {
            break;
        }
        prev = ll;
    }
    (ll, iters)
}

/// The E-step: accumulates into `acc` each component's responsibility sums Σ r, Σ r·x and
/// Σ r·x² over the samples of weight ≥ `thr`; returns Σ w·ln p(x) over them.
#[allow(clippy::too_many_arguments)]
fn e_step<T: Real>(
    samples: &[T],
    weights: &[T],
    d: usize,
    thr: f64,
    m: &Mix<'_>,
    pre: &Mix<'_>,
    acc: &mut Mix<'_>,
    logs: &mut [f64],
) -> f64 {
    acc.pi
        .iter_mut()
        .chain(acc.mu.iter_mut())
        .chain(acc.var.iter_mut())
        .for_each(|v| *v = 0.0);
    let mut total = 0.0;
    for (x, &w) in samples.chunks_exact(d).zip(weights) {
        let w = w.to_f64();
        if w < thr {
            continue;
        }
        let (max, sum) = component_shares(x, m, pre, d, logs);
        if !max.is_finite() {
            continue;
        }
        total += w * (max + libm::log(sum));
        let w_over_sum = w / sum;
        for (((&e, n), s1), s2) in logs
            .iter()
            .zip(acc.pi.iter_mut())
            .zip(acc.mu.chunks_exact_mut(d))
            .zip(acc.var.chunks_exact_mut(d))
        {
            let r = w_over_sum * e;
            *n += r;
            for ((a1, a2), &xi) in s1.iter_mut().zip(s2.iter_mut()).zip(x) {
                let xi = xi.to_f64();
                *a1 += r * xi;
                *a2 += r * xi * xi;
            }
        }
    }
    total
}

/// The M-step: the mixture `m` from the sums in `acc` (variances floored by `floor`).
fn m_step(acc: &Mix<'_>, floor: &[f64], d: usize, w_sum: f64, m: &mut Mix<'_>) {
    for j in 0..m.pi.len() {
        let nk = acc.pi[j];
        if nk <= 1e-12 * w_sum {
            // A starved component keeps its place with a negligible weight.
            m.pi[j] = 1e-12;
            continue;
        }
        m.pi[j] = nk / w_sum;
        let rows = (j * d)..((j + 1) * d);
        for ((((mu, var), &s1), &s2), &f) in m.mu[rows.clone()]
            .iter_mut()
            .zip(m.var[rows.clone()].iter_mut())
            .zip(&acc.mu[rows.clone()])
            .zip(&acc.var[rows])
            .zip(floor)
        {
            let mean = s1 / nk;
            *mu = mean;
            *var = (s2 / nk - mean * mean).max(0.0) + f;
        }
    }
    let norm: f64 = m.pi.iter().sum();
    m.pi.iter_mut().for_each(|p| *p /= norm);
}

/// With lₖ = ln πₖ + ln N(x; μₖ, σₖ²): fills `shares[k]` with e^(lₖ − max) and returns
/// (max, Σₖ e^(lₖ − max)), so the logsumexp is max + ln Σ and component k's responsibility is
/// `shares[k] / Σ` (one `exp` per component). `max` is −∞ when every lₖ is.
/// `pre` holds, per component, cₖ = ln πₖ − ½D ln 2π − ½Σ ln σₖ² (in `pi`) and 1/σₖ² (in
/// `var`), computed once per iteration by [`precompute`].
fn component_shares<T: Real>(
    x: &[T],
    m: &Mix<'_>,
    pre: &Mix<'_>,
    d: usize,
    shares: &mut [f64],
) -> (f64, f64) {
    // First the lₖ, then, in place, their shares.
    let mut max = f64::NEG_INFINITY;
    for (((l, &c), mu), inv_var) in shares
        .iter_mut()
        .zip(pre.pi.iter())
        .zip(m.mu.chunks_exact(d))
        .zip(pre.var.chunks_exact(d))
    {
        let mut q = 0.0;
        for ((&xi, &mi), &iv) in x.iter().zip(mu).zip(inv_var) {
            let u = xi.to_f64() - mi;
            q += u * u * iv;
        }
        let acc = c - 0.5 * q;
        *l = acc;
        max = max.max(acc);
    }
    if max == f64::NEG_INFINITY {
        return (max, 0.0);
    }
    let mut sum = 0.0;
    for l in shares.iter_mut() {
        *l = libm::exp(*l - max);
        sum += *l;
    }
    (max, sum)
}

fn precompute(m: &Mix<'_>, d: usize, pre: &mut Mix<'_>) {
    for (((c, &pi), var), iv) in pre
        .pi
        .iter_mut()
        .zip(m.pi.iter())
        .zip(m.var.chunks_exact(d))
        .zip(pre.var.chunks_exact_mut(d))
    {
        *c = libm::log(pi)
            - 0.5 * d as f64 * LN_2PI
            - 0.5 * var.iter().map(|&v| libm::log(v)).sum::<f64>();
        for (i, &v) in iv.iter_mut().zip(var) {
            *i = 1.0 / v;
        }
    }
}

fn bic(ll: f64, ess: f64, k: usize, d: usize) -> f64 {
    let p = (k - 1 + 2 * k * d) as f64;
    -2.0 * ess * ll + p * libm::log(ess)
}

/// Fits a K-component mixture to weighted samples (`samples`: `n·D`, `weights`: `n`).
/// Writes weights πₖ into `out_weights` (`K`), means into `out_means` (`K·D`) and standard
/// deviations into `out_sds` (`K·D`). `scratch` needs [`scratch_len`]`(K, D)`.
#[allow(clippy::too_many_arguments)]
pub fn fit_mixture<T: Real>(
    samples: &[T],
    weights: &[T],
    d: usize,
    k: usize,
    cfg: &EmConfig,
    out_weights: &mut [f64],
    out_means: &mut [f64],
    out_sds: &mut [f64],
    scratch: &mut [f64],
) -> Result<MixtureFit, Error> {
    let out = Outputs {
        weights: out_weights,
        means: out_means,
        sds: out_sds,
        scratch,
    };
    fit_k(
        samples,
        weights,
        d,
        k,
        cfg,
        out,
        &mut Randomness::Seed(cfg.seed),
    )
}

/// [`fit_mixture`] drawing the k-means++ seeds from the caller's generator instead of one
/// seeded from `cfg.seed` (which it ignores).
// Same shape as base/em.rs::fit_mixture and ::select_components_with_rng (duplicates): public
// entry points spelling out the caller's buffers; each packs them into `Outputs` and hands them
// to its own driver (`fit_k`: one K; `select_k`: K chosen by BIC) with its own randomness.
#[allow(clippy::too_many_arguments)]
pub fn fit_mixture_with_rng<T: Real, R: Rng>(
    samples: &[T],
    weights: &[T],
    d: usize,
    k: usize,
    cfg: &EmConfig,
    out_weights: &mut [f64],
    out_means: &mut [f64],
    out_sds: &mut [f64],
    scratch: &mut [f64],
    rng: &mut R,
) -> Result<MixtureFit, Error> {
    let out = Outputs {
        weights: out_weights,
        means: out_means,
        sds: out_sds,
        scratch,
    };
    fit_k(samples, weights, d, k, cfg, out, &mut Randomness::Host(rng))
}

/// The output and scratch slices of the public fits.
struct Outputs<'a> {
    weights: &'a mut [f64],
    means: &'a mut [f64],
    sds: &'a mut [f64],
    scratch: &'a mut [f64],
}

/// Where a fit's k-means++ seeds come from: a generator seeded per K from `cfg.seed` (the
/// seeded API: each K draws the same stream whatever K came before), or the caller's, used by
/// each K in turn.
enum Randomness<'r> {
    Seed(u64),
    Host(&'r mut dyn Rng),
}

impl Randomness<'_> {
    /// [`fit_into`] for K components with this source.
    #[allow(clippy::too_many_arguments)]
    fn fit<T: Real>(
        &mut self,
        samples: &[T],
        weights: &[T],
        d: usize,
        k: usize,
        cfg: &EmConfig,
        stats: &Stats,
        scratch: &mut [f64],
    ) -> Result<MixtureFit, Error> {
        match self {
            Randomness::Seed(seed) => {
                let mut rng = Xoshiro256PlusPlus::seed_from_u64(
                    *seed ^ (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                );
                fit_into(samples, weights, d, k, cfg, stats, scratch, &mut rng)
            }
            Randomness::Host(rng) => fit_into(samples, weights, d, k, cfg, stats, scratch, *rng),
        }
    }
}

/// [`fit_mixture`] with its randomness.
fn fit_k<T: Real>(
    samples: &[T],
    weights: &[T],
    d: usize,
    k: usize,
    cfg: &EmConfig,
    out: Outputs<'_>,
    rng: &mut Randomness<'_>,
) -> Result<MixtureFit, Error> {
    let stats = validate(samples, weights, d, k, cfg)?;
    check_outputs(out.weights, out.means, out.sds, out.scratch, k, d)?;
    let fit = rng.fit(samples, weights, d, k, cfg, &stats, out.scratch)?;
    copy_out(out.scratch, k, d, out.weights, out.means, out.sds);
    Ok(fit)
}

fn check_outputs(
    w: &[f64],
    m: &[f64],
    s: &[f64],
    scratch: &[f64],
    k: usize,
    d: usize,
) -> Result<(), Error> {
    check_len(w, k)?;
    check_len(m, k.saturating_mul(d))?;
    check_len(s, k.saturating_mul(d))?;
    check_min(scratch, scratch_len(k, d))
}

/// Copies the mixture left in the first slot of `scratch` (K components) to the outputs'
/// first K (K·D) entries, variances as standard deviations.
fn copy_out(scratch: &mut [f64], k: usize, d: usize, w: &mut [f64], m: &mut [f64], s: &mut [f64]) {
    let (best, _) = split_mix(scratch, k, d);
    w[..k].copy_from_slice(best.pi);
    m[..k * d].copy_from_slice(best.mu);
    for (sd, &v) in s[..k * d].iter_mut().zip(best.var.iter()) {
        *sd = libm::sqrt(v);
    }
}

/// The samples' weighted variance per dimension in `var` (at least 1e-300; seeds k-means++)
/// and `var_floor` times it in `floor` (added to every component's variance). `var` first
/// holds the weighted mean.
fn data_variance<T: Real>(
    samples: &[T],
    weights: &[T],
    d: usize,
    w_sum: f64,
    var_floor: f64,
    var: &mut [f64],
    floor: &mut [f64],
) {
    let mean = var;
    mean.iter_mut().for_each(|v| *v = 0.0);
    for (x, &w) in samples.chunks_exact(d).zip(weights) {
        for (m, &xi) in mean.iter_mut().zip(x) {
            *m += w.to_f64() * xi.to_f64();
        }
    }
    mean.iter_mut().for_each(|v| *v /= w_sum);
    floor.iter_mut().for_each(|v| *v = 0.0);
    for (x, &w) in samples.chunks_exact(d).zip(weights) {
        for ((f, &m), &xi) in floor.iter_mut().zip(mean.iter()).zip(x) {
            let u = xi.to_f64() - m;
            *f += w.to_f64() * u * u;
        }
    }
    for (v, f) in mean.iter_mut().zip(floor.iter_mut()) {
        *v = (*f / w_sum).max(1e-300);
        *f = *v * var_floor;
    }
}

/// Fits K components, drawing the k-means++ seeds from `rng`; the winner is left in the
/// first mixture slot of `scratch`.
#[allow(clippy::too_many_arguments)]
fn fit_into<T: Real>(
    samples: &[T],
    weights: &[T],
    d: usize,
    k: usize,
    cfg: &EmConfig,
    stats: &Stats,
    scratch: &mut [f64],
    rng: &mut dyn Rng,
) -> Result<MixtureFit, Error> {
    let per = k + 2 * k * d;
    let (best_buf, rest) = scratch.split_at_mut(per);
    let (cur_buf, rest) = rest.split_at_mut(per);
    let (acc_buf, rest) = rest.split_at_mut(per);
    let (pre_buf, rest) = rest.split_at_mut(per);
    let (logs, rest) = rest.split_at_mut(k);
    let (mean, rest) = rest.split_at_mut(d);
    let floor = &mut rest[..d];
    let (mut best, _) = split_mix(best_buf, k, d);
    let (mut cur, _) = split_mix(cur_buf, k, d);
    let (mut acc, _) = split_mix(acc_buf, k, d);
    let (mut pre, _) = split_mix(pre_buf, k, d);

    let max_w = weights.iter().fold(0.0f64, |a, &w| a.max(w.to_f64()));
    let thr = cfg.min_weight * max_w;
    let data_var = &mut *mean; // the mean's space, reused for the variance
    data_variance(
        samples,
        weights,
        d,
        stats.w_sum,
        cfg.var_floor,
        data_var,
        floor,
    );

    let mut draws = Draws::new(rng);
    let mut best_ll = f64::NEG_INFINITY;
    let mut best_iters = 0;
    for _ in 0..cfg.restarts {
        seed_kmeanspp(samples, weights, d, thr, data_var, &mut cur, &mut draws);
        let (ll, iters) = run_em(
            samples,
            weights,
            d,
            thr,
            floor,
            cfg,
            stats.w_sum,
            &mut cur,
            &mut acc,
            &mut pre,
            logs,
        );
        if ll.is_finite() && ll > best_ll {
            best_ll = ll;
            best_iters = iters;
            copy_mix(&mut best, &cur);
        }
    }
    if !best_ll.is_finite() {
        return Err(Error::NotConverged);
    }
    Ok(MixtureFit {
        components: k,
        mean_log_likelihood: best_ll,
        ess: stats.ess,
        bic: bic(best_ll, stats.ess, k, d),
        iterations: best_iters,
    })
}

/// Fits K = 1, 2, … components and keeps the one with the smallest BIC, stopping at `k_max`
/// or once BIC has failed to improve for two consecutive K (a larger K only adds penalty once
/// every mode has its component). The outputs are
/// sized for `k_max` (`out_weights`: `k_max`, `out_means`, `out_sds`: `k_max·D`); only the
/// first K (respectively K·D) entries are meaningful, K being `result.components`.
/// `scratch` needs [`scratch_len`]`(k_max, D)`.
// Same shape as base/em.rs::fit_mixture (duplicates): the two public entry points take the same
// arguments and run the same validation calls; after those, one fits K components and this one
// searches K.
#[allow(clippy::too_many_arguments)]
pub fn select_components<T: Real>(
    samples: &[T],
    weights: &[T],
    d: usize,
    k_max: usize,
    cfg: &EmConfig,
    out_weights: &mut [f64],
    out_means: &mut [f64],
    out_sds: &mut [f64],
    scratch: &mut [f64],
) -> Result<MixtureFit, Error> {
    let out = Outputs {
        weights: out_weights,
        means: out_means,
        sds: out_sds,
        scratch,
    };
    select_k(
        samples,
        weights,
        d,
        k_max,
        cfg,
        out,
        &mut Randomness::Seed(cfg.seed),
    )
}

/// [`select_components`] drawing the k-means++ seeds from the caller's generator (each K in
/// turn) instead of generators seeded from `cfg.seed` (which it ignores).
// Same shape as base/em.rs::select_components (duplicates): the seeded and the
// caller's-generator forms differ only in the `Randomness` they pass to `select_k`.
#[allow(clippy::too_many_arguments)]
pub fn select_components_with_rng<T: Real, R: Rng>(
    samples: &[T],
    weights: &[T],
    d: usize,
    k_max: usize,
    cfg: &EmConfig,
    out_weights: &mut [f64],
    out_means: &mut [f64],
    out_sds: &mut [f64],
    scratch: &mut [f64],
    rng: &mut R,
) -> Result<MixtureFit, Error> {
    let out = Outputs {
        weights: out_weights,
        means: out_means,
        sds: out_sds,
        scratch,
    };
    select_k(
        samples,
        weights,
        d,
        k_max,
        cfg,
        out,
        &mut Randomness::Host(rng),
    )
}

/// [`select_components`] with its randomness.
fn select_k<T: Real>(
    samples: &[T],
    weights: &[T],
    d: usize,
    k_max: usize,
    cfg: &EmConfig,
    out: Outputs<'_>,
    rng: &mut Randomness<'_>,
) -> Result<MixtureFit, Error> {
    let Outputs {
        weights: out_weights,
        means: out_means,
        sds: out_sds,
        scratch,
    } = out;
    let stats = validate(samples, weights, d, k_max, cfg)?;
    check_outputs(out_weights, out_means, out_sds, scratch, k_max, d)?;
    let mut chosen: Option<MixtureFit> = None;
    let mut worse_in_a_row = 0;
    for k in 1..=k_max {
        if worse_in_a_row >= 2 {
            break;
        }
        // The winning candidate is kept in the caller's outputs; scratch holds the current K.
        let fit = rng.fit(samples, weights, d, k, cfg, &stats, scratch)?;
        if chosen.is_none_or(|c| fit.bic < c.bic) {
            copy_out(scratch, k, d, out_weights, out_means, out_sds);
            chosen = Some(fit);
            worse_in_a_row = 0;
        } else {
            worse_in_a_row += 1;
        }
    }
    chosen.ok_or(Error::NotConverged)
}
