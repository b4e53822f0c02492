//! The firmware's computation, free of any hardware: prior draws → 2D2 log-likelihoods →
//! normalised weights → `lwflow::train::fit` (EM + BIC base, then training) → KL(p‖q) on exact
//! posterior samples, mode shares and bridge mass of q's samples.
//!
//! Every buffer is a field of [`Buffers`], which the firmware keeps in one `static` (so the
//! linker counts it in `.bss`) and the host test keeps in a `Box`; nothing here allocates.
//! The host test (`tests/cortex_m.rs`) compiles this same file and checks that the firmware
//! prints the same figures as the x86-64 build.

use lwflow::base::em::{scratch_len, EmConfig};
use lwflow::rand_core::SeedableRng;
use lwflow::train::{
    fit, normalise_log_weights, sample_box, BaseChoice, FitBuffers, FitConfig, NonFinitePolicy,
    Schedule, StopReason, TrainBuffers, TrainConfig,
};
use lwflow::{Adam, BaseKind, Error, Flow, Shape};
use lwflow_tasks::{metrics::BRIDGE_THRESHOLD, Draws, Task, BOX};
use rand_xoshiro::Xoshiro256PlusPlus;

/// The benchmark task.
pub const TASK: Task = Task::T2D2;
/// Dimension of θ.
pub const D: usize = 2;
/// Largest base the BIC search may choose (`BaseChoice::Auto(K_MAX)`).
pub const K_MAX: usize = 3;
/// Prior samples the buffers hold (a run may use fewer). Build-time override:
/// `LWFLOW_FW_N=2048 cargo build ...` (likewise `LWFLOW_FW_H`, `LWFLOW_FW_L` below), so the
/// flash and RAM of other sizes can be measured without editing this file.
pub const N_MAX: usize = build_setting(option_env!("LWFLOW_FW_N"), 6144);
/// Conditioner width and couplings the buffers hold (a run may use a smaller shape).
pub const HIDDEN_MAX: usize = build_setting(option_env!("LWFLOW_FW_H"), 16);
/// See [`HIDDEN_MAX`].
pub const COUPLINGS_MAX: usize = build_setting(option_env!("LWFLOW_FW_L"), 4);

/// A positive decimal build-time setting, or `default` when unset; anything else stops the
/// build (a compile-time error, never a run-time panic).
const fn build_setting(value: Option<&str>, default: usize) -> usize {
    let Some(text) = value else {
        return default;
    };
    let digits = text.as_bytes();
    assert!(
        !digits.is_empty() && digits.len() <= 6,
        "LWFLOW_FW_* must be 1 to 6 digits"
    );
    let mut n = 0;
    let mut i = 0;
    while i < digits.len() {
        assert!(digits[i].is_ascii_digit(), "LWFLOW_FW_* must be decimal");
        n = n * 10 + (digits[i] - b'0') as usize;
        i += 1;
    }
    assert!(n > 0, "LWFLOW_FW_* must be positive");
    n
}

/// Training minibatch.
pub const BATCH: usize = 256;
/// Samples per evaluation chunk (exact posterior samples, q samples); the chunks live in
/// training buffers, so it is at most [`BATCH`].
pub const CHUNK: usize = BATCH;

/// The largest model the buffers hold.
pub const MAX_SHAPE: Shape =
    Shape::new(D, HIDDEN_MAX, COUPLINGS_MAX).with_base(BaseKind::Mixture(K_MAX));
const P: usize = MAX_SHAPE.param_len();
// The evaluation chunks live in the training buffers (see `run`).
const _: () = assert!(
    N_MAX >= CHUNK * D,
    "N_MAX must hold one evaluation chunk of CHUNK·D values"
);
const WS: usize = MAX_SHAPE.workspace_len();
const EM_SCRATCH: usize = scratch_len(K_MAX, D);

/// Every buffer of a run. All-zero bytes are a valid value, so it can live in `.bss`.
pub struct Buffers {
    /// Prior draws θᵢ (`N·D`); after the fit, reused for q's samples.
    pub theta: [f32; N_MAX * D],
    /// Normalised weights wᵢ (mean 1).
    pub weights: [f32; N_MAX],
    /// log L(θᵢ) in f64, as `normalise_log_weights` takes them.
    pub log_likelihood: [f64; N_MAX],
    /// Trainer's sample order.
    pub order: [u32; N_MAX],
    /// Model parameters (the fitted model is a prefix).
    pub params: [f32; P],
    /// Gradient.
    pub grad: [f32; P],
    /// Best parameters (early stopping).
    pub best: [f32; P],
    /// Adam moments.
    pub adam_state: [f32; 2 * P],
    /// Flow workspace (training path; also enough for evaluation).
    pub workspace: [f32; WS],
    /// Gathered minibatch samples.
    pub batch_theta: [f32; BATCH * D],
    /// Gathered minibatch weights.
    pub batch_weights: [f32; BATCH],
    /// Per-sample validation outputs.
    pub batch_out: [f32; BATCH],
    /// EM outputs and scratch.
    pub em_weights: [f64; K_MAX],
    /// See [`Buffers::em_weights`].
    pub em_means: [f64; K_MAX * D],
    /// See [`Buffers::em_weights`].
    pub em_sds: [f64; K_MAX * D],
    /// See [`Buffers::em_weights`].
    pub em_scratch: [f64; EM_SCRATCH],
}

impl Buffers {
    /// All zeros (for a `static`).
    pub const ZERO: Buffers = Buffers {
        theta: [0.0; N_MAX * D],
        weights: [0.0; N_MAX],
        log_likelihood: [0.0; N_MAX],
        order: [0; N_MAX],
        params: [0.0; P],
        grad: [0.0; P],
        best: [0.0; P],
        adam_state: [0.0; 2 * P],
        workspace: [0.0; WS],
        batch_theta: [0.0; BATCH * D],
        batch_weights: [0.0; BATCH],
        batch_out: [0.0; BATCH],
        em_weights: [0.0; K_MAX],
        em_means: [0.0; K_MAX * D],
        em_sds: [0.0; K_MAX * D],
        em_scratch: [0.0; EM_SCRATCH],
    };
}

/// Settings of one run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RunConfig {
    /// Prior samples, ≤ [`N_MAX`].
    pub n_prior: usize,
    /// Conditioner width H ≤ [`HIDDEN_MAX`].
    pub hidden: usize,
    /// Coupling layers L ≤ [`COUPLINGS_MAX`].
    pub couplings: usize,
    /// Base: `Auto(K_MAX)` (EM + BIC, the firmware's default) or `Gaussian` (the flow alone must
    /// split one Gaussian into the two modes).
    pub base: BaseChoice,
    /// Exact posterior samples for KL, and q samples for the mode shares.
    pub n_eval: usize,
    /// Seed of the prior draws; every other seed is derived from it.
    pub seed: u64,
    /// EM settings (its seed is derived from `seed`).
    pub em: EmConfig,
    /// Trainer settings (its seed is derived from `seed`).
    pub train: TrainConfig,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            n_prior: N_MAX,
            hidden: HIDDEN_MAX,
            couplings: COUPLINGS_MAX,
            base: BaseChoice::Auto(K_MAX),
            n_eval: 20_000,
            seed: 1,
            // Tighter than the host defaults: EM runs in f64, which the M4F's single-precision
            // FPU leaves to software; with the defaults it took 85 % of the fit's instructions
            // and the fitted mixture was the same.
            em: EmConfig {
                max_iter: 20,
                tol: 1e-4,
                min_weight: 1e-4,
                ..EmConfig::default()
            },
            train: TrainConfig {
                max_epochs: 40,
                batch_size: BATCH,
                adam: Adam {
                    lr: 2e-3,
                    ..Adam::default()
                },
                schedule: Schedule::Cosine { min_factor: 0.05 },
                patience: 8,
                validation_fraction: 0.2,
                clip_norm: 10.0,
                min_weight: 1e-5,
                seed: 0,
            },
        }
    }
}

/// Emulated-instruction (or any monotonic) clock readings of the phases.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Timings {
    /// Prior draws and their log-likelihoods.
    pub prior: u64,
    /// `normalise_log_weights`.
    pub weights: u64,
    /// `fit` (EM + BIC, training).
    pub fit: u64,
    /// From the start of `fit` to the end of its first epoch (EM + BIC, initialisation,
    /// initial validation, one epoch).
    pub fit_first_epoch: u64,
    /// All `Flow::log_prob` calls on the exact posterior samples (`n_eval` samples).
    pub log_prob: u64,
    /// All `Flow::sample` calls (`n_eval` samples).
    pub sample: u64,
    /// The whole evaluation (posterior draws, log p, log q in f32 and f64, q samples).
    pub evaluation: u64,
    /// One `Flow::loss_and_gradient` call on [`BATCH`] weighted prior samples (a training
    /// step without the optimiser).
    pub gradient: u64,
    /// One `Flow::log_prob` call on a single sample (a full tile is computed).
    pub log_prob_one: u64,
    /// One `Flow::sample` call for a single sample.
    pub sample_one: u64,
}

/// What a run measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Report {
    /// The fitted model's shape.
    pub shape: Shape,
    /// Prior samples used.
    pub n_prior: usize,
    /// Exact posterior samples (KL) and q samples (shares) evaluated.
    pub n_eval: usize,
    /// Kish ESS of the weights.
    pub ess: f64,
    /// Components chosen by BIC.
    pub components: usize,
    /// EM iterations of the winning restart at the chosen K.
    pub em_iterations: usize,
    /// EM's fitted component weights (first `components` entries).
    pub em_weights: [f64; K_MAX],
    /// Epochs run, epoch restored, optimiser steps, skipped steps, why it stopped.
    pub epochs: usize,
    /// See [`Report::epochs`].
    pub best_epoch: usize,
    /// See [`Report::epochs`].
    pub steps: u64,
    /// See [`Report::epochs`].
    pub skipped_steps: u64,
    /// See [`Report::epochs`].
    pub stop: StopReason,
    /// Validation loss before and after training.
    pub initial_val_loss: f64,
    /// See [`Report::initial_val_loss`].
    pub best_val_loss: f64,
    /// KL(p‖q) = mean over exact posterior samples of log p − log q.
    pub kl: f64,
    /// Share of q's samples with θ₁ < 0 (the left mode at θ₁ = −2.5).
    pub share_left: f64,
    /// Share of q's samples with p(θ) < 10⁻³ · max p.
    pub bridge_mass: f64,
    /// Sum of q's sample coordinates.
    pub sample_sum: f64,
    /// FNV-1a hash of the fitted parameters' bits: equal on two machines only if the fit was
    /// bit-identical.
    pub params_hash: u64,
    /// FNV-1a hash of every q sample's bits.
    pub samples_hash: u64,
    /// Every parameter, log q and sample was finite.
    pub all_finite: bool,
    /// Clock readings.
    pub timings: Timings,
}

impl Report {
    /// Share of q's samples with θ₁ ≥ 0 (the right mode at θ₁ = +2.5).
    pub fn share_right(&self) -> f64 {
        1.0 - self.share_left
    }
}

/// Pass/fail thresholds of the firmware and of the test.
pub const KL_MAX: f64 = 0.05;
/// Each mode must hold a share of q's samples in `[SHARE_MIN, 1 − SHARE_MIN]`.
pub const SHARE_MIN: f64 = 0.4;

/// `true` when the fit solved 2D2: finite, KL below [`KL_MAX`], both modes found.
pub fn solved(r: &Report) -> bool {
    r.all_finite && r.kl < KL_MAX && r.share_left >= SHARE_MIN && r.share_right() >= SHARE_MIN
}

/// Runs the whole pipeline. `clock` returns a monotonic count (emulated instructions on the
/// firmware).
pub fn run(
    buf: &mut Buffers,
    cfg: &RunConfig,
    clock: &mut dyn FnMut() -> u64,
) -> Result<Report, Error> {
    if cfg.n_prior == 0
        || cfg.n_prior > N_MAX
        || cfg.hidden == 0
        || cfg.hidden > HIDDEN_MAX
        || cfg.couplings == 0
        || cfg.couplings > COUPLINGS_MAX
        || cfg.n_eval == 0
        || cfg.base.max_components() > K_MAX
    {
        return Err(Error::InvalidArgument);
    }
    let mut timings = Timings::default();
    let n = cfg.n_prior;

    // Prior draws on the box and their log-likelihoods.
    let t0 = clock();
    let theta = &mut buf.theta[..n * D];
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed);
    sample_box(&[-BOX as f32; D], &[BOX as f32; D], &mut rng, theta)?;
    let log_l = &mut buf.log_likelihood[..n];
    for (l, t) in log_l.iter_mut().zip(theta.chunks_exact(D)) {
        *l = TASK.log_likelihood(&[f64::from(t[0]), f64::from(t[1])]);
    }
    let t1 = clock();
    let weights = &mut buf.weights[..n];
    let stats = normalise_log_weights(log_l, NonFinitePolicy::Error, 50.0, weights)?;
    let t2 = clock();
    timings.prior = t1.wrapping_sub(t0);
    timings.weights = t2.wrapping_sub(t1);

    // The fit: EM + BIC base, identity flow, training.
    let template = Shape::new(D, cfg.hidden, cfg.couplings);
    let fit_cfg = FitConfig {
        base: cfg.base,
        em: EmConfig {
            seed: cfg.seed ^ 0xe3,
            ..cfg.em
        },
        train: TrainConfig {
            seed: cfg.seed ^ 0x5eed,
            ..cfg.train
        },
        init_seed: cfg.seed ^ 0x1417,
    };
    let mut first_epoch_at = t2;
    let buffers = FitBuffers {
        train: TrainBuffers {
            grad: &mut buf.grad,
            adam_state: &mut buf.adam_state,
            best: &mut buf.best,
            workspace: &mut buf.workspace,
            batch_theta: &mut buf.batch_theta,
            batch_weights: &mut buf.batch_weights,
            batch_out: &mut buf.batch_out,
            order: &mut buf.order[..n],
        },
        em_weights: &mut buf.em_weights,
        em_means: &mut buf.em_means,
        em_sds: &mut buf.em_sds,
        em_scratch: &mut buf.em_scratch,
        // No outer maps on the firmware's template.
        outer_samples: &mut [],
        cov: &mut [],
    };
    let fitted = fit(
        &template,
        &fit_cfg,
        &mut buf.params,
        theta,
        weights,
        buffers,
        |e| {
            if e.epoch == 1 {
                first_epoch_at = clock();
            }
            true
        },
    )?;
    let t3 = clock();
    timings.fit = t3.wrapping_sub(t2);
    timings.fit_first_epoch = first_epoch_at.wrapping_sub(t2);
    let shape = fitted.shape;
    let params = &buf.params[..shape.param_len()];
    let flow = Flow::new(shape, params)?;
    let ws = &mut buf.workspace[..];
    let mut all_finite = params.iter().all(|v| v.is_finite());
    let m = BATCH.min(n);
    let t = clock();
    let loss = flow.loss_and_gradient(
        &buf.theta[..m * D],
        &buf.weights[..m],
        &mut buf.grad[..shape.param_len()],
        ws,
    )?;
    timings.gradient = clock().wrapping_sub(t);
    all_finite &= loss.is_finite();
    let eval_start = clock();

    // KL(p‖q) on exact posterior samples, chunk by chunk. The training buffers are free now:
    // the chunks live in them.
    let post64 = &mut buf.log_likelihood[..CHUNK * D];
    let post32 = &mut buf.batch_theta[..CHUNK * D];
    let log_q = &mut buf.batch_out[..CHUNK];
    let mut draws_rng = Xoshiro256PlusPlus::seed_from_u64(posterior_seed(cfg));
    let mut draws = Draws::new(&mut draws_rng);
    let mut kl_sum = 0.0;
    let mut left = cfg.n_eval;
    while left > 0 {
        let m = left.min(CHUNK);
        left -= m;
        draw_posterior(&mut draws, &mut post64[..m * D], post32);
        let t = clock();
        flow.log_prob(&post32[..m * D], &mut log_q[..m], ws)?;
        timings.log_prob += clock().wrapping_sub(t);
        for (row, &lq) in post64[..m * D].chunks_exact(D).zip(&log_q[..m]) {
            all_finite &= lq.is_finite();
            kl_sum += TASK.log_posterior(row) - f64::from(lq);
        }
    }
    let kl = kl_sum / cfg.n_eval as f64;

    // q's samples: mode shares and bridge mass.
    let mut q_rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed ^ 0xca11);
    let bridge_level = TASK.log_peak() + libm::log(BRIDGE_THRESHOLD);
    let (mut n_left, mut n_bridge, mut sample_sum) = (0usize, 0usize, 0.0f64);
    let mut samples_hash = Fnv::new();
    let mut left = cfg.n_eval;
    let q_theta = &mut buf.theta[..CHUNK * D];
    while left > 0 {
        let m = left.min(CHUNK);
        left -= m;
        let t = clock();
        flow.sample(&mut q_rng, &mut q_theta[..m * D], &mut log_q[..m], ws)?;
        timings.sample += clock().wrapping_sub(t);
        for (row, &lq) in q_theta[..m * D].chunks_exact(D).zip(&log_q[..m]) {
            all_finite &= lq.is_finite() && row.iter().all(|v| v.is_finite());
            let p = [f64::from(row[0]), f64::from(row[1])];
            n_left += usize::from(p[0] < 0.0);
            n_bridge += usize::from(TASK.log_posterior(&p) < bridge_level);
            sample_sum += p[0] + p[1];
            samples_hash.add(row);
        }
    }

    timings.evaluation = clock().wrapping_sub(eval_start);

    // Latency of single-sample calls (one tile of lanes is computed either way).
    let one = [-2.5f32, 0.0];
    let t = clock();
    flow.log_prob(&one, &mut log_q[..1], ws)?;
    timings.log_prob_one = clock().wrapping_sub(t);
    let t = clock();
    flow.sample(&mut q_rng, &mut q_theta[..D], &mut log_q[..1], ws)?;
    timings.sample_one = clock().wrapping_sub(t);

    let mut em_weights = [0.0; K_MAX];
    let components = fitted.mixture.map_or(0, |m| m.components.min(K_MAX));
    em_weights[..components].copy_from_slice(&buf.em_weights[..components]);
    let tr = fitted.train;
    Ok(Report {
        shape,
        n_prior: n,
        n_eval: cfg.n_eval,
        ess: stats.ess,
        components,
        em_weights,
        em_iterations: fitted.mixture.map_or(0, |m| m.iterations),
        epochs: tr.epochs,
        best_epoch: tr.best_epoch,
        steps: tr.steps,
        skipped_steps: tr.skipped_steps,
        stop: tr.stop,
        initial_val_loss: tr.initial_val_loss,
        best_val_loss: tr.best_val_loss,
        kl,
        share_left: n_left as f64 / cfg.n_eval as f64,
        bridge_mass: n_bridge as f64 / cfg.n_eval as f64,
        sample_sum,
        params_hash: Fnv::new().add(params).0,
        samples_hash: samples_hash.0,
        all_finite,
        timings,
    })
}

fn posterior_seed(cfg: &RunConfig) -> u64 {
    cfg.seed ^ 0xbeef
}

/// Fills `post64` (`m·D`) with exact posterior samples and the first `m·D` entries of
/// `post32` with the same points rounded to f32.
fn draw_posterior(draws: &mut Draws<'_>, post64: &mut [f64], post32: &mut [f32]) {
    for (row, row32) in post64.chunks_exact_mut(D).zip(post32.chunks_exact_mut(D)) {
        TASK.sample_posterior(draws, row);
        for (x32, &x) in row32.iter_mut().zip(row.iter()) {
            *x32 = x as f32;
        }
    }
}

/// 64-bit FNV-1a over the bit patterns of f32 values.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn add(&mut self, values: &[f32]) -> &mut Self {
        for v in values {
            for byte in v.to_bits().to_le_bytes() {
                self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        self
    }
}

/// How far the f32 kernels (libm, or micromath with `fast-math`) are from the same model
/// evaluated in f64 with libm.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct KernelError {
    /// Exact posterior samples compared (the first ones of the KL set; f64 is software
    /// floating point on the M4F, ≈ 30× the f32 cost).
    pub n: usize,
    /// Largest |log q_f32 − log q_f64|.
    pub log_q_max: f64,
    /// Mean |log q_f32 − log q_f64|.
    pub log_q_mean: f64,
    /// Mean (log q_f64 − log q_f32) = KL estimated with the f32 kernel − KL with the f64 one.
    pub kl_shift: f64,
}

/// Exact posterior samples on which the f32 kernel is compared with f64.
pub const N_REFERENCE: usize = 2048;

/// Compares the f32 kernel with the same model evaluated in f64 (libm) on the first
/// [`N_REFERENCE`] exact posterior samples of the KL set. Call after [`run`], with the same
/// buffers and config: the fitted model is still in `buf.params`. f64 is software floating
/// point on the M4F (≈ 30× the f32 cost), hence the subset.
pub fn kernel_error(
    buf: &mut Buffers,
    report: &Report,
    cfg: &RunConfig,
) -> Result<KernelError, Error> {
    let shape = report.shape;
    let params = &buf.params[..shape.param_len()];
    let flow = Flow::new(shape, params)?;
    // f64 copies of the points and the model, in the (now free) log-likelihood buffer.
    let needed = 2 * CHUNK * D + CHUNK + shape.param_len() + shape.eval_workspace_len();
    let too_small = Error::BufferTooSmall {
        needed,
        actual: N_MAX,
    };
    let arena = buf.log_likelihood.get_mut(..needed).ok_or(too_small)?;
    let (post64, rest) = arena.split_at_mut(CHUNK * D);
    let (post32_64, rest) = rest.split_at_mut(CHUNK * D);
    let (log_q64, rest) = rest.split_at_mut(CHUNK);
    let (params64, ws64) = rest.split_at_mut(shape.param_len());
    for (p64, &p) in params64.iter_mut().zip(params) {
        *p64 = f64::from(p);
    }
    let flow64 = Flow::new(shape, &*params64)?;
    let post32 = &mut buf.batch_theta[..CHUNK * D];
    let log_q = &mut buf.batch_out[..CHUNK];
    let mut draws_rng = Xoshiro256PlusPlus::seed_from_u64(posterior_seed(cfg));
    let mut draws = Draws::new(&mut draws_rng);
    let mut e = KernelError::default();
    while e.n < N_REFERENCE.min(cfg.n_eval) {
        let m = CHUNK.min(N_REFERENCE.min(cfg.n_eval) - e.n);
        draw_posterior(&mut draws, &mut post64[..m * D], post32);
        for (x64, &x) in post32_64.iter_mut().zip(post32[..m * D].iter()) {
            *x64 = f64::from(x);
        }
        flow.log_prob(&post32[..m * D], &mut log_q[..m], &mut buf.workspace)?;
        flow64.log_prob(&post32_64[..m * D], &mut log_q64[..m], ws64)?;
        for (&lq, &lq64) in log_q[..m].iter().zip(&log_q64[..m]) {
            let diff = lq64 - f64::from(lq);
            e.kl_shift += diff;
            e.log_q_mean += libm::fabs(diff);
            e.log_q_max = e.log_q_max.max(libm::fabs(diff));
        }
        e.n += m;
    }
    e.kl_shift /= e.n.max(1) as f64;
    e.log_q_mean /= e.n.max(1) as f64;
    Ok(e)
}

/// Largest errors of the core's f32 `exp`, `ln` and `tanh` (micromath with `fast-math`,
/// libm without) against libm's, on 4,001-point grids.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MathError {
    /// Largest relative error of eˣ, x ∈ [−20, 5].
    pub exp_rel: f64,
    /// Largest absolute error of ln x, x ∈ [1, 16]: where the kernels use it (log-sum-exp
    /// of at most K terms, each ≤ 1, the largest = 1).
    pub ln_abs: f64,
    /// Largest absolute error of ln x, x ∈ [10⁻⁶, 1) log-spaced (not used by the kernels).
    pub ln_abs_below_one: f64,
    /// Largest absolute error of tanh x, x ∈ [−10, 10].
    pub tanh_abs: f64,
}

/// Measures [`MathError`].
pub fn math_error() -> MathError {
    use lwflow::Real;
    const STEPS: u32 = 4000;
    let mut e = MathError::default();
    let abs_err = |a: f32, b: f32| libm::fabs(f64::from(a) - f64::from(b));
    for i in 0..=STEPS {
        let t = f64::from(i) / f64::from(STEPS);
        let x = (-20.0 + 25.0 * t) as f32;
        let rel = abs_err(<f32 as Real>::exp(x), libm::expf(x)) / f64::from(libm::expf(x));
        e.exp_rel = e.exp_rel.max(rel);
        let x = (1.0 + 15.0 * t) as f32;
        e.ln_abs = e.ln_abs.max(abs_err(<f32 as Real>::ln(x), libm::logf(x)));
        let x = libm::pow(10.0, -6.0 * (1.0 - t)) as f32;
        if x < 1.0 {
            let err = abs_err(<f32 as Real>::ln(x), libm::logf(x));
            e.ln_abs_below_one = e.ln_abs_below_one.max(err);
        }
        let x = (-10.0 + 20.0 * t) as f32;
        e.tanh_abs = e
            .tanh_abs
            .max(abs_err(<f32 as Real>::tanh(x), libm::tanhf(x)));
    }
    e
}
