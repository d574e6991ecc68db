/* auth — who may talk to droverd (docs/architecture.md,
 * "Security"; issue "a fleet that lets no one in").
 *
 * With a key pair (--key), the agents socket is a CURVE server: traffic is
 * encrypted and every peer proves a public key. droverd answers the ZAP
 * requests itself (a REP socket on inproc://zeromq.zap.01, on the loop), so
 * each message then carries its sender's key as "User-Id". Authorization
 * is per message, against the keys loaded from --authorized-keys (agents;
 * each key file names the one agent it may be) and --api-keys (CLI users,
 * each with a role); SIGHUP reloads both, so adding or revoking a node
 * needs no restart and a revoked key's very next message is refused. An
 * unknown key completes the handshake only to be told it is refused: its
 * messages are never decoded.
 *
 * Safe defaults: without keys droverd's agents socket listens on loopback
 * only and there is no TCP API, unless --insecure, which is logged at
 * every start. The default API socket is ipc:// in a directory of mode 0770 with
 * the socket 0660, so file permissions (root and the drover group) guard
 * it; its callers are admins.
 */
#include "sched_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "keys.h"
#include "log.h"
#include "util.h"

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"

static void zap_reply(zsock_t *zap, zframe_t *request_id, const char *code, const char *text,
                      const char *user)
{
    zmsg_t *r = zmsg_new();
    zmsg_addstr(r, "1.0");
    zmsg_append(r, &request_id);
    zmsg_addstr(r, code);
    zmsg_addstr(r, text);
    zmsg_addstr(r, user);
    zmsg_addmem(r, NULL, 0); /* no metadata */
    zmsg_send(&r, zap);
}

/* A ZAP request: any CURVE key may finish the handshake; its Z85 form
 * becomes the User-Id of its messages, which auth_* check one by one. */
static void on_zap(void *arg)
{
    sched_t *s = arg;
    for (int i = 0; i < 64; i++) {
        zmsg_t *m = zmsg_recv(s->auth.zap);
        if (!m)
            return;
        char *version = zmsg_popstr(m);
        zframe_t *request_id = zmsg_pop(m);
        char *domain = zmsg_popstr(m), *address = zmsg_popstr(m);
        zframe_t *identity = zmsg_pop(m);
        char *mechanism = zmsg_popstr(m);
        zframe_t *key = zmsg_pop(m);
        char z85[41] = "";
        bool ok = version && strcmp(version, "1.0") == 0 && mechanism &&
                  strcmp(mechanism, "CURVE") == 0 && key && zframe_size(key) == 32;
        if (ok)
            zmq_z85_encode(z85, zframe_data(key), 32);
        if (request_id)
            zap_reply(s->auth.zap, request_id, ok ? "200" : "400", ok ? "OK" : "CURVE only", z85);
        zframe_destroy(&identity);
        zframe_destroy(&key);
        free(version);
        free(domain);
        free(address);
        free(mechanism);
        zmsg_destroy(&m);
    }
}

static int load_dirs(sched_t *s, char *err, size_t errlen)
{
    zhashx_t *agents = NULL, *api = NULL;
    if (s->cfg.authorized_keys && keys_load_dir(s->cfg.authorized_keys, &agents, err, errlen) < 0)
        return -EINVAL;
    if (s->cfg.api_keys && keys_load_dir(s->cfg.api_keys, &api, err, errlen) < 0) {
        zhashx_destroy(&agents);
        return -EINVAL;
    }
    for (keys_entry_t *k = api ? zhashx_first(api) : NULL; k; k = zhashx_next(api)) {
        if (strcmp(k->role, "admin") && strcmp(k->role, "submit") && strcmp(k->role, "read")) {
            log_warn("api key %s (%s): role '%s' is not admin, submit or read: it may only read",
                     k->name, k->key, k->role);
            snprintf(k->role, sizeof k->role, "read");
        }
    }
    tokens_add_keys(s, agents); /* keys that joined with a token */
    zhashx_destroy(&s->auth.agent_keys);
    zhashx_destroy(&s->auth.api_keys);
    s->auth.agent_keys = agents;
    s->auth.api_keys = api;
    return 0;
}

static bool is_tcp(const char *ep)
{
    return strncmp(ep, "tcp://", 6) == 0;
}

int auth_init(sched_t *s, char *err, size_t errlen)
{
    const sched_config_t *c = &s->cfg;
    if (c->key) {
        if (keys_load_secret(c->key, &s->auth.cert, err, errlen) < 0)
            return -EINVAL;
        if (!c->authorized_keys) {
            snprintf(err, errlen, "--key needs --authorized-keys DIR (the agents' public keys)");
            return -EINVAL;
        }
        if (load_dirs(s, err, errlen) < 0)
            return -EINVAL;
    }
    s->auth.agents_curve = s->auth.cert != NULL;
    s->auth.api_curve = s->auth.cert != NULL && is_tcp(s->api_endpoint);
    if (s->auth.api_curve && !c->api_keys) {
        snprintf(err, errlen,
                 "a TCP API endpoint needs --api-keys DIR (the CLI users' public keys "
                 "and roles)");
        return -EINVAL;
    }
    const char *how = "create keys with `drover keygen droverd` and `drover keygen AGENT`, then "
                      "start droverd with --key droverd.key_secret --authorized-keys DIR "
                      "(README: Running on several machines)";
    if (!s->auth.cert && !keys_endpoint_is_local(c->listen)) {
        if (!c->insecure) {
            snprintf(err, errlen,
                     "refusing to listen on %s without keys: anyone who reaches it could pose "
                     "as an agent; %s, or pass --insecure",
                     c->listen, how);
            return -EPERM;
        }
        log_warn("INSECURE: agents socket %s is open without keys (--insecure): anyone who "
                 "reaches it can register an agent and receive steps; %s",
                 c->listen, how);
    }
    /* Even on loopback: a TCP API without keys would let any local user
     * in as an admin, around the ipc socket's file permissions. */
    if (!s->auth.cert && is_tcp(s->api_endpoint)) {
        if (!c->insecure) {
            snprintf(err, errlen,
                     "refusing a TCP API endpoint %s without keys (--key and --api-keys); "
                     "use the default ipc socket, or %s",
                     s->api_endpoint, how);
            return -EPERM;
        }
        log_warn("INSECURE: API endpoint %s is open without keys (--insecure)", s->api_endpoint);
    }
    if (s->auth.cert) {
        /* The ZAP handler must exist before a CURVE socket is bound. */
        s->auth.zap = zsock_new(ZMQ_REP);
        if (!s->auth.zap || zsock_bind(s->auth.zap, ZAP_ENDPOINT) < 0) {
            snprintf(err, errlen, "ZAP handler: %s", zmq_strerror(zmq_errno()));
            return -EIO;
        }
        zsock_set_rcvtimeo(s->auth.zap, 0);
        s->auth.zap_zev = zev_new(s->loop, zsock_resolve(s->auth.zap), on_zap, s);
        log_info("CURVE on: %zu agent keys, %zu api keys", zhashx_size(s->auth.agent_keys),
                 s->auth.api_keys ? zhashx_size(s->auth.api_keys) : 0);
    }
    return 0;
}

/* A monitor event of the agents socket: two frames, (u16 event, u32
 * value) and the peer's address. */
static void on_monitor(void *arg)
{
    sched_t *s = arg;
    for (int i = 0; i < 64; i++) {
        zmsg_t *m = zmsg_recv(s->auth.monitor);
        if (!m)
            return;
        zframe_t *head = zmsg_first(m), *addr = zmsg_next(m);
        if (head && zframe_size(head) == 6) {
            uint16_t event;
            uint32_t value;
            memcpy(&event, zframe_data(head), 2);
            memcpy(&value, zframe_data(head) + 2, 4);
            char *address = addr ? zframe_strdup(addr) : xstrdup("?");
            auth_handshake_failed(s, event, (int)value, address);
            free(address);
        }
        zmsg_destroy(&m);
    }
}

void auth_secure(sched_t *s, zsock_t *sock, bool api)
{
    if (!(api ? s->auth.api_curve : s->auth.agents_curve))
        return;
    zcert_apply(s->auth.cert, sock);
    zsock_set_curve_server(sock, 1);
    zsock_set_zap_domain(sock, api ? "api" : "agents");
    if (api || s->auth.monitor)
        return;
    /* Failed handshakes never reach a handler: a monitor counts them. */
    const char *ep = "inproc://drover-agents-monitor";
    if (zmq_socket_monitor(zsock_resolve(sock), ep,
                           ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) < 0 ||
        !(s->auth.monitor = zsock_new_pair(">inproc://drover-agents-monitor"))) {
        log_warn("agents socket monitor: %s (failed handshakes are not counted)",
                 zmq_strerror(zmq_errno()));
        return;
    }
    zsock_set_rcvtimeo(s->auth.monitor, 0);
    s->auth.monitor_zev = zev_new(s->loop, zsock_resolve(s->auth.monitor), on_monitor, s);
}

int auth_prepare_ipc(const char *endpoint, char *err, size_t errlen)
{
    if (strncmp(endpoint, "ipc://", 6) != 0)
        return 0;
    char *dir = xstrdup(endpoint + 6);
    char *slash = strrchr(dir, '/');
    int rc = 0;
    if (slash && slash != dir) {
        *slash = '\0';
        struct stat st;
        if (stat(dir, &st) < 0 && (rc = util_mkdir_p(dir, 0770)) < 0)
            snprintf(err, errlen, "API socket directory %s: %s", dir, strerror(-rc));
        else if (stat(dir, &st) == 0 && (st.st_mode & 07))
            log_warn("API socket directory %s is open to others (mode %04o): anyone on this "
                     "machine may use the API; make it 0770 (root and the drover group)",
                     dir, (unsigned)(st.st_mode & 07777));
    }
    free(dir);
    return rc;
}

void auth_after_bind(const char *endpoint)
{
    if (strncmp(endpoint, "ipc://", 6) == 0 && chmod(endpoint + 6, 0660) < 0)
        log_warn("chmod 0660 %s: %s", endpoint + 6, strerror(errno));
}

void auth_reload(sched_t *s)
{
    char err[512];
    if (!s->auth.cert) {
        log_info("SIGHUP: no keys configured, nothing to reload");
        return;
    }
    if (load_dirs(s, err, sizeof err) < 0) {
        log_error("SIGHUP: %s; keeping the keys loaded before", err);
        return;
    }
    log_info("SIGHUP: reloaded %zu agent keys, %zu api keys", zhashx_size(s->auth.agent_keys),
             s->auth.api_keys ? zhashx_size(s->auth.api_keys) : 0);
    agents_keys_changed(s);
}

int auth_agent_key(sched_t *s, zframe_t *body, const keys_entry_t **key, char *buf, size_t len)
{
    *key = NULL;
    if (!s->auth.agents_curve)
        return 0;
    const char *user = zframe_meta(body, "User-Id");
    *key = user ? zhashx_lookup(s->auth.agent_keys, user) : NULL;
    if (*key)
        return 0;
    if (user && tokens_any(s))
        return -EAGAIN; /* perhaps a Join: tokens_join decides */
    auth_unknown_key(s, user, buf, len);
    return -EPERM;
}

void auth_unknown_key(sched_t *s, const char *user, char *buf, size_t len)
{
    snprintf(buf, len,
             "unknown key %s: add its public key file to droverd's authorized-keys "
             "directory and send droverd SIGHUP (or start the agent with --join-token)",
             user ? user : "(none)");
    s->counters.refused_agents++;
}

void auth_handshake_failed(sched_t *s, int event, int value, const char *address)
{
    s->counters.failed_handshakes++;
    const char *why = "handshake failed";
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
        value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC)
        why = "CURVE handshake failed (the peer does not have droverd's public key: wrong "
              "--scheduler-key?)";
    else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
             value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
        why = "security mechanism mismatch (the peer has no keys: start the agent with --key "
              "and --scheduler-key)";
    else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
        why = "handshake refused by authentication";
    if (s->counters.failed_handshakes < 100 || s->counters.failed_handshakes % 1000 == 0)
        log_warn("agents socket: %s from %s (%" PRIu64 " failed handshakes so far)", why, address,
                 s->counters.failed_handshakes);
}

int auth_api_caller(sched_t *s, zframe_t *body, api_caller_t *caller, char *why, size_t len)
{
    memset(caller, 0, sizeof *caller);
    if (!s->auth.api_curve) { /* ipc: guarded by file permissions */
        caller->role = API_ROLE_ADMIN;
        snprintf(caller->name, sizeof caller->name, "local");
        return 0;
    }
    const char *user = zframe_meta(body, "User-Id");
    const keys_entry_t *k = user && s->auth.api_keys ? zhashx_lookup(s->auth.api_keys, user) : NULL;
    if (!k) {
        snprintf(why, len,
                 "permission denied: key %s is not in droverd's api-keys directory (an admin "
                 "adds it and sends droverd SIGHUP)",
                 user ? user : "(none)");
        s->counters.refused_api++;
        return -EPERM;
    }
    caller->role = strcmp(k->role, "admin") == 0    ? API_ROLE_ADMIN
                   : strcmp(k->role, "submit") == 0 ? API_ROLE_SUBMIT
                                                    : API_ROLE_READ;
    snprintf(caller->name, sizeof caller->name, "%s", k->name);
    return 0;
}

void auth_shutdown(sched_t *s)
{
    zev_destroy(&s->auth.monitor_zev);
    zsock_destroy(&s->auth.monitor);
    zev_destroy(&s->auth.zap_zev);
    zsock_destroy(&s->auth.zap);
    zcert_destroy(&s->auth.cert);
    zhashx_destroy(&s->auth.agent_keys);
    zhashx_destroy(&s->auth.api_keys);
}
