//! Adam against a hand-computed reference (torch's formulas, evaluated step by step in f64
//! here), and weight decay restricted to the coupling parameters.

use lwflow::{Adam, BaseKind, Shape};

#[test]
fn adam_matches_hand_computed_steps() {
    let shape = Shape::new(2, 1, 1).with_base(BaseKind::Gaussian);
    let p = shape.param_len();
    let adam = Adam {
        lr: 0.1,
        beta1: 0.9,
        beta2: 0.99,
        eps: 1e-8,
        weight_decay: 0.5,
    };
    let mut params: Vec<f64> = (0..p).map(|i| 0.1 * i as f64 - 0.3).collect();
    let mut state = vec![0.0; 2 * p];
    let grads = [0.7, -1.3, 0.05];
    // Reference: per parameter, m, v and φ by the textbook recursion.
    let mut r_params = params.clone();
    let (mut m, mut v) = (vec![0.0; p], vec![0.0; p]);
    for (t, &g0) in grads.iter().enumerate() {
        let t = t as u64 + 1;
        let grad: Vec<f64> = (0..p).map(|i| g0 * (1.0 + 0.1 * i as f64)).collect();
        adam.step(&shape, &mut params, &grad, &mut state, t)
            .unwrap();
        for i in 0..p {
            let decay = if i < shape.flow_param_len() {
                adam.weight_decay * r_params[i]
            } else {
                0.0
            };
            let g = grad[i] + decay;
            m[i] = 0.9 * m[i] + 0.1 * g;
            v[i] = 0.99 * v[i] + 0.01 * g * g;
            let mh = m[i] / (1.0 - 0.9f64.powi(t as i32));
            let vh = v[i] / (1.0 - 0.99f64.powi(t as i32));
            r_params[i] -= 0.1 * mh / (vh.sqrt() + 1e-8);
        }
    }
    for (a, b) in params.iter().zip(&r_params) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
    // The first step moves every parameter by ≈ lr·sign(g): a sanity anchor independent of
    // the recursion above.
    let mut fresh = vec![0.0f64; p];
    let mut st = vec![0.0; 2 * p];
    Adam {
        weight_decay: 0.0,
        ..adam
    }
    .step(&shape, &mut fresh, &vec![-3.0; p], &mut st, 1)
    .unwrap();
    assert!(fresh.iter().all(|&x| (x - 0.1).abs() < 1e-8));
}
