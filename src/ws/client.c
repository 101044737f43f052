/* WebSocket client: URL, name resolution off the loop thread, non-blocking
 * connect (trying each address), the opening handshake (RFC 6455 section
 * 4.1). Once open, the connection is conn.c's like any other.
 *
 * Each client connection has a context of its own, freed with it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loop/sock.h"
#include "transport/resolve.h"
#include "transport/tls.h"
#include "ws/client_internal.h"
#include "ws/ws_internal.h"
#include "wsk/url.h"

struct client {
    struct wsk__ctx ctx;
};

void wsk_client_config_init(struct wsk_client_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->connect_timeout_ms = 10000;
}

static void hs_free(struct wsk__client_hs *hs)
{
    if (!hs)
        return;
    free(hs->host_header);
    free(hs->target);
    for (size_t i = 0; i < hs->num_subprotocols; i++)
        free(hs->subprotocols[i]);
    free(hs->subprotocols);
    free(hs->request);
    if (hs->addrs)
        freeaddrinfo(hs->addrs);
    wsk__resolve_cancel(hs->job);
    free(hs->proxy);
    free(hs);
}

void wsk__client_conn_gone(struct wsk_conn *c)
{
    hs_free(c->hs);
    c->hs = NULL;
}

void wsk__client_ctx_empty(struct wsk__ctx *ctx)
{
    struct client *cl = (struct client *)ctx;
    ctx->in_teardown = true;
    wsk_defer_cancel(ctx->loop, &ctx->flush_defer);
    wsk_timer_stop(ctx->loop, &ctx->flush_timer);
    wsk_timer_stop(ctx->loop, &ctx->sweep);
    wsk__tls_ctx_unref(ctx->tls_ctx);
    free(ctx->zbuf);
    free(ctx->mbuf);
    wsk__seg_pool_free(&ctx->pool);
    free(cl);
}

/* ws://host[:port][/path][?query] or wss://..., split by wsk_url_parse().
 * Fragments are refused: they mean nothing to a WebSocket URL (RFC 6455
 * section 3). */
static int parse_url(const char *url, struct wsk__client_hs *hs)
{
    struct wsk_url u;
    if (!url || wsk_url_parse(url, strlen(url), &u) < 0 ||
        (u.scheme != WSK_URL_WS && u.scheme != WSK_URL_WSS) || u.has_fragment ||
        u.host.len >= sizeof hs->host)
        return WSK_EURL;
    hs->is_tls = u.scheme == WSK_URL_WSS;
    memcpy(hs->host, u.host.ptr, u.host.len);
    hs->host[u.host.len] = 0;
    snprintf(hs->port, sizeof hs->port, "%u", (unsigned)u.port);
    size_t target_cap = strlen(url) + 2, host_cap = u.host.len + 9;
    hs->target = malloc(target_cap);
    hs->host_header = malloc(host_cap);
    if (!hs->target || !hs->host_header)
        return -ENOMEM;
    if (wsk_url_request_target(&u, hs->target, target_cap) < 0 ||
        wsk_url_host_header(&u, hs->host_header, host_cap) < 0)
        return WSK_EURL; /* cannot happen: the sizes are the documented bounds */
    return 0;
}

static int build_request(struct wsk__client_hs *hs, const struct wsk_client_config *cfg)
{
    uint8_t rnd[16];
    arc4random_buf(rnd, sizeof rnd);
    wsk_handshake_client_key(rnd, hs->key);
    char offer[WSK_DEFLATE_HEADER_MAX] = "";
    if (cfg->deflate.enabled) {
        int rv = wsk_deflate_offer(offer, sizeof offer, &cfg->deflate);
        if (rv < 0)
            return rv;
        hs->deflate = cfg->deflate;
    }
    size_t extra_len = 1 + strlen(offer) + 32;
    for (size_t i = 0; i < cfg->num_headers; i++)
        extra_len += strlen(cfg->headers[i]) + 2;
    char *extra = malloc(extra_len);
    if (!extra)
        return -ENOMEM;
    extra[0] = 0;
    size_t off = 0;
    for (size_t i = 0; i < cfg->num_headers; i++)
        off += (size_t)sprintf(extra + off, "%s\r\n", cfg->headers[i]);
    if (*offer)
        off += (size_t)sprintf(extra + off, "Sec-WebSocket-Extensions: %s\r\n", offer);
    struct wsk_handshake_client_request r = {
        .host = hs->host_header,
        .target = hs->target,
        .key = hs->key,
        .subprotocols = (const char *const *)hs->subprotocols,
        .num_subprotocols = hs->num_subprotocols,
        .origin = cfg->origin,
        .extra_headers = extra,
    };
    size_t cap = 1024 + extra_len + strlen(hs->target) + strlen(hs->host_header) +
                 (cfg->origin ? strlen(cfg->origin) : 0);
    for (size_t i = 0; i < hs->num_subprotocols; i++)
        cap += strlen(hs->subprotocols[i]) + 2;
    hs->request = malloc(cap);
    if (!hs->request) {
        free(extra);
        return -ENOMEM;
    }
    int n = wsk_handshake_client_request(hs->request, cap, &r);
    free(extra);
    if (n < 0)
        return n == -EINVAL ? WSK_EURL : n;
    hs->request_len = (size_t)n;
    return 0;
}

static void fail(struct wsk_conn *c, int error)
{
    if (c->hs && c->hs->in_connect_call) {
        /* on_close must not run before wsk_client_connect() returns: end
         * the connection on this iteration's flush round, at once but
         * after the call. */
        c->error = error;
        c->flags |= WSK__F_FAIL_SOON;
        wsk__conn_want_flush(c);
        return;
    }
    wsk__conn_abort(c, error);
}

void wsk__client_fail(struct wsk_conn *c, int error)
{
    fail(c, error);
}

/* Tries the next address; ends the connection when none is left. */
static void try_connect(struct wsk_conn *c)
{
    struct wsk__client_hs *hs = c->hs;
    while (hs->next_addr) {
        struct addrinfo *ai = hs->next_addr;
        hs->next_addr = ai->ai_next;
        int fd;
        int rv = wsk__sock_connect_start(ai->ai_addr, ai->ai_addrlen, &fd);
        if (rv < 0 && rv != -EINPROGRESS) {
            hs->last_error = rv;
            continue;
        }
        wsk__sock_set_nodelay(fd);
        c->st.io.fd = fd;
        c->state = WSK__CONNECTING;
        rv = wsk_io_start(c->ctx->loop, &c->st.io, WSK_IO_WRITE);
        if (rv < 0) {
            close(fd);
            c->st.io.fd = -1;
            fail(c, rv);
        }
        return;
    }
    fail(c, hs->last_error ? hs->last_error : -ECONNREFUSED);
}

void wsk__client_on_writable(struct wsk_conn *c)
{
    struct wsk__client_hs *hs = c->hs;
    int rv = wsk__sock_connect_finish(c->st.io.fd);
    if (rv < 0) {
        wsk_io_stop(c->ctx->loop, &c->st.io);
        close(c->st.io.fd);
        c->st.io.fd = -1;
        hs->last_error = rv;
        try_connect(c);
        return;
    }
    c->state = WSK__HANDSHAKE;
    wsk_http_parser_init(&hs->parser, 0);
    if (hs->proxy) {
        wsk__client_proxy_start(c); /* then wsk__client_start_handshake() */
        return;
    }
    wsk__client_start_handshake(c);
}

void wsk__client_start_handshake(struct wsk_conn *c)
{
    struct wsk__client_hs *hs = c->hs;
    int rv;
    if (hs->is_tls) {
        rv = wsk__conn_start_tls(c, false, hs->host);
        if (rv < 0)
            fail(c, rv);
        return; /* the request goes once TLS is up: wsk__client_on_tls_done() */
    }
    rv = wsk__conn_queue(c, hs->request, hs->request_len);
    if (rv < 0)
        fail(c, rv);
}

void wsk__client_on_tls_done(struct wsk_conn *c)
{
    int rv = wsk__conn_queue(c, c->hs->request, c->hs->request_len);
    if (rv < 0)
        fail(c, rv);
}

void wsk__client_on_head(struct wsk_conn *c, const uint8_t *data, size_t len)
{
    struct wsk__client_hs *hs = c->hs;
    if (hs->proxy_step) {
        wsk__client_proxy_on_data(c, data, len);
        return;
    }
    if (wsk__conn_in_append(c, data, len) < 0) {
        fail(c, -ENOMEM);
        return;
    }
    struct wsk_http_response resp;
    int rv = wsk_http_response_parse(&hs->parser, (const char *)c->in, c->in_len, &resp);
    if (rv == 0)
        return;
    if (rv < 0) {
        fail(c, rv == WSK_EHEADTOOBIG ? WSK_EHTTP : rv);
        return;
    }
    struct wsk_slice chosen;
    int vr = wsk_handshake_client_verify(&resp, hs->key, (const char *const *)hs->subprotocols,
                                         hs->num_subprotocols, &chosen);
    if (vr < 0) {
        if (vr == WSK_EHSTATUS)
            c->http_status = (uint16_t)resp.status;
        fail(c, vr);
        return;
    }
    /* At most one Sec-WebSocket-Extensions line, naming only what we offered. */
    const struct wsk_slice *ext = NULL;
    for (size_t i = 0; i < resp.num_headers; i++) {
        const struct wsk_http_header *h = &resp.headers[i];
        if (h->name.len == 24 && !strncasecmp(h->name.ptr, "Sec-WebSocket-Extensions", 24)) {
            if (ext) {
                fail(c, WSK_EHEXT);
                return;
            }
            ext = &h->value;
        }
    }
    if (ext) {
        struct wsk_deflate_params params;
        int ar = hs->deflate.enabled ? wsk_deflate_accept(ext, &hs->deflate, &params) : WSK_EHEXT;
        if (ar < 0) {
            fail(c, WSK_EHEXT);
            return;
        }
        if (ar > 0) {
            ar = wsk_deflate_new(&c->sess.deflate, &params, WSK_ROLE_CLIENT);
            if (ar < 0) {
                fail(c, ar);
                return;
            }
        }
    }
    const char *q = strchr(hs->target, '?');
    struct wsk_open_event ev = {
        .path = {hs->target, q ? (size_t)(q - hs->target) : strlen(hs->target)},
        .query = {q ? q + 1 : "", q ? strlen(q + 1) : 0},
        .subprotocol = chosen,
        .extensions = c->sess.deflate && ext ? *ext : (struct wsk_slice){"", 0},
        .headers = resp.headers,
        .num_headers = resp.num_headers,
    };
    size_t head_len = (size_t)rv;
    wsk__conn_open(c, &ev, c->in + head_len, c->in_len - head_len);
    if (c->state != WSK__DEAD) {
        hs_free(c->hs);
        c->hs = NULL;
    }
}

/* ---- resolution ---------------------------------------------------------- */

static void resolved(void *data, struct addrinfo *res, int error, const char *why)
{
    struct wsk_conn *c = data;
    struct wsk__client_hs *hs = c->hs;
    hs->job = NULL;
    if (error) {
        const char *host = hs->proxy ? hs->proxy->host : hs->host;
        wsk__log(c->ctx, 2, "cannot resolve %s%s: %s", hs->proxy ? "the proxy " : "", host, why);
        fail(c, error);
        return;
    }
    hs->addrs = res;
    hs->next_addr = res;
    try_connect(c);
}

/* The address to connect to: the server's, or the proxy's. */
static int resolve_next_hop(struct wsk_conn *c)
{
    struct wsk__client_hs *hs = c->hs;
    const char *host = hs->host, *port = hs->port;
    char proxy_port[8];
    if (hs->proxy) {
        snprintf(proxy_port, sizeof proxy_port, "%u", (unsigned)hs->proxy->port);
        host = hs->proxy->host;
        port = proxy_port;
    }
    int rv = wsk__resolve_start(c->ctx->loop, host, port, SOCK_STREAM, resolved, c, &hs->job,
                                &hs->addrs);
    if (rv == 1) {
        hs->next_addr = hs->addrs;
        try_connect(c);
        return 0;
    }
    return rv;
}

/* socks5:// (not socks5h://): the client resolves the server's name and
 * sends the proxy its first address. Takes res (NULL is fine) and frees it;
 * returns false when it holds no usable address. */
static bool keep_target(struct wsk__client_hs *hs, struct addrinfo *res)
{
    bool ok = res && res->ai_addrlen <= sizeof hs->target_addr;
    if (ok)
        memcpy(&hs->target_addr, res->ai_addr, res->ai_addrlen);
    if (res)
        freeaddrinfo(res);
    return ok;
}

static void target_resolved(void *data, struct addrinfo *res, int error, const char *why)
{
    struct wsk_conn *c = data;
    struct wsk__client_hs *hs = c->hs;
    hs->job = NULL;
    if (error || !keep_target(hs, res)) {
        wsk__log(c->ctx, 2, "cannot resolve %s: %s", hs->host, error ? why : "no address");
        fail(c, error ? error : WSK_EDNS);
        return;
    }
    int rv = resolve_next_hop(c);
    if (rv < 0)
        fail(c, rv);
}

static int resolve(struct wsk_conn *c)
{
    struct wsk__client_hs *hs = c->hs;
    if (!hs->proxy || hs->proxy->kind != WSK__PROXY_SOCKS5)
        return resolve_next_hop(c);
    struct addrinfo *res = NULL;
    int rv = wsk__resolve_start(c->ctx->loop, hs->host, hs->port, SOCK_STREAM, target_resolved, c,
                                &hs->job, &res);
    if (rv != 1)
        return rv;
    return keep_target(hs, res) ? resolve_next_hop(c) : WSK_EDNS;
}

int wsk_client_connect(struct wsk_conn **out, struct wsk_loop *loop, const char *url,
                       const struct wsk_client_config *cfg)
{
    struct wsk_client_config defaults;
    if (!cfg) {
        wsk_client_config_init(&defaults);
        cfg = &defaults;
    }
    struct wsk__client_hs *hs = calloc(1, sizeof *hs);
    if (!hs)
        return -ENOMEM;
    int rv = parse_url(url, hs);
    if (rv == 0 && cfg->num_subprotocols) {
        hs->subprotocols = calloc(cfg->num_subprotocols, sizeof *hs->subprotocols);
        if (!hs->subprotocols)
            rv = -ENOMEM;
        for (size_t i = 0; rv == 0 && i < cfg->num_subprotocols; i++) {
            hs->subprotocols[i] = strdup(cfg->subprotocols[i] ? cfg->subprotocols[i] : "");
            hs->num_subprotocols++;
            if (!hs->subprotocols[i])
                rv = -ENOMEM;
        }
    }
    if (rv == 0)
        rv = build_request(hs, cfg);
    if (rv < 0) {
        hs_free(hs);
        return rv;
    }
    struct client *cl = calloc(1, sizeof *cl);
    if (!cl) {
        hs_free(hs);
        return -ENOMEM;
    }
    struct wsk_conn_limits lim = cfg->limits;
    /* One deadline covers DNS, connect and handshake. */
    lim.handshake_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : 10000;
    rv = wsk__ctx_init(&cl->ctx, loop, &cfg->handlers, cfg->user_data, cfg->log, &lim);
    cl->ctx.deflate_min = cfg->deflate.min_compress_size ? cfg->deflate.min_compress_size
                                                         : WSK_DEFLATE_DEFAULT_MIN_SIZE;
    if (rv == 0 && hs->is_tls) {
        char err[512];
        rv = wsk__tls_client_ctx_new(&cl->ctx.tls_ctx, cfg->ca_file, cfg->insecure, cfg->cert_file,
                                     cfg->key_file, err, sizeof err);
        if (rv < 0)
            wsk__log(&cl->ctx, 0, "%s", err);
    }
    if (rv == 0 && cfg->proxy && *cfg->proxy)
        rv = wsk__client_proxy_init(&cl->ctx, hs, cfg->proxy);
    struct wsk_conn *c = NULL;
    if (rv == 0)
        rv = wsk__conn_new(&c, &cl->ctx, -1, WSK__CONNECTING);
    if (rv < 0) {
        hs_free(hs);
        wsk__tls_ctx_unref(cl->ctx.tls_ctx);
        free(cl);
        return rv < 0 ? rv : -ENOMEM;
    }
    c->flags |= WSK__F_CLIENT;
    c->hs = hs;
    *out = c;
    hs->in_connect_call = true;
    rv = resolve(c);
    if (rv < 0)
        fail(c, rv); /* reported through on_close like every other failure */
    if (c->hs)
        c->hs->in_connect_call = false;
    return 0;
}
