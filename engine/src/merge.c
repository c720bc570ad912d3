/*
 * merge.c — compaction. Not built yet (issue 4): rc_merge answers RC_EINVAL
 * with a message saying so, and the background thread does nothing.
 */
#include "db.h"

int merge_maybe(rc_db *db)
{
    (void)db;
    return 0;
}

int rc_merge(rc_db *db)
{
    (void)db;
    return rc_fail(RC_EINVAL, "merge is not implemented in this build yet");
}
