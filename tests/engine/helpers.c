/* See helpers.h. */
#include "helpers.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *th_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char tmpl[512];
    snprintf(tmpl, sizeof(tmpl), "%s/rc-test-XXXXXX", base && *base ? base : "/tmp");
    char *d = mkdtemp(tmpl);
    cr_assert_not_null(d, "mkdtemp failed");
    return strdup(d);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void th_rmdir(char *dir)
{
    if (!dir)
        return;
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

rc_append_io th_append_io(void)
{
    const char *e = getenv("RC_TEST_APPEND_IO");
    if (e && strcmp(e, "mmap") == 0)
        return RC_APPEND_MMAP;
    if (e && strcmp(e, "uring") == 0)
        return RC_APPEND_URING;
    if (e && strcmp(e, "pwrite") == 0)
        return RC_APPEND_PWRITE;
    return RC_APPEND_AUTO;
}

void th_options(rc_options *o)
{
    rc_options_default(o);
    o->sync = RC_SYNC_NONE;
    o->segment_bytes = 64 * 1024;
    o->merge_check_ms = 0;
    o->append_io = th_append_io() == RC_APPEND_MMAP ? RC_APPEND_MMAP : RC_APPEND_AUTO;
}

void th_sync_always(rc_options *o)
{
    o->sync = RC_SYNC_ALWAYS;
    o->append_io = th_append_io();
}

const char *th_path(const char *dir, const char *name)
{
    static char buf[1024];
    snprintf(buf, sizeof(buf), "%s/%s", dir, name);
    return buf;
}

long long th_file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(a, b);
}

int th_list(const char *dir, const char *ext, char names[][64], int max)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *de;
    size_t el = strlen(ext);
    while ((de = readdir(d)) != NULL && n < max) {
        size_t l = strlen(de->d_name);
        if (l > el && strcmp(de->d_name + l - el, ext) == 0 && l < 64)
            strcpy(names[n++], de->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, 64, cmp_name);
    return n;
}

void th_put(rc_db *db, rc_keyspace *ks, const char *k, const char *v)
{
    int rc = rc_put(db, ks, k, strlen(k), v, strlen(v), NULL);
    cr_assert_eq(rc, 0, "put %s: %s (%s)", k, rc_strerror(rc), rc_last_error_message());
}

int th_has(rc_db *db, rc_keyspace *ks, const char *k, const char *v)
{
    rc_value val;
    int rc = rc_get(db, ks, k, strlen(k), &val);
    if (rc == RC_ENOTFOUND)
        return 0;
    cr_assert_eq(rc, 0, "get %s: %s (%s)", k, rc_strerror(rc), rc_last_error_message());
    cr_assert_eq(val.len, strlen(v), "value length of %s: %zu, expected %zu", k, val.len,
                 strlen(v));
    cr_assert(memcmp(val.data, v, val.len) == 0, "value of %s differs", k);
    rc_value_free(&val);
    return 1;
}

int th_mem_write(void *ctx, const void *buf, size_t len)
{
    th_membuf *m = ctx;
    if (m->len + len > m->cap) {
        size_t cap = m->cap ? m->cap : 65536;
        while (cap < m->len + len)
            cap *= 2;
        m->p = realloc(m->p, cap);
        cr_assert_not_null(m->p);
        m->cap = cap;
    }
    memcpy(m->p + m->len, buf, len);
    m->len += len;
    return 0;
}

long th_mem_read(void *ctx, void *buf, size_t len)
{
    th_membuf *m = ctx;
    size_t n = m->len - m->pos < len ? m->len - m->pos : len;
    if (m->max_read && n > m->max_read)
        n = m->max_read;
    memcpy(buf, m->p + m->pos, n);
    m->pos += n;
    return (long)n;
}

char *th_dump(rc_db *db)
{
    char *text = NULL;
    size_t tlen = 0;
    FILE *f = open_memstream(&text, &tlen);
    char **names;
    size_t n;
    cr_assert_eq(rc_keyspace_list(db, &names, &n), 0);
    for (size_t i = 0; i < n; i++) {
        rc_keyspace *ks;
        cr_assert_eq(rc_keyspace_open(db, names[i], 0, &ks), 0);
        fprintf(f, "[%s ttl=%lld]\n", names[i], (long long)rc_keyspace_default_ttl(ks));
        rc_list_opts lo = {.values = true};
        rc_list *l;
        cr_assert_eq(rc_list_keys(db, ks, &lo, &l), 0);
        for (size_t k = 0; k < l->count; k++) {
            rc_list_item *it = &l->items[k];
            fprintf(f, "%.*s=", (int)it->klen, (char *)it->key);
            for (size_t b = 0; b < it->value.len; b++)
                fprintf(f, "%02x", ((uint8_t *)it->value.data)[b]);
            fprintf(f, " t%d s%llu e%lld\n", (int)it->value.type, (unsigned long long)it->value.seq,
                    (long long)it->value.expires_at_ms);
        }
        rc_list_free(l);
    }
    rc_names_free(names, n);
    fclose(f);
    return text;
}
