#!/usr/bin/env bash
# bench/http/run.sh — HTTP load on loopback: kvd against webdis+Redis.
#
# Starts kvd (from a build dir) with a temporary data dir and an open
# "default" bucket, and — as the peer — redis-server and webdis (Debian
# packages, scripts/peers.sh), all on 127.0.0.1 and on ports of its own.
# Preloads the same NKEYS keys (key:0..) with VALUE_SIZE-byte values into
# both, then for each test runs wrk against kvd and then against webdis, back
# to back. wrk saturates both cores near the same request rate for any
# server here (BENCHMARKS.md, "The machine and the goals"), so the figure
# that ranks servers is the server's CPU time per request: utime+stime
# from /proc/PID/stat over the run (kvd; webdis + redis-server together),
# divided by the requests wrk completed. Everything started is stopped on exit (trap), by PID.
#
# Usage: bench/http/run.sh [--build DIR] [--duration S] [--threads T]
#          [--conns C] [--keys N] [--value-size B] [--tests LIST]
#          [--only kvd|webdis] [--sync MODE]
#   --build DIR    where server/kvd was built (default: ./build)
#   --tests LIST   comma list of get,put,putnew,incr,batch,script (default:
#                  get,put,incr,batch,script; putnew writes a new key each time)
#   --sync MODE    kvd --sync (default interval:1000), matched by Redis with
#                  appendonly yes + appendfsync everysec; `always` starts Redis
#                  with appendfsync always, `none` with appendfsync no
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build="$root/build"
duration=10
threads=2
conns=50
nkeys=100000
vsize=100
tests="get,put,incr,batch,script"
only=""
sync_mode="interval:1000"

die() { echo "run.sh: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build=$(cd "${2:?--build needs a dir}" && pwd); shift 2 ;;
    --duration) duration=${2:?}; shift 2 ;;
    --threads) threads=${2:?}; shift 2 ;;
    --conns) conns=${2:?}; shift 2 ;;
    --keys) nkeys=${2:?}; shift 2 ;;
    --value-size) vsize=${2:?}; shift 2 ;;
    --tests) tests=${2:?}; shift 2 ;;
    --only) only=${2:?}; shift 2 ;;
    --sync) sync_mode=${2:?}; shift 2 ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) die "unknown flag $1" ;;
  esac
done
case "$sync_mode" in # Redis's durability for the same contract
  always) appendfsync=always ;;
  none) appendfsync=no ;;
  interval:*) appendfsync=everysec ;;
  *) die "--sync: always, none or interval:MS, not $sync_mode" ;;
esac
command -v wrk >/dev/null || die "wrk is not installed (scripts/deps.sh)"
command -v curl >/dev/null || die "curl is not installed"

tmp=$(mktemp -d /tmp/kvb-http.XXXXXX)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  for p in "${pids[@]}"; do
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

port_free() { ! ss -ltnH "sport = :$1" 2>/dev/null | grep -q .; }
pick_port() { # a currently free port (other benchmarks may share the machine)
  local p
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 40000))
    port_free "$p" && { echo "$p"; return 0; }
  done
  die "no free port found"
}
wait_http() { # URL, what
  local i
  for i in $(seq 1 100); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  die "$2 did not answer at $1"
}
cpu_ticks() { # utime+stime of a process, in clock ticks
  sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'
}
hz=$(getconf CLK_TCK)

targets=()
# ---------------------------------------------------------------- kvd
if [ "$only" != "webdis" ]; then
  kvd="$build/server/kvd"
  if [ -x "$kvd" ]; then
    kvd_port=$(pick_port)
    mkdir -p "$tmp/kvd"
    "$kvd" --dir "$tmp/kvd" --listen "127.0.0.1:$kvd_port" --sync "$sync_mode" \
      --default-bucket default --log-level warn >"$tmp/kvd.log" 2>&1 &
    pids+=($!)
    kvd_pid=$!
    wait_http "http://127.0.0.1:$kvd_port/healthz" kvd
    # Preload: batches of 1000 sets; counters start absent on both sides.
    value=$(head -c "$vsize" /dev/zero | tr '\0' v)
    for ((b = 0; b < nkeys; b += 1000)); do
      awk -v b="$b" -v n="$nkeys" -v v="$value" 'BEGIN {
        printf "{\"ops\":["; e = b + 1000; if (e > n) e = n
        for (i = b; i < e; i++) printf "%s{\"set\":\"key:%d\",\"value\":\"%s\"}", (i > b ? "," : ""), i, v
        printf "]}" }' >"$tmp/batch.json"
      curl -fsS -o /dev/null -X POST -H 'Content-Type: application/json' \
        --data-binary "@$tmp/batch.json" "http://127.0.0.1:$kvd_port/default/" ||
        die "kvd preload failed (batch at $b)"
    done
    printf 'kv.say(kv.get(kv.args.k))' >"$tmp/getone.lua"
    kvd_script_ok=1
    if ! curl -fsS -o /dev/null -X PUT --data-binary "@$tmp/getone.lua" \
        "http://127.0.0.1:$kvd_port/default/scripts/getone" 2>"$tmp/curl.err"; then
      echo "run.sh: could not upload the kvd script ($(cat "$tmp/curl.err")); skipping kvd's script test" >&2
      kvd_script_ok=0
    fi
    targets+=(kvd)
  else
    echo "run.sh: no kvd at $kvd (build it, or --build DIR); measuring webdis only" >&2
  fi
fi

# ---------------------------------------------------------------- webdis + redis
if [ "$only" != "kvd" ]; then
  if command -v redis-server >/dev/null && command -v webdis >/dev/null; then
    redis_port=$(pick_port)
    webdis_port=$(pick_port)
    mkdir -p "$tmp/redis"
    redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$tmp/redis" --save '' \
      --appendonly yes --appendfsync "$appendfsync" --daemonize no --logfile "$tmp/redis.log" &
    pids+=($!)
    redis_pid=$!
    cat >"$tmp/webdis.json" <<EOF
{ "redis_host": "127.0.0.1", "redis_port": $redis_port, "redis_auth": null,
  "http_host": "127.0.0.1", "http_port": $webdis_port, "threads": 2, "pool_size": 20,
  "daemonize": false, "database": 0,
  "acl": [ { "disabled": ["DEBUG", "FLUSHALL", "FLUSHDB"] } ],
  "verbosity": 1, "logfile": "$tmp/webdis.log" }
EOF
    webdis "$tmp/webdis.json" >"$tmp/webdis.out" 2>&1 &
    pids+=($!)
    webdis_pid=$!
    for i in $(seq 1 50); do
      redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
      sleep 0.1
    done
    wait_http "http://127.0.0.1:$webdis_port/PING" webdis
    value=$(head -c "$vsize" /dev/zero | tr '\0' v)
    awk -v n="$nkeys" -v v="$value" 'BEGIN {
      for (i = 0; i < n; i++) { k = "key:" i
        printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(k), k, length(v), v } }' |
      redis-cli -p "$redis_port" --pipe >/dev/null
    targets+=(webdis)
  else
    echo "run.sh: redis-server/webdis not installed (scripts/peers.sh); skipping the peer" >&2
  fi
fi
[ ${#targets[@]} -gt 0 ] || die "nothing to measure"

server_pids() {
  case "$1" in
    kvd) echo "$kvd_pid" ;;
    webdis) echo "$webdis_pid $redis_pid" ;;
  esac
}
base_url() {
  case "$1" in
    kvd) echo "http://127.0.0.1:$kvd_port" ;;
    webdis) echo "http://127.0.0.1:$webdis_port" ;;
  esac
}

echo "# $(date -u +%FT%TZ) wrk ${duration}s, $threads threads, $conns connections, $nkeys keys of ${vsize} B; kvd --sync $sync_mode, redis appendfsync $appendfsync"
printf '%-7s %-7s %10s %10s %9s %9s %12s %7s\n' test server "req/s" "keys/s" "p50(us)" "p99(us)" \
  "cpu us/req" errors
declare -A cpu_per_req
IFS=',' read -r -a test_list <<<"$tests"
for t in "${test_list[@]}"; do
  [ -f "$here/$t.lua" ] || die "unknown test $t"
  for target in "${targets[@]}"; do
    if [ "$t" = script ] && [ "$target" = kvd ] && [ "${kvd_script_ok:-0}" = 0 ]; then
      printf '%-7s %-7s %10s\n' "$t" "$target" skipped
      continue
    fi
    before=0
    for p in $(server_pids "$target"); do before=$((before + $(cpu_ticks "$p"))); done
    out=$(KVB_HTTP_DIR="$here" wrk -t "$threads" -c "$conns" -d "${duration}s" \
      -s "$here/$t.lua" "$(base_url "$target")" -- "$target" "$nkeys" "$vsize" default 2>&1)
    after=0
    for p in $(server_pids "$target"); do after=$((after + $(cpu_ticks "$p"))); done
    line=$(grep '^WRK ' <<<"$out" || true)
    [ -n "$line" ] || { echo "$out" >&2; die "wrk failed for $t against $target"; }
    eval "$(sed 's/^WRK //' <<<"$line")" # requests= duration_us= socket_errors= non2xx= p50_us= ...
    per=1
    [ "$t" = batch ] && per=100
    awk -v t="$t" -v s="$target" -v r="$requests" -v d="$duration_us" -v per="$per" \
      -v p50="$p50_us" -v p99="$p99_us" -v ticks=$((after - before)) -v hz="$hz" \
      -v err=$((socket_errors + non2xx)) 'BEGIN {
        rps = r / (d / 1e6); cpu = (r > 0) ? ticks / hz * 1e6 / r : 0
        printf "%-7s %-7s %10.0f %10.0f %9d %9d %12.2f %7d\n", t, s, rps, rps * per, p50, p99, cpu, err }'
    cpu_per_req["$t.$target"]=$(awk -v r="$requests" -v ticks=$((after - before)) -v hz="$hz" \
      'BEGIN { printf "%.4f", (r > 0) ? ticks / hz * 1e6 / r : 0 }')
  done
done
if [ ${#targets[@]} -eq 2 ]; then
  echo
  echo "server CPU per request, kvd / webdis+redis (< 1: kvd cheaper; goal for get: <= 0.8)"
  for t in "${test_list[@]}"; do
    awk -v t="$t" -v a="${cpu_per_req[$t.kvd]:-0}" -v b="${cpu_per_req[$t.webdis]:-0}" \
      'BEGIN { if (a > 0 && b > 0) printf "%-7s %.2f\n", t, a / b; else printf "%-7s -\n", t }'
  done
fi
