/*
 * version.c — rc_version(): the RC_VERSION_* numbers of ringcask.h as text,
 * compiled into the library (a program may run against a newer one).
 */
#include "ringcask.h"

#define RC_STR_(x) #x
#define RC_STR(x) RC_STR_(x)

const char *rc_version(void)
{
    return RC_STR(RC_VERSION_MAJOR) "." RC_STR(RC_VERSION_MINOR) "." RC_STR(RC_VERSION_PATCH);
}
