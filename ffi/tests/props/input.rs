//! Decoding fuzz bytes into arguments: integers, lengths, and doubles that are mostly ordinary
//! (so that calls get past their argument checks) and otherwise the values that break code:
//! NaN, infinities, the largest and smallest doubles, subnormals, values beyond float range.

/// A reader over the input bytes; once they run out every read gives zero bits, so any input
/// decodes to a complete, deterministic sequence of calls.
pub struct Src<'a> {
    data: &'a [u8],
    pos: usize,
    /// Chance (of 256) that a config field takes an odd value instead of an ordinary one.
    pub odd: u8,
}

/// Doubles that have broken numerical code before: every class of IEEE value and the edges of
/// the float and double ranges.
pub const SPECIAL: [f64; 24] = [
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    0.0,
    -0.0,
    f64::MAX,
    -f64::MAX,
    f64::MIN_POSITIVE,
    -f64::MIN_POSITIVE,
    5e-324,
    -5e-324,
    1e-310,
    1e300,
    -1e300,
    1e-300,
    1e154,
    -1e154,
    3.402_823_466_385_288_6e38,
    3.5e38,
    1.0e-45,
    1e-42,
    1.175_494_350_822_287_5e-38,
    -1.0,
    1.0,
];

impl<'a> Src<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Src<'a> {
        Src {
            data,
            pos: 0,
            odd: 24,
        }
    }

    /// True once every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.data.get(self.pos..).unwrap_or(&[])
    }

    /// The next byte (0 past the end).
    pub fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos = self.pos.saturating_add(1);
        b
    }

    /// The next `N` bytes (zero past the end).
    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for b in out.iter_mut() {
            *b = self.u8();
        }
        out
    }

    /// Little-endian u16.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }

    /// Little-endian u32.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    /// Little-endian u64.
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }

    /// A flag: true for an odd byte.
    pub fn flag(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// True with probability about `num / 256`.
    pub fn chance(&mut self, num: u8) -> bool {
        self.u8() < num
    }

    /// Uniform-ish in `0..n` (`n >= 1`; 0 for `n == 0`).
    pub fn below(&mut self, n: usize) -> usize {
        if n <= 1 {
            self.u8();
            return 0;
        }
        if n <= 256 {
            self.u8() as usize % n
        } else {
            self.u32() as usize % n
        }
    }

    /// In `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// One of `items`.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// A double: mostly small ordinary values, sometimes special ones, sometimes any bits.
    pub fn f64(&mut self) -> f64 {
        match self.u8() % 16 {
            // Multiples of 1/16 in [-8, 8): valid for most arguments.
            0..=8 => f64::from(self.u8() as i8) / 16.0,
            // Moderate values with a fraction.
            9..=10 => f64::from(self.u16() as i16) / 256.0,
            11..=12 => self.pick(&SPECIAL),
            // A power of ten, either sign, 1e-320 to 1e308.
            13 => {
                let e = self.range(0, 628) as i32 - 320;
                let s = if self.flag() { -1.0 } else { 1.0 };
                s * 10f64.powi(e)
            }
            14 => f64::from_bits(self.u64()),
            _ => f64::from(f32::from_bits(self.u32())),
        }
    }

    /// A double in `[lo, hi]` (for arguments that must be valid to reach deeper code).
    pub fn f64_in(&mut self, lo: f64, hi: f64) -> f64 {
        let t = f64::from(self.u16()) / f64::from(u16::MAX);
        lo + (hi - lo) * t
    }

    /// `n` doubles from [`Src::f64`], or, with a fuzz-chosen chance, all ordinary.
    pub fn f64s(&mut self, n: usize) -> Vec<f64> {
        let tame = self.u8() < 160;
        (0..n)
            .map(|_| {
                if tame {
                    f64::from(self.u8() as i8) / 32.0
                } else {
                    self.f64()
                }
            })
            .collect()
    }

    /// A length argument for a buffer that needs `need` elements: mostly `need`, else off by
    /// one either way, zero, or a small arbitrary count. Always small enough to be backed by
    /// a real buffer of exactly that length.
    pub fn len_for(&mut self, need: usize) -> usize {
        match self.u8() % 16 {
            0..=10 => need,
            11 => need.saturating_sub(1),
            12 => need + 1,
            13 => 0,
            14 => self.below(need.saturating_mul(2) + 2),
            _ => need / 2,
        }
    }
}

/// A length of `elem`-byte elements whose byte size does not fit an `isize` (the ABI's limit,
/// `LWF_LENGTH_MISMATCH`): the ABI must refuse it before touching the pointer, so it may come
/// with a buffer of any size.
pub fn unaddressable(src: &mut Src, elem: usize) -> usize {
    match src.u8() % 3 {
        0 => usize::MAX,
        1 => usize::MAX / elem,
        _ => isize::MAX as usize / elem + 1,
    }
}
