/*
 * script_list.c — kv.list: the bucket's keys merged with the run's overlay.
 *
 * Design. The host lists the committed keys under the prefix in byte order,
 * asked for LIMIT plus the number of deletions in the overlay, so keys the
 * script deleted cannot leave the answer short. Each key is pushed from the
 * host's emit callback under a protected call (a memory error stops the
 * listing and is re-raised only after the host has released its list). The
 * overlay's live keys under the prefix are sorted and merged in; a host key
 * that the overlay knows (set, incremented or deleted) is taken from the
 * overlay instead. A prefix shorter than the scope's is clamped to it, since
 * that lists exactly what the scope can see; a prefix outside the scope is
 * refused.
 */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "script_internal.h"

/* ------------------------------------------------------------- kv.list */

typedef struct list_emit {
    lua_State *L;
    int table;
    lua_Integer n;
    int status;
} list_emit;

static int list_emit_key(void *ectx, const void *key, size_t klen)
{
    list_emit *e = ectx;
    e->status = overlay_push_bytes(e->L, key, klen);
    if (e->status != LUA_OK)
        return 1;
    lua_rawseti(e->L, e->table, ++e->n);
    return 0;
}

typedef struct key_ref {
    const char *p;
    size_t n;
} key_ref;

static int key_cmp(const void *pa, const void *pb)
{
    const key_ref *a = pa, *b = pb;
    int c = memcmp(a->p, b->p, a->n < b->n ? a->n : b->n);
    if (c)
        return c;
    return (a->n > b->n) - (a->n < b->n);
}

int overlay_list(lua_State *L)
{
    script_run_ctx *run = overlay_need_run(L);
    size_t plen;
    const char *prefix = luaL_optlstring(L, 1, "", &plen);
    lua_Integer limit = luaL_optinteger(L, 2, 1000);
    luaL_argcheck(L, limit >= 1 && (lua_Unsigned)limit <= run->cfg->max_list, 2,
                  "limit out of range");
    lua_settop(L, 2);
    if (!overlay_permitted(run, SCRIPT_PERM_ENUMERATE))
        return overlay_fail(L, "forbidden: the scope does not permit this");
    if (!overlay_in_scope(run, prefix, plen)) {
        if (plen < run->prefix_len && memcmp(prefix, run->prefix, plen) == 0) {
            prefix = run->prefix; /* a shorter prefix lists what the scope sees */
            plen = run->prefix_len;
        } else {
            return overlay_fail(L, "forbidden: prefix outside the scope");
        }
    }
    lua_pushlstring(L, prefix, plen); /* 3: anchor the effective prefix */
    prefix = lua_tostring(L, 3);

    lua_newtable(L); /* 4: the host's keys */
    list_emit e = {L, 4, 0, LUA_OK};
    size_t ask = (size_t)limit + run->overlay_deletes;
    int err = run->host->list(run->host->ctx, prefix, plen, ask, list_emit_key, &e);
    if (e.status != LUA_OK) {
        sandbox_must_propagate(L, e.status);
        return lua_error(L);
    }
    if (err)
        return overlay_fail(L, overlay_error_text(err));

    /* the overlay's live keys under the prefix, sorted */
    overlay_push_table(L); /* 5 */
    size_t count = 0;
    lua_pushnil(L);
    while (lua_next(L, 5)) {
        count++;
        lua_pop(L, 1);
    }
    key_ref *refs = lua_newuserdatauv(L, (count ? count : 1) * sizeof *refs, 0); /* 6 */
    size_t nref = 0;
    lua_pushnil(L);
    while (lua_next(L, 5)) {
        size_t kl;
        const char *k = lua_tolstring(L, -2, &kl);
        lua_rawgeti(L, -1, E_OP);
        int op = (int)lua_tointeger(L, -1);
        lua_pop(L, 2);
        if (op != OP_DEL && kl >= plen && memcmp(k, prefix, plen) == 0)
            refs[nref++] = (key_ref){k, kl};
    }
    qsort(refs, nref, sizeof *refs, key_cmp);

    lua_createtable(L, (int)(limit < 64 ? limit : 64), 0); /* 7: the answer */
    lua_Integer out = 0, hi = 1;
    size_t oi = 0;
    while (out < limit) {
        /* next host key that the overlay does not override */
        key_ref h = {NULL, 0};
        while (hi <= e.n) {
            lua_rawgeti(L, 4, hi);
            lua_pushvalue(L, -1);
            lua_rawget(L, 5);
            bool overridden = !lua_isnil(L, -1);
            lua_pop(L, 1);
            if (!overridden) {
                h.p = lua_tolstring(L, -1, &h.n);
                lua_pop(L, 1); /* still anchored in table 4 */
                break;
            }
            lua_pop(L, 1);
            hi++;
        }
        bool have_h = hi <= e.n, have_o = oi < nref;
        if (!have_h && !have_o)
            break;
        if (have_h && (!have_o || key_cmp(&h, &refs[oi]) < 0)) {
            lua_rawgeti(L, 4, hi++);
        } else {
            lua_pushlstring(L, refs[oi].p, refs[oi].n);
            oi++;
        }
        lua_rawseti(L, 7, ++out);
    }
    return 1;
}
