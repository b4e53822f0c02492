//! One refinement run on a benchmark task and its scores against the truth. Shared by the
//! refine example and the CI accuracy test (`tests/refine.rs` includes this file); both also
//! include the paper example's `suite.rs` as `suite` (exact samples, q samples and W1).
#![allow(dead_code)]

use lwflow::rand_core::SeedableRng;
use lwflow::train::{
    refine, RefineBuffers, RefineConfig, RefineMemory, RefineStatus, Refiner, RoundReport,
};
use lwflow::{Error, Flow, Shape};
use lwflow_tasks::{metrics, Draws, Task, BOX};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::fmt::Write;
use std::time::{Duration, Instant};

/// Exact posterior samples per metric set (KL, W1, tail mass), as in the paper suite.
pub const EVAL_N: usize = 20_000;
/// Draws of q checked against the prior box (10⁶).
pub const SUPPORT_DRAWS: usize = 1_000_000;
/// Exact posterior samples behind each task's tail threshold (10⁶, as the suite defines it).
pub const TAIL_N: usize = 1_000_000;

/// The flow every refinement run fits: the paper example's widths.
pub fn template(task: Task) -> Shape {
    Shape::new(task.dim(), 32, 6)
}

/// The settings the example uses for a task (the core's defaults for its dimension).
pub fn config(task: Task, seed: u64) -> RefineConfig {
    RefineConfig {
        seed,
        ..RefineConfig::for_dim(task.dim())
    }
}

/// What one run measured.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    pub task: Task,
    pub seed: u64,
    pub status: RefineStatus,
    pub rounds: Vec<RoundReport>,
    pub calls: usize,
    pub kl: f64,
    pub kl_se: f64,
    pub w1: f64,
    pub w1_floor: f64,
    pub tail_mass: f64,
    pub mode_shares: Vec<f64>,
    pub mode_weights: Vec<f64>,
    pub log_z: f64,
    pub log_z_se: f64,
    pub log_z_true: f64,
    pub k_hat: f64,
    /// KL(p‖q) the loop estimated from q's own draws (NaN when not measured).
    pub kl_hat: f64,
    pub ess: f64,
    pub components: usize,
    /// Seconds outside the likelihood (the loop's own work).
    pub seconds: f64,
    /// Draws of q outside the prior box, of `SUPPORT_DRAWS`.
    pub outside_box: usize,
}

/// W1 floors of `docs/TASKS.md`: two exact sets of 20,000 (seeds 1 and 2).
pub fn w1_floor(task: Task) -> f64 {
    match task.name() {
        "2D1" => 0.011,
        "2D2" => 0.015,
        "2D3" => 0.018,
        "2DB" => 0.023,
        "3D2" => 0.013,
        "3D4" => 0.014,
        "2DC" => 0.0072,
        "5D2" => 0.0087,
        "8D3" => 0.0115,
        _ => 0.0134,
    }
}

/// The task's tail threshold: the 0.1 % quantile of log p over `TAIL_N` exact samples.
pub fn tail_threshold(task: Task) -> f64 {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0x7a11);
    let mut draws = Draws::new(&mut rng);
    let mut scratch = vec![0.0; TAIL_N];
    task.tail_threshold(&mut draws, &mut scratch)
}

/// Refines on `task` with `seed` and scores the result.
pub fn refine_task(task: Task, seed: u64, verbose: bool) -> Result<RunOutcome, Error> {
    refine_with(task, &config(task, seed), &template(task), verbose)
}

/// Refines with explicit settings and scores the result.
pub fn refine_with(
    task: Task,
    cfg: &RefineConfig,
    template: &Shape,
    verbose: bool,
) -> Result<RunOutcome, Error> {
    let d = task.dim();
    let need = RefineMemory::new(template, cfg);
    let mut reals = vec![0.0f32; need.reals];
    let mut f64s = vec![0.0f64; need.f64s];
    let mut order = vec![0u32; need.order];
    let buf = RefineBuffers::split(template, cfg, &mut reals, &mut f64s, &mut order)?;
    let (lo, hi) = (vec![-BOX; d], vec![BOX; d]);
    let mut refiner = Refiner::new(template, &lo, &hi, cfg, buf)?;
    let mut in_likelihood = Duration::ZERO;
    let mut rounds = Vec::new();
    let start = Instant::now();
    let mut row = vec![0.0f64; d];
    let report = refine(
        &mut refiner,
        4096,
        |theta: &[f32], out: &mut [f64]| {
            let t0 = Instant::now();
            for (o, t) in out.iter_mut().zip(theta.chunks(d)) {
                row.iter_mut().zip(t).for_each(|(r, &v)| *r = v as f64);
                *o = task.log_likelihood(&row);
            }
            in_likelihood += t0.elapsed();
            true
        },
        |r: &RoundReport| {
            if verbose {
                println!(
                    "    {} seed {}: round {} calls {} β {:.3}→{:.3} K {} epochs {} ({}{}) ESS {:.0} k̂ {:.2} KL̂ {:.4} ln Z {:.4} ± {:.4} own {:.4}",
                    task.name(), cfg.seed, r.round, r.calls, r.beta, r.next_beta, r.components,
                    r.epochs, r.best_epoch, if r.still_improving { ", still improving" } else { "" },
                    r.ess, r.k_hat, r.kl, r.log_z, r.log_z_se, r.own_log_z
                );
            }
            rounds.push(*r);
            true
        },
    )?;
    let seconds = (start.elapsed() - in_likelihood).as_secs_f64();
    let (shape, params) = refiner.model()?;
    let params = params.to_vec();
    let flow = Flow::new(shape, &params)?;
    let mut ws = vec![0.0f32; shape.eval_workspace_len()];

    // KL(p‖q) on exact posterior samples, with its standard error.
    let n = EVAL_N;
    let post = crate::suite::posterior_samples(task, n, cfg.seed ^ 0xbeef);
    let post32: Vec<f32> = post.iter().map(|&v| v as f32).collect();
    let mut log_q = vec![0.0f32; n];
    flow.log_prob(&post32, &mut log_q, &mut ws)?;
    let diffs: Vec<f64> = post
        .chunks(d)
        .zip(&log_q)
        .map(|(t, &q)| task.log_posterior(t) - q as f64)
        .collect();
    let kl = diffs.iter().sum::<f64>() / n as f64;
    let var = diffs.iter().map(|v| (v - kl) * (v - kl)).sum::<f64>() / (n - 1) as f64;
    let kl_se = (var / n as f64).sqrt();

    // q samples: W1 against the exact set, tail mass, mode shares, box leaks.
    let q = crate::suite::q_samples(&flow, &post, cfg.seed ^ 0xca11, &mut ws)?;
    let (qs64, w1) = (&q.theta, q.w1);
    let log_p_q: Vec<f64> = qs64.chunks(d).map(|t| task.log_posterior(t)).collect();
    let tail_mass = metrics::tail_mass(&log_p_q, tail_threshold(task))?;
    let k = task.modes();
    let mut means = vec![0.0; k * d];
    for (j, m) in means.chunks_mut(d).enumerate() {
        task.mode_mean(j, m);
    }
    let mut mode_shares = vec![0.0; k];
    metrics::mode_shares(qs64, d, &means, &mut mode_shares)?;
    // Support: 10⁶ draws of q, in chunks, none may leave the prior box.
    let mut outside_box = 0;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed ^ 0x0b0c);
    let (mut chunk, mut chunk_lq) = (vec![0.0f32; 50_000 * d], vec![0.0f32; 50_000]);
    for _ in 0..SUPPORT_DRAWS / 50_000 {
        flow.sample(&mut rng, &mut chunk, &mut chunk_lq, &mut ws)?;
        outside_box += chunk
            .chunks(d)
            .filter(|t| t.iter().any(|&v| !(v as f64).abs().le(&BOX)))
            .count();
    }
    Ok(RunOutcome {
        task,
        seed: cfg.seed,
        status: report.status,
        rounds,
        calls: report.calls,
        kl,
        kl_se,
        w1,
        w1_floor: w1_floor(task),
        tail_mass,
        mode_shares,
        mode_weights: (0..k).map(|j| task.mode_weight(j)).collect(),
        log_z: report.log_z,
        log_z_se: report.log_z_se,
        log_z_true: task.log_evidence_with_prior(),
        k_hat: report.k_hat.unwrap_or(f64::NAN),
        kl_hat: report.kl.unwrap_or(f64::NAN),
        ess: report.ess,
        components: shape.components(),
        seconds,
        outside_box,
    })
}

impl RunOutcome {
    /// One JSON object (the keys the issue lists, and a few more).
    pub fn to_json(&self) -> String {
        let num = |v: f64| {
            if v.is_finite() {
                format!("{v}")
            } else {
                "null".into()
            }
        };
        let list = |v: &[f64]| {
            let items: Vec<String> = v.iter().map(|&x| num(x)).collect();
            format!("[{}]", items.join(", "))
        };
        format!(
            "{{\"task\": \"{}\", \"seed\": {}, \"status\": \"{:?}\", \"calls\": {}, \"rounds\": {}, \"kl\": {}, \"kl_se\": {}, \"w1\": {}, \"w1_floor\": {}, \"tail_mass\": {}, \"mode_shares\": {}, \"mode_weights\": {}, \"log_z\": {}, \"log_z_se\": {}, \"log_z_true\": {}, \"k_hat\": {}, \"kl_hat\": {}, \"ess\": {}, \"components\": {}, \"seconds\": {}, \"outside_box\": {}}}",
            self.task.name(), self.seed, self.status, self.calls, self.rounds.len(), num(self.kl), num(self.kl_se),
            num(self.w1), num(self.w1_floor), num(self.tail_mass), list(&self.mode_shares),
            list(&self.mode_weights), num(self.log_z), num(self.log_z_se), num(self.log_z_true),
            num(self.k_hat), num(self.kl_hat), num(self.ess), self.components, num(self.seconds), self.outside_box
        )
    }

    /// Largest |share − true weight| over the modes.
    pub fn mode_error(&self) -> f64 {
        self.mode_shares
            .iter()
            .zip(&self.mode_weights)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max)
    }
}

/// "median / worst" k̂ over the runs that measured it ("–" where none did: the budget ran
/// out before a check round).
fn k_hat_summary(runs: &[&RunOutcome]) -> String {
    let mut v: Vec<f64> = runs
        .iter()
        .map(|r| r.k_hat)
        .filter(|k| k.is_finite())
        .collect();
    if v.is_empty() {
        return "–".into();
    }
    v.sort_by(|a, b| a.total_cmp(b));
    format!("{:.2} / {:.2}", v[v.len() / 2], v[v.len() - 1])
}

/// The markdown table of a set of runs (one row per run), then a second table with the
/// median and the worst run of every task.
pub fn table(results: &[RunOutcome]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "| task | seed | status | calls | KL(p‖q) | W1 / floor | tail mass | mode err | ln Ẑ − ln Z | ± se | k̂ | ESS | K | s |");
    let _ = writeln!(
        s,
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in results {
        let _ = writeln!(
            s,
            "| {} | {} | {:?} | {} | {:.4} | {:.2} | {:.2} % | {:.3} | {:+.3} | {:.3} | {} | {:.0} | {} | {} | {:.1} |",
            r.task.name(), r.seed, r.status, r.calls, r.kl, r.w1 / r.w1_floor, 100.0 * r.tail_mass,
            r.mode_error(), r.log_z - r.log_z_true, r.log_z_se,
            if r.k_hat.is_finite() { format!("{:.2}", r.k_hat) } else { "–".into() },
            r.ess, r.components, r.outside_box, r.seconds
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "| task | runs | converged | calls | KL(p‖q) | W1 / floor | tail mass | mode err | abs(ln Ẑ − ln Z) | k̂ | s |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut tasks: Vec<Task> = results.iter().map(|r| r.task).collect();
    tasks.dedup();
    for task in tasks {
        let runs: Vec<&RunOutcome> = results.iter().filter(|r| r.task == task).collect();
        // "median / worst" of a figure where larger is worse.
        let mw = |f: &dyn Fn(&RunOutcome) -> f64, digits: usize| {
            let mut v: Vec<f64> = runs.iter().map(|r| f(r)).collect();
            v.sort_by(|a, b| a.total_cmp(b));
            let med = v[v.len() / 2];
            let worst = v[v.len() - 1];
            format!("{med:.digits$} / {worst:.digits$}")
        };
        let converged = runs
            .iter()
            .filter(|r| r.status == RefineStatus::Converged)
            .count();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} % | {} | {} | {} | {} |",
            task.name(),
            runs.len(),
            converged,
            mw(&|r| r.calls as f64, 0),
            mw(&|r| r.kl, 4),
            mw(&|r| r.w1 / r.w1_floor, 2),
            mw(&|r| 100.0 * r.tail_mass, 2),
            mw(&|r| r.mode_error(), 3),
            mw(&|r| (r.log_z - r.log_z_true).abs(), 3),
            k_hat_summary(&runs),
            mw(&|r| r.seconds, 1),
        );
    }
    s
}
