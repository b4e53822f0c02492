//! The C ABI exercised from Rust through the built `liblwflow.so` (loaded with libloading, so
//! these are the real exported symbols): two models on two threads are independent, one model
//! can be read by many threads with their own workspaces, combining the gradients of a split
//! batch reproduces the whole batch's gradient to 1e-12 (the MPI recipe), and the ABI's rng
//! and sampling agree with the Rust API.

mod common;

use lwflow::rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use std::ffi::c_void;
use std::sync::OnceLock;

use common::LwfShape;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct LwfAdam {
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
struct LwfRng {
    state: [u64; 4],
}

type Model = c_void;
const LWF_OK: i32 = 0;
const LWF_BASE_MIXTURE: i32 = 2;

/// The exported functions these tests call (statuses read as `int`).
struct Api {
    shape_default: unsafe extern "C" fn(usize, usize, usize, *mut LwfShape) -> i32,
    shape_model_size: unsafe extern "C" fn(*const LwfShape, *mut usize) -> i32,
    shape_param_count: unsafe extern "C" fn(*const LwfShape, *mut usize) -> i32,
    shape_workspace_count: unsafe extern "C" fn(*const LwfShape, *mut usize) -> i32,
    model_init:
        unsafe extern "C" fn(*mut c_void, usize, *const LwfShape, u64, *mut *mut Model) -> i32,
    model_get_params: unsafe extern "C" fn(*const Model, *mut f64, usize) -> i32,
    model_set_mixture_base: unsafe extern "C" fn(
        *mut Model,
        *const f64,
        usize,
        *const f64,
        usize,
        *const f64,
        usize,
    ) -> i32,
    model_log_prob: unsafe extern "C" fn(*mut Model, *const f64, usize, *mut f64, usize) -> i32,
    model_log_prob_ws: unsafe extern "C" fn(
        *const Model,
        *const f64,
        usize,
        *mut f64,
        usize,
        *mut f64,
        usize,
    ) -> i32,
    model_sample:
        unsafe extern "C" fn(*mut Model, *mut LwfRng, *mut f64, usize, *mut f64, usize) -> i32,
    model_loss_grad: unsafe extern "C" fn(
        *mut Model,
        *const f64,
        usize,
        *const f64,
        usize,
        *mut f64,
        usize,
        *mut f64,
    ) -> i32,
    model_loss_grad_accumulate: unsafe extern "C" fn(
        *mut Model,
        *const f64,
        usize,
        *const f64,
        usize,
        f64,
        *mut f64,
        usize,
        *mut f64,
    ) -> i32,
    adam_default: unsafe extern "C" fn(*mut LwfAdam) -> i32,
    model_adam_step: unsafe extern "C" fn(*mut Model, *const LwfAdam, *const f64, usize) -> i32,
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
            shape_model_size: sym!("lwf_shape_model_size"),
            shape_param_count: sym!("lwf_shape_param_count"),
            shape_workspace_count: sym!("lwf_shape_workspace_count"),
            model_init: sym!("lwf_model_init"),
            model_get_params: sym!("lwf_model_get_params"),
            model_set_mixture_base: sym!("lwf_model_set_mixture_base"),
            model_log_prob: sym!("lwf_model_log_prob"),
            model_log_prob_ws: sym!("lwf_model_log_prob_ws"),
            model_sample: sym!("lwf_model_sample"),
            model_loss_grad: sym!("lwf_model_loss_grad"),
            model_loss_grad_accumulate: sym!("lwf_model_loss_grad_accumulate"),
            adam_default: sym!("lwf_adam_default"),
            model_adam_step: sym!("lwf_model_adam_step"),
            rng_init: sym!("lwf_rng_init"),
        }
    })
}

fn ok(status: i32, what: &str) {
    assert_eq!(status, LWF_OK, "{what} returned status {status}");
}

fn mixture_shape() -> LwfShape {
    let mut s = std::mem::MaybeUninit::<LwfShape>::uninit();
    // SAFETY: `s` is writable; the call writes it on success (checked).
    ok(
        unsafe { (api().shape_default)(3, 16, 3, s.as_mut_ptr()) },
        "shape_default",
    );
    // SAFETY: written by the successful call above.
    let mut s = unsafe { s.assume_init() };
    s.base = LWF_BASE_MIXTURE;
    s.components = 2;
    s
}

/// A model in memory owned by this struct (a `Vec<f64>` is 8-byte aligned).
struct OwnedModel {
    _mem: Vec<f64>,
    handle: *mut Model,
    params: usize,
    workspace: usize,
    dim: usize,
}

// SAFETY: the handle points into `_mem`, owned by the struct; the library keeps no other state.
unsafe impl Send for OwnedModel {}
// SAFETY: shared references are only used for calls taking `const LwfModel *`, which the ABI
// documents as safe to run concurrently.
unsafe impl Sync for OwnedModel {}

impl OwnedModel {
    fn new(shape: &LwfShape, seed: u64) -> OwnedModel {
        let a = api();
        let (mut bytes, mut params, mut workspace) = (0, 0, 0);
        // SAFETY: valid pointers to locals.
        unsafe {
            ok((a.shape_model_size)(shape, &mut bytes), "model_size");
            ok((a.shape_param_count)(shape, &mut params), "param_count");
            ok(
                (a.shape_workspace_count)(shape, &mut workspace),
                "workspace_count",
            );
        }
        let mut mem = vec![0.0f64; bytes.div_ceil(8)];
        let mut handle = std::ptr::null_mut();
        // SAFETY: `mem` holds at least `bytes` bytes, 8-byte aligned.
        ok(
            unsafe { (a.model_init)(mem.as_mut_ptr().cast(), bytes, shape, seed, &mut handle) },
            "model_init",
        );
        let mut m = OwnedModel {
            _mem: mem,
            handle,
            params,
            workspace,
            dim: shape.dim,
        };
        let (w, mu, sd) = ([0.5, 0.5], [-2.5, 0.0, 0.0, 2.5, 0.0, 0.0], [0.8; 6]);
        // SAFETY: arrays of the stated lengths.
        ok(
            unsafe {
                (a.model_set_mixture_base)(m.handle, w.as_ptr(), 2, mu.as_ptr(), 6, sd.as_ptr(), 6)
            },
            "set_mixture_base",
        );
        m.handle = handle;
        m
    }

    fn params(&self) -> Vec<f64> {
        let mut p = vec![0.0; self.params];
        // SAFETY: `p` has `params` elements.
        ok(
            unsafe { (api().model_get_params)(self.handle, p.as_mut_ptr(), p.len()) },
            "get_params",
        );
        p
    }

    fn loss_grad(&mut self, theta: &[f64], w: &[f64]) -> (f64, Vec<f64>) {
        let mut g = vec![0.0; self.params];
        let mut loss = 0.0;
        // SAFETY: buffers of the stated lengths.
        ok(
            unsafe {
                (api().model_loss_grad)(
                    self.handle,
                    theta.as_ptr(),
                    theta.len(),
                    w.as_ptr(),
                    w.len(),
                    g.as_mut_ptr(),
                    g.len(),
                    &mut loss,
                )
            },
            "loss_grad",
        );
        (loss, g)
    }

    fn accumulate(&mut self, theta: &[f64], w: &[f64], scale: f64, g: &mut [f64], loss: &mut f64) {
        // SAFETY: buffers of the stated lengths.
        ok(
            unsafe {
                (api().model_loss_grad_accumulate)(
                    self.handle,
                    theta.as_ptr(),
                    theta.len(),
                    w.as_ptr(),
                    w.len(),
                    scale,
                    g.as_mut_ptr(),
                    g.len(),
                    loss,
                )
            },
            "loss_grad_accumulate",
        );
    }

    fn adam_step(&mut self, adam: &LwfAdam, g: &[f64]) {
        // SAFETY: `g` has `params` elements.
        ok(
            unsafe { (api().model_adam_step)(self.handle, adam, g.as_ptr(), g.len()) },
            "adam_step",
        );
    }

    fn log_prob(&mut self, theta: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; theta.len() / self.dim];
        // SAFETY: buffers of the stated lengths.
        ok(
            unsafe {
                (api().model_log_prob)(
                    self.handle,
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

    fn log_prob_shared(&self, theta: &[f64], ws: &mut [f64]) -> Vec<f64> {
        let mut out = vec![0.0; theta.len() / self.dim];
        // SAFETY: buffers of the stated lengths; the model is only read.
        ok(
            unsafe {
                (api().model_log_prob_ws)(
                    self.handle,
                    theta.as_ptr(),
                    theta.len(),
                    out.as_mut_ptr(),
                    out.len(),
                    ws.as_mut_ptr(),
                    ws.len(),
                )
            },
            "log_prob_ws",
        );
        out
    }

    fn sample(&mut self, rng: &mut LwfRng, n: usize) -> (Vec<f64>, Vec<f64>) {
        let (mut x, mut lq) = (vec![0.0; n * self.dim], vec![0.0; n]);
        // SAFETY: buffers of the stated lengths.
        ok(
            unsafe {
                (api().model_sample)(
                    self.handle,
                    rng,
                    x.as_mut_ptr(),
                    x.len(),
                    lq.as_mut_ptr(),
                    n,
                )
            },
            "sample",
        );
        (x, lq)
    }
}

fn rng(seed: u64) -> LwfRng {
    let mut r = LwfRng { state: [0; 4] };
    // SAFETY: writable local.
    ok(unsafe { (api().rng_init)(&mut r, seed) }, "rng_init");
    r
}

fn adam() -> LwfAdam {
    let mut a = LwfAdam {
        lr: 0.0,
        beta1: 0.0,
        beta2: 0.0,
        eps: 0.0,
        weight_decay: 0.0,
    };
    // SAFETY: writable local.
    ok(unsafe { (api().adam_default)(&mut a) }, "adam_default");
    a.lr = 1e-2;
    a
}

/// A deterministic batch: n points in 3-D with positive weights.
fn batch(n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut s = seed;
    let mut next = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let theta = (0..3 * n).map(|_| 8.0 * next() - 4.0).collect();
    let w = (0..n).map(|_| 2.0 * next()).collect();
    (theta, w)
}

/// Trains a fresh model for `steps` full-batch steps, then samples: everything observable.
fn train_and_sample(seed: u64, steps: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut m = OwnedModel::new(&mixture_shape(), seed);
    let (theta, w) = batch(200, seed);
    let a = adam();
    for _ in 0..steps {
        let (_, g) = m.loss_grad(&theta, &w);
        m.adam_step(&a, &g);
    }
    let (x, lq) = m.sample(&mut rng(seed), 100);
    (m.params(), x, lq)
}

#[test]
fn two_models_on_two_threads_at_once_are_independent() {
    let alone_1 = train_and_sample(1, 60);
    let alone_2 = train_and_sample(2, 60);
    let barrier = std::sync::Barrier::new(2);
    let (together_1, together_2) = std::thread::scope(|s| {
        let t1 = s.spawn(|| {
            barrier.wait();
            train_and_sample(1, 60)
        });
        let t2 = s.spawn(|| {
            barrier.wait();
            train_and_sample(2, 60)
        });
        (t1.join().unwrap(), t2.join().unwrap())
    });
    assert_eq!(
        alone_1, together_1,
        "model 1 changed when model 2 ran at the same time"
    );
    assert_eq!(
        alone_2, together_2,
        "model 2 changed when model 1 ran at the same time"
    );
    assert_ne!(alone_1.0, alone_2.0);
}

#[test]
fn one_model_read_by_many_threads_with_own_workspaces() {
    let mut m = OwnedModel::new(&mixture_shape(), 3);
    let (theta, w) = batch(300, 3);
    let a = adam();
    for _ in 0..10 {
        let (_, g) = m.loss_grad(&theta, &w);
        m.adam_step(&a, &g);
    }
    let want = m.log_prob(&theta);
    let m = &m;
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let mut ws = vec![0.0; m.workspace];
                for _ in 0..20 {
                    assert_eq!(m.log_prob_shared(&theta, &mut ws), want);
                }
            });
        }
    });
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).fold(0.0, |d, (x, y)| d.max((x - y).abs()))
}

#[test]
fn split_batch_gradients_combine_to_the_whole_batch_gradient() {
    let mut m = OwnedModel::new(&mixture_shape(), 4);
    let (theta, w) = batch(250, 4);
    let a = adam();
    for _ in 0..15 {
        // move every parameter (including the zero-initialised last layers) off its start
        let (_, g) = m.loss_grad(&theta, &w);
        m.adam_step(&a, &g);
    }
    let (loss, whole) = m.loss_grad(&theta, &w);
    let n = w.len();
    let scale = whole.iter().fold(1.0f64, |s, g| s.max(g.abs()));
    // An uneven split, as two MPI ranks with 97 and 153 samples would hold.
    let (n1, d) = (97, 3);
    let parts = [(&theta[..n1 * d], &w[..n1]), (&theta[n1 * d..], &w[n1..])];

    // Recipe 1: accumulate with scale 1/N into zeroed buffers, then sum (MPI_Allreduce).
    let mut summed = vec![0.0; whole.len()];
    let mut summed_loss = 0.0;
    for (t, wt) in parts {
        let mut g = vec![0.0; whole.len()];
        let mut l = 0.0;
        m.accumulate(t, wt, 1.0 / n as f64, &mut g, &mut l);
        summed.iter_mut().zip(&g).for_each(|(s, v)| *s += v);
        summed_loss += l;
    }
    assert!(
        max_abs_diff(&summed, &whole) <= 1e-12 * scale,
        "recipe 1: {}",
        max_abs_diff(&summed, &whole)
    );
    assert!((summed_loss - loss).abs() <= 1e-12 * loss.abs().max(1.0));

    eprintln!(
        "whole-batch loss {loss:.6}, max |grad| {scale:.3e}, recipe 1 max diff {:.3e}",
        max_abs_diff(&summed, &whole)
    );

    // Recipe 2: each part's mean gradient weighted by n_r / N, then summed.
    let mut combined = vec![0.0; whole.len()];
    let mut combined_loss = 0.0;
    for (t, wt) in parts {
        let (l, g) = m.loss_grad(t, wt);
        let share = wt.len() as f64 / n as f64;
        combined
            .iter_mut()
            .zip(&g)
            .for_each(|(c, v)| *c += share * v);
        combined_loss += share * l;
    }
    assert!(
        max_abs_diff(&combined, &whole) <= 1e-12 * scale,
        "recipe 2: {}",
        max_abs_diff(&combined, &whole)
    );
    assert!((combined_loss - loss).abs() <= 1e-12 * loss.abs().max(1.0));

    // Data-parallel training: two "ranks" with models from the same seed, each computing its
    // part, all-reducing and stepping, stay bit-identical and track single-process training.
    let mut ranks = [
        OwnedModel::new(&mixture_shape(), 9),
        OwnedModel::new(&mixture_shape(), 9),
    ];
    let mut single = OwnedModel::new(&mixture_shape(), 9);
    for _ in 0..20 {
        let mut reduced = vec![0.0; whole.len()];
        let mut l = 0.0;
        for (rank, (t, wt)) in ranks.iter_mut().zip(parts) {
            rank.accumulate(t, wt, 1.0 / n as f64, &mut reduced, &mut l);
        }
        for rank in ranks.iter_mut() {
            rank.adam_step(&a, &reduced);
        }
        let (_, g) = single.loss_grad(&theta, &w);
        single.adam_step(&a, &g);
    }
    assert_eq!(ranks[0].params(), ranks[1].params());
    assert!(max_abs_diff(&ranks[0].params(), &single.params()) < 1e-9);
}

#[test]
fn sampling_in_chunks_equals_sampling_at_once() {
    // dim 3 with a mixture base: samples use an odd number of normals each.
    let mut m = OwnedModel::new(&mixture_shape(), 6);
    let (all, all_lq) = m.sample(&mut rng(8), 100);
    let mut r = rng(8);
    let (first, first_lq) = m.sample(&mut r, 37);
    let (rest, rest_lq) = m.sample(&mut r, 63);
    assert_eq!([first, rest].concat(), all);
    assert_eq!([first_lq, rest_lq].concat(), all_lq);
}

#[test]
fn abi_rng_and_sampling_agree_with_the_rust_api() {
    for seed in [0, 1, 42, u64::MAX] {
        let state = Xoshiro256PlusPlus::seed_from_u64(seed).state();
        let words: Vec<u64> = state
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(rng(seed).state.as_slice(), words.as_slice());
    }
    // The same parameters and seed give the same samples through the ABI and the Rust API.
    let mut m = OwnedModel::new(&mixture_shape(), 5);
    let (x_abi, lq_abi) = m.sample(&mut rng(77), 50);
    let shape = lwflow::Shape::new(3, 16, 3).with_base(lwflow::BaseKind::Mixture(2));
    let params = m.params();
    let flow = lwflow::Flow::new(shape, &params).unwrap();
    let (mut x, mut lq) = (vec![0.0; 150], vec![0.0; 50]);
    let mut ws = vec![0.0; shape.workspace_len()];
    flow.sample(
        &mut Xoshiro256PlusPlus::seed_from_u64(77),
        &mut x,
        &mut lq,
        &mut ws,
    )
    .unwrap();
    assert_eq!(x, x_abi);
    assert_eq!(lq, lq_abi);
}
