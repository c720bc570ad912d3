/*
 * kvbench.c — command line, engine loop and reporting of the benchmark tool
 * (contract: TOOLS.md "kvbench"; what the numbers are for: PERFORMANCE.md).
 *
 * kvbench runs a list of workloads against one or several engines. With
 * several (--engine all or a comma list) it runs them back to back in one
 * process — ringcask first, then each peer, each on its own fresh directory
 * that is deleted afterwards — and ends with a table of ratios
 * ringcask/peer per workload: on a shared, noisy machine only figures taken
 * minutes apart are comparable. A workload may carry its own thread count
 * ("fillsync@8"), so one invocation covers 1- and 8-thread rows.
 *
 * Everything measured per workload is in kvb_result; this file only turns it
 * into text (one row per workload) or --json (one object per line).
 */
#include "backend.h"
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
            "Workloads: fillseq fillrandom fillbatch overwrite readrandom readmissing\n"
            "  readwhilewriting fillsync deleterandom mixed scan recovery compact\n"
            "  idle (no ops for --seconds: lets background merge/compaction run)\n"
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

/* ------------------------------------------------------------- reporting */

static double ops_per_sec(const kvb_result *r)
{
    return r->secs > 0 ? (double)r->ops / r->secs : 0.0;
}

/* Process CPU time per op in µs: robust against other tenants' load. */
static double cpu_us_per_op(const kvb_result *r)
{
    return r->ops ? (double)r->cpu_ns / 1e3 / (double)r->ops : 0.0;
}

static bool is_fill(const kvb_result *r)
{
    return strncmp(r->workload, "fill", 4) == 0;
}

/* Anonymous RSS growth over a fill, per key loaded: the engine's RAM per
 * key, once RSS settled after the load (the engine's transient buffers do not
 * count; the peak at the end of the load is in the JSON as rss_anon_delta). */
static double ram_per_key(const kvb_result *r)
{
    if (!is_fill(r) || r->ops == 0 || r->mem_trimmed.rss_anon < r->mem_before.rss_anon)
        return -1;
    return (double)(r->mem_trimmed.rss_anon - r->mem_before.rss_anon) / (double)r->ops;
}

static double ratio(uint64_t a, uint64_t b)
{
    return b ? (double)a / (double)b : -1;
}

static const char *sync_name(const kvb_params *p, const kvb_result *r, char *buf, size_t len)
{
    if (strcmp(r->workload, "fillsync") == 0 || p->sync == KVB_SYNC_ALWAYS)
        return "always";
    if (p->sync == KVB_SYNC_NONE)
        return "none";
    snprintf(buf, len, "interval:%u", p->sync_interval_ms);
    return buf;
}

static void print_json(const kvb_params *p, const kvb_result *r)
{
    char sb[32];
    uint64_t row = p->key_size + p->value_size;
    printf("{\"engine\":\"%s\",\"workload\":\"%s\",\"threads\":%d,\"n\":%llu,"
           "\"key_size\":%zu,\"value_size\":%zu,\"sync\":\"%s\",\"skipped\":%s,\"failed\":%s,"
           "\"ops\":%llu,\"secs\":%.6f,\"ops_per_sec\":%.1f,\"cpu_us_per_op\":%.4f,"
           "\"p50_us\":%.3f,\"p99_us\":%.3f,\"p999_us\":%.3f,\"mean_us\":%.3f,\"max_us\":%.3f,"
           "\"found\":%llu,\"missing\":%llu,\"errors\":%llu,\"capped\":%s,\"repeats\":%d,",
           r->engine, r->workload, r->threads, (unsigned long long)p->n, p->key_size, p->value_size,
           sync_name(p, r, sb, sizeof sb), r->skipped ? "true" : "false",
           r->failed ? "true" : "false", (unsigned long long)r->ops, r->secs, ops_per_sec(r),
           cpu_us_per_op(r), kvb_hist_quantile(&r->hist, 0.50) / 1e3,
           kvb_hist_quantile(&r->hist, 0.99) / 1e3, kvb_hist_quantile(&r->hist, 0.999) / 1e3,
           kvb_hist_mean(&r->hist) / 1e3, r->hist.max_ns / 1e3, (unsigned long long)r->found,
           (unsigned long long)r->missing, (unsigned long long)r->errors,
           r->capped ? "true" : "false", r->repeats);
    printf("\"rss_anon_before\":%llu,\"rss_anon_after\":%llu,\"rss_file_after\":%llu,"
           "\"rss_anon_delta\":%lld,\"rss_anon_trimmed_delta\":%lld,\"rss_delta\":%lld,"
           "\"ram_per_key\":%.2f,"
           "\"keydir_bytes\":%llu,\"keydir_per_key\":%.2f,\"fsyncs\":%llu,\"fsync_ns\":%llu,",
           (unsigned long long)r->mem_before.rss_anon, (unsigned long long)r->mem_trimmed.rss_anon,
           (unsigned long long)r->mem_trimmed.rss_file,
           (long long)(r->mem_after.rss_anon - r->mem_before.rss_anon),
           (long long)(r->mem_trimmed.rss_anon - r->mem_before.rss_anon),
           (long long)(r->mem_after.rss - r->mem_before.rss), ram_per_key(r),
           (unsigned long long)r->est.keydir_bytes,
           r->est.have_keydir ? ratio(r->est.keydir_bytes, r->est.live_keys) : -1.0,
           (unsigned long long)r->est.fsyncs, (unsigned long long)r->est.fsync_ns);
    printf("\"live_keys\":%llu,\"disk_bytes_allocated\":%llu,\"disk_bytes_apparent\":%llu,"
           "\"space_amp\":%.3f,\"io_write_bytes\":%llu,\"user_bytes\":%llu,\"write_amp\":%.3f,"
           "\"side_write_ops_per_sec\":%.1f,\"note\":\"%s\"}\n",
           (unsigned long long)r->live_keys, (unsigned long long)r->du.allocated,
           (unsigned long long)r->du.apparent, ratio(r->du.allocated, r->live_keys * row),
           (unsigned long long)r->io_write_bytes, (unsigned long long)r->user_bytes,
           ratio(r->io_write_bytes, r->user_bytes),
           r->secs > 0 ? (double)r->side_ops / r->secs : 0.0, r->note);
    fflush(stdout);
}

static void fmt_us(char *buf, size_t len, uint64_t ns)
{
    if (ns >= 10000000u)
        snprintf(buf, len, "%.1fms", ns / 1e6);
    else
        snprintf(buf, len, "%.1f", ns / 1e3);
}

static void print_header(void)
{
    printf("%-9s %-17s %3s %11s %8s %8s %8s %8s %8s %7s %8s %8s %6s %6s  %s\n", "engine",
           "workload", "thr", "ops/s", "p50us", "p99us", "p99.9us", "cpuus/op", "RAM/key", "kd/key",
           "diskMiB", "appMiB", "s-amp", "w-amp", "notes");
}

static void print_text(const kvb_params *p, const kvb_result *r)
{
    if (r->skipped || r->failed) {
        printf("%-9s %-17s %3d %11s  (%s)\n", r->engine, r->workload, r->threads,
               r->failed ? "FAILED" : "-", r->failed ? "engine error, see stderr" : r->note);
        fflush(stdout);
        return;
    }
    char p50[16], p99[16], p999[16], ram[16] = "-", kd[16] = "-", samp[16] = "-", wamp[16] = "-";
    fmt_us(p50, sizeof p50, kvb_hist_quantile(&r->hist, 0.50));
    fmt_us(p99, sizeof p99, kvb_hist_quantile(&r->hist, 0.99));
    fmt_us(p999, sizeof p999, kvb_hist_quantile(&r->hist, 0.999));
    if (ram_per_key(r) >= 0)
        snprintf(ram, sizeof ram, "%.1f", ram_per_key(r));
    if (r->est.have_keydir && r->est.live_keys)
        snprintf(kd, sizeof kd, "%.1f", ratio(r->est.keydir_bytes, r->est.live_keys));
    uint64_t row = p->key_size + p->value_size;
    if (r->live_keys)
        snprintf(samp, sizeof samp, "%.2f", ratio(r->du.allocated, r->live_keys * row));
    if (r->user_bytes)
        snprintf(wamp, sizeof wamp, "%.2f", ratio(r->io_write_bytes, r->user_bytes));
    char notes[256];
    int off = snprintf(notes, sizeof notes, "%s", r->note);
    if (r->missing && strcmp(r->workload, "readmissing") != 0)
        off += snprintf(notes + off, sizeof notes - (size_t)off, " missing=%llu",
                        (unsigned long long)r->missing);
    if (r->side_ops)
        off += snprintf(notes + off, sizeof notes - (size_t)off, " writer=%.0f/s",
                        (double)r->side_ops / r->secs);
    if (strcmp(r->workload, "scan") == 0)
        off += snprintf(notes + off, sizeof notes - (size_t)off, " keys/s=%.0f",
                        (double)r->found / r->secs);
    if (strcmp(r->workload, "fillsync") == 0 && r->est.fsyncs)
        off += snprintf(notes + off, sizeof notes - (size_t)off,
                        " fsyncs=%llu (%.1f writes each, %.0fus avg)",
                        (unsigned long long)r->est.fsyncs, (double)r->ops / (double)r->est.fsyncs,
                        (double)r->est.fsync_ns / (double)r->est.fsyncs / 1e3);
    if (strcmp(r->workload, "recovery") == 0 && r->est.have_keydir)
        off += snprintf(notes + off, sizeof notes - (size_t)off, " engine says %llums",
                        (unsigned long long)r->est.recovery_ms);
    if (r->capped)
        snprintf(notes + off, sizeof notes - (size_t)off, " capped@%llu",
                 (unsigned long long)r->ops);
    printf("%-9s %-17s %3d %11.0f %8s %8s %8s %8.2f %8s %7s %8.1f %8.1f %6s %6s  %s\n", r->engine,
           r->workload, r->threads, ops_per_sec(r), p50, p99, p999, cpu_us_per_op(r), ram, kd,
           (double)r->du.allocated / 1048576.0, (double)r->du.apparent / 1048576.0, samp, wamp,
           notes);
    fflush(stdout);
}

static const char *fmt_inverse(char *buf, size_t len, double ratio)
{
    snprintf(buf, len, "1/%.0f", 1.0 / ratio);
    return buf;
}

/* One ratio table: ringcask vs each peer per workload, by METRIC (higher =
 * ringcask better). */
static void print_ratio_table(const kvb_result *res, int n_engines, int n_jobs, int rc_col,
                              bool by_cpu)
{
    printf("\n%s\n", by_cpu ? "ratio peer CPU per op / ringcask CPU per op (> 1 = ringcask cheaper)"
                            : "ratio ringcask ops/s / peer ops/s (> 1 = ringcask faster; "
                              "recovery: reopen rate)");
    printf("%-22s %12s", "workload", by_cpu ? "rc cpu us/op" : "ringcask/s");
    for (int e = 0; e < n_engines; e++)
        if (e != rc_col)
            printf(" %10s", res[e * n_jobs].engine);
    printf("\n");
    for (int j = 0; j < n_jobs; j++) {
        const kvb_result *rc = &res[rc_col * n_jobs + j];
        char label[48];
        snprintf(label, sizeof label, "%s@%d", rc->workload, rc->threads);
        printf(by_cpu ? "%-22s %12.3f" : "%-22s %12.0f", label,
               by_cpu ? cpu_us_per_op(rc) : ops_per_sec(rc));
        for (int e = 0; e < n_engines; e++) {
            if (e == rc_col)
                continue;
            const kvb_result *peer = &res[e * n_jobs + j];
            char inv[32];
            double a = by_cpu ? cpu_us_per_op(peer) : ops_per_sec(rc);
            double b = by_cpu ? cpu_us_per_op(rc) : ops_per_sec(peer);
            if (peer->skipped || rc->skipped || peer->failed || rc->failed || a <= 0 || b <= 0)
                printf(" %10s", "-");
            else if (a / b >= 0.01)
                printf(" %9.2fx", a / b);
            else /* a large loss: 1/N reads better than 0.00 */
                printf(" %9sx", fmt_inverse(inv, sizeof inv, a / b));
        }
        printf("\n");
    }
}

static void print_ratios(const kvb_result *res, int n_engines, int n_jobs)
{
    int rc_col = -1;
    for (int e = 0; e < n_engines; e++)
        if (strcmp(res[e * n_jobs].engine, "ringcask") == 0)
            rc_col = e;
    if (rc_col < 0 || n_engines < 2)
        return;
    print_ratio_table(res, n_engines, n_jobs, rc_col, false);
    print_ratio_table(res, n_engines, n_jobs, rc_col, true);
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
        print_header();
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
                if (rep == 0 ||
                    (!tmp->failed && (best->failed || ops_per_sec(tmp) > ops_per_sec(best))))
                    *best = *tmp;
                best->repeats = rep + 1;
                if (rep == reps - 1) {
                    if (json)
                        print_json(&p, best);
                    else
                        print_text(&p, best);
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
        print_ratios(results, n_engines, n_jobs);
    if (made_base)
        rmdir(base);
    free(results);
    return status;
}
