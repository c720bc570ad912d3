/*
 * s3_cli.c — kvdump --to / --list and kvload --from.
 */
#include "s3_cli.h"
#include "stream_io.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int open_store(const char *prog, rcbs *s, const char *url)
{
    if (rcbs_open(s, url) != 0) {
        fprintf(stderr, "%s: %s (see %s --help)\n", prog, rcbs_error(s), prog);
        return 2;
    }
    return 0;
}

int rcs3_cli_dump_to(const char *dir, const char *url, bool full)
{
    rcbs s;
    int status = open_store("kvdump", &s, url);
    if (status != 0)
        return status;
    rc_db *db = NULL;
    int err = rct_open_db(dir, true, &db);
    if (err != 0) {
        if (err == RC_ENOTFOUND)
            fprintf(stderr, "kvdump: no data directory at '%s'\n", dir);
        else
            fprintf(stderr, "kvdump: cannot open data directory '%s': %s\n", dir,
                    rct_engine_detail(err));
        rcbs_close(&s);
        return err == RC_ENOTFOUND ? 1 : 4;
    }
    char id[RCM_DB_ID_MAX + 1];
    if (rcbs_database_id(db, dir, id, sizeof id) != 0) {
        fprintf(stderr, "kvdump: cannot read the identity of '%s'\n", dir);
        rc_close(db);
        rcbs_close(&s);
        return 4;
    }
    rcbs_ship_opts so = {.force_full = full};
    rcbs_ship_result r;
    int rc = rcbs_ship(&s, db, id, &so, &r);
    rc_close(db);
    switch (rc) {
    case 0:
        if (!r.uploaded) {
            fprintf(stderr, "nothing new since seq %" PRIu64 " (database %s): nothing uploaded\n",
                    r.until, id);
        } else {
            if (r.horizon)
                fprintf(stderr, "kvdump: an incremental would miss deletes (tombstone horizon): "
                                "uploaded a full backup instead\n");
            fprintf(stderr, "uploaded %s/%s (%s, %" PRIu64 " bytes; chain of %zu)\n", s.url,
                    r.object, r.full ? "full" : "incremental", r.bytes, r.chain);
            fprintf(stderr,
                    "records %" PRIu64 ", tombstones %" PRIu64 ", seq %" PRIu64 "..%" PRIu64 "\n",
                    r.records, r.tombstones, r.since, r.until);
        }
        status = 0;
        break;
    case RCBS_ELOCAL:
        fprintf(stderr, "kvdump: %s\n", rcbs_error(&s));
        status = 5;
        break;
    case RCBS_EENGINE:
    case RCBS_EBEHIND:
        fprintf(stderr, "kvdump: %s\n", rcbs_error(&s));
        status = 6;
        break;
    default:
        fprintf(stderr, "kvdump: %s: nothing trusted was written\n", rcbs_error(&s));
        status = RCS3_EXIT_STORE;
    }
    rcbs_close(&s);
    return status;
}

int rcs3_cli_list(const char *url, const char *db)
{
    rcbs s;
    int status = open_store("kvdump", &s, url);
    if (status != 0)
        return status;
    rcm_manifest *list = NULL;
    size_t n = 0;
    int rc = rcbs_list(&s, db, &list, &n);
    if (rc != 0) {
        fprintf(stderr, "kvdump: %s\n", rcbs_error(&s));
        rcbs_close(&s);
        return RCS3_EXIT_STORE;
    }
    for (size_t i = 0; i < n; i++) {
        char when[40];
        rcm_format_time(list[i].time_ms, when, sizeof when);
        printf("%" PRIu64 " %s %zu %" PRIu64 " %s\n", list[i].until, when, list[i].n, list[i].bytes,
               list[i].database);
    }
    if (n == 0)
        fprintf(stderr, "kvdump: no backup under %s\n", s.url);
    rcbs_free_list(list, n);
    rcbs_close(&s);
    if (fflush(stdout) != 0)
        return 5;
    return n == 0 ? 1 : 0;
}

static void print_note(void *ctx, const char *line)
{
    (void)ctx;
    fprintf(stderr, "%s\n", line);
}

int rcs3_cli_load_from(const char *dir, const char *url, const char *db, const rcbs_point *point)
{
    rcbs s;
    int status = open_store("kvload", &s, url);
    if (status != 0)
        return status;
    rcm_manifest m;
    int rc = rcbs_restore(&s, db, point, dir, print_note, NULL, &m);
    switch (rc) {
    case 0:
        fprintf(stderr, "restored database %s to seq %" PRIu64 " from %zu objects into '%s'\n",
                m.database, m.until, m.n, dir);
        rcm_free(&m);
        status = 0;
        break;
    case RCBS_ENONE:
        fprintf(stderr, "kvload: %s; nothing was applied\n", rcbs_error(&s));
        status = 1;
        break;
    case RCBS_EMANY:
        fprintf(stderr, "kvload: %s (see kvload --help)\n", rcbs_error(&s));
        status = 2;
        break;
    case RCBS_ECORRUPT:
        fprintf(stderr, "kvload: %s; nothing was applied\n", rcbs_error(&s));
        status = 3;
        break;
    case RCBS_ETARGET:
        fprintf(stderr, "kvload: %s; nothing was applied\n", rcbs_error(&s));
        status = 4;
        break;
    case RCBS_EENGINE:
        fprintf(stderr, "kvload: %s; '%s' is unchanged\n", rcbs_error(&s), dir);
        status = s.engine_err == RC_ELOCKED ? 6 : 7;
        break;
    case RCBS_ELOCAL:
        fprintf(stderr, "kvload: %s; '%s' is unchanged\n", rcbs_error(&s), dir);
        status = 7;
        break;
    default:
        fprintf(stderr, "kvload: %s; nothing was applied\n", rcbs_error(&s));
        status = RCS3_EXIT_STORE;
    }
    rcbs_close(&s);
    return status;
}
