/*
 * script_pattern.c — string.find, string.match, string.gmatch and
 * string.gsub for scripts, with a matcher that counts its steps.
 *
 * Why. The limit hook only runs between VM instructions, so a call into C
 * runs to its end. Every library call is bounded by the memory cap except
 * backtracking in Lua patterns: string.find(s, ".-.-.-x") on a long subject
 * costs n^4 steps while allocating nothing, and would pin a server thread
 * far past the wall-clock cap. This matcher implements the pattern language
 * of the Lua 5.4 manual (§6.4.1: classes, sets, the four quantifiers,
 * captures and position captures, back-references, %b, %f, anchors) as a
 * backtracking matcher like the stock one, and charges every step to the
 * run's instruction budget: each 1024 steps it checks the budget and the
 * deadline, and raises the limit like the hook does (sticky, so pcall cannot
 * catch it). One match step costs about what one VM instruction does.
 *
 * The front ends follow the manual's rules for init positions, plain find,
 * anchors, gmatch's init and its refusal to match an empty string where the
 * previous match ended, and gsub's string/table/function replacements. The
 * tests compare every function with the stock library on a corpus of
 * patterns (tests/server/test_script_pattern.c).
 */
#include <ctype.h>
#include <string.h>

#include <lauxlib.h>

#include "script_internal.h"

#define PAT_MAXCAPTURES 32
#define PAT_MAXDEPTH 200
#define PAT_STEP_BATCH 1024u
#define CAP_UNFINISHED (-1)
#define CAP_POSITION (-2)
#define SPECIALS "^$*+?.([%-"

typedef struct matcher {
    const char *src_init, *src_end, *p_end;
    lua_State *L;
    int level, depth;
    unsigned steps;
    struct {
        const char *init;
        ptrdiff_t len;
    } capture[PAT_MAXCAPTURES];
} matcher;

static void step(matcher *ms)
{
    if (++ms->steps >= PAT_STEP_BATCH) {
        ms->steps = 0;
        sandbox_charge_steps(ms->L, PAT_STEP_BATCH);
    }
}

static bool class_matches(int c, int cl)
{
    bool res;
    switch (tolower(cl)) {
    case 'a':
        res = isalpha(c);
        break;
    case 'c':
        res = iscntrl(c);
        break;
    case 'd':
        res = isdigit(c);
        break;
    case 'g':
        res = isgraph(c);
        break;
    case 'l':
        res = islower(c);
        break;
    case 'p':
        res = ispunct(c);
        break;
    case 's':
        res = isspace(c);
        break;
    case 'u':
        res = isupper(c);
        break;
    case 'w':
        res = isalnum(c);
        break;
    case 'x':
        res = isxdigit(c);
        break;
    default:
        return cl == c;
    }
    return isupper(cl) ? !res : res;
}

/* The end of the single-character class starting at P. */
static const char *class_end(matcher *ms, const char *p)
{
    switch (*p++) {
    case '%':
        if (p == ms->p_end)
            luaL_error(ms->L, "malformed pattern (ends with '%%')");
        return p + 1;
    case '[':
        if (p < ms->p_end && *p == '^')
            p++;
        do { /* the first character of a set is never its end */
            if (p == ms->p_end)
                luaL_error(ms->L, "malformed pattern (missing ']')");
            if (*(p++) == '%' && p < ms->p_end)
                p++;
        } while (*p != ']');
        return p + 1;
    default:
        return p;
    }
}

/* Does C belong to the set [P .. END], P at '[' and END at its ']'? */
static bool set_matches(int c, const char *p, const char *end)
{
    bool sig = true;
    if (*(p + 1) == '^') {
        sig = false;
        p++;
    }
    while (++p < end) {
        if (*p == '%') {
            p++;
            if (class_matches(c, (unsigned char)*p))
                return sig;
        } else if (*(p + 1) == '-' && p + 2 < end) {
            if ((unsigned char)*p <= c && c <= (unsigned char)*(p + 2))
                return sig;
            p += 2;
        } else if ((unsigned char)*p == c) {
            return sig;
        }
    }
    return !sig;
}

static bool single_matches(matcher *ms, const char *s, const char *p, const char *ep)
{
    if (s >= ms->src_end)
        return false;
    int c = (unsigned char)*s;
    switch (*p) {
    case '.':
        return true;
    case '%':
        return class_matches(c, (unsigned char)*(p + 1));
    case '[':
        return set_matches(c, p, ep - 1);
    default:
        return (unsigned char)*p == c;
    }
}

static const char *do_match(matcher *ms, const char *s, const char *p);

static const char *match_balance(matcher *ms, const char *s, const char *p)
{
    if (p + 1 >= ms->p_end)
        luaL_error(ms->L, "malformed pattern (missing arguments to '%%b')");
    if (s >= ms->src_end || *s != *p)
        return NULL;
    int open = *p, close = *(p + 1), depth = 1;
    while (++s < ms->src_end) {
        step(ms);
        if (*s == close) {
            if (--depth == 0)
                return s + 1;
        } else if (*s == open) {
            depth++;
        }
    }
    return NULL;
}

static const char *max_expand(matcher *ms, const char *s, const char *p, const char *ep)
{
    ptrdiff_t i = 0;
    while (single_matches(ms, s + i, p, ep)) {
        i++;
        step(ms);
    }
    while (i >= 0) { /* try the longest first, then shorter ones */
        const char *res = do_match(ms, s + i, ep + 1);
        if (res)
            return res;
        i--;
    }
    return NULL;
}

static const char *min_expand(matcher *ms, const char *s, const char *p, const char *ep)
{
    for (;;) {
        const char *res = do_match(ms, s, ep + 1);
        if (res)
            return res;
        if (!single_matches(ms, s, p, ep))
            return NULL;
        s++;
    }
}

static const char *start_capture(matcher *ms, const char *s, const char *p, ptrdiff_t what)
{
    if (ms->level >= PAT_MAXCAPTURES)
        luaL_error(ms->L, "too many captures");
    ms->capture[ms->level].init = s;
    ms->capture[ms->level].len = what;
    ms->level++;
    const char *res = do_match(ms, s, p);
    if (!res)
        ms->level--;
    return res;
}

static const char *end_capture(matcher *ms, const char *s, const char *p)
{
    int l = ms->level - 1;
    while (l >= 0 && ms->capture[l].len != CAP_UNFINISHED)
        l--;
    if (l < 0)
        luaL_error(ms->L, "invalid pattern capture");
    ms->capture[l].len = s - ms->capture[l].init;
    const char *res = do_match(ms, s, p);
    if (!res)
        ms->capture[l].len = CAP_UNFINISHED;
    return res;
}

static int check_capture(matcher *ms, int l)
{
    l -= '1';
    if (l < 0 || l >= ms->level || ms->capture[l].len == CAP_UNFINISHED)
        return luaL_error(ms->L, "invalid capture index %%%d", l + 1);
    return l;
}

static const char *match_backref(matcher *ms, const char *s, int l)
{
    l = check_capture(ms, l);
    ptrdiff_t len = ms->capture[l].len;
    if (len >= 0 && ms->src_end - s >= len && memcmp(ms->capture[l].init, s, (size_t)len) == 0)
        return s + len;
    return NULL;
}

static const char *do_match(matcher *ms, const char *s, const char *p)
{
    if (ms->depth-- == 0)
        luaL_error(ms->L, "pattern too complex");
    for (;;) {
        step(ms);
        if (p == ms->p_end)
            break;
        if (*p == '(') {
            if (p + 1 < ms->p_end && *(p + 1) == ')')
                s = start_capture(ms, s, p + 2, CAP_POSITION);
            else
                s = start_capture(ms, s, p + 1, CAP_UNFINISHED);
            break;
        }
        if (*p == ')') {
            s = end_capture(ms, s, p + 1);
            break;
        }
        if (*p == '$' && p + 1 == ms->p_end) {
            if (s != ms->src_end)
                s = NULL;
            break;
        }
        if (*p == '%' && p + 1 < ms->p_end) {
            char k = *(p + 1);
            if (k == 'b') {
                s = match_balance(ms, s, p + 2);
                if (!s)
                    break;
                p += 4;
                continue;
            }
            if (k == 'f') {
                p += 2;
                if (p >= ms->p_end || *p != '[')
                    luaL_error(ms->L, "missing '[' after '%%f' in pattern");
                const char *ep = class_end(ms, p);
                int prev = s == ms->src_init ? 0 : (unsigned char)*(s - 1);
                int cur = s < ms->src_end ? (unsigned char)*s : 0;
                if (!set_matches(prev, p, ep - 1) && set_matches(cur, p, ep - 1)) {
                    p = ep;
                    continue;
                }
                s = NULL;
                break;
            }
            if (isdigit((unsigned char)k)) {
                s = match_backref(ms, s, (unsigned char)k);
                if (!s)
                    break;
                p += 2;
                continue;
            }
        }
        /* a single-character class, maybe with a quantifier */
        const char *ep = class_end(ms, p);
        if (!single_matches(ms, s, p, ep)) {
            if (ep < ms->p_end && (*ep == '*' || *ep == '?' || *ep == '-')) {
                p = ep + 1; /* it may match nothing */
                continue;
            }
            s = NULL;
            break;
        }
        char q = ep < ms->p_end ? *ep : 0;
        if (q == '?') {
            const char *res = do_match(ms, s + 1, ep + 1);
            if (res) {
                s = res;
                break;
            }
            p = ep + 1;
            continue;
        }
        if (q == '+') {
            s = max_expand(ms, s + 1, p, ep);
            break;
        }
        if (q == '*') {
            s = max_expand(ms, s, p, ep);
            break;
        }
        if (q == '-') {
            s = min_expand(ms, s, p, ep);
            break;
        }
        s++;
        p = ep;
    }
    ms->depth++;
    return s;
}

/* ------------------------------------------------------------ captures */

static void push_one_capture(matcher *ms, int i, const char *s, const char *e)
{
    if (i >= ms->level) {
        if (i != 0)
            luaL_error(ms->L, "invalid capture index %%%d", i + 1);
        lua_pushlstring(ms->L, s, (size_t)(e - s)); /* the whole match */
        return;
    }
    ptrdiff_t l = ms->capture[i].len;
    if (l == CAP_UNFINISHED)
        luaL_error(ms->L, "unfinished capture");
    if (l == CAP_POSITION)
        lua_pushinteger(ms->L, (ms->capture[i].init - ms->src_init) + 1);
    else
        lua_pushlstring(ms->L, ms->capture[i].init, (size_t)l);
}

static int push_captures(matcher *ms, const char *s, const char *e)
{
    int n = (ms->level == 0 && s) ? 1 : ms->level;
    luaL_checkstack(ms->L, n, "too many captures");
    for (int i = 0; i < n; i++)
        push_one_capture(ms, i, s, e);
    return n;
}

static void matcher_init(matcher *ms, lua_State *L, const char *s, size_t ls, const char *p,
                         size_t lp)
{
    ms->L = L;
    ms->src_init = s;
    ms->src_end = s + ls;
    ms->p_end = p + lp;
    ms->steps = 0;
}

static void matcher_reset(matcher *ms)
{
    ms->level = 0;
    ms->depth = PAT_MAXDEPTH;
}

static size_t start_index(lua_Integer pos, size_t len)
{
    if (pos > 0)
        return (size_t)pos;
    if (pos == 0)
        return 1;
    if (pos < -(lua_Integer)len)
        return 1;
    return len + (size_t)pos + 1;
}

static bool has_specials(const char *p, size_t lp)
{
    for (size_t i = 0; i < lp; i++)
        if (p[i] != 0 && strchr(SPECIALS, p[i]))
            return true;
    return false;
}

/* ------------------------------------------------------------ front ends */

static int find_aux(lua_State *L, bool find)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_index(luaL_optinteger(L, 3, 1), ls) - 1;
    if (init > ls) {
        luaL_pushfail(L);
        return 1;
    }
    if (find && (lua_toboolean(L, 4) || !has_specials(p, lp))) {
        const char *hit = memmem(s + init, ls - init, p, lp);
        sandbox_charge_steps(L, (ls - init) / 16);
        if (!hit) {
            luaL_pushfail(L);
            return 1;
        }
        lua_pushinteger(L, (hit - s) + 1);
        lua_pushinteger(L, (lua_Integer)((hit - s) + lp));
        return 2;
    }
    matcher ms;
    bool anchor = lp > 0 && *p == '^';
    if (anchor) {
        p++;
        lp--;
    }
    matcher_init(&ms, L, s, ls, p, lp);
    const char *s1 = s + init;
    do {
        matcher_reset(&ms);
        const char *e = do_match(&ms, s1, p);
        if (e) {
            if (find) {
                lua_pushinteger(L, (s1 - s) + 1);
                lua_pushinteger(L, e - s);
                return push_captures(&ms, NULL, 0) + 2;
            }
            return push_captures(&ms, s1, e);
        }
    } while (s1++ < ms.src_end && !anchor);
    luaL_pushfail(L);
    return 1;
}

static int pattern_find(lua_State *L)
{
    return find_aux(L, true);
}

static int pattern_match(lua_State *L)
{
    return find_aux(L, false);
}

typedef struct gmatch_state {
    const char *src, *p, *lastmatch;
    matcher ms;
} gmatch_state;

static int gmatch_step(lua_State *L)
{
    gmatch_state *gm = lua_touserdata(L, lua_upvalueindex(3));
    gm->ms.L = L;
    for (const char *src = gm->src; src <= gm->ms.src_end; src++) {
        matcher_reset(&gm->ms);
        const char *e = do_match(&gm->ms, src, gm->p);
        if (e && e != gm->lastmatch) {
            gm->src = gm->lastmatch = e;
            return push_captures(&gm->ms, src, e);
        }
    }
    return 0;
}

static int pattern_gmatch(lua_State *L)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_index(luaL_optinteger(L, 3, 1), ls) - 1;
    if (init > ls)
        init = ls + 1;
    lua_settop(L, 2);
    gmatch_state *gm = lua_newuserdatauv(L, sizeof *gm, 0);
    matcher_init(&gm->ms, L, s, ls, p, lp);
    gm->src = s + init;
    gm->p = p;
    gm->lastmatch = NULL;
    lua_pushcclosure(L, gmatch_step, 3); /* subject and pattern stay anchored */
    return 1;
}

static void add_string_repl(matcher *ms, luaL_Buffer *b, const char *s, const char *e)
{
    size_t l;
    lua_State *L = ms->L;
    const char *news = lua_tolstring(L, 3, &l);
    for (size_t i = 0; i < l; i++) {
        if (news[i] != '%') {
            luaL_addchar(b, news[i]);
            continue;
        }
        i++;
        if (i < l && news[i] == '%') {
            luaL_addchar(b, '%');
        } else if (i < l && isdigit((unsigned char)news[i])) {
            if (news[i] == '0') {
                luaL_addlstring(b, s, (size_t)(e - s));
            } else {
                push_one_capture(ms, news[i] - '1', s, e);
                luaL_tolstring(L, -1, NULL);
                lua_remove(L, -2);
                luaL_addvalue(b);
            }
        } else {
            luaL_error(L, "invalid use of '%%' in replacement string");
        }
    }
}

/* Add the replacement of the match S..E to B; false when the original
 * text was kept. */
static bool add_value(matcher *ms, luaL_Buffer *b, const char *s, const char *e, int tr)
{
    lua_State *L = ms->L;
    if (tr == LUA_TFUNCTION) {
        lua_pushvalue(L, 3);
        int n = push_captures(ms, s, e);
        lua_call(L, n, 1);
    } else if (tr == LUA_TTABLE) {
        push_one_capture(ms, 0, s, e);
        lua_gettable(L, 3);
    } else {
        add_string_repl(ms, b, s, e);
        return true;
    }
    if (!lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        luaL_addlstring(b, s, (size_t)(e - s));
        return false;
    }
    if (!lua_isstring(L, -1))
        return luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    luaL_addvalue(b);
    return true;
}

static int pattern_gsub(lua_State *L)
{
    size_t srcl, lp;
    const char *src = luaL_checklstring(L, 1, &srcl);
    const char *p = luaL_checklstring(L, 2, &lp);
    const char *lastmatch = NULL;
    int tr = lua_type(L, 3);
    lua_Integer max_s = luaL_optinteger(L, 4, (lua_Integer)srcl + 1);
    luaL_argexpected(
        L, tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION || tr == LUA_TTABLE, 3,
        "string/function/table");
    bool anchor = lp > 0 && *p == '^';
    if (anchor) {
        p++;
        lp--;
    }
    matcher ms;
    matcher_init(&ms, L, src, srcl, p, lp);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    lua_Integer n = 0;
    bool changed = false;
    while (n < max_s) {
        matcher_reset(&ms);
        const char *e = do_match(&ms, src, p);
        if (e && e != lastmatch) {
            n++;
            changed = add_value(&ms, &b, src, e, tr) | changed;
            src = lastmatch = e;
        } else if (src < ms.src_end) {
            luaL_addchar(&b, *src++);
        } else {
            break;
        }
        if (anchor)
            break;
    }
    if (!changed) {
        lua_pushvalue(L, 1);
    } else {
        luaL_addlstring(&b, src, (size_t)(ms.src_end - src));
        luaL_pushresult(&b);
    }
    lua_pushinteger(L, n);
    return 2;
}

void pattern_install(lua_State *L, int string_table)
{
    static const luaL_Reg funcs[] = {
        {"find", pattern_find},
        {"match", pattern_match},
        {"gmatch", pattern_gmatch},
        {"gsub", pattern_gsub},
        {NULL, NULL},
    };
    string_table = lua_absindex(L, string_table);
    for (int i = 0; funcs[i].name; i++) {
        lua_pushcfunction(L, funcs[i].func);
        lua_setfield(L, string_table, funcs[i].name);
    }
}
