//! Analytic gradients against central finite differences (f64), for every parameter of the
//! flow and the base.

mod common;
use common::*;
use lwflow::{Activation, BaseKind, Flow, Shape};

fn loss(shape: Shape, params: &[f64], theta: &[f64], w: &[f64]) -> f64 {
    let mut ws = vec![0.0; shape.eval_workspace_len()];
    let mut lp = vec![0.0; w.len()];
    Flow::new(shape, params)
        .unwrap()
        .log_prob(theta, &mut lp, &mut ws)
        .unwrap();
    -lp.iter().zip(w).map(|(l, w)| l * w).sum::<f64>() / w.len() as f64
}

/// Max relative error |a − f| / max(|a|, |f|, 1e-4) over all parameters. The floor keeps
/// parameters with a vanishing gradient from dividing by ~0: below 1e-4 the check is an
/// absolute one, |a − f| ≤ 1e-10, about the rounding noise of the finite difference.
///
/// The step is 1e-5 for ReLU (a larger step crosses kinks) and 1e-3 for tanh (smooth, so the
/// five-point stencil's O(h⁴) truncation is negligible and rounding noise is 100× smaller).
fn max_rel_error(shape: Shape, seed: u64, n: usize) -> f64 {
    let params: Vec<f64> = random_params(&shape, seed, 0.3);
    let theta: Vec<f64> = random_points(n, shape.dim, seed + 1, 2.5);
    let w: Vec<f64> = random_points(n, 1, seed + 2, 1.0)
        .iter()
        .map(|v| v + 1.0)
        .collect();
    let mut grad = vec![0.0; shape.param_len()];
    let mut ws = vec![0.0; shape.workspace_len()];
    let flow = Flow::new(shape, &params).unwrap();
    let l = flow
        .loss_and_gradient(&theta, &w, &mut grad, &mut ws)
        .unwrap();
    assert!(
        (l - loss(shape, &params, &theta, &w)).abs() < 1e-12,
        "loss value differs from log_prob"
    );
    // Five-point central stencil: truncation O(h⁴), rounding O(ε/h).
    let h = match shape.activation {
        Activation::Relu => 1e-5,
        Activation::Tanh => 1e-3,
    };
    let mut worst: f64 = 0.0;
    for i in 0..params.len() {
        let mut p = params.clone();
        let mut at = |step: f64| {
            p[i] = params[i] + step;
            loss(shape, &p, &theta, &w)
        };
        let fd = (-at(2.0 * h) + 8.0 * at(h) - 8.0 * at(-h) + at(-2.0 * h)) / (12.0 * h);
        let rel = (grad[i] - fd).abs() / grad[i].abs().max(fd.abs()).max(1e-4);
        assert!(rel.is_finite());
        if rel > worst && std::env::var("GRAD_DEBUG").is_ok() {
            eprintln!(
                "param {i}/{}: analytic {:e} fd {:e} rel {rel:e}",
                params.len(),
                grad[i],
                fd
            );
        }
        worst = worst.max(rel);
    }
    worst
}

#[test]
fn gradient_matches_finite_differences_gmm_relu() {
    // The configuration: D = 3, L = 4, H = 8, GMM base K = 2; 37 samples (3 tiles,
    // the last one partial).
    let shape = Shape::new(3, 8, 4).with_base(BaseKind::Mixture(2));
    let e = max_rel_error(shape, 11, 37);
    eprintln!("max relative error {e:e}");
    assert!(e <= 1e-6, "max relative error {e:e}");
}

#[test]
fn gradient_matches_finite_differences_other_configurations() {
    let cases = [
        Shape::new(3, 8, 4)
            .with_base(BaseKind::Mixture(2))
            .with_activation(Activation::Tanh),
        Shape::new(2, 5, 3)
            .with_base(BaseKind::Gaussian)
            .with_clamp(0.0),
        Shape::new(5, 6, 2)
            .with_base(BaseKind::StandardNormal)
            .with_hidden_layers(3)
            .with_activation(Activation::Tanh),
        Shape::new(4, 7, 2)
            .with_base(BaseKind::Mixture(3))
            .with_hidden_layers(1)
            .with_clamp(1.5),
    ];
    for (i, shape) in cases.into_iter().enumerate() {
        let e = max_rel_error(shape, 100 + i as u64, 21);
        assert!(e <= 1e-6, "case {i} {shape:?}: max relative error {e:e}");
    }
}

#[test]
fn gradient_matches_finite_differences_through_the_sample_major_paths() {
    // Widths that are whole tiles (32, 64) take the weight gradient through transposed blocks:
    // the hidden layers' outputs (and their bias gradient from the transposed rows, also for the
    // one-input first layer of D = 2) and the output layer through its transposed inputs; 33
    // mixes a whole block with a remainder that takes the lane-dot path (tanh: with ReLU this
    // seed's finite differences cross a kink, 2e-6 before and after the sample-major paths).
    // 37 samples: the last tile is partial.
    let cases = [
        Shape::new(2, 32, 2).with_base(BaseKind::Mixture(2)),
        Shape::new(4, 64, 1)
            .with_base(BaseKind::Gaussian)
            .with_activation(Activation::Tanh),
        Shape::new(3, 33, 2)
            .with_base(BaseKind::StandardNormal)
            .with_activation(Activation::Tanh),
    ];
    for (i, shape) in cases.into_iter().enumerate() {
        let e = max_rel_error(shape, 200 + i as u64, 37);
        eprintln!("case {i} {shape:?}: max relative error {e:e}");
        assert!(e <= 1e-6, "case {i} {shape:?}: max relative error {e:e}");
    }
}
