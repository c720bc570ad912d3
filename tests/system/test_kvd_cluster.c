/*
 * test_kvd_cluster.c — kvd --cluster against a real etcd (started here on
 * free 127.0.0.1 ports with a temporary data dir): bad configuration refused
 * at start with one line, the election, GET /cluster's exact shape,
 * /healthz?role=leader, the 307 of a write on a follower (absolute Location,
 * same path and query), ?consistent=1, a write replicated to the follower
 * under sync replication, and a failover after SIGKILL.
 *
 * The failure scenarios under load (kills, pauses, partitions) are the
 * cluster harness's (tests/cluster); this suite covers what they do not.
 * Skipped, with a message, only when /usr/bin/etcd is not installed.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "harness.h"

#define ETCD_BIN "/usr/bin/etcd"
#define TOKEN "cluster-test-admin-token-0123456789"

static long long ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000ll + ts.tv_nsec / 1000000;
}

/* free_port: testkit.h */

typedef struct etcd_proc {
    pid_t pid;
    char dir[64];
    char url[64];
} etcd_proc;

static etcd_proc etcd;
static char token_file[64];

static bool etcd_answers(const char *url)
{
    char u[128];
    snprintf(u, sizeof u, "%s/v3/kv/range", url);
    CURL *c = curl_easy_init();
    FILE *null = fopen("/dev/null", "w");
    curl_easy_setopt(c, CURLOPT_URL, u);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "{\"key\":\"eA==\"}");
    curl_easy_setopt(c, CURLOPT_WRITEDATA, null);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 1000L);
    long status = 0;
    bool ok = curl_easy_perform(c) == CURLE_OK &&
              curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status == 200;
    curl_easy_cleanup(c);
    fclose(null);
    return ok;
}

static void etcd_start(void)
{
    if (access(ETCD_BIN, X_OK) != 0)
        cr_skip_test("%s is not installed (Debian package etcd-server; scripts/deps.sh --test "
                     "installs it)",
                     ETCD_BIN);
    snprintf(etcd.dir, sizeof etcd.dir, "/tmp/kvdetcd.XXXXXX");
    cr_assert_not_null(mkdtemp(etcd.dir));
    int cport = free_port(), pport = free_port();
    char client[64], peer[64], datadir[128], initial[96];
    snprintf(client, sizeof client, "http://127.0.0.1:%d", cport);
    snprintf(peer, sizeof peer, "http://127.0.0.1:%d", pport);
    snprintf(initial, sizeof initial, "t=%s", peer);
    snprintf(datadir, sizeof datadir, "%s/data", etcd.dir);
    snprintf(etcd.url, sizeof etcd.url, "%s", client);
    pid_t parent = getpid();
    etcd.pid = fork();
    cr_assert(etcd.pid >= 0);
    if (etcd.pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execl(ETCD_BIN, ETCD_BIN, "--name", "t", "--data-dir", datadir, "--listen-client-urls",
              client, "--advertise-client-urls", client, "--listen-peer-urls", peer,
              "--initial-advertise-peer-urls", peer, "--initial-cluster", initial, NULL);
        _exit(127);
    }
    long long deadline = ms_now() + 60000;
    while (!etcd_answers(etcd.url)) {
        cr_assert(ms_now() < deadline, "etcd did not answer within 60 s");
        usleep(100000);
    }
    snprintf(token_file, sizeof token_file, "%s/token", etcd.dir);
    FILE *f = fopen(token_file, "w");
    cr_assert_not_null(f);
    fprintf(f, "%s\n", TOKEN);
    fclose(f);
}

static void etcd_stop(void)
{
    if (etcd.pid > 0) {
        kill(etcd.pid, SIGKILL);
        waitpid(etcd.pid, NULL, 0);
        etcd.pid = 0;
    }
    if (etcd.dir[0] != '\0') {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", etcd.dir);
        cr_assert_eq(system(cmd), 0);
    }
}

/* A member on a port chosen here (the advertised URL must name it). */
static bool member_start(kvd_proc *k, const char *dir, const char *group, const char *id,
                         const char *replication)
{
    int port = free_port();
    char listen[32], adv[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    snprintf(adv, sizeof adv, "http://127.0.0.1:%d", port);
    const char *extra[] = {"--listen",
                           listen,
                           "--cluster",
                           group,
                           "--etcd",
                           etcd.url,
                           "--node-id",
                           id,
                           "--advertise",
                           adv,
                           "--lease-ttl",
                           "2",
                           "--replication",
                           replication,
                           "--admin-token-file",
                           token_file,
                           "--default-bucket",
                           "pub",
                           NULL};
    return kvd_start(k, dir, extra);
}

static json_t *cluster_of(const kvd_proc *k)
{
    resp r = http_get(k, "/cluster");
    cr_assert_eq(r.status, 200, "GET /cluster: %ld %s", r.status, r.body ? r.body : "");
    json_t *o = resp_json(&r);
    cr_assert_not_null(o, "GET /cluster is JSON: %s", r.body);
    resp_free(&r);
    return o;
}

static bool is_role(const kvd_proc *k, const char *role)
{
    json_t *o = cluster_of(k);
    bool yes = strcmp(json_string_value(json_object_get(o, "role")), role) == 0;
    json_decref(o);
    return yes;
}

/* Wait (bounded) until K has role ROLE. */
static void await_role(const kvd_proc *k, const char *role, int seconds)
{
    long long deadline = ms_now() + seconds * 1000ll;
    while (!is_role(k, role)) {
        cr_assert(ms_now() < deadline, "%s did not become %s within %d s", k->url, role, seconds);
        usleep(100000);
    }
}

/* Run kvd with ARGS to its exit (bounded); its stderr into ERR. */
static int run_kvd(const char *const *args, char *err, size_t cap, int seconds)
{
    const char *argv[40];
    size_t n = 0;
    argv[n++] = KVD_BIN;
    for (size_t i = 0; args[i] != NULL && n < 38; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(p[1], 2);
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        close(p[0]);
        execv(KVD_BIN, (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    size_t got = 0;
    long long deadline = ms_now() + seconds * 1000ll;
    for (;;) {
        struct pollfd pf = {.fd = p[0], .events = POLLIN};
        int left = (int)(deadline - ms_now());
        if (left <= 0)
            break;
        if (poll(&pf, 1, left) <= 0)
            continue;
        ssize_t r = read(p[0], err + got, cap - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    err[got] = '\0';
    close(p[0]);
    int st = 0;
    while (waitpid(pid, &st, WNOHANG) == 0) {
        if (ms_now() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            cr_assert_fail("kvd %s did not exit within %d s", args[0], seconds);
        }
        usleep(20000);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Exactly one line on stderr, naming WHAT. */
static void one_line_naming(const char *err, const char *what)
{
    cr_assert(strstr(err, what) != NULL, "stderr names '%s': %s", what, err);
    const char *nl = strchr(err, '\n');
    cr_assert(nl != NULL && nl[1] == '\0', "one line: %s", err);
}

TestSuite(cluster, .init = etcd_start, .fini = etcd_stop, .timeout = 240);

Test(cluster, bad_flags_are_refused_with_one_line)
{
    char err[2048];
    const char *no_etcd[] = {"--cluster",          "g", "--node-id", "a", "--advertise",
                             "http://127.0.0.1:1", NULL};
    cr_assert_eq(run_kvd(no_etcd, err, sizeof err, 30), 2);
    one_line_naming(err, "--etcd");
    const char *ttl[] = {"--cluster",   "g", "--etcd",      etcd.url,
                         "--node-id",   "a", "--advertise", "http://127.0.0.1:1",
                         "--lease-ttl", "1", NULL};
    cr_assert_eq(run_kvd(ttl, err, sizeof err, 30), 2);
    one_line_naming(err, "--lease-ttl");
    const char *adv[] = {"--cluster", "g",           "--etcd",      etcd.url, "--node-id",
                         "a",         "--advertise", "127.0.0.1:1", NULL};
    cr_assert_eq(run_kvd(adv, err, sizeof err, 30), 2);
    one_line_naming(err, "--advertise");
    const char *id[] = {"--cluster", "g",   "--etcd",      etcd.url,
                        "--node-id", "a/b", "--advertise", "http://127.0.0.1:1",
                        NULL};
    cr_assert_eq(run_kvd(id, err, sizeof err, 30), 2);
    one_line_naming(err, "--node-id");
    const char *alone[] = {"--etcd", etcd.url, NULL};
    cr_assert_eq(run_kvd(alone, err, sizeof err, 30), 2);
    one_line_naming(err, "--cluster");
    const char *repl[] = {"--replication", "sometimes", NULL};
    cr_assert_eq(run_kvd(repl, err, sizeof err, 30), 2);
    cr_assert(strstr(err, "--replication") != NULL, "%s", err);
}

Test(cluster, unreachable_etcd_missing_token_and_another_groups_dir_are_refused)
{
    char err[2048], dir[64], listen[32];
    snprintf(dir, sizeof dir, "%s/n", etcd.dir);
    snprintf(listen, sizeof listen, "127.0.0.1:%d", free_port());
    char dead[64];
    snprintf(dead, sizeof dead, "http://127.0.0.1:%d", free_port());
    const char *unreach[] = {"--dir",
                             dir,
                             "--listen",
                             listen,
                             "--cluster",
                             "g",
                             "--etcd",
                             dead,
                             "--node-id",
                             "a",
                             "--advertise",
                             "http://127.0.0.1:1",
                             "--admin-token-file",
                             token_file,
                             NULL};
    long long t0 = ms_now();
    cr_assert_eq(run_kvd(unreach, err, sizeof err, 60), 3);
    one_line_naming(err, "etcd does not answer");
    cr_assert(ms_now() - t0 < 40000, "a bounded retry");
    const char *notoken[] = {
        "--dir",  dir,         "--listen", listen,        "--cluster",          "g", "--etcd",
        etcd.url, "--node-id", "a",        "--advertise", "http://127.0.0.1:1", NULL};
    cr_assert_eq(run_kvd(notoken, err, sizeof err, 30), 3);
    one_line_naming(err, "--admin-token-file");
    /* the directory now belongs to group g (claimed by the runs above) */
    const char *other[] = {"--dir",
                           dir,
                           "--listen",
                           listen,
                           "--cluster",
                           "h",
                           "--etcd",
                           etcd.url,
                           "--node-id",
                           "a",
                           "--advertise",
                           "http://127.0.0.1:1",
                           "--admin-token-file",
                           token_file,
                           NULL};
    cr_assert_eq(run_kvd(other, err, sizeof err, 30), 3);
    one_line_naming(err, "belongs to replica group 'g'");
}

Test(cluster, a_duplicate_node_id_is_refused)
{
    kvd_proc a = {0};
    cr_assert(member_start(&a, NULL, "dup", "same", "async"), "first member starts");
    await_role(&a, "leader", 30);
    char err[2048], dir[64], listen[32];
    snprintf(dir, sizeof dir, "%s/dup2", etcd.dir);
    snprintf(listen, sizeof listen, "127.0.0.1:%d", free_port());
    const char *dup[] = {"--dir",       dir,           "--listen",
                         listen,        "--cluster",   "dup",
                         "--etcd",      etcd.url,      "--node-id",
                         "same",        "--advertise", "http://127.0.0.1:1",
                         "--lease-ttl", "2",           "--admin-token-file",
                         token_file,    NULL};
    cr_assert_eq(run_kvd(dup, err, sizeof err, 60), 3);
    one_line_naming(err, "a live member with this id");
    cr_assert(is_role(&a, "leader"), "the first member is untouched");
    kvd_cleanup(&a);
}

static void check_cluster_json(json_t *o, const char *group, const char *id, const char *role)
{
    const char *keys[] = {"group",  "node_id",      "role",     "epoch",
                          "leader", "sync_standby", "last_seq", "members"};
    cr_assert_eq(json_object_size(o), 8, "exactly the documented members");
    for (size_t i = 0; i < 8; i++)
        cr_assert_not_null(json_object_get(o, keys[i]), "has %s", keys[i]);
    cr_assert_str_eq(json_string_value(json_object_get(o, "group")), group);
    cr_assert_str_eq(json_string_value(json_object_get(o, "node_id")), id);
    cr_assert_str_eq(json_string_value(json_object_get(o, "role")), role);
    cr_assert(json_is_integer(json_object_get(o, "epoch")));
    cr_assert(json_integer_value(json_object_get(o, "epoch")) > 0);
    cr_assert(json_is_integer(json_object_get(o, "last_seq")));
    json_t *leader = json_object_get(o, "leader");
    cr_assert(json_is_object(leader) && json_object_size(leader) == 2);
    cr_assert(json_is_string(json_object_get(leader, "id")));
    cr_assert(json_is_string(json_object_get(leader, "url")));
    json_t *s = json_object_get(o, "sync_standby");
    cr_assert(json_is_null(s) || json_is_string(s));
    json_t *m = json_object_get(o, "members");
    cr_assert(json_is_array(m) && json_array_size(m) >= 1);
    for (size_t i = 0; i < json_array_size(m); i++) {
        json_t *e = json_array_get(m, i);
        cr_assert_eq(json_object_size(e), 5, "a member has id, url, role, applied_seq, lag_seq");
        cr_assert(json_is_string(json_object_get(e, "id")));
        cr_assert(json_is_string(json_object_get(e, "url")));
        cr_assert(json_is_string(json_object_get(e, "role")));
        cr_assert(json_is_integer(json_object_get(e, "applied_seq")));
        cr_assert(json_is_integer(json_object_get(e, "lag_seq")));
    }
}

static json_int_t jint(json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

Test(cluster, two_members_route_replicate_and_fail_over)
{
    kvd_proc a = {0}, b = {0};
    cr_assert(member_start(&a, NULL, "two", "a", "sync"));
    await_role(&a, "leader", 30);
    cr_assert(member_start(&b, NULL, "two", "b", "sync"), "b clones and starts");
    await_role(&b, "follower", 30);

    json_t *ca = cluster_of(&a), *cb = cluster_of(&b);
    check_cluster_json(ca, "two", "a", "leader");
    check_cluster_json(cb, "two", "b", "follower");
    cr_assert_eq(jint(ca, "epoch"), jint(cb, "epoch"), "one epoch");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(cb, "leader"), "url")),
                     a.url);
    json_decref(ca);
    json_decref(cb);

    /* health for a load balancer */
    resp r = http_get(&a, "/healthz?role=leader");
    cr_assert_eq(r.status, 200);
    resp_free(&r);
    r = http_get(&b, "/healthz?role=leader");
    cr_assert_eq(r.status, 503);
    resp_free(&r);
    r = http_get(&b, "/healthz");
    cr_assert_eq(r.status, 200);
    resp_free(&r);

    /* a write on the follower: 307 to the same path and query on the leader */
    r = http_put(&b, "/pub/k1?ttl=600", "v1");
    cr_assert_eq(r.status, 307, "%ld %s", r.status, r.body);
    char loc[256], want[256];
    snprintf(want, sizeof want, "%s/pub/k1?ttl=600", a.url);
    cr_assert_not_null(resp_header(&r, "Location", loc, sizeof loc));
    cr_assert_str_eq(loc, want);
    resp_free(&r);
    r = http(&b, "DELETE", "/pub/k1", NULL, 0, NULL);
    cr_assert_eq(r.status, 307);
    resp_free(&r);

    /* sync replication: acknowledged once b has it (b becomes the standby) */
    long long deadline = ms_now() + 30000;
    for (;;) {
        r = http_put(&a, "/pub/k1?ttl=600", "v1");
        if (r.status == 201 || r.status == 200)
            break;
        cr_assert_eq(r.status, 503, "not acknowledged until a standby is named: %ld %s", r.status,
                     r.body);
        resp_free(&r);
        cr_assert(ms_now() < deadline, "a standby was named within 30 s");
    }
    resp_free(&r);
    ca = cluster_of(&a);
    cr_assert_str_eq(json_string_value(json_object_get(ca, "sync_standby")), "b");
    json_decref(ca);
    /* acknowledged means b holds it: served locally at once */
    r = http_get(&b, "/pub/k1");
    cr_assert_eq(r.status, 200, "the follower serves the acknowledged write: %ld", r.status);
    cr_assert_eq(r.len, 2);
    cr_assert(memcmp(r.body, "v1", 2) == 0);
    resp_free(&r);
    r = http_get(&b, "/pub/k1?consistent=1");
    cr_assert_eq(r.status, 307);
    snprintf(want, sizeof want, "%s/pub/k1?consistent=1", a.url);
    cr_assert_not_null(resp_header(&r, "Location", loc, sizeof loc));
    cr_assert_str_eq(loc, want);
    resp_free(&r);

    /* kv given both URLs, the follower first: follows the 307 with the body */
    char urls[160], cmd[512];
    snprintf(urls, sizeof urls, "%s,%s", b.url, a.url);
    snprintf(cmd, sizeof cmd, "'%s' --url '%s' --bucket pub set kvk=kvv >/dev/null 2>&1", KV_BIN,
             urls);
    cr_assert_eq(system(cmd), 0, "kv set through the follower");
    r = http_get(&a, "/pub/kvk");
    cr_assert_eq(r.status, 200);
    cr_assert(r.len == 3 && memcmp(r.body, "kvv", 3) == 0);
    resp_free(&r);

    /* failover: a dies; b (the standby) leads within the TTL + 3 s, with k1 */
    ca = cluster_of(&a);
    json_int_t epoch = jint(ca, "epoch");
    json_decref(ca);
    kill(a.pid, SIGKILL);
    long long t0 = ms_now();
    await_role(&b, "leader", 20);
    cr_assert(ms_now() - t0 < 2000 + 3000 + 2000, "failover in %lld ms", ms_now() - t0);
    cb = cluster_of(&b);
    cr_assert(jint(cb, "epoch") > epoch, "a new epoch");
    json_decref(cb);
    r = http_get(&b, "/pub/k1");
    cr_assert_eq(r.status, 200);
    resp_free(&r);
    /* alone in sync mode: writes are refused before they are made */
    r = http_put(&b, "/pub/k2", "v2");
    cr_assert_eq(r.status, 503, "%ld %s", r.status, r.body);
    cr_assert(strstr(r.body, "no_sync_standby") != NULL, "%s", r.body);
    resp_free(&r);
    r = http_get(&b, "/pub/k2");
    cr_assert_eq(r.status, 404, "nothing was written");
    resp_free(&r);

    /* a comes back as a follower of b, becomes its standby, and has what b
     * acknowledges */
    kvd_proc a2 = {0};
    cr_assert(member_start(&a2, a.dir, "two", "a", "sync"), "a restarts on its directory");
    await_role(&a2, "follower", 30);
    deadline = ms_now() + 30000;
    for (;;) {
        r = http_put(&b, "/pub/k2", "v2");
        long st = r.status;
        resp_free(&r);
        if (st == 201 || st == 200)
            break;
        cr_assert_eq(st, 503);
        cr_assert(ms_now() < deadline, "b acknowledged a write within 30 s of a's return");
        usleep(100000);
    }
    r = http_get(&a2, "/pub/k2");
    cr_assert_eq(r.status, 200, "the standby has what was acknowledged");
    resp_free(&r);
    r = http_get(&a2, "/pub/k1");
    cr_assert_eq(r.status, 200);
    resp_free(&r);
    kvd_cleanup(&a2);
    kvd_cleanup(&b);
    a.pid = 0;
    kvd_cleanup(&a);
}
