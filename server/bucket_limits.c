/*
 * bucket_limits.c — admission of bucket creations (bucket_limits.h).
 *
 * The per-address rate is a fixed one-minute window per client address in
 * a table of BL_SLOTS entries under one mutex (creations are rare): an
 * address hashes to one slot, and a different address arriving in that slot
 * takes it over with a fresh window. The total is counted from the policy
 * records ("bucket/" keys of the system keyspace), at most --max-buckets + 1
 * of them, each time: creations are rare and rate-limited.
 */
#include "bucket_limits.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "auth.h"

#define BL_SLOTS 4096u
#define BL_WINDOW_MS 60000

typedef struct bl_entry {
    unsigned char addr[16];
    int64_t window_start;
    unsigned count;
    bool used;
} bl_entry;

struct bucket_limiter {
    pthread_mutex_t mu;
    bl_entry slots[BL_SLOTS];
};

int bucket_limits_init(kvd *srv)
{
    struct bucket_limiter *b = calloc(1, sizeof *b);
    if (b == NULL)
        return RC_ENOMEM;
    pthread_mutex_init(&b->mu, NULL);
    srv->bucket_limiter = b;
    return 0;
}

void bucket_limits_free(kvd *srv)
{
    if (srv->bucket_limiter == NULL)
        return;
    pthread_mutex_destroy(&srv->bucket_limiter->mu);
    free(srv->bucket_limiter);
    srv->bucket_limiter = NULL;
}

/* The client's address as 16 bytes (IPv4 mapped into IPv6). */
static void client_addr(kvd_request *req, unsigned char out[16])
{
    memset(out, 0, 16);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci == NULL || ci->client_addr == NULL)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &in->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    }
}

/* Count one creation for REQ's address: false when its window is full. */
static bool rate_take(kvd *srv, kvd_request *req, int64_t *retry_s)
{
    unsigned char a[16];
    client_addr(req, a);
    uint32_t h = 2166136261u;
    for (int i = 0; i < 16; i++)
        h = (h ^ a[i]) * 16777619u;
    int64_t now = kvd_mono_ns() / 1000000;
    struct bucket_limiter *b = srv->bucket_limiter;
    bool ok = true;
    pthread_mutex_lock(&b->mu);
    bl_entry *e = &b->slots[h % BL_SLOTS];
    if (!e->used || memcmp(e->addr, a, 16) != 0 || now - e->window_start >= BL_WINDOW_MS) {
        memcpy(e->addr, a, 16);
        e->used = true;
        e->window_start = now;
        e->count = 0;
    }
    if (e->count >= srv->cfg.bucket_create_per_min) {
        ok = false;
        *retry_s = (BL_WINDOW_MS - (now - e->window_start)) / 1000 + 1;
    } else {
        e->count++;
    }
    pthread_mutex_unlock(&b->mu);
    return ok;
}

bool bucket_create_admitted(kvd_request *req)
{
    kvd *srv = req->srv;
    if (srv->admin_token != NULL) {
        if (auth_is_server_admin(req, false))
            return true; /* the operator: no rate */
        http_error(req, 401, "unauthorized", "creating buckets needs the server's admin token");
        return false;
    }
    if (!srv->cfg.allow_anonymous_buckets) {
        http_error(req, 403, "forbidden",
                   "creating buckets without credentials is off: start kvd with "
                   "--allow-anonymous-buckets to allow it, or with --admin-token-file and "
                   "send that token");
        return false;
    }
    int64_t retry = 60;
    if (srv->cfg.bucket_create_per_min != 0 && !rate_take(srv, req, &retry)) {
        char msg[256], ra[24];
        snprintf(msg, sizeof msg,
                 "this address created %u buckets in the last minute "
                 "(--bucket-create-rate %u): retry later",
                 srv->cfg.bucket_create_per_min, srv->cfg.bucket_create_per_min);
        snprintf(ra, sizeof ra, "%lld", (long long)retry);
        struct MHD_Response *r = http_json_response(http_error_json("rate_limited", -1, msg));
        if (r != NULL)
            MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, ra);
        http_send(req, 429, r);
        return false;
    }
    return true;
}

bool bucket_cap_ok(kvd_request *req)
{
    kvd *srv = req->srv;
    if (srv->cfg.max_buckets == 0)
        return true;
    rc_list_opts o = {.prefix = "bucket/", .prefix_len = 7, .limit = srv->cfg.max_buckets + 1};
    rc_list *l = NULL;
    int rc = rc_list_keys(srv->db, srv->sys, &o, &l);
    if (rc != 0) {
        http_engine_error(req, rc, -1);
        return false;
    }
    size_t n = l->count;
    rc_list_free(l);
    if (n >= srv->cfg.max_buckets) {
        http_error(req, 403, "too_many_buckets",
                   "kvd holds %zu buckets, its limit (--max-buckets %llu): delete some first", n,
                   (unsigned long long)srv->cfg.max_buckets);
        return false;
    }
    return true;
}
