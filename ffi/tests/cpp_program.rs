//! The C++17 wrapper `include/lwflow.hpp` and its test program (manual training loop and the
//! one-call fit with C++ callables), compiled with
//! `-std=c++17 -Wall -Wextra -Wpedantic -Werror` against `liblwflow.a` and run.

mod common;

use common::*;
use std::process::Command;

#[test]
fn cpp_wrapper_program_builds_and_passes() {
    let Some(cxx) = tool("CXX", "c++", "C++ caller") else {
        return;
    };
    let dir = scratch("cpp");
    let exe = dir.join("test_lwflow");
    let mut cmd = Command::new(cxx);
    cmd.args([
        "-std=c++17",
        "-O2",
        "-Wall",
        "-Wextra",
        "-Wpedantic",
        "-Werror",
    ])
    .arg("-I")
    .arg(repo().join("include"))
    .arg(repo().join("examples/cpp/test_lwflow.cpp"))
    .arg(staticlib())
    .args(native_libs())
    .arg("-o")
    .arg(&exe);
    run(cmd);
    let out = run(Command::new(&exe));
    eprint!("{out}");
    assert!(result_field(&out, "kl") < 0.05);
    assert!(result_field(&out, "fit_kl") < 0.05);
    assert!(out.contains("failures=0"));
}
