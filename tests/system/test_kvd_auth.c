/*
 * test_kvd_auth.c — buckets, policies, credentials and access tokens,
 * including the ways a token must not escape its scope.
 */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "kvdtest.h"

TestSuite(auth, .init = kvd_setup, .fini = kvd_teardown, .timeout = 600);

Test(auth, bucket_create_random_named_duplicate)
{
    char name[96], key[96], name2[96], key2[96];
    cr_assert(make_bucket(&K, NULL, name, sizeof name, key, sizeof key));
    cr_assert(strlen(name) >= 16, "random name too short: %s", name);
    cr_assert(make_bucket(&K, "{}", name2, sizeof name2, key2, sizeof key2));
    cr_assert_str_neq(name, name2);
    cr_assert_str_neq(key, key2);
    resp r = http(&K, "POST", "/", "{\"name\":\"t\"}", 12, NULL);
    EXPECT_ERR(r, 409, "exists");
    resp_free(&r);
    const char *bad[] = {"{\"name\":\"a b\"}",
                         "{\"name\":\"\"}",
                         "{\"name\":\"metrics\"}",
                         "{\"name\":\"x\",\"public\":[\"fly\"]}",
                         "{\"name\":\"x\",\"default_ttl\":-1}",
                         "[1]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = http(&K, "POST", "/", bad[i], strlen(bad[i]), NULL);
        EXPECT(r, 400);
        resp_free(&r);
    }
    char long_name[100];
    snprintf(long_name, sizeof long_name, "{\"name\":\"%065d\"}", 0);
    r = http(&K, "POST", "/", long_name, strlen(long_name), NULL);
    EXPECT(r, 400);
    resp_free(&r);
}

static void expect_unknown_field(const char *method, const char *path, const char *body,
                                 const char *field)
{
    resp r = call(method, path, body);
    EXPECT_ERR(r, 400, "bad_request");
    cr_assert(strstr(r.body, field) != NULL, "the message does not name %s: %s", field, r.body);
    resp_free(&r);
}

Test(auth, unknown_fields_are_refused_by_name)
{
    /* {"bucket": ...} is not {"name": ...}: no random bucket appears */
    expect_unknown_field("POST", "/", "{\"bucket\":\"demo\"}", "bucket");
    expect_unknown_field("POST", "/", "{\"name\":\"demo\",\"publik\":[\"read\"]}", "publik");
    resp r = call_as("", "HEAD", "/demo", NULL, NULL, NULL);
    EXPECT(r, 404);
    resp_free(&r);
    /* a misspelt PATCH changes nothing */
    expect_unknown_field("PATCH", "/t", "{\"public\":[\"read\"],\"new_key\":[\"read\"]}",
                         "new_key");
    r = call("GET", "/t", NULL);
    EXPECT(r, 200);
    json_t *j = resp_json(&r);
    cr_assert_eq(json_array_size(json_object_get(j, "public")), 0, "%s", r.body);
    json_decref(j);
    resp_free(&r);
    /* a misspelt prefix must not mint a token for the whole bucket */
    expect_unknown_field("POST", "/t/tokens/", "{\"prefx\":\"u:\",\"permissions\":[\"read\"]}",
                         "prefx");
    /* the known fields still work */
    r = call("POST", "/", "{\"name\":\"demo\",\"default_ttl\":5,\"public\":[\"read\"]}");
    EXPECT(r, 201);
    resp_free(&r);
}

Test(auth, bucket_head_get_patch_delete)
{
    resp r = call_as("", "HEAD", "/t", NULL, NULL, NULL);
    EXPECT(r, 200);
    resp_free(&r);
    r = call_as("", "HEAD", "/nope", NULL, NULL, NULL);
    EXPECT(r, 404);
    resp_free(&r);
    r = call_as("", "GET", "/t", NULL, NULL, NULL);
    EXPECT_ERR(r, 401, "unauthorized");
    resp_free(&r);
    r = call("GET", "/t", NULL);
    EXPECT(r, 200);
    cr_assert(strstr(r.body, AK) == NULL, "the policy shows the admin key");
    cr_assert(strstr(r.body, "hash") == NULL, "the policy shows key hashes: %s", r.body);
    json_t *j = resp_json(&r);
    cr_assert_str_eq(json_string_value(json_object_get(j, "bucket")), "t");
    json_decref(j);
    resp_free(&r);
    r = call("PATCH", "/t",
             "{\"default_ttl\": 30, \"public\": [\"read\"], \"new_keys\": [\"read\"]}");
    EXPECT(r, 200);
    j = resp_json(&r);
    const char *rk = json_string_value(json_object_get(json_object_get(j, "new_keys"), "read"));
    cr_assert(rk != NULL, "%s", r.body);
    char readkey[96];
    snprintf(readkey, sizeof readkey, "%s", rk);
    cr_assert_eq(json_integer_value(json_object_get(j, "default_ttl")), 30);
    json_decref(j);
    resp_free(&r);
    r = call("PUT", "/t/k", "v");
    resp_free(&r);
    /* public read now */
    r = call_as("", "GET", "/t/k", NULL, NULL, NULL);
    EXPECT(r, 200);
    resp_free(&r);
    r = call_as("", "PUT", "/t/k", "w", NULL, NULL);
    EXPECT_ERR(r, 401, "unauthorized");
    resp_free(&r);
    /* the read key reads, cannot write or administer */
    r = call_as(readkey, "GET", "/t/k", NULL, NULL, NULL);
    EXPECT(r, 200);
    resp_free(&r);
    r = call_as(readkey, "PUT", "/t/k", "w", NULL, NULL);
    EXPECT_ERR(r, 403, "forbidden");
    resp_free(&r);
    r = call_as(readkey, "DELETE", "/t", NULL, NULL, NULL);
    EXPECT_ERR(r, 403, "forbidden");
    resp_free(&r);
    r = call("PATCH", "/t", "{\"public\": \"read\"}");
    EXPECT(r, 400);
    resp_free(&r);
    r = call("DELETE", "/t", NULL);
    EXPECT(r, 204);
    resp_free(&r);
    r = call("GET", "/t/k", NULL);
    EXPECT_ERR(r, 404, "no_such_bucket");
    resp_free(&r);
    /* the name is free again, with no old keys */
    char name[96], key[96];
    cr_assert(make_bucket(&K, "{\"name\":\"t\"}", name, sizeof name, key, sizeof key));
    r = call_as(key, "GET", "/t/k", NULL, NULL, NULL);
    EXPECT(r, 404);
    resp_free(&r);
    r = call_as(AK, "GET", "/t/k", NULL, NULL, NULL);
    EXPECT(r, 401);
    resp_free(&r);
}

Test(auth, credentials_bearer_basic_query)
{
    resp r = call("PUT", "/t/k", "v");
    resp_free(&r);
    char basic[256], b64[200], userpass[120], path[256];
    snprintf(userpass, sizeof userpass, "%s:", AK);
    sodium_bin2base64(b64, sizeof b64, (const unsigned char *)userpass, strlen(userpass),
                      sodium_base64_VARIANT_ORIGINAL);
    snprintf(basic, sizeof basic, "Authorization: Basic %s", b64);
    r = call_as("", "GET", "/t/k", NULL, basic, NULL);
    EXPECT(r, 200);
    resp_free(&r);
    snprintf(path, sizeof path, "/t/k?access_token=%s", AK);
    r = call_as("", "GET", path, NULL, NULL, NULL);
    EXPECT(r, 200);
    resp_free(&r);
    r = call_as("wrongwrongwrongwrongwrongwrongwrongwrongwro", "GET", "/t/k", NULL, NULL, NULL);
    EXPECT_ERR(r, 401, "invalid_credentials");
    resp_free(&r);
    r = call_as("", "GET", "/t/k", NULL, NULL, NULL);
    EXPECT_ERR(r, 401, "unauthorized");
    resp_free(&r);
}

static void token(const char *body, char *tok, size_t cap)
{
    cr_assert(make_token(&K, "t", AK, body, tok, cap), "token %s refused", body);
}

Test(auth, token_scope_prefix_and_permissions)
{
    char tok[2048], path[2300];
    resp r = call("PUT", "/t/users:1:name", "ann");
    resp_free(&r);
    r = call("PUT", "/t/users:2:name", "bob");
    resp_free(&r);
    token("{\"prefix\": \"users:1:\", \"permissions\": [\"read\", \"enumerate\"], \"ttl\": 600}",
          tok, sizeof tok);
    r = call_as(tok, "GET", "/t/users:1:name", NULL, NULL, NULL);
    EXPECT(r, 200);
    BODY_IS(r, "ann");
    resp_free(&r);
    r = call_as(tok, "GET", "/t/users:2:name", NULL, NULL, NULL);
    EXPECT_ERR(r, 403, "forbidden");
    resp_free(&r);
    r = call_as(tok, "PUT", "/t/users:1:name", "eve", NULL, NULL);
    EXPECT_ERR(r, 403, "forbidden");
    resp_free(&r);
    r = call_as(tok, "GET", "/t", NULL, NULL, NULL);
    EXPECT(r, 403);
    resp_free(&r);
    /* listings are confined to the prefix */
    r = call_as(tok, "GET", "/t/", NULL, NULL, NULL);
    EXPECT(r, 200);
    BODY_IS(r, "users:1:name\n");
    resp_free(&r);
    r = call_as(tok, "GET", "/t/?prefix=users%3A2", NULL, NULL, NULL);
    BODY_IS(r, "");
    resp_free(&r);
    r = call_as(tok, "GET", "/t/?values=true", NULL, NULL, NULL);
    BODY_IS(r, "users:1:name=ann\n");
    resp_free(&r);
    /* batches too */
    r = call_as(tok, "POST", "/t/",
                "{\"ops\":[{\"get\":\"users:1:name\"},{\"get\":\"users:2:name\"}]}", NULL, NULL);
    EXPECT_ERR(r, 403, "forbidden");
    json_t *j = resp_json(&r);
    cr_assert_eq(json_integer_value(json_object_get(j, "op")), 1);
    json_decref(j);
    resp_free(&r);
    /* a token cannot mint tokens */
    r = call_as(tok, "POST", "/t/tokens/", "{\"permissions\":[\"read\"]}", NULL, NULL);
    EXPECT(r, 403);
    resp_free(&r);
    /* as a query parameter */
    snprintf(path, sizeof path, "/t/users:1:name?access_token=%s", tok);
    r = call_as("", "GET", path, NULL, NULL, NULL);
    EXPECT(r, 200);
    resp_free(&r);
    /* a write token can write inside its prefix only */
    token("{\"prefix\": \"users:1:\", \"permissions\": [\"write\"]}", tok, sizeof tok);
    r = call_as(tok, "PUT", "/t/users:1:x", "ok", NULL, NULL);
    EXPECT(r, 201);
    resp_free(&r);
    r = call_as(tok, "PUT", "/t/users:2:x", "no", NULL, NULL);
    EXPECT(r, 403);
    resp_free(&r);
    r = call_as(tok, "PATCH", "/t/users:1:n", "+1", NULL, NULL);
    EXPECT(r, 201);
    resp_free(&r);
    r = call_as(tok, "DELETE", "/t/users:1:x", NULL, NULL, NULL);
    EXPECT(r, 403);
    resp_free(&r);
}

Test(auth, token_rejections)
{
    char tok[2048];
    resp r = call("PUT", "/t/k", "v");
    resp_free(&r);
    const char *bad[] = {"{\"permissions\": []}", "{\"permissions\": [\"fly\"]}",
                         "{\"permissions\": [\"read\"], \"ttl\": 0}",
                         "{\"prefix\": \"a\", \"permissions\": [\"admin\"]}", "nope"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = call("POST", "/t/tokens/", bad[i]);
        EXPECT(r, 400);
        resp_free(&r);
    }
    /* tampered: flip one character in the middle */
    token("{\"permissions\": [\"read\"]}", tok, sizeof tok);
    size_t n = strlen(tok);
    tok[n / 2] = tok[n / 2] == 'A' ? 'B' : 'A';
    r = call_as(tok, "GET", "/t/k", NULL, NULL, NULL);
    EXPECT_ERR(r, 401, "invalid_credentials");
    resp_free(&r);
    tok[n / 2] = '\0';
    r = call_as(tok, "GET", "/t/k", NULL, NULL, NULL);
    EXPECT(r, 401);
    resp_free(&r);
    /* cross-bucket */
    char name[96], key[96], other[2048];
    cr_assert(make_bucket(&K, "{\"name\":\"u\"}", name, sizeof name, key, sizeof key));
    cr_assert(make_token(&K, "u", key, "{\"permissions\": [\"read\"]}", other, sizeof other));
    r = call_as(other, "GET", "/t/k", NULL, NULL, NULL);
    EXPECT_ERR(r, 401, "invalid_credentials");
    resp_free(&r);
    /* the other bucket's admin key is not ours either */
    r = call_as(key, "GET", "/t/k", NULL, NULL, NULL);
    EXPECT(r, 401);
    resp_free(&r);
}

Test(auth, token_expiry_and_rotation)
{
    char tok[2048], tok2[2048];
    resp r = call("PUT", "/t/k", "v");
    resp_free(&r);
    long long issued = (long long)time(NULL);
    token("{\"permissions\": [\"read\"], \"ttl\": 1}", tok, sizeof tok);
    token("{\"permissions\": [\"read\"], \"ttl\": 600}", tok2, sizeof tok2);
    r = call_as(tok, "GET", "/t/k", NULL, NULL, NULL);
    /* works until its second is over; a slow machine may already be past it */
    cr_assert(r.status == 200 || (r.status == 401 && (long long)time(NULL) >= issued + 1),
              "a fresh 1 s token answered %ld", r.status);
    resp_free(&r);
    long status = 200;
    for (int i = 0; i < 40 && status == 200; i++) {
        usleep(100000);
        r = call_as(tok, "GET", "/t/k", NULL, NULL, NULL);
        status = r.status;
        resp_free(&r);
    }
    cr_assert_eq(status, 401, "a 1 s token still worked after 4 s");
    r = call_as(tok2, "GET", "/t/k", NULL, NULL, NULL);
    EXPECT(r, 200);
    resp_free(&r);
    r = call("PATCH", "/t", "{\"rotate_signing_key\": true}");
    EXPECT(r, 200);
    resp_free(&r);
    r = call_as(tok2, "GET", "/t/k", NULL, NULL, NULL);
    EXPECT_ERR(r, 401, "invalid_credentials");
    resp_free(&r);
    /* new tokens work */
    token("{\"permissions\": [\"read\"]}", tok, sizeof tok);
    r = call_as(tok, "GET", "/t/k", NULL, NULL, NULL);
    EXPECT(r, 200);
    resp_free(&r);
}

Test(auth, new_admin_key_revokes_old)
{
    resp r = call("PATCH", "/t", "{\"new_keys\": [\"admin\"]}");
    EXPECT(r, 200);
    json_t *j = resp_json(&r);
    char newkey[96];
    snprintf(newkey, sizeof newkey, "%s",
             json_string_value(json_object_get(json_object_get(j, "new_keys"), "admin")));
    json_decref(j);
    resp_free(&r);
    r = call("GET", "/t", NULL);
    EXPECT(r, 401);
    resp_free(&r);
    r = call_as(newkey, "GET", "/t", NULL, NULL, NULL);
    EXPECT(r, 200);
    resp_free(&r);
}
