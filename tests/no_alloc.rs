//! The core never allocates: a counting global allocator sees zero allocations during
//! log_prob (batch and single sample), sample, forward, inverse, gradient (stored and
//! recompute mode), Adam, save and load, and a whole refinement.

mod common;
use common::*;
use lwflow::{format, Adam, BaseKind, Flow, Shape};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;
// Per thread: the test harness runs the tests on parallel threads.
thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn bump() {
    ALLOCATIONS.with(|c| c.set(c.get() + 1));
}

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn count<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let before = ALLOCATIONS.with(Cell::get);
    let r = f();
    (r, ALLOCATIONS.with(Cell::get) - before)
}

fn check_paths<T: lwflow::Real>(shape: Shape) {
    let n = 1000;
    let mut params: Vec<T> = random_params(&shape, 1, 0.2);
    let theta: Vec<T> = random_points(n, shape.dim, 2, 3.0);
    let weights = vec![T::ONE; n];
    let mut ws = vec![T::ZERO; shape.workspace_len()];
    let mut out = vec![T::ZERO; n];
    let mut x = vec![T::ZERO; n * shape.dim];
    let mut grad = vec![T::ZERO; shape.param_len()];
    let mut adam_state = vec![T::ZERO; shape.optimizer_len()];
    let mut bytes = vec![0u8; format::serialized_len(&shape, T::BYTES)];
    let mut rng = rng(3);
    let adam = Adam {
        weight_decay: 1e-4,
        ..Adam::default()
    };
    let (res, allocs) = count(|| {
        let flow = Flow::new(shape, &params)?;
        flow.log_prob(&theta, &mut out, &mut ws)?;
        // The single-sample path (the latency benchmark's).
        flow.log_prob(&theta[..shape.dim], &mut out[..1], &mut ws)?;
        flow.sample(&mut rng, &mut x, &mut out, &mut ws)?;
        flow.forward(&theta, &mut x, &mut out, &mut ws)?;
        flow.inverse(&theta, &mut x, &mut out, &mut ws)?;
        flow.loss_and_gradient(&theta, &weights, &mut grad, &mut ws)?;
        flow.loss_and_gradient_recompute(&theta, &weights, &mut grad, &mut ws)?;
        adam.step(&shape, &mut params, &grad, &mut adam_state, 1)?;
        format::save(&shape, &params, &mut bytes)?;
        format::load(&bytes, &mut params)?;
        // Error paths do not allocate either.
        let e = Flow::new(shape, &params)?.log_prob(&theta[1..], &mut out, &mut ws);
        assert!(e.is_err());
        Ok::<(), lwflow::Error>(())
    });
    res.unwrap();
    assert_eq!(allocs, 0, "{shape:?}: {allocs} allocations");
}

#[test]
fn hot_paths_do_not_allocate() {
    check_paths::<f64>(Shape::new(3, 16, 4).with_base(BaseKind::Mixture(2)));
    check_paths::<f32>(Shape::new(2, 64, 8));
    check_paths::<f32>(Shape::new(5, 8, 3).with_base(BaseKind::StandardNormal));
}

/// A whole refinement (prior draws, tempered EM fits, training, flow proposals with both outer
/// maps, deterministic-mixture weights, diagnostics) allocates nothing once its buffers exist.
#[test]
fn refinement_does_not_allocate() {
    use lwflow::train::{RefineBuffers, RefineConfig, RefineMemory, RefineStatus, Refiner};
    let task = lwflow_tasks::Task::T2D2;
    let shape = Shape::new(2, 8, 2);
    let cfg = RefineConfig {
        max_calls: 6_000,
        ..RefineConfig::for_dim(2)
    };
    let need = RefineMemory::new(&shape, &cfg);
    let mut reals = vec![0.0f32; need.reals];
    let mut f64s = vec![0.0f64; need.f64s];
    let mut order = vec![0u32; need.order];
    let mut out = vec![0.0f64; cfg.capacity()];
    let (res, allocs) = count(|| {
        let buf = RefineBuffers::split(&shape, &cfg, &mut reals, &mut f64s, &mut order)?;
        let mut r = Refiner::new(&shape, &[-6.0; 2], &[6.0; 2], &cfg, buf)?;
        while r.status() == RefineStatus::Running {
            let theta = r.ask()?;
            let m = theta.len() / 2;
            for (o, t) in out.iter_mut().zip(theta.chunks(2)) {
                *o = task.log_likelihood(&[t[0] as f64, t[1] as f64]);
            }
            r.tell(&out[..m])?;
        }
        r.report().map(|rep| rep.calls)
    });
    assert!(res.unwrap() > 0);
    assert_eq!(allocs, 0, "{allocs} allocations");
    // The counter does see this thread's allocations.
    let (v, seen) = count(|| vec![1u8; 10]);
    assert_eq!((v.len(), seen), (10, 1));
}
