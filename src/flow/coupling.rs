//! One affine coupling layer (normflows' `AffineCouplingBlock` with channel split), on a tile.
//!
//! Split x = (a, b), a = x[..⌈D/2⌉] conditions, b = x[⌈D/2⌉..] is transformed; the conditioner
//! MLP gives p = MLP(a) with shift tⱼ = p[2j] and raw scale rⱼ = p[2j+1] (interleaved), and
//! sⱼ = clamp(rⱼ). Forward (sampling): b'ⱼ = bⱼ·e^{sⱼ} + tⱼ, log-det +Σ s. Inverse (density):
//! bⱼ = (b'ⱼ − tⱼ)·e^{−sⱼ}, log-det −Σ s.

use crate::nn::dense;
use crate::real::Real;
use crate::shape::{Shape, TILE};

/// The soft clamp s = c·tanh(r/c) (identity when c = 0) and its derivative ds/dr = 1 − (s/c)².
#[derive(Clone, Copy)]
pub(crate) struct Clamp<T> {
    bound: T,
    inv_bound: T,
}

impl<T: Real> Clamp<T> {
    pub(crate) fn new(shape: &Shape) -> Self {
        let bound = T::from_f64(shape.clamp as f64);
        let inv_bound = if shape.clamp > 0.0 {
            T::ONE / bound
        } else {
            T::ZERO
        };
        Clamp { bound, inv_bound }
    }

    #[inline(always)]
    pub(crate) fn apply(&self, raw: T) -> T {
        self.apply_with(raw, T::tanh_lanes)
    }

    /// [`apply`](Self::apply) for one value, through the scalar library `tanh` (shorter
    /// latency than the lane polynomial, which pays off on a single sample's serial chain;
    /// identical for f64, within rounding for f32).
    #[inline(always)]
    pub(crate) fn apply_one(&self, raw: T) -> T {
        self.apply_with(raw, T::tanh)
    }

    #[inline(always)]
    fn apply_with(&self, raw: T, tanh: impl Fn(T) -> T) -> T {
        if self.inv_bound > T::ZERO {
            self.bound * tanh(raw * self.inv_bound)
        } else {
            raw
        }
    }

    /// ds/dr expressed through s.
    #[inline(always)]
    pub(crate) fn derivative(&self, s: T) -> T {
        let q = s * self.inv_bound;
        T::ONE - q * q
    }
}

/// Offsets of the weights of each dense layer of a conditioner within its parameter block.
#[inline]
fn dense_offset(shape: &Shape, k: usize) -> usize {
    (0..k).map(|j| shape.dense_len(j)).sum()
}

/// (weights, bias) of dense layer `k` within one conditioner's parameters.
#[inline]
fn dense_params<'p, T>(shape: &Shape, p: &'p [T], k: usize) -> (&'p [T], &'p [T]) {
    let (n_in, n_out) = shape.dense_dims(k);
    let start = dense_offset(shape, k).min(p.len());
    let block = &p[start..];
    let (w, rest) = block.split_at((n_in * n_out).min(block.len()));
    (w, &rest[..n_out.min(rest.len())])
}

fn dense_params_mut<'p, T>(shape: &Shape, p: &'p mut [T], k: usize) -> (&'p mut [T], &'p mut [T]) {
    let (n_in, n_out) = shape.dense_dims(k);
    let start = dense_offset(shape, k).min(p.len());
    let block = &mut p[start..];
    let len = block.len();
    let (w, rest) = block.split_at_mut((n_in * n_out).min(len));
    let rlen = rest.len();
    (w, &mut rest[..n_out.min(rlen)])
}

/// Runs the conditioner on the conditioning rows `a` (`⌈D/2⌉·TILE`), writing every hidden
/// activation into `hidden` (`hidden_layers·H·TILE`) and the raw output into `out`
/// (`2⌊D/2⌋·TILE`). The hidden activation is fused into each dense layer's store.
pub(crate) fn conditioner<T: Real>(
    shape: &Shape,
    p: &[T],
    a: &[T],
    hidden: &mut [T],
    out: &mut [T],
) {
    let row = shape.hidden * TILE;
    let nh = shape.hidden_layers;
    let act = Some(shape.activation);
    for k in 0..=nh {
        let (n_in, _) = shape.dense_dims(k);
        let (w, b) = dense_params(shape, p, k);
        let act_k = if k < nh { act } else { None };
        if k == 0 {
            let dst = if nh == 0 {
                &mut *out
            } else {
                &mut hidden[..row]
            };
            dense::forward_act(w, b, a, dst, n_in, act_k);
        } else {
            let (prev, cur) = hidden.split_at_mut(k * row);
            let x = &prev[(k - 1) * row..];
            let dst = if k == nh { &mut *out } else { &mut cur[..row] };
            dense::forward_act(w, b, x, dst, n_in, act_k);
        }
    }
}

/// The conditioner for one sample (`a`: `⌈D/2⌉`, `hidden`: ping/pong of `2H`, `out`:
/// `2⌊D/2⌋`), vectorised over each layer's inputs.
fn conditioner_one<T: Real>(shape: &Shape, p: &[T], a: &[T], hidden: &mut [T], out: &mut [T]) {
    let h = shape.hidden;
    let nh = shape.hidden_layers;
    let act = Some(shape.activation);
    let (mut cur, mut nxt) = hidden.split_at_mut(h.min(hidden.len()));
    for k in 0..=nh {
        let (n_in, _) = shape.dense_dims(k);
        let (w, b) = dense_params(shape, p, k);
        let x: &[T] = if k == 0 { a } else { cur };
        if k == nh {
            dense::forward_one(w, b, x, out, n_in, None);
        } else {
            dense::forward_one(w, b, x, nxt, n_in, act);
            core::mem::swap(&mut cur, &mut nxt);
        }
    }
}

/// Density direction on one sample `state` (`D`): b ← (b − t)·e^{−s}; returns −Σ s. Scalar
/// library `exp`/`tanh` as in [`Clamp::apply_one`].
/// `scratch` needs `2H + 2⌊D/2⌋` elements.
pub(crate) fn inverse_one<T: Real>(
    shape: &Shape,
    p: &[T],
    clamp: Clamp<T>,
    state: &mut [T],
    scratch: &mut [T],
) -> T {
    let (hidden, out) = scratch.split_at_mut((2 * shape.hidden).min(scratch.len()));
    let (a, b) = state.split_at_mut(shape.cond_dim().min(state.len()));
    conditioner_one(shape, p, a, hidden, out);
    let mut log_det = T::ZERO;
    for (v, pr) in b.iter_mut().zip(out.chunks_exact(2)) {
        let s = clamp.apply_one(pr[1]);
        *v = (*v - pr[0]) * (-s).exp();
        log_det -= s;
    }
    log_det
}

/// Density direction on a tile `state` (`D·TILE`): b ← (b − t)·e^{−s}, `log_det −= Σ s`.
pub(crate) fn inverse<T: Real>(
    shape: &Shape,
    p: &[T],
    clamp: Clamp<T>,
    state: &mut [T],
    log_det: &mut [T; TILE],
    hidden: &mut [T],
    out: &mut [T],
) {
    let (a, b) = state.split_at_mut(shape.cond_dim() * TILE);
    conditioner(shape, p, a, hidden, out);
    for (br, pr) in b.chunks_exact_mut(TILE).zip(out.chunks_exact(2 * TILE)) {
        let (shift, raw) = pr.split_at(TILE);
        for (((v, &t), &r), ld) in br.iter_mut().zip(shift).zip(raw).zip(log_det.iter_mut()) {
            let s = clamp.apply(r);
            *v = (*v - t) * (-s).exp_lanes();
            *ld -= s;
        }
    }
}

/// Sampling direction on a tile `state`: b ← b·e^{s} + t, `log_det += Σ s`.
// Same shape as flow/coupling.rs::inverse (duplicates): the forward and inverse of the affine
// bijection differ in one operation and the sign of the log-det in the hot lane loop, where a
// flag or closure would cost speed.
pub(crate) fn forward<T: Real>(
    shape: &Shape,
    p: &[T],
    clamp: Clamp<T>,
    state: &mut [T],
    log_det: &mut [T; TILE],
    hidden: &mut [T],
    out: &mut [T],
) {
    let (a, b) = state.split_at_mut(shape.cond_dim() * TILE);
    conditioner(shape, p, a, hidden, out);
    for (br, pr) in b.chunks_exact_mut(TILE).zip(out.chunks_exact(2 * TILE)) {
        let (shift, raw) = pr.split_at(TILE);
        for (((v, &t), &r), ld) in br.iter_mut().zip(shift).zip(raw).zip(log_det.iter_mut()) {
            let s = clamp.apply(r);
            *v = *v * s.exp_lanes() + t;
            *ld += s;
        }
    }
}

/// Rebuilds the input of [`inverse`] from its output `state` and the conditioner output
/// `out` of that same input: b ← b'·e^{s} + t (the sampling direction's affine map).
pub(crate) fn undo_inverse<T: Real>(shape: &Shape, clamp: Clamp<T>, state: &mut [T], out: &[T]) {
    let (_, b) = state.split_at_mut(shape.cond_dim() * TILE);
    for (br, pr) in b.chunks_exact_mut(TILE).zip(out.chunks_exact(2 * TILE)) {
        let (shift, raw) = pr.split_at(TILE);
        for ((v, &t), &r) in br.iter_mut().zip(shift).zip(raw) {
            *v = *v * clamp.apply(r).exp_lanes() + t;
        }
    }
}

/// Scratch rows for [`inverse_backward`].
pub(crate) struct GradScratch<'w, T> {
    /// Gradient of the conditioner output (`2⌊D/2⌋·TILE`).
    pub out: &'w mut [T],
    /// Hidden-gradient ping (`H·TILE`).
    pub h0: &'w mut [T],
    /// Hidden-gradient pong (`H·TILE`).
    pub h1: &'w mut [T],
    /// Gradient of the conditioning input from the conditioner (`⌈D/2⌉·TILE`).
    pub a: &'w mut [T],
    /// Sample-major copy of one `TILE × TILE` block of a layer's output gradient.
    pub gy_t: &'w mut [T],
}

/// Backward pass of [`inverse`]. `state_out` is the layer's cached output (a, b), `hidden` and
/// `raw` its cached conditioner activations. On entry `g` holds ∂/∂(output); on exit
/// ∂/∂(input). `coef` is the per-lane weight of the log-det term. Parameter gradients are
/// accumulated into `gp` (this coupling's block of the flat gradient).
#[allow(clippy::too_many_arguments)]
pub(crate) fn inverse_backward<T: Real>(
    shape: &Shape,
    p: &[T],
    clamp: Clamp<T>,
    state_out: &[T],
    hidden: &[T],
    raw_out: &[T],
    coef: &[T; TILE],
    g: &mut [T],
    gp: &mut [T],
    scratch: GradScratch<'_, T>,
) {
    let c = shape.cond_dim();
    let (a, b_out) = state_out.split_at(c * TILE);
    let (ga, gb) = g.split_at_mut(c * TILE);
    // Affine part: b = (b' − t)e^{−s}: ∂b/∂b' = e^{−s}, ∂b/∂t = −e^{−s}, ∂b/∂s = −b.
    for (((gbr, br), pr), gpr) in gb
        .chunks_exact_mut(TILE)
        .zip(b_out.chunks_exact(TILE))
        .zip(raw_out.chunks_exact(2 * TILE))
        .zip(scratch.out.chunks_exact_mut(2 * TILE))
    {
        let raw = &pr[TILE..];
        let (g_shift, g_raw) = gpr.split_at_mut(TILE);
        for s in 0..TILE {
            let sc = clamp.apply(raw[s]);
            let e = (-sc).exp_lanes();
            let gv = gbr[s];
            g_shift[s] = -gv * e;
            g_raw[s] = (-gv * br[s] - coef[s]) * clamp.derivative(sc);
            gbr[s] = gv * e;
        }
    }
    conditioner_backward(
        shape,
        p,
        a,
        hidden,
        gp,
        scratch.out,
        scratch.h0,
        scratch.h1,
        scratch.a,
        scratch.gy_t,
    );
    for (g, &d) in ga.iter_mut().zip(scratch.a.iter()) {
        *g += d;
    }
}

/// Reverse mode through the conditioner MLP: given ∂/∂out in `gout`, accumulates parameter
/// gradients into `gp` and writes ∂/∂a into `ga`. The activation's derivative is fused into
/// each input-gradient store.
#[allow(clippy::too_many_arguments)]
fn conditioner_backward<T: Real>(
    shape: &Shape,
    p: &[T],
    a: &[T],
    hidden: &[T],
    gp: &mut [T],
    gout: &[T],
    h0: &mut [T],
    h1: &mut [T],
    ga: &mut [T],
    gy_t: &mut [T],
) {
    let row = shape.hidden * TILE;
    let nh = shape.hidden_layers;
    let act = shape.activation;
    let (mut cur, mut nxt) = (h0, h1);
    // Output layer: its input is the last hidden activation.
    {
        let (n_in, _) = shape.dense_dims(nh);
        let (w, _) = dense_params(shape, p, nh);
        let (gw, gb) = dense_params_mut(shape, gp, nh);
        let x = &hidden[(nh - 1) * row..nh * row];
        dense::backward_params(x, gout, gw, gb, n_in, gy_t);
        dense::backward_input(w, gout, &mut cur[..row], n_in, Some((act, x)));
    }
    for k in (1..nh).rev() {
        let (n_in, _) = shape.dense_dims(k);
        let (w, _) = dense_params(shape, p, k);
        let (gw, gb) = dense_params_mut(shape, gp, k);
        let x = &hidden[(k - 1) * row..k * row];
        dense::backward_params(x, &cur[..row], gw, gb, n_in, gy_t);
        dense::backward_input(w, &cur[..row], &mut nxt[..row], n_in, Some((act, x)));
        core::mem::swap(&mut cur, &mut nxt);
    }
    let (n_in, _) = shape.dense_dims(0);
    let (w, _) = dense_params(shape, p, 0);
    let (gw, gb) = dense_params_mut(shape, gp, 0);
    dense::backward_params(a, &cur[..row], gw, gb, n_in, gy_t);
    dense::backward_input(w, &cur[..row], ga, n_in, None);
}
