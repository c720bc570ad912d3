/*
 * log.c — the append path: sequence numbers, batch framing, rotation, and
 * group commit.
 *
 * Appending is a short critical section (append_mu): assign sequence numbers,
 * make sure of room (the preparer, prepare.c, preallocates ahead; an appender
 * grows the file itself only when it outran it), encode every record into the
 * shared mapping of the active segment, publish the new end. No system call
 * happens per write except when the preallocation runs out, so one thread
 * appends millions of records a second and a crash of the process loses
 * nothing that was acknowledged (the bytes are in the page cache).
 *
 * Durability (RC_SYNC_ALWAYS) is group-committed by a leader: the first
 * waiter whose bytes are not yet durable becomes the leader, notes the
 * current end of the log, makes it durable and declares everything up to
 * that end durable. Writers that appended meanwhile wait for the leader and
 * then elect the next one; with 8 writers one sync covers up to 8 writes. A
 * failed sync is never retried: the page cache may have dropped the dirty
 * pages, so the database turns read-only (RC_EREADONLY) until reopened.
 *
 * Two ways to the file (rc_options.append_io, resolved at open into
 * db->direct): the mapping — records are encoded into a MAP_SHARED mapping
 * of the preallocated file and the leader calls fdatasync — or the io_uring
 * path — records are encoded into anonymous staging memory at the same
 * offsets and the leader writes the group's blocks with O_DIRECT through
 * io_uring (one submission, no io-wq worker) and flushes them itself, or with
 * one pwritev2(RWF_DSYNC) (flush_locked; append_uring.c). Readers read the
 * same addresses either way (segment.h).
 *
 * Positions are logical (tail_lsn counts bytes appended since open) so that
 * rotation needs no special case: it syncs the old segment fully before the
 * first byte goes to the new one.
 */
#include "db.h"
#include "fault.h"
#include "ring.h"
#include "append_uring.h"
#include "format/record.h"
#include "format/segment.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Count one durable point (a sync or a group write) of NS; a failure turns
 * the database read-only. */
static void note_sync(rc_db *db, uint64_t ns, int err)
{
    atomic_fetch_add(&db->fsyncs, 1);
    atomic_fetch_add(&db->fsync_ns_total, ns);
    uint64_t max = atomic_load(&db->fsync_ns_max);
    while (ns > max && !atomic_compare_exchange_weak(&db->fsync_ns_max, &max, ns))
        ;
    if (err) {
        atomic_store(&db->write_error, err);
        atomic_fetch_add(&db->write_errors, 1);
    }
}

/* fdatasync SEG, with stats and the sticky failure. The leader calls
 * fdatasync itself rather than through io_uring: IORING_OP_FSYNC always runs
 * on an io-wq kernel worker, and that hop measured ~20 us per sync here (avg
 * sync 104-110 us through the ring, 84-91 us direct; one writer 9.2k vs
 * 11.3k durable writes/s in the same run), which group commit pays once per
 * group on the critical path. io_uring keeps the large writes (hints, merge
 * outputs), where it batches and overlaps. */
static int sync_segment(rc_db *db, segment *seg)
{
    uint64_t t0 = mono_ns();
    int err = rci_fault_check(FAULT_SYNC);
    if (!err && fdatasync(seg->fd) != 0)
        err = errno;
    note_sync(db, mono_ns() - t0, err);
    if (err)
        return rc_fail(RC_EIO,
                       "fdatasync of segment %08llu failed (%s): the database is now "
                       "read-only; reopen it",
                       (unsigned long long)seg->id, strerror(err));
    return 0;
}

/* The direct append paths (flush_mu held): write the staged bytes from the
 * block holding seg->flushed up to TARGET with O_DIRECT and make them
 * durable (append_uring.c: the ring's write and an fdatasync, or one
 * pwritev2 with RWF_DSYNC), then map the whole
 * SEG_GROW_STEP chunks now durable from the file over the staging memory.
 * The fault point and the failure rule are fdatasync's: never retried, the
 * database turns read-only. */
static int flush_locked(rc_db *db, segment *seg, uint64_t target)
{
    if (seg->flushed >= target)
        return 0;
    if (atomic_load(&db->write_error))
        return rc_fail(RC_EIO, "an earlier write failed: the database is read-only until "
                               "reopened");
    uint64_t t0 = mono_ns();
    int err = rci_fault_check(FAULT_SYNC);
    if (!err) {
        uint64_t start = seg->flushed / RCI_DIO_BLOCK * RCI_DIO_BLOCK;
        int r = rci_dw_write(db->dw, seg->dfd, seg->map, start, target);
        err = r < 0 ? -r : 0;
    }
    note_sync(db, mono_ns() - t0, err);
    atomic_fetch_add(&db->uring_writes, 1);
    if (rci_dw_uses_ring(db->dw))
        atomic_fetch_add(&db->ring_writes, 1);
    if (err)
        return rc_fail(RC_EIO,
                       "fdatasync (the durable O_DIRECT write) of segment %08llu up to %llu "
                       "failed (%s): the database is now read-only; reopen it",
                       (unsigned long long)seg->id, (unsigned long long)target, strerror(err));
    seg->flushed = target;
    /* a failed remap only keeps the staged copy longer: readers see the same
     * bytes either way */
    rci_seg_remap(seg, target / SEG_GROW_STEP * SEG_GROW_STEP);
    return 0;
}

static int flush_to(rc_db *db, segment *seg, uint64_t target)
{
    pthread_mutex_lock(&db->flush_mu);
    int err = flush_locked(db, seg, target);
    pthread_mutex_unlock(&db->flush_mu);
    return err;
}

int rci_log_flush_to(rc_db *db, segment *seg, uint64_t size)
{
    if (!seg->direct)
        return 0;
    return flush_to(db, seg, size);
}

/* Make SEG's file whole and durable at its size: the io_uring path writes
 * what is still staged first. SEG may stay the active segment (a rotation
 * whose next segment cannot be created), so its staging stays writable. */
static int seal_segment(rc_db *db, segment *seg)
{
    if (!seg->direct) {
        int err = rci_seg_truncate(seg);
        return err ? err : sync_segment(db, seg);
    }
    pthread_mutex_lock(&db->flush_mu);
    int err = flush_locked(db, seg, atomic_load(&seg->size));
    if (!err)
        err = rci_seg_truncate(seg);
    if (!err)
        err = sync_segment(db, seg); /* the new size */
    pthread_mutex_unlock(&db->flush_mu);
    return err;
}

/* The futex words of the group commit (db.h): process-private. */
static void futex_wait(_Atomic uint32_t *word, uint32_t seen, const struct timespec *rel)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, seen, rel, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *word, int n)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

/* Advance durable_lsn to at least LSN (a leader, or a rotation that synced
 * everything) and wake every waiter: one system call, and none when nobody
 * sleeps. A waiter re-checks durable_lsn itself, so no mutex is taken on
 * either side (a mutex + condition variable here made the woken writers
 * wake each other one by one through the mutex). */
static void advance_durable(rc_db *db, uint64_t lsn)
{
    uint64_t cur = atomic_load(&db->durable_lsn);
    while (lsn > cur && !atomic_compare_exchange_weak(&db->durable_lsn, &cur, lsn))
        ;
}

static void wake_waiters(rc_db *db)
{
    atomic_fetch_add(&db->sync_gen, 1);
    if (atomic_load(&db->sync_sleepers) > 0)
        futex_wake(&db->sync_gen, INT_MAX);
}

static void mark_durable(rc_db *db, uint64_t lsn)
{
    advance_durable(db, lsn);
    wake_waiters(db);
}

/* Create the next segment, able to hold RESERVE bytes, register it and make
 * it the active one (append_mu held, or during open). */
static int start_segment(rc_db *db, uint64_t reserve)
{
    segment *seg;
    int err = rci_seg_create(db->dir_fd, db->next_segment_id, db->db_id, reserve, db_now_ms(db),
                             db->direct, &seg);
    if (err)
        return err;
    err = rci_seg_table_add(&db->segs, seg);
    if (err) {
        char name[32];
        rci_seg_name(name, sizeof(name), seg->id, "data");
        rci_seg_close(seg);
        unlinkat(db->dir_fd, name, 0);
        return err;
    }
    db->next_segment_id++;
    db->active = seg;
    return 0;
}

int rci_log_open_active(rc_db *db)
{
    return start_segment(db, db->opt.segment_bytes);
}

/* Seal the active segment and start a new one able to hold NEED bytes.
 * Called with append_mu held. */
static int log_rotate(rc_db *db, uint64_t need)
{
    segment *old = db->active;
    rci_prep_forget(db, old); /* the preparer never touches it again */
    int err = seal_segment(db, old);
    if (err)
        return err;
    mark_durable(db, atomic_load(&db->tail_lsn));

    uint64_t reserve = db->opt.segment_bytes;
    if (need + FMT_SEG_HEADER_LEN > reserve)
        reserve = need + FMT_SEG_HEADER_LEN;
    err = start_segment(db, reserve);
    if (err)
        return err; /* OLD stays the active segment (its staging too) */
    if (old->direct) {
        /* no byte of it is staged any more: map the rest from the file */
        pthread_mutex_lock(&db->flush_mu);
        rci_seg_remap(old, old->map_len);
        pthread_mutex_unlock(&db->flush_mu);
    }
    rci_seg_drop_written(old, atomic_load(&old->size), 0);
    old->writable = false;
    rci_bg_kick(db); /* write the old segment's hint */
    return 0;
}

static inline fmt_record to_fmt(const log_rec *r, uint8_t extra_flags)
{
    fmt_record f = {
        /* framing is the log's alone: never inherited from a caller's record */
        .flags = (uint8_t)((r->flags & ~(FMT_REC_BATCH | FMT_REC_BATCH_END)) | extra_flags),
        .seq = r->seq,
        .ks = r->ks,
        .expires_at_ms = r->expires_at_ms,
        .key = r->key,
        .klen = r->klen,
        .val = r->val,
        .vlen = r->vlen,
    };
    return f;
}

static int log_append(rc_db *db, log_rec *recs, size_t n, uint64_t *end_lsn, bool loading,
                      uint64_t expect_last)
{
    if (n == 0)
        return 0;
    if (db->opt.read_only)
        return rc_fail(RC_EREADONLY, "the database was opened read-only");
    RCI_LOCKING(RANK_APPEND_MU, 0);
    pthread_mutex_lock(&db->append_mu);
    int err = 0;
    if (atomic_load(&db->write_error)) {
        err = rc_fail(RC_EREADONLY, "an earlier fdatasync failed: the database is read-only "
                                    "until reopened");
        goto out;
    }
    uint64_t seq = atomic_load_explicit(&db->last_seq, memory_order_relaxed);
    const uint64_t before = seq;
    if (loading && seq != expect_last) {
        err = rc_fail(RC_ECONFLICT,
                      "a write landed while the stream was being applied (last seq %llu, "
                      "expected %llu): nothing was loaded",
                      (unsigned long long)seq, (unsigned long long)expect_last);
        goto out;
    }
    if (!loading && atomic_load_explicit(&db->ident_replica, memory_order_relaxed)) {
        /* the first local write after a load: this directory leaves the
         * loaded database's history (identity.c), durably, before the write */
        err = rci_identity_diverge(db);
        if (err)
            goto out;
    }
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (recs[i].seq == 0) {
            recs[i].seq = ++seq;
        } else if (recs[i].seq <= before) {
            /* a kept seq (rc_load) that a write took since the caller read
             * last_seq: two records would share it; nothing is written */
            err = rc_fail(RC_ECONFLICT,
                          "a write landed while the stream was being applied (seq %llu is "
                          "taken): nothing was loaded",
                          (unsigned long long)recs[i].seq);
            goto unassign;
        } else if (recs[i].seq > seq) {
            seq = recs[i].seq;
        }
        fmt_record f = to_fmt(&recs[i], 0);
        size_t sz = fmt_record_size(&f);
        recs[i].total_len = (uint32_t)sz;
        total += sz;
    }
    segment *seg = db->active;
    uint64_t size = atomic_load_explicit(&seg->size, memory_order_relaxed);
    if (size + total > db->opt.segment_bytes && size > FMT_SEG_HEADER_LEN) {
        err = log_rotate(db, total);
        if (err)
            goto unassign;
        seg = db->active;
        size = atomic_load_explicit(&seg->size, memory_order_relaxed);
    } else if (size + total > seg->map_len) {
        err = log_rotate(db, total);
        if (err)
            goto unassign;
        seg = db->active;
        size = atomic_load_explicit(&seg->size, memory_order_relaxed);
    }
    if (size + total > atomic_load(&seg->file_len)) {
        /* the preparer fell behind (or never ran): grow here, waiting for it
         * if it is growing this file right now */
        pthread_mutex_lock(&db->grow_mu);
        err = rci_seg_reserve(seg, total);
        pthread_mutex_unlock(&db->grow_mu);
        if (err)
            goto unassign;
    }
    uint64_t off = size;
    for (size_t i = 0; i < n; i++) {
        uint8_t frame = 0;
        if (n > 1)
            frame = (i + 1 < n) ? FMT_REC_BATCH : FMT_REC_BATCH_END;
        fmt_record f = to_fmt(&recs[i], frame);
        size_t w = fmt_record_encode(seg->map + off, recs[i].total_len, &f);
        if (w != recs[i].total_len) { /* validated by the caller: cannot happen */
            err = rc_fail(RC_EINVAL, "record %zu of the write does not encode", i);
            goto unassign;
        }
        recs[i].seg = seg->slot;
        recs[i].off = (uint32_t)off;
        off += w;
    }
    /* batch framing: the records, a batch's BATCH..BATCH_END included, are one
     * contiguous run inside one segment's mapping */
    RCI_ASSERT(off == size + total && off <= seg->map_len);
    rci_seg_ckpt_note(seg, size, seq);
    if (seq > seg->max_seq)
        seg->max_seq = seq;
    if (!seg->min_seq || recs[0].seq < seg->min_seq)
        seg->min_seq = recs[0].seq;
    for (size_t i = 1; i < n; i++)
        if (recs[i].seq < seg->min_seq)
            seg->min_seq = recs[i].seq;
    atomic_store_explicit(&seg->size, off, memory_order_release);
    atomic_store_explicit(&db->last_seq, seq, memory_order_release);
    rci_seg_drop_written(seg, off, SEG_DROP_KEEP);
    rci_prep_kick(db, seg); /* the next step of room, ahead of the writers */
    /* not under sync=always: the populated pages are dirty zeros, and every
     * fdatasync would write those ahead of the end once more */
    if (db->opt.sync != RC_SYNC_ALWAYS)
        rci_seg_populate_ahead(seg, off);
    *end_lsn = atomic_fetch_add(&db->tail_lsn, total) + total;
    goto out;
unassign:
    /* nothing was published: forget the sequence numbers we handed out */
    for (size_t i = 0; i < n; i++)
        if (recs[i].seq > atomic_load(&db->last_seq))
            recs[i].seq = 0;
out:
    pthread_mutex_unlock(&db->append_mu);
    RCI_UNLOCKED(RANK_APPEND_MU, 0);
    return err;
}

int rci_log_append(rc_db *db, log_rec *recs, size_t n, uint64_t *end_lsn)
{
    return log_append(db, recs, n, end_lsn, false, 0);
}

int rci_log_append_loaded(rc_db *db, log_rec *recs, size_t n, uint64_t expect_last,
                          uint64_t *end_lsn)
{
    return log_append(db, recs, n, end_lsn, true, expect_last);
}

/* Is the gathering leader's group complete: nobody mid-append, and as many
 * writers arrived as the last sync covered? */
static bool group_complete(rc_db *db)
{
    return atomic_load_explicit(&db->appending, memory_order_acquire) == 0 &&
           atomic_load_explicit(&db->arrivals, memory_order_acquire) >=
               atomic_load_explicit(&db->gather_want, memory_order_relaxed);
}

void rci_log_group_poke(rc_db *db)
{
    if (!atomic_load_explicit(&db->gathering, memory_order_acquire) || !group_complete(db))
        return;
    if (atomic_exchange(&db->gathering, 0)) { /* only one writer wakes it */
        atomic_fetch_add(&db->gather_word, 1);
        futex_wake(&db->gather_word, 1);
    }
}

/* Before a leader syncs: let writers that are on their way join it. On two
 * cores eight writers woken by one sync come back in waves, and the first to
 * return would lead a nearly empty sync of its own. So wait while writers are
 * mid-append, and until as many writers have arrived as the last sync
 * covered — for at most half an average fdatasync (and 200 us): cheap against
 * the sync, and a lone writer never waits. The leader sleeps on a futex
 * rather than spinning (the spin took the CPU the writers it waited for
 * needed: 12 % of all cycles at 8 threads on two cores went to sched_yield);
 * the writer whose finished append or arrival completes the group wakes it
 * (rci_log_group_poke). */
static void gather_group(rc_db *db)
{
    uint64_t n = atomic_load(&db->fsyncs);
    uint64_t avg = n ? atomic_load(&db->fsync_ns_total) / n : 0;
    uint64_t window = avg / 2 < 200000 ? avg / 2 : 200000;
    atomic_store(&db->gather_want, atomic_load(&db->last_group));
    if (window == 0 || group_complete(db))
        return;
    uint64_t start = mono_ns();
    for (;;) {
        uint32_t seen = atomic_load(&db->gather_word);
        atomic_store(&db->gathering, 1);
        if (group_complete(db))
            break;
        uint64_t spent = mono_ns() - start;
        if (spent >= window)
            break;
        uint64_t left = window - spent;
        struct timespec rel = {.tv_sec = 0, .tv_nsec = (long)left};
        futex_wait(&db->gather_word, seen, &rel);
        if (group_complete(db))
            break;
    }
    atomic_store(&db->gathering, 0);
}

/* Lead one sync: gather, note the end of the log, make it durable, publish
 * it. The caller holds sync_leader. */
static int lead_sync(rc_db *db)
{
    gather_group(db);

    RCI_LOCKING(RANK_APPEND_MU, 0);
    pthread_mutex_lock(&db->append_mu);
    uint64_t target = atomic_load(&db->tail_lsn);
    int group = atomic_exchange(&db->arrivals, 0);
    segment *seg = db->active;
    uint64_t seg_end = atomic_load(&seg->size);
    pthread_mutex_unlock(&db->append_mu);
    RCI_UNLOCKED(RANK_APPEND_MU, 0);
    int err = seg->direct ? flush_to(db, seg, seg_end) : sync_segment(db, seg);
    atomic_store(&db->last_group, group);
    /* publish the durable end before giving up the lead, so that a waiter
     * that finds no leader also finds its bytes durable and does not lead
     * an empty sync; a failure is in write_error already (the woken waiters
     * read it) */
    if (!err)
        advance_durable(db, target);
    atomic_store(&db->sync_leader, 0);
    wake_waiters(db);
    return err;
}

/* Wait until END_LSN is durable, leading a group sync when none is in
 * flight. Waiters sleep on sync_gen; whoever finds no leader becomes it. */
static int log_wait_durable(rc_db *db, uint64_t end_lsn)
{
    atomic_fetch_add(&db->arrivals, 1);
    rci_log_group_poke(db);
    for (;;) {
        if (atomic_load(&db->durable_lsn) >= end_lsn)
            return 0;
        if (atomic_load(&db->write_error))
            return rc_fail(RC_EIO, "fdatasync failed: the write may not be durable; the "
                                   "database is read-only until reopened");
        uint32_t gen = atomic_load(&db->sync_gen);
        int idle = 0;
        if (atomic_compare_exchange_strong(&db->sync_leader, &idle, 1)) {
            if (atomic_load(&db->durable_lsn) >= end_lsn) {
                /* a sync finished between the check and the CAS */
                atomic_store(&db->sync_leader, 0);
                wake_waiters(db); /* a waiter may have slept on that leader */
                return 0;
            }
            int err = lead_sync(db);
            if (err)
                return err;
            continue;
        }
        atomic_fetch_add(&db->sync_sleepers, 1);
        if (atomic_load(&db->sync_leader) && atomic_load(&db->durable_lsn) < end_lsn)
            futex_wait(&db->sync_gen, gen, NULL);
        atomic_fetch_sub(&db->sync_sleepers, 1);
    }
}

int rci_log_seal_active(rc_db *db)
{
    if (db->opt.read_only)
        return 0;
    RCI_LOCKING(RANK_APPEND_MU, 0);
    pthread_mutex_lock(&db->append_mu);
    int err = 0;
    if (atomic_load(&db->active->size) > FMT_SEG_HEADER_LEN)
        err = log_rotate(db, 0);
    pthread_mutex_unlock(&db->append_mu);
    RCI_UNLOCKED(RANK_APPEND_MU, 0);
    return err;
}

int rci_log_reserve_ids(rc_db *db, uint32_t n, uint64_t expect_last, uint64_t new_last,
                        uint64_t *first)
{
    RCI_LOCKING(RANK_APPEND_MU, 0);
    pthread_mutex_lock(&db->append_mu);
    int err = 0;
    if (atomic_load(&db->write_error)) {
        err = rc_fail(RC_EREADONLY, "an earlier fdatasync failed: the database is read-only "
                                    "until reopened");
    } else if (atomic_load(&db->last_seq) != expect_last) {
        err = rc_fail(RC_ENOTEMPTY, "a write reached the database while the load was being "
                                    "verified: a full backup loads only into an empty database");
    } else {
        *first = db->next_segment_id;
        db->next_segment_id += n;
        /* the active segment moves past the reserved ids: ids keep the order
         * in which segments were filled, so the active one stays the newest
         * segment without a hint (the tail recovery reads in tail mode) */
        err = log_rotate(db, 0);
        if (!err && new_last > expect_last)
            atomic_store(&db->last_seq, new_last);
    }
    pthread_mutex_unlock(&db->append_mu);
    RCI_UNLOCKED(RANK_APPEND_MU, 0);
    return err;
}

int rci_log_wait(rc_db *db, uint64_t end_lsn)
{
    if (db->opt.sync != RC_SYNC_ALWAYS || end_lsn == 0)
        return 0;
    return log_wait_durable(db, end_lsn);
}

int rci_log_sync(rc_db *db)
{
    if (db->opt.read_only)
        return 0;
    return log_wait_durable(db, atomic_load(&db->tail_lsn));
}

int rci_log_close_active(rc_db *db)
{
    segment *seg = db->active;
    if (!seg || db->opt.read_only)
        return 0;
    int err = atomic_load(&db->write_error) ? 0 : rci_log_sync(db);
    if (seg->direct) {
        /* nothing more is written after a failure (the staged bytes were
         * never acknowledged): the file keeps its durable prefix and its
         * zero-filled preallocation, and gets no hint (the hint would name
         * staged records); recovery reads it as a torn tail */
        if (!err && atomic_load(&db->write_error)) {
            seg->writable = false;
            return 0;
        }
        if (!err)
            err = seal_segment(db, seg);
    } else {
        int e2 = rci_seg_truncate(seg);
        if (!err)
            err = e2;
        if (!err && !atomic_load(&db->write_error))
            err = sync_segment(db, seg);
    }
    seg->writable = false;
    if (!err && atomic_load(&seg->size) <= FMT_SEG_HEADER_LEN) {
        /* nothing was written this session: leave no empty file behind */
        char name[32];
        rci_seg_name(name, sizeof(name), seg->id, "data");
        rci_seg_table_remove(&db->segs, seg);
        rci_seg_close(seg);
        db->active = NULL;
        if (unlinkat(db->dir_fd, name, 0) == 0)
            fsync(db->dir_fd);
        return 0;
    }
    if (!err && db->opt.write_hints)
        err = rci_hint_write(db, seg);
    return err;
}
