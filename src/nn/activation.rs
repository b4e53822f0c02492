//! The hidden activations and their derivatives, the derivatives expressed through the
//! activation's output: the one definition the dense kernels (`nn::dense`) fuse into their
//! stores, element by element, with the activation matched once outside each loop (so the
//! loops vectorise).

use crate::real::Real;
use crate::shape::Activation;

/// ReLU of one value. `x > 0 ? x : 0` keeps NaN out of the compare-select (NaN gives 0) and
/// vectorises.
#[inline(always)]
pub(crate) fn relu<T: Real>(x: T) -> T {
    if x > T::ZERO {
        x
    } else {
        T::ZERO
    }
}

/// tanh of one value, through [`Real::tanh`] (the `fast-math` approximation where enabled).
#[inline(always)]
pub(crate) fn tanh<T: Real>(x: T) -> T {
    x.tanh()
}

/// The gradient `g` through ReLU, given its output `out`: `g` where `out > 0`, else 0 (NaN
/// output gives 0).
#[inline(always)]
pub(crate) fn relu_backward<T: Real>(g: T, out: T) -> T {
    if out > T::ZERO {
        g
    } else {
        T::ZERO
    }
}

/// The gradient `g` through tanh, given its output `out`: `g · (1 − out²)`.
#[inline(always)]
pub(crate) fn tanh_backward<T: Real>(g: T, out: T) -> T {
    g * (T::ONE - out * out)
}

/// Applies the activation (`None`: identity) to `v` in place.
#[inline(always)]
pub(crate) fn apply<T: Real>(act: Option<Activation>, v: &mut [T]) {
    match act {
        None => {}
        Some(Activation::Relu) => v.iter_mut().for_each(|x| *x = relu(*x)),
        Some(Activation::Tanh) => v.iter_mut().for_each(|x| *x = tanh(*x)),
    }
}
