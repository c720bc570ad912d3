/*
 * route_scripts.c — the seam for Lua scripts (/:bucket/scripts/...).
 *
 * The router sends every request under "/:bucket/scripts/" here with the
 * bucket's policy loaded (req->pol), the caller's scope resolved
 * (req->scope: permissions + prefix; admin checks are up to this module),
 * the raw remainder of the path in req->sub ("" for the listing, "name" or
 * "name/run"), the body in req->body/body_len and the query through
 * http_query / http_query_foreach (decoded). The scripts module replaces
 * this file.
 */
#include "routes.h"

void route_scripts(kvd_request *req)
{
    http_error(req, 501, "not_implemented", "scripts are not available in this build");
}
