#!/usr/bin/env bash
# fuzz/run.sh [SECONDS] — build every libFuzzer target (fuzz_*) in build-fuzz/
# and run each for SECONDS (default 60) on a scratch copy of its seed corpus.
# Exits non-zero if any target crashes, leaks, times out or fails to build.
# Environment: RC_FUZZ_BUILD (build dir, default <repo>/build-fuzz),
# RC_FUZZ_JOBS (build parallelism, default 2), RC_FUZZ_KEEP=1 (keep the grown
# corpora), RC_FUZZ_ONLY="fuzz_a fuzz_b" (run only these).
set -uo pipefail

secs=${1:-60}
case $secs in
'' | *[!0-9]*)
    echo "usage: $0 [SECONDS]" >&2
    exit 2
    ;;
esac
root=$(cd "$(dirname "$0")/.." && pwd)
build=${RC_FUZZ_BUILD:-$root/build-fuzz}
jobs=${RC_FUZZ_JOBS:-2}

mkdir -p "$build"
cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER=clang -DRC_FUZZ=ON -DRC_SANITIZE= \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$build/configure.log" 2>&1 || {
    cat "$build/configure.log" >&2
    echo "run.sh: configure failed" >&2
    exit 1
}

# Every fuzz_* target CMake knows about (Makefile and Ninja generators).
targets=$(cmake --build "$build" --target help 2>/dev/null |
    sed -n -e 's/^\.\.\. \(fuzz_[A-Za-z0-9_]*\)\b.*/\1/p' -e 's/^\(fuzz_[A-Za-z0-9_]*\): .*/\1/p' |
    sort -u)
if [ -n "${RC_FUZZ_ONLY:-}" ]; then
    targets=$RC_FUZZ_ONLY
fi
if [ -z "$targets" ]; then
    echo "run.sh: no fuzz_* targets found in $build" >&2
    exit 1
fi
# shellcheck disable=SC2086
if ! cmake --build "$build" -j"$jobs" --target $targets; then
    echo "run.sh: build failed" >&2
    exit 1
fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/rcfuzz.XXXXXX")
artifacts=$build/fuzz-artifacts/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$artifacts"
status=0
summary=""
for name in $targets; do
    exe=$(find "$build" -type f -perm -u+x -name "$name" | head -n 1)
    if [ -z "$exe" ]; then
        echo "run.sh: $name was not built" >&2
        status=1
        continue
    fi
    corpus=$scratch/$name
    mkdir -p "$corpus" "$artifacts/$name"
    seeds=$root/fuzz/corpus/$name
    [ -d "$seeds" ] && cp -R "$seeds/." "$corpus/"
    dict=()
    [ -f "$root/fuzz/dict/$name.dict" ] && dict=(-dict="$root/fuzz/dict/$name.dict")
    log=$scratch/$name.log
    echo "== $name: ${secs}s, $(find "$corpus" -type f | wc -l) seeds"
    ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1} \
        UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
        "$exe" "${dict[@]}" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$artifacts/$name/" "$corpus" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
    if [ $rc -ne 0 ]; then
        status=1
        echo "!! $name FAILED (exit $rc); log tail:"
        tail -n 40 "$log"
        echo "!! artifacts in $artifacts/$name/; log kept at $log"
        summary+="$(printf '%-16s FAILED   execs %s\n' "$name" "${execs:-?}")"$'\n'
    else
        summary+="$(printf '%-16s ok       execs %-10s %s\n' "$name" "${execs:-?}" "$cov")"$'\n'
    fi
    if [ "${RC_FUZZ_KEEP:-0}" = 1 ]; then
        echo "   grown corpus kept in $corpus"
    fi
done

echo "== summary (${secs}s per target)"
printf '%s' "$summary"
if [ $status -eq 0 ] && [ "${RC_FUZZ_KEEP:-0}" != 1 ]; then
    rm -rf "$scratch"
fi
exit $status
