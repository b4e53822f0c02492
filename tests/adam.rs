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

/// `step_finite` writes exactly what `step` writes, and refuses (changing nothing) an update
/// that would overflow a parameter or a moment.
#[test]
fn step_finite_matches_step_and_refuses_overflow() {
    let shape = Shape::new(2, 4, 2).with_base(BaseKind::Gaussian);
    let p = shape.param_len();
    let adam = Adam::default();
    let start: Vec<f64> = (0..p).map(|i| 0.01 * i as f64 - 0.2).collect();
    let grad: Vec<f64> = (0..p).map(|i| 0.3 - 0.002 * i as f64).collect();
    let (mut a, mut b) = (start.clone(), start.clone());
    let (mut sa, mut sb) = (vec![0.0; 2 * p], vec![0.0; 2 * p]);
    for t in 1..=3 {
        adam.step(&shape, &mut a, &grad, &mut sa, t).unwrap();
        adam.step_finite(&shape, &mut b, &grad, &mut sb, t).unwrap();
    }
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&a), bits(&b));
    assert_eq!(bits(&sa), bits(&sb));

    let (keep, keep_state) = (b.clone(), sb.clone());
    let huge = Adam { lr: 1e308, ..adam };
    assert_eq!(
        huge.step_finite(&shape, &mut b, &grad, &mut sb, 4),
        Err(lwflow::Error::NonFinite)
    );
    assert_eq!(bits(&b), bits(&keep));
    assert_eq!(bits(&sb), bits(&keep_state));
    // A gradient whose square overflows the second moment is refused too.
    let mut big = grad.clone();
    big[1] = 1e200;
    assert_eq!(
        adam.step_finite(&shape, &mut b, &big, &mut sb, 4),
        Err(lwflow::Error::NonFinite)
    );
    assert_eq!(bits(&b), bits(&keep));
    // The plain step does store the overflow: the reason step_finite exists.
    huge.step(&shape, &mut a, &grad, &mut sa, 4).unwrap();
    assert!(a.iter().any(|v| !v.is_finite()));
}
