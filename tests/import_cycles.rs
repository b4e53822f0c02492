//! No import cycles between the top-level modules of the core (`src/`) or of the C ABI crate
//! (`ffi/src/`): a module's code (comments aside) names `crate::other` only if `other` does
//! not, directly or through others, name it back. Data flows one way: a newcomer can read the
//! modules in an order where each uses only what came before.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// Top-level module → the top-level modules its code names through `crate::`.
fn graph(root: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(root).unwrap();
            let first = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy();
            let module = first.trim_end_matches(".rs").to_string();
            if module == "lib" || module == "main" {
                continue;
            }
            let text = fs::read_to_string(&path).unwrap();
            let deps = g.entry(module.clone()).or_default();
            for line in text.lines() {
                let code = line.split("//").next().unwrap_or("");
                assert!(
                    !code.contains("crate::{"),
                    "{}: write one `use crate::module::…` per module, so this test sees them",
                    path.display()
                );
                for (at, _) in code.match_indices("crate::") {
                    let name: String = code[at + 7..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() && name != module {
                        deps.insert(name);
                    }
                }
            }
        }
    }
    g
}

/// Every cycle found by a depth-first search, as the path that closes it.
fn cycles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    fn visit(
        g: &BTreeMap<String, BTreeSet<String>>,
        node: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        found: &mut Vec<Vec<String>>,
    ) {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            found.push(cycle);
            return;
        }
        if done.contains(node) {
            return;
        }
        path.push(node.to_string());
        for next in g.get(node).into_iter().flatten() {
            visit(g, next, path, done, found);
        }
        path.pop();
        done.insert(node.to_string());
    }
    let (mut done, mut found) = (BTreeSet::new(), Vec::new());
    for node in g.keys() {
        visit(g, node, &mut Vec::new(), &mut done, &mut found);
    }
    found
}

#[test]
fn no_module_of_the_core_or_the_ffi_imports_itself_back() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    for root in ["src", "ffi/src"] {
        let g = graph(&here.join(root));
        assert!(g.len() > 5, "{root}: modules found: {:?}", g.keys());
        let found = cycles(&g);
        assert!(found.is_empty(), "{root}: import cycles {found:?}");
    }
}

#[test]
fn the_search_finds_a_planted_cycle() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let edge = |g: &mut BTreeMap<String, BTreeSet<String>>, a: &str, b: &str| {
        g.entry(a.into()).or_default().insert(b.into());
    };
    edge(&mut g, "a", "b");
    edge(&mut g, "b", "c");
    edge(&mut g, "c", "d");
    assert!(cycles(&g).is_empty());
    edge(&mut g, "d", "b");
    assert_eq!(cycles(&g), vec![vec!["b", "c", "d", "b"]]);
}
