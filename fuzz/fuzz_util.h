/*
 * fuzz_util.h — shared bits of the libFuzzer harnesses.
 *
 * Inputs start with one control byte; bit 0 asks the harness to "reseal" the
 * rest before decoding, i.e. to recompute the checksums the format stores,
 * so that mutations reach the field checks behind them instead of dying at
 * the first checksum. Both modes run on every seed, so plain damage and
 * well-sealed nonsense are both covered.
 */
#ifndef RC_FUZZ_UTIL_H
#define RC_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_RESEAL 0x01u

/* An invariant of the decoders: abort (a crash for libFuzzer) if it fails. */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* An exact-size heap copy, so that ASan flags a read one byte past the end. */
static inline uint8_t *fuzz_copy(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(size ? size : 1);
    FUZZ_CHECK(buf != NULL);
    if (size)
        memcpy(buf, data, size);
    return buf;
}

#endif
