/*
 * test_kvd_keys.c — one key at a time: set/get/head/delete, types and
 * Content-Type, TTL, ETags and conditions, PATCH operations, encoded keys,
 * and the size limits.
 */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "kvdtest.h"

TestSuite(keys, .init = kvd_setup, .fini = kvd_teardown, .timeout = 600);

Test(keys, put_get_head_delete_round_trip)
{
    resp r = call("PUT", "/t/hello", "world");
    EXPECT(r, 201);
    char etag[64], ct[128];
    cr_assert(resp_header(&r, "ETag", etag, sizeof etag) != NULL);
    resp_free(&r);
    r = call("GET", "/t/hello", NULL);
    EXPECT(r, 200);
    BODY_IS(r, "world");
    cr_assert_str_eq(resp_header(&r, "Content-Type", ct, sizeof ct), "application/octet-stream");
    char etag2[64];
    cr_assert_str_eq(resp_header(&r, "ETag", etag2, sizeof etag2), etag);
    cr_assert(resp_header(&r, "X-Expires-At", ct, sizeof ct) == NULL);
    resp_free(&r);
    r = call("HEAD", "/t/hello", NULL);
    EXPECT(r, 200);
    cr_assert_eq(r.len, 0);
    cr_assert_str_eq(resp_header(&r, "ETag", etag2, sizeof etag2), etag);
    resp_free(&r);
    r = call("PUT", "/t/hello", "again");
    EXPECT(r, 200);
    resp_free(&r);
    r = call("POST", "/t/hello", "posted");
    EXPECT(r, 200);
    resp_free(&r);
    r = call("GET", "/t/hello", NULL);
    BODY_IS(r, "posted");
    resp_free(&r);
    r = call("DELETE", "/t/hello", NULL);
    EXPECT(r, 204);
    resp_free(&r);
    r = call("GET", "/t/hello", NULL);
    EXPECT_ERR(r, 404, "not_found");
    resp_free(&r);
    r = call("HEAD", "/t/hello", NULL);
    EXPECT(r, 404);
    resp_free(&r);
    r = call("DELETE", "/t/hello", NULL);
    EXPECT_ERR(r, 404, "not_found");
    resp_free(&r);
}

Test(keys, empty_and_binary_values)
{
    static const char bin[] = {'a', 0, (char)0xff, '\n', 'z'};
    const char *hdrs[] = {"Authorization: Bearer", NULL};
    char auth[200];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", AK);
    hdrs[0] = auth;
    resp r = http(&K, "PUT", "/t/bin", bin, sizeof bin, hdrs);
    EXPECT(r, 201);
    resp_free(&r);
    r = call("GET", "/t/bin", NULL);
    cr_assert_eq(r.len, sizeof bin);
    cr_assert(memcmp(r.body, bin, sizeof bin) == 0);
    resp_free(&r);
    r = call("PUT", "/t/empty", "");
    EXPECT(r, 201);
    resp_free(&r);
    r = call("GET", "/t/empty", NULL);
    EXPECT(r, 200);
    cr_assert_eq(r.len, 0);
    resp_free(&r);
}

static void expect_type(const char *key, const char *body, const char *ctype_in,
                        const char *ctype_out)
{
    char path[128], hdr[128], ct[128];
    snprintf(path, sizeof path, "/t/%s", key);
    snprintf(hdr, sizeof hdr, "Content-Type: %s", ctype_in ? ctype_in : "");
    resp r = call_as(NULL, "PUT", path, body, ctype_in ? hdr : NULL, NULL);
    cr_assert(r.status == 201 || r.status == 200, "PUT %s: %ld %s", key, r.status, r.body);
    resp_free(&r);
    r = call("GET", path, NULL);
    EXPECT(r, 200);
    BODY_IS(r, body);
    cr_assert(resp_header(&r, "Content-Type", ct, sizeof ct) != NULL);
    cr_assert(strncmp(ct, ctype_out, strlen(ctype_out)) == 0, "%s: '%s' answered %s, want %s", key,
              body, ct, ctype_out);
    resp_free(&r);
}

Test(keys, type_detection_and_content_type)
{
    expect_type("i", "42", NULL, "text/plain");
    expect_type("neg", "-7", NULL, "text/plain");
    expect_type("f", "3.25", NULL, "text/plain");
    expect_type("e", "1e3", NULL, "text/plain");
    expect_type("o", "{\"a\": [1, 2]}", NULL, "application/json");
    expect_type("a", "[1,2,3]", NULL, "application/json");
    expect_type("s", "hello", NULL, "application/octet-stream");
    expect_type("nan", "nan", NULL, "application/octet-stream");
    expect_type("hex", "0x10", NULL, "application/octet-stream");
    expect_type("half", "{\"a\":", NULL, "application/octet-stream");
    expect_type("jstr", "\"quoted\"", "application/json", "application/json");
    expect_type("oct", "42", "application/octet-stream", "application/octet-stream");
    expect_type("tp", "{\"a\":1}", "text/plain", "text/plain");
    expect_type("tpn", "12", "text/plain", "text/plain");
    expect_type("form", "17", "application/x-www-form-urlencoded", "text/plain");
    resp r = call_as(NULL, "PUT", "/t/bad", "{not json", "Content-Type: application/json", NULL);
    EXPECT_ERR(r, 400, "bad_request");
    resp_free(&r);
    r = call("GET", "/t/bad", NULL);
    EXPECT(r, 404);
    resp_free(&r);
}

Test(keys, ttl_sets_expiry_header_and_expires)
{
    long long before = (long long)time(NULL);
    resp r = call("PUT", "/t/short?ttl=1", "x");
    EXPECT(r, 201);
    resp_free(&r);
    r = call("PUT", "/t/long?ttl=3600", "y");
    resp_free(&r);
    r = call("GET", "/t/long", NULL);
    EXPECT(r, 200);
    char exp[64];
    cr_assert(resp_header(&r, "X-Expires-At", exp, sizeof exp) != NULL, "no X-Expires-At");
    long long e = atoll(exp), after = (long long)time(NULL);
    /* the PUT happened between BEFORE and AFTER, however slow the machine */
    cr_assert(e >= before + 3599 && e <= after + 3601, "X-Expires-At %lld vs now %lld..%lld", e,
              before, after);
    resp_free(&r);
    /* bounded wait for the 1 s key to expire */
    long status = 200;
    for (int i = 0; i < 40 && status == 200; i++) {
        usleep(100000);
        r = call("GET", "/t/short", NULL);
        status = r.status;
        resp_free(&r);
    }
    cr_assert_eq(status, 404, "a key with ttl=1 was still there after 4 s");
    r = call("PUT", "/t/bad?ttl=abc", "x");
    EXPECT_ERR(r, 400, "bad_request");
    resp_free(&r);
    r = call("PUT", "/t/bad?ttl=-5", "x");
    EXPECT_ERR(r, 400, "bad_request");
    resp_free(&r);
}

Test(keys, bucket_default_ttl_applies)
{
    char name[96], key[96];
    cr_assert(make_bucket(&K, "{\"name\":\"ttlb\",\"default_ttl\":100}", name, sizeof name, key,
                          sizeof key));
    resp r = call_as(key, "PUT", "/ttlb/k", "v", NULL, NULL);
    EXPECT(r, 201);
    resp_free(&r);
    r = call_as(key, "GET", "/ttlb/k", NULL, NULL, NULL);
    char exp[64];
    cr_assert(resp_header(&r, "X-Expires-At", exp, sizeof exp) != NULL);
    long long e = atoll(exp), now = (long long)time(NULL);
    cr_assert(e >= now + 98 && e <= now + 102, "expiry %lld now %lld", e, now);
    resp_free(&r);
    r = call_as(key, "PUT", "/ttlb/forever?ttl=0", "v", NULL, NULL);
    resp_free(&r);
    r = call_as(key, "GET", "/ttlb/forever", NULL, NULL, NULL);
    cr_assert(resp_header(&r, "X-Expires-At", exp, sizeof exp) == NULL);
    resp_free(&r);
}

Test(keys, etag_conditions)
{
    char etag[64], hdr[128];
    resp r = call_as(NULL, "PUT", "/t/c", "1", "If-None-Match: *", NULL);
    EXPECT(r, 201);
    resp_header(&r, "ETag", etag, sizeof etag);
    resp_free(&r);
    r = call_as(NULL, "PUT", "/t/c", "2", "If-None-Match: *", NULL);
    EXPECT_ERR(r, 409, "exists");
    resp_free(&r);
    r = call_as(NULL, "PUT", "/t/c", "3", "If-Match: \"999999\"", NULL);
    EXPECT_ERR(r, 409, "conflict");
    resp_free(&r);
    r = call("GET", "/t/c", NULL);
    BODY_IS(r, "1");
    resp_free(&r);
    snprintf(hdr, sizeof hdr, "If-Match: %s", etag);
    r = call_as(NULL, "PUT", "/t/c", "4", hdr, NULL);
    EXPECT(r, 200);
    char etag2[64];
    resp_header(&r, "ETag", etag2, sizeof etag2);
    cr_assert_str_neq(etag, etag2);
    resp_free(&r);
    /* the old ETag no longer matches */
    r = call_as(NULL, "PUT", "/t/c", "5", hdr, NULL);
    EXPECT(r, 409);
    resp_free(&r);
    r = call_as(NULL, "PUT", "/t/absent", "5", "If-Match: \"1\"", NULL);
    EXPECT(r, 409);
    resp_free(&r);
    r = call("GET", "/t/absent", NULL);
    EXPECT(r, 404);
    resp_free(&r);
    r = call_as(NULL, "PUT", "/t/c", "5", "If-Match: garbage", NULL);
    EXPECT_ERR(r, 400, "bad_request");
    resp_free(&r);
    /* conditional GET */
    snprintf(hdr, sizeof hdr, "If-None-Match: %s", etag2);
    r = call_as(NULL, "GET", "/t/c", NULL, hdr, NULL);
    EXPECT(r, 304);
    resp_free(&r);
}

Test(keys, patch_increments)
{
    resp r = call("PATCH", "/t/n", "+5");
    EXPECT(r, 201); /* it created the key */
    BODY_IS(r, "5");
    resp_free(&r);
    r = call("PATCH", "/t/n", "-7");
    BODY_IS(r, "-2");
    resp_free(&r);
    r = call("PATCH", "/t/n", "{\"op\":\"incr\",\"by\":10}");
    BODY_IS(r, "8");
    resp_free(&r);
    r = call("PATCH", "/t/n", "{\"op\":\"incr\"}");
    BODY_IS(r, "9");
    resp_free(&r);
    r = call("GET", "/t/n", NULL);
    BODY_IS(r, "9");
    char ct[64];
    cr_assert(strncmp(resp_header(&r, "Content-Type", ct, sizeof ct), "text/plain", 10) == 0);
    resp_free(&r);
    r = call("PATCH", "/t/fl", "+1.5");
    EXPECT(r, 201);
    cr_assert_float_eq(strtod(r.body, NULL), 1.5, 1e-9);
    resp_free(&r);
    r = call("PATCH", "/t/fl", "+1");
    cr_assert_float_eq(strtod(r.body, NULL), 2.5, 1e-9);
    resp_free(&r);
    r = call("PUT", "/t/big", "9223372036854775807");
    resp_free(&r);
    r = call("PATCH", "/t/big", "+1");
    EXPECT(r, 409);
    resp_free(&r);
    r = call("GET", "/t/big", NULL);
    BODY_IS(r, "9223372036854775807");
    resp_free(&r);
}

Test(keys, patch_type_and_body_errors)
{
    resp r = call("PUT", "/t/txt", "hello");
    resp_free(&r);
    r = call("PATCH", "/t/txt", "+1");
    EXPECT_ERR(r, 415, "wrong_type");
    resp_free(&r);
    r = call("GET", "/t/txt", NULL);
    BODY_IS(r, "hello");
    resp_free(&r);
    const char *bad[] = {"+",
                         "+abc",
                         "5",
                         "{\"op\":\"nope\"}",
                         "{\"op\":\"incr\",\"by\":\"x\"}",
                         "{\"op\":\"append\"}",
                         "[1]",
                         "{broken"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = call("PATCH", "/t/txt", bad[i]);
        EXPECT_ERR(r, 400, "bad_request");
        resp_free(&r);
    }
    r = call("PUT", "/t/num", "5");
    resp_free(&r);
    r = call("PATCH", "/t/num", "{\"op\":\"append\",\"value\":\"x\"}");
    EXPECT_ERR(r, 415, "wrong_type");
    resp_free(&r);
}

Test(keys, patch_append_setnx_getset)
{
    resp r = call("PATCH", "/t/log", "{\"op\":\"append\",\"value\":\"ab\"}");
    EXPECT(r, 201); /* it created the key */
    BODY_IS(r, "ab");
    resp_free(&r);
    r = call("PATCH", "/t/log", "{\"op\":\"append\",\"value\":\"cd\"}");
    BODY_IS(r, "abcd");
    resp_free(&r);
    r = call("PATCH", "/t/once", "{\"op\":\"setnx\",\"value\":\"first\"}");
    EXPECT(r, 201);
    BODY_IS(r, "first");
    resp_free(&r);
    r = call("PATCH", "/t/once", "{\"op\":\"setnx\",\"value\":\"second\"}");
    EXPECT_ERR(r, 409, "exists");
    resp_free(&r);
    r = call("GET", "/t/once", NULL);
    BODY_IS(r, "first");
    resp_free(&r);
    char h[64];
    r = call("PATCH", "/t/gs", "{\"op\":\"getset\",\"value\":\"new\"}");
    EXPECT(r, 200);
    cr_assert_eq(r.len, 0);
    cr_assert_str_eq(resp_header(&r, "X-Previous", h, sizeof h), "absent");
    resp_free(&r);
    r = call("PATCH", "/t/gs", "{\"op\":\"getset\",\"value\":{\"j\":1}}");
    EXPECT(r, 200);
    BODY_IS(r, "new");
    cr_assert_str_eq(resp_header(&r, "Content-Type", h, sizeof h), "application/octet-stream");
    cr_assert(resp_header(&r, "X-Previous", h, sizeof h) == NULL);
    resp_free(&r);
    r = call("GET", "/t/gs", NULL);
    BODY_IS(r, "{\"j\":1}");
    cr_assert_str_eq(resp_header(&r, "Content-Type", h, sizeof h), "application/json");
    resp_free(&r);
}

Test(keys, percent_encoded_keys)
{
    resp r = call("PUT", "/t/scripts%2Fx", "not a script");
    EXPECT(r, 201);
    resp_free(&r);
    r = call("GET", "/t/scripts%2Fx", NULL);
    EXPECT(r, 200);
    BODY_IS(r, "not a script");
    resp_free(&r);
    r = call("PUT", "/t/tokens%2F", "v");
    EXPECT(r, 201);
    resp_free(&r);
    r = call("PUT", "/t/a%20b%00c", "sp");
    EXPECT(r, 201);
    resp_free(&r);
    r = call("GET", "/t/?format=json", NULL);
    json_t *j = resp_json(&r);
    cr_assert(json_is_array(j));
    bool found = false;
    for (size_t i = 0; i < json_array_size(j); i++) {
        json_t *e = json_array_get(j, i);
        if (json_is_string(e) && json_string_length(e) == 5 &&
            memcmp(json_string_value(e), "a b\0c", 5) == 0)
            found = true;
    }
    cr_assert(found, "key with space and NUL not listed: %s", r.body);
    json_decref(j);
    resp_free(&r);
    r = call("GET", "/t/bad%zz", NULL);
    EXPECT_ERR(r, 400, "bad_request");
    resp_free(&r);
    /* a raw slash stays part of the key */
    r = call("PUT", "/t/users/1", "u1");
    EXPECT(r, 201);
    resp_free(&r);
    r = call("GET", "/t/users%2F1", NULL);
    BODY_IS(r, "u1");
    resp_free(&r);
}

Test(keys, limits_414_413_411)
{
    char path[4000];
    int n = snprintf(path, sizeof path, "/t/");
    for (int i = 0; i < 1025; i++)
        path[n++] = 'k';
    path[n] = '\0';
    resp r = call("PUT", path, "v");
    EXPECT_ERR(r, 414, "key_too_long");
    resp_free(&r);
    path[n - 1] = '\0'; /* 1024 bytes: fine */
    r = call("PUT", path, "v");
    EXPECT(r, 201);
    resp_free(&r);
    /* 1025 bytes after decoding */
    n = snprintf(path, sizeof path, "/t/");
    for (int i = 0; i < 1025; i++)
        n += snprintf(path + n, sizeof path - (size_t)n, "%%41");
    r = call("GET", path, NULL);
    EXPECT(r, 414);
    resp_free(&r);
}

Test(keys, value_size_limit_and_length_required)
{
    kvd_cleanup(&K);
    const char *extra[] = {"--max-value", "1K", NULL};
    cr_assert(kvd_start(&K, NULL, extra));
    cr_assert(make_bucket(&K, "{\"name\":\"t\"}", B, sizeof B, AK, sizeof AK));
    char big[1100];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    resp r = call("PUT", "/t/big", big);
    EXPECT_ERR(r, 413, "too_large");
    resp_free(&r);
    r = call("GET", "/t/big", NULL);
    EXPECT(r, 404);
    resp_free(&r);
    big[1024] = '\0';
    r = call("PUT", "/t/big", big);
    EXPECT(r, 201);
    resp_free(&r);
    /* no Content-Length and no chunked body */
    r = call("PUT", "/t/nolen", NULL);
    EXPECT_ERR(r, 411, "length_required");
    resp_free(&r);
    /* a chunked body over the limit */
    big[1024] = 'x';
    r = call_as(NULL, "PUT", "/t/chunked", big, "Transfer-Encoding: chunked", NULL);
    EXPECT(r, 413);
    resp_free(&r);
}

Test(keys, methods_and_unknown_routes)
{
    resp r = call("OPTIONS", "/t/k", NULL);
    EXPECT_ERR(r, 405, "method_not_allowed");
    char allow[128];
    cr_assert(resp_header(&r, "Allow", allow, sizeof allow) != NULL);
    resp_free(&r);
    r = call("PUT", "/", "x");
    EXPECT_ERR(r, 405, "method_not_allowed");
    cr_assert(resp_header(&r, "Allow", allow, sizeof allow) != NULL);
    cr_assert_str_eq(allow, "GET, HEAD, POST");
    resp_free(&r);
    r = call("GET", "/no.such/k", NULL);
    EXPECT_ERR(r, 404, "no_such_bucket");
    resp_free(&r);
    r = call("GET", "/nobucket/k", NULL);
    EXPECT_ERR(r, 404, "no_such_bucket");
    resp_free(&r);
    /* the scripts routes belong to the scripts module */
    r = call("GET", "/t/scripts/", NULL);
    cr_assert_neq(r.status, 404, "/t/scripts/ was not routed to the scripts module");
    json_t *j = r.status >= 400 ? resp_json(&r) : NULL;
    cr_assert(r.status < 400 || j != NULL, "scripts error is not JSON: %s", r.body);
    json_decref(j);
    resp_free(&r);
}

Test(keys, content_type_given_at_set_time_is_kept)
{
    char ct[128];
    resp r = call_as(NULL, "PUT", "/t/img", "\x89PNG...", "Content-Type: image/png", NULL);
    EXPECT(r, 201);
    resp_free(&r);
    r = call("GET", "/t/img", NULL);
    EXPECT(r, 200);
    cr_assert_str_eq(resp_header(&r, "Content-Type", ct, sizeof ct), "image/png");
    resp_free(&r);
    r = call("HEAD", "/t/img", NULL);
    cr_assert_str_eq(resp_header(&r, "Content-Type", ct, sizeof ct), "image/png");
    resp_free(&r);
    r = call_as(NULL, "PUT", "/t/page", "<p>hi</p>", "Content-Type: text/html; charset=utf-8",
                NULL);
    resp_free(&r);
    r = call("GET", "/t/page", NULL);
    cr_assert_str_eq(resp_header(&r, "Content-Type", ct, sizeof ct), "text/html; charset=utf-8");
    resp_free(&r);
    /* a later write without one makes it stale */
    r = call("PUT", "/t/img", "plain bytes");
    resp_free(&r);
    r = call("GET", "/t/img", NULL);
    cr_assert_str_eq(resp_header(&r, "Content-Type", ct, sizeof ct), "application/octet-stream");
    resp_free(&r);
    r = call_as(NULL, "PUT", "/t/img", "png again", "Content-Type: image/png", NULL);
    resp_free(&r);
    r = call("POST", "/t/", "{\"ops\":[{\"set\":\"img\",\"value\":\"batch\"}]}");
    resp_free(&r);
    r = call("GET", "/t/img", NULL);
    BODY_IS(r, "batch");
    cr_assert_str_eq(resp_header(&r, "Content-Type", ct, sizeof ct), "application/octet-stream");
    resp_free(&r);
    /* delete, then a new value: no old type */
    r = call("DELETE", "/t/page", NULL);
    EXPECT(r, 204);
    resp_free(&r);
    r = call("PUT", "/t/page", "new");
    resp_free(&r);
    r = call("GET", "/t/page", NULL);
    cr_assert_str_eq(resp_header(&r, "Content-Type", ct, sizeof ct), "application/octet-stream");
    resp_free(&r);
    /* numbers and JSON keep their types' Content-Types */
    r = call_as(NULL, "PUT", "/t/num", "5", "Content-Type: text/plain", NULL);
    resp_free(&r);
    r = call("GET", "/t/num", NULL);
    cr_assert(strncmp(resp_header(&r, "Content-Type", ct, sizeof ct), "text/plain", 10) == 0);
    resp_free(&r);
    /* recorded types are not counted as keys */
    r = call_as("", "GET", "/metrics?format=json", NULL, NULL, NULL);
    json_t *j = resp_json(&r);
    cr_assert_eq(json_integer_value(json_object_get(j, "keys")), 3, "%s", r.body);
    json_decref(j);
    resp_free(&r);
}
