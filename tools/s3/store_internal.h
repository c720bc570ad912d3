/*
 * store_internal.h — helpers shared by store.c, ship.c and restore.c.
 */
#ifndef RC_TOOLS_S3_STORE_INTERNAL_H
#define RC_TOOLS_S3_STORE_INTERNAL_H

#include "store.h"

/* PREFIX/REL into OUT; -1 when it does not fit. */
int rcbsi_key(const rcbs *s, const char *rel, char *out, size_t cap);
/* Copy the client's last error into S->err; returns RCBS_ESTORE. */
int rcbsi_store_error(rcbs *s);
/* GET and check <db>/manifest/<until>.json. */
int rcbsi_get_manifest(rcbs *s, const char *db, uint64_t until, rcm_manifest *m);
/* An unlinked temporary file in $TMPDIR (or /tmp); -1 with errno. */
int rcbsi_tmpfile(void);

#endif
