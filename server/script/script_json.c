/*
 * script_json.c — kv.json_encode / kv.json_decode (and kv.set of a table).
 *
 * Design. Both directions are done here, straight between JSON text and Lua
 * values, so every byte either direction needs is a Lua allocation, charged
 * to the run's memory cap and reclaimed by the collector if an error unwinds
 * past it. Jansson, the server's JSON library, was the first choice and was
 * measured: it builds a tree of 12x (object members) to 79x (`[{},{},...]`)
 * the input outside the Lua heap, so a run could make the server allocate
 * far more than its cap; and it prints 0.1 as 0.10000000000000001.
 *
 * Decoding is a recursive-descent parser of RFC 8259 under a protected call:
 * a syntax error comes back as nil, "json: <what> at line L column C"; a
 * memory error or a limit propagates. Strings are checked to be UTF-8 and
 * \u escapes (surrogate pairs included) become UTF-8. Integers that fit
 * int64 become Lua integers, other numbers floats. Depth is limited to 512.
 *
 * Encoding writes into a byte buffer held by a userdata (allocated through
 * the Lua allocator, freed by __gc if an error unwinds past it). Numbers are
 * written in the shortest form that reads back to the same double, object keys
 * in byte order (so equal tables encode equally), tables with keys 1..n as
 * arrays, other tables (the empty one included) as objects. Strings must be
 * UTF-8. Depth is limited to 64, which also stops cycles.
 *
 * JSON null decodes to nil: a null member is absent, a null array element a
 * hole. Integers that fit int64 decode to Lua integers, other numbers to floats.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "script_internal.h"

#define JSON_DEPTH_MAX 64
#define JSON_DECODE_DEPTH_MAX 512

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

/* Shortest "%.Ng" text that reads back as V, kept recognisably a float:
 * "2" or "-0" would decode as the integers 2 and 0 (losing -0.0's sign), so
 * a float that prints like an integer gets ".0". */
static int format_double(char *out, size_t size, double v)
{
    int len = 0;
    for (int prec = 1; prec <= 17; prec++) {
        len = snprintf(out, size, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            break;
    }
    if (!strpbrk(out, ".eE") && (size_t)len + 2 < size) {
        memcpy(out + len, ".0", 3);
        len += 2;
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

typedef struct json_reader {
    lua_State *L;
    const char *start, *p, *end;
    int depth;
} json_reader;

/* Raise "json: WHAT at line L column C" as a parse error (caught by
 * json_push_decoded, which turns it into nil, err). */
static void parse_fail(json_reader *r, const char *what)
{
    int line = 1, col = 1;
    for (const char *q = r->start; q < r->p && q < r->end; q++) {
        if (*q == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    lua_pushfstring(r->L, "json: %s at line %d column %d", what, line, col);
    lua_error(r->L);
}

static void skip_space(json_reader *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static int hex4(json_reader *r)
{
    if (r->end - r->p < 4)
        parse_fail(r, "truncated \\u escape");
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = r->p[i];
        int d = (c >= '0' && c <= '9')   ? c - '0'
                : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                         : -1;
        if (d < 0)
            parse_fail(r, "invalid \\u escape");
        v = v * 16 + d;
    }
    r->p += 4;
    return v;
}

static void add_utf8(luaL_Buffer *b, uint32_t cp)
{
    char out[4];
    size_t n;
    if (cp < 0x80) {
        out[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        out[0] = (char)(0xf0 | (cp >> 18));
        out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    luaL_addlstring(b, out, n);
}

/* The string at r->p (just after its opening quote) onto the stack. */
static void parse_string(json_reader *r)
{
    luaL_Buffer b;
    luaL_buffinit(r->L, &b);
    for (;;) {
        const char *run = r->p;
        while (r->p < r->end && *r->p != '"' && *r->p != '\\' && (unsigned char)*r->p >= 0x20 &&
               (unsigned char)*r->p < 0x80)
            r->p++;
        luaL_addlstring(&b, run, (size_t)(r->p - run));
        if (r->p >= r->end)
            parse_fail(r, "unterminated string");
        unsigned char c = (unsigned char)*r->p;
        if (c == '"') {
            r->p++;
            break;
        }
        if (c < 0x20)
            parse_fail(r, "control character in a string");
        if (c >= 0x80) {
            size_t l = utf8_seq_len((const unsigned char *)r->p, (size_t)(r->end - r->p));
            if (l == 0)
                parse_fail(r, "invalid UTF-8 in a string");
            luaL_addlstring(&b, r->p, l);
            r->p += l;
            continue;
        }
        r->p++; /* the backslash */
        if (r->p >= r->end)
            parse_fail(r, "unterminated string");
        char e = *r->p++;
        switch (e) {
        case '"':
        case '\\':
        case '/':
            luaL_addchar(&b, e);
            break;
        case 'b':
            luaL_addchar(&b, '\b');
            break;
        case 'f':
            luaL_addchar(&b, '\f');
            break;
        case 'n':
            luaL_addchar(&b, '\n');
            break;
        case 'r':
            luaL_addchar(&b, '\r');
            break;
        case 't':
            luaL_addchar(&b, '\t');
            break;
        case 'u': {
            uint32_t cp = (uint32_t)hex4(r);
            if (cp >= 0xdc00 && cp <= 0xdfff)
                parse_fail(r, "lone low surrogate in \\u escape");
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (r->end - r->p < 2 || r->p[0] != '\\' || r->p[1] != 'u')
                    parse_fail(r, "high surrogate without its low half");
                r->p += 2;
                uint32_t lo = (uint32_t)hex4(r);
                if (lo < 0xdc00 || lo > 0xdfff)
                    parse_fail(r, "invalid low surrogate in \\u escape");
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            add_utf8(&b, cp);
            break;
        }
        default:
            parse_fail(r, "invalid escape in a string");
        }
    }
    luaL_pushresult(&b);
}

static void parse_number(json_reader *r)
{
    const char *start = r->p;
    bool integral = true;
    if (r->p < r->end && *r->p == '-')
        r->p++;
    if (r->p < r->end && *r->p == '0') {
        r->p++;
    } else if (r->p < r->end && *r->p >= '1' && *r->p <= '9') {
        while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
            r->p++;
    } else {
        parse_fail(r, "invalid number");
    }
    if (r->p < r->end && *r->p == '.') {
        integral = false;
        r->p++;
        if (r->p >= r->end || *r->p < '0' || *r->p > '9')
            parse_fail(r, "invalid number");
        while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
            r->p++;
    }
    if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
        integral = false;
        r->p++;
        if (r->p < r->end && (*r->p == '+' || *r->p == '-'))
            r->p++;
        if (r->p >= r->end || *r->p < '0' || *r->p > '9')
            parse_fail(r, "invalid number");
        while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
            r->p++;
    }
    char buf[64];
    size_t n = (size_t)(r->p - start);
    if (n >= sizeof buf)
        n = sizeof buf - 1; /* digits past 63 cannot change a double */
    memcpy(buf, start, n);
    buf[n] = 0;
    if (integral) {
        errno = 0;
        long long v = strtoll(buf, NULL, 10);
        if (errno == 0 && (size_t)(r->p - start) < sizeof buf) {
            lua_pushinteger(r->L, (lua_Integer)v);
            return;
        }
    }
    lua_pushnumber(r->L, strtod(buf, NULL));
}

static void parse_literal(json_reader *r, const char *word, size_t len)
{
    if ((size_t)(r->end - r->p) < len || memcmp(r->p, word, len) != 0)
        parse_fail(r, "invalid literal");
    r->p += len;
}

/* Parse one value and push it (nil for null). */
static void parse_value(json_reader *r)
{
    skip_space(r);
    if (r->p >= r->end)
        parse_fail(r, "unexpected end of text");
    if (++r->depth > JSON_DECODE_DEPTH_MAX)
        parse_fail(r, "nested too deep");
    luaL_checkstack(r->L, 4, "json_decode: nested too deep");
    char c = *r->p;
    if (c == '{') {
        r->p++;
        lua_newtable(r->L);
        skip_space(r);
        if (r->p < r->end && *r->p == '}') {
            r->p++;
        } else {
            for (;;) {
                skip_space(r);
                if (r->p >= r->end || *r->p != '"')
                    parse_fail(r, "object key expected");
                r->p++;
                parse_string(r);
                skip_space(r);
                if (r->p >= r->end || *r->p != ':')
                    parse_fail(r, "':' expected");
                r->p++;
                parse_value(r);
                lua_rawset(r->L, -3); /* a nil value (null) leaves the key absent */
                skip_space(r);
                if (r->p < r->end && *r->p == ',') {
                    r->p++;
                    continue;
                }
                if (r->p < r->end && *r->p == '}') {
                    r->p++;
                    break;
                }
                parse_fail(r, "',' or '}' expected");
            }
        }
    } else if (c == '[') {
        r->p++;
        lua_newtable(r->L);
        skip_space(r);
        lua_Integer i = 0;
        if (r->p < r->end && *r->p == ']') {
            r->p++;
        } else {
            for (;;) {
                parse_value(r);
                lua_rawseti(r->L, -2, ++i); /* null leaves a hole */
                skip_space(r);
                if (r->p < r->end && *r->p == ',') {
                    r->p++;
                    continue;
                }
                if (r->p < r->end && *r->p == ']') {
                    r->p++;
                    break;
                }
                parse_fail(r, "',' or ']' expected");
            }
        }
    } else if (c == '"') {
        r->p++;
        parse_string(r);
    } else if (c == 't') {
        parse_literal(r, "true", 4);
        lua_pushboolean(r->L, 1);
    } else if (c == 'f') {
        parse_literal(r, "false", 5);
        lua_pushboolean(r->L, 0);
    } else if (c == 'n') {
        parse_literal(r, "null", 4);
        lua_pushnil(r->L);
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        parse_number(r);
    } else {
        parse_fail(r, "unexpected character");
    }
    r->depth--;
}

static int decode_protected(lua_State *L)
{
    json_reader *r = lua_touserdata(L, 1);
    r->L = L;
    parse_value(r);
    skip_space(r);
    if (r->p != r->end)
        parse_fail(r, "end of text expected");
    return 1;
}

int json_push_decoded(lua_State *L, const char *s, size_t len)
{
    json_reader r = {L, s, s, s + len, 0};
    lua_pushcfunction(L, decode_protected);
    lua_pushlightuserdata(L, &r);
    int status = lua_pcall(L, 1, 1, 0);
    if (status == LUA_OK)
        return 1;
    if (sandbox_must_propagate(L, status))
        return lua_error(L); /* a limit, or out of memory: not a parse error */
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
}
