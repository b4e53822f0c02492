//! Sums over the lanes of tile rows: folds, lane dot products, transposes.

use crate::real::Real;
use crate::shape::TILE;

/// The first `TILE` elements of `r` as an array.
#[inline(always)]
pub(super) fn as_row<T>(r: &[T]) -> Option<&[T; TILE]> {
    r.try_into().ok()
}

/// Lanes of the folded rows of the lane dot products.
pub(super) const FOLD: usize = 16;
const _: () = assert!(TILE % FOLD == 0, "TILE must be a multiple of 16");

/// Folds a tile row to `FOLD` lanes (adding its chunks), times `b` if given.
#[inline(always)]
pub(super) fn fold_row<T: Real>(a: &[T; TILE], b: Option<&[T; TILE]>) -> [T; FOLD] {
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
pub(super) fn lane_dots4<T: Real>(a: [&[T; TILE]; 4], b: Option<[&[T; TILE]; 4]>) -> [T; 4] {
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
pub(super) fn lane_dot<T: Real>(a: &[T; TILE], b: &[T; TILE]) -> T {
    halve16(fold_row(a, Some(b)))
}

/// Four consecutive tile rows of `rows` (`4·TILE` elements).
#[inline(always)]
pub(super) fn rows4<T>(rows: &[T]) -> Option<[&[T; TILE]; 4]> {
    Some([
        as_row(rows.get(..TILE)?)?,
        as_row(rows.get(TILE..2 * TILE)?)?,
        as_row(rows.get(2 * TILE..3 * TILE)?)?,
        as_row(rows.get(3 * TILE..4 * TILE)?)?,
    ])
}

/// Transposes one `TILE × TILE` block (`[row][lane]` → `[lane][row]`).
#[inline(always)]
pub(super) fn transpose_block<T: Real>(x: &[T], x_t: &mut [T]) {
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

/// `acc[s] += Σ_j rows[j][s]` over the `TILE`-long rows of `rows` (in row order): the bias
/// gradient of a block of outputs from its sample-major copy.
#[inline(always)]
pub(super) fn row_sums_into<T: Real>(rows: &[T], acc: &mut [T]) {
    let Some(acc) = <&mut [T; TILE]>::try_from(acc).ok() else {
        return;
    };
    let mut sum = [T::ZERO; TILE];
    for r in rows.chunks_exact(TILE) {
        for s in 0..TILE {
            sum[s] += r[s];
        }
    }
    for s in 0..TILE {
        acc[s] += sum[s];
    }
}

/// Sum of 16 values by halving (16 → 8 → 4 → 2 → 1).
#[inline(always)]
pub(super) fn halve16<T: Real>(v: [T; FOLD]) -> T {
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

/// Sum of the lanes of a tile row by pairwise halving (vectorises, and is more accurate than
/// a running sum).
#[inline(always)]
pub(crate) fn lane_sum<T: Real>(v: &[T; TILE]) -> T {
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
