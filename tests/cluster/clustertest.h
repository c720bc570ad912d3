/*
 * clustertest.h — what the cluster suites share on top of cluster.h: the
 * group of the running test (one per test process: Criterion forks each
 * test), a skip when this kvd has no --cluster at all, the fixture's
 * teardown, and figures printed for the benchmarks page.
 */
#ifndef CLUSTER_CLUSTERTEST_H
#define CLUSTER_CLUSTERTEST_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "cluster.h"

static group G __attribute__((unused));
/* The writers and their ledger live here, not on a test's stack: an
 * assertion leaves the test function while they still run; the teardown
 * stops them first. */
static ledger LED __attribute__((unused));
static writers W __attribute__((unused));

/* The lease TTL every suite runs with (the contract's minimum, to keep CI
 * short): failover must take at most this + 3 s. */
#define TTL_S 2
#define FAILOVER_BOUND_MS ((TTL_S + 3) * 1000LL)

/* Does this kvd know --cluster? Read from its --help. */
static inline bool kvd_has_cluster(void)
{
    char cmd[1200];
    const char *bin = getenv("KVD_TEST_BIN") ? getenv("KVD_TEST_BIN") : KVD_BIN;
    snprintf(cmd, sizeof cmd, "'%s' --help 2>&1 | grep -q -- '--cluster'", bin);
    return system(cmd) == 0;
}

#define NEED_CLUSTER()                                                                             \
    do {                                                                                           \
        if (!kvd_has_cluster())                                                                    \
            cr_skip_test("this kvd has no --cluster (replica groups not built in)");               \
    } while (0)

static inline void group_teardown(void)
{
    if (W.threads > 0)
        writers_stop(&W);
    group_cleanup(&G);
}

/* Start N nodes with EXTRA flags and make bucket "t" through the leader. */
static inline void start_group(int n, const char *const *extra)
{
    NEED_CLUSTER();
    cr_assert(group_start(&G, n, extra), "the group did not start with a leader");
    cr_assert(wait_healthy(&G, 60000), "the group did not name a sync standby within 60 s");
    /* a 503 (not acknowledged) may still have created it, its key unseen:
     * then another name */
    bool made = false;
    for (int k = 0; k < 5 && !made; k++) {
        char name[16];
        if (k == 0)
            snprintf(name, sizeof name, "t");
        else
            snprintf(name, sizeof name, "t%d", k);
        int l = wait_leader(&G, 30000, NULL, -1);
        cr_assert(l >= 0, "no leader");
        made = group_bucket(&G, l, name);
    }
    cr_assert(made, "no bucket could be created through the leader");
}

/* The leader now (asserting there is one within 30 s). */
static inline int leader_now(long long *epoch)
{
    int l = wait_leader(&G, 30000, epoch, -1);
    cr_assert(l >= 0, "no leader within 30 s");
    return l;
}

/* A PUT straight to node I (no redirect followed). */
static inline hresp put_on(int i, const char *key, const char *value, long timeout_ms)
{
    char path[256];
    snprintf(path, sizeof path, "/%s/%s", G.bucket, key);
    return hreq(G.nodes[i].url, "PUT", path, value, strlen(value), G.bucket_key, timeout_ms, NULL);
}

/* Probe every running node but EXCEPT with PUTs until one acknowledges; the
 * node (-1 after LIMIT_MS) and the time of the acknowledgement. Each ack is
 * added to LED. */
static inline int first_ack(ledger *led, int except, long long limit_ms, long long *when)
{
    long long deadline = mono_ms() + limit_ms;
    static int probe;
    while (mono_ms() < deadline) {
        for (int i = 0; i < G.n; i++) {
            if (i == except || G.nodes[i].pid <= 0 || G.nodes[i].stopped)
                continue;
            ack a = {.node = i};
            snprintf(a.key, sizeof a.key, "probe-%d-%d", (int)getpid(), probe++);
            snprintf(a.value, sizeof a.value, "p%d", probe);
            a.t_send = mono_ms();
            hresp r = put_on(i, a.key, a.value, 1000);
            a.t_recv = mono_ms();
            bool ok = r.status == 200 || r.status == 201;
            char e[64];
            if (ok && hresp_header(&r, "ETag", e, sizeof e))
                a.seq = strtoull(e + (e[0] == '"'), NULL, 10);
            hresp_free(&r);
            if (ok) {
                ledger_add(led, &a);
                *when = a.t_recv;
                return i;
            }
        }
        usleep(20000);
    }
    return -1;
}

/* Acks of node I whose request was sent after T (ms), or answered after T
 * when BY_RECV: the count, the first printed. */
static inline size_t acks_after(ledger *led, int i, long long t, bool by_recv)
{
    size_t n = 0;
    pthread_mutex_lock(&led->mu);
    for (size_t k = 0; k < led->n; k++) {
        const ack *a = &led->acks[k];
        long long at = by_recv ? a->t_recv : a->t_send;
        if (a->node == i && at > t) {
            if (n++ == 0)
                fprintf(stderr,
                        "%s acknowledged %s (seq %llu) sent at %lld, answered at %lld "
                        "(limit %lld)\n",
                        G.nodes[i].id, a->key, (unsigned long long)a->seq, a->t_send, a->t_recv, t);
        }
    }
    pthread_mutex_unlock(&led->mu);
    return n;
}

/* Two nodes acknowledging alternately: an ack by A, then (strictly later) one
 * by B, then (strictly later) one by A again, all within [FROM, TO]. The
 * count of such returns. */
static inline size_t leadership_flaps(ledger *led, long long from, long long to)
{
    size_t flaps = 0;
    pthread_mutex_lock(&led->mu);
    for (size_t x = 0; x < led->n; x++) {
        const ack *b = &led->acks[x];
        if (b->t_send < from || b->t_recv > to)
            continue;
        bool before = false, after = false;
        for (size_t y = 0; y < led->n && !(before && after); y++) {
            const ack *a = &led->acks[y];
            if (a->node == b->node || a->t_send < from || a->t_recv > to)
                continue;
            if (a->t_recv < b->t_send)
                before = true;
            if (a->t_send > b->t_recv && a->node != b->node)
                after = true;
        }
        if (before && after && flaps++ == 0)
            fprintf(stderr, "%s acknowledged %s between acknowledgements of another node\n",
                    G.nodes[b->node].id, b->key);
    }
    pthread_mutex_unlock(&led->mu);
    return flaps;
}

/* The ledger's acks so far all on node I (every value; the count missing). */
static inline size_t missing_on(ledger *led, int i)
{
    pthread_mutex_lock(&led->mu);
    ledger snap = {.n = led->n};
    snap.acks = malloc((snap.n ? snap.n : 1) * sizeof *snap.acks);
    memcpy(snap.acks, led->acks, snap.n * sizeof *snap.acks);
    pthread_mutex_unlock(&led->mu);
    size_t m = ledger_missing(&G, i, &snap, 0);
    free(snap.acks);
    return m;
}

static inline int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

/* Print a distribution (and append it to $CLUSTER_FIGURES when set). */
static inline void figures(const char *what, long long *v, size_t n)
{
    if (n == 0)
        return;
    qsort(v, n, sizeof *v, cmp_ll);
    char line[512];
    snprintf(line, sizeof line, "%s: n %zu, min %lld, p50 %lld, p90 %lld, max %lld ms\n", what, n,
             v[0], v[n / 2], v[(n * 9) / 10 < n ? (n * 9) / 10 : n - 1], v[n - 1]);
    fputs(line, stderr);
    const char *f = getenv("CLUSTER_FIGURES");
    FILE *out = f ? fopen(f, "a") : NULL;
    if (out) {
        fputs(line, out);
        fprintf(out, "%s: all:", what);
        for (size_t k = 0; k < n; k++)
            fprintf(out, " %lld", v[k]);
        fputc('\n', out);
        fclose(out);
    }
}

#endif
