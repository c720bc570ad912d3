#!/usr/bin/env bash
# Install dependencies, build (release), and run the server in the foreground
# on ./ringcask-data at 127.0.0.1:7070 for local development, as `kv serve`
# does: an open "default" bucket, and bucket creation without credentials
# (--allow-anonymous-buckets; kvd warns if it listens beyond loopback).
# Extra arguments go to kvd (see `kvd --help`) and win over these:
# --allow-anonymous-buckets=false, or --admin-token-file FILE, closes creation.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DRC_SANITIZE= -DRC_FAULT_INJECTION=OFF \
      -DRC_PEERS=OFF >/dev/null
cmake --build build-release -j"$(nproc)" --target kvd kv kvdump kvload
exec build-release/server/kvd --dir ./ringcask-data --default-bucket default \
     --allow-anonymous-buckets "$@"
