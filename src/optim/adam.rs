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
//! [`Flow::loss_and_gradient`](crate::Flow::loss_and_gradient) holds zeros there anyway). A
//! step never leaves a parameter or moment NaN or infinite: if one would be, it returns
//! `NonFinite` and changes nothing.

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
    /// `self.lr` (for schedules). A non-finite gradient, or an update that would make a
    /// parameter or moment non-finite (a huge `lr` or gradient), returns `NonFinite` and
    /// changes nothing, so a trainer can skip the step. The outer maps' parameters are left
    /// alone (module docs).
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
        let tf = t as f64;
        let bc1 = 1.0 - libm::pow(self.beta1, tf);
        let bc2 = 1.0 - libm::pow(self.beta2, tf);
        // φ −= α/(1−β₁ᵗ) · m / (√v/√(1−β₂ᵗ) + ε)
        let step = T::from_f64(lr / bc1);
        let inv_sqrt_bc2 = T::from_f64(1.0 / libm::sqrt(bc2));
        let (b1, b2) = (T::from_f64(self.beta1), T::from_f64(self.beta2));
        let (c1, c2) = (T::ONE - b1, T::ONE - b2);
        let eps = T::from_f64(self.eps);
        let wd = T::from_f64(self.weight_decay);
        let n_decay = shape.flow_param_len();
        // The trained parameters: couplings and base; the outer maps after them never change.
        let n_train = n_decay + shape.base_param_len();
        let (m, v) = state.split_at_mut(p);
        let update = |i: usize, x: T, g: T, mi: T, vi: T| {
            let g = if i < n_decay { g + wd * x } else { g };
            let mi = b1 * mi + c1 * g;
            let vi = b2 * vi + c2 * g * g;
            (
                x - step * mi / (vi.sqrt_lanes() * inv_sqrt_bc2 + eps),
                mi,
                vi,
            )
        };
        // Two passes: check that every new value is finite, then write (each element's update
        // depends on that element only, so both passes compute the same values).
        for i in 0..n_train {
            let (x, mi, vi) = update(i, params[i], grad[i], m[i], v[i]);
            if !(x.is_finite() && mi.is_finite() && vi.is_finite()) {
                return Err(Error::NonFinite);
            }
        }
        for i in 0..n_train {
            (params[i], m[i], v[i]) = update(i, params[i], grad[i], m[i], v[i]);
        }
        Ok(())
    }

    /// One update at the configured learning rate (see [`step_with_lr`](Self::step_with_lr)).
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
