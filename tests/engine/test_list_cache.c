/* The sorted-keys cache behind rc_list_keys (list.c): a model-based test of
 * random interleavings of new keys, overwrites, deletes, expiry, sweeps and
 * listings with random bounds against a brute-force model, with the cache
 * on, off, and released all the time; writers racing a paging lister and a
 * keyspace drop; and the cache's memory accounting. */
#include "helpers.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char *dir;
static rc_db *db;
static _Atomic int64_t fake_now = 1700000000000;

static int64_t test_clock(void *ctx)
{
    (void)ctx;
    return atomic_load(&fake_now);
}

static void open_db(uint32_t idle_ms)
{
    rc_options o;
    th_options(&o);
    o.clock_ms = test_clock;
    o.list_cache_idle_ms = idle_ms;
    cr_assert_eq(rc_open(dir, &o, &db), 0, "%s", rc_last_error_message());
}

static void setup(void)
{
    dir = th_tmpdir();
    atomic_store(&fake_now, 1700000000000);
    db = NULL;
}
static void teardown(void)
{
    rc_close(db);
    th_rmdir(dir);
}
TestSuite(list_cache, .init = setup, .fini = teardown, .timeout = 1800);

/* ------------------------------------------------------------ the model */

#define KMAX 12

typedef struct mkey {
    uint8_t k[KMAX];
    size_t len;
    uint64_t seq;
    int64_t exp; /* 0: none */
    unsigned val;
    bool present; /* in the model (may be expired) */
} mkey;

static mkey *model;
static size_t model_n, model_cap;
static uint64_t rng = 88172645463325252ull;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static const uint8_t alphabet[] = {0x00, 0x01, 'a', 'b', 0xfe, 0xff};

static size_t rand_bytes(uint8_t *out, size_t minlen, size_t maxlen)
{
    size_t len = minlen + rnd() % (maxlen - minlen + 1);
    for (size_t i = 0; i < len; i++)
        out[i] = alphabet[rnd() % sizeof(alphabet)];
    return len;
}

static int bcmp_keys(const void *a, size_t al, const void *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    if (c)
        return c;
    return al < bl ? -1 : al > bl;
}

static mkey *model_find(const uint8_t *k, size_t len)
{
    for (size_t i = 0; i < model_n; i++)
        if (model[i].len == len && memcmp(model[i].k, k, len) == 0)
            return &model[i];
    return NULL;
}

static bool model_live(const mkey *m)
{
    return m->present && !(m->exp && atomic_load(&fake_now) >= m->exp);
}

static void do_put(const uint8_t *k, size_t len, int64_t ttl)
{
    mkey *m = model_find(k, len);
    if (!m) {
        if (model_n == model_cap) {
            model_cap = model_cap ? model_cap * 2 : 256;
            model = realloc(model, model_cap * sizeof(*model));
            cr_assert_not_null(model);
        }
        m = &model[model_n++];
        memset(m, 0, sizeof(*m));
        memcpy(m->k, k, len);
        m->len = len;
    }
    static unsigned counter;
    char val[32];
    unsigned v = ++counter;
    int vl = snprintf(val, sizeof(val), "v%u", v);
    rc_op op = {.kind = RC_OP_PUT,
                .key = k,
                .klen = len,
                .val = val,
                .vlen = (size_t)vl,
                .ttl_ms = ttl ? ttl : RC_TTL_NONE};
    cr_assert_eq(rc_apply(db, &op, 1, NULL), 0, "%s", rc_last_error_message());
    m->present = true;
    m->seq = op.seq;
    m->exp = ttl ? atomic_load(&fake_now) + ttl : 0;
    m->val = v;
}

static void do_delete(mkey *m)
{
    rc_op op = {.kind = RC_OP_DELETE, .key = m->k, .klen = m->len};
    cr_assert_eq(rc_apply(db, &op, 1, NULL), 0);
    m->present = false;
}

static mkey *pick_present(void)
{
    if (!model_n)
        return NULL;
    for (int tries = 0; tries < 8; tries++) {
        mkey *m = &model[rnd() % model_n];
        if (m->present)
            return m;
    }
    return NULL;
}

static const rc_list_opts *sort_opts;

static int model_cmp(const void *x, const void *y)
{
    const mkey *a = *(mkey *const *)x, *b = *(mkey *const *)y;
    int c = bcmp_keys(a->k, a->len, b->k, b->len);
    return sort_opts->reverse ? -c : c;
}

static void check_list(const rc_list_opts *o)
{
    mkey **want = malloc((model_n + 1) * sizeof(*want));
    size_t nw = 0;
    for (size_t i = 0; i < model_n; i++) {
        mkey *m = &model[i];
        if (!model_live(m))
            continue;
        if (o->prefix_len && (m->len < o->prefix_len || memcmp(m->k, o->prefix, o->prefix_len)))
            continue;
        if (o->start && bcmp_keys(m->k, m->len, o->start, o->start_len) < 0)
            continue;
        if (o->end && bcmp_keys(m->k, m->len, o->end, o->end_len) >= 0)
            continue;
        want[nw++] = m;
    }
    sort_opts = o;
    qsort(want, nw, sizeof(*want), model_cmp);
    size_t expect = o->limit && o->limit < nw ? o->limit : nw;
    rc_list *l = NULL;
    cr_assert_eq(rc_list_keys(db, NULL, o, &l), 0, "%s", rc_last_error_message());
    cr_assert_eq(l->count, expect, "listed %zu keys, the model has %zu (of %zu matching)", l->count,
                 expect, nw);
    cr_assert_eq(l->more, nw > expect, "more = %d with %zu of %zu", l->more, expect, nw);
    for (size_t i = 0; i < expect; i++) {
        rc_list_item *it = &l->items[i];
        mkey *m = want[i];
        cr_assert(it->klen == m->len && memcmp(it->key, m->k, m->len) == 0,
                  "item %zu differs from the model", i);
        cr_assert_eq(it->value.seq, m->seq, "item %zu: seq", i);
        cr_assert_eq(it->value.expires_at_ms, m->exp, "item %zu: expiry", i);
        if (o->values) {
            char val[32];
            int vl = snprintf(val, sizeof(val), "v%u", m->val);
            cr_assert(it->value.len == (size_t)vl && memcmp(it->value.data, val, (size_t)vl) == 0,
                      "item %zu: value", i);
        }
    }
    rc_list_free(l);
    free(want);
}

static void random_list(void)
{
    uint8_t p[4], s[6], e[6];
    rc_list_opts o = {0};
    if (rnd() % 3 == 0) {
        o.prefix = p;
        o.prefix_len = rand_bytes(p, 1, 3);
    }
    if (rnd() % 3 == 0) {
        o.start = s;
        o.start_len = rand_bytes(s, 0, 5);
    }
    if (rnd() % 3 == 0) {
        o.end = e;
        o.end_len = rand_bytes(e, 0, 5);
    }
    o.limit = rnd() % 5 == 0 ? 0 : 1 + rnd() % 40;
    o.reverse = rnd() % 2;
    o.values = rnd() % 5 == 0;
    check_list(&o);
}

static void random_ops(int rounds, bool with_merge)
{
    uint8_t k[KMAX];
    for (int r = 0; r < rounds; r++) {
        unsigned what = (unsigned)(rnd() % 100);
        if (what < 30) { /* a key, new or not */
            size_t len = rand_bytes(k, 1, 5);
            do_put(k, len, rnd() % 4 == 0 ? 1 + (int64_t)(rnd() % 100) : 0);
        } else if (what < 40) { /* overwrite */
            mkey *m = pick_present();
            if (m)
                do_put(m->k, m->len, rnd() % 4 == 0 ? 1 + (int64_t)(rnd() % 100) : 0);
        } else if (what < 52) {
            mkey *m = pick_present();
            if (m)
                do_delete(m);
        } else if (what < 57) {
            atomic_fetch_add(&fake_now, (int64_t)(rnd() % 60));
        } else if (what < 59) {
            cr_assert_eq(rc_expire_now(db), 0);
        } else if (what < 60) { /* a burst: past the delta and overflow bounds */
            size_t n = 1 + rnd() % 3000;
            for (size_t i = 0; i < n; i++) {
                size_t len = rand_bytes(k, 6, KMAX);
                do_put(k, len, 0);
            }
        } else if (what < 61) { /* a mass delete: past the dead-key bound */
            for (size_t i = 0; i < model_n; i++)
                if (model[i].present && rnd() % 2)
                    do_delete(&model[i]);
        } else if (what < 62 && with_merge) {
            cr_assert_eq(rc_merge(db), 0);
        } else {
            random_list();
        }
    }
}

static void model_reset(uint64_t seed)
{
    free(model);
    model = NULL;
    model_n = model_cap = 0;
    rng = seed;
}

Test(list_cache, model_cached)
{
    /* idle release a day away: the cache is never freed for being unused */
    open_db(86400000);
    bool built = false;
    for (uint64_t seed = 1; seed <= 6; seed++) {
        model_reset(seed * 0x9E3779B97F4A7C15ull);
        random_ops(1500, seed % 2 == 0);
        /* checked while keys are present: once all are deleted, a cache
         * rebuilt (the sweeper, on its own real-time schedule, can overflow
         * the change buffers) is rightly empty */
        check_list(&(rc_list_opts){0});
        rc_stats st;
        cr_assert_eq(rc_stats_db(db, &st), 0);
        built = built || st.list_cache_bytes > 0;
        for (size_t i = 0; i < model_n; i++)
            if (model[i].present)
                do_delete(&model[i]);
        check_list(&(rc_list_opts){0});
    }
    cr_assert(built, "the cache was never built");
}

Test(list_cache, model_uncached)
{
    open_db(0);
    model_reset(42);
    random_ops(1500, true);
    rc_stats st;
    cr_assert_eq(rc_stats_db(db, &st), 0);
    cr_assert_eq(st.list_cache_bytes, 0);
}

Test(list_cache, model_released_often)
{
    open_db(1); /* the background thread frees the cache whenever it looks */
    model_reset(7);
    for (int i = 0; i < 20; i++) {
        random_ops(100, false);
        usleep(20000);
    }
}

Test(list_cache, model_reopened)
{
    open_db(60000);
    model_reset(99);
    random_ops(800, false);
    rc_close(db);
    db = NULL;
    open_db(60000);
    random_ops(800, true);
}

static void wait_for_release(void)
{
    rc_stats st;
    for (int i = 0; i < 12000; i++) { /* 120 s: a net for a hang */
        cr_assert_eq(rc_stats_db(db, &st), 0);
        if (st.list_cache_bytes == 0)
            return;
        usleep(10000);
    }
    cr_assert(false, "the idle cache was not released: %llu bytes",
              (unsigned long long)st.list_cache_bytes);
}

Test(list_cache, memory_counted_and_released)
{
    open_db(3000); /* long enough that a stalled test thread (a loaded machine) is not overtaken by
                      the release */
    rc_keyspace *ks;
    cr_assert_eq(rc_keyspace_open(db, "b", RC_KS_CREATE, &ks), 0);
    char k[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(k, sizeof(k), "key-%06d", i);
        cr_assert_eq(rc_put(db, ks, k, strlen(k), "v", 1, NULL), 0);
    }
    rc_stats st;
    cr_assert_eq(rc_stats_keyspace(db, ks, &st), 0);
    cr_assert_eq(st.list_cache_bytes, 0, "no listing yet");
    rc_list *l;
    rc_list_opts o = {.limit = 10};
    cr_assert_eq(rc_list_keys(db, ks, &o, &l), 0);
    cr_assert_eq(l->count, 10);
    cr_assert(memcmp(l->items[0].key, "key-000000", 10) == 0);
    rc_list_free(l);
    cr_assert_eq(rc_stats_keyspace(db, ks, &st), 0);
    /* a copy of each 10-byte key plus its offset */
    cr_assert(st.list_cache_bytes >= 5000 * 14, "%llu", (unsigned long long)st.list_cache_bytes);
    cr_assert(st.list_cache_bytes <= 5000 * 14 + 64 * 1024, "%llu",
              (unsigned long long)st.list_cache_bytes);
    wait_for_release();
    /* new keys while no cache exists, then a listing rebuilds */
    cr_assert_eq(rc_put(db, ks, "a", 1, "v", 1, NULL), 0);
    cr_assert_eq(rc_list_keys(db, ks, &o, &l), 0);
    cr_assert(l->items[0].klen == 1 && memcmp(l->items[0].key, "a", 1) == 0);
    rc_list_free(l);
    cr_assert_eq(rc_stats_db(db, &st), 0);
    cr_assert_gt(st.list_cache_bytes, 0);
    cr_assert_eq(rc_keyspace_drop(db, "b"), 0);
    cr_assert_eq(rc_stats_db(db, &st), 0);
    cr_assert_eq(st.list_cache_bytes, 0, "a dropped keyspace keeps no cache");
    cr_assert_eq(rc_list_keys(db, ks, &o, &l), RC_ENOKEYSPACE);
}

Test(list_cache, long_keys_and_shared_prefixes)
{
    /* keys longer than the sort's 8-byte windows, equal in their first 24
     * bytes, some a prefix of others, with 0x00 and 0xff bytes */
    open_db(60000);
    model_reset(5);
    uint8_t k[KMAX];
    memset(k, 'p', sizeof(k));
    for (int i = 0; i < 3000; i++) {
        uint8_t key[40];
        memset(key, 'p', 24);
        size_t extra = rand_bytes(k, 0, 8);
        memcpy(key + 24, k, extra);
        cr_assert_eq(rc_put(db, NULL, key, 24 + extra, "v", 1, NULL), 0);
    }
    rc_list *all, *page;
    cr_assert_eq(rc_list_keys(db, NULL, &(rc_list_opts){0}, &all), 0);
    cr_assert_gt(all->count, 100);
    for (size_t i = 1; i < all->count; i++)
        cr_assert_lt(bcmp_keys(all->items[i - 1].key, all->items[i - 1].klen, all->items[i].key,
                               all->items[i].klen),
                     0, "item %zu out of order", i);
    /* the uncached scan agrees */
    rc_close(db);
    db = NULL;
    open_db(0);
    cr_assert_eq(rc_list_keys(db, NULL, &(rc_list_opts){0}, &page), 0);
    cr_assert_eq(page->count, all->count);
    for (size_t i = 0; i < all->count; i++)
        cr_assert(page->items[i].klen == all->items[i].klen &&
                  memcmp(page->items[i].key, all->items[i].key, all->items[i].klen) == 0);
    rc_list_free(all);
    rc_list_free(page);
}

/* ------------------------------------------ a delta grown key by key */

/* A key for the delta tests: one of three shapes, so that the snapshot's
 * fences (the first 8 bytes of every 64th key) tie across many blocks
 * ("samepref" + 1..4 bytes), a key is a zero-padded prefix of another (short
 * keys over 0x00/0x01/a/b/0xfe/0xff), and plain random keys spread out. */
static size_t delta_key(uint8_t *k)
{
    switch (rnd() % 3) {
    case 0:
        memcpy(k, "samepref", 8);
        return 8 + rand_bytes(k + 8, 0, 4);
    case 1:
        return rand_bytes(k, 1, 7);
    default:
        return rand_bytes(k, 9, KMAX);
    }
}

/* A listing from a random start (often a key of the model, so that seeks
 * land exactly on keys of the snapshot and of the delta), random limit and
 * direction; checked against the model. */
static void seek_list(void)
{
    uint8_t s[KMAX];
    rc_list_opts o = {0};
    mkey *m = model_n ? &model[rnd() % model_n] : NULL;
    if (m && rnd() % 2) {
        o.start = m->k;
        o.start_len = m->len;
    } else {
        o.start = s;
        o.start_len = delta_key(s);
    }
    o.limit = 1 + rnd() % 100;
    o.reverse = rnd() % 4 == 0;
    check_list(&o);
}

Test(list_cache, delta_grown_key_by_key_stays_exact)
{
    /* One snapshot of 3,000 keys, then new keys one or a few at a time, each
     * followed by a listing (so every drain slots a handful of keys into the
     * sorted delta between older ones), with deletes and re-inserts of the
     * same keys (noted twice), overwrites, TTLs expiring and sweeps between
     * them: every listing equals the model. 1,500 rounds stay under the
     * rebuild bound (1/8 of the snapshot + 1024), so the delta alone carries
     * the new keys. */
    open_db(86400000);
    model_reset(0x5EED);
    uint8_t k[KMAX];
    for (int i = 0; i < 3000; i++) {
        size_t len = delta_key(k);
        do_put(k, len, 0);
    }
    check_list(&(rc_list_opts){0}); /* builds the snapshot */
    for (int r = 0; r < 1500; r++) {
        unsigned what = (unsigned)(rnd() % 100);
        if (what < 45) {
            size_t n = 1 + rnd() % 3;
            for (size_t i = 0; i < n; i++) {
                size_t len = delta_key(k);
                do_put(k, len, rnd() % 8 == 0 ? 1 + (int64_t)(rnd() % 50) : 0);
            }
        } else if (what < 60) { /* delete, and now and then insert it again */
            mkey *m = pick_present();
            if (m) {
                do_delete(m);
                if (rnd() % 2) {
                    seek_list();
                    do_put(m->k, m->len, 0);
                }
            }
        } else if (what < 68) {
            mkey *m = pick_present();
            if (m)
                do_put(m->k, m->len, rnd() % 3 == 0 ? 1 + (int64_t)(rnd() % 50) : 0);
        } else if (what < 73) {
            atomic_fetch_add(&fake_now, (int64_t)(rnd() % 30));
        } else if (what < 75) {
            cr_assert_eq(rc_expire_now(db), 0);
        }
        seek_list();
    }
    check_list(&(rc_list_opts){0});
}

Test(list_cache, deletes_alone_shrink_the_cache)
{
    /* Deletes note nothing for the cache, so listings after them skip the
     * drain; they must still leave the deleted keys out, and within 32 such
     * listings the cache sees that most of its keys are gone and rebuilds
     * smaller. */
    open_db(86400000);
    model_reset(0xDE1E7E);
    uint8_t k[KMAX];
    for (int i = 0; i < 5000; i++) {
        size_t len = rand_bytes(k, 8, KMAX);
        do_put(k, len, 0);
    }
    check_list(&(rc_list_opts){.limit = 10});
    rc_stats before, after;
    cr_assert_eq(rc_stats_db(db, &before), 0);
    for (size_t i = 0; i < model_n; i++)
        if (model[i].present && i % 10 != 0)
            do_delete(&model[i]);
    for (int i = 0; i < 40; i++)
        seek_list();
    check_list(&(rc_list_opts){0});
    cr_assert_eq(rc_stats_db(db, &after), 0);
    cr_assert_lt(after.list_cache_bytes, before.list_cache_bytes / 2,
                 "the cache kept %llu bytes of %llu after 90 %% of the keys went",
                 (unsigned long long)after.list_cache_bytes,
                 (unsigned long long)before.list_cache_bytes);
}

/* ------------------------------------------------------ concurrent paging */

#define WRITERS 3
#define PER_WRITER 3000

typedef struct writer {
    rc_keyspace *ks;
    int id;
    _Atomic int attempted; /* keys 0..attempted-1 may exist */
    int errors;
} writer;

static void wkey(char *out, size_t cap, int t, int i)
{
    snprintf(out, cap, "w%d-%05d", t, i);
}

static void *write_loop(void *arg)
{
    writer *w = arg;
    char k[32];
    for (int i = 0; i < PER_WRITER; i++) {
        atomic_store(&w->attempted, i + 1);
        wkey(k, sizeof(k), w->id, i);
        if (rc_put(db, w->ks, k, strlen(k), "v", 1, NULL) != 0)
            w->errors++;
        if (i % 3 == 0 && (i / 2) % 5 != 0) { /* overwrite an older one (not deleted) */
            wkey(k, sizeof(k), w->id, i / 2);
            if (rc_put(db, w->ks, k, strlen(k), "w", 1, NULL) != 0)
                w->errors++;
        }
        if (i % 5 == 4) { /* delete every fifth key */
            wkey(k, sizeof(k), w->id, i - 4);
            if (rc_delete(db, w->ks, k, strlen(k), NULL) != 0)
                w->errors++;
        }
    }
    return NULL;
}

static bool key_ok(const rc_list_item *it, writer *ws)
{
    int t, i;
    char buf[32];
    if (it->klen >= sizeof(buf))
        return false;
    memcpy(buf, it->key, it->klen);
    buf[it->klen] = 0;
    if (sscanf(buf, "w%d-%d", &t, &i) != 2 || t < 0 || t >= WRITERS)
        return false;
    char again[32];
    wkey(again, sizeof(again), t, i);
    return strcmp(again, buf) == 0 && i < atomic_load(&ws[t].attempted);
}

/* Page through KS with LIMIT; check order, and count pages. Returns the
 * number of keys seen; with SEEN, marks each key (by writer and index). */
static size_t page_through(rc_keyspace *ks, size_t limit, bool reverse, writer *ws, int *seen)
{
    uint8_t last[40];
    size_t last_len = 0, total = 0;
    bool first = true;
    for (;;) {
        rc_list_opts o = {.limit = limit, .reverse = reverse};
        uint8_t bound[41];
        if (!first) {
            memcpy(bound, last, last_len);
            if (reverse) { /* end is exclusive: the last key itself */
                o.end = bound;
                o.end_len = last_len;
            } else { /* start is inclusive: the key just after the last */
                bound[last_len] = 0;
                o.start = bound;
                o.start_len = last_len + 1;
            }
        }
        rc_list *l;
        cr_assert_eq(rc_list_keys(db, ks, &o, &l), 0);
        for (size_t i = 0; i < l->count; i++) {
            rc_list_item *it = &l->items[i];
            cr_assert(key_ok(it, ws), "a key nobody wrote: %.*s", (int)it->klen, (char *)it->key);
            if (!first) {
                int c = bcmp_keys(last, last_len, it->key, it->klen);
                cr_assert(reverse ? c > 0 : c < 0, "out of order");
            }
            memcpy(last, it->key, it->klen);
            last_len = it->klen;
            first = false;
            if (seen) {
                int t, k;
                sscanf((char *)it->key, "w%d-%d", &t, &k);
                seen[t * PER_WRITER + k]++;
            }
        }
        total += l->count;
        bool more = l->more;
        cr_assert(l->count <= limit);
        if (more)
            cr_assert_eq(l->count, limit);
        rc_list_free(l);
        if (!more)
            return total;
    }
}

typedef struct dropper {
    _Atomic bool stop;
} dropper;

static void *drop_loop(void *arg)
{
    dropper *d = arg;
    char k[16];
    for (int round = 0; round < 150 && !atomic_load(&d->stop); round++) {
        rc_keyspace *ks;
        if (rc_keyspace_open(db, "doomed", RC_KS_CREATE, &ks) != 0)
            continue;
        for (int i = 0; i < 200; i++) {
            snprintf(k, sizeof(k), "d%d", i);
            rc_put(db, ks, k, strlen(k), "v", 1, NULL);
        }
        rc_list *l;
        if (rc_list_keys(db, ks, &(rc_list_opts){.limit = 5}, &l) == 0)
            rc_list_free(l);
        rc_keyspace_drop(db, "doomed");
    }
    return NULL;
}

static void *list_doomed(void *arg)
{
    dropper *d = arg;
    while (!atomic_load(&d->stop)) {
        rc_keyspace *ks;
        if (rc_keyspace_open(db, "doomed", 0, &ks) != 0)
            continue;
        rc_list *l;
        int rc =
            rc_list_keys(db, ks, &(rc_list_opts){.limit = 7, .start = "d1", .start_len = 2}, &l);
        cr_assert(rc == 0 || rc == RC_ENOKEYSPACE);
        if (rc == 0) {
            for (size_t i = 1; i < l->count; i++)
                cr_assert_lt(bcmp_keys(l->items[i - 1].key, l->items[i - 1].klen, l->items[i].key,
                                       l->items[i].klen),
                             0);
            rc_list_free(l);
        }
    }
    return NULL;
}

Test(list_cache, writers_racing_a_paging_lister)
{
    open_db(60000);
    rc_keyspace *ks;
    cr_assert_eq(rc_keyspace_open(db, "race", RC_KS_CREATE, &ks), 0);
    writer ws[WRITERS];
    pthread_t th[WRITERS], dt[2];
    dropper d = {.stop = false};
    for (int t = 0; t < WRITERS; t++) {
        ws[t] = (writer){.ks = ks, .id = t};
        atomic_store(&ws[t].attempted, 0);
        pthread_create(&th[t], NULL, write_loop, &ws[t]);
    }
    pthread_create(&dt[0], NULL, drop_loop, &d);
    pthread_create(&dt[1], NULL, list_doomed, &d);
    size_t pages_limits[] = {1, 7, 64, 500};
    for (int round = 0; round < 12; round++)
        page_through(ks, pages_limits[round % 4], round % 3 == 1, ws, NULL);
    for (int t = 0; t < WRITERS; t++) {
        pthread_join(th[t], NULL);
        cr_assert_eq(ws[t].errors, 0);
    }
    atomic_store(&d.stop, true);
    pthread_join(dt[0], NULL);
    pthread_join(dt[1], NULL);
    /* quiescent: every live key exactly once, forward and backward */
    static int seen[WRITERS * PER_WRITER];
    for (int pass = 0; pass < 4; pass++) {
        memset(seen, 0, sizeof(seen));
        page_through(ks, pages_limits[pass], pass % 2 == 1, ws, seen);
        for (int t = 0; t < WRITERS; t++)
            for (int i = 0; i < PER_WRITER; i++) {
                bool deleted = i % 5 == 0 && i + 4 < PER_WRITER;
                cr_assert_eq(seen[t * PER_WRITER + i], deleted ? 0 : 1,
                             "pass %d: key w%d-%05d seen %d times", pass, t, i,
                             seen[t * PER_WRITER + i]);
            }
    }
}
