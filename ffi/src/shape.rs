//! `LwfShape`: the C mirror of `lwflow::Shape`, its validation and every size derived from it.

use crate::guard::{guard, out_scalar, read_struct, write_scalar};
use crate::layout::layout;
use crate::status::LwfStatus::{self, *};
use lwflow::{Activation, BaseKind, Shape};

/// Base distribution codes for `LwfShape.base`.
// Same shape as fit_config.rs::LwfFitBase and the other repr(C) code enums (duplicates): each
// spells out its own codes for the header.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LwfBaseKind {
    /// Fixed standard normal N(0, I); no trainable parameters. `components` must be 1.
    LWF_BASE_STANDARD_NORMAL = 0,
    /// Diagonal Gaussian with trainable mean and log-scale. `components` must be 1.
    LWF_BASE_GAUSSIAN = 1,
    /// Mixture of `components` diagonal Gaussians with trainable logits, means, log-scales.
    LWF_BASE_MIXTURE = 2,
}

/// Hidden-layer activation codes for `LwfShape.activation`.
// Same shape as LwfBaseKind above (duplicates): repr(C) code enums, each spelling out its own
// codes for the header.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LwfActivation {
    /// max(x, 0) (normflows' MLP).
    LWF_ACTIVATION_RELU = 0,
    /// tanh(x): a smooth density.
    LWF_ACTIVATION_TANH = 1,
}

// The C enums carry the core's codes (`BaseKind::code`, `Activation::code`), defined there once.
const _: () = {
    assert!(LwfBaseKind::LWF_BASE_STANDARD_NORMAL as u8 == BaseKind::StandardNormal.code().0);
    assert!(LwfBaseKind::LWF_BASE_GAUSSIAN as u8 == BaseKind::Gaussian.code().0);
    assert!(LwfBaseKind::LWF_BASE_MIXTURE as u8 == BaseKind::Mixture(2).code().0);
    assert!(LwfActivation::LWF_ACTIVATION_RELU as u8 == Activation::Relu.code());
    assert!(LwfActivation::LWF_ACTIVATION_TANH as u8 == Activation::Tanh.code());
};

/// The shape of a RealNVP flow. Fill it with `lwf_shape_default`, then change fields.
///
/// Each of the `couplings` layers is an affine coupling whose conditioner is an MLP
/// `[ceil(dim/2), hidden (x hidden_layers), 2*floor(dim/2)]`, followed by a swap permutation.
/// Two optional outer maps sit between the couplings' output and theta, both never trained:
/// an affine standardisation y = shift + L u (`affine`) and a box support (`bounded`: every
/// sample and all density lie inside [lo, hi]); their parameters follow the base's in the
/// flat parameter vector and are set with `lwf_model_set_affine` and `lwf_model_set_box`.
/// The enum-valued and flag fields are plain `int32_t` so that any value a caller writes is a
/// defined value; unknown codes give `LWF_INVALID_SHAPE`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LwfShape {
    /// Dimension D >= 2 of theta.
    pub dim: usize,
    /// Hidden width H >= 1 of every conditioner layer.
    pub hidden: usize,
    /// Hidden layers per conditioner (>= 1; default 2).
    pub hidden_layers: usize,
    /// Number of coupling layers L >= 1.
    pub couplings: usize,
    /// Base components K: >= 1 for `LWF_BASE_MIXTURE`, exactly 1 for the Gaussian bases.
    pub components: usize,
    /// Soft clamp c of the log-scale, s = c * tanh(raw / c); 0 = off (normflows' formulas).
    /// Stored as a 32-bit float: must be +0.0 or a positive normal float in [FLT_MIN, FLT_MAX]
    /// after rounding to float (-0.0, subnormals, NaN and infinities are invalid, here and in
    /// model bytes). Default 3.
    pub clamp: f64,
    /// An `LwfBaseKind` code (default `LWF_BASE_GAUSSIAN`).
    pub base: i32,
    /// An `LwfActivation` code (default `LWF_ACTIVATION_RELU`).
    pub activation: i32,
    /// 1: the affine standardisation y = shift + L u after the couplings (D + D(D+1)/2 more
    /// parameters: shift, then the lower-triangular L packed row by row; identity after
    /// `lwf_model_init`). 0 (the default): none.
    pub affine: i32,
    /// 1: the flow lives on a box [lo, hi] (2D more parameters, lo then hi, last; the unit
    /// box after `lwf_model_init`): log q is -inf outside the open box and every sample lies
    /// inside it. 0 (the default): unbounded.
    pub bounded: i32,
}

impl LwfShape {
    /// The core shape, or `LWF_INVALID_SHAPE` for any invalid field or code.
    pub(crate) fn to_core(self) -> Result<Shape, LwfStatus> {
        let code = |v: i32| u32::try_from(v).map_err(|_| LWF_INVALID_SHAPE);
        let base = BaseKind::from_code(code(self.base)?, self.components);
        let activation = Activation::from_code(code(self.activation)?);
        let (Some(base), Some(activation)) = (base, activation) else {
            return Err(LWF_INVALID_SHAPE);
        };
        // The core stores the clamp as f32 and its rule (`Shape::validate`: +0.0 or a positive
        // normal finite f32) decides; here only the conversion must not change the meaning:
        // a non-zero double that f32 would flush to +0.0 (off) is refused. A double that
        // becomes a subnormal or infinity is refused by the core's rule.
        let clamp = self.clamp as f32;
        if clamp == 0.0 && self.clamp != 0.0 {
            return Err(LWF_INVALID_SHAPE);
        }
        let flag = |v: i32| match v {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(LWF_INVALID_SHAPE),
        };
        let shape = Shape {
            dim: self.dim,
            hidden: self.hidden,
            hidden_layers: self.hidden_layers,
            couplings: self.couplings,
            base,
            activation,
            clamp,
            affine: flag(self.affine)?,
            bounded: flag(self.bounded)?,
        };
        shape.validate().map_err(|_| LWF_INVALID_SHAPE)?;
        // The model layout adds to the core's sizes; it must not overflow either.
        layout(&shape)?;
        Ok(shape)
    }

    /// The C mirror of a (valid) core shape.
    pub(crate) fn from_core(shape: &Shape) -> LwfShape {
        let (base, components) = shape.base.code();
        let activation = shape.activation.code();
        LwfShape {
            dim: shape.dim,
            hidden: shape.hidden,
            hidden_layers: shape.hidden_layers,
            couplings: shape.couplings,
            components,
            clamp: f64::from(shape.clamp),
            base: base as i32,
            activation: activation as i32,
            affine: i32::from(shape.affine),
            bounded: i32::from(shape.bounded),
        }
    }
}

/// Reads and validates a shape argument.
///
/// # Safety
/// `shape` is NULL or valid for one read of `LwfShape`.
pub(crate) unsafe fn read_shape(shape: *const LwfShape) -> Result<Shape, LwfStatus> {
    // SAFETY: forwarded contract; LwfShape is plain integers and a double.
    unsafe { read_struct(shape) }?.to_core()
}

/// Writes the default shape for `dim`, `hidden` and `couplings` into `*out_shape`: two hidden
/// layers per conditioner, a trainable Gaussian base, ReLU, soft clamp 3 and no outer maps
/// (as `lwflow::Shape::new`).
///
/// Returns `LWF_NULL_POINTER`, `LWF_MISALIGNED`, or `LWF_INVALID_SHAPE` if the result is not a
/// valid shape (e.g. `dim < 2`).
///
/// # Safety
/// `out_shape` is NULL or valid for one write of `LwfShape`.
#[no_mangle]
pub unsafe extern "C" fn lwf_shape_default(
    dim: usize,
    hidden: usize,
    couplings: usize,
    out_shape: *mut LwfShape,
) -> LwfStatus {
    guard(|| {
        let out = out_scalar(out_shape)?;
        let shape = LwfShape::from_core(&Shape::new(dim, hidden, couplings));
        shape.to_core()?;
        // SAFETY: `out` passed out_scalar; validity is the caller's contract.
        unsafe { write_scalar(out, shape) };
        Ok(())
    })
}

/// Checks every field of `*shape`: `LWF_OK` or `LWF_INVALID_SHAPE` (or `LWF_NULL_POINTER` /
/// `LWF_MISALIGNED` for the pointer).
///
/// # Safety
/// `shape` is NULL or valid for one read of `LwfShape`.
#[no_mangle]
pub unsafe extern "C" fn lwf_shape_validate(shape: *const LwfShape) -> LwfStatus {
    // SAFETY: forwarded contract.
    guard(|| unsafe { read_shape(shape) }.map(|_| ()))
}

/// Writes a size derived from a valid shape.
///
/// # Safety
/// `shape` NULL or readable, `out` NULL or writable.
unsafe fn size_query(
    shape: *const LwfShape,
    out: *mut usize,
    size: impl FnOnce(&Shape) -> Result<usize, LwfStatus>,
) -> LwfStatus {
    guard(|| {
        // SAFETY: forwarded contract.
        let shape = unsafe { read_shape(shape) }?;
        let out = out_scalar(out)?;
        let value = size(&shape)?;
        // SAFETY: `out` passed out_scalar; validity is the caller's contract.
        unsafe { write_scalar(out, value) };
        Ok(())
    })
}

/// Number P of parameters (doubles) of the flat parameter vector: the length of the gradient
/// buffer of `lwf_model_loss_grad` and of `lwf_model_get_params` / `lwf_model_set_params`.
///
/// # Safety
/// `shape` NULL or valid for a read, `out_count` NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn lwf_shape_param_count(
    shape: *const LwfShape,
    out_count: *mut usize,
) -> LwfStatus {
    // SAFETY: forwarded contract.
    unsafe { size_query(shape, out_count, |s| Ok(s.param_len())) }
}

/// Number of doubles of the workspace that `lwf_model_log_prob_ws` and `lwf_model_sample_ws`
/// need (independent of the batch size).
///
/// # Safety
/// `shape` NULL or valid for a read, `out_count` NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn lwf_shape_workspace_count(
    shape: *const LwfShape,
    out_count: *mut usize,
) -> LwfStatus {
    // SAFETY: forwarded contract.
    unsafe { size_query(shape, out_count, |s| Ok(s.eval_workspace_len())) }
}

/// Bytes of caller memory `lwf_model_init` / `lwf_model_load` need for a model of this shape
/// (parameters, Adam moments, gradient scratch and workspace; independent of batch sizes).
/// The memory must be aligned to `lwf_model_align()` bytes.
///
/// # Safety
/// `shape` NULL or valid for a read, `out_bytes` NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn lwf_shape_model_size(
    shape: *const LwfShape,
    out_bytes: *mut usize,
) -> LwfStatus {
    // SAFETY: forwarded contract.
    unsafe { size_query(shape, out_bytes, |s| Ok(layout(s)?.total_bytes)) }
}

/// Bytes that `lwf_model_save` writes for a model of this shape.
///
/// # Safety
/// `shape` NULL or valid for a read, `out_bytes` NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn lwf_shape_serialized_size(
    shape: *const LwfShape,
    out_bytes: *mut usize,
) -> LwfStatus {
    // SAFETY: forwarded contract.
    unsafe {
        size_query(shape, out_bytes, |s| {
            Ok(lwflow::format::serialized_len(s, 8))
        })
    }
}
