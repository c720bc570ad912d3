/*
 * test_script_pattern.c — the sandbox's step-counting pattern functions
 * answer exactly what the stock string library answers (differential test
 * over a corpus), and a backtracking bomb hits the limits instead of
 * pinning the thread.
 */
#include <criterion/criterion.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lualib.h>

#include "script_fake_host.h"
#include "script_internal.h"

/* Compare string.X with P.X for every case; returns "" or the mismatches. */
static const char *differential =
    "local function ser(...)\n"
    "  local n = select('#', ...) local out = {}\n"
    "  for i = 1, n do local v = select(i, ...) out[#out + 1] = type(v) .. ':' .. tostring(v) end\n"
    "  return table.concat(out, ',')\n"
    "end\n"
    "local function run(f, ...) local r = table.pack(pcall(f, ...))\n"
    "  if not r[1] then return 'error' end return ser(table.unpack(r, 2, r.n)) end\n"
    "local subjects = {'', 'hello world', 'hello  world from Lua', 'aaa', 'abcabcabc',\n"
    "  'THE (quick) [brown] fox', 'key=val; k2=v2', '  trim me  ', 'x=1, y=22, z=333',\n"
    "  'f(a(b)c)d', 'THE (quick) fox', 'caf\\195\\169', 'a\\0b\\0c', '123abc456', 'aXbXc',\n"
    "  'one two  three', '$100 and 50%', 'a.b.c', '[x]', 'aaaaaaaaab'}\n"
    "local patterns = {'', 'o', 'l+', 'l*', 'l-', 'l?', '^h', 'd$', '^hello$', '.', '.-',\n"
    "  '(%w+)', '(%w+)%s*(%w+)', '%s+', '%S+', '%d+', '%D', '%a%d', '[aeiou]', '[^aeiou]+',\n"
    "  '[a-c]+', '[%a_][%w_]*', '(%w+)=(%w+)', '%b()', '%b[]', '%f[%a]%a+', '%f[%w]%w+',\n"
    "  '()a()', '(a)(b)?', '((a)(b))', '(%a+) (%1)', '(.)%1', 'X', '%.', '%%', '%$%d+',\n"
    "  '[%.]', '[]]', '[^]]', '[a-]', '[-a]', '^(%s*)(.-)(%s*)$', 'a-b', 'a*b', 'a+$',\n"
    "  '[%w%.]+', '%x+', '%u%l+', '%p', '%c', '\\0', '[\\0-\\31]', '(', '%', '[a', '%b',\n"
    "  '%f', '(()', '%1', 'a)', '%g+', '.-$', '^.-', '(h)(e)(l)(l)(o)'}\n"
    "local bad = {}\n"
    "for _, s in ipairs(subjects) do\n"
    "  for _, p in ipairs(patterns) do\n"
    "    for _, init in ipairs({1, 2, -3, 0, 100}) do\n"
    "      for _, fn in ipairs({'find', 'match'}) do\n"
    "        local a, b = run(string[fn], s, p, init), run(P[fn], s, p, init)\n"
    "        if a ~= b then bad[#bad + 1] = fn .. '(' .. s .. ',' .. p .. ',' .. init .. ') ' .. a "
    ".. ' vs ' .. b end\n"
    "      end\n"
    "      local a, b = run(string.find, s, p, init, true), run(P.find, s, p, init, true)\n"
    "      if a ~= b then bad[#bad + 1] = 'plain(' .. s .. ',' .. p .. ') ' .. a .. ' vs ' .. b "
    "end\n"
    "      local function all(g) local ok, r = pcall(function() local t = {}\n"
    "        for a, b in g(s, p, init) do t[#t + 1] = ser(a, b) if #t > 100 then break end end\n"
    "        return table.concat(t, '|') end) return ok and r or 'error' end\n"
    "      local a, b = all(string.gmatch), all(P.gmatch)\n"
    "      if a ~= b then bad[#bad + 1] = 'gmatch(' .. s .. ',' .. p .. ',' .. init .. ') ' .. a "
    ".. ' vs ' .. b end\n"
    "    end\n"
    "    for _, r in ipairs({'<%0>', '%1-%1', '%%', '', 'x', '%2', '%z'}) do\n"
    "      for _, n in ipairs({nil, 1, 0}) do\n"
    "        local a, b = run(string.gsub, s, p, r, n), run(P.gsub, s, p, r, n)\n"
    "        if a ~= b then bad[#bad + 1] = 'gsub(' .. s .. ',' .. p .. ',' .. r .. ') ' .. a .. ' "
    "vs ' .. b end\n"
    "      end\n"
    "    end\n"
    "    local repl_t = {hello = 'HI', a = false, o = 1}\n"
    "    local a, b = run(string.gsub, s, p, repl_t), run(P.gsub, s, p, repl_t)\n"
    "    if a ~= b then bad[#bad + 1] = 'gsub-t(' .. s .. ',' .. p .. ') ' .. a .. ' vs ' .. b "
    "end\n"
    "    local f = function(x, y) if x == 'l' then return nil end return '[' .. tostring(x) .. "
    "tostring(y) .. ']' end\n"
    "    local a, b = run(string.gsub, s, p, f), run(P.gsub, s, p, f)\n"
    "    if a ~= b then bad[#bad + 1] = 'gsub-f(' .. s .. ',' .. p .. ') ' .. a .. ' vs ' .. b "
    "end\n"
    "  end\n"
    "end\n"
    "return #bad .. ' mismatches\\n' .. table.concat(bad, '\\n', 1, math.min(#bad, 15))\n";

Test(script_pattern, matches_the_stock_library)
{
    lua_State *L = luaL_newstate();
    *(void **)lua_getextraspace(L) = NULL; /* no run: steps are not charged */
    luaL_openlibs(L);
    lua_newtable(L);
    pattern_install(L, -1);
    lua_setglobal(L, "P");
    int rc = luaL_dostring(L, differential);
    cr_assert_eq(rc, LUA_OK, "%s", lua_tostring(L, -1));
    const char *out = lua_tostring(L, -1);
    cr_assert(strncmp(out, "0 mismatches", 12) == 0, "%s", out);
    lua_close(L);
}

static script_engine *eng;
static fake_host host;

static void setup(void)
{
    script_config cfg;
    script_config_default(&cfg);
    cfg.instructions = 5000000;
    cfg.timeout_ms = 2000; /* either limit may stop a bomb first: both are correct */
    cr_assert_eq(script_engine_create(&cfg, &eng), 0);
    fake_init(&host);
}

static void teardown(void)
{
    script_engine_destroy(eng);
    fake_free(&host);
}

static void expect_stopped(const char *src)
{
    /* a matcher that charged nothing would run for ages inside one C call:
     * the test's timeout catches that; elapsed time is not asserted */
    script_result res;
    int rc = fake_run(eng, &host, src, &res);
    cr_assert(rc == SCRIPT_EINSTRUCTIONS || rc == SCRIPT_ETIMEOUT, "%s => %s (%s)", src,
              script_outcome_name(rc), res.message);
    script_result_free(&res);
    rc = fake_run(eng, &host, "kv.say(('abc'):find('b'))", &res);
    cr_assert_eq(rc, SCRIPT_OK);
    cr_assert_str_eq(res.body, "22");
    script_result_free(&res);
}

Test(script_pattern, backtracking_bombs_hit_the_limits, .init = setup, .fini = teardown)
{
    expect_stopped("local s = string.rep('a', 100000) string.find(s, '.-.-.-.-b')");
    expect_stopped("local s = string.rep('a', 100000) s:match('(.*)(.*)(.*)x')");
    expect_stopped("local s = string.rep('a', 100000) while true do "
                   "pcall(string.find, s, '.-.-.-.-b') end");
    expect_stopped("local s = string.rep('a', 100000) for w in s:gmatch('a-a-a-a-b') do end");
    expect_stopped("local s = string.rep('a', 100000) s:gsub('.-.-.-b', 'x')");
    expect_stopped("local s = string.rep('(', 200000) s:find('%b()')  s:find('%b()', 2) "
                   "for i = 1, 1e9 do s:find('%b()', i) end");
}

Test(script_pattern, scripts_use_the_counting_matcher, .init = setup, .fini = teardown)
{
    script_result res;
    cr_assert_eq(fake_run(eng, &host,
                          "local s = ('x=1, y=22'):gsub('(%w+)=(%w+)', '%2=%1') "
                          "kv.say(s, ' ', select(2, string.find('hello', 'l+')))",
                          &res),
                 SCRIPT_OK, "%s", res.message);
    cr_assert_str_eq(res.body, "1=x, 22=y 4");
    script_result_free(&res);
}
