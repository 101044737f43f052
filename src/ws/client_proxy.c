/* A client's tunnel through an HTTP CONNECT or SOCKS5 proxy, between the
 * TCP connect and the TLS or WebSocket handshake:
 *
 *   http://    CONNECT host:port ---> 2xx head ----------------------+
 *   socks5(h)  greeting --> method --[2: user/pass --> status]--> CONNECT
 *                                                     --> reply 0 --+--> TLS
 *                                                                       or request
 *
 * The messages come from src/proto/proxy.c; this file sends them and reads
 * the answers, which collect in c->in like a response head does. Every
 * answer is small and bounded (an HTTP head by the parser's limit, a SOCKS
 * reply by 262 bytes); the connection's one deadline (connect_timeout_ms)
 * covers the proxy too. The proxy must not send anything past its answer
 * before the server speaks: bytes that arrive early are a failure, not
 * data, so nothing from the proxy can pose as the server's.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws/client_internal.h"
#include "wsk/url.h"
#include "wsk/ws.h"

int wsk__client_proxy_init(struct wsk__ctx *ctx, struct wsk__client_hs *hs, const char *spec)
{
    struct wsk__proxy *p = malloc(sizeof *p);
    if (!p)
        return -ENOMEM;
    const char *why;
    if (wsk__proxy_parse(spec, p, &why) < 0) {
        wsk__log(ctx, 0, "bad proxy setting: %s", why);
        free(p);
        return WSK_EURL;
    }
    hs->proxy = p;
    return 0;
}

/* Ends the attempt with WSK_EPROXY and says why in the close event. */
static void proxy_fail(struct wsk_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void proxy_fail(struct wsk_conn *c, const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    struct wsk__client_hs *hs = c->hs;
    wsk__log(c->ctx, 2, "proxy %s:%u: %s", hs->proxy->host, (unsigned)hs->proxy->port, why);
    wsk__conn_set_detail(c, why); /* replaces what c->in held */
    wsk__client_fail(c, WSK_EPROXY);
}

static void send_or_fail(struct wsk_conn *c, const void *msg, size_t len)
{
    int rv = wsk__conn_queue(c, msg, len);
    if (rv < 0)
        wsk__client_fail(c, rv);
}

void wsk__client_proxy_start(struct wsk_conn *c)
{
    struct wsk__client_hs *hs = c->hs;
    const struct wsk__proxy *p = hs->proxy;
    /* TLS starts on this socket once the proxy has answered: keep it on
     * readiness, as TLS streams are (stream.h). */
    if (hs->is_tls)
        c->st.flags |= WSK__STREAM_NO_URING;
    if (p->kind == WSK__PROXY_HTTP) {
        char req[WSK__CONNECT_REQUEST_MAX];
        int n = wsk__http_connect_request(req, sizeof req, p, hs->host,
                                          (uint16_t)strtoul(hs->port, NULL, 10));
        if (n < 0) {
            wsk__client_fail(c, n);
            return;
        }
        hs->proxy_step = WSK__PROXY_HTTP_HEAD;
        send_or_fail(c, req, (size_t)n);
        return;
    }
    uint8_t greeting[4];
    size_t n = wsk__socks5_greeting(greeting, p);
    hs->proxy_step = WSK__PROXY_SOCKS_METHOD;
    send_or_fail(c, greeting, n);
}

static void socks_connect(struct wsk_conn *c)
{
    struct wsk__client_hs *hs = c->hs;
    uint8_t req[262];
    uint16_t port = (uint16_t)strtoul(hs->port, NULL, 10);
    int n = hs->proxy->kind == WSK__PROXY_SOCKS5H
                ? wsk__socks5_connect_name(req, hs->host, port)
                : wsk__socks5_connect_addr(req, &hs->target_addr, port);
    if (n < 0) {
        proxy_fail(c, "cannot ask a SOCKS5 proxy for %s", hs->host);
        return;
    }
    hs->proxy_step = WSK__PROXY_SOCKS_REPLY;
    send_or_fail(c, req, (size_t)n);
}

/* The tunnel is up: what follows is the server's. */
static void tunnel_up(struct wsk_conn *c, size_t answer_len)
{
    struct wsk__client_hs *hs = c->hs;
    if (c->in_len > answer_len) {
        proxy_fail(c, "sent %u bytes past its answer", (unsigned)(c->in_len - answer_len));
        return;
    }
    wsk__conn_in_drop(c, c->in_len);
    hs->proxy_step = WSK__PROXY_NONE;
    wsk_http_parser_init(&hs->parser, 0);
    wsk__log(c->ctx, 3, "proxy %s:%u: tunnel to %s:%s open", hs->proxy->host,
             (unsigned)hs->proxy->port, hs->host, hs->port);
    wsk__client_start_handshake(c);
}

static void on_http_head(struct wsk_conn *c)
{
    struct wsk__client_hs *hs = c->hs;
    struct wsk_http_response resp;
    int rv = wsk_http_response_parse(&hs->parser, (const char *)c->in, c->in_len, &resp);
    if (rv == 0)
        return;
    if (rv < 0) {
        proxy_fail(c, "not an HTTP answer to CONNECT");
        return;
    }
    if (resp.status < 200 || resp.status > 299) {
        proxy_fail(c, "HTTP %d %.*s%s", resp.status,
                   (int)(resp.reason.len > 80 ? 80 : resp.reason.len), resp.reason.ptr,
                   (resp.status == 407 || resp.status == 401)
                       ? (hs->proxy->has_auth ? " (wrong user or password?)"
                                              : " (the proxy wants USER:PASSWORD@)")
                       : "");
        return;
    }
    tunnel_up(c, (size_t)rv);
}

/* SOCKS answers: each step waits for its whole answer in c->in. */
static void on_socks(struct wsk_conn *c)
{
    struct wsk__client_hs *hs = c->hs;
    switch (hs->proxy_step) {
    case WSK__PROXY_SOCKS_METHOD: {
        if (c->in_len < 2)
            return;
        int m = wsk__socks5_method(c->in, hs->proxy);
        if (m >= 0 && c->in_len > 2) {
            proxy_fail(c, "sent bytes past its SOCKS5 method choice");
            return;
        }
        if (m < 0) {
            proxy_fail(c, c->in[0] != 5 ? "not a SOCKS5 proxy"
                          : hs->proxy->has_auth
                              ? "SOCKS5 proxy accepts none of the methods offered"
                              : "SOCKS5 proxy accepts none of the methods offered (does it "
                                "want USER:PASSWORD@?)");
            return;
        }
        wsk__conn_in_drop(c, c->in_len);
        if (m == 2) {
            uint8_t req[513];
            size_t n = wsk__socks5_auth(req, hs->proxy);
            hs->proxy_step = WSK__PROXY_SOCKS_AUTH;
            send_or_fail(c, req, n);
            return;
        }
        socks_connect(c);
        return;
    }
    case WSK__PROXY_SOCKS_AUTH:
        if (c->in_len < 2)
            return;
        if (c->in_len > 2 || c->in[1] != 0) {
            proxy_fail(c, "SOCKS5 proxy refused the user and password");
            return;
        }
        wsk__conn_in_drop(c, c->in_len);
        socks_connect(c);
        return;
    case WSK__PROXY_SOCKS_REPLY: {
        int n = wsk__socks5_reply(c->in, c->in_len);
        if (n == 0)
            return;
        if (n < 0) {
            proxy_fail(c, "malformed SOCKS5 reply");
            return;
        }
        if (c->in[1] != 0) {
            proxy_fail(c, "SOCKS5: %s (reply %u)", wsk__socks5_reply_text(c->in[1]),
                       (unsigned)c->in[1]);
            return;
        }
        tunnel_up(c, (size_t)n);
        return;
    }
    default:
        return;
    }
}

void wsk__client_proxy_on_data(struct wsk_conn *c, const uint8_t *data, size_t len)
{
    /* Bounded: an HTTP head stops at the parser's limit, a SOCKS answer at
     * 262 bytes (anything longer fails its step). */
    if (wsk__conn_in_append(c, data, len) < 0) {
        wsk__client_fail(c, -ENOMEM);
        return;
    }
    if (c->hs->proxy_step == WSK__PROXY_HTTP_HEAD)
        on_http_head(c);
    else
        on_socks(c);
}

bool wsk__client_proxy_eof(struct wsk_conn *c)
{
    if (!(c->flags & WSK__F_CLIENT) || !c->hs || !c->hs->proxy_step)
        return false;
    proxy_fail(c, "closed the connection before opening the tunnel");
    return true;
}

/* ---- the environment ------------------------------------------------------- */

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

const char *wsk_proxy_from_env(const char *url)
{
    struct wsk_url u;
    if (!url || wsk_url_parse(url, strlen(url), &u) < 0)
        return NULL;
    char host[256];
    if (u.host.len >= sizeof host)
        return NULL;
    memcpy(host, u.host.ptr, u.host.len);
    host[u.host.len] = 0;
    if (wsk__is_loopback_host(host))
        return NULL;
    const char *no = env("no_proxy");
    if (!no)
        no = env("NO_PROXY");
    if (wsk__no_proxy_match(no, host))
        return NULL;
    const char *p = NULL;
    if (u.scheme == WSK_URL_WSS || u.scheme == WSK_URL_HTTPS) {
        p = env("https_proxy");
        if (!p)
            p = env("HTTPS_PROXY");
    } else if (u.scheme == WSK_URL_WS || u.scheme == WSK_URL_HTTP) {
        p = env("http_proxy"); /* never HTTP_PROXY: CGI sets it from a request header */
    }
    if (!p)
        p = env("all_proxy");
    if (!p)
        p = env("ALL_PROXY");
    return p;
}
