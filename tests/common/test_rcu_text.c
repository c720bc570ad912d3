/*
 * test_rcu_text.c — the shared text helpers (common/rcu_text.h): base64
 * through libsodium both ways, hex digits, bucket names.
 */
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "rcu_text.h"

Test(rcu_text, base64_round_trip_every_length)
{
    unsigned char data[64], back[64 + 3];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i * 37 + 1);
    for (size_t len = 0; len <= sizeof data; len++) {
        char *b64 = rcu_base64_encode(data, len, sodium_base64_VARIANT_ORIGINAL);
        cr_assert_not_null(b64);
        size_t n = 99;
        cr_assert_eq(rcu_base64_decode(b64, strlen(b64), back, sizeof back, &n), 0, "len %zu", len);
        cr_assert_eq(n, len);
        cr_assert(memcmp(back, data, len) == 0);
        /* padding is optional */
        size_t sl = strlen(b64);
        while (sl > 0 && b64[sl - 1] == '=')
            sl--;
        cr_assert_eq(rcu_base64_decode(b64, sl, back, sizeof back, &n), 0, "len %zu", len);
        cr_assert_eq(n, len);
        free(b64);
    }
}

Test(rcu_text, base64_refuses_bad_input)
{
    unsigned char out[16];
    size_t n;
    cr_expect_eq(rcu_base64_decode("ab$d", 4, out, sizeof out, &n), -1);
    cr_expect_eq(rcu_base64_decode("a", 1, out, sizeof out, &n), -1);
    cr_expect_eq(rcu_base64_decode("aGVsbG8=", 8, out, 2, &n), -1); /* does not fit */
    cr_expect_eq(rcu_base64_decode("aGVsbG8=", 8, out, sizeof out, &n), 0);
    cr_expect_eq(n, 5);
    cr_expect(memcmp(out, "hello", 5) == 0);
}

Test(rcu_text, hex_and_bucket_names)
{
    cr_expect_eq(rcu_hex_value('0'), 0);
    cr_expect_eq(rcu_hex_value('a'), 10);
    cr_expect_eq(rcu_hex_value('F'), 15);
    cr_expect_eq(rcu_hex_value('g'), -1);
    cr_expect_eq(rcu_hex_upper[11], 'B');
    cr_expect(rcu_bucket_name_valid("a-Z_9", 5));
    cr_expect(!rcu_bucket_name_valid("a.b", 3));
    cr_expect(!rcu_bucket_name_valid("", 0));
    cr_expect(rcu_bucket_name_reserved("admin", 5));
    cr_expect(!rcu_bucket_name_reserved("admins", 6));
    cr_expect(rcu_utf8_valid("caf\xc3\xa9", 5));
    cr_expect(!rcu_utf8_valid("\xc0\xaf", 2));
}
