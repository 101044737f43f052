/* A WebSocket connection on the loop: its context, lifecycle, readiness,
 * timeouts and the close handshake (RFC 6455 sections 5-7). Shared by servers
 * and clients; server.c and client.c handle what comes before the connection
 * is open. Sending is conn_send.c's, receiving frames conn_recv.c's.
 *
 * Reading: every connection reads into its context's receive buffer; the
 * frame parser unmasks and validates in place (conn_recv.c).
 *
 * Closing: wsk_conn_close() queues a close frame and waits close_timeout for
 * the peer's; a received close is answered with the same code. Once both are
 * exchanged (or the connection failed) and everything is written, the socket
 * is shut down for writing and read until EOF (LINGER), so the last frames
 * are not lost to a reset, then closed. on_close runs once, then the memory
 * goes away at the end of the iteration.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "loop/loop_internal.h"
#include "ws/ws_internal.h"

#define DIRECT_READ_MIN (16u * 1024)
#define READS_PER_EVENT 4

static void conn_io_cb(struct wsk_loop *loop, struct wsk_io *io, unsigned events);
static void tls_handshake_step(struct wsk_conn *c);
static void conn_read(struct wsk_conn *c);
static void on_deadline(struct wsk_conn *c, uint64_t now);
static void read_again(struct wsk_conn *c);

void wsk__log(struct wsk__ctx *ctx, int level, const char *fmt, ...)
{
    if (!ctx->log)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ctx->log(level, msg, ctx->log_data);
}

/* Connections flushed per loop iteration. A publish to 100,000 subscribers
 * queues the frame on each (encoded once) and leaves the sends to this
 * pass: FLUSH_BATCH of them per iteration, with the loop's I/O callbacks
 * (other connections' reads and writes) in between, so the fan-out does not
 * stall everyone else for the 100 ms or more its system calls take. */
#define FLUSH_BATCH 4096

/* The next iteration: the rest of the flush list is due. A timer, not a
 * defer, because defers queued by a defer run in the same round, before
 * any I/O. */
static void flush_rest_cb(struct wsk_loop *loop, struct wsk_timer *t)
{
    struct wsk__ctx *ctx = t->data;
    ctx->flush_rest_due = true;
    wsk_defer_start(loop, &ctx->flush_defer);
}

static void flush_all_cb(struct wsk_loop *loop, struct wsk_defer *d)
{
    struct wsk__ctx *ctx = d->data;
    /* Flushing may add connections back (a drained queue lets a handler send
     * more), so take the list as it is now: what an earlier iteration left
     * when it is due, else the newer list, at most FLUSH_BATCH of it. The
     * rest waits on flush_rest, still linked where wsk__conn_dead() finds
     * it. */
    struct wsk_conn **from = &ctx->flush_list;
    if (ctx->flush_rest && ctx->flush_rest_due) {
        from = &ctx->flush_rest;
        ctx->flush_rest_due = false;
    }
    struct wsk_conn *list = *from, *cut = list;
    *from = NULL;
    for (size_t n = 1; cut && n < FLUSH_BATCH; n++)
        cut = cut->flush_next;
    if (cut && cut->flush_next) {
        struct wsk_conn *rest = cut->flush_next, *tail = rest;
        cut->flush_next = NULL;
        if (ctx->flush_rest) { /* rare: two large lists in one round */
            while (tail->flush_next)
                tail = tail->flush_next;
            tail->flush_next = ctx->flush_rest;
        }
        ctx->flush_rest = rest;
    }
    if (ctx->flush_rest && !wsk_timer_is_active(&ctx->flush_timer) &&
        wsk_timer_start(loop, &ctx->flush_timer, 0, 0) < 0)
        ctx->flush_rest_due = true; /* no timer: go on in this round */
    if (ctx->flush_rest_due)
        wsk_defer_start(loop, d);
    while (list) {
        struct wsk_conn *c = list;
        list = c->flush_next;
        c->flush_next = NULL;
        c->flags &= ~WSK__F_FLUSH_LIST;
        if (c->state == WSK__DEAD)
            continue;
        if (c->flags & WSK__F_FAIL_SOON) {
            wsk__conn_abort(c, c->error);
            continue;
        }
        if ((c->flags & WSK__F_READ_AGAIN) && !(c->flags & WSK__F_USER_PAUSED)) {
            c->flags &= ~WSK__F_READ_AGAIN;
            c->flags |= WSK__F_IN_READ;
            conn_read(c);
            c->flags &= ~WSK__F_IN_READ;
            if (c->state == WSK__DEAD)
                continue;
        }
        wsk__conn_flush(c);
    }
}

static void reap_cb(struct wsk_loop *loop, struct wsk_defer *d)
{
    (void)loop;
    struct wsk__ctx *ctx = d->data;
    struct wsk_conn *list = ctx->dead_list;
    ctx->dead_list = NULL;
    while (list) {
        struct wsk_conn *c = list;
        list = c->next;
        free(c);
    }
    if (!ctx->server && !ctx->conns && !ctx->in_teardown)
        wsk__client_ctx_empty(ctx); /* frees ctx: touch nothing after */
}

void wsk__walk_begin(struct wsk__ctx *ctx, struct wsk__walk *w)
{
    w->next = ctx->conns;
    w->up = ctx->walks;
    ctx->walks = w;
}

struct wsk_conn *wsk__walk_next(struct wsk__walk *w)
{
    struct wsk_conn *c = w->next;
    if (c)
        w->next = c->next;
    return c;
}

void wsk__walk_end(struct wsk__ctx *ctx, struct wsk__walk *w)
{
    ctx->walks = w->up;
}

static void sweep_cb(struct wsk_loop *loop, struct wsk_timer *t)
{
    struct wsk__ctx *ctx = t->data;
    uint64_t now = wsk_loop_now(loop);
    bool trim = now - ctx->trimmed_ms >= WSK__TRIM_MS;
    if (trim)
        ctx->trimmed_ms = now;
    /* on_deadline may end any connection, through the user's callbacks. */
    struct wsk__walk w;
    wsk__walk_begin(ctx, &w);
    for (struct wsk_conn *c; (c = wsk__walk_next(&w));) {
        if (c->deadline && now >= c->deadline && c->state != WSK__DEAD)
            on_deadline(c, now);
        if (trim && c->state != WSK__DEAD)
            wsk__stream_trim(&c->st);
    }
    wsk__walk_end(ctx, &w);
    if (!ctx->conns)
        wsk_timer_stop(loop, t);
}

static uint32_t min_nonzero(uint32_t a, uint32_t b)
{
    if (!a || a == UINT32_MAX)
        return b;
    if (!b || b == UINT32_MAX)
        return a;
    return a < b ? a : b;
}

int wsk__ctx_init(struct wsk__ctx *ctx, struct wsk_loop *loop, const struct wsk_handlers *h,
                  void *user_data, wsk_log_cb log, const struct wsk_conn_limits *lim)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->loop = loop;
    if (h)
        ctx->h = *h;
    ctx->user_data = user_data;
    ctx->log = log;
    ctx->log_data = user_data;
    if (lim)
        ctx->lim = *lim;
    struct wsk_conn_limits *l = &ctx->lim;
    if (!l->max_message)
        l->max_message = 16u << 20;
    if (!l->max_send_queue)
        l->max_send_queue = 1u << 20;
    if (!l->handshake_timeout_ms)
        l->handshake_timeout_ms = 10000;
    if (!l->ping_interval_ms)
        l->ping_interval_ms = 20000;
    /* A peer gets as long to answer a keepalive ping as the interval
     * between pings, at most 20 s: --ping-interval 2 finds a dead peer in
     * 4 s, not 22. */
    if (!l->pong_timeout_ms)
        l->pong_timeout_ms = l->ping_interval_ms < 20000 ? l->ping_interval_ms : 20000;
    if (!l->close_timeout_ms)
        l->close_timeout_ms = 5000;
    if (!l->send_timeout_ms)
        l->send_timeout_ms = 30000;
    /* Timeouts are checked by one sweep over the connections rather than a
     * timer each: a deadline costs 8 bytes per connection and the sweep is
     * O(n) a few times a second, cheap even at 100k connections. Its period
     * bounds how late a timeout fires. */
    uint32_t m = min_nonzero(l->handshake_timeout_ms, l->close_timeout_ms);
    m = min_nonzero(m, l->ping_interval_ms);
    m = min_nonzero(m, l->pong_timeout_ms);
    m = min_nonzero(m, l->send_timeout_ms);
    ctx->sweep_ms = m / 4;
    if (ctx->sweep_ms > 1000)
        ctx->sweep_ms = 1000;
    if (ctx->sweep_ms < 10)
        ctx->sweep_ms = 10;
    /* The watchers first: wsk__ctx_destroy() stops them even when this
     * fails. */
    wsk_defer_init(&ctx->flush_defer, flush_all_cb, ctx);
    wsk_defer_init(&ctx->reap_defer, reap_cb, ctx);
    wsk_timer_init(&ctx->sweep, sweep_cb, ctx);
    wsk_timer_init(&ctx->flush_timer, flush_rest_cb, ctx);
    ctx->rbuf = wsk__loop_scratch(loop, &ctx->rbuf_cap);
    if (!ctx->rbuf)
        return -ENOMEM;
    return 0;
}

void wsk__ctx_destroy(struct wsk__ctx *ctx)
{
    ctx->in_teardown = true;
    while (ctx->conns)
        wsk__conn_abort(ctx->conns, WSK_ECLOSED);
    reap_cb(ctx->loop, &ctx->reap_defer);
    wsk_defer_cancel(ctx->loop, &ctx->reap_defer);
    wsk_defer_cancel(ctx->loop, &ctx->flush_defer);
    wsk_timer_stop(ctx->loop, &ctx->flush_timer);
    wsk_timer_stop(ctx->loop, &ctx->sweep);
    wsk__seg_pool_free(&ctx->pool);
    ctx->rbuf = NULL; /* the loop's */
    free(ctx->zbuf);
    ctx->zbuf = NULL;
    free(ctx->mbuf);
    ctx->mbuf = NULL;
}

int wsk__conn_new(struct wsk_conn **out, struct wsk__ctx *ctx, int fd, uint8_t state)
{
    struct wsk_conn *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->ctx = ctx;
    c->state = state;
    c->close_code = WSK_CLOSE_ABNORMAL;
    wsk__stream_init(&c->st, fd, conn_io_cb, c);
    /* Without the sweep no timeout of this context would ever fire. */
    if (!wsk_timer_is_active(&ctx->sweep)) {
        int rv = wsk_timer_start(ctx->loop, &ctx->sweep, ctx->sweep_ms, ctx->sweep_ms);
        if (rv < 0) {
            free(c);
            return rv;
        }
    }
    if (fd >= 0) {
        int rv = wsk_io_start(ctx->loop, &c->st.io,
                              state == WSK__CONNECTING ? WSK_IO_WRITE : WSK_IO_READ);
        if (rv < 0) {
            if (!ctx->conns)
                wsk_timer_stop(ctx->loop, &ctx->sweep);
            free(c);
            return rv;
        }
    }
    c->deadline = wsk_loop_now(ctx->loop) + ctx->lim.handshake_timeout_ms;
    c->next = ctx->conns;
    if (ctx->conns)
        ctx->conns->prev = c;
    ctx->conns = c;
    ctx->num_conns++;
    ctx->cnt.accepted++;
    *out = c;
    return 0;
}

static void unlink_conn(struct wsk_conn *c)
{
    struct wsk__ctx *ctx = c->ctx;
    for (struct wsk__walk *w = ctx->walks; w; w = w->up)
        if (w->next == c)
            w->next = c->next;
    if (c->prev)
        c->prev->next = c->next;
    else
        ctx->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = NULL;
    ctx->num_conns--;
    /* An idle sweep timer would keep wsk_loop_run() alive for nothing. */
    if (!ctx->conns)
        wsk_timer_stop(ctx->loop, &ctx->sweep);
}

void wsk__conn_set_events(struct wsk_conn *c)
{
    if (c->state == WSK__DEAD)
        return;
    bool want_read = !(c->flags & WSK__F_NO_READ) && c->state != WSK__HTTP_REPLY;
    int rv = wsk__stream_watch(c->ctx->loop, &c->st, want_read, c->state == WSK__CONNECTING);
    if (rv < 0)
        wsk__conn_abort(c, rv);
}

/* Ends the connection: closes the socket, reports on_close once, and frees
 * the memory at the end of the iteration. */
void wsk__conn_dead(struct wsk_conn *c)
{
    if (c->state == WSK__DEAD)
        return;
    struct wsk__ctx *ctx = c->ctx;
    bool was_open = c->flags & WSK__F_OPENED;
    c->state = WSK__DEAD;
    /* The socket is closed after on_close, so wsk_conn_peer() still works there. */
    wsk__stream_stop(ctx->loop, &c->st);
    wsk__stream_drop_queue(&c->st, &ctx->pool);
    wsk_session_clear(&c->sess);
    if (c->flags & WSK__F_FLUSH_LIST) {
        struct wsk_conn **pp = &ctx->flush_list;
        while (*pp && *pp != c)
            pp = &(*pp)->flush_next;
        if (!*pp) {
            pp = &ctx->flush_rest;
            while (*pp && *pp != c)
                pp = &(*pp)->flush_next;
        }
        if (*pp)
            *pp = c->flush_next;
        c->flags &= ~WSK__F_FLUSH_LIST;
    }
    if (was_open)
        ctx->num_open--;
    unlink_conn(c);
    if (ctx->server)
        wsk__server_conn_gone(c);
    else
        wsk__client_conn_gone(c);

    bool report = (c->flags & WSK__F_CLIENT) || was_open;
    /* wsk__conn_dead() runs once per connection (it returns early when DEAD), so
     * on_close does too. */
    if (report && ctx->h.on_close) {
        struct wsk_close_event ev = {0};
        ev.code = c->close_code;
        ev.error = c->error;
        ev.was_open = was_open;
        ev.http_status = c->http_status;
        ev.detail = "";
        if (c->flags & WSK__F_DETAIL) {
            ev.detail = (const char *)c->in;
        } else if ((c->flags & WSK__F_GOT_CLOSE) && c->in_len) {
            ev.reason.ptr = (const char *)c->in;
            ev.reason.len = c->in_len;
        }
        if (!ev.error && !((c->flags & WSK__F_GOT_CLOSE) && (c->flags & WSK__F_SENT_CLOSE)))
            ev.error = WSK_EABNORMAL;
        WSK__CALL(ctx, on_close, c, &ev, ctx->user_data);
    }
    free(c->in);
    c->in = NULL;
    c->in_len = c->in_cap = 0;
    wsk_deflate_free(c->sess.deflate);
    c->sess.deflate = NULL;
    wsk__stream_close(ctx->loop, &c->st, &ctx->pool);
    c->next = ctx->dead_list;
    ctx->dead_list = c;
    if (!ctx->in_teardown)
        wsk_defer_start(ctx->loop, &ctx->reap_defer);
}

void wsk__conn_abort(struct wsk_conn *c, int error)
{
    if (c->state == WSK__DEAD)
        return;
    if (!c->error)
        c->error = error;
    wsk__conn_dead(c);
}

void wsk__conn_finish(struct wsk_conn *c)
{
    if (c->state == WSK__DEAD || c->state == WSK__LINGER)
        return;
    if (c->st.out_bytes) {
        /* wsk__conn_flush() comes back here once the queue is empty. */
        wsk__conn_want_flush(c);
        return;
    }
    wsk__stream_shutdown_tls(&c->st);
    /* A server answering the client's close closes TCP first (RFC 6455 7.1.1)
     * and has nothing left to read: the client sends nothing after its close
     * frame. Skip the wait for EOF. */
    if (!(c->flags & (WSK__F_CLIENT | WSK__F_FAILED)) && (c->flags & WSK__F_PEER_CLOSED_FIRST) &&
        c->state == WSK__OPEN) {
        wsk__conn_dead(c);
        return;
    }
    shutdown(c->st.io.fd, SHUT_WR);
    c->state = WSK__LINGER;
    c->flags &= ~WSK__F_PAUSED;
    c->deadline = wsk_loop_now(c->ctx->loop) + c->ctx->lim.close_timeout_ms;
    wsk__conn_set_events(c);
}

int wsk__grow(uint8_t **buf, size_t *cap, size_t need, size_t first)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : first;
    while (n < need) {
        if (n > SIZE_MAX / 2)
            return -ENOMEM;
        n *= 2;
    }
    uint8_t *p = realloc(*buf, n);
    if (!p)
        return -ENOMEM;
    *buf = p;
    *cap = n;
    return 0;
}

int wsk__conn_in_append(struct wsk_conn *c, const uint8_t *data, size_t len)
{
    if (len > UINT32_MAX / 2 - c->in_len)
        return -ENOMEM;
    size_t cap = c->in_cap;
    if (wsk__grow(&c->in, &cap, c->in_len + len, 512) < 0)
        return -ENOMEM;
    c->in_cap = (uint32_t)cap;
    memcpy(c->in + c->in_len, data, len);
    c->in_len += (uint32_t)len;
    return 0;
}

void wsk__conn_in_drop(struct wsk_conn *c, size_t n)
{
    if (n >= c->in_len) {
        free(c->in);
        c->in = NULL;
        c->in_len = c->in_cap = 0;
        return;
    }
    memmove(c->in, c->in + n, c->in_len - n);
    c->in_len -= (uint32_t)n;
}

void wsk__conn_set_detail(struct wsk_conn *c, const char *detail)
{
    if ((c->flags & (WSK__F_DETAIL | WSK__F_GOT_CLOSE)) || !detail || !*detail)
        return;
    wsk__conn_in_drop(c, c->in_len);
    if (wsk__conn_in_append(c, (const uint8_t *)detail, strlen(detail) + 1) == 0)
        c->flags |= WSK__F_DETAIL;
}

/* After a TLS failure, keep OpenSSL's reason for on_close. */
void wsk__conn_tls_detail(struct wsk_conn *c)
{
    wsk__conn_set_detail(c, wsk__stream_error(&c->st));
}

int wsk__conn_start_tls(struct wsk_conn *c, bool is_server, const char *server_name)
{
    int rv = wsk__stream_start_tls(&c->st, c->ctx->tls_ctx, is_server, server_name);
    if (rv < 0)
        return rv;
    /* A client speaks first; a server finds out it has to wait. */
    tls_handshake_step(c);
    return 0;
}

/* A read or write failed (a reset, say). After the peer's close frame that
 * is a normal end, not an error: the Autobahn reference server, among
 * others, resets right after the close handshake. */
void wsk__conn_io_error(struct wsk_conn *c, int error)
{
    if ((c->flags & WSK__F_GOT_CLOSE) && !(c->flags & WSK__F_FAILED)) {
        wsk__conn_dead(c);
        return;
    }
    wsk__conn_tls_detail(c);
    wsk__conn_abort(c, error);
}

/* Comes back to read on this iteration's flush round. */
static void read_again(struct wsk_conn *c)
{
    c->flags |= WSK__F_READ_AGAIN;
    if (c->flags & WSK__F_IN_READ) {
        /* want_flush() skips connections in their own read: add directly. */
        if (!(c->flags & WSK__F_FLUSH_LIST)) {
            c->flags |= WSK__F_FLUSH_LIST;
            c->flush_next = c->ctx->flush_list;
            c->ctx->flush_list = c;
            wsk_defer_start(c->ctx->loop, &c->ctx->flush_defer);
        }
        return;
    }
    wsk__conn_want_flush(c);
}

void wsk_conn_pause(struct wsk_conn *c, bool paused)
{
    if (c->state == WSK__DEAD)
        return;
    if (paused) {
        c->flags |= WSK__F_USER_PAUSED;
    } else {
        if (!(c->flags & WSK__F_USER_PAUSED))
            return;
        c->flags &= ~WSK__F_USER_PAUSED;
        /* Bytes TLS decrypted before the pause would not show as
         * readiness: come back for them. */
        if ((c->flags & WSK__F_READ_AGAIN) ||
            (wsk__stream_tls(&c->st) && wsk__stream_pending(&c->st)))
            read_again(c);
    }
    if (!(c->flags & WSK__F_IN_READ))
        wsk__conn_set_events(c);
}

void wsk_conn_set_data(struct wsk_conn *c, void *data)
{
    c->user_data = data;
}

void *wsk_conn_get_data(const struct wsk_conn *c)
{
    return c->user_data;
}

const char *wsk_conn_peer(const struct wsk_conn *c)
{
    static _Thread_local char buf[64];
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    buf[0] = 0;
    if (c->st.io.fd < 0 || getpeername(c->st.io.fd, (struct sockaddr *)&ss, &len) != 0)
        return "(peer gone)";
    char host[48];
    unsigned port = 0;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        port = ntohs(a->sin_port);
        snprintf(buf, sizeof buf, "%s:%u", host, port);
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        port = ntohs(a->sin6_port);
        snprintf(buf, sizeof buf, "[%s]:%u", host, port);
    } else {
        return "(peer gone)";
    }
    return buf;
}

static void on_eof(struct wsk_conn *c)
{
    if (c->state == WSK__LINGER || (c->flags & WSK__F_GOT_CLOSE)) {
        wsk__conn_dead(c);
        return;
    }
    if (c->state == WSK__HANDSHAKE && wsk__client_proxy_eof(c))
        return;
    if (c->state == WSK__OPEN && !(c->flags & WSK__F_FAILED))
        wsk__log(c->ctx, 3, "%s: connection closed without a close frame", wsk_conn_peer(c));
    wsk__conn_abort(c, (c->flags & WSK__F_FAILED) ? c->error : WSK_EABNORMAL);
}

static void feed(struct wsk_conn *c, uint8_t *data, size_t n)
{
    switch (c->state) {
    case WSK__HTTP:
        wsk__server_on_head(c, data, n);
        break;
    case WSK__HANDSHAKE:
        wsk__client_on_head(c, data, n);
        break;
    case WSK__OPEN:
        wsk__conn_feed_frames(c, data, n);
        break;
    default:
        break; /* LINGER: input after our close is discarded */
    }
}

/* Where the next read goes: normally the loop's buffer; but when a large
 * uncompressed data frame is half in, the rest goes straight to its place in
 * the message buffer, saving a copy of most of a big message. */
static uint8_t *read_target(struct wsk_conn *c, size_t *cap)
{
    uint8_t *p = NULL;
    if (c->state == WSK__OPEN)
        p = wsk_session_read_target(&c->sess, DIRECT_READ_MIN, cap);
    if (!p) {
        *cap = c->ctx->rbuf_cap;
        p = c->ctx->rbuf;
    }
    return p;
}

static void conn_read(struct wsk_conn *c)
{
    for (int i = 0; i < READS_PER_EVENT; i++) {
        size_t cap;
        uint8_t *buf = read_target(c, &cap);
        ssize_t n = wsk__stream_recv(&c->st, buf, cap);
        if (n == -EAGAIN)
            return;
        if (n < 0) {
            wsk__conn_io_error(c, (int)n);
            return;
        }
        if (n == 0) {
            on_eof(c);
            return;
        }
        c->ctx->cnt.bytes_in += (uint64_t)n;
        feed(c, buf, (size_t)n);
        if (c->state == WSK__DEAD || (c->flags & WSK__F_NO_READ))
            return;
        /* A short read means the socket is drained: save the EAGAIN call.
         * TLS hands out one record at a time, so ask it instead. */
        if (wsk__stream_tls(&c->st) ? !wsk__stream_pending(&c->st) : (size_t)n < cap)
            return;
    }
    /* Fairness cap reached. Plain sockets stay readable for the next
     * iteration; bytes TLS already decrypted would not show, so come back. */
    if (wsk__stream_pending(&c->st))
        read_again(c);
}

/* Plain HTTP sent to the TLS port gets a readable 400, as nginx answers,
 * instead of a reset. */
static void answer_plain_http(struct wsk_conn *c)
{
    static const char answer[] =
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 47\r\nConnection: close\r\n\r\n"
        "400 Bad Request: plain HTTP sent to a TLS port\n";
    wsk__log(c->ctx, 2, "%s: plain HTTP on the TLS port, answering 400", wsk_conn_peer(c));
    c->flags |= WSK__F_HTTP_CLOSE;
    c->state = WSK__HTTP_REPLY;
    if (wsk__conn_queue(c, answer, sizeof answer - 1) < 0)
        wsk__conn_abort(c, -ENOMEM);
    else
        wsk__conn_flush(c);
}

/* The TLS handshake, stepped by readiness. */
static void tls_handshake_step(struct wsk_conn *c)
{
    int rv = wsk__stream_handshake(&c->st);
    if (rv == WSK__STREAM_HS_PLAIN) {
        answer_plain_http(c);
        return;
    }
    if (rv == WSK__STREAM_HS_AGAIN) {
        wsk__conn_set_events(c);
        return;
    }
    if (rv < 0) {
        wsk__conn_tls_detail(c);
        wsk__log(c->ctx, 2, "%s: TLS handshake failed: %s", wsk_conn_peer(c),
                 wsk__stream_error(&c->st));
        c->ctx->cnt.tls_failures++;
        wsk__conn_abort(c, rv);
        return;
    }
    if (c->flags & WSK__F_CLIENT)
        wsk__client_on_tls_done(c);
    if (c->state == WSK__DEAD)
        return;
    /* The peer may have sent its request with the last handshake flight. */
    if (wsk__stream_pending(&c->st))
        read_again(c);
    if (c->st.out_bytes)
        wsk__conn_flush(c);
    else
        wsk__conn_set_events(c);
}

static void conn_io_cb(struct wsk_loop *loop, struct wsk_io *io, unsigned events)
{
    (void)loop;
    struct wsk_conn *c = io->data;
    if (c->state == WSK__CONNECTING) {
        wsk__client_on_writable(c);
    } else if (c->st.flags & WSK__STREAM_TLS_HS) {
        tls_handshake_step(c);
    } else {
        /* TLS may read when writable or write when readable. */
        if ((events & WSK_IO_WRITE) ||
            ((events & WSK_IO_READ) && (c->st.flags & WSK__STREAM_TLS_WR)))
            wsk__conn_flush(c);
        if ((c->st.flags & WSK__STREAM_TLS_RW) && (events & WSK_IO_WRITE))
            events |= WSK_IO_READ;
        if ((events & WSK_IO_READ) && c->state != WSK__DEAD && !(c->flags & WSK__F_NO_READ)) {
            c->flags |= WSK__F_IN_READ;
            conn_read(c);
            c->flags &= ~WSK__F_IN_READ;
            if (c->state != WSK__DEAD && c->st.out_bytes)
                wsk__conn_flush(c);
            else
                wsk__conn_set_events(c);
        }
    }
}

static void on_deadline(struct wsk_conn *c, uint64_t now)
{
    struct wsk__ctx *ctx = c->ctx;
    switch (c->state) {
    case WSK__OPEN:
        if (c->flags & WSK__F_SENT_CLOSE) {
            wsk__log(ctx, 2, "%s: no close from the peer in time", wsk_conn_peer(c));
            wsk__conn_abort(c, c->error ? c->error : -ETIMEDOUT);
        } else if (c->flags & WSK__F_PING_SENT) {
            /* The peer is gone or does not read. Say so with 1011, as python
             * websockets does ("keepalive ping timeout"), and give it
             * close_timeout to answer; a dead peer's on_close then reports
             * 1006 and -ETIMEDOUT. */
            wsk__log(ctx, 2, "%s: no pong in time, closing with 1011", wsk_conn_peer(c));
            c->error = -ETIMEDOUT;
            c->flags |= WSK__F_FAILED;
            c->flags &= ~WSK__F_PAUSED;
            wsk__conn_send_close(c, WSK_CLOSE_INTERNAL, "keepalive ping timeout", 22);
            c->deadline = now + ctx->lim.close_timeout_ms;
            wsk__conn_finish(c);
        } else {
            c->flags |= WSK__F_PING_SENT;
            c->ping_nonce = arc4random();
            wsk__conn_queue_frame(c, WSK_FRAME_FIN | WSK_OP_PING, (const uint8_t *)&c->ping_nonce,
                                  sizeof c->ping_nonce);
            c->deadline = now + ctx->lim.pong_timeout_ms;
        }
        break;
    case WSK__LINGER:
        /* The close handshake is complete or failed already: just close. */
        wsk__conn_dead(c);
        break;
    case WSK__HTTP_REPLY:
        wsk__log(ctx, 2, "%s: response stalled: nothing sent for %u ms, closing", wsk_conn_peer(c),
                 ctx->lim.send_timeout_ms);
        wsk__conn_abort(c, -ETIMEDOUT);
        break;
    default:
        wsk__log(ctx, 3, "%s: handshake timeout", wsk_conn_peer(c));
        ctx->cnt.handshake_timeouts++;
        wsk__conn_abort(c, -ETIMEDOUT);
        break;
    }
}
