/*
 * merge.c — compaction: rewrite the live records of sealed segments into new
 * ones and delete the old.
 *
 * Choice of victims: a sealed segment whose dead bytes (overwritten values,
 * deleted values, tombstones, swept expired records) reach merge_dead_pct of
 * its size, or merge_dead_bytes, is a candidate; rc_merge takes every sealed
 * segment with anything dead. At most MERGE_MAX_BYTES of victims per run.
 *
 * Per victim record, in file order:
 *   - a value record is kept iff the keydir still points at exactly it;
 *   - a tombstone, or an expired record (which hides older versions just as
 *     a delete does; it leaves the keydir here if the sweeper had not yet
 *     taken it), is dropped only when no segment outside the victims can
 *     hold an older version of its key (every other segment's min_seq is
 *     above its seq) and it is older than tombstone_retention (judged by the
 *     victim file's mtime, which is no earlier than the record); dropping one
 *     raises the tombstone horizon that incremental backups check; an
 *     expired record kept for that reason keeps no value: it is rewritten as
 *     a stub (key, seq, expiry), so TTL'd data is reclaimed at the first merge
 *     after it expires, whatever the retention;
 *   - records of dropped keyspaces are dropped.
 * Kept records are copied (re-encoded without batch framing) into output segments
 * written through io_uring as NNNNNNNN.data.tmp, fdatasync'ed, renamed, given
 * hints, and only then made visible: each kept key is repointed only if it
 * still points at the victim (a write that raced the merge wins).
 *
 * Crash safety: until the outputs are renamed nothing is visible (recovery
 * removes *.tmp). Outputs and victims coexisting is harmless: recovery
 * resolves by sequence number. The victims are then listed in a MERGING
 * manifest (fsynced) before the first is unlinked, and recovery finishes a
 * manifest it finds, so the victims vanish all together or not at all: a
 * dropped tombstone can never leave an older version behind.
 *
 * Foreground impact: copying is rate-limited (merge_rate_bytes); keydir
 * shards are write-locked one key at a time while repointing; readers keep
 * reading victims until an epoch grace period has passed.
 */
#include "db.h"
#include "fault.h"
#include "ring.h"
#include "scan.h"
#include "format/meta.h"
#include "format/record.h"
#include "format/segment.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MERGE_MAX_BYTES (1ull << 30)
#define MERGE_BUF (1u << 20)

typedef struct kept {
    uint32_t ks;
    const uint8_t *key; /* into the victim's mapping */
    uint32_t klen;
    kd_loc old;
    uint32_t new_off;
    uint32_t total_len;
    size_t out_index;
    bool live; /* a keydir entry to repoint (not a kept tombstone) */
} kept;

typedef struct output {
    uint64_t id;
    int fd;
    uint64_t size;
    uint64_t min_seq, max_seq;
    uint64_t tomb_bytes;
    segment *seg; /* after it is opened */
} output;

typedef struct merge_run {
    rc_db *db;
    segment **victims;
    size_t nv;
    uint64_t outside_min_seq; /* lowest seq of any segment not merged */
    int64_t now;
    uint64_t retention_ms;
    int64_t victim_mtime_ms;
    kept *keep;
    size_t nkeep, capkeep;
    output *out;
    size_t nout, capout;
    uint8_t *buf;
    size_t buflen;
    uint64_t bytes_read, bytes_written, horizon;
    uint64_t rate_start_ns, rate_bytes;
    int err;
} merge_run;

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- small files written atomically */

static int write_file_atomic(rc_db *db, const char *name, const uint8_t *buf, size_t len)
{
    char tmp[64];
    snprintf(tmp, sizeof(tmp), "%s.tmp", name);
    int fd = openat(db->dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return rc_fail(rc_from_errno(errno), "cannot create %s: %s", tmp, strerror(errno));
    int err = 0;
    if (pwrite(fd, buf, len, 0) != (ssize_t)len || fdatasync(fd) != 0)
        err = errno ? errno : EIO;
    close(fd);
    if (!err && renameat(db->dir_fd, tmp, db->dir_fd, name) != 0)
        err = errno;
    if (!err && fsync(db->dir_fd) != 0)
        err = errno;
    if (err) {
        unlinkat(db->dir_fd, tmp, 0);
        return rc_fail(rc_from_errno(err), "cannot write %s: %s", name, strerror(err));
    }
    return 0;
}

static int read_small_file(rc_db *db, const char *name, uint8_t **out, size_t *len)
{
    int fd = openat(db->dir_fd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? RC_ENOTFOUND : rc_from_errno(errno);
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size > (off_t)fmt_merging_len(FMT_MERGING_MAX)) {
        close(fd);
        return RC_ECORRUPT;
    }
    uint8_t *b = malloc((size_t)st.st_size + 1);
    ssize_t n = b ? pread(fd, b, (size_t)st.st_size, 0) : -1;
    close(fd);
    if (n != st.st_size) {
        free(b);
        return RC_EIO;
    }
    *out = b;
    *len = (size_t)n;
    return 0;
}

static void unlink_segment_files(rc_db *db, uint64_t id)
{
    char name[32];
    rci_seg_name(name, sizeof(name), id, "hint");
    unlinkat(db->dir_fd, name, 0);
    rci_seg_name(name, sizeof(name), id, "data");
    unlinkat(db->dir_fd, name, 0);
}

int rci_horizon_raise(rc_db *db, uint64_t horizon)
{
    if (horizon <= atomic_load(&db->tombstone_horizon))
        return 0;
    uint8_t hz[FMT_HORIZON_LEN];
    fmt_horizon_encode(hz, horizon);
    int err = write_file_atomic(db, "HORIZON", hz, sizeof(hz));
    if (!err)
        atomic_store(&db->tombstone_horizon, horizon);
    return err;
}

/* At open, before segments are listed: finish an interrupted deletion and
 * load the tombstone horizon. */
int rci_merge_recover(rc_db *db)
{
    uint8_t *b;
    size_t len;
    int rc = read_small_file(db, "MERGING", &b, &len);
    if (rc == 0) {
        uint64_t *ids;
        uint32_t n;
        int d = fmt_merging_decode(b, len, &ids, &n);
        if (d == FMT_EVERSION) { /* a newer build's manifest: neither act on it nor drop it */
            free(b);
            return rc_fail(RC_EVERSION,
                           "%s/MERGING was written by a newer ringcask; this build cannot read it "
                           "(nothing was changed)",
                           db->dir);
        }
        if (d == FMT_OK) {
            if (!db->opt.read_only) {
                for (uint32_t i = 0; i < n; i++)
                    unlink_segment_files(db, ids[i]);
                fsync(db->dir_fd);
            }
            free(ids);
        }
        /* an invalid manifest was never completed: its victims stay */
        if (!db->opt.read_only)
            unlinkat(db->dir_fd, "MERGING", 0);
        free(b);
    }
    rc = read_small_file(db, "HORIZON", &b, &len);
    if (rc == 0) {
        uint64_t h;
        int d = fmt_horizon_decode(b, len, &h);
        if (d != FMT_OK) {
            free(b);
            if (d == FMT_EVERSION)
                return rc_fail(RC_EVERSION,
                               "%s/HORIZON was written by a newer ringcask; this build cannot "
                               "read it (nothing was changed)",
                               db->dir);
            return rc_fail(RC_ECORRUPT, "%s/HORIZON is corrupt", db->dir);
        }
        atomic_store(&db->tombstone_horizon, h);
        free(b);
    }
    return 0;
}

/* ---- output segments */

static int out_flush(merge_run *m)
{
    if (!m->buflen)
        return 0;
    output *o = &m->out[m->nout - 1];
    int ferr = rci_fault_check(FAULT_WRITE);
    if (!ferr) {
        pthread_mutex_lock(&m->db->ring_mu);
        int r = rci_ring_pwrite_all(rci_db_ring(m->db), o->fd, m->buf, m->buflen,
                                    (off_t)(o->size - m->buflen));
        pthread_mutex_unlock(&m->db->ring_mu);
        ferr = r < 0 ? -r : 0;
    }
    if (ferr)
        return rc_fail(rc_from_errno(ferr), "merge cannot write segment %08llu: %s",
                       (unsigned long long)o->id, strerror(ferr));
    m->bytes_written += m->buflen;
    /* rate limit: sleep until the budget allows what was written */
    uint64_t rate = m->db->opt.merge_rate_bytes;
    m->rate_bytes += m->buflen;
    m->buflen = 0;
    if (rate) {
        uint64_t due_ns = m->rate_bytes * 1000000000ull / rate;
        uint64_t spent = mono_ns() - m->rate_start_ns;
        if (due_ns > spent) {
            uint64_t ns = due_ns - spent;
            struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
            nanosleep(&ts, NULL);
        }
    }
    return 0;
}

static int out_close(merge_run *m)
{
    output *o = &m->out[m->nout - 1];
    int err = out_flush(m);
    if (!err && fdatasync(o->fd) != 0)
        err = rc_fail(rc_from_errno(errno), "merge cannot sync its output: %s", strerror(errno));
    close(o->fd);
    o->fd = -1;
    return err;
}

static int out_open(merge_run *m)
{
    rc_db *db = m->db;
    if (m->nout == m->capout) {
        size_t cap = m->capout ? m->capout * 2 : 4;
        output *n = realloc(m->out, cap * sizeof(*n));
        if (!n)
            return RC_ENOMEM;
        m->out = n;
        m->capout = cap;
    }
    RCI_LOCKING(RANK_APPEND_MU, 0);
    pthread_mutex_lock(&db->append_mu);
    uint64_t id = db->next_segment_id++;
    pthread_mutex_unlock(&db->append_mu);
    RCI_UNLOCKED(RANK_APPEND_MU, 0);
    char name[32], tmp[48];
    rci_seg_name(name, sizeof(name), id, "data");
    snprintf(tmp, sizeof(tmp), "%s.tmp", name);
    int ferr = rci_fault_check(FAULT_CREATE);
    int fd = ferr ? -1 : openat(db->dir_fd, tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return rc_fail(rc_from_errno(ferr ? ferr : errno), "merge cannot create %s", tmp);
    output *o = &m->out[m->nout++];
    memset(o, 0, sizeof(*o));
    o->id = id;
    o->fd = fd;
    fmt_segment_header h = {.segment_id = id, .db_id = db->db_id, .created_ms = (uint64_t)m->now};
    fmt_segment_header_encode(m->buf, &h);
    m->buflen = FMT_SEG_HEADER_LEN;
    o->size = FMT_SEG_HEADER_LEN;
    return 0;
}

static int out_append(merge_run *m, const fmt_record *r, const uint8_t *bytes, kept *k, bool marker)
{
    if (!m->nout || m->out[m->nout - 1].size + r->total_len > m->db->opt.segment_bytes) {
        if (m->nout && m->out[m->nout - 1].size > FMT_SEG_HEADER_LEN) {
            int err = out_close(m);
            if (err)
                return err;
        }
        if (!m->nout || m->out[m->nout - 1].fd < 0) {
            int err = out_open(m);
            if (err)
                return err;
        }
    }
    if (m->buflen + r->total_len > MERGE_BUF) {
        int err = out_flush(m);
        if (err)
            return err;
    }
    output *o = &m->out[m->nout - 1];
    k->new_off = (uint32_t)o->size;
    k->out_index = m->nout - 1;
    /* Kept records leave their batch: the batch committed long ago, and the
     * members merge drops would otherwise leave an unterminated frame that a
     * later scan discards. The flags are under the checksum, so re-encode
     * (same size: the flags byte stays one byte). */
    fmt_record plain = *r;
    plain.flags &= (uint8_t) ~(FMT_REC_BATCH | FMT_REC_BATCH_END);
    bool reframe = plain.flags != r->flags || !bytes; /* no BYTES: a stub to encode */
    if (r->total_len > MERGE_BUF) {                   /* a huge record: write it on its own */
        int err = out_flush(m);
        if (err)
            return err;
        uint8_t *tmp = malloc(r->total_len);
        if (!tmp)
            return RC_ENOMEM;
        size_t w = fmt_record_encode(tmp, r->total_len, &plain);
        pthread_mutex_lock(&m->db->ring_mu);
        int rc = w == r->total_len ? rci_ring_pwrite_all(rci_db_ring(m->db), o->fd, tmp,
                                                         r->total_len, (off_t)o->size)
                                   : -EINVAL;
        pthread_mutex_unlock(&m->db->ring_mu);
        free(tmp);
        if (rc < 0)
            return rc_fail(RC_EIO, "merge cannot write a large record");
        m->bytes_written += r->total_len;
    } else {
        if (reframe) {
            if (fmt_record_encode(m->buf + m->buflen, r->total_len, &plain) != r->total_len)
                return rc_fail(RC_ECORRUPT, "merge cannot re-encode record seq %llu",
                               (unsigned long long)r->seq);
        } else {
            memcpy(m->buf + m->buflen, bytes, r->total_len);
        }
        m->buflen += r->total_len;
    }
    o->size += r->total_len;
    if (!o->min_seq || r->seq < o->min_seq)
        o->min_seq = r->seq;
    if (r->seq > o->max_seq)
        o->max_seq = r->seq;
    if (marker)
        o->tomb_bytes += r->total_len;
    return 0;
}

/* ---- deciding per record */

static bool droppable_marker(merge_run *m, const fmt_record *r)
{
    if (m->outside_min_seq <= r->seq)
        return false; /* an older version may live outside the victims */
    if (m->victim_mtime_ms + (int64_t)m->retention_ms > m->now)
        return false; /* backups may still need it */
    return true;
}

static int merge_visit(void *ctx, const fmt_record *r, uint32_t off)
{
    merge_run *m = ctx;
    rc_db *db = m->db;
    segment *victim = m->victims[m->nv - 1];
    m->bytes_read += r->total_len;
    rc_keyspace *ks = rci_ks_by_id(db, r->ks);
    if (!ks || atomic_load(&ks->dropped))
        return 0; /* a dropped keyspace */
    kept k = {.ks = r->ks, .key = r->key, .klen = r->klen, .total_len = r->total_len};
    uint64_t h = rci_keydir_hash(r->key, r->klen);
    unsigned s = keydir_shard_of(h);
    kd_loc loc;
    rci_keydir_rdlock(ks->kd, s);
    bool found = rci_keydir_find(ks->kd, h, r->key, r->klen, &loc);
    rci_keydir_unlock(ks->kd, s);
    bool here = found && loc.seg == victim->slot && loc.off == off && loc.seq == r->seq;
    if (found && !here && loc.seq > r->seq) {
        ks_dead_sub(ks, r->total_len); /* superseded: reclaimed */
        return 0;
    }
    bool tomb = r->flags & FMT_REC_TOMBSTONE;
    bool expired = !tomb && r->expires_at_ms && (int64_t)r->expires_at_ms <= m->now;
    if (!tomb && !expired && !here) {
        ks_dead_sub(ks, r->total_len); /* deleted since: reclaimed */
        return 0;
    }
    k.live = here;
    k.old = loc;
    const fmt_record *out_rec = r;
    const uint8_t *out_bytes = victim->map + off;
    fmt_record stub;
    if (tomb || expired) {
        if (here && expired) { /* an expired record the sweeper had not reached */
            rci_keydir_wrlock(ks->kd, s);
            bool gone = rci_keydir_remove_if(ks->kd, h, r->key, r->klen, &loc);
            rci_keydir_unlock(ks->kd, s);
            if (gone)
                rci_index_account_removed(db, ks, &loc, r->klen);
            k.live = false; /* what is kept below is a marker, not a live key */
        }
        /* the newest word on this key is "absent": keep it while an older
         * version might exist outside this merge or a backup might need it */
        if (droppable_marker(m, r)) {
            if (r->seq > m->horizon)
                m->horizon = r->seq;
            ks_dead_sub(ks, r->total_len); /* the marker itself: reclaimed */
            return 0;
        }
        if (expired && r->vlen) {
            /* Kept only as a marker: its value is never served again, so keep
             * a stub (key, seq, expiry, no value) the size of a tombstone. */
            stub = *r;
            stub.flags &= (uint8_t) ~(FMT_REC_COMPRESSED | FMT_REC_TYPE_MASK);
            stub.val = NULL;
            stub.vlen = 0;
            stub.total_len = (uint32_t)fmt_record_size(&stub);
            ks_dead_sub(ks, r->total_len - stub.total_len); /* the value: reclaimed */
            out_rec = &stub;
            out_bytes = NULL;
            k.total_len = stub.total_len;
        }
    }
    if (m->nkeep == m->capkeep) {
        size_t cap = m->capkeep ? m->capkeep * 2 : 1024;
        kept *n = realloc(m->keep, cap * sizeof(*n));
        if (!n)
            return m->err = RC_ENOMEM;
        m->keep = n;
        m->capkeep = cap;
    }
    int err = out_append(m, out_rec, out_bytes, &k, tomb || expired);
    if (err)
        return m->err = err;
    m->keep[m->nkeep++] = k;
    return 0;
}

/* ---- the run */

static int cmp_seg_id(const void *a, const void *b)
{
    const segment *x = *(segment *const *)a, *y = *(segment *const *)b;
    return x->id < y->id ? -1 : x->id > y->id;
}

static bool is_victim(merge_run *m, const segment *s)
{
    for (size_t i = 0; i < m->nv; i++)
        if (m->victims[i] == s)
            return true;
    return false;
}

static int publish_outputs(merge_run *m)
{
    rc_db *db = m->db;
    for (size_t i = 0; i < m->nout; i++) {
        output *o = &m->out[i];
        char name[32], tmp[48];
        rci_seg_name(name, sizeof(name), o->id, "data");
        snprintf(tmp, sizeof(tmp), "%s.tmp", name);
        if (renameat(db->dir_fd, tmp, db->dir_fd, name) != 0)
            return rc_fail(rc_from_errno(errno), "merge cannot rename %s: %s", tmp,
                           strerror(errno));
    }
    if (fsync(db->dir_fd) != 0)
        return rc_fail(rc_from_errno(errno), "merge cannot sync the directory");
    for (size_t i = 0; i < m->nout; i++) {
        output *o = &m->out[i];
        int err = rci_seg_open(db->dir_fd, o->id, false, &o->seg);
        if (!err) {
            o->seg->min_seq = o->min_seq;
            o->seg->max_seq = o->max_seq;
            o->seg->kept_marker_bytes = o->tomb_bytes;
            err = rci_seg_table_add(&db->segs, o->seg);
            if (err) {
                rci_seg_close(o->seg);
                o->seg = NULL;
            }
        }
        if (err)
            return err;
        if (db->opt.write_hints)
            rci_hint_write(db, o->seg); /* best effort: a scan replaces it */
    }
    return 0;
}

static void repoint_all(merge_run *m)
{
    rc_db *db = m->db;
    epoch_slot *ep = rci_epoch_enter(db);
    for (size_t i = 0; i < m->nkeep; i++) {
        kept *k = &m->keep[i];
        if (!k->live)
            continue;
        rc_keyspace *ks = rci_ks_by_id(db, k->ks);
        segment *out = m->out[k->out_index].seg;
        bool moved = false;
        if (ks && !atomic_load(&ks->dropped)) {
            kd_loc nl = k->old;
            nl.seg = out->slot;
            nl.off = k->new_off;
            uint64_t h = rci_keydir_hash(k->key, k->klen);
            unsigned s = keydir_shard_of(h);
            rci_keydir_wrlock(ks->kd, s);
            moved = rci_keydir_repoint(ks->kd, h, k->key, k->klen, &k->old, &nl);
            rci_keydir_unlock(ks->kd, s);
        }
        if (!moved) /* overwritten meanwhile: the copy is dead */
            atomic_fetch_add(&out->dead_bytes, k->total_len);
    }
    rci_epoch_exit(ep);
}

static int delete_victims(merge_run *m)
{
    rc_db *db = m->db;
    uint64_t *ids = malloc(m->nv * sizeof(*ids));
    uint8_t *man = malloc(fmt_merging_len((uint32_t)m->nv));
    if (!ids || !man) {
        free(ids);
        free(man);
        return RC_ENOMEM;
    }
    for (size_t i = 0; i < m->nv; i++)
        ids[i] = m->victims[i]->id;
    fmt_merging_encode(man, ids, (uint32_t)m->nv);
    int err = write_file_atomic(db, "MERGING", man, fmt_merging_len((uint32_t)m->nv));
    free(man);
    free(ids);
    if (err)
        return err;
    err = rci_horizon_raise(db, m->horizon);
    if (err)
        return err; /* MERGING stays: the next open finishes the deletion */
    /* what the victims held that was not kept was superseded by a write
     * at or below the last seq now; raised before they vanish, so a backup
     * whose snapshot lacks them sees it (rc_backup_until) */
    uint64_t sup = atomic_load(&db->last_seq), was = atomic_load(&db->superseded_seq);
    while (sup > was && !atomic_compare_exchange_weak(&db->superseded_seq, &was, sup))
        ;
    for (size_t i = 0; i < m->nv; i++) {
        atomic_store(&m->victims[i]->doomed, true);
        rci_seg_table_remove(&db->segs, m->victims[i]);
    }
    rci_epoch_synchronize(db); /* no reader is inside a victim's mapping now */
    RCI_LOCKING(RANK_FILES_GATE, 0);
    pthread_rwlock_wrlock(&db->files_gate);
    for (size_t i = 0; i < m->nv; i++) {
        unlink_segment_files(db, m->victims[i]->id);
        rci_seg_close(m->victims[i]);
        m->victims[i] = NULL;
    }
    fsync(db->dir_fd);
    unlinkat(db->dir_fd, "MERGING", 0);
    pthread_rwlock_unlock(&db->files_gate);
    RCI_UNLOCKED(RANK_FILES_GATE, 0);
    return 0;
}

/* Merge VICTIMS (sealed segments). */
static int merge_segments(rc_db *db, segment **victims, size_t nv)
{
    merge_run m = {.db = db,
                   .nv = 0,
                   .now = db_now_ms(db),
                   .retention_ms = db->opt.tombstone_retention_ms,
                   .rate_start_ns = mono_ns()};
    m.victims = victims;
    qsort(victims, nv, sizeof(*victims), cmp_seg_id);
    m.buf = malloc(MERGE_BUF);
    if (!m.buf)
        return RC_ENOMEM;
    uint64_t before = 0;
    m.outside_min_seq = UINT64_MAX;
    m.nv = nv;
    for (uint32_t i = 0; i < SEG_SLOTS; i++) {
        segment *s = seg_at(&db->segs, (uint16_t)i);
        if (!s || is_victim(&m, s))
            continue;
        /* the active segment's future records are newer than anything here */
        uint64_t lo = s->min_seq ? s->min_seq : (s->writable ? UINT64_MAX : 0);
        if (lo < m.outside_min_seq)
            m.outside_min_seq = lo;
    }
    int err = 0;
    epoch_slot *ep = rci_epoch_enter(db);
    for (size_t i = 0; i < nv && !err; i++) {
        m.nv = i + 1; /* merge_visit reads the current victim as the last */
        struct stat st;
        m.victim_mtime_ms = fstat(victims[i]->fd, &st) == 0
                                ? (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000
                                : m.now;
        before += atomic_load(&victims[i]->size) + victims[i]->hint_bytes;
        scan_result res;
        rci_scan_segment(victims[i], false, merge_visit, &m, &res);
        err = m.err;
    }
    rci_epoch_exit(ep);
    m.nv = nv;
    if (!err && m.nout)
        err = out_close(&m);
    if (!err)
        err = publish_outputs(&m);
    if (!err) {
        repoint_all(&m);
        err = delete_victims(&m);
    }
    if (err) {
        /* give up cleanly: victims stay, unpublished outputs go */
        for (size_t i = 0; i < m.nout; i++) {
            if (m.out[i].fd >= 0)
                close(m.out[i].fd);
            if (!m.out[i].seg) {
                char name[48];
                rci_seg_name(name, sizeof(name), m.out[i].id, "data");
                strcat(name, ".tmp");
                unlinkat(db->dir_fd, name, 0);
            }
        }
    } else {
        uint64_t after = 0;
        for (size_t i = 0; i < m.nout; i++)
            after += m.out[i].size + (m.out[i].seg ? m.out[i].seg->hint_bytes : 0);
        atomic_fetch_add(&db->merges, 1);
        atomic_fetch_add(&db->merge_bytes_read, m.bytes_read);
        atomic_fetch_add(&db->merge_bytes_written, m.bytes_written);
        if (before > after)
            atomic_fetch_add(&db->merge_bytes_reclaimed, before - after);
    }
    free(m.out);
    free(m.keep);
    free(m.buf);
    return err;
}

/* Collect merge victims: with ALL, every sealed segment as soon as any has
 * something dead (a full compaction: only then can every droppable tombstone
 * be proven droppable, since no older segment stays outside); otherwise the
 * segments past the thresholds. *N receives the count. */
static segment **pick_victims(rc_db *db, bool all, size_t *n)
{
    size_t k = 0, cap = 0;
    uint64_t total = 0;
    int64_t now = db_now_ms(db);
    /* Per segment, merge_dead_pct bounds the garbage of any one file; when
     * the sealed files hold, together, more than half that share of garbage,
     * lower the bar to a quarter of it, so that space amplification stays
     * near 1 + pct/2 overall rather than 1 / (1 - pct) in the worst case. */
    uint64_t all_size = 0, all_dead = 0;
    for (uint32_t i = 0; i < SEG_SLOTS; i++) {
        segment *s = seg_at(&db->segs, (uint16_t)i);
        if (!s || s->writable || atomic_load(&s->doomed))
            continue;
        all_size += atomic_load(&s->size);
        all_dead += atomic_load(&s->dead_bytes);
        cap++;
    }
    /* sized to the sealed segments (a rotation meanwhile adds one that waits
     * for the next round): a SEG_SLOTS array each round would be 512 KiB,
     * which glibc then keeps in the background thread's arena */
    segment **v = malloc((cap ? cap : 1) * sizeof(*v));
    if (!v)
        return NULL;
    uint32_t pct = db->opt.merge_dead_pct;
    if (all_size && all_dead * 200 >= (uint64_t)pct * all_size)
        pct = pct / 4 ? pct / 4 : 1;
    for (uint32_t i = 0; i < SEG_SLOTS && total < MERGE_MAX_BYTES && k < cap; i++) {
        segment *s = seg_at(&db->segs, (uint16_t)i);
        if (!s || s->writable || s == db->active || atomic_load(&s->doomed))
            continue;
        uint64_t size = atomic_load(&s->size);
        uint64_t dead = atomic_load(&s->dead_bytes);
        bool markers_due =
            s->kept_marker_bytes && s->created_ms + (int64_t)db->opt.tombstone_retention_ms <= now;
        bool pick;
        if (all)
            pick = true;
        else
            pick = size > FMT_SEG_HEADER_LEN && ((dead > 0 && (dead * 100 >= (uint64_t)pct * size ||
                                                               dead >= db->opt.merge_dead_bytes)) ||
                                                 markers_due);
        if (pick) {
            v[k++] = s;
            total += size;
        }
    }
    if (all) { /* nothing to gain when nothing is dead */
        bool any = false;
        for (size_t i = 0; i < k && !any; i++)
            any = atomic_load(&v[i]->dead_bytes) > 0 || v[i]->kept_marker_bytes > 0 ||
                  atomic_load(&v[i]->size) <= FMT_SEG_HEADER_LEN;
        if (!any)
            k = 0;
    }
    *n = k;
    return v;
}

/* Dead data in the active segment is out of merge's reach until the segment
 * rotates, which may take a long time under a light write load; seal it early
 * once it is big enough to be worth a file and dead enough to be a victim. */
static void seal_dead_active(rc_db *db)
{
    segment *a = db->active;
    if (!a)
        return;
    uint64_t size = atomic_load(&a->size), dead = atomic_load(&a->dead_bytes);
    if (dead > 0 && size >= db->opt.segment_bytes / 8 &&
        dead * 100 >= (uint64_t)db->opt.merge_dead_pct * size)
        rci_log_seal_active(db);
}

int rci_merge_maybe(rc_db *db)
{
    if (db->opt.read_only || atomic_load(&db->write_error))
        return 0;
    seal_dead_active(db);
    RCI_LOCKING(RANK_MERGE_MU, 0);
    pthread_mutex_lock(&db->merge_mu);
    size_t n = 0;
    segment **v = pick_victims(db, false, &n);
    int err = v && n ? merge_segments(db, v, n) : 0;
    free(v);
    pthread_mutex_unlock(&db->merge_mu);
    RCI_UNLOCKED(RANK_MERGE_MU, 0);
    return err;
}

int rc_merge(rc_db *db)
{
    rci_error_clear();
    if (!db)
        return RC_EINVAL;
    if (db->opt.read_only)
        return rc_fail(RC_EREADONLY, "cannot merge a database opened read-only");
    if (atomic_load(&db->write_error))
        return rc_fail(RC_EREADONLY, "an earlier fdatasync failed: reopen the database");
    int err = rci_log_seal_active(db); /* so that its dead data can go too */
    if (err)
        return err;
    RCI_LOCKING(RANK_MERGE_MU, 0);
    pthread_mutex_lock(&db->merge_mu);
    size_t n = 0;
    segment **v = pick_victims(db, true, &n);
    err = !v ? RC_ENOMEM : n ? merge_segments(db, v, n) : 0;
    free(v);
    pthread_mutex_unlock(&db->merge_mu);
    RCI_UNLOCKED(RANK_MERGE_MU, 0);
    return err;
}
