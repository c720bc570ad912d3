/*
 * cluster.h — kvd as a member of a replica group (--cluster GROUP).
 *
 * etcd decides who leads (cluster_etcd.h): every member holds a lease,
 * renewed by its own thread; the leader is whoever holds the key
 * /ringcask/GROUP/leader on its lease, created by a put-if-absent txn; the
 * key's create revision is the epoch. Followers pull the leader's backup
 * stream since their last seq and apply it with rc_load (cluster_repl.c).
 * The HTTP side (cluster_http.c) redirects writes to the leader, answers
 * GET /cluster, and holds a write's acknowledgement until the sync standby
 * has it (sync mode) and the lease is still valid (fencing).
 *
 * Without --cluster, srv->cluster is NULL and every function below is a
 * no-op that lets the request through.
 */
#ifndef KVD_CLUSTER_H
#define KVD_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "kvd.h"

struct kvd_request;
struct MHD_Response;

#define CLUSTER_ID_MAX 72
#define CLUSTER_URL_MAX 256
#define CLUSTER_MEMBERS_MAX 32

typedef enum cluster_role {
    CLUSTER_CANDIDATE = 0, /* no leader known, or this node campaigning */
    CLUSTER_FOLLOWER,
    CLUSTER_LEADER,
    CLUSTER_FENCED, /* holds the leader key but its lease may have expired */
} cluster_role;

typedef struct cluster cluster;

/* --cluster settings, from the command line. */
typedef struct cluster_config {
    const char *group; /* NULL: not clustered */
    const char *etcd;  /* comma-separated URLs */
    const char *node_id;
    const char *advertise;
    bool async; /* --replication async */
    unsigned lease_ttl_s;
    /* run on the election thread right after this node becomes the leader
     * (node-local writes such as --default-bucket's); may be NULL */
    void (*on_promote)(kvd *srv);
} cluster_config;

/* Check the flags alone (names, URLs, TTL): 0, or -1 with one line in WHY. */
int cluster_config_check(const cluster_config *cc, char *why, size_t cap);

/* Join the group: check the data directory's CLUSTER file, reach etcd
 * (bounded retry), refuse a duplicate --node-id, take a lease, start the
 * lease and election threads, and — for an empty directory while another
 * node leads — clone from the leader before the server opens its stores.
 * srv->db must be open; the policy store is not yet. On failure prints one
 * line to stderr and returns -1. */
int cluster_start(kvd *srv, const cluster_config *cc);
/* Start pulling from the leader (after the policy store is open). */
int cluster_serve(kvd *srv);
/* A re-clone waits in DIR.reclone (main restarts on it after SIGUSR1). */
bool cluster_reclone_ready(const kvd *srv);
/* Before the engine opens DIR: put a completed re-clone in its place. 1
 * swapped, 0 nothing to do, -1 with WHY. */
int cluster_dir_finish_reclone(const char *dir, char *why, size_t cap);
/* Stop every thread, release leadership and the lease. NULL-safe. */
void cluster_stop(kvd *srv);

/* May this node write locally right now (the leader, or no cluster)? Stores
 * opened on a follower must not create anything (that would fork its
 * history from the leader's). */
bool cluster_may_write(const kvd *srv);
cluster_role cluster_current_role(const kvd *srv);
/* The leader's advertised URL into OUT ("" when none is known or without
 * --cluster). */
void cluster_leader_of(const kvd *srv, char *out, size_t cap);

/* Header time: route REQ for the cluster. Writes on a non-leader get 307 to
 * the leader (or 503 no_leader); ?consistent=1 reads likewise. True when the
 * request goes on here; false when it has been answered. */
bool cluster_route(struct kvd_request *req);
/* Body time, POST /:bucket/: on a non-leader a batch of gets only is a
 * read, served here, and one with a write goes to the leader (307 / 503);
 * on a sync-mode leader without a standby, one with a write is refused (503
 * no_sync_standby, nothing written). True when the request goes on here. */
bool cluster_route_batch(struct kvd_request *req);
/* A script run's commit (route_scripts.c): may its writes be made here?
 * Runs are routed as reads (cluster_route serves them on any member); one
 * that writes may commit only on a leader that did not take it as a read
 * and, in sync mode, has a standby. True without --cluster. */
bool cluster_script_may_commit(const struct kvd_request *req);
/* Answer a write that may not be made here, as cluster_route would have:
 * 307 to the leader, 503 no_leader, or 503 no_sync_standby. */
void cluster_answer_write_elsewhere(struct kvd_request *req);
/* GET /cluster (no credential). */
void cluster_route_info(struct kvd_request *req);
/* GET /healthz?role=leader: 200 on the leader, else 503. True when it
 * answered. */
bool cluster_healthz(struct kvd_request *req);

/* http_send's hook, for an answer STATUS with RESP (owned by the caller
 * until this returns true). A 2xx answer to a write (PUT, POST, PATCH,
 * DELETE) is acknowledged only once the sync standby holds the database's
 * last seq and this node still leads on a valid lease: the hook takes RESP
 * and parks the request (park.h, PARK_CH_ACK) instead of blocking its
 * thread; it is answered (http_send_now) with RESP when the standby
 * confirms, or with 503 not_acknowledged when leadership or the lease is
 * lost, at the deadline (--lease-ttl + 10 s) or when kvd stops. True when
 * the hook took RESP (answered or parked); false: send it as it is. Must
 * run in REQ's access handler (its pool thread). */
bool cluster_gate_response(struct kvd_request *req, unsigned status, struct MHD_Response *resp);

/* The acknowledgement decision for a write at SEQ, without blocking: 1
 * acknowledge; -1 do not (the reason in *WHY: not the leader, fenced, or
 * DEADLINE_NS passed); 0 not yet — look again at a notification on
 * PARK_CH_ACK or at *RECHECK_NS (the deadline, or the lease's end if
 * sooner). */
int cluster_ack_decide(kvd *srv, uint64_t seq, uint64_t deadline_ns, const char **why,
                       uint64_t *recheck_ns);

/* The most a pull of follower NODE_ID may carry (rc_backup_until): on a
 * sync-mode leader, a follower other than the sync standby gets only what
 * the standby holds, so no member but the standby (the only one that may
 * take over) ever holds a write the standby lacks, and after a failover
 * every follower's history is a prefix of the new leader's (it follows on
 * incrementally instead of re-cloning). UINT64_MAX: no limit (async mode,
 * not the leader, the standby itself). */
uint64_t cluster_ship_limit(kvd *srv, const char *node_id);

/* The leader learns a follower's progress from its pulls (cluster_http.c
 * calls this for GET /admin/backup with X-Ringcask-Node). */
void cluster_note_pull(kvd *srv, const char *node_id, const char *database, uint64_t applied);

#endif
