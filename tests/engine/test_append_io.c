/* The two append paths (rc_options.append_io): the io_uring path is taken
 * when asked for and only then (these tests fail if the option is ignored),
 * reads stay coherent while staged bytes are replaced by the file's mapping,
 * partially filled blocks are rewritten correctly, and a process that dies
 * without closing keeps exactly what was acknowledged. The crash, crash-loop
 * and fault suites run against both paths as well (CMakeLists.txt). */
#include "helpers.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char *dir;
static void setup(void)
{
    dir = th_tmpdir();
}
static void teardown(void)
{
    th_rmdir(dir);
}
TestSuite(append_io, .init = setup, .fini = teardown);

/* The direct path these runs exercise: uring, or pwrite when ctest runs the
 * suite as test_append_io_pwrite. */
static rc_append_io direct_io(void)
{
    return th_append_io() == RC_APPEND_PWRITE ? RC_APPEND_PWRITE : RC_APPEND_URING;
}

static rc_db *open_with(rc_append_io io, rc_sync_mode sync, uint64_t seg_bytes)
{
    rc_options o;
    th_options(&o);
    o.sync = sync;
    o.append_io = io;
    if (seg_bytes)
        o.segment_bytes = seg_bytes;
    rc_db *db = NULL;
    cr_assert_eq(rc_open(dir, &o, &db), 0, "%s", rc_last_error_message());
    return db;
}

Test(append_io, uring_is_taken_when_asked_and_mmap_when_asked)
{
    rc_db *db = open_with(RC_APPEND_URING, RC_SYNC_ALWAYS, 0);
    char k[32], v[64];
    for (int i = 0; i < 40; i++) {
        snprintf(k, sizeof k, "u%d", i);
        snprintf(v, sizeof v, "value-%d", i);
        th_put(db, NULL, k, v);
    }
    rc_stats st;
    rc_stats_db(db, &st);
    cr_assert(st.append_uring, "append_io uring was ignored");
    cr_assert_geq(st.uring_writes, 1, "no group write went through io_uring");
    cr_assert_eq(st.ring_writes, st.uring_writes, "a group write bypassed the ring");
    cr_assert_geq(st.fsyncs, st.uring_writes);
    cr_assert_eq(rc_close(db), 0);

    /* pwrite: the same direct path, every group write a pwritev2 */
    db = open_with(RC_APPEND_PWRITE, RC_SYNC_ALWAYS, 0);
    th_put(db, NULL, "pw", "1");
    rc_stats_db(db, &st);
    cr_assert(st.append_uring, "append_io pwrite took the mapping");
    cr_assert_geq(st.uring_writes, 1);
    cr_assert_eq(st.ring_writes, 0, "append_io pwrite went through the ring");
    cr_assert_eq(rc_close(db), 0);

    db = open_with(RC_APPEND_MMAP, RC_SYNC_ALWAYS, 0);
    for (int i = 40; i < 80; i++) {
        snprintf(k, sizeof k, "u%d", i);
        snprintf(v, sizeof v, "value-%d", i);
        th_put(db, NULL, k, v);
    }
    rc_stats_db(db, &st);
    cr_assert(!st.append_uring, "append_io mmap was ignored");
    cr_assert_eq(st.uring_writes, 0);
    cr_assert_geq(st.fsyncs, 1);
    for (int i = 0; i < 80; i++) {
        snprintf(k, sizeof k, "u%d", i);
        snprintf(v, sizeof v, "value-%d", i);
        cr_assert(th_has(db, NULL, k, v), "%s lost", k);
    }
    cr_assert_eq(rc_close(db), 0);
}

Test(append_io, uring_needs_sync_always_and_auto_follows_the_sync_mode)
{
    rc_options o;
    th_options(&o);
    o.sync = RC_SYNC_NONE;
    o.append_io = RC_APPEND_URING;
    rc_db *db = NULL;
    cr_assert_eq(rc_open(dir, &o, &db), RC_EINVAL);
    cr_assert_not_null(strstr(rc_last_error_message(), "sync always"), "%s",
                       rc_last_error_message());
    o.append_io = RC_APPEND_PWRITE;
    cr_assert_eq(rc_open(dir, &o, &db), RC_EINVAL);
    cr_assert_not_null(strstr(rc_last_error_message(), "sync always"), "%s",
                       rc_last_error_message());
    o.append_io = (rc_append_io)7;
    o.sync = RC_SYNC_ALWAYS;
    cr_assert_eq(rc_open(dir, &o, &db), RC_EINVAL);

    rc_stats st;
    db = open_with(RC_APPEND_AUTO, RC_SYNC_NONE, 0);
    th_put(db, NULL, "a", "1");
    rc_stats_db(db, &st);
    cr_assert(!st.append_uring, "auto took the io_uring path without sync always");
    cr_assert_eq(rc_close(db), 0);
    db = open_with(RC_APPEND_AUTO, RC_SYNC_ALWAYS, 0);
    th_put(db, NULL, "b", "2");
    rc_stats_db(db, &st);
    cr_assert(st.append_uring, "auto with sync always should take the io_uring path here");
    cr_assert_eq(st.ring_writes, st.uring_writes, "auto should write through the ring");
    cr_assert(th_has(db, NULL, "a", "1"));
    cr_assert_eq(rc_close(db), 0);
}

/* value of key I: its number and a pattern, VLEN bytes */
static size_t value_of(int i, char *buf, size_t vlen)
{
    int n = snprintf(buf, vlen, "%d:", i);
    for (size_t j = (size_t)n; j < vlen; j++)
        buf[j] = (char)('a' + (i * 31 + (int)j) % 26);
    return vlen;
}

typedef struct reader_arg {
    rc_db *db;
    atomic_int written; /* keys 0..written-1 are acknowledged */
    atomic_bool stop;
    atomic_int bad;
    atomic_long reads;
} reader_arg;

static void *reader(void *p)
{
    reader_arg *a = p;
    unsigned seed = 12345;
    char k[32], want[1200];
    while (!atomic_load(&a->stop)) {
        int n = atomic_load(&a->written);
        if (n == 0)
            continue;
        int i = (int)(rand_r(&seed) % (unsigned)n);
        snprintf(k, sizeof k, "k%06d", i);
        size_t vlen = value_of(i, want, 900 + (size_t)(i % 300));
        rc_value v;
        int rc = rc_get(a->db, NULL, k, strlen(k), &v);
        if (rc != 0 || v.len != vlen || memcmp(v.data, want, vlen) != 0)
            atomic_fetch_add(&a->bad, 1);
        if (rc == 0)
            rc_value_free(&v);
        atomic_fetch_add(&a->reads, 1);
    }
    return NULL;
}

/* 24 MiB through a 32 MiB segment: the staged bytes are replaced by the
 * file's mapping every 8 MiB while a reader reads everything written so far,
 * then a rotation seals the segment; nothing read may differ. */
Test(append_io, reads_stay_coherent_while_staged_bytes_are_remapped, .timeout = 600)
{
    rc_db *db = open_with(direct_io(), RC_SYNC_ALWAYS, 32u << 20);
    reader_arg a = {.db = db};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, reader, &a), 0);
    enum { PER_BATCH = 128, KEYS = 128 * 200 };
    static char vals[PER_BATCH][1200];
    static char keys[PER_BATCH][32];
    rc_op ops[PER_BATCH];
    for (int b = 0; b < KEYS / PER_BATCH; b++) {
        for (int j = 0; j < PER_BATCH; j++) {
            int i = b * PER_BATCH + j;
            snprintf(keys[j], sizeof keys[j], "k%06d", i);
            size_t vlen = value_of(i, vals[j], 900 + (size_t)(i % 300));
            ops[j] = (rc_op){.kind = RC_OP_PUT,
                             .key = keys[j],
                             .klen = strlen(keys[j]),
                             .val = vals[j],
                             .vlen = vlen};
        }
        cr_assert_eq(rc_apply(db, ops, PER_BATCH, NULL), 0, "%s", rc_last_error_message());
        atomic_store(&a.written, (b + 1) * PER_BATCH);
    }
    /* and the same number of bytes again: the segment rotates (seals) */
    for (int b = 0; b < 4; b++) {
        char k[32], v[1200];
        snprintf(k, sizeof k, "tail%d", b);
        value_of(b, v, 1000);
        v[999] = 0;
        th_put(db, NULL, k, v);
    }
    atomic_store(&a.stop, true);
    pthread_join(t, NULL);
    cr_assert_eq(atomic_load(&a.bad), 0, "%d of %ld reads saw wrong bytes", atomic_load(&a.bad),
                 atomic_load(&a.reads));
    rc_stats st;
    rc_stats_db(db, &st);
    cr_assert(st.append_uring);
    cr_assert_eq(rc_close(db), 0);

    db = open_with(RC_APPEND_MMAP, RC_SYNC_NONE, 32u << 20);
    char k[32], want[1200];
    for (int i = 0; i < KEYS; i++) {
        snprintf(k, sizeof k, "k%06d", i);
        size_t vlen = value_of(i, want, 900 + (size_t)(i % 300));
        rc_value v;
        cr_assert_eq(rc_get(db, NULL, k, strlen(k), &v), 0, "%s lost", k);
        cr_assert(v.len == vlen && memcmp(v.data, want, vlen) == 0, "%s differs", k);
        rc_value_free(&v);
    }
    cr_assert_eq(rc_close(db), 0);
}

/* A child appends records of every length from 1 to 5000 bytes one by one
 * (so the last block is partly filled and rewritten by almost every group
 * write) and dies without closing; the parent finds every acknowledged
 * record, byte for byte. */
Test(append_io, partial_blocks_rewritten_and_kept_across_a_crash, .timeout = 600)
{
    enum { N = 120 };
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        rc_options o;
        th_options(&o);
        o.sync = RC_SYNC_ALWAYS;
        o.append_io = direct_io();
        rc_db *db;
        if (rc_open(dir, &o, &db) != 0)
            _exit(3);
        char k[32], v[6000];
        for (int i = 0; i < N; i++) {
            snprintf(k, sizeof k, "p%d", i);
            size_t vlen = value_of(i, v, 1 + (size_t)(i * 41) % 5000);
            if (rc_put(db, NULL, k, strlen(k), v, vlen, NULL) != 0)
                _exit(4);
        }
        _exit(0); /* no rc_close: no seal, no hint */
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed: %d", WEXITSTATUS(st));
    rc_db *db = open_with(RC_APPEND_MMAP, RC_SYNC_NONE, 0);
    char k[32], want[6000];
    for (int i = 0; i < N; i++) {
        snprintf(k, sizeof k, "p%d", i);
        size_t vlen = value_of(i, want, 1 + (size_t)(i * 41) % 5000);
        rc_value v;
        cr_assert_eq(rc_get(db, NULL, k, strlen(k), &v), 0, "%s lost", k);
        cr_assert(v.len == vlen && memcmp(v.data, want, vlen) == 0, "%s differs", k);
        rc_value_free(&v);
    }
    rc_stats s;
    rc_stats_db(db, &s);
    cr_assert_eq(s.live_keys, N);
    cr_assert_eq(s.lost_bytes, 0);
    cr_assert_eq(rc_close(db), 0);
}

/* value of key I, VLEN incompressible bytes (zstd must not shrink them) */
static void noise_of(int i, char *buf, size_t vlen)
{
    uint64_t x = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1);
    for (size_t j = 0; j < vlen; j++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[j] = (char)(x >> 56);
    }
}

/* The preparer grows the active segment ahead of the writers: 8 MiB written
 * in 4 KiB values through sync=always leaves every growth after the first
 * steps to it (rc_stats.prealloc_ahead), and every acknowledged value is
 * there after a crash without close. */
Test(append_io, preallocation_is_made_ahead_of_the_writers, .timeout = 600)
{
    enum { N = 2048, VLEN = 4000 };
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        rc_options o;
        th_options(&o);
        o.sync = RC_SYNC_ALWAYS;
        o.append_io = direct_io();
        o.segment_bytes = 64u << 20;
        rc_db *db;
        if (rc_open(dir, &o, &db) != 0)
            _exit(3);
        rc_op ops[16];
        static char keys[16][32], vals[16][VLEN];
        for (int b = 0; b < N / 16; b++) {
            for (int j = 0; j < 16; j++) {
                int i = b * 16 + j;
                snprintf(keys[j], sizeof keys[j], "g%05d", i);
                noise_of(i, vals[j], VLEN);
                ops[j] = (rc_op){.kind = RC_OP_PUT,
                                 .key = keys[j],
                                 .klen = strlen(keys[j]),
                                 .val = vals[j],
                                 .vlen = VLEN};
            }
            if (rc_apply(db, ops, 16, NULL) != 0)
                _exit(4);
        }
        rc_stats st;
        rc_stats_db(db, &st);
        _exit(st.prealloc_ahead >= 2 ? 0 : 5); /* no rc_close */
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st), "child died");
    cr_assert_neq(WEXITSTATUS(st), 5, "the preparer never grew the segment ahead");
    cr_assert_eq(WEXITSTATUS(st), 0, "child failed: %d", WEXITSTATUS(st));
    rc_db *db = open_with(RC_APPEND_MMAP, RC_SYNC_NONE, 64u << 20);
    char k[32], want[VLEN];
    for (int i = 0; i < N; i++) {
        snprintf(k, sizeof k, "g%05d", i);
        noise_of(i, want, VLEN);
        rc_value v;
        cr_assert_eq(rc_get(db, NULL, k, strlen(k), &v), 0, "%s lost", k);
        cr_assert(v.len == VLEN && memcmp(v.data, want, VLEN) == 0, "%s differs", k);
        rc_value_free(&v);
    }
    cr_assert_eq(rc_close(db), 0);
}

typedef struct grow_arg {
    rc_db *db;
    int t;
    atomic_int failed;
} grow_arg;

enum { GROW_THREADS = 8, GROW_PER = 160, GROW_VLEN = 3000 };

static void *grow_writer(void *p)
{
    grow_arg *a = p;
    char k[32], v[GROW_VLEN];
    for (int i = 0; i < GROW_PER; i++) {
        int n = a->t * GROW_PER + i;
        snprintf(k, sizeof k, "w%05d", n);
        noise_of(n, v, GROW_VLEN);
        if (rc_put(a->db, NULL, k, strlen(k), v, GROW_VLEN, NULL) != 0)
            atomic_fetch_add(&a->failed, 1);
    }
    return NULL;
}

/* Eight durable writers race the preparer (it grows the file while they
 * append and leaders write groups; tests/tsan.sh runs this under TSan) and
 * a small segment size makes them rotate past it; everything is there. */
Test(append_io, eight_writers_race_the_preparer_and_rotations, .timeout = 600)
{
    rc_db *db = open_with(direct_io(), RC_SYNC_ALWAYS, 1u << 20);
    pthread_t th[GROW_THREADS];
    grow_arg args[GROW_THREADS];
    for (int t = 0; t < GROW_THREADS; t++) {
        args[t] = (grow_arg){.db = db, .t = t};
        cr_assert_eq(pthread_create(&th[t], NULL, grow_writer, &args[t]), 0);
    }
    for (int t = 0; t < GROW_THREADS; t++) {
        pthread_join(th[t], NULL);
        cr_assert_eq(atomic_load(&args[t].failed), 0, "writer %d failed", t);
    }
    rc_stats st;
    rc_stats_db(db, &st);
    cr_assert_geq(st.prealloc_ahead, 1, "the preparer never ran");
    cr_assert_eq(rc_close(db), 0);
    db = open_with(RC_APPEND_MMAP, RC_SYNC_NONE, 1u << 20);
    char k[32], want[GROW_VLEN];
    for (int n = 0; n < GROW_THREADS * GROW_PER; n++) {
        snprintf(k, sizeof k, "w%05d", n);
        noise_of(n, want, GROW_VLEN);
        rc_value v;
        cr_assert_eq(rc_get(db, NULL, k, strlen(k), &v), 0, "%s lost", k);
        cr_assert(v.len == GROW_VLEN && memcmp(v.data, want, GROW_VLEN) == 0, "%s differs", k);
        rc_value_free(&v);
    }
    cr_assert_eq(rc_close(db), 0);
}
