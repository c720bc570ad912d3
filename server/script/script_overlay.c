/*
 * script_overlay.c — kv.get/set/incr/delete/list over the run's write overlay.
 *
 * Design. A run never writes to the bucket while it runs: kv.set, kv.incr
 * and kv.delete record the key's new state in an overlay table kept in the
 * registry (key -> {op, type, value, ttl_ms, by}), so its strings are Lua
 * strings, charged to the memory cap and collected with the run. Reads look
 * in the overlay first and fall through to the host, so a script sees its own
 * writes. When the script returns, api_collect_ops turns the overlay into one
 * rc_op per key for a single rc_apply: PUT for a set value, DELETE for a
 * deletion, and INCR (with the increments summed) for a key the script only
 * incremented — so concurrent counters add up instead of overwriting each
 * other. A key set or deleted and then incremented commits as a PUT of the
 * value the script saw. A key whose committed value the script saw through
 * kv.get (a registry table keeps the sequence number of the first sighting,
 * 0 for absent) and then wrote commits with RC_IF_SEQ, so a concurrent
 * change makes the commit fail with RC_ECONFLICT and script_run start the
 * run over: read-modify-write through kv.get/kv.set is never lost.
 *
 * Host calls never raise: a value read from the host is pushed under a
 * protected call, the host's buffer is released, and only then is an error
 * (the memory limit) re-raised; list keys are pushed the same way from the
 * emit callback, which stops the host's listing on failure.
 *
 * kv.list (script_list.c) merges the host's keys with the overlay.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "script_internal.h"

static const char overlay_key = 'O';
static const char reads_key = 'V'; /* key -> seq of the committed value a kv.get saw */

/* ---------------------------------------------------------------- helpers */

const char *overlay_error_text(int err)
{
    switch (err) {
    case RC_ENOTFOUND:
        return "not found";
    case RC_ETYPE:
        return "type: the value is not a number";
    case RC_EOVERFLOW:
        return "overflow";
    case RC_EKEYSIZE:
        return "invalid key";
    case RC_EVALUESIZE:
        return "value too large";
    case RC_ENOMEM:
        return "out of memory";
    case RC_ENOSPC:
        return "disk full";
    case RC_ECORRUPT:
        return "corrupt data";
    case RC_EREADONLY:
        return "read-only";
    case RC_ENOKEYSPACE:
        return "no such bucket";
    case RC_ECLOSED:
        return "shutting down";
    default:
        return "storage error";
    }
}

int overlay_fail(lua_State *L, const char *msg)
{
    lua_pushnil(L);
    lua_pushstring(L, msg);
    return 2;
}

bool overlay_permitted(const script_run_ctx *run, unsigned perm)
{
    return (run->perms & SCRIPT_PERM_ADMIN) || (run->perms & perm) == perm;
}

bool overlay_in_scope(const script_run_ctx *run, const char *key, size_t klen)
{
    return klen >= run->prefix_len && memcmp(key, run->prefix, run->prefix_len) == 0;
}

script_run_ctx *overlay_need_run(lua_State *L)
{
    script_run_ctx *run = sandbox_run(L);
    if (!run)
        luaL_error(L, "kv used outside a run");
    return run;
}

/* The key at argument 1, checked for size, permission PERM and scope. On
 * failure pushes nil, err and returns NULL. */
static const char *check_access(lua_State *L, script_run_ctx *run, unsigned perm, size_t *klen,
                                int *nret)
{
    const char *key = luaL_checklstring(L, 1, klen);
    const char *why = NULL;
    if (*klen == 0 || *klen > RC_KEY_MAX)
        why = "invalid key";
    else if (!overlay_permitted(run, perm))
        why = "forbidden: the scope does not permit this";
    else if (!overlay_in_scope(run, key, *klen))
        why = "forbidden: key outside the scope";
    if (why) {
        *nret = overlay_fail(L, why);
        return NULL;
    }
    return key;
}

void overlay_push_table(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &overlay_key);
}

/* Push overlay[key] (an entry table or nil); returns its op or 0. */
static int push_entry(lua_State *L, int keyidx)
{
    overlay_push_table(L);
    lua_pushvalue(L, keyidx);
    lua_rawget(L, -2);
    lua_remove(L, -2);
    if (lua_isnil(L, -1))
        return 0;
    lua_rawgeti(L, -1, E_OP);
    int op = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    return op;
}

static void set_entry(lua_State *L, script_run_ctx *run, int keyidx, int op, rc_type type,
                      int validx, int64_t ttl_ms, int byidx)
{
    validx = lua_absindex(L, validx);
    byidx = byidx ? lua_absindex(L, byidx) : 0;
    int old = push_entry(L, keyidx);
    lua_pop(L, 1);
    lua_createtable(L, 5, 0);
    lua_pushinteger(L, op);
    lua_rawseti(L, -2, E_OP);
    lua_pushinteger(L, type);
    lua_rawseti(L, -2, E_TYPE);
    lua_pushvalue(L, validx);
    lua_rawseti(L, -2, E_VALUE);
    lua_pushinteger(L, ttl_ms);
    lua_rawseti(L, -2, E_TTL);
    if (byidx) {
        lua_pushvalue(L, byidx);
        lua_rawseti(L, -2, E_BY);
    }
    overlay_push_table(L);
    lua_pushvalue(L, keyidx);
    lua_pushvalue(L, -3);
    lua_rawset(L, -3);
    lua_pop(L, 2);
    if (old == OP_DEL && op != OP_DEL)
        run->overlay_deletes--;
    else if (old != OP_DEL && op == OP_DEL)
        run->overlay_deletes++;
}

/* --------------------------------------------------------- host reading */

typedef struct pushed_bytes {
    const void *data;
    size_t len;
} pushed_bytes;

static int push_bytes_fn(lua_State *L)
{
    pushed_bytes *b = lua_touserdata(L, 1);
    lua_pushlstring(L, b->data, b->len);
    return 1;
}

/* Push DATA[0..LEN) as a string without raising; returns the status. */
int overlay_push_bytes(lua_State *L, const void *data, size_t len)
{
    pushed_bytes b = {data, len};
    lua_pushcfunction(L, push_bytes_fn);
    lua_pushlightuserdata(L, &b);
    return lua_pcall(L, 1, 1, 0);
}

static bool parse_int(const char *s, size_t len, lua_Integer *out)
{
    char buf[32];
    if (len == 0 || len >= sizeof buf)
        return false;
    memcpy(buf, s, len);
    buf[len] = 0;
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

static bool parse_float(const char *s, size_t len, lua_Number *out)
{
    char buf[64];
    if (len == 0 || len >= sizeof buf)
        return false;
    memcpy(buf, s, len);
    buf[len] = 0;
    char *end;
    double v = strtod(buf, &end);
    if (*end)
        return false;
    *out = v;
    return true;
}

/* Remember that the script saw the committed state SEQ of the key at KEYIDX
 * (0: absent); the first sighting is the one a later write is checked
 * against. */
static void record_read(lua_State *L, int keyidx, uint64_t seq)
{
    keyidx = lua_absindex(L, keyidx);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &reads_key);
    lua_pushvalue(L, keyidx);
    if (lua_rawget(L, -2) == LUA_TNIL) {
        lua_pushvalue(L, keyidx);
        lua_pushinteger(L, (lua_Integer)seq);
        lua_rawset(L, -4);
    }
    lua_pop(L, 2);
}

/* Push the committed value of the key at KEYIDX with its type. Returns 1
 * with the value pushed, or 0 with an error text pushed (absence included);
 * *TYPE receives the stored type. OBSERVE records the read (kv.get), so a
 * later write of the key commits only if nobody changed it meanwhile.
 * Raises only after releasing the host value. */
static int host_read(lua_State *L, script_run_ctx *run, int keyidx, rc_type *type, bool observe)
{
    size_t klen;
    const char *key = lua_tolstring(L, keyidx, &klen);
    rc_value v = {0};
    int err = run->host->get(run->host->ctx, key, klen, &v);
    if (err) {
        if (err == RC_ENOTFOUND && observe)
            record_read(L, keyidx, 0);
        lua_pushstring(L, overlay_error_text(err));
        return 0;
    }
    uint64_t seq = v.seq;
    *type = v.type;
    int status = LUA_OK;
    lua_Integer i;
    lua_Number f;
    if (v.type == RC_TYPE_INT && parse_int(v.data, v.len, &i))
        lua_pushinteger(L, i);
    else if (v.type == RC_TYPE_FLOAT && parse_float(v.data, v.len, &f))
        lua_pushnumber(L, f);
    else {
        if (v.type == RC_TYPE_INT || v.type == RC_TYPE_FLOAT)
            *type = RC_TYPE_RAW; /* malformed number text: hand it over as bytes */
        status = overlay_push_bytes(L, v.data, v.len);
    }
    if (run->host->release)
        run->host->release(run->host->ctx, &v);
    if (status != LUA_OK) {
        sandbox_must_propagate(L, status);
        lua_error(L);
    }
    if (observe)
        record_read(L, keyidx, seq);
    return 1;
}

/* Push the value the run sees for the key at KEYIDX: 1 = value pushed,
 * 0 = error text pushed ("not found" when absent). */
static int read_current(lua_State *L, script_run_ctx *run, int keyidx, rc_type *type, bool observe)
{
    int op = push_entry(L, keyidx);
    if (op == OP_PUT || op == OP_INCR) {
        lua_rawgeti(L, -1, E_TYPE);
        *type = (rc_type)lua_tointeger(L, -1);
        lua_pop(L, 1);
        lua_rawgeti(L, -1, E_VALUE);
        lua_remove(L, -2);
        return 1;
    }
    lua_pop(L, 1);
    if (op == OP_DEL) {
        lua_pushliteral(L, "not found");
        return 0;
    }
    return host_read(L, run, keyidx, type, observe);
}

/* ----------------------------------------------------------- kv.get/set */

int overlay_get(lua_State *L)
{
    script_run_ctx *run = overlay_need_run(L);
    size_t klen;
    int nret = 0;
    if (!check_access(L, run, SCRIPT_PERM_READ, &klen, &nret))
        return nret;
    rc_type type;
    if (read_current(L, run, 1, &type, true))
        return 1;
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
}

static int64_t check_ttl(lua_State *L, int idx)
{
    if (lua_isnoneornil(L, idx))
        return RC_TTL_DEFAULT;
    lua_Number ttl = luaL_checknumber(L, idx);
    luaL_argcheck(L, ttl >= 0 && ttl <= 1e12, idx, "ttl must be 0 (none) or seconds > 0");
    if (ttl == 0)
        return RC_TTL_NONE;
    int64_t ms = (int64_t)ceil(ttl * 1000.0);
    return ms > 0 ? ms : 1;
}

int overlay_set(lua_State *L)
{
    script_run_ctx *run = overlay_need_run(L);
    size_t klen;
    int nret = 0;
    luaL_checkany(L, 2);
    int64_t ttl = check_ttl(L, 3);
    lua_settop(L, 2);
    rc_type type;
    switch (lua_type(L, 2)) {
    case LUA_TNUMBER:
        if (lua_isinteger(L, 2)) {
            type = RC_TYPE_INT;
        } else {
            type = RC_TYPE_FLOAT;
            if (!isfinite(lua_tonumber(L, 2)))
                return luaL_argerror(L, 2, "a float value must be finite");
        }
        break;
    case LUA_TSTRING:
        type = RC_TYPE_RAW;
        break;
    case LUA_TTABLE:
    case LUA_TBOOLEAN:
        type = RC_TYPE_JSON;
        json_push_encoded(L, 2);
        lua_replace(L, 2);
        break;
    default:
        return luaL_argerror(L, 2, "value must be a number, string, boolean or table");
    }
    if (!check_access(L, run, SCRIPT_PERM_WRITE, &klen, &nret))
        return nret;
    if (lua_type(L, 2) == LUA_TSTRING && lua_rawlen(L, 2) > run->cfg->max_value)
        return overlay_fail(L, "value too large");
    set_entry(L, run, 1, OP_PUT, type, 2, ttl, 0);
    lua_pushboolean(L, 1);
    return 1;
}

/* ---------------------------------------------------------- kv.incr */

/* Push a + b (numbers at A and B) following the engine's rules; false on
 * int64 overflow. */
static bool push_sum(lua_State *L, int a, int b)
{
    if (lua_isinteger(L, a) && lua_isinteger(L, b)) {
        lua_Integer r;
        if (__builtin_add_overflow(lua_tointeger(L, a), lua_tointeger(L, b), &r))
            return false;
        lua_pushinteger(L, r);
        return true;
    }
    lua_Number r = lua_tonumber(L, a) + lua_tonumber(L, b);
    if (!isfinite(r))
        return false;
    lua_pushnumber(L, r);
    return true;
}

int overlay_incr(lua_State *L)
{
    script_run_ctx *run = overlay_need_run(L);
    size_t klen;
    int nret = 0;
    if (lua_isnoneornil(L, 2)) {
        lua_settop(L, 1);
        lua_pushinteger(L, 1);
    } else {
        luaL_checktype(L, 2, LUA_TNUMBER);
        lua_settop(L, 2);
    }
    if (!check_access(L, run, SCRIPT_PERM_WRITE, &klen, &nret))
        return nret;
    int op = push_entry(L, 1); /* 3: entry or nil */
    rc_type type = RC_TYPE_INT;
    int64_t ttl = RC_TTL_DEFAULT;
    if (op == OP_PUT || op == OP_INCR) {
        lua_rawgeti(L, 3, E_TYPE);
        type = (rc_type)lua_tointeger(L, -1);
        lua_rawgeti(L, 3, E_TTL);
        ttl = lua_tointeger(L, -1);
        lua_pop(L, 2);
        lua_rawgeti(L, 3, E_VALUE); /* 4: current */
    } else if (op == OP_DEL) {
        lua_pushinteger(L, 0);
    } else if (!host_read(L, run, 1, &type, false)) {
        if (strcmp(lua_tostring(L, -1), "not found") != 0)
            return overlay_fail(L, lua_tostring(L, -1));
        lua_pop(L, 1);
        lua_pushinteger(L, 0);
        type = RC_TYPE_INT;
        op = -1; /* absent at the host: INCR creates it */
    } else {
        op = -1;
    }
    if (lua_type(L, 4) != LUA_TNUMBER || (type != RC_TYPE_INT && type != RC_TYPE_FLOAT))
        return overlay_fail(L, overlay_error_text(RC_ETYPE));
    if (!push_sum(L, 4, 2)) /* 5: new value */
        return overlay_fail(L, overlay_error_text(RC_EOVERFLOW));
    rc_type ntype = lua_isinteger(L, 5) ? RC_TYPE_INT : RC_TYPE_FLOAT;
    if (op == -1 || op == OP_INCR) {
        /* only incremented: commit as INCR by the sum of the increments */
        if (op == OP_INCR)
            lua_rawgeti(L, 3, E_BY);
        else
            lua_pushinteger(L, 0);
        if (!push_sum(L, -1, 2)) /* 7: new by */
            return overlay_fail(L, overlay_error_text(RC_EOVERFLOW));
        set_entry(L, run, 1, OP_INCR, ntype, 5, RC_TTL_DEFAULT, 7);
    } else {
        set_entry(L, run, 1, OP_PUT, ntype, 5, ttl, 0);
    }
    lua_pushvalue(L, 5);
    return 1;
}

/* ---------------------------------------------------------- kv.delete */

int overlay_delete(lua_State *L)
{
    script_run_ctx *run = overlay_need_run(L);
    size_t klen;
    int nret = 0;
    lua_settop(L, 1);
    if (!check_access(L, run, SCRIPT_PERM_DELETE, &klen, &nret))
        return nret;
    rc_type type;
    bool present = read_current(L, run, 1, &type, false);
    if (!present && strcmp(lua_tostring(L, -1), "not found") != 0)
        return overlay_fail(L, lua_tostring(L, -1));
    lua_pushboolean(L, 0);
    set_entry(L, run, 1, OP_DEL, RC_TYPE_RAW, -1, RC_TTL_DEFAULT, 0);
    lua_pushboolean(L, present);
    return 1;
}

/* ------------------------------------------------------------- commit */

void overlay_begin(lua_State *L, script_run_ctx *run)
{
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &overlay_key);
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &reads_key);
    run->overlay_deletes = 0;
}

void overlay_end(lua_State *L)
{
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &overlay_key);
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &reads_key);
}

typedef char number_text[48];

static void format_number(lua_State *L, int idx, number_text out)
{
    if (lua_isinteger(L, idx)) {
        snprintf(out, sizeof(number_text), "%lld", (long long)lua_tointeger(L, idx));
        return;
    }
    double v = lua_tonumber(L, idx);
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, sizeof(number_text), "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            break;
    }
    /* stored as a float: keep it one when read back ("1.0", not "1") */
    if (strpbrk(out, ".eEn") == NULL)
        strcat(out, ".0");
}

size_t api_collect_ops(lua_State *L, rc_op **opsp)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &reads_key);
    int reads = lua_gettop(L);
    overlay_push_table(L);
    int ov = lua_gettop(L);
    size_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, ov)) {
        n++;
        lua_pop(L, 1);
    }
    if (n == 0) {
        lua_pop(L, 2);
        return 0;
    }
    /* one block: the ops, then the text of their numbers */
    rc_op *ops = calloc(n, sizeof(rc_op) + sizeof(number_text));
    if (!ops)
        luaL_error(L, "out of memory collecting writes");
    *opsp = ops;
    number_text *nums = (number_text *)(ops + n);
    size_t i = 0;
    lua_pushnil(L);
    while (lua_next(L, ov)) {
        rc_op *op = &ops[i];
        op->key = lua_tolstring(L, -2, &op->klen);
        lua_rawgeti(L, -1, E_OP);
        lua_rawgeti(L, -2, E_TYPE);
        lua_rawgeti(L, -3, E_TTL);
        int kind = (int)lua_tointeger(L, -3);
        op->type = (rc_type)lua_tointeger(L, -2);
        op->ttl_ms = lua_tointeger(L, -1);
        op->cond = RC_IF_ANY;
        lua_pop(L, 3);
        lua_pushvalue(L, -2);
        if (lua_rawget(L, reads) == LUA_TNUMBER) { /* seen by kv.get: check it */
            op->cond = RC_IF_SEQ;
            op->if_seq = (uint64_t)lua_tointeger(L, -1);
        }
        lua_pop(L, 1);
        if (kind == OP_DEL) {
            op->kind = RC_OP_DELETE;
        } else if (kind == OP_INCR) {
            op->kind = RC_OP_INCR;
            lua_rawgeti(L, -1, E_BY);
            if (lua_isinteger(L, -1)) {
                op->by.type = RC_TYPE_INT;
                op->by.i = lua_tointeger(L, -1);
            } else {
                op->by.type = RC_TYPE_FLOAT;
                op->by.f = lua_tonumber(L, -1);
            }
            lua_pop(L, 1);
        } else {
            op->kind = RC_OP_PUT;
            lua_rawgeti(L, -1, E_VALUE);
            if (lua_type(L, -1) == LUA_TNUMBER) {
                format_number(L, -1, nums[i]);
                op->val = nums[i];
                op->vlen = strlen(nums[i]);
            } else {
                op->val = lua_tolstring(L, -1, &op->vlen); /* anchored in the entry */
            }
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
        i++;
    }
    lua_pop(L, 2);
    return n;
}
