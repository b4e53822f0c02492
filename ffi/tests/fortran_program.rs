//! The Fortran 2008 interface module `include/lwflow.f90`, the 3D4 program (a fit through
//! `lwf_model_fit_prior_box` with a Fortran likelihood, then sampling) and the 2D2 refinement
//! (ask / tell and `lwf_refine_run` with Fortran callbacks, bit for bit the same): compiled with
//! `gfortran -std=f2008 -Wall -Wextra -pedantic -Werror` against `liblwflow.a` and run (skipped,
//! saying so, without gfortran), and checked against the header: every function bound, every
//! constant equal.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::process::Command;

/// Compiles `examples/fortran/<program>.f90` with the module against the static library
/// (warnings as errors) in scratch directory `dir`, runs it and returns its output; `None`
/// (the test skips, saying so) without gfortran.
fn compile_and_run(dir: &str, program: &str) -> Option<String> {
    let gfortran = tool("FC", "gfortran", "Fortran caller (gfortran)")?;
    let dir = scratch(dir);
    let exe = dir.join(program);
    let mut cmd = Command::new(gfortran);
    cmd.args([
        "-std=f2008",
        "-O2",
        "-Wall",
        "-Wextra",
        "-pedantic",
        "-Werror",
        "-J",
    ])
    .arg(&dir)
    .arg(repo().join("include/lwflow.f90"))
    .arg(repo().join(format!("examples/fortran/{program}.f90")))
    .arg(staticlib())
    .args(native_libs())
    .arg("-o")
    .arg(&exe);
    run(cmd);
    let out = run(Command::new(&exe));
    eprint!("{out}");
    Some(out)
}

#[test]
fn fortran_program_fits_3d4_and_samples() {
    let Some(out) = compile_and_run("fortran", "fit_3d4") else {
        return;
    };
    let kl = result_field(&out, "kl");
    assert!(kl < 0.05, "KL(p||q) of the Fortran-fitted 3D4 model: {kl}");
    assert_eq!(result_field(&out, "components"), 4.0, "K chosen by BIC");
    assert!(result_field(&out, "near") > 0.9);
}

#[test]
fn fortran_program_refines_2d2_with_ask_tell_and_the_callback() {
    let Some(out) = compile_and_run("fortran_refine", "refine_2d2") else {
        return;
    };
    let line = out
        .lines()
        .find(|l| l.starts_with("RESULT"))
        .expect("RESULT line");
    for flag in [
        "bounded=T",
        "finite_inside=T",
        "neg_inf_outside=T",
        "samples_inside=T",
        "run_identical=T",
    ] {
        assert!(line.contains(flag), "{flag} in {line}");
    }
    assert!(result_field(&out, "calls") <= 6000.0);
    let log_z_true = -2.0 * 12f64.ln();
    assert!((result_field(&out, "log_z") - log_z_true).abs() < 0.1);
}

/// `NAME = value` pairs of integer constants in `text` (header enum lines or #defines, or the
/// module's parameters).
fn constants(text: &str, prefix: &str) -> BTreeMap<String, i64> {
    let mut map = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim().trim_end_matches(',');
        let line = line.strip_prefix("#define ").unwrap_or(line);
        let Some(start) = line.find(prefix) else {
            continue;
        };
        let rest = &line[start..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let value = rest[name.len()..].trim().trim_start_matches('=').trim();
        if let Ok(v) = value.parse() {
            map.insert(name, v);
        }
    }
    map
}

#[test]
fn fortran_module_matches_the_header() {
    let header = std::fs::read_to_string(repo().join("include/lwflow.h")).unwrap();
    let module = std::fs::read_to_string(repo().join("include/lwflow.f90")).unwrap();
    let missing: Vec<String> = header_functions()
        .into_iter()
        .filter(|f| !module.contains(&format!("bind(c, name=\"{f}\")")))
        .collect();
    assert!(
        missing.is_empty(),
        "not bound in include/lwflow.f90: {missing:?}"
    );
    let in_header = constants(&header, "LWF");
    let in_module = constants(&module, "LWF");
    assert!(in_header.len() >= 25, "{in_header:?}");
    for (name, value) in &in_header {
        assert_eq!(
            in_module.get(name),
            Some(value),
            "{name} in include/lwflow.f90"
        );
    }
}
