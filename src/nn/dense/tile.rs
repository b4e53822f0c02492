//! The tiled kernels' pieces: storing accumulator rows (activation fused), the
//! register-block macros the kernel sets expand, and the input- and weight-gradient blocks.

use super::lanes::*;
use super::madd::MulAdd;
use crate::nn::activation;
use crate::real::Real;
use crate::shape::{Activation, TILE};

/// Applies the activation to a finished accumulator row as it is stored.
#[inline(always)]
pub(super) fn store_row<T: Real>(dst: &mut [T], acc: &[T; TILE], act: Option<Activation>) {
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
pub(super) fn store_grad_row<T: Real>(
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
                $( $acc[$k][s] = M::mul_add($w, g, $acc[$k][s]); )+
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
        fn $name<T: Real, M: MulAdd>(
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
                    $( $a[s] = M::mul_add(wm[$k], xv, $a[s]); )+
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
        pub(super) fn $name<T: Real, M: MulAdd>(
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
pub(super) fn block_left(block: usize, left: usize) -> usize {
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
        pub(super) fn $name<T: Real, M: MulAdd>(
            xb: &[T],
            gy_t: &[T],
            gwb: &mut [T],
            n_out: usize,
            o0: usize,
        ) {
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

/// `gw[i][o] += Σ_lanes x[i]·gy[o]` for the outputs `o ≥ from` (fewer than `TILE`) when the
/// inputs come in whole blocks of `TILE`: each block of inputs is transposed to sample-major
/// (into `x_t`, `TILE × TILE`), and each output's gradients for the block's inputs accumulate
/// in one row over the samples, then are added to the strided column `gw[i0..][o]`.
#[inline(always)]
pub(super) fn narrow_params_t<T: Real, M: MulAdd>(
    x: &[T],
    gy: &[T],
    gw: &mut [T],
    n_out: usize,
    from: usize,
    x_t: &mut [T],
) {
    let gy_rows = gy.get(from * TILE..n_out * TILE).unwrap_or(&[]);
    for (c, xb) in x.chunks_exact(TILE * TILE).enumerate() {
        transpose_block(xb, x_t);
        let Some(gw_block) = gw.get_mut(c * TILE * n_out..(c + 1) * TILE * n_out) else {
            return;
        };
        for (k, gr) in gy_rows.chunks_exact(TILE).enumerate() {
            let mut acc = [T::ZERO; TILE];
            for (xr, &g) in x_t.chunks_exact(TILE).zip(gr) {
                for s in 0..TILE.min(xr.len()) {
                    acc[s] = M::mul_add(g, xr[s], acc[s]);
                }
            }
            for (row, &a) in gw_block.chunks_exact_mut(n_out).zip(&acc) {
                if let Some(v) = row.get_mut(from + k) {
                    *v += a;
                }
            }
        }
    }
}

/// `gw[i][o] += Σ_lanes x[i]·gy[o]` for the outputs `o ≥ from` by lane dot products, four per
/// transposing tree: four inputs of one output when the inputs are many, else four outputs of
/// one input.
#[inline(always)]
pub(super) fn narrow_params<T: Real>(x: &[T], gy: &[T], gw: &mut [T], n_out: usize, from: usize) {
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
