//! Minibatch Adam on the weighted negative log-likelihood, with a held-out validation split,
//! early stopping with restore of the best parameters, skipped non-finite steps, optional
//! gradient-norm clipping, a learning-rate schedule and a per-epoch callback.

use crate::error::{check_len, check_min, Error};
use crate::flow::Flow;
use crate::optim::adam::Adam;
use crate::real::Real;
use crate::shape::Shape;
use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// Learning-rate schedule over the whole run (`max_epochs` × steps per epoch).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    /// The configured learning rate throughout.
    Constant,
    /// Cosine decay from the configured rate to `min_factor` × rate at the last step.
    Cosine {
        /// Final rate as a fraction of the initial one, in [0, 1].
        min_factor: f64,
    },
}

/// Training configuration. `Default` gives the values used by the paper example.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainConfig {
    /// Upper bound on epochs (passes over the training split), ≥ 1.
    pub max_epochs: usize,
    /// Minibatch size, ≥ 1.
    pub batch_size: usize,
    /// Optimiser (learning rate, betas, ε, weight decay on the couplings).
    pub adam: Adam,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Stop after this many epochs without a validation improvement (0 = never stop early).
    pub patience: usize,
    /// Share of the samples held out for validation, in [0, 0.9]; 0 disables validation,
    /// early stopping and best-parameter restore.
    pub validation_fraction: f64,
    /// Clip the gradient to this global L2 norm (0 = off).
    pub clip_norm: f64,
    /// Samples whose weight is below this fraction of the largest weight are left out of
    /// training and validation (each carried at most this share of the largest sample's
    /// loss term; on prior samples most of them are far from the posterior, so leaving them
    /// out makes an epoch several times cheaper). 0 keeps every sample.
    pub min_weight: f64,
    /// Seed of the split and the shuffles.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            max_epochs: 200,
            batch_size: 512,
            adam: Adam::default(),
            schedule: Schedule::Cosine { min_factor: 0.05 },
            patience: 20,
            validation_fraction: 0.2,
            clip_norm: 10.0,
            min_weight: 1e-5,
            seed: 0,
        }
    }
}

impl TrainConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), Error> {
        self.adam.validate()?;
        let finite = self.validation_fraction.is_finite()
            && self.clip_norm.is_finite()
            && self.min_weight.is_finite();
        if !finite {
            return Err(Error::NonFinite);
        }
        let schedule_ok = match self.schedule {
            Schedule::Constant => true,
            Schedule::Cosine { min_factor } => (0.0..=1.0).contains(&min_factor),
        };
        if self.max_epochs == 0
            || self.batch_size == 0
            || !(0.0..=0.9).contains(&self.validation_fraction)
            || self.clip_norm < 0.0
            || !(0.0..1.0).contains(&self.min_weight)
            || !schedule_ok
        {
            return Err(Error::InvalidArgument);
        }
        Ok(())
    }

    /// Number of validation samples out of `n` (0 when validation is off).
    pub fn validation_len(&self, n: usize) -> usize {
        if self.validation_fraction <= 0.0 || n < 2 {
            return 0;
        }
        let v = libm::round(self.validation_fraction * n as f64) as usize;
        v.clamp(1, n - 1)
    }

    fn learning_rate(&self, step: u64, total: u64) -> f64 {
        match self.schedule {
            Schedule::Constant => self.adam.lr,
            Schedule::Cosine { min_factor } => {
                let t = (step as f64 / total.max(1) as f64).min(1.0);
                let f = min_factor
                    + (1.0 - min_factor) * 0.5 * (1.0 + libm::cos(core::f64::consts::PI * t));
                self.adam.lr * f
            }
        }
    }
}

/// Caller-provided memory for [`train`]. Lengths: `grad`, `best`: `param_len`;
/// `adam_state`: `optimizer_len`; `workspace`: ≥ `workspace_len`; `batch_theta`:
/// `batch_size·D`; `batch_weights`, `batch_out`: `batch_size`; `order`: number of samples.
// Same shape as train/fit.rs::FitBuffers (duplicates): named caller buffers, one documented
// field each; the buffers differ.
pub struct TrainBuffers<'b, T> {
    /// Gradient.
    pub grad: &'b mut [T],
    /// Adam moments (zeroed at the start).
    pub adam_state: &'b mut [T],
    /// Best parameters so far.
    pub best: &'b mut [T],
    /// Flow workspace.
    pub workspace: &'b mut [T],
    /// Gathered minibatch samples.
    pub batch_theta: &'b mut [T],
    /// Gathered minibatch weights.
    pub batch_weights: &'b mut [T],
    /// Per-sample outputs (validation log-densities).
    pub batch_out: &'b mut [T],
    /// Sample order (split and shuffles).
    pub order: &'b mut [u32],
}

impl<'b, T> TrainBuffers<'b, T> {
    /// The same buffers with the parameter-sized ones (`grad`, `adam_state`, `best`) cut to a
    /// model of `p` parameters (they are sized for the largest model a fit can produce).
    /// Panic-free: a buffer shorter than asked keeps its length (`train` then refuses it).
    pub fn prefix(self, p: usize) -> Self {
        let cut = |b: &'b mut [T], len: usize| {
            let len = len.min(b.len());
            &mut b[..len]
        };
        TrainBuffers {
            grad: cut(self.grad, p),
            adam_state: cut(self.adam_state, p.saturating_mul(2)),
            best: cut(self.best, p),
            ..self
        }
    }
}

/// What one epoch reports to the callback.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochReport {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Configured maximum.
    pub max_epochs: usize,
    /// Training loss −Σ wᵢ log q(θᵢ) / Σ wᵢ over the epoch's applied minibatches (each
    /// evaluated before its step), on the same scale as `val_loss`.
    pub train_loss: f64,
    /// Validation loss −Σw log q / Σw over the held-out split (NaN without validation).
    pub val_loss: f64,
    /// Best validation loss so far (including the starting point).
    pub best_val_loss: f64,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Steps skipped so far for a non-finite loss or gradient.
    pub skipped_steps: u64,
}

/// Why training stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// `max_epochs` reached.
    MaxEpochs,
    /// No validation improvement for `patience` epochs.
    EarlyStopped,
    /// The callback returned `false`.
    Cancelled,
}

/// Summary of a training run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainReport {
    /// Epochs run.
    pub epochs: usize,
    /// Epoch of the restored parameters (0 = the starting point was best).
    pub best_epoch: usize,
    /// Validation loss of the restored parameters (NaN without validation).
    pub best_val_loss: f64,
    /// Validation loss of the starting parameters (NaN without validation).
    pub initial_val_loss: f64,
    /// Optimiser steps applied.
    pub steps: u64,
    /// Steps skipped for a non-finite loss or gradient.
    pub skipped_steps: u64,
    /// Why it stopped.
    pub stop: StopReason,
}

impl TrainReport {
    /// `true` when training ran into its epoch cap while the validation loss was still
    /// improving (the best epoch is one of the last two): more epochs would likely help, and
    /// a caller should not read the fit as converged.
    pub fn still_improving(&self) -> bool {
        self.stop == StopReason::MaxEpochs && self.epochs > 0 && self.best_epoch + 2 > self.epochs
    }
}

/// Weighted validation loss −Σ wᵢ log q(θᵢ) / Σ wᵢ over the held-out samples
/// `buf.order[n_train..]` (NaN when there are none or their weights are all zero).
fn validation_loss<T: Real>(
    shape: &Shape,
    params: &[T],
    samples: &[T],
    weights: &[T],
    n_train: usize,
    batch: usize,
    buf: &mut TrainBuffers<'_, T>,
) -> Result<f64, Error> {
    let d = shape.dim;
    let flow = Flow::new(*shape, params)?;
    let TrainBuffers {
        order,
        workspace,
        batch_theta,
        batch_weights,
        batch_out,
        ..
    } = buf;
    let (mut num, mut den) = (0.0, 0.0);
    // `batch` rows fit every batch buffer (checked by `train`), whatever their own lengths.
    for chunk in order.get(n_train..).unwrap_or(&[]).chunks(batch.max(1)) {
        let m = chunk.len();
        gather(samples, weights, d, chunk, batch_theta, batch_weights);
        flow.log_prob(&batch_theta[..m * d], &mut batch_out[..m], workspace)?;
        for (&w, &lq) in batch_weights[..m].iter().zip(&batch_out[..m]) {
            let w = w.to_f64();
            if w > 0.0 {
                num -= w * lq.to_f64();
                den += w;
            }
        }
    }
    Ok(if den > 0.0 { num / den } else { f64::NAN })
}

/// The training/validation split of [`train`]: the indices of the samples it keeps (weight
/// ≥ `min_weight` × the largest, and > 0) go to `order[..n]` in a seeded shuffle, the first
/// `n_train` for training and the rest held out. Returns (`n_train`, `n`).
fn split<T: Real, R: Rng + ?Sized>(
    weights: &[T],
    cfg: &TrainConfig,
    order: &mut [u32],
    rng: &mut R,
) -> Result<(usize, usize), Error> {
    let max_w = weights.iter().fold(T::ZERO, |a, &w| a.max(w));
    if !(max_w > T::ZERO) {
        return Err(Error::DegenerateWeights);
    }
    check_min(order, weights.len())?;
    let thr = max_w * T::from_f64(cfg.min_weight);
    let mut kept = 0;
    for (i, &w) in weights.iter().enumerate() {
        if w >= thr && w > T::ZERO {
            order[kept] = i as u32;
            kept += 1;
        }
    }
    shuffle(&mut order[..kept], rng);
    Ok((kept - cfg.validation_len(kept), kept))
}

/// The validation loss −Σ wᵢ log q(θᵢ) / Σ wᵢ of any model over the samples [`train`] holds
/// out for these `weights` and `cfg` (the same split, rebuilt from `cfg.seed`): compares
/// models trained on the same data, e.g. in different coordinates. NaN without validation.
pub fn held_out_loss<T: Real>(
    shape: &Shape,
    params: &[T],
    samples: &[T],
    weights: &[T],
    cfg: &TrainConfig,
    mut buf: TrainBuffers<'_, T>,
) -> Result<f64, Error> {
    cfg.validate()?;
    let n = weights.len();
    if n > u32::MAX as usize {
        return Err(Error::InvalidArgument);
    }
    check_len(samples, n.saturating_mul(shape.dim))?;
    let bs = cfg.batch_size.min(n).max(1);
    check_min(buf.batch_weights, bs)?;
    check_min(buf.batch_out, bs)?;
    check_min(buf.batch_theta, bs * shape.dim)?;
    check_min(buf.workspace, shape.eval_workspace_len())?;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed);
    let (n_train, kept) = split(weights, cfg, buf.order, &mut rng)?;
    buf.order = &mut core::mem::take(&mut buf.order)[..kept];
    validation_loss(shape, params, samples, weights, n_train, bs, &mut buf)
}

fn gather<T: Real>(
    samples: &[T],
    weights: &[T],
    d: usize,
    idx: &[u32],
    theta: &mut [T],
    w: &mut [T],
) {
    for ((&i, row), wo) in idx.iter().zip(theta.chunks_exact_mut(d)).zip(w.iter_mut()) {
        let i = i as usize;
        row.copy_from_slice(&samples[i * d..(i + 1) * d]);
        *wo = weights[i];
    }
}

fn shuffle<R: Rng + ?Sized>(idx: &mut [u32], rng: &mut R) {
    for i in (1..idx.len()).rev() {
        let j = ((rng.next_u64() as u128 * (i as u128 + 1)) >> 64) as usize;
        idx.swap(i, j);
    }
}

/// Trains `params` (initialised by the caller: [`init_params`](crate::init_params), an EM base,
/// or a previous run) on weighted samples (`samples`: `n·D`, `weights`: `n`, non-negative,
/// finite; typically of mean 1 from
/// [`normalise_log_weights`](crate::train::normalise_log_weights)).
///
/// With validation, the parameters with the lowest validation loss (the starting point
/// included) are restored at the end, also when cancelled. Deterministic for a given seed.
/// [`train_resumable`] is the same run with a state after every epoch to continue from.
pub fn train<T: Real, F: FnMut(&EpochReport) -> bool>(
    shape: &Shape,
    params: &mut [T],
    samples: &[T],
    weights: &[T],
    cfg: &TrainConfig,
    buf: TrainBuffers<'_, T>,
    mut on_epoch: F,
) -> Result<TrainReport, Error> {
    train_resumable(shape, params, samples, weights, cfg, buf, None, |r, _| {
        on_epoch(r)
    })
}

/// [`train`] drawing its randomness (the validation split and each epoch's shuffle) from the
/// caller's generator instead of one seeded from `cfg.seed` (which it ignores), so a host
/// framework can use its own. `train` is `train_with_rng` with
/// `Xoshiro256PlusPlus::seed_from_u64(cfg.seed)`, bit for bit.
// Same shape as train/trainer.rs::train (duplicates): the seeded and the caller's-generator
// entry points share the argument list; both forward to the one driver.
#[allow(clippy::too_many_arguments)]
pub fn train_with_rng<T: Real, R: Rng + ?Sized, F: FnMut(&EpochReport) -> bool>(
    shape: &Shape,
    params: &mut [T],
    samples: &[T],
    weights: &[T],
    cfg: &TrainConfig,
    buf: TrainBuffers<'_, T>,
    rng: &mut R,
    mut on_epoch: F,
) -> Result<TrainReport, Error> {
    train_from(
        shape,
        params,
        samples,
        weights,
        cfg,
        buf,
        rng,
        None,
        |r, _| on_epoch(r),
    )
}

/// Where a [`train_resumable`] run stands after an epoch, besides its parameter-sized state
/// (the parameters, [`TrainBuffers::best`] and [`TrainBuffers::adam_state`], which
/// [`TrainSnapshot`] shows): with those three as they were, the run continues from it
/// bit-identically.
///
/// The generator and the sample order are not in it: both are functions of `cfg.seed` and
/// the epochs run (the split and each epoch's shuffle draw a fixed number of values), so a
/// resumed run rebuilds them by replaying the shuffles alone, without training. The early
/// stopping counter is `epochs − best_epoch`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainState {
    /// Epochs run.
    pub epochs: usize,
    /// Optimiser steps applied (Adam's step counter, and the schedule's position).
    pub steps: u64,
    /// Steps skipped for a non-finite loss or gradient.
    pub skipped_steps: u64,
    /// Validation loss of the starting parameters (NaN without validation).
    pub initial_val_loss: f64,
    /// Lowest validation loss so far, the starting point included.
    pub best_val_loss: f64,
    /// Its epoch (0 = the starting point); the best parameters are [`TrainBuffers::best`].
    pub best_epoch: usize,
    /// Samples in the training split (a resumed run checks its split against it).
    pub n_train: usize,
    /// Samples kept for training and validation (above `min_weight`).
    pub n_kept: usize,
}

/// What the callback of [`train_resumable`] sees after an epoch: the state and the
/// parameter-sized buffers a continuation needs.
#[derive(Clone, Copy, Debug)]
pub struct TrainSnapshot<'a, T> {
    /// The counters.
    pub state: TrainState,
    /// The current parameters.
    pub params: &'a [T],
    /// The best parameters so far.
    pub best: &'a [T],
    /// Adam's moments.
    pub adam_state: &'a [T],
}

/// [`train`] with a snapshot after every epoch, started afresh (`from` = `None`) or continued
/// from the state of an earlier run's snapshot (`from` = `Some`), with `params`, `buf.best`
/// and `buf.adam_state` holding that snapshot's values and every other argument the same: the
/// continued run ends bit-identical to the uninterrupted one. A state whose epoch counts do not
/// fit `cfg`, or whose split sizes are not these weights', is `InvalidArgument`.
///
/// `on_epoch` returns `false` to stop (`StopReason::Cancelled`; the best parameters are
/// restored as in [`train`]); a run continued from that epoch's snapshot goes on training.
#[allow(clippy::too_many_arguments)]
pub fn train_resumable<T: Real, F>(
    shape: &Shape,
    params: &mut [T],
    samples: &[T],
    weights: &[T],
    cfg: &TrainConfig,
    buf: TrainBuffers<'_, T>,
    from: Option<&TrainState>,
    on_epoch: F,
) -> Result<TrainReport, Error>
where
    F: FnMut(&EpochReport, &TrainSnapshot<'_, T>) -> bool,
{
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed);
    train_from(
        shape, params, samples, weights, cfg, buf, &mut rng, from, on_epoch,
    )
}

/// [`train_resumable`] with the generator `rng` (in its starting state for a fresh run and a
/// continued one alike: the continuation replays the shuffles).
#[allow(clippy::too_many_arguments)]
pub(crate) fn train_from<T: Real, R: Rng + ?Sized, F>(
    shape: &Shape,
    params: &mut [T],
    samples: &[T],
    weights: &[T],
    cfg: &TrainConfig,
    mut buf: TrainBuffers<'_, T>,
    rng: &mut R,
    from: Option<&TrainState>,
    mut on_epoch: F,
) -> Result<TrainReport, Error>
where
    F: FnMut(&EpochReport, &TrainSnapshot<'_, T>) -> bool,
{
    check_inputs(shape, params, samples, weights, cfg, &buf)?;
    let bs = cfg.batch_size.min(weights.len());
    let (n_train, n) = split(weights, cfg, buf.order, rng)?;
    buf.order = &mut core::mem::take(&mut buf.order)[..n];
    let steps_per_epoch = n_train.div_ceil(bs) as u64;
    let run = Run {
        shape,
        samples,
        weights,
        cfg,
        n_train,
        n_val: n - n_train,
        bs,
        total_steps: steps_per_epoch.saturating_mul(cfg.max_epochs as u64),
    };
    let mut st = match from {
        None => run.start(params, &mut buf)?,
        Some(s) => {
            run.check_state(s, n, steps_per_epoch)?;
            for _ in 0..s.epochs {
                shuffle(&mut buf.order[..n_train], rng);
            }
            *s
        }
    };
    let stop = run.epochs(params, &mut buf, rng, &mut st, &mut on_epoch)?;
    if run.n_val > 0 {
        params.copy_from_slice(buf.best);
    }
    Ok(TrainReport {
        epochs: st.epochs,
        best_epoch: if run.n_val > 0 {
            st.best_epoch
        } else {
            st.epochs
        },
        best_val_loss: st.best_val_loss,
        initial_val_loss: st.initial_val_loss,
        steps: st.steps,
        skipped_steps: st.skipped_steps,
        stop,
    })
}

/// The argument checks of [`train_resumable`].
fn check_inputs<T: Real>(
    shape: &Shape,
    params: &[T],
    samples: &[T],
    weights: &[T],
    cfg: &TrainConfig,
    buf: &TrainBuffers<'_, T>,
) -> Result<(), Error> {
    cfg.validate()?;
    shape.validate()?;
    let n = weights.len();
    let d = shape.dim;
    let p = shape.param_len();
    if n == 0 {
        return Err(Error::EmptyBatch);
    }
    if n > u32::MAX as usize {
        return Err(Error::InvalidArgument);
    }
    check_len(samples, n.saturating_mul(d))?;
    check_len(params, p)?;
    check_len(buf.grad, p)?;
    check_len(buf.best, p)?;
    check_len(buf.adam_state, 2 * p)?;
    check_min(buf.workspace, shape.workspace_len())?;
    check_len(buf.order, n)?;
    let bs = cfg.batch_size.min(n);
    check_min(buf.batch_weights, bs)?;
    check_min(buf.batch_out, bs)?;
    check_min(buf.batch_theta, bs * d)?;
    if !crate::real::all_finite(samples) || !crate::real::all_finite(weights) {
        return Err(Error::NonFinite);
    }
    if weights.iter().any(|&w| w < T::ZERO) {
        return Err(Error::InvalidArgument);
    }
    Flow::new(*shape, params)?;
    Ok(())
}

/// One training run's fixed figures.
struct Run<'a, T> {
    shape: &'a Shape,
    samples: &'a [T],
    weights: &'a [T],
    cfg: &'a TrainConfig,
    n_train: usize,
    n_val: usize,
    /// Minibatch size.
    bs: usize,
    total_steps: u64,
}

impl<T: Real> Run<'_, T> {
    /// A fresh start: Adam's moments zero, the starting point as the best so far.
    fn start(&self, params: &[T], buf: &mut TrainBuffers<'_, T>) -> Result<TrainState, Error> {
        buf.adam_state.iter_mut().for_each(|v| *v = T::ZERO);
        let initial = self.validation(params, buf)?;
        buf.best.copy_from_slice(params);
        Ok(TrainState {
            epochs: 0,
            steps: 0,
            skipped_steps: 0,
            initial_val_loss: initial,
            best_val_loss: initial,
            best_epoch: 0,
            n_train: self.n_train,
            n_kept: self.n_train + self.n_val,
        })
    }

    /// A state this run can continue from (`InvalidArgument` otherwise).
    fn check_state(&self, s: &TrainState, kept: usize, steps_per_epoch: u64) -> Result<(), Error> {
        let most = steps_per_epoch.checked_mul(s.epochs as u64);
        let done = s.steps.checked_add(s.skipped_steps);
        let ok = s.epochs <= self.cfg.max_epochs
            && s.best_epoch <= s.epochs
            && s.n_train == self.n_train
            && s.n_kept == kept
            && matches!((most, done), (Some(m), Some(d)) if d <= m);
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidArgument)
        }
    }

    fn validation(&self, params: &[T], buf: &mut TrainBuffers<'_, T>) -> Result<f64, Error> {
        let (s, w) = (self.samples, self.weights);
        validation_loss(self.shape, params, s, w, self.n_train, self.bs, buf)
    }

    /// No validation improvement for `patience` epochs.
    fn patience_spent(&self, st: &TrainState) -> bool {
        self.n_val > 0 && self.cfg.patience > 0 && st.epochs - st.best_epoch >= self.cfg.patience
    }

    /// The epochs after `st` until the cap, early stopping or the callback stops them.
    fn epochs<R: Rng + ?Sized, F>(
        &self,
        params: &mut [T],
        buf: &mut TrainBuffers<'_, T>,
        rng: &mut R,
        st: &mut TrainState,
        on_epoch: &mut F,
    ) -> Result<StopReason, Error>
    where
        F: FnMut(&EpochReport, &TrainSnapshot<'_, T>) -> bool,
    {
        if self.patience_spent(st) {
            return Ok(StopReason::EarlyStopped);
        }
        while st.epochs < self.cfg.max_epochs {
            st.epochs += 1;
            shuffle(&mut buf.order[..self.n_train], rng);
            let (loss_sum, weight_sum) = self.minibatches(params, buf, st)?;
            let val = self.validation(params, buf)?;
            if self.n_val > 0 && val.is_finite() && !(val >= st.best_val_loss) {
                st.best_val_loss = val;
                st.best_epoch = st.epochs;
                buf.best.copy_from_slice(params);
            }
            let report = EpochReport {
                epoch: st.epochs,
                max_epochs: self.cfg.max_epochs,
                train_loss: if weight_sum > 0.0 {
                    loss_sum / weight_sum
                } else {
                    f64::NAN
                },
                val_loss: val,
                best_val_loss: st.best_val_loss,
                lr: self.cfg.learning_rate(st.steps, self.total_steps),
                skipped_steps: st.skipped_steps,
            };
            let snapshot = TrainSnapshot {
                state: *st,
                params,
                best: buf.best,
                adam_state: buf.adam_state,
            };
            if !on_epoch(&report, &snapshot) {
                return Ok(StopReason::Cancelled);
            }
            if self.patience_spent(st) {
                return Ok(StopReason::EarlyStopped);
            }
        }
        Ok(StopReason::MaxEpochs)
    }

    /// One pass over the training split in minibatches (the order already shuffled). Returns
    /// Σ over applied batches of (batch loss · batch size) and of the batch weights, so the
    /// reported loss is −Σw log q / Σw like the validation loss.
    fn minibatches(
        &self,
        params: &mut [T],
        buf: &mut TrainBuffers<'_, T>,
        st: &mut TrainState,
    ) -> Result<(f64, f64), Error> {
        let (cfg, d, bs) = (self.cfg, self.shape.dim, self.bs);
        let (mut loss_sum, mut weight_sum) = (0.0, 0.0);
        let mut start = 0;
        while start < self.n_train {
            let m = bs.min(self.n_train - start);
            let idx = &buf.order[start..start + m];
            gather(
                self.samples,
                self.weights,
                d,
                idx,
                buf.batch_theta,
                buf.batch_weights,
            );
            start += m;
            let loss = Flow::new(*self.shape, &*params)?.loss_and_gradient(
                &buf.batch_theta[..m * d],
                &buf.batch_weights[..m],
                buf.grad,
                buf.workspace,
            )?;
            let norm2 = buf.grad.iter().fold(0.0, |a, &g| {
                let g = g.to_f64();
                a + g * g
            });
            if !loss.is_finite() || !norm2.is_finite() {
                st.skipped_steps += 1;
                continue;
            }
            if cfg.clip_norm > 0.0 && norm2 > cfg.clip_norm * cfg.clip_norm {
                let f = T::from_f64(cfg.clip_norm / libm::sqrt(norm2));
                buf.grad.iter_mut().for_each(|g| *g *= f);
            }
            let lr = cfg.learning_rate(st.steps, self.total_steps);
            let (shape, t) = (self.shape, st.steps + 1);
            match cfg
                .adam
                .step_with_lr(shape, lr, params, buf.grad, buf.adam_state, t)
            {
                Ok(()) => st.steps += 1,
                Err(Error::NonFinite) => {
                    st.skipped_steps += 1;
                    continue;
                }
                Err(e) => return Err(e),
            }
            loss_sum += loss.to_f64() * m as f64;
            weight_sum += buf.batch_weights[..m]
                .iter()
                .map(|w| w.to_f64())
                .sum::<f64>();
        }
        Ok((loss_sum, weight_sum))
    }
}
