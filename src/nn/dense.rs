//! A dense layer `y = W x + b` applied to one tile.
//!
//! Weights are stored `[out][in]` row-major (torch's `nn.Linear` layout), bias `[out]`. The
//! tile holds activations feature-major, `x[i][lane]`, so the innermost loops run over the
//! [`TILE`] lanes with a scalar weight broadcast: fixed-length, bounds-check free, vectorised
//! by LLVM at any target.

use crate::real::Real;
use crate::shape::TILE;

/// `y[o][:] = b[o] + Σ_i w[o][i] · x[i][:]` for `n_out` outputs.
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

/// Backward pass of [`forward`] for one tile, given `gy = ∂loss/∂y` (`n_out·TILE`):
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
