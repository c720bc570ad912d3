#!/usr/bin/env bash
# Replica-group figures for BENCHMARKS.md, all in one run on one machine:
#   - PUT req/s, p50 and p99 with wrk through the leader of a 3-node group in
#     sync and in async mode, and through a single kvd (no --cluster), with
#     the CPU per write of every kvd process together (utime+stime from
#     /proc/PID/stat: the 3 nodes share the machine's cores);
#   - follower lag under that load: the largest lag_seq the leader's
#     /cluster reported for each follower, polled every 0.2 s;
#   - the failover time distribution over 20 SIGKILLs of the leader (the
#     cluster test suite's own measurement, when its binary is given).
# A tool, not a test.
#   usage: bench/cluster.sh [KVD] [TEST_CLUSTER_FAILOVER_BINARY]
#   env: DUR (s, default 10), CONNS (default 50), LEASE_TTL (default 2)
set -euo pipefail
kvd=${1:-build/server/kvd}
failover_bin=${2:-}
dur=${DUR:-10}
conns=${CONNS:-50}
ttl=${LEASE_TTL:-2}
root=$(mktemp -d /tmp/kvdbench.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$root"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ticks=$(getconf CLK_TCK)
cpu_of() { local t=0; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo $t; }
head -c 32 /dev/urandom | base64 >"$root/token"
token=$(cat "$root/token")

cat >"$root/put.lua" <<'LUA'
local body = string.rep("v", 100)
local token = os.getenv("BENCH_KEY")
request = function()
  return wrk.format("PUT", "/b/k" .. math.random(0, 99999),
    {["Content-Type"]="application/octet-stream", ["Authorization"]="Bearer " .. token}, body)
end
LUA

make_bucket() { # URL -> admin key of bucket b
    curl -sf -X POST -H "Authorization: Bearer $token" -d '{"name":"b"}' "$1/" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["admin_key"])'
}

run_wrk() { # LABEL URL PIDS...
    local label=$1 url=$2
    shift 2
    local c0 c1 out
    c0=$(cpu_of "$@")
    out=$(BENCH_KEY=$key wrk -t2 -c"$conns" -d"${dur}s" --latency -s "$root/put.lua" "$url")
    c1=$(cpu_of "$@")
    local rps total p50 p99 errs cpu_us
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    total=$(awk '/requests in/ {print $1}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    errs=$(grep -E "Non-2xx|Socket errors" <<<"$out" | tr '\n' ' ' || true)
    cpu_us=$(awk -v d=$((c1 - c0)) -v t="$ticks" -v n="$total" 'BEGIN { printf "%.1f", d / t * 1e6 / n }')
    echo "$label: $rps req/s, p50 $p50, p99 $p99, CPU ${cpu_us} us/write (all kvd) $errs"
}

# --- a single node, the baseline
p=$(port)
"$kvd" --dir "$root/single" --listen 127.0.0.1:$p --admin-token-file "$root/token" \
    --log-level warn >"$root/single.log" 2>&1 &
pids+=($!)
single=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$p/healthz" >/dev/null && break; sleep 0.1; done
key=$(make_bucket "http://127.0.0.1:$p")
run_wrk "single kvd (no --cluster)" "http://127.0.0.1:$p" "$single"
kill "$single"

# --- etcd
cp=$(port)
pp=$(port)
etcd --name e0 --data-dir "$root/etcd" --listen-client-urls "http://127.0.0.1:$cp" \
    --advertise-client-urls "http://127.0.0.1:$cp" --listen-peer-urls "http://127.0.0.1:$pp" \
    --initial-advertise-peer-urls "http://127.0.0.1:$pp" --initial-cluster "e0=http://127.0.0.1:$pp" \
    >"$root/etcd.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$cp/health" >/dev/null && break; sleep 0.1; done

group() { # MODE: start 3 nodes, measure, stop
    local mode=$1 ports=() gp=() i leader=""
    for i in 1 2 3; do
        ports[$i]=$(port)
        "$kvd" --dir "$root/$mode-n$i" --listen "127.0.0.1:${ports[$i]}" \
            --admin-token-file "$root/token" --log-level warn \
            --cluster "bench-$mode" --etcd "http://127.0.0.1:$cp" --node-id "n$i" \
            --advertise "http://127.0.0.1:${ports[$i]}" --replication "$mode" \
            --lease-ttl "$ttl" >"$root/$mode-n$i.log" 2>&1 &
        gp[$i]=$!
        pids+=($!)
        for _ in $(seq 300); do curl -sf "http://127.0.0.1:${ports[$i]}/healthz" >/dev/null && break; sleep 0.1; done
    done
    for _ in $(seq 300); do
        for i in 1 2 3; do
            if curl -sf "http://127.0.0.1:${ports[$i]}/healthz?role=leader" >/dev/null; then leader=$i; fi
        done
        [ -n "$leader" ] && break
        sleep 0.1
    done
    [ -n "$leader" ] || { echo "no leader in the $mode group" >&2; return 1; }
    local lurl="http://127.0.0.1:${ports[$leader]}"
    key=$(make_bucket "$lurl")
    # follower lag, polled on the leader during the run
    (
        while :; do
            curl -sf "$lurl/cluster" || true
            echo
            sleep 0.2
        done
    ) >"$root/$mode-lag.jsonl" 2>/dev/null &
    local poller=$!
    run_wrk "3-node group, $mode, through the leader" "$lurl" "${gp[1]}" "${gp[2]}" "${gp[3]}"
    kill "$poller"
    python3 - "$root/$mode-lag.jsonl" "$mode" <<'PY'
import json, sys
worst = {}
for line in open(sys.argv[1]):
    try:
        j = json.loads(line)
    except ValueError:
        continue
    for m in j.get("members", []):
        if m.get("role") != "leader":
            worst[m["id"]] = max(worst.get(m["id"], 0), m.get("lag_seq", 0))
print(f"  {sys.argv[2]} follower lag under load (max lag_seq): " +
      ", ".join(f"{k} {v}" for k, v in sorted(worst.items())))
PY
    for i in 1 2 3; do kill "${gp[$i]}" 2>/dev/null || true; done
    wait "${gp[1]}" "${gp[2]}" "${gp[3]}" 2>/dev/null || true
}
group sync
group async

if [ -n "$failover_bin" ]; then
    echo "failover over 20 SIGKILLs of the leader (sync, lease-ttl 2 s):"
    CLUSTER_FIGURES="$root/figures" "$failover_bin" --filter 'failover/sigkill*' >/dev/null 2>&1 ||
        echo "  (the failover test failed; see its output)"
    sed 's/^/  /' "$root/figures" 2>/dev/null || true
fi
