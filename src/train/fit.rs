//! The end-to-end fit on weighted samples: choose and place the base, start the flow at the
//! identity, train.
//!
//! With an EM base ([`BaseChoice::Mixture`] or [`BaseChoice::Auto`]) the weighted EM fit of
//! the samples becomes the base and the couplings start as the identity, so at step 0 the flow
//! *is* the fitted mixture and every component already sits on its mode; training only bends
//! the components (and early stopping keeps the mixture if bending does not help).

use crate::base::em::{self, EmConfig, MixtureFit};
use crate::error::{check_len, check_min, Error};
use crate::init::{init_params, set_mixture_base};
use crate::real::Real;
use crate::shape::{BaseKind, Shape};
use crate::train::checkpoint::FitCheckpoint;
use crate::train::trainer::{
    train_from, train_resumable, EpochReport, TrainBuffers, TrainConfig, TrainReport,
    TrainSnapshot, TrainState,
};
use crate::train::weights::WeightStats;
use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// How the base is chosen and initialised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BaseChoice {
    /// Trainable diagonal Gaussian starting at N(0, I): the paper's unimodal base.
    Gaussian,
    /// K trainable components initialised the paper's way (normflows' `GaussianMixture`
    /// default): means N(0, 1), unit scales, equal weights.
    PaperMixture(usize),
    /// K components fitted by weighted EM.
    Mixture(usize),
    /// K chosen by BIC over 1..=K_max, fitted by weighted EM.
    Auto(usize),
}

impl BaseChoice {
    /// The largest component count this choice can produce.
    pub fn max_components(self) -> usize {
        match self {
            BaseChoice::Gaussian => 1,
            BaseChoice::PaperMixture(k) | BaseChoice::Mixture(k) | BaseChoice::Auto(k) => k,
        }
    }

    /// The most components EM fits for this choice: K for the EM bases ([`Mixture`],
    /// [`Auto`]), 0 for the bases placed without EM. Sizes the EM regions of [`FitMemory`].
    ///
    /// [`Mixture`]: BaseChoice::Mixture
    /// [`Auto`]: BaseChoice::Auto
    pub fn em_components(self) -> usize {
        match self {
            BaseChoice::Mixture(k) | BaseChoice::Auto(k) => k,
            BaseChoice::Gaussian | BaseChoice::PaperMixture(_) => 0,
        }
    }

    /// The shape with the largest base this choice can produce: size every buffer for it.
    pub fn max_shape(self, template: &Shape) -> Shape {
        match self {
            BaseChoice::Gaussian => template.with_base(BaseKind::Gaussian),
            _ => template.with_base(BaseKind::Mixture(self.max_components())),
        }
    }
}

/// Fit configuration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FitConfig {
    /// Base choice.
    pub base: BaseChoice,
    /// EM settings (EM bases only).
    pub em: EmConfig,
    /// Trainer settings.
    pub train: TrainConfig,
    /// Seed of the parameter initialisation.
    pub init_seed: u64,
}

/// What a fit did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FitReport {
    /// The fitted model's shape (its base has the chosen K); the model is the first
    /// `shape.param_len()` entries of the parameter buffer.
    pub shape: Shape,
    /// The EM fit of the base, if one was made.
    pub mixture: Option<MixtureFit>,
    /// The training run.
    pub train: TrainReport,
}

/// Caller-provided memory for [`fit`]: the trainer's buffers sized for
/// [`BaseChoice::max_shape`], plus EM outputs (`em_weights`: K, `em_means`, `em_sds`: K·D)
/// and `em_scratch` ([`em::scratch_len`]`(K, D)`), K = [`BaseChoice::em_components`] (empty
/// for the bases placed without EM).
// Same shape as train/trainer.rs::TrainBuffers (duplicates): public structs of named caller
// buffers, one documented field each; FitBuffers holds a TrainBuffers plus the EM and outer-map
// buffers.
pub struct FitBuffers<'b, T> {
    /// Trainer memory, sized for the largest shape (prefixes are used).
    pub train: TrainBuffers<'b, T>,
    /// Fitted component weights.
    pub em_weights: &'b mut [f64],
    /// Fitted component means.
    pub em_means: &'b mut [f64],
    /// Fitted component standard deviations.
    pub em_sds: &'b mut [f64],
    /// EM scratch.
    pub em_scratch: &'b mut [f64],
    /// The samples in the standardised, unbounded coordinates u of a template with outer maps
    /// (`n·D`; empty otherwise).
    pub outer_samples: &'b mut [T],
    /// Covariance and Cholesky factor of the affine standardisation (`2·D·D + D`; empty
    /// without it).
    pub cov: &'b mut [f64],
}

/// Lengths of the three caller slices that [`FitBuffers::split`] carves into every buffer
/// a fit needs: `reals` (`T`: gradient, Adam moments, best parameters, workspace, minibatch),
/// `order` (`u32`, one per sample) and `em` (`f64`: mixture outputs and EM scratch). Sizes
/// saturate instead of overflowing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FitMemory {
    /// Elements of the `T` slice.
    pub reals: usize,
    /// Elements of the `u32` slice.
    pub order: usize,
    /// Elements of the `f64` slice.
    pub em: usize,
}

impl FitMemory {
    /// Memory for fitting `n` samples with `cfg` on `template` (sized for the largest base
    /// `cfg.base` can produce).
    pub fn new(template: &Shape, cfg: &FitConfig, n: usize) -> Self {
        let max = cfg.base.max_shape(template);
        let p = max.param_len();
        let batch = cfg.train.batch_size.min(n);
        let (k, d) = (cfg.base.em_components(), template.dim);
        let kd = k.saturating_mul(d);
        let outer = template.affine || template.bounded;
        FitMemory {
            reals: p
                .saturating_mul(4)
                .saturating_add(max.workspace_len())
                .saturating_add(batch.saturating_mul(d.saturating_add(2)))
                .saturating_add(if outer { n.saturating_mul(d) } else { 0 }),
            order: n,
            em: k
                .saturating_add(kd.saturating_mul(2))
                .saturating_add(if k > 0 { em::scratch_len(k, d) } else { 0 })
                .saturating_add(if template.affine { cov_len(d) } else { 0 }),
        }
    }
}

impl<'b, T: Real> FitBuffers<'b, T> {
    /// Carves the buffers of a fit of `n` samples out of three caller slices of at least
    /// [`FitMemory::new`] lengths (`BufferTooSmall` otherwise).
    pub fn split(
        template: &Shape,
        cfg: &FitConfig,
        n: usize,
        reals: &'b mut [T],
        order: &'b mut [u32],
        em: &'b mut [f64],
    ) -> Result<Self, Error> {
        let need = FitMemory::new(template, cfg, n);
        check_min(reals, need.reals)?;
        check_min(order, need.order)?;
        check_min(em, need.em)?;
        let max = cfg.base.max_shape(template);
        let p = max.param_len();
        let batch = cfg.train.batch_size.min(n);
        let (k, d) = (cfg.base.em_components(), template.dim);
        let (grad, rest) = reals.split_at_mut(p);
        let (adam_state, rest) = rest.split_at_mut(2 * p);
        let (best, rest) = rest.split_at_mut(p);
        let (workspace, rest) = rest.split_at_mut(max.workspace_len());
        let (batch_theta, rest) = rest.split_at_mut(batch * d);
        let (batch_weights, rest) = rest.split_at_mut(batch);
        let (batch_out, rest) = rest.split_at_mut(batch);
        let outer = template.affine || template.bounded;
        let outer_samples = &mut rest[..if outer { n * d } else { 0 }];
        let (em_weights, rest) = em.split_at_mut(k);
        let (em_means, rest) = rest.split_at_mut(k * d);
        let (em_sds, rest) = rest.split_at_mut(k * d);
        let (em_scratch, rest) = rest.split_at_mut(if k > 0 { em::scratch_len(k, d) } else { 0 });
        let cov = &mut rest[..if template.affine { cov_len(d) } else { 0 }];
        Ok(FitBuffers {
            train: TrainBuffers {
                grad,
                adam_state,
                best,
                workspace,
                batch_theta,
                batch_weights,
                batch_out,
                order: &mut order[..n],
            },
            em_weights,
            em_means,
            em_sds,
            em_scratch,
            outer_samples,
            cov,
        })
    }
}

/// Fits a flow with the `template`'s D, H, hidden layers, L, activation and clamp (its base is
/// replaced per `cfg.base`) to weighted samples. `params` must hold at least
/// `cfg.base.max_shape(template).param_len()` values; the fitted model is written to its
/// first `report.shape.param_len()` entries.
///
/// A template with outer maps needs [`fit_in_box`] when it is bounded; with only the affine
/// standardisation ([`Shape::affine`]) this fits it too (see [`fit_in_box`]).
pub fn fit<T: Real, F: FnMut(&EpochReport) -> bool>(
    template: &Shape,
    cfg: &FitConfig,
    params: &mut [T],
    samples: &[T],
    weights: &[T],
    buf: FitBuffers<'_, T>,
    on_epoch: F,
) -> Result<FitReport, Error> {
    let data = FitData::new(samples, weights);
    fit_resumable(template, cfg, None, params, data, buf, on_epoch, |_| true)
}

/// [`fit`] for a template with outer maps, the box given as `lo`, `hi` (D values each, for a
/// [`Shape::bounded`] template; ignored otherwise). Every sample of non-zero weight must lie
/// inside the open box (`InvalidArgument` otherwise; boxes with lo ≥ hi or an overflowing
/// width are refused the same way); zero-weight samples may lie anywhere. The fit runs in the
/// unbounded, standardised coordinates u: each θ is mapped through the inverse of the box map
/// ([`Shape::bounded`]), then (with [`Shape::affine`]) whitened by the weighted mean
/// and the Cholesky factor of the weighted covariance; the EM base is fitted and the couplings
/// trained on u, with the same weights (the change of variables adds a constant per sample
/// to log q, so the weighted objective's gradient is unchanged; the reported losses are in u).
// Same shape as train/fit.rs::fit (duplicates): public variants (with and without the box) that
// spell out the same arguments and forward to fit_resumable.
#[allow(clippy::too_many_arguments)]
pub fn fit_in_box<T: Real, F: FnMut(&EpochReport) -> bool>(
    template: &Shape,
    cfg: &FitConfig,
    lo: &[f64],
    hi: &[f64],
    params: &mut [T],
    samples: &[T],
    weights: &[T],
    buf: FitBuffers<'_, T>,
    on_epoch: F,
) -> Result<FitReport, Error> {
    let data = FitData::new(samples, weights);
    let bounds = Some((lo, hi));
    fit_resumable(template, cfg, bounds, params, data, buf, on_epoch, |_| true)
}

/// [`fit`] (`bounds` = `None`) or [`fit_in_box`] (`bounds` = `Some((lo, hi))`) drawing all
/// its randomness from the caller's generator, in order: the EM seeds (each K in turn), the
/// initialisation, the training split and shuffles. `cfg.init_seed`, `cfg.em.seed` and
/// `cfg.train.seed` are ignored. Not resumable: a checkpoint must hold the generator's state,
/// which only a generator the core owns lets it write ([`fit_resumable`] seeds its own).
#[allow(clippy::too_many_arguments)]
pub fn fit_with_rng<T: Real, R: Rng, F: FnMut(&EpochReport) -> bool>(
    template: &Shape,
    cfg: &FitConfig,
    bounds: Option<(&[f64], &[f64])>,
    params: &mut [T],
    samples: &[T],
    weights: &[T],
    buf: FitBuffers<'_, T>,
    rng: &mut R,
    mut on_epoch: F,
) -> Result<FitReport, Error> {
    let data = FitData::new(samples, weights);
    check_fit(template, cfg, bounds, params, data, &buf)?;
    let job = Job {
        template: *template,
        cfg: *cfg,
        bounds: bounds.filter(|_| template.bounded),
        data,
    };
    job.run(params, buf, None, Some(rng), &mut on_epoch, &mut |_| true)
}

/// The weighted samples a fit trains on, and the values their weights came from (kept in
/// checkpoints for the host, unused by the fit).
#[derive(Clone, Copy, Debug)]
pub struct FitData<'a, T> {
    /// `n·D` samples θ.
    pub samples: &'a [T],
    /// `n` non-negative weights.
    pub weights: &'a [T],
    /// The log-likelihoods (or log-weights) the weights were normalised from: `n` values, or
    /// none.
    pub log_values: &'a [f64],
    /// Their statistics ([`normalise_log_weights`](crate::train::normalise_log_weights)'s).
    pub stats: Option<WeightStats>,
}

impl<'a, T> FitData<'a, T> {
    /// Samples and weights alone.
    pub fn new(samples: &'a [T], weights: &'a [T]) -> Self {
        FitData {
            samples,
            weights,
            log_values: &[],
            stats: None,
        }
    }
}

/// [`fit`] (`bounds` = `None`) or [`fit_in_box`] (`bounds` = `Some((lo, hi))`) that hands
/// `on_checkpoint` a [`FitCheckpoint`] of the fit: first of the weighted samples, before the
/// base is fitted, then after every epoch. Each can be written to bytes
/// ([`FitCheckpoint::to_bytes`]) and continued with
/// [`resume_fit`](crate::train::checkpoint::resume_fit): the continued fit ends bit-identical
/// to this one. `on_checkpoint` returns `false` to stop: after an epoch as `on_epoch` does
/// (`StopReason::Cancelled`, the best parameters restored), before the first one with
/// `Error::Callback` (there is no model yet). `log_values` of `data` must be empty or hold `n`
/// values (`LengthMismatch`). Without checkpoints the results are [`fit`]'s, bit for bit.
#[allow(clippy::too_many_arguments)]
pub fn fit_resumable<T: Real, F, C>(
    template: &Shape,
    cfg: &FitConfig,
    bounds: Option<(&[f64], &[f64])>,
    params: &mut [T],
    data: FitData<'_, T>,
    buf: FitBuffers<'_, T>,
    mut on_epoch: F,
    mut on_checkpoint: C,
) -> Result<FitReport, Error>
where
    F: FnMut(&EpochReport) -> bool,
    C: FnMut(&FitCheckpoint<'_, T>) -> bool,
{
    check_fit(template, cfg, bounds, params, data, &buf)?;
    let job = Job {
        template: *template,
        cfg: *cfg,
        bounds: bounds.filter(|_| template.bounded),
        data,
    };
    if !on_checkpoint(&FitCheckpoint::samples(job)) {
        return Err(Error::Callback);
    }
    job.run(params, buf, None, None, &mut on_epoch, &mut on_checkpoint)
}

/// The argument checks of a fit, before anything runs.
pub(crate) fn check_fit<T: Real>(
    template: &Shape,
    cfg: &FitConfig,
    bounds: Option<(&[f64], &[f64])>,
    params: &[T],
    data: FitData<'_, T>,
    buf: &FitBuffers<'_, T>,
) -> Result<(), Error> {
    let max_shape = cfg.base.max_shape(template);
    max_shape.validate()?;
    cfg.train.validate()?;
    cfg.em.validate()?;
    if cfg.base.max_components() == 0 {
        return Err(Error::InvalidShape(crate::error::ShapeError::Components));
    }
    check_min(params, max_shape.param_len())?;
    check_min(buf.train.grad, max_shape.param_len())?;
    check_min(buf.train.best, max_shape.param_len())?;
    check_min(buf.train.adam_state, max_shape.optimizer_len())?;
    if template.bounded && bounds.is_none() {
        return Err(Error::InvalidArgument);
    }
    let n = data.weights.len();
    check_len(data.samples, n.saturating_mul(template.dim))?;
    if !data.log_values.is_empty() {
        check_len(data.log_values, n)?;
    }
    if (template.affine || template.bounded) && !cfg!(feature = "outer-maps") {
        return Err(Error::InvalidArgument);
    }
    Ok(())
}

/// A fit's inputs, checked: what every stage and every checkpoint reads.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Job<'a, T> {
    pub(crate) template: Shape,
    pub(crate) cfg: FitConfig,
    /// The box of a bounded template (`None` otherwise).
    pub(crate) bounds: Option<(&'a [f64], &'a [f64])>,
    pub(crate) data: FitData<'a, T>,
}

/// The outcome of placing the base: the fitted shape, the EM fit, and whether the samples
/// were whitened (the affine map set from their weighted covariance).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Placed {
    pub(crate) shape: Shape,
    pub(crate) mixture: Option<MixtureFit>,
    pub(crate) whiten: bool,
}

/// What a continued fit starts from: the base as placed and the training state (the
/// parameters, best parameters and Adam moments are in the fit's buffers).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Trained {
    pub(crate) placed: Placed,
    pub(crate) state: TrainState,
}

impl<'a, T: Real> Job<'a, T> {
    /// The fit from its current stage: the base placed and the flow initialised (`from` =
    /// `None`), or training continued (`from` = `Some`, the buffers holding its state).
    /// `rng`: the caller's generator for every draw (EM seeds, initialisation, training), or
    /// `None` for the generators seeded from the config.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run<F, C>(
        &self,
        params: &mut [T],
        buf: FitBuffers<'_, T>,
        from: Option<&Trained>,
        mut rng: Option<&mut (dyn Rng + '_)>,
        on_epoch: &mut F,
        on_checkpoint: &mut C,
    ) -> Result<FitReport, Error>
    where
        F: FnMut(&EpochReport) -> bool,
        C: FnMut(&FitCheckpoint<'_, T>) -> bool,
    {
        // Same shape as the FitBuffers literal in FitBuffers::carve (duplicates): destructuring
        // lists the fields that the constructor lists.
        let FitBuffers {
            train,
            em_weights,
            em_means,
            em_sds,
            em_scratch,
            outer_samples,
            cov,
        } = buf;
        let mut u = self.in_fit_coordinates(outer_samples)?;
        let (placed, state) = match from {
            Some(t) => {
                // u as the fit left it: whitened again from the same weighted covariance.
                if let (true, Samples::Outer(u)) = (t.placed.whiten, &mut u) {
                    let d = self.template.dim;
                    full_gaussian(u, self.data.weights, d, cov)?;
                    whiten_in_place(u, d, cov);
                }
                (t.placed, Some(&t.state))
            }
            None => {
                let mut em = EmParts {
                    weights: em_weights,
                    means: em_means,
                    sds: em_sds,
                    scratch: em_scratch,
                };
                let placed = self.place(&mut u, &mut em, cov, rng.as_deref_mut())?;
                self.init(&placed, params, &em, cov, rng.as_deref_mut())?;
                (placed, None)
            }
        };
        let (u, buf) = (&*u, train);
        self.train(&placed, params, u, buf, state, rng, on_epoch, on_checkpoint)
    }

    /// The samples in the coordinates the base is fitted in: θ itself (`samples`) without
    /// outer maps; with them, copied to `outer` and mapped through the box map's inverse.
    fn in_fit_coordinates<'u>(&self, outer: &'u mut [T]) -> Result<Samples<'u, 'a, T>, Error>
    where
        'a: 'u,
    {
        let (t, d) = (&self.template, self.template.dim);
        if !(cfg!(feature = "outer-maps") && (t.affine || t.bounded)) {
            return Ok(Samples::Theta(self.data.samples));
        }
        let n = self.data.weights.len();
        check_min(outer, n.saturating_mul(d))?;
        let u = &mut outer[..n * d];
        u.copy_from_slice(self.data.samples);
        if t.bounded {
            into_box_coordinates(self.bounds, u, self.data.weights, d)?;
        }
        Ok(Samples::Outer(u))
    }

    /// Fits the base: the EM base of `cfg.base` on u, and with the affine standardisation one
    /// full-covariance Gaussian against it by BIC. Whitening helps a correlated posterior and
    /// would tilt the axis-aligned components of a mixture (so it is then left as the
    /// identity); when it wins, u is whitened in place and EM runs again on it.
    fn place(
        &self,
        u: &mut Samples<'_, '_, T>,
        em: &mut EmParts<'_>,
        cov: &mut [f64],
        mut rng: Option<&mut (dyn Rng + '_)>,
    ) -> Result<Placed, Error> {
        let (cfg, w, d) = (&self.cfg, self.data.weights, self.template.dim);
        let mut mixture = em_base(cfg, u, w, d, em, rng.as_deref_mut())?;
        let mut whiten = false;
        if let Samples::Outer(u) = u {
            if self.template.affine {
                let bic_full = full_gaussian(u, w, d, cov)?;
                whiten = mixture.is_none_or(|m| bic_full < m.bic);
                if whiten {
                    whiten_in_place(u, d, cov);
                    mixture = em_base(cfg, u, w, d, em, rng)?;
                }
            }
        }
        let shape = match (cfg.base, mixture) {
            (BaseChoice::Gaussian, _) => self.template.with_base(BaseKind::Gaussian),
            (BaseChoice::PaperMixture(k), _) => self.template.with_base(BaseKind::Mixture(k)),
            (_, Some(fit)) => self.template.with_base(BaseKind::Mixture(fit.components)),
            (_, None) => return Err(Error::NotConverged),
        };
        Ok(Placed {
            shape,
            mixture,
            whiten,
        })
    }

    /// The flow at its start: the couplings the identity, the outer maps' parameters (they sit
    /// after the base's and survive the initialisation's placeholders), the EM base.
    fn init(
        &self,
        placed: &Placed,
        params: &mut [T],
        em: &EmParts<'_>,
        cov: &[f64],
        rng: Option<&mut (dyn Rng + '_)>,
    ) -> Result<(), Error> {
        let (shape, d) = (&placed.shape, self.template.dim);
        let params = &mut params[..shape.param_len()];
        match rng {
            Some(mut rng) => init_params(shape, params, &mut rng)?,
            None => {
                let mut rng = Xoshiro256PlusPlus::seed_from_u64(self.cfg.init_seed);
                init_params(shape, params, &mut rng)?;
            }
        }
        if let Some((lo, hi)) = self.bounds.filter(|_| shape.bounded) {
            crate::init::set_box(shape, params, lo, hi)?;
        }
        if shape.affine && placed.whiten {
            let (mu, chol) = cov[d * d..].split_at(d);
            crate::init::set_affine(shape, params, mu, &chol[..d * (d + 1) / 2])?;
        }
        if let Some(fit) = placed.mixture {
            let k = fit.components;
            let (w, m, s) = (&em.weights[..k], &em.means[..k * d], &em.sds[..k * d]);
            set_mixture_base(shape, params, w, m, s)?;
        }
        Ok(())
    }

    /// Trains the couplings and the base (a prefix of the parameters) on u, handing a
    /// checkpoint after every epoch to `on_checkpoint`, then `on_epoch` the report; either
    /// stops the run.
    // Same shape as train/fit.rs::Job::run (duplicates): the stage-by-stage pipeline passes the
    // same callbacks and bounds down each stage; the argument lists differ in the stage's
    // buffers.
    #[allow(clippy::too_many_arguments)]
    fn train<F, C>(
        &self,
        placed: &Placed,
        params: &mut [T],
        u: &[T],
        buf: TrainBuffers<'_, T>,
        from: Option<&TrainState>,
        rng: Option<&mut (dyn Rng + '_)>,
        on_epoch: &mut F,
        on_checkpoint: &mut C,
    ) -> Result<FitReport, Error>
    where
        F: FnMut(&EpochReport) -> bool,
        C: FnMut(&FitCheckpoint<'_, T>) -> bool,
    {
        let inner = placed.shape.inner();
        let pi = inner.param_len();
        let (params, outer) = params[..placed.shape.param_len()].split_at_mut(pi);
        let (w, cfg) = (self.data.weights, &self.cfg.train);
        let on_epoch = |r: &EpochReport, s: &TrainSnapshot<'_, T>| {
            let keep = on_checkpoint(&FitCheckpoint::trained(*self, *placed, s, outer));
            let go = on_epoch(r);
            keep && go
        };
        let buf = buf.prefix(pi);
        let report = match rng {
            Some(rng) => train_from(&inner, params, u, w, cfg, buf, rng, from, on_epoch),
            None => train_resumable(&inner, params, u, w, cfg, buf, from, on_epoch),
        }?;
        Ok(FitReport {
            shape: placed.shape,
            mixture: placed.mixture,
            train: report,
        })
    }
}

/// The samples a base is fitted to: the caller's θ, or u in the fit's own memory.
enum Samples<'u, 'a, T> {
    Theta(&'a [T]),
    Outer(&'u mut [T]),
}

impl<T> core::ops::Deref for Samples<'_, '_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match self {
            Samples::Theta(s) => s,
            Samples::Outer(u) => u,
        }
    }
}

/// The EM base of `cfg.base` fitted to (`samples`, `weights`) into the EM outputs of `buf`,
/// or `None` for the bases that are not fitted by EM.
fn em_base<T: Real>(
    cfg: &FitConfig,
    samples: &[T],
    weights: &[T],
    d: usize,
    buf: &mut EmParts<'_>,
    rng: Option<&mut (dyn Rng + '_)>,
) -> Result<Option<MixtureFit>, Error> {
    let EmParts {
        weights: em_weights,
        means: em_means,
        sds: em_sds,
        scratch,
    } = buf;
    let k = match cfg.base {
        BaseChoice::Mixture(k) | BaseChoice::Auto(k) => k,
        _ => return Ok(None),
    };
    check_min(em_weights, k)?;
    check_min(em_means, k.saturating_mul(d))?;
    check_min(em_sds, k.saturating_mul(d))?;
    let (w, m, s) = (
        &mut em_weights[..k],
        &mut em_means[..k * d],
        &mut em_sds[..k * d],
    );
    let auto = matches!(cfg.base, BaseChoice::Auto(_));
    Ok(Some(match rng {
        None if auto => em::select_components(samples, weights, d, k, &cfg.em, w, m, s, scratch)?,
        None => em::fit_mixture(samples, weights, d, k, &cfg.em, w, m, s, scratch)?,
        Some(mut r) if auto => em::select_components_with_rng(
            samples, weights, d, k, &cfg.em, w, m, s, scratch, &mut r,
        )?,
        Some(mut r) => {
            em::fit_mixture_with_rng(samples, weights, d, k, &cfg.em, w, m, s, scratch, &mut r)?
        }
    }))
}

/// The EM regions of [`FitBuffers`], borrowed apart from the others.
struct EmParts<'a> {
    weights: &'a mut [f64],
    means: &'a mut [f64],
    sds: &'a mut [f64],
    scratch: &'a mut [f64],
}

/// Maps the samples (θ on entry, `n·D`) through the inverse of the box map, in place. Every
/// sample of non-zero weight must lie inside the open box; a zero-weight one outside is
/// parked at the centre (it plays no part).
fn into_box_coordinates<T: Real>(
    bounds: Option<(&[f64], &[f64])>,
    u: &mut [T],
    weights: &[T],
    d: usize,
) -> Result<(), Error> {
    let (lo, hi) = bounds.ok_or(Error::InvalidArgument)?;
    check_len(lo, d)?;
    check_len(hi, d)?;
    if !crate::real::all_finite(lo) || !crate::real::all_finite(hi) {
        return Err(Error::NonFinite);
    }
    if lo
        .iter()
        .zip(hi)
        .any(|(&a, &b)| !(b > a && (b - a).is_finite()))
    {
        return Err(Error::InvalidArgument);
    }
    for (row, &w) in u.chunks_exact_mut(d).zip(weights) {
        for ((v, &a), &b) in row.iter_mut().zip(lo).zip(hi) {
            *v = if let Some((y, _)) = crate::flow::outer::box_inverse(v.to_f64(), a, b) {
                T::from_f64(y)
            } else if w == T::ZERO {
                T::from_f64(0.5 * (a + b))
            } else {
                return Err(Error::InvalidArgument);
            };
        }
    }
    Ok(())
}

/// Fits one full-covariance Gaussian to the weighted samples and returns its BIC on the
/// scale of [`em`]'s (ESS as the sample size, D + D(D+1)/2 parameters). `cov[D·D..]` then
/// holds the weighted mean μ (D) followed by the packed Cholesky factor L of the weighted
/// covariance (D(D+1)/2): the affine map's parameters.
fn full_gaussian<T: Real>(u: &[T], weights: &[T], d: usize, cov: &mut [f64]) -> Result<f64, Error> {
    check_min(cov, cov_len(d))?;
    let (square, out) = cov.split_at_mut(d * d);
    let (mu, packed) = out.split_at_mut(d);
    mu.iter_mut().for_each(|m| *m = 0.0);
    let (mut wsum, mut w2sum) = (0.0, 0.0);
    for (row, &w) in u.chunks_exact(d).zip(weights) {
        let w = w.to_f64();
        wsum += w;
        w2sum += w * w;
        for (m, &v) in mu.iter_mut().zip(row) {
            *m += w * v.to_f64();
        }
    }
    if !(wsum > 0.0) {
        return Err(Error::DegenerateWeights);
    }
    mu.iter_mut().for_each(|m| *m /= wsum);
    square.iter_mut().for_each(|v| *v = 0.0);
    for (row, &w) in u.chunks_exact(d).zip(weights) {
        let w = w.to_f64() / wsum;
        for i in 0..d {
            let di = row[i].to_f64() - mu[i];
            for j in 0..=i {
                square[i * d + j] += w * di * (row[j].to_f64() - mu[j]);
            }
        }
    }
    cholesky_lower(square, d)?;
    let mut at = 0;
    let mut log_det = 0.0;
    for i in 0..d {
        packed[at..at + i + 1].copy_from_slice(&square[i * d..i * d + i + 1]);
        log_det += 2.0 * libm::log(square[i * d + i]);
        at += i + 1;
    }
    // The weighted MLE's mean log-density: −½(D ln 2π + ln det Σ + D).
    let df = d as f64;
    let mean_ll = -0.5 * (df * 1.837_877_066_409_345_3 + log_det + df);
    let ess = wsum * wsum / w2sum;
    let params = df + df * (df + 1.0) / 2.0;
    Ok(-2.0 * ess * mean_ll + params * libm::log(ess))
}

/// u = L⁻¹(y − μ) for every sample, with μ and the packed L of [`full_gaussian`].
fn whiten_in_place<T: Real>(u: &mut [T], d: usize, cov: &[f64]) {
    let (mu, packed) = cov[d * d..].split_at(d);
    for row in u.chunks_exact_mut(d) {
        let mut off = 0;
        for i in 0..d {
            let mut r = row[i].to_f64() - mu[i];
            for j in 0..i {
                r -= packed[off + j] * row[j].to_f64();
            }
            row[i] = T::from_f64(r / packed[off + i]);
            off += i + 1;
        }
    }
}

/// f64 elements of the affine standardisation's scratch: the D×D covariance, then μ and the
/// packed factor.
const fn cov_len(d: usize) -> usize {
    d.saturating_mul(d).saturating_mul(2).saturating_add(d)
}

/// In-place Cholesky factor of the symmetric matrix whose lower triangle is in `c` (row-major
/// D×D). A diagonal that is not safely positive (a degenerate direction) is floored at 1e-12
/// of the largest variance, so the map stays invertible.
fn cholesky_lower(c: &mut [f64], d: usize) -> Result<(), Error> {
    let scale = (0..d).map(|i| c[i * d + i]).fold(0.0f64, f64::max);
    if !(scale > 0.0 && scale.is_finite()) {
        return Err(Error::DegenerateWeights);
    }
    let floor = 1e-12 * scale;
    for j in 0..d {
        let mut s = c[j * d + j];
        for k in 0..j {
            s -= c[j * d + k] * c[j * d + k];
        }
        let ljj = libm::sqrt(s.max(floor));
        c[j * d + j] = ljj;
        for i in j + 1..d {
            let mut s = c[i * d + j];
            for k in 0..j {
                s -= c[i * d + k] * c[j * d + k];
            }
            c[i * d + j] = s / ljj;
        }
    }
    Ok(())
}
