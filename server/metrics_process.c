/*
 * metrics_process.c — process_* figures from /proc/self, and build_info.
 *
 * The names and meanings are those of the Prometheus client libraries'
 * process collector, so dashboards made for any exporter work unchanged.
 * /proc/self/stat gives CPU ticks, virtual size, resident pages and the
 * start time in ticks after boot; the boot time in wall-clock terms is
 * CLOCK_REALTIME minus CLOCK_BOOTTIME, which needs no access to /proc/stat
 * (the systemd unit's ProcSubset=pid hides it). Open descriptors are the
 * entries of /proc/self/fd, less the one reading it.
 */
#include "metrics_process.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "ringcask.h"

#ifndef KVD_BUILD_TYPE
#define KVD_BUILD_TYPE "unknown"
#endif
#ifndef KVD_BUILD_SANITIZE
#define KVD_BUILD_SANITIZE ""
#endif
#ifndef KVD_BUILD_COMPILER
#define KVD_BUILD_COMPILER "unknown"
#endif
#ifndef KVD_BUILD_FAULT_INJECTION
#define KVD_BUILD_FAULT_INJECTION "unknown"
#endif
#ifndef KVD_BUILD_SCRIPTS
#define KVD_BUILD_SCRIPTS "unknown"
#endif

typedef struct proc_stat {
    unsigned long long utime, stime, starttime, vsize;
    long long rss_pages;
} proc_stat;

static bool read_proc_stat(proc_stat *ps)
{
    char buf[2048];
    FILE *f = fopen("/proc/self/stat", "r");
    if (f == NULL)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* the command name (field 2) is in parentheses and may hold spaces */
    const char *p = strrchr(buf, ')');
    if (p == NULL)
        return false;
    /* fields 3..24: state ppid pgrp session tty tpgid flags minflt cminflt
     * majflt cmajflt utime stime cutime cstime priority nice threads
     * itrealvalue starttime vsize rss */
    int got = sscanf(p + 1,
                     " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d"
                     " %*d %llu %llu %lld",
                     &ps->utime, &ps->stime, &ps->starttime, &ps->vsize, &ps->rss_pages);
    return got == 5;
}

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double process_start_time(void)
{
    proc_stat ps;
    long hz = sysconf(_SC_CLK_TCK);
    double now = clock_s(CLOCK_REALTIME);
    if (hz <= 0 || !read_proc_stat(&ps))
        return now;
    double boot = now - clock_s(CLOCK_BOOTTIME);
    return boot + (double)ps.starttime / (double)hz;
}

static long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n > 0 ? n - 1 : 0; /* not the descriptor of the listing itself */
}

void metrics_render_process(textbuf *t, double start)
{
    proc_stat ps;
    long hz = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    if (hz > 0 && page > 0 && read_proc_stat(&ps)) {
        tb_metric_f64(t, "process_cpu_seconds_total", "counter",
                      "Total user and system CPU time spent in seconds.",
                      (double)(ps.utime + ps.stime) / (double)hz);
        tb_metric_u64(t, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
                      ps.rss_pages > 0 ? (uint64_t)ps.rss_pages * (uint64_t)page : 0);
        tb_metric_u64(t, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
                      ps.vsize);
    }
    long fds = open_fds();
    if (fds >= 0)
        tb_metric_u64(t, "process_open_fds", "gauge", "Number of open file descriptors.",
                      (uint64_t)fds);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        tb_metric_u64(t, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
                      (uint64_t)rl.rlim_cur);
    tb_metric_f64(t, "process_start_time_seconds", "gauge",
                  "Start time of the process since unix epoch in seconds.", start);
}

void metrics_render_build_info(textbuf *t)
{
    char version[32];
    snprintf(version, sizeof version, "%d.%d.%d", RC_VERSION_MAJOR, RC_VERSION_MINOR,
             RC_VERSION_PATCH);
    tb_family(t, "ringcask_build_info", "gauge",
              "Always 1; the labels describe the build of this kvd.");
    tb_printf(t, "ringcask_build_info{version=\"");
    tb_label_value(t, version);
    tb_printf(t, "\",build_type=\"");
    tb_label_value(t, KVD_BUILD_TYPE);
    tb_printf(t, "\",sanitizers=\"");
    tb_label_value(t, KVD_BUILD_SANITIZE);
    tb_printf(t, "\",compiler=\"");
    tb_label_value(t, KVD_BUILD_COMPILER);
    tb_printf(t, "\",fault_injection=\"");
    tb_label_value(t, KVD_BUILD_FAULT_INJECTION);
    tb_printf(t, "\",scripts=\"");
    tb_label_value(t, KVD_BUILD_SCRIPTS);
    tb_printf(t, "\"} 1\n");
}

void kvd_build_describe(FILE *out)
{
    fprintf(out, "build: %s, sanitizers: %s, compiler: %s, fault injection: %s, scripts: %s\n",
            KVD_BUILD_TYPE, KVD_BUILD_SANITIZE[0] ? KVD_BUILD_SANITIZE : "none", KVD_BUILD_COMPILER,
            KVD_BUILD_FAULT_INJECTION, KVD_BUILD_SCRIPTS);
}
