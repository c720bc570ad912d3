/*
 * ringcask.h — the whole public API of libringcask.
 *
 * ringcask is an embeddable key-value storage engine with a bitcask-style
 * layout: every write is appended to a log of segment files, and an in-memory
 * hash index (the keydir) maps each live key to the location of its newest
 * record. A read is one hash lookup and one read of one record.
 *
 * Guarantees
 *   - Durability per sync mode (rc_options.sync):
 *       RC_SYNC_ALWAYS   a call returns success only after the record is on
 *                        stable storage (fdatasync, or an O_DIRECT RWF_DSYNC
 *                        write on the io_uring path; group-committed: one
 *                        sync covers every writer waiting at that moment).
 *       RC_SYNC_INTERVAL success once the record is in the kernel's page
 *                        cache; a background fdatasync runs at least every
 *                        sync_interval_ms. A machine crash may lose at most
 *                        that window; a process crash loses nothing.
 *       RC_SYNC_NONE     success once the record is in the page cache; the OS
 *                        decides when it reaches the disk. A process crash
 *                        (SIGKILL) loses nothing acknowledged.
 *   - Crash safety: a record is either wholly valid (its checksum holds) or
 *     treated as absent. A torn tail is truncated at open. Nothing that was
 *     acknowledged under RC_SYNC_ALWAYS is lost, nothing deleted comes back.
 *   - Batches (rc_apply) are atomic: after a crash a batch is present entirely
 *     or not at all; concurrent readers using rc_apply with RC_OP_GET never see
 *     a batch half applied.
 *   - Readers never wait for disk I/O of writers; writers to different keys
 *     only serialise on the short append step.
 *
 * The price
 *   - Every live key lives in RAM: about 16 bytes of entry plus the key bytes,
 *     plus the hash slot (8 bytes at 60-90 % load) — see the capacity table in
 *     BENCHMARKS.md. Keys with a TTL cost 8 bytes more.
 *   - Overwritten and deleted data stays on disk until merge rewrites the
 *     segment; merge costs sequential I/O proportional to live data.
 *   - Listing keys in order needs a sorted copy of a keyspace's keys, built
 *     by the first listing and kept while listings continue (rc_list_keys).
 *
 * Conventions
 *   - Every function returns 0 or a negative RC_E* code (rc_strerror names
 *     it); errno is never the error channel. Outputs go through pointers.
 *   - Handles are opaque. Memory handed out is owned by the caller and freed
 *     with the function named in the comment of the call that returned it.
 *   - All functions are thread-safe on one rc_db unless stated otherwise.
 *   - Keys: 1..RC_KEY_MAX bytes, any bytes. Values: 0..RC_VALUE_MAX bytes.
 *   - Times are milliseconds since the Unix epoch (the clock of
 *     rc_options.clock_ms, CLOCK_REALTIME by default).
 */
#ifndef RINGCASK_H
#define RINGCASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library's version: the one place it is written. CMake reads these three
 * lines for the shared library's VERSION and SOVERSION (the major number) and
 * for ringcask.pc; rc_version() returns them as text. */
#define RC_VERSION_MAJOR 0
#define RC_VERSION_MINOR 1
#define RC_VERSION_PATCH 0

/* RC_API marks the library's exported functions. It is built with
 * -fvisibility=hidden and a linker version script (engine/ringcask.map), so
 * these are its only visible symbols: nothing internal can collide with a
 * program's own names. */
#if defined(__GNUC__) || defined(__clang__)
#define RC_API __attribute__((visibility("default")))
#else
#define RC_API
#endif

/* Hard limits, enforced on every call and on every length read from disk. */
#define RC_KEY_MAX 1024u                    /* bytes in a key */
#define RC_VALUE_MAX (256u * 1024u * 1024u) /* bytes in a value */
#define RC_KEYSPACE_NAME_MAX 128u           /* bytes in a keyspace name */
#define RC_BATCH_MAX 100000u                /* ops in one rc_apply call */

/* ---------------------------------------------------------------- errors */

#define RC_OK 0
#define RC_EINVAL (-1)     /* an argument is invalid (NULL, bad option, ...) */
#define RC_ENOTFOUND (-2)  /* the key is absent or expired */
#define RC_EEXISTS (-3)    /* set-if-absent on a present key; keyspace exists */
#define RC_ECONFLICT (-4)  /* compare-and-swap: the sequence number differs */
#define RC_ETYPE (-5)      /* the operation does not fit the value's type */
#define RC_EOVERFLOW (-6)  /* an increment would overflow int64 or a float */
#define RC_EKEYSIZE (-7)   /* key empty or longer than RC_KEY_MAX */
#define RC_EVALUESIZE (-8) /* value longer than RC_VALUE_MAX */
#define RC_ENOMEM (-9)     /* out of memory */
#define RC_EIO (-10)       /* an I/O error from the operating system */
#define RC_ENOSPC (-11)    /* the disk is full; nothing was written */
#define RC_ECORRUPT (-12)  /* data failed its checksum or is malformed */
#define RC_ELOCKED (-13)   /* another process holds the directory's LOCK */
#define RC_EREADONLY                                                                               \
    (-14)                    /* opened read-only, or turned read-only after a                      \
                                failed fdatasync (reopen to recover) */
#define RC_ENOKEYSPACE (-15) /* no such keyspace, or it was dropped */
#define RC_EHORIZON                                                                                \
    (-16)                  /* backup 'since' is below the tombstone horizon:                       \
                              take a full backup */
#define RC_EGAP (-17)      /* an incremental stream does not follow on */
#define RC_ELIMIT (-18)    /* too many ops in a batch, or a similar limit */
#define RC_EVERSION (-19)  /* a file or stream of an unsupported version */
#define RC_ECLOSED (-20)   /* the database is closing */
#define RC_ENOTEMPTY (-21) /* a full backup can only load into an empty db */
#define RC_EIDENTITY                                                                               \
    (-22) /* an incremental stream from another database, onto a                                   \
             diverged one, or from a stream naming none */

/* A static English description of an RC_E* code ("unknown error" for others).
 * Never NULL; the caller does not free it. */
RC_API const char *rc_strerror(int err);

/* A description of the most recent failure in the calling thread, with
 * details (the path, the offset, the pid holding a lock) that the code alone
 * cannot carry. Thread-local; every ringcask call that returns an int code
 * empties it first, so it describes the latest such call only (empty after a
 * success). Empty string when there is nothing to add. Never NULL; do not
 * free. */
RC_API const char *rc_last_error_message(void);

/* The library's version as "MAJOR.MINOR.PATCH" (of the library linked, which
 * may differ from the RC_VERSION_* this program was compiled with). Static
 * string, never NULL; the caller does not free it. */
RC_API const char *rc_version(void);

/* Empty the calling thread's detail message (a server does it when it starts
 * a request, so no detail of an earlier request can reach its answer). */
RC_API void rc_error_clear(void);

/* --------------------------------------------------------------- options */

typedef enum rc_sync_mode {
    RC_SYNC_ALWAYS = 0,
    RC_SYNC_INTERVAL = 1,
    RC_SYNC_NONE = 2,
} rc_sync_mode;

/* How appended records reach the segment file (rc_options.append_io).
 *   RC_APPEND_AUTO   the io_uring path when sync is RC_SYNC_ALWAYS and the
 *                    kernel offers io_uring and O_DIRECT on the directory's
 *                    file system; the mapping otherwise. The default.
 *   RC_APPEND_MMAP   records are copied into a shared mapping of the
 *                    preallocated segment; the group-commit leader calls
 *                    fdatasync.
 *   RC_APPEND_URING  records are staged in the process's memory and the
 *                    group-commit leader writes the group's blocks into the
 *                    zero-filled preallocation with O_DIRECT through the
 *                    database's io_uring (one WRITE_FIXED submission of a
 *                    registered buffer to a registered file), then flushes
 *                    them with fdatasync from its own thread. Needs
 *                    RC_SYNC_ALWAYS (a process crash loses what no leader
 *                    wrote yet, and only sync=always waits for a leader):
 *                    rc_open fails with RC_EINVAL otherwise, and with
 *                    RC_EIO when the kernel or file system refuses io_uring
 *                    or O_DIRECT.
 *   RC_APPEND_PWRITE the same staging, blocks and rules as RC_APPEND_URING,
 *                    but the group write is one pwritev2(O_DIRECT,
 *                    RWF_DSYNC) system call from the leader instead of the
 *                    ring. */
typedef enum rc_append_io {
    RC_APPEND_AUTO = 0,
    RC_APPEND_MMAP = 1,
    RC_APPEND_URING = 2,
    RC_APPEND_PWRITE = 3,
} rc_append_io;

/* A clock for TTL decisions, in ms since the epoch. Tests inject their own. */
typedef int64_t (*rc_clock_fn)(void *ctx);

typedef struct rc_options {
    rc_sync_mode sync;               /* default RC_SYNC_ALWAYS */
    uint32_t sync_interval_ms;       /* RC_SYNC_INTERVAL period; default 100 */
    uint64_t segment_bytes;          /* rotate the active segment before a write
                                        would pass this; 4 KiB .. 4 GiB - 1;
                                        default 256 MiB */
    bool create_if_missing;          /* create DIR if absent; default true */
    bool read_only;                  /* never write, take no lock (for kvdump
                                        beside a live kvd); default false */
    bool strict;                     /* a corrupt record inside an immutable
                                        segment fails rc_open with RC_ECORRUPT
                                        instead of being skipped; default false */
    bool write_hints;                /* write hint files; default true */
    uint32_t compress_min_bytes;     /* zstd-compress values at least this long
                                        when it saves space; 0 = never; default 512 */
    int compress_level;              /* zstd level 1..19; default 1 */
    uint32_t merge_dead_pct;         /* a sealed segment with this % dead bytes
                                        (0..100) is merged in the background;
                                        default 40 */
    uint64_t merge_dead_bytes;       /* ... or this many dead bytes; default
                                        segment_bytes / 2 */
    uint32_t merge_check_ms;         /* how often the background merger looks
                                        for work; 0 disables it; default 1000 */
    uint64_t merge_rate_bytes;       /* merge I/O budget in bytes/s; 0 = unlimited;
                                        default 64 MiB/s */
    uint64_t tombstone_retention_ms; /* merge keeps a tombstone at least this
                                     long; default 7 days */
    uint32_t ttl_sweep_ms;           /* period of the active-expiry sweeper;
                                        0 disables it; default 100 */
    uint32_t list_cache_idle_ms;     /* keep a keyspace's sorted-keys cache
                                        (rc_list_keys) until no listing used it
                                        for this long; 0 = no cache, every
                                        listing scans; default 60000 */
    rc_clock_fn clock_ms;            /* default: CLOCK_REALTIME */
    void *clock_ctx;
    uint32_t recovery_threads; /* threads that load hint files at open
                                  (the opening thread included), at most
                                  8; 0 = one per online CPU; 1 = no extra
                                  thread. Default 0 */
    rc_append_io append_io;    /* the append path (rc_append_io above);
                                  default RC_APPEND_AUTO */
} rc_options;

/* Fill OPTS (the caller's) with the defaults documented above. Nothing is
 * allocated. */
RC_API void rc_options_default(rc_options *opts);

/* ------------------------------------------------------------- database */

typedef struct rc_db rc_db;
typedef struct rc_keyspace rc_keyspace;

/* Open (or create, with create_if_missing) the database in directory DIR.
 * OPTS may be NULL for the defaults. On success *OUT owns the handle; free it
 * with rc_close(). Recovery runs here: hint files where valid, else segment
 * scans; a torn tail of the active segment is truncated; corrupt records in
 * immutable segments are skipped and counted (rc_stats.corrupt_records).
 * Errors: RC_EINVAL, RC_ELOCKED (another process writes DIR), RC_ENOTFOUND
 * (DIR missing and !create_if_missing), RC_ECORRUPT (strict mode),
 * RC_EVERSION, RC_EIO, RC_ENOMEM. */
RC_API int rc_open(const char *dir, const rc_options *opts, rc_db **out);

/* Flush, write the hint of the active segment, release the lock and free
 * DB and every keyspace handle it gave out. DB may be NULL. Returns the first
 * error met while flushing (the handle is freed regardless). */
RC_API int rc_close(rc_db *db);

/* Make every acknowledged write durable now (fdatasync). Nothing to free. */
RC_API int rc_sync(rc_db *db);

/* --------------------------------------------------------------- keyspaces
 * A keyspace is a named, independent key namespace with its own keydir, so
 * listing, counting and dropping cost work proportional to that keyspace.
 * The keyspace named "default" always exists and cannot be dropped. Names are
 * 1..RC_KEYSPACE_NAME_MAX bytes of any value except NUL. */

#define RC_KS_CREATE 1 /* create the keyspace if it does not exist */
#define RC_KS_EXCL 2   /* with RC_KS_CREATE: fail with RC_EEXISTS if it exists */

/* The always-present keyspace "default". Owned by DB; never NULL. */
RC_API rc_keyspace *rc_default_keyspace(rc_db *db);

/* Find (or create, durably, with RC_KS_CREATE) keyspace NAME. Each successful
 * call gives the caller one reference to *OUT, which stays owned by DB:
 * give the reference back with rc_keyspace_release when done with the
 * handle, or keep it until rc_close (a reference never released keeps the
 * handle, small once dropped, until then). While the caller holds a reference
 * the handle stays valid, also after a drop (then every call on it answers
 * RC_ENOKEYSPACE). Errors: RC_ENOKEYSPACE, RC_EEXISTS, RC_EINVAL (bad name),
 * RC_EIO/RC_ENOSPC (creating), RC_EREADONLY. */
RC_API int rc_keyspace_open(rc_db *db, const char *name, int flags, rc_keyspace **out);

/* Take one more reference to KS (a handle the caller holds a reference to),
 * for a copy of the pointer that another owner gives back on its own. No
 * reference is needed for rc_default_keyspace. KS may be NULL. */
RC_API void rc_keyspace_retain(rc_keyspace *ks);

/* Give back one reference to KS taken by rc_keyspace_open or
 * rc_keyspace_retain. Once a dropped keyspace's last reference is given
 * back, its handle is freed: KS must not be used after this call unless the
 * caller holds another reference. A live keyspace's handle stays (the
 * database holds it while the keyspace exists). KS may be NULL (no-op).
 * RC_EINVAL when KS has no reference left to give back (released more often
 * than taken; nothing changes). */
RC_API int rc_keyspace_release(rc_db *db, rc_keyspace *ks);

/* Drop keyspace NAME and all its keys, durably and atomically: after a crash
 * it is either wholly present or wholly gone. Cost is proportional to the
 * keyspace's key count. Handles to it stay valid (answering RC_ENOKEYSPACE)
 * while someone holds a reference (rc_keyspace_release); a handle nobody
 * holds is freed at once. Errors: RC_ENOKEYSPACE, RC_EINVAL ("default"). */
RC_API int rc_keyspace_drop(rc_db *db, const char *name);

/* The names of all live keyspaces, in byte order. *NAMES is an array of
 * *COUNT NUL-terminated strings, owned by the caller: free it with
 * rc_names_free(). rc_names_free frees the array and its strings; NAMES may
 * be NULL. */
RC_API int rc_keyspace_list(rc_db *db, char ***names, size_t *count);
RC_API void rc_names_free(char **names, size_t count);

/* The keyspace's name; owned by the handle. */
RC_API const char *rc_keyspace_name(const rc_keyspace *ks);

/* Limit the values writes may leave in KS to BYTES (0: the engine's
 * RC_VALUE_MAX): a put, append, getset or increment whose resulting value
 * would be longer fails with RC_EVALUESIZE and its batch applies nothing.
 * Held in memory by this handle only (not persistent): set it after each
 * open. RC_EINVAL when BYTES is over RC_VALUE_MAX. */
RC_API int rc_keyspace_set_max_value(rc_keyspace *ks, uint64_t bytes);

/* Set the keyspace's default TTL in ms (0 = none), used by writes whose
 * ttl_ms is RC_TTL_DEFAULT. Persistent. KS stays owned by its database;
 * nothing to free. rc_keyspace_default_ttl reads it back. */
RC_API int rc_keyspace_set_default_ttl(rc_keyspace *ks, int64_t ttl_ms);
RC_API int64_t rc_keyspace_default_ttl(const rc_keyspace *ks);

/* ----------------------------------------------------------------- values */

typedef enum rc_type {
    RC_TYPE_RAW = 0,   /* bytes */
    RC_TYPE_INT = 1,   /* int64, stored as its decimal text */
    RC_TYPE_FLOAT = 2, /* float64, stored as its shortest round-trip text */
    RC_TYPE_JSON = 3,  /* a JSON document (the engine does not parse it) */
} rc_type;

/* A value read from the database. DATA is owned by the caller once filled
 * and freed with rc_value_free(). SEQ is the sequence number of the write
 * that produced it (the server's ETag); SEQ == 0 means "absent" where a call
 * documents that. EXPIRES_AT_MS is 0 when the key has no TTL. */
typedef struct rc_value {
    void *data;
    size_t len;
    rc_type type;
    uint64_t seq;
    int64_t expires_at_ms;
} rc_value;

/* Free V->data and zero *V. V may be NULL. */
RC_API void rc_value_free(rc_value *v);

/* A number for increments: TYPE is RC_TYPE_INT (I) or RC_TYPE_FLOAT (F). */
typedef struct rc_number {
    rc_type type;
    int64_t i;
    double f;
} rc_number;

/* ------------------------------------------------------------------ ops
 * Every write is an rc_op; rc_apply runs one or many atomically. The single-
 * key helpers below are thin wrappers around it. */

typedef enum rc_op_kind {
    RC_OP_PUT = 0,    /* set KEY to VAL (with COND) */
    RC_OP_DELETE = 1, /* delete KEY; RC_ENOTFOUND (fails the batch) only when
                         COND == RC_IF_PRESENT; otherwise result.seq == 0
                         tells it was absent */
    RC_OP_INCR = 2,   /* add BY to an int/float value; absent counts as 0
                         (created with TYPE of BY). int+int stays int (error
                         RC_EOVERFLOW on overflow); any float makes a float.
                         RC_ETYPE for raw/json values. RESULT = new value. */
    RC_OP_APPEND = 3, /* append VAL to a raw/json value (absent = empty);
                         RC_ETYPE for int/float. RESULT = new value. */
    RC_OP_GETSET = 4, /* set KEY to VAL; RESULT = previous value (seq 0 and
                         NULL data when it was absent) */
    RC_OP_GET = 5,    /* read KEY as it was just before the batch's writes;
                         RESULT.seq == 0 when absent (never an error) */
} rc_op_kind;

typedef enum rc_cond {
    RC_IF_ANY = 0,     /* unconditional */
    RC_IF_ABSENT = 1,  /* only if the key is absent: else RC_EEXISTS */
    RC_IF_SEQ = 2,     /* only if the current seq == IF_SEQ: else RC_ECONFLICT
                          (an absent key has seq 0) */
    RC_IF_PRESENT = 3, /* only if the key exists: else RC_ENOTFOUND */
} rc_cond;

#define RC_TTL_DEFAULT 0 /* ttl_ms: use the keyspace's default TTL */
#define RC_TTL_NONE (-1) /* ttl_ms: no expiry even if the keyspace has one */

typedef struct rc_op {
    /* input */
    rc_op_kind kind;
    rc_keyspace *ks; /* NULL = the default keyspace */
    const void *key;
    size_t klen;
    const void *val; /* PUT, APPEND, GETSET */
    size_t vlen;
    rc_type type;   /* PUT, GETSET: the stored type tag (engine does not
                       validate the text of INT/FLOAT/JSON values) */
    int64_t ttl_ms; /* PUT, GETSET, INCR, APPEND: RC_TTL_DEFAULT, RC_TTL_NONE
                       or > 0. INCR/APPEND with RC_TTL_DEFAULT keep the
                       existing expiry of a present key. */
    rc_cond cond;
    uint64_t if_seq; /* with RC_IF_SEQ */
    rc_number by;    /* INCR */
    /* output, filled by rc_apply */
    int status;      /* 0 or the op's own error */
    uint64_t seq;    /* the sequence number this op wrote (0 for GET, and for
                        a DELETE of an absent key). Within one rc_apply the
                        writes take increasing numbers in op order. */
    bool existed;    /* writes: the key was present (and unexpired) just
                        before this op */
    rc_value result; /* GET, GETSET, INCR, APPEND: the value, which the caller
                        frees with rc_value_free(). PUT: no data, but type,
                        seq and expires_at_ms of what was written. Zeroed
                        for DELETE. */
} rc_op;

/* Apply OPS[0..N) atomically: validate and evaluate them in order (each write
 * sees the batch's earlier writes; RC_OP_GET sees the state before the
 * batch), then write them as one framed batch. On any failure nothing is
 * written, the return value is the first failing op's error, and *FAILED (if
 * not NULL) is its index. N == 0 is a no-op. N > RC_BATCH_MAX: RC_ELIMIT.
 * Result buffers of ops are filled only on success. OPS stays the caller's;
 * the buffers rc_apply puts in ops[i].result are the caller's too, freed with
 * rc_value_free(). */
RC_API int rc_apply(rc_db *db, rc_op *ops, size_t n, size_t *failed);

/* Called once when the writes of an rc_apply_async call are durable (STATUS
 * 0) or can no longer become durable (STATUS < 0: RC_EIO when the
 * fdatasync that should have covered them failed; the detail, naming the
 * errno such as ENOSPC or EIO, is in rc_last_error_message() for the
 * duration of the call). CTX is the caller's, passed through untouched. */
typedef void (*rc_durable_fn)(void *ctx, int status);

/* rc_apply without waiting for durability: validate, evaluate, append and
 * publish OPS exactly as rc_apply does (same atomicity, same results in
 * ops[i], same visibility: a concurrent reader may see the new values
 * before they are durable, as with rc_apply under RC_SYNC_ALWAYS), then
 * return; DONE(CTX, status) runs once their group commit is on stable
 * storage.
 *
 * Return value: non-zero (the same errors as rc_apply, *FAILED its op index;
 * RC_ENOSPC when the segment cannot grow, RC_EREADONLY after an earlier
 * failed fdatasync) means nothing was written and DONE is never called.
 * 0 means the writes are applied and DONE is called exactly once:
 *   - on the calling thread, before rc_apply_async returns, when nothing
 *     waits for a sync: the sync mode is not RC_SYNC_ALWAYS, the batch wrote
 *     no record (reads only, a delete of an absent key), or the engine could
 *     not queue the wait (it then waits for the sync itself, like rc_apply);
 *   - otherwise on one of the database's completion threads (two per rc_db,
 *     started by the first call that needs them), which leads or joins the
 *     group commit that covers the writes and then calls every DONE it
 *     covered, in no promised order (two DONEs may run at the same time).
 * DONE must be quick and must not block: it may copy results, signal, wake
 * another thread, call rc_get/rc_get_meta/rc_list_keys and rc_apply_async;
 * it must not call rc_close, rc_sync, rc_apply or any other call that waits
 * for a sync (under RC_SYNC_ALWAYS they would stall every pending DONE) and
 * must not free the rc_db. DONE never runs after rc_close returns: rc_close first syncs
 * and completes every pending write (status 0, or the sync's error).
 * OPS stays the caller's and may be reused or freed as soon as
 * rc_apply_async returns; the result buffers are the caller's (rc_value_free).
 * DONE must not be NULL. */
RC_API int rc_apply_async(rc_db *db, rc_op *ops, size_t n, size_t *failed, rc_durable_fn done,
                          void *ctx);

/* Set KEY to VAL as raw bytes with no TTL (or the keyspace default). *SEQ (if
 * not NULL) receives the write's sequence number. KEY and VAL are copied (the
 * caller keeps them); nothing to free. */
RC_API int rc_put(rc_db *db, rc_keyspace *ks, const void *key, size_t klen, const void *val,
                  size_t vlen, uint64_t *seq);

/* Copy the value of KEY into *OUT (free with rc_value_free()).
 * Errors: RC_ENOTFOUND (absent or expired), RC_EKEYSIZE. A record that fails
 * its checksum when read is dropped from the keydir and counted once in
 * rc_stats.corrupt_reads; this read and every later one answer RC_ENOTFOUND
 * (the same holds for rc_apply's reads and rc_list_keys with values). */
RC_API int rc_get(rc_db *db, rc_keyspace *ks, const void *key, size_t klen, rc_value *out);

/* Like rc_get without the value: OUT->data stays NULL, OUT->len is the
 * value's length. No free needed. */
RC_API int rc_get_meta(rc_db *db, rc_keyspace *ks, const void *key, size_t klen, rc_value *out);

/* A value lent by rc_get_view: DATA (LEN bytes, not NUL-terminated) is owned
 * by the engine and valid only until the callback it is passed to returns. */
typedef struct rc_view {
    const void *data;
    size_t len;
    rc_type type;
    uint64_t seq;
    int64_t expires_at_ms;
} rc_view;

/* Called once by rc_get_view with the value; its return value becomes
 * rc_get_view's. */
typedef int (*rc_view_fn)(void *ctx, const rc_view *view);

/* Zero-copy read: call FN(CTX, view) once with KEY's value in place, without
 * copying or allocating. VIEW->data points into the engine's mapping of the
 * segment (or, for a value stored compressed, into a per-thread buffer the
 * engine owns and reuses), after the record's checksum has verified — a
 * corrupt record is never shown, exactly as with rc_get. The view and its
 * bytes are valid only while FN runs: copy what must outlive it. FN may read
 * (and write) the database, but must not call rc_merge, rc_keyspace_drop or
 * rc_close (they wait for readers such as FN's caller), and should be short:
 * while it runs, merge cannot unmap the segments it replaced.
 * Returns FN's return value (return 0 from FN for success; a negative value
 * of your own should not collide with the RC_E* codes) or, without calling
 * FN: RC_ENOTFOUND (absent or expired), RC_EKEYSIZE, RC_EINVAL (NULL DB or
 * FN), RC_ENOKEYSPACE, RC_ENOMEM (decompression buffer). */
RC_API int rc_get_view(rc_db *db, rc_keyspace *ks, const void *key, size_t klen, rc_view_fn fn,
                       void *ctx);

/* Delete KEY. Errors: RC_ENOTFOUND when it was absent (nothing written).
 * *SEQ as with rc_put; nothing to free. */
RC_API int rc_delete(rc_db *db, rc_keyspace *ks, const void *key, size_t klen, uint64_t *seq);

/* ---------------------------------------------------------------- listing */

typedef struct rc_list_opts {
    const void *prefix; /* only keys starting with these bytes (NULL: all) */
    size_t prefix_len;
    const void *start; /* only keys >= start (NULL: no bound) */
    size_t start_len;
    const void *end; /* only keys < end (NULL: no bound) */
    size_t end_len;
    size_t limit; /* at most this many (0: no limit) */
    bool reverse; /* descending byte order */
    bool values;  /* also read each value */
} rc_list_opts;

typedef struct rc_list_item {
    void *key;
    size_t klen;
    rc_value value; /* data only with opts.values; seq/type/expiry always */
} rc_list_item;

typedef struct rc_list {
    rc_list_item *items;
    size_t count;
    bool more; /* the limit cut the list */
} rc_list;

/* List the live keys of KS in byte order (memcmp, shorter first on a tie).
 * *OUT is owned by the caller; free with rc_list_free().
 *
 * Cost. The keydir is a hash, so order comes from a sorted-keys cache per
 * keyspace, built by the first listing (a scan of the keyspace's keydir and a
 * sort of all its keys: ~1.25x the cost of one uncached listing) and reused
 * by later ones: each then costs O(log n + limit) plus one keydir lookup per
 * key looked at (keys deleted or expired since the cache was built are
 * skipped at that point). Overwrites, deletions and expiry leave the cache
 * valid; keys new to the keyspace are noted by their writer (a copy of the
 * key) and merged in by the next listing, and the cache is rebuilt once those
 * pass 1/8 of it, or once deleted keys pass 1/4.
 *
 * Memory. While it exists the cache holds a copy of every key of the keyspace
 * plus 4 bytes per key (rc_stats.list_cache_bytes), on top of the keydir. It
 * is freed once no listing used it for rc_options.list_cache_idle_ms, when the
 * keyspace is dropped, and at rc_close; list_cache_idle_ms = 0 disables it,
 * and then each listing scans the keyspace's keydir and partially sorts the
 * matches (O(n + matches log limit) time, memory for the matches only). */
RC_API int rc_list_keys(rc_db *db, rc_keyspace *ks, const rc_list_opts *opts, rc_list **out);
/* Free LIST, its items and every key and value in them. LIST may be NULL. */
RC_API void rc_list_free(rc_list *list);

/* ------------------------------------------------------------------ stats */

typedef struct rc_stats {
    /* per keyspace (rc_stats_keyspace) and totals (rc_stats_db) */
    uint64_t live_keys;
    uint64_t live_value_bytes; /* user-visible value bytes (uncompressed) */
    uint64_t live_key_bytes;
    uint64_t gets, puts, deletes, ops; /* ops: incr/append/getset/cas */
    uint64_t keydir_bytes;             /* RAM held by the keydir */
    uint64_t list_cache_bytes;         /* RAM held by sorted-keys caches of
                                          rc_list_keys (not in keydir_bytes) */
    uint64_t dead_bytes;               /* bytes on disk no longer live, that merge can
                                          reclaim (per keyspace: its own records') */
    /* database-wide only (zero in rc_stats_keyspace) */
    uint64_t keyspaces;
    uint64_t dropped_keyspaces; /* keyspaces dropped since open */
    uint64_t keyspace_bytes;    /* RAM held by all keyspace handles: each
                                   live one's keydir, list cache and counters,
                                   and ~150 bytes per dropped one still
                                   referenced (rc_keyspace_release) */
    uint64_t segments;
    uint64_t disk_bytes; /* segment + hint bytes */
    uint64_t last_seq;
    uint64_t batches;
    uint64_t fsyncs;
    uint64_t fsync_ns_total;
    uint64_t fsync_ns_max;
    uint64_t expired_swept; /* keys removed by the active sweeper */
    uint64_t merges;
    uint64_t merge_bytes_read, merge_bytes_written, merge_bytes_reclaimed;
    uint64_t tombstone_horizon; /* highest seq of a dropped tombstone/expired
                                   record; backups must start at or above it */
    uint64_t recovery_ms;
    uint64_t recovered_keys;
    uint64_t hint_files_used;
    uint64_t segments_scanned;
    uint64_t corrupt_records; /* skipped while recovering */
    uint64_t torn_bytes;      /* truncated from the active tail at open */
    uint64_t lost_bytes;      /* dropped at open from segments that were not
                                 being written (a cut or damaged sealed
                                 segment, corrupt regions skipped): data that
                                 had been acknowledged; see rc_damage_report */
    uint64_t damaged_files;   /* segment files that lost bytes at open (torn
                                 tails included): rc_damage_report's count */
    uint64_t corrupt_reads;   /* records found corrupt by reads since open;
                                 each is dropped from the keydir once, and
                                 reads of its key answer RC_ENOTFOUND */
    uint64_t write_errors;
    bool read_only;            /* opened read-only or turned read-only */
    bool append_uring;         /* appends go through the io_uring path
                                  (rc_options.append_io, resolved at open) */
    uint64_t uring_writes;     /* group writes (O_DIRECT, then durable)
                                  that path (uring or pwrite) made since
                                  open; each also counts in fsyncs */
    uint64_t keyspace_handles; /* keyspace handles in memory: every live
                                  keyspace's, and each dropped one's that
                                  someone still holds a reference to */
    uint64_t catalog_entries;  /* names in the keyspace catalogue's index:
                                  the live keyspaces and at most one dropped
                                  keyspace (the one with the highest id) */
    uint64_t ring_writes;      /* of uring_writes, those submitted through
                                  io_uring (append_io uring; 0 for pwrite) */
    uint64_t prealloc_ahead;   /* preallocation steps of the active segment
                                  made by the background preparer, ahead of
                                  the writers, since open */
} rc_stats;

/* Fill *OUT (the caller's; nothing is allocated) with the database's totals,
 * or with KS's own figures (database-wide fields zero). */
RC_API int rc_stats_db(rc_db *db, rc_stats *out);
RC_API int rc_stats_keyspace(rc_db *db, rc_keyspace *ks, rc_stats *out);

/* ----------------------------------------------------------------- damage
 * Recovery keeps what verifies and drops the rest: a torn tail of the segment
 * that was being written when the process stopped (expected after a crash),
 * and, in any other segment, a cut end or a corrupt region (data that had
 * been acknowledged). It never does so silently: each segment file that lost
 * bytes gets one entry here, which a server logs at open (one line naming
 * the file and offset); rc_options.strict refuses to open instead, except
 * for a torn tail. */

typedef struct rc_damage {
    uint64_t segment_id; /* the file NNNNNNNN.data (8 digits) in the directory */
    uint64_t offset;     /* first byte dropped */
    uint64_t bytes;      /* non-zero bytes dropped from this file */
    bool torn_tail;      /* only a torn tail of the segment being written */
} rc_damage;

/* The damage rc_open's recovery found, one entry per file, in file order.
 * *OUT (NULL when *N is 0) is owned by the caller: free it with
 * rc_damage_free(). Errors: RC_EINVAL, RC_ENOMEM. */
RC_API int rc_damage_report(rc_db *db, rc_damage **out, size_t *n);
/* Free what rc_damage_report returned; D may be NULL. */
RC_API void rc_damage_free(rc_damage *d);

/* ------------------------------------------------------------ maintenance */

/* Merge now: rewrite every segment with dead data (ignoring the thresholds),
 * wait for it to finish. Errors: RC_EREADONLY, RC_ENOSPC, RC_EIO. Nothing to
 * free. */
RC_API int rc_merge(rc_db *db);

/* Remove expired keys from the keydir now (what the sweeper does in steps).
 * Nothing to free. */
RC_API int rc_expire_now(rc_db *db);

/* ------------------------------------------------------ change listener */

/* The sequence number of the newest write applied to DB (by rc_apply or
 * rc_load): 0 for an empty database or a NULL DB. A value read before this
 * call never has a higher seq than what it returns. Thread-safe, one atomic
 * load; nothing to free. */
RC_API uint64_t rc_last_seq(rc_db *db);

/* What one successful write call changed, for a commit listener.
 *   rc_apply: OPS[0..N) is the caller's batch (read-only here); an op with
 *     seq 0 wrote nothing (RC_OP_GET, a DELETE of an absent key). An op's
 *     ks NULL is the default keyspace.
 *   rc_load: OPS NULL and N 0 — any key of any keyspace may have changed,
 *     up to LAST_SEQ (the stream is applied as one batch).
 * LAST_SEQ is the highest seq the call wrote. */
typedef struct rc_commit {
    const rc_op *ops;
    size_t n;
    uint64_t last_seq;
} rc_commit;
typedef void (*rc_commit_fn)(void *ctx, const rc_commit *c);

/* Call FN(CTX, commit) after every rc_apply (or rc_apply_async) that wrote
 * something and every rc_load that applied records, on the writing thread,
 * as soon as the write is visible to readers — which, as for any reader,
 * may be before it is durable (rc_apply still waits for that afterwards).
 * FN must be quick and must not call into DB's write functions; it may
 * read. FN NULL removes the listener. Set it before other threads use DB (it
 * is read without a lock). Nothing to free; RC_EINVAL for a NULL DB. */
RC_API int rc_set_commit_listener(rc_db *db, rc_commit_fn fn, void *ctx);

/* -------------------------------------------------------- backup / restore
 * A backup stream (FORMAT.md "Backup stream") holds every live record and
 * every tombstone with seq > since, over all keyspaces, as of one moment. */

/* Receives stream bytes; return 0 to go on, non-zero to abort (rc_backup
 * then returns RC_EIO). BUF is the library's, valid only during the call:
 * copy what must outlive it. */
typedef int (*rc_write_fn)(void *ctx, const void *buf, size_t len);
/* Fills BUF (the library's) with up to LEN bytes; returns the count, 0 at
 * end, < 0 on error. */
typedef long (*rc_read_fn)(void *ctx, void *buf, size_t len);

/* A database identity as text: 32 lowercase hex digits (128 random bits
 * chosen when the directory was created, or adopted by a full load). */
#define RC_DATABASE_ID_LEN 32

/* Copy DB's identity, NUL-terminated, into OUT (the caller's buffer of
 * RC_DATABASE_ID_LEN + 1 bytes). A directory is one database: its identity
 * is created with it and persisted (FORMAT.md IDENTITY); a full load makes
 * the target the source's database; the first local write after a load
 * makes it a new database (diverged). Every backup stream names it. Works on
 * read-only handles; thread-safe. Errors: RC_EINVAL. */
RC_API int rc_database_id(rc_db *db, char out[RC_DATABASE_ID_LEN + 1]);

/* Where DB's identity comes from (FORMAT.md IDENTITY): its id; whether it
 * is a replica (everything in it came from loads of database ID) or a fork
 * (loaded from PARENT up to seq FORKED_AT, then written locally: a new
 * database since). PARENT is "" and FORKED_AT 0 unless FORKED. Filled into
 * the caller's *OUT; nothing to free. Errors: RC_EINVAL. */
typedef struct rc_lineage {
    char id[RC_DATABASE_ID_LEN + 1];
    char parent[RC_DATABASE_ID_LEN + 1];
    uint64_t forked_at;
    bool replica;
    bool forked;
} rc_lineage;
RC_API int rc_database_lineage(rc_db *db, rc_lineage *out);

/* Follow a fork of DB's database: database CHILD was a replica of PARENT up
 * to seq FORKED_AT and then took local writes (its rc_database_lineage says
 * so). DB, database PARENT itself (a replica of it, or the original) with a
 * last seq of at most FORKED_AT, holds a prefix of CHILD's history too, so
 * it becomes a replica of CHILD (durably: IDENTITY is rewritten) and
 * CHILD's incrementals apply to it. This is how the members of a replica
 * group keep following when a former follower becomes the leader and
 * writes. CHILD and PARENT are 32 lowercase hex digits. Errors: RC_EINVAL
 * (malformed ids), RC_EREADONLY, RC_EIDENTITY (DB is not database PARENT),
 * RC_EGAP (DB holds seqs past FORKED_AT: its history diverged from
 * CHILD's), RC_EIO. Nothing to free. */
RC_API int rc_follow_fork(rc_db *db, const char *child, const char *parent, uint64_t forked_at);

typedef struct rc_backup_info {
    uint64_t since;      /* as asked */
    uint64_t until;      /* highest seq included: the next incremental's since */
    uint64_t records;    /* live records written */
    uint64_t tombstones; /* tombstones written */
    uint64_t bytes;      /* stream bytes */
    /* the source database's identity ("" for a version 1 stream, which
     * names none; also "" when the header could not be read) */
    char database[RC_DATABASE_ID_LEN + 1];
    unsigned version; /* stream format version (0 when the header could not be read) */
} rc_backup_info;

/* What a stream's header says, before its body: the header alone tells a
 * reader (or a shipper) which database and which range the stream holds. */
typedef struct rc_stream_header {
    unsigned version;                      /* stream format version: 1 or 2 */
    char database[RC_DATABASE_ID_LEN + 1]; /* the source ("" when version 1: unknown) */
    uint64_t since;                        /* records with seq > since (0: a full backup) */
    uint64_t until;                        /* the next since (version 1: 0, unknown) */
    uint64_t created_ms;                   /* ms since the epoch */
    size_t length;                         /* the header's bytes */
} rc_stream_header;

/* Enough bytes to decode the header of any stream version. */
#define RC_STREAM_HEADER_MAX 56

/* Decode the header at the start of a stream, BUF[0..LEN). Needs the whole
 * header (version 2: 56 bytes, version 1: 40; RC_STREAM_HEADER_MAX always
 * suffices). Errors: RC_ECORRUPT (not a stream, damaged or short header),
 * RC_EVERSION (a newer version). Writes only *OUT. */
RC_API int rc_stream_header_parse(const void *buf, size_t len, rc_stream_header *out);

/* Progress callback for long work: DONE of TOTAL units (bytes or records). */
typedef void (*rc_progress_fn)(void *ctx, uint64_t done, uint64_t total);

/* Stream a consistent snapshot of everything with seq > SINCE to WRITE.
 * Works on a read-only handle (kvdump on a live directory) and while writes
 * continue on a read-write one. PROGRESS may be NULL. INFO (if not NULL) is
 * filled, until = the highest seq included (SINCE when nothing changed): the
 * next incremental's since. The stream's header (version 2) names this
 * database (rc_database_id), SINCE and until before any record, so a reader
 * knows what it holds from its first bytes (rc_stream_header_parse). Errors: RC_EHORIZON (since
 * below the tombstone horizon: take a full backup), RC_EGAP (since beyond this database's last seq:
 * another database, or one restored from an older backup), RC_ECORRUPT (a record failed its
 * checksum), RC_EIO (WRITE failed). */
RC_API int rc_backup(rc_db *db, uint64_t since, rc_write_fn write, void *ctx,
                     rc_progress_fn progress, void *progress_ctx, rc_backup_info *info);

/* rc_backup bounded above: only what the database held at seq UNTIL (the
 * newest version of each key at or below UNTIL; nothing newer), as if the
 * backup had been taken when the last seq was UNTIL. UNTIL below SINCE is
 * taken as SINCE (an empty stream); UNTIL at or past the last seq is
 * rc_backup. A replica group's leader uses it to ship followers only what
 * its sync standby already holds. Exception: once rc_merge (since this
 * handle was opened) dropped versions that later writes superseded, the
 * database no longer knows what it held at a seq before that merge, so a
 * bound below the merge point (with SINCE below it too) is raised to the
 * last seq the merge saw: the stream then holds more than asked, never less
 * (INFO's until says where it ends). A read-only handle cannot see the
 * writer's merges: its bound is never below the last seq. Errors as
 * rc_backup. */
RC_API int rc_backup_until(rc_db *db, uint64_t since, uint64_t until, rc_write_fn write, void *ctx,
                           rc_progress_fn progress, void *progress_ctx, rc_backup_info *info);

/* Check a whole stream (checksums, framing, trailer) without applying it.
 * No database needed. *INFO receives the header and counts (since also on
 * failure, once the header was read); nothing to free. Errors: RC_ECORRUPT (damaged or
 * truncated), RC_EVERSION, RC_EIO (READ failed), RC_ENOMEM. */
RC_API int rc_verify_stream(rc_read_fn read, void *ctx, rc_backup_info *info);

/* Apply a stream. The whole stream is verified (and staged in the database
 * directory as load.tmp) before anything is applied; its records keep their
 * sequence numbers, and a crash leaves all or nothing, so a rerun of the
 * same stream completes. A full stream (since 0) needs a database with no
 * history (last seq 0): RC_ENOTEMPTY; the database adopts the stream's
 * identity (rc_database_id) at its until (a version 1 stream, naming none,
 * leaves it a new database of its own); it is written as new segments of
 * segment_bytes under a LOADING marker that the next rc_open undoes after a
 * crash, and has no size limit (RC_ELIMIT only if it needs more segments
 * than the database can hold: use a larger segment_bytes). An incremental
 * one needs the stream to come from this database's own history — the same
 * identity, and no local write since the last load: RC_EIDENTITY otherwise,
 * see rc_load_check — and since <= the database's last seq: RC_EGAP; its
 * records at or
 * below the database's last seq are skipped (loading it twice is a no-op)
 * and the rest appended as ONE atomic batch, limited to one segment's worth
 * of records (3.75 GiB): RC_ELIMIT. A write by another thread that lands
 * while a stream is applied makes it refuse, with nothing applied (a full
 * stream: RC_ENOTEMPTY; an incremental one: RC_ECONFLICT). Also RC_ECORRUPT, RC_EVERSION,
 * RC_ELOCKED (another load is staging), RC_EREADONLY, RC_ENOSPC, RC_EIO.
 * PROGRESS may be NULL. INFO (if not NULL) is filled as by rc_backup; nothing
 * to free. */
RC_API int rc_load(rc_db *db, rc_read_fn read, void *ctx, rc_progress_fn progress,
                   void *progress_ctx, rc_backup_info *info);

/* Would a stream with header H apply to DB? The checks rc_load makes on the
 * header, in its order, without reading the stream or writing anything
 * (works on a read-only handle, so a caller can check a directory before
 * opening it for writing): 0, or the refusal rc_load would return —
 * RC_EIDENTITY (an incremental from another database, onto a directory that
 * diverged from it, or from a version 1 stream, whose identity is unknown;
 * the message says which), RC_EGAP, RC_ENOTEMPTY. */
RC_API int rc_load_check(rc_db *db, const rc_stream_header *h);

#ifdef __cplusplus
}
#endif
#endif /* RINGCASK_H */
