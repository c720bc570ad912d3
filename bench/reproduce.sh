#!/usr/bin/env bash
# bench/reproduce.sh — every kvbench run BENCHMARKS.md quotes, in order, with
# its output kept in OUT (default /tmp/ringcask-bench-<date>). Needs the peers
# (scripts/peers.sh) and a Release build:
#   cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release && cmake --build build-bench -j2
#   bash bench/reproduce.sh [BUILD_DIR] [OUT]
# About 30 minutes on the 2-vCPU reference machine, the HTTP comparison
# (bench/http/run.sh) included when BUILD_DIR has server/kvd.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-bench}
out=${2:-/tmp/ringcask-bench-$(date -u +%Y%m%dT%H%M)}
kvbench="$build/bench/kvbench"
[ -x "$kvbench" ] || { echo "reproduce.sh: no $kvbench (build first)" >&2; exit 2; }
mkdir -p "$out"
facts() {
  echo "date: $(date -u +%FT%TZ)"
  echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (dirty)')"
  echo "nproc: $(nproc)  mem: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "kernel: $(uname -r)  fs of /tmp: $(findmnt -no FSTYPE,OPTIONS -T /tmp)"
  echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
}
run() { # NAME ARGS...: one kvbench invocation, text to NAME.txt
  local name=$1
  shift
  echo "== $name: kvbench $*"
  { facts; echo "args: $*"; "$kvbench" "$@"; echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"; } \
    >"$out/$name.txt" 2>&1 || echo "   (exit $?, see $out/$name.txt)"
}
# Goals 1-2: fills (no sync) and reads, every engine, workloads interleaved.
run fill --engine all --interleave --seconds 20 --workload fillrandom,fillbatch
run read --engine all --interleave --repeat 3 --seconds 10 \
  --workload readrandom@1,readrandom@2,readmissing,scan,recovery
# Goal 3: durable writes, 1 and 8 threads.
run sync --engine all --interleave --repeat 2 --seconds 5 --workload fillsync@1,fillsync@8
# Everything else once, for the overview table.
run overview --engine all --interleave --seconds 5 \
  --workload fillseq,overwrite,readwhilewriting,mixed,deleterandom,compact
# Capacity: RAM per key by key size; 10M-key reopen with hints.
for ks in 16 64 256; do
  run "capacity-$ks" --engine ringcask --key-size "$ks" --workload fillrandom,recovery --json
done
run reopen-10m --engine ringcask --n 10000000 --seconds 300 --workload fillbatch,recovery,recovery
# Space after 5 overwrite passes and 40 % deletes, background merge only,
# then an explicit merge.
run merge --engine ringcask --delete-pct 40 --seconds 30 \
  --workload fillrandom,overwrite,overwrite,overwrite,overwrite,deleterandom,idle,idle,compact
# HTTP: kvd vs webdis+Redis, when kvd is built.
if [ -x "$build/server/kvd" ]; then
  echo "== http: bench/http/run.sh --build $build"
  { facts; bash bench/http/run.sh --build "$build"; } >"$out/http.txt" 2>&1 ||
    echo "   (exit $?, see $out/http.txt)"
fi
echo "outputs in $out"
