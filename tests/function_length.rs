//! No function in the core (`src/`) or the C ABI crate (`ffi/src/`) is longer than
//! [`MAX_LINES`] lines, from its `fn` line to its closing brace (doc comments not counted), so
//! a newcomer can read each one at a time. Longer code is split along its seams.

use std::fs;
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 80;

/// Every `.rs` file under `root`.
fn sources(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out
}

/// The name of the function a line declares (`fn`, with any of `pub(..)`, `const`,
/// `unsafe`, `extern "C"` before it), if it does.
fn declared(line: &str) -> Option<&str> {
    let mut rest = line.trim_start();
    loop {
        let before = rest;
        if let Some(r) = rest.strip_prefix("pub") {
            rest = match r.strip_prefix('(') {
                Some(inner) => inner.split_once(')')?.1,
                None => r,
            }
            .trim_start();
        }
        for word in ["const ", "unsafe ", "extern \"C\" ", "async "] {
            if let Some(r) = rest.strip_prefix(word) {
                rest = r.trim_start();
            }
        }
        if rest == before {
            break;
        }
    }
    let name = rest.strip_prefix("fn ")?;
    let end = name
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(name.len());
    Some(&name[..end])
}

/// (name, first line, length) of every function in `text` longer than `max` lines. A
/// function ends at the first later line that is a `}` at its `fn` line's indentation (the
/// rustfmt layout every file here has); a declaration without a body (`;`) is skipped.
fn long_functions(text: &str, max: usize) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(name) = declared(line) else { continue };
        let indent = line.len() - line.trim_start().len();
        let closing = format!("{}}}", " ".repeat(indent));
        let mut end = None;
        for (j, l) in lines.iter().enumerate().skip(i) {
            if l.starts_with(&closing) && l.len() - l.trim_start().len() == indent {
                end = Some(j);
                break;
            }
            if l.trim_end().ends_with(';') && j == i {
                break;
            }
        }
        if let Some(j) = end {
            let len = j - i + 1;
            if len > max {
                out.push((name.to_string(), i + 1, len));
            }
        }
    }
    out
}

#[test]
fn no_function_is_longer_than_eighty_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut long = Vec::new();
    for dir in ["src", "ffi/src"] {
        for path in sources(&root.join(dir)) {
            let text = fs::read_to_string(&path).unwrap();
            for (name, line, len) in long_functions(&text, MAX_LINES) {
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                long.push(format!("{rel}:{line} {name} ({len} lines)"));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {MAX_LINES} lines:\n{}",
        long.join("\n")
    );
}

/// The scan sees functions of every form and measures them to their closing brace.
#[test]
fn the_scan_finds_a_planted_long_function() {
    let body = "    let x = 1;\n".repeat(85);
    for head in [
        "fn plain() {",
        "    pub(crate) fn method(&self) -> u8 {",
        "pub unsafe extern \"C\" fn lwf_x(a: *const u8) -> i32 {",
        "    pub const fn konst() -> usize {",
    ] {
        let indent = " ".repeat(head.len() - head.trim_start().len());
        let text = format!("/// doc\n{head}\n{body}{indent}}}\nfn short() {{}}\n");
        let found = long_functions(&text, MAX_LINES);
        assert_eq!(found.len(), 1, "{head}: {found:?}");
        assert_eq!(found[0].2, 87, "{head}");
    }
    let short = format!("fn f() {{\n{}}}\n", "    let x = 1;\n".repeat(78));
    assert!(long_functions(&short, MAX_LINES).is_empty());
    assert!(long_functions("fn decl(x: u8);\n", MAX_LINES).is_empty());
}
