//! Parameter initialisation.
//!
//! Hidden dense layers use torch's `nn.Linear` default: weights and biases uniform on
//! ±1/√fan_in. The last layer of every conditioner is zero, so every coupling starts as the
//! identity and the flow's density at start is exactly the base's. Base: Gaussian N(0, I);
//! mixture: equal weights, unit scales and means drawn N(0, 1) (normflows' `GaussianMixture`
//! default), or set explicitly with [`set_mixture_base`].

use crate::error::{check_len, Error};
use crate::real::{all_finite, Real};
use crate::rng::Draws;
use crate::shape::{BaseKind, Shape};
use rand_core::Rng;

/// Initialises all parameters as described in the module docs.
pub fn init_params<T: Real, R: Rng>(
    shape: &Shape,
    params: &mut [T],
    rng: &mut R,
) -> Result<(), Error> {
    shape.validate()?;
    check_len(params, shape.param_len())?;
    let mut draws = Draws::new(rng);
    let (flow, base) = params.split_at_mut(shape.flow_param_len());
    for block in flow.chunks_exact_mut(shape.coupling_len()) {
        let mut rest = &mut block[..];
        for k in 0..shape.dense_layers() {
            let (n_in, n_out) = shape.dense_dims(k);
            let (layer, tail) = rest.split_at_mut(shape.dense_len(k));
            rest = tail;
            if k == shape.hidden_layers {
                layer.iter_mut().for_each(|v| *v = T::ZERO);
            } else {
                let bound = 1.0 / libm::sqrt(n_in as f64);
                let (w, bias) = layer.split_at_mut(n_in * n_out);
                // Drawn in torch's order (weight `[out][in]`, then bias), stored input-major.
                for o in 0..n_out {
                    for i in 0..n_in {
                        if let Some(v) = w.get_mut(i * n_out + o) {
                            *v = T::from_f64((2.0 * draws.uniform() - 1.0) * bound);
                        }
                    }
                }
                for v in bias.iter_mut() {
                    *v = T::from_f64((2.0 * draws.uniform() - 1.0) * bound);
                }
            }
        }
    }
    base.iter_mut().for_each(|v| *v = T::ZERO);
    if let BaseKind::Mixture(k) = shape.base {
        let loc = &mut base[k..k + k * shape.dim];
        for v in loc.iter_mut() {
            *v = T::from_f64(draws.normal());
        }
    }
    // Outer maps: the identity affine map, and the unit box [0, 1]^D as a placeholder for
    // `set_box`.
    let d = shape.dim;
    let tail = shape.flow_param_len() + shape.base_param_len();
    let (affine, bounds) = params[tail..].split_at_mut(shape.affine_param_len());
    if shape.affine {
        for i in 0..d {
            affine[d + i * (i + 1) / 2 + i] = T::ONE;
        }
    }
    if shape.bounded {
        bounds[d..].iter_mut().for_each(|v| *v = T::ONE);
    }
    Ok(())
}

/// Sets the affine standardisation y = shift + L·u of a shape with [`Shape::affine`]:
/// `shift` (D) and the lower-triangular `chol` packed row by row (D(D+1)/2 values, a
/// positive diagonal). `InvalidArgument` without the map or for a diagonal entry ≤ 0 (also
/// after rounding to `T`), `NonFinite` for NaN/∞; nothing is written on error.
pub fn set_affine<T: Real>(
    shape: &Shape,
    params: &mut [T],
    shift: &[f64],
    chol: &[f64],
) -> Result<(), Error> {
    shape.validate()?;
    check_len(params, shape.param_len())?;
    if !shape.affine {
        return Err(Error::InvalidArgument);
    }
    let d = shape.dim;
    check_len(shift, d)?;
    check_len(chol, d * (d + 1) / 2)?;
    if !all_finite(shift) || !all_finite(chol) {
        return Err(Error::NonFinite);
    }
    let vals = |i: usize| T::from_f64(if i < d { shift[i] } else { chol[i - d] });
    if (0..d + chol.len()).any(|i| !vals(i).is_finite())
        || !crate::flow::outer::valid(&shape.with_bounded(false), vals)
    {
        return Err(Error::InvalidArgument);
    }
    let tail = shape.flow_param_len() + shape.base_param_len();
    for (i, p) in params[tail..tail + d + chol.len()].iter_mut().enumerate() {
        *p = vals(i);
    }
    Ok(())
}

/// Sets the box [lo, hi] of a shape with [`Shape::bounded`]. `InvalidArgument` without a box,
/// for lo ≥ hi or a width that overflows (also after rounding to `T`), `NonFinite` for
/// NaN/∞ bounds; nothing is written on error.
// Same shape as init.rs::set_affine (duplicates): the two setters of the outer maps run the
// same checks in the documented error order, then validate and write different values.
pub fn set_box<T: Real>(
    shape: &Shape,
    params: &mut [T],
    lo: &[f64],
    hi: &[f64],
) -> Result<(), Error> {
    shape.validate()?;
    check_len(params, shape.param_len())?;
    if !shape.bounded {
        return Err(Error::InvalidArgument);
    }
    let d = shape.dim;
    check_len(lo, d)?;
    check_len(hi, d)?;
    if !all_finite(lo) || !all_finite(hi) {
        return Err(Error::NonFinite);
    }
    let vals = |i: usize| T::from_f64(if i < d { lo[i] } else { hi[i - d] });
    let only_box = Shape {
        affine: false,
        ..*shape
    };
    if (0..2 * d).any(|i| !vals(i).is_finite()) || !crate::flow::outer::valid(&only_box, vals) {
        return Err(Error::InvalidArgument);
    }
    let at = shape.param_len() - 2 * d;
    for (i, p) in params[at..].iter_mut().enumerate() {
        *p = vals(i);
    }
    Ok(())
}

/// The latent coordinate that data coordinate `i` comes from while every coupling is the
/// identity: each layer's swap permutation rotates coordinates by ⌊D/2⌋, so after L layers
/// θᵢ = z₍ᵢ₊L·⌊D/2⌋₎ mod D.
pub fn latent_index(shape: &Shape, i: usize) -> usize {
    let d = shape.dim.max(1);
    (i % d + (shape.couplings % d) * (shape.trans_dim() % d)) % d
}

/// Sets a diagonal-Gaussian base (`loc[D]`, `scale[D] > 0`) given in data space: the values
/// are placed on the latent coordinates (see [`latent_index`]) so that, while the couplings
/// are the identity, the flow's density is exactly N(loc, diag(scale²)) in θ. `NonFinite`
/// for NaN/∞, `InvalidArgument` for another base, a scale ≤ 0 or a loc that is not finite in
/// `T` (beyond the f32 range of an f32 model); nothing is written on error.
// Same shape as init.rs::set_mixture_base and set_box (duplicates): the same leading checks,
// then this base's own validation and writes.
pub fn set_gaussian_base<T: Real>(
    shape: &Shape,
    params: &mut [T],
    loc: &[f64],
    scale: &[f64],
) -> Result<(), Error> {
    shape.validate()?;
    check_len(params, shape.param_len())?;
    if shape.base != BaseKind::Gaussian {
        return Err(Error::InvalidArgument);
    }
    check_len(loc, shape.dim)?;
    check_len(scale, shape.dim)?;
    if !all_finite(loc) || !all_finite(scale) {
        return Err(Error::NonFinite);
    }
    if scale.iter().any(|&s| s <= 0.0) || loc.iter().any(|&m| !T::from_f64(m).is_finite()) {
        return Err(Error::InvalidArgument);
    }
    let d = shape.dim;
    let base = &mut params[shape.flow_param_len()..];
    for i in 0..d {
        let j = latent_index(shape, i);
        base[j] = T::from_f64(loc[i]);
        base[d + j] = T::from_f64(libm::log(scale[i]));
    }
    Ok(())
}

/// Sets a mixture base from component weights (`K`, positive, any sum), means (`K·D`) and
/// standard deviations (`K·D`, positive), given in data space (placed on the latent
/// coordinates as in [`set_gaussian_base`]), so that while the couplings are the identity
/// the flow's density is exactly this mixture in θ. Logits are ln(weight / Σ weights),
/// computed in logs where that quotient would overflow or underflow (weights spanning more
/// than the floating-point range, e.g. 1e308 and 1e-308), so every logit is finite for any
/// positive finite weights. `NonFinite` for NaN/∞ inputs, `InvalidArgument` for another
/// base, a weight or scale ≤ 0, or a mean that is not finite in `T` (an f64 mean beyond the
/// f32 range of an f32 model); nothing is written on error.
// Same shape as init.rs::set_gaussian_base, set_affine and set_box (duplicates): the public
// setters each run the same shape and length checks in the documented error order before their
// own validation and writes.
pub fn set_mixture_base<T: Real>(
    shape: &Shape,
    params: &mut [T],
    weights: &[f64],
    means: &[f64],
    scales: &[f64],
) -> Result<(), Error> {
    shape.validate()?;
    check_len(params, shape.param_len())?;
    let k = match shape.base {
        BaseKind::Mixture(k) => k,
        _ => return Err(Error::InvalidArgument),
    };
    check_len(weights, k)?;
    check_len(means, k * shape.dim)?;
    check_len(scales, k * shape.dim)?;
    if !all_finite(weights) || !all_finite(means) || !all_finite(scales) {
        return Err(Error::NonFinite);
    }
    if weights.iter().any(|&w| w <= 0.0) || scales.iter().any(|&s| s <= 0.0) {
        return Err(Error::InvalidArgument);
    }
    if means.iter().any(|&m| !T::from_f64(m).is_finite()) {
        return Err(Error::InvalidArgument);
    }
    let total: f64 = weights.iter().sum();
    // ln(m) + ln Σ(w / m), m = max w: finite whatever the weights' spread (Σ(w / m) ∈ [1, K]).
    let w_max = weights.iter().fold(0.0f64, |a, &w| a.max(w));
    let log_total = libm::log(w_max) + libm::log(weights.iter().fold(0.0, |a, &w| a + w / w_max));
    let base = &mut params[shape.flow_param_len()..];
    let (logits, rest) = base.split_at_mut(k);
    let (loc, log_scale) = rest.split_at_mut(k * shape.dim);
    for (l, &w) in logits.iter_mut().zip(weights) {
        let q = w / total;
        // The plain quotient wherever it is exact to rounding (bit-identical to earlier
        // versions); in logs where the sum overflowed or the quotient left the normal range.
        *l = T::from_f64(if total.is_finite() && q >= f64::MIN_POSITIVE {
            libm::log(q)
        } else {
            libm::log(w) - log_total
        });
    }
    let d = shape.dim;
    for (((lr, sr), mr), scr) in loc
        .chunks_exact_mut(d)
        .zip(log_scale.chunks_exact_mut(d))
        .zip(means.chunks_exact(d))
        .zip(scales.chunks_exact(d))
    {
        for i in 0..d {
            let j = latent_index(shape, i);
            lr[j] = T::from_f64(mr[i]);
            sr[j] = T::from_f64(libm::log(scr[i]));
        }
    }
    Ok(())
}
