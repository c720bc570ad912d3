/*
 * backend_leveldb.c — kvbench's LevelDB backend through the C API (c.h) of
 * the Debian package: LevelDB defaults except compression (off), as
 * documented in backend_lsm.h, which holds the code it shares with the
 * RocksDB backend. LevelDB's C API has no WAL flush, so --sync interval:MS
 * writes an empty batch with sync=1, which syncs the log.
 */
#include "backend.h"

#include <leveldb/c.h>

#define LSM(x) leveldb_##x
#define LSM_NAME "leveldb"
#define LSM_BACKEND kvb_backend_leveldb
#include "backend_lsm.h"

static int lsm_sync_now(void *db)
{
    lsm *h = db;
    leveldb_writeoptions_t *wo = leveldb_writeoptions_create();
    leveldb_writeoptions_set_sync(wo, 1);
    leveldb_writebatch_t *empty = leveldb_writebatch_create();
    char *err = NULL;
    leveldb_write(h->db, wo, empty, &err);
    leveldb_writebatch_destroy(empty);
    leveldb_writeoptions_destroy(wo);
    return lsm_check("sync", err);
}
