/*
 * fuzz_path.c — kvd's request-target handling: raw-path routing
 * (router_match), key decoding (route_key_decode: percent-decoding with the
 * 1024-byte key limit), query-value decoding (query_value_decode, the part
 * of http_query after MHD's lookup) and the ttl / limit number parsers.
 *
 * The input is one request target, "path[?query]", as MHD hands it over: a
 * C string, raw (kvd's unescape callback is a no-op). The harness splits the
 * query at '&' and '=' as MHD does. Besides "no crash, no overread" (every
 * piece is an exact-size heap copy), each result is compared against a
 * small reference implementation written here from the documented rules:
 *   - spans (bucket, rest) lie inside the path; a bucket span holds no '/';
 *   - "%HH" decodes to one byte, anything else after '%' is refused, and
 *     "%2F" stays inside the key as '/' (routing never splits on it);
 *   - a key longer than RC_KEY_MAX after decoding is refused as too long;
 *   - a decoded query value fits its buffer, NUL-terminated;
 *   - ttl and limit accept exactly [-]digits within their ranges.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "http.h"
#include "routes.h"
#include "valuetype.h"

static int ref_hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* The reference decoder: -1 on a malformed escape, else the decoded length. */
static long ref_decode(const char *in, size_t len, unsigned char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (in[i] != '%') {
            out[o++] = (unsigned char)in[i];
            continue;
        }
        if (len - i < 3 || ref_hex_value((unsigned char)in[i + 1]) < 0 ||
            ref_hex_value((unsigned char)in[i + 2]) < 0)
            return -1;
        out[o++] = (unsigned char)(ref_hex_value((unsigned char)in[i + 1]) * 16 +
                                   ref_hex_value((unsigned char)in[i + 2]));
        i += 2;
    }
    return (long)o;
}

/* [-]digits within [LO, HI]. Like parse_int64, a text of 64 bytes or more
 * is refused whatever its value (leading zeros included): kvd's query
 * buffers for numbers are 32 bytes, so that limit is never what decides. */
static bool ref_int(const char *s, size_t len, int64_t lo, int64_t hi, int64_t *out)
{
    size_t i = len > 0 && s[0] == '-' ? 1 : 0;
    if (i == len || len >= 64)
        return false;
    __int128 v = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
        if (v > ((__int128)1 << 64))
            return false;
    }
    if (s[0] == '-')
        v = -v;
    if (v < lo || v > hi)
        return false;
    *out = (int64_t)v;
    return true;
}

static bool inside(const char *p, size_t n, const char *base, size_t len)
{
    return p >= base && n <= len && (size_t)(p - base) <= len - n;
}

static void check_route(const char *path, size_t len)
{
    route_match m;
    router_match(path, &m);
    FUZZ_CHECK((unsigned)m.id < ROUTE_COUNT);
    FUZZ_CHECK(route_label(m.id) != NULL);
    if (len == 0 || path[0] != '/')
        FUZZ_CHECK(m.id == ROUTE_NONE);
    if (m.bucket != NULL) {
        FUZZ_CHECK(inside(m.bucket, m.bucket_len, path, len));
        FUZZ_CHECK(memchr(m.bucket, '/', m.bucket_len) == NULL);
    }
    if (m.rest != NULL)
        FUZZ_CHECK(inside(m.rest, m.rest_len, path, len) && m.rest + m.rest_len == path + len);
    if (m.id == ROUTE_SCRIPTS)
        FUZZ_CHECK(m.rest_len >= 8 && memcmp(m.rest, "scripts/", 8) == 0);
    if (m.id != ROUTE_KEY)
        return;
    FUZZ_CHECK(m.rest_len > 0);
    char key[RC_KEY_MAX + 1];
    size_t klen = 0;
    int rc = route_key_decode(m.rest, m.rest_len, key, &klen);
    FUZZ_CHECK(rc == 0 || rc == -1 || rc == -2);
    if (m.rest_len > 3u * RC_KEY_MAX) {
        FUZZ_CHECK(rc == -2);
        return;
    }
    unsigned char *want = malloc(m.rest_len + 1);
    FUZZ_CHECK(want != NULL);
    long wl = ref_decode(m.rest, m.rest_len, want);
    if (wl < 0)
        FUZZ_CHECK(rc == -1);
    else if ((size_t)wl > RC_KEY_MAX)
        FUZZ_CHECK(rc == -2);
    else {
        FUZZ_CHECK(rc == 0 && klen == (size_t)wl && memcmp(key, want, klen) == 0);
        FUZZ_CHECK(key[klen] == '\0');
        /* an encoded slash is part of the key, never a route separator */
        if (memmem(m.rest, m.rest_len, "%2F", 3) || memmem(m.rest, m.rest_len, "%2f", 3))
            FUZZ_CHECK(memchr(key, '/', klen) != NULL);
    }
    free(want);
}

/* One "name[=value]" of the query, both raw. */
static void check_param(const char *name, size_t nlen, const char *value, size_t vlen,
                        bool has_value)
{
    static const size_t caps[] = {8, 32, RC_KEY_MAX + 1};
    char *raw = has_value ? (char *)fuzz_copy((const uint8_t *)value, vlen) : NULL;
    unsigned char *want = malloc(vlen + 1);
    FUZZ_CHECK(want != NULL);
    long wl = ref_decode(raw ? raw : "", raw ? vlen : 0, want);
    for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++) {
        char *buf = malloc(caps[c]);
        size_t len = 0;
        FUZZ_CHECK(buf != NULL);
        int rc = query_value_decode(raw, raw ? vlen : 0, buf, caps[c], &len);
        bool fits = wl >= 0 && (size_t)wl < caps[c];
        FUZZ_CHECK(rc == (fits ? 0 : -1));
        if (rc == 0) {
            FUZZ_CHECK(len == (size_t)wl && memcmp(buf, want, len) == 0 && buf[len] == '\0');
            int64_t got = 0, ref = 0;
            bool named_ttl = nlen == 3 && memcmp(name, "ttl", 3) == 0;
            if (named_ttl || caps[c] == 32) {
                bool ok = ttl_from_text(buf, len, &got);
                bool ref_ok = ref_int(buf, len, 0, TTL_MAX_S, &ref);
                FUZZ_CHECK(ok == ref_ok);
                if (ok)
                    FUZZ_CHECK(ref == 0 ? got == RC_TTL_NONE : got == ref * 1000);
                ok = parse_int64(buf, len, &got);
                ref_ok = ref_int(buf, len, INT64_MIN, INT64_MAX, &ref);
                FUZZ_CHECK(ok == ref_ok && (!ok || got == ref));
            }
        }
        free(buf);
    }
    free(want);
    free(raw);
}

static void check_query(const char *q, size_t len)
{
    size_t at = 0;
    for (int params = 0; at <= len && params < 64; params++) {
        const char *amp = memchr(q + at, '&', len - at);
        size_t end = amp ? (size_t)(amp - q) : len;
        const char *eq = memchr(q + at, '=', end - at);
        if (eq != NULL)
            check_param(q + at, (size_t)(eq - (q + at)), eq + 1, end - (size_t)(eq - q) - 1, true);
        else
            check_param(q + at, end - at, NULL, 0, false);
        at = end + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* MHD delivers the target as a C string: it ends at the first NUL */
    size_t len = strnlen((const char *)data, size);
    const char *qm = memchr(data, '?', len);
    size_t plen = qm ? (size_t)(qm - (const char *)data) : len;
    char *path = malloc(plen + 1);
    FUZZ_CHECK(path != NULL);
    memcpy(path, data, plen);
    path[plen] = '\0';
    check_route(path, plen);
    free(path);
    if (qm != NULL) {
        size_t qlen = len - plen - 1;
        char *query = (char *)fuzz_copy((const uint8_t *)qm + 1, qlen);
        check_query(query, qlen);
        free(query);
    }
    return 0;
}
