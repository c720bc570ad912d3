/*
 * script.h — rcscript, the sandboxed Lua 5.4 runtime behind kvd's
 * `/:bucket/scripts/:name/run` route. This header is its whole contract.
 *
 * What it is
 *   A library that compiles and runs one Lua script against one bucket. It
 *   knows nothing of HTTP or of the engine's handles: the caller (the route)
 *   hands it a host vtable that reads and lists keys of the bucket and commits
 *   a batch, the caller's scope (key prefix and permissions), the request
 *   (method, args, body) and gets back a status, headers and a body, or the
 *   reason the run failed.
 *
 * What it guarantees
 *   - Isolation: each run gets a fresh global environment holding only safe
 *     libraries (base without dofile/loadfile/require/warn, `load` of text
 *     only; string without dump; table; math; utf8; coroutine; os.time,
 *     os.date, os.clock). No io, debug, package. Nothing a run does is
 *     visible to a later run, even one on the same reused Lua state.
 *   - Limits: every run has an instruction budget, a memory cap (the Lua
 *     heap, the response body, the write overlay and JSON work all count) and
 *     a wall-clock cap. Hitting one ends the run even through pcall/xpcall
 *     and coroutines, and the run reports which limit it hit.
 *   - Scope: every data access is checked against the current scope; a
 *     script can narrow `kv.scope` (longer prefix, fewer permissions) and
 *     never widen it.
 *   - Transactions: writes go to an overlay that the run's own reads see;
 *     the host's commit callback receives them as one list of rc_op (PUT,
 *     DELETE, INCR) only when the script returned normally, to be applied
 *     with one rc_apply. On an error or a limit it is never called.
 *
 * The price
 *   - Isolation is optimistic and per key: a key the script read with
 *     kv.get and then wrote commits only if its sequence number is still the
 *     one read (RC_IF_SEQ); on a conflict the whole run starts over (up to 8
 *     times, then SCRIPT_ECOMMIT with RC_ECONFLICT). Keys only read are not
 *     checked (write skew is possible), and a key the script only incremented
 *     commits as RC_OP_INCR with no check, so concurrent counters never
 *     conflict and never lose updates — but the number kv.incr returned may
 *     have been returned by a concurrent run too (use kv.get + kv.set for
 *     unique ids).
 *   - One Lua state per thread, reused: memory of an idle thread is that of
 *     one pristine state (21 KiB of Lua heap), its cache of compiled chunks
 *     (at most 32 sources of at most 16 KiB) and whatever the last run left
 *     for the collector (the state is collected after a run that grew it by
 *     1 MiB and replaced when that does not bring it back under 8 MiB).
 *
 * Threads: a script_engine is shared by all threads; script_run and
 * script_compile may be called from any number of threads at once (each
 * thread uses its own Lua state).
 */
#ifndef RCSCRIPT_SCRIPT_H
#define RCSCRIPT_SCRIPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringcask.h" /* rc_type, rc_op, rc_value: the types the host speaks */

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ permissions */

#define SCRIPT_PERM_READ 0x01u      /* kv.get */
#define SCRIPT_PERM_WRITE 0x02u     /* kv.set, kv.incr */
#define SCRIPT_PERM_DELETE 0x04u    /* kv.delete */
#define SCRIPT_PERM_ENUMERATE 0x08u /* kv.list */
#define SCRIPT_PERM_ADMIN 0x10u     /* implies all of the above */
#define SCRIPT_PERM_ALL 0x1fu

/* ------------------------------------------------------------------ config */

typedef struct script_config {
    uint64_t instructions;   /* VM instructions per run; default 10,000,000 */
    size_t memory_bytes;     /* bytes a run may hold; default 16 MiB, min 64 KiB */
    uint32_t timeout_ms;     /* wall-clock cap per run; default 1000 */
    size_t max_value;        /* largest value kv.set accepts; default 16 MiB */
    size_t max_list;         /* largest kv.list limit; default 10,000 */
    unsigned max_headers;    /* kv.header calls per run; default 64 */
    unsigned hook_every;     /* instructions between two limit checks; default 1000 */
    unsigned state_max_runs; /* replace a thread's Lua state after this many
                                runs; 0 = never; default 0. 1 = a fresh state
                                for every run (slower, for comparison) */
} script_config;

/* Fill CFG with the defaults documented above. */
void script_config_default(script_config *cfg);

/* -------------------------------------------------------------------- host */

/* The data access a run needs, over one bucket. Every callback returns 0 or
 * a negative RC_E* code; a run turns such a code into `nil, err` for the
 * script (RC_ENOTFOUND into "not found"). CTX is passed back unchanged. */
typedef struct script_host {
    void *ctx;

    /* Read the committed value of KEY into *OUT (data, len, type; seq and
     * expiry are ignored). OUT->data must stay valid until release(). Return
     * RC_ENOTFOUND when absent or expired. */
    int (*get)(void *ctx, const void *key, size_t klen, rc_value *out);

    /* Free what get() put into *V (may be NULL when get never allocates). */
    void (*release)(void *ctx, rc_value *v);

    /* Call EMIT for each live key starting with PREFIX, in byte order
     * (memcmp, shorter first), at most LIMIT keys. Stop and return EMIT's
     * result when it is non-zero. */
    int (*list)(void *ctx, const void *prefix, size_t plen, size_t limit,
                int (*emit)(void *ectx, const void *key, size_t klen), void *ectx);

    /* Apply OPS[0..N) as one atomic batch (set each op's ks, then rc_apply).
     * Called once per run, only when the script returned normally and wrote
     * something. The ops and their buffers are valid during the call only.
     * On failure store the failing op's index in *FAILED. */
    int (*commit)(void *ctx, rc_op *ops, size_t n, size_t *failed);

    /* Wall-clock for kv.time(), ms since the epoch; NULL: CLOCK_REALTIME. */
    int64_t (*now_ms)(void *ctx);
} script_host;

/* ------------------------------------------------------------ request/out */

typedef struct script_scope {
    const char *prefix; /* keys a run may touch start with this; NULL = "" */
    size_t prefix_len;
    unsigned permissions; /* SCRIPT_PERM_* bits */
} script_scope;

typedef struct script_arg {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} script_arg;

typedef struct script_request {
    const char *method;     /* "GET", "POST", ...; NULL = "GET" */
    const script_arg *args; /* become kv.args[name] = value; a later one wins */
    size_t nargs;
    const void *body; /* kv.body; NULL = "" */
    size_t body_len;
} script_request;

typedef enum script_outcome {
    SCRIPT_OK = 0,
    SCRIPT_ECOMPILE = -1,      /* the source does not compile (message) */
    SCRIPT_ERUNTIME = -2,      /* the script raised an error (message) */
    SCRIPT_EINSTRUCTIONS = -3, /* instruction budget spent */
    SCRIPT_EMEMORY = -4,       /* memory cap reached */
    SCRIPT_ETIMEOUT = -5,      /* wall-clock cap reached */
    SCRIPT_ECOMMIT = -6,       /* host commit failed: host_error, failed_op */
    SCRIPT_EINTERNAL = -7,     /* the runtime itself ran out of memory */
} script_outcome;

typedef struct script_header {
    char *name;  /* NUL-terminated, token characters only */
    char *value; /* NUL-terminated, no CR, LF or NUL */
} script_header;

/* A run's answer. Owned by the caller after script_run; free its buffers
 * with script_result_free(). On failure only outcome, message (and for
 * SCRIPT_ECOMMIT host_error/failed_op) are meaningful: status, headers and
 * body of a failed run are discarded, and nothing was written. */
typedef struct script_result {
    script_outcome outcome;
    int status;             /* kv.status(); 200 when never called */
    script_header *headers; /* kv.header() calls, in order */
    size_t nheaders;
    char *body; /* kv.say() output, NUL-terminated (body_len excludes it) */
    size_t body_len;
    size_t writes;         /* ops committed */
    int host_error;        /* SCRIPT_ECOMMIT: the commit callback's code */
    size_t failed_op;      /* SCRIPT_ECOMMIT: index reported by the host */
    uint64_t instructions; /* executed, to within hook_every */
    size_t memory_peak;    /* bytes, above the pristine state */
    char message[512];     /* why it failed, for the 422 body; "" on success */
} script_result;

void script_result_free(script_result *res);

/* A static name for an outcome ("ok", "compile error", "runtime error",
 * "instruction limit", "memory limit", "time limit", "commit failed",
 * "internal error"). */
const char *script_outcome_name(script_outcome o);

/* ------------------------------------------------------------------ engine */

typedef struct script_engine script_engine;

/* Create an engine with CFG (NULL: defaults). *OUT is owned by the caller;
 * free it with script_engine_destroy(). Errors: RC_EINVAL (memory_bytes below
 * 64 KiB, instructions or timeout_ms 0), RC_ENOMEM. */
int script_engine_create(const script_config *cfg, script_engine **out);

/* Free ENG and the Lua states of every thread. No script_run may be in
 * progress and no thread may call into ENG afterwards. ENG may be NULL. */
void script_engine_destroy(script_engine *eng);

/* Check that SRC[0..LEN) compiles as a Lua 5.4 text chunk named NAME. On
 * failure returns SCRIPT_ECOMPILE and writes the compiler's message, e.g.
 * "hello:3: '=' expected near 'x'", into ERRBUF (NUL-terminated, truncated
 * to ERRLEN). Compiling is bounded by the memory cap. Returns SCRIPT_OK,
 * SCRIPT_ECOMPILE, SCRIPT_EMEMORY or SCRIPT_EINTERNAL. */
int script_compile(script_engine *eng, const char *src, size_t len, const char *name, char *errbuf,
                   size_t errlen);

/* Run SRC[0..LEN) (chunk name NAME) on the calling thread's Lua state with
 * HOST, SCOPE and REQ. Fills *RES (always; free with script_result_free)
 * and returns RES->outcome. The host's commit is called at most once per
 * attempt, from this thread, before script_run returns; a commit that fails
 * with RC_ECONFLICT (a key read by kv.get changed) runs the script again, so
 * the host sees get/list calls and kv.say output of the last attempt only. */
int script_run(script_engine *eng, const char *src, size_t len, const char *name,
               const script_host *host, const script_scope *scope, const script_request *req,
               script_result *res);

/* ---------------------------------------------------------------- helpers */

/* Parse an application/x-www-form-urlencoded string (a query string or a
 * form body) into *ARGS / *NARGS: '+' is a space, %XX decoded, a pair
 * without '=' has an empty value. One allocation: free(*ARGS) frees all.
 * Errors: RC_EINVAL (a bad %-escape), RC_ENOMEM, RC_ELIMIT (more than
 * MAX_ARGS pairs). */
int script_parse_form(const char *s, size_t len, size_t max_args, script_arg **args, size_t *nargs);

/* Permission bits from a name ("read", "write", "delete", "enumerate",
 * "admin"); 0 for an unknown name. */
unsigned script_perm_from_name(const char *name, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* RCSCRIPT_SCRIPT_H */
