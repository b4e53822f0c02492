//! Importance-sampling diagnostics (`lwflow::diagnostics`):
//! - k̂ against ArviZ's `psislw` on the fixed vectors of `tests/fixtures/psis_reference.json`
//!   (written by `tests/fixtures/psis_reference.py`, arviz 0.23.4);
//! - k̂ recovers the shape of exact generalized Pareto samples, within the estimator's
//!   asymptotic standard error;
//! - ln Ẑ, its standard error and the ESS against closed forms for log-normal weights, the
//!   coverage of the ±1.96 SE interval, shift invariance, and the bad-input errors.

use lwflow::diagnostics::{importance_summary, pareto_k_hat, scratch_len, ImportanceSummary};
use lwflow::rand_core::SeedableRng;
use lwflow::Error;
use lwflow_tasks::Draws;
use rand_xoshiro::Xoshiro256PlusPlus;

/// Tail length of PSIS for n draws (r_eff = 1): ⌈min(n/5, 3√n)⌉.
fn tail_len(n: usize) -> usize {
    f64::min(n as f64 / 5.0, 3.0 * (n as f64).sqrt()).ceil() as usize
}

fn k_hat(log_w: &[f64]) -> Result<f64, Error> {
    let mut scratch = vec![0.0; scratch_len(log_w.len())];
    pareto_k_hat(log_w, &mut scratch)
}

fn summary(log_w: &[f64]) -> Result<ImportanceSummary, Error> {
    let mut scratch = vec![0.0; scratch_len(log_w.len())];
    importance_summary(log_w, &mut scratch)
}

#[test]
fn k_hat_matches_arviz() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/psis_reference.json"
    ))
    .unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["arviz"], "0.23.4");
    let cases = json["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 16);
    let (mut worst, mut finite, mut refused) = (0.0f64, 0, 0);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        // null is a zero weight (log w = −∞).
        let log_w: Vec<f64> = case["log_w"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap_or(f64::NEG_INFINITY))
            .collect();
        let got = k_hat(&log_w);
        match case["k_hat"].as_f64() {
            Some(want) => {
                let got = got.unwrap_or_else(|e| panic!("{name}: {e:?}"));
                let d = (got - want).abs();
                assert!(
                    d <= 1e-9 * want.abs().max(1.0),
                    "{name}: {got} vs arviz {want}"
                );
                worst = worst.max(d);
                // The summary reports the same k̂.
                assert_eq!(summary(&log_w).unwrap().k_hat, Some(got), "{name}");
                finite += 1;
            }
            // ArviZ's +∞ (fewer than 5 tail points) is a typed refusal here.
            None => {
                assert_eq!(got, Err(Error::DegenerateWeights), "{name}");
                assert_eq!(summary(&log_w).unwrap().k_hat, None, "{name}");
                refused += 1;
            }
        }
    }
    assert_eq!((finite, refused), (15, 1));
    println!("max |k̂ − k̂_arviz| = {worst:e}");
}

/// Generalized Pareto draws with shape k and scale 1: y = (U^(−k) − 1)/k.
fn gpd(draws: &mut Draws, k: f64) -> f64 {
    let u = draws.uniform();
    if k == 0.0 {
        -u.ln()
    } else {
        (u.powf(-k) - 1.0) / k
    }
}

#[test]
fn k_hat_recovers_the_generalized_pareto_shape() {
    // Exceedances of GPD(k, σ) over any threshold are GPD(k, σ + k·u) (threshold stability),
    // so given the threshold PSIS fits M iid GPD(k) points: the Zhang–Stephens estimate is
    // asymptotically normal with sd (1 + k)/√M (the MLE's, for k > −1/2), and the prior pulls
    // its mean to (M·k + 5)/(M + 10). Over R replications the mean of k̂ then has sd
    // (1 + k)/√M · M/(M + 10)/√R; 4 of those is the tolerance (one-sided test size 3e-5).
    let (n, reps) = (20_000, 100);
    let m = tail_len(n) as f64;
    assert_eq!(m, 425.0);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
    let mut draws = Draws::new(&mut rng);
    let mut log_w = vec![0.0; n];
    let mut scratch = vec![0.0; scratch_len(n)];
    for k in [-0.3, 0.0, 0.3, 0.7, 1.2] {
        let mut ks = Vec::with_capacity(reps);
        for _ in 0..reps {
            for v in log_w.iter_mut() {
                *v = gpd(&mut draws, k).ln();
            }
            ks.push(pareto_k_hat(&log_w, &mut scratch).unwrap());
        }
        let mean = ks.iter().sum::<f64>() / reps as f64;
        let var = ks.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (reps - 1) as f64;
        let want = (m * k + 5.0) / (m + 10.0);
        let sd_one = (1.0 + k) / m.sqrt() * m / (m + 10.0);
        let sd_mean = sd_one / (reps as f64).sqrt();
        println!(
            "k = {k:5}: mean k̂ = {mean:.4} (want {want:.4} ± {sd_mean:.4}), sd {:.4} (asymptotic {sd_one:.4})",
            var.sqrt()
        );
        // Plus 0.01 for the estimator's own finite-sample bias at M = 425, which 2000
        // replications of this test put between −0.007 (k = 1.2) and +0.004 (k ≤ 0).
        assert!(
            (mean - want).abs() < 4.0 * sd_mean + 0.01,
            "k = {k}: {mean} vs {want}"
        );
        // The spread is the asymptotic one: the sample sd of R = 100 normal draws has relative
        // sd 1/√(2·99) ≈ 7 %, so 0.7–1.3 is beyond 4 of those, widened above to 1.45 because
        // Zhang–Stephens is ≈ 15 % less efficient than the MLE at k = −0.3 (2000 replications:
        // sd 0.038 against 0.033; within 3 % of the asymptotic value for k ≥ 0).
        let ratio = var.sqrt() / sd_one;
        assert!((0.7..1.45).contains(&ratio), "k = {k}: sd ratio {ratio}");
    }
}

#[test]
fn k_hat_separates_light_and_heavy_tails_in_one_draw() {
    // One set of n = 20 000 each: sd of k̂ ≈ (1 + k)/√425 ≤ 0.11, so 0.5 is > 3 sd from both.
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(12);
    let mut draws = Draws::new(&mut rng);
    let n = 20_000;
    // Log-normal weights (σ = 0.5) have every moment: k = 0 in the limit.
    let light: Vec<f64> = (0..n).map(|_| 0.5 * draws.normal()).collect();
    // Pareto weights U^(−0.9): variance infinite, k = 0.9.
    let heavy: Vec<f64> = (0..n).map(|_| -0.9 * draws.uniform().ln()).collect();
    let (kl, kh) = (k_hat(&light).unwrap(), k_hat(&heavy).unwrap());
    assert!(kl < 0.5 && kh > 0.5, "{kl} {kh}");
    assert!((kh - 0.9).abs() < 0.35, "{kh}");
}

#[test]
fn summary_matches_direct_formulas() {
    // w = 1, 2, …, 40: every field by the textbook formula.
    let w: Vec<f64> = (1..=40).map(f64::from).collect();
    let log_w: Vec<f64> = w.iter().map(|v| v.ln()).collect();
    let s = summary(&log_w).unwrap();
    let n = 40.0;
    let mean = w.iter().sum::<f64>() / n;
    let sd = (w.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    let ess = w.iter().sum::<f64>().powi(2) / w.iter().map(|v| v * v).sum::<f64>();
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs();
    assert_eq!(s.n, 40);
    assert!(close(s.log_z, mean.ln()), "{}", s.log_z);
    assert!(close(s.log_z_se, sd / (n.sqrt() * mean)), "{}", s.log_z_se);
    assert!(close(s.ess, ess), "{}", s.ess);
    assert_eq!(s.k_hat, Some(k_hat(&log_w).unwrap()));
    // Bounded weights: a short (negative) tail shape.
    assert!(s.k_hat.unwrap() < 0.0, "{:?}", s.k_hat);
    // Zero weights count in n and in the mean, not in the ESS numerator.
    let mut with_zeros = log_w.clone();
    with_zeros.extend([f64::NEG_INFINITY; 10]);
    let z = summary(&with_zeros).unwrap();
    assert_eq!(z.n, 50);
    assert!(close(z.log_z, (mean * 40.0 / 50.0).ln()));
    assert!(close(z.ess, ess));
}

#[test]
fn log_z_and_its_standard_error_for_log_normal_weights() {
    // log w = μ + σ·z, z ~ N(0, 1): Z = E w = exp(μ + σ²/2), sd(w)/E w = √(exp σ² − 1),
    // ESS/n → (E w)²/E w² = exp(−σ²).
    let (mu, sigma) = (-3.0, 0.5);
    let truth = mu + sigma * sigma / 2.0;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(13);
    let mut draws = Draws::new(&mut rng);
    let n = 100_000;
    let log_w: Vec<f64> = (0..n).map(|_| mu + sigma * draws.normal()).collect();
    let s = summary(&log_w).unwrap();
    let se_true = ((sigma * sigma).exp() - 1.0).sqrt() / (n as f64).sqrt();
    assert!(
        (s.log_z - truth).abs() < 4.0 * s.log_z_se,
        "{} vs {truth}",
        s.log_z
    );
    // Relative sd of the sample sd ≈ √((κ − 1)/n)/2 = 0.0044 (log-normal kurtosis κ ≈ 8.9);
    // of mean(w²) ≈ √((e^{4σ²} − 1)/n) = 0.0041. 2 % is > 4 of either.
    assert!(
        (s.log_z_se / se_true - 1.0).abs() < 0.02,
        "{} vs {se_true}",
        s.log_z_se
    );
    let ess_ratio = s.ess / n as f64 / (-sigma * sigma).exp();
    assert!((ess_ratio - 1.0).abs() < 0.02, "{ess_ratio}");
    // Every moment exists: k̂ is small (sd ≈ 1/√(3√n) = 0.055 around ≈ 0).
    assert!(s.k_hat.unwrap() < 0.3, "{:?}", s.k_hat);

    // Coverage of ln Ẑ ± 1.96 SE over 400 independent sets of n = 1000: nominal 95 %, binomial
    // sd 1.1 %; the interval [90.6 %, 99.4 %] is ±4 sd.
    let reps = 400;
    let mut covered = 0;
    let mut log_w = vec![0.0; 1000];
    let mut scratch = vec![0.0; scratch_len(1000)];
    for _ in 0..reps {
        for v in log_w.iter_mut() {
            *v = mu + sigma * draws.normal();
        }
        let s = importance_summary(&log_w, &mut scratch).unwrap();
        if (s.log_z - truth).abs() <= 1.96 * s.log_z_se {
            covered += 1;
        }
    }
    let share = covered as f64 / reps as f64;
    println!("coverage of ±1.96 SE: {share}");
    assert!((0.906..=0.994).contains(&share), "{share}");
}

#[test]
fn shift_invariance_and_huge_negative_log_weights() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(14);
    let mut draws = Draws::new(&mut rng);
    let n = 5000;
    let log_w: Vec<f64> = (0..n).map(|_| 1.5 * draws.normal()).collect();
    let shifted: Vec<f64> = log_w.iter().map(|v| v - 1e5).collect();
    let (a, b) = (summary(&log_w).unwrap(), summary(&shifted).unwrap());
    // Subtracting 1e5 rounds each value to the spacing of 1e5 (1.5e-11): that is all that
    // changes.
    assert_eq!(a.n, b.n);
    assert!(
        (b.log_z - (a.log_z - 1e5)).abs() < 1e-9,
        "{} {}",
        a.log_z,
        b.log_z
    );
    assert!((b.log_z_se / a.log_z_se - 1.0).abs() < 1e-8);
    assert!((b.ess / a.ess - 1.0).abs() < 1e-8);
    let (ka, kb) = (a.k_hat.unwrap(), b.k_hat.unwrap());
    assert!((kb - ka).abs() < 1e-8, "{ka} {kb}");
    assert!(b.log_z.is_finite() && b.ess > 1.0 && kb.is_finite());
    // On a grid of 2⁻³⁰ a shift by −1024 is exact, and so is every difference from the
    // maximum: ESS, SE and k̂ are bit-identical, ln Ẑ moves by 1024 up to the rounding of the
    // final sum (one ulp of 1024 is 2.3e-13).
    let grid: Vec<f64> = log_w
        .iter()
        .map(|v| (v * 2f64.powi(30)).round() / 2f64.powi(30))
        .collect();
    let shifted: Vec<f64> = grid.iter().map(|v| v - 1024.0).collect();
    let (a, c) = (summary(&grid).unwrap(), summary(&shifted).unwrap());
    assert_eq!((c.ess, c.k_hat, c.log_z_se), (a.ess, a.k_hat, a.log_z_se));
    assert!(
        (c.log_z - (a.log_z - 1024.0)).abs() <= 2.3e-13,
        "{} {}",
        a.log_z,
        c.log_z
    );
}

#[test]
fn bad_input_is_refused_with_typed_errors() {
    const N: usize = 50;
    const S: usize = scratch_len(N);
    assert_eq!(S, N);
    let good: Vec<f64> = (1..=N).map(|i| (i as f64).ln()).collect();
    let mut scratch = [0.0; S];
    assert!(pareto_k_hat(&good, &mut scratch).is_ok());
    assert!(importance_summary(&good, &mut scratch).is_ok());
    // Scratch longer than needed is fine.
    assert!(pareto_k_hat(&good, &mut [0.0; S + 7]).is_ok());

    type F = fn(&[f64], &mut [f64]) -> Result<(), Error>;
    let both: [(&str, F); 2] = [
        ("pareto_k_hat", |w, s| pareto_k_hat(w, s).map(|_| ())),
        ("importance_summary", |w, s| {
            importance_summary(w, s).map(|_| ())
        }),
    ];
    for (name, f) in both {
        let check = |w: &[f64], s: &mut [f64], want: Error| {
            assert_eq!(f(w, s), Err(want), "{name} {w:?}");
        };
        check(&[], &mut [], Error::EmptyBatch);
        let mut bad = good.clone();
        bad[7] = f64::NAN;
        check(&bad, &mut scratch, Error::NonFinite);
        bad[7] = f64::INFINITY;
        check(&bad, &mut scratch, Error::NonFinite);
        check(
            &[f64::NEG_INFINITY; N],
            &mut scratch,
            Error::DegenerateWeights,
        );
        check(
            &good,
            &mut scratch[..N - 1],
            Error::BufferTooSmall {
                needed: N,
                actual: N - 1,
            },
        );
        // Below n = 21 the tail has fewer than 5 points; at 21 it has 5. Where no tail can
        // be fitted, pareto_k_hat refuses and importance_summary reports k̂ as None.
        let tailless = |w: &[f64], s: &mut [f64]| {
            if name == "pareto_k_hat" {
                check(w, s, Error::DegenerateWeights);
            } else {
                let got = importance_summary(w, s).unwrap();
                assert_eq!(got.k_hat, None, "{w:?}");
                assert!(got.log_z.is_finite() && got.ess >= 1.0);
            }
        };
        tailless(&good[..20], &mut scratch);
        assert!(f(&good[..21], &mut scratch).is_ok(), "{name}");
        // Equal weights: nothing lies strictly above the threshold.
        tailless(&[-3.0; N], &mut scratch);
        // Only 4 non-zero weights: the tail stops at the zeros.
        let mut sparse = [f64::NEG_INFINITY; N];
        sparse[..4].copy_from_slice(&[0.0, 1.0, 2.0, 3.0]);
        tailless(&sparse, &mut scratch);
        // −∞ is a zero weight, not an error.
        let mut zeros = good.clone();
        zeros[3] = f64::NEG_INFINITY;
        assert!(f(&zeros, &mut scratch).is_ok(), "{name}");
        // Weights more than e^708 below the largest are zero in f64 and leave the tail too.
        let mut far = [-1e6; N];
        far[..4].copy_from_slice(&[0.0, 1.0, 2.0, 3.0]);
        tailless(&far, &mut scratch);
    }
    assert_eq!(
        pareto_k_hat(&[f64::NAN], &mut []),
        Err(Error::NonFinite),
        "input is checked before the scratch length"
    );
}

/// `kl` estimates KL(p‖g) from draws of g: g = N(0, 1), p = N(μ, s²) has
/// KL(p‖g) = −ln s + (s² + μ²)/2 − ½ in closed form.
#[test]
fn kl_estimate_matches_the_closed_form() {
    let mut r = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(21);
    let mut draws = Draws::new(&mut r);
    let n = 200_000;
    for (mu, s) in [(0.3, 1.0), (0.5, 0.8), (0.0, 0.9)] {
        let log_w: Vec<f64> = (0..n)
            .map(|_| {
                let x = draws.normal();
                let lp = -0.5 * ((x - mu) / s) * ((x - mu) / s) - f64::ln(s);
                let lg = -0.5 * x * x;
                lp - lg
            })
            .collect();
        let mut scratch = vec![0.0; n];
        let got = importance_summary(&log_w, &mut scratch).unwrap().kl;
        let want = -f64::ln(s) + (s * s + mu * mu) / 2.0 - 0.5;
        assert!(
            (got - want).abs() < 0.05 * want + 2e-3,
            "μ {mu} s {s}: {got} vs {want}"
        );
    }
}
