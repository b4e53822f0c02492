//! `examples/c/defects_test.c`, the regression tests from C for the silent failures of issue 15
//! (compiled with `-std=c11 -Wall -Wextra -Wpedantic -Werror -pthread` against the built
//! `liblwflow.a`): one test per defect, each running its section of the program natively, and
//! the whole program with small counts under valgrind.
//!
//! - D1: a clamp of -0.0 or a subnormal float is refused by `lwf_shape_validate`,
//!   `lwf_model_inspect` and `lwf_model_load` alike; what any door accepts, every later call
//!   accepts.
//! - D2: `lwf_model_set_mixture_base` with weights {1e308, 1e-308} stores finite parameters.
//! - O1: with finite but extreme parameters (1e300) no evaluation returns `LWF_OK` with a NaN or
//!   infinite output (`LWF_NON_FINITE` instead); -inf outside a bounded model's box stays valid.
//! - O2: `lwf_model_loss_grad_accumulate` refuses a non-finite incoming loss or gradient and
//!   sums that overflow (`LWF_NON_FINITE`, nothing changed).
//! - O3: threads sharing one handle through `lwf_model_log_prob` never get `LWF_OK` with a
//!   wrong value, do get `LWF_BUSY`, and a byte copy taken mid-call is usable; the `_ws` forms
//!   are never refused.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const C_FLAGS: [&str; 7] = [
    "-std=c11",
    "-Wall",
    "-Wextra",
    "-Wpedantic",
    "-Werror",
    "-O2",
    "-pthread",
];

/// The compiled program, built once per test binary; `None` (skipped, said on stderr) without
/// a C compiler.
fn program() -> Option<&'static Path> {
    static EXE: OnceLock<Option<PathBuf>> = OnceLock::new();
    EXE.get_or_init(|| {
        let cc = tool("CC", "cc", "C defect regression tests")?;
        let dir = scratch("defects_test");
        let exe = dir.join("defects_test");
        let mut cmd = Command::new(cc);
        cmd.args(C_FLAGS)
            .arg("-I")
            .arg(repo().join("include"))
            .arg(repo().join("examples/c/defects_test.c"))
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
fn d1_clamp_minus_zero_or_subnormal_is_refused_at_every_door() {
    section("d1");
}

#[test]
fn d2_mixture_weights_across_the_double_range_give_finite_parameters() {
    section("d2");
}

#[test]
fn o1_extreme_parameters_never_give_ok_with_non_finite_outputs() {
    section("o1");
}

#[test]
fn o2_accumulate_refuses_non_finite_incoming_values_and_overflowing_sums() {
    section("o2");
}

#[test]
fn o4_an_overflowing_adam_step_changes_nothing() {
    section("o4");
}

#[test]
fn o3_threads_sharing_one_handle_get_busy_never_a_wrong_value() {
    section("o3");
}

#[test]
fn defects_program_is_valgrind_clean() {
    let Some(exe) = program() else {
        return;
    };
    run_valgrind(exe, &["all", "quick"]);
}
