#!/usr/bin/env bash
# Device run: quiet-machine figures, every contender pinned to the same 2 cores.
# Usage: build the binaries (see BENCHMARKS.md, "after the contract round"), copy them
# into one folder with this script (names: channel, gen_server, supervisor_restart,
# prof_joinset, prof_spawn_old, prof_spawn_new), then run it there; results go to $OUT.
cd "$(dirname "$0")"
O=${OUT:-/tmp/out}; mkdir -p "$O"
command -v taskset >/dev/null || taskset() { shift 2; "$@"; }
nproc > "$O/nproc.txt"
{
for r in 1 2 3 4 5; do
  for b in prof_joinset prof_spawn_old prof_spawn_new; do
    TIMEFORMAT="$b round$r %R s wall %U user %S sys"
    time taskset -c 2,3 ./$b
  done
done
} > "$O/spawn.txt" 2>&1
taskset -c 2,3 ./channel --bench --warm-up-time 1 --measurement-time 2 > "$O/channel.txt" 2>&1
taskset -c 2,3 ./gen_server --bench --warm-up-time 1 --measurement-time 2 > "$O/gen_server.txt" 2>&1
taskset -c 2,3 ./supervisor_restart --bench --warm-up-time 1 --measurement-time 3 restart > "$O/restart.txt" 2>&1
echo done
