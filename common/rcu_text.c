/*
 * rcu_text.c — UTF-8, bucket names, hex and base64 (see rcu_text.h).
 */
#include "rcu_text.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

bool rcu_utf8_valid(const void *data, size_t len)
{
    const unsigned char *p = data;
    size_t i = 0;
    while (i < len) {
        unsigned char c = p[i];
        size_t n;
        uint32_t cp;
        /* eight ASCII bytes at a time: no byte has its high bit set */
        if (c < 0x80 && len - i >= 8) {
            uint64_t w;
            memcpy(&w, p + i, sizeof w);
            if ((w & UINT64_C(0x8080808080808080)) == 0) {
                i += 8;
                continue;
            }
        }
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + n >= len)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

bool rcu_bucket_name_valid(const char *name, size_t len)
{
    if (len == 0 || len > RCU_BUCKET_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

bool rcu_bucket_name_reserved(const char *name, size_t len)
{
    static const char *const reserved[] = {"metrics", "healthz", "admin"};
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (strlen(reserved[i]) == len && memcmp(name, reserved[i], len) == 0)
            return true;
    return false;
}

const char rcu_hex_upper[17] = "0123456789ABCDEF";

int rcu_hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

char *rcu_base64_encode(const void *data, size_t len, int variant)
{
    size_t cap = sodium_base64_ENCODED_LEN(len, variant);
    char *out = malloc(cap);
    if (out == NULL)
        return NULL;
    sodium_bin2base64(out, cap, data, len, variant);
    return out;
}

int rcu_base64_decode(const char *s, size_t len, unsigned char *out, size_t cap, size_t *out_len)
{
    const char *end = NULL;
    bool padded = len > 0 && s[len - 1] == '=';
    int variant =
        padded ? sodium_base64_VARIANT_ORIGINAL : sodium_base64_VARIANT_ORIGINAL_NO_PADDING;
    if (sodium_base642bin(out, cap, s, len, NULL, out_len, &end, variant) != 0 || end != s + len)
        return -1;
    return 0;
}
