//! The single-sample kernels of [`forward_one`](super::forward_one): register blocks of
//! outputs accumulated as the weight rows stream past, and per-output sums for few outputs.

use super::madd::MulAdd;
use crate::real::Real;

/// Outputs below which [`forward_one`] sums per output.
pub(super) const SMALL_OUT: usize = 8;

/// `yb = bb + Σ_i x[i] · w[i][o0..o0+B]` with two partial sums (even and odd inputs).
// Same shape as nn/dense/tile.rs forward_block! and nn/dense/one.rs::small_out_block
// (duplicates): the register-block kernels take the same (w, bb, x, yb, n_out, o0) arguments;
// one sample versus a tile, B outputs versus fewer than eight, so the loops differ.
#[inline(always)]
pub(super) fn axpy_block<T: Real, M: MulAdd, const B: usize>(
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
            even[k] = M::mul_add(r0[k], x0, even[k]);
            odd[k] = M::mul_add(r1[k], x1, odd[k]);
        }
    }
    // An odd last input.
    if let (Some(&x0), Some(r0)) = (
        xs.remainder().first(),
        row_block::<T, B>(pairs.remainder(), o0),
    ) {
        for k in 0..B {
            even[k] = M::mul_add(r0[k], x0, even[k]);
        }
    }
    for (((yo, &bias), &e), &o) in yb.iter_mut().zip(bb).zip(&even).zip(&odd) {
        *yo = bias + (e + o);
    }
}

/// `row[o0..o0+B]` as an array.
#[inline(always)]
pub(super) fn row_block<T, const B: usize>(row: &[T], o0: usize) -> Option<&[T; B]> {
    row.get(o0..o0 + B).and_then(|r| r.try_into().ok())
}

/// [`forward_one`] for `N` outputs (the output layer's 2⌊D/2⌋ for D < 8): sixteen inputs'
/// rows are `L = 16·N` contiguous weights, multiplied lane by lane with the inputs each
/// repeated `N` times; the `L` partial sums are folded in halves down to `N` (each half a
/// multiple of `N` long, so lane `j` always holds output `j mod N`).
#[inline(always)]
pub(super) fn few_out<T: Real, M: MulAdd, const N: usize, const L: usize>(
    w: &[T],
    b: &[T],
    x: &[T],
    y: &mut [T],
) {
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
            acc[j] = M::mul_add(wc[j], xc[j / N], acc[j]);
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
            v = M::mul_add(row.get(k).copied().unwrap_or(T::ZERO), xv, v);
        }
        *yo = b.get(k).copied().unwrap_or(T::ZERO) + v;
    }
}

/// `yb = bb + Σ_i x[i] · w[i][o0..o0+len]` for `len = yb.len() < 8` outputs, four partial
/// sums (inputs `i mod 4`) per output.
#[inline(always)]
pub(super) fn small_out_block<T: Real, M: MulAdd>(
    w: &[T],
    bb: &[T],
    x: &[T],
    yb: &mut [T],
    n_out: usize,
    o0: usize,
) {
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
                *a = M::mul_add(wv, xv, *a);
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
            *a = M::mul_add(wv, xv, *a);
        }
    }
    for (k, (yo, &bias)) in yb.iter_mut().zip(bb).take(len).enumerate() {
        *yo = bias + ((part[0][k] + part[1][k]) + (part[2][k] + part[3][k]));
    }
}
