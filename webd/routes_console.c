/* routes_console — the web console's static files (README "Web console"):
 *   GET /                  index.html
 *   GET /assets/{file}     the bundles esbuild made (web/build.mjs)
 * from the assets directory (--assets; the package's /usr/share/drover/web,
 * built from web/ at `make` time). No token: the files hold no data; the
 * console asks the API for everything, with the token the user logs in with.
 *
 * Every answer carries the console's Content-Security-Policy: scripts,
 * styles and connections from this origin only, no inline script or
 * style, no eval, no framing (the policy is what makes an escaping slip
 * harmless: a <script> a step printed would not run even if it reached
 * the page). {file} is one path segment (route.c): names starting with '.'
 * are refused, so nothing outside the directory is reachable. With it:
 * nosniff, no framing, no referrer, and same-origin resource and opener
 * policies (no other site loads the files or holds the window).
 */
#include <errno.h>
#include <string.h>

#include "util.h"
#include "web.h"
#include "webd.h"

#define ASSET_MAX (64u << 20)

static const char *assets_dir; /* a setting: lives as long as the process */

void web_console_init(const char *dir)
{
    assets_dir = dir;
}

static const char CSP[] = "default-src 'none'; script-src 'self'; style-src 'self'; "
                          "img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; "
                          "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

static const char *content_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {{".html", "text/html; charset=utf-8"},
                 {".js", "text/javascript; charset=utf-8"},
                 {".css", "text/css; charset=utf-8"},
                 {".map", "application/json"},
                 {".json", "application/json"},
                 {".txt", "text/plain; charset=utf-8"},
                 {".svg", "image/svg+xml"},
                 {".png", "image/png"},
                 {".ico", "image/x-icon"}};
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof *types; i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

static void send_file(web_req_t *r, const char *rel)
{
    if (!assets_dir || !*assets_dir) {
        web_error(r, 404, "not_found",
                  "the web console is not installed (drover-web --assets DIR)");
        return;
    }
    char *path = xasprintf("%s/%s", assets_dir, rel);
    char *data = NULL;
    size_t len = 0;
    int rc = util_read_file(path, ASSET_MAX, &data, &len);
    if (rc == -ENOENT || rc == -ENOTDIR || rc == -EISDIR)
        web_error(r, 404, "not_found", "no file '%s' in the web console", rel);
    else if (rc < 0)
        web_error(r, 500, "internal", "reading the web console's %s: %s", rel, strerror(-rc));
    else {
        web_text(r, 200, content_type(rel), data, len);
        web_add_header(r, "Cache-Control", "no-cache");
    }
    web_add_header(r, "Content-Security-Policy", CSP);
    web_add_header(r, "X-Content-Type-Options", "nosniff");
    web_add_header(r, "X-Frame-Options", "DENY");
    web_add_header(r, "Referrer-Policy", "no-referrer");
    /* no other site may load these files or keep a handle on the window */
    web_add_header(r, "Cross-Origin-Resource-Policy", "same-origin");
    web_add_header(r, "Cross-Origin-Opener-Policy", "same-origin");
    free(data);
    free(path);
}

static void get_index(web_req_t *r)
{
    send_file(r, "index.html");
}

static void get_asset(web_req_t *r)
{
    const char *file = web_capture(r, "file");
    if (!file || file[0] == '.' || strchr(file, '/')) {
        web_error(r, 404, "not_found", "no such file in the web console");
        return;
    }
    char *rel = xasprintf("assets/%s", file);
    send_file(r, rel);
    free(rel);
}

const web_route_t routes_console[] = {
    {"GET", "/", get_index, WEB_NO_AUTH},
    {"GET", "/assets/{file}", get_asset, WEB_NO_AUTH},
    {0},
};
