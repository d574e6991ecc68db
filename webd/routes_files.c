/* routes_files — a run's logs and artifacts over HTTP (README "HTTP API"):
 *   GET /api/v1/runs/{id}/logs/{task}            text/plain, or SSE with ?follow=1
 *   GET /api/v1/runs/{id}/artifacts              {"artifacts": [ArtifactView]}
 *   GET /api/v1/runs/{id}/artifacts/{task}/{name}  the bytes (a directory: a tar)
 * Not built yet: each answers 501. */
#include "web.h"

static void not_yet(web_req_t *r)
{
    web_error(r, 501, "not_implemented", "not implemented yet");
}

const web_route_t routes_files[] = {
    {"GET", "/api/v1/runs/{id}/logs/{task}", not_yet, 0},
    {"GET", "/api/v1/runs/{id}/artifacts", not_yet, 0},
    {"GET", "/api/v1/runs/{id}/artifacts/{task}/{name}", not_yet, 0},
    {0},
};
