/*
 * test_script_json.c — kv.json_encode / kv.json_decode: round trips, the
 * array/object rule, number forms, UTF-8, and errors that stay errors.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "script_fake_host.h"

static script_engine *eng;
static fake_host host;

static void setup(void)
{
    script_config cfg;
    script_config_default(&cfg);
    cfg.timeout_ms = 600000; /* no wall-clock limit can race a test here */
    cr_assert_eq(script_engine_create(&cfg, &eng), 0);
    fake_init(&host);
}

static void teardown(void)
{
    script_engine_destroy(eng);
    fake_free(&host);
}

TestSuite(script_json, .init = setup, .fini = teardown);

static void expect_body(const char *src, const char *body)
{
    script_result res;
    int rc = fake_run(eng, &host, src, &res);
    cr_assert_eq(rc, SCRIPT_OK, "%s => %s (%s)", src, script_outcome_name(rc), res.message);
    cr_assert_str_eq(res.body, body, "%s => '%s'", src, res.body);
    script_result_free(&res);
}

static void expect_error(const char *src, const char *needle)
{
    script_result res;
    int rc = fake_run(eng, &host, src, &res);
    cr_assert_eq(rc, SCRIPT_ERUNTIME, "%s -> %s", src, script_outcome_name(rc));
    cr_assert(strstr(res.message, needle), "'%s' lacks '%s'", res.message, needle);
    script_result_free(&res);
}

Test(script_json, encodes_values)
{
    expect_body("kv.say(kv.json_encode({b = 1, a = 'x', c = {true, false, 1.5}}))",
                "{\"a\":\"x\",\"b\":1,\"c\":[true,false,1.5]}");
    expect_body("kv.say(kv.json_encode({}), kv.json_encode({{}}), kv.json_encode(0.1), "
                "kv.json_encode(-0.0), kv.json_encode(1e300), kv.json_encode(3))",
                "{}[{}]0.1-0.01e+3003");
    /* stable through a round trip (found by fuzz_script: "-0" decoded as the
     * integer 0); whole floats keep their fraction */
    expect_body("kv.say(kv.json_encode(kv.json_decode(kv.json_encode(-0.0))), ' ', "
                "kv.json_encode(kv.json_decode('-0E1')), ' ', kv.json_encode(2.0), ' ', "
                "kv.json_encode(kv.json_decode('[2.0, 2]')))",
                "-0.0 -0.0 2.0 [2.0,2]");
    expect_body("kv.say(kv.json_encode('a\"b\\\\c\\n\\1'))", "\"a\\\"b\\\\c\\n\\u0001\"");
    expect_body("kv.say(kv.json_encode({[1] = 'a', [3] = 'c'}))", "{\"1\":\"a\",\"3\":\"c\"}");
    expect_body("kv.say(kv.json_encode('héllo ☃'))", "\"héllo ☃\"");
    expect_body("kv.say(kv.json_encode(nil))", "null");
}

Test(script_json, refuses_what_json_cannot_hold)
{
    expect_error("kv.json_encode(print)", "cannot encode");
    expect_error("kv.json_encode(0/0)", "NaN");
    expect_error("kv.json_encode(math.huge)", "NaN");
    expect_error("kv.json_encode('\\255')", "UTF-8");
    expect_error("kv.json_encode({[true] = 1})", "keys");
    expect_error("kv.json_encode({[1] = 1, ['1'] = 2})", "same text");
    expect_error("local t = {} t.self = t kv.json_encode(t)", "cycle");
}

Test(script_json, decodes_values)
{
    expect_body("local t = kv.json_decode('{\"a\":[1,2.5,\"x\",true,null,{}],\"b\":null}') "
                "kv.say(math.type(t.a[1]), math.type(t.a[2]), t.a[3], t.a[4], tostring(t.a[5]), "
                "type(t.a[6]), tostring(t.b))",
                "integerfloatxtrueniltablenil");
    expect_body("kv.say(kv.json_decode('42'), kv.json_decode('\"s\"'), "
                "kv.json_decode('9223372036854775807'))",
                "42s9223372036854775807");
    expect_body("kv.say(#kv.json_decode('\"a\\\\u0000b\"'))", "3");
}

Test(script_json, malformed_text_is_nil_and_message)
{
    expect_body("local v, err = kv.json_decode('{\"a\":') kv.say(tostring(v), ' ', "
                "err:find('json:') ~= nil)",
                "nil true");
    expect_body("kv.say(select(2, kv.json_decode('')) ~= nil)", "true");
}

Test(script_json, round_trips)
{
    expect_body("local s = '{\"a\":[1,2,{\"b\":\"c\"}],\"d\":1.25,\"e\":\"\\\\u00e9\"}' "
                "local t = kv.json_decode(s) local s2 = kv.json_encode(t) "
                "kv.say(s2, ' ', kv.json_encode(kv.json_decode(s2)) == s2)",
                "{\"a\":[1,2,{\"b\":\"c\"}],\"d\":1.25,\"e\":\"é\"} true");
    expect_body("kv.set('doc', {x = {1, 2}}) local t = kv.json_decode(kv.get('doc')) "
                "kv.say(t.x[2])",
                "2");
}

Test(script_json, deep_nesting_is_refused_not_crashed)
{
    expect_error("local t = {} local c = t for i = 1, 100 do c[1] = {} c = c[1] end "
                 "kv.json_encode(t)",
                 "deeper");
    expect_body("local s = string.rep('[', 100000) local v, err = kv.json_decode(s) "
                "kv.say(tostring(v), ' ', err ~= nil)",
                "nil true");
}

Test(script_json, decodes_escapes_and_unicode)
{
    expect_body("kv.say(kv.json_decode('\"\\\\u00e9\\\\ud83d\\\\ude00\\\\n\\\\/\\\\\"\"'))",
                "é😀\n/\"");
    expect_body("kv.say(kv.json_decode(' {\"a\" : 1 , \"a\" : 2} ').a)", "2");
    expect_body("kv.say(math.type(kv.json_decode('12345678901234567890')), ' ', "
                "kv.json_decode('-0'), ' ', kv.json_decode('1e2'), ' ', kv.json_decode('-1.5E-1'))",
                "float 0 100.0 -0.15");
}

Test(script_json, refuses_malformed_text)
{
    const char *bad[] = {
        "01",          "1.",       "-",         ".5",       "[1,]", "{\"a\" 1}", "{a:1}",
        "[1 2]",       "\"abc",    "tru",       "nul",      "1 2",  "\"\\x\"",   "\"\\ud800\"",
        "\"\\udc00\"", "\"a\tb\"", "\"\\u12\"", "{\"a\":}", "",     NULL};
    for (int i = 0; bad[i]; i++) {
        script_host h = fake_vtable(&host);
        script_scope scope = {NULL, 0, SCRIPT_PERM_ALL};
        script_request req = {.body = bad[i], .body_len = strlen(bad[i])};
        const char *src = "local v, err = kv.json_decode(kv.body) "
                          "kv.say(tostring(v), ' ', err and err:match('^json: .* at line %d+ "
                          "column %d+$') ~= nil)";
        script_result res;
        cr_assert_eq(script_run(eng, src, strlen(src), "t", &h, &scope, &req, &res), SCRIPT_OK,
                     "%s", res.message);
        cr_assert_str_eq(res.body, "nil true", "input '%s' => '%s'", bad[i], res.body);
        script_result_free(&res);
    }
    /* invalid UTF-8 inside a string */
    expect_body("kv.say(select(2, kv.json_decode('\"\\255\"')):find('UTF%-8') ~= nil)", "true");
}

Test(script_json, decoding_is_bounded_by_the_memory_cap)
{
    script_engine_destroy(eng);
    script_config cfg;
    script_config_default(&cfg);
    cfg.memory_bytes = 4u << 20;
    cfg.timeout_ms = 600000;
    cr_assert_eq(script_engine_create(&cfg, &eng), 0);
    script_result res;
    /* 1 MB of empty objects: Jansson would have built ~79 MB outside the cap */
    int rc = fake_run(eng, &host,
                      "local s = '[' .. string.rep('{},', 333333) .. '{}]' "
                      "kv.json_decode(s)",
                      &res);
    cr_assert_eq(rc, SCRIPT_EMEMORY, "%s", res.message);
    script_result_free(&res);
    rc = fake_run(eng, &host,
                  "local t = kv.json_decode('[' .. string.rep('1,', 1000) .. '1]') "
                  "kv.say(#t)",
                  &res);
    cr_assert_eq(rc, SCRIPT_OK, "%s", res.message);
    cr_assert_str_eq(res.body, "1001");
    script_result_free(&res);
}
