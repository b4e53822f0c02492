//! One benchmark run: prior samples → weights → fit (chosen base) → metrics. Shared by the
//! paper example and the accuracy tests (`tests/method.rs` includes this file).
#![allow(dead_code)]

use lwflow::base::em::EmConfig;
use lwflow::rand_core::SeedableRng;
use lwflow::train::{
    fit_in_box, normalise_log_weights, sample_box, BaseChoice, EpochReport, FitBuffers, FitConfig,
    FitMemory, FitReport, NonFinitePolicy, TrainConfig,
};
use lwflow::{Error, Flow, Shape};
use lwflow_tasks::{metrics, Draws, Task, BOX};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::time::Instant;

/// Settings of one run.
#[derive(Clone, Copy, Debug)]
pub struct RunConfig {
    /// Prior samples N.
    pub n_prior: usize,
    /// Conditioner width and couplings.
    pub hidden: usize,
    pub couplings: usize,
    pub base: BaseChoice,
    pub train: TrainConfig,
    pub em: EmConfig,
    /// Seed of the prior draws (the trainer and initialisation get derived seeds).
    pub seed: u64,
    /// Size of each evaluation sample set (exact posterior samples, q samples).
    pub eval_n: usize,
    /// Refuse weight sets whose ESS is below this.
    pub min_ess: f64,
    /// Fit flows that live on the prior box (`Shape::bounded`).
    pub bounded: bool,
}

impl RunConfig {
    /// The paper example's settings for a task (full size).
    pub fn full(task: Task, base: BaseChoice, seed: u64) -> Self {
        let train = TrainConfig {
            max_epochs: 40,
            batch_size: 512,
            patience: 8,
            seed: seed ^ 0x5eed,
            ..TrainConfig::default()
        };
        let _ = task;
        RunConfig {
            n_prior: 400_000,
            hidden: 32,
            couplings: 6,
            base,
            train,
            em: EmConfig {
                seed: seed ^ 0xe3,
                ..EmConfig::default()
            },
            seed,
            eval_n: 20_000,
            min_ess: 100.0,
            bounded: true,
        }
    }
}

/// What one run measured.
#[derive(Clone, Debug)]
pub struct RunResult {
    pub task: Task,
    pub base: BaseChoice,
    pub shape: Shape,
    pub params: Vec<f32>,
    pub report: FitReport,
    pub ess: f64,
    pub kl: f64,
    pub w1: f64,
    pub bridge: f64,
    pub seconds: f64,
    /// Every parameter, every log q of the evaluation sets and every q sample is finite.
    pub all_finite: bool,
}

/// Short label of a base choice.
pub fn base_label(b: BaseChoice) -> String {
    match b {
        BaseChoice::Gaussian => "Gaussian".into(),
        BaseChoice::PaperMixture(k) => format!("GMM({k}) paper init"),
        BaseChoice::Mixture(k) => format!("GMM({k}) EM"),
        BaseChoice::Auto(k) => format!("auto GMM (EM+BIC, K<={k})"),
    }
}

/// Prior draws on the box and their log-likelihoods (f64).
pub fn prior_samples(task: Task, n: usize, seed: u64) -> (Vec<f32>, Vec<f64>) {
    let d = task.dim();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut theta = vec![0.0f32; n * d];
    sample_box(
        &vec![-BOX as f32; d],
        &vec![BOX as f32; d],
        &mut rng,
        &mut theta,
    )
    .expect("prior box");
    let mut row = vec![0.0f64; d];
    let log_l = theta
        .chunks(d)
        .map(|t| {
            row.iter_mut().zip(t).for_each(|(r, &v)| *r = v as f64);
            task.log_likelihood(&row)
        })
        .collect();
    (theta, log_l)
}

/// Exact posterior samples (f64, `n·D`).
pub fn posterior_samples(task: Task, n: usize, seed: u64) -> Vec<f64> {
    let d = task.dim();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut draws = Draws::new(&mut rng);
    let mut out = vec![0.0; n * d];
    for row in out.chunks_mut(d) {
        task.sample_posterior(&mut draws, row);
    }
    out
}

/// As many draws of q as there are exact samples in `post` (`n·D`), with their log q, and the
/// average marginal W1 between the two sets.
pub struct QSamples {
    pub theta32: Vec<f32>,
    pub theta: Vec<f64>,
    pub log_q: Vec<f32>,
    pub w1: f64,
}

/// Draws [`QSamples`] from `flow` with generator seed `seed`.
pub fn q_samples(
    flow: &Flow<'_, f32>,
    post: &[f64],
    seed: u64,
    ws: &mut [f32],
) -> Result<QSamples, Error> {
    let d = flow.shape().dim;
    let n = post.len() / d;
    let mut theta32 = vec![0.0f32; n * d];
    let mut log_q = vec![0.0f32; n];
    flow.sample(
        &mut Xoshiro256PlusPlus::seed_from_u64(seed),
        &mut theta32,
        &mut log_q,
        ws,
    )?;
    let theta: Vec<f64> = theta32.iter().map(|&v| v as f64).collect();
    let (mut sa, mut sb) = (vec![(0.0, 0.0); n], vec![(0.0, 0.0); n]);
    let w1 = metrics::average_marginal_w1(&theta, None, post, None, d, &mut sa, &mut sb)?;
    Ok(QSamples {
        theta32,
        theta,
        log_q,
        w1,
    })
}

/// Fits and evaluates; `on_epoch` sees every epoch.
pub fn run(
    task: Task,
    cfg: &RunConfig,
    mut on_epoch: impl FnMut(&EpochReport) -> bool,
) -> Result<RunResult, Error> {
    let start = Instant::now();
    let d = task.dim();
    let (theta, log_l) = prior_samples(task, cfg.n_prior, cfg.seed);
    let mut weights = vec![0.0f32; cfg.n_prior];
    let stats = normalise_log_weights(&log_l, NonFinitePolicy::Error, cfg.min_ess, &mut weights)?;

    let template = Shape::new(d, cfg.hidden, cfg.couplings).with_bounded(cfg.bounded);
    let fit_cfg = FitConfig {
        base: cfg.base,
        em: cfg.em,
        train: cfg.train,
        init_seed: cfg.seed ^ 0x1417,
    };
    let n = cfg.n_prior;
    let mut params = vec![0.0f32; cfg.base.max_shape(&template).param_len()];
    let need = FitMemory::new(&template, &fit_cfg, n);
    let (mut reals, mut order, mut em) = (
        vec![0.0f32; need.reals],
        vec![0u32; need.order],
        vec![0.0; need.em],
    );
    let buffers = FitBuffers::split(&template, &fit_cfg, n, &mut reals, &mut order, &mut em)?;
    let report = fit_in_box(
        &template,
        &fit_cfg,
        &vec![-BOX; d],
        &vec![BOX; d],
        &mut params,
        &theta,
        &weights,
        buffers,
        &mut on_epoch,
    )?;
    let shape = report.shape;
    params.truncate(shape.param_len());
    let flow = Flow::new(shape, &params)?;
    let mut eval_ws = vec![0.0f32; shape.eval_workspace_len()];

    // KL(p‖q) on exact posterior samples.
    let n = cfg.eval_n;
    let post = posterior_samples(task, n, cfg.seed ^ 0xbeef);
    let post32: Vec<f32> = post.iter().map(|&v| v as f32).collect();
    let mut log_q = vec![0.0f32; n];
    flow.log_prob(&post32, &mut log_q, &mut eval_ws)?;
    let log_p: Vec<f64> = post.chunks(d).map(|t| task.log_posterior(t)).collect();
    let log_q64: Vec<f64> = log_q.iter().map(|&v| v as f64).collect();
    let kl = metrics::kl_from_posterior_samples(&log_p, &log_q64)?;

    // q samples: W1 against the exact samples, and bridge mass.
    let q = q_samples(&flow, &post, cfg.seed ^ 0xca11, &mut eval_ws)?;
    let (qs64, w1) = (&q.theta, q.w1);
    let log_p_q: Vec<f64> = qs64.chunks(d).map(|t| task.log_posterior(t)).collect();
    let bridge = metrics::bridge_mass(&log_p_q, task.log_peak())?;
    let (qs, q_log_q) = (&q.theta32, &q.log_q);

    let all_finite = params.iter().all(|v| v.is_finite())
        && log_q.iter().all(|v| v.is_finite())
        && q_log_q.iter().all(|v| v.is_finite())
        && qs.iter().all(|v| v.is_finite());
    Ok(RunResult {
        task,
        base: cfg.base,
        shape,
        params,
        report,
        ess: stats.ess,
        kl,
        w1,
        bridge,
        seconds: start.elapsed().as_secs_f64(),
        all_finite,
    })
}
