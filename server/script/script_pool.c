/*
 * script_pool.c — the engine: per-thread Lua states, and one run from start
 * to commit.
 *
 * Design. Each thread that runs scripts gets a slot (a Lua state built by
 * script_sandbox.c) on first use, found again through a pthread key and
 * freed when the thread exits or the engine is destroyed. Building a state
 * with its libraries costs tens of microseconds, a fresh environment on a
 * kept state a few (docs/SCRIPTS.md has the numbers), so states are kept;
 * what a run leaves behind is only garbage, and the state is collected when
 * a run grew it by more than 1 MiB and replaced when a collection does not
 * bring it back under 4 MiB above its pristine size, or after
 * state_max_runs runs when that is set.
 *
 * A run is one protected call (compile, environment, kv, the script), then,
 * only if it returned normally with no limit hit, a second protected call
 * that turns the write overlay into ops, then the host's commit outside Lua.
 * Whatever happened, the overlay and the environment are dropped and the
 * slot's memory cap lifted before the next run. The memory cap of a run is
 * the state's size when it starts plus memory_bytes, so garbage left by the
 * previous run can only help.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "script_internal.h"

#define STATE_COLLECT_ABOVE (1u << 20)
#define STATE_REPLACE_ABOVE (8u << 20)
#define CACHE_SOURCE_MAX (16u << 10) /* larger sources are compiled every run */
#define CACHE_ENTRIES 32             /* compiled chunks kept per state */
#define SCRIPT_CONFLICT_ATTEMPTS 8   /* runs of one request when its reads conflict */

typedef struct engine_private {
    script_engine pub;
    pthread_key_t key;
    pthread_mutex_t lock;
    script_slot *slots;
} engine_private;

void script_config_default(script_config *cfg)
{
    *cfg = (script_config){
        .instructions = 10000000,
        .memory_bytes = 16u << 20,
        .timeout_ms = 1000,
        .max_value = 16u << 20,
        .max_list = 10000,
        .max_headers = 64,
        .hook_every = 1000,
        .state_max_runs = 0,
    };
}

const char *script_outcome_name(script_outcome o)
{
    switch (o) {
    case SCRIPT_OK:
        return "ok";
    case SCRIPT_ECOMPILE:
        return "compile error";
    case SCRIPT_ERUNTIME:
        return "runtime error";
    case SCRIPT_EINSTRUCTIONS:
        return "instruction limit";
    case SCRIPT_EMEMORY:
        return "memory limit";
    case SCRIPT_ETIMEOUT:
        return "time limit";
    case SCRIPT_ECOMMIT:
        return "commit failed";
    default:
        return "internal error";
    }
}

/* ------------------------------------------------------------------ slots */

static void slot_free(script_slot *slot)
{
    if (slot->L)
        lua_close(slot->L);
    free(slot);
}

static void slot_unlink(engine_private *eng, script_slot *slot)
{
    pthread_mutex_lock(&eng->lock);
    if (slot->prev)
        slot->prev->next = slot->next;
    else
        eng->slots = slot->next;
    if (slot->next)
        slot->next->prev = slot->prev;
    pthread_mutex_unlock(&eng->lock);
}

static void slot_thread_exit(void *p)
{
    script_slot *slot = p;
    slot_unlink((engine_private *)slot->eng, slot);
    slot_free(slot);
}

static bool slot_rebuild(script_slot *slot)
{
    if (slot->L)
        lua_close(slot->L);
    slot->L = sandbox_state_new(slot);
    slot->pristine_bytes = slot->mem.used;
    slot->runs = 0;
    slot->cached = 0;
    return slot->L != NULL;
}

static script_slot *slot_for_thread(engine_private *eng)
{
    script_slot *slot = pthread_getspecific(eng->key);
    if (slot)
        return slot;
    slot = calloc(1, sizeof *slot);
    if (!slot)
        return NULL;
    slot->eng = &eng->pub;
    if (!slot_rebuild(slot) || pthread_setspecific(eng->key, slot) != 0) {
        slot_free(slot);
        return NULL;
    }
    pthread_mutex_lock(&eng->lock);
    slot->next = eng->slots;
    if (eng->slots)
        eng->slots->prev = slot;
    eng->slots = slot;
    pthread_mutex_unlock(&eng->lock);
    return slot;
}

/* ----------------------------------------------------------------- engine */

int script_engine_create(const script_config *cfg, script_engine **out)
{
    script_config c;
    if (cfg)
        c = *cfg;
    else
        script_config_default(&c);
    if (c.memory_bytes < (64u << 10) || c.instructions == 0 || c.timeout_ms == 0 ||
        c.hook_every == 0 || c.hook_every > (1u << 30) || c.max_list == 0)
        return RC_EINVAL;
    engine_private *eng = calloc(1, sizeof *eng);
    if (!eng)
        return RC_ENOMEM;
    eng->pub.cfg = c;
    if (pthread_key_create(&eng->key, slot_thread_exit) != 0) {
        free(eng);
        return RC_ENOMEM;
    }
    pthread_mutex_init(&eng->lock, NULL);
    *out = &eng->pub;
    return RC_OK;
}

void script_engine_destroy(script_engine *pub)
{
    if (!pub)
        return;
    engine_private *eng = (engine_private *)pub;
    pthread_setspecific(eng->key, NULL);
    pthread_key_delete(eng->key);
    script_slot *slot = eng->slots;
    while (slot) {
        script_slot *next = slot->next;
        slot_free(slot);
        slot = next;
    }
    pthread_mutex_destroy(&eng->lock);
    free(eng);
}

/* ---------------------------------------------------------------- compile */

static void copy_message(char *dst, size_t size, const char *src)
{
    if (size == 0)
        return;
    snprintf(dst, size, "%s", src);
}

/* The error object on top of L as text, without running any metamethod. */
static void error_text(lua_State *L, char *dst, size_t size)
{
    switch (lua_type(L, -1)) {
    case LUA_TSTRING:
        copy_message(dst, size, lua_tostring(L, -1));
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, -1))
            snprintf(dst, size, "%lld", (long long)lua_tointeger(L, -1));
        else
            snprintf(dst, size, "%.14g", lua_tonumber(L, -1));
        break;
    default:
        snprintf(dst, size, "(error object is a %s value)", luaL_typename(L, -1));
    }
}

static void chunk_name(char *dst, size_t size, const char *name)
{
    snprintf(dst, size, "=%s", name && *name ? name : "script");
}

static void *compile_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    mem_account *mem = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        mem->used -= old;
        return NULL;
    }
    if (nsize > old && nsize - old > mem->cap - mem->used)
        return NULL;
    void *p = realloc(ptr, nsize);
    if (p)
        mem->used = mem->used - old + nsize;
    return p;
}

int script_compile(script_engine *eng, const char *src, size_t len, const char *name, char *errbuf,
                   size_t errlen)
{
    mem_account mem = {0, eng->cfg.memory_bytes, 0};
    copy_message(errbuf, errlen, "");
    lua_State *L = lua_newstate(compile_alloc, &mem);
    if (!L) {
        copy_message(errbuf, errlen, "out of memory");
        return SCRIPT_EINTERNAL;
    }
    char cname[128];
    chunk_name(cname, sizeof cname, name);
    int status = luaL_loadbufferx(L, src, len, cname, "t");
    int rc = SCRIPT_OK;
    if (status == LUA_ERRMEM) {
        copy_message(errbuf, errlen, "memory limit exceeded while compiling");
        rc = SCRIPT_EMEMORY;
    } else if (status != LUA_OK) {
        error_text(L, errbuf, errlen);
        rc = SCRIPT_ECOMPILE;
    }
    lua_close(L);
    return rc;
}

/* -------------------------------------------------------------------- run */

typedef struct run_args {
    const char *src;
    size_t len;
    const char *chunkname;
    const script_request *req;
    script_run_ctx *run;
    bool compiled;
    rc_op *ops;
    size_t nops;
} run_args;

static const char cache_key = 'C';
static const char current_fn_key = 'R';

/* Push the compiled chunk of A, from the state's cache when the same source
 * under the same name ran before. Raises the compiler's error. */
static void load_chunk(lua_State *L, run_args *a)
{
    if (a->len > CACHE_SOURCE_MAX) {
        if (luaL_loadbufferx(L, a->src, a->len, a->chunkname, "t") != LUA_OK)
            lua_error(L);
        return;
    }
    script_slot *slot = a->run->slot;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &cache_key);
    if (lua_isnil(L, -1) || slot->cached >= CACHE_ENTRIES) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &cache_key);
        slot->cached = 0;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, a->chunkname);
    luaL_addchar(&b, 0);
    luaL_addlstring(&b, a->src, a->len);
    luaL_pushresult(&b); /* cache, key */
    lua_pushvalue(L, -1);
    if (lua_rawget(L, -3) == LUA_TFUNCTION) {
        lua_replace(L, -3);
        lua_pop(L, 1);
        return;
    }
    lua_pop(L, 1);
    if (luaL_loadbufferx(L, a->src, a->len, a->chunkname, "t") != LUA_OK)
        lua_error(L);
    lua_pushvalue(L, -1);
    lua_insert(L, -4); /* fn, cache, key, fn */
    lua_rawset(L, -3);
    lua_pop(L, 1);
    slot->cached++;
}

static int run_protected(lua_State *L)
{
    run_args *a = lua_touserdata(L, 1);
    load_chunk(L, a);
    a->compiled = true;
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &current_fn_key);
    int fn = lua_gettop(L);
    sandbox_push_env(L);
    int env = fn + 1;
    /* the request's own bytes (body, args) are not the script's doing: the
     * cap grows by what building kv took */
    mem_account *mem = &a->run->slot->mem;
    size_t before = mem->used, cap = mem->cap;
    mem->cap = SIZE_MAX;
    api_push_kv(L, a->run, a->req);
    mem->cap = cap;
    if (mem->used > before && cap <= SIZE_MAX - (mem->used - before))
        mem->cap = cap + (mem->used - before);
    lua_setfield(L, env, "kv");
    /* one RNG per state: reseed it so no run can predict the next one's */
    lua_getfield(L, env, "math");
    lua_getfield(L, -1, "randomseed");
    lua_call(L, 0, 0);
    lua_pop(L, 1);
    lua_pushvalue(L, env);
    lua_setupvalue(L, fn, 1);
    lua_settop(L, fn);
    lua_call(L, 0, 0);
    return 0;
}

static int collect_protected(lua_State *L)
{
    run_args *a = lua_touserdata(L, 1);
    a->nops = api_collect_ops(L, &a->ops);
    return 0;
}

static script_outcome limit_outcome(script_limit limit)
{
    switch (limit) {
    case LIMIT_INSTRUCTIONS:
        return SCRIPT_EINSTRUCTIONS;
    case LIMIT_TIME:
        return SCRIPT_ETIMEOUT;
    default:
        return SCRIPT_EMEMORY;
    }
}

static void limit_text(const script_config *cfg, script_outcome o, char *dst, size_t size)
{
    if (o == SCRIPT_EINSTRUCTIONS)
        snprintf(dst, size, "instruction limit: the script ran more than %llu instructions",
                 (unsigned long long)cfg->instructions);
    else if (o == SCRIPT_ETIMEOUT)
        snprintf(dst, size, "time limit: the script ran longer than %u ms", cfg->timeout_ms);
    else
        snprintf(dst, size, "memory limit: the script needed more than %zu bytes",
                 cfg->memory_bytes);
}

static void free_output(script_run_ctx *run)
{
    for (size_t i = 0; i < run->nheaders; i++) {
        free(run->headers[i].name);
        free(run->headers[i].value);
    }
    free(run->headers);
    free(run->body);
    run->headers = NULL;
    run->nheaders = 0;
    run->body = NULL;
}

/* Drop what the run left in the state; collect or rebuild when it grew. */
static void slot_finish(script_slot *slot)
{
    lua_State *L = slot->L;
    slot->mem.cap = SIZE_MAX; /* cleanup must never meet the run's cap */
    sandbox_hooks_off(L);
    lua_settop(L, 0);
    api_reset(L);
    /* a cached chunk must not keep the run's environment (and body) alive */
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &current_fn_key) == LUA_TFUNCTION) {
        lua_pushnil(L);
        lua_setupvalue(L, -2, 1);
        lua_pushnil(L);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &current_fn_key);
    }
    lua_settop(L, 0);
    slot->run = NULL;
    slot->runs++;
    const script_config *cfg = &slot->eng->cfg;
    if (cfg->state_max_runs && slot->runs >= cfg->state_max_runs) {
        slot_rebuild(slot);
        return;
    }
    if (slot->mem.used > slot->pristine_bytes + STATE_COLLECT_ABOVE) {
        lua_gc(L, LUA_GCCOLLECT);
        if (slot->mem.used > slot->pristine_bytes + STATE_REPLACE_ABOVE)
            slot_rebuild(slot);
    }
}

static int run_attempt(script_engine *pub, const char *src, size_t len, const char *name,
                       const script_host *host, const script_scope *scope,
                       const script_request *req, script_result *res)
{
    engine_private *eng = (engine_private *)pub;
    const script_config *cfg = &pub->cfg;
    static const script_request no_request = {0};
    memset(res, 0, sizeof *res);
    res->status = 200;
    if (!req)
        req = &no_request;
    script_slot *slot = slot_for_thread(eng);
    if (slot && !slot->L && !slot_rebuild(slot))
        slot = NULL;
    size_t plen = scope && scope->prefix ? scope->prefix_len : 0;
    char *prefix = malloc(plen + 1);
    if (!slot || !prefix) {
        free(prefix);
        res->outcome = SCRIPT_EINTERNAL;
        copy_message(res->message, sizeof res->message, "out of memory starting a script");
        return res->outcome;
    }
    if (plen)
        memcpy(prefix, scope->prefix, plen);
    prefix[plen] = 0;

    lua_State *L = slot->L;
    script_run_ctx run = {
        .cfg = cfg,
        .host = host,
        .slot = slot,
        .main = L,
        .prefix = prefix,
        .prefix_len = plen,
        .perms = scope ? scope->permissions : 0,
        .deadline_ns = sandbox_now_ns() + (uint64_t)cfg->timeout_ms * 1000000u,
        .status = 200,
    };
    run.mem_base = slot->mem.used;
    slot->mem.peak = slot->mem.used;
    slot->mem.cap = slot->mem.used + cfg->memory_bytes;
    slot->run = &run;

    char cname[128];
    chunk_name(cname, sizeof cname, name);
    run_args a = {src, len, cname, req, &run, false, NULL, 0};
    sandbox_hooks_on(L, cfg);
    lua_pushcfunction(L, run_protected);
    lua_pushlightuserdata(L, &a);
    int status = lua_pcall(L, 1, 0, 0);
    sandbox_hooks_off(L);

    if (run.limit != LIMIT_NONE)
        res->outcome = limit_outcome(run.limit);
    else if (status == LUA_ERRMEM)
        res->outcome = SCRIPT_EMEMORY;
    else if (status != LUA_OK)
        res->outcome = a.compiled ? SCRIPT_ERUNTIME : SCRIPT_ECOMPILE;
    if (res->outcome == SCRIPT_ERUNTIME || res->outcome == SCRIPT_ECOMPILE)
        error_text(L, res->message, sizeof res->message);
    else if (res->outcome != SCRIPT_OK)
        limit_text(cfg, res->outcome, res->message, sizeof res->message);

    if (res->outcome == SCRIPT_OK) {
        lua_settop(L, 0);
        lua_pushcfunction(L, collect_protected);
        lua_pushlightuserdata(L, &a);
        if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
            res->outcome = SCRIPT_EMEMORY;
            limit_text(cfg, res->outcome, res->message, sizeof res->message);
        } else if (a.nops > 0) {
            size_t failed = 0;
            int err = host->commit(host->ctx, a.ops, a.nops, &failed);
            if (err) {
                res->outcome = SCRIPT_ECOMMIT;
                res->host_error = err;
                res->failed_op = failed;
                snprintf(res->message, sizeof res->message,
                         "commit failed: error %d on write %zu of %zu", err, failed + 1, a.nops);
            } else {
                res->writes = a.nops;
            }
        }
    }
    free(a.ops);

    res->instructions = run.instructions;
    res->memory_peak = slot->mem.peak - run.mem_base;
    if (res->outcome == SCRIPT_OK) {
        res->status = run.status;
        res->headers = run.headers;
        res->nheaders = run.nheaders;
        res->body = run.body;
        res->body_len = run.body_len;
        run.headers = NULL;
        run.nheaders = 0;
        run.body = NULL;
        if (!res->body) {
            res->body = calloc(1, 1);
            if (!res->body) {
                res->outcome = SCRIPT_EINTERNAL;
                copy_message(res->message, sizeof res->message, "out of memory");
            }
        }
    }
    free_output(&run);
    free(run.prefix);
    slot->mem.used -= run.charged;
    slot_finish(slot);
    return res->outcome;
}

void script_result_free(script_result *res)
{
    if (!res)
        return;
    for (size_t i = 0; i < res->nheaders; i++) {
        free(res->headers[i].name);
        free(res->headers[i].value);
    }
    free(res->headers);
    free(res->body);
    res->headers = NULL;
    res->nheaders = 0;
    res->body = NULL;
    res->body_len = 0;
}

int script_run(script_engine *eng, const char *src, size_t len, const char *name,
               const script_host *host, const script_scope *scope, const script_request *req,
               script_result *res)
{
    /* A conflict means a key the script read with kv.get changed before its
     * writes committed: nothing was written, so the run starts over and sees
     * the new value. */
    for (unsigned attempt = 1;; attempt++) {
        int rc = run_attempt(eng, src, len, name, host, scope, req, res);
        if (rc != SCRIPT_ECOMMIT || res->host_error != RC_ECONFLICT ||
            attempt >= SCRIPT_CONFLICT_ATTEMPTS)
            return rc;
        script_result_free(res);
    }
}
