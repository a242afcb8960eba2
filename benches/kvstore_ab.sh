#!/usr/bin/env bash
# Same-run A/B of kvstore binaries beside redis-server (BENCHMARKS.md,
# "kvstore vs redis-server"): every server gets the same redis-benchmark
# runs, the servers alternate within each round, and each figure is the
# median of the rounds. Besides ops/s it reads each server's CPU time (user
# + system, /proc/PID/stat) around its runs: on a shared machine that is
# steadier than the rates.
#
#   cargo build --release --example kvstore && cp target/release/examples/kvstore /tmp/kv-new
#   bash benches/kvstore_ab.sh /tmp/kv-old /tmp/kv-new
#   ROUNDS=5 REQUESTS=200000 PIPELINES="16" TESTS=mset bash benches/kvstore_ab.sh /tmp/kv-old /tmp/kv-new
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-100000}
CLIENTS=${CLIENTS:-50}
ROUNDS=${ROUNDS:-3}
PIPELINES=${PIPELINES:-"1 16"}
TESTS=${TESTS:-ping,set,get,incr,mset}
SHARDS=${SHARDS:-2}
PORT=${PORT:-6500}

if [ $# -lt 1 ]; then
    echo "usage: $0 KVSTORE_BINARY..." >&2
    exit 2
fi

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

names=(redis)
ports=("$PORT")
redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$work" --daemonize no --loglevel warning >"$work/redis.log" 2>&1 &
pids+=($!)
spids=($!)
i=0
for bin in "$@"; do
    i=$((i + 1))
    port=$((PORT + i))
    RUST_LOG=warn "$bin" --addr "127.0.0.1:$port" --shards "$SHARDS" >"$work/kv$i.log" 2>&1 &
    pids+=($!)
    spids+=($!)
    names+=("$i:$(basename "$bin")")
    ports+=("$port")
done
for port in "${ports[@]}"; do
    for _ in $(seq 100); do
        if redis-cli -p "$port" PING >/dev/null 2>&1; then break; fi
        sleep 0.1
    done
done

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

for round in $(seq "$ROUNDS"); do
    for pipeline in $PIPELINES; do
        for s in "${!names[@]}"; do
            redis-cli -p "${ports[$s]}" FLUSHDB >/dev/null
            before=$(cpu_ticks "${spids[$s]}")
            redis-benchmark -p "${ports[$s]}" -q -t "$TESTS" -n "$REQUESTS" -c "$CLIENTS" \
                -P "$pipeline" </dev/null | tr '\r' '\n' |
                awk -F': ' '/requests per second/ { split($2, f, " "); gsub(/ /, "", $1); print $1, f[1] }' |
                sed "s/^/$pipeline ${names[$s]} /" >>"$work/results"
            after=$(cpu_ticks "${spids[$s]}")
            echo "$pipeline ${names[$s]} CPU $((after - before))" >>"$work/results"
        done
    done
done

echo "redis-benchmark -q -t $TESTS -n $REQUESTS -c $CLIENTS, median of $ROUNDS rounds, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$work/results" "$(getconf CLK_TCK)" "$REQUESTS" "${names[@]}" <<'PY'
import sys, statistics
from collections import defaultdict
path, tck, requests, names = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
runs, cpu, order = defaultdict(list), defaultdict(list), []
for line in open(path):
    p, server, test, value = line.split()
    if test == "CPU":
        cpu[(int(p), server)].append(int(value) / tck)
        continue
    if (int(p), test) not in order:
        order.append((int(p), test))
    runs[(int(p), test, server)].append(float(value))
head = "| -P | command | " + " | ".join(f"{n} ops/s" for n in names) + " | " + " | ".join(f"{n} ÷ redis" for n in names[1:]) + " |"
print(head)
print("|" + "---:|" * (2 + 2 * len(names) - 1))
for p, test in order:
    med = [statistics.median(runs[(p, test, n)]) for n in names]
    print(f"| {p} | {test} | " + " | ".join(f"{m:,.0f}" for m in med) + " | " + " | ".join(f"{m / med[0]:.2f}×" for m in med[1:]) + " |")
print()
print("| -P | CPU µs per request: " + " | ".join(names) + " | " + " | ".join(f"{n} ÷ redis" for n in names[1:]) + " |")
print("|" + "---:|" * (1 + 2 * len(names) - 1))
for p in sorted({p for p, _ in order}):
    tests = len([1 for q, _ in order if q == p])
    per = [statistics.median(cpu[(p, n)]) / (tests * requests) * 1e6 for n in names]
    print(f"| {p} | " + " | ".join(f"{x:.2f}" for x in per) + " | " + " | ".join(f"{x / per[0]:.2f}×" for x in per[1:]) + " |")
PY
