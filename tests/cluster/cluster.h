/*
 * cluster.h — the replica-group harness of the cluster suites, written
 * against the contract (CLUSTER.md of the project's docs), not against the
 * implementation: a single-member etcd on free 127.0.0.1 ports with a
 * temporary data dir, N kvd started with --cluster/--etcd/--node-id/
 * --advertise, and relays the harness owns (relay.h): one in front of every
 * node (the node advertises it, so node-to-node traffic and redirected
 * clients cross it) and one between every node and etcd.
 *
 * Every wait is bounded; every process started here dies with the test
 * (PR_SET_PDEATHSIG), and group_cleanup (also registered with atexit) kills
 * what is left and removes the temporary directory.
 */
#ifndef CLUSTER_HARNESS_H
#define CLUSTER_HARNESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "relay.h"
#include "testkit.h" /* mono_ms, free_port, tk_request */

#define GROUP_MAX 5

typedef struct etcd_proc {
    pid_t pid;
    int client_port, peer_port;
    char dir[300];
    char url[64];
} etcd_proc;

typedef struct node {
    pid_t pid;
    int port;       /* kvd's own listener (direct access for the tests) */
    relay *front;   /* what the node advertises */
    relay *to_etcd; /* what the node is given as --etcd */
    char id[32];
    char dir[300]; /* data directory */
    char log[300]; /* stdout+stderr of every run, appended */
    char url[64];  /* direct */
    char adv[64];  /* advertised (the relay) */
    bool stopped;  /* SIGSTOPped */
} node;

typedef struct group {
    char root[256];
    char name[32];
    char token_file[300];
    char token[80];
    etcd_proc etcd;
    int n;
    node nodes[GROUP_MAX];
    const char *extra[24]; /* flags for every node (NULL-terminated) */
    char bucket[64], bucket_key[128];
} group;

/* etcd */
bool etcd_start(etcd_proc *e, const char *root);
bool etcd_restart(etcd_proc *e); /* same ports, same data */
void etcd_kill(etcd_proc *e);

/* Start etcd and N nodes (flags EXTRA, NULL-terminated, for each) and wait
 * for a leader. False when anything did not come up (the reason on stderr).
 * G is registered for atexit cleanup. */
bool group_start(group *g, int n, const char *const *extra);
/* Start node I (again: same dir, port, relays). True when its ready line
 * came. */
bool node_start(group *g, int i);
void node_kill(group *g, int i, int sig); /* SIGKILL: waits for the death */
void group_cleanup(group *g);
/* The log bytes of node I from OFFSET on (malloc'ed, NUL-terminated). */
char *node_log(const group *g, int i, long offset);
long node_log_size(const group *g, int i);

/* HTTP with a bounded time. The answer's status is 0 when no answer came. */
typedef tk_resp hresp;
hresp hreq(const char *base, const char *method, const char *path, const char *body, size_t blen,
           const char *bearer, long timeout_ms, const char *const *hdrs);
const char *hresp_header(const hresp *r, const char *name, char *buf, size_t cap);
json_t *hresp_json(const hresp *r);
void hresp_free(hresp *r);

/* GET /cluster of node I (NULL when it did not answer 200 with JSON). */
json_t *cluster_info(const group *g, int i, long timeout_ms);
/* The node whose own /cluster says role "leader" with the highest epoch,
 * polled until TIMEOUT_MS; -1 when none. *EPOCH gets its epoch. */
int wait_leader(const group *g, long timeout_ms, long long *epoch, int except);
/* Which node an advertised or direct URL names (-1: none). */
int node_of_url(const group *g, const char *url);
/* Wait until the leader names a sync standby and every running member is a
 * follower with lag 0 (bounded). */
bool wait_healthy(const group *g, long timeout_ms);
/* Wait until every running node's /cluster last_seq is the leader's. */
bool wait_converged(const group *g, long timeout_ms);

/* The ledger: every acknowledged write. */
typedef struct ack {
    char key[48];
    char value[48];
    uint64_t seq; /* the ETag */
    int node;
    long long t_send, t_recv;
} ack;

typedef struct ledger {
    pthread_mutex_t mu;
    ack *acks;
    size_t n, cap;
    uint64_t attempts, unknown; /* sent; no answer or 5xx (in doubt) */
} ledger;

void ledger_init(ledger *l);
void ledger_add(ledger *l, const ack *a);
void ledger_free(ledger *l);

/* Writer threads: each PUTs unique keys "PREFIX<thread>-<n>" to the bucket,
 * to the node it believes leads (following 307s itself, direct ports), or to
 * every node in turn when TO_ALL (then it never follows a redirect, so each
 * ack names the node that gave it). */
typedef struct writers {
    group *g;
    ledger *led;
    int threads;
    bool to_all;
    long timeout_ms;
    char prefix[16];
    _Atomic int stop;
    _Atomic int leader_hint;
    pthread_t th[16];
} writers;

void writers_start(writers *w, group *g, ledger *l, int threads, bool to_all, const char *prefix);
void writers_stop(writers *w);

/* Every key of the ledger (from index FROM) on node I with its value and
 * ETag: the number missing or different (the first few printed). */
size_t ledger_missing(const group *g, int i, const ledger *l, size_t from);

/* Create bucket g->bucket through node I (following redirects). */
bool group_bucket(group *g, int i, const char *name);

/* kvdump --dir of node I's directory: the summary line's counts. */
bool node_dump(const group *g, int i, const char *out, long *records, long *tombstones,
               unsigned long long *lo, unsigned long long *hi);

#endif
