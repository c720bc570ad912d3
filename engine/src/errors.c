/*
 * errors.c — error codes to text, and the thread-local detail message.
 *
 * Codes stay small integers so callers can switch on them; the detail (which
 * file, which pid holds the lock) lives in a per-thread buffer that the
 * failing call fills, so that nothing global is shared between threads.
 * Every public rc_ call that can fail starts by emptying it (rci_error_clear)
 * and every detail is written by rc_fail, so a message always belongs to the
 * call that just returned — never to an earlier one on the same thread (kvd
 * serves many tenants per worker thread: a stale detail would leak a key
 * name across them).
 */
#include "db.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

static _Thread_local char last_message[512];

const char *rc_strerror(int err)
{
    switch (err) {
    case RC_OK:
        return "success";
    case RC_EINVAL:
        return "invalid argument";
    case RC_ENOTFOUND:
        return "not found";
    case RC_EEXISTS:
        return "already exists";
    case RC_ECONFLICT:
        return "conflict: the sequence number does not match";
    case RC_ETYPE:
        return "the operation does not fit the value's type";
    case RC_EOVERFLOW:
        return "numeric overflow";
    case RC_EKEYSIZE:
        return "key is empty or longer than 1024 bytes";
    case RC_EVALUESIZE:
        return "value is too large";
    case RC_ENOMEM:
        return "out of memory";
    case RC_EIO:
        return "input/output error";
    case RC_ENOSPC:
        return "no space left on device";
    case RC_ECORRUPT:
        return "data is corrupt (checksum or format mismatch)";
    case RC_ELOCKED:
        return "the database is locked by another process";
    case RC_EREADONLY:
        return "the database is read-only";
    case RC_ENOKEYSPACE:
        return "no such keyspace";
    case RC_EHORIZON:
        return "incremental backup would miss deletes: take a full backup";
    case RC_EGAP:
        return "incremental stream does not follow on the database";
    case RC_ELIMIT:
        return "a limit was exceeded";
    case RC_EVERSION:
        return "unsupported format version";
    case RC_ECLOSED:
        return "the database is closing";
    case RC_ENOTEMPTY:
        return "the database is not empty";
    case RC_EIDENTITY:
        return "the stream is not from this database's history";
    default:
        return "unknown error";
    }
}

const char *rc_last_error_message(void)
{
    return last_message;
}

void rci_error_clear(void)
{
    last_message[0] = '\0';
}

void rc_error_clear(void)
{
    rci_error_clear();
}

int rc_fail(int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_message, sizeof(last_message), fmt, ap);
    va_end(ap);
    return err;
}

int rc_from_errno(int e)
{
    switch (e) {
    case ENOSPC:
    case EDQUOT:
        return RC_ENOSPC;
    case ENOMEM:
        return RC_ENOMEM;
    case ENOENT:
        return RC_ENOTFOUND;
    case EROFS:
    case EACCES:
    case EPERM:
        return RC_EREADONLY;
    case EINVAL:
        return RC_EINVAL;
    default:
        return RC_EIO;
    }
}
