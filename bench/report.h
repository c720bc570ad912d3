/*
 * report.h — printing kvbench results (text rows, JSON lines, ratio tables).
 */
#ifndef KVB_REPORT_H
#define KVB_REPORT_H

#include "workloads.h"

double kvb_ops_per_sec(const kvb_result *r);
void kvb_print_header(void);
void kvb_print_text(const kvb_params *p, const kvb_result *r);
void kvb_print_json(const kvb_params *p, const kvb_result *r);
/* The median run of RUNS[0..REPS) by ops/s into *OUT (the lower median for
 * an even count), with repeats, ops_min and ops_max set; a failed run fails
 * it. */
void kvb_median(const kvb_result *runs, int reps, kvb_result *out);
/* RUNS holds N_ENGINES x N_JOBS x REPS results (engine-major, then workload,
 * then round); prints the ratio tables (the median of the per-round ratios
 * and their range), nothing unless ringcask and a peer are among them. */
void kvb_print_ratios(const kvb_result *runs, int n_engines, int n_jobs, int reps);
/* A closing note when any of RES[0..N) stopped at the --seconds cap. */
void kvb_print_capped(const kvb_result *res, int n);

#endif /* KVB_REPORT_H */
