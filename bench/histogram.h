/*
 * histogram.h — log-linear latency histogram (HdrHistogram-style, fixed
 * precision): one per thread, merged after the run.
 */
#ifndef KVB_HISTOGRAM_H
#define KVB_HISTOGRAM_H

#include <stdint.h>

#define KVB_HIST_SUB_BITS 5u /* 32 sub-buckets per power of two: <= 3.2 % error */
#define KVB_HIST_MAX_EXP 44u /* values up to 2^44 ns (~4.9 hours) */
#define KVB_HIST_BUCKETS ((KVB_HIST_MAX_EXP - KVB_HIST_SUB_BITS + 2u) << KVB_HIST_SUB_BITS)

typedef struct kvb_hist {
    uint64_t count;
    uint64_t sum_ns;
    uint64_t min_ns;
    uint64_t max_ns;
    uint64_t buckets[KVB_HIST_BUCKETS];
} kvb_hist;

void kvb_hist_init(kvb_hist *h);
void kvb_hist_record(kvb_hist *h, uint64_t ns);
/* Add every sample of SRC to DST. */
void kvb_hist_merge(kvb_hist *dst, const kvb_hist *src);
/* The value at quantile Q (0..1): the upper bound of the bucket holding it,
 * capped by the largest sample. 0 for an empty histogram. */
uint64_t kvb_hist_quantile(const kvb_hist *h, double q);
double kvb_hist_mean(const kvb_hist *h);

#endif /* KVB_HISTOGRAM_H */
