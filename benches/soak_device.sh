#!/usr/bin/env bash
# The long chaos soak figures of RELIABILITY.md, on a many-core machine:
# two runs at once, one pinned to 2 cores and one on the 14 others, each
# 120 s with 10,000 servers. Build first with
#   cargo build --release --example soak
# and run from the repository root.
set -uo pipefail
SOAK=${SOAK:-target/release/examples/soak}
DURATION=${DURATION:-120}
OUT=${OUT:-/tmp}
nproc
taskset -c 0,1 "$SOAK" --duration "$DURATION" --servers 10000 > "$OUT/soak_2cores.txt" 2>&1 &
two=$!
taskset -c 2-15 "$SOAK" --duration "$DURATION" --servers 10000 --callers 256 > "$OUT/soak_14cores.txt" 2>&1 &
many=$!
wait $two; echo "2 cores: exit $?"
wait $many; echo "14 cores: exit $?"
cat "$OUT/soak_2cores.txt" "$OUT/soak_14cores.txt"
