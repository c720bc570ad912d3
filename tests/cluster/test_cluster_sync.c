/*
 * test_cluster_sync.c — sync replication's acknowledgement wait and the
 * followers' long poll:
 *  - many concurrent writers on a leader with two HTTP threads are all
 *    acknowledged, and each acknowledged write is on the sync standby the
 *    moment its 201 arrives;
 *  - writes waiting for the standby hold no HTTP thread: with both
 *    followers frozen, more writes than the leader has threads wait at
 *    once while the leader still answers other requests, and all are
 *    acknowledged once the followers run again;
 *  - idle followers long-poll: the leader holds their pulls parked, an idle
 *    group exchanges a handful of pulls in seconds (not one per few
 *    milliseconds), and a write still reaches every follower.
 */
#include <stdatomic.h>

#include "clustertest.h"

typedef struct burst {
    int leader, id, writes;
    pthread_t th;
} burst;

/* The writers and their counts live here, not on a test's stack: an
 * assertion leaves the test while they still run; the teardown stops the
 * group (their requests fail at once) and joins them. */
#define BURSTS 24
static burst BS[BURSTS];
static int NBS;
static _Atomic int ACKED, REFUSED, MISSING, ANSWERED;

static void sync_teardown(void)
{
    group_cleanup(&G);
    for (int t = 0; t < NBS; t++)
        pthread_join(BS[t].th, NULL);
    NBS = 0;
}

TestSuite(sync, .fini = sync_teardown, .timeout = 900);

static const char *const TWO_THREADS[] = {"--threads", "2", NULL};

/* A figure of the leader's Prometheus text: the first line starting with
 * NAME followed by a space; -1 when it did not answer. */
static long long metric(int i, const char *name)
{
    hresp r = hreq(G.nodes[i].url, "GET", "/metrics", NULL, 0, NULL, 10000, NULL);
    long long v = -1;
    if (r.status == 200 && r.body != NULL) {
        size_t n = strlen(name);
        for (const char *p = r.body; p != NULL && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
            if (strncmp(p, name, n) == 0 && p[n] == ' ') {
                v = strtoll(p + n + 1, NULL, 10);
                break;
            }
    }
    hresp_free(&r);
    return v;
}

/* The node the leader L names its sync standby (-1: none). */
static int standby_of(int l)
{
    json_t *o = cluster_info(&G, l, 10000);
    const char *id = json_string_value(json_object_get(o, "sync_standby"));
    int s = -1;
    for (int i = 0; id != NULL && i < G.n; i++)
        if (strcmp(G.nodes[i].id, id) == 0)
            s = i;
    json_decref(o);
    return s;
}

/* GET KEY straight from node I: its value equals WANT. */
static bool has_value(int i, const char *key, const char *want)
{
    char path[256];
    snprintf(path, sizeof path, "/%s/%s", G.bucket, key);
    hresp r = hreq(G.nodes[i].url, "GET", path, NULL, 0, G.bucket_key, 10000, NULL);
    bool ok = r.status == 200 && r.len == strlen(want) && memcmp(r.body, want, r.len) == 0;
    hresp_free(&r);
    return ok;
}

/* KEY on node I: 1 it holds WANT, 0 it answered without it (a definite
 * no), -1 no answer (stalled, busy). */
static int lookup(int i, const char *key, const char *want)
{
    char path[256];
    snprintf(path, sizeof path, "/%s/%s", G.bucket, key);
    hresp r = hreq(G.nodes[i].url, "GET", path, NULL, 0, G.bucket_key, 10000, NULL);
    int v = -1;
    if (r.status == 200)
        v = r.len == strlen(want) && memcmp(r.body, want, r.len) == 0;
    else if (r.status == 404)
        v = 0;
    hresp_free(&r);
    return v;
}

/* An acknowledged write is on the sync standby: the one named when it was
 * acknowledged holds it, and a standby named later is chosen holding every
 * acknowledged write, so the standby the leader names NOW must hold it.
 * Asked until the answer is definite (bounded): under load a member may not
 * answer in time, and between dropping a silent standby and naming the
 * next the leader names none; neither is a missing write. */
static bool on_a_standby(int leader, const char *key, const char *want)
{
    long long deadline = mono_ms() + 90000;
    int s = -1, v = -1;
    while (mono_ms() < deadline) {
        s = standby_of(leader);
        v = s >= 0 ? lookup(s, key, want) : -1;
        if (v >= 0)
            break;
        usleep(100000);
    }
    if (v == 1)
        return true;
    char line[512];
    int len =
        snprintf(line, sizeof line, "%s acknowledged but %s the sync standby (%s); held by", key,
                 v == 0 ? "not on" : "no answer from", s >= 0 ? G.nodes[s].id : "none named");
    for (int i = 0; i < G.n && len > 0 && (size_t)len < sizeof line; i++)
        len += snprintf(line + len, sizeof line - (size_t)len, " %s:%d", G.nodes[i].id,
                        lookup(i, key, want));
    fprintf(stderr, "%s\n", line);
    return false;
}

static void *burst_main(void *arg)
{
    burst *b = arg;
    for (int n = 0; n < b->writes; n++) {
        char key[48], value[48];
        snprintf(key, sizeof key, "c%d-%d", b->id, n);
        snprintf(value, sizeof value, "v%d-%d", b->id, n);
        /* a 503 leaves the write in doubt (a standby replaced under heavy
         * load, the deadline): retry it as a client would, same value */
        long st = 0;
        for (int tries = 0; tries < 20 && st != 201 && st != 200; tries++) {
            if (tries > 0)
                usleep(200000);
            hresp r = put_on(b->leader, key, value, 60000);
            st = r.status;
            if (st != 201 && st != 200)
                fprintf(stderr, "PUT %s: %ld %.200s\n", key, st, r.body ? r.body : "");
            hresp_free(&r);
            if (st != 503)
                break;
        }
        atomic_fetch_add(&ANSWERED, 1);
        if (st != 201 && st != 200) {
            atomic_fetch_add(&REFUSED, 1);
            continue;
        }
        atomic_fetch_add(&ACKED, 1);
        if (!on_a_standby(b->leader, key, value))
            atomic_fetch_add(&MISSING, 1);
    }
    return NULL;
}

/* COUNT writer threads of WRITES sequential PUTs each to LEADER. */
static void run_bursts(int count, int leader, int writes)
{
    for (int t = 0; t < count; t++) {
        BS[t] = (burst){.leader = leader, .id = t, .writes = writes};
        cr_assert_eq(pthread_create(&BS[t].th, NULL, burst_main, &BS[t]), 0);
        NBS = t + 1;
    }
}

static void join_bursts(void)
{
    for (int t = 0; t < NBS; t++)
        pthread_join(BS[t].th, NULL);
    NBS = 0;
}

Test(sync, many_concurrent_writes_all_acknowledged_and_on_the_standby)
{
    start_group(3, TWO_THREADS);
    int l = leader_now(NULL), s = standby_of(l);
    cr_assert(s >= 0 && s != l, "the leader names no sync standby");
    run_bursts(BURSTS, l, 8);
    join_bursts();
    cr_assert_eq(atomic_load(&REFUSED), 0, "%d of %d writes were not acknowledged",
                 atomic_load(&REFUSED), BURSTS * 8);
    cr_assert_eq(atomic_load(&ACKED), BURSTS * 8);
    cr_assert_eq(atomic_load(&MISSING), 0,
                 "%d acknowledged writes were not on the sync standby when acknowledged",
                 atomic_load(&MISSING));
    cr_assert(wait_converged(&G, 60000), "the group did not converge");
    for (int i = 0; i < G.n; i++)
        for (int t = 0; t < BURSTS; t += 5) {
            char key[48], value[48];
            snprintf(key, sizeof key, "c%d-7", t);
            snprintf(value, sizeof value, "v%d-7", t);
            cr_assert(has_value(i, key, value), "%s missing on %s", key, G.nodes[i].id);
        }
}

Test(sync, waiting_writes_hold_no_http_thread)
{
    start_group(3, TWO_THREADS);
    int l = leader_now(NULL), s = standby_of(l);
    cr_assert(s >= 0, "the leader names no sync standby");
    /* nobody can confirm a write now */
    for (int i = 0; i < G.n; i++)
        if (i != l)
            node_kill(&G, i, SIGSTOP);
    enum { N = 8 }; /* four times the leader's HTTP threads */
    run_bursts(N, l, 1);
    /* N parked at once (at most the 2 followers' pulls among them: at least
     * N - 2 writes, three times the threads), and the leader answers
     * /metrics meanwhile: with a thread held per waiting write, neither
     * could happen. (No wait before the writes: a standby frozen for 2
     * TTLs is dropped, and writes are then refused up front.) */
    long long parked = 0;
    for (int k = 0; k < 300 && parked < N; k++) {
        parked = metric(l, "kvd_waiters");
        cr_assert(parked >= 0, "the leader did not answer /metrics while writes waited");
        if (parked < N)
            usleep(100000);
    }
    int early = atomic_load(&ACKED);
    for (int i = 0; i < G.n; i++)
        if (i != l)
            node_kill(&G, i, SIGCONT);
    cr_assert_geq(parked, N, "only %lld requests waited at once (%d writes sent)", parked, N);
    cr_assert_eq(early, 0, "%d writes were acknowledged while no follower could confirm them",
                 early);
    join_bursts();
    cr_assert_eq(atomic_load(&REFUSED), 0, "%d writes were not acknowledged once the followers ran",
                 atomic_load(&REFUSED));
    cr_assert_eq(atomic_load(&MISSING), 0, "%d acknowledged writes were not on the standby",
                 atomic_load(&MISSING));
}

Test(sync, idle_followers_long_poll_and_still_see_writes)
{
    start_group(3, NULL);
    cr_assert(wait_converged(&G, 60000));
    int l = leader_now(NULL), s = standby_of(l);
    cr_assert(s >= 0, "the leader names no sync standby");
    /* the followers' pulls wait on the leader (parked) instead of polling */
    long long parked = 0;
    for (int k = 0; k < 300 && parked < 1; k++) {
        parked = metric(l, "kvd_waiters");
        if (parked < 1)
            usleep(100000);
    }
    cr_assert_geq(parked, 1, "no follower's pull ever waited on the idle leader");
    /* an idle group: a few pulls per follower in 3 s (each waits up to 2 s),
     * not one every few milliseconds. A slower machine only lowers it. */
    const char *count = "kvd_http_request_duration_seconds_count{route=\"backup\"}";
    long long c0 = metric(l, count);
    sleep(3);
    long long c1 = metric(l, count);
    cr_assert(c0 >= 0 && c1 >= c0, "no backup request count in the leader's /metrics");
    cr_assert_leq(c1 - c0, 12, "%lld pulls in 3 s of an idle group: the followers poll", c1 - c0);
    /* a write still reaches every follower */
    hresp r = put_on(l, "after-idle", "fresh", 30000);
    cr_assert_eq(r.status, 201, "PUT on the leader answered %ld: %.200s", r.status, r.body);
    hresp_free(&r);
    cr_assert(has_value(s, "after-idle", "fresh"), "acknowledged but not on the standby");
    for (int i = 0; i < G.n; i++) {
        bool seen = false;
        for (int k = 0; k < 300 && !seen; k++) {
            seen = has_value(i, "after-idle", "fresh");
            if (!seen)
                usleep(100000);
        }
        cr_assert(seen, "%s never received the write", G.nodes[i].id);
    }
}
