/*
 * fuzz_script.c — arbitrary Lua source compiled and run in kvd's script
 * sandbox (server/script/, library rcscript) under tight limits, against an
 * in-memory host that checks every call the runtime makes into it.
 *
 * Built as the target fuzz_lua (server/script/CMakeLists.txt already has a
 * target named fuzz_script, for kv.json_decode and the pattern matcher).
 *
 * Input: a control byte, then the source; a NUL splits off the request body.
 * Control bits pick the caller's scope (no prefix or "u:", full or partial
 * permissions) and whether the host's commit reports a conflict (the
 * runtime then reruns the script, up to its retry limit).
 *
 * What must hold for every input, beyond "no crash, no UB, no leak":
 *   - the run ends with a known outcome, within the wall-clock cap plus a
 *     margin for the sanitizers (libFuzzer's -timeout catches a hang);
 *   - nothing escapes: the host only sees keys and prefixes inside the scope
 *     and only ops the permissions allow; nothing was committed unless the
 *     run succeeded; no file appears in (or vanishes from) the working
 *     directory, nor at the canary path; and no process is started: the
 *     harness defines system, popen, fork, vfork, execve, execvp and
 *     posix_spawn itself (the executable's definitions interpose on liblua's
 *     calls), and each aborts when called during a run;
 *   - a successful result is well formed: status 200..599, body
 *     NUL-terminated at its length, header names and values without CR/LF.
 * Seeds: the sandbox escape attempts and limit breakers of
 * tests/server/test_script_sandbox.c and test_script_limits.c, and normal
 * scripts.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "script.h"

#define RUN_TIMEOUT_MS 100u
#define RUN_SLACK_MS 2000u
static const char canary[] = "/tmp/rcscript-pwned";

typedef struct host_state {
    const char *prefix;
    size_t prefix_len;
    unsigned perms;
    bool conflict; /* commit answers RC_ECONFLICT (the runtime retries) */
    unsigned commits_ok;
    size_t last_ops;
} host_state;

static const struct {
    const char *key, *val;
    rc_type type;
} store[] = {
    {"a", "1", RC_TYPE_INT},
    {"u:1", "41", RC_TYPE_INT},
    {"u:2", "2.5", RC_TYPE_FLOAT},
    {"u:doc", "{\"n\":[1,2]}", RC_TYPE_JSON},
    {"u:raw", "\x01\xff", RC_TYPE_RAW},
    {"z", "", RC_TYPE_RAW},
};
#define STORE_N (sizeof store / sizeof store[0])

static bool in_scope(const host_state *h, const void *key, size_t klen)
{
    return klen >= h->prefix_len && memcmp(key, h->prefix, h->prefix_len) == 0;
}

static bool allowed(const host_state *h, unsigned perm)
{
    return (h->perms & SCRIPT_PERM_ADMIN) != 0 || (h->perms & perm) != 0;
}

static int host_get(void *ctx, const void *key, size_t klen, rc_value *out)
{
    host_state *h = ctx;
    /* kv.incr reads the current value too, so write alone may read */
    FUZZ_CHECK(in_scope(h, key, klen) && allowed(h, SCRIPT_PERM_READ | SCRIPT_PERM_WRITE));
    for (size_t i = 0; i < STORE_N; i++)
        if (strlen(store[i].key) == klen && memcmp(store[i].key, key, klen) == 0) {
            memset(out, 0, sizeof *out);
            out->data = (void *)store[i].val;
            out->len = strlen(store[i].val);
            out->type = store[i].type;
            out->seq = i + 1;
            return 0;
        }
    return RC_ENOTFOUND;
}

static int host_list(void *ctx, const void *prefix, size_t plen, size_t limit,
                     int (*emit)(void *, const void *, size_t), void *ectx)
{
    host_state *h = ctx;
    FUZZ_CHECK(in_scope(h, prefix, plen) && allowed(h, SCRIPT_PERM_ENUMERATE));
    size_t sent = 0;
    for (size_t i = 0; i < STORE_N && sent < limit; i++) {
        size_t kl = strlen(store[i].key);
        if (kl < plen || memcmp(store[i].key, prefix, plen) != 0)
            continue;
        int rc = emit(ectx, store[i].key, kl);
        if (rc != 0)
            return rc;
        sent++;
    }
    return 0;
}

static int host_commit(void *ctx, rc_op *ops, size_t n, size_t *failed)
{
    host_state *h = ctx;
    FUZZ_CHECK(n > 0);
    for (size_t i = 0; i < n; i++) {
        const rc_op *op = &ops[i];
        FUZZ_CHECK(in_scope(h, op->key, op->klen));
        FUZZ_CHECK(op->klen >= 1 && op->klen <= RC_KEY_MAX);
        switch (op->kind) {
        case RC_OP_PUT:
        case RC_OP_INCR:
            FUZZ_CHECK(allowed(h, SCRIPT_PERM_WRITE));
            break;
        case RC_OP_DELETE:
            FUZZ_CHECK(allowed(h, SCRIPT_PERM_DELETE));
            break;
        default:
            FUZZ_CHECK(!"a script committed an op kind it cannot make");
        }
    }
    if (h->conflict) {
        *failed = 0;
        return RC_ECONFLICT;
    }
    h->commits_ok++;
    h->last_ops = n;
    return 0;
}

static int64_t host_now(void *ctx)
{
    (void)ctx;
    return 1700000000000;
}

/* Process creation, interposed. While a script runs, reaching any of these
 * is an escape and aborts; outside a run they forward to libc, because
 * libFuzzer itself uses system() for -jobs and -fork. vfork forwards to fork:
 * returning from a wrapper is not allowed after a real vfork. */
static bool in_script;

static void *libc_symbol(const char *name)
{
    void *fn = dlsym(RTLD_NEXT, name);
    FUZZ_CHECK(fn != NULL);
    return fn;
}

#define NO_SPAWN(what)                                                                             \
    do {                                                                                           \
        if (in_script) {                                                                           \
            fprintf(stderr, "fuzz_lua: a script reached %s\n", what);                              \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int system(const char *cmd)
{
    NO_SPAWN("system");
    int (*real)(const char *) = (int (*)(const char *))libc_symbol("system");
    return real(cmd);
}

FILE *popen(const char *cmd, const char *mode)
{
    NO_SPAWN("popen");
    FILE *(*real)(const char *, const char *) =
        (FILE * (*)(const char *, const char *)) libc_symbol("popen");
    return real(cmd, mode);
}

pid_t fork(void)
{
    NO_SPAWN("fork");
    pid_t (*real)(void) = (pid_t(*)(void))libc_symbol("fork");
    return real();
}

pid_t vfork(void)
{
    NO_SPAWN("vfork");
    return fork();
}

int execve(const char *path, char *const argv[], char *const envp[])
{
    NO_SPAWN("execve");
    int (*real)(const char *, char *const[], char *const[]) =
        (int (*)(const char *, char *const[], char *const[]))libc_symbol("execve");
    return real(path, argv, envp);
}

int execvp(const char *file, char *const argv[])
{
    NO_SPAWN("execvp");
    int (*real)(const char *, char *const[]) =
        (int (*)(const char *, char *const[]))libc_symbol("execvp");
    return real(file, argv);
}

int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
                const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    NO_SPAWN("posix_spawn");
    int (*real)(pid_t *, const char *, const posix_spawn_file_actions_t *,
                const posix_spawnattr_t *, char *const[], char *const[]) =
        (int (*)(pid_t *, const char *, const posix_spawn_file_actions_t *,
                 const posix_spawnattr_t *, char *const[],
                 char *const[]))libc_symbol("posix_spawn");
    return real(pid, path, actions, attr, argv, envp);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Entries in the working directory. libFuzzer writes there only between
 * inputs, so a run that changes the count created (or removed) a file. The
 * harness does not chdir: relative corpus paths must keep working. */
static size_t cwd_entries(void)
{
    DIR *d = opendir(".");
    FUZZ_CHECK(d != NULL);
    size_t n = 0;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

static script_engine *engine(void)
{
    static script_engine *eng;
    if (eng != NULL)
        return eng;
    script_config cfg;
    script_config_default(&cfg);
    cfg.instructions = 200000;
    cfg.memory_bytes = 1u << 20;
    cfg.timeout_ms = RUN_TIMEOUT_MS;
    cfg.max_value = 64u * 1024u;
    cfg.max_list = 100;
    cfg.max_headers = 8;
    FUZZ_CHECK(script_engine_create(&cfg, &eng) == 0);
    return eng;
}

/* libFuzzer's per-input leak check fires whenever an input allocates more
 * than it frees, which a reused Lua state and its chunk cache do on most
 * inputs; the full LeakSanitizer scan that follows cut the rate from ~3,000
 * to ~70 runs/s. So this target turns the per-input check off unless the
 * command line sets -detect_leaks itself; rcscript's leaks are the business
 * of its Criterion suites, which run under ASan+LSan in the sanitizer build
 * (pass -detect_leaks=1 to hunt one here, slowly). libFuzzer parses its
 * flags after this call. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static char *args[256];
    static char no_leak_check[] = "-detect_leaks=0";
    int n = *argc;
    if (n + 2 > (int)(sizeof args / sizeof args[0]))
        return 0;
    for (int i = 0; i < n; i++) {
        if (strncmp((*argv)[i], "-detect_leaks=", 14) == 0)
            return 0;
        args[i] = (*argv)[i];
    }
    /* flags go before the corpus directories, which libFuzzer accepts */
    memmove(args + 2, args + 1, (size_t)(n - 1) * sizeof args[0]);
    args[1] = no_leak_check;
    args[n + 1] = NULL;
    *argc = n + 1;
    *argv = args;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned perm_sets[] = {SCRIPT_PERM_ALL, SCRIPT_PERM_READ | SCRIPT_PERM_ENUMERATE,
                                         SCRIPT_PERM_WRITE, SCRIPT_PERM_READ | SCRIPT_PERM_DELETE};
    script_engine *eng = engine();
    if (size == 0)
        return 0;
    uint8_t ctl = data[0];
    const char *src = (const char *)data + 1;
    size_t len = size - 1;
    const char *nul = memchr(src, '\0', len);
    const char *body = nul ? nul + 1 : "";
    size_t body_len = nul ? len - (size_t)(nul + 1 - src) : 0;
    if (nul)
        len = (size_t)(nul - src);
    char *copy = (char *)fuzz_copy((const uint8_t *)src, len);

    host_state h = {
        .prefix = (ctl & 1u) ? "u:" : "",
        .prefix_len = (ctl & 1u) ? 2 : 0,
        .perms = perm_sets[(ctl >> 1) & 3u],
        .conflict = (ctl & 8u) != 0,
    };
    script_host host = {
        .ctx = &h, .get = host_get, .list = host_list, .commit = host_commit, .now_ms = host_now};
    script_scope scope = {h.prefix, h.prefix_len, h.perms};
    script_arg args[] = {{"n", 1, "3", 1}, {"name", 4, "x%y", 3}};
    script_request req = {.method = (ctl & 16u) ? "GET" : "POST",
                          .args = args,
                          .nargs = 2,
                          .body = body,
                          .body_len = body_len};
    script_result res;
    uint64_t t0 = now_ms();
    size_t entries = cwd_entries();
    in_script = true;
    int rc = script_run(eng, copy, len, "fuzz", &host, &scope, &req, &res);
    in_script = false;
    uint64_t took = now_ms() - t0;

    FUZZ_CHECK(rc == (int)res.outcome);
    FUZZ_CHECK(rc <= SCRIPT_OK && rc >= SCRIPT_EINTERNAL);
    /* a conflicting commit reruns the script a few times: each attempt has
     * its own cap */
    FUZZ_CHECK(took <= (h.conflict ? 9u : 1u) * (RUN_TIMEOUT_MS + RUN_SLACK_MS));
    if (rc == SCRIPT_OK) {
        FUZZ_CHECK(res.status >= 200 && res.status <= 599);
        FUZZ_CHECK(res.body != NULL && res.body[res.body_len] == '\0');
        for (size_t i = 0; i < res.nheaders; i++)
            FUZZ_CHECK(strpbrk(res.headers[i].name, "\r\n:") == NULL &&
                       strpbrk(res.headers[i].value, "\r\n") == NULL);
        FUZZ_CHECK(h.commits_ok <= 1 && res.writes == (h.commits_ok ? h.last_ops : 0));
    } else {
        FUZZ_CHECK(h.commits_ok == 0);
        FUZZ_CHECK(res.message[0] != '\0');
    }
    script_result_free(&res);
    free(copy);

    struct stat st;
    FUZZ_CHECK(stat(canary, &st) != 0 && errno == ENOENT);
    FUZZ_CHECK(cwd_entries() == entries);
    return 0;
}
