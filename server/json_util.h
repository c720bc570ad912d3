/*
 * json_util.h — small helpers over Jansson.
 */
#ifndef KVD_JSON_UTIL_H
#define KVD_JSON_UTIL_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "rcu_text.h" /* rcu_utf8_valid, rcu_base64_encode */

/* A JSON string of DATA when it is UTF-8, else {"base64": "..."}. New ref. */
json_t *json_bytes(const void *data, size_t len);

/* Parse a request body as a JSON object. NULL (and *WHY set) on failure. */
json_t *json_parse_object(const char *data, size_t len, const char **why);

/* Why a JSON text did not parse, for an error message: WHAT and Jansson's
 * reason with its byte offset (in a buffer of the calling thread, valid
 * until its next call), or the memory bound's message when that stopped
 * the parse. */
const char *json_error_why(const json_error_t *err, const char *what);

/* An integer member: 0 ok (or absent: *OUT untouched), -1 wrong type. */
int json_get_int(const json_t *obj, const char *name, long long *out);

/* Refuse misspelt fields: the first member of object O whose name is not
 * one of the N names in KNOWN, copied into SHOWN (at most CAP - 1 bytes,
 * bytes outside printable ASCII as '?'); false when every member is known. */
bool json_unknown_field(const json_t *o, const char *const *known, size_t n, char *shown,
                        size_t cap);

#endif
