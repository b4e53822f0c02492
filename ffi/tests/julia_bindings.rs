//! Julia is not installable on the development machine, so `examples/julia/lwflow.jl` is never
//! run here. This checks what can be checked without Julia: every exported function of the
//! header has a `ccall` in it, and its status and code constants equal the header's.

mod common;

use common::*;

#[test]
fn julia_wrapper_binds_every_header_function() {
    let julia = std::fs::read_to_string(repo().join("examples/julia/lwflow.jl")).unwrap();
    let missing: Vec<String> = header_functions()
        .into_iter()
        .filter(|f| !julia.contains(&format!(":{f}")))
        .collect();
    assert!(
        missing.is_empty(),
        "no ccall in examples/julia/lwflow.jl for {missing:?}"
    );
    let header = std::fs::read_to_string(repo().join("include/lwflow.h")).unwrap();
    for line in header.lines().map(str::trim) {
        let Some((name, value)) = line.trim_end_matches(',').split_once(" = ") else {
            continue;
        };
        if name.starts_with("LWF_") {
            let want = format!("const {name} = ");
            let found = julia
                .lines()
                .find_map(|l| l.strip_prefix(&want))
                .unwrap_or_else(|| panic!("{name} missing in lwflow.jl"));
            // `Cint(12)` or `Int32(2)`: the number in parentheses
            let number = found
                .split_once('(')
                .and_then(|(_, rest)| rest.split_once(')'))
                .map(|(n, _)| n.trim());
            assert_eq!(number, Some(value), "{name}");
        }
    }
}
