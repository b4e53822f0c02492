//! The model format: a little-endian byte layout with a CRC-32 trailer.
//!
//! | offset | bytes | field |
//! |---:|---:|---|
//! | 0 | 4 | magic `LWFM` |
//! | 4 | 2 | format version (u16, currently 3; version 2 is read too) |
//! | 6 | 1 | float width in bytes (4 or 8) |
//! | 7 | 1 | base kind (0 standard normal, 1 Gaussian, 2 mixture) |
//! | 8 | 4 | dim D (u32) |
//! | 12 | 4 | hidden width H (u32) |
//! | 16 | 4 | hidden layers per conditioner (u32) |
//! | 20 | 4 | coupling layers L (u32) |
//! | 24 | 4 | base components K (u32; 1 for Gaussian bases) |
//! | 28 | 1 | activation (0 ReLU, 1 tanh) |
//! | 29 | 1 | outer maps (version 3): bit 0 affine standardisation, bit 1 box; other bits zero. Zero in version 2 |
//! | 30 | 2 | reserved, zero |
//! | 32 | 4 | soft-clamp bound (f32) |
//! | 36 | 4 | parameter count P (u32) |
//! | 40 | P·width | parameters, in the flat-slice order (dense weights input-major) |
//! | 40 + P·width | 4 | CRC-32 (IEEE 802.3, as zlib's `crc32`) of every byte before it |
//!
//! [`load`] checks, in order: length ≥ header, magic, version, float width, total length,
//! checksum, header fields, finiteness of every parameter, the outer maps' parameters (a
//! positive diagonal of the affine map, lo < hi with a finite width for the box, in the width
//! being loaded); the first failure is returned as
//! [`FormatError`] and nothing is written to the output.

pub use crate::codec::{check_frame, crc32, seal};
use crate::error::{check_len, Error, FormatError};
use crate::real::Real;
use crate::shape::{Activation, BaseKind, Shape};

/// Bytes before the parameters.
pub const HEADER_LEN: usize = 40;

/// Bytes of a model of `shape` saved with floats of `width` bytes (4 or 8): the header, the
/// parameters and the checksum.
pub const fn serialized_len(shape: &Shape, width: usize) -> usize {
    HEADER_LEN
        .saturating_add(shape.param_len().saturating_mul(width))
        .saturating_add(4)
}
/// Magic bytes.
pub const MAGIC: [u8; 4] = *b"LWFM";
/// The format version this build writes. It reads this one and version 2 (the same layout
/// before the outer maps existed: its byte 29 is zero, so a version-2 file loads as the same
/// model it always was). Version 1 (before 0.1 was released) stored dense weights
/// output-major; it is refused as an unknown version.
pub const FORMAT_VERSION: u16 = 3;

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut v = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        v.copy_from_slice(s);
    }
    u32::from_le_bytes(v)
}

/// Writes the model into `out` (at least [`serialized_len`]`(shape, T::BYTES)` bytes) and
/// returns the number of bytes written.
pub fn save<T: Real>(shape: &Shape, params: &[T], out: &mut [u8]) -> Result<usize, Error> {
    shape.validate()?;
    check_len(params, shape.param_len())?;
    if !crate::real::all_finite(params) {
        return Err(Error::NonFinite);
    }
    let len = serialized_len(shape, T::BYTES);
    crate::error::check_min(out, len)?;
    let out = &mut out[..len];
    out.iter_mut().for_each(|b| *b = 0);
    let (base_tag, k) = shape.base.code();
    out[0..4].copy_from_slice(&MAGIC);
    out[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    out[6] = T::BYTES as u8;
    out[7] = base_tag;
    let fields = [
        shape.dim,
        shape.hidden,
        shape.hidden_layers,
        shape.couplings,
        k,
    ];
    for (i, &f) in fields.iter().enumerate() {
        out[8 + 4 * i..12 + 4 * i].copy_from_slice(&(f as u32).to_le_bytes());
    }
    out[28] = shape.activation.code();
    out[29] = u8::from(shape.affine) | (u8::from(shape.bounded) << 1);
    out[32..36].copy_from_slice(&shape.clamp.to_le_bytes());
    out[36..40].copy_from_slice(&(params.len() as u32).to_le_bytes());
    let body_end = len - 4;
    for (chunk, &p) in out[HEADER_LEN..body_end]
        .chunks_exact_mut(T::BYTES)
        .zip(params)
    {
        p.write_le(chunk);
    }
    let crc = crc32(&out[..body_end]);
    out[body_end..].copy_from_slice(&crc.to_le_bytes());
    Ok(len)
}

/// Reads and checks the header and checksum; returns the shape and the float width of the
/// stored parameters. Use it to size the parameter buffer before [`load`].
pub fn inspect(bytes: &[u8]) -> Result<(Shape, usize), Error> {
    check(bytes).map(|c| (c.shape, c.width))
}

/// Model bytes that passed every check of [`inspect`] (magic, version, length, checksum,
/// header, finite parameters, valid outer maps), kept so that [`Checked::read_into`] copies
/// them out without checking or checksumming them again.
#[derive(Clone, Copy, Debug)]
pub struct Checked<'a> {
    shape: Shape,
    width: usize,
    /// The stored parameters, `param_len · width` bytes.
    body: &'a [u8],
}

impl Checked<'_> {
    /// The stored shape.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// The stored float width in bytes (4 or 8).
    pub fn width(&self) -> usize {
        self.width
    }

    /// Copies the parameters into `params` (exactly `param_len` of the shape), converted to
    /// `T`. Nothing is written on error: an f64 file read as f32 can hold values beyond f32's
    /// range (`NonFiniteParameter`) or a box that collapses in f32 (`BadHeader`); those two
    /// checks run only when `T` is narrower than the stored width.
    pub fn read_into<T: Real>(&self, params: &mut [T]) -> Result<(), Error> {
        check_len(params, self.shape.param_len())?;
        let (body, width) = (self.body, self.width);
        if T::BYTES < width {
            if body
                .chunks_exact(width)
                .any(|c| !T::read_le(c, width).is_some_and(|v| v.is_finite()))
            {
                return Err(FormatError::NonFiniteParameter.into());
            }
            if !outer_valid::<T>(&self.shape, body, width) {
                return Err(FormatError::BadHeader.into());
            }
        }
        for (p, c) in params.iter_mut().zip(body.chunks_exact(width)) {
            *p = T::read_le(c, width).unwrap_or(T::ZERO);
        }
        Ok(())
    }
}

/// Every check of [`inspect`], keeping the checked bytes for [`Checked::read_into`].
pub fn check(bytes: &[u8]) -> Result<Checked<'_>, Error> {
    if bytes.len() < HEADER_LEN + 4 {
        return Err(FormatError::Truncated.into());
    }
    if bytes[0..4] != MAGIC {
        return Err(FormatError::BadMagic.into());
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version != FORMAT_VERSION && version != 2 {
        return Err(FormatError::UnsupportedVersion.into());
    }
    let width = bytes[6] as usize;
    if width != 4 && width != 8 {
        return Err(FormatError::BadFloatWidth.into());
    }
    let n_params = u32_at(bytes, 36) as usize;
    let total = n_params
        .checked_mul(width)
        .and_then(|v| v.checked_add(HEADER_LEN + 4))
        .ok_or(FormatError::BadHeader)?;
    if bytes.len() < total {
        return Err(FormatError::Truncated.into());
    }
    if bytes.len() > total {
        return Err(FormatError::TrailingBytes.into());
    }
    let stored = u32_at(bytes, total - 4);
    if crc32(&bytes[..total - 4]) != stored {
        return Err(FormatError::Checksum.into());
    }
    let k = u32_at(bytes, 24) as usize;
    let base = BaseKind::from_code(bytes[7].into(), k).ok_or(FormatError::BadHeader)?;
    let activation = Activation::from_code(bytes[28].into()).ok_or(FormatError::BadHeader)?;
    let outer = bytes[29];
    if bytes[30..32] != [0, 0] || outer & !3 != 0 || (version == 2 && outer != 0) {
        return Err(FormatError::BadHeader.into());
    }
    let shape = Shape {
        dim: u32_at(bytes, 8) as usize,
        hidden: u32_at(bytes, 12) as usize,
        hidden_layers: u32_at(bytes, 16) as usize,
        couplings: u32_at(bytes, 20) as usize,
        base,
        activation,
        clamp: f32::from_le_bytes([bytes[32], bytes[33], bytes[34], bytes[35]]),
        affine: outer & 1 != 0,
        bounded: outer & 2 != 0,
    };
    shape.validate().map_err(|_| FormatError::BadHeader)?;
    if shape.param_len() != n_params {
        return Err(FormatError::BadHeader.into());
    }
    let body = &bytes[HEADER_LEN..total - 4];
    if body
        .chunks_exact(width)
        .any(|c| !T64::read(c, width).is_finite())
    {
        return Err(FormatError::NonFiniteParameter.into());
    }
    if !outer_valid::<f64>(&shape, body, width) {
        return Err(FormatError::BadHeader.into());
    }
    Ok(Checked { shape, width, body })
}

/// The outer maps' stored parameters, read as `T`, are valid (`flow::outer::valid`); `body`
/// starts with the flow's parameters (also a fit checkpoint's trained parameters).
pub(crate) fn outer_valid<T: Real>(shape: &Shape, body: &[u8], width: usize) -> bool {
    let tail = shape.flow_param_len() + shape.base_param_len();
    crate::flow::outer::valid(shape, |i| {
        let at = (tail + i) * width;
        body.get(at..at + width)
            .and_then(|c| T::read_le(c, width))
            .unwrap_or(T::ZERO)
    })
}

struct T64;
impl T64 {
    fn read(c: &[u8], width: usize) -> f64 {
        f64::read_le(c, width).unwrap_or(f64::NAN)
    }
}

/// Reads a model saved by [`save`] (of either float width; values are converted to `T`) into
/// `params` (exactly `param_len` of the stored shape) and returns its shape.
pub fn load<T: Real>(bytes: &[u8], params: &mut [T]) -> Result<Shape, Error> {
    let checked = check(bytes)?;
    checked.read_into(params)?;
    Ok(checked.shape)
}
