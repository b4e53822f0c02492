//! Status codes, the per-call bookkeeping, and the checks every call gets.

use super::buf::Guarded;
use std::collections::BTreeMap;

pub const OK: i32 = 0;
pub const NULL_POINTER: i32 = 1;
pub const BUFFER_TOO_SMALL: i32 = 2;
pub const LENGTH_MISMATCH: i32 = 3;
pub const MISALIGNED: i32 = 4;
pub const INVALID_SHAPE: i32 = 5;
pub const INVALID_ARGUMENT: i32 = 6;
pub const NON_FINITE: i32 = 7;
pub const EMPTY_BATCH: i32 = 8;
pub const CALLBACK_FAILED: i32 = 9;
pub const CANCELLED: i32 = 10;
pub const DEGENERATE_WEIGHTS: i32 = 11;
pub const BAD_FORMAT: i32 = 12;
pub const NOT_CONVERGED: i32 = 13;
pub const PANIC: i32 = 14;
pub const INVALID_MODEL: i32 = 15;
pub const OVERLAPPING_BUFFERS: i32 = 16;
pub const BUSY: i32 = 17;
/// Number of status codes.
pub const N_STATUS: usize = 18;

/// What the calls returned, per entry point and status: the randomized test reads it to make
/// sure the cases reach the successful paths, not only the argument checks.
#[derive(Default, Debug)]
pub struct Tally {
    pub calls: BTreeMap<&'static str, [u64; N_STATUS]>,
}

impl Tally {
    /// Checks a returned status and counts it: one of the header's codes, never `LWF_PANIC`
    /// (a panic caught at the boundary is a bug) and never `LWF_BUSY` (one thread only).
    pub fn status(&mut self, name: &'static str, code: i32) -> i32 {
        assert!(
            (0..N_STATUS as i32).contains(&code),
            "{name} returned {code}, not a status code"
        );
        assert_ne!(code, PANIC, "{name} panicked (LWF_PANIC)");
        assert_ne!(code, BUSY, "{name} returned LWF_BUSY on a single thread");
        self.calls.entry(name).or_insert([0; N_STATUS])[code as usize] += 1;
        code
    }

    /// Counts of `name` returning `code`.
    pub fn count(&self, name: &str, code: i32) -> u64 {
        self.calls.get(name).map_or(0, |c| c[code as usize])
    }

    /// Calls of `name`, any status.
    pub fn total(&self, name: &str) -> u64 {
        self.calls.get(name).map_or(0, |c| c.iter().sum())
    }

    /// Adds another tally's counts.
    pub fn merge(&mut self, other: &Tally) {
        for (name, counts) in &other.calls {
            let mine = self.calls.entry(name).or_insert([0; N_STATUS]);
            for (m, c) in mine.iter_mut().zip(counts) {
                *m += c;
            }
        }
    }
}

/// Panics unless every value is finite.
pub fn all_finite(what: &str, values: &[f64]) {
    if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        panic!("LWF_OK with a non-finite output: {what}[{i}] = {v}");
    }
}

/// Panics unless `v` is finite.
pub fn finite(what: &str, v: f64) {
    assert!(
        v.is_finite(),
        "LWF_OK with a non-finite output: {what} = {v}"
    );
}

/// A buffer and what it held before a call, to check after it.
pub struct Watch<'a> {
    pub name: &'static str,
    pub buf: &'a Guarded,
    /// The bytes (buffers of scalars), or a comparison of typed values (structs with padding).
    before: Before,
}

enum Before {
    Bytes(Vec<u8>),
    Same(Box<dyn Fn(&Guarded) -> bool>),
}

impl<'a> Watch<'a> {
    /// Remembers the contents of `buf`.
    pub fn new(name: &'static str, buf: &'a Guarded) -> Watch<'a> {
        Watch {
            name,
            buf,
            before: Before::Bytes(buf.snapshot()),
        }
    }

    /// Remembers the `T` in `buf` and compares field by field: a struct with padding, whose
    /// padding bytes a typed write leaves uninitialised (comparing those bytes would be
    /// undefined behaviour).
    pub fn typed<T: Copy + PartialEq + 'static>(name: &'static str, buf: &'a Guarded) -> Watch<'a> {
        let v: T = buf.read();
        Watch {
            name,
            buf,
            before: Before::Same(Box::new(move |g: &Guarded| g.read::<T>() == v)),
        }
    }

    /// True when the buffer still holds what it held.
    pub fn unchanged(&self) -> bool {
        match &self.before {
            Before::Bytes(b) => self.buf.snapshot() == *b,
            Before::Same(same) => same(self.buf),
        }
    }

    /// Panics (naming the call) if the guards were touched.
    pub fn guards(&self, call: &str) {
        self.buf.check_guards(&format!("{call}: {}", self.name));
    }

    /// Panics unless the buffer is unchanged.
    pub fn assert_unchanged(&self, call: &str, why: &str) {
        assert!(self.unchanged(), "{call} wrote to {} ({why})", self.name);
    }

    /// True when every double of the buffer is NaN (an evaluation's overflow signal).
    pub fn all_nan(&self) -> bool {
        self.buf.read_f64s().iter().all(|v| v.is_nan())
    }
}

/// The checks every call gets: guards intact around every buffer; inputs unchanged; on a
/// status other than `LWF_OK` the outputs unchanged, except where `nan_on_non_finite` (an
/// evaluation: `LWF_NON_FINITE` either leaves every output alone or sets every output to
/// NaN) or the status is `LWF_CANCELLED`.
pub fn after_call(
    call: &str,
    status: i32,
    inputs: &[&Watch],
    outputs: &[&Watch],
    nan_on_non_finite: bool,
) {
    for w in inputs.iter().chain(outputs) {
        w.guards(call);
    }
    for w in inputs {
        w.assert_unchanged(call, "a const input");
    }
    if status == OK || status == CANCELLED {
        return;
    }
    if nan_on_non_finite && status == NON_FINITE {
        let untouched = outputs.iter().all(|w| w.unchanged());
        let all_nan = outputs.iter().all(|w| w.all_nan());
        assert!(
            untouched || all_nan,
            "{call}: LWF_NON_FINITE must leave every output alone or set every output to NaN"
        );
        return;
    }
    for w in outputs {
        w.assert_unchanged(
            call,
            &format!("status {status}: outputs are written only on LWF_OK"),
        );
    }
}
