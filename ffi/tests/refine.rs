//! The refinement through the built `liblwflow.so` (the real exported symbols, loaded with
//! libloading), and the C program `examples/c/refine_2d2.c` compiled against `liblwflow.a`:
//! ask/tell on task 2D2 meets its targets and writes a model on the prior box; the callback
//! form is bit-identical to ask/tell; a byte copy of the work memory continues identically;
//! bad inputs return typed statuses and leave the work memory byte for byte unchanged.

mod common;

use common::*;
use std::ffi::{c_int, c_void};
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

/// The header's `LwfRefineConfig`, field for field.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
struct LwfRefineConfig {
    struct_size: usize,
    initial_samples: usize,
    samples_per_round: usize,
    check_samples: usize,
    max_calls: usize,
    max_rounds: usize,
    ess_fraction: f64,
    target_ess: f64,
    max_k_hat: f64,
    log_z_tol: f64,
    warm_start: i32,
    bounded: i32,
    affine: i32,
    non_finite: i32,
    max_components: usize,
    max_epochs: usize,
    batch_size: usize,
    patience: usize,
    learning_rate: f64,
    seed: u64,
    max_kl: f64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct LwfRefineRound {
    round: usize,
    calls: usize,
    draws: usize,
    beta: f64,
    next_beta: f64,
    log_z: f64,
    log_z_se: f64,
    ess: f64,
    k_hat: f64,
    has_k_hat: i32,
    still_improving: i32,
    components: usize,
    epochs: usize,
    best_epoch: usize,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct LwfRefineReport {
    status: i32,
    has_k_hat: i32,
    rounds: usize,
    calls: usize,
    draws: usize,
    log_z: f64,
    log_z_se: f64,
    ess: f64,
    k_hat: f64,
    beta: f64,
    components: usize,
    epochs: usize,
    best_epoch: usize,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct LwfRng {
    state: [u64; 4],
}

type Refine = c_void;
type Model = c_void;
type LogLikelihoodFn =
    Option<unsafe extern "C" fn(*const f64, usize, usize, *mut f64, *mut c_void) -> c_int>;
type ProgressFn = Option<unsafe extern "C" fn(*const LwfRefineRound, *mut c_void) -> c_int>;

const LWF_OK: i32 = 0;
const LWF_NULL_POINTER: i32 = 1;
const LWF_BUFFER_TOO_SMALL: i32 = 2;
const LWF_LENGTH_MISMATCH: i32 = 3;
const LWF_MISALIGNED: i32 = 4;
const LWF_INVALID_ARGUMENT: i32 = 6;
const LWF_NON_FINITE: i32 = 7;
const LWF_CALLBACK_FAILED: i32 = 9;
const LWF_CANCELLED: i32 = 10;
const LWF_DEGENERATE_WEIGHTS: i32 = 11;
const LWF_INVALID_MODEL: i32 = 15;
const LWF_OVERLAPPING_BUFFERS: i32 = 16;
const RUNNING: i32 = 0;
const CONVERGED: i32 = 1;
const BUDGET_EXHAUSTED: i32 = 2;
const FAILED: i32 = 4;

struct Api {
    shape_default: unsafe extern "C" fn(usize, usize, usize, *mut LwfShape) -> i32,
    config_default: unsafe extern "C" fn(usize, *mut LwfRefineConfig) -> i32,
    work_size: unsafe extern "C" fn(*const LwfShape, *const LwfRefineConfig, *mut usize) -> i32,
    init: unsafe extern "C" fn(
        *mut c_void,
        usize,
        *const LwfShape,
        *const f64,
        *const f64,
        usize,
        *const LwfRefineConfig,
        *mut *mut Refine,
    ) -> i32,
    batch_capacity: unsafe extern "C" fn(*const Refine, *mut usize) -> i32,
    status: unsafe extern "C" fn(*const Refine, *mut i32) -> i32,
    ask: unsafe extern "C" fn(*mut Refine, *mut f64, usize, *mut usize) -> i32,
    tell: unsafe extern "C" fn(*mut Refine, *const f64, usize, *mut LwfRefineRound) -> i32,
    run: unsafe extern "C" fn(
        *mut Refine,
        LogLikelihoodFn,
        usize,
        *mut c_void,
        ProgressFn,
        *mut c_void,
    ) -> i32,
    report: unsafe extern "C" fn(*const Refine, *mut LwfRefineReport) -> i32,
    model_size: unsafe extern "C" fn(*const Refine, *mut usize) -> i32,
    write_model: unsafe extern "C" fn(*const Refine, *mut c_void, usize, *mut *mut Model) -> i32,
    model_shape: unsafe extern "C" fn(*const Model, *mut LwfShape) -> i32,
    model_get_params: unsafe extern "C" fn(*const Model, *mut f64, usize) -> i32,
    shape_param_count: unsafe extern "C" fn(*const LwfShape, *mut usize) -> i32,
    model_log_prob: unsafe extern "C" fn(*mut Model, *const f64, usize, *mut f64, usize) -> i32,
    model_sample:
        unsafe extern "C" fn(*mut Model, *mut LwfRng, *mut f64, usize, *mut f64, usize) -> i32,
    rng_init: unsafe extern "C" fn(*mut LwfRng, u64) -> i32,
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
            config_default: sym!("lwf_refine_config_default"),
            work_size: sym!("lwf_refine_work_size"),
            init: sym!("lwf_refine_init"),
            batch_capacity: sym!("lwf_refine_batch_capacity"),
            status: sym!("lwf_refine_status"),
            ask: sym!("lwf_refine_ask"),
            tell: sym!("lwf_refine_tell"),
            run: sym!("lwf_refine_run"),
            report: sym!("lwf_refine_report"),
            model_size: sym!("lwf_refine_model_size"),
            write_model: sym!("lwf_refine_write_model"),
            model_shape: sym!("lwf_model_shape"),
            model_get_params: sym!("lwf_model_get_params"),
            shape_param_count: sym!("lwf_shape_param_count"),
            model_log_prob: sym!("lwf_model_log_prob"),
            model_sample: sym!("lwf_model_sample"),
            rng_init: sym!("lwf_rng_init"),
        }
    })
}

fn ok(status: i32, what: &str) {
    assert_eq!(status, LWF_OK, "{what} returned status {status}");
}

// ---------------------------------------------------------------------------------------
// Task 2D2: two Gaussians N((±2.5, 0), 0.6²I), equal weights, as a normalised density in θ;
// prior uniform on [−6, 6]², so Z = 1/144 up to the mass outside the box (≈ 1e−5).

const BOX: f64 = 6.0;
const LOG_Z_TRUE: f64 = -4.969_813_299_576_001; // −2 ln 12

fn log_likelihood(x: &[f64]) -> f64 {
    let comp = |m: f64| {
        let (a, b) = ((x[0] - m) / 0.6, x[1] / 0.6);
        -0.5 * (a * a + b * b) - 2.0 * 0.6f64.ln() - (2.0 * std::f64::consts::PI).ln()
    };
    let (l, r) = (comp(-2.5), comp(2.5));
    let m = l.max(r);
    m + (0.5 * (l - m).exp() + 0.5 * (r - m).exp()).ln()
}

/// The likelihood callback; `user` is NULL or points at a counter of calls.
unsafe extern "C" fn c_log_likelihood(
    theta: *const f64,
    n: usize,
    dim: usize,
    out: *mut f64,
    user: *mut c_void,
) -> c_int {
    if n == 0 {
        return 0;
    }
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
        unsafe { *user.cast::<usize>() += n };
    }
    0
}

/// Records every round in the `Vec<LwfRefineRound>` `user` points at.
unsafe extern "C" fn record(r: *const LwfRefineRound, user: *mut c_void) -> c_int {
    // SAFETY: the library passes a valid report; the test passes its Vec.
    let (r, seen) = unsafe { (*r, &mut *user.cast::<Vec<LwfRefineRound>>()) };
    seen.push(r);
    0
}

/// Cancels after the first round.
unsafe extern "C" fn cancel(_: *const LwfRefineRound, _: *mut c_void) -> c_int {
    1
}

/// Fails on every call.
unsafe extern "C" fn failing(
    _: *const f64,
    _: usize,
    _: usize,
    _: *mut f64,
    _: *mut c_void,
) -> c_int {
    -1
}

/// Returns 0 without writing anything: every value reads as NaN.
unsafe extern "C" fn silent(
    _: *const f64,
    _: usize,
    _: usize,
    _: *mut f64,
    _: *mut c_void,
) -> c_int {
    0
}

fn shape(hidden: usize, couplings: usize) -> LwfShape {
    let mut s = std::mem::MaybeUninit::<LwfShape>::uninit();
    // SAFETY: writable; written on success (checked).
    ok(
        unsafe { (api().shape_default)(2, hidden, couplings, s.as_mut_ptr()) },
        "shape_default",
    );
    // SAFETY: written by the successful call.
    unsafe { s.assume_init() }
}

fn config_default() -> LwfRefineConfig {
    config_default_for(2)
}

fn config_default_for(dim: usize) -> LwfRefineConfig {
    let mut c = std::mem::MaybeUninit::<LwfRefineConfig>::uninit();
    // SAFETY: writable; written on success (checked).
    ok(
        unsafe { (api().config_default)(dim, c.as_mut_ptr()) },
        "config_default",
    );
    // SAFETY: written by the successful call.
    let c = unsafe { c.assume_init() };
    assert_eq!(
        c.struct_size,
        std::mem::size_of::<LwfRefineConfig>(),
        "the mirrored LwfRefineConfig differs from the library's"
    );
    c
}

/// A quick configuration for the input checks.
fn small_config() -> LwfRefineConfig {
    LwfRefineConfig {
        initial_samples: 300,
        samples_per_round: 300,
        check_samples: 200,
        max_calls: 1_200,
        max_epochs: 3,
        max_components: 2,
        target_ess: 400.0,
        ..config_default()
    }
}

/// 8-byte aligned work memory.
struct Work {
    words: Vec<u64>,
    bytes: usize,
}

impl Work {
    fn new(shape: &LwfShape, config: &LwfRefineConfig) -> Work {
        let mut bytes = 0;
        // SAFETY: valid pointers.
        ok(
            unsafe { (api().work_size)(shape, config, &mut bytes) },
            "work_size",
        );
        Work {
            words: vec![0; bytes.div_ceil(8)],
            bytes,
        }
    }
    fn ptr(&mut self) -> *mut c_void {
        self.words.as_mut_ptr().cast()
    }
    fn handle(&mut self) -> *mut Refine {
        self.ptr().cast()
    }
    fn init(&mut self, shape: &LwfShape, config: &LwfRefineConfig) -> i32 {
        let (lo, hi) = ([-BOX; 2], [BOX; 2]);
        let mut h = std::ptr::null_mut();
        // SAFETY: valid buffers of the documented lengths.
        let s = unsafe {
            (api().init)(
                self.ptr(),
                self.bytes,
                shape,
                lo.as_ptr(),
                hi.as_ptr(),
                2,
                config,
                &mut h,
            )
        };
        if s == LWF_OK {
            assert_eq!(h, self.handle(), "the handle is the work memory's address");
        }
        s
    }
    /// A byte copy at another address.
    fn copy(&self) -> Work {
        Work {
            words: self.words.clone(),
            bytes: self.bytes,
        }
    }
    fn status(&mut self) -> i32 {
        let mut st = -1;
        // SAFETY: valid handle and output.
        ok(unsafe { (api().status)(self.handle(), &mut st) }, "status");
        st
    }
    fn capacity(&mut self) -> usize {
        let mut c = 0;
        // SAFETY: valid handle and output.
        ok(
            unsafe { (api().batch_capacity)(self.handle(), &mut c) },
            "batch_capacity",
        );
        c
    }
    /// One ask / evaluate / tell step.
    fn step(&mut self) -> LwfRefineRound {
        let cap = self.capacity();
        let mut theta = vec![0.0; cap * 2];
        let mut n = 0;
        // SAFETY: valid handle, theta of cap rows.
        ok(
            unsafe { (api().ask)(self.handle(), theta.as_mut_ptr(), cap, &mut n) },
            "ask",
        );
        let ll: Vec<f64> = theta[..n * 2].chunks(2).map(log_likelihood).collect();
        let mut round = LwfRefineRound::default();
        // SAFETY: valid handle, n values.
        ok(
            unsafe { (api().tell)(self.handle(), ll.as_ptr(), n, &mut round) },
            "tell",
        );
        round
    }
    fn report(&mut self) -> LwfRefineReport {
        let mut r = LwfRefineReport::default();
        // SAFETY: valid handle and output.
        ok(unsafe { (api().report)(self.handle(), &mut r) }, "report");
        r
    }
    /// The returned model in fresh memory.
    fn model(&mut self) -> OwnedModel {
        let mut bytes = 0;
        // SAFETY: valid handle and output.
        ok(
            unsafe { (api().model_size)(self.handle(), &mut bytes) },
            "model_size",
        );
        let mut mem = vec![0u64; bytes.div_ceil(8)];
        let mut m = std::ptr::null_mut();
        // SAFETY: valid handle, memory of `bytes` bytes.
        ok(
            unsafe { (api().write_model)(self.handle(), mem.as_mut_ptr().cast(), bytes, &mut m) },
            "write_model",
        );
        assert_eq!(m, mem.as_mut_ptr().cast());
        OwnedModel { mem }
    }
}

struct OwnedModel {
    mem: Vec<u64>,
}

impl OwnedModel {
    fn handle(&mut self) -> *mut Model {
        self.mem.as_mut_ptr().cast()
    }
    fn shape(&mut self) -> LwfShape {
        let mut s = shape(8, 2);
        // SAFETY: valid handle and output.
        ok(
            unsafe { (api().model_shape)(self.handle(), &mut s) },
            "model_shape",
        );
        s
    }
    fn params(&mut self) -> Vec<f64> {
        let s = self.shape();
        let mut p = 0;
        // SAFETY: valid pointers.
        ok(
            unsafe { (api().shape_param_count)(&s, &mut p) },
            "param_count",
        );
        let mut out = vec![0.0; p];
        // SAFETY: valid handle, out of p doubles.
        ok(
            unsafe { (api().model_get_params)(self.handle(), out.as_mut_ptr(), p) },
            "get_params",
        );
        out
    }
    fn log_prob(&mut self, theta: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; theta.len() / 2];
        // SAFETY: valid buffers.
        ok(
            unsafe {
                (api().model_log_prob)(
                    self.handle(),
                    theta.as_ptr(),
                    theta.len(),
                    out.as_mut_ptr(),
                    out.len(),
                )
            },
            "log_prob",
        );
        out
    }
    fn sample(&mut self, n: usize) -> Vec<f64> {
        let mut rng = LwfRng::default();
        // SAFETY: valid output.
        ok(unsafe { (api().rng_init)(&mut rng, 11) }, "rng_init");
        let (mut theta, mut lq) = (vec![0.0; 2 * n], vec![0.0; n]);
        // SAFETY: valid buffers.
        ok(
            unsafe {
                (api().model_sample)(
                    self.handle(),
                    &mut rng,
                    theta.as_mut_ptr(),
                    2 * n,
                    lq.as_mut_ptr(),
                    n,
                )
            },
            "sample",
        );
        theta
    }
}

/// Everything a finished refinement returns, bit for bit.
#[derive(Debug, PartialEq)]
struct Outcome {
    rounds: Vec<String>,
    report: String,
    shape: LwfShape,
    params: Vec<u64>,
}

fn outcome(w: &mut Work, rounds: &[LwfRefineRound]) -> Outcome {
    assert_ne!(w.status(), RUNNING);
    let mut m = w.model();
    let params = m.params().iter().map(|v| v.to_bits()).collect();
    Outcome {
        // Debug of f64 is exact (shortest round-trip), NaN-safe for the comparison.
        rounds: rounds.iter().map(|r| format!("{r:?}")).collect(),
        report: format!("{:?}", w.report()),
        shape: m.shape(),
        params,
    }
}

fn ask_tell_to_end(w: &mut Work, rounds: &mut Vec<LwfRefineRound>) {
    while w.status() == RUNNING {
        rounds.push(w.step());
    }
}

/// Task 2D2 refined with ask/tell and the defaults: its outcome, report and model memory.
fn refined_2d2() -> &'static (Outcome, LwfRefineReport, Vec<u64>) {
    static RUN: OnceLock<(Outcome, LwfRefineReport, Vec<u64>)> = OnceLock::new();
    RUN.get_or_init(|| {
        let (s, c) = (shape(32, 6), config_default());
        let mut w = Work::new(&s, &c);
        ok(w.init(&s, &c), "init");
        let mut rounds = Vec::new();
        ask_tell_to_end(&mut w, &mut rounds);
        let report = w.report();
        let model = w.model().mem;
        (outcome(&mut w, &rounds), report, model)
    })
}

#[test]
fn ask_tell_on_2d2_meets_the_targets_and_writes_a_model_on_the_box() {
    let (out, r, model) = refined_2d2();
    eprintln!("{r:?}");
    assert!(
        r.status == CONVERGED || r.status == BUDGET_EXHAUSTED,
        "status {}",
        r.status
    );
    assert!(r.calls <= 10_000, "{} calls", r.calls);
    assert!(
        (r.log_z - LOG_Z_TRUE).abs() <= 0.05,
        "ln Z {} vs {LOG_Z_TRUE}",
        r.log_z
    );
    assert_eq!(out.rounds.len(), r.rounds);
    assert_eq!(out.shape.bounded, 1);
    assert_eq!(out.shape.affine, 1);
    let mut m = OwnedModel { mem: model.clone() };
    let inside: Vec<f64> = (0..400)
        .flat_map(|i| {
            let (a, b) = (i % 20, i / 20);
            [-5.9 + 11.8 * a as f64 / 19.0, -5.9 + 11.8 * b as f64 / 19.0]
        })
        .collect();
    assert!(m.log_prob(&inside).iter().all(|v| v.is_finite()));
    let outside = [-6.5, 0.0, 6.5, 0.0, 0.0, 7.0, 0.0, -6.0001, 100.0, 100.0];
    assert!(m.log_prob(&outside).iter().all(|&v| v == f64::NEG_INFINITY));
    let draws = m.sample(5_000);
    assert!(draws.iter().all(|v| (-BOX..=BOX).contains(v)));
    // Both modes are there, about half each.
    let right = draws.chunks(2).filter(|p| p[0] > 0.0).count() as f64 / 5_000.0;
    assert!((right - 0.5).abs() < 0.05, "share right of 0: {right}");
}

#[test]
fn the_callback_form_is_bit_identical_to_ask_tell() {
    let (whole, _, _) = refined_2d2();
    let (s, c) = (shape(32, 6), config_default());
    for batch in [1usize << 20, 333] {
        let mut w = Work::new(&s, &c);
        ok(w.init(&s, &c), "init");
        let mut rounds: Vec<LwfRefineRound> = Vec::new();
        let mut calls = 0usize;
        // SAFETY: valid handle; the callbacks follow the documented contract.
        let st = unsafe {
            (api().run)(
                w.handle(),
                Some(c_log_likelihood),
                batch,
                (&mut calls as *mut usize).cast(),
                Some(record),
                (&mut rounds as *mut Vec<LwfRefineRound>).cast(),
            )
        };
        ok(st, "run");
        let out = outcome(&mut w, &rounds);
        assert!(out == *whole, "batch {batch}: run differs from ask/tell");
        assert_eq!(calls, w.report().calls);
        // A finished refinement: run returns at once.
        // SAFETY: as above.
        let again = unsafe {
            (api().run)(
                w.handle(),
                Some(c_log_likelihood),
                batch,
                std::ptr::null_mut(),
                None,
                std::ptr::null_mut(),
            )
        };
        ok(again, "run when finished");
    }
}

#[test]
fn a_byte_copy_of_the_work_memory_continues_identically() {
    let (whole, _, _) = refined_2d2();
    let (s, c) = (shape(32, 6), config_default());
    let mut w = Work::new(&s, &c);
    ok(w.init(&s, &c), "init");
    let mut rounds = vec![w.step(), w.step()];
    // Suspended between ask and tell too: the copy has the batch outstanding.
    let cap = w.capacity();
    let mut theta = vec![0.0; cap * 2];
    let mut n = 0;
    // SAFETY: valid handle and buffers.
    ok(
        unsafe { (api().ask)(w.handle(), theta.as_mut_ptr(), cap, &mut n) },
        "ask",
    );
    let mut copy = w.copy();
    drop(w);
    // The copy hands out the same batch.
    let mut again = vec![0.0; cap * 2];
    let mut n2 = 0;
    // SAFETY: valid handle (the copy's address) and buffers.
    ok(
        unsafe { (api().ask)(copy.handle(), again.as_mut_ptr(), cap, &mut n2) },
        "ask on the copy",
    );
    assert_eq!(n, n2);
    assert!(theta[..2 * n] == again[..2 * n]);
    let ll: Vec<f64> = again[..n * 2].chunks(2).map(log_likelihood).collect();
    let mut round = LwfRefineRound::default();
    // SAFETY: valid handle and values.
    ok(
        unsafe { (api().tell)(copy.handle(), ll.as_ptr(), n, &mut round) },
        "tell on the copy",
    );
    rounds.push(round);
    // The callback form from there on.
    let mut rest: Vec<LwfRefineRound> = Vec::new();
    // SAFETY: valid handle; the callbacks follow the documented contract.
    ok(
        unsafe {
            (api().run)(
                copy.handle(),
                Some(c_log_likelihood),
                1000,
                std::ptr::null_mut(),
                Some(record),
                (&mut rest as *mut Vec<LwfRefineRound>).cast(),
            )
        },
        "run on the copy",
    );
    rounds.extend(rest);
    assert!(outcome(&mut copy, &rounds) == *whole);
}

/// Runs `call` on the refinement and checks it returns `want` and leaves every byte of the
/// work memory as it was.
fn refused(w: &mut Work, want: i32, what: &str, call: impl FnOnce(*mut Refine) -> i32) {
    let before = w.words.clone();
    let got = call(w.handle());
    assert_eq!(got, want, "{what}");
    assert!(w.words == before, "{what}: the work memory changed");
}

#[test]
fn bad_inputs_return_typed_statuses_and_change_nothing() {
    let a = api();
    let (s, c) = (shape(8, 2), small_config());
    let mut w = Work::new(&s, &c);
    let (lo, hi) = ([-BOX; 2], [BOX; 2]);
    let mut h = std::ptr::null_mut();
    let bytes = w.bytes;

    // Config and sizes.
    let mut size = 0;
    for (i, bad) in [
        LwfRefineConfig {
            struct_size: 8,
            ..c
        },
        LwfRefineConfig {
            ess_fraction: f64::NAN,
            ..c
        },
        LwfRefineConfig { max_rounds: 1, ..c },
        LwfRefineConfig { max_calls: 10, ..c },
        LwfRefineConfig { bounded: 2, ..c },
        LwfRefineConfig { non_finite: 5, ..c },
        LwfRefineConfig {
            max_components: 0,
            ..c
        },
        LwfRefineConfig {
            learning_rate: 0.0,
            ..c
        },
        LwfRefineConfig {
            max_kl: f64::NAN,
            ..c
        },
        LwfRefineConfig { max_kl: -0.1, ..c },
    ]
    .iter()
    .enumerate()
    {
        // SAFETY: valid pointers.
        let st = unsafe { (a.work_size)(&s, bad, &mut size) };
        assert_eq!(st, LWF_INVALID_ARGUMENT, "config case {i}");
    }
    let mut cfg = c;
    // SAFETY: NULL and out-of-range arguments are refused.
    unsafe {
        assert_eq!((a.config_default)(1, &mut cfg), LWF_INVALID_ARGUMENT);
        assert_eq!((a.config_default)(65, &mut cfg), LWF_INVALID_ARGUMENT);
        assert_eq!(
            (a.config_default)(2, std::ptr::null_mut()),
            LWF_NULL_POINTER
        );
        assert_eq!(
            (a.work_size)(std::ptr::null(), &c, &mut size),
            LWF_NULL_POINTER
        );
        assert_eq!(
            (a.work_size)(&s, std::ptr::null(), &mut size),
            LWF_NULL_POINTER
        );
    }
    assert_eq!(size, 0, "refused calls wrote nothing");

    // Init: nothing is written on error.
    let p = w.ptr();
    type InitCall<'a> = Box<dyn Fn(*mut *mut Refine) -> i32 + 'a>;
    let inits: [(i32, &str, InitCall); 9] = [
        // SAFETY (all): the pointers are valid or deliberately NULL / misaligned / short.
        (
            LWF_NULL_POINTER,
            "NULL work",
            Box::new(|h| unsafe {
                (a.init)(
                    std::ptr::null_mut(),
                    bytes,
                    &s,
                    lo.as_ptr(),
                    hi.as_ptr(),
                    2,
                    &c,
                    h,
                )
            }),
        ),
        (
            LWF_BUFFER_TOO_SMALL,
            "short work",
            Box::new(|h| unsafe { (a.init)(p, bytes - 1, &s, lo.as_ptr(), hi.as_ptr(), 2, &c, h) }),
        ),
        (
            LWF_MISALIGNED,
            "misaligned work",
            Box::new(|h| unsafe {
                (a.init)(
                    p.cast::<u8>().add(4).cast(),
                    bytes - 8,
                    &s,
                    lo.as_ptr(),
                    hi.as_ptr(),
                    2,
                    &c,
                    h,
                )
            }),
        ),
        (
            LWF_NULL_POINTER,
            "NULL lo",
            Box::new(|h| unsafe {
                (a.init)(p, bytes, &s, std::ptr::null(), hi.as_ptr(), 2, &c, h)
            }),
        ),
        (
            LWF_LENGTH_MISMATCH,
            "dim 1",
            Box::new(|h| unsafe { (a.init)(p, bytes, &s, lo.as_ptr(), hi.as_ptr(), 1, &c, h) }),
        ),
        (
            LWF_INVALID_ARGUMENT,
            "lo >= hi",
            Box::new(|h| unsafe { (a.init)(p, bytes, &s, hi.as_ptr(), lo.as_ptr(), 2, &c, h) }),
        ),
        (
            LWF_NON_FINITE,
            "NaN bound",
            Box::new(|h| unsafe {
                let nan = [f64::NAN, 0.0];
                (a.init)(p, bytes, &s, nan.as_ptr(), hi.as_ptr(), 2, &c, h)
            }),
        ),
        (
            LWF_OVERLAPPING_BUFFERS,
            "handle inside work",
            Box::new(|_| unsafe {
                (a.init)(
                    p,
                    bytes,
                    &s,
                    lo.as_ptr(),
                    hi.as_ptr(),
                    2,
                    &c,
                    p.cast::<u8>().add(64).cast(),
                )
            }),
        ),
        (
            LWF_NULL_POINTER,
            "NULL handle",
            Box::new(|_| unsafe {
                (a.init)(
                    p,
                    bytes,
                    &s,
                    lo.as_ptr(),
                    hi.as_ptr(),
                    2,
                    &c,
                    std::ptr::null_mut(),
                )
            }),
        ),
    ];
    for (want, what, call) in &inits {
        let before = w.words.clone();
        assert_eq!(call(&mut h), *want, "init: {what}");
        assert!(h.is_null(), "init: {what} wrote the handle");
        assert!(w.words == before, "init: {what} wrote the work memory");
    }

    // A zeroed and a garbage buffer are not refinements.
    let mut st = 0;
    let mut n = 0;
    let mut theta = vec![0.0; 2 * 400];
    for fill in [0u64, 0x5a5a_5a5a_5a5a_5a5a] {
        w.words.iter_mut().for_each(|v| *v = fill);
        refused(&mut w, LWF_INVALID_MODEL, "status of garbage", |r| unsafe {
            (a.status)(r, &mut st)
        });
        refused(&mut w, LWF_INVALID_MODEL, "ask on garbage", |r| unsafe {
            (a.ask)(r, theta.as_mut_ptr(), 400, &mut n)
        });
        refused(&mut w, LWF_INVALID_MODEL, "tell on garbage", |r| unsafe {
            (a.tell)(r, theta.as_ptr(), 0, std::ptr::null_mut())
        });
        refused(&mut w, LWF_INVALID_MODEL, "run on garbage", |r| unsafe {
            (a.run)(
                r,
                Some(c_log_likelihood),
                10,
                std::ptr::null_mut(),
                None,
                std::ptr::null_mut(),
            )
        });
    }
    // SAFETY: NULL handles.
    unsafe {
        assert_eq!((a.status)(std::ptr::null(), &mut st), LWF_NULL_POINTER);
        assert_eq!(
            (a.ask)(std::ptr::null_mut(), theta.as_mut_ptr(), 400, &mut n),
            LWF_NULL_POINTER
        );
    }

    ok(w.init(&s, &c), "init");
    assert_eq!(w.status(), RUNNING);
    let cap = w.capacity();
    assert_eq!(cap, 300);
    let mut round = LwfRefineRound::default();
    // Tell before ask.
    let ll = vec![0.0; cap];
    refused(
        &mut w,
        LWF_INVALID_ARGUMENT,
        "tell before ask",
        |r| unsafe { (a.tell)(r, ll.as_ptr(), cap, &mut round) },
    );
    let mut report = LwfRefineReport::default();
    refused(
        &mut w,
        LWF_INVALID_ARGUMENT,
        "report while running",
        |r| unsafe { (a.report)(r, &mut report) },
    );
    let mut mem = vec![0u64; 1 << 16];
    let mut model = std::ptr::null_mut();
    refused(
        &mut w,
        LWF_INVALID_ARGUMENT,
        "model while running",
        |r| unsafe { (a.write_model)(r, mem.as_mut_ptr().cast(), 8 << 16, &mut model) },
    );
    refused(
        &mut w,
        LWF_BUFFER_TOO_SMALL,
        "ask with little room",
        |r| unsafe { (a.ask)(r, theta.as_mut_ptr(), 10, &mut n) },
    );
    refused(&mut w, LWF_NULL_POINTER, "ask without out_n", |r| unsafe {
        (a.ask)(r, theta.as_mut_ptr(), 400, std::ptr::null_mut())
    });
    refused(
        &mut w,
        LWF_OVERLAPPING_BUFFERS,
        "ask into the work",
        |r| unsafe { (a.ask)(r, r.cast::<f64>().add(64), 400, &mut n) },
    );
    refused(&mut w, LWF_MISALIGNED, "misaligned handle", |r| unsafe {
        (a.ask)(
            r.cast::<u8>().add(4).cast(),
            theta.as_mut_ptr(),
            400,
            &mut n,
        )
    });
    refused(
        &mut w,
        LWF_INVALID_ARGUMENT,
        "run with batch 0",
        |r| unsafe {
            (a.run)(
                r,
                Some(c_log_likelihood),
                0,
                std::ptr::null_mut(),
                None,
                std::ptr::null_mut(),
            )
        },
    );
    refused(
        &mut w,
        LWF_NULL_POINTER,
        "run without a likelihood",
        |r| unsafe {
            (a.run)(
                r,
                None,
                10,
                std::ptr::null_mut(),
                None,
                std::ptr::null_mut(),
            )
        },
    );

    // Ask, then bad tells: nothing changes, the same tell can follow.
    // SAFETY: valid buffers.
    ok(
        unsafe { (a.ask)(w.handle(), theta.as_mut_ptr(), 400, &mut n) },
        "ask",
    );
    assert!(n > 0 && n <= cap);
    let mut ll: Vec<f64> = theta[..2 * n].chunks(2).map(log_likelihood).collect();
    refused(&mut w, LWF_LENGTH_MISMATCH, "tell n - 1", |r| unsafe {
        (a.tell)(r, ll.as_ptr(), n - 1, &mut round)
    });
    refused(&mut w, LWF_NULL_POINTER, "tell NULL", |r| unsafe {
        (a.tell)(r, std::ptr::null(), n, &mut round)
    });
    ll[3] = f64::NAN;
    refused(&mut w, LWF_NON_FINITE, "tell NaN", |r| unsafe {
        (a.tell)(r, ll.as_ptr(), n, &mut round)
    });
    ll[3] = f64::INFINITY;
    refused(&mut w, LWF_NON_FINITE, "tell +inf", |r| unsafe {
        (a.tell)(r, ll.as_ptr(), n, &mut round)
    });
    refused(
        &mut w,
        LWF_OVERLAPPING_BUFFERS,
        "round inside the work",
        |r| unsafe {
            let ll = ll.clone();
            (a.tell)(r, ll.as_ptr(), n, r.cast::<u8>().add(256).cast())
        },
    );
    // A failing callback: LWF_CALLBACK_FAILED, the batch stays outstanding (its values
    // scratch is the only memory written); the same batch is handed out again below.
    type Callback = unsafe extern "C" fn(*const f64, usize, usize, *mut f64, *mut c_void) -> c_int;
    for (f, what) in [
        (failing as Callback, "the likelihood fails"),
        (silent as Callback, "values left unwritten"),
    ] {
        // SAFETY: valid handle; the callbacks follow the contract.
        let st = unsafe {
            (a.run)(
                w.handle(),
                Some(f),
                50,
                std::ptr::null_mut(),
                None,
                std::ptr::null_mut(),
            )
        };
        assert_eq!(st, LWF_CALLBACK_FAILED, "run: {what}");
        assert_eq!(w.status(), RUNNING);
    }
    ll[3] = log_likelihood(&theta[6..8]);
    // Asking again hands out the same batch.
    let mut again = vec![0.0; 2 * 400];
    let mut n2 = 0;
    // SAFETY: valid buffers.
    ok(
        unsafe { (a.ask)(w.handle(), again.as_mut_ptr(), 400, &mut n2) },
        "ask again",
    );
    assert!(n2 == n && again[..2 * n] == theta[..2 * n]);
    // SAFETY: valid buffers.
    ok(
        unsafe { (a.tell)(w.handle(), ll.as_ptr(), n, &mut round) },
        "tell",
    );
    assert_eq!(round.round, 0);
    assert_eq!(round.calls, n);

    // The callback form, cancelled after one round: LWF_CANCELLED, the round is kept.
    // SAFETY: valid handle and callbacks.
    let st = unsafe {
        (a.run)(
            w.handle(),
            Some(c_log_likelihood),
            64,
            std::ptr::null_mut(),
            Some(cancel),
            std::ptr::null_mut(),
        )
    };
    assert_eq!(st, LWF_CANCELLED);
    assert_eq!(w.status(), RUNNING);
    // SAFETY: valid handle and callbacks.
    ok(
        unsafe {
            (a.run)(
                w.handle(),
                Some(c_log_likelihood),
                64,
                std::ptr::null_mut(),
                None,
                std::ptr::null_mut(),
            )
        },
        "run to the end",
    );
    assert_ne!(w.status(), RUNNING);
    refused(
        &mut w,
        LWF_INVALID_ARGUMENT,
        "ask when finished",
        |r| unsafe { (a.ask)(r, theta.as_mut_ptr(), 400, &mut n) },
    );
    refused(
        &mut w,
        LWF_INVALID_ARGUMENT,
        "tell when finished",
        |r| unsafe { (a.tell)(r, ll.as_ptr(), 0, &mut round) },
    );
    let mut msize = 0;
    // SAFETY: valid handle and output.
    ok(
        unsafe { (a.model_size)(w.handle(), &mut msize) },
        "model_size",
    );
    refused(
        &mut w,
        LWF_BUFFER_TOO_SMALL,
        "model memory short",
        |r| unsafe { (a.write_model)(r, mem.as_mut_ptr().cast(), msize - 1, &mut model) },
    );
    refused(
        &mut w,
        LWF_OVERLAPPING_BUFFERS,
        "model inside the work",
        |r| unsafe { (a.write_model)(r, r.cast(), msize, &mut model) },
    );
    assert!(model.is_null());
    // A byte of the state flipped: the checksum catches it, nothing runs.
    let mut broken = w.copy();
    let st_byte = 128 + 100;
    broken.words[st_byte / 8] ^= 1 << 9;
    refused(
        &mut broken,
        LWF_INVALID_MODEL,
        "flipped state byte",
        |r| unsafe { (a.report)(r, &mut report) },
    );

    // NaN under the skip policy is a zero likelihood.
    let skip = LwfRefineConfig { non_finite: 1, ..c };
    let mut w2 = Work::new(&s, &skip);
    ok(w2.init(&s, &skip), "init skip");
    // SAFETY: valid buffers.
    ok(
        unsafe { (a.ask)(w2.handle(), theta.as_mut_ptr(), 400, &mut n) },
        "ask",
    );
    let mut ll: Vec<f64> = theta[..2 * n].chunks(2).map(log_likelihood).collect();
    ll[0] = f64::NAN;
    // SAFETY: valid buffers.
    ok(
        unsafe { (a.tell)(w2.handle(), ll.as_ptr(), n, &mut round) },
        "tell NaN under skip",
    );

    // A failed fit ends the refinement: every weight zero.
    let mut w3 = Work::new(&s, &c);
    ok(w3.init(&s, &c), "init");
    // SAFETY: valid buffers.
    ok(
        unsafe { (a.ask)(w3.handle(), theta.as_mut_ptr(), 400, &mut n) },
        "ask",
    );
    let zero = vec![f64::NEG_INFINITY; n];
    // SAFETY: valid buffers.
    let st = unsafe { (a.tell)(w3.handle(), zero.as_ptr(), n, &mut round) };
    assert_eq!(st, LWF_DEGENERATE_WEIGHTS);
    assert_eq!(w3.status(), FAILED);
    refused(
        &mut w3,
        LWF_DEGENERATE_WEIGHTS,
        "ask after a failure",
        |r| unsafe { (a.ask)(r, theta.as_mut_ptr(), 400, &mut n) },
    );
    refused(
        &mut w3,
        LWF_INVALID_ARGUMENT,
        "report after a failure",
        |r| unsafe { (a.report)(r, &mut report) },
    );
}

// ---------------------------------------------------------------------------------------
// The C program.

fn compile_c(source: &str, dir: &Path) -> Option<std::path::PathBuf> {
    let cc = tool("CC", "cc", "C caller")?;
    let exe = dir.join(Path::new(source).file_stem().expect("file name"));
    let mut cmd = Command::new(cc);
    cmd.args([
        "-std=c11",
        "-Wall",
        "-Wextra",
        "-Wpedantic",
        "-Werror",
        "-O2",
    ])
    .arg("-I")
    .arg(repo().join("include"))
    .arg(repo().join(source))
    .arg(staticlib())
    .args(native_libs())
    .arg("-o")
    .arg(&exe);
    run(cmd);
    Some(exe)
}

#[test]
fn c_program_refines_2d2_with_ask_tell_and_the_callback() {
    let dir = scratch("refine_2d2");
    let Some(exe) = compile_c("examples/c/refine_2d2.c", &dir) else {
        return;
    };
    let out = run(Command::new(&exe));
    eprint!("{out}");
    let status = result_field(&out, "status");
    assert!(status == 1.0 || status == 2.0, "status {status}");
    assert!(result_field(&out, "calls") <= 10_000.0);
    assert!((result_field(&out, "log_z") - LOG_Z_TRUE).abs() <= 0.05);
    assert_eq!(result_field(&out, "inside_finite"), 1.0);
    assert_eq!(result_field(&out, "outside_neg_inf"), 1.0);
    assert_eq!(result_field(&out, "samples_inside"), 1.0);
    assert_eq!(result_field(&out, "run_identical"), 1.0);
    assert_eq!(result_field(&out, "copy_identical"), 1.0);
    // The same numbers as the same refinement through the library from Rust.
    let (_, r, _) = refined_2d2();
    assert_eq!(result_field(&out, "log_z"), r.log_z);
    assert_eq!(result_field(&out, "calls"), r.calls as f64);
}

#[test]
fn c_refine_program_is_valgrind_clean() {
    let dir = scratch("refine_2d2_quick");
    let Some(exe) = compile_c("examples/c/refine_2d2.c", &dir) else {
        return;
    };
    run_valgrind(&exe, &["quick"]);
}

#[test]
fn max_kl_has_the_cores_defaults_and_bad_values_change_nothing() {
    assert_eq!(config_default_for(2).max_kl, 0.005);
    assert_eq!(config_default_for(3).max_kl, 0.005);
    assert_eq!(config_default_for(4).max_kl, 0.02);
    assert_eq!(config_default_for(64).max_kl, 0.02);
    let (s, c) = (shape(8, 2), small_config());
    let mut w = Work::new(&s, &c);
    let (lo, hi) = ([-BOX; 2], [BOX; 2]);
    for bad in [f64::NAN, -1e-9, -1.0, f64::INFINITY, f64::NEG_INFINITY] {
        let cfg = LwfRefineConfig { max_kl: bad, ..c };
        let mut size = 0;
        // SAFETY: valid pointers.
        let st = unsafe { (api().work_size)(&s, &cfg, &mut size) };
        assert_eq!(st, LWF_INVALID_ARGUMENT, "work_size, max_kl {bad}");
        assert_eq!(size, 0);
        let bytes = w.bytes;
        refused(
            &mut w,
            LWF_INVALID_ARGUMENT,
            "init with a bad max_kl",
            |p| {
                let mut h = std::ptr::null_mut();
                // SAFETY: valid buffers of the documented lengths.
                let st = unsafe {
                    (api().init)(
                        p.cast(),
                        bytes,
                        &s,
                        lo.as_ptr(),
                        hi.as_ptr(),
                        2,
                        &cfg,
                        &mut h,
                    )
                };
                assert!(h.is_null(), "the handle was written");
                st
            },
        );
    }
}

/// The refinement's end with `max_kl` as given and every other setting the default, on a
/// budget of 6,000 calls (2D2 converges after 4,500 with the defaults).
fn refine_2d2_with_max_kl(max_kl: f64) -> LwfRefineReport {
    let s = shape(32, 6);
    let c = LwfRefineConfig {
        max_calls: 6_000,
        max_kl,
        ..config_default()
    };
    let mut w = Work::new(&s, &c);
    ok(w.init(&s, &c), "init");
    // SAFETY: valid handle; the callback follows the documented contract.
    ok(
        unsafe {
            (api().run)(
                w.handle(),
                Some(c_log_likelihood),
                1 << 20,
                std::ptr::null_mut(),
                None,
                std::ptr::null_mut(),
            )
        },
        "run",
    );
    w.report()
}

#[test]
fn a_tiny_max_kl_is_never_met_while_the_default_converges() {
    let default = refine_2d2_with_max_kl(config_default().max_kl);
    eprintln!("default max_kl: {default:?}");
    assert_eq!(default.status, CONVERGED);
    // The estimate is 0 only when every weight of the check round is equal: 1e-9 is out of
    // reach, so the refinement spends its whole budget although every other target holds.
    let tiny = refine_2d2_with_max_kl(1e-9);
    eprintln!("max_kl 1e-9: {tiny:?}");
    assert_eq!(tiny.status, BUDGET_EXHAUSTED);
    assert!(tiny.calls <= 6_000 && tiny.calls > default.calls);
    assert_eq!(
        tiny.has_k_hat, 0,
        "the final model was fitted after the budget ran out"
    );
}
