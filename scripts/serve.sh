#!/usr/bin/env bash
# Install dependencies, build (release), and run the server in the foreground
# on ./ringcask-data at 127.0.0.1:7070 with an open "default" bucket.
# Extra arguments go to kvd (see `kvd --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
exec build/server/kvd --dir ./ringcask-data --default-bucket default "$@"
