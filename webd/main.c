/* drover-web — the HTTP API in front of droverd (README "HTTP API").
 *
 * main: settings from flags and --config FILE (common/config.c: the same
 * keys, e.g. /etc/drover/drover-web.yaml), then the server (server.c) and
 * the droverd client pool (client.c); SIGTERM or SIGINT stops it: streams
 * end, connections are joined. `drover-web --print-schemas` prints the
 * JSON Schemas of the API's objects, generated from the proto descriptors
 * (webd/openapi.json's components.schemas; a test keeps them equal).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "api.h"
#include "config.h"
#include "log.h"
#include "pbjson.h"
#include "units.h"
#include "util.h"
#include "web.h"
#include "webd.h"

typedef struct {
    web_config_t cfg;
    bool print_schemas;
    char *owned[64];
    int n_owned;
} options_t;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: drover-web [--listen HOST:PORT] [--api ENDPOINT] [--config FILE] ...\n"
            "\n"
            "The drover HTTP API (REST + server-sent events) in front of droverd's API socket.\n"
            "Every request but /healthz and /api/v1/openapi.json needs an API token:\n"
            "'Authorization: Bearer TOKEN' (drover token create NAME --role ROLE).\n"
            "\n"
            "  --listen HOST:PORT        where to listen (127.0.0.1:7080)\n"
            "  --api ENDPOINT            droverd's API socket (ipc:///run/drover/api.sock)\n"
            "  --key FILE                secret key for a tcp:// API endpoint (CURVE)\n"
            "  --server-key FILE         droverd's public key for a tcp:// endpoint\n"
            "  --max-body SIZE           largest request body (4Mi)\n"
            "  --header-limit SIZE       memory for a request's head (64Ki)\n"
            "  --max-connections N       connections in all (256)\n"
            "  --max-connections-per-ip N  connections from one address (32)\n"
            "  --timeout DURATION        close a connection idle this long (30s)\n"
            "  --rate-limit N            requests a second per client address (50; 0 = none)\n"
            "  --rate-burst N            requests at once above the rate (100)\n"
            "  --tls-cert FILE, --tls-key FILE  serve HTTPS (PEM)\n"
            "  --assets DIR              the web console's files, served at / (" DROVER_WEB_ASSETS
            ")\n"
            "  --config FILE             settings file (keys as the flags)\n"
            "  --print-schemas           print the API objects' JSON Schemas and exit\n"
            "  --debug                   debug logging\n"
            "  -h, --help, -V, --version\n");
}

void web_config_defaults(web_config_t *c)
{
    *c = (web_config_t){.listen = "127.0.0.1:7080",
                        .api = API_DEFAULT_ENDPOINT,
                        .max_body = 4u << 20,
                        .header_limit = 64u << 10,
                        .max_conns = 256,
                        .max_conns_ip = 32,
                        .timeout_ms = 30000,
                        .rate = 50,
                        .burst = 100,
                        .assets = DROVER_WEB_ASSETS};
}

static const char *keep(options_t *o, const char *v)
{
    if (o->n_owned == (int)(sizeof o->owned / sizeof *o->owned))
        return xstrdup(v); /* a setting given over and over: kept till exit */
    return o->owned[o->n_owned++] = xstrdup(v);
}

static int parse_count(const char *v, uint64_t max, uint32_t *out)
{
    uint64_t n;
    if (spec_parse_uint(v, max, &n) < 0)
        return -EINVAL;
    *out = (uint32_t)n;
    return 0;
}

static int apply(const char *key, const char *value, void *arg)
{
    options_t *o = arg;
    web_config_t *c = &o->cfg;
    if (strcmp(key, "listen") == 0)
        c->listen = keep(o, value);
    else if (strcmp(key, "api") == 0)
        c->api = keep(o, value);
    else if (strcmp(key, "key") == 0)
        api_set_key_flag(false, keep(o, value));
    else if (strcmp(key, "server-key") == 0)
        api_set_key_flag(true, keep(o, value));
    else if (strcmp(key, "max-body") == 0) {
        int rc = spec_parse_memory(value, &c->max_body);
        return rc < 0 || c->max_body == 0 ? -EINVAL : 0;
    } else if (strcmp(key, "header-limit") == 0) {
        int rc = spec_parse_memory(value, &c->header_limit);
        if (rc == 0 && (c->header_limit < 4096 || c->header_limit > (16u << 20))) {
            config_explain("between 4Ki and 16Mi");
            return -EINVAL;
        }
        return rc;
    } else if (strcmp(key, "max-connections") == 0) {
        int rc = parse_count(value, 65536, &c->max_conns);
        return rc < 0 || c->max_conns == 0 ? -EINVAL : 0;
    } else if (strcmp(key, "max-connections-per-ip") == 0) {
        int rc = parse_count(value, 65536, &c->max_conns_ip);
        return rc < 0 || c->max_conns_ip == 0 ? -EINVAL : 0;
    } else if (strcmp(key, "timeout") == 0) {
        int rc = spec_parse_duration(value, &c->timeout_ms);
        return rc < 0 || c->timeout_ms < 1000 ? -EINVAL : 0;
    } else if (strcmp(key, "rate-limit") == 0)
        return parse_count(value, 1000000, &c->rate);
    else if (strcmp(key, "rate-burst") == 0) {
        int rc = parse_count(value, 1000000, &c->burst);
        return rc < 0 || c->burst == 0 ? -EINVAL : 0;
    } else if (strcmp(key, "tls-cert") == 0)
        c->tls_cert = keep(o, value);
    else if (strcmp(key, "tls-key") == 0)
        c->tls_key = keep(o, value);
    else if (strcmp(key, "assets") == 0)
        c->assets = keep(o, value);
    else if (strcmp(key, "print-schemas") == 0)
        o->print_schemas = true;
    else if (strcmp(key, "debug") == 0)
        log_set_debug(strcmp(value, "false") != 0);
    else
        return -ENOENT;
    return 0;
}

/* The messages the API answers with: their schemas and those they hold. */
static int print_schemas(void)
{
    static const ProtobufCMessageDescriptor *const roots[] = {
        &drover__status_view__descriptor,   &drover__run_view__descriptor,
        &drover__task_view__descriptor,     &drover__agent_view__descriptor,
        &drover__pool_view__descriptor,     &drover__schedule_view__descriptor,
        &drover__token_view__descriptor,    &drover__event_record__descriptor,
        &drover__artifact_view__descriptor, &drover__spec_error__descriptor,
        &drover__caller_view__descriptor};
    json_t *schemas = json_object();
    for (size_t i = 0; i < sizeof roots / sizeof *roots; i++)
        pbjson_schema(roots[i], schemas);
    json_dumpf(schemas, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
    fputc('\n', stdout);
    json_decref(schemas);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"listen", required_argument, 0, 0},
                                             {"api", required_argument, 0, 0},
                                             {"key", required_argument, 0, 0},
                                             {"server-key", required_argument, 0, 0},
                                             {"max-body", required_argument, 0, 0},
                                             {"header-limit", required_argument, 0, 0},
                                             {"max-connections", required_argument, 0, 0},
                                             {"max-connections-per-ip", required_argument, 0, 0},
                                             {"timeout", required_argument, 0, 0},
                                             {"rate-limit", required_argument, 0, 0},
                                             {"rate-burst", required_argument, 0, 0},
                                             {"tls-cert", required_argument, 0, 0},
                                             {"tls-key", required_argument, 0, 0},
                                             {"assets", required_argument, 0, 0},
                                             {"config", required_argument, 0, 0},
                                             {"print-schemas", no_argument, 0, 0},
                                             {"debug", no_argument, 0, 0},
                                             {"help", no_argument, 0, 'h'},
                                             {"version", no_argument, 0, 'V'},
                                             {0, 0, 0, 0}};
    options_t o = {0};
    int rc = 1;
    log_init("drover-web");
    log_daemon_timestamps();
    web_config_defaults(&o.cfg);
    int status = config_parse_args(argc, argv, longopts, apply, &o, NULL, usage);
    if (status >= 0 || o.print_schemas) {
        rc = status >= 0 ? status : print_schemas();
        goto out;
    }

    /* signals: handled by sigwait on this thread; MHD's threads inherit
     * the mask, so none of them is interrupted */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    web_console_init(o.cfg.assets);
    web_client_init(o.cfg.api, o.cfg.max_conns);
    if (web_server_start(&o.cfg) == 0) {
        int sig = 0;
        sd_notify(0, "READY=1\nSTATUS=serving the HTTP API");
        sigwait(&set, &sig);
        log_info("stopping (signal %d)", sig);
        sd_notify(0, "STOPPING=1");
        web_server_stop();
        rc = 0;
    }
    web_client_shutdown();
out:
    for (int i = 0; i < o.n_owned; i++)
        free(o.owned[i]);
    return rc;
}
