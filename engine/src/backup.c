/*
 * backup.c — rc_backup: a consistent snapshot of everything with seq > since,
 * written as a backup stream (format/stream.h, FORMAT.md "Backup stream").
 *
 * Snapshot. With ks_mu, the files gate (shared: merge cannot close or
 * unlink a segment meanwhile) and append_mu held for a moment, the
 * newest sequence number (SNAP_SEQ), the set of live keyspace ids and every
 * segment with its current size are noted together, so they describe one
 * instant: every record with seq <= SNAP_SEQ lies inside the noted sizes,
 * and a keyspace live at that instant is live in the catalogue as of
 * SNAP_SEQ (create and drop change both under ks_mu). Each noted segment is
 * then mapped afresh, read-only, over its noted size (a read-only handle's
 * private copies of unhinted segments are read in place). These mappings
 * keep the files readable even if merge unlinks them later, so the gate is
 * released as soon as they exist: a long backup never holds merge up, and
 * writers are never blocked beyond the moment of the snapshot.
 *
 * An incremental costs what changed: a segment whose highest seq is <= since
 * is not even mapped, and the others are scanned from rci_seg_ckpt_start
 * (segment.h: a sparse prefix index, one checkpoint per 64 KiB, noting the
 * highest seq before each; built at open from hints or scans, by appends and
 * by full loads), i.e. from a record boundary before which nothing is newer
 * than since. The index bounds a prefix's maximum, so it is right whatever
 * the seq order inside a segment (merge outputs and loaded segments are not
 * in seq order; a merge output made since open has no index and is scanned
 * whole). The output is the same as with a scan of everything
 * (rci_backup_skip = false; test_backup_skip compares byte for byte).
 *
 * Collection. Every mapped segment is scanned (scan.c: batch framing, the
 * same rules recovery uses) and, per (keyspace id, key), the location of the
 * newest record with since < seq <= SNAP_SEQ is kept in a temporary keydir
 * per keyspace id, so memory is proportional to the keys in the backup
 * (about 32 bytes plus the key per key), not to the database. Tombstones are
 * kept (an incremental must carry deletes), so are records whose TTL has
 * passed (they hide older versions on the target, which applies TTL
 * itself), and so are the catalogue records of keyspace 0 (keyspace creation
 * and drops travel). Records of keyspaces that were not live at the
 * snapshot are dead and skipped. Scanning reads every segment sequentially
 * from the page cache and is always right; reading hint files instead of
 * scanning sealed segments would cut the I/O of a full backup roughly by
 * the value bytes and is the obvious next step.
 *
 * Progress (rc_progress_fn, in records): while scanning, DONE counts the
 * records scanned and TOTAL is 0 (not known yet); while writing, DONE of
 * TOTAL records of the stream, ending with DONE == TOTAL.
 *
 * Emission. The kept locations are sorted (catalogue first, so a reader sees
 * keyspaces before their keys, then in file order, so the reads are
 * sequential) and the records are copied verbatim, checksum included, into
 * frames of about FMT_STREAM_FRAME_TARGET raw bytes; each record is verified
 * (fmt_record_decode) before it is copied, so a bad record fails the backup
 * with RC_ECORRUPT instead of travelling. Records keep the batch flags they
 * had in their segment; a loader ignores them. The trailer's until is the
 * highest seq included (or since when nothing changed), or the tombstone
 * horizon when that is higher (merge dropped the trailing deletes): the next
 * incremental starts there, and a target that loaded this stream has a last
 * seq at least that high, so the next incremental never looks like a gap.
 */
#include "db.h"
#include "scan.h"
#include "format/meta.h"
#include "format/segment.h"
#include "format/stream.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* A segment of the snapshot: a private read-only mapping of its first LEN
 * bytes (MAP NULL when it holds no record). */
typedef struct snap_seg {
    uint64_t id;
    uint8_t *map;
    size_t len;
    uint64_t from; /* where its scan starts (rci_seg_ckpt_start) */
    bool borrowed; /* the segment's own memory (a read-only handle's copy) */
} snap_seg;

typedef struct backup_run {
    rc_db *db;
    uint64_t since;
    uint64_t snap_seq;        /* last_seq at the snapshot: nothing newer is read */
    uint8_t id[RCI_ID_BYTES]; /* the database's identity at the snapshot */
    uint64_t max_seq;         /* highest seq collected: the stream's until */
    snap_seg *segs;
    size_t nseg;
    uint8_t *live; /* by keyspace id: 1 if live at the snapshot (0 always) */
    uint32_t live_cap;
    keydir **kds;   /* by keyspace id: the newest location per key */
    uint32_t cur;   /* index of the segment being scanned */
    uint64_t *locs; /* (segment index << 32 | offset), catalogue first */
    size_t nlocs, ncatalog, caplocs;
    int err;

    rc_write_fn write;
    void *write_ctx;
    rc_progress_fn progress;
    void *progress_ctx;
    fmt_stream_writer w;
    uint8_t *raw; /* the frame being filled */
    size_t raw_len, raw_cap;
    uint8_t *out; /* its encoding */
    size_t out_cap;
    uint64_t bytes;
} backup_run;

bool rci_backup_skip = true;

static int cmp_snap_id(const void *a, const void *b)
{
    const snap_seg *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The tombstone horizon into *OUT: 0 or RC_ECORRUPT. FRESH: a read-only
 * handle reads the file again (see below). */
static int read_horizon(rc_db *db, bool fresh, uint64_t *out)
{
    uint64_t horizon = atomic_load(&db->tombstone_horizon);
    if (fresh && db->opt.read_only) {
        /* A read-only handle (kvdump beside a running kvd) learnt the horizon
         * at open, and the writer's merges may have raised it since — even
         * before this handle listed its segments. The file is replaced
         * atomically, so read it again; the larger value wins. */
        int fd = openat(db->dir_fd, "HORIZON", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            uint8_t buf[FMT_HORIZON_LEN + 1];
            ssize_t n = pread(fd, buf, sizeof(buf), 0);
            close(fd);
            uint64_t on_disk;
            if (n < 0 || fmt_horizon_decode(buf, (size_t)n, &on_disk) != FMT_OK)
                return rc_fail(RC_ECORRUPT, "%s/HORIZON cannot be read: take a full backup",
                               db->dir);
            if (on_disk > horizon)
                horizon = on_disk;
        }
    }
    *out = horizon;
    return 0;
}

static int check_horizon(rc_db *db, uint64_t since)
{
    uint64_t horizon = 0;
    int err = read_horizon(db, since > 0, &horizon);
    if (err)
        return err;
    if (since > 0 && since < horizon)
        return rc_fail(RC_EHORIZON,
                       "since %llu is below the tombstone horizon %llu: merge has dropped "
                       "deletes this incremental would need; take a full backup (since 0)",
                       (unsigned long long)since, (unsigned long long)horizon);
    return 0;
}

/* Note the snapshot and map its segments. Lock order (as everywhere):
 * ks_mu, then files_gate, then append_mu; merge takes the gate under
 * merge_mu, and rc_load takes merge_mu under ks_mu, so the gate must never be
 * held while waiting for ks_mu. */
static int snapshot(backup_run *b)
{
    rc_db *db = b->db;
    segment **found = malloc(SEG_SLOTS * sizeof(*found));
    uint64_t *sizes = malloc(SEG_SLOTS * sizeof(*sizes));
    uint64_t *froms = malloc(SEG_SLOTS * sizeof(*froms));
    int err = 0;
    size_t n = 0;
    if (!found || !sizes || !froms) {
        err = RC_ENOMEM;
        goto out;
    }

    RCI_LOCKING(RANK_KS_MU, 0);
    pthread_mutex_lock(&db->ks_mu);
    RCI_LOCKING(RANK_FILES_GATE, 0);
    pthread_rwlock_rdlock(&db->files_gate); /* merge cannot close a segment */
    b->live_cap = db->next_ks_id > FMT_KS_DEFAULT ? db->next_ks_id : FMT_KS_DEFAULT + 1;
    b->live = calloc(b->live_cap, 1);
    b->kds = calloc(b->live_cap, sizeof(*b->kds));
    if (!b->live || !b->kds) {
        pthread_mutex_unlock(&db->ks_mu);
        RCI_UNLOCKED(RANK_KS_MU, 0);
        err = RC_ENOMEM;
        goto out_gate;
    }
    b->live[FMT_KS_CATALOG] = 1;
    for (uint32_t id = FMT_KS_DEFAULT; id < b->live_cap; id++) {
        rc_keyspace *ks = rci_ks_by_id(db, id);
        b->live[id] = ks && !atomic_load(&ks->dropped);
    }
    RCI_LOCKING(RANK_APPEND_MU, 0);
    pthread_mutex_lock(&db->append_mu);
    b->snap_seq = atomic_load(&db->last_seq);
    memcpy(b->id, db->ident.id, RCI_ID_BYTES);
    for (uint32_t slot = 0; slot < SEG_SLOTS; slot++) {
        segment *seg = seg_at(&db->segs, (uint16_t)slot);
        if (!seg)
            continue;
        uint64_t max = atomic_load(&seg->max_seq);
        if (rci_backup_skip && b->since > 0 && max != 0 && max <= b->since)
            continue; /* every record in it is at or below since */
        found[n] = seg;
        sizes[n] = atomic_load_explicit(&seg->size, memory_order_acquire);
        /* the index is extended under append_mu, which is held */
        froms[n] = rci_backup_skip ? rci_seg_ckpt_start(seg, b->since) : FMT_SEG_HEADER_LEN;
        if (froms[n] > sizes[n])
            froms[n] = sizes[n];
        n++;
    }
    pthread_mutex_unlock(&db->append_mu);
    RCI_UNLOCKED(RANK_APPEND_MU, 0);
    pthread_mutex_unlock(&db->ks_mu);
    RCI_UNLOCKED(RANK_KS_MU, 0);

    b->segs = calloc(n ? n : 1, sizeof(*b->segs));
    if (!b->segs) {
        err = RC_ENOMEM;
        goto out_gate;
    }
    for (size_t i = 0; i < n; i++) {
        snap_seg *s = &b->segs[b->nseg++];
        s->id = found[i]->id;
        s->from = froms[i];
        if (sizes[i] <= FMT_SEG_HEADER_LEN || !found[i]->map)
            continue; /* no record in it */
        if (found[i]->fd < 0) {
            /* a read-only handle's private copy (segment.h): such a handle
             * never merges, so the copy lives as long as the handle */
            s->map = found[i]->map;
            s->len = sizes[i];
            s->borrowed = true;
            continue;
        }
        /* the io_uring append path keeps the active segment's newest bytes
         * in memory until a group commit writes them: write them first */
        err = rci_log_flush_to(db, found[i], sizes[i]);
        if (err)
            goto out_gate;
        void *map = mmap(NULL, sizes[i], PROT_READ, MAP_SHARED, found[i]->fd, 0);
        if (map == MAP_FAILED) {
            err = rc_fail(RC_ENOMEM, "backup cannot map segment %08llu (%llu bytes): %s",
                          (unsigned long long)s->id, (unsigned long long)sizes[i], strerror(errno));
            goto out_gate;
        }
        if (sizes[i] > froms[i] + 65536u)
            madvise(map, sizes[i], MADV_SEQUENTIAL);
        s->map = map;
        s->len = sizes[i];
    }
    qsort(b->segs, b->nseg, sizeof(*b->segs), cmp_snap_id);
out_gate:
    /* the private mappings keep the files readable even if merge unlinks
     * them from here on */
    pthread_rwlock_unlock(&db->files_gate);
    RCI_UNLOCKED(RANK_FILES_GATE, 0);
out:
    free(found);
    free(sizes);
    free(froms);
    return err;
}

/* scan_fn: keep the record's location if it is the newest of its key so far. */
static int collect_visit(void *ctx, const fmt_record *r, uint32_t off)
{
    backup_run *b = ctx;
    if (r->seq <= b->since || r->seq > b->snap_seq)
        return 0;
    if (r->ks >= b->live_cap || !b->live[r->ks])
        return 0; /* a keyspace dropped (or never live) at the snapshot */
    keydir *kd = b->kds[r->ks];
    if (!kd) {
        kd = b->kds[r->ks] = rci_keydir_new();
        if (!kd)
            return b->err = RC_ENOMEM;
    }
    kd_loc loc = {.seg = (uint16_t)b->cur, .off = off, .seq = r->seq, .expires_at_ms = 0};
    uint64_t hash = rci_keydir_hash(r->key, r->klen);
    unsigned shard = keydir_shard_of(hash);
    bool replaced, had;
    kd_loc old;
    rci_keydir_wrlock(kd, shard);
    int rc = rci_keydir_put_if_newer(kd, hash, r->key, r->klen, &loc, &replaced, &old, &had);
    rci_keydir_unlock(kd, shard);
    return rc != 0 ? (b->err = RC_ENOMEM) : 0;
}

static int loc_visit(void *ctx, const uint8_t *key, size_t klen, const kd_loc *loc)
{
    (void)key;
    (void)klen;
    backup_run *b = ctx;
    if (b->nlocs == b->caplocs) {
        size_t cap = b->caplocs ? b->caplocs * 2 : 4096;
        uint64_t *n = realloc(b->locs, cap * sizeof(*n));
        if (!n)
            return b->err = RC_ENOMEM;
        b->locs = n;
        b->caplocs = cap;
    }
    b->locs[b->nlocs++] = (uint64_t)loc->seg << 32 | loc->off;
    if (loc->seq > b->max_seq)
        b->max_seq = loc->seq;
    return 0;
}

/* Scan every segment, then turn the temporary keydirs into sorted locations
 * (and free them as soon as they are read). */
static int collect(backup_run *b)
{
    uint64_t scanned = 0;
    for (size_t i = 0; i < b->nseg && !b->err; i++) {
        snap_seg *s = &b->segs[i];
        if (!s->map)
            continue;
        segment view;
        memset(&view, 0, sizeof(view));
        view.id = s->id;
        view.map = s->map;
        view.map_len = s->len;
        atomic_store(&view.size, s->len);
        b->cur = (uint32_t)i;
        scan_result res;
        /* not tail mode: within the noted sizes every record is committed
         * (the tail of the newest segment was cut at open, and appends past
         * the noted size are not mapped) */
        if (rci_scan_segment_from(&view, s->from, false, collect_visit, b, &res) != 0 && !b->err)
            b->err = RC_ENOMEM;
        scanned += res.records;
        if (b->progress) /* total 0: records scanned, the total is not known yet */
            b->progress(b->progress_ctx, scanned, 0);
    }
    atomic_fetch_add(&b->db->backup_scanned, scanned);
    for (uint32_t id = 0; id < b->live_cap && !b->err; id++) {
        keydir *kd = b->kds[id];
        for (unsigned s = 0; kd && s < KEYDIR_SHARDS && !b->err; s++) {
            rci_keydir_rdlock(kd, s);
            rci_keydir_shard_foreach(kd, s, loc_visit, b);
            rci_keydir_unlock(kd, s);
        }
        rci_keydir_free(kd);
        b->kds[id] = NULL;
        if (id == FMT_KS_CATALOG)
            b->ncatalog = b->nlocs;
    }
    if (b->err)
        return b->err;
    if (b->nlocs > 0) { /* locs is NULL when nothing changed */
        qsort(b->locs, b->ncatalog, sizeof(*b->locs), cmp_u64);
        qsort(b->locs + b->ncatalog, b->nlocs - b->ncatalog, sizeof(*b->locs), cmp_u64);
    }
    return 0;
}

static int emit(backup_run *b, const uint8_t *buf, size_t len)
{
    if (b->write(b->write_ctx, buf, len) != 0)
        return rc_fail(RC_EIO, "the backup's write callback failed after %llu bytes",
                       (unsigned long long)b->bytes);
    b->bytes += len;
    return 0;
}

static int flush_frame(backup_run *b)
{
    if (b->raw_len == 0)
        return 0;
    size_t bound = fmt_stream_frame_bound(b->raw_len);
    if (bound == 0)
        return rc_fail(RC_ELIMIT, "a backup frame of %zu bytes is over the limit", b->raw_len);
    if (bound > b->out_cap) {
        uint8_t *n = realloc(b->out, bound);
        if (!n)
            return RC_ENOMEM;
        b->out = n;
        b->out_cap = bound;
    }
    int level = b->db->opt.compress_level > 0 ? b->db->opt.compress_level : 1;
    size_t len;
    int rc = fmt_stream_frame_encode(&b->w, b->raw, b->raw_len, level, b->out, b->out_cap, &len);
    if (rc != FMT_OK)
        return rc_fail(rc == FMT_ESPACE ? RC_ENOMEM : RC_ECORRUPT,
                       "cannot encode a backup frame: %s", fmt_strerror(rc));
    b->raw_len = 0;
    return emit(b, b->out, len);
}

/* Copy the record at LOC into the current frame, verified. */
static int add_record(backup_run *b, uint64_t loc)
{
    snap_seg *s = &b->segs[loc >> 32];
    uint32_t off = (uint32_t)loc;
    fmt_record r;
    int rc = off < s->len ? fmt_record_decode(s->map + off, s->len - off, &r) : FMT_ESHORT;
    if (rc != FMT_OK)
        return rc_fail(RC_ECORRUPT,
                       "record at segment %08llu offset %u no longer verifies (%s): the "
                       "backup is abandoned rather than carry it",
                       (unsigned long long)s->id, off, fmt_strerror(rc));
    if (b->raw_len + r.total_len > b->raw_cap) {
        size_t cap = b->raw_len + r.total_len;
        if (cap < FMT_STREAM_FRAME_TARGET + 65536u)
            cap = FMT_STREAM_FRAME_TARGET + 65536u;
        uint8_t *n = realloc(b->raw, cap);
        if (!n)
            return RC_ENOMEM;
        b->raw = n;
        b->raw_cap = cap;
    }
    memcpy(b->raw + b->raw_len, s->map + off, r.total_len);
    b->raw_len += r.total_len;
    return b->raw_len >= FMT_STREAM_FRAME_TARGET ? flush_frame(b) : 0;
}

static int write_stream(backup_run *b, rc_backup_info *info)
{
    uint8_t head[FMT_STREAM_HEADER_MAX];
    /* every record is collected already, so until is known before the body
     * and goes into the header (a shipper learns the next since from it) */
    uint64_t until = b->max_seq > b->since ? b->max_seq : b->since;
    /* seqs up to the horizon that no record holds any more were dropped by
     * merge (trailing deletes): the stream covers them all the same, so the
     * next incremental (since = until) is not refused as below the horizon */
    uint64_t horizon = 0;
    int herr = read_horizon(b->db, true, &horizon);
    if (herr)
        return herr;
    if (horizon > b->snap_seq)
        horizon = b->snap_seq;
    if (horizon > until)
        until = horizon;
    fmt_stream_header h = {
        .since = b->since,
        .until = until,
        .created_ms = (uint64_t)db_now_ms(b->db), /* the database's clock (tests fake it) */
    };
    memcpy(h.id, b->id, RCI_ID_BYTES);
    size_t hlen = fmt_stream_writer_init(&b->w, &h, head);
    int err = emit(b, head, hlen);
    if (b->progress)
        b->progress(b->progress_ctx, 0, b->nlocs);
    for (size_t i = 0; i < b->nlocs && !err; i++) {
        err = add_record(b, b->locs[i]);
        if (b->progress && (i + 1) % 65536 == 0)
            b->progress(b->progress_ctx, i + 1, b->nlocs);
    }
    if (!err)
        err = flush_frame(b);
    if (err)
        return err;
    uint8_t trailer[FMT_STREAM_TRAILER_FRAME_LEN];
    if (fmt_stream_trailer_encode(&b->w, until, trailer) != FMT_OK)
        return rc_fail(RC_ECORRUPT, "cannot encode the backup trailer");
    err = emit(b, trailer, sizeof(trailer));
    if (err)
        return err;
    if (b->progress)
        b->progress(b->progress_ctx, b->nlocs, b->nlocs);
    if (info) {
        info->since = b->since;
        info->until = until;
        info->records = b->w.records;
        info->tombstones = b->w.tombstones;
        info->bytes = b->bytes;
        info->version = FMT_STREAM_VERSION;
        rci_id_hex(b->id, info->database);
    }
    return 0;
}

int rc_backup(rc_db *db, uint64_t since, rc_write_fn write, void *ctx, rc_progress_fn progress,
              void *progress_ctx, rc_backup_info *info)
{
    return rc_backup_until(db, since, UINT64_MAX, write, ctx, progress, progress_ctx, info);
}

int rc_backup_until(rc_db *db, uint64_t since, uint64_t until, rc_write_fn write, void *ctx,
                    rc_progress_fn progress, void *progress_ctx, rc_backup_info *info)
{
    rci_error_clear();
    if (!db || !write)
        return rc_fail(RC_EINVAL, "rc_backup needs a database and a write callback");
    int err = check_horizon(db, since); /* early, before any work */
    if (err)
        return err;
    backup_run b = {.db = db,
                    .since = since,
                    .write = write,
                    .write_ctx = ctx,
                    .progress = progress,
                    .progress_ctx = progress_ctx};
    err = snapshot(&b);
    /* a since from the future: another database, or this one was restored
     * from an older backup; an empty incremental would make the chain skip
     * the writes that will reuse those seqs */
    if (!err && since > b.snap_seq)
        err = rc_fail(RC_EGAP,
                      "since %llu is beyond this database's last seq %llu: it is not the "
                      "database the previous backup came from; take a full backup",
                      (unsigned long long)since, (unsigned long long)b.snap_seq);
    /* bounded: records past UNTIL are left out like those written after
     * the snapshot. Unless merge dropped versions after SINCE that writes
     * past UNTIL superseded (superseded_seq, read after the snapshot: raised
     * before merge retires its victims): the stream would then lack them and
     * still claim UNTIL, so it is cut at superseded_seq instead (more than
     * asked, never a hole) */
    if (!err && until < b.snap_seq) {
        uint64_t cut = until > since ? until : since;
        uint64_t sup = atomic_load(&db->superseded_seq);
        if (since < sup && cut < sup)
            cut = sup < b.snap_seq ? sup : b.snap_seq;
        b.snap_seq = cut;
    }
    /* merge raises the horizon before it retires the segments it rewrote, so
     * checking again after the snapshot catches a merge that raced it */
    if (!err)
        err = check_horizon(db, since);
    if (!err)
        err = collect(&b);
    if (!err)
        err = write_stream(&b, info);

    for (size_t i = 0; i < b.nseg; i++)
        if (b.segs[i].map)
            if (!b.segs[i].borrowed)
                munmap(b.segs[i].map, b.segs[i].len);
    for (uint32_t id = 0; b.kds && id < b.live_cap; id++)
        rci_keydir_free(b.kds[id]);
    free(b.kds);
    free(b.live);
    free(b.segs);
    free(b.locs);
    free(b.raw);
    free(b.out);
    return err;
}
