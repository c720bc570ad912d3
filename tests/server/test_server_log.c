/*
 * test_server_log.c — the log's sanitizer: text from clients (paths, messages
 * quoting them) can neither break a log line nor forge one.
 */
#include <string.h>

#include <criterion/criterion.h>

#include "log.h"

Test(log_sanitize, control_bytes_backslash_and_non_ascii_become_hex)
{
    char out[64];
    cr_assert_str_eq(kvd_log_sanitize("/b/k", out, sizeof out), "/b/k");
    cr_assert_str_eq(kvd_log_sanitize("a\nb\r\tc", out, sizeof out), "a\\x0ab\\x0d\\x09c");
    cr_assert_str_eq(kvd_log_sanitize("x\\y", out, sizeof out), "x\\x5cy");
    cr_assert_str_eq(kvd_log_sanitize("\xc3\xa9\x7f", out, sizeof out), "\\xc3\\xa9\\x7f");
    cr_assert_str_eq(kvd_log_sanitize(NULL, out, sizeof out), "");
}

Test(log_sanitize, truncates_whole_escapes_only)
{
    char out[6];
    cr_assert_str_eq(kvd_log_sanitize("abcdefgh", out, sizeof out), "abcde");
    cr_assert_str_eq(kvd_log_sanitize("ab\ncd", out, sizeof out), "ab");
    cr_assert_eq(strlen(kvd_log_sanitize("\n\n\n", out, sizeof out)), 4u);
}
