/*
 * backup_bench.c — what an incremental backup costs: a database of N keys
 * (16-byte keys, 100-byte values, written in batches of 1000), then for
 * each K in the list, K new keys and rc_backup(since = the seq before them)
 * into a counting sink, timed R times (the median is printed, the fastest and
 * slowest beside it: the spread says how much the machine's other tenants
 * moved it). With --full-scan the engine
 * scans every segment from its start (rci_backup_skip = false, white box),
 * which is what rc_backup did before segments were skipped: the "before"
 * column. Prints one line per K: keys, K, ms, records in the stream, bytes.
 *
 *   backup_bench --dir DIR --n 10000000 --incs 1000,10000,100000 [--runs 5]
 *                [--full-scan] [--reuse]
 * --reuse opens an existing DIR instead of filling a new one.
 */
#include "ringcask.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern bool rci_backup_skip; /* engine/src/backup.c (white box) */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

static int sink(void *ctx, const void *buf, size_t len)
{
    (void)buf;
    *(uint64_t *)ctx += len;
    return 0;
}

static int die(const char *what, int err)
{
    fprintf(stderr, "backup_bench: %s: %s (%s)\n", what, rc_strerror(err), rc_last_error_message());
    exit(1);
}

/* Keys COUNT new ones from FIRST on, in batches of 1000. */
static void write_keys(rc_db *db, uint64_t first, uint64_t count, const char *prefix)
{
    enum { BATCH = 1000 };
    static char keys[BATCH][24];
    static rc_op ops[BATCH];
    char val[100];
    memset(val, 'v', sizeof val);
    for (uint64_t done = 0; done < count;) {
        size_t n = count - done < BATCH ? (size_t)(count - done) : BATCH;
        for (size_t i = 0; i < n; i++) {
            snprintf(keys[i], sizeof keys[i], "%s%013llu", prefix,
                     (unsigned long long)(first + done + i));
            ops[i] = (rc_op){
                .kind = RC_OP_PUT, .key = keys[i], .klen = 16, .val = val, .vlen = sizeof val};
        }
        int err = rc_apply(db, ops, n, NULL);
        if (err)
            die("write", err);
        done += n;
    }
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *incs = "1000,10000,100000";
    uint64_t n = 1000000;
    int runs = 5;
    bool full_scan = false, reuse = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--n") && i + 1 < argc)
            n = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--incs") && i + 1 < argc)
            incs = argv[++i];
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--full-scan"))
            full_scan = true;
        else if (!strcmp(argv[i], "--reuse"))
            reuse = true;
        else {
            fprintf(stderr, "usage: backup_bench --dir DIR [--n N] [--incs K,K,...] [--runs R] "
                            "[--full-scan] [--reuse]\n");
            return 2;
        }
    }
    if (!dir)
        return fprintf(stderr, "backup_bench: --dir DIR is required\n"), 2;
    if (runs < 1 || runs > 1000)
        return fprintf(stderr, "backup_bench: --runs: a number in 1..1000\n"), 2;
    double *times = malloc((size_t)runs * sizeof *times);
    if (!times)
        return fprintf(stderr, "backup_bench: out of memory\n"), 3;
    rc_options o;
    rc_options_default(&o);
    o.sync = RC_SYNC_NONE;
    o.merge_check_ms = 0;
    rc_db *db;
    int err = rc_open(dir, &o, &db);
    if (err)
        die("open", err);
    rc_stats st;
    rc_stats_db(db, &st);
    if (!reuse || st.last_seq == 0) {
        double t0 = now_ms();
        write_keys(db, 0, n, "k");
        fprintf(stderr, "filled %llu keys in %.1f s\n", (unsigned long long)n,
                (now_ms() - t0) / 1e3);
    }
    rci_backup_skip = !full_scan;
    printf("%-10s %-8s %-10s %10s %10s %10s %10s %12s\n", "keys", "new", "mode", "median ms",
           "min ms", "max ms", "records", "bytes");
    uint64_t next = 0;
    for (const char *p = incs; *p;) {
        uint64_t k = strtoull(p, (char **)&p, 10);
        if (*p == ',')
            p++;
        rc_stats_db(db, &st);
        uint64_t since = st.last_seq;
        write_keys(db, next, k, "n");
        next += k;
        rc_backup_info info;
        for (int r = 0; r < runs; r++) {
            uint64_t bytes = 0;
            double t0 = now_ms();
            err = rc_backup(db, since, sink, &bytes, NULL, NULL, &info);
            double t = now_ms() - t0;
            if (err)
                die("backup", err);
            times[r] = t;
        }
        qsort(times, (size_t)runs, sizeof *times, cmp_double);
        printf("%-10llu %-8llu %-10s %10.2f %10.2f %10.2f %10llu %12llu\n", (unsigned long long)n,
               (unsigned long long)k, full_scan ? "full-scan" : "skip", times[(runs - 1) / 2],
               times[0], times[runs - 1], (unsigned long long)(info.records + info.tombstones),
               (unsigned long long)info.bytes);
        fflush(stdout);
    }
    free(times);
    rc_close(db);
    return 0;
}
