/*
 * batch_parse.h — the body of POST /:bucket/ into engine ops, without a
 * request or an engine: JSON, the op limit, op forms, keys, values, TTLs and
 * conditions. route_batch.c authorises each op through a callback (so the
 * first failing op answers, in body order, exactly as before the split) and
 * runs the ops; fuzz/fuzz_batch.c drives the parser alone.
 */
#ifndef KVD_BATCH_PARSE_H
#define KVD_BATCH_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "metrics.h"
#include "ringcask.h"

/* Parsed ops. Keys point into ROOT and values into BUFS; both are owned by
 * the batch until batch_free(). */
typedef struct batch {
    json_t *root;
    rc_op *ops;
    char **bufs; /* values owned by the batch (NULL when none) */
    size_t n;
    uint64_t counts[MOP_COUNT]; /* ops per metric kind (authorised ones) */
} batch;

/* Why a body was refused: the status, error code and message to answer, and
 * the failing op's index (-1 when the body as a whole is wrong). */
typedef struct batch_error {
    unsigned status;
    const char *code;
    long op;
    char msg[128];
} batch_error;

/* Called for op I once its kind and key are known, before its value is
 * parsed. False when the op is refused (the callback has answered). */
typedef bool (*batch_authorize_fn)(void *ctx, unsigned perm, const char *key, size_t klen,
                                   size_t i);

/* Parse BODY (LEN bytes) into *B, ops in keyspace KS, values at most
 * MAX_VALUE bytes. AUTHORIZE may be NULL (every op allowed).
 * 0: *B holds the ops (free with batch_free). -1: refused, *ERR says why.
 * -2: AUTHORIZE refused an op. *B must be batch_free()d in every case. */
int batch_parse(const char *body, size_t len, uint64_t max_value, rc_keyspace *ks,
                batch_authorize_fn authorize, void *ctx, batch *b, batch_error *err);

/* Release everything *B owns, including the ops' results. */
void batch_free(batch *b);

#endif
