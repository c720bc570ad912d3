/*
 * test_kvd_server.c — the process and the server-wide routes: ready line,
 * usage errors, /healthz, /metrics (both forms), /admin/backup and the admin
 * token, --default-bucket, and SIGTERM followed by a restart.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kvdtest.h"

TestSuite(server, .init = kvd_setup, .fini = kvd_teardown, .timeout = 600);

Test(server, ready_line_and_healthz)
{
    cr_assert(strstr(K.ready_line, K.dir) != NULL, "ready line lacks the dir: %s", K.ready_line);
    cr_assert(strstr(K.ready_line, "keys recovered") != NULL, "%s", K.ready_line);
    cr_assert(strstr(K.ready_line, " ms") != NULL, "%s", K.ready_line);
    resp r = call_as("", "GET", "/healthz", NULL, NULL, NULL);
    EXPECT(r, 200);
    resp_free(&r);
}

Test(server, root_describes_the_server)
{
    /* no credential needed, even with an admin token configured elsewhere */
    resp r = call_as("", "GET", "/", NULL, NULL, NULL);
    EXPECT(r, 200);
    char ct[128];
    cr_assert(resp_header(&r, "Content-Type", ct, sizeof ct) != NULL);
    cr_assert(strstr(ct, "application/json") != NULL, "%s", ct);
    json_t *j = resp_json(&r);
    cr_assert(j != NULL, "%s", r.body);
    cr_assert_str_eq(json_string_value(json_object_get(j, "name")), "kvd");
    const char *v = json_string_value(json_object_get(j, "version"));
    cr_assert(v != NULL && v[0] >= '0' && v[0] <= '9', "version: %s", r.body);
    json_t *links = json_object_get(j, "links");
    cr_assert_str_eq(json_string_value(json_object_get(links, "healthz")), "/healthz");
    cr_assert_str_eq(json_string_value(json_object_get(links, "metrics")), "/metrics");
    cr_assert(json_is_string(json_object_get(j, "docs")), "no docs: %s", r.body);
    json_decref(j);
    resp_free(&r);
    /* every link it gives answers 200 */
    const char *paths[] = {"/healthz", "/metrics", "/metrics?format=json"};
    for (size_t i = 0; i < 3; i++) {
        r = call_as("", "GET", paths[i], NULL, NULL, NULL);
        EXPECT(r, 200);
        resp_free(&r);
    }
    r = call_as("", "HEAD", "/", NULL, NULL, NULL);
    EXPECT(r, 200);
    resp_free(&r);
}

static int run_kvd(const char *const *args)
{
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execv(KVD_BIN, (char *const *)args);
        _exit(127);
    }
    int st = 0;
    for (int i = 0; i < 12000; i++) { /* 120 s: a net for a hang */
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

Test(server, usage_errors_exit_2)
{
    const char *a1[] = {KVD_BIN, "--threads", "x", NULL};
    cr_assert_eq(run_kvd(a1), 2);
    const char *a2[] = {KVD_BIN, "--bogus", NULL};
    cr_assert_eq(run_kvd(a2), 2);
    const char *a3[] = {KVD_BIN, "--sync", "sometimes", NULL};
    cr_assert_eq(run_kvd(a3), 2);
    const char *a4[] = {KVD_BIN, "--max-value", "12Q", NULL};
    cr_assert_eq(run_kvd(a4), 2);
    const char *a5[] = {KVD_BIN, "--help", NULL};
    cr_assert_eq(run_kvd(a5), 0);
}

static long long metric(const char *text, const char *name)
{
    const char *p = text;
    size_t n = strlen(name);
    while ((p = strstr(p, name)) != NULL) {
        if ((p == text || p[-1] == '\n') && p[n] == ' ')
            return atoll(p + n + 1);
        p += n;
    }
    return -1;
}

Test(server, metrics_count_per_key)
{
    resp r = call("POST", "/t/",
                  "{\"ops\":[{\"set\":\"a\",\"value\":\"12345\"},{\"set\":\"b\",\"value\":\"x\"},"
                  "{\"set\":\"c\",\"value\":\"yy\"}]}");
    EXPECT(r, 200);
    resp_free(&r);
    r = call("POST", "/t/", "{\"ops\":[{\"get\":\"a\"},{\"get\":\"b\"},{\"get\":\"zz\"}]}");
    resp_free(&r);
    r = call("GET", "/t/a", NULL);
    resp_free(&r);
    r = call("DELETE", "/t/c", NULL);
    resp_free(&r);
    r = call_as("", "GET", "/metrics?format=json", NULL, NULL, NULL);
    EXPECT(r, 200);
    json_t *j = resp_json(&r);
    cr_assert(j != NULL, "%s", r.body);
    cr_assert_eq(json_integer_value(json_object_get(j, "keys")), 2, "%s", r.body);
    cr_assert_eq(json_integer_value(json_object_get(j, "bytes")), 6, "%s", r.body);
    cr_assert_eq(json_integer_value(json_object_get(j, "set")), 3, "%s", r.body);
    cr_assert_eq(json_integer_value(json_object_get(j, "get")), 4, "%s", r.body);
    cr_assert_eq(json_integer_value(json_object_get(j, "delete")), 1, "%s", r.body);
    json_decref(j);
    resp_free(&r);
    r = call_as("", "GET", "/metrics", NULL, NULL, NULL);
    EXPECT(r, 200);
    cr_assert_eq(metric(r.body, "kvd_keys_stored"), 2);
    cr_assert_eq(metric(r.body, "kvd_value_bytes_stored"), 6);
    cr_assert_eq(metric(r.body, "kvd_operations_total{op=\"set\"}"), 3);
    cr_assert(strstr(r.body,
                     "kvd_http_request_duration_seconds_bucket{route=\"key\",le=\"+Inf\"}") != NULL,
              "no latency histogram");
    cr_assert(strstr(r.body, "ringcask_segments") != NULL);
    cr_assert(strstr(r.body, "ringcask_fsyncs_total") != NULL);
    resp_free(&r);
}

Test(server, admin_token_guards_backup_and_bucket_creation)
{
    resp r = call_as("", "GET", "/admin/backup", NULL, NULL, NULL);
    EXPECT(r, 403);
    resp_free(&r);
    kvd_cleanup(&K);
    char tokfile[] = "/tmp/kvdtok.XXXXXX";
    int fd = mkstemp(tokfile);
    cr_assert(fd >= 0);
    const char *secret = "s3cret-admin-token-0123456789";
    cr_assert(write(fd, secret, strlen(secret)) > 0);
    cr_assert(write(fd, "\n", 1) == 1);
    close(fd);
    const char *extra[] = {"--admin-token-file", tokfile, NULL};
    bool started = kvd_start(&K, NULL, extra);
    unlink(tokfile);
    cr_assert(started);
    r = http(&K, "POST", "/", "{\"name\":\"t\"}", 12, NULL);
    EXPECT(r, 401);
    resp_free(&r);
    r = call_as(secret, "POST", "/", "{\"name\":\"t\"}", NULL, NULL);
    EXPECT(r, 201);
    resp_free(&r);
    r = call_as("wrong-admin-token-000000000", "GET", "/admin/backup", NULL, NULL, NULL);
    EXPECT(r, 401);
    resp_free(&r);
    r = call_as("", "GET", "/admin/backup", NULL, NULL, NULL);
    EXPECT(r, 401);
    resp_free(&r);
    r = call_as(secret, "GET", "/admin/backup?since=abc", NULL, NULL, NULL);
    EXPECT(r, 400);
    resp_free(&r);
    r = call_as(secret, "GET", "/admin/backup?since=0", NULL, NULL, NULL);
    EXPECT(r, 200);
    cr_assert(r.len > 0, "empty backup stream");
    resp_free(&r);
}

Test(server, default_bucket_is_open)
{
    kvd_cleanup(&K);
    const char *extra[] = {"--default-bucket", "default", NULL};
    cr_assert(kvd_start(&K, NULL, extra));
    resp r = call_as("", "PUT", "/default/k", "v", NULL, NULL);
    EXPECT(r, 201);
    resp_free(&r);
    r = call_as("", "GET", "/default/?values=true", NULL, NULL, NULL);
    EXPECT(r, 200);
    BODY_IS(r, "k=v\n");
    resp_free(&r);
    r = call_as("", "POST", "/default/tokens/", "{\"permissions\":[\"read\"]}", NULL, NULL);
    EXPECT(r, 200);
    resp_free(&r);
}

Test(server, sigterm_then_restart_keeps_everything)
{
    char tok[2048];
    cr_assert(make_token(&K, "t", AK, "{\"permissions\":[\"read\"]}", tok, sizeof tok));
    resp r = call("PUT", "/t/persist", "still here");
    EXPECT(r, 201);
    resp_free(&r);
    r = call("PATCH", "/t/counter", "+41");
    resp_free(&r);
    r = call("PATCH", "/t/counter", "+1");
    resp_free(&r);
    r = call("DELETE", "/t/persist2", NULL);
    resp_free(&r);
    cr_assert_eq(kvd_stop(&K, SIGTERM), 0, "kvd did not exit 0 on SIGTERM");
    cr_assert(kvd_start(&K, K.dir, NULL), "kvd did not restart");
    cr_assert(strstr(K.ready_line, "kvd ready") != NULL);
    r = call("GET", "/t/persist", NULL);
    EXPECT(r, 200);
    BODY_IS(r, "still here");
    resp_free(&r);
    r = call("GET", "/t/counter", NULL);
    BODY_IS(r, "42");
    resp_free(&r);
    /* the admin key and tokens survive: the secret lives in the engine */
    r = call_as(tok, "GET", "/t/persist", NULL, NULL, NULL);
    EXPECT(r, 200);
    resp_free(&r);
    cr_assert_eq(kvd_stop(&K, SIGINT), 0, "kvd did not exit 0 on SIGINT");
}

static int connect_port(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static void send_all(int fd, const char *s)
{
    size_t n = strlen(s);
    cr_assert_eq(write(fd, s, n), (ssize_t)n);
}

/* Read one response head (until the blank line) into BUF. */
static void read_head(int fd, char *buf, size_t cap)
{
    size_t got = 0;
    buf[0] = '\0';
    while (got < cap - 1 && strstr(buf, "\r\n\r\n") == NULL) {
        ssize_t r = read(fd, buf + got, cap - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
        buf[got] = '\0';
    }
}

Test(server, sigterm_finishes_in_flight_and_refuses_new_work)
{
    char head[4096], req[512];
    /* a grace no loaded machine can outlast: the in-flight PUT must finish */
    const char *flags[] = {"--shutdown-grace", "600", NULL};
    kvd_cleanup(&K);
    cr_assert(kvd_start(&K, NULL, flags));
    cr_assert(make_bucket(&K, "{\"name\":\"t\"}", B, sizeof B, AK, sizeof AK));
    /* connection B: keep-alive, one request done */
    int b = connect_port(K.port);
    cr_assert(b >= 0);
    snprintf(req, sizeof req, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    send_all(b, req);
    read_head(b, head, sizeof head);
    cr_assert(strncmp(head, "HTTP/1.1 200", 12) == 0, "%s", head);
    /* connection A: a PUT whose body is half sent: in flight */
    int a = connect_port(K.port);
    cr_assert(a >= 0);
    /* "100 Continue" says kvd has taken the request: it is in flight */
    snprintf(req, sizeof req,
             "PUT /t/slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
             "Content-Length: 10\r\nExpect: 100-continue\r\n\r\n",
             AK);
    send_all(a, req);
    read_head(a, head, sizeof head);
    cr_assert(strncmp(head, "HTTP/1.1 100", 12) == 0, "no 100 Continue: %s", head);
    send_all(a, "01234");
    cr_assert_eq(kill(K.pid, SIGTERM), 0);
    /* new work on the open connection is refused once kvd has seen the
     * signal: until then it is served (200), however long that takes */
    for (int i = 0;; i++) {
        send_all(b, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        read_head(b, head, sizeof head);
        if (strncmp(head, "HTTP/1.1 200", 12) != 0 || i == 6000)
            break;
        usleep(20000);
    }
    cr_assert(strncmp(head, "HTTP/1.1 503", 12) == 0, "after SIGTERM: %s", head);
    /* the in-flight request completes */
    send_all(a, "56789");
    read_head(a, head, sizeof head);
    cr_assert(strncmp(head, "HTTP/1.1 201", 12) == 0, "in-flight PUT: %s", head);
    close(a);
    close(b);
    cr_assert_eq(kvd_stop(&K, SIGTERM), 0);
    cr_assert(connect_port(K.port) < 0, "still accepting after shutdown");
    /* and the write is durable */
    cr_assert(kvd_start(&K, K.dir, NULL));
    resp r = call("GET", "/t/slow", NULL);
    BODY_IS(r, "0123456789");
    resp_free(&r);
}

Test(server, malformed_requests_get_json_errors)
{
    static const struct {
        const char *req;
        int status;
    } cases[] = {
        {"GET /t/%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"GET /t/k?ttl HTTP/1.1\r\nHost: x\r\n\r\n", 404},
        {"PUT /t/k?ttl=1e3 HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx", 400},
        {"PATCH /t/k HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n+1x", 400},
        {"POST /t/ HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n{\"ops\":5}", 400},
        {"POST /t/ HTTP/1.1\r\nHost: x\r\nContent-Length: "
         "26\r\n\r\n{\"ops\":[{\"get\":\"\\u0000\"}]}",
         200},
        {"POST /t/tokens/ HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", 400},
        {"PATCH /t HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nnull", 400},
        {"GET /t/?limit=-1 HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"GET /t/?prefix=%G0 HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"GET /t/k HTTP/1.1\r\nHost: x\r\nAuthorization: Basic !!!\r\n\r\n", 401},
        {"GET /t/k HTTP/1.1\r\nHost: x\r\nAuthorization: Digest abc\r\n\r\n", 401},
        {"GET /t/k?access_token= HTTP/1.1\r\nHost: x\r\n\r\n", 401},
        {"GET /t/k HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"x\"\r\n\r\n", 404},
        {"DELETE /t/k HTTP/1.1\r\nHost: x\r\nIf-None-Match: *\r\n\r\n", 400},
        {"BREW /t/k HTTP/1.1\r\nHost: x\r\n\r\n", 405},
    };
    char head[4096], req[1024];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int fd = connect_port(K.port);
        cr_assert(fd >= 0);
        /* every request carries the admin key, after the request line */
        const char *eol = strstr(cases[i].req, "\r\n");
        snprintf(req, sizeof req, "%.*s\r\nAuthorization: Bearer %s%s", (int)(eol - cases[i].req),
                 cases[i].req, AK, eol);
        if (strstr(cases[i].req, "Authorization") != NULL ||
            strstr(cases[i].req, "access_token") != NULL)
            snprintf(req, sizeof req, "%s", cases[i].req);
        send_all(fd, req);
        read_head(fd, head, sizeof head);
        close(fd);
        char want[16];
        snprintf(want, sizeof want, "HTTP/1.1 %d", cases[i].status);
        cr_assert(strncmp(head, want, strlen(want)) == 0, "case %zu (%s): %.60s", i, cases[i].req,
                  head);
        if (cases[i].status >= 400)
            cr_assert(strstr(head, "application/json") != NULL, "case %zu: not JSON", i);
    }
    resp r = call_as("", "GET", "/healthz", NULL, NULL, NULL);
    EXPECT(r, 200);
    resp_free(&r);
}

/* The tmpfs of the full-disk test, undone by its tear-down also when an
 * assertion ends the test early (a mount must never outlive the test). */
static char full_disk_mnt[64];

static void full_disk_teardown(void)
{
    kvd_teardown();
    if (full_disk_mnt[0]) {
        umount2(full_disk_mnt, MNT_DETACH);
        rmdir(full_disk_mnt);
        full_disk_mnt[0] = '\0';
    }
}

/* A real full disk: kvd on a 4 MiB tmpfs answers 507 with a JSON body, keeps
 * serving reads and /healthz. Skipped where mounting is not allowed. */
Test(server, full_disk_answers_507_and_keeps_reading, .fini = full_disk_teardown)
{
    char mnt[] = "/tmp/kvdtest.XXXXXX";
    cr_assert(mkdtemp(mnt) != NULL);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=4m") != 0) {
        rmdir(mnt);
        cr_skip_test("cannot mount a tmpfs here (%s)", strerror(errno));
    }
    kvd_cleanup(&K);
    char dir[64];
    snprintf(dir, sizeof dir, "%s/data", mnt);
    const char *extra[] = {"--segment-bytes", "256K", NULL};
    snprintf(full_disk_mnt, sizeof full_disk_mnt, "%s", mnt);
    bool started = kvd_start(&K, dir, extra);
    if (!started) {
        umount2(mnt, MNT_DETACH);
        rmdir(mnt);
        cr_assert_fail("kvd did not start on the tmpfs");
    }
    cr_assert(make_bucket(&K, "{\"name\":\"t\"}", B, sizeof B, AK, sizeof AK));
    static char value[64 * 1024 + 1];
    unsigned seed = 12345;
    long status = 0;
    int i;
    for (i = 0; i < 200; i++) {
        for (size_t j = 0; j < sizeof value - 1; j++)
            value[j] = (char)('a' + (rand_r(&seed) % 26));
        char path[64];
        snprintf(path, sizeof path, "/t/v%d", i);
        resp r = call("PUT", path, value);
        status = r.status;
        if (status == 507) {
            json_t *j = resp_json(&r);
            cr_assert_str_eq(json_string_value(json_object_get(j, "error")), "disk_full");
            json_decref(j);
        }
        resp_free(&r);
        if (status != 201)
            break;
    }
    cr_assert_eq(status, 507, "after %d writes: %ld", i, status);
    resp r = call("GET", "/t/v0", NULL);
    EXPECT(r, 200);
    resp_free(&r);
    r = call_as("", "GET", "/healthz", NULL, NULL, NULL);
    EXPECT(r, 200);
    resp_free(&r);
    kvd_stop(&K, SIGTERM);
    K.dir[0] = '\0';
    umount2(mnt, MNT_DETACH);
    rmdir(mnt);
}
