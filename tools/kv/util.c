/*
 * util.c — small helpers of the kv client: a growable buffer, UTF-8
 * text check and base64 over rcu_text (values that are not UTF-8 travel as
 * "value_base64" in batch JSON), whole-file reads for k=@file and k=-, and the parsers for
 * durations and counts.
 *
 * Values are read whole into memory: kvd caps a value at --max-value
 * (16 MiB by default), so streaming would buy nothing but complexity.
 */
#include "kv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

static int buf_reserve(kv_buf *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len - 1)
        return -1;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *data = realloc(b->data, cap);
    if (!data)
        return -1;
    b->data = data;
    b->cap = cap;
    return 0;
}

int kv_buf_append(kv_buf *b, const void *data, size_t len)
{
    if (buf_reserve(b, len) != 0)
        return -1;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int kv_buf_printf(kv_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || buf_reserve(b, (size_t)n) != 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void kv_buf_reset(kv_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void kv_buf_free(kv_buf *b)
{
    free(b->data);
    *b = (kv_buf){0};
}

bool kv_is_text(const void *s, size_t len)
{
    return rcu_utf8_valid(s, len) && (len == 0 || memchr(s, 0, len) == NULL);
}

int kv_base64_encode(kv_buf *out, const void *data, size_t len)
{
    char *text = rcu_base64_encode(data, len, sodium_base64_VARIANT_ORIGINAL);
    int rc = text ? kv_buf_append(out, text, strlen(text)) : -1;
    free(text);
    return rc;
}

int kv_base64_decode(kv_buf *out, const char *s, size_t len)
{
    size_t n = 0;
    if (buf_reserve(out, len / 4 * 3 + 3) != 0 ||
        rcu_base64_decode(s, len, (unsigned char *)out->data + out->len, len / 4 * 3 + 3, &n) != 0)
        return -1;
    out->len += n;
    out->data[out->len] = '\0';
    return 0;
}

int kv_read_file(kv_ctx *ctx, const char *path, kv_buf *out)
{
    bool is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f)
        return kv_fail(ctx, KV_EXIT_LOCAL, "cannot open '%s': %s", path, strerror(errno));
    char chunk[65536];
    size_t n;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (kv_buf_append(out, chunk, n) != 0) {
            rc = kv_fail(ctx, KV_EXIT_LOCAL, "out of memory reading '%s'", path);
            goto done;
        }
    }
    if (ferror(f))
        rc = kv_fail(ctx, KV_EXIT_LOCAL, "cannot read '%s': %s", is_stdin ? "stdin" : path,
                     strerror(errno));
    if (!out->data)
        kv_buf_append(out, "", 0); /* an empty value is still a value */
done:
    if (!is_stdin)
        fclose(f);
    return rc;
}

int64_t kv_parse_duration(const char *s)
{
    char *end;
    errno = 0;
    if (!s || *s < '0' || *s > '9')
        return -1;
    long long v = strtoll(s, &end, 10);
    if (errno || v < 0)
        return -1;
    int64_t unit = 1;
    if (*end) {
        if (end[1])
            return -1;
        switch (*end) {
        case 's':
            unit = 1;
            break;
        case 'm':
            unit = 60;
            break;
        case 'h':
            unit = 3600;
            break;
        case 'd':
            unit = 86400;
            break;
        default:
            return -1;
        }
    }
    if (v > INT64_MAX / unit)
        return -1;
    return v * unit;
}

int64_t kv_parse_count(const char *s)
{
    char *end;
    errno = 0;
    if (!s || *s < '0' || *s > '9')
        return -1;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < 0)
        return -1;
    return v;
}

const char *kv_key_label(const char *key, char buf[KV_LABEL_MAX])
{
    size_t len = strlen(key), keep = len;
    if (len > KV_LABEL_MAX - 20) {
        keep = KV_LABEL_MAX - 20;
        while (keep > 0 && ((unsigned char)key[keep] & 0xC0) == 0x80)
            keep--; /* do not cut a UTF-8 sequence */
    }
    for (size_t i = 0; i < keep; i++)
        buf[i] = (unsigned char)key[i] < 0x20 || key[i] == 0x7f ? '?' : key[i];
    if (keep < len)
        snprintf(buf + keep, KV_LABEL_MAX - keep, "...(%zu bytes)", len);
    else
        buf[keep] = '\0';
    return buf;
}

bool kv_stdout_is_tty(void)
{
    return isatty(STDOUT_FILENO) == 1;
}

int kv_write_stdout(const void *data, size_t len)
{
    return len == 0 || fwrite(data, 1, len, stdout) == len ? 0 : -1;
}

int kv_finish_stdout(kv_ctx *ctx)
{
    if (fflush(stdout) != 0 || ferror(stdout))
        return kv_fail(ctx, KV_EXIT_LOCAL, "cannot write to stdout: %s", strerror(errno));
    return 0;
}

int kv_print_body_json(kv_ctx *ctx)
{
    size_t len = ctx->body.len;
    if (kv_write_stdout(ctx->body.data, len) != 0 ||
        ((len == 0 || ctx->body.data[len - 1] != '\n') && kv_write_stdout("\n", 1) != 0))
        return kv_fail(ctx, KV_EXIT_LOCAL, "cannot write to stdout: %s", strerror(errno));
    return kv_finish_stdout(ctx);
}
