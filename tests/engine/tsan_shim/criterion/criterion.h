/*
 * A stand-in for <criterion/criterion.h> for ThreadSanitizer runs only:
 * Criterion's runner maps an inheritable arena that collides with TSan's
 * shadow memory and aborts at startup, so a TSan build of a Criterion suite
 * uses this header instead (-Itests/engine/tsan_shim). It runs the tests of
 * the one translation unit in order, in one process, filtered by a substring
 * given as argv[1]; a failed assertion prints its place and aborts. Only the
 * assertions the engine suites use are provided.
 */
#ifndef RC_TSAN_CRITERION_SHIM_H
#define RC_TSAN_CRITERION_SHIM_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    void (*fn)(void);
} shim_test;
static shim_test shim_tests[256];
static int shim_ntests;

static inline void shim_register(const char *name, void (*fn)(void))
{
    if (shim_ntests < 256)
        shim_tests[shim_ntests++] = (shim_test){name, fn};
}

static inline void shim_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: assertion failed: %s\n", file, line, what);
    abort();
}

#define Test(suite, name)                                                                          \
    static void suite##_##name(void);                                                              \
    __attribute__((constructor)) static void shim_reg_##suite##_##name(void)                       \
    {                                                                                              \
        shim_register(#suite "/" #name, suite##_##name);                                           \
    }                                                                                              \
    static void suite##_##name(void)

#define cr_assert(cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond))                                                                               \
            shim_fail(__FILE__, __LINE__, #cond);                                                  \
    } while (0)
#define cr_assert_not(cond, ...) cr_assert(!(cond))
#define cr_assert_eq(a, b, ...) cr_assert((a) == (b))
#define cr_assert_neq(a, b, ...) cr_assert((a) != (b))
#define cr_assert_lt(a, b, ...) cr_assert((a) < (b))
#define cr_assert_gt(a, b, ...) cr_assert((a) > (b))
#define cr_assert_leq(a, b, ...) cr_assert((a) <= (b))
#define cr_assert_not_null(p, ...) cr_assert((p) != NULL)
#define cr_assert_null(p, ...) cr_assert((p) == NULL)
#define cr_assert_geq(a, b, ...) cr_assert((a) >= (b))
#define cr_skip_test(...)                                                                          \
    do {                                                                                           \
        fprintf(stderr, "[SKIP]\n");                                                               \
        return;                                                                                    \
    } while (0)

int main(int argc, char **argv)
{
    int run = 0;
    for (int i = 0; i < shim_ntests; i++) {
        if (argc > 1 && !strstr(shim_tests[i].name, argv[1]))
            continue;
        fprintf(stderr, "[RUN] %s\n", shim_tests[i].name);
        shim_tests[i].fn();
        run++;
    }
    fprintf(stderr, "[DONE] %d tests passed\n", run);
    return 0;
}

#endif
