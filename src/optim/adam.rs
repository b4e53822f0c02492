//! Adam (Kingma & Ba) with bias correction and optional L2 weight decay, over the flat
//! parameter slice. State: first moments `m[P]` then second moments `v[P]`
//! ([`Shape::optimizer_len`](crate::Shape::optimizer_len) elements, zero-initialised).
//!
//! Step t (1-based): g ← g + λ·φ (flow parameters only, see below);
//! m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²; φ ← φ − α·m̂/(√v̂ + ε) with m̂ = m/(1−β₁ᵗ),
//! v̂ = v/(1−β₂ᵗ) — torch's `Adam(weight_decay=λ)`. Weight decay applies to the coupling
//! parameters only, never to the base, so an EM-fitted mixture is not pulled to the origin.
//! The outer maps' parameters (affine standardisation, box) are never trained: a step leaves
//! them and their moments alone, whatever the gradient holds there (a gradient from
//! [`Flow::loss_and_gradient`](crate::Flow::loss_and_gradient) holds zeros there anyway).

use crate::error::{check_len, Error};
use crate::real::{all_finite, Real};
use crate::shape::Shape;

/// Adam hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adam {
    /// Learning rate α > 0.
    pub lr: f64,
    /// β₁ ∈ [0, 1).
    pub beta1: f64,
    /// β₂ ∈ [0, 1).
    pub beta2: f64,
    /// ε > 0.
    pub eps: f64,
    /// L2 weight decay λ ≥ 0 on the coupling parameters.
    pub weight_decay: f64,
}

impl Default for Adam {
    fn default() -> Self {
        Adam {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

impl Adam {
    /// Checks the hyper-parameters.
    pub fn validate(&self) -> Result<(), Error> {
        let finite = [self.lr, self.beta1, self.beta2, self.eps, self.weight_decay]
            .iter()
            .all(|v| v.is_finite());
        if !finite {
            return Err(Error::NonFinite);
        }
        let ok = self.lr > 0.0
            && (0.0..1.0).contains(&self.beta1)
            && (0.0..1.0).contains(&self.beta2)
            && self.eps > 0.0
            && self.weight_decay >= 0.0;
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidArgument)
        }
    }

    /// One update of `params` from `grad` at step `t ≥ 1`, with learning rate `lr` in place of
    /// `self.lr` (for schedules). A non-finite gradient returns `NonFinite` and changes
    /// nothing, so a trainer can skip the step. The outer maps' parameters are left alone
    /// (module docs).
    pub fn step_with_lr<T: Real>(
        &self,
        shape: &Shape,
        lr: f64,
        params: &mut [T],
        grad: &[T],
        state: &mut [T],
        t: u64,
    ) -> Result<(), Error> {
        Adam { lr, ..*self }.validate()?;
        let p = shape.param_len();
        check_len(params, p)?;
        check_len(grad, p)?;
        check_len(state, 2 * p)?;
        if t == 0 {
            return Err(Error::InvalidArgument);
        }
        if !all_finite(grad) {
            return Err(Error::NonFinite);
        }
        let k = Coefficients::new(self, lr, t, shape);
        let (m, v) = state.split_at_mut(p);
        for (i, (((x, &g), mi), vi)) in params
            .iter_mut()
            .zip(grad)
            .zip(m.iter_mut())
            .zip(v.iter_mut())
            .enumerate()
            .take(k.n_train)
        {
            (*x, *mi, *vi) = k.update(i, *x, g, *mi, *vi);
        }
        Ok(())
    }

    /// As [`step_with_lr`](Self::step_with_lr) at the configured rate, for memory whose
    /// values must stay finite (the C ABI's models): the update is computed once to check that
    /// every new parameter and moment is finite, then again to write it. An update that would
    /// overflow (say a learning rate of 1e308) returns `NonFinite` and changes nothing. Twice
    /// the O(P) arithmetic of `step`, which is small beside a gradient's O(B·P).
    pub fn step_finite<T: Real>(
        &self,
        shape: &Shape,
        params: &mut [T],
        grad: &[T],
        state: &mut [T],
        t: u64,
    ) -> Result<(), Error> {
        self.validate()?;
        let p = shape.param_len();
        check_len(params, p)?;
        check_len(grad, p)?;
        check_len(state, 2 * p)?;
        if t == 0 {
            return Err(Error::InvalidArgument);
        }
        let k = Coefficients::new(self, self.lr, t, shape);
        let (m, v) = state.split_at(p);
        let finite = (0..k.n_train).all(|i| {
            let (x, mi, vi) = k.update(i, params[i], grad[i], m[i], v[i]);
            x.is_finite() && mi.is_finite() && vi.is_finite()
        });
        if !finite {
            return Err(Error::NonFinite);
        }
        self.step(shape, params, grad, state, t)
    }

    /// One update at the configured learning rate (see [`step_with_lr`](Self::step_with_lr)).
    // Same shape as optim/adam.rs::Adam::step_finite (duplicates): public variants with one
    // argument list; both end in step_with_lr.
    pub fn step<T: Real>(
        &self,
        shape: &Shape,
        params: &mut [T],
        grad: &[T],
        state: &mut [T],
        t: u64,
    ) -> Result<(), Error> {
        self.step_with_lr(shape, self.lr, params, grad, state, t)
    }
}

/// The per-step constants of an update, and the update of one parameter: one home for the
/// formula, shared by [`Adam::step_with_lr`] and [`Adam::step_finite`].
struct Coefficients<T> {
    /// α / (1 − β₁ᵗ).
    step: T,
    /// 1 / √(1 − β₂ᵗ).
    inv_sqrt_bc2: T,
    b1: T,
    b2: T,
    c1: T,
    c2: T,
    eps: T,
    wd: T,
    /// Parameters below this index (the couplings) are decayed.
    n_decay: usize,
    /// Parameters below this index (couplings and base) are trained; the outer maps after
    /// them never change.
    n_train: usize,
}

impl<T: Real> Coefficients<T> {
    fn new(adam: &Adam, lr: f64, t: u64, shape: &Shape) -> Self {
        let tf = t as f64;
        let bc1 = 1.0 - libm::pow(adam.beta1, tf);
        let bc2 = 1.0 - libm::pow(adam.beta2, tf);
        let (b1, b2) = (T::from_f64(adam.beta1), T::from_f64(adam.beta2));
        Coefficients {
            // φ −= α/(1−β₁ᵗ) · m / (√v/√(1−β₂ᵗ) + ε)
            step: T::from_f64(lr / bc1),
            inv_sqrt_bc2: T::from_f64(1.0 / libm::sqrt(bc2)),
            b1,
            b2,
            c1: T::ONE - b1,
            c2: T::ONE - b2,
            eps: T::from_f64(adam.eps),
            wd: T::from_f64(adam.weight_decay),
            n_decay: shape.flow_param_len(),
            n_train: shape.flow_param_len() + shape.base_param_len(),
        }
    }

    /// Parameter `i`'s new (value, first moment, second moment).
    #[inline(always)]
    fn update(&self, i: usize, x: T, g: T, m: T, v: T) -> (T, T, T) {
        let g = if i < self.n_decay { g + self.wd * x } else { g };
        let m = self.b1 * m + self.c1 * g;
        let v = self.b2 * v + self.c2 * g * g;
        (
            x - self.step * m / (v.sqrt_lanes() * self.inv_sqrt_bc2 + self.eps),
            m,
            v,
        )
    }
}
