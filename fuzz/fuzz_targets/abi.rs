//! Fuzz target `abi`: see `ffi/tests/props/abi.rs` for the input format and the properties.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut tally = lwflow_fuzz::props::Tally::default();
    lwflow_fuzz::props::abi::run(data, &mut tally);
});
