//! Resumable fits through the C ABI: the fits' resumable forms hand the host checkpoint bytes
//! (the core's `lwflow::train::FitCheckpoint`, written into a caller buffer of
//! `lwf_fit_checkpoint_size` bytes) through a callback, first of the weighted samples (after
//! the last likelihood call, before the base is fitted), then after every epoch;
//! `lwf_model_fit_resume` finishes a fit from such bytes, bit-identical to the uninterrupted
//! fit and without a likelihood callback at all. `lwf_fit_checkpoint_inspect` checks a
//! checkpoint and sizes the memory of its resumption.
//!
//! The bytes are the core's checkpoint format (magic `LWCK`, version, float width, length,
//! CRC-32; see `lwflow::train::checkpoint`): a truncated, corrupted or foreign checkpoint is
//! `LWF_BAD_FORMAT`, as a bad model file is for `lwf_model_load`, and nothing is written.

use crate::fit::{
    carve, check_outputs, fit_prior_box, fit_samples, progress_hook, write_outputs, BoxArgs,
    LwfFitReport, LwfLogLikelihoodFn, LwfProgressFn, PriorBoxArgs, SamplesArgs, WorkLayout,
};
use crate::fit_config::LwfFitConfig;
use crate::guard::{disjoint, guard, input, out_scalar, write_scalar, Span};
use crate::layout::layout;
use crate::model::LwfModel;
use crate::shape::LwfShape;
use crate::sink::{LwfCheckpointFn, Sink, SinkArgs};
use crate::status::LwfStatus::{self, *};
use core::ffi::c_void;
use lwflow::train::{
    resume_fit, CheckpointInfo, FitCheckpoint, FitStage, ResumeBuffers, WeightStats,
};
use lwflow::Shape;

/// What a checkpoint holds and the memory its resumption needs
/// (`lwf_fit_checkpoint_inspect`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LwfFitCheckpointInfo {
    /// 0: the weighted samples, before the base was fitted; k >= 1: after epoch k.
    pub epoch: usize,
    /// Samples in the checkpoint (with their weights and log-likelihoods or log-weights).
    pub n_samples: usize,
    /// Their dimension.
    pub dim: usize,
    /// Bytes of model memory `lwf_model_fit_resume` needs (aligned to `lwf_model_align()`).
    pub model_bytes: usize,
    /// Bytes of work memory it needs (8-byte aligned).
    pub work_bytes: usize,
    /// Bytes of the buffer for its later checkpoints.
    pub checkpoint_bytes: usize,
}

/// A checkpoint the C ABI can resume, checked, with the memory its resumption needs.
struct Resumable {
    info: CheckpointInfo,
    stats: WeightStats,
    max_shape: Shape,
    work: WorkLayout,
    model_bytes: usize,
    checkpoint_bytes: usize,
}

impl Resumable {
    /// `LWF_BAD_FORMAT` for anything the core's checks refuse and for `float` reals;
    /// `LWF_INVALID_ARGUMENT` for a valid checkpoint the C fits do not write (no weight
    /// statistics, the affine standardisation, a model too large for the ABI).
    fn read(bytes: &[u8]) -> Result<Resumable, LwfStatus> {
        let info = CheckpointInfo::read(bytes)?;
        if info.width != 8 {
            return Err(LWF_BAD_FORMAT);
        }
        let stats = info.stats.ok_or(LWF_INVALID_ARGUMENT)?;
        let t = info.template;
        if t.affine {
            return Err(LWF_INVALID_ARGUMENT);
        }
        let max_shape = info.cfg.base.max_shape(&t);
        let model_bytes = layout(&max_shape)
            .map_err(|_| LWF_INVALID_ARGUMENT)?
            .total_bytes;
        let work = WorkLayout::sized(&t, &info.cfg, info.n, true, t.bounded)?;
        let checkpoint_bytes = FitCheckpoint::<f64>::max_len(&t, &info.cfg, info.n);
        Ok(Resumable {
            info,
            stats,
            max_shape,
            work,
            model_bytes,
            checkpoint_bytes,
        })
    }
}

/// Bytes of the checkpoint buffer the resumable fits need for `n_samples` samples with this
/// shape and config: the largest checkpoint any of them writes (every sample with its weight
/// and log-likelihood or log-weight, the parameters, best parameters and Adam moments of the
/// largest model the config can produce). `lwf_model_fit_resume` needs the same for the
/// checkpoints after the resumed one (`LwfFitCheckpointInfo.checkpoint_bytes`).
///
/// Errors: as `lwf_fit_work_size`.
///
/// # Safety
/// `shape` and `config` NULL or readable; `out_bytes` NULL or writable.
// Same shape as fit.rs::lwf_fit_work_size (duplicates): C entry points each spell out their
// argument list and forward to one implementation.
#[no_mangle]
pub unsafe extern "C" fn lwf_fit_checkpoint_size(
    shape: *const LwfShape,
    config: *const LwfFitConfig,
    n_samples: usize,
    out_bytes: *mut usize,
) -> LwfStatus {
    guard(|| {
        let out = out_scalar(out_bytes)?;
        // SAFETY: forwarded contract.
        let (template, cfg) = unsafe { crate::fit::checkpoint_plan(shape, config, n_samples) }?;
        let bytes = FitCheckpoint::<f64>::max_len(&template, &cfg, n_samples);
        if bytes > isize::MAX as usize {
            return Err(LWF_LENGTH_MISMATCH);
        }
        // SAFETY: checked by out_scalar.
        unsafe { write_scalar(out, bytes) };
        Ok(())
    })
}

/// Checks the checkpoint `bytes` (`len` bytes, exactly as the checkpoint callback received
/// them) and writes what it holds and the memory `lwf_model_fit_resume` needs into
/// `*out_info`. Every check of the resumption runs (format, version, length, checksum, every
/// field and value); nothing else is done.
///
/// Errors: `LWF_NULL_POINTER`, `LWF_MISALIGNED` (`out_info`), `LWF_BAD_FORMAT` (truncated,
/// trailing bytes, not a checkpoint, another version, a checksum mismatch, an invalid field,
/// reals other than `double`), `LWF_INVALID_ARGUMENT` (a valid checkpoint the C fits do not
/// write, e.g. one of the Rust core's without weight statistics), `LWF_OVERLAPPING_BUFFERS`.
///
/// # Safety
/// `bytes` NULL or readable for `len` bytes; `out_info` NULL or writable.
// Same shape as io.rs::lwf_model_inspect (duplicates): C entry points each spell out their
// argument list and forward to one implementation; the shared lines are the output/input span
// checks, the formats read differ.
#[no_mangle]
pub unsafe extern "C" fn lwf_fit_checkpoint_inspect(
    bytes: *const u8,
    len: usize,
    out_info: *mut LwfFitCheckpointInfo,
) -> LwfStatus {
    guard(|| {
        let out = out_scalar(out_info)?;
        disjoint(
            Span::checked(out.cast_const(), 1)?,
            &[Span::checked(bytes, len)?],
        )?;
        // SAFETY: forwarded contract; only read.
        let r = Resumable::read(unsafe { input(bytes, len) }?)?;
        let info = LwfFitCheckpointInfo {
            epoch: match r.info.stage {
                FitStage::Samples => 0,
                FitStage::Epoch(k) => k,
            },
            n_samples: r.info.n,
            dim: r.info.template.dim,
            model_bytes: r.model_bytes,
            work_bytes: r.work.bytes,
            checkpoint_bytes: r.checkpoint_bytes,
        };
        // SAFETY: checked by out_scalar; disjoint from the input.
        unsafe { write_scalar(out, info) };
        Ok(())
    })
}

/// `lwf_model_fit_prior_box` that hands checkpoints to `checkpoint` (with `checkpoint_user`):
/// written into `checkpoint_buf` (`checkpoint_len` bytes, at least `lwf_fit_checkpoint_size`),
/// once after the last likelihood call (epoch 0: every sample with its log-likelihood, before
/// the base is fitted) and after every epoch. A host killed at any point after the first one
/// finishes the fit with `lwf_model_fit_resume` from the last checkpoint it saved, without a
/// single likelihood call and with the bit-identical model and report. With `checkpoint` NULL
/// (`checkpoint_buf` is then ignored) this is `lwf_model_fit_prior_box`; the checkpoints
/// change nothing about the fit either way.
///
/// Errors: as `lwf_model_fit_prior_box`, plus `LWF_NULL_POINTER` / `LWF_BUFFER_TOO_SMALL` for
/// the checkpoint buffer, `LWF_OVERLAPPING_BUFFERS` for a checkpoint buffer that overlaps any
/// other buffer, and `LWF_CANCELLED` when `checkpoint` returned non-zero (see
/// `LwfCheckpointFn`).
///
/// # Safety
/// As `lwf_model_fit_prior_box`; `checkpoint_buf` NULL or writable for `checkpoint_len` bytes;
/// `checkpoint` follows `LwfCheckpointFn`.
// Same shape as fit.rs::lwf_model_fit_prior_box and lwf_model_fit_samples_resumable below
// (duplicates): C entry points each spell out their argument list and forward to one
// implementation (the resumable variant adds the checkpoint sink).
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn lwf_model_fit_prior_box_resumable(
    mem: *mut c_void,
    mem_len: usize,
    shape: *const LwfShape,
    config: *const LwfFitConfig,
    lo: *const f64,
    lo_len: usize,
    hi: *const f64,
    hi_len: usize,
    n_samples: usize,
    log_likelihood: LwfLogLikelihoodFn,
    log_likelihood_user: *mut c_void,
    progress: LwfProgressFn,
    progress_user: *mut c_void,
    checkpoint: LwfCheckpointFn,
    checkpoint_user: *mut c_void,
    checkpoint_buf: *mut c_void,
    checkpoint_len: usize,
    work: *mut c_void,
    work_len: usize,
    out_report: *mut LwfFitReport,
    out_model: *mut *mut LwfModel,
) -> LwfStatus {
    let args = PriorBoxArgs {
        mem,
        mem_len,
        shape,
        config,
        lo,
        lo_len,
        hi,
        hi_len,
        n_samples,
        log_likelihood,
        log_likelihood_user,
        progress,
        progress_user,
        work,
        work_len,
        out_report,
        out_model,
    };
    let sink = SinkArgs {
        callback: checkpoint,
        user: checkpoint_user,
        buf: checkpoint_buf,
        len: checkpoint_len,
    };
    // SAFETY: forwarded contract.
    guard(|| unsafe { fit_prior_box(args, sink) })
}

/// `lwf_model_fit_samples` (`lo_len == hi_len == 0`: no box) or
/// `lwf_model_fit_samples_in_box` (the box [lo, hi] otherwise) that hands checkpoints to
/// `checkpoint` as `lwf_model_fit_prior_box_resumable` does: the first (epoch 0) holds every
/// sample with its log-weight, so `lwf_model_fit_resume` needs neither `theta` nor
/// `log_weights` again.
///
/// Errors: as the fit it stands for, plus those of the checkpoint buffer and callback (see
/// `lwf_model_fit_prior_box_resumable`).
///
/// # Safety
/// As `lwf_model_fit_samples_in_box` (`lo`, `hi` may be NULL with length 0);
/// `checkpoint_buf` NULL or writable for `checkpoint_len` bytes; `checkpoint` follows
/// `LwfCheckpointFn`.
// Same shape as fit.rs::lwf_model_fit_samples(_in_box) (duplicates): C entry points each spell
// out their argument list and forward to one implementation (the resumable variant adds the
// checkpoint sink).
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn lwf_model_fit_samples_resumable(
    mem: *mut c_void,
    mem_len: usize,
    shape: *const LwfShape,
    config: *const LwfFitConfig,
    lo: *const f64,
    lo_len: usize,
    hi: *const f64,
    hi_len: usize,
    theta: *const f64,
    theta_len: usize,
    log_weights: *const f64,
    n: usize,
    progress: LwfProgressFn,
    progress_user: *mut c_void,
    checkpoint: LwfCheckpointFn,
    checkpoint_user: *mut c_void,
    checkpoint_buf: *mut c_void,
    checkpoint_len: usize,
    work: *mut c_void,
    work_len: usize,
    out_report: *mut LwfFitReport,
    out_model: *mut *mut LwfModel,
) -> LwfStatus {
    let samples = SamplesArgs {
        theta,
        theta_len,
        log_weights,
        n,
    };
    let bounds = (lo_len != 0 || hi_len != 0).then_some(BoxArgs {
        lo,
        lo_len,
        hi,
        hi_len,
    });
    let sink = SinkArgs {
        callback: checkpoint,
        user: checkpoint_user,
        buf: checkpoint_buf,
        len: checkpoint_len,
    };
    // SAFETY: forwarded contract.
    guard(|| unsafe {
        fit_samples(
            mem,
            mem_len,
            shape,
            config,
            bounds,
            samples,
            progress,
            progress_user,
            work,
            work_len,
            sink,
            out_report,
            out_model,
        )
    })
}

/// Finishes a fit from its checkpoint `bytes` (`len` bytes, as a checkpoint callback received
/// them), in the caller's memory `mem` (at least `LwfFitCheckpointInfo.model_bytes`, aligned
/// to `lwf_model_align()`) with scratch `work` (at least `work_bytes`, 8-byte aligned): the
/// fit continues from the checkpoint's stage (from the base's EM fit for epoch 0, else from
/// the epoch after it) exactly as the uninterrupted fit ran, and writes the same model (bit
/// for bit), report and handle. No likelihood is evaluated: the samples and their weights are
/// in the checkpoint. `progress` (may be NULL) sees the later epochs; `checkpoint` (may be
/// NULL) receives their checkpoints in `checkpoint_buf` (at least `checkpoint_bytes`; it must
/// not overlap `bytes`), so a resumed fit can be killed and resumed again.
///
/// Returns `LWF_OK`, or `LWF_CANCELLED` (a callback asked to stop; see `LwfCheckpointFn`). On
/// any other status nothing is written.
///
/// Errors: `LWF_NULL_POINTER`, `LWF_MISALIGNED`, `LWF_BAD_FORMAT` (a truncated, corrupted or
/// foreign checkpoint: see `lwf_fit_checkpoint_inspect`), `LWF_INVALID_ARGUMENT` (a checkpoint
/// the C fits do not write), `LWF_BUFFER_TOO_SMALL` (`mem_len`, `work_len`, `checkpoint_len`),
/// `LWF_OVERLAPPING_BUFFERS`, then the fit's own (`LWF_NOT_CONVERGED`, ...).
///
/// # Safety
/// `mem` NULL or writable for `mem_len` bytes; `bytes` NULL or readable for `len` bytes and
/// unchanged during the call; `work` NULL or writable for `work_len` bytes; `checkpoint_buf`
/// NULL or writable for `checkpoint_len` bytes; `out_report` NULL or writable; `out_model`
/// NULL or writable; the callbacks follow `LwfProgressFn` / `LwfCheckpointFn`.
// Same shape as lwf_model_fit_prior_box_resumable and lwf_model_fit_samples_resumable above
// (duplicates): C entry points each spell out their argument list and forward to one
// implementation.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn lwf_model_fit_resume(
    mem: *mut c_void,
    mem_len: usize,
    bytes: *const u8,
    len: usize,
    progress: LwfProgressFn,
    progress_user: *mut c_void,
    checkpoint: LwfCheckpointFn,
    checkpoint_user: *mut c_void,
    checkpoint_buf: *mut c_void,
    checkpoint_len: usize,
    work: *mut c_void,
    work_len: usize,
    out_report: *mut LwfFitReport,
    out_model: *mut *mut LwfModel,
) -> LwfStatus {
    let sink = SinkArgs {
        callback: checkpoint,
        user: checkpoint_user,
        buf: checkpoint_buf,
        len: checkpoint_len,
    };
    guard(|| {
        let input_span = Span::checked(bytes, len)?;
        // SAFETY: forwarded contract; only read, and no output overlaps it (checked below).
        let bytes = unsafe { input(bytes, len) }?;
        let r = Resumable::read(bytes)?;
        // SAFETY: forwarded contract.
        let out = unsafe {
            let (need, shape) = (r.checkpoint_bytes, &r.max_shape);
            check_outputs(
                mem,
                mem_len,
                shape,
                r.work,
                work,
                work_len,
                sink,
                need,
                out_report,
                out_model,
                &[input_span],
            )
        }?;
        // SAFETY: `work` passed check_work in check_outputs and overlaps nothing else.
        let w = unsafe { carve(work, &out.work) }?;
        let data = ResumeBuffers::new(&r.info, w.theta, w.weights, w.log_l, w.bounds)?;
        let mut sink = out.sink;
        let params = w.params;
        let fitted = resume_fit(
            bytes,
            &mut *params,
            data,
            w.buffers,
            progress_hook(progress, progress_user),
            |c| sink.as_mut().is_none_or(|s| s.take(c)),
        );
        let fitted = Sink::outcome(sink.as_ref(), fitted)?;
        // SAFETY: every output was checked by check_outputs.
        unsafe { write_outputs(out.mem, out.report, out.model, &fitted, params, &r.stats) }
    })
}
