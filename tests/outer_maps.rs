//! The outer maps of a model (`Shape::affine`, `Shape::bounded`): exact densities checked by
//! finite differences and quadrature, support exactly the box, the format round trip and
//! version-2 files, and bad boxes refused at every door.

mod common;
use common::*;
use lwflow::error::FormatError;
use lwflow::train::{fit_in_box, BaseChoice, FitBuffers, FitConfig, FitMemory, TrainConfig};
use lwflow::{format, set_affine, set_box, BaseKind, Error, Flow, Shape};

// The flow's mass (before the box) sits around the origin with a spread of 1–2, so a good
// share of it lies in the box's margins, where the map bends.
const LO: [f64; 2] = [-3.0, -2.0];
const HI: [f64; 2] = [2.5, 3.0];

/// A 2-D flow with both outer maps, random couplings and base, the box above and a
/// correlated affine map.
fn model(bounded: bool, affine: bool) -> (Shape, Vec<f64>) {
    let shape = Shape::new(2, 8, 3)
        .with_base(BaseKind::Mixture(2))
        .with_activation(lwflow::Activation::Tanh)
        .with_bounded(bounded)
        .with_affine(affine);
    let mut p: Vec<f64> = random_params(&shape, 5, 0.1);
    // Two components whose tails reach into the box's margins (where the map bends). Their
    // spread stays below the margins' scale s, so the density decays towards the edges (a
    // wider one piles up against them, integrably, which a midpoint rule resolves slowly).
    lwflow::set_mixture_base(
        &shape,
        &mut p,
        &[0.6, 0.4],
        &[-1.0, 0.5, 1.0, -0.5],
        &[0.45, 0.4, 0.35, 0.45],
    )
    .unwrap();
    if affine {
        set_affine(&shape, &mut p, &[0.2, 0.4], &[0.7, 0.3, 0.5]).unwrap();
    }
    if bounded {
        set_box(&shape, &mut p, &LO, &HI).unwrap();
    }
    (shape, p)
}

fn log_q(shape: Shape, p: &[f64], theta: &[f64]) -> Vec<f64> {
    let n = theta.len() / shape.dim;
    let mut out = vec![0.0; n];
    let mut ws = vec![0.0; shape.workspace_len()];
    Flow::new(shape, p)
        .unwrap()
        .log_prob(theta, &mut out, &mut ws)
        .unwrap();
    out
}

/// The density integrates to 1 over the box (midpoint rule on a 600 × 600 grid, an
/// independent check of every log-det): the box map's density vanishes smoothly at the
/// edges, so the rule converges fast.
#[test]
fn density_on_the_box_integrates_to_one() {
    for affine in [false, true] {
        let (shape, p) = model(true, affine);
        let m = 600;
        let (hx, hy) = ((HI[0] - LO[0]) / m as f64, (HI[1] - LO[1]) / m as f64);
        let mut grid = Vec::with_capacity(2 * m * m);
        for i in 0..m {
            for j in 0..m {
                grid.push(LO[0] + (i as f64 + 0.5) * hx);
                grid.push(LO[1] + (j as f64 + 0.5) * hy);
            }
        }
        let total: f64 = log_q(shape, &p, &grid).iter().map(|l| l.exp()).sum::<f64>() * hx * hy;
        assert!((total - 1.0).abs() < 1e-4, "affine {affine}: ∫q = {total}");
    }
}

/// With only the affine map the density is an ordinary density on R²: integrate over a
/// wide square.
#[test]
fn affine_density_integrates_to_one() {
    let (shape, p) = model(false, true);
    let (m, a) = (800, 14.0);
    let h = 2.0 * a / m as f64;
    let mut grid = Vec::with_capacity(2 * m * m);
    for i in 0..m {
        for j in 0..m {
            grid.push(-a + (i as f64 + 0.5) * h + 0.4);
            grid.push(-a + (j as f64 + 0.5) * h + 1.2);
        }
    }
    let total: f64 = log_q(shape, &p, &grid).iter().map(|l| l.exp()).sum::<f64>() * h * h;
    assert!((total - 1.0).abs() < 2e-3, "∫q = {total}");
}

/// Samples' own log q equals log_prob at the sample; every sample lies in the box; inverse
/// then forward returns the point, with opposite log-dets.
#[test]
fn sample_log_prob_and_maps_agree() {
    for affine in [false, true] {
        let (shape, p) = model(true, affine);
        let flow = Flow::new(shape, &p).unwrap();
        let n = 4000;
        let (mut x, mut lq) = (vec![0.0; 2 * n], vec![0.0; n]);
        let mut ws = vec![0.0; shape.workspace_len()];
        flow.sample(&mut rng(9), &mut x, &mut lq, &mut ws).unwrap();
        assert!(x
            .chunks(2)
            .all(|t| (0..2).all(|i| t[i] >= LO[i] && t[i] <= HI[i])));
        let again = log_q(shape, &p, &x);
        for (a, b) in lq.iter().zip(&again) {
            assert!((a - b).abs() < 1e-8 * a.abs().max(1.0), "{a} vs {b}");
        }
        assert!(lq.iter().all(|v| v.is_finite()));
        let (mut z, mut ld) = (vec![0.0; 2 * n], vec![0.0; n]);
        flow.inverse(&x, &mut z, &mut ld, &mut ws).unwrap();
        let (mut back, mut ld2) = (vec![0.0; 2 * n], vec![0.0; n]);
        flow.forward(&z, &mut back, &mut ld2, &mut ws).unwrap();
        for (a, b) in x.iter().zip(&back) {
            assert!((a - b).abs() < 1e-9, "{a} vs {b}");
        }
        for (a, b) in ld.iter().zip(&ld2) {
            assert!((a + b).abs() < 1e-7, "{a} vs {b}");
        }
    }
}

/// A base far beyond an edge pushes every draw against it: none leaves the box, and their
/// densities stay finite (the Gaussian-CDF margin). log q is −∞ on and outside the boundary.
#[test]
fn support_is_exactly_the_box() {
    let shape = Shape::new(2, 8, 2).with_bounded(true);
    let mut p: Vec<f32> = random_params(&shape, 2, 0.1);
    set_box(&shape, &mut p, &LO, &HI).unwrap();
    // Base mean (latent coordinates) well past the upper edges, unit scales.
    let base = shape.flow_param_len();
    p[base] = 20.0;
    p[base + 1] = -20.0;
    let flow = Flow::new(shape, &p).unwrap();
    let n = 100_000;
    let (mut x, mut lq) = (vec![0.0f32; 2 * n], vec![0.0f32; n]);
    let mut ws = vec![0.0f32; shape.workspace_len()];
    flow.sample(&mut rng(4), &mut x, &mut lq, &mut ws).unwrap();
    let outside = x
        .chunks(2)
        .filter(|t| (0..2).any(|i| !(t[i] as f64 >= LO[i] && t[i] as f64 <= HI[i])))
        .count();
    assert_eq!(outside, 0);
    assert!(lq.iter().all(|v| v.is_finite()));
    let probe = [
        -3.0f32, 1.2, // on the lower edge of θ₁
        2.5, 1.2, // on the upper edge
        -3.5, 1.2, // outside
        0.0, 3.5, // outside in θ₂
        0.0, 1.25, // inside
    ];
    let mut out = [0.0f32; 5];
    flow.log_prob(&probe, &mut out, &mut ws).unwrap();
    assert!(out[..4].iter().all(|&v| v == f32::NEG_INFINITY), "{out:?}");
    assert!(out[4].is_finite());
    // The single-sample path agrees.
    let mut one = [0.0f32];
    flow.log_prob(&probe[..2], &mut one, &mut ws).unwrap();
    assert_eq!(one[0], f32::NEG_INFINITY);
    // The maps and the gradient refuse points outside the open box.
    let mut z = [0.0f32; 2];
    let mut ld = [0.0f32];
    assert_eq!(
        flow.inverse(&probe[4..6], &mut z, &mut ld, &mut ws),
        Err(Error::InvalidArgument)
    );
    let mut g = vec![0.0f32; shape.param_len()];
    assert_eq!(
        flow.loss_and_gradient(&probe[..2], &[1.0], &mut g, &mut ws),
        Err(Error::InvalidArgument)
    );
}

/// The gradient through both outer maps matches central differences of the loss, and the
/// outer parameters get no gradient (they are never trained).
#[test]
fn gradient_through_the_outer_maps_matches_finite_differences() {
    let (shape, p) = model(true, true);
    let n = 40;
    let mut r = rng(11);
    let theta: Vec<f64> = (0..n)
        .flat_map(|_| [uniform(&mut r, LO[0], HI[0]), uniform(&mut r, LO[1], HI[1])])
        .collect();
    let w: Vec<f64> = (0..n).map(|i| 0.5 + (i % 3) as f64).collect();
    let mut ws = vec![0.0; shape.workspace_len()];
    let mut grad = vec![0.0; shape.param_len()];
    let loss = |q: &[f64], ws: &mut Vec<f64>| {
        let mut g = vec![0.0; shape.param_len()];
        Flow::new(shape, q)
            .unwrap()
            .loss_and_gradient(&theta, &w, &mut g, ws)
            .unwrap()
    };
    let l0 = Flow::new(shape, &p)
        .unwrap()
        .loss_and_gradient(&theta, &w, &mut grad, &mut ws)
        .unwrap();
    // The loss is −mean w log q: check it against log_prob.
    let lq = log_q(shape, &p, &theta);
    let direct = -w.iter().zip(&lq).map(|(a, b)| a * b).sum::<f64>() / n as f64;
    assert!((l0 - direct).abs() < 1e-10 * direct.abs().max(1.0));
    let trained = shape.flow_param_len() + shape.base_param_len();
    let h = 1e-6;
    let mut worst: f64 = 0.0;
    for i in (0..trained).step_by(7).chain([trained - 1]) {
        let (mut a, mut b) = (p.clone(), p.clone());
        a[i] += h;
        b[i] -= h;
        let fd = (loss(&a, &mut ws) - loss(&b, &mut ws)) / (2.0 * h);
        worst = worst.max((fd - grad[i]).abs() / fd.abs().max(1e-3));
    }
    assert!(worst < 1e-5, "max relative error {worst}");
    assert!(grad[trained..].iter().all(|&g| g == 0.0));
}

/// Save/load with outer maps, in both widths; the bytes say version 3 and flag the maps.
#[test]
fn format_round_trip_with_outer_maps() {
    let (shape, p) = model(true, true);
    let mut bytes = vec![0u8; format::serialized_len(&shape, 8)];
    format::save(&shape, &p, &mut bytes).unwrap();
    assert_eq!(u16::from_le_bytes([bytes[4], bytes[5]]), 3);
    assert_eq!(bytes[29], 3);
    let mut back = vec![0.0f64; p.len()];
    assert_eq!(format::load(&bytes, &mut back).unwrap(), shape);
    assert_eq!(back, p);
    let p32: Vec<f32> = p.iter().map(|&v| v as f32).collect();
    let mut bytes32 = vec![0u8; format::serialized_len(&shape, 4)];
    format::save(&shape, &p32, &mut bytes32).unwrap();
    let mut back32 = vec![0.0f32; p.len()];
    assert_eq!(format::load(&bytes32, &mut back32).unwrap(), shape);
    assert_eq!(back32, p32);
    // A stored box with lo ≥ hi (checksum recomputed, so only the value check can catch it).
    let at = 40 + 8 * (shape.param_len() - 4);
    bytes[at..at + 8].copy_from_slice(&5.0f64.to_le_bytes());
    let end = bytes.len() - 4;
    let crc = format::crc32(&bytes[..end]);
    bytes[end..].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(
        format::load(&bytes, &mut back),
        Err(Error::Format(FormatError::BadHeader))
    );
}

/// A version-2 file (the format before the outer maps) loads unchanged: same shape, same
/// parameters bit for bit, and the same densities; a version-2 file that claims outer maps
/// is refused.
#[test]
fn version_2_files_load_unchanged() {
    let shape = Shape::new(3, 16, 4).with_base(BaseKind::Mixture(2));
    let p: Vec<f64> = random_params(&shape, 8, 0.2);
    let mut bytes = vec![0u8; format::serialized_len(&shape, 8)];
    format::save(&shape, &p, &mut bytes).unwrap();
    // Version 2 wrote the same bytes with version 2 and a zero byte 29.
    assert_eq!(bytes[29], 0);
    bytes[4..6].copy_from_slice(&2u16.to_le_bytes());
    let end = bytes.len() - 4;
    let crc = format::crc32(&bytes[..end]);
    bytes[end..].copy_from_slice(&crc.to_le_bytes());
    let mut back = vec![0.0f64; p.len()];
    assert_eq!(format::load(&bytes, &mut back).unwrap(), shape);
    assert!(back.iter().zip(&p).all(|(a, b)| a.to_bits() == b.to_bits()));
    let theta: Vec<f64> = random_points(50, 3, 1, 3.0);
    assert_eq!(log_q(shape, &back, &theta), log_q(shape, &p, &theta));
    bytes[29] = 2;
    let crc = format::crc32(&bytes[..end]);
    bytes[end..].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(
        format::load(&bytes, &mut back),
        Err(Error::Format(FormatError::BadHeader))
    );
}

/// Bad boxes and affine maps are typed errors at every door, and nothing is written.
#[test]
fn bad_boxes_are_refused_everywhere() {
    let shape = Shape::new(2, 4, 1).with_bounded(true).with_affine(true);
    let mut p: Vec<f32> = random_params(&shape, 1, 0.0);
    let before = p.clone();
    let bad: [([f64; 2], [f64; 2], Error); 6] = [
        ([0.0, 0.0], [1.0, 0.0], Error::InvalidArgument), // lo = hi
        ([0.0, 2.0], [1.0, 1.0], Error::InvalidArgument), // lo > hi
        ([f64::NAN, 0.0], [1.0, 1.0], Error::NonFinite),
        ([0.0, 0.0], [f64::INFINITY, 1.0], Error::NonFinite),
        ([-1e308, 0.0], [1e308, 1.0], Error::InvalidArgument), // width overflows
        ([1.0, 0.0], [1.0 + 1e-12, 1.0], Error::InvalidArgument), // collapses in f32
    ];
    for (lo, hi, want) in bad {
        assert_eq!(
            set_box(&shape, &mut p, &lo, &hi),
            Err(want),
            "{lo:?} {hi:?}"
        );
    }
    assert_eq!(p, before);
    // Affine: a zero or negative diagonal, NaN.
    assert_eq!(
        set_affine(&shape, &mut p, &[0.0, 0.0], &[1.0, 0.0, 0.0]),
        Err(Error::InvalidArgument)
    );
    assert_eq!(
        set_affine(&shape, &mut p, &[0.0, 0.0], &[-1.0, 0.0, 1.0]),
        Err(Error::InvalidArgument)
    );
    assert_eq!(
        set_affine(&shape, &mut p, &[f64::NAN, 0.0], &[1.0, 0.0, 1.0]),
        Err(Error::NonFinite)
    );
    assert_eq!(p, before);
    // Shapes without the map refuse its setter.
    let plain = Shape::new(2, 4, 1);
    let mut q: Vec<f32> = random_params(&plain, 1, 0.0);
    assert_eq!(
        set_box(&plain, &mut q, &[0.0, 0.0], &[1.0, 1.0]),
        Err(Error::InvalidArgument)
    );
    // Flow::new checks the stored tail.
    let hi_at = shape.param_len() - 1;
    p[hi_at] = -5.0;
    assert_eq!(
        Flow::new(shape, &p).map(|_| ()),
        Err(Error::InvalidArgument)
    );

    // fit_in_box: bad boxes, and a weighted sample outside the box.
    let template = Shape::new(2, 8, 2).with_bounded(true);
    let cfg = FitConfig {
        base: BaseChoice::Auto(2),
        em: Default::default(),
        train: TrainConfig {
            max_epochs: 2,
            ..Default::default()
        },
        init_seed: 1,
    };
    let n = 200;
    let samples: Vec<f32> = random_points(n, 2, 3, 0.9);
    let weights = vec![1.0f32; n];
    let try_fit = |lo: &[f64], hi: &[f64], samples: &[f32]| {
        let need = FitMemory::new(&template, &cfg, n);
        let (mut reals, mut order, mut em) = (
            vec![0.0f32; need.reals],
            vec![0u32; need.order],
            vec![0.0; need.em],
        );
        let buf = FitBuffers::split(&template, &cfg, n, &mut reals, &mut order, &mut em).unwrap();
        let mut params = vec![0.0f32; cfg.base.max_shape(&template).param_len()];
        fit_in_box(
            &template,
            &cfg,
            lo,
            hi,
            &mut params,
            samples,
            &weights,
            buf,
            |_| true,
        )
        .map(|r| r.shape)
    };
    assert!(try_fit(&[-1.0, -1.0], &[1.0, 1.0], &samples).is_ok());
    assert_eq!(
        try_fit(&[1.0, -1.0], &[-1.0, 1.0], &samples),
        Err(Error::InvalidArgument)
    );
    assert_eq!(
        try_fit(&[f64::NAN, -1.0], &[1.0, 1.0], &samples),
        Err(Error::NonFinite)
    );
    assert_eq!(
        try_fit(&[-1e308, -1.0], &[1e308, 1.0], &samples),
        Err(Error::InvalidArgument)
    );
    let mut outside = samples.clone();
    outside[0] = 1.5;
    assert_eq!(
        try_fit(&[-1.0, -1.0], &[1.0, 1.0], &outside),
        Err(Error::InvalidArgument)
    );
}
