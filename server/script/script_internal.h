/*
 * script_internal.h — what the files of rcscript share: the per-thread slot
 * (one Lua state and its memory account), the per-run context, and the entry
 * points of each file. Nothing here is part of the contract in script.h.
 */
#ifndef RCSCRIPT_SCRIPT_INTERNAL_H
#define RCSCRIPT_SCRIPT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "script.h"

typedef struct script_slot script_slot;

typedef enum script_limit {
    LIMIT_NONE = 0,
    LIMIT_INSTRUCTIONS,
    LIMIT_MEMORY,
    LIMIT_TIME,
} script_limit;

/* Every byte the state holds, plus what the runtime charges on the run's
 * behalf (body, headers, JSON work). CAP is SIZE_MAX outside a run. */
typedef struct mem_account {
    size_t used;
    size_t cap;
    size_t peak;
} mem_account;

/* One run: created by script_run on its stack, reachable from Lua through
 * the slot (extraspace of every thread of the state points at the slot). */
typedef struct script_run_ctx {
    const script_config *cfg;
    const script_host *host;
    script_slot *slot;
    lua_State *main;

    /* scope, narrowed in place by kv.scope */
    char *prefix;
    size_t prefix_len;
    unsigned perms;

    /* limits */
    uint64_t instructions;
    uint64_t deadline_ns;
    script_limit limit;
    size_t mem_base; /* mem.used when the run started */

    /* output */
    int status;
    script_header *headers;
    size_t nheaders;
    char *body;
    size_t body_len, body_cap;
    size_t charged; /* bytes charged to mem for body and headers */

    /* write overlay bookkeeping (entries live in a registry table) */
    size_t overlay_deletes;
} script_run_ctx;

struct script_slot {
    script_engine *eng;
    lua_State *L;
    mem_account mem;
    script_run_ctx *run; /* the run in progress, NULL between runs */
    size_t pristine_bytes;
    unsigned runs;
    unsigned cached;          /* compiled chunks in the state's cache */
    script_slot *next, *prev; /* the engine's list of live slots */
};

struct script_engine {
    script_config cfg;
};

/* ------------------------------------------------------- script_sandbox.c */

/* A new state whose allocator charges SLOT->mem, with the safe libraries and
 * the templates the runs copy from. NULL when out of memory. */
lua_State *sandbox_state_new(script_slot *slot);

/* Push a fresh global environment for one run (a copy of the template; the
 * kv table is added by api_push_kv). */
void sandbox_push_env(lua_State *L);

/* Start/stop the count hook that enforces the instruction and time limits. */
void sandbox_hooks_on(lua_State *L, const script_config *cfg);
void sandbox_hooks_off(lua_State *L);

/* Record that RUN hit LIMIT and make every thread raise at its next
 * instruction, so no pcall can swallow it. */
void sandbox_flag_limit(script_run_ctx *run, lua_State *L, script_limit limit);

/* After a protected call inside the sandbox failed with STATUS: true when the
 * failure must propagate (a limit was hit, or STATUS is LUA_ERRMEM, which is
 * then recorded as the memory limit). */
bool sandbox_must_propagate(lua_State *L, int status);

/* The run of the state L belongs to (NULL between runs). */
script_run_ctx *sandbox_run(lua_State *L);

/* Charge N more bytes to the run's memory account; false (and the memory
 * limit flagged) when that passes the cap. */
bool sandbox_charge(script_run_ctx *run, size_t n);
void sandbox_uncharge(script_run_ctx *run, size_t n);

uint64_t sandbox_now_ns(void);

/* Charge STEPS of C work (pattern matching) to the instruction budget and
 * check the deadline; raises the limit (sticky) when one is passed. */
void sandbox_charge_steps(lua_State *L, uint64_t steps);

/* ------------------------------------------------------ script_pattern.c */

/* Replace find, match, gmatch and gsub in the string table at IDX with the
 * step-counting versions. */
void pattern_install(lua_State *L, int idx);

/* ------------------------------------------------------ script_bounded.c */

/* Replace rep in the string table at STRLIB, and insert, remove, move,
 * concat and sort in the table library at TABLIB, with versions that charge
 * their loops to the run (see the file). */
void bounded_install(lua_State *L, int strlib, int tablib);

/* ----------------------------------------------------- script_wrappers.c */

/* The sandbox's versions of base and coroutine functions (see the file).
 * collectgarbage, setmetatable and coroutine.close take the original as
 * upvalue 1; load takes the run's environment as upvalue 1. */
int sandbox_pcall(lua_State *L);
int sandbox_xpcall(lua_State *L);
int sandbox_load(lua_State *L);
int sandbox_collectgarbage(lua_State *L);
int sandbox_setmetatable(lua_State *L);
int sandbox_print(lua_State *L);
int sandbox_resume(lua_State *L);
int sandbox_wrap(lua_State *L);
int sandbox_coclose(lua_State *L);

/* --------------------------------------------------------- script_api.c */

/* Register the per-state pieces of the kv API (metatables, function
 * template). Raises on memory errors (call under protection). */
void api_state_init(lua_State *L);

/* Push the kv object for RUN built from REQ, and create the run's empty
 * write overlay. Raises on memory errors. */
void api_push_kv(lua_State *L, script_run_ctx *run, const script_request *req);

/* Collect the overlay as ops. Must run under protection; *OPS is allocated
 * with malloc (free it), and keys/values point into Lua strings that live
 * until api_reset. Returns the number of ops or raises. */
size_t api_collect_ops(lua_State *L, rc_op **ops);

/* Drop the overlay and the kv object of the finished run. */
void api_reset(lua_State *L);

/* Append bytes to the run's response body, charging memory; raises the
 * memory limit when over the cap. */
void api_body_append(lua_State *L, script_run_ctx *run, const char *s, size_t n);

/* ------------------------------------------------------ script_overlay.c */

/* An overlay entry is a table {op, type, value, ttl_ms, by} at these indices. */
enum { OP_PUT = 1, OP_DEL = 2, OP_INCR = 3 };
enum { E_OP = 1, E_TYPE = 2, E_VALUE = 3, E_TTL = 4, E_BY = 5 };

int overlay_get(lua_State *L);
int overlay_set(lua_State *L);
int overlay_incr(lua_State *L);
int overlay_delete(lua_State *L);
int overlay_list(lua_State *L); /* script_list.c */
void overlay_begin(lua_State *L, script_run_ctx *run);
void overlay_end(lua_State *L);
/* Push the run's overlay table (key -> entry). */
void overlay_push_table(lua_State *L);
/* Push DATA[0..LEN) as a string under protection; returns the status. */
int overlay_push_bytes(lua_State *L, const void *data, size_t len);
/* Push nil, MSG; returns 2. */
int overlay_fail(lua_State *L, const char *msg);
/* The text a script sees for an RC_E* code ("not found", ...). */
const char *overlay_error_text(int err);
bool overlay_permitted(const script_run_ctx *run, unsigned perm);
bool overlay_in_scope(const script_run_ctx *run, const char *key, size_t klen);
script_run_ctx *overlay_need_run(lua_State *L);

/* -------------------------------------------------------- script_json.c */

/* Push the Lua value at IDX encoded as compact JSON text (sorted keys).
 * Raises on values JSON cannot hold (functions, NaN, cycles, depth > 64). */
void json_push_encoded(lua_State *L, int idx);

/* Push the Lua value of JSON text S[0..LEN) (null becomes nil). On malformed
 * text pushes nil and an error message and returns 2; else returns 1. */
int json_push_decoded(lua_State *L, const char *s, size_t len);

#endif /* RCSCRIPT_SCRIPT_INTERNAL_H */
