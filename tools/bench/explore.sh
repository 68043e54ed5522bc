#!/bin/sh
# Benchmark of `durafs explore`: crash states checked per second for a
# workload of 512 KiB (64 appends of 8 KiB, an fsync every 8, then a file
# replaced by fsync + rename + directory fsync) and a trivial check.
#
#   tools/bench/explore.sh [JOBS...]      (default: 1 and the number of cores)
#
# Needs root and /dev/fuse. Prints one line per job count.
set -eu
cd "$(dirname "$0")/../.."
cargo build --release -q -p durafs-tools
bin=$PWD/target/release/durafs
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
workload='i=0; while [ $i -lt 64 ]; do head -c 8192 /dev/zero | tr "\0" x >> log; i=$((i+1)); [ $((i % 8)) -eq 0 ] && sync log; done; printf new > tmp && sync tmp && mv tmp data && sync .'
[ $# -gt 0 ] || set -- 1 "$(nproc)"
for jobs in "$@"; do
    "$bin" explore --jobs "$jobs" --json --check true -- sh -c "$workload" |
        python3 -c 'import json,sys; r=json.load(sys.stdin); print("jobs=%s  states=%d  seconds=%.2f  states/s=%.0f" % (sys.argv[1], r["states_tried"], r["seconds"], r["states_per_second"]))' "$jobs"
done
