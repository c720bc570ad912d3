/*
 * test_kvd_scripts.c — Lua scripts through the real kvd: upload (422 with the
 * compiler's message), list/get/delete, runs by GET and POST, the caller's
 * scope through tokens, limits answered 422 and configured by flags, atomic
 * writes, and a server that stays healthy after every escape attempt.
 */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "kvdtest.h"
#include "ringcask.h"

#include <signal.h>

TestSuite(scripts, .init = kvd_setup, .fini = kvd_teardown, .timeout = 600);

static void put_script(const char *name, const char *src)
{
    char path[256];
    snprintf(path, sizeof path, "/t/scripts/%s", name);
    resp r = call("PUT", path, src);
    cr_assert(r.status == 200 || r.status == 201, "upload %s: %ld %.300s", name, r.status, r.body);
    resp_free(&r);
}

/* Run NAME with CRED (NULL: admin key, "": none); returns the response. */
static resp run_as(const char *cred, const char *name, const char *query)
{
    char path[512];
    snprintf(path, sizeof path, "/t/scripts/%s/run%s", name, query ? query : "");
    return call_as(cred, "GET", path, NULL, NULL, NULL);
}

static void expect_healthy(void)
{
    resp r = http_get(&K, "/healthz");
    EXPECT(r, 200);
    resp_free(&r);
}

/* 422 with REASON in the JSON body. */
static void expect_422(resp *r, const char *reason)
{
    EXPECT(*r, 422);
    json_t *j = resp_json(r);
    cr_assert(j, "422 body is not JSON: %s", r->body);
    cr_assert_str_eq(json_string_value(json_object_get(j, "error")), "script_error");
    cr_assert_str_eq(json_string_value(json_object_get(j, "reason")), reason, "%s", r->body);
    json_decref(j);
}

Test(scripts, upload_that_does_not_compile_is_422_with_the_line)
{
    resp r = call("PUT", "/t/scripts/bad", "local a = 1\nlocal b = = 2\n");
    expect_422(&r, "compile error");
    cr_assert(strstr(r.body, "bad:2:"), "%s", r.body);
    resp_free(&r);
    r = call("GET", "/t/scripts/bad", NULL);
    EXPECT(r, 404);
    resp_free(&r);
}

Test(scripts, list_get_replace_delete)
{
    resp r = call("PUT", "/t/scripts/hello", "kv.say('hello')");
    EXPECT(r, 201);
    resp_free(&r);
    r = call("PUT", "/t/scripts/hello", "kv.say('hello, ', kv.args.name or 'world')");
    EXPECT(r, 200);
    resp_free(&r);
    put_script("zeta", "return");
    r = call("GET", "/t/scripts/", NULL);
    EXPECT(r, 200);
    BODY_IS(r, "hello\nzeta\n");
    resp_free(&r);
    r = call("GET", "/t/scripts/?format=json", NULL);
    EXPECT(r, 200);
    json_t *names = resp_json(&r);
    cr_assert(json_is_array(names) && json_array_size(names) == 2, "%s", r.body);
    cr_assert_str_eq(json_string_value(json_array_get(names, 1)), "zeta");
    json_decref(names);
    resp_free(&r);
    r = call("GET", "/t/scripts/hello", NULL);
    EXPECT(r, 200);
    BODY_IS(r, "kv.say('hello, ', kv.args.name or 'world')");
    resp_free(&r);
    r = run_as(NULL, "hello", "?name=ann");
    EXPECT(r, 200);
    BODY_IS(r, "hello, ann");
    resp_free(&r);
    r = call("DELETE", "/t/scripts/hello", NULL);
    EXPECT(r, 204);
    resp_free(&r);
    r = call("DELETE", "/t/scripts/hello", NULL);
    EXPECT(r, 404);
    resp_free(&r);
    r = run_as(NULL, "hello", NULL);
    EXPECT(r, 404);
    resp_free(&r);
    r = call("PUT", "/t/scripts/bad%20name", "return");
    EXPECT(r, 404);
    resp_free(&r);
}

Test(scripts, managing_scripts_takes_whole_bucket_admin)
{
    put_script("s", "kv.say('x')");
    resp r = call_as("", "GET", "/t/scripts/", NULL, NULL, NULL);
    EXPECT(r, 401);
    resp_free(&r);
    char tok[2048];
    cr_assert(make_token(&K, "t", AK, "{\"permissions\":[\"read\",\"write\",\"delete\"]}", tok,
                         sizeof tok));
    r = call_as(tok, "PUT", "/t/scripts/evil", "kv.say('x')", NULL, NULL);
    EXPECT(r, 403);
    resp_free(&r);
    cr_assert(make_token(&K, "t", AK, "{\"permissions\":[\"read\"]}", tok, sizeof tok));
    r = call_as(tok, "GET", "/t/scripts/s", NULL, NULL, NULL);
    EXPECT(r, 403);
    resp_free(&r);
    /* running needs no permission of its own */
    r = run_as(tok, "s", NULL);
    EXPECT(r, 200);
    BODY_IS(r, "x");
    resp_free(&r);
}

Test(scripts, run_by_get_and_post)
{
    put_script("echo", "kv.say(kv.method, '|', kv.args.a or '-', '|', kv.args.b or '-', '|', "
                       "kv.body, '|', tostring(kv.args.access_token))");
    resp r = run_as(NULL, "echo", "?a=1&b=two%20words");
    EXPECT(r, 200);
    BODY_IS(r, "GET|1|two words||nil");
    char ct[128];
    cr_assert_str_eq(resp_header(&r, "Content-Type", ct, sizeof ct), "text/plain; charset=utf-8");
    resp_free(&r);
    r = call_as(NULL, "POST", "/t/scripts/echo/run?a=q", "b=form+field&a=f",
                "Content-Type: application/x-www-form-urlencoded", NULL);
    EXPECT(r, 200);
    BODY_IS(r, "POST|f|form field|b=form+field&a=f|nil");
    resp_free(&r);
    r = call_as(NULL, "POST", "/t/scripts/echo/run", "{\"raw\":true}",
                "Content-Type: application/json", NULL);
    EXPECT(r, 200);
    BODY_IS(r, "POST|-|-|{\"raw\":true}|nil");
    resp_free(&r);
    char path[256];
    snprintf(path, sizeof path, "/t/scripts/echo/run?access_token=%s", AK);
    r = http_get(&K, path);
    EXPECT(r, 200);
    BODY_IS(r, "GET|-|-||nil");
    resp_free(&r);
    r = call("PUT", "/t/scripts/echo/run", "x");
    EXPECT(r, 405);
    resp_free(&r);
}

Test(scripts, status_headers_and_typed_values)
{
    put_script("page", "kv.status(201) kv.header('X-Answer', '42') "
                       "kv.header('Content-Type', 'application/json') "
                       "kv.set('n', 1) kv.set('f', 1.5) kv.set('j', {a = 1}) kv.set('r', 'raw') "
                       "kv.say(kv.json_encode({ok = true}))");
    resp r = run_as(NULL, "page", NULL);
    EXPECT(r, 201);
    char buf[128];
    cr_assert_str_eq(resp_header(&r, "X-Answer", buf, sizeof buf), "42");
    cr_assert_str_eq(resp_header(&r, "Content-Type", buf, sizeof buf), "application/json");
    BODY_IS(r, "{\"ok\":true}");
    resp_free(&r);
    r = call("GET", "/t/j", NULL);
    EXPECT(r, 200);
    BODY_IS(r, "{\"a\":1}");
    cr_assert(strstr(resp_header(&r, "Content-Type", buf, sizeof buf), "application/json"));
    resp_free(&r);
    r = call("GET", "/t/f", NULL);
    BODY_IS(r, "1.5");
    resp_free(&r);
    r = call("PUT", "/t/counter", "41");
    resp_free(&r);
    put_script("types", "kv.say(math.type(kv.get('n')), ' ', math.type(kv.get('f')), ' ', "
                        "kv.get('j'), ' ', kv.get('r'), ' ', kv.incr('counter'))");
    r = run_as(NULL, "types", NULL);
    EXPECT(r, 200);
    BODY_IS(r, "integer float {\"a\":1} raw 42");
    resp_free(&r);
}

Test(scripts, counter_counts_and_writes_are_atomic)
{
    put_script("count", "kv.say(kv.incr('hits'))");
    for (int i = 1; i <= 5; i++) {
        resp r = run_as(NULL, "count", NULL);
        EXPECT(r, 200);
        char want[8];
        snprintf(want, sizeof want, "%d", i);
        BODY_IS(r, want);
        resp_free(&r);
    }
    put_script("half", "kv.set('a', 'x') kv.incr('hits') kv.delete('hits') error('midway')");
    resp r = run_as(NULL, "half", NULL);
    expect_422(&r, "runtime error");
    cr_assert(strstr(r.body, "midway"), "%s", r.body);
    resp_free(&r);
    r = call("GET", "/t/a", NULL);
    EXPECT(r, 404);
    resp_free(&r);
    r = call("GET", "/t/hits", NULL);
    BODY_IS(r, "5");
    resp_free(&r);
}

Test(scripts, runs_in_the_callers_scope)
{
    resp r = call("PUT", "/t/u:1:name", "ann");
    resp_free(&r);
    r = call("PUT", "/t/u:2:name", "bob");
    resp_free(&r);
    put_script("peek", "local function e(v, err) return err or tostring(v) end "
                       "kv.say(e(kv.get('u:1:name')), '|', e(kv.get('u:2:name')), '|', "
                       "e(kv.set('u:1:x', 1)), '|', kv.scope.prefix, '|', "
                       "table.concat(kv.scope.permissions, ','))");
    char tok[2048];
    cr_assert(make_token(&K, "t", AK, "{\"prefix\":\"u:1:\",\"permissions\":[\"read\"]}", tok,
                         sizeof tok));
    r = run_as(tok, "peek", NULL);
    EXPECT(r, 200);
    BODY_IS(r, "ann|forbidden: key outside the scope|forbidden: the scope does not permit "
               "this|u:1:|read");
    resp_free(&r);
    r = run_as("", "peek", NULL); /* bucket t has no public permissions */
    EXPECT(r, 200);
    BODY_IS(r, "forbidden: the scope does not permit this|forbidden: the scope does not permit "
               "this|forbidden: the scope does not permit this||");
    resp_free(&r);
    put_script("widen", "kv.scope.prefix = ''");
    r = run_as(tok, "widen", NULL);
    expect_422(&r, "runtime error");
    resp_free(&r);
}

Test(scripts, escapes_fail_and_the_server_stays_healthy)
{
    const char *escapes[] = {
        "os.execute('touch /tmp/kvd-script-pwned')",
        "io.open('/etc/passwd')",
        "require('os')",
        "dofile('/etc/passwd')",
        "loadfile('/etc/passwd')",
        "load(string.dump(function() end))",
        "assert(load('\\27LuaT\\0'))",
        "debug.getregistry()",
        "getmetatable('').__index.dump = nil",
        "rawset(kv, 'scope', {})",
        "setmetatable({}, {__gc = function() end})",
        "collectgarbage('stop')",
        NULL,
    };
    for (int i = 0; escapes[i]; i++) {
        put_script("escape", escapes[i]);
        resp r = run_as(NULL, "escape", NULL);
        expect_422(&r, "runtime error");
        resp_free(&r);
        expect_healthy();
    }
    cr_assert_neq(access("/tmp/kvd-script-pwned", F_OK), 0);
}

static void kvd_setup_tight(void)
{
    const char *flags[] = {"--script-instructions",
                           "200000",
                           "--script-memory",
                           "2097152",
                           "--script-timeout", /* never before the other two */
                           "600000",
                           NULL};
    cr_assert(kvd_start(&K, NULL, flags), "kvd did not become ready");
    cr_assert(make_bucket(&K, "{\"name\":\"t\"}", B, sizeof B, AK, sizeof AK));
}

TestSuite(script_limits, .init = kvd_setup_tight, .fini = kvd_teardown, .timeout = 600);

Test(script_limits, limits_answer_422_and_leave_no_trace)
{
    struct {
        const char *src, *reason;
    } cases[] = {
        {"kv.set('trace', 1) while true do end", "instruction limit"},
        {"kv.set('trace', 1) while true do pcall(function() while true do end end) end",
         "instruction limit"},
        {"kv.set('trace', 1) local co = coroutine.wrap(function() while true do end end) co()",
         "instruction limit"},
        {"kv.set('trace', 1) local s = string.rep('x', 1e8)", "memory limit"},
        {"kv.set('trace', 1) local s = 'x' while true do s = s .. s end", "memory limit"},
        {"kv.set('trace', 1) local t = {} for i = 1, 1e7 do t[i] = ('x'):rep(1000) .. i end",
         "memory limit"},
        {"kv.set('trace', 1) string.find(string.rep('a', 50000), '.-.-.-.-b')",
         "instruction limit"},
        {NULL, NULL},
    };
    for (int i = 0; cases[i].src; i++) {
        put_script("limit", cases[i].src);
        resp r = run_as(NULL, "limit", NULL);
        expect_422(&r, cases[i].reason);
        resp_free(&r);
        expect_healthy();
    }
    resp r = call("GET", "/t/trace", NULL);
    EXPECT(r, 404);
    resp_free(&r);
    /* deep recursion: Lua's stack overflow or the memory cap, never a crash */
    put_script("deep", "local function f(n) return 1 + f(n + 1) end f(1)");
    r = run_as(NULL, "deep", NULL);
    EXPECT(r, 422);
    resp_free(&r);
    expect_healthy();
    /* a script inside the limits still runs */
    put_script("ok", "local n = 0 for i = 1, 1000 do n = n + i end kv.say(n)");
    r = run_as(NULL, "ok", NULL);
    EXPECT(r, 200);
    BODY_IS(r, "500500");
    resp_free(&r);
}

Test(script_limits, wall_clock_limit_answers_422)
{
    const char *flags[] = {"--script-instructions", "1000000000000", "--script-timeout", "200",
                           NULL};
    kvd_cleanup(&K);
    cr_assert(kvd_start(&K, NULL, flags));
    cr_assert(make_bucket(&K, "{\"name\":\"t\"}", B, sizeof B, AK, sizeof AK));
    put_script("spin", "while true do end");
    resp r = run_as(NULL, "spin", NULL);
    expect_422(&r, "time limit");
    resp_free(&r);
    expect_healthy();
}

Test(scripts, scripts_go_with_their_bucket)
{
    char name[96], key[96];
    cr_assert(make_bucket(&K, "{\"name\":\"gone\"}", name, sizeof name, key, sizeof key));
    resp r = call_as(key, "PUT", "/gone/scripts/s", "kv.say('old')", NULL, NULL);
    EXPECT(r, 201);
    resp_free(&r);
    r = call_as(key, "DELETE", "/gone", NULL, NULL, NULL);
    cr_assert(r.status == 200 || r.status == 204, "%ld", r.status);
    resp_free(&r);
    sleep(1); /* a new incarnation of the name: scripts are keyed by creation time */
    cr_assert(make_bucket(&K, "{\"name\":\"gone\"}", name, sizeof name, key, sizeof key));
    r = call_as(key, "GET", "/gone/scripts/", NULL, NULL, NULL);
    EXPECT(r, 200);
    BODY_IS(r, "");
    resp_free(&r);
    r = call_as(key, "GET", "/gone/scripts/s/run", NULL, NULL, NULL);
    EXPECT(r, 404);
    resp_free(&r);
}

/* Deleting a bucket also deletes its script sources from the system keyspace
 * (not just makes them unreachable): checked in the data directory itself. */
Test(scripts, deleting_a_bucket_deletes_its_script_sources)
{
    char name[96], key[96];
    cr_assert(make_bucket(&K, "{\"name\":\"doomed\"}", name, sizeof name, key, sizeof key));
    resp r = call_as(key, "PUT", "/doomed/scripts/s1", "kv.say('a')", NULL, NULL);
    EXPECT(r, 201);
    resp_free(&r);
    r = call_as(key, "PUT", "/doomed/scripts/s2", "kv.say('b')", NULL, NULL);
    EXPECT(r, 201);
    resp_free(&r);
    r = call_as(key, "DELETE", "/doomed", NULL, NULL, NULL);
    cr_assert(r.status == 200 || r.status == 204, "%ld", r.status);
    resp_free(&r);
    cr_assert_eq(kvd_stop(&K, SIGTERM), 0);
    rc_options o;
    rc_options_default(&o);
    o.read_only = true;
    rc_db *db;
    cr_assert_eq(rc_open(K.dir, &o, &db), 0, "%s", rc_last_error_message());
    rc_keyspace *sys;
    cr_assert_eq(rc_keyspace_open(db, "sys", 0, &sys), 0);
    rc_list_opts lo = {.prefix = "script/doomed/", .prefix_len = 14};
    rc_list *l;
    cr_assert_eq(rc_list_keys(db, sys, &lo, &l), 0);
    cr_assert_eq(l->count, 0, "%zu script sources left behind", l->count);
    rc_list_free(l);
    rc_list_opts t = {.prefix = "script/t/", .prefix_len = 9};
    cr_assert_eq(rc_list_keys(db, sys, &t, &l), 0);
    rc_list_free(l);
    rc_close(db);
}

typedef struct transfer_worker {
    int ok, refused, failed;
} transfer_worker;

static void *transfer_main(void *p)
{
    transfer_worker *w = p;
    for (int i = 0; i < 20; i++) {
        resp r = run_as(NULL, "transfer", "?from=a&to=b&amount=1");
        if (r.status == 200)
            w->ok++;
        else if (r.status == 409)
            w->refused++;
        else
            w->failed++;
        resp_free(&r);
    }
    return NULL;
}

/* 80 concurrent transfers of 1 from an account holding 20, written as
 * read-check-set: exactly 20 may succeed and no money may appear or vanish.
 * Without the compare-and-swap on the balances the script read, concurrent
 * runs would each see the same balances and overwrite each other. */
Test(scripts, concurrent_transfers_never_overdraw)
{
    resp r = call("PUT", "/t/acct:a", "20");
    resp_free(&r);
    put_script(
        "transfer",
        "local from, to = 'acct:' .. kv.args.from, 'acct:' .. kv.args.to "
        "local amount = math.tointeger(tonumber(kv.args.amount)) "
        "local balance, other = kv.get(from) or 0, kv.get(to) or 0 "
        "if balance < amount then kv.status(409) kv.say('insufficient funds') return end "
        "local n = 0 for i = 1, 20000 do n = n + i end "
        "kv.set(from, balance - amount) kv.set(to, other + amount) kv.say(balance - amount)");
    pthread_t th[4];
    transfer_worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (transfer_worker){0};
        cr_assert_eq(pthread_create(&th[i], NULL, transfer_main, &w[i]), 0);
    }
    int ok = 0, refused = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(w[i].failed, 0, "worker %d: %d requests failed", i, w[i].failed);
        ok += w[i].ok;
        refused += w[i].refused;
    }
    cr_assert_eq(ok, 20, "%d transfers succeeded, %d refused", ok, refused);
    r = call("GET", "/t/acct:a", NULL);
    BODY_IS(r, "0");
    resp_free(&r);
    r = call("GET", "/t/acct:b", NULL);
    BODY_IS(r, "20");
    resp_free(&r);
}

Test(scripts, a_script_write_replaces_a_recorded_content_type)
{
    resp r = call_as(NULL, "PUT", "/t/page", "<b>hi</b>", "Content-Type: text/html", NULL);
    cr_assert(r.status == 200 || r.status == 201, "%ld", r.status);
    resp_free(&r);
    char ct[128];
    r = call("GET", "/t/page", NULL);
    cr_assert_str_eq(resp_header(&r, "Content-Type", ct, sizeof ct), "text/html");
    resp_free(&r);
    put_script("rewrite", "kv.set('page', {html = false})");
    r = run_as(NULL, "rewrite", NULL);
    EXPECT(r, 200);
    resp_free(&r);
    r = call("GET", "/t/page", NULL);
    BODY_IS(r, "{\"html\":false}");
    cr_assert(strstr(resp_header(&r, "Content-Type", ct, sizeof ct), "application/json"), "%s", ct);
    resp_free(&r);
}
