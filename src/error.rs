//! The one error type of the core. Every fallible call returns [`Result<_, Error>`]; the core
//! never panics, whatever the input.

use core::fmt;

/// Which field of a [`Shape`](crate::Shape) is invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShapeError {
    /// The dimension is below 2 (a coupling layer needs two non-empty parts).
    Dim,
    /// The hidden width is zero.
    Hidden,
    /// The number of hidden layers per conditioner is zero.
    HiddenLayers,
    /// The number of coupling layers is zero.
    Couplings,
    /// A mixture base has zero components.
    Components,
    /// The soft clamp bound is not +0.0 ("off") or a positive normal finite f32: negative,
    /// −0.0, subnormal, NaN or infinite.
    Clamp,
    /// A size computed from the shape overflows `usize` or exceeds the format's `u32` fields.
    TooLarge,
}

/// What went wrong when reading a serialized model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FormatError {
    /// Fewer bytes than the header, or than the header says the model needs.
    Truncated,
    /// The first four bytes are not `LWFM`: not an lwflow model.
    BadMagic,
    /// A format version this build does not read (newer or unknown).
    UnsupportedVersion,
    /// The float width byte is neither 4 nor 8.
    BadFloatWidth,
    /// The stored CRC-32 does not match the contents: the bytes were corrupted.
    Checksum,
    /// The header describes an invalid shape or an unknown enum tag.
    BadHeader,
    /// More bytes than the model occupies (trailing garbage).
    TrailingBytes,
    /// A stored parameter is NaN or infinite.
    NonFiniteParameter,
}

/// Every error the core can return.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// The shape is invalid; the payload says which field.
    InvalidShape(ShapeError),
    /// A buffer has the wrong length for the shape or batch: `expected` elements, got `actual`.
    LengthMismatch {
        /// Length the operation needs.
        expected: usize,
        /// Length it was given.
        actual: usize,
    },
    /// A buffer is shorter than needed: at least `needed` elements, got `actual`.
    BufferTooSmall {
        /// Minimum length.
        needed: usize,
        /// Length given.
        actual: usize,
    },
    /// The batch is empty where at least one sample is required.
    EmptyBatch,
    /// An input contains NaN or ±∞ (samples, weights, parameters or hyper-parameters).
    NonFinite,
    /// An argument is outside its documented range (negative weight, zero learning rate, ...).
    InvalidArgument,
    /// The model bytes cannot be read; the payload says why.
    Format(FormatError),
    /// A user callback (likelihood, progress) reported failure or cancelled.
    Callback,
    /// The importance weights are degenerate: all zero, or the effective sample size is below
    /// the configured floor.
    DegenerateWeights,
    /// An iterative fit (EM) did not produce a usable result.
    NotConverged,
}

impl From<ShapeError> for Error {
    fn from(e: ShapeError) -> Self {
        Error::InvalidShape(e)
    }
}

impl From<FormatError> for Error {
    fn from(e: FormatError) -> Self {
        Error::Format(e)
    }
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ShapeError::Dim => "dimension must be at least 2",
            ShapeError::Hidden => "hidden width must be at least 1",
            ShapeError::HiddenLayers => "conditioner needs at least one hidden layer",
            ShapeError::Couplings => "flow needs at least one coupling layer",
            ShapeError::Components => "mixture base needs at least one component",
            ShapeError::Clamp => "scale clamp must be +0 (off) or a positive normal finite f32",
            ShapeError::TooLarge => "shape too large: sizes overflow",
        })
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FormatError::Truncated => "model bytes truncated",
            FormatError::BadMagic => "not an lwflow model (bad magic)",
            FormatError::UnsupportedVersion => "unsupported model format version",
            FormatError::BadFloatWidth => "float width must be 4 or 8",
            FormatError::Checksum => "checksum mismatch: model bytes corrupted",
            FormatError::BadHeader => "invalid shape in model header",
            FormatError::TrailingBytes => "trailing bytes after model",
            FormatError::NonFiniteParameter => "model contains a non-finite parameter",
        })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidShape(e) => write!(f, "invalid shape: {e}"),
            Error::LengthMismatch { expected, actual } => {
                write!(
                    f,
                    "buffer length mismatch: expected {expected}, got {actual}"
                )
            }
            Error::BufferTooSmall { needed, actual } => {
                write!(f, "buffer too small: need {needed}, got {actual}")
            }
            Error::EmptyBatch => f.write_str("empty batch"),
            Error::NonFinite => f.write_str("input contains NaN or infinity"),
            Error::InvalidArgument => f.write_str("argument out of range"),
            Error::Format(e) => write!(f, "bad model format: {e}"),
            Error::Callback => f.write_str("callback failed or cancelled"),
            Error::DegenerateWeights => {
                f.write_str("degenerate weights: all zero or effective sample size below floor")
            }
            Error::NotConverged => f.write_str("fit did not converge"),
        }
    }
}

impl core::error::Error for ShapeError {}
impl core::error::Error for FormatError {}
impl core::error::Error for Error {}

/// Checks that `buf` has exactly `expected` elements.
#[inline]
pub(crate) fn check_len<X>(buf: &[X], expected: usize) -> Result<(), Error> {
    if buf.len() == expected {
        Ok(())
    } else {
        Err(Error::LengthMismatch {
            expected,
            actual: buf.len(),
        })
    }
}

/// Checks that `buf` has at least `needed` elements.
#[inline]
pub(crate) fn check_min<X>(buf: &[X], needed: usize) -> Result<(), Error> {
    if buf.len() >= needed {
        Ok(())
    } else {
        Err(Error::BufferTooSmall {
            needed,
            actual: buf.len(),
        })
    }
}
