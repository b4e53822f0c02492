//! The one-call fit: a model constructor (like `lwf_model_init`) that draws prior samples and
//! weighs them with a C likelihood callback, or takes the caller's samples and log-weights,
//! then runs the core's `lwflow::train::fit` (base by weighted EM / BIC, minibatch Adam with
//! validation and early stopping) with a progress callback that can cancel. A fit that knows
//! a box (the prior-box fit, the samples fit with a box) runs `lwflow::train::fit_in_box`
//! instead unless `LwfFitConfig.bounded` is 0: the model then lives on the box.
//!
//! Memory: the model memory is sized for the largest base the configuration can produce
//! (`lwf_fit_model_size`); everything else lives in one caller-provided work buffer
//! (`lwf_fit_work_size`), laid out by [`WorkLayout`]:
//!
//! | region | doubles |
//! |---|---|
//! | parameters | P (P of the largest shape) |
//! | normalised weights | n |
//! | prior-box and resumed fits only: log-likelihoods, samples | n, n·D |
//! | resumed fit on the box only: the box, lo then hi | 2D |
//! | the core's buffers of a fit (`lwflow::train::FitMemory`, carved by `FitBuffers::split`): gradient, Adam moments, best parameters, training workspace, minibatch, the samples in the box map's unbounded coordinates (fits on the box), EM outputs and scratch (EM bases) | `FitMemory::reals` + `FitMemory::em` |
//! | sample order (`uint32_t`) | n / 2 |
//!
//! The model memory is written only at the end, from the trained parameters in the work
//! buffer: a failed fit leaves it untouched.

use crate::fit_config::{read_config, LwfFitConfig, Settings};
use crate::guard::{self, check_ptr, disjoint, guard, input, out_scalar, write_scalar, Span};
use crate::layout::layout;
use crate::model::{prepare_memory, write_model, LwfModel};
use crate::shape::{read_shape, LwfShape};
use crate::sink::{Sink, SinkArgs};
use crate::status::LwfStatus::{self, *};
use core::ffi::{c_int, c_void};
use core::mem::size_of;
use lwflow::rand_core::SeedableRng;
use lwflow::train::{
    fit_resumable, normalise_log_weights, sample_and_weigh, EpochReport, FitBuffers, FitCheckpoint,
    FitConfig, FitData, FitMemory, FitReport, StopReason, WeightStats,
};
use lwflow::{Error, Shape};
use rand_xoshiro::Xoshiro256PlusPlus;

/// The batched log-likelihood: fill `out_loglik[i]` (i < n) with log p(D | theta_i) for the
/// `n` points of `theta` (row-major `[n][dim]`, read-only) and return 0; any other return
/// value aborts the fit with `LWF_CALLBACK_FAILED`. -inf is a valid value (zero weight); NaN
/// and +inf follow `LwfFitConfig.non_finite`, and an entry left unwritten counts as NaN. The
/// callback must return normally (no `longjmp`, no C++ exception through the library) and
/// must not touch the fit's model or work memory; it may call lwflow on other models.
pub type LwfLogLikelihoodFn = Option<
    unsafe extern "C" fn(
        theta: *const f64,
        n: usize,
        dim: usize,
        out_loglik: *mut f64,
        user: *mut c_void,
    ) -> c_int,
>;

/// Called after every training epoch with that epoch's figures; return 0 to continue,
/// non-zero to stop (the fit then returns `LWF_CANCELLED` with the best model so far). The
/// report is valid during the call only. Same rules as `LwfLogLikelihoodFn`.
pub type LwfProgressFn =
    Option<unsafe extern "C" fn(report: *const LwfEpochReport, user: *mut c_void) -> c_int>;

/// What one training epoch reports to the progress callback.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LwfEpochReport {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// `LwfFitConfig.max_epochs`.
    pub max_epochs: usize,
    /// Mean minibatch loss over the epoch's applied steps (NaN if every step was skipped).
    pub train_loss: f64,
    /// Validation loss -sum w log q / sum w over the held-out split (NaN without validation).
    pub val_loss: f64,
    /// Best validation loss so far, the starting point included.
    pub best_val_loss: f64,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Steps skipped so far for a non-finite loss or gradient.
    pub skipped_steps: u64,
}

impl LwfEpochReport {
    // Same shape as fit_config.rs's repr(C) mirrors (duplicates): a repr(C) struct filled field
    // by field from its Rust-side counterpart.
    fn from_core(r: &EpochReport) -> LwfEpochReport {
        LwfEpochReport {
            epoch: r.epoch,
            max_epochs: r.max_epochs,
            train_loss: r.train_loss,
            val_loss: r.val_loss,
            best_val_loss: r.best_val_loss,
            lr: r.lr,
            skipped_steps: r.skipped_steps,
        }
    }
}

/// Why training stopped (`LwfFitReport.stop_reason`).
// Same shape as fit_config.rs::LwfSchedule (duplicates): repr(C) code enums, each spelling out
// its own codes for the header.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LwfStopReason {
    /// `max_epochs` reached.
    LWF_STOP_MAX_EPOCHS = 0,
    /// No validation improvement for `patience` epochs.
    LWF_STOP_EARLY = 1,
    /// The progress callback returned non-zero (the fit returned `LWF_CANCELLED`).
    LWF_STOP_CANCELLED = 2,
}

/// What a fit did. Written on `LWF_OK` and on `LWF_CANCELLED` (the model is valid then too).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LwfFitReport {
    /// Samples drawn or given (n).
    pub n_samples: usize,
    /// Samples given weight 0 because their log-likelihood or log-weight was NaN or +inf
    /// (`LWF_NON_FINITE_SKIP`).
    pub skipped_samples: usize,
    /// Kish effective sample size (sum w)^2 / sum w^2 of the normalised weights.
    pub ess: f64,
    /// log of the mean of exp(log-weight): for a prior-box fit, the log-evidence estimate
    /// ln Z = ln mean L(theta_i).
    pub log_mean_weight: f64,
    /// Base components K of the fitted model (1 for the Gaussian base); its shape is
    /// `lwf_model_shape` of the fitted model.
    pub components: usize,
    /// EM iterations of the winning restart (0 without an EM base).
    pub em_iterations: usize,
    /// Weighted mean log-density of the samples under the EM mixture (NaN without EM).
    pub em_mean_log_likelihood: f64,
    /// BIC of the EM mixture, -2 ess l + p ln ess (NaN without EM).
    pub em_bic: f64,
    /// Epochs run.
    pub epochs: usize,
    /// Epoch of the kept parameters (0 = the starting point, i.e. the base alone, was best;
    /// without validation the last epoch).
    pub best_epoch: usize,
    /// Optimiser steps applied.
    pub steps: u64,
    /// Steps skipped for a non-finite loss or gradient.
    pub skipped_steps: u64,
    /// Validation loss of the starting parameters (NaN without validation). Never infinite:
    /// a fit whose validation loss would be returns `LWF_NON_FINITE`.
    pub initial_val_loss: f64,
    /// Validation loss of the kept parameters (NaN without validation; never infinite).
    pub best_val_loss: f64,
    /// An `LwfStopReason` code.
    pub stop_reason: i32,
}

impl LwfFitReport {
    /// `LWF_NON_FINITE` unless every figure is finite, apart from the documented NaN of a
    /// figure that does not apply (the EM figures without EM, the validation losses without
    /// validation). An infinite validation loss means the samples have zero density under the
    /// parameters kept (e.g. samples at 1e244 and a base at N(0, I): every step was skipped).
    fn check(&self, em: bool) -> Result<(), LwfStatus> {
        let em_ok = if em {
            self.em_mean_log_likelihood.is_finite() && self.em_bic.is_finite()
        } else {
            self.em_mean_log_likelihood.is_nan() && self.em_bic.is_nan()
        };
        let val_ok = [self.initial_val_loss, self.best_val_loss]
            .iter()
            .all(|v| !v.is_infinite());
        if self.ess.is_finite() && self.log_mean_weight.is_finite() && em_ok && val_ok {
            Ok(())
        } else {
            Err(LWF_NON_FINITE)
        }
    }

    fn new(stats: &WeightStats, fit: &FitReport) -> LwfFitReport {
        let (em_iterations, em_mean_log_likelihood, em_bic) = match fit.mixture {
            Some(m) => (m.iterations, m.mean_log_likelihood, m.bic),
            None => (0, f64::NAN, f64::NAN),
        };
        let t = &fit.train;
        let stop = match t.stop {
            StopReason::MaxEpochs => LwfStopReason::LWF_STOP_MAX_EPOCHS,
            StopReason::EarlyStopped => LwfStopReason::LWF_STOP_EARLY,
            StopReason::Cancelled => LwfStopReason::LWF_STOP_CANCELLED,
        };
        LwfFitReport {
            n_samples: stats.n,
            skipped_samples: stats.skipped,
            ess: stats.ess,
            log_mean_weight: stats.log_mean_weight,
            components: fit.shape.components(),
            em_iterations,
            em_mean_log_likelihood,
            em_bic,
            epochs: t.epochs,
            best_epoch: t.best_epoch,
            steps: t.steps,
            skipped_steps: t.skipped_steps,
            initial_val_loss: t.initial_val_loss,
            best_val_loss: t.best_val_loss,
            stop_reason: stop as i32,
        }
    }
}

/// The three fit entry points, as far as their memory and their box differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Entry {
    /// `lwf_model_fit_prior_box`: draws and keeps its samples; knows a box.
    PriorBox,
    /// `lwf_model_fit_samples`: the caller's samples, no box.
    Samples,
    /// `lwf_model_fit_samples_in_box`: the caller's samples and a box.
    SamplesInBox,
}

/// The shape and settings of a fit, checked.
struct Plan {
    /// The caller's shape, without outer maps.
    template: Shape,
    settings: Settings,
}

impl Plan {
    /// Whether a fit by `entry` fits on its box.
    fn in_box(&self, entry: Entry) -> bool {
        self.settings.bounded && entry != Entry::Samples
    }

    /// The template of a fit by `entry`: with the box support when it fits on its box.
    fn fit_template(&self, entry: Entry) -> Shape {
        self.template.with_bounded(self.in_box(entry))
    }

    /// The largest shape a fit by `entry` can produce: size every buffer for it.
    fn max_shape(&self, entry: Entry) -> Shape {
        self.settings.fit.base.max_shape(&self.fit_template(entry))
    }
}

/// Reads the shape and the config; the largest shape the base choice can produce must be
/// valid and addressable (`LWF_INVALID_ARGUMENT` for a `components` too large).
///
/// # Safety
/// `shape` and `config` are NULL or readable.
unsafe fn plan(shape: *const LwfShape, config: *const LwfFitConfig) -> Result<Plan, LwfStatus> {
    // SAFETY: forwarded contract.
    let template = unsafe { read_shape(shape) }?;
    // The box support comes from the config (`bounded`), the affine standardisation only
    // from the refinement: the shape asks for neither.
    if template.affine || template.bounded {
        return Err(LWF_INVALID_ARGUMENT);
    }
    // SAFETY: forwarded contract.
    let settings = unsafe { read_config(config) }?;
    let plan = Plan { template, settings };
    // The prior-box fit's shape is the largest of the three entry points'.
    let max_shape = plan.max_shape(Entry::PriorBox);
    if max_shape.validate().is_err() || layout(&max_shape).is_err() {
        return Err(LWF_INVALID_ARGUMENT);
    }
    Ok(plan)
}

/// The fit template and settings of the largest checkpoint a fit of `n` samples with this
/// shape and config writes (the prior-box fit's), with the size queries' errors.
///
/// # Safety
/// `shape` and `config` are NULL or readable.
pub(crate) unsafe fn checkpoint_plan(
    shape: *const LwfShape,
    config: *const LwfFitConfig,
    n: usize,
) -> Result<(Shape, FitConfig), LwfStatus> {
    // SAFETY: forwarded contract.
    let plan = unsafe { plan(shape, config) }?;
    WorkLayout::new(&plan, n, Entry::PriorBox)?;
    Ok((plan.fit_template(Entry::PriorBox), plan.settings.fit))
}

/// Checks a fit's box [lo, hi] of `d` coordinates: `LWF_LENGTH_MISMATCH` for a length other
/// than `d`, `LWF_NON_FINITE` for NaN / inf, `LWF_INVALID_ARGUMENT` unless every coordinate
/// has lo < hi, a finite width hi - lo and a midpoint lo + (hi - lo) / 2 strictly inside (so
/// the prior draws, whose last resort is that midpoint, all lie in the open box, where a
/// model on the box has a finite density).
fn check_box(lo: &[f64], hi: &[f64], d: usize) -> Result<(), LwfStatus> {
    if lo.len() != d || hi.len() != d {
        return Err(LWF_LENGTH_MISMATCH);
    }
    if !lo.iter().chain(hi).all(|v| v.is_finite()) {
        return Err(LWF_NON_FINITE);
    }
    let usable = |(&a, &b): (&f64, &f64)| {
        let mid = a + 0.5 * (b - a);
        a < b && (b - a).is_finite() && a < mid && mid < b
    };
    if !lo.iter().zip(hi).all(usable) {
        return Err(LWF_INVALID_ARGUMENT);
    }
    Ok(())
}

/// The work regions (see the module docs): the C ABI's own (the model's parameters, the
/// normalised weights, the samples and log-likelihoods it keeps, the box of a resumed fit),
/// then the core's, sized and carved by the core's buffer plan ([`FitMemory`],
/// [`FitBuffers::split`]) so the two never disagree.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WorkLayout {
    /// The fit's template (with its box support) and settings: the core's plan needs them.
    template: Shape,
    fit: FitConfig,
    params: usize,
    n: usize,
    /// The samples and their log-likelihoods are in the work memory (prior-box and resumed
    /// fits).
    keeps_samples: bool,
    /// Doubles of the box copy of a resumed fit (2D on the box, else 0).
    bounds: usize,
    /// The core's regions.
    core: FitMemory,
    /// Doubles before the `uint32_t` order region.
    doubles: usize,
    pub(crate) bytes: usize,
}

impl WorkLayout {
    fn new(plan: &Plan, n: usize, entry: Entry) -> Result<WorkLayout, LwfStatus> {
        let keeps = entry == Entry::PriorBox;
        Self::sized(
            &plan.fit_template(entry),
            &plan.settings.fit,
            n,
            keeps,
            false,
        )
    }

    /// The regions of a fit of `n` samples with settings `fit` on `template` (its outer
    /// maps as the fit has them): `keeps_samples` for the samples and log-likelihoods of its
    /// own (the prior-box fit, a resumed fit), `bounds` for a copy of the box (a resumed fit
    /// on the box).
    pub(crate) fn sized(
        template: &Shape,
        fit: &FitConfig,
        n: usize,
        keeps_samples: bool,
        bounds: bool,
    ) -> Result<WorkLayout, LwfStatus> {
        if n == 0 {
            return Err(LWF_EMPTY_BATCH);
        }
        // The trainer indexes samples with u32.
        if n > u32::MAX as usize {
            return Err(LWF_INVALID_ARGUMENT);
        }
        let d = template.dim;
        let params = fit.base.max_shape(template).param_len();
        let bounds = if bounds { 2 * d } else { 0 };
        // The core's sizes saturate: an overflow leaves usize::MAX, which the checked sums
        // below refuse.
        let core = FitMemory::new(template, fit, n);
        let too_large = LWF_LENGTH_MISMATCH;
        let per_sample = 1 + if keeps_samples { 1 + d } else { 0 };
        let sum = |parts: &[Option<usize>]| {
            parts
                .iter()
                .try_fold(0usize, |acc, p| p.and_then(|v| acc.checked_add(v)))
        };
        let doubles = sum(&[
            Some(params),
            n.checked_mul(per_sample),
            Some(bounds),
            Some(core.reals),
            Some(core.em),
        ])
        .ok_or(too_large)?;
        let bytes = doubles
            .checked_mul(size_of::<f64>())
            .and_then(|b| b.checked_add(core.order.checked_mul(size_of::<u32>())?))
            .filter(|&b| b <= isize::MAX as usize)
            .ok_or(too_large)?;
        Ok(WorkLayout {
            template: *template,
            fit: *fit,
            params,
            n,
            keeps_samples,
            bounds,
            core,
            doubles,
            bytes,
        })
    }
}

/// The work regions as slices.
pub(crate) struct Work<'a> {
    pub(crate) params: &'a mut [f64],
    pub(crate) buffers: FitBuffers<'a, f64>,
    pub(crate) weights: &'a mut [f64],
    /// Prior-box and resumed fits only (empty otherwise).
    pub(crate) log_l: &'a mut [f64],
    /// Prior-box and resumed fits only (empty otherwise).
    pub(crate) theta: &'a mut [f64],
    /// Resumed fits on a box only (empty otherwise).
    pub(crate) bounds: &'a mut [f64],
}

/// Checks the work buffer against its layout: `LWF_NULL_POINTER`, `LWF_MISALIGNED`,
/// `LWF_BUFFER_TOO_SMALL`, and the span it will use.
pub(crate) fn check_work(
    work: *mut c_void,
    work_len: usize,
    wl: &WorkLayout,
) -> Result<Span, LwfStatus> {
    let bytes = work.cast::<u8>();
    check_ptr(bytes.cast_const(), work_len)?;
    if bytes.is_null() {
        // NULL with length 0 is an empty buffer: too small for any fit.
        return Err(LWF_BUFFER_TOO_SMALL);
    }
    if (bytes as usize) % size_of::<f64>() != 0 {
        return Err(LWF_MISALIGNED);
    }
    if work_len < wl.bytes {
        return Err(LWF_BUFFER_TOO_SMALL);
    }
    Ok(Span::raw(bytes, wl.bytes))
}

/// Splits the checked work buffer into its regions.
///
/// # Safety
/// `work` passed [`check_work`] for `wl`, is valid for reads and writes of `wl.bytes` bytes,
/// and no other reference to that memory exists during `'a`.
pub(crate) unsafe fn carve<'a>(work: *mut c_void, wl: &WorkLayout) -> Result<Work<'a>, LwfStatus> {
    let base = work.cast::<f64>();
    // SAFETY: the doubles and the order region are disjoint parts of the checked buffer; the
    // order region starts at a multiple of 8 bytes, so it is aligned for u32.
    let (all, order) = unsafe {
        (
            guard::output(base, wl.doubles)?,
            guard::output(base.add(wl.doubles).cast::<u32>(), wl.core.order)?,
        )
    };
    let d = wl.template.dim;
    let (params, rest) = all.split_at_mut(wl.params);
    let (weights, rest) = rest.split_at_mut(wl.n);
    let drawn = if wl.keeps_samples { wl.n } else { 0 };
    let (log_l, rest) = rest.split_at_mut(drawn);
    let (theta, rest) = rest.split_at_mut(drawn * d);
    let (bounds, rest) = rest.split_at_mut(wl.bounds);
    let (reals, em) = rest.split_at_mut(wl.core.reals);
    let buffers = FitBuffers::split(&wl.template, &wl.fit, wl.n, reals, order, em)
        .map_err(|_| LWF_BUFFER_TOO_SMALL)?;
    Ok(Work {
        params,
        buffers,
        weights,
        log_l,
        theta,
        bounds,
    })
}

/// An optional output: NULL is allowed; otherwise aligned.
pub(crate) fn optional_out<T>(ptr: *mut T) -> Result<Option<Span>, LwfStatus> {
    if ptr.is_null() {
        Ok(None)
    } else {
        Span::checked(ptr.cast_const(), 1).map(Some)
    }
}

/// The checked outputs of a fit: model memory, work layout, checkpoint sink, report and
/// handle.
pub(crate) struct Outputs {
    pub(crate) mem: *mut u8,
    pub(crate) work: WorkLayout,
    pub(crate) sink: Option<Sink>,
    pub(crate) report: *mut LwfFitReport,
    pub(crate) model: *mut *mut LwfModel,
}

/// Checks every output of a fit (model memory for `max_shape`, work memory for `wl`, the
/// checkpoint buffer for `sink_need` bytes when there is a checkpoint callback, report,
/// handle) and that none overlaps an input (`inputs`) or another output.
///
/// # Safety
/// The pointers satisfy the exported functions' contracts.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn check_outputs(
    mem: *mut c_void,
    mem_len: usize,
    max_shape: &Shape,
    wl: WorkLayout,
    work: *mut c_void,
    work_len: usize,
    sink: SinkArgs,
    sink_need: usize,
    out_report: *mut LwfFitReport,
    out_model: *mut *mut LwfModel,
    inputs: &[Span],
) -> Result<Outputs, LwfStatus> {
    // SAFETY: forwarded contract. Checks mem (NULL, alignment, size for the largest shape)
    // and out_model (NULL, alignment, not inside mem).
    let (mem, mem_layout) = unsafe { prepare_memory(mem, mem_len, max_shape, out_model) }?;
    let work_span = check_work(work, work_len, &wl)?;
    let sink = sink.check(sink_need)?;
    let report_span = optional_out(out_report)?;
    let mem_span = Span::raw(mem, mem_layout.total_bytes);
    let model_span = Span::checked(out_model.cast_const(), 1)?;
    let outputs = [
        Some(mem_span),
        Some(work_span),
        report_span,
        Some(model_span),
        sink.as_ref().map(Sink::span),
    ];
    // Every output against every input and every other output.
    for (i, out) in outputs.iter().enumerate() {
        let Some(out) = out else { continue };
        disjoint(*out, inputs)?;
        for other in outputs.iter().skip(i + 1).flatten() {
            disjoint(*out, &[*other])?;
        }
    }
    Ok(Outputs {
        mem,
        work: wl,
        sink,
        report: out_report,
        model: out_model,
    })
}

/// The common checks of the fit entry points: shape, config, then [`check_outputs`].
struct Checked {
    plan: Plan,
    entry: Entry,
    out: Outputs,
}

/// # Safety
/// The pointers satisfy the exported functions' contracts.
#[allow(clippy::too_many_arguments)]
unsafe fn check_common(
    mem: *mut c_void,
    mem_len: usize,
    shape: *const LwfShape,
    config: *const LwfFitConfig,
    n: usize,
    entry: Entry,
    inputs: &[Span],
    work: *mut c_void,
    work_len: usize,
    sink: SinkArgs,
    out_report: *mut LwfFitReport,
    out_model: *mut *mut LwfModel,
) -> Result<Checked, LwfStatus> {
    // SAFETY: forwarded contract.
    let plan = unsafe { plan(shape, config) }?;
    let wl = WorkLayout::new(&plan, n, entry)?;
    let need = FitCheckpoint::<f64>::max_len(&plan.fit_template(entry), &plan.settings.fit, n);
    let max_shape = plan.max_shape(entry);
    // SAFETY: forwarded contract.
    let out = unsafe {
        check_outputs(
            mem, mem_len, &max_shape, wl, work, work_len, sink, need, out_report, out_model, inputs,
        )
    }?;
    Ok(Checked { plan, entry, out })
}

/// The progress callback as the core's epoch hook.
pub(crate) fn progress_hook(
    progress: LwfProgressFn,
    user: *mut c_void,
) -> impl FnMut(&EpochReport) -> bool {
    move |r: &EpochReport| match progress {
        None => true,
        Some(f) => {
            let report = LwfEpochReport::from_core(r);
            // SAFETY: the callback's contract (LwfProgressFn); the report outlives the call.
            unsafe { f(&report, user) == 0 }
        }
    }
}

/// Runs the core fit on weighted samples in the work buffer (on the box `bounds` when the
/// entry point fits on its box), handing checkpoints to the sink, and on success or
/// cancellation writes the outputs.
///
/// # Safety
/// `checked` came from [`check_common`] for these pointers; `work` holds the regions.
#[allow(clippy::too_many_arguments)]
unsafe fn train_and_write(
    checked: Checked,
    bounds: Option<(&[f64], &[f64])>,
    params: &mut [f64],
    buffers: FitBuffers<'_, f64>,
    data: FitData<'_, f64>,
    stats: &WeightStats,
    progress: LwfProgressFn,
    progress_user: *mut c_void,
) -> Result<(), LwfStatus> {
    let Checked { plan, entry, out } = checked;
    let mut sink = out.sink;
    let template = plan.fit_template(entry);
    let cfg = &plan.settings.fit;
    // Every sample of non-zero weight inside the open box, else InvalidArgument.
    let bounds = bounds.filter(|_| template.bounded);
    let fitted = fit_resumable(
        &template,
        cfg,
        bounds,
        params,
        data,
        buffers,
        progress_hook(progress, progress_user),
        |c| sink.as_mut().is_none_or(|s| s.take(c)),
    );
    let fitted = Sink::outcome(sink.as_ref(), fitted)?;
    // SAFETY: forwarded contract.
    unsafe { write_outputs(out.mem, out.report, out.model, &fitted, params, stats) }
}

/// Writes the fitted model into `mem`, the report and the handle; `LWF_CANCELLED` (with the
/// outputs written) for a fit stopped by a callback.
///
/// # Safety
/// `mem` came from `prepare_memory` for the largest shape the fit can produce (its layout is
/// at least this shape's) and, like `out_report` (NULL or aligned) and `out_model` (checked),
/// overlaps no other buffer of the call.
pub(crate) unsafe fn write_outputs(
    mem: *mut u8,
    out_report: *mut LwfFitReport,
    out_model: *mut *mut LwfModel,
    fitted: &FitReport,
    params: &[f64],
    stats: &WeightStats,
) -> Result<(), LwfStatus> {
    let shape = fitted.shape;
    let params = params
        .get(..shape.param_len())
        .ok_or(LWF_INVALID_ARGUMENT)?;
    // Nothing is written unless every figure of the report is finite (or a documented NaN).
    let report = LwfFitReport::new(stats, fitted);
    report.check(fitted.mixture.is_some())?;
    // SAFETY: forwarded contract.
    unsafe {
        write_model(mem, &shape, layout(&shape)?, |dst| {
            dst.copy_from_slice(params);
            Ok(())
        })
    }?;
    if !out_report.is_null() {
        // SAFETY: aligned and disjoint from every other buffer (forwarded contract).
        unsafe { write_scalar(out_report, report) };
    }
    // SAFETY: checked and disjoint from the other buffers (forwarded contract).
    unsafe { write_scalar(out_model, mem.cast::<LwfModel>()) };
    match fitted.train.stop {
        // The model and report are written: the documented outputs of LWF_CANCELLED.
        StopReason::Cancelled => Err(LWF_CANCELLED),
        StopReason::MaxEpochs | StopReason::EarlyStopped => Ok(()),
    }
}

/// Bytes of model memory a fit with this shape and config needs: `lwf_shape_model_size` of
/// the largest model the base choice can produce (`components` mixture components for the
/// mixture choices, including `LWF_FIT_BASE_AUTO` whatever K it picks), with the box support
/// when `config->bounded` is 1 (the default). The shape's `base` and `components` fields are
/// ignored: the config's base choice replaces them.
///
/// Errors: `LWF_NULL_POINTER`, `LWF_MISALIGNED`, `LWF_INVALID_SHAPE`, `LWF_INVALID_ARGUMENT`
/// (a config field out of range).
///
/// # Safety
/// `shape` and `config` NULL or readable; `out_bytes` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lwf_fit_model_size(
    shape: *const LwfShape,
    config: *const LwfFitConfig,
    out_bytes: *mut usize,
) -> LwfStatus {
    guard(|| {
        let out = out_scalar(out_bytes)?;
        // SAFETY: forwarded contract.
        let plan = unsafe { plan(shape, config) }?;
        let bytes = layout(&plan.max_shape(Entry::PriorBox))?.total_bytes;
        // SAFETY: checked by out_scalar.
        unsafe { write_scalar(out, bytes) };
        Ok(())
    })
}

/// Bytes of work memory (8-byte aligned) that `lwf_model_fit_prior_box` needs for
/// `n_samples` prior draws with this shape and config. `lwf_model_fit_samples` and
/// `lwf_model_fit_samples_in_box` need `n_samples * (dim + 1) * 8` bytes fewer (they keep no
/// samples or log-likelihoods of their own), so this size suffices for all three. The memory
/// holds the weights, the sample order, the optimiser state, best parameters, minibatch and
/// EM buffers, and for a fit on the box (`config->bounded` 1, the default) the samples in the
/// box map's unbounded coordinates (`n_samples * dim * 8` bytes); it is scratch: its contents
/// are unspecified after the call.
///
/// Errors: `LWF_NULL_POINTER`, `LWF_MISALIGNED`, `LWF_INVALID_SHAPE`, `LWF_INVALID_ARGUMENT`
/// (a config field out of range, or `n_samples > UINT32_MAX`), `LWF_EMPTY_BATCH`
/// (`n_samples == 0`), `LWF_LENGTH_MISMATCH` (the size does not fit the address space).
///
/// # Safety
/// `shape` and `config` NULL or readable; `out_bytes` NULL or writable.
// Same shape as checkpoint.rs::lwf_fit_checkpoint_size (duplicates): C entry points each spell
// out their argument list and forward to one implementation.
#[no_mangle]
pub unsafe extern "C" fn lwf_fit_work_size(
    shape: *const LwfShape,
    config: *const LwfFitConfig,
    n_samples: usize,
    out_bytes: *mut usize,
) -> LwfStatus {
    guard(|| {
        let out = out_scalar(out_bytes)?;
        // SAFETY: forwarded contract.
        let plan = unsafe { plan(shape, config) }?;
        let bytes = WorkLayout::new(&plan, n_samples, Entry::PriorBox)?.bytes;
        // SAFETY: checked by out_scalar.
        unsafe { write_scalar(out, bytes) };
        Ok(())
    })
}

/// Fits a model to a posterior given by a prior box and a likelihood callback, in the
/// caller's memory `mem` (at least `lwf_fit_model_size` bytes, aligned to
/// `lwf_model_align()`), like `lwf_model_init`:
///
/// 1. draws `n_samples` points uniformly inside the box [lo, hi] (`lo_len == hi_len == dim`,
///    finite, lo < hi with a finite width hi - lo and its midpoint strictly inside) with the
///    generator `lwf_rng_init(config->sample_seed)` gives;
/// 2. calls `log_likelihood` on them in batches of at most `config->likelihood_batch` points,
///    in order;
/// 3. normalises the log-likelihoods into weights of mean 1 (log-sum-exp), refusing a set
///    whose effective sample size is below `config->min_ess`;
/// 4. runs the core's fit on the box (`lwflow::train::fit_in_box`; with `config->bounded` 0
///    the unbounded `lwflow::train::fit`): the base per `config->base` (weighted EM, K by
///    BIC for `LWF_FIT_BASE_AUTO`), the flow started at the identity, minibatch Adam with
///    validation, early stopping and restore of the best parameters, calling `progress` (may
///    be NULL) after every epoch;
/// 5. writes the trained model into `mem` (Adam state zero, as after `lwf_model_init`), the
///    report into `*out_report` (may be NULL) and the handle into `*out_model`.
///
/// With `config->bounded` 1 (the default) the model lives on the box: its shape has `bounded`
/// 1 and its parameters end with lo, then hi; log q is -inf outside the open box and every
/// sample lies inside it. The shape gives dim, hidden width, layers, activation and clamp; its
/// `base` and `components` are replaced per the config (the fitted shape is
/// `lwf_model_shape`); it must not ask for outer maps itself (`affine` and `bounded` 0: the
/// box support is `config->bounded`, the affine standardisation only the refinement's;
/// `LWF_INVALID_ARGUMENT` otherwise, also from the size queries). The same inputs give
/// bit-identical models. `work` (`work_len` bytes, at least `lwf_fit_work_size`,
/// 8-byte aligned) is scratch. Every argument is checked before the first callback.
///
/// Returns `LWF_OK`, or `LWF_CANCELLED` when `progress` returned non-zero: the model, handle
/// and report are then written too (the best parameters so far: the lowest validation loss,
/// or the last epoch's without validation). On any other status nothing is written: not
/// `mem`, not the report, not the handle.
///
/// Errors: `LWF_NULL_POINTER` (`log_likelihood`, `mem`, `shape`, `config`, `lo`, `hi`, `work`,
/// `out_model`), `LWF_MISALIGNED`, `LWF_INVALID_SHAPE`, `LWF_INVALID_ARGUMENT` (a config
/// field, outer maps in the shape, lo >= hi, a width hi - lo that overflows or a box with no
/// interior midpoint, `n_samples > UINT32_MAX`), `LWF_LENGTH_MISMATCH` (`lo_len`, `hi_len`),
/// `LWF_NON_FINITE` (NaN/inf in lo or hi), `LWF_EMPTY_BATCH` (`n_samples == 0`),
/// `LWF_BUFFER_TOO_SMALL` (`mem_len`, `work_len`), `LWF_OVERLAPPING_BUFFERS` (model memory,
/// work, report or handle overlapping each other or an input), `LWF_CALLBACK_FAILED` (the
/// callback returned non-zero, or wrote NaN / +inf under `LWF_NON_FINITE_ERROR`),
/// `LWF_DEGENERATE_WEIGHTS` (all log-likelihoods -inf or skipped, or ESS below
/// `min_ess`), `LWF_NOT_CONVERGED` (EM found no usable mixture), `LWF_NON_FINITE` also when
/// a figure of the report would be infinite (the samples have zero density under every
/// parameters the fit reached, e.g. samples at 1e244 and a base starting at N(0, I)).
///
/// # Safety
/// `mem` NULL or writable for `mem_len` bytes; `shape`, `config` NULL or readable; `lo`, `hi`
/// NULL or readable for their lengths; `work` NULL or writable for `work_len` bytes;
/// `out_report` NULL or writable; `out_model` NULL or writable; the callbacks follow
/// `LwfLogLikelihoodFn` / `LwfProgressFn`. None of this memory may be used by another thread
/// during the call.
// Same shape as checkpoint.rs::lwf_model_fit_prior_box_resumable (duplicates): C entry points
// each spell out their argument list and forward to one implementation.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn lwf_model_fit_prior_box(
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
    // SAFETY: forwarded contract.
    guard(|| unsafe { fit_prior_box(args, SinkArgs::NONE) })
}

/// The arguments of the prior-box fits, unchecked.
#[derive(Clone, Copy)]
pub(crate) struct PriorBoxArgs {
    pub(crate) mem: *mut c_void,
    pub(crate) mem_len: usize,
    pub(crate) shape: *const LwfShape,
    pub(crate) config: *const LwfFitConfig,
    pub(crate) lo: *const f64,
    pub(crate) lo_len: usize,
    pub(crate) hi: *const f64,
    pub(crate) hi_len: usize,
    pub(crate) n_samples: usize,
    pub(crate) log_likelihood: LwfLogLikelihoodFn,
    pub(crate) log_likelihood_user: *mut c_void,
    pub(crate) progress: LwfProgressFn,
    pub(crate) progress_user: *mut c_void,
    pub(crate) work: *mut c_void,
    pub(crate) work_len: usize,
    pub(crate) out_report: *mut LwfFitReport,
    pub(crate) out_model: *mut *mut LwfModel,
}

/// Both prior-box fits: checks everything, draws and weighs, then trains (handing the
/// checkpoints to `sink`, if any).
///
/// # Safety
/// The pointers satisfy `lwf_model_fit_prior_box`'s contract, `sink` its resumable form's.
pub(crate) unsafe fn fit_prior_box(a: PriorBoxArgs, sink: SinkArgs) -> Result<(), LwfStatus> {
    let log_likelihood = a.log_likelihood.ok_or(LWF_NULL_POINTER)?;
    let inputs = [
        Span::checked(a.lo, a.lo_len)?,
        Span::checked(a.hi, a.hi_len)?,
    ];
    // SAFETY: forwarded contract.
    let checked = unsafe {
        check_common(
            a.mem,
            a.mem_len,
            a.shape,
            a.config,
            a.n_samples,
            Entry::PriorBox,
            &inputs,
            a.work,
            a.work_len,
            sink,
            a.out_report,
            a.out_model,
        )
    }?;
    let d = checked.plan.template.dim;
    // SAFETY: forwarded contract; inputs are only read and overlap no output (checked).
    let (lo, hi) = unsafe { (input(a.lo, a.lo_len)?, input(a.hi, a.hi_len)?) };
    check_box(lo, hi, d)?;
    // SAFETY: `work` passed check_work in check_common and overlaps nothing else.
    let w = unsafe { carve(a.work, &checked.out.work) }?;
    let likelihood = Likelihood {
        f: log_likelihood,
        user: a.log_likelihood_user,
        dim: d,
    };
    let (theta, log_l, weights) = (&mut *w.theta, &mut *w.log_l, &mut *w.weights);
    let stats = likelihood.draw_and_weigh(&checked.plan.settings, lo, hi, theta, log_l, weights)?;
    let data = FitData {
        samples: theta,
        weights,
        log_values: log_l,
        stats: Some(stats),
    };
    let (progress, user) = (a.progress, a.progress_user);
    // SAFETY: checked above; outputs disjoint from everything else.
    unsafe {
        let bounds = Some((lo, hi));
        train_and_write(
            checked, bounds, w.params, w.buffers, data, &stats, progress, user,
        )
    }
}

/// The caller's likelihood callback with its context.
struct Likelihood {
    f: unsafe extern "C" fn(*const f64, usize, usize, *mut f64, *mut c_void) -> c_int,
    user: *mut c_void,
    dim: usize,
}

impl Likelihood {
    /// Draws the prior samples into `theta`, calls the likelihood on them in batches into
    /// `log_l` and normalises the values into `weights`.
    fn draw_and_weigh(
        &self,
        settings: &Settings,
        lo: &[f64],
        hi: &[f64],
        theta: &mut [f64],
        log_l: &mut [f64],
        weights: &mut [f64],
    ) -> Result<WeightStats, LwfStatus> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(settings.sample_seed);
        let callback = |rows: &[f64], out: &mut [f64]| {
            // An entry the callback leaves unwritten reads as NaN, never as stale memory.
            out.fill(f64::NAN);
            // SAFETY: the callback's contract (LwfLogLikelihoodFn): `rows` holds out.len()
            // points of d doubles, `out` is writable for out.len() doubles; both outlive the
            // call.
            let rc = unsafe {
                (self.f)(
                    rows.as_ptr(),
                    out.len(),
                    self.dim,
                    out.as_mut_ptr(),
                    self.user,
                )
            };
            rc == 0
        };
        sample_and_weigh(
            lo,
            hi,
            &mut rng,
            settings.likelihood_batch,
            callback,
            settings.policy,
            settings.min_ess,
            theta,
            log_l,
            weights,
        )
        .map_err(|e| match e {
            // The box is finite (checked by the caller) and its draws are finite: a
            // non-finite value can only have come from the callback.
            Error::NonFinite | Error::Callback => LWF_CALLBACK_FAILED,
            other => LwfStatus::from(other),
        })
    }
}

/// Fits a model to weighted samples the caller provides: `theta` (`theta_len == n * dim`,
/// row-major `[n][dim]`, finite) with log-weights `log_weights` (`n`): for samples from the
/// prior, the log-likelihoods; for samples from a proposal g, log L + log prior - log g
/// (-inf = weight 0; NaN / +inf per `config->non_finite`: `LWF_NON_FINITE` or weight 0).
/// Otherwise exactly as `lwf_model_fit_prior_box` from its step 3 (`sample_seed` and
/// `likelihood_batch` are unused). It knows no box, so the model is unbounded whatever
/// `config->bounded` says (`lwf_model_fit_samples_in_box` takes one). Model memory: the
/// unbounded model's (`lwf_fit_model_size` with `bounded` 0; the size with the default config
/// is fine too); `work` needs `n * (dim + 1) * 8` bytes fewer than `lwf_fit_work_size` gives
/// with `bounded` 0 (that size, or the size with the default config, is fine too). `theta`
/// and `log_weights` must not change during the call.
///
/// Errors: as `lwf_model_fit_prior_box` without the likelihood ones, plus
/// `LWF_LENGTH_MISMATCH` (`theta_len != n * dim`), `LWF_NON_FINITE` (NaN/inf in theta, or
/// NaN / +inf in `log_weights` under `LWF_NON_FINITE_ERROR`).
///
/// # Safety
/// As `lwf_model_fit_prior_box`; `theta` and `log_weights` NULL or readable for their
/// lengths.
// Same shape as lwf_model_fit_samples_in_box below and
// checkpoint.rs::lwf_model_fit_samples_resumable (duplicates): C entry points each spell out
// their argument list and forward to one implementation (fit_samples).
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn lwf_model_fit_samples(
    mem: *mut c_void,
    mem_len: usize,
    shape: *const LwfShape,
    config: *const LwfFitConfig,
    theta: *const f64,
    theta_len: usize,
    log_weights: *const f64,
    n: usize,
    progress: LwfProgressFn,
    progress_user: *mut c_void,
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
    // SAFETY: forwarded contract.
    guard(|| unsafe {
        fit_samples(
            mem,
            mem_len,
            shape,
            config,
            None,
            samples,
            progress,
            progress_user,
            work,
            work_len,
            SinkArgs::NONE,
            out_report,
            out_model,
        )
    })
}

/// `lwf_model_fit_samples` on the box [lo, hi] (`lo_len == hi_len == dim`; checked as for
/// `lwf_model_fit_prior_box`): with `config->bounded` 1 (the default) the model lives on the
/// box, as a prior-box fit's does, and every sample of non-zero weight must lie strictly
/// inside the box (`LWF_INVALID_ARGUMENT` otherwise; zero-weight samples may lie anywhere);
/// with `bounded` 0 the box is only checked and the fit is `lwf_model_fit_samples`'s. Model
/// memory: `lwf_fit_model_size`; `work` needs `n * (dim + 1) * 8` bytes fewer than
/// `lwf_fit_work_size` gives (that size is fine too).
///
/// Errors: as `lwf_model_fit_samples`, plus those of the box (`LWF_NULL_POINTER`,
/// `LWF_LENGTH_MISMATCH`, `LWF_NON_FINITE`, `LWF_INVALID_ARGUMENT`) and
/// `LWF_INVALID_ARGUMENT` for a sample of non-zero weight on or outside the box.
///
/// # Safety
/// As `lwf_model_fit_samples`; `lo`, `hi` NULL or readable for their lengths.
// Same shape as lwf_model_fit_samples above (duplicates): C entry points each spell out their
// argument list and forward to one implementation (fit_samples).
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn lwf_model_fit_samples_in_box(
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
    // SAFETY: forwarded contract.
    guard(|| unsafe {
        fit_samples(
            mem,
            mem_len,
            shape,
            config,
            Some(BoxArgs {
                lo,
                lo_len,
                hi,
                hi_len,
            }),
            samples,
            progress,
            progress_user,
            work,
            work_len,
            SinkArgs::NONE,
            out_report,
            out_model,
        )
    })
}

/// The samples arguments of the samples fits, unchecked.
#[derive(Clone, Copy)]
pub(crate) struct SamplesArgs {
    pub(crate) theta: *const f64,
    pub(crate) theta_len: usize,
    pub(crate) log_weights: *const f64,
    pub(crate) n: usize,
}

/// The box arguments of `lwf_model_fit_samples_in_box`, unchecked.
#[derive(Clone, Copy)]
pub(crate) struct BoxArgs {
    pub(crate) lo: *const f64,
    pub(crate) lo_len: usize,
    pub(crate) hi: *const f64,
    pub(crate) hi_len: usize,
}

/// The caller's samples (`theta_len == n·d`) and log-weights.
///
/// # Safety
/// The pointers satisfy the samples fits' contracts.
unsafe fn read_samples<'a>(a: SamplesArgs, d: usize) -> Result<(&'a [f64], &'a [f64]), LwfStatus> {
    if a.n.checked_mul(d) != Some(a.theta_len) {
        return Err(LWF_LENGTH_MISMATCH);
    }
    // SAFETY: forwarded contract.
    Ok(unsafe { (input(a.theta, a.theta_len)?, input(a.log_weights, a.n)?) })
}

/// Both samples fits (and their resumable form): checks everything, then weighs and trains.
///
/// # Safety
/// The pointers satisfy the exported functions' contracts.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn fit_samples(
    mem: *mut c_void,
    mem_len: usize,
    shape: *const LwfShape,
    config: *const LwfFitConfig,
    bounds: Option<BoxArgs>,
    samples: SamplesArgs,
    progress: LwfProgressFn,
    progress_user: *mut c_void,
    work: *mut c_void,
    work_len: usize,
    sink: SinkArgs,
    out_report: *mut LwfFitReport,
    out_model: *mut *mut LwfModel,
) -> Result<(), LwfStatus> {
    let SamplesArgs {
        theta,
        theta_len,
        log_weights,
        n,
    } = samples;
    let (entry, lo, lo_len, hi, hi_len) = match bounds {
        Some(b) => (Entry::SamplesInBox, b.lo, b.lo_len, b.hi, b.hi_len),
        None => (Entry::Samples, core::ptr::null(), 0, core::ptr::null(), 0),
    };
    let inputs = [
        Span::checked(theta, theta_len)?,
        Span::checked(log_weights, n)?,
        Span::checked(lo, lo_len)?,
        Span::checked(hi, hi_len)?,
    ];
    // SAFETY: forwarded contract.
    let checked = unsafe {
        check_common(
            mem, mem_len, shape, config, n, entry, &inputs, work, work_len, sink, out_report,
            out_model,
        )
    }?;
    let d = checked.plan.template.dim;
    // SAFETY: forwarded contract; inputs are only read and overlap no output (checked).
    let (samples, log_w) = unsafe { read_samples(samples, d) }?;
    // SAFETY: as above.
    let (lo, hi) = unsafe { (input(lo, lo_len)?, input(hi, hi_len)?) };
    if entry == Entry::SamplesInBox {
        check_box(lo, hi, d)?;
    }
    if !samples.iter().all(|v| v.is_finite()) {
        return Err(LWF_NON_FINITE);
    }
    // SAFETY: `work` passed check_work in check_common and overlaps nothing else.
    let w = unsafe { carve(work, &checked.out.work) }?;
    let settings = &checked.plan.settings;
    let stats = normalise_log_weights(log_w, settings.policy, settings.min_ess, w.weights)?;
    let bounds = (entry == Entry::SamplesInBox).then_some((lo, hi));
    let data = FitData {
        samples,
        weights: w.weights,
        log_values: log_w,
        stats: Some(stats),
    };
    // SAFETY: checked above; outputs disjoint from everything else.
    unsafe {
        train_and_write(
            checked,
            bounds,
            w.params,
            w.buffers,
            data,
            &stats,
            progress,
            progress_user,
        )
    }
}
