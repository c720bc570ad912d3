/*
 * test_server_batch_results.c — batch_results_dump() writes exactly the bytes that
 * Jansson's json_dumps(JSON_COMPACT) writes (plus "\n") for the tree of
 * batch_result_json() results: escaping of quotes, backslashes and control
 * characters, non-ASCII UTF-8, empty and absent values, base64 for bytes
 * that are not UTF-8, incr integers, reals and the rest, ETags, deletes.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <jansson.h>
#include <sodium.h>

#include "batch_results.h"
#include "json_util.h"

static void init_sodium(void)
{
    cr_assert(sodium_init() >= 0);
}

TestSuite(batch_results, .init = init_sodium);

/* The reference: the tree, dumped by Jansson, with the trailing newline. */
static char *reference(const rc_op *ops, size_t n)
{
    json_t *results = json_array();
    cr_assert_not_null(results);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(json_array_append_new(results, batch_result_json(&ops[i])), 0);
    json_t *ans = json_object();
    cr_assert_not_null(ans);
    json_object_set_new(ans, "results", results);
    char *text = json_dumps(ans, JSON_COMPACT);
    json_decref(ans);
    cr_assert_not_null(text);
    size_t len = strlen(text);
    char *withnl = realloc(text, len + 2);
    cr_assert_not_null(withnl);
    withnl[len] = '\n';
    withnl[len + 1] = '\0';
    return withnl;
}

static void check(const rc_op *ops, size_t n)
{
    char *want = reference(ops, n);
    size_t len = 0;
    char *got = batch_results_dump(ops, n, &len);
    cr_assert_not_null(got);
    cr_assert_eq(len, strlen(want), "length %zu, Jansson's %zu:\n%s\n%s", len, strlen(want), got,
                 want);
    cr_assert_eq(memcmp(got, want, len), 0, "\n%s\n%s", got, want);
    cr_assert_eq(got[len], '\0');
    /* and it parses back as JSON */
    json_error_t err;
    json_t *back = json_loadb(got, len, JSON_ALLOW_NUL, &err);
    cr_assert_not_null(back, "%s", err.text);
    json_decref(back);
    free(want);
    free(got);
}

static rc_op get_op(const void *data, size_t len, uint64_t seq)
{
    rc_op op;
    memset(&op, 0, sizeof op);
    op.kind = RC_OP_GET;
    op.result.data = (void *)data;
    op.result.len = len;
    op.result.seq = seq;
    return op;
}

static rc_op incr_op(const char *text)
{
    rc_op op;
    memset(&op, 0, sizeof op);
    op.kind = RC_OP_INCR;
    op.seq = 9;
    op.result.data = (void *)text;
    op.result.len = text ? strlen(text) : 0;
    op.result.seq = 9;
    return op;
}

static void check_value(const void *data, size_t len)
{
    rc_op op = get_op(data, len, 1);
    check(&op, 1);
}

Test(batch_results, empty_batch)
{
    check(NULL, 0);
}

Test(batch_results, every_ascii_byte)
{
    for (unsigned c = 0; c < 0x80; c++) {
        char v[3] = {'a', (char)c, 'b'};
        check_value(v, 3);
        check_value(v + 1, 1);
    }
    const char all[] = "\"\\/\b\f\n\r\t\x01\x1f\x7f \"quoted\" back\\slash";
    check_value(all, sizeof all - 1);
    check_value("\0\0", 2);
}

Test(batch_results, utf8_kept_as_is)
{
    static const char *const v[] = {
        "\xc3\xa9",                 /* é */
        "\xe2\x82\xac",             /* € */
        "\xf0\x9f\x98\x80",         /* 😀 */
        "\xe2\x80\xa8\xe2\x80\xa9", /* U+2028, U+2029 */
        "\xef\xbf\xbf",             /* U+FFFF */
        "\xf4\x8f\xbf\xbf",         /* U+10FFFF */
        "\xc2\x80\xc2\x9f",         /* C1 controls: not escaped */
        "mixed \xc3\xa9\n\"\xe2\x82\xac\"\t\\",
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        check_value(v[i], strlen(v[i]));
}

Test(batch_results, not_utf8_as_base64)
{
    static const char *const v[] = {
        "\xff",   "\xc0\x80",     "\xed\xa0\x80", "\xe2\x82", "\xf4\x90\x80\x80",
        "ok\x80", "\xfe\xff\x00",
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        check_value(v[i], strlen(v[i]) + (i == 6));
    unsigned char bin[256];
    for (unsigned i = 0; i < sizeof bin; i++)
        bin[i] = (unsigned char)(255 - i);
    for (size_t n = 1; n <= sizeof bin; n += 37)
        check_value(bin, n);
}

Test(batch_results, empty_and_absent)
{
    rc_op ops[4] = {get_op(NULL, 0, 3), get_op("", 0, 3), get_op(NULL, 0, 0), get_op("x", 1, 0)};
    check(ops, 4);
}

Test(batch_results, incr_results)
{
    static const char *const v[] = {
        "0",
        "42",
        "-7",
        "9223372036854775807",
        "-9223372036854775808",
        "1.5",
        "-0.25",
        "0.1",
        "1e300",
        "3.0",
        "1e-300",
        "nan",
        "inf",
        "-inf",
        "abc",
        "",
        "9223372036854775808",
        "12\"3\\",
        "\xff",
        NULL,
    };
    rc_op ops[sizeof v / sizeof v[0]];
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        ops[i] = incr_op(v[i]);
        check(&ops[i], 1);
    }
    check(ops, sizeof v / sizeof v[0]);
}

Test(batch_results, etags_deletes_and_others)
{
    rc_op ops[7];
    memset(ops, 0, sizeof ops);
    ops[0].kind = RC_OP_PUT;
    ops[0].seq = 1;
    ops[1].kind = RC_OP_PUT;
    ops[1].seq = UINT64_MAX;
    ops[2].kind = RC_OP_PUT;
    ops[2].seq = 0;
    ops[3].kind = RC_OP_DELETE;
    ops[3].seq = 5;
    ops[4].kind = RC_OP_DELETE;
    ops[4].seq = 0;
    ops[5].kind = (rc_op_kind)99; /* a kind the route never sends: {} */
    ops[6] = get_op("v", 1, 2);
    check(ops, 7);
}

Test(batch_results, random_batches)
{
    unsigned char pool[4096];
    randombytes_buf_deterministic(pool, sizeof pool,
                                  (const unsigned char *)"batch_results test seed 0123456");
    /* bias toward ASCII with some control characters and UTF-8 lead bytes */
    for (size_t i = 0; i < sizeof pool; i++)
        if (pool[i] % 3 != 0)
            pool[i] &= 0x7f;
    uint32_t state = 1;
    for (int round = 0; round < 300; round++) {
        rc_op ops[100];
        size_t n = 1 + (size_t)(round % 100);
        for (size_t i = 0; i < n; i++) {
            state = state * 1103515245u + 12345u;
            size_t off = (state >> 8) % sizeof pool, len = (state >> 4) % 64;
            if (off + len > sizeof pool)
                len = sizeof pool - off;
            ops[i] = get_op(pool + off, len, (state & 7) == 0 ? 0 : 1);
            if ((state & 0x30) == 0x30) {
                memset(&ops[i], 0, sizeof ops[i]);
                ops[i].kind = RC_OP_PUT;
                ops[i].seq = state;
            }
        }
        check(ops, n);
    }
}

Test(batch_results, large_value_grows_the_buffer)
{
    size_t n = 100000;
    char *v = malloc(n);
    cr_assert_not_null(v);
    for (size_t i = 0; i < n; i++)
        v[i] = (char)(i % 3 == 0 ? '\n' : i % 3 == 1 ? '"' : 'a');
    rc_op ops[3] = {get_op(v, n, 1), get_op("x", 1, 1), get_op(v, n / 2, 1)};
    check(ops, 3);
    free(v);
}

/* rcu_utf8_valid() skips ASCII eight bytes at a time: a bad or good sequence at
 * every offset and alignment of an ASCII run is still seen. */
Test(batch_results, utf8_valid_at_every_offset)
{
    static const struct {
        const char *seq;
        bool ok;
    } seqs[] = {
        {"\xc3\xa9", true},      {"\xe2\x82\xac", true}, {"\xf0\x9f\x98\x80", true},
        {"\xff", false},         {"\x80", false},        {"\xc0\x80", false},
        {"\xed\xa0\x80", false}, {"\xe2\x82", false},    {"\xf4\x90\x80\x80", false},
        {"\xc3", false},
    };
    char buf[64];
    for (size_t s = 0; s < sizeof seqs / sizeof seqs[0]; s++) {
        size_t sl = strlen(seqs[s].seq);
        for (size_t at = 0; at + sl <= 40; at++) {
            for (size_t tail = 0; tail <= 9; tail += 9) {
                size_t len = at + sl + tail;
                memset(buf, 'a', sizeof buf);
                memcpy(buf + at, seqs[s].seq, sl);
                cr_assert_eq(rcu_utf8_valid(buf, len), seqs[s].ok, "seq %zu at %zu tail %zu", s, at,
                             tail);
            }
        }
    }
    memset(buf, 'a', sizeof buf);
    for (size_t len = 0; len <= sizeof buf; len++)
        cr_assert(rcu_utf8_valid(buf, len));
}
