//! Table-driven bad input: every case returns its documented error, never panics, and leaves
//! the outputs untouched. Plus every single-byte corruption and every truncation of a saved
//! model.

mod common;
use common::*;
use lwflow::{format, Adam, BaseKind, Error, Flow, FormatError, Shape, ShapeError};

#[test]
fn invalid_shapes_are_refused() {
    let cases: [(Shape, ShapeError); 8] = [
        (Shape::new(1, 8, 2), ShapeError::Dim),
        (Shape::new(0, 8, 2), ShapeError::Dim),
        (Shape::new(2, 0, 2), ShapeError::Hidden),
        (Shape::new(2, 8, 0), ShapeError::Couplings),
        (
            Shape::new(2, 8, 2).with_hidden_layers(0),
            ShapeError::HiddenLayers,
        ),
        (
            Shape::new(2, 8, 2).with_base(BaseKind::Mixture(0)),
            ShapeError::Components,
        ),
        (Shape::new(2, 8, 2).with_clamp(f32::NAN), ShapeError::Clamp),
        (Shape::new(2, 1 << 20, 2), ShapeError::TooLarge),
    ];
    for (shape, want) in cases {
        assert_eq!(shape.validate(), Err(want), "{shape:?}");
        assert_eq!(
            Flow::<f64>::new(shape, &[]).err(),
            Some(Error::InvalidShape(want))
        );
    }
    assert_eq!(
        Shape::new(2, 8, 2).with_clamp(-1.0).validate(),
        Err(ShapeError::Clamp)
    );
    assert_eq!(
        Shape::new(2, 8, 2).with_clamp(f32::INFINITY).validate(),
        Err(ShapeError::Clamp)
    );
    // One clamp rule: +0.0 (off) or a positive normal finite f32.
    for bad in [-0.0f32, 1e-42, f32::MIN_POSITIVE / 2.0, f32::from_bits(1)] {
        assert_eq!(
            Shape::new(2, 8, 2).with_clamp(bad).validate(),
            Err(ShapeError::Clamp),
            "{bad:e}"
        );
    }
    for good in [0.0f32, f32::MIN_POSITIVE, 3.0, f32::MAX] {
        assert_eq!(Shape::new(2, 8, 2).with_clamp(good).validate(), Ok(()));
    }
    // Huge extents saturate instead of overflowing (no panic in the const sizes).
    let huge = Shape::new(usize::MAX, usize::MAX, usize::MAX);
    assert_eq!(huge.param_len(), usize::MAX);
    assert!(huge.validate().is_err());
}

const SENTINEL: f64 = 12345.0;

#[test]
fn batch_operations_refuse_bad_buffers() {
    let shape = Shape::new(3, 8, 2).with_base(BaseKind::Mixture(2));
    let params: Vec<f64> = random_params(&shape, 1, 0.2);
    let flow = Flow::new(shape, &params).unwrap();
    let theta: Vec<f64> = random_points(10, 3, 2, 2.0);
    let ok_ws = shape.workspace_len();
    let mismatch = |e: usize, a: usize| Error::LengthMismatch {
        expected: e,
        actual: a,
    };

    // (description, theta, out len, ws len, expected error)
    let mut nan_theta = theta.clone();
    nan_theta[7] = f64::NAN;
    let mut inf_theta = theta.clone();
    inf_theta[0] = f64::NEG_INFINITY;
    let cases: Vec<(&str, Vec<f64>, usize, usize, Error)> = vec![
        ("empty batch", vec![], 0, ok_ws, Error::EmptyBatch),
        (
            "theta too short",
            theta[..29].to_vec(),
            10,
            ok_ws,
            mismatch(30, 29),
        ),
        ("theta too long", theta.clone(), 9, ok_ws, mismatch(27, 30)),
        ("out too long", theta.clone(), 11, ok_ws, mismatch(33, 30)),
        ("NaN in theta", nan_theta, 10, ok_ws, Error::NonFinite),
        ("inf in theta", inf_theta, 10, ok_ws, Error::NonFinite),
        (
            "workspace too small",
            theta.clone(),
            10,
            shape.eval_workspace_len() - 1,
            Error::BufferTooSmall {
                needed: shape.eval_workspace_len(),
                actual: shape.eval_workspace_len() - 1,
            },
        ),
    ];
    for (what, th, n_out, n_ws, want) in cases {
        let mut out = vec![SENTINEL; n_out];
        let mut ws = vec![0.0; n_ws];
        assert_eq!(
            flow.log_prob(&th, &mut out, &mut ws),
            Err(want),
            "log_prob: {what}"
        );
        assert!(
            out.iter().all(|&v| v == SENTINEL),
            "log_prob wrote on error: {what}"
        );
        let mut z = vec![SENTINEL; th.len()];
        assert_eq!(
            flow.inverse(&th, &mut z, &mut out, &mut ws),
            Err(want),
            "inverse: {what}"
        );
        assert_eq!(
            flow.forward(&th, &mut z, &mut out, &mut ws),
            Err(want),
            "forward: {what}"
        );
        assert!(
            z.iter().chain(&out).all(|&v| v == SENTINEL),
            "map wrote on error: {what}"
        );
    }

    // Sampling.
    let mut ws = vec![0.0; ok_ws];
    let mut r = rng(1);
    assert_eq!(
        flow.sample(&mut r, &mut [], &mut [], &mut ws),
        Err(Error::EmptyBatch)
    );
    assert_eq!(
        flow.sample(&mut r, &mut [0.0; 5], &mut [0.0; 2], &mut ws),
        Err(mismatch(6, 5))
    );
    assert_eq!(
        flow.sample(&mut r, &mut [0.0; 6], &mut [0.0; 2], &mut [0.0; 3]),
        Err(Error::BufferTooSmall {
            needed: shape.eval_workspace_len(),
            actual: 3
        })
    );

    // Gradient.
    let w = vec![1.0; 10];
    let mut grad = vec![SENTINEL; shape.param_len()];
    let g = |th: &[f64], w: &[f64], grad: &mut [f64], ws: &mut [f64]| {
        flow.loss_and_gradient(th, w, grad, ws)
    };
    assert_eq!(
        g(&theta, &w[..9], &mut grad, &mut ws),
        Err(mismatch(27, 30))
    );
    assert_eq!(
        g(&theta, &w, &mut grad[1..], &mut ws),
        Err(mismatch(shape.param_len(), shape.param_len() - 1))
    );
    assert_eq!(g(&[], &[], &mut grad, &mut ws), Err(Error::EmptyBatch));
    let mut w_bad = w.clone();
    w_bad[3] = f64::NAN;
    assert_eq!(g(&theta, &w_bad, &mut grad, &mut ws), Err(Error::NonFinite));
    w_bad[3] = -1.0;
    assert_eq!(
        g(&theta, &w_bad, &mut grad, &mut ws),
        Err(Error::InvalidArgument)
    );
    let mut small = vec![0.0; shape.workspace_len() - 1];
    assert_eq!(
        g(&theta, &w, &mut grad, &mut small),
        Err(Error::BufferTooSmall {
            needed: shape.workspace_len(),
            actual: shape.workspace_len() - 1
        })
    );
    assert!(
        grad.iter().all(|&v| v == SENTINEL),
        "gradient written on error"
    );

    // Parameters.
    assert_eq!(
        Flow::new(shape, &params[1..]).err(),
        Some(mismatch(params.len(), params.len() - 1))
    );
    let mut p_nan = params.clone();
    p_nan[0] = f64::INFINITY;
    assert_eq!(Flow::new(shape, &p_nan).err(), Some(Error::NonFinite));

    // Adam.
    let mut p = params.clone();
    let mut st = vec![0.0; shape.optimizer_len()];
    let adam = Adam::default();
    let mut gr = vec![0.1; shape.param_len()];
    assert_eq!(
        adam.step(&shape, &mut p, &gr, &mut st, 0),
        Err(Error::InvalidArgument)
    );
    assert_eq!(
        adam.step(&shape, &mut p, &gr, &mut st[1..], 1),
        Err(mismatch(2 * params.len(), 2 * params.len() - 1))
    );
    gr[5] = f64::NAN;
    assert_eq!(
        adam.step(&shape, &mut p, &gr, &mut st, 1),
        Err(Error::NonFinite)
    );
    assert_eq!(p, params, "Adam changed parameters on error");
    for bad in [
        Adam { lr: 0.0, ..adam },
        Adam { beta1: 1.0, ..adam },
        Adam { eps: -1.0, ..adam },
        Adam {
            weight_decay: -1.0,
            ..adam
        },
    ] {
        assert_eq!(
            bad.step(&shape, &mut p, &gr, &mut st, 1),
            Err(Error::InvalidArgument)
        );
    }
    assert_eq!(
        Adam {
            lr: f64::NAN,
            ..adam
        }
        .validate(),
        Err(Error::NonFinite)
    );
}

fn saved_model() -> (Shape, Vec<f64>, Vec<u8>) {
    let shape = Shape::new(2, 4, 2).with_base(BaseKind::Mixture(2));
    let params: Vec<f64> = random_params(&shape, 7, 0.2);
    let mut bytes = vec![0u8; format::serialized_len(&shape, 8)];
    assert_eq!(format::save(&shape, &params, &mut bytes), Ok(bytes.len()));
    (shape, params, bytes)
}

#[test]
fn model_round_trips_in_both_widths() {
    let (shape, params, bytes) = saved_model();
    let mut back = vec![0.0; params.len()];
    assert_eq!(format::load(&bytes, &mut back), Ok(shape));
    assert_eq!(back, params);
    assert_eq!(format::inspect(&bytes), Ok((shape, 8)));
    // f64 file into f32 parameters and back through an f32 file.
    let mut p32 = vec![0.0f32; params.len()];
    format::load(&bytes, &mut p32).unwrap();
    let mut b32 = vec![0u8; format::serialized_len(&shape, 4)];
    format::save(&shape, &p32, &mut b32).unwrap();
    let mut again = vec![0.0f64; params.len()];
    format::load(&b32, &mut again).unwrap();
    assert!(again
        .iter()
        .zip(&params)
        .all(|(a, b)| *a == (*b as f32) as f64));
    // CRC-32 check value of the IEEE polynomial.
    assert_eq!(format::crc32(b"123456789"), 0xCBF4_3926);
}

#[test]
fn every_truncation_and_single_byte_corruption_is_refused() {
    let (_, params, bytes) = saved_model();
    let mut out = vec![SENTINEL; params.len()];
    assert_eq!(
        format::load(&[], &mut out),
        Err(Error::Format(FormatError::Truncated))
    );
    for len in 0..bytes.len() {
        let r = format::load(&bytes[..len], &mut out);
        assert!(
            matches!(r, Err(Error::Format(FormatError::Truncated))),
            "truncation to {len}: {r:?}"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(
        format::load(&longer, &mut out),
        Err(Error::Format(FormatError::TrailingBytes))
    );
    let mut corrupted = bytes.clone();
    for at in 0..bytes.len() {
        for flip in 1..=255u8 {
            corrupted[at] = bytes[at] ^ flip;
            let r = format::load(&corrupted, &mut out);
            let e = match r {
                Err(Error::Format(e)) => e,
                other => panic!("byte {at} ^ {flip:#x}: {other:?}"),
            };
            match at {
                0..=3 => assert_eq!(e, FormatError::BadMagic),
                // A flip to version 2 (still read) is caught by the checksum instead.
                4..=5 if u16::from_le_bytes([corrupted[4], corrupted[5]]) == 2 => {
                    assert_eq!(e, FormatError::Checksum)
                }
                4..=5 => assert_eq!(e, FormatError::UnsupportedVersion),
                6 => assert!(matches!(
                    e,
                    FormatError::BadFloatWidth | FormatError::TrailingBytes
                )),
                36..=39 => assert!(matches!(
                    e,
                    FormatError::Truncated | FormatError::TrailingBytes | FormatError::BadHeader
                )),
                _ => assert_eq!(e, FormatError::Checksum, "byte {at}"),
            }
        }
        corrupted[at] = bytes[at];
    }
    assert!(
        out.iter().all(|&v| v == SENTINEL),
        "load wrote parameters on error"
    );
    // A valid checksum over an invalid header (a foreign writer) is still refused.
    let mut forged = bytes.clone();
    forged[8] = 1; // dim = 1
    let n = forged.len();
    let crc = format::crc32(&forged[..n - 4]);
    forged[n - 4..].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(
        format::load(&forged, &mut out),
        Err(Error::Format(FormatError::BadHeader))
    );
    // A future version, and version 1 (output-major weights, never released), are refused
    // before anything else.
    for version in [format::FORMAT_VERSION + 1, 1] {
        let mut other = bytes.clone();
        other[4..6].copy_from_slice(&version.to_le_bytes());
        assert_eq!(
            format::load(&other, &mut out),
            Err(Error::Format(FormatError::UnsupportedVersion)),
            "version {version}"
        );
    }
    // Wrong destination length.
    assert!(matches!(
        format::load(&bytes, &mut out[1..]),
        Err(Error::LengthMismatch { .. })
    ));
    // Saving into a short buffer.
    let mut short = vec![0u8; bytes.len() - 1];
    assert!(matches!(
        format::save(&saved_model().0, &params, &mut short),
        Err(Error::BufferTooSmall { .. })
    ));
}

#[test]
fn non_finite_parameters_in_a_file_are_refused() {
    let (shape, mut params, _) = saved_model();
    // An f64 value beyond f32 range loads into f64 but not into f32.
    params[3] = 1e300;
    let mut bytes = vec![0u8; format::serialized_len(&shape, 8)];
    format::save(&shape, &params, &mut bytes).unwrap();
    let mut p64 = vec![0.0f64; params.len()];
    assert!(format::load(&bytes, &mut p64).is_ok());
    let mut p32 = vec![7.0f32; params.len()];
    assert_eq!(
        format::load(&bytes, &mut p32),
        Err(Error::Format(FormatError::NonFiniteParameter))
    );
    assert!(p32.iter().all(|&v| v == 7.0));
}

/// A file whose clamp is −0.0 or a subnormal f32 (valid CRC) is refused by `inspect` and `load`
/// and cannot be written by `save`: the clamp rule of `Shape::validate` holds at every door.
#[test]
fn a_clamp_outside_the_one_rule_is_refused_in_files() {
    let (shape, params, bytes) = saved_model();
    for bad in [-0.0f32, 1e-42, f32::from_bits(1)] {
        let mut b = bytes.clone();
        b[32..36].copy_from_slice(&bad.to_le_bytes());
        let end = b.len() - 4;
        let crc = format::crc32(&b[..end]);
        b[end..].copy_from_slice(&crc.to_le_bytes());
        let want = Err(Error::Format(FormatError::BadHeader));
        assert_eq!(format::inspect(&b), want.map(|()| (shape, 8)), "{bad:e}");
        let mut out = vec![SENTINEL; params.len()];
        assert_eq!(format::load(&b, &mut out), want.map(|()| shape));
        assert!(out.iter().all(|&v| v == SENTINEL));
        let mut again = vec![0u8; bytes.len()];
        assert_eq!(
            format::save(&shape.with_clamp(bad), &params, &mut again),
            Err(Error::InvalidShape(ShapeError::Clamp))
        );
    }
    let smallest = shape.with_clamp(f32::MIN_POSITIVE);
    let mut b = vec![0u8; bytes.len()];
    format::save(&smallest, &params, &mut b).unwrap();
    assert_eq!(format::inspect(&b), Ok((smallest, 8)));
}

/// Mixture weights spanning more than the f64 range still give finite logits (the quotient
/// w / Σw underflows to 0 for 1e-308 / 1e308); the logits' softmax is still the weights'
/// shares. Means beyond the model's precision are refused, in f32 only.
#[test]
fn mixture_and_gaussian_bases_store_only_finite_parameters() {
    use lwflow::rand_core::SeedableRng;
    use lwflow::{init_params, set_gaussian_base, set_mixture_base};
    let shape = Shape::new(2, 4, 2).with_base(BaseKind::Mixture(2));
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(1);
    let mut params = vec![0.0f64; shape.param_len()];
    init_params(&shape, &mut params, &mut rng).unwrap();
    let (means, scales) = ([0.0, 0.0, 1.0, 1.0], [1.0; 4]);
    for weights in [
        [1e308, 1e-308],
        [1e308, 1e308],
        [f64::MAX, 5e-324],
        [5e-324, 5e-324],
    ] {
        set_mixture_base(&shape, &mut params, &weights, &means, &scales).unwrap();
        assert!(params.iter().all(|p| p.is_finite()), "{weights:?}");
        let logits = &params[shape.flow_param_len()..][..2];
        let lse = logits[0].max(logits[1])
            + ((logits[0] - logits[0].max(logits[1])).exp()
                + (logits[1] - logits[0].max(logits[1])).exp())
            .ln();
        let share0 = (logits[0] - lse).exp();
        let want = 1.0 / (1.0 + weights[1] / weights[0]);
        assert!(
            (share0 - want).abs() < 1e-12,
            "{weights:?}: {share0} vs {want}"
        );
        let flow = Flow::new(shape, &params).unwrap();
        let mut ws = vec![0.0; shape.eval_workspace_len()];
        let mut out = [0.0; 2];
        flow.log_prob(&[0.0, 0.0, 1.0, 1.0], &mut out, &mut ws)
            .unwrap();
        assert!(out.iter().all(|v| v.is_finite()), "{weights:?}: {out:?}");
    }
    // Ordinary weights: exactly ln(w / Σw), as before.
    set_mixture_base(&shape, &mut params, &[1.0, 3.0], &means, &scales).unwrap();
    assert_eq!(
        &params[shape.flow_param_len()..][..2],
        &[0.25f64.ln(), 0.75f64.ln()]
    );

    let mut p32 = vec![0.0f32; shape.param_len()];
    init_params(&shape, &mut p32, &mut rng).unwrap();
    let before = p32.clone();
    assert_eq!(
        set_mixture_base(
            &shape,
            &mut p32,
            &[1.0, 1.0],
            &[1e300, 0.0, 0.0, 0.0],
            &scales
        ),
        Err(Error::InvalidArgument)
    );
    set_mixture_base(&shape, &mut p32, &[1e308, 1e-308], &means, &scales).unwrap();
    assert!(p32.iter().all(|p| p.is_finite()));
    assert_ne!(p32, before);
    let g = Shape::new(2, 4, 2);
    let mut g32 = vec![0.0f32; g.param_len()];
    assert_eq!(
        set_gaussian_base(&g, &mut g32, &[1e300, 0.0], &[1.0, 1.0]),
        Err(Error::InvalidArgument)
    );
    assert!(g32.iter().all(|&p| p == 0.0));
    let mut g64 = vec![0.0f64; g.param_len()];
    set_gaussian_base(&g, &mut g64, &[1e300, 0.0], &[1.0, 1.0]).unwrap();
}

/// `Flow::over_finite` skips only the finiteness scan: with finite parameters it is `new`;
/// with non-finite ones (which its callers promise never to hand it) it still never panics.
/// Its outputs are then meaningless, and not always visibly so: a ReLU maps a NaN weight's
/// pre-activation to 0, so the first weight being NaN still gives finite log densities here.
/// That is why the C ABI keeps finiteness an invariant of model memory (every writer refuses
/// non-finite values) rather than relying on the outputs.
#[test]
fn over_finite_skips_only_the_finiteness_scan() {
    use lwflow::rand_core::SeedableRng;
    let shape = Shape::new(2, 8, 2).with_base(BaseKind::Mixture(2));
    let p = shape.param_len();
    let params: Vec<f64> = (0..p).map(|i| 0.01 * (i % 17) as f64 - 0.05).collect();
    assert!(Flow::over_finite(shape, &params).is_ok());
    assert_eq!(
        Flow::over_finite(shape, &params[1..]).err(),
        Flow::new(shape, &params[1..]).err()
    );
    let theta = [0.3, -0.2, 1.0, 0.5];
    let mut ws = vec![0.0; shape.eval_workspace_len()];
    let (mut a, mut b) = ([0.0; 2], [0.0; 2]);
    Flow::new(shape, &params)
        .unwrap()
        .log_prob(&theta, &mut a, &mut ws)
        .unwrap();
    Flow::over_finite(shape, &params)
        .unwrap()
        .log_prob(&theta, &mut b, &mut ws)
        .unwrap();
    assert_eq!(a.map(f64::to_bits), b.map(f64::to_bits));

    let mut hidden = 0;
    for bad in [f64::NAN, f64::INFINITY] {
        for at in [0, p / 2, p - 1] {
            let mut q = params.clone();
            q[at] = bad;
            assert_eq!(Flow::new(shape, &q).err(), Some(Error::NonFinite));
            let flow = Flow::over_finite(shape, &q).unwrap();
            let mut out = [0.0; 2];
            if flow.log_prob(&theta, &mut out, &mut ws).is_ok() {
                hidden += usize::from(out.iter().all(|v| v.is_finite()));
            }
            let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(1);
            let (mut x, mut lq) = ([0.0; 4], [0.0; 2]);
            let _ = flow.sample(&mut rng, &mut x, &mut lq, &mut ws);
        }
    }
    assert!(
        hidden > 0,
        "the NaN weight behind a ReLU is the documented case"
    );
}
