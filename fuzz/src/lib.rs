//! The glue of the fuzz targets: the C ABI linked as an rlib (`abi/`, built from `ffi/src`)
//! and the property checks shared with `ffi/tests/randomized.rs` (`ffi/tests/props`).

/// The header's functions and types: the ABI crate's own (the real signatures).
pub mod lwf {
    pub use lwflow_ffi::*;

    /// A status as its C `int`.
    pub fn code(s: LwfStatus) -> i32 {
        s as i32
    }
}

#[path = "../../ffi/tests/props/mod.rs"]
pub mod props;
