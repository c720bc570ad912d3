/* Backup streams: a full backup and incrementals restored equal the source
 * key by key (overwrites, deletes, TTLs, keyspaces created and dropped), a
 * backup taken during writes is one consistent moment, damaged streams are
 * refused with the target unchanged, the refusals (gap, non-empty target,
 * tombstone horizon), backups of a read-only handle on a live directory, and
 * a 200k-key round trip with its timing printed. */
#include "helpers.h"
#include "db.h" /* white box: the tombstone horizon */
#include "format/catalog.h"
#include "format/meta.h"
#include "format/stream.h"

#include <criterion/criterion.h>
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

static rc_db *open_db(const char *dir, bool read_only)
{
    rc_options o;
    th_options(&o);
    o.clock_ms = test_clock;
    o.ttl_sweep_ms = 0;
    o.read_only = read_only;
    rc_db *db;
    cr_assert_eq(rc_open(dir, &o, &db), 0, "open %s: %s", dir, rc_last_error_message());
    return db;
}

/* ---- streams in memory */

static th_membuf backup(rc_db *db, uint64_t since, rc_backup_info *info)
{
    th_membuf m = {0};
    int rc = rc_backup(db, since, th_mem_write, &m, NULL, NULL, info);
    cr_assert_eq(rc, 0, "backup since %llu: %s", (unsigned long long)since,
                 rc_last_error_message());
    cr_assert_eq(info->bytes, m.len);
    return m;
}

static int load(rc_db *db, const uint8_t *p, size_t len, rc_backup_info *info)
{
    th_membuf m = {.p = (uint8_t *)p, .len = len, .max_read = 7777}; /* odd-sized reads */
    rc_backup_info scratch;
    return rc_load(db, th_mem_read, &m, NULL, NULL, info ? info : &scratch);
}

static int verify(const uint8_t *p, size_t len)
{
    th_membuf m = {.p = (uint8_t *)p, .len = len};
    rc_backup_info info;
    return rc_verify_stream(th_mem_read, &m, &info);
}

/* ---- the whole visible state (th_dump) compared */

static void assert_same(rc_db *a, rc_db *b, const char *when)
{
    char *da = th_dump(a), *dbb = th_dump(b);
    size_t at = 0;
    while (da[at] && da[at] == dbb[at])
        at++;
    while (at > 0 && da[at - 1] != '\n')
        at--;
    cr_assert_str_eq(da, dbb, "%s: states differ from\n%.200s\n---- vs ----\n%.200s", when, da + at,
                     dbb + at);
    free(da);
    free(dbb);
}

static void put_ttl(rc_db *db, rc_keyspace *ks, const char *k, const char *v, int64_t ttl)
{
    rc_op op = {.kind = RC_OP_PUT,
                .ks = ks,
                .key = k,
                .klen = strlen(k),
                .val = v,
                .vlen = strlen(v),
                .ttl_ms = ttl};
    cr_assert_eq(rc_apply(db, &op, 1, NULL), 0, "%s", rc_last_error_message());
}

static rc_keyspace *ks_create(rc_db *db, const char *name)
{
    rc_keyspace *ks;
    cr_assert_eq(rc_keyspace_open(db, name, RC_KS_CREATE, &ks), 0);
    return ks;
}

TestSuite(backup, .timeout = 600);

Test(backup, full_and_three_incrementals_restore_equal)
{
    char *sdir = th_tmpdir(), *ddir = th_tmpdir();
    rc_db *src = open_db(sdir, false), *dst = open_db(ddir, false);
    char k[32], v[64];
    rc_keyspace *a = ks_create(src, "alpha");
    for (int i = 0; i < 300; i++) {
        snprintf(k, sizeof(k), "k%03d", i);
        snprintf(v, sizeof(v), "v%d-%s", i, i % 3 ? "plain" : "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        th_put(src, NULL, k, v);
        put_ttl(src, a, k, v, i % 5 == 0 ? 60000 : RC_TTL_NONE);
    }
    cr_assert_eq(rc_keyspace_set_default_ttl(a, 3600000), 0);

    rc_backup_info info[4];
    th_membuf s[4];
    char *want[4];
    s[0] = backup(src, 0, &info[0]);
    want[0] = th_dump(src);
    cr_assert_eq(info[0].since, 0);
    cr_assert_eq(info[0].until, atomic_load(&src->last_seq));

    /* 1: overwrites, deletes, a new keyspace, a key that expires */
    for (int i = 0; i < 300; i += 7) {
        snprintf(k, sizeof(k), "k%03d", i);
        th_put(src, NULL, k, "over");
        cr_assert_eq(rc_delete(src, a, k, strlen(k), NULL), 0);
    }
    rc_keyspace *b = ks_create(src, "beta");
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof(k), "b%03d", i);
        put_ttl(src, b, k, "bee", i % 2 ? 1000 : RC_TTL_NONE);
    }
    atomic_fetch_add(&fake_now, 2000); /* half of beta expires */
    s[1] = backup(src, info[0].until, &info[1]);
    want[1] = th_dump(src);
    cr_assert(info[1].tombstones >= 300 / 7, "deletes travel as tombstones");

    /* 2: drop alpha, more in beta, deletes in default */
    cr_assert_eq(rc_keyspace_drop(src, "alpha"), 0);
    for (int i = 0; i < 50; i++) {
        snprintf(k, sizeof(k), "b%03d", i);
        th_put(src, b, k, "bee2");
        snprintf(k, sizeof(k), "k%03d", i + 100);
        rc_delete(src, NULL, k, strlen(k), NULL);
    }
    s[2] = backup(src, info[1].until, &info[2]);
    want[2] = th_dump(src);

    /* 3: alpha again (a new id), overwrites, a TTL on default */
    rc_keyspace *a2 = ks_create(src, "alpha");
    for (int i = 0; i < 40; i++) {
        snprintf(k, sizeof(k), "k%03d", i);
        th_put(src, a2, k, "again");
        put_ttl(src, NULL, k, "ttl", 500000);
    }
    cr_assert_eq(rc_keyspace_set_default_ttl(rc_default_keyspace(src), 777), 0);
    s[3] = backup(src, info[2].until, &info[3]);
    want[3] = th_dump(src);

    for (int i = 0; i < 4; i++) {
        cr_assert_eq(verify(s[i].p, s[i].len), 0, "stream %d: %s", i, rc_last_error_message());
        rc_backup_info got;
        cr_assert_eq(load(dst, s[i].p, s[i].len, &got), 0, "load %d: %s", i,
                     rc_last_error_message());
        cr_assert_eq(got.until, info[i].until);
        cr_assert_eq(got.records, info[i].records);
        cr_assert_eq(got.tombstones, info[i].tombstones);
        cr_assert_geq(atomic_load(&dst->last_seq), info[i].until);
        char *have = th_dump(dst);
        cr_assert_str_eq(have, want[i], "after stream %d", i);
        free(have);
    }
    /* loading a stream again changes nothing */
    cr_assert_eq(load(dst, s[2].p, s[2].len, NULL), 0, "%s", rc_last_error_message());
    assert_same(src, dst, "after a repeated load");
    /* and the restored directory recovers to the same state */
    rc_close(dst);
    dst = open_db(ddir, false);
    assert_same(src, dst, "after reopening the target");
    cr_assert_eq(th_file_size(th_path(ddir, "load.tmp")), -1, "the staging file is gone");

    for (int i = 0; i < 4; i++) {
        free(s[i].p);
        free(want[i]);
    }
    rc_close(src);
    rc_close(dst);
    th_rmdir(sdir);
    th_rmdir(ddir);
}

Test(backup, counts_until_and_empty_incremental)
{
    char *dir = th_tmpdir();
    rc_db *db = open_db(dir, false);
    th_put(db, NULL, "a", "1");
    th_put(db, NULL, "b", "2");
    th_put(db, NULL, "a", "3");
    cr_assert_eq(rc_delete(db, NULL, "b", 1, NULL), 0);
    rc_backup_info info;
    th_membuf m = backup(db, 0, &info);
    cr_assert_eq(info.records, 1, "one live record (a=3)");
    cr_assert_eq(info.tombstones, 1, "one tombstone (b)");
    cr_assert_eq(info.until, 4);
    free(m.p);
    m = backup(db, info.until, &info);
    cr_assert_eq(info.records + info.tombstones, 0);
    cr_assert_eq(info.since, 4);
    cr_assert_eq(info.until, 4, "nothing new: the next incremental starts at the same seq");
    free(m.p);
    m = (th_membuf){0};
    cr_assert_eq(rc_backup(db, 5, th_mem_write, &m, NULL, NULL, &info), RC_EGAP,
                 "a since beyond the last seq is another database's");
    cr_assert_eq(m.len, 0);
    rc_close(db);
    th_rmdir(dir);
}

/* rc_backup_until: the database as it was at seq UNTIL, nothing newer. */
Test(backup, until_bounds_the_stream)
{
    char *dir = th_tmpdir();
    rc_db *db = open_db(dir, false);
    th_put(db, NULL, "a", "1"); /* 1 */
    th_put(db, NULL, "b", "2"); /* 2 */
    th_put(db, NULL, "a", "3"); /* 3 */
    th_put(db, NULL, "c", "4"); /* 4 */
    rc_backup_info info;
    th_membuf m = {0};
    cr_assert_eq(rc_backup_until(db, 0, 2, th_mem_write, &m, NULL, NULL, &info), 0, "%s",
                 rc_last_error_message());
    cr_assert_eq(info.until, 2, "bounded at 2");
    cr_assert_eq(info.records, 2, "a=1 and b=2: a's newer version and c are past the bound");
    char *dir2 = th_tmpdir();
    rc_db *copy = open_db(dir2, false);
    cr_assert_eq(load(copy, m.p, m.len, NULL), 0, "%s", rc_last_error_message());
    free(m.p);
    cr_assert(th_has(copy, NULL, "a", "1"), "a as it was at seq 2");
    cr_assert(th_has(copy, NULL, "b", "2"));
    cr_assert(!th_has(copy, NULL, "c", "4"), "c was written after the bound");
    /* the next increment, unbounded, brings the rest */
    m = (th_membuf){0};
    cr_assert_eq(rc_backup_until(db, 2, UINT64_MAX, th_mem_write, &m, NULL, NULL, &info), 0);
    cr_assert_eq(info.until, 4);
    cr_assert_eq(load(copy, m.p, m.len, NULL), 0, "%s", rc_last_error_message());
    free(m.p);
    assert_same(db, copy, "after the bounded and the unbounded increment");
    /* a bound below since: an empty stream that claims nothing */
    m = (th_membuf){0};
    cr_assert_eq(rc_backup_until(db, 3, 1, th_mem_write, &m, NULL, NULL, &info), 0);
    cr_assert_eq(info.records + info.tombstones, 0);
    cr_assert_eq(info.until, 3);
    free(m.p);
    rc_close(copy);
    rc_close(db);
    th_rmdir(dir2);
    th_rmdir(dir);
}

static rc_db *open_merging(const char *dir);

/* rc_backup_until after a merge dropped versions that later writes
 * superseded: the bound cannot be honoured without a hole (the version
 * live at the bound is gone), so the stream reaches the merge point
 * instead; what it claims (until), it holds. */
Test(backup, until_after_a_merge_never_leaves_a_hole)
{
    char *dir = th_tmpdir(), *dir2 = th_tmpdir();
    rc_db *db = open_merging(dir);
    char k[16], v[32];
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 400; i++) {
            snprintf(k, sizeof(k), "k%03d", i);
            snprintf(v, sizeof(v), "r%d-%d", round, i);
            th_put(db, NULL, k, v);
            if (round == 0 && i == 399)
                th_put(db, NULL, "keep", "401"); /* never superseded */
        }
    /* at seq 401 every key held its round-0 value; rounds 1 and 2
     * superseded those, and merge drops them: a stream cut at 401 would
     * hold "keep" alone and still claim 401 */
    cr_assert_eq(rc_merge(db), 0, "%s", rc_last_error_message());
    rc_backup_info info;
    th_membuf m = {0};
    cr_assert_eq(rc_backup_until(db, 0, 401, th_mem_write, &m, NULL, NULL, &info), 0, "%s",
                 rc_last_error_message());
    cr_assert_eq(info.until, 1201, "bounded below the merge point: cut at it (until %llu)",
                 (unsigned long long)info.until);
    rc_db *copy = open_merging(dir2);
    cr_assert_eq(load(copy, m.p, m.len, NULL), 0, "%s", rc_last_error_message());
    free(m.p);
    assert_same(db, copy, "a bounded stream cut at the merge point");
    /* above the merge point the bound holds again */
    th_put(db, NULL, "k000", "later-1"); /* 1202 */
    th_put(db, NULL, "k000", "later-2"); /* 1203 */
    m = (th_membuf){0};
    cr_assert_eq(rc_backup_until(db, 1201, 1202, th_mem_write, &m, NULL, NULL, &info), 0);
    cr_assert_eq(info.until, 1202);
    free(m.p);
    rc_close(copy);
    rc_close(db);
    th_rmdir(dir2);
    th_rmdir(dir);
}

/* ---- consistency under concurrent writes */

#define GEN_KEYS 16

typedef struct writer_arg {
    rc_db *db;
    _Atomic bool stop;
    _Atomic int gens;
} writer_arg;

static void *writer_main(void *p)
{
    writer_arg *w = p;
    char keys[GEN_KEYS][8], val[16];
    for (int i = 0; i < GEN_KEYS; i++)
        snprintf(keys[i], sizeof(keys[i]), "g%02d", i);
    for (int g = 1; !atomic_load(&w->stop); g++) {
        snprintf(val, sizeof(val), "%d", g);
        rc_op ops[GEN_KEYS];
        for (int i = 0; i < GEN_KEYS; i++)
            ops[i] = (rc_op){
                .kind = RC_OP_PUT, .key = keys[i], .klen = 3, .val = val, .vlen = strlen(val)};
        if (g % 5 == 0) /* deletes travel too: a generation may be "all absent" */
            for (int i = 0; i < GEN_KEYS; i++)
                ops[i].kind = RC_OP_DELETE;
        cr_assert_eq(rc_apply(w->db, ops, GEN_KEYS, NULL), 0);
        /* two single writes in order: a snapshot has "a" equal to "b" or one
         * ahead, never behind (it is a prefix of the history) */
        cr_assert_eq(rc_put(w->db, NULL, "a", 1, val, strlen(val), NULL), 0);
        cr_assert_eq(rc_put(w->db, NULL, "b", 1, val, strlen(val), NULL), 0);
        /* and a key written once per generation: a snapshot holds l1..lN
         * without a hole */
        char lk[16];
        snprintf(lk, sizeof(lk), "l%07d", g);
        cr_assert_eq(rc_put(w->db, NULL, lk, strlen(lk), val, strlen(val), NULL), 0);
        atomic_store(&w->gens, g);
    }
    return NULL;
}

static long value_of(rc_db *db, const char *k)
{
    rc_value v;
    int rc = rc_get(db, NULL, k, strlen(k), &v);
    cr_assert_eq(rc, 0, "%s: %s", k, rc_strerror(rc));
    if (getenv("RC_DEBUG_BACKUP"))
        fprintf(stderr, "DEBUG %s = '%.*s' (len %zu, seq %llu)\n", k, (int)v.len, (char *)v.data,
                v.len, (unsigned long long)v.seq);
    long n = strtol(v.data, NULL, 10);
    rc_value_free(&v);
    return n;
}

/* Every key of the set has one value, or all are absent; "a" is "b" or one
 * write ahead of it. */
static void assert_one_generation(rc_db *db, const char *when)
{
    long a = value_of(db, "a"), b = value_of(db, "b");
    cr_assert(a == b || a == b + 1, "%s: a=%ld b=%ld is not a prefix of the writes", when, a, b);
    rc_list_opts lo = {.prefix = "l", .prefix_len = 1};
    rc_list *l;
    cr_assert_eq(rc_list_keys(db, NULL, &lo, &l), 0);
    long n = (long)l->count, last = 0;
    if (n > 0)
        last = strtol((char *)l->items[n - 1].key + 1, NULL, 10);
    rc_list_free(l);
    cr_assert_eq(last, n, "%s: the once-written keys have a hole (%ld keys, last l%ld)", when, n,
                 last);
    cr_assert(b == n || b == n + 1, "%s: b=%ld but %ld once-written keys", when, b, n);
    char first[16] = "", k[8];
    for (int i = 0; i < GEN_KEYS; i++) {
        snprintf(k, sizeof(k), "g%02d", i);
        rc_value v;
        int rc = rc_get(db, NULL, k, 3, &v);
        char got[16] = "-";
        if (rc == 0)
            snprintf(got, sizeof(got), "%.*s", (int)v.len, (char *)v.data);
        else
            cr_assert_eq(rc, RC_ENOTFOUND);
        rc_value_free(&v);
        if (i == 0)
            strcpy(first, got);
        cr_assert_str_eq(got, first, "%s: key %s is from another generation", when, k);
    }
}

Test(backup, snapshot_is_consistent_during_writes)
{
    char *sdir = th_tmpdir();
    rc_db *src = open_db(sdir, false);
    th_put(src, NULL, "static", "x");
    /* before the writer starts: written after, they could overwrite its
     * generations (seen on a loaded machine) */
    th_put(src, NULL, "a", "0");
    th_put(src, NULL, "b", "0");
    writer_arg w = {.db = src};
    pthread_t t;
    pthread_create(&t, NULL, writer_main, &w);
    while (atomic_load(&w.gens) < 50)
        usleep(100);
    /* a chain: full, then incrementals, each taken while the writer runs */
    char *ddir = th_tmpdir();
    rc_db *dst = open_db(ddir, false);
    uint64_t since = 0;
    for (int round = 0; round < 12; round++) {
        rc_backup_info info;
        th_membuf m = backup(src, since, &info);
        /* alone, onto an empty target, a full one is a moment too */
        char *solo = th_tmpdir();
        if (round == 0) {
            rc_db *one = open_db(solo, false);
            cr_assert_eq(load(one, m.p, m.len, NULL), 0, "%s", rc_last_error_message());
            assert_one_generation(one, "a full backup");
            rc_close(one);
        }
        th_rmdir(solo);
        cr_assert_eq(load(dst, m.p, m.len, NULL), 0, "round %d: %s", round,
                     rc_last_error_message());
        assert_one_generation(dst, "a restored chain");
        cr_assert(th_has(dst, NULL, "static", "x"));
        since = info.until;
        free(m.p);
        /* the next backup is taken while the writer has moved on, however
         * the scheduler treats it on a loaded machine */
        int gens = atomic_load(&w.gens);
        while (atomic_load(&w.gens) == gens)
            usleep(100);
    }
    atomic_store(&w.stop, true);
    pthread_join(t, NULL);
    cr_assert_gt(atomic_load(&w.gens), 60, "the writer kept writing during the backups");
    rc_backup_info info;
    th_membuf m = backup(src, since, &info);
    cr_assert_eq(load(dst, m.p, m.len, NULL), 0);
    assert_same(src, dst, "the chain after the writer stopped");
    free(m.p);
    rc_close(src);
    rc_close(dst);
    th_rmdir(sdir);
    th_rmdir(ddir);
}

/* ---- damaged streams */

/* Offsets of the frame headers of a stream (the last one is the trailer). */
static size_t frame_offsets(const th_membuf *m, size_t *offs, size_t max)
{
    size_t n = 0, pos = FMT_STREAM_HEADER_LEN;
    while (pos + 17 <= m->len && n < max) {
        offs[n++] = pos;
        uint32_t stored = (uint32_t)m->p[pos + 1] | (uint32_t)m->p[pos + 2] << 8 |
                          (uint32_t)m->p[pos + 3] << 16 | (uint32_t)m->p[pos + 4] << 24;
        pos += 17 + stored;
    }
    cr_assert_eq(pos, m->len, "frames tile the stream");
    return n;
}

static void refused_unchanged(rc_db *dst, const char *ddir, const uint8_t *p, size_t len,
                              const char *what)
{
    char *before = th_dump(dst);
    uint64_t last = atomic_load(&dst->last_seq);
    int vr = verify(p, len);
    cr_assert_neq(vr, 0, "verify accepted %s", what);
    int lr = load(dst, p, len, NULL);
    cr_assert_neq(lr, 0, "load accepted %s", what);
    cr_assert(lr == RC_ECORRUPT || lr == RC_EVERSION, "%s: %s", what, rc_strerror(lr));
    cr_assert_eq(atomic_load(&dst->last_seq), last, "%s: nothing was appended", what);
    char *after = th_dump(dst);
    cr_assert_str_eq(before, after, "%s changed the target", what);
    cr_assert_eq(th_file_size(th_path(ddir, "load.tmp")), -1, "%s left load.tmp", what);
    free(before);
    free(after);
}

Test(backup, truncated_or_flipped_streams_are_refused)
{
    char *sdir = th_tmpdir(), *ddir = th_tmpdir();
    rc_db *src = open_db(sdir, false), *dst = open_db(ddir, false);
    th_put(src, NULL, "base", "1");
    rc_backup_info info;
    th_membuf base = backup(src, 0, &info);
    cr_assert_eq(load(dst, base.p, base.len, NULL), 0);
    /* ~12 MiB of barely compressible values: several frames */
    char k[16];
    uint8_t *val = malloc(4096);
    uint32_t x = 12345;
    for (int i = 0; i < 3000; i++) {
        for (int j = 0; j < 4096; j++) {
            x = x * 1103515245u + 12345u;
            val[j] = (uint8_t)(x >> 24);
        }
        snprintf(k, sizeof(k), "big%04d", i);
        cr_assert_eq(rc_put(src, NULL, k, strlen(k), val, 4096, NULL), 0);
    }
    free(val);
    th_membuf m = backup(src, info.until, &info);
    size_t offs[64];
    size_t nf = frame_offsets(&m, offs, 64);
    cr_assert_geq(nf, 4, "at least 3 records frames and the trailer (got %zu)", nf);

    char what[64];
    refused_unchanged(dst, ddir, m.p, 0, "an empty stream");
    refused_unchanged(dst, ddir, m.p, 20, "a cut header");
    for (size_t i = 0; i < nf; i++) {
        snprintf(what, sizeof(what), "a cut at frame %zu", i);
        refused_unchanged(dst, ddir, m.p, offs[i], what);
        snprintf(what, sizeof(what), "a cut inside frame header %zu", i);
        refused_unchanged(dst, ddir, m.p, offs[i] + 9, what);
        size_t end = i + 1 < nf ? offs[i + 1] : m.len;
        snprintf(what, sizeof(what), "a cut inside frame %zu", i);
        refused_unchanged(dst, ddir, m.p, offs[i] + 17 + (end - offs[i] - 17) / 2, what);
    }
    refused_unchanged(dst, ddir, m.p, m.len - 1, "a stream missing its last byte");

    size_t flips[] = {
        10,       offs[0] + 2, offs[0] + 12, offs[0] + 17 + 1000, offs[1] + 5000, offs[nf - 1] + 20,
        m.len - 1};
    for (size_t i = 0; i < sizeof(flips) / sizeof(flips[0]); i++) {
        m.p[flips[i]] ^= 0x10;
        snprintf(what, sizeof(what), "a flipped byte at %zu", flips[i]);
        refused_unchanged(dst, ddir, m.p, m.len, what);
        m.p[flips[i]] ^= 0x10;
    }
    /* a byte after the trailer */
    th_mem_write(&m, "x", 1);
    refused_unchanged(dst, ddir, m.p, m.len, "a byte after the trailer");
    m.len--;
    /* frames out of order: swap the first two records frames' positions by
     * splicing a stream that repeats frame 0 */
    th_membuf dup = {0};
    th_mem_write(&dup, m.p, offs[1]);
    th_mem_write(&dup, m.p + offs[0], offs[1] - offs[0]);
    th_mem_write(&dup, m.p + offs[1], m.len - offs[1]);
    refused_unchanged(dst, ddir, dup.p, dup.len, "a repeated frame");
    free(dup.p);

    /* the intact stream still loads */
    cr_assert_eq(verify(m.p, m.len), 0);
    cr_assert_eq(load(dst, m.p, m.len, NULL), 0, "%s", rc_last_error_message());
    assert_same(src, dst, "the intact stream");
    free(base.p);
    free(m.p);
    rc_close(src);
    rc_close(dst);
    th_rmdir(sdir);
    th_rmdir(ddir);
}

/* ---- refusals */

Test(backup, gap_is_refused)
{
    char *sdir = th_tmpdir(), *ddir = th_tmpdir();
    rc_db *src = open_db(sdir, false), *dst = open_db(ddir, false);
    th_put(src, NULL, "a", "1");
    rc_backup_info i0, i1, i2;
    th_membuf s0 = backup(src, 0, &i0);
    th_put(src, NULL, "b", "2");
    th_membuf s1 = backup(src, i0.until, &i1);
    th_put(src, NULL, "c", "3");
    th_membuf s2 = backup(src, i1.until, &i2);

    cr_assert_eq(load(dst, s1.p, s1.len, NULL), RC_EIDENTITY,
                 "an incremental onto an empty db: another database");
    cr_assert_eq(load(dst, s0.p, s0.len, NULL), 0);
    rc_backup_info refused;
    cr_assert_eq(load(dst, s2.p, s2.len, &refused), RC_EGAP);
    cr_assert_eq(refused.since, i1.until, "the refused stream's since is reported");
    char want[64];
    snprintf(want, sizeof(want), "after seq %llu", (unsigned long long)i1.until);
    cr_assert(strstr(rc_last_error_message(), want), "message: %s", rc_last_error_message());
    cr_assert_eq(th_has(dst, NULL, "c", "3"), 0, "nothing of the refused stream applied");
    cr_assert_eq(load(dst, s1.p, s1.len, NULL), 0);
    cr_assert_eq(load(dst, s2.p, s2.len, NULL), 0);
    assert_same(src, dst, "the chain in order");
    free(s0.p);
    free(s1.p);
    free(s2.p);
    rc_close(src);
    rc_close(dst);
    th_rmdir(sdir);
    th_rmdir(ddir);
}

Test(backup, an_older_incremental_again_resurrects_nothing)
{
    char *sdir = th_tmpdir(), *ddir = th_tmpdir();
    rc_db *src = open_db(sdir, false), *dst = open_db(ddir, false);
    th_put(src, NULL, "base", "1");
    rc_backup_info i0, i1, i2;
    th_membuf s0 = backup(src, 0, &i0);
    th_put(src, NULL, "k", "old");
    th_membuf s1 = backup(src, i0.until, &i1);
    cr_assert_eq(rc_delete(src, NULL, "k", 1, NULL), 0);
    th_membuf s2 = backup(src, i1.until, &i2);
    cr_assert_eq(load(dst, s0.p, s0.len, NULL), 0);
    cr_assert_eq(load(dst, s1.p, s1.len, NULL), 0);
    cr_assert_eq(load(dst, s2.p, s2.len, NULL), 0);
    cr_assert_eq(th_has(dst, NULL, "k", "old"), 0);
    /* s1 starts below the target's last seq: allowed, and already reflected */
    cr_assert_eq(load(dst, s1.p, s1.len, NULL), 0, "%s", rc_last_error_message());
    cr_assert_eq(th_has(dst, NULL, "k", "old"), 0, "the delete of s2 still holds");
    rc_close(dst);
    dst = open_db(ddir, false);
    cr_assert_eq(th_has(dst, NULL, "k", "old"), 0, "also after a reopen");
    assert_same(src, dst, "after the older stream again");
    free(s0.p);
    free(s1.p);
    free(s2.p);
    rc_close(src);
    rc_close(dst);
    th_rmdir(sdir);
    th_rmdir(ddir);
}

Test(backup, full_stream_needs_an_empty_database)
{
    char *sdir = th_tmpdir();
    rc_db *src = open_db(sdir, false);
    th_put(src, NULL, "a", "1");
    rc_backup_info info;
    th_membuf s = backup(src, 0, &info);
    for (int variant = 0; variant < 4; variant++) {
        char *ddir = th_tmpdir();
        rc_db *dst = open_db(ddir, false);
        if (variant == 1)
            th_put(dst, NULL, "mine", "x");
        if (variant == 2)
            ks_create(dst, "other");
        if (variant == 3) { /* empty now, but with history */
            th_put(dst, NULL, "gone", "x");
            cr_assert_eq(rc_delete(dst, NULL, "gone", 4, NULL), 0);
        }
        int rc = load(dst, s.p, s.len, NULL);
        if (variant == 0) {
            cr_assert_eq(rc, 0, "%s", rc_last_error_message());
            cr_assert(th_has(dst, NULL, "a", "1"));
        } else {
            cr_assert_eq(rc, RC_ENOTEMPTY, "variant %d: %s", variant, rc_strerror(rc));
            cr_assert_eq(th_has(dst, NULL, "a", "1"), 0);
        }
        rc_close(dst);
        th_rmdir(ddir);
    }
    free(s.p);
    rc_close(src);
    th_rmdir(sdir);
}

Test(backup, since_below_the_tombstone_horizon_is_refused)
{
    char *dir = th_tmpdir();
    rc_db *db = open_db(dir, false);
    for (int i = 0; i < 10; i++)
        th_put(db, NULL, "k", "v");
    atomic_store(&db->tombstone_horizon, 7); /* as if merge dropped a tombstone at 7 */
    th_membuf m = {0};
    rc_backup_info info;
    cr_assert_eq(rc_backup(db, 3, th_mem_write, &m, NULL, NULL, &info), RC_EHORIZON);
    cr_assert_eq(m.len, 0, "nothing was written");
    const char *msg = rc_last_error_message();
    cr_assert(strstr(msg, "3") && strstr(msg, "7") && strstr(msg, "full backup"), "%s", msg);
    cr_assert_eq(rc_backup(db, 7, th_mem_write, &m, NULL, NULL, &info), 0, "since == horizon");
    m.len = 0;
    cr_assert_eq(rc_backup(db, 0, th_mem_write, &m, NULL, NULL, &info), 0, "a full backup");
    free(m.p);
    rc_close(db);
    th_rmdir(dir);
}

/* ---- read-only handles and write failures */

static int failing_write(void *ctx, const void *buf, size_t len)
{
    (void)buf;
    (void)len;
    return --*(int *)ctx < 0 ? -1 : 0;
}

Test(backup, read_only_handle_on_a_live_directory)
{
    char *sdir = th_tmpdir(), *ddir = th_tmpdir();
    rc_db *rw = open_db(sdir, false);
    rc_keyspace *ks = ks_create(rw, "users");
    char k[16];
    for (int i = 0; i < 2000; i++) {
        snprintf(k, sizeof(k), "u%d", i);
        th_put(rw, ks, k, "profile");
    }
    rc_db *ro = open_db(sdir, true);
    char *at_open = th_dump(ro);
    th_put(rw, ks, "u1", "changed after the read-only open");
    rc_backup_info info;
    th_membuf m = backup(ro, 0, &info);
    th_put(rw, ks, "u2", "changed during");
    cr_assert_eq(info.records, 2000 + 1, "the keys and the catalogue record");
    rc_db *dst = open_db(ddir, false);
    cr_assert_eq(load(dst, m.p, m.len, NULL), 0, "%s", rc_last_error_message());
    char *restored = th_dump(dst);
    cr_assert_str_eq(restored, at_open);
    free(restored);
    free(at_open);
    free(m.p);

    /* the writer's merge raises the horizon after the read-only open */
    uint8_t hz[FMT_HORIZON_LEN];
    fmt_horizon_encode(hz, 100);
    FILE *f = fopen(th_path(sdir, "HORIZON"), "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(hz, 1, sizeof(hz), f), sizeof(hz));
    fclose(f);
    th_membuf h = {0};
    cr_assert_eq(rc_backup(ro, 50, th_mem_write, &h, NULL, NULL, &info), RC_EHORIZON,
                 "the read-only handle re-reads HORIZON");
    cr_assert_eq(rc_backup(ro, 100, th_mem_write, &h, NULL, NULL, &info), 0);
    free(h.p);

    int budget = 1; /* the header goes, the first frame fails */
    cr_assert_eq(rc_backup(ro, 0, failing_write, &budget, NULL, NULL, &info), RC_EIO);
    cr_assert_eq(load(ro, NULL, 0, NULL), RC_EREADONLY);
    rc_close(ro);
    rc_close(rw);
    rc_close(dst);
    th_rmdir(sdir);
    th_rmdir(ddir);
}

/* ---- a round trip with timing (a figure, not an assertion) */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void count_progress(void *ctx, uint64_t done, uint64_t total)
{
    uint64_t *last = ctx;
    cr_assert(total == 0 || done <= total);
    *last = done;
}

Test(backup, round_trip_200k_keys, .timeout = 1800)
{
    const int n = 200000;
    char *sdir = th_tmpdir(), *ddir = th_tmpdir();
    rc_options o;
    th_options(&o);
    o.segment_bytes = 16u << 20;
    rc_db *src, *dst;
    cr_assert_eq(rc_open(sdir, &o, &src), 0);
    cr_assert_eq(rc_open(ddir, &o, &dst), 0);
    char k[32], v[128];
    for (int i = 0; i < n; i += 1000) {
        rc_op ops[1000];
        char keys[1000][24];
        for (int j = 0; j < 1000; j++) {
            snprintf(keys[j], sizeof(keys[j]), "key%012d", i + j);
            ops[j] = (rc_op){.kind = RC_OP_PUT, .key = keys[j], .klen = 15, .val = v, .vlen = 100};
        }
        snprintf(v, sizeof(v), "%0100d", i);
        cr_assert_eq(rc_apply(src, ops, 1000, NULL), 0);
    }
    th_membuf m = {0};
    rc_backup_info info;
    uint64_t done = 0;
    double t0 = now_s();
    cr_assert_eq(rc_backup(src, 0, th_mem_write, &m, count_progress, &done, &info), 0);
    double t1 = now_s();
    cr_assert_eq(info.records, (uint64_t)n);
    cr_assert_eq(done, (uint64_t)n);
    th_membuf in = {.p = m.p, .len = m.len};
    cr_assert_eq(rc_load(dst, th_mem_read, &in, count_progress, &done, &info), 0, "%s",
                 rc_last_error_message());
    double t2 = now_s();
    double raw_mb = (double)n * (15 + 100) / 1e6;
    printf("backup round trip, %d keys (%.1f MB of keys+values, stream %.1f MB): dump %.2f s "
           "(%.0f MB/s), load %.2f s (%.0f MB/s)\n",
           n, raw_mb, (double)m.len / 1e6, t1 - t0, raw_mb / (t1 - t0), t2 - t1,
           raw_mb / (t2 - t1));
    rc_stats a, b;
    rc_stats_db(src, &a);
    rc_stats_db(dst, &b);
    cr_assert_eq(b.live_keys, (uint64_t)n);
    cr_assert_eq(b.live_value_bytes, a.live_value_bytes);
    for (int i = 0; i < n; i += 997) {
        snprintf(k, sizeof(k), "key%012d", i);
        rc_value x;
        cr_assert_eq(rc_get(dst, NULL, k, 15, &x), 0);
        snprintf(v, sizeof(v), "%0100d", i / 1000 * 1000);
        cr_assert_eq(x.len, 100);
        cr_assert_eq(memcmp(x.data, v, 100), 0);
        rc_value_free(&x);
    }
    free(m.p);
    rc_close(src);
    rc_close(dst);
    th_rmdir(sdir);
    th_rmdir(ddir);
}

/* ---- merge, dropped keyspaces, crashes */

static rc_db *open_merging(const char *dir)
{
    rc_options o;
    th_options(&o);
    o.tombstone_retention_ms = 0; /* merge may drop every tombstone */
    o.merge_rate_bytes = 0;
    rc_db *db;
    cr_assert_eq(rc_open(dir, &o, &db), 0, "open %s: %s", dir, rc_last_error_message());
    return db;
}

Test(backup, merges_on_both_sides_and_the_real_horizon)
{
    char *sdir = th_tmpdir(), *ddir = th_tmpdir(), *fdir = th_tmpdir();
    rc_db *src = open_merging(sdir), *dst = open_merging(ddir);
    char k[16], v[32];
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 400; i++) {
            snprintf(k, sizeof(k), "k%03d", i);
            snprintf(v, sizeof(v), "r%d-%d", round, i);
            th_put(src, NULL, k, v);
        }
    rc_backup_info i0, i1, i2;
    th_membuf s0 = backup(src, 0, &i0);
    cr_assert_eq(load(dst, s0.p, s0.len, NULL), 0);
    for (int i = 0; i < 400; i += 3) {
        snprintf(k, sizeof(k), "k%03d", i);
        cr_assert_eq(rc_delete(src, NULL, k, strlen(k), NULL), 0);
    }
    th_membuf s1 = backup(src, i0.until, &i1);
    cr_assert_eq(load(dst, s1.p, s1.len, NULL), 0);

    cr_assert_eq(rc_merge(src), 0, "%s", rc_last_error_message());
    rc_stats st;
    rc_stats_db(src, &st);
    cr_assert_gt(st.tombstone_horizon, i0.until, "merge dropped the deletes made after s0");
    th_membuf m = {0};
    rc_backup_info info;
    cr_assert_eq(rc_backup(src, i0.until, th_mem_write, &m, NULL, NULL, &info), RC_EHORIZON,
                 "s0 + this incremental would resurrect the dropped deletes");
    free(m.p);

    th_put(src, NULL, "after-merge", "x");
    th_membuf s2 = backup(src, i1.until, &i2); /* at or above the horizon: fine */
    cr_assert_eq(load(dst, s2.p, s2.len, NULL), 0);
    assert_same(src, dst, "incrementals across a source merge");
    cr_assert_eq(rc_merge(dst), 0, "%s", rc_last_error_message());
    assert_same(src, dst, "after merging the target");
    rc_close(dst);
    dst = open_merging(ddir);
    assert_same(src, dst, "after reopening the merged target");

    /* a full backup after the merge restores the same state */
    th_membuf full = backup(src, 0, &info);
    rc_db *fresh = open_merging(fdir);
    cr_assert_eq(load(fresh, full.p, full.len, NULL), 0);
    assert_same(src, fresh, "a full backup after a merge");
    free(s0.p);
    free(s1.p);
    free(s2.p);
    free(full.p);
    rc_close(fresh);
    rc_close(src);
    rc_close(dst);
    th_rmdir(sdir);
    th_rmdir(ddir);
    th_rmdir(fdir);
}

Test(backup, dropped_keyspaces_do_not_travel)
{
    char *dir = th_tmpdir();
    rc_db *db = open_db(dir, false);
    rc_keyspace *gone = ks_create(db, "gone");
    for (int i = 0; i < 100; i++) {
        char k[16];
        snprintf(k, sizeof(k), "g%d", i);
        th_put(db, gone, k, "v");
    }
    cr_assert_eq(rc_keyspace_drop(db, "gone"), 0);
    th_put(db, NULL, "kept", "v");
    rc_backup_info info;
    th_membuf m = backup(db, 0, &info);
    cr_assert_eq(info.records, 2, "the key and the catalogue record of the drop, got %llu",
                 (unsigned long long)info.records);
    cr_assert_eq(info.tombstones, 0);
    free(m.p);
    rc_close(db);
    th_rmdir(dir);
}

/* A load killed at a random moment leaves the target as it was or wholly
 * loaded, never in between, and running it again finishes the job. */
Test(backup, killed_load_is_all_or_nothing_and_reruns, .timeout = 1800)
{
    char *sdir = th_tmpdir(), *rdir = th_tmpdir();
    rc_db *src = open_db(sdir, false);
    th_put(src, NULL, "base", "1");
    rc_backup_info info;
    th_membuf base = backup(src, 0, &info);
    uint8_t val[1024];
    for (int i = 0; i < 3000; i++) {
        char k[16];
        snprintf(k, sizeof(k), "c%04d", i);
        for (size_t j = 0; j < sizeof(val); j++)
            val[j] = (uint8_t)(i * 31 + j * 7 + (j >> 5));
        cr_assert_eq(rc_put(src, NULL, k, strlen(k), val, sizeof(val), NULL), 0);
    }
    cr_assert_eq(rc_delete(src, NULL, "base", 4, NULL), 0);
    th_membuf inc = backup(src, info.until, &info);

    /* the two acceptable states, and how long a load takes */
    rc_db *ref = open_db(rdir, false);
    cr_assert_eq(load(ref, base.p, base.len, NULL), 0);
    char *before = th_dump(ref);
    double t0 = now_s();
    cr_assert_eq(load(ref, inc.p, inc.len, NULL), 0);
    double took = now_s() - t0;
    char *after = th_dump(ref);
    rc_close(ref);

    int saw_before = 0, saw_after = 0;
    srand(7);
    for (int round = 0; round < 10; round++) {
        char *ddir = th_tmpdir();
        rc_db *dst = open_db(ddir, false);
        cr_assert_eq(load(dst, base.p, base.len, NULL), 0);
        rc_close(dst);
        int go[2];
        cr_assert_eq(pipe(go), 0);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
            rc_db *c = open_db(ddir, false);
            th_membuf in = {.p = inc.p, .len = inc.len};
            if (write(go[1], "g", 1) != 1) /* the load starts now */
                _exit(2);
            rc_load(c, th_mem_read, &in, NULL, NULL, &info);
            _exit(0); /* no close: as if the process died right after */
        }
        char byte;
        cr_assert_eq(read(go[0], &byte, 1), 1);
        close(go[0]);
        close(go[1]);
        useconds_t delay = (useconds_t)(took * 0.7e6 * (double)(rand() % 1000) / 1000.0);
        usleep(delay);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        dst = open_db(ddir, false);
        char *now = th_dump(dst);
        if (strcmp(now, before) == 0)
            saw_before++;
        else if (strcmp(now, after) == 0)
            saw_after++;
        else
            cr_assert_fail("round %d (kill after %u us): the target is half loaded", round,
                           (unsigned)delay);
        free(now);
        cr_assert_eq(load(dst, inc.p, inc.len, NULL), 0, "rerun: %s", rc_last_error_message());
        now = th_dump(dst);
        cr_assert_str_eq(now, after, "round %d: the rerun completes the load", round);
        free(now);
        rc_close(dst);
        th_rmdir(ddir);
    }
    cr_log_info("killed loads: %d left nothing, %d had finished", saw_before, saw_after);
    free(before);
    free(after);
    free(base.p);
    free(inc.p);
    rc_close(src);
    th_rmdir(sdir);
    th_rmdir(rdir);
}

/* A stream encoded by hand: keyspace ids that would make the target
 * unopenable (arrays are indexed by id at open) are refused. */
static th_membuf hand_stream(uint32_t ks_id, bool in_catalog)
{
    uint8_t raw[256], val[FMT_CATALOG_VALUE_LEN];
    fmt_catalog_entry e = {.dropped = false, .ks_id = ks_id};
    fmt_catalog_encode(val, &e);
    fmt_record r = {.seq = 1,
                    .ks = in_catalog ? FMT_KS_CATALOG : ks_id,
                    .key = (const uint8_t *)"evil",
                    .klen = 4,
                    .val = in_catalog ? val : (const uint8_t *)"v",
                    .vlen = in_catalog ? sizeof(val) : 1};
    size_t len = fmt_record_encode(raw, sizeof(raw), &r);
    cr_assert_gt(len, 0);
    th_membuf m = {0};
    fmt_stream_writer w;
    uint8_t head[FMT_STREAM_HEADER_LEN], trailer[FMT_STREAM_TRAILER_FRAME_LEN];
    fmt_stream_header h = {.id = {1}, .until = 1};
    th_mem_write(&m, head, fmt_stream_writer_init(&w, &h, head));
    uint8_t *frame = malloc(fmt_stream_frame_bound(len));
    size_t flen;
    cr_assert_eq(
        fmt_stream_frame_encode(&w, raw, len, 1, frame, fmt_stream_frame_bound(len), &flen),
        FMT_OK);
    th_mem_write(&m, frame, flen);
    free(frame);
    cr_assert_eq(fmt_stream_trailer_encode(&w, 1, trailer), FMT_OK);
    th_mem_write(&m, trailer, sizeof(trailer));
    return m;
}

Test(backup, absurd_keyspace_ids_are_refused)
{
    char *dir = th_tmpdir();
    for (int variant = 0; variant < 2; variant++) {
        rc_db *db = open_db(dir, false);
        th_membuf m = hand_stream(1u << 30, variant == 1);
        cr_assert_eq(verify(m.p, m.len), 0, "the stream itself is well formed");
        cr_assert_eq(load(db, m.p, m.len, NULL), RC_ELIMIT, "variant %d", variant);
        cr_assert_eq(atomic_load(&db->last_seq), 0);
        free(m.p);
        m = hand_stream(5, variant == 1); /* a sane id loads */
        cr_assert_eq(load(db, m.p, m.len, NULL), 0, "%s", rc_last_error_message());
        free(m.p);
        rc_close(db);
        db = open_db(dir, false); /* and the directory opens */
        rc_close(db);
        th_rmdir(dir);
        dir = th_tmpdir();
    }
    th_rmdir(dir);
}

/* The seqs a database handed out stay handed out across a reopen, even when
 * no record holds the last of them any more: merge dropped the trailing
 * deletes (the source), or the full stream never carried them (a copy loaded
 * from it). Otherwise the reopened copy would continue below the source's
 * until, and the source's next incremental (since = until), or its refusal
 * as below the horizon, would never line up: a replica would re-clone for
 * ever. */
Test(backup, last_seq_survives_a_reopen_after_trailing_deletes_were_merged_away)
{
    char *sdir = th_tmpdir(), *ddir = th_tmpdir();
    rc_db *src = open_merging(sdir);
    char k[16];
    for (int i = 0; i < 50; i++) {
        snprintf(k, sizeof(k), "k%03d", i);
        th_put(src, NULL, k, "value");
    }
    for (int i = 0; i < 50; i += 2) {
        snprintf(k, sizeof(k), "k%03d", i);
        cr_assert_eq(rc_delete(src, NULL, k, strlen(k), NULL), 0);
    }
    uint64_t last = rc_last_seq(src);
    cr_assert_eq(rc_merge(src), 0, "%s", rc_last_error_message());
    rc_stats st;
    rc_stats_db(src, &st);
    cr_assert_eq(st.tombstone_horizon, last, "the merge dropped the trailing deletes");
    rc_backup_info info;
    th_membuf full = backup(src, 0, &info);
    cr_assert_eq(info.until, last, "until %llu, last %llu, now %llu",
                 (unsigned long long)info.until, (unsigned long long)last,
                 (unsigned long long)rc_last_seq(src));
    rc_close(src);
    src = open_merging(sdir);
    cr_assert_eq(rc_last_seq(src), last, "the merged source continues at its own last seq");

    rc_db *dst = open_merging(ddir);
    cr_assert_eq(load(dst, full.p, full.len, NULL), 0);
    cr_assert_eq(rc_last_seq(dst), last);
    rc_close(dst);
    dst = open_merging(ddir);
    cr_assert_eq(rc_last_seq(dst), last, "the copy continues at the stream's until after a reopen");
    /* and the source's next incremental applies to the reopened copy */
    th_put(src, NULL, "after", "x");
    th_membuf inc = backup(src, info.until, &info);
    cr_assert_eq(load(dst, inc.p, inc.len, NULL), 0, "%s", rc_last_error_message());
    assert_same(src, dst, "after the incremental");
    free(full.p);
    free(inc.p);
    rc_close(src);
    rc_close(dst);
    th_rmdir(sdir);
    th_rmdir(ddir);
}
