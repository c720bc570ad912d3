/*
 * test_kvd_many.c — listing (GET /:bucket/) and atomic batches
 * (POST /:bucket/).
 */
#include <stdlib.h>

#include "kvdtest.h"

TestSuite(many, .init = kvd_setup, .fini = kvd_teardown, .timeout = 600);

static void put_keys(const char *const *keys)
{
    for (size_t i = 0; keys[i] != NULL; i++) {
        char path[256], val[64];
        snprintf(path, sizeof path, "/t/%s", keys[i]);
        snprintf(val, sizeof val, "v-%s", keys[i]);
        resp r = call("PUT", path, val);
        cr_assert(r.status == 201 || r.status == 200);
        resp_free(&r);
    }
}

static const char *const some_keys[] = {"b", "a", "user:2", "user:1", "user:10", "c", NULL};

Test(many, list_text_in_byte_order)
{
    put_keys(some_keys);
    resp r = call("GET", "/t/", NULL);
    EXPECT(r, 200);
    BODY_IS(r, "a\nb\nc\nuser:1\nuser:10\nuser:2\n");
    resp_free(&r);
    r = call("GET", "/t/?prefix=user%3A", NULL);
    BODY_IS(r, "user:1\nuser:10\nuser:2\n");
    resp_free(&r);
    r = call("GET", "/t/?start=b&end=user%3A10", NULL);
    BODY_IS(r, "b\nc\nuser:1\n");
    resp_free(&r);
    r = call("GET", "/t/?limit=2&reverse=true", NULL);
    BODY_IS(r, "user:2\nuser:10\n");
    char more[16];
    cr_assert_str_eq(resp_header(&r, "X-More", more, sizeof more), "true");
    resp_free(&r);
    r = call("GET", "/t/?values=true&prefix=a", NULL);
    BODY_IS(r, "a=v-a\n");
    resp_free(&r);
    r = call("GET", "/t/?limit=0", NULL);
    EXPECT_ERR(r, 400, "bad_request");
    resp_free(&r);
    r = call("GET", "/t/?format=xml", NULL);
    EXPECT_ERR(r, 400, "bad_request");
    resp_free(&r);
}

Test(many, list_json_forms)
{
    put_keys(some_keys);
    resp r = call("GET", "/t/?format=json&prefix=user", NULL);
    EXPECT(r, 200);
    json_t *j = resp_json(&r);
    cr_assert(json_is_array(j) && json_array_size(j) == 3, "%s", r.body);
    cr_assert_str_eq(json_string_value(json_array_get(j, 0)), "user:1");
    json_decref(j);
    resp_free(&r);
    r = call("GET", "/t/?format=json&values=true&limit=1", NULL);
    j = resp_json(&r);
    cr_assert(json_is_array(j) && json_array_size(j) == 1, "%s", r.body);
    json_t *pair = json_array_get(j, 0);
    cr_assert_str_eq(json_string_value(json_array_get(pair, 0)), "a");
    cr_assert_str_eq(json_string_value(json_array_get(pair, 1)), "v-a");
    json_decref(j);
    resp_free(&r);
    r = call("GET", "/t/?format=json&prefix=zzz", NULL);
    BODY_IS(r, "[]\n");
    resp_free(&r);
}

Test(many, batch_applies_everything)
{
    resp r = call("PUT", "/t/k2", "gone soon");
    resp_free(&r);
    r = call("PUT", "/t/k3", "before");
    resp_free(&r);
    r = call("POST", "/t/",
             "{\"ops\": [{\"set\": \"k1\", \"value\": \"v1\", \"ttl\": 60}, {\"delete\": \"k2\"},"
             " {\"incr\": \"c\", \"by\": 1}, {\"get\": \"k3\"}, {\"set\": \"k3\", \"value\": "
             "\"after\"}, {\"get\": \"k1\"}, {\"delete\": \"never\"}]}");
    EXPECT(r, 200);
    json_t *j = resp_json(&r);
    json_t *res = json_object_get(j, "results");
    cr_assert(json_is_array(res) && json_array_size(res) == 7, "%s", r.body);
    const char *etag = json_string_value(json_object_get(json_array_get(res, 0), "etag"));
    cr_assert(etag != NULL && etag[0] == '"', "%s", r.body);
    cr_assert(json_is_true(json_object_get(json_array_get(res, 1), "deleted")));
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(res, 2), "value")), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(res, 3), "value")), "before");
    /* gets see the state before the batch's writes */
    cr_assert(json_is_null(json_object_get(json_array_get(res, 5), "value")), "%s", r.body);
    cr_assert(json_is_false(json_object_get(json_array_get(res, 6), "deleted")));
    json_decref(j);
    resp_free(&r);
    r = call("GET", "/t/k1", NULL);
    BODY_IS(r, "v1");
    char exp[32];
    cr_assert(resp_header(&r, "X-Expires-At", exp, sizeof exp) != NULL);
    resp_free(&r);
    r = call("GET", "/t/k2", NULL);
    EXPECT(r, 404);
    resp_free(&r);
    r = call("GET", "/t/k3", NULL);
    BODY_IS(r, "after");
    resp_free(&r);
}

Test(many, batch_failure_applies_nothing)
{
    resp r = call("PUT", "/t/txt", "text");
    resp_free(&r);
    r = call("POST", "/t/",
             "{\"ops\": [{\"set\": \"x1\", \"value\": \"1\"}, {\"delete\": \"y\"},"
             " {\"incr\": \"txt\"}]}");
    EXPECT_ERR(r, 415, "wrong_type");
    json_t *j = resp_json(&r);
    cr_assert_eq(json_integer_value(json_object_get(j, "op")), 2, "%s", r.body);
    json_decref(j);
    resp_free(&r);
    r = call("GET", "/t/x1", NULL);
    EXPECT(r, 404);
    resp_free(&r);
    r = call("GET", "/t/txt", NULL);
    BODY_IS(r, "text");
    resp_free(&r);
    /* a conflict */
    r = call("POST", "/t/",
             "{\"ops\": [{\"set\": \"x1\", \"value\": \"1\"}, {\"set\": \"txt\", \"value\": \"2\","
             " \"if_absent\": true}]}");
    EXPECT_ERR(r, 409, "exists");
    j = resp_json(&r);
    cr_assert_eq(json_integer_value(json_object_get(j, "op")), 1);
    json_decref(j);
    resp_free(&r);
    r = call("GET", "/t/x1", NULL);
    EXPECT(r, 404);
    resp_free(&r);
    /* malformed op, with its index */
    r = call("POST", "/t/", "{\"ops\": [{\"set\": \"a\", \"value\": \"1\"}, {\"frob\": \"b\"}]}");
    EXPECT_ERR(r, 400, "bad_request");
    j = resp_json(&r);
    cr_assert_eq(json_integer_value(json_object_get(j, "op")), 1);
    json_decref(j);
    resp_free(&r);
    r = call("POST", "/t/", "not json");
    EXPECT_ERR(r, 400, "bad_request");
    resp_free(&r);
    r = call("GET", "/t/a", NULL);
    EXPECT(r, 404);
    resp_free(&r);
}

Test(many, batch_op_limit)
{
    size_t cap = 10001 * 24 + 64, n = 0;
    char *body = malloc(cap);
    n += (size_t)snprintf(body + n, cap - n, "{\"ops\":[");
    for (int i = 0; i < 10001; i++)
        n += (size_t)snprintf(body + n, cap - n, "%s{\"get\":\"k%d\"}", i ? "," : "", i);
    snprintf(body + n, cap - n, "]}");
    resp r = call("POST", "/t/", body);
    EXPECT(r, 413);
    resp_free(&r);
    /* 10,000 is fine */
    char *last = strrchr(body, '{');
    strcpy(last - 1, "]}");
    r = call("POST", "/t/", body);
    EXPECT(r, 200);
    resp_free(&r);
    free(body);
}

Test(many, batch_binary_values)
{
    resp r = call("POST", "/t/", "{\"ops\":[{\"set\":\"bin\",\"value_base64\":\"AP8=\"}]}");
    EXPECT(r, 200);
    resp_free(&r);
    r = call("GET", "/t/bin", NULL);
    cr_assert_eq(r.len, 2);
    cr_assert_eq((unsigned char)r.body[1], 0xff);
    resp_free(&r);
    r = call("POST", "/t/", "{\"ops\":[{\"get\":\"bin\"}]}");
    json_t *j = resp_json(&r);
    json_t *res0 = json_array_get(json_object_get(j, "results"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(res0, "value_base64")), "AP8=", "%s",
                     r.body);
    json_decref(j);
    resp_free(&r);
}
