//! Hidden activations and their derivatives, expressed through the activation's output.

use crate::real::Real;
use crate::shape::Activation;

/// Applies the activation in place.
#[inline]
pub fn apply<T: Real>(act: Activation, v: &mut [T]) {
    match act {
        Activation::Relu => v.iter_mut().for_each(|x| {
            // `x > 0 ? x : 0` keeps NaN out of the compare-select and vectorises.
            *x = if *x > T::ZERO { *x } else { T::ZERO }
        }),
        Activation::Tanh => v.iter_mut().for_each(|x| *x = x.tanh()),
    }
}

/// Multiplies the gradient `g` by the activation's derivative, given its output `out`
/// (ReLU: 1 where out > 0; tanh: 1 − out²).
#[inline]
pub fn backward<T: Real>(act: Activation, out: &[T], g: &mut [T]) {
    match act {
        Activation::Relu => g.iter_mut().zip(out).for_each(|(g, &y)| {
            if y <= T::ZERO {
                *g = T::ZERO
            }
        }),
        Activation::Tanh => g
            .iter_mut()
            .zip(out)
            .for_each(|(g, &y)| *g *= T::ONE - y * y),
    }
}
