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
                *d = activation::relu(a);
            }
        }
        Some(Activation::Tanh) => {
            for (d, &a) in dst.iter_mut().zip(acc) {
                *d = activation::tanh(a);
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
                dst[s] = activation::relu_backward(acc[s], out[s]);
            }
        }
        Some((Activation::Tanh, Some(out))) => {
            for s in 0..TILE {
                dst[s] = activation::tanh_backward(acc[s], out[s]);
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

/// `acc[k][s] += row_k[j] · stream[j][s]` over the rows `j` of `stream` (`TILE` lanes each),
/// where `row_k` is the `k`-th run of `$width` elements of `$rows`, bound to `$w`: the inner
/// loop of the input-gradient and weight-gradient blocks. One zipped iterator over the stream
/// and every row (a single loop exit: with separate `next()`s LLVM vectorises this loop
/// instead of the lanes).
macro_rules! accumulate_rows {
    ($acc:ident; $rows:expr, $width:expr; $stream:expr; $($w:ident $k:literal),+) => {
        let mut rest = $rows;
        $(
            let ($w, r) = rest.split_at(($width).min(rest.len()));
            rest = r;
        )+
        let _ = rest;
        zipped_for!(@ gr, $stream.chunks_exact(TILE); $($w)+; {
            for s in 0..TILE.min(gr.len()) {
                let g = gr[s];
                $( $acc[$k][s] += $w * g; )+
            }
        });
    };
}

/// Forward kernel for a block of `MR` consecutive outputs `o0..o0+MR`: each input row `i`
/// meets the block's `MR` weights `w[i][o0..o0+MR]` (contiguous). `$a` name the accumulators
/// (separate arrays: an indexed array of them was kept on the stack and reloaded through a
/// store-forwarding stall), `$k` their offsets.
macro_rules! forward_block {
    ([$(#[$attr:meta])*] $name:ident; $($a:ident $k:literal),+) => {
        /// One block of outputs starting at `o0` (`bb`: its biases, `yb`: its rows).
        #[inline(never)]
        $(#[$attr])*
        fn $name<T: Real>(
            w: &[T],
            bb: &[T],
            x: &[T],
            yb: &mut [T],
            n_out: usize,
            o0: usize,
            act: Option<Activation>,
        ) {
            const MR: usize = [$($k),+].len();
            $( let mut $a = [bb.get($k).copied().unwrap_or(T::ZERO); TILE]; )+
            for (xr, wr) in x.chunks_exact(TILE).zip(w.chunks_exact(n_out)) {
                let wm: Option<&[T; MR]> = wr.get(o0..o0 + MR).and_then(|r| r.try_into().ok());
                let Some(wm) = wm else { break };
                // `TILE.min(len)` rather than `TILE` keeps the lane loop the vectorised one.
                for s in 0..TILE.min(xr.len()) {
                    let xv = xr[s];
                    $( $a[s] += wm[$k] * xv; )+
                }
            }
            let mut rows = yb.chunks_exact_mut(TILE);
            $(
                if let Some(yr) = rows.next() {
                    store_row(yr, &$a, act);
                }
            )+
        }
    };
}

/// Input-gradient kernel for a block of inputs: `$w` names the block's weight rows (one row of
/// `n_out` per input, contiguous), `$k` their index.
macro_rules! input_block {
    ($name:ident; $($w:ident $k:literal),+) => {
        /// One block of inputs starting at `i0` (`wb`: the block's weight rows, `gxb`: its
        /// gradient rows; `out`: the rows of the activation that produced the inputs).
        #[inline(always)]
        fn $name<T: Real>(
            wb: &[T],
            gy: &[T],
            gxb: &mut [T],
            n_out: usize,
            i0: usize,
            act: Option<(Activation, &[T])>,
        ) {
            const MR: usize = [$($k),+].len();
            let mut acc = [[T::ZERO; TILE]; MR];
            accumulate_rows!(acc; wb, n_out; gy; $($w $k),+);
            let mut rows = gxb.chunks_exact_mut(TILE);
            $(
                if let Some(gr) = rows.next() {
                    let act_k = act.map(|(kind, out)| {
                        let row = out.get((i0 + $k) * TILE..(i0 + $k + 1) * TILE);
                        (kind, row.and_then(as_row))
                    });
                    store_grad_row(gr, &acc[$k], act_k);
                }
            )+
        }
    };
}

input_block!(input_8; w0 0, w1 1, w2 2, w3 3, w4 4, w5 5, w6 6, w7 7);
input_block!(input_4; w0 0, w1 1, w2 2, w3 3);
input_block!(input_2; w0 0, w1 1);
input_block!(input_1; w0 0);

/// The register block for `left` remaining rows: the kernel set's `block`, or less at the end.
#[inline(always)]
fn block_left(block: usize, left: usize) -> usize {
    block.min(if left >= 8 {
        8
    } else if left >= 4 {
        4
    } else if left >= 2 {
        2
    } else {
        1
    })
}

/// Weight-gradient kernel for a block of inputs and one block of `TILE` outputs: `$x` names
/// the input rows, `$k` their index. `gy_t` is the output block sample-major (`TILE × TILE`),
/// `gwb` the block's gradient rows (row `k` at `k·n_out + o0`).
macro_rules! params_block {
    ($name:ident; $($x:ident $k:literal),+) => {
        #[inline(always)]
        fn $name<T: Real>(xb: &[T], gy_t: &[T], gwb: &mut [T], n_out: usize, o0: usize) {
            const MR: usize = [$($k),+].len();
            // Constant indices only, so the accumulators never leave the registers.
            let mut acc = [[T::ZERO; TILE]; MR];
            $(
                if let Some(src) = gwb.get($k * n_out + o0..$k * n_out + o0 + TILE) {
                    acc[$k].copy_from_slice(src);
                }
            )+
            accumulate_rows!(acc; xb, TILE; gy_t; $($x $k),+);
            $(
                if let Some(dst) = gwb.get_mut($k * n_out + o0..$k * n_out + o0 + TILE) {
                    dst.copy_from_slice(&acc[$k]);
                }
            )+
        }
    };
}

params_block!(params_8; x0 0, x1 1, x2 2, x3 3, x4 4, x5 5, x6 6, x7 7);
params_block!(params_4; x0 0, x1 1, x2 2, x3 3);
params_block!(params_2; x0 0, x1 1);
params_block!(params_1; x0 0);

/// `gw[i][o] += Σ_lanes x[i]·gy[o]` for the outputs `o ≥ from` by lane dot products, four per
/// transposing tree: four inputs of one output when the inputs are many, else four outputs of
/// one input.
#[inline(always)]
fn narrow_params<T: Real>(x: &[T], gy: &[T], gw: &mut [T], n_out: usize, from: usize) {
    let n_in = x.len() / TILE;
    let gy_rows = gy.get(from * TILE..n_out * TILE).unwrap_or(&[]);
    if n_in >= 4 {
        for (c, gr) in gy_rows.chunks_exact(TILE).enumerate() {
            let Some(g) = as_row(gr) else { break };
            let o = from + c;
            let mut x4 = x.chunks_exact(4 * TILE);
            let mut i = 0;
            for xs in &mut x4 {
                if let Some(r) = rows4(xs) {
                    let d = lane_dots4(r, Some([g, g, g, g]));
                    for (k, dv) in d.into_iter().enumerate() {
                        if let Some(v) = gw.get_mut((i + k) * n_out + o) {
                            *v += dv;
                        }
                    }
                }
                i += 4;
            }
            for (k, xr) in x4.remainder().chunks_exact(TILE).enumerate() {
                if let (Some(xr), Some(v)) = (as_row(xr), gw.get_mut((i + k) * n_out + o)) {
                    *v += lane_dot(xr, g);
                }
            }
        }
    } else {
        for (xr, gwr) in x.chunks_exact(TILE).zip(gw.chunks_exact_mut(n_out)) {
            let Some(xr) = as_row(xr) else { break };
            let gwr = gwr.get_mut(from..).unwrap_or(&mut []);
            let mut g4 = gwr.chunks_exact_mut(4);
            let mut y4 = gy_rows.chunks_exact(4 * TILE);
            for (gv, ys) in (&mut g4).zip(&mut y4) {
                if let Some(r) = rows4(ys) {
                    for (v, dv) in gv.iter_mut().zip(lane_dots4([xr, xr, xr, xr], Some(r))) {
                        *v += dv;
                    }
                }
            }
            for (v, yr) in g4
                .into_remainder()
                .iter_mut()
                .zip(y4.remainder().chunks_exact(TILE))
            {
                if let Some(yr) = as_row(yr) {
                    *v += lane_dot(xr, yr);
                }
            }
        }
    }
}

/// Lanes of the folded rows of the lane dot products.
const FOLD: usize = 16;
const _: () = assert!(TILE % FOLD == 0, "TILE must be a multiple of 16");

/// Folds a tile row to `FOLD` lanes (adding its chunks), times `b` if given.
#[inline(always)]
fn fold_row<T: Real>(a: &[T; TILE], b: Option<&[T; TILE]>) -> [T; FOLD] {
    let mut f = [T::ZERO; FOLD];
    match b {
        None => {
            for c in a.chunks_exact(FOLD) {
                for s in 0..FOLD.min(c.len()) {
                    f[s] += c[s];
                }
            }
        }
        Some(b) => {
            for (c, d) in a.chunks_exact(FOLD).zip(b.chunks_exact(FOLD)) {
                for s in 0..FOLD.min(c.len()) {
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
    [halve16(f[0]), halve16(f[1]), halve16(f[2]), halve16(f[3])]
}

/// `Σ_lanes a · b` for one pair of rows.
#[inline(always)]
fn lane_dot<T: Real>(a: &[T; TILE], b: &[T; TILE]) -> T {
    halve16(fold_row(a, Some(b)))
}

/// Four consecutive tile rows of `rows` (`4·TILE` elements).
#[inline(always)]
fn rows4<T>(rows: &[T]) -> Option<[&[T; TILE]; 4]> {
    Some([
        as_row(rows.get(..TILE)?)?,
        as_row(rows.get(TILE..2 * TILE)?)?,
        as_row(rows.get(2 * TILE..3 * TILE)?)?,
        as_row(rows.get(3 * TILE..4 * TILE)?)?,
    ])
}

/// Transposes one `TILE × TILE` block (`[row][lane]` → `[lane][row]`).
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

/// Sum of 16 values by halving (16 → 8 → 4 → 2 → 1).
#[inline(always)]
fn halve16<T: Real>(v: [T; FOLD]) -> T {
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
    ($m:ident, $vec_bytes:expr, $regs:expr, [$(#[$attr:meta])*]) => {
        mod $m {
            use super::*;

            const VEC_BYTES: usize = $vec_bytes;
            const REGS: usize = $regs;

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
                    8 => forward_8(w, bb, x, yb, n_out, o0, act),
                    4 => forward_4(w, bb, x, yb, n_out, o0, act),
                    2 => forward_2(w, bb, x, yb, n_out, o0, act),
                    _ => forward_1(w, bb, x, yb, n_out, o0, act),
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
                    8 => input_8(wb, gy, gxb, n_out, i0, act),
                    4 => input_4(wb, gy, gxb, n_out, i0, act),
                    2 => input_2(wb, gy, gxb, n_out, i0, act),
                    _ => input_1(wb, gy, gxb, n_out, i0, act),
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
            // Bias gradient: row sums, four rows per transposing tree.
            {
                let mut g4 = gb.chunks_exact_mut(4);
                let mut y4 = gy.chunks_exact(4 * TILE);
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
            // Outputs in whole blocks of TILE go through the sample-major product when there are
            // enough inputs to pay for the transposition; the rest (the output layer's two outputs,
            // the one conditioning input of D = 2) by lane dot products.
            let gy_t = gy_t.get_mut(..TILE * TILE);
            let wide = match gy_t {
                Some(_) if n_in >= 8 => n_out / TILE * TILE,
                _ => 0,
            };
            if let Some(gy_t) = gy_t {
                for (c, gyb) in gy.chunks_exact(TILE * TILE).take(wide / TILE).enumerate() {
                    transpose_block(gyb, gy_t);
                    let o0 = c * TILE;
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
                            8 => params_8(xb, gy_t, gwb, n_out, o0),
                            4 => params_4(xb, gy_t, gwb, n_out, o0),
                            2 => params_2(xb, gy_t, gwb, n_out, o0),
                            _ => params_1(xb, gy_t, gwb, n_out, o0),
                        }
                        i0 += mr;
                    }
                }
            }
            if wide < n_out {
                narrow_params(x, gy, gw, n_out, wide);
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
                    2 => few_out::<T, 2, 32>(w, b, x, y),
                    4 => few_out::<T, 4, 64>(w, b, x, y),
                    6 => few_out::<T, 6, 96>(w, b, x, y),
                    _ => small_out_block(w, b, x, y, n_out, 0),
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
                        64 => axpy_block::<T, 64>(w, bb, x, yb, n_out, o0),
                        32 => axpy_block::<T, 32>(w, bb, x, yb, n_out, o0),
                        16 => axpy_block::<T, 16>(w, bb, x, yb, n_out, o0),
                        8 => axpy_block::<T, 8>(w, bb, x, yb, n_out, o0),
                        _ => small_out_block(w, bb, x, yb, n_out, o0),
                    }
                    o0 += bw;
                }
            }
            activation::apply(act, y);
        }
        }
    };
}

kernel_set!(portable, vector_registers().0, vector_registers().1, []);
#[cfg(all(target_arch = "x86_64", not(feature = "portable-kernels")))]
kernel_set!(avx2, 32, 16, [#[target_feature(enable = "avx2")]]);
#[cfg(all(target_arch = "x86_64", not(feature = "portable-kernels")))]
kernel_set!(
    avx512,
    64,
    32,
    [#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq")]]
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
// Same shape as nn/dense.rs kernel_set!'s forward_act, backward_input, backward_params and
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

/// Outputs below which [`forward_one`] sums per output.
const SMALL_OUT: usize = 8;

/// `yb = bb + Σ_i x[i] · w[i][o0..o0+B]` with two partial sums (even and odd inputs).
#[inline(always)]
fn axpy_block<T: Real, const B: usize>(
    w: &[T],
    bb: &[T],
    x: &[T],
    yb: &mut [T],
    n_out: usize,
    o0: usize,
) {
    let mut even = [T::ZERO; B];
    let mut odd = [T::ZERO; B];
    let mut pairs = w.chunks_exact(2 * n_out);
    let mut xs = x.chunks_exact(2);
    for (xv, rows) in (&mut xs).zip(&mut pairs) {
        let (r0, r1) = rows.split_at(n_out);
        let (Some(r0), Some(r1)) = (row_block::<T, B>(r0, o0), row_block::<T, B>(r1, o0)) else {
            return;
        };
        let (x0, x1) = (xv[0], xv[1]);
        for k in 0..B {
            even[k] += r0[k] * x0;
            odd[k] += r1[k] * x1;
        }
    }
    // An odd last input.
    if let (Some(&x0), Some(r0)) = (
        xs.remainder().first(),
        row_block::<T, B>(pairs.remainder(), o0),
    ) {
        for k in 0..B {
            even[k] += r0[k] * x0;
        }
    }
    for (((yo, &bias), &e), &o) in yb.iter_mut().zip(bb).zip(&even).zip(&odd) {
        *yo = bias + (e + o);
    }
}

/// `row[o0..o0+B]` as an array.
#[inline(always)]
fn row_block<T, const B: usize>(row: &[T], o0: usize) -> Option<&[T; B]> {
    row.get(o0..o0 + B).and_then(|r| r.try_into().ok())
}

/// [`forward_one`] for `N` outputs (the output layer's 2⌊D/2⌋ for D < 8): sixteen inputs'
/// rows are `L = 16·N` contiguous weights, multiplied lane by lane with the inputs each
/// repeated `N` times; the `L` partial sums are folded in halves down to `N` (each half a
/// multiple of `N` long, so lane `j` always holds output `j mod N`).
#[inline(always)]
fn few_out<T: Real, const N: usize, const L: usize>(w: &[T], b: &[T], x: &[T], y: &mut [T]) {
    const CHUNK: usize = 16;
    const { assert!(L == CHUNK * N, "L must be 16·N") };
    let mut acc = [T::ZERO; L];
    let mut xs = x.chunks_exact(CHUNK);
    let mut ws = w.chunks_exact(L);
    for (xc, wc) in (&mut xs).zip(&mut ws) {
        let (Some(xc), Some(wc)) = (
            <&[T; CHUNK]>::try_from(xc).ok(),
            <&[T; L]>::try_from(wc).ok(),
        ) else {
            return;
        };
        for j in 0..L {
            acc[j] += wc[j] * xc[j / N];
        }
    }
    let mut width = L;
    while width > N && (width / 2) % N == 0 {
        width /= 2;
        for j in 0..width {
            acc[j] += acc[j + width];
        }
    }
    // 16·N lanes fold to exactly N (`width == N`, so the strided sum below is one term: written
    // this way it compiled 11 % faster on the single sample than a plain `acc[k]`), plus the
    // inputs past the last whole chunk.
    for (k, yo) in y.iter_mut().take(N).enumerate() {
        let mut v = T::ZERO;
        for j in (k..width).step_by(N) {
            v += acc[j];
        }
        for (&xv, row) in xs.remainder().iter().zip(ws.remainder().chunks_exact(N)) {
            v += row.get(k).copied().unwrap_or(T::ZERO) * xv;
        }
        *yo = b.get(k).copied().unwrap_or(T::ZERO) + v;
    }
}

/// `yb = bb + Σ_i x[i] · w[i][o0..o0+len]` for `len = yb.len() < 8` outputs, four partial
/// sums (inputs `i mod 4`) per output.
#[inline(always)]
fn small_out_block<T: Real>(w: &[T], bb: &[T], x: &[T], yb: &mut [T], n_out: usize, o0: usize) {
    let len = yb.len().min(bb.len()).min(SMALL_OUT);
    let mut part = [[T::ZERO; SMALL_OUT]; 4];
    let mut xs = x.chunks_exact(4);
    let mut ws = w.chunks_exact(4 * n_out);
    for (xq, wq) in (&mut xs).zip(&mut ws) {
        for ((p, &xv), row) in part.iter_mut().zip(xq).zip(wq.chunks_exact(n_out)) {
            let Some(cols) = row.get(o0..o0 + len) else {
                return;
            };
            for (a, &wv) in p.iter_mut().zip(cols) {
                *a += wv * xv;
            }
        }
    }
    for (&xv, row) in xs
        .remainder()
        .iter()
        .zip(ws.remainder().chunks_exact(n_out))
    {
        let Some(cols) = row.get(o0..o0 + len) else {
            return;
        };
        for (a, &wv) in part[0].iter_mut().zip(cols) {
            *a += wv * xv;
        }
    }
    for (k, (yo, &bias)) in yb.iter_mut().zip(bb).take(len).enumerate() {
        *yo = bias + ((part[0][k] + part[1][k]) + (part[2][k] + part[3][k]));
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
