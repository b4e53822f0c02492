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
    /// eˣ as used in the per-lane loops of the couplings. For f32 without a library call, so
    /// those loops vectorise: range reduction x = k·ln 2 + r, |r| ≤ ½ln 2, a degree-7 Taylor
    /// polynomial in r (truncation below 2⁻²⁴ relative) and 2ᵏ built from the exponent bits;
    /// relative error ≤ 2 ulp on the normal range (tested against `libm`), results below the
    /// smallest normal flush to 0, above the largest finite give +∞, NaN gives NaN. For f64,
    /// the reference type, `libm` exactly as [`exp`](Real::exp).
    fn exp_lanes(self) -> Self;
    /// tanh x as used in the per-lane loops (the soft clamp). For f32, 1 − 2/(e²ˣ + 1) through
    /// [`exp_lanes`](Real::exp_lanes): vectorises, absolute error ≤ 2 ulp of 1 (tested). For
    /// f64, `libm` exactly as [`tanh`](Real::tanh).
    fn tanh_lanes(self) -> Self;
    /// √x as used in the optimiser's per-parameter loop. For f32 without a library call (the
    /// `libm` square root is inline assembly, which stops LLVM vectorising the loop): an
    /// exponent-halving first guess and three Newton steps, ≤ 1 ulp for finite x ≥ 0 (tested
    /// against `libm`), √0 = 0, NaN for x < 0 or NaN. For f64, `libm` as [`sqrt`](Real::sqrt).
    fn sqrt_lanes(self) -> Self;
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
    fn exp_lanes(self) -> Self {
        // Below −87.3 the result is subnormal (flushed to 0), above 88.72 it overflows.
        let x = self;
        let k = (x * core::f32::consts::LOG2_E + 0.5).floor_lanes();
        let r = (x - k * 0.693_145_75) - k * 1.428_606_8e-6;
        let mut p = 1.0 / 5040.0;
        p = p * r + 1.0 / 720.0;
        p = p * r + 1.0 / 120.0;
        p = p * r + 1.0 / 24.0;
        p = p * r + 1.0 / 6.0;
        p = p * r + 0.5;
        p = p * r + 1.0;
        p = p * r + 1.0;
        let ki = (k as i32).clamp(-126, 127);
        let scale = f32::from_bits(((ki + 127) as u32) << 23);
        let v = p * scale;
        if x > 88.72 {
            f32::INFINITY
        } else if x < -87.3 {
            0.0
        } else {
            v
        }
    }
    #[inline(always)]
    fn tanh_lanes(self) -> Self {
        let e = (2.0 * self.max_lanes(-20.0).min_lanes(20.0)).exp_lanes();
        1.0 - 2.0 / (e + 1.0)
    }
    #[inline(always)]
    fn sqrt_lanes(self) -> Self {
        let x = self;
        // Halving the biased exponent gives √x within 4 %; each Newton step squares the error.
        let mut y = f32::from_bits(0x1fbd_1df5_u32.wrapping_add(x.to_bits() >> 1));
        y = 0.5 * (y + x / y);
        y = 0.5 * (y + x / y);
        y = 0.5 * (y + x / y);
        if x > 0.0 && x < f32::INFINITY {
            y
        } else if x == 0.0 || x == f32::INFINITY {
            x
        } else {
            f32::NAN
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

// Same shape as impl Real for f32 above (duplicates): each width calls its own libm functions
// and byte width; a macro over both would hide which function each one calls.
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
    /// f64 is the reference type: the library functions, bit for bit as [`exp`](Real::exp).
    #[inline(always)]
    fn exp_lanes(self) -> Self {
        libm::exp(self)
    }
    /// The library function, as [`tanh`](Real::tanh).
    #[inline(always)]
    fn tanh_lanes(self) -> Self {
        libm::tanh(self)
    }
    /// The library function, as [`sqrt`](Real::sqrt).
    #[inline(always)]
    fn sqrt_lanes(self) -> Self {
        libm::sqrt(self)
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

/// Branch-free helpers the lane functions use (plain compare-selects and conversions, which
/// vectorise; the `libm` calls do not).
trait LaneOps: Sized {
    /// ⌊x⌋ for |x| ≤ 10⁹ (the exponent range needs far less); NaN gives 0, which the caller
    /// turns back into NaN through the polynomial.
    fn floor_lanes(self) -> Self;
    fn max_lanes(self, lo: Self) -> Self;
    fn min_lanes(self, hi: Self) -> Self;
}

impl LaneOps for f32 {
    #[inline(always)]
    fn floor_lanes(self) -> Self {
        let t = (self.clamp(-1e9, 1e9) as i32) as f32;
        if t > self {
            t - 1.0
        } else {
            t
        }
    }
    #[inline(always)]
    fn max_lanes(self, lo: Self) -> Self {
        if self < lo {
            lo
        } else {
            self
        }
    }
    #[inline(always)]
    fn min_lanes(self, hi: Self) -> Self {
        if self > hi {
            hi
        } else {
            self
        }
    }
}
