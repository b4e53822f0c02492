//! The outer maps between the couplings and θ, both optional and never trained
//! ([`Shape::affine`], [`Shape::bounded`]):
//!
//! ```text
//! couplings' output u ──affine──▶ y = μ + L·u ──box──▶ θ in (lo, hi)
//! ```
//!
//! - **Affine standardisation.** L lower-triangular with a positive diagonal (a Cholesky
//!   factor), log|det ∂y/∂u| = Σ ln Lᵢᵢ. The inverse is a forward substitution.
//! - **Box.** Per coordinate, the identity on the central three quarters of [lo, hi] and a
//!   Gaussian-CDF approach to each edge in the outer eighths (margin m = (hi − lo)/8,
//!   s = m·√(2/π), U = hi − m, L = lo + m):
//!
//!   ```text
//!   θ = hi − m·erfc((y − U)/(s√2))   for y > U
//!   θ = y                            for L ≤ y ≤ U
//!   θ = lo + m·erfc((L − y)/(s√2))   for y < L
//!   ```
//!
//!   continuous with its first derivative, with log|dθ/dy| = −x² in a margin (x the erfc
//!   argument). A posterior away from the edges is fitted exactly as without a box (a
//!   logistic map bends the whole box: 10× worse KL measured on the interior tasks), and a
//!   density that stays flat up to an edge becomes a Gaussian tail in y, which a Gaussian
//!   (mixture) base represents (an exponential approach would leave an exponential tail).
//!   The inverse solves erfc(x) = (distance to the nearer edge)/m by Newton's method on
//!   ln erfc (the distance is computed directly: full relative precision at both edges). A
//!   draw more than ≈ 6·s beyond U or L in f64 (≈ 3.9·s in f32) rounds onto the edge and is
//!   clamped to [lo, hi]. A point on the boundary or outside the open box has density 0:
//!   log q = −∞.
//!
//! Everything here is computed in f64 (also for f32 models: the logarithms of small
//! distances to an edge must not go through the fast f32 approximations).

use crate::real::Real;
use crate::shape::Shape;

const FRAC_2_SQRT_PI: f64 = core::f64::consts::FRAC_2_SQRT_PI;

/// The margin m and the erfc scale s·√2 of a box coordinate.
fn margin(lo: f64, hi: f64) -> (f64, f64) {
    let m = 0.125 * (hi - lo);
    // s·√2 = m·√(2/π)·√2 = 2m/√π.
    (m, m * FRAC_2_SQRT_PI)
}

/// x ≥ 0 with erfc(x) = r, for r in (0, 1]: Newton's method on ln erfc(x) − ln r (concave
/// and smooth), from x₀ = √(−ln r); at most 60 steps, to f64 rounding.
fn erfc_inv(r: f64) -> f64 {
    if !(r < 1.0) {
        return 0.0;
    }
    let target = libm::log(r);
    let mut x = libm::sqrt(-target);
    for _ in 0..60 {
        let e = libm::erfc(x);
        if !(e > 0.0) {
            x *= 0.5;
            continue;
        }
        // d/dx ln erfc(x) = −(2/√π) e^(−x²) / erfc(x).
        let slope = -FRAC_2_SQRT_PI * libm::exp(-x * x) / e;
        let step = (libm::log(e) - target) / slope;
        let next = (x - step).max(0.0);
        if libm::fabs(next - x) <= 1e-15 * x.max(1.0) {
            return next;
        }
        x = next;
    }
    x
}

/// The box map's inverse for one coordinate: y and log|dy/dθ| for θ inside the open
/// interval (lo, hi), `None` on or outside it (module docs for the map).
#[inline(never)]
pub(crate) fn box_inverse(t: f64, lo: f64, hi: f64) -> Option<(f64, f64)> {
    let (below, above) = (t - lo, hi - t);
    if !(below > 0.0 && above > 0.0) {
        return None;
    }
    let (m, scale) = margin(lo, hi);
    Some(if below < m {
        let x = erfc_inv(below / m);
        (lo + m - scale * x, x * x)
    } else if above < m {
        let x = erfc_inv(above / m);
        (hi - m + scale * x, x * x)
    } else {
        (t, 0.0)
    })
}

/// The box map for one coordinate: θ (clamped to [lo, hi]) and log|dθ/dy|.
#[inline(never)]
pub(crate) fn box_forward(y: f64, lo: f64, hi: f64) -> (f64, f64) {
    let (m, scale) = margin(lo, hi);
    let (t, ld) = if y < lo + m {
        let x = (lo + m - y) / scale;
        (lo + m * libm::erfc(x), -x * x)
    } else if y > hi - m {
        let x = (y - hi + m) / scale;
        (hi - m * libm::erfc(x), -x * x)
    } else {
        (y, 0.0)
    };
    (t.max(lo).min(hi), ld)
}

/// Index of Lᵢⱼ (j ≤ i) in the packed row-by-row triangle.
const fn tri(i: usize, j: usize) -> usize {
    i * (i + 1) / 2 + j
}

/// `true` when the outer parameters (`tail`: the affine map's, then the box's, as laid out
/// by `shape`) describe valid maps in `T`: a positive finite diagonal of L, and lo < hi with
/// a finite width. `get(i)` reads tail element i.
pub(crate) fn valid<T: Real>(shape: &Shape, get: impl Fn(usize) -> T) -> bool {
    if !cfg!(feature = "outer-maps") {
        return !(shape.affine || shape.bounded);
    }
    let d = shape.dim;
    if shape.affine {
        for i in 0..d {
            let l = get(d + tri(i, i)).to_f64();
            if !(l > 0.0 && l.is_finite()) {
                return false;
            }
        }
    }
    if shape.bounded {
        let at = shape.affine_param_len();
        for i in 0..d {
            let (lo, hi) = (get(at + i), get(at + d + i));
            let w = (hi - lo).to_f64();
            if !(hi > lo) || !w.is_finite() || !(hi.to_f64() - lo.to_f64()).is_finite() {
                return false;
            }
        }
    }
    true
}

/// A view of the outer maps' parameters.
#[derive(Clone, Copy)]
pub(crate) struct Outer<'p, T> {
    dim: usize,
    affine: Option<(&'p [T], &'p [T])>,
    bounds: Option<(&'p [T], &'p [T])>,
}

impl<'p, T: Real> Outer<'p, T> {
    /// The maps of `shape` over its parameter tail (`tail`: everything after the base).
    pub(crate) fn new(shape: &Shape, tail: &'p [T]) -> Self {
        let d = shape.dim;
        let (aff, rest) = tail.split_at(shape.affine_param_len().min(tail.len()));
        let affine = if shape.affine {
            let (mu, l) = aff.split_at(d.min(aff.len()));
            Some((mu, l))
        } else {
            None
        };
        let bounds = if shape.bounded && rest.len() >= 2 * d {
            Some((&rest[..d], &rest[d..2 * d]))
        } else {
            None
        };
        Outer {
            dim: d,
            affine,
            bounds,
        }
    }

    /// `true` when there is no outer map (θ is the couplings' output). Always without the
    /// `outer-maps` feature (such shapes are refused at the door), so the maps' code is
    /// compiled out.
    pub(crate) fn is_identity(&self) -> bool {
        !cfg!(feature = "outer-maps") || (self.affine.is_none() && self.bounds.is_none())
    }

    /// `true` when θ (one row of D values) lies inside the open box (always, without a box).
    pub(crate) fn inside(&self, row: &[T]) -> bool {
        if self.is_identity() {
            return true;
        }
        match self.bounds {
            None => true,
            Some((lo, hi)) => row
                .iter()
                .zip(lo.iter().zip(hi))
                .all(|(&v, (&a, &b))| v > a && v < b),
        }
    }

    /// θ → u in place on lanes `0..lanes` of a feature-major block (`state[i·stride + lane]`),
    /// adding log|det ∂u/∂θ| to `log_det[lane]`. A lane outside the open box is marked in
    /// `outside` and mapped from y = 0 (its density is −∞; the caller overrides it).
    #[inline(never)]
    pub(crate) fn inverse(
        &self,
        state: &mut [T],
        stride: usize,
        lanes: usize,
        log_det: &mut [T],
        outside: &mut [bool],
    ) {
        let d = self.dim;
        for lane in 0..lanes.min(log_det.len()).min(outside.len()) {
            let at = |i: usize| i * stride + lane;
            let mut ld = 0.0;
            if let Some((lo, hi)) = self.bounds {
                for i in 0..d {
                    let t = state[at(i)].to_f64();
                    let (a, b) = (lo[i].to_f64(), hi[i].to_f64());
                    let y = match box_inverse(t, a, b) {
                        Some((y, l)) => {
                            ld += l;
                            y
                        }
                        None => {
                            outside[lane] = true;
                            0.5 * (a + b)
                        }
                    };
                    state[at(i)] = T::from_f64(y);
                }
            }
            if let Some((mu, l)) = self.affine {
                for i in 0..d {
                    let mut r = state[at(i)].to_f64() - mu[i].to_f64();
                    for j in 0..i {
                        r -= l[tri(i, j)].to_f64() * state[at(j)].to_f64();
                    }
                    let lii = l[tri(i, i)].to_f64();
                    state[at(i)] = T::from_f64(r / lii);
                    ld -= libm::log(lii);
                }
            }
            log_det[lane] += T::from_f64(ld);
        }
    }

    /// u → θ in place (the layout of [`inverse`](Self::inverse)), adding log|det ∂θ/∂u|.
    #[inline(never)]
    pub(crate) fn forward(&self, state: &mut [T], stride: usize, lanes: usize, log_det: &mut [T]) {
        let d = self.dim;
        for lane in 0..lanes.min(log_det.len()) {
            let at = |i: usize| i * stride + lane;
            let mut ld = 0.0;
            if let Some((mu, l)) = self.affine {
                // y_i uses u_j for j ≤ i: fill from the last row down, in place.
                for i in (0..d).rev() {
                    let mut y = mu[i].to_f64();
                    for j in 0..=i {
                        y += l[tri(i, j)].to_f64() * state[at(j)].to_f64();
                    }
                    ld += libm::log(l[tri(i, i)].to_f64());
                    state[at(i)] = T::from_f64(y);
                }
            }
            if let Some((lo, hi)) = self.bounds {
                for i in 0..d {
                    let (t, l) = box_forward(state[at(i)].to_f64(), lo[i].to_f64(), hi[i].to_f64());
                    ld += l;
                    // Rounding to T may step past an edge: keep the draw in the box.
                    state[at(i)] = T::from_f64(t).max(lo[i]).min(hi[i]);
                }
            }
            log_det[lane] += T::from_f64(ld);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erfc_inv_inverts_erfc() {
        for &r in &[1.0, 0.999, 0.7, 0.3, 1e-3, 1e-9, 1e-20, 1e-100, 1e-300] {
            let x = erfc_inv(r);
            let back = libm::erfc(x);
            assert!((back - r).abs() <= 1e-13 * r, "r {r}: erfc({x}) = {back}");
        }
    }

    /// Round trip, continuity at the margins' joins, and log|dθ/dy| against central
    /// differences of the map itself.
    #[test]
    fn box_map_round_trip_and_log_det() {
        let (lo, hi) = (-2.0, 6.0);
        let m = 1.0;
        // Out to five erfc scales beyond each join (θ then lies ≈ 1e-12·m from the edge).
        let reach = 5.0 * 2.0 * m / core::f64::consts::PI.sqrt();
        let mut y = lo + m - reach;
        while y < hi - m + reach {
            let (t, ld) = box_forward(y, lo, hi);
            assert!(t > lo && t < hi, "y {y}: θ {t}");
            let (back, ild) = box_inverse(t, lo, hi).unwrap();
            // θ → y → θ is well conditioned everywhere; y → θ → y only while θ keeps many
            // digits of its distance to the edge (within three erfc scales of a join).
            let (t2, _) = box_forward(back, lo, hi);
            assert!(
                (t2 - t).abs() <= 4.0 * f64::EPSILON * t.abs().max(1.0),
                "y {y}"
            );
            if y > lo + m - 0.6 * reach && y < hi - m + 0.6 * reach {
                assert!((back - y).abs() < 1e-9 * y.abs().max(1.0), "y {y}: {back}");
                assert!((ld + ild).abs() < 1e-9, "y {y}: {ld} {ild}");
                let h = 1e-6;
                let fd = (box_forward(y + h, lo, hi).0 - box_forward(y - h, lo, hi).0) / (2.0 * h);
                assert!(
                    (libm::log(fd) - ld).abs() < 1e-5,
                    "y {y}: {} vs {ld}",
                    libm::log(fd)
                );
            }
            y += 0.0137;
        }
        // The joins: identity on [lo + m, hi − m], slope 1 on both sides.
        for join in [lo + m, hi - m] {
            for dy in [-1e-7, 1e-7] {
                let (t, ld) = box_forward(join + dy, lo, hi);
                assert!((t - join - dy).abs() < 1e-12 && ld.abs() < 1e-12);
            }
        }
        assert_eq!(box_inverse(lo, lo, hi), None);
        assert_eq!(box_inverse(hi, lo, hi), None);
        assert_eq!(box_inverse(f64::NAN, lo, hi), None);
        assert_eq!(box_forward(-1e6, lo, hi).0, lo);
        assert_eq!(box_forward(1e6, lo, hi).0, hi);
    }
}
