//! Helpers shared by the tests that build and run the C, C++ and Fortran callers: where the
//! built library is, which tools the machine has, compiling and running with clear failures.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The header's `LwfShape`, field for field (the Rust tests that call the library through
/// its exported symbols share this mirror).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LwfShape {
    pub dim: usize,
    pub hidden: usize,
    pub hidden_layers: usize,
    pub couplings: usize,
    pub components: usize,
    pub clamp: f64,
    pub base: i32,
    pub activation: i32,
    pub affine: i32,
    pub bounded: i32,
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("ffi/ has a parent")
        .to_path_buf()
}

/// The profile directory cargo built this test into (`target/debug` for `cargo test`,
/// `target/release` for `cargo test --release`): the test binary lives in its `deps/`.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary is in <profile>/deps")
        .to_path_buf()
}

/// Builds the library's `staticlib` and `cdylib` into the profile directory, once per test
/// binary. Cargo does not build a package's non-Rust library types for its integration tests
/// (they cannot link them), so the tests ask cargo for them; this reuses the test build of
/// the core and takes a second or two. The nested cargo does not deadlock: cargo releases the
/// build lock before running tests.
fn ensure_built() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = profile_dir();
        let profile = match dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => "test".to_string(),
            Some(other) => other.to_string(),
            None => panic!("unexpected profile directory {}", dir.display()),
        };
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args([
            "build",
            "--offline",
            "-p",
            "lwflow-ffi",
            "--lib",
            "--profile",
        ])
        .arg(&profile)
        .arg("--target-dir")
        .arg(dir.parent().expect("target dir"))
        .current_dir(repo());
        run(cmd);
    });
}

pub fn staticlib() -> PathBuf {
    ensure_built();
    let lib = profile_dir().join("liblwflow.a");
    assert!(lib.exists(), "{} not built", lib.display());
    lib
}

pub fn cdylib() -> PathBuf {
    ensure_built();
    let lib = profile_dir().join(if cfg!(target_os = "macos") {
        "liblwflow.dylib"
    } else {
        "liblwflow.so"
    });
    assert!(lib.exists(), "{} not built", lib.display());
    lib
}

/// The built cdylib, loaded once per test binary and kept for the process's lifetime (the
/// resolved function pointers of the tests' `Api` tables borrow from it).
pub fn loaded_cdylib() -> &'static libloading::Library {
    static LIB: OnceLock<libloading::Library> = OnceLock::new();
    // SAFETY: loading our own cdylib, whose initialisers are Rust's std only.
    LIB.get_or_init(|| unsafe { libloading::Library::new(cdylib()) }.expect("load the cdylib"))
}

/// System libraries a Rust staticlib needs on this platform (`rustc --print
/// native-static-libs` on x86_64 Linux gives `-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc`).
pub fn native_libs() -> Vec<&'static str> {
    if cfg!(target_os = "macos") {
        vec!["-lSystem", "-lm"]
    } else {
        vec![
            "-lgcc_s",
            "-lutil",
            "-lrt",
            "-lpthread",
            "-lm",
            "-ldl",
            "-lc",
        ]
    }
}

/// A fresh scratch directory for one test's build products.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("lwflow-ffi")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// The program `name` (or the one named by the environment variable `env`) if it runs on this
/// machine, else `None` after saying clearly that the caller's test is skipped.
pub fn tool(env: &str, name: &str, what: &str) -> Option<String> {
    let program = std::env::var(env).unwrap_or_else(|_| name.to_string());
    match Command::new(&program).arg("--version").output() {
        Ok(out) if out.status.success() => Some(program),
        _ => {
            eprintln!(
                "SKIPPED: {what}: `{program}` not found (install it or set {env}); \
                 this test did not run"
            );
            None
        }
    }
}

fn describe(cmd: &Command, out: &Output) -> String {
    format!(
        "{:?}\nexit: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        cmd,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd`, panics with its full output unless it exits 0; returns stdout.
pub fn run(mut cmd: Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "command failed: {}",
        describe(&cmd, &out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `program args` under valgrind (memcheck, leaks, any error fails) when valgrind is
/// installed; returns whether it ran.
pub fn run_valgrind(program: &Path, args: &[&str]) -> bool {
    let Some(valgrind) = tool("VALGRIND", "valgrind", "valgrind run") else {
        return false;
    };
    let mut cmd = Command::new(valgrind);
    cmd.args([
        "-q",
        "--error-exitcode=99",
        "--leak-check=full",
        "--errors-for-leak-kinds=definite,indirect,possible",
    ])
    .arg(program)
    .args(args);
    let out = run(cmd);
    eprintln!("valgrind clean: {} {}", program.display(), args.join(" "));
    eprint!("{out}");
    true
}

/// The value after `key=` in the line starting with `RESULT`.
pub fn result_field(stdout: &str, key: &str) -> f64 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("RESULT"))
        .unwrap_or_else(|| panic!("no RESULT line in:\n{stdout}"));
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

/// The `lwf_*` functions the committed header declares.
pub fn header_functions() -> Vec<String> {
    let header = std::fs::read_to_string(repo().join("include/lwflow.h")).expect("header");
    let mut names: Vec<String> = header
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.starts_with('#') && !l.starts_with('*'))
        .filter_map(|l| {
            let start = l.find("lwf_")?;
            let rest = &l[start..];
            let end = rest.find('(')?;
            let name = &rest[..end];
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
                .then(|| name.to_string())
        })
        .collect();
    names.sort();
    names.dedup();
    assert!(names.len() >= 25, "found only {names:?} in the header");
    names
}
