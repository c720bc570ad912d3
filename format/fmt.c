/*
 * fmt.c — the shared pieces of the format layer: error names, the LEB128
 * decoder and the checksum.
 *
 * The varint decoder is strict on purpose: besides rejecting encodings longer
 * than ten bytes or carrying bits beyond 64, it rejects non-minimal encodings
 * (a final byte of zero after a continuation byte, e.g. 0x80 0x00 for 0).
 * fmt_put_varint never produces them, so no valid file contains one, and
 * refusing them makes every decodable record have exactly one encoding: a
 * decoded record re-encodes byte for byte, which the fuzzers check.
 *
 * The checksum is XXH3-64 (libxxhash): fast enough that checking every record
 * on every read costs little next to the copy, and good at catching torn and
 * flipped bytes. It is not a MAC: it detects accidents, not forgeries.
 */
#include "fmt.h"

#include <xxhash.h>

const char *fmt_strerror(int code)
{
    switch (code) {
    case FMT_OK:
        return "ok";
    case FMT_ESHORT:
        return "truncated input";
    case FMT_ECORRUPT:
        return "corrupt data";
    case FMT_EVERSION:
        return "unsupported format version";
    case FMT_ELIMIT:
        return "length beyond limit";
    case FMT_ESPACE:
        return "output buffer too small";
    default:
        return "unknown format error";
    }
}

int fmt_get_varint_long(const uint8_t *p, size_t avail, uint64_t *v)
{
    uint64_t result = 0;
    for (size_t i = 0; i < FMT_VARINT_MAX; i++) {
        if (i >= avail)
            return 0;
        uint8_t byte = p[i];
        /* The tenth byte holds only bit 63: anything above overflows. */
        if (i == FMT_VARINT_MAX - 1 && byte > 1)
            return -1;
        result |= (uint64_t)(byte & 0x7F) << (7 * i);
        if (!(byte & 0x80)) {
            if (byte == 0 && i > 0)
                return -1; /* non-minimal: a redundant zero group */
            *v = result;
            return (int)(i + 1);
        }
    }
    return -1; /* ten bytes, all with the continuation bit */
}

uint64_t fmt_hash64(const void *buf, size_t len)
{
    return (uint64_t)XXH3_64bits(buf, len);
}
