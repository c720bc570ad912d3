/*
 * test_cluster_catchup.c — followers behind and members at rest (guarantees
 * 4 and 6 of the cluster contract):
 *  - a follower killed while 100,000 keys are written catches up
 *    incrementally when restarted (no re-clone in its log, far fewer bytes
 *    pulled than a full copy) and converges;
 *  - a follower behind the leader's tombstone horizon re-clones by itself
 *    (one log line) and converges;
 *  - a quiet group: every member's full dump verifies to the same counts and
 *    seq range, and key by key (values, ETags, TTLs) and bucket credentials
 *    agree on every member.
 */
#include <ctype.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "clustertest.h"

TestSuite(catchup, .fini = group_teardown, .timeout = 1800);

/* Write keys PREFIX000000.. [FROM, TO) through node L in batches of 1000,
 * values of VSIZE bytes. */
static void batch_write(int l, const char *prefix, int from, int to, size_t vsize)
{
    size_t cap = 1000 * (vsize + 96) + 64;
    char *body = malloc(cap), *val = malloc(vsize + 1);
    unsigned seed = (unsigned)from * 31u + (unsigned)vsize;
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+-";
    char path[96];
    snprintf(path, sizeof path, "/%s/", G.bucket);
    for (int b = from; b < to; b += 1000) {
        size_t off = (size_t)snprintf(body, cap, "{\"ops\":[");
        for (int k = b; k < to && k < b + 1000; k++) {
            /* random letters: values that compress no better than real data */
            for (size_t c = 0; c < vsize; c++)
                val[c] = abc[rand_r(&seed) % 64];
            val[vsize] = '\0';
            off +=
                (size_t)snprintf(body + off, cap - off, "%s{\"set\":\"%s%06d\",\"value\":\"%s\"}",
                                 k == b ? "" : ",", prefix, k, val);
        }
        off += (size_t)snprintf(body + off, cap - off, "]}");
        /* sets of fixed values: sent again after a 503 (not acknowledged in
         * time), they change nothing more */
        hresp r = {0};
        for (int attempt = 0; attempt < 20; attempt++) {
            hresp_free(&r);
            r = hreq(G.nodes[l].url, "POST", path, body, off, G.bucket_key, 120000, NULL);
            if (r.status != 503)
                break;
            usleep(200000);
        }
        cr_assert_eq(r.status, 200, "batch at %d answered %ld: %.200s", b, r.status, r.body);
        hresp_free(&r);
    }
    free(body);
    free(val);
}

static int follower_other_than_standby(int l)
{
    json_t *j = cluster_info(&G, l, 5000);
    const char *sb = j ? json_string_value(json_object_get(j, "sync_standby")) : NULL;
    int f = -1;
    for (int i = 0; i < G.n; i++)
        if (i != l && (sb == NULL || strcmp(sb, G.nodes[i].id) != 0))
            f = i;
    json_decref(j);
    return f;
}

static bool log_says_clone(int i, long from)
{
    char *s = node_log(&G, i, from);
    bool yes = false;
    for (char *p = s; *p && !yes; p++) {
        *p = (char)tolower((unsigned char)*p);
    }
    yes = strstr(s, "clon") != NULL;
    free(s);
    return yes;
}

Test(catchup, killed_follower_catches_up_100k_keys_incrementally)
{
    start_group(3, NULL);
    int l = leader_now(NULL);
    /* a database worth copying: 20,000 values of 2 KiB (~40 MiB) */
    batch_write(l, "big", 0, 20000, 2048);
    cr_assert(wait_converged(&G, 300000), "the group did not converge after the fill");
    int f = follower_other_than_standby(l);
    cr_assert(f >= 0);
    node_kill(&G, f, SIGKILL);
    batch_write(l, "small", 0, 100000, 8);
    char full[320];
    snprintf(full, sizeof full, "%s/leader-full.rcb", G.root);
    long rec = 0, tomb = 0;
    unsigned long long lo = 0, hi = 0;
    cr_assert(node_dump(&G, l, full, &rec, &tomb, &lo, &hi), "kvdump of the leader failed");
    struct stat st;
    cr_assert_eq(stat(full, &st), 0);
    long off = node_log_size(&G, f);
    uint64_t before = relay_bytes(G.nodes[l].front);
    long long t0 = mono_ms();
    cr_assert(node_start(&G, f), "the follower did not restart");
    cr_assert(wait_converged(&G, 300000), "the restarted follower did not converge");
    long long took = mono_ms() - t0;
    uint64_t pulled = relay_bytes(G.nodes[l].front) - before;
    fprintf(stderr,
            "catch-up of 100000 keys: %lld ms, %llu bytes through the leader's relay; a full "
            "dump is %lld bytes (%ld records)\n",
            took, (unsigned long long)pulled, (long long)st.st_size, rec);
    cr_assert(!log_says_clone(f, off), "the follower re-cloned instead of catching up");
    cr_assert_lt(pulled, (uint64_t)st.st_size / 2,
                 "catching up pulled %llu bytes, a full copy is %lld: not incremental",
                 (unsigned long long)pulled, (long long)st.st_size);
    /* the keys are there, on the follower itself */
    for (int k = 0; k < 100000; k += 9973) {
        char path[96];
        snprintf(path, sizeof path, "/%s/small%06d", G.bucket, k);
        hresp r = hreq(G.nodes[f].url, "GET", path, NULL, 0, G.bucket_key, 30000, NULL);
        cr_assert_eq(r.status, 200, "small%06d on the follower: %ld", k, r.status);
        hresp_free(&r);
    }
}

/* kvdump --since SINCE of node I's directory: its exit status. */
static int dump_since(int i, unsigned long long since)
{
    char cmd[900];
    snprintf(cmd, sizeof cmd, "'%s' --dir '%s' --since %llu -o /dev/null 2>/dev/null", KVDUMP_BIN,
             G.nodes[i].dir, since);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static long write_retry(int l, const char *method, const char *path, const char *body);

/* POST /admin/merge on node L (the leader): the tombstone horizon it
 * answers with. */
static unsigned long long force_merge(int l)
{
    hresp r = hreq(G.nodes[l].url, "POST", "/admin/merge", "", 0, G.token, 120000, NULL);
    cr_assert_eq(r.status, 200, "POST /admin/merge on the leader: %ld %.300s", r.status, r.body);
    json_t *o = hresp_json(&r);
    cr_assert(json_is_true(json_object_get(o, "merged")), "the merge did nothing: %.300s", r.body);
    unsigned long long h =
        (unsigned long long)json_integer_value(json_object_get(o, "tombstone_horizon"));
    json_decref(o);
    hresp_free(&r);
    return h;
}

/* The follower misses deletes; a merge forced on the leader (POST
 * /admin/merge) drops their tombstones, so the leader's horizon passes what
 * the follower holds: restarted, it cannot catch up incrementally and must
 * re-clone (one log line), then converge. */
Test(catchup, follower_behind_the_horizon_reclones)
{
    static const char *const flags[] = {"--tombstone-retention", "0", "--segment-bytes", "256K",
                                        NULL};
    start_group(3, flags);
    int l = leader_now(NULL);
    batch_write(l, "a", 0, 3000, 64);
    cr_assert(wait_converged(&G, 120000));
    int f = follower_other_than_standby(l);
    cr_assert(f >= 0);
    json_t *j = cluster_info(&G, f, 5000);
    cr_assert(j != NULL);
    unsigned long long applied =
        (unsigned long long)json_integer_value(json_object_get(j, "last_seq"));
    json_decref(j);
    node_kill(&G, f, SIGKILL);
    /* deletes spread over every segment: each holds dead data, so the
     * merge takes them all and may drop every tombstone (no segment left
     * out can hold an older version) */
    char path[96];
    for (int k = 0; k < 3000; k += 7) {
        snprintf(path, sizeof path, "/%s/a%06d", G.bucket, k);
        long st = write_retry(l, "DELETE", path, NULL);
        cr_assert_eq(st, 204, "DELETE a%06d: %ld", k, st);
    }
    cr_assert_eq(dump_since(l, applied), 0, "an incremental since %llu before the merge", applied);
    unsigned long long horizon = force_merge(l);
    cr_assert_gt(horizon, applied, "the merge left the horizon at %llu, the follower has %llu",
                 horizon, applied);
    cr_assert_eq(dump_since(l, applied), 3, "kvdump --since %llu after the merge", applied);
    long off = node_log_size(&G, f);
    cr_assert(node_start(&G, f), "the follower did not restart");
    if (!wait_converged(&G, 300000)) {
        char *lg = node_log(&G, f, off);
        fprintf(stderr, "the follower's log since its restart:\n%s\n", lg);
        free(lg);
        cr_assert(false, "the re-cloned follower did not converge");
    }
    cr_assert(log_says_clone(f, off), "no log line says the follower re-cloned");
    /* the deletes it missed are deletes on it too */
    for (int k = 0; k < 3000; k += 7 * 37) {
        snprintf(path, sizeof path, "/%s/a%06d", G.bucket, k);
        hresp r = hreq(G.nodes[f].url, "GET", path, NULL, 0, G.bucket_key, 30000, NULL);
        cr_assert_eq(r.status, 404, "a%06d, deleted, on the re-cloned follower: %ld", k, r.status);
        hresp_free(&r);
        snprintf(path, sizeof path, "/%s/a%06d", G.bucket, k + 1);
        r = hreq(G.nodes[f].url, "GET", path, NULL, 0, G.bucket_key, 30000, NULL);
        cr_assert_eq(r.status, 200, "a%06d on the re-cloned follower: %ld", k + 1, r.status);
        hresp_free(&r);
    }
    int n = 0;
    char *s = node_log(&G, f, off);
    for (char *p = s; (p = strcasestr(p, "re-cloned")) != NULL; p++)
        n++;
    free(s);
    cr_assert_eq(n, 1, "%d log lines say the follower re-cloned", n);
}

/* METHOD PATH BODY on node L, sent again after a 503 (not acknowledged in
 * time: the writes below are all fine to repeat): the final status. */
static long write_retry(int l, const char *method, const char *path, const char *body)
{
    long st = 0;
    for (int attempt = 0; attempt < 20; attempt++) {
        hresp r = hreq(G.nodes[l].url, method, path, body, body ? strlen(body) : 0, G.bucket_key,
                       30000, NULL);
        st = r.status;
        hresp_free(&r);
        if (st != 503)
            break;
        usleep(200000);
    }
    return st;
}

/* Every key of node I, by GET: value, ETag and X-Expires-At as one string. */
static char *key_state(int i, const char *key)
{
    char path[256], e[64] = "", x[64] = "";
    snprintf(path, sizeof path, "/%s/%s", G.bucket, key);
    hresp r = hreq(G.nodes[i].url, "GET", path, NULL, 0, G.bucket_key, 30000, NULL);
    hresp_header(&r, "ETag", e, sizeof e);
    hresp_header(&r, "X-Expires-At", x, sizeof x);
    size_t cap = r.len + 200;
    char *s = malloc(cap);
    snprintf(s, cap, "%ld|%s|%s|%.*s", r.status, e, x, (int)r.len, r.body);
    hresp_free(&r);
    return s;
}

Test(catchup, quiet_group_members_are_equal)
{
    start_group(3, NULL);
    int l = leader_now(NULL);
    batch_write(l, "q", 0, 3000, 32);
    char path[256];
    for (int k = 0; k < 300; k++) { /* TTLs, deletes, increments, a script */
        snprintf(path, sizeof path, "/%s/ttl%03d?ttl=%d", G.bucket, k, 3600 + k);
        long st = write_retry(l, "PUT", path, "t");
        cr_assert(st == 201 || st == 200, "PUT %s: %ld", path, st);
        snprintf(path, sizeof path, "/%s/q%06d", G.bucket, k * 7);
        st = write_retry(l, "DELETE", path, NULL);
        cr_assert(st == 204 || st == 404, "DELETE %s: %ld", path, st);
        snprintf(path, sizeof path, "/%s/counter", G.bucket);
        st = write_retry(l, "PATCH", path, "+3");
        cr_assert(st == 201 || st == 200, "PATCH %s: %ld", path, st);
    }
    const char *script = "kv.set('from-script', 'yes') kv.say('ok')";
    snprintf(path, sizeof path, "/%s/scripts/w", G.bucket);
    long st = write_retry(l, "PUT", path, script);
    cr_assert(st == 200 || st == 201, "script upload: %ld", st);
    snprintf(path, sizeof path, "/%s/scripts/w/run", G.bucket);
    st = write_retry(l, "POST", path, "");
    cr_assert_eq(st, 200, "script run: %ld", st);
    hresp r;
    /* a read token, issued on the leader */
    snprintf(path, sizeof path, "/%s/tokens/", G.bucket);
    const char *tb = "{\"prefix\":\"q\",\"permissions\":[\"read\"],\"ttl\":3600}";
    r = hreq(G.nodes[l].url, "POST", path, tb, strlen(tb), G.bucket_key, 30000, NULL);
    json_t *tj = hresp_json(&r);
    cr_assert(r.status == 200 && tj, "token: %ld", r.status);
    char token[600];
    snprintf(token, sizeof token, "%s", json_string_value(json_object_get(tj, "token")));
    json_decref(tj);
    hresp_free(&r);
    cr_assert(wait_converged(&G, 120000), "the group did not become quiet and equal");

    /* full dumps verify to the same counts and seq range */
    long rec[GROUP_MAX], tomb[GROUP_MAX];
    unsigned long long lo[GROUP_MAX], hi[GROUP_MAX];
    for (int i = 0; i < G.n; i++) {
        char out[320];
        snprintf(out, sizeof out, "%s/full-%s.rcb", G.root, G.nodes[i].id);
        cr_assert(node_dump(&G, i, out, &rec[i], &tomb[i], &lo[i], &hi[i]), "kvdump of %s",
                  G.nodes[i].id);
        fprintf(stderr, "%s: records %ld, tombstones %ld, seq %llu..%llu\n", G.nodes[i].id, rec[i],
                tomb[i], lo[i], hi[i]);
    }
    for (int i = 1; i < G.n; i++) {
        cr_assert_eq(rec[i], rec[0], "records: %s %ld, %s %ld", G.nodes[i].id, rec[i],
                     G.nodes[0].id, rec[0]);
        cr_assert_eq(tomb[i], tomb[0], "tombstones differ on %s", G.nodes[i].id);
        cr_assert_eq(lo[i], lo[0], "seq range differs on %s", G.nodes[i].id);
        cr_assert_eq(hi[i], hi[0], "seq range differs on %s", G.nodes[i].id);
    }
    /* key by key, through every member's own HTTP */
    const char *keys[] = {"q000000", "q000007", "q000008",     "q002999", "ttl000",
                          "ttl299",  "counter", "from-script", "absent"};
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
        char *want = key_state(l, keys[k]);
        for (int i = 0; i < G.n; i++) {
            char *got = key_state(i, keys[k]);
            cr_assert_str_eq(got, want, "%s differs on %s", keys[k], G.nodes[i].id);
            free(got);
        }
        free(want);
    }
    for (int i = 0; i < G.n; i++) {
        char lp[128];
        snprintf(lp, sizeof lp, "/%s/?format=json&values=true&limit=10000", G.bucket);
        hresp a = hreq(G.nodes[l].url, "GET", lp, NULL, 0, G.bucket_key, 60000, NULL);
        hresp b = hreq(G.nodes[i].url, "GET", lp, NULL, 0, G.bucket_key, 60000, NULL);
        cr_assert_eq(b.status, 200);
        cr_assert(a.len == b.len && memcmp(a.body, b.body, a.len) == 0,
                  "the listing of %s differs from the leader's", G.nodes[i].id);
        hresp_free(&a);
        hresp_free(&b);
        /* credentials: the admin key, the token, a wrong key */
        snprintf(path, sizeof path, "/%s", G.bucket);
        r = hreq(G.nodes[i].url, "GET", path, NULL, 0, G.bucket_key, 30000, NULL);
        cr_assert_eq(r.status, 200, "the bucket's admin key on %s: %ld", G.nodes[i].id, r.status);
        hresp_free(&r);
        snprintf(path, sizeof path, "/%s/q000001", G.bucket);
        r = hreq(G.nodes[i].url, "GET", path, NULL, 0, token, 30000, NULL);
        cr_assert_eq(r.status, 200, "the leader's token on %s: %ld", G.nodes[i].id, r.status);
        hresp_free(&r);
        r = hreq(G.nodes[i].url, "GET", path, NULL, 0, "not-a-key", 30000, NULL);
        cr_assert_eq(r.status, 401, "a wrong key on %s: %ld", G.nodes[i].id, r.status);
        hresp_free(&r);
    }
}
