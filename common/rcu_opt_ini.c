/*
 * rcu_opt_ini.c — config files for the option table (rcu_opt_load_ini).
 *
 * The file is INI, read by inih (Debian libinih-dev): `name = value` lines
 * with the options' long names, `#` or `;` comments, and optionally a
 * `[SECTION]` header (e.g. [kvd]); keys in any other section are refused so
 * that a typo never passes silently. The values are kept for the life of
 * the process: string options point into them.
 */
#include "rcu_opt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

/* Every value string a config file set, reachable for the life of the process
 * (string options point into them, also after a flag overrides them). */
static char **kept;
static size_t n_kept;

static char *keep(const char *value)
{
    char **grown = realloc(kept, (n_kept + 1) * sizeof *kept);
    if (grown == NULL)
        return NULL;
    kept = grown;
    char *copy = strdup(value);
    if (copy != NULL)
        kept[n_kept++] = copy;
    return copy;
}

typedef struct ini_state {
    const rcu_opt_prog *prog;
    const char *path;
    const char *section;
    int status;
    char why[320]; /* the first bad setting; inih gives its line */
} ini_state;

static int on_entry(void *user, const char *section, const char *name, const char *value)
{
    ini_state *st = user;
    if (st->status != 0)
        return 0;
    if (section[0] != '\0' && (st->section == NULL || strcmp(section, st->section) != 0)) {
        fprintf(stderr, "%s: %s: [%s]: unknown section (settings go before any section%s%s%s)\n",
                st->prog->name, st->path, section, st->section ? " or in [" : "",
                st->section ? st->section : "", st->section ? "]" : "");
        st->status = RCU_OPT_USAGE;
        return 0;
    }
    if (value == NULL) {
        fprintf(stderr, "%s: %s: '%s' has no value (name = value)\n", st->prog->name, st->path,
                name);
        st->status = RCU_OPT_USAGE;
        return 0;
    }
    char *copy = keep(value);
    if (copy == NULL) {
        fprintf(stderr, "%s: %s: out of memory\n", st->prog->name, st->path);
        st->status = RCU_OPT_USAGE;
        return 0;
    }
    if (rcu_opt_set_why(st->prog, name, copy, st->why, sizeof st->why) != 0) {
        st->status = RCU_OPT_USAGE;
        return 0;
    }
    return 1;
}

int rcu_opt_load_ini(const rcu_opt_prog *prog, const char *path, const char *section)
{
    ini_state st = {.prog = prog, .path = path, .section = section};
    int rc = ini_parse(path, on_entry, &st);
    if (rc == -1) {
        fprintf(stderr, "%s: --config %s: %s\n", prog->name, path, strerror(errno));
        return RCU_OPT_USAGE;
    }
    if (st.why[0] != '\0') {
        fprintf(stderr, "%s: --config %s:%d: %s\n", prog->name, path, rc, st.why);
        return RCU_OPT_USAGE;
    }
    if (st.status != 0)
        return st.status;
    if (rc != 0) {
        fprintf(stderr, "%s: --config %s: line %d is not 'name = value' or '[section]'\n",
                prog->name, path, rc);
        return RCU_OPT_USAGE;
    }
    return 0;
}
