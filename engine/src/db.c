/*
 * db.c — opening and closing a database, options, and statistics.
 *
 * rc_open takes the directory's LOCK (flock, exclusive for writers, none for
 * read-only openers so that kvdump can read a directory kvd is serving),
 * runs recovery, opens a fresh active segment (the previous one stays
 * immutable: appending never reopens a file that a crash may have torn), and
 * starts the background thread. rc_close stops it, syncs, writes the active
 * segment's hint and releases everything.
 */
#include "db.h"
#include "ring.h"
#include "append_uring.h"
#include "format/record.h"
#include "format/segment.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int64_t realtime_ms(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void rc_options_default(rc_options *o)
{
    memset(o, 0, sizeof(*o));
    o->sync = RC_SYNC_ALWAYS;
    o->sync_interval_ms = 100;
    o->segment_bytes = 256ull << 20;
    o->create_if_missing = true;
    o->write_hints = true;
    o->compress_min_bytes = 512;
    o->compress_level = 1;
    o->merge_dead_pct = 40;
    o->merge_dead_bytes = 0; /* derived: segment_bytes / 2 */
    o->merge_check_ms = 1000;
    o->merge_rate_bytes = 64ull << 20;
    o->tombstone_retention_ms = 7ull * 24 * 3600 * 1000;
    o->ttl_sweep_ms = 100;
    o->list_cache_idle_ms = 60000;
    o->clock_ms = realtime_ms;
}

static int check_options(rc_options *o)
{
    if ((unsigned)o->sync > RC_SYNC_NONE)
        return rc_fail(RC_EINVAL, "unknown sync mode %d", (int)o->sync);
    if (o->sync == RC_SYNC_INTERVAL && o->sync_interval_ms == 0)
        return rc_fail(RC_EINVAL, "sync interval must be > 0 ms");
    if (o->segment_bytes < 4096 || o->segment_bytes > (1ull << 32) - 1)
        return rc_fail(RC_EINVAL, "segment_bytes must be 4 KiB .. 4 GiB - 1");
    if (o->merge_dead_pct > 100)
        return rc_fail(RC_EINVAL, "merge_dead_pct must be 0..100");
    if (o->compress_level < 1 || o->compress_level > 19)
        return rc_fail(RC_EINVAL, "compress_level must be 1..19");
    if ((unsigned)o->append_io > RC_APPEND_PWRITE)
        return rc_fail(RC_EINVAL, "unknown append_io %d (auto, mmap, uring or pwrite)",
                       (int)o->append_io);
    if ((o->append_io == RC_APPEND_URING || o->append_io == RC_APPEND_PWRITE) &&
        o->sync != RC_SYNC_ALWAYS && !o->read_only)
        return rc_fail(RC_EINVAL, "append_io uring needs sync always: it keeps unwritten "
                                  "records in the process until a group commit writes them");
    if (!o->clock_ms)
        o->clock_ms = realtime_ms;
    if (!o->merge_dead_bytes)
        o->merge_dead_bytes = o->segment_bytes / 2;
    return 0;
}

static int take_lock(rc_db *db)
{
    if (db->opt.read_only) {
        db->lock_fd = -1;
        return 0;
    }
    db->lock_fd = openat(db->dir_fd, "LOCK", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (db->lock_fd < 0)
        return rc_fail(rc_from_errno(errno), "cannot open %s/LOCK: %s", db->dir, strerror(errno));
    if (flock(db->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        char pid[32] = "";
        ssize_t n = pread(db->lock_fd, pid, sizeof(pid) - 1, 0);
        pid[n > 0 ? n : 0] = 0;
        pid[strcspn(pid, "\n")] = 0;
        return rc_fail(RC_ELOCKED, "%s is in use by another process%s%s", db->dir,
                       pid[0] ? " (pid " : "", pid[0] ? pid : "");
    }
    char buf[32];
    int len = snprintf(buf, sizeof(buf), "%d)\n", (int)getpid());
    if (ftruncate(db->lock_fd, 0) == 0 && pwrite(db->lock_fd, buf, (size_t)len, 0) < 0) {
        /* the pid is only a courtesy for the error message */
    }
    return 0;
}

struct ring *rci_db_ring(rc_db *db)
{
    if (!db->ring_tried) {
        db->ring_tried = true;
        db->ring = rci_ring_new(64);
    }
    return db->ring;
}

static void db_free(rc_db *db)
{
    rci_prep_stop(db);
    rci_commit_free(db);
    rci_seg_table_free(&db->segs);
    rci_ks_free_all(db);
    rci_ring_free(db->ring);
    rci_dw_free(db->dw);
    if (db->lock_fd >= 0)
        close(db->lock_fd);
    if (db->dir_fd >= 0)
        close(db->dir_fd);
    for (unsigned i = 0; i < KEY_STRIPES; i++)
        pthread_mutex_destroy(&db->stripes[i]);
    pthread_mutex_destroy(&db->append_mu);
    pthread_mutex_destroy(&db->ring_mu);
    pthread_mutex_destroy(&db->flush_mu);
    pthread_mutex_destroy(&db->grow_mu);
    pthread_cond_destroy(&db->prep_cv);
    pthread_mutex_destroy(&db->ks_mu);
    pthread_mutex_destroy(&db->bg_mu);
    pthread_cond_destroy(&db->bg_cv);
    pthread_mutex_destroy(&db->sweep_mu);
    pthread_rwlock_destroy(&db->files_gate);
    pthread_mutex_destroy(&db->merge_mu);
    free(db->damage);
    free(db->dir);
    free(db);
}

static int open_once(const char *dir, const rc_options *opts, rc_db **out, bool *retry);

/* Resolve rc_options.append_io and open the active segment. AUTO takes the
 * io_uring path for sync=always when the kernel gives a ring and the file
 * system takes O_DIRECT (tmpfs before 6.6 does not), the mapping otherwise;
 * URING and PWRITE fail instead of falling back. */
static int open_active(rc_db *db)
{
    rc_append_io want = db->opt.append_io;
    if (want == RC_APPEND_AUTO && db->opt.sync != RC_SYNC_ALWAYS)
        want = RC_APPEND_MMAP;
    if (want != RC_APPEND_MMAP) {
        db->dw = rci_dw_new(want == RC_APPEND_PWRITE ? RCI_DW_PWRITE : RCI_DW_RING);
        if (db->dw) {
            db->direct = true;
            int err = rci_log_open_active(db);
            if (!err || want != RC_APPEND_AUTO)
                return err;
            rci_dw_free(db->dw); /* AUTO: fall back to the mapping */
            db->dw = NULL;
            db->direct = false;
        } else if (want != RC_APPEND_AUTO) {
            return rc_fail(RC_EIO, "append_io %s: the kernel refuses io_uring",
                           want == RC_APPEND_PWRITE ? "pwrite" : "uring");
        }
    }
    return rci_log_open_active(db);
}

int rc_open(const char *dir, const rc_options *opts, rc_db **out)
{
    rci_error_clear();
    /* a read-only opener of a directory that a live writer merges may find
     * a segment gone between listing and opening: it then lists again */
    for (int attempt = 0;; attempt++) {
        bool retry = false;
        int err = open_once(dir, opts, out, &retry);
        if (!retry || attempt == 20)
            return err;
    }
}

static int open_once(const char *dir, const rc_options *opts, rc_db **out, bool *retry)
{
    if (!dir || !*dir || !out)
        return rc_fail(RC_EINVAL, "rc_open needs a directory and an output handle");
    rc_fail(RC_OK, "%s", "");
    rc_db *db = calloc(1, sizeof(*db));
    if (!db)
        return RC_ENOMEM;
    db->dir_fd = db->lock_fd = -1;
    if (opts)
        db->opt = *opts;
    else
        rc_options_default(&db->opt);
    pthread_mutex_init(&db->append_mu, NULL);
    pthread_mutex_init(&db->ring_mu, NULL);
    pthread_mutex_init(&db->flush_mu, NULL);
    pthread_mutex_init(&db->grow_mu, NULL);
    pthread_cond_init(&db->prep_cv, NULL);
    pthread_mutex_init(&db->ks_mu, NULL);
    pthread_mutex_init(&db->bg_mu, NULL);
    pthread_cond_init(&db->bg_cv, NULL);
    pthread_mutex_init(&db->sweep_mu, NULL);
    pthread_rwlock_init(&db->files_gate, NULL);
    pthread_mutex_init(&db->merge_mu, NULL);
    for (unsigned i = 0; i < KEY_STRIPES; i++)
        pthread_mutex_init(&db->stripes[i], NULL);
    int err = check_options(&db->opt);
    if (!err)
        err = rci_commit_init(db);
    if (err)
        goto fail;
    db->dir = strdup(dir);
    if (!db->dir || rci_seg_table_init(&db->segs) != 0) {
        err = RC_ENOMEM;
        goto fail;
    }
    if (db->opt.create_if_missing && !db->opt.read_only && mkdir(dir, 0755) != 0 &&
        errno != EEXIST) {
        err = rc_fail(rc_from_errno(errno), "cannot create directory %s: %s", dir, strerror(errno));
        goto fail;
    }
    db->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (db->dir_fd < 0) {
        err = rc_fail(errno == ENOENT ? RC_ENOTFOUND : rc_from_errno(errno),
                      "cannot open directory %s: %s", dir, strerror(errno));
        goto fail;
    }
    err = take_lock(db);
    if (err)
        goto fail;
    err = rci_ks_init_retired(db);
    if (err)
        goto fail;
    rc_keyspace *cat = rci_ks_new(db, "", FMT_KS_CATALOG, 0);
    rc_keyspace *def = rci_ks_new(db, "default", FMT_KS_DEFAULT, 0);
    if (!cat || !def || rci_ks_register(db, cat) || rci_ks_register(db, def)) {
        err = RC_ENOMEM;
        goto fail;
    }
    db->next_ks_id = FMT_KS_DEFAULT + 1;
    err = rci_recover(db);
    if (db->segment_vanished) {
        *retry = true;
        err = rc_fail(RC_ENOTFOUND, "segments of %s kept changing while it was opened", dir);
    }
    /* seqs up to the horizon were handed out even when merge left no record
     * that high (trailing deletes dropped, or a full load that carried none):
     * the database continues after them, never reusing one */
    if (!err && atomic_load(&db->tombstone_horizon) > atomic_load(&db->last_seq))
        atomic_store(&db->last_seq, atomic_load(&db->tombstone_horizon));
    atomic_store(&db->superseded_seq, db->opt.read_only ? UINT64_MAX : atomic_load(&db->last_seq));
    if (!err)
        err = rci_identity_open(db, db->had_segments);
    if (err)
        goto fail;
    if (!db->opt.read_only) {
        err = open_active(db);
        if (err)
            goto fail;
    }
    err = rci_bg_start(db);
    if (err)
        goto fail;
    *out = db;
    return 0;
fail:
    db_free(db);
    return err;
}

int rc_close(rc_db *db)
{
    rci_error_clear();
    if (!db)
        return 0;
    /* rc_apply_async writes still waiting: synced and called back first */
    rci_commit_stop(db);
    rci_bg_stop(db);
    rci_prep_stop(db); /* before the active segment is sealed */
    int err = rci_log_close_active(db);
    if (!err && !db->opt.read_only && db->opt.write_hints) {
        /* hints of sealed segments the background thread had not reached */
        for (uint32_t i = 0; i < SEG_SLOTS; i++) {
            segment *seg = seg_at(&db->segs, (uint16_t)i);
            if (seg && !atomic_load(&seg->has_hint) && !atomic_load(&seg->doomed) &&
                atomic_load(&seg->size) > FMT_SEG_HEADER_LEN)
                rci_hint_write(db, seg);
        }
    }
    db_free(db);
    return err;
}

int rc_sync(rc_db *db)
{
    rci_error_clear();
    if (!db)
        return RC_EINVAL;
    return rci_log_sync(db);
}

static void ks_stats_add(rc_keyspace *ks, rc_stats *o)
{
    o->live_keys += rci_keydir_count(ks->kd);
    o->live_value_bytes += atomic_load(&ks->live_value_bytes);
    o->live_key_bytes += atomic_load(&ks->live_key_bytes);
    o->keydir_bytes += rci_keydir_bytes(ks->kd);
    o->list_cache_bytes += atomic_load_explicit(&ks->lc->bytes, memory_order_relaxed);
    o->dead_bytes += atomic_load(&ks->dead_bytes);
    for (unsigned i = 0; i < COUNTER_SHARDS; i++) {
        o->gets += atomic_load_explicit(&ks->counters[i].v[CNT_GET], memory_order_relaxed);
        o->puts += atomic_load_explicit(&ks->counters[i].v[CNT_PUT], memory_order_relaxed);
        o->deletes += atomic_load_explicit(&ks->counters[i].v[CNT_DEL], memory_order_relaxed);
        o->ops += atomic_load_explicit(&ks->counters[i].v[CNT_OP], memory_order_relaxed);
    }
}

int rc_stats_keyspace(rc_db *db, rc_keyspace *ks, rc_stats *out)
{
    rci_error_clear();
    if (!db || !out)
        return RC_EINVAL;
    memset(out, 0, sizeof(*out));
    epoch_slot *ep = rci_epoch_enter(db);
    rc_keyspace *k = rci_ks_resolve(db, ks);
    if (k)
        ks_stats_add(k, out);
    rci_epoch_exit(ep);
    return k ? 0 : rc_fail(RC_ENOKEYSPACE, "the keyspace was dropped");
}

int rc_stats_db(rc_db *db, rc_stats *o)
{
    rci_error_clear();
    if (!db || !o)
        return RC_EINVAL;
    memset(o, 0, sizeof(*o));
    RCI_LOCKING(RANK_KS_MU, 0);
    pthread_mutex_lock(&db->ks_mu);
    epoch_slot *ep = rci_epoch_enter(db);
    rc_keyspace *ks;
    for (uint32_t id = 1; (ks = rci_ks_next(db, &id)); id++) {
        if (!atomic_load(&ks->dropped)) {
            ks_stats_add(ks, o);
            o->keyspaces++;
        }
    }
    o->keydir_bytes += rci_keydir_bytes(rci_ks_by_id(db, FMT_KS_CATALOG)->kd);
    for (size_t i = 0; i < db->ks_all_n; i++) {
        rc_keyspace *ks = db->ks_all[i];
        o->keyspace_bytes += sizeof(*ks) + strlen(ks->name) + 1;
        if (ks->lc != db->retired_lc)
            o->keyspace_bytes += sizeof(*ks->lc) + COUNTER_SHARDS * sizeof(*ks->counters) +
                                 rci_keydir_bytes(ks->kd) +
                                 atomic_load_explicit(&ks->lc->bytes, memory_order_relaxed);
    }
    o->keyspace_bytes += (size_t)db->ks_chunks_n * KS_CHUNK * sizeof(rc_keyspace *) +
                         db->ks_all_cap * sizeof(rc_keyspace *);
    o->dropped_keyspaces = db->retired_handles;
    o->keyspace_handles = db->ks_all_n;
    o->catalog_entries = rci_keydir_count(rci_ks_by_id(db, FMT_KS_CATALOG)->kd);
    rci_epoch_exit(ep);
    pthread_mutex_unlock(&db->ks_mu);
    RCI_UNLOCKED(RANK_KS_MU, 0);
    o->dead_bytes = 0; /* database-wide: by segment, which also counts dropped keyspaces */
    for (uint32_t i = 0; i < SEG_SLOTS; i++) {
        segment *seg = seg_at(&db->segs, (uint16_t)i);
        if (!seg)
            continue;
        o->segments++;
        o->disk_bytes += atomic_load(&seg->size) + seg->hint_bytes;
        o->dead_bytes += atomic_load(&seg->dead_bytes);
    }
    o->last_seq = atomic_load(&db->last_seq);
    o->batches = atomic_load(&db->batches);
    o->fsyncs = atomic_load(&db->fsyncs);
    o->fsync_ns_total = atomic_load(&db->fsync_ns_total);
    o->fsync_ns_max = atomic_load(&db->fsync_ns_max);
    o->expired_swept = atomic_load(&db->expired_swept);
    o->merges = atomic_load(&db->merges);
    o->merge_bytes_read = atomic_load(&db->merge_bytes_read);
    o->merge_bytes_written = atomic_load(&db->merge_bytes_written);
    o->merge_bytes_reclaimed = atomic_load(&db->merge_bytes_reclaimed);
    o->tombstone_horizon = atomic_load(&db->tombstone_horizon);
    o->recovery_ms = db->recovery_ms;
    o->recovered_keys = db->recovered_keys;
    o->hint_files_used = db->hint_files_used;
    o->segments_scanned = db->segments_scanned;
    o->corrupt_records = db->corrupt_records;
    o->torn_bytes = db->torn_bytes;
    o->lost_bytes = db->lost_bytes;
    o->damaged_files = db->damage_n;
    o->corrupt_reads = atomic_load(&db->corrupt_reads);
    o->write_errors = atomic_load(&db->write_errors);
    o->read_only = db->opt.read_only || atomic_load(&db->write_error) != 0;
    o->append_uring = db->direct;
    o->uring_writes = atomic_load(&db->uring_writes);
    o->ring_writes = atomic_load(&db->ring_writes);
    o->prealloc_ahead = atomic_load(&db->prep_grows);
    return 0;
}

int rc_damage_report(rc_db *db, rc_damage **out, size_t *n)
{
    rci_error_clear();
    if (!db || !out || !n)
        return rc_fail(RC_EINVAL, "NULL database or output");
    *out = NULL;
    *n = 0;
    if (db->damage_n == 0)
        return 0;
    rc_damage *d = malloc(db->damage_n * sizeof(*d));
    if (!d)
        return RC_ENOMEM;
    memcpy(d, db->damage, db->damage_n * sizeof(*d));
    *out = d;
    *n = db->damage_n;
    return 0;
}

void rc_damage_free(rc_damage *d)
{
    free(d);
}
