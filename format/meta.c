/*
 * meta.c — MERGING, HORIZON, LOADING and IDENTITY files (see meta.h). Every length is checked
 * against the buffer before use; the checksum covers every byte before it.
 */
#include "meta.h"

#include <stdbool.h>
#include <stdlib.h>

static void put_head(uint8_t *out, uint32_t magic)
{
    fmt_put_u32(out, magic);
    fmt_put_u16(out + 4, FMT_META_VERSION);
    fmt_put_u16(out + 6, 0);
}

static int check_head(const uint8_t *buf, size_t len, uint32_t magic, size_t min)
{
    if (len < min)
        return FMT_ESHORT;
    if (fmt_get_u32(buf) != magic)
        return FMT_ECORRUPT;
    if (fmt_get_u16(buf + 4) != FMT_META_VERSION)
        return fmt_get_u16(buf + 4) > FMT_META_VERSION ? FMT_EVERSION : FMT_ECORRUPT;
    if (fmt_get_u16(buf + 6) != 0)
        return FMT_ECORRUPT;
    return FMT_OK;
}

void fmt_merging_encode(uint8_t *out, const uint64_t *ids, uint32_t count)
{
    put_head(out, FMT_MERGING_MAGIC);
    fmt_put_u32(out + 8, count);
    for (uint32_t i = 0; i < count; i++)
        fmt_put_u64(out + 12 + 8 * (size_t)i, ids[i]);
    size_t body = 12 + 8 * (size_t)count;
    fmt_put_u64(out + body, fmt_hash64(out, body));
}

int fmt_merging_decode(const uint8_t *buf, size_t len, uint64_t **ids, uint32_t *count)
{
    int rc = check_head(buf, len, FMT_MERGING_MAGIC, 12 + 8);
    if (rc != FMT_OK)
        return rc;
    uint32_t n = fmt_get_u32(buf + 8);
    if (n == 0 || n > FMT_MERGING_MAX)
        return FMT_ELIMIT;
    size_t need = fmt_merging_len(n);
    if (len < need)
        return FMT_ESHORT;
    if (len > need)
        return FMT_ECORRUPT;
    size_t body = need - 8;
    if (fmt_get_u64(buf + body) != fmt_hash64(buf, body))
        return FMT_ECORRUPT;
    uint64_t *v = malloc(n * sizeof(*v));
    if (!v)
        return FMT_ELIMIT;
    for (uint32_t i = 0; i < n; i++)
        v[i] = fmt_get_u64(buf + 12 + 8 * (size_t)i);
    *ids = v;
    *count = n;
    return FMT_OK;
}

void fmt_horizon_encode(uint8_t out[FMT_HORIZON_LEN], uint64_t horizon)
{
    put_head(out, FMT_HORIZON_MAGIC);
    fmt_put_u64(out + 8, horizon);
    fmt_put_u64(out + 16, fmt_hash64(out, 16));
}

int fmt_horizon_decode(const uint8_t *buf, size_t len, uint64_t *horizon)
{
    int rc = check_head(buf, len, FMT_HORIZON_MAGIC, FMT_HORIZON_LEN);
    if (rc != FMT_OK)
        return rc;
    if (len != FMT_HORIZON_LEN)
        return FMT_ECORRUPT;
    if (fmt_get_u64(buf + 16) != fmt_hash64(buf, 16))
        return FMT_ECORRUPT;
    *horizon = fmt_get_u64(buf + 8);
    return FMT_OK;
}

void fmt_loading_encode(uint8_t out[FMT_LOADING_LEN], uint64_t first, uint32_t count)
{
    put_head(out, FMT_LOADING_MAGIC);
    fmt_put_u64(out + 8, first);
    fmt_put_u32(out + 16, count);
    fmt_put_u32(out + 20, 0);
    fmt_put_u64(out + 24, fmt_hash64(out, 24));
}

int fmt_loading_decode(const uint8_t *buf, size_t len, uint64_t *first, uint32_t *count)
{
    int rc = check_head(buf, len, FMT_LOADING_MAGIC, FMT_LOADING_LEN);
    if (rc != FMT_OK)
        return rc;
    if (len != FMT_LOADING_LEN || fmt_get_u32(buf + 20) != 0)
        return FMT_ECORRUPT;
    if (fmt_get_u64(buf + 24) != fmt_hash64(buf, 24))
        return FMT_ECORRUPT;
    uint64_t f = fmt_get_u64(buf + 8);
    uint32_t n = fmt_get_u32(buf + 16);
    if (f == 0 || f > FMT_SEGMENT_ID_MAX || n == 0 || n > FMT_LOADING_MAX ||
        n - 1 > FMT_SEGMENT_ID_MAX - f)
        return FMT_ELIMIT;
    *first = f;
    *count = n;
    return FMT_OK;
}

void fmt_identity_encode(uint8_t out[FMT_IDENTITY_LEN], const fmt_identity *id)
{
    put_head(out, FMT_IDENTITY_MAGIC);
    fmt_put_u16(out + 6, id->flags);
    memcpy(out + 8, id->id, 16);
    memcpy(out + 24, id->parent, 16);
    fmt_put_u64(out + 40, id->forked_at);
    fmt_put_u64(out + 48, fmt_hash64(out, 48));
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

int fmt_identity_decode(const uint8_t *buf, size_t len, fmt_identity *out)
{
    if (len < 8)
        return FMT_ESHORT;
    if (fmt_get_u32(buf) != FMT_IDENTITY_MAGIC)
        return FMT_ECORRUPT;
    uint16_t version = fmt_get_u16(buf + 4);
    if (version != FMT_META_VERSION)
        return version > FMT_META_VERSION ? FMT_EVERSION : FMT_ECORRUPT;
    if (len < FMT_IDENTITY_LEN)
        return FMT_ESHORT;
    if (len != FMT_IDENTITY_LEN || fmt_get_u64(buf + 48) != fmt_hash64(buf, 48))
        return FMT_ECORRUPT;
    fmt_identity id;
    id.flags = fmt_get_u16(buf + 6);
    memcpy(id.id, buf + 8, 16);
    memcpy(id.parent, buf + 24, 16);
    id.forked_at = fmt_get_u64(buf + 40);
    if (id.flags & ~(FMT_IDENTITY_REPLICA | FMT_IDENTITY_FORKED) ||
        id.flags == (FMT_IDENTITY_REPLICA | FMT_IDENTITY_FORKED) || all_zero(id.id, 16))
        return FMT_ECORRUPT;
    if (!(id.flags & FMT_IDENTITY_FORKED) && (!all_zero(id.parent, 16) || id.forked_at != 0))
        return FMT_ECORRUPT;
    if ((id.flags & FMT_IDENTITY_FORKED) && all_zero(id.parent, 16))
        return FMT_ECORRUPT;
    *out = id;
    return FMT_OK;
}
