/*
 * list.c — keys of one keyspace in byte order.
 *
 * The keydir is a hash, so order comes from a sorted-keys cache per keyspace
 * (list_cache in db.h), built lazily by the first listing and kept while
 * listings go on, so that paging through a keyspace costs O(log n + page)
 * per page instead of a scan and a sort of the whole keyspace each time.
 *
 * Why it stays valid cheaply. Only a key new to the keyspace changes the set
 * of keys in order; an overwrite does not (a listing reads seq, expiry and
 * values from the keydir at the moment it emits a key), and a deleted or
 * expired key is simply skipped when the listing looks it up to emit it. So
 * the cache is a sorted snapshot of the keydir's keys (an arena of copies:
 * nothing points into the keydir) plus a sorted delta of the keys inserted
 * since. Writers note new keys in a per-keydir-shard buffer under the shard
 * write lock they already hold (a flag test when no cache exists) and bump
 * noted_total; a listing that sees noted_total changed drains those buffers
 * into the delta (slotting the few new keys in, lc_delta_insert), and every
 * listing merges snapshot and delta as it walks them. A seek goes through the
 * snapshot's fences (every 64th key's first 8 bytes); the keys walked are
 * checked against the keydir a batch at a time so that their cache misses
 * overlap (lc_emit). The snapshot is rebuilt once the delta passes 1/8 of it,
 * once the keydir holds 1/4 fewer keys than the cache, or when a shard's
 * buffer overflowed.
 *
 * Why it is complete. A build switches each shard's noting on under that
 * shard's read lock, in the same critical section that copies the shard's
 * keys: every key the shard gains later lands in its buffer. A drain empties
 * each buffer under the shard's read lock. So after a listing's drain, every
 * key live at that moment is in the snapshot or the delta.
 *
 * Locks: the cache's rwlock (exclusive to build, drain or release; shared to
 * read keys out), then keydir shard locks, never the other way round; writers
 * touch only their shard's buffer under the shard write lock. Dropping a
 * keyspace frees the cache after the epoch grace period (every lister holds
 * an epoch). The background thread frees a cache unused for
 * opt.list_cache_idle_ms. With list_cache_idle_ms = 0, or when the cache
 * cannot be built (ENOMEM, more than 4 GiB of keys), a listing collects the
 * matching keys shard by shard and partially sorts them (quickselect of the
 * first `limit`, then a sort of those only).
 *
 * Values, when asked for, are read afterwards by key, so each is the newest
 * at that moment.
 */
#include "db.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static int key_cmp(const void *a, size_t al, const void *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    if (c)
        return c;
    return al < bl ? -1 : al > bl;
}

static bool has_prefix(const uint8_t *k, size_t klen, const rc_list_opts *o)
{
    return klen >= o->prefix_len && memcmp(k, o->prefix, o->prefix_len) == 0;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------ the items */

typedef struct items {
    rc_list_item *v;
    size_t n, cap;
} items;

static int items_push(items *it, const uint8_t *key, size_t klen, const kd_loc *loc)
{
    if (it->n == it->cap) {
        size_t cap = it->cap ? it->cap * 2 : 64;
        rc_list_item *n = realloc(it->v, cap * sizeof(*n));
        if (!n)
            return RC_ENOMEM;
        it->v = n;
        it->cap = cap;
    }
    rc_list_item *x = &it->v[it->n];
    memset(x, 0, sizeof(*x));
    x->key = malloc(klen + 1);
    if (!x->key)
        return RC_ENOMEM;
    memcpy(x->key, key, klen);
    ((char *)x->key)[klen] = 0;
    x->klen = klen;
    x->value.seq = loc->seq;
    x->value.expires_at_ms = loc->expires_at_ms;
    it->n++;
    return 0;
}

static void items_free(rc_list_item *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].key);
        rc_value_free(&v[i].value);
    }
    free(v);
}

/* Read the values if asked (leaving out keys deleted since), hand the list
 * out. Takes the items in every case. Epoch held. */
static int finish(rc_db *db, rc_keyspace *k, const rc_list_opts *opts, items *it, bool more,
                  int err, rc_list **out)
{
    rc_list *l = err ? NULL : calloc(1, sizeof(*l));
    if (!l && !err)
        err = RC_ENOMEM;
    size_t w = 0;
    for (size_t i = 0; i < it->n; i++) {
        rc_list_item *x = &it->v[i];
        if (!err && opts->values) {
            int e = rci_read_key(db, k, rci_keydir_hash(x->key, x->klen), x->key, x->klen,
                                 &x->value, true);
            if (e == RC_ENOTFOUND) { /* deleted since: leave it out */
                free(x->key);
                continue;
            }
            err = e;
        }
        if (err) {
            free(x->key);
            rc_value_free(&x->value);
            continue;
        }
        it->v[w++] = *x;
    }
    if (err) {
        items_free(it->v, w);
        free(l);
        return err;
    }
    l->items = it->v;
    l->count = w;
    l->more = more;
    *out = l;
    return 0;
}

/* ------------------------------------------- uncached: scan + partial sort */

typedef struct collect {
    const rc_list_opts *o;
    int64_t now;
    items it;
    int err;
} collect;

static int item_cmp(const void *x, const void *y)
{
    const rc_list_item *a = x, *b = y;
    return key_cmp(a->key, a->klen, b->key, b->klen);
}

static int item_cmp_rev(const void *x, const void *y)
{
    return -item_cmp(x, y);
}

static int visit(void *ctx, const uint8_t *key, size_t klen, const kd_loc *loc)
{
    collect *c = ctx;
    const rc_list_opts *o = c->o;
    if (loc->expires_at_ms && c->now >= loc->expires_at_ms)
        return 0;
    if (o->prefix_len && !has_prefix(key, klen, o))
        return 0;
    if (o->start && key_cmp(key, klen, o->start, o->start_len) < 0)
        return 0;
    if (o->end && key_cmp(key, klen, o->end, o->end_len) >= 0)
        return 0;
    c->err = items_push(&c->it, key, klen, loc);
    return c->err != 0;
}

/* Rearrange V so that its first K items are the K smallest under CMP. */
static void select_first(rc_list_item *v, size_t n, size_t k,
                         int (*cmp)(const void *, const void *))
{
    size_t lo = 0, hi = n;
    while (hi - lo > 1) {
        rc_list_item pivot = v[lo + (hi - lo) / 2];
        size_t i = lo, j = hi - 1;
        while (i <= j) {
            while (cmp(&v[i], &pivot) < 0)
                i++;
            while (cmp(&v[j], &pivot) > 0)
                j--;
            if (i <= j) {
                rc_list_item t = v[i];
                v[i] = v[j];
                v[j] = t;
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (k <= j + 1 && j + 1 > lo)
            hi = j + 1;
        else if (k >= i)
            lo = i;
        else
            return;
    }
}

static int list_scan(rc_db *db, rc_keyspace *k, const rc_list_opts *opts, rc_list **out)
{
    collect c = {.o = opts, .now = db_now_ms(db)};
    for (unsigned s = 0; s < KEYDIR_SHARDS && !c.err; s++) {
        rci_keydir_rdlock(k->kd, s);
        rci_keydir_shard_foreach(k->kd, s, visit, &c);
        rci_keydir_unlock(k->kd, s);
    }
    int (*cmp)(const void *, const void *) = opts->reverse ? item_cmp_rev : item_cmp;
    size_t total = c.it.n;
    if (!c.err && opts->limit && opts->limit < c.it.n) {
        select_first(c.it.v, c.it.n, opts->limit, cmp);
        for (size_t i = opts->limit; i < c.it.n; i++)
            free(c.it.v[i].key);
        c.it.n = opts->limit;
    }
    if (!c.err && c.it.n > 1) /* qsort's base may not be NULL, even for 0 items */
        qsort(c.it.v, c.it.n, sizeof(*c.it.v), cmp);
    return finish(db, k, opts, &c.it, total > c.it.n, c.err, out);
}

/* ------------------------------------------------------ the sorted cache */

#define LC_TOO_BIG 1      /* not an RC_E* code: more keys than 32-bit offsets reach */
#define LC_FENCE_EVERY 64 /* snapshot keys per fence (see list_cache.fence) */

static void lc_acct(list_cache *lc, size_t add, size_t sub)
{
    if (add)
        atomic_fetch_add_explicit(&lc->bytes, add, memory_order_relaxed);
    if (sub)
        atomic_fetch_sub_explicit(&lc->bytes, sub, memory_order_relaxed);
}

void rci_lc_init(list_cache *lc)
{
    memset(lc, 0, sizeof(*lc));
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    /* as the keydir's: a stream of listers cannot starve a drain */
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&lc->rw, &attr);
    pthread_rwlockattr_destroy(&attr);
}

/* Free the snapshot and the delta (cache held exclusively). */
static void lc_free_sorted(list_cache *lc)
{
    lc_acct(lc, 0, lc->dcap + lc->dcapn * sizeof(*lc->drefs));
    free(lc->arena);
    free(lc->offs);
    free(lc->fence);
    lc->fence = NULL;
    lc->nfence = 0;
    free(lc->darena);
    free(lc->drefs);
    lc->arena = lc->darena = NULL;
    lc->offs = NULL;
    lc->drefs = NULL;
    lc->arena_len = lc->n = lc->dlen = lc->dcap = lc->dn = lc->dcapn = 0;
    lc->built = false;
}

/* Free the snapshot part held in bytes: arena and offsets (exact sizes). */
static void lc_free_snapshot_acct(list_cache *lc)
{
    lc_acct(lc, 0,
            lc->arena_len + (lc->n ? lc->n + 1 : 0) * sizeof(*lc->offs) +
                lc->nfence * sizeof(*lc->fence));
}

void rci_lc_destroy(list_cache *lc)
{
    lc_free_snapshot_acct(lc);
    lc_free_sorted(lc);
    for (unsigned s = 0; s < KEYDIR_SHARDS; s++)
        free(lc->shards[s].buf);
    pthread_rwlock_destroy(&lc->rw);
    memset(lc, 0, sizeof(*lc));
}

void rci_lc_note_slow(lc_shard *sh, list_cache *lc, const void *key, size_t klen)
{
    if (atomic_load_explicit(&sh->overflow, memory_order_relaxed))
        return;
    uint32_t n = atomic_load_explicit(&sh->n, memory_order_relaxed);
    size_t need = 2 + klen;
    if (n >= sh->max_n || sh->len + need > sh->cap) {
        size_t cap = sh->cap ? sh->cap * 2 : 1024;
        while (cap < sh->len + need)
            cap *= 2;
        uint8_t *nb = n < sh->max_n ? realloc(sh->buf, cap) : NULL;
        if (!nb) { /* the next listing rebuilds; keep nothing meanwhile */
            lc_acct(lc, 0, sh->cap);
            free(sh->buf);
            sh->buf = NULL;
            sh->len = sh->cap = 0;
            atomic_store_explicit(&sh->n, 0, memory_order_relaxed);
            atomic_store_explicit(&sh->overflow, true, memory_order_relaxed);
            atomic_fetch_add_explicit(&lc->noted_total, 1, memory_order_relaxed);
            return;
        }
        lc_acct(lc, cap - sh->cap, 0);
        sh->buf = nb;
        sh->cap = cap;
    }
    uint16_t l = (uint16_t)klen;
    memcpy(sh->buf + sh->len, &l, 2);
    memcpy(sh->buf + sh->len + 2, key, klen);
    sh->len += need;
    atomic_store_explicit(&sh->n, n + 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&lc->noted_total, 1, memory_order_relaxed);
}

/* Stop noting new keys and free the shard buffers (cache held exclusively;
 * takes each shard's read lock). */
static void lc_shards_off(list_cache *lc, keydir *kd)
{
    for (unsigned s = 0; s < KEYDIR_SHARDS; s++) {
        lc_shard *sh = &lc->shards[s];
        rci_keydir_rdlock(kd, s);
        lc_acct(lc, 0, sh->cap);
        free(sh->buf);
        sh->buf = NULL;
        sh->len = sh->cap = 0;
        atomic_store_explicit(&sh->n, 0, memory_order_relaxed);
        atomic_store_explicit(&sh->overflow, false, memory_order_relaxed);
        sh->on = false;
        rci_keydir_unlock(kd, s);
    }
}

/* ---- sorting the snapshot: LSD radix sort on 8-byte windows of the keys,
 * refined window by window inside runs of equal windows. */

typedef struct sort_item {
    uint64_t win; /* big-endian key bytes [depth, depth + 8), zero-padded */
    uint32_t off; /* entry in the arena */
    uint32_t len;
} sort_item;

static uint64_t window(const uint8_t *key, size_t len, size_t depth)
{
    uint64_t w = 0;
    for (size_t i = 0; i < 8; i++)
        w = (w << 8) | (depth + i < len ? key[depth + i] : 0);
    return w;
}

static const uint8_t *arena_key(const uint8_t *arena, uint32_t off)
{
    return arena + off + 2;
}

static void radix_sort(sort_item *v, sort_item *tmp, size_t n)
{
    static _Thread_local size_t count[8][256];
    memset(count, 0, sizeof(count));
    for (size_t i = 0; i < n; i++)
        for (unsigned b = 0; b < 8; b++)
            count[b][(v[i].win >> (8 * b)) & 0xff]++;
    sort_item *src = v, *dst = tmp;
    for (unsigned b = 0; b < 8; b++) {
        size_t *c = count[b], sum = 0;
        bool trivial = false;
        for (unsigned d = 0; d < 256; d++) {
            if (c[d] == n)
                trivial = true;
            size_t t = c[d];
            c[d] = sum;
            sum += t;
        }
        if (trivial)
            continue;
        for (size_t i = 0; i < n; i++)
            dst[c[(src[i].win >> (8 * b)) & 0xff]++] = src[i];
        sort_item *t = src;
        src = dst;
        dst = t;
    }
    if (src != v)
        memcpy(v, src, n * sizeof(*v));
}

static void insertion_sort(sort_item *v, size_t n, const uint8_t *arena)
{
    for (size_t i = 1; i < n; i++) {
        sort_item x = v[i];
        size_t j = i;
        while (j > 0 && key_cmp(arena_key(arena, v[j - 1].off), v[j - 1].len,
                                arena_key(arena, x.off), x.len) > 0) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
}

static _Thread_local const uint8_t *item_cmp_arena; /* for qsort */

static int sort_item_cmp(const void *x, const void *y)
{
    const sort_item *a = x, *b = y;
    return key_cmp(arena_key(item_cmp_arena, a->off), a->len, arena_key(item_cmp_arena, b->off),
                   b->len);
}

/* Sort V[0..N) (equal in bytes [0, depth)) by key. A radix pass costs a
 * 16 KiB histogram, so small runs take a comparison sort. */
static void sort_keys(sort_item *v, sort_item *tmp, size_t n, size_t depth, const uint8_t *arena)
{
    if (n <= 16) {
        insertion_sort(v, n, arena);
        return;
    }
    if (n < 1024) {
        item_cmp_arena = arena;
        qsort(v, n, sizeof(*v), sort_item_cmp);
        return;
    }
    for (size_t i = 0; i < n; i++)
        v[i].win = window(arena_key(arena, v[i].off), v[i].len, depth);
    radix_sort(v, tmp, n);
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && v[j].win == v[i].win)
            j++;
        if (j - i > 1) {
            /* equal windows: a key ending inside the window is a prefix of
             * every longer one in the run, so those come first, by length */
            size_t shorts = 0;
            for (size_t t = i; t < j; t++)
                if (v[t].len <= depth + 8) {
                    sort_item x = v[t];
                    v[t] = v[i + shorts];
                    v[i + shorts] = x;
                    shorts++;
                }
            insertion_sort(v + i, shorts, arena);
            sort_keys(v + i + shorts, tmp, j - i - shorts, depth + 8, arena);
        }
        i = j;
    }
}

typedef struct build_ctx {
    list_cache *lc;
    size_t arena_cap, offs_cap;
    int err;
} build_ctx;

static int build_visit(void *ctx, const uint8_t *key, size_t klen, const kd_loc *loc)
{
    (void)loc; /* expired keys too: an overwrite of one is no new key */
    build_ctx *b = ctx;
    list_cache *lc = b->lc;
    if (lc->arena_len + 2 + klen > UINT32_MAX) {
        b->err = LC_TOO_BIG;
        return 1;
    }
    if (lc->arena_len + 2 + klen > b->arena_cap) {
        size_t cap = b->arena_cap ? b->arena_cap * 2 : 1 << 16;
        while (cap < lc->arena_len + 2 + klen)
            cap *= 2;
        uint8_t *a = realloc(lc->arena, cap);
        if (!a) {
            b->err = RC_ENOMEM;
            return 1;
        }
        lc->arena = a;
        b->arena_cap = cap;
    }
    if (lc->n == b->offs_cap) {
        size_t cap = b->offs_cap ? b->offs_cap * 2 : 4096;
        uint32_t *o = realloc(lc->offs, cap * sizeof(*o));
        if (!o) {
            b->err = RC_ENOMEM;
            return 1;
        }
        lc->offs = o;
        b->offs_cap = cap;
    }
    uint16_t l = (uint16_t)klen;
    lc->offs[lc->n++] = (uint32_t)lc->arena_len;
    memcpy(lc->arena + lc->arena_len, &l, 2);
    memcpy(lc->arena + lc->arena_len + 2, key, klen);
    lc->arena_len += 2 + klen;
    return 0;
}

/* (Re)build the snapshot from the keydir (cache held exclusively). On
 * failure nothing is cached and noting is off. */
static int lc_build(list_cache *lc, keydir *kd, uint64_t key_bytes)
{
    lc_free_snapshot_acct(lc);
    lc_free_sorted(lc);
    size_t est = rci_keydir_count(kd);
    size_t max_n = (est / 8 + 1024) / KEYDIR_SHARDS * 2 + 64;
    build_ctx b = {.lc = lc};
    /* sized from the keyspace's counters (+1/16 for writes meanwhile), so
     * that the arena is not copied over and over while it grows */
    size_t want = (size_t)key_bytes + 2 * est;
    want += want / 16 + 4096;
    if (want < UINT32_MAX && (lc->arena = malloc(want)) != NULL)
        b.arena_cap = want;
    size_t want_n = est + est / 16 + 1024;
    if ((lc->offs = malloc(want_n * sizeof(*lc->offs))) != NULL)
        b.offs_cap = want_n;
    for (unsigned s = 0; s < KEYDIR_SHARDS && !b.err; s++) {
        lc_shard *sh = &lc->shards[s];
        rci_keydir_rdlock(kd, s);
        sh->on = true;
        atomic_store_explicit(&sh->overflow, false, memory_order_relaxed);
        atomic_store_explicit(&sh->n, 0, memory_order_relaxed);
        lc_acct(lc, 0, sh->cap); /* a burst's buffer: let it go */
        free(sh->buf);
        sh->buf = NULL;
        sh->len = sh->cap = 0;
        sh->max_n = max_n > UINT32_MAX ? UINT32_MAX : (uint32_t)max_n;
        rci_keydir_shard_foreach(kd, s, build_visit, &b);
        rci_keydir_unlock(kd, s);
    }
    /* sort, then lay the keys out in key order without their lengths (one
     * offset per key plus an end offset), so that a page reads one run of
     * the arena */
    sort_item *v = NULL, *tmp = NULL;
    uint8_t *sorted = NULL;
    uint32_t *offs = NULL;
    size_t n = lc->n, bytes = lc->arena_len - 2 * n;
    if (!b.err && n) {
        v = malloc(n * sizeof(*v));
        tmp = n > 1 ? malloc(n * sizeof(*tmp)) : NULL;
        sorted = malloc(bytes);
        offs = malloc((n + 1) * sizeof(*offs));
        if (!v || (n > 1 && !tmp) || !sorted || !offs)
            b.err = RC_ENOMEM;
    }
    if (b.err) {
        free(v);
        free(tmp);
        free(sorted);
        free(offs);
        lc_shards_off(lc, kd);
        lc_free_sorted(lc);
        return b.err;
    }
    if (n) {
        for (size_t i = 0; i < n; i++) {
            uint16_t l;
            memcpy(&l, lc->arena + lc->offs[i], 2);
            v[i].off = lc->offs[i];
            v[i].len = l;
        }
        sort_keys(v, tmp, n, 0, lc->arena);
        size_t at = 0;
        for (size_t i = 0; i < n; i++) {
            offs[i] = (uint32_t)at;
            memcpy(sorted + at, arena_key(lc->arena, v[i].off), v[i].len);
            at += v[i].len;
        }
        offs[n] = (uint32_t)at;
        free(lc->arena);
        free(lc->offs);
        lc->arena = sorted;
        lc->offs = offs;
        lc->arena_len = bytes;
    }
    free(v);
    free(tmp);
    size_t nf = (n + LC_FENCE_EVERY - 1) / LC_FENCE_EVERY;
    if (nf && (lc->fence = malloc(nf * sizeof(*lc->fence))) != NULL) {
        lc->nfence = nf;
        for (size_t f = 0; f < nf; f++) {
            size_t at = f * LC_FENCE_EVERY;
            lc->fence[f] = window(lc->arena + lc->offs[at], lc->offs[at + 1] - lc->offs[at], 0);
        }
    }
    lc_acct(lc,
            lc->arena_len + (n ? n + 1 : 0) * sizeof(*lc->offs) + lc->nfence * sizeof(*lc->fence),
            0);
    lc->built = true;
    return 0;
}

static const uint8_t *delta_key(const list_cache *lc, size_t i, size_t *len)
{
    *len = lc->drefs[i].len;
    return lc->darena + lc->drefs[i].off;
}

static const uint8_t *snap_key(const list_cache *lc, size_t i, size_t *len)
{
    *len = lc->offs[i + 1] - lc->offs[i];
    return lc->arena + lc->offs[i];
}

static _Thread_local const list_cache *ref_cmp_lc; /* for qsort */

static int ref_cmp(const void *x, const void *y)
{
    const lc_ref *a = x, *b = y;
    return key_cmp(ref_cmp_lc->darena + a->off, a->len, ref_cmp_lc->darena + b->off, b->len);
}

static int lc_delta_insert(list_cache *lc, size_t first);

/* Move the keys noted by writers into the sorted delta (cache held
 * exclusively). Returns non-zero when the cache must be rebuilt instead. */
static int lc_drain(list_cache *lc, keydir *kd)
{
    size_t first = lc->dn;
    int err = 0;
    for (unsigned s = 0; s < KEYDIR_SHARDS; s++) {
        lc_shard *sh = &lc->shards[s];
        if (!atomic_load_explicit(&sh->n, memory_order_relaxed) &&
            !atomic_load_explicit(&sh->overflow, memory_order_relaxed))
            continue; /* nothing noted (see lc_shard) */
        rci_keydir_rdlock(kd, s);
        if (atomic_load_explicit(&sh->overflow, memory_order_relaxed))
            err = 1;
        uint32_t noted = atomic_load_explicit(&sh->n, memory_order_relaxed);
        for (size_t p = 0, i = 0; !err && i < noted; i++) {
            uint16_t l;
            memcpy(&l, sh->buf + p, 2);
            if (lc->dlen + l > UINT32_MAX) {
                err = 1;
                break;
            }
            if (lc->dlen + l > lc->dcap) {
                size_t cap = lc->dcap ? lc->dcap * 2 : 4096;
                while (cap < lc->dlen + l)
                    cap *= 2;
                uint8_t *a = realloc(lc->darena, cap);
                if (!a) {
                    err = 1;
                    break;
                }
                lc_acct(lc, cap - lc->dcap, 0);
                lc->darena = a;
                lc->dcap = cap;
            }
            if (lc->dn == lc->dcapn) {
                size_t cap = lc->dcapn ? lc->dcapn * 2 : 256;
                lc_ref *r = realloc(lc->drefs, cap * sizeof(*r));
                if (!r) {
                    err = 1;
                    break;
                }
                lc_acct(lc, (cap - lc->dcapn) * sizeof(*r), 0);
                lc->drefs = r;
                lc->dcapn = cap;
            }
            memcpy(lc->darena + lc->dlen, sh->buf + p + 2, l);
            lc->drefs[lc->dn++] = (lc_ref){.off = (uint32_t)lc->dlen, .len = l};
            lc->dlen += l;
            p += 2 + (size_t)l;
        }
        atomic_store_explicit(&sh->n, 0, memory_order_relaxed);
        sh->len = 0;
        rci_keydir_unlock(kd, s);
        if (err)
            return err; /* keys were lost: rebuild */
    }
    size_t add = lc->dn - first;
    if (!add)
        return 0;
    return lc_delta_insert(lc, first) != 0;
}

/* First index in DREFS[0, n) whose key is >= R's. */
static size_t ref_lower_bound(const list_cache *lc, size_t n, const lc_ref *r)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ref_cmp(&lc->drefs[mid], r) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The delta is the sorted run [0, first) plus keys just drained into [first,
 * dn): sort those few, drop the ones already there (a key deleted and
 * inserted again is noted again) and slot them into the run from the back,
 * so that a drain of a few keys costs a binary search each and one move of
 * the references after them, not a merge of the whole delta (which cost O(dn)
 * key comparisons per listing after every insert). Cache held exclusively;
 * 0 or -1 (ENOMEM: the caller rebuilds). */
static int lc_delta_insert(list_cache *lc, size_t first)
{
    typedef struct placed {
        lc_ref r;
        size_t pos; /* where it goes among the old run's references */
    } placed;
    size_t add = lc->dn - first;
    ref_cmp_lc = lc; /* cache held exclusively: one sorter at a time */
    qsort(lc->drefs + first, add, sizeof(*lc->drefs), ref_cmp);
    placed stack[32], *nw = add <= 32 ? stack : malloc(add * sizeof(*nw));
    if (!nw)
        return -1;
    size_t k = 0;
    for (size_t x = first; x < lc->dn; x++) {
        const lc_ref *r = &lc->drefs[x];
        if (k && ref_cmp(&nw[k - 1].r, r) == 0)
            continue;
        size_t pos = ref_lower_bound(lc, first, r);
        if (pos < first && ref_cmp(&lc->drefs[pos], r) == 0)
            continue;
        nw[k++] = (placed){.r = *r, .pos = pos};
    }
    /* from the back: the old references from nw[x].pos up to END move up by
     * x + 1 places, and nw[x] lands just below them */
    size_t end = first;
    for (size_t x = k; x-- > 0;) {
        size_t pos = nw[x].pos;
        memmove(&lc->drefs[pos + x + 1], &lc->drefs[pos], (end - pos) * sizeof(*lc->drefs));
        lc->drefs[pos + x] = nw[x].r;
        end = pos;
    }
    lc->dn = first + k;
    if (nw != stack)
        free(nw);
    return 0;
}

/* Bring the cache up to date with the keydir (cache held exclusively). */
static int lc_refresh(list_cache *lc, keydir *kd, uint64_t key_bytes)
{
    atomic_store_explicit(&lc->last_used, mono_ms(), memory_order_relaxed);
    uint64_t noted_total = atomic_load_explicit(&lc->noted_total, memory_order_relaxed);
    if (lc->built && noted_total == lc->seen_noted && ++lc->refreshes % 32 != 0)
        return 0;                 /* no key noted since the last refresh */
    lc->seen_noted = noted_total; /* a note from now on shows as a change */
    if (!lc->built)
        return lc_build(lc, kd, key_bytes);
    /* a rebuild ahead: skip draining (and sorting) what it would redo */
    size_t noted = 0;
    for (unsigned i = 0; i < KEYDIR_SHARDS; i++) {
        noted += atomic_load_explicit(&lc->shards[i].n, memory_order_relaxed);
        if (atomic_load_explicit(&lc->shards[i].overflow, memory_order_relaxed))
            return lc_build(lc, kd, key_bytes);
    }
    if (lc->dn + noted > lc->n / 8 + 1024)
        return lc_build(lc, kd, key_bytes);
    if (lc_drain(lc, kd) != 0)
        return lc_build(lc, kd, key_bytes);
    size_t live = rci_keydir_count(kd);
    if (lc->dn > lc->n / 8 + 1024 || lc->n + lc->dn > live + live / 4 + 1024)
        return lc_build(lc, kd, key_bytes);
    return 0;
}

/* One sorted source: the snapshot or the delta. */
typedef struct source {
    const list_cache *lc;
    bool delta;
    size_t lo, hi; /* the range in bounds */
} source;

static const uint8_t *src_key(const source *s, size_t i, size_t *len)
{
    return s->delta ? delta_key(s->lc, i, len) : snap_key(s->lc, i, len);
}

/* The range of snapshot indexes [*LO, *HI) that holds the first key >= KEY,
 * from the fences: keys of blocks whose fence is below KEY's first 8 bytes
 * are all smaller (but the block's own keys after the fenced one may not be),
 * and a block whose fence is above them starts with a larger key. */
static void fence_narrow(const list_cache *lc, const void *key, size_t klen, size_t *lo, size_t *hi)
{
    uint64_t w = window(key, klen, 0);
    size_t a = 0, b = lc->nfence; /* first fence >= w */
    while (a < b) {
        size_t mid = a + (b - a) / 2;
        if (lc->fence[mid] < w)
            a = mid + 1;
        else
            b = mid;
    }
    size_t c = a, d = lc->nfence; /* first fence > w */
    while (c < d) {
        size_t mid = c + (d - c) / 2;
        if (lc->fence[mid] <= w)
            c = mid + 1;
        else
            d = mid;
    }
    *lo = a ? (a - 1) * LC_FENCE_EVERY + 1 : 0;
    *hi = c * LC_FENCE_EVERY < lc->n ? c * LC_FENCE_EVERY : lc->n;
}

/* First index in [0, n) whose key is >= KEY. */
static size_t lower_bound(const source *s, size_t n, const void *key, size_t klen)
{
    size_t lo = 0, hi = n;
    if (!s->delta && s->lc->fence)
        fence_narrow(s->lc, key, klen, &lo, &hi);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2, l;
        const uint8_t *k = src_key(s, mid, &l);
        if (key_cmp(k, l, key, klen) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* First index in [0, n) past the keys with O's prefix (keys below the prefix
 * or with it come first in byte order). */
static size_t prefix_end(const source *s, size_t n, const rc_list_opts *o)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2, l;
        const uint8_t *k = src_key(s, mid, &l);
        if (has_prefix(k, l, o) || key_cmp(k, l, o->prefix, o->prefix_len) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void src_bounds(source *s, size_t n, const rc_list_opts *o)
{
    size_t lo = 0, hi = n;
    if (o->start)
        lo = lower_bound(s, n, o->start, o->start_len);
    if (o->end)
        hi = lower_bound(s, n, o->end, o->end_len);
    if (o->prefix_len) {
        size_t p = lower_bound(s, n, o->prefix, o->prefix_len);
        size_t e = prefix_end(s, n, o);
        lo = p > lo ? p : lo;
        hi = e < hi ? e : hi;
    }
    s->lo = lo;
    s->hi = hi > lo ? hi : lo;
}

#define EMIT_BATCH 16 /* keys looked up in the keydir together */
_Static_assert(KEYDIR_SHARDS <= 64, "lc_emit keeps the shards of a batch in a 64-bit mask");

/* Walk snapshot and delta merged, in order, emitting the keys still live
 * until the limit, and look for one more (cache held shared). The keys are
 * checked against the keydir EMIT_BATCH at a time (no more than the page
 * still needs, plus the one that tells whether there is more), their shards
 * read-locked together in ascending order, so that the lookups' cache misses
 * overlap (rci_keydir_find_many). */
static int lc_emit(rc_db *db, rc_keyspace *k, const rc_list_opts *o, items *it, bool *more)
{
    const list_cache *lc = k->lc;
    source S = {.lc = lc, .delta = false}, D = {.lc = lc, .delta = true};
    src_bounds(&S, lc->n, o);
    src_bounds(&D, lc->dn, o);
    int64_t now = db_now_ms(db);
    bool rev = o->reverse;
    size_t i = rev ? S.hi : S.lo, j = rev ? D.hi : D.lo;
    const uint8_t *keys[EMIT_BATCH];
    size_t lens[EMIT_BATCH];
    uint64_t hashes[EMIT_BATCH];
    kd_loc locs[EMIT_BATCH];
    bool found[EMIT_BATCH];
    for (;;) {
        size_t want = EMIT_BATCH;
        if (o->limit && o->limit - it->n + 1 < want)
            want = o->limit - it->n + 1;
        size_t m = 0;
        uint64_t shards = 0;
        while (m < want) {
            bool hs = rev ? i > S.lo : i < S.hi, hd = rev ? j > D.lo : j < D.hi;
            if (!hs && !hd)
                break;
            size_t sl = 0, dl = 0;
            const uint8_t *sk = hs ? src_key(&S, rev ? i - 1 : i, &sl) : NULL;
            const uint8_t *dk = hd ? src_key(&D, rev ? j - 1 : j, &dl) : NULL;
            int c = hs ? -1 : 1; /* <= 0: take the snapshot's, >= 0: the delta's */
            if (hs && hd) {
                c = key_cmp(sk, sl, dk, dl);
                if (rev)
                    c = -c;
            }
            keys[m] = c <= 0 ? sk : dk;
            lens[m] = c <= 0 ? sl : dl;
            if (c <= 0)
                i = rev ? i - 1 : i + 1;
            if (c >= 0)
                j = rev ? j - 1 : j + 1;
            hashes[m] = rci_keydir_hash(keys[m], lens[m]);
            shards |= 1ull << keydir_shard_of(hashes[m]);
            m++;
        }
        if (m == 0)
            return 0;
        for (uint64_t b = shards; b; b &= b - 1)
            rci_keydir_rdlock(k->kd, (unsigned)__builtin_ctzll(b));
        rci_keydir_find_many(k->kd, m, hashes, keys, lens, locs, found);
        for (uint64_t b = shards; b; b &= b - 1)
            rci_keydir_unlock(k->kd, (unsigned)__builtin_ctzll(b));
        for (size_t x = 0; x < m; x++) {
            if (!found[x] || (locs[x].expires_at_ms && now >= locs[x].expires_at_ms))
                continue; /* deleted or expired since the snapshot */
            if (o->limit && it->n == o->limit) {
                *more = true;
                return 0;
            }
            int err = items_push(it, keys[x], lens[x], &locs[x]);
            if (err)
                return err;
        }
    }
}

static int list_cached(rc_db *db, rc_keyspace *k, const rc_list_opts *opts, rc_list **out)
{
    list_cache *lc = k->lc;
    /* the snapshot's 32-bit offsets reach 4 GiB of keys: scan beyond that */
    uint64_t key_bytes = atomic_load_explicit(&k->live_key_bytes, memory_order_relaxed);
    /* every key has a byte at least, so 3x the key bytes bounds the sum
     * without counting the keys (64 shard counters) on every listing */
    if (3 * key_bytes >= UINT32_MAX / 2 &&
        key_bytes + 2 * (uint64_t)rci_keydir_count(k->kd) >= UINT32_MAX / 2)
        return list_scan(db, k, opts, out);
    for (int tries = 0; tries < 3; tries++) {
        pthread_rwlock_wrlock(&lc->rw);
        int err =
            lc_refresh(lc, k->kd, atomic_load_explicit(&k->live_key_bytes, memory_order_relaxed));
        pthread_rwlock_unlock(&lc->rw);
        if (err == RC_ENOMEM || err == LC_TOO_BIG)
            break; /* cannot cache: scan */
        pthread_rwlock_rdlock(&lc->rw);
        if (!lc->built) { /* released in between (a tiny list_cache_idle_ms) */
            pthread_rwlock_unlock(&lc->rw);
            continue;
        }
        items it = {0};
        bool more = false;
        err = lc_emit(db, k, opts, &it, &more);
        pthread_rwlock_unlock(&lc->rw);
        return finish(db, k, opts, &it, more, err, out);
    }
    return list_scan(db, k, opts, out);
}

void rci_lc_release_idle(rc_db *db)
{
    int64_t now = mono_ms();
    for (uint32_t id = 0;; id++) {
        /* a handle read from the id table inside an epoch outlives it */
        epoch_slot *ep = rci_epoch_enter(db);
        rc_keyspace *ks = rci_ks_next(db, &id);
        if (!ks) {
            rci_epoch_exit(ep);
            break;
        }
        list_cache *lc = atomic_load(&ks->dropped) ? NULL : ks->lc;
        if (lc && atomic_load_explicit(&lc->bytes, memory_order_relaxed) &&
            now - atomic_load_explicit(&lc->last_used, memory_order_relaxed) >=
                (int64_t)db->opt.list_cache_idle_ms &&
            pthread_rwlock_trywrlock(&lc->rw) == 0) {
            if (now - atomic_load_explicit(&lc->last_used, memory_order_relaxed) >=
                (int64_t)db->opt.list_cache_idle_ms) {
                lc_shards_off(lc, ks->kd);
                lc_free_snapshot_acct(lc);
                lc_free_sorted(lc);
            }
            pthread_rwlock_unlock(&lc->rw);
        }
        rci_epoch_exit(ep);
    }
}

/* ---------------------------------------------------------------- the API */

void rc_list_free(rc_list *list)
{
    if (!list)
        return;
    items_free(list->items, list->count);
    free(list);
}

int rc_list_keys(rc_db *db, rc_keyspace *ks, const rc_list_opts *opts, rc_list **out)
{
    rci_error_clear();
    rc_list_opts none = {0};
    if (!db || !out)
        return rc_fail(RC_EINVAL, "NULL database or output");
    if (!opts)
        opts = &none;
    epoch_slot *ep = rci_epoch_enter(db);
    rc_keyspace *k = rci_ks_resolve(db, ks);
    if (!k) {
        rci_epoch_exit(ep);
        return rc_fail(RC_ENOKEYSPACE, "the keyspace was dropped");
    }
    int err =
        db->opt.list_cache_idle_ms ? list_cached(db, k, opts, out) : list_scan(db, k, opts, out);
    rci_epoch_exit(ep);
    return err;
}
