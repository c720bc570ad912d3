/*
 * hint.c — hint files (hint.h): a segment's keys and record locations
 * without values, so that opening a database reads no values.
 *
 * A hint is all or nothing: one XXH3-64 over the whole file in a trailer
 * rather than a checksum per entry, because a hint that fails anywhere is
 * discarded and the segment scanned instead — partial trust would buy nothing
 * and cost four bytes per key. fmt_hint_file_verify therefore checks the
 * trailer first and only then walks the entries, requiring exactly `count`
 * of them to fill the body, and every entry to point inside the covered part
 * of the segment. Entries use the record's varints and canonical rules
 * (HAS_KS only for ks != 1, HAS_EXPIRY only for a non-zero expiry, minimal
 * varints), so an entry decodes to exactly one encoding.
 */
#include "hint.h"
#include "record.h"
#include "segment.h"

#define HINT_ENTRY_FLAGS                                                                           \
    (FMT_REC_TOMBSTONE | FMT_REC_COMPRESSED | FMT_REC_TYPE_MASK | FMT_REC_HAS_EXPIRY |             \
     FMT_REC_HAS_KS)

void fmt_hint_header_encode(uint8_t out[FMT_HINT_HEADER_LEN], const fmt_hint_header *h)
{
    uint16_t version = h->version ? h->version : FMT_HINT_VERSION;
    fmt_put_u32(out + 0, FMT_HINT_MAGIC);
    fmt_put_u16(out + 4, version);
    fmt_put_u16(out + 6, 0);
    fmt_put_u64(out + 8, h->segment_id);
    fmt_put_u64(out + 16, h->covered);
    fmt_put_u64(out + 24, h->count);
    if (version == 1) {
        fmt_put_u64(out + 32, 0);
    } else {
        fmt_put_u32(out + 32, h->block);
        fmt_put_u32(out + 36, 0);
    }
}

int fmt_hint_header_decode(const uint8_t *buf, size_t avail, fmt_hint_header *out)
{
    if (avail < FMT_HINT_HEADER_LEN)
        return FMT_ESHORT;
    if (fmt_get_u32(buf) != FMT_HINT_MAGIC)
        return FMT_ECORRUPT;
    uint16_t version = fmt_get_u16(buf + 4);
    if (version > FMT_HINT_VERSION)
        return FMT_EVERSION;
    if (version == 0 || fmt_get_u16(buf + 6) != 0)
        return FMT_ECORRUPT;
    uint32_t block = 0;
    if (version == 1) {
        if (fmt_get_u64(buf + 32) != 0)
            return FMT_ECORRUPT;
    } else {
        block = fmt_get_u32(buf + 32);
        if (block == 0 || block > FMT_HINT2_BLOCK_MAX || fmt_get_u32(buf + 36) != 0)
            return FMT_ECORRUPT;
    }
    out->segment_id = fmt_get_u64(buf + 8);
    out->covered = fmt_get_u64(buf + 16);
    out->count = fmt_get_u64(buf + 24);
    out->version = version;
    out->block = block;
    return FMT_OK;
}

/* The entry's flags as written: HAS_KS/HAS_EXPIRY derived from the fields,
 * and the batch bits dropped, since a hint describes committed records only
 * (so a caller may pass a record's flags unchanged). */
static fmt_ident hint_ident(const fmt_hint_entry *e)
{
    fmt_ident id = {.seq = e->seq, .ks = e->ks, .expires_at_ms = e->expires_at_ms, .klen = e->klen};
    return id;
}

static uint8_t hint_wire_flags(const fmt_hint_entry *e)
{
    fmt_ident id = hint_ident(e);
    return fmt_ident_flags(e->flags & (uint8_t) ~(FMT_REC_BATCH | FMT_REC_BATCH_END), &id);
}

size_t fmt_hint_entry_encode(uint8_t *buf, size_t cap, const fmt_hint_entry *e)
{
    uint8_t flags = hint_wire_flags(e);
    if (e->seq == 0 || e->klen == 0 || e->klen > FMT_KEY_MAX)
        return 0;
    fmt_ident id = hint_ident(e);
    size_t n = 1 + fmt_ident_size(flags, &id) + fmt_varint_len(e->offset) +
               fmt_varint_len(e->total_len) + e->klen;
    if (cap < n)
        return 0;

    size_t pos = 0;
    buf[pos++] = flags;
    pos += fmt_ident_put(buf + pos, flags, &id);
    pos += fmt_put_varint(buf + pos, e->offset);
    pos += fmt_put_varint(buf + pos, e->total_len);
    memcpy(buf + pos, e->key, e->klen);
    return pos + e->klen;
}

int fmt_hint_entry_decode(const uint8_t *buf, size_t avail, fmt_hint_entry *out, size_t *used)
{
    uint64_t offset, total_len;
    fmt_ident id;
    size_t pos = 1;
    int rc;

    if (avail < 1)
        return FMT_ESHORT;
    uint8_t flags = buf[0];
    if ((flags & ~HINT_ENTRY_FLAGS) != 0)
        return FMT_ECORRUPT; /* batch bits: hints hold committed records only */
    if ((rc = fmt_ident_get(buf, avail, &pos, flags, &id)) != FMT_OK)
        return rc;
    uint64_t klen = id.klen;
    if ((rc = fmt_read_varint(buf, avail, &pos, &offset)) != FMT_OK)
        return rc;
    if ((rc = fmt_read_varint(buf, avail, &pos, &total_len)) != FMT_OK)
        return rc;
    if (offset > UINT32_MAX || total_len > UINT32_MAX)
        return FMT_ELIMIT;
    /* The smallest record with this key: checksum, flags, seq, klen, vlen. */
    if (total_len < 4 + 1 + 1 + 1 + 1 + klen)
        return FMT_ECORRUPT;
    if (avail - pos < klen)
        return FMT_ESHORT;

    out->flags = flags;
    out->seq = id.seq;
    out->ks = id.ks;
    out->expires_at_ms = id.expires_at_ms;
    out->key = buf + pos;
    out->klen = (uint32_t)klen;
    out->offset = (uint32_t)offset;
    out->total_len = (uint32_t)total_len;
    *used = pos + klen;
    return FMT_OK;
}

/* ---- version 2: keyless entries, delta-coded within blocks */

static inline uint64_t zigzag(uint64_t d)
{
    return (d << 1) ^ (uint64_t)((int64_t)d >> 63);
}

static inline uint64_t unzigzag(uint64_t z)
{
    return (z >> 1) ^ (uint64_t) - (int64_t)(z & 1u);
}

size_t fmt_hint2_entry_encode(uint8_t *buf, size_t cap, const fmt_hint_entry *e, fmt_hint2_ctx *c)
{
    uint8_t flags = hint_wire_flags(e);
    if (e->seq == 0 || e->klen == 0 || e->klen > FMT_KEY_MAX || e->offset < c->end)
        return 0;
    if (cap < FMT_HINT2_ENTRY_MAX) {
        uint8_t tmp[FMT_HINT2_ENTRY_MAX];
        fmt_hint2_ctx c2 = *c;
        size_t n = fmt_hint2_entry_encode(tmp, sizeof tmp, e, &c2);
        if (n > cap)
            return 0;
        memcpy(buf, tmp, n);
        *c = c2;
        return n;
    }
    size_t pos = 0;
    buf[pos++] = flags;
    pos += fmt_put_varint(buf + pos, zigzag(e->seq - c->seq));
    if (flags & FMT_REC_HAS_KS)
        pos += fmt_put_varint(buf + pos, e->ks);
    if (flags & FMT_REC_HAS_EXPIRY)
        pos += fmt_put_varint(buf + pos, e->expires_at_ms);
    pos += fmt_put_varint(buf + pos, e->klen);
    pos += fmt_put_varint(buf + pos, e->offset - c->end);
    pos += fmt_put_varint(buf + pos, e->total_len);
    c->seq = e->seq;
    c->end = (uint64_t)e->offset + e->total_len;
    return pos;
}

int fmt_hint2_entry_decode(const uint8_t *buf, size_t avail, fmt_hint_entry *out, size_t *used,
                           fmt_hint2_ctx *c)
{
    uint64_t dseq, ks = FMT_KS_DEFAULT, exp = 0, klen, gap, total;
    size_t pos = 1;
    int rc;
    if (avail < 1)
        return FMT_ESHORT;
    uint8_t flags = buf[0];
    if ((flags & ~HINT_ENTRY_FLAGS) != 0)
        return FMT_ECORRUPT;
    if ((rc = fmt_read_varint(buf, avail, &pos, &dseq)) != FMT_OK)
        return rc;
    if ((flags & FMT_REC_HAS_KS) && (rc = fmt_read_varint(buf, avail, &pos, &ks)) != FMT_OK)
        return rc;
    if ((flags & FMT_REC_HAS_EXPIRY) && (rc = fmt_read_varint(buf, avail, &pos, &exp)) != FMT_OK)
        return rc;
    if ((rc = fmt_read_varint(buf, avail, &pos, &klen)) != FMT_OK)
        return rc;
    if ((rc = fmt_read_varint(buf, avail, &pos, &gap)) != FMT_OK)
        return rc;
    if ((rc = fmt_read_varint(buf, avail, &pos, &total)) != FMT_OK)
        return rc;
    uint64_t seq = c->seq + unzigzag(dseq);
    if (seq == 0 || ((flags & FMT_REC_HAS_KS) && ks == FMT_KS_DEFAULT) ||
        ((flags & FMT_REC_HAS_EXPIRY) && exp == 0) || klen == 0)
        return FMT_ECORRUPT;
    if (ks > UINT32_MAX || klen > FMT_KEY_MAX || gap > UINT32_MAX || total > UINT32_MAX ||
        c->end + gap > UINT32_MAX)
        return FMT_ELIMIT;
    if (total < 4 + 1 + 1 + 1 + 1 + klen)
        return FMT_ECORRUPT;
    out->flags = flags;
    out->seq = seq;
    out->ks = (uint32_t)ks;
    out->expires_at_ms = exp;
    out->key = NULL;
    out->klen = (uint32_t)klen;
    out->offset = (uint32_t)(c->end + gap);
    out->total_len = (uint32_t)total;
    c->seq = seq;
    c->end = out->offset + total;
    *used = pos;
    return FMT_OK;
}

/* The body of a v2 image: [40, index start) holds the blocks. */
static size_t index_start(size_t len, uint64_t nblocks)
{
    return len - FMT_HINT_TRAILER_LEN - (size_t)nblocks * 8u;
}

int fmt_hint2_file_open(const uint8_t *buf, size_t len, fmt_hint_header *out, uint64_t *nblocks)
{
    fmt_hint_header h;
    int rc = fmt_hint_header_decode(buf, len, &h);
    if (rc != FMT_OK)
        return rc;
    if (h.version != 2)
        return FMT_EVERSION;
    if (len < FMT_HINT_HEADER_LEN + FMT_HINT_TRAILER_LEN)
        return FMT_ESHORT;
    size_t body_end = len - FMT_HINT_TRAILER_LEN;
    if (fmt_get_u64(buf + body_end) != fmt_hash64(buf, body_end))
        return FMT_ECORRUPT;
    if (h.covered < FMT_SEG_HEADER_LEN)
        return FMT_ECORRUPT;
    size_t room = body_end - FMT_HINT_HEADER_LEN;
    /* every block holds at least one entry of at least 5 bytes plus its
     * 8-byte index slot: a larger count cannot be met */
    if (h.count > room / FMT_HINT2_ENTRY_MIN)
        return FMT_ECORRUPT;
    uint64_t nb = h.count ? (h.count - 1) / h.block + 1 : 0;
    if (nb > room / (8u + FMT_HINT2_ENTRY_MIN))
        return FMT_ECORRUPT;
    size_t ix = index_start(len, nb);
    if (h.count > (ix - FMT_HINT_HEADER_LEN) / FMT_HINT2_ENTRY_MIN)
        return FMT_ECORRUPT;
    if (nb == 0 && ix != FMT_HINT_HEADER_LEN)
        return FMT_ECORRUPT;
    uint64_t prev = 0;
    for (uint64_t b = 0; b < nb; b++) {
        uint64_t at = fmt_get_u64(buf + ix + b * 8u);
        if ((b == 0 && at != FMT_HINT_HEADER_LEN) || (b > 0 && at <= prev) || at >= ix)
            return FMT_ECORRUPT;
        prev = at;
    }
    *out = h;
    *nblocks = nb;
    return FMT_OK;
}

size_t fmt_hint2_block_pos(const uint8_t *buf, size_t len, const fmt_hint_header *h, uint64_t b)
{
    uint64_t nb = (h->count - 1) / h->block + 1;
    return (size_t)fmt_get_u64(buf + index_start(len, nb) + b * 8u);
}

int fmt_hint2_block_walk(const uint8_t *buf, size_t len, const fmt_hint_header *h, uint64_t b,
                         fmt_hint_walk_fn fn, void *ctx)
{
    uint64_t nb = (h->count - 1) / h->block + 1;
    size_t ix = index_start(len, nb);
    size_t pos = fmt_hint2_block_pos(buf, len, h, b);
    size_t end = b + 1 < nb ? fmt_hint2_block_pos(buf, len, h, b + 1) : ix;
    uint64_t first = b * h->block;
    uint64_t n = h->count - first < h->block ? h->count - first : h->block;
    fmt_hint2_ctx c = {0, 0};
    for (uint64_t i = 0; i < n; i++) {
        fmt_hint_entry e;
        size_t used;
        int rc = fmt_hint2_entry_decode(buf + pos, end - pos, &e, &used, &c);
        if (rc != FMT_OK)
            return rc == FMT_ESHORT ? FMT_ECORRUPT : rc;
        if (e.offset < FMT_SEG_HEADER_LEN || (uint64_t)e.offset + e.total_len > h->covered)
            return FMT_ECORRUPT;
        if (fn && (rc = fn(ctx, h, first + i, &e, pos)) != 0)
            return rc;
        pos += used;
    }
    return pos == end ? FMT_OK : FMT_ECORRUPT;
}

/* ---- either version */

int fmt_hint_file_walk(const uint8_t *buf, size_t len, fmt_hint_header *out, fmt_hint_walk_fn fn,
                       void *ctx)
{
    fmt_hint_header h;
    int rc = fmt_hint_header_decode(buf, len, &h);
    if (rc != FMT_OK)
        return rc;
    if (h.version == 2) {
        uint64_t nb;
        if ((rc = fmt_hint2_file_open(buf, len, &h, &nb)) != FMT_OK)
            return rc;
        for (uint64_t b = 0; b < nb; b++)
            if ((rc = fmt_hint2_block_walk(buf, len, &h, b, fn, ctx)) != FMT_OK)
                return rc;
        *out = h;
        return FMT_OK;
    }
    if (len < FMT_HINT_HEADER_LEN + FMT_HINT_TRAILER_LEN)
        return FMT_ESHORT;
    size_t body_end = len - FMT_HINT_TRAILER_LEN;
    if (fmt_get_u64(buf + body_end) != fmt_hash64(buf, body_end))
        return FMT_ECORRUPT;
    if (h.covered < FMT_SEG_HEADER_LEN)
        return FMT_ECORRUPT;
    /* an entry takes at least 5 bytes (flags and four varints): a larger
     * count cannot be met, and FN may size buffers by it */
    if (h.count > (body_end - FMT_HINT_HEADER_LEN) / 5)
        return FMT_ECORRUPT;

    size_t pos = FMT_HINT_HEADER_LEN;
    for (uint64_t i = 0; i < h.count; i++) {
        fmt_hint_entry e;
        size_t used;
        rc = fmt_hint_entry_decode(buf + pos, body_end - pos, &e, &used);
        if (rc != FMT_OK)
            return rc == FMT_ESHORT ? FMT_ECORRUPT : rc; /* fewer entries than count */
        if (e.offset < FMT_SEG_HEADER_LEN || (uint64_t)e.offset + e.total_len > h.covered)
            return FMT_ECORRUPT;
        if (fn && (rc = fn(ctx, &h, i, &e, pos)) != 0)
            return rc;
        pos += used;
    }
    if (pos != body_end)
        return FMT_ECORRUPT; /* more bytes than count entries */
    *out = h;
    return FMT_OK;
}

int fmt_hint_file_verify(const uint8_t *buf, size_t len, fmt_hint_header *out)
{
    return fmt_hint_file_walk(buf, len, out, NULL, NULL);
}
