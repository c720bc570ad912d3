/*
 * kv.h — internals shared by the files of the kv command-line client.
 *
 * kv is a thin client of the kvd HTTP API (docs/HTTP.md): one process runs
 * one command, which makes one or a few requests over one libcurl easy handle
 * (so they share a keep-alive connection). Every command is a function
 * kv_cmd_NAME(ctx, argc, argv) that returns the process exit status; every
 * failure prints exactly one line on stderr naming what went wrong.
 */
#ifndef KV_H
#define KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <jansson.h>

#include "rcu_opt.h"
#include "rcu_text.h"

/* Exit statuses (docs/CLI.md lists them for users). */
enum {
    KV_EXIT_OK = 0,
    KV_EXIT_ABSENT = 1,      /* the key / script / bucket asked for is absent */
    KV_EXIT_USAGE = 2,       /* bad command line */
    KV_EXIT_UNREACHABLE = 3, /* no connection to kvd (or it timed out) */
    KV_EXIT_AUTH = 4,        /* credential missing, invalid or not permitted */
    KV_EXIT_NO_BUCKET = 5,   /* the bucket does not exist */
    KV_EXIT_REFUSED = 6,     /* kvd refused the request (too large, conflict, type, script error) */
    KV_EXIT_SERVER = 7,      /* kvd failed (5xx) or answered something unexpected */
    KV_EXIT_LOCAL = 8,       /* a local failure: unreadable file, stdout write error, memory */
};

/* A growable byte buffer; always NUL-terminated after data[len] when data != NULL. */
typedef struct kv_buf {
    char *data;
    size_t len;
    size_t cap;
} kv_buf;

int kv_buf_append(kv_buf *b, const void *data, size_t len);
int kv_buf_printf(kv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kv_buf_reset(kv_buf *b);
void kv_buf_free(kv_buf *b);

/* State of one kv invocation. */
typedef struct kv_ctx {
    const char *url; /* base URL without trailing '/' (owned: url_storage) */
    /* --url a,b,c: the members of a replica group, tried in turn */
    const char *urls[16];
    size_t nurls, url_cur;
    const char *bucket; /* validated bucket name */
    const char *key;    /* credential, or NULL */
    const char *cmd;    /* "kv set", for messages */
    char *url_storage;
    /* the global options as given (validated by kv_parse_options) */
    const char *opt_url, *opt_bucket, *opt_key;
    rcu_opt globals[4];
    CURL *curl;
    struct curl_slist *headers; /* rebuilt per request */
    char curl_error[CURL_ERROR_SIZE];
    const char *if_match; /* sent as If-Match on the next requests when set */
    const char *if_none_match;
    FILE *sink; /* when set, response bodies of 2xx answers go here, not to body */
    uint64_t sink_bytes;
    bool sink_failed;
    /* the last response */
    long status;
    kv_buf body;
    kv_buf resp_headers; /* the response header lines, as received */
} kv_ctx;

/* ---- options (main.c) */

/* Parse a command's ARGV (ARGV[0] is the command name) against OPTS (an
 * rcu_opt table, may be NULL) plus the global options (--url, --bucket,
 * --key), which may appear anywhere, GNU style; `--` ends the options.
 * SYNOPSIS and ABOUT head the generated --help. Afterwards the operands are
 * ARGV[1 .. *ARGC). Returns -1 to go on, or an exit status to return at once
 * (0 after --help). */
int kv_parse_options(kv_ctx *ctx, int *argc, char **argv, const rcu_opt *opts, const char *synopsis,
                     const char *about);

/* Print "kv CMD: MESSAGE" to stderr and return KV_EXIT_USAGE. */
int kv_usage_error(kv_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print "kv CMD: MESSAGE" to stderr and return STATUS. */
int kv_fail(kv_ctx *ctx, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- HTTP (client.c) */

/* Prepare the libcurl handle. Returns 0 or an exit status (message printed). */
int kv_client_init(kv_ctx *ctx);
void kv_client_cleanup(kv_ctx *ctx);

/* Append S (LEN bytes) percent-encoded (everything but unreserved chars). */
int kv_buf_append_escaped(kv_ctx *ctx, kv_buf *b, const void *s, size_t len);

/* Start PATH with "/<bucket>/" + the escaped key. */
int kv_key_path(kv_ctx *ctx, kv_buf *path, const char *key);

/* Send METHOD PATH (relative to the base URL, with its query) with BODY (may
 * be NULL for none) and CONTENT_TYPE (NULL: none). On return 0 the status is
 * in ctx->status and the body in ctx->body, whatever the status. Transport
 * failures print a message naming the URL and return KV_EXIT_UNREACHABLE
 * (or another exit status). */
int kv_http(kv_ctx *ctx, const char *method, const char *path, const void *body, size_t len,
            const char *content_type);

/* Copy the value of response header NAME (case-insensitive) of the last
 * response into OUT; 0, or -1 when it was absent or does not fit. */
int kv_header(const kv_ctx *ctx, const char *name, char *out, size_t cap);

/* Report the non-2xx response in ctx as a failure of WHAT ("set key 'k'"),
 * with kvd's message; 401/403/404 get their own wording. Returns the exit
 * status. A 404 is checked against the bucket (HEAD /bucket) and reported as
 * a missing bucket when that is why; otherwise as ABSENT_WHAT ("key 'k'")
 * with KV_EXIT_ABSENT. */
int kv_http_error(kv_ctx *ctx, const char *what, const char *absent_what);
/* kvd's "message" (or "error") from a JSON error body; else the body's first
 * line if it is short text; else "". A copy the caller frees (NULL when out
 * of memory). */
char *kv_server_message(kv_ctx *ctx);

/* METHOD /<bucket>/<key><QUERY> with BODY (NULL: none): 0 on a 2xx answer
 * (in ctx), else the failure reported as "cannot VERB key 'k'" (a 404 as
 * "key 'k' not found", exit 1, when ABSENT_IS_ERROR) and its exit status. */
int kv_key_call(kv_ctx *ctx, const char *method, const char *key, const char *query,
                const void *body, size_t len, const char *content_type, const char *verb,
                bool absent_is_error);

/* Parse ctx->body as JSON; on failure print a message and return NULL. */
json_t *kv_json_body(kv_ctx *ctx, const char *what);

/* Write the body of the last answer to stdout as `kv get` does: byte for
 * byte, plus a newline when stdout is a terminal and it lacks one. */
int kv_print_value(kv_ctx *ctx);

/* Print kvd's JSON answer (a final newline added); returns the exit status. */
int kv_print_body_json(kv_ctx *ctx);
/* The --json option of several commands. */
#define KV_JSON_OPT(flag)                                                                          \
    {                                                                                              \
        "json", 'j', RCU_OPT_BOOL, &(flag), .help = "print kvd's JSON answer"                      \
    }

/* ---- helpers (util.c) */

/* UTF-8 without NUL bytes: what kv sends as a JSON string ("value"). */
bool kv_is_text(const void *s, size_t len);
int kv_base64_encode(kv_buf *out, const void *data, size_t len);
/* Decode standard base64 (padding optional); returns 0 or -1 on bad input. */
int kv_base64_decode(kv_buf *out, const char *s, size_t len);
/* Read a whole file ("-" = stdin) into OUT; returns 0 or prints and returns an exit status. */
int kv_read_file(kv_ctx *ctx, const char *path, kv_buf *out);
/* Parse a duration "90", "30s", "10m", "2h", "7d" into seconds; -1 if malformed. */
int64_t kv_parse_duration(const char *s);
/* Parse a non-negative decimal count; -1 if malformed. */
int64_t kv_parse_count(const char *s);
/* KEY shortened for a one-line message: at most ~60 bytes (cut on a UTF-8
 * boundary, "..." appended), control characters shown as '?'. Returns BUF. */
#define KV_LABEL_MAX 80
const char *kv_key_label(const char *key, char buf[KV_LABEL_MAX]);
/* True when stdout is a terminal. */
bool kv_stdout_is_tty(void);
/* Write DATA to stdout; returns 0 or -1 (errno set). */
int kv_write_stdout(const void *data, size_t len);
/* Flush stdout and report a failure; returns 0 or an exit status. */
int kv_finish_stdout(kv_ctx *ctx);

/* ---- commands */

int kv_cmd_set(kv_ctx *ctx, int argc, char **argv);
int kv_cmd_setnx(kv_ctx *ctx, int argc, char **argv);
int kv_cmd_append(kv_ctx *ctx, int argc, char **argv);
int kv_cmd_getset(kv_ctx *ctx, int argc, char **argv);
int kv_cmd_ttl(kv_ctx *ctx, int argc, char **argv);
int kv_cmd_backup(kv_ctx *ctx, int argc, char **argv);
int kv_cmd_merge(kv_ctx *ctx, int argc, char **argv);
int kv_cmd_get(kv_ctx *ctx, int argc, char **argv);
int kv_cmd_del(kv_ctx *ctx, int argc, char **argv);
int kv_cmd_ls(kv_ctx *ctx, int argc, char **argv);
int kv_cmd_incr(kv_ctx *ctx, int argc, char **argv);
int kv_cmd_metrics(kv_ctx *ctx, int argc, char **argv);
int kv_cmd_bucket(kv_ctx *ctx, int argc, char **argv);
int kv_cmd_token(kv_ctx *ctx, int argc, char **argv);
int kv_cmd_script(kv_ctx *ctx, int argc, char **argv);
int kv_cmd_serve(kv_ctx *ctx, int argc, char **argv);
int kv_cmd_watch(kv_ctx *ctx, int argc, char **argv);

#endif /* KV_H */
