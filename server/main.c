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

#include "json_cap.h"
#include "bucket_limits.h"
#include "cluster.h"
#include "durable.h"
#ifdef RC_FAULT_INJECTION
#include "fault.h"
#endif
#include "backup_shipper.h"
#include "feed.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "metrics_process.h"
#include "park.h"
#include "policy.h"
#include "rcu_opt.h"
#include "routes.h"

#define EXIT_USAGE 2
#define EXIT_FAILURE_RUNTIME 3

static const char *const log_levels[] = {"error", "warn", "info", "debug", NULL};
static const char *const log_formats[] = {"text", "json", NULL}; /* log_format's order */
static const char *const append_ios[] = {"auto", "mmap", "uring", "pwrite",
                                         NULL};                    /* rc_append_io's */
static const char *const replications[] = {"sync", "async", NULL}; /* kvd_config.replication */

static int parse_sync(const char *s, void *dest, char *why, size_t cap)
{
    rc_options *o = dest;
    rcu_sync mode;
    if (rcu_sync_parse(s, &mode, &o->sync_interval_ms, why, cap) != 0)
        return -1;
    o->sync = mode == RCU_SYNC_ALWAYS     ? RC_SYNC_ALWAYS
              : mode == RCU_SYNC_INTERVAL ? RC_SYNC_INTERVAL
                                          : RC_SYNC_NONE;
    return 0;
}

static void show_sync(const void *dest, char *out, size_t cap)
{
    const rc_options *o = dest;
    rcu_sync_format(o->sync == RC_SYNC_ALWAYS     ? RCU_SYNC_ALWAYS
                    : o->sync == RC_SYNC_INTERVAL ? RCU_SYNC_INTERVAL
                                                  : RCU_SYNC_NONE,
                    o->sync_interval_ms, out, cap);
}

/* The command line, the config file and --print-config come from this table. */
typedef struct flags {
    kvd_config *c;
    const char *config;
    bool print_config;
    bool segment_bytes_seen;
} flags;

#define U(field) .dest = &(field), .width = sizeof(field)

static void kvd_cluster_config(const kvd_config *c, cluster_config *cc)
{
    memset(cc, 0, sizeof *cc);
    cc->group = c->cluster_group;
    cc->etcd = c->etcd_urls;
    cc->node_id = c->node_id;
    cc->advertise = c->advertise;
    cc->async = c->replication == 1;
    cc->lease_ttl_s = c->lease_ttl_s;
}

static void parse_flags(int argc, char **argv, kvd_config *c)
{
    static flags f;
    f.c = c;
    const rcu_opt opts[] = {
        {"dir", 'd', RCU_OPT_STRING, &c->dir, .meta = "PATH", .help = "data directory"},
        {"listen", 'l', RCU_OPT_STRING, &c->listen, .meta = "HOST:PORT",
         .help = "address to listen on ([v6]:PORT for IPv6; port 0 picks a free one)"},
        {"sync", 0, RCU_OPT_FUNC, &c->engine, .meta = "always|interval:MS|none",
         .parse = parse_sync, .show = show_sync,
         .help = "durability of acknowledged writes: always = on stable storage; interval:MS = "
                 "in the kernel, fdatasync at least every MS ms; none = in the kernel"},
        {"default-bucket", 0, RCU_OPT_STRING, &c->default_bucket, .meta = "NAME",
         .help = "create NAME if missing, open to clients without credentials"},
        {"admin-token-file", 0, RCU_OPT_STRING, &c->admin_token_file, .meta = "FILE",
         .help = "file whose first line is the server admin token (bucket creation, "
                 "/admin/backup)"},
        {"max-value", 0, RCU_OPT_SIZE, U(c->max_value), .min = 1, .max = RC_VALUE_MAX,
         .help = "largest value"},
        {"max-batch-bytes", 0, RCU_OPT_SIZE, U(c->max_batch_bytes), .min = 1024, .max = 1ull << 32,
         .help = "largest batch body"},
        {"threads", 0, RCU_OPT_INT, U(c->threads), .min = 1, .max = 1024,
         .def = "4 x cores, at least 8 (16 with --sync always)", .help = "HTTP worker threads"},
        {"max-connections", 0, RCU_OPT_INT, U(c->max_connections), .min = 1, .max = 1000000,
         .help = "concurrent connections"},
        {"max-connections-per-ip", 0, RCU_OPT_INT, U(c->max_connections_per_ip), .max = 1000000,
         .help = "concurrent connections from one address, so that one client cannot take "
                 "them all (0: no limit besides --max-connections)"},
        {"timeout", 0, RCU_OPT_DURATION, U(c->conn_timeout_s), .min = 1, .max = 86400,
         .unit_ms = 1000, .store_ms = 1000, .meta = "SECONDS",
         .help = "close idle or stalled connections after this"},
        {"max-header-bytes", 0, RCU_OPT_SIZE, U(c->max_header_bytes), .min = 4096, .max = 16u << 20,
         .help = "request line + headers per connection"},
        {"max-waiters", 0, RCU_OPT_INT, U(c->max_waiters), .min = 1, .max = 1000000,
         .help = "requests parked at once by ?wait= and /admin/backup?wait= (each also holds a "
                 "connection): past it 503 with Retry-After"},
        {"shutdown-grace", 0, RCU_OPT_DURATION, U(c->shutdown_grace_s), .max = 3600,
         .unit_ms = 1000, .store_ms = 1000, .meta = "SECONDS",
         .help = "how long SIGTERM waits for in-flight requests"},
        {"script-instructions", 0, RCU_OPT_INT, U(c->script_instructions), .min = 1000,
         .max = 1ull << 40, .help = "instruction budget of a script run"},
        {"script-memory", 0, RCU_OPT_SIZE, U(c->script_memory), .min = 64 * 1024, .max = 1ull << 34,
         .help = "memory cap of a script run"},
        {"script-timeout", 0, RCU_OPT_DURATION, U(c->script_timeout_ms), .min = 1, .max = 3600000,
         .unit_ms = 1, .store_ms = 1, .meta = "MS", .help = "wall-clock cap of a script run"},
        {"append-io", 0, RCU_OPT_ENUM, &c->engine.append_io, .choices = append_ios,
         .help = "how writes reach the segment file: uring = one O_DIRECT io_uring write "
                 "per group commit, then fdatasync (needs --sync always); pwrite = the same "
                 "blocks with one pwritev2(RWF_DSYNC) instead of the ring (needs --sync "
                 "always); mmap = a shared mapping and fdatasync; auto = uring with --sync "
                 "always where the kernel allows it"},
        {"segment-bytes", 0, RCU_OPT_SIZE, U(c->engine.segment_bytes), .min = 4096,
         .max = 1ull << 40, .seen = &f.segment_bytes_seen, .help = "segment rotation size"},
        {"merge-threshold", 0, RCU_OPT_INT, U(c->engine.merge_dead_pct), .min = 1, .max = 100,
         .meta = "PCT", .help = "dead percentage that makes a segment a merge candidate"},
        {"tombstone-retention", 0, RCU_OPT_DURATION, U(c->engine.tombstone_retention_ms),
         .max = 100ull * 365 * 86400 * 1000, .unit_ms = 1000, .store_ms = 1, .meta = "SECONDS",
         .help = "how long merge keeps tombstones"},
        {"log-level", 0, RCU_OPT_ENUM, &c->log_level, .choices = log_levels,
         .help = "how much to log; info: one line per request"},
        {"log-format", 0, RCU_OPT_ENUM, &c->log_format, .choices = log_formats,
         .help = "log lines as text or as JSON objects"},
        {"log-file", 0, RCU_OPT_STRING, &c->log_file, .meta = "FILE", .def = "stderr",
         .help = "append the log to FILE; SIGHUP reopens it (for logrotate)"},
        {"metrics-token-file", 0, RCU_OPT_STRING, &c->metrics_token_file, .meta = "FILE",
         .help = "GET /metrics needs the token in FILE's first line (or the admin token)"},
        {"max-response-bytes", 0, RCU_OPT_SIZE, U(c->max_response_bytes), .min = 64 * 1024,
         .max = 1ull << 40,
         .help = "memory one request may hold for its answer, and for its body's parsed JSON "
                 "(at least --max-value): past it 413"},
        {"max-inflight-bytes", 0, RCU_OPT_SIZE, U(c->max_inflight_bytes), .max = 1ull << 42,
         .help = "memory all requests together may hold for answers, bodies and parsed JSON (0: "
                 "no limit): past it 503 with Retry-After"},
        {"allow-anonymous-buckets", 0, RCU_OPT_BOOL, &c->allow_anonymous_buckets,
         .help = "without --admin-token-file: let clients without credentials create buckets "
                 "(default off: 403)"},
        {"bucket-create-rate", 0, RCU_OPT_INT, U(c->bucket_create_per_min), .max = 1000000,
         .help = "buckets one address may create per minute without the admin token (0: no "
                 "limit)"},
        {"max-buckets", 0, RCU_OPT_INT, U(c->max_buckets), .max = 1ull << 24,
         .help = "buckets in all (0: no limit)"},
        {"strict", 0, RCU_OPT_BOOL, &c->engine.strict,
         .help = "refuse to start when recovery would drop acknowledged data (a cut or corrupt "
                 "segment); without it the data is dropped and each file logged"},
        {"backup-to", 0, RCU_OPT_STRING, &c->backup_to, .meta = "s3://BUCKET/PREFIX",
         .help = "ship backups continuously to an S3-compatible object store (AWS_* "
                 "environment: see kvdump --help)"},
        {"backup-every", 0, RCU_OPT_DURATION, U(c->backup_every_ms), .min = 0,
         .max = 366ull * 86400 * 1000, .unit_ms = 1000, .store_ms = 1, .meta = "DURATION",
         .flags = RCU_OPT_NODEFAULT,
         .help = "how often to ship (needed with --backup-to; 0: not set)"},
        {"backup-keep-full", 0, RCU_OPT_INT, U(c->backup_keep_full), .min = 1, .max = 1000,
         .meta = "N", .help = "full backups kept in the store, each with its incrementals"},
        {"cluster", 0, RCU_OPT_STRING, &c->cluster_group, .meta = "GROUP",
         .help = "serve as a member of replica group GROUP, led by whichever member etcd elects "
                 "(needs --etcd, --node-id, --advertise and --admin-token-file)"},
        {"etcd", 0, RCU_OPT_STRING, &c->etcd_urls, .meta = "URL[,URL...]",
         .help = "etcd's client URLs (v3 API; with --cluster)"},
        {"node-id", 0, RCU_OPT_STRING, &c->node_id, .meta = "ID",
         .help = "this member's id in the group, unique in it (with --cluster)"},
        {"advertise", 0, RCU_OPT_STRING, &c->advertise, .meta = "URL",
         .help = "the URL other members and redirected clients reach this node at, "
                 "http://HOST:PORT (with --cluster)"},
        {"replication", 0, RCU_OPT_ENUM, &c->replication, .choices = replications,
         .help = "sync: a write is acknowledged once the sync standby applied it too; async: "
                 "once durable on the leader (a failover may lose the lag)"},
        {"lease-ttl", 0, RCU_OPT_DURATION, U(c->lease_ttl_s), .min = 2, .max = 3600,
         .unit_ms = 1000, .store_ms = 1000, .meta = "SECONDS",
         .help = "etcd lease of a member: a dead leader is replaced after about this long"},
        {"config", 'c', RCU_OPT_STRING, &f.config, .meta = "FILE", .flags = RCU_OPT_NOCONFIG,
         .help = "read settings from FILE (INI: 'name = value' with the long names above, "
                 "optionally under [kvd]); flags given too override it"},
        {"print-config", 0, RCU_OPT_BOOL, &f.print_config, .flags = RCU_OPT_NOCONFIG,
         .help = "print the effective settings in config-file syntax and exit"},
        {0},
    };
    const rcu_opt_prog prog = {
        .name = "kvd",
        .usage = "[OPTIONS]",
        .about = "The ringcask HTTP key-value server. It prints one line when ready to serve\n"
                 "and exits 0 after a graceful SIGTERM or SIGINT.\n",
        .epilog = "Sizes accept K, M, G suffixes (powers of 1024); durations a unit (250ms, 30s,\n"
                  "10m, 2h, 7d) besides the bare number of the unit shown.\n"
                  "Exit status: 0 ok, 2 usage error, 3 failure.\n",
        .opts = opts,
        .max_operands = 0,
        .version_extra = kvd_build_describe,
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
    /* one address holding every connection (idle, or trickling a header
     * byte at a time past --timeout) would lock every other client out */
    c->max_connections_per_ip = 256;
    c->conn_timeout_s = 30;
    c->max_header_bytes = 32 * 1024;
    c->shutdown_grace_s = 10;
    c->max_waiters = 10000;
    c->script_instructions = 10000000;
    c->script_memory = 16u << 20;
    c->script_timeout_ms = 1000;
    c->log_level = LOG_INFO;
    c->max_response_bytes = 128u << 20;
    c->max_inflight_bytes = 512u << 20;
    c->bucket_create_per_min = 30;
    c->max_buckets = 100000;
    c->backup_keep_full = 2;
    c->lease_ttl_s = 5;
    /* the config file first, then every flag over it */
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        const char *cfg = NULL;
        if ((strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "-c") == 0) && i + 1 < argc)
            cfg = argv[++i];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            cfg = argv[i] + 9;
        int rc = cfg != NULL ? rcu_opt_load_ini(&prog, cfg, "kvd") : 0;
        if (rc != 0)
            exit(rc);
    }
    int rc = rcu_opt_parse(&prog, argc, argv, NULL);
    if (rc != RCU_OPT_GO_ON)
        exit(rc);
    if (c->log_file != NULL && c->log_file[0] == '\0') {
        fprintf(stderr, "kvd: --log-file: needs a file name (see kvd --help)\n");
        exit(EXIT_USAGE);
    }
    if (c->default_bucket != NULL &&
        (!rcu_bucket_name_valid(c->default_bucket, strlen(c->default_bucket)) ||
         rcu_bucket_name_reserved(c->default_bucket, strlen(c->default_bucket)))) {
        fprintf(stderr, "kvd: --default-bucket: '%s' is not a valid bucket name (see kvd --help)\n",
                c->default_bucket);
        exit(EXIT_USAGE);
    }
    if (c->max_response_bytes < c->max_value) {
        fprintf(stderr,
                "kvd: --max-response-bytes: %llu is below --max-value %llu: a GET of the largest "
                "value could never be answered (see kvd --help)\n",
                (unsigned long long)c->max_response_bytes, (unsigned long long)c->max_value);
        exit(EXIT_USAGE);
    }
    if (c->max_inflight_bytes != 0 && c->max_inflight_bytes < c->max_response_bytes) {
        fprintf(stderr,
                "kvd: --max-inflight-bytes: %llu is below --max-response-bytes %llu (see kvd "
                "--help)\n",
                (unsigned long long)c->max_inflight_bytes,
                (unsigned long long)c->max_response_bytes);
        exit(EXIT_USAGE);
    }
    if (c->backup_to != NULL && strncmp(c->backup_to, "s3://", 5) != 0) {
        fprintf(stderr,
                "kvd: --backup-to: expected s3://BUCKET/PREFIX, got '%s' (see kvd --help)\n",
                c->backup_to);
        exit(EXIT_USAGE);
    }
    if (c->backup_every_ms != 0 && c->backup_every_ms < 100) {
        fprintf(stderr, "kvd: --backup-every: at least 100ms (see kvd --help)\n");
        exit(EXIT_USAGE);
    }
    if ((c->backup_to != NULL) != (c->backup_every_ms != 0)) {
        fprintf(stderr, "kvd: %s (see kvd --help)\n",
                c->backup_to ? "--backup-to: needs --backup-every DURATION"
                             : "--backup-every: goes with --backup-to");
        exit(EXIT_USAGE);
    }
    char cwhy[300];
    cluster_config cc;
    kvd_cluster_config(c, &cc);
    if (cluster_config_check(&cc, cwhy, sizeof cwhy) != 0) {
        fprintf(stderr, "kvd: %s (see kvd --help)\n", cwhy);
        exit(EXIT_USAGE);
    }
    if (f.segment_bytes_seen)
        c->engine.merge_dead_bytes = c->engine.segment_bytes / 2;
    if (c->threads == 0) {
        /* A durable PUT or DELETE no longer holds its thread for the
         * fdatasync: the connection is suspended until its group commit is
         * durable (durable.c), so a few threads carry hundreds of waiting
         * writers. PATCH, batches and scripts still wait on their thread
         * under --sync always, and only writers waiting at the same moment
         * share a sync: 16 threads keep that grouping for them. Other modes
         * never wait for the disk: 4 x cores, at least 8. */
        c->threads = (unsigned)(cores > 0 ? cores * 4 : 8);
        if (c->threads < 8)
            c->threads = 8;
        if (c->engine.sync == RC_SYNC_ALWAYS && c->threads < 16)
            c->threads = 16;
    }
    /* libmicrohttpd splits the connection limit among its threads */
    if (c->threads > c->max_connections)
        c->threads = c->max_connections;
    if (f.print_config) {
        printf("# kvd settings (kvd --print-config); read back with kvd --config FILE\n");
        rcu_opt_print_config(&prog, stdout);
        exit(fflush(stdout) == 0 ? 0 : EXIT_FAILURE_RUNTIME);
    }
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
    if (rc == 0) {
        rc = p.public_perms != PERM_ALL ? (p.public_perms = PERM_ALL, policy_update(srv, &p)) : 0;
        policy_release(srv, &p);
    } else if (rc == RC_ENOTFOUND) {
        char key[BUCKET_KEY_TEXT_MAX + 1];
        rc = policy_create(srv, name, 0, PERM_ALL, key);
        sodium_memzero(key, sizeof key);
        if (rc == 0)
            kvd_log(LOG_INFO, "created the default bucket %s", name);
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

/* A replica group writes node-local things on the leader only, as it
 * becomes the leader (cluster.h on_promote). */
static bool listen_loopback;
static void on_promote(kvd *srv)
{
    if (srv->cfg.default_bucket == NULL)
        return;
    int rc = ensure_default_bucket(srv, srv->cfg.default_bucket, listen_loopback);
    if (rc != 0)
        kvd_log(LOG_ERROR, "--default-bucket %s: %s", srv->cfg.default_bucket, rc_strerror(rc));
}

/* After a re-clone (cluster_repl.c): put the clone in place of the data
 * directory and start this same program again on it, with the same
 * arguments and pid. */
static void restart_on_clone(char **argv, const char *dir)
{
    char why[300], self[4096];
    if (cluster_dir_finish_reclone(dir, why, sizeof why) < 0) {
        fprintf(stderr, "kvd: --cluster: %s\n", why);
        return;
    }
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = '\0';
    execv(n > 0 ? self : "/proc/self/exe", argv);
    execvp(argv[0], argv); /* the binary was replaced (an upgrade): its new version */
    fprintf(stderr, "kvd: --cluster: cannot restart after the re-clone: %s\n", strerror(errno));
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

/* One line per segment file recovery dropped bytes from (rc_damage_report). */
static void log_damage(rc_db *db)
{
    rc_damage *d = NULL;
    size_t n = 0;
    if (rc_damage_report(db, &d, &n) != 0)
        return;
    for (size_t i = 0; i < n; i++)
        kvd_log(d[i].torn_tail ? LOG_WARN : LOG_ERROR,
                "recovery dropped %llu bytes of %08llu.data at offset %llu: %s",
                (unsigned long long)d[i].bytes, (unsigned long long)d[i].segment_id,
                (unsigned long long)d[i].offset,
                d[i].torn_tail ? "a torn tail (the last writes before a crash)"
                               : "acknowledged data lost to a cut or damaged file "
                                 "(--strict refuses to start instead)");
    rc_damage_free(d);
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
    json_cap_install(); /* before Jansson allocates anything */
    kvd srv;
    memset(&srv, 0, sizeof srv);
    /* the parser reorders argv; a re-clone restarts with the original */
    char **args = calloc((size_t)argc + 1, sizeof *args);
    if (args == NULL)
        return EXIT_FAILURE_RUNTIME;
    memcpy(args, argv, (size_t)argc * sizeof *args);
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
    bool scripts_ready = false, reclone = false;

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
    sigaddset(&stop, SIGUSR1); /* a replica group's re-clone is ready */
#ifdef RC_FAULT_INJECTION
    sigaddset(&stop, SIGUSR2); /* test builds: fail every fdatasync from now on */
#endif
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    char shown[INET6_ADDRSTRLEN + 16];
    bool loopback = false;
    listen_fd = bind_listen(srv.cfg.listen, shown, sizeof shown, &loopback);
    if (listen_fd < 0)
        goto fail;
    listen_loopback = loopback;
    cluster_config cc;
    kvd_cluster_config(&srv.cfg, &cc);
    cc.on_promote = on_promote;
    if (cc.group != NULL) {
        char why[300];
        if (cluster_dir_finish_reclone(srv.cfg.dir, why, sizeof why) < 0) {
            fprintf(stderr, "kvd: --cluster: %s\n", why);
            goto fail;
        }
    }

    uint64_t t0 = kvd_mono_ns();
    int rc = rc_open(srv.cfg.dir, &srv.cfg.engine, &srv.db);
    if (rc != 0) {
        const char *detail = rc_last_error_message();
        fprintf(stderr, "kvd: --dir %s: %s%s%s\n", srv.cfg.dir, rc_strerror(rc),
                detail[0] ? ": " : "", detail);
        goto fail;
    }
    uint64_t open_ms = (kvd_mono_ns() - t0) / 1000000u;
    log_damage(srv.db);
    if (cc.group != NULL && cluster_start(&srv, &cc) != 0)
        goto fail;
    rc = policy_store_open(&srv);
    if (rc != 0) {
        fprintf(stderr, "kvd: --dir %s: cannot open the system keyspace: %s\n", srv.cfg.dir,
                rc_strerror(rc));
        goto fail;
    }
    srv.metrics = metrics_new();
    if (srv.metrics == NULL || bucket_limits_init(&srv) != 0)
        goto fail;
    if (srv.cfg.default_bucket != NULL && srv.cluster == NULL) {
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
    if (srv.cfg.backup_to != NULL &&
        backup_shipper_start(&srv, srv.cfg.backup_to, srv.cfg.backup_every_ms,
                             srv.cfg.backup_keep_full, &srv.shipper) != 0)
        goto fail;
    srv.park = park_new(srv.cfg.max_waiters);
    srv.feed = srv.park != NULL ? feed_start(&srv) : NULL;
    if (srv.feed == NULL) {
        fprintf(stderr, "kvd: cannot start the change feed: %s\n", strerror(errno));
        goto fail;
    }
    daemon = http_start(&srv, listen_fd);
    if (daemon == NULL) {
        fprintf(stderr, "kvd: --listen %s: the HTTP server did not start\n", srv.cfg.listen);
        goto fail;
    }
    if (cluster_serve(&srv) != 0) {
        fprintf(stderr, "kvd: --cluster: cannot start replication\n");
        goto fail;
    }
    if (!loopback && srv.admin_token == NULL && srv.cfg.allow_anonymous_buckets)
        kvd_log(LOG_WARN, "--allow-anonymous-buckets: any client can create buckets on a "
                          "non-loopback address (give --admin-token-file to restrict it)");
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
        if (sig == SIGUSR1 && !cluster_reclone_ready(&srv))
            continue;
#ifdef RC_FAULT_INJECTION
        if (sig == SIGUSR2) {
            /* the system tests' flush failure: the engine's fault seam makes
             * every later fdatasync fail with EIO */
            rc_fault_arm(FAULT_SYNC, 0, 1000000000u, EIO);
            kvd_log(LOG_WARN, "SIGUSR2: every fdatasync fails from now on (fault injection)");
            continue;
        }
#endif
        if (sig != SIGHUP)
            break;
        reopen_log();
    }
    if (sig == SIGUSR1)
        reclone = true;
    else
        kvd_log(LOG_INFO, "%s: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    atomic_store(&srv.shutting_down, true);
    MHD_socket lfd = MHD_quiesce_daemon(daemon);
    if (lfd != MHD_INVALID_SOCKET) {
        close(lfd);
        listen_fd = -1;
    }
    park_shutdown(srv.park); /* parked requests answer now, new ones do not park */
    wait_in_flight(&srv);
    /* a write the engine still completes resumes its connection: the
     * daemon must outlive every such callback */
    durable_drain(&srv);
    park_shutdown(srv.park); /* (none can be suspended when the daemon stops) */
    MHD_stop_daemon(daemon);
    daemon = NULL;
    status = 0;
fail:
    if (daemon != NULL) {
        park_shutdown(srv.park);
        MHD_stop_daemon(daemon);
    }
    if (listen_fd >= 0)
        close(listen_fd);
    cluster_stop(&srv); /* steps down: another member leads at once */
    backup_shipper_stop(srv.shipper);
    srv.shipper = NULL;
    if (scripts_ready)
        route_scripts_shutdown(&srv);
    policy_store_close(&srv);
    feed_stop(&srv, srv.feed);
    srv.feed = NULL;
    park_free(srv.park);
    srv.park = NULL;
    if (srv.db != NULL) {
        int crc = rc_close(srv.db);
        if (crc != 0) {
            kvd_log(LOG_ERROR, "closing the engine: %s", rc_strerror(crc));
            status = EXIT_FAILURE_RUNTIME;
        }
    }
    metrics_free(srv.metrics);
    bucket_limits_free(&srv);
    free(srv.admin_token);
    free(srv.metrics_token);
    if (status == 0 && reclone) {
        restart_on_clone(args, srv.cfg.dir);
        return EXIT_FAILURE_RUNTIME;
    }
    free(args);
    if (status == 0)
        kvd_log(LOG_INFO, "stopped");
    return status;
}
