/*
 * main.c — kvd: flags, start-up, the ready line, and graceful shutdown.
 *
 * Start-up: parse flags (exit 2 with a one-line reason naming the flag),
 * open the log (--log-file, --log-format), block SIGTERM/SIGINT/SIGHUP in
 * every thread (the engine's and MHD's inherit the
 * mask), open the engine (recovery runs here), open the policy store, create
 * the --default-bucket, bind the listening socket ourselves (so
 * --listen 127.0.0.1:0 works and the ready line names the real port), start
 * MHD, print one ready line on stdout, then wait in sigwait. SIGHUP reopens
 * the log file (logrotate) and logs one line; it never stops or restarts kvd.
 *
 * Shutdown on SIGTERM/SIGINT: new requests (also on open keep-alive
 * connections) get 503 with Connection: close; MHD is quiesced (the listening
 * socket is closed, nothing new is accepted); in-flight requests finish
 * (bounded by --shutdown-grace); then MHD stops, the engine is closed (which
 * syncs) and kvd exits 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "http.h"
#include "log.h"
#include "metrics.h"
#include "policy.h"
#include "routes.h"

#define EXIT_USAGE 2
#define EXIT_FAILURE_RUNTIME 3

static const char usage_text[] =
    "usage: kvd [options]\n"
    "  --dir PATH                  data directory (default ./ringcask-data)\n"
    "  --listen HOST:PORT          address (default 127.0.0.1:7070; port 0 picks one)\n"
    "  --sync always|interval:MS|none   durability of acknowledged writes (default always)\n"
    "  --default-bucket NAME       create NAME if missing, open to clients without credentials\n"
    "  --admin-token-file FILE     server admin token (bucket creation, /admin/backup)\n"
    "  --max-value BYTES           largest value (default 16M)\n"
    "  --max-batch-bytes BYTES     largest batch body (default 64M)\n"
    "  --threads N                 HTTP worker threads (default: 128 with --sync always,\n"
    "                              else 4 x cores, at least 8)\n"
    "  --max-connections N         concurrent connections (default 1024)\n"
    "  --max-connections-per-ip N  concurrent connections from one address (default 0: no\n"
    "                              limit besides --max-connections)\n"
    "  --timeout SECONDS           close idle or stalled connections after this (default 30)\n"
    "  --max-header-bytes BYTES    request line + headers per connection (default 32K)\n"
    "  --shutdown-grace SECONDS    how long SIGTERM waits for in-flight requests (default 10)\n"
    "  --script-instructions N     instruction budget of a script run (default 10000000)\n"
    "  --script-memory BYTES       memory cap of a script run (default 16M)\n"
    "  --script-timeout MS         wall-clock cap of a script run (default 1000)\n"
    "  --segment-bytes BYTES       segment rotation size (default 256M)\n"
    "  --merge-threshold PCT       dead percentage that makes a segment a merge candidate (40)\n"
    "  --tombstone-retention SECONDS  how long merge keeps tombstones (default 604800)\n"
    "  --log-level error|warn|info|debug   (default info: one line per request)\n"
    "  --log-format text|json      log lines as text or as JSON objects (default text)\n"
    "  --log-file FILE             append the log to FILE instead of stderr; SIGHUP\n"
    "                              reopens it (for logrotate)\n"
    "  --metrics-token-file FILE   GET /metrics needs this token (or the admin token)\n"
    "  --help\n"
    "Sizes accept K, M, G suffixes (powers of 1024).\n";

static void usage_error(const char *flag, const char *fmt, ...) __attribute__((noreturn));
static void usage_error(const char *flag, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "kvd: %s: ", flag);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see kvd --help)\n");
    exit(EXIT_USAGE);
}

static uint64_t parse_size(const char *flag, const char *s, uint64_t min, uint64_t max)
{
    char *end = NULL;
    errno = 0;
    if (s[0] < '0' || s[0] > '9')
        usage_error(flag, "expected a size such as 1048576 or 1M, got '%s'", s);
    unsigned long long v = strtoull(s, &end, 10);
    uint64_t mul = 1;
    if (*end == 'K' || *end == 'k')
        mul = 1024;
    else if (*end == 'M' || *end == 'm')
        mul = 1024 * 1024;
    else if (*end == 'G' || *end == 'g')
        mul = 1024ull * 1024 * 1024;
    if (mul != 1)
        end++;
    if (*end != '\0' || errno == ERANGE || v > UINT64_MAX / mul)
        usage_error(flag, "expected a size such as 1048576 or 1M, got '%s'", s);
    uint64_t r = v * mul;
    if (r < min || r > max)
        usage_error(flag, "%s is out of range %llu .. %llu", s, (unsigned long long)min,
                    (unsigned long long)max);
    return r;
}

static uint64_t parse_count(const char *flag, const char *s, uint64_t min, uint64_t max)
{
    char *end = NULL;
    errno = 0;
    if (s[0] < '0' || s[0] > '9')
        usage_error(flag, "expected a number, got '%s'", s);
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || errno == ERANGE || v < min || v > max)
        usage_error(flag, "expected a number %llu .. %llu, got '%s'", (unsigned long long)min,
                    (unsigned long long)max, s);
    return v;
}

static void parse_sync(const char *s, rc_options *o)
{
    if (strcmp(s, "always") == 0)
        o->sync = RC_SYNC_ALWAYS;
    else if (strcmp(s, "none") == 0)
        o->sync = RC_SYNC_NONE;
    else if (strncmp(s, "interval:", 9) == 0) {
        o->sync = RC_SYNC_INTERVAL;
        o->sync_interval_ms = (uint32_t)parse_count("--sync", s + 9, 1, 3600000);
    } else
        usage_error("--sync", "expected always, interval:MS or none, got '%s'", s);
}

enum {
    OPT_DIR = 256,
    OPT_LISTEN,
    OPT_SYNC,
    OPT_DEFAULT_BUCKET,
    OPT_ADMIN_TOKEN_FILE,
    OPT_MAX_VALUE,
    OPT_MAX_BATCH,
    OPT_THREADS,
    OPT_MAX_CONN,
    OPT_TIMEOUT,
    OPT_MAX_HEADER,
    OPT_GRACE,
    OPT_SCRIPT_INSN,
    OPT_SCRIPT_MEM,
    OPT_SCRIPT_TIMEOUT,
    OPT_SEGMENT,
    OPT_MERGE,
    OPT_TOMBSTONE,
    OPT_LOG_LEVEL,
    OPT_MAX_CONN_IP,
    OPT_LOG_FORMAT,
    OPT_LOG_FILE,
    OPT_METRICS_TOKEN_FILE,
    OPT_HELP,
};

static void parse_flags(int argc, char **argv, kvd_config *c)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, OPT_DIR},
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"sync", required_argument, NULL, OPT_SYNC},
        {"default-bucket", required_argument, NULL, OPT_DEFAULT_BUCKET},
        {"admin-token-file", required_argument, NULL, OPT_ADMIN_TOKEN_FILE},
        {"max-value", required_argument, NULL, OPT_MAX_VALUE},
        {"max-batch-bytes", required_argument, NULL, OPT_MAX_BATCH},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"max-connections", required_argument, NULL, OPT_MAX_CONN},
        {"max-connections-per-ip", required_argument, NULL, OPT_MAX_CONN_IP},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"max-header-bytes", required_argument, NULL, OPT_MAX_HEADER},
        {"shutdown-grace", required_argument, NULL, OPT_GRACE},
        {"script-instructions", required_argument, NULL, OPT_SCRIPT_INSN},
        {"script-memory", required_argument, NULL, OPT_SCRIPT_MEM},
        {"script-timeout", required_argument, NULL, OPT_SCRIPT_TIMEOUT},
        {"segment-bytes", required_argument, NULL, OPT_SEGMENT},
        {"merge-threshold", required_argument, NULL, OPT_MERGE},
        {"tombstone-retention", required_argument, NULL, OPT_TOMBSTONE},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
        {"log-file", required_argument, NULL, OPT_LOG_FILE},
        {"metrics-token-file", required_argument, NULL, OPT_METRICS_TOKEN_FILE},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    memset(c, 0, sizeof *c);
    rc_options_default(&c->engine);
    c->dir = "./ringcask-data";
    c->listen = "127.0.0.1:7070";
    c->max_value = 16u << 20;
    c->max_batch_bytes = 64u << 20;
    c->threads = 0; /* chosen after the flags: depends on --sync */
    c->max_connections = 1024;
    c->conn_timeout_s = 30;
    c->max_header_bytes = 32 * 1024;
    c->shutdown_grace_s = 10;
    c->script_instructions = 10000000;
    c->script_memory = 16u << 20;
    c->script_timeout_ms = 1000;
    c->log_level = LOG_INFO;
    opterr = 0;
    for (;;) {
        int longindex = 0;
        int o = getopt_long(argc, argv, ":", opts, &longindex);
        if (o == -1)
            break;
        switch (o) {
        case OPT_DIR:
            c->dir = optarg;
            break;
        case OPT_LISTEN:
            c->listen = optarg;
            break;
        case OPT_SYNC:
            parse_sync(optarg, &c->engine);
            break;
        case OPT_DEFAULT_BUCKET:
            if (!bucket_name_valid(optarg, strlen(optarg)) ||
                bucket_name_reserved(optarg, strlen(optarg)))
                usage_error("--default-bucket", "'%s' is not a valid bucket name", optarg);
            c->default_bucket = optarg;
            break;
        case OPT_ADMIN_TOKEN_FILE:
            c->admin_token_file = optarg;
            break;
        case OPT_MAX_VALUE:
            c->max_value = parse_size("--max-value", optarg, 1, RC_VALUE_MAX);
            break;
        case OPT_MAX_BATCH:
            c->max_batch_bytes = parse_size("--max-batch-bytes", optarg, 1024, 1ull << 32);
            break;
        case OPT_THREADS:
            c->threads = (unsigned)parse_count("--threads", optarg, 1, 1024);
            break;
        case OPT_MAX_CONN:
            c->max_connections = (unsigned)parse_count("--max-connections", optarg, 1, 1000000);
            break;
        case OPT_MAX_CONN_IP:
            c->max_connections_per_ip =
                (unsigned)parse_count("--max-connections-per-ip", optarg, 0, 1000000);
            break;
        case OPT_TIMEOUT:
            c->conn_timeout_s = (unsigned)parse_count("--timeout", optarg, 1, 86400);
            break;
        case OPT_MAX_HEADER:
            c->max_header_bytes = (size_t)parse_size("--max-header-bytes", optarg, 4096, 16u << 20);
            break;
        case OPT_GRACE:
            c->shutdown_grace_s = (unsigned)parse_count("--shutdown-grace", optarg, 0, 3600);
            break;
        case OPT_SCRIPT_INSN:
            c->script_instructions = parse_count("--script-instructions", optarg, 1000, 1ull << 40);
            break;
        case OPT_SCRIPT_MEM:
            c->script_memory = parse_size("--script-memory", optarg, 64 * 1024, 1ull << 34);
            break;
        case OPT_SCRIPT_TIMEOUT:
            c->script_timeout_ms = parse_count("--script-timeout", optarg, 1, 3600000);
            break;
        case OPT_SEGMENT:
            c->engine.segment_bytes = parse_size("--segment-bytes", optarg, 4096, 1ull << 40);
            c->engine.merge_dead_bytes = c->engine.segment_bytes / 2;
            break;
        case OPT_MERGE:
            c->engine.merge_dead_pct = (uint32_t)parse_count("--merge-threshold", optarg, 1, 100);
            break;
        case OPT_TOMBSTONE:
            c->engine.tombstone_retention_ms =
                parse_count("--tombstone-retention", optarg, 0, 100ull * 365 * 86400) * 1000;
            break;
        case OPT_LOG_LEVEL:
            if (strcmp(optarg, "error") == 0)
                c->log_level = LOG_ERROR;
            else if (strcmp(optarg, "warn") == 0)
                c->log_level = LOG_WARN;
            else if (strcmp(optarg, "info") == 0)
                c->log_level = LOG_INFO;
            else if (strcmp(optarg, "debug") == 0)
                c->log_level = LOG_DEBUG;
            else
                usage_error("--log-level", "expected error, warn, info or debug, got '%s'", optarg);
            break;
        case OPT_LOG_FORMAT:
            if (strcmp(optarg, "text") == 0)
                c->log_format = LOG_FORMAT_TEXT;
            else if (strcmp(optarg, "json") == 0)
                c->log_format = LOG_FORMAT_JSON;
            else
                usage_error("--log-format", "expected text or json, got '%s'", optarg);
            break;
        case OPT_LOG_FILE:
            if (optarg[0] == '\0')
                usage_error("--log-file", "needs a file name");
            c->log_file = optarg;
            break;
        case OPT_METRICS_TOKEN_FILE:
            c->metrics_token_file = optarg;
            break;
        case OPT_HELP:
            fputs(usage_text, stdout);
            exit(0);
        case ':':
            usage_error(argv[optind - 1], "needs a value");
        default:
            usage_error(optind > 0 && optind <= argc ? argv[optind - 1] : "?", "unknown option");
        }
    }
    if (optind < argc)
        usage_error(argv[optind], "unexpected argument");
    if (c->threads == 0) {
        /* Under --sync always a handler blocks on fdatasync, and only writers
         * waiting at the same moment share a group commit, so the pool must be
         * larger than the number of concurrent writers. Measured on 2 cores,
         * 50 connections, 100-byte PUTs: 4 threads 3.3k req/s, 8: 6.1k,
         * 32: 7.3-8.5k (p99 83-139 ms), 128: 9.2-9.5k (p99 40-61 ms); GET
         * unchanged. Other modes never wait for the disk: 4 x cores. */
        c->threads = (unsigned)(cores > 0 ? cores * 4 : 8);
        if (c->threads < 8)
            c->threads = 8;
        if (c->engine.sync == RC_SYNC_ALWAYS && c->threads < 128)
            c->threads = 128;
    }
    /* libmicrohttpd splits the connection limit among its threads */
    if (c->threads > c->max_connections)
        c->threads = c->max_connections;
}

/* Read a token for FLAG: the file's first line, trimmed. NULL on failure. */
static char *read_token(const char *flag, const char *path)
{
    FILE *f = fopen(path, "r");
    char buf[1024];
    if (f == NULL) {
        fprintf(stderr, "kvd: %s %s: %s\n", flag, path, strerror(errno));
        return NULL;
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *nl = strpbrk(buf, "\r\n");
    if (nl != NULL)
        *nl = '\0';
    n = strlen(buf);
    while (n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        buf[--n] = '\0';
    if (n < 16) {
        fprintf(stderr, "kvd: %s %s: the token must be at least 16 characters\n", flag, path);
        return NULL;
    }
    return strdup(buf);
}

/* Bind HOST:PORT ([v6]:port for IPv6). Returns the socket or -1 (reported). */
static int bind_listen(const char *spec, char *shown, size_t shown_cap, bool *loopback)
{
    char host[256];
    const char *colon = strrchr(spec, ':');
    if (colon == NULL || colon == spec || colon[1] == '\0') {
        fprintf(stderr, "kvd: --listen: expected HOST:PORT, got '%s'\n", spec);
        exit(EXIT_USAGE);
    }
    size_t hl = (size_t)(colon - spec);
    if (spec[0] == '[' && hl >= 2 && spec[hl - 1] == ']') {
        spec++;
        hl -= 2;
    }
    if (hl >= sizeof host) {
        fprintf(stderr, "kvd: --listen: host too long\n");
        exit(EXIT_USAGE);
    }
    memcpy(host, spec, hl);
    host[hl] = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int g = getaddrinfo(host, colon + 1, &hints, &res);
    if (g != 0) {
        fprintf(stderr, "kvd: --listen %s: %s\n", spec, gai_strerror(g));
        exit(EXIT_USAGE);
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 1024) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        fprintf(stderr, "kvd: --listen %s: cannot bind: %s\n", spec, strerror(errno));
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char addr[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &in->sin_addr, addr, sizeof addr);
        port = ntohs(in->sin_port);
        *loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
        snprintf(shown, shown_cap, "%s:%u", addr, port);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, addr, sizeof addr);
        port = ntohs(in6->sin6_port);
        *loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
        snprintf(shown, shown_cap, "[%s]:%u", addr, port);
    }
    return fd;
}

static int ensure_default_bucket(kvd *srv, const char *name, bool loopback)
{
    policy p;
    int rc = policy_get(srv, name, strlen(name), &p);
    if (rc == RC_ENOTFOUND) {
        char key[BUCKET_KEY_TEXT_MAX + 1];
        rc = policy_create(srv, name, 0, PERM_ALL, key);
        sodium_memzero(key, sizeof key);
        if (rc == 0)
            kvd_log(LOG_INFO, "created the default bucket %s", name);
    } else if (rc == 0 && p.public_perms != PERM_ALL) {
        p.public_perms = PERM_ALL;
        rc = policy_update(srv, &p);
    }
    if (rc != 0)
        return rc;
    if (!loopback)
        kvd_log(LOG_WARN,
                "--default-bucket %s is open to every client without credentials, and kvd "
                "listens on a non-loopback address",
                name);
    return 0;
}

/* SIGHUP: reopen the --log-file (logrotate moved it); never a restart. */
static void reopen_log(void)
{
    int rc = kvd_log_reopen();
    if (rc == 0)
        kvd_log(LOG_INFO, "SIGHUP: reopened the log file %s", kvd_log_path());
    else if (rc == 1)
        kvd_log(LOG_INFO, "SIGHUP: the log goes to stderr; nothing to reopen");
    else
        kvd_log(LOG_ERROR,
                "SIGHUP: cannot reopen the log file %s: %s; still writing to the old one",
                kvd_log_path(), strerror(-rc));
}

static void wait_in_flight(kvd *srv)
{
    uint64_t deadline = kvd_mono_ns() + (uint64_t)srv->cfg.shutdown_grace_s * 1000000000u;
    while (atomic_load(&srv->in_flight) > 0 && kvd_mono_ns() < deadline) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    long left = atomic_load(&srv->in_flight);
    if (left > 0)
        kvd_log(LOG_WARN, "shutdown: %ld requests still running after %us; closing anyway", left,
                srv->cfg.shutdown_grace_s);
}

int main(int argc, char **argv)
{
    kvd srv;
    memset(&srv, 0, sizeof srv);
    parse_flags(argc, argv, &srv.cfg);
    kvd_log_level = srv.cfg.log_level;
    int lrc = kvd_log_open(srv.cfg.log_file, srv.cfg.log_format);
    if (lrc != 0) {
        fprintf(stderr, "kvd: --log-file %s: %s\n", srv.cfg.log_file, strerror(-lrc));
        return EXIT_FAILURE_RUNTIME;
    }
    atomic_init(&srv.shutting_down, false);
    atomic_init(&srv.in_flight, 0);
    int status = EXIT_FAILURE_RUNTIME, listen_fd = -1;
    struct MHD_Daemon *daemon = NULL;
    bool scripts_ready = false;

    if (sodium_init() < 0) {
        fprintf(stderr, "kvd: libsodium failed to initialise\n");
        return EXIT_FAILURE_RUNTIME;
    }
    if (srv.cfg.admin_token_file != NULL) {
        srv.admin_token = read_token("--admin-token-file", srv.cfg.admin_token_file);
        if (srv.admin_token == NULL)
            return EXIT_FAILURE_RUNTIME;
    }
    if (srv.cfg.metrics_token_file != NULL) {
        srv.metrics_token = read_token("--metrics-token-file", srv.cfg.metrics_token_file);
        if (srv.metrics_token == NULL) {
            free(srv.admin_token);
            return EXIT_FAILURE_RUNTIME;
        }
    }
    /* every thread created from here on inherits this mask */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    char shown[INET6_ADDRSTRLEN + 16];
    bool loopback = false;
    listen_fd = bind_listen(srv.cfg.listen, shown, sizeof shown, &loopback);
    if (listen_fd < 0)
        goto fail;

    uint64_t t0 = kvd_mono_ns();
    int rc = rc_open(srv.cfg.dir, &srv.cfg.engine, &srv.db);
    if (rc != 0) {
        const char *detail = rc_last_error_message();
        fprintf(stderr, "kvd: --dir %s: %s%s%s\n", srv.cfg.dir, rc_strerror(rc),
                detail[0] ? ": " : "", detail);
        goto fail;
    }
    uint64_t open_ms = (kvd_mono_ns() - t0) / 1000000u;
    rc = policy_store_open(&srv);
    if (rc != 0) {
        fprintf(stderr, "kvd: --dir %s: cannot open the system keyspace: %s\n", srv.cfg.dir,
                rc_strerror(rc));
        goto fail;
    }
    srv.metrics = metrics_new();
    if (srv.metrics == NULL)
        goto fail;
    if (srv.cfg.default_bucket != NULL) {
        rc = ensure_default_bucket(&srv, srv.cfg.default_bucket, loopback);
        if (rc != 0) {
            fprintf(stderr, "kvd: --default-bucket %s: %s\n", srv.cfg.default_bucket,
                    rc_strerror(rc));
            goto fail;
        }
    }
    rc = route_scripts_init(&srv);
    if (rc != 0) {
        fprintf(stderr, "kvd: scripts: %s\n", rc_strerror(rc));
        goto fail;
    }
    scripts_ready = true;
    daemon = http_start(&srv, listen_fd);
    if (daemon == NULL) {
        fprintf(stderr, "kvd: --listen %s: the HTTP server did not start\n", srv.cfg.listen);
        goto fail;
    }
    if (!loopback && srv.metrics_token == NULL)
        kvd_log(LOG_WARN, "GET /metrics is readable without credentials on a non-loopback address "
                          "(give --metrics-token-file to restrict it)");
    rc_stats st;
    memset(&st, 0, sizeof st);
    rc_stats_db(srv.db, &st);
    printf("kvd ready: listening on http://%s, dir %s, %llu keys recovered in %llu ms\n", shown,
           srv.cfg.dir, (unsigned long long)st.recovered_keys,
           (unsigned long long)(st.recovery_ms ? st.recovery_ms : open_ms));
    fflush(stdout);

    int sig = 0;
    for (;;) {
        if (sigwait(&stop, &sig) != 0)
            continue;
        if (sig != SIGHUP)
            break;
        reopen_log();
    }
    kvd_log(LOG_INFO, "%s: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    atomic_store(&srv.shutting_down, true);
    MHD_socket lfd = MHD_quiesce_daemon(daemon);
    if (lfd != MHD_INVALID_SOCKET) {
        close(lfd);
        listen_fd = -1;
    }
    wait_in_flight(&srv);
    MHD_stop_daemon(daemon);
    daemon = NULL;
    status = 0;
fail:
    if (daemon != NULL)
        MHD_stop_daemon(daemon);
    if (listen_fd >= 0)
        close(listen_fd);
    if (scripts_ready)
        route_scripts_shutdown(&srv);
    policy_store_close(&srv);
    if (srv.db != NULL) {
        int crc = rc_close(srv.db);
        if (crc != 0) {
            kvd_log(LOG_ERROR, "closing the engine: %s", rc_strerror(crc));
            status = EXIT_FAILURE_RUNTIME;
        }
    }
    metrics_free(srv.metrics);
    free(srv.admin_token);
    free(srv.metrics_token);
    if (status == 0)
        kvd_log(LOG_INFO, "stopped");
    return status;
}
