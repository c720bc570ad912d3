/*
 * report.c — kvbench's output: one text row or one JSON object per
 * workload, and the ratio tables (ringcask vs each peer, by wall-clock
 * ops/s and by CPU per op) at the end of a multi-engine run. Derived figures
 * (RAM per key, space and write amplification) are computed here from the
 * raw measurements in kvb_result, so the JSON carries both.
 */
#include "report.h"

#include <stdio.h>
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
           "\"found\":%llu,\"missing\":%llu,\"errors\":%llu,\"capped\":%s,\"repeats\":%d,",
           r->engine, r->workload, r->threads, (unsigned long long)p->n, p->key_size, p->value_size,
           sync_name(p, r, sb, sizeof sb), r->skipped ? "true" : "false",
           r->failed ? "true" : "false", (unsigned long long)r->ops, r->secs, kvb_ops_per_sec(r),
           cpu_us_per_op(r), kvb_hist_quantile(&r->hist, 0.50) / 1e3,
           kvb_hist_quantile(&r->hist, 0.99) / 1e3, kvb_hist_quantile(&r->hist, 0.999) / 1e3,
           kvb_hist_mean(&r->hist) / 1e3, r->hist.max_ns / 1e3, (unsigned long long)r->found,
           (unsigned long long)r->missing, (unsigned long long)r->errors,
           r->capped ? "true" : "false", r->repeats);
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
        snprintf(notes + off, sizeof notes - (size_t)off, " capped@%llu",
                 (unsigned long long)r->ops);
    printf("%-9s %-17s %3d %11.0f %8s %8s %8s %8.2f %8s %7s %8.1f %8.1f %6s %6s  %s\n", r->engine,
           r->workload, r->threads, kvb_ops_per_sec(r), p50, p99, p999, cpu_us_per_op(r), ram, kd,
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
               by_cpu ? cpu_us_per_op(rc) : kvb_ops_per_sec(rc));
        for (int e = 0; e < n_engines; e++) {
            if (e == rc_col)
                continue;
            const kvb_result *peer = &res[e * n_jobs + j];
            char inv[32];
            double a = by_cpu ? cpu_us_per_op(peer) : kvb_ops_per_sec(rc);
            double b = by_cpu ? cpu_us_per_op(rc) : kvb_ops_per_sec(peer);
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

void kvb_print_ratios(const kvb_result *res, int n_engines, int n_jobs)
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
