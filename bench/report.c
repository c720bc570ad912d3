/*
 * report.c — kvbench's output: one text row or one JSON object per
 * workload, and the ratio tables (ringcask vs each peer, by wall-clock
 * ops/s and by CPU per op) at the end of a multi-engine run. Derived figures
 * (RAM per key, space and write amplification) are computed here from the
 * raw measurements in kvb_result, so the JSON carries both.
 */
#include "report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

double kvb_ops_per_sec(const kvb_result *r)
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

void kvb_print_json(const kvb_params *p, const kvb_result *r)
{
    char sb[32];
    uint64_t row = p->key_size + p->value_size;
    printf("{\"engine\":\"%s\",\"workload\":\"%s\",\"threads\":%d,\"n\":%llu,"
           "\"key_size\":%zu,\"value_size\":%zu,\"sync\":\"%s\",\"skipped\":%s,\"failed\":%s,"
           "\"ops\":%llu,\"secs\":%.6f,\"ops_per_sec\":%.1f,\"cpu_us_per_op\":%.4f,"
           "\"p50_us\":%.3f,\"p99_us\":%.3f,\"p999_us\":%.3f,\"mean_us\":%.3f,\"max_us\":%.3f,"
           "\"found\":%llu,\"missing\":%llu,\"errors\":%llu,\"capped\":%s,\"repeats\":%d,"
           "\"ops_per_sec_min\":%.1f,\"ops_per_sec_max\":%.1f,",
           r->engine, r->workload, r->threads, (unsigned long long)p->n, p->key_size, p->value_size,
           sync_name(p, r, sb, sizeof sb), r->skipped ? "true" : "false",
           r->failed ? "true" : "false", (unsigned long long)r->ops, r->secs, kvb_ops_per_sec(r),
           cpu_us_per_op(r), kvb_hist_quantile(&r->hist, 0.50) / 1e3,
           kvb_hist_quantile(&r->hist, 0.99) / 1e3, kvb_hist_quantile(&r->hist, 0.999) / 1e3,
           kvb_hist_mean(&r->hist) / 1e3, r->hist.max_ns / 1e3, (unsigned long long)r->found,
           (unsigned long long)r->missing, (unsigned long long)r->errors,
           r->capped ? "true" : "false", r->repeats,
           r->repeats > 1 ? r->ops_min : kvb_ops_per_sec(r),
           r->repeats > 1 ? r->ops_max : kvb_ops_per_sec(r));
    printf("\"rss_anon_before\":%llu,\"rss_anon_after\":%llu,\"rss_file_after\":%llu,"
           "\"rss_anon_delta\":%lld,\"rss_anon_trimmed_delta\":%lld,\"rss_delta\":%lld,"
           "\"ram_per_key\":%.2f,"
           "\"keydir_bytes\":%llu,\"keydir_per_key\":%.2f,\"fsyncs\":%llu,\"fsync_ns\":%llu,"
           "\"segments\":%llu,\"dead_bytes\":%llu,\"merges\":%llu,",
           (unsigned long long)r->mem_before.rss_anon, (unsigned long long)r->mem_trimmed.rss_anon,
           (unsigned long long)r->mem_trimmed.rss_file,
           (long long)(r->mem_after.rss_anon - r->mem_before.rss_anon),
           (long long)(r->mem_trimmed.rss_anon - r->mem_before.rss_anon),
           (long long)(r->mem_after.rss - r->mem_before.rss), ram_per_key(r),
           (unsigned long long)r->est.keydir_bytes,
           r->est.have_keydir ? ratio(r->est.keydir_bytes, r->est.live_keys) : -1.0,
           (unsigned long long)r->est.fsyncs, (unsigned long long)r->est.fsync_ns,
           (unsigned long long)r->est.segments, (unsigned long long)r->est.dead_bytes,
           (unsigned long long)r->est.merges);
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

void kvb_print_header(void)
{
    printf("%-9s %-17s %3s %11s %8s %8s %8s %8s %8s %7s %8s %8s %6s %6s  %s\n", "engine",
           "workload", "thr", "ops/s", "p50us", "p99us", "p99.9us", "cpuus/op", "RAM/key", "kd/key",
           "diskMiB", "appMiB", "s-amp", "w-amp", "notes");
}

void kvb_print_text(const kvb_params *p, const kvb_result *r)
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
    char notes[512];
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
    if ((strcmp(r->workload, "idle") == 0 || strcmp(r->workload, "compact") == 0 ||
         strcmp(r->workload, "deleterandom") == 0) &&
        r->est.have_keydir)
        off +=
            snprintf(notes + off, sizeof notes - (size_t)off,
                     " segments=%llu dead=%.1fMiB merges=%llu", (unsigned long long)r->est.segments,
                     (double)r->est.dead_bytes / 1048576.0, (unsigned long long)r->est.merges);
    if (strcmp(r->workload, "recovery") == 0 && r->est.have_keydir)
        off += snprintf(notes + off, sizeof notes - (size_t)off, " engine says %llums",
                        (unsigned long long)r->est.recovery_ms);
    if (r->capped)
        off += snprintf(notes + off, sizeof notes - (size_t)off, " capped@%llu",
                        (unsigned long long)r->ops);
    if (r->repeats > 1 && off >= 0 && (size_t)off < sizeof notes)
        snprintf(notes + off, sizeof notes - (size_t)off, " median of %d: %.0f..%.0f/s", r->repeats,
                 r->ops_min, r->ops_max);
    printf("%-9s %-17s %3d %11.0f %8s %8s %8s %8.2f %8s %7s %8.1f %8.1f %6s %6s  %s\n", r->engine,
           r->workload, r->threads, kvb_ops_per_sec(r), p50, p99, p999, cpu_us_per_op(r), ram, kd,
           (double)r->du.allocated / 1048576.0, (double)r->du.apparent / 1048576.0, samp, wamp,
           notes);
    fflush(stdout);
}

static const char *fmt_ratio(char *buf, size_t len, double ratio)
{
    if (ratio >= 0.01)
        snprintf(buf, len, "%.2fx", ratio);
    else /* a large loss: 1/N reads better than 0.00 */
        snprintf(buf, len, "1/%.0fx", 1.0 / ratio);
    return buf;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

/* The lower median of V[0..N) (sorts V): for an even N the smaller of the two
 * middle values, so a median never flatters. */
static double median_of(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[(n - 1) / 2];
}

void kvb_median(const kvb_result *runs, int reps, kvb_result *out)
{
    double ops[256];
    int n = 0, failed = 0;
    for (int r = 0; r < reps; r++) {
        if (runs[r].failed)
            failed++;
        else if (!runs[r].skipped && n < 256)
            ops[n++] = kvb_ops_per_sec(&runs[r]);
    }
    if (failed || n == 0) { /* a failed run fails the row; all skipped: skipped */
        for (int r = 0; r < reps; r++)
            if (runs[r].failed || r == reps - 1) {
                *out = runs[r];
                break;
            }
        out->repeats = reps;
        return;
    }
    double med = median_of(ops, n);
    for (int r = 0; r < reps; r++)
        if (!runs[r].failed && !runs[r].skipped && kvb_ops_per_sec(&runs[r]) == med) {
            *out = runs[r];
            break;
        }
    out->repeats = n;
    out->ops_min = ops[0];
    out->ops_max = ops[n - 1];
}

void kvb_print_capped(const kvb_result *res, int n)
{
    int capped = 0;
    for (int i = 0; i < n; i++)
        if (res[i].capped && !res[i].skipped && !res[i].failed)
            capped++;
    if (capped)
        printf("\nnote: %d row(s) stopped at the --seconds cap before N ops (capped@N): their "
               "rates cover fewer ops than the others'; raise --seconds for like-for-like "
               "rows\n",
               capped);
}

/* One ratio table: ringcask vs each peer per workload, by METRIC (higher =
 * ringcask better): the median of the per-round ratios, with their range
 * when there are several rounds. */
static void print_ratio_table(const kvb_result *runs, int n_engines, int n_jobs, int reps,
                              int rc_col, bool by_cpu)
{
    printf("\n%s%s\n",
           by_cpu ? "ratio peer CPU per op / ringcask CPU per op (> 1 = ringcask cheaper)"
                  : "ratio ringcask ops/s / peer ops/s (> 1 = ringcask faster; "
                    "recovery: reopen rate)",
           reps > 1 ? ";\nmedian of the per-round ratios [min-max]" : "");
    int w = reps > 1 ? 22 : 10;
    printf("%-22s %12s", "workload", by_cpu ? "rc cpu us/op" : "ringcask/s");
    for (int e = 0; e < n_engines; e++)
        if (e != rc_col)
            printf(" %*s", w, runs[(size_t)e * (size_t)n_jobs * (size_t)reps].engine);
    printf("\n");
    for (int j = 0; j < n_jobs; j++) {
        const kvb_result *rcr = &runs[((size_t)rc_col * (size_t)n_jobs + (size_t)j) * (size_t)reps];
        kvb_result rc_med;
        kvb_median(rcr, reps, &rc_med);
        char label[48];
        snprintf(label, sizeof label, "%s@%d", rcr->workload, rcr->threads);
        printf(by_cpu ? "%-22s %12.3f" : "%-22s %12.0f", label,
               by_cpu ? cpu_us_per_op(&rc_med) : kvb_ops_per_sec(&rc_med));
        for (int e = 0; e < n_engines; e++) {
            if (e == rc_col)
                continue;
            const kvb_result *pr = &runs[((size_t)e * (size_t)n_jobs + (size_t)j) * (size_t)reps];
            double v[256];
            int n = 0;
            for (int r = 0; r < reps && n < 256; r++) {
                const kvb_result *rc = &rcr[r], *peer = &pr[r];
                double a = by_cpu ? cpu_us_per_op(peer) : kvb_ops_per_sec(rc);
                double b = by_cpu ? cpu_us_per_op(rc) : kvb_ops_per_sec(peer);
                if (peer->skipped || rc->skipped || peer->failed || rc->failed || a <= 0 || b <= 0)
                    continue;
                v[n++] = a / b;
            }
            char cell[96], m[24], lo[24], hi[24];
            if (n == 0)
                snprintf(cell, sizeof cell, "-");
            else if (reps == 1)
                fmt_ratio(cell, sizeof cell, v[0]);
            else {
                double med = median_of(v, n);
                snprintf(cell, sizeof cell, "%s [%s-%s]", fmt_ratio(m, sizeof m, med),
                         fmt_ratio(lo, sizeof lo, v[0]), fmt_ratio(hi, sizeof hi, v[n - 1]));
            }
            printf(" %*s", w, cell);
        }
        printf("\n");
    }
}

void kvb_print_ratios(const kvb_result *runs, int n_engines, int n_jobs, int reps)
{
    int rc_col = -1;
    for (int e = 0; e < n_engines; e++)
        if (strcmp(runs[(size_t)e * (size_t)n_jobs * (size_t)reps].engine, "ringcask") == 0)
            rc_col = e;
    if (rc_col < 0 || n_engines < 2)
        return;
    print_ratio_table(runs, n_engines, n_jobs, reps, rc_col, false);
    print_ratio_table(runs, n_engines, n_jobs, reps, rc_col, true);
}
