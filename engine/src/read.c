/*
 * read.c — reading records: keydir lookup, then one decode of the record in
 * the segment's mapping with its checksum verified, then a copy (and zstd
 * decompression when flagged) into a buffer the caller owns.
 *
 * The lookup reads only the keydir's table slot (rci_keydir_peek: tag, key
 * length and location) and then checks in the record that it holds the key
 * and keyspace asked for: the record's key is covered by its checksum, so a
 * verified record with the same key is the entry's own proof, and the read
 * costs two dependent cache misses (slot, record) instead of three (slot,
 * entry, record). A key with an expiry takes the same path: the record
 * holds the expiry the entry holds (both come from the one write; merge
 * copies it; recovery reads it back from the record or its hint), and the
 * record's copy is covered by its checksum, so the read checks the expiry
 * it finds there. Anything unusual — a tag collision, a record that does
 * not verify — takes the full lookup (rci_keydir_find) and the checks that
 * always applied there, including the record's seq against the entry's.
 *
 * The record's cache lines are prefetched as soon as the slot names them
 * (prefetch_record): the decode reads the header, then hashes the record,
 * so a record spanning two or three lines would otherwise cost a second
 * memory latency.
 *
 * The mapping is read inside an epoch (epoch.c), so merge cannot unmap the
 * segment underneath. A record that fails its checksum is never returned:
 * rci_read_record reports RC_ECORRUPT, and a read by key drops the entry
 * from the keydir and counts it (rc_stats.corrupt_reads), so the key reads
 * as absent from then on.
 *
 * rc_get_view skips the copy: it verifies the record the same way and then
 * hands the embedder a view of the value inside the mapping, valid while
 * its callback runs (the epoch is held across the callback, so merge cannot
 * unmap the segment). Only a compressed value needs a buffer: a per-thread
 * one, kept between reads, so steady reads allocate nothing.
 */
#include "db.h"
#include "fault.h"
#include "format/compress.h"
#include "format/record.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Ask for the cache lines of the record at P (AVAIL bytes to the end of the
 * segment) before decoding it. The decode reads the header first, learns
 * the lengths, then hashes the whole record: without this, a small record
 * that spans two or three lines costs a second memory latency after the
 * first. RECORD_PREFETCH bytes cover a 16-byte key with a 100-byte value
 * wherever it starts in a line; larger records are streamed by the
 * hardware prefetcher once the hash walks them. A hint only: no fault, no
 * effect on what is read. */
#define RECORD_PREFETCH 192u

static inline void prefetch_record(const uint8_t *p, uint64_t avail)
{
    uintptr_t first = (uintptr_t)p & ~(uintptr_t)63;
    uintptr_t last = (uintptr_t)p + (avail < RECORD_PREFETCH ? avail : RECORD_PREFETCH) - 1;
    for (uintptr_t a = first; a <= last; a += 64)
        __builtin_prefetch((const void *)a);
}

static int decode_at(rc_db *db, const kd_loc *loc, fmt_record *r)
{
    segment *seg = seg_at(&db->segs, loc->seg);
    if (!seg)
        return rc_fail(RC_ECORRUPT, "keydir names segment slot %u, which is not open", loc->seg);
    uint64_t size = atomic_load_explicit(&seg->size, memory_order_acquire);
    if (loc->off >= size)
        return rc_fail(RC_ECORRUPT, "offset %u is past the end of segment %08llu", loc->off,
                       (unsigned long long)seg->id);
    int ferr = rci_fault_check(FAULT_READ);
    if (ferr)
        return rc_fail(rc_from_errno(ferr), "read of segment %08llu failed (injected)",
                       (unsigned long long)seg->id);
    prefetch_record(seg->map + loc->off, size - loc->off);
    int rc = fmt_record_decode(seg->map + loc->off, size - loc->off, r);
    if (rc != FMT_OK || r->seq != loc->seq)
        return rc_fail(RC_ECORRUPT, "record at %08llu:%u is corrupt (%s)",
                       (unsigned long long)seg->id, loc->off,
                       rc != FMT_OK ? fmt_strerror(rc) : "sequence number mismatch");
    return 0;
}

/* The fast path's decode: true when the record at LOC (from
 * rci_keydir_peek) verifies and holds KEY of keyspace KS; *R is then that
 * record (the caller checks its expiry). False sends the read to the full
 * lookup (which reports what is wrong). *ERR is set only for an injected
 * read failure. */
static bool decode_peeked(rc_db *db, const rc_keyspace *ks, const kd_loc *loc, const void *key,
                          size_t klen, fmt_record *r, int *err)
{
    segment *seg = seg_at(&db->segs, loc->seg);
    if (!seg)
        return false;
    uint64_t size = atomic_load_explicit(&seg->size, memory_order_acquire);
    if (loc->off >= size)
        return false;
    int ferr = rci_fault_check(FAULT_READ);
    if (ferr) {
        *err = rc_fail(rc_from_errno(ferr), "read of segment %08llu failed (injected)",
                       (unsigned long long)seg->id);
        return false;
    }
    prefetch_record(seg->map + loc->off, size - loc->off);
    return fmt_record_decode(seg->map + loc->off, size - loc->off, r) == FMT_OK &&
           r->klen == klen && r->ks == ks->id && !(r->flags & FMT_REC_TOMBSTONE) &&
           memcmp(r->key, key, klen) == 0;
}

/* Find KEY for a read: 0 with *LOC (and, when *DECODED, its verified record
 * *R), RC_ENOTFOUND when absent or expired, or an injected read failure. */
static int locate(rc_db *db, rc_keyspace *ks, uint64_t hash, const void *key, size_t klen,
                  kd_loc *loc, fmt_record *r, bool *decoded)
{
    unsigned shard = keydir_shard_of(hash);
    *decoded = false;
    rci_keydir_rdlock(ks->kd, shard);
    int peek = rci_keydir_peek(ks->kd, hash, klen, loc);
    rci_keydir_unlock(ks->kd, shard);
    if (peek == KD_PEEK_ABSENT)
        return RC_ENOTFOUND;
    int err = 0;
    if (decode_peeked(db, ks, loc, key, klen, r, &err)) {
        if (r->expires_at_ms && db_now_ms(db) >= (int64_t)r->expires_at_ms)
            return RC_ENOTFOUND;
        loc->seq = r->seq;
        loc->expires_at_ms = (int64_t)r->expires_at_ms;
        *decoded = true;
        return 0;
    }
    if (err)
        return err;
    rci_keydir_rdlock(ks->kd, shard);
    bool found = rci_keydir_find(ks->kd, hash, key, klen, loc);
    rci_keydir_unlock(ks->kd, shard);
    if (!found)
        return RC_ENOTFOUND;
    if (loc->expires_at_ms && db_now_ms(db) >= loc->expires_at_ms)
        return RC_ENOTFOUND;
    return 0;
}

/* Copy (or decompress) the verified record R into OUT. */
static int copy_record(const fmt_record *rp, rc_value *out, bool want_data)
{
    const fmt_record r = *rp;
    out->type = (rc_type)fmt_record_type(&r);
    out->seq = r.seq;
    out->expires_at_ms = (int64_t)r.expires_at_ms;
    out->data = NULL;
    if (!(r.flags & FMT_REC_COMPRESSED)) {
        out->len = r.vlen;
        if (want_data) {
            out->data = malloc(r.vlen + 1u);
            if (!out->data)
                return RC_ENOMEM;
            memcpy(out->data, r.val, r.vlen);
            ((char *)out->data)[r.vlen] = 0;
        }
        return 0;
    }
    size_t len;
    if (fmt_decompressed_size(r.val, r.vlen, FMT_VALUE_MAX, &len) != FMT_OK)
        return rc_fail(RC_ECORRUPT, "compressed value of seq %llu is malformed",
                       (unsigned long long)r.seq);
    out->len = len;
    if (!want_data)
        return 0;
    out->data = malloc(len + 1u);
    if (!out->data)
        return RC_ENOMEM;
    size_t got;
    if (fmt_decompress(out->data, len, r.val, r.vlen, &got) != FMT_OK || got != len) {
        free(out->data);
        out->data = NULL;
        return rc_fail(RC_ECORRUPT, "compressed value of seq %llu does not decompress",
                       (unsigned long long)r.seq);
    }
    ((char *)out->data)[len] = 0;
    return 0;
}

int rci_read_record(rc_db *db, const kd_loc *loc, rc_value *out, bool want_data)
{
    fmt_record r;
    int err = decode_at(db, loc, &r);
    return err ? err : copy_record(&r, out, want_data);
}

int rci_record_sizes(rc_db *db, const kd_loc *loc, uint32_t *total, uint64_t *value_len)
{
    segment *seg = seg_at(&db->segs, loc->seg);
    if (!seg)
        return RC_ECORRUPT;
    uint64_t size = atomic_load_explicit(&seg->size, memory_order_acquire);
    if (loc->off >= size)
        return RC_ECORRUPT;
    fmt_record r;
    if (fmt_record_peek(seg->map + loc->off, size - loc->off, &r) != FMT_OK)
        return RC_ECORRUPT;
    *total = r.total_len;
    *value_len = r.vlen;
    if ((r.flags & FMT_REC_COMPRESSED) && r.val) {
        size_t len;
        if (fmt_decompressed_size(r.val, r.vlen, FMT_VALUE_MAX, &len) == FMT_OK)
            *value_len = len;
    }
    return 0;
}

/* The record at LOC failed its checksum (or no longer decodes): take KEY out
 * of the keydir if it still points there, so that the damage is counted once
 * and every later read agrees that the key is absent instead of failing now
 * and then. Called with an epoch and no keydir lock held; the entry is
 * removed only if unchanged, so a writer that replaced it meanwhile wins
 * (the same rule as the TTL sweeper's). */
static int drop_corrupt(rc_db *db, rc_keyspace *ks, uint64_t hash, const void *key, size_t klen,
                        const kd_loc *loc)
{
    unsigned shard = keydir_shard_of(hash);
    rci_keydir_wrlock(ks->kd, shard);
    bool removed = rci_keydir_remove_if(ks->kd, hash, key, klen, loc);
    rci_keydir_unlock(ks->kd, shard);
    if (!removed)
        return RC_ENOTFOUND; /* another reader dropped it, or a writer replaced it */
    atomic_fetch_add_explicit(&db->corrupt_reads, 1, memory_order_relaxed);
    rci_index_account_removed(db, ks, loc, klen);
    return RC_ENOTFOUND;
}

int rci_read_key(rc_db *db, rc_keyspace *ks, uint64_t hash, const void *key, size_t klen,
                 rc_value *out, bool want_data)
{
    kd_loc loc;
    fmt_record r;
    bool decoded;
    int err = locate(db, ks, hash, key, klen, &loc, &r, &decoded);
    if (err)
        return err;
    err = decoded ? copy_record(&r, out, want_data) : rci_read_record(db, &loc, out, want_data);
    if (err == RC_ECORRUPT) {
        memset(out, 0, sizeof(*out));
        err = drop_corrupt(db, ks, hash, key, klen, &loc);
    }
    return err;
}

/* ---- zero-copy reads (rc_get_view) */

/* A compressed value is shown from a buffer of the reading thread, kept
 * between reads (up to VIEW_KEEP bytes) so that steady reads allocate
 * nothing; the thread's exit frees it. */
#define VIEW_KEEP (1u << 20)

typedef struct view_buf {
    uint8_t *p;
    size_t cap;
} view_buf;

static pthread_key_t view_key;
static pthread_once_t view_once = PTHREAD_ONCE_INIT;
static bool view_key_ok;

static void view_buf_free(void *p)
{
    view_buf *b = p;
    free(b->p);
    free(b);
}

static void view_key_init(void)
{
    view_key_ok = pthread_key_create(&view_key, view_buf_free) == 0;
}

/* A buffer of at least LEN bytes for this thread, or NULL (ENOMEM). A
 * value larger than VIEW_KEEP gets a *TEMPORARY buffer, freed by the
 * caller. */
static uint8_t *view_buf_get(size_t len, bool *temporary)
{
    *temporary = false;
    pthread_once(&view_once, view_key_init);
    if (len > VIEW_KEEP || !view_key_ok) {
        *temporary = true;
        return malloc(len ? len : 1u);
    }
    view_buf *b = pthread_getspecific(view_key);
    if (!b) {
        if (!(b = calloc(1, sizeof(*b))))
            return NULL;
        if (pthread_setspecific(view_key, b) != 0) {
            free(b);
            return NULL;
        }
    }
    if (b->cap < len) {
        size_t cap = len < 4096u ? 4096u : len;
        uint8_t *n = malloc(cap);
        if (!n)
            return NULL;
        free(b->p);
        b->p = n;
        b->cap = cap;
    }
    return b->p;
}

/* Decode the record at LOC and call FN with a view of its value. *CALLED
 * tells whether FN ran (its return value is then the result). */
static int view_record(const fmt_record *rp, rc_view_fn fn, void *ctx, bool *called)
{
    const fmt_record r = *rp;
    int err;
    rc_view v = {.data = r.val,
                 .len = r.vlen,
                 .type = (rc_type)fmt_record_type(&r),
                 .seq = r.seq,
                 .expires_at_ms = (int64_t)r.expires_at_ms};
    if (!(r.flags & FMT_REC_COMPRESSED)) {
        if (!v.data)
            v.data = "";
        *called = true;
        return fn(ctx, &v);
    }
    size_t len, got;
    if (fmt_decompressed_size(r.val, r.vlen, FMT_VALUE_MAX, &len) != FMT_OK)
        return rc_fail(RC_ECORRUPT, "compressed value of seq %llu is malformed",
                       (unsigned long long)r.seq);
    bool temporary;
    uint8_t *buf = view_buf_get(len, &temporary);
    if (!buf)
        return rc_fail(RC_ENOMEM, "no memory to decompress a value of %zu bytes", len);
    if (fmt_decompress(buf, len, r.val, r.vlen, &got) != FMT_OK || got != len) {
        if (temporary)
            free(buf);
        return rc_fail(RC_ECORRUPT, "compressed value of seq %llu does not decompress",
                       (unsigned long long)r.seq);
    }
    v.data = buf;
    v.len = len;
    *called = true;
    err = fn(ctx, &v);
    if (temporary)
        free(buf);
    return err;
}

int rci_read_key_view(rc_db *db, rc_keyspace *ks, uint64_t hash, const void *key, size_t klen,
                      rc_view_fn fn, void *ctx)
{
    kd_loc loc;
    fmt_record r;
    bool decoded, called = false;
    int err = locate(db, ks, hash, key, klen, &loc, &r, &decoded);
    if (err)
        return err;
    if (!decoded)
        err = decode_at(db, &loc, &r);
    if (!err)
        err = view_record(&r, fn, ctx, &called);
    if (!called && err == RC_ECORRUPT)
        err = drop_corrupt(db, ks, hash, key, klen, &loc);
    return err;
}

void rc_value_free(rc_value *v)
{
    if (!v)
        return;
    free(v->data);
    memset(v, 0, sizeof(*v));
}
