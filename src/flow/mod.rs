//! The flow: a borrowed view of a flat parameter slice with a [`Shape`], and every batch
//! operation on caller buffers.
//!
//! Conventions (normflows'): `forward` is the sampling direction z → θ with log-det
//! `Σ log|det ∂f/∂z|`; `inverse` is the density direction θ → z with log-det
//! `Σ log|det ∂f⁻¹/∂θ|`; `log q(θ) = log q₀(f⁻¹(θ)) + log-det_inverse(θ)`. Batches are
//! row-major `[n][D]` slices. Each coupling layer is followed by a swap permutation.

pub(crate) mod coupling;
pub(crate) mod outer;

use crate::base;
use crate::error::{check_len, check_min, Error};
use crate::real::{all_finite, Real};
use crate::rng::{Draws, RngRef};
use crate::shape::{Shape, TILE};
use coupling::{Clamp, GradScratch};
use outer::Outer;
use rand_core::Rng;

/// A flow: shape plus a borrowed flat parameter slice (flow parameters, then base parameters).
#[derive(Clone, Copy, Debug)]
pub struct Flow<'p, T: Real> {
    shape: Shape,
    params: &'p [T],
}

/// The evaluation region of a workspace, split into named rows.
struct EvalWs<'w, T> {
    state: &'w mut [T],
    slot: &'w mut [T],
    log_det: &'w mut [T; TILE],
    lane: &'w mut [T; TILE],
    base_scratch: &'w mut [T],
}

fn take<'w, T>(ws: &mut &'w mut [T], n: usize) -> &'w mut [T] {
    let all = core::mem::take(ws);
    let (head, tail) = all.split_at_mut(n.min(all.len()));
    *ws = tail;
    head
}

fn take_lane<'w, T: Real>(ws: &mut &'w mut [T]) -> Result<&'w mut [T; TILE], Error> {
    let actual = ws.len();
    match core::mem::take(ws).split_first_chunk_mut::<TILE>() {
        Some((head, tail)) => {
            *ws = tail;
            Ok(head)
        }
        None => Err(Error::BufferTooSmall {
            needed: TILE,
            actual,
        }),
    }
}

impl<'p, T: Real> Flow<'p, T> {
    /// Validates the shape, the parameter length, that every parameter is finite, and the
    /// outer maps (a positive diagonal of the affine map's L; lo < hi with a finite width for
    /// the box: `InvalidArgument` otherwise).
    pub fn new(shape: Shape, params: &'p [T]) -> Result<Self, Error> {
        if !all_finite(params) {
            return Err(Error::NonFinite);
        }
        Self::over_finite(shape, params)
    }

    /// As [`Flow::new`] without its O(P) scan for non-finite parameters, for callers whose
    /// parameter memory is finite by invariant (every writer refuses non-finite values, as
    /// the C ABI's model memory does): checks the shape, the length and the outer maps,
    /// O(D). Parameters that are not finite after all give meaningless outputs (not always
    /// visibly: a ReLU turns a NaN weight's pre-activation into 0), never a panic or an access
    /// out of bounds; callers that cannot vouch for their parameters use [`Flow::new`].
    pub fn over_finite(shape: Shape, params: &'p [T]) -> Result<Self, Error> {
        shape.validate()?;
        check_len(params, shape.param_len())?;
        let tail = shape.flow_param_len() + shape.base_param_len();
        if !outer::valid(&shape, |i| params[tail + i]) {
            return Err(Error::InvalidArgument);
        }
        Ok(Flow { shape, params })
    }

    /// The outer maps (affine standardisation and box) over the parameter tail.
    fn outer(&self) -> Outer<'p, T> {
        let tail = self.shape.flow_param_len() + self.shape.base_param_len();
        Outer::new(&self.shape, self.params.get(tail..).unwrap_or(&[]))
    }

    /// The shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// The flat parameter slice.
    pub fn params(&self) -> &'p [T] {
        self.params
    }

    fn coupling_params(&self, l: usize) -> &'p [T] {
        let n = self.shape.coupling_len();
        self.params.get(l * n..(l + 1) * n).unwrap_or(&[])
    }

    fn base_params(&self) -> &'p [T] {
        let at = self.shape.flow_param_len();
        self.params
            .get(at..at + self.shape.base_param_len())
            .unwrap_or(&[])
    }

    fn split_eval<'w>(&self, mut ws: &'w mut [T]) -> Result<EvalWs<'w, T>, Error> {
        let s = &self.shape;
        let state = take(&mut ws, s.dim * TILE);
        let slot = take(&mut ws, s.slot_rows() * TILE);
        let log_det = take_lane(&mut ws)?;
        let lane = take_lane(&mut ws)?;
        let base_scratch = take(&mut ws, s.components() * TILE);
        Ok(EvalWs {
            state,
            slot,
            log_det,
            lane,
            base_scratch,
        })
    }

    /// Checks a batch: `rows` has `n·D` elements where `n = per_sample.len()`, all finite.
    fn check_batch(&self, rows: &[T], n: usize) -> Result<(), Error> {
        if n == 0 {
            return Err(Error::EmptyBatch);
        }
        check_len(rows, n.saturating_mul(self.shape.dim))?;
        if !all_finite(rows) {
            return Err(Error::NonFinite);
        }
        Ok(())
    }

    /// Splits a slot into (state, hidden, out).
    fn split_slot<'w>(&self, slot: &'w mut [T]) -> (&'w mut [T], &'w mut [T], &'w mut [T]) {
        let s = &self.shape;
        let mut rest = slot;
        let state = take(&mut rest, s.dim * TILE);
        let hidden = take(&mut rest, s.hidden * s.hidden_layers * TILE);
        let out = take(&mut rest, 2 * s.trans_dim() * TILE);
        (state, hidden, out)
    }

    /// Density direction through all layers on one tile, reusing a single slot.
    fn inverse_tile(&self, state: &mut [T], log_det: &mut [T; TILE], slot: &mut [T]) {
        let s = &self.shape;
        let clamp = Clamp::new(s);
        let (_, hidden, out) = self.split_slot(slot);
        *log_det = [T::ZERO; TILE];
        for l in (0..s.couplings).rev() {
            state.rotate_left(s.cond_dim() * TILE);
            coupling::inverse(
                s,
                self.coupling_params(l),
                clamp,
                state,
                log_det,
                hidden,
                out,
            );
        }
    }

    /// Sampling direction through all layers on one tile; adds to `log_det`.
    // Same shape as flow/mod.rs::Flow::inverse_tile (duplicates): the two directions run the
    // couplings in opposite order and rotate before vs after each; the shared part is one call
    // to coupling::forward/inverse.
    fn forward_tile(&self, state: &mut [T], log_det: &mut [T; TILE], slot: &mut [T]) {
        let s = &self.shape;
        let clamp = Clamp::new(s);
        let (_, hidden, out) = self.split_slot(slot);
        for l in 0..s.couplings {
            coupling::forward(
                s,
                self.coupling_params(l),
                clamp,
                state,
                log_det,
                hidden,
                out,
            );
            state.rotate_left(s.trans_dim() * TILE);
        }
    }

    /// log q(θ) for each row of `theta` (`n·D`) into `out` (`n`).
    ///
    /// Errors: `EmptyBatch` for n = 0, `LengthMismatch` if `theta` is not `n·D` long,
    /// `BufferTooSmall` if `ws` is shorter than [`Shape::eval_workspace_len`], `NonFinite` if
    /// θ has NaN/∞. `out` is written only on success.
    ///
    /// With a box ([`Shape::bounded`]) a θ on the boundary or outside the box has density 0:
    /// its `out` is −∞.
    ///
    /// A single sample takes a dedicated path (matrix–vector products vectorised over each
    /// layer's inputs) instead of a padded tile; it agrees with the batch path to rounding.
    pub fn log_prob(&self, theta: &[T], out: &mut [T], ws: &mut [T]) -> Result<(), Error> {
        self.check_batch(theta, out.len())?;
        check_min(ws, self.shape.eval_workspace_len())?;
        let w = self.split_eval(ws)?;
        if let [single] = out {
            *single = self.log_prob_one(theta, w);
            return Ok(());
        }
        let outer = self.outer();
        for (rows, outs) in theta
            .chunks(TILE * self.shape.dim)
            .zip(out.chunks_mut(TILE))
        {
            gather(rows, self.shape.dim, w.state);
            let (mut outer_ld, mut outside) = ([T::ZERO; TILE], [false; TILE]);
            if !outer.is_identity() {
                outer.inverse(w.state, TILE, outs.len(), &mut outer_ld, &mut outside);
            }
            self.inverse_tile(w.state, w.log_det, w.slot);
            base::log_prob_tile(
                &self.shape,
                self.base_params(),
                w.state,
                w.lane,
                w.base_scratch,
            );
            for (i, o) in outs.iter_mut().enumerate() {
                *o = if outside[i] {
                    T::from_f64(f64::NEG_INFINITY)
                } else {
                    w.lane[i] + w.log_det[i] + outer_ld[i]
                };
            }
        }
        Ok(())
    }

    /// log q(θ) of one sample (`theta`: D values, checked by the caller).
    fn log_prob_one(&self, theta: &[T], w: EvalWs<'_, T>) -> T {
        let s = &self.shape;
        let clamp = Clamp::new(s);
        let mut rest = &mut *w.slot;
        let z = take(&mut rest, s.dim);
        z.copy_from_slice(&theta[..s.dim.min(theta.len())]);
        let (mut outer_ld, mut outside) = ([T::ZERO], [false]);
        let outer = self.outer();
        if !outer.is_identity() {
            outer.inverse(z, 1, 1, &mut outer_ld, &mut outside);
            if outside[0] {
                return T::from_f64(f64::NEG_INFINITY);
            }
        }
        let mut log_det = outer_ld[0];
        for l in (0..s.couplings).rev() {
            if let [a, b] = z {
                // D = 2: the rotation is a swap (`rotate_left` calls memmove).
                core::mem::swap(a, b);
            } else {
                z.rotate_left(s.cond_dim());
            }
            log_det += coupling::inverse_one(s, self.coupling_params(l), clamp, z, rest);
        }
        base::log_prob_one(s, self.base_params(), z) + log_det
    }

    /// The density-direction map: z = f⁻¹(θ) (`n·D`) and its log-det `log|det ∂f⁻¹/∂θ|` (`n`),
    /// the outer maps included. With a box, a θ outside the open box has no preimage:
    /// `InvalidArgument`.
    pub fn inverse(
        &self,
        theta: &[T],
        z: &mut [T],
        log_det: &mut [T],
        ws: &mut [T],
    ) -> Result<(), Error> {
        self.check_inside(theta)?;
        let outer = self.outer();
        self.map(theta, z, log_det, ws, |flow, state, ld, slot| {
            let (mut outer_ld, mut outside) = ([T::ZERO; TILE], [false; TILE]);
            if !outer.is_identity() {
                outer.inverse(state, TILE, TILE, &mut outer_ld, &mut outside);
            }
            flow.inverse_tile(state, ld, slot);
            for (l, &o) in ld.iter_mut().zip(outer_ld.iter()) {
                *l += o;
            }
        })
    }

    /// `InvalidArgument` if a row of `theta` lies outside the open box (never without one).
    fn check_inside(&self, theta: &[T]) -> Result<(), Error> {
        let outer = self.outer();
        let d = self.shape.dim.max(1);
        if theta.chunks(d).all(|row| outer.inside(row)) {
            Ok(())
        } else {
            Err(Error::InvalidArgument)
        }
    }

    /// The sampling-direction map: θ = f(z) (`n·D`) and its log-det `log|det ∂f/∂z|` (`n`).
    pub fn forward(
        &self,
        z: &[T],
        theta: &mut [T],
        log_det: &mut [T],
        ws: &mut [T],
    ) -> Result<(), Error> {
        let outer = self.outer();
        self.map(z, theta, log_det, ws, |flow, state, ld, slot| {
            *ld = [T::ZERO; TILE];
            flow.forward_tile(state, ld, slot);
            if !outer.is_identity() {
                outer.forward(state, TILE, TILE, ld);
            }
        })
    }

    /// Applies a whole-flow tile map (`through`, which sets the tile's log-dets) to every
    /// tile of `input`, writing the mapped rows and their log-dets.
    fn map(
        &self,
        input: &[T],
        output: &mut [T],
        log_det: &mut [T],
        ws: &mut [T],
        through: impl Fn(&Self, &mut [T], &mut [T; TILE], &mut [T]),
    ) -> Result<(), Error> {
        self.check_batch(input, log_det.len())?;
        check_len(output, input.len())?;
        check_min(ws, self.shape.eval_workspace_len())?;
        let d = self.shape.dim;
        let w = self.split_eval(ws)?;
        for ((rows, outs), lds) in input
            .chunks(TILE * d)
            .zip(output.chunks_mut(TILE * d))
            .zip(log_det.chunks_mut(TILE))
        {
            gather(rows, d, w.state);
            through(self, w.state, w.log_det, w.slot);
            scatter(w.state, d, outs);
            lds.copy_from_slice(&w.log_det[..lds.len()]);
        }
        Ok(())
    }

    /// Draws `n` samples θ ~ q into `theta` (`n·D`) with their log-density log q(θ) in `log_q`
    /// (`n`). Draws happen sample by sample in row order, so the same generator state gives
    /// the same samples for any batch split.
    pub fn sample<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        theta: &mut [T],
        log_q: &mut [T],
        ws: &mut [T],
    ) -> Result<(), Error> {
        let n = log_q.len();
        if n == 0 {
            return Err(Error::EmptyBatch);
        }
        check_len(theta, n.saturating_mul(self.shape.dim))?;
        check_min(ws, self.shape.eval_workspace_len())?;
        let d = self.shape.dim;
        let w = self.split_eval(ws)?;
        let outer = self.outer();
        let mut rng_dyn = RngRef(rng);
        let mut draws = Draws::new(&mut rng_dyn);
        for (xs, lqs) in theta.chunks_mut(TILE * d).zip(log_q.chunks_mut(TILE)) {
            w.state.iter_mut().for_each(|v| *v = T::ZERO);
            for lane in 0..lqs.len() {
                base::sample_one(&self.shape, self.base_params(), &mut draws, w.state, lane);
            }
            base::log_prob_tile(
                &self.shape,
                self.base_params(),
                w.state,
                w.lane,
                w.base_scratch,
            );
            *w.log_det = [T::ZERO; TILE];
            self.forward_tile(w.state, w.log_det, w.slot);
            if !outer.is_identity() {
                outer.forward(w.state, TILE, lqs.len(), w.log_det);
            }
            scatter(w.state, d, xs);
            for ((o, &b), &ld) in lqs.iter_mut().zip(w.lane.iter()).zip(w.log_det.iter()) {
                *o = b - ld;
            }
        }
        Ok(())
    }

    /// Loss and gradient of the weighted negative log-likelihood
    /// `L = −(1/n) Σᵢ wᵢ log q(θᵢ)` over the batch: `grad` (`param_len`) is overwritten with
    /// ∂L/∂φ and L is returned. `ws` needs [`Shape::workspace_len`].
    pub fn loss_and_gradient(
        &self,
        theta: &[T],
        weights: &[T],
        grad: &mut [T],
        ws: &mut [T],
    ) -> Result<T, Error> {
        self.loss(theta, weights, grad, ws, false)
    }

    /// [`loss_and_gradient`](Self::loss_and_gradient) in recompute mode: the layer inputs
    /// of the backward pass are rebuilt from the invertible flow instead of stored, so `ws`
    /// needs only [`Shape::recompute_workspace_len`] (one coupling's activations instead of
    /// L), for one more conditioner pass per coupling (≈ 1/3 more arithmetic). The gradient
    /// equals the stored mode's up to rounding (the rebuilt inputs differ in the last bits).
    // Same shape as flow/mod.rs::Flow::loss_and_gradient (duplicates): the stored and recompute
    // modes are public variants with one argument list, both forwarding to Flow::loss.
    pub fn loss_and_gradient_recompute(
        &self,
        theta: &[T],
        weights: &[T],
        grad: &mut [T],
        ws: &mut [T],
    ) -> Result<T, Error> {
        self.loss(theta, weights, grad, ws, true)
    }

    /// Zeroes `grad` and accumulates the batch's gradient at scale 1/n (checked first, so
    /// `grad` is untouched on error).
    fn loss(
        &self,
        theta: &[T],
        weights: &[T],
        grad: &mut [T],
        ws: &mut [T],
        recompute: bool,
    ) -> Result<T, Error> {
        self.check_gradient_inputs(theta, weights, grad, ws, recompute)?;
        grad.iter_mut().for_each(|g| *g = T::ZERO);
        let scale = T::ONE / T::from_usize(weights.len().max(1));
        self.accumulate(theta, weights, scale, grad, ws, recompute)
    }

    /// [`accumulate_gradient`](Self::accumulate_gradient) in recompute mode (see
    /// [`loss_and_gradient_recompute`](Self::loss_and_gradient_recompute)); `ws` needs
    /// [`Shape::recompute_workspace_len`].
    // Same shape as flow/mod.rs::Flow::accumulate_gradient, checked_accumulate and accumulate
    // (duplicates): public variants and their private core spell out the same argument list;
    // the public ones only forward.
    pub fn accumulate_gradient_recompute(
        &self,
        theta: &[T],
        weights: &[T],
        scale: T,
        grad: &mut [T],
        ws: &mut [T],
    ) -> Result<T, Error> {
        self.checked_accumulate(theta, weights, scale, grad, ws, true)
    }

    /// Every check of the gradient entry points, once: the gradient's length, the batch,
    /// finite non-negative weights, points inside a bounded model's box, and the workspace
    /// of the mode.
    fn check_gradient_inputs(
        &self,
        theta: &[T],
        weights: &[T],
        grad: &[T],
        ws: &[T],
        recompute: bool,
    ) -> Result<(), Error> {
        check_len(grad, self.shape.param_len())?;
        self.check_batch(theta, weights.len())?;
        if weights.iter().any(|&w| !w.is_finite()) {
            return Err(Error::NonFinite);
        }
        if weights.iter().any(|&w| w < T::ZERO) {
            return Err(Error::InvalidArgument);
        }
        self.check_inside(theta)?;
        let needed = if recompute {
            self.shape.recompute_workspace_len()
        } else {
            self.shape.workspace_len()
        };
        check_min(ws, needed)
    }

    /// Adds `scale · ∂/∂φ [−Σᵢ wᵢ log q(θᵢ)]` to `grad` and returns `scale · Σᵢ wᵢ (−log q(θᵢ))`.
    ///
    /// This is the building block for data-parallel training: with a batch split into parts
    /// of sizes n₁, n₂, … over processes, each calls this with `scale = 1/n` (n = the total
    /// batch size) and the all-reduced sum of the gradients and returned losses equals
    /// [`loss_and_gradient`](Self::loss_and_gradient) of the whole batch.
    pub fn accumulate_gradient(
        &self,
        theta: &[T],
        weights: &[T],
        scale: T,
        grad: &mut [T],
        ws: &mut [T],
    ) -> Result<T, Error> {
        self.checked_accumulate(theta, weights, scale, grad, ws, false)
    }

    // Same shape as flow/mod.rs::Flow::accumulate_gradient(_recompute) and accumulate
    // (duplicates): the one checked core of both public variants, with their argument list plus
    // the mode.
    fn checked_accumulate(
        &self,
        theta: &[T],
        weights: &[T],
        scale: T,
        grad: &mut [T],
        ws: &mut [T],
        recompute: bool,
    ) -> Result<T, Error> {
        // The gradient's length is refused before the scale, as it always was.
        check_len(grad, self.shape.param_len())?;
        if !scale.is_finite() {
            return Err(Error::NonFinite);
        }
        self.check_gradient_inputs(theta, weights, grad, ws, recompute)?;
        self.accumulate(theta, weights, scale, grad, ws, recompute)
    }

    /// The gradient pass over checked inputs ([`check_gradient_inputs`]), tile by tile:
    /// forward in the density direction, the tile's loss, backward. `recompute` rebuilds each
    /// coupling's input and activations during the backward pass from its output instead of
    /// keeping one slot per coupling ([`Activations`]).
    ///
    /// [`check_gradient_inputs`]: Self::check_gradient_inputs
    // Same shape as flow/mod.rs::Flow::checked_accumulate (duplicates): the unchecked pass,
    // called by loss and checked_accumulate with the same arguments.
    fn accumulate(
        &self,
        theta: &[T],
        weights: &[T],
        scale: T,
        grad: &mut [T],
        ws: &mut [T],
        recompute: bool,
    ) -> Result<T, Error> {
        let s = &self.shape;
        let d = s.dim;
        let (mut w, mut kept, mut g) = self.split_gradient(ws, recompute)?;
        let (flow_grad, rest_grad) = grad.split_at_mut(s.flow_param_len());
        // The outer maps are never trained: their gradient entries stay 0.
        let base_grad = &mut rest_grad[..s.base_param_len()];
        let outer = self.outer();
        let mut total = T::ZERO;
        for (rows, ws_) in theta.chunks(TILE * d).zip(weights.chunks(TILE)) {
            gather(rows, d, w.state);
            let (mut outer_ld, mut outside) = ([T::ZERO; TILE], [false; TILE]);
            if !outer.is_identity() {
                outer.inverse(w.state, TILE, rows.len() / d, &mut outer_ld, &mut outside);
            }
            *g.coef = [T::ZERO; TILE];
            for (c, &wt) in g.coef.iter_mut().zip(ws_) {
                *c = -scale * wt;
            }
            self.forward_keeping(&mut w, &mut kept);
            total += self.tile_loss(&mut w, g.coef, &outer_ld);
            base::backward_tile(
                s,
                self.base_params(),
                w.state,
                g.coef,
                g.state,
                base_grad,
                w.base_scratch,
            );
            self.backward(&mut w, &mut kept, &mut g, flow_grad);
        }
        Ok(total)
    }

    /// The evaluation region, the activations' home and the gradient rows of `ws` (long
    /// enough: checked by [`check_gradient_inputs`](Self::check_gradient_inputs)).
    #[allow(clippy::type_complexity)]
    fn split_gradient<'w>(
        &self,
        ws: &'w mut [T],
        recompute: bool,
    ) -> Result<(EvalWs<'w, T>, Activations<'w, T>, GradRows<'w, T>), Error> {
        let s = &self.shape;
        let mut rest = ws;
        let ev_ws = take(&mut rest, s.eval_workspace_len());
        let w = self.split_eval(ev_ws)?;
        let kept = if recompute {
            Activations::Recomputed
        } else {
            Activations::Kept(take(&mut rest, s.slot_rows() * TILE * s.couplings))
        };
        let g = GradRows {
            state: take(&mut rest, s.dim * TILE),
            h0: take(&mut rest, s.hidden * TILE),
            h1: take(&mut rest, s.hidden * TILE),
            out: take(&mut rest, 2 * s.trans_dim() * TILE),
            a: take(&mut rest, s.cond_dim() * TILE),
            coef: take_lane(&mut rest)?,
            gy_t: take(&mut rest, TILE * TILE),
        };
        Ok((w, kept, g))
    }

    /// Density direction through every coupling on the tile in `w.state`, keeping each
    /// coupling's input and activations when they are kept.
    fn forward_keeping(&self, w: &mut EvalWs<'_, T>, kept: &mut Activations<'_, T>) {
        let s = &self.shape;
        let clamp = Clamp::new(s);
        let keep = kept.is_kept();
        *w.log_det = [T::ZERO; TILE];
        for l in (0..s.couplings).rev() {
            w.state.rotate_left(s.cond_dim() * TILE);
            let slot = kept.slot(s, l).unwrap_or(&mut *w.slot);
            let (st, hidden, out) = self.split_slot(slot);
            let p = self.coupling_params(l);
            coupling::inverse(s, p, clamp, w.state, w.log_det, hidden, out);
            if keep {
                st.copy_from_slice(w.state);
            }
        }
    }

    /// The tile's weighted loss Σ coefᵢ·log q(θᵢ) (coefᵢ = −scale·wᵢ), with the base's log
    /// density of the latent tile in `w.lane`.
    // Same shape as flow/mod.rs::Flow::log_prob and sample (duplicates): the shared lines are
    // one call to base::log_prob_tile on the workspace rows, wrapped by rustfmt; no logic
    // repeats.
    fn tile_loss(&self, w: &mut EvalWs<'_, T>, coef: &[T; TILE], outer_ld: &[T; TILE]) -> T {
        base::log_prob_tile(
            &self.shape,
            self.base_params(),
            w.state,
            w.lane,
            w.base_scratch,
        );
        let mut contrib = [T::ZERO; TILE];
        for ((((c, &b), &ld), &k), &o) in contrib
            .iter_mut()
            .zip(w.lane.iter())
            .zip(w.log_det.iter())
            .zip(coef.iter())
            .zip(outer_ld.iter())
        {
            *c = k * (b + ld + o);
        }
        crate::nn::dense::lane_sum(&contrib)
    }

    /// Backward through the couplings, first to last, adding each one's parameter gradient
    /// to `flow_grad`; `g.state` holds the gradient of the base's input on entry.
    fn backward(
        &self,
        w: &mut EvalWs<'_, T>,
        kept: &mut Activations<'_, T>,
        g: &mut GradRows<'_, T>,
        flow_grad: &mut [T],
    ) {
        let s = &self.shape;
        let clamp = Clamp::new(s);
        let n = s.coupling_len();
        for l in 0..s.couplings {
            let gp = &mut flow_grad[l * n..(l + 1) * n];
            let p = self.coupling_params(l);
            let scratch = GradScratch {
                out: g.out,
                h0: g.h0,
                h1: g.h1,
                a: g.a,
                gy_t: g.gy_t,
            };
            if let Some(slot) = kept.slot(s, l) {
                let (st, hidden, out) = self.split_slot(slot);
                coupling::inverse_backward(
                    s, p, clamp, st, hidden, out, g.coef, g.state, gp, scratch,
                );
            } else {
                // `w.state` is this coupling's output: its conditioning rows are its input's,
                // so the activations follow from them; then invert the affine map to get the
                // input, which is the next coupling's output.
                let (_, hidden, out) = self.split_slot(w.slot);
                let (a, _) = w.state.split_at(s.cond_dim() * TILE);
                coupling::conditioner(s, p, a, hidden, out);
                coupling::inverse_backward(
                    s, p, clamp, w.state, hidden, out, g.coef, g.state, gp, scratch,
                );
                coupling::undo_inverse(s, clamp, w.state, out);
                w.state.rotate_right(s.cond_dim() * TILE);
            }
            g.state.rotate_right(s.cond_dim() * TILE);
        }
    }
}

/// Where the backward pass finds each coupling's input and activations.
enum Activations<'w, T> {
    /// One slot per coupling (`slot_rows · TILE` each), filled by the forward pass.
    Kept(&'w mut [T]),
    /// Rebuilt during the backward pass from each coupling's output, in the evaluation
    /// region's one slot.
    Recomputed,
}

impl<T> Activations<'_, T> {
    fn is_kept(&self) -> bool {
        matches!(self, Activations::Kept(_))
    }

    /// Coupling `l`'s own slot when activations are kept.
    fn slot(&mut self, s: &Shape, l: usize) -> Option<&mut [T]> {
        let len = s.slot_rows() * TILE;
        match self {
            Activations::Kept(all) => all.get_mut(l * len..(l + 1) * len),
            Activations::Recomputed => None,
        }
    }
}

/// The gradient rows of a workspace.
struct GradRows<'w, T> {
    /// Gradient of the current tile state (`D·TILE`).
    state: &'w mut [T],
    h0: &'w mut [T],
    h1: &'w mut [T],
    out: &'w mut [T],
    a: &'w mut [T],
    /// Per-lane loss coefficient −scale·wᵢ.
    coef: &'w mut [T; TILE],
    gy_t: &'w mut [T],
}

/// Copies up to [`TILE`] rows of `D` values into the feature-major tile, zero-padding lanes.
fn gather<T: Real>(rows: &[T], d: usize, state: &mut [T]) {
    let m = rows.len() / d.max(1);
    for (i, srow) in state.chunks_exact_mut(TILE).enumerate().take(d) {
        for (s, v) in srow.iter_mut().enumerate() {
            *v = if s < m { rows[s * d + i] } else { T::ZERO };
        }
    }
}

/// Copies the first `rows.len() / D` lanes of the tile back to row-major rows.
fn scatter<T: Real>(state: &[T], d: usize, rows: &mut [T]) {
    for (s, row) in rows.chunks_exact_mut(d).enumerate() {
        for (i, v) in row.iter_mut().enumerate() {
            *v = state[i * TILE + s];
        }
    }
}
