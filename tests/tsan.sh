#!/usr/bin/env bash
# ThreadSanitizer run of the engine's concurrency tests. Criterion's runner
# cannot start under TSan, so these suites build against the stand-in header
# in tests/engine/tsan_shim (same test sources, one process, in order).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build-tsan}
mkdir -p "$out"
cflags=(-std=gnu17 -g -O1 -fsanitize=thread -D_GNU_SOURCE -DRC_FAULT_INJECTION=1
        -Itests/engine/tsan_shim -Itests/engine -Iengine/include -Iengine/src -I. -Iformat)
clang "${cflags[@]}" -c tests/engine/helpers.c -DSHIM_NO_MAIN -o "$out/helpers.o"
srcs=(engine/src/*.c format/*.c)
for t in test_basic test_ops test_batch test_keydir test_merge test_recovery_parallel test_list_cache test_async \
         test_keyspace_refs test_append_io; do
  clang "${cflags[@]}" "${srcs[@]}" "tests/engine/$t.c" "$out/helpers.o" \
        -luring -lxxhash -lzstd -lpthread -o "$out/$t"
done
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
"$out/test_keydir" concurrent
"$out/test_basic" eight_threads
"$out/test_ops" eight_threads_increment
"$out/test_ops" cas_race
"$out/test_batch" readers_never_see
"$out/test_merge" writes_racing
"$out/test_recovery_parallel" any_thread_count
"$out/test_list_cache" writers_racing
"$out/test_list_cache" model_released_often
"$out/test_async" many_concurrent_writers
"$out/test_async" close_completes
"$out/test_async" a_callback_may_issue
"$out/test_keyspace_refs" references_held_by_threads
"$out/test_keyspace_refs" id_lookups_race
"$out/test_append_io" eight_writers_race_the_preparer
echo "tsan: 15 concurrency tests passed"
