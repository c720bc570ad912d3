/*
 * metrics_process.h — the standard process_* metrics every Prometheus
 * client library exports (CPU, memory, file descriptors, start time), read
 * from /proc/self, and ringcask_build_info.
 */
#ifndef KVD_METRICS_PROCESS_H
#define KVD_METRICS_PROCESS_H

#include <stdio.h>

#include "metrics_text.h"

/* The process start time, seconds since the epoch (from /proc/self/stat; the
 * current time when that cannot be read). Call once at start-up. */
double process_start_time(void);

/* process_cpu_seconds_total, process_resident_memory_bytes,
 * process_virtual_memory_bytes, process_open_fds, process_max_fds and
 * process_start_time_seconds (START from process_start_time). A figure that
 * cannot be read is left out rather than reported as 0. */
void metrics_render_process(textbuf *t, double start);

/* The same facts for `kvd --version`: one line "build: TYPE, sanitizers:
 * ..., compiler: ..., fault injection: on|off, scripts: on|off". */
void kvd_build_describe(FILE *out);

/* ringcask_build_info{version,build_type,sanitizers,compiler,fault_injection,scripts} 1 */
void metrics_render_build_info(textbuf *t);

#endif
