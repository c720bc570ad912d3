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
 * times keeping each engine's best run, since other tenants of a shared
 * machine only ever slow a run down. The run ends with ratio tables
 * ringcask/peer by ops/s and by CPU per op. A workload may carry its own
 * thread count ("fillsync@8"), so one invocation covers 1- and 8-thread rows.
 *
 * Measuring is workloads.c's job, printing report.c's; this file parses the
 * command line (exit 2 naming the flag on a usage error) and runs the loop.
 */
#include "backend.h"
#include "report.h"
#include "workloads.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_ENGINES 8
#define MAX_WORKLOADS 64

static const kvb_backend *const all_backends[] = {
#ifdef KVB_HAVE_RINGCASK
    &kvb_backend_ringcask,
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

static const char default_workloads[] =
    "fillseq,fillrandom,overwrite,readrandom,readmissing,readwhilewriting,mixed,scan,"
    "recovery,compact,deleterandom,fillbatch,fillsync";

static void usage(FILE *f)
{
    fprintf(f,
            "usage: kvbench [--engine ringcask|rocksdb|leveldb|lmdb|all|LIST] [--workload LIST]\n"
            "               [--n N] [--key-size B] [--value-size B] [--threads T]\n"
            "               [--sync always|interval:MS|none] [--dir PATH] [--json]\n"
            "               [--read-pct P] [--delete-pct P] [--batch B] [--scan-limit L] "
            "[--seconds S] [--seed X]\n"
            "               [--interleave [--repeat R]]\n"
            "\n"
            "  --engine     engines to run back to back (comma list or 'all'); default all\n"
            "  --workload   comma list; NAME@T runs NAME with T threads. Default:\n"
            "               %s\n"
            "  --n          keys to load and ops per workload (default 1000000)\n"
            "  --key-size   key bytes, 8..1024 (default 16)\n"
            "  --value-size value bytes (default 100), incompressible\n"
            "  --threads    worker threads (default 1)\n"
            "  --sync       durability of writes (default none); fillsync is always 'always'\n"
            "  --dir        parent of the engines' data dirs (default: a new /tmp/kvbench.XXXXXX)\n"
            "  --json       one JSON object per workload on stdout\n"
            "  --interleave run each workload on every engine in turn (best ratios on a\n"
            "               noisy machine) instead of each engine's whole list in turn\n"
            "  --repeat R   with --interleave: run each workload R times round-robin over\n"
            "               the engines and report each engine's best (highest ops/s) run\n"
            "  --read-pct   mixed: percentage of reads (default 95)\n"
            "  --delete-pct deleterandom: percentage of the present keys to delete (100)\n"
            "  --batch      fillbatch: puts per batch/transaction (default 1000)\n"
            "  --scan-limit scan: keys per ordered listing (default 100)\n"
            "  --seconds    cap on each workload's timed phase (default 10)\n"
            "  --seed       seed of keys' order and values (default 1)\n"
            "  --keep       leave each engine's data directory behind (for a look at it)\n"
            "Workloads: fillseq fillrandom fillbatch overwrite readrandom readmissing\n"
            "  readwhilewriting fillsync deleterandom mixed scan recovery compact\n"
            "  idle (no ops for --seconds: lets background merge/compaction run)\n"
            "  mixedwhilecompact (mixed while one compaction runs beside it: compare\n"
            "  with a mixed row of the same run for latency during a merge)\n"
            "Engines compiled in:",
            default_workloads);
    for (int i = 0; all_backends[i]; i++)
        fprintf(f, " %s", all_backends[i]->name);
    fprintf(f, "\n");
}

static void usage_error(const char *flag, const char *why)
{
    fprintf(stderr, "kvbench: %s: %s (see --help)\n", flag, why);
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
    const char *engines_arg = "all";
    char workloads_buf[1024];
    snprintf(workloads_buf, sizeof workloads_buf, "%s", default_workloads);
    const char *dir_arg = NULL;
    bool json = false;
    bool interleave = false;
    int repeat = 1;
    enum {
        O_DELETE_PCT = 250,
        O_READ_PCT = 256,
        O_BATCH,
        O_SCAN_LIMIT,
        O_SECONDS,
        O_SEED,
        O_KEY,
        O_VAL
    };
    static const struct option longopts[] = {
        {"engine", required_argument, NULL, 'e'},
        {"workload", required_argument, NULL, 'w'},
        {"n", required_argument, NULL, 'n'},
        {"key-size", required_argument, NULL, O_KEY},
        {"value-size", required_argument, NULL, O_VAL},
        {"threads", required_argument, NULL, 't'},
        {"sync", required_argument, NULL, 's'},
        {"dir", required_argument, NULL, 'd'},
        {"json", no_argument, NULL, 'j'},
        {"interleave", no_argument, NULL, 'i'},
        {"keep", no_argument, NULL, 'k'},
        {"repeat", required_argument, NULL, 'r'},
        {"read-pct", required_argument, NULL, O_READ_PCT},
        {"delete-pct", required_argument, NULL, O_DELETE_PCT},
        {"batch", required_argument, NULL, O_BATCH},
        {"scan-limit", required_argument, NULL, O_SCAN_LIMIT},
        {"seconds", required_argument, NULL, O_SECONDS},
        {"seed", required_argument, NULL, O_SEED},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'e':
            engines_arg = optarg;
            break;
        case 'w':
            if (snprintf(workloads_buf, sizeof workloads_buf, "%s", optarg) >=
                (int)sizeof workloads_buf)
                usage_error("--workload", "list too long");
            break;
        case 'n':
            p.n = parse_u64("--n", optarg, 1, 1000000000);
            break;
        case O_KEY:
            p.key_size = parse_u64("--key-size", optarg, 8, KVB_KEY_MAX);
            break;
        case O_VAL:
            p.value_size = parse_u64("--value-size", optarg, 0, 64u << 20);
            break;
        case 't':
            p.threads = (int)parse_u64("--threads", optarg, 1, 256);
            break;
        case 's':
            if (strcmp(optarg, "always") == 0) {
                p.sync = KVB_SYNC_ALWAYS;
            } else if (strcmp(optarg, "none") == 0) {
                p.sync = KVB_SYNC_NONE;
            } else if (strncmp(optarg, "interval:", 9) == 0) {
                p.sync = KVB_SYNC_INTERVAL;
                p.sync_interval_ms = (uint32_t)parse_u64("--sync", optarg + 9, 1, 3600000);
            } else {
                usage_error("--sync", "expected always, interval:MS or none");
            }
            break;
        case 'd':
            dir_arg = optarg;
            break;
        case 'j':
            json = true;
            break;
        case 'i':
            interleave = true;
            break;
        case 'k':
            p.keep = true;
            break;
        case 'r':
            repeat = (int)parse_u64("--repeat", optarg, 1, 100);
            break;
        case O_DELETE_PCT:
            p.delete_pct = (unsigned)parse_u64("--delete-pct", optarg, 1, 100);
            break;
        case O_READ_PCT:
            p.read_pct = (unsigned)parse_u64("--read-pct", optarg, 0, 100);
            break;
        case O_BATCH:
            p.batch = parse_u64("--batch", optarg, 1, 100000);
            break;
        case O_SCAN_LIMIT:
            p.scan_limit = parse_u64("--scan-limit", optarg, 1, 1000000);
            break;
        case O_SECONDS:
            p.seconds = (double)parse_u64("--seconds", optarg, 1, 86400);
            break;
        case O_SEED:
            p.seed = parse_u64("--seed", optarg, 0, UINT64_MAX);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default: /* getopt_long already named the flag */
            fprintf(stderr, "kvbench: bad command line (see --help)\n");
            return 2;
        }
    }
    if (optind < argc)
        usage_error(argv[optind], "unexpected argument");

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

    kvb_result *results = calloc((size_t)(n_engines * n_jobs), sizeof *results);
    if (!results) {
        fprintf(stderr, "kvbench: out of memory\n");
        return 3;
    }
    if (!json) {
        printf("kvbench: n=%llu key=%zuB value=%zuB seconds-cap=%.0f%s dir=%s\n",
               (unsigned long long)p.n, p.key_size, p.value_size, p.seconds,
               interleave ? (repeat > 1 ? " interleaved, best of repeats" : " interleaved") : "",
               base);
        kvb_print_header();
    }
    for (int i = 0; i < n_engines * n_jobs; i++) {
        results[i].engine = engines[i / n_jobs]->name;
        results[i].skipped = true;
    }
    int status = 0;
    kvb_session *sessions = calloc((size_t)n_engines, sizeof *sessions);
    bool *open_ok = calloc((size_t)n_engines, sizeof *open_ok);
    if (!sessions || !open_ok) {
        fprintf(stderr, "kvbench: out of memory\n");
        return 3;
    }
    /* Sequential: each engine runs the whole list, then the next one.
     * Interleaved: each workload runs on every engine in turn; an engine is
     * parked (closed, data kept) after its turn so that its background work
     * cannot overlap another engine's measurement. */
    int outer = interleave ? n_jobs : n_engines, inner = interleave ? n_engines : n_jobs;
    int reps = interleave ? repeat : 1;
    kvb_result *tmp = malloc(sizeof *tmp);
    if (!tmp) {
        fprintf(stderr, "kvbench: out of memory\n");
        return 3;
    }
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
                kvb_result *best = &results[e * n_jobs + j];
                memset(tmp, 0, sizeof *tmp);
                tmp->engine = engines[e]->name;
                tmp->skipped = true;
                if (open_ok[e] && kvb_run(s, jobs[j].name, jobs[j].threads, tmp) != 0) {
                    fprintf(stderr, "kvbench: %s %s failed\n", engines[e]->name, jobs[j].name);
                    tmp->failed = true;
                    status = 3;
                }
                /* Best of the repeats: other tenants only ever slow a run down. */
                if (rep == 0 || (!tmp->failed &&
                                 (best->failed || kvb_ops_per_sec(tmp) > kvb_ops_per_sec(best))))
                    *best = *tmp;
                best->repeats = rep + 1;
                if (rep == reps - 1) {
                    if (json)
                        kvb_print_json(&p, best);
                    else
                        kvb_print_text(&p, best);
                }
                if (j == n_jobs - 1 && rep == reps - 1)
                    kvb_session_end(s);
                else if (interleave)
                    kvb_session_park(s);
            }
        }
    }
    free(tmp);
    free(open_ok);
    free(sessions);
    if (!json)
        kvb_print_ratios(results, n_engines, n_jobs);
    if (made_base && !p.keep)
        rmdir(base);
    free(results);
    return status;
}
