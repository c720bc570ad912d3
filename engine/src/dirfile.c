/*
 * dirfile.c — the small files of the database directory (IDENTITY, the
 * LOADING marker) are written whole and durably: a temporary file, its
 * fdatasync, a rename over the name, then an fsync of the directory, so a
 * crash leaves either the old file or the new one, never a torn one.
 */
#include "db.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int rci_dir_write_file(rc_db *db, const char *name, const void *buf, size_t len)
{
    char tmp[64];
    snprintf(tmp, sizeof(tmp), "%s.tmp", name);
    int e = 0;
    int fd = openat(db->dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        e = errno;
    } else {
        ssize_t n = pwrite(fd, buf, len, 0);
        if (n != (ssize_t)len)
            e = n < 0 ? errno : ENOSPC;
        else if (fdatasync(fd) != 0)
            e = errno;
        close(fd);
    }
    if (!e && renameat(db->dir_fd, tmp, db->dir_fd, name) != 0)
        e = errno;
    if (!e && fsync(db->dir_fd) != 0)
        e = errno;
    if (e) {
        unlinkat(db->dir_fd, tmp, 0);
        return rc_fail(rc_from_errno(e), "cannot write %s/%s: %s", db->dir, name, strerror(e));
    }
    return 0;
}
