/*
 * rcu_opt.c — the table-driven command-line parser (see rcu_opt.h): value
 * conversion per kind, GNU-style scanning, and the generated --help.
 */
#include "rcu_opt.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "ringcask.h"

#define WHY_MAX 256

/* ------------------------------------------------------------ messages */

static int usage_error(const rcu_opt_prog *prog, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int usage_error(const rcu_opt_prog *prog, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", prog->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see %s --help)\n", prog->name);
    return RCU_OPT_USAGE;
}

/* ------------------------------------------------------------ values */

static void store_uint(const rcu_opt *o, uint64_t v)
{
    switch (o->width) {
    case 1:
        *(uint8_t *)o->dest = (uint8_t)v;
        break;
    case 2:
        *(uint16_t *)o->dest = (uint16_t)v;
        break;
    case 4:
        *(uint32_t *)o->dest = (uint32_t)v;
        break;
    default:
        *(uint64_t *)o->dest = v;
    }
}

static uint64_t load_uint(const rcu_opt *o)
{
    switch (o->width) {
    case 1:
        return *(const uint8_t *)o->dest;
    case 2:
        return *(const uint16_t *)o->dest;
    case 4:
        return *(const uint32_t *)o->dest;
    default:
        return *(const uint64_t *)o->dest;
    }
}

static uint64_t width_max(const rcu_opt *o)
{
    return o->width >= 8 ? UINT64_MAX : (UINT64_C(1) << (o->width * 8)) - 1;
}

/* Leading decimal digits of S; *END after them. -1 when none or too large. */
static int leading_u64(const char *s, uint64_t *v, const char **end)
{
    if (*s < '0' || *s > '9')
        return -1;
    char *e = NULL;
    errno = 0;
    unsigned long long x = strtoull(s, &e, 10);
    if (errno == ERANGE)
        return -1;
    *v = x;
    *end = e;
    return 0;
}

static int parse_int(const rcu_opt *o, const char *s, uint64_t *v, char *why, size_t cap)
{
    const char *end;
    if (leading_u64(s, v, &end) != 0 || *end != '\0') {
        snprintf(why, cap, "expected a number, got '%s'", s);
        return -1;
    }
    return 0;
}

static int parse_size(const char *s, uint64_t *v, char *why, size_t cap)
{
    const char *end;
    uint64_t n, mul = 1;
    if (leading_u64(s, &n, &end) == 0) {
        switch (*end) {
        case 'K':
        case 'k':
            mul = UINT64_C(1) << 10;
            break;
        case 'M':
        case 'm':
            mul = UINT64_C(1) << 20;
            break;
        case 'G':
        case 'g':
            mul = UINT64_C(1) << 30;
            break;
        }
        if (mul != 1)
            end++;
        if (*end == '\0' && n <= UINT64_MAX / mul) {
            *v = n * mul;
            return 0;
        }
    }
    snprintf(why, cap, "expected a size such as 1048576 or 1M, got '%s'", s);
    return -1;
}

static int parse_duration(const rcu_opt *o, const char *s, uint64_t *v, char *why, size_t cap)
{
    const char *end;
    uint64_t n, ms_per = o->unit_ms ? o->unit_ms : 1000;
    uint64_t store = o->store_ms ? o->store_ms : 1000;
    if (leading_u64(s, &n, &end) == 0) {
        bool ok = true;
        if (strcmp(end, "ms") == 0)
            ms_per = 1;
        else if (strcmp(end, "s") == 0)
            ms_per = 1000;
        else if (strcmp(end, "m") == 0)
            ms_per = 60 * 1000;
        else if (strcmp(end, "h") == 0)
            ms_per = 3600 * 1000;
        else if (strcmp(end, "d") == 0)
            ms_per = 86400 * 1000;
        else if (*end != '\0')
            ok = false;
        if (ok && n <= UINT64_MAX / ms_per) {
            uint64_t ms = n * ms_per;
            if (ms % store != 0) {
                snprintf(why, cap, "'%s' is not a whole number of %s", s,
                         store == 1000 ? "seconds" : "units");
                return -1;
            }
            *v = ms / store;
            return 0;
        }
    }
    snprintf(why, cap, "expected a duration such as %s30s, 10m, 2h or 7d, got '%s'",
             (o->unit_ms ? o->unit_ms : 1000) == 1 ? "250, " : "90, ", s);
    return -1;
}

static int parse_bool(const char *s, bool *v, char *why, size_t cap)
{
    static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no",
                                                                                "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcmp(s, yes[i]) == 0) {
            *v = true;
            return 0;
        }
        if (strcmp(s, no[i]) == 0) {
            *v = false;
            return 0;
        }
    }
    snprintf(why, cap, "expected true or false, got '%s'", s);
    return -1;
}

static void join_choices(const rcu_opt *o, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; o->choices[i] && n < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%s",
                              i ? (o->choices[i + 1] ? ", " : " or ") : "", o->choices[i]);
}

/* Convert VALUE into O's destination. Returns 0 or -1 with WHY set. */
static int apply(const rcu_opt *o, const char *value, char *why, size_t cap)
{
    uint64_t v = 0;
    int rc = 0;
    switch (o->kind) {
    case RCU_OPT_BOOL:
        rc = parse_bool(value ? value : "true", (bool *)o->dest, why, cap);
        break;
    case RCU_OPT_STRING:
        *(const char **)o->dest = value;
        break;
    case RCU_OPT_FUNC:
        rc = o->parse(value, o->dest, why, cap);
        break;
    case RCU_OPT_ENUM:
        rc = -1;
        for (int i = 0; o->choices[i]; i++)
            if (strcmp(o->choices[i], value) == 0) {
                *(int *)o->dest = i;
                rc = 0;
            }
        if (rc != 0) {
            char list[WHY_MAX / 2];
            join_choices(o, list, sizeof list);
            snprintf(why, cap, "expected %s, got '%s'", list, value);
        }
        break;
    case RCU_OPT_INT:
    case RCU_OPT_SIZE:
    case RCU_OPT_DURATION:
        rc = o->kind == RCU_OPT_INT    ? parse_int(o, value, &v, why, cap)
             : o->kind == RCU_OPT_SIZE ? parse_size(value, &v, why, cap)
                                       : parse_duration(o, value, &v, why, cap);
        if (rc == 0) {
            uint64_t max = o->max && o->max < width_max(o) ? o->max : width_max(o);
            if (v < o->min || v > max) {
                char lo[32], hi[32];
                rcu_opt o2 = *o;
                uint64_t tmp;
                o2.dest = &tmp;
                o2.width = 8;
                tmp = o->min;
                rcu_opt_format(&o2, lo, sizeof lo);
                tmp = max;
                rcu_opt_format(&o2, hi, sizeof hi);
                if (max >= INT64_MAX)
                    snprintf(why, cap, "%s is below the minimum %s", value, lo);
                else
                    snprintf(why, cap, "%s is out of range %s..%s", value, lo, hi);
                rc = -1;
            } else {
                store_uint(o, v);
            }
        }
        break;
    }
    if (rc == 0 && o->seen)
        *o->seen = true;
    return rc;
}

static void format_scaled(uint64_t v, const uint64_t *units, const char *const *suffix, size_t n,
                          char *out, size_t cap)
{
    for (size_t i = 0; i < n; i++)
        if (v != 0 && v % units[i] == 0) {
            snprintf(out, cap, "%llu%s", (unsigned long long)(v / units[i]), suffix[i]);
            return;
        }
    snprintf(out, cap, "%llu", (unsigned long long)v);
}

void rcu_opt_format(const rcu_opt *o, char *out, size_t cap)
{
    static const uint64_t sizes[] = {UINT64_C(1) << 30, UINT64_C(1) << 20, UINT64_C(1) << 10};
    static const char *const size_sfx[] = {"G", "M", "K"};
    out[0] = '\0';
    switch (o->kind) {
    case RCU_OPT_BOOL:
        snprintf(out, cap, "%s", *(const bool *)o->dest ? "true" : "false");
        break;
    case RCU_OPT_STRING: {
        const char *s = *(const char *const *)o->dest;
        snprintf(out, cap, "%s", s ? s : "");
        break;
    }
    case RCU_OPT_ENUM:
        snprintf(out, cap, "%s", o->choices[*(const int *)o->dest]);
        break;
    case RCU_OPT_FUNC:
        if (o->show)
            o->show(o->dest, out, cap);
        break;
    case RCU_OPT_INT:
        snprintf(out, cap, "%llu", (unsigned long long)load_uint(o));
        break;
    case RCU_OPT_SIZE:
        format_scaled(load_uint(o), sizes, size_sfx, 3, out, cap);
        break;
    case RCU_OPT_DURATION: {
        uint64_t store = o->store_ms ? o->store_ms : 1000, unit = o->unit_ms ? o->unit_ms : 1000;
        uint64_t v = load_uint(o);
        if (v > UINT64_MAX / store)
            snprintf(out, cap, "%llu", (unsigned long long)v);
        else if (v * store % unit == 0)
            snprintf(out, cap, "%llu", (unsigned long long)(v * store / unit));
        else
            snprintf(out, cap, "%llums", (unsigned long long)(v * store));
        break;
    }
    }
}

/* ------------------------------------------------------------ lookup */

static const rcu_opt *find_long(const rcu_opt_prog *prog, const char *name, size_t len)
{
    const rcu_opt *tables[] = {prog->opts, prog->more};
    for (size_t t = 0; t < 2; t++)
        for (const rcu_opt *o = tables[t]; o && o->name; o++)
            if (strlen(o->name) == len && memcmp(o->name, name, len) == 0)
                return o;
    return NULL;
}

static const rcu_opt *find_short(const rcu_opt_prog *prog, char c)
{
    const rcu_opt *tables[] = {prog->opts, prog->more};
    for (size_t t = 0; t < 2; t++)
        for (const rcu_opt *o = tables[t]; o && o->name; o++)
            if (o->short_name == c)
                return o;
    return NULL;
}

static bool has_digit_short(const rcu_opt_prog *prog)
{
    for (char c = '0'; c <= '9'; c++)
        if (find_short(prog, c))
            return true;
    return false;
}

int rcu_opt_set_why(const rcu_opt_prog *prog, const char *name, const char *value, char *why,
                    size_t cap)
{
    const rcu_opt *o = find_long(prog, name, strlen(name));
    if (o == NULL || (o->flags & RCU_OPT_NOCONFIG)) {
        snprintf(why, cap, "unknown setting '%s'", name);
        return -1;
    }
    char inner[WHY_MAX];
    if (apply(o, value, inner, sizeof inner) != 0) {
        snprintf(why, cap, "%s: %s", name, inner);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ parsing */

int rcu_opt_parse(const rcu_opt_prog *prog, int argc, char **argv, int *noperands)
{
    /* --help and --version win wherever they are (before "--"), so that the
     * help shows the defaults rather than values given before it */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            rcu_opt_print_help(prog, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--version") == 0 && !find_long(prog, "version", 7)) {
            rcu_opt_print_version(prog, stdout);
            return 0;
        }
        if (prog->stop_at_operand && (argv[i][0] != '-' || argv[i][1] == '\0'))
            break;
    }
    bool digits_are_options = has_digit_short(prog);
    int nops = 0;
    char why[WHY_MAX];
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        bool operand =
            a[0] != '-' || a[1] == '\0' || (a[1] >= '0' && a[1] <= '9' && !digits_are_options);
        if (strcmp(a, "--") == 0) {
            for (i++; i < argc; i++)
                argv[1 + nops++] = argv[i];
            break;
        }
        if (operand) {
            if (prog->stop_at_operand) {
                for (; i < argc; i++)
                    argv[1 + nops++] = argv[i];
                break;
            }
            argv[1 + nops++] = a;
            continue;
        }
        if (a[1] == '-') {
            const char *name = a + 2, *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            const rcu_opt *o = find_long(prog, name, len);
            if (o == NULL) {
                if (eq)
                    return usage_error(prog, "unknown option '--%.*s'", (int)len, name);
                return usage_error(prog, "unknown option '%s'", a);
            }
            const char *value = eq ? eq + 1 : NULL;
            if (value == NULL && o->kind != RCU_OPT_BOOL) {
                if (i + 1 >= argc)
                    return usage_error(prog, "--%s needs a value", o->name);
                value = argv[++i];
            }
            if (apply(o, value, why, sizeof why) != 0)
                return usage_error(prog, "--%s: %s", o->name, why);
            continue;
        }
        /* short options: -f, -fv, -o FILE, -oFILE */
        for (const char *p = a + 1; *p; p++) {
            const rcu_opt *o = find_short(prog, *p);
            if (o == NULL)
                return usage_error(prog, "unknown option '-%c'", *p);
            const char *value = NULL;
            if (o->kind != RCU_OPT_BOOL) {
                if (p[1] != '\0')
                    value = p + 1;
                else if (i + 1 < argc)
                    value = argv[++i];
                else
                    return usage_error(prog, "-%c (--%s) needs a value", *p, o->name);
            }
            if (apply(o, value, why, sizeof why) != 0)
                return usage_error(prog, "-%c (--%s): %s", *p, o->name, why);
            if (value != NULL)
                break;
        }
    }
    if ((size_t)nops > prog->max_operands)
        return usage_error(prog, "unexpected argument '%s'", argv[1 + prog->max_operands]);
    if (noperands)
        *noperands = nops;
    argv[1 + nops] = NULL;
    return RCU_OPT_GO_ON;
}

/* ------------------------------------------------------------ --help */

#define HELP_COL 28
#define HELP_WIDTH 80

/* Write TEXT word-wrapped from column COL (the cursor is at column AT). */
static void wrap(FILE *out, const char *text, int col, int at)
{
    const char *p = text;
    while (*p) {
        if (*p == '\n') {
            fprintf(out, "\n%*s", col, "");
            at = col;
            p++;
            continue;
        }
        size_t word = strcspn(p, " \n");
        if (at > col && at + 1 + (int)word > HELP_WIDTH) {
            fprintf(out, "\n%*s", col, "");
            at = col;
        } else if (at > col) {
            fputc(' ', out);
            at++;
        }
        fwrite(p, 1, word, out);
        at += (int)word;
        p += word;
        while (*p == ' ')
            p++;
    }
    fputc('\n', out);
}

static const char *default_meta(const rcu_opt *o)
{
    switch (o->kind) {
    case RCU_OPT_INT:
        return "N";
    case RCU_OPT_SIZE:
        return "BYTES";
    case RCU_OPT_DURATION:
        return "DURATION";
    default:
        return "VALUE";
    }
}

static void print_table(FILE *out, const rcu_opt *opts)
{
    for (const rcu_opt *o = opts; o && o->name; o++) {
        char head[128], text[1024], cur[128];
        int n;
        if (o->short_name)
            n = snprintf(head, sizeof head, "  -%c, --%s", o->short_name, o->name);
        else
            n = snprintf(head, sizeof head, "      --%s", o->name);
        if (o->kind == RCU_OPT_ENUM && !o->meta) {
            char list[256] = "";
            for (int i = 0; o->choices[i]; i++)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? "|" : "",
                         o->choices[i]);
            n += snprintf(head + n, sizeof head - (size_t)n, " %s", list);
        } else if (o->kind != RCU_OPT_BOOL) {
            n += snprintf(head + n, sizeof head - (size_t)n, " %s",
                          o->meta ? o->meta : default_meta(o));
        }
        const char *def = o->def;
        if (def == NULL && !(o->flags & RCU_OPT_NODEFAULT) && o->kind != RCU_OPT_BOOL) {
            rcu_opt_format(o, cur, sizeof cur);
            def = cur[0] ? cur : NULL;
        }
        if (def && !(o->flags & RCU_OPT_NODEFAULT))
            snprintf(text, sizeof text, "%s (default: %s)", o->help ? o->help : "", def);
        else
            snprintf(text, sizeof text, "%s", o->help ? o->help : "");
        fputs(head, out);
        if (n >= HELP_COL - 1) {
            fprintf(out, "\n%*s", HELP_COL, "");
        } else {
            fprintf(out, "%*s", HELP_COL - n, "");
        }
        wrap(out, text, HELP_COL, HELP_COL);
    }
}

void rcu_opt_print_help(const rcu_opt_prog *prog, FILE *out)
{
    const char *u = prog->usage ? prog->usage : "[OPTIONS]";
    bool first = true;
    while (*u) {
        size_t len = strcspn(u, "\n");
        /* GNU's form, which help2man turns into the SYNOPSIS of a manual page */
        fprintf(out, "%s %s %.*s\n", first ? "Usage:" : "   or:", prog->name, (int)len, u);
        first = false;
        u += len;
        if (*u == '\n')
            u++;
    }
    if (prog->about)
        fprintf(out, "\n%s", prog->about);
    fprintf(out, "\nOptions:\n");
    print_table(out, prog->opts);
    static const rcu_opt builtin[] = {
        {.name = "help",
         .short_name = 'h',
         .kind = RCU_OPT_BOOL,
         .help = "print this help and exit"},
        {.name = "version", .kind = RCU_OPT_BOOL, .help = "print the version and exit"},
        {0},
    };
    if (prog->more) {
        fprintf(out, "\n%s:\n", prog->more_title ? prog->more_title : "Common options");
        print_table(out, prog->more);
    }
    print_table(out, builtin);
    if (prog->epilog)
        fprintf(out, "\n%s", prog->epilog);
}

void rcu_opt_print_version(const rcu_opt_prog *prog, FILE *out)
{
    fprintf(out, "%s (ringcask) %d.%d.%d\n", prog->name, RC_VERSION_MAJOR, RC_VERSION_MINOR,
            RC_VERSION_PATCH);
    if (prog->version_extra)
        prog->version_extra(out);
}

/* ------------------------------------------------------------ config */

void rcu_opt_print_config(const rcu_opt_prog *prog, FILE *out)
{
    for (const rcu_opt *o = prog->opts; o && o->name; o++) {
        if (o->flags & RCU_OPT_NOCONFIG)
            continue;
        char v[256];
        rcu_opt_format(o, v, sizeof v);
        if (o->kind == RCU_OPT_STRING && *(const char *const *)o->dest == NULL)
            fprintf(out, "# %s =\n", o->name);
        else
            fprintf(out, "%s = %s\n", o->name, v);
    }
}

/* ------------------------------------------------------------ --sync */

int rcu_sync_parse(const char *s, rcu_sync *mode, uint32_t *interval_ms, char *why, size_t cap)
{
    if (strcmp(s, "always") == 0 || strcmp(s, "none") == 0) {
        *mode = s[0] == 'a' ? RCU_SYNC_ALWAYS : RCU_SYNC_NONE;
        return 0;
    }
    if (strncmp(s, "interval:", 9) == 0 && s[9] >= '0' && s[9] <= '9') {
        char *end = NULL;
        errno = 0;
        unsigned long long ms = strtoull(s + 9, &end, 10);
        if (*end == '\0' && errno == 0 && ms >= 1 && ms <= 3600000) {
            *mode = RCU_SYNC_INTERVAL;
            *interval_ms = (uint32_t)ms;
            return 0;
        }
        snprintf(why, cap, "interval:MS takes 1..3600000 milliseconds, got '%s'", s);
        return -1;
    }
    snprintf(why, cap, "expected always, interval:MS or none, got '%s'", s);
    return -1;
}

void rcu_sync_format(rcu_sync mode, uint32_t interval_ms, char *out, size_t cap)
{
    if (mode == RCU_SYNC_INTERVAL)
        snprintf(out, cap, "interval:%u", (unsigned)interval_ms);
    else
        snprintf(out, cap, "%s", mode == RCU_SYNC_NONE ? "none" : "always");
}
