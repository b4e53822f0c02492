//! How a kernel set multiplies and adds: `c + a·b` rounded twice (a multiply, then an add: the
//! portable set, the same bits on every target) or once (a fused multiply-add: the x86-64
//! sets, which Intel cores run at twice the rate of a separate multiply and add).
//!
//! The kernels are written once, generic over [`MulAdd`]; each kernel set instantiates them
//! with its own. The fused form is a scalar FMA that LLVM vectorises like the separate one, so
//! the kernels' loops and the order of every sum are unchanged: two sets with the same
//! `MulAdd` compute the same bits, whatever their vector width.

use crate::real::Real;

/// One multiply-add of the kernels' inner loops.
pub(super) trait MulAdd {
    /// `c + a·b`.
    fn mul_add<T: Real>(a: T, b: T, c: T) -> T;
}

/// A multiply and an add, each rounded: what every target computes alike.
pub(super) struct Separate;

impl MulAdd for Separate {
    #[inline(always)]
    fn mul_add<T: Real>(a: T, b: T, c: T) -> T {
        c + a * b
    }
}

/// A fused multiply-add, rounded once (x86-64 FMA). Only the kernel sets compiled with the
/// `fma` target feature use it, and `kernels::detect` picks those only on CPUs that have it.
#[cfg(all(target_arch = "x86_64", not(feature = "portable-kernels")))]
pub(super) struct Fused;

#[cfg(all(target_arch = "x86_64", not(feature = "portable-kernels")))]
impl MulAdd for Fused {
    #[inline(always)]
    fn mul_add<T: Real>(a: T, b: T, c: T) -> T {
        use core::arch::x86_64::{
            _mm_cvtsd_f64, _mm_cvtss_f32, _mm_fmadd_sd, _mm_fmadd_ss, _mm_set_sd, _mm_set_ss,
        };
        // The width is a constant, so one branch remains; the round trips through f64 are
        // exact and fold away.
        #[allow(unsafe_code)]
        // SAFETY: FMA is present: this is reached only from the kernel sets compiled with
        // `target_feature(enable = "fma")`, which `kernels::kernels` dispatches to only when
        // cpuid reports FMA. The intrinsics touch no memory.
        unsafe {
            if T::BYTES == 8 {
                let (a, b, c) = (
                    _mm_set_sd(a.to_f64()),
                    _mm_set_sd(b.to_f64()),
                    _mm_set_sd(c.to_f64()),
                );
                T::from_f64(_mm_cvtsd_f64(_mm_fmadd_sd(a, b, c)))
            } else {
                let f = |v: T| _mm_set_ss(v.to_f64() as f32);
                T::from_f64(_mm_cvtss_f32(_mm_fmadd_ss(f(a), f(b), f(c))) as f64)
            }
        }
    }
}
