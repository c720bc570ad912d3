/*
 * test_kv.h — what the files of the test_kv suite share: the kvd each test
 * gets (started in .init), and running kv against it.
 */
#ifndef TESTS_TOOLS_TEST_KV_H
#define TESTS_TOOLS_TEST_KV_H

#include "tool_proc.h"

extern tp_kvd kvd;
/* .init and .fini of the suites: a fresh kvd with an open "default" bucket */
void start_kvd(void);
void stop_kvd(void);

/* Run kv with the NULL-terminated arguments (environment: KV_URL of kvd,
 * KV_BUCKET and KV_KEY empty), stdin from STDIN_PATH (NULL: /dev/null). */
tp_result kv_in(const char *stdin_path, const char *first, ...);
#define kv(...) kv_in(NULL, __VA_ARGS__, NULL)

/* Expect exit STATUS and, when OUT is not NULL, exactly OUT on stdout. */
void expect(tp_result r, int status, const char *out);

#endif
