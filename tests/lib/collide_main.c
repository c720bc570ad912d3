/*
 * collide_main.c — an embedder's program whose own functions carry the names
 * of libringcask's internals: install_test.sh generates collide_names.c with
 * one function for every global symbol of the in-tree archives that is not
 * exported (rci_*, fmt_*, rc_fail...) and for every internal's name before the
 * rci_ prefix (recover, log_append, seg_open, thread_index...). Linked against
 * the installed static and shared library, it must build, each of its
 * functions must be its own, and the engine (whose recovery, append path and
 * epochs use those names inside) must still work.
 */
#include <ringcask.h>
#include <stdio.h>
#include <string.h>

extern int (*const collide_fns[])(void);
extern const char *const collide_names[];
extern const int collide_n;

static int check(int rc, const char *what)
{
    if (rc != 0)
        fprintf(stderr, "collide: %s: %s (%s)\n", what, rc_strerror(rc), rc_last_error_message());
    return rc;
}

int main(void)
{
    for (int i = 0; i < collide_n; i++) {
        if (collide_fns[i]() != i + 1) {
            fprintf(stderr, "collide: %s() is not the program's own\n", collide_names[i]);
            return 1;
        }
    }
    rc_options o;
    rc_options_default(&o);
    o.sync = RC_SYNC_NONE;
    rc_db *db;
    for (int round = 0; round < 2; round++) { /* the second open recovers */
        if (check(rc_open("./collide-data", &o, &db), "rc_open"))
            return 1;
        if (round == 0 && check(rc_put(db, NULL, "key", 3, "value", 5, NULL), "rc_put"))
            return 1;
        rc_value v;
        if (check(rc_get(db, NULL, "key", 3, &v), "rc_get"))
            return 1;
        int same = v.len == 5 && memcmp(v.data, "value", 5) == 0;
        rc_value_free(&v);
        if (!same) {
            fprintf(stderr, "collide: read back the wrong value\n");
            return 1;
        }
        if (check(rc_close(db), "rc_close"))
            return 1;
    }
    printf("collide: %d internal names defined by the program; libringcask %s works\n", collide_n,
           rc_version());
    return 0;
}
