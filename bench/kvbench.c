/*
 * kvbench.c — command line, engine loop and reporting of the benchmark tool
 * (user manual: docs/CLI.md "kvbench"; goals and results: BENCHMARKS.md).
 *
 * kvbench runs a list of workloads against one or several engines, each on
 * its own fresh directory that is deleted afterwards. With several (--engine
 * all or a comma list) they run in one process, either each engine's whole
 * list in turn or, with --interleave, each workload on every engine in turn
 * (seconds apart; an engine is closed between its turns so none of its
 * background work overlaps another's measurement), optionally --repeat R
 * rounds (engine A, B, C, A, B, C, ...; --repeat implies --interleave),
 * reporting each engine's median run with the slowest and fastest beside it.
 * The run ends with ratio tables ringcask/peer by ops/s and by CPU per op,
 * each the median of the per-round ratios with their range. A workload may carry its own
 * thread count ("fillsync@8"), so one invocation covers 1- and 8-thread rows.
 *
 * Measuring is workloads.c's job, printing report.c's; this file parses the
 * command line (exit 2 naming the flag on a usage error) and runs the loop.
 */
#include "backend.h"
#include "report.h"
#include "workloads.h"

#include "rcu_opt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_ENGINES 8
#define MAX_WORKLOADS 64

static const kvb_backend *const all_backends[] = {
#ifdef KVB_HAVE_RINGCASK
    &kvb_backend_ringcask,
    &kvb_backend_ringcask_mmap,
    &kvb_backend_ringcask_uring,
    &kvb_backend_ringcask_pwrite,
#endif
#ifdef KVB_HAVE_ROCKSDB
    &kvb_backend_rocksdb,
#endif
#ifdef KVB_HAVE_LEVELDB
    &kvb_backend_leveldb,
#endif
#ifdef KVB_HAVE_LMDB
    &kvb_backend_lmdb,
#endif
    NULL,
};

static const char *const append_ios[] = {"auto", "mmap", "uring", "pwrite", NULL};

static const char default_workloads[] =
    "fillseq,fillrandom,overwrite,readrandom,readmissing,readwhilewriting,mixed,scan,"
    "recovery,compact,deleterandom,fillbatch,fillsync";

static void usage_error(const char *flag, const char *why)
{
    fprintf(stderr, "kvbench: %s: %s (see kvbench --help)\n", flag, why);
    exit(2);
}

static uint64_t parse_u64(const char *flag, const char *s, uint64_t min, uint64_t max)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end != '\0' || s[0] == '-' || v < min || v > max) {
        char why[96];
        snprintf(why, sizeof why, "'%s' is not a number in %llu..%llu", s, (unsigned long long)min,
                 (unsigned long long)max);
        usage_error(flag, why);
    }
    return v;
}

static int parse_sync(const char *s, void *dest, char *why, size_t cap)
{
    kvb_params *p = dest;
    rcu_sync mode;
    if (rcu_sync_parse(s, &mode, &p->sync_interval_ms, why, cap) != 0)
        return -1;
    p->sync = mode == RCU_SYNC_ALWAYS     ? KVB_SYNC_ALWAYS
              : mode == RCU_SYNC_INTERVAL ? KVB_SYNC_INTERVAL
                                          : KVB_SYNC_NONE;
    return 0;
}

static void show_sync(const void *dest, char *out, size_t cap)
{
    const kvb_params *p = dest;
    rcu_sync_format(p->sync == KVB_SYNC_ALWAYS     ? RCU_SYNC_ALWAYS
                    : p->sync == KVB_SYNC_INTERVAL ? RCU_SYNC_INTERVAL
                                                   : RCU_SYNC_NONE,
                    p->sync_interval_ms, out, cap);
}

static const kvb_backend *find_backend(const char *name)
{
    for (int i = 0; all_backends[i]; i++)
        if (strcmp(all_backends[i]->name, name) == 0)
            return all_backends[i];
    return NULL;
}

typedef struct job {
    char name[32];
    int threads;
} job;

static int parse_workloads(char *list, int default_threads, job *jobs)
{
    int n = 0;
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        if (n == MAX_WORKLOADS)
            usage_error("--workload", "too many workloads");
        char *at = strchr(tok, '@');
        jobs[n].threads = default_threads;
        if (at) {
            *at = '\0';
            jobs[n].threads = (int)parse_u64("--workload", at + 1, 1, 256);
        }
        if (!kvb_workload_known(tok)) {
            char why[96];
            snprintf(why, sizeof why, "unknown workload '%s'", tok);
            usage_error("--workload", why);
        }
        snprintf(jobs[n].name, sizeof jobs[n].name, "%s", tok);
        n++;
    }
    if (n == 0)
        usage_error("--workload", "empty list");
    return n;
}

/* ------------------------------------------------------------------ main */

int main(int argc, char **argv)
{
    kvb_params p = {
        .n = 1000000,
        .key_size = 16,
        .value_size = 100,
        .threads = 1,
        .sync = KVB_SYNC_NONE,
        .sync_interval_ms = 100,
        .read_pct = 95,
        .batch = 1000,
        .scan_limit = 100,
        .delete_pct = 100,
        .seconds = 10,
        .seed = 1,
    };
    const char *engines_arg = "all", *workloads_arg = default_workloads;
    const char *dir_arg = NULL;
    bool json = false;
    bool interleave = false;
    uint64_t repeat = 1, seconds = 10;
    char epilog[768];
    int at = snprintf(epilog, sizeof epilog,
                      "Workloads: fillseq fillrandom fillbatch overwrite readrandom readmissing\n"
                      "  readwhilewriting fillsync deleterandom mixed scan recovery compact\n"
                      "  idle (no ops for --seconds: lets background merge/compaction run)\n"
                      "  mixedwhilecompact (mixed while one compaction runs beside it: compare\n"
                      "  with a mixed row of the same run for latency during a merge)\n"
                      "  ycsb-a .. ycsb-f (YCSB core workloads: zipfian keys; d reads the\n"
                      "  latest, e scans 1..100 keys, f reads then writes)\n"
                      "Engines compiled in:");
    for (int i = 0; all_backends[i] && at > 0 && (size_t)at < sizeof epilog - 32; i++)
        at += snprintf(epilog + at, sizeof epilog - (size_t)at, " %s", all_backends[i]->name);
    snprintf(epilog + at, sizeof epilog - (size_t)at, "\n");
    const rcu_opt opts[] = {
        {"engine", 'e', RCU_OPT_STRING, &engines_arg, .meta = "LIST",
         .help = "engines to run back to back: a comma list of ringcask, rocksdb, leveldb, lmdb, "
                 "or all"},
        {"workload", 'w', RCU_OPT_STRING, &workloads_arg, .meta = "LIST",
         .help = "comma list; NAME@T runs NAME with T threads (also: ycsb-a .. ycsb-f, the "
                 "YCSB core workloads, and mixedwhilecompact, idle)"},
        {"n", 'n', RCU_OPT_INT, &p.n, sizeof p.n, .min = 1, .max = 1000000000,
         .help = "keys to load and ops per workload"},
        {"key-size", 0, RCU_OPT_INT, &p.key_size, sizeof p.key_size, .min = 8, .max = KVB_KEY_MAX,
         .meta = "B", .help = "key bytes"},
        {"value-size", 0, RCU_OPT_INT, &p.value_size, sizeof p.value_size, .max = 64u << 20,
         .meta = "B", .help = "value bytes, incompressible"},
        {"threads", 't', RCU_OPT_INT, &p.threads, sizeof p.threads, .min = 1, .max = 256,
         .meta = "T", .help = "worker threads"},
        {"sync", 's', RCU_OPT_FUNC, &p, .meta = "always|interval:MS|none", .parse = parse_sync,
         .show = show_sync, .help = "durability of writes; fillsync is always 'always'"},
        {"append-io", 0, RCU_OPT_ENUM, &p.append_io, .choices = append_ios,
         .help = "ringcask's append path (rc_options.append_io): auto = uring when the workload "
                 "syncs always; the engines ringcask-mmap, ringcask-uring and ringcask-pwrite "
                 "fix it"},
        {"dir", 'd', RCU_OPT_STRING, &dir_arg, .meta = "PATH", .def = "a new /tmp/kvbench.XXXXXX",
         .help = "parent of the engines' data dirs"},
        {"json", 'j', RCU_OPT_BOOL, &json, .help = "one JSON object per workload on stdout"},
        {"interleave", 'i', RCU_OPT_BOOL, &interleave,
         .help = "run each workload on every engine in turn (fair ratios on a noisy machine) "
                 "instead of each engine's whole list in turn"},
        {"repeat", 'r', RCU_OPT_INT, &repeat, sizeof repeat, .min = 1, .max = 100, .meta = "R",
         .help = "run each workload R times round-robin over the engines (implies "
                 "--interleave) and report each engine's median run, the slowest and fastest "
                 "beside it, and the median of the per-round ratios"},
        {"read-pct", 0, RCU_OPT_INT, &p.read_pct, sizeof p.read_pct, .max = 100, .meta = "P",
         .help = "mixed: percentage of reads"},
        {"delete-pct", 0, RCU_OPT_INT, &p.delete_pct, sizeof p.delete_pct, .min = 1, .max = 100,
         .meta = "P", .help = "deleterandom: percentage of the present keys to delete"},
        {"batch", 0, RCU_OPT_INT, &p.batch, sizeof p.batch, .min = 1, .max = 100000, .meta = "B",
         .help = "fillbatch: puts per batch/transaction"},
        {"scan-limit", 0, RCU_OPT_INT, &p.scan_limit, sizeof p.scan_limit, .min = 1, .max = 1000000,
         .meta = "L", .help = "scan: keys per ordered listing"},
        {"seconds", 0, RCU_OPT_INT, &seconds, sizeof seconds, .min = 1, .max = 86400, .meta = "S",
         .help = "cap on each workload's timed phase (a capped row says so; the next read "
                 "workload first loads the rest of the keys, untimed)"},
        {"seed", 0, RCU_OPT_INT, &p.seed, sizeof p.seed, .meta = "X",
         .help = "seed of keys' order and values"},
        {"keep", 'k', RCU_OPT_BOOL, &p.keep,
         .help = "leave each engine's data directory behind (for a look at it)"},
        {0},
    };
    const rcu_opt_prog prog = {
        .name = "kvbench",
        .usage = "[--engine LIST] [--workload LIST] [--n N] [--key-size B] [--value-size B]\n"
                 "[--threads T] [--sync always|interval:MS|none] [--dir PATH] [--json]\n"
                 "[--interleave [--repeat R]] [OPTIONS]",
        .about = "Run workloads against ringcask and the peer engines compiled in, each on a\n"
                 "fresh directory, and report ops/s, latency percentiles, memory and disk use.\n",
        .epilog = epilog,
        .opts = opts,
    };
    int prc = rcu_opt_parse(&prog, argc, argv, NULL);
    if (prc != RCU_OPT_GO_ON)
        return prc;
    p.seconds = (double)seconds;
    char workloads_buf[1024];
    if (snprintf(workloads_buf, sizeof workloads_buf, "%s", workloads_arg) >=
        (int)sizeof workloads_buf)
        usage_error("--workload", "list too long");

    const kvb_backend *engines[MAX_ENGINES];
    int n_engines = 0;
    if (strcmp(engines_arg, "all") == 0) {
        for (int i = 0; all_backends[i] && n_engines < MAX_ENGINES; i++)
            engines[n_engines++] = all_backends[i];
    } else {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", engines_arg);
        for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
            const kvb_backend *be = find_backend(tok);
            if (!be) {
                char why[128];
                snprintf(why, sizeof why, "'%s' is not compiled in", tok);
                usage_error("--engine", why);
            }
            if (n_engines == MAX_ENGINES)
                usage_error("--engine", "too many engines");
            engines[n_engines++] = be;
        }
    }
    if (n_engines == 0)
        usage_error("--engine", "no engine compiled in");
    job jobs[MAX_WORKLOADS];
    int n_jobs = parse_workloads(workloads_buf, p.threads, jobs);

    char base[PATH_MAX];
    bool made_base = false;
    if (dir_arg) {
        snprintf(base, sizeof base, "%s", dir_arg);
        if (kvb_mkdirs(base) != 0) {
            fprintf(stderr, "kvbench: --dir: cannot create %s: %s\n", base, strerror(errno));
            return 3;
        }
    } else {
        snprintf(base, sizeof base, "/tmp/kvbench.XXXXXX");
        if (!mkdtemp(base)) {
            fprintf(stderr, "kvbench: cannot create /tmp/kvbench.XXXXXX: %s\n", strerror(errno));
            return 3;
        }
        made_base = true;
    }

    /* Sequential: each engine runs the whole list, then the next one.
     * Interleaved: each workload runs on every engine in turn (A, B, C, A,
     * B, C, ... with --repeat); an engine is parked (closed, data kept) after
     * its turn so that its background work cannot overlap another engine's
     * measurement. Every run is kept: the row printed is the median run, and
     * the ratios are taken run by run (round r of ringcask against round r
     * of the peer, minutes apart at most) before their median is taken. */
    if (repeat > 1)
        interleave = true;
    int reps = interleave ? (int)repeat : 1;
    size_t n_runs = (size_t)n_engines * (size_t)n_jobs * (size_t)reps;
    kvb_result *runs = calloc(n_runs, sizeof *runs);
    kvb_result *results = calloc((size_t)(n_engines * n_jobs), sizeof *results);
    kvb_session *sessions = calloc((size_t)n_engines, sizeof *sessions);
    bool *open_ok = calloc((size_t)n_engines, sizeof *open_ok);
    if (!runs || !results || !sessions || !open_ok) {
        fprintf(stderr, "kvbench: out of memory\n");
        return 3;
    }
    if (!json) {
        printf("kvbench: n=%llu key=%zuB value=%zuB seconds-cap=%.0f%s dir=%s\n",
               (unsigned long long)p.n, p.key_size, p.value_size, p.seconds,
               interleave ? (reps > 1 ? " interleaved, median of repeats" : " interleaved") : "",
               base);
        kvb_print_header();
    }
    for (size_t i = 0; i < n_runs; i++) {
        runs[i].engine = engines[i / ((size_t)n_jobs * (size_t)reps)]->name;
        runs[i].skipped = true;
    }
    int status = 0;
    int outer = interleave ? n_jobs : n_engines, inner = interleave ? n_engines : n_jobs;
    for (int o = 0; o < outer; o++) {
        for (int rep = 0; rep < reps; rep++) {
            for (int i = 0; i < inner; i++) {
                int e = interleave ? i : o, j = interleave ? o : i;
                kvb_session *s = &sessions[e];
                if (j == 0 && rep == 0) {
                    open_ok[e] = kvb_session_start(s, engines[e], &p, base) == 0;
                    if (!open_ok[e]) {
                        fprintf(stderr, "kvbench: %s: cannot open the engine in %s\n",
                                engines[e]->name, s->dir);
                        status = 3;
                    }
                }
                kvb_result *r =
                    &runs[((size_t)e * (size_t)n_jobs + (size_t)j) * (size_t)reps + (size_t)rep];
                r->engine = engines[e]->name;
                r->skipped = true;
                if (open_ok[e] && kvb_run(s, jobs[j].name, jobs[j].threads, r) != 0) {
                    fprintf(stderr, "kvbench: %s %s failed\n", engines[e]->name, jobs[j].name);
                    r->failed = true;
                    status = 3;
                }
                if (j == n_jobs - 1 && rep == reps - 1)
                    kvb_session_end(s);
                else if (interleave)
                    kvb_session_park(s);
            }
        }
        /* every engine has run this workload (or, sequential, this engine
         * every workload): print the medians */
        for (int i = 0; i < inner; i++) {
            int e = interleave ? i : o, j = interleave ? o : i;
            size_t at = (size_t)e * (size_t)n_jobs + (size_t)j;
            kvb_median(&runs[at * (size_t)reps], reps, &results[at]);
            if (json)
                kvb_print_json(&p, &results[at]);
            else
                kvb_print_text(&p, &results[at]);
        }
    }
    free(open_ok);
    free(sessions);
    if (!json) {
        kvb_print_ratios(runs, n_engines, n_jobs, reps);
        kvb_print_capped(results, n_engines * n_jobs);
    }
    if (made_base && !p.keep)
        rmdir(base);
    free(results);
    free(runs);
    return status;
}
