/*
 * cluster_elect.c — the election thread (see cluster.c for the design):
 * lease and member key, reading the leader, /sync and the members,
 * campaigning, promotion and demotion, naming the sync standby.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cluster_int.h"

typedef struct sync_state {
    bool exists;
    char id[CLUSTER_ID_MAX]; /* "" for null */
    uint64_t min_seq;
} sync_state;

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void set_role(cluster *c, cluster_role r)
{
    int was = atomic_exchange(&c->role, (int)r);
    if (was == CLUSTER_LEADER && r != CLUSTER_LEADER)
        cluster_ack_notify(c, UINT64_MAX); /* parked writes: 503 */
}

/* Take a lease and put the member key on it. */
static int ensure_lease(cluster *c, etcd *e)
{
    if (atomic_load(&c->lease_id) != 0)
        return 0;
    int64_t id = 0;
    unsigned ttl = 0;
    uint64_t sent = kvd_mono_ns();
    if (etcd_lease_grant(e, c->cfg.lease_ttl_s, &id, &ttl) != ETCD_OK)
        return -1;
    c->granted_ttl = ttl;
    atomic_store(&c->lease_valid_ns,
                 sent + (uint64_t)ttl * 1000000000u - (uint64_t)c->margin_ms * 1000000u);
    atomic_store(&c->lease_id, id);
    return 0;
}

static int put_member(cluster *c, etcd *e, uint64_t applied)
{
    json_t *v =
        json_pack("{s:s, s:I}", "url", c->cfg.advertise, "applied_seq", (json_int_t)applied);
    char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    if (text == NULL)
        return -1;
    int rc = etcd_put(e, c->key_me, text, atomic_load(&c->lease_id));
    free(text);
    return rc == ETCD_OK ? 0 : -1;
}

static void read_sync(etcd *e, cluster *c, sync_state *s)
{
    memset(s, 0, sizeof *s);
    etcd_kv kv;
    bool found = false;
    if (etcd_get(e, c->key_sync, &kv, &found) != ETCD_OK || !found)
        return;
    s->exists = true;
    json_t *o = json_loadb(kv.value, kv.vlen, 0, NULL);
    const char *id = json_string_value(json_object_get(o, "id"));
    if (id != NULL)
        snprintf(s->id, sizeof s->id, "%s", id);
    json_t *m = json_object_get(o, "min_seq");
    s->min_seq = json_is_integer(m) ? (uint64_t)json_integer_value(m) : 0;
    json_decref(o);
    etcd_kv_clear(&kv);
}

/* Refresh the peers from the member keys; keep what pulls taught us. */
static void read_members(etcd *e, cluster *c, uint64_t *max_applied)
{
    etcd_kv *kvs = NULL;
    size_t n = 0;
    *max_applied = 0;
    if (etcd_get_prefix(e, c->key_members, &kvs, &n) != ETCD_OK)
        return;
    size_t plen = strlen(c->key_members);
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->npeers; i++)
        c->peers[i].live = false;
    for (size_t k = 0; k < n; k++) {
        const char *id = kvs[k].key + (strlen(kvs[k].key) >= plen ? plen : 0);
        if (strlen(id) >= CLUSTER_ID_MAX || id[0] == '\0')
            continue;
        json_t *o = json_loadb(kvs[k].value, kvs[k].vlen, 0, NULL);
        const char *url = json_string_value(json_object_get(o, "url"));
        json_t *a = json_object_get(o, "applied_seq");
        uint64_t applied = json_is_integer(a) ? (uint64_t)json_integer_value(a) : 0;
        cluster_peer *p = NULL;
        for (size_t i = 0; i < c->npeers; i++)
            if (strcmp(c->peers[i].id, id) == 0)
                p = &c->peers[i];
        if (p == NULL && c->npeers < CLUSTER_MEMBERS_MAX) {
            p = &c->peers[c->npeers++];
            memset(p, 0, sizeof *p);
            snprintf(p->id, sizeof p->id, "%s", id);
        }
        if (p != NULL) {
            p->live = true;
            if (url != NULL)
                snprintf(p->url, sizeof p->url, "%s", url);
            if (applied > p->applied)
                p->applied = applied;
            if (strcmp(id, c->cfg.node_id) != 0 && p->applied > *max_applied)
                *max_applied = p->applied;
        }
        json_decref(o);
    }
    /* forget peers gone from etcd that no longer pull either */
    for (size_t i = 0; i < c->npeers;) {
        cluster_peer *p = &c->peers[i];
        if (!p->live &&
            (p->last_pull_ns == 0 || kvd_mono_ns() - p->last_pull_ns > 60ull * 1000000000u) &&
            strcmp(p->id, c->standby) != 0) {
            c->peers[i] = c->peers[--c->npeers];
            continue;
        }
        i++;
    }
    pthread_mutex_unlock(&c->mu);
    etcd_kvs_free(kvs, n);
}

static bool may_campaign(cluster *c, const sync_state *s, uint64_t mine, uint64_t others_max,
                         unsigned *patience)
{
    (void)patience;
    if (c->cfg.async) /* the most advanced live member(s) only: the least is lost */
        return mine >= others_max;
    if (!s->exists)
        return true;
    if (s->id[0] != '\0')
        return strcmp(s->id, c->cfg.node_id) == 0;
    return mine >= s->min_seq;
}

static int write_sync(cluster *c, etcd *e, const char *id, uint64_t min_seq)
{
    json_t *v = json_pack("{s:o, s:I}", "id", id ? json_string(id) : json_null(), "min_seq",
                          (json_int_t)min_seq);
    char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    bool done = false;
    int rc = text ? etcd_put_guarded(e, c->key_leader, (int64_t)atomic_load(&c->epoch), c->key_sync,
                                     text, 0, &done)
                  : ETCD_ENOMEM;
    free(text);
    return rc == ETCD_OK && done ? 0 : -1;
}

static void promote(cluster *c, etcd *e, uint64_t epoch)
{
    /* no stream is being applied from here on */
    pthread_mutex_lock(&c->apply_mu);
    uint64_t last = cluster_last_seq(c->srv);
    pthread_mutex_lock(&c->mu);
    atomic_store(&c->epoch, epoch);
    c->leader_since_seq = last;
    atomic_store(&c->max_acked, last);
    c->standby[0] = '\0';
    c->standby_applied = 0;
    for (size_t i = 0; i < c->npeers; i++) {
        c->peers[i].pulled = 0;
        c->peers[i].last_pull_ns = 0;
    }
    snprintf(c->leader_id, sizeof c->leader_id, "%s", c->cfg.node_id);
    snprintf(c->leader_url, sizeof c->leader_url, "%s", c->cfg.advertise);
    pthread_mutex_unlock(&c->mu);
    if (!c->cfg.async && write_sync(c, e, NULL, last) != 0)
        kvd_log(LOG_WARN, "cluster: could not reset the sync standby in etcd: %s",
                etcd_last_error(e));
    set_role(c, CLUSTER_LEADER);
    pthread_mutex_unlock(&c->apply_mu);
    kvd_log(LOG_INFO, "cluster: leader of group %s (epoch %" PRIu64 ", last seq %" PRIu64 ")",
            c->cfg.group, epoch, last);
    if (c->cfg.on_promote != NULL)
        c->cfg.on_promote(c->srv);
}

/* Sync mode, on the leader: keep a standby that pulls; name a new one that
 * holds every acknowledged write. */
static void manage_standby(cluster *c, etcd *e)
{
    uint64_t now = kvd_mono_ns();
    uint64_t stale = (uint64_t)c->cfg.lease_ttl_s * 2 * 1000000000u;
    char pick[CLUSTER_ID_MAX] = "";
    uint64_t pick_applied = 0;
    pthread_mutex_lock(&c->mu);
    if (c->standby[0] != '\0') {
        cluster_peer *p = NULL;
        for (size_t i = 0; i < c->npeers; i++)
            if (strcmp(c->peers[i].id, c->standby) == 0)
                p = &c->peers[i];
        if (p != NULL && p->live && p->last_pull_ns != 0 && now - p->last_pull_ns < stale) {
            pthread_mutex_unlock(&c->mu);
            return;
        }
        kvd_log(LOG_WARN, "cluster: sync standby %s stopped pulling; choosing another", c->standby);
        c->standby[0] = '\0'; /* no acknowledgement until a new one is named */
    }
    uint64_t need = atomic_load(&c->max_acked);
    if (c->leader_since_seq > need)
        need = c->leader_since_seq;
    for (size_t i = 0; i < c->npeers; i++) {
        cluster_peer *p = &c->peers[i];
        if (strcmp(p->id, c->cfg.node_id) == 0 || !p->live || p->last_pull_ns == 0 ||
            now - p->last_pull_ns > stale || p->pulled < need)
            continue;
        if (pick[0] == '\0' || p->pulled > pick_applied) {
            snprintf(pick, sizeof pick, "%s", p->id);
            pick_applied = p->pulled;
        }
    }
    pthread_mutex_unlock(&c->mu);
    if (pick[0] == '\0')
        return;
    if (write_sync(c, e, pick, 0) != 0)
        return;
    pthread_mutex_lock(&c->mu);
    snprintf(c->standby, sizeof c->standby, "%s", pick);
    c->standby_applied = 0;
    for (size_t i = 0; i < c->npeers; i++)
        if (strcmp(c->peers[i].id, pick) == 0)
            c->standby_applied = c->peers[i].pulled;
    snprintf(c->etcd_sync, sizeof c->etcd_sync, "%s", pick);
    pthread_mutex_unlock(&c->mu);
    cluster_ack_notify(c, UINT64_MAX); /* what it holds may answer parked writes */
    kvd_log(LOG_INFO, "cluster: sync standby is %s (applied seq %" PRIu64 ")", pick, pick_applied);
}

static void demote(cluster *c, const char *why)
{
    if ((cluster_role)atomic_load(&c->role) == CLUSTER_LEADER)
        kvd_log(LOG_WARN, "cluster: no longer the leader: %s", why);
    pthread_mutex_lock(&c->mu);
    c->standby[0] = '\0';
    pthread_mutex_unlock(&c->mu);
}

/* What this node last wrote in its member key, and on which lease. */
typedef struct published {
    uint64_t applied;
    int64_t lease;
} published;

/* Publish this node's applied seq in its member key when it or the lease
 * changed (a new lease: the key went with the old one). The applied seq. */
static uint64_t publish(cluster *c, etcd *e, published *pub)
{
    uint64_t applied = atomic_load(&c->applied);
    uint64_t mine = cluster_last_seq(c->srv);
    if (mine > applied)
        applied = mine;
    int64_t lease = atomic_load(&c->lease_id);
    if (lease != 0 && (applied != pub->applied || lease != pub->lease) &&
        put_member(c, e, applied) == 0) {
        pub->applied = applied;
        pub->lease = lease;
    }
    return applied;
}

static void tick(cluster *c, etcd *e, unsigned *patience, published *pub)
{
    if (ensure_lease(c, e) != 0) {
        demote(c, "etcd does not answer");
        set_role(c, CLUSTER_CANDIDATE);
        return;
    }
    uint64_t applied = publish(c, e, pub);
    sync_state s;
    read_sync(e, c, &s);
    uint64_t others_max = 0;
    read_members(e, c, &others_max);
    pthread_mutex_lock(&c->mu);
    snprintf(c->etcd_sync, sizeof c->etcd_sync, "%s", s.id);
    pthread_mutex_unlock(&c->mu);

    etcd_kv kv;
    bool found = false;
    if (etcd_get(e, c->key_leader, &kv, &found) != ETCD_OK)
        return; /* keep the last view; the lease deadline fences us meanwhile */
    if (found) {
        json_t *o = json_loadb(kv.value, kv.vlen, 0, NULL);
        const char *id = json_string_value(json_object_get(o, "id"));
        const char *url = json_string_value(json_object_get(o, "url"));
        bool my_id = id != NULL && strcmp(id, c->cfg.node_id) == 0;
        bool me = my_id && kv.lease == atomic_load(&c->lease_id);
        if (my_id && !me) {
            /* a key of this node's previous lease: it expires with it */
            demote(c, "the leader key is on a lease of ours that is gone");
            pthread_mutex_lock(&c->mu);
            c->leader_id[0] = c->leader_url[0] = '\0';
            pthread_mutex_unlock(&c->mu);
            set_role(c, CLUSTER_CANDIDATE);
        } else if (me) {
            if ((cluster_role)atomic_load(&c->role) != CLUSTER_LEADER)
                promote(c, e, (uint64_t)kv.create_rev);
        } else {
            demote(c, "another node holds the leader key");
            pthread_mutex_lock(&c->mu);
            snprintf(c->leader_id, sizeof c->leader_id, "%s", id ? id : "");
            snprintf(c->leader_url, sizeof c->leader_url, "%s", url ? url : "");
            atomic_store(&c->epoch, (uint64_t)kv.create_rev);
            pthread_mutex_unlock(&c->mu);
            if ((cluster_role)atomic_load(&c->role) != CLUSTER_FOLLOWER && id != NULL)
                kvd_log(LOG_INFO, "cluster: following %s at %s (epoch %" PRId64 ")", id,
                        url ? url : "?", kv.create_rev);
            set_role(c, id != NULL && url != NULL ? CLUSTER_FOLLOWER : CLUSTER_CANDIDATE);
            *patience = 0;
        }
        json_decref(o);
        etcd_kv_clear(&kv);
    } else {
        demote(c, "the leader key is gone");
        pthread_mutex_lock(&c->mu);
        c->leader_id[0] = c->leader_url[0] = '\0';
        pthread_mutex_unlock(&c->mu);
        set_role(c, CLUSTER_CANDIDATE);
        if (atomic_load(&c->serving) && !atomic_load(&c->reclone) &&
            may_campaign(c, &s, applied, others_max, patience)) {
            json_t *v = json_pack("{s:s, s:s}", "id", c->cfg.node_id, "url", c->cfg.advertise);
            char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
            json_decref(v);
            bool created = false;
            int64_t rev = 0;
            if (text != NULL &&
                etcd_create(e, c->key_leader, text, atomic_load(&c->lease_id), &created, &rev) ==
                    ETCD_OK &&
                created)
                promote(c, e, (uint64_t)rev);
            free(text);
        }
    }
    if ((cluster_role)atomic_load(&c->role) == CLUSTER_LEADER && !c->cfg.async)
        manage_standby(c, e);
}

void cluster_elect_wake(cluster *c, unsigned bits)
{
    pthread_mutex_lock(&c->wake_mu);
    c->wake_bits |= bits;
    pthread_cond_signal(&c->wake_cv);
    pthread_mutex_unlock(&c->wake_mu);
}

/* Sleep until woken or MS passed: the WAKE_* bits that were set. */
static unsigned wait_wake(cluster *c, unsigned ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&c->wake_mu);
    while (c->wake_bits == 0 && !atomic_load(&c->stop))
        if (pthread_cond_timedwait(&c->wake_cv, &c->wake_mu, &ts) != 0)
            break;
    unsigned bits = c->wake_bits;
    c->wake_bits = 0;
    pthread_mutex_unlock(&c->wake_mu);
    return bits;
}

/* The election thread. It reads etcd (the leader key, /sync, the members:
 * tick) only when something there changed — etcd's watch on the group's
 * keys wakes it (cluster_watch_main), also each time the watch is opened
 * again — or while it has no leader to follow (a candidate looks every
 * PERIOD). Between reads it keeps its view; an idle follower does nothing.
 * A leader also wakes every PERIOD without reading etcd, to see whether its
 * standby still pulls (manage_standby writes to etcd only to change it) and
 * to publish its applied seq. Reads are at least PERIOD apart, so a busy
 * group (members publishing their applied seqs) costs what the old
 * fixed-interval polling did and no more. Fencing does not depend on this
 * thread: the lease thread's deadline does it. */
void *cluster_elect_main(void *arg)
{
    cluster *c = arg;
    etcd *e = etcd_new(c->cfg.etcd, 1000);
    unsigned period = c->cfg.lease_ttl_s * 1000 / 5;
    if (period > 250)
        period = 250;
    unsigned patience = 0;
    published pub = {.applied = UINT64_MAX};
    uint64_t last_round = 0;
    unsigned bits = WAKE_ETCD;
    while (e != NULL && !atomic_load(&c->stop)) {
        cluster_role role = (cluster_role)atomic_load(&c->role);
        bool read =
            (bits & WAKE_ETCD) != 0 || role == CLUSTER_CANDIDATE || atomic_load(&c->lease_id) == 0;
        /* at least PERIOD between rounds: a burst of changes is one round */
        uint64_t now = kvd_mono_ns(), gap = (uint64_t)period * 1000000u;
        if (last_round != 0 && now - last_round < gap)
            sleep_ms((unsigned)((gap - (now - last_round)) / 1000000u));
        last_round = kvd_mono_ns();
        if (read) {
            tick(c, e, &patience, &pub);
        } else {
            publish(c, e, &pub);
            if (role == CLUSTER_LEADER && !c->cfg.async)
                manage_standby(c, e);
        }
        role = (cluster_role)atomic_load(&c->role);
        /* a follower's view changes only through etcd (the watch wakes it) */
        bits = wait_wake(c, role == CLUSTER_FOLLOWER ? 60000 : period);
    }
    /* step down at once so another node need not wait for the lease */
    bool was_leader = (cluster_role)atomic_load(&c->role) == CLUSTER_LEADER;
    set_role(c, CLUSTER_CANDIDATE);
    if (e != NULL && was_leader) {
        bool done = false;
        etcd_delete_guarded(e, c->key_leader, (int64_t)atomic_load(&c->epoch), &done);
    }
    int64_t lease = atomic_exchange(&c->lease_id, 0);
    if (e != NULL && lease != 0)
        etcd_lease_revoke(e, lease);
    etcd_free(e);
    return NULL;
}

/* ------------------------------------------------------------- watch */

static void watch_changed(void *ud)
{
    cluster_elect_wake(ud, WAKE_ETCD);
}

static bool watch_stop(void *ud)
{
    cluster *c = ud;
    return atomic_load(&c->stop);
}

/* How long one watch stream lives before it is opened again (and the
 * election thread reads everything once): what a stream that went silent
 * without failing (a black-holed connection) can hide at most. */
#define WATCH_LIFETIME_MS 30000

void *cluster_watch_main(void *arg)
{
    cluster *c = arg;
    char prefix[300];
    snprintf(prefix, sizeof prefix, "/ringcask/%s/", c->cfg.group);
    etcd *e = etcd_new(c->cfg.etcd, 1000);
    bool failing = false;
    while (e != NULL && !atomic_load(&c->stop)) {
        int rc = etcd_watch(e, prefix, WATCH_LIFETIME_MS, watch_changed, watch_stop, c);
        /* whatever happened meanwhile, the election thread reads it now */
        cluster_elect_wake(c, WAKE_ETCD);
        if (rc != ETCD_OK) {
            if (!failing)
                kvd_log(LOG_DEBUG, "cluster: etcd watch: %s", etcd_last_error(e));
            failing = true;
            for (unsigned slept = 0; slept < 500 && !atomic_load(&c->stop); slept += 50)
                sleep_ms(50);
        } else {
            failing = false;
        }
    }
    etcd_free(e);
    return NULL;
}
