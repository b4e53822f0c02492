//! `examples/c/fuzz_regressions.c`, the regression tests from C for the defects the fuzz
//! targets found (compiled with `-std=c11 -Wall -Wextra -Wpedantic -Werror` against the built
//! `liblwflow.a`): one test per defect, each running its section of the program natively, and
//! the whole program under valgrind.
//!
//! - F1: a fit whose samples have zero density under every parameters it reaches returns
//!   `LWF_NON_FINITE` (it returned `LWF_OK` with an infinite validation loss in the report).
//! - F2: `lwf_model_adam_step` never moves the outer maps (it could make the box lo > hi, a
//!   model that saved but did not load).
//! - F3: `lwf_model_adam_step` with lr 1e308 is `LWF_NON_FINITE`, nothing changed (it returned
//!   `LWF_OK` with every parameter NaN).
//! - F4: `likelihood_batch` 2^63 in 2-D is one likelihood call (it was `LWF_PANIC`).
//! - F5: a refinement whose shape has more mixture components than `max_components` runs to
//!   its end (every call after the first ask returned `LWF_INVALID_MODEL`).

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
        let cc = tool("CC", "cc", "C fuzz regression tests")?;
        let dir = scratch("fuzz_regressions");
        let exe = dir.join("fuzz_regressions");
        let mut cmd = Command::new(cc);
        cmd.args(C_FLAGS)
            .arg("-I")
            .arg(repo().join("include"))
            .arg(repo().join("examples/c/fuzz_regressions.c"))
            .arg(staticlib())
            .args(native_libs())
            .arg("-o")
            .arg(&exe);
        run(cmd);
        Some(exe)
    })
    .as_deref()
}

/// Runs one section of the program; it exits non-zero (and `run` fails with its output) on
/// any failed check.
fn section(name: &str) {
    let Some(exe) = program() else {
        return;
    };
    let out = run({
        let mut c = Command::new(exe);
        c.arg(name);
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
fn f1_a_fit_that_cannot_evaluate_its_samples_is_non_finite_not_ok_with_inf() {
    section("f1");
}

#[test]
fn f2_adam_step_never_moves_the_outer_maps() {
    section("f2");
}

#[test]
fn f3_adam_step_never_leaves_non_finite_parameters() {
    section("f3");
}

#[test]
fn f4_a_likelihood_batch_of_2_pow_63_is_one_call() {
    section("f4");
}

#[test]
fn f5_a_refinement_ignores_the_base_of_its_shape() {
    section("f5");
}

#[test]
fn fuzz_regressions_program_is_valgrind_clean() {
    let Some(exe) = program() else {
        return;
    };
    run_valgrind(exe, &["all"]);
}
