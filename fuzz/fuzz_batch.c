/*
 * fuzz_batch.c — the body of a batch, POST /:bucket/ (server/batch_parse.c):
 * JSON, the op limit, op forms, keys, values (text, JSON, base64), TTLs and
 * conditions, parsed into engine ops without an engine or a request.
 *
 * The control byte picks the value limit (tiny limits reach the 413 path
 * with small inputs) and whether authorisation refuses keys that start with
 * "deny"; the rest is the body. The authorisation callback checks that it
 * is asked once per op, in order, before anything after the refused op.
 * Invariants beyond "no crash, no overread, no leak":
 *   - 0: at most KVD_BATCH_OPS_MAX ops, each a known kind with a key of
 *     1..RC_KEY_MAX bytes in the given keyspace; a set has a value within the
 *     limit, a TTL that is the default, "none" or whole seconds up to
 *     TTL_MAX_S, and a known condition; an incr has an int or a finite float;
 *     the per-kind counts add up to the number of ops;
 *   - -1: a 4xx (or 503) with an error code and a message, naming an op
 *     inside the batch or none;
 *   - -2: only when the callback refused, and it refused the last op asked.
 */
#include <math.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "batch_parse.h"
#include "fuzz_util.h"
#include "routes.h"

typedef struct auth_log {
    bool deny;
    size_t next;  /* the op index expected next */
    bool refused; /* the last call refused */
} auth_log;

static bool authorize(void *ctx, unsigned perm, const char *key, size_t klen, size_t i)
{
    auth_log *log = ctx;
    FUZZ_CHECK(!log->refused);
    FUZZ_CHECK(i == log->next);
    FUZZ_CHECK(perm != 0 && klen >= 1 && klen <= RC_KEY_MAX);
    log->next++;
    log->refused = log->deny && klen >= 4 && memcmp(key, "deny", 4) == 0;
    return !log->refused;
}

static void check_op(const rc_op *op, uint64_t max_value, const rc_keyspace *ks)
{
    FUZZ_CHECK(op->ks == ks);
    FUZZ_CHECK(op->key != NULL && op->klen >= 1 && op->klen <= RC_KEY_MAX);
    switch (op->kind) {
    case RC_OP_PUT:
        FUZZ_CHECK(op->vlen <= max_value);
        FUZZ_CHECK(op->val != NULL);
        FUZZ_CHECK(op->type == RC_TYPE_RAW || op->type == RC_TYPE_INT ||
                   op->type == RC_TYPE_FLOAT || op->type == RC_TYPE_JSON);
        FUZZ_CHECK(op->ttl_ms == RC_TTL_DEFAULT || op->ttl_ms == RC_TTL_NONE ||
                   (op->ttl_ms > 0 && op->ttl_ms % 1000 == 0 && op->ttl_ms / 1000 <= TTL_MAX_S));
        FUZZ_CHECK(op->cond == RC_IF_ANY || op->cond == RC_IF_ABSENT || op->cond == RC_IF_SEQ);
        FUZZ_CHECK(op->if_seq <= INT64_MAX);
        break;
    case RC_OP_INCR:
        FUZZ_CHECK(op->ttl_ms == RC_TTL_DEFAULT);
        FUZZ_CHECK(op->by.type == RC_TYPE_INT ||
                   (op->by.type == RC_TYPE_FLOAT && isfinite(op->by.f)));
        break;
    case RC_OP_DELETE:
    case RC_OP_GET:
        FUZZ_CHECK(op->val == NULL && op->vlen == 0);
        break;
    default:
        FUZZ_CHECK(!"unexpected op kind");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint64_t limits[] = {0, 3, 64, 1u << 20};
    static bool ready;
    static int keyspace_tag;
    rc_keyspace *ks = (rc_keyspace *)&keyspace_tag;
    if (!ready) {
        FUZZ_CHECK(sodium_init() >= 0);
        ready = true;
    }
    if (size == 0)
        return 0;
    uint64_t max_value = limits[data[0] & 3u];
    auth_log log = {.deny = (data[0] & 4u) != 0};
    char *body = (char *)fuzz_copy(data + 1, size - 1);
    batch b;
    batch_error err;
    memset(&err, 0, sizeof err);
    int rc = batch_parse(body, size - 1, max_value, ks, authorize, &log, &b, &err);
    FUZZ_CHECK(rc == 0 || rc == -1 || rc == -2);
    if (rc == 0) {
        uint64_t total = 0;
        FUZZ_CHECK(b.n <= KVD_BATCH_OPS_MAX && log.next == b.n && !log.refused);
        for (size_t i = 0; i < b.n; i++)
            check_op(&b.ops[i], max_value, ks);
        for (int m = 0; m < MOP_COUNT; m++)
            total += b.counts[m];
        FUZZ_CHECK(total == b.n);
    } else if (rc == -1) {
        /* 409: an if_match of "0" never matches (an absent key has no seq) */
        FUZZ_CHECK(err.status == 400 || err.status == 409 || err.status == 413 ||
                   err.status == 414 || err.status == 503);
        FUZZ_CHECK(err.code != NULL && err.code[0] != '\0' && err.msg[0] != '\0');
        FUZZ_CHECK(err.op >= -1 && (err.op < 0 || (size_t)err.op < b.n));
        FUZZ_CHECK(!log.refused);
        /* an op error comes after that op's authorisation, or before it */
        FUZZ_CHECK(err.op < 0 || log.next == (size_t)err.op || log.next == (size_t)err.op + 1);
    } else {
        FUZZ_CHECK(log.deny && log.refused && log.next >= 1 && log.next <= b.n);
    }
    batch_free(&b);
    free(body);
    return 0;
}
