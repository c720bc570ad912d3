/* Full loads larger than one segment: a full backup of a source spanning many
 * 64 KiB segments loads into an empty database as dozens of segments of its
 * own (none larger than segment_bytes unless one record is), equal to the
 * source key by key before and after a reopen; a load killed at random points
 * leaves the target exactly empty or exactly loaded, and a rerun finishes it;
 * refusals apply nothing; the LOADING marker is honoured, and a damaged one
 * refused, by rc_open. */
#include "helpers.h"
#include "db.h"
#include "fault.h"
#include "format/meta.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static _Atomic int64_t fake_now = 1700000000000;

static int64_t test_clock(void *ctx)
{
    (void)ctx;
    return atomic_load(&fake_now);
}

static rc_db *try_open(const char *dir, bool read_only, int *rc)
{
    rc_options o;
    th_options(&o); /* 64 KiB segments */
    o.clock_ms = test_clock;
    o.ttl_sweep_ms = 0;
    o.read_only = read_only;
    rc_db *db = NULL;
    *rc = rc_open(dir, &o, &db);
    return db;
}

static rc_db *open_db(const char *dir, bool read_only)
{
    int rc;
    rc_db *db = try_open(dir, read_only, &rc);
    cr_assert_eq(rc, 0, "open %s: %s", dir, rc_last_error_message());
    return db;
}

static int load(rc_db *db, const th_membuf *s, rc_progress_fn progress, void *pctx)
{
    th_membuf m = {.p = s->p, .len = s->len, .max_read = 7777}; /* odd-sized reads */
    rc_backup_info info;
    return rc_load(db, th_mem_read, &m, progress, pctx, &info);
}

static void assert_state(rc_db *db, const char *want, const char *when)
{
    char *got = th_dump(db);
    size_t at = 0;
    while (want[at] && want[at] == got[at])
        at++;
    while (at > 0 && want[at - 1] != '\n')
        at--;
    cr_assert(strcmp(got, want) == 0, "%s: states differ from\n%.200s\n---- vs ----\n%.200s", when,
              want + at, got + at);
    free(got);
}

static void put(rc_db *db, rc_keyspace *ks, const char *k, const void *v, size_t vlen, int64_t ttl)
{
    rc_op op = {.kind = RC_OP_PUT,
                .ks = ks,
                .key = k,
                .klen = strlen(k),
                .val = v,
                .vlen = vlen,
                .ttl_ms = ttl};
    cr_assert_eq(rc_apply(db, &op, 1, NULL), 0, "%s", rc_last_error_message());
}

/* A source of about 3 MB over 45+ segments of 64 KiB: three keyspaces (one
 * with a default TTL), overwrites, deletes, TTLs, a dropped keyspace, a
 * compressible value and one record larger than a segment. */
static rc_db *make_source(const char *dir)
{
    rc_db *db = open_db(dir, false);
    rc_keyspace *a, *b, *gone;
    cr_assert_eq(rc_keyspace_open(db, "alpha", RC_KS_CREATE, &a), 0);
    cr_assert_eq(rc_keyspace_open(db, "beta", RC_KS_CREATE, &b), 0);
    cr_assert_eq(rc_keyspace_set_default_ttl(b, 3600000), 0, "%s", rc_last_error_message());
    cr_assert_eq(rc_keyspace_open(db, "gone", RC_KS_CREATE, &gone), 0);
    uint8_t val[700];
    char k[32];
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 8000; i++) {
        for (size_t j = 0; j < sizeof(val); j++) { /* xorshift: incompressible */
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            val[j] = (uint8_t)x;
        }
        snprintf(k, sizeof(k), "key%05d", i);
        rc_keyspace *ks = i % 3 == 0 ? NULL : i % 3 == 1 ? a : b;
        put(db, ks, k, val, 200 + (size_t)(i % 500), i % 7 == 0 ? 86400000 : 0);
        if (i % 50 == 0)
            put(db, gone, k, "x", 1, 0);
    }
    for (int i = 0; i < 8000; i += 5) { /* overwrites and deletes */
        snprintf(k, sizeof(k), "key%05d", i);
        rc_keyspace *ks = i % 3 == 0 ? NULL : i % 3 == 1 ? a : b;
        if (i % 10 == 0)
            cr_assert_eq(rc_delete(db, ks, k, strlen(k), NULL), 0);
        else
            put(db, ks, k, "overwritten", 11, 0);
    }
    cr_assert_eq(rc_keyspace_drop(db, "gone"), 0);
    static uint8_t big[100 * 1024]; /* > segment_bytes: a segment of its own */
    for (size_t j = 0; j < sizeof(big); j++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        big[j] = (uint8_t)x;
    }
    put(db, a, "big", big, sizeof(big), 0);
    char text[4096];
    memset(text, 'z', sizeof(text));
    put(db, NULL, "compressible", text, sizeof(text), 0);
    return db;
}

static th_membuf full_backup(rc_db *db)
{
    th_membuf m = {0};
    rc_backup_info info;
    cr_assert_eq(rc_backup(db, 0, th_mem_write, &m, NULL, NULL, &info), 0, "%s",
                 rc_last_error_message());
    cr_assert_gt(info.records, 4000);
    return m;
}

static int data_files(const char *dir)
{
    static char names[4096][64];
    return th_list(dir, ".data", names, 4096);
}

static bool has_marker(const char *dir)
{
    return th_file_size(th_path(dir, "LOADING")) >= 0;
}

static void progress_check(void *ctx, uint64_t done, uint64_t total)
{
    uint64_t *last = ctx;
    cr_assert(total == 0 || done <= total, "progress %llu of %llu", (unsigned long long)done,
              (unsigned long long)total);
    *last = done;
}

/* a net, not a speed test: 24 killed loads took over 600 s under ASan on a
 * 2-core machine at load 40 */
TestSuite(bigload, .timeout = 1800);

Test(bigload, many_segments_load_equal_to_the_source)
{
    char *sdir = th_tmpdir(), *ddir = th_tmpdir();
    rc_db *src = make_source(sdir);
    th_membuf m = full_backup(src);
    char *want = th_dump(src);
    rc_db *dst = open_db(ddir, false);
    int before = data_files(ddir);
    uint64_t done = 0;
    cr_assert_eq(load(dst, &m, progress_check, &done), 0, "%s", rc_last_error_message());
    rc_backup_info info;
    th_membuf again = {.p = m.p, .len = m.len};
    cr_assert_eq(rc_verify_stream(th_mem_read, &again, &info), 0);
    cr_assert_eq(done, info.records + info.tombstones, "progress ends at the total");
    cr_assert_not(has_marker(ddir), "LOADING is gone once the load returns");
    int segs = data_files(ddir) - before;
    cr_assert_geq(segs, 40, "the load spans many segments (%d)", segs);
    /* records never split, no segment outgrows segment_bytes except for
     * the one holding the 100 KiB record alone */
    char names[512][64];
    int n = th_list(ddir, ".data", names, 512);
    int oversized = 0;
    for (int i = 0; i < n; i++) {
        long long sz = th_file_size(th_path(ddir, names[i]));
        if (sz > 64 * 1024)
            oversized++;
        cr_assert_lt(sz, 64 * 1024 + 100 * 1024 + 64, "%s has %lld bytes", names[i], sz);
    }
    cr_assert_eq(oversized, 1, "one segment holds the 100 KiB record (%d over 64 KiB)", oversized);
    assert_state(dst, want, "after the load");
    rc_stats a, b;
    rc_stats_db(src, &a);
    rc_stats_db(dst, &b);
    cr_assert_eq(b.live_keys, a.live_keys);
    cr_assert_eq(b.live_value_bytes, a.live_value_bytes);
    /* new writes continue after the loaded seqs */
    put(dst, NULL, "after", "1", 1, 0);
    rc_value v;
    cr_assert_eq(rc_get(dst, NULL, "after", 5, &v), 0);
    cr_assert_gt(v.seq, info.until);
    rc_value_free(&v);
    cr_assert_eq(rc_delete(dst, NULL, "after", 5, NULL), 0);
    rc_close(dst);
    dst = open_db(ddir, false);
    assert_state(dst, want, "after a reopen");
    rc_stats_db(dst, &b);
    cr_assert_eq(b.live_keys, a.live_keys);
    cr_assert_eq(b.live_value_bytes, a.live_value_bytes);
    /* a second full load is refused and changes nothing */
    n = data_files(ddir);
    cr_assert_eq(load(dst, &m, NULL, NULL), RC_ENOTEMPTY);
    cr_assert_eq(data_files(ddir), n);
    rc_close(dst);
    dst = open_db(ddir, true); /* a read-only opener sees the same */
    assert_state(dst, want, "read-only");
    rc_close(dst);
    free(want);
    free(m.p);
    rc_close(src);
    th_rmdir(sdir);
    th_rmdir(ddir);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A child loading a multi-segment full stream is SIGKILLed at random
 * moments: reopened, the target is exactly empty or exactly the source, and
 * a rerun of the load makes it the source. */
Test(bigload, killed_full_load_is_all_or_nothing_and_reruns)
{
    char *sdir = th_tmpdir(), *rdir = th_tmpdir();
    rc_db *src = make_source(sdir);
    th_membuf m = full_backup(src);
    char *full = th_dump(src);
    rc_close(src);
    rc_db *ref = open_db(rdir, false);
    char *empty = th_dump(ref);
    double t0 = now_s();
    cr_assert_eq(load(ref, &m, NULL, NULL), 0, "%s", rc_last_error_message());
    double took = now_s() - t0;
    rc_close(ref);

    int saw_empty = 0, saw_full = 0, mid_write = 0;
    const int rounds = 24;
    srand(11);
    for (int round = 0; round < rounds; round++) {
        char *ddir = th_tmpdir();
        int go[2];
        cr_assert_eq(pipe(go), 0);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
            rc_db *c = open_db(ddir, false);
            if (write(go[1], "g", 1) != 1) /* the load starts now */
                _exit(2);
            load(c, &m, NULL, NULL);
            _exit(0); /* no close: as if the process died right after */
        }
        char byte;
        cr_assert_eq(read(go[0], &byte, 1), 1);
        close(go[0]);
        close(go[1]);
        /* over the whole load, a little past its usual end */
        useconds_t delay = (useconds_t)(took * 1.1e6 * (double)(rand() % 1000) / 1000.0);
        usleep(delay);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        if (has_marker(ddir))
            mid_write++;
        rc_db *dst = open_db(ddir, false);
        cr_assert_not(has_marker(ddir), "round %d: rc_open removes LOADING", round);
        char *now = th_dump(dst);
        bool was_full = false;
        if (strcmp(now, empty) == 0) {
            saw_empty++;
            rc_stats st;
            rc_stats_db(dst, &st);
            cr_assert_eq(st.live_keys, 0);
            cr_assert_leq(data_files(ddir), 3, "round %d: the undone load left segments", round);
        } else if (strcmp(now, full) == 0) {
            saw_full++;
            was_full = true;
        } else {
            cr_assert_fail("round %d (kill after %u us of %.0f): the target is half loaded", round,
                           (unsigned)delay, took * 1e6);
        }
        free(now);
        int rc = load(dst, &m, NULL, NULL);
        if (was_full && rc == RC_ENOTEMPTY)
            rc = 0; /* it had finished: the rerun is refused as a second full load */
        cr_assert_eq(rc, 0, "round %d: rerun: %s", round, rc_last_error_message());
        assert_state(dst, full, "the rerun completes the load");
        rc_close(dst);
        dst = open_db(ddir, false);
        assert_state(dst, full, "the rerun, reopened");
        rc_close(dst);
        th_rmdir(ddir);
    }
    cr_log_info("killed full loads: %d left nothing (%d with LOADING present), %d had finished",
                saw_empty, mid_write, saw_full);
    printf("killed full loads (%.0f ms each): %d left nothing (%d killed while writing "
           "segments), %d had finished\n",
           took * 1e3, saw_empty, mid_write, saw_full);
    cr_assert_gt(mid_write, 0,
                 "no kill landed while segments were written: the test proves "
                 "nothing");
    free(empty);
    free(full);
    free(m.p);
    th_rmdir(sdir);
    th_rmdir(rdir);
}

/* Refusals apply nothing: a non-empty target, a corrupt stream. */
Test(bigload, refusals_apply_nothing)
{
    char *sdir = th_tmpdir(), *ddir = th_tmpdir();
    rc_db *src = make_source(sdir);
    th_membuf m = full_backup(src);
    rc_close(src);
    rc_db *dst = open_db(ddir, false);
    th_put(dst, NULL, "mine", "1");
    char *before = th_dump(dst);
    int n = data_files(ddir);
    cr_assert_eq(load(dst, &m, NULL, NULL), RC_ENOTEMPTY);
    cr_assert_eq(data_files(ddir), n);
    cr_assert_not(has_marker(ddir));
    assert_state(dst, before, "after a refused load");
    free(before);
    rc_close(dst);
    th_rmdir(ddir);

    ddir = th_tmpdir();
    dst = open_db(ddir, false);
    before = th_dump(dst);
    n = data_files(ddir);
    m.p[m.len / 2] ^= 0x40; /* inside a frame */
    cr_assert_eq(load(dst, &m, NULL, NULL), RC_ECORRUPT);
    cr_assert_eq(data_files(ddir), n);
    cr_assert_not(has_marker(ddir));
    assert_state(dst, before, "after a corrupt stream");
    m.p[m.len / 2] ^= 0x40;
    cr_assert_eq(load(dst, &m, NULL, NULL), 0, "and the good stream loads after");
    free(before);
    rc_close(dst);
    free(m.p);
    th_rmdir(sdir);
    th_rmdir(ddir);
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(p, 1, n, f), n);
    fclose(f);
}

static void copy_file(const char *from, const char *to)
{
    FILE *f = fopen(from, "rb");
    cr_assert_not_null(f);
    static uint8_t buf[1 << 20];
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    write_file(to, buf, n);
}

/* The marker by hand: a valid one removes exactly its range (a read-only
 * opener only hides it), a damaged or newer one is refused. */
Test(bigload, loading_marker_at_open)
{
    char *dir = th_tmpdir();
    rc_db *db = open_db(dir, false);
    th_put(db, NULL, "kept", "1");
    rc_close(db);
    char names[16][64];
    int n = th_list(dir, ".data", names, 16);
    cr_assert_eq(n, 1);
    /* fake a load's segments 50 and 51 (copies of the real one, with the
     * key "kept" in them) plus a hint */
    char p50[512], p51[512];
    snprintf(p50, sizeof(p50), "%s", th_path(dir, "00000050.data"));
    snprintf(p51, sizeof(p51), "%s", th_path(dir, "00000051.data"));
    char real[512];
    snprintf(real, sizeof(real), "%s", th_path(dir, names[0]));
    copy_file(real, p50);
    copy_file(real, p51);
    write_file(th_path(dir, "00000050.hint"), "junk", 4);
    uint8_t mk[FMT_LOADING_LEN];
    fmt_loading_encode(mk, 50, 2);
    write_file(th_path(dir, "LOADING"), mk, sizeof(mk));

    db = open_db(dir, true); /* read-only: ignores, deletes nothing */
    cr_assert_eq(th_has(db, NULL, "kept", "1"), 1);
    rc_stats st;
    rc_stats_db(db, &st);
    cr_assert_eq(st.live_keys, 1);
    rc_close(db);
    cr_assert(has_marker(dir));
    cr_assert_geq(th_file_size(p50), 0);

    /* damaged: refused, nothing deleted */
    mk[9] ^= 1;
    write_file(th_path(dir, "LOADING"), mk, sizeof(mk));
    int rc;
    db = try_open(dir, false, &rc);
    cr_assert_eq(rc, RC_ECORRUPT, "a damaged LOADING is refused (got %d)", rc);
    cr_assert_null(db);
    cr_assert_geq(th_file_size(p50), 0);
    write_file(th_path(dir, "LOADING"), mk, 5); /* short */
    db = try_open(dir, false, &rc);
    cr_assert_eq(rc, RC_ECORRUPT);
    fmt_loading_encode(mk, 50, 2);
    mk[4] = 9; /* a newer version */
    write_file(th_path(dir, "LOADING"), mk, sizeof(mk));
    db = try_open(dir, false, &rc);
    cr_assert_eq(rc, RC_EVERSION);

    fmt_loading_encode(mk, 50, 2);
    write_file(th_path(dir, "LOADING"), mk, sizeof(mk));
    db = open_db(dir, false);
    cr_assert_not(has_marker(dir));
    cr_assert_lt(th_file_size(p50), 0);
    cr_assert_lt(th_file_size(p51), 0);
    cr_assert_lt(th_file_size(th_path(dir, "00000050.hint")), 0);
    cr_assert_geq(th_file_size(real), 0, "segments outside the range stay");
    cr_assert_eq(th_has(db, NULL, "kept", "1"), 1);
    rc_close(db);
    th_rmdir(dir);
}

/* ---- a put racing a full load after the load's check of the target
 *
 * rc_load checks under ks_mu that the target is empty (last seq 0), then
 * plans the segments (a pass over the whole staged stream) and reserves
 * their ids, checking that last seq did not move. A put that lands between
 * the check and the reservation must make the load fail with RC_ENOTEMPTY
 * (ENGINE.md: "a write that slipped in before is refused"); were the load to
 * go on, the put's seq would collide with the stream's and the stream's
 * older value of the same key (a higher seq) would replace the put. */

typedef struct race_read {
    th_membuf m;
    _Atomic bool eof;
} race_read;

static long race_mem_read(void *ctx, void *buf, size_t len)
{
    race_read *r = ctx;
    long n = th_mem_read(&r->m, buf, len);
    if (n == 0)
        atomic_store(&r->eof, true); /* the walk is over: apply_staged next */
    return n;
}

typedef struct race_load {
    rc_db *db;
    race_read rd;
    int rc;
} race_load;

static void *race_load_thread(void *arg)
{
    race_load *L = arg;
    rc_backup_info info;
    L->rc = rc_load(L->db, race_mem_read, &L->rd, NULL, NULL, &info);
    return NULL;
}

/* Wait until the loader of L has read its whole stream and holds ks_mu: it
 * is applying the staged records (apply_staged). */
static void wait_for_apply(race_load *L)
{
    while (!atomic_load(&L->rd.eof))
        usleep(1000);
    for (;;) {
        int e = pthread_mutex_trylock(&L->db->ks_mu);
        if (e == EBUSY)
            return;
        cr_assert_eq(e, 0);
        pthread_mutex_unlock(&L->db->ks_mu);
        usleep(1000);
    }
}

Test(bigload, put_between_check_and_reservation_is_not_lost)
{
    char *sdir = th_tmpdir(), *ddir = th_tmpdir();
    rc_db *src = open_db(sdir, false);
    for (int i = 0; i < 20; i++)
        put(src, NULL, "k", "old", 3, 0); /* "k" at seq 20 in the stream */
    th_membuf m = {0};
    rc_backup_info info;
    cr_assert_eq(rc_backup(src, 0, th_mem_write, &m, NULL, NULL, &info), 0, "%s",
                 rc_last_error_message());
    rc_close(src);

    rc_db *dst = open_db(ddir, false);
    /* hold the segment table's lock: the load stops in plan_full (counting
     * free slots), after its check of the target and before reserving */
    pthread_mutex_lock(&dst->segs.mu);
    race_load L = {.db = dst, .rd = {.m = {.p = m.p, .len = m.len}}};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, race_load_thread, &L), 0);
    wait_for_apply(&L);
    usleep(200 * 1000);               /* past check_target, waiting for segs.mu */
    put(dst, NULL, "k", "new", 3, 0); /* seq 1; needs no segment table lock */
    pthread_mutex_unlock(&dst->segs.mu);
    pthread_join(t, NULL);
    cr_assert_eq(L.rc, RC_ENOTEMPTY, "the load must be refused (got %d)", L.rc);
    cr_assert_eq(th_has(dst, NULL, "k", "new"), 1, "the put is kept");
    rc_close(dst);
    dst = open_db(ddir, false);
    cr_assert_eq(th_has(dst, NULL, "k", "new"), 1, "the put is kept after a reopen");
    rc_close(dst);
    free(m.p);
    th_rmdir(sdir);
    th_rmdir(ddir);
}

/* An incremental load reads the target's last seq, builds its batch, and
 * appends it with the stream's seqs. A put that lands in between takes a seq
 * the stream also holds: the load must be refused, not append a second record
 * with that seq (whose value would then win or lose by accident). */
Test(bigload, put_racing_an_incremental_load_is_not_shadowed)
{
    char *sdir = th_tmpdir(), *ddir = th_tmpdir();
    rc_db *src = open_db(sdir, false);
    put(src, NULL, "a", "1", 1, 0);
    th_membuf full = {0}, inc = {0};
    rc_backup_info info;
    cr_assert_eq(rc_backup(src, 0, th_mem_write, &full, NULL, NULL, &info), 0);
    uint64_t since = info.until;
    put(src, NULL, "k", "stream", 6, 0); /* seq since + 1 in the incremental */
    cr_assert_eq(rc_backup(src, since, th_mem_write, &inc, NULL, NULL, &info), 0);
    rc_close(src);

    rc_db *dst = open_db(ddir, false);
    race_load F = {.db = dst, .rd = {.m = {.p = full.p, .len = full.len}}};
    race_load_thread(&F);
    cr_assert_eq(F.rc, 0, "%s", rc_last_error_message());
    /* hold merge_mu: the incremental load stops after building its batch */
    pthread_mutex_lock(&dst->merge_mu);
    race_load L = {.db = dst, .rd = {.m = {.p = inc.p, .len = inc.len}}};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, race_load_thread, &L), 0);
    wait_for_apply(&L);
    usleep(200 * 1000);                 /* past build_batch, waiting for merge_mu */
    put(dst, NULL, "p", "local", 5, 0); /* takes seq since + 1 */
    pthread_mutex_unlock(&dst->merge_mu);
    pthread_join(t, NULL);
    cr_assert_eq(L.rc, RC_ECONFLICT, "the load must be refused (got %d)", L.rc);
    for (int round = 0; round < 2; round++) {
        cr_assert_eq(th_has(dst, NULL, "p", "local"), 1, "the put is kept");
        cr_assert_eq(th_has(dst, NULL, "k", "stream"), 0, "nothing of the load is applied");
        rc_close(dst);
        dst = open_db(ddir, false);
    }
    rc_close(dst);
    free(full.p);
    free(inc.p);
    th_rmdir(sdir);
    th_rmdir(ddir);
}

/* The keyspace's dead bytes after a load (full, then incremental) are what a
 * reopen recounts: tombstones and superseded records are dead from birth in
 * their keyspace too, not only in their segment. */
static uint64_t ks_dead(rc_db *db)
{
    rc_stats st;
    cr_assert_eq(rc_stats_keyspace(db, NULL, &st), 0);
    return st.dead_bytes;
}

Test(bigload, dead_bytes_after_a_load_match_a_reopen)
{
    char *sdir = th_tmpdir(), *ddir = th_tmpdir();
    rc_db *src = open_db(sdir, false);
    char k[16];
    for (int i = 0; i < 50; i++) {
        snprintf(k, sizeof k, "k%02d", i);
        put(src, NULL, k, "v", 1, 0);
    }
    for (int i = 0; i < 50; i += 2) {
        snprintf(k, sizeof k, "k%02d", i);
        cr_assert_eq(rc_delete(src, NULL, k, strlen(k), NULL), 0);
    }
    th_membuf full = {0}, inc = {0};
    rc_backup_info info;
    cr_assert_eq(rc_backup(src, 0, th_mem_write, &full, NULL, NULL, &info), 0);
    uint64_t since = info.until;
    for (int i = 1; i < 50; i += 4) {
        snprintf(k, sizeof k, "k%02d", i);
        cr_assert_eq(rc_delete(src, NULL, k, strlen(k), NULL), 0);
    }
    cr_assert_eq(rc_backup(src, since, th_mem_write, &inc, NULL, NULL, &info), 0);
    rc_close(src);

    rc_db *dst = open_db(ddir, false);
    th_membuf *streams[] = {&full, &inc};
    for (int s = 0; s < 2; s++) {
        race_load L = {.db = dst, .rd = {.m = {.p = streams[s]->p, .len = streams[s]->len}}};
        race_load_thread(&L);
        cr_assert_eq(L.rc, 0, "%s", rc_last_error_message());
        uint64_t loaded = ks_dead(dst);
        cr_assert_gt(loaded, 0, "the tombstones count as dead");
        rc_close(dst);
        dst = open_db(ddir, false);
        cr_assert_eq(ks_dead(dst), loaded,
                     "stream %d: %llu dead bytes after the load, %llu after a "
                     "reopen",
                     s, (unsigned long long)loaded, (unsigned long long)ks_dead(dst));
    }
    rc_close(dst);
    free(full.p);
    free(inc.p);
    th_rmdir(sdir);
    th_rmdir(ddir);
}

#ifdef RC_FAULT_INJECTION
/* A read-only opener (kvdump beside kvload) lists the segments while a full
 * load is writing them, and the load commits before the opener reads the
 * marker: the listing lacks segments that are now committed data. The open
 * must list again rather than serve a partial database. */
typedef struct commit_ctx {
    char aside[512], seg[512], marker[512];
    int calls;
} commit_ctx;

static void commit_after_listing(void *arg)
{
    commit_ctx *c = arg;
    if (c->calls++ > 0)
        return;
    /* the load writes its last segment and commits (removes the marker) */
    cr_assert_eq(rename(c->aside, c->seg), 0);
    cr_assert_eq(unlink(c->marker), 0);
}

Test(bigload, read_only_open_racing_a_load_commit_lists_again)
{
    char *dir = th_tmpdir();
    rc_db *db = open_db(dir, false);
    th_put(db, NULL, "late", "1");
    rc_close(db);
    char names[16][64];
    cr_assert_eq(th_list(dir, ".data", names, 16), 1);
    commit_ctx c = {0};
    snprintf(c.seg, sizeof(c.seg), "%s", th_path(dir, names[0]));
    snprintf(c.aside, sizeof(c.aside), "%s", th_path(dir, "aside"));
    snprintf(c.marker, sizeof(c.marker), "%s", th_path(dir, "LOADING"));
    /* the state while the load has not written that segment yet */
    cr_assert_eq(rename(c.seg, c.aside), 0);
    uint8_t mk[FMT_LOADING_LEN];
    fmt_loading_encode(mk, strtoull(names[0], NULL, 10), 1);
    write_file(c.marker, mk, sizeof(mk));

    rc_fault_after_listing(commit_after_listing, &c);
    db = open_db(dir, true);
    rc_fault_after_listing(NULL, NULL);
    cr_assert_geq(c.calls, 2, "the open listed once (%d)", c.calls);
    cr_assert_eq(th_has(db, NULL, "late", "1"), 1, "the committed segment is served");
    rc_close(db);
    th_rmdir(dir);
}
#endif
