/*
 * read.c — reading records: keydir lookup, then one decode of the record in
 * the segment's mapping with its checksum verified, then a copy (and zstd
 * decompression when flagged) into a buffer the caller owns.
 *
 * The mapping is read inside an epoch (epoch.c), so merge cannot unmap the
 * segment underneath. A record that fails its checksum is never returned:
 * rci_read_record reports RC_ECORRUPT, and a read by key drops the entry
 * from the keydir and counts it (rc_stats.corrupt_reads), so the key reads
 * as absent from then on.
 */
#include "db.h"
#include "fault.h"
#include "format/compress.h"
#include "format/record.h"

#include <stdlib.h>
#include <string.h>

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
    int rc = fmt_record_decode(seg->map + loc->off, size - loc->off, r);
    if (rc != FMT_OK || r->seq != loc->seq)
        return rc_fail(RC_ECORRUPT, "record at %08llu:%u is corrupt (%s)",
                       (unsigned long long)seg->id, loc->off,
                       rc != FMT_OK ? fmt_strerror(rc) : "sequence number mismatch");
    return 0;
}

int rci_read_record(rc_db *db, const kd_loc *loc, rc_value *out, bool want_data)
{
    fmt_record r;
    int err = decode_at(db, loc, &r);
    if (err)
        return err;
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
    unsigned shard = keydir_shard_of(hash);
    kd_loc loc;
    rci_keydir_rdlock(ks->kd, shard);
    bool found = rci_keydir_find(ks->kd, hash, key, klen, &loc);
    rci_keydir_unlock(ks->kd, shard);
    if (!found)
        return RC_ENOTFOUND;
    if (loc.expires_at_ms && db_now_ms(db) >= loc.expires_at_ms)
        return RC_ENOTFOUND;
    int err = rci_read_record(db, &loc, out, want_data);
    if (err == RC_ECORRUPT) {
        memset(out, 0, sizeof(*out));
        err = drop_corrupt(db, ks, hash, key, klen, &loc);
    }
    return err;
}

void rc_value_free(rc_value *v)
{
    if (!v)
        return;
    free(v->data);
    memset(v, 0, sizeof(*v));
}
