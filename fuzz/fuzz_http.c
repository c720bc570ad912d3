/*
 * fuzz_http.c — HTTP framing through libmicrohttpd into the real kvd
 * handlers, in process: no hand-written HTTP parser anywhere.
 *
 * Once: an engine in a temp directory, kvd's policy store, metrics and
 * scripts module, a bucket "t", and the libmicrohttpd daemon kvd runs
 * (http_start) without a listening socket (MHD_USE_NO_LISTEN_SOCKET),
 * serving with one pool thread. The server admin token is "fuzz-admin", so
 * seeds (and mutations) get past authorisation and reach every route.
 *
 * Per input: a socketpair; one end goes to the daemon (MHD_add_connection),
 * the input is written raw into the other as the client's bytes (request
 * line, headers, bodies, chunked framing, pipelined requests), the client
 * half-closes, and the answer is read until the daemon closes the
 * connection. Invariants:
 *   - what comes back is empty or starts with a status line "HTTP/1.x NNN"
 *     (every answer is a well-formed start, never stray bytes);
 *   - kvd never answers 500 (an internal error is a bug);
 *   - smuggling: when the first request's header block carries both a
 *     Content-Length and a Transfer-Encoding line, kvd answers it with a
 *     refusal (4xx/5xx) and nothing else — no second answer, so no request
 *     hidden in its body ran;
 *   - every request kvd started is completed: its in-flight count returns
 *     to 0 once the connection is closed.
 * Inputs larger than 16 KiB are cut (the header limit is 32 KiB; bodies
 * beyond that add nothing to framing).
 */
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <netinet/in.h>
#include <sodium.h>

#include "fuzz_util.h"
#include "http.h"
#include "policy.h"
#include "metrics.h"
#include "routes.h"

#define INPUT_MAX (16u * 1024u)
#define WAIT_MS 5000

static kvd srv;
static struct MHD_Daemon *daemon_;
static char dir[64];

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void setup(void)
{
    FUZZ_CHECK(sodium_init() >= 0);
    signal(SIGPIPE, SIG_IGN);
    snprintf(dir, sizeof dir, "/tmp/fuzz_http.XXXXXX");
    FUZZ_CHECK(mkdtemp(dir) != NULL);
    memset(&srv, 0, sizeof srv);
    kvd_log_level = LOG_ERROR;
    srv.cfg.dir = dir;
    rc_options_default(&srv.cfg.engine);
    srv.cfg.engine.sync = RC_SYNC_NONE;
    srv.cfg.engine.segment_bytes = 4u << 20;
    srv.cfg.max_value = 64u * 1024u;
    srv.cfg.max_batch_bytes = 256u * 1024u;
    srv.cfg.threads = 1;
    srv.cfg.max_connections = 64;
    srv.cfg.conn_timeout_s = 1; /* a backstop: see send_all */
    srv.cfg.max_header_bytes = 32u * 1024u;
    srv.cfg.script_instructions = 100000;
    srv.cfg.script_memory = 4u << 20;
    srv.cfg.script_timeout_ms = 200;
    srv.cfg.shutdown_grace_s = 1;
    atomic_init(&srv.shutting_down, false);
    atomic_init(&srv.in_flight, 0);
    srv.admin_token = strdup("fuzz-admin");
    FUZZ_CHECK(rc_open(dir, &srv.cfg.engine, &srv.db) == 0);
    FUZZ_CHECK(policy_store_open(&srv) == 0);
    srv.metrics = metrics_new();
    FUZZ_CHECK(srv.metrics != NULL);
    char key[BUCKET_KEY_TEXT_MAX + 1];
    FUZZ_CHECK(policy_create(&srv, "t", 0, PERM_READ, key) == 0);
    FUZZ_CHECK(route_scripts_init(&srv) == 0);
    daemon_ = http_start(&srv, -1);
    FUZZ_CHECK(daemon_ != NULL);
}

/* Write everything (the daemon reads as we go), then half-close once the
 * daemon has read every byte: libmicrohttpd 0.9.75 (epoll, edge-triggered)
 * stops reading after a short read, so an end of stream that arrived
 * together with the last bytes would only be noticed at the idle timeout;
 * sent later, it is an event of its own. */
static void send_all(int fd, const uint8_t *data, size_t size)
{
    size_t off = 0;
    long long deadline = now_ms() + WAIT_MS;
    while (off < size && now_ms() < deadline) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t w = send(fd, data + off, size - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0)
            break; /* the daemon closed: it answered or refused */
        off += (size_t)w;
    }
    int unread = 0;
    while (ioctl(fd, SIOCOUTQ, &unread) == 0 && unread > 0 && now_ms() < deadline) {
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
    struct timespec settle = {0, 200000};
    nanosleep(&settle, NULL);
    shutdown(fd, SHUT_WR);
}

/* Read until the daemon closes; returns the bytes (NUL-terminated). */
static size_t read_all(int fd, char *buf, size_t cap)
{
    size_t got = 0;
    long long deadline = now_ms() + WAIT_MS;
    for (;;) {
        long long left = deadline - now_ms();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        FUZZ_CHECK(left > 0); /* the daemon must close: the input is finished */
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        char tmp[4096];
        ssize_t r = recv(fd, tmp, sizeof tmp, 0);
        if (r <= 0)
            break;
        size_t n = (size_t)r < cap - 1 - got ? (size_t)r : cap - 1 - got;
        memcpy(buf + got, tmp, n);
        got += n;
    }
    buf[got] = '\0';
    return got;
}

/* The next line of the first header block, from *POS on, that starts
 * NAME ':' (any case): true with its value in [*VA, *VB) and *POS past the
 * line. Lines end at LF (a CR before it is part of the line end); *POS = 0
 * starts at the request line, which never matches. */
static bool first_block_next(const uint8_t *data, size_t size, const char *name, size_t *pos,
                             size_t *va, size_t *vb)
{
    size_t n = strlen(name), line = *pos;
    bool first_line = line == 0;
    for (size_t i = line; i <= size; i++) {
        if (i < size && data[i] != '\n')
            continue;
        size_t len = i - line;
        if (len > 0 && data[line + len - 1] == '\r')
            len--;
        if (len == 0 && !first_line)
            return false; /* the end of the header block */
        if (!first_line && len > n && data[line + n] == ':' &&
            strncasecmp((const char *)data + line, name, n) == 0) {
            *va = line + n + 1;
            *vb = line + len;
            *pos = i + 1;
            return true;
        }
        first_line = false;
        line = i + 1;
    }
    return false;
}

/* True when the first header block has a line starting NAME ':'. */
static bool first_block_has(const uint8_t *data, size_t size, const char *name)
{
    size_t pos = 0, a, b;
    return first_block_next(data, size, name, &pos, &a, &b);
}

/* True when the first header block has a Content-Length line whose value
 * (spaces and tabs around it aside) is not a plain decimal number: such a
 * request is refused by libmicrohttpd itself, which (0.9.75) writes its 400
 * head twice (docs/HTTP.md). */
static bool first_block_bad_length(const uint8_t *data, size_t size)
{
    size_t pos = 0, a, b;
    while (first_block_next(data, size, "content-length", &pos, &a, &b)) {
        while (a < b && (data[a] == ' ' || data[a] == '\t'))
            a++;
        while (b > a && (data[b - 1] == ' ' || data[b - 1] == '\t'))
            b--;
        if (a == b || b - a > 19)
            return true;
        for (size_t k = a; k < b; k++)
            if (data[k] < '0' || data[k] > '9')
                return true;
    }
    return false;
}

/* libFuzzer's per-input leak check runs a full LeakSanitizer scan whenever
 * an input allocates more than it frees, which libmicrohttpd's thread and
 * kvd's caches do on most inputs (2 runs/s instead of hundreds). So, as
 * fuzz_lua does, the check is off unless the command line sets
 * -detect_leaks; kvd's leaks are the business of the system suites, which
 * run kvd under ASan+LSan and check at exit. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static char *args[256];
    static char no_leak_check[] = "-detect_leaks=0";
    int n = *argc;
    if (n + 2 > (int)(sizeof args / sizeof args[0]))
        return 0;
    for (int i = 0; i < n; i++) {
        if (strncmp((*argv)[i], "-detect_leaks=", 14) == 0)
            return 0;
        args[i] = (*argv)[i];
    }
    memmove(args + 2, args + 1, (size_t)(n - 1) * sizeof args[0]);
    args[1] = no_leak_check;
    args[n + 1] = NULL;
    *argc = n + 1;
    *argv = args;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char answer[256 * 1024];
    if (daemon_ == NULL)
        setup();
    if (size > INPUT_MAX)
        size = INPUT_MAX;
    int sv[2];
    FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(40000)};
    peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    FUZZ_CHECK(MHD_add_connection(daemon_, sv[1], (const struct sockaddr *)&peer, sizeof peer) ==
               MHD_YES);
    send_all(sv[0], data, size);
    size_t got = read_all(sv[0], answer, sizeof answer);
    close(sv[0]);

    if (got > 0) {
        FUZZ_CHECK(got >= 12 && memcmp(answer, "HTTP/1.", 7) == 0 && answer[8] == ' ');
        int count = 0;
        for (const char *s = answer; (s = strstr(s, "HTTP/1.")) != NULL; s += 7) {
            int st = 0;
            if (s[8] != ' ' || sscanf(s + 9, "%3d", &st) != 1)
                continue;
            /* a status line, not bytes of a body */
            if (s != answer && s[-1] != '\n')
                continue;
            FUZZ_CHECK(st != 500);
            count++;
        }
        int first = atoi(answer + 9);
        if (first_block_has(data, size, "content-length") &&
            first_block_has(data, size, "transfer-encoding")) {
            FUZZ_CHECK(first >= 400);
            /* one answer, or libmicrohttpd's own doubled head for a
             * Content-Length that is not a number */
            FUZZ_CHECK(count == 1 || (count == 2 && first_block_bad_length(data, size)));
        }
    }
    /* every request kvd started has completed */
    long long deadline = now_ms() + WAIT_MS;
    while (atomic_load(&srv.in_flight) != 0) {
        FUZZ_CHECK(now_ms() < deadline);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return 0;
}
