#!/usr/bin/env bash
# Install dependencies, build the release binaries scripts/serve.sh runs,
# build with AddressSanitizer + UndefinedBehaviorSanitizer
# and -Werror, run the whole test suite, the engine's concurrency tests under
# ThreadSanitizer, then run each fuzz target briefly.
# FUZZ_SECONDS (default 30) bounds each fuzz target; FUZZ_SECONDS=0 skips them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh --test
jobs=$(nproc)
# The release build scripts/serve.sh does (default compiler, -Werror) must
# build too: the sanitizer build below uses clang, whose warnings differ.
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DRC_SANITIZE= -DRC_FAULT_INJECTION=OFF \
      -DRC_PEERS=OFF >/dev/null
cmake --build build-release -j"$jobs" --target kvd kv kvdump kvload
cmake -S . -B build-test -DCMAKE_BUILD_TYPE=Debug -DRC_SANITIZE=address,undefined \
      -DRC_PEERS=OFF -DCMAKE_C_COMPILER=clang >/dev/null
cmake --build build-test -j"$jobs"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build-test && ctest --output-on-failure -j"$jobs" --timeout 900)
# ThreadSanitizer over the engine's concurrency tests (TSAN=0 skips it)
if [ "${TSAN:-1}" != "0" ]; then
  bash tests/tsan.sh build-tsan
fi
if [ "${FUZZ_SECONDS:-30}" != "0" ] && [ -f fuzz/run.sh ]; then
  bash fuzz/run.sh "${FUZZ_SECONDS:-30}"
fi
