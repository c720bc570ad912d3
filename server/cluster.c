/*
 * cluster.c — membership, the lease and the election (cluster.h).
 *
 * Two threads talk to etcd, each with its own client:
 *
 * - the lease thread renews the lease every TTL/4 and nothing else. Before
 *   each keepalive it notes the CLOCK_MONOTONIC time it SENT it; when etcd
 *   answers with the TTL, the lease is trusted until sent + TTL - margin.
 *   etcd starts the TTL when it receives the keepalive, which is after we
 *   sent it, so our deadline always falls before etcd's: a leader that stops
 *   trusting its lease at that deadline has stopped acknowledging writes
 *   before etcd can hand the leader key to anyone else. A process paused
 *   (SIGSTOP) past the deadline finds it passed on CLOCK_MONOTONIC when it
 *   resumes, before it acknowledges anything.
 *
 * - the election thread, woken by a change (cluster_elect.c): takes a lease
 *   when it has none and registers /ringcask/G/members/ID on it; reads the
 *   leader key, /sync and the members; campaigns with a put-if-absent txn
 *   when there is no leader and this node may win; as the leader, names the
 *   sync standby; and publishes this node's applied seq. It reads etcd when
 *   etcd's watch on /ringcask/G/ reports a change (a third thread holds that
 *   stream open) and, without a leader, every tick (a fifth of the TTL, at
 *   most 250 ms); an idle follower sleeps.
 *
 * Who may campaign (sync mode): etcd's /ringcask/G/sync says. A leader
 * acknowledges a write only once the standby named there has applied it, so
 * the standby holds every acknowledged write: only it may take over. A new
 * leader first writes {"id":null,"min_seq":S} (S its last seq when elected:
 * everything anyone saw acknowledged is at or below S), so until it names a
 * standby, any node that has applied S may take over. It names a standby
 * only among followers that have applied every seq it acknowledged (and S),
 * clearing its own in-memory standby first so no acknowledgement slips
 * between the check and the switch. A fresh group (no /sync) lets anyone
 * campaign. In async mode the most advanced live members (by the applied
 * seq in their member keys) campaign, so a failover loses as little as the
 * members can tell.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "cluster_int.h"
#include "park.h"

#define START_RETRY_S 10 /* etcd must answer within this at start */

const char *cluster_role_name(cluster_role r)
{
    switch (r) {
    case CLUSTER_LEADER:
        return "leader";
    case CLUSTER_FOLLOWER:
        return "follower";
    case CLUSTER_FENCED:
        return "fenced";
    default:
        return "candidate";
    }
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

uint64_t cluster_last_seq(kvd *srv)
{
    return rc_last_seq(srv->db);
}

bool cluster_lease_valid(cluster *c)
{
    return atomic_load(&c->lease_id) != 0 && kvd_mono_ns() < atomic_load(&c->lease_valid_ns);
}

cluster_role cluster_current_role(const kvd *srv)
{
    cluster *c = srv->cluster;
    if (c == NULL)
        return CLUSTER_LEADER;
    cluster_role r = (cluster_role)atomic_load(&c->role);
    if (r == CLUSTER_LEADER && !cluster_lease_valid(c))
        return CLUSTER_FENCED;
    return r;
}

bool cluster_reclone_ready(const kvd *srv)
{
    return srv->cluster != NULL && atomic_load(&srv->cluster->reclone);
}

bool cluster_may_write(const kvd *srv)
{
    return srv->cluster == NULL || cluster_current_role(srv) == CLUSTER_LEADER;
}

void cluster_leader_of(const kvd *srv, char *out, size_t cap)
{
    if (cap > 0)
        out[0] = '\0';
    if (srv->cluster != NULL)
        cluster_leader_url(srv->cluster, out, cap, NULL, 0);
}

void cluster_leader_url(cluster *c, char *out, size_t cap, char *id, size_t idcap)
{
    pthread_mutex_lock(&c->mu);
    snprintf(out, cap, "%s", c->leader_url);
    if (id != NULL)
        snprintf(id, idcap, "%s", c->leader_id);
    pthread_mutex_unlock(&c->mu);
}

int cluster_config_check(const cluster_config *cc, char *why, size_t cap)
{
    if (cc->group == NULL) {
        if (cc->etcd || cc->node_id || cc->advertise) {
            snprintf(why, cap, "--%s: goes with --cluster GROUP",
                     cc->etcd      ? "etcd"
                     : cc->node_id ? "node-id"
                                   : "advertise");
            return -1;
        }
        return 0;
    }
    if (!rcu_bucket_name_valid(cc->group, strlen(cc->group))) {
        snprintf(why, cap,
                 "--cluster: '%s' is not a valid group name (letters, digits, '-', "
                 "'_')",
                 cc->group);
        return -1;
    }
    if (cc->etcd == NULL || cc->node_id == NULL || cc->advertise == NULL) {
        snprintf(why, cap, "--cluster: needs --%s too",
                 cc->etcd == NULL      ? "etcd URL[,URL...]"
                 : cc->node_id == NULL ? "node-id ID"
                                       : "advertise URL");
        return -1;
    }
    char ewhy[200];
    if (etcd_urls_check(cc->etcd, ewhy, sizeof ewhy) != 0) {
        snprintf(why, cap, "--etcd: %s", ewhy);
        return -1;
    }
    if (!rcu_bucket_name_valid(cc->node_id, strlen(cc->node_id))) {
        snprintf(why, cap, "--node-id: '%s' is not a valid id (letters, digits, '-', '_')",
                 cc->node_id);
        return -1;
    }
    size_t alen = strlen(cc->advertise);
    if ((strncmp(cc->advertise, "http://", 7) != 0 && strncmp(cc->advertise, "https://", 8) != 0) ||
        alen >= CLUSTER_URL_MAX - 1 || alen < 10 || strchr(cc->advertise + 8, '/') != NULL ||
        strpbrk(cc->advertise, " \"\r\n?#") != NULL) {
        snprintf(why, cap, "--advertise: '%s' is not a base URL (http://HOST:PORT, no path)",
                 cc->advertise);
        return -1;
    }
    if (cc->lease_ttl_s < 2) {
        snprintf(why, cap, "--lease-ttl: at least 2 seconds");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------- acknowledgement */

/* Decide an acknowledgement now (mu held): 1 yes, -1 no (WHY), 0 not yet. */
static int decide(cluster *c, uint64_t seq, const char **why)
{
    if ((cluster_role)atomic_load(&c->role) != CLUSTER_LEADER) {
        *why = "this node is no longer the leader";
        return -1;
    }
    if (!cluster_lease_valid(c)) {
        *why = "the leader's lease could not be renewed in time (fenced)";
        return -1;
    }
    if (c->cfg.async || (c->standby[0] != '\0' && c->standby_applied >= seq)) {
        if (seq > atomic_load(&c->max_acked))
            atomic_store(&c->max_acked, seq);
        return 1;
    }
    return 0;
}

int cluster_ack_decide(kvd *srv, uint64_t seq, uint64_t deadline_ns, const char **why,
                       uint64_t *recheck_ns)
{
    cluster *c = srv->cluster;
    *why = "";
    if (c == NULL)
        return 1;
    pthread_mutex_lock(&c->mu);
    int d = decide(c, seq, why);
    pthread_mutex_unlock(&c->mu);
    if (d != 0)
        return d;
    if (kvd_mono_ns() >= deadline_ns) {
        *why = "the sync standby did not confirm the write in time";
        return -1;
    }
    /* the lease's end fences us without any event: look again then */
    uint64_t lease_end = atomic_load(&c->lease_valid_ns);
    *recheck_ns = lease_end < deadline_ns ? lease_end : deadline_ns;
    return 0;
}

uint64_t cluster_ship_limit(kvd *srv, const char *node_id)
{
    cluster *c = srv->cluster;
    if (c == NULL || c->cfg.async || (cluster_role)atomic_load(&c->role) != CLUSTER_LEADER)
        return UINT64_MAX;
    uint64_t limit = UINT64_MAX;
    pthread_mutex_lock(&c->mu);
    if (strcmp(node_id, c->standby) != 0) {
        /* what the standby holds; with none named, what a follower needs
         * to be named (manage_standby) */
        limit = c->standby[0] != '\0' ? c->standby_applied : atomic_load(&c->max_acked);
        if (limit < c->leader_since_seq)
            limit = c->leader_since_seq;
    }
    pthread_mutex_unlock(&c->mu);
    return limit;
}

void cluster_ack_notify(cluster *c, uint64_t seq)
{
    /* srv->park is set before cluster_serve; nothing is parked before */
    if (!atomic_load(&c->serving))
        return;
    park_notify(c->srv->park, PARK_CH_ACK, NULL, NULL, 0, seq);
}

void cluster_note_pull(kvd *srv, const char *node_id, const char *database, uint64_t applied)
{
    cluster *c = srv->cluster;
    if (c == NULL || node_id == NULL)
        return;
    /* a pull counts only from a copy of this very history: the same
     * database identity (a replica keeps its source's), and not past our
     * last seq (a node that led and wrote what we never had) */
    char mine[RC_DATABASE_ID_LEN + 1] = "";
    rc_database_id(srv->db, mine);
    if (database == NULL || strcmp(database, mine) != 0 || applied > cluster_last_seq(srv))
        applied = 0;
    uint64_t acked = 0;
    pthread_mutex_lock(&c->mu);
    cluster_peer *p = NULL;
    for (size_t i = 0; i < c->npeers; i++)
        if (strcmp(c->peers[i].id, node_id) == 0)
            p = &c->peers[i];
    if (p == NULL && c->npeers < CLUSTER_MEMBERS_MAX && strlen(node_id) < CLUSTER_ID_MAX) {
        p = &c->peers[c->npeers++];
        memset(p, 0, sizeof *p);
        snprintf(p->id, sizeof p->id, "%s", node_id);
    }
    if (p != NULL) {
        p->pulled = applied;
        p->last_pull_ns = kvd_mono_ns();
        if (strcmp(c->standby, node_id) == 0 && applied > c->standby_applied) {
            c->standby_applied = applied;
            acked = applied;
        }
    }
    pthread_mutex_unlock(&c->mu);
    /* one pull releases every write parked at or below what it holds */
    if (acked != 0)
        cluster_ack_notify(c, acked);
}

/* ------------------------------------------------------------- lease */

static void *lease_main(void *arg)
{
    cluster *c = arg;
    etcd *e = etcd_new(c->cfg.etcd, 1000);
    unsigned period = c->cfg.lease_ttl_s * 1000 / 4;
    bool failing = false;
    while (e != NULL && !atomic_load(&c->stop)) {
        int64_t id = atomic_load(&c->lease_id);
        if (id == 0) {
            sleep_ms(50);
            continue;
        }
        uint64_t sent = kvd_mono_ns();
        unsigned ttl = 0;
        int rc = etcd_lease_keepalive(e, id, &ttl);
        if (rc == ETCD_OK && ttl > 0) {
            uint64_t until = sent + (uint64_t)ttl * 1000000000u - (uint64_t)c->margin_ms * 1000000u;
            if (atomic_load(&c->lease_id) == id)
                atomic_store(&c->lease_valid_ns, until);
            if (failing)
                kvd_log(LOG_INFO, "cluster: etcd renews the lease again");
            failing = false;
        } else if (rc == ETCD_OK) {
            kvd_log(LOG_WARN, "cluster: the lease expired in etcd; taking a new one");
            int64_t expect = id;
            atomic_compare_exchange_strong(&c->lease_id, &expect, 0);
            cluster_ack_notify(c, UINT64_MAX);
            cluster_elect_wake(c, WAKE_LOCAL); /* take a new lease */
        } else {
            if (!failing)
                kvd_log(LOG_WARN, "cluster: cannot renew the lease: %s", etcd_last_error(e));
            failing = true;
            cluster_ack_notify(c, UINT64_MAX);
            cluster_elect_wake(c, WAKE_ETCD);
            sleep_ms(200);
            continue;
        }
        /* sleep a quarter TTL, waking early to stop */
        for (unsigned slept = 0; slept < period && !atomic_load(&c->stop); slept += 50)
            sleep_ms(50);
    }
    etcd_free(e);
    return NULL;
}

/* ------------------------------------------------------- start / stop */

/* Register this node's member key on a fresh lease, refusing a live
 * duplicate. A key of our own previous run (killed within its TTL) is still
 * there until its lease expires: wait that long, no longer. */
static int register_member(cluster *c, etcd *e)
{
    uint64_t give_up = kvd_mono_ns() + ((uint64_t)c->cfg.lease_ttl_s + 3) * 1000000000u;
    for (;;) {
        int64_t id = 0;
        unsigned ttl = 0;
        uint64_t sent = kvd_mono_ns();
        if (atomic_load(&c->lease_id) == 0) {
            if (etcd_lease_grant(e, c->cfg.lease_ttl_s, &id, &ttl) != ETCD_OK) {
                fprintf(stderr, "kvd: --etcd %s: cannot take a lease: %s\n", c->cfg.etcd,
                        etcd_last_error(e));
                return -1;
            }
            c->granted_ttl = ttl;
            atomic_store(&c->lease_valid_ns,
                         sent + (uint64_t)ttl * 1000000000u - (uint64_t)c->margin_ms * 1000000u);
            atomic_store(&c->lease_id, id);
        }
        char val[CLUSTER_URL_MAX + 64];
        snprintf(val, sizeof val, "{\"url\":\"%s\",\"applied_seq\":%" PRIu64 "}", c->cfg.advertise,
                 cluster_last_seq(c->srv));
        bool created = false;
        int64_t rev = 0;
        if (etcd_create(e, c->key_me, val, atomic_load(&c->lease_id), &created, &rev) != ETCD_OK) {
            fprintf(stderr, "kvd: --etcd %s: %s\n", c->cfg.etcd, etcd_last_error(e));
            return -1;
        }
        if (created)
            return 0;
        if (kvd_mono_ns() > give_up) {
            etcd_kv kv;
            bool found = false;
            etcd_get(e, c->key_me, &kv, &found);
            fprintf(stderr,
                    "kvd: --node-id %s: a live member with this id is already in group %s (%s); "
                    "every node needs its own id\n",
                    c->cfg.node_id, c->cfg.group, found ? kv.value : "?");
            if (found)
                etcd_kv_clear(&kv);
            return -1;
        }
        sleep_ms(250);
    }
}

static int wait_for_etcd(cluster *c, etcd *e)
{
    uint64_t give_up = kvd_mono_ns() + (uint64_t)START_RETRY_S * 1000000000u;
    for (;;) {
        etcd_kv kv;
        bool found = false;
        int rc = etcd_get(e, c->key_leader, &kv, &found);
        if (rc == ETCD_OK) {
            if (found)
                etcd_kv_clear(&kv);
            return 0;
        }
        if (rc != ETCD_EUNREACH || kvd_mono_ns() > give_up) {
            fprintf(stderr, "kvd: --etcd %s: etcd does not answer (tried for %ds): %s\n",
                    c->cfg.etcd, START_RETRY_S, etcd_last_error(e));
            return -1;
        }
        sleep_ms(500);
    }
}

/* An empty directory: clone from the leader before the stores open (they
 * would otherwise write a history of their own). With no leader, one empty
 * node founds the group's history: whoever creates /ringcask/G/bootstrap
 * on its lease; the others wait for it to lead and clone from it. */
static int clone_if_empty(cluster *c, etcd *e)
{
    if (cluster_last_seq(c->srv) != 0)
        return 0;
    uint64_t give_up = kvd_mono_ns() + 60ull * 1000000000u;
    char key_boot[300];
    snprintf(key_boot, sizeof key_boot, "/ringcask/%s/bootstrap", c->cfg.group);
    for (;;) {
        etcd_kv kv;
        bool found = false;
        if (etcd_get(e, c->key_leader, &kv, &found) != ETCD_OK)
            return 0;
        if (!found) {
            bool created = false;
            int64_t rev = 0;
            if (etcd_create(e, key_boot, c->cfg.node_id, atomic_load(&c->lease_id), &created,
                            &rev) != ETCD_OK)
                return 0;
            if (created)
                return 0; /* this node founds the group */
            if (kvd_mono_ns() > give_up) {
                fprintf(stderr,
                        "kvd: --cluster %s: the directory is empty and no leader "
                        "appeared to clone from within 60s\n",
                        c->cfg.group);
                return -1;
            }
            sleep_ms(250);
            continue;
        }
        json_t *o = json_loadb(kv.value, kv.vlen, 0, NULL);
        const char *url = json_string_value(json_object_get(o, "url"));
        const char *id = json_string_value(json_object_get(o, "id"));
        char leader[CLUSTER_URL_MAX] = "";
        if (url != NULL && id != NULL && strcmp(id, c->cfg.node_id) != 0)
            snprintf(leader, sizeof leader, "%s", url);
        json_decref(o);
        etcd_kv_clear(&kv);
        if (leader[0] == '\0')
            return 0;
        if (cluster_clone_into(c, c->srv->db, leader) == 0) {
            kvd_log(LOG_INFO,
                    "cluster: cloned the empty directory from the leader %s (last seq "
                    "%" PRIu64 ")",
                    leader, cluster_last_seq(c->srv));
            return 0;
        }
        if (cluster_last_seq(c->srv) != 0 || kvd_mono_ns() > give_up) {
            fprintf(stderr, "kvd: --cluster %s: cannot clone from the leader %s (see the log)\n",
                    c->cfg.group, leader);
            return -1;
        }
        sleep_ms(500);
    }
}

int cluster_start(kvd *srv, const cluster_config *cc)
{
    char why[512];
    if (cluster_dir_claim(srv->cfg.dir, cc->group, why, sizeof why) != 0) {
        fprintf(stderr, "kvd: --cluster %s: %s\n", cc->group, why);
        return -1;
    }
    if (srv->admin_token == NULL) {
        fprintf(stderr, "kvd: --cluster: needs --admin-token-file (the same token on every "
                        "member: followers pull from the leader with it)\n");
        return -1;
    }
    /* before any thread: curl_easy_init would otherwise initialise libcurl
     * from several threads at once */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "kvd: --cluster: libcurl failed to initialise\n");
        return -1;
    }
    cluster *c = calloc(1, sizeof *c);
    if (c == NULL)
        return -1;
    c->srv = srv;
    c->cfg = *cc;
    c->margin_ms = cc->lease_ttl_s * 1000 / 5;
    if (c->margin_ms < 500)
        c->margin_ms = 500;
    snprintf(c->key_leader, sizeof c->key_leader, "/ringcask/%s/leader", cc->group);
    snprintf(c->key_sync, sizeof c->key_sync, "/ringcask/%s/sync", cc->group);
    snprintf(c->key_members, sizeof c->key_members, "/ringcask/%s/members/", cc->group);
    snprintf(c->key_me, sizeof c->key_me, "/ringcask/%s/members/%s", cc->group, cc->node_id);
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->apply_mu, NULL);
    pthread_mutex_init(&c->wake_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->wake_cv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&c->role, CLUSTER_CANDIDATE);
    srv->cluster = c;
    etcd *e = etcd_new(cc->etcd, 1000);
    bool ok = e != NULL && wait_for_etcd(c, e) == 0 && register_member(c, e) == 0;
    if (ok && pthread_create(&c->lease_thread, NULL, lease_main, c) == 0)
        c->lease_started = true; /* renewing while a clone runs */
    if (!ok || !c->lease_started || clone_if_empty(c, e) != 0) {
        int64_t lease = atomic_exchange(&c->lease_id, 0);
        if (e != NULL && lease != 0)
            etcd_lease_revoke(e, lease);
        etcd_free(e);
        cluster_stop(srv);
        return -1;
    }
    etcd_free(e);
    atomic_store(&c->applied, cluster_last_seq(srv));
    if (pthread_create(&c->elect_thread, NULL, cluster_elect_main, c) == 0)
        c->elect_started = true;
    if (c->elect_started && pthread_create(&c->watch_thread, NULL, cluster_watch_main, c) == 0)
        c->watch_started = true;
    if (!c->elect_started || !c->watch_started) {
        fprintf(stderr, "kvd: --cluster: cannot start its threads\n");
        cluster_stop(srv);
        return -1;
    }
    kvd_log(LOG_INFO, "cluster: member %s of group %s (etcd %s, %s replication, lease %us)",
            cc->node_id, cc->group, cc->etcd, cc->async ? "async" : "sync", c->granted_ttl);
    return 0;
}

int cluster_serve(kvd *srv)
{
    cluster *c = srv->cluster;
    if (c == NULL)
        return 0;
    atomic_store(&c->serving, true);
    cluster_elect_wake(c, WAKE_LOCAL); /* it may campaign now */
    if (pthread_create(&c->pull_thread, NULL, cluster_pull_main, c) != 0)
        return -1;
    c->pull_started = true;
    return 0;
}

void cluster_stop(kvd *srv)
{
    cluster *c = srv->cluster;
    if (c == NULL)
        return;
    atomic_store(&c->stop, true);
    cluster_elect_wake(c, WAKE_LOCAL);
    if (c->pull_started)
        pthread_join(c->pull_thread, NULL);
    if (c->watch_started)
        pthread_join(c->watch_thread, NULL);
    if (c->elect_started)
        pthread_join(c->elect_thread, NULL);
    if (c->lease_started)
        pthread_join(c->lease_thread, NULL);
    atomic_store(&c->role, CLUSTER_CANDIDATE);
    atomic_store(&c->lease_id, 0);
    cluster_ack_notify(c, UINT64_MAX); /* parked writes: 503 */
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->apply_mu);
    pthread_mutex_destroy(&c->wake_mu);
    pthread_cond_destroy(&c->wake_cv);
    srv->cluster = NULL;
    free(c);
}
