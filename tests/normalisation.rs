//! For D = 2 with random parameters, ∫ exp(log q) over a fine grid is 1 within 1e-3, for both
//! bases.

mod common;
use common::*;
use lwflow::{BaseKind, Flow, Shape};

fn integral(shape: Shape, seed: u64) -> f64 {
    let params: Vec<f64> = random_params(&shape, seed, 0.2);
    let flow = Flow::new(shape, &params).unwrap();
    let mut ws = vec![0.0; shape.eval_workspace_len()];
    // Midpoint rule on [-12, 12]² with 1200² cells (h = 0.02), one grid row per call.
    let (lo, hi, n) = (-12.0, 12.0, 1200usize);
    let h = (hi - lo) / n as f64;
    let mut row = vec![0.0; 2 * n];
    let mut lp = vec![0.0; n];
    let mut total = 0.0;
    for i in 0..n {
        let y = lo + (i as f64 + 0.5) * h;
        for j in 0..n {
            row[2 * j] = lo + (j as f64 + 0.5) * h;
            row[2 * j + 1] = y;
        }
        flow.log_prob(&row, &mut lp, &mut ws).unwrap();
        total += lp.iter().map(|v| v.exp()).sum::<f64>();
    }
    total * h * h
}

#[test]
fn density_integrates_to_one_gaussian_base() {
    let z = integral(Shape::new(2, 8, 4), 5);
    assert!((z - 1.0).abs() < 1e-3, "integral {z}");
}

#[test]
fn density_integrates_to_one_mixture_base() {
    let z = integral(Shape::new(2, 8, 4).with_base(BaseKind::Mixture(3)), 6);
    assert!((z - 1.0).abs() < 1e-3, "integral {z}");
}
