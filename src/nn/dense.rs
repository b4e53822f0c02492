//! A dense layer `y = W x + b` applied to one tile, forward and backward.
//!
//! Weights are stored `[out][in]` row-major (torch's `nn.Linear` layout), bias `[out]`. The
//! tile holds activations feature-major, `x[i][lane]`, so the innermost loops run over the
//! [`TILE`] lanes with a scalar weight broadcast: fixed-length, bounds-check free, vectorised
//! by LLVM at any target.
//!
//! The kernels are register-blocked: a block of [`block_rows`] outputs (inputs for the input
//! gradient) keeps its `block × TILE` accumulators in vector registers while the loop over the
//! reduction index streams one tile row and one scalar weight per output, so every loaded row
//! feeds `block` multiply-adds. The block is chosen at compile time from the target's vector
//! registers (`-C target-cpu=native` gives AVX-512 or AVX2 blocks; the default x86-64 target
//! SSE2 blocks). The weight gradient is the product of `∂y` (feature-major) with the input
//! transposed to sample-major, so its accumulators run over inputs and no lane sums are needed.

use crate::real::Real;
use crate::shape::{Activation, TILE};

/// Bytes of one vector register and the number of registers, for the compile-time target.
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

/// Rows per register block for elements of `elem_bytes` bytes: as many `TILE`-lane
/// accumulator rows as fit in the vector registers next to one streamed row and a broadcast,
/// rounded down to a power of two in 1..=8.
pub const fn block_rows(elem_bytes: usize) -> usize {
    let (vec_bytes, regs) = vector_registers();
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

/// The compile-time block for `T`.
#[inline(always)]
fn block_for<T>() -> usize {
    block_rows(core::mem::size_of::<T>())
}

#[inline(always)]
fn as_row<T>(r: &[T]) -> Option<&[T; TILE]> {
    r.try_into().ok()
}

/// Applies the activation to a finished accumulator row as it is stored.
#[inline(always)]
fn store_row<T: Real>(dst: &mut [T], acc: &[T; TILE], act: Option<Activation>) {
    match act {
        None => dst.copy_from_slice(acc),
        Some(Activation::Relu) => {
            for (d, &a) in dst.iter_mut().zip(acc) {
                // `a > 0 ? a : 0` keeps NaN out of the compare-select and vectorises.
                *d = if a > T::ZERO { a } else { T::ZERO };
            }
        }
        Some(Activation::Tanh) => {
            for (d, &a) in dst.iter_mut().zip(acc) {
                *d = a.tanh();
            }
        }
    }
}

/// Stores an input-gradient row times the derivative of the activation whose output row is
/// `out` (`None`: identity).
#[inline(always)]
fn store_grad_row<T: Real>(
    dst: &mut [T],
    acc: &[T; TILE],
    act: Option<(Activation, Option<&[T; TILE]>)>,
) {
    let Some(dst) = <&mut [T; TILE]>::try_from(dst).ok() else {
        return;
    };
    match act {
        None => *dst = *acc,
        Some((_, None)) => {}
        Some((Activation::Relu, Some(out))) => {
            for s in 0..TILE {
                dst[s] = if out[s] > T::ZERO { acc[s] } else { T::ZERO };
            }
        }
        Some((Activation::Tanh, Some(out))) => {
            for s in 0..TILE {
                dst[s] = acc[s] * (T::ONE - out[s] * out[s]);
            }
        }
    }
}

/// `for (((x, &w0), &w1), ...) in xs.zip(w0).zip(w1)... body`: nests the zips and the
/// pattern one weight row at a time.
macro_rules! zipped_for {
    (@ $pat:pat, $it:expr; ; $body:block) => {
        for $pat in $it $body
    };
    (@ $pat:pat, $it:expr; $w:ident $($rest:ident)*; $body:block) => {
        zipped_for!(@ ($pat, &$w), $it.zip($w); $($rest)*; $body)
    };
}

/// Forward kernel for a block of outputs: `$w` names the weight rows, `$k` their index.
macro_rules! forward_block {
    ($name:ident; $($w:ident $k:literal),+) => {
        /// One block of outputs (`wb`: the block's weight rows, `bb`: biases, `yb`: rows).
        #[inline(always)]
        fn $name<T: Real>(
            wb: &[T],
            bb: &[T],
            x: &[T],
            yb: &mut [T],
            n_in: usize,
            act: Option<Activation>,
        ) {
            const MR: usize = [$($k),+].len();
            // Constant indices only, so the accumulators never leave the registers.
            let mut acc = [[T::ZERO; TILE]; MR];
            $( acc[$k] = [bb.get($k).copied().unwrap_or(T::ZERO); TILE]; )+
            let mut rest = wb;
            $(
                let ($w, r) = rest.split_at(n_in.min(rest.len()));
                rest = r;
            )+
            let _ = rest;
            // One zipped iterator over the input rows and every weight row (a single loop
            // exit: with separate `next()`s LLVM vectorises this loop instead of the lanes).
            zipped_for!(@ xr, x.chunks_exact(TILE); $($w)+; {
                // `TILE.min(len)` rather than `TILE` keeps the lane loop the vectorised one.
                for s in 0..TILE.min(xr.len()) {
                    let xv = xr[s];
                    $( acc[$k][s] += $w * xv; )+
                }
            });
            let mut rows = yb.chunks_exact_mut(TILE);
            $(
                if let Some(yr) = rows.next() {
                    store_row(yr, &acc[$k], act);
                }
            )+
        }
    };
}

forward_block!(forward_8; w0 0, w1 1, w2 2, w3 3, w4 4, w5 5, w6 6, w7 7);
forward_block!(forward_4; w0 0, w1 1, w2 2, w3 3);
forward_block!(forward_2; w0 0, w1 1);
forward_block!(forward_1; w0 0);

/// Input-gradient kernel for a block of inputs `i0..i0+MR`: `$a` the accumulators, `$k` the
/// offsets within the block.
macro_rules! input_block {
    ($name:ident; $($a:ident $k:literal),+) => {
        /// One block of inputs starting at `i0` (`gxb`, `outb`: the block's rows).
        #[inline(always)]
        fn $name<T: Real>(
            w: &[T],
            gy: &[T],
            gxb: &mut [T],
            n_in: usize,
            i0: usize,
            act: Option<(Activation, &[T])>,
        ) {
            $( let mut $a = [T::ZERO; TILE]; )+
            const MR: usize = [$($k),+].len();
            for (gyr, wr) in gy.chunks_exact(TILE).zip(w.chunks_exact(n_in)) {
                let wm: Option<&[T; MR]> = wr.get(i0..i0 + MR).and_then(|r| r.try_into().ok());
                let Some(wm) = wm else { break };
                for s in 0..TILE.min(gyr.len()) {
                    let g = gyr[s];
                    $( $a[s] += wm[$k] * g; )+
                }
            }
            let mut rows = gxb.chunks_exact_mut(TILE);
            $(
                if let Some(gr) = rows.next() {
                    let act_k = act.map(|(kind, out)| {
                        let row = out.get((i0 + $k) * TILE..(i0 + $k + 1) * TILE);
                        (kind, row.and_then(as_row))
                    });
                    store_grad_row(gr, &$a, act_k);
                }
            )+
        }
    };
}

input_block!(input_8; a0 0, a1 1, a2 2, a3 3, a4 4, a5 5, a6 6, a7 7);
input_block!(input_4; a0 0, a1 1, a2 2, a3 3);
input_block!(input_2; a0 0, a1 1);
input_block!(input_1; a0 0);

/// `y[o][:] = act(b[o] + Σ_i w[o][i] · x[i][:])` for `n_out = b.len()` outputs, with the
/// activation (if any) fused into the store.
///
/// Slices must hold `w: n_out·n_in`, `x: n_in·TILE`, `y: n_out·TILE`; outputs for which a
/// slice is short are left untouched (callers size them exactly).
#[inline]
pub fn forward_act<T: Real>(
    w: &[T],
    b: &[T],
    x: &[T],
    y: &mut [T],
    n_in: usize,
    act: Option<Activation>,
) {
    if n_in == 0 {
        return;
    }
    let n_out = b.len();
    let mut o0 = 0;
    while o0 < n_out {
        let left = n_out - o0;
        let mr = block_for::<T>().min(if left >= 8 {
            8
        } else if left >= 4 {
            4
        } else if left >= 2 {
            2
        } else {
            1
        });
        let (Some(wb), Some(bb), Some(yb)) = (
            w.get(o0 * n_in..(o0 + mr) * n_in),
            b.get(o0..o0 + mr),
            y.get_mut(o0 * TILE..(o0 + mr) * TILE),
        ) else {
            return;
        };
        match mr {
            8 => forward_8(wb, bb, x, yb, n_in, act),
            4 => forward_4(wb, bb, x, yb, n_in, act),
            2 => forward_2(wb, bb, x, yb, n_in, act),
            _ => forward_1(wb, bb, x, yb, n_in, act),
        }
        o0 += mr;
    }
}

/// `gx[i][:] = d(Σ_o w[o][i] · gy[o][:])` for the `n_in` inputs, where `d` is the derivative
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
    let mut i0 = 0;
    while i0 < n_in {
        let left = n_in - i0;
        let mr = block_for::<T>().min(if left >= 8 {
            8
        } else if left >= 4 {
            4
        } else if left >= 2 {
            2
        } else {
            1
        });
        let Some(gxb) = gx.get_mut(i0 * TILE..(i0 + mr) * TILE) else {
            return;
        };
        match mr {
            8 => input_8(w, gy, gxb, n_in, i0, act),
            4 => input_4(w, gy, gxb, n_in, i0, act),
            2 => input_2(w, gy, gxb, n_in, i0, act),
            _ => input_1(w, gy, gxb, n_in, i0, act),
        }
        i0 += mr;
    }
}

/// Weight-gradient kernel for a block of outputs and one block of `TILE` inputs: `$g` names
/// the rows of `∂y`, `$k` their index. `xb` is the input block sample-major (`TILE × TILE`),
/// `gwb` the block's gradient rows (row `k` at `k·n_in + i0`).
macro_rules! params_block {
    ($name:ident; $($g:ident $k:literal),+) => {
        #[inline(always)]
        fn $name<T: Real>(gyb: &[T], xb: &[T], gwb: &mut [T], n_in: usize, i0: usize) {
            const MR: usize = [$($k),+].len();
            // Constant indices only, so the accumulators never leave the registers.
            let mut acc = [[T::ZERO; TILE]; MR];
            $(
                if let Some(src) = gwb.get($k * n_in + i0..$k * n_in + i0 + TILE) {
                    acc[$k].copy_from_slice(src);
                }
            )+
            let mut rest = gyb;
            $(
                let ($g, r) = rest.split_at(TILE.min(rest.len()));
                rest = r;
            )+
            let _ = rest;
            zipped_for!(@ xr, xb.chunks_exact(TILE); $($g)+; {
                for s in 0..TILE.min(xr.len()) {
                    let xv = xr[s];
                    $( acc[$k][s] += $g * xv; )+
                }
            });
            $(
                if let Some(dst) = gwb.get_mut($k * n_in + i0..$k * n_in + i0 + TILE) {
                    dst.copy_from_slice(&acc[$k]);
                }
            )+
        }
    };
}

params_block!(params_8; g0 0, g1 1, g2 2, g3 3, g4 4, g5 5, g6 6, g7 7);
params_block!(params_4; g0 0, g1 1, g2 2, g3 3);
params_block!(params_2; g0 0, g1 1);
params_block!(params_1; g0 0);

/// Accumulates the parameter gradients of one tile: `gw[o][i] += Σ_lanes gy[o]·x[i]` and
/// `gb[o] += Σ_lanes gy[o]` for `n_out = gb.len()` outputs. `x_t` is scratch of
/// `TILE·n_in` elements for the sample-major copy of `x`.
#[inline]
pub fn backward_params<T: Real>(
    x: &[T],
    gy: &[T],
    gw: &mut [T],
    gb: &mut [T],
    n_in: usize,
    x_t: &mut [T],
) {
    if n_in == 0 {
        return;
    }
    let n_out = gb.len();
    // Bias gradient: row sums, four rows per transposing tree.
    {
        let mut g4 = gb.chunks_exact_mut(4);
        let mut y4 = gy.chunks_exact(4 * TILE);
        for (g, rows) in (&mut g4).zip(&mut y4) {
            let (r0, rest) = rows.split_at(TILE);
            let (r1, rest) = rest.split_at(TILE);
            let (r2, r3) = rest.split_at(TILE);
            if let (Some(r0), Some(r1), Some(r2), Some(r3)) =
                (as_row(r0), as_row(r1), as_row(r2), as_row(r3))
            {
                let sums = lane_dots4([r0, r1, r2, r3], None);
                for (gv, sv) in g.iter_mut().zip(sums) {
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
    // Inputs in whole blocks of TILE go through the sample-major product when there are
    // enough outputs to pay for the transposition; the rest (the output layer's two outputs,
    // the one conditioning input of D = 2) by lane dot products.
    let wide = if n_out >= 8 { n_in / TILE * TILE } else { 0 };
    for (c, (xb, x_tb)) in x
        .chunks_exact(TILE * TILE)
        .zip(x_t.chunks_exact_mut(TILE * TILE))
        .take(wide / TILE)
        .enumerate()
    {
        transpose_block(xb, x_tb);
        let i0 = c * TILE;
        let mut o0 = 0;
        while o0 < n_out {
            let left = n_out - o0;
            let mr = block_for::<T>().min(if left >= 8 {
                8
            } else if left >= 4 {
                4
            } else if left >= 2 {
                2
            } else {
                1
            });
            let (Some(gyb), Some(gwb)) = (
                gy.get(o0 * TILE..(o0 + mr) * TILE),
                gw.get_mut(o0 * n_in..(o0 + mr) * n_in),
            ) else {
                break;
            };
            match mr {
                8 => params_8(gyb, x_tb, gwb, n_in, i0),
                4 => params_4(gyb, x_tb, gwb, n_in, i0),
                2 => params_2(gyb, x_tb, gwb, n_in, i0),
                _ => params_1(gyb, x_tb, gwb, n_in, i0),
            }
            o0 += mr;
        }
    }
    if wide < n_in {
        narrow_params(x, gy, gw, n_in, wide);
    }
}

/// `gw[o][i] += Σ_lanes gy[o]·x[i]` for the columns `i ≥ from` by lane dot products, four
/// per transposing tree: four inputs of one output when the inputs are many, else four
/// outputs of one input.
#[inline(always)]
fn narrow_params<T: Real>(x: &[T], gy: &[T], gw: &mut [T], n_in: usize, from: usize) {
    let cols = n_in.saturating_sub(from);
    let x_rows = x.get(from * TILE..n_in * TILE).unwrap_or(&[]);
    if cols >= 4 {
        for (gyr, gwr) in gy.chunks_exact(TILE).zip(gw.chunks_exact_mut(n_in)) {
            let Some(g) = as_row(gyr) else { break };
            let gwr = gwr.get_mut(from..).unwrap_or(&mut []);
            let mut g4 = gwr.chunks_exact_mut(4);
            let mut x4 = x_rows.chunks_exact(4 * TILE);
            for (gv, xs) in (&mut g4).zip(&mut x4) {
                let (r0, rest) = xs.split_at(TILE);
                let (r1, rest) = rest.split_at(TILE);
                let (r2, r3) = rest.split_at(TILE);
                if let (Some(r0), Some(r1), Some(r2), Some(r3)) =
                    (as_row(r0), as_row(r1), as_row(r2), as_row(r3))
                {
                    let d = lane_dots4([g, g, g, g], Some([r0, r1, r2, r3]));
                    for (v, dv) in gv.iter_mut().zip(d) {
                        *v += dv;
                    }
                }
            }
            for (v, xr) in g4
                .into_remainder()
                .iter_mut()
                .zip(x4.remainder().chunks_exact(TILE))
            {
                if let Some(xr) = as_row(xr) {
                    *v += lane_dots4([g, g, g, g], Some([xr, xr, xr, xr]))[0];
                }
            }
        }
    } else {
        for (c, xr) in x_rows.chunks_exact(TILE).enumerate() {
            let Some(xr) = as_row(xr) else { break };
            let i = from + c;
            let mut o = 0;
            let mut y4 = gy.chunks_exact(4 * TILE);
            for ys in &mut y4 {
                let (r0, rest) = ys.split_at(TILE);
                let (r1, rest) = rest.split_at(TILE);
                let (r2, r3) = rest.split_at(TILE);
                if let (Some(r0), Some(r1), Some(r2), Some(r3)) =
                    (as_row(r0), as_row(r1), as_row(r2), as_row(r3))
                {
                    let d = lane_dots4([r0, r1, r2, r3], Some([xr, xr, xr, xr]));
                    for (k, dv) in d.into_iter().enumerate() {
                        if let Some(v) = gw.get_mut((o + k) * n_in + i) {
                            *v += dv;
                        }
                    }
                }
                o += 4;
            }
            for (k, yr) in y4.remainder().chunks_exact(TILE).enumerate() {
                if let (Some(yr), Some(v)) = (as_row(yr), gw.get_mut((o + k) * n_in + i)) {
                    *v += lane_dots4([yr, yr, yr, yr], Some([xr, xr, xr, xr]))[0];
                }
            }
        }
    }
}

/// Folds a tile row to `ONE_CHUNK` lanes (adding its chunks), times `b` if given.
#[inline(always)]
fn fold_row<T: Real>(a: &[T; TILE], b: Option<&[T; TILE]>) -> [T; ONE_CHUNK] {
    let mut f = [T::ZERO; ONE_CHUNK];
    match b {
        None => {
            for c in a.chunks_exact(ONE_CHUNK) {
                for s in 0..ONE_CHUNK.min(c.len()) {
                    f[s] += c[s];
                }
            }
        }
        Some(b) => {
            for (c, d) in a.chunks_exact(ONE_CHUNK).zip(b.chunks_exact(ONE_CHUNK)) {
                for s in 0..ONE_CHUNK.min(c.len()) {
                    f[s] += c[s] * d[s];
                }
            }
        }
    }
    f
}

/// `Σ_lanes a_k · b_k` (or `Σ_lanes a_k` without `b`) for four rows at once.
#[inline(always)]
fn lane_dots4<T: Real>(a: [&[T; TILE]; 4], b: Option<[&[T; TILE]; 4]>) -> [T; 4] {
    // Written out per row: as a loop over the four, LLVM vectorises across them.
    let f = match b {
        None => [
            fold_row(a[0], None),
            fold_row(a[1], None),
            fold_row(a[2], None),
            fold_row(a[3], None),
        ],
        Some(b) => [
            fold_row(a[0], Some(b[0])),
            fold_row(a[1], Some(b[1])),
            fold_row(a[2], Some(b[2])),
            fold_row(a[3], Some(b[3])),
        ],
    };
    sums4(&f)
}

/// Transposes one `TILE × TILE` block (`[input][lane]` → `[lane][input]`).
#[inline(always)]
fn transpose_block<T: Real>(x: &[T], x_t: &mut [T]) {
    let (Some(src), Some(dst)) = (
        <&[T; TILE * TILE]>::try_from(x).ok(),
        <&mut [T; TILE * TILE]>::try_from(x_t).ok(),
    ) else {
        return;
    };
    for i in 0..TILE {
        for s in 0..TILE {
            dst[s * TILE + i] = src[i * TILE + s];
        }
    }
}

/// Inputs per vector chunk of the single-sample path (and lanes of the folded rows of the
/// lane dot products).
const ONE_CHUNK: usize = 16;
const _: () = assert!(TILE % ONE_CHUNK == 0, "TILE must be a multiple of 16");

/// The four horizontal sums of the single-sample path: four halving trees written out.
#[inline(always)]
fn sums4<T: Real>(a: &[[T; ONE_CHUNK]; 4]) -> [T; 4] {
    [halve16(a[0]), halve16(a[1]), halve16(a[2]), halve16(a[3])]
}

/// Sum of 16 values by halving (16 → 8 → 4 → 2 → 1).
#[inline(always)]
fn halve16<T: Real>(v: [T; ONE_CHUNK]) -> T {
    let mut h8 = [T::ZERO; 8];
    for s in 0..8 {
        h8[s] = v[s] + v[s + 8];
    }
    let mut h4 = [T::ZERO; 4];
    for s in 0..4 {
        h4[s] = h8[s] + h8[s + 4];
    }
    (h4[0] + h4[2]) + (h4[1] + h4[3])
}

/// `y[o] = b[o] + Σ_i w[o][i] · x[i]` for one sample (`x`: `n_in`, `y`: `n_out = b.len()`),
/// with the activation: the single-sample path, vectorised over the inputs (each row of `W` is
/// contiguous) four outputs at a time, so one sample costs one pass over the weights instead
/// of a padded tile. The activation is applied once per block of outputs, matched outside the
/// loop so that it vectorises (a per-output match did not); a one-input layer is an axpy.
/// (Eight rows per pass with a transposing 8 × 16 → 8 sum tree measured no faster here.)
#[inline]
pub fn forward_one<T: Real>(
    w: &[T],
    b: &[T],
    x: &[T],
    y: &mut [T],
    n_in: usize,
    act: Option<Activation>,
) {
    if n_in == 0 {
        return;
    }
    let x = x.get(..n_in).unwrap_or(x);
    let n_out = b.len().min(y.len());
    let y = &mut y[..n_out];
    let b = &b[..n_out];
    if n_in == 1 {
        // One input (the first layer of D = 2): an axpy over the outputs.
        let x0 = x.first().copied().unwrap_or(T::ZERO);
        for ((yo, &wv), &bias) in y.iter_mut().zip(w).zip(b) {
            *yo = bias + wv * x0;
        }
        activate(y, act);
        return;
    }
    if n_in < ONE_CHUNK {
        // Few inputs: the outputs are the long, contiguous dimension.
        for ((yo, wr), &bias) in y.iter_mut().zip(w.chunks_exact(n_in)).zip(b) {
            let mut v = bias;
            for (&wv, &xv) in wr.iter().zip(x) {
                v += wv * xv;
            }
            *yo = v;
        }
        activate(y, act);
        return;
    }
    let mut w_quads = w.chunks_exact(4 * n_in);
    let mut y_quads = y.chunks_exact_mut(4);
    let mut b_quads = b.chunks_exact(4);
    for ((w4, y4), b4) in (&mut w_quads).zip(&mut y_quads).zip(&mut b_quads) {
        let (w0, rest) = w4.split_at(n_in);
        let (w1, rest) = rest.split_at(n_in);
        let (w2, w3) = rest.split_at(n_in);
        let sums = dots4(x, [w0, w1, w2, w3], n_in);
        for ((yo, &sv), &bias) in y4.iter_mut().zip(&sums).zip(b4) {
            *yo = bias + sv;
        }
        activate(y4, act);
    }
    // The last one to three outputs (the output layer's two) as a quad repeating its last row.
    let w_rest = w_quads.remainder();
    let mut rows = w_rest.chunks_exact(n_in);
    if let Some(first) = rows.next() {
        let second = rows.next().unwrap_or(first);
        let third = rows.next().unwrap_or(second);
        let sums = dots4(x, [first, second, third, third], n_in);
        let y_rest = y_quads.into_remainder();
        for ((yo, &sv), &bias) in y_rest.iter_mut().zip(&sums).zip(b_quads.remainder()) {
            *yo = bias + sv;
        }
        activate(y_rest, act);
    }
}

/// Applies the activation in place (the activation is matched once, so the loops vectorise).
#[inline(always)]
fn activate<T: Real>(y: &mut [T], act: Option<Activation>) {
    match act {
        None => {}
        Some(Activation::Relu) => y.iter_mut().for_each(|v| {
            // `v > 0 ? v : 0` keeps NaN out of the compare-select and vectorises.
            *v = if *v > T::ZERO { *v } else { T::ZERO };
        }),
        Some(Activation::Tanh) => y.iter_mut().for_each(|v| *v = v.tanh()),
    }
}

/// `Σ_i w_k[i] · x[i]` for four weight rows of `n_in` inputs: chunks of the inputs in vector
/// accumulators, then one transposing sum tree.
#[inline(always)]
fn dots4<T: Real>(x: &[T], w: [&[T]; 4], n_in: usize) -> [T; 4] {
    let [w0, w1, w2, w3] = w;
    let mut acc = [[T::ZERO; ONE_CHUNK]; 4];
    let rows = x
        .chunks_exact(ONE_CHUNK)
        .zip(w0.chunks_exact(ONE_CHUNK))
        .zip(w1.chunks_exact(ONE_CHUNK))
        .zip(w2.chunks_exact(ONE_CHUNK))
        .zip(w3.chunks_exact(ONE_CHUNK));
    for ((((xc, c0), c1), c2), c3) in rows {
        for k in 0..ONE_CHUNK.min(xc.len()) {
            let xv = xc[k];
            acc[0][k] += c0[k] * xv;
            acc[1][k] += c1[k] * xv;
            acc[2][k] += c2[k] * xv;
            acc[3][k] += c3[k] * xv;
        }
    }
    let mut sums = sums4(&acc);
    let done = n_in / ONE_CHUNK * ONE_CHUNK;
    if done < n_in {
        // Inputs past the last whole chunk.
        for (t, wr) in sums.iter_mut().zip(w) {
            for (&wv, &xv) in wr.iter().zip(x).skip(done) {
                *t += wv * xv;
            }
        }
    }
    sums
}

/// `y[o][:] = b[o] + Σ_i w[o][i] · x[i][:]` for `n_out` outputs: the plain (unblocked)
/// kernel, kept as the scalar baseline of the benches and tests; the flow uses
/// [`forward_act`].
///
/// Slices must hold `w: n_out·n_in`, `b: n_out`, `x: n_in·TILE`, `y: n_out·TILE` (callers
/// guarantee this; extra elements are ignored).
#[inline]
pub fn forward<T: Real>(w: &[T], b: &[T], x: &[T], y: &mut [T], n_in: usize) {
    if n_in == 0 {
        return;
    }
    // Four outputs at a time: each loaded x row feeds four accumulators.
    let mut w_rows = w.chunks_exact(4 * n_in);
    let mut y_rows = y.chunks_exact_mut(4 * TILE);
    let mut b_quads = b.chunks_exact(4);
    for ((w4, y4), b4) in (&mut w_rows).zip(&mut y_rows).zip(&mut b_quads) {
        let mut acc = [[T::ZERO; TILE]; 4];
        for (a, &bias) in acc.iter_mut().zip(b4) {
            *a = [bias; TILE];
        }
        let (w0, rest) = w4.split_at(n_in);
        let (w1, rest) = rest.split_at(n_in);
        let (w2, w3) = rest.split_at(n_in);
        for ((((xr, &a0), &a1), &a2), &a3) in x.chunks_exact(TILE).zip(w0).zip(w1).zip(w2).zip(w3) {
            for s in 0..TILE.min(xr.len()) {
                let xv = xr[s];
                acc[0][s] += a0 * xv;
                acc[1][s] += a1 * xv;
                acc[2][s] += a2 * xv;
                acc[3][s] += a3 * xv;
            }
        }
        for (yr, a) in y4.chunks_exact_mut(TILE).zip(&acc) {
            yr.copy_from_slice(a);
        }
    }
    // Remaining outputs one at a time.
    let w_tail = w_rows.remainder();
    let y_tail = y_rows.into_remainder();
    for ((yr, wr), &bias) in y_tail
        .chunks_exact_mut(TILE)
        .zip(w_tail.chunks_exact(n_in))
        .zip(b_quads.remainder())
    {
        let mut acc = [bias; TILE];
        for (xr, &wv) in x.chunks_exact(TILE).zip(wr) {
            for (a, &xv) in acc.iter_mut().zip(xr) {
                *a += wv * xv;
            }
        }
        yr.copy_from_slice(&acc);
    }
}

/// Backward pass of [`forward`] for one tile (the plain kernel; the flow uses
/// [`backward_input`] and [`backward_params`]), given `gy = ∂loss/∂y` (`n_out·TILE`):
/// accumulates `gw[o][i] += Σ_lanes gy[o]·x[i]` and `gb[o] += Σ_lanes gy[o]`, and, when `gx` is
/// given, writes `gx[i][:] = Σ_o w[o][i] · gy[o][:]`.
#[inline]
pub fn backward<T: Real>(
    w: &[T],
    x: &[T],
    gy: &[T],
    gw: &mut [T],
    gb: &mut [T],
    gx: Option<&mut [T]>,
    n_in: usize,
) {
    if n_in == 0 {
        return;
    }
    for ((gyr, gwr), gbo) in gy
        .chunks_exact(TILE)
        .zip(gw.chunks_exact_mut(n_in))
        .zip(gb.iter_mut())
    {
        let mut bsum = [T::ZERO; TILE];
        for (b, &g) in bsum.iter_mut().zip(gyr) {
            *b += g;
        }
        *gbo += lane_sum(&bsum);
        for (xr, gwv) in x.chunks_exact(TILE).zip(gwr.iter_mut()) {
            let mut prod = [T::ZERO; TILE];
            for ((p, &g), &xv) in prod.iter_mut().zip(gyr).zip(xr) {
                *p = g * xv;
            }
            *gwv += lane_sum(&prod);
        }
    }
    if let Some(gx) = gx {
        gx.iter_mut().take(n_in * TILE).for_each(|v| *v = T::ZERO);
        for (gyr, wr) in gy.chunks_exact(TILE).zip(w.chunks_exact(n_in)) {
            for (gxr, &wv) in gx.chunks_exact_mut(TILE).zip(wr) {
                for (g, &d) in gxr.iter_mut().zip(gyr) {
                    *g += wv * d;
                }
            }
        }
    }
}

/// Sum of the lanes of a tile row by pairwise halving (vectorises, and is more accurate than
/// a running sum).
#[inline(always)]
pub fn lane_sum<T: Real>(v: &[T; TILE]) -> T {
    let mut h = [T::ZERO; TILE];
    h.copy_from_slice(v);
    let mut width = TILE / 2;
    while width > 0 {
        for s in 0..width {
            h[s] += h[s + width];
        }
        width /= 2;
    }
    h[0]
}
