//! Metrics against closed forms: W1 of shifted and weighted empirical distributions, KL of two
//! Gaussians (analytic) estimated from exact samples and from weighted prior samples, bridge
//! mass of known sample sets.

mod common;
use lwflow::rand_core::SeedableRng;
use lwflow::Error;
use lwflow_tasks::{metrics::*, Draws, Task};
use rand_xoshiro::Xoshiro256PlusPlus;

#[test]
fn wasserstein1_matches_closed_forms() {
    // A shift by c moves every quantile by c: W1 = |c|.
    let mut a: Vec<(f64, f64)> = (0..100).map(|i| (i as f64 * 0.37 % 5.0, 1.0)).collect();
    let mut b: Vec<(f64, f64)> = a.iter().map(|&(v, w)| (v + 0.25, w)).collect();
    assert!((wasserstein1(&mut a, &mut b).unwrap() - 0.25).abs() < 1e-12);
    // Point masses: W1(δ0, ½δ0 + ½δ2) = 1; weights need not be normalised.
    let mut a = vec![(0.0, 3.0)];
    let mut b = vec![(0.0, 0.5), (2.0, 0.5)];
    assert!((wasserstein1(&mut a, &mut b).unwrap() - 1.0).abs() < 1e-12);
    // Zero-weight points do not count; symmetric.
    let mut a = vec![(0.0, 1.0), (100.0, 0.0)];
    let mut b = vec![(1.0, 2.0)];
    assert!((wasserstein1(&mut a, &mut b).unwrap() - 1.0).abs() < 1e-12);
    assert!((wasserstein1(&mut b, &mut a).unwrap() - 1.0).abs() < 1e-12);
    // Average over marginals: dimension 0 shifted by 1, dimension 1 identical.
    let xa: Vec<f64> = (0..50).flat_map(|i| [i as f64, -(i as f64)]).collect();
    let xb: Vec<f64> = (0..50)
        .flat_map(|i| [i as f64 + 1.0, -(i as f64)])
        .collect();
    let (mut sa, mut sb) = (vec![(0.0, 0.0); 50], vec![(0.0, 0.0); 50]);
    let w = average_marginal_w1(&xa, None, &xb, None, 2, &mut sa, &mut sb).unwrap();
    assert!((w - 0.5).abs() < 1e-12);
    assert_eq!(
        wasserstein1(&mut [], &mut [(0.0, 1.0)]),
        Err(Error::EmptyBatch)
    );
    assert_eq!(
        wasserstein1(&mut [(f64::NAN, 1.0)], &mut [(0.0, 1.0)]),
        Err(Error::NonFinite)
    );
    assert_eq!(
        wasserstein1(&mut [(0.0, 0.0)], &mut [(0.0, 1.0)]),
        Err(Error::DegenerateWeights)
    );
}

/// KL(N(0,1) ‖ N(m, s²)) = ln s + (1 + m²)/(2s²) − ½.
fn kl_gauss(m: f64, s: f64) -> f64 {
    s.ln() + (1.0 + m * m) / (2.0 * s * s) - 0.5
}

fn log_normal(x: f64, m: f64, s: f64) -> f64 {
    -0.5 * ((x - m) / s).powi(2) - s.ln() - 0.918_938_533_204_672_8
}

#[test]
fn kl_estimators_match_the_analytic_value() {
    let (m, s) = (0.3, 1.4);
    let want = kl_gauss(m, s);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
    let mut draws = Draws::new(&mut rng);
    let n = 200_000;
    // Exact samples of p = N(0, 1).
    let x: Vec<f64> = (0..n).map(|_| draws.normal()).collect();
    let lp: Vec<f64> = x.iter().map(|&v| log_normal(v, 0.0, 1.0)).collect();
    let lq: Vec<f64> = x.iter().map(|&v| log_normal(v, m, s)).collect();
    let kl = kl_from_posterior_samples(&lp, &lq).unwrap();
    assert!((kl - want).abs() < 0.01, "{kl} vs {want}");
    // Weighted samples from a uniform proposal on [-8, 8] with an unnormalised target.
    let u: Vec<f64> = (0..n).map(|_| -8.0 + 16.0 * draws.uniform()).collect();
    let target: Vec<f64> = u.iter().map(|&v| log_normal(v, 0.0, 1.0) + 12.0).collect();
    let proposal = vec![-(16.0f64).ln(); n];
    let lq: Vec<f64> = u.iter().map(|&v| log_normal(v, m, s)).collect();
    let kl = kl_from_weighted_samples(&target, &proposal, &lq).unwrap();
    assert!((kl - want).abs() < 0.01, "{kl} vs {want}");
    assert!(matches!(
        kl_from_posterior_samples(&lp, &lq[1..]),
        Err(Error::LengthMismatch { .. })
    ));
}

#[test]
fn bridge_mass_counts_low_density_samples() {
    let task = Task::T2D2;
    let peak = task.log_peak();
    // Modes, the midpoint (a bridge), and far away.
    let pts = [[-2.5, 0.0], [2.5, 0.0], [0.0, 0.0], [-2.5, 0.1], [5.9, 5.9]];
    let lp: Vec<f64> = pts.iter().map(|p| task.log_posterior(p)).collect();
    assert!((bridge_mass(&lp, peak).unwrap() - 0.4).abs() < 1e-12);
    // Exact samples have the tail share that docs/TASKS.md lists (0.11 % for 2D2, n = 2e4).
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
    let mut draws = Draws::new(&mut rng);
    let mut row = [0.0; 2];
    let lp: Vec<f64> = (0..20_000)
        .map(|_| {
            task.sample_posterior(&mut draws, &mut row);
            task.log_posterior(&row)
        })
        .collect();
    let b = bridge_mass(&lp, peak).unwrap();
    // P(χ²₂ > 2 ln 1000) = 1e-3, so the exact share is 0.1 %; 4σ at n = 2e4 is 0.09 %.
    assert!((b - 0.001).abs() < 0.0009, "{b}");
}

#[test]
fn tasks_are_normalised_posteriors() {
    // Midpoint rule over the box: ∫ p = 1 for every 2-D task (Z from docs/TASKS.md).
    for task in Task::ALL.into_iter().filter(|t| t.dim() == 2) {
        let n = 1200;
        let h = 12.0 / n as f64;
        let mut total = 0.0;
        for i in 0..n {
            for j in 0..n {
                let p = [-6.0 + (i as f64 + 0.5) * h, -6.0 + (j as f64 + 0.5) * h];
                total += task.log_posterior(&p).exp();
            }
        }
        total *= h * h;
        assert!((total - 1.0).abs() < 1e-4, "{}: ∫p = {total}", task.name());
    }
}
