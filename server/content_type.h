/*
 * content_type.h — the Content-Type a raw value was set with.
 */
#ifndef KVD_CONTENT_TYPE_H
#define KVD_CONTENT_TYPE_H

#include <stdbool.h>

#include "policy.h"

#define CTYPE_MAX 200u

/* True when a PUT with Content-Type CTYPE stored as type T should remember it:
 * raw values with a type other than octet-stream and form encoding. */
bool ctype_worth_storing(const char *ctype, rc_type t);

/* The op that records CTYPE for VALUE_OP's key; it must follow VALUE_OP in
 * the same rc_apply so its sequence number is the higher one. */
void ctype_record_op(const policy *p, const rc_op *value_op, const char *ctype, rc_op *out);

/* Whether a recorded Content-Type (seq CTYPE_SEQ) belongs to the value with
 * seq VALUE_SEQ: it does when it was written after (in the same batch); any
 * later write of the value without one makes it stale. */
bool ctype_applies(uint64_t ctype_seq, uint64_t value_seq);

#endif
