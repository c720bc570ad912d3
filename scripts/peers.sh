#!/usr/bin/env bash
# Install the peer engines kvbench compares against (RocksDB, LevelDB, LMDB
# C APIs) and the HTTP peer for bench/http (Redis + webdis), all from Debian
# packages. Idempotent; run as root (or through sudo). Not needed for CI:
# configure with -DRC_PEERS=OFF there.
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
pkgs=(librocksdb-dev libleveldb-dev liblmdb-dev redis-server webdis wrk)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # policy-rc.d keeps the redis/webdis packages from starting system services:
  # bench/http/run.sh starts its own instances on loopback and stops them.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
