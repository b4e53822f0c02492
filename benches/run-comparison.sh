#!/usr/bin/env bash
# The interleaved lwflow-vs-normflows sitting behind benches/README.md: builds first (the native
# build in target/native, ignored by git with the rest of target/), then
# normflows, lwflow native, lwflow default, normflows again, on one thread each, logging to
# benches/results/. Needs the peer harness, which is not part of this repository (docs/TASKS.md,
# "Rerunning the peers", says what it runs): PEER names its directory (bench.py), and its venv,
# here /work/peer-venv (PEER_PY overrides it).
set -euo pipefail
cd "$(dirname "$0")/.."
out=benches/results
mkdir -p "$out"
peer_py=${PEER_PY:-/work/peer-venv/bin/python}
peer=${PEER:?set PEER to the directory of the peer harness (bench.py)}/bench.py

native() { CARGO_TARGET_DIR=target/native RUSTFLAGS="-C target-cpu=native" cargo bench "$@"; }
plain() { CARGO_TARGET_DIR=target cargo bench "$@"; }

native --benches --no-run
plain --benches --no-run

{ date -u; uptime; lscpu | grep -E "Model name|Flags" | cut -c1-200; } > "$out/machine.txt"
run_peer() {
    # Timings only: the end-to-end part is cut to one step (--steps 1).
    "$peer_py" "$peer" --threads 1 --steps 1 --out "$out/peer-$1.json" > "$out/peer-$1.log" 2>&1
    uptime >> "$out/peer-$1.log"
}
run_peer 1
native --benches 2>&1 | tee "$out/lwflow-native.log" | grep -E "^[a-z_0-9/]+ +time:|^[a-z_0-9/]+$|time:" || true
uptime >> "$out/lwflow-native.log"
plain --benches 2>&1 | tee "$out/lwflow-default.log" | grep -E "time:" || true
uptime >> "$out/lwflow-default.log"
run_peer 2

python3 benches/report.py --native target/native/criterion --default target/criterion \
    --peer "$out/peer-1.json" --peer "$out/peer-2.json" | tee "$out/table.md"

# Peak RSS of one whole end-to-end fit (time to KL ≤ 0.01), native build.
LWFLOW_FIT_ONCE=1 CARGO_TARGET_DIR=target/native RUSTFLAGS="-C target-cpu=native" \
    cargo bench --bench fit --no-run 2>&1 | tail -1
fit_bin=$(ls -t target/native/release/deps/fit-* | grep -v '\.d$' | head -1)
LWFLOW_FIT_ONCE=1 /usr/bin/time -v "$fit_bin" > "$out/fit-once.log" 2>&1
grep -E "fit 2D2|Maximum resident|Elapsed" "$out/fit-once.log"
