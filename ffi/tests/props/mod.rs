//! The properties of the C ABI and of the model loader, checked on inputs decoded from bytes.
//!
//! One copy of the checks, used three ways:
//! - the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`, through `fuzz/src/lib.rs`), which link
//!   the ABI's sources as an rlib and call the exported functions directly;
//! - the stable randomized test `ffi/tests/randomized.rs`, which calls the built
//!   `liblwflow.so` through mirrors of the header's declarations, on bytes from a fixed seed;
//! - the Miri harness in `ffi/src/harness.rs` (unit tests of the ABI crate, real types).
//!
//! The includer defines a sibling module `lwf` holding the header's functions and types under
//! their C names (`lwf_model_init`, `LwfShape`, ...) and `fn code(LwfStatus) -> i32`.
//!
//! The rules asserted (a failed assertion is a panic: a crash for the fuzzer, a failure for
//! the tests):
//! - no call panics or aborts: a status is one of the header's codes and never `LWF_PANIC`
//!   (nor `LWF_BUSY`: every call here runs on one thread);
//! - `LWF_OK` never comes with a non-finite output: every output buffer and scalar is checked
//!   after every `LWF_OK` (the one documented exception: a log density of -inf for a point on
//!   or outside a bounded model's box);
//! - no call writes outside the buffers it was given: every buffer (outputs, inputs, model and
//!   work memory, structs) sits between guard bytes that are checked after every call; inputs
//!   (`const` pointers) must come back unchanged; outputs must come back unchanged after a
//!   failure (the documented exceptions: `LWF_CANCELLED`, and `LWF_NON_FINITE` from an
//!   evaluation, which sets every output to NaN);
//! - what one entry point accepts, every other accepts (a shape every size query accepts can
//!   be initialised; a file `lwf_model_inspect` accepts loads, and the loaded model can be
//!   evaluated; the C ABI and the core's loader agree).
//!
//! Everything here is in-process and single-threaded; sizes are capped so that one input runs
//! in well under a millisecond on average.
#![allow(dead_code)]
// The raw pointers the helpers take are the harness's own buffers and handles.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use super::lwf;

pub mod abi;
pub mod buf;
pub mod check;
pub mod fit;
pub mod input;
pub mod loader;
pub mod seeds;

pub use check::Tally;

/// SplitMix64: the bytes of the randomized cases (no dependency; the same sequence on every
/// platform).
pub struct SplitMix(pub u64);

impl SplitMix {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `len` random bytes, `len` itself random in `0..=max_len`.
    pub fn bytes(&mut self, max_len: usize) -> Vec<u8> {
        let len = (self.next_u64() % (max_len as u64 + 1)) as usize;
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}
