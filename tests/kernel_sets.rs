//! The kernel sets chosen at run time (`lwflow::kernels`) compute the same bits as the
//! portable set: batch and single-sample log_prob, the loss and its gradient, sampling, for
//! both precisions and shapes that reach every block size (hidden widths 8–64 and odd ones,
//! D = 2 to 10, both activations), with every set this CPU supports (it prints which). On a CPU
//! without AVX2 only the refusal of the sets it lacks is checked. One test in its own binary:
//! the kernel choice is process-wide.

use lwflow::kernels::{detect, kernels, use_kernels, Kernels};
use lwflow::rand_core::SeedableRng;
use lwflow::{init_params, Activation, BaseKind, Flow, Real, Shape};
use rand_xoshiro::Xoshiro256PlusPlus;

/// Everything one shape computes, as bits.
fn outputs<T: Real>(shape: &Shape) -> Vec<u64> {
    let d = shape.dim;
    let n = 37;
    let mut params = vec![T::ZERO; shape.param_len()];
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
    init_params(shape, &mut params, &mut rng).unwrap();
    // Non-zero couplings (init leaves the last layer at zero): perturb every parameter.
    for (i, p) in params.iter_mut().enumerate() {
        *p += T::from_f64(0.05 * ((i * 7919 % 211) as f64 / 211.0 - 0.5));
    }
    let flow = Flow::new(*shape, &params).unwrap();
    let theta: Vec<T> = (0..n * d)
        .map(|i| T::from_f64(((i * 37 % 101) as f64 / 101.0 - 0.5) * 4.0))
        .collect();
    let weights: Vec<T> = (0..n).map(|i| T::from_f64(0.5 + (i % 3) as f64)).collect();
    let mut ws = vec![T::ZERO; shape.workspace_len()];
    let mut out = Vec::new();

    let mut log_q = vec![T::ZERO; n];
    flow.log_prob(&theta, &mut log_q, &mut ws).unwrap();
    out.extend(log_q.iter().map(|v| v.to_f64().to_bits()));
    for row in theta.chunks(d).take(5) {
        let mut one = [T::ZERO; 1];
        flow.log_prob(row, &mut one, &mut ws).unwrap();
        out.push(one[0].to_f64().to_bits());
    }
    let mut grad = vec![T::ZERO; shape.param_len()];
    let loss = flow
        .loss_and_gradient(&theta, &weights, &mut grad, &mut ws)
        .unwrap();
    out.push(loss.to_f64().to_bits());
    out.extend(grad.iter().map(|v| v.to_f64().to_bits()));
    let (mut draws, mut draw_log_q) = (vec![T::ZERO; n * d], vec![T::ZERO; n]);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(9);
    flow.sample(&mut rng, &mut draws, &mut draw_log_q, &mut ws)
        .unwrap();
    out.extend(
        draws
            .iter()
            .chain(&draw_log_q)
            .map(|v| v.to_f64().to_bits()),
    );
    out
}

fn shapes() -> Vec<Shape> {
    let mut v = Vec::new();
    for (d, h, c) in [
        (2, 64, 4),
        (3, 32, 2),
        (5, 24, 3),
        (10, 16, 2),
        (2, 8, 2),
        (7, 33, 2),
    ] {
        v.push(Shape::new(d, h, c));
        v.push(
            Shape::new(d, h, c)
                .with_activation(Activation::Tanh)
                .with_base(BaseKind::Mixture(3)),
        );
    }
    v
}

#[test]
fn every_kernel_set_computes_the_portable_bits() {
    let detected = detect();
    eprintln!("kernel set detected on this machine: {detected:?}");
    assert_eq!(kernels(), detected);
    use_kernels(Kernels::Portable).unwrap();
    assert_eq!(kernels(), Kernels::Portable);
    let portable: Vec<_> = shapes()
        .iter()
        .map(|s| (outputs::<f32>(s), outputs::<f64>(s)))
        .collect();
    let mut checked = 0;
    for set in [Kernels::Avx2, Kernels::Avx512] {
        if use_kernels(set).is_err() {
            eprintln!("{set:?}: not supported here, refused");
            assert_ne!(detected, set);
            continue;
        }
        assert_eq!(kernels(), set);
        for (s, (f32_bits, f64_bits)) in shapes().iter().zip(&portable) {
            assert_eq!(&outputs::<f32>(s), f32_bits, "{set:?} f32 {s:?}");
            assert_eq!(&outputs::<f64>(s), f64_bits, "{set:?} f64 {s:?}");
        }
        checked += 1;
    }
    eprintln!("kernel sets checked against the portable one: {checked}");
    use_kernels(detected).unwrap();
    assert_eq!(kernels(), detected);
}
