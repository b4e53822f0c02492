//! The checkpoint sink of the resumable fits: the host's callback and its buffer, checked
//! once, handed every checkpoint. Its own module so that the fits (`fit`) and the resumption
//! (`checkpoint`) both use it without depending on each other.

use crate::guard::{self, check_ptr, Span};
use crate::status::LwfStatus::{self, *};
use core::ffi::{c_int, c_void};
use lwflow::train::{FitCheckpoint, FitReport, FitStage};
use lwflow::Error;

/// Receives the checkpoints of a resumable fit (`lwf_model_fit_prior_box_resumable`,
/// `lwf_model_fit_samples_resumable`, `lwf_model_fit_resume`). `bytes` (`len` bytes, in the
/// caller's checkpoint buffer, valid during the call only) hold everything needed to finish
/// the fit with `lwf_model_fit_resume`: save them (e.g. to a file) before returning. `epoch`
/// is 0 for the checkpoint of the weighted samples (taken after the last likelihood call,
/// before the base is fitted), then the epoch after which it was taken. Return 0 to continue,
/// non-zero to stop the fit with `LWF_CANCELLED`: after an epoch as the progress callback
/// does (the best model so far, its handle and the report are written), at epoch 0 with
/// nothing written (there is no model yet). Same rules as `LwfLogLikelihoodFn`; the callback
/// must not write to the fit's memory, its work or its checkpoint buffer.
pub type LwfCheckpointFn = Option<
    unsafe extern "C" fn(bytes: *const u8, len: usize, epoch: usize, user: *mut c_void) -> c_int,
>;

/// The checkpoint arguments of a resumable fit, unchecked.
#[derive(Clone, Copy)]
pub(crate) struct SinkArgs {
    pub(crate) callback: LwfCheckpointFn,
    pub(crate) user: *mut c_void,
    pub(crate) buf: *mut c_void,
    pub(crate) len: usize,
}

impl SinkArgs {
    /// No checkpoints.
    pub(crate) const NONE: SinkArgs = SinkArgs {
        callback: None,
        user: core::ptr::null_mut(),
        buf: core::ptr::null_mut(),
        len: 0,
    };

    /// No sink without a callback (the buffer is then ignored); with one, a buffer of at least
    /// `need` bytes (`LWF_NULL_POINTER` for NULL with a length, `LWF_BUFFER_TOO_SMALL` for a
    /// shorter or empty one).
    pub(crate) fn check(self, need: usize) -> Result<Option<Sink>, LwfStatus> {
        let Some(callback) = self.callback else {
            return Ok(None);
        };
        let buf = self.buf.cast::<u8>();
        check_ptr(buf.cast_const(), self.len)?;
        if buf.is_null() || self.len < need {
            return Err(LWF_BUFFER_TOO_SMALL);
        }
        Ok(Some(Sink {
            callback,
            user: self.user,
            buf,
            len: need,
            stopped: false,
            failed: None,
        }))
    }
}

/// A checked checkpoint sink: the callback and the first `len` bytes of its buffer.
pub(crate) struct Sink {
    callback: unsafe extern "C" fn(*const u8, usize, usize, *mut c_void) -> c_int,
    user: *mut c_void,
    buf: *mut u8,
    len: usize,
    /// The callback asked to stop.
    stopped: bool,
    /// Writing a checkpoint failed (cannot happen with a buffer of the checked size).
    failed: Option<LwfStatus>,
}

impl Sink {
    /// The bytes the sink writes, for the overlap checks.
    pub(crate) fn span(&self) -> Span {
        Span::raw(self.buf, self.len)
    }

    /// Writes the checkpoint into the buffer and hands it to the callback; `false` to stop.
    pub(crate) fn take(&mut self, c: &FitCheckpoint<'_, f64>) -> bool {
        // SAFETY: checked by SinkArgs::check (non-NULL, `len` bytes) and disjoint from every
        // other buffer of the call (check_outputs); the callback reads it only during its
        // call, after this slice is gone.
        let written = unsafe { guard::output(self.buf, self.len) }
            .and_then(|out| c.to_bytes(out).map_err(LwfStatus::from));
        let len = match written {
            Ok(len) => len,
            Err(e) => {
                self.failed = Some(e);
                return false;
            }
        };
        let epoch = match c.stage() {
            FitStage::Samples => 0,
            FitStage::Epoch(k) => k,
        };
        // SAFETY: the callback's contract (LwfCheckpointFn): `len` bytes at `buf`, valid during
        // the call.
        let go = unsafe { (self.callback)(self.buf, len, epoch, self.user) } == 0;
        self.stopped |= !go;
        go
    }

    /// The status of a fit that ended with `r`: a failed checkpoint's, `LWF_CANCELLED` for a
    /// stop before the first epoch (the core's `Callback`), else the fit's.
    pub(crate) fn outcome(
        sink: Option<&Sink>,
        r: Result<FitReport, Error>,
    ) -> Result<FitReport, LwfStatus> {
        if let Some(e) = sink.and_then(|s| s.failed) {
            return Err(e);
        }
        match r {
            Ok(f) => Ok(f),
            Err(Error::Callback) if sink.is_some_and(|s| s.stopped) => Err(LWF_CANCELLED),
            Err(e) => Err(e.into()),
        }
    }
}
