/* Raw TCP clients (wsk_tcp_connect(), wsk/net.h): the name resolved off the
 * loop thread, each address tried in turn, then, with cfg.tls, the TLS
 * handshake; on_open once all of it is done, and one deadline
 * (connect_timeout_ms) over all of it.
 *
 *   CONNECTING --connected--> HANDSHAKE (TLS) --done--> OPEN
 *        |                        |
 *        +--- every failure ------+--> on_close(error)
 *
 * TLS is the WebSocket client's: the same client contexts (the system's CA
 * store or ca_file, or insecure), the same name checks (SNI and the
 * certificate's DNS names for a host name, its IP addresses for an address
 * literal), and the same one-line reasons, which on_close can read with
 * wsk_tcp_error_detail(). Once open, the connection is tcp.c's like any
 * other.
 *
 * Each client has a context of its own, freed with the connection.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loop/sock.h"
#include "net/net_internal.h"
#include "transport/resolve.h"
#include "transport/tls.h"

/* The longest name TLS takes (a DNS name, RFC 1035). */
#define SERVER_NAME_MAX 253

static void client_ctx_empty(struct wsk__tcp_ctx *ctx)
{
    wsk__tcp_ctx_destroy(ctx);
    free(ctx);
}

/* Ends a client that failed, always after wsk_tcp_connect() returned. */
static void fail(struct wsk_tcp *t, int error)
{
    if (t->flags & WSK__TCP_IN_CONNECT) {
        t->error = error;
        t->flags |= WSK__TCP_FAIL_SOON;
        wsk__tcp_want_flush(t);
        return;
    }
    wsk__tcp_dead(t, error);
}

static void opened(struct wsk_tcp *t)
{
    struct wsk__tcp_ctx *ctx = t->ctx;
    t->state = WSK__TCP_OPEN;
    t->flags |= WSK__TCP_OPENED;
    t->deadline = 0;
    wsk__tcp_touch(t);
    wsk__tcp_set_events(t);
    if (t->state == WSK__TCP_DEAD)
        return;
    if (ctx->cfg.handlers.on_open) {
        ctx->cb_depth++;
        ctx->cfg.handlers.on_open(t, ctx->cfg.user_data);
        ctx->cb_depth--;
    }
    /* The server may have spoken with its last handshake flight. */
    if (t->state == WSK__TCP_OPEN && wsk__stream_pending(&t->st))
        wsk__tcp_read_again(t);
}

/* The TLS handshake, stepped by readiness. */
static void tls_step(struct wsk_tcp *t)
{
    int rv = wsk__stream_handshake(&t->st);
    if (rv == WSK__STREAM_HS_AGAIN) {
        wsk__tcp_set_events(t);
        return;
    }
    if (rv < 0) {
        wsk__tcp_log(t->ctx, 2, "%s: TLS handshake failed: %s", wsk_tcp_peer(t),
                     wsk__stream_error(&t->st));
        fail(t, rv);
        return;
    }
    opened(t);
}

static void on_connected(struct wsk_tcp *t)
{
    struct wsk__tcp_ctx *ctx = t->ctx;
    freeaddrinfo(t->addrs);
    t->addrs = t->next_addr = NULL;
    if (!ctx->tls_ctx) {
        opened(t);
        return;
    }
    t->state = WSK__TCP_HANDSHAKE;
    int rv = wsk__stream_start_tls(&t->st, ctx->tls_ctx, false, ctx->server_name);
    if (rv < 0) {
        fail(t, rv);
        return;
    }
    tls_step(t); /* a client speaks first */
}

static void try_connect(struct wsk_tcp *t)
{
    while (t->next_addr) {
        struct addrinfo *ai = t->next_addr;
        t->next_addr = ai->ai_next;
        int fd;
        int rv = wsk__sock_connect_start(ai->ai_addr, ai->ai_addrlen, &fd);
        if (rv < 0 && rv != -EINPROGRESS) {
            t->last_error = rv;
            continue;
        }
        wsk__sock_set_nodelay(fd);
        t->st.io.fd = fd;
        rv = wsk_io_start(t->ctx->loop, &t->st.io, WSK_IO_WRITE);
        if (rv < 0) {
            close(fd);
            t->st.io.fd = -1;
            fail(t, rv);
        }
        return;
    }
    fail(t, t->last_error ? t->last_error : -ECONNREFUSED);
}

void wsk__tcp_client_io(struct wsk_tcp *t)
{
    if (t->state == WSK__TCP_HANDSHAKE) {
        tls_step(t);
        return;
    }
    int rv = wsk__sock_connect_finish(t->st.io.fd);
    if (rv < 0) {
        wsk_io_stop(t->ctx->loop, &t->st.io);
        close(t->st.io.fd);
        t->st.io.fd = -1;
        t->last_error = rv;
        try_connect(t);
        return;
    }
    on_connected(t);
}

static void resolved(void *data, struct addrinfo *res, int error, const char *why)
{
    struct wsk_tcp *t = data;
    t->job = NULL;
    if (error) {
        wsk__tcp_log(t->ctx, 2, "cannot resolve the host: %s", why);
        fail(t, error);
        return;
    }
    t->addrs = t->next_addr = res;
    try_connect(t);
}

/* The TLS context and the name to verify, for a client with cfg.tls. */
static int setup_tls(struct wsk__tcp_ctx *ctx, const char *host)
{
    const struct wsk_tcp_config *cfg = &ctx->cfg;
    const char *name = cfg->server_name && *cfg->server_name ? cfg->server_name : host;
    if (strlen(name) > SERVER_NAME_MAX)
        return -EINVAL;
    ctx->server_name = strdup(name);
    if (!ctx->server_name)
        return -ENOMEM;
    char err[512];
    int rv = wsk__tls_client_ctx_new(&ctx->tls_ctx, cfg->ca_file, cfg->insecure, cfg->cert_file,
                                     cfg->key_file, err, sizeof err);
    if (rv < 0)
        wsk__tcp_log(ctx, 0, "%s", err);
    return rv;
}

int wsk_tcp_connect(struct wsk_tcp **out, struct wsk_loop *loop, const char *host, uint16_t port,
                    const struct wsk_tcp_config *cfg)
{
    if (!host || !*host || !port)
        return -EINVAL;
    char hostbuf[256], portbuf[8];
    size_t hl = strlen(host);
    if (host[0] == '[' && hl >= 2 && host[hl - 1] == ']')
        snprintf(hostbuf, sizeof hostbuf, "%.*s", (int)(hl - 2), host + 1);
    else
        snprintf(hostbuf, sizeof hostbuf, "%s", host);
    snprintf(portbuf, sizeof portbuf, "%u", (unsigned)port);

    struct wsk__tcp_ctx *ctx = malloc(sizeof *ctx);
    if (!ctx)
        return -ENOMEM;
    int rv = wsk__tcp_ctx_init(ctx, loop, cfg);
    if (rv < 0) {
        free(ctx);
        return rv;
    }
    if (ctx->cfg.tls)
        rv = setup_tls(ctx, hostbuf);
    /* Neither string is kept: the context holds what it needs. */
    ctx->cfg.ca_file = ctx->cfg.server_name = NULL;
    struct wsk_tcp *t = NULL;
    if (rv == 0)
        rv = wsk__tcp_new(&t, ctx, -1, WSK__TCP_CONNECTING);
    if (rv < 0) {
        wsk__tcp_ctx_destroy(ctx);
        free(ctx);
        return rv;
    }
    ctx->is_client = true;
    ctx->on_empty = client_ctx_empty;
    t->deadline = wsk_loop_now(loop) + ctx->cfg.connect_timeout_ms;
    *out = t;
    t->flags |= WSK__TCP_IN_CONNECT;
    rv = wsk__resolve_start(loop, hostbuf, portbuf, SOCK_STREAM, resolved, t, &t->job, &t->addrs);
    if (rv == 1) {
        t->next_addr = t->addrs;
        try_connect(t);
    } else if (rv < 0) {
        fail(t, rv);
    }
    t->flags &= (uint16_t)~WSK__TCP_IN_CONNECT;
    return 0;
}
