//! The committed header `include/lwflow.h` is exactly what the pinned cbindgen generates from
//! this crate; its version macros match Cargo.toml. `LWFLOW_BLESS=1` rewrites the header.

use std::path::{Path, PathBuf};

fn ffi_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn header_path() -> PathBuf {
    ffi_dir().join("../include/lwflow.h")
}

fn generate() -> String {
    let dir = ffi_dir();
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(&dir)
        .with_config(config)
        .generate()
        .expect("cbindgen failed to generate the header");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("header is UTF-8")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn committed_header_matches_generated() {
    let generated = generate();
    let path = header_path();
    if std::env::var_os("LWFLOW_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write include/lwflow.h");
        eprintln!("LWFLOW_BLESS: wrote {}", path.display());
        return;
    }
    let committed = read(&path);
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .map_or(
                committed.lines().count().min(generated.lines().count()),
                |i| i,
            );
        panic!(
            "include/lwflow.h is out of date with ffi/src (first difference at line {}).\n\
             committed: {:?}\ngenerated: {:?}\n\
             Regenerate with: LWFLOW_BLESS=1 cargo test -p lwflow-ffi --test header",
            line + 1,
            committed.lines().nth(line),
            generated.lines().nth(line)
        );
    }
}

fn define(header: &str, name: &str) -> Option<u32> {
    header.lines().find_map(|l| {
        let rest = l.strip_prefix("#define ")?.strip_prefix(name)?;
        rest.strip_prefix(' ')?.trim().parse().ok()
    })
}

#[test]
fn version_macros_match_cargo_toml() {
    let header = read(&header_path());
    for (name, want) in [
        ("LWFLOW_VERSION_MAJOR", env!("CARGO_PKG_VERSION_MAJOR")),
        ("LWFLOW_VERSION_MINOR", env!("CARGO_PKG_VERSION_MINOR")),
        ("LWFLOW_VERSION_PATCH", env!("CARGO_PKG_VERSION_PATCH")),
    ] {
        let got = define(&header, name).unwrap_or_else(|| panic!("{name} missing in header"));
        assert_eq!(
            got.to_string(),
            want,
            "{name} in include/lwflow.h vs ffi/Cargo.toml"
        );
    }
    // The C library and the Rust core are released together: same version.
    let core_toml = read(&ffi_dir().join("../Cargo.toml"));
    let core_version = core_toml
        .lines()
        .find_map(|l| l.strip_prefix("version = "))
        .map(|v| v.trim().trim_matches('"').to_string());
    assert_eq!(
        core_version.as_deref(),
        Some(env!("CARGO_PKG_VERSION")),
        "ffi/Cargo.toml version must equal the core's (root Cargo.toml)"
    );
}
