//! Base distributions of the flow. Public: [`em`], the weighted EM and BIC choice of a mixture
//! base. The densities themselves are evaluated inside the crate on feature-major tiles:
//! `log_prob_tile` gives log q₀(z) per lane; `backward_tile` multiplies ∂log q₀/∂z by a per-lane
//! coefficient into a state gradient and accumulates the same coefficient times ∂log q₀/∂φ into
//! the base's slice of the flat gradient.

pub mod em;
pub(crate) mod gaussian;
pub(crate) mod gmm;

use crate::real::Real;
use crate::shape::{BaseKind, Shape, TILE};

/// log q₀(z) for each lane of the tile `z` (`D·TILE`, feature-major) into `out`.
/// `scratch` needs `(K + 1)·TILE` elements for a mixture.
pub(crate) fn log_prob_tile<T: Real>(
    shape: &Shape,
    base_params: &[T],
    z: &[T],
    out: &mut [T; TILE],
    scratch: &mut [T],
) {
    match shape.base {
        BaseKind::StandardNormal => gaussian::log_prob_standard(z, out),
        BaseKind::Gaussian => gaussian::log_prob_tile(shape.dim, base_params, z, out),
        BaseKind::Mixture(k) => gmm::log_prob_tile(shape.dim, k, base_params, z, out, scratch),
    }
}

/// log q₀(z) of one point `z` (`D` values): the same sums as [`log_prob_tile`] on one lane.
pub(crate) fn log_prob_one<T: Real>(shape: &Shape, base_params: &[T], z: &[T]) -> T {
    match shape.base {
        BaseKind::StandardNormal => z
            .iter()
            .fold(T::ZERO, |a, &v| a - (T::HALF_LN_2PI + T::HALF * v * v)),
        BaseKind::Gaussian => gaussian::log_prob_one(shape.dim, base_params, z),
        BaseKind::Mixture(k) => gmm::log_prob_one(shape.dim, k, base_params, z),
    }
}

/// Writes `gz = coef · ∂log q₀/∂z` and accumulates `gparams += coef · ∂log q₀/∂φ`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward_tile<T: Real>(
    shape: &Shape,
    base_params: &[T],
    z: &[T],
    coef: &[T; TILE],
    gz: &mut [T],
    gparams: &mut [T],
    scratch: &mut [T],
) {
    match shape.base {
        BaseKind::StandardNormal => gaussian::backward_standard(z, coef, gz),
        BaseKind::Gaussian => gaussian::backward_tile(shape.dim, base_params, z, coef, gz, gparams),
        BaseKind::Mixture(k) => {
            gmm::backward_tile(shape.dim, k, base_params, z, coef, gz, gparams, scratch)
        }
    }
}

/// Draws one base sample into lane `lane` of the feature-major tile `state`, drawing the
/// component (mixture) first, then coordinates in order.
pub(crate) fn sample_one<T: Real>(
    shape: &Shape,
    base_params: &[T],
    draws: &mut crate::rng::Draws<'_>,
    state: &mut [T],
    lane: usize,
) {
    draws.begin_sample();
    let coords = state.iter_mut().skip(lane).step_by(TILE).take(shape.dim);
    match shape.base {
        BaseKind::StandardNormal => coords.for_each(|v| *v = T::from_f64(draws.normal())),
        BaseKind::Gaussian => {
            let (loc, log_scale) = base_params.split_at(shape.dim.min(base_params.len()));
            for ((v, &m), &ls) in coords.zip(loc).zip(log_scale) {
                *v = m + ls.exp() * T::from_f64(draws.normal());
            }
        }
        BaseKind::Mixture(k) => gmm::sample_one(shape.dim, k, base_params, draws, coords),
    }
}
