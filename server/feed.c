/*
 * feed.c — the commit listener, the removal ring (see feed.h).
 */
#include "feed.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "park.h"

#define HEAD_BYTES 40u

typedef struct removal {
    uint64_t seq;
    uint64_t ks_hash, key_hash; /* key_hash: of the whole key */
    uint32_t klen;
    unsigned char head[HEAD_BYTES]; /* the key's first bytes */
} removal;

struct feed {
    kvd *srv;
    pthread_mutex_t mu;
    uint64_t floor; /* removals with seq <= floor may be missing */
    size_t next;    /* ring position of the next entry */
    removal ring[FEED_REMOVALS];
};

static uint64_t hash_bytes(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}

static void record_removal(feed *f, const char *ks, const void *key, size_t klen, uint64_t seq)
{
    removal r = {.seq = seq,
                 .ks_hash = hash_bytes(ks, strlen(ks)),
                 .key_hash = hash_bytes(key, klen),
                 .klen = (uint32_t)klen};
    memcpy(r.head, key, klen < HEAD_BYTES ? klen : HEAD_BYTES);
    pthread_mutex_lock(&f->mu);
    removal *slot = &f->ring[f->next];
    if (slot->seq > f->floor)
        f->floor = slot->seq; /* the ring forgets it */
    *slot = r;
    f->next = (f->next + 1) % FEED_REMOVALS;
    pthread_mutex_unlock(&f->mu);
}

bool feed_removed_since(feed *f, const char *ks, const void *key, size_t klen, bool prefix,
                        uint64_t since)
{
    if (f == NULL)
        return true;
    uint64_t ksh = hash_bytes(ks, strlen(ks)), kh = hash_bytes(key, klen);
    size_t cmp = klen < HEAD_BYTES ? klen : HEAD_BYTES;
    bool found = false;
    pthread_mutex_lock(&f->mu);
    if (since < f->floor) {
        found = true;
    } else {
        for (size_t i = 0; i < FEED_REMOVALS && !found; i++) {
            const removal *r = &f->ring[i];
            if (r->seq <= since || r->ks_hash != ksh)
                continue;
            if (prefix)
                found = r->klen >= klen && memcmp(r->head, key, cmp) == 0;
            else
                found = r->klen == klen && r->key_hash == kh;
        }
    }
    pthread_mutex_unlock(&f->mu);
    return found;
}

static void on_commit(void *ctx, const rc_commit *c)
{
    feed *f = ctx;
    park *p = f->srv->park;
    if (c->ops == NULL) {
        /* a loaded stream: anything may have changed, removals included */
        pthread_mutex_lock(&f->mu);
        if (c->last_seq > f->floor)
            f->floor = c->last_seq;
        pthread_mutex_unlock(&f->mu);
        park_notify(p, PARK_CH_DATA, NULL, NULL, 0, c->last_seq);
        return;
    }
    rc_keyspace *def = rc_default_keyspace(f->srv->db);
    for (size_t i = 0; i < c->n; i++) {
        const rc_op *op = &c->ops[i];
        if (op->seq == 0)
            continue;
        const char *ks = rc_keyspace_name(op->ks ? op->ks : def);
        if (ks == NULL)
            continue;
        /* kvd's own keyspace is never watched: its deletions (one per
         * deleted bucket) would only push clients' removals out */
        if (op->kind == RC_OP_DELETE && op->ks != f->srv->sys)
            record_removal(f, ks, op->key, op->klen, op->seq);
        park_notify(p, PARK_CH_DATA, ks, op->key, op->klen, op->seq);
    }
}

feed *feed_start(kvd *srv)
{
    feed *f = calloc(1, sizeof *f);
    if (f == NULL)
        return NULL;
    f->srv = srv;
    pthread_mutex_init(&f->mu, NULL);
    f->floor = rc_last_seq(srv->db);
    rc_set_commit_listener(srv->db, on_commit, f);
    return f;
}

void feed_stop(kvd *srv, feed *f)
{
    if (f == NULL)
        return;
    rc_set_commit_listener(srv->db, NULL, NULL);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

void feed_changed(kvd *srv, const char *ks, uint64_t seq)
{
    if (srv->feed != NULL) {
        pthread_mutex_lock(&srv->feed->mu);
        if (seq > srv->feed->floor)
            srv->feed->floor = seq;
        pthread_mutex_unlock(&srv->feed->mu);
    }
    park_notify(srv->park, PARK_CH_DATA, ks, NULL, 0, seq);
}
