#!/bin/sh
# Memory per idle process, 5 runs of each kind (see
# examples/memory_per_process.rs). Usage: benches/memory_per_process.sh [count]
set -e
count=${1:-100000}
cargo build --release -q -p trellis-benches --example memory_per_process
bin=$(dirname "$0")/../target/release/examples/memory_per_process
for kind in tokio trellis supervised ractor kameo; do
    for _ in 1 2 3 4 5; do "$bin" "$kind" "$count"; done
done
