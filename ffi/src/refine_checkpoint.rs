//! Checkpoints of a refinement: its whole work memory (header, state, samples with their
//! log-likelihoods, proposals) framed as bytes with a length and a CRC-32, so a host can save
//! a refinement after any round (or between `lwf_refine_ask` and `lwf_refine_tell`) and, after
//! a crash, restore it into fresh memory that continues bit-identically, without repeating a
//! likelihood call. A plain byte copy of the work memory continues too, but only the header
//! and state inside it are checksummed; the checkpoint covers every byte, so a truncated or
//! corrupted one is `LWF_BAD_FORMAT`, never a wrong resume.
//!
//! Layout (little-endian):
//!
//! | offset | bytes | field |
//! |---:|---:|---|
//! | 0 | 4 | magic `LWRC` |
//! | 4 | 2 | version (u16, currently 1) |
//! | 6 | 2 | reserved, zero |
//! | 8 | 8 | total length L in bytes, trailer included (u64) |
//! | 16 | L − 20 | the refinement's work memory, byte for byte |
//! | L − 4 | 4 | CRC-32 (`lwflow::format::crc32`) of every byte before it |

use crate::guard::{self, check_ptr, disjoint, guard, input, out_scalar, write_scalar, Span};
use crate::refine::{open, LwfRefine, MIN_WORK_BYTES};
use crate::status::LwfStatus::{self, *};
use core::ffi::c_void;
use lwflow::format::{check_frame, seal};

const MAGIC: [u8; 4] = *b"LWRC";
const VERSION: u16 = 1;
/// Magic, version, reserved, length.
const PREFIX: usize = 16;
/// The CRC-32.
const TRAILER: usize = 4;

/// The refinement's memory inside checkpoint bytes, after the frame checks (magic, version,
/// reserved bytes, length, checksum); `LWF_BAD_FORMAT` for any failure.
fn framed(bytes: &[u8]) -> Result<&[u8], LwfStatus> {
    if bytes.len() < PREFIX + TRAILER
        || bytes[0..4] != MAGIC
        || u16::from_le_bytes([bytes[4], bytes[5]]) != VERSION
    {
        return Err(LWF_BAD_FORMAT);
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&bytes[8..16]);
    let len = usize::try_from(u64::from_le_bytes(len)).unwrap_or(usize::MAX);
    let body = check_frame(bytes, len, PREFIX).map_err(|_| LWF_BAD_FORMAT)?;
    if bytes[6..8] != [0, 0] {
        return Err(LWF_BAD_FORMAT);
    }
    Ok(&bytes[PREFIX..body])
}

/// Writes the bytes of a checkpoint of `refine` (`lwf_refine_checkpoint`) to `*out_bytes`:
/// its work memory (`lwf_refine_work_size`) and 20 bytes of frame.
///
/// Errors: `LWF_NULL_POINTER`, `LWF_MISALIGNED`, `LWF_INVALID_MODEL` (not a refinement, or its
/// memory was overwritten), `LWF_OVERLAPPING_BUFFERS`.
///
/// # Safety
/// `refine` NULL or a valid handle; `out_bytes` NULL or writable.
// Same shape as refine.rs::lwf_refine_batch_capacity (duplicates): C entry points each spell
// out their argument list and forward to one implementation; the value written differs.
#[no_mangle]
pub unsafe extern "C" fn lwf_refine_checkpoint_size(
    refine: *const LwfRefine,
    out_bytes: *mut usize,
) -> LwfStatus {
    guard(|| {
        let out = out_scalar(out_bytes)?;
        // SAFETY: forwarded contract.
        let o = unsafe { open(refine) }?;
        disjoint(Span::checked(out.cast_const(), 1)?, &[o.span])?;
        let bytes = o.total_bytes() + PREFIX + TRAILER;
        // SAFETY: checked by out_scalar; disjoint from the work memory.
        unsafe { write_scalar(out, bytes) };
        Ok(())
    })
}

/// Writes a checkpoint of the refinement into `out` (`out_len` bytes, at least
/// `lwf_refine_checkpoint_size`) and its length to `*out_written`: every byte of its work
/// memory with a length and a CRC-32. Take it after any `lwf_refine_tell` (or between ask and
/// tell, or from `lwf_refine_run`'s progress callback, which sees the state after its round);
/// `lwf_refine_restore` continues from it. The refinement is only read.
///
/// Errors: `LWF_NULL_POINTER`, `LWF_MISALIGNED`, `LWF_INVALID_MODEL`, `LWF_BUFFER_TOO_SMALL`
/// (`out_len`), `LWF_OVERLAPPING_BUFFERS`. On error nothing is written.
///
/// # Safety
/// `refine` NULL or a valid handle not written by another thread during the call; `out` NULL
/// or writable for `out_len` bytes; `out_written` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lwf_refine_checkpoint(
    refine: *const LwfRefine,
    out: *mut u8,
    out_len: usize,
    out_written: *mut usize,
) -> LwfStatus {
    guard(|| {
        let written = out_scalar(out_written)?;
        // SAFETY: forwarded contract.
        let o = unsafe { open(refine) }?;
        let total = o.total_bytes();
        let need = total + PREFIX + TRAILER;
        let out_span = Span::checked(out.cast_const(), out_len)?;
        disjoint(out_span, &[o.span])?;
        disjoint(Span::checked(written.cast_const(), 1)?, &[o.span, out_span])?;
        if out.is_null() || out_len < need {
            return Err(LWF_BUFFER_TOO_SMALL);
        }
        // SAFETY: the handle's memory holds `total` bytes (checked by `open`), only read.
        let memory = unsafe { input(refine.cast::<u8>(), total) }?;
        // SAFETY: checked above; disjoint from the work memory and `out_written`.
        let dst = unsafe { guard::output(out, need) }?;
        dst[0..4].copy_from_slice(&MAGIC);
        dst[4..6].copy_from_slice(&VERSION.to_le_bytes());
        dst[6..8].copy_from_slice(&[0, 0]);
        dst[8..16].copy_from_slice(&(need as u64).to_le_bytes());
        dst[PREFIX..PREFIX + total].copy_from_slice(memory);
        seal(dst);
        // SAFETY: checked by out_scalar; disjoint from everything else.
        unsafe { write_scalar(written, need) };
        Ok(())
    })
}

/// Restores a refinement from checkpoint `bytes` (`len` bytes, as `lwf_refine_checkpoint`
/// wrote them) into the caller's work memory `work` (`work_len` bytes, at least
/// `lwf_refine_work_size` of the refinement's shape and config, i.e. the checkpoint's length
/// minus 20; 8-byte aligned), and writes its handle (the address `work`) to `*out_refine`.
/// `dim` is the refinement's dimension, as given to `lwf_refine_init` (the points of
/// `lwf_refine_ask` have `dim` coordinates). The restored refinement continues exactly as the
/// one checkpointed would have: the same batches, rounds and model, bit for bit.
///
/// Errors: `LWF_NULL_POINTER`, `LWF_MISALIGNED`, `LWF_BAD_FORMAT` (truncated, trailing bytes,
/// not a refinement checkpoint, another version, a checksum mismatch, or contents that are not
/// a valid refinement), `LWF_LENGTH_MISMATCH` (a refinement of another dimension),
/// `LWF_BUFFER_TOO_SMALL` (`work_len`), `LWF_OVERLAPPING_BUFFERS`. For the last two kinds of
/// contents `work` was written to but holds no refinement; otherwise on error nothing is
/// written.
///
/// # Safety
/// `work` NULL or writable for `work_len` bytes; `bytes` NULL or readable for `len` bytes;
/// `out_refine` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lwf_refine_restore(
    work: *mut c_void,
    work_len: usize,
    bytes: *const u8,
    len: usize,
    dim: usize,
    out_refine: *mut *mut LwfRefine,
) -> LwfStatus {
    guard(|| {
        let out = out_scalar(out_refine)?;
        let in_span = Span::checked(bytes, len)?;
        let work = work.cast::<u8>();
        check_ptr(work.cast_const(), work_len)?;
        if work.is_null() {
            return Err(LWF_BUFFER_TOO_SMALL);
        }
        if (work as usize) % 8 != 0 {
            return Err(LWF_MISALIGNED);
        }
        // SAFETY: forwarded contract; only read.
        let memory = framed(unsafe { input(bytes, len) }?)?;
        // The header's total size (its second word, written natively) must be the memory's:
        // `open` then reads nothing beyond it.
        let total = memory
            .get(8..16)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map(u64::from_ne_bytes);
        if memory.len() < MIN_WORK_BYTES || total != Some(memory.len() as u64) {
            return Err(LWF_BAD_FORMAT);
        }
        if work_len < memory.len() {
            return Err(LWF_BUFFER_TOO_SMALL);
        }
        let work_span = Span::raw(work, memory.len());
        disjoint(work_span, &[in_span])?;
        disjoint(Span::checked(out.cast_const(), 1)?, &[work_span, in_span])?;
        // SAFETY: `work` is writable for `memory.len()` bytes (checked) and disjoint from it.
        unsafe { core::ptr::copy_nonoverlapping(memory.as_ptr(), work, memory.len()) };
        // SAFETY: the memory just written, aligned and `memory.len()` bytes long.
        let status = match unsafe { open(work.cast::<LwfRefine>()) } {
            Ok(o) if o.total_bytes() != memory.len() => Err(LWF_BAD_FORMAT),
            Ok(o) if o.dim() != dim => Err(LWF_LENGTH_MISMATCH),
            Ok(_) => Ok(()),
            Err(_) => Err(LWF_BAD_FORMAT),
        };
        if let Err(status) = status {
            // Contents that are no refinement, or not the one asked for: leave no handle.
            // SAFETY: the header's first word was written above (the memory is longer).
            unsafe { core::ptr::write_bytes(work, 0, 8) };
            return Err(status);
        }
        // SAFETY: checked by out_scalar; disjoint from the work memory.
        unsafe { write_scalar(out, work.cast::<LwfRefine>()) };
        Ok(())
    })
}
