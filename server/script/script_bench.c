/*
 * script_bench.c — runs/s of small scripts through rcscript directly (no
 * HTTP, no engine): a host whose get/commit are a few instructions, so the
 * figure is the runtime's own cost per run. Prints one line per case.
 *
 *   script_bench [RUNS] [fresh]   fresh: a new Lua state for every run
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "script.h"

static long long counter;

static int bench_get(void *ctx, const void *key, size_t klen, rc_value *out)
{
    static char text[32];
    out->len = (size_t)snprintf(text, sizeof text, "%lld", counter);
    out->data = text;
    out->type = RC_TYPE_INT;
    return 0;
}

static int bench_list(void *ctx, const void *prefix, size_t plen, size_t limit,
                      int (*emit)(void *, const void *, size_t), void *ectx)
{
    return 0;
}

static int bench_commit(void *ctx, rc_op *ops, size_t n, size_t *failed)
{
    for (size_t i = 0; i < n; i++)
        if (ops[i].kind == RC_OP_INCR)
            counter += ops[i].by.i;
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void bench(script_engine *eng, const char *label, const char *src, long runs)
{
    script_host host = {.get = bench_get, .list = bench_list, .commit = bench_commit};
    script_scope scope = {"", 0, SCRIPT_PERM_ALL};
    script_arg arg = {"name", 4, "world", 5};
    script_request req = {.method = "GET", .args = &arg, .nargs = 1};
    double t0 = now_s();
    for (long i = 0; i < runs; i++) {
        script_result res;
        if (script_run(eng, src, strlen(src), "bench", &host, &scope, &req, &res) != SCRIPT_OK) {
            fprintf(stderr, "%s: %s\n", label, res.message);
            exit(1);
        }
        script_result_free(&res);
    }
    double dt = now_s() - t0;
    printf("%-28s %9.0f runs/s  %6.2f us/run\n", label, (double)runs / dt, dt * 1e6 / (double)runs);
}

int main(int argc, char **argv)
{
    long runs = argc > 1 ? atol(argv[1]) : 200000;
    script_config cfg;
    script_config_default(&cfg);
    if (argc > 2 && strcmp(argv[2], "fresh") == 0)
        cfg.state_max_runs = 1;
    script_engine *eng;
    if (script_engine_create(&cfg, &eng) != 0)
        return 1;
    printf("rcscript bench: %ld runs per case, %s states\n", runs,
           cfg.state_max_runs == 1 ? "fresh" : "reused");
    bench(eng, "empty script", "", runs);
    bench(eng, "counter (kv.incr + kv.say)", "kv.say(kv.incr('hits'))", runs);
    bench(eng, "hello (args, say)", "kv.say('hello ', kv.args.name)", runs);
    bench(eng, "json encode/decode",
          "local t = kv.json_decode('{\"a\":[1,2,3],\"b\":\"x\"}') kv.say(kv.json_encode(t))",
          runs);
    script_engine_destroy(eng);
    return counter > 0 ? 0 : 1;
}
