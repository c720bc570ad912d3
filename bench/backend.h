/*
 * backend.h — the small vtable kvbench drives every engine through.
 *
 * One file per engine (backend_ringcask.c, backend_rocksdb.c, ...) fills a
 * kvb_backend. The workloads only ever call these functions, so the same
 * loop, key stream, value stream and timer measure every engine. A backend
 * keeps one shared handle (opened by open()) plus one per-thread context
 * (thread_init()), because some engines want per-thread state for reads:
 * LMDB a reusable read transaction, RocksDB/LevelDB nothing.
 *
 * Sync semantics are fixed when the handle is opened (kvb_open_opts.sync):
 * kvbench reopens a backend when a workload needs a different mode (fillsync
 * always runs with KVB_SYNC_ALWAYS). Compression is off in every backend.
 */
#ifndef KVB_BACKEND_H
#define KVB_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum kvb_sync {
    KVB_SYNC_ALWAYS = 0,   /* every acknowledged write durable (fdatasync) */
    KVB_SYNC_INTERVAL = 1, /* kernel now, fdatasync every sync_interval_ms */
    KVB_SYNC_NONE = 2,     /* kernel now, OS decides when it reaches disk */
} kvb_sync;

typedef struct kvb_open_opts {
    const char *dir;           /* the engine's own directory (created if missing) */
    kvb_sync sync;             /* durability of each write */
    uint32_t sync_interval_ms; /* with KVB_SYNC_INTERVAL */
    uint64_t expected_bytes;   /* rough size of the data set (LMDB map size) */
    int append_io;             /* ringcask's rc_options.append_io (--append-io) */
} kvb_open_opts;

/* Engine-reported facts next to what kvbench measures from outside. */
typedef struct kvb_engine_stats {
    bool have_keydir;      /* the fields below are meaningful */
    uint64_t live_keys;    /* keys the engine holds */
    uint64_t keydir_bytes; /* RAM the engine's index says it holds */
    uint64_t fsyncs;       /* fdatasyncs issued since open (0: not known) */
    uint64_t fsync_ns;     /* their total duration */
    uint64_t recovery_ms;  /* the engine's own figure for its last open */
    uint64_t segments;     /* data files */
    uint64_t dead_bytes;   /* bytes on disk no longer live (merge candidates) */
    uint64_t merges;       /* merges run since open */
} kvb_engine_stats;

/* A value read back: backends reuse BUF between calls of one thread. */
typedef struct kvb_buf {
    void *data;
    size_t len;
    size_t cap;
    uint64_t sink; /* sum of touched bytes: the read cannot be optimised away */
} kvb_buf;

/* One write of a batch. */
typedef struct kvb_kv {
    const void *key;
    size_t klen;
    const void *val;
    size_t vlen;
} kvb_kv;

/* Return codes of get/del: found, absent, or an engine error (< 0). */
#define KVB_FOUND 0
#define KVB_MISSING 1

typedef struct kvb_backend {
    const char *name;
    /* Open (create) the store in OPTS->dir. *OUT is the shared handle.
     * Returns 0 or -1 with a message on stderr. */
    int (*open)(const kvb_open_opts *opts, void **out);
    void (*close)(void *db);
    /* Per-thread context, created and destroyed in the thread using it. */
    void *(*thread_init)(void *db);
    void (*thread_fini)(void *db, void *tctx);
    int (*put)(void *db, void *tctx, const void *key, size_t klen, const void *val, size_t vlen);
    /* N writes as one atomic batch (write batch / one transaction). */
    int (*put_batch)(void *db, void *tctx, const kvb_kv *kvs, size_t n);
    /* Copy the value into OUT (the bytes are touched, as a user would). */
    int (*get)(void *db, void *tctx, const void *key, size_t klen, kvb_buf *out);
    int (*del)(void *db, void *tctx, const void *key, size_t klen);
    /* Ordered listing: up to LIMIT keys >= START in byte order (values
     * too for the peers, whose iterators carry them; ringcask lists keys).
     * Returns the count or < 0. */
    long (*scan)(void *db, void *tctx, const void *start, size_t start_len, size_t limit,
                 kvb_buf *out);
    /* Full compaction / merge; NULL when the engine has none (LMDB). */
    int (*compact)(void *db);
    /* Make acknowledged writes durable now; used by kvbench's interval
     * syncer for peers without a native interval mode. NULL: not needed. */
    int (*sync_now)(void *db);
    /* Engine statistics; NULL when the engine has none worth reporting. */
    int (*stats)(void *db, kvb_engine_stats *out);
    /* The engine does --sync interval:MS itself (else kvbench runs a
     * thread calling sync_now every MS). */
    bool native_interval_sync;
} kvb_backend;

/* Grow BUF to at least N bytes; returns 0 or -1. */
int kvb_buf_reserve(kvb_buf *buf, size_t n);

#ifdef KVB_HAVE_RINGCASK
extern const kvb_backend kvb_backend_ringcask;
/* ringcask with its append path fixed whatever --append-io says, so that one
 * interleaved run compares the two paths (-e ringcask-mmap,ringcask-uring) */
extern const kvb_backend kvb_backend_ringcask_mmap;
extern const kvb_backend kvb_backend_ringcask_uring;
extern const kvb_backend kvb_backend_ringcask_pwrite;
#endif
#ifdef KVB_HAVE_ROCKSDB
extern const kvb_backend kvb_backend_rocksdb;
#endif
#ifdef KVB_HAVE_LEVELDB
extern const kvb_backend kvb_backend_leveldb;
#endif
#ifdef KVB_HAVE_LMDB
extern const kvb_backend kvb_backend_lmdb;
#endif

#endif /* KVB_BACKEND_H */
