#!/usr/bin/env bash
# Replica-group figures for BENCHMARKS.md, all in one run on one machine:
#   - PUT req/s, p50 and p99 with wrk through the leader of a 3-node group in
#     sync and in async mode, and through a single kvd (no --cluster), with
#     the CPU per write of every kvd process together (utime+stime from
#     /proc/PID/stat: the 3 nodes share the machine's cores);
#   - follower lag under that load: the largest and the median lag_seq the
#     leader's /cluster reported for its followers, polled every 0.2 s;
#   - the failover time over KILLS (20) SIGKILLs of the leader of a sync
#     group: from the kill to the first PUT a new leader acknowledges (201),
#     writes polled every 20 ms on every survivor; the killed node is
#     restarted on its directory and the group is back to 3 members with a
#     sync standby before the next kill, at a random moment 0.5-1.5 s later.
# It ends with a summary table. A tool, not a test.
#   usage: bench/cluster.sh [KVD]        (default build-release/server/kvd,
#                                         else build/server/kvd)
#   env: DUR (s per wrk run, default 10), CONNS (default 50), LEASE_TTL
#        (default 2), KILLS (default 20)
set -euo pipefail
self=bench/cluster.sh
root_name=kvdbench.XXXXXX
. "$(dirname "$0")/cluster_common.sh"
kills=${KILLS:-20}
dur=${DUR:-10}
conns=${CONNS:-50}
ttl=${LEASE_TTL:-2}
summary=()
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
    summary+=("| $label | $rps | $p50 | $p99 | $cpu_us | ${errs:-none} |")
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
    lag=$(python3 - "$root/$mode-lag.jsonl" <<'PY'
import json, statistics, sys
seen = []
for line in open(sys.argv[1]):
    try:
        j = json.loads(line)
    except ValueError:
        continue
    for m in j.get("members", []):
        if m.get("role") != "leader":
            seen.append(m.get("lag_seq", 0))
print(f"max {max(seen)}, median {statistics.median(seen):g} seqs ({len(seen)} samples)"
      if seen else "no samples")
PY
)
    echo "  $mode follower lag under load (lag_seq on the leader's /cluster): $lag"
    lags+=("| $mode | $lag |")
    for i in 1 2 3; do kill "${gp[$i]}" 2>/dev/null || true; done
    wait "${gp[1]}" "${gp[2]}" "${gp[3]}" 2>/dev/null || true
}
lags=()
group sync
group async

# --- failover: KILLS SIGKILLs of the leader of a sync group
echo "failover: $kills SIGKILLs of the leader (sync, --lease-ttl $ttl) ..."
fo=$(python3 - "$kvd" "$root" "$cp" "$token" "$ttl" "$kills" <<'PY'
import json, os, random, signal, socket, statistics, subprocess, sys, time, urllib.request
kvd, root, etcd_port, token, ttl, kills = sys.argv[1:7]
kills, ttl = int(kills), int(ttl)

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def req(url, method="GET", body=None, key=None, timeout=2.0):
    r = urllib.request.Request(url, data=body, method=method)
    if key:
        r.add_header("Authorization", "Bearer " + key)
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k): return None
    try:
        with urllib.request.build_opener(NoRedirect).open(r, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except Exception:
        return 0, b""

ports = {i: free_port() for i in (1, 2, 3)}
procs = {}
def start(i):
    log = open(f"{root}/fo-n{i}.log", "ab")
    procs[i] = subprocess.Popen([kvd, "--dir", f"{root}/fo-n{i}", "--listen", f"127.0.0.1:{ports[i]}",
        "--admin-token-file", f"{root}/token", "--log-level", "warn", "--cluster", "bench-fo",
        "--etcd", f"http://127.0.0.1:{etcd_port}", "--node-id", f"n{i}",
        "--advertise", f"http://127.0.0.1:{ports[i]}", "--replication", "sync",
        "--lease-ttl", str(ttl)], stdout=log, stderr=log)
def url(i): return f"http://127.0.0.1:{ports[i]}"
def leader():
    for i in ports:
        if procs[i].poll() is None and req(url(i) + "/healthz?role=leader", timeout=1)[0] == 200:
            return i
    return None
def healthy(l, deadline):
    while time.monotonic() < deadline:
        st, b = req(url(l) + "/cluster")
        if st == 200:
            j = json.loads(b)
            if j.get("sync_standby") and len(j.get("members", [])) == 3 and \
               all(m["lag_seq"] == 0 for m in j["members"]):
                return True
        time.sleep(0.1)
    return False

for i in ports:
    start(i)
deadline = time.monotonic() + 60
while leader() is None and time.monotonic() < deadline:
    time.sleep(0.1)
l = leader()
if l is None:
    print("no leader came up"); sys.exit(0)
# the bucket is a write: in sync mode it needs the standby, so wait for a
# whole group first, and retry what a fresh group refuses (503)
healthy(l, time.monotonic() + 60)
key, st, b = None, 0, b""
deadline = time.monotonic() + 60
while key is None and time.monotonic() < deadline:
    l = leader() or l
    st, b = req(url(l) + "/", "POST", b'{"name":"fo"}', token)
    if st == 201:
        key = json.loads(b)["admin_key"]
    else:
        time.sleep(0.2)
if key is None:
    print(f"could not create the bucket: {st} {b[:200]!r}"); sys.exit(0)
times, failed, n = [], 0, 0
try:
    for k in range(kills):
        l = leader()
        if l is None or not healthy(l, time.monotonic() + 60):
            failed += 1; continue
        time.sleep(random.uniform(0.5, 1.5))
        procs[l].send_signal(signal.SIGKILL); procs[l].wait()
        t0 = time.monotonic()
        done = None
        while time.monotonic() - t0 < ttl + 30 and done is None:
            for i in ports:
                if i == l: continue
                n += 1
                st, _ = req(url(i) + f"/fo/k{n}", "PUT", b"v", key, timeout=1)
                if st == 201:
                    done = time.monotonic() - t0; break
            time.sleep(0.02)
        if done is None: failed += 1
        else: times.append(done)
        start(l)
finally:
    for p in procs.values():
        if p.poll() is None:
            p.send_signal(signal.SIGKILL); p.wait()
if times:
    q = statistics.quantiles(times, n=10) if len(times) > 1 else [times[0]] * 9
    print(f"{len(times)} of {kills} kills: min {min(times):.2f} s, median {statistics.median(times):.2f} s, "
          f"p90 {q[8]:.2f} s, max {max(times):.2f} s (bound: lease TTL + 3 s = {ttl + 3} s)"
          + (f"; {failed} without a new leader in time" if failed else ""))
else:
    print(f"no failover measured ({failed} failed)")
PY
)
echo "  $fo"

echo
echo "## Summary ($(nproc) cores; DUR=${dur}s, CONNS=$conns, lease TTL ${ttl}s, $kvd)"
echo
echo "| PUT, 100-byte values | req/s | p50 | p99 | CPU us/write (all kvd) | errors |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${summary[@]}"
echo
echo "| follower lag under the load above | lag_seq |"
echo "|---|---|"
printf '%s\n' "${lags[@]}"
echo
echo "| failover (SIGKILL of the leader, sync) | time to the first acknowledged write |"
echo "|---|---|"
echo "| $kills kills | $fo |"
