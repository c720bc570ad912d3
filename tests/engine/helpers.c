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

void th_options(rc_options *o)
{
    rc_options_default(o);
    o->sync = RC_SYNC_NONE;
    o->segment_bytes = 64 * 1024;
    o->merge_check_ms = 0;
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
