/*
 * rcu_opt.h — the option table every ringcask program parses its command
 * line with (kvd, kv, kvdump, kvload, kvbench), and prints --help from.
 *
 * A program describes each option once, in a table of rcu_opt entries (the
 * model is Redis's configs[] table): long name, optional short name, value
 * kind, where the value goes, range, help text. From that one table come the
 * parser, the --help text, kvd's config file (the same names, see
 * rcu_opt_load_ini) and `kvd --print-config` (rcu_opt_print_config), so
 * none of them can drift from another.
 *
 * Command-line rules (GNU style): options and operands may be mixed in any
 * order; `--` ends the options; `--name=value` and `--name value`; `-x VALUE`,
 * `-xVALUE` and clustered flags `-fv`; a token such as `-5` is an operand
 * when no short option is a digit. Long names must be given in full.
 * `-h`/`--help` and `--version` are built in. A usage error prints one line
 * naming the flag ("kvd: --threads: expected a number 1..1024, got 'x' (see
 * kvd --help)") and the parse returns RCU_OPT_USAGE (2).
 *
 * Internal library (prefix rcu_), linked by the server and the tools; not
 * part of libringcask's public API.
 */
#ifndef RCU_OPT_H
#define RCU_OPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define RCU_OPT_USAGE 2 /* exit status of a usage error */
#define RCU_OPT_GO_ON (-1)

typedef enum rcu_opt_kind {
    RCU_OPT_BOOL,     /* a flag: *(bool *)dest = true (also --name=true|false) */
    RCU_OPT_INT,      /* decimal integer in [min, max]; unsigned, WIDTH bytes */
    RCU_OPT_SIZE,     /* bytes, with K, M, G suffixes (powers of 1024) */
    RCU_OPT_DURATION, /* 90, 250ms, 30s, 10m, 2h, 7d; a bare number is in UNIT_MS */
    RCU_OPT_STRING,   /* *(const char **)dest = the argument (not copied) */
    RCU_OPT_ENUM,     /* one of CHOICES; *(int *)dest = its index */
    RCU_OPT_FUNC,     /* PARSE converts; SHOW prints the current value */
} rcu_opt_kind;

enum {
    RCU_OPT_NOCONFIG = 1,  /* command line only: not read from nor printed in config files */
    RCU_OPT_NODEFAULT = 2, /* --help shows no default for it */
};

typedef struct rcu_opt {
    const char *name; /* long name without "--"; NULL ends a table */
    char short_name;  /* 0: none */
    rcu_opt_kind kind;
    void *dest;
    size_t width;               /* INT, SIZE, DURATION: sizeof *dest (1, 2, 4 or 8) */
    const char *meta;           /* the value's name in --help ("PATH"); NULL: from the kind */
    const char *help;           /* sentences; wrapped to the terminal width of 80 */
    uint64_t min, max;          /* INT, SIZE, DURATION: the range, in *dest's unit (max 0: none) */
    uint32_t unit_ms;           /* DURATION: the unit of a bare number (1000: seconds) */
    uint32_t store_ms;          /* DURATION: the unit of *dest (1: milliseconds, 1000: seconds) */
    const char *const *choices; /* ENUM: NULL-terminated */
    /* FUNC: parse VALUE into DEST; on error write why (no flag name) and return -1 */
    int (*parse)(const char *value, void *dest, char *why, size_t why_len);
    /* FUNC: the current value as text that PARSE accepts */
    void (*show)(const void *dest, char *out, size_t cap);
    const char *def; /* --help's default when the initial value does not say it */
    bool *seen;      /* set to true when the option is given (may be NULL) */
    unsigned flags;  /* RCU_OPT_NOCONFIG, RCU_OPT_NODEFAULT */
} rcu_opt;

typedef struct rcu_opt_prog {
    const char *name;                 /* "kvd", "kv get": starts every message */
    const char *usage;                /* synopsis lines after "usage: " (newline-separated) */
    const char *about;                /* paragraph(s) after the synopsis; may be NULL */
    const char *epilog;               /* text after the options (exit statuses...); may be NULL */
    const rcu_opt *opts;              /* the program's table */
    const rcu_opt *more;              /* a second table (kv's global options); may be NULL */
    const char *more_title;           /* heading of the second table in --help */
    bool stop_at_operand;             /* options end at the first operand (kv COMMAND ...) */
    size_t max_operands;              /* more operands are a usage error (SIZE_MAX: any) */
    void (*version_extra)(FILE *out); /* lines after the version line (kvd's build) */
} rcu_opt_prog;

/* Parse ARGV[1..ARGC) against PROG's tables. Operands are moved, in order,
 * to ARGV[1..1+*NOPERANDS). Returns RCU_OPT_GO_ON (-1) to go on, 0 after
 * printing --help or --version on stdout, or RCU_OPT_USAGE after a one-line
 * message on stderr. NOPERANDS may be NULL when PROG takes no operands. */
int rcu_opt_parse(const rcu_opt_prog *prog, int argc, char **argv, int *noperands);

/* Set the option NAME (long name) of PROG->opts or PROG->more from VALUE
 * as the command line would (VALUE must outlive its use). Returns 0, or -1
 * with a message in WHY ("threads: expected a number, got 'x'"); options
 * marked RCU_OPT_NOCONFIG are unknown here. Used by the config-file reader. */
int rcu_opt_set_why(const rcu_opt_prog *prog, const char *name, const char *value, char *why,
                    size_t cap);

/* Print --help (generated from the tables; defaults are the values the
 * destinations hold when it is called). */
void rcu_opt_print_help(const rcu_opt_prog *prog, FILE *out);

/* Print "NAME (ringcask) X.Y.Z" and PROG->version_extra. */
void rcu_opt_print_version(const rcu_opt_prog *prog, FILE *out);

/* The current value of O in the syntax its parser accepts ("" for an unset
 * string). */
void rcu_opt_format(const rcu_opt *o, char *out, size_t cap);

/* Print every option of PROG->opts that a config file may hold as
 * "name = value" lines (an unset string as a "# name =" comment), so that
 * the output read back with rcu_opt_load_ini gives the same settings. */
void rcu_opt_print_config(const rcu_opt_prog *prog, FILE *out);

/* Read an INI file (inih) whose keys are PROG's long option names: outside
 * any section or in a section named SECTION. Returns 0, or RCU_OPT_USAGE
 * after a message naming the file, line and key. */
int rcu_opt_load_ini(const rcu_opt_prog *prog, const char *path, const char *section);

/* The --sync value of kvd and kvbench: "always", "interval:MS" (1..3600000)
 * or "none". */
typedef enum rcu_sync { RCU_SYNC_ALWAYS, RCU_SYNC_INTERVAL, RCU_SYNC_NONE } rcu_sync;
int rcu_sync_parse(const char *s, rcu_sync *mode, uint32_t *interval_ms, char *why, size_t cap);
void rcu_sync_format(rcu_sync mode, uint32_t interval_ms, char *out, size_t cap);

#endif /* RCU_OPT_H */
