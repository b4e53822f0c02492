//! Version of the library, as header macros and as runtime queries. The macros are literals
//! (cbindgen copies them into the header); a compile-time check below ties them to Cargo.toml.

use core::ffi::c_char;

/// Major version of the header (and of Cargo.toml).
pub const LWFLOW_VERSION_MAJOR: u32 = 0;
/// Minor version of the header.
pub const LWFLOW_VERSION_MINOR: u32 = 1;
/// Patch version of the header.
pub const LWFLOW_VERSION_PATCH: u32 = 0;
/// `major * 10000 + minor * 100 + patch`: compare with `lwf_version()` to detect a header /
/// library mismatch at run time.
pub const LWFLOW_VERSION: u32 =
    LWFLOW_VERSION_MAJOR * 10000 + LWFLOW_VERSION_MINOR * 100 + LWFLOW_VERSION_PATCH;

const fn parse(s: &str) -> u32 {
    let b = s.as_bytes();
    let mut i = 0;
    let mut v = 0u32;
    while i < b.len() {
        assert!(b[i].is_ascii_digit(), "version component is not a number");
        v = v * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    v
}

const _: () = assert!(
    parse(env!("CARGO_PKG_VERSION_MAJOR")) == LWFLOW_VERSION_MAJOR
        && parse(env!("CARGO_PKG_VERSION_MINOR")) == LWFLOW_VERSION_MINOR
        && parse(env!("CARGO_PKG_VERSION_PATCH")) == LWFLOW_VERSION_PATCH,
    "LWFLOW_VERSION_* must match ffi/Cargo.toml: update version.rs and regenerate the header"
);
const _: () = assert!(
    LWFLOW_VERSION_MINOR < 100 && LWFLOW_VERSION_PATCH < 100,
    "LWFLOW_VERSION encoding needs minor and patch below 100"
);

static VERSION_STRING: &core::ffi::CStr =
    match core::ffi::CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes())
    {
        Ok(s) => s,
        Err(_) => panic!("version string contains a NUL byte"),
    };

/// The library's version as `LWFLOW_VERSION` encodes it (`major * 10000 + minor * 100 +
/// patch`); equal to the header's `LWFLOW_VERSION` when header and library match.
#[no_mangle]
pub extern "C" fn lwf_version() -> u32 {
    LWFLOW_VERSION
}

/// The library's version as a static NUL-terminated string, e.g. `"0.1.0"`.
#[no_mangle]
pub extern "C" fn lwf_version_string() -> *const c_char {
    VERSION_STRING.as_ptr()
}
