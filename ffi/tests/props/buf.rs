//! Buffers between guard bytes: every buffer handed to the ABI sits inside a larger
//! allocation whose bytes before and after it hold a known pattern, checked after every call.
//! (Under the fuzzer AddressSanitizer also watches the allocation's own edges.)

use core::mem::size_of;

/// Guard bytes on each side (a multiple of 8, so the buffer itself is 8-byte aligned).
pub const GUARD: usize = 64;

fn canary(i: usize) -> u8 {
    0xC3 ^ (i as u8).wrapping_mul(29)
}

/// `len` bytes between two guards, 8-byte aligned. All access goes through one raw pointer
/// taken at construction, so pointers handed out stay valid (also under Miri's aliasing
/// rules) while the buffer lives.
pub struct Guarded {
    _words: Vec<u64>,
    base: *mut u8,
    len: usize,
}

impl Guarded {
    /// A buffer of `len` bytes, each `fill`.
    pub fn bytes(len: usize, fill: u8) -> Guarded {
        let total = GUARD + len.div_ceil(8) * 8 + GUARD;
        let mut words = vec![0u64; total / 8];
        let base = words.as_mut_ptr().cast::<u8>();
        for i in (0..GUARD).chain(GUARD + len..total) {
            // SAFETY: i < total, the allocation's size in bytes.
            unsafe { base.add(i).write(canary(i)) };
        }
        // SAFETY: the body, `len` bytes from GUARD, lies inside the allocation.
        unsafe { core::ptr::write_bytes(base.add(GUARD), fill, len) };
        Guarded {
            _words: words,
            base,
            len,
        }
    }

    /// A copy of `data` between guards.
    pub fn from_bytes(data: &[u8]) -> Guarded {
        let g = Guarded::bytes(data.len(), 0);
        // SAFETY: the body holds data.len() bytes; the source is a distinct allocation.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), g.ptr(), data.len()) };
        g
    }

    /// `n` doubles, each `fill`.
    pub fn f64s(n: usize, fill: f64) -> Guarded {
        Guarded::from_f64s(&vec![fill; n])
    }

    /// A copy of `values` between guards.
    pub fn from_f64s(values: &[f64]) -> Guarded {
        let g = Guarded::bytes(values.len() * 8, 0);
        for (i, v) in values.iter().enumerate() {
            // SAFETY: in bounds (i < n) and 8-byte aligned (GUARD is a multiple of 8).
            unsafe { g.f64_ptr().add(i).write(*v) };
        }
        g
    }

    /// The first `bytes` bytes of `value` (a `#[repr(C)]` struct of plain integers and
    /// floats) between guards: a growable config struct of an older, shorter layout.
    pub fn of_prefix<T: Copy>(value: &T, bytes: usize) -> Guarded {
        let bytes = bytes.min(size_of::<T>());
        let g = Guarded::bytes(bytes, 0);
        // SAFETY: `value` is readable for size_of::<T>() >= bytes bytes; the body holds `bytes`.
        unsafe { core::ptr::copy_nonoverlapping((value as *const T).cast::<u8>(), g.ptr(), bytes) };
        g
    }

    /// `value` between guards.
    pub fn of<T: Copy>(value: &T) -> Guarded {
        Guarded::of_prefix(value, size_of::<T>())
    }

    /// Room for one `T`, every byte `fill` (an output struct or scalar).
    pub fn out<T>(fill: u8) -> Guarded {
        Guarded::bytes(size_of::<T>(), fill)
    }

    /// Bytes of the buffer (guards excluded).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for a buffer of zero bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The buffer's first byte.
    pub fn ptr(&self) -> *mut u8 {
        // SAFETY: GUARD bytes into the allocation.
        unsafe { self.base.add(GUARD) }
    }

    /// The buffer as `T` (8-byte aligned).
    pub fn typed<T>(&self) -> *mut T {
        self.ptr().cast()
    }

    /// The buffer as doubles.
    pub fn f64_ptr(&self) -> *mut f64 {
        self.typed()
    }

    /// A pointer `k` bytes into the buffer (1..=7: misaligned for any wider type); the memory
    /// after it is still this allocation, so a call that ignored the misalignment would be
    /// caught by the guard check rather than by a crash.
    pub fn offset_ptr(&self, k: usize) -> *mut u8 {
        assert!(k <= GUARD);
        // SAFETY: k <= GUARD: still inside the allocation.
        unsafe { self.ptr().add(k) }
    }

    /// The buffer's bytes.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut v = vec![0u8; self.len];
        // SAFETY: the body holds `len` bytes; `v` is a distinct allocation.
        unsafe { core::ptr::copy_nonoverlapping(self.ptr(), v.as_mut_ptr(), self.len) };
        v
    }

    /// The buffer's doubles.
    pub fn read_f64s(&self) -> Vec<f64> {
        (0..self.len / 8)
            // SAFETY: in bounds and aligned.
            .map(|i| unsafe { self.f64_ptr().add(i).read() })
            .collect()
    }

    /// Double `i`.
    pub fn f64_at(&self, i: usize) -> f64 {
        assert!(i < self.len / 8);
        // SAFETY: in bounds (checked) and aligned.
        unsafe { self.f64_ptr().add(i).read() }
    }

    /// Overwrites double `i`.
    pub fn set_f64(&self, i: usize, v: f64) {
        assert!(i < self.len / 8);
        // SAFETY: in bounds (checked) and aligned.
        unsafe { self.f64_ptr().add(i).write(v) }
    }

    /// The buffer read as one `T` (`T` plain data no larger than the buffer).
    pub fn read<T: Copy>(&self) -> T {
        assert!(size_of::<T>() <= self.len);
        // SAFETY: in bounds (checked), 8-byte aligned; T is plain data for every caller.
        unsafe { self.typed::<T>().read() }
    }

    /// Overwrites the buffer with `data` (same length).
    pub fn restore(&self, data: &[u8]) {
        assert_eq!(data.len(), self.len);
        // SAFETY: the body holds `len` bytes; `data` is a distinct allocation.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr(), self.len) };
    }

    /// Panics (naming `what`) unless every guard byte is intact.
    pub fn check_guards(&self, what: &str) {
        let total = GUARD + self.len.div_ceil(8) * 8 + GUARD;
        // Fast path: a word-wise XOR over both guards (one comparison per guard).
        let word = |i: usize| -> u64 {
            let mut w = 0u64;
            for k in 0..8 {
                w |= u64::from(canary(i + k)) << (8 * k);
            }
            // SAFETY: i + 8 <= total and 8-byte aligned (i is a multiple of 8).
            w ^ unsafe { self.base.add(i).cast::<u64>().read() }
        };
        let head = (0..GUARD).step_by(8).fold(0, |acc, i| acc | word(i));
        let tail_start = GUARD + self.len.div_ceil(8) * 8;
        let tail = (tail_start..total)
            .step_by(8)
            .fold(0, |acc, i| acc | word(i));
        // The padding bytes between the buffer's end and the next word.
        let pad = (GUARD + self.len..tail_start).fold(0u8, |acc, i| {
            // SAFETY: i < tail_start <= total: inside the allocation.
            let b = unsafe { self.base.add(i).read() };
            acc | (canary(i) ^ b)
        });
        if head == 0 && tail == 0 && pad == 0 {
            return;
        }
        for i in (0..GUARD).chain(GUARD + self.len..total) {
            // SAFETY: i < total.
            let b = unsafe { self.base.add(i).read() };
            assert_eq!(
                b,
                canary(i),
                "{what}: byte {} relative to the buffer of {} bytes was written",
                i as isize - GUARD as isize,
                self.len
            );
        }
    }
}
