/*
 * recovery.c — rebuilding the keydirs at open.
 *
 * Every segment in the directory is opened and mapped. Its records come from
 * its hint file when that verifies and covers the whole segment, else from a
 * scan (scan.c) that also finds a torn tail, which is truncated unless the
 * database is read-only. Records are inserted in file order, but conflicts
 * are resolved by sequence number (keydir_put_if_newer), so a merge output
 * holding older records than a later segment cannot win. Tombstones go into
 * the keydir as entries with the expiry marker 1 while recovery runs, so
 * that they hide older versions in any segment whatever the order; a final
 * pass removes them together with records that expired while the database
 * was closed. Keyspaces are only known once the catalogue (keyspace 0) is
 * complete, so the segments are read twice: pass 1 indexes the catalogue's
 * records only (for a hinted segment that reads its hint and the few
 * catalogue records), rci_ks_load_catalog makes the live keyspaces, and
 * pass 2 indexes their records. A record of any other id is a dropped
 * keyspace's: counted dead, never indexed, so a dropped keyspace costs
 * recovery no memory. Damage is counted and a torn end cut in pass 1.
 *
 * Hinted segments are loaded by rc_options.recovery_threads threads, one
 * keydir shard per thread at a time (recovery_hint.c); scanned segments (the
 * tail, a segment whose hint is missing or bad) by the opening thread
 * alone. Either way every shard receives its records in segment and
 * file order, so the result is the same for any number of threads.
 */
#include "recovery.h"
#include "fault.h"
#include "scan.h"
#include "format/hint.h"
#include "format/record.h"
#include "format/segment.h"

#include <dirent.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TOMBSTONE_MARK REC_TOMBSTONE_MARK

void rci_rec_acct_flush(rec_acct *a)
{
    if (a->seg && a->seg_dead)
        atomic_fetch_add_explicit(&a->seg->dead_bytes, a->seg_dead, memory_order_relaxed);
    a->seg_dead = 0;
    if (a->ks) {
        if (a->ks_dead)
            ks_dead_add(a->ks, a->ks_dead);
        if (a->ks_vbytes)
            atomic_fetch_add_explicit(&a->ks->live_value_bytes, a->ks_vbytes, memory_order_relaxed);
        if (a->ks_kbytes)
            atomic_fetch_add_explicit(&a->ks->live_key_bytes, a->ks_kbytes, memory_order_relaxed);
    }
    a->ks_dead = a->ks_vbytes = a->ks_kbytes = 0;
}

static void acct_ks(rec_acct *a, rc_keyspace *ks)
{
    if (ks != a->ks) {
        rci_rec_acct_flush(a);
        a->ks = ks;
    }
}

/* The user-visible value length of a record from its sizes. */
static uint64_t user_vlen(rc_db *db, const kd_loc *loc, uint8_t flags, uint32_t total,
                          uint32_t klen, uint64_t seq, uint32_t ks, uint64_t exp)
{
    if (flags & FMT_REC_TOMBSTONE)
        return 0;
    if (flags & FMT_REC_COMPRESSED) {
        uint32_t t;
        uint64_t v = 0;
        rci_record_sizes(db, loc, &t, &v);
        return v;
    }
    size_t fixed = 4 + 1 + fmt_varint_len(seq) + fmt_varint_len(klen) + klen;
    if (ks != 1)
        fixed += fmt_varint_len(ks);
    if (exp)
        fixed += fmt_varint_len(exp);
    for (size_t vl = 1; vl <= 5; vl++) {
        if (total < fixed + vl)
            break;
        uint64_t v = total - fixed - vl;
        if (fmt_varint_len(v) == vl)
            return v;
    }
    return 0;
}

int rci_rec_insert(rec_acct *a, rc_keyspace *ks, uint8_t flags, uint64_t seq, uint32_t ks_id,
                   uint64_t exp, const uint8_t *key, uint32_t klen, uint32_t off, uint32_t total,
                   uint64_t hash)
{
    if ((a->db->rec_pass == REC_PASS_CATALOG) != (ks_id == FMT_KS_CATALOG))
        return 0; /* the other pass's */
    if (!ks) {
        if (ks_id > KS_ID_MAX)
            a->corrupt++;
        a->seg_dead += total;
        return 0;
    }
    acct_ks(a, ks);
    bool tomb = flags & FMT_REC_TOMBSTONE;
    kd_loc loc = {.seg = a->seg->slot,
                  .off = off,
                  .seq = seq,
                  .expires_at_ms = tomb ? TOMBSTONE_MARK : (int64_t)exp};
    bool replaced = false, had = false;
    kd_loc old;
    if (rci_keydir_put_if_newer(ks->kd, hash, key, klen, &loc, &replaced, &old, &had) != 0)
        return RC_ENOMEM;
    if (!replaced || tomb) {
        a->seg_dead += total;
        a->ks_dead += total;
    }
    if (replaced) {
        if (!tomb) {
            a->ks_vbytes += user_vlen(a->db, &loc, flags, total, klen, seq, ks_id, exp);
            a->ks_kbytes += klen;
        }
        /* the bytes of a replaced tombstone were counted dead when it came
         * in; those of a replaced record are counted now (atomically: the
         * loser may lie in another thread's segment and keyspace) */
        if (had && old.expires_at_ms != TOMBSTONE_MARK)
            rci_index_account_removed(a->db, ks, &old, klen);
    }
    return 0;
}

/* ---- scanned segments: one thread, records inserted as the scan meets them */

typedef struct scan_ctx {
    rc_db *db;
    rec_acct acct;
    seq_range seqs;
    bool in_batch; /* the previous record carried BATCH */
    int err;
} scan_ctx;

static int scan_insert(void *ctx, const fmt_record *r, uint32_t off)
{
    scan_ctx *c = ctx;
    rc_keyspace *ks = NULL;
    if (!c->in_batch) /* a run (record or batch) starts here */
        rci_seg_ckpt_note(c->acct.seg, off, r->seq);
    else if (r->seq > c->acct.seg->ck_max)
        c->acct.seg->ck_max = r->seq;
    c->in_batch = (r->flags & FMT_REC_BATCH) != 0;
    if (r->ks <= KS_ID_MAX) {
        rci_seq_note(&c->seqs, r->seq);
        ks = rci_ks_by_id(c->db, r->ks);
    }
    int err = rci_rec_insert(&c->acct, ks, r->flags, r->seq, r->ks, r->expires_at_ms, r->key,
                             r->klen, off, r->total_len, rci_keydir_hash(r->key, r->klen));
    return err ? (c->err = err) : 0;
}

void rci_rec_publish_seqs(rc_db *db, segment *seg, const seq_range *r)
{
    if (r->max > atomic_load(&db->last_seq))
        atomic_store(&db->last_seq, r->max);
    seg->max_seq = r->max;
    seg->min_seq = r->min;
}

/* Add one entry to the damage report (rc_damage_report). */
static int note_damage(rc_db *db, const rc_damage *d)
{
    if (db->damage_n == db->damage_cap) {
        size_t cap = db->damage_cap ? db->damage_cap * 2 : 4;
        rc_damage *n = realloc(db->damage, cap * sizeof(*n));
        if (!n)
            return RC_ENOMEM;
        db->damage = n;
        db->damage_cap = cap;
    }
    db->damage[db->damage_n++] = *d;
    return 0;
}

int rci_rec_scan_one(rc_db *db, segment *seg, bool tail)
{
    scan_ctx c = {.db = db, .acct = {.db = db, .seg = seg}};
    scan_result res;
    int err = 0;
    rci_seg_ckpt_reset(seg); /* a hint that failed may have begun it */
    if (rci_scan_segment(seg, tail, scan_insert, &c, &res) != 0 && !c.err)
        c.err = RC_ENOMEM;
    rci_rec_acct_flush(&c.acct);
    db->corrupt_records += c.acct.corrupt;
    if (db->rec_pass == REC_PASS_CATALOG)
        seg->rec_scanned = true;
    else if (db->rec_pass == REC_PASS_REST && seg->rec_scanned) {
        /* pass 1 scanned it already: its damage was counted, its torn end
         * cut */
        rci_rec_publish_seqs(db, seg, &c.seqs);
        return c.err;
    }
    db->segments_scanned++;
    db->corrupt_records += res.corrupt;
    /* a torn tail of the segment being written is what a crash leaves; any
     * other dropped byte is acknowledged data lost to damage */
    uint64_t cut = res.committed_end < atomic_load(&seg->size) ? res.torn_bytes : 0;
    uint64_t lost = res.corrupt_bytes + (tail ? 0 : cut);
    if (res.corrupt && db->opt.strict) {
        err = rc_fail(RC_ECORRUPT, "segment %08llu has %llu corrupt region(s) (strict mode)",
                      (unsigned long long)seg->id, (unsigned long long)res.corrupt);
    } else if (!res.header_ok && seg->file_len > 0 && res.torn_bytes > 0 && db->opt.strict) {
        err = rc_fail(RC_ECORRUPT, "segment %08llu has a bad header", (unsigned long long)seg->id);
    } else if (!tail && cut > 0 && db->opt.strict) {
        err = rc_fail(RC_ECORRUPT,
                      "segment %08llu.data lost %llu bytes at offset %llu: its end is cut or "
                      "damaged (strict mode)",
                      (unsigned long long)seg->id, (unsigned long long)cut,
                      (unsigned long long)res.committed_end);
    } else if (res.committed_end < atomic_load(&seg->size)) {
        db->torn_bytes += res.torn_bytes;
        atomic_store(&seg->size, res.committed_end);
        if (!db->opt.read_only) {
            err = rci_seg_truncate(seg);
            if (!err && fsync(seg->fd) != 0)
                err = rc_fail(rc_from_errno(errno), "cannot sync truncated segment");
        }
    }
    if (!err && (cut > 0 || res.corrupt > 0)) {
        db->lost_bytes += lost;
        uint64_t at = res.corrupt && res.corrupt_bytes ? res.first_bad : res.committed_end;
        rc_damage d = {.segment_id = seg->id,
                       .offset = at,
                       .bytes = res.corrupt_bytes + cut,
                       .torn_tail = tail && res.corrupt == 0};
        err = note_damage(db, &d);
    }
    if (c.err)
        err = c.err;
    rci_rec_publish_seqs(db, seg, &c.seqs);
    return err;
}

static unsigned recovery_threads(const rc_db *db)
{
    unsigned n = db->opt.recovery_threads;
    if (!n) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n = cpus > 0 ? (unsigned)cpus : 1u;
    }
    return n > RECOVERY_THREADS_MAX ? RECOVERY_THREADS_MAX : n;
}
static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The ids of the NNNNNNNN.data files; removes stale *.tmp files. */
static int list_segments(rc_db *db, uint64_t **ids, size_t *n)
{
    int fd = dup(db->dir_fd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return rc_fail(rc_from_errno(errno), "cannot list %s: %s", db->dir, strerror(errno));
    }
    size_t cap = 16, k = 0;
    uint64_t *v = malloc(cap * sizeof(*v));
    struct dirent *de;
    while (v && (de = readdir(d)) != NULL) {
        const char *nm = de->d_name;
        size_t len = strlen(nm);
        if (len > 4 && strcmp(nm + len - 4, ".tmp") == 0) {
            if (!db->opt.read_only)
                unlinkat(db->dir_fd, nm, 0);
            continue;
        }
        if (len != 13 || strcmp(nm + 8, ".data") != 0)
            continue;
        uint64_t id = 0;
        bool digits = true;
        for (int i = 0; i < 8; i++) {
            if (nm[i] < '0' || nm[i] > '9')
                digits = false;
            id = id * 10 + (uint64_t)(nm[i] - '0');
        }
        if (!digits)
            continue;
        if (k == cap) {
            cap *= 2;
            uint64_t *nv = realloc(v, cap * sizeof(*nv));
            if (!nv) {
                free(v);
                v = NULL;
                break;
            }
            v = nv;
        }
        v[k++] = id;
    }
    closedir(d);
    if (!v)
        return RC_ENOMEM;
    qsort(v, k, sizeof(*v), cmp_u64);
    *ids = v;
    *n = k;
    return 0;
}

/* Remove tombstone markers and records that expired while closed. */
typedef struct purge {
    uint8_t **keys;
    size_t *lens;
    kd_loc *locs;
    size_t n, cap;
    int64_t now;
    bool oom;
} purge;

static int purge_visit(void *ctx, const uint8_t *key, size_t klen, const kd_loc *loc)
{
    purge *p = ctx;
    if (!loc->expires_at_ms || loc->expires_at_ms > p->now)
        return 0;
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 256;
        uint8_t **k = realloc(p->keys, cap * sizeof(*k));
        size_t *l = k ? realloc(p->lens, cap * sizeof(*l)) : NULL;
        kd_loc *o = l ? realloc(p->locs, cap * sizeof(*o)) : NULL;
        if (k)
            p->keys = k;
        if (l)
            p->lens = l;
        if (o)
            p->locs = o;
        if (!o) {
            p->oom = true;
            return 1;
        }
        p->cap = cap;
    }
    p->keys[p->n] = malloc(klen);
    if (!p->keys[p->n]) {
        p->oom = true;
        return 1;
    }
    memcpy(p->keys[p->n], key, klen);
    p->lens[p->n] = klen;
    p->locs[p->n] = *loc;
    p->n++;
    return 0;
}

static int purge_dead(rc_db *db, rc_keyspace *ks)
{
    if (rci_keydir_ttl_count(ks->kd) == 0)
        return 0;
    purge p = {.now = db_now_ms(db)};
    int err = 0;
    for (unsigned s = 0; s < KEYDIR_SHARDS && !err; s++) {
        p.n = 0;
        rci_keydir_shard_foreach(ks->kd, s, purge_visit, &p);
        if (p.oom)
            err = RC_ENOMEM;
        for (size_t i = 0; i < p.n; i++) {
            uint64_t h = rci_keydir_hash(p.keys[i], p.lens[i]);
            if (rci_keydir_remove_if(ks->kd, h, p.keys[i], p.lens[i], &p.locs[i]) &&
                p.locs[i].expires_at_ms != TOMBSTONE_MARK)
                rci_index_account_removed(db, ks, &p.locs[i], p.lens[i]);
            free(p.keys[i]);
        }
    }
    free(p.keys);
    free(p.lens);
    free(p.locs);
    return err;
}

static uint64_t now_ms_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Refuse, before anything is read or truncated, a directory holding a
 * segment of a format version newer than this build knows (FORMAT.md
 * section 2): the scan would take its header for a torn one and cut the
 * file to nothing. The magic and version sit at bytes 0..5 in every version. */
static int check_segment_versions(rc_db *db, const uint64_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char name[32];
        uint8_t head[6];
        rci_seg_name(name, sizeof(name), ids[i], "data");
        int fd = openat(db->dir_fd, name, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue; /* vanished or unreadable: the open that follows reports it */
        ssize_t got = pread(fd, head, sizeof head, 0);
        close(fd);
        if (got != (ssize_t)sizeof head)
            continue;
        uint32_t magic = (uint32_t)head[0] | (uint32_t)head[1] << 8 | (uint32_t)head[2] << 16 |
                         (uint32_t)head[3] << 24;
        unsigned version = (unsigned)head[4] | (unsigned)head[5] << 8;
        if (magic == FMT_SEG_MAGIC && version > FMT_SEG_VERSION)
            return rc_fail(RC_EVERSION,
                           "%s/%s has version %u, written by a newer ringcask; this build reads "
                           "up to %u (nothing was changed)",
                           db->dir, name, version, FMT_SEG_VERSION);
    }
    return 0;
}

/* One pass over the OPENED segments (N, in order): hinted ones through W,
 * the others scanned. */
static int replay(rc_db *db, rec_window *w, segment **opened, size_t n, uint64_t tail_id)
{
    int err = 0;
    for (size_t i = 0; i < n && !err; i++) {
        segment *seg = opened[i];
        if (db->opt.write_hints && rci_window_add(w, seg)) {
            if (rci_window_full(w))
                err = rci_window_flush(w, tail_id);
            continue;
        }
        /* segments are read in order: the hints queued before this one first */
        err = rci_window_flush(w, tail_id);
        if (!err)
            err = rci_rec_scan_one(db, seg, seg->id == tail_id);
    }
    if (!err)
        err = rci_window_flush(w, tail_id);
    return err;
}

int rci_recover(rc_db *db)
{
    uint64_t t0 = now_ms_mono();
    int err = rci_merge_recover(db);
    if (err)
        return err;
    uint64_t *ids = NULL;
    size_t n = 0;
    /* a read-only opener beside a writer's full load: if the load commits
     * while the segments are listed, the listing may lack some of its
     * segments, so list again (rc_open retries on segment_vanished) */
    bool loading = db->opt.read_only && rci_load_marker_present(db);
    err = list_segments(db, &ids, &n);
    if (err)
        return err;
    err = check_segment_versions(db, ids, n);
    if (err) {
        free(ids);
        return err;
    }
    rci_fault_listed();
    err = rci_load_recover(db, ids, &n); /* an interrupted full load: undone */
    if (!err && loading && !rci_load_marker_present(db)) {
        db->segment_vanished = true;
        err = rc_fail(RC_ENOTFOUND, "a load committed while %s was listed", db->dir);
    }
    if (err) {
        free(ids);
        return err;
    }
    db->next_segment_id = n ? ids[n - 1] + 1 : 1;
    /* the segment that was being appended when the process stopped is the
     * newest one without a hint (a clean close writes the active's hint;
     * merge outputs get theirs before they are published) */
    uint64_t tail_id = 0;
    for (size_t i = n; i-- > 0;) {
        char hname[32];
        rci_seg_name(hname, sizeof(hname), ids[i], "hint");
        if (faccessat(db->dir_fd, hname, F_OK, 0) != 0) {
            tail_id = ids[i];
            break;
        }
    }
    bool have_db_id = false;
    rec_window *w = rci_window_new(db, recovery_threads(db));
    segment **opened = malloc((n ? n : 1) * sizeof(*opened));
    size_t n_opened = 0;
    if (!w || !opened) {
        rci_window_free(w);
        free(opened);
        free(ids);
        return RC_ENOMEM;
    }
    for (size_t i = 0; i < n && !err; i++) {
        segment *seg;
        char hname[32];
        rci_seg_name(hname, sizeof(hname), ids[i], "hint");
        if (db->opt.read_only && faccessat(db->dir_fd, hname, F_OK, 0) != 0)
            /* no hint yet: it may be a live writer's active segment, which
             * sealing will shrink; a hinted one was truncated before its hint
             * was written and never changes again */
            err = rci_seg_open_copy(db->dir_fd, ids[i], &seg);
        else
            err = rci_seg_open(db->dir_fd, ids[i], !db->opt.read_only, &seg);
        if (err == RC_ENOTFOUND && db->opt.read_only) {
            /* a live writer's merge removed it after we listed the directory:
             * its replacement may not be in our listing, so start over */
            db->segment_vanished = true;
            break;
        }
        if (err)
            break;
        err = rci_seg_table_add(&db->segs, seg);
        if (err) {
            rci_seg_close(seg);
            break;
        }
        fmt_segment_header h;
        if (seg->map && fmt_segment_header_decode(seg->map, seg->file_len, &h) == FMT_OK &&
            !have_db_id) {
            db->db_id = h.db_id;
            have_db_id = true;
        }
        if (atomic_load(&seg->size) <= FMT_SEG_HEADER_LEN && !db->opt.read_only &&
            ids[i] != tail_id) {
            /* an active segment that never got a record: nothing to keep */
            rci_seg_table_remove(&db->segs, seg);
            rci_seg_close(seg);
            char nm[32];
            rci_seg_name(nm, sizeof(nm), ids[i], "data");
            unlinkat(db->dir_fd, nm, 0);
            continue;
        }
        opened[n_opened++] = seg;
    }
    free(ids);
    /* pass 1: the catalogue, then a keyspace per live id; pass 2: the
     * records of those (a dropped keyspace's are dead bytes, never indexed:
     * no memory for it however many came and went) */
    for (int pass = REC_PASS_CATALOG; pass <= REC_PASS_REST && !err; pass++) {
        db->rec_pass = pass;
        err = replay(db, w, opened, n_opened, tail_id);
        if (!err && pass == REC_PASS_CATALOG)
            err = rci_ks_load_catalog(db);
    }
    db->rec_pass = 0;
    rci_window_free(w);
    free(opened);
    if (err)
        return err;
    db->had_segments = have_db_id;
    if (!have_db_id) {
        FILE *f = fopen("/dev/urandom", "rb");
        if (!f || fread(&db->db_id, sizeof(db->db_id), 1, f) != 1)
            db->db_id = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
        if (f)
            fclose(f);
    }
    rc_keyspace *ks;
    for (uint32_t id = 0; !err && (ks = rci_ks_next(db, &id)); id++)
        err = purge_dead(db, ks);
    if (err)
        return err;
    for (uint32_t id = 1; (ks = rci_ks_next(db, &id)); id++)
        db->recovered_keys += rci_keydir_count(ks->kd);
    db->recovery_ms = now_ms_mono() - t0;
    /* the scans above read segments through their mappings: those pages stay
     * in the page cache but leave kvd's resident set (a reopened database
     * holds no more than the pages its reads touch again) */
    for (uint32_t i = 0; i < SEG_SLOTS; i++) {
        segment *seg = db->segs.slots[i];
        if (seg && seg->map_of_file)
            madvise(seg->map, seg->map_len, MADV_DONTNEED);
    }
#ifdef __GLIBC__
    /* glibc keeps the freed scratch of recovery in the process: give it back */
    malloc_trim(0);
#endif
    return 0;
}
