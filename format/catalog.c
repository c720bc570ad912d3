/*
 * catalog.c — the value of a keyspace catalogue record (catalog.h).
 *
 * A fixed 14-byte value with its own version byte, so that the catalogue can
 * grow fields without a new record format. The record around it carries the
 * checksum; this decoder only checks that the fields make sense: a known
 * version, a known state, a keyspace id other than the catalogue's own (0),
 * and a TTL that is not negative. "default" (1) is allowed: it gets a record
 * once its default TTL is set.
 */
#include "catalog.h"

#define CATALOG_VERSION 1u
#define CATALOG_KS_FIRST 1u /* "default" (1) has a record once its TTL is set */

void fmt_catalog_encode(uint8_t out[FMT_CATALOG_VALUE_LEN], const fmt_catalog_entry *e)
{
    out[0] = CATALOG_VERSION;
    out[1] = e->dropped ? 1 : 0;
    fmt_put_u32(out + 2, e->ks_id);
    fmt_put_u64(out + 6, (uint64_t)e->default_ttl_ms);
}

int fmt_catalog_decode(const uint8_t *buf, size_t len, fmt_catalog_entry *out)
{
    if (len < FMT_CATALOG_VALUE_LEN)
        return FMT_ESHORT;
    if (buf[0] > CATALOG_VERSION)
        return FMT_EVERSION;
    if (buf[0] == 0 || len != FMT_CATALOG_VALUE_LEN || buf[1] > 1)
        return FMT_ECORRUPT;
    uint32_t ks_id = fmt_get_u32(buf + 2);
    uint64_t ttl = fmt_get_u64(buf + 6);
    if (ks_id < CATALOG_KS_FIRST || ttl > (uint64_t)INT64_MAX)
        return FMT_ECORRUPT;
    out->dropped = buf[1] == 1;
    out->ks_id = ks_id;
    out->default_ttl_ms = (int64_t)ttl;
    return FMT_OK;
}
