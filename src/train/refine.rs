//! Adaptive refinement: the posterior and the evidence in few likelihood calls.
//!
//! Round 0 draws from the uniform prior on the box [lo, hi]. Every later round draws from the
//! flow fitted at the end of the round before, and every sample θᵢ ever drawn keeps its
//! log-likelihood ℓᵢ. The fits see all samples with the **deterministic-mixture** (balance
//! heuristic) weights of Veach & Guibas / Owen & Zhou: with nₛ draws from proposal gₛ in round
//! s and N = Σ nₛ,
//!
//! ```text
//! Φ(θ) = Σₛ (nₛ/N) gₛ(θ),     wᵢ(β) = exp(β ℓᵢ) π(θᵢ) / Φ(θᵢ).
//! ```
//!
//! Round 0's proposal is the prior itself, so Φ ≥ (n₀/N)π everywhere: the prior draws are the
//! **defensive component** and every weight is bounded by L·N/n₀, whatever the flows do
//! between modes. Each proposal is evaluated once on every sample drawn before it and on the
//! draws after it (cheap next to a likelihood call); a running log-sum log Σₛ nₛ gₛ(θᵢ) per
//! sample carries the mixture. The proposals' parameters are kept (one slot per round) for
//! the draws that come after them.
//!
//! **Tempering.** Where the prior's draws see the likelihood with an ESS near 1 (5-D and up),
//! a flow cannot be fitted to the posterior directly. Each round therefore fits the tempered
//! posterior ∝ L^β π with the largest β ∈ [β_prev, 1] whose weights keep a Kish ESS of at
//! least `ess_fraction` × the round size (bisection; β never decreases), as adaptive SMC
//! samplers do. Once β = 1 the rounds simply add draws from ever better fits.
//!
//! **Fits.** Every round fits afresh (weighted EM for the mixture base, BIC for K, identity
//! couplings, then training) on all samples. At β = 1, with `warm_start`, the previous
//! proposal is also trained further on the same samples (unless its own draws gave k̂ > 0.7:
//! too thin somewhere, it would stay so), and whichever of the two has the lower loss on the
//! trainer's held-out samples ([`held_out_loss`], in θ) becomes the proposal. Fresh fits win
//! where a mixture base carries the posterior (they re-run EM on all the data: KL 2–5× lower
//! on the Gaussian-mixture tasks than warm starts alone); warm starts win where the couplings
//! need many epochs (2DB's bananas, KL 0.02–0.036 with fresh fits alone). With `bounded` the
//! flows live on the prior box ([`Shape::bounded`]), with `affine` they may whiten a
//! correlated posterior ([`Shape::affine`]; see [`fit_in_box`]).
//!
//! **Evidence.** Each round's draws alone give an unbiased estimate Ẑᵣ = mean Lπ/gᵣ (gᵣ was
//! fitted before they were drawn); ln Ẑ is the inverse-variance weighted mean of the rounds
//! whose k̂ ≤ 0.7 (where their delta-method variances are trustworthy), with standard error
//! (Σ 1/Vᵣ)^(−½). The deterministic-mixture estimate over all samples, which reuses the
//! samples the proposals were fitted on and measured a 1 % low bias, is only the fallback
//! before any round qualifies.
//!
//! **Stopping.** A round drawn from a proposal fitted at β = 1 on weights whose Kish ESS
//! reached `target_ess` is a check round (`check_samples` draws). Converged when that
//! proposal's PSIS k̂ against the posterior is at most `max_k_hat`, its KL(p‖q) estimated
//! from the same draws at most `max_kl`, and ln Ẑ moved by at most `log_z_tol` since the
//! previous round. The returned model is then that proposal, so its diagnostics were measured
//! on its own fresh draws. When the call budget (or the sample capacity, or the round cap)
//! runs out first, the loop fits one last model on all samples and ends with
//! [`RefineStatus::BudgetExhausted`] (or `MaxRounds`) and the full report, k̂ and KL marked
//! unmeasured: never a silent bad fit. Diagnostics cannot see a mode that no proposal ever
//! visited; slower tempering (a larger `ess_fraction`) is the guard against losing one.
//!
//! No likelihood call is spent outside the prior box: a draw outside it (or, with bounded
//! flows, one that rounds onto its boundary) has π = 0, is kept as a zero-weight sample of
//! its round (the mixture stays exact) and costs no call.
//!
//! The loop is a state machine ([`Refiner`]): [`Refiner::ask`] hands out the θ of the next
//! batch, [`Refiner::tell`] takes their log-likelihoods. [`refine`] drives it with a closure.
//! Between calls everything lives in the caller's buffers and a plain-data [`RefineState`];
//! each round's draws come from a generator seeded by (seed, round), so the same seed gives
//! the same bits.

use crate::diagnostics::{self, ImportanceSummary};
use crate::error::{check_len, check_min, Error};
use crate::flow::Flow;
use crate::logsum::Scaled;
use crate::real::Real;
use crate::shape::{BaseKind, Shape};
use crate::train::fit::{fit_in_box, BaseChoice, FitBuffers, FitConfig, FitMemory};
use crate::train::trainer::{held_out_loss, train, TrainReport};
use crate::train::weights::NonFinitePolicy;
use rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

mod bytes;
pub use bytes::STATE_BYTES;

/// Most rounds a refinement can run (round 0 included).
pub const MAX_ROUNDS: usize = 32;

/// Refinement settings. [`RefineConfig::for_dim`] gives the defaults the example uses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RefineConfig {
    /// Prior draws in round 0.
    pub initial_samples: usize,
    /// Draws per later round.
    pub samples_per_round: usize,
    /// Draws of a check round: the round after a fit whose β = 1 weights already reach
    /// `target_ess`, drawn to measure that fit's k̂ (and to add to Ẑ).
    pub check_samples: usize,
    /// Likelihood-call budget (round 0 included).
    pub max_calls: usize,
    /// Round cap, round 0 included, in 2..=[`MAX_ROUNDS`].
    pub max_rounds: usize,
    /// Tempering step: the next β keeps the Kish ESS of all weights ≥ this × the round size.
    pub ess_fraction: f64,
    /// Stop when the Kish ESS of the final (β = 1) weights reaches this.
    pub target_ess: f64,
    /// Stop only when the PSIS k̂ of the last proposal against the posterior is at most this.
    pub max_k_hat: f64,
    /// Stop only when the KL(p‖q) of the last proposal, estimated from its own draws, is at
    /// most this (k̂ does not see mass a proposal wastes between modes; this does).
    pub max_kl: f64,
    /// Stop only when ln Ẑ changed by at most this since the previous round.
    pub log_z_tol: f64,
    /// At β = 1, also train the previous round's parameters further and keep them when their
    /// held-out loss beats the fresh fit's (see the module docs). Off: fresh fits only.
    pub warm_start: bool,
    /// Fit flows that live on the prior box ([`Shape::bounded`]): no draw of a proposal and
    /// no sample of the returned model falls outside the box.
    pub bounded: bool,
    /// Fit flows with the affine standardisation ([`Shape::affine`]) set from each fit's
    /// weighted mean and covariance: a correlated posterior starts as a whitened one.
    pub affine: bool,
    /// Base, EM and trainer settings of every round's fit (`fit.base` must be an EM base or
    /// Gaussian; the trainer's seed is varied per round).
    pub fit: FitConfig,
    /// What to do with a NaN or +∞ log-likelihood (−∞ is a valid zero likelihood).
    pub policy: NonFinitePolicy,
    /// Seed of the draws.
    pub seed: u64,
}

impl RefineConfig {
    /// Defaults for dimension `d`, tuned on the public suite (README):
    ///
    /// | D | prior draws | round | check round | ESS target | budget |
    /// |---|---:|---:|---:|---:|---:|
    /// | ≤ 2 | 500 | 1,000 | 1,000 | 2,500 | 10,000 |
    /// | 3 | 1,000 | 2,000 | 1,000 | 5,000 | 10,000 |
    /// | 4–8 | 4,000 | 2,500 | 1,250 | 6,000 | 40,000 |
    /// | ≥ 9 | 5,000 | 2,500 | 1,250 | 6,000 | 60,000 |
    ///
    /// Tempering keeps an ESS of 0.2 × the round size up to 3-D and 0.5 × above. A fit is accepted at k̂ ≤ 0.5 and an
    /// estimated KL(p‖q) ≤ 0.005 up to 3-D (0.02 above). Automatic mixture base with up
    /// to 8 components (one EM start, at most 100 iterations: the refinement refits every
    /// round), at most 30 epochs with patience 4 (3 above 3-D).
    pub fn for_dim(d: usize) -> Self {
        let (initial, per_round, check, target, budget) = match d {
            0..=2 => (500, 1_000, 1_000, 2_500.0, 10_000),
            3 => (1_000, 2_000, 1_000, 5_000.0, 10_000),
            4..=8 => (4_000, 2_500, 1_250, 6_000.0, 40_000),
            _ => (5_000, 2_500, 1_250, 6_000.0, 60_000),
        };
        // Slower tempering above 3-D: with 0.2, a narrow mode holding 2 % of the tempered
        // mass at small β (8D3's third) was left without a component and lost in 2 of 3 runs.
        let (ess_fraction, patience) = if d <= 3 { (0.2, 4) } else { (0.5, 3) };
        RefineConfig {
            initial_samples: initial,
            samples_per_round: per_round,
            check_samples: check,
            max_calls: budget,
            max_rounds: MAX_ROUNDS,
            ess_fraction,
            target_ess: target,
            max_k_hat: 0.5,
            max_kl: if d <= 3 { 0.005 } else { 0.02 },
            log_z_tol: 0.02,
            warm_start: true,
            bounded: true,
            affine: true,
            fit: FitConfig {
                base: BaseChoice::Auto(8),
                em: crate::base::em::EmConfig {
                    restarts: 1,
                    max_iter: 50,
                    ..Default::default()
                },
                train: crate::train::trainer::TrainConfig {
                    max_epochs: 30,
                    batch_size: 256,
                    patience,
                    ..Default::default()
                },
                init_seed: 0x1417,
            },
            policy: NonFinitePolicy::Error,
            seed: 0,
        }
    }

    /// The shape of every fitted proposal but its base: `template` with this configuration's
    /// outer maps and a Gaussian base (each fit picks its base per `fit.base`, so the
    /// template's own base never matters; kept, a mixture larger than `fit.base` allows made
    /// the stored state fail its own checks after the first round).
    pub fn proposal_template(&self, template: &Shape) -> Shape {
        template
            .with_bounded(self.bounded)
            .with_affine(self.affine)
            .with_base(BaseKind::Gaussian)
    }

    /// Most samples the loop can hold: every call plus the draws that landed outside the box
    /// (at most one round's worth beyond the budget is ever drawn).
    pub fn capacity(&self) -> usize {
        self.max_calls
            .saturating_add(self.samples_per_round.max(self.initial_samples))
    }

    /// Checks every field (`InvalidArgument`, `NonFinite`).
    pub fn validate(&self) -> Result<(), Error> {
        self.fit.train.validate()?;
        self.fit.em.validate()?;
        let floats = [
            self.ess_fraction,
            self.target_ess,
            self.max_k_hat,
            self.max_kl,
            self.log_z_tol,
        ];
        if floats.iter().any(|v| !v.is_finite()) {
            return Err(Error::NonFinite);
        }
        if self.initial_samples < 2
            || self.samples_per_round < 2
            || self.check_samples < 2
            || self.max_calls < self.initial_samples
            || !(2..=MAX_ROUNDS).contains(&self.max_rounds)
            || !(self.ess_fraction > 0.0 && self.ess_fraction < 1.0)
            || self.target_ess < 0.0
            || self.max_k_hat < 0.0
            || self.max_kl < 0.0
            || self.log_z_tol < 0.0
            || self.fit.base.max_components() == 0
            || matches!(self.fit.base, BaseChoice::PaperMixture(_))
            || self.capacity() > u32::MAX as usize
        {
            return Err(Error::InvalidArgument);
        }
        Ok(())
    }
}

/// Why the loop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefineStatus {
    /// Still running: the next step is [`Refiner::ask`].
    Running,
    /// Every stopping target held.
    Converged,
    /// The call budget (or the sample capacity) ran out before the targets held.
    BudgetExhausted,
    /// The round cap was reached before the targets held.
    MaxRounds,
}

/// What one round measured (after its likelihood values came back).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RoundReport {
    /// Round number (0 = the prior draws).
    pub round: usize,
    /// Likelihood calls so far (all rounds).
    pub calls: usize,
    /// Draws so far, the zero-weight draws outside the box included.
    pub draws: usize,
    /// β of the fit whose draws this round made (0 for round 0).
    pub beta: f64,
    /// β chosen for the next fit.
    pub next_beta: f64,
    /// ln Ẑ = ln ∫ L π: the inverse-variance weighted mean of the rounds' own estimates
    /// whose k̂ ≤ 0.7 (their variance estimates are reliable there), or, before any round
    /// qualifies, the deterministic-mixture estimate over all samples.
    pub log_z: f64,
    /// Standard error of `log_z`.
    pub log_z_se: f64,
    /// Kish ESS of all samples' β = 1 weights.
    pub ess: f64,
    /// PSIS k̂ of this round's proposal against the posterior, from its own draws.
    pub k_hat: f64,
    /// KL(p‖g) of this round's proposal g estimated from its own draws
    /// ([`ImportanceSummary::kl`](crate::diagnostics::ImportanceSummary::kl); +∞ when no draw
    /// had a non-zero likelihood).
    pub kl: f64,
    /// ln Ẑ of this round's draws alone (importance sampling from its proposal, which had
    /// not seen them; NaN when no draw had a non-zero likelihood).
    pub own_log_z: f64,
    /// Rounds whose own estimates make up `log_z` (0: it is the mixture estimate).
    pub evidence_rounds: usize,
    /// Mixture components of the proposal (0 for the prior).
    pub components: usize,
    /// Training epochs of the proposal's fit (0 for the prior).
    pub epochs: usize,
    /// Epoch of the restored parameters of that fit.
    pub best_epoch: usize,
    /// That fit hit its epoch cap while its validation loss was still improving.
    pub still_improving: bool,
}

/// The end of a refinement.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RefineReport {
    /// Why it ended.
    pub status: RefineStatus,
    /// Rounds run.
    pub rounds: usize,
    /// Likelihood calls.
    pub calls: usize,
    /// Samples held (calls and draws outside the box).
    pub draws: usize,
    /// ln Ẑ = ln ∫ L π over all samples, and its standard error.
    pub log_z: f64,
    /// Standard error of `log_z`.
    pub log_z_se: f64,
    /// Kish ESS of the final weights.
    pub ess: f64,
    /// PSIS k̂ of the returned model against the posterior, measured on its own draws;
    /// `None` when the returned model was fitted after the budget ran out (never drawn from).
    pub k_hat: Option<f64>,
    /// KL(p‖q) of the returned model estimated from its own draws (`None` as for `k_hat`).
    pub kl: Option<f64>,
    /// The returned model's shape.
    pub shape: Shape,
    /// The returned model's training run.
    pub train: TrainReport,
    /// β of the returned model's fit (1 unless the budget ran out while tempering).
    pub beta: f64,
}

/// Element counts of the three caller slices [`RefineBuffers::split`] carves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefineMemory {
    /// Elements of the `T` slice.
    pub reals: usize,
    /// Elements of the `f64` slice.
    pub f64s: usize,
    /// Elements of the `u32` slice.
    pub order: usize,
}

impl RefineMemory {
    /// Memory for refining with `cfg` on `template` (D, widths; the base comes from
    /// `cfg.fit.base`). Saturates instead of overflowing.
    pub fn new(template: &Shape, cfg: &RefineConfig) -> Self {
        let template = &cfg.proposal_template(template);
        let cap = cfg.capacity();
        let d = template.dim;
        let max = cfg.fit.base.max_shape(template);
        let fit = FitMemory::new(template, &cfg.fit, cap);
        RefineMemory {
            // samples, training weights, a log q column, the stored proposals and a spare,
            // eval workspace
            reals: cap
                .saturating_mul(d.saturating_add(2))
                .saturating_add((cfg.max_rounds + 1).saturating_mul(max.param_len()))
                .saturating_add(max.eval_workspace_len())
                .saturating_add(fit.reals),
            // ℓ, log Σ nₛgₛ, own-proposal log density, log-weights, sort scratch; EM
            f64s: cap
                .saturating_mul(4)
                .saturating_add(diagnostics::scratch_len(cap))
                .saturating_add(fit.em),
            order: fit.order,
        }
    }
}

/// The caller's memory for a [`Refiner`], carved by [`RefineBuffers::split`].
// Same shape as train/checkpoint.rs::ResumeBuffers (duplicates): named caller buffers carved by
// split; the buffers differ.
pub struct RefineBuffers<'b, T> {
    theta: &'b mut [T],
    weights: &'b mut [T],
    log_q: &'b mut [T],
    models: &'b mut [T],
    eval_ws: &'b mut [T],
    fit_reals: &'b mut [T],
    log_l: &'b mut [f64],
    log_mix: &'b mut [f64],
    log_own: &'b mut [f64],
    log_w: &'b mut [f64],
    scratch: &'b mut [f64],
    fit_em: &'b mut [f64],
    order: &'b mut [u32],
}

impl<'b, T: Real> RefineBuffers<'b, T> {
    /// Carves every buffer of a refinement out of three caller slices of at least
    /// [`RefineMemory::new`] lengths (`BufferTooSmall` otherwise).
    pub fn split(
        template: &Shape,
        cfg: &RefineConfig,
        reals: &'b mut [T],
        f64s: &'b mut [f64],
        order: &'b mut [u32],
    ) -> Result<Self, Error> {
        cfg.validate()?;
        let need = RefineMemory::new(template, cfg);
        let template = &cfg.proposal_template(template);
        check_min(reals, need.reals)?;
        check_min(f64s, need.f64s)?;
        check_min(order, need.order)?;
        let cap = cfg.capacity();
        let d = template.dim;
        let max = cfg.fit.base.max_shape(template);
        let (theta, rest) = reals.split_at_mut(cap * d);
        let (weights, rest) = rest.split_at_mut(cap);
        let (log_q, rest) = rest.split_at_mut(cap);
        // One slot per round and a spare for the warm-started candidate.
        let (models, rest) = rest.split_at_mut((cfg.max_rounds + 1) * max.param_len());
        let (eval_ws, fit_reals) = rest.split_at_mut(max.eval_workspace_len());
        let (log_l, rest) = f64s.split_at_mut(cap);
        let (log_mix, rest) = rest.split_at_mut(cap);
        let (log_own, rest) = rest.split_at_mut(cap);
        let (log_w, rest) = rest.split_at_mut(cap);
        let (scratch, fit_em) = rest.split_at_mut(diagnostics::scratch_len(cap));
        Ok(RefineBuffers {
            theta,
            weights,
            log_q,
            models,
            eval_ws,
            fit_reals,
            log_l,
            log_mix,
            log_own,
            log_w,
            scratch,
            fit_em,
            order,
        })
    }
}

/// One proposal: its shape, its round size and the β it was fitted at.
#[derive(Clone, Copy, Debug)]
struct Proposal {
    shape: Shape,
    draws: usize,
    beta: f64,
    train: Option<TrainReport>,
    /// Kish ESS of the β = 1 weights it was fitted on (0 for a tempered fit or the prior).
    train_ess: f64,
}

/// Everything a refinement knows between calls, apart from the per-sample buffers: plain data
/// with no references, so a host can keep it between `ask` and `tell` (the C ABI stores it in
/// the caller's memory) and [`Refiner::resume`] can pick it up with the same buffers.
#[derive(Clone, Copy, Debug)]
pub struct RefineState {
    template: Shape,
    cfg: RefineConfig,
    lo: [f64; MAX_DIM],
    hi: [f64; MAX_DIM],
    log_prior: f64,
    /// Samples held (the first `n` of every per-sample buffer).
    n: usize,
    calls: usize,
    /// Start of the current round's samples, and how many of them are in the box (asked).
    round_start: usize,
    pending: usize,
    /// A batch is outstanding (asked, not yet told).
    asked: bool,
    proposals: [Option<Proposal>; MAX_ROUNDS],
    rounds: usize,
    reports: [Option<RoundReport>; MAX_ROUNDS],
    status: RefineStatus,
    /// Slot of the returned model once finished.
    final_slot: usize,
    final_k_hat: Option<f64>,
    final_kl: Option<f64>,
    last: Option<Summary>,
    evidence: Evidence,
}

/// The refinement state machine: `ask` → evaluate → `tell`, until [`Refiner::status`] is
/// no longer `Running`. Everything lives in the caller's [`RefineBuffers`] and a
/// [`RefineState`].
pub struct Refiner<'b, T: Real> {
    st: RefineState,
    buf: RefineBuffers<'b, T>,
}

/// The running evidence and weight figures between rounds.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Summary {
    log_z: f64,
    log_z_se: f64,
    ess: f64,
}

/// Below this k̂ a round's variance estimate is trusted (PSIS: min(1 − 1/log₁₀ n, 0.7)).
const RELIABLE_K_HAT: f64 = 0.7;

/// Inverse-variance weighted combination of independent per-round estimates Ẑⱼ (each
/// unbiased given the rounds before it): Ẑ = Σ Ẑⱼ/Vⱼ / Σ 1/Vⱼ, SE = (Σ 1/Vⱼ)^(−½), with
/// Vⱼ = (seⱼ·Ẑⱼ)², all relative to the first round's Ẑ so nothing overflows.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Evidence {
    reference: f64,
    sum_inv_var: f64,
    sum_z_inv_var: f64,
    rounds: usize,
}

impl Evidence {
    fn add(&mut self, log_z: f64, log_z_se: f64) {
        if !log_z.is_finite() || !log_z_se.is_finite() {
            return;
        }
        if self.rounds == 0 {
            self.reference = log_z;
        }
        let z = libm::exp(log_z - self.reference);
        // A round of equal weights has se 0: floor its variance instead of dividing by 0.
        let var = f64::max(log_z_se * z * log_z_se * z, 1e-24 * z * z);
        // A round far below the reference (Ẑ/Ẑ₀ ≲ 1e-150) has a subnormal variance whose
        // inverse overflows; it carries no weight beside the reference, so it is left out.
        let (sum_inv_var, sum_z_inv_var) =
            (self.sum_inv_var + 1.0 / var, self.sum_z_inv_var + z / var);
        if !(var > 0.0 && sum_inv_var.is_finite() && sum_z_inv_var.is_finite()) {
            return;
        }
        self.sum_inv_var = sum_inv_var;
        self.sum_z_inv_var = sum_z_inv_var;
        self.rounds += 1;
    }

    /// (log Ẑ, se of log Ẑ), or `None` before the first round or if the figures are not
    /// finite (the caller falls back to the all-samples estimate).
    fn estimate(&self) -> Option<(f64, f64)> {
        if self.rounds == 0 {
            return None;
        }
        let z = self.sum_z_inv_var / self.sum_inv_var;
        let se = 1.0 / libm::sqrt(self.sum_inv_var);
        let (log_z, log_z_se) = (self.reference + libm::log(z), se / z);
        (log_z.is_finite() && log_z_se.is_finite()).then_some((log_z, log_z_se))
    }
}

/// Largest dimension the refinement loop takes.
pub const MAX_DIM: usize = 64;

const LN_EPS: f64 = -745.0;

/// Parameter slots per stored proposal: the largest shape the base choice can produce.
fn slot_len(st: &RefineState) -> usize {
    st.cfg.fit.base.max_shape(&st.template).param_len()
}

/// Proposal `r` as a flow over its slot of `models`.
fn proposal<'m, T: Real>(
    st: &RefineState,
    models: &'m [T],
    r: usize,
) -> Result<Flow<'m, T>, Error> {
    let p = st.proposals[r].ok_or(Error::InvalidArgument)?;
    let at = r * slot_len(st);
    Flow::new(p.shape, &models[at..at + p.shape.param_len()])
}

/// The generator of round `r`'s draws: seeded from the configured seed and the round alone,
/// so the state between calls holds no generator (a resumed loop draws the same points).
fn round_rng(seed: u64, r: usize) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(seed ^ (r as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// NaN and +∞ log-likelihoods (−∞ is a valid zero likelihood).
fn refused(v: f64) -> bool {
    v.is_nan() || v == f64::INFINITY
}

fn log_add(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
    if hi == f64::NEG_INFINITY {
        return hi;
    }
    hi + libm::log1p(libm::exp(lo - hi))
}

impl<'b, T: Real> Refiner<'b, T> {
    /// Starts a refinement of the posterior ∝ L·π, π uniform on the box [lo, hi] (D values
    /// each, D = `template.dim` ≤ [`MAX_DIM`]); `template` gives the flow's widths and
    /// couplings (its base is replaced per `cfg.fit.base`).
    ///
    /// Errors: `InvalidShape`, `InvalidArgument` (bad config, lo ≥ hi, D mismatch),
    /// `NonFinite` (a bound or a width that is not finite), `BufferTooSmall`.
    pub fn new(
        template: &Shape,
        lo: &[f64],
        hi: &[f64],
        cfg: &RefineConfig,
        buf: RefineBuffers<'b, T>,
    ) -> Result<Self, Error> {
        cfg.validate()?;
        cfg.fit.base.max_shape(template).validate()?;
        let d = template.dim;
        if d > MAX_DIM {
            return Err(Error::InvalidArgument);
        }
        check_len(lo, d)?;
        check_len(hi, d)?;
        let mut log_prior = 0.0;
        let (mut l, mut h) = ([0.0; MAX_DIM], [0.0; MAX_DIM]);
        for i in 0..d {
            let width = hi[i] - lo[i];
            if !lo[i].is_finite() || !hi[i].is_finite() || !width.is_finite() {
                return Err(Error::NonFinite);
            }
            // The draws are in T: the box must be representable and non-empty there.
            let (lt, ht) = (T::from_f64(lo[i]), T::from_f64(hi[i]));
            if !(width > 0.0) || !(ht > lt) || !(ht - lt).to_f64().is_finite() {
                return Err(Error::InvalidArgument);
            }
            log_prior -= libm::log(width);
            l[i] = lo[i];
            h[i] = hi[i];
        }
        let cap = cfg.capacity();
        check_min(buf.theta, cap * d)?;
        let st = RefineState {
            template: cfg.proposal_template(template),
            cfg: *cfg,
            lo: l,
            hi: h,
            log_prior,
            n: 0,
            calls: 0,
            round_start: 0,
            pending: 0,
            asked: false,
            proposals: [None; MAX_ROUNDS],
            rounds: 0,
            reports: [None; MAX_ROUNDS],
            status: RefineStatus::Running,
            final_slot: 0,
            final_k_hat: None,
            final_kl: None,
            last: None,
            evidence: Evidence::default(),
        };
        Ok(Refiner { st, buf })
    }

    /// Continues a refinement from a state taken with [`state`](Self::state) (or
    /// [`into_state`](Self::into_state)) and the same buffers, unchanged since: the buffers
    /// hold the samples, their likelihoods and the stored proposals.
    pub fn resume(state: RefineState, buf: RefineBuffers<'b, T>) -> Result<Self, Error> {
        let need = state.cfg.capacity().saturating_mul(state.template.dim);
        check_min(buf.theta, need)?;
        Ok(Refiner { st: state, buf })
    }

    /// The state between calls.
    pub fn state(&self) -> &RefineState {
        &self.st
    }

    /// Gives the state back and ends the borrow of the buffers.
    pub fn into_state(self) -> RefineState {
        self.st
    }

    /// Where the loop stands.
    pub fn status(&self) -> RefineStatus {
        self.st.status()
    }

    /// Likelihood calls so far.
    pub fn calls(&self) -> usize {
        self.st.calls()
    }

    /// Reports of the rounds finished so far, in order.
    pub fn rounds(&self) -> impl Iterator<Item = &RoundReport> {
        self.st.reports.iter().flatten()
    }

    /// Every sample so far (`n·D`) with its log-likelihood (−∞ for draws outside the box).
    pub fn samples(&self) -> (&[T], &[f64]) {
        let d = self.st.template.dim;
        (
            &self.buf.theta[..self.st.n * d],
            &self.buf.log_l[..self.st.n],
        )
    }

    /// Draws the next round and returns the θ (`m·D`, all inside the box) whose
    /// log-likelihoods [`tell`](Self::tell) expects, in this order. Calling `ask` again
    /// before `tell` returns the same batch. `InvalidArgument` once the loop has finished.
    pub fn ask(&mut self) -> Result<&[T], Error> {
        if self.st.status != RefineStatus::Running {
            return Err(Error::InvalidArgument);
        }
        let d = self.st.template.dim;
        if !self.st.asked {
            self.draw_round()?;
            self.st.asked = true;
        }
        let s = self.st.round_start;
        Ok(&self.buf.theta[s * d..(s + self.st.pending) * d])
    }

    /// Takes the log-likelihoods of the batch [`ask`](Self::ask) handed out (`m` values),
    /// weighs every sample, and either fits the next proposal or finishes. −∞ is a valid zero
    /// likelihood; NaN and +∞ follow `cfg.policy` (`NonFinite`, with nothing stored, or a
    /// zero weight). `LengthMismatch` for a wrong length, `InvalidArgument` without a batch
    /// outstanding: in both cases nothing changes and the same `tell` can be repeated.
    pub fn tell(&mut self, log_l: &[f64]) -> Result<RoundReport, Error> {
        if self.st.status != RefineStatus::Running || !self.st.asked {
            return Err(Error::InvalidArgument);
        }
        check_len(log_l, self.st.pending)?;
        if self.st.cfg.policy == NonFinitePolicy::Error && log_l.iter().any(|&v| refused(v)) {
            return Err(Error::NonFinite);
        }
        let s = self.st.round_start;
        self.buf.log_l[s..s + self.st.pending].copy_from_slice(log_l);
        self.accept_batch()
    }

    /// Accepts the values in the ℓ column of the outstanding batch (NaN/+∞ per the policy)
    /// and finishes the round.
    fn accept_batch(&mut self) -> Result<RoundReport, Error> {
        let (s, m) = (self.st.round_start, self.st.pending);
        let told = &mut self.buf.log_l[s..s + m];
        if self.st.cfg.policy == NonFinitePolicy::Error && told.iter().any(|&v| refused(v)) {
            return Err(Error::NonFinite);
        }
        for v in told.iter_mut().filter(|v| refused(**v)) {
            *v = f64::NEG_INFINITY;
        }
        self.st.calls += m;
        self.st.pending = 0;
        self.st.asked = false;
        let round = self.st.rounds;
        self.st.rounds += 1;
        self.finish_round(round)
    }

    /// The returned model once finished: its shape and parameters.
    pub fn model(&self) -> Result<(Shape, &[T]), Error> {
        if self.st.status == RefineStatus::Running {
            return Err(Error::InvalidArgument);
        }
        self.slot(self.st.final_slot)
    }

    /// The final report (`InvalidArgument` while running).
    pub fn report(&self) -> Result<RefineReport, Error> {
        self.st.report()
    }

    fn slot(&self, r: usize) -> Result<(Shape, &[T]), Error> {
        proposal(&self.st, self.buf.models, r).map(|f| (*f.shape(), f.params()))
    }

    /// Draws this round's samples, moves the ones inside the box to the front and records
    /// them as the pending batch. Round r draws from proposal r (r = 0: the prior).
    fn draw_round(&mut self) -> Result<(), Error> {
        let d = self.st.template.dim;
        let r = self.st.rounds;
        // Round 0's size is configured; later sizes were fixed when their proposal was fitted
        // (its term in every earlier sample's mixture uses it).
        let want = match self.st.proposals[r] {
            Some(p) if r > 0 => p.draws,
            _ => self.st.cfg.initial_samples,
        };
        let m = want
            .min(self.st.cfg.max_calls - self.st.calls)
            .min(self.st.cfg.capacity() - self.st.n);
        if m == 0 {
            return Err(Error::InvalidArgument);
        }
        let (s, e) = (self.st.n, self.st.n + m);
        if r == 0 {
            self.draw_prior(s, e);
        } else {
            proposal(&self.st, self.buf.models, r)?.sample(
                &mut round_rng(self.st.cfg.seed, r),
                &mut self.buf.theta[s * d..e * d],
                &mut self.buf.log_q[s..e],
                self.buf.eval_ws,
            )?;
            for (o, &q) in self.buf.log_own[s..e].iter_mut().zip(&self.buf.log_q[s..e]) {
                *o = q.to_f64();
            }
        }
        let inside = self.inside_first(s, e);
        for v in &mut self.buf.log_l[inside..e] {
            *v = f64::NEG_INFINITY;
        }
        if let Some(p) = self.st.proposals[r].as_mut() {
            p.draws = m;
        } else {
            self.st.proposals[r] = Some(Proposal {
                shape: self.st.template,
                draws: m,
                beta: 0.0,
                train: None,
                train_ess: 0.0,
            });
        }
        // The new samples' mixture term: every earlier proposal and this one.
        self.st.n = e;
        self.st.round_start = s;
        self.st.pending = inside - s;
        // Nothing inside the box is possible: an empty batch is still a round, told with
        // no values.
        self.mixture_for_new(s, e, r)
    }

    /// Round 0's draws, samples `s..e`: uniform on the prior box, in f64 and then rounded to
    /// T. A draw that rounds onto an edge is redrawn (at most 64 times; the midpoint is a last
    /// resort), so every one has a finite density under a flow that lives on the box.
    /// (`weights::sample_box` does the same in T's arithmetic, for boxes given in T.)
    fn draw_prior(&mut self, s: usize, e: usize) {
        let d = self.st.template.dim;
        let mut rng = round_rng(self.st.cfg.seed, 0);
        let mut draws = crate::rng::Draws::new(&mut rng);
        for row in self.buf.theta[s * d..e * d].chunks_exact_mut(d) {
            for (k, v) in row.iter_mut().enumerate() {
                let (a, b) = (self.st.lo[k], self.st.hi[k]);
                *v = T::from_f64(0.5 * (a + b));
                for _ in 0..64 {
                    let x = T::from_f64(a + (b - a) * draws.uniform()).to_f64();
                    if x > a && x < b {
                        *v = T::from_f64(x);
                        break;
                    }
                }
            }
        }
        self.buf.log_own[s..e].fill(self.st.log_prior);
    }

    /// Moves the samples of `s..e` inside the box to the front (order within a round does
    /// not matter to the weights), with their proposal densities; returns where the outside
    /// ones begin.
    fn inside_first(&mut self, s: usize, e: usize) -> usize {
        let d = self.st.template.dim;
        let mut inside = s;
        for i in s..e {
            if self.in_box(&self.buf.theta[i * d..(i + 1) * d]) {
                if i != inside {
                    for k in 0..d {
                        self.buf.theta.swap(inside * d + k, i * d + k);
                    }
                    self.buf.log_own.swap(inside, i);
                }
                inside += 1;
            }
        }
        inside
    }

    /// Inside the prior box: the closed box, or the open one for bounded proposals (whose
    /// density is 0 on the boundary, where a draw can land only by rounding).
    fn in_box(&self, row: &[T]) -> bool {
        let open = self.st.template.bounded;
        row.iter().enumerate().all(|(k, &v)| {
            let (v, a, b) = (v.to_f64(), self.st.lo[k], self.st.hi[k]);
            if open {
                v > a && v < b
            } else {
                v >= a && v <= b
            }
        })
    }

    /// log Σₛ nₛ gₛ(θᵢ) for the new samples s..e over proposals 0..=r (proposal r's size
    /// is already set).
    fn mixture_for_new(&mut self, s: usize, e: usize, r: usize) -> Result<(), Error> {
        for i in s..e {
            self.buf.log_mix[i] = f64::NEG_INFINITY;
        }
        for q in 0..=r {
            self.add_proposal_terms(q, s, e)?;
        }
        Ok(())
    }

    /// Adds ln n_q + log g_q(θᵢ) to the running log-sum of samples s..e.
    fn add_proposal_terms(&mut self, q: usize, s: usize, e: usize) -> Result<(), Error> {
        if s == e {
            return Ok(());
        }
        let d = self.st.template.dim;
        let p = self.st.proposals[q].ok_or(Error::InvalidArgument)?;
        let ln_n = libm::log(p.draws as f64);
        if q == 0 {
            for i in s..e {
                let lp = if self.in_box(&self.buf.theta[i * d..(i + 1) * d]) {
                    self.st.log_prior
                } else {
                    f64::NEG_INFINITY
                };
                self.buf.log_mix[i] = log_add(self.buf.log_mix[i], ln_n + lp);
            }
            return Ok(());
        }
        proposal(&self.st, self.buf.models, q)?.log_prob(
            &self.buf.theta[s * d..e * d],
            &mut self.buf.log_q[s..e],
            self.buf.eval_ws,
        )?;
        for i in s..e {
            let lq = self.buf.log_q[i].to_f64();
            if lq.is_nan() || lq == f64::INFINITY {
                return Err(Error::NonFinite);
            }
            self.buf.log_mix[i] = log_add(self.buf.log_mix[i], ln_n + lq);
        }
        Ok(())
    }

    /// log wᵢ(β) = β ℓᵢ + log π(θᵢ) − log Φ(θᵢ) into `log_w[..n]` (−∞ outside the box).
    fn log_weights(&mut self, beta: f64) {
        let ln_n = libm::log(self.st.n as f64);
        for i in 0..self.st.n {
            let l = self.buf.log_l[i];
            self.buf.log_w[i] = if l == f64::NEG_INFINITY {
                f64::NEG_INFINITY
            } else {
                beta * l + self.st.log_prior - self.buf.log_mix[i] + ln_n
            };
        }
    }

    fn kish_ess(&mut self, beta: f64) -> f64 {
        self.log_weights(beta);
        Scaled::of(self.buf.log_w[..self.st.n].iter().copied()).map_or(0.0, |s| s.kish_ess())
    }

    /// The next β: the largest in [β_prev, 1] whose weights keep ESS ≥ target (bisection).
    fn next_beta(&mut self, prev: f64, target: f64) -> f64 {
        if self.kish_ess(1.0) >= target {
            return 1.0;
        }
        let (mut a, mut b) = (prev, 1.0);
        for _ in 0..50 {
            let mid = 0.5 * (a + b);
            if self.kish_ess(mid) >= target {
                a = mid;
            } else {
                b = mid;
            }
        }
        a
    }

    fn finish_round(&mut self, round: usize) -> Result<RoundReport, Error> {
        let this = self.st.proposals[round].ok_or(Error::InvalidArgument)?;
        let (summary, own) = self.round_summaries()?;
        let k_hat = own.ok().and_then(|o| o.k_hat).unwrap_or(f64::INFINITY);
        let kl = own.map_or(f64::INFINITY, |o| o.kl);
        let prev_log_z = self.st.last.map(|l| l.log_z);
        self.st.last = Some(summary);
        let target = self.st.cfg.ess_fraction * this.draws as f64;
        let next_beta = self.next_beta(this.beta, target);
        let report = self.round_report(round, &this, summary, own, next_beta);
        self.st.reports[round] = Some(report);

        // The proposal must have been fitted at β = 1 on weights of ESS ≥ target: the
        // returned model then saw all the data the targets ask for, and this round (a check
        // round) measured its k̂ on fresh draws.
        let cfg = &self.st.cfg;
        let converged = round > 0
            && this.beta >= 1.0
            && this.train_ess >= cfg.target_ess
            && k_hat <= cfg.max_k_hat
            && kl <= cfg.max_kl
            && prev_log_z.is_some_and(|p| libm::fabs(summary.log_z - p) <= cfg.log_z_tol);
        if converged {
            self.st.status = RefineStatus::Converged;
            self.st.final_slot = round;
            self.st.final_k_hat = Some(k_hat);
            self.st.final_kl = Some(kl);
            return Ok(report);
        }
        self.next_round(round, k_hat <= RELIABLE_K_HAT, next_beta, summary.ess)?;
        Ok(report)
    }

    /// The round's evidence summary (all samples' deterministic-mixture weights at β = 1:
    /// the ESS the next fit sees, and the fallback evidence estimate) and the summary of this
    /// round's draws on their own: plain importance sampling from its proposal, which did not
    /// see these draws (unbiased), with its k̂ against the posterior. A reliable one (k̂ ≤ 0.7)
    /// joins the evidence.
    fn round_summaries(&mut self) -> Result<(Summary, Result<ImportanceSummary, Error>), Error> {
        self.log_weights(1.0);
        let mixture =
            diagnostics::importance_summary(&self.buf.log_w[..self.st.n], self.buf.scratch)?;
        let (s, e) = (self.st.round_start, self.st.n);
        for i in s..e {
            let l = self.buf.log_l[i];
            self.buf.log_w[i - s] = if l == f64::NEG_INFINITY {
                f64::NEG_INFINITY
            } else {
                l + self.st.log_prior - self.buf.log_own[i]
            };
        }
        let own = diagnostics::importance_summary(&self.buf.log_w[..e - s], self.buf.scratch);
        if let Ok(o) = own {
            if o.k_hat.unwrap_or(f64::INFINITY) <= RELIABLE_K_HAT {
                self.st.evidence.add(o.log_z, o.log_z_se);
            }
        }
        let (log_z, log_z_se) = self
            .st
            .evidence
            .estimate()
            .unwrap_or((mixture.log_z, mixture.log_z_se));
        let summary = Summary {
            log_z,
            log_z_se,
            ess: mixture.ess,
        };
        Ok((summary, own))
    }

    fn round_report(
        &self,
        round: usize,
        this: &Proposal,
        summary: Summary,
        own: Result<ImportanceSummary, Error>,
        next_beta: f64,
    ) -> RoundReport {
        let train = this.train;
        RoundReport {
            round,
            calls: self.st.calls,
            draws: self.st.n,
            beta: this.beta,
            next_beta,
            log_z: summary.log_z,
            log_z_se: summary.log_z_se,
            ess: summary.ess,
            k_hat: own.ok().and_then(|o| o.k_hat).unwrap_or(f64::INFINITY),
            own_log_z: own.map_or(f64::NAN, |o| o.log_z),
            kl: own.map_or(f64::INFINITY, |o| o.kl),
            evidence_rounds: self.st.evidence.rounds,
            components: if round == 0 {
                0
            } else {
                this.shape.components()
            },
            epochs: train.map_or(0, |t| t.epochs),
            best_epoch: train.map_or(0, |t| t.best_epoch),
            still_improving: train.is_some_and(|t| t.still_improving()),
        }
    }

    /// After a round that did not converge: fits the next proposal, then either ends the
    /// refinement (budget or rounds spent: the new fit is the result) or sizes the next round
    /// and adds the new proposal's term for every sample drawn so far.
    fn next_round(
        &mut self,
        round: usize,
        reliable: bool,
        next_beta: f64,
        ess: f64,
    ) -> Result<(), Error> {
        let calls_left = self.st.cfg.max_calls - self.st.calls;
        let room = self.st.cfg.capacity() - self.st.n;
        let next = round + 1;
        let last_slot = self.st.cfg.max_rounds - 1;
        let out_of_budget = calls_left < self.st.cfg.samples_per_round / 4 + 1 || room == 0;
        let out_of_rounds = next >= self.st.cfg.max_rounds;
        self.fit_proposal(next.min(last_slot), round, reliable, next_beta, ess)?;
        if out_of_budget || out_of_rounds {
            self.st.status = if out_of_budget {
                RefineStatus::BudgetExhausted
            } else {
                RefineStatus::MaxRounds
            };
            self.st.final_slot = next.min(last_slot);
            self.st.final_k_hat = None;
            self.st.final_kl = None;
            return Ok(());
        }
        // A short check round once the fit saw enough data, a full round otherwise.
        let size = if next_beta >= 1.0 && ess >= self.st.cfg.target_ess {
            self.st.cfg.check_samples
        } else {
            self.st.cfg.samples_per_round
        };
        let m = size.min(calls_left).min(room);
        if let Some(p) = self.st.proposals[next].as_mut() {
            p.draws = m;
        }
        self.add_proposal_terms(next, 0, self.st.n)
    }

    /// Fits proposal `slot` at `beta` on every sample so far: fresh while tempering, warm from
    /// proposal `prev` at β = 1 when `warm_start` is on, `prev` was fitted at β = 1 and
    /// `prev_ok` (its own draws' k̂ ≤ 0.7). A proposal too thin somewhere the posterior has
    /// mass (k̂ > 0.7) is refitted from scratch: warm-started training kept such a fit for
    /// every later round (2DC seed 4: k̂ 0.7–1.2 and KL 0.037 to the end of the budget).
    fn fit_proposal(
        &mut self,
        slot: usize,
        prev: usize,
        prev_ok: bool,
        beta: f64,
        ess: f64,
    ) -> Result<(), Error> {
        self.fit_weights(beta)?;
        let cfg = self.slot_fit_config(slot);
        let warm = self.st.cfg.warm_start
            && prev_ok
            && beta >= 1.0
            && self.st.proposals[prev].is_some_and(|p| p.beta >= 1.0 && p.train.is_some());
        let (d, n) = (self.st.template.dim, self.st.n);
        let stride = slot_len(&self.st);
        let template = &self.st.template;
        let b = &mut self.buf;
        let (samples, weights) = (&b.theta[..n * d], &b.weights[..n]);
        // A fresh fit (EM + BIC base, affine, couplings from scratch) into the slot.
        let fresh = fit_in_box(
            template,
            &cfg,
            &self.st.lo[..d],
            &self.st.hi[..d],
            &mut b.models[slot * stride..(slot + 1) * stride],
            samples,
            weights,
            FitBuffers::split(template, &cfg, n, b.fit_reals, b.order, b.fit_em)?,
            |_| true,
        )?;
        let (mut shape, mut report) = (fresh.shape, fresh.train);
        if warm {
            let prev_shape = self.st.proposals[prev]
                .map(|p| p.shape)
                .ok_or(Error::InvalidArgument)?;
            if let Some(warm_report) = self.warm_competitor(&cfg, slot, prev, prev_shape, &shape)? {
                (shape, report) = (prev_shape, warm_report);
            }
        }
        self.st.proposals[slot] = Some(Proposal {
            shape,
            draws: 0,
            beta,
            train: Some(report),
            train_ess: if beta >= 1.0 { ess } else { 0.0 },
        });
        Ok(())
    }

    /// Every sample's training weight at `beta`: the deterministic-mixture weights scaled to
    /// mean 1, with those below e^-745 of the largest set to 0.
    fn fit_weights(&mut self, beta: f64) -> Result<(), Error> {
        let n = self.st.n;
        self.log_weights(beta);
        let sums =
            Scaled::of(self.buf.log_w[..n].iter().copied()).ok_or(Error::DegenerateWeights)?;
        let scale = n as f64 / sums.sum;
        for i in 0..n {
            let w = sums.weight(self.buf.log_w[i]) * scale;
            // Weights below e^-745 relative are zero in f64 anyway.
            self.buf.weights[i] = if self.buf.log_w[i] - sums.max < LN_EPS {
                T::ZERO
            } else {
                T::from_f64(w)
            };
        }
        Ok(())
    }

    /// The fit settings of proposal `slot`: the configured ones with seeds of its own.
    fn slot_fit_config(&self, slot: usize) -> FitConfig {
        let mut cfg = self.st.cfg.fit;
        cfg.train.seed =
            cfg.train.seed ^ (self.st.cfg.seed.wrapping_mul(0x9e37_79b9)) ^ slot as u64;
        cfg.em.seed ^= slot as u64;
        cfg.init_seed ^= slot as u64;
        cfg
    }

    /// The previous proposal (`prev`, of `prev_shape`) trained further on all samples in the
    /// spare slot; when its held-out loss (the trainer's split, in θ) is below the fresh fit's
    /// in `slot` (of `fresh_shape`), it replaces that fit and its training report is returned.
    fn warm_competitor(
        &mut self,
        cfg: &FitConfig,
        slot: usize,
        prev: usize,
        prev_shape: Shape,
        fresh_shape: &Shape,
    ) -> Result<Option<TrainReport>, Error> {
        let (d, n) = (self.st.template.dim, self.st.n);
        let stride = slot_len(&self.st);
        let template = &self.st.template;
        let b = &mut self.buf;
        let (samples, weights) = (&b.theta[..n * d], &b.weights[..n]);
        let p = prev_shape.param_len();
        let spare = self.st.cfg.max_rounds * stride;
        b.models
            .copy_within(prev * stride..prev * stride + p, spare);
        let warm_report = train(
            &prev_shape,
            &mut b.models[spare..spare + p],
            samples,
            weights,
            &cfg.train,
            FitBuffers::split(template, cfg, n, b.fit_reals, b.order, b.fit_em)?
                .train
                .prefix(p),
            |_| true,
        )?;
        let mut held_out = |shape: &Shape, at: usize| -> Result<f64, Error> {
            let tb = FitBuffers::split(template, cfg, n, b.fit_reals, b.order, b.fit_em)?.train;
            let params = &b.models[at..at + shape.param_len()];
            held_out_loss(shape, params, samples, weights, &cfg.train, tb)
        };
        let loss_fresh = held_out(fresh_shape, slot * stride)?;
        let loss_warm = held_out(&prev_shape, spare)?;
        // No held-out samples (validation off: both NaN) keeps the warm start, the
        // behaviour before fresh fits competed.
        if loss_warm < loss_fresh || loss_fresh.is_nan() {
            b.models.copy_within(spare..spare + p, slot * stride);
            return Ok(Some(warm_report));
        }
        Ok(None)
    }
}

/// Runs a refinement to the end with a batched likelihood: `log_likelihood(θ, out)` gets up
/// to `batch` samples (`m·D`, all inside the box) and fills one ln L per sample, returning
/// `false` to abort (`Error::Callback`); `on_round` sees every round's report and returns
/// `false` to stop early (`Error::Callback`). Returns the final report; the model is
/// [`Refiner::model`].
pub fn refine<T: Real, L, P>(
    refiner: &mut Refiner<'_, T>,
    batch: usize,
    mut log_likelihood: L,
    mut on_round: P,
) -> Result<RefineReport, Error>
where
    L: FnMut(&[T], &mut [f64]) -> bool,
    P: FnMut(&RoundReport) -> bool,
{
    if batch == 0 {
        return Err(Error::InvalidArgument);
    }
    let d = refiner.st.template.dim;
    while refiner.status() == RefineStatus::Running {
        let m = refiner.ask()?.len() / d;
        let s = refiner.st.round_start;
        // The values go straight into the refiner's ℓ column, then are accepted as by `tell`.
        let buf = &mut refiner.buf;
        // Capped to the round first, so batch · D cannot overflow.
        let batch = batch.min(m.max(1));
        for (rows, out) in buf.theta[s * d..(s + m) * d]
            .chunks(batch * d)
            .zip(buf.log_l[s..s + m].chunks_mut(batch))
        {
            if !log_likelihood(rows, out) {
                return Err(Error::Callback);
            }
        }
        let report = refiner.accept_batch()?;
        if !on_round(&report) {
            return Err(Error::Callback);
        }
    }
    refiner.report()
}

#[cfg(test)]
mod tests {
    use super::Evidence;

    /// Found by the `fit` fuzz target: a round ≈ e⁻³⁶⁸ below the first has a subnormal
    /// variance, whose inverse overflowed and made the combined estimate −∞ ± NaN.
    #[test]
    fn evidence_ignores_a_round_whose_variance_underflows() {
        let mut e = Evidence::default();
        e.add(0.0, 0.1);
        e.add(-368.0, 0.5);
        let (log_z, se) = e.estimate().expect("an estimate");
        assert!(log_z.is_finite() && se.is_finite(), "{log_z} ± {se}");
        assert!(
            libm::fabs(log_z) < 1e-12 && libm::fabs(se - 0.1) < 1e-12,
            "{log_z} ± {se}"
        );
        assert_eq!(e.rounds, 1);
    }

    /// Two comparable rounds combine by inverse variance (checked against the formula by hand:
    /// Ẑ₁ = 1, se 0.1; Ẑ₂ = e^0.1, se 0.2).
    #[test]
    fn evidence_combines_by_inverse_variance() {
        let mut e = Evidence::default();
        e.add(0.0, 0.1);
        e.add(0.1, 0.2);
        let z2 = libm::exp(0.1);
        let (w1, w2) = (1.0 / 0.01, 1.0 / (0.04 * z2 * z2));
        let z = (w1 + w2 * z2) / (w1 + w2);
        let (log_z, se) = e.estimate().expect("an estimate");
        assert!(libm::fabs(log_z - libm::log(z)) < 1e-12);
        assert!(libm::fabs(se - 1.0 / libm::sqrt(w1 + w2) / z) < 1e-12);
    }
}
