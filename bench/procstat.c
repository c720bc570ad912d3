/*
 * procstat.c — process and file-system measurements for kvbench.
 *
 * Memory comes from /proc/self/status and splits RssAnon from RssFile:
 * an engine's index (ringcask's keydir, the peers' memtables and caches) is
 * anonymous memory, while LMDB's map and any mmap'd data file count as file
 * pages that the kernel can drop at will — so RAM per key is quoted from
 * RssAnon, with the total beside it. Write amplification uses write_bytes
 * from /proc/self/io, which the kernel charges to the process when it dirties
 * page-cache pages (or writes directly), over all its threads, including the
 * peers' background compaction threads. Directory size is reported twice:
 * allocated blocks (what the disk holds; what kvbench calls disk bytes) and
 * apparent size (st_size), because preallocation and sparse files differ.
 * CPU time (getrusage, all threads) is the figure that survives a shared
 * machine: other tenants steal wall time, not the CPU time an op costs.
 */
#include "procstat.h"

#include <dirent.h>
#include <malloc.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int kvb_mem_read(kvb_mem *out)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        unsigned long long kb;
        if (sscanf(line, "VmRSS: %llu kB", &kb) == 1)
            out->rss = kb * 1024;
        else if (sscanf(line, "RssAnon: %llu kB", &kb) == 1)
            out->rss_anon = kb * 1024;
        else if (sscanf(line, "RssFile: %llu kB", &kb) == 1)
            out->rss_file = kb * 1024;
    }
    fclose(f);
    return 0;
}

uint64_t kvb_io_write_bytes(void)
{
    FILE *f = fopen("/proc/self/io", "r");
    if (!f)
        return 0;
    char line[128];
    unsigned long long v = 0, w = 0;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "write_bytes: %llu", &v) == 1)
            w = v;
    }
    fclose(f);
    return w;
}

static int du_walk(const char *dir, kvb_dusage *out, int depth)
{
    if (depth > 16)
        return 0;
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    struct dirent *e;
    char path[PATH_MAX];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path)
            continue;
        struct stat st;
        if (lstat(path, &st) != 0)
            continue; /* a file an engine just removed */
        if (S_ISDIR(st.st_mode)) {
            du_walk(path, out, depth + 1);
        } else if (S_ISREG(st.st_mode)) {
            out->allocated += (uint64_t)st.st_blocks * 512u;
            out->apparent += (uint64_t)st.st_size;
            out->files++;
        }
    }
    closedir(d);
    return 0;
}

int kvb_du(const char *dir, kvb_dusage *out)
{
    memset(out, 0, sizeof *out);
    return du_walk(dir, out, 0);
}

static int rm_walk(const char *dir, int depth)
{
    if (depth > 16)
        return -1;
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : -1;
    struct dirent *e;
    char path[PATH_MAX];
    int rc = 0;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path) {
            rc = -1;
            continue;
        }
        struct stat st;
        if (lstat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            if (rm_walk(path, depth + 1) != 0)
                rc = -1;
        } else if (unlink(path) != 0) {
            rc = -1;
        }
    }
    closedir(d);
    if (rmdir(dir) != 0 && errno != ENOENT)
        rc = -1;
    return rc;
}

int kvb_rmtree(const char *dir)
{
    return rm_walk(dir, 0);
}

int kvb_mkdirs(const char *dir)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return -1;
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

uint64_t kvb_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t kvb_cpu_ns(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000u +
           ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000u;
}

/* What stays after a load: engines finish work in the background (hint
 * files, flushes, releasing retired memory) with transient buffers, so poll
 * anonymous RSS (after malloc_trim returns freed heap pages) until it holds
 * still for 1.5 s (background threads here wake about once a second), at
 * most 8 s. Untimed. Example: ringcask holds ~195 MB more right after
 * loading 1M 256-byte keys than a second later. */
void kvb_mem_settle(kvb_mem *out)
{
    uint64_t stable_since = kvb_now_ns(), give_up = stable_since + 8000000000ull;
    malloc_trim(0);
    kvb_mem_read(out);
    for (;;) {
        struct timespec ts = {0, 100000000L};
        nanosleep(&ts, NULL);
        kvb_mem now;
        malloc_trim(0);
        kvb_mem_read(&now);
        uint64_t diff = now.rss_anon > out->rss_anon ? now.rss_anon - out->rss_anon
                                                     : out->rss_anon - now.rss_anon;
        uint64_t t = kvb_now_ns();
        if (diff > out->rss_anon / 200) /* moved by more than 0.5 % */
            stable_since = t;
        *out = now;
        if (t - stable_since >= 1500000000ull || t >= give_up)
            return;
    }
}
