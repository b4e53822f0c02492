//! The training step's pieces: loss and gradient of a weighted batch into a caller buffer, and
//! an Adam step from a gradient. Together they let a caller write its own training loop,
//! including a data-parallel one that all-reduces the flat gradient across processes.
//!
//! Loss of a batch of n samples with weights w (>= 0, e.g. self-normalised importance weights
//! with mean 1 over the whole sample set): L = -(1/n) * sum_i w_i * log q(theta_i).
//!
//! Data-parallel training (MPI): split a global batch of N samples into parts of n_r samples,
//! one per rank. Either
//! 1. each rank calls `lwf_model_loss_grad_accumulate` on its part with `scale = 1.0 / N` into a
//!    zeroed gradient and loss, then `MPI_Allreduce(SUM)` of the P gradient doubles and the loss;
//!    or
//! 2. each rank calls `lwf_model_loss_grad` on its part, multiplies gradient and loss by
//!    `n_r / N`, then all-reduces with `SUM`.
//!
//! Both give the gradient of `lwf_model_loss_grad` on the whole batch (up to rounding: tested to
//! 1e-12). Every rank then calls `lwf_model_adam_step` with the same reduced gradient, so models
//! initialised with the same shape and seed stay bit-identical without broadcasting parameters.

use crate::guard::{disjoint, guard, input, out_scalar, output, read_struct, write_scalar, Span};
use crate::model::{open_mut, LwfModel};
use crate::status::LwfStatus::{self, *};
use lwflow::Adam;

/// Adam hyper-parameters (torch's `Adam(weight_decay=...)`; weight decay applies to the
/// coupling parameters only, never to the base). Fill with `lwf_adam_default`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LwfAdam {
    /// Learning rate > 0 (default 1e-3).
    pub lr: f64,
    /// First-moment decay in [0, 1) (default 0.9).
    pub beta1: f64,
    /// Second-moment decay in [0, 1) (default 0.999).
    pub beta2: f64,
    /// Denominator epsilon > 0 (default 1e-8).
    pub eps: f64,
    /// L2 weight decay >= 0 on the coupling parameters (default 0).
    pub weight_decay: f64,
}

impl LwfAdam {
    fn to_core(self) -> Adam {
        Adam {
            lr: self.lr,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
        }
    }
}

/// Writes the default Adam hyper-parameters (lr 1e-3, betas 0.9 / 0.999, eps 1e-8, no weight
/// decay) to `*out_adam`.
///
/// # Safety
/// `out_adam` is NULL or valid for one write of `LwfAdam`.
#[no_mangle]
pub unsafe extern "C" fn lwf_adam_default(out_adam: *mut LwfAdam) -> LwfStatus {
    guard(|| {
        let out = out_scalar(out_adam)?;
        let a = Adam::default();
        let c = LwfAdam {
            lr: a.lr,
            beta1: a.beta1,
            beta2: a.beta2,
            eps: a.eps,
            weight_decay: a.weight_decay,
        };
        // SAFETY: checked by out_scalar; writability is the caller's contract.
        unsafe { write_scalar(out, c) };
        Ok(())
    })
}

/// The loss of a batch and its gradient: with `scale`, adds `scale * dL/dphi` (L unnormalised:
/// `-sum w_i log q`) to the model's gradient scratch and returns the scaled loss; the
/// accumulating form (`scale`) first refuses a non-finite incoming `*loss` or `grad`. `apply`
/// writes the outputs, or refuses a result (then nothing has been written).
///
/// # Safety
/// Forwarded from the exported functions.
#[allow(clippy::too_many_arguments)]
unsafe fn gradient(
    model: *mut LwfModel,
    theta: *const f64,
    theta_len: usize,
    weights: *const f64,
    weights_len: usize,
    scale: Option<f64>,
    grad: *mut f64,
    grad_len: usize,
    loss: *mut f64,
    apply: impl FnOnce(&[f64], f64, &mut [f64], *mut f64) -> Result<(), LwfStatus>,
) -> Result<(), LwfStatus> {
    let theta_span = Span::checked(theta, theta_len)?;
    let weights_span = Span::checked(weights, weights_len)?;
    let grad_span = Span::checked(grad.cast_const(), grad_len)?;
    let loss = out_scalar(loss)?;
    let loss_span = Span::checked(loss.cast_const(), 1)?;
    // SAFETY: forwarded contract.
    let mut m = unsafe { open_mut(model, &[theta_span, weights_span, grad_span, loss_span]) }?;
    disjoint(grad_span, &[theta_span, weights_span, loss_span])?;
    disjoint(loss_span, &[theta_span, weights_span])?;
    if grad_len != m.params.len() {
        return Err(LWF_LENGTH_MISMATCH);
    }
    // SAFETY: forwarded contract; outputs disjoint from inputs and model (checked).
    let (theta, weights, grad) = unsafe {
        (
            input(theta, theta_len)?,
            input(weights, weights_len)?,
            output(grad, grad_len)?,
        )
    };
    if scale.is_some() {
        // SAFETY: `loss` passed out_scalar; readable by the accumulating form's contract.
        let incoming = unsafe { loss.read() };
        // What is accumulated into must be finite: refused before any work, nothing written.
        if !(incoming.is_finite() && grad.iter().all(|g| g.is_finite())) {
            return Err(LWF_NON_FINITE);
        }
    }
    let (flow, scratch, ws) = m.flow()?;
    let value = match scale {
        None => flow.loss_and_gradient(theta, weights, scratch, ws)?,
        Some(scale) => {
            scratch.iter_mut().for_each(|g| *g = 0.0);
            flow.accumulate_gradient(theta, weights, scale, scratch, ws)?
        }
    };
    if !value.is_finite() || !scratch.iter().all(|g| g.is_finite()) {
        return Err(LWF_NON_FINITE);
    }
    apply(m.grad, value, grad, loss)
}

/// Loss `L = -(1/n) sum_i w_i log q(theta_i)` of the batch (`theta_len == n * dim`,
/// `weights_len == n`, weights finite and >= 0) into `*out_loss`, and its gradient with respect
/// to the flat parameter vector into `out_grad` (`grad_len == lwf_shape_param_count`,
/// overwritten).
///
/// Data-parallel training (MPI): split a global batch of N samples into parts of n_r samples,
/// one per rank; each rank calls this on its part, multiplies its gradient and loss by n_r / N
/// and all-reduces them with `MPI_SUM` (or uses `lwf_model_loss_grad_accumulate` with
/// `scale = 1.0 / N` into zeroed buffers). The sum is the gradient of the whole batch (tested
/// to 1e-12); every rank then applies the same `lwf_model_adam_step`, so models initialised
/// with the same shape and seed stay identical.
///
/// Errors: `LWF_NULL_POINTER`, `LWF_MISALIGNED`, `LWF_INVALID_MODEL`, `LWF_EMPTY_BATCH`,
/// `LWF_LENGTH_MISMATCH`, `LWF_NON_FINITE` (NaN/inf in theta or weights, or a loss or gradient
/// that overflowed: skip the step), `LWF_INVALID_ARGUMENT` (a negative weight),
/// `LWF_OVERLAPPING_BUFFERS`, `LWF_BUSY` (another call is using the model).
///
/// # Safety
/// `model` NULL or a valid handle not used by another thread during the call (detected:
/// `LWF_BUSY`); the arrays NULL or valid for their lengths; `out_loss` NULL or writable.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn lwf_model_loss_grad(
    model: *mut LwfModel,
    theta: *const f64,
    theta_len: usize,
    weights: *const f64,
    weights_len: usize,
    out_grad: *mut f64,
    grad_len: usize,
    out_loss: *mut f64,
) -> LwfStatus {
    guard(|| {
        // SAFETY: forwarded contract.
        unsafe {
            gradient(
                model,
                theta,
                theta_len,
                weights,
                weights_len,
                None,
                out_grad,
                grad_len,
                out_loss,
                |g, loss, out, out_loss| {
                    out.copy_from_slice(g);
                    // SAFETY: out_loss passed out_scalar and is disjoint from the rest.
                    write_scalar(out_loss, loss);
                    Ok(())
                },
            )
        }
    })
}

/// Accumulating form for data-parallel training and gradient accumulation: adds
/// `scale * d/dphi [-sum_i w_i log q(theta_i)]` to `inout_grad` and
/// `scale * [-sum_i w_i log q(theta_i)]` to `*inout_loss` (`scale` finite; use 1/N for a global
/// batch of N samples). With `scale = 1/n`, zeroed buffers and one call, this equals
/// `lwf_model_loss_grad`. Nothing is added on failure. Errors as `lwf_model_loss_grad`, plus
/// `LWF_NON_FINITE` for a non-finite `scale`, a NaN or infinity already in `*inout_loss` or
/// `inout_grad` (refused before any work), or a sum that overflows: `LWF_OK` always leaves
/// `*inout_loss` and `inout_grad` finite.
///
/// # Safety
/// As `lwf_model_loss_grad`; `inout_grad` and `inout_loss` must also be readable.
// Same shape as lwf_model_loss_grad above (duplicates): C entry points each spell out their
// argument list and forward to one implementation (gradient).
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn lwf_model_loss_grad_accumulate(
    model: *mut LwfModel,
    theta: *const f64,
    theta_len: usize,
    weights: *const f64,
    weights_len: usize,
    scale: f64,
    inout_grad: *mut f64,
    grad_len: usize,
    inout_loss: *mut f64,
) -> LwfStatus {
    guard(|| {
        if !scale.is_finite() {
            return Err(LWF_NON_FINITE);
        }
        // SAFETY: forwarded contract.
        unsafe {
            gradient(
                model,
                theta,
                theta_len,
                weights,
                weights_len,
                Some(scale),
                inout_grad,
                grad_len,
                inout_loss,
                |g, loss, out, out_loss| {
                    // SAFETY: out_loss passed out_scalar, is readable by the caller's
                    // contract and disjoint from the rest.
                    let total = out_loss.read() + loss;
                    // The sums must be finite too (finite terms can overflow): checked before
                    // anything is written.
                    if !total.is_finite() || out.iter().zip(g).any(|(o, v)| !(o + v).is_finite()) {
                        return Err(LWF_NON_FINITE);
                    }
                    for (o, &v) in out.iter_mut().zip(g) {
                        *o += v;
                    }
                    // SAFETY: as above.
                    write_scalar(out_loss, total);
                    Ok(())
                },
            )
        }
    })
}

/// One Adam step of the model's parameters from `grad` (`grad_len == lwf_shape_param_count`),
/// using and updating the Adam moments and step count stored in the model. A non-finite
/// gradient, or a step that would leave a parameter or moment NaN or infinite (e.g. lr 1e308),
/// gives `LWF_NON_FINITE` and changes nothing (skip the step). The outer maps' parameters
/// (affine map, box) are never trained: a step leaves them as they are, whatever `grad` holds
/// there.
///
/// Errors: `LWF_NULL_POINTER`, `LWF_MISALIGNED`, `LWF_INVALID_MODEL`, `LWF_LENGTH_MISMATCH`,
/// `LWF_NON_FINITE` (gradient or hyper-parameter, or a step that overflowed),
/// `LWF_INVALID_ARGUMENT` (hyper-parameter out of range), `LWF_OVERLAPPING_BUFFERS`,
/// `LWF_BUSY`.
///
/// # Safety
/// `model` NULL or a valid handle not used by another thread during the call (detected:
/// `LWF_BUSY`); `adam` NULL or readable; `grad` NULL or readable for `grad_len` doubles.
#[no_mangle]
pub unsafe extern "C" fn lwf_model_adam_step(
    model: *mut LwfModel,
    adam: *const LwfAdam,
    grad: *const f64,
    grad_len: usize,
) -> LwfStatus {
    guard(|| {
        // SAFETY: forwarded contract; LwfAdam is plain doubles.
        let adam = unsafe { read_struct(adam) }?.to_core();
        let grad_span = Span::checked(grad, grad_len)?;
        // SAFETY: forwarded contract.
        let m = unsafe { open_mut(model, &[grad_span]) }?;
        // SAFETY: forwarded contract; disjoint from the model (checked).
        let grad = unsafe { input(grad, grad_len) }?;
        let t = m.adam_step.checked_add(1).ok_or(LWF_INVALID_ARGUMENT)?;
        adam.step_finite(&m.shape, m.params, grad, m.adam, t)?;
        *m.adam_step = t;
        Ok(())
    })
}

/// Zeroes the model's Adam moments and step count (e.g. after `lwf_model_set_params`).
///
/// # Safety
/// `model` NULL or a valid handle not used by another thread during the call (detected:
/// `LWF_BUSY`).
#[no_mangle]
pub unsafe extern "C" fn lwf_model_adam_reset(model: *mut LwfModel) -> LwfStatus {
    guard(|| {
        // SAFETY: forwarded contract.
        let m = unsafe { open_mut(model, &[]) }?;
        m.adam.iter_mut().for_each(|v| *v = 0.0);
        *m.adam_step = 0;
        Ok(())
    })
}
