//! `lwf_kernels`, `lwf_use_kernels`: which kernel set the dense kernels run (the core's
//! `lwflow::kernels`). The widest set the CPU supports is chosen on the first call; a host that
//! needs the same bits on every machine (ranks on CPUs with and without FMA, or beside a
//! Cortex-M) selects the portable set once at start-up.

use crate::status::LwfStatus::{self, *};
use lwflow::kernels::{kernels, use_kernels, Kernels};

/// Kernel set codes (`lwf_kernels`, `lwf_use_kernels`).
// Same shape as fit_config.rs::LwfSchedule (duplicates): repr(C) code enums, each spelling out
// its own codes for the header.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LwfKernels {
    /// Compiled for the build's target; multiplies, then adds: the same bits on every machine
    /// and target.
    LWF_KERNELS_PORTABLE = 0,
    /// x86-64 with AVX2 and FMA: fused multiply-adds, the same bits as the AVX-512 set.
    LWF_KERNELS_AVX2 = 1,
    /// x86-64 with AVX-512 (F, VL, BW, DQ) and FMA: fused multiply-adds.
    LWF_KERNELS_AVX512 = 2,
}

/// The kernel set in use: the widest this CPU supports, detected on the first call, unless
/// `lwf_use_kernels` chose another.
#[no_mangle]
pub extern "C" fn lwf_kernels() -> LwfKernels {
    match kernels() {
        Kernels::Portable => LwfKernels::LWF_KERNELS_PORTABLE,
        Kernels::Avx2 => LwfKernels::LWF_KERNELS_AVX2,
        Kernels::Avx512 => LwfKernels::LWF_KERNELS_AVX512,
    }
}

/// Makes every later call in this process use the kernel set `set` (an `LwfKernels` code):
/// `LWF_KERNELS_PORTABLE` always works; `LWF_INVALID_ARGUMENT` for an unknown code or a set
/// this CPU cannot run (the set in use is then unchanged). The choice changes speed and, between
/// the portable and the wide sets, the last bits of results (rounding); call it before other
/// threads use the library, since calls running meanwhile may mix the two sets.
#[no_mangle]
pub extern "C" fn lwf_use_kernels(set: i32) -> LwfStatus {
    let set = match set {
        0 => Kernels::Portable,
        1 => Kernels::Avx2,
        2 => Kernels::Avx512,
        _ => return LWF_INVALID_ARGUMENT,
    };
    match use_kernels(set) {
        Ok(()) => LWF_OK,
        Err(_) => LWF_INVALID_ARGUMENT,
    }
}
