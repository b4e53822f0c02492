//! Which kernel set runs: the CPU's vector extensions, detected once at run time.
//!
//! The library's dense kernels (private) come in sets compiled for different vector registers:
//! the portable set (whatever the build's target allows: SSE2 on a default x86-64 build, NEON
//! on aarch64, scalar on a Cortex-M) and, on x86-64, sets compiled with AVX2 and with AVX-512
//! (F, VL, BW, DQ) enabled. The first kernel call detects the CPU (cpuid, and xgetbv for the
//! operating system's register saving; no `std` needed) and every later call uses the widest
//! set it supports. All sets compute the same bits (a register block only groups outputs; every
//! sum keeps its terms and their order), so the choice changes speed, never results: a default
//! build runs as fast as a `-C target-cpu=native` one without losing bit-identity across
//! machines.
//!
//! [`kernels`] says which set runs; [`use_kernels`] picks another supported set at run time (a
//! benchmark baseline, a check on one machine that every set gives the same bits, the portable
//! path on a machine where wide vectors slow the clock); the cargo feature `portable-kernels`
//! compiles only the portable set.
//!
//! ```
//! use lwflow::kernels::{kernels, use_kernels, Kernels};
//!
//! use_kernels(Kernels::Portable)?; // always available
//! assert_eq!(kernels(), Kernels::Portable);
//! # use_kernels(lwflow::kernels::detect())?;
//! # Ok::<(), lwflow::Error>(())
//! ```

use crate::error::Error;
use core::sync::atomic::{AtomicU8, Ordering};

/// A kernel set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernels {
    /// Compiled for the build's target only.
    Portable,
    /// x86-64 with AVX2.
    Avx2,
    /// x86-64 with AVX-512 F, VL, BW and DQ.
    Avx512,
}

/// 0: not chosen yet; otherwise 1 + the set's index.
static CHOSEN: AtomicU8 = AtomicU8::new(0);

const fn code(k: Kernels) -> u8 {
    match k {
        Kernels::Portable => 1,
        Kernels::Avx2 => 2,
        Kernels::Avx512 => 3,
    }
}

/// The kernel set in use: the widest the CPU supports, unless [`use_kernels`] chose another.
/// Detected on the first call (racing first calls store the same answer).
#[inline]
pub fn kernels() -> Kernels {
    match CHOSEN.load(Ordering::Relaxed) {
        1 => Kernels::Portable,
        2 => Kernels::Avx2,
        3 => Kernels::Avx512,
        _ => {
            let k = detect();
            CHOSEN.store(code(k), Ordering::Relaxed);
            k
        }
    }
}

/// Makes every later kernel call use `set` (the portable set is always available; AVX2 needs
/// a CPU with AVX2 or AVX-512, AVX-512 one with AVX-512): `InvalidArgument` when this CPU
/// cannot run it. Results are the same bits with every set; this changes speed only (for
/// comparisons). `use_kernels(detect())` returns to the default.
pub fn use_kernels(set: Kernels) -> Result<(), Error> {
    let widest = detect();
    let ok = match set {
        Kernels::Portable => true,
        Kernels::Avx2 => widest != Kernels::Portable,
        Kernels::Avx512 => widest == Kernels::Avx512,
    };
    if !ok {
        return Err(Error::InvalidArgument);
    }
    CHOSEN.store(code(set), Ordering::Relaxed);
    Ok(())
}

/// The widest kernel set this CPU and operating system support (whatever [`use_kernels`]
/// chose).
pub fn detect() -> Kernels {
    #[cfg(all(target_arch = "x86_64", not(feature = "portable-kernels")))]
    {
        x86::detect()
    }
    #[cfg(not(all(target_arch = "x86_64", not(feature = "portable-kernels"))))]
    {
        Kernels::Portable
    }
}

#[cfg(all(target_arch = "x86_64", not(feature = "portable-kernels")))]
mod x86 {
    use super::Kernels;
    #[cfg(not(miri))]
    use core::arch::x86_64::{__cpuid, __cpuid_count, CpuidResult};

    #[cfg_attr(miri, allow(dead_code))]
    const fn bit(r: u32, b: u32) -> bool {
        r & (1 << b) != 0
    }

    /// Under Miri (which cannot run cpuid, inline assembly): the sets the build's target
    /// features allow, so `RUSTFLAGS="-C target-feature=+avx2"` (or the AVX-512 ones) has Miri
    /// check that set's kernels (README, "Miri").
    #[cfg(miri)]
    pub(super) fn detect() -> Kernels {
        if cfg!(all(
            target_feature = "avx512f",
            target_feature = "avx512vl",
            target_feature = "avx512bw",
            target_feature = "avx512dq"
        )) {
            Kernels::Avx512
        } else if cfg!(target_feature = "avx2") {
            Kernels::Avx2
        } else {
            Kernels::Portable
        }
    }

    #[cfg(not(miri))]
    pub(super) fn detect() -> Kernels {
        let leaf0: CpuidResult = __cpuid(0);
        if leaf0.eax < 7 {
            return Kernels::Portable;
        }
        let leaf1 = __cpuid(1);
        // OSXSAVE (the OS enabled XGETBV) and AVX.
        if !(bit(leaf1.ecx, 27) && bit(leaf1.ecx, 28)) {
            return Kernels::Portable;
        }
        let xcr0 = xcr0();
        let leaf7 = __cpuid_count(7, 0);
        // XCR0: SSE and AVX state (bits 1, 2); AVX-512 opmask, ZMM upper halves, ZMM16–31
        // (bits 5, 6, 7).
        let ymm = xcr0 & 0b110 == 0b110;
        let zmm = xcr0 & 0b1110_0110 == 0b1110_0110;
        let b = leaf7.ebx;
        // AVX-512 F (16), DQ (17), BW (30), VL (31); AVX2 (5).
        if zmm && bit(b, 16) && bit(b, 17) && bit(b, 30) && bit(b, 31) {
            Kernels::Avx512
        } else if ymm && bit(b, 5) {
            Kernels::Avx2
        } else {
            Kernels::Portable
        }
    }

    /// XCR0, the state components the OS saves. Call only when CPUID.1:ECX.OSXSAVE is set.
    #[allow(unsafe_code)]
    #[cfg(not(miri))]
    fn xcr0() -> u64 {
        // SAFETY: the caller checked CPUID.1:ECX.OSXSAVE: the OS enabled XGETBV (and with it
        // the XSAVE feature the intrinsic is compiled for), so the instruction may run.
        unsafe { xgetbv0() }
    }

    #[target_feature(enable = "xsave")]
    #[allow(unsafe_code)]
    #[cfg(not(miri))]
    unsafe fn xgetbv0() -> u64 {
        // SAFETY: the function's own contract (XGETBV enabled).
        unsafe { core::arch::x86_64::_xgetbv(0) }
    }
}
