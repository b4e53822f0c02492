//! inverse ∘ forward = id, forward log-det = −inverse log-det, and the log-det equals
//! log|det J| of a finite-difference Jacobian.

mod common;
use common::*;
use lwflow::{Activation, BaseKind, Flow, Real, Shape};

fn shapes() -> [Shape; 4] {
    [
        Shape::new(2, 16, 6),
        Shape::new(3, 8, 4).with_base(BaseKind::Mixture(2)),
        Shape::new(5, 12, 5)
            .with_activation(Activation::Tanh)
            .with_clamp(0.0),
        Shape::new(6, 10, 3).with_hidden_layers(3).with_clamp(1.0),
    ]
}

fn round_trip<T: Real>(shape: Shape, seed: u64, tol: f64) {
    let params: Vec<T> = random_params(&shape, seed, 0.3);
    let flow = Flow::new(shape, &params).unwrap();
    let n = 53;
    let z: Vec<T> = random_points(n, shape.dim, seed + 1, 3.0);
    let mut ws = vec![T::ZERO; shape.eval_workspace_len()];
    let (mut x, mut z2) = (vec![T::ZERO; z.len()], vec![T::ZERO; z.len()]);
    let (mut ld_f, mut ld_i) = (vec![T::ZERO; n], vec![T::ZERO; n]);
    flow.forward(&z, &mut x, &mut ld_f, &mut ws).unwrap();
    flow.inverse(&x, &mut z2, &mut ld_i, &mut ws).unwrap();
    for (a, b) in z.iter().zip(&z2) {
        assert!(
            (a.to_f64() - b.to_f64()).abs() <= tol * (1.0 + a.to_f64().abs()),
            "{shape:?}: z {a} -> {b}"
        );
    }
    for (f, i) in ld_f.iter().zip(&ld_i) {
        assert!(
            (f.to_f64() + i.to_f64()).abs() <= tol * (1.0 + f.to_f64().abs()),
            "{shape:?}: log-dets {f} vs {i}"
        );
    }
    // The parameters are random, so the map is far from the identity.
    let moved = z
        .iter()
        .zip(&x)
        .map(|(a, b)| (a.to_f64() - b.to_f64()).abs())
        .fold(0.0, f64::max);
    assert!(
        moved > 0.1,
        "{shape:?}: flow is nearly the identity ({moved})"
    );
}

#[test]
fn inverse_of_forward_is_identity_f64() {
    for (i, s) in shapes().into_iter().enumerate() {
        round_trip::<f64>(s, 10 + i as u64, 1e-12);
    }
}

#[test]
fn inverse_of_forward_is_identity_f32() {
    for (i, s) in shapes().into_iter().enumerate() {
        round_trip::<f32>(s, 20 + i as u64, 1e-5);
    }
}

/// log|det| of a D×D matrix by Gaussian elimination with partial pivoting.
fn log_abs_det(mut m: Vec<f64>, d: usize) -> f64 {
    let mut acc = 0.0;
    for c in 0..d {
        let p = (c..d)
            .max_by(|&a, &b| m[a * d + c].abs().total_cmp(&m[b * d + c].abs()))
            .unwrap();
        if p != c {
            for k in 0..d {
                m.swap(c * d + k, p * d + k);
            }
        }
        let piv = m[c * d + c];
        acc += piv.abs().ln();
        for r in c + 1..d {
            let f = m[r * d + c] / piv;
            for k in c..d {
                m[r * d + k] -= f * m[c * d + k];
            }
        }
    }
    acc
}

#[test]
fn log_det_matches_finite_difference_jacobian() {
    for (si, shape) in shapes().into_iter().enumerate() {
        let d = shape.dim;
        let params: Vec<f64> = random_params(&shape, 30 + si as u64, 0.3);
        let flow = Flow::new(shape, &params).unwrap();
        let mut ws = vec![0.0; shape.eval_workspace_len()];
        let points: Vec<f64> = random_points(5, d, 40 + si as u64, 2.0);
        for z in points.chunks(d) {
            let mut x = vec![0.0; d];
            let mut ld = [0.0];
            flow.forward(z, &mut x, &mut ld, &mut ws).unwrap();
            // Central differences, column j = ∂f/∂z_j.
            let h = 1e-6;
            let mut jac = vec![0.0; d * d];
            for j in 0..d {
                let (mut zp, mut zm) = (z.to_vec(), z.to_vec());
                zp[j] += h;
                zm[j] -= h;
                let (mut xp, mut xm) = (vec![0.0; d], vec![0.0; d]);
                flow.forward(&zp, &mut xp, &mut [0.0], &mut ws).unwrap();
                flow.forward(&zm, &mut xm, &mut [0.0], &mut ws).unwrap();
                for i in 0..d {
                    jac[i * d + j] = (xp[i] - xm[i]) / (2.0 * h);
                }
            }
            let fd = log_abs_det(jac, d);
            assert!(
                (fd - ld[0]).abs() < 1e-6,
                "{shape:?}: log-det {} vs finite differences {fd}",
                ld[0]
            );
        }
    }
}

/// Shapes that reach every branch of the single-sample kernels: output blocks of 64/32/16/8
/// and a remainder, conditioner outputs 2, 4, 6 (the folded few-output path) and 8, odd
/// numbers of inputs, both bases and activations.
fn single_sample_shapes() -> [Shape; 6] {
    [
        Shape::new(2, 64, 8),
        Shape::new(3, 16, 4).with_base(lwflow::BaseKind::Mixture(2)),
        Shape::new(6, 20, 3).with_activation(lwflow::Activation::Tanh),
        Shape::new(9, 40, 2),
        Shape::new(5, 24, 2).with_base(lwflow::BaseKind::StandardNormal),
        Shape::new(7, 13, 2).with_activation(lwflow::Activation::Tanh),
    ]
}

/// The single-sample log_prob path (matrix–vector kernels) agrees with the tiled batch path:
/// to 1e-12 in f64 (same library functions), and to 2e-5 relative in f32 (scalar library
/// `exp`/`tanh` against the lane polynomials).
fn single_matches_batch<T: Real>(tol: f64) {
    for shape in single_sample_shapes() {
        let params: Vec<T> = random_params(&shape, 11, 0.2);
        let flow = Flow::new(shape, &params).unwrap();
        let n = 37;
        let theta: Vec<T> = random_points(n, shape.dim, 12, 3.0);
        let mut ws = vec![T::ZERO; shape.eval_workspace_len()];
        let mut batch = vec![T::ZERO; n];
        flow.log_prob(&theta, &mut batch, &mut ws).unwrap();
        for (row, &b) in theta.chunks(shape.dim).zip(&batch) {
            let mut one = [T::ZERO];
            flow.log_prob(row, &mut one, &mut ws).unwrap();
            let (one, b) = (one[0].to_f64(), b.to_f64());
            assert!(
                (one - b).abs() <= tol * (1.0 + b.abs()),
                "{shape:?}: {one} vs {b}"
            );
        }
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "hundreds of batch evaluations: over 15 minutes under Miri"
)]
fn single_sample_log_prob_matches_batch() {
    single_matches_batch::<f64>(1e-12);
    single_matches_batch::<f32>(2e-5);
}
