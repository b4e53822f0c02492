//! The linking documentation, tested: an install-like prefix (include/ + lib/liblwflow.a) with
//! the pkg-config file made from `ffi/lwflow.pc.in`, used to build a C program; and the CMake
//! example (`find_library` + IMPORTED target) configured, built and run against it. Each is
//! skipped, saying so, when pkg-config or cmake is missing.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `<dir>/include/{lwflow.h,lwflow.hpp,lwflow.f90}`, `<dir>/lib/liblwflow.a` and
/// `<dir>/lib/pkgconfig/lwflow.pc`, as the README's install commands make them.
fn install_prefix(dir: &Path) -> PathBuf {
    let prefix = dir.join("prefix");
    std::fs::create_dir_all(prefix.join("include")).unwrap();
    std::fs::create_dir_all(prefix.join("lib/pkgconfig")).unwrap();
    for h in ["lwflow.h", "lwflow.hpp", "lwflow.f90"] {
        std::fs::copy(
            repo().join("include").join(h),
            prefix.join("include").join(h),
        )
        .unwrap();
    }
    std::fs::copy(staticlib(), prefix.join("lib/liblwflow.a")).unwrap();
    let template = std::fs::read_to_string(repo().join("ffi/lwflow.pc.in")).unwrap();
    let pc = template
        .replace("@PREFIX@", prefix.to_str().unwrap())
        .replace("@VERSION@", env!("CARGO_PKG_VERSION"));
    std::fs::write(prefix.join("lib/pkgconfig/lwflow.pc"), pc).unwrap();
    prefix
}

#[test]
fn pkg_config_file_builds_the_c_test() {
    let (Some(pkg_config), Some(cc)) = (
        tool("PKG_CONFIG", "pkg-config", "pkg-config linking test"),
        tool("CC", "cc", "pkg-config linking test"),
    ) else {
        return;
    };
    let dir = scratch("pkg-config");
    let prefix = install_prefix(&dir);
    let query = |args: &[&str]| {
        let mut cmd = Command::new(&pkg_config);
        cmd.args(args)
            .arg("lwflow")
            .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"));
        run(cmd)
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(query(&["--modversion"]), [env!("CARGO_PKG_VERSION")]);
    let exe = dir.join("abi_test");
    let mut cmd = Command::new(cc);
    cmd.args(["-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror"])
        .args(query(&["--cflags"]))
        .arg(repo().join("examples/c/abi_test.c"))
        .args(query(&["--static", "--libs"]))
        .arg("-o")
        .arg(&exe);
    run(cmd);
    let out = run(Command::new(&exe));
    assert!(out.contains("failures: 0"), "{out}");
}

#[test]
fn cmake_example_links_the_static_library() {
    let Some(cmake) = tool("CMAKE", "cmake", "CMake example") else {
        return;
    };
    let dir = scratch("cmake");
    let prefix = install_prefix(&dir);
    let build = dir.join("build");
    let mut configure = Command::new(&cmake);
    configure
        .arg("-S")
        .arg(repo().join("examples/cmake"))
        .arg("-B")
        .arg(&build)
        .arg(format!("-DLWFLOW_ROOT={}", prefix.display()))
        .arg("-DCMAKE_CXX_FLAGS=-Wall -Wextra -Wpedantic -Werror");
    run(configure);
    let mut compile = Command::new(&cmake);
    compile.arg("--build").arg(&build);
    run(compile);
    let out = run(Command::new(build.join("lwflow_cmake_example")));
    eprint!("{out}");
    assert!(out.contains("reloaded: same"));
}
