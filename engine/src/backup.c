/*
 * backup.c — incremental backup streams. Not built yet (issue 5): the calls
 * answer RC_EINVAL with a message saying so.
 */
#include "db.h"

int rc_backup(rc_db *db, uint64_t since, rc_write_fn write, void *ctx, rc_progress_fn progress,
              void *progress_ctx, rc_backup_info *info)
{
    return rc_fail(RC_EINVAL, "backup is not implemented in this build yet");
}

int rc_verify_stream(rc_read_fn read, void *ctx, rc_backup_info *info)
{
    return rc_fail(RC_EINVAL, "backup streams are not implemented in this build yet");
}

int rc_load(rc_db *db, rc_read_fn read, void *ctx, rc_progress_fn progress, void *progress_ctx,
            rc_backup_info *info)
{
    return rc_fail(RC_EINVAL, "loading backups is not implemented in this build yet");
}
