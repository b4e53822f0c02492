//! No document in the repository points to a file that is not in it (issue 14, acceptance 6).
//!
//! Scans every text file of the repository (Markdown, Rust, C, C++, Fortran, Julia, shell,
//! Python, TOML, CMake; `target/`, `build/` and `.git/` left out) and fails, listing every
//! offence, on:
//!
//! - a Markdown link `[text](path)` (outside code blocks) whose file does not exist, or whose
//!   `#anchor` names no heading of the linked Markdown file (GitHub's heading slugs);
//! - a path into the repository's own folders (`src/`, `tasks/`, `tests/`, `examples/`,
//!   `benches/`, `docs/`, `ffi/`, `include/`, `.ci/`, possibly after `../`), in prose, comments
//!   or code, that resolves from neither the file's folder nor any folder above it (paths
//!   through a `target/` folder are build outputs and are not checked);
//! - a Markdown file named anywhere (`NAME.md`, with or without a folder) that is not in the
//!   repository;
//! - any mention of the project's shared folder outside the repository, or of the documents
//!   and harnesses kept there by name.
//!
//! It reads about two hundred files and takes milliseconds.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Folders never scanned: version control and build outputs.
const SKIP_DIRS: [&str; 3] = [".git", "target", "build"];
/// Extensions of the files scanned (CMakeLists.txt is a `.txt`).
const EXTENSIONS: [&str; 13] = [
    "md", "rs", "c", "h", "hpp", "cpp", "f90", "jl", "toml", "sh", "txt", "py", "in",
];
/// Extension-less files scanned, by name.
const NAMES: [&str; 1] = ["run"];
/// The repository's own top-level folders: a path starting with one of them must resolve.
const ROOTS: [&str; 9] = [
    "src/",
    "tasks/",
    "tests/",
    "examples/",
    "benches/",
    "docs/",
    "ffi/",
    "include/",
    ".ci/",
];
/// Characters of a path token.
fn path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-')
}

/// Mentions that point outside the repository by construction (built from parts, so that
/// this file does not contain them).
fn forbidden() -> Vec<String> {
    vec![
        ["..", "/shared"].concat(),
        ["shared", "/"].concat(),
        ["bench", "-peer"].concat(),
        ["paper", "-summary"].concat(),
    ]
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if !SKIP_DIRS.contains(&name.as_str()) {
                collect(&path, out);
            }
        } else {
            let ext = path.extension().map(|e| e.to_string_lossy().into_owned());
            let scanned = match ext {
                Some(e) => EXTENSIONS.contains(&e.as_str()),
                None => NAMES.contains(&name.as_str()),
            };
            if scanned {
                out.push(path);
            }
        }
    }
}

/// `text` with the contents of fenced code blocks blanked (line structure kept).
fn without_code_blocks(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut fenced = false;
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            out.push('\n');
        } else if fenced {
            out.push('\n');
        } else {
            out.push_str(line);
        }
    }
    out
}

/// GitHub's anchor of a heading: lower case, spaces to hyphens, other punctuation dropped,
/// repeats numbered -1, -2, ...
fn anchors(markdown: &str) -> HashSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = HashSet::new();
    for line in without_code_blocks(markdown).lines() {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let mut slug = String::new();
        for c in line[hashes..].trim().chars() {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                slug.extend(c.to_lowercase());
            } else if c == ' ' {
                slug.push('-');
            }
        }
        let n = seen.entry(slug.clone()).or_insert(0);
        out.insert(if *n == 0 {
            slug.clone()
        } else {
            format!("{slug}-{n}")
        });
        *n += 1;
    }
    out
}

/// Whether `target` names an existing file or folder relative to `dir` or a folder above it
/// (up to the repository root).
fn resolves(root: &Path, dir: &Path, target: &str) -> bool {
    let mut base = Some(dir);
    while let Some(b) = base {
        if b.join(target).exists() {
            return true;
        }
        if b == root {
            break;
        }
        base = b.parent();
    }
    false
}

fn line_of(text: &str, at: usize) -> usize {
    text[..at].matches('\n').count() + 1
}

/// The path token that ends at byte `end` (exclusive) of `text`, and where it starts.
fn token_before(text: &str, end: usize) -> (usize, &str) {
    let start = text[..end]
        .char_indices()
        .rev()
        .take_while(|&(_, c)| path_char(c))
        .last()
        .map_or(end, |(i, _)| i);
    (start, &text[start..end])
}

/// The path token that starts at byte `start` of `text`, without trailing dots.
fn token_after(text: &str, start: usize) -> &str {
    let len = text[start..]
        .char_indices()
        .find(|&(_, c)| !path_char(c))
        .map_or(text.len() - start, |(i, _)| i);
    text[start..start + len].trim_end_matches('.')
}

/// Whether the token is a build output (inside a `target/` folder) or empty.
fn generated(token: &str) -> bool {
    token.is_empty() || token.starts_with("target/") || token.contains("/target/")
}

/// Whether `lead` is nothing but `../` and `./` steps.
fn relative_steps(mut lead: &str) -> bool {
    while !lead.is_empty() {
        match lead.strip_prefix("../").or_else(|| lead.strip_prefix("./")) {
            Some(rest) => lead = rest,
            None => return false,
        }
    }
    true
}

/// Every offence in one file, as "path:line: what".
fn check_file(
    root: &Path,
    path: &Path,
    basenames: &HashSet<String>,
    anchor_cache: &mut HashMap<PathBuf, HashSet<String>>,
) -> Vec<String> {
    let Ok(text) = fs::read_to_string(path) else {
        return Vec::new();
    };
    let rel = path
        .strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string();
    let dir = path.parent().unwrap_or(root);
    // One report per line and pointer, whichever checks caught it.
    let mut bad: BTreeMap<(usize, String), String> = BTreeMap::new();
    let mut report = |at_line: usize, token: &str, why: &str| {
        bad.entry((at_line, token.to_string()))
            .or_insert_with(|| format!("{rel}:{at_line}: `{token}`: {why}"));
    };

    for word in forbidden() {
        for (at, _) in text.match_indices(word.as_str()) {
            let before = text[..at].chars().next_back();
            // "shared/" only as a folder name, not as the end of a longer word, and not again
            // after a "../" already reported.
            if word.starts_with('s')
                && (before.is_some_and(|c| path_char(c) && c != '/') || text[..at].ends_with("../"))
            {
                continue;
            }
            report(line_of(&text, at), &word, "outside the repository");
        }
    }

    if path.extension().is_some_and(|e| e == "md") {
        let prose = without_code_blocks(&text);
        for (at, _) in prose.match_indices("](") {
            let link = &prose[at + 2..];
            let end = link.find([')', ' ', '\n']).unwrap_or(link.len());
            let link = &link[..end];
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = link.split_once('#').unwrap_or((link, ""));
            let target = if file.is_empty() {
                path.to_path_buf()
            } else {
                dir.join(file)
            };
            let line = line_of(&prose, at);
            if !target.exists() {
                report(line, file, "not in the repository");
                continue;
            }
            if !anchor.is_empty() && target.extension().is_some_and(|e| e == "md") {
                let known = anchor_cache
                    .entry(target.clone())
                    .or_insert_with(|| anchors(&fs::read_to_string(&target).unwrap_or_default()));
                if !known.contains(anchor) {
                    report(line, link, "no such heading");
                }
            }
        }
    }

    for prefix in ROOTS {
        for (at, _) in text.match_indices(prefix) {
            // Only at the start of a token, possibly after `../` or `./` steps.
            let (start, lead) = token_before(&text, at);
            let before = text[..start].chars().next_back();
            if !relative_steps(lead) || before.is_some_and(|c| matches!(c, '$' | '}' | ':')) {
                continue;
            }
            let token = format!("{lead}{}", token_after(&text, at));
            if !generated(&token) && !resolves(root, dir, &token) {
                report(line_of(&text, at), &token, "not in the repository");
            }
        }
    }

    for (at, _) in text.match_indices(".md") {
        let after = text[at + 3..].chars().next();
        if after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let (start, token) = token_before(&text, at + 3);
        let before = text[..start].chars().next_back();
        if token == ".md"
            || generated(token)
            || before.is_some_and(|c| matches!(c, '$' | '}' | ':'))
        {
            continue;
        }
        let found = if token.contains('/') {
            resolves(root, dir, token)
        } else {
            basenames.contains(token)
        };
        if !found {
            report(line_of(&text, at), token, "not in the repository");
        }
    }
    bad.into_values().collect()
}

fn scan(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    collect(root, &mut files);
    let this = root.join(file!());
    files.retain(|f| f != &this);
    files.sort();
    let basenames: HashSet<String> = files
        .iter()
        .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let mut anchor_cache = HashMap::new();
    files
        .iter()
        .flat_map(|f| check_file(root, f, &basenames, &mut anchor_cache))
        .collect()
}

#[test]
fn documents_point_only_to_files_in_the_repository() {
    let root = repo();
    let bad = scan(&root);
    assert!(
        bad.is_empty(),
        "{} pointer(s) to files that are not in the repository:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn the_scan_sees_the_documents_and_catches_a_broken_link() {
    let root = repo();
    let mut files = Vec::new();
    collect(&root, &mut files);
    for doc in [
        "README.md",
        "docs/ARCHITECTURE.md",
        "docs/DESIGN.md",
        "docs/TASKS.md",
        "examples/README.md",
    ] {
        assert!(files.contains(&root.join(doc)), "{doc} not scanned");
    }
    // A scratch tree with one good and three bad pointers.
    let scratch = std::env::temp_dir().join(format!("lwflow-docs-links-{}", std::process::id()));
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(scratch.join("docs")).expect("scratch");
    fs::write(scratch.join("docs/A.md"), "# Title\n\n## Part two\n").expect("write");
    fs::write(
        scratch.join("README.md"),
        "[ok](docs/A.md#part-two) [gone](docs/B.md) [anchor](docs/A.md#nowhere)\n\
         see src/missing.rs and OTHER.md\n",
    )
    .expect("write");
    let bad = scan(&scratch);
    let _ = fs::remove_dir_all(&scratch);
    assert_eq!(bad.len(), 4, "{bad:#?}");
    assert!(bad.iter().any(|b| b.contains("docs/B.md")));
    assert!(bad.iter().any(|b| b.contains("#nowhere")));
    assert!(bad.iter().any(|b| b.contains("src/missing.rs")));
    assert!(bad.iter().any(|b| b.contains("OTHER.md")));
}
