/*
 * record.c — encode, decode, peek and resynchronise log records (record.h).
 *
 * A record is a 4-byte checksum followed by a header of a flags byte and
 * LEB128 integers, then the key and the value. Varints keep the common case
 * small (a 16-byte key / 100-byte value record with a small seq costs about
 * ten bytes of overhead) at the price of a parse instead of fixed offsets;
 * the parse is a handful of byte reads and is bounded by FMT_REC_HEADER_MAX.
 *
 * Decoding is strict: every field is range-checked before it is used, the
 * total length is computed with overflow checks, and only canonical encodings
 * are accepted (minimal varints, HAS_KS only for ks != 1, HAS_EXPIRY only for
 * a non-zero expiry). Canonical decoding means a decoded record re-encodes to
 * the same bytes, so there is exactly one valid image of every record.
 *
 * Resynchronisation is a plain forward scan trying a full decode at every
 * offset. It runs only over corrupt regions of immutable segments, where
 * simplicity beats speed, but its cost is not linear: every offset whose
 * header looks plausible and whose claimed length fits in the buffer costs a
 * hash over that length, so a large region of random bytes inside a large
 * segment can cost (offsets x claimed length). Zero-filled regions cost
 * nothing: offsets whose first seq byte is zero are skipped (seq >= 1 means
 * a real record never has one).
 */
#include "record.h"

/* Offset of the first seq byte: after the checksum and the flags. */
#define REC_SEQ_OFFSET 5u

uint8_t fmt_ident_flags(uint8_t flags, const fmt_ident *id)
{
    flags &= (uint8_t) ~(FMT_REC_HAS_KS | FMT_REC_HAS_EXPIRY);
    if (id->ks != FMT_KS_DEFAULT)
        flags |= FMT_REC_HAS_KS;
    if (id->expires_at_ms != 0)
        flags |= FMT_REC_HAS_EXPIRY;
    return flags;
}

size_t fmt_ident_size(uint8_t flags, const fmt_ident *id)
{
    size_t n = fmt_varint_len(id->seq) + fmt_varint_len(id->klen);
    if (flags & FMT_REC_HAS_KS)
        n += fmt_varint_len(id->ks);
    if (flags & FMT_REC_HAS_EXPIRY)
        n += fmt_varint_len(id->expires_at_ms);
    return n;
}

size_t fmt_ident_put(uint8_t *p, uint8_t flags, const fmt_ident *id)
{
    size_t pos = fmt_put_varint(p, id->seq);
    if (flags & FMT_REC_HAS_KS)
        pos += fmt_put_varint(p + pos, id->ks);
    if (flags & FMT_REC_HAS_EXPIRY)
        pos += fmt_put_varint(p + pos, id->expires_at_ms);
    pos += fmt_put_varint(p + pos, id->klen);
    return pos;
}

int fmt_ident_get(const uint8_t *buf, size_t avail, size_t *pos, uint8_t flags, fmt_ident *out)
{
    uint64_t seq, ks = FMT_KS_DEFAULT, expires = 0, klen;
    int rc;
    if ((rc = fmt_read_varint(buf, avail, pos, &seq)) != FMT_OK)
        return rc;
    if (seq == 0)
        return FMT_ECORRUPT;
    if (flags & FMT_REC_HAS_KS) {
        if ((rc = fmt_read_varint(buf, avail, pos, &ks)) != FMT_OK)
            return rc;
        if (ks > FMT_KS_MAX)
            return FMT_ELIMIT;
        if (ks == FMT_KS_DEFAULT)
            return FMT_ECORRUPT; /* non-canonical: default is implied */
    }
    if (flags & FMT_REC_HAS_EXPIRY) {
        if ((rc = fmt_read_varint(buf, avail, pos, &expires)) != FMT_OK)
            return rc;
        if (expires == 0)
            return FMT_ECORRUPT; /* non-canonical: 0 means no flag */
    }
    if ((rc = fmt_read_varint(buf, avail, pos, &klen)) != FMT_OK)
        return rc;
    if (klen == 0)
        return FMT_ECORRUPT;
    if (klen > FMT_KEY_MAX)
        return FMT_ELIMIT;
    out->seq = seq;
    out->ks = (uint32_t)ks;
    out->expires_at_ms = expires;
    out->klen = (uint32_t)klen;
    return FMT_OK;
}

static fmt_ident record_ident(const fmt_record *r)
{
    fmt_ident id = {.seq = r->seq, .ks = r->ks, .expires_at_ms = r->expires_at_ms, .klen = r->klen};
    return id;
}

static uint8_t record_wire_flags(const fmt_record *r)
{
    fmt_ident id = record_ident(r);
    return fmt_ident_flags(r->flags, &id);
}

static size_t record_header_size(const fmt_record *r, uint8_t flags)
{
    fmt_ident id = record_ident(r);
    return REC_SEQ_OFFSET + fmt_ident_size(flags, &id) + fmt_varint_len(r->vlen);
}

size_t fmt_record_size(const fmt_record *r)
{
    return record_header_size(r, record_wire_flags(r)) + (size_t)r->klen + (size_t)r->vlen;
}

size_t fmt_record_encode(uint8_t *buf, size_t cap, const fmt_record *r)
{
    uint8_t flags = record_wire_flags(r);
    if (r->klen == 0 || r->klen > FMT_KEY_MAX || r->vlen > FMT_VALUE_MAX || r->seq == 0)
        return 0;
    if ((flags & FMT_REC_TOMBSTONE) && r->vlen != 0)
        return 0;
    if ((flags & FMT_REC_BATCH) && (flags & FMT_REC_BATCH_END))
        return 0;
    size_t total = record_header_size(r, flags) + r->klen + r->vlen;
    if (cap < total)
        return 0;

    size_t pos = 4;
    buf[pos++] = flags;
    fmt_ident id = record_ident(r);
    pos += fmt_ident_put(buf + pos, flags, &id);
    pos += fmt_put_varint(buf + pos, r->vlen);
    memcpy(buf + pos, r->key, r->klen);
    pos += r->klen;
    if (r->vlen)
        memcpy(buf + pos, r->val, r->vlen);
    pos += r->vlen;
    fmt_put_u32(buf, fmt_hash32(buf + 4, pos - 4));
    return pos;
}

int fmt_record_peek(const uint8_t *buf, size_t avail, fmt_record *out)
{
    uint64_t vlen;
    fmt_ident id;
    size_t pos = REC_SEQ_OFFSET;
    int rc;

    if (avail < REC_SEQ_OFFSET)
        return FMT_ESHORT;
    uint8_t flags = buf[4];
    if ((flags & FMT_REC_BATCH) && (flags & FMT_REC_BATCH_END))
        return FMT_ECORRUPT;

    if ((rc = fmt_ident_get(buf, avail, &pos, flags, &id)) != FMT_OK)
        return rc;
    uint64_t klen = id.klen;
    if ((rc = fmt_read_varint(buf, avail, &pos, &vlen)) != FMT_OK)
        return rc;
    if (vlen > FMT_VALUE_MAX)
        return FMT_ELIMIT;
    if ((flags & FMT_REC_TOMBSTONE) && vlen != 0)
        return FMT_ECORRUPT;

    /* pos <= FMT_REC_HEADER_MAX and both lengths are bounded, but check the
     * sum anyway so that a change of limits cannot make it wrap. */
    uint64_t total = (uint64_t)pos + klen;
    if (total < klen || total + vlen < total || total + vlen > UINT32_MAX)
        return FMT_ELIMIT;
    total += vlen;

    out->flags = flags;
    out->seq = id.seq;
    out->ks = id.ks;
    out->expires_at_ms = id.expires_at_ms;
    out->klen = id.klen;
    out->vlen = (uint32_t)vlen;
    out->total_len = (uint32_t)total;
    if (total <= avail) {
        out->key = buf + pos;
        out->val = buf + pos + klen;
    } else {
        out->key = NULL;
        out->val = NULL;
    }
    return FMT_OK;
}

int fmt_record_decode(const uint8_t *buf, size_t avail, fmt_record *out)
{
    fmt_record r;
    int rc = fmt_record_peek(buf, avail, &r);
    if (rc != FMT_OK)
        return rc;
    if (r.total_len > avail)
        return FMT_ESHORT;
    if (fmt_get_u32(buf) != fmt_hash32(buf + 4, r.total_len - 4))
        return FMT_ECORRUPT;
    *out = r;
    return FMT_OK;
}

size_t fmt_record_resync(const uint8_t *buf, size_t avail, size_t from)
{
    if (from >= avail)
        return avail;
    for (size_t off = from + 1; avail - off >= FMT_REC_MIN; off++) {
        if (buf[off + REC_SEQ_OFFSET] == 0)
            continue; /* seq >= 1: its first byte is never zero */
        fmt_record r;
        if (fmt_record_decode(buf + off, avail - off, &r) == FMT_OK)
            return off;
    }
    return avail;
}
