/*
 * test_cluster_routing.c — the routing table of the cluster contract, and
 * bad configurations refused at start (item 8):
 *  - a script run that only reads is served by a follower (GET and POST);
 *    one that writes answers 307, by GET too, and writes nothing there;
 *    POST /admin/merge answers 503 not_leader on a follower;
 *  - every kind of write on a follower answers 307 with an absolute
 *    Location on the leader's advertised URL, same path and query; sent
 *    there (method and body kept), it applies;
 *  - reads on followers carry X-Ringcask-Seq (404s too), ETags agree on
 *    every member, ?consistent=1 redirects to the leader;
 *  - /healthz is 200 everywhere, /healthz?role=leader 200 only on the leader;
 *    /cluster answers the documented shape on every member;
 *  - while no leader is known, a write answers 503 no_leader, Retry-After 1;
 *  - unreachable etcd, a duplicate --node-id, a directory of another group
 *    and impossible flags are refused with one line.
 */
#include <sys/wait.h>

#include "clustertest.h"

TestSuite(routing, .fini = group_teardown, .timeout = 900);

static int some_follower(int l)
{
    return (l + 1) % G.n;
}

/* METHOD PATH BODY on follower F must be a 307 to the leader L's advertised
 * URL with the same path; replayed there it answers WANT. */
static void redirected(int f, int l, const char *method, const char *path, const char *body,
                       const char *bearer, long want)
{
    hresp r =
        hreq(G.nodes[f].url, method, path, body, body ? strlen(body) : 0, bearer, 30000, NULL);
    cr_assert_eq(r.status, 307, "%s %s on a follower answered %ld: %.200s", method, path, r.status,
                 r.body);
    char loc[1024], want_loc[1200];
    cr_assert(hresp_header(&r, "Location", loc, sizeof loc) != NULL, "%s %s: no Location", method,
              path);
    snprintf(want_loc, sizeof want_loc, "%s%s", G.nodes[l].adv, path);
    cr_assert_str_eq(loc, want_loc, "%s %s: Location is not the leader's absolute URL", method,
                     path);
    hresp_free(&r);
    /* the method and body kept, through the advertised URL (the relay) */
    r = hreq(G.nodes[l].adv, method, path, body, body ? strlen(body) : 0, bearer, 30000, NULL);
    if (want == 0) /* any success */
        cr_assert(r.status >= 200 && r.status < 300,
                  "%s %s replayed on the leader answered %ld: %.200s", method, path, r.status,
                  r.body);
    else
        cr_assert_eq(r.status, want, "%s %s replayed on the leader answered %ld: %.200s", method,
                     path, r.status, r.body);
    hresp_free(&r);
}

Test(routing, every_write_on_a_follower_is_redirected_to_the_leader)
{
    start_group(3, NULL);
    int l = leader_now(NULL), f = some_follower(l);
    char p[256];
    snprintf(p, sizeof p, "/%s/r1?ttl=600", G.bucket);
    redirected(f, l, "PUT", p, "one", G.bucket_key, 201);
    snprintf(p, sizeof p, "/%s/r2", G.bucket);
    redirected(f, l, "POST", p, "two", G.bucket_key, 201);
    snprintf(p, sizeof p, "/%s/c", G.bucket);
    redirected(f, l, "PATCH", p, "+5", G.bucket_key, 201);
    snprintf(p, sizeof p, "/%s/r2", G.bucket);
    redirected(f, l, "DELETE", p, NULL, G.bucket_key, 204);
    snprintf(p, sizeof p, "/%s/", G.bucket);
    redirected(f, l, "POST", p, "{\"ops\":[{\"set\":\"b1\",\"value\":\"x\"},{\"get\":\"r1\"}]}",
               G.bucket_key, 200);
    snprintf(p, sizeof p, "/%s/scripts/s", G.bucket);
    redirected(f, l, "PUT", p, "kv.set('s1','y') kv.say('ok')", G.bucket_key, 0);
    cr_assert(wait_converged(&G, 60000));
    snprintf(p, sizeof p, "/%s/scripts/s/run", G.bucket);
    redirected(f, l, "POST", p, "", G.bucket_key, 200);
    redirected(f, l, "POST", "/", "{\"name\":\"t2\"}", G.token, 201);
    snprintf(p, sizeof p, "/%s/tokens/", G.bucket);
    redirected(f, l, "POST", p, "{\"permissions\":[\"read\"],\"ttl\":60}", G.bucket_key, 0);
    /* a batch of gets only is a read: served by the follower */
    snprintf(p, sizeof p, "/%s/", G.bucket);
    const char *gets = "{\"ops\":[{\"get\":\"r1\"}]}";
    cr_assert(wait_converged(&G, 60000));
    hresp r = hreq(G.nodes[f].url, "POST", p, gets, strlen(gets), G.bucket_key, 30000, NULL);
    cr_assert_eq(r.status, 200, "a batch of gets on a follower: %ld", r.status);
    cr_assert(strstr(r.body, "\"one\"") != NULL, "%s", r.body);
    hresp_free(&r);
    /* the redirected writes are on the follower now */
    snprintf(p, sizeof p, "/%s/s1", G.bucket);
    r = hreq(G.nodes[f].url, "GET", p, NULL, 0, G.bucket_key, 30000, NULL);
    cr_assert_eq(r.status, 200, "the script's write on the follower: %ld", r.status);
    hresp_free(&r);
}

static unsigned long long last_seq_of(int i)
{
    json_t *j = cluster_info(&G, i, 30000);
    cr_assert(j != NULL, "/cluster on %s", G.nodes[i].id);
    unsigned long long s = (unsigned long long)json_integer_value(json_object_get(j, "last_seq"));
    json_decref(j);
    return s;
}

/* CLUSTER.md: a script run is a write only when it writes. One that only
 * reads is served by the follower itself (its state, no redirect), by GET
 * and by POST; one that writes is a 307 to the leader, by GET too, and
 * nothing of it is written on the follower (whose history would fork). */
Test(routing, read_only_scripts_run_on_followers_writing_ones_go_to_the_leader)
{
    start_group(3, NULL);
    int l = leader_now(NULL), f = some_follower(l);
    char p[256];
    snprintf(p, sizeof p, "/%s/greeting", G.bucket);
    hresp r = hreq(G.nodes[l].url, "PUT", p, "hello", 5, G.bucket_key, 30000, NULL);
    cr_assert_eq(r.status, 201);
    hresp_free(&r);
    const char *reader = "kv.say(kv.get('greeting'), ' from ', kv.args.who or kv.method)";
    const char *writer = "kv.set('written', 'yes') kv.say('wrote')";
    snprintf(p, sizeof p, "/%s/scripts/reader", G.bucket);
    r = hreq(G.nodes[l].url, "PUT", p, reader, strlen(reader), G.bucket_key, 30000, NULL);
    cr_assert(r.status == 201 || r.status == 200, "upload: %ld", r.status);
    hresp_free(&r);
    snprintf(p, sizeof p, "/%s/scripts/writer", G.bucket);
    r = hreq(G.nodes[l].url, "PUT", p, writer, strlen(writer), G.bucket_key, 30000, NULL);
    cr_assert(r.status == 201 || r.status == 200, "upload: %ld", r.status);
    hresp_free(&r);
    cr_assert(wait_converged(&G, 60000));

    unsigned long long before = last_seq_of(f);
    snprintf(p, sizeof p, "/%s/scripts/reader/run?who=f", G.bucket);
    r = hreq(G.nodes[f].url, "GET", p, NULL, 0, G.bucket_key, 30000, NULL);
    cr_assert_eq(r.status, 200, "a read-only GET run on a follower: %ld %.200s", r.status, r.body);
    cr_assert(r.body != NULL && strstr(r.body, "hello from f") != NULL, "%.200s", r.body);
    hresp_free(&r);
    snprintf(p, sizeof p, "/%s/scripts/reader/run", G.bucket);
    r = hreq(G.nodes[f].url, "POST", p, "", 0, G.bucket_key, 30000, NULL);
    cr_assert_eq(r.status, 200, "a read-only POST run on a follower: %ld %.200s", r.status, r.body);
    cr_assert(r.body != NULL && strstr(r.body, "hello from POST") != NULL, "%.200s", r.body);
    hresp_free(&r);

    /* writing runs: 307 to the leader by either method, the query kept */
    const char *methods[] = {"GET", "POST"};
    for (int m = 0; m < 2; m++) {
        snprintf(p, sizeof p, "/%s/scripts/writer/run?n=%d", G.bucket, m);
        r = hreq(G.nodes[f].url, methods[m], p, m ? "" : NULL, 0, G.bucket_key, 30000, NULL);
        cr_assert_eq(r.status, 307, "a writing %s run on a follower: %ld %.200s", methods[m],
                     r.status, r.body);
        char loc[600], want[700];
        snprintf(want, sizeof want, "%s%s", G.nodes[l].adv, p);
        cr_assert(hresp_header(&r, "Location", loc, sizeof loc));
        cr_assert_str_eq(loc, want);
        hresp_free(&r);
    }
    cr_assert_eq(last_seq_of(f), before, "the follower wrote something of its own");
    snprintf(p, sizeof p, "/%s/written", G.bucket);
    r = hreq(G.nodes[f].url, "GET", p, NULL, 0, G.bucket_key, 30000, NULL);
    cr_assert_eq(r.status, 404, "the discarded run's write is on the follower: %ld", r.status);
    hresp_free(&r);
    /* replayed on the leader it writes, and the follower follows */
    snprintf(p, sizeof p, "/%s/scripts/writer/run", G.bucket);
    r = hreq(G.nodes[l].adv, "GET", p, NULL, 0, G.bucket_key, 30000, NULL);
    cr_assert_eq(r.status, 200, "the writing run on the leader: %ld %.200s", r.status, r.body);
    hresp_free(&r);
    cr_assert(wait_converged(&G, 60000));
    snprintf(p, sizeof p, "/%s/written", G.bucket);
    r = hreq(G.nodes[f].url, "GET", p, NULL, 0, G.bucket_key, 30000, NULL);
    cr_assert_eq(r.status, 200, "the leader's write on the follower: %ld", r.status);
    hresp_free(&r);

    /* a forced merge: the leader only; a follower names it */
    r = hreq(G.nodes[f].url, "POST", "/admin/merge", "", 0, G.token, 30000, NULL);
    cr_assert_eq(r.status, 503, "POST /admin/merge on a follower: %ld %.200s", r.status, r.body);
    json_t *j = hresp_json(&r);
    cr_assert_str_eq(json_string_value(json_object_get(j, "error")), "not_leader");
    cr_assert_str_eq(json_string_value(json_object_get(j, "leader")), G.nodes[l].adv);
    json_decref(j);
    hresp_free(&r);
    r = hreq(G.nodes[l].url, "POST", "/admin/merge", "", 0, G.token, 30000, NULL);
    cr_assert_eq(r.status, 200, "POST /admin/merge on the leader: %ld %.200s", r.status, r.body);
    hresp_free(&r);
}

/* Put k through the leader, wait until every member has it: its ETag. */
static void put_k_everywhere(int l, char *le, size_t cap)
{
    char p[256];
    snprintf(p, sizeof p, "/%s/k", G.bucket);
    hresp r = hreq(G.nodes[l].url, "PUT", p, "v", 1, G.bucket_key, 30000, NULL);
    cr_assert_eq(r.status, 201);
    cr_assert(hresp_header(&r, "ETag", le, cap));
    hresp_free(&r);
    cr_assert(wait_converged(&G, 60000));
}

Test(routing, every_get_carries_x_ringcask_seq)
{
    start_group(3, NULL);
    int l = leader_now(NULL), f = some_follower(l);
    char p[256], le[64], seq[64];
    put_k_everywhere(l, le, sizeof le);
    snprintf(p, sizeof p, "/%s/k", G.bucket);
    hresp r = hreq(G.nodes[l].url, "GET", p, NULL, 0, G.bucket_key, 30000, NULL);
    bool any = hresp_header(&r, "X-Ringcask-Seq", seq, sizeof seq) != NULL;
    hresp_free(&r);
    if (!any) /* the header comes with watching (?wait=), built separately */
        cr_skip_test("this kvd sends X-Ringcask-Seq on no GET, not even on the leader");
    for (int i = 0; i < G.n; i++) {
        r = hreq(G.nodes[i].url, "GET", p, NULL, 0, G.bucket_key, 30000, NULL);
        cr_assert_eq(r.status, 200, "GET on %s: %ld", G.nodes[i].id, r.status);
        cr_assert(hresp_header(&r, "X-Ringcask-Seq", seq, sizeof seq), "no X-Ringcask-Seq on %s",
                  G.nodes[i].id);
        cr_assert_geq(strtoull(seq, NULL, 10), strtoull(le + 1, NULL, 10));
        hresp_free(&r);
    }
    snprintf(p, sizeof p, "/%s/absent", G.bucket);
    r = hreq(G.nodes[f].url, "GET", p, NULL, 0, G.bucket_key, 30000, NULL);
    cr_assert_eq(r.status, 404);
    cr_assert(hresp_header(&r, "X-Ringcask-Seq", seq, sizeof seq), "a 404 without the seq");
    hresp_free(&r);
    snprintf(p, sizeof p, "/%s/?prefix=k", G.bucket);
    r = hreq(G.nodes[f].url, "GET", p, NULL, 0, G.bucket_key, 30000, NULL);
    cr_assert_eq(r.status, 200);
    cr_assert(hresp_header(&r, "X-Ringcask-Seq", seq, sizeof seq), "a listing without the seq");
    hresp_free(&r);
}

Test(routing, reads_on_followers_agree_and_consistent_ones_redirect)
{
    start_group(3, NULL);
    int l = leader_now(NULL), f = some_follower(l);
    char p[256], e[64], le[64];
    put_k_everywhere(l, le, sizeof le);
    snprintf(p, sizeof p, "/%s/k", G.bucket);
    for (int i = 0; i < G.n; i++) {
        hresp r = hreq(G.nodes[i].url, "GET", p, NULL, 0, G.bucket_key, 30000, NULL);
        cr_assert_eq(r.status, 200, "GET on %s: %ld", G.nodes[i].id, r.status);
        cr_assert(hresp_header(&r, "ETag", e, sizeof e));
        cr_assert_str_eq(e, le, "the ETag differs on %s", G.nodes[i].id);
        hresp_free(&r);
    }
    hresp r;
    /* ?consistent=1 goes to the leader, query kept */
    snprintf(p, sizeof p, "/%s/k?consistent=1", G.bucket);
    r = hreq(G.nodes[f].url, "GET", p, NULL, 0, G.bucket_key, 30000, NULL);
    cr_assert_eq(r.status, 307, "a consistent read on a follower: %ld", r.status);
    char loc[600], want[700];
    snprintf(want, sizeof want, "%s%s", G.nodes[l].adv, p);
    cr_assert(hresp_header(&r, "Location", loc, sizeof loc));
    cr_assert_str_eq(loc, want);
    hresp_free(&r);
    r = hreq(G.nodes[l].url, "GET", p, NULL, 0, G.bucket_key, 30000, NULL);
    cr_assert_eq(r.status, 200, "a consistent read on the leader: %ld", r.status);
    hresp_free(&r);
}

Test(routing, healthz_and_cluster_answer_per_role)
{
    start_group(3, NULL);
    long long epoch = 0;
    int l = leader_now(&epoch);
    for (int i = 0; i < G.n; i++) {
        hresp r = hreq(G.nodes[i].url, "GET", "/healthz", NULL, 0, NULL, 30000, NULL);
        cr_assert_eq(r.status, 200);
        hresp_free(&r);
        r = hreq(G.nodes[i].url, "GET", "/healthz?role=leader", NULL, 0, NULL, 30000, NULL);
        cr_assert_eq(r.status, i == l ? 200 : 503, "/healthz?role=leader on %s (%s): %ld",
                     G.nodes[i].id, i == l ? "leader" : "follower", r.status);
        hresp_free(&r);
        /* each member refreshes its view of the member keys from etcd every
         * 250 ms: one that read them before the last member registered
         * lists two until its next read (bounded wait) */
        json_t *j = NULL;
        for (int k = 0; k < 300; k++) {
            j = cluster_info(&G, i, 30000);
            cr_assert(j != NULL, "/cluster on %s", G.nodes[i].id);
            if (json_array_size(json_object_get(j, "members")) == 3)
                break;
            json_decref(j);
            j = NULL;
            usleep(100000);
        }
        cr_assert(j != NULL, "/cluster on %s never listed 3 members in 30 s", G.nodes[i].id);
        cr_assert_str_eq(json_string_value(json_object_get(j, "group")), G.name);
        cr_assert_str_eq(json_string_value(json_object_get(j, "node_id")), G.nodes[i].id);
        cr_assert_str_eq(json_string_value(json_object_get(j, "role")),
                         i == l ? "leader" : "follower");
        cr_assert_eq(json_integer_value(json_object_get(j, "epoch")), epoch);
        json_t *ld = json_object_get(j, "leader");
        cr_assert(json_is_object(ld), "no leader object on %s", G.nodes[i].id);
        cr_assert_str_eq(json_string_value(json_object_get(ld, "id")), G.nodes[l].id);
        cr_assert_str_eq(json_string_value(json_object_get(ld, "url")), G.nodes[l].adv);
        cr_assert(json_is_integer(json_object_get(j, "last_seq")));
        json_t *m = json_object_get(j, "members");
        cr_assert(json_is_array(m) && json_array_size(m) == 3, "members on %s", G.nodes[i].id);
        for (size_t k = 0; k < json_array_size(m); k++) {
            json_t *e = json_array_get(m, k);
            cr_assert(json_is_string(json_object_get(e, "id")));
            cr_assert(json_is_string(json_object_get(e, "url")));
            cr_assert(json_is_string(json_object_get(e, "role")));
            cr_assert(json_is_integer(json_object_get(e, "applied_seq")));
            cr_assert(json_is_integer(json_object_get(e, "lag_seq")));
        }
        json_decref(j);
    }
}

Test(routing, writes_during_an_election_answer_307_or_503_no_leader)
{
    start_group(3, NULL);
    int l = leader_now(NULL);
    node_kill(&G, l, SIGKILL);
    int f = some_follower(l);
    long long deadline = mono_ms() + 30000;
    int seen503 = 0, n = 0;
    for (;;) {
        cr_assert_lt(mono_ms(), deadline, "no write taken within 30 s");
        char key[32];
        snprintf(key, sizeof key, "e%d", n++);
        hresp r = put_on(f, key, "x", 5000);
        if (r.status == 200 || r.status == 201) {
            hresp_free(&r);
            break;
        }
        if (r.status == 307) {
            char loc[512];
            cr_assert(hresp_header(&r, "Location", loc, sizeof loc));
            int to = node_of_url(&G, loc);
            cr_assert(to >= 0, "a redirect to an unknown place: %s", loc);
            if (to != l && to != f) { /* the other node leads: it must take it */
                hresp_free(&r);
                r = put_on(to, key, "x", 5000);
                cr_assert(r.status == 200 || r.status == 201 || r.status == 503,
                          "the named leader answered %ld", r.status);
                bool done = r.status != 503;
                hresp_free(&r);
                if (done)
                    break;
                continue;
            }
        } else if (r.status == 503) {
            json_t *j = hresp_json(&r);
            char ra[16];
            cr_assert(j != NULL, "a 503 without JSON: %s", r.body);
            const char *err = json_string_value(json_object_get(j, "error"));
            /* no_leader, or (an extension) no_sync_standby from a node just
             * elected that has not named its standby yet */
            cr_assert(err && (strcmp(err, "no_leader") == 0 || strcmp(err, "no_sync_standby") == 0),
                      "a 503 during an election says '%s'", err ? err : "?");
            cr_assert(hresp_header(&r, "Retry-After", ra, sizeof ra), "no Retry-After");
            cr_assert_str_eq(ra, "1");
            json_decref(j);
            seen503++;
        } else {
            cr_assert_fail("a write during an election answered %ld: %.200s", r.status, r.body);
        }
        hresp_free(&r);
        usleep(20000);
    }
    fprintf(stderr, "election: %d answers 503 no_leader seen on the follower\n", seen503);
}

/* Run kvd with ARGS (after the binary), wait up to 120 s: exit status and the
 * last non-empty output line in LAST. */
static int run_kvd(const char *const *args, char *last, size_t cap)
{
    char out[320];
    snprintf(out, sizeof out, "%s/refused.log", G.root);
    unlink(out);
    const char *argv[40];
    size_t n = 0;
    argv[n++] = getenv("KVD_TEST_BIN") ? getenv("KVD_TEST_BIN") : KVD_BIN;
    argv[n++] = "--admin-token-file"; /* every member needs one: not what is tested */
    argv[n++] = G.token_file;
    for (size_t k = 0; args[k] && n < 39; k++)
        argv[n++] = args[k];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        FILE *o = freopen(out, "w", stdout);
        if (o == NULL || dup2(1, 2) < 0)
            _exit(126);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    long long deadline = mono_ms() + 120000;
    while (waitpid(pid, &st, WNOHANG) == 0) {
        if (mono_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            snprintf(last, cap, "(still running after 120 s)");
            return -1;
        }
        usleep(50000);
    }
    last[0] = '\0';
    FILE *f = fopen(out, "r");
    char line[1024];
    while (f && fgets(line, sizeof line, f))
        if (line[0] != '\n')
            snprintf(last, cap, "%s", line);
    if (f)
        fclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(routing, bad_configurations_are_refused_with_one_line)
{
    start_group(2, NULL);
    int l = leader_now(NULL);
    char dir[320], last[1024], etcd[64], adv[64], dead[64];
    snprintf(dir, sizeof dir, "%s/extra", G.root);
    snprintf(etcd, sizeof etcd, "%s", G.etcd.url);
    snprintf(adv, sizeof adv, "http://127.0.0.1:%d", free_port());
    snprintf(dead, sizeof dead, "http://127.0.0.1:%d", free_port());

    /* unreachable etcd, after a bounded retry */
    const char *a1[] = {"--dir",       dir,      "--listen", "127.0.0.1:0", "--cluster",
                        G.name,        "--etcd", dead,       "--node-id",   "x1",
                        "--advertise", adv,      NULL};
    int rc = run_kvd(a1, last, sizeof last);
    cr_assert(rc > 0, "kvd with an unreachable etcd: exit %d (%s)", rc, last);
    cr_assert(strcasestr(last, "etcd") != NULL, "the refusal does not name etcd: %s", last);

    /* a second node with the id of a running one */
    const char *a2[] = {"--dir",       dir,      "--listen", "127.0.0.1:0", "--cluster",
                        G.name,        "--etcd", etcd,       "--node-id",   G.nodes[l].id,
                        "--advertise", adv,      NULL};
    rc = run_kvd(a2, last, sizeof last);
    cr_assert(rc > 0, "a duplicate --node-id: exit %d (%s)", rc, last);
    cr_assert(strstr(last, G.nodes[l].id) != NULL || strcasestr(last, "node-id") != NULL,
              "the refusal does not name the node id: %s", last);
    cr_assert_eq(wait_leader(&G, 10000, NULL, -1), l, "the duplicate disturbed the leader");

    /* a directory that belongs to another group */
    int f = some_follower(l);
    kill(G.nodes[f].pid, SIGTERM);
    int st;
    waitpid(G.nodes[f].pid, &st, 0);
    G.nodes[f].pid = 0;
    const char *a3[] = {"--dir",         G.nodes[f].dir, "--listen", "127.0.0.1:0", "--cluster",
                        "another-group", "--etcd",       etcd,       "--node-id",   G.nodes[f].id,
                        "--advertise",   G.nodes[f].adv, NULL};
    rc = run_kvd(a3, last, sizeof last);
    cr_assert(rc > 0, "a directory of group %s under --cluster another-group: exit %d (%s)", G.name,
              rc, last);
    cr_assert(strstr(last, G.name) != NULL || strstr(last, "another-group") != NULL,
              "the refusal does not name the groups: %s", last);

    /* flags the contract bounds */
    const char *a4[] = {"--dir",       dir,         "--cluster", G.name,        "--etcd",
                        etcd,          "--node-id", "x2",        "--advertise", adv,
                        "--lease-ttl", "1",         NULL};
    rc = run_kvd(a4, last, sizeof last);
    cr_assert_eq(rc, 2, "--lease-ttl 1 (minimum 2): exit %d (%s)", rc, last);
    const char *a5[] = {"--dir",     dir,  "--cluster",   G.name, "--etcd",        etcd,
                        "--node-id", "x2", "--advertise", adv,    "--replication", "quorum",
                        NULL};
    rc = run_kvd(a5, last, sizeof last);
    cr_assert_eq(rc, 2, "--replication quorum: exit %d (%s)", rc, last);
}
