/*
 * s3_cli.h — the object-store modes of kvdump and kvload: option checks,
 * messages on stderr and exit codes, over store.h.
 *
 * Exit codes (consistent with each tool's own): kvdump --to 0 ok, 1 no data
 * directory, 2 usage (bad URL or AWS_* environment), 4 the directory cannot
 * be opened, 5 no temporary space, 6 the backup failed (also: the store holds
 * a newer backup than this database), 9 the object store failed or holds an
 * invalid manifest. kvdump --list 0, 1 no backup there, 2, 9. kvload --from
 * 0, 1 no backup (at or before the point asked), 2 usage (also: several
 * databases and no --database), 3 an object is missing or corrupt (nothing
 * applied), 4 the target directory is not empty, 6 the directory cannot be
 * created, 7 the load failed otherwise, 9 the object store failed.
 */
#ifndef RC_TOOLS_S3_CLI_H
#define RC_TOOLS_S3_CLI_H

#include <stdbool.h>

#include "store.h"

#define RCS3_EXIT_STORE 9

int rcs3_cli_dump_to(const char *dir, const char *url, bool full);
int rcs3_cli_list(const char *url, const char *db);
int rcs3_cli_load_from(const char *dir, const char *url, const char *db, const rcbs_point *point);

#endif
