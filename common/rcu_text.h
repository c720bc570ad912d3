/*
 * rcu_text.h — text helpers the server and the tools share: UTF-8
 * validation, the bucket-name rules, hex digits and base64 (libsodium's).
 *
 * Internal library (prefix rcu_), not part of libringcask's public API.
 */
#ifndef RCU_TEXT_H
#define RCU_TEXT_H

#include <stdbool.h>
#include <stddef.h>

#define RCU_BUCKET_NAME_MAX 64u

/* RFC 3629 UTF-8: no overlongs, no surrogates, nothing above U+10FFFF.
 * NUL bytes are valid (a JSON string may hold "\u0000"). */
bool rcu_utf8_valid(const void *s, size_t len);

/* A bucket name: 1..RCU_BUCKET_NAME_MAX of A-Z a-z 0-9 _ - */
bool rcu_bucket_name_valid(const char *name, size_t len);
/* Names the server's own routes take (metrics, healthz, admin). */
bool rcu_bucket_name_reserved(const char *name, size_t len);

/* The value of hex digit C (either case), or -1. */
int rcu_hex_value(char c);
/* "0123456789ABCDEF" */
extern const char rcu_hex_upper[17];

/* DATA in base64 (VARIANT: a sodium_base64_VARIANT_*), NUL-terminated and
 * malloc'ed (the caller frees); NULL when out of memory. */
char *rcu_base64_encode(const void *data, size_t len, int variant);
/* Decode standard base64 (padding optional) S[0..LEN) into OUT (CAP bytes;
 * LEN / 4 * 3 + 3 always suffices); *OUT_LEN gets the length. 0, or -1 when
 * S is not base64 or does not fit. */
int rcu_base64_decode(const char *s, size_t len, unsigned char *out, size_t cap, size_t *out_len);

#endif /* RCU_TEXT_H */
