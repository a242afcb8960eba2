#!/usr/bin/env bash
# kvstore beside redis-server: memory per key (also after random
# overwrites), per idle connection, values pinning input buffers, a trickled
# request's CPU, and a slow reader's footprint (BENCHMARKS.md, "kvstore:
# hostile clients and memory"). The measuring is benches/kvstore_memory.py;
# this starts both servers (release kvstore, redis-server with persistence
# off) and hands it their ports and process ids. Then, TTL_KEYS keys with
# `EX 3600` are loaded into each and GET latency is measured with
# redis-benchmark beside the same run without TTL keys.
#
#   bash benches/kvstore_memory.sh
#   KEYS=200000 CONNECTIONS=2000 TTL_KEYS=1000000 bash benches/kvstore_memory.sh
#   KVSTORE_BIN=/tmp/kvstore-old bash benches/kvstore_memory.sh   # another build
set -euo pipefail
cd "$(dirname "$0")/.."

REDIS_PORT=${REDIS_PORT:-6392}
KVSTORE_PORT=${KVSTORE_PORT:-6393}
TTL_KEYS=${TTL_KEYS:-1000000}
SHARDS=${SHARDS:-2}

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
KVSTORE_BIN=${KVSTORE_BIN:-}
if [ -z "$KVSTORE_BIN" ]; then
    cargo build --release --example kvstore -q
    KVSTORE_BIN=target/release/examples/kvstore
fi

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# start_servers: a fresh redis-server and kvstore (sets redis_pid, kvstore_pid).
start_servers() {
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --maxclients 20000 --dir "$work" --daemonize no --loglevel warning >"$work/redis.log" 2>&1 &
    redis_pid=$!
    pids+=("$redis_pid")
    RUST_LOG=warn "$KVSTORE_BIN" --addr "127.0.0.1:$KVSTORE_PORT" \
        --shards "$SHARDS" --max-connections 20000 >"$work/kvstore.log" 2>&1 &
    kvstore_pid=$!
    pids+=("$kvstore_pid")
    for port in "$REDIS_PORT" "$KVSTORE_PORT"; do
        for _ in $(seq 100); do
            if redis-cli -p "$port" PING >/dev/null 2>&1; then break; fi
            sleep 0.1
        done
    done
}

stop_servers() {
    kill "$redis_pid" "$kvstore_pid"
    wait "$redis_pid" "$kvstore_pid" 2>/dev/null || true
}

# Memory per key in fresh processes (memory freed by an earlier figure,
# e.g. closed connections, would be reused by the keys and read as free),
# then the other figures in fresh processes again.
start_servers
python3 benches/kvstore_memory.py "$REDIS_PORT" "$redis_pid" "$KVSTORE_PORT" "$kvstore_pid" keys
stop_servers
start_servers
python3 benches/kvstore_memory.py "$REDIS_PORT" "$redis_pid" "$KVSTORE_PORT" "$kvstore_pid" rest

# GET latency with and without TTL_KEYS keys holding a TTL: the active
# expiry must not scan them.
p99() {
    redis-benchmark -p "$1" -t get -n 100000 -c 50 -r 100000 2>/dev/null |
        awk '/latency summary/ {getline; getline; print $4; exit}'
}
echo
echo "| GET p99 ms (redis-benchmark -c 50) | redis-server | kvstore |"
echo "|---|---:|---:|"
echo "| no TTL keys | $(p99 "$REDIS_PORT") | $(p99 "$KVSTORE_PORT") |"
for port in "$REDIS_PORT" "$KVSTORE_PORT"; do
    python3 - "$port" "$TTL_KEYS" <<'PY'
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
def enc(*a):
    return b"*%d\r\n" % len(a) + b"".join(b"$%d\r\n%s\r\n" % (len(x), x) for x in a)
for i in range(0, n, 1000):
    s.sendall(b"".join(enc(b"SET", b"ttl:%d" % j, b"v", b"EX", b"3600") for j in range(i, min(n, i + 1000))))
    got = b""
    while got.count(b"\r\n") < min(n, i + 1000) - i:
        got += s.recv(1 << 16)
PY
done
sleep 1
echo "| $TTL_KEYS keys with EX 3600 | $(p99 "$REDIS_PORT") | $(p99 "$KVSTORE_PORT") |"
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
r0=$(cpu "$redis_pid"); k0=$(cpu "$kvstore_pid"); sleep 5
r1=$(cpu "$redis_pid"); k1=$(cpu "$kvstore_pid")
echo "| idle CPU over 5 s with them, clock ticks | $((r1 - r0)) | $((k1 - k0)) |"
