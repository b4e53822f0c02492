//! The method: weights, trainer, EM/BIC and end-to-end accuracy on the benchmark suite.
//!
//! Reduced-size versions of every acceptance check run here; the full-size runs (the paper
//! example's settings, three seeds) are `#[ignore]`d:
//! `cargo test --release --test method -- --ignored --nocapture` (about 10 minutes on 2 cores).

mod common;
#[path = "../examples/paper/suite.rs"]
mod suite;

use common::rng;
use lwflow::base::em::{fit_mixture, scratch_len, select_components, EmConfig};
use lwflow::train::*;
use lwflow::{init_params, BaseKind, Error, Flow, Shape};
use lwflow_tasks::{metrics, Task};
use suite::{run, RunConfig};

// ---------------------------------------------------------------------------------------
// Loss identity

/// On a discrete toy problem (prior uniform on M points, every point drawn once) the weighted
/// loss −(1/N) Σ wᵢ log qᵢ equals KL(p‖q) + H(p) exactly, for any q.
#[test]
fn weighted_loss_is_kl_plus_entropy_on_a_discrete_problem() {
    let m = 7;
    // Log-likelihoods with a huge offset: only their differences matter.
    let log_l: Vec<f64> = (0..m)
        .map(|j| -1e5 - 0.3 * (j as f64 - 2.5).powi(2))
        .collect();
    let mut w = vec![0.0f64; m];
    normalise_log_weights(&log_l, NonFinitePolicy::Error, 1.0, &mut w).unwrap();
    // Closed form: p ∝ L.
    let z: f64 = log_l.iter().map(|l| (l + 1e5).exp()).sum();
    let p: Vec<f64> = log_l.iter().map(|l| (l + 1e5).exp() / z).collect();
    let entropy: f64 = -p.iter().map(|pj| pj * pj.ln()).sum::<f64>();
    let mut r = rng(3);
    for _ in 0..5 {
        let logits: Vec<f64> = (0..m).map(|_| common::uniform(&mut r, -2.0, 2.0)).collect();
        let lse = logits.iter().map(|v| v.exp()).sum::<f64>().ln();
        let log_q: Vec<f64> = logits.iter().map(|v| v - lse).collect();
        let loss = -w.iter().zip(&log_q).map(|(w, l)| w * l).sum::<f64>() / m as f64;
        let kl: f64 = p
            .iter()
            .zip(&log_q)
            .map(|(pj, lq)| pj * (pj.ln() - lq))
            .sum();
        assert!(
            (loss - (kl + entropy)).abs() < 1e-12,
            "loss {loss} vs KL+H {}",
            kl + entropy
        );
        // The crate's weighted NLL is the same quantity (mean weight is 1).
        assert!((metrics::weighted_nll(&w, &log_q).unwrap() - loss).abs() < 1e-12);
    }
}

// ---------------------------------------------------------------------------------------
// Weights

#[test]
fn weights_are_computed_in_log_space() {
    let base: Vec<f64> = (0..50).map(|i| -0.01 * (i as f64 - 20.0).powi(2)).collect();
    let mut w0 = vec![0.0f64; 50];
    let s0 = normalise_log_weights(&base, NonFinitePolicy::Error, 1.0, &mut w0).unwrap();
    for offset in [-1e5, -745.0, 700.0, 1e5] {
        let shifted: Vec<f64> = base.iter().map(|l| l + offset).collect();
        let mut w = vec![0.0f64; 50];
        let s = normalise_log_weights(&shifted, NonFinitePolicy::Error, 1.0, &mut w).unwrap();
        for (a, b) in w.iter().zip(&w0) {
            assert!(
                (a - b).abs() < 1e-9 * b.max(1.0),
                "offset {offset}: {a} vs {b}"
            );
        }
        assert!((s.ess - s0.ess).abs() < 1e-6);
    }
    assert!(
        (w0.iter().sum::<f64>() / 50.0 - 1.0).abs() < 1e-12,
        "weights have mean 1"
    );
    assert!((effective_sample_size(&w0) - s0.ess).abs() < 1e-9);
    // −∞ is a valid zero weight.
    let mut with_zero = base.clone();
    with_zero[3] = f64::NEG_INFINITY;
    let mut w = vec![0.0f64; 50];
    normalise_log_weights(&with_zero, NonFinitePolicy::Error, 1.0, &mut w).unwrap();
    assert_eq!(w[3], 0.0);
}

#[test]
fn bad_log_likelihoods_and_degenerate_weights_are_refused() {
    let mut l: Vec<f64> = (0..100).map(|i| -(i as f64) * 0.01).collect();
    l[10] = f64::NAN;
    l[20] = f64::INFINITY;
    let mut w = vec![7.0f32; 100];
    assert_eq!(
        normalise_log_weights(&l, NonFinitePolicy::Error, 1.0, &mut w),
        Err(Error::NonFinite)
    );
    assert!(w.iter().all(|&v| v == 7.0), "weights written on error");
    let s = normalise_log_weights(&l, NonFinitePolicy::Skip, 1.0, &mut w).unwrap();
    assert_eq!(s.skipped, 2);
    assert_eq!((w[10], w[20]), (0.0, 0.0));
    assert!(w.iter().all(|v| v.is_finite()));
    // All −∞ (all-zero weights), all NaN under Skip, empty, ESS below the floor, mismatch.
    let mut w = vec![0.0f32; 4];
    assert_eq!(
        normalise_log_weights(&[f64::NEG_INFINITY; 4], NonFinitePolicy::Error, 0.0, &mut w),
        Err(Error::DegenerateWeights)
    );
    assert_eq!(
        normalise_log_weights(&[f64::NAN; 4], NonFinitePolicy::Skip, 0.0, &mut w),
        Err(Error::DegenerateWeights)
    );
    assert_eq!(
        normalise_log_weights(&[], NonFinitePolicy::Error, 0.0, &mut w[..0]),
        Err(Error::EmptyBatch)
    );
    assert_eq!(
        normalise_log_weights(
            &[0.0, -50.0, -50.0, -50.0],
            NonFinitePolicy::Error,
            1.5,
            &mut w
        ),
        Err(Error::DegenerateWeights)
    );
    assert!(normalise_log_weights(
        &[0.0, -50.0, -50.0, -50.0],
        NonFinitePolicy::Error,
        1.0,
        &mut w
    )
    .is_ok());
    assert!(matches!(
        normalise_log_weights(&[0.0; 3], NonFinitePolicy::Error, 0.0, &mut w),
        Err(Error::LengthMismatch { .. })
    ));
    // Importance weights from a proposal.
    let mut out = [0.0; 2];
    importance_log_weights(&[-1.0, -2.0], &[0.5, 0.5], &[-3.0, -1.0], &mut out).unwrap();
    assert_eq!(out, [2.5, -0.5]);
    assert_eq!(
        importance_log_weights(&[-1.0, -2.0], &[0.5, 0.5], &[f64::NAN, -1.0], &mut out),
        Err(Error::NonFinite)
    );
}

#[test]
fn prior_box_sampling_checks_its_inputs() {
    let mut r = rng(1);
    let mut theta = vec![0.0f64; 3000];
    sample_box(&[-1.0, 2.0, -6.0], &[1.0, 3.0, 6.0], &mut r, &mut theta).unwrap();
    for row in theta.chunks(3) {
        assert!(
            (-1.0..=1.0).contains(&row[0]) && (2.0..=3.0).contains(&row[1]) && row[2].abs() <= 6.0
        );
    }
    let mean = theta.chunks(3).map(|r| r[1]).sum::<f64>() / 1000.0;
    assert!((mean - 2.5).abs() < 4.0 * (1.0 / 12.0f64).sqrt() / 1000f64.sqrt());
    assert!(matches!(
        sample_box(&[-1.0, 0.0], &[1.0, 1.0], &mut r, &mut theta[..5]),
        Err(Error::LengthMismatch { .. })
    ));
    assert!(matches!(
        sample_box(&[-1.0], &[1.0, 1.0], &mut r, &mut theta),
        Err(Error::LengthMismatch { .. })
    ));
    assert_eq!(
        sample_box(&[1.0], &[1.0], &mut r, &mut theta),
        Err(Error::InvalidArgument)
    );
    assert_eq!(
        sample_box(&[f64::NAN], &[1.0], &mut r, &mut theta),
        Err(Error::NonFinite)
    );
    assert_eq!(
        sample_box(&[0.0], &[1.0], &mut r, &mut []),
        Err(Error::EmptyBatch)
    );
}

// ---------------------------------------------------------------------------------------
// Trainer

struct Owned {
    grad: Vec<f32>,
    adam: Vec<f32>,
    best: Vec<f32>,
    ws: Vec<f32>,
    bt: Vec<f32>,
    bw: Vec<f32>,
    bo: Vec<f32>,
    order: Vec<u32>,
}

impl Owned {
    fn new(shape: &Shape, n: usize, bs: usize) -> Self {
        let p = shape.param_len();
        Owned {
            grad: vec![0.0; p],
            adam: vec![0.0; 2 * p],
            best: vec![0.0; p],
            ws: vec![0.0; shape.workspace_len()],
            bt: vec![0.0; bs * shape.dim],
            bw: vec![0.0; bs],
            bo: vec![0.0; bs],
            order: vec![0; n],
        }
    }
    fn buffers(&mut self) -> TrainBuffers<'_, f32> {
        TrainBuffers {
            grad: &mut self.grad,
            adam_state: &mut self.adam,
            best: &mut self.best,
            workspace: &mut self.ws,
            batch_theta: &mut self.bt,
            batch_weights: &mut self.bw,
            batch_out: &mut self.bo,
            order: &mut self.order,
        }
    }
}

fn small_problem(n: usize) -> (Vec<f32>, Vec<f32>) {
    let (theta, log_l) = suite::prior_samples(Task::T2D2, n, 5);
    let mut w = vec![0.0f32; n];
    normalise_log_weights(&log_l, NonFinitePolicy::Error, 10.0, &mut w).unwrap();
    (theta, w)
}

fn train_small(
    cfg: &TrainConfig,
    on_epoch: impl FnMut(&EpochReport) -> bool,
) -> (Vec<f32>, TrainReport) {
    let shape = Shape::new(2, 16, 4);
    let (theta, w) = small_problem(20_000);
    let mut params = vec![0.0f32; shape.param_len()];
    init_params(&shape, &mut params, &mut rng(8)).unwrap();
    let mut own = Owned::new(&shape, w.len(), cfg.batch_size);
    let rep = train(
        &shape,
        &mut params,
        &theta,
        &w,
        cfg,
        own.buffers(),
        on_epoch,
    )
    .unwrap();
    (params, rep)
}

#[test]
fn training_is_bit_identical_for_the_same_seed() {
    let cfg = TrainConfig {
        max_epochs: 3,
        batch_size: 256,
        seed: 11,
        ..TrainConfig::default()
    };
    let (a, ra) = train_small(&cfg, |_| true);
    let (b, rb) = train_small(&cfg, |_| true);
    assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
    assert_eq!(ra, rb);
    let (c, _) = train_small(&TrainConfig { seed: 12, ..cfg }, |_| true);
    assert!(a != c, "a different seed gave the same parameters");
}

#[test]
fn training_reduces_validation_loss_and_restores_the_best_epoch() {
    let cfg = TrainConfig {
        max_epochs: 12,
        batch_size: 256,
        patience: 4,
        ..TrainConfig::default()
    };
    let mut seen = Vec::new();
    let (params, rep) = train_small(&cfg, |e| {
        seen.push(*e);
        true
    });
    assert!(rep.best_val_loss < rep.initial_val_loss, "{rep:?}");
    assert_eq!(seen.len(), rep.epochs);
    // The restored parameters have exactly the reported best validation loss: recompute it
    // on the same split (the trainer's split is the first shuffle of the kept samples).
    let best_seen = seen
        .iter()
        .map(|e| e.val_loss)
        .fold(f64::INFINITY, f64::min);
    assert_eq!(
        rep.best_val_loss.min(rep.initial_val_loss),
        best_seen.min(rep.initial_val_loss)
    );
    let shape = Shape::new(2, 16, 4);
    let flow = Flow::new(shape, &params).unwrap();
    let (theta, w) = small_problem(20_000);
    let mut lq = vec![0.0f32; w.len()];
    flow.log_prob(&theta, &mut lq, &mut vec![0.0; shape.eval_workspace_len()])
        .unwrap();
    assert!(lq.iter().all(|v| v.is_finite()));
    // Training and validation losses are on one scale (−Σw log q / Σw over their splits).
    let last = seen.last().unwrap();
    assert!((last.train_loss - last.val_loss).abs() < 0.2, "{last:?}");
    // Cosine schedule: the rate falls every epoch.
    assert!(seen.windows(2).all(|p| p[1].lr < p[0].lr));
}

#[test]
fn held_out_loss_rebuilds_the_trainers_split() {
    let cfg = TrainConfig {
        max_epochs: 6,
        batch_size: 256,
        patience: 3,
        seed: 5,
        ..TrainConfig::default()
    };
    let (params, rep) = train_small(&cfg, |_| true);
    let shape = Shape::new(2, 16, 4);
    let (theta, w) = small_problem(20_000);
    let mut own = Owned::new(&shape, w.len(), cfg.batch_size);
    // The restored parameters on the held-out samples: exactly the trainer's best loss.
    let loss = held_out_loss(&shape, &params, &theta, &w, &cfg, own.buffers()).unwrap();
    assert_eq!(loss, rep.best_val_loss);
    // Another seed holds out other samples: another figure.
    let other = TrainConfig { seed: 6, ..cfg };
    let loss6 = held_out_loss(&shape, &params, &theta, &w, &other, own.buffers()).unwrap();
    assert!(loss6.is_finite() && loss6 != loss, "{loss6} {loss}");
    // No validation: NaN. Wrong lengths and degenerate weights: typed errors.
    let none = TrainConfig {
        validation_fraction: 0.0,
        ..cfg
    };
    let nan = held_out_loss(&shape, &params, &theta, &w, &none, own.buffers()).unwrap();
    assert!(nan.is_nan());
    assert!(held_out_loss(&shape, &params, &theta[1..], &w, &cfg, own.buffers()).is_err());
    let zero = vec![0.0f32; w.len()];
    assert_eq!(
        held_out_loss(&shape, &params, &theta, &zero, &cfg, own.buffers()),
        Err(Error::DegenerateWeights)
    );
}

#[test]
fn callback_cancels_and_early_stopping_stops() {
    let cfg = TrainConfig {
        max_epochs: 50,
        batch_size: 256,
        patience: 2,
        ..TrainConfig::default()
    };
    let (_, rep) = train_small(&cfg, |e| e.epoch < 2);
    assert_eq!((rep.stop, rep.epochs), (StopReason::Cancelled, 2));
    // Constant large rate: validation stops improving quickly.
    let cfg = TrainConfig {
        adam: lwflow::Adam {
            lr: 0.05,
            ..lwflow::Adam::default()
        },
        schedule: Schedule::Constant,
        ..cfg
    };
    let (_, rep) = train_small(&cfg, |_| true);
    assert_eq!(rep.stop, StopReason::EarlyStopped, "{rep:?}");
    assert!(rep.epochs < 50);
}

#[test]
fn non_finite_steps_are_skipped_and_counted() {
    // No clamp (normflows' exp scale), random weights, f32, and 1% of the points at ±5000:
    // there exp(s) overflows, so the minibatches holding one of them have a non-finite loss.
    // Those steps are skipped and counted; the others are applied; the model stays finite.
    let shape = Shape::new(2, 16, 2).with_clamp(0.0);
    let n = 4096;
    let mut r = rng(2);
    let theta: Vec<f32> = (0..2 * n)
        .map(|i| {
            if (i / 2) % 100 == 7 {
                5000.0
            } else {
                common::uniform(&mut r, -3.0, 3.0) as f32
            }
        })
        .collect();
    let w = vec![1.0f32; n];
    let mut params: Vec<f32> = common::random_params(&shape, 4, 0.1);
    let cfg = TrainConfig {
        max_epochs: 2,
        batch_size: 64,
        validation_fraction: 0.0,
        clip_norm: 0.0,
        ..TrainConfig::default()
    };
    let mut own = Owned::new(&shape, n, 64);
    let rep = train(&shape, &mut params, &theta, &w, &cfg, own.buffers(), |_| {
        true
    })
    .unwrap();
    assert!(rep.skipped_steps > 0, "{rep:?}");
    assert!(rep.steps > 0, "{rep:?}");
    assert!(params.iter().all(|v| v.is_finite()));
}

#[test]
fn trainer_refuses_bad_configuration_and_buffers() {
    let shape = Shape::new(2, 8, 2);
    let (theta, w) = small_problem(1000);
    let mut params = vec![0.0f32; shape.param_len()];
    init_params(&shape, &mut params, &mut rng(1)).unwrap();
    let ok = TrainConfig {
        batch_size: 100,
        ..TrainConfig::default()
    };
    // The error of one `train` call on fresh buffers for `n` samples.
    let err = |params: &mut [f32], theta: &[f32], w: &[f32], cfg: &TrainConfig, n: usize| {
        let mut own = Owned::new(&shape, n, 100);
        train(&shape, params, theta, w, cfg, own.buffers(), |_| true).err()
    };
    let cases = [
        TrainConfig {
            max_epochs: 0,
            ..ok
        },
        TrainConfig {
            batch_size: 0,
            ..ok
        },
        TrainConfig {
            validation_fraction: 0.95,
            ..ok
        },
        TrainConfig {
            clip_norm: -1.0,
            ..ok
        },
        TrainConfig {
            min_weight: 1.0,
            ..ok
        },
        TrainConfig {
            schedule: Schedule::Cosine { min_factor: 2.0 },
            ..ok
        },
    ];
    for cfg in cases {
        assert_eq!(
            err(&mut params, &theta, &w, &cfg, 1000),
            Some(Error::InvalidArgument),
            "{cfg:?}"
        );
    }
    let nan_clip = TrainConfig {
        clip_norm: f64::NAN,
        ..ok
    };
    assert_eq!(
        err(&mut params, &theta, &w, &nan_clip, 1000),
        Some(Error::NonFinite)
    );
    // Dimension mismatches: θ, parameters, and buffers sized for 999 samples.
    let mismatches = [
        err(&mut params, &theta[1..], &w, &ok, 1000),
        err(&mut params[1..], &theta, &w, &ok, 1000),
        err(&mut params, &theta, &w, &ok, 999),
    ];
    for e in mismatches {
        assert!(matches!(e, Some(Error::LengthMismatch { .. })), "{e:?}");
    }
    // Non-finite or negative weights, all-zero weights.
    for (bad_value, want) in [(f32::NAN, Error::NonFinite), (-1.0, Error::InvalidArgument)] {
        let mut bad = w.clone();
        bad[0] = bad_value;
        assert_eq!(err(&mut params, &theta, &bad, &ok, 1000), Some(want));
    }
    let zeros = vec![0.0f32; 1000];
    assert_eq!(
        err(&mut params, &theta, &zeros, &ok, 1000),
        Some(Error::DegenerateWeights)
    );
}

// ---------------------------------------------------------------------------------------
// EM and BIC

fn weighted_prior(task: Task, n: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let (theta, log_l) = suite::prior_samples(task, n, seed);
    let mut w = vec![0.0f32; n];
    normalise_log_weights(&log_l, NonFinitePolicy::Error, 10.0, &mut w).unwrap();
    (theta, w)
}

#[test]
fn bic_picks_the_true_number_of_modes() {
    for task in Task::ALL {
        let d = task.dim();
        let (theta, w) = weighted_prior(task, if d == 2 { 100_000 } else { 200_000 }, 21);
        let k_max = 6;
        let (mut pi, mut mu, mut sd) =
            (vec![0.0; k_max], vec![0.0; k_max * d], vec![0.0; k_max * d]);
        let mut scratch = vec![0.0; scratch_len(k_max, d)];
        let fit = select_components(
            &theta,
            &w,
            d,
            k_max,
            &EmConfig::default(),
            &mut pi,
            &mut mu,
            &mut sd,
            &mut scratch,
        )
        .unwrap();
        let k = fit.components;
        if task.is_gaussian_mixture() {
            assert_eq!(k, task.modes(), "{}: BIC chose {k}", task.name());
            // Each fitted component sits on one true component, with its spread.
            for j in 0..task.modes() {
                let (c, s) = task.component(j);
                let near = (0..k).any(|i| {
                    (0..d).all(|x| {
                        (mu[i * d + x] - c[x]).abs() < 0.1 && (sd[i * d + x] / s - 1.0).abs() < 0.1
                    })
                });
                assert!(near, "{}: no fitted component at {c:?}", task.name());
            }
        } else {
            // Bananas: any K ≥ 2 whose components each stay on one banana (θ₂ ≥ 2 or ≤ −2
            // along the banana): mean ± 2σ in θ₂ never crosses 0.
            assert!(k >= 2, "2DB: BIC chose {k}");
            for i in 0..k {
                assert!(
                    mu[i * d + 1].abs() - 2.0 * sd[i * d + 1] > 0.0,
                    "2DB component {i} spans both bananas: {:?} ± {:?}",
                    &mu[i * d..i * d + 2],
                    &sd[i * d..i * d + 2]
                );
            }
        }
    }
}

#[test]
fn em_is_deterministic_and_checks_inputs() {
    let (theta, w) = weighted_prior(Task::T2D3, 30_000, 3);
    let fit = |seed: u64| {
        let (mut pi, mut mu, mut sd) = (vec![0.0; 3], vec![0.0; 6], vec![0.0; 6]);
        let mut scratch = vec![0.0; scratch_len(3, 2)];
        let f = fit_mixture(
            &theta,
            &w,
            2,
            3,
            &EmConfig {
                seed,
                ..EmConfig::default()
            },
            &mut pi,
            &mut mu,
            &mut sd,
            &mut scratch,
        )
        .unwrap();
        (f, pi, mu, sd)
    };
    let a = fit(1);
    let b = fit(1);
    assert_eq!(a.0, b.0);
    assert!(a
        .2
        .iter()
        .zip(&b.2)
        .all(|(x, y)| x.to_bits() == y.to_bits()));
    let (mut pi, mut mu, mut sd) = (vec![0.0; 3], vec![0.0; 6], vec![0.0; 6]);
    let mut scratch = vec![0.0; scratch_len(3, 2)];
    let cfg = EmConfig::default();
    assert!(matches!(
        fit_mixture(
            &theta,
            &w,
            2,
            3,
            &cfg,
            &mut pi,
            &mut mu,
            &mut sd,
            &mut scratch[1..]
        ),
        Err(Error::BufferTooSmall { .. })
    ));
    assert!(matches!(
        fit_mixture(
            &theta[1..],
            &w,
            2,
            3,
            &cfg,
            &mut pi,
            &mut mu,
            &mut sd,
            &mut scratch
        ),
        Err(Error::LengthMismatch { .. })
    ));
    assert_eq!(
        fit_mixture(
            &theta,
            &w,
            2,
            0,
            &cfg,
            &mut pi,
            &mut mu,
            &mut sd,
            &mut scratch
        )
        .err(),
        Some(Error::InvalidArgument)
    );
    let zeros = vec![0.0f32; w.len()];
    assert_eq!(
        fit_mixture(
            &theta,
            &zeros,
            2,
            3,
            &cfg,
            &mut pi,
            &mut mu,
            &mut sd,
            &mut scratch
        )
        .err(),
        Some(Error::DegenerateWeights)
    );
}

// ---------------------------------------------------------------------------------------
// End to end on the suite (reduced size here; full size below, ignored)

fn reduced(task: Task, base: BaseChoice, seed: u64) -> RunConfig {
    let mut cfg = RunConfig::full(task, base, seed);
    cfg.n_prior = if task.dim() == 2 { 100_000 } else { 200_000 };
    cfg.eval_n = 10_000;
    cfg
}

#[test]
fn automatic_mixture_base_is_accurate_on_the_gaussian_tasks() {
    for task in [Task::T2D1, Task::T2D2, Task::T2D3, Task::T3D2, Task::T3D4] {
        let mut cfg = reduced(task, BaseChoice::Auto(6), 0);
        cfg.train.max_epochs = 6;
        cfg.train.patience = 3;
        let r = run(task, &cfg, |_| true).unwrap();
        eprintln!(
            "{}: K {} KL {:.4} W1 {:.4} bridge {:.2}%",
            task.name(),
            r.shape.components(),
            r.kl,
            r.w1,
            100.0 * r.bridge
        );
        assert_eq!(r.shape.components(), task.modes(), "{}", task.name());
        assert!(r.kl <= 0.005, "{}: KL {}", task.name(), r.kl);
        assert!(
            r.bridge <= 0.005,
            "{}: bridge mass {}",
            task.name(),
            r.bridge
        );
        assert!(r.all_finite);
    }
}

#[test]
fn automatic_mixture_base_is_accurate_on_the_bananas() {
    let mut cfg = reduced(Task::T2DB, BaseChoice::Auto(6), 0);
    cfg.train.max_epochs = 30;
    let r = run(Task::T2DB, &cfg, |_| true).unwrap();
    eprintln!(
        "2DB: K {} KL {:.4} W1 {:.4} bridge {:.2}% epochs {}",
        r.shape.components(),
        r.kl,
        r.w1,
        100.0 * r.bridge,
        r.report.train.epochs
    );
    assert!(r.shape.components() >= 2);
    assert!(r.kl <= 0.02, "KL {}", r.kl);
    assert!(r.bridge <= 0.005, "bridge mass {}", r.bridge);
    assert!(r.all_finite);
}

/// (Gaussian, automatic mixture, paper-initialised mixture) runs on one task and seed.
fn three_bases(
    task: Task,
    seed: u64,
    cfg_of: impl Fn(Task, BaseChoice, u64) -> RunConfig,
) -> [suite::RunResult; 3] {
    let bases = [
        BaseChoice::Gaussian,
        BaseChoice::Auto(6),
        BaseChoice::PaperMixture(task.modes()),
    ];
    let [g, a, p] = bases.map(|b| run(task, &cfg_of(task, b, seed), |_| true).unwrap());
    eprintln!(
        "{} seed {seed}: Gaussian KL {:.4} W1 {:.4} bridge {:.2}% | auto KL {:.4} W1 {:.4} bridge {:.2}% | paper GMM KL {:.4} W1 {:.4} bridge {:.2}%",
        task.name(), g.kl, g.w1, 100.0 * g.bridge, a.kl, a.w1, 100.0 * a.bridge, p.kl, p.w1, 100.0 * p.bridge
    );
    assert!(g.all_finite && a.all_finite && p.all_finite);
    [g, a, p]
}

/// The paper's first claim on (Gaussian, auto) figures: the Gaussian base shows bridges (≥ 2×
/// the automatic mixture's bridge mass) and a higher average marginal W1.
fn assert_bridges(task: Task, what: &str, g_bridge: f64, a_bridge: f64, g_w1: f64, a_w1: f64) {
    assert!(
        g_bridge >= 2.0 * a_bridge,
        "{} {what}: Gaussian bridge {g_bridge} vs auto {a_bridge}",
        task.name()
    );
    assert!(
        g_w1 > a_w1,
        "{} {what}: Gaussian W1 {g_w1} vs auto {a_w1}",
        task.name()
    );
}

#[test]
fn paper_claims_reduced() {
    for task in [Task::T2D2, Task::T2D3] {
        let [g, a, p] = three_bases(task, 0, |t, b, s| {
            let mut c = RunConfig::full(t, b, s);
            c.eval_n = 10_000;
            c.train.max_epochs = 15;
            c
        });
        assert_bridges(task, "seed 0", g.bridge, a.bridge, g.w1, a.w1);
        assert!(
            p.w1 < g.w1,
            "{}: paper-initialised GMM W1 {} vs Gaussian {}",
            task.name(),
            p.w1,
            g.w1
        );
    }
}

/// Full size, as the issue states the claims: bridges and W1 on the example's run (seed 0),
/// and the paper-initialised mixture against the Gaussian base on the median W1 over three
/// seeds; the bridge and W1 claims are also checked on the medians over the three seeds.
#[test]
#[ignore = "full size: cargo test --release --test method -- --ignored --nocapture"]
fn paper_claims_full_three_seeds() {
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    for task in [Task::T2D2, Task::T2D3] {
        let runs: Vec<[suite::RunResult; 3]> = (0..3)
            .map(|s| three_bases(task, s, RunConfig::full))
            .collect();
        let [g0, a0, _] = &runs[0];
        assert_bridges(task, "seed 0", g0.bridge, a0.bridge, g0.w1, a0.w1);
        let m = |base: usize, f: fn(&suite::RunResult) -> f64| {
            median(runs.iter().map(|r| f(&r[base])).collect())
        };
        let (g_w1, a_w1, p_w1) = (m(0, |r| r.w1), m(1, |r| r.w1), m(2, |r| r.w1));
        assert_bridges(
            task,
            "median of 3 seeds",
            m(0, |r| r.bridge),
            m(1, |r| r.bridge),
            g_w1,
            a_w1,
        );
        assert!(
            p_w1 < g_w1,
            "{}: median W1 paper GMM {p_w1} vs Gaussian {g_w1}",
            task.name()
        );
    }
}

#[test]
#[ignore = "full size: cargo test --release --test method -- --ignored --nocapture"]
fn automatic_mixture_base_full_size() {
    for task in Task::ALL {
        let r = run(task, &RunConfig::full(task, BaseChoice::Auto(6), 0), |_| {
            true
        })
        .unwrap();
        eprintln!(
            "{}: K {} KL {:.4} W1 {:.4} bridge {:.2}%",
            task.name(),
            r.shape.components(),
            r.kl,
            r.w1,
            100.0 * r.bridge
        );
        let limit = if task == Task::T2DB { 0.02 } else { 0.005 };
        assert!(r.kl <= limit, "{}: KL {}", task.name(), r.kl);
        assert!(r.bridge <= 0.005, "{}: bridge {}", task.name(), r.bridge);
        if task.is_gaussian_mixture() {
            assert_eq!(r.shape.components(), task.modes());
        }
    }
}

#[test]
fn fit_pipeline_refuses_bad_input() {
    let shape = Shape::new(2, 8, 2);
    let (theta, w) = small_problem(2000);
    let base = BaseChoice::Auto(3);
    let ms = base.max_shape(&shape);
    assert_eq!(ms.base, BaseKind::Mixture(3));
    let cfg = FitConfig {
        base,
        em: EmConfig::default(),
        train: TrainConfig {
            batch_size: 128,
            ..TrainConfig::default()
        },
        init_seed: 0,
    };
    let need = FitMemory::new(&shape, &cfg, 2000);
    let (mut reals, mut order, mut em) = (
        vec![0.0f32; need.reals],
        vec![0u32; need.order],
        vec![0.0; need.em],
    );
    // Each of the three slices one element short is refused.
    let short =
        |r: usize, o: usize, e: usize, reals: &mut [f32], order: &mut [u32], em: &mut [f64]| {
            FitBuffers::split(
                &shape,
                &cfg,
                2000,
                &mut reals[..r],
                &mut order[..o],
                &mut em[..e],
            )
            .err()
        };
    for (r, o, e) in [
        (need.reals - 1, need.order, need.em),
        (need.reals, need.order - 1, need.em),
        (need.reals, need.order, need.em - 1),
    ] {
        assert!(matches!(
            short(r, o, e, &mut reals, &mut order, &mut em),
            Some(Error::BufferTooSmall { .. })
        ));
    }
    let mut run = |params: &mut [f32], theta: &[f32], cfg: &FitConfig| {
        let buffers =
            FitBuffers::split(&shape, cfg, 2000, &mut reals, &mut order, &mut em).unwrap();
        fit(&shape, cfg, params, theta, &w, buffers, |_| true)
    };
    let mut params = vec![0.0f32; ms.param_len() - 1];
    assert!(matches!(
        run(&mut params, &theta, &cfg),
        Err(Error::BufferTooSmall { .. })
    ));
    let mut params = vec![0.0f32; ms.param_len()];
    assert!(matches!(
        run(&mut params, &theta[..3000], &cfg),
        Err(Error::LengthMismatch { .. })
    ));
    let auto0 = FitConfig {
        base: BaseChoice::Auto(0),
        ..cfg
    };
    assert!(run(&mut params, &theta, &auto0).is_err());
    // The split memory is enough for a real fit.
    let report = run(
        &mut params,
        &theta,
        &FitConfig {
            train: TrainConfig {
                max_epochs: 1,
                ..cfg.train
            },
            ..cfg
        },
    )
    .unwrap();
    assert_eq!(report.shape.components(), 2);
}

#[test]
fn gradient_clipping_bounds_the_update() {
    // Adam is invariant to the gradient's scale except through ε: clipped to norm 1e-12, every
    // moment is ~1e-12 ≪ ε = 1e-8, so each step moves a parameter by at most lr·1e-4.
    let shape = Shape::new(2, 16, 4);
    let (theta, w) = small_problem(20_000);
    let mut start = vec![0.0f32; shape.param_len()];
    init_params(&shape, &mut start, &mut rng(8)).unwrap();
    let run_with = |clip: f64| {
        let cfg = TrainConfig {
            max_epochs: 1,
            batch_size: 256,
            clip_norm: clip,
            validation_fraction: 0.0,
            ..TrainConfig::default()
        };
        let mut params = start.clone();
        let mut own = Owned::new(&shape, w.len(), 256);
        let rep = train(&shape, &mut params, &theta, &w, &cfg, own.buffers(), |_| {
            true
        })
        .unwrap();
        let moved = params
            .iter()
            .zip(&start)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        (moved as f64, rep.steps as f64)
    };
    let (free, steps) = run_with(0.0);
    let (clipped, _) = run_with(1e-12);
    assert!(free > 1e-2, "unclipped training barely moved: {free}");
    assert!(
        clipped <= steps * 1e-3 * 1e-4 * 1.01,
        "clipped update {clipped} over {steps} steps"
    );
}

#[test]
fn prior_samples_are_weighed_through_a_batched_callback() {
    let task = Task::T2D2;
    let n = 10_000;
    let (mut theta, mut log_l, mut w) = (vec![0.0f32; 2 * n], vec![0.0; n], vec![0.0f32; n]);
    let mut calls = 0;
    let stats = sample_and_weigh(
        &[-6.0f32, -6.0],
        &[6.0, 6.0],
        &mut rng(4),
        1000,
        |rows, out| {
            calls += 1;
            assert!(rows.len() == 2 * out.len() && out.len() <= 1000);
            for (o, t) in out.iter_mut().zip(rows.chunks(2)) {
                *o = task.log_likelihood(&[t[0] as f64, t[1] as f64]) - 1e5;
            }
            true
        },
        NonFinitePolicy::Error,
        50.0,
        &mut theta,
        &mut log_l,
        &mut w,
    )
    .unwrap();
    assert_eq!(calls, 10);
    assert!(stats.ess > 300.0 && stats.ess < 1000.0, "{stats:?}");
    // Same draws as sample_box with the same seed.
    let mut again = vec![0.0f32; 2 * n];
    sample_box(&[-6.0f32, -6.0], &[6.0, 6.0], &mut rng(4), &mut again).unwrap();
    assert_eq!(again, theta);
    // A failing callback aborts with `Callback`.
    let r = sample_and_weigh(
        &[-6.0f32, -6.0],
        &[6.0, 6.0],
        &mut rng(4),
        1000,
        |_, _| false,
        NonFinitePolicy::Error,
        1.0,
        &mut theta,
        &mut log_l,
        &mut w,
    );
    assert_eq!(r, Err(Error::Callback));
    let r = sample_and_weigh(
        &[-6.0f32, -6.0],
        &[6.0, 6.0],
        &mut rng(4),
        0,
        |_, _| true,
        NonFinitePolicy::Error,
        1.0,
        &mut theta,
        &mut log_l,
        &mut w,
    );
    assert_eq!(r, Err(Error::InvalidArgument));
}
