/*
 * backend_rocksdb.c — kvbench's RocksDB backend through the C API (c.h) of
 * the Debian package: RocksDB defaults except compression (off), as
 * documented in backend_lsm.h, which holds the code it shares with the
 * LevelDB backend. --sync interval:MS flushes the WAL with sync=1.
 */
#include "backend.h"

#include <rocksdb/c.h>

#define LSM(x) rocksdb_##x
#define LSM_NAME "rocksdb"
#define LSM_BACKEND kvb_backend_rocksdb
#include "backend_lsm.h"

static int lsm_sync_now(void *db)
{
    lsm *h = db;
    char *err = NULL;
    rocksdb_flush_wal(h->db, 1, &err);
    return lsm_check("flush_wal", err);
}
