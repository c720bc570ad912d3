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

/* Suites: TestSuite(name, .init = f, .fini = g) registers set-up and
 * tear-down that run around each test of the suite; test options such as
 * .timeout are accepted and ignored. */
typedef struct shim_suite_opts {
    void (*init)(void);
    void (*fini)(void);
    int timeout;
} shim_suite_opts;
static struct {
    const char *name;
    shim_suite_opts o;
} shim_suites[32];
static int shim_nsuites;

#define TestSuite(s, ...)                                                                          \
    __attribute__((constructor)) static void shim_suite_reg_##s(void)                              \
    {                                                                                              \
        shim_suite_opts o = {__VA_ARGS__};                                                         \
        if (shim_nsuites < 32) {                                                                   \
            shim_suites[shim_nsuites].name = #s;                                                   \
            shim_suites[shim_nsuites++].o = o;                                                     \
        }                                                                                          \
    }

#define Test(suite, name, ...)                                                                     \
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
#define cr_assert_str_eq(a, b, ...) cr_assert(strcmp((a), (b)) == 0)
#define cr_assert_str_neq(a, b, ...) cr_assert(strcmp((a), (b)) != 0)
#define cr_assert_fail(...) shim_fail(__FILE__, __LINE__, "cr_assert_fail")
#define cr_skip_test(...)                                                                          \
    do {                                                                                           \
        fprintf(stderr, "[SKIP]\n");                                                               \
        return;                                                                                    \
    } while (0)

#ifndef SHIM_NO_MAIN /* helper files of a suite include this header too */
static const shim_suite_opts *shim_suite_of(const char *test)
{
    for (int i = 0; i < shim_nsuites; i++) {
        size_t n = strlen(shim_suites[i].name);
        if (strncmp(test, shim_suites[i].name, n) == 0 && test[n] == '/')
            return &shim_suites[i].o;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int run = 0;
    for (int i = 0; i < shim_ntests; i++) {
        if (argc > 1 && !strstr(shim_tests[i].name, argv[1]))
            continue;
        fprintf(stderr, "[RUN] %s\n", shim_tests[i].name);
        const shim_suite_opts *o = shim_suite_of(shim_tests[i].name);
        if (o && o->init)
            o->init();
        shim_tests[i].fn();
        if (o && o->fini)
            o->fini();
        run++;
    }
    fprintf(stderr, "[DONE] %d tests passed\n", run);
    return 0;
}
#endif

#endif
