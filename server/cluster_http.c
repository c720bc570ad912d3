/*
 * cluster_http.c — the replica group's HTTP side: routing by role, GET
 * /cluster, /healthz?role=leader, and the acknowledgement gate of writes.
 *
 * Routing (CLUSTER.md's table): a write on a node that is not the leader
 * with a valid lease gets 307 with Location = the leader's advertised URL +
 * the same path and query, or 503 no_leader (Retry-After: 1) while no
 * leader is known; reads are served locally, except ?consistent=1, which
 * goes to the leader. The method decides what a write is (PUT, POST, PATCH,
 * DELETE): a POST batch that only reads goes to the leader too, which
 * serves it.
 *
 * The gate (cluster_gate_response, from http_send): a 2xx answer to a write
 * is sent only once the write is acknowledged — replicated to the sync
 * standby (sync mode) while this node still leads on a valid lease. The seq
 * waited for is the database's last seq when the answer is ready, which is
 * at or above the write's own. Otherwise the answer becomes 503
 * not_acknowledged: the write may exist on this node but was never
 * acknowledged, and a new leader will not have it. The wait holds no
 * thread: the answer is kept in the request and the request parked on
 * PARK_CH_ACK (park.h); the standby's pull (cluster_note_pull) wakes every
 * write up to what it holds, a loss of leadership or lease wakes all, and
 * the park timer wakes each at its deadline or its lease's end. The
 * decision is made again on the request's own thread, just before its
 * answer is queued.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_int.h"
#include "http.h"
#include "park.h"

static bool is_write(http_method m)
{
    return m == METHOD_PUT || m == METHOD_POST || m == METHOD_PATCH || m == METHOD_DELETE;
}

static bool route_elsewhere(kvd_request *req, cluster *c, cluster_role role);

static void answer_no_leader(kvd_request *req, const char *why)
{
    struct MHD_Response *r = http_json_response(http_error_json("no_leader", -1, why));
    if (r != NULL)
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    http_send(req, 503, r);
}

typedef struct uri_buf {
    char *p;
    size_t len, cap;
    bool failed;
} uri_buf;

static void uri_add(uri_buf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* MHD keeps query arguments raw here (kvd installs no unescaper), so they
 * go back into the Location as they came. */
static enum MHD_Result add_arg(void *cls, enum MHD_ValueKind kind, const char *key, size_t klen,
                               const char *value, size_t vlen)
{
    (void)kind;
    uri_buf *b = cls;
    uri_add(b, strchr(b->p, '?') ? "&" : "?", 1);
    uri_add(b, key, klen);
    if (value != NULL) {
        uri_add(b, "=", 1);
        uri_add(b, value, vlen);
    }
    return MHD_YES;
}

static void redirect(kvd_request *req, const char *leader)
{
    uri_buf b = {0};
    uri_add(&b, leader, strlen(leader));
    uri_add(&b, req->raw_path, strlen(req->raw_path));
    if (!b.failed)
        MHD_get_connection_values_n(req->conn, MHD_GET_ARGUMENT_KIND, add_arg, &b);
    if (b.failed) {
        free(b.p);
        http_send(req, 500, NULL);
        return;
    }
    json_t *o =
        json_pack("{s:s, s:s, s:s}", "error", "not_leader", "message",
                  "this node is a follower: repeat the request at the leader", "leader", leader);
    struct MHD_Response *r = http_json_response(o);
    if (r != NULL)
        MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, b.p);
    free(b.p);
    http_send(req, 307, r);
}

/* Sync mode, on the leader: no standby named means nothing written now
 * could be acknowledged; refuse before writing (no write left in doubt). */
static bool standby_missing(cluster *c)
{
    if (c->cfg.async)
        return false;
    pthread_mutex_lock(&c->mu);
    bool missing = c->standby[0] == '\0';
    pthread_mutex_unlock(&c->mu);
    return missing;
}

static void answer_no_standby(kvd_request *req)
{
    struct MHD_Response *r = http_json_response(
        http_error_json("no_sync_standby", -1,
                        "no follower is caught up to confirm writes (sync replication); nothing "
                        "was written"));
    if (r != NULL)
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    http_send(req, 503, r);
}

bool cluster_route(kvd_request *req)
{
    cluster *c = req->srv->cluster;
    if (c == NULL)
        return true;
    bool write = is_write(req->method);
    /* a script run (GET or POST) writes only if its commit has ops: served
     * here on any member, and one that writes where it may not is answered
     * by cluster_answer_write_elsewhere after the run (nothing written) */
    if (req->script_run) {
        if (cluster_current_role(req->srv) != CLUSTER_LEADER)
            req->cluster_read = true; /* never commits here, nothing to wait for */
        return true;
    }
    /* a batch is a write only if it holds one: decided with its body
     * (cluster_route_batch), except on the leader */
    if (write && req->route == ROUTE_LIST && req->method == METHOD_POST &&
        cluster_current_role(req->srv) != CLUSTER_LEADER)
        return true;
    if (!write) {
        char v[8];
        size_t n = 0;
        bool consistent = http_query(req, "consistent", v, sizeof v, &n) == 0 &&
                          !(n == 1 && v[0] == '0') && !(n == 5 && memcmp(v, "false", 5) == 0);
        if (!consistent)
            return true;
    }
    cluster_role role = cluster_current_role(req->srv);
    if (role == CLUSTER_LEADER) {
        /* a batch may hold only gets: cluster_route_batch decides */
        if (write && req->route != ROUTE_LIST && standby_missing(c)) {
            answer_no_standby(req);
            return false;
        }
        return true;
    }
    return route_elsewhere(req, c, role);
}

/* Not the leader: 307 to it, or 503 while none is known. */
static bool route_elsewhere(kvd_request *req, cluster *c, cluster_role role)
{
    char leader[CLUSTER_URL_MAX], id[CLUSTER_ID_MAX];
    cluster_leader_url(c, leader, sizeof leader, id, sizeof id);
    if (role == CLUSTER_FOLLOWER && leader[0] != '\0' && strcmp(id, c->cfg.node_id) != 0) {
        redirect(req, leader);
        return false;
    }
    answer_no_leader(req, role == CLUSTER_FENCED
                              ? "this node's leadership lapsed (its lease could not be renewed); "
                                "an election is under way"
                              : "no leader is known yet: an election is under way");
    return false;
}

bool cluster_script_may_commit(const kvd_request *req)
{
    cluster *c = req->srv->cluster;
    if (c == NULL)
        return true;
    return !req->cluster_read && cluster_current_role(req->srv) == CLUSTER_LEADER &&
           !standby_missing(c);
}

void cluster_answer_write_elsewhere(kvd_request *req)
{
    cluster *c = req->srv->cluster;
    cluster_role role = cluster_current_role(req->srv);
    if (role == CLUSTER_LEADER && !req->cluster_read) {
        answer_no_standby(req);
        return;
    }
    if (role == CLUSTER_LEADER) { /* became leader during the run: run it again */
        answer_no_leader(req, "leadership changed while the script ran; nothing was written");
        return;
    }
    route_elsewhere(req, c, role);
}

/* Does a batch body hold anything but gets? */
static bool batch_writes(const kvd_request *req)
{
    json_t *o = json_loadb(req->body ? req->body : "", req->body_len, 0, NULL);
    json_t *ops = json_object_get(o, "ops");
    bool writes = !json_is_array(ops);
    for (size_t i = 0; !writes && i < json_array_size(ops); i++) {
        json_t *op = json_array_get(ops, i);
        writes = !json_is_object(op) || json_object_get(op, "get") == NULL ||
                 json_object_get(op, "set") || json_object_get(op, "delete") ||
                 json_object_get(op, "incr");
    }
    json_decref(o);
    return writes;
}

bool cluster_route_batch(kvd_request *req)
{
    cluster *c = req->srv->cluster;
    if (c == NULL)
        return true;
    cluster_role role = cluster_current_role(req->srv);
    if (role == CLUSTER_LEADER) {
        if (standby_missing(c) && batch_writes(req)) {
            answer_no_standby(req);
            return false;
        }
        return true;
    }
    if (!batch_writes(req)) {
        req->cluster_read = true; /* gets only: a read, served here */
        return true;
    }
    return route_elsewhere(req, c, role);
}

bool cluster_healthz(kvd_request *req)
{
    char v[16];
    size_t n = 0;
    if (http_query(req, "role", v, sizeof v, &n) != 0 || strcmp(v, "leader") != 0)
        return false;
    bool leader = cluster_current_role(req->srv) == CLUSTER_LEADER;
    json_t *o = json_pack("{s:s, s:s}", "status", leader ? "ok" : "not_leader", "role",
                          cluster_role_name(cluster_current_role(req->srv)));
    http_json(req, leader ? 200 : 503, o);
    return true;
}

static json_t *member_json(const cluster_peer *p, const char *role, uint64_t last)
{
    return json_pack("{s:s, s:s, s:s, s:I, s:I}", "id", p->id, "url", p->url, "role", role,
                     "applied_seq", (json_int_t)p->applied, "lag_seq",
                     (json_int_t)(last > p->applied ? last - p->applied : 0));
}

void cluster_route_info(kvd_request *req)
{
    cluster *c = req->srv->cluster;
    if (c == NULL) {
        http_error(req, 404, "not_clustered", "this kvd runs without --cluster");
        return;
    }
    cluster_role role = cluster_current_role(req->srv);
    uint64_t mine = cluster_last_seq(req->srv);
    pthread_mutex_lock(&c->mu);
    const char *sync = c->cfg.async             ? NULL
                       : role == CLUSTER_LEADER ? (c->standby[0] ? c->standby : NULL)
                                                : (c->etcd_sync[0] ? c->etcd_sync : NULL);
    /* lag is measured against the leader's last seq: ours when we lead,
     * else the highest any member reports */
    uint64_t last = mine;
    for (size_t i = 0; i < c->npeers; i++)
        if (c->peers[i].live && c->peers[i].applied > last)
            last = c->peers[i].applied;
    if (role == CLUSTER_LEADER)
        last = mine;
    json_t *members = json_array();
    bool listed_me = false;
    for (size_t i = 0; i < c->npeers; i++) {
        cluster_peer p = c->peers[i];
        if (!p.live)
            continue;
        bool me = strcmp(p.id, c->cfg.node_id) == 0;
        const char *r = strcmp(p.id, c->leader_id) == 0 ? "leader" : "follower";
        if (me) {
            listed_me = true;
            r = cluster_role_name(role);
            p.applied = mine;
        }
        json_array_append_new(members, member_json(&p, r, last));
    }
    if (!listed_me) {
        cluster_peer p;
        memset(&p, 0, sizeof p);
        snprintf(p.id, sizeof p.id, "%s", c->cfg.node_id);
        snprintf(p.url, sizeof p.url, "%s", c->cfg.advertise);
        p.applied = mine;
        json_array_append_new(members, member_json(&p, cluster_role_name(role), last));
    }
    json_t *leader = c->leader_id[0] != '\0'
                         ? json_pack("{s:s, s:s}", "id", c->leader_id, "url", c->leader_url)
                         : json_null();
    json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:o, s:o, s:I, s:o}", "group", c->cfg.group,
                          "node_id", c->cfg.node_id, "role", cluster_role_name(role), "epoch",
                          (json_int_t)atomic_load(&c->epoch), "leader", leader, "sync_standby",
                          sync ? json_string(sync) : json_null(), "last_seq", (json_int_t)mine,
                          "members", members);
    pthread_mutex_unlock(&c->mu);
    http_json(req, 200, o);
}

/* Answer a write held by the gate: its own answer, or 503 not_acknowledged
 * with WHY (the write may exist here, but was never acknowledged). */
static void ack_answer(kvd_request *req, bool ok, const char *why)
{
    struct MHD_Response *resp = req->ack_resp;
    unsigned status = req->ack_status;
    req->ack_resp = NULL;
    if (!ok) {
        if (resp != NULL)
            MHD_destroy_response(resp);
        resp = http_json_response(http_error_json("not_acknowledged", -1, why));
        if (resp != NULL)
            MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
        status = 503;
    }
    http_send_now(req, status, resp);
}

/* Decide, or park until the standby's next acknowledgement (or a change of
 * leadership or lease, or the recheck time); runs again on each wake. */
static void ack_step(kvd_request *req, park_why why)
{
    park *p = req->srv->park;
    /* before looking: a notification after the look moves it */
    uint64_t gen = park_generation(p, PARK_CH_ACK);
    const char *reason = "";
    uint64_t recheck = 0;
    int d = cluster_ack_decide(req->srv, req->ack_seq, req->ack_deadline_ns, &reason, &recheck);
    if (d == 0 && why == PARK_SHUTDOWN) {
        d = -1;
        reason = "kvd is stopping before the sync standby confirmed the write";
    }
    if (d == 0) {
        /* AGAIN: an acknowledgement wait is not refused by --max-waiters
         * (the write is done; refusing now would leave it in doubt) */
        park_topic t = {.channel = PARK_CH_ACK, .after = req->ack_seq - 1};
        int rc = park_request(p, req, &t, recheck, ack_step, true);
        if (rc == PARK_OK) {
            if (park_generation(p, PARK_CH_ACK) != gen)
                park_wake(p, req);
            return;
        }
        d = -1;
        reason = rc == PARK_CLOSED ? "kvd is stopping before the sync standby confirmed the write"
                                   : "out of memory while waiting for the sync standby";
    }
    ack_answer(req, d > 0, reason);
}

bool cluster_gate_response(kvd_request *req, unsigned status, struct MHD_Response *resp)
{
    kvd *srv = req->srv;
    /* a GET script run that wrote (script_wrote) waits as any write does */
    if (srv->cluster == NULL || status < 200 || status >= 300 ||
        (!is_write(req->method) && !req->script_wrote) || req->route == ROUTE_CLUSTER ||
        req->route == ROUTE_BACKUP || req->cluster_read)
        return false;
    /* the database's last seq, at or above the write's own */
    req->ack_seq = cluster_last_seq(srv);
    if (req->ack_seq == 0)
        req->ack_seq = 1;
    /* long enough for a busy standby; a standby that stops pulling is
     * replaced after 2 TTLs, and losing the lease ends the wait at once */
    req->ack_deadline_ns =
        kvd_mono_ns() + ((uint64_t)srv->cluster->cfg.lease_ttl_s + 10) * 1000000000u;
    req->ack_resp = resp;
    req->ack_status = status;
    ack_step(req, PARK_WOKEN);
    return true;
}
