//! Which kernel set runs: the CPU's vector extensions, detected once at run time.
//!
//! The library's dense kernels (private) come in sets compiled for different vector registers:
//! the portable set (whatever the build's target allows: SSE2 on a default x86-64 build, NEON
//! on aarch64, scalar on a Cortex-M) and, on x86-64, sets compiled with AVX2 + FMA and with
//! AVX-512 (F, VL, BW, DQ) + FMA enabled. The first kernel call detects the CPU (cpuid, and
//! xgetbv for the operating system's register saving; no `std` needed) and every later call
//! uses the widest set it supports, so a default build runs the wide kernels without
//! `-C target-cpu`.
//!
//! Bits: a register block only groups outputs, and every sum keeps its terms and their order
//! in every set. The two wide sets fuse each multiply-add (one rounding, twice the rate on
//! Intel cores) and compute the same bits as each other; the portable set multiplies and adds
//! separately, as every target does, and its results differ from theirs in the last bits of
//! each dot product. Same machine, same set, same seed: same bits. For results that are the
//! same bits on every machine (an x86-64 cluster beside a Cortex-M, or CPUs with and without
//! FMA) choose the portable set: `use_kernels(Kernels::Portable)` at run time, or the cargo
//! feature `portable-kernels`, which compiles only the portable set (no environment variable
//! is read).
//!
//! [`kernels`] says which set runs; [`use_kernels`] picks another supported set at run time (a
//! benchmark baseline, the portable bits, the portable path on a machine where wide vectors
//! slow the clock).
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
    /// x86-64 with AVX2 and FMA (fused multiply-adds).
    Avx2,
    /// x86-64 with AVX-512 F, VL, BW and DQ, and FMA (fused multiply-adds).
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
/// a CPU with AVX2 and FMA, or AVX-512; AVX-512 one with AVX-512 and FMA): `InvalidArgument`
/// when this CPU cannot run it. The two wide sets give the same bits; the portable set gives
/// the bits every machine gives (see the module notes). `use_kernels(detect())` returns to
/// the default.
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
            target_feature = "avx512dq",
            target_feature = "fma"
        )) {
            Kernels::Avx512
        } else if cfg!(all(target_feature = "avx2", target_feature = "fma")) {
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
        // OSXSAVE (the OS enabled XGETBV), AVX and FMA: both wide sets fuse their
        // multiply-adds.
        if !(bit(leaf1.ecx, 27) && bit(leaf1.ecx, 28) && bit(leaf1.ecx, 12)) {
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
