/*
 * stream_io.h — the plumbing kvdump and kvload share: backup-stream output
 * that appears under its final name only when complete, input from a file or
 * stdin as an rc_read_fn, a terminal progress bar as an rc_progress_fn, and
 * SIGINT/SIGTERM turned into a clean abort, and how the tools open a data
 * directory.
 */
#ifndef RC_TOOLS_STREAM_IO_H
#define RC_TOOLS_STREAM_IO_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ringcask.h"

/* Open DIR as the tools do: no background merge and no TTL sweep. READ_ONLY:
 * never created and nothing written (no LOCK, no hints); otherwise created if
 * missing and written with sync=none (the caller syncs once at the end).
 * Returns rc_open's result; on success *DB is the caller's to rc_close. */
int rct_open_db(const char *dir, bool read_only, rc_db **db);

/* The engine's detail of the failed call on this thread, else
 * rc_strerror(ERR). The string is the engine's: do not free it. */
const char *rct_engine_detail(int err);

/* Set by the SIGINT/SIGTERM handler; the stream callbacks then fail so the
 * engine call unwinds and the tool cleans up (a signal is what forces this
 * one piece of global state). */
extern volatile sig_atomic_t rct_interrupted;
void rct_catch_signals(void);

/* Output: "-" (or NULL) is stdout; otherwise a temporary file next to PATH,
 * renamed onto PATH by rct_output_commit after fsync. */
typedef struct rct_output {
    FILE *file;
    char *path;     /* final name, NULL for stdout */
    char *tmp_path; /* while writing */
    int error;      /* first errno of a failed write */
    uint64_t bytes;
} rct_output;

/* Returns 0, or -1 with errno set (nothing created). */
int rct_output_open(rct_output *out, const char *path);
/* rc_write_fn: CTX is an rct_output. */
int rct_output_write(void *ctx, const void *buf, size_t len);
/* Flush, fsync, close and rename into place. Returns 0 or -1 (errno set;
 * the temporary file is removed). */
int rct_output_commit(rct_output *out);
/* Close and remove the temporary file (stdout is left alone). */
void rct_output_abort(rct_output *out);

/* Input: "-" (or NULL) is stdin. */
typedef struct rct_input {
    FILE *file;
    const char *name; /* for messages: the path or "stdin" */
    int error;        /* errno of a failed read */
    uint64_t bytes;
    unsigned char peeked[64]; /* read ahead by rct_input_peek, served first */
    size_t peek_len, peek_off;
} rct_input;

int rct_input_open(rct_input *in, const char *path);
/* Read ahead up to WANT (<= 64) bytes without consuming them, so the stream
 * header can be checked before anything is opened (a pipe cannot seek).
 * Returns the bytes available (fewer only at the end), or -1 (in->error). */
long rct_input_peek(rct_input *in, size_t want);
/* rc_read_fn: CTX is an rct_input. */
long rct_input_read(void *ctx, void *buf, size_t len);
void rct_input_close(rct_input *in);

/* A one-line progress bar on stderr, drawn only when stderr is a terminal
 * and at most ten times a second. */
typedef struct rct_progress {
    bool enabled;
    bool drawn;
    const char *label;
    uint64_t last_draw_ms;
} rct_progress;

void rct_progress_init(rct_progress *p, const char *label);
/* rc_progress_fn: CTX is an rct_progress. */
void rct_progress_update(void *ctx, uint64_t done, uint64_t total);
/* Erase the bar so the next line starts clean. */
void rct_progress_finish(rct_progress *p);

/* Parse a decimal sequence number; returns 0 or -1. */
int rct_parse_seq(const char *s, uint64_t *out);

#endif
