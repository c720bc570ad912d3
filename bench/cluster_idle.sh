#!/usr/bin/env bash
# What an idle replica group costs: etcd and a 3-node sync group on free
# ports, left alone once it has a leader and a sync standby; then the CPU
# (utime+stime from /proc/PID/stat) every kvd and etcd use over IDLE
# seconds. A tool, not a test.
#   usage: bench/cluster_idle.sh [KVD]   (default build-release/server/kvd,
#                                         else build/server/kvd)
#   env: IDLE (seconds measured, default 60), LEASE_TTL (default 5, kvd's)
set -euo pipefail
self=bench/cluster_idle.sh
root_name=kvdidle.XXXXXX
. "$(dirname "$0")/cluster_common.sh"
idle=${IDLE:-60}
ttl=${LEASE_TTL:-5}
head -c 32 /dev/urandom | base64 >"$root/token"

cp=$(port)
pp=$(port)
etcd --name e0 --data-dir "$root/etcd" --listen-client-urls "http://127.0.0.1:$cp" \
    --advertise-client-urls "http://127.0.0.1:$cp" --listen-peer-urls "http://127.0.0.1:$pp" \
    --initial-advertise-peer-urls "http://127.0.0.1:$pp" --initial-cluster "e0=http://127.0.0.1:$pp" \
    >"$root/etcd.log" 2>&1 &
etcd_pid=$!
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$cp/health" >/dev/null && break; sleep 0.1; done

gp=()
ports=()
for i in 1 2 3; do
    ports[$i]=$(port)
    "$kvd" --dir "$root/n$i" --listen "127.0.0.1:${ports[$i]}" \
        --admin-token-file "$root/token" --log-level warn \
        --cluster idle --etcd "http://127.0.0.1:$cp" --node-id "n$i" \
        --advertise "http://127.0.0.1:${ports[$i]}" --lease-ttl "$ttl" >"$root/n$i.log" 2>&1 &
    gp[$i]=$!
    pids+=($!)
    for _ in $(seq 300); do curl -sf "http://127.0.0.1:${ports[$i]}/healthz" >/dev/null && break; sleep 0.1; done
done
standby=""
for _ in $(seq 600); do
    for i in 1 2 3; do
        s=$(curl -sf "http://127.0.0.1:${ports[$i]}/cluster" |
            python3 -c 'import json,sys; j=json.load(sys.stdin); print(j.get("sync_standby") or "" if j.get("role")=="leader" else "")' 2>/dev/null || true)
        [ -n "$s" ] && standby=$s
    done
    [ -n "$standby" ] && break
    sleep 0.1
done
[ -n "$standby" ] || { echo "no leader with a sync standby" >&2; exit 1; }
sleep 5 # let the start settle
threads() { for p in "$@"; do for t in /proc/$p/task/*; do echo "$p $(cat $t/comm | tr ' ' _) $(basename $t) $(awk '{print $14 + $15}' $t/stat)"; done; done; }
threads "${gp[@]}" >"$root/t0"
c0=$(cpu_of "${gp[1]}" "${gp[2]}" "${gp[3]}")
e0=$(cpu_of "$etcd_pid")
sleep "$idle"
c1=$(cpu_of "${gp[1]}" "${gp[2]}" "${gp[3]}")
threads "${gp[@]}" >"$root/t1"
e1=$(cpu_of "$etcd_pid")
awk -v k=$((c1 - c0)) -v e=$((e1 - e0)) -v t="$ticks" -v s="$idle" 'BEGIN {
    printf "idle %d s, 3 kvd: %.2f s CPU (%.2f %% of a core); etcd: %.2f s CPU (%.2f %% of a core)\n",
        s, k / t, 100 * k / t / s, e / t, 100 * e / t / s }'
# the threads that used any (ticks), when THREADS=1
if [ "${THREADS:-0}" = 1 ]; then
    join -j1 <(awk '{print $1"/"$3, $2, $4}' "$root/t0" | sort) <(awk '{print $1"/"$3, $4}' "$root/t1" | sort) |
        awk '$4 > $3 {print $1, $2, $4 - $3}' | sort -k3 -n -r | head -20
fi
