/*
 * backend_leveldb.c — kvbench's LevelDB backend through the C API (c.h) of
 * the Debian package.
 *
 * Configuration, chosen to be the fair comparison documented in
 * BENCHMARKS.md: LevelDB defaults (the peer figures BENCHMARKS.md quotes
 * are "defaults") except compression, which is off everywhere in kvbench since
 * the values are incompressible anyway. The WAL is on. sync=true per write
 * only under --sync always (and so for fillsync); otherwise sync=false, and
 * for --sync interval:MS kvbench's syncer calls leveldb_flush_wal(sync=1).
 * Reads use leveldb_get, which returns a malloc'd copy, as rc_get does.
 */
#include "backend.h"

#include <leveldb/c.h>

#include <stdio.h>
#include <stdlib.h>

typedef struct ldb {
    leveldb_t *db;
    leveldb_options_t *opts;
    leveldb_writeoptions_t *wo;
    leveldb_readoptions_t *ro;
} ldb;

static int ldb_check(const char *what, char *err)
{
    if (!err)
        return 0;
    fprintf(stderr, "kvbench: leveldb %s: %s\n", what, err);
    leveldb_free(err);
    return -1;
}

static int ldb_open(const kvb_open_opts *o, void **out)
{
    ldb *h = calloc(1, sizeof *h);
    if (!h)
        return -1;
    h->opts = leveldb_options_create();
    leveldb_options_set_create_if_missing(h->opts, 1);
    leveldb_options_set_compression(h->opts, leveldb_no_compression);
    h->wo = leveldb_writeoptions_create();
    leveldb_writeoptions_set_sync(h->wo, o->sync == KVB_SYNC_ALWAYS);
    h->ro = leveldb_readoptions_create();
    char *err = NULL;
    h->db = leveldb_open(h->opts, o->dir, &err);
    if (ldb_check("open", err) != 0) {
        leveldb_readoptions_destroy(h->ro);
        leveldb_writeoptions_destroy(h->wo);
        leveldb_options_destroy(h->opts);
        free(h);
        return -1;
    }
    *out = h;
    return 0;
}

static void ldb_close(void *db)
{
    ldb *h = db;
    leveldb_close(h->db);
    leveldb_readoptions_destroy(h->ro);
    leveldb_writeoptions_destroy(h->wo);
    leveldb_options_destroy(h->opts);
    free(h);
}

static void *ldb_thread_init(void *db)
{
    (void)db;
    return leveldb_writebatch_create();
}

static void ldb_thread_fini(void *db, void *tctx)
{
    (void)db;
    leveldb_writebatch_destroy(tctx);
}

static int ldb_put(void *db, void *tctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    ldb *h = db;
    (void)tctx;
    char *err = NULL;
    leveldb_put(h->db, h->wo, key, klen, val, vlen, &err);
    return ldb_check("put", err);
}

static int ldb_put_batch(void *db, void *tctx, const kvb_kv *kvs, size_t n)
{
    ldb *h = db;
    leveldb_writebatch_t *wb = tctx;
    leveldb_writebatch_clear(wb);
    for (size_t i = 0; i < n; i++)
        leveldb_writebatch_put(wb, kvs[i].key, kvs[i].klen, kvs[i].val, kvs[i].vlen);
    char *err = NULL;
    leveldb_write(h->db, h->wo, wb, &err);
    return ldb_check("write", err);
}

static int ldb_get(void *db, void *tctx, const void *key, size_t klen, kvb_buf *out)
{
    ldb *h = db;
    (void)tctx;
    char *err = NULL;
    size_t vlen = 0;
    char *v = leveldb_get(h->db, h->ro, key, klen, &vlen, &err);
    if (ldb_check("get", err) != 0)
        return -1;
    if (!v)
        return KVB_MISSING;
    out->len = vlen;
    if (vlen > 0)
        out->sink += (unsigned char)v[0] + (unsigned char)v[vlen - 1];
    leveldb_free(v);
    return KVB_FOUND;
}

static int ldb_del(void *db, void *tctx, const void *key, size_t klen)
{
    ldb *h = db;
    (void)tctx;
    char *err = NULL;
    leveldb_delete(h->db, h->wo, key, klen, &err);
    return ldb_check("delete", err) == 0 ? KVB_FOUND : -1;
}

static long ldb_scan(void *db, void *tctx, const void *start, size_t start_len, size_t limit,
                     kvb_buf *out)
{
    ldb *h = db;
    (void)tctx;
    leveldb_iterator_t *it = leveldb_create_iterator(h->db, h->ro);
    long count = 0;
    for (leveldb_iter_seek(it, start, start_len); leveldb_iter_valid(it) && (size_t)count < limit;
         leveldb_iter_next(it)) {
        size_t kl = 0, vl = 0;
        const char *k = leveldb_iter_key(it, &kl);
        const char *v = leveldb_iter_value(it, &vl);
        out->sink += (unsigned char)k[0] + (vl ? (unsigned char)v[0] : 0u);
        count++;
    }
    char *err = NULL;
    leveldb_iter_get_error(it, &err);
    leveldb_iter_destroy(it);
    if (ldb_check("iterate", err) != 0)
        return -1;
    return count; /* keep the touches */
}

static int ldb_compact(void *db)
{
    ldb *h = db;
    leveldb_compact_range(h->db, NULL, 0, NULL, 0);
    return 0;
}

static int ldb_sync_now(void *db)
{
    ldb *h = db;
    leveldb_writeoptions_t *wo = leveldb_writeoptions_create();
    leveldb_writeoptions_set_sync(wo, 1);
    leveldb_writebatch_t *empty = leveldb_writebatch_create();
    char *err = NULL;
    leveldb_write(h->db, wo, empty, &err);
    leveldb_writebatch_destroy(empty);
    leveldb_writeoptions_destroy(wo);
    return ldb_check("sync", err);
}

const kvb_backend kvb_backend_leveldb = {
    .name = "leveldb",
    .open = ldb_open,
    .close = ldb_close,
    .thread_init = ldb_thread_init,
    .thread_fini = ldb_thread_fini,
    .put = ldb_put,
    .put_batch = ldb_put_batch,
    .get = ldb_get,
    .del = ldb_del,
    .scan = ldb_scan,
    .compact = ldb_compact,
    .sync_now = ldb_sync_now,
    .stats = NULL,
    .native_interval_sync = false,
};
