/*
 * load.c — reading backup streams: rc_verify_stream and rc_load.
 *
 * One walker (stream_walk) reads a stream through the caller's rc_read_fn
 * and checks everything format/stream.h can check: the header, every frame
 * header's lengths (before any allocation), every payload's checksum and
 * zstd framing (before the raw buffer is sized from it), every record's own
 * checksum, the trailer's counts and frame chain, and that nothing follows
 * the trailer. Payload buffers grow as bytes actually arrive, so a stream
 * that claims a huge frame and then ends costs no more memory than it sent.
 *
 * rc_load never applies anything before the trailer has verified: while the
 * walker verifies, the decompressed records of each frame are staged in
 * DIR/load.tmp (removed at the end, on failure, and by the next rc_open if a
 * crash left it). Only then, under ks_mu, is the target checked again (a
 * full stream needs an empty database, an incremental one must not start
 * after the database's last seq) and the staged records applied:
 *
 *   - A full stream is written into segments of its own under the LOADING
 *     marker (see "full loads" below): any size, all or nothing across a
 *     crash (rc_open undoes an interrupted one), no per-record RAM.
 *   - An incremental stream: records with seq <= the target's last seq are
 *     skipped. A target that was restored from the same source already
 *     reflects every change up to its last seq, so those records are either
 *     present or superseded; and every record that is written is newer than
 *     anything on the target, so the state after a reopen (recovery resolves
 *     by seq) is the state indexed now. This also makes loading the same
 *     stream twice a no-op. Every remaining record is appended as ONE atomic
 *     batch (log_append, sequence numbers preserved, batch flags from the
 *     source dropped): a crash during the load leaves all of it or none of
 *     it, so a rerun of the same command is always right. The price: one
 *     log_rec (64 bytes) per record in RAM, and the records must fit one
 *     segment (32-bit offsets): LOAD_BYTES_MAX.
 *   - Either way, catalogue records are indexed first, the keyspace handles
 *     are made to match the catalogue (ks_refresh_catalog), then every other
 *     record is indexed into its keyspace if it is newer than what is there
 *     (as recovery does), with the usual live/dead byte accounting.
 * Concurrent readers may see the load half indexed; it is durable (fdatasync)
 * when rc_load returns, whatever the sync mode. Progress is in records: while
 * verifying, DONE records verified of TOTAL 0 (unknown until the trailer);
 * while writing segments (full) or indexing (incremental), DONE of TOTAL; at
 * the end DONE == TOTAL.
 */
#include "db.h"
#include "format/catalog.h"
#include "format/compress.h"
#include "format/meta.h"
#include "format/record.h"
#include "format/segment.h"
#include "format/stream.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOAD_TMP "load.tmp"
#define LOAD_MARKER "LOADING"
#define LOAD_BYTES_MAX 0xF0000000ull /* records of an incremental load: one segment */
#define LOAD_SLOT_MARGIN 256u        /* segment slots left for the log while loading */
#define LOAD_KS_ID_MAX KS_ID_MAX     /* sanity bound on keyspace ids (db.h) */
#define READ_CHUNK (4u << 20)        /* payload bytes read per call */

/* ------------------------------------------------------------ the walker */

typedef struct stream_walk {
    rc_read_fn read;
    void *ctx;
    uint64_t pos; /* stream bytes consumed */
    fmt_stream_reader rd;
    fmt_stream_trailer trailer;
    uint8_t *payload;
    size_t payload_cap;
    uint8_t *raw;
    size_t raw_cap;
    /* optional hooks; a non-zero return stops the walk and is returned */
    int (*on_header)(void *cb, const fmt_stream_header *h);
    int (*on_frame)(void *cb, const uint8_t *raw, size_t len);
    void *cb;
} stream_walk;

/* Read up to LEN bytes (fewer only at the end of the stream). */
static int read_full(stream_walk *w, uint8_t *buf, size_t len, size_t *got)
{
    size_t have = 0;
    *got = 0;
    while (have < len) {
        long n = w->read(w->ctx, buf + have, len - have);
        if (n < 0)
            return rc_fail(RC_EIO, "the stream's read callback failed after %llu bytes",
                           (unsigned long long)(w->pos + have));
        if (n == 0)
            break;
        if ((size_t)n > len - have)
            return rc_fail(RC_EINVAL, "the read callback returned more bytes than asked");
        have += (size_t)n;
    }
    w->pos += have;
    *got = have;
    return 0;
}

static int truncated(const stream_walk *w, const char *where)
{
    return rc_fail(RC_ECORRUPT, "the stream ends after %llu bytes, %s: it is truncated",
                   (unsigned long long)w->pos, where);
}

/* Read a frame payload of NEED bytes, growing the buffer as bytes arrive. */
static int read_payload(stream_walk *w, size_t need)
{
    size_t have = 0;
    while (have < need) {
        size_t want = need - have < READ_CHUNK ? need - have : READ_CHUNK;
        if (have + want > w->payload_cap) {
            size_t cap = w->payload_cap * 2 > have + want ? w->payload_cap * 2 : have + want;
            if (cap > need)
                cap = need;
            uint8_t *n = realloc(w->payload, cap);
            if (!n)
                return RC_ENOMEM;
            w->payload = n;
            w->payload_cap = cap;
        }
        size_t got;
        int err = read_full(w, w->payload + have, want, &got);
        if (err)
            return err;
        have += got;
        if (got < want)
            return truncated(w, "inside a frame");
    }
    return 0;
}

static int walk(stream_walk *w)
{
    uint8_t head[FMT_STREAM_HEADER_MAX];
    size_t got, more = 0;
    int err = read_full(w, head, FMT_STREAM_HEADER_MIN, &got);
    if (err)
        return err;
    if (got < FMT_STREAM_HEADER_MIN)
        return truncated(w, "inside its header");
    /* the version (bytes 4..5, never moving) says how long the header is */
    size_t len = fmt_stream_header_len(fmt_get_u16(head + 4));
    if (fmt_get_u32(head) == FMT_STREAM_MAGIC && len > got) {
        err = read_full(w, head + got, len - got, &more);
        if (err)
            return err;
        if (more < len - got)
            return truncated(w, "inside its header");
        got += more;
    }
    int rc = fmt_stream_reader_init(&w->rd, head, got);
    if (rc == FMT_EVERSION)
        return rc_fail(RC_EVERSION, "the stream has format version %u; this build reads up to %u",
                       (unsigned)fmt_get_u16(head + 4), FMT_STREAM_VERSION);
    if (rc != FMT_OK)
        return rc_fail(RC_ECORRUPT, "not a ringcask backup stream, or its header is corrupt");
    if (w->on_header && (err = w->on_header(w->cb, &w->rd.header)) != 0)
        return err;
    for (;;) {
        uint8_t fh[FMT_STREAM_FRAME_HEADER_LEN];
        uint64_t at = w->pos;
        err = read_full(w, fh, sizeof(fh), &got);
        if (err)
            return err;
        if (got < sizeof(fh))
            return truncated(w, "without its trailer");
        fmt_stream_frame f;
        rc = fmt_stream_frame_header_decode(fh, got, &f);
        if (rc != FMT_OK)
            return rc_fail(RC_ECORRUPT, "the frame header at byte %llu is corrupt (%s)",
                           (unsigned long long)at, fmt_strerror(rc));
        err = read_payload(w, f.stored_len);
        if (err)
            return err;
        if (f.type == FMT_STREAM_FRAME_TRAILER) {
            if (fmt_stream_read_trailer(&w->rd, &f, w->payload, &w->trailer) != FMT_OK)
                return rc_fail(RC_ECORRUPT,
                               "the trailer at byte %llu does not match the stream "
                               "(checksum, counts or frame chain)",
                               (unsigned long long)at);
            uint8_t extra;
            err = read_full(w, &extra, 1, &got);
            if (!err && got)
                err = rc_fail(RC_ECORRUPT, "bytes follow the trailer at byte %llu",
                              (unsigned long long)(w->pos - 1));
            return err;
        }
        if (fmt_stream_frame_verify(&f, w->payload) != FMT_OK)
            return rc_fail(RC_ECORRUPT, "the frame at byte %llu fails its checksum",
                           (unsigned long long)at);
        if (f.raw_len > w->raw_cap) {
            uint8_t *n = realloc(w->raw, f.raw_len);
            if (!n)
                return RC_ENOMEM;
            w->raw = n;
            w->raw_cap = f.raw_len;
        }
        if (fmt_stream_read_records(&w->rd, &f, w->payload, w->raw, w->raw_cap) != FMT_OK)
            return rc_fail(RC_ECORRUPT,
                           "the frame at byte %llu does not hold whole valid "
                           "records",
                           (unsigned long long)at);
        if (w->on_frame && (err = w->on_frame(w->cb, w->raw, f.raw_len)) != 0)
            return err;
    }
}

/* Also after a failure: what was read so far (since once the header
 * decoded, the counts once the trailer verified, else 0), so that a caller
 * can say which stream a gap or a refusal was about. */
static void walk_info(const stream_walk *w, rc_backup_info *info)
{
    if (!info)
        return;
    info->since = w->rd.header.since;
    info->until = w->trailer.until ? w->trailer.until : w->rd.header.until;
    info->version = w->rd.header.version;
    info->database[0] = '\0';
    if (w->rd.header.version >= 2)
        rci_id_hex(w->rd.header.id, info->database);
    info->records = w->trailer.records;
    info->tombstones = w->trailer.tombstones;
    info->bytes = w->pos;
}

int rc_verify_stream(rc_read_fn read, void *ctx, rc_backup_info *info)
{
    rci_error_clear();
    if (!read)
        return rc_fail(RC_EINVAL, "rc_verify_stream needs a read callback");
    stream_walk w = {.read = read, .ctx = ctx};
    int err = walk(&w);
    walk_info(&w, info);
    free(w.payload);
    free(w.raw);
    return err;
}

/* ------------------------------------------------------------- loading */

typedef struct load_run {
    rc_db *db;
    stream_walk w;
    int fd; /* the staging file */
    uint64_t staged;
    rc_progress_fn progress;
    void *progress_ctx;
} load_run;

/* Can a stream with header H go onto DB? (ks_mu held) */
static int check_target(rc_db *db, const fmt_stream_header *h)
{
    uint64_t since = h->since;
    int err = rci_identity_check(db, h);
    if (err)
        return err;
    uint64_t last = atomic_load(&db->last_seq);
    if (since > 0) {
        if (since > last)
            return rc_fail(RC_EGAP,
                           "the stream starts after seq %llu but the database ends at seq %llu: "
                           "load the backups in between first",
                           (unsigned long long)since, (unsigned long long)last);
        return 0;
    }
    rc_keyspace *ks;
    for (uint32_t id = FMT_KS_DEFAULT + 1; (ks = rci_ks_next(db, &id)); id++) {
        if (!atomic_load(&ks->dropped))
            return rc_fail(RC_ENOTEMPTY,
                           "the database has keyspace '%s': a full backup loads "
                           "only into an empty database",
                           ks->name);
    }
    size_t keys = rci_keydir_count(rci_ks_by_id(db, FMT_KS_DEFAULT)->kd);
    if (keys > 0)
        return rc_fail(RC_ENOTEMPTY,
                       "keyspace 'default' holds %zu key(s): a full backup loads "
                       "only into an empty database",
                       keys);
    /* Deleted keys and dropped keyspaces leave tombstones and used ids whose
     * sequence numbers would interleave with the stream's: refuse them too. */
    if (last > 0)
        return rc_fail(RC_ENOTEMPTY,
                       "the database has a history up to seq %llu (deleted keys "
                       "or dropped keyspaces): load a full backup into a new "
                       "directory",
                       (unsigned long long)last);
    return 0;
}

static int load_on_header(void *cb, const fmt_stream_header *h)
{
    load_run *L = cb;
    RCI_LOCKING(RANK_KS_MU, 0);
    pthread_mutex_lock(&L->db->ks_mu);
    int err = check_target(L->db, h); /* early: checked again before applying */
    pthread_mutex_unlock(&L->db->ks_mu);
    RCI_UNLOCKED(RANK_KS_MU, 0);
    return err;
}

static int load_on_frame(void *cb, const uint8_t *raw, size_t len)
{
    load_run *L = cb;
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(L->fd, raw + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : ENOSPC;
            return rc_fail(rc_from_errno(e), "cannot stage the stream in %s/%s: %s", L->db->dir,
                           LOAD_TMP, strerror(e));
        }
        done += (size_t)n;
    }
    L->staged += len;
    if (L->progress) /* records verified so far; the total is unknown until the trailer */
        L->progress(L->progress_ctx, L->w.rd.records + L->w.rd.tombstones, 0);
    return 0;
}

/* The user-visible length of a record's value. */
static uint64_t user_vlen(const log_rec *r)
{
    size_t len;
    if ((r->flags & FMT_REC_COMPRESSED) &&
        fmt_decompressed_size(r->val, r->vlen, FMT_VALUE_MAX, &len) == FMT_OK)
        return len;
    return r->vlen;
}

/* Index R into KS unless KS already holds a newer version of the key (an
 * older record must never replace a newer one), with the accounting that
 * index_apply does. Epoch held. */
static void index_if_newer(rc_db *db, rc_keyspace *ks, const log_rec *r)
{
    uint64_t hash = rci_keydir_hash(r->key, r->klen);
    unsigned shard = keydir_shard_of(hash);
    bool tomb = r->flags & FMT_REC_TOMBSTONE;
    bool had = false, indexed = false;
    kd_loc cur, old;
    rci_keydir_wrlock(ks->kd, shard);
    bool found = rci_keydir_find(ks->kd, hash, r->key, r->klen, &cur);
    if (!found || cur.seq < r->seq) {
        if (tomb) {
            had = found && rci_keydir_remove(ks->kd, hash, r->key, r->klen, &old);
        } else {
            kd_loc loc = {.seg = r->seg,
                          .off = r->off,
                          .seq = r->seq,
                          .expires_at_ms = (int64_t)r->expires_at_ms};
            if (rci_keydir_put(ks->kd, hash, r->key, r->klen, &loc, &old, &had) == 0) {
                indexed = true;
                if (!had)
                    lc_note_new_key(ks, shard, r->key, r->klen);
            } else /* on disk but not indexed: stop taking writes (as rci_index_apply) */
                atomic_store(&db->write_error, ENOMEM);
        }
    }
    rci_keydir_unlock(ks->kd, shard);
    if (had)
        rci_index_account_removed(db, ks, &old, r->klen);
    if (indexed) {
        atomic_fetch_add_explicit(&ks->live_value_bytes, user_vlen(r), memory_order_relaxed);
        atomic_fetch_add_explicit(&ks->live_key_bytes, r->klen, memory_order_relaxed);
    } else { /* a tombstone, or older than what is indexed: dead from birth */
        segment *seg = seg_at(&db->segs, r->seg);
        if (seg)
            atomic_fetch_add_explicit(&seg->dead_bytes, r->total_len, memory_order_relaxed);
        ks_dead_add(ks, r->total_len);
    }
}

/* Index one appended record (epoch held): catalogue records before the
 * handles are refreshed, the others after. */
static void index_rec(rc_db *db, const log_rec *r)
{
    bool catalog = r->ks == FMT_KS_CATALOG;
    rc_keyspace *ks = rci_ks_by_id(db, r->ks);
    if (!ks || atomic_load(&ks->dropped)) {
        /* a keyspace the catalogue does not list as live: dead */
        segment *seg = seg_at(&db->segs, r->seg);
        if (seg)
            atomic_fetch_add(&seg->dead_bytes, r->total_len);
        return;
    }
    pthread_mutex_t *stripe = &db->stripes[stripe_of(r->ks, rci_keydir_hash(r->key, r->klen))];
    if (!catalog) {
        RCI_LOCKING(RANK_STRIPE, stripe - db->stripes);
        pthread_mutex_lock(stripe);
    }
    index_if_newer(db, ks, r);
    if (!catalog) {
        pthread_mutex_unlock(stripe);
        RCI_UNLOCKED(RANK_STRIPE, stripe - db->stripes);
    }
}

/* Index the appended records of keyspace 0 (CATALOG) or of the others. */
static void index_records(load_run *L, log_rec *recs, size_t n, bool catalog)
{
    rc_db *db = L->db;
    epoch_slot *ep = rci_epoch_enter(db);
    for (size_t i = 0; i < n; i++) {
        log_rec *r = &recs[i];
        if ((r->ks == FMT_KS_CATALOG) != catalog)
            continue;
        index_rec(db, r);
        if (L->progress && !catalog && (i + 1) % 65536 == 0)
            L->progress(L->progress_ctx, i + 1, n);
    }
    rci_epoch_exit(ep);
}

/* Keyspace ids index arrays at open: an absurd one would make the directory
 * unopenable, so it is refused (in a record or a catalogue value). */
static int check_ks_id(const fmt_record *r)
{
    fmt_catalog_entry e;
    uint32_t id = r->ks;
    if (r->ks == FMT_KS_CATALOG && !(r->flags & (FMT_REC_TOMBSTONE | FMT_REC_COMPRESSED)) &&
        fmt_catalog_decode(r->val, r->vlen, &e) == FMT_OK)
        id = e.ks_id;
    if (id > LOAD_KS_ID_MAX)
        return rc_fail(RC_ELIMIT, "the stream names keyspace id %u (limit %u)", id, LOAD_KS_ID_MAX);
    return 0;
}

/* The record of the stream as the log writes it: batch framing dropped. */
static fmt_record loaded_record(const fmt_record *r)
{
    fmt_record f = *r;
    f.flags = r->flags & (FMT_REC_TOMBSTONE | FMT_REC_COMPRESSED | FMT_REC_TYPE_MASK);
    return f;
}

/* Turn the staged records newer than BASE into log records (pointing into
 * MAP); *OUT is NULL when there are none. */
static int build_batch(const uint8_t *map, size_t len, uint64_t base, log_rec **out, size_t *n)
{
    size_t pos = 0, count = 0;
    uint64_t bytes = 0;
    fmt_record r;
    int rc;
    while ((rc = fmt_stream_record_next(map, len, &pos, &r)) == 1) {
        int err = check_ks_id(&r);
        if (err)
            return err;
        if (r.seq <= base)
            continue;
        count++;
        bytes += r.total_len;
    }
    if (rc != 0)
        return rc_fail(RC_ECORRUPT, "the staged copy of the stream no longer verifies");
    if (bytes > LOAD_BYTES_MAX)
        return rc_fail(RC_ELIMIT,
                       "the incremental stream holds %llu bytes of records; an "
                       "incremental load is limited to %llu (it is applied as one "
                       "atomic batch in one segment)",
                       (unsigned long long)bytes, LOAD_BYTES_MAX);
    *out = NULL;
    *n = 0;
    if (count == 0)
        return 0;
    log_rec *recs = calloc(count, sizeof(*recs));
    if (!recs)
        return RC_ENOMEM;
    size_t k = 0;
    pos = 0;
    while (k < count && fmt_stream_record_next(map, len, &pos, &r) == 1) {
        if (r.seq <= base)
            continue;
        recs[k++] = (log_rec){
            .flags = r.flags & (FMT_REC_TOMBSTONE | FMT_REC_COMPRESSED | FMT_REC_TYPE_MASK),
            .ks = r.ks,
            .expires_at_ms = r.expires_at_ms,
            .key = r.key,
            .klen = r.klen,
            .val = r.val,
            .vlen = r.vlen,
            .seq = r.seq,
        };
    }
    *out = recs;
    *n = count;
    return 0;
}

/* ------------------------------------------------------------ full loads
 *
 * A full stream goes into an empty database, so its records need not share a
 * segment with anything: they are written into new segments of their own
 * (records never split, rotating at segment_bytes as the log does), with
 * ids reserved in one go, under the LOADING marker (FORMAT.md 10.3):
 *
 *   1. plan: one pass over the staged records checks keyspace ids and counts
 *      the segments the log's rotation rule will need; the ids are reserved
 *      (log_reserve_ids: the active segment moves past them, last_seq is
 *      raised to the stream's highest seq so that racing writes are newer);
 *   2. LOADING (first id, count) is written and synced with the directory;
 *   3. segment by segment: records encoded into the mapping, the file cut to
 *      its records and fdatasync'ed, its hint written;
 *   4. commit: LOADING is removed and the directory synced — from here the
 *      load is part of the database; before, a crash leaves the marker and
 *      rc_open (load_recover) deletes the segments, and a failure deletes
 *      them at once;
 *   5. the segments join the table and are indexed: catalogue records first
 *      (their places were noted in 3), the handles refreshed, then each
 *      segment's records read back from its mapping.
 * RAM: no per-record state; the segment pointers and the catalogue records'
 * places only. merge_mu is held throughout (no merge may judge tombstones
 * without the load's segments), ks_mu by the caller. */

typedef struct cat_ref {
    uint32_t seg; /* index into full_load.segs */
    uint32_t off;
} cat_ref;

typedef struct full_load {
    load_run *L;
    const uint8_t *map; /* the staged records */
    size_t len;
    uint64_t records, max_seq, bytes;
    uint32_t nseg;  /* planned */
    uint64_t first; /* id of the first */
    segment **segs; /* created so far */
    uint32_t made;
    cat_ref *cat;
    size_t ncat, capcat;
} full_load;

/* A record of SZ bytes opens a new segment when the current one (CUR bytes)
 * already holds records and would outgrow segment_bytes: log_append's rule. */
static bool starts_segment(const rc_db *db, uint64_t cur, uint64_t sz)
{
    return cur > FMT_SEG_HEADER_LEN && cur + sz > db->opt.segment_bytes;
}

static uint32_t free_slots(rc_db *db)
{
    uint32_t used = 0;
    RCI_LOCKING(RANK_SEGS_MU, 0);
    pthread_mutex_lock(&db->segs.mu);
    for (uint32_t i = 0; i < SEG_SLOTS; i++)
        used += db->segs.slots[i] != NULL;
    pthread_mutex_unlock(&db->segs.mu);
    RCI_UNLOCKED(RANK_SEGS_MU, 0);
    return SEG_SLOTS - used;
}

/* The staged bytes before POS are done with: out of the resident set. */
static void drop_staged(const uint8_t *map, size_t pos)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t len = pos / page * page;
    if (len)
        madvise((void *)map, len, MADV_DONTNEED);
}

static int plan_full(full_load *F)
{
    rc_db *db = F->L->db;
    size_t pos = 0;
    uint64_t cur = 0, nseg = 0;
    fmt_record r;
    int rc;
    while ((rc = fmt_stream_record_next(F->map, F->len, &pos, &r)) == 1) {
        int err = check_ks_id(&r);
        if (err)
            return err;
        fmt_record f = loaded_record(&r);
        uint64_t sz = fmt_record_size(&f);
        if (nseg == 0 || starts_segment(db, cur, sz)) {
            nseg++;
            cur = FMT_SEG_HEADER_LEN;
        }
        cur += sz;
        F->bytes += sz;
        if (++F->records % 65536 == 0)
            drop_staged(F->map, pos);
        if (r.seq > F->max_seq)
            F->max_seq = r.seq;
    }
    if (rc != 0)
        return rc_fail(RC_ECORRUPT, "the staged copy of the stream no longer verifies");
    drop_staged(F->map, F->len);
    uint32_t avail = free_slots(db);
    avail = avail > LOAD_SLOT_MARGIN ? avail - LOAD_SLOT_MARGIN : 0;
    if (nseg > avail || nseg > FMT_LOADING_MAX)
        return rc_fail(RC_ELIMIT,
                       "the stream's %llu bytes of records need %llu segments of "
                       "segment_bytes %llu, but the database can add only %u more: "
                       "open it with a larger segment_bytes",
                       (unsigned long long)F->bytes, (unsigned long long)nseg,
                       (unsigned long long)db->opt.segment_bytes,
                       avail < FMT_LOADING_MAX ? avail : FMT_LOADING_MAX);
    F->nseg = (uint32_t)nseg;
    return 0;
}

static int write_marker(full_load *F)
{
    uint8_t buf[FMT_LOADING_LEN];
    fmt_loading_encode(buf, F->first, F->nseg);
    return rci_dir_write_file(F->L->db, LOAD_MARKER, buf, sizeof(buf));
}

/* Delete segment ID's hint, then its data file (so a hint never outlives its
 * segment); ENOENT counts as done. */
static bool unlink_loaded(int dir_fd, uint64_t id)
{
    char name[32];
    bool ok = true;
    rci_seg_name(name, sizeof(name), id, "hint");
    if (unlinkat(dir_fd, name, 0) != 0 && errno != ENOENT)
        ok = false;
    rci_seg_name(name, sizeof(name), id, "data");
    if (unlinkat(dir_fd, name, 0) != 0 && errno != ENOENT)
        ok = false;
    return ok;
}

/* A failure before the commit: nothing of the load stays. The marker goes
 * only once every segment did (else the next open finishes the job). */
static void undo_full(full_load *F)
{
    rc_db *db = F->L->db;
    bool ok = true;
    for (uint32_t i = 0; i < F->made; i++) {
        uint64_t id = F->segs[i]->id;
        rci_seg_close(F->segs[i]);
        F->segs[i] = NULL;
        ok &= unlink_loaded(db->dir_fd, id);
    }
    F->made = 0;
    if (ok && fsync(db->dir_fd) == 0 && unlinkat(db->dir_fd, LOAD_MARKER, 0) == 0)
        fsync(db->dir_fd);
}

static int finish_segment(rc_db *db, segment *seg)
{
    int err = rci_seg_truncate(seg);
    if (!err && fdatasync(seg->fd) != 0)
        err = rc_fail(rc_from_errno(errno), "cannot sync loaded segment %08llu: %s",
                      (unsigned long long)seg->id, strerror(errno));
    seg->writable = false;
    if (!err && db->opt.write_hints)
        rci_hint_write(db, seg); /* a failure only costs a scan at the next open */
    /* written and synced: its pages stay in the page cache but leave this
     * process's resident set (a load of any size must not grow it) */
    madvise(seg->map, seg->map_len, MADV_DONTNEED);
    return err;
}

static int note_catalog(full_load *F, uint32_t off)
{
    if (F->ncat == F->capcat) {
        size_t cap = F->capcat ? F->capcat * 2 : 64;
        cat_ref *n = realloc(F->cat, cap * sizeof(*n));
        if (!n)
            return RC_ENOMEM;
        F->cat = n;
        F->capcat = cap;
    }
    F->cat[F->ncat++] = (cat_ref){.seg = F->made - 1, .off = off};
    return 0;
}

static int write_full(full_load *F)
{
    load_run *L = F->L;
    rc_db *db = L->db;
    size_t pos = 0;
    uint64_t done = 0;
    segment *seg = NULL;
    fmt_record r;
    int rc = 0, err = 0;
    while (!err && (rc = fmt_stream_record_next(F->map, F->len, &pos, &r)) == 1) {
        fmt_record f = loaded_record(&r);
        size_t sz = fmt_record_size(&f);
        uint64_t cur = seg ? atomic_load(&seg->size) : 0;
        if (!seg || starts_segment(db, cur, sz)) {
            if (seg && (err = finish_segment(db, seg)) != 0)
                break;
            if (F->made == F->nseg) {
                err = rc_fail(RC_ECORRUPT, "the staged stream changed while it was loaded");
                break;
            }
            uint64_t reserve = db->opt.segment_bytes;
            if (sz + FMT_SEG_HEADER_LEN > reserve)
                reserve = sz + FMT_SEG_HEADER_LEN;
            err = rci_seg_create(db->dir_fd, F->first + F->made, db->db_id, reserve, db_now_ms(db),
                                 false, &seg);
            if (err)
                break;
            F->segs[F->made++] = seg;
            cur = FMT_SEG_HEADER_LEN;
        }
        err = rci_seg_reserve(seg, sz);
        if (err)
            break;
        if (fmt_record_encode(seg->map + cur, sz, &f) != sz) {
            err = rc_fail(RC_ECORRUPT, "a staged record does not encode");
            break;
        }
        if (f.ks == FMT_KS_CATALOG && (err = note_catalog(F, (uint32_t)cur)) != 0)
            break;
        rci_seg_ckpt_note(seg, cur, f.seq);
        if (!seg->min_seq || f.seq < seg->min_seq)
            seg->min_seq = f.seq;
        if (f.seq > seg->max_seq)
            seg->max_seq = f.seq;
        atomic_store(&seg->size, cur + sz);
        if (++done % 65536 == 0) {
            drop_staged(F->map, pos);
            if (L->progress)
                L->progress(L->progress_ctx, done, F->records);
        }
    }
    if (!err && rc != 0)
        err = rc_fail(RC_ECORRUPT, "the staged copy of the stream no longer verifies");
    if (!err && seg)
        err = finish_segment(db, seg);
    if (!err && F->made != F->nseg)
        err = rc_fail(RC_ECORRUPT, "the staged stream changed while it was loaded");
    return err;
}

static log_rec rec_at(const segment *seg, uint32_t off, const fmt_record *f)
{
    return (log_rec){.flags = f->flags,
                     .ks = f->ks,
                     .expires_at_ms = f->expires_at_ms,
                     .key = f->key,
                     .klen = f->klen,
                     .val = f->val,
                     .vlen = f->vlen,
                     .seq = f->seq,
                     .seg = seg->slot,
                     .off = off,
                     .total_len = f->total_len};
}

/* After the commit: publish the segments and index their records. */
static int index_full(full_load *F)
{
    rc_db *db = F->L->db;
    int err = 0;
    for (uint32_t i = 0; i < F->made && !err; i++) {
        err = rci_seg_table_add(&db->segs, F->segs[i]);
        if (err) { /* on disk but not readable: stop taking writes */
            atomic_store(&db->write_error, ENOMEM);
            for (uint32_t j = i; j < F->made; j++)
                rci_seg_close(F->segs[j]);
            F->made = i;
        }
    }
    epoch_slot *ep = rci_epoch_enter(db);
    for (size_t i = 0; i < F->ncat; i++) {
        if (F->cat[i].seg >= F->made)
            continue;
        segment *seg = F->segs[F->cat[i].seg];
        fmt_record f;
        uint32_t off = F->cat[i].off;
        if (fmt_record_peek(seg->map + off, atomic_load(&seg->size) - off, &f) == FMT_OK) {
            log_rec r = rec_at(seg, off, &f);
            index_rec(db, &r);
        }
    }
    rci_epoch_exit(ep);
    int e2 = rci_ks_refresh_catalog(db);
    if (e2) { /* on disk but not reflected in memory: as rci_index_apply does */
        atomic_store(&db->write_error, ENOMEM);
        err = err ? err : e2;
    }
    for (uint32_t i = 0; i < F->made; i++) {
        segment *seg = F->segs[i];
        uint64_t end = atomic_load(&seg->size);
        ep = rci_epoch_enter(db);
        for (uint64_t off = FMT_SEG_HEADER_LEN; off < end;) {
            fmt_record f;
            if (fmt_record_peek(seg->map + off, end - off, &f) != FMT_OK || !f.total_len)
                break; /* written by us just now: cannot happen */
            if (f.ks != FMT_KS_CATALOG) {
                log_rec r = rec_at(seg, (uint32_t)off, &f);
                index_rec(db, &r);
            }
            off += f.total_len;
        }
        rci_epoch_exit(ep);
        madvise(seg->map, seg->map_len, MADV_DONTNEED); /* as in finish_segment */
    }
    F->made = 0; /* the table owns them now */
    return err;
}

static int load_full(load_run *L, const uint8_t *map, size_t len, uint64_t until)
{
    rc_db *db = L->db;
    full_load F = {.L = L, .map = map, .len = len};
    int err = plan_full(&F);
    if (err || F.records == 0)
        return err;
    F.segs = calloc(F.nseg, sizeof(*F.segs));
    if (!F.segs)
        return RC_ENOMEM;
    RCI_LOCKING(RANK_MERGE_MU, 0);
    pthread_mutex_lock(&db->merge_mu);
    /* what check_target saw under ks_mu (a full load needs last seq 0), not
     * a fresh read: a put that landed since (during plan_full's pass) must
     * make the reservation fail, not share its seqs with the stream */
    uint64_t before = 0;
    /* the database continues at the stream's until (>= every record's seq),
     * where the source's next incremental starts */
    uint64_t records_max = F.max_seq;
    if (until > F.max_seq)
        F.max_seq = until;
    err = rci_log_reserve_ids(db, F.nseg, before, F.max_seq, &F.first);
    if (err)
        goto out;
    if (F.first + F.nseg - 1 > FMT_SEGMENT_ID_MAX) {
        err = rc_fail(RC_ELIMIT, "segment ids would pass %llu", FMT_SEGMENT_ID_MAX);
        goto undo_seq;
    }
    err = write_marker(&F);
    if (!err)
        err = write_full(&F);
    if (!err && (unlinkat(db->dir_fd, LOAD_MARKER, 0) != 0 || fsync(db->dir_fd) != 0))
        err = rc_fail(rc_from_errno(errno), "cannot remove %s/%s to commit the load: %s", db->dir,
                      LOAD_MARKER, strerror(errno));
    if (err) {
        undo_full(&F);
        goto undo_seq;
    }
    err = index_full(&F);
    /* seqs the stream covers but holds no record of were dropped by the
     * source's merge (trailing deletes): this copy cannot serve an
     * incremental from below them either, and its last seq must survive a
     * reopen, which takes it from the horizon when no record is that high */
    if (!err && until > records_max)
        err = rci_horizon_raise(db, until);
    goto out;
undo_seq:
    /* nothing was loaded: give the seqs back unless a write took newer ones */
    RCI_LOCKING(RANK_APPEND_MU, 0);
    pthread_mutex_lock(&db->append_mu);
    if (atomic_load(&db->last_seq) == F.max_seq)
        atomic_store(&db->last_seq, before);
    pthread_mutex_unlock(&db->append_mu);
    RCI_UNLOCKED(RANK_APPEND_MU, 0);
out:
    pthread_mutex_unlock(&db->merge_mu);
    RCI_UNLOCKED(RANK_MERGE_MU, 0);
    for (uint32_t i = 0; i < F.made; i++)
        rci_seg_close(F.segs[i]);
    free(F.segs);
    free(F.cat);
    return err;
}

bool rci_load_marker_present(rc_db *db)
{
    return faccessat(db->dir_fd, LOAD_MARKER, F_OK, 0) == 0;
}

int rci_load_recover(rc_db *db, uint64_t *ids, size_t *n)
{
    int fd = openat(db->dir_fd, LOAD_MARKER, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        return rc_fail(rc_from_errno(errno), "cannot open %s/%s: %s", db->dir, LOAD_MARKER,
                       strerror(errno));
    }
    uint8_t buf[FMT_LOADING_LEN + 1];
    ssize_t got = pread(fd, buf, sizeof(buf), 0);
    close(fd);
    uint64_t first;
    uint32_t count;
    int rc = got < 0 ? FMT_ECORRUPT : fmt_loading_decode(buf, (size_t)got, &first, &count);
    if (rc == FMT_EVERSION)
        return rc_fail(RC_EVERSION,
                       "%s/%s has version %u, written by a newer ringcask; this build reads "
                       "version %u",
                       db->dir, LOAD_MARKER, (unsigned)fmt_get_u16(buf + 4), FMT_META_VERSION);
    if (rc != FMT_OK)
        return rc_fail(RC_ECORRUPT,
                       "%s/%s is corrupt: a load was interrupted and the segments it was "
                       "writing cannot be told apart from the database's; restore into a new "
                       "directory",
                       db->dir, LOAD_MARKER);
    /* the ids are sorted: drop the range from the listing (and, when
     * writing, the files from the directory) */
    size_t k = 0;
    bool ok = true;
    for (size_t i = 0; i < *n; i++) {
        if (ids[i] >= first && ids[i] - first < count) {
            if (!db->opt.read_only)
                ok &= unlink_loaded(db->dir_fd, ids[i]);
            continue;
        }
        ids[k++] = ids[i];
    }
    *n = k;
    if (db->opt.read_only)
        return 0;
    if (!ok || fsync(db->dir_fd) != 0 || unlinkat(db->dir_fd, LOAD_MARKER, 0) != 0 ||
        fsync(db->dir_fd) != 0)
        return rc_fail(rc_from_errno(errno),
                       "cannot undo the interrupted load that %s/%s records: %s", db->dir,
                       LOAD_MARKER, strerror(errno));
    return 0;
}

/* Apply the staged, verified stream (header H, trailer T). */
static int apply_staged(load_run *L, const fmt_stream_header *h, const fmt_stream_trailer *t)
{
    rc_db *db = L->db;
    uint8_t *map = NULL;
    log_rec *recs = NULL;
    size_t n = 0;
    uint64_t since = h->since, base = 0;
    RCI_LOCKING(RANK_KS_MU, 0);
    pthread_mutex_lock(&db->ks_mu);
    int err = check_target(db, h);
    if (err)
        goto out;
    if (since == 0 && L->staged == 0) /* an empty full stream: only the identity */
        goto adopt;
    if (L->staged > 0) {
        map = mmap(NULL, L->staged, PROT_READ, MAP_SHARED, L->fd, 0);
        if (map == MAP_FAILED) {
            map = NULL;
            err = rc_fail(RC_ENOMEM, "cannot map the staged stream: %s", strerror(errno));
            goto out;
        }
        madvise(map, L->staged, MADV_SEQUENTIAL);
        if (since == 0) { /* a full stream: its own segments, any size */
            err = load_full(L, map, L->staged, t->until);
            if (err)
                goto out;
            goto adopt;
        }
        base = atomic_load(&db->last_seq);
        err = build_batch(map, L->staged, base, &recs, &n);
        if (err)
            goto out;
    }
    if (n > 0) {
        /* Merge keeps only records the keydir points at: it must not rewrite
         * the segment holding the batch before the batch is indexed. */
        RCI_LOCKING(RANK_MERGE_MU, 0);
        pthread_mutex_lock(&db->merge_mu);
        uint64_t lsn = 0;
        err = rci_log_append_loaded(db, recs, n, base, &lsn);
        if (err) {
            pthread_mutex_unlock(&db->merge_mu);
            RCI_UNLOCKED(RANK_MERGE_MU, 0);
            goto out;
        }
        index_records(L, recs, n, true);
        err = rci_ks_refresh_catalog(db);
        if (err) /* on disk but not reflected in memory: as rci_index_apply does */
            atomic_store(&db->write_error, ENOMEM);
        index_records(L, recs, n, false);
        pthread_mutex_unlock(&db->merge_mu);
        RCI_UNLOCKED(RANK_MERGE_MU, 0);
        if (!err)
            err = rci_log_sync(db);
    }
    goto out;
adopt:
    /* the full load is committed: the directory is now the source's
     * database at the stream's until (or a new one: a v1 stream names none) */
    err = rci_identity_adopt(db, h->version >= 2 ? h->id : NULL, t->until);
out:
    pthread_mutex_unlock(&db->ks_mu);
    RCI_UNLOCKED(RANK_KS_MU, 0);
    free(recs);
    if (map)
        munmap(map, L->staged);
    return err;
}

int rc_load(rc_db *db, rc_read_fn read, void *ctx, rc_progress_fn progress, void *progress_ctx,
            rc_backup_info *info)
{
    rci_error_clear();
    if (!db || !read)
        return rc_fail(RC_EINVAL, "rc_load needs a database and a read callback");
    if (db->opt.read_only)
        return rc_fail(RC_EREADONLY, "the database was opened read-only");
    load_run L = {.db = db, .progress = progress, .progress_ctx = progress_ctx};
    L.w = (stream_walk){
        .read = read, .ctx = ctx, .on_header = load_on_header, .on_frame = load_on_frame, .cb = &L};
    /* O_EXCL: a second concurrent rc_load must not share the staging file
     * (one left by a crash is removed by rc_open with the other *.tmp) */
    L.fd = openat(db->dir_fd, LOAD_TMP, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (L.fd < 0 && errno == EEXIST)
        return rc_fail(RC_ELOCKED, "another load is staging into %s/%s", db->dir, LOAD_TMP);
    if (L.fd < 0)
        return rc_fail(rc_from_errno(errno), "cannot create %s/%s: %s", db->dir, LOAD_TMP,
                       strerror(errno));
    int err = walk(&L.w);
    free(L.w.payload);
    free(L.w.raw);
    L.w.payload = L.w.raw = NULL;
    uint64_t before = atomic_load(&db->last_seq);
    if (!err)
        err = apply_staged(&L, &L.w.rd.header, &L.w.trailer);
    uint64_t after = atomic_load(&db->last_seq);
    if (!err && after > before && db->commit_fn) {
        rc_commit c = {.ops = NULL, .n = 0, .last_seq = after};
        db->commit_fn(db->commit_ctx, &c);
    }
    close(L.fd);
    unlinkat(db->dir_fd, LOAD_TMP, 0);
    walk_info(&L.w, info);
    if (!err) {
        uint64_t total = L.w.trailer.records + L.w.trailer.tombstones;
        if (progress)
            progress(progress_ctx, total, total);
    }
    return err;
}

int rc_stream_header_parse(const void *buf, size_t len, rc_stream_header *out)
{
    rci_error_clear();
    if (!buf || !out)
        return rc_fail(RC_EINVAL, "rc_stream_header_parse needs a buffer and a result");
    fmt_stream_header h;
    int rc = fmt_stream_header_decode(buf, len, &h);
    if (rc == FMT_EVERSION)
        return rc_fail(RC_EVERSION, "the stream has format version %u; this build reads up to %u",
                       (unsigned)fmt_get_u16((const uint8_t *)buf + 4), FMT_STREAM_VERSION);
    if (rc == FMT_ESHORT)
        return rc_fail(RC_ECORRUPT, "the stream ends inside its header (%zu bytes)", len);
    if (rc != FMT_OK)
        return rc_fail(RC_ECORRUPT, "not a ringcask backup stream, or its header is corrupt");
    memset(out, 0, sizeof(*out));
    out->version = h.version;
    if (h.version >= 2)
        rci_id_hex(h.id, out->database);
    out->since = h.since;
    out->until = h.until;
    out->created_ms = h.created_ms;
    out->length = fmt_stream_header_len(h.version);
    return 0;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int rc_load_check(rc_db *db, const rc_stream_header *h)
{
    rci_error_clear();
    if (!db || !h)
        return rc_fail(RC_EINVAL, "rc_load_check needs a database and a header");
    fmt_stream_header fh;
    memset(&fh, 0, sizeof(fh));
    fh.version = (uint16_t)h->version;
    fh.since = h->since;
    fh.until = h->until;
    if (h->version >= 2) {
        if (strlen(h->database) != RC_DATABASE_ID_LEN)
            return rc_fail(RC_EINVAL, "the header's database id is not %d hex digits",
                           RC_DATABASE_ID_LEN);
        for (size_t i = 0; i < RCI_ID_BYTES; i++) {
            int hi = hex_digit(h->database[2 * i]), lo = hex_digit(h->database[2 * i + 1]);
            if (hi < 0 || lo < 0)
                return rc_fail(RC_EINVAL, "the header's database id is not lowercase hex");
            fh.id[i] = (uint8_t)(hi << 4 | lo);
        }
    }
    RCI_LOCKING(RANK_KS_MU, 0);
    pthread_mutex_lock(&db->ks_mu);
    int err = check_target(db, &fh);
    pthread_mutex_unlock(&db->ks_mu);
    RCI_UNLOCKED(RANK_KS_MU, 0);
    return err;
}
