#!/usr/bin/env bash
# Install every Debian 12 package the build, the tests and the benchmarks need.
# Idempotent; run as root (or through sudo). With --test it also installs what
# only the test suite uses (systemd-analyze, strace and promtool check the
# systemd unit and /metrics; a server install does not want a Prometheus).
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
# libclang-rt-14-dev holds the sanitizer and libFuzzer runtimes; it is only a
# "Recommends" of clang, which --no-install-recommends would skip.
pkgs=(build-essential cmake pkg-config clang libclang-rt-14-dev clang-format curl
      liburing-dev libxxhash-dev libzstd-dev libcriterion-dev
      liblua5.4-dev libmicrohttpd-dev libjansson-dev libsodium-dev libcurl4-openssl-dev
      libexpat1-dev nodejs
      libinih-dev help2man zstd wrk)
# etcd: a replica group (kvd --cluster) is elected by etcd; the cluster
# suites start a single-member etcd of their own
pkgs+=(etcd-server etcd-client)
if [ "${1:-}" = "--test" ]; then
  pkgs+=(systemd strace prometheus)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
# npm (for the object-store tests' s3rver): Debian's package, unless the
# installed nodejs already brings the command (NodeSource's conflicts with it)
if ! command -v npm >/dev/null 2>&1; then
  missing+=(npm)
fi
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
