//! The layout of a model in caller memory (the table in `model`'s module documentation): its
//! alignment, the header's size and every region's length, computed from a core shape. Its
//! own module so that sizing a shape (`shape`) and opening a model (`model`) both use it
//! without depending on each other.

use crate::status::LwfStatus::{self, LWF_INVALID_SHAPE};
use core::mem::size_of;
use lwflow::Shape;

/// Alignment the model memory needs, in bytes.
pub(crate) const MODEL_ALIGN: usize = 8;
/// Bytes reserved for the header (parameters start here, so 64-byte aligned memory gives
/// 64-byte aligned parameters).
pub(crate) const HEADER_BYTES: usize = 128;

/// Element counts of the regions after the header.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    pub(crate) params: usize,
    pub(crate) workspace: usize,
    /// Bytes of the whole model.
    pub(crate) total_bytes: usize,
}

/// The layout of a valid shape, or `LWF_INVALID_SHAPE` if it would not fit the address space.
pub(crate) fn layout(shape: &Shape) -> Result<Layout, LwfStatus> {
    let params = shape.param_len();
    let workspace = shape.workspace_len();
    let total_bytes = params
        .checked_mul(4)
        .and_then(|v| v.checked_add(workspace))
        .and_then(|v| v.checked_mul(size_of::<f64>()))
        .and_then(|v| v.checked_add(HEADER_BYTES))
        .filter(|&v| v <= isize::MAX as usize)
        .ok_or(LWF_INVALID_SHAPE)?;
    Ok(Layout {
        params,
        workspace,
        total_bytes,
    })
}
