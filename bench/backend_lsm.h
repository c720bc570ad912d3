/*
 * backend_lsm.h — the body of kvbench's LevelDB and RocksDB backends, which
 * is the same code: both C APIs (<leveldb/c.h>, <rocksdb/c.h>) have the same
 * functions and types under the prefixes leveldb_ and rocksdb_.
 *
 * Not a normal header: backend_leveldb.c and backend_rocksdb.c each include
 * it once, after including their engine's c.h and defining
 *   LSM(x)        the engine's name for x (rocksdb_##x),
 *   LSM_NAME      the engine's name as a string, for messages,
 *   LSM_BACKEND   the kvb_backend variable to define,
 * and then define lsm_sync_now(), the one function that differs (RocksDB
 * flushes its WAL; LevelDB writes an empty synchronous batch).
 *
 * What is measured (the fair comparison BENCHMARKS.md documents): the
 * engine's defaults except compression, which is off everywhere in kvbench
 * since the values are incompressible anyway. The WAL is on. sync=true per
 * write only under --sync always (and so for fillsync); otherwise
 * sync=false, and for --sync interval:MS kvbench's syncer calls
 * lsm_sync_now(). Reads use LSM(get), which returns a malloc'd copy, as
 * rc_get does.
 */
#ifndef LSM
#error "define LSM(x), LSM_NAME and LSM_BACKEND before including backend_lsm.h"
#endif

#include <stdio.h>
#include <stdlib.h>

typedef struct lsm {
    LSM(t) * db;
    LSM(options_t) * opts;
    LSM(writeoptions_t) * wo;
    LSM(readoptions_t) * ro;
} lsm;

static int lsm_check(const char *what, char *err)
{
    if (!err)
        return 0;
    fprintf(stderr, "kvbench: %s %s: %s\n", LSM_NAME, what, err);
    LSM(free)(err);
    return -1;
}

static int lsm_open(const kvb_open_opts *o, void **out)
{
    lsm *h = calloc(1, sizeof *h);
    if (!h)
        return -1;
    h->opts = LSM(options_create)();
    LSM(options_set_create_if_missing)(h->opts, 1);
    LSM(options_set_compression)(h->opts, LSM(no_compression));
    h->wo = LSM(writeoptions_create)();
    LSM(writeoptions_set_sync)(h->wo, o->sync == KVB_SYNC_ALWAYS);
    h->ro = LSM(readoptions_create)();
    char *err = NULL;
    h->db = LSM(open)(h->opts, o->dir, &err);
    if (lsm_check("open", err) != 0) {
        LSM(readoptions_destroy)(h->ro);
        LSM(writeoptions_destroy)(h->wo);
        LSM(options_destroy)(h->opts);
        free(h);
        return -1;
    }
    *out = h;
    return 0;
}

static void lsm_close(void *db)
{
    lsm *h = db;
    LSM(close)(h->db);
    LSM(readoptions_destroy)(h->ro);
    LSM(writeoptions_destroy)(h->wo);
    LSM(options_destroy)(h->opts);
    free(h);
}

static void *lsm_thread_init(void *db)
{
    (void)db;
    return LSM(writebatch_create)();
}

static void lsm_thread_fini(void *db, void *tctx)
{
    (void)db;
    LSM(writebatch_destroy)(tctx);
}

static int lsm_put(void *db, void *tctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    lsm *h = db;
    (void)tctx;
    char *err = NULL;
    LSM(put)(h->db, h->wo, key, klen, val, vlen, &err);
    return lsm_check("put", err);
}

static int lsm_put_batch(void *db, void *tctx, const kvb_kv *kvs, size_t n)
{
    lsm *h = db;
    LSM(writebatch_t) *wb = tctx;
    LSM(writebatch_clear)(wb);
    for (size_t i = 0; i < n; i++)
        LSM(writebatch_put)(wb, kvs[i].key, kvs[i].klen, kvs[i].val, kvs[i].vlen);
    char *err = NULL;
    LSM(write)(h->db, h->wo, wb, &err);
    return lsm_check("write", err);
}

static int lsm_get(void *db, void *tctx, const void *key, size_t klen, kvb_buf *out)
{
    lsm *h = db;
    (void)tctx;
    char *err = NULL;
    size_t vlen = 0;
    char *v = LSM(get)(h->db, h->ro, key, klen, &vlen, &err);
    if (lsm_check("get", err) != 0)
        return -1;
    if (!v)
        return KVB_MISSING;
    out->len = vlen;
    if (vlen > 0)
        out->sink += (unsigned char)v[0] + (unsigned char)v[vlen - 1];
    LSM(free)(v);
    return KVB_FOUND;
}

static int lsm_del(void *db, void *tctx, const void *key, size_t klen)
{
    lsm *h = db;
    (void)tctx;
    char *err = NULL;
    LSM(delete)(h->db, h->wo, key, klen, &err);
    return lsm_check("delete", err) == 0 ? KVB_FOUND : -1;
}

static long lsm_scan(void *db, void *tctx, const void *start, size_t start_len, size_t limit,
                     kvb_buf *out)
{
    lsm *h = db;
    (void)tctx;
    LSM(iterator_t) *it = LSM(create_iterator)(h->db, h->ro);
    long count = 0;
    for (LSM(iter_seek)(it, start, start_len); LSM(iter_valid)(it) && (size_t)count < limit;
         LSM(iter_next)(it)) {
        size_t kl = 0, vl = 0;
        const char *k = LSM(iter_key)(it, &kl);
        const char *v = LSM(iter_value)(it, &vl);
        out->sink += (unsigned char)k[0] + (vl ? (unsigned char)v[0] : 0u);
        count++;
    }
    char *err = NULL;
    LSM(iter_get_error)(it, &err);
    LSM(iter_destroy)(it);
    if (lsm_check("iterate", err) != 0)
        return -1;
    return count; /* keep the touches */
}

static int lsm_compact(void *db)
{
    lsm *h = db;
    LSM(compact_range)(h->db, NULL, 0, NULL, 0);
    return 0;
}

static int lsm_sync_now(void *db);

const kvb_backend LSM_BACKEND = {
    .name = LSM_NAME,
    .open = lsm_open,
    .close = lsm_close,
    .thread_init = lsm_thread_init,
    .thread_fini = lsm_thread_fini,
    .put = lsm_put,
    .put_batch = lsm_put_batch,
    .get = lsm_get,
    .del = lsm_del,
    .scan = lsm_scan,
    .compact = lsm_compact,
    .sync_now = lsm_sync_now,
    .stats = NULL,
    .native_interval_sync = false,
};
