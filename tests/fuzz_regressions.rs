//! The core's side of the defects the fuzz targets found (their tests from C are
//! `examples/c/fuzz_regressions.c`):
//! - Adam never trains the outer maps (a gradient there moved the box to lo > hi) and never
//!   leaves a parameter or moment non-finite (lr 1e308 made every parameter NaN);
//! - a likelihood batch of 2^63 in 2-D is one call (batch · D wrapped to a chunk size of 0, a
//!   panic), in the prior-box weighing and in the refinement's driver;
//! - a refinement's template base never matters: a mixture larger than the configuration's
//!   made the state fail its own checks after the first `ask`.

use lwflow::rand_core::SeedableRng;
use lwflow::train::{
    refine, sample_and_weigh, BaseChoice, NonFinitePolicy, RefineBuffers, RefineConfig,
    RefineMemory, RefineState, RefineStatus, Refiner, STATE_BYTES,
};
use lwflow::{init_params, set_box, Adam, BaseKind, Error, Flow, Shape};
use rand_xoshiro::Xoshiro256PlusPlus;

fn gauss(theta: &[f64], out: &mut [f64]) -> bool {
    for (o, t) in out.iter_mut().zip(theta.chunks(2)) {
        *o = -0.5 * (t[0] * t[0] + t[1] * t[1]);
    }
    true
}

#[test]
fn adam_leaves_the_outer_maps_alone_and_never_overflows() {
    let shape = Shape::new(2, 4, 2).with_affine(true).with_bounded(true);
    let p = shape.param_len();
    let mut params = vec![0.0; p];
    init_params(
        &shape,
        &mut params,
        &mut Xoshiro256PlusPlus::seed_from_u64(3),
    )
    .unwrap();
    set_box(&shape, &mut params, &[-1.0, -2.0], &[3.0, 1.5]).unwrap();
    let tail = shape.affine_param_len() + shape.box_param_len();
    let before = params.clone();
    // A gradient everywhere, pushing lo up and hi down in the box.
    let mut grad = vec![1.0; p];
    grad[p - 4] = -1.0;
    grad[p - 3] = -1.0;
    let mut state = vec![0.0; shape.optimizer_len()];
    let adam = Adam {
        lr: 5.0,
        ..Adam::default()
    };
    adam.step(&shape, &mut params, &grad, &mut state, 1)
        .unwrap();
    assert_eq!(
        params[p - tail..],
        before[p - tail..],
        "the outer maps moved"
    );
    assert_ne!(params[0], before[0], "the couplings did not move");
    assert!(state[p - tail..p].iter().all(|&m| m == 0.0));
    Flow::new(shape, &params[..]).expect("still a valid model");

    // The checked step (the C ABI's `lwf_model_adam_step`), lr 1e308: lr / (1 − β₁)
    // overflows; nothing changes.
    let (kept, kept_state) = (params.clone(), state.clone());
    let huge = Adam {
        lr: 1e308,
        ..Adam::default()
    };
    assert_eq!(
        huge.step_finite(&shape, &mut params, &grad, &mut state, 2),
        Err(Error::NonFinite)
    );
    assert_eq!(params, kept);
    assert_eq!(state, kept_state);
    // A gradient whose square overflows the second moment: refused too.
    let big = vec![1e200; p];
    assert_eq!(
        adam.step_finite(&shape, &mut params, &big, &mut state, 2),
        Err(Error::NonFinite)
    );
    assert_eq!(params, kept);
}

#[test]
fn a_likelihood_batch_beyond_the_samples_is_one_call() {
    let (lo, hi) = ([-3.0, -3.0], [3.0, 3.0]);
    let n = 50;
    for batch in [1usize << (usize::BITS - 1), usize::MAX, n, n + 1] {
        let (mut theta, mut log_l, mut w) = (vec![0.0; 2 * n], vec![0.0; n], vec![0.0; n]);
        let mut calls = 0;
        let stats = sample_and_weigh(
            &lo,
            &hi,
            &mut Xoshiro256PlusPlus::seed_from_u64(1),
            batch,
            |t: &[f64], out: &mut [f64]| {
                calls += 1;
                assert_eq!(t.len(), 2 * out.len());
                gauss(t, out)
            },
            NonFinitePolicy::Error,
            1.0,
            &mut theta,
            &mut log_l,
            &mut w,
        )
        .expect("weighed");
        assert_eq!((calls, stats.n), (1, n), "batch {batch}");
    }
}

/// A small refinement: its config, memory and a refiner over it.
fn small_config() -> RefineConfig {
    let mut c = RefineConfig::for_dim(2);
    c.initial_samples = 100;
    c.samples_per_round = 100;
    c.check_samples = 100;
    c.max_calls = 400;
    c.max_rounds = 4;
    c.fit.train.max_epochs = 2;
    c.fit.base = BaseChoice::Auto(2);
    c
}

#[test]
#[cfg_attr(
    miri,
    ignore = "three refinements: over 25 minutes under Miri (ffi's harness runs one)"
)]
fn a_refinement_ignores_the_base_of_its_template() {
    let cfg = small_config();
    for base in [
        BaseKind::Mixture(5),
        BaseKind::Mixture(1),
        BaseKind::StandardNormal,
    ] {
        let template = Shape::new(2, 4, 2).with_base(base);
        let need = RefineMemory::new(&template, &cfg);
        let (mut reals, mut f64s, mut order) = (
            vec![0.0; need.reals],
            vec![0.0; need.f64s],
            vec![0u32; need.order],
        );
        let buf = RefineBuffers::split(&template, &cfg, &mut reals, &mut f64s, &mut order)
            .expect("buffers");
        let mut r =
            Refiner::new(&template, &[-4.0, -4.0], &[4.0, 4.0], &cfg, buf).expect("refiner");
        r.ask().expect("ask");
        // The state after the first ask reads back (it failed its own checks for K = 5 > 2).
        let mut bytes = vec![0u8; STATE_BYTES];
        let len = r.state().to_bytes(&mut bytes).expect("to_bytes");
        let back = RefineState::from_bytes(&bytes[..len]).expect("the state reads back");
        assert_eq!(back.template().base, BaseKind::Gaussian);
        // And the whole run ends normally, with a huge batch (one call per round).
        let report = refine(
            &mut r,
            usize::MAX,
            |t: &[f64], o: &mut [f64]| gauss(t, o),
            |_| true,
        )
        .expect("refined");
        assert_ne!(report.status, RefineStatus::Running);
    }
}
