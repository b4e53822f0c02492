//! Fuzz target `loader`: see `ffi/tests/props/loader.rs` for the input format and the properties.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut tally = lwflow_fuzz::props::Tally::default();
    lwflow_fuzz::props::loader::run(data, &mut tally);
});
