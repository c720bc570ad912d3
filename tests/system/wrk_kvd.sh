#!/usr/bin/env bash
# HTTP numbers for kvd with wrk on loopback: GET and PUT of 100-byte values,
# 50 connections, 2 wrk threads, DUR seconds (default 10), one sync mode.
# Prints req/s, average, p50 and p99 latency and server CPU per request (utime+stime of
# the kvd process from /proc, in microseconds). A tool, not a test.
# OPS="get put putu" picks the runs (putu: unique keys, every PUT a new key).
#   usage: tests/system/wrk_kvd.sh [KVD_BINARY] [always|none|interval:MS] [extra kvd flags...]
set -euo pipefail
kvd=${1:-build/server/kvd}
sync=${2:-always}
shift $(( $# > 2 ? 2 : $# )) || true
dur=${DUR:-10}
conns=${CONNS:-50}
dir=$(mktemp -d /tmp/kvdbench.XXXXXX)
"$kvd" --dir "$dir/data" --listen 127.0.0.1:0 --sync "$sync" --default-bucket default \
    --log-level "${LOG_LEVEL:-warn}" "$@" >"$dir/out" 2>"$dir/err" &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
for _ in $(seq 100); do grep -q ready "$dir/out" && break; sleep 0.1; done
url=http://$(grep -o '127.0.0.1:[0-9]*' "$dir/out")
val=$(head -c 100 /dev/zero | tr '\0' 'v')
# the GET run reads keys written first (not needed for the PUT runs)
if [[ " ${OPS:-get put} " == *" get "* ]]; then
    for i in $(seq 0 999); do
        curl -s -o /dev/null -X PUT --data-binary "$val" "$url/default/k$i"
    done
fi
cat >"$dir/put.lua" <<LUA
local body = string.rep("v", 100)
request = function()
  return wrk.format("PUT", "/default/k" .. math.random(0, 9999), {["Content-Type"]="application/octet-stream"}, body)
end
LUA
# unique keys: every PUT a new key (per wrk thread a prefix and a counter)
cat >"$dir/putu.lua" <<LUA
local body = string.rep("v", 100)
local counter = 0
local threads = {}
setup = function(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end
request = function()
  counter = counter + 1
  return wrk.format("PUT", "/default/u" .. tid .. "-" .. counter, {["Content-Type"]="application/octet-stream"}, body)
end
LUA
cat >"$dir/get.lua" <<LUA
request = function()
  return wrk.format("GET", "/default/k" .. math.random(0, 999))
end
LUA
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
for op in ${OPS:-get put}; do
    c0=$(cpu)
    out=$(wrk -t2 -c"$conns" -d"${dur}s" --latency -s "$dir/$op.lua" "$url")
    c1=$(cpu)
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    total=$(awk '/requests in/ {print $1}' <<<"$out")
    avg=$(awk '$1=="Latency" {print $2; exit}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    errs=$(grep -E "Non-2xx|Socket errors" <<<"$out" | tr '\n' ' ' || true)
    cpu_us=$(awk -v d=$((c1 - c0)) -v t="$ticks" -v n="$total" 'BEGIN { printf "%.1f", d / t * 1e6 / n }')
    echo "kvd $op sync=$sync conns=$conns: $rps req/s, avg $avg, p50 $p50, p99 $p99, server CPU ${cpu_us} us/req $errs"
done
