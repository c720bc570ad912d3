/*
 * test_kvd_watch.c — ?wait=SEQ on keys and listings, X-Ringcask-Seq, the
 * waiter limit, parked requests and client disconnects, SIGTERM with parked
 * requests, and the /admin/backup?wait= long-poll.
 *
 * Waiters are raw sockets with one GET each (Connection: close): the test
 * sends the request, then waits for kvd to report it parked (kvd_waiters in
 * /metrics?format=json) before making the change, so nothing depends on
 * timing; every read is bounded by a generous deadline far below the wait's
 * own timeout, so an answer within it proves the change (not the timeout)
 * ended the wait.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "kvdtest.h"

static const char admin_token[] = "watch-admin-token-0123456789";
static char tokfile[64];

static void watch_setup_flags(const char *const *more)
{
    snprintf(tokfile, sizeof tokfile, "/tmp/kvdtok.XXXXXX");
    int fd = mkstemp(tokfile);
    cr_assert(fd >= 0);
    cr_assert(write(fd, admin_token, strlen(admin_token)) > 0);
    close(fd);
    const char *extra[16] = {"--admin-token-file", tokfile, "--script-timeout", "600000"};
    size_t n = 4;
    for (size_t i = 0; more != NULL && more[i] != NULL && n < 15; i++)
        extra[n++] = more[i];
    extra[n] = NULL;
    cr_assert(kvd_start(&K, NULL, extra), "kvd did not become ready");
    resp r = call_as(admin_token, "POST", "/", "{\"name\":\"t\"}", NULL, NULL);
    EXPECT(r, 201);
    json_t *j = resp_json(&r);
    snprintf(B, sizeof B, "t");
    snprintf(AK, sizeof AK, "%s", json_string_value(json_object_get(j, "admin_key")));
    json_decref(j);
    resp_free(&r);
}

static void watch_setup(void)
{
    watch_setup_flags(NULL);
}

static void watch_teardown(void)
{
    kvd_cleanup(&K);
    unlink(tokfile);
}

TestSuite(watch, .init = watch_setup, .fini = watch_teardown, .timeout = 600);

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* X-Ringcask-Seq of R (asserted present). */
static uint64_t seq_of(const resp *r)
{
    char buf[32];
    cr_assert(resp_header(r, "X-Ringcask-Seq", buf, sizeof buf) != NULL,
              "no X-Ringcask-Seq in a %ld answer", r->status);
    return strtoull(buf, NULL, 10);
}

/* GET PATH and return its X-Ringcask-Seq. */
static uint64_t current_seq(const char *path)
{
    resp r = call("GET", path, NULL);
    uint64_t s = seq_of(&r);
    resp_free(&r);
    return s;
}

/* A figure of /metrics?format=json. */
static long long metric(const char *name)
{
    resp r = call_as("", "GET", "/metrics?format=json", NULL, NULL, NULL);
    cr_assert_eq(r.status, 200);
    json_t *j = resp_json(&r);
    cr_assert(j != NULL);
    json_t *v = json_object_get(j, name);
    cr_assert(v != NULL, "no %s in /metrics?format=json", name);
    long long n = json_integer_value(v);
    json_decref(j);
    resp_free(&r);
    return n;
}

/* Wait (bounded: 120 s) until kvd reports N parked requests. */
static void await_waiters(long long n)
{
    uint64_t end = now_ms() + 120000;
    long long got = -1;
    while (now_ms() < end) {
        got = metric("waiters");
        if (got == n)
            return;
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    cr_assert_fail("kvd reports %lld parked requests, expected %lld", got, n);
}

/* A prometheus line's value from /metrics. */
static long long prom(const char *line_start)
{
    resp r = call_as("", "GET", "/metrics", NULL, NULL, NULL);
    cr_assert_eq(r.status, 200);
    char want[256];
    snprintf(want, sizeof want, "\n%s", line_start);
    const char *p = strstr(r.body, want);
    cr_assert(p != NULL, "no %s in /metrics", line_start);
    long long v = strtoll(p + strlen(want), NULL, 10);
    resp_free(&r);
    return v;
}

static int raw_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)K.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "connect: %s", strerror(errno));
    return fd;
}

/* Open a connection and send GET PATH with CRED (NULL: the admin key). */
static int raw_get(const char *path, const char *cred)
{
    int fd = raw_connect();
    char req[2048];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                     "Connection: close\r\n\r\n",
                     path, cred ? cred : AK);
    cr_assert(write(fd, req, (size_t)n) == n);
    return fd;
}

/* Read FD's whole answer (until kvd closes it), at most WAIT_MS. Returns
 * the status (0 when none came) and the answer in BUF. */
static int raw_answer(int fd, char *buf, size_t cap, int wait_ms)
{
    size_t len = 0;
    uint64_t end = now_ms() + (uint64_t)wait_ms;
    buf[0] = '\0';
    for (;;) {
        uint64_t now = now_ms();
        if (now >= end)
            break;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int pr = poll(&pfd, 1, (int)(end - now));
        if (pr <= 0)
            break;
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        buf[len] = '\0';
        if (len + 1 >= cap)
            break;
    }
    close(fd);
    int status = 0;
    if (strncmp(buf, "HTTP/1.1 ", 9) == 0)
        status = atoi(buf + 9);
    return status;
}

/* The body of a raw answer. */
static const char *raw_body(const char *answer)
{
    const char *b = strstr(answer, "\r\n\r\n");
    return b ? b + 4 : "";
}

static uint64_t raw_seq(const char *answer)
{
    const char *h = strcasestr(answer, "\r\nX-Ringcask-Seq: ");
    cr_assert(h != NULL, "no X-Ringcask-Seq in: %s", answer);
    return strtoull(h + 18, NULL, 10);
}

#define ANSWER_MS 120000 /* far below the waits' own timeout of 10m */

Test(watch, every_get_carries_x_ringcask_seq)
{
    resp r = call("GET", "/t/missing", NULL);
    EXPECT(r, 404);
    uint64_t s0 = seq_of(&r);
    resp_free(&r);
    r = call("PUT", "/t/a", "1");
    EXPECT(r, 201);
    char etag[32];
    resp_header(&r, "ETag", etag, sizeof etag);
    resp_free(&r);
    uint64_t written = strtoull(etag + 1, NULL, 10);
    cr_assert_gt(written, s0);
    r = call("GET", "/t/a", NULL);
    EXPECT(r, 200);
    cr_assert_geq(seq_of(&r), written);
    resp_free(&r);
    r = call("GET", "/t/", NULL);
    EXPECT(r, 200);
    cr_assert_geq(seq_of(&r), written);
    resp_free(&r);
    r = call("HEAD", "/t/a", NULL);
    cr_assert_geq(seq_of(&r), written);
    resp_free(&r);
}

Test(watch, key_wait_woken_by_a_put_from_another_client)
{
    resp r = call("GET", "/t/k", NULL);
    EXPECT(r, 404);
    uint64_t s = seq_of(&r);
    resp_free(&r);
    char path[128];
    snprintf(path, sizeof path, "/t/k?wait=%llu&timeout=10m", (unsigned long long)s);
    int fd = raw_get(path, NULL);
    await_waiters(1);
    r = call("PUT", "/t/k", "hello");
    EXPECT(r, 201);
    char etag[32];
    resp_header(&r, "ETag", etag, sizeof etag);
    resp_free(&r);
    char ans[4096];
    cr_assert_eq(raw_answer(fd, ans, sizeof ans, ANSWER_MS), 200, "%s", ans);
    cr_assert_str_eq(raw_body(ans), "hello");
    cr_assert(strstr(ans, etag) != NULL);
    cr_assert_geq(raw_seq(ans), strtoull(etag + 1, NULL, 10));
    await_waiters(0);
}

Test(watch, key_wait_woken_by_delete_answers_404)
{
    resp r = call("PUT", "/t/k", "v");
    EXPECT(r, 201);
    resp_free(&r);
    uint64_t s = current_seq("/t/k");
    char path[128];
    snprintf(path, sizeof path, "/t/k?wait=%llu&timeout=10m", (unsigned long long)s);
    int fd = raw_get(path, NULL);
    await_waiters(1);
    r = call("DELETE", "/t/k", NULL);
    EXPECT(r, 204);
    resp_free(&r);
    char ans[4096];
    cr_assert_eq(raw_answer(fd, ans, sizeof ans, ANSWER_MS), 404, "%s", ans);
    cr_assert_gt(raw_seq(ans), s);
    /* a late waiter with the old seq learns of the delete at once */
    snprintf(path, sizeof path, "/t/k?wait=%llu&timeout=10m", (unsigned long long)s);
    fd = raw_get(path, NULL);
    cr_assert_eq(raw_answer(fd, ans, sizeof ans, ANSWER_MS), 404, "%s", ans);
}

Test(watch, key_wait_woken_by_expiry)
{
    resp r = call("PUT", "/t/k?ttl=1", "soon gone");
    EXPECT(r, 201);
    resp_free(&r);
    r = call("GET", "/t/k", NULL);
    uint64_t s = seq_of(&r);
    bool present = r.status == 200;
    resp_free(&r);
    if (!present)
        return; /* a machine slower than the 1 s TTL: nothing left to watch */
    char path[128];
    snprintf(path, sizeof path, "/t/k?wait=%llu&timeout=10m", (unsigned long long)s);
    int fd = raw_get(path, NULL);
    char ans[4096];
    /* nothing writes: only the expiry can end this wait before 10m */
    cr_assert_eq(raw_answer(fd, ans, sizeof ans, ANSWER_MS), 404, "%s", ans);
}

Test(watch, prefix_wait_answers_the_listing_on_a_change_under_the_prefix)
{
    resp r = call("PUT", "/t/p/a", "1");
    EXPECT(r, 201);
    resp_free(&r);
    uint64_t s = current_seq("/t/?prefix=p/");
    char path[128];
    snprintf(path, sizeof path, "/t/?prefix=p/&wait=%llu&timeout=10m", (unsigned long long)s);
    int fd = raw_get(path, NULL);
    await_waiters(1);
    /* a key outside the prefix does not end the wait ... */
    r = call("PUT", "/t/q/x", "other");
    EXPECT(r, 201);
    resp_free(&r);
    /* ... one under it does: the answer lists it */
    r = call("PUT", "/t/p/b", "2");
    EXPECT(r, 201);
    resp_free(&r);
    char ans[4096];
    cr_assert_eq(raw_answer(fd, ans, sizeof ans, ANSWER_MS), 200, "%s", ans);
    cr_assert_str_eq(raw_body(ans), "p/a\np/b\n");
    /* a delete under the prefix ends a wait too */
    s = current_seq("/t/?prefix=p/");
    snprintf(path, sizeof path, "/t/?prefix=p/&wait=%llu&timeout=10m", (unsigned long long)s);
    fd = raw_get(path, NULL);
    await_waiters(1);
    r = call("DELETE", "/t/p/a", NULL);
    EXPECT(r, 204);
    resp_free(&r);
    cr_assert_eq(raw_answer(fd, ans, sizeof ans, ANSWER_MS), 200, "%s", ans);
    cr_assert_str_eq(raw_body(ans), "p/b\n");
}

Test(watch, timeout_answers_the_current_state)
{
    resp r = call("PUT", "/t/k", "same");
    EXPECT(r, 201);
    char etag[32];
    resp_header(&r, "ETag", etag, sizeof etag);
    resp_free(&r);
    uint64_t s = current_seq("/t/k");
    char path[128];
    snprintf(path, sizeof path, "/t/k?wait=%llu&timeout=1s", (unsigned long long)s);
    uint64_t t0 = now_ms();
    r = call("GET", path, NULL);
    uint64_t took = now_ms() - t0;
    EXPECT(r, 200);
    BODY_IS(r, "same");
    char etag2[32];
    cr_assert_str_eq(resp_header(&r, "ETag", etag2, sizeof etag2), etag);
    cr_assert_eq(seq_of(&r), s);
    resp_free(&r);
    cr_assert_geq(took, 900, "answered after %llu ms, before its 1 s timeout",
                  (unsigned long long)took);
    /* an absent key at its timeout: 404 */
    snprintf(path, sizeof path, "/t/none?wait=%llu&timeout=500ms", (unsigned long long)s);
    r = call("GET", path, NULL);
    EXPECT(r, 404);
    resp_free(&r);
}

Test(watch, an_old_seq_answers_at_once)
{
    resp r = call("PUT", "/t/k", "v1");
    EXPECT(r, 201);
    char etag[32];
    resp_header(&r, "ETag", etag, sizeof etag);
    resp_free(&r);
    uint64_t written = strtoull(etag + 1, NULL, 10);
    char path[128];
    snprintf(path, sizeof path, "/t/k?wait=%llu&timeout=10m", (unsigned long long)(written - 1));
    int fd = raw_get(path, NULL);
    char ans[4096];
    cr_assert_eq(raw_answer(fd, ans, sizeof ans, ANSWER_MS), 200, "%s", ans);
    cr_assert_str_eq(raw_body(ans), "v1");
    snprintf(path, sizeof path, "/t/?wait=%llu&timeout=10m", (unsigned long long)(written - 1));
    fd = raw_get(path, NULL);
    cr_assert_eq(raw_answer(fd, ans, sizeof ans, ANSWER_MS), 200, "%s", ans);
    cr_assert_str_eq(raw_body(ans), "k\n");
}

Test(watch, bad_wait_and_timeout_values_are_400_naming_the_parameter)
{
    static const struct {
        const char *path, *word;
    } bad[] = {
        {"/t/k?wait=abc", "wait"},
        {"/t/k?wait=-1", "wait"},
        {"/t/k?wait=", "wait"},
        {"/t/k?wait=1&timeout=11m", "timeout"},
        {"/t/k?wait=1&timeout=0", "timeout"},
        {"/t/k?wait=1&timeout=5x", "timeout"},
        {"/t/k?timeout=5s", "timeout"},
        {"/t/?wait=zz", "wait"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        resp r = call("GET", bad[i].path, NULL);
        cr_assert_eq(r.status, 400, "%s: %ld", bad[i].path, r.status);
        cr_assert(strstr(r.body, bad[i].word) != NULL, "%s: %s", bad[i].path, r.body);
        resp_free(&r);
    }
    resp r = call_as(admin_token, "GET", "/admin/backup?since=0&wait=forever", NULL, NULL, NULL);
    cr_assert_eq(r.status, 400);
    cr_assert(strstr(r.body, "wait") != NULL);
    resp_free(&r);
}

Test(watch, a_wait_needs_the_read_permission)
{
    uint64_t s = current_seq("/t/k");
    char path[128];
    snprintf(path, sizeof path, "/t/k?wait=%llu&timeout=10m", (unsigned long long)s);
    resp r = call_as("", "GET", path, NULL, NULL, NULL);
    cr_assert(r.status == 401 || r.status == 403, "%ld", r.status);
    resp_free(&r);
    cr_assert_eq(metric("waiters"), 0);
}

/* ------------------------------------------------ many waiters, limits */

TestSuite(watch_many, .fini = watch_teardown, .timeout = 900);

#define MANY 300

Test(watch_many, three_hundred_waiters_on_four_threads_all_answered)
{
    const char *more[] = {"--threads", "4", "--max-connections", "1000", "--max-connections-per-ip",
                          "1000",      NULL};
    watch_setup_flags(more);
    uint64_t s = current_seq("/t/k");
    static int fds[MANY];
    char path[128];
    for (int i = 0; i < MANY; i++) {
        /* half on one key, half on a prefix */
        if (i % 2)
            snprintf(path, sizeof path, "/t/k?wait=%llu&timeout=10m", (unsigned long long)s);
        else
            snprintf(path, sizeof path, "/t/?prefix=k&wait=%llu&timeout=10m",
                     (unsigned long long)s);
        fds[i] = raw_get(path, NULL);
    }
    await_waiters(MANY);
    /* four threads serve other requests meanwhile */
    resp r = call("GET", "/t/other", NULL);
    EXPECT(r, 404);
    resp_free(&r);
    r = call("PUT", "/t/k", "wake");
    EXPECT(r, 201);
    resp_free(&r);
    static char ans[4096];
    for (int i = 0; i < MANY; i++) {
        cr_assert_eq(raw_answer(fds[i], ans, sizeof ans, ANSWER_MS), 200, "waiter %d: %s", i, ans);
        cr_assert_str_eq(raw_body(ans), i % 2 ? "wake" : "k\n");
    }
    await_waiters(0);
}

Test(watch_many, max_waiters_refuses_with_503_and_retry_after)
{
    const char *more[] = {"--max-waiters", "2", NULL};
    watch_setup_flags(more);
    uint64_t s = current_seq("/t/k");
    char path[128];
    snprintf(path, sizeof path, "/t/k?wait=%llu&timeout=10m", (unsigned long long)s);
    int a = raw_get(path, NULL), b = raw_get(path, NULL);
    await_waiters(2);
    resp r = call("GET", path, NULL);
    EXPECT_ERR(r, 503, "too_many_waiters");
    char ra[16];
    cr_assert(resp_header(&r, "Retry-After", ra, sizeof ra) != NULL);
    resp_free(&r);
    cr_assert_eq(metric("waiters_refused"), 1);
    cr_assert_eq(prom("kvd_waiters_refused_total "), 1);
    r = call("PUT", "/t/k", "x");
    resp_free(&r);
    char ans[4096];
    cr_assert_eq(raw_answer(a, ans, sizeof ans, ANSWER_MS), 200);
    cr_assert_eq(raw_answer(b, ans, sizeof ans, ANSWER_MS), 200);
}

Test(watch_many, a_client_gone_while_parked_is_released)
{
    watch_setup();
    uint64_t s = current_seq("/t/k");
    char path[128];
    snprintf(path, sizeof path, "/t/k?wait=%llu&timeout=10m", (unsigned long long)s);
    for (int i = 0; i < 3; i++) {
        int fd = raw_get(path, NULL);
        await_waiters(1);
        close(fd);
        await_waiters(0); /* long before the 10 min timeout */
    }
    cr_assert_eq(prom("kvd_waits_ended_total{why=\"client_gone\"} "), 3);
    resp r = call("GET", "/healthz", NULL);
    EXPECT(r, 200);
    resp_free(&r);
    r = call("PUT", "/t/k", "still fine");
    EXPECT(r, 201);
    resp_free(&r);
    /* a clean exit: under ASan/LSan a leaked waiter fails it */
    cr_assert_eq(kvd_stop(&K, SIGTERM), 0);
}

Test(watch_many, sigterm_with_parked_requests_answers_them_and_exits_0)
{
    watch_setup();
    resp r = call("PUT", "/t/k", "v");
    resp_free(&r);
    uint64_t s = current_seq("/t/k");
    char path[128];
    int fds[5];
    for (int i = 0; i < 5; i++) {
        snprintf(path, sizeof path, i % 2 ? "/t/k?wait=%llu&timeout=10m" : "/t/?wait=%llu",
                 (unsigned long long)s);
        fds[i] = raw_get(path, NULL);
    }
    int fb = raw_get("/admin/backup?since=999999&wait=10m", admin_token);
    char ans[8192];
    await_waiters(5); /* the backup with a since past the end answers 409 at once */
    cr_assert_eq(raw_answer(fb, ans, sizeof ans, ANSWER_MS), 409, "%s", ans);
    cr_assert_eq(kill(K.pid, SIGTERM), 0);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(raw_answer(fds[i], ans, sizeof ans, ANSWER_MS), 200, "waiter %d: %s", i, ans);
        cr_assert_str_eq(raw_body(ans), i % 2 ? "v" : "k\n");
    }
    cr_assert_eq(kvd_stop(&K, SIGTERM), 0);
}

/* ------------------------------------------------- the backup long-poll */

Test(watch, backup_wait_parks_until_something_exists_after_since)
{
    resp r = call("PUT", "/t/k", "v");
    resp_free(&r);
    uint64_t s = current_seq("/t/k");
    char path[128];
    snprintf(path, sizeof path, "/admin/backup?since=%llu&wait=10m", (unsigned long long)s);
    int fd = raw_get(path, admin_token);
    await_waiters(1);
    r = call("PUT", "/t/k2", "new");
    EXPECT(r, 201);
    resp_free(&r);
    static char ans[1 << 16];
    cr_assert_eq(raw_answer(fd, ans, sizeof ans, ANSWER_MS), 200, "%s", ans);
    char want[64];
    snprintf(want, sizeof want, "X-Ringcask-Since: %llu\r\n", (unsigned long long)s);
    cr_assert(strcasestr(ans, want) != NULL, "%s", ans);
    const char *u = strcasestr(ans, "X-Ringcask-Until: ");
    cr_assert(u != NULL);
    cr_assert_gt(strtoull(u + 18, NULL, 10), s);
    /* with something after since, it answers at once */
    snprintf(path, sizeof path, "/admin/backup?since=%llu&wait=10m", (unsigned long long)(s - 1));
    fd = raw_get(path, admin_token);
    cr_assert_eq(raw_answer(fd, ans, sizeof ans, ANSWER_MS), 200);
    /* and at its timeout with nothing new: an empty incremental */
    uint64_t now = current_seq("/t/k");
    snprintf(path, sizeof path, "/admin/backup?since=%llu&wait=300ms", (unsigned long long)now);
    r = call_as(admin_token, "GET", path, NULL, NULL, NULL);
    EXPECT(r, 200);
    char until[32];
    cr_assert_eq(strtoull(resp_header(&r, "X-Ringcask-Until", until, sizeof until), NULL, 10), now);
    resp_free(&r);
}
