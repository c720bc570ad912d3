/*
 * cluster_int.h — the state the cluster modules share (cluster.c: lease and
 * election threads; cluster_repl.c: the follower's pull; cluster_http.c:
 * routing and the acknowledgement gate; cluster_dir.c: the CLUSTER file).
 * Everything mutable is under mu, except the atomics, which request
 * threads read without it.
 */
#ifndef KVD_CLUSTER_INT_H
#define KVD_CLUSTER_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "cluster.h"
#include "cluster_etcd.h"

typedef struct cluster_peer {
    char id[CLUSTER_ID_MAX];
    char url[CLUSTER_URL_MAX];
    uint64_t applied;      /* from its member key (what it says it holds) */
    uint64_t pulled;       /* what its pulls prove it holds of OUR history */
    uint64_t last_pull_ns; /* when it last pulled from this leader (0: never) */
    bool live;             /* it has a member key */
} cluster_peer;

struct cluster {
    kvd *srv;
    cluster_config cfg;
    char key_leader[256], key_sync[256], key_members[256], key_me[320];
    unsigned margin_ms; /* the lease is trusted until sent + TTL - margin */

    pthread_mutex_t mu;
    atomic_bool stop;
    atomic_bool serving; /* the stores are open: this node may campaign */

    /* lease (lease thread) */
    _Atomic int64_t lease_id;        /* 0: none (the election thread grants one) */
    _Atomic uint64_t lease_valid_ns; /* CLOCK_MONOTONIC deadline of trust */
    unsigned granted_ttl;

    /* election (election thread writes, everyone reads) */
    _Atomic int role; /* cluster_role */
    _Atomic uint64_t epoch;
    char leader_id[CLUSTER_ID_MAX]; /* under mu; "" when none known */
    char leader_url[CLUSTER_URL_MAX];
    uint64_t leader_since_seq; /* my last seq when I became leader */

    /* sync standby (leader): named in etcd before it counts here */
    char standby[CLUSTER_ID_MAX]; /* "" none */
    uint64_t standby_applied;
    _Atomic uint64_t max_acked;     /* highest seq acknowledged under this leadership */
    char etcd_sync[CLUSTER_ID_MAX]; /* what /sync names, as last read (any role) */

    cluster_peer peers[CLUSTER_MEMBERS_MAX];
    size_t npeers;

    /* follower */
    _Atomic uint64_t applied; /* everything up to here is applied (a stream's until) */
    pthread_mutex_t apply_mu; /* held while a stream is applied */
    atomic_bool reclone;      /* the pull thread asks main to re-clone */

    /* the election thread sleeps until woken (cluster_elect_wake) or its
     * timer: etcd's watch on the group's keys (watch thread), the lease
     * thread, the pull thread (applied seq moved) */
    pthread_mutex_t wake_mu;
    pthread_cond_t wake_cv; /* CLOCK_MONOTONIC */
    unsigned wake_bits;     /* WAKE_* */

    pthread_t lease_thread, elect_thread, pull_thread, watch_thread;
    bool lease_started, elect_started, pull_started, watch_started;
};

#define WAKE_ETCD 1u  /* something under /ringcask/GROUP/ changed: read it */
#define WAKE_LOCAL 2u /* this node's applied seq or state moved: publish it */

/* cluster.c */
bool cluster_lease_valid(cluster *c);
uint64_t cluster_last_seq(kvd *srv);
void cluster_leader_url(cluster *c, char *out, size_t cap, char *id, size_t idcap);
/* Wake the writes parked for an acknowledgement (PARK_CH_ACK) that wait
 * for a seq up to SEQ: the standby holds SEQ; UINT64_MAX: every one, to
 * look again (leadership, the lease or the standby changed). Call without
 * mu. */
void cluster_ack_notify(cluster *c, uint64_t seq);
const char *cluster_role_name(cluster_role r);

/* cluster_elect.c */
void *cluster_elect_main(void *arg);
/* etcd's watch on the group's keys: wakes the election thread (WAKE_ETCD)
 * on every change, and when the watch (re)starts. */
void *cluster_watch_main(void *arg);
/* Wake the election thread with BITS (WAKE_*). Any thread. */
void cluster_elect_wake(cluster *c, unsigned bits);

/* cluster_repl.c */
void *cluster_pull_main(void *arg);
/* Clone the leader's full stream into the (empty) open database: 0 or -1. */
int cluster_clone_into(cluster *c, rc_db *db, const char *leader_url);

/* cluster_dir.c: the data directory's CLUSTER file (FORMAT.md). 0, or -1
 * with one line in WHY (another group's directory, an unreadable file). */
int cluster_dir_claim(const char *dir, const char *group, char *why, size_t cap);
/* Remove PATH and the files in it (a data directory is flat). */
void cluster_dir_remove(const char *path);

#endif
