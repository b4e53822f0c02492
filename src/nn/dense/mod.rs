//! A dense layer `y = W x + b` applied to one tile, forward and backward.
//!
//! Weights are stored input-major, `w[i][o]` (`n_in` rows of `n_out`: the transpose of torch's
//! `nn.Linear.weight`), bias `[out]`. Input-major rows make the single-sample product
//! ([`forward_one`]) a sum of contiguous rows scaled by the inputs — vector accumulators over
//! the outputs and no horizontal sums — while the tiled kernels read a block of consecutive
//! weights per input either way.
//!
//! The tile holds activations feature-major, `x[i][lane]`, so the innermost loops run over the
//! [`TILE`] lanes with a scalar weight broadcast: fixed-length, bounds-check free, vectorised
//! by LLVM at any target. The kernels are register-blocked: a block of [`block_rows_for`] outputs
//! (inputs for the input gradient) keeps its `block × TILE` accumulators in vector registers
//! while the loop over the reduction index streams one tile row and one scalar weight per
//! accumulator row, so every loaded row feeds `block` multiply-adds. The block is chosen at
//! compile time from the target's vector registers (`-C target-cpu=native` gives AVX-512 or
//! AVX2 blocks; the default x86-64 target SSE2 blocks). The weight gradient is the product of
//! the input (feature-major) with `∂y` transposed to sample-major, so its accumulators run
//! over outputs and no lane sums are needed.
//!
//! The module's files: `tile.rs` holds the tiled kernels' row helpers, register-block macros
//! and the input- and weight-gradient blocks; `lanes.rs` the lane sums and dot products (folds,
//! transposes); `one.rs` the single-sample kernels; this file the block sizing, the kernel sets
//! (one per instruction set, instantiated from one macro) and the dispatching entry points.

#[macro_use]
mod tile;
mod lanes;
mod madd;
mod one;

pub(crate) use lanes::lane_sum;
use lanes::*;
use madd::MulAdd;
use one::*;
use tile::*;

use super::activation;
use crate::real::Real;
use crate::shape::{Activation, TILE};

/// Bytes of one vector register and the number of registers, for the compile-time target
/// (the portable kernels).
const fn vector_registers() -> (usize, usize) {
    if cfg!(target_feature = "avx512f") {
        (64, 32)
    } else if cfg!(target_feature = "avx") {
        (32, 16)
    } else if cfg!(any(target_arch = "x86_64", target_arch = "x86")) {
        (16, 16)
    } else if cfg!(target_arch = "aarch64") {
        (16, 32)
    } else {
        // Scalar FPU (e.g. Cortex-M4F: 32 single-precision registers).
        (4, 32)
    }
}

/// Rows per register block for elements of `elem_bytes` bytes with `regs` vector registers of
/// `vec_bytes` bytes: as many `TILE`-lane accumulator rows as fit next to one streamed row
/// and a broadcast, rounded down to a power of two in 1..=8.
pub const fn block_rows_for(elem_bytes: usize, vec_bytes: usize, regs: usize) -> usize {
    let per_row = {
        let r = TILE * elem_bytes / vec_bytes;
        if r == 0 {
            1
        } else {
            r
        }
    };
    let fit = if regs > per_row + 1 {
        (regs - per_row - 1) / per_row
    } else {
        1
    };
    let mut b = 8;
    while b > fit && b > 1 {
        b /= 2;
    }
    b
}

/// Outputs per accumulator block of the single-sample product for elements of `elem_bytes`
/// bytes with `regs` vector registers of `vec_bytes` bytes: two partial sums of the block take
/// half the vector registers (AVX-512: 64 f32 or 32 f64; AVX2 32/16; SSE2 and NEON 16/8; a
/// scalar FPU 8), at most 64.
pub const fn one_block_for(elem_bytes: usize, vec_bytes: usize, regs: usize) -> usize {
    let mut lanes = vec_bytes * regs / 4 / elem_bytes;
    if lanes > 64 {
        lanes = 64;
    }
    let mut b = 64;
    while b > lanes && b > 8 {
        b /= 2;
    }
    b
}

/// One set of the kernels that depend on the vector registers (block sizes), compiled with
/// the attributes `$attr` (`#[target_feature]`, or none for the portable set) into
/// module `$m`: the register blocks and the four entry points the public functions dispatch
/// to. Every set computes the same bits: a block size only groups outputs (or inputs), and
/// each one's sum runs over the same terms in the same order.
macro_rules! kernel_set {
    ($m:ident, $madd:ty, $vec_bytes:expr, $regs:expr, [$(#[$attr:meta])*]) => {
        mod $m {
            use super::*;

            const VEC_BYTES: usize = $vec_bytes;
            const REGS: usize = $regs;
            /// This set's multiply-add.
            type M = $madd;

            /// Rows per register block for `T` with these registers.
            #[inline(always)]
            fn block<T>() -> usize {
                block_rows_for(core::mem::size_of::<T>(), VEC_BYTES, REGS)
            }

            forward_block!([$(#[$attr])*] forward_8; a0 0, a1 1, a2 2, a3 3, a4 4, a5 5, a6 6, a7 7);
            forward_block!([$(#[$attr])*] forward_4; a0 0, a1 1, a2 2, a3 3);
            forward_block!([$(#[$attr])*] forward_2; a0 0, a1 1);
            forward_block!([$(#[$attr])*] forward_1; a0 0);

        #[inline]
        $(#[$attr])*
        pub(super) fn forward_act<T: Real>(
            w: &[T],
            b: &[T],
            x: &[T],
            y: &mut [T],
            n_in: usize,
            act: Option<Activation>,
        ) {
            let n_out = b.len();
            if n_in == 0 || n_out == 0 {
                return;
            }
            let (Some(w), Some(x)) = (w.get(..n_in * n_out), x.get(..n_in * TILE)) else {
                return;
            };
            let mut o0 = 0;
            while o0 < n_out {
                let mr = block_left(block::<T>(), n_out - o0);
                let (Some(bb), Some(yb)) = (b.get(o0..o0 + mr), y.get_mut(o0 * TILE..(o0 + mr) * TILE))
                else {
                    return;
                };
                match mr {
                    8 => forward_8::<T, M>(w, bb, x, yb, n_out, o0, act),
                    4 => forward_4::<T, M>(w, bb, x, yb, n_out, o0, act),
                    2 => forward_2::<T, M>(w, bb, x, yb, n_out, o0, act),
                    _ => forward_1::<T, M>(w, bb, x, yb, n_out, o0, act),
                }
                o0 += mr;
            }
        }

        #[inline]
        $(#[$attr])*
        // Same shape as forward_act above (duplicates): that block loop walks output rows of w,
        // this one input rows with a different slicing; the kernels behind the match differ.
        pub(super) fn backward_input<T: Real>(
            w: &[T],
            gy: &[T],
            gx: &mut [T],
            n_in: usize,
            act: Option<(Activation, &[T])>,
        ) {
            let n_out = gy.len() / TILE;
            if n_out == 0 {
                return;
            }
            let mut i0 = 0;
            while i0 < n_in {
                let mr = block_left(block::<T>(), n_in - i0);
                let (Some(wb), Some(gxb)) = (
                    w.get(i0 * n_out..(i0 + mr) * n_out),
                    gx.get_mut(i0 * TILE..(i0 + mr) * TILE),
                ) else {
                    return;
                };
                match mr {
                    8 => input_8::<T, M>(wb, gy, gxb, n_out, i0, act),
                    4 => input_4::<T, M>(wb, gy, gxb, n_out, i0, act),
                    2 => input_2::<T, M>(wb, gy, gxb, n_out, i0, act),
                    _ => input_1::<T, M>(wb, gy, gxb, n_out, i0, act),
                }
                i0 += mr;
            }
        }

        #[inline]
        $(#[$attr])*
        pub(super) fn backward_params<T: Real>(
            x: &[T],
            gy: &[T],
            gw: &mut [T],
            gb: &mut [T],
            n_in: usize,
            gy_t: &mut [T],
        ) {
            let n_out = gb.len();
            if n_in == 0 || n_out == 0 {
                return;
            }
            let (Some(x), Some(gy)) = (x.get(..n_in * TILE), gy.get(..n_out * TILE)) else {
                return;
            };
            // Outputs in whole blocks of TILE go through the sample-major product (and their bias
            // gradient through sums of its rows); the rest (the output layer's two outputs)
            // through the sample-major copy of the inputs when they come in whole blocks, else by
            // lane dot products; their bias gradient by lane sums.
            let mut gy_t = gy_t.get_mut(..TILE * TILE);
            let wide = match gy_t {
                Some(_) => n_out / TILE * TILE,
                None => 0,
            };
            // Bias gradient of the narrow outputs: row sums, four rows per transposing tree.
            {
                let mut g4 = gb[wide..].chunks_exact_mut(4);
                let mut y4 = gy[wide * TILE..].chunks_exact(4 * TILE);
                for (g, rows) in (&mut g4).zip(&mut y4) {
                    if let Some(r) = rows4(rows) {
                        for (gv, sv) in g.iter_mut().zip(lane_dots4(r, None)) {
                            *gv += sv;
                        }
                    }
                }
                for (g, r) in g4
                    .into_remainder()
                    .iter_mut()
                    .zip(y4.remainder().chunks_exact(TILE))
                {
                    if let Some(r) = as_row(r) {
                        *g += lane_sum(r);
                    }
                }
            }
            if let Some(gy_t) = gy_t.as_deref_mut() {
                for (c, gyb) in gy.chunks_exact(TILE * TILE).take(wide / TILE).enumerate() {
                    transpose_block(gyb, gy_t);
                    let o0 = c * TILE;
                    if let Some(gbb) = gb.get_mut(o0..o0 + TILE) {
                        row_sums_into(gy_t, gbb);
                    }
                    let mut i0 = 0;
                    while i0 < n_in {
                        let mr = block_left(block::<T>(), n_in - i0);
                        let (Some(xb), Some(gwb)) = (
                            x.get(i0 * TILE..(i0 + mr) * TILE),
                            gw.get_mut(i0 * n_out..(i0 + mr) * n_out),
                        ) else {
                            break;
                        };
                        match mr {
                            8 => params_8::<T, M>(xb, gy_t, gwb, n_out, o0),
                            4 => params_4::<T, M>(xb, gy_t, gwb, n_out, o0),
                            2 => params_2::<T, M>(xb, gy_t, gwb, n_out, o0),
                            _ => params_1::<T, M>(xb, gy_t, gwb, n_out, o0),
                        }
                        i0 += mr;
                    }
                }
            }
            if wide < n_out {
                match gy_t {
                    Some(x_t) if n_in % TILE == 0 => {
                        narrow_params_t::<T, M>(x, gy, gw, n_out, wide, x_t)
                    }
                    _ => narrow_params(x, gy, gw, n_out, wide),
                }
            }
        }

        #[inline]
        $(#[$attr])*
        pub(super) fn forward_one<T: Real>(
            w: &[T],
            b: &[T],
            x: &[T],
            y: &mut [T],
            n_in: usize,
            act: Option<Activation>,
        ) {
            let n_out = b.len().min(y.len());
            if n_in == 0 || n_out == 0 {
                return;
            }
            let (Some(w), Some(x)) = (w.get(..n_in * n_out), x.get(..n_in)) else {
                return;
            };
            let y = &mut y[..n_out];
            let b = &b[..n_out];
            if n_out < SMALL_OUT {
                match n_out {
                    2 => few_out::<T, M, 2, 32>(w, b, x, y),
                    4 => few_out::<T, M, 4, 64>(w, b, x, y),
                    6 => few_out::<T, M, 6, 96>(w, b, x, y),
                    _ => small_out_block::<T, M>(w, b, x, y, n_out, 0),
                }
            } else {
                let mut o0 = 0;
                while o0 < n_out {
                    let left = n_out - o0;
                    let bw = match one_block_for(core::mem::size_of::<T>(), VEC_BYTES, REGS) {
                        64 if left >= 64 => 64,
                        64 | 32 if left >= 32 => 32,
                        64 | 32 | 16 if left >= 16 => 16,
                        _ if left >= 8 => 8,
                        _ => left,
                    };
                    let yb = &mut y[o0..o0 + bw];
                    let bb = &b[o0..o0 + bw];
                    match bw {
                        64 => axpy_block::<T, M, 64>(w, bb, x, yb, n_out, o0),
                        32 => axpy_block::<T, M, 32>(w, bb, x, yb, n_out, o0),
                        16 => axpy_block::<T, M, 16>(w, bb, x, yb, n_out, o0),
                        8 => axpy_block::<T, M, 8>(w, bb, x, yb, n_out, o0),
                        _ => small_out_block::<T, M>(w, bb, x, yb, n_out, o0),
                    }
                    o0 += bw;
                }
            }
            activation::apply(act, y);
        }
        }
    };
}

kernel_set!(
    portable,
    madd::Separate,
    vector_registers().0,
    vector_registers().1,
    []
);
#[cfg(all(target_arch = "x86_64", not(feature = "portable-kernels")))]
kernel_set!(avx2, madd::Fused, 32, 16, [#[target_feature(enable = "avx2,fma")]]);
#[cfg(all(target_arch = "x86_64", not(feature = "portable-kernels")))]
kernel_set!(
    avx512,
    madd::Fused,
    64,
    32,
    [#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,fma")]]
);

/// Calls `$f` of the kernel set [`crate::kernels::kernels`] picked for this CPU.
macro_rules! dispatch {
    ($f:ident($($arg:expr),*)) => {{
        #[cfg(all(target_arch = "x86_64", not(feature = "portable-kernels")))]
        match crate::kernels::kernels() {
            crate::kernels::Kernels::Avx512 => {
                #[allow(unsafe_code)]
                // SAFETY: `kernels()` picks AVX-512 only when cpuid reports AVX-512 F, VL, BW
                // and DQ and the OS saves the ZMM state (xgetbv); nothing else is required.
                return unsafe { avx512::$f($($arg),*) };
            }
            crate::kernels::Kernels::Avx2 => {
                #[allow(unsafe_code)]
                // SAFETY: `kernels()` picks AVX2 only when cpuid reports AVX2 and the OS saves
                // the YMM state (xgetbv).
                return unsafe { avx2::$f($($arg),*) };
            }
            crate::kernels::Kernels::Portable => {}
        }
        portable::$f($($arg),*)
    }};
}

/// `y[o][:] = act(b[o] + Σ_i w[i][o] · x[i][:])` for `n_out = b.len()` outputs, with the
/// activation (if any) fused into the store.
///
/// Slices must hold `w: n_in·n_out`, `x: n_in·TILE`, `y: n_out·TILE`; outputs for which a
/// slice is short are left untouched (callers size them exactly).
// Same shape as nn/dense/mod.rs kernel_set!'s forward_act, backward_input, backward_params and
// forward_one (duplicates): each public entry point spells out the argument list of the per-ISA
// kernel it dispatches to.
#[inline]
pub fn forward_act<T: Real>(
    w: &[T],
    b: &[T],
    x: &[T],
    y: &mut [T],
    n_in: usize,
    act: Option<Activation>,
) {
    dispatch!(forward_act(w, b, x, y, n_in, act))
}

/// `gx[i][:] = d(Σ_o w[i][o] · gy[o][:])` for the `n_in` inputs, where `d` is the derivative
/// of the activation that produced `x` (given by its output rows, fused into the store;
/// `None` = identity). `n_out = gy.len() / TILE`.
#[inline]
pub fn backward_input<T: Real>(
    w: &[T],
    gy: &[T],
    gx: &mut [T],
    n_in: usize,
    act: Option<(Activation, &[T])>,
) {
    dispatch!(backward_input(w, gy, gx, n_in, act))
}

/// Accumulates the parameter gradients of one tile: `gw[i][o] += Σ_lanes x[i]·gy[o]` and
/// `gb[o] += Σ_lanes gy[o]` for `n_out = gb.len()` outputs. `gy_t` is scratch for the
/// sample-major copy of one `TILE × TILE` block of `gy` (without `TILE²` elements every
/// product takes the lane-dot path).
#[inline]
pub fn backward_params<T: Real>(
    x: &[T],
    gy: &[T],
    gw: &mut [T],
    gb: &mut [T],
    n_in: usize,
    gy_t: &mut [T],
) {
    dispatch!(backward_params(x, gy, gw, gb, n_in, gy_t))
}

/// `y[o] = act(b[o] + Σ_i x[i] · w[i][o])` for one sample (`x`: `n_in`, `y`: `n_out =
/// b.len()`): the single-sample path. Blocks of [`one_block_for`] outputs are accumulated in
/// vector registers as the contiguous weight rows stream past, scaled by one input each —
/// two interleaved partial sums (even and odd inputs) halve the dependency chain — so there
/// are no horizontal sums. Few outputs (the output layer's two) take per-output partial sums
/// instead.
#[inline]
pub fn forward_one<T: Real>(
    w: &[T],
    b: &[T],
    x: &[T],
    y: &mut [T],
    n_in: usize,
    act: Option<Activation>,
) {
    dispatch!(forward_one(w, b, x, y, n_in, act))
}
