//! The floating-point abstraction: one trait, [`Real`], implemented for `f32` and `f64`.
//!
//! Transcendental functions come from `libm` so the core needs no `std`. With the `fast-math`
//! feature, `f32` uses `micromath`'s approximations for `exp`, `ln` and `tanh` instead (see the
//! README for the measured accuracy cost); `f64` always uses `libm`.

use core::fmt::{Debug, Display};
use core::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

/// A floating-point scalar the flow can compute in: `f32` or `f64`.
///
/// Sealed: the kernels rely on IEEE-754 semantics of exactly these two types.
pub trait Real:
    Copy
    + Default
    + Debug
    + Display
    + PartialEq
    + PartialOrd
    + Send
    + Sync
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + sealed::Sealed
{
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// ½.
    const HALF: Self;
    /// ½·ln(2π), the per-dimension constant of a Gaussian log-density.
    const HALF_LN_2PI: Self;
    /// Width of the type in bytes (4 or 8), as written in the model format.
    const BYTES: usize;
    /// The largest finite value.
    const MAX: Self;

    /// Converts from `f64` (rounding to nearest for `f32`).
    fn from_f64(v: f64) -> Self;
    /// Converts to `f64` (exact).
    fn to_f64(self) -> f64;
    /// Converts from a count.
    fn from_usize(v: usize) -> Self;
    /// eˣ.
    fn exp(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// Hyperbolic tangent.
    fn tanh(self) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// Absolute value.
    fn abs(self) -> Self;
    /// `true` unless NaN or ±∞.
    fn is_finite(self) -> bool;
    /// The larger of two values (NaN-ignoring, as `f64::max`).
    fn max(self, other: Self) -> Self;
    /// The smaller of two values (NaN-ignoring, as `f64::min`).
    fn min(self, other: Self) -> Self;
    /// Writes the little-endian bytes into `out[..BYTES]`; returns `false` if `out` is short.
    fn write_le(self, out: &mut [u8]) -> bool;
    /// Reads a value from little-endian bytes of width `width` (4 or 8), converting if needed.
    fn read_le(bytes: &[u8], width: usize) -> Option<Self>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

fn read_width(bytes: &[u8], width: usize) -> Option<f64> {
    match width {
        4 => {
            let b: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
            Some(f32::from_le_bytes(b) as f64)
        }
        8 => {
            let b: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
            Some(f64::from_le_bytes(b))
        }
        _ => None,
    }
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const HALF: Self = 0.5;
    const HALF_LN_2PI: Self = 0.918_938_5;
    const BYTES: usize = 4;
    const MAX: Self = f32::MAX;

    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn from_usize(v: usize) -> Self {
        v as f32
    }
    #[inline(always)]
    fn exp(self) -> Self {
        #[cfg(feature = "fast-math")]
        {
            micromath::F32Ext::exp(self)
        }
        #[cfg(not(feature = "fast-math"))]
        {
            libm::expf(self)
        }
    }
    #[inline(always)]
    fn ln(self) -> Self {
        #[cfg(feature = "fast-math")]
        {
            micromath::F32Ext::ln(self)
        }
        #[cfg(not(feature = "fast-math"))]
        {
            libm::logf(self)
        }
    }
    #[inline(always)]
    fn tanh(self) -> Self {
        #[cfg(feature = "fast-math")]
        {
            // micromath has no tanh: tanh x = 1 - 2 / (e^{2x} + 1), saturating for large |x|.
            if self > 9.0 {
                1.0
            } else if self < -9.0 {
                -1.0
            } else {
                1.0 - 2.0 / (micromath::F32Ext::exp(2.0 * self) + 1.0)
            }
        }
        #[cfg(not(feature = "fast-math"))]
        {
            libm::tanhf(self)
        }
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        libm::sqrtf(self)
    }
    #[inline(always)]
    fn abs(self) -> Self {
        libm::fabsf(self)
    }
    #[inline(always)]
    fn is_finite(self) -> bool {
        f32::is_finite(self)
    }
    #[inline(always)]
    fn max(self, other: Self) -> Self {
        libm::fmaxf(self, other)
    }
    #[inline(always)]
    fn min(self, other: Self) -> Self {
        libm::fminf(self, other)
    }
    fn write_le(self, out: &mut [u8]) -> bool {
        match out.get_mut(..4) {
            Some(o) => {
                o.copy_from_slice(&self.to_le_bytes());
                true
            }
            None => false,
        }
    }
    fn read_le(bytes: &[u8], width: usize) -> Option<Self> {
        read_width(bytes, width).map(|v| v as f32)
    }
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const HALF: Self = 0.5;
    const HALF_LN_2PI: Self = 0.918_938_533_204_672_8;
    const BYTES: usize = 8;
    const MAX: Self = f64::MAX;

    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn from_usize(v: usize) -> Self {
        v as f64
    }
    #[inline(always)]
    fn exp(self) -> Self {
        libm::exp(self)
    }
    #[inline(always)]
    fn ln(self) -> Self {
        libm::log(self)
    }
    #[inline(always)]
    fn tanh(self) -> Self {
        libm::tanh(self)
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        libm::sqrt(self)
    }
    #[inline(always)]
    fn abs(self) -> Self {
        libm::fabs(self)
    }
    #[inline(always)]
    fn is_finite(self) -> bool {
        f64::is_finite(self)
    }
    #[inline(always)]
    fn max(self, other: Self) -> Self {
        libm::fmax(self, other)
    }
    #[inline(always)]
    fn min(self, other: Self) -> Self {
        libm::fmin(self, other)
    }
    fn write_le(self, out: &mut [u8]) -> bool {
        match out.get_mut(..8) {
            Some(o) => {
                o.copy_from_slice(&self.to_le_bytes());
                true
            }
            None => false,
        }
    }
    fn read_le(bytes: &[u8], width: usize) -> Option<Self> {
        read_width(bytes, width)
    }
}

/// `true` if every element is finite.
#[inline]
pub fn all_finite<T: Real>(xs: &[T]) -> bool {
    xs.iter().all(|x| x.is_finite())
}
