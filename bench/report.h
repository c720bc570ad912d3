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
/* RES holds N_ENGINES x N_JOBS results, engine-major; prints nothing unless
 * ringcask and at least one peer are among them. */
void kvb_print_ratios(const kvb_result *res, int n_engines, int n_jobs);

#endif /* KVB_REPORT_H */
