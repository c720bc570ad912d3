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
#     SIGTERM, the unit's KillSignal.
# Exits 77 (ctest: skipped) when systemd-analyze is not installed.
set -euo pipefail
build=$1
if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "SKIP: systemd-analyze is not installed (Debian package systemd); the unit was not verified"
  exit 77
fi
tmp=$(mktemp -d /tmp/kvdtest.unit.XXXXXX)
pid=""
cleanup() {
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
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
"${argv[@]}" --listen 127.0.0.1:0 --log-file "$tmp/kvd.log" >"$tmp/ready" 2>"$tmp/err" &
pid=$!
for _ in $(seq 200); do
  grep -q "kvd ready" "$tmp/ready" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || fail "kvd exited at start with the unit's flags: $(cat "$tmp/err")"
  sleep 0.1
done
grep -q "kvd ready" "$tmp/ready" || fail "kvd did not become ready: $(cat "$tmp/err")"
[ -d "$tmp/state/kvd" ] || fail "kvd did not create its data in the StateDirectory"
url=$(grep -o 'http://127.0.0.1:[0-9]*' "$tmp/ready")
curl -sf "$url/healthz" >/dev/null || fail "kvd does not answer /healthz"
token=$(cat "$tmp/creds/admin-token")
curl -sf -X POST -H "Authorization: Bearer $token" -d '{"name":"unit"}' "$url/" >/dev/null \
  || fail "the admin token from the credentials directory is not accepted"
kill -HUP "$pid"
for _ in $(seq 200); do grep -q "SIGHUP: reopened" "$tmp/kvd.log" && break; sleep 0.1; done
grep -q "SIGHUP: reopened" "$tmp/kvd.log" || fail "no log line for systemctl reload (SIGHUP)"
curl -sf "$url/healthz" >/dev/null || fail "kvd stopped serving after SIGHUP"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=""
[ "$rc" -eq 0 ] || fail "kvd exited $rc on SIGTERM"
echo "PASS: kvd.service installed, verified, and its ExecStart runs"
