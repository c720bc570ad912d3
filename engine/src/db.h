/*
 * db.h — the engine's internal state, shared by its modules. Nothing here is
 * visible above ringcask.h.
 *
 * Locking order (take in this order, release in reverse):
 *   key stripes (ascending index) -> append_mu -> keydir shard locks
 *   ks_mu (catalogue) is taken before key stripes of keyspace 0.
 *   segs.mu (segment slots) is a leaf: nothing is taken under it.
 * Readers take only one keydir shard read lock and an epoch slot.
 */
#ifndef RC_DB_H
#define RC_DB_H

#include "ringcask.h"
#include "check.h"
#include "keydir.h"
#include "segment.h"

#include <pthread.h>
#include <stdatomic.h>

#define KEY_STRIPES 4096u /* key locks for read-modify-write and batches */
#define COUNTER_SHARDS 8u /* per-thread-ish counter copies (no bouncing) */
#define EPOCH_SLOTS 256u  /* reader slots for segment reclamation */
/* Keyspace ids index an array and are never reused: a bound keeps a damaged
 * or hostile file from asking for gigabytes (16M keyspace creations over a
 * database's life). */
#define KS_ID_MAX (1u << 24)
/* The id table is two levels that never move (keyspace.c): a fixed array of
 * chunk pointers, and chunks of KS_CHUNK slots made when an id in them is
 * first registered and freed once all their ids were given and dropped. */
#define KS_CHUNK_BITS 10u
#define KS_CHUNK (1u << KS_CHUNK_BITS)
#define KS_CHUNKS ((KS_ID_MAX >> KS_CHUNK_BITS) + 1u)

enum { CNT_GET, CNT_PUT, CNT_DEL, CNT_OP, CNT_N };

typedef struct counter_line {
    _Atomic uint64_t v[CNT_N];
    char pad[64 - CNT_N * sizeof(uint64_t)];
} counter_line;

/* ---- list.c: the sorted-keys cache of a keyspace (see list.c)
 *
 * Per keydir shard, the keys inserted since the cache was built (new keys
 * only: overwrites keep the order, deletions are checked at listing time).
 * Guarded by that keydir shard's lock: writers append under the write lock;
 * a lister holding the cache exclusively reads, drains and switches it under
 * the read lock (which shuts writers out of the shard). */
typedef struct lc_shard {
    size_t len, cap;
    uint8_t *buf; /* n x {u16 klen, key bytes} */
    /* n and overflow are atomic only so that a drain may skip a shard with
     * nothing to drain without taking its lock (relaxed: a write that
     * happened before the listing is seen by coherence) */
    _Atomic uint32_t n;    /* keys in buf */
    uint32_t max_n;        /* bound on n, set with the snapshot */
    bool on;               /* the cache exists: writers note new keys here */
    _Atomic bool overflow; /* more than max_n new keys: rebuild the cache */
    char pad[30];          /* one cache line per shard: writers of different shards */
} lc_shard;
_Static_assert(sizeof(lc_shard) == 64, "lc_shard is one cache line");

typedef struct lc_ref {
    uint32_t off; /* of the key in the delta arena */
    uint32_t len;
} lc_ref;

typedef struct list_cache {
    /* Exclusive: build, drain, release. Shared: reading keys out. Taken
     * before any keydir shard lock, never while holding one. */
    pthread_rwlock_t rw;
    bool built;
    /* the snapshot: the keys in key order, back to back; offs[i] is where
     * key i starts, offs[n] the end (while building: {u16 klen, key}) */
    uint8_t *arena;
    size_t arena_len;
    uint32_t *offs;
    size_t n;
    /* fence[b]: the first 8 bytes (big-endian, zero-padded) of key
     * b * LC_FENCE_EVERY, so that a seek binary-searches this small array
     * and then one block of keys instead of the whole snapshot; NULL if it
     * could not be allocated (seeks search the snapshot then) */
    uint64_t *fence;
    size_t nfence;
    /* the delta: keys drained from the shards since the snapshot, sorted,
     * without duplicates (some may also be in the snapshot) */
    uint8_t *darena;
    size_t dlen, dcap;
    lc_ref *drefs;
    size_t dn, dcapn;
    /* bumped by every note (and overflow) of a writer: a listing that finds
     * it unchanged since the last refresh (seen_noted) skips the drain's walk
     * over the shard buffers; only a hint, the drain itself is under locks */
    _Atomic uint64_t noted_total;
    uint64_t seen_noted;
    unsigned refreshes;        /* the live-count check runs on every 32nd quiet one */
    _Atomic int64_t last_used; /* CLOCK_MONOTONIC ms of the last listing */
    _Atomic size_t bytes;      /* RAM held, shard buffers included */
    lc_shard shards[KEYDIR_SHARDS];
} list_cache;

struct rc_keyspace {
    rc_db *db;
    char *name;
    uint32_t id;
    _Atomic bool dropped;
    /* references: one held by the database while the keyspace is live, one
     * per rc_keyspace_open/rc_keyspace_retain not yet released. The handle
     * is freed when it reaches 0 (only possible once dropped). */
    _Atomic uint32_t refs;
    _Atomic int64_t default_ttl_ms;
    _Atomic uint64_t max_value; /* longest value a write may leave; 0: RC_VALUE_MAX */
    keydir *kd;
    _Atomic uint64_t live_value_bytes;
    _Atomic uint64_t live_key_bytes;
    _Atomic uint64_t dead_bytes; /* its records' bytes that merge can reclaim */
    /* The large parts live apart, so that a dropped keyspace's handle, which
     * stays valid while referenced, shrinks to this struct and its name once
     * they are freed: after the drop they point at the database's shared
     * retired_* stand-ins (never used: every caller checks `dropped`). */
    counter_line *counters;           /* COUNTER_SHARDS lines */
    size_t sweep_shard, sweep_cursor; /* sweeper position (sweeper thread only) */
    list_cache *lc;
};

/* identity.c: the database identity (FORMAT.md 10.4) */
#define RCI_ID_BYTES 16u
typedef struct rci_ident {
    uint8_t id[RCI_ID_BYTES];
    uint8_t parent[RCI_ID_BYTES]; /* FORKED: the database it was loaded from */
    uint64_t forked_at;           /* FORKED: its last seq before the first local write */
    uint16_t flags;               /* FMT_IDENTITY_REPLICA / FMT_IDENTITY_FORKED */
} rci_ident;

typedef struct epoch_slot {
    _Atomic uint64_t active;
    char pad[64 - sizeof(uint64_t)];
} epoch_slot;

struct rc_db {
    rc_options opt;
    char *dir;
    int dir_fd;
    int lock_fd;
    uint64_t db_id;             /* the segment headers' 64-bit id */
    rci_ident ident;            /* guarded by append_mu */
    _Atomic bool ident_replica; /* ident.flags has REPLICA: a local write diverges */

    /* segments */
    segment_table segs;
    _Atomic(segment *) active; /* written under append_mu; read anywhere */
    uint64_t next_segment_id;  /* guarded by append_mu */

    /* append path */
    pthread_mutex_t append_mu;
    _Atomic uint64_t last_seq; /* written under append_mu */
    rc_commit_fn commit_fn;    /* rc_set_commit_listener, set before concurrent use */
    void *commit_ctx;
    _Atomic uint64_t tail_lsn; /* bytes appended since open (logical) */
    _Atomic int write_error;   /* sticky: non-zero turns the db read-only */
    _Atomic int appending;     /* writers between rc_apply's start and their append */
    _Atomic int arrivals;      /* writers that began waiting since the last sync took its target */
    _Atomic int last_group;    /* writers the last sync covered */

    /* group commit (log.c): no mutex on the commit path. A waiter becomes
     * the leader by a CAS on sync_leader; the others sleep on the futex word
     * sync_gen, which the leader bumps (one FUTEX_WAKE for all) after it
     * advanced durable_lsn. A gathering leader sleeps on gather_word until
     * the writer that completes its group wakes it (rci_log_group_poke). */
    _Atomic uint64_t durable_lsn; /* written by the leader only */
    _Atomic int sync_leader;      /* 1 while a leader gathers or syncs */
    _Atomic uint32_t sync_gen;    /* futex: bumped after every sync */
    _Atomic int sync_sleepers;    /* waiters asleep on sync_gen */
    _Atomic uint32_t gather_word; /* futex: a gathering leader sleeps on it */
    _Atomic int gathering;        /* 1 while a leader sleeps in its gathering */
    _Atomic int gather_want;      /* arrivals that complete its group */
    struct rci_commitq *commitq;  /* rc_apply_async's completions (commit.c) */
    /* the io_uring append path (rc_options.append_io; append_uring.h):
     * DIRECT is resolved at open; DW is its writer, used under flush_mu,
     * which also guards every segment's flushed/remapped. flush_mu is taken
     * after append_mu (rotation) or alone (a leader), never before it. */
    bool direct;
    struct rci_dw *dw;
    pthread_mutex_t flush_mu;
    _Atomic uint64_t uring_writes;
    _Atomic uint64_t ring_writes; /* of uring_writes, through the ring */
    /* the preparer (prepare.c): grows the active segment ahead of the
     * writers. grow_mu guards every segment's file_len changes and the
     * fields below; taken after append_mu and flush_mu, or alone. */
    pthread_mutex_t grow_mu;
    pthread_cond_t prep_cv;
    pthread_t prep_thread;
    bool prep_running, prep_stop, prep_failed;
    segment *prep_seg; /* the segment to grow next (NULL: none) */
    _Atomic uint64_t prep_grows;
    struct ring *ring; /* io_uring for hint and merge writes, guarded by ring_mu */
    bool ring_tried;   /* rci_db_ring() ran rci_ring_new once */
    pthread_mutex_t ring_mu;

    /* key locks */
    pthread_mutex_t stripes[KEY_STRIPES];

    /* keyspaces: index by id (sparse), names in a small table */
    pthread_mutex_t ks_mu;
    /* by id: ks_top[id >> KS_CHUNK_BITS][id & (KS_CHUNK - 1)], NULL for an
     * unknown or dropped id. Written under ks_mu (or by the opening thread),
     * read lock-free by holders of an epoch (rci_ks_by_id); a chunk is freed
     * only after a grace period */
    rc_keyspace ***ks_top; /* KS_CHUNKS chunk pointers */
    uint32_t ks_chunks_n;  /* chunks allocated */
    uint32_t next_ks_id;   /* read without ks_mu as a bound: __atomic */
    int rec_pass;          /* recovery's pass (REC_PASS_*, recovery.h) */
    rc_keyspace **ks_all;  /* every handle in memory (all freed at close) */
    size_t ks_all_n, ks_all_cap;
    /* what the handles of dropped keyspaces point at (see rc_keyspace) */
    keydir *retired_kd;
    list_cache *retired_lc;
    counter_line retired_counters[COUNTER_SHARDS];
    uint64_t retired_handles; /* keyspaces dropped since open */
    /* The one dropped keyspace whose catalogue record is kept: the dropped
     * one with the highest id, so that the catalogue still names the highest
     * id ever given (ids are never reused). Other drops leave a tombstone of
     * their name instead (keyspace.c). Empty name: none. ks_mu. */
    char cat_dropped_name[RC_KEYSPACE_NAME_MAX + 1];
    uint32_t cat_dropped_id;

    /* Merge holds this exclusively while it unlinks segment files; a backup
     * holds it shared while it streams, so its snapshot's files stay put. */
    pthread_rwlock_t files_gate;

    /* readers of segments */
    epoch_slot epochs[EPOCH_SLOTS];

    /* background maintenance (interval sync, hints, TTL sweep, merge) */
    pthread_t bg_thread;
    bool bg_running;
    pthread_mutex_t bg_mu;
    pthread_cond_t bg_cv;
    bool bg_stop;
    bool bg_kick;
    pthread_mutex_t sweep_mu; /* one sweeper at a time (cursors) */
    pthread_mutex_t merge_mu; /* one merge at a time */

    /* stats */
    _Atomic uint64_t batches, fsyncs, fsync_ns_total, fsync_ns_max, expired_swept;
    _Atomic uint64_t merges, merge_bytes_read, merge_bytes_written, merge_bytes_reclaimed;
    _Atomic uint64_t tombstone_horizon;
    /* merge dropped records superseded by writes at or below this seq (the
     * last seq before it retired them; the last seq at open, UINT64_MAX on a
     * read-only handle, which cannot see the writer's merges): a backup
     * bounded below it cannot tell what the database held at its bound
     * (rc_backup_until) */
    _Atomic uint64_t superseded_seq;
    _Atomic uint64_t write_errors;
    _Atomic uint64_t backup_scanned; /* records rc_backup scanned (tests, bench) */
    uint64_t recovery_ms, recovered_keys, hint_files_used, segments_scanned;
    uint64_t corrupt_records, torn_bytes, lost_bytes;
    rc_damage *damage; /* recovery's report (rc_damage_report) */
    size_t damage_n, damage_cap;
    _Atomic uint64_t corrupt_reads;
    bool segment_vanished; /* read-only open raced a merge: retry the open */
    bool had_segments;     /* recovery found at least one segment */
};

/* ---- errors.c */
/* Record a detail message for rc_last_error_message(); returns ERR. */
int rc_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Empty the calling thread's detail message: the first thing every public
 * rc_ call does, so a message never outlives the call that set it. */
void rci_error_clear(void);
/* Map an errno value to an RC_E* code. */
int rc_from_errno(int e);

/* ---- clock */
static inline int64_t db_now_ms(rc_db *db)
{
    return db->opt.clock_ms(db->opt.clock_ctx);
}

/* ---- epoch.c: readers pin segments; reclaimers wait for them */
epoch_slot *rci_epoch_enter(rc_db *db);
void rci_epoch_exit(epoch_slot *slot);
void rci_epoch_synchronize(rc_db *db);
unsigned rci_thread_index(void);

/* ---- keyspace.c */
rc_keyspace *rci_ks_resolve(rc_db *db, rc_keyspace *ks); /* NULL -> default */
/* The keyspace registered under ID, or NULL. Lock-free: the caller holds an
 * epoch or ks_mu (or is the opening thread), which keeps the handle and the
 * table's chunk alive. */
rc_keyspace *rci_ks_by_id(rc_db *db, uint32_t id);
/* The registered keyspace with the lowest id >= *ID (*ID set to it), or NULL;
 * same rules as rci_ks_by_id. Iterate with
 * for (uint32_t id = 1; (ks = rci_ks_next(db, &id)); id++). */
rc_keyspace *rci_ks_next(rc_db *db, uint32_t *id);
rc_keyspace *rci_ks_new(rc_db *db, const char *name, uint32_t id, int64_t ttl);
int rci_ks_register(rc_db *db, rc_keyspace *ks);
int rci_ks_load_catalog(rc_db *db);
/* Make the stand-ins that dropped keyspaces' handles point at. */
int rci_ks_init_retired(rc_db *db);
/* rc_load: make the keyspace handles match keydir 0 (ks_mu held, no epoch). */
int rci_ks_refresh_catalog(rc_db *db);
void rci_ks_free_all(rc_db *db);
static inline void ks_count(rc_keyspace *ks, int which, uint64_t n)
{
    atomic_fetch_add_explicit(&ks->counters[rci_thread_index() % COUNTER_SHARDS].v[which], n,
                              memory_order_relaxed);
}

/* Dead-byte accounting of a keyspace (saturating: recovery's figures are
 * estimates and merge subtracts what it reclaims). */
static inline void ks_dead_add(rc_keyspace *ks, uint64_t n)
{
    atomic_fetch_add_explicit(&ks->dead_bytes, n, memory_order_relaxed);
}
static inline void ks_dead_sub(rc_keyspace *ks, uint64_t n)
{
    uint64_t cur = atomic_load_explicit(&ks->dead_bytes, memory_order_relaxed);
    while (!atomic_compare_exchange_weak(&ks->dead_bytes, &cur, cur > n ? cur - n : 0))
        ;
}

/* The database's io_uring (ring_mu held): created on first use, so that
 * read-only opens and short-lived handles never pay for its setup; NULL when
 * the kernel refuses io_uring (callers fall back to system calls). */
struct ring *rci_db_ring(rc_db *db);

/* ---- log.c: the append path */
typedef struct log_rec {
    uint8_t flags; /* tombstone, compressed, type */
    uint32_t ks;
    uint64_t expires_at_ms;
    const void *key;
    uint32_t klen;
    const void *val;
    uint32_t vlen;
    uint64_t seq; /* 0: assign the next; else keep (loading a backup) */
    /* out */
    uint16_t seg;
    uint32_t off;
    uint32_t total_len;
} log_rec;

/* Append RECS as one contiguous run (framed as a batch when N > 1), assigning
 * sequence numbers; fills seq/seg/off/total_len. *END_LSN for log_wait. */
int rci_log_append(rc_db *db, log_rec *recs, size_t n, uint64_t *end_lsn);
/* rc_load's incremental: RECS keep the stream's seqs; RC_ECONFLICT (nothing
 * appended) unless last_seq is still EXPECT_LAST (no write since the check).
 * A loaded append is not a local write: the identity stays. */
int rci_log_append_loaded(rc_db *db, log_rec *recs, size_t n, uint64_t expect_last,
                          uint64_t *end_lsn);
/* Wait until END_LSN is durable per the sync mode (no-op unless ALWAYS). */
int rci_log_wait(rc_db *db, uint64_t end_lsn);
/* A writer finished its append or began waiting: wake a gathering leader
 * whose group is now complete (cheap when none gathers). */
void rci_log_group_poke(rc_db *db);
/* fdatasync the active segment now and advance durable_lsn. */
int rci_log_sync(rc_db *db);
/* Make [0, SIZE) of SEG readable through its file (a backup maps files):
 * with the io_uring append path, write (durably) what no leader wrote yet.
 * No-op for the mapping. */
int rci_log_flush_to(rc_db *db, segment *seg, uint64_t size);
int rci_log_open_active(rc_db *db);
int rci_log_close_active(rc_db *db);
/* Seal the active segment (if it holds records) and start a new one. */
int rci_log_seal_active(rc_db *db);
/* rc_load: reserve N consecutive segment ids (*FIRST..) for a full load's own
 * segments, rotating the active segment past them, and raise last_seq to
 * NEW_LAST so that writes racing the load get newer seqs; RC_ENOTEMPTY when
 * last_seq is no longer EXPECT_LAST. */
int rci_log_reserve_ids(rc_db *db, uint32_t n, uint64_t expect_last, uint64_t new_last,
                        uint64_t *first);

/* ---- commit.c */
typedef struct rci_commitq rci_commitq;
int rci_commit_init(rc_db *db);
/* Call FN(CTX, status) once the log is durable up to LSN: inline when
 * nothing needs a sync (LSN 0 or not RC_SYNC_ALWAYS), else from the
 * completion thread (or inline after waiting, if it cannot be queued). */
void rci_commit_complete(rc_db *db, uint64_t lsn, rc_durable_fn fn, void *ctx);
/* Drain the queue (every pending callback is called) and stop the thread. */
void rci_commit_stop(rc_db *db);
void rci_commit_free(rc_db *db);

/* ---- merge.c */
int rci_merge_recover(rc_db *db);
/* Raise the tombstone horizon to HORIZON (no-op when it is not higher): the
 * HORIZON file is written and synced first. Caller holds merge_mu (or is
 * alone: open). 0 or the write's RC_E* code. */
int rci_horizon_raise(rc_db *db, uint64_t horizon);
int rci_merge_maybe(rc_db *db);

/* ---- read.c */
/* Read the record at LOC (epoch held by the caller) and fill OUT; with
 * WANT_DATA the value is copied (decompressed) into a new buffer. */
int rci_read_record(rc_db *db, const kd_loc *loc, rc_value *out, bool want_data);
/* Look KEY up and read it: RC_ENOTFOUND when absent or expired. */
int rci_read_key(rc_db *db, rc_keyspace *ks, uint64_t hash, const void *key, size_t klen,
                 rc_value *out, bool want_data);
/* Look KEY up and call FN with a view of its value in place (epoch held by
 * the caller): FN's result, or RC_ENOTFOUND etc. without calling it. */
int rci_read_key_view(rc_db *db, rc_keyspace *ks, uint64_t hash, const void *key, size_t klen,
                      rc_view_fn fn, void *ctx);
/* The stored record's total length and user value length at LOC. */
int rci_record_sizes(rc_db *db, const kd_loc *loc, uint32_t *total, uint64_t *value_len);

/* ---- index.c: keydir updates with accounting */
/* Returns whether the key was present (and unexpired) before R. */
bool rci_index_apply(rc_db *db, rc_keyspace *ks, uint64_t hash, const log_rec *r,
                     uint64_t user_vlen);
void rci_index_account_removed(rc_db *db, rc_keyspace *ks, const kd_loc *old, size_t klen);

/* ---- list.c: the sorted-keys cache */
void rci_lc_init(list_cache *lc);
/* Free everything (no lister, writer or sweeper can be using it). */
void rci_lc_destroy(list_cache *lc);
/* Background: release caches unused for opt.list_cache_idle_ms. */
void rci_lc_release_idle(rc_db *db);
void rci_lc_note_slow(lc_shard *sh, list_cache *lc, const void *key, size_t klen);
/* A write made KEY new in KS's keydir (shard SHARD write-locked). */
static inline void lc_note_new_key(rc_keyspace *ks, unsigned shard, const void *key, size_t klen)
{
    lc_shard *sh = &ks->lc->shards[shard];
    if (sh->on)
        rci_lc_note_slow(sh, ks->lc, key, klen);
}

/* ---- recovery.c / hintfile.c */
int rci_recover(rc_db *db);
int rci_hint_write(rc_db *db, segment *seg);
/* load.c, at open after listing the segments (sorted IDS): undo a full load
 * that a crash interrupted (its LOADING marker) and drop its ids from IDS. */
int rci_load_recover(rc_db *db, uint64_t *ids, size_t *n);
/* load.c: whether DIR holds a LOADING marker (a full load in progress). */
bool rci_load_marker_present(rc_db *db);

/* ---- backup.c */
/* White box: false makes rc_backup scan every segment from its start (the
 * output must not change; tests compare). Default true. */
extern bool rci_backup_skip;

/* ---- dirfile.c */
/* Write LEN bytes of BUF as DIR/NAME durably: NAME.tmp, fdatasync, rename,
 * fsync of the directory; on failure the temporary file is removed and the
 * old NAME, if any, stays. 0 or the errno's code with the detail set. */
int rci_dir_write_file(rc_db *db, const char *name, const void *buf, size_t len);

/* ---- identity.c */
struct fmt_stream_header;
/* At open, after recovery: read DIR/IDENTITY, or create it (a new directory:
 * random; one from before the file: derived from the segment headers' id,
 * HAD_SEGMENTS). A read-only opener writes nothing. */
int rci_identity_open(rc_db *db, bool had_segments);
/* append_mu held, before a local write is appended: a replica becomes a
 * fork (new id, durable) first. No-op unless a replica. */
int rci_identity_diverge(rc_db *db);
/* After a full load committed: become a replica of SOURCE (16 bytes) at
 * UNTIL, or a fork of it if a write raced the load, or a new database when
 * SOURCE is NULL (the stream named none). Takes append_mu. */
int rci_identity_adopt(rc_db *db, const uint8_t *source, uint64_t until);
/* Would a stream with header H apply here, identity-wise? 0 or
 * RC_EIDENTITY with the case in the message. */
int rci_identity_check(rc_db *db, const struct fmt_stream_header *h);
void rci_id_hex(const uint8_t id[RCI_ID_BYTES], char out[RC_DATABASE_ID_LEN + 1]);

/* ---- sweep.c / background */
/* prepare.c: after an append (append_mu held) that left SEG, the active
 * segment, short of room, have the preparer grow it; forget SEG before it
 * is sealed (rotation, append_mu held); stop the thread (rc_close). */
void rci_prep_kick(rc_db *db, segment *seg);
void rci_prep_forget(rc_db *db, segment *seg);
void rci_prep_stop(rc_db *db);

int rci_bg_start(rc_db *db);
void rci_bg_stop(rc_db *db);
void rci_bg_kick(rc_db *db);
size_t rci_sweep_expired(rc_db *db, size_t budget);

static inline uint32_t stripe_of(uint32_t ks_id, uint64_t hash)
{
    return (uint32_t)((hash ^ ((uint64_t)ks_id * 0x9E3779B97F4A7C15ull)) % KEY_STRIPES);
}

#endif
