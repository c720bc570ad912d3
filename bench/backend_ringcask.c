/*
 * backend_ringcask.c — kvbench's ringcask backend, through the public API
 * only (ringcask.h), exactly as an embedding application would use it.
 *
 * Options: the sync mode from --sync, compression off (compress_min_bytes 0)
 * like every peer, everything else at its documented default — including the
 * background merger, since it is part of what a user gets. Reads go through
 * rc_get_view, the engine's zero-copy read, and copy the value into the
 * thread's reused buffer inside the callback — the same copy out of the map
 * that the LMDB backend makes, and what an embedder keeping the value would
 * do (rc_get's malloc'd copy costs an allocation per read). Batches are one
 * rc_apply. Listing
 * is rc_list_keys with a start key and a limit, keys only.
 */
#include "backend.h"

#include <ringcask.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct rck_db {
    rc_db *db;
    rc_keyspace *ks;
} rck_db;

typedef struct rck_thread {
    rc_op *ops;
    size_t cap;
} rck_thread;

static void rck_report(const char *what, int rc)
{
    fprintf(stderr, "kvbench: ringcask %s: %s (%s)\n", what, rc_strerror(rc),
            rc_last_error_message());
}

static int rck_open_io(const kvb_open_opts *o, int append_io, void **out)
{
    rck_db *h = calloc(1, sizeof *h);
    if (!h)
        return -1;
    rc_options opts;
    rc_options_default(&opts);
    opts.sync = o->sync == KVB_SYNC_ALWAYS     ? RC_SYNC_ALWAYS
                : o->sync == KVB_SYNC_INTERVAL ? RC_SYNC_INTERVAL
                                               : RC_SYNC_NONE;
    if (o->sync_interval_ms)
        opts.sync_interval_ms = o->sync_interval_ms;
    opts.compress_min_bytes = 0;
    opts.append_io = (rc_append_io)append_io;
    int rc = rc_open(o->dir, &opts, &h->db);
    if (rc != 0) {
        rck_report("open", rc);
        free(h);
        return -1;
    }
    h->ks = rc_default_keyspace(h->db);
    *out = h;
    return 0;
}

static int rck_open(const kvb_open_opts *o, void **out)
{
    return rck_open_io(o, o->append_io, out);
}

static int rck_open_mmap(const kvb_open_opts *o, void **out)
{
    return rck_open_io(o, RC_APPEND_MMAP, out);
}

/* the io_uring path needs sync always: other modes run on the mapping */
static int rck_open_uring(const kvb_open_opts *o, void **out)
{
    return rck_open_io(o, o->sync == KVB_SYNC_ALWAYS ? RC_APPEND_URING : RC_APPEND_MMAP, out);
}

/* the io_uring path's blocks written by pwritev2 (append_io pwrite) */
static int rck_open_pwrite(const kvb_open_opts *o, void **out)
{
    return rck_open_io(o, o->sync == KVB_SYNC_ALWAYS ? RC_APPEND_PWRITE : RC_APPEND_MMAP, out);
}

static void rck_close(void *db)
{
    rck_db *h = db;
    int rc = rc_close(h->db);
    if (rc != 0)
        rck_report("close", rc);
    free(h);
}

static void *rck_thread_init(void *db)
{
    (void)db;
    return calloc(1, sizeof(rck_thread));
}

static void rck_thread_fini(void *db, void *tctx)
{
    (void)db;
    rck_thread *t = tctx;
    if (t)
        free(t->ops);
    free(t);
}

static int rck_put(void *db, void *tctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    rck_db *h = db;
    (void)tctx;
    int rc = rc_put(h->db, h->ks, key, klen, val, vlen, NULL);
    if (rc != 0) {
        rck_report("put", rc);
        return -1;
    }
    return 0;
}

static int rck_put_batch(void *db, void *tctx, const kvb_kv *kvs, size_t n)
{
    rck_db *h = db;
    rck_thread *t = tctx;
    if (n > t->cap) {
        rc_op *ops = realloc(t->ops, n * sizeof *ops);
        if (!ops)
            return -1;
        t->ops = ops;
        t->cap = n;
    }
    for (size_t i = 0; i < n; i++) {
        rc_op *op = &t->ops[i];
        memset(op, 0, sizeof *op);
        op->kind = RC_OP_PUT;
        op->ks = h->ks;
        op->key = kvs[i].key;
        op->klen = kvs[i].klen;
        op->val = kvs[i].val;
        op->vlen = kvs[i].vlen;
        op->type = RC_TYPE_RAW;
        op->ttl_ms = RC_TTL_DEFAULT;
    }
    int rc = rc_apply(h->db, t->ops, n, NULL);
    if (rc != 0) {
        rck_report("apply", rc);
        return -1;
    }
    return 0;
}

/* rc_get_view's callback: copy the value out of the mapping. */
static int rck_copy(void *ctx, const rc_view *v)
{
    kvb_buf *out = ctx;
    if (kvb_buf_reserve(out, v->len) != 0)
        return RC_ENOMEM;
    memcpy(out->data, v->data, v->len);
    out->len = v->len;
    return 0;
}

static int rck_get(void *db, void *tctx, const void *key, size_t klen, kvb_buf *out)
{
    rck_db *h = db;
    (void)tctx;
    int rc = rc_get_view(h->db, h->ks, key, klen, rck_copy, out);
    if (rc == RC_ENOTFOUND)
        return KVB_MISSING;
    if (rc != 0) {
        rck_report("get", rc);
        return -1;
    }
    return KVB_FOUND;
}

static int rck_del(void *db, void *tctx, const void *key, size_t klen)
{
    rck_db *h = db;
    (void)tctx;
    int rc = rc_delete(h->db, h->ks, key, klen, NULL);
    if (rc == RC_ENOTFOUND)
        return KVB_MISSING;
    if (rc != 0) {
        rck_report("delete", rc);
        return -1;
    }
    return KVB_FOUND;
}

static long rck_scan(void *db, void *tctx, const void *start, size_t start_len, size_t limit,
                     kvb_buf *out)
{
    rck_db *h = db;
    (void)tctx;
    rc_list_opts lo;
    memset(&lo, 0, sizeof lo);
    lo.start = start;
    lo.start_len = start_len;
    lo.limit = limit;
    rc_list *list = NULL;
    int rc = rc_list_keys(h->db, h->ks, &lo, &list);
    if (rc != 0) {
        rck_report("list", rc);
        return -1;
    }
    long count = (long)list->count;
    for (size_t i = 0; i < list->count; i++) /* touch each key, as the peers do */
        out->sink += ((unsigned char *)list->items[i].key)[0];
    rc_list_free(list);
    return count;
}

static int rck_compact(void *db)
{
    rck_db *h = db;
    int rc = rc_merge(h->db);
    if (rc != 0) {
        rck_report("merge", rc);
        return -1;
    }
    return 0;
}

static int rck_sync_now(void *db)
{
    rck_db *h = db;
    return rc_sync(h->db) == 0 ? 0 : -1;
}

static int rck_stats(void *db, kvb_engine_stats *out)
{
    rck_db *h = db;
    rc_stats st;
    memset(&st, 0, sizeof st);
    int rc = rc_stats_db(h->db, &st);
    if (rc != 0)
        return -1;
    out->have_keydir = true;
    out->live_keys = st.live_keys;
    out->keydir_bytes = st.keydir_bytes;
    out->fsyncs = st.fsyncs;
    out->fsync_ns = st.fsync_ns_total;
    out->recovery_ms = st.recovery_ms;
    out->segments = st.segments;
    out->dead_bytes = st.dead_bytes;
    out->merges = st.merges;
    return 0;
}

/* one table per append path; only the name and the open differ */
#define RCK_BACKEND(NAME, OPEN)                                                                    \
    {                                                                                              \
        .name = NAME, .open = OPEN, .close = rck_close, .thread_init = rck_thread_init,            \
        .thread_fini = rck_thread_fini, .put = rck_put, .put_batch = rck_put_batch,                \
        .get = rck_get, .del = rck_del, .scan = rck_scan, .compact = rck_compact,                  \
        .sync_now = rck_sync_now, .stats = rck_stats, .native_interval_sync = true,                \
    }

const kvb_backend kvb_backend_ringcask = RCK_BACKEND("ringcask", rck_open);
const kvb_backend kvb_backend_ringcask_mmap = RCK_BACKEND("ringcask-mmap", rck_open_mmap);
const kvb_backend kvb_backend_ringcask_uring = RCK_BACKEND("ringcask-uring", rck_open_uring);
const kvb_backend kvb_backend_ringcask_pwrite = RCK_BACKEND("ringcask-pwrite", rck_open_pwrite);
