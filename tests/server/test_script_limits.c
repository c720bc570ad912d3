/*
 * test_script_limits.c — the instruction budget, the memory cap and the
 * wall-clock cap stop every kind of runaway script, cannot be swallowed by
 * pcall, xpcall, coroutines, load or __close, leave nothing written, and leave
 * the thread's Lua state fit for the next run.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "script_fake_host.h"

static script_engine *eng;
static fake_host host;

static void make_engine(uint64_t instructions, size_t memory, uint32_t timeout_ms)
{
    script_engine_destroy(eng);
    script_config cfg;
    script_config_default(&cfg);
    cfg.instructions = instructions;
    cfg.memory_bytes = memory;
    cfg.timeout_ms = timeout_ms;
    cr_assert_eq(script_engine_create(&cfg, &eng), 0);
}

/* The wall-clock cap of every engine here except the one test of that cap:
 * ten minutes, so it can never fire before an instruction or memory limit,
 * however slow a sanitizer build on a loaded machine is (a 5 s cap once
 * fired before a 1M-instruction budget under ASan on a busy 2-core box). */
#define NO_RACE_MS 600000u

static void setup(void)
{
    eng = NULL;
    make_engine(1000000, 4u << 20, NO_RACE_MS);
    fake_init(&host);
}

static void teardown(void)
{
    script_engine_destroy(eng);
    fake_free(&host);
}

TestSuite(script_limits, .init = setup, .fini = teardown);

/* SRC must end with OUTCOME, commit nothing, and the next run must work. */
static void expect_limit(const char *src, int outcome)
{
    script_result res;
    unsigned commits = host.commits;
    int rc = fake_run(eng, &host, src, &res);
    cr_assert_eq(rc, outcome, "%s => %s (%s)", src, script_outcome_name(rc), res.message);
    cr_assert_eq(host.commits, commits, "a failed run committed");
    if (outcome != SCRIPT_OK)
        cr_assert_null(res.body);
    script_result_free(&res);
    rc = fake_run(eng, &host, "kv.say('alive')", &res);
    cr_assert_eq(rc, SCRIPT_OK, "the state is broken after: %s (%s)", src, res.message);
    cr_assert_str_eq(res.body, "alive");
    script_result_free(&res);
}

/* SRC must succeed and say exactly OUT. */
static void expect_output(const char *src, const char *out)
{
    script_result res;
    int rc = fake_run(eng, &host, src, &res);
    cr_assert_eq(rc, SCRIPT_OK, "%s => %s (%s)", src, script_outcome_name(rc), res.message);
    cr_assert_str_eq(res.body, out, "%s", src);
    script_result_free(&res);
}

Test(script_limits, infinite_loop_hits_the_instruction_budget)
{
    expect_limit("while true do end", SCRIPT_EINSTRUCTIONS);
    expect_limit("local i = 0 repeat i = i + 1 until false", SCRIPT_EINSTRUCTIONS);
    expect_limit("::top:: goto top", SCRIPT_EINSTRUCTIONS);
}

Test(script_limits, limit_message_names_the_limit)
{
    script_result res;
    cr_assert_eq(fake_run(eng, &host, "while true do end", &res), SCRIPT_EINSTRUCTIONS);
    cr_assert(strstr(res.message, "instruction limit"), "%s", res.message);
    cr_assert_geq(res.instructions, 1000000);
    script_result_free(&res);
}

Test(script_limits, pcall_cannot_swallow_a_limit)
{
    expect_limit("while true do pcall(function() while true do end end) end", SCRIPT_EINSTRUCTIONS);
    expect_limit("while true do pcall(pcall, pcall, function() while true do end end) end",
                 SCRIPT_EINSTRUCTIONS);
    expect_limit("for i = 1, 1e9 do pcall(error, 'x') end", SCRIPT_EINSTRUCTIONS);
}

Test(script_limits, xpcall_handlers_cannot_swallow_a_limit)
{
    expect_limit("while true do xpcall(function() while true do end end, "
                 "function() while true do end end) end",
                 SCRIPT_EINSTRUCTIONS);
    expect_limit("while true do xpcall(function() while true do end end, "
                 "function(m) return m end) end",
                 SCRIPT_EINSTRUCTIONS);
}

Test(script_limits, coroutine_loops_are_stopped)
{
    expect_limit("local co = coroutine.wrap(function() while true do end end) co()",
                 SCRIPT_EINSTRUCTIONS);
    expect_limit("while true do coroutine.resume(coroutine.create(function() "
                 "while true do end end)) end",
                 SCRIPT_EINSTRUCTIONS);
    expect_limit("local co = coroutine.create(function() while true do "
                 "pcall(function() while true do end end) end end) "
                 "while true do coroutine.resume(co) end",
                 SCRIPT_EINSTRUCTIONS);
    expect_limit("while true do pcall(coroutine.wrap(function() while true do end end)) end",
                 SCRIPT_EINSTRUCTIONS);
    expect_limit("local function spawn() return coroutine.wrap(function() "
                 "while true do coroutine.yield() end end) end while true do spawn()() end",
                 SCRIPT_EINSTRUCTIONS);
}

Test(script_limits, close_handlers_cannot_swallow_a_limit)
{
    expect_limit("while true do pcall(function() local x <close> = setmetatable({}, "
                 "{__close = function() while true do end end}) while true do end end) end",
                 SCRIPT_EINSTRUCTIONS);
}

Test(script_limits, load_cannot_swallow_a_limit)
{
    expect_limit("while true do load(function() while true do end end) end", SCRIPT_EINSTRUCTIONS);
    expect_limit("while true do load(function() return string.rep('x', 1 << 30) end) end",
                 SCRIPT_EMEMORY);
}

Test(script_limits, string_rep_bomb_hits_the_memory_cap)
{
    expect_limit("local s = string.rep('x', 1e9)", SCRIPT_EMEMORY);
    expect_limit("local s = ('x'):rep(1 << 30)", SCRIPT_EMEMORY);
    expect_limit("local s = ('x'):rep(1 << 40)", SCRIPT_ERUNTIME); /* "too large" */
    expect_limit("local s = 'x' while true do s = s .. s end", SCRIPT_EMEMORY);
    expect_limit("while true do pcall(string.rep, 'x', 1e9) end", SCRIPT_EMEMORY);
    expect_limit("local t = {} for i = 1, 1e8 do t[i] = i end", SCRIPT_EMEMORY);
    expect_limit("local t = {} for i = 1, 1e7 do t[#t + 1] = {} end", SCRIPT_EMEMORY);
}

Test(script_limits, output_counts_against_the_memory_cap)
{
    expect_limit("local s = string.rep('x', 1 << 20) for i = 1, 100 do kv.say(s) end",
                 SCRIPT_EMEMORY);
    expect_limit("local s = string.rep('x', 1 << 20) while true do pcall(kv.say, s) end",
                 SCRIPT_EMEMORY);
}

Test(script_limits, writes_count_against_the_memory_cap)
{
    make_engine(100000000, 4u << 20, NO_RACE_MS);
    expect_limit("local v = string.rep('v', 1000) for i = 1, 1e6 do kv.set('k' .. i, v .. i) end",
                 SCRIPT_EMEMORY);
    cr_assert_eq(host.n, 0);
}

Test(script_limits, json_work_counts_against_the_memory_cap)
{
    expect_limit("local s = '[' .. string.rep('0,', 400000) .. '0]' kv.json_decode(s)",
                 SCRIPT_EMEMORY);
}

Test(script_limits, deep_recursion_fails_cleanly)
{
    make_engine(100000000, 64u << 20, 10000);
    script_result res;
    int rc = fake_run(eng, &host, "local function f(n) return 1 + f(n + 1) end f(1)", &res);
    cr_assert(rc == SCRIPT_ERUNTIME || rc == SCRIPT_EMEMORY, "%s", res.message);
    script_result_free(&res);
    rc = fake_run(eng, &host,
                  "local function f(n) return 1 + f(n + 1) end local ok, e = pcall(f, 1) "
                  "kv.say(ok)",
                  &res);
    cr_assert(rc == SCRIPT_OK || rc == SCRIPT_EMEMORY, "%s", res.message);
    script_result_free(&res);
    /* C-level recursion: metamethods calling themselves */
    rc = fake_run(eng, &host,
                  "local t = setmetatable({}, {}) getmetatable(t).__index = function(t, k) "
                  "return t[k] end return t.x",
                  &res);
    cr_assert(rc == SCRIPT_ERUNTIME || rc == SCRIPT_EMEMORY, "%s", res.message);
    script_result_free(&res);
    rc = fake_run(eng, &host,
                  "local s = string.rep('(', 100000) .. string.rep(')', 100000) "
                  "kv.say(load('return ' .. s))",
                  &res);
    cr_assert_eq(rc, SCRIPT_OK, "%s", res.message);
    script_result_free(&res);
    expect_limit("kv.say('x')", SCRIPT_OK);
}

/* The instruction budget is out of reach, so only the wall clock can stop
 * these loops: the test ends (well within its own timeout) only if the cap
 * works, and the run cannot have ended before the cap's 100 ms. No upper
 * bound on the time: that would measure the machine, not the cap. */
Test(script_limits, wall_clock_cap_stops_a_run, .timeout = 600)
{
    make_engine(UINT64_MAX / 2, 4u << 20, 100);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    expect_limit("while true do end", SCRIPT_ETIMEOUT);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
    cr_assert_geq(ms, 100, "stopped after %.0f ms, before the 100 ms cap", ms);
    expect_limit("while true do pcall(function() while true do end end) end", SCRIPT_ETIMEOUT);
}

Test(script_limits, limits_are_configurable)
{
    const char *loop = "local n = 0 for i = 1, 100000 do n = n + i end kv.say(n)";
    make_engine(10000, 4u << 20, NO_RACE_MS);
    expect_limit(loop, SCRIPT_EINSTRUCTIONS);
    make_engine(10000000, 4u << 20, NO_RACE_MS);
    expect_limit(loop, SCRIPT_OK);

    const char *alloc = "local s = string.rep('x', 2 << 20) kv.say(#s)";
    make_engine(1000000, 1u << 20, NO_RACE_MS);
    expect_limit(alloc, SCRIPT_EMEMORY);
    make_engine(1000000, 16u << 20, NO_RACE_MS);
    expect_limit(alloc, SCRIPT_OK);

    script_config bad;
    script_config_default(&bad);
    bad.memory_bytes = 1000;
    script_engine *e = NULL;
    cr_assert_eq(script_engine_create(&bad, &e), RC_EINVAL);
}

Test(script_limits, limits_are_per_run_not_cumulative)
{
    make_engine(200000, 4u << 20, NO_RACE_MS);
    for (int i = 0; i < 50; i++) {
        script_result res;
        int rc = fake_run(eng, &host,
                          "local t = {} for i = 1, 10000 do t[i] = i end "
                          "local s = string.rep('y', 1 << 20) kv.say(#t)",
                          &res);
        cr_assert_eq(rc, SCRIPT_OK, "run %d: %s", i, res.message);
        script_result_free(&res);
    }
}

Test(script_limits, a_limit_after_writes_writes_nothing)
{
    fake_put(&host, "a", "1", RC_TYPE_INT);
    expect_limit("kv.set('b', 'x') kv.incr('a') kv.delete('a') while true do end",
                 SCRIPT_EINSTRUCTIONS);
    cr_assert_eq(host.commits, 0);
    cr_assert_str_eq(fake_find(&host, "a")->val, "1");
    cr_assert_null(fake_find(&host, "b"));
}

Test(script_limits, unhooked_c_work_is_charged)
{
    make_engine(1000000, 16u << 20, NO_RACE_MS);
    expect_limit("local t = {} for i = 1, 100000 do t[i] = -i end table.sort(t)",
                 SCRIPT_EINSTRUCTIONS);
    expect_limit("local t = {5, 3, 9, 1} table.sort(t) kv.say(table.concat(t, ','))", SCRIPT_OK);
    expect_limit("kv.say(load('return 1 + 1')())", SCRIPT_OK);
    make_engine(100000, 16u << 20, NO_RACE_MS);
    expect_limit("local s = string.rep('local a = 1 ', 100000) load(s)", SCRIPT_EINSTRUCTIONS);
}

/* C loops that allocate nothing are not bounded by the memory cap: they
 * must be charged, or end at once (found by fuzz_lua). */
Test(script_limits, c_loops_that_allocate_nothing_are_bounded)
{
    make_engine(1000000, 64u << 20, NO_RACE_MS);
    expect_output("kv.say(#(''):rep(1 << 30), #string.rep('', 1e15, ''), ('ab'):rep(3, ''))",
                  "00ababab");
    expect_limit("table.move({}, 1, 1e15, 2)", SCRIPT_EINSTRUCTIONS);
    expect_limit("table.move({}, 1, 1e15, 2, {})", SCRIPT_EINSTRUCTIONS);
    expect_limit("table.move({}, -1e15, 0, 1e15)", SCRIPT_EINSTRUCTIONS);
    const char *lying = "local t = setmetatable({}, {__len = function() return 1e15 end}) ";
    char src[512];
    snprintf(src, sizeof src, "%stable.insert(t, 1, 'x')", lying);
    expect_limit(src, SCRIPT_EINSTRUCTIONS);
    snprintf(src, sizeof src, "%stable.remove(t, 1)", lying);
    expect_limit(src, SCRIPT_EINSTRUCTIONS);
    expect_limit("table.concat(setmetatable({}, {__len = function() return 1e15 end, "
                 "__index = type}))",
                 SCRIPT_EINSTRUCTIONS);
    expect_limit("table.sort(setmetatable({}, {__len = function() return 1 << 30 end, "
                 "__index = rawlen, __newindex = rawequal}))",
                 SCRIPT_EINSTRUCTIONS);
    expect_limit("table.sort({3, 2, 1}, rawequal) local t = {} for i = 1, 1e6 do t[i] = i end "
                 "table.sort(t, rawequal)",
                 SCRIPT_EINSTRUCTIONS);
}

/* The replaced table functions keep the stock semantics. */
Test(script_limits, bounded_table_functions_behave_as_stock)
{
    expect_output("local t = {1, 2, 3} table.insert(t, 4) table.insert(t, 1, 0) "
                  "kv.say(table.concat(t, ','), ' ', table.remove(t), table.remove(t, 1), ' ', "
                  "table.concat(t, '-', 2, 3), ' ', #t)",
                  "0,1,2,3,4 40 2-3 3");
    expect_output("local t = table.move({1, 2, 3, 4, 5}, 1, 3, 3) kv.say(table.concat(t, ','))",
                  "1,2,1,2,3");
    expect_output("local t = table.move({1, 2, 3, 4, 5}, 3, 5, 1) kv.say(table.concat(t, ','))",
                  "3,4,5,4,5");
    expect_output("local d = table.move({1, 2}, 1, 2, 2, {9}) kv.say(table.concat(d, ','))",
                  "9,1,2");
    expect_output("local t = {5, 1, 4, 2, 3} table.sort(t) local u = {5, 1, 4, 2, 3} "
                  "table.sort(u, function(a, b) return a > b end) "
                  "kv.say(table.concat(t), table.concat(u))",
                  "1234554321");
    expect_output(
        "local ok, e = pcall(table.insert, {}, 5, 1) kv.say(ok, e:match('out of bounds'))",
        "falseout of bounds");
    expect_output("local ok, e = pcall(table.concat, {1, {}}) kv.say(ok, e:match('index 2'))",
                  "falseindex 2");
    expect_output("kv.say((pcall(table.sort, {1}, 3)), (pcall(table.sort, {1, 2}, 3)))",
                  "truefalse");
    expect_output("local ok, e = pcall(table.move, {}, 1, 2, math.maxinteger) "
                  "kv.say(e:match('wrap around'))",
                  "wrap around");
    expect_output("local ok = pcall(table.sort, {1, 'a', 2}) kv.say(ok)", "false");
}

Test(script_limits, the_request_body_does_not_count_against_the_cap)
{
    make_engine(1000000, 1u << 20, NO_RACE_MS);
    size_t n = 4u << 20;
    char *body = malloc(n);
    memset(body, 'b', n);
    script_host h = fake_vtable(&host);
    script_scope scope = {NULL, 0, SCRIPT_PERM_ALL};
    script_request req = {.method = "POST", .body = body, .body_len = n};
    const char *src = "kv.say(#kv.body)";
    script_result res;
    cr_assert_eq(script_run(eng, src, strlen(src), "t", &h, &scope, &req, &res), SCRIPT_OK, "%s",
                 res.message);
    cr_assert_str_eq(res.body, "4194304");
    script_result_free(&res);
    const char *copy = "local s = kv.body .. 'x'";
    cr_assert_eq(script_run(eng, copy, strlen(copy), "t", &h, &scope, &req, &res), SCRIPT_EMEMORY);
    script_result_free(&res);
    free(body);
}
