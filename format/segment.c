/*
 * segment.c — the fixed 40-byte header of a segment file (segment.h).
 *
 * Fixed-width little-endian fields, because the header is read once per file
 * and a fixed layout is easier to inspect with a hex dump than varints. The
 * magic and the version come first and never move, so that a reader can tell
 * "not ours" (FMT_ECORRUPT) from "ours but newer" (FMT_EVERSION) before it
 * relies on anything else; the checksum is checked after the version for the
 * same reason (a newer version may place it elsewhere).
 */
#include "segment.h"

void fmt_segment_header_encode(uint8_t out[FMT_SEG_HEADER_LEN], const fmt_segment_header *h)
{
    fmt_put_u32(out + 0, FMT_SEG_MAGIC);
    fmt_put_u16(out + 4, FMT_SEG_VERSION);
    fmt_put_u16(out + 6, 0);
    fmt_put_u64(out + 8, h->segment_id);
    fmt_put_u64(out + 16, h->db_id);
    fmt_put_u64(out + 24, h->created_ms);
    fmt_put_u32(out + 32, 0);
    fmt_put_u32(out + 36, fmt_hash32(out, 36));
}

int fmt_segment_header_decode(const uint8_t *buf, size_t avail, fmt_segment_header *out)
{
    if (avail < FMT_SEG_HEADER_LEN)
        return FMT_ESHORT;
    if (fmt_get_u32(buf) != FMT_SEG_MAGIC)
        return FMT_ECORRUPT;
    uint16_t version = fmt_get_u16(buf + 4);
    if (version > FMT_SEG_VERSION)
        return FMT_EVERSION;
    if (version == 0)
        return FMT_ECORRUPT;
    if (fmt_get_u32(buf + 36) != fmt_hash32(buf, 36))
        return FMT_ECORRUPT;
    if (fmt_get_u16(buf + 6) != 0 || fmt_get_u32(buf + 32) != 0)
        return FMT_ECORRUPT; /* unknown flags or reserved bits */
    out->segment_id = fmt_get_u64(buf + 8);
    out->db_id = fmt_get_u64(buf + 16);
    out->created_ms = fmt_get_u64(buf + 24);
    return FMT_OK;
}
