/*
 * fuzz_token.c — access-token verification (server/auth_token.c) against a
 * fixed signing secret.
 *
 * A random text almost never carries a valid HMAC, so a harness that only
 * verified the input would test the base64 and length checks and little
 * else. The control byte therefore picks one of two modes:
 *   bit 0 clear: verify the rest of the input as token text. Whatever
 *     verifies must re-encode, from its claims, to exactly the same text
 *     (one token, one text: no malleable encodings).
 *   bit 0 set: mint a token from claims taken from the input (version,
 *     expiry, permissions, a bucket and a prefix of arbitrary bytes), check
 *     that it verifies to the same claims, then apply edits driven by the
 *     remaining bytes (overwrite a character, flip a bit, truncate, append,
 *     insert) and check that every text that differs from the original is
 *     refused. A verification failure that reaches the MAC compare is the
 *     interesting case: that is what a tamperer aims at.
 * Every text is handed over as an exact-size heap copy so ASan sees a read
 * past its end.
 */
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth_token.h"
#include "fuzz_util.h"

static unsigned char secret[KVD_SECRET_BYTES];

/* Reads the input front to back; past the end it yields zeros. */
typedef struct cursor {
    const uint8_t *p;
    size_t n;
} cursor;

static uint8_t take(cursor *c)
{
    if (c->n == 0)
        return 0;
    c->n--;
    return *c->p++;
}

static uint64_t take_le(cursor *c, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)take(c) << (8 * i);
    return v;
}

static token_status verify_copy(const char *text, size_t len, token_claims *out)
{
    char *copy = (char *)fuzz_copy((const uint8_t *)text, len);
    token_status st = token_verify(copy, len, secret, NULL, out);
    free(copy);
    return st;
}

static bool claims_equal(const token_claims *a, const token_claims *b)
{
    return a->signing_version == b->signing_version && a->expires_at == b->expires_at &&
           a->perms == b->perms && a->bucket_len == b->bucket_len &&
           memcmp(a->bucket, b->bucket, a->bucket_len) == 0 && a->prefix_len == b->prefix_len &&
           memcmp(a->prefix, b->prefix, a->prefix_len) == 0;
}

/* A verified token re-encodes to its own text. */
static void check_reencodes(const token_claims *c, const char *text, size_t len)
{
    char again[TOKEN_TEXT_MAX + 1];
    long n = token_encode(c, secret, again, sizeof again);
    FUZZ_CHECK(n >= 0 && (size_t)n == len && memcmp(again, text, len) == 0);
}

static void verify_text(const uint8_t *data, size_t size)
{
    token_claims c;
    memset(&c, 0, sizeof c);
    token_status st = verify_copy((const char *)data, size, &c);
    FUZZ_CHECK(st == TOKEN_OK || st == TOKEN_MALFORMED || st == TOKEN_BAD_MAC);
    if (st == TOKEN_OK)
        check_reencodes(&c, (const char *)data, size);
}

static void mint_and_mutate(cursor *in)
{
    token_claims c, d;
    char text[TOKEN_TEXT_MAX + 1], edit[TOKEN_TEXT_MAX + 2];
    memset(&c, 0, sizeof c);
    c.signing_version = (uint32_t)take_le(in, 4);
    c.expires_at = (int64_t)take_le(in, 8);
    c.perms = take(in);
    c.bucket_len = 1 + take(in) % KVD_BUCKET_NAME_MAX;
    for (size_t i = 0; i < c.bucket_len; i++)
        c.bucket[i] = (char)take(in);
    c.prefix_len = take_le(in, 2) % (TOKEN_PREFIX_MAX + 1);
    /* long prefixes mostly come from the generator, not the input */
    for (size_t i = 0; i < c.prefix_len; i++)
        c.prefix[i] = in->n ? take(in) : (uint8_t)(i * 131u);
    long n = token_encode(&c, secret, text, sizeof text);
    FUZZ_CHECK(n > 0);
    size_t len = (size_t)n;
    memset(&d, 0, sizeof d);
    FUZZ_CHECK(verify_copy(text, len, &d) == TOKEN_OK);
    FUZZ_CHECK(claims_equal(&c, &d));
    check_reencodes(&d, text, len);

    /* up to 16 independent edits of the valid token */
    for (int round = 0; round < 16 && in->n >= 3; round++) {
        size_t at = (size_t)take_le(in, 2) % len, elen = len;
        uint8_t how = take(in), arg = take(in);
        memcpy(edit, text, len);
        switch (how % 5) {
        case 0: /* overwrite a character */
            edit[at] = (char)arg;
            break;
        case 1: /* flip one bit of the character */
            edit[at] ^= (char)(1u << (arg % 8));
            break;
        case 2: /* truncate */
            elen = at;
            break;
        case 3: /* append one character */
            edit[len] = (char)arg;
            elen = len + 1;
            break;
        default: /* insert one character */
            memmove(edit + at + 1, edit + at, len - at);
            edit[at] = (char)arg;
            elen = len + 1;
            break;
        }
        if (elen == len && memcmp(edit, text, len) == 0)
            continue; /* the edit changed nothing */
        token_status st = verify_copy(edit, elen, &d);
        FUZZ_CHECK(st != TOKEN_OK);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        FUZZ_CHECK(sodium_init() >= 0);
        memset(secret, 0x5a, sizeof secret);
        ready = true;
    }
    if (size == 0)
        return 0;
    cursor in = {data + 1, size - 1};
    if (data[0] & 1u)
        mint_and_mutate(&in);
    else
        verify_text(data + 1, size - 1);
    return 0;
}
