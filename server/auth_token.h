/*
 * auth_token.h — access tokens: a versioned binary payload signed with
 * HMAC-SHA256 under a per-bucket signing key, base64url encoded.
 */
#ifndef KVD_AUTH_TOKEN_H
#define KVD_AUTH_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "kvd.h"

#define TOKEN_VERSION 1u
#define TOKEN_PREFIX_MAX RC_KEY_MAX
#define TOKEN_MAC_BYTES 32u
#define TOKEN_KEY_BYTES 32u
#define TOKEN_INCARNATION_BYTES 16u
/* version 1 + signing version 4 + expiry 8 + perms 1 + bucket len 1 + bucket
 * + prefix len 2 + prefix + mac */
#define TOKEN_RAW_MAX (1u + 4u + 8u + 1u + 1u + KVD_BUCKET_NAME_MAX + 2u + TOKEN_PREFIX_MAX + 32u)
#define TOKEN_TEXT_MAX (TOKEN_RAW_MAX / 3u * 4u + 8u)

typedef struct token_claims {
    /* Not encoded: the bucket incarnation the signing key is bound to
     * (policy.incarnation; NULL for a bucket made before incarnations). */
    const unsigned char *incarnation;
    uint32_t signing_version;
    int64_t expires_at; /* unix seconds */
    unsigned perms;
    char bucket[KVD_BUCKET_NAME_MAX + 1];
    size_t bucket_len;
    unsigned char prefix[TOKEN_PREFIX_MAX];
    size_t prefix_len;
} token_claims;

typedef enum token_status {
    TOKEN_OK = 0,
    TOKEN_MALFORMED = -1, /* not base64url, wrong version, bad lengths */
    TOKEN_BAD_MAC = -2,   /* tampered, or signed under another key */
} token_status;

/* The signing key of BUCKET's incarnation INCARNATION (TOKEN_INCARNATION_BYTES
 * random bytes made when the bucket was created) at VERSION:
 * HMAC-SHA256(secret, "kvd-token-key" || bucket_len || bucket || version_le32
 * || incarnation). INCARNATION NULL: a bucket from before incarnations (the
 * derivation without it). A deleted and re-created bucket has a new
 * incarnation, so no token of the old one verifies on the new one. */
void token_signing_key(const unsigned char secret[KVD_SECRET_BYTES], const char *bucket,
                       size_t bucket_len, const unsigned char *incarnation, uint32_t version,
                       unsigned char out[TOKEN_KEY_BYTES]);

/* Encode and sign C into OUT (NUL-terminated). Returns the text length, or -1
 * when a field is out of range or CAP is too small. */
long token_encode(const token_claims *c, const unsigned char secret[KVD_SECRET_BYTES], char *out,
                  size_t cap);

/* Decode TEXT and verify its MAC (constant time) under the key derived from
 * SECRET, INCARNATION (the incarnation of the bucket the request names; NULL
 * for a bucket from before incarnations) and the claimed bucket and version.
 * On TOKEN_OK *C holds the claims (C->incarnation = INCARNATION); the caller
 * still checks bucket, signing version and expiry. */
token_status token_verify(const char *text, size_t len,
                          const unsigned char secret[KVD_SECRET_BYTES],
                          const unsigned char *incarnation, token_claims *c);

#endif
