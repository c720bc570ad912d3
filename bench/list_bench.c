/*
 * list_bench — what paging through a large keyspace costs (rc_list_keys):
 * the first page (which builds the sorted-keys cache), later pages, a page
 * after new keys (a drain) and after many new keys (a rebuild), the cache's
 * RAM per key, and the put cost with and without a cache to keep up to date.
 * Keys are kvbench's (16 hex characters of a mixed index), values 100 bytes.
 *
 *   list_bench DIR [N [LIST_CACHE_IDLE_MS]]
 *
 * DIR must not exist (or be empty). N defaults to 1,000,000;
 * LIST_CACHE_IDLE_MS to the engine's default (0 measures the uncached scan).
 * Times are the thread's CPU time.
 */
#include "keys.h"
#include "ringcask.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "list_bench: %s: %s %s\n", what, rc_strerror(rc), rc_last_error_message());
    exit(1);
}

/* Put keys FROM..FROM+N (new ones) or N overwrites in 0..RANGE; CPU us/put. */
static double put_keys(rc_db *db, uint64_t from, uint64_t n, uint64_t range)
{
    unsigned char k[16], v[100];
    memset(v, 'v', sizeof(v));
    double t0 = cpu_s();
    for (uint64_t i = 0; i < n; i++) {
        uint64_t idx = range ? mix64(i + 77) % range : from + i;
        key_format(mix64(idx), sizeof(k), k);
        int rc = rc_put(db, NULL, k, sizeof(k), v, sizeof(v), NULL);
        if (rc)
            die("put", rc);
    }
    return (cpu_s() - t0) / (double)n * 1e6;
}

/* One page of 100 keys from START; CPU ms. LAST receives its last key. */
static double page(rc_db *db, const void *start, size_t slen, unsigned char *last, size_t *llen)
{
    rc_list_opts o = {.start = start, .start_len = slen, .limit = 100};
    rc_list *l;
    double t0 = cpu_s();
    int rc = rc_list_keys(db, NULL, &o, &l);
    double t = cpu_s() - t0;
    if (rc)
        die("list", rc);
    if (last && l->count) {
        rc_list_item *it = &l->items[l->count - 1];
        memcpy(last, it->key, it->klen);
        *llen = it->klen;
    }
    rc_list_free(l);
    return t * 1e3;
}

static void cache_bytes(rc_db *db, const char *when)
{
    rc_stats st;
    rc_stats_db(db, &st);
    printf("%-44s %.1f B/key (keydir %.1f B/key)\n", when,
           (double)st.list_cache_bytes / (double)st.live_keys,
           (double)st.keydir_bytes / (double)st.live_keys);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: list_bench DIR [N [LIST_CACHE_IDLE_MS]]\n");
        return 2;
    }
    uint64_t n = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000000;
    rc_options o;
    rc_options_default(&o);
    o.sync = RC_SYNC_NONE;
    if (argc > 3)
        o.list_cache_idle_ms = (uint32_t)strtoul(argv[3], NULL, 10);
    rc_db *db;
    int rc = rc_open(argv[1], &o, &db);
    if (rc)
        die("open", rc);
    printf("n=%llu list_cache_idle_ms=%u\n", (unsigned long long)n, o.list_cache_idle_ms);
    printf("%-44s %.3f us CPU\n", "put, new keys, no cache", put_keys(db, 0, n, 0));
    printf("%-44s %.1f ms CPU\n", "first page", page(db, "8", 1, NULL, NULL));
    cache_bytes(db, "cache");
    unsigned char last[40];
    size_t llen = 0;
    double sum = 0;
    const int pages = 200;
    for (int i = 0; i < pages; i++) { /* start: just after the last key */
        last[llen] = 0;
        sum += i ? page(db, last, llen + 1, last, &llen) : page(db, "0", 1, last, &llen);
    }
    printf("%-44s %.1f us CPU\n", "later pages, paging on", sum / pages * 1e3);
    sum = 0;
    for (int i = 0; i < pages; i++) {
        unsigned char k[16];
        key_format(mix64((uint64_t)i + 1234567), sizeof(k), k);
        sum += page(db, k, sizeof(k), NULL, NULL);
    }
    printf("%-44s %.1f us CPU\n", "later pages, random starts", sum / pages * 1e3);
    printf("%-44s %.3f us CPU\n", "put, n/20 new keys, cache kept up", put_keys(db, n, n / 20, 0));
    printf("%-44s %.2f ms CPU\n", "page after those (drain)", page(db, "8", 1, NULL, NULL));
    printf("%-44s %.1f us CPU\n", "next page", page(db, "9", 1, NULL, NULL) * 1e3);
    printf("%-44s %.3f us CPU\n", "put, n/2 overwrites", put_keys(db, 0, n / 2, n));
    printf("%-44s %.3f us CPU\n", "put, n/5 new keys, cache kept up",
           put_keys(db, n + n / 20, n / 5, 0));
    printf("%-44s %.1f ms CPU\n", "page after those (rebuild)", page(db, "8", 1, NULL, NULL));
    cache_bytes(db, "cache after the rebuild");
    rc_close(db);
    return 0;
}
