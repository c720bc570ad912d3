/*
 * test_kvd_hostile.c — the real kvd against a hostile client. Each test
 * attacks one boundary (credentials of a deleted bucket, request smuggling,
 * values grown past --max-value, conditions that must not match, numbers
 * that must stay what they are) and then checks that kvd still answers
 * /healthz and serves another client normally (served_after). Every test
 * here failed against the kvd before its fix; new limits get a test here.
 *
 * Raw requests go over their own connection (raw_exchange) so the framing is
 * exactly what is written, and a connection kvd must close is seen closing.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <unistd.h>

#include "kvdbackup.h"

/* The longest a raw exchange waits for an answer and the close after it. */
#define RAW_WAIT_MS 5000

static const char admin_token[] = "hostile-admin-token-0123456789";

/* kvd with EXTRA flags and the server admin token, bucket "t" made. */
static void start_with(const char *const *extra)
{
    kvd_admin_setup(admin_token, extra);
}

static void hostile_setup(void)
{
    start_with(NULL);
}

static void small_values_setup(void)
{
    static const char *const extra[] = {"--max-value", "4K", NULL};
    start_with(extra);
}

static void tiny_values_setup(void)
{
    static const char *const extra[] = {"--max-value", "16", NULL};
    start_with(extra);
}

static void hostile_teardown(void)
{
    kvd_admin_teardown();
}

TestSuite(hostile, .init = hostile_setup, .fini = hostile_teardown, .timeout = 120);
/* the same attacks under --max-value 4K and --max-value 16 */
TestSuite(hostile_4k, .init = small_values_setup, .fini = hostile_teardown, .timeout = 120);
TestSuite(hostile_16b, .init = tiny_values_setup, .fini = hostile_teardown, .timeout = 120);

/* JSON bodies under a 1 MiB per-request budget (values up to 64 KiB) */
static void json_budget_setup(void)
{
    static const char *const extra[] = {"--max-value", "64K", "--max-response-bytes", "1M", NULL};
    start_with(extra);
}

/* and under a server-wide budget of 8 MiB */
static void json_inflight_setup(void)
{
    static const char *const extra[] = {
        "--max-value", "1M", "--max-response-bytes", "8M", "--max-inflight-bytes", "8M", NULL};
    start_with(extra);
}

/* at most 300 connections, and a long idle timeout */
static void conns_setup(void)
{
    static const char *const extra[] = {"--max-connections", "300", "--timeout", "120", NULL};
    start_with(extra);
}

TestSuite(hostile_conns, .init = conns_setup, .fini = hostile_teardown, .timeout = 120);
TestSuite(hostile_json, .init = json_budget_setup, .fini = hostile_teardown, .timeout = 120);
TestSuite(hostile_json8m, .init = json_inflight_setup, .fini = hostile_teardown, .timeout = 120);

/* After an attack: /healthz answers and another client is served. */
static void served_after(const char *attack)
{
    resp r = call_as("", "GET", "/healthz", NULL, NULL, NULL);
    cr_assert_eq(r.status, 200, "/healthz after %s: %ld", attack, r.status);
    resp_free(&r);
    r = call("PUT", "/t/bystander", "still here");
    cr_assert(r.status == 200 || r.status == 201, "a PUT after %s: %ld", attack, r.status);
    resp_free(&r);
    r = call("GET", "/t/bystander", NULL);
    cr_assert_eq(r.status, 200, "a GET after %s: %ld", attack, r.status);
    BODY_IS(r, "still here");
    resp_free(&r);
}

static void make_named(const char *name, char *key, size_t cap)
{
    char body[128], got[96];
    snprintf(body, sizeof body, "{\"name\":\"%s\"}", name);
    resp r = call_as(admin_token, "POST", "/", body, NULL, NULL);
    EXPECT(r, 201);
    json_t *j = resp_json(&r);
    snprintf(got, sizeof got, "%s", json_string_value(json_object_get(j, "bucket")));
    snprintf(key, cap, "%s", json_string_value(json_object_get(j, "admin_key")));
    json_decref(j);
    resp_free(&r);
    cr_assert_str_eq(got, name);
}

/* ------------------------------------------------------------ credentials */

Test(hostile, a_token_dies_with_its_bucket)
{
    char old_key[96], new_key[96], tok[2048], newtok[2048];
    make_named("shared", old_key, sizeof old_key);
    cr_assert(make_token(&K, "shared", old_key,
                         "{\"permissions\":[\"read\",\"write\","
                         "\"enumerate\"]}",
                         tok, sizeof tok));
    resp r = call_as(tok, "PUT", "/shared/mine", "old", NULL, NULL);
    EXPECT(r, 201);
    resp_free(&r);
    r = call_as(old_key, "DELETE", "/shared", NULL, NULL, NULL);
    EXPECT(r, 204);
    resp_free(&r);
    make_named("shared", new_key, sizeof new_key);
    r = call_as(new_key, "PUT", "/shared/theirs", "new", NULL, NULL);
    EXPECT(r, 201);
    resp_free(&r);

    /* nothing the old bucket handed out works on the new one */
    r = call_as(tok, "GET", "/shared/theirs", NULL, NULL, NULL);
    EXPECT_ERR(r, 401, "invalid_credentials");
    resp_free(&r);
    r = call_as(tok, "PUT", "/shared/theirs", "overwritten", NULL, NULL);
    EXPECT(r, 401);
    resp_free(&r);
    r = call_as(tok, "GET", "/shared/", NULL, NULL, NULL);
    EXPECT(r, 401);
    resp_free(&r);
    r = call_as(old_key, "GET", "/shared/theirs", NULL, NULL, NULL);
    EXPECT(r, 401);
    resp_free(&r);
    /* the new bucket's own credentials do */
    cr_assert(
        make_token(&K, "shared", new_key, "{\"permissions\":[\"read\"]}", newtok, sizeof newtok));
    r = call_as(newtok, "GET", "/shared/theirs", NULL, NULL, NULL);
    EXPECT(r, 200);
    BODY_IS(r, "new");
    resp_free(&r);
    served_after("a token of a deleted bucket");
}

Test(hostile, a_token_of_a_rotated_then_recreated_bucket_stays_dead)
{
    /* the signing-key version restarts at 1 in a new bucket: a token of
     * version 2 of the old one must not come back once the new one rotates */
    char old_key[96], new_key[96], tok[2048];
    make_named("shared", old_key, sizeof old_key);
    resp r = call_as(old_key, "PATCH", "/shared", "{\"rotate_signing_key\":true}", NULL, NULL);
    EXPECT(r, 200);
    resp_free(&r);
    cr_assert(make_token(&K, "shared", old_key, "{\"permissions\":[\"read\"]}", tok, sizeof tok));
    r = call_as(old_key, "DELETE", "/shared", NULL, NULL, NULL);
    EXPECT(r, 204);
    resp_free(&r);
    make_named("shared", new_key, sizeof new_key);
    r = call_as(new_key, "PATCH", "/shared", "{\"rotate_signing_key\":true}", NULL, NULL);
    EXPECT(r, 200);
    resp_free(&r);
    r = call_as(tok, "GET", "/shared/", NULL, NULL, NULL);
    EXPECT(r, 401);
    resp_free(&r);
    served_after("a token of a rotated, deleted bucket");
}

Test(hostile, scripts_of_a_deleted_bucket_do_not_reach_its_successor)
{
    char old_key[96], new_key[96];
    make_named("shared", old_key, sizeof old_key);
    resp r = call_as(old_key, "PUT", "/shared/scripts/leak", "kv.say('old script')", NULL, NULL);
    cr_assert(r.status == 200 || r.status == 201, "script upload: %ld", r.status);
    resp_free(&r);
    r = call_as(old_key, "DELETE", "/shared", NULL, NULL, NULL);
    EXPECT(r, 204);
    resp_free(&r);
    make_named("shared", new_key, sizeof new_key);
    r = call_as(new_key, "GET", "/shared/scripts/leak/run", NULL, NULL, NULL);
    EXPECT(r, 404);
    resp_free(&r);
    r = call_as(new_key, "GET", "/shared/scripts/", NULL, NULL, NULL);
    EXPECT(r, 200);
    cr_assert(strstr(r.body, "leak") == NULL, "old script listed: %s", r.body);
    resp_free(&r);
    served_after("scripts of a deleted bucket");
}

/* Fetch /admin/backup?since=SINCE and load it into DIR; returns its end. */
static uint64_t backup_into(uint64_t since, const char *dir)
{
    resp r = kvd_backup_since(admin_token, since);
    rc_db *db = NULL;
    cr_assert_eq(rc_open(dir, NULL, &db), 0);
    uint64_t until = kvd_load_stream(db, &r);
    cr_assert_eq(rc_close(db), 0);
    resp_free(&r);
    return until;
}

Test(hostile, a_token_of_a_deleted_bucket_stays_dead_after_restore)
{
    char old_key[96], new_key[96], tok[2048], newtok[2048];
    make_named("shared", old_key, sizeof old_key);
    cr_assert(make_token(&K, "shared", old_key, "{\"permissions\":[\"read\"]}", tok, sizeof tok));
    /* a full backup with the old bucket, an incremental one after the
     * delete and re-create: the restore ends with the new bucket only */
    snprintf(kvd_restored, sizeof kvd_restored, "/tmp/kvdtest.XXXXXX");
    cr_assert(mkdtemp(kvd_restored) != NULL);
    uint64_t until = backup_into(0, kvd_restored);
    resp r = call_as(old_key, "DELETE", "/shared", NULL, NULL, NULL);
    EXPECT(r, 204);
    resp_free(&r);
    make_named("shared", new_key, sizeof new_key);
    cr_assert(
        make_token(&K, "shared", new_key, "{\"permissions\":[\"read\"]}", newtok, sizeof newtok));
    r = call_as(new_key, "PUT", "/shared/k", "v", NULL, NULL);
    EXPECT(r, 201);
    resp_free(&r);
    backup_into(until, kvd_restored);

    char old_dir[256];
    snprintf(old_dir, sizeof old_dir, "%s", K.dir);
    cr_assert_eq(kvd_stop(&K, SIGTERM), 0);
    cr_assert(kvd_start(&K, kvd_restored, NULL), "kvd did not start on the restored dir");
    r = call_as(tok, "GET", "/shared/k", NULL, NULL, NULL);
    EXPECT(r, 401);
    resp_free(&r);
    r = call_as(newtok, "GET", "/shared/k", NULL, NULL, NULL);
    EXPECT(r, 200);
    BODY_IS(r, "v");
    resp_free(&r);
    served_after("a restored backup");
    kvd_proc orig = {0};
    snprintf(orig.dir, sizeof orig.dir, "%s", old_dir);
    kvd_cleanup(&orig);
}

/* -------------------------------------------------------------- smuggling */

/* A request to /t/k with the admin key, EXTRA header lines and BODY. */
static size_t raw_req(char *out, size_t cap, const char *method, const char *version,
                      const char *extra, const char *body)
{
    int n = snprintf(out, cap, "%s /t/k %s\r\nHost: x\r\nAuthorization: Bearer %s\r\n%s\r\n%s",
                     method, version, AK, extra, body);
    cr_assert(n > 0 && (size_t)n < cap);
    return (size_t)n;
}

/* Send it; the answer must be STATUS (or STATUS_B when not 0), exactly one
 * answer, and the connection closed after it. */
static void expect_refused_and_closed(const char *name, const char *req, size_t len, int status,
                                      int status_b)
{
    char buf[8192];
    bool closed = false;
    raw_exchange(&K, req, len, buf, sizeof buf, RAW_WAIT_MS, &closed);
    int count = 0, st = raw_status(buf, &count);
    cr_assert(st == status || (status_b != 0 && st == status_b), "%s: expected %d, got '%.200s'",
              name, status, buf);
    cr_assert_eq(count, 1, "%s: %d answers (a smuggled request ran): %.400s", name, count, buf);
    cr_assert(closed, "%s: the connection stayed open", name);
    served_after(name);
}

/* The smuggled request: a PUT of /t/smuggled hidden in the body. */
static void smuggled_body(char *out, size_t cap)
{
    snprintf(out, cap,
             "0\r\n\r\nPUT /t/smuggled HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
             "Content-Length: 1\r\n\r\nx",
             AK);
}

static void expect_not_smuggled(void)
{
    resp r = call("GET", "/t/smuggled", NULL);
    EXPECT(r, 404);
    resp_free(&r);
    r = call("GET", "/t/k", NULL);
    EXPECT(r, 404);
    resp_free(&r);
}

Test(hostile, content_length_with_chunked_is_400_and_closed)
{
    char body[512], req[2048], extra[128];
    smuggled_body(body, sizeof body);
    snprintf(extra, sizeof extra, "Content-Length: %zu\r\nTransfer-Encoding: chunked\r\n",
             strlen(body));
    size_t n = raw_req(req, sizeof req, "PUT", "HTTP/1.1", extra, body);
    expect_refused_and_closed("Content-Length and chunked", req, n, 400, 0);
    /* the other order of the two headers, and a PATCH (whose early answer
     * libmicrohttpd would otherwise follow by reading the body) */
    snprintf(extra, sizeof extra, "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n");
    n = raw_req(req, sizeof req, "PATCH", "HTTP/1.1", extra, body);
    expect_refused_and_closed("chunked then Content-Length", req, n, 400, 0);
    expect_not_smuggled();
}

Test(hostile, an_unsupported_transfer_encoding_is_501_and_closed)
{
    char req[2048];
    size_t n = raw_req(req, sizeof req, "PUT", "HTTP/1.1", "Transfer-Encoding: gzip\r\n", "abc");
    expect_refused_and_closed("Transfer-Encoding: gzip", req, n, 501, 0);
    resp r = call("GET", "/t/k", NULL);
    EXPECT(r, 404);
    resp_free(&r);
}

typedef struct te_case {
    const char *name;
    const char *version;
    const char *headers;
    int status, status_b;
} te_case;

Test(hostile, every_ambiguous_framing_is_refused_and_closed)
{
    static const te_case cases[] = {
        {"chunked not last", "HTTP/1.1", "Transfer-Encoding: chunked, gzip\r\n", 400, 0},
        {"gzip before chunked", "HTTP/1.1", "Transfer-Encoding: gzip, chunked\r\n", 501, 0},
        {"chunked twice", "HTTP/1.1", "Transfer-Encoding: chunked, chunked\r\n", 400, 0},
        {"chunked in two headers", "HTTP/1.1",
         "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", 400, 0},
        {"gzip header then chunked header", "HTTP/1.1",
         "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", 501, 0},
        {"chunked header then gzip header", "HTTP/1.1",
         "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n", 400, 0},
        {"identity", "HTTP/1.1", "Transfer-Encoding: identity\r\n", 501, 0},
        {"empty Transfer-Encoding", "HTTP/1.1", "Transfer-Encoding: \r\n", 400, 0},
        {"a trailing comma", "HTTP/1.1", "Transfer-Encoding: chunked,\r\n", 400, 0},
        {"obs-fold", "HTTP/1.1", "Transfer-Encoding: gzip\r\n chunked\r\n", 400, 0},
        {"obs-fold of Content-Length", "HTTP/1.1", "Content-Length: 1\r\n\t0\r\n", 400, 0},
        {"a framing header folded into another", "HTTP/1.1",
         "X-Pad: a\r\n\tTransfer-Encoding:chunked\r\n", 400, 0},
        {"chunked in HTTP/1.0", "HTTP/1.0", "Transfer-Encoding: chunked\r\n", 400, 0},
        {"Content-Length: 0 and chunked", "HTTP/1.1",
         "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n", 400, 0},
        {"Content-Lengths that disagree", "HTTP/1.1", "Content-Length: 3\r\nContent-Length: 40\r\n",
         400, 0},
    };
    char body[512], req[2048];
    smuggled_body(body, sizeof body);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = raw_req(req, sizeof req, "PUT", cases[i].version, cases[i].headers, body);
        expect_refused_and_closed(cases[i].name, req, n, cases[i].status, cases[i].status_b);
    }
    expect_not_smuggled();
}

Test(hostile, plain_chunked_still_works)
{
    char req[1024], buf[4096];
    bool closed = false;
    size_t n =
        raw_req(req, sizeof req, "PUT", "HTTP/1.1",
                "Transfer-Encoding: Chunked\r\nConnection: close\r\n", "3\r\nabc\r\n0\r\n\r\n");
    raw_exchange(&K, req, n, buf, sizeof buf, RAW_WAIT_MS, &closed);
    cr_assert_eq(raw_status(buf, NULL), 201, "chunked PUT: %.200s", buf);
    resp r = call("GET", "/t/k", NULL);
    EXPECT(r, 200);
    BODY_IS(r, "abc");
    resp_free(&r);
    served_after("a chunked PUT");
}

/* ------------------------------------------------------- growing values */

static size_t value_len(const char *key)
{
    char path[128];
    snprintf(path, sizeof path, "/t/%s", key);
    resp r = call("GET", path, NULL);
    size_t n = r.status == 200 ? r.len : 0;
    resp_free(&r);
    return n;
}

Test(hostile_4k, append_keeps_to_max_value)
{
    char chunk[1001], body[1100];
    memset(chunk, 'a', 1000);
    chunk[1000] = '\0';
    snprintf(body, sizeof body, "{\"op\":\"append\",\"value\":\"%s\"}", chunk);
    int ok = 0, refused = 0;
    for (int i = 0; i < 12; i++) {
        resp r = call("PATCH", "/t/grow", body);
        if (r.status == 413) {
            EXPECT_ERR(r, 413, "value_too_large");
            refused++;
        } else {
            cr_assert(r.status == 200 || r.status == 201, "append %d: %ld", i, r.status);
            ok++;
        }
        resp_free(&r);
    }
    cr_assert_eq(ok, 4, "4 appends fit in 4 KiB, %d did", ok);
    cr_assert_eq(refused, 8);
    cr_assert_eq(value_len("grow"), 4000, "the value grew past --max-value");
    served_after("appends past --max-value");
}

Test(hostile_16b, an_increment_keeps_to_max_value)
{
    resp r = call("PUT", "/t/n", "9999999999999999");
    EXPECT(r, 201);
    resp_free(&r);
    r = call("PATCH", "/t/n", "+1");
    EXPECT_ERR(r, 413, "value_too_large");
    resp_free(&r);
    r = call("GET", "/t/n", NULL);
    BODY_IS(r, "9999999999999999");
    resp_free(&r);
    /* in a batch too: nothing of it applies */
    r = call("POST", "/t/",
             "{\"ops\":[{\"set\":\"m\",\"value\":\"1\"},{\"incr\":\"n\",\"by\":1}]}");
    EXPECT_ERR(r, 413, "value_too_large");
    resp_free(&r);
    r = call("GET", "/t/m", NULL);
    EXPECT(r, 404);
    resp_free(&r);
    /* and a float that needs more digits than the limit */
    r = call("PATCH", "/t/f", "+0.1234567890123456");
    EXPECT_ERR(r, 413, "value_too_large");
    resp_free(&r);
    cr_assert_eq(value_len("f"), 0);
    served_after("increments past --max-value");
}

Test(hostile_16b, a_script_write_keeps_to_max_value)
{
    resp r = call("PUT", "/t/n", "9999999999999999");
    EXPECT(r, 201);
    resp_free(&r);
    r = call("PUT", "/t/scripts/grow", "kv.incr('n',1)");
    cr_assert(r.status == 200 || r.status == 201, "script upload: %ld %s", r.status, r.body);
    resp_free(&r);
    r = call("POST", "/t/scripts/grow/run", "");
    EXPECT_ERR(r, 413, "value_too_large");
    resp_free(&r);
    r = call("GET", "/t/n", NULL);
    BODY_IS(r, "9999999999999999");
    resp_free(&r);
    served_after("a script growing a value past --max-value");
}

/* ------------------------------------------------------------- conditions */

Test(hostile, if_match_zero_never_matches_an_absent_key)
{
    resp r = call_as(NULL, "PUT", "/t/k", "v", "If-Match: \"0\"", NULL);
    EXPECT_ERR(r, 409, "conflict");
    resp_free(&r);
    r = call("GET", "/t/k", NULL);
    EXPECT(r, 404);
    resp_free(&r);
    r = call_as(NULL, "DELETE", "/t/k", NULL, "If-Match: \"0\"", NULL);
    EXPECT_ERR(r, 409, "conflict");
    resp_free(&r);
    r = call_as(NULL, "PATCH", "/t/k", "+5", "If-Match: \"0\"", NULL);
    EXPECT_ERR(r, 409, "conflict");
    resp_free(&r);
    r = call("GET", "/t/k", NULL);
    EXPECT(r, 404);
    resp_free(&r);
    r = call("POST", "/t/",
             "{\"ops\":[{\"set\":\"k\",\"value\":\"v\",\"if_match\":\"\\\"0\\\"\"}]}");
    EXPECT_ERR(r, 409, "conflict");
    resp_free(&r);
    r = call("POST", "/t/", "{\"ops\":[{\"set\":\"k\",\"value\":\"v\",\"if_match\":0}]}");
    EXPECT_ERR(r, 409, "conflict");
    resp_free(&r);
    r = call("GET", "/t/k", NULL);
    EXPECT(r, 404);
    resp_free(&r);
    /* two conditions that contradict each other are refused, not merged */
    r = call("POST", "/t/",
             "{\"ops\":[{\"set\":\"k\",\"value\":\"v\",\"if_absent\":true,\"if_match\":"
             "\"\\\"1\\\"\"}]}");
    EXPECT_ERR(r, 400, "bad_request");
    resp_free(&r);
    r = call_as(NULL, "PUT", "/t/k", "v", "If-Match: *", "If-None-Match: *");
    EXPECT_ERR(r, 400, "bad_request");
    resp_free(&r);
    /* W/"0" and a bare 0 are the same ETag */
    r = call_as(NULL, "PUT", "/t/k", "v", "If-Match: W/\"0\"", NULL);
    EXPECT_ERR(r, 409, "conflict");
    resp_free(&r);
    /* a present key does not match "0" either */
    r = call("PUT", "/t/p", "v");
    EXPECT(r, 201);
    resp_free(&r);
    r = call_as(NULL, "DELETE", "/t/p", NULL, "If-Match: 0", NULL);
    EXPECT_ERR(r, 409, "conflict");
    resp_free(&r);
    r = call("GET", "/t/p", NULL);
    EXPECT(r, 200);
    resp_free(&r);
    served_after("If-Match \"0\"");
}

Test(hostile, a_creation_answers_201)
{
    resp r = call("PATCH", "/t/counter", "+1");
    EXPECT(r, 201);
    BODY_IS(r, "1");
    resp_free(&r);
    r = call("PATCH", "/t/counter", "+1");
    EXPECT(r, 200);
    BODY_IS(r, "2");
    resp_free(&r);
    r = call("PATCH", "/t/log", "{\"op\":\"append\",\"value\":\"a\"}");
    EXPECT(r, 201);
    resp_free(&r);
    r = call("PATCH", "/t/log", "{\"op\":\"append\",\"value\":\"b\"}");
    EXPECT(r, 200);
    BODY_IS(r, "ab");
    resp_free(&r);
    r = call("PATCH", "/t/once", "{\"op\":\"setnx\",\"value\":\"x\"}");
    EXPECT(r, 201);
    resp_free(&r);
    r = call("PATCH", "/t/once", "{\"op\":\"setnx\",\"value\":\"y\"}");
    EXPECT(r, 409);
    resp_free(&r);
    r = call_as(NULL, "PUT", "/t/fresh", "v", "If-None-Match: *", NULL);
    EXPECT(r, 201);
    resp_free(&r);
    served_after("creations");
}

Test(hostile, if_none_match_on_get)
{
    resp r = call("PUT", "/t/k", "v");
    EXPECT(r, 201);
    char etag[64], buf[64];
    snprintf(etag, sizeof etag, "If-None-Match: %s", resp_header(&r, "ETag", buf, sizeof buf));
    resp_free(&r);
    r = call_as(NULL, "GET", "/t/k", NULL, etag, NULL);
    EXPECT(r, 304);
    resp_free(&r);
    r = call_as(NULL, "GET", "/t/k", NULL, "If-None-Match: *", NULL);
    EXPECT(r, 304);
    resp_free(&r);
    r = call_as(NULL, "GET", "/t/k", NULL, "If-None-Match: \"0\"", NULL);
    EXPECT(r, 200);
    resp_free(&r);
    r = call_as(NULL, "GET", "/t/absent", NULL, "If-None-Match: *", NULL);
    EXPECT(r, 404);
    resp_free(&r);
    served_after("If-None-Match on GET");
}

/* ---------------------------------------------------------------- numbers */

Test(hostile, a_float_overflow_says_float)
{
    resp r = call("PATCH", "/t/f", "{\"op\":\"incr\",\"by\":1e308}");
    EXPECT(r, 201);
    resp_free(&r);
    r = call("PATCH", "/t/f", "{\"op\":\"incr\",\"by\":1e308}");
    EXPECT_ERR(r, 409, "overflow");
    cr_assert(strstr(r.body, "float") != NULL, "message: %s", r.body);
    cr_assert(strstr(r.body, "integer") == NULL, "message: %s", r.body);
    resp_free(&r);
    r = call("PUT", "/t/i", "9223372036854775807");
    resp_free(&r);
    r = call("PATCH", "/t/i", "+1");
    EXPECT_ERR(r, 409, "overflow");
    cr_assert(strstr(r.body, "integer") != NULL, "message: %s", r.body);
    resp_free(&r);
    served_after("overflowing increments");
}

/* An increment written as an integer that int64 cannot hold is refused with
 * a message naming it; it is not silently made a float (which rounds it:
 * 5 + 9223372036854775808 answered 9.223372036854776e+18), and nothing is
 * created or changed. JSON bodies name Jansson's reason, not just "invalid". */
Test(hostile, an_integer_increment_past_int64_is_refused_not_made_a_float)
{
    resp r = call("PATCH", "/t/fresh", "+9223372036854775808");
    EXPECT_ERR(r, 400, "bad_request");
    cr_assert(strstr(r.body, "int64") != NULL, "message: %s", r.body);
    resp_free(&r);
    r = call("GET", "/t/fresh", NULL);
    EXPECT(r, 404);
    resp_free(&r);
    r = call("PUT", "/t/five", "5");
    resp_free(&r);
    r = call("PATCH", "/t/five", "-99999999999999999999");
    EXPECT_ERR(r, 400, "bad_request");
    resp_free(&r);
    r = call("GET", "/t/five", NULL);
    BODY_IS(r, "5");
    resp_free(&r);
    /* written as a float it is a float increment, as documented */
    r = call("PATCH", "/t/five", "+9223372036854775808.0");
    EXPECT(r, 200);
    resp_free(&r);
    r = call("POST", "/t/", "{\"ops\":[{\"incr\":\"c\",\"by\":9223372036854775808}]}");
    EXPECT_ERR(r, 400, "bad_request");
    cr_assert(strstr(r.body, "too big integer") != NULL, "message: %s", r.body);
    resp_free(&r);
    r = call("PATCH", "/t/c", "{\"op\":\"incr\",\"by\":9223372036854775808}");
    EXPECT_ERR(r, 400, "bad_request");
    cr_assert(strstr(r.body, "too big integer") != NULL, "message: %s", r.body);
    resp_free(&r);
    r = call("GET", "/t/c", NULL);
    EXPECT(r, 404);
    resp_free(&r);
    served_after("increments past int64");
}

Test(hostile, a_float_stays_a_float)
{
    resp r = call("POST", "/t/",
                  "{\"ops\":[{\"set\":\"f\",\"value\":1.0},{\"set\":\"g\",\"value\":-2.0},"
                  "{\"set\":\"h\",\"value\":0.5}]}");
    EXPECT(r, 200);
    resp_free(&r);
    r = call("GET", "/t/f", NULL);
    BODY_IS(r, "1.0");
    resp_free(&r);
    r = call("GET", "/t/g", NULL);
    BODY_IS(r, "-2.0");
    resp_free(&r);
    r = call("GET", "/t/h", NULL);
    BODY_IS(r, "0.5");
    resp_free(&r);
    r = call("PATCH", "/t/s", "{\"op\":\"setnx\",\"value\":3.0}");
    resp_free(&r);
    r = call("GET", "/t/s", NULL);
    BODY_IS(r, "3.0");
    resp_free(&r);
    /* incrementing it keeps it a float */
    r = call("PATCH", "/t/f", "+1");
    BODY_IS(r, "2.0");
    resp_free(&r);
    /* and a script's float too */
    r = call("PUT", "/t/scripts/fl", "kv.set('sf', 4.0) kv.say('ok')");
    cr_assert(r.status == 200 || r.status == 201);
    resp_free(&r);
    r = call("POST", "/t/scripts/fl/run", "");
    EXPECT(r, 200);
    resp_free(&r);
    r = call("GET", "/t/sf", NULL);
    BODY_IS(r, "4.0");
    resp_free(&r);
    served_after("floats");
}

/* ------------------------------------------------------------ JSON bodies */

/* A batch body of N ops {"get":"k"} (12 bytes of JSON each, a few hundred
 * bytes each once Jansson parsed them); the caller frees it. */
static char *tiny_ops(size_t n)
{
    static const char op[] = "{\"get\":\"k\"},";
    size_t cap = 16 + n * (sizeof op - 1);
    char *b = malloc(cap);
    cr_assert(b != NULL);
    size_t len = (size_t)snprintf(b, cap, "{\"ops\":[");
    for (size_t i = 0; i < n; i++) {
        memcpy(b + len, op, sizeof op - 1);
        len += sizeof op - 1;
    }
    b[len - 1] = ']'; /* the last comma */
    b[len++] = '}';
    b[len] = '\0';
    return b;
}

/* 10,000 ops (the batch maximum) in a 120 KB body need more than 1 MiB once
 * parsed: refused while parsing, naming the limit (before: parsed in full,
 * and a 57 MiB body of such ops made kvd allocate 1.9 GiB just to count
 * them). */
Test(hostile_json, a_batch_whose_parsed_tree_outgrows_the_budget_is_413)
{
    char *body = tiny_ops(10000);
    resp r = call_as(NULL, "POST", "/t/", body, "Content-Type: application/json", NULL);
    EXPECT_ERR(r, 413, "too_large");
    cr_assert(strstr(r.body, "--max-response-bytes") != NULL, "%s", r.body);
    resp_free(&r);
    free(body);
    /* a batch that fits still runs */
    body = tiny_ops(100);
    r = call_as(NULL, "POST", "/t/", body, "Content-Type: application/json", NULL);
    EXPECT(r, 200);
    resp_free(&r);
    free(body);
    served_after("a batch of many tiny ops");
}

/* A JSON value of 30,000 small elements (60 KB, under --max-value) needs
 * ~2 MB to check: 413 and nothing stored; with Content-Type and without
 * (kvd then checks whether the text is JSON), and as a PATCH value. */
Test(hostile_json, a_json_value_whose_tree_outgrows_the_budget_is_413)
{
    size_t n = 30000, len = 0;
    char *v = malloc(2 * n + 2);
    cr_assert(v != NULL);
    v[len++] = '[';
    for (size_t i = 0; i < n; i++) {
        v[len++] = '0';
        v[len++] = ',';
    }
    v[len - 1] = ']';
    v[len] = '\0';
    resp r = call_as(NULL, "PUT", "/t/j", v, "Content-Type: application/json", NULL);
    EXPECT_ERR(r, 413, "too_large");
    resp_free(&r);
    r = call("PUT", "/t/j", v);
    EXPECT_ERR(r, 413, "too_large");
    resp_free(&r);
    r = call("GET", "/t/j", NULL);
    EXPECT(r, 404);
    resp_free(&r);
    free(v);
    served_after("a JSON value of many small elements");
}

/* The parsed tree counts against --max-inflight-bytes past its first MiB:
 * a 2 MB body of tiny ops (4 MB charged for the body and its tree as it
 * was) stops at the server-wide budget with 503 and Retry-After. */
Test(hostile_json8m, a_batch_tree_is_charged_to_the_server_budget)
{
    char *body = tiny_ops(170000);
    resp r = call_as(NULL, "POST", "/t/", body, "Content-Type: application/json", NULL);
    EXPECT_ERR(r, 503, "busy");
    char ra[16];
    cr_assert(resp_header(&r, "Retry-After", ra, sizeof ra) != NULL);
    resp_free(&r);
    free(body);
    /* everything it charged was given back (at the request's completion,
     * which may come just after the client read the answer: bounded wait) */
    bool zero = false;
    for (int i = 0; i < 50 && !zero; i++) {
        r = call_as("", "GET", "/metrics", NULL, NULL, NULL);
        EXPECT(r, 200);
        zero = strstr(r.body, "\nkvd_inflight_bytes 0\n") != NULL;
        resp_free(&r);
        if (!zero)
            usleep(100 * 1000);
    }
    cr_assert(zero, "kvd_inflight_bytes stayed above 0");
    served_after("a batch tree past the server budget");
}

/* "." and ".." are not script names: a URL holding them is rewritten on
 * the way (/t/scripts/../run is /t/run), so such a script could be created
 * but never reached, and a proxy would send its run to a key. */
Test(hostile, dot_segments_are_not_script_names)
{
    const char *names[] = {"/t/scripts/.", "/t/scripts/..", "/t/scripts/../run"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        /* raw, so that libcurl keeps the dot-segments */
        char req[512], buf[2048];
        bool closed = false;
        int n = snprintf(req, sizeof req,
                         "PUT %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                         "Content-Length: 8\r\n\r\nreturn 1",
                         names[i], AK);
        raw_exchange(&K, req, (size_t)n, buf, sizeof buf, RAW_WAIT_MS, &closed);
        int count = 0;
        cr_assert_eq(raw_status(buf, &count), 404, "%s: %.300s", names[i], buf);
    }
    resp r = call("GET", "/t/scripts/", NULL);
    EXPECT(r, 200);
    cr_assert(strstr(r.body, "\"..\"") == NULL && strstr(r.body, "\".\"") == NULL, "%s", r.body);
    resp_free(&r);
    served_after("dot-segment script names");
}

/* ------------------------------------------------------------ connections */

/* A TCP connection to kvd from the loopback address SRC (127.0.0.2 is a
 * client other than the test's usual 127.0.0.1); -1 when refused. */
static int connect_from(const char *src)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, src, &a.sin_addr);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0, "bind %s", src);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)K.port)};
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    if (connect(fd, (struct sockaddr *)&to, sizeof to) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One address opens more connections than kvd takes in all and leaves each
 * with half a request (as a client trickling a header byte now and then,
 * which the idle timeout never closes): past --max-connections-per-ip
 * (256 by default) its connections are closed, so a client at another
 * address is still answered (before: the 301st connection of anyone waited
 * until the attacker's timed out). */
Test(hostile_conns, one_address_cannot_take_every_connection)
{
    enum { ATTACK = 310 };
    static const char partial[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    int fds[ATTACK];
    for (int i = 0; i < ATTACK; i++) {
        fds[i] = connect_from("127.0.0.1");
        if (fds[i] >= 0 && send(fds[i], partial, sizeof partial - 1, MSG_NOSIGNAL) < 0) {
            close(fds[i]);
            fds[i] = -1;
        }
    }
    /* the bystander, from another address */
    int fd = connect_from("127.0.0.2");
    cr_assert(fd >= 0, "the bystander could not connect");
    static const char get[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    cr_assert_eq(send(fd, get, sizeof get - 1, MSG_NOSIGNAL), (ssize_t)(sizeof get - 1));
    char buf[1024];
    size_t got = 0;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    while (got < sizeof buf - 1 && poll(&pfd, 1, RAW_WAIT_MS) > 0) {
        ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    close(fd);
    cr_assert(strncmp(buf, "HTTP/1.1 200", 12) == 0, "the bystander got: '%.200s'", buf);
    /* the attacker's connections past 256 were closed: each reads EOF (kvd
     * may still be accepting and closing them: bounded rounds) */
    int closed = 0;
    bool seen[ATTACK] = {false};
    for (int round = 0; round < 50 && closed < ATTACK - 256; round++) {
        for (int i = 0; i < ATTACK; i++) {
            if (seen[i])
                continue;
            char c;
            struct pollfd q = {.fd = fds[i], .events = POLLIN};
            if (fds[i] < 0 || (poll(&q, 1, 0) > 0 && recv(fds[i], &c, 1, MSG_DONTWAIT) == 0)) {
                seen[i] = true;
                closed++;
            }
        }
        if (closed < ATTACK - 256)
            poll(NULL, 0, 100);
    }
    cr_assert_geq(closed, ATTACK - 256, "only %d of the attacker's connections were closed",
                  closed);
    for (int i = 0; i < ATTACK; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    served_after("one address holding every connection");
}
