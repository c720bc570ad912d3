/*
 * keydir_bench.c — micro-benchmark of the keydir alone (no I/O, no engine):
 * memory per key by process RSS and by rci_keydir_bytes(), insert rate, the
 * longest single rci_keydir_put (growth/compaction pause), and lookup rates with
 * 1 and 2 threads taking the shard read lock around each find.
 *
 * Build (from the repository root):
 *   clang -std=gnu17 -O2 -DNDEBUG -Iengine/src -Iformat engine/src/keydir.c \
 *     engine/src/keydir_arena.c bench/keydir_bench.c -lxxhash -lpthread -o keydir_bench
 * Run: ./keydir_bench [N keys, default 1000000] [lookups per thread, default 2000000]
 *
 * Keys are 16 random bytes derived from their index by splitmix64, so the
 * benchmark stores no key array and the RSS delta is the keydir's own.
 * The insert rate includes key generation, hashing, locking and two
 * clock_gettime calls per put (~40 ns) used to find the longest put. On a
 * shared, overloaded machine wall-clock figures mostly measure the other
 * tenants, so every rate is also given per second of the thread's own CPU
 * time, and the pauses are measured in thread CPU time on one shard.
 */
#include "keydir.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static void make_key(uint64_t i, uint8_t key[16])
{
    uint64_t a = splitmix64(2 * i), b = splitmix64(2 * i + 1);
    memcpy(key, &a, 8);
    memcpy(key + 8, &b, 8);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (!f || fscanf(f, "%lu %lu", &size, &resident) != 2) {
        perror("statm");
        exit(1);
    }
    fclose(f);
    return resident * (size_t)sysconf(_SC_PAGESIZE);
}

static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct reader {
    keydir *kd;
    uint64_t nkeys, lookups, base, seed, found;
    double cpu_s; /* the thread's CPU time for its lookups */
};

static void *reader_run(void *arg)
{
    struct reader *r = arg;
    uint64_t x = r->seed, found = 0;
    uint8_t key[16];
    double c0 = thread_cpu_s();
    for (uint64_t n = 0; n < r->lookups; n++) {
        x = splitmix64(x);
        make_key(r->base + x % r->nkeys, key);
        uint64_t h = rci_keydir_hash(key, sizeof key);
        unsigned sh = keydir_shard_of(h);
        kd_loc loc;
        rci_keydir_rdlock(r->kd, sh);
        found += rci_keydir_find(r->kd, h, key, sizeof key, &loc);
        rci_keydir_unlock(r->kd, sh);
    }
    r->found = found;
    r->cpu_s = thread_cpu_s() - c0;
    return NULL;
}

/* Lookups/s with THREADS readers; BASE = 0 hits present keys, BASE = N
 * misses. *CPU_RATE is the rate the threads would reach with a core each:
 * all lookups over the busiest thread's CPU time, which is what a shared,
 * overloaded machine still lets us measure. */
static double lookup_rate(keydir *kd, uint64_t n, uint64_t per_thread, int threads, uint64_t base,
                          uint64_t *found, double *cpu_rate)
{
    pthread_t tid[8];
    struct reader r[8];
    double t0 = now_s(), cpu = 0;
    for (int i = 0; i < threads; i++) {
        r[i] = (struct reader){kd, n, per_thread, base, 1234u + (uint64_t)i, 0, 0};
        pthread_create(&tid[i], NULL, reader_run, &r[i]);
    }
    *found = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(tid[i], NULL);
        *found += r[i].found;
        cpu = r[i].cpu_s > cpu ? r[i].cpu_s : cpu;
    }
    *cpu_rate = (double)per_thread * threads / cpu;
    return (double)per_thread * threads / (now_s() - t0);
}

/* Pauses without the noise of a shared machine: fill ONE shard with the
 * N/64 keys it holds in an N-key keydir (forged hashes), then delete every
 * other key, timing each call in thread CPU time, which a preemption does
 * not inflate. The longest put is a growth, the longest remove a compaction
 * (or shrink). The CPU clock costs ~1 us a call, too much for the N-key pass. */
static void one_shard_pauses(uint64_t n, double *put_worst, double *remove_worst)
{
    keydir *kd = rci_keydir_new();
    uint8_t key[16];
    *put_worst = *remove_worst = 0;
    rci_keydir_wrlock(kd, 0);
    for (uint64_t i = 0; i < n / KEYDIR_SHARDS; i++) {
        make_key(i, key);
        uint64_t h = rci_keydir_hash(key, sizeof key) >> 6; /* shard 0 */
        kd_loc loc = {.seq = i + 1};
        double p0 = thread_cpu_s();
        if (rci_keydir_put(kd, h, key, sizeof key, &loc, NULL, NULL))
            exit(1);
        double p = thread_cpu_s() - p0;
        *put_worst = p > *put_worst ? p : *put_worst;
    }
    for (uint64_t i = 0; i < n / KEYDIR_SHARDS; i += 2) {
        make_key(i, key);
        uint64_t h = rci_keydir_hash(key, sizeof key) >> 6;
        double p0 = thread_cpu_s();
        if (!rci_keydir_remove(kd, h, key, sizeof key, NULL))
            exit(1);
        double p = thread_cpu_s() - p0;
        *remove_worst = p > *remove_worst ? p : *remove_worst;
    }
    rci_keydir_unlock(kd, 0);
    rci_keydir_free(kd);
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000u;
    uint64_t per_thread = argc > 2 ? strtoull(argv[2], NULL, 10) : 2000000u;
    size_t rss0 = rss_bytes();
    keydir *kd = rci_keydir_new();
    if (!kd)
        return 1;
    size_t empty_bytes = rci_keydir_bytes(kd);

    double worst = 0, t0 = now_s(), c0 = thread_cpu_s();
    uint64_t slow = 0;
    uint8_t key[16];
    for (uint64_t i = 0; i < n; i++) {
        make_key(i, key);
        uint64_t h = rci_keydir_hash(key, sizeof key);
        unsigned sh = keydir_shard_of(h);
        kd_loc loc = {.seg = (uint16_t)i, .off = (uint32_t)i, .seq = i + 1};
        rci_keydir_wrlock(kd, sh);
        double p0 = now_s();
        int rc = rci_keydir_put(kd, h, key, sizeof key, &loc, NULL, NULL);
        double p = now_s() - p0;
        rci_keydir_unlock(kd, sh);
        if (rc) {
            fprintf(stderr, "put failed at %llu\n", (unsigned long long)i);
            return 1;
        }
        worst = p > worst ? p : worst;
        slow += p > 100e-6;
    }
    double insert_s = now_s() - t0, insert_cpu = thread_cpu_s() - c0;
    size_t rss1 = rss_bytes();
    size_t kb = rci_keydir_bytes(kd);
    double rss_per_key = ((double)rss1 - (double)rss0) / (double)n;
    double kd_per_key = (double)kb / (double)n;

    printf("keys                      %llu x 16 B\n", (unsigned long long)n);
    printf("empty keydir              %zu B\n", empty_bytes);
    printf("RSS delta per key         %.1f B (%.1f B beyond the key)\n", rss_per_key,
           rss_per_key - 16);
    printf("keydir_bytes per key      %.1f B (%.1f B beyond the key)\n", kd_per_key,
           kd_per_key - 16);
    printf("inserts                   %.2f M/s wall, %.2f M/s per CPU second\n",
           (double)n / insert_s / 1e6, (double)n / insert_cpu / 1e6);
    printf("longest put, wall         %.3f ms (%llu puts > 100 us; includes preemption)\n",
           worst * 1e3, (unsigned long long)slow);
    double put_cpu, remove_cpu;
    one_shard_pauses(n, &put_cpu, &remove_cpu);
    printf("longest put, thread CPU   %.3f ms (growth of one shard of %llu keys)\n", put_cpu * 1e3,
           (unsigned long long)(n / KEYDIR_SHARDS));
    printf("longest remove, CPU       %.3f ms (compaction, same shard, deleting half)\n",
           remove_cpu * 1e3);
    if (rci_keydir_count(kd) != n) {
        fprintf(stderr, "count %zu != %llu\n", rci_keydir_count(kd), (unsigned long long)n);
        return 1;
    }

    for (int threads = 1; threads <= 2; threads++) {
        uint64_t found;
        double cpu_rate, rate = lookup_rate(kd, n, per_thread, threads, 0, &found, &cpu_rate);
        printf("lookups, %d thread%s        %.2f M/s wall, %.2f M/s per CPU second%s\n", threads,
               threads > 1 ? "s" : " ", rate / 1e6, cpu_rate / 1e6,
               threads > 1 ? " of the busiest" : "");
        if (found != per_thread * (uint64_t)threads) {
            fprintf(stderr, "missed keys\n");
            return 1;
        }
    }
    uint64_t found;
    double miss_cpu, miss = lookup_rate(kd, n, per_thread, 1, n, &found, &miss_cpu);
    printf("misses, 1 thread          %.2f M/s wall, %.2f M/s per CPU second\n", miss / 1e6,
           miss_cpu / 1e6);
    rci_keydir_free(kd);
    return found != 0;
}
