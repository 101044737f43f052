/* Raw TCP connections and servers on the loop (wsk/net.h); clients, which
 * connect and may start TLS first, are in tcp_client.c.
 *
 * A connection is a stream (transport/stream.c) plus a little state: input
 * is read into the loop's shared buffer and handed to on_data at once, so
 * an idle connection holds no buffer; output goes to the stream's queue and
 * is written at the end of the loop iteration (one write for a burst of
 * sends), or when the socket is writable again. With TLS, the stream may
 * need the other direction's readiness, and bytes it has decrypted do not
 * show as readiness: those are read on the flush round (READ_AGAIN).
 *
 * Each server has a context; each client connection has one of its own.
 * Connections that end are unlinked at once and freed at the end of the
 * iteration (callers up the stack may still hold them).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loop/loop_internal.h"
#include "loop/sock.h"
#include "net/net_internal.h"
#include "transport/listen.h"
#include "transport/resolve.h"
#include "transport/tls.h"

#define READS_PER_EVENT  4
#define DIRECT_WRITE_MIN (16u * 1024)

void wsk_tcp_config_init(struct wsk_tcp_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->max_send_queue = 1u << 20;
    cfg->close_timeout_ms = 5000;
    cfg->connect_timeout_ms = 10000;
    cfg->max_connections = 100000;
}

static void fill_defaults(struct wsk_tcp_config *c)
{
    struct wsk_tcp_config d;
    wsk_tcp_config_init(&d);
    if (!c->max_send_queue)
        c->max_send_queue = d.max_send_queue;
    if (!c->close_timeout_ms)
        c->close_timeout_ms = d.close_timeout_ms;
    if (!c->connect_timeout_ms)
        c->connect_timeout_ms = d.connect_timeout_ms;
    if (!c->max_connections)
        c->max_connections = d.max_connections;
}

/* ---- the context ---------------------------------------------------------- */

void wsk__tcp_log(struct wsk__tcp_ctx *ctx, int level, const char *fmt, ...)
{
    if (!ctx->cfg.log)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ctx->cfg.log(level, msg, ctx->cfg.user_data);
}

static void flush(struct wsk_tcp *t);
static void on_readable(struct wsk_tcp *t);

static void reap_cb(struct wsk_loop *loop, struct wsk_defer *d)
{
    (void)loop;
    struct wsk__tcp_ctx *ctx = d->data;
    while (ctx->dead) {
        struct wsk_tcp *t = ctx->dead;
        ctx->dead = t->next;
        free(t);
    }
    if (ctx->on_empty && !ctx->conns)
        ctx->on_empty(ctx); /* may free ctx */
}

/* End of the iteration: write what was queued, end what failed early. */
static void flush_cb(struct wsk_loop *loop, struct wsk_defer *d)
{
    (void)loop;
    struct wsk__tcp_ctx *ctx = d->data;
    while (ctx->flush_list) {
        struct wsk_tcp *t = ctx->flush_list;
        ctx->flush_list = t->flush_next;
        t->flags &= (uint16_t)~WSK__TCP_FLUSH_LIST;
        if (t->state == WSK__TCP_DEAD)
            continue;
        if (t->flags & WSK__TCP_FAIL_SOON) {
            wsk__tcp_dead(t, t->error);
            continue;
        }
        if (t->flags & WSK__TCP_READ_AGAIN) {
            t->flags &= (uint16_t)~WSK__TCP_READ_AGAIN;
            if (!(t->flags & WSK__TCP_PAUSED))
                on_readable(t);
            if (t->state == WSK__TCP_DEAD)
                continue;
        }
        flush(t);
    }
}

static uint32_t sweep_period(const struct wsk_tcp_config *c)
{
    uint32_t m = c->close_timeout_ms;
    if (c->idle_timeout_ms && c->idle_timeout_ms < m)
        m = c->idle_timeout_ms;
    if (c->connect_timeout_ms < m)
        m = c->connect_timeout_ms;
    m /= 4;
    return m < 50 ? 50 : m > 1000 ? 1000 : m;
}

static void sweep_cb(struct wsk_loop *loop, struct wsk_timer *timer)
{
    struct wsk__tcp_ctx *ctx = timer->data;
    uint64_t now = wsk_loop_now(loop);
    bool trim = now - ctx->trimmed_ms >= WSK__TRIM_MS;
    if (trim)
        ctx->trimmed_ms = now;
    struct wsk__tcp_walk w;
    wsk__tcp_walk_begin(ctx, &w);
    for (struct wsk_tcp *t; (t = wsk__tcp_walk_next(&w));) {
        if (trim && t->state != WSK__TCP_DEAD)
            wsk__stream_trim(&t->st);
        if (!t->deadline || now < t->deadline || t->state == WSK__TCP_DEAD)
            continue;
        if (t->state == WSK__TCP_LINGER || (t->flags & WSK__TCP_WR_DONE)) {
            wsk__tcp_dead(t, 0); /* all was written; the peer's EOF is late */
        } else {
            wsk__tcp_log(ctx, 2, "%s: %s timeout", wsk_tcp_peer(t),
                         t->state == WSK__TCP_CONNECTING  ? "connect"
                         : t->state == WSK__TCP_HANDSHAKE ? "TLS handshake"
                         : t->state == WSK__TCP_CLOSING   ? "close"
                                                          : "idle");
            wsk__tcp_dead(t, -ETIMEDOUT);
        }
    }
    wsk__tcp_walk_end(ctx, &w);
    if (!ctx->conns)
        wsk_timer_stop(loop, timer);
}

int wsk__tcp_ctx_init(struct wsk__tcp_ctx *ctx, struct wsk_loop *loop,
                      const struct wsk_tcp_config *cfg)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->loop = loop;
    if (cfg)
        ctx->cfg = *cfg;
    else
        wsk_tcp_config_init(&ctx->cfg);
    fill_defaults(&ctx->cfg);
    ctx->rbuf = wsk__loop_scratch(loop, &ctx->rbuf_cap);
    if (!ctx->rbuf)
        return -ENOMEM;
    wsk_defer_init(&ctx->reap_defer, reap_cb, ctx);
    wsk_defer_init(&ctx->flush_defer, flush_cb, ctx);
    wsk_timer_init(&ctx->sweep, sweep_cb, ctx);
    return 0;
}

/* Ends every connection at once and releases what the context holds. */
void wsk__tcp_ctx_destroy(struct wsk__tcp_ctx *ctx)
{
    ctx->in_teardown = true;
    while (ctx->conns)
        wsk__tcp_dead(ctx->conns, WSK_ECLOSED);
    ctx->on_empty = NULL;
    reap_cb(ctx->loop, &ctx->reap_defer);
    wsk_defer_cancel(ctx->loop, &ctx->reap_defer);
    wsk_defer_cancel(ctx->loop, &ctx->flush_defer);
    wsk_timer_stop(ctx->loop, &ctx->sweep);
    wsk__seg_pool_free(&ctx->pool);
    wsk__tls_ctx_unref(ctx->tls_ctx);
    ctx->tls_ctx = NULL;
    free(ctx->server_name);
    ctx->server_name = NULL;
}

void wsk__tcp_walk_begin(struct wsk__tcp_ctx *ctx, struct wsk__tcp_walk *w)
{
    w->next = ctx->conns;
    w->up = ctx->walks;
    ctx->walks = w;
}

struct wsk_tcp *wsk__tcp_walk_next(struct wsk__tcp_walk *w)
{
    struct wsk_tcp *t = w->next;
    if (t)
        w->next = t->next;
    return t;
}

void wsk__tcp_walk_end(struct wsk__tcp_ctx *ctx, struct wsk__tcp_walk *w)
{
    ctx->walks = w->up;
}

/* ---- connections ---------------------------------------------------------- */

static void io_cb(struct wsk_loop *loop, struct wsk_io *io, unsigned events);

int wsk__tcp_new(struct wsk_tcp **out, struct wsk__tcp_ctx *ctx, int fd, uint8_t state)
{
    struct wsk_tcp *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->ctx = ctx;
    t->state = state;
    wsk__stream_init(&t->st, fd, io_cb, t);
    t->next = ctx->conns;
    if (ctx->conns)
        ctx->conns->prev = t;
    ctx->conns = t;
    ctx->count++;
    if (!wsk_timer_is_active(&ctx->sweep))
        wsk_timer_start(ctx->loop, &ctx->sweep, sweep_period(&ctx->cfg), sweep_period(&ctx->cfg));
    *out = t;
    return 0;
}

static void unlink_tcp(struct wsk_tcp *t)
{
    struct wsk__tcp_ctx *ctx = t->ctx;
    for (struct wsk__tcp_walk *w = ctx->walks; w; w = w->up)
        if (w->next == t)
            w->next = t->next;
    if (t->prev)
        t->prev->next = t->next;
    else
        ctx->conns = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->prev = NULL;
    ctx->count--;
    if (!ctx->conns)
        wsk_timer_stop(ctx->loop, &ctx->sweep);
}

/* Ends t: on_close once (if reported), the socket closed, memory freed at
 * the end of the iteration. */
void wsk__tcp_dead(struct wsk_tcp *t, int error)
{
    if (t->state == WSK__TCP_DEAD)
        return;
    struct wsk__tcp_ctx *ctx = t->ctx;
    bool report = (t->flags & WSK__TCP_OPENED) || ctx->is_client;
    t->state = WSK__TCP_DEAD;
    wsk__stream_stop(ctx->loop, &t->st);
    wsk__stream_drop_queue(&t->st, &ctx->pool);
    wsk__resolve_cancel(t->job);
    t->job = NULL;
    if (t->addrs)
        freeaddrinfo(t->addrs);
    t->addrs = NULL;
    unlink_tcp(t);
    if (report && ctx->cfg.handlers.on_close) {
        ctx->cb_depth++;
        ctx->cfg.handlers.on_close(t, error, ctx->cfg.user_data);
        ctx->cb_depth--;
    }
    wsk__stream_close(ctx->loop, &t->st, &ctx->pool);
    t->next = ctx->dead;
    ctx->dead = t;
    if (!ctx->in_teardown)
        wsk_defer_start(ctx->loop, &ctx->reap_defer);
}

void wsk__tcp_want_flush(struct wsk_tcp *t)
{
    struct wsk__tcp_ctx *ctx = t->ctx;
    if (t->flags & WSK__TCP_FLUSH_LIST)
        return;
    t->flags |= WSK__TCP_FLUSH_LIST;
    t->flush_next = ctx->flush_list;
    ctx->flush_list = t;
    wsk_defer_start(ctx->loop, &ctx->flush_defer);
}

void wsk__tcp_touch(struct wsk_tcp *t)
{
    uint32_t idle = t->ctx->cfg.idle_timeout_ms;
    if (t->flags & WSK__TCP_WR_DONE)
        t->deadline = wsk_loop_now(t->ctx->loop) + t->ctx->cfg.close_timeout_ms;
    else if (idle && t->state == WSK__TCP_OPEN)
        t->deadline = wsk_loop_now(t->ctx->loop) + idle;
}

void wsk__tcp_set_events(struct wsk_tcp *t)
{
    if (t->state == WSK__TCP_DEAD)
        return;
    bool want_read =
        !(t->flags & (WSK__TCP_PAUSED | WSK__TCP_PEER_EOF)) && t->state != WSK__TCP_CLOSING;
    int rv = wsk__stream_watch(t->ctx->loop, &t->st, want_read, t->state == WSK__TCP_CONNECTING);
    if (rv < 0)
        wsk__tcp_dead(t, rv);
}

/* Our side is done and the queue is empty: shut down writing (after TLS's
 * close_notify) and wait for the peer's EOF, or end now if it came
 * already. */
static void finish(struct wsk_tcp *t)
{
    if ((t->flags & WSK__TCP_PEER_EOF)) {
        wsk__tcp_dead(t, 0);
        return;
    }
    wsk__stream_shutdown_tls(&t->st);
    shutdown(t->st.io.fd, SHUT_WR);
    t->state = WSK__TCP_LINGER;
    t->deadline = wsk_loop_now(t->ctx->loop) + t->ctx->cfg.close_timeout_ms;
}

static void flush(struct wsk_tcp *t)
{
    struct wsk__tcp_ctx *ctx = t->ctx;
    if (t->state == WSK__TCP_DEAD || t->state == WSK__TCP_CONNECTING ||
        t->state == WSK__TCP_HANDSHAKE || t->st.io.fd < 0)
        return;
    ssize_t w = wsk__stream_flush(&t->st, &ctx->pool);
    if (w < 0) {
        wsk__tcp_dead(t, (int)w);
        return;
    }
    if (w > 0)
        wsk__tcp_touch(t);
    if (t->st.out_bytes <= ctx->cfg.max_send_queue / 2 && (t->flags & WSK__TCP_WANT_DRAIN) &&
        t->state == WSK__TCP_OPEN) {
        t->flags &= (uint16_t)~WSK__TCP_WANT_DRAIN;
        if (ctx->cfg.handlers.on_drain) {
            ctx->cb_depth++;
            ctx->cfg.handlers.on_drain(t, ctx->cfg.user_data);
            ctx->cb_depth--;
        }
        if (t->state == WSK__TCP_DEAD)
            return;
    }
    if (!t->st.out_bytes && t->state == WSK__TCP_OPEN &&
        (t->flags & (WSK__TCP_SHUT_WR | WSK__TCP_WR_DONE | WSK__TCP_PEER_EOF)) ==
            WSK__TCP_SHUT_WR) {
        /* Half-closed: the peer sees EOF, and we read on until its own
         * (TLS 1.3 reads on after our close_notify). */
        wsk__stream_shutdown_tls(&t->st);
        shutdown(t->st.io.fd, SHUT_WR);
        t->flags |= WSK__TCP_WR_DONE;
        t->deadline = wsk_loop_now(ctx->loop) + ctx->cfg.close_timeout_ms;
    }
    /* After the peer's EOF the connection ends once the queue is out,
     * unless on_eof took charge: then when the user closes or shuts down. */
    bool eof_ends = (t->flags & WSK__TCP_PEER_EOF) &&
                    (!ctx->cfg.handlers.on_eof || (t->flags & WSK__TCP_SHUT_WR));
    if (!t->st.out_bytes &&
        (t->state == WSK__TCP_CLOSING || (t->state == WSK__TCP_OPEN && eof_ends))) {
        finish(t);
        if (t->state == WSK__TCP_DEAD)
            return;
    }
    wsk__tcp_set_events(t);
}

void wsk__tcp_read_again(struct wsk_tcp *t)
{
    t->flags |= WSK__TCP_READ_AGAIN;
    wsk__tcp_want_flush(t);
}

static void on_readable(struct wsk_tcp *t)
{
    struct wsk__tcp_ctx *ctx = t->ctx;
    for (int i = 0; i < READS_PER_EVENT; i++) {
        ssize_t n = wsk__stream_recv(&t->st, ctx->rbuf, ctx->rbuf_cap);
        if (n == -EAGAIN)
            return;
        if (n < 0) {
            wsk__tcp_dead(t, t->state == WSK__TCP_LINGER ? 0 : (int)n);
            return;
        }
        if (n == 0) {
            if (t->state == WSK__TCP_LINGER) {
                wsk__tcp_dead(t, 0);
                return;
            }
            /* The peer is done sending: write what is queued, then end;
             * or, with on_eof, let the user say when. */
            t->flags |= WSK__TCP_PEER_EOF;
            if (ctx->cfg.handlers.on_eof && t->state == WSK__TCP_OPEN &&
                !(t->flags & WSK__TCP_SHUT_WR)) {
                ctx->cb_depth++;
                ctx->cfg.handlers.on_eof(t, ctx->cfg.user_data);
                ctx->cb_depth--;
                if (t->state != WSK__TCP_DEAD)
                    wsk__tcp_want_flush(t);
                return;
            }
            if (!t->st.out_bytes && t->state == WSK__TCP_OPEN)
                wsk__tcp_dead(t, 0);
            else
                wsk__tcp_set_events(t);
            return;
        }
        if (t->state != WSK__TCP_OPEN)
            continue; /* closing: input is discarded */
        wsk__tcp_touch(t);
        if (ctx->cfg.handlers.on_data) {
            ctx->cb_depth++;
            t->flags |= WSK__TCP_IN_READ;
            ctx->cfg.handlers.on_data(t, ctx->rbuf, (size_t)n, ctx->cfg.user_data);
            t->flags &= (uint16_t)~WSK__TCP_IN_READ;
            ctx->cb_depth--;
        }
        if (t->state == WSK__TCP_DEAD || (t->flags & WSK__TCP_PAUSED))
            return;
        /* A short read means the socket is drained. TLS hands out one
         * record at a time, so ask it instead. */
        if (wsk__stream_tls(&t->st) ? !wsk__stream_pending(&t->st) : (size_t)n < ctx->rbuf_cap)
            return;
    }
    /* The fairness cap: a plain socket stays readable for the next
     * iteration, but bytes TLS already decrypted would not show. */
    if (wsk__stream_pending(&t->st))
        wsk__tcp_read_again(t);
}

static void io_cb(struct wsk_loop *loop, struct wsk_io *io, unsigned events)
{
    (void)loop;
    struct wsk_tcp *t = io->data;
    if (t->state == WSK__TCP_CONNECTING || t->state == WSK__TCP_HANDSHAKE) {
        wsk__tcp_client_io(t);
        return;
    }
    /* TLS may need to read before it can write, or write before it can
     * read. */
    if ((events & WSK_IO_WRITE) || ((events & WSK_IO_READ) && (t->st.flags & WSK__STREAM_TLS_WR))) {
        flush(t);
        if (t->state == WSK__TCP_DEAD)
            return;
    }
    if ((t->st.flags & WSK__STREAM_TLS_RW) && (events & WSK_IO_WRITE))
        events |= WSK_IO_READ;
    if ((events & WSK_IO_READ) && !(t->flags & WSK__TCP_PAUSED))
        on_readable(t);
    if (t->state == WSK__TCP_DEAD)
        return;
    if (t->flags & WSK__TCP_FAIL_SOON)
        wsk__tcp_want_flush(t); /* ended on the flush round */
    else if (t->st.out_bytes)
        flush(t); /* answers written now, as the WebSocket connections do */
    else
        wsk__tcp_set_events(t);
}

/* ---- the public calls ----------------------------------------------------- */

int wsk_tcp_send(struct wsk_tcp *t, const void *data, size_t len)
{
    if (t->state != WSK__TCP_OPEN || !(t->flags & WSK__TCP_OPENED) || (t->flags & WSK__TCP_SHUT_WR))
        return WSK_ESTATE;
    struct wsk__tcp_ctx *ctx = t->ctx;
    size_t skip = 0;
    /* Bulk data with nothing queued goes straight to the socket: no copy
     * into fresh segments (a relay of 256 KiB reads spent more CPU on those
     * than on anything else), only what the socket does not take waits. */
    if (len >= DIRECT_WRITE_MIN && !t->st.out_bytes && t->st.io.fd >= 0 &&
        !(t->st.flags & WSK__STREAM_TLS_HS) && !(t->flags & WSK__TCP_FAIL_SOON)) {
        struct iovec iov = {(void *)(uintptr_t)data, len};
        ssize_t w = wsk__stream_send(&t->st, &iov, 1);
        if (w < 0 && w != -EAGAIN) {
            /* Ended on the flush round, outside the caller's code. */
            t->error = (int)w;
            t->flags |= WSK__TCP_FAIL_SOON;
            wsk__tcp_want_flush(t);
            return WSK_ECLOSED;
        }
        if (w > 0) {
            skip = (size_t)w;
            wsk__tcp_touch(t);
        }
    }
    if (len > skip) {
        size_t n = len - skip;
        bool small = !t->st.out_head && !(t->flags & WSK__TCP_IN_READ);
        uint8_t *p = wsk__stream_tail_room(&t->st, n);
        if (!p)
            p = wsk__stream_reserve(&t->st, &ctx->pool, n, small);
        if (!p) {
            if (!skip)
                return -ENOMEM;
            /* Part is on the wire: the stream cannot go on without the rest. */
            t->error = -ENOMEM;
            t->flags |= WSK__TCP_FAIL_SOON;
            wsk__tcp_want_flush(t);
            return WSK_ECLOSED;
        }
        memcpy(p, (const uint8_t *)data + skip, n);
        /* A connection answering its own input is flushed when its read
         * ends (io_cb), before the next connection's: one segment in use,
         * not one per connection of the iteration. */
        if (!(t->flags & WSK__TCP_IN_READ))
            wsk__tcp_want_flush(t);
    }
    if (t->st.out_bytes > ctx->cfg.max_send_queue) {
        t->flags |= WSK__TCP_WANT_DRAIN;
        return WSK_EBACKPRESSURE;
    }
    return 0;
}

void wsk_tcp_pause(struct wsk_tcp *t, bool paused)
{
    if (paused)
        t->flags |= WSK__TCP_PAUSED;
    else
        t->flags &= (uint16_t)~WSK__TCP_PAUSED;
    if (t->state == WSK__TCP_CONNECTING || t->state == WSK__TCP_HANDSHAKE)
        return;
    wsk__tcp_set_events(t);
    if (!paused && wsk__stream_pending(&t->st))
        wsk__tcp_read_again(t); /* decrypted while paused: no readiness will say so */
}

int wsk_tcp_close(struct wsk_tcp *t)
{
    if (t->state == WSK__TCP_CONNECTING || t->state == WSK__TCP_HANDSHAKE) {
        wsk__tcp_dead(t, WSK_ECLOSED);
        return 0;
    }
    if (t->state != WSK__TCP_OPEN)
        return 0;
    t->state = WSK__TCP_CLOSING;
    t->deadline = wsk_loop_now(t->ctx->loop) + t->ctx->cfg.close_timeout_ms;
    wsk__tcp_want_flush(t);
    return 0;
}

int wsk_tcp_shutdown(struct wsk_tcp *t)
{
    if (t->state != WSK__TCP_OPEN || !(t->flags & WSK__TCP_OPENED))
        return WSK_ESTATE;
    t->flags |= WSK__TCP_SHUT_WR;
    wsk__tcp_want_flush(t);
    return 0;
}

size_t wsk_tcp_send_queue(const struct wsk_tcp *t)
{
    return t->st.out_bytes;
}

const char *wsk_tcp_peer(const struct wsk_tcp *t)
{
    static _Thread_local char buf[64];
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (t->st.io.fd < 0 || getpeername(t->st.io.fd, (struct sockaddr *)&ss, &len) < 0)
        return "(unknown)";
    return wsk_sockaddr_str((struct sockaddr *)&ss, len, buf, sizeof buf);
}

const char *wsk_tcp_error_detail(const struct wsk_tcp *t)
{
    return wsk__stream_error(&t->st);
}

void wsk_tcp_set_data(struct wsk_tcp *t, void *data)
{
    t->user_data = data;
}

void *wsk_tcp_get_data(const struct wsk_tcp *t)
{
    return t->user_data;
}

/* ---- servers -------------------------------------------------------------- */

struct wsk_tcp_server {
    struct wsk__tcp_ctx ctx;
    struct wsk__listeners listeners;
    struct wsk_defer free_defer;
    bool free_pending;
    bool is_shutting_down;
    bool full_logged;
};

static void srv_log(void *data, const char *msg)
{
    struct wsk_tcp_server *srv = data;
    wsk__tcp_log(&srv->ctx, 1, "%s", msg);
}

static void srv_accept(void *data, int fd)
{
    struct wsk_tcp_server *srv = data;
    struct wsk__tcp_ctx *ctx = &srv->ctx;
    if (ctx->count >= ctx->cfg.max_connections) {
        if (!srv->full_logged)
            wsk__tcp_log(ctx, 1, "accept: %zu connections open (the maximum): refusing more",
                         ctx->count);
        srv->full_logged = true;
        close(fd);
        return;
    }
    srv->full_logged = false;
    struct wsk_tcp *t;
    if (wsk__tcp_new(&t, ctx, fd, WSK__TCP_OPEN) < 0) {
        close(fd);
        return;
    }
    int rv = wsk__stream_watch(ctx->loop, &t->st, true, false);
    if (rv < 0) {
        wsk__tcp_log(ctx, 1, "accept: cannot watch fd %d: %s", fd, wsk_strerror(rv));
        wsk__tcp_dead(t, rv);
        return;
    }
    t->flags |= WSK__TCP_OPENED;
    wsk__tcp_touch(t);
    if (ctx->cfg.handlers.on_open) {
        ctx->cb_depth++;
        ctx->cfg.handlers.on_open(t, ctx->cfg.user_data);
        ctx->cb_depth--;
    }
}

static void srv_free_now(struct wsk_tcp_server *srv)
{
    wsk__listeners_close(&srv->listeners);
    wsk_defer_cancel(srv->ctx.loop, &srv->free_defer);
    wsk__tcp_ctx_destroy(&srv->ctx);
    free(srv);
}

static void srv_free_cb(struct wsk_loop *loop, struct wsk_defer *d)
{
    (void)loop;
    srv_free_now(d->data);
}

int wsk_tcp_server_new(struct wsk_tcp_server **out, struct wsk_loop *loop,
                       const struct wsk_tcp_config *cfg)
{
    struct wsk_tcp_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return -ENOMEM;
    if (wsk__tcp_ctx_init(&srv->ctx, loop, cfg) < 0) {
        free(srv);
        return -ENOMEM;
    }
    wsk__listeners_init(&srv->listeners, loop, srv_accept, srv_log, srv);
    wsk_defer_init(&srv->free_defer, srv_free_cb, srv);
    *out = srv;
    return 0;
}

int wsk_tcp_server_listen(struct wsk_tcp_server *srv, const char *host, uint16_t port)
{
    int rv = wsk__listeners_add(&srv->listeners, host, port, srv->ctx.cfg.reuse_port);
    if (rv < 0)
        return rv;
    int p = wsk__sock_local_port(srv->listeners.l[srv->listeners.n - 1].io.fd);
    return p > 0 ? p : port;
}

uint16_t wsk_tcp_server_port(const struct wsk_tcp_server *srv)
{
    return wsk__listeners_port(&srv->listeners);
}

size_t wsk_tcp_server_count(const struct wsk_tcp_server *srv)
{
    return srv->ctx.count;
}

int wsk_tcp_server_broadcast(struct wsk_tcp_server *srv, const void *data, size_t len,
                             const struct wsk_tcp *except)
{
    struct wsk__tcp_ctx *ctx = &srv->ctx;
    int count = 0, rv = 0;
    struct wsk__tcp_walk w;
    wsk__tcp_walk_begin(ctx, &w);
    for (struct wsk_tcp *t; (t = wsk__tcp_walk_next(&w));) {
        if (t == except || t->state != WSK__TCP_OPEN || !(t->flags & WSK__TCP_OPENED))
            continue;
        if (t->st.out_bytes > ctx->cfg.max_send_queue) {
            wsk__tcp_log(ctx, 1, "%s: send queue full (%zu bytes), closing", wsk_tcp_peer(t),
                         t->st.out_bytes);
            wsk__tcp_dead(t, WSK_EBACKPRESSURE);
            continue;
        }
        int r = wsk_tcp_send(t, data, len);
        if (r == -ENOMEM)
            rv = r;
        else
            count++;
    }
    wsk__tcp_walk_end(ctx, &w);
    return rv ? rv : count;
}

void wsk_tcp_server_shutdown(struct wsk_tcp_server *srv)
{
    if (srv->is_shutting_down)
        return;
    srv->is_shutting_down = true;
    wsk__listeners_close(&srv->listeners);
    struct wsk__tcp_walk w;
    wsk__tcp_walk_begin(&srv->ctx, &w);
    for (struct wsk_tcp *t; (t = wsk__tcp_walk_next(&w));)
        wsk_tcp_close(t);
    wsk__tcp_walk_end(&srv->ctx, &w);
}

void wsk_tcp_server_free(struct wsk_tcp_server *srv)
{
    if (!srv || srv->free_pending)
        return;
    if (srv->ctx.cb_depth > 0) {
        srv->free_pending = true;
        wsk__listeners_close(&srv->listeners);
        while (srv->ctx.conns)
            wsk__tcp_dead(srv->ctx.conns, WSK_ECLOSED);
        wsk_defer_start(srv->ctx.loop, &srv->free_defer);
        return;
    }
    srv_free_now(srv);
}
