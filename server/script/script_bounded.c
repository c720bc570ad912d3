/*
 * script_bounded.c — the library functions whose loops the memory cap does
 * not bound, replaced by versions that charge their steps to the run.
 *
 * Design. The count hook only fires between VM instructions, so a C function
 * runs to its end. Most C functions do work proportional to the memory they
 * allocate, which the cap bounds; these do not:
 *   - string.rep(s, n, sep) with s and sep both empty loops n times and
 *     allocates nothing: it returns "" at once here;
 *   - table.insert, remove, move and concat loop over an index range that
 *     comes from the arguments or from a __len metamethod (which may lie),
 *     and a read or write of a missing key allocates nothing: they are
 *     re-implemented here, as in Lua 5.4's ltablib.c, charging one step per
 *     element moved, in chunks of CHUNK;
 *   - table.sort compares O(n log n) times and a C __index/__newindex (such
 *     as rawlen or rawequal) keeps that out of the VM: the stock sort runs
 *     with a comparator that charges one step per comparison.
 * A charge past the instruction budget or the deadline raises the limit,
 * sticky as from the hook (sandbox_charge_steps).
 */
#include <lauxlib.h>
#include <lualib.h>

#include "script_internal.h"

#define CHUNK 256

#define TAB_R 1
#define TAB_W 2
#define TAB_L 4
#define TAB_RW (TAB_R | TAB_W)

/* ltablib.c's checktab: a table, or anything whose metatable has the
 * metamethods the operation needs. */
static int has_field(lua_State *L, const char *key, int n)
{
    lua_pushstring(L, key);
    return lua_rawget(L, -n) != LUA_TNIL;
}

static void check_tab(lua_State *L, int arg, int what)
{
    if (lua_type(L, arg) == LUA_TTABLE)
        return;
    int n = 1;
    if (lua_getmetatable(L, arg) && (!(what & TAB_R) || has_field(L, "__index", ++n)) &&
        (!(what & TAB_W) || has_field(L, "__newindex", ++n)) &&
        (!(what & TAB_L) || has_field(L, "__len", ++n)))
        lua_pop(L, n);
    else
        luaL_checktype(L, arg, LUA_TTABLE);
}

static lua_Integer tab_len(lua_State *L, int arg, int what)
{
    check_tab(L, arg, what | TAB_L);
    return luaL_len(L, arg);
}

/* One step per element, charged every CHUNK elements (and for the rest at
 * the end) so the clock is read rarely. */
typedef struct ticker {
    lua_State *L;
    unsigned pending;
} ticker;

static void tick(ticker *t)
{
    if (++t->pending == CHUNK) {
        sandbox_charge_steps(t->L, CHUNK);
        t->pending = 0;
    }
}

static void tick_flush(ticker *t)
{
    if (t->pending)
        sandbox_charge_steps(t->L, t->pending);
    t->pending = 0;
}

static int bounded_rep(lua_State *L)
{
    size_t l, lsep;
    luaL_checklstring(L, 1, &l);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_optlstring(L, 3, "", &lsep);
    if (n <= 0 || (l == 0 && lsep == 0)) {
        lua_pushliteral(L, "");
        return 1;
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static int bounded_insert(lua_State *L)
{
    ticker t = {L, 0};
    lua_Integer e = luaL_intop(+, tab_len(L, 1, TAB_RW), 1);
    lua_Integer pos;
    switch (lua_gettop(L)) {
    case 2:
        pos = e;
        break;
    case 3:
        pos = luaL_checkinteger(L, 2);
        luaL_argcheck(L, (lua_Unsigned)pos - 1u < (lua_Unsigned)e, 2, "position out of bounds");
        for (lua_Integer i = e; i > pos; i--) {
            tick(&t);
            lua_geti(L, 1, i - 1);
            lua_seti(L, 1, i);
        }
        break;
    default:
        return luaL_error(L, "wrong number of arguments to 'insert'");
    }
    tick_flush(&t);
    lua_seti(L, 1, pos);
    return 0;
}

static int bounded_remove(lua_State *L)
{
    ticker t = {L, 0};
    lua_Integer size = tab_len(L, 1, TAB_RW);
    lua_Integer pos = luaL_optinteger(L, 2, size);
    if (pos != size)
        luaL_argcheck(L, (lua_Unsigned)pos - 1u <= (lua_Unsigned)size, 2, "position out of bounds");
    lua_geti(L, 1, pos);
    for (; pos < size; pos++) {
        tick(&t);
        lua_geti(L, 1, pos + 1);
        lua_seti(L, 1, pos);
    }
    tick_flush(&t);
    lua_pushnil(L);
    lua_seti(L, 1, pos);
    return 1;
}

static int bounded_move(lua_State *L)
{
    ticker t = {L, 0};
    lua_Integer f = luaL_checkinteger(L, 2);
    lua_Integer e = luaL_checkinteger(L, 3);
    lua_Integer to = luaL_checkinteger(L, 4);
    int tt = !lua_isnoneornil(L, 5) ? 5 : 1;
    check_tab(L, 1, TAB_R);
    check_tab(L, tt, TAB_W);
    if (e >= f) {
        luaL_argcheck(L, f > 0 || e < LUA_MAXINTEGER + f, 3, "too many elements to move");
        lua_Integer n = e - f + 1;
        luaL_argcheck(L, to <= LUA_MAXINTEGER - n + 1, 4, "destination wrap around");
        if (to > e || to <= f || (tt != 1 && !lua_compare(L, 1, tt, LUA_OPEQ))) {
            for (lua_Integer i = 0; i < n; i++) {
                tick(&t);
                lua_geti(L, 1, f + i);
                lua_seti(L, tt, to + i);
            }
        } else {
            for (lua_Integer i = n - 1; i >= 0; i--) {
                tick(&t);
                lua_geti(L, 1, f + i);
                lua_seti(L, tt, to + i);
            }
        }
        tick_flush(&t);
    }
    lua_pushvalue(L, tt);
    return 1;
}

static void concat_field(lua_State *L, luaL_Buffer *b, lua_Integer i)
{
    lua_geti(L, 1, i);
    if (!lua_isstring(L, -1))
        luaL_error(L, "invalid value (at index %I) in table for 'concat'", (LUAI_UACINT)i);
    luaL_addvalue(b);
}

static int bounded_concat(lua_State *L)
{
    ticker t = {L, 0};
    lua_Integer last = tab_len(L, 1, TAB_R);
    size_t lsep;
    const char *sep = luaL_optlstring(L, 2, "", &lsep);
    lua_Integer i = luaL_optinteger(L, 3, 1);
    last = luaL_optinteger(L, 4, last);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (; i < last; i++) {
        tick(&t);
        concat_field(L, &b, i);
        luaL_addlstring(&b, sep, lsep);
    }
    if (i == last)
        concat_field(L, &b, i);
    luaL_pushresult(&b);
    tick_flush(&t);
    return 1;
}

/* The comparator table.sort is given: the script's own (upvalue 1) or the
 * `<` operator, after one step is charged. */
static int counted_less(lua_State *L)
{
    script_run_ctx *run = sandbox_run(L);
    if (run && (run->limit != LIMIT_NONE || (++run->instructions & (CHUNK - 1)) == 0 ||
                run->instructions >= run->cfg->instructions))
        sandbox_charge_steps(L, 0);
    if (lua_isnil(L, lua_upvalueindex(1))) {
        lua_pushboolean(L, lua_compare(L, 1, 2, LUA_OPLT));
        return 1;
    }
    lua_settop(L, 2);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, 2, 1);
    return 1;
}

static int bounded_sort(lua_State *L)
{
    lua_settop(L, 2);
    lua_pushvalue(L, lua_upvalueindex(1));
    if (!lua_isnil(L, 2) && !lua_isfunction(L, 2)) { /* the stock sort's error */
        lua_insert(L, 1);
        lua_call(L, 2, 0);
        return 0;
    }
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, counted_less, 1);
    lua_call(L, 2, 0);
    return 0;
}

void bounded_install(lua_State *L, int strlib, int tablib)
{
    strlib = lua_absindex(L, strlib);
    tablib = lua_absindex(L, tablib);
    lua_getfield(L, strlib, "rep");
    lua_pushcclosure(L, bounded_rep, 1);
    lua_setfield(L, strlib, "rep");
    lua_getfield(L, tablib, "sort");
    lua_pushcclosure(L, bounded_sort, 1);
    lua_setfield(L, tablib, "sort");
    static const luaL_Reg table_fns[] = {
        {"insert", bounded_insert},
        {"remove", bounded_remove},
        {"move", bounded_move},
        {"concat", bounded_concat},
        {NULL, NULL},
    };
    for (const luaL_Reg *r = table_fns; r->name; r++) {
        lua_pushcfunction(L, r->func);
        lua_setfield(L, tablib, r->name);
    }
}
