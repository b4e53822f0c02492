#!/usr/bin/env bash
# Wall time of the MPI refinement with an expensive likelihood at several rank counts, as a
# Markdown table (examples/mpi/README.md):
#
#   examples/mpi/scaling.sh BUILD_DIR [MS [RANKS...]]      default: 10 ms, ranks 1 2 4
#
# BUILD_DIR holds refine_mpi (cmake --build). Extra mpirun flags come from $MPIRUN_FLAGS
# (e.g. "--oversubscribe --allow-run-as-root"); LIKELIHOOD=--sleep-ms makes every call sleep
# instead of burning CPU. Every run must save the same model bytes.
set -euo pipefail
build=$1
ms=${2:-10}
shift $(( $# < 2 ? $# : 2 ))
ranks=("$@")
[ ${#ranks[@]} -gt 0 ] || ranks=(1 2 4)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "likelihood: ${LIKELIHOOD:---ms} $ms; cores: $(nproc), load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| ranks | likelihood calls | calls per rank | wall time (s) | speed-up | speed-up / ranks | CPU s / wall s |"
echo "|---:|---:|---|---:|---:|---:|---:|"
t1=""
TIMEFORMAT='%U %S'
for np in "${ranks[@]}"; do
    # The job's CPU time (all ranks: user + system) over its wall time is how many cores it
    # actually got; on a machine shared with other work that caps the speed-up.
    # shellcheck disable=SC2086
    cpu=$( { time mpirun ${MPIRUN_FLAGS:-} -np "$np" "$build/refine_mpi" "${LIKELIHOOD:---ms}" "$ms" \
        --out "$out/np$np.lwf" >"$out/log"; } 2>&1 | tail -1 | awk '{ print $1 + $2 }')
    result=$(grep '^RESULT' "$out/log")
    seconds=$(sed -E 's/.* seconds=([0-9.]+).*/\1/' <<<"$result")
    calls=$(sed -E 's/.* evaluated=([0-9]+).*/\1/' <<<"$result")
    per_rank=$(grep '^calls per rank:' "$out/log" | cut -d: -f2 | xargs | tr ' ' '/')
    [ -n "$t1" ] || t1=$seconds
    cmp -s "$out/np${ranks[0]}.lwf" "$out/np$np.lwf" || { echo "np $np: other model bytes" >&2; exit 1; }
    awk -v np="$np" -v c="$calls" -v pr="$per_rank" -v t="$seconds" -v t1="$t1" -v cpu="$cpu" \
        'BEGIN { s = t1 / t; printf "| %d | %d | %s | %.1f | %.2f | %.2f | %.2f |\n", np, c, pr, t, s, s / np, cpu / t }'
done
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
