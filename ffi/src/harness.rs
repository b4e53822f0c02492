//! The fuzz targets' property checks (`ffi/tests/props`, shared with `fuzz/` and
//! `ffi/tests/randomized.rs`) run in-process against this crate's own functions, with the
//! real types: the ABI harness for Miri (`cargo +nightly miri test -p lwflow-ffi --lib`,
//! README "Miri"), where the dynamic library the randomized test loads is out of reach.
//! Natively it is a quick smoke run; the randomized test is the thorough one.

/// The header's functions and types under their C names, as `props` expects them.
mod lwf {
    pub(crate) use crate::*;

    /// A status as its C `int`.
    pub(crate) fn code(s: LwfStatus) -> i32 {
        s as i32
    }
}

#[path = "../tests/props/mod.rs"]
mod props;

use props::{SplitMix, Tally};

/// Random cases per target: a few under Miri (every call is interpreted), more natively.
const CASES: usize = if cfg!(miri) { 3 } else { 100 };

/// The seed corpus of one target, every seed under Miri too (the fit seeds only natively:
/// a fit is millions of interpreted steps).
fn seeds(target: &str) -> Vec<Vec<u8>> {
    props::seeds::all()
        .into_iter()
        .filter(|(t, _)| *t == target)
        .flat_map(|(_, s)| s.into_iter().map(|(_, d)| d))
        .collect()
}

#[test]
fn loader_seeds_and_random_files() {
    let mut t = Tally::default();
    let mut all = seeds("loader");
    if cfg!(miri) {
        // One file of each width of two shapes (a plain one, the one with both outer maps).
        all = [0, 1, 12, 13].iter().map(|&i| all[i].clone()).collect();
    }
    for data in &all {
        props::loader::run(data, &mut t);
    }
    let mut rng = SplitMix(0x10AD);
    for _ in 0..CASES {
        props::loader::run(&rng.bytes(160), &mut t);
    }
    assert!(t.count("lwf_model_load", props::check::OK) >= all.len() as u64);
}

#[test]
fn abi_seeds_and_random_programs() {
    let mut t = Tally::default();
    let all = seeds("abi");
    let take = if cfg!(miri) { 28 } else { all.len() };
    for data in all.iter().take(take) {
        props::abi::run(data, &mut t);
    }
    let mut rng = SplitMix(0xAB1);
    for _ in 0..CASES {
        props::abi::run(&rng.bytes(300), &mut t);
    }
    assert!(t.count("lwf_model_log_prob", props::check::OK) > 0);
}

#[test]
#[cfg_attr(miri, ignore = "fits and refinements: minutes per case under Miri")]
fn fit_seeds_and_random_configs() {
    let mut t = Tally::default();
    for data in &seeds("fit") {
        props::fit::run(data, &mut t);
    }
    let mut rng = SplitMix(0xF17);
    for _ in 0..CASES {
        props::fit::run(&rng.bytes(700), &mut t);
    }
    assert!(t.count("lwf_model_fit_prior_box", props::check::OK) > 0);
}

/// One small prior-box fit (bytes of 0x80 pick small valid settings), through every check of
/// the fit target: the fit succeeds and its model is evaluated.
// Same shape as one_small_refinement below and fit_seeds_and_random_configs (duplicates): test
// cases, each spelling out its own input bytes and the call it counts.
#[test]
fn one_small_fit() {
    let mut t = Tally::default();
    let mut data = vec![0u8];
    data.extend(std::iter::repeat_n(0x80, 400));
    props::fit::run(&data, &mut t);
    assert_eq!(t.count("lwf_model_fit_prior_box", props::check::OK), 1);
}

/// One small refinement driven by `lwf_refine_run` to its end, its model written and
/// evaluated.
#[test]
fn one_small_refinement() {
    let mut t = Tally::default();
    let mut data = vec![5u8];
    data.extend(std::iter::repeat_n(0x80, 400));
    props::fit::run(&data, &mut t);
    assert_eq!(t.count("lwf_refine_write_model", props::check::OK), 1);
}

/// The kernel set the core dispatches to. Under Miri (no cpuid) it follows the build's
/// target features, so the README's Miri runs with `-C target-feature=+avx2` or the AVX-512
/// features check those sets' kernels and their `unsafe` dispatch too.
#[test]
fn kernel_set_follows_the_target_features_under_miri() {
    use lwflow::kernels::{kernels, Kernels};
    let k = kernels();
    eprintln!("kernel set: {k:?}");
    if cfg!(miri) {
        let want = if cfg!(all(
            target_feature = "avx512f",
            target_feature = "avx512vl",
            target_feature = "avx512bw",
            target_feature = "avx512dq"
        )) {
            Kernels::Avx512
        } else if cfg!(target_feature = "avx2") {
            Kernels::Avx2
        } else {
            Kernels::Portable
        };
        assert_eq!(k, want);
    }
}
