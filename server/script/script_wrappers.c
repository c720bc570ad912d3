/*
 * script_wrappers.c — the base and coroutine functions the sandbox replaces.
 *
 * Design. Every function that can catch an error is wrapped so that a hit
 * limit is never caught: pcall and xpcall (as lbaselib has them, with
 * continuations so coroutines can still yield across them), load (text
 * only, which also catches errors of its reader function), and
 * coroutine.resume, wrap and close. Each checks sandbox_must_propagate()
 * after a failure: once the run has hit a limit, or when the failure is a
 * memory error (recorded then as the memory limit), the error is re-raised
 * instead of returned. xpcall also skips the script's message handler once a
 * limit is hit: the limit hook raises from inside the hook, where hooks are
 * off, so a looping handler could never be stopped. The other wrappers
 * remove what a script must not reach: collectgarbage options that change
 * the collector, __gc finalizers (they would run after the run), and print to
 * stdout (it writes to the response body instead). C work the hook cannot
 * see is charged to the instruction budget up front: compiling in load (one
 * step per 8 bytes); the table library's loops are charged by
 * script_bounded.c.
 */
#include <string.h>

#include <lauxlib.h>

#include "script_internal.h"

/* ------------------------------------------------- base library wrappers */

static int pcall_finish(lua_State *L, int status, lua_KContext extra)
{
    if (status != LUA_OK && status != LUA_YIELD) {
        if (sandbox_must_propagate(L, status))
            return lua_error(L); /* the error object is on top */
        lua_pushboolean(L, 0);
        lua_pushvalue(L, -2);
        return 2;
    }
    return lua_gettop(L) - (int)extra;
}

/* pcall and xpcall as lbaselib has them, except that a limit propagates. */
int sandbox_pcall(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_pushboolean(L, 1);
    lua_insert(L, 1);
    int status = lua_pcallk(L, lua_gettop(L) - 2, LUA_MULTRET, 0, 0, pcall_finish);
    return pcall_finish(L, status, 0);
}

/* The message handler xpcall really installs. An error raised by the limit
 * hook calls the handler from inside the hook, where hooks are off, so a
 * looping handler could never be stopped: once a limit is hit the script's
 * handler is skipped and the error passes through unchanged. */
static int xpcall_handler(lua_State *L)
{
    script_run_ctx *run = sandbox_run(L);
    if (run && run->limit != LIMIT_NONE)
        return 1;
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

int sandbox_xpcall(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, xpcall_handler, 1);
    lua_replace(L, 2);
    lua_pushboolean(L, 1);
    lua_pushvalue(L, 1);
    lua_rotate(L, 3, 2);
    int status = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, pcall_finish);
    return pcall_finish(L, status, 2);
}

#define LOAD_RESERVED_SLOT 5
#define LOAD_BYTES_PER_STEP 8 /* compiling costs about one step per 8 bytes */

static const char *load_reader(lua_State *L, void *ud, size_t *size)
{
    (void)ud;
    luaL_checkstack(L, 2, "too many nested functions");
    lua_pushvalue(L, 1);
    lua_call(L, 0, 1);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        *size = 0;
        return NULL;
    }
    if (!lua_isstring(L, -1))
        luaL_error(L, "reader function must return a string");
    lua_replace(L, LOAD_RESERVED_SLOT);
    const char *piece = lua_tolstring(L, LOAD_RESERVED_SLOT, size);
    sandbox_charge_steps(L, *size / LOAD_BYTES_PER_STEP);
    return piece;
}

/* load(chunk [, name [, mode [, env]]]) of text only; without ENV the chunk
 * gets the calling run's environment (upvalue 1), never the state's globals. */
int sandbox_load(lua_State *L)
{
    size_t len;
    const char *s = lua_tolstring(L, 1, &len);
    bool has_env = !lua_isnone(L, 4);
    const char *mode = luaL_optstring(L, 3, "bt");
    if (!strchr(mode, 't'))
        return luaL_error(L, "only text chunks may be loaded");
    int status;
    if (s) {
        const char *name = luaL_optstring(L, 2, s);
        sandbox_charge_steps(L, len / LOAD_BYTES_PER_STEP); /* the parser is not hooked */
        status = luaL_loadbufferx(L, s, len, name, "t");
    } else {
        const char *name = luaL_optstring(L, 2, "=(load)");
        luaL_checktype(L, 1, LUA_TFUNCTION);
        lua_settop(L, LOAD_RESERVED_SLOT);
        status = lua_load(L, load_reader, NULL, name, "t");
    }
    if (status != LUA_OK) {
        if (sandbox_must_propagate(L, status))
            return lua_error(L);
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    if (has_env)
        lua_pushvalue(L, 4);
    else
        lua_pushvalue(L, lua_upvalueindex(1));
    if (!lua_setupvalue(L, -2, 1))
        lua_pop(L, 1);
    return 1;
}

int sandbox_collectgarbage(lua_State *L)
{
    const char *opt = luaL_optstring(L, 1, "collect");
    if (strcmp(opt, "collect") != 0 && strcmp(opt, "count") != 0 && strcmp(opt, "step") != 0 &&
        strcmp(opt, "isrunning") != 0)
        return luaL_error(L, "collectgarbage option '%s' is not allowed", opt);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

int sandbox_setmetatable(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TTABLE) {
        if (lua_getfield(L, 2, "__gc") != LUA_TNIL)
            return luaL_error(L, "__gc metamethods are not allowed in scripts");
        lua_pop(L, 1);
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* print(...) like Lua's, but into the response body. */
int sandbox_print(lua_State *L)
{
    script_run_ctx *run = sandbox_run(L);
    if (!run)
        return luaL_error(L, "print outside a run");
    int n = lua_gettop(L);
    for (int i = 1; i <= n; i++) {
        size_t len;
        const char *s = luaL_tolstring(L, i, &len);
        if (i > 1)
            api_body_append(L, run, "\t", 1);
        api_body_append(L, run, s, len);
        lua_pop(L, 1);
    }
    api_body_append(L, run, "\n", 1);
    return 0;
}

/* ---------------------------------------------------- coroutine wrappers */

static int resume_raw(lua_State *L, lua_State *co, int narg)
{
    if (!lua_checkstack(co, narg)) {
        lua_pushliteral(L, "too many arguments to resume");
        return -1;
    }
    lua_xmove(L, co, narg);
    int nres;
    int status = lua_resume(co, L, narg, &nres);
    if (status == LUA_OK || status == LUA_YIELD) {
        if (!lua_checkstack(L, nres + 1)) {
            lua_pop(co, nres);
            lua_pushliteral(L, "too many results to resume");
            return -1;
        }
        lua_xmove(co, L, nres);
        return nres;
    }
    lua_xmove(co, L, 1);
    if (sandbox_must_propagate(L, status))
        lua_error(L);
    return -1;
}

static lua_State *check_coroutine(lua_State *L, int idx)
{
    lua_State *co = lua_tothread(L, idx);
    luaL_argexpected(L, co, idx, "coroutine");
    return co;
}

int sandbox_resume(lua_State *L)
{
    lua_State *co = check_coroutine(L, 1);
    int r = resume_raw(L, co, lua_gettop(L) - 1);
    if (r < 0) {
        lua_pushboolean(L, 0);
        lua_insert(L, -2);
        return 2;
    }
    lua_pushboolean(L, 1);
    lua_insert(L, -(r + 1));
    return r + 1;
}

static int wrap_call(lua_State *L)
{
    lua_State *co = lua_tothread(L, lua_upvalueindex(1));
    int r = resume_raw(L, co, lua_gettop(L));
    if (r < 0) {
        int stat = lua_status(co);
        if (stat != LUA_OK && stat != LUA_YIELD) {
#if LUA_VERSION_RELEASE_NUM >= 50406
            lua_closethread(co, L);
#else
            lua_resetthread(co);
#endif
        }
        if (lua_type(L, -1) == LUA_TSTRING) {
            luaL_where(L, 1);
            lua_insert(L, -2);
            lua_concat(L, 2);
        }
        return lua_error(L);
    }
    return r;
}

int sandbox_wrap(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_State *co = lua_newthread(L);
    lua_pushvalue(L, 1);
    lua_xmove(L, co, 1);
    lua_pushcclosure(L, wrap_call, 1);
    return 1;
}

int sandbox_coclose(lua_State *L)
{
    lua_State *co = check_coroutine(L, 1);
    int stat = lua_status(co);
    if (stat == LUA_ERRMEM || (stat != LUA_OK && stat != LUA_YIELD && sandbox_run(L) &&
                               sandbox_run(L)->limit != LIMIT_NONE)) {
        lua_xmove(co, L, 1);
        sandbox_must_propagate(L, LUA_ERRMEM);
        return lua_error(L);
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}
