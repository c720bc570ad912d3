/*
 * backend_rocksdb.c — kvbench's RocksDB backend through the C API (c.h) of
 * the Debian package.
 *
 * Configuration, chosen to be the fair comparison documented in
 * BENCHMARKS.md: RocksDB defaults (the peer figures BENCHMARKS.md quotes
 * are "defaults") except compression, which is off everywhere in kvbench since
 * the values are incompressible anyway. The WAL is on. sync=true per write
 * only under --sync always (and so for fillsync); otherwise sync=false, and
 * for --sync interval:MS kvbench's syncer calls rocksdb_flush_wal(sync=1).
 * Reads use rocksdb_get, which returns a malloc'd copy, as rc_get does.
 */
#include "backend.h"

#include <rocksdb/c.h>

#include <stdio.h>
#include <stdlib.h>

typedef struct rdb {
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_writeoptions_t *wo;
    rocksdb_readoptions_t *ro;
} rdb;

static int rdb_check(const char *what, char *err)
{
    if (!err)
        return 0;
    fprintf(stderr, "kvbench: rocksdb %s: %s\n", what, err);
    rocksdb_free(err);
    return -1;
}

static int rdb_open(const kvb_open_opts *o, void **out)
{
    rdb *h = calloc(1, sizeof *h);
    if (!h)
        return -1;
    h->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(h->opts, 1);
    rocksdb_options_set_compression(h->opts, rocksdb_no_compression);
    h->wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(h->wo, o->sync == KVB_SYNC_ALWAYS);
    h->ro = rocksdb_readoptions_create();
    char *err = NULL;
    h->db = rocksdb_open(h->opts, o->dir, &err);
    if (rdb_check("open", err) != 0) {
        rocksdb_readoptions_destroy(h->ro);
        rocksdb_writeoptions_destroy(h->wo);
        rocksdb_options_destroy(h->opts);
        free(h);
        return -1;
    }
    *out = h;
    return 0;
}

static void rdb_close(void *db)
{
    rdb *h = db;
    rocksdb_close(h->db);
    rocksdb_readoptions_destroy(h->ro);
    rocksdb_writeoptions_destroy(h->wo);
    rocksdb_options_destroy(h->opts);
    free(h);
}

static void *rdb_thread_init(void *db)
{
    (void)db;
    return rocksdb_writebatch_create();
}

static void rdb_thread_fini(void *db, void *tctx)
{
    (void)db;
    rocksdb_writebatch_destroy(tctx);
}

static int rdb_put(void *db, void *tctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    rdb *h = db;
    (void)tctx;
    char *err = NULL;
    rocksdb_put(h->db, h->wo, key, klen, val, vlen, &err);
    return rdb_check("put", err);
}

static int rdb_put_batch(void *db, void *tctx, const kvb_kv *kvs, size_t n)
{
    rdb *h = db;
    rocksdb_writebatch_t *wb = tctx;
    rocksdb_writebatch_clear(wb);
    for (size_t i = 0; i < n; i++)
        rocksdb_writebatch_put(wb, kvs[i].key, kvs[i].klen, kvs[i].val, kvs[i].vlen);
    char *err = NULL;
    rocksdb_write(h->db, h->wo, wb, &err);
    return rdb_check("write", err);
}

static int rdb_get(void *db, void *tctx, const void *key, size_t klen, kvb_buf *out)
{
    rdb *h = db;
    (void)tctx;
    char *err = NULL;
    size_t vlen = 0;
    char *v = rocksdb_get(h->db, h->ro, key, klen, &vlen, &err);
    if (rdb_check("get", err) != 0)
        return -1;
    if (!v)
        return KVB_MISSING;
    out->len = vlen;
    if (vlen > 0)
        out->sink += (unsigned char)v[0] + (unsigned char)v[vlen - 1];
    rocksdb_free(v);
    return KVB_FOUND;
}

static int rdb_del(void *db, void *tctx, const void *key, size_t klen)
{
    rdb *h = db;
    (void)tctx;
    char *err = NULL;
    rocksdb_delete(h->db, h->wo, key, klen, &err);
    return rdb_check("delete", err) == 0 ? KVB_FOUND : -1;
}

static long rdb_scan(void *db, void *tctx, const void *start, size_t start_len, size_t limit,
                     kvb_buf *out)
{
    rdb *h = db;
    (void)tctx;
    rocksdb_iterator_t *it = rocksdb_create_iterator(h->db, h->ro);
    long count = 0;
    for (rocksdb_iter_seek(it, start, start_len); rocksdb_iter_valid(it) && (size_t)count < limit;
         rocksdb_iter_next(it)) {
        size_t kl = 0, vl = 0;
        const char *k = rocksdb_iter_key(it, &kl);
        const char *v = rocksdb_iter_value(it, &vl);
        out->sink += (unsigned char)k[0] + (vl ? (unsigned char)v[0] : 0u);
        count++;
    }
    char *err = NULL;
    rocksdb_iter_get_error(it, &err);
    rocksdb_iter_destroy(it);
    if (rdb_check("iterate", err) != 0)
        return -1;
    return count; /* keep the touches */
}

static int rdb_compact(void *db)
{
    rdb *h = db;
    rocksdb_compact_range(h->db, NULL, 0, NULL, 0);
    return 0;
}

static int rdb_sync_now(void *db)
{
    rdb *h = db;
    char *err = NULL;
    rocksdb_flush_wal(h->db, 1, &err);
    return rdb_check("flush_wal", err);
}

const kvb_backend kvb_backend_rocksdb = {
    .name = "rocksdb",
    .open = rdb_open,
    .close = rdb_close,
    .thread_init = rdb_thread_init,
    .thread_fini = rdb_thread_fini,
    .put = rdb_put,
    .put_batch = rdb_put_batch,
    .get = rdb_get,
    .del = rdb_del,
    .scan = rdb_scan,
    .compact = rdb_compact,
    .sync_now = rdb_sync_now,
    .stats = NULL,
    .native_interval_sync = false,
};
