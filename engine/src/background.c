/*
 * background.c — the maintenance thread: periodic fdatasync in interval
 * mode, hint files for sealed segments, the active TTL sweeper, and (merge.c)
 * background merges. Each task works in bounded steps so that it never holds
 * a lock long enough for a client to see a pause.
 */
#include "db.h"
#include "format/segment.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int rci_merge_maybe(rc_db *db); /* merge.c */

void rci_bg_kick(rc_db *db)
{
    pthread_mutex_lock(&db->bg_mu);
    db->bg_kick = true;
    pthread_cond_signal(&db->bg_cv);
    pthread_mutex_unlock(&db->bg_mu);
}

static void write_missing_hints(rc_db *db)
{
    if (!db->opt.write_hints || db->opt.read_only)
        return;
    for (uint32_t i = 0; i < SEG_SLOTS; i++) {
        /* an empty slot needs no epoch: only a segment is dereferenced (this
         * runs every tick, and entering an epoch for each of the 65,536
         * slots was most of an idle database's CPU) */
        if (__atomic_load_n(&db->segs.slots[i], __ATOMIC_RELAXED) == NULL)
            continue;
        /* inside an epoch: a merge that dooms this segment waits for us
         * before it unmaps it, and one that doomed it first is seen here */
        epoch_slot *ep = rci_epoch_enter(db);
        segment *seg = seg_at(&db->segs, (uint16_t)i);
        if (seg && !seg->writable && !atomic_load(&seg->has_hint) &&
            atomic_load(&seg->size) > FMT_SEG_HEADER_LEN && !atomic_load(&seg->doomed) &&
            seg != db->active)
            rci_hint_write(db, seg); /* a failure only costs a scan at the next open */
        rci_epoch_exit(ep);
    }
}

/* ---- TTL sweeper */

typedef struct sweep_batch {
    uint8_t *keys[256];
    size_t lens[256];
    kd_loc locs[256];
    size_t n;
    int64_t now;
} sweep_batch;

static int sweep_visit(void *ctx, const uint8_t *key, size_t klen, const kd_loc *loc)
{
    sweep_batch *b = ctx;
    if (!loc->expires_at_ms || loc->expires_at_ms > b->now)
        return 0;
    b->keys[b->n] = malloc(klen);
    if (!b->keys[b->n])
        return 1;
    memcpy(b->keys[b->n], key, klen);
    b->lens[b->n] = klen;
    b->locs[b->n] = *loc;
    b->n++;
    return b->n == 256; /* full: the step resumes after this entry */
}

/* One bounded step over SHARD of KS from *CURSOR: removes the expired keys
 * it finds; *WRAPPED tells that the shard's table was finished. */
static size_t sweep_step(rc_db *db, rc_keyspace *ks, unsigned s, size_t *cursor, size_t step,
                         bool *wrapped)
{
    sweep_batch b = {.now = db_now_ms(db)};
    size_t removed = 0;
    rci_keydir_rdlock(ks->kd, s);
    *wrapped = rci_keydir_shard_scan_step(ks->kd, s, cursor, step, sweep_visit, &b);
    rci_keydir_unlock(ks->kd, s);
    for (size_t i = 0; i < b.n; i++) {
        uint64_t h = rci_keydir_hash(b.keys[i], b.lens[i]);
        rci_keydir_wrlock(ks->kd, s);
        bool gone = rci_keydir_remove_if(ks->kd, h, b.keys[i], b.lens[i], &b.locs[i]);
        rci_keydir_unlock(ks->kd, s);
        if (gone) {
            rci_index_account_removed(db, ks, &b.locs[i], b.lens[i]);
            removed++;
        }
        free(b.keys[i]);
    }
    if (b.n == 256)
        *wrapped = false; /* the batch filled up: come back to this part */
    return removed;
}

/* Sweep one keyspace by about BUDGET table slots from its saved position,
 * or the whole keyspace when FULL. Returns keys removed. */
static size_t sweep_keyspace(rc_db *db, rc_keyspace *ks, size_t budget, bool full)
{
    size_t removed = 0;
    if (full) {
        for (unsigned s = 0; s < KEYDIR_SHARDS; s++) {
            size_t cursor = 0;
            bool wrapped = false;
            while (!wrapped)
                removed += sweep_step(db, ks, s, &cursor, 1024, &wrapped);
        }
        return removed;
    }
    size_t visited = 0;
    for (unsigned round = 0; round < KEYDIR_SHARDS && visited < budget; round++) {
        size_t step = budget - visited < 1024 ? budget - visited : 1024;
        bool wrapped;
        removed += sweep_step(db, ks, (unsigned)ks->sweep_shard, &ks->sweep_cursor, step, &wrapped);
        visited += step;
        if (wrapped) {
            ks->sweep_cursor = 0;
            ks->sweep_shard = (ks->sweep_shard + 1) % KEYDIR_SHARDS;
        }
    }
    return removed;
}

static size_t sweep_all(rc_db *db, size_t budget, bool full)
{
    size_t removed = 0;
    /* a handle read from the id table inside an epoch outlives the epoch
     * (a drop frees it only after a grace period) */
    for (uint32_t id = 1;; id++) {
        epoch_slot *ep = rci_epoch_enter(db);
        rc_keyspace *ks = rci_ks_next(db, &id);
        if (ks && !atomic_load(&ks->dropped) && rci_keydir_ttl_count(ks->kd) > 0)
            removed += sweep_keyspace(db, ks, budget, full);
        rci_epoch_exit(ep);
        if (!ks)
            break;
    }
    atomic_fetch_add(&db->expired_swept, removed);
    return removed;
}

size_t rci_sweep_expired(rc_db *db, size_t budget)
{
    pthread_mutex_lock(&db->sweep_mu);
    size_t n = sweep_all(db, budget, false);
    pthread_mutex_unlock(&db->sweep_mu);
    return n;
}

int rc_expire_now(rc_db *db)
{
    rci_error_clear();
    if (!db)
        return RC_EINVAL;
    pthread_mutex_lock(&db->sweep_mu);
    sweep_all(db, 0, true);
    pthread_mutex_unlock(&db->sweep_mu);
    return 0;
}

static void *bg_main(void *arg)
{
    rc_db *db = arg;
    uint64_t period = 1000;
    if (db->opt.sync == RC_SYNC_INTERVAL && db->opt.sync_interval_ms < period)
        period = db->opt.sync_interval_ms;
    if (db->opt.ttl_sweep_ms && db->opt.ttl_sweep_ms < period)
        period = db->opt.ttl_sweep_ms;
    if (period == 0)
        period = 1;
    struct timespec last_merge;
    clock_gettime(CLOCK_MONOTONIC, &last_merge);
    pthread_mutex_lock(&db->bg_mu);
    while (!db->bg_stop) {
        if (!db->bg_kick) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += (long)(period % 1000) * 1000000L;
            ts.tv_sec += (time_t)(period / 1000) + ts.tv_nsec / 1000000000L;
            ts.tv_nsec %= 1000000000L;
            pthread_cond_timedwait(&db->bg_cv, &db->bg_mu, &ts);
        }
        if (db->bg_stop)
            break;
        db->bg_kick = false;
        pthread_mutex_unlock(&db->bg_mu);

        if (db->opt.sync == RC_SYNC_INTERVAL && !db->opt.read_only &&
            !atomic_load(&db->write_error))
            rci_log_sync(db);
        write_missing_hints(db);
        if (db->opt.ttl_sweep_ms)
            rci_sweep_expired(db, 16384);
        if (db->opt.list_cache_idle_ms)
            rci_lc_release_idle(db);
        if (db->opt.merge_check_ms && !db->opt.read_only) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            int64_t ms = (now.tv_sec - last_merge.tv_sec) * 1000 +
                         (now.tv_nsec - last_merge.tv_nsec) / 1000000;
            if (ms >= (int64_t)db->opt.merge_check_ms) {
                rci_merge_maybe(db);
                last_merge = now;
            }
        }
        pthread_mutex_lock(&db->bg_mu);
    }
    pthread_mutex_unlock(&db->bg_mu);
    return NULL;
}

int rci_bg_start(rc_db *db)
{
    db->bg_stop = false;
    if (pthread_create(&db->bg_thread, NULL, bg_main, db) != 0)
        return rc_fail(RC_ENOMEM, "cannot start the background thread");
    db->bg_running = true;
    return 0;
}

void rci_bg_stop(rc_db *db)
{
    if (!db->bg_running)
        return;
    pthread_mutex_lock(&db->bg_mu);
    db->bg_stop = true;
    pthread_cond_signal(&db->bg_cv);
    pthread_mutex_unlock(&db->bg_mu);
    pthread_join(db->bg_thread, NULL);
    db->bg_running = false;
}
