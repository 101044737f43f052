/* WebSocket server: listeners, the HTTP/1.1 request head, the upgrade (RFC
 * 6455 section 4.2), plain GET/HEAD for static files and the built-in page,
 * and graceful shutdown. Everything after the upgrade is conn.c's;
 * broadcasts are broadcast.c's, topics topic.c's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "loop/sock.h"
#include "proto/http1_internal.h"
#include "transport/tls.h"
#include "ws/server_internal.h"

#define FILE_CHUNK        (64u * 1024)
#define FILE_QUEUE_TARGET (256u * 1024)

void wsk_server_config_init(struct wsk_server_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->max_head = WSK_HTTP_DEFAULT_MAX_HEAD;
    cfg->max_connections = 100000;
}

static char **copy_strings(const char *const *list, size_t n, int *rv)
{
    if (!n)
        return NULL;
    char **out = calloc(n, sizeof *out);
    if (!out) {
        *rv = -ENOMEM;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        out[i] = strdup(list[i] ? list[i] : "");
        if (!out[i])
            *rv = -ENOMEM;
    }
    return out;
}

static void free_strings(char **list, size_t n)
{
    if (!list)
        return;
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

static void on_accept(void *data, int fd);
static void on_listen_log(void *data, const char *msg);
static void free_defer_cb(struct wsk_loop *loop, struct wsk_defer *d);

static int load_tls(struct wsk_server *srv, struct wsk__tls_ctx **out)
{
    char err[512];
    int rv = wsk__tls_server_ctx_new(out, srv->tls_cert, srv->tls_key, err, sizeof err);
    if (rv < 0)
        wsk__log(&srv->ctx, 0, "%s", err);
    return rv;
}

int wsk_server_reload_tls(struct wsk_server *srv)
{
    if (!srv->ctx.tls_ctx)
        return -EINVAL;
    struct wsk__tls_ctx *fresh;
    int rv = load_tls(srv, &fresh);
    if (rv < 0)
        return rv;
    /* Open connections hold references to the old context. */
    wsk__tls_ctx_unref(srv->ctx.tls_ctx);
    srv->ctx.tls_ctx = fresh;
    wsk__log(&srv->ctx, 2, "TLS certificate and key reloaded");
    return 0;
}

int wsk_server_new(struct wsk_server **out, struct wsk_loop *loop,
                   const struct wsk_server_config *cfg)
{
    struct wsk_server_config defaults;
    if (!cfg) {
        wsk_server_config_init(&defaults);
        cfg = &defaults;
    }
    struct wsk_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return -ENOMEM;
    int rv = wsk__ctx_init(&srv->ctx, loop, &cfg->handlers, cfg->user_data, cfg->log, &cfg->limits);
    srv->ctx.server = srv;
    srv->cfg = *cfg;
    srv->ctx.deflate_min = cfg->deflate.min_compress_size ? cfg->deflate.min_compress_size
                                                          : WSK_DEFLATE_DEFAULT_MIN_SIZE;
    if (!srv->cfg.max_head)
        srv->cfg.max_head = WSK_HTTP_DEFAULT_MAX_HEAD;
    if (!srv->cfg.max_connections)
        srv->cfg.max_connections = 100000;
    srv->subprotocols = copy_strings(cfg->subprotocols, cfg->num_subprotocols, &rv);
    srv->origins = copy_strings(cfg->origins, cfg->num_origins, &rv);
    srv->cfg.subprotocols = (const char *const *)srv->subprotocols;
    srv->cfg.origins = (const char *const *)srv->origins;
    if (cfg->ws_path && !(srv->ws_path = strdup(cfg->ws_path)))
        rv = -ENOMEM;
    srv->cfg.ws_path = srv->ws_path;
    srv->cfg.static_dir = NULL;
    if (rv == 0 && (cfg->tls_cert_file || cfg->tls_key_file)) {
        srv->tls_cert = cfg->tls_cert_file ? strdup(cfg->tls_cert_file) : NULL;
        srv->tls_key = cfg->tls_key_file ? strdup(cfg->tls_key_file) : NULL;
        if (!srv->tls_cert || !srv->tls_key)
            rv = (cfg->tls_cert_file && cfg->tls_key_file) ? -ENOMEM : -EINVAL;
        else
            rv = load_tls(srv, &srv->ctx.tls_ctx);
    }
    srv->cfg.tls_cert_file = srv->tls_cert;
    srv->cfg.tls_key_file = srv->tls_key;
    if (rv == 0 && cfg->static_dir) {
        rv = wsk__static_root_open(&srv->root, cfg->static_dir);
        srv->has_root = rv == 0;
    }
    wsk__listeners_init(&srv->listeners, loop, on_accept, on_listen_log, srv);
    wsk_defer_init(&srv->free_defer, free_defer_cb, srv);
    wsk__broadcast_init(srv);
    if (rv == 0)
        rv = wsk__topics_init(srv);
    if (rv < 0) {
        wsk_server_free(srv);
        return rv;
    }
    *out = srv;
    return 0;
}

static void close_listeners(struct wsk_server *srv)
{
    wsk__listeners_close(&srv->listeners);
}

static void free_now(struct wsk_server *srv);

static void free_defer_cb(struct wsk_loop *loop, struct wsk_defer *d)
{
    (void)loop;
    free_now(d->data);
}

void wsk_server_free(struct wsk_server *srv)
{
    if (!srv || srv->free_pending)
        return;
    if (srv->ctx.cb_depth > 0) {
        /* From inside one of the server's callbacks: the code that called
         * it still uses the connection and the context. End everything now
         * (on_close for each connection), free the memory at the end of the
         * iteration. */
        srv->free_pending = true;
        srv->is_shutting_down = true;
        close_listeners(srv);
        while (srv->ctx.conns)
            wsk__conn_abort(srv->ctx.conns, WSK_ECLOSED);
        wsk_defer_start(srv->ctx.loop, &srv->free_defer);
        return;
    }
    free_now(srv);
}

static void free_now(struct wsk_server *srv)
{
    close_listeners(srv);
    wsk__broadcast_free(srv);
    if (srv->ctx.loop)
        wsk__ctx_destroy(&srv->ctx);
    wsk__topics_free(srv);
    if (srv->has_root)
        wsk__static_root_close(&srv->root);
    free_strings(srv->subprotocols, srv->cfg.num_subprotocols);
    free_strings(srv->origins, srv->cfg.num_origins);
    free(srv->ws_path);
    free(srv->tls_cert);
    free(srv->tls_key);
    wsk__tls_ctx_unref(srv->ctx.tls_ctx);
    free(srv->shutdown_reason);
    free(srv);
}

/* ---- accepting ------------------------------------------------------------ */

static void on_listen_log(void *data, const char *msg)
{
    struct wsk_server *srv = data;
    wsk__log(&srv->ctx, 1, "%s", msg);
}

static void on_accept(void *data, int fd)
{
    struct wsk_server *srv = data;
    struct wsk_conn *c;
    int rv = wsk__conn_new(&c, &srv->ctx, fd, WSK__HTTP);
    if (rv < 0) {
        close(fd);
        wsk__log(&srv->ctx, 1, "accept: cannot take connection fd %d: %s%s", fd, wsk_strerror(rv),
                 rv == WSK_EFDSETSIZE ? " (use --backend epoll or poll)" : "");
        return;
    }
    if (srv->ctx.tls_ctx) {
        rv = wsk__conn_start_tls(c, true, NULL);
        if (rv < 0)
            wsk__conn_abort(c, rv);
    }
}

int wsk_server_listen(struct wsk_server *srv, const char *host, uint16_t port)
{
    /* Names are resolved here, blocking: see wsk/ws.h. */
    int rv = wsk__listeners_add(&srv->listeners, host, port, srv->cfg.reuse_port);
    if (rv < 0)
        return rv;
    int p = wsk__sock_local_port(srv->listeners.l[srv->listeners.n - 1].io.fd);
    return p > 0 ? p : port;
}

uint16_t wsk_server_port(const struct wsk_server *srv)
{
    return wsk__listeners_port(&srv->listeners);
}

size_t wsk_server_num_connections(const struct wsk_server *srv)
{
    return srv->ctx.num_open;
}

/* ---- the request head ----------------------------------------------------- */

void wsk__server_conn_gone(struct wsk_conn *c)
{
    /* c->http and c->subs share their place: before the upgrade, after. */
    if (c->flags & WSK__F_UPGRADED) {
        if (c->subs)
            wsk__topics_conn_gone(c);
    } else if (c->http) {
        wsk__http_done(c);
    }
}

static bool slice_eq(struct wsk_slice s, const char *z)
{
    size_t n = strlen(z);
    return s.len == n && !memcmp(s.ptr, z, n);
}

/* ---- the application's say on upgrades ------------------------------------- */

static void free_pending_topics(struct wsk__upgrade *u)
{
    while (u->topics) { /* usually none */
        struct wsk__pending_topic *p = u->topics;
        u->topics = p->next;
        free(p);
    }
}

int wsk_conn_choose_subprotocol(struct wsk_conn *c, const char *name)
{
    struct wsk_server *srv = c->ctx->server;
    struct wsk__upgrade *u = srv ? srv->upgrading : NULL;
    if (!u || u->conn != c)
        return WSK_ESTATE;
    if (name && (strlen(name) >= sizeof u->subprotocol || !wsk__http_is_token(name) ||
                 !wsk_http_header_has_token(u->req->headers, u->req->num_headers,
                                            "Sec-WebSocket-Protocol", name)))
        return -EINVAL;
    snprintf(u->subprotocol, sizeof u->subprotocol, "%s", name ? name : "");
    u->has_subprotocol = true;
    return 0;
}

int wsk_conn_set_refusal(struct wsk_conn *c, const char *reason)
{
    struct wsk_server *srv = c->ctx->server;
    struct wsk__upgrade *u = srv ? srv->upgrading : NULL;
    if (!u || u->conn != c)
        return WSK_ESTATE;
    /* Printable ASCII without quotes or backslashes: it goes into log
     * lines as it is. */
    size_t n = 0;
    for (const char *p = reason ? reason : ""; *p && n < sizeof u->refusal - 1; p++)
        u->refusal[n++] = (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\') ? *p : '?';
    u->refusal[n] = 0;
    return 0;
}

/* Asks on_upgrade. Returns 101 to go on, or the status to refuse with; c
 * may have ended meanwhile. */
static int ask_app(struct wsk_server *srv, struct wsk_conn *c, const struct wsk_http_request *req,
                   const struct wsk_handshake_info *info, struct wsk__upgrade *u)
{
    struct sockaddr_storage peer;
    socklen_t peer_len = sizeof peer;
    bool has_peer = getpeername(c->st.io.fd, (struct sockaddr *)&peer, &peer_len) == 0;
    const struct wsk_slice *offered =
        wsk_http_header_get(req->headers, req->num_headers, "Sec-WebSocket-Protocol");
    struct wsk_upgrade_event ev = {
        .path = info->path,
        .query = info->query,
        .origin = info->origin,
        .subprotocols = offered ? *offered : (struct wsk_slice){"", 0},
        .headers = req->headers,
        .num_headers = req->num_headers,
        .peer = has_peer ? (const struct sockaddr *)&peer : NULL,
        .peer_len = has_peer ? peer_len : 0,
    };
    u->conn = c;
    u->req = req;
    u->topics_tail = &u->topics;
    u->has_subprotocol = false;
    u->refusal[0] = 0;
    srv->upgrading = u;
    c->ctx->cb_depth++;
    int rv = srv->cfg.on_upgrade(c, &ev, srv->cfg.user_data);
    c->ctx->cb_depth--;
    srv->upgrading = NULL;
    if (rv == 0)
        return 101;
    if (rv >= 400 && rv <= 599)
        return rv;
    wsk__log(&srv->ctx, 1, "%s: on_upgrade returned %d, not 0 or 400-599: refused with 500",
             wsk_conn_peer(c), rv);
    return 500;
}

/* ---- the upgrade ---------------------------------------------------------- */

static void open_ws(struct wsk_server *srv, struct wsk_conn *c, const struct wsk_http_request *req,
                    const uint8_t *in, size_t in_len, size_t head_len)
{
    struct wsk_handshake_server_config hc = {
        .subprotocols = srv->cfg.subprotocols,
        .num_subprotocols = srv->cfg.num_subprotocols,
        .origins = srv->cfg.origins,
        .num_origins = srv->cfg.num_origins,
    };
    struct wsk_handshake_info info;
    int status = wsk_handshake_server_check(req, &hc, &info);
    const char *why = info.refusal;
    if (status == 101 && srv->cfg.ws_path && !slice_eq(info.path, srv->cfg.ws_path)) {
        status = 404;
        why = "not the WebSocket path";
    }
    if (status == 101 && (srv->is_shutting_down || srv->ctx.num_open >= srv->cfg.max_connections)) {
        status = 503;
        why = srv->is_shutting_down ? "shutting down" : "connection limit reached";
    }
    struct wsk__upgrade up; /* only topics and refusal are read without on_upgrade */
    up.topics = NULL;
    up.refusal[0] = 0;
    if (status == 101 && srv->cfg.on_upgrade) {
        status = ask_app(srv, c, req, &info, &up);
        why = up.refusal[0] ? up.refusal : "refused by the application";
        if (c->state == WSK__DEAD) {
            free_pending_topics(&up);
            return;
        }
        if (status == 101 && up.has_subprotocol)
            info.subprotocol = (struct wsk_slice){up.subprotocol, strlen(up.subprotocol)};
    }
    if (status != 101) {
        free_pending_topics(&up);
        char buf[512];
        int n = wsk_handshake_server_reject(buf, sizeof buf, status);
        wsk__log(&srv->ctx, 3, "%s: upgrade refused with %d: %s", wsk_conn_peer(c), status, why);
        c->flags |= WSK__F_HTTP_CLOSE;
        c->state = WSK__HTTP_REPLY;
        wsk__server_access(c, req->method, req->path, status, 0, why);
        if (n < 0 || wsk__conn_queue(c, buf, (size_t)n) < 0)
            wsk__conn_abort(c, n < 0 ? n : -ENOMEM);
        return;
    }
    /* permessage-deflate: the first acceptable offer, if any. A malformed
     * Sec-WebSocket-Extensions header is answered 400, as ws does. */
    char ext[32 + WSK_DEFLATE_HEADER_MAX] = "";
    char ext_value[WSK_DEFLATE_HEADER_MAX] = "";
    if (srv->cfg.deflate.enabled) {
        struct wsk_deflate_params params;
        char *value = ext_value;
        int rv = wsk_deflate_negotiate(req->headers, req->num_headers, &srv->cfg.deflate, &params,
                                       value, sizeof ext_value);
        if (rv < 0) {
            char rej[512];
            int rn = wsk_handshake_server_reject(rej, sizeof rej, 400);
            c->flags |= WSK__F_HTTP_CLOSE;
            c->state = WSK__HTTP_REPLY;
            wsk__server_access(c, req->method, req->path, 400, 0,
                               "malformed Sec-WebSocket-Extensions");
            if (rn < 0 || wsk__conn_queue(c, rej, (size_t)rn) < 0)
                wsk__conn_abort(c, rn < 0 ? rn : -ENOMEM);
            free_pending_topics(&up);
            return;
        }
        if (rv > 0) {
            rv = wsk_deflate_new(&c->sess.deflate, &params, WSK_ROLE_SERVER);
            if (rv < 0) {
                wsk__conn_abort(c, rv);
                free_pending_topics(&up);
                return;
            }
            snprintf(ext, sizeof ext, "Sec-WebSocket-Extensions: %s\r\n", value);
        }
    }
    char buf[512 + sizeof ext];
    int n = wsk_handshake_server_accept(buf, sizeof buf, &info, ext);
    if (n < 0 || wsk__conn_queue(c, buf, (size_t)n) < 0) {
        wsk__conn_abort(c, n < 0 ? n : -ENOMEM);
        free_pending_topics(&up);
        return;
    }
    wsk__server_access(c, req->method, req->path, 101, 0, NULL);
    if (c->http)
        wsk__http_done(c);
    c->flags |= WSK__F_UPGRADED;
    /* The topics on_upgrade named, before on_open sees the connection. */
    for (struct wsk__pending_topic *p = up.topics; p; p = p->next) {
        int rv = wsk__topics_join(srv, c, p->name, p->len);
        if (rv < 0) {
            wsk__conn_abort(c, rv);
            free_pending_topics(&up);
            return;
        }
    }
    free_pending_topics(&up);
    struct wsk_open_event ev = {
        .path = info.path,
        .query = info.query,
        .subprotocol = info.subprotocol,
        .origin = info.origin,
        .extensions = {ext_value, strlen(ext_value)},
        .headers = req->headers,
        .num_headers = req->num_headers,
    };
    wsk__conn_open(c, &ev, in + head_len, in_len - head_len);
}

void wsk__server_on_head(struct wsk_conn *c, const uint8_t *data, size_t len)
{
    struct wsk_server *srv = c->ctx->server;
    if (!c->in_len && !c->http && len) {
        /* The common case: a whole upgrade request in one read. Parse it
         * where it lies and allocate nothing, so a connection leaves its
         * handshake with no heap memory but its own struct. */
        struct wsk_http_parser p;
        struct wsk_http_request req;
        wsk_http_parser_init(&p, srv->cfg.max_head);
        int rv = wsk_http_request_parse(&p, (const char *)data, len, &req);
        if (rv > 0 && wsk_handshake_is_upgrade(&req)) {
            open_ws(srv, c, &req, data, len, (size_t)rv);
            return;
        }
    }
    if (!c->http) {
        c->http = malloc(sizeof *c->http);
        if (!c->http) {
            wsk__conn_abort(c, -ENOMEM);
            return;
        }
        memset(c->http, 0, sizeof *c->http);
        wsk_http_parser_init(&c->http->parser, srv->cfg.max_head);
        c->http->file_fd = -1;
    }
    if (len && wsk__conn_in_append(c, data, len) < 0) {
        wsk__conn_abort(c, -ENOMEM);
        return;
    }
    if (c->http->body_need) {
        /* The head is in, its body is coming: parse the head again (its
         * slices point into c->in, which may have moved) once all is here. */
        if (c->in_len < c->http->body_need)
            return;
        wsk_http_parser_init(&c->http->parser, srv->cfg.max_head);
    }
    struct wsk_http_request req;
    int rv = wsk_http_request_parse(&c->http->parser, (const char *)c->in, c->in_len, &req);
    if (rv == 0)
        return;
    if (rv < 0) {
        wsk__server_reply_error(c, rv == WSK_EHEADTOOBIG ? 431 : 400, false, false, NULL,
                                rv == WSK_EHEADTOOBIG ? "request head over --max-head"
                                                      : "malformed HTTP request");
        return;
    }
    size_t head_len = (size_t)rv;
    if (wsk_handshake_is_upgrade(&req)) {
        open_ws(srv, c, &req, c->in, c->in_len, head_len);
        return;
    }
    wsk__server_http(srv, c, &req, head_len);
}

/* ---- shutdown ----------------------------------------------------------- */

void wsk_server_shutdown(struct wsk_server *srv, unsigned code, const char *reason)
{
    /* An invalid code must not leave every connection open: say 1001. */
    if (code && !wsk_close_code_is_valid(code))
        code = WSK_CLOSE_GOING_AWAY;
    srv->is_shutting_down = true;
    close_listeners(srv);
    struct wsk__walk w;
    wsk__walk_begin(&srv->ctx, &w);
    for (struct wsk_conn *c; (c = wsk__walk_next(&w));) {
        if (c->state == WSK__OPEN)
            wsk_conn_close(c, code, reason);
        else if (c->state == WSK__HTTP)
            wsk__conn_abort(c, WSK_ECLOSED);
        /* Replies in flight and lingering closes finish by themselves. */
    }
    wsk__walk_end(&srv->ctx, &w);
}
