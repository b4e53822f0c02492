//! Batched density evaluation and sampling of a trained model.
//!
//! Batches are row-major `[n][dim]` arrays of doubles. The plain functions use the workspace
//! inside the model (`LwfModel *`: one thread at a time, `LWF_BUSY` otherwise); the `_ws`
//! variants take the workspace from the caller and only read the model (`const LwfModel *`),
//! so many threads can evaluate or sample one model at once, each with its own workspace.
//!
//! No function here returns `LWF_OK` with a non-finite output: finite parameters can still
//! make a result overflow (e.g. weights of 1e300), and then the call returns `LWF_NON_FINITE`
//! with every output set to NaN. The one non-finite value that is a valid result is a log
//! density of −inf for a point on or outside the box of a bounded model.

use crate::guard::{disjoint, guard, input, output, read_struct, write_scalar, Span};
use crate::model::{open_mut, open_ref, LwfModel};
use crate::rng::LwfRng;
use crate::status::LwfStatus::{self, LWF_NON_FINITE};
use lwflow::Shape;

/// `true` when the row `theta` lies on or outside the box of a bounded model (where its log
/// density is −inf by definition); always `false` without a box.
fn outside_box(shape: &Shape, params: &[f64], theta: &[f64]) -> bool {
    if !shape.bounded {
        return false;
    }
    let d = shape.dim;
    // The box is the last 2D parameters: lo, then hi.
    let at = params.len().saturating_sub(2 * d);
    let (lo, hi) = match (params.get(at..at + d), params.get(at + d..)) {
        (Some(lo), Some(hi)) => (lo, hi),
        _ => return false,
    };
    theta
        .iter()
        .zip(lo.iter().zip(hi))
        .any(|(&t, (&a, &b))| !(t > a && t < b))
}

/// Sets every output to NaN and returns `LWF_NON_FINITE`: a result overflowed.
fn overflowed(outputs: &mut [&mut [f64]]) -> Result<(), LwfStatus> {
    for out in outputs.iter_mut() {
        out.iter_mut().for_each(|v| *v = f64::NAN);
    }
    Err(LWF_NON_FINITE)
}

/// The log densities `log_q` of the rows of `theta`: each finite, or −inf for a row outside
/// the box of a bounded model; else every output becomes NaN and `LWF_NON_FINITE`.
fn check_log_prob(
    shape: &Shape,
    params: &[f64],
    theta: &[f64],
    log_q: &mut [f64],
) -> Result<(), LwfStatus> {
    let d = shape.dim.max(1);
    let valid = log_q.iter().zip(theta.chunks(d)).all(|(&v, row)| {
        v.is_finite() || (v == f64::NEG_INFINITY && outside_box(shape, params, row))
    });
    if valid {
        Ok(())
    } else {
        overflowed(&mut [log_q])
    }
}

/// Every value of every output is finite; else every output becomes NaN and `LWF_NON_FINITE`.
fn check_finite(outputs: &mut [&mut [f64]]) -> Result<(), LwfStatus> {
    if outputs.iter().all(|o| o.iter().all(|v| v.is_finite())) {
        Ok(())
    } else {
        overflowed(outputs)
    }
}

/// log q(theta) of the `n` rows of `theta` (`theta_len == n * dim`) into `out_log_q` (`n`).
///
/// Every value written is finite, except -inf for a point on or outside the box of a bounded
/// model (density 0). NaN or +inf never come with `LWF_OK`: a result that overflowed (possible
/// with extreme parameters, e.g. 1e300) gives `LWF_NON_FINITE` and sets every output to NaN.
///
/// Errors: `LWF_NULL_POINTER`, `LWF_MISALIGNED`, `LWF_INVALID_MODEL`, `LWF_EMPTY_BATCH`
/// (`n == 0`), `LWF_LENGTH_MISMATCH`, `LWF_NON_FINITE` (NaN/inf in `theta`, or a result that
/// overflowed), `LWF_OVERLAPPING_BUFFERS`, `LWF_BUSY` (another call is using the model).
///
/// # Safety
/// `model` NULL or a valid handle not used by another thread during the call (detected:
/// `LWF_BUSY`); `theta` NULL or readable for `theta_len` doubles; `out_log_q` NULL or
/// writable for `n` doubles.
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
        let mut m = unsafe { open_mut(model, &[theta_span, out_span]) }?;
        disjoint(out_span, &[theta_span])?;
        // SAFETY: forwarded contract; pairwise disjoint and disjoint from the model (checked).
        let (theta, out) = unsafe { (input(theta, theta_len)?, output(out_log_q, n)?) };
        let (flow, _, ws) = m.flow()?;
        flow.log_prob(theta, out, ws)?;
        check_log_prob(&m.shape, m.params, theta, out)
    })
}

/// The density-direction map z = f^-1(theta) of the `n` rows of `theta` (`theta_len ==
/// n * dim`) into `out_z` (`z_len == theta_len`), with log|det d f^-1 / d theta| in
/// `out_log_det` (`n`); log q(theta) = log q0(z) + log_det.
///
/// Every value written is finite: a result that overflowed gives `LWF_NON_FINITE` with every
/// output set to NaN. A bounded model has no preimage for a point on or outside its box:
/// `LWF_INVALID_ARGUMENT`.
///
/// Errors: as `lwf_model_log_prob`, plus `LWF_INVALID_ARGUMENT`.
///
/// # Safety
/// `model` NULL or a valid handle not used by another thread during the call (detected:
/// `LWF_BUSY`); `theta` NULL or readable for `theta_len` doubles; the outputs NULL or writable
/// for their lengths.
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
/// Every value written is finite: a result that overflowed (e.g. a huge `z`, or extreme
/// parameters) gives `LWF_NON_FINITE` with every output set to NaN.
///
/// Errors: as `lwf_model_log_prob`.
///
/// # Safety
/// `model` NULL or a valid handle not used by another thread during the call (detected:
/// `LWF_BUSY`); `z` NULL or readable for `z_len` doubles; the outputs NULL or writable for
/// their lengths.
// Same shape as lwf_model_inverse above (duplicates): C entry points each spell out their
// argument list and forward to one implementation (map, with the direction).
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
        let mut m = unsafe { open_mut(model, &[from_span, to_span, ld_span]) }?;
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
        let (flow, _, ws) = m.flow()?;
        match direction {
            Direction::Forward => flow.forward(from, to, log_det, ws)?,
            Direction::Inverse => flow.inverse(from, to, log_det, ws)?,
        }
        check_finite(&mut [to, log_det])
    })
}

/// As `lwf_model_log_prob` (the same outputs, the same `LWF_NON_FINITE` for a result that
/// overflowed), reading the model only and using the caller's workspace `ws`
/// (`ws_len >= lwf_shape_workspace_count`, else `LWF_BUFFER_TOO_SMALL`; its contents are
/// scratch). Safe to call from many threads on one model with a workspace per thread; never
/// `LWF_BUSY`.
///
/// # Safety
/// As `lwf_model_log_prob`, and `ws` NULL or writable for `ws_len` doubles; the model may be
/// read concurrently but not written.
// Same shape as map above (duplicates): each entry point checks its own three buffers (spans,
// disjointness) before its own core call; the names and the model access (read vs write)
// differ.
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
        m.flow()?.log_prob(theta, out, ws)?;
        check_log_prob(&m.shape, m.params, theta, out)
    })
}

/// Draws `n` samples theta ~ q into `out_theta` (`theta_len == n * dim`, row-major) with
/// their log-density log q(theta) in `out_log_q` (`n`), advancing `*rng`. Deterministic: the
/// same model and rng state give bit-identical samples on every run and thread, and drawing
/// n1 then n2 samples gives the same rows as drawing n1 + n2 at once. `*rng` is advanced only
/// on success. Every value written is finite: samples whose values or log densities
/// overflowed (possible with extreme parameters) give `LWF_NON_FINITE`, every output set to
/// NaN and `*rng` unchanged.
///
/// Errors: `LWF_NULL_POINTER`, `LWF_MISALIGNED`, `LWF_INVALID_MODEL`, `LWF_EMPTY_BATCH`,
/// `LWF_LENGTH_MISMATCH`, `LWF_OVERLAPPING_BUFFERS`, `LWF_NON_FINITE` (a result that
/// overflowed), `LWF_BUSY` (another call is using the model).
///
/// # Safety
/// `model` NULL or a valid handle not used by another thread during the call (detected:
/// `LWF_BUSY`); `rng` NULL or valid for read and write; the outputs NULL or writable for their
/// lengths.
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
        let mut m = unsafe { open_mut(model, &[rng_span, theta_span, lq_span]) }?;
        disjoint(theta_span, &[lq_span, rng_span])?;
        disjoint(lq_span, &[rng_span])?;
        // SAFETY: forwarded contract; LwfRng is plain integers.
        let mut g = unsafe { read_struct(rng.cast_const()) }?.generator();
        // SAFETY: forwarded contract; pairwise disjoint and disjoint from the model (checked).
        let (theta, lq) = unsafe { (output(out_theta, theta_len)?, output(out_log_q, n)?) };
        let (flow, _, ws) = m.flow()?;
        flow.sample(&mut g, theta, lq, ws)?;
        check_finite(&mut [theta, lq])?;
        // SAFETY: `rng` passed read_struct's checks; disjoint from the other buffers.
        unsafe { write_scalar(rng, LwfRng::from_generator(&g)) };
        Ok(())
    })
}

/// As `lwf_model_sample` (the same outputs, the same `LWF_NON_FINITE` for a result that
/// overflowed), reading the model only and using the caller's workspace `ws`
/// (`ws_len >= lwf_shape_workspace_count`). Safe to call from many threads on one model, each
/// with its own workspace and rng (see `lwf_rng_jump`); never `LWF_BUSY`.
///
/// # Safety
/// As `lwf_model_sample`, and `ws` NULL or writable for `ws_len` doubles; the model may be read
/// concurrently but not written.
// Same shape as lwf_model_log_prob_ws above (duplicates): C entry points each spell out their
// argument list and forward to one implementation; each checks its own buffers.
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
        m.flow()?.sample(&mut g, theta, lq, ws)?;
        check_finite(&mut [theta, lq])?;
        // SAFETY: `rng` passed read_struct's checks; disjoint from the other buffers.
        unsafe { write_scalar(rng, LwfRng::from_generator(&g)) };
        Ok(())
    })
}
