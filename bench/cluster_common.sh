# bench/cluster_common.sh — sourced by bench/cluster.sh and
# bench/cluster_idle.sh: the kvd binary (argument 1, else the release or
# debug build), a temporary root that is removed with every process in
# pids on exit, and small helpers (port: a free port; cpu_of PID...: their
# utime+stime in clock ticks, ticks per second in $ticks).
# Needs: $self (the script's name, for errors) and $root_name (mktemp's
# template under /tmp).
kvd=${1:-}
if [ -z "$kvd" ]; then
    kvd=build-release/server/kvd
    [ -x "$kvd" ] || kvd=build/server/kvd
fi
[ -x "$kvd" ] || { echo "$self: no kvd binary at '$kvd'" >&2; exit 2; }
root=$(mktemp -d "/tmp/$root_name")
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
