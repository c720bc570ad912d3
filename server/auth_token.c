/*
 * auth_token.c — access tokens.
 *
 * A token is base64url (no padding) of
 *   version u8 (=1) | signing_version u32le | expires_at i64le (unix s) |
 *   perms u8 | bucket_len u8 | bucket | prefix_len u16le | prefix |
 *   HMAC-SHA256(signing key, everything before)
 * The signing key is derived, never stored: HMAC-SHA256(server secret,
 * "kvd-token-key" | bucket_len | bucket | signing_version | incarnation),
 * the incarnation being 16 random bytes made when the bucket was created (a
 * bucket deleted and created again under its name gets new ones, so its old
 * tokens die with it, also in a restored backup). The server secret
 * is one random value in the system keyspace, so a backup restores every
 * bucket's tokens along with the data, and rotating a bucket's signing key is
 * just incrementing its version (every older token stops verifying).
 *
 * Binary, not JWT: fixed fields, no algorithm negotiation, nothing to parse
 * but lengths — each checked against its limit before use. The MAC is
 * checked in constant time before any claim is trusted.
 */
#include "auth_token.h"

#include <string.h>

#include <sodium.h>

static const char key_label[] = "kvd-token-key";

static void put_le(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

void token_signing_key(const unsigned char secret[KVD_SECRET_BYTES], const char *bucket,
                       size_t bucket_len, const unsigned char *incarnation, uint32_t version,
                       unsigned char out[TOKEN_KEY_BYTES])
{
    crypto_auth_hmacsha256_state st;
    unsigned char blen = (unsigned char)bucket_len, ver[4];
    put_le(ver, version, 4);
    crypto_auth_hmacsha256_init(&st, secret, KVD_SECRET_BYTES);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)key_label, sizeof key_label - 1);
    crypto_auth_hmacsha256_update(&st, &blen, 1);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)bucket, bucket_len);
    crypto_auth_hmacsha256_update(&st, ver, 4);
    if (incarnation != NULL)
        crypto_auth_hmacsha256_update(&st, incarnation, TOKEN_INCARNATION_BYTES);
    crypto_auth_hmacsha256_final(&st, out);
    sodium_memzero(&st, sizeof st);
}

long token_encode(const token_claims *c, const unsigned char secret[KVD_SECRET_BYTES], char *out,
                  size_t cap)
{
    unsigned char raw[TOKEN_RAW_MAX], key[TOKEN_KEY_BYTES];
    size_t n = 0;
    if (c->bucket_len == 0 || c->bucket_len > KVD_BUCKET_NAME_MAX ||
        c->prefix_len > TOKEN_PREFIX_MAX || c->perms > 0xff)
        return -1;
    raw[n++] = TOKEN_VERSION;
    put_le(raw + n, c->signing_version, 4);
    n += 4;
    put_le(raw + n, (uint64_t)c->expires_at, 8);
    n += 8;
    raw[n++] = (unsigned char)c->perms;
    raw[n++] = (unsigned char)c->bucket_len;
    memcpy(raw + n, c->bucket, c->bucket_len);
    n += c->bucket_len;
    put_le(raw + n, c->prefix_len, 2);
    n += 2;
    memcpy(raw + n, c->prefix, c->prefix_len);
    n += c->prefix_len;
    token_signing_key(secret, c->bucket, c->bucket_len, c->incarnation, c->signing_version, key);
    crypto_auth_hmacsha256(raw + n, raw, n, key);
    n += TOKEN_MAC_BYTES;
    sodium_memzero(key, sizeof key);
    size_t need = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    if (need > cap)
        return -1;
    sodium_bin2base64(out, cap, raw, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return (long)strlen(out);
}

token_status token_verify(const char *text, size_t len,
                          const unsigned char secret[KVD_SECRET_BYTES],
                          const unsigned char *incarnation, token_claims *c)
{
    unsigned char raw[TOKEN_RAW_MAX], key[TOKEN_KEY_BYTES];
    size_t n = 0;
    if (len == 0 || len > TOKEN_TEXT_MAX)
        return TOKEN_MALFORMED;
    if (sodium_base642bin(raw, sizeof raw, text, len, NULL, &n, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
        return TOKEN_MALFORMED;
    /* one token, one text: base64url leaves unused low bits in the last
     * character, which the decoder ignores; refuse any non-canonical text */
    char canon[TOKEN_TEXT_MAX + 1];
    if (sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING) - 1 != len)
        return TOKEN_MALFORMED;
    sodium_bin2base64(canon, sizeof canon, raw, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    if (memcmp(canon, text, len) != 0)
        return TOKEN_MALFORMED;
    /* fixed part: 1 + 4 + 8 + 1 + 1, then bucket, 2, prefix, mac */
    if (n < 15u + 2u + TOKEN_MAC_BYTES || raw[0] != TOKEN_VERSION)
        return TOKEN_MALFORMED;
    size_t body = n - TOKEN_MAC_BYTES, p = 13;
    unsigned perms = raw[p++];
    size_t blen = raw[p++];
    if (blen == 0 || blen > KVD_BUCKET_NAME_MAX || p + blen + 2 > body)
        return TOKEN_MALFORMED;
    size_t bstart = p;
    p += blen;
    size_t plen = (size_t)get_le(raw + p, 2);
    p += 2;
    if (plen > TOKEN_PREFIX_MAX || p + plen != body)
        return TOKEN_MALFORMED;
    uint32_t sigver = (uint32_t)get_le(raw + 1, 4);
    token_signing_key(secret, (const char *)raw + bstart, blen, incarnation, sigver, key);
    int bad = crypto_auth_hmacsha256_verify(raw + body, raw, body, key);
    sodium_memzero(key, sizeof key);
    if (bad != 0)
        return TOKEN_BAD_MAC;
    c->incarnation = incarnation;
    c->signing_version = sigver;
    c->expires_at = (int64_t)get_le(raw + 5, 8);
    c->perms = perms;
    memcpy(c->bucket, raw + bstart, blen);
    c->bucket[blen] = '\0';
    c->bucket_len = blen;
    memcpy(c->prefix, raw + p, plen);
    c->prefix_len = plen;
    return TOKEN_OK;
}
