/*
 * list.c — keys of one keyspace in byte order.
 *
 * The keydir is a hash, so ordered listing collects the matching keys of the
 * keyspace shard by shard (each under its read lock, briefly), then orders
 * them: with a limit L out of M matches, a quickselect finds the L first in
 * O(M) and only those are sorted, O(L log L); without a limit it is a full
 * sort, O(M log M). Memory is the matching keys only. Values, when asked
 * for, are read afterwards by key, so each is the newest at that moment.
 */
#include "db.h"

#include <stdlib.h>
#include <string.h>

typedef struct collect {
    const rc_list_opts *o;
    int64_t now;
    rc_list_item *items;
    size_t n, cap;
    int err;
} collect;

static int key_cmp(const void *a, size_t al, const void *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    if (c)
        return c;
    return al < bl ? -1 : al > bl;
}

static int item_cmp(const void *x, const void *y)
{
    const rc_list_item *a = x, *b = y;
    return key_cmp(a->key, a->klen, b->key, b->klen);
}

static int item_cmp_rev(const void *x, const void *y)
{
    return -item_cmp(x, y);
}

static int visit(void *ctx, const uint8_t *key, size_t klen, const kd_loc *loc)
{
    collect *c = ctx;
    const rc_list_opts *o = c->o;
    if (loc->expires_at_ms && c->now >= loc->expires_at_ms)
        return 0;
    if (o->prefix_len && (klen < o->prefix_len || memcmp(key, o->prefix, o->prefix_len) != 0))
        return 0;
    if (o->start && key_cmp(key, klen, o->start, o->start_len) < 0)
        return 0;
    if (o->end && key_cmp(key, klen, o->end, o->end_len) >= 0)
        return 0;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        rc_list_item *n = realloc(c->items, cap * sizeof(*n));
        if (!n) {
            c->err = RC_ENOMEM;
            return 1;
        }
        c->items = n;
        c->cap = cap;
    }
    rc_list_item *it = &c->items[c->n];
    memset(it, 0, sizeof(*it));
    it->key = malloc(klen + 1);
    if (!it->key) {
        c->err = RC_ENOMEM;
        return 1;
    }
    memcpy(it->key, key, klen);
    ((char *)it->key)[klen] = 0;
    it->klen = klen;
    it->value.seq = loc->seq;
    it->value.expires_at_ms = loc->expires_at_ms;
    c->n++;
    return 0;
}

/* Rearrange V so that its first K items are the K smallest under CMP. */
static void select_first(rc_list_item *v, size_t n, size_t k,
                         int (*cmp)(const void *, const void *))
{
    size_t lo = 0, hi = n;
    while (hi - lo > 1) {
        rc_list_item pivot = v[lo + (hi - lo) / 2];
        size_t i = lo, j = hi - 1;
        while (i <= j) {
            while (cmp(&v[i], &pivot) < 0)
                i++;
            while (cmp(&v[j], &pivot) > 0)
                j--;
            if (i <= j) {
                rc_list_item t = v[i];
                v[i] = v[j];
                v[j] = t;
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (k <= j + 1 && j + 1 > lo)
            hi = j + 1;
        else if (k >= i)
            lo = i;
        else
            return;
    }
}

void rc_list_free(rc_list *list)
{
    if (!list)
        return;
    for (size_t i = 0; i < list->count; i++) {
        free(list->items[i].key);
        rc_value_free(&list->items[i].value);
    }
    free(list->items);
    free(list);
}

int rc_list_keys(rc_db *db, rc_keyspace *ks, const rc_list_opts *opts, rc_list **out)
{
    rc_list_opts none = {0};
    if (!db || !out)
        return rc_fail(RC_EINVAL, "NULL database or output");
    if (!opts)
        opts = &none;
    epoch_slot *ep = epoch_enter(db);
    rc_keyspace *k = ks_resolve(db, ks);
    if (!k) {
        epoch_exit(ep);
        return rc_fail(RC_ENOKEYSPACE, "the keyspace was dropped");
    }
    collect c = {.o = opts, .now = db_now_ms(db)};
    for (unsigned s = 0; s < KEYDIR_SHARDS && !c.err; s++) {
        keydir_rdlock(k->kd, s);
        keydir_shard_foreach(k->kd, s, visit, &c);
        keydir_unlock(k->kd, s);
    }
    rc_list *l = calloc(1, sizeof(*l));
    if (!l)
        c.err = RC_ENOMEM;
    int (*cmp)(const void *, const void *) = opts->reverse ? item_cmp_rev : item_cmp;
    size_t keep = c.n;
    if (!c.err && opts->limit && opts->limit < c.n) {
        select_first(c.items, c.n, opts->limit, cmp);
        keep = opts->limit;
        for (size_t i = keep; i < c.n; i++)
            free(c.items[i].key);
    }
    if (!c.err && keep > 1) /* qsort's base may not be NULL, even for 0 items */
        qsort(c.items, keep, sizeof(*c.items), cmp);
    size_t w = 0;
    int err = c.err;
    for (size_t i = 0; i < keep; i++) {
        rc_list_item *it = &c.items[i];
        if (!err && opts->values) {
            int e = read_key(db, k, keydir_hash(it->key, it->klen), it->key, it->klen, &it->value,
                             true);
            if (e == RC_ENOTFOUND) { /* deleted since: leave it out */
                free(it->key);
                continue;
            }
            err = e;
        }
        if (err) {
            free(it->key);
            rc_value_free(&it->value);
            continue;
        }
        c.items[w++] = *it;
    }
    epoch_exit(ep);
    if (err) {
        for (size_t i = 0; i < w; i++) {
            free(c.items[i].key);
            rc_value_free(&c.items[i].value);
        }
        free(c.items);
        free(l);
        return err;
    }
    l->items = c.items;
    l->count = w;
    l->more = c.n > keep;
    *out = l;
    return 0;
}
