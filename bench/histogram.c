/*
 * histogram.c — log-linear latency histogram.
 *
 * Values below 2^SUB_BITS ns get a bucket each; above, every power of two
 * [2^e, 2^(e+1)) is cut into 2^SUB_BITS equal sub-buckets, so a recorded
 * latency is known within 1/32 of itself at any scale, with a fixed 10 KiB
 * array and one clz per sample (no allocation, no locks: each worker thread
 * owns one and kvbench merges them afterwards). Quantiles report the upper
 * edge of the bucket, never under-stating a tail.
 */
#include "histogram.h"

#include <string.h>

void kvb_hist_init(kvb_hist *h)
{
    memset(h, 0, sizeof *h);
    h->min_ns = UINT64_MAX;
}

static unsigned bucket_of(uint64_t v)
{
    const uint64_t sub = 1u << KVB_HIST_SUB_BITS;
    if (v < sub)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* e >= SUB_BITS */
    if (e > KVB_HIST_MAX_EXP)
        return KVB_HIST_BUCKETS - 1;
    unsigned s = (unsigned)(v >> (e - KVB_HIST_SUB_BITS)) & (unsigned)(sub - 1);
    return ((e - KVB_HIST_SUB_BITS + 1u) << KVB_HIST_SUB_BITS) + s;
}

static uint64_t bucket_upper(unsigned b)
{
    const unsigned sub = 1u << KVB_HIST_SUB_BITS;
    if (b < sub)
        return b;
    unsigned e = (b >> KVB_HIST_SUB_BITS) + KVB_HIST_SUB_BITS - 1u;
    uint64_t s = b & (sub - 1u);
    uint64_t width = (uint64_t)1 << (e - KVB_HIST_SUB_BITS);
    return ((uint64_t)1 << e) + (s + 1) * width - 1;
}

void kvb_hist_record(kvb_hist *h, uint64_t ns)
{
    h->buckets[bucket_of(ns)]++;
    h->count++;
    h->sum_ns += ns;
    if (ns < h->min_ns)
        h->min_ns = ns;
    if (ns > h->max_ns)
        h->max_ns = ns;
}

void kvb_hist_merge(kvb_hist *dst, const kvb_hist *src)
{
    for (unsigned i = 0; i < KVB_HIST_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
    dst->count += src->count;
    dst->sum_ns += src->sum_ns;
    if (src->min_ns < dst->min_ns)
        dst->min_ns = src->min_ns;
    if (src->max_ns > dst->max_ns)
        dst->max_ns = src->max_ns;
}

uint64_t kvb_hist_quantile(const kvb_hist *h, double q)
{
    if (h->count == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)h->count);
    if (rank >= h->count)
        rank = h->count - 1;
    uint64_t seen = 0;
    for (unsigned b = 0; b < KVB_HIST_BUCKETS; b++) {
        seen += h->buckets[b];
        if (seen > rank) {
            uint64_t up = bucket_upper(b);
            return up < h->max_ns ? up : h->max_ns;
        }
    }
    return h->max_ns;
}

double kvb_hist_mean(const kvb_hist *h)
{
    return h->count ? (double)h->sum_ns / (double)h->count : 0.0;
}
