//! Status codes: the return value of every fallible exported function, and their messages.

use core::ffi::{c_char, c_int, CStr};
use lwflow::Error;

/// Result of every fallible `lwf_*` call. The numbers are part of the ABI: they are explicit,
/// never reused and never renumbered; new codes are only ever appended. On any status other
/// than `LWF_OK` the function wrote nothing to its outputs (exceptions: `LWF_CANCELLED`, whose
/// outputs are valid; `LWF_NON_FINITE` from an evaluation whose result overflowed, which sets
/// its outputs to NaN; and `LWF_PANIC`). `LWF_OK` never comes with a NaN or infinite output,
/// except a log density of -inf where documented (outside the box of a bounded model).
// Same shape as refine.rs::LwfRefineStatus and the other repr(C) code enums (duplicates): each
// C enum spells out its own codes for the header.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LwfStatus {
    /// Success.
    LWF_OK = 0,
    /// A required pointer argument is NULL. (A NULL buffer with length 0 is an empty buffer,
    /// not an error of its own: the call then reports what an empty input means, e.g.
    /// `LWF_EMPTY_BATCH`.)
    LWF_NULL_POINTER = 1,
    /// A buffer (model memory, byte buffer, workspace, fit work memory) is shorter than its size
    /// query says.
    LWF_BUFFER_TOO_SMALL = 2,
    /// A length argument disagrees with the shape or batch (e.g. `theta_len != n * dim`,
    /// `grad_len != param_count`), or is too large to address.
    LWF_LENGTH_MISMATCH = 3,
    /// A pointer is not aligned as documented (8 bytes for `double` buffers and model memory).
    LWF_MISALIGNED = 4,
    /// The `LwfShape` is invalid (a field out of range, an unknown base or activation code).
    LWF_INVALID_SHAPE = 5,
    /// An argument is outside its documented range (negative weight, bad Adam
    /// hyper-parameter, wrong base kind for the call, ...).
    LWF_INVALID_ARGUMENT = 6,
    /// An input contains NaN or infinity (nothing written), or a result overflowed: a loss or
    /// gradient (nothing written: skip the step), or the output of `log_prob`, `sample`,
    /// `forward`, `inverse` or their `_ws` forms (possible with extreme finite parameters; the
    /// outputs are then all NaN and an rng is not advanced).
    LWF_NON_FINITE = 7,
    /// A batch of zero samples where at least one is required.
    LWF_EMPTY_BATCH = 8,
    /// The fit's likelihood callback returned non-zero, or wrote NaN / +inf (or left an entry
    /// unwritten) under `LWF_NON_FINITE_ERROR`.
    LWF_CALLBACK_FAILED = 9,
    /// The fit's progress or checkpoint callback asked to stop. Unlike every other
    /// non-`LWF_OK` status, the outputs are written: the model (the best parameters so far),
    /// its handle and the report; except when a checkpoint callback stopped a fit at its first
    /// checkpoint (epoch 0, before any model exists): nothing is written then.
    LWF_CANCELLED = 10,
    /// The fit's weights are all zero (every log-likelihood -inf or skipped) or their effective
    /// sample size is below `LwfFitConfig.min_ess`.
    LWF_DEGENERATE_WEIGHTS = 11,
    /// The model bytes are not a valid lwflow model (or the checkpoint bytes not a valid fit
    /// checkpoint): bad magic, unknown version, truncated, trailing bytes, checksum mismatch,
    /// invalid header or field, a non-finite parameter.
    LWF_BAD_FORMAT = 12,
    /// The fit's EM found no usable mixture for the base.
    LWF_NOT_CONVERGED = 13,
    /// An internal error was caught at the ABI boundary (a bug: please report it). Outputs and
    /// the model's contents are unspecified afterwards; re-initialise or reload the model.
    LWF_PANIC = 14,
    /// The handle does not point at a model initialised by `lwf_model_init` or
    /// `lwf_model_load` (bad tag), or the model's header was overwritten; for a refinement
    /// handle: not initialised by `lwf_refine_init`, or its header or state was overwritten.
    LWF_INVALID_MODEL = 15,
    /// An output buffer overlaps an input buffer, another output, or the model's memory.
    LWF_OVERLAPPING_BUFFERS = 16,
    /// Another call taking this `LwfModel *` is in progress (on another thread): a model is used
    /// by one thread at a time for those calls. Nothing was done and nothing written; retry
    /// later, or give each thread its own model or use the `_ws` variants with a workspace per
    /// thread.
    LWF_BUSY = 17,
}

use LwfStatus::*;

/// Every status, in numeric order (for tests and the message table).
pub(crate) const ALL_STATUSES: [LwfStatus; 18] = [
    LWF_OK,
    LWF_NULL_POINTER,
    LWF_BUFFER_TOO_SMALL,
    LWF_LENGTH_MISMATCH,
    LWF_MISALIGNED,
    LWF_INVALID_SHAPE,
    LWF_INVALID_ARGUMENT,
    LWF_NON_FINITE,
    LWF_EMPTY_BATCH,
    LWF_CALLBACK_FAILED,
    LWF_CANCELLED,
    LWF_DEGENERATE_WEIGHTS,
    LWF_BAD_FORMAT,
    LWF_NOT_CONVERGED,
    LWF_PANIC,
    LWF_INVALID_MODEL,
    LWF_OVERLAPPING_BUFFERS,
    LWF_BUSY,
];

impl LwfStatus {
    /// The NUL-terminated message of this status.
    pub(crate) const fn message(self) -> &'static CStr {
        match self {
            LWF_OK => c"success",
            LWF_NULL_POINTER => c"a required pointer argument is NULL",
            LWF_BUFFER_TOO_SMALL => c"buffer too small (see the size queries)",
            LWF_LENGTH_MISMATCH => c"buffer length does not match the shape or batch size",
            LWF_MISALIGNED => c"pointer not aligned (doubles and model memory need 8 bytes)",
            LWF_INVALID_SHAPE => c"invalid shape",
            LWF_INVALID_ARGUMENT => c"argument out of range",
            LWF_NON_FINITE => c"NaN or infinity in an input or in the result",
            LWF_EMPTY_BATCH => c"empty batch",
            LWF_CALLBACK_FAILED => c"a user callback failed or returned non-finite values",
            LWF_CANCELLED => c"cancelled by the progress callback",
            LWF_DEGENERATE_WEIGHTS => {
                c"degenerate weights: all zero or effective sample size below the floor"
            }
            LWF_BAD_FORMAT => {
                c"bad model or checkpoint bytes: wrong magic, version, length, checksum or field"
            }
            LWF_NOT_CONVERGED => c"fit did not converge",
            LWF_PANIC => c"internal error caught at the C ABI boundary (please report)",
            LWF_INVALID_MODEL => c"not an initialised lwflow model (bad handle or header)",
            LWF_OVERLAPPING_BUFFERS => c"an output buffer overlaps another buffer or the model",
            LWF_BUSY => c"the model is in use by another call (one thread per model at a time)",
        }
    }
}

impl From<Error> for LwfStatus {
    /// Every core error has exactly one status; the match is exhaustive so a new core variant
    /// fails to compile here until it is mapped.
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidShape(_) => LWF_INVALID_SHAPE,
            Error::LengthMismatch { .. } => LWF_LENGTH_MISMATCH,
            Error::BufferTooSmall { .. } => LWF_BUFFER_TOO_SMALL,
            Error::EmptyBatch => LWF_EMPTY_BATCH,
            Error::NonFinite => LWF_NON_FINITE,
            Error::InvalidArgument => LWF_INVALID_ARGUMENT,
            Error::Format(_) => LWF_BAD_FORMAT,
            Error::Callback => LWF_CALLBACK_FAILED,
            Error::DegenerateWeights => LWF_DEGENERATE_WEIGHTS,
            Error::NotConverged => LWF_NOT_CONVERGED,
        }
    }
}

const UNKNOWN: &CStr = c"unknown status code";

/// A static, NUL-terminated English message for a status code. Unknown codes (any `int` that
/// is not an `LwfStatus`) give "unknown status code". Never returns NULL; the string must not
/// be freed or modified.
#[no_mangle]
pub extern "C" fn lwf_status_message(status: c_int) -> *const c_char {
    let message = ALL_STATUSES
        .iter()
        .find(|s| **s as c_int == status)
        .map_or(UNKNOWN, |s| s.message());
    message.as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_dense_and_in_order() {
        for (i, s) in ALL_STATUSES.iter().enumerate() {
            assert_eq!(*s as usize, i);
        }
    }

    #[test]
    fn unknown_codes_have_a_message() {
        for code in [-1, 18, 1000, c_int::MIN, c_int::MAX] {
            // SAFETY: lwf_status_message returns a pointer to a static NUL-terminated string.
            let m = unsafe { CStr::from_ptr(lwf_status_message(code)) };
            assert_eq!(m, UNKNOWN);
        }
    }
}
