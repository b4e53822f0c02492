//! Randomness passed in: the trainer, the fit and EM draw from the caller's generator through
//! their `_with_rng` forms. Checked: the seeded forms are the `_with_rng` forms with the
//! generator they seed (bit for bit), a fit draws only from the caller's generator (the
//! config's seeds change nothing), the same generator state gives the same bits and another
//! state other bits, and a fit with a host generator is as good as a seeded one.

mod common;

use common::{random_points, uniform};
use lwflow::base::em::{self, EmConfig};
use lwflow::train::{
    fit, fit_with_rng, train, train_with_rng, BaseChoice, FitBuffers, FitConfig, FitMemory,
    FitReport, TrainBuffers, TrainConfig,
};
use lwflow::{init_params, Shape};
use rand_core::{Infallible, SeedableRng, TryRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// A host's own generator (SplitMix64), counting its draws.
struct HostRng {
    state: u64,
    draws: u64,
}

impl TryRng for HostRng {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok((self.try_next_u64()? >> 32) as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        self.draws += 1;
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Ok(z ^ (z >> 31))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for chunk in dst.chunks_mut(8) {
            let v = self.try_next_u64()?.to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        Ok(())
    }
}

fn host(state: u64) -> HostRng {
    HostRng { state, draws: 0 }
}

/// Two well separated Gaussian blobs in 2-D (σ = 0.3, centres (−2, 2) and (2, −2)), equal
/// weights.
fn two_blobs(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut r = common::rng(11);
    let mut pts = Vec::with_capacity(2 * n);
    for i in 0..n {
        let c = if i % 2 == 0 { -2.0 } else { 2.0 };
        // Box–Muller.
        let (u1, u2) = (uniform(&mut r, 1e-12, 1.0), uniform(&mut r, 0.0, 1.0));
        let rad = (-2.0 * u1.ln()).sqrt() * 0.3;
        let ang = 2.0 * core::f64::consts::PI * u2;
        pts.push(c + rad * ang.cos());
        pts.push(-c + rad * ang.sin());
    }
    (pts, vec![1.0; n])
}

fn fit_cfg(seeds: u64) -> FitConfig {
    FitConfig {
        base: BaseChoice::Auto(3),
        em: EmConfig {
            seed: seeds,
            ..Default::default()
        },
        train: TrainConfig {
            max_epochs: 6,
            batch_size: 64,
            seed: seeds.wrapping_add(1),
            ..Default::default()
        },
        init_seed: seeds.wrapping_add(2),
    }
}

/// Runs a fit (seeded, or with `rng`) and returns (report, fitted parameters).
fn run_fit(cfg: &FitConfig, rng: Option<&mut HostRng>) -> (FitReport, Vec<f64>) {
    let template = Shape::new(2, 16, 2);
    let n = 600;
    let (samples, weights) = two_blobs(n);
    let need = FitMemory::new(&template, cfg, n);
    let (mut reals, mut order, mut emb) = (
        vec![0.0f64; need.reals],
        vec![0u32; need.order],
        vec![0.0; need.em],
    );
    let buf = FitBuffers::split(&template, cfg, n, &mut reals, &mut order, &mut emb).unwrap();
    let mut params = vec![0.0f64; cfg.base.max_shape(&template).param_len()];
    let report = match rng {
        None => fit(&template, cfg, &mut params, &samples, &weights, buf, |_| {
            true
        }),
        Some(r) => fit_with_rng(
            &template,
            cfg,
            None,
            &mut params,
            &samples,
            &weights,
            buf,
            r,
            |_| true,
        ),
    }
    .unwrap();
    params.truncate(report.shape.param_len());
    (report, params)
}

#[test]
fn train_is_train_with_rng_seeded_from_the_config() {
    let shape = Shape::new(2, 8, 2);
    let n = 300;
    let samples: Vec<f64> = random_points(n, 2, 5, 1.5);
    let weights: Vec<f64> = (0..n).map(|i| 0.5 + (i % 3) as f64 * 0.25).collect();
    let cfg = TrainConfig {
        max_epochs: 4,
        batch_size: 32,
        seed: 77,
        ..Default::default()
    };
    let p = shape.param_len();
    let run = |host: Option<&mut Xoshiro256PlusPlus>| {
        let mut params = vec![0.0f64; p];
        init_params(
            &shape,
            &mut params,
            &mut Xoshiro256PlusPlus::seed_from_u64(3),
        )
        .unwrap();
        let (mut grad, mut adam, mut best) = (vec![0.0; p], vec![0.0; 2 * p], vec![0.0; p]);
        let mut ws = vec![0.0; shape.workspace_len()];
        let bs = 32;
        let (mut bt, mut bw, mut bo) = (vec![0.0; bs * 2], vec![0.0; bs], vec![0.0; bs]);
        let mut order = vec![0u32; n];
        let buf = TrainBuffers {
            grad: &mut grad,
            adam_state: &mut adam,
            best: &mut best,
            workspace: &mut ws,
            batch_theta: &mut bt,
            batch_weights: &mut bw,
            batch_out: &mut bo,
            order: &mut order,
        };
        let report = match host {
            None => train(&shape, &mut params, &samples, &weights, &cfg, buf, |_| true),
            Some(r) => train_with_rng(
                &shape,
                &mut params,
                &samples,
                &weights,
                &cfg,
                buf,
                r,
                |_| true,
            ),
        }
        .unwrap();
        (report, params)
    };
    let (seeded, p_seeded) = run(None);
    let (hosted, p_hosted) = run(Some(&mut Xoshiro256PlusPlus::seed_from_u64(cfg.seed)));
    assert_eq!(seeded, hosted);
    assert!(p_seeded
        .iter()
        .zip(&p_hosted)
        .all(|(a, b)| a.to_bits() == b.to_bits()));
    // Another generator state: another split and order, other parameters.
    let (_, p_other) = run(Some(&mut Xoshiro256PlusPlus::seed_from_u64(cfg.seed + 1)));
    assert!(p_seeded.iter().zip(&p_other).any(|(a, b)| a != b));
}

#[test]
fn fit_mixture_is_fit_mixture_with_rng_seeded_per_k() {
    let (samples, weights) = two_blobs(400);
    let cfg = EmConfig {
        seed: 9,
        ..Default::default()
    };
    let k = 2;
    let fitted = |host: Option<&mut Xoshiro256PlusPlus>| {
        let (mut w, mut m, mut s) = (vec![0.0; k], vec![0.0; 2 * k], vec![0.0; 2 * k]);
        let mut scratch = vec![0.0; em::scratch_len(k, 2)];
        let fit = match host {
            None => em::fit_mixture(
                &samples,
                &weights,
                2,
                k,
                &cfg,
                &mut w,
                &mut m,
                &mut s,
                &mut scratch,
            ),
            Some(r) => em::fit_mixture_with_rng(
                &samples,
                &weights,
                2,
                k,
                &cfg,
                &mut w,
                &mut m,
                &mut s,
                &mut scratch,
                r,
            ),
        }
        .unwrap();
        (fit, w, m, s)
    };
    // The seeded form seeds each K with seed ^ K·0x9E3779B97F4A7C15.
    let per_k = cfg.seed ^ (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let seeded = fitted(None);
    let hosted = fitted(Some(&mut Xoshiro256PlusPlus::seed_from_u64(per_k)));
    assert_eq!(seeded, hosted);
}

#[test]
fn select_components_with_rng_finds_both_blobs() {
    let (samples, weights) = two_blobs(600);
    let k_max = 4;
    let (mut w, mut m, mut s) = (vec![0.0; k_max], vec![0.0; 2 * k_max], vec![0.0; 2 * k_max]);
    let mut scratch = vec![0.0; em::scratch_len(k_max, 2)];
    let mut rng = host(123);
    let fit = em::select_components_with_rng(
        &samples,
        &weights,
        2,
        k_max,
        &EmConfig::default(),
        &mut w,
        &mut m,
        &mut s,
        &mut scratch,
        &mut rng,
    )
    .unwrap();
    assert_eq!(fit.components, 2, "{fit:?}");
    assert!(rng.draws > 0);
    // One mean near each blob centre, (−2, 2) and (2, −2).
    let mut xs = [m[0], m[2]];
    xs.sort_by(f64::total_cmp);
    assert!(
        (xs[0] + 2.0).abs() < 0.2 && (xs[1] - 2.0).abs() < 0.2,
        "{m:?}"
    );
}

#[test]
fn fit_with_rng_draws_only_from_the_host_generator() {
    let (a, pa) = run_fit(&fit_cfg(1), Some(&mut host(42)));
    // The config's seeds are ignored.
    let (b, pb) = run_fit(&fit_cfg(1000), Some(&mut host(42)));
    assert_eq!(a, b);
    assert!(pa.iter().zip(&pb).all(|(x, y)| x.to_bits() == y.to_bits()));
    // The generator is used, and another state gives another fit.
    let mut rng = host(43);
    let (_, pc) = run_fit(&fit_cfg(1), Some(&mut rng));
    assert!(rng.draws > 600, "draws {}", rng.draws);
    assert!(pa.len() != pc.len() || pa.iter().zip(&pc).any(|(x, y)| x != y));
}

#[test]
fn a_host_generator_fits_as_well_as_a_seeded_one() {
    let (seeded, _) = run_fit(&fit_cfg(5), None);
    let (hosted, _) = run_fit(&fit_cfg(5), Some(&mut host(5)));
    assert_eq!(
        seeded.shape.base, hosted.shape.base,
        "both find two components"
    );
    let (a, b) = (seeded.train.best_val_loss, hosted.train.best_val_loss);
    assert!(a.is_finite() && b.is_finite());
    // Different validation splits, so only close, not equal: within 0.1 nats per sample.
    assert!((a - b).abs() < 0.1, "seeded {a}, host {b}");
}
