//! `examples/c/checkpoint_test.c`, resumable fits and refinements from C (compiled with
//! `-std=c11 -Wall -Wextra -Wpedantic -Werror` against the built `liblwflow.a`): a host killed
//! mid-run, a child process that ends with `_exit` right after saving a checkpoint file at an
//! epoch (or round) drawn from the seed, resumes in the parent from that file and ends with
//! bit-identical parameters and report, and the likelihood points evaluated by the child and
//! the resumption add up to the uninterrupted run's (zero repeated calls); truncated,
//! corrupted and foreign checkpoint files are `LWF_BAD_FORMAT` with nothing written. Each
//! section runs with three seeds; the whole program with small counts under valgrind.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const C_FLAGS: [&str; 6] = [
    "-std=c11",
    "-Wall",
    "-Wextra",
    "-Wpedantic",
    "-Werror",
    "-O2",
];

/// The compiled program, built once per test binary; `None` (skipped, said on stderr) without
/// a C compiler.
fn program() -> Option<&'static Path> {
    static EXE: OnceLock<Option<PathBuf>> = OnceLock::new();
    EXE.get_or_init(|| {
        let cc = tool("CC", "cc", "C checkpoint tests")?;
        let dir = scratch("checkpoint_test");
        let exe = dir.join("checkpoint_test");
        let mut cmd = Command::new(cc);
        cmd.args(C_FLAGS)
            .arg("-I")
            .arg(repo().join("include"))
            .arg(repo().join("examples/c/checkpoint_test.c"))
            .arg(staticlib())
            .args(native_libs())
            .arg("-o")
            .arg(&exe);
        run(cmd);
        Some(exe)
    })
    .as_deref()
}

/// Runs one section with `seed` in its own scratch directory; the program exits non-zero (and
/// `run` fails with its output) on any failed check.
fn section(name: &str, seed: u64) {
    let Some(exe) = program() else {
        return;
    };
    let dir = scratch(&format!("checkpoint_{name}_{seed}"));
    let out = run({
        let mut c = Command::new(exe);
        c.args([name, &seed.to_string()]).arg(&dir);
        c
    });
    eprint!("{out}");
    let summary = out
        .lines()
        .find(|l| l.starts_with("checks:"))
        .expect("summary line");
    assert!(summary.ends_with("failures: 0"), "{summary}");
}

#[test]
fn a_fit_killed_at_a_random_epoch_resumes_bit_identical_without_repeated_likelihood_calls() {
    for seed in [1, 20_240_611, 7] {
        section("fit", seed);
    }
}

#[test]
fn resumable_samples_fits_equal_the_plain_ones_and_resume() {
    section("samples", 3);
}

#[test]
fn a_refinement_killed_at_a_random_round_restores_bit_identical() {
    for seed in [2, 99, 12_345] {
        section("refine", seed);
    }
}

#[test]
fn checkpoint_program_is_valgrind_clean() {
    let Some(exe) = program() else {
        return;
    };
    let dir = scratch("checkpoint_valgrind");
    let dir = dir.to_str().expect("UTF-8 scratch path");
    run_valgrind(exe, &["all", "5", dir, "quick"]);
}
