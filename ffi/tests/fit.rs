//! The fit API exercised from Rust through the built `liblwflow.so` (the real exported
//! symbols, loaded with libloading), against the core's `lwflow::train::fit` on the same
//! inputs: the prior-box fit with a likelihood callback, the samples fit and a fit cancelled
//! by the progress callback all give bit-identical parameters and the same report; two fits
//! on two threads at once equal the same fits alone; the mirrored config struct has the
//! library's size.

mod common;

use lwflow::base::em::EmConfig;
use lwflow::rand_core::SeedableRng;
use lwflow::train::{
    fit, normalise_log_weights, sample_and_weigh, BaseChoice, EpochReport, FitBuffers, FitConfig,
    FitMemory, FitReport, NonFinitePolicy, Schedule, StopReason, TrainConfig,
};
use lwflow::Shape;
use rand_xoshiro::Xoshiro256PlusPlus;
use std::ffi::{c_int, c_void};
use std::sync::OnceLock;

use common::LwfShape;

/// The header's `LwfFitConfig`, field for field.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
struct LwfFitConfig {
    struct_size: usize,
    base: i32,
    non_finite: i32,
    components: usize,
    min_ess: f64,
    sample_seed: u64,
    likelihood_batch: usize,
    em_max_iter: usize,
    em_tol: f64,
    em_var_floor: f64,
    em_restarts: usize,
    em_min_weight: f64,
    em_seed: u64,
    max_epochs: usize,
    batch_size: usize,
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    schedule: i32,
    min_lr_factor: f64,
    patience: usize,
    validation_fraction: f64,
    clip_norm: f64,
    min_weight: f64,
    seed: u64,
    init_seed: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
struct LwfEpochReport {
    epoch: usize,
    max_epochs: usize,
    train_loss: f64,
    val_loss: f64,
    best_val_loss: f64,
    lr: f64,
    skipped_steps: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct LwfFitReport {
    n_samples: usize,
    skipped_samples: usize,
    ess: f64,
    log_mean_weight: f64,
    components: usize,
    em_iterations: usize,
    em_mean_log_likelihood: f64,
    em_bic: f64,
    epochs: usize,
    best_epoch: usize,
    steps: u64,
    skipped_steps: u64,
    initial_val_loss: f64,
    best_val_loss: f64,
    stop_reason: i32,
}

type Model = c_void;
type LogLikelihoodFn =
    Option<unsafe extern "C" fn(*const f64, usize, usize, *mut f64, *mut c_void) -> c_int>;
type ProgressFn = Option<unsafe extern "C" fn(*const LwfEpochReport, *mut c_void) -> c_int>;

const LWF_OK: i32 = 0;
const LWF_CANCELLED: i32 = 10;
const LWF_FIT_BASE_MIXTURE: i32 = 2;
const LWF_FIT_BASE_AUTO: i32 = 3;
const LWF_STOP_CANCELLED: i32 = 2;

struct Api {
    shape_default: unsafe extern "C" fn(usize, usize, usize, *mut LwfShape) -> i32,
    fit_config_default: unsafe extern "C" fn(*mut LwfFitConfig) -> i32,
    fit_model_size: unsafe extern "C" fn(*const LwfShape, *const LwfFitConfig, *mut usize) -> i32,
    fit_work_size:
        unsafe extern "C" fn(*const LwfShape, *const LwfFitConfig, usize, *mut usize) -> i32,
    fit_prior_box: unsafe extern "C" fn(
        *mut c_void,
        usize,
        *const LwfShape,
        *const LwfFitConfig,
        *const f64,
        usize,
        *const f64,
        usize,
        usize,
        LogLikelihoodFn,
        *mut c_void,
        ProgressFn,
        *mut c_void,
        *mut c_void,
        usize,
        *mut LwfFitReport,
        *mut *mut Model,
    ) -> i32,
    fit_samples: unsafe extern "C" fn(
        *mut c_void,
        usize,
        *const LwfShape,
        *const LwfFitConfig,
        *const f64,
        usize,
        *const f64,
        usize,
        ProgressFn,
        *mut c_void,
        *mut c_void,
        usize,
        *mut LwfFitReport,
        *mut *mut Model,
    ) -> i32,
    model_shape: unsafe extern "C" fn(*const Model, *mut LwfShape) -> i32,
    model_get_params: unsafe extern "C" fn(*const Model, *mut f64, usize) -> i32,
    shape_param_count: unsafe extern "C" fn(*const LwfShape, *mut usize) -> i32,
}

fn api() -> &'static Api {
    static API: OnceLock<Api> = OnceLock::new();
    API.get_or_init(|| {
        let lib = common::loaded_cdylib();
        macro_rules! sym {
            ($name:literal) => {
                // SAFETY: the field's type is the header's declaration of this symbol.
                *unsafe { lib.get(concat!($name, "\0").as_bytes()) }.expect($name)
            };
        }
        Api {
            shape_default: sym!("lwf_shape_default"),
            fit_config_default: sym!("lwf_fit_config_default"),
            fit_model_size: sym!("lwf_fit_model_size"),
            fit_work_size: sym!("lwf_fit_work_size"),
            fit_prior_box: sym!("lwf_model_fit_prior_box"),
            fit_samples: sym!("lwf_model_fit_samples"),
            model_shape: sym!("lwf_model_shape"),
            model_get_params: sym!("lwf_model_get_params"),
            shape_param_count: sym!("lwf_shape_param_count"),
        }
    })
}

// ---------------------------------------------------------------------------------------
// The task: 2D2's likelihood (two Gaussians at (+-2.5, 0), sd 0.6), as a C callback and as
// a Rust closure computing the same numbers.

const BOX: f64 = 6.0;

fn log_likelihood(x: &[f64]) -> f64 {
    let comp = |m: f64| {
        let (a, b) = ((x[0] - m) / 0.6, x[1] / 0.6);
        -0.5 * (a * a + b * b) - 2.0 * 0.6f64.ln() - (2.0 * std::f64::consts::PI).ln()
    };
    let (l, r) = (comp(-2.5), comp(2.5));
    let m = l.max(r);
    m + (0.5 * (l - m).exp() + 0.5 * (r - m).exp()).ln()
}

/// The likelihood callback; `user` points at a counter of calls.
unsafe extern "C" fn c_log_likelihood(
    theta: *const f64,
    n: usize,
    dim: usize,
    out: *mut f64,
    user: *mut c_void,
) -> c_int {
    // SAFETY: the library passes n points of dim doubles and n writable outputs.
    let (theta, out) = unsafe {
        (
            std::slice::from_raw_parts(theta, n * dim),
            std::slice::from_raw_parts_mut(out, n),
        )
    };
    for (o, x) in out.iter_mut().zip(theta.chunks_exact(dim)) {
        *o = log_likelihood(x);
    }
    if !user.is_null() {
        // SAFETY: the tests pass a pointer to a usize they own.
        unsafe { *user.cast::<usize>() += 1 };
    }
    0
}

/// Progress: records every report in the `Vec<LwfEpochReport>` `user` points at; cancels once
/// the epoch reaches `CANCEL_AT`.
const CANCEL_AT: usize = 3;
unsafe extern "C" fn record_and_cancel(r: *const LwfEpochReport, user: *mut c_void) -> c_int {
    // SAFETY: the library passes a valid report; the test passes its Vec.
    let (r, seen) = unsafe { (*r, &mut *user.cast::<Vec<LwfEpochReport>>()) };
    seen.push(r);
    c_int::from(r.epoch >= CANCEL_AT)
}

fn shape() -> LwfShape {
    let mut s = std::mem::MaybeUninit::<LwfShape>::uninit();
    // SAFETY: writable; written on success (checked).
    assert_eq!(
        unsafe { (api().shape_default)(2, 16, 3, s.as_mut_ptr()) },
        LWF_OK
    );
    // SAFETY: written by the successful call.
    unsafe { s.assume_init() }
}

/// A small, quick configuration with every field away from its default where it matters.
fn config() -> LwfFitConfig {
    let mut c = std::mem::MaybeUninit::<LwfFitConfig>::uninit();
    // SAFETY: writable; written on success (checked).
    assert_eq!(
        unsafe { (api().fit_config_default)(c.as_mut_ptr()) },
        LWF_OK
    );
    // SAFETY: written by the successful call.
    let mut c = unsafe { c.assume_init() };
    assert_eq!(
        c.struct_size,
        std::mem::size_of::<LwfFitConfig>(),
        "the mirrored LwfFitConfig differs from the library's"
    );
    c.base = LWF_FIT_BASE_AUTO;
    c.components = 3;
    c.min_ess = 20.0;
    c.sample_seed = 17;
    c.likelihood_batch = 333;
    c.em_restarts = 2;
    c.em_seed = 5;
    c.max_epochs = 6;
    c.batch_size = 200;
    c.lr = 2e-3;
    c.weight_decay = 1e-5;
    c.min_lr_factor = 0.1;
    c.patience = 0;
    c.validation_fraction = 0.25;
    c.clip_norm = 5.0;
    c.min_weight = 1e-4;
    c.seed = 9;
    c.init_seed = 4;
    c
}

/// The same configuration in the core's terms, written out independently of the ABI's
/// conversion.
fn core_config(c: &LwfFitConfig) -> FitConfig {
    FitConfig {
        base: if c.base == LWF_FIT_BASE_MIXTURE {
            BaseChoice::Mixture(c.components)
        } else {
            BaseChoice::Auto(c.components)
        },
        em: EmConfig {
            max_iter: c.em_max_iter,
            tol: c.em_tol,
            var_floor: c.em_var_floor,
            restarts: c.em_restarts,
            min_weight: c.em_min_weight,
            seed: c.em_seed,
        },
        train: TrainConfig {
            max_epochs: c.max_epochs,
            batch_size: c.batch_size,
            adam: lwflow::Adam {
                lr: c.lr,
                beta1: c.beta1,
                beta2: c.beta2,
                eps: c.eps,
                weight_decay: c.weight_decay,
            },
            schedule: Schedule::Cosine {
                min_factor: c.min_lr_factor,
            },
            patience: c.patience,
            validation_fraction: c.validation_fraction,
            clip_norm: c.clip_norm,
            min_weight: c.min_weight,
            seed: c.seed,
        },
        init_seed: c.init_seed,
    }
}

/// `lwflow::train::fit` in f64 with freshly allocated buffers: (parameters of the fitted
/// shape, report).
fn core_fit(
    c: &LwfFitConfig,
    samples: &[f64],
    weights: &[f64],
    on_epoch: impl FnMut(&EpochReport) -> bool,
) -> (Vec<f64>, FitReport) {
    let cfg = core_config(c);
    let template = Shape::new(2, 16, 3);
    let n = weights.len();
    let mut params = vec![0.0; cfg.base.max_shape(&template).param_len()];
    let need = FitMemory::new(&template, &cfg, n);
    let (mut reals, mut order, mut em) = (
        vec![0.0; need.reals],
        vec![0u32; need.order],
        vec![0.0; need.em],
    );
    let buffers = FitBuffers::split(&template, &cfg, n, &mut reals, &mut order, &mut em).unwrap();
    let report = fit(
        &template,
        &cfg,
        &mut params,
        samples,
        weights,
        buffers,
        on_epoch,
    )
    .expect("core fit");
    params.truncate(report.shape.param_len());
    (params, report)
}

/// Memory for one fit through the ABI, and what it returned.
struct AbiFit {
    status: i32,
    report: LwfFitReport,
    params: Vec<f64>,
    shape: LwfShape,
}

/// Model and work memory sized by the ABI's queries (Vec<f64>: 8-byte aligned).
fn memory(c: &LwfFitConfig, n: usize) -> (Vec<f64>, usize, Vec<f64>, usize) {
    let s = shape();
    let (mut mem_len, mut work_len) = (0, 0);
    // SAFETY: valid pointers to locals.
    unsafe {
        assert_eq!((api().fit_model_size)(&s, c, &mut mem_len), LWF_OK);
        assert_eq!((api().fit_work_size)(&s, c, n, &mut work_len), LWF_OK);
    }
    (
        vec![0.0; mem_len.div_ceil(8)],
        mem_len,
        vec![0.0; work_len.div_ceil(8)],
        work_len,
    )
}

/// Reads the fitted model's shape and parameters.
fn finish(status: i32, report: LwfFitReport, model: *mut Model) -> AbiFit {
    let a = api();
    let mut shape = shape();
    let mut p = 0;
    // SAFETY: `model` is the handle the fit wrote (status OK or CANCELLED); locals are valid.
    let params = unsafe {
        assert_eq!((a.model_shape)(model, &mut shape), LWF_OK);
        assert_eq!((a.shape_param_count)(&shape, &mut p), LWF_OK);
        let mut params = vec![0.0; p];
        assert_eq!((a.model_get_params)(model, params.as_mut_ptr(), p), LWF_OK);
        params
    };
    AbiFit {
        status,
        report,
        params,
        shape,
    }
}

fn abi_fit_prior_box(
    c: &LwfFitConfig,
    n: usize,
    progress: ProgressFn,
    progress_user: *mut c_void,
) -> AbiFit {
    let s = shape();
    let (mut mem, mem_len, mut work, work_len) = memory(c, n);
    let (lo, hi) = ([-BOX; 2], [BOX; 2]);
    let mut calls = 0usize;
    let mut report = LwfFitReport::default();
    let mut model = std::ptr::null_mut();
    // SAFETY: every buffer is valid for its stated length; the callbacks follow the ABI.
    let status = unsafe {
        (api().fit_prior_box)(
            mem.as_mut_ptr().cast(),
            mem_len,
            &s,
            c,
            lo.as_ptr(),
            2,
            hi.as_ptr(),
            2,
            n,
            Some(c_log_likelihood),
            (&mut calls as *mut usize).cast(),
            progress,
            progress_user,
            work.as_mut_ptr().cast(),
            work_len,
            &mut report,
            &mut model,
        )
    };
    assert!(
        status == LWF_OK || status == LWF_CANCELLED,
        "status {status}"
    );
    assert_eq!(calls, n.div_ceil(c.likelihood_batch));
    let fitted = finish(status, report, model);
    drop(work);
    drop(mem);
    fitted
}

/// The prior draws and weights the ABI's prior-box fit makes, through the core.
fn prior_samples(c: &LwfFitConfig, n: usize) -> (Vec<f64>, Vec<f64>, f64) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(c.sample_seed);
    let (mut theta, mut log_l, mut w) = (vec![0.0; 2 * n], vec![0.0; n], vec![0.0; n]);
    let stats = sample_and_weigh(
        &[-BOX; 2],
        &[BOX; 2],
        &mut rng,
        c.likelihood_batch,
        |rows: &[f64], out: &mut [f64]| {
            for (o, x) in out.iter_mut().zip(rows.chunks_exact(2)) {
                *o = log_likelihood(x);
            }
            true
        },
        NonFinitePolicy::Error,
        c.min_ess,
        &mut theta,
        &mut log_l,
        &mut w,
    )
    .expect("weights");
    (theta, w, stats.ess)
}

fn assert_same(abi: &AbiFit, params: &[f64], report: &FitReport, ess: f64) {
    assert_eq!(abi.shape.components, report.shape.components());
    assert_eq!(abi.params, params, "parameters differ from the core's fit");
    let (r, t) = (&abi.report, &report.train);
    assert_eq!(r.components, report.shape.components());
    assert_eq!(
        (r.epochs, r.best_epoch, r.steps, r.skipped_steps),
        (t.epochs, t.best_epoch, t.steps, t.skipped_steps)
    );
    assert_eq!(r.best_val_loss.to_bits(), t.best_val_loss.to_bits());
    assert_eq!(r.initial_val_loss.to_bits(), t.initial_val_loss.to_bits());
    assert_eq!(r.ess.to_bits(), ess.to_bits());
    let mixture = report.mixture.expect("an EM base");
    assert_eq!(r.em_bic.to_bits(), mixture.bic.to_bits());
    assert_eq!(r.em_iterations, mixture.iterations);
}

#[test]
fn prior_box_fit_through_the_abi_equals_the_core_fit() {
    let (c, n) = (config(), 3000);
    let abi = abi_fit_prior_box(&c, n, None, std::ptr::null_mut());
    assert_eq!(abi.status, LWF_OK);
    assert_eq!(abi.report.n_samples, n);
    let (theta, w, ess) = prior_samples(&c, n);
    let (params, report) = core_fit(&c, &theta, &w, |_| true);
    assert_same(&abi, &params, &report, ess);
    eprintln!(
        "prior-box fit: K = {}, {} epochs, {} steps, ESS {:.1}: bit-identical to the core",
        abi.report.components, abi.report.epochs, abi.report.steps, abi.report.ess
    );
}

#[test]
fn samples_fit_through_the_abi_equals_the_core_fit() {
    let mut c = config();
    c.base = LWF_FIT_BASE_MIXTURE;
    c.components = 2;
    let n = 2500;
    // Samples from a wider box than the prior (any proposal): log-weights are the
    // log-likelihoods plus a constant, which normalisation removes.
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
    let mut theta = vec![0.0; 2 * n];
    lwflow::train::sample_box(&[-5.0; 2], &[5.0; 2], &mut rng, &mut theta).unwrap();
    let log_w: Vec<f64> = theta.chunks(2).map(|x| log_likelihood(x) - 7.0).collect();

    let s = shape();
    let (mut mem, mem_len, mut work, work_len) = memory(&c, n);
    let mut report = LwfFitReport::default();
    let mut model = std::ptr::null_mut();
    // SAFETY: every buffer is valid for its stated length. The samples fit needs n (dim + 1)
    // doubles less work than the size query gives: pass exactly that.
    let status = unsafe {
        (api().fit_samples)(
            mem.as_mut_ptr().cast(),
            mem_len,
            &s,
            &c,
            theta.as_ptr(),
            theta.len(),
            log_w.as_ptr(),
            n,
            None,
            std::ptr::null_mut(),
            work.as_mut_ptr().cast(),
            work_len - n * 3 * 8,
            &mut report,
            &mut model,
        )
    };
    assert_eq!(status, LWF_OK);
    let abi = finish(status, report, model);

    let mut w = vec![0.0; n];
    let stats = normalise_log_weights(&log_w, NonFinitePolicy::Error, c.min_ess, &mut w).unwrap();
    let (params, core) = core_fit(&c, &theta, &w, |_| true);
    assert_same(&abi, &params, &core, stats.ess);
    assert_eq!(abi.shape.components, 2);
    drop(work);
    drop(mem);
}

#[test]
fn cancelled_fit_keeps_the_best_model_so_far_like_the_core() {
    let (c, n) = (config(), 3000);
    let mut seen: Vec<LwfEpochReport> = Vec::new();
    let abi = abi_fit_prior_box(
        &c,
        n,
        Some(record_and_cancel),
        (&mut seen as *mut Vec<LwfEpochReport>).cast(),
    );
    assert_eq!(abi.status, LWF_CANCELLED);
    assert_eq!(abi.report.stop_reason, LWF_STOP_CANCELLED);
    assert_eq!(abi.report.epochs, CANCEL_AT);

    let (theta, w, ess) = prior_samples(&c, n);
    let mut core_seen = Vec::new();
    let (params, report) = core_fit(&c, &theta, &w, |r| {
        core_seen.push(*r);
        r.epoch < CANCEL_AT
    });
    assert_eq!(report.train.stop, StopReason::Cancelled);
    assert_same(&abi, &params, &report, ess);
    // The progress callback saw exactly the core's epoch reports.
    assert_eq!(seen.len(), core_seen.len());
    for (a, b) in seen.iter().zip(&core_seen) {
        assert_eq!(
            (a.epoch, a.max_epochs, a.skipped_steps),
            (b.epoch, b.max_epochs, b.skipped_steps)
        );
        for (x, y) in [
            (a.train_loss, b.train_loss),
            (a.val_loss, b.val_loss),
            (a.best_val_loss, b.best_val_loss),
            (a.lr, b.lr),
        ] {
            assert_eq!(x.to_bits(), y.to_bits());
        }
    }
}

#[test]
fn two_fits_on_two_threads_equal_the_same_fits_alone() {
    let mut other = config();
    other.sample_seed = 99;
    other.init_seed = 7;
    let configs = [config(), other];
    let alone: Vec<Vec<f64>> = configs
        .iter()
        .map(|c| abi_fit_prior_box(c, 2000, None, std::ptr::null_mut()).params)
        .collect();
    let together: Vec<Vec<f64>> = std::thread::scope(|scope| {
        let handles: Vec<_> = configs
            .iter()
            .map(|c| {
                scope.spawn(move || abi_fit_prior_box(c, 2000, None, std::ptr::null_mut()).params)
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(alone, together);
    assert_ne!(alone[0], alone[1]);
}
