//! Fuzz target `fit`: see `ffi/tests/props/fit.rs` for the input format and the properties.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut tally = lwflow_fuzz::props::Tally::default();
    lwflow_fuzz::props::fit::run(data, &mut tally);
});
