/*
 * metrics_bucket.c — see metrics_bucket.h.
 *
 * An open-addressing hash table of pointers to counter blocks under a
 * rwlock: a request to a known bucket takes the read lock and adds with
 * relaxed atomics; the first request to a bucket takes the write lock to
 * insert (growing the table at half load). Only requests that reached an
 * existing bucket are counted, so a scan of made-up names cannot fill the
 * table; it is capped at BUCKET_COUNTERS_MAX all the same. A forgotten
 * bucket's counters are freed and its slot holds the shared TOMBSTONE, which
 * a later insert on that probe path reuses; when live entries and
 * tombstones fill half the table it is rebuilt without tombstones at the
 * size its live entries need (so create/delete churn leaves neither blocks
 * nor a larger table behind).
 */
#include "metrics_bucket.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "kvd.h"

typedef struct counters {
    char name[KVD_BUCKET_NAME_MAX + 1]; /* "" for a tombstone */
    size_t len;
    atomic_uint_fast64_t status_class[6];
    atomic_uint_fast64_t bytes_in, bytes_out;
} counters;

struct bucket_table {
    pthread_rwlock_t lock;
    counters **slots;
    size_t cap, used; /* used counts tombstones too */
    size_t live;
};

#define MIN_CAP 64u
static counters tombstone; /* len 0: matches no name */
#define TOMBSTONE (&tombstone)

static uint64_t hash_name(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

bucket_table *bucket_table_new(void)
{
    bucket_table *bt = calloc(1, sizeof *bt);
    if (bt == NULL)
        return NULL;
    bt->cap = MIN_CAP;
    bt->slots = calloc(bt->cap, sizeof *bt->slots);
    if (bt->slots == NULL) {
        free(bt);
        return NULL;
    }
    pthread_rwlock_init(&bt->lock, NULL);
    return bt;
}

void bucket_table_free(bucket_table *bt)
{
    if (bt == NULL)
        return;
    for (size_t i = 0; i < bt->cap; i++)
        if (bt->slots[i] != TOMBSTONE)
            free(bt->slots[i]);
    free(bt->slots);
    pthread_rwlock_destroy(&bt->lock);
    free(bt);
}

/* The slot index of NAME, or SIZE_MAX. Under either lock. */
static size_t find_at(const bucket_table *bt, const char *name, size_t len)
{
    size_t mask = bt->cap - 1;
    for (size_t i = hash_name(name, len) & mask, n = 0; n < bt->cap; i = (i + 1) & mask, n++) {
        counters *c = bt->slots[i];
        if (c == NULL)
            return SIZE_MAX;
        if (c->len == len && memcmp(c->name, name, len) == 0)
            return i;
    }
    return SIZE_MAX;
}

static counters *find(const bucket_table *bt, const char *name, size_t len)
{
    size_t i = find_at(bt, name, len);
    return i == SIZE_MAX ? NULL : bt->slots[i];
}

static void place(counters **slots, size_t cap, counters *c)
{
    size_t mask = cap - 1, i = hash_name(c->name, c->len) & mask;
    while (slots[i] != NULL)
        i = (i + 1) & mask;
    slots[i] = c;
}

/* Insert NAME under the write lock; NULL when full or out of memory. */
static counters *insert(bucket_table *bt, const char *name, size_t len)
{
    counters *c = find(bt, name, len);
    if (c != NULL)
        return c;
    if (bt->live >= BUCKET_COUNTERS_MAX)
        return NULL;
    c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    memcpy(c->name, name, len);
    c->len = len;
    /* reuse a tombstone on NAME's probe path before growing */
    size_t mask = bt->cap - 1;
    for (size_t i = hash_name(name, len) & mask; bt->slots[i] != NULL; i = (i + 1) & mask) {
        if (bt->slots[i] == TOMBSTONE) {
            bt->slots[i] = c;
            bt->live++;
            return c;
        }
    }
    if ((bt->used + 1) * 2 > bt->cap) {
        /* rebuild without tombstones, at the size the live entries need */
        size_t cap = MIN_CAP;
        while ((bt->live + 1) * 2 > cap)
            cap *= 2;
        counters **slots = calloc(cap, sizeof *slots);
        if (slots == NULL) {
            free(c);
            return NULL;
        }
        for (size_t i = 0; i < bt->cap; i++)
            if (bt->slots[i] != NULL && bt->slots[i] != TOMBSTONE)
                place(slots, cap, bt->slots[i]);
        free(bt->slots);
        bt->slots = slots;
        bt->cap = cap;
        bt->used = bt->live;
    }
    place(bt->slots, bt->cap, c);
    bt->used++;
    bt->live++;
    return c;
}

void bucket_table_count(bucket_table *bt, const char *name, size_t len, unsigned status,
                        uint64_t bytes_in, uint64_t bytes_out, bool (*live)(void *), void *ctx)
{
    if (bt == NULL || len == 0 || len > KVD_BUCKET_NAME_MAX)
        return;
    pthread_rwlock_rdlock(&bt->lock);
    counters *c = find(bt, name, len);
    if (c == NULL) {
        pthread_rwlock_unlock(&bt->lock);
        pthread_rwlock_wrlock(&bt->lock);
        c = live == NULL || live(ctx) ? insert(bt, name, len) : find(bt, name, len);
    }
    if (c != NULL) {
        unsigned cls = status / 100;
        if (cls < 6)
            atomic_fetch_add_explicit(&c->status_class[cls], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&c->bytes_in, bytes_in, memory_order_relaxed);
        atomic_fetch_add_explicit(&c->bytes_out, bytes_out, memory_order_relaxed);
    }
    pthread_rwlock_unlock(&bt->lock);
}

void bucket_table_get(bucket_table *bt, const char *name, size_t len, bucket_figures *out)
{
    memset(out, 0, sizeof *out);
    if (bt == NULL || len == 0)
        return;
    pthread_rwlock_rdlock(&bt->lock);
    counters *c = find(bt, name, len);
    if (c != NULL) {
        for (int i = 0; i < 6; i++) {
            out->status_class[i] = atomic_load_explicit(&c->status_class[i], memory_order_relaxed);
            out->requests += out->status_class[i];
        }
        out->bytes_in = atomic_load_explicit(&c->bytes_in, memory_order_relaxed);
        out->bytes_out = atomic_load_explicit(&c->bytes_out, memory_order_relaxed);
    }
    pthread_rwlock_unlock(&bt->lock);
}

void bucket_table_forget(bucket_table *bt, const char *name, size_t len)
{
    if (bt == NULL || len == 0)
        return;
    /* every reader of a block holds the read lock: none is inside it now */
    pthread_rwlock_wrlock(&bt->lock);
    size_t i = find_at(bt, name, len);
    if (i != SIZE_MAX) {
        free(bt->slots[i]);
        bt->slots[i] = TOMBSTONE;
        bt->live--;
    }
    pthread_rwlock_unlock(&bt->lock);
}

size_t bucket_table_live(bucket_table *bt)
{
    if (bt == NULL)
        return 0;
    pthread_rwlock_rdlock(&bt->lock);
    size_t n = bt->live;
    pthread_rwlock_unlock(&bt->lock);
    return n;
}
