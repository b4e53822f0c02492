//! The C callers, compiled with `-std=c11 -Wall -Wextra -Wpedantic -Werror` against the built
//! `liblwflow.a` and run: the ABI test with its bad-input matrix (also under valgrind), the 2D2
//! training program (KL below 0.05, equal to the same procedure through the Rust API), the
//! 2D2 fit through the fit API (KL below 0.05 and within 10% of the same fit through
//! `lwflow::train::fit`; also under valgrind with a small budget), and the coverage checks
//! (every exported function is in the header and used by the C test).

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const C_FLAGS: [&str; 5] = ["-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror"];

/// Compiles one C file into `dir`; `None` (test skipped, said on stderr) without a compiler.
fn compile_c(source: &str, dir: &Path, optimise: bool) -> Option<PathBuf> {
    let cc = tool("CC", "cc", "C caller")?;
    let exe = dir.join(Path::new(source).file_stem().expect("file name"));
    let mut cmd = Command::new(cc);
    cmd.args(C_FLAGS)
        .args(optimise.then_some("-O2"))
        .arg("-I")
        .arg(repo().join("include"))
        .arg(repo().join(source))
        .arg(staticlib())
        .args(native_libs())
        .arg("-o")
        .arg(&exe);
    run(cmd);
    Some(exe)
}

#[test]
fn abi_test_and_bad_input_matrix_pass_natively_and_under_valgrind() {
    let dir = scratch("abi_test");
    let Some(exe) = compile_c("examples/c/abi_test.c", &dir, false) else {
        return;
    };
    let out = run(Command::new(&exe));
    eprint!("{out}");
    let summary = out
        .lines()
        .find(|l| l.starts_with("checks:"))
        .expect("summary line");
    let bad_calls: usize = summary
        .split("bad-input calls: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.parse().ok())
        .expect("bad-input count");
    assert!(bad_calls >= 25, "only {bad_calls} bad calls: {summary}");
    assert!(summary.ends_with("failures: 0"), "{summary}");
    run_valgrind(&exe, &[]);
}

#[test]
fn c_program_trains_2d2_like_the_rust_api() {
    let dir = scratch("train_2d2");
    let Some(exe) = compile_c("examples/c/train_2d2.c", &dir, true) else {
        return;
    };
    let out = run(Command::new(&exe));
    eprint!("{out}");
    let kl_c = result_field(&out, "kl");
    let kl_c_start = result_field(&out, "kl_start");
    assert!(kl_c < 0.05, "KL(p||q) of the C-trained model: {kl_c}");
    assert!(kl_c < kl_c_start);

    let (kl_rust, kl_rust_start) = mirror::train_2d2();
    eprintln!("KL(p||q): C {kl_c:.17} (start {kl_c_start:.17}), Rust API {kl_rust:.17} (start {kl_rust_start:.17})");
    // The same procedure through the Rust API: same accuracy (the same numbers up to the
    // last-bit differences libm calls may have between C and Rust call sites).
    assert!((kl_c_start - kl_rust_start).abs() < 1e-9);
    assert!((kl_c - kl_rust).abs() < 1e-6, "C {kl_c} vs Rust {kl_rust}");
}

#[test]
fn c_training_program_is_valgrind_clean() {
    let dir = scratch("train_2d2_quick");
    let Some(exe) = compile_c("examples/c/train_2d2.c", &dir, true) else {
        return;
    };
    // A few steps only: valgrind is ~50x slower; the full run is the test above.
    run_valgrind(&exe, &["quick"]);
}

#[test]
fn c_program_fits_2d2_through_the_fit_api_like_the_rust_api() {
    let dir = scratch("fit_2d2");
    let Some(exe) = compile_c("examples/c/fit_2d2.c", &dir, true) else {
        return;
    };
    let out = run(Command::new(&exe));
    eprint!("{out}");
    let kl_c = result_field(&out, "kl");
    assert!(kl_c < 0.05, "KL(p||q) of the C-fitted model: {kl_c}");

    let (kl_rust, report, stats) = mirror::fit_2d2();
    eprintln!(
        "KL(p||q) of the 2D2 fit: C through the fit API {kl_c:.6}, Rust API {kl_rust:.6} \
         (relative difference {:.2e})",
        (kl_c - kl_rust).abs() / kl_rust
    );
    // The acceptance criterion: the same accuracy as the Rust API for the same seed and
    // settings, KL within 10%.
    assert!(
        (kl_c - kl_rust).abs() <= 0.1 * kl_rust,
        "C {kl_c} vs Rust {kl_rust}"
    );
    // The same run, not just the same accuracy: a config field lost or mis-mapped on the way
    // through the ABI shows up here.
    let t = report.train;
    assert_eq!(
        result_field(&out, "components") as usize,
        report.shape.components()
    );
    assert_eq!(result_field(&out, "epochs") as usize, t.epochs);
    assert_eq!(result_field(&out, "best_epoch") as usize, t.best_epoch);
    assert_eq!(result_field(&out, "steps") as u64, t.steps);
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
    assert!(close(result_field(&out, "ess"), stats.ess));
    assert!(close(result_field(&out, "best_val_loss"), t.best_val_loss));
}

#[test]
fn c_fit_program_is_valgrind_clean() {
    let dir = scratch("fit_2d2_quick");
    let Some(exe) = compile_c("examples/c/fit_2d2.c", &dir, true) else {
        return;
    };
    // 2,000 samples and 2 epochs: valgrind is ~50x slower.
    run_valgrind(&exe, &["quick"]);
}

#[test]
fn c_test_program_calls_every_exported_function() {
    let source = std::fs::read_to_string(repo().join("examples/c/abi_test.c")).expect("source");
    let missing: Vec<String> = header_functions()
        .into_iter()
        .filter(|f| !source.contains(&format!("{f}(")))
        .collect();
    assert!(
        missing.is_empty(),
        "exported but not called by examples/c/abi_test.c: {missing:?}"
    );
}

#[test]
fn exported_symbols_are_exactly_the_header_functions() {
    let Some(nm) = tool("NM", "nm", "exported-symbol check") else {
        return;
    };
    let out = run({
        let mut c = Command::new(nm);
        c.args(["-D", "--defined-only"]).arg(cdylib());
        c
    });
    let mut exported: Vec<String> = out
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter(|s| s.starts_with("lwf_"))
        .map(str::to_string)
        .collect();
    exported.sort();
    assert_eq!(exported, header_functions());
}

/// train_2d2.c, step for step, and fit_2d2.c's fit, through the Rust API.
mod mirror {
    use lwflow::base::em::EmConfig;
    use lwflow::rand_core::SeedableRng;
    use lwflow::train::{
        fit_in_box, sample_and_weigh, BaseChoice, FitBuffers, FitConfig, FitMemory, FitReport,
        NonFinitePolicy, TrainConfig, WeightStats,
    };
    use lwflow::{init_params, set_mixture_base, Adam, BaseKind, Error, Flow, Shape};
    use rand_xoshiro::Xoshiro256PlusPlus;
    use std::f64::consts::PI;

    const BOX: f64 = 6.0;
    const MODE: f64 = 2.5;
    const SIGMA: f64 = 0.6;

    struct SplitMix(u64);
    impl SplitMix {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn uniform01(&mut self) -> f64 {
            ((self.next() >> 11) as f64 + 0.5) * (1.0 / 9007199254740992.0)
        }
        fn normal01(&mut self) -> f64 {
            let u1 = self.uniform01();
            let u2 = self.uniform01();
            (-2.0 * u1.ln()).sqrt() * (2.0 * PI * u2).cos()
        }
    }

    fn log_normal_iso(x: &[f64], mu: &[f64], sigma: f64) -> f64 {
        let q: f64 = x.iter().zip(mu).fold(0.0, |q, (a, m)| {
            let u = (a - m) / sigma;
            q + u * u
        });
        -0.5 * q - x.len() as f64 * (sigma.ln() + 0.5 * (2.0 * PI).ln())
    }

    fn log_likelihood(theta: &[f64], dim: usize) -> Vec<f64> {
        let mut left = vec![0.0; dim];
        let mut right = vec![0.0; dim];
        left[0] = -MODE;
        right[0] = MODE;
        theta
            .chunks_exact(dim)
            .map(|x| {
                let a = log_normal_iso(x, &left, SIGMA);
                let b = log_normal_iso(x, &right, SIGMA);
                let m = a.max(b);
                m + (0.5 * (a - m).exp() + 0.5 * (b - m).exp()).ln()
            })
            .collect()
    }

    fn normalise_weights(log_lik: &[f64]) -> Vec<f64> {
        let n = log_lik.len();
        let m = log_lik
            .iter()
            .fold(f64::NEG_INFINITY, |a, &b| if b > a { b } else { a });
        let s = log_lik.iter().fold(0.0, |s, &l| s + (l - m).exp());
        log_lik
            .iter()
            .map(|&l| n as f64 * (l - m).exp() / s)
            .collect()
    }

    fn kmeans2(x: &[f64], w: &[f64], dim: usize) -> ([f64; 4], [f64; 2]) {
        let n = w.len();
        let mut first = 0;
        for i in 0..n {
            if w[i] > w[first] {
                first = i;
            }
        }
        let (mut second, mut best) = (0, -1.0);
        for i in 0..n {
            let mut d2 = 0.0;
            for j in 0..dim {
                let u = x[i * dim + j] - x[first * dim + j];
                d2 += u * u;
            }
            if w[i] * d2 > best {
                best = w[i] * d2;
                second = i;
            }
        }
        let mut means = [0.0; 4];
        let mut shares = [0.0; 2];
        means[..2].copy_from_slice(&x[first * dim..first * dim + 2]);
        means[2..].copy_from_slice(&x[second * dim..second * dim + 2]);
        for _ in 0..20 {
            let mut sum = [[0.0; 2]; 2];
            let mut mass = [0.0; 2];
            for i in 0..n {
                let mut d = [0.0; 2];
                for (k, dk) in d.iter_mut().enumerate() {
                    for j in 0..dim {
                        let u = x[i * dim + j] - means[k * dim + j];
                        *dk += u * u;
                    }
                }
                let k = usize::from(d[1] < d[0]);
                mass[k] += w[i];
                for j in 0..dim {
                    sum[k][j] += w[i] * x[i * dim + j];
                }
            }
            for k in 0..2 {
                if mass[k] > 0.0 {
                    for j in 0..dim {
                        means[k * dim + j] = sum[k][j] / mass[k];
                    }
                }
                shares[k] = mass[k] / (mass[0] + mass[1]);
            }
        }
        (means, shares)
    }

    fn kl_exact(flow: &Flow<f64>, ws: &mut [f64], m: usize, seed: u64) -> f64 {
        let mut s = SplitMix(seed);
        let mut theta = Vec::with_capacity(2 * m);
        while theta.len() < 2 * m {
            let sign = if s.uniform01() < 0.5 { -1.0 } else { 1.0 };
            let a = sign * MODE + SIGMA * s.normal01();
            let b = SIGMA * s.normal01();
            if a.abs() > BOX || b.abs() > BOX {
                continue;
            }
            theta.extend([a, b]);
        }
        let log_p = log_likelihood(&theta, 2);
        let mut log_q = vec![0.0; m];
        flow.log_prob(&theta, &mut log_q, ws).expect("log_prob");
        log_p
            .iter()
            .zip(&log_q)
            .fold(0.0, |kl, (p, q)| kl + (p - q))
            / m as f64
    }

    /// Returns (KL after training, KL before training).
    pub fn train_2d2() -> (f64, f64) {
        let (n, batch, epochs, dim) = (20000usize, 500usize, 40usize, 2usize);
        let mut rng = SplitMix(42);
        let theta: Vec<f64> = (0..n * dim)
            .map(|_| -BOX + 2.0 * BOX * rng.uniform01())
            .collect();
        let weights = normalise_weights(&log_likelihood(&theta, dim));

        let shape = Shape::new(dim, 32, 4).with_base(BaseKind::Mixture(2));
        let mut params = vec![0.0; shape.param_len()];
        init_params(
            &shape,
            &mut params,
            &mut Xoshiro256PlusPlus::seed_from_u64(1),
        )
        .unwrap();
        let (means, shares) = kmeans2(&theta, &weights, dim);
        let mut ws = vec![0.0; shape.workspace_len()];
        set_mixture_base(&shape, &mut params, &shares, &means, &[1.0; 4]).unwrap();
        let kl_start = kl_exact(&Flow::new(shape, &params).unwrap(), &mut ws, 20000, 7);

        let adam = Adam {
            lr: 2e-3,
            ..Adam::default()
        };
        let mut state = vec![0.0; shape.optimizer_len()];
        let mut grad = vec![0.0; shape.param_len()];
        let mut order: Vec<usize> = (0..n).collect();
        let (mut theta_b, mut w_b) = (vec![0.0; batch * dim], vec![0.0; batch]);
        let mut t = 0u64;
        for _ in 0..epochs {
            for i in (1..n).rev() {
                let j = (rng.uniform01() * (i + 1) as f64) as usize;
                order.swap(i, j);
            }
            for start in (0..).step_by(batch).take_while(|s| s + batch <= n) {
                for b in 0..batch {
                    let i = order[start + b];
                    theta_b[b * dim..(b + 1) * dim].copy_from_slice(&theta[i * dim..(i + 1) * dim]);
                    w_b[b] = weights[i];
                }
                let loss = Flow::new(shape, &params)
                    .unwrap()
                    .loss_and_gradient(&theta_b, &w_b, &mut grad, &mut ws)
                    .unwrap();
                if !loss.is_finite() || !grad.iter().all(|g| g.is_finite()) {
                    continue;
                }
                match adam.step(&shape, &mut params, &grad, &mut state, t + 1) {
                    Ok(()) => t += 1,
                    Err(Error::NonFinite) => {}
                    Err(e) => panic!("adam: {e}"),
                }
            }
        }
        let kl = kl_exact(&Flow::new(shape, &params).unwrap(), &mut ws, 20000, 7);
        (kl, kl_start)
    }

    /// fit_2d2.c's fit (full budget) through `lwflow::train::fit_in_box` in f64 (the C ABI's
    /// prior-box fit is on the box by default): the same prior draws (xoshiro256++ from
    /// sample_seed 42), likelihood, batches, configuration (the C ABI's defaults are the
    /// core's) and seeds. Returns (KL, fit report, weight statistics).
    pub fn fit_2d2() -> (f64, FitReport, WeightStats) {
        let (n, dim) = (20000usize, 2usize);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(42);
        let (mut theta, mut log_l, mut weights) = (vec![0.0; n * dim], vec![0.0; n], vec![0.0; n]);
        let stats = sample_and_weigh(
            &[-BOX, -BOX],
            &[BOX, BOX],
            &mut rng,
            1000,
            |rows: &[f64], out: &mut [f64]| {
                out.copy_from_slice(&log_likelihood(rows, dim));
                true
            },
            NonFinitePolicy::Error,
            100.0,
            &mut theta,
            &mut log_l,
            &mut weights,
        )
        .expect("weights");

        let template = Shape::new(dim, 32, 4).with_bounded(true);
        let cfg = FitConfig {
            base: BaseChoice::Auto(8),
            em: EmConfig::default(),
            train: TrainConfig {
                max_epochs: 40,
                ..TrainConfig::default()
            },
            init_seed: 1,
        };
        let mut params = vec![0.0; cfg.base.max_shape(&template).param_len()];
        let need = FitMemory::new(&template, &cfg, n);
        let (mut reals, mut order, mut em) = (
            vec![0.0; need.reals],
            vec![0u32; need.order],
            vec![0.0; need.em],
        );
        let buffers =
            FitBuffers::split(&template, &cfg, n, &mut reals, &mut order, &mut em).unwrap();
        let report = fit_in_box(
            &template,
            &cfg,
            &[-BOX, -BOX],
            &[BOX, BOX],
            &mut params,
            &theta,
            &weights,
            buffers,
            |_| true,
        )
        .expect("fit");
        let flow = Flow::new(report.shape, &params[..report.shape.param_len()]).unwrap();
        let mut ws = vec![0.0; report.shape.eval_workspace_len()];
        let kl = kl_exact(&flow, &mut ws, 20000, 7);
        (kl, report, stats)
    }
}
