//! The guard around every exported function and the checked conversions of C pointers into
//! slices.
//!
//! Every exported function body runs inside [`guard`], which turns a Rust panic into
//! `LWF_PANIC` instead of unwinding into C (undefined behaviour) or aborting the host. Every
//! pointer goes through [`input`], [`output`] or [`out_scalar`], which check NULL, alignment
//! and that `len` elements are addressable before a slice is formed; [`disjoint`] checks that
//! an output does not alias anything else, which Rust's `&mut` requires.

use crate::status::LwfStatus::{self, *};
use core::mem::{align_of, size_of};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `body`, mapping `Err(status)` to that status, `Ok(())` to `LWF_OK` and a panic to
/// `LWF_PANIC`.
pub(crate) fn guard(body: impl FnOnce() -> Result<(), LwfStatus>) -> LwfStatus {
    // AssertUnwindSafe: after a panic nothing observes the half-updated state except through
    // the LWF_PANIC status, whose documentation says outputs and model are unspecified.
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => LWF_OK,
        Ok(Err(status)) => status,
        Err(_) => LWF_PANIC,
    }
}

/// A byte range `[start, start + len)` in the address space, for overlap checks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Span {
    start: usize,
    len: usize,
}

impl Span {
    pub(crate) fn raw(ptr: *const u8, len: usize) -> Span {
        Span {
            start: ptr as usize,
            len,
        }
    }

    /// The span of `len` elements of `T` at `ptr`, after [`check_ptr`] (so it cannot
    /// overflow). Computed before any slice exists, so overlaps are refused before Rust
    /// references could alias.
    pub(crate) fn checked<T>(ptr: *const T, len: usize) -> Result<Span, LwfStatus> {
        check_ptr(ptr, len)?;
        Ok(Span {
            start: ptr as usize,
            len: len * size_of::<T>(),
        })
    }

    fn overlaps(self, other: Span) -> bool {
        // Empty ranges overlap nothing.
        self.len > 0
            && other.len > 0
            && self.start < other.start.saturating_add(other.len)
            && other.start < self.start.saturating_add(self.len)
    }
}

/// `LWF_OVERLAPPING_BUFFERS` unless `out` is disjoint from every span in `others`.
pub(crate) fn disjoint(out: Span, others: &[Span]) -> Result<(), LwfStatus> {
    if others.iter().any(|o| out.overlaps(*o)) {
        Err(LWF_OVERLAPPING_BUFFERS)
    } else {
        Ok(())
    }
}

/// Checks a pointer to `len` elements of `T`: not NULL (unless `len == 0`: NULL with length 0
/// is an empty buffer, as an empty `std::vector`'s `data()` may be), aligned for `T`, and `len`
/// elements addressable without overflowing `isize` (the limit of a Rust slice).
pub(crate) fn check_ptr<T>(ptr: *const T, len: usize) -> Result<(), LwfStatus> {
    if ptr.is_null() {
        return if len == 0 {
            Ok(())
        } else {
            Err(LWF_NULL_POINTER)
        };
    }
    if (ptr as usize) % align_of::<T>() != 0 {
        return Err(LWF_MISALIGNED);
    }
    let bytes = len.checked_mul(size_of::<T>()).ok_or(LWF_LENGTH_MISMATCH)?;
    if bytes > isize::MAX as usize || (ptr as usize).checked_add(bytes).is_none() {
        return Err(LWF_LENGTH_MISMATCH);
    }
    Ok(())
}

/// A shared slice of `len` elements at `ptr`, after [`check_ptr`].
///
/// # Safety
/// If `ptr` is not NULL it must be valid for reads of `len` elements of `T` for `'a`, and not
/// be written through any other pointer during `'a`.
pub(crate) unsafe fn input<'a, T>(ptr: *const T, len: usize) -> Result<&'a [T], LwfStatus> {
    check_ptr(ptr, len)?;
    if len == 0 {
        return Ok(&[]);
    }
    // SAFETY: non-NULL, aligned and the byte length fits an isize (checked above); validity for
    // `len` reads and the absence of writers is the caller's contract.
    Ok(unsafe { core::slice::from_raw_parts(ptr, len) })
}

/// An exclusive slice of `len` elements at `ptr`, after [`check_ptr`].
///
/// # Safety
/// If `ptr` is not NULL it must be valid for reads and writes of `len` elements of `T` for
/// `'a`, and no other reference to that memory may exist during `'a` (use [`disjoint`]).
pub(crate) unsafe fn output<'a, T>(ptr: *mut T, len: usize) -> Result<&'a mut [T], LwfStatus> {
    check_ptr(ptr, len)?;
    if len == 0 {
        return Ok(&mut []);
    }
    // SAFETY: as for `input`; exclusivity is the caller's contract, checked with `disjoint`
    // against the other buffers of the same call.
    Ok(unsafe { core::slice::from_raw_parts_mut(ptr, len) })
}

/// A single output value: NULL and alignment checked; written with [`write_scalar`] only once
/// everything else has succeeded.
pub(crate) fn out_scalar<T>(ptr: *mut T) -> Result<*mut T, LwfStatus> {
    check_ptr(ptr.cast_const(), 1)?;
    Ok(ptr)
}

/// Writes `value` through a pointer accepted by [`out_scalar`].
///
/// # Safety
/// `ptr` must have come from [`out_scalar`] and be valid for one write of `T`.
pub(crate) unsafe fn write_scalar<T>(ptr: *mut T, value: T) {
    // SAFETY: non-NULL and aligned (out_scalar); validity is the caller's contract.
    unsafe { ptr.write(value) }
}

/// Reads a `#[repr(C)]` struct argument by value after NULL and alignment checks.
///
/// # Safety
/// If `ptr` is not NULL it must be valid for one read of `T`; `T` must be valid for every bit
/// pattern (plain integers and floats only).
pub(crate) unsafe fn read_struct<T: Copy>(ptr: *const T) -> Result<T, LwfStatus> {
    check_ptr(ptr, 1)?;
    // SAFETY: non-NULL and aligned (checked); T is plain data, so any bits are a valid value.
    Ok(unsafe { ptr.read() })
}

/// Reads a growable config struct: a `#[repr(C)]` struct whose first field is a `usize`
/// `struct_size`, the size of the caller's layout. `layouts` lists every size the library
/// knows, each layout a prefix of the next (fields are only ever appended); the fields an older
/// layout lacks keep their values from `defaults`. Any other size is `LWF_INVALID_ARGUMENT`:
/// reading further could run past the caller's struct.
///
/// # Safety
/// If `ptr` is not NULL it must be valid for reads of `ptr->struct_size` bytes (at least the
/// `struct_size` field itself); `T` must start with a `usize` and be valid for every bit
/// pattern (plain integers and floats only).
pub(crate) unsafe fn read_growable<T: Copy>(
    ptr: *const T,
    layouts: &[usize],
    defaults: T,
) -> Result<T, LwfStatus> {
    check_ptr(ptr, 1)?;
    // SAFETY: non-NULL and aligned (checked); the first field is readable by the contract, and
    // a usize has no invalid bit patterns.
    let struct_size = unsafe { ptr.cast::<usize>().read() };
    if !layouts.contains(&struct_size)
        || !(size_of::<usize>()..=size_of::<T>()).contains(&struct_size)
    {
        return Err(LWF_INVALID_ARGUMENT);
    }
    let mut value = defaults;
    // SAFETY: the caller's struct is `struct_size` bytes long (contract), at most
    // `size_of::<T>()` (checked), and `value` is a distinct local; any bits are a valid `T`.
    unsafe {
        core::ptr::copy_nonoverlapping(
            ptr.cast::<u8>(),
            (&mut value as *mut T).cast::<u8>(),
            struct_size,
        )
    };
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_lwf_panic() {
        assert_eq!(guard(|| panic!("deliberate test panic")), LWF_PANIC);
        assert_eq!(guard(|| Err(LWF_EMPTY_BATCH)), LWF_EMPTY_BATCH);
        assert_eq!(guard(|| Ok(())), LWF_OK);
    }

    #[test]
    fn pointer_checks() {
        let v = [0.0f64; 4];
        assert_eq!(
            check_ptr(core::ptr::null::<f64>(), 1),
            Err(LWF_NULL_POINTER)
        );
        assert_eq!(check_ptr(core::ptr::null::<f64>(), 0), Ok(()));
        // SAFETY: NULL with length 0 is the empty slice, never dereferenced.
        assert_eq!(unsafe { input(core::ptr::null::<f64>(), 0) }, Ok(&[][..]));
        let odd = (v.as_ptr() as usize + 1) as *const f64;
        assert_eq!(check_ptr(odd, 1), Err(LWF_MISALIGNED));
        assert_eq!(check_ptr(v.as_ptr(), usize::MAX), Err(LWF_LENGTH_MISMATCH));
        assert_eq!(
            check_ptr(v.as_ptr(), usize::MAX / 8),
            Err(LWF_LENGTH_MISMATCH)
        );
        assert_eq!(check_ptr(v.as_ptr(), 4), Ok(()));
        let a = Span::checked(v.as_ptr(), 2).unwrap();
        let b = Span::checked(v[2..].as_ptr(), 2).unwrap();
        let c = Span::checked(v[1..].as_ptr(), 2).unwrap();
        let empty = Span::checked(v[1..].as_ptr(), 0).unwrap();
        assert_eq!(disjoint(a, &[b]), Ok(()));
        assert_eq!(disjoint(a, &[c]), Err(LWF_OVERLAPPING_BUFFERS));
        assert_eq!(disjoint(a, &[empty]), Ok(()));
    }
}
