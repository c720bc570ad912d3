/*
 * ycsb.h — the request distributions of the YCSB core workloads (Cooper et
 * al., "Benchmarking Cloud Serving Systems with YCSB", SoCC 2010), as its
 * reference implementation draws them:
 *   - zipfian over N items with theta 0.99 (Gray et al., "Quickly Generating
 *     Billion-Record Synthetic Databases", SIGMOD 1994), scrambled so that the
 *     popular items are spread over the key space (YCSB's
 *     ScrambledZipfianGenerator: an FNV-1a hash of the rank, mod N);
 *   - "latest" for workload D: the zipfian rank counted back from the newest
 *     inserted item (YCSB's SkewedLatestGenerator);
 *   - uniform scan lengths 1..100 for workload E.
 * The constants depend only on N and are computed once (zeta is O(N)); each
 * draw is a few floating-point operations on a per-thread random stream.
 */
#ifndef KVB_YCSB_H
#define KVB_YCSB_H

#include <math.h>
#include <stdint.h>

#define KVB_YCSB_THETA 0.99
#define KVB_YCSB_MAX_SCAN 100

typedef struct kvb_zipf {
    uint64_t n;
    double theta, alpha, zetan, eta, zeta2;
} kvb_zipf;

static inline void kvb_zipf_init(kvb_zipf *z, uint64_t n)
{
    double zetan = 0;
    for (uint64_t i = 1; i <= n; i++)
        zetan += 1.0 / pow((double)i, KVB_YCSB_THETA);
    z->n = n;
    z->theta = KVB_YCSB_THETA;
    z->zetan = zetan;
    z->zeta2 = 1.0 + 1.0 / pow(2.0, KVB_YCSB_THETA);
    z->alpha = 1.0 / (1.0 - KVB_YCSB_THETA);
    z->eta = (1.0 - pow(2.0 / (double)n, 1.0 - KVB_YCSB_THETA)) / (1.0 - z->zeta2 / zetan);
}

/* A zipfian rank in [0, n): 0 is the most popular. U is uniform in [0, 1). */
static inline uint64_t kvb_zipf_rank(const kvb_zipf *z, double u)
{
    double uz = u * z->zetan;
    if (uz < 1.0)
        return 0;
    if (uz < z->zeta2)
        return 1;
    uint64_t r = (uint64_t)((double)z->n * pow(z->eta * u - z->eta + 1.0, z->alpha));
    return r < z->n ? r : z->n - 1;
}

/* FNV-1a over the rank's 8 bytes, as YCSB scrambles its zipfian. */
static inline uint64_t kvb_fnv64(uint64_t v)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < 8; i++) {
        h ^= v & 0xff;
        h *= 0x100000001b3ull;
        v >>= 8;
    }
    return h;
}

/* An item index in [0, n), popular items scattered over the key space. */
static inline uint64_t kvb_zipf_scrambled(const kvb_zipf *z, double u)
{
    return kvb_fnv64(kvb_zipf_rank(z, u)) % z->n;
}

/* Workload D's read: an index in [0, count), skewed to the newest (count-1).
 * The ranks come from the zipfian over the loaded items, which is what YCSB
 * does between its (rare) recomputations of zeta. */
static inline uint64_t kvb_zipf_latest(const kvb_zipf *z, double u, uint64_t count)
{
    uint64_t r = kvb_zipf_rank(z, u);
    return r < count ? count - 1 - r : 0;
}

static inline double kvb_unit(uint64_t r)
{
    return (double)(r >> 11) * (1.0 / 9007199254740992.0); /* 53 bits: [0, 1) */
}

#endif /* KVB_YCSB_H */
