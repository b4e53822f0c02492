//! The little-endian field encoding shared by the crate's checksummed byte formats (the
//! refinement state, `train::refine`'s `RefineState::to_bytes`, and the fit checkpoint,
//! [`crate::train::checkpoint`]): a counting writer, a bounds-checked reader, the encodings of
//! the types both formats hold (shapes, fit settings, training reports) and the frame checks
//! both run (stored length, then CRC-32).
//!
//! Conventions: every `usize` is a `u64`, every enum a one-byte code, every `Option` a presence
//! byte 0/1 followed by its value only when present, every real of the flow in the width of
//! the stored float type.

use crate::base::em::EmConfig;
use crate::error::{Error, FormatError};
use crate::format::crc32;
use crate::optim::adam::Adam;
use crate::real::Real;
use crate::shape::{Activation, BaseKind, Shape};
use crate::train::fit::{BaseChoice, FitConfig};
use crate::train::trainer::{Schedule, StopReason, TrainConfig, TrainReport};

/// Encoded bytes of a [`Shape`].
pub(crate) const SHAPE_LEN: usize = 4 * 8 + 1 + 8 + 1 + 4 + 1 + 1;
/// Encoded bytes of an [`EmConfig`].
const EM_LEN: usize = 6 * 8;
/// Encoded bytes of a [`TrainConfig`].
const TRAIN_CONFIG_LEN: usize = 2 * 8 + 5 * 8 + 1 + 8 + 8 + 3 * 8 + 8;
/// Encoded bytes of a [`FitConfig`].
pub(crate) const FIT_LEN: usize = 1 + 8 + EM_LEN + TRAIN_CONFIG_LEN + 8;
/// Encoded bytes of a [`TrainReport`].
pub(crate) const TRAIN_REPORT_LEN: usize = 4 * 8 + 2 * 8 + 1;

/// A field that cannot be: an unknown code, an invalid boolean, a count or shape out of range.
pub(crate) fn bad() -> Error {
    Error::Format(FormatError::BadHeader)
}

/// A non-finite value where the writer never stores one.
pub(crate) fn non_finite() -> Error {
    Error::Format(FormatError::NonFiniteParameter)
}

/// The frame checks after magic and version, in order: the stored total length `len` against
/// the slice (shorter: `Truncated`, longer: `TrailingBytes`; shorter than `prefix` and the
/// trailer: `BadHeader`), then the CRC-32 trailer over every byte before it (`Checksum`).
/// Returns the end of the body (`len − 4`).
pub fn check_frame(bytes: &[u8], len: usize, prefix: usize) -> Result<usize, Error> {
    if bytes.len() < len {
        return Err(FormatError::Truncated.into());
    }
    if bytes.len() > len {
        return Err(FormatError::TrailingBytes.into());
    }
    if len < prefix + 4 {
        return Err(bad());
    }
    let body = len - 4;
    let mut stored = [0u8; 4];
    stored.copy_from_slice(&bytes[body..len]);
    if crc32(&bytes[..body]) != u32::from_le_bytes(stored) {
        return Err(FormatError::Checksum.into());
    }
    Ok(body)
}

/// Writes the CRC-32 of `out[..len − 4]` into its last four bytes (`len = out.len()` ≥ 4).
pub fn seal(out: &mut [u8]) {
    let body = out.len().saturating_sub(4);
    let crc = crc32(&out[..body]);
    if let Some(t) = out.get_mut(body..) {
        t.copy_from_slice(&crc.to_le_bytes());
    }
}

/// Writes fields in order; counts every byte, writes only those that fit (a first pass over
/// an empty slice measures).
pub(crate) struct Writer<'a> {
    pub(crate) out: &'a mut [u8],
    pub(crate) at: usize,
}

impl Writer<'_> {
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        let end = self.at.saturating_add(b.len());
        if let Some(dst) = self.out.get_mut(self.at..end) {
            dst.copy_from_slice(b);
        }
        self.at = end;
    }
    pub(crate) fn u8(&mut self, v: u8) {
        self.bytes(&[v]);
    }
    pub(crate) fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
    pub(crate) fn usize(&mut self, v: usize) {
        self.u64(v as u64);
    }
    pub(crate) fn f64(&mut self, v: f64) {
        self.u64(v.to_bits());
    }
    pub(crate) fn opt_f64(&mut self, v: Option<f64>) {
        self.bool(v.is_some());
        if let Some(v) = v {
            self.f64(v);
        }
    }
    pub(crate) fn f64s(&mut self, v: &[f64]) {
        for &x in v {
            self.f64(x);
        }
    }
    /// Reals of the flow, `T::BYTES` each.
    pub(crate) fn reals<T: Real>(&mut self, v: &[T]) {
        let len = v.len().saturating_mul(T::BYTES);
        let end = self.at.saturating_add(len);
        if let Some(dst) = self.out.get_mut(self.at..end) {
            for (c, &x) in dst.chunks_exact_mut(T::BYTES).zip(v) {
                x.write_le(c);
            }
        }
        self.at = end;
    }

    pub(crate) fn shape(&mut self, s: &Shape) {
        self.usize(s.dim);
        self.usize(s.hidden);
        self.usize(s.hidden_layers);
        self.usize(s.couplings);
        let (code, k) = s.base.code();
        self.u8(code);
        self.usize(k);
        self.u8(s.activation.code());
        self.bytes(&s.clamp.to_le_bytes());
        self.bool(s.affine);
        self.bool(s.bounded);
    }

    pub(crate) fn fit_config(&mut self, f: &FitConfig) {
        let (code, k) = match f.base {
            BaseChoice::Gaussian => (0, 1),
            BaseChoice::PaperMixture(k) => (1, k),
            BaseChoice::Mixture(k) => (2, k),
            BaseChoice::Auto(k) => (3, k),
        };
        self.u8(code);
        self.usize(k);
        let e = &f.em;
        self.usize(e.max_iter);
        self.f64(e.tol);
        self.f64(e.var_floor);
        self.usize(e.restarts);
        self.f64(e.min_weight);
        self.u64(e.seed);
        self.train_config(&f.train);
        self.u64(f.init_seed);
    }

    fn train_config(&mut self, t: &TrainConfig) {
        self.usize(t.max_epochs);
        self.usize(t.batch_size);
        self.f64(t.adam.lr);
        self.f64(t.adam.beta1);
        self.f64(t.adam.beta2);
        self.f64(t.adam.eps);
        self.f64(t.adam.weight_decay);
        let (code, min_factor) = match t.schedule {
            Schedule::Constant => (0, 0.0),
            Schedule::Cosine { min_factor } => (1, min_factor),
        };
        self.u8(code);
        self.f64(min_factor);
        self.usize(t.patience);
        self.f64(t.validation_fraction);
        self.f64(t.clip_norm);
        self.f64(t.min_weight);
        self.u64(t.seed);
    }

    pub(crate) fn train_report(&mut self, t: &TrainReport) {
        self.usize(t.epochs);
        self.usize(t.best_epoch);
        self.f64(t.best_val_loss);
        self.f64(t.initial_val_loss);
        self.u64(t.steps);
        self.u64(t.skipped_steps);
        self.u8(match t.stop {
            StopReason::MaxEpochs => 0,
            StopReason::EarlyStopped => 1,
            StopReason::Cancelled => 2,
        });
    }
}

/// Reads fields in order; running out of bytes is `Truncated` (after the frame checks it
/// cannot happen, but nothing here relies on that).
pub(crate) struct Reader<'a> {
    pub(crate) b: &'a [u8],
    pub(crate) at: usize,
}

impl Reader<'_> {
    pub(crate) fn slice(&mut self, len: usize) -> Result<&[u8], Error> {
        let end = self.at.checked_add(len).ok_or(bad())?;
        let s = self
            .b
            .get(self.at..end)
            .ok_or(Error::Format(FormatError::Truncated))?;
        self.at = end;
        Ok(s)
    }
    pub(crate) fn take<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let s = self.slice(N)?;
        <[u8; N]>::try_from(s).map_err(|_| Error::Format(FormatError::Truncated))
    }
    pub(crate) fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take::<1>()?[0])
    }
    pub(crate) fn bool(&mut self) -> Result<bool, Error> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(bad()),
        }
    }
    pub(crate) fn u64(&mut self) -> Result<u64, Error> {
        Ok(u64::from_le_bytes(self.take()?))
    }
    pub(crate) fn usize(&mut self) -> Result<usize, Error> {
        usize::try_from(self.u64()?).map_err(|_| bad())
    }
    pub(crate) fn f64(&mut self) -> Result<f64, Error> {
        Ok(f64::from_bits(self.u64()?))
    }
    pub(crate) fn finite(&mut self) -> Result<f64, Error> {
        let v = self.f64()?;
        if v.is_finite() {
            Ok(v)
        } else {
            Err(non_finite())
        }
    }
    pub(crate) fn opt_f64(&mut self) -> Result<Option<f64>, Error> {
        Ok(if self.bool()? {
            Some(self.f64()?)
        } else {
            None
        })
    }
    /// `out.len()` doubles, any bits.
    pub(crate) fn f64s_into(&mut self, out: &mut [f64]) -> Result<(), Error> {
        for v in out {
            *v = self.f64()?;
        }
        Ok(())
    }
    /// `out.len()` reals of `T::BYTES` each, all finite (`NonFiniteParameter` otherwise).
    pub(crate) fn reals_into<T: Real>(&mut self, out: &mut [T]) -> Result<(), Error> {
        let s = self.slice(out.len().saturating_mul(T::BYTES))?;
        for (v, c) in out.iter_mut().zip(s.chunks_exact(T::BYTES)) {
            *v = T::read_le(c, T::BYTES).ok_or(bad())?;
            if !v.is_finite() {
                return Err(non_finite());
            }
        }
        Ok(())
    }

    /// A shape; an invalid one is `BadHeader`.
    pub(crate) fn shape(&mut self) -> Result<Shape, Error> {
        let dim = self.usize()?;
        let hidden = self.usize()?;
        let hidden_layers = self.usize()?;
        let couplings = self.usize()?;
        let code = self.u8()?;
        let k = self.usize()?;
        let base = BaseKind::from_code(code.into(), k).ok_or_else(bad)?;
        let activation = Activation::from_code(self.u8()?.into()).ok_or_else(bad)?;
        let clamp = f32::from_le_bytes(self.take()?);
        let affine = self.bool()?;
        let bounded = self.bool()?;
        let shape = Shape {
            dim,
            hidden,
            hidden_layers,
            couplings,
            base,
            activation,
            clamp,
            affine,
            bounded,
        };
        shape.validate().map_err(|_| bad())?;
        Ok(shape)
    }

    /// Fit settings with known codes and finite reals (`NonFiniteParameter`); their ranges
    /// are the caller's to check.
    pub(crate) fn fit_config(&mut self) -> Result<FitConfig, Error> {
        let code = self.u8()?;
        let k = self.usize()?;
        let base = match code {
            0 if k == 1 => BaseChoice::Gaussian,
            1 => BaseChoice::PaperMixture(k),
            2 => BaseChoice::Mixture(k),
            3 => BaseChoice::Auto(k),
            _ => return Err(bad()),
        };
        let em = EmConfig {
            max_iter: self.usize()?,
            tol: self.finite()?,
            var_floor: self.finite()?,
            restarts: self.usize()?,
            min_weight: self.finite()?,
            seed: self.u64()?,
        };
        let train = self.train_config()?;
        Ok(FitConfig {
            base,
            em,
            train,
            init_seed: self.u64()?,
        })
    }

    fn train_config(&mut self) -> Result<TrainConfig, Error> {
        let max_epochs = self.usize()?;
        let batch_size = self.usize()?;
        let adam = Adam {
            lr: self.finite()?,
            beta1: self.finite()?,
            beta2: self.finite()?,
            eps: self.finite()?,
            weight_decay: self.finite()?,
        };
        let schedule_code = self.u8()?;
        let min_factor = self.finite()?;
        let schedule = match schedule_code {
            0 if min_factor.to_bits() == 0 => Schedule::Constant,
            1 => Schedule::Cosine { min_factor },
            _ => return Err(bad()),
        };
        Ok(TrainConfig {
            max_epochs,
            batch_size,
            adam,
            schedule,
            patience: self.usize()?,
            validation_fraction: self.finite()?,
            clip_norm: self.finite()?,
            min_weight: self.finite()?,
            seed: self.u64()?,
        })
    }

    pub(crate) fn train_report(&mut self) -> Result<TrainReport, Error> {
        Ok(TrainReport {
            epochs: self.usize()?,
            best_epoch: self.usize()?,
            best_val_loss: self.f64()?,
            initial_val_loss: self.f64()?,
            steps: self.u64()?,
            skipped_steps: self.u64()?,
            stop: match self.u8()? {
                0 => StopReason::MaxEpochs,
                1 => StopReason::EarlyStopped,
                2 => StopReason::Cancelled,
                _ => return Err(bad()),
            },
        })
    }
}

/// Settings a fit accepts: the trainer's and EM's own checks (`NonFinite` is reported as
/// `NonFiniteParameter`, anything else as `BadHeader`). The core checks the EM settings only
/// when EM runs; stored settings must be ones a fit accepts whatever the base.
pub(crate) fn check_fit_config(f: &FitConfig) -> Result<(), Error> {
    let map = |e: Error| match e {
        Error::NonFinite => non_finite(),
        _ => bad(),
    };
    f.train.validate().map_err(map)?;
    f.em.validate().map_err(map)?;
    if f.base.max_components() == 0 {
        return Err(bad());
    }
    Ok(())
}
