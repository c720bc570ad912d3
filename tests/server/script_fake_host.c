/*
 * script_fake_host.c — see script_fake_host.h. Linear search and an
 * insertion-sorted array: tests hold a few dozen keys.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "script_fake_host.h"

void fake_init(fake_host *f)
{
    memset(f, 0, sizeof *f);
}

void fake_free(fake_host *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->e[i].key);
        free(f->e[i].val);
    }
    f->n = 0;
}

static int key_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    return c ? c : (an > bn) - (an < bn);
}

static size_t lower_bound(const fake_host *f, const void *key, size_t klen)
{
    size_t i = 0;
    while (i < f->n && key_cmp(f->e[i].key, f->e[i].klen, key, klen) < 0)
        i++;
    return i;
}

static void put_bytes(fake_host *f, const void *key, size_t klen, const void *val, size_t vlen,
                      rc_type type, int64_t ttl)
{
    size_t i = lower_bound(f, key, klen);
    if (i < f->n && key_cmp(f->e[i].key, f->e[i].klen, key, klen) == 0) {
        free(f->e[i].val);
    } else {
        memmove(&f->e[i + 1], &f->e[i], (f->n - i) * sizeof f->e[0]);
        f->n++;
        f->e[i].key = malloc(klen + 1);
        memcpy(f->e[i].key, key, klen);
        f->e[i].key[klen] = 0;
        f->e[i].klen = klen;
    }
    f->e[i].val = malloc(vlen + 1);
    memcpy(f->e[i].val, val, vlen);
    f->e[i].val[vlen] = 0;
    f->e[i].vlen = vlen;
    f->e[i].type = type;
    f->e[i].ttl_ms = ttl;
    f->e[i].seq = ++f->last_seq;
}

static void del_bytes(fake_host *f, const void *key, size_t klen)
{
    size_t i = lower_bound(f, key, klen);
    if (i < f->n && key_cmp(f->e[i].key, f->e[i].klen, key, klen) == 0) {
        free(f->e[i].key);
        free(f->e[i].val);
        memmove(&f->e[i], &f->e[i + 1], (f->n - i - 1) * sizeof f->e[0]);
        f->n--;
    }
}

void fake_put(fake_host *f, const char *key, const char *val, rc_type type)
{
    put_bytes(f, key, strlen(key), val, strlen(val), type, 0);
}

const fake_entry *fake_find(const fake_host *f, const char *key)
{
    size_t klen = strlen(key);
    size_t i = lower_bound(f, key, klen);
    if (i < f->n && key_cmp(f->e[i].key, f->e[i].klen, key, klen) == 0)
        return &f->e[i];
    return NULL;
}

static int fake_get(void *ctx, const void *key, size_t klen, rc_value *out)
{
    fake_host *f = ctx;
    f->gets++;
    if (f->get_error)
        return f->get_error;
    size_t i = lower_bound(f, key, klen);
    if (i >= f->n || key_cmp(f->e[i].key, f->e[i].klen, key, klen) != 0)
        return RC_ENOTFOUND;
    out->data = malloc(f->e[i].vlen + 1);
    memcpy(out->data, f->e[i].val, f->e[i].vlen);
    ((char *)out->data)[f->e[i].vlen] = 0; /* commit's incr parses it */
    out->len = f->e[i].vlen;
    out->type = f->e[i].type;
    out->seq = f->e[i].seq;
    return 0;
}

static void fake_release(void *ctx, rc_value *v)
{
    free(v->data);
    v->data = NULL;
}

static int fake_list(void *ctx, const void *prefix, size_t plen, size_t limit,
                     int (*emit)(void *, const void *, size_t), void *ectx)
{
    fake_host *f = ctx;
    f->lists++;
    size_t sent = 0;
    for (size_t i = lower_bound(f, prefix, plen); i < f->n && sent < limit; i++) {
        if (f->e[i].klen < plen || memcmp(f->e[i].key, prefix, plen) != 0)
            break;
        int rc = emit(ectx, f->e[i].key, f->e[i].klen);
        if (rc)
            return rc;
        sent++;
    }
    return 0;
}

static int fake_commit(void *ctx, rc_op *ops, size_t n, size_t *failed)
{
    fake_host *f = ctx;
    f->commits++;
    f->last_nops = n;
    for (size_t i = 0; i < n && i < 64; i++)
        f->last_ops[i] = ops[i];
    if (f->commit_error) {
        *failed = 0;
        return f->commit_error;
    }
    if (f->bump_key && f->bumps > 0) {
        f->bumps--;
        const fake_entry *b = fake_find(f, f->bump_key);
        char text[32];
        snprintf(text, sizeof text, "%lld", (b ? strtoll(b->val, NULL, 10) : 0) + 100);
        put_bytes(f, f->bump_key, strlen(f->bump_key), text, strlen(text), RC_TYPE_INT, 0);
    }
    for (size_t i = 0; i < n; i++) { /* conditions first: all or nothing */
        if (ops[i].cond != RC_IF_SEQ)
            continue;
        size_t j = lower_bound(f, ops[i].key, ops[i].klen);
        bool present = j < f->n && key_cmp(f->e[j].key, f->e[j].klen, ops[i].key, ops[i].klen) == 0;
        if ((present ? f->e[j].seq : 0) != ops[i].if_seq) {
            *failed = i;
            return RC_ECONFLICT;
        }
    }
    for (size_t i = 0; i < n; i++) {
        rc_op *op = &ops[i];
        if (op->kind == RC_OP_PUT) {
            put_bytes(f, op->key, op->klen, op->val, op->vlen, op->type, op->ttl_ms);
        } else if (op->kind == RC_OP_DELETE) {
            del_bytes(f, op->key, op->klen);
        } else if (op->kind == RC_OP_INCR) {
            rc_value cur = {0};
            char text[64];
            if (fake_get(f, op->key, op->klen, &cur) == 0) {
                if (cur.type == RC_TYPE_INT && op->by.type == RC_TYPE_INT)
                    snprintf(text, sizeof text, "%lld",
                             strtoll(cur.data, NULL, 10) + (long long)op->by.i);
                else
                    snprintf(text, sizeof text, "%.17g",
                             strtod(cur.data, NULL) +
                                 (op->by.type == RC_TYPE_INT ? (double)op->by.i : op->by.f));
                rc_type t = cur.type == RC_TYPE_INT && op->by.type == RC_TYPE_INT ? RC_TYPE_INT
                                                                                  : RC_TYPE_FLOAT;
                free(cur.data);
                put_bytes(f, op->key, op->klen, text, strlen(text), t, 0);
            } else {
                if (op->by.type == RC_TYPE_INT)
                    snprintf(text, sizeof text, "%lld", (long long)op->by.i);
                else
                    snprintf(text, sizeof text, "%.17g", op->by.f);
                put_bytes(f, op->key, op->klen, text, strlen(text), op->by.type, 0);
            }
        }
    }
    return 0;
}

static int64_t fake_now(void *ctx)
{
    return ((fake_host *)ctx)->now_ms;
}

script_host fake_vtable(fake_host *f)
{
    script_host h = {
        .ctx = f,
        .get = fake_get,
        .release = fake_release,
        .list = fake_list,
        .commit = fake_commit,
        .now_ms = f->now_ms ? fake_now : NULL,
    };
    return h;
}

int fake_run_scoped(script_engine *eng, fake_host *f, const char *src, const char *prefix,
                    unsigned perms, script_result *res)
{
    script_host h = fake_vtable(f);
    script_scope scope = {prefix, prefix ? strlen(prefix) : 0, perms};
    script_request req = {.method = "GET"};
    return script_run(eng, src, strlen(src), "test", &h, &scope, &req, res);
}

int fake_run(script_engine *eng, fake_host *f, const char *src, script_result *res)
{
    return fake_run_scoped(eng, f, src, NULL, SCRIPT_PERM_ALL, res);
}
