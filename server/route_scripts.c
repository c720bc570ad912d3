/*
 * route_scripts.c — the seam for Lua scripts (/:bucket/scripts/...).
 *
 * The router sends every request under "/:bucket/scripts/" here with the
 * bucket's policy loaded (req->pol), the caller's scope resolved
 * (req->scope: permissions + prefix; admin checks are up to this module),
 * the raw remainder of the path in req->sub ("" for the listing, "name" or
 * "name/run"), the body in req->body/body_len and the query through
 * http_query / http_query_foreach (decoded). Limits are in srv->cfg
 * (script_instructions, script_memory, script_timeout_ms); runs are counted
 * with metrics_script_run(). The scripts module replaces this file.
 */
#include "routes.h"

int route_scripts_init(kvd *srv)
{
    srv->scripts = NULL;
    return 0;
}

void route_scripts_shutdown(kvd *srv)
{
    srv->scripts = NULL;
}

void route_scripts(kvd_request *req)
{
    http_error(req, 501, "not_implemented", "scripts are not available in this build");
}
