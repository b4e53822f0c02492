//! Recompute mode: the gradient rebuilt from the invertible flow equals the stored mode's,
//! with a workspace that does not grow with the number of couplings.

mod common;
use common::*;
use lwflow::{Activation, BaseKind, Error, Flow, Shape};

#[test]
fn recompute_gradient_matches_stored() {
    for shape in [
        Shape::new(2, 64, 8),
        Shape::new(3, 8, 4).with_base(BaseKind::Mixture(2)),
        Shape::new(5, 12, 5)
            .with_activation(Activation::Tanh)
            .with_clamp(0.0),
        Shape::new(6, 16, 3).with_base(BaseKind::StandardNormal),
    ] {
        let params: Vec<f64> = random_params(&shape, 21, 0.2);
        let flow = Flow::new(shape, &params).unwrap();
        let n = 77;
        let theta: Vec<f64> = random_points(n, shape.dim, 22, 3.0);
        let weights: Vec<f64> = (0..n).map(|i| 0.25 + (i % 5) as f64 * 0.3).collect();
        let mut ws = vec![0.0; shape.workspace_len()];
        let mut g_stored = vec![0.0; shape.param_len()];
        let l_stored = flow
            .loss_and_gradient(&theta, &weights, &mut g_stored, &mut ws)
            .unwrap();
        let mut ws_small = vec![0.0; shape.recompute_workspace_len()];
        let mut g_re = vec![0.0; shape.param_len()];
        let l_re = flow
            .loss_and_gradient_recompute(&theta, &weights, &mut g_re, &mut ws_small)
            .unwrap();
        assert!((l_stored - l_re).abs() <= 1e-12 * l_stored.abs().max(1.0));
        let scale = g_stored.iter().fold(0.0f64, |a, g| a.max(g.abs()));
        for (a, b) in g_stored.iter().zip(&g_re) {
            assert!((a - b).abs() <= 1e-9 * scale, "{shape:?}: {a} vs {b}");
        }
        assert!(shape.recompute_workspace_len() < shape.workspace_len());
        // One element short is refused, as for the stored mode.
        let mut short = vec![0.0; shape.recompute_workspace_len() - 1];
        assert!(matches!(
            flow.loss_and_gradient_recompute(&theta, &weights, &mut g_re, &mut short),
            Err(Error::BufferTooSmall { .. })
        ));
    }
}
