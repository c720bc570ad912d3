/*
 * test_kv_cmds.c — kv as a redis-cli or etcdctl user drives it: options
 * anywhere, --ttl 0, the newline on a terminal, --limit 0, and the commands
 * for what kvd already does (setnx, getset, append, --if-match, ttl,
 * bucket info / rotate, backup). Real kv against a real kvd.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_kv.h"

TestSuite(kv_cmds, .init = start_kvd, .fini = stop_kvd, .timeout = 120);

/* stdout of "kv ARGS" without its final newline (caller frees) */
static char *line_of(tp_result *r)
{
    return strndup(r->out, strcspn(r->out, "\n"));
}

Test(kv_cmds, options_after_the_operands)
{
    tp_result r = kv("incr", "visits", "--bucket", "default");
    expect(r, 0, "1\n");
    tp_result_free(&r);
    r = kv("set", "k=v", "--url", kvd.url, "--ttl", "1h");
    expect(r, 0, "Key set\n");
    tp_result_free(&r);
    r = kv("get", "k", "--bucket=default");
    expect(r, 0, "v");
    tp_result_free(&r);
    r = kv("incr", "visits", "-5");
    expect(r, 0, "-4\n");
    tp_result_free(&r);
    r = kv("get", "--", "--not-an-option");
    cr_expect_eq(r.status, 1, "'--' ends the options: %d %s", r.status, r.err);
    tp_result_free(&r);
}

Test(kv_cmds, ttl_zero_means_no_expiry_and_ttl_reads_it)
{
    tp_result r = kv("set", "--ttl", "1h", "t=1");
    expect(r, 0, NULL);
    tp_result_free(&r);
    r = kv("ttl", "t");
    expect(r, 0, NULL);
    long left = atol(r.out);
    cr_expect(left > 3500 && left <= 3600, "ttl %ld", left);
    tp_result_free(&r);
    r = kv("set", "t=2", "--ttl", "0");
    expect(r, 0, "Key set\n");
    tp_result_free(&r);
    r = kv("ttl", "t");
    expect(r, 0, "-1\n");
    tp_result_free(&r);
    /* the same in a multi-key (batch) set */
    r = kv("set", "--ttl", "10m", "b1=1", "b2=2");
    expect(r, 0, "Keys set\n");
    tp_result_free(&r);
    r = kv("set", "--ttl", "0", "b1=1", "b2=2");
    expect(r, 0, "Keys set\n");
    tp_result_free(&r);
    r = kv("ttl", "b2");
    expect(r, 0, "-1\n");
    tp_result_free(&r);
    r = kv("ttl", "nothere");
    cr_expect_eq(r.status, 1, "absent: %d %s", r.status, r.err);
    cr_expect(strstr(r.err, "'nothere'") != NULL, "%s", r.err);
    tp_result_free(&r);
}

/* Run kv under a pseudo-terminal: what a user at a shell sees. */
static char *run_on_a_tty(char *const argv[])
{
    int master;
    pid_t pid = forkpty(&master, NULL, NULL, NULL);
    cr_assert(pid >= 0);
    if (pid == 0) {
        char env_bucket[] = "KV_BUCKET=", env_key[] = "KV_KEY=";
        putenv(kvd.env_url);
        putenv(env_bucket);
        putenv(env_key);
        execv(argv[0], argv);
        _exit(127);
    }
    char buf[4096];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(master, buf + len, sizeof buf - 1 - len);
        if (n <= 0)
            break; /* EIO once the child is gone */
        len += (size_t)n;
    }
    int st;
    waitpid(pid, &st, 0);
    close(master);
    buf[len] = '\0';
    return strdup(buf);
}

Test(kv_cmds, get_ends_with_a_newline_on_a_terminal_only)
{
    tp_result r = kv("set", "greeting=hello");
    expect(r, 0, NULL);
    tp_result_free(&r);
    char *argv[] = {KV_BIN, "get", "greeting", NULL};
    char *seen = run_on_a_tty(argv);
    cr_expect_str_eq(seen, "hello\r\n"); /* the terminal maps \n to \r\n */
    free(seen);
    r = kv("get", "greeting"); /* a pipe: byte for byte */
    expect(r, 0, "hello");
    tp_result_free(&r);
}

Test(kv_cmds, limit_zero_is_refused_as_http_refuses_it)
{
    tp_result r = kv("ls", "--limit", "0");
    cr_expect_eq(r.status, 2, "%d %s", r.status, r.err);
    cr_expect(strstr(r.err, "--limit") != NULL, "%s", r.err);
    tp_result_free(&r);
}

Test(kv_cmds, setnx_sets_only_absent_keys)
{
    tp_result r = kv("setnx", "n=1");
    expect(r, 0, "Key set\n");
    tp_result_free(&r);
    r = kv("setnx", "n=2");
    cr_expect_eq(r.status, 6, "present: %d %s", r.status, r.err);
    tp_result_free(&r);
    r = kv("get", "n");
    expect(r, 0, "1");
    tp_result_free(&r);
    r = kv("setnx", "m=3", "n=4"); /* all or none */
    cr_expect_eq(r.status, 6, "%d %s", r.status, r.err);
    cr_expect(strstr(r.err, "'n'") != NULL, "names the key: %s", r.err);
    tp_result_free(&r);
    r = kv("get", "m");
    cr_expect_eq(r.status, 1, "m was not set: %d", r.status);
    tp_result_free(&r);
    r = kv("set", "--if-absent", "m=5");
    expect(r, 0, "Key set\n");
    tp_result_free(&r);
}

Test(kv_cmds, getset_prints_the_previous_value)
{
    tp_result r = kv("getset", "g=one");
    cr_expect_eq(r.status, 1, "absent before: %d %s", r.status, r.err);
    cr_expect_eq(r.out_len, 0);
    tp_result_free(&r);
    r = kv("getset", "g=two");
    expect(r, 0, "one");
    tp_result_free(&r);
    r = kv("get", "g");
    expect(r, 0, "two");
    tp_result_free(&r);
}

Test(kv_cmds, append_prints_the_new_length)
{
    tp_result r = kv("append", "log=abc");
    expect(r, 0, "3\n");
    tp_result_free(&r);
    r = kv("append", "log=def");
    expect(r, 0, "6\n");
    tp_result_free(&r);
    r = kv("get", "log");
    expect(r, 0, "abcdef");
    tp_result_free(&r);
    r = kv("append", "log");
    cr_expect_eq(r.status, 2);
    tp_result_free(&r);
}

Test(kv_cmds, if_match_on_set_and_del)
{
    tp_result r = kv("set", "doc=v1");
    expect(r, 0, NULL);
    tp_result_free(&r);
    r = kv("get", "--etag", "doc");
    expect(r, 0, NULL);
    char *tag = line_of(&r);
    cr_expect(tag[0] == '"', "etag %s", tag);
    tp_result_free(&r);
    r = kv("set", "--if-match", tag, "doc=v2");
    expect(r, 0, "Key set\n");
    tp_result_free(&r);
    r = kv("set", "--if-match", tag, "doc=v3"); /* the ETag moved on */
    cr_expect_eq(r.status, 6, "stale etag: %d %s", r.status, r.err);
    tp_result_free(&r);
    r = kv("del", "--if-match", tag, "doc");
    cr_expect_eq(r.status, 6, "stale etag: %d %s", r.status, r.err);
    tp_result_free(&r);
    r = kv("get", "doc");
    expect(r, 0, "v2");
    tp_result_free(&r);
    free(tag);
    r = kv("get", "--etag", "doc");
    tag = line_of(&r);
    tp_result_free(&r);
    r = kv("del", "doc", "--if-match", tag);
    expect(r, 0, "");
    tp_result_free(&r);
    free(tag);
    r = kv("set", "--if-match", "\"1\"", "a=1", "b=2");
    cr_expect_eq(r.status, 2, "one key only: %d", r.status);
    tp_result_free(&r);
}

Test(kv_cmds, bucket_info_and_rotate)
{
    tp_result r = kv("bucket", "create", "rot");
    expect(r, 0, NULL);
    char *admin = strndup(strstr(r.out, "admin key: ") + 11, 43);
    tp_result_free(&r);
    r = kv("bucket", "info", "rot", "--key", admin);
    expect(r, 0, NULL);
    cr_expect(strstr(r.out, "bucket: rot\n") != NULL, "%s", r.out);
    cr_expect(strstr(r.out, "signing key version: 1\n") != NULL, "%s", r.out);
    tp_result_free(&r);
    r = kv("--bucket", "rot", "--key", admin, "token", "create", "--perm", "read");
    expect(r, 0, NULL);
    char *token = line_of(&r);
    tp_result_free(&r);
    r = kv("--bucket", "rot", "--key", token, "get", "x");
    cr_expect_eq(r.status, 1, "the token works: %d %s", r.status, r.err);
    tp_result_free(&r);
    r = kv("--bucket", "rot", "--key", admin, "bucket", "rotate");
    expect(r, 0, NULL);
    cr_expect(strstr(r.out, "signing key version: 2\n") != NULL, "%s", r.out);
    tp_result_free(&r);
    r = kv("--bucket", "rot", "--key", token, "get", "x");
    cr_expect_eq(r.status, 4, "revoked: %d %s", r.status, r.err);
    tp_result_free(&r);
    r = kv("--bucket", "rot", "--key", admin, "bucket", "rotate", "--keys", "read");
    expect(r, 0, NULL);
    cr_expect(strstr(r.out, "new read key: ") != NULL, "%s", r.out);
    tp_result_free(&r);
    r = kv("bucket", "info", "rot");
    cr_expect_eq(r.status, 4, "no key: %d %s", r.status, r.err);
    tp_result_free(&r);
    r = kv("bucket", "info", "nosuchbucket");
    cr_expect_eq(r.status, 5, "%d %s", r.status, r.err);
    tp_result_free(&r);
    free(token);
    free(admin);
}

Test(kv_cmds, messages_say_one_thing_once)
{
    tp_result r = kv("bucket", "create", "locked");
    expect(r, 0, NULL);
    tp_result_free(&r);
    r = kv("--bucket", "locked", "get", "k");
    cr_expect_eq(r.status, 4);
    char *first = strstr(r.err, "credential");
    cr_expect(first && !strstr(first + 1, "credential"), "one mention: %s", r.err);
    tp_result_free(&r);
}

/* True when the flag at P is cited as another command's ("kv get --etag",
 * perhaps wrapped over two lines) */
static bool cites_another_command(const char *text, const char *p)
{
    char back[48];
    size_t n = 0;
    for (const char *q = p; q > text && n < sizeof back - 1;) {
        char c = *--q;
        bool space = c == ' ' || c == '\n';
        if (space && n > 0 && back[n - 1] == ' ')
            continue; /* collapse runs of white space */
        back[n++] = space ? ' ' : c;
    }
    /* BACK holds the text before P reversed: " WORD vk" */
    size_t i = 0;
    if (i >= n || back[i++] != ' ')
        return false;
    size_t w = i;
    while (i < n && back[i] >= 'a' && back[i] <= 'z')
        i++;
    return i > w && i + 3 <= n && memcmp(back + i, " vk", 3) == 0;
}

/* True when the flag at P starts an option line of the table ("  --x", "  -x, --x") */
static bool is_option_line(const char *text, const char *p)
{
    const char *line = p;
    while (line > text && line[-1] != '\n')
        line--;
    size_t lead = strspn(line, " ");
    return line + lead == p || (line[lead] == '-' && line + lead + 4 == p);
}

/* every --flag the prose of a kv help text names is a flag that command
 * accepts (the option lines come from the table itself) */
Test(kv_cmds, help_texts_name_flags_that_exist)
{
    const char *cmds[] = {"set",  "setnx", "get",     "getset", "append", "del",    "ls",
                          "incr", "ttl",   "metrics", "bucket", "token",  "script", "backup"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        tp_result r = kv(cmds[i], "--help");
        expect(r, 0, NULL);
        for (const char *p = r.out; (p = strstr(p, "--")) != NULL; p += 2) {
            size_t len = strspn(p + 2, "abcdefghijklmnopqrstuvwxyz-");
            if (len == 0 || cites_another_command(r.out, p) || is_option_line(r.out, p))
                continue;
            char flag[64];
            snprintf(flag, sizeof flag, "--%.*s", (int)len, p + 2);
            if (strcmp(flag, "--admin-token-file") == 0) /* kvd's flag, named as kvd's */
                continue;
            tp_result use = kv(cmds[i], flag);
            cr_expect(strstr(use.err, "unknown option") == NULL, "kv %s --help names %s: %s",
                      cmds[i], flag, use.err);
            tp_result_free(&use);
        }
        tp_result_free(&r);
    }
    tp_result r = kv("bucket", "--help");
    cr_expect(strstr(r.out, "--admin-token-file") != NULL, "%s", r.out);
    cr_expect(strstr(r.out, "--admin-token ") == NULL, "%s", r.out);
    tp_result_free(&r);
}

/* kv backup streams /admin/backup with kvd's admin token */
Test(kv_backup, backup_to_a_file, .timeout = 60)
{
    char *dir = tp_tempdir();
    char token_file[600], out[600];
    snprintf(token_file, sizeof token_file, "%s/admin-token", dir);
    snprintf(out, sizeof out, "%s/backup.rcb", dir);
    const char *token = "s3cret-admin-token-0123456789";
    cr_assert_eq(tp_write_file(token_file, token, strlen(token)), 0);
    char *args[] = {"--admin-token-file", token_file, NULL};
    cr_assert_eq(tp_kvd_start(&kvd, KVD_BIN, false, args), 0);
    tp_result r = kv("set", "a=1", "b=2", "--key", token);
    expect(r, 0, NULL);
    tp_result_free(&r);
    r = kv("backup", "-o", out);
    cr_expect_eq(r.status, 4, "no token: %d %s", r.status, r.err);
    tp_result_free(&r);
    cr_expect_neq(access(out, F_OK), 0, "nothing left behind");
    r = kv("backup", "-o", out, "--key", token);
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.err, "bytes") != NULL, "%s", r.err);
    tp_result_free(&r);
    char *data = NULL;
    long len = tp_read_file(out, &data);
    cr_expect(len > 32, "a stream: %ld bytes", len);
    free(data);
    r = kv("backup", "--key", token); /* stdout (a pipe here) */
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect(r.out_len > 32, "a stream on stdout: %zu bytes", r.out_len);
    tp_result_free(&r);
    tp_kvd_stop(&kvd);
    tp_rmtree(dir);
    free(dir);
}

/* The first ```lua block after MARKER in docs/SCRIPTS.md, written to PATH. */
static void doc_script(const char *marker, const char *path)
{
    char *doc = NULL;
    cr_assert(tp_read_file(RC_SOURCE_DIR "/docs/SCRIPTS.md", &doc) > 0);
    char *at = strstr(doc, marker);
    cr_assert_not_null(at, "docs/SCRIPTS.md has no '%s'", marker);
    char *start = strstr(at, "```lua\n");
    cr_assert_not_null(start);
    start += 7;
    char *end = strstr(start, "```");
    cr_assert_not_null(end);
    cr_assert_eq(tp_write_file(path, start, (size_t)(end - start)), 0);
    free(doc);
}

/* The documented counter checks kv.incr: a caller who may not write gets
 * the error, not {"hits": null}. */
Test(kv_cmds, documented_counter_script_checks_incr)
{
    char *dir = tp_tempdir();
    char path[600];
    snprintf(path, sizeof path, "%s/counter.lua", dir);
    doc_script("A hit counter:", path);
    tp_result r = kv("bucket", "create", "demo");
    expect(r, 0, NULL);
    char *admin = strndup(strstr(r.out, "admin key: ") + 11, 43);
    tp_result_free(&r);
    r = kv("--bucket", "demo", "--key", admin, "script", "put", "counter", path);
    expect(r, 0, "");
    tp_result_free(&r);
    r = kv("--bucket", "demo", "--key", admin, "script", "run", "counter", "page=/home");
    expect(r, 0, "{\"hits\":1,\"page\":\"/home\"}");
    tp_result_free(&r);
    r = kv("--bucket", "demo", "--key", admin, "token", "create", "--perm", "read");
    char *reader = line_of(&r);
    tp_result_free(&r);
    r = kv("--bucket", "demo", "--key", reader, "script", "run", "counter", "page=/home");
    cr_expect_eq(r.status, 4, "403 from the script: %d %s", r.status, r.err);
    cr_expect(strstr(r.err, "forbidden") != NULL, "%s", r.err);
    tp_result_free(&r);
    r = kv("--bucket", "demo", "--key", admin, "get", "hits:/home");
    expect(r, 0, "1");
    tp_result_free(&r);
    free(reader);
    free(admin);
    tp_rmtree(dir);
    free(dir);
}

/* ------------------------------------------------------------- kv watch */

static long long kvd_waiters(void)
{
    tp_result r = kv("metrics", "--json");
    const char *p = r.status == 0 ? strstr(r.out, "\"waiters\":") : NULL;
    long long n = p ? strtoll(p + 10, NULL, 10) : -1;
    tp_result_free(&r);
    return n;
}

/* Wait (bounded) until kvd has N parked requests. */
static void await_waiters(long long n)
{
    for (int i = 0; i < 600; i++) {
        if (kvd_waiters() == n)
            return;
        usleep(100 * 1000);
    }
    cr_assert_fail("kvd never had %lld parked requests", n);
}

static void *watch_thread(void *arg)
{
    tp_result *r = arg;
    *r = kv("watch", "w", "--count", "2", "--json", "--timeout", "10m");
    return NULL;
}

Test(kv_cmds, watch_prints_each_change_of_a_key)
{
    pthread_t t;
    tp_result out = {0};
    cr_assert_eq(pthread_create(&t, NULL, watch_thread, &out), 0);
    await_waiters(1); /* kv read the state and is waiting for a change */
    tp_result r = kv("set", "w=first");
    expect(r, 0, NULL);
    tp_result_free(&r);
    await_waiters(1); /* printed it, waiting again */
    r = kv("del", "w");
    expect(r, 0, NULL);
    tp_result_free(&r);
    pthread_join(t, NULL);
    cr_assert_eq(out.status, 0, "%s", out.err);
    char *second = strchr(out.out, '\n');
    cr_assert(second != NULL, "%s", out.out);
    cr_expect(strncmp(out.out, "{\"key\":\"w\",\"value\":\"first\",\"seq\":", 33) == 0, "%s",
              out.out);
    cr_expect(strncmp(second + 1, "{\"key\":\"w\",\"value\":null,\"seq\":", 30) == 0, "%s",
              out.out);
    tp_result_free(&out);
}

Test(kv_cmds, watch_since_prints_the_state_after_seq_at_once)
{
    tp_result r = kv("set", "s=one");
    tp_result_free(&r);
    r = kv("get", "s", "--etag");
    long long etag = strtoll(r.out + 1, NULL, 10);
    tp_result_free(&r);
    char since[32];
    snprintf(since, sizeof since, "%lld", etag - 1);
    r = kv("watch", "s", "--since", since, "--count", "1");
    expect(r, 0, "s: one\n");
    tp_result_free(&r);
    r = kv("set", "p/a=1", "p/b=2");
    tp_result_free(&r);
    r = kv("watch", "--prefix", "p/", "--since", since, "--count", "2");
    expect(r, 0, "p/a: 1\np/b: 2\n");
    tp_result_free(&r);
    r = kv("del", "s");
    tp_result_free(&r);
    snprintf(since, sizeof since, "%lld", etag);
    r = kv("watch", "s", "--since", since, "--count", "1");
    expect(r, 0, "s: (deleted)\n");
    tp_result_free(&r);
    r = kv("watch");
    expect(r, 2, "");
    tp_result_free(&r);
    r = kv("watch", "s", "--timeout", "soon");
    expect(r, 2, "");
    cr_expect(strstr(r.err, "--timeout") != NULL, "%s", r.err);
    tp_result_free(&r);
}
