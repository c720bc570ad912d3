/* Recovery with several loading threads (rc_options.recovery_threads): the
 * keydirs and stats after a reopen must not depend on the thread count, must
 * equal what a scan of every segment (the single-threaded path) rebuilds, and
 * must match a model of the writes. The history is built to make a wrong
 * merge visible: keys overwritten, deleted and rewritten across many small
 * segments with hints, batches mixing three keyspaces (so hints name several
 * keyspaces) next to runs of one keyspace (the path that sizes shard tables
 * up front), compressed values, TTLs that expire while the database is
 * closed, a dropped keyspace whose records stay on disk, and a merge whose
 * outputs hold older records than the segments written after them. */
#include "fault.h"
#include "helpers.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NKS 3     /* "default", "a", "b" */
#define NKEYS 500 /* keys per keyspace */
#define SHORT_TTL 1000
#define LONG_TTL 100000000

static char *dir;
static int64_t clock_now = 1700000000000;

static int64_t test_clock(void *ctx)
{
    (void)ctx;
    return clock_now;
}

static void setup(void)
{
    dir = th_tmpdir();
    clock_now = 1700000000000;
}

static void teardown(void)
{
    th_rmdir(dir);
}

TestSuite(recovery_parallel, .init = setup, .fini = teardown);

static const char *ks_names[NKS] = {"default", "a", "b"};

/* What the database must hold. */
typedef struct model_key {
    bool present;
    uint32_t round; /* the value is derived from (round, ks, key) */
    int64_t expires_at_ms;
} model_key;

static model_key model[NKS][NKEYS];

static rc_db *open_db(uint32_t threads, bool hints)
{
    rc_options o;
    th_options(&o);
    o.segment_bytes = 8192; /* many segments, many hints */
    o.ttl_sweep_ms = 0;
    o.clock_ms = test_clock;
    o.recovery_threads = threads;
    o.write_hints = hints;
    rc_db *db;
    int rc = rc_open(dir, &o, &db);
    cr_assert_eq(rc, 0, "open: %s", rc_last_error_message());
    return db;
}

static rc_keyspace *ks_of(rc_db *db, int k)
{
    if (k == 0)
        return rc_default_keyspace(db);
    rc_keyspace *ks;
    cr_assert_eq(rc_keyspace_open(db, ks_names[k], RC_KS_CREATE, &ks), 0);
    return ks;
}

static void key_name(char *buf, size_t cap, int i)
{
    snprintf(buf, cap, "key-%05d", i * 7919 % 100003);
}

/* Every fifth value is long and compressible (stored compressed). */
static size_t value_of(char *buf, size_t cap, uint32_t round, int k, int i)
{
    int n = snprintf(buf, cap, "v%u.%d.%d|", round, k, i);
    if (round % 5 == 0) {
        memset(buf + n, 'x', 700);
        n += 700;
        buf[n] = 0;
    }
    return (size_t)n;
}

static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* N batches of 1..5 ops on random keys of the keyspaces in KS_MASK. */
static void churn(rc_db *db, int batches, unsigned ks_mask, uint32_t *round)
{
    enum { MAXB = 5 };
    char keys[MAXB][32], vals[MAXB][800];
    for (int b = 0; b < batches; b++) {
        rc_op ops[MAXB];
        memset(ops, 0, sizeof(ops));
        int n = 1 + (int)(next_rand() % MAXB), used = 0;
        struct {
            int k, i;
            uint32_t r;
            int64_t exp;
            bool del;
        } plan[MAXB];
        for (int j = 0; j < n; j++) {
            int k;
            do
                k = (int)(next_rand() % NKS);
            while (!(ks_mask & (1u << k)));
            int i = (int)(next_rand() % NKEYS);
            bool dup = false;
            for (int q = 0; q < used; q++)
                dup |= plan[q].k == k && plan[q].i == i;
            if (dup)
                continue;
            unsigned what = (unsigned)(next_rand() % 100);
            rc_op *op = &ops[used];
            op->ks = ks_of(db, k);
            key_name(keys[used], sizeof(keys[used]), i);
            op->key = keys[used];
            op->klen = strlen(keys[used]);
            plan[used].k = k;
            plan[used].i = i;
            plan[used].del = false;
            plan[used].exp = 0;
            if (what < 20 && model[k][i].present) {
                op->kind = RC_OP_DELETE;
                plan[used].del = true;
            } else {
                uint32_t r = ++*round;
                op->kind = RC_OP_PUT;
                op->val = vals[used];
                op->vlen = value_of(vals[used], sizeof(vals[used]), r, k, i);
                op->ttl_ms = what < 32 ? SHORT_TTL : what < 37 ? LONG_TTL : RC_TTL_NONE;
                plan[used].r = r;
                if (op->ttl_ms > 0)
                    plan[used].exp = clock_now + op->ttl_ms;
            }
            used++;
        }
        size_t failed;
        int rc = rc_apply(db, ops, (size_t)used, &failed);
        cr_assert_eq(rc, 0, "apply: %d (%s)", rc, rc_last_error_message());
        for (int j = 0; j < used; j++) {
            model_key *m = &model[plan[j].k][plan[j].i];
            if (plan[j].del) {
                m->present = false;
            } else {
                m->present = true;
                m->round = plan[j].r;
                m->expires_at_ms = plan[j].exp;
            }
            rc_value_free(&ops[j].result);
        }
    }
}

/* Everything a reopen rebuilt that must not depend on how. */
typedef struct snapshot {
    uint64_t digest[NKS]; /* keys, values, seqs, expiries in key order */
    rc_stats ks[NKS];
    rc_stats db;
} snapshot;

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* Check DB against the model and take its snapshot. */
static void take(rc_db *db, snapshot *s)
{
    memset(s, 0, sizeof(*s));
    char k[32], v[800];
    for (int ki = 0; ki < NKS; ki++) {
        rc_keyspace *ks = ks_of(db, ki);
        uint64_t live = 0, kbytes = 0, vbytes = 0;
        for (int i = 0; i < NKEYS; i++) {
            model_key *m = &model[ki][i];
            bool want = m->present && (!m->expires_at_ms || m->expires_at_ms > clock_now);
            key_name(k, sizeof(k), i);
            rc_value got;
            int rc = rc_get(db, ks, k, strlen(k), &got);
            if (!want) {
                cr_assert_eq(rc, RC_ENOTFOUND, "%s/%s: present (rc %d), model says absent",
                             ks_names[ki], k, rc);
                continue;
            }
            cr_assert_eq(rc, 0, "%s/%s: rc %d, model says present", ks_names[ki], k, rc);
            size_t vlen = value_of(v, sizeof(v), m->round, ki, i);
            cr_assert_eq(got.len, vlen, "%s/%s: length", ks_names[ki], k);
            cr_assert(memcmp(got.data, v, vlen) == 0, "%s/%s: value", ks_names[ki], k);
            cr_assert_eq(got.expires_at_ms, m->expires_at_ms, "%s/%s: expiry", ks_names[ki], k);
            rc_value_free(&got);
            live++;
            kbytes += strlen(k);
            vbytes += vlen;
        }
        rc_list *l;
        rc_list_opts lo = {.values = true};
        cr_assert_eq(rc_list_keys(db, ks, &lo, &l), 0);
        cr_assert_eq(l->count, live, "%s: listed %zu keys, model has %llu", ks_names[ki], l->count,
                     (unsigned long long)live);
        uint64_t h = 1469598103934665603ull;
        for (size_t i = 0; i < l->count; i++) {
            h = mix(h, l->items[i].key, l->items[i].klen);
            h = mix(h, l->items[i].value.data, l->items[i].value.len);
            h = mix(h, &l->items[i].value.seq, sizeof(uint64_t));
            h = mix(h, &l->items[i].value.expires_at_ms, sizeof(int64_t));
        }
        rc_list_free(l);
        s->digest[ki] = h;
        cr_assert_eq(rc_stats_keyspace(db, ks, &s->ks[ki]), 0);
        cr_assert_eq(s->ks[ki].live_keys, live, "%s: live_keys", ks_names[ki]);
        cr_assert_eq(s->ks[ki].live_key_bytes, kbytes, "%s: live_key_bytes", ks_names[ki]);
        cr_assert_eq(s->ks[ki].live_value_bytes, vbytes, "%s: live_value_bytes", ks_names[ki]);
    }
    rc_keyspace *gone;
    cr_assert_eq(rc_keyspace_open(db, "gone", 0, &gone), RC_ENOKEYSPACE);
    cr_assert_eq(rc_stats_db(db, &s->db), 0);
}

static void same(const snapshot *a, const snapshot *b, const char *what)
{
    for (int k = 0; k < NKS; k++) {
        cr_assert_eq(a->digest[k], b->digest[k], "%s: %s keys/values/seqs differ", what,
                     ks_names[k]);
        cr_assert_eq(a->ks[k].live_keys, b->ks[k].live_keys, "%s: %s live_keys", what, ks_names[k]);
        cr_assert_eq(a->ks[k].live_value_bytes, b->ks[k].live_value_bytes,
                     "%s: %s live_value_bytes", what, ks_names[k]);
        cr_assert_eq(a->ks[k].live_key_bytes, b->ks[k].live_key_bytes, "%s: %s live_key_bytes",
                     what, ks_names[k]);
        cr_assert_eq(a->ks[k].dead_bytes, b->ks[k].dead_bytes, "%s: %s dead_bytes (%llu vs %llu)",
                     what, ks_names[k], (unsigned long long)a->ks[k].dead_bytes,
                     (unsigned long long)b->ks[k].dead_bytes);
    }
    cr_assert_eq(a->db.live_keys, b->db.live_keys, "%s: db live_keys", what);
    cr_assert_eq(a->db.dead_bytes, b->db.dead_bytes, "%s: db dead_bytes (%llu vs %llu)", what,
                 (unsigned long long)a->db.dead_bytes, (unsigned long long)b->db.dead_bytes);
    cr_assert_eq(a->db.live_value_bytes, b->db.live_value_bytes, "%s: db live_value_bytes", what);
    cr_assert_eq(a->db.recovered_keys, b->db.recovered_keys, "%s: recovered_keys", what);
    cr_assert_eq(a->db.last_seq, b->db.last_seq, "%s: last_seq", what);
    cr_assert_eq(a->db.corrupt_records, b->db.corrupt_records, "%s: corrupt_records", what);
}

/* The history described at the top; leaves the database closed. */
static void build_history(void)
{
    memset(model, 0, sizeof(model));
    rng = 88172645463325252ull;
    uint32_t round = 0;
    rc_db *db = open_db(0, true);
    churn(db, 1500, 7u, &round);
    /* a keyspace that is dropped: its records stay in the segments */
    rc_keyspace *gone;
    cr_assert_eq(rc_keyspace_open(db, "gone", RC_KS_CREATE, &gone), 0);
    for (int i = 0; i < 300; i++) {
        char k[32];
        key_name(k, sizeof(k), i);
        th_put(db, gone, k, "doomed");
    }
    churn(db, 300, 7u, &round);
    cr_assert_eq(rc_keyspace_drop(db, "gone"), 0);
    /* runs of one keyspace each: hints that name a single keyspace */
    churn(db, 1200, 1u, &round);
    churn(db, 800, 2u, &round);
    cr_assert_eq(rc_merge(db), 0);
    churn(db, 1500, 7u, &round);
    churn(db, 600, 4u, &round);
    rc_close(db);
    /* the short TTLs pass while the database is closed */
    clock_now += 10 * SHORT_TTL;
}

/* Reopen by scanning only (the single-threaded reference), then with hints,
 * 1, 2, 3 and 8 threads (and the default), in load windows of the default
 * size, of one hint each and of a few hints: all equal, all match the
 * model. Returns the hint files the first open with hints used. */
static uint64_t compare_opens(void)
{
    snapshot ref, got;
    rc_db *db = open_db(1, false);
    take(db, &ref);
    cr_assert_eq(ref.db.hint_files_used, 0);
    rc_close(db);
    uint32_t threads[] = {1, 2, 3, 8, 0};
#ifdef RC_FAULT_INJECTION
    size_t windows[] = {0, 1, 150000}; /* default, one hint, a few hints */
#else
    size_t windows[] = {0}; /* the window is settable only with fault injection */
#define rc_recovery_window(bytes) ((void)(bytes))
#endif
    uint64_t hints = UINT64_MAX;
    for (size_t w = 0; w < sizeof(windows) / sizeof(windows[0]); w++) {
        rc_recovery_window(windows[w]);
        for (size_t t = 0; t < sizeof(threads) / sizeof(threads[0]); t++) {
            db = open_db(threads[t], true);
            take(db, &got);
            char what[96];
            snprintf(what, sizeof(what), "%u thread(s), window %zu, vs scan", threads[t],
                     windows[w]);
            same(&ref, &got, what);
            if (hints == UINT64_MAX)
                hints = got.db.hint_files_used;
            rc_close(db);
        }
    }
    rc_recovery_window(0);
    return hints;
}

Test(recovery_parallel, any_thread_count_rebuilds_the_same_state)
{
    build_history();
    char names[1024][64];
    int nh = th_list(dir, ".hint", names, 1024);
    cr_assert_gt(nh, 20, "want many hinted segments, got %d", nh);
    uint64_t used = compare_opens();
    cr_assert_geq(used, (uint64_t)nh - 1, "hints used: %llu of %d", (unsigned long long)used, nh);
}

Test(recovery_parallel, bad_and_missing_hints_are_scanned_in_their_turn)
{
    build_history();
    char names[1024][64];
    int nh = th_list(dir, ".hint", names, 1024);
    cr_assert_gt(nh, 20);
    /* damage hints here and there (a bad one between good ones inside one
     * load window) and remove the newest: those segments are scanned */
    for (int i = 3; i < nh - 1; i += 7) {
        const char *p = th_path(dir, names[i]);
        FILE *f = fopen(p, "r+b");
        cr_assert(f);
        cr_assert_eq(fseek(f, 60, SEEK_SET), 0);
        int c = fgetc(f);
        cr_assert_eq(fseek(f, 60, SEEK_SET), 0);
        fputc(c ^ 0x20, f);
        fclose(f);
    }
    cr_assert_eq(unlink(th_path(dir, names[nh - 1])), 0);
    uint64_t used = compare_opens();
    cr_assert_lt(used, (uint64_t)nh - 1, "damaged hints were used");
}

/* Hinted recovery sizes the tables for every entry the hints claim (header
 * counts: duplicates included) before the first window, and trims them once
 * after the last: a keyspace rewritten many times over must come back with
 * the keydir memory of its live keys, as a scan-only reopen (which grows the
 * tables key by key) gives, not with tables sized for every version. */
Test(recovery_parallel, tables_sized_for_all_hints_are_trimmed_to_the_live_keys)
{
    enum { KEYS = 3000, ROUNDS = 12 };
    rc_options o;
    th_options(&o);
    o.segment_bytes = 32 * 1024; /* ~30 hinted segments */
    rc_db *db;
    cr_assert_eq(rc_open(dir, &o, &db), 0, "%s", rc_last_error_message());
    rc_keyspace *ks = rc_default_keyspace(db);
    for (int r = 0; r < ROUNDS; r++)
        for (int i = 0; i < KEYS; i++) {
            char k[32], v[32];
            int kl = snprintf(k, sizeof k, "key-%06d", i);
            int vl = snprintf(v, sizeof v, "r%d-%d", r, i);
            cr_assert_eq(rc_put(db, ks, k, (size_t)kl, v, (size_t)vl, NULL), 0);
        }
    rc_close(db);

    uint64_t bytes[2];
    for (int hints = 0; hints < 2; hints++) {
#ifdef RC_FAULT_INJECTION
        rc_recovery_window(hints ? 1 : 0); /* one hint per window: many windows */
#endif
        o.write_hints = hints;
        cr_assert_eq(rc_open(dir, &o, &db), 0, "%s", rc_last_error_message());
        rc_stats st;
        cr_assert_eq(rc_stats_db(db, &st), 0);
        if (hints)
            cr_assert_gt(st.hint_files_used, 8, "hints used: %llu",
                         (unsigned long long)st.hint_files_used);
        bytes[hints] = st.keydir_bytes;
        ks = rc_default_keyspace(db);
        for (int i = 0; i < KEYS; i += 97) {
            char k[32], want[32];
            snprintf(k, sizeof k, "key-%06d", i);
            snprintf(want, sizeof want, "r%d-%d", ROUNDS - 1, i);
            cr_assert_eq(th_has(db, ks, k, want), 1, "%s", k);
        }
        rc_close(db);
    }
#ifdef RC_FAULT_INJECTION
    rc_recovery_window(0);
#endif
    cr_assert_lt(bytes[1], bytes[0] * 3 / 2, "hinted reopen holds %llu keydir bytes, scan %llu",
                 (unsigned long long)bytes[1], (unsigned long long)bytes[0]);
}
