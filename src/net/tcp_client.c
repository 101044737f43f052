/* Raw TCP clients (wsk_tcp_connect(), wsk/net.h): the name resolved off the
 * loop thread, each address tried in turn; on_open once connected, and one
 * deadline (connect_timeout_ms) over all of it. Once open, the connection is
 * tcp.c's like any other.
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
}

static void on_connected(struct wsk_tcp *t)
{
    freeaddrinfo(t->addrs);
    t->addrs = t->next_addr = NULL;
    opened(t);
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
    struct wsk_tcp *t = NULL;
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
