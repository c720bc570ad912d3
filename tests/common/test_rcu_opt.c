/*
 * test_rcu_opt.c — the option table parser (common/rcu_opt.h): GNU-style
 * scanning, each value kind, usage errors, --help from the table, and the
 * config file round trip (print_config -> load_ini gives the same values).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rcu_opt.h"

typedef struct cfg {
    const char *dir;
    bool json;
    uint32_t threads;
    uint64_t bytes;
    uint64_t ttl_ms;
    uint32_t grace_s;
    int level;
    bool threads_seen;
} cfg;

static const char *const levels[] = {"error", "warn", "info", NULL};
static cfg c;
static rcu_opt opts[16];
static rcu_opt_prog prog;

static void setup(void)
{
    c = (cfg){.dir = "./data",
              .threads = 4,
              .bytes = 1 << 20,
              .ttl_ms = 60000,
              .grace_s = 10,
              .level = 2};
    const rcu_opt o[] = {
        {"dir", 'd', RCU_OPT_STRING, &c.dir, .meta = "PATH", .help = "data directory"},
        {"json", 'j', RCU_OPT_BOOL, &c.json, .help = "JSON output"},
        {"threads", 't', RCU_OPT_INT, &c.threads, sizeof c.threads, .min = 1, .max = 64,
         .seen = &c.threads_seen, .help = "worker threads"},
        {"bytes", 0, RCU_OPT_SIZE, &c.bytes, sizeof c.bytes, .min = 4096, .help = "a size"},
        {"ttl", 0, RCU_OPT_DURATION, &c.ttl_ms, sizeof c.ttl_ms, .unit_ms = 1000, .store_ms = 1,
         .help = "a duration in ms, bare seconds"},
        {"grace", 0, RCU_OPT_DURATION, &c.grace_s, sizeof c.grace_s, .unit_ms = 1000,
         .store_ms = 1000, .max = 3600, .help = "whole seconds"},
        {"level", 0, RCU_OPT_ENUM, &c.level, .choices = levels, .help = "log level"},
        {"only-flag", 0, RCU_OPT_BOOL, &c.json, .flags = RCU_OPT_NOCONFIG, .help = "not in files"},
        {0},
    };
    memcpy(opts, o, sizeof o);
    prog =
        (rcu_opt_prog){.name = "t", .usage = "[OPTIONS] FILE...", .opts = opts, .max_operands = 8};
}

TestSuite(rcu_opt, .init = setup);

/* parse a NULL-terminated list; returns the status, operands in *ARGV_OUT */
static int parse(int *nops, char **argv_out, ...)
{
    static char *argv[32];
    va_list ap;
    int argc = 0;
    argv[argc++] = "t";
    va_start(ap, argv_out);
    for (char *a = va_arg(ap, char *); a; a = va_arg(ap, char *))
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    int rc = rcu_opt_parse(&prog, argc, argv, nops);
    for (int i = 0; i < argc; i++)
        argv_out[i] = argv[i];
    return rc;
}

Test(rcu_opt, options_anywhere_and_both_value_forms)
{
    char *out[32];
    int n = -1;
    cr_assert_eq(parse(&n, out, "a", "--dir", "/x", "b", "--threads=8", "-j", "c", NULL),
                 RCU_OPT_GO_ON);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(out[1], "a");
    cr_assert_str_eq(out[2], "b");
    cr_assert_str_eq(out[3], "c");
    cr_assert_str_eq(c.dir, "/x");
    cr_assert_eq(c.threads, 8);
    cr_assert(c.threads_seen);
    cr_assert(c.json);
}

Test(rcu_opt, double_dash_ends_options_and_negative_numbers_are_operands)
{
    char *out[32];
    int n = -1;
    cr_assert_eq(parse(&n, out, "-5", "--", "--dir", "-j", NULL), RCU_OPT_GO_ON);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(out[1], "-5");
    cr_assert_str_eq(out[2], "--dir");
    cr_assert_str_eq(out[3], "-j");
    cr_assert_str_eq(c.dir, "./data");
    cr_assert(!c.json);
}

Test(rcu_opt, short_options_cluster_and_attach)
{
    char *out[32];
    int n = -1;
    cr_assert_eq(parse(&n, out, "-jt16", "-d/y", NULL), RCU_OPT_GO_ON);
    cr_assert(c.json);
    cr_assert_eq(c.threads, 16);
    cr_assert_str_eq(c.dir, "/y");
    cr_assert_eq(n, 0);
}

Test(rcu_opt, value_kinds)
{
    char *out[32];
    int n;
    cr_assert_eq(
        parse(&n, out, "--bytes", "2M", "--ttl", "90", "--grace", "2m", "--level", "warn", NULL),
        RCU_OPT_GO_ON);
    cr_assert_eq(c.bytes, 2u << 20);
    cr_assert_eq(c.ttl_ms, 90000);
    cr_assert_eq(c.grace_s, 120);
    cr_assert_eq(c.level, 1);
    cr_assert_eq(parse(&n, out, "--ttl", "250ms", "--bytes", "8k", "--json=false", NULL),
                 RCU_OPT_GO_ON);
    cr_assert_eq(c.ttl_ms, 250);
    cr_assert_eq(c.bytes, 8192);
    cr_assert(!c.json);
}

Test(rcu_opt, usage_errors_return_2_and_change_nothing_after)
{
    char *out[32];
    int n;
    const char *bad[][3] = {
        {"--threads", "x", NULL},  {"--threads", "0", NULL},     {"--threads", "65", NULL},
        {"--bytes", "12Q", NULL},  {"--bytes", "1K", NULL},      {"--grace", "500ms", NULL},
        {"--level", "loud", NULL}, {"--bogus", NULL, NULL},      {"-x", NULL, NULL},
        {"--threads", NULL, NULL}, {"--json=maybe", NULL, NULL}, {"--grace", "2h", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(parse(&n, out, bad[i][0], bad[i][1], bad[i][2], NULL), RCU_OPT_USAGE, "%s %s",
                     bad[i][0], bad[i][1] ? bad[i][1] : "");
    prog.max_operands = 1;
    cr_expect_eq(parse(&n, out, "a", "b", NULL), RCU_OPT_USAGE);
}

Test(rcu_opt, help_comes_from_the_table_with_defaults)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    rcu_opt_print_help(&prog, f);
    fclose(f);
    cr_assert(strstr(text, "Usage: t [OPTIONS] FILE...") != NULL, "%s", text);
    cr_assert(strstr(text, "  -d, --dir PATH") != NULL, "%s", text);
    cr_assert(strstr(text, "(default: ./data)") != NULL, "%s", text);
    cr_assert(strstr(text, "--bytes BYTES") != NULL, "%s", text);
    cr_assert(strstr(text, "(default: 1M)") != NULL, "%s", text);
    cr_assert(strstr(text, "--level error|warn|info") != NULL, "%s", text);
    cr_assert(strstr(text, "--ttl DURATION") != NULL && strstr(text, "(default: 60)"), "%s", text);
    cr_assert(strstr(text, "  -h, --help") != NULL, "%s", text);
    cr_assert(strstr(text, "--version") != NULL, "%s", text);
    free(text);
}

Test(rcu_opt, help_wins_wherever_it_is)
{
    char *out[32];
    int n;
    FILE *saved = stdout;
    stdout = fopen("/dev/null", "w");
    int rc = parse(&n, out, "--threads", "x", "--help", NULL);
    fclose(stdout);
    stdout = saved;
    cr_assert_eq(rc, 0);
}

Test(rcu_opt, config_round_trip)
{
    char path[] = "/tmp/rcu_opt_cfgXXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    FILE *f = fdopen(fd, "w");
    char *out[32];
    int n;
    cr_assert_eq(parse(&n, out, "--dir", "/srv/data", "--bytes", "3G", "--ttl", "1500ms", "--grace",
                       "7", "--level", "error", "--threads", "9", "--json", NULL),
                 RCU_OPT_GO_ON);
    rcu_opt_print_config(&prog, f);
    fclose(f);
    cfg want = c;
    setup();
    cr_assert_eq(rcu_opt_load_ini(&prog, path, "t"), 0);
    cr_assert_str_eq(c.dir, want.dir);
    cr_assert_eq(c.bytes, want.bytes);
    cr_assert_eq(c.ttl_ms, want.ttl_ms);
    cr_assert_eq(c.grace_s, want.grace_s);
    cr_assert_eq(c.level, want.level);
    cr_assert_eq(c.threads, want.threads);
    cr_assert_eq(c.json, want.json);
    unlink(path);
}

static int load_text(const char *text)
{
    char path[] = "/tmp/rcu_opt_cfgXXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    int rc = rcu_opt_load_ini(&prog, path, "t");
    unlink(path);
    return rc;
}

Test(rcu_opt, config_file_errors)
{
    cr_expect_eq(load_text("[t]\nthreads = 3\n; comment\n# comment\n"), 0);
    cr_expect_eq(c.threads, 3);
    cr_expect_eq(load_text("threads = many\n"), RCU_OPT_USAGE);
    cr_expect_eq(load_text("nosuch = 1\n"), RCU_OPT_USAGE);
    cr_expect_eq(load_text("only-flag = true\n"), RCU_OPT_USAGE);
    cr_expect_eq(load_text("[other]\nthreads = 3\n"), RCU_OPT_USAGE);
    cr_expect_eq(load_text("this is not ini\n"), RCU_OPT_USAGE);
    cr_expect_eq(rcu_opt_load_ini(&prog, "/nonexistent/file.conf", "t"), RCU_OPT_USAGE);
}
