#!/usr/bin/env bash
# Issue 17's many-core rows: the flagship on N cores (N = 2, 4, 8 by default)
# against redis-server on one, server and clients pinned to separate cores.
#
# For each N the kvstore runs on cores 0..N-1 (N runtime workers, N shards);
# redis-server runs on core 0. The clients are CLIENTS redis-benchmark
# processes pinned to the cores after the server's (by default every core
# from 8 on), each with -c 50 and random keys (-r: spread over the shards),
# and their rates are summed. Prints total and per-core ops/s and the
# per-core ratio to redis-server's one core, for -P 1 and -P 16.
#
# Build first (`cargo build --release --example kvstore`) and run from the
# repository root on a machine with at least 12 cores:
#   NS="2 4 8" CLIENT_CORES=8-15 bash benches/kvstore_scaling.sh
set -euo pipefail
KVSTORE=${KVSTORE:-target/release/examples/kvstore}
NS=${NS:-2 4 8}
CLIENT_CORES=${CLIENT_CORES:-8-15}
CLIENTS=${CLIENTS:-3}
REQUESTS=${REQUESTS:-1000000}
TESTS=${TESTS:-set,get}
PORT=${PORT:-6390}

# Sums the rates of $CLIENTS pinned redis-benchmark runs against $1 (port),
# pipeline $2: prints "TEST total_ops_per_s" lines.
bench() {
    local port=$1 pipeline=$2 dir
    dir=$(mktemp -d)
    for i in $(seq 1 "$CLIENTS"); do
        taskset -c "$CLIENT_CORES" redis-benchmark -p "$port" -q -c 50 -P "$pipeline" \
            -r 1000000 -n "$REQUESTS" -t "$TESTS" --csv > "$dir/$i.csv" &
    done
    wait
    cat "$dir"/*.csv | grep -v '^"test"' | tr -d '"' |
        awk -F, '{sum[$1] += $2} END {for (t in sum) printf "%s %.0f\n", t, sum[t]}' | sort
    rm -rf "$dir"
}

wait_port() {
    for _ in $(seq 1 100); do
        redis-cli -p "$1" ping > /dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "nothing answers on port $1" >&2
    return 1
}

nproc
declare -A redis
taskset -c 0 redis-server --port "$PORT" --save '' --appendonly no > /dev/null &
server=$!
wait_port "$PORT"
for p in 1 16; do
    while read -r test rate; do redis[$p,$test]=$rate; done < <(bench "$PORT" "$p")
done
kill "$server"; wait "$server" 2> /dev/null || true

echo "cores pipeline test kvstore_ops_per_s per_core redis_one_core per_core_ratio"
for n in $NS; do
    TOKIO_WORKER_THREADS=$n taskset -c "0-$((n - 1))" "$KVSTORE" \
        --addr "127.0.0.1:$PORT" --shards "$n" > /dev/null 2>&1 &
    server=$!
    wait_port "$PORT"
    for p in 1 16; do
        bench "$PORT" "$p" | while read -r test rate; do
            base=${redis[$p,$test]:-0}
            awk -v n="$n" -v p="$p" -v t="$test" -v r="$rate" -v b="$base" \
                'BEGIN {printf "%d %d %s %.0f %.0f %.0f %.2f\n", n, p, t, r, r / n, b, (b > 0 ? r / n / b : 0)}'
        done
    done
    kill -INT "$server"; wait "$server" 2> /dev/null || true
done
