/*
 * valuetype.h — typed values: detection from a body (KVdb style), the
 * Content-Type of a stored type, number parsing, PATCH bodies, and JSON
 * values of batches.
 */
#ifndef KVD_VALUETYPE_H
#define KVD_VALUETYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "ringcask.h"

/* int64 if all of DATA is a decimal int64, float64 if it is a finite decimal
 * number, JSON if it parses as a JSON object or array, else raw. */
rc_type value_detect(const char *data, size_t len);

/* The stored type for a PUT body with Content-Type CTYPE (may be NULL).
 * 0, or -1 when CTYPE is application/json and DATA is not valid JSON. */
int value_type_for_put(const char *ctype, const char *data, size_t len, rc_type *out);

/* The Content-Type answered for a stored type. */
const char *value_content_type(rc_type t);

/* Strict parsers over the whole of DATA (no spaces, no hex, no inf/nan). */
bool parse_int64(const char *data, size_t len, int64_t *out);
bool parse_double(const char *data, size_t len, double *out);

typedef enum patch_kind { PATCH_INCR, PATCH_APPEND, PATCH_SETNX, PATCH_GETSET } patch_kind;

/* A parsed PATCH body. VAL points into BUF (owned, free with patch_free). */
typedef struct patch_op {
    patch_kind kind;
    rc_number by;
    char *buf;
    size_t vlen;
    rc_type vtype;
} patch_op;

/* Parse a PATCH body: "+N" / "-N" (int or float, surrounding whitespace
 * allowed) or JSON {"op": "incr"|"append"|"setnx"|"getset", "by"|"value"}.
 * 0, or -1 with a reason in *WHY for a malformed body. */
int patch_parse(const char *body, size_t len, patch_op *out, const char **why);
void patch_free(patch_op *op);

/* The shortest text of finite V that reads back as V, with ".0" added when
 * it would otherwise read as an integer ("1.0", not "1"). Returns its length;
 * CAP >= 32. */
size_t float_text(double v, char *out, size_t cap);

/* A JSON value of a batch set / PATCH op as stored bytes and type: a string
 * is detected like a PUT body, an integer is int64, a real float64 (in
 * float_text form), anything else its compact JSON text. *OUT is malloc'ed
 * (free()). -1 on failure. */
int value_from_json(const json_t *v, char **out, size_t *len, rc_type *type);

#endif
