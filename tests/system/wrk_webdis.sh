#!/usr/bin/env bash
# The peer for tests/system/wrk_kvd.sh: the same wrk runs (GET and PUT of
# 100-byte values, 50 connections, 2 threads) against Redis behind webdis.
# sync=always maps to appendonly + appendfsync always, none to no AOF.
# OPS="get put putu" picks the runs, as in wrk_kvd.sh.
#   usage: tests/system/wrk_webdis.sh [always|none]
set -euo pipefail
sync=${1:-always}
dur=${DUR:-10}
conns=${CONNS:-50}
dir=$(mktemp -d /tmp/webdisbench.XXXXXX)
rport=$((20000 + RANDOM % 20000))
hport=$((rport + 1))
if [ "$sync" = always ]; then aof="--appendonly yes --appendfsync always"; else aof="--appendonly no"; fi
# shellcheck disable=SC2086
redis-server --port "$rport" --bind 127.0.0.1 --dir "$dir" --save '' $aof --daemonize no \
    >"$dir/redis.log" 2>&1 &
rpid=$!
cat >"$dir/webdis.json" <<JSON
{"redis_host": "127.0.0.1", "redis_port": $rport, "http_host": "127.0.0.1",
 "http_port": $hport, "threads": 2, "pool_size": 20, "daemonize": false,
 "websockets": false, "database": 0, "verbosity": 0, "logfile": "$dir/webdis.log"}
JSON
sleep 0.5
webdis "$dir/webdis.json" &
wpid=$!
cleanup() { kill "$wpid" "$rpid" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
url=http://127.0.0.1:$hport
for _ in $(seq 50); do curl -sf "$url/PING" >/dev/null && break; sleep 0.1; done
val=$(head -c 100 /dev/zero | tr '\0' 'v')
# the GET run reads keys written first (not needed for the PUT runs)
if [[ " ${OPS:-get put} " == *" get "* ]]; then
    for i in $(seq 0 999); do curl -s -o /dev/null -X PUT --data-binary "$val" "$url/SET/k$i"; done
fi
cat >"$dir/put.lua" <<LUA
local body = string.rep("v", 100)
request = function()
  return wrk.format("PUT", "/SET/k" .. math.random(0, 9999), nil, body)
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
  return wrk.format("PUT", "/SET/u" .. tid .. "-" .. counter, nil, body)
end
LUA
cat >"$dir/get.lua" <<LUA
request = function()
  return wrk.format("GET", "/GET/k" .. math.random(0, 999))
end
LUA
ticks=$(getconf CLK_TCK)
cpu() { echo $(( $(awk '{print $14 + $15}' "/proc/$wpid/stat") + $(awk '{print $14 + $15}' "/proc/$rpid/stat") )); }
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
    echo "webdis+redis $op sync=$sync conns=$conns: $rps req/s, avg $avg, p50 $p50, p99 $p99, server CPU ${cpu_us} us/req $errs"
done
