/*
 * keys.h — kvbench's deterministic keys and random stream (see workloads.c
 * for how indexes map to keys). Header-only: every function is a few
 * instructions on the hot path of every op.
 */
#ifndef KVB_KEYS_H
#define KVB_KEYS_H

#include <stddef.h>
#include <stdint.h>

static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static inline uint64_t rng_next(uint64_t *state)
{
    *state += 0x9e3779b97f4a7c15ull;
    return mix64(*state);
}

static inline void key_format(uint64_t u, size_t ksize, unsigned char *out)
{
    static const char hex[] = "0123456789abcdef";
    size_t head = ksize >= 16 ? 16 : 8;
    for (size_t i = 0; i < head; i++) {
        if (head == 16)
            out[i] = (unsigned char)hex[(u >> (60 - 4 * i)) & 15u];
        else
            out[i] = (unsigned char)(u >> (56 - 8 * i));
    }
    for (size_t i = head; i < ksize; i++)
        out[i] = (unsigned char)('a' + ((u >> ((i * 5) & 63)) + i) % 26u);
}

static inline int kvb_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

#endif /* KVB_KEYS_H */
