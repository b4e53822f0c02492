//! Saving a model to and loading it from a byte buffer (the core's checksummed little-endian
//! format; see `lwflow::format`). Loading into caller memory is `lwf_model_load` (model.rs).

use crate::guard::{disjoint, guard, input, out_scalar, output, write_scalar, Span};
use crate::model::{open_ref, LwfModel};
use crate::shape::LwfShape;
use crate::status::LwfStatus;

/// Writes the model (shape and parameters as 64-bit floats, CRC-32 protected; Adam state is
/// not saved) into `out_bytes` (`bytes_len >= lwf_shape_serialized_size`, else
/// `LWF_BUFFER_TOO_SMALL`) and the number of bytes written to `*out_written`.
///
/// # Safety
/// `model` NULL or a valid handle not written by another thread during the call; `out_bytes`
/// NULL or writable for `bytes_len` bytes; `out_written` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lwf_model_save(
    model: *const LwfModel,
    out_bytes: *mut u8,
    bytes_len: usize,
    out_written: *mut usize,
) -> LwfStatus {
    guard(|| {
        let bytes_span = Span::checked(out_bytes.cast_const(), bytes_len)?;
        let written = out_scalar(out_written)?;
        let written_span = Span::checked(written.cast_const(), 1)?;
        // SAFETY: forwarded contract.
        let m = unsafe { open_ref(model, &[bytes_span, written_span]) }?;
        disjoint(bytes_span, &[written_span])?;
        // SAFETY: forwarded contract; disjoint from the model and `out_written` (checked).
        let bytes = unsafe { output(out_bytes, bytes_len) }?;
        let n = lwflow::format::save(&m.shape, m.params, bytes)?;
        // SAFETY: checked by out_scalar; disjoint from the other buffers.
        unsafe { write_scalar(written, n) };
        Ok(())
    })
}

/// Checks model bytes completely (magic, version, length, checksum, header, finite
/// parameters) and writes the stored shape to `*out_shape`, so the caller can size memory for
/// `lwf_model_load` with `lwf_shape_model_size`. `LWF_BAD_FORMAT` for any defect.
///
/// # Safety
/// `bytes` NULL or readable for `bytes_len` bytes; `out_shape` NULL or writable.
// Same shape as checkpoint.rs::lwf_fit_checkpoint_inspect (duplicates): C entry points each
// spell out their argument list and forward to one implementation; the formats read differ.
#[no_mangle]
pub unsafe extern "C" fn lwf_model_inspect(
    bytes: *const u8,
    bytes_len: usize,
    out_shape: *mut LwfShape,
) -> LwfStatus {
    guard(|| {
        let out = out_scalar(out_shape)?;
        disjoint(
            Span::checked(out.cast_const(), 1)?,
            &[Span::checked(bytes, bytes_len)?],
        )?;
        // SAFETY: forwarded contract; disjoint from the output (checked).
        let bytes = unsafe { input(bytes, bytes_len) }?;
        let (shape, _) = lwflow::format::inspect(bytes)?;
        let c = LwfShape::from_core(&shape);
        // SAFETY: checked by out_scalar.
        unsafe { write_scalar(out, c) };
        Ok(())
    })
}
