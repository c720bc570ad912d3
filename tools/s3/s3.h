/*
 * s3.h — a small client of the S3 API for shipping backup streams: PUT (one
 * request, or a multipart upload above RCS3_MULTIPART_THRESHOLD), GET, LIST
 * (ListObjectsV2, following continuation tokens) and DELETE, path-style
 * against AWS_ENDPOINT_URL or virtual-host-free https://s3.REGION.amazonaws.com.
 *
 * HTTP is libcurl; requests are signed by libcurl's SigV4 (CURLOPT_AWS_SIGV4
 * "aws:amz:REGION:s3"). libcurl 7.88 signs every header the caller sets but
 * does not compute the payload hash of an upload, so every request carries
 * x-amz-content-sha256 (libsodium's SHA-256 of the body). XML responses are
 * read with expat. Nothing here signs or parses HTTP by hand.
 *
 * Configuration comes from the environment, with the AWS CLI's names:
 * AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION
 * (else AWS_DEFAULT_REGION, else us-east-1) and AWS_ENDPOINT_URL.
 *
 * A client is one curl handle: use it from one thread at a time.
 */
#ifndef RC_TOOLS_S3_H
#define RC_TOOLS_S3_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#define RCS3_MULTIPART_THRESHOLD (64ull << 20) /* bodies above this go in parts */
#define RCS3_PART_BYTES (16ull << 20)          /* size of each part but the last */

/* Results: 0, or one of these (negative). */
enum {
    RCS3_ENOTFOUND = -1, /* 404: no such key / bucket */
    RCS3_EAUTH = -2,     /* 401/403: credentials refused or missing */
    RCS3_EHTTP = -3,     /* another unexpected HTTP status (5xx after retries, 4xx) */
    RCS3_ENET = -4,      /* could not connect, timed out, connection broken */
    RCS3_ELOCAL = -5,    /* local I/O or memory failure */
    RCS3_EPROTO = -6,    /* a response that is not what S3 sends */
    RCS3_ECONFIG = -7,   /* bad URL or environment */
};

/* s3://BUCKET/PREFIX: BUCKET (1-63 of a-z 0-9 . -) and PREFIX (may be empty;
 * no leading or trailing '/', no empty components). Returns 0, or -1 with a
 * reason in ERR. *BUCKET and *PREFIX are malloc'd (caller frees). */
int rcs3_parse_url(const char *url, char **bucket, char **prefix, char *err, size_t errcap);

typedef struct rcs3 rcs3;

/* A client for BUCKET, configured from the environment. NULL with a reason
 * in ERR (missing credentials, bad AWS_ENDPOINT_URL). Free with rcs3_free. */
rcs3 *rcs3_new(const char *bucket, char *err, size_t errcap);
void rcs3_free(rcs3 *c);

/* The reason of the last failure ("GET s3://b/k: HTTP 403 AccessDenied: ...").
 * Owned by the client, valid until the next call. */
const char *rcs3_error(const rcs3 *c);

/* Attempts per request for retryable failures (network errors, 5xx, 429);
 * default 3, with 200 ms, 400 ms between them. */
void rcs3_set_attempts(rcs3 *c, unsigned attempts);

/* While *CANCEL is true, transfers abort and retries stop (RCS3_ENET,
 * "cancelled"). NULL: never. */
void rcs3_set_cancel(rcs3 *c, const atomic_bool *cancel);

/* Upload SIZE bytes of FD (from offset 0, read with pread) as KEY whose
 * SHA-256 is SHA (32 bytes). Bodies above RCS3_MULTIPART_THRESHOLD go as a
 * multipart upload, aborted on failure. */
int rcs3_put_fd(rcs3 *c, const char *key, int fd, uint64_t size, const unsigned char sha[32]);
/* Upload a memory buffer as KEY (single request). */
int rcs3_put_mem(rcs3 *c, const char *key, const void *data, size_t len, const char *content_type);

/* Download KEY into FD (appended at its current offset); *SIZE and SHA (32
 * bytes, may be NULL) receive the byte count and SHA-256 of what was written.
 * Refuses (RCS3_EPROTO) a body larger than MAX bytes. */
int rcs3_get_fd(rcs3 *c, const char *key, int fd, uint64_t max, uint64_t *size,
                unsigned char sha[32]);
/* Download KEY into memory (malloc'd, NUL-terminated; caller frees), at most
 * MAX bytes. */
int rcs3_get_mem(rcs3 *c, const char *key, size_t max, char **out, size_t *len);

int rcs3_delete(rcs3 *c, const char *key);

/* Every key under PREFIX (a plain string prefix), in the store's order
 * (ascending bytes). FN returns 0 to go on, non-zero to stop (rcs3_list then
 * returns that value). */
typedef int (*rcs3_list_fn)(void *ctx, const char *key, uint64_t size);
int rcs3_list(rcs3 *c, const char *prefix, rcs3_list_fn fn, void *ctx);

/* --- exposed for tests ---------------------------------------------------- */

/* Set up H (a fresh or reset easy handle) to send METHOD to URL signed with
 * the client's credentials: SigV4 options, x-amz-content-sha256 = PAYLOAD_HEX,
 * the session token, plus EXTRA headers (may be NULL; "Name: value" lines,
 * which libcurl signs too). *HEADERS receives the list to free after the
 * transfer. Returns 0 or RCS3_ELOCAL. */
int rcs3_prepare(rcs3 *c, CURL *h, const char *method, const char *url, const char *payload_hex,
                 const char *const *extra, struct curl_slist **headers);

/* Append KEY to BUF percent-encoded as S3 canonicalizes a path (everything
 * but A-Z a-z 0-9 - . _ ~ and '/'); query values set SLASH too. */
void rcs3_uri_encode(char *out, size_t cap, const char *in, bool encode_slash);

/* Hex of a SHA-256 (65 bytes with the NUL). */
void rcs3_hex(const unsigned char sha[32], char hex[65]);

#endif
