/*
 * test_script_sandbox.c — every way out of the sandbox fails cleanly, and
 * nothing a run does survives into the next run on the same Lua state.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "script_fake_host.h"

static script_engine *eng;
static fake_host host;

static void setup(void)
{
    script_config cfg;
    script_config_default(&cfg);
    cfg.instructions = 2000000;
    cfg.memory_bytes = 8u << 20;
    cfg.timeout_ms = 600000; /* no wall-clock limit can race a test here */
    cr_assert_eq(script_engine_create(&cfg, &eng), 0);
    fake_init(&host);
}

static void teardown(void)
{
    script_engine_destroy(eng);
    fake_free(&host);
}

TestSuite(script_sandbox, .init = setup, .fini = teardown);

/* Run SRC expecting OUTCOME; the message must contain NEEDLE (if any). */
static void expect(const char *src, int outcome, const char *needle)
{
    script_result res;
    int rc = fake_run(eng, &host, src, &res);
    cr_assert_eq(rc, outcome, "%s => %s (%s)", src, script_outcome_name(rc), res.message);
    if (needle)
        cr_assert(strstr(res.message, needle), "%s\n-> message '%s' lacks '%s'", src, res.message,
                  needle);
    script_result_free(&res);
}

/* Run SRC expecting success with body BODY. */
static void expect_body(const char *src, const char *body)
{
    script_result res;
    int rc = fake_run(eng, &host, src, &res);
    cr_assert_eq(rc, SCRIPT_OK, "%s\n-> %s", src, res.message);
    cr_assert_str_eq(res.body, body, "%s => '%s'", src, res.body);
    script_result_free(&res);
}

Test(script_sandbox, os_execute_is_absent)
{
    expect("os.execute('touch /tmp/rcscript-pwned')", SCRIPT_ERUNTIME, "execute");
    expect("os.exit(1)", SCRIPT_ERUNTIME, "exit");
    expect("os.remove('/etc/passwd')", SCRIPT_ERUNTIME, "remove");
    expect("os.getenv('HOME')", SCRIPT_ERUNTIME, "getenv");
    expect_body("kv.say(type(os.time()), type(os.date('%Y')), type(os.clock()))",
                "numberstringnumber");
}

Test(script_sandbox, io_is_absent)
{
    expect("io.open('/etc/passwd')", SCRIPT_ERUNTIME, "io");
    expect_body("kv.say(type(io))", "nil");
}

Test(script_sandbox, require_dofile_loadfile_are_absent)
{
    expect("require('os')", SCRIPT_ERUNTIME, "require");
    expect("dofile('/etc/passwd')", SCRIPT_ERUNTIME, "dofile");
    expect("loadfile('/etc/passwd')", SCRIPT_ERUNTIME, "loadfile");
    expect_body("kv.say(type(package), type(debug), type(warn), type(loadstring))", "nilnilnilnil");
}

Test(script_sandbox, binary_chunks_cannot_be_loaded)
{
    /* string.dump is gone from the library and from the string metatable */
    expect_body("kv.say(type(string.dump), type(('').dump))", "nilnil");
    /* a binary chunk built by hand is refused, whatever the mode asked */
    expect_body("local f, err = load('\\27LuaT\\0\\25\\147\\13\\10\\26\\10') kv.say(f == nil, "
                "' ', err:find('binary') ~= nil)",
                "true true");
    expect("load('return 1', 'x', 'b')", SCRIPT_ERUNTIME, "text");
    expect_body("local f = load(function() return nil end) kv.say(type(f))", "function");
}

Test(script_sandbox, load_gets_the_run_environment)
{
    expect_body("kv.say(load('return kv ~= nil and os.execute == nil')())", "true");
    expect_body("x = 41 kv.say(load('return x + 1')())", "42");
    expect_body("kv.say(load('return y', 'c', 't', {y = 7})())", "7");
}

Test(script_sandbox, debug_library_is_absent)
{
    expect("debug.sethook()", SCRIPT_ERUNTIME, "debug");
    expect("debug.getregistry()", SCRIPT_ERUNTIME, "debug");
}

Test(script_sandbox, collectgarbage_options_are_limited)
{
    expect_body("kv.say(type(collectgarbage('count')))", "number");
    expect_body("collectgarbage() collectgarbage('step') kv.say('ok')", "ok");
    expect("collectgarbage('stop')", SCRIPT_ERUNTIME, "not allowed");
    expect("collectgarbage('incremental', 1000)", SCRIPT_ERUNTIME, "not allowed");
    expect("collectgarbage('generational')", SCRIPT_ERUNTIME, "not allowed");
}

Test(script_sandbox, string_metatable_is_locked)
{
    expect_body("kv.say(tostring(getmetatable('')))", "false");
    expect("getmetatable('').__index.upper = nil", SCRIPT_ERUNTIME, NULL);
    expect("setmetatable('', {})", SCRIPT_ERUNTIME, NULL);
    expect_body("kv.say(('abc'):upper())", "ABC");
}

Test(script_sandbox, kv_and_scope_metatables_are_locked)
{
    expect_body("kv.say(getmetatable(kv), getmetatable(kv.scope))", "lockedlocked");
    expect("setmetatable(kv, {})", SCRIPT_ERUNTIME, NULL);
    expect("setmetatable(kv.scope, {})", SCRIPT_ERUNTIME, NULL);
    expect("rawset(kv, 'get', print)", SCRIPT_ERUNTIME, "table expected");
    expect("rawset(kv.scope, 'prefix', '')", SCRIPT_ERUNTIME, "table expected");
    expect("kv.scope = {prefix = '', permissions = {'admin'}}", SCRIPT_ERUNTIME, "read-only");
    expect("kv.get = function() end", SCRIPT_ERUNTIME, "read-only");
}

Test(script_sandbox, gc_metamethods_are_refused)
{
    expect("setmetatable({}, {__gc = function() end})", SCRIPT_ERUNTIME, "__gc");
    /* __gc added after setmetatable never marks the table for finalization */
    expect_body("local mt = {} local t = setmetatable({}, mt) mt.__gc = function() kv.say('x') "
                "end t = nil collectgarbage() kv.say('ok')",
                "ok");
}

Test(script_sandbox, globals_do_not_survive_a_run)
{
    expect_body("leak = 'secret' _G.other = 1 kv.say('set')", "set");
    expect_body("kv.say(tostring(leak), tostring(other))", "nilnil");
}

Test(script_sandbox, library_changes_do_not_survive_a_run)
{
    expect_body("string.upper = function() return 'pwned' end math.floor = nil "
                "table.insert = error kv.say(string.upper('a'))",
                "pwned");
    expect_body("local t = {} table.insert(t, 1) kv.say(string.upper('a'), math.floor(2.5), #t)",
                "A21");
}

Test(script_sandbox, library_tables_still_iterate)
{
    expect_body("local n = 0 for k, v in pairs(math) do n = n + 1 end kv.say(n > 20)", "true");
    expect_body("string.extra = 1 local seen = false for k in pairs(string) do "
                "if k == 'extra' then seen = true end end kv.say(seen)",
                "true");
}

Test(script_sandbox, print_writes_to_the_body)
{
    expect_body("print('a', 1, nil)", "a\t1\tnil\n");
}

Test(script_sandbox, coroutines_work)
{
    expect_body("local co = coroutine.create(function(a) local b = coroutine.yield(a + 1) "
                "return b * 2 end) local _, x = coroutine.resume(co, 1) local _, y = "
                "coroutine.resume(co, 10) kv.say(x, ' ', y, ' ', coroutine.status(co))",
                "2 20 dead");
    expect_body("local gen = coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i) end "
                "end) kv.say(gen(), gen(), gen())",
                "123");
    expect_body("local ok, err = pcall(coroutine.wrap(function() error('boom') end)) "
                "kv.say(ok, ' ', err:find('boom') ~= nil)",
                "false true");
    expect_body("local co = coroutine.create(function() coroutine.yield() end) "
                "coroutine.resume(co) kv.say(coroutine.close(co))",
                "true");
    expect_body("local ok, v = pcall(function() return coroutine.wrap(function() "
                "coroutine.yield(5) end)() end) kv.say(ok, v)",
                "true5");
}

Test(script_sandbox, pcall_and_error_objects_behave_like_lua)
{
    expect_body("local ok, e = pcall(error, {code = 7}) kv.say(ok, e.code)", "false7");
    expect_body("kv.say(select('#', pcall(function() return 1, 2, 3 end)))", "4");
    expect_body("kv.say(xpcall(function() error('x') end, function(m) return 'handled' end))",
                "falsehandled");
    expect("error({})", SCRIPT_ERUNTIME, "table value");
    expect("error(setmetatable({}, {__tostring = function() while true do end end}))",
           SCRIPT_ERUNTIME, "table value");
}

Test(script_sandbox, compile_errors_name_the_line)
{
    expect("local x = 1\nlocal y = = 2", SCRIPT_ECOMPILE, "test:2:");
    char msg[256];
    cr_assert_eq(script_compile(eng, "x = (", 5, "hello", msg, sizeof msg), SCRIPT_ECOMPILE);
    cr_assert(strstr(msg, "hello:1:"), "%s", msg);
    cr_assert_eq(script_compile(eng, "return 1", 8, "ok", msg, sizeof msg), SCRIPT_OK);
    cr_assert_str_eq(msg, "");
    const char bin[] = "\x1bLuaT";
    cr_assert_eq(script_compile(eng, bin, sizeof bin - 1, "bin", msg, sizeof msg), SCRIPT_ECOMPILE);
}

Test(script_sandbox, runtime_errors_carry_the_line)
{
    expect("local a = 1\nerror('boom')", SCRIPT_ERUNTIME, "test:2: boom");
    expect("local t = nil\nreturn t.x", SCRIPT_ERUNTIME, "test:2:");
}

Test(script_sandbox, many_runs_keep_the_state_small)
{
    for (int i = 0; i < 300; i++) {
        script_result res;
        cr_assert_eq(fake_run(eng, &host,
                              "local t = {} for i = 1, 2000 do t[i] = tostring(i) .. 'x' end "
                              "kv.say(#t)",
                              &res),
                     SCRIPT_OK);
        cr_assert_str_eq(res.body, "2000");
        cr_assert_lt(res.memory_peak, 2u << 20);
        script_result_free(&res);
    }
}

typedef struct thread_job {
    script_engine *eng;
    int id;
    int ok;
} thread_job;

static void *thread_main(void *p)
{
    thread_job *job = p;
    fake_host local;
    fake_init(&local);
    for (int i = 0; i < 200; i++) {
        char src[128];
        snprintf(src, sizeof src, "leak = leak or %d kv.say(leak, ' ', kv.incr('n'))", job->id);
        script_result res;
        int rc = fake_run(job->eng, &local, src, &res);
        char want[64];
        snprintf(want, sizeof want, "%d %d", job->id, i + 1);
        if (rc == SCRIPT_OK && strcmp(res.body, want) == 0)
            job->ok++;
        else if (job->ok == i)
            fprintf(stderr, "thread %d run %d: %s '%s' (%s)\n", job->id, i, script_outcome_name(rc),
                    rc == SCRIPT_OK ? res.body : "", res.message);
        script_result_free(&res);
    }
    fake_free(&local);
    return NULL;
}

Test(script_sandbox, threads_run_on_their_own_states)
{
    pthread_t t[4];
    thread_job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (thread_job){eng, i + 1, 0};
        cr_assert_eq(pthread_create(&t[i], NULL, thread_main, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(jobs[i].ok, 200, "thread %d: %d of 200 runs right", i, jobs[i].ok);
    }
}

Test(script_sandbox, a_fresh_state_per_run_behaves_the_same)
{
    script_engine_destroy(eng);
    script_config cfg;
    script_config_default(&cfg);
    cfg.state_max_runs = 1;
    cfg.timeout_ms = 600000;
    cr_assert_eq(script_engine_create(&cfg, &eng), 0);
    expect_body("x = 1 kv.say(kv.incr('c'))", "1");
    expect_body("kv.say(tostring(x), kv.incr('c'))", "nil2");
    expect("while true do end", SCRIPT_EINSTRUCTIONS, "instruction limit");
    expect_body("kv.say(('abc'):upper())", "ABC");
}

Test(script_sandbox, large_output_is_fine_under_the_cap)
{
    script_result res;
    cr_assert_eq(fake_run(eng, &host, "local s = string.rep('x', 1 << 20) kv.say(s, s)", &res),
                 SCRIPT_OK, "%s", res.message);
    cr_assert_eq(res.body_len, 2u << 20);
    script_result_free(&res);
}
