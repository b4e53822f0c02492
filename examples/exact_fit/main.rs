//! What a fit can reach from n exact posterior samples: the statistical floor of a
//! refinement that ends with an ESS of about n.
//!
//! Fits the refinement's flow (same shape, base, EM and trainer settings as
//! `RefineConfig::for_dim`, on the prior box) to `n` exact posterior samples of equal weight
//! and prints KL(p‖q) on 20,000 other exact samples and the average marginal W1 between
//! 20,000 draws of q and those samples. A refinement spends likelihood calls to
//! reach an ESS; it cannot beat a fit to that many exact samples, so this tells a miss of the
//! loop from a miss of the budget.
//!
//! ```sh
//! cargo run --release --example exact_fit -- 2DB 8000            # task, n
//! cargo run --release --example exact_fit -- 2DB 20000 100 10 1  # epochs, patience, seed
//! ```

#[path = "../paper/suite.rs"]
mod suite;

use lwflow::train::{fit_in_box, FitBuffers, FitMemory, RefineConfig};
use lwflow::{Flow, Shape};
use lwflow_tasks::{metrics, Task, BOX};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: u64| -> u64 {
        args.get(i)
            .map(|a| a.parse().expect("a number"))
            .unwrap_or(default)
    };
    let name = args.first().map(String::as_str).unwrap_or("2DB");
    let task = Task::PUBLIC
        .iter()
        .copied()
        .find(|t| t.name() == name)
        .expect("a task of the suite");
    let n = arg(1, 8_000) as usize;
    let d = task.dim();
    let mut cfg = RefineConfig::for_dim(d).fit;
    cfg.train.max_epochs = arg(2, cfg.train.max_epochs as u64) as usize;
    cfg.train.patience = arg(3, cfg.train.patience as u64) as usize;
    let seed = arg(4, 0);
    cfg.train.seed ^= seed;

    let theta: Vec<f32> = suite::posterior_samples(task, n, seed ^ 0x77)
        .iter()
        .map(|&v| v as f32)
        .collect();
    let weights = vec![1.0f32; n];
    // The example's refinement template (examples/refine/run.rs) with the default outer maps.
    let template = Shape::new(d, 32, 6).with_bounded(true).with_affine(true);
    let mut params = vec![0.0f32; cfg.base.max_shape(&template).param_len()];
    let need = FitMemory::new(&template, &cfg, n);
    let (mut reals, mut order, mut em) = (
        vec![0.0f32; need.reals],
        vec![0u32; need.order],
        vec![0.0; need.em],
    );
    let buffers = FitBuffers::split(&template, &cfg, n, &mut reals, &mut order, &mut em)
        .expect("buffers sized by FitMemory");
    let (lo, hi) = (vec![-BOX; d], vec![BOX; d]);
    let report = fit_in_box(
        &template,
        &cfg,
        &lo,
        &hi,
        &mut params,
        &theta,
        &weights,
        buffers,
        |_| true,
    )
    .expect("the fit");
    let shape = report.shape;
    let flow = Flow::new(shape, &params[..shape.param_len()]).expect("a fitted model");

    let m = 20_000;
    let post = suite::posterior_samples(task, m, 0xbeef);
    let post32: Vec<f32> = post.iter().map(|&v| v as f32).collect();
    let mut log_q = vec![0.0f32; m];
    flow.log_prob(
        &post32,
        &mut log_q,
        &mut vec![0.0; shape.eval_workspace_len()],
    )
    .expect("log_prob");
    let log_p: Vec<f64> = post.chunks(d).map(|t| task.log_posterior(t)).collect();
    let log_q: Vec<f64> = log_q.iter().map(|&v| v as f64).collect();
    let kl = metrics::kl_from_posterior_samples(&log_p, &log_q).expect("KL");
    let mut ws = vec![0.0f32; shape.eval_workspace_len()];
    let w1 = suite::q_samples(&flow, &post, 0xca11 ^ seed, &mut ws)
        .expect("q samples")
        .w1;
    println!(
        "{} n {n} seed {seed}: K {}, epochs {} of {} (best {}), KL(p‖q) {kl:.4}, W1 {w1:.4}",
        task.name(),
        shape.components(),
        report.train.epochs,
        cfg.train.max_epochs,
        report.train.best_epoch,
    );
}
