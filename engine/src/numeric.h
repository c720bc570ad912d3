/*
 * numeric.h — the text form of int and float values, and checked addition.
 */
#ifndef RC_NUMERIC_H
#define RC_NUMERIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NUM_TEXT_MAX 40

typedef struct num_value {
    bool is_float;
    int64_t i;
    double f;
} num_value;

/* Parse decimal int64 or a finite double (whole text, no spaces). 0 or -1. */
int rci_num_parse(const void *text, size_t len, num_value *out);
/* A + B: int+int stays int (RC_EOVERFLOW on overflow); else float
 * (RC_EOVERFLOW when the result is not finite). */
int rci_num_add(const num_value *a, const num_value *b, num_value *out);
/* Shortest text that parses back to the same value; returns its length. */
size_t rci_num_format(const num_value *v, char out[NUM_TEXT_MAX]);

#endif
