/*
 * batch_results.h — the answer of POST /:bucket/ once the ops ran:
 * {"results":[...]} with one object per op, in op order.
 *
 * batch_result_json() builds one op's result as a Jansson tree (the
 * reference form, used by the tests); batch_results_dump() writes the whole
 * answer straight into one buffer, byte for byte what
 * json_dumps(tree, JSON_COMPACT) followed by "\n" gives for the same ops,
 * without a json_t per op.
 */
#ifndef KVD_BATCH_RESULTS_H
#define KVD_BATCH_RESULTS_H

#include <stddef.h>

#include <jansson.h>

#include "ringcask.h"

/* Op OP's result object: {"etag": "\"<seq>\""}, {"deleted": bool},
 * {"value": int | real | string} for incr, {"value": string | null} or
 * {"value_base64": "..."} for get. New reference; NULL on allocation failure. */
json_t *batch_result_json(const rc_op *op);

/* {"results":[<batch_result_json(ops[i])>...]} compact, then "\n": a
 * malloc'ed, NUL-terminated buffer of *LEN bytes (the NUL not counted), or
 * NULL on allocation failure. */
char *batch_results_dump(const rc_op *ops, size_t n, size_t *len);

/* An upper bound (exact but for reals) of the bytes batch_results_dump
 * writes for OPS, NUL included: what the answer costs in memory. */
size_t batch_results_size(const rc_op *ops, size_t n);

#endif
