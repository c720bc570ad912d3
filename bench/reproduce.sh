#!/usr/bin/env bash
# bench/reproduce.sh — every run BENCHMARKS.md quotes, in its order, each
# output kept in OUT/<name>.txt (default bench/results/<UTC date>/), headed by
# the date, commit, machine, `uptime` before and load after. Needs the peers
# (scripts/peers.sh: RocksDB, LevelDB, LMDB, Redis, webdis, wrk) and a
# Release build with peers:
#   cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=Release -DRC_SANITIZE= \
#         -DRC_FAULT_INJECTION=OFF -DRC_PEERS=ON
#   cmake --build build-rel -j2 --target kvbench backup_bench kvd
#   bash bench/reproduce.sh [BUILD_DIR] [OUT] [ONLY...]
# ONLY: names of the runs to do (fill read sync reopen10m ycsb http backup cluster);
# all of them by default, about 40 minutes on the 2-vCPU reference machine.
#
# Method (kvbench --repeat): each workload runs on every engine in turn,
# R rounds (A, B, C, A, B, C, ...); a row is the engine's median run with the
# slowest and fastest beside it, a ratio the median of the per-round ratios
# ringcask / peer with their range. Every read workload runs on all N keys
# (loaded untimed; a fill stopped by --seconds is completed first).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-rel}
out=${2:-bench/results/$(date -u +%F)}
shift $(($# > 2 ? 2 : $#))
only=" ${*:-fill read sync reopen10m ycsb http backup cluster} "
kvbench="$build/bench/kvbench"
[ -x "$kvbench" ] || { echo "reproduce.sh: no $kvbench (build first)" >&2; exit 2; }
mkdir -p "$out"
facts() {
  echo "date: $(date -u +%FT%TZ)"
  echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (dirty)')"
  echo "nproc: $(nproc)  mem: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "kernel: $(uname -r)  fs of /tmp: $(findmnt -no FSTYPE,OPTIONS -T /tmp)"
  echo "uptime before: $(uptime)"
}
want() { [[ $only == *" $1 "* ]]; }
run() { # NAME CMD...: one run, its output to OUT/NAME.txt
  local name=$1
  shift
  want "$name" || return 0
  echo "== $name: $*"
  { facts; echo "command: $*"; "$@"; echo "uptime after: $(uptime)"; } >"$out/$name.txt" 2>&1 ||
    echo "   (exit $?, see $out/$name.txt)"
}
# fillrandom vs LevelDB/RocksDB/LMDB; its disk row: bytes after the fill.
run fill "$kvbench" --engine ringcask,rocksdb,leveldb,lmdb --repeat 3 --seconds 300 --workload fillrandom
# readrandom with 2 threads vs LMDB; reopen (3 opens + first get per run);
# the recovery row's disk column counts the hint files written at close.
run read "$kvbench" --engine ringcask,rocksdb,leveldb,lmdb --repeat 3 --seconds 60 --workload readrandom@2,recovery
# Durable writes, 1, 8 and 64 threads, the three append paths (io_uring, the
# default for sync=always; its pwritev2 variant; the shared mapping) vs
# LevelDB and RocksDB
# (p99 in the rows).
run sync "$kvbench" --engine ringcask-uring,ringcask-pwrite,ringcask-mmap,leveldb,rocksdb --repeat 3 --seconds 10 \
  --workload fillsync@1,fillsync@8,fillsync@64
# Reopen with 10M keys (ringcask alone: 3 opens, median in the row).
run reopen10m "$kvbench" --engine ringcask --n 10000000 --seconds 900 --workload fillbatch,recovery
# YCSB core workloads A-F, 1M records, 2 threads, against every peer.
run ycsb "$kvbench" --engine ringcask,rocksdb,leveldb,lmdb --repeat 3 --threads 2 --seconds 10 \
  --workload ycsb-a,ycsb-b,ycsb-c,ycsb-d,ycsb-e,ycsb-f
# HTTP durable PUT of new keys: kvd --sync always vs webdis + Redis
# (appendonly yes, appendfsync always), wrk 2 threads x 50 connections.
if [ -x "$build/server/kvd" ]; then
  run http bash bench/http/run.sh --build "$build" --sync always --tests putnew --duration 10
fi
# Incremental backup: what 1k/10k/100k new records cost on 1M keys.
if [ -x "$build/bench/backup_bench" ]; then
  bb=$(mktemp -d /tmp/bb.XXXXXX)
  run backup "$build/bench/backup_bench" --dir "$bb/db" --n 1000000 \
    --incs 1000,10000,100000 --runs 5
  rm -rf "$bb"
fi
# Replica group (3 kvd + etcd on this machine): PUT through the leader in
# sync and async mode vs one kvd, follower lag, failover over 20 SIGKILLs.
if [ -x "$build/server/kvd" ] && command -v etcd >/dev/null; then
  run cluster bash bench/cluster.sh "$build/server/kvd"
fi
echo "outputs in $out"
