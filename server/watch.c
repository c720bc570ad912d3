/*
 * watch.c — key and listing waits (see watch.h and park.h).
 *
 * One step runs when the request arrives and again each time it is
 * resumed: look at the key (or the keys under the prefix); answer when it
 * changed after SEQ, when the timeout passed or kvd is stopping; else park
 * until a change of that key (prefix), the timeout, or the earliest expiry
 * among what was seen. A change that lands between the look and the
 * registration is caught by the park generation (park_generation).
 *
 * "Changed after SEQ": present with a seq > SEQ; or absent while it was
 * present at an earlier check of this wait (deleted or expired meanwhile);
 * or absent with a deletion after SEQ in the feed's removal ring (or SEQ
 * below the ring's floor, when kvd cannot tell: feed.h). For a listing: any
 * key under P with a seq > SEQ, fewer keys than at the previous check, or a
 * removal under P after SEQ.
 */
#include "watch.h"

#include <stdio.h>
#include <string.h>

#include "feed.h"
#include "park.h"
#include "routes.h"
#include "valuetype.h"

bool watch_parse_duration(const char *s, size_t len, uint64_t *ms)
{
    uint64_t n = 0;
    size_t i = 0;
    if (len == 0)
        return false;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        if (n > (UINT64_MAX - 9) / 10)
            return false;
        n = n * 10 + (uint64_t)(s[i] - '0');
    }
    if (i == 0)
        return false;
    uint64_t unit = 1000;
    size_t rest = len - i;
    if (rest == 2 && memcmp(s + i, "ms", 2) == 0)
        unit = 1;
    else if (rest == 1 && s[i] == 's')
        unit = 1000;
    else if (rest == 1 && s[i] == 'm')
        unit = 60000;
    else if (rest != 0)
        return false;
    if (n > UINT64_MAX / unit)
        return false;
    *ms = n * unit;
    return true;
}

/* Parse ?wait=SEQ and ?timeout=: 1 no wait, 0 parsed, -1 answered 400. */
static int parse_wait(kvd_request *req)
{
    char buf[32];
    size_t n = 0;
    int q = http_query(req, "wait", buf, sizeof buf, &n);
    char tbuf[32];
    size_t tn = 0;
    int tq = http_query(req, "timeout", tbuf, sizeof tbuf, &tn);
    if (q == 1) {
        if (tq != 1) {
            http_error(req, 400, "bad_request", "timeout needs wait=SEQ");
            return -1;
        }
        return 1;
    }
    int64_t seq = 0;
    if (q != 0 || n == 0 || buf[0] == '-' || !parse_int64(buf, n, &seq) || seq < 0) {
        http_error(req, 400, "bad_request", "wait must be a sequence number >= 0");
        return -1;
    }
    uint64_t ms = WATCH_TIMEOUT_DEFAULT_MS;
    if (tq != 1 &&
        (tq != 0 || !watch_parse_duration(tbuf, tn, &ms) || ms == 0 || ms > WATCH_TIMEOUT_MAX_MS)) {
        http_error(req, 400, "bad_request",
                   "timeout must be a duration of 1ms .. 10m (such as 500ms, 30s, 10m; a bare "
                   "number is seconds)");
        return -1;
    }
    req->wait_seq = (uint64_t)seq;
    req->wait_deadline_ns = kvd_mono_ns() + ms * 1000000u;
    return 0;
}

/* Park REQ on TOPIC until DEADLINE (or answer it when that is refused). */
static void park_or_answer(kvd_request *req, const park_topic *t, uint64_t deadline,
                           park_resume_fn step, uint64_t gen)
{
    park *p = req->srv->park;
    int rc = park_request(p, req, t, deadline, step, req->wait_parked);
    if (rc == PARK_FULL) {
        struct MHD_Response *r = http_json_response(http_error_json(
            "too_many_waiters", -1, "too many requests are waiting (--max-waiters); retry"));
        if (r != NULL)
            MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
        http_send(req, 503, r);
        return;
    }
    if (rc != PARK_OK) {
        req->wait_answer(req); /* no parking here, or stopping: the current state */
        return;
    }
    req->wait_parked = true;
    if (park_generation(p, PARK_CH_DATA) != gen)
        park_wake(p, req); /* something changed since the look: look again */
}

/* The deadline for an expiry at EXPIRES_AT_MS (wall clock), or D. */
static uint64_t expiry_deadline(int64_t expires_at_ms, uint64_t d)
{
    if (expires_at_ms <= 0)
        return d;
    int64_t left = expires_at_ms - kvd_now_ms() + 2; /* past the engine's check */
    uint64_t e = kvd_mono_ns() + (uint64_t)(left > 0 ? left : 0) * 1000000u;
    return e < d ? e : d;
}

static bool should_answer(kvd_request *req, park_why why)
{
    return why == PARK_SHUTDOWN || atomic_load(&req->srv->shutting_down) ||
           kvd_mono_ns() >= req->wait_deadline_ns;
}

static void key_step(kvd_request *req, park_why why)
{
    kvd *srv = req->srv;
    if (should_answer(req, why)) {
        req->wait_answer(req);
        return;
    }
    uint64_t gen = park_generation(srv->park, PARK_CH_DATA);
    const char *ks = rc_keyspace_name(req->pol.ks);
    rc_value m = {0};
    int rc = rc_get_meta(srv->db, req->pol.ks, req->key, req->klen, &m);
    uint64_t deadline = req->wait_deadline_ns;
    bool changed;
    if (rc == 0) {
        changed = m.seq > req->wait_seq;
        req->wait_saw = true;
        deadline = expiry_deadline(m.expires_at_ms, deadline);
    } else if (rc == RC_ENOTFOUND) {
        changed = req->wait_saw || ks == NULL ||
                  feed_removed_since(srv->feed, ks, req->key, req->klen, false, req->wait_seq);
    } else {
        changed = true; /* the plain GET reports the error */
    }
    if (changed) {
        req->wait_answer(req);
        return;
    }
    park_topic t = {.channel = PARK_CH_DATA,
                    .after = req->wait_seq,
                    .ks = ks,
                    .key = req->key,
                    .klen = req->klen};
    park_or_answer(req, &t, deadline, key_step, gen);
}

bool watch_key(kvd_request *req, void (*answer)(kvd_request *req))
{
    int w = parse_wait(req);
    if (w == 1)
        return false;
    if (w == 0) {
        req->wait_answer = answer;
        key_step(req, PARK_WOKEN);
    }
    return true;
}

/* The listing's prefix narrowed by the credential's (route_list's rule).
 * False when they diverge (an empty listing: nothing to wait for). */
static bool wait_prefix(kvd_request *req, char *prefix, size_t *len)
{
    int q = http_query(req, "prefix", prefix, RC_KEY_MAX + 1, len);
    if (q == 1)
        *len = 0;
    else if (q != 0)
        return false;
    return list_effective_prefix(&req->scope, prefix, len);
}

static void list_step(kvd_request *req, park_why why)
{
    kvd *srv = req->srv;
    char prefix[RC_KEY_MAX + 1];
    size_t plen = 0;
    if (should_answer(req, why) || !wait_prefix(req, prefix, &plen)) {
        req->wait_answer(req);
        return;
    }
    uint64_t gen = park_generation(srv->park, PARK_CH_DATA);
    const char *ks = rc_keyspace_name(req->pol.ks);
    rc_list_opts o = {.prefix = plen ? prefix : NULL, .prefix_len = plen, .limit = WATCH_KEYS_MAX};
    rc_list *l = NULL;
    int rc = ks ? rc_list_keys(srv->db, req->pol.ks, &o, &l) : RC_ENOKEYSPACE;
    if (rc != 0) {
        req->wait_answer(req); /* the listing reports the error */
        return;
    }
    if (l->more) {
        rc_list_free(l);
        http_error(req, 400, "bad_request",
                   "wait watches at most %u keys and the prefix has more: narrow the prefix",
                   WATCH_KEYS_MAX);
        return;
    }
    uint64_t deadline = req->wait_deadline_ns;
    bool changed = req->wait_saw && l->count < req->wait_count;
    for (size_t i = 0; i < l->count && !changed; i++) {
        changed = l->items[i].value.seq > req->wait_seq;
        deadline = expiry_deadline(l->items[i].value.expires_at_ms, deadline);
    }
    req->wait_saw = true;
    req->wait_count = l->count;
    rc_list_free(l);
    if (!changed)
        changed = feed_removed_since(srv->feed, ks, prefix, plen, true, req->wait_seq);
    if (changed) {
        req->wait_answer(req);
        return;
    }
    park_topic t = {.channel = PARK_CH_DATA,
                    .after = req->wait_seq,
                    .ks = ks,
                    .key = prefix,
                    .klen = plen,
                    .prefix = true};
    park_or_answer(req, &t, deadline, list_step, gen);
}

bool watch_list(kvd_request *req, void (*answer)(kvd_request *req))
{
    int w = parse_wait(req);
    if (w == 1)
        return false;
    if (w == 0) {
        req->wait_answer = answer;
        list_step(req, PARK_WOKEN);
    }
    return true;
}
