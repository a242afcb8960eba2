#!/usr/bin/env bash
# Server CPU per request of kvstore builds, alternated (BENCHMARKS.md,
# "2026-12-05: round 4"): for each round and each binary, a fresh server,
# a warm-up, then `perf stat -e task-clock` of the server process over one
# redis-benchmark run. CPU time of the server alone is steadier than rates
# on a machine shared with other builds; alternating the binaries within
# each round spreads the load over all of them.
#
#   bash benches/kvstore_cpu.sh /tmp/kv-old /tmp/kv-new
#   ROUNDS=4 TEST=set PIPELINE=16 REQUESTS=600000 bash benches/kvstore_cpu.sh /tmp/kv-old /tmp/kv-new
set -euo pipefail

ROUNDS=${ROUNDS:-4}
TEST=${TEST:-mset}
PIPELINE=${PIPELINE:-16}
REQUESTS=${REQUESTS:-600000}
CLIENTS=${CLIENTS:-50}
SHARDS=${SHARDS:-2}
PORT=${PORT:-6610}

if [ $# -lt 1 ]; then
    echo "usage: $0 KVSTORE_BINARY..." >&2
    exit 2
fi

work=$(mktemp -d)
server=""
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "redis-benchmark -t $TEST -P $PIPELINE -n $REQUESTS -c $CLIENTS, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$ROUNDS"); do
    for bin in "$@"; do
        RUST_LOG=warn "$bin" --addr "127.0.0.1:$PORT" --shards "$SHARDS" >/dev/null 2>&1 &
        server=$!
        for _ in $(seq 100); do
            if redis-cli -p "$PORT" PING >/dev/null 2>&1; then break; fi
            sleep 0.1
        done
        redis-benchmark -p "$PORT" -q -t "$TEST" -n 20000 -c "$CLIENTS" -P "$PIPELINE" >/dev/null 2>&1
        perf stat -x, -e task-clock -p "$server" -o "$work/stat" &
        perf=$!
        sleep 0.3
        rate=$(redis-benchmark -p "$PORT" -q -t "$TEST" -n "$REQUESTS" -c "$CLIENTS" \
            -P "$PIPELINE" </dev/null | tr '\r' '\n' |
            awk -F': ' '/requests per second/ { split($2, f, " "); print f[1] }')
        kill -INT "$perf"
        wait "$perf" 2>/dev/null || true
        kill "$server"
        wait "$server" 2>/dev/null || true
        server=""
        ns=$(awk -F, -v n="$REQUESTS" '/task-clock/ { printf "%.0f", $1 * 1e6 / n }' "$work/stat")
        echo "$round $(basename "$bin") $rate $ns" | tee -a "$work/results"
    done
done
python3 - "$work/results" "$@" <<'PY'
import os, statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
print("| binary | ops/s (median) | server CPU ns per request (median) | per round |")
print("|---|---:|---:|---|")
for bin in sys.argv[2:]:
    name = os.path.basename(bin)
    mine = [r for r in rows if r[1] == name]
    rates = [float(r[2]) for r in mine]
    ns = [int(r[3]) for r in mine]
    print(f"| {name} | {statistics.median(rates):,.0f} | {statistics.median(ns):,.0f} | {', '.join(map(str, ns))} |")
PY
