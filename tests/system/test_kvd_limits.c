/*
 * test_kvd_limits.c — hostile clients against the real kvd: limits that
 * keep one client from bloating the server or hiding damage. Each case hits
 * one limit and then checks that kvd still answers /healthz and serves an
 * ordinary client.
 *
 * - Memory per request (--max-response-bytes: 413 naming the limit) for a
 *   batch of gets of one big key and a listing with values, and per server
 *   (--max-inflight-bytes: 503 with Retry-After) while request bodies are
 *   held by slow clients.
 * - Deleted buckets give their memory back (engine counters in /metrics,
 *   not RSS: rc_stats.keyspace_bytes), also across a restart.
 * - Bucket creation: off without credentials by default (403 saying how to
 *   enable it), a per-address rate (429 + Retry-After) and a total cap.
 * - Damage: a cut segment is counted in /metrics and --strict refuses to
 *   start; a record corrupted under a running kvd answers 404 every time,
 *   counted once, never 500.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <dirent.h>

#include "kvdtest.h"

#define MIB (1024 * 1024)

static void limits_teardown(void)
{
    kvd_cleanup(&K);
}

TestSuite(limits, .fini = limits_teardown, .timeout = 240);

static void start(const char *const *extra, bool anonymous)
{
    cr_assert(kvd_start_as(&K, NULL, extra, anonymous), "kvd did not become ready");
}

static void start_with_bucket(const char *const *extra)
{
    start(extra, true);
    cr_assert(make_bucket(&K, "{\"name\":\"t\"}", B, sizeof B, AK, sizeof AK));
}

/* kvd still answers /healthz and serves an ordinary request of bucket t. */
static void assert_serving(void)
{
    resp r = http_get(&K, "/healthz");
    cr_assert_eq(r.status, 200, "healthz: %ld", r.status);
    resp_free(&r);
    r = call_as(NULL, "PUT", "/t/ordinary", "fine", NULL, NULL);
    cr_assert(r.status == 200 || r.status == 201, "PUT: %ld %s", r.status, r.body);
    resp_free(&r);
    r = call_as(NULL, "GET", "/t/ordinary", NULL, NULL, NULL);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.len, 4);
    resp_free(&r);
}

/* The value of metric NAME (a line "NAME VALUE") in /metrics; -1 if absent. */
static long long metric(const char *name)
{
    resp r = http_get(&K, "/metrics");
    cr_assert_eq(r.status, 200);
    long long v = -1;
    size_t nl = strlen(name);
    for (const char *p = r.body; p != NULL && *p; p = strchr(p, '\n')) {
        if (*p == '\n')
            p++;
        if (strncmp(p, name, nl) == 0 && p[nl] == ' ') {
            v = strtoll(p + nl + 1, NULL, 10);
            break;
        }
    }
    resp_free(&r);
    return v;
}

static char *big_value(size_t n, char c)
{
    char *v = malloc(n + 1);
    memset(v, c, n);
    v[n] = '\0';
    return v;
}

static void assert_error(const resp *r, long status, const char *code, const char *needle)
{
    cr_assert_eq(r->status, status, "status %ld: %.300s", r->status, r->body ? r->body : "");
    json_t *j = resp_json(r);
    cr_assert(j != NULL, "not JSON: %.200s", r->body);
    cr_assert_str_eq(json_string_value(json_object_get(j, "error")), code);
    const char *msg = json_string_value(json_object_get(j, "message"));
    cr_assert(msg != NULL && strstr(msg, needle) != NULL, "message: %s", msg ? msg : "(none)");
    json_decref(j);
}

/* ------------------------------------------------------------- memory */

static const char *const small_budget[] = {
    "--max-value", "1M", "--max-response-bytes", "2M", "--max-inflight-bytes", "8M", NULL};

Test(limits, batch_of_gets_of_one_big_key_is_refused_by_the_response_budget)
{
    start_with_bucket(small_budget);
    char *v = big_value(1000 * 1000, 'x');
    resp r = call_as(NULL, "PUT", "/t/big", v, NULL, NULL);
    cr_assert_eq(r.status, 201);
    resp_free(&r);
    free(v);
    /* 200 gets of the 1 MB key: 200 MB of answer from a 3 KB body */
    char body[8192] = "{\"ops\":[";
    for (int i = 0; i < 200; i++)
        strcat(body, i ? ",{\"get\":\"big\"}" : "{\"get\":\"big\"}");
    strcat(body, "]}");
    r = call_as(NULL, "POST", "/t/", body, "Content-Type: application/json", NULL);
    assert_error(&r, 413, "response_too_large", "--max-response-bytes");
    resp_free(&r);
    /* one get of it fits, so does the single GET */
    r = call_as(NULL, "POST", "/t/", "{\"ops\":[{\"get\":\"big\"}]}",
                "Content-Type: application/json", NULL);
    cr_assert_eq(r.status, 200, "%ld %.200s", r.status, r.body);
    resp_free(&r);
    r = call_as(NULL, "GET", "/t/big", NULL, NULL, NULL);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.len, 1000 * 1000);
    resp_free(&r);
    cr_assert_gt(metric("kvd_memory_refusals_total{limit=\"max_response_bytes\"}"), 0);
    assert_serving();
    /* the charge is given back when MHD reports the request completed, which
     * may come just after the client read its answer: wait for it (bounded) */
    long long inflight = -1;
    for (int i = 0; i < 200 && inflight != 0; i++) {
        inflight = metric("kvd_inflight_bytes");
        if (inflight != 0)
            usleep(50 * 1000);
    }
    cr_assert_eq(inflight, 0, "every charge is given back");
}

Test(limits, listing_with_values_is_refused_by_the_response_budget)
{
    start_with_bucket(small_budget);
    char *v = big_value(900 * 1000, 'y');
    char path[64];
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "/t/v%d", i);
        resp r = call_as(NULL, "PUT", path, v, NULL, NULL);
        cr_assert_eq(r.status, 201);
        resp_free(&r);
    }
    free(v);
    const char *forms[] = {"/t/?values=true", "/t/?values=true&format=json"};
    for (int f = 0; f < 2; f++) {
        resp r = call_as(NULL, "GET", forms[f], NULL, NULL, NULL);
        assert_error(&r, 413, "response_too_large", "--max-response-bytes");
        resp_free(&r);
    }
    resp r = call_as(NULL, "GET", "/t/?values=true&limit=1", NULL, NULL, NULL);
    cr_assert_eq(r.status, 200, "%ld %.200s", r.status, r.body);
    cr_assert_eq(r.len, 3 + 900 * 1000 + 1);
    resp_free(&r);
    r = call_as(NULL, "GET", "/t/", NULL, NULL, NULL); /* keys alone are cheap */
    cr_assert_eq(r.status, 200);
    resp_free(&r);
    assert_serving();
}

/* A JSON listing of keys alone is charged what its dump will hold: keys of
 * control bytes dump 6x their size (\u0001), so 400 keys of 1,000 bytes
 * answered 2.4 MB under a 2 MiB --max-response-bytes (charged 4x the keys:
 * 1.6 MB). Any 200 stays within the budget. */
Test(limits, a_json_key_listing_is_charged_its_escaped_size)
{
    start_with_bucket(small_budget);
    char path[4 * 1024];
    for (int i = 0; i < 400; i++) {
        int n = snprintf(path, sizeof path, "/t/k%03d", i);
        for (int c = 0; c < 996; c++)
            n += snprintf(path + n, sizeof path - (size_t)n, "%%01");
        resp r = call_as(NULL, "PUT", path, "v", NULL, NULL);
        cr_assert_eq(r.status, 201, "%ld %.200s", r.status, r.body);
        resp_free(&r);
    }
    resp r = call_as(NULL, "GET", "/t/?format=json&limit=1000", NULL, NULL, NULL);
    cr_assert(r.status != 200 || r.len <= 2 * 1024 * 1024, "a 200 of %zu bytes", (size_t)r.len);
    assert_error(&r, 413, "response_too_large", "--max-response-bytes");
    resp_free(&r);
    r = call_as(NULL, "GET", "/t/?format=json&limit=100", NULL, NULL, NULL);
    cr_assert_eq(r.status, 200, "%ld %.200s", r.status, r.body);
    resp_free(&r);
    r = call_as(NULL, "GET", "/t/?limit=1000", NULL, NULL, NULL); /* text: the raw keys */
    cr_assert_eq(r.status, 200, "%ld %.200s", r.status, r.body);
    resp_free(&r);
    assert_serving();
}

static int connect_kvd(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)K.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(fd >= 0);
    cr_assert(connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "connect: %s", strerror(errno));
    return fd;
}

/* Send the head of a PUT declaring a body of LEN bytes, and a first byte. */
static int start_upload(const char *key, long len)
{
    char head[512];
    int n = snprintf(head, sizeof head,
                     "PUT /t/%s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                     "Content-Length: %ld\r\n\r\nx",
                     key, AK, len);
    int fd = connect_kvd();
    cr_assert_eq(send(fd, head, (size_t)n, MSG_NOSIGNAL), n);
    return fd;
}

Test(limits, request_bodies_in_flight_are_bounded_server_wide)
{
    static const char *const extra[] = {
        "--max-value", "3M", "--max-response-bytes", "3M", "--max-inflight-bytes", "4M", NULL};
    start_with_bucket(extra);
    /* a slow client holds a 3 MB body open: kvd reserved it */
    int slow = start_upload("slow", 3 * MIB);
    long long held = -1;
    for (int i = 0; i < 500 && held < 3 * MIB; i++) {
        held = metric("kvd_inflight_bytes");
        if (held < 3 * MIB)
            usleep(10000);
    }
    cr_assert_geq(held, 3 * MIB, "the body is charged: %lld", held);
    /* a second one does not fit beside it: 503 with Retry-After */
    char *v = big_value(2 * MIB, 'z');
    resp r = call_as(NULL, "PUT", "/t/second", v, NULL, NULL);
    assert_error(&r, 503, "busy", "--max-inflight-bytes");
    char ra[32];
    cr_assert(resp_header(&r, "Retry-After", ra, sizeof ra) != NULL, "no Retry-After");
    resp_free(&r);
    assert_serving(); /* small requests still pass */
    /* the slow client goes away: its reservation is given back */
    close(slow);
    long status = 0;
    for (int i = 0; i < 500 && status != 201; i++) {
        r = call_as(NULL, "PUT", "/t/second", v, NULL, NULL);
        status = r.status;
        resp_free(&r);
        if (status != 201)
            usleep(20000);
    }
    cr_assert_eq(status, 201);
    free(v);
    cr_assert_gt(metric("kvd_memory_refusals_total{limit=\"max_inflight_bytes\"}"), 0);
}

Test(limits, response_budget_must_hold_the_largest_value)
{
    static const char *const extra[] = {"--max-value", "4M", "--max-response-bytes", "1M", NULL};
    cr_assert(!kvd_start_as(&K, NULL, extra, true), "kvd started with an impossible budget");
}

/* ------------------------------------------------------ deleted buckets */

static void create_put_delete(int i, bool content_type)
{
    char body[64], name[96], key[96], path[128];
    snprintf(body, sizeof body, "{\"name\":\"cycle%d\"}", i);
    cr_assert(make_bucket(&K, body, name, sizeof name, key, sizeof key), "create %d", i);
    snprintf(path, sizeof path, "/%s/k", name);
    /* a recorded Content-Type gives the bucket its second keyspace */
    resp r =
        call_as(key, "PUT", path, "v", content_type ? "Content-Type: text/x-cycle" : NULL, NULL);
    cr_assert_eq(r.status, 201);
    resp_free(&r);
    r = call_as(key, "GET", path, NULL, NULL, NULL);
    cr_assert_eq(r.status, 200);
    resp_free(&r);
    snprintf(path, sizeof path, "/%s", name);
    r = call_as(key, "DELETE", path, NULL, NULL, NULL);
    cr_assert_eq(r.status, 204);
    resp_free(&r);
}

/* What a deleted bucket could leave in memory, counted rather than sized
 * (RSS would depend on the machine): keyspace handles, catalogue names and
 * per-bucket counters all return to what they were before the cycles. */
typedef struct held {
    long long handles, catalog, counters, keyspaces;
} held;

static held held_now(void)
{
    held h = {metric("ringcask_keyspace_handles"), metric("ringcask_catalog_entries"),
              metric("kvd_buckets_counted"), metric("ringcask_keyspaces")};
    cr_assert(h.handles > 0 && h.catalog > 0 && h.counters >= 0 && h.keyspaces > 0,
              "the gauges are exported");
    return h;
}

/* The gauges once the last requests' completion callbacks ran (a request
 * gives its references back after its answer was sent): polled until they
 * match WANT, for at most ~10 s. */
static held held_settled(held want)
{
    held h = held_now();
    for (int i = 0; i < 1000 && (h.handles != want.handles || h.counters != want.counters); i++) {
        usleep(10 * 1000);
        h = held_now();
    }
    return h;
}

/* The gauges once they held still over three reads 20 ms apart. */
static held held_quiet(void)
{
    held h = held_now();
    for (int same = 0, i = 0; same < 3 && i < 500; i++) {
        usleep(20 * 1000);
        held n = held_now();
        same = memcmp(&n, &h, sizeof n) == 0 ? same + 1 : 0;
        h = n;
    }
    return h;
}

Test(limits, deleted_buckets_release_their_memory_also_across_a_restart)
{
    static const char *const extra[] = {"--bucket-create-rate", "0", NULL};
    start_with_bucket(extra);
    assert_serving();
    create_put_delete(0, false); /* from here one dropped catalogue record is kept */
    held h0 = held_quiet();
    long long base = metric("ringcask_keyspace_bytes");
    cr_assert_gt(base, 0);
    enum { CYCLES = 300 };
    for (int i = 1; i <= CYCLES; i++)
        create_put_delete(i, i % 2 == 0);
    held h = held_settled(h0);
    cr_assert_eq(h.handles, h0.handles, "keyspace handles: %lld, before %lld", h.handles,
                 h0.handles);
    cr_assert_eq(h.catalog, h0.catalog, "catalogue names: %lld, before %lld", h.catalog,
                 h0.catalog);
    cr_assert_eq(h.counters, h0.counters, "bucket counters: %lld, before %lld", h.counters,
                 h0.counters);
    cr_assert_eq(h.keyspaces, h0.keyspaces);
    cr_assert_geq(metric("ringcask_dropped_keyspaces"), CYCLES);
    /* a keydir alone is ~25 KiB; what may grow is bounded caches (the system
     * keyspace's listing cache) and the 8-byte slot of each id in the
     * id-indexed table */
    long long per = (metric("ringcask_keyspace_bytes") - base) / CYCLES;
    cr_assert_lt(per, 1024, "%lld bytes kept per deleted bucket", per);
    assert_serving();

    cr_assert_eq(kvd_stop(&K, SIGTERM), 0);
    cr_assert(kvd_start_as(&K, K.dir, extra, true));
    h = held_now();
    cr_assert_eq(h.handles, h0.handles, "after a restart: %lld handles", h.handles);
    cr_assert_eq(h.catalog, h0.catalog, "after a restart: %lld catalogue names", h.catalog);
    cr_assert_eq(metric("ringcask_dropped_keyspaces"), 0);
    assert_serving();
}

/* ---------------------------------------------------- bucket creation */

Test(limits, anonymous_bucket_creation_is_off_by_default)
{
    start(NULL, false);
    resp r = http(&K, "POST", "/", "{\"name\":\"mine\"}", 15, NULL);
    assert_error(&r, 403, "forbidden", "--allow-anonymous-buckets");
    resp_free(&r);
    r = http_get(&K, "/mine");
    cr_assert_eq(r.status, 404, "nothing was created");
    resp_free(&r);
    r = http_get(&K, "/healthz");
    cr_assert_eq(r.status, 200);
    resp_free(&r);
}

Test(limits, bucket_creation_rate_per_address)
{
    static const char *const extra[] = {"--bucket-create-rate", "3", NULL};
    start_with_bucket(extra); /* "t" is the first of three */
    char name[96], key[96];
    cr_assert(make_bucket(&K, "{\"name\":\"r1\"}", name, sizeof name, key, sizeof key));
    cr_assert(make_bucket(&K, "{\"name\":\"r2\"}", name, sizeof name, key, sizeof key));
    resp r = http(&K, "POST", "/", "{\"name\":\"r3\"}", 13, NULL);
    assert_error(&r, 429, "rate_limited", "--bucket-create-rate");
    char ra[32];
    cr_assert(resp_header(&r, "Retry-After", ra, sizeof ra) != NULL);
    cr_assert(atoi(ra) >= 1 && atoi(ra) <= 61, "Retry-After %s", ra);
    resp_free(&r);
    r = http_get(&K, "/r3");
    cr_assert_eq(r.status, 404);
    resp_free(&r);
    assert_serving();
}

Test(limits, the_server_admin_is_not_rate_limited)
{
    char tokfile[300];
    snprintf(tokfile, sizeof tokfile, "/tmp/kvdtest-admin-token-%d", (int)getpid());
    FILE *f = fopen(tokfile, "w");
    cr_assert(f != NULL);
    fputs("0123456789abcdef-admin\n", f);
    fclose(f);
    const char *const extra[] = {"--admin-token-file", tokfile, "--bucket-create-rate", "1", NULL};
    start(extra, false);
    unlink(tokfile);
    for (int i = 0; i < 3; i++) {
        char body[64];
        snprintf(body, sizeof body, "{\"name\":\"adm%d\"}", i);
        resp r = http_auth(&K, "POST", "/", body, "0123456789abcdef-admin");
        cr_assert_eq(r.status, 201, "creation %d: %ld %s", i, r.status, r.body);
        resp_free(&r);
    }
    resp r = http(&K, "POST", "/", "{\"name\":\"anon\"}", 15, NULL);
    cr_assert_eq(r.status, 401);
    resp_free(&r);
}

Test(limits, total_bucket_cap)
{
    static const char *const extra[] = {"--max-buckets", "2", "--bucket-create-rate", "0", NULL};
    start_with_bucket(extra);
    char name[96], key[96];
    cr_assert(make_bucket(&K, "{\"name\":\"c1\"}", name, sizeof name, key, sizeof key));
    resp r = http(&K, "POST", "/", "{\"name\":\"c2\"}", 13, NULL);
    assert_error(&r, 403, "too_many_buckets", "--max-buckets");
    resp_free(&r);
    r = call_as(key, "DELETE", "/c1", NULL, NULL, NULL);
    cr_assert_eq(r.status, 204);
    resp_free(&r);
    cr_assert(make_bucket(&K, "{\"name\":\"c2\"}", name, sizeof name, key, sizeof key));
    assert_serving();
}

/* -------------------------------------------------------------- damage */

/* The newest segment file of the data directory holding records. */
static void newest_segment(char *path, size_t cap, long long *size)
{
    DIR *d = opendir(K.dir);
    cr_assert(d != NULL);
    struct dirent *de;
    char best[64] = "";
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n != 13 || strcmp(de->d_name + 8, ".data") != 0)
            continue;
        char p[512];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", K.dir, de->d_name);
        if (stat(p, &st) == 0 && st.st_size > 40 && strcmp(de->d_name, best) > 0) {
            snprintf(best, sizeof best, "%s", de->d_name);
            *size = st.st_size;
        }
    }
    closedir(d);
    cr_assert(best[0] != '\0');
    snprintf(path, cap, "%s/%s", K.dir, best);
}

Test(limits, a_cut_segment_is_counted_and_strict_refuses_to_start)
{
    start_with_bucket(NULL);
    resp r = call_as(NULL, "PUT", "/t/first", "one", NULL, NULL);
    resp_free(&r);
    r = call_as(NULL, "PUT", "/t/last", "acknowledged", NULL, NULL);
    cr_assert_eq(r.status, 201);
    resp_free(&r);
    cr_assert_eq(kvd_stop(&K, SIGTERM), 0);
    char path[600];
    long long size = 0;
    newest_segment(path, sizeof path, &size);
    cr_assert_eq(truncate(path, size - 4), 0);

    static const char *const strict[] = {"--strict", NULL};
    cr_assert(!kvd_start_as(&K, K.dir, strict, true), "--strict started on a cut segment");
    cr_assert(kvd_start_as(&K, K.dir, NULL, true));
    cr_assert_gt(metric("ringcask_lost_bytes"), 0);
    cr_assert_eq(metric("ringcask_damaged_files"), 1);
    r = call_as(NULL, "GET", "/t/last", NULL, NULL, NULL);
    cr_assert_eq(r.status, 404, "the cut record is gone (and counted)");
    resp_free(&r);
    assert_serving();
}

Test(limits, a_record_corrupted_under_a_running_kvd_is_404_every_time)
{
    /* the mapping: reads come from the file's pages, where the flipped byte
     * lands. On the io_uring append path the active segment's newest chunk
     * is read from the process's staging memory (ENGINE.md), which the flip
     * does not reach, so nothing corrupt is served there either */
    static const char *const mmap_io[] = {"--append-io", "mmap", NULL};
    start_with_bucket(mmap_io);
    resp r = call_as(NULL, "PUT", "/t/victim", "VICTIM-VALUE-7f3a", NULL, NULL);
    cr_assert_eq(r.status, 201);
    resp_free(&r);
    r = call_as(NULL, "PUT", "/t/bystander", "fine", NULL, NULL);
    resp_free(&r);
    char path[600];
    long long size = 0;
    newest_segment(path, sizeof path, &size);
    int fd = open(path, O_RDWR);
    cr_assert_geq(fd, 0);
    char *buf = malloc((size_t)size);
    cr_assert_eq(pread(fd, buf, (size_t)size, 0), size);
    char *hit = memmem(buf, (size_t)size, "VICTIM-VALUE-7f3a", 17);
    cr_assert(hit != NULL);
    char flipped = (char)(hit[3] ^ 0x20);
    cr_assert_eq(pwrite(fd, &flipped, 1, hit - buf + 3), 1);
    close(fd);
    free(buf);
    for (int i = 0; i < 5; i++) {
        r = call_as(NULL, "GET", "/t/victim", NULL, NULL, NULL);
        cr_assert_eq(r.status, 404, "read %d: %ld %s", i, r.status, r.body);
        resp_free(&r);
    }
    r = call_as(NULL, "GET", "/t/?values=true", NULL, NULL, NULL);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.body, "victim") == NULL);
    resp_free(&r);
    cr_assert_eq(metric("ringcask_corrupt_reads_total"), 1);
    r = call_as(NULL, "GET", "/t/bystander", NULL, NULL, NULL);
    cr_assert_eq(r.status, 200);
    resp_free(&r);
    assert_serving();
}
