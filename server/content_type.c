/*
 * content_type.c — remembering the Content-Type of raw values.
 *
 * The engine stores a type tag, not a media type, so a raw value PUT with
 * e.g. "image/png" would come back as application/octet-stream. kvd keeps
 * such Content-Types in a side keyspace per bucket ("c:" + bucket), written
 * in the same rc_apply as the value, right after it. Staleness needs no
 * bookkeeping: a recorded type applies only while its sequence number is
 * above the value's (same batch, written after it); any later write of the
 * value — a PUT without a Content-Type, a batch set, an incr, a script —
 * gets a higher sequence number and the record silently stops applying.
 * GET reads value and record with one rc_apply of two GET ops, so it sees a
 * consistent pair.
 *
 * Cost is paid only by buckets that ever stored a Content-Type (the
 * policy's content_types flag): other buckets read and write exactly as
 * before. A DELETE of a key removes its record in the same batch; records
 * orphaned by batch deletes or scripts stay (a few bytes each) until the
 * bucket is deleted, and never apply to a new value.
 */
#include "content_type.h"

#include <string.h>
#include <strings.h>

bool ctype_worth_storing(const char *ctype, rc_type t)
{
    if (ctype == NULL || t != RC_TYPE_RAW)
        return false;
    size_t n = strlen(ctype);
    if (n == 0 || n > CTYPE_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)ctype[i] < 0x20 || (unsigned char)ctype[i] > 0x7e)
            return false;
    if (strncasecmp(ctype, "application/octet-stream", 24) == 0 ||
        strncasecmp(ctype, "application/x-www-form-urlencoded", 33) == 0)
        return false;
    return true;
}

void ctype_record_op(const policy *p, const rc_op *value_op, const char *ctype, rc_op *out)
{
    memset(out, 0, sizeof *out);
    out->kind = RC_OP_PUT;
    out->ks = p->ctype_ks;
    out->key = value_op->key;
    out->klen = value_op->klen;
    out->val = ctype;
    out->vlen = strlen(ctype);
    out->type = RC_TYPE_RAW;
    out->cond = RC_IF_ANY;
    /* expire with the value: the side keyspace has no default TTL of its own */
    if (value_op->ttl_ms == RC_TTL_DEFAULT)
        out->ttl_ms = p->default_ttl_s > 0 ? p->default_ttl_s * 1000 : RC_TTL_NONE;
    else
        out->ttl_ms = value_op->ttl_ms;
}

bool ctype_applies(uint64_t ctype_seq, uint64_t value_seq)
{
    return ctype_seq > value_seq && value_seq != 0;
}
