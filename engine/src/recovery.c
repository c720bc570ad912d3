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
 * complete, so records land in provisional keyspaces made per id, and
 * ks_load_catalog keeps the live ones.
 */
#include "db.h"
#include "scan.h"
#include "format/hint.h"
#include "format/record.h"
#include "format/segment.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TOMBSTONE_MARK 1 /* expires_at_ms of a tombstone during recovery */

/* Recovery is single-threaded: counters can be updated without the lock
 * prefix of an atomic read-modify-write (relaxed load + store are plain). */
static inline void add_plain(_Atomic uint64_t *p, uint64_t v)
{
    atomic_store_explicit(p, atomic_load_explicit(p, memory_order_relaxed) + v,
                          memory_order_relaxed);
}

typedef struct rec_ctx {
    rc_db *db;
    segment *seg;
    int err;
    /* tracked here, published once per segment: recovery is single-threaded
     * and the fields are atomics (full barriers) shared with writers later */
    uint64_t last_seq, min_seq, max_seq;
} rec_ctx;

static rc_keyspace *ks_for_id(rc_db *db, uint32_t id)
{
    rc_keyspace *ks = ks_by_id(db, id);
    if (ks)
        return ks;
    ks = ks_new(db, NULL, id, 0); /* provisional until the catalogue names it */
    if (!ks || ks_register(db, ks) != 0)
        return NULL;
    return ks;
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
        record_sizes(db, loc, &t, &v);
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

static int insert(rec_ctx *c, uint8_t flags, uint64_t seq, uint32_t ks_id, uint64_t exp,
                  const uint8_t *key, uint32_t klen, uint32_t off, uint32_t total, uint64_t hash)
{
    rc_db *db = c->db;
    if (ks_id > KS_ID_MAX) { /* no keyspace ever had it: damage */
        db->corrupt_records++;
        atomic_fetch_add(&c->seg->dead_bytes, total);
        return 0;
    }
    if (seq > c->last_seq)
        c->last_seq = seq;
    if (seq > c->max_seq)
        c->max_seq = seq;
    if (!c->min_seq || seq < c->min_seq)
        c->min_seq = seq;
    rc_keyspace *ks = ks_for_id(db, ks_id);
    if (!ks)
        return c->err = RC_ENOMEM;
    bool tomb = flags & FMT_REC_TOMBSTONE;
    kd_loc loc = {.seg = c->seg->slot,
                  .off = off,
                  .seq = seq,
                  .expires_at_ms = tomb ? TOMBSTONE_MARK : (int64_t)exp};
    bool replaced = false, had = false;
    kd_loc old;
    if (keydir_put_if_newer(ks->kd, hash, key, klen, &loc, &replaced, &old, &had) != 0)
        return c->err = RC_ENOMEM;
    if (!replaced || tomb) {
        add_plain(&c->seg->dead_bytes, total);
        add_plain(&ks->dead_bytes, total);
    }
    if (replaced) {
        if (!tomb) {
            add_plain(&ks->live_value_bytes,
                      user_vlen(db, &loc, flags, total, klen, seq, ks_id, exp));
            add_plain(&ks->live_key_bytes, klen);
        }
        if (had && old.expires_at_ms != TOMBSTONE_MARK)
            index_account_removed(db, ks, &old, klen);
        else if (had) {
            /* the old tombstone's bytes were counted dead when it came in */
        }
    }
    return 0;
}

static int scan_insert(void *ctx, const fmt_record *r, uint32_t off)
{
    rec_ctx *c = ctx;
    return insert(c, r->flags, r->seq, r->ks, r->expires_at_ms, r->key, r->klen, off, r->total_len,
                  keydir_hash(r->key, r->klen));
}

/* Load SEG from its hint; false (and nothing inserted) when it is unusable. */
static bool load_hint(rec_ctx *c, segment *seg)
{
    rc_db *db = c->db;
    char name[32];
    seg_name(name, sizeof(name), seg->id, "hint");
    int fd = openat(db->dir_fd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    struct stat st;
    bool ok = false;
    if (fstat(fd, &st) != 0 || st.st_size < FMT_HINT_HEADER_LEN + FMT_HINT_TRAILER_LEN) {
        close(fd);
        return false;
    }
    size_t len = (size_t)st.st_size;
    uint8_t *p = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return false;
    madvise(p, len, MADV_SEQUENTIAL);
    fmt_hint_header h;
    if (fmt_hint_file_verify(p, len, &h) != FMT_OK || h.segment_id != seg->id ||
        h.covered != atomic_load(&seg->size))
        goto out;
    /* fmt_hint_file_verify decoded every entry and checked that each lies
     * inside [header, covered): nothing is inserted from a bad hint */
    size_t pos, end = len - FMT_HINT_TRAILER_LEN;
    if (h.count) {
        /* size the keydir once instead of growing it step by step; only into
         * an empty keydir, so overwrite-heavy data does not over-reserve */
        fmt_hint_entry first;
        size_t used;
        if (fmt_hint_entry_decode(p + FMT_HINT_HEADER_LEN, end - FMT_HINT_HEADER_LEN, &first,
                                  &used) == FMT_OK) {
            rc_keyspace *ks = ks_for_id(db, first.ks);
            if (ks && keydir_count(ks->kd) == 0)
                keydir_reserve(ks->kd, h.count);
        }
    }
    /* Inserting is bound by cache misses on random table slots: decode a
     * window of entries ahead and prefetch each one's slot, so that by the
     * time an entry is inserted its slot is (likely) in cache. */
    enum { AHEAD = 16 };
    fmt_hint_entry win[AHEAD];
    uint64_t hashes[AHEAD];
    rc_keyspace *pks = NULL;
    uint32_t pks_id = UINT32_MAX;
    pos = FMT_HINT_HEADER_LEN;
    uint64_t decoded = 0, done = 0;
    while (done < h.count && !c->err) {
        while (decoded < h.count && decoded - done < AHEAD) {
            fmt_hint_entry *e = &win[decoded % AHEAD];
            size_t used;
            fmt_hint_entry_decode(p + pos, end - pos, e, &used); /* verified above */
            pos += used;
            uint64_t hh = keydir_hash(e->key, e->klen);
            hashes[decoded % AHEAD] = hh;
            if (e->ks != pks_id) {
                pks_id = e->ks;
                pks = e->ks <= KS_ID_MAX ? ks_by_id(db, e->ks) : NULL;
            }
            if (pks)
                keydir_prefetch(pks->kd, hh);
            decoded++;
        }
        fmt_hint_entry *e = &win[done % AHEAD];
        insert(c, e->flags, e->seq, e->ks, e->expires_at_ms, e->key, e->klen, e->offset,
               e->total_len, hashes[done % AHEAD]);
        done++;
    }
    ok = true;
    seg->hint_bytes = len;
    atomic_store(&seg->has_hint, true);
out:
    munmap(p, len);
    return ok;
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
    if (keydir_ttl_count(ks->kd) == 0)
        return 0;
    purge p = {.now = db_now_ms(db)};
    int err = 0;
    for (unsigned s = 0; s < KEYDIR_SHARDS && !err; s++) {
        p.n = 0;
        keydir_shard_foreach(ks->kd, s, purge_visit, &p);
        if (p.oom)
            err = RC_ENOMEM;
        for (size_t i = 0; i < p.n; i++) {
            uint64_t h = keydir_hash(p.keys[i], p.lens[i]);
            if (keydir_remove_if(ks->kd, h, p.keys[i], p.lens[i], &p.locs[i]) &&
                p.locs[i].expires_at_ms != TOMBSTONE_MARK)
                index_account_removed(db, ks, &p.locs[i], p.lens[i]);
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

int recover(rc_db *db)
{
    uint64_t t0 = now_ms_mono();
    int err = merge_recover(db);
    if (err)
        return err;
    uint64_t *ids = NULL;
    size_t n = 0;
    err = list_segments(db, &ids, &n);
    if (err)
        return err;
    err = load_recover(db, ids, &n); /* an interrupted full load: undone */
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
        seg_name(hname, sizeof(hname), ids[i], "hint");
        if (faccessat(db->dir_fd, hname, F_OK, 0) != 0) {
            tail_id = ids[i];
            break;
        }
    }
    bool have_db_id = false;
    for (size_t i = 0; i < n && !err; i++) {
        segment *seg;
        char hname[32];
        seg_name(hname, sizeof(hname), ids[i], "hint");
        if (db->opt.read_only && faccessat(db->dir_fd, hname, F_OK, 0) != 0)
            /* no hint yet: it may be a live writer's active segment, which
             * sealing will shrink; a hinted one was truncated before its hint
             * was written and never changes again */
            err = seg_open_copy(db->dir_fd, ids[i], &seg);
        else
            err = seg_open(db->dir_fd, ids[i], !db->opt.read_only, &seg);
        if (err == RC_ENOTFOUND && db->opt.read_only) {
            /* a live writer's merge removed it after we listed the directory:
             * its replacement may not be in our listing, so start over */
            db->segment_vanished = true;
            break;
        }
        if (err)
            break;
        err = seg_table_add(&db->segs, seg);
        if (err) {
            seg_close(seg);
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
            seg_table_remove(&db->segs, seg);
            seg_close(seg);
            char nm[32];
            seg_name(nm, sizeof(nm), ids[i], "data");
            unlinkat(db->dir_fd, nm, 0);
            continue;
        }
        rec_ctx c = {.db = db, .seg = seg};
        if (db->opt.write_hints && load_hint(&c, seg)) {
            db->hint_files_used++;
        } else if (!c.err) {
            scan_result res;
            if (scan_segment(seg, seg->id == tail_id, scan_insert, &c, &res) != 0 && !c.err)
                c.err = RC_ENOMEM;
            db->segments_scanned++;
            db->corrupt_records += res.corrupt;
            if (res.corrupt && db->opt.strict) {
                err = rc_fail(RC_ECORRUPT,
                              "segment %08llu has %llu corrupt region(s) (strict "
                              "mode)",
                              (unsigned long long)seg->id, (unsigned long long)res.corrupt);
                break;
            }
            if (!res.header_ok && seg->file_len > 0 && res.torn_bytes > 0 && db->opt.strict) {
                err = rc_fail(RC_ECORRUPT, "segment %08llu has a bad header",
                              (unsigned long long)seg->id);
                break;
            }
            if (res.committed_end < atomic_load(&seg->size)) {
                db->torn_bytes += res.torn_bytes;
                atomic_store(&seg->size, res.committed_end);
                if (!db->opt.read_only) {
                    err = seg_truncate(seg);
                    if (!err && fsync(seg->fd) != 0)
                        err = rc_fail(rc_from_errno(errno), "cannot sync truncated segment");
                }
            }
        }
        if (c.err)
            err = c.err;
        if (c.last_seq > atomic_load(&db->last_seq))
            atomic_store(&db->last_seq, c.last_seq);
        seg->max_seq = c.max_seq;
        seg->min_seq = c.min_seq;
    }
    free(ids);
    if (err)
        return err;
    if (!have_db_id) {
        FILE *f = fopen("/dev/urandom", "rb");
        if (!f || fread(&db->db_id, sizeof(db->db_id), 1, f) != 1)
            db->db_id = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
        if (f)
            fclose(f);
    }
    err = ks_load_catalog(db);
    for (uint32_t id = 0; id < db->ks_cap && !err; id++) {
        rc_keyspace *ks = db->ks_by_id[id];
        if (ks)
            err = purge_dead(db, ks);
    }
    if (err)
        return err;
    for (uint32_t id = 1; id < db->ks_cap; id++)
        if (db->ks_by_id[id])
            db->recovered_keys += keydir_count(db->ks_by_id[id]->kd);
    db->recovery_ms = now_ms_mono() - t0;
    return 0;
}
