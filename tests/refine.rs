//! The refinement loop: accuracy on a 2-D and a 5-D task of the suite at the default settings
//! (the short version of `cargo run --release --example refine`, which runs all ten tasks
//! over seeds 0–2), determinism, the ask/tell interface against the closure driver, the
//! budget status, bad `tell`s, and the "can I trust this q?" diagnostics on a bridged fit.

mod common;
#[path = "../examples/refine/run.rs"]
mod run;
#[path = "../examples/paper/suite.rs"]
mod suite;

use lwflow::diagnostics::importance_summary;
use lwflow::train::{
    importance_log_weights, refine, BaseChoice, NonFinitePolicy, RefineBuffers, RefineConfig,
    RefineMemory, RefineReport, RefineStatus, Refiner,
};
use lwflow::{Error, Flow, Shape};
use lwflow_tasks::{Task, BOX};
use run::{config, refine_task, refine_with, template, RunOutcome};

/// The acceptance checks of one run at the default settings.
fn check(o: &RunOutcome, max_calls: usize, max_kl: f64) {
    let name = o.task.name();
    assert_eq!(o.status, RefineStatus::Converged, "{name}");
    assert!(o.calls <= max_calls, "{name}: {} calls", o.calls);
    assert!(o.kl <= max_kl, "{name}: KL {}", o.kl);
    assert!(o.tail_mass <= 0.003, "{name}: tail mass {}", o.tail_mass);
    assert!(
        o.mode_error() <= 0.03,
        "{name}: mode shares {:?}",
        o.mode_shares
    );
    let dz = (o.log_z - o.log_z_true).abs();
    assert!(
        dz <= 0.05 && dz <= 3.0 * o.log_z_se,
        "{name}: ln Z off by {dz} ± {}",
        o.log_z_se
    );
    assert!(o.k_hat <= 0.5, "{name}: k̂ {}", o.k_hat);
    // W1 is reported against its floor; the 1.5× is not met at these budgets (README).
    assert!(
        o.w1 <= 5.0 * o.w1_floor,
        "{name}: W1 {} (floor {})",
        o.w1,
        o.w1_floor
    );
    assert_eq!(o.outside_box, 0, "{name}: q samples outside the prior box");
}

/// 4,500 calls over seeds 0–2 (README): fewer than UltraNest's 5,400 on this task.
#[test]
fn two_dimensional_two_modes() {
    check(&refine_task(Task::T2D2, 0, false).unwrap(), 5_000, 0.005);
}

#[test]
fn five_dimensional_two_modes() {
    check(&refine_task(Task::T5D2, 0, false).unwrap(), 40_000, 0.02);
}

/// A mode piled into a corner of the box: the bounded support keeps every q sample inside.
/// Seed 4 is the run that warm starts alone kept at k̂ ≈ 1 and KL 0.037 for the whole budget
/// (a proposal with k̂ > 0.7 is now refitted, and fresh fits compete with warm ones).
#[test]
fn mode_in_a_corner() {
    check(&refine_task(Task::T2DC, 4, false).unwrap(), 10_000, 0.005);
}

fn run_to_end(
    task: Task,
    cfg: &RefineConfig,
    ask_tell: bool,
) -> (RefineReport, Shape, Vec<f32>, Vec<f64>) {
    let shape = template(task);
    let d = task.dim();
    let need = RefineMemory::new(&shape, cfg);
    let mut reals = vec![0.0f32; need.reals];
    let mut f64s = vec![0.0f64; need.f64s];
    let mut order = vec![0u32; need.order];
    let buf = RefineBuffers::split(&shape, cfg, &mut reals, &mut f64s, &mut order).unwrap();
    let (lo, hi) = (vec![-BOX; d], vec![BOX; d]);
    let mut r = Refiner::new(&shape, &lo, &hi, cfg, buf).unwrap();
    let eval = |theta: &[f32], out: &mut [f64]| {
        for (o, t) in out.iter_mut().zip(theta.chunks(d)) {
            let t64: Vec<f64> = t.iter().map(|&v| v as f64).collect();
            *o = task.log_likelihood(&t64);
        }
    };
    let report = if ask_tell {
        while r.status() == RefineStatus::Running {
            let theta = r.ask().unwrap().to_vec();
            let mut out = vec![0.0; theta.len() / d];
            eval(&theta, &mut out);
            r.tell(&out).unwrap();
        }
        r.report().unwrap()
    } else {
        refine(
            &mut r,
            333,
            |t, o| {
                eval(t, o);
                true
            },
            |_| true,
        )
        .unwrap()
    };
    let (s, p) = r.model().unwrap();
    let log_l = r.samples().1.to_vec();
    (report, s, p.to_vec(), log_l)
}

/// Same seed, same bits; the ask/tell loop and the closure driver (in batches of 333) are
/// the same computation.
#[test]
fn deterministic_and_ask_tell_equals_the_closure_driver() {
    let cfg = config(Task::T2D3, 4);
    let a = run_to_end(Task::T2D3, &cfg, false);
    let b = run_to_end(Task::T2D3, &cfg, false);
    let c = run_to_end(Task::T2D3, &cfg, true);
    for other in [&b, &c] {
        assert_eq!(a.0, other.0);
        assert_eq!(a.1, other.1);
        assert!(a
            .2
            .iter()
            .zip(&other.2)
            .all(|(x, y)| x.to_bits() == y.to_bits()));
        assert!(a
            .3
            .iter()
            .zip(&other.3)
            .all(|(x, y)| x.to_bits() == y.to_bits()));
    }
    // Another seed gives another run.
    let d = run_to_end(Task::T2D3, &config(Task::T2D3, 5), false);
    assert_ne!(a.2, d.2);
}

/// A budget too small for the targets ends with BudgetExhausted, the full report, a usable
/// model fitted on every sample, and k̂ unknown (nothing was drawn from that model).
#[test]
fn budget_runs_out_with_a_distinct_status() {
    let cfg = RefineConfig {
        max_calls: 9_000,
        ..config(Task::T5D2, 0)
    };
    let o = refine_with(Task::T5D2, &cfg, &template(Task::T5D2), false).unwrap();
    assert_eq!(o.status, RefineStatus::BudgetExhausted);
    assert!(o.calls <= 9_000);
    assert!(
        o.k_hat.is_nan(),
        "k̂ of a model never drawn from: {}",
        o.k_hat
    );
    assert!(o.log_z.is_finite() && o.kl.is_finite());
    assert!(o.rounds.len() >= 2);
}

/// `tell` refuses what it cannot use and changes nothing: wrong length, NaN under the error
/// policy, a tell before any ask; then the right tell goes through. Under the skip policy a
/// NaN is a zero likelihood.
#[test]
fn bad_tells_are_refused_and_lose_nothing() {
    let task = Task::T2D2;
    let shape = template(task);
    for policy in [NonFinitePolicy::Error, NonFinitePolicy::Skip] {
        let cfg = RefineConfig {
            policy,
            ..config(task, 1)
        };
        let need = RefineMemory::new(&shape, &cfg);
        let mut reals = vec![0.0f32; need.reals];
        let mut f64s = vec![0.0f64; need.f64s];
        let mut order = vec![0u32; need.order];
        let buf = RefineBuffers::split(&shape, &cfg, &mut reals, &mut f64s, &mut order).unwrap();
        let mut r = Refiner::new(&shape, &[-BOX; 2], &[BOX; 2], &cfg, buf).unwrap();
        assert_eq!(r.tell(&[0.0]).map(|_| ()), Err(Error::InvalidArgument));
        let theta = r.ask().unwrap().to_vec();
        let m = theta.len() / 2;
        assert_eq!(theta, r.ask().unwrap(), "asking twice gives the same batch");
        let mut vals: Vec<f64> = theta
            .chunks(2)
            .map(|t| task.log_likelihood(&[t[0] as f64, t[1] as f64]))
            .collect();
        assert!(matches!(
            r.tell(&vals[1..]),
            Err(Error::LengthMismatch { .. })
        ));
        vals[3] = f64::NAN;
        match policy {
            NonFinitePolicy::Error => {
                assert_eq!(r.tell(&vals).map(|_| ()), Err(Error::NonFinite));
                assert_eq!(r.calls(), 0);
                vals[3] = task.log_likelihood(&[theta[6] as f64, theta[7] as f64]);
                let round = r.tell(&vals).unwrap();
                assert_eq!(round.calls, m);
            }
            NonFinitePolicy::Skip => {
                let round = r.tell(&vals).unwrap();
                assert_eq!(round.calls, m);
                assert_eq!(r.samples().1[3], f64::NEG_INFINITY);
            }
        }
        // Bad configurations and boxes at the door.
        let bad_cfg = RefineConfig {
            ess_fraction: 1.5,
            ..cfg
        };
        assert_eq!(bad_cfg.validate(), Err(Error::InvalidArgument));
        let mut reals = vec![0.0f32; need.reals];
        let mut f64s = vec![0.0f64; need.f64s];
        let mut order = vec![0u32; need.order];
        for (lo, hi, want) in [
            ([1.0, -6.0], [-1.0, 6.0], Error::InvalidArgument),
            ([f64::NAN, -6.0], [6.0, 6.0], Error::NonFinite),
            ([-1e308, -6.0], [1e308, 6.0], Error::NonFinite),
        ] {
            let buf =
                RefineBuffers::split(&shape, &cfg, &mut reals, &mut f64s, &mut order).unwrap();
            assert_eq!(
                Refiner::new(&shape, &lo, &hi, &cfg, buf).map(|_| ()),
                Err(want),
                "{lo:?} {hi:?}"
            );
        }
    }
}

/// "Can I trust this q?": from fresh likelihood values at draws of a fitted q (weights
/// L·π/q) the estimated KL(p‖q) flags the Gaussian-base fit of 2D3, whose bridges spend mass
/// where the posterior has none, and passes the automatic mixture base's fit; both estimates
/// match the true KL. k̂ does not flag the bridges (it sees only where q is too thin: 0.26
/// measured), which is why the refinement also checks the KL estimate.
#[test]
fn diagnostics_flag_a_bridged_fit() {
    let assess = |base: BaseChoice| {
        let mut cfg = suite::RunConfig::full(Task::T2D3, base, 0);
        cfg.n_prior = 100_000;
        let r = suite::run(Task::T2D3, &cfg, |_| true).unwrap();
        let flow = Flow::new(r.shape, &r.params).unwrap();
        let n = 20_000;
        let (mut theta, mut log_q) = (vec![0.0f32; 2 * n], vec![0.0f32; n]);
        let mut ws = vec![0.0f32; r.shape.eval_workspace_len()];
        flow.sample(&mut common::rng(77), &mut theta, &mut log_q, &mut ws)
            .unwrap();
        let log_l: Vec<f64> = theta
            .chunks(2)
            .map(|t| {
                let t = [t[0] as f64, t[1] as f64];
                if Task::T2D3.in_box(&t) {
                    Task::T2D3.log_likelihood(&t)
                } else {
                    f64::NEG_INFINITY
                }
            })
            .collect();
        let log_prior = vec![-(12.0f64 * 12.0).ln(); n];
        let log_g: Vec<f64> = log_q.iter().map(|&v| v as f64).collect();
        let mut log_w = vec![0.0; n];
        importance_log_weights(&log_l, &log_prior, &log_g, &mut log_w).unwrap();
        let mut scratch = vec![0.0; n];
        let s = importance_summary(&log_w, &mut scratch).unwrap();
        eprintln!(
            "{base:?}: k̂ {:?}, ESS/n {:.3}, KL̂ {:.4} (true {:.4})",
            s.k_hat,
            s.ess / n as f64,
            s.kl,
            r.kl
        );
        assert!(
            (s.kl - r.kl).abs() < 0.25 * r.kl.max(0.004),
            "KL̂ {} vs {}",
            s.kl,
            r.kl
        );
        assert!((s.log_z - Task::T2D3.log_evidence_with_prior()).abs() < 0.05);
        s.kl
    };
    assert!(assess(BaseChoice::Gaussian) > 0.02);
    assert!(assess(BaseChoice::Auto(6)) < 0.005);
}
