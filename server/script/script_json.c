/*
 * script_json.c — kv.json_encode / kv.json_decode (and kv.set of a table).
 *
 * Design. Decoding uses Jansson, the server's JSON library: the text is
 * parsed into a json_t tree and the tree is turned into Lua values under a
 * protected call, so a memory error while building tables frees the tree
 * before it propagates. Jansson allocates outside the Lua heap, so before
 * parsing the run's memory account is charged a reservation of 32 bytes per
 * input byte (a bound on the tree Jansson builds for the densest input,
 * `[0,0,...]`), released when the tree is freed.
 *
 * Encoding is done here, straight from Lua values into a byte buffer held by
 * a userdata (allocated through the Lua allocator, so charged to the cap and
 * freed by __gc if an error unwinds past it): Jansson would print 0.1 as
 * 0.10000000000000001 and double the memory with a json_t tree. Numbers are
 * written in the shortest form that reads back to the same double, object keys
 * in byte order (so equal tables encode equally), tables with keys 1..n as
 * arrays, other tables (the empty one included) as objects. Strings must be
 * UTF-8. Depth is limited to 64, which also stops cycles.
 *
 * JSON null decodes to nil: a null member is absent, a null array element a
 * hole. Integers that fit int64 decode to Lua integers, other numbers to floats.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <lauxlib.h>

#include "script_internal.h"

#define JSON_DEPTH_MAX 64
#define JSON_DECODE_RESERVE 32u

/* ---------------------------------------------------------------- buffer */

typedef struct json_buf {
    char *p;
    size_t len, cap;
} json_buf;

static int json_buf_gc(lua_State *L)
{
    json_buf *b = lua_touserdata(L, 1);
    if (b->p) {
        void *ud;
        lua_Alloc f = lua_getallocf(L, &ud);
        f(ud, b->p, b->cap, 0);
        b->p = NULL;
    }
    return 0;
}

static json_buf *json_buf_push(lua_State *L)
{
    json_buf *b = lua_newuserdatauv(L, sizeof *b, 0);
    *b = (json_buf){0};
    if (luaL_newmetatable(L, "rcscript.json_buf")) {
        lua_pushcfunction(L, json_buf_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    return b;
}

static void json_buf_add(lua_State *L, json_buf *b, const char *s, size_t n)
{
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap - b->len < n) {
            if (cap > SIZE_MAX / 2)
                luaL_error(L, "json_encode: result too large");
            cap *= 2;
        }
        void *ud;
        lua_Alloc f = lua_getallocf(L, &ud);
        char *p = f(ud, b->p, b->p ? b->cap : 0, cap);
        if (!p) {
            sandbox_must_propagate(L, LUA_ERRMEM);
            luaL_error(L, "memory limit exceeded");
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

/* --------------------------------------------------------------- encoding */

static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

static void encode_string(lua_State *L, json_buf *b, const char *s, size_t n)
{
    json_buf_add(L, b, "\"", 1);
    size_t run = 0; /* start of the pending unescaped bytes */
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char ubuf[8];
        if (c == '"')
            esc = "\\\"";
        else if (c == '\\')
            esc = "\\\\";
        else if (c == '\n')
            esc = "\\n";
        else if (c == '\r')
            esc = "\\r";
        else if (c == '\t')
            esc = "\\t";
        else if (c < 0x20) {
            snprintf(ubuf, sizeof ubuf, "\\u%04x", c);
            esc = ubuf;
        }
        if (esc) {
            json_buf_add(L, b, s + run, i - run);
            json_buf_add(L, b, esc, strlen(esc));
            run = ++i;
            continue;
        }
        size_t l = utf8_seq_len((const unsigned char *)s + i, n - i);
        if (l == 0)
            luaL_error(L, "json_encode: string is not valid UTF-8");
        i += l;
    }
    json_buf_add(L, b, s + run, n - run);
    json_buf_add(L, b, "\"", 1);
}

/* Shortest "%.Ng" text that reads back as V. */
static int format_double(char *out, size_t size, double v)
{
    int len = 0;
    for (int prec = 1; prec <= 17; prec++) {
        len = snprintf(out, size, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            break;
    }
    return len;
}

static void encode_number(lua_State *L, json_buf *b, int idx)
{
    char num[48];
    int len;
    if (lua_isinteger(L, idx)) {
        len = snprintf(num, sizeof num, "%lld", (long long)lua_tointeger(L, idx));
    } else {
        double v = lua_tonumber(L, idx);
        if (!isfinite(v))
            luaL_error(L, "json_encode: NaN and infinity have no JSON form");
        len = format_double(num, sizeof num, v);
    }
    json_buf_add(L, b, num, (size_t)len);
}

static int key_order(const void *pa, const void *pb)
{
    const struct {
        const char *p;
        size_t n;
    } *a = pa, *b = pb;
    int c = memcmp(a->p, b->p, a->n < b->n ? a->n : b->n);
    return c ? c : (a->n > b->n) - (a->n < b->n);
}

static void encode_value(lua_State *L, json_buf *b, int idx, int depth);

/* The table at IDX as an array when its keys are exactly 1..n (n > 0). */
static bool is_array(lua_State *L, int idx, lua_Integer *n)
{
    lua_Integer len = (lua_Integer)lua_rawlen(L, idx), count = 0;
    if (len == 0)
        return false;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > len) {
            lua_pop(L, 1);
            return false;
        }
        count++;
    }
    *n = len;
    return count == len;
}

/* Push the text form of the object key at IDX. */
static void push_key_text(lua_State *L, int idx)
{
    if (lua_type(L, idx) == LUA_TSTRING) {
        lua_pushvalue(L, idx);
        return;
    }
    if (lua_type(L, idx) != LUA_TNUMBER)
        luaL_error(L, "json_encode: object keys must be strings or numbers, not %s",
                   luaL_typename(L, idx));
    char num[48];
    int len = lua_isinteger(L, idx)
                  ? snprintf(num, sizeof num, "%lld", (long long)lua_tointeger(L, idx))
                  : format_double(num, sizeof num, lua_tonumber(L, idx));
    lua_pushlstring(L, num, (size_t)len);
}

static void encode_object(lua_State *L, json_buf *b, int idx, int depth)
{
    /* keys as text in a fresh table (text -> value), then sorted */
    lua_newtable(L);
    int byname = lua_gettop(L);
    size_t count = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) { /* key, value */
        push_key_text(L, -2);  /* key, value, text */
        lua_pushvalue(L, -1);
        if (lua_rawget(L, byname) != LUA_TNIL)
            luaL_error(L, "json_encode: two keys have the same text");
        lua_pop(L, 1);
        lua_insert(L, -2); /* key, text, value */
        lua_rawset(L, byname);
        count++;
    }
    typedef struct {
        const char *p;
        size_t n;
    } name_ref;
    name_ref *names = lua_newuserdatauv(L, (count ? count : 1) * sizeof *names, 0);
    size_t i = 0;
    lua_pushnil(L);
    while (lua_next(L, byname)) {
        lua_pop(L, 1);
        names[i].p = lua_tolstring(L, -1, &names[i].n);
        i++;
    }
    qsort(names, count, sizeof *names, key_order);
    json_buf_add(L, b, "{", 1);
    for (i = 0; i < count; i++) {
        if (i)
            json_buf_add(L, b, ",", 1);
        encode_string(L, b, names[i].p, names[i].n);
        json_buf_add(L, b, ":", 1);
        lua_pushlstring(L, names[i].p, names[i].n);
        lua_rawget(L, byname);
        encode_value(L, b, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
    }
    json_buf_add(L, b, "}", 1);
    lua_settop(L, byname - 1);
}

static void encode_value(lua_State *L, json_buf *b, int idx, int depth)
{
    if (depth > JSON_DEPTH_MAX)
        luaL_error(L, "json_encode: nested deeper than %d (or a cycle)", JSON_DEPTH_MAX);
    luaL_checkstack(L, 8, "json_encode: nested too deep");
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        json_buf_add(L, b, "null", 4);
        break;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx))
            json_buf_add(L, b, "true", 4);
        else
            json_buf_add(L, b, "false", 5);
        break;
    case LUA_TNUMBER:
        encode_number(L, b, idx);
        break;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        encode_string(L, b, s, n);
        break;
    }
    case LUA_TTABLE: {
        lua_Integer n;
        if (!is_array(L, idx, &n)) {
            encode_object(L, b, idx, depth);
            break;
        }
        json_buf_add(L, b, "[", 1);
        for (lua_Integer i = 1; i <= n; i++) {
            if (i > 1)
                json_buf_add(L, b, ",", 1);
            lua_rawgeti(L, idx, i);
            encode_value(L, b, lua_gettop(L), depth + 1);
            lua_pop(L, 1);
        }
        json_buf_add(L, b, "]", 1);
        break;
    }
    default:
        luaL_error(L, "json_encode: cannot encode a %s", luaL_typename(L, idx));
    }
}

void json_push_encoded(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    json_buf *b = json_buf_push(L);
    int box = lua_gettop(L);
    encode_value(L, b, idx, 0);
    lua_pushlstring(L, b->p ? b->p : "", b->len);
    lua_remove(L, box); /* the buffer is freed by __gc */
}

/* --------------------------------------------------------------- decoding */

static void push_json(lua_State *L, json_t *v, int depth)
{
    if (depth > 512)
        luaL_error(L, "json_decode: nested too deep");
    luaL_checkstack(L, 4, "json_decode: nested too deep");
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        lua_createtable(L, 0, (int)(json_object_size(v) < 1024 ? json_object_size(v) : 1024));
        const char *key;
        size_t klen;
        json_t *val;
        json_object_keylen_foreach(v, key, klen, val)
        {
            if (json_is_null(val))
                continue;
            lua_pushlstring(L, key, klen);
            push_json(L, val, depth + 1);
            lua_rawset(L, -3);
        }
        break;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        lua_createtable(L, (int)(n < 1024 ? n : 1024), 0);
        for (size_t i = 0; i < n; i++) {
            json_t *e = json_array_get(v, i);
            if (json_is_null(e))
                continue;
            push_json(L, e, depth + 1);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        break;
    }
    case JSON_STRING:
        lua_pushlstring(L, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        lua_pushinteger(L, (lua_Integer)json_integer_value(v));
        break;
    case JSON_REAL:
        lua_pushnumber(L, json_real_value(v));
        break;
    case JSON_TRUE:
        lua_pushboolean(L, 1);
        break;
    case JSON_FALSE:
        lua_pushboolean(L, 0);
        break;
    default:
        lua_pushnil(L);
    }
}

static int push_json_protected(lua_State *L)
{
    push_json(L, lua_touserdata(L, 1), 0);
    return 1;
}

int json_push_decoded(lua_State *L, const char *s, size_t len)
{
    script_run_ctx *run = sandbox_run(L);
    size_t reserve = len > SIZE_MAX / JSON_DECODE_RESERVE ? SIZE_MAX : len * JSON_DECODE_RESERVE;
    if (run && !sandbox_charge(run, reserve)) {
        sandbox_must_propagate(L, LUA_ERRMEM);
        return luaL_error(L, "memory limit exceeded");
    }
    json_error_t jerr;
    json_t *root = json_loadb(s, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!root) {
        if (run)
            sandbox_uncharge(run, reserve);
        lua_pushnil(L);
        lua_pushfstring(L, "json: %s at line %d column %d", jerr.text, jerr.line, jerr.column);
        return 2;
    }
    lua_pushcfunction(L, push_json_protected);
    lua_pushlightuserdata(L, root);
    int status = lua_pcall(L, 1, 1, 0);
    json_decref(root);
    if (run)
        sandbox_uncharge(run, reserve);
    if (status != LUA_OK) {
        sandbox_must_propagate(L, status);
        return lua_error(L);
    }
    return 1;
}
