/*
 * script_api.c — the `kv` object a script sees, and kv.scope.
 *
 * Design. `kv` and `kv.scope` are full userdata, not tables: a userdata
 * cannot be rawset, its metatable is shared per state and locked
 * (__metatable), and __newindex refuses every assignment, so "replacing the
 * table" and rawset both raise and change nothing. kv's fields live in a
 * per-run table held as the userdata's user value (functions copied from a
 * per-state template, plus args, body, method and scope). kv.scope keeps no
 * state of its own: it reads and narrows the scope held by the C run context,
 * which is what every data function checks; so what a script reads from
 * kv.scope is always what is enforced.
 *
 * Output (kv.say, kv.header) is collected in C buffers charged to the run's
 * memory cap; header names must be tokens and values may not hold CR/LF, so a
 * script cannot split the response; framing headers are refused.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <lauxlib.h>

#include "script_internal.h"

static const char kv_meta_key = 'K';
static const char scope_meta_key = 'S';
static const char kv_template_key = 'F';

static const struct {
    const char *name;
    unsigned bit;
} perm_names[] = {
    {"read", SCRIPT_PERM_READ},     {"write", SCRIPT_PERM_WRITE},
    {"delete", SCRIPT_PERM_DELETE}, {"enumerate", SCRIPT_PERM_ENUMERATE},
    {"admin", SCRIPT_PERM_ADMIN},
};

unsigned script_perm_from_name(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof perm_names / sizeof perm_names[0]; i++)
        if (strlen(perm_names[i].name) == len && memcmp(perm_names[i].name, name, len) == 0)
            return perm_names[i].bit;
    return 0;
}

static script_run_ctx *need_run(lua_State *L)
{
    script_run_ctx *run = sandbox_run(L);
    if (!run)
        luaL_error(L, "kv used outside a run");
    return run;
}

/* ------------------------------------------------------------------ output */

void api_body_append(lua_State *L, script_run_ctx *run, const char *s, size_t n)
{
    if (n == 0)
        return;
    if (n >= run->body_cap - run->body_len) { /* room for N bytes and the NUL */
        size_t want = run->body_len + n + 1;
        size_t cap = run->body_cap ? run->body_cap : 256;
        while (cap < want) {
            if (cap > SIZE_MAX / 2)
                break;
            cap *= 2;
        }
        if (cap < want || !sandbox_charge(run, cap - run->body_cap)) {
            sandbox_must_propagate(L, LUA_ERRMEM);
            luaL_error(L, "memory limit exceeded");
        }
        char *body = realloc(run->body, cap);
        if (!body) {
            sandbox_uncharge(run, cap - run->body_cap);
            sandbox_must_propagate(L, LUA_ERRMEM);
            luaL_error(L, "memory limit exceeded");
        }
        run->charged += cap - run->body_cap;
        run->body = body;
        run->body_cap = cap;
    }
    memcpy(run->body + run->body_len, s, n);
    run->body_len += n;
    run->body[run->body_len] = 0; /* body_cap > body_len always once grown */
}

static int kv_say(lua_State *L)
{
    script_run_ctx *run = need_run(L);
    int n = lua_gettop(L);
    for (int i = 1; i <= n; i++) {
        size_t len;
        const char *s = luaL_tolstring(L, i, &len);
        api_body_append(L, run, s, len);
        lua_pop(L, 1);
    }
    return 0;
}

static int kv_status(lua_State *L)
{
    script_run_ctx *run = need_run(L);
    lua_Integer code = luaL_checkinteger(L, 1);
    luaL_argcheck(L, code >= 200 && code <= 599, 1, "status must be 200..599");
    run->status = (int)code;
    return 0;
}

static bool is_token(const char *s, size_t n)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if (n == 0 || n > 256)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (!alnum && (c == 0 || !strchr(extra, c)))
            return false;
    }
    return true;
}

static int kv_header(lua_State *L)
{
    static const char *const framing[] = {
        "content-length", "transfer-encoding", "connection", "keep-alive",
        "upgrade",        "trailer",           "te",         NULL};
    script_run_ctx *run = need_run(L);
    size_t nlen, vlen;
    const char *name = luaL_checklstring(L, 1, &nlen);
    const char *value = luaL_checklstring(L, 2, &vlen);
    luaL_argcheck(L, is_token(name, nlen), 1, "header name must be a token");
    luaL_argcheck(L,
                  vlen <= 8192 && !memchr(value, '\r', vlen) && !memchr(value, '\n', vlen) &&
                      !memchr(value, 0, vlen),
                  2, "header value must be at most 8192 bytes without CR, LF or NUL");
    for (int i = 0; framing[i]; i++)
        if (strcasecmp(name, framing[i]) == 0)
            return luaL_argerror(L, 1, "framing headers are set by the server");
    if (run->nheaders >= run->cfg->max_headers)
        return luaL_error(L, "too many headers (at most %d)", (int)run->cfg->max_headers);
    size_t need = sizeof(script_header) + nlen + vlen + 2;
    if (!sandbox_charge(run, need)) {
        sandbox_must_propagate(L, LUA_ERRMEM);
        return luaL_error(L, "memory limit exceeded");
    }
    run->charged += need;
    script_header *hs = realloc(run->headers, (run->nheaders + 1) * sizeof *hs);
    if (!hs)
        return luaL_error(L, "out of memory");
    run->headers = hs;
    script_header *h = &hs[run->nheaders];
    h->name = malloc(nlen + 1);
    h->value = malloc(vlen + 1);
    if (!h->name || !h->value) {
        free(h->name);
        free(h->value);
        return luaL_error(L, "out of memory");
    }
    memcpy(h->name, name, nlen + 1);
    memcpy(h->value, value, vlen + 1);
    run->nheaders++;
    return 0;
}

static int kv_escape_html(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < len; i++) {
        switch (s[i]) {
        case '&':
            luaL_addstring(&b, "&amp;");
            break;
        case '<':
            luaL_addstring(&b, "&lt;");
            break;
        case '>':
            luaL_addstring(&b, "&gt;");
            break;
        case '"':
            luaL_addstring(&b, "&quot;");
            break;
        case '\'':
            luaL_addstring(&b, "&#39;");
            break;
        default:
            luaL_addchar(&b, s[i]);
        }
    }
    luaL_pushresult(&b);
    return 1;
}

static int kv_json_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    json_push_encoded(L, 1);
    return 1;
}

static int kv_json_decode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    return json_push_decoded(L, s, len);
}

static int kv_time(lua_State *L)
{
    script_run_ctx *run = need_run(L);
    int64_t ms;
    if (run->host->now_ms) {
        ms = run->host->now_ms(run->host->ctx);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    }
    lua_pushnumber(L, (lua_Number)ms / 1000.0);
    return 1;
}

/* ---------------------------------------------------------------- kv.scope */

static unsigned effective(unsigned perms)
{
    return (perms & SCRIPT_PERM_ADMIN) ? SCRIPT_PERM_ALL : perms;
}

static void push_perm_names(lua_State *L, unsigned perms)
{
    lua_newtable(L);
    lua_Integer n = 0;
    perms = effective(perms);
    for (size_t i = 0; i < sizeof perm_names / sizeof perm_names[0]; i++) {
        if (perms & perm_names[i].bit) {
            lua_pushstring(L, perm_names[i].name);
            lua_rawseti(L, -2, ++n);
        }
    }
}

static unsigned check_perm_names(lua_State *L, int idx)
{
    unsigned bits = 0;
    if (lua_type(L, idx) == LUA_TSTRING) {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        bits = script_perm_from_name(s, n);
        if (!bits)
            luaL_error(L, "kv.scope.permissions: unknown permission '%s'", s);
        return bits;
    }
    if (lua_type(L, idx) != LUA_TTABLE)
        luaL_error(L, "kv.scope.permissions must be a list of permission names");
    lua_Integer len = (lua_Integer)lua_rawlen(L, idx);
    for (lua_Integer i = 1; i <= len; i++) {
        lua_rawgeti(L, idx, i);
        size_t n;
        const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
        unsigned bit = s ? script_perm_from_name(s, n) : 0;
        if (!bit)
            luaL_error(L, "kv.scope.permissions: entry %d is not a permission name", (int)i);
        bits |= bit;
        lua_pop(L, 1);
    }
    return bits;
}

static int scope_index(lua_State *L)
{
    script_run_ctx *run = need_run(L);
    const char *field = luaL_checkstring(L, 2);
    if (strcmp(field, "prefix") == 0)
        lua_pushlstring(L, run->prefix, run->prefix_len);
    else if (strcmp(field, "permissions") == 0)
        push_perm_names(L, run->perms);
    else
        lua_pushnil(L);
    return 1;
}

static int scope_newindex(lua_State *L)
{
    script_run_ctx *run = need_run(L);
    const char *field = luaL_checkstring(L, 2);
    if (strcmp(field, "prefix") == 0) {
        size_t n;
        const char *p = lua_type(L, 3) == LUA_TSTRING ? lua_tolstring(L, 3, &n) : NULL;
        if (!p)
            return luaL_error(L, "kv.scope.prefix must be a string");
        if (n < run->prefix_len || memcmp(p, run->prefix, run->prefix_len) != 0)
            return luaL_error(L, "kv.scope.prefix may only be narrowed (extend the current "
                                 "prefix)");
        if (n > RC_KEY_MAX)
            return luaL_error(L, "kv.scope.prefix is longer than a key can be");
        char *copy = malloc(n + 1);
        if (!copy)
            return luaL_error(L, "out of memory");
        memcpy(copy, p, n);
        copy[n] = 0;
        free(run->prefix);
        run->prefix = copy;
        run->prefix_len = n;
        return 0;
    }
    if (strcmp(field, "permissions") == 0) {
        unsigned bits = check_perm_names(L, 3);
        if ((effective(bits) & ~effective(run->perms)) != 0 ||
            ((bits & SCRIPT_PERM_ADMIN) && !(run->perms & SCRIPT_PERM_ADMIN)))
            return luaL_error(L, "kv.scope.permissions may only be narrowed (a subset of the "
                                 "current ones)");
        run->perms = bits;
        return 0;
    }
    return luaL_error(L, "kv.scope has only 'prefix' and 'permissions'");
}

static int scope_tostring(lua_State *L)
{
    script_run_ctx *run = need_run(L);
    lua_pushfstring(L, "kv.scope(prefix=%s)", run->prefix);
    return 1;
}

/* ------------------------------------------------------------------- kv */

static int kv_index(lua_State *L)
{
    lua_getiuservalue(L, 1, 1);
    lua_pushvalue(L, 2);
    lua_rawget(L, -2);
    return 1;
}

static int kv_newindex(lua_State *L)
{
    return luaL_error(L, "kv is read-only");
}

void api_state_init(lua_State *L)
{
    static const luaL_Reg kv_funcs[] = {
        {"get", overlay_get},
        {"set", overlay_set},
        {"incr", overlay_incr},
        {"delete", overlay_delete},
        {"list", overlay_list},
        {"say", kv_say},
        {"status", kv_status},
        {"header", kv_header},
        {"escape_html", kv_escape_html},
        {"json_encode", kv_json_encode},
        {"json_decode", kv_json_decode},
        {"time", kv_time},
        {NULL, NULL},
    };
    luaL_newlib(L, kv_funcs);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &kv_template_key);

    lua_newtable(L);
    lua_pushcfunction(L, kv_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, kv_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushliteral(L, "locked");
    lua_setfield(L, -2, "__metatable");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &kv_meta_key);

    lua_newtable(L);
    lua_pushcfunction(L, scope_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, scope_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, scope_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "locked");
    lua_setfield(L, -2, "__metatable");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &scope_meta_key);
}

void api_push_kv(lua_State *L, script_run_ctx *run, const script_request *req)
{
    overlay_begin(L, run);
    lua_newuserdatauv(L, 0, 1); /* kv */
    lua_rawgetp(L, LUA_REGISTRYINDEX, &kv_meta_key);
    lua_setmetatable(L, -2);

    lua_createtable(L, 0, 20); /* its fields */
    lua_rawgetp(L, LUA_REGISTRYINDEX, &kv_template_key);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, -5);
    }
    lua_pop(L, 1);

    lua_createtable(L, 0, (int)(req->nargs < 64 ? req->nargs : 64));
    for (size_t i = 0; i < req->nargs; i++) {
        lua_pushlstring(L, req->args[i].name, req->args[i].name_len);
        lua_pushlstring(L, req->args[i].value, req->args[i].value_len);
        lua_rawset(L, -3);
    }
    lua_setfield(L, -2, "args");
    lua_pushlstring(L, req->body ? req->body : "", req->body ? req->body_len : 0);
    lua_setfield(L, -2, "body");
    lua_pushstring(L, req->method ? req->method : "GET");
    lua_setfield(L, -2, "method");
    lua_newuserdatauv(L, 0, 0);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &scope_meta_key);
    lua_setmetatable(L, -2);
    lua_setfield(L, -2, "scope");
    lua_setiuservalue(L, -2, 1);
}

void api_reset(lua_State *L)
{
    overlay_end(L);
}
