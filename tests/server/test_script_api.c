/*
 * test_script_api.c — the kv table: typed values, the write overlay and its
 * single atomic commit, scope confinement and narrowing, and the response.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
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

TestSuite(script_api, .init = setup, .fini = teardown);

static void expect_scoped(const char *src, const char *prefix, unsigned perms, const char *body)
{
    script_result res;
    int rc = fake_run_scoped(eng, &host, src, prefix, perms, &res);
    cr_assert_eq(rc, SCRIPT_OK, "%s => %s (%s)", src, script_outcome_name(rc), res.message);
    cr_assert_str_eq(res.body, body, "%s => '%s'", src, res.body);
    script_result_free(&res);
}

static void expect_body(const char *src, const char *body)
{
    expect_scoped(src, NULL, SCRIPT_PERM_ALL, body);
}

static void expect_fail(const char *src, const char *prefix, unsigned perms, int outcome,
                        const char *needle)
{
    script_result res;
    int rc = fake_run_scoped(eng, &host, src, prefix, perms, &res);
    cr_assert_eq(rc, outcome, "%s => %s (%s)", src, script_outcome_name(rc), res.message);
    if (needle)
        cr_assert(strstr(res.message, needle), "'%s' lacks '%s'", res.message, needle);
    script_result_free(&res);
}

/* ---------------------------------------------------------------- values */

Test(script_api, get_returns_typed_values)
{
    fake_put(&host, "i", "42", RC_TYPE_INT);
    fake_put(&host, "f", "2.5", RC_TYPE_FLOAT);
    fake_put(&host, "j", "{\"a\":1}", RC_TYPE_JSON);
    fake_put(&host, "r", "bytes", RC_TYPE_RAW);
    expect_body("kv.say(math.type(kv.get('i')), ' ', math.type(kv.get('f')), ' ', kv.get('j'), "
                "' ', kv.get('r'), ' ', kv.get('i') + 1)",
                "integer float {\"a\":1} bytes 43");
    expect_body("kv.say(kv.json_decode(kv.get('j')).a)", "1");
}

Test(script_api, get_of_an_absent_key_is_nil_and_not_found)
{
    expect_body("local v, err = kv.get('nope') kv.say(tostring(v), ' ', err)", "nil not found");
}

Test(script_api, set_stores_typed_values)
{
    expect_body("kv.set('i', 7) kv.set('f', 0.1) kv.set('s', 'text') kv.set('t', {b = 2, a = {1, "
                "2}}) kv.set('b', true) kv.say('ok')",
                "ok");
    cr_assert_eq(host.commits, 1);
    cr_assert_eq(host.last_nops, 5);
    const fake_entry *e = fake_find(&host, "i");
    cr_assert_str_eq(e->val, "7");
    cr_assert_eq(e->type, RC_TYPE_INT);
    e = fake_find(&host, "f");
    cr_assert_str_eq(e->val, "0.1");
    cr_assert_eq(e->type, RC_TYPE_FLOAT);
    e = fake_find(&host, "s");
    cr_assert_str_eq(e->val, "text");
    cr_assert_eq(e->type, RC_TYPE_RAW);
    e = fake_find(&host, "t");
    cr_assert_str_eq(e->val, "{\"a\":[1,2],\"b\":2}");
    cr_assert_eq(e->type, RC_TYPE_JSON);
    cr_assert_str_eq(fake_find(&host, "b")->val, "true");
    /* and they read back with their types */
    expect_body("kv.say(math.type(kv.get('i')), math.type(kv.get('f')), kv.get('f'))",
                "integerfloat0.1");
}

Test(script_api, set_rejects_bad_values_and_keys)
{
    expect_fail("kv.set('k', nil)", NULL, SCRIPT_PERM_ALL, SCRIPT_ERUNTIME, "bad argument");
    expect_fail("kv.set('k', print)", NULL, SCRIPT_PERM_ALL, SCRIPT_ERUNTIME, "bad argument");
    expect_fail("kv.set('k', 0/0)", NULL, SCRIPT_PERM_ALL, SCRIPT_ERUNTIME, "finite");
    expect_fail("kv.set('k', 1, -5)", NULL, SCRIPT_PERM_ALL, SCRIPT_ERUNTIME, "ttl");
    expect_body("local ok, err = kv.set('', 1) kv.say(tostring(ok), err)", "nilinvalid key");
    expect_body("local ok, err = kv.set(string.rep('k', 1025), 1) kv.say(err)", "invalid key");
    cr_assert_eq(host.commits, 0);
}

Test(script_api, set_ttl_reaches_the_commit)
{
    expect_body("kv.set('a', 1, 60) kv.set('b', 1, 0) kv.set('c', 1) kv.set('d', 1, 0.0015)", "");
    cr_assert_eq(host.last_nops, 4);
    for (size_t i = 0; i < host.last_nops; i++) {
        const rc_op *op = &host.last_ops[i];
        int64_t want = 0;
        switch (((const char *)op->key)[0]) {
        case 'a':
            want = 60000;
            break;
        case 'b':
            want = RC_TTL_NONE;
            break;
        case 'c':
            want = RC_TTL_DEFAULT;
            break;
        case 'd':
            want = 2;
            break;
        }
        cr_assert_eq(op->ttl_ms, want, "key %c", ((const char *)op->key)[0]);
    }
}

/* -------------------------------------------------------------- overlay */

Test(script_api, reads_see_the_runs_own_writes)
{
    fake_put(&host, "k", "old", RC_TYPE_RAW);
    expect_body("kv.say(kv.get('k')) kv.set('k', 'new') kv.say(kv.get('k')) kv.delete('k') "
                "kv.say(tostring(kv.get('k'))) kv.set('k', 3) kv.say(kv.get('k') * 2)",
                "oldnewnil6");
    cr_assert_str_eq(fake_find(&host, "k")->val, "3");
    cr_assert_eq(host.commits, 1);
    cr_assert_eq(host.last_nops, 1);
}

Test(script_api, incr_counts_and_commits_as_one_incr)
{
    expect_body("kv.say(kv.incr('c'), kv.incr('c'), kv.incr('c', 10))", "1212");
    cr_assert_eq(host.last_nops, 1);
    cr_assert_eq(host.last_ops[0].kind, RC_OP_INCR);
    cr_assert_eq(host.last_ops[0].by.type, RC_TYPE_INT);
    cr_assert_eq(host.last_ops[0].by.i, 12);
    cr_assert_str_eq(fake_find(&host, "c")->val, "12");
    expect_body("kv.say(kv.incr('c', -2))", "10");
    cr_assert_str_eq(fake_find(&host, "c")->val, "10");
}

Test(script_api, incr_follows_the_engine_number_rules)
{
    fake_put(&host, "f", "1.5", RC_TYPE_FLOAT);
    fake_put(&host, "r", "12", RC_TYPE_RAW);
    fake_put(&host, "big", "9223372036854775807", RC_TYPE_INT);
    expect_body("kv.say(kv.incr('f'), ' ', math.type(kv.incr('n', 0.5)), ' ', select(2, "
                "kv.incr('r')), ' ', select(2, kv.incr('big')))",
                "2.5 float type: the value is not a number overflow");
}

Test(script_api, incr_after_set_commits_a_put)
{
    expect_body("kv.set('c', 5) kv.incr('c') kv.say(kv.get('c'))", "6");
    cr_assert_eq(host.last_ops[0].kind, RC_OP_PUT);
    cr_assert_str_eq(fake_find(&host, "c")->val, "6");
    expect_body("kv.delete('c') kv.say(kv.incr('c'))", "1");
    cr_assert_eq(host.last_ops[0].kind, RC_OP_PUT);
}

Test(script_api, delete_reports_presence)
{
    fake_put(&host, "a", "1", RC_TYPE_RAW);
    expect_body("kv.say(kv.delete('a'), kv.delete('a'), kv.delete('zzz'))", "truefalsefalse");
    cr_assert_null(fake_find(&host, "a"));
}

Test(script_api, error_after_writes_commits_nothing)
{
    fake_put(&host, "a", "1", RC_TYPE_INT);
    expect_fail("kv.set('x', 1) kv.incr('a') kv.delete('a') error('boom')", NULL, SCRIPT_PERM_ALL,
                SCRIPT_ERUNTIME, "boom");
    cr_assert_eq(host.commits, 0);
    cr_assert_null(fake_find(&host, "x"));
    cr_assert_str_eq(fake_find(&host, "a")->val, "1");
}

Test(script_api, writes_commit_once_as_one_batch)
{
    expect_body("for i = 1, 50 do kv.set('k' .. i, i) end kv.delete('k1') kv.say('done')", "done");
    cr_assert_eq(host.commits, 1);
    cr_assert_eq(host.last_nops, 50);
    cr_assert_eq(host.n, 49);
}

Test(script_api, a_run_without_writes_does_not_commit)
{
    fake_put(&host, "a", "1", RC_TYPE_INT);
    expect_body("kv.say(kv.get('a'))", "1");
    cr_assert_eq(host.commits, 0);
}

Test(script_api, failed_commit_is_reported)
{
    host.commit_error = RC_ENOSPC;
    script_result res;
    cr_assert_eq(fake_run(eng, &host, "kv.set('a', 1) kv.say('x')", &res), SCRIPT_ECOMMIT);
    cr_assert_eq(res.host_error, RC_ENOSPC);
    cr_assert_null(res.body);
    script_result_free(&res);
}

Test(script_api, host_read_errors_become_nil_err)
{
    host.get_error = RC_EIO;
    expect_body("local v, err = kv.get('a') kv.say(tostring(v), ' ', err)", "nil storage error");
}

/* ----------------------------------------------------------------- list */

Test(script_api, list_merges_the_overlay_in_byte_order)
{
    fake_put(&host, "u:1", "a", RC_TYPE_RAW);
    fake_put(&host, "u:3", "a", RC_TYPE_RAW);
    fake_put(&host, "u:5", "a", RC_TYPE_RAW);
    fake_put(&host, "v:1", "a", RC_TYPE_RAW);
    expect_body("kv.set('u:2', 1) kv.set('u:6', 1) kv.delete('u:3') kv.set('u:5', 2) "
                "kv.say(table.concat(kv.list('u:'), ','))",
                "u:1,u:2,u:5,u:6");
    expect_body("kv.delete('u:1') kv.say(table.concat(kv.list('u:', 2), ','))", "u:2,u:5");
    expect_body("kv.say(#kv.list(''), ' ', #kv.list('nothing'))", "4 0");
    expect_fail("kv.list('', 0)", NULL, SCRIPT_PERM_ALL, SCRIPT_ERUNTIME, "limit");
}

/* ---------------------------------------------------------------- scope */

Test(script_api, prefix_confines_every_data_function)
{
    fake_put(&host, "users:1:name", "ann", RC_TYPE_RAW);
    fake_put(&host, "users:2:name", "bob", RC_TYPE_RAW);
    const char *src =
        "local function e(f, ...) local v, err = f(...) return err or tostring(v) end "
        "kv.say(e(kv.get, 'users:1:name'), '|', e(kv.get, 'users:2:name'), '|', "
        "e(kv.set, 'users:2:name', 'x'), '|', e(kv.incr, 'users:2:n'), '|', "
        "e(kv.delete, 'users:2:name'), '|', e(kv.set, 'users:1:age', 3))";
    expect_scoped(src, "users:1:", SCRIPT_PERM_ALL,
                  "ann|forbidden: key outside the scope|forbidden: key outside the scope|"
                  "forbidden: key outside the scope|forbidden: key outside the scope|true");
    cr_assert_str_eq(fake_find(&host, "users:2:name")->val, "bob");
    cr_assert_str_eq(fake_find(&host, "users:1:age")->val, "3");
}

Test(script_api, list_is_confined_to_the_scope)
{
    fake_put(&host, "users:1:a", "1", RC_TYPE_RAW);
    fake_put(&host, "users:1:b", "1", RC_TYPE_RAW);
    fake_put(&host, "users:2:a", "1", RC_TYPE_RAW);
    expect_scoped("kv.say(table.concat(kv.list(''), ','), ' ', table.concat(kv.list('users:'), "
                  "','), ' ', select(2, kv.list('users:2')))",
                  "users:1:", SCRIPT_PERM_ALL,
                  "users:1:a,users:1:b users:1:a,users:1:b forbidden: prefix outside the scope");
}

Test(script_api, permissions_gate_each_function)
{
    fake_put(&host, "a", "1", RC_TYPE_INT);
    const char *src = "local function e(f, ...) local v, err = f(...) return err and 'no' or 'yes' "
                      "end kv.say(e(kv.get, 'a'), e(kv.set, 'a', 2), e(kv.incr, 'a'), "
                      "e(kv.delete, 'a'), e(kv.list, ''))";
    expect_scoped(src, NULL, SCRIPT_PERM_READ, "yesnononono");
    expect_scoped(src, NULL, SCRIPT_PERM_WRITE, "noyesyesnono");
    expect_scoped(src, NULL, SCRIPT_PERM_DELETE | SCRIPT_PERM_ENUMERATE, "nononoyesyes");
    fake_put(&host, "a", "1", RC_TYPE_INT);
    expect_scoped(src, NULL, SCRIPT_PERM_ADMIN, "yesyesyesyesyes");
    expect_scoped(src, NULL, 0, "nonononono");
}

Test(script_api, scope_can_be_narrowed)
{
    fake_put(&host, "u:1:a", "1", RC_TYPE_RAW);
    expect_scoped("kv.scope.prefix = 'u:1:' kv.say(kv.scope.prefix, ' ', kv.get('u:1:a'), ' ', "
                  "select(2, kv.get('u:2:a')))",
                  "u:", SCRIPT_PERM_ALL, "u:1: 1 forbidden: key outside the scope");
    expect_scoped("kv.scope.permissions = {'read'} kv.say(table.concat(kv.scope.permissions, "
                  "','), ' ', select(2, kv.set('u:1:a', 2)))",
                  "u:", SCRIPT_PERM_READ | SCRIPT_PERM_WRITE,
                  "read forbidden: the scope does not permit this");
    expect_scoped("kv.scope.permissions = 'enumerate' kv.say(#kv.list(''), select(2, "
                  "kv.get('u:1:a')))",
                  NULL, SCRIPT_PERM_ADMIN, "1forbidden: the scope does not permit this");
    expect_scoped("kv.say(table.concat(kv.scope.permissions, ','))", NULL, SCRIPT_PERM_ADMIN,
                  "read,write,delete,enumerate,admin");
}

Test(script_api, scope_cannot_be_widened)
{
    const char *cases[] = {
        "kv.scope.prefix = ''",
        "kv.scope.prefix = 'u:'",
        "kv.scope.prefix = 'v:1:'",
        "kv.scope.prefix = 5",
        "kv.scope.permissions = {'read', 'write'}",
        "kv.scope.permissions = {'admin'}",
        "kv.scope.permissions = {'bogus'}",
        "kv.scope.other = 1",
        "kv.scope = {}",
        NULL,
    };
    for (int i = 0; cases[i]; i++) {
        expect_fail(cases[i], "u:1:", SCRIPT_PERM_READ, SCRIPT_ERUNTIME, NULL);
        /* caught by pcall, the attempt changed nothing */
        char src[512];
        snprintf(src, sizeof src,
                 "local ok = pcall(function() %s end) kv.say(ok, ' ', kv.scope.prefix, ' ', "
                 "table.concat(kv.scope.permissions, ','))",
                 cases[i]);
        expect_scoped(src, "u:1:", SCRIPT_PERM_READ, "false u:1: read");
    }
    /* narrowing is one-way: after narrowing, the old scope is a widening */
    expect_fail("kv.scope.prefix = 'u:1:x' kv.scope.prefix = 'u:1:'", "u:1:", SCRIPT_PERM_ALL,
                SCRIPT_ERUNTIME, "narrowed");
    expect_fail("kv.scope.permissions = {} kv.scope.permissions = {'read'}", NULL, SCRIPT_PERM_READ,
                SCRIPT_ERUNTIME, "narrowed");
}

Test(script_api, scope_does_not_survive_a_run)
{
    expect_scoped("kv.scope.prefix = 'x:' kv.scope.permissions = {}", NULL, SCRIPT_PERM_ALL, "");
    expect_scoped("kv.say(kv.scope.prefix, #kv.scope.permissions)", "u:", SCRIPT_PERM_ALL, "u:5");
}

/* ------------------------------------------------------------- response */

Test(script_api, say_status_and_header)
{
    script_result res;
    cr_assert_eq(fake_run(eng, &host,
                          "kv.status(201) kv.header('X-One', '1') kv.header('Content-Type', "
                          "'text/html') kv.say('a', 1, 2.5, true, nil, {} ~= nil)",
                          &res),
                 SCRIPT_OK);
    cr_assert_eq(res.status, 201);
    cr_assert_eq(res.nheaders, 2);
    cr_assert_str_eq(res.headers[0].name, "X-One");
    cr_assert_str_eq(res.headers[1].value, "text/html");
    cr_assert_str_eq(res.body, "a12.5trueniltrue");
    cr_assert_eq(res.body_len, strlen("a12.5trueniltrue"));
    script_result_free(&res);
    cr_assert_eq(fake_run(eng, &host, "", &res), SCRIPT_OK);
    cr_assert_eq(res.status, 200);
    cr_assert_str_eq(res.body, "");
    script_result_free(&res);
}

Test(script_api, headers_cannot_split_the_response)
{
    expect_fail("kv.header('X-A', 'v\\r\\nSet-Cookie: x=1')", NULL, SCRIPT_PERM_ALL,
                SCRIPT_ERUNTIME, "CR");
    expect_fail("kv.header('X A', 'v')", NULL, SCRIPT_PERM_ALL, SCRIPT_ERUNTIME, "token");
    expect_fail("kv.header('Content-Length', '5')", NULL, SCRIPT_PERM_ALL, SCRIPT_ERUNTIME,
                "framing");
    expect_fail("kv.header('transfer-encoding', 'chunked')", NULL, SCRIPT_PERM_ALL, SCRIPT_ERUNTIME,
                "framing");
    expect_fail("for i = 1, 100 do kv.header('X-' .. i, 'v') end", NULL, SCRIPT_PERM_ALL,
                SCRIPT_ERUNTIME, "too many headers");
    expect_fail("kv.status(99)", NULL, SCRIPT_PERM_ALL, SCRIPT_ERUNTIME, "status");
    expect_fail("kv.status(600)", NULL, SCRIPT_PERM_ALL, SCRIPT_ERUNTIME, "status");
}

Test(script_api, request_args_body_and_method)
{
    script_arg args[] = {{"name", 4, "ann", 3}, {"n", 1, "1", 1}, {"n", 1, "2", 1}};
    script_request req = {
        .method = "POST", .args = args, .nargs = 3, .body = "payload", .body_len = 7};
    script_host h = fake_vtable(&host);
    script_scope scope = {NULL, 0, SCRIPT_PERM_ALL};
    const char *src = "kv.say(kv.method, ' ', kv.args.name, ' ', kv.args.n, ' ', kv.body)";
    script_result res;
    cr_assert_eq(script_run(eng, src, strlen(src), "t", &h, &scope, &req, &res), SCRIPT_OK);
    cr_assert_str_eq(res.body, "POST ann 2 payload");
    script_result_free(&res);
}

Test(script_api, escape_html_and_time)
{
    expect_body("kv.say(kv.escape_html([[<a href=\"x\">'&'</a>]]))",
                "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    host.now_ms = 1700000000123;
    expect_body("kv.say(kv.time())", "1700000000.123");
}

Test(script_api, parse_form_decodes_pairs)
{
    script_arg *args;
    size_t n;
    const char q[] = "a=1&b=hello+world&c=%2F%41&flag&&e=";
    cr_assert_eq(script_parse_form(q, sizeof q - 1, 100, &args, &n), 0);
    cr_assert_eq(n, 5);
    cr_assert_str_eq(args[1].value, "hello world");
    cr_assert_str_eq(args[2].value, "/A");
    cr_assert_str_eq(args[3].name, "flag");
    cr_assert_eq(args[3].value_len, 0);
    cr_assert_eq(args[4].value_len, 0);
    free(args);
    cr_assert_eq(script_parse_form("a=%4", 4, 100, &args, &n), RC_EINVAL);
    cr_assert_eq(script_parse_form("a&b&c", 5, 2, &args, &n), RC_ELIMIT);
    cr_assert_eq(script_perm_from_name("enumerate", 9), SCRIPT_PERM_ENUMERATE);
    cr_assert_eq(script_perm_from_name("root", 4), 0);
}

Test(script_api, a_key_read_then_written_commits_only_if_unchanged)
{
    fake_put(&host, "x", "1", RC_TYPE_INT);
    /* a concurrent writer changes x before the first two commits: the run is
     * started again and its third attempt sees (and builds on) the new value */
    host.bump_key = "x";
    host.bumps = 2;
    expect_body("local v = kv.get('x') kv.set('x', v + 1) kv.say(v)", "201");
    cr_assert_eq(host.commits, 3);
    cr_assert_str_eq(fake_find(&host, "x")->val, "202");
    cr_assert_eq(host.last_ops[0].cond, RC_IF_SEQ);
}

Test(script_api, endless_conflicts_give_up_with_the_conflict)
{
    fake_put(&host, "x", "1", RC_TYPE_INT);
    host.bump_key = "x";
    host.bumps = 1000;
    script_result res;
    cr_assert_eq(fake_run(eng, &host, "kv.set('x', kv.get('x') + 1)", &res), SCRIPT_ECOMMIT);
    cr_assert_eq(res.host_error, RC_ECONFLICT);
    script_result_free(&res);
    cr_assert_eq(host.commits, 8);
}

Test(script_api, blind_writes_and_counters_are_unconditional)
{
    fake_put(&host, "c", "1", RC_TYPE_INT);
    host.bump_key = "c";
    host.bumps = 1;
    expect_body("kv.set('blind', 1) kv.incr('c') kv.say('ok')", "ok");
    cr_assert_eq(host.commits, 1);
    for (size_t i = 0; i < host.last_nops; i++)
        cr_assert_eq(host.last_ops[i].cond, RC_IF_ANY);
    cr_assert_str_eq(fake_find(&host, "c")->val, "102"); /* both increments kept */
}

Test(script_api, a_read_of_an_absent_key_is_checked_too)
{
    host.bump_key = "fresh";
    host.bumps = 1;
    expect_body("if kv.get('fresh') == nil then kv.set('fresh', 1) end kv.say(kv.get('fresh'))",
                "100");
    /* attempt 1 conflicted (fresh appeared as 100); attempt 2 saw it and kept it */
    cr_assert_eq(host.commits, 1);
    cr_assert_str_eq(fake_find(&host, "fresh")->val, "100");
}
