#!/usr/bin/env bash
# kvstore vs redis-server, side by side in one run (BENCHMARKS.md, "kvstore vs
# redis-server").
#
# Starts Debian's redis-server (persistence off) and the kvstore flagship
# (release build) on free ports, then runs the same redis-benchmark against
# each, alternating, and prints requests per second and the ratio
# kvstore / redis-server for every command, without and with pipelining.
#
#   bash benches/kvstore_vs_redis.sh              # -n 200000 -c 50, -P 1 and 16
#   REQUESTS=50000 ROUNDS=3 bash benches/kvstore_vs_redis.sh
#
# With ROUNDS > 1 every figure is the median of the rounds. Installs
# redis-server and redis-tools with apt-get if they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-200000}
CLIENTS=${CLIENTS:-50}
ROUNDS=${ROUNDS:-1}
PIPELINES=${PIPELINES:-"1 16"}
TESTS=${TESTS:-ping,set,get,incr,mset}
REDIS_PORT=${REDIS_PORT:-6390}
KVSTORE_PORT=${KVSTORE_PORT:-6391}
SHARDS=${SHARDS:-}

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server redis-tools >/dev/null
fi

cargo build --release --example kvstore -q

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$work" --daemonize no --loglevel warning >"$work/redis.log" 2>&1 &
pids+=($!)
redis_pid=$!
kvstore_args=(--addr "127.0.0.1:$KVSTORE_PORT")
if [ -n "$SHARDS" ]; then kvstore_args+=(--shards "$SHARDS"); fi
RUST_LOG=warn target/release/examples/kvstore "${kvstore_args[@]}" >"$work/kvstore.log" 2>&1 &
pids+=($!)
kvstore_pid=$!

for port in "$REDIS_PORT" "$KVSTORE_PORT"; do
    for _ in $(seq 100); do
        if redis-cli -p "$port" PING >/dev/null 2>&1; then break; fi
        sleep 0.1
    done
    redis-cli -p "$port" PING >/dev/null || { echo "nothing answers on port $port" >&2; cat "$work"/*.log >&2; exit 1; }
done

# bench PORT PIPELINE -> "TEST RPS" lines
bench() {
    redis-benchmark -p "$1" -q -t "$TESTS" -n "$REQUESTS" -c "$CLIENTS" -P "$2" </dev/null \
        | tr '\r' '\n' \
        | awk -F': ' '/requests per second/ { split($2, f, " "); gsub(/ /, "", $1); print $1, f[1] }'
}

# cpu_ticks PID: user + system CPU time of a process, in clock ticks.
cpu_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# measure PORT PID PIPELINE NAME: the benchmark's rates, then the server's
# CPU time over the whole run, as a "CPU" line.
measure() {
    local before after
    before=$(cpu_ticks "$2")
    bench "$1" "$3" | sed "s/^/$3 $4 /" >>"$work/results"
    after=$(cpu_ticks "$2")
    echo "$3 $4 CPU $((after - before))" >>"$work/results"
}

for round in $(seq "$ROUNDS"); do
    for pipeline in $PIPELINES; do
        redis-cli -p "$REDIS_PORT" FLUSHDB >/dev/null
        redis-cli -p "$KVSTORE_PORT" FLUSHDB >/dev/null
        measure "$REDIS_PORT" "$redis_pid" "$pipeline" redis
        measure "$KVSTORE_PORT" "$kvstore_pid" "$pipeline" kvstore
    done
done

echo "redis-benchmark -q -t $TESTS -n $REQUESTS -c $CLIENTS, $ROUNDS round(s), $(nproc) cores"
echo "redis-server: $(redis-server --version | awk '{print $3}'), persistence off; kvstore: ${SHARDS:-default} shards"
echo
python3 - "$work/results" "$(getconf CLK_TCK)" "$REQUESTS" <<'EOF'
import sys, statistics
from collections import defaultdict
ticks_per_second, requests = int(sys.argv[2]), int(sys.argv[3])
runs = defaultdict(list)
cpu = defaultdict(list)
order = []
for line in open(sys.argv[1]):
    pipeline, server, test, value = line.split()
    if test == "CPU":
        cpu[(int(pipeline), server)].append(int(value) / ticks_per_second)
        continue
    key = (int(pipeline), test)
    if key not in order:
        order.append(key)
    runs[key + (server,)].append(float(value))
print(f"| {'pipeline':>8} | {'command':<12} | {'redis-server ops/s':>18} | {'kvstore ops/s':>13} | {'kvstore / redis':>15} |")
print(f"|{'-' * 9}:|:{'-' * 13}|{'-' * 19}:|{'-' * 14}:|{'-' * 16}:|")
for pipeline, test in order:
    redis = statistics.median(runs[(pipeline, test, "redis")])
    kv = statistics.median(runs[(pipeline, test, "kvstore")])
    print(f"| {pipeline:>8} | {test:<12} | {redis:>18,.0f} | {kv:>13,.0f} | {kv / redis:>14.2f}x |")
tests = len(order) // len({p for p, _ in order})
print()
print("Server CPU time (user + system) per request, over all the commands above:")
print()
print(f"| {'pipeline':>8} | {'redis-server':>12} | {'kvstore':>9} | {'kvstore / redis':>15} |")
print(f"|{'-' * 9}:|{'-' * 13}:|{'-' * 10}:|{'-' * 16}:|")
for pipeline in sorted({p for p, _ in order}):
    per = {s: statistics.median(cpu[(pipeline, s)]) / (tests * requests) * 1e6 for s in ("redis", "kvstore")}
    print(f"| {pipeline:>8} | {per['redis']:>9.2f} µs | {per['kvstore']:>6.2f} µs | {per['kvstore'] / per['redis']:>14.2f}x |")
EOF
