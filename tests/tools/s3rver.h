/*
 * s3rver.h — an S3-compatible server for the object-store tests: s3rver
 * (npm), started on 127.0.0.1 with one bucket "bkt", stopped with SIGKILL
 * (to play a store that goes away) and restarted on the same port and data.
 *
 * The binary is $S3RVER_BIN, else S3RVER_DEFAULT_BIN (installed into the
 * build tree by tests/tools/s3rver_install.sh, a ctest fixture).
 */
#ifndef TESTS_TOOLS_S3RVER_H
#define TESTS_TOOLS_S3RVER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct s3rv {
    pid_t pid;
    int port;
    char dir[512];
    char endpoint[64]; /* http://127.0.0.1:PORT */
    char env_endpoint[96];
} s3rv;

/* The path of s3rver, or NULL when it is not installed (WHY says so). */
const char *s3rv_binary(char *why, size_t cap);

/* Start s3rver storing in DATA_DIR on PORT (0: a free one) and wait (bounded,
 * 60 s) until it accepts connections. Returns 0 or -1 (reason in WHY). */
int s3rv_start(s3rv *s, const char *data_dir, int port, char *why, size_t cap);
/* SIGKILL and reap; safe on a stopped server. */
void s3rv_kill(s3rv *s);

/* Put the AWS_* variables for S into this process's environment (children
 * inherit them). */
void s3rv_setenv(const s3rv *s);

#endif
