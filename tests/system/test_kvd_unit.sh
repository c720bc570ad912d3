#!/usr/bin/env bash
# test_kvd_unit.sh BUILD_DIR — the systemd unit as an operator installs it:
#  1. `cmake --install` puts kvd.service under lib/systemd/system of the prefix,
#     with ExecStart naming the installed kvd;
#  2. `systemd-analyze verify` accepts it with no complaint at all (verify
#     exits 0 on unknown or malformed settings, so any output fails the test);
#  3. it keeps the promised directives (DynamicUser, StateDirectory,
#     LoadCredential, Restart=on-failure, hardening) and its syscall filter
#     lets io_uring through;
#  4. kvd accepts ExecStart's own flags (with %S and %d expanded as systemd
#     would), serves, survives `systemctl reload` (SIGHUP) and exits 0 on
#     SIGTERM, the unit's KillSignal;
#  5. with strace installed, that run is traced and every system call kvd made
#     (io_uring, fdatasync, a backup's pipe and thread...) must be one the
#     unit's SystemCallFilter allows: the filter cannot kill kvd in service.
# Exits 77 (ctest: skipped) when systemd-analyze is not installed.
set -euo pipefail
build=$1
if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "SKIP: systemd-analyze is not installed (Debian package systemd); the unit was not verified"
  exit 77
fi
tmp=$(mktemp -d /tmp/kvdtest.unit.XXXXXX)
pid=""
runner=""
cleanup() {
  # kvd itself (under strace, the trace names it), then strace
  if [ -n "$runner" ] && [ -s "$tmp/trace" ]; then
    kill -KILL "$(awk 'NR == 1 { print $1 }' "$tmp/trace")" 2>/dev/null || true
  fi
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
  [ -n "$runner" ] && kill -KILL "$runner" 2>/dev/null || true
  [ -n "$runner" ] && wait "$runner" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$tmp/usr" >/dev/null
unit=$tmp/usr/lib/systemd/system/kvd.service
[ -f "$unit" ] || fail "cmake --install did not install lib/systemd/system/kvd.service"
grep -qx "ExecStart=$tmp/usr/bin/kvd .*" "$unit" || fail "ExecStart does not name the installed kvd: $(grep ExecStart= "$unit")"
[ -x "$tmp/usr/bin/kvd" ] || fail "kvd is not installed in $tmp/usr/bin"

# --man=no: the man pages are checked where they are built, not here
out=$(systemd-analyze verify --man=no "$unit" 2>&1) || fail "systemd-analyze verify failed: $out"
[ -z "$out" ] || fail "systemd-analyze verify complained: $out"

for d in DynamicUser=yes StateDirectory=kvd "LoadCredential=admin-token:" Restart=on-failure \
         KillSignal=SIGTERM ProtectSystem=strict ProtectHome=yes PrivateTmp=yes NoNewPrivileges=yes \
         PrivateDevices=yes CapabilityBoundingSet= MemoryDenyWriteExecute=yes \
         SystemCallFilter=@system-service; do
  grep -q "^$d" "$unit" || fail "the unit lacks $d"
done
# the system calls of a filter set, with the sets it includes expanded
# (one name a line)
expand() {
  systemd-analyze syscall-filter "$1" | sed -n '2,$p' | grep -v '^ *#' | while read -r name; do
    case $name in
      @*) expand "$name" ;;
      ?*) echo "$name" ;;
    esac
  done
}
allowed=$(expand @system-service)
denied=$(for d in $(sed -n 's/^SystemCallFilter=~//p' "$unit"); do expand "$d"; done)
for sc in io_uring_setup io_uring_enter io_uring_register fallocate fdatasync mmap madvise; do
  grep -qx "$sc" <<<"$allowed" || fail "@system-service does not allow $sc: kvd would fail"
  ! grep -qx "$sc" <<<"$denied" || fail "the unit's SystemCallFilter=~ denies $sc"
done

# ExecStart's flags, expanded as systemd does (%S = /var/lib, %d = credentials)
mkdir -p "$tmp/state" "$tmp/creds"
head -c 24 /dev/urandom | base64 > "$tmp/creds/admin-token"
line=$(sed -n 's/^ExecStart=//p' "$unit")
line=${line//%S/$tmp/state}
line=${line//%d/$tmp/creds}
read -r -a argv <<<"$line"
# a free port instead of 7070 (the last --listen wins), and the log on a file
tracer=()
if command -v strace >/dev/null 2>&1; then
  # LeakSanitizer cannot run under ptrace (sanitizer builds): the other
  # system suites check leaks; this run checks system calls
  export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
  tracer=(strace -f -qq -o "$tmp/trace")
else
  echo "note: strace is not installed: the system calls kvd makes are not checked against the filter"
fi
"${tracer[@]}" "${argv[@]}" --listen 127.0.0.1:0 --log-file "$tmp/kvd.log" >"$tmp/ready" 2>"$tmp/err" &
pid=$!
runner=$pid
for _ in $(seq 200); do
  grep -q "kvd ready" "$tmp/ready" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || fail "kvd exited at start with the unit's flags: $(cat "$tmp/err")"
  sleep 0.1
done
grep -q "kvd ready" "$tmp/ready" || fail "kvd did not become ready: $(cat "$tmp/err")"
if [ ${#tracer[@]} -gt 0 ]; then
  # signals go to kvd itself, the first process in the trace, not to strace
  pid=$(awk 'NR == 1 { print $1 }' "$tmp/trace")
  [ -n "$pid" ] && kill -0 "$pid" || fail "cannot find kvd's pid in the trace"
fi
[ -d "$tmp/state/kvd" ] || fail "kvd did not create its data in the StateDirectory"
url=$(grep -o 'http://127.0.0.1:[0-9]*' "$tmp/ready")
curl -sf "$url/healthz" >/dev/null || fail "kvd does not answer /healthz"
token=$(cat "$tmp/creds/admin-token")
curl -sf -X POST -H "Authorization: Bearer $token" -d '{"name":"unit"}' "$url/" >"$tmp/bucket" \
  || fail "the admin token from the credentials directory is not accepted"
key=$(sed -n 's/.*"admin_key": *"\([^"]*\)".*/\1/p' "$tmp/bucket")
# some work through the engine: writes (fdatasync), a batch, a listing, a backup
curl -sf -X PUT -H "Authorization: Bearer $key" -d hello "$url/unit/k" >/dev/null || fail "PUT"
curl -sf -X POST -H "Authorization: Bearer $key" -d '{"ops":[{"set":"b","value":"1"},{"incr":"n","by":2}]}' \
  "$url/unit/" >/dev/null || fail "batch"
curl -sf -H "Authorization: Bearer $key" "$url/unit/" >/dev/null || fail "listing"
curl -sf -H "Authorization: Bearer $token" "$url/admin/backup" -o "$tmp/backup" || fail "backup"
curl -sf "$url/metrics" >/dev/null || fail "metrics"
kill -HUP "$pid"
for _ in $(seq 200); do grep -q "SIGHUP: reopened" "$tmp/kvd.log" && break; sleep 0.1; done
grep -q "SIGHUP: reopened" "$tmp/kvd.log" || fail "no log line for systemctl reload (SIGHUP)"
curl -sf "$url/healthz" >/dev/null || fail "kvd stopped serving after SIGHUP"
kill -TERM "$pid"
rc=0
wait "$runner" || rc=$? # strace exits with kvd's status
pid=""
runner=""
[ "$rc" -eq 0 ] || fail "kvd exited $rc on SIGTERM: $(tail -c 3000 "$tmp/err")"
if [ ${#tracer[@]} -gt 0 ]; then
  used=$(sed -E 's/^[0-9]+ +//' "$tmp/trace" | grep -oE '^[a-z_0-9]+\(' | tr -d '(' | sort -u)
  [ -n "$used" ] || fail "the trace holds no system calls"
  grep -qx io_uring_setup <<<"$used" || fail "kvd did not set up io_uring under trace"
  for sc in $used; do
    grep -qx "$sc" <<<"$allowed" || fail "kvd calls $sc, which SystemCallFilter=@system-service does not allow"
    ! grep -qx "$sc" <<<"$denied" || fail "kvd calls $sc, which the unit's SystemCallFilter=~ denies"
  done
  echo "kvd made $(wc -w <<<"$used") distinct system calls, all allowed by the unit's filter"
fi
echo "PASS: kvd.service installed, verified, and its ExecStart runs"
