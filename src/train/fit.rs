//! The end-to-end fit on weighted samples: choose and place the base, start the flow at the
//! identity, train.
//!
//! With an EM base ([`BaseChoice::Mixture`] or [`BaseChoice::Auto`]) the weighted EM fit of
//! the samples becomes the base and the couplings start as the identity, so at step 0 the flow
//! *is* the fitted mixture and every component already sits on its mode; training only bends
//! the components (and early stopping keeps the mixture if bending does not help).

use crate::base::em::{self, EmConfig, MixtureFit};
use crate::error::{check_min, Error};
use crate::init::{init_params, set_mixture_base};
use crate::real::Real;
use crate::shape::{BaseKind, Shape};
use crate::train::trainer::{train, EpochReport, TrainBuffers, TrainConfig, TrainReport};
use rand_core::SeedableRng;
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
/// [`BaseChoice::max_shape`], plus EM outputs (`em_weights`: K_max, `em_means`, `em_sds`:
/// K_max·D) and `em_scratch` ([`em::scratch_len`]`(K_max, D)`).
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
        let (k, d) = (cfg.base.max_components(), template.dim);
        let kd = k.saturating_mul(d);
        FitMemory {
            reals: p
                .saturating_mul(4)
                .saturating_add(max.workspace_len())
                .saturating_add(batch.saturating_mul(d.saturating_add(2))),
            order: n,
            em: k
                .saturating_add(kd.saturating_mul(2))
                .saturating_add(em::scratch_len(k, d)),
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
        let (k, d) = (cfg.base.max_components(), template.dim);
        let (grad, rest) = reals.split_at_mut(p);
        let (adam_state, rest) = rest.split_at_mut(2 * p);
        let (best, rest) = rest.split_at_mut(p);
        let (workspace, rest) = rest.split_at_mut(max.workspace_len());
        let (batch_theta, rest) = rest.split_at_mut(batch * d);
        let (batch_weights, rest) = rest.split_at_mut(batch);
        let batch_out = &mut rest[..batch];
        let (em_weights, rest) = em.split_at_mut(k);
        let (em_means, rest) = rest.split_at_mut(k * d);
        let (em_sds, em_scratch) = rest.split_at_mut(k * d);
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
        })
    }
}

/// Fits a flow with the `template`'s D, H, hidden layers, L, activation and clamp (its base is
/// replaced per `cfg.base`) to weighted samples. `params` must hold at least
/// `cfg.base.max_shape(template).param_len()` values; the fitted model is written to its
/// first `report.shape.param_len()` entries.
pub fn fit<T: Real, F: FnMut(&EpochReport) -> bool>(
    template: &Shape,
    cfg: &FitConfig,
    params: &mut [T],
    samples: &[T],
    weights: &[T],
    buf: FitBuffers<'_, T>,
    on_epoch: F,
) -> Result<FitReport, Error> {
    let max_shape = cfg.base.max_shape(template);
    max_shape.validate()?;
    cfg.train.validate()?;
    cfg.em.validate()?;
    let k_max = cfg.base.max_components();
    if k_max == 0 {
        return Err(Error::InvalidShape(crate::error::ShapeError::Components));
    }
    let d = template.dim;
    check_min(params, max_shape.param_len())?;
    check_min(buf.train.grad, max_shape.param_len())?;
    check_min(buf.train.best, max_shape.param_len())?;
    check_min(buf.train.adam_state, max_shape.optimizer_len())?;

    let mixture = match cfg.base {
        BaseChoice::Mixture(k) | BaseChoice::Auto(k) => {
            check_min(buf.em_weights, k)?;
            check_min(buf.em_means, k.saturating_mul(d))?;
            check_min(buf.em_sds, k.saturating_mul(d))?;
            let (w, m, s) = (
                &mut buf.em_weights[..k],
                &mut buf.em_means[..k * d],
                &mut buf.em_sds[..k * d],
            );
            Some(if let BaseChoice::Auto(_) = cfg.base {
                em::select_components(samples, weights, d, k, &cfg.em, w, m, s, buf.em_scratch)?
            } else {
                em::fit_mixture(samples, weights, d, k, &cfg.em, w, m, s, buf.em_scratch)?
            })
        }
        _ => None,
    };
    let shape = match (cfg.base, mixture) {
        (BaseChoice::Gaussian, _) => template.with_base(BaseKind::Gaussian),
        (BaseChoice::PaperMixture(k), _) => template.with_base(BaseKind::Mixture(k)),
        (_, Some(fit)) => template.with_base(BaseKind::Mixture(fit.components)),
        (_, None) => return Err(Error::NotConverged),
    };
    let p = shape.param_len();
    let params = &mut params[..p];
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(cfg.init_seed);
    init_params(&shape, params, &mut rng)?;
    if let Some(fit) = mixture {
        let k = fit.components;
        set_mixture_base(
            &shape,
            params,
            &buf.em_weights[..k],
            &buf.em_means[..k * d],
            &buf.em_sds[..k * d],
        )?;
    }
    let t = buf.train;
    let train_buf = TrainBuffers {
        grad: &mut t.grad[..p],
        adam_state: &mut t.adam_state[..2 * p],
        best: &mut t.best[..p],
        workspace: t.workspace,
        batch_theta: t.batch_theta,
        batch_weights: t.batch_weights,
        batch_out: t.batch_out,
        order: t.order,
    };
    let report = train(
        &shape, params, samples, weights, &cfg.train, train_buf, on_epoch,
    )?;
    Ok(FitReport {
        shape,
        mixture,
        train: report,
    })
}
