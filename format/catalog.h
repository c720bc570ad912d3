/*
 * catalog.h — the value of a keyspace catalogue record (keyspace 0). The key
 * is the keyspace name; the newest record per name wins.
 *
 *   0  u8  version (1)
 *   1  u8  state: 0 live, 1 dropped
 *   2  u32 keyspace id (>= 1: 1 is "default", which has a record only once its
 *          default TTL is set; 0, the catalogue itself, never appears)
 *   6  i64 default TTL in ms (0 = none), two's complement
 * 14 bytes in all.
 */
#ifndef RC_FMT_CATALOG_H
#define RC_FMT_CATALOG_H

#include "fmt.h"
#include <stdbool.h>

#define FMT_CATALOG_VALUE_LEN 14u

typedef struct fmt_catalog_entry {
    bool dropped;
    uint32_t ks_id;
    int64_t default_ttl_ms;
} fmt_catalog_entry;

void fmt_catalog_encode(uint8_t out[FMT_CATALOG_VALUE_LEN], const fmt_catalog_entry *e);
int fmt_catalog_decode(const uint8_t *buf, size_t len, fmt_catalog_entry *out);

#endif
