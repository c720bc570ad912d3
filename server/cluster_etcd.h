/*
 * cluster_etcd.h — a small client of etcd's v3 HTTP/JSON gateway (etcd 3.4:
 * /v3/lease/grant, /v3/lease/keepalive, /v3/lease/revoke, /v3/kv/range,
 * /v3/kv/put, /v3/kv/txn), over libcurl and Jansson. Keys and values travel
 * base64-encoded (libsodium); 64-bit numbers arrive as JSON strings.
 *
 * One handle belongs to one thread (it holds a curl easy handle); the
 * cluster module gives each of its threads its own. Every call is bounded by
 * the handle's timeout; with several URLs a call that cannot reach one tries
 * the next, and the handle remembers the one that answered.
 *
 * Nothing here decides anything: leadership, leases and fencing are etcd's.
 */
#ifndef KVD_CLUSTER_ETCD_H
#define KVD_CLUSTER_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ETCD_OK 0
#define ETCD_EUNREACH (-1) /* no URL answered within the timeout */
#define ETCD_EPROTO (-2)   /* an answer that is not what the gateway sends */
#define ETCD_ENOMEM (-3)

typedef struct etcd etcd;

/* One key as etcd holds it. KEY and VALUE are NUL-terminated copies owned by
 * the etcd_kv (etcd_kv_clear / etcd_kvs_free release them). */
typedef struct etcd_kv {
    char *key;
    char *value;
    size_t vlen;
    int64_t create_rev;
    int64_t mod_rev;
    int64_t lease;
} etcd_kv;

/* URLS: comma-separated base URLs (http://host:port). TIMEOUT_MS bounds each
 * call per URL tried. NULL on a malformed list or no memory. Free with
 * etcd_free. */
etcd *etcd_new(const char *urls, unsigned timeout_ms);
void etcd_free(etcd *e);
/* Check a URL list the way etcd_new parses it: 0, or -1 with WHY filled. */
int etcd_urls_check(const char *urls, char *why, size_t cap);
/* The last failure, for a log line ("connect to http://...: refused"). */
const char *etcd_last_error(const etcd *e);

/* A lease of TTL_S seconds: *ID, *GRANTED (etcd may round the TTL). */
int etcd_lease_grant(etcd *e, unsigned ttl_s, int64_t *id, unsigned *granted);
/* Renew lease ID once: *TTL_LEFT is its new TTL, 0 when the lease is gone
 * (expired or revoked) — it cannot come back. */
int etcd_lease_keepalive(etcd *e, int64_t id, unsigned *ttl_left);
int etcd_lease_revoke(etcd *e, int64_t id);

/* KEY's current value: *FOUND false when absent (OUT untouched). */
int etcd_get(etcd *e, const char *key, etcd_kv *out, bool *found);
/* Every key starting with PREFIX, in key order: *OUT (free with
 * etcd_kvs_free), *N. */
int etcd_get_prefix(etcd *e, const char *prefix, etcd_kv **out, size_t *n);
void etcd_kv_clear(etcd_kv *kv);
void etcd_kvs_free(etcd_kv *kvs, size_t n);

/* Put KEY = VALUE, bound to LEASE when not 0. */
int etcd_put(etcd *e, const char *key, const char *value, int64_t lease);
/* Put KEY = VALUE on LEASE only if KEY does not exist (a txn comparing its
 * create revision with 0): *CREATED, and *REV = the revision of the put
 * (KEY's create revision) when created. */
int etcd_create(etcd *e, const char *key, const char *value, int64_t lease, bool *created,
                int64_t *rev);
/* Put KEY = VALUE (LEASE when not 0) only if GUARD exists with create
 * revision GUARD_REV: how a leader writes only while it is still the leader
 * of that epoch. *DONE tells. */
int etcd_put_guarded(etcd *e, const char *guard, int64_t guard_rev, const char *key,
                     const char *value, int64_t lease, bool *done);
/* Delete KEY only if its create revision is REV (a leader stepping down). */
int etcd_delete_guarded(etcd *e, const char *key, int64_t rev, bool *done);

/* Watch every key under PREFIX (POST /v3/watch, a stream that stays open):
 * ON_CHANGE(UD) is called once when the watch is in place and again for
 * every message etcd sends after that (events: a put or delete under
 * PREFIX); it is a wake-up, the caller reads what it needs. Returns after
 * LIFETIME_MS (ETCD_OK), when STOP(UD) says so (checked about once a
 * second, ETCD_OK), or when the stream fails or cannot be opened
 * (ETCD_EUNREACH / ETCD_EPROTO). Bounding the lifetime bounds how long a
 * stream that went silent without an error (a black-holed connection) can
 * hide changes: the caller re-reads after each return. */
int etcd_watch(etcd *e, const char *prefix, unsigned lifetime_ms, void (*on_change)(void *ud),
               bool (*stop)(void *ud), void *ud);

#endif
