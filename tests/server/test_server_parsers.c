/*
 * test_server_parsers.c — the pure parts of kvd: access tokens, type
 * detection, numbers, PATCH bodies, percent-decoding and path routing.
 */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <sodium.h>

#include "auth_token.h"
#include "http.h"
#include "routes.h"
#include "valuetype.h"

static unsigned char secret[KVD_SECRET_BYTES];

static void init_sodium(void)
{
    cr_assert(sodium_init() >= 0);
    memset(secret, 7, sizeof secret);
}

TestSuite(token, .init = init_sodium);

static token_claims sample(void)
{
    token_claims c;
    memset(&c, 0, sizeof c);
    c.signing_version = 3;
    c.expires_at = 1900000000;
    c.perms = 1 | 8;
    strcpy(c.bucket, "bucket_1");
    c.bucket_len = 8;
    memcpy(c.prefix, "users:1:", 8);
    c.prefix_len = 8;
    return c;
}

Test(token, round_trip)
{
    token_claims c = sample(), d;
    char text[TOKEN_TEXT_MAX + 1];
    long n = token_encode(&c, secret, text, sizeof text);
    cr_assert(n > 0);
    cr_assert_eq(token_verify(text, (size_t)n, secret, NULL, &d), TOKEN_OK);
    cr_assert_eq(d.signing_version, 3);
    cr_assert_eq(d.expires_at, 1900000000);
    cr_assert_eq(d.perms, 9);
    cr_assert_str_eq(d.bucket, "bucket_1");
    cr_assert_eq(d.prefix_len, 8);
    cr_assert(memcmp(d.prefix, "users:1:", 8) == 0);
    for (size_t i = 0; i < (size_t)n; i++)
        cr_assert(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
                         text[i]) != NULL,
                  "not base64url: %c", text[i]);
}

Test(token, every_flipped_character_is_rejected)
{
    token_claims c = sample(), d;
    char text[TOKEN_TEXT_MAX + 1];
    long n = token_encode(&c, secret, text, sizeof text);
    for (long i = 0; i < n; i++) {
        char saved = text[i];
        text[i] = saved == 'A' ? 'B' : 'A';
        cr_assert_neq(token_verify(text, (size_t)n, secret, NULL, &d), TOKEN_OK, "flip at %ld", i);
        text[i] = saved;
    }
}

Test(token, other_secret_and_garbage_are_rejected)
{
    token_claims c = sample(), d;
    char text[TOKEN_TEXT_MAX + 1];
    unsigned char other[KVD_SECRET_BYTES];
    memset(other, 8, sizeof other);
    long n = token_encode(&c, secret, text, sizeof text);
    cr_assert_eq(token_verify(text, (size_t)n, other, NULL, &d), TOKEN_BAD_MAC);
    cr_assert_eq(token_verify("", 0, secret, NULL, &d), TOKEN_MALFORMED);
    cr_assert_eq(token_verify("!!!!", 4, secret, NULL, &d), TOKEN_MALFORMED);
    cr_assert_neq(token_verify(text, (size_t)n - 3, secret, NULL, &d), TOKEN_OK);
}

Test(token, signing_keys_differ_by_bucket_and_version)
{
    unsigned char a[32], b[32], c[32];
    token_signing_key(secret, "b1", 2, NULL, 1, a);
    token_signing_key(secret, "b1", 2, NULL, 2, b);
    token_signing_key(secret, "b2", 2, NULL, 1, c);
    cr_assert(memcmp(a, b, 32) != 0);
    cr_assert(memcmp(a, c, 32) != 0);
}

Test(token, signing_keys_differ_by_incarnation)
{
    unsigned char inc1[TOKEN_INCARNATION_BYTES], inc2[TOKEN_INCARNATION_BYTES];
    unsigned char a[32], b[32], c[32];
    memset(inc1, 1, sizeof inc1);
    memset(inc2, 2, sizeof inc2);
    token_signing_key(secret, "b1", 2, inc1, 1, a);
    token_signing_key(secret, "b1", 2, inc2, 1, b);
    token_signing_key(secret, "b1", 2, NULL, 1, c);
    cr_assert(memcmp(a, b, 32) != 0);
    cr_assert(memcmp(a, c, 32) != 0);
}

Test(token, a_token_verifies_only_under_its_incarnation)
{
    unsigned char inc1[TOKEN_INCARNATION_BYTES], inc2[TOKEN_INCARNATION_BYTES];
    memset(inc1, 1, sizeof inc1);
    memset(inc2, 2, sizeof inc2);
    token_claims c = sample(), d;
    c.incarnation = inc1;
    char text[TOKEN_TEXT_MAX + 1];
    long n = token_encode(&c, secret, text, sizeof text);
    cr_assert(n > 0);
    cr_assert_eq(token_verify(text, (size_t)n, secret, inc1, &d), TOKEN_OK);
    cr_assert_eq(token_verify(text, (size_t)n, secret, inc2, &d), TOKEN_BAD_MAC);
    cr_assert_eq(token_verify(text, (size_t)n, secret, NULL, &d), TOKEN_BAD_MAC);
}

Test(valuetype, detection)
{
    cr_assert_eq(value_detect("42", 2), RC_TYPE_INT);
    cr_assert_eq(value_detect("-42", 3), RC_TYPE_INT);
    cr_assert_eq(value_detect("9223372036854775807", 19), RC_TYPE_INT);
    cr_assert_eq(value_detect("9223372036854775808", 19), RC_TYPE_FLOAT);
    cr_assert_eq(value_detect("1.5", 3), RC_TYPE_FLOAT);
    cr_assert_eq(value_detect("-.5e-3", 6), RC_TYPE_FLOAT);
    cr_assert_eq(value_detect("1e999", 5), RC_TYPE_RAW);
    cr_assert_eq(value_detect("inf", 3), RC_TYPE_RAW);
    cr_assert_eq(value_detect(" 1", 2), RC_TYPE_RAW);
    cr_assert_eq(value_detect("1 ", 2), RC_TYPE_RAW);
    cr_assert_eq(value_detect("-", 1), RC_TYPE_RAW);
    cr_assert_eq(value_detect("", 0), RC_TYPE_RAW);
    cr_assert_eq(value_detect("{\"a\":1}", 7), RC_TYPE_JSON);
    cr_assert_eq(value_detect(" [1]", 4), RC_TYPE_JSON);
    cr_assert_eq(value_detect("\"s\"", 3), RC_TYPE_RAW);
    cr_assert_eq(value_detect("{oops", 5), RC_TYPE_RAW);
    rc_type t;
    cr_assert_eq(value_type_for_put("application/json; charset=utf-8", "true", 4, &t), 0);
    cr_assert_eq(t, RC_TYPE_JSON);
    cr_assert_eq(value_type_for_put("application/json", "{x", 2, &t), -1);
    cr_assert_eq(value_type_for_put("image/png", "12", 2, &t), 0);
    cr_assert_eq(t, RC_TYPE_RAW);
}

Test(valuetype, patch_bodies)
{
    patch_op p;
    const char *why;
    cr_assert_eq(patch_parse("+5", 2, &p, &why), 0);
    cr_assert(p.kind == PATCH_INCR && p.by.type == RC_TYPE_INT && p.by.i == 5);
    cr_assert_eq(patch_parse("-2.5\n", 5, &p, &why), 0);
    cr_assert(p.by.type == RC_TYPE_FLOAT && p.by.f == -2.5);
    cr_assert_eq(patch_parse("-9223372036854775808", 20, &p, &why), 0);
    cr_assert_eq(p.by.i, INT64_MIN);
    cr_assert_eq(patch_parse("+-1", 3, &p, &why), -1);
    cr_assert_eq(patch_parse("+", 1, &p, &why), -1);
    cr_assert_eq(patch_parse("", 0, &p, &why), -1);
    const char *j = "{\"op\":\"incr\",\"by\":0.25}";
    cr_assert_eq(patch_parse(j, strlen(j), &p, &why), 0);
    cr_assert(p.by.type == RC_TYPE_FLOAT && p.by.f == 0.25);
    j = "{\"op\":\"getset\",\"value\":12}";
    cr_assert_eq(patch_parse(j, strlen(j), &p, &why), 0);
    cr_assert(p.kind == PATCH_GETSET && p.vtype == RC_TYPE_INT && p.vlen == 2);
    patch_free(&p);
    j = "{\"op\":\"setnx\",\"value\":{\"a\":[1]}}";
    cr_assert_eq(patch_parse(j, strlen(j), &p, &why), 0);
    cr_assert(p.vtype == RC_TYPE_JSON && strcmp(p.buf, "{\"a\":[1]}") == 0);
    patch_free(&p);
    j = "{\"op\":\"append\",\"value\":\"42\"}";
    cr_assert_eq(patch_parse(j, strlen(j), &p, &why), 0);
    cr_assert(p.kind == PATCH_APPEND && p.vtype == RC_TYPE_RAW);
    patch_free(&p);
    j = "{\"op\":\"explode\"}";
    cr_assert_eq(patch_parse(j, strlen(j), &p, &why), -1);
    j = "{\"op\":\"setnx\"}";
    cr_assert_eq(patch_parse(j, strlen(j), &p, &why), -1);
}

Test(router, percent_decoding)
{
    char out[64];
    size_t n = 0;
    cr_assert_eq(pct_decode("a%2Fb%00c+d", 11, out, &n), 0);
    cr_assert_eq(n, 7);
    cr_assert(memcmp(out, "a/b\0c+d", 7) == 0);
    cr_assert_eq(pct_decode("%2", 2, out, &n), -1);
    cr_assert_eq(pct_decode("%zz", 3, out, &n), -1);
    cr_assert_eq(pct_decode("abc%", 4, out, &n), -1);
    cr_assert_eq(pct_decode("%e2%82%AC", 9, out, &n), 0);
    cr_assert_eq(n, 3);
}

Test(router, raw_path_matching)
{
    route_match m;
    router_match("/", &m);
    cr_assert_eq(m.id, ROUTE_ROOT);
    router_match("/metrics", &m);
    cr_assert_eq(m.id, ROUTE_METRICS);
    router_match("/b1", &m);
    cr_assert_eq(m.id, ROUTE_BUCKET);
    cr_assert_eq(m.bucket_len, 2);
    router_match("/b1/", &m);
    cr_assert_eq(m.id, ROUTE_LIST);
    router_match("/b1/key", &m);
    cr_assert_eq(m.id, ROUTE_KEY);
    cr_assert_eq(m.rest_len, 3);
    router_match("/b1/scripts%2Fx", &m);
    cr_assert_eq(m.id, ROUTE_KEY);
    router_match("/b1/scripts/x/run", &m);
    cr_assert_eq(m.id, ROUTE_SCRIPTS);
    cr_assert_str_eq(m.rest + 8, "x/run");
    router_match("/b1/scripts/", &m);
    cr_assert_eq(m.id, ROUTE_SCRIPTS);
    router_match("/b1/tokens/", &m);
    cr_assert_eq(m.id, ROUTE_TOKENS);
    router_match("/b1/tokens%2F", &m);
    cr_assert_eq(m.id, ROUTE_KEY);
    router_match("/b1/tokens", &m);
    cr_assert_eq(m.id, ROUTE_KEY);
    router_match("/b1/a/b", &m);
    cr_assert_eq(m.id, ROUTE_KEY);
    cr_assert_eq(m.rest_len, 3);
    router_match("nope", &m);
    cr_assert_eq(m.id, ROUTE_NONE);
}

Test(policy, names_and_permissions)
{
    cr_assert(rcu_bucket_name_valid("a-Z_9", 5));
    cr_assert(!rcu_bucket_name_valid("a.b", 3));
    cr_assert(!rcu_bucket_name_valid("", 0));
    char long_name[65];
    memset(long_name, 'a', 65);
    cr_assert(rcu_bucket_name_valid(long_name, 64));
    cr_assert(!rcu_bucket_name_valid(long_name, 65));
    cr_assert(rcu_bucket_name_reserved("metrics", 7));
    cr_assert_eq(perm_from_name("enumerate"), PERM_ENUMERATE);
    cr_assert_eq(perm_from_name("root"), 0);
    cr_assert_eq(role_perms(ROLE_ADMIN), PERM_ALL);
}

Test(policy, storage_round_trip_keeps_hashes)
{
    cr_assert(sodium_init() >= 0);
    policy p, q;
    char key[BUCKET_KEY_TEXT_MAX + 1];
    memset(&p, 0, sizeof p);
    strcpy(p.name, "pb");
    p.default_ttl_s = 60;
    p.public_perms = PERM_READ;
    p.signing_version = 4;
    policy_new_key(&p, ROLE_WRITE, key);
    json_t *j = policy_to_storage_json(&p);
    char *text = json_dumps(j, 0);
    cr_assert(strstr(text, key) == NULL, "the key itself is stored");
    cr_assert_eq(policy_from_storage_json(j, &q), 0);
    cr_assert_eq(q.signing_version, 4);
    cr_assert_eq(q.public_perms, PERM_READ);
    cr_assert_eq(policy_match_key(&q, key, strlen(key)), ROLE_WRITE);
    cr_assert_eq(policy_match_key(&q, "x", 1), -1);
    free(text);
    json_decref(j);
}

/* Random and mutated inputs: the parsers never crash, never read past their
 * input (ASan), and a mutated token never verifies. */
Test(robustness, random_inputs)
{
    cr_assert(sodium_init() >= 0);
    unsigned char buf[2048];
    char text[TOKEN_TEXT_MAX + 1], out[4096];
    token_claims c = sample(), d;
    memset(secret, 7, sizeof secret);
    long tn = token_encode(&c, secret, text, sizeof text);
    unsigned seed = 42;
    for (int round = 0; round < 20000; round++) {
        size_t len = (size_t)(rand_r(&seed) % sizeof buf);
        for (size_t i = 0; i < len; i++)
            buf[i] = (unsigned char)rand_r(&seed);
        /* heap copies of the exact length, so ASan sees any over-read */
        char *in = malloc(len ? len : 1);
        memcpy(in, buf, len);
        token_verify(in, len, secret, NULL, &d);
        patch_op p;
        const char *why;
        if (patch_parse(in, len, &p, &why) == 0)
            patch_free(&p);
        value_detect(in, len);
        size_t n = 0;
        pct_decode(in, len, out, &n);
        free(in);
        /* a token with one random byte changed never verifies */
        char mutated[TOKEN_TEXT_MAX + 1];
        memcpy(mutated, text, (size_t)tn + 1);
        size_t at = (size_t)(rand_r(&seed) % (unsigned)tn);
        char ch = (char)(rand_r(&seed) % 256);
        if (ch != mutated[at]) {
            mutated[at] = ch;
            cr_assert_neq(token_verify(mutated, (size_t)tn, secret, NULL, &d), TOKEN_OK);
        }
    }
}
