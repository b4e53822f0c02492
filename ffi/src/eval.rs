//! Batched density evaluation and sampling of a trained model.
//!
//! Batches are row-major `[n][dim]` arrays of doubles. The plain functions use the workspace
//! inside the model (`LwfModel *`: one thread at a time); the `_ws` variants take the workspace
//! from the caller and only read the model (`const LwfModel *`), so many threads can evaluate
//! or sample one model at once, each with its own workspace.

use crate::guard::{disjoint, guard, input, output, read_struct, write_scalar, Span};
use crate::model::{open_mut, open_ref, LwfModel};
use crate::rng::LwfRng;
use crate::status::LwfStatus;
use lwflow::Flow;

/// log q(theta) of the `n` rows of `theta` (`theta_len == n * dim`) into `out_log_q` (`n`).
///
/// Errors: `LWF_NULL_POINTER`, `LWF_MISALIGNED`, `LWF_INVALID_MODEL`, `LWF_EMPTY_BATCH`
/// (`n == 0`), `LWF_LENGTH_MISMATCH`, `LWF_NON_FINITE` (NaN/inf in `theta`),
/// `LWF_OVERLAPPING_BUFFERS`.
///
/// # Safety
/// `model` NULL or a valid handle not used by another thread during the call; `theta` NULL or
/// readable for `theta_len` doubles; `out_log_q` NULL or writable for `n` doubles.
#[no_mangle]
pub unsafe extern "C" fn lwf_model_log_prob(
    model: *mut LwfModel,
    theta: *const f64,
    theta_len: usize,
    out_log_q: *mut f64,
    n: usize,
) -> LwfStatus {
    guard(|| {
        let (theta_span, out_span) = (
            Span::checked(theta, theta_len)?,
            Span::checked(out_log_q, n)?,
        );
        // SAFETY: forwarded contract.
        let m = unsafe { open_mut(model, &[theta_span, out_span]) }?;
        disjoint(out_span, &[theta_span])?;
        // SAFETY: forwarded contract; pairwise disjoint and disjoint from the model (checked).
        let (theta, out) = unsafe { (input(theta, theta_len)?, output(out_log_q, n)?) };
        Ok(Flow::new(m.shape, m.params)?.log_prob(theta, out, m.workspace)?)
    })
}

/// The density-direction map z = f^-1(theta) of the `n` rows of `theta` (`theta_len ==
/// n * dim`) into `out_z` (`z_len == theta_len`), with log|det d f^-1 / d theta| in
/// `out_log_det` (`n`); log q(theta) = log q0(z) + log_det.
///
/// Errors: as `lwf_model_log_prob`.
///
/// # Safety
/// `model` NULL or a valid handle not used by another thread during the call; `theta` NULL or
/// readable for `theta_len` doubles; the outputs NULL or writable for their lengths.
#[no_mangle]
pub unsafe extern "C" fn lwf_model_inverse(
    model: *mut LwfModel,
    theta: *const f64,
    theta_len: usize,
    out_z: *mut f64,
    z_len: usize,
    out_log_det: *mut f64,
    n: usize,
) -> LwfStatus {
    // SAFETY: forwarded contract.
    unsafe {
        map(
            model,
            theta,
            theta_len,
            out_z,
            z_len,
            out_log_det,
            n,
            Direction::Inverse,
        )
    }
}

/// The sampling-direction map theta = f(z) of the `n` rows of `z` (`z_len == n * dim`) into
/// `out_theta` (`theta_len == z_len`), with log|det d f / d z| in `out_log_det` (`n`).
///
/// Errors: as `lwf_model_log_prob`.
///
/// # Safety
/// `model` NULL or a valid handle not used by another thread during the call; `z` NULL or
/// readable for `z_len` doubles; the outputs NULL or writable for their lengths.
#[no_mangle]
pub unsafe extern "C" fn lwf_model_forward(
    model: *mut LwfModel,
    z: *const f64,
    z_len: usize,
    out_theta: *mut f64,
    theta_len: usize,
    out_log_det: *mut f64,
    n: usize,
) -> LwfStatus {
    // SAFETY: forwarded contract.
    unsafe {
        map(
            model,
            z,
            z_len,
            out_theta,
            theta_len,
            out_log_det,
            n,
            Direction::Forward,
        )
    }
}

enum Direction {
    Forward,
    Inverse,
}

/// The two maps share their checks.
///
/// # Safety
/// As for the exported functions.
#[allow(clippy::too_many_arguments)]
unsafe fn map(
    model: *mut LwfModel,
    from: *const f64,
    from_len: usize,
    to: *mut f64,
    to_len: usize,
    log_det: *mut f64,
    n: usize,
    direction: Direction,
) -> LwfStatus {
    guard(|| {
        let from_span = Span::checked(from, from_len)?;
        let to_span = Span::checked(to.cast_const(), to_len)?;
        let ld_span = Span::checked(log_det.cast_const(), n)?;
        // SAFETY: forwarded contract.
        let m = unsafe { open_mut(model, &[from_span, to_span, ld_span]) }?;
        disjoint(to_span, &[from_span, ld_span])?;
        disjoint(ld_span, &[from_span])?;
        // SAFETY: forwarded contract; pairwise disjoint and disjoint from the model (checked).
        let (from, to, log_det) = unsafe {
            (
                input(from, from_len)?,
                output(to, to_len)?,
                output(log_det, n)?,
            )
        };
        let flow = Flow::new(m.shape, m.params)?;
        match direction {
            Direction::Forward => flow.forward(from, to, log_det, m.workspace)?,
            Direction::Inverse => flow.inverse(from, to, log_det, m.workspace)?,
        }
        Ok(())
    })
}

/// As `lwf_model_log_prob`, reading the model only and using the caller's workspace `ws`
/// (`ws_len >= lwf_shape_workspace_count`, else `LWF_BUFFER_TOO_SMALL`; its contents are
/// scratch). Safe to call from many threads on one model with a workspace per thread.
///
/// # Safety
/// As `lwf_model_log_prob`, and `ws` NULL or writable for `ws_len` doubles; the model may be
/// read concurrently but not written.
#[no_mangle]
pub unsafe extern "C" fn lwf_model_log_prob_ws(
    model: *const LwfModel,
    theta: *const f64,
    theta_len: usize,
    out_log_q: *mut f64,
    n: usize,
    ws: *mut f64,
    ws_len: usize,
) -> LwfStatus {
    guard(|| {
        let theta_span = Span::checked(theta, theta_len)?;
        let out_span = Span::checked(out_log_q, n)?;
        let ws_span = Span::checked(ws, ws_len)?;
        // SAFETY: forwarded contract.
        let m = unsafe { open_ref(model, &[out_span, ws_span]) }?;
        disjoint(out_span, &[theta_span, ws_span])?;
        disjoint(ws_span, &[theta_span])?;
        // SAFETY: forwarded contract; outputs disjoint from every other buffer (checked).
        let (theta, out, ws) = unsafe {
            (
                input(theta, theta_len)?,
                output(out_log_q, n)?,
                output(ws, ws_len)?,
            )
        };
        Ok(Flow::new(m.shape, m.params)?.log_prob(theta, out, ws)?)
    })
}

/// Draws `n` samples theta ~ q into `out_theta` (`theta_len == n * dim`, row-major) with
/// their log-density log q(theta) in `out_log_q` (`n`), advancing `*rng`. Deterministic: the
/// same model and rng state give bit-identical samples on every run and thread, and drawing
/// n1 then n2 samples gives the same rows as drawing n1 + n2 at once. `*rng` is advanced only
/// on success.
///
/// Errors: `LWF_NULL_POINTER`, `LWF_MISALIGNED`, `LWF_INVALID_MODEL`, `LWF_EMPTY_BATCH`,
/// `LWF_LENGTH_MISMATCH`, `LWF_OVERLAPPING_BUFFERS`.
///
/// # Safety
/// `model` NULL or a valid handle not used by another thread during the call; `rng` NULL or
/// valid for read and write; the outputs NULL or writable for their lengths.
#[no_mangle]
pub unsafe extern "C" fn lwf_model_sample(
    model: *mut LwfModel,
    rng: *mut LwfRng,
    out_theta: *mut f64,
    theta_len: usize,
    out_log_q: *mut f64,
    n: usize,
) -> LwfStatus {
    guard(|| {
        let rng_span = Span::checked(rng.cast_const(), 1)?;
        let theta_span = Span::checked(out_theta.cast_const(), theta_len)?;
        let lq_span = Span::checked(out_log_q.cast_const(), n)?;
        // SAFETY: forwarded contract.
        let m = unsafe { open_mut(model, &[rng_span, theta_span, lq_span]) }?;
        disjoint(theta_span, &[lq_span, rng_span])?;
        disjoint(lq_span, &[rng_span])?;
        // SAFETY: forwarded contract; LwfRng is plain integers.
        let mut g = unsafe { read_struct(rng.cast_const()) }?.generator();
        // SAFETY: forwarded contract; pairwise disjoint and disjoint from the model (checked).
        let (theta, lq) = unsafe { (output(out_theta, theta_len)?, output(out_log_q, n)?) };
        Flow::new(m.shape, m.params)?.sample(&mut g, theta, lq, m.workspace)?;
        // SAFETY: `rng` passed read_struct's checks; disjoint from the other buffers.
        unsafe { write_scalar(rng, LwfRng::from_generator(&g)) };
        Ok(())
    })
}

/// As `lwf_model_sample`, reading the model only and using the caller's workspace `ws`
/// (`ws_len >= lwf_shape_workspace_count`). Safe to call from many threads on one model, each
/// with its own workspace and rng (see `lwf_rng_jump`).
///
/// # Safety
/// As `lwf_model_sample`, and `ws` NULL or writable for `ws_len` doubles; the model may be read
/// concurrently but not written.
#[no_mangle]
pub unsafe extern "C" fn lwf_model_sample_ws(
    model: *const LwfModel,
    rng: *mut LwfRng,
    out_theta: *mut f64,
    theta_len: usize,
    out_log_q: *mut f64,
    n: usize,
    ws: *mut f64,
    ws_len: usize,
) -> LwfStatus {
    guard(|| {
        let rng_span = Span::checked(rng.cast_const(), 1)?;
        let theta_span = Span::checked(out_theta.cast_const(), theta_len)?;
        let lq_span = Span::checked(out_log_q.cast_const(), n)?;
        let ws_span = Span::checked(ws.cast_const(), ws_len)?;
        // SAFETY: forwarded contract.
        let m = unsafe { open_ref(model, &[rng_span, theta_span, lq_span, ws_span]) }?;
        disjoint(theta_span, &[lq_span, rng_span, ws_span])?;
        disjoint(lq_span, &[rng_span, ws_span])?;
        disjoint(ws_span, &[rng_span])?;
        // SAFETY: forwarded contract; LwfRng is plain integers.
        let mut g = unsafe { read_struct(rng.cast_const()) }?.generator();
        // SAFETY: forwarded contract; pairwise disjoint and disjoint from the model (checked).
        let (theta, lq, ws) = unsafe {
            (
                output(out_theta, theta_len)?,
                output(out_log_q, n)?,
                output(ws, ws_len)?,
            )
        };
        Flow::new(m.shape, m.params)?.sample(&mut g, theta, lq, ws)?;
        // SAFETY: `rng` passed read_struct's checks; disjoint from the other buffers.
        unsafe { write_scalar(rng, LwfRng::from_generator(&g)) };
        Ok(())
    })
}
