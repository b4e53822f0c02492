//! The little-endian field encoding shared by the crate's checksummed byte formats (the
//! refinement state, `train::refine`'s `RefineState::to_bytes`, and the fit checkpoint,
//! `crate::train::checkpoint`): a counting writer, a bounds-checked reader, the encodings of
//! the types both formats hold (shapes, fit settings, training reports) and the frame checks
//! both run (stored length, then CRC-32).
//!
//! Conventions: every `usize` is a `u64`, every enum a one-byte code, every `Option` a presence
//! byte 0/1 followed by its value only when present, every real of the flow in the width of
//! the stored float type.

use crate::error::{Error, FormatError};
use crate::real::Real;
use crate::shape::{Activation, BaseKind, Shape};

/// Encoded bytes of a [`Shape`].
pub(crate) const SHAPE_LEN: usize = 4 * 8 + 1 + 8 + 1 + 4 + 1 + 1;

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

    /// As [`reals_into`](Self::reals_into), but +∞ is read too: Adam's second moments, which a
    /// squared gradient beyond the largest real leaves at +∞ in the fit itself.
    pub(crate) fn second_moments_into<T: Real>(&mut self, out: &mut [T]) -> Result<(), Error> {
        let s = self.slice(out.len().saturating_mul(T::BYTES))?;
        for (v, c) in out.iter_mut().zip(s.chunks_exact(T::BYTES)) {
            *v = T::read_le(c, T::BYTES).ok_or(bad())?;
            if !(v.is_finite() || v.to_f64() == f64::INFINITY) {
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
}

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32 (IEEE, reflected, init and final xor `0xFFFF_FFFF`).
pub fn crc32(bytes: &[u8]) -> u32 {
    !bytes.iter().fold(!0u32, |c, &b| {
        CRC_TABLE[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8)
    })
}
