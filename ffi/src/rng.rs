//! `LwfRng`: a caller-held xoshiro256++ state, so sampling is deterministic and resumable
//! without any state inside the library.

use crate::guard::{guard, out_scalar, read_struct, write_scalar};
use crate::status::LwfStatus;
use lwflow::rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

/// State of a xoshiro256++ generator, owned by the caller. Initialise it with `lwf_rng_init`;
/// `lwf_model_sample` advances it. Copying the struct copies the stream. Any value is a valid
/// state (all zeros is mapped to the state of seed 0).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LwfRng {
    /// The four 64-bit words of the state (word i = little-endian bytes 8i..8i+8 of
    /// `rand_xoshiro::Xoshiro256PlusPlus::state()`).
    pub state: [u64; 4],
}

impl LwfRng {
    pub(crate) fn generator(&self) -> Xoshiro256PlusPlus {
        let mut seed = [0u8; 32];
        for (chunk, w) in seed.chunks_exact_mut(8).zip(self.state) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        Xoshiro256PlusPlus::from_seed(seed)
    }

    pub(crate) fn from_generator(g: &Xoshiro256PlusPlus) -> LwfRng {
        let bytes = g.state();
        let mut state = [0u64; 4];
        for (w, chunk) in state.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            *w = u64::from_le_bytes(b);
        }
        LwfRng { state }
    }
}

/// Seeds `*out_rng` from `seed` exactly as Rust's `Xoshiro256PlusPlus::seed_from_u64(seed)`
/// (SplitMix64 expansion), so C and Rust callers draw the same samples from the same seed.
///
/// # Safety
/// `out_rng` is NULL or valid for one write of `LwfRng`.
#[no_mangle]
pub unsafe extern "C" fn lwf_rng_init(out_rng: *mut LwfRng, seed: u64) -> LwfStatus {
    guard(|| {
        let out = out_scalar(out_rng)?;
        let rng = LwfRng::from_generator(&Xoshiro256PlusPlus::seed_from_u64(seed));
        // SAFETY: checked by out_scalar; writability is the caller's contract.
        unsafe { write_scalar(out, rng) };
        Ok(())
    })
}

/// Advances `*rng` by 2^128 draws: call it r times on copies of one seeded state to give
/// process or thread r a non-overlapping stream (e.g. MPI ranks).
///
/// # Safety
/// `rng` is NULL or valid for reads and writes of one `LwfRng`.
#[no_mangle]
pub unsafe extern "C" fn lwf_rng_jump(rng: *mut LwfRng) -> LwfStatus {
    guard(|| {
        // SAFETY: forwarded contract; LwfRng is plain integers.
        let mut g = unsafe { read_struct(rng.cast_const()) }?.generator();
        g.jump();
        // SAFETY: `rng` passed the same checks in read_struct.
        unsafe { write_scalar(rng, LwfRng::from_generator(&g)) };
        Ok(())
    })
}
