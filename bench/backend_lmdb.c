/*
 * backend_lmdb.c — kvbench's LMDB backend through lmdb.h.
 *
 * Configuration, the fair comparison documented in BENCHMARKS.md: a map size
 * far above the data set (virtual only: without MDB_WRITEMAP the file grows
 * as written), MDB_NOTLS so a thread can keep one read transaction and
 * reset/renew it around each read (the cheap way LMDB is meant to be read),
 * no compression (LMDB has none). Durability: --sync always commits with a
 * full sync (MDB_NOMETASYNC is never used, so commits are as durable as
 * LMDB allows); other modes open with MDB_NOSYNC and --sync interval:MS
 * relies on kvbench's syncer calling mdb_env_sync(force). Every single put
 * is its own write transaction; put_batch (the "fillbatch" workload) puts a
 * whole batch in one transaction, as the 1000 puts/txn peer figure of
 * BENCHMARKS.md.
 * LMDB has no compaction step, so compact is NULL.
 */
#include "backend.h"

#include <lmdb.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct lmdbk {
    MDB_env *env;
    MDB_dbi dbi;
} lmdbk;

typedef struct lmdbk_thread {
    MDB_txn *rtxn; /* reset between reads, renewed before the next */
} lmdbk_thread;

static int lm_check(const char *what, int rc)
{
    if (rc == 0)
        return 0;
    fprintf(stderr, "kvbench: lmdb %s: %s\n", what, mdb_strerror(rc));
    return -1;
}

static int lm_open(const kvb_open_opts *o, void **out)
{
    lmdbk *h = calloc(1, sizeof *h);
    if (!h)
        return -1;
    int rc = mdb_env_create(&h->env);
    if (lm_check("env_create", rc) != 0) {
        free(h);
        return -1;
    }
    size_t map = (size_t)64 << 30; /* 64 GiB of address space */
    if (o->expected_bytes * 4 > map)
        map = (size_t)(o->expected_bytes * 4);
    unsigned flags = MDB_NOTLS;
    if (o->sync != KVB_SYNC_ALWAYS)
        flags |= MDB_NOSYNC;
    MDB_txn *txn = NULL;
    if (lm_check("set_mapsize", mdb_env_set_mapsize(h->env, map)) != 0 ||
        lm_check("set_maxreaders", mdb_env_set_maxreaders(h->env, 256)) != 0 ||
        lm_check("env_open", mdb_env_open(h->env, o->dir, flags, 0644)) != 0 ||
        lm_check("txn_begin", mdb_txn_begin(h->env, NULL, 0, &txn)) != 0)
        goto fail;
    if (lm_check("dbi_open", mdb_dbi_open(txn, NULL, 0, &h->dbi)) != 0) {
        mdb_txn_abort(txn);
        goto fail;
    }
    if (lm_check("commit", mdb_txn_commit(txn)) != 0)
        goto fail;
    *out = h;
    return 0;
fail:
    mdb_env_close(h->env);
    free(h);
    return -1;
}

static void lm_close(void *db)
{
    lmdbk *h = db;
    mdb_env_close(h->env);
    free(h);
}

static void *lm_thread_init(void *db)
{
    lmdbk *h = db;
    lmdbk_thread *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    if (lm_check("txn_begin(rdonly)", mdb_txn_begin(h->env, NULL, MDB_RDONLY, &t->rtxn)) != 0) {
        free(t);
        return NULL;
    }
    mdb_txn_reset(t->rtxn);
    return t;
}

static void lm_thread_fini(void *db, void *tctx)
{
    (void)db;
    lmdbk_thread *t = tctx;
    if (!t)
        return;
    mdb_txn_abort(t->rtxn);
    free(t);
}

static int lm_put_many(lmdbk *h, const kvb_kv *kvs, size_t n)
{
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(h->env, NULL, 0, &txn);
    if (lm_check("txn_begin", rc) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        MDB_val k = {kvs[i].klen, (void *)kvs[i].key};
        MDB_val v = {kvs[i].vlen, (void *)kvs[i].val};
        rc = mdb_put(txn, h->dbi, &k, &v, 0);
        if (rc != 0) {
            mdb_txn_abort(txn);
            return lm_check("put", rc);
        }
    }
    return lm_check("commit", mdb_txn_commit(txn));
}

static int lm_put(void *db, void *tctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)tctx;
    kvb_kv kv = {key, klen, val, vlen};
    return lm_put_many(db, &kv, 1);
}

static int lm_put_batch(void *db, void *tctx, const kvb_kv *kvs, size_t n)
{
    (void)tctx;
    return lm_put_many(db, kvs, n);
}

static int lm_get(void *db, void *tctx, const void *key, size_t klen, kvb_buf *out)
{
    lmdbk *h = db;
    lmdbk_thread *t = tctx;
    if (lm_check("txn_renew", mdb_txn_renew(t->rtxn)) != 0)
        return -1;
    MDB_val k = {klen, (void *)key}, v;
    int rc = mdb_get(t->rtxn, h->dbi, &k, &v);
    int result = KVB_FOUND;
    if (rc == MDB_NOTFOUND) {
        result = KVB_MISSING;
    } else if (rc != 0) {
        result = lm_check("get", rc);
    } else if (kvb_buf_reserve(out, v.mv_size) != 0) {
        result = -1;
    } else { /* copy out of the map: the caller owns its value, as elsewhere */
        memcpy(out->data, v.mv_data, v.mv_size);
        out->len = v.mv_size;
    }
    mdb_txn_reset(t->rtxn);
    return result;
}

static int lm_del(void *db, void *tctx, const void *key, size_t klen)
{
    lmdbk *h = db;
    (void)tctx;
    MDB_txn *txn = NULL;
    if (lm_check("txn_begin", mdb_txn_begin(h->env, NULL, 0, &txn)) != 0)
        return -1;
    MDB_val k = {klen, (void *)key};
    int rc = mdb_del(txn, h->dbi, &k, NULL);
    if (rc == MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        return KVB_MISSING;
    }
    if (rc != 0) {
        mdb_txn_abort(txn);
        return lm_check("del", rc);
    }
    return lm_check("commit", mdb_txn_commit(txn)) == 0 ? KVB_FOUND : -1;
}

static long lm_scan(void *db, void *tctx, const void *start, size_t start_len, size_t limit,
                    kvb_buf *out)
{
    lmdbk *h = db;
    lmdbk_thread *t = tctx;
    if (lm_check("txn_renew", mdb_txn_renew(t->rtxn)) != 0)
        return -1;
    MDB_cursor *cur = NULL;
    long count = 0;
    if (lm_check("cursor_open", mdb_cursor_open(t->rtxn, h->dbi, &cur)) != 0) {
        mdb_txn_reset(t->rtxn);
        return -1;
    }
    MDB_val k = {start_len, (void *)start}, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && (size_t)count < limit) {
        out->sink +=
            ((unsigned char *)k.mv_data)[0] + (v.mv_size ? ((unsigned char *)v.mv_data)[0] : 0u);
        count++;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    mdb_txn_reset(t->rtxn);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return lm_check("cursor_get", rc);
    return count;
}

static int lm_sync_now(void *db)
{
    lmdbk *h = db;
    return lm_check("env_sync", mdb_env_sync(h->env, 1));
}

const kvb_backend kvb_backend_lmdb = {
    .name = "lmdb",
    .open = lm_open,
    .close = lm_close,
    .thread_init = lm_thread_init,
    .thread_fini = lm_thread_fini,
    .put = lm_put,
    .put_batch = lm_put_batch,
    .get = lm_get,
    .del = lm_del,
    .scan = lm_scan,
    .compact = NULL,
    .sync_now = lm_sync_now,
    .stats = NULL,
    .native_interval_sync = false,
};
