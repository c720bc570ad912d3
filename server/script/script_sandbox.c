/*
 * script_sandbox.c — the Lua state a script runs in, and the limits on it.
 *
 * Design. A state is built once per thread with only the safe standard
 * libraries opened (base, coroutine, table, string, math, utf8, os); io,
 * debug and package are never loaded, so nothing in the state can reach them.
 * From those libraries a template of globals is kept in the registry; each
 * run gets a fresh global table copied from it (about 30 slots), and for
 * each library table (string, table, math, utf8, coroutine, os) an empty
 * per-run proxy whose metatable reads through to a shared copy that no
 * script can reach (__metatable hides it): a run that assigns string.format
 * or math.floor writes into its own proxy, which vanishes with it; pairs()
 * on a proxy iterates a merged snapshot. (rawget(string, "format") is nil:
 * the one visible difference from stock Lua.) The string metatable, the one
 * object every run shares, is locked (__metatable) and string.dump is
 * removed from it, since ("").dump would otherwise reach it.
 *
 * Limits. The allocator charges every byte to the slot's account and
 * refuses growth past the run's cap, which Lua turns into a memory error.
 * A count hook fires every hook_every instructions on every thread (new
 * coroutines inherit the hook) and checks the instruction budget and the
 * deadline. Once a limit is hit it is sticky: the hook re-arms itself to
 * fire on every instruction of the current and the main thread, and the
 * sandbox's own pcall, xpcall, coroutine.resume/wrap/close and load re-raise
 * instead of catching, so `while true do pcall(f) end` still stops. A memory
 * error caught by one of those is recorded as the memory limit for the same
 * reason. Finalizers (__gc) are refused by setmetatable: they would run at a
 * collection after the run, outside its limits.
 *
 * Trade-off: proxies instead of copies of the libraries cut the cost of a
 * fresh environment from ~10 us to ~2 us per run (docs/SCRIPTS.md).
 *
 * The hook only fires between VM instructions, so a call into C runs to its
 * end: every such call is bounded by the memory cap, except backtracking in
 * Lua patterns, which is why find/match/gmatch/gsub are replaced (in the
 * shared string table too, for the ("").find form) by the step-counting
 * matcher of script_pattern.c, and the loops of string.rep and the table
 * library, replaced by script_bounded.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lualib.h>

#include "script_internal.h"

static const char template_key = 'T';

uint64_t sandbox_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

script_run_ctx *sandbox_run(lua_State *L)
{
    script_slot *slot = *(script_slot **)lua_getextraspace(L);
    return slot ? slot->run : NULL;
}

/* ------------------------------------------------------------- allocator */

static void *sandbox_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    mem_account *mem = ud;
    size_t old = ptr ? osize : 0; /* with ptr NULL, osize is a type tag */
    if (nsize == 0) {
        free(ptr);
        mem->used -= old;
        return NULL;
    }
    if (nsize > old) {
        size_t grow = nsize - old;
        if (mem->used > mem->cap || grow > mem->cap - mem->used)
            return NULL; /* Lua collects and retries once, then raises */
    }
    void *p = realloc(ptr, nsize);
    if (!p)
        return NULL;
    mem->used = mem->used - old + nsize;
    if (mem->used > mem->peak)
        mem->peak = mem->used;
    return p;
}

bool sandbox_charge(script_run_ctx *run, size_t n)
{
    mem_account *mem = &run->slot->mem;
    if (mem->used > mem->cap || n > mem->cap - mem->used) {
        if (run->limit == LIMIT_NONE)
            run->limit = LIMIT_MEMORY;
        return false;
    }
    mem->used += n;
    if (mem->used > mem->peak)
        mem->peak = mem->used;
    return true;
}

void sandbox_uncharge(script_run_ctx *run, size_t n)
{
    run->slot->mem.used -= n;
}

static int sandbox_panic(lua_State *L)
{
    const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?";
    fprintf(stderr, "rcscript: unprotected Lua error: %s\n", msg);
    abort();
}

/* ------------------------------------------------------------------ hooks */

static const char *limit_message(script_limit limit)
{
    switch (limit) {
    case LIMIT_INSTRUCTIONS:
        return "instruction limit exceeded";
    case LIMIT_MEMORY:
        return "memory limit exceeded";
    case LIMIT_TIME:
        return "time limit exceeded";
    default:
        return "limit exceeded";
    }
}

static void sandbox_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    script_run_ctx *run = sandbox_run(L);
    if (!run)
        return;
    if (run->limit == LIMIT_NONE) {
        run->instructions += run->cfg->hook_every;
        if (run->instructions >= run->cfg->instructions)
            run->limit = LIMIT_INSTRUCTIONS;
        else if (sandbox_now_ns() >= run->deadline_ns)
            run->limit = LIMIT_TIME;
        else
            return;
    }
    sandbox_flag_limit(run, L, run->limit);
    luaL_error(L, "%s", limit_message(run->limit));
}

void sandbox_charge_steps(lua_State *L, uint64_t steps)
{
    script_run_ctx *run = sandbox_run(L);
    if (!run)
        return;
    if (run->limit == LIMIT_NONE) {
        run->instructions += steps;
        if (run->instructions >= run->cfg->instructions)
            run->limit = LIMIT_INSTRUCTIONS;
        else if (sandbox_now_ns() >= run->deadline_ns)
            run->limit = LIMIT_TIME;
        else
            return;
    }
    sandbox_flag_limit(run, L, run->limit);
    luaL_error(L, "%s", limit_message(run->limit));
}

void sandbox_hooks_on(lua_State *L, const script_config *cfg)
{
    lua_sethook(L, sandbox_hook, LUA_MASKCOUNT, (int)cfg->hook_every);
}

void sandbox_hooks_off(lua_State *L)
{
    lua_sethook(L, NULL, 0, 0);
}

void sandbox_flag_limit(script_run_ctx *run, lua_State *L, script_limit limit)
{
    if (run->limit == LIMIT_NONE)
        run->limit = limit;
    lua_sethook(L, sandbox_hook, LUA_MASKCOUNT, 1);
    if (L != run->main)
        lua_sethook(run->main, sandbox_hook, LUA_MASKCOUNT, 1);
}

bool sandbox_must_propagate(lua_State *L, int status)
{
    script_run_ctx *run = sandbox_run(L);
    if (!run)
        return false;
    if (status == LUA_ERRMEM && run->limit == LIMIT_NONE)
        sandbox_flag_limit(run, L, LIMIT_MEMORY);
    return run->limit != LIMIT_NONE;
}

/* ------------------------------------------------------------- the state */

static void open_lib(lua_State *L, const char *name, lua_CFunction open)
{
    luaL_requiref(L, name, open, 0);
    lua_pop(L, 1);
}

/* Copy field NAME of the table at SRC into the table at DST, optionally
 * wrapped in WRAP with the original as upvalue 1. */
static void copy_field(lua_State *L, int src, int dst, const char *name, lua_CFunction wrap)
{
    src = lua_absindex(L, src);
    dst = lua_absindex(L, dst);
    lua_getfield(L, src, name);
    if (wrap)
        lua_pushcclosure(L, wrap, 1);
    lua_setfield(L, dst, name);
}

static void copy_table(lua_State *L, int src)
{
    src = lua_absindex(L, src);
    int count = 0;
    lua_pushnil(L);
    while (lua_next(L, src)) {
        lua_pop(L, 1);
        count++;
    }
    lua_createtable(L, 0, count);
    lua_pushnil(L);
    while (lua_next(L, src)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, -4);
    }
}

/* pairs() over a library proxy: a snapshot of the shared table overlaid
 * with what the run assigned into the proxy. */
static int proxy_pairs(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_pushvalue(L, lua_upvalueindex(2));
    copy_table(L, lua_upvalueindex(1));
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, -4);
    }
    lua_pushnil(L);
    return 3;
}

/* Replace the library table on top with the metatable of its per-run
 * proxies: reads fall through to the (never exposed) shared table, writes
 * stay in the run's proxy. */
static void make_proxy_meta(lua_State *L)
{
    int lib = lua_gettop(L);
    lua_createtable(L, 0, 3);
    lua_pushvalue(L, lib);
    lua_setfield(L, -2, "__index");
    lua_pushvalue(L, lib);
    lua_getglobal(L, "next");
    lua_pushcclosure(L, proxy_pairs, 2);
    lua_setfield(L, -2, "__pairs");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_replace(L, lib);
}

static int build_template(lua_State *L)
{
    static const char *const base_names[] = {
        "assert", "error",  "getmetatable", "ipairs",   "next",     "pairs", "rawequal", "rawget",
        "rawlen", "rawset", "select",       "tonumber", "tostring", "type",  "_VERSION", NULL,
    };
    open_lib(L, LUA_GNAME, luaopen_base);
    open_lib(L, LUA_COLIBNAME, luaopen_coroutine);
    open_lib(L, LUA_TABLIBNAME, luaopen_table);
    open_lib(L, LUA_STRLIBNAME, luaopen_string);
    open_lib(L, LUA_MATHLIBNAME, luaopen_math);
    open_lib(L, LUA_UTF8LIBNAME, luaopen_utf8);
    open_lib(L, LUA_OSLIBNAME, luaopen_os);

    /* the real string table is what ("").x reaches: no dump, locked */
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    int loaded = lua_gettop(L);
    lua_getfield(L, loaded, LUA_STRLIBNAME);
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    pattern_install(L, -1); /* step-counting find/match/gmatch/gsub */
    lua_pop(L, 1);
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);

    lua_newtable(L);
    int tpl = lua_gettop(L);
    lua_pushglobaltable(L);
    int g = lua_gettop(L);
    for (int i = 0; base_names[i]; i++)
        copy_field(L, g, tpl, base_names[i], NULL);
    lua_pushcfunction(L, sandbox_pcall);
    lua_setfield(L, tpl, "pcall");
    lua_pushcfunction(L, sandbox_xpcall);
    lua_setfield(L, tpl, "xpcall");
    lua_pushcfunction(L, sandbox_print);
    lua_setfield(L, tpl, "print");
    copy_field(L, g, tpl, "collectgarbage", sandbox_collectgarbage);
    copy_field(L, g, tpl, "setmetatable", sandbox_setmetatable);
    /* load is added per run: it needs the run's environment */

    lua_getfield(L, loaded, LUA_STRLIBNAME);
    lua_getfield(L, loaded, LUA_TABLIBNAME);
    bounded_install(L, -2, -1); /* step-charging rep, insert, remove, move, concat, sort */
    lua_pop(L, 2);

    static const char *const libs[] = {LUA_STRLIBNAME, LUA_TABLIBNAME, LUA_MATHLIBNAME,
                                       LUA_UTF8LIBNAME, NULL};
    for (int i = 0; libs[i]; i++) {
        lua_getfield(L, loaded, libs[i]);
        copy_table(L, -1);
        make_proxy_meta(L);
        lua_setfield(L, tpl, libs[i]);
        lua_pop(L, 1);
    }

    lua_getfield(L, loaded, LUA_COLIBNAME);
    copy_table(L, -1);
    lua_pushcfunction(L, sandbox_resume);
    lua_setfield(L, -2, "resume");
    lua_pushcfunction(L, sandbox_wrap);
    lua_setfield(L, -2, "wrap");
    copy_field(L, -2, -1, "close", sandbox_coclose);
    make_proxy_meta(L);
    lua_setfield(L, tpl, LUA_COLIBNAME);
    lua_pop(L, 1);

    lua_getfield(L, loaded, LUA_OSLIBNAME);
    int os = lua_gettop(L);
    lua_newtable(L);
    copy_field(L, os, os + 1, "time", NULL);
    copy_field(L, os, os + 1, "date", NULL);
    copy_field(L, os, os + 1, "clock", NULL);
    make_proxy_meta(L);
    lua_setfield(L, tpl, LUA_OSLIBNAME);
    lua_pop(L, 1);

    /* the state's own globals keep nothing a stray reference could use */
    static const char *const unsafe[] = {"dofile", "loadfile", "load", "require",
                                         "print",  "warn",     "os",   NULL};
    for (int i = 0; unsafe[i]; i++) {
        lua_pushnil(L);
        lua_setfield(L, g, unsafe[i]);
    }
    lua_settop(L, tpl);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &template_key);
    api_state_init(L);
    return 0;
}

lua_State *sandbox_state_new(script_slot *slot)
{
    slot->mem.used = 0;
    slot->mem.peak = 0;
    slot->mem.cap = SIZE_MAX;
    lua_State *L = lua_newstate(sandbox_alloc, &slot->mem);
    if (!L)
        return NULL;
    *(script_slot **)lua_getextraspace(L) = slot;
    lua_atpanic(L, sandbox_panic);
    lua_pushcfunction(L, build_template);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
        lua_close(L);
        return NULL;
    }
    lua_gc(L, LUA_GCCOLLECT);
    if (getenv("RCS_GEN"))
        lua_gc(L, LUA_GCGEN, 0, 0);
    return L;
}

void sandbox_push_env(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &template_key);
    int tpl = lua_gettop(L);
    lua_createtable(L, 0, 40);
    int env = tpl + 1;
    lua_pushnil(L);
    while (lua_next(L, tpl)) {
        if (lua_type(L, -1) == LUA_TTABLE) { /* a library: its proxy's metatable */
            lua_createtable(L, 0, 0);
            lua_insert(L, -2);
            lua_setmetatable(L, -2);
        }
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, env);
    }
    lua_pushvalue(L, env);
    lua_setfield(L, env, "_G");
    lua_pushvalue(L, env);
    lua_pushcclosure(L, sandbox_load, 1);
    lua_setfield(L, env, "load");
    lua_remove(L, tpl);
}
