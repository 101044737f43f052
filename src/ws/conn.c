/* A WebSocket connection on the loop: reading, framing, the send queue and
 * the close handshake (RFC 6455 sections 5-7). Shared by servers and clients;
 * server.c and client.c handle what comes before the connection is open.
 *
 * Reading: every connection reads into its context's receive buffer; the
 * frame parser unmasks and validates in place; a message that fits in one
 * read is handed to on_message straight from that buffer, only messages split
 * across frames or reads are copied into conn->msg.
 *
 * Writing: sends append frames to the connection's queue and put it on the
 * context's flush list; the queue is written with one writev() at the end of
 * the read burst that caused it (or at the end of the loop iteration), so a
 * burst of 32 requests costs one read and one write. What the socket refuses
 * stays queued, up to max_send_queue: past it a connection's own traffic
 * stops reading from that peer until the queue drains (TCP pushes back);
 * others' traffic (broadcasts) meets the overflow policy.
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
#include "transport/tls.h"
#include "ws/ws_internal.h"

#define RBUF_SIZE (256u * 1024)
#define SEG_SIZE  (16u * 1024)
#define POOL_MAX  64
/* A connection that is sent one small frame (a broadcast, say) gets a small
 * segment: 1,000 receivers then cost 256 KiB, not 16 MiB of segments that
 * malloc hands back to the kernel at once. */
#define SMALL_SEG_ALLOC  256u
#define SMALL_SEG_CAP    (SMALL_SEG_ALLOC - sizeof(struct wsk__oseg))
#define SPOOL_MAX        4096
#define DIRECT_WRITE_MIN (16u * 1024)
#define DIRECT_READ_MIN  (16u * 1024)
#define READS_PER_EVENT  4
#define IOV_MAX_BATCH    64

static void conn_io_cb(struct wsk_loop *loop, struct wsk_io *io, unsigned events);
static void conn_flush(struct wsk_conn *c);
static void conn_dead(struct wsk_conn *c);
static void set_events(struct wsk_conn *c);
static void tls_handshake_step(struct wsk_conn *c);

/* ---- context ------------------------------------------------------------ */

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

static void conn_read(struct wsk_conn *c);

static void flush_all_cb(struct wsk_loop *loop, struct wsk_defer *d)
{
    (void)loop;
    struct wsk__ctx *ctx = d->data;
    /* Flushing may add connections back (a drained queue lets a handler send
     * more), so take the list as it is now. */
    struct wsk_conn *list = ctx->flush_list;
    ctx->flush_list = NULL;
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
        if (c->flags & WSK__F_READ_AGAIN) {
            c->flags &= ~WSK__F_READ_AGAIN;
            c->flags |= WSK__F_IN_READ;
            conn_read(c);
            c->flags &= ~WSK__F_IN_READ;
            if (c->state == WSK__DEAD)
                continue;
        }
        conn_flush(c);
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

static void on_deadline(struct wsk_conn *c, uint64_t now);

static void sweep_cb(struct wsk_loop *loop, struct wsk_timer *t)
{
    struct wsk__ctx *ctx = t->data;
    uint64_t now = wsk_loop_now(loop);
    struct wsk_conn *c = ctx->conns;
    while (c) {
        /* on_deadline may end c: keep the next one first. A connection that
         * ends is unlinked from this list but its next pointer stays valid
         * until the reap at the end of the iteration. */
        struct wsk_conn *next = c->next;
        if (c->state == WSK__DEAD)
            break; /* ended by a callback of this sweep: next is the dead list now */
        if (c->deadline && now >= c->deadline && c->state != WSK__DEAD)
            on_deadline(c, now);
        c = next;
    }
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
    ctx->rbuf = wsk__loop_scratch(loop, &ctx->rbuf_cap);
    if (!ctx->rbuf)
        return -ENOMEM;
    return 0;
}

static void seg_free(struct wsk__ctx *ctx, struct wsk__oseg *s)
{
    if (s->shared) {
        wsk__shared_release(s->shared);
        free(s);
    } else if (s->cap == SEG_SIZE && ctx->pool_len < POOL_MAX) {
        s->next = ctx->pool;
        ctx->pool = s;
        ctx->pool_len++;
    } else if (s->cap == SMALL_SEG_CAP && ctx->spool_len < SPOOL_MAX) {
        s->next = ctx->spool;
        ctx->spool = s;
        ctx->spool_len++;
    } else {
        free(s);
    }
}

void wsk__ctx_free_pools(struct wsk__ctx *ctx)
{
    struct wsk__oseg *lists[2] = {ctx->pool, ctx->spool};
    for (int i = 0; i < 2; i++) {
        while (lists[i]) {
            struct wsk__oseg *s = lists[i];
            lists[i] = s->next;
            free(s);
        }
    }
    ctx->pool = ctx->spool = NULL;
    ctx->pool_len = ctx->spool_len = 0;
}

void wsk__ctx_destroy(struct wsk__ctx *ctx)
{
    ctx->in_teardown = true;
    while (ctx->conns)
        wsk__conn_abort(ctx->conns, WSK_ECLOSED);
    reap_cb(ctx->loop, &ctx->reap_defer);
    wsk_defer_cancel(ctx->loop, &ctx->reap_defer);
    wsk_defer_cancel(ctx->loop, &ctx->flush_defer);
    wsk_timer_stop(ctx->loop, &ctx->sweep);
    wsk__ctx_free_pools(ctx);
    ctx->rbuf = NULL; /* the loop's */
    free(ctx->zbuf);
    ctx->zbuf = NULL;
}

/* ---- shared frames ---------------------------------------------------- */

struct wsk__shared *wsk__shared_frame(uint8_t first_byte, const void *payload, size_t len)
{
    struct wsk__shared *sh = malloc(sizeof *sh + WSK_FRAME_HEADER_MAX + len);
    if (!sh)
        return NULL;
    size_t h = wsk_frame_header_encode(sh->data, first_byte, len, NULL);
    if (len)
        memcpy(sh->data + h, payload, len);
    sh->len = h + len;
    sh->refs = 1;
    return sh;
}

void wsk__shared_release(struct wsk__shared *sh)
{
    if (sh && --sh->refs == 0)
        free(sh);
}

/* ---- connection lifecycle ---------------------------------------------- */

int wsk__conn_new(struct wsk_conn **out, struct wsk__ctx *ctx, int fd, uint8_t state)
{
    struct wsk_conn *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->ctx = ctx;
    c->state = state;
    c->close_code = WSK_CLOSE_ABNORMAL;
    wsk_io_init(&c->io, fd, conn_io_cb, c);
    if (fd >= 0) {
        int rv =
            wsk_io_start(ctx->loop, &c->io, state == WSK__CONNECTING ? WSK_IO_WRITE : WSK_IO_READ);
        if (rv < 0) {
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
    if (!wsk_timer_is_active(&ctx->sweep))
        wsk_timer_start(ctx->loop, &ctx->sweep, ctx->sweep_ms, ctx->sweep_ms);
    *out = c;
    return 0;
}

static void unlink_conn(struct wsk_conn *c)
{
    struct wsk__ctx *ctx = c->ctx;
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

static void set_events(struct wsk_conn *c)
{
    if (c->io.fd < 0 || c->state == WSK__DEAD)
        return;
    unsigned ev = 0;
    if (!(c->flags & WSK__F_PAUSED) && c->state != WSK__HTTP_REPLY)
        ev |= WSK_IO_READ;
    if (c->flags & (WSK__F_TLS_WR | WSK__F_TLS_HS))
        ev |= WSK_IO_READ;
    if (c->out_bytes || (c->flags & WSK__F_TLS_RW))
        ev |= WSK_IO_WRITE;
    if ((c->flags & WSK__F_TLS_HS) && !(c->flags & WSK__F_TLS_RW))
        ev = WSK_IO_READ; /* the handshake first: queued bytes wait for it */
    if (c->state == WSK__CONNECTING)
        ev = WSK_IO_WRITE;
    if (ev != c->io.events) {
        int rv = wsk_io_start(c->ctx->loop, &c->io, ev);
        if (rv < 0 && ev)
            wsk__conn_abort(c, rv);
    }
}

static void free_queue(struct wsk_conn *c)
{
    struct wsk__oseg *s = c->out_head;
    while (s) {
        struct wsk__oseg *next = s->next;
        seg_free(c->ctx, s);
        s = next;
    }
    c->out_head = c->out_tail = NULL;
    c->out_bytes = 0;
}

/* Ends the connection: closes the socket, reports on_close once, and frees
 * the memory at the end of the iteration. */
static void conn_dead(struct wsk_conn *c)
{
    if (c->state == WSK__DEAD)
        return;
    struct wsk__ctx *ctx = c->ctx;
    bool was_open = c->flags & WSK__F_OPENED;
    c->state = WSK__DEAD;
    /* The socket is closed after on_close, so wsk_conn_peer() still works there. */
    if (c->io.fd >= 0)
        wsk_io_stop(ctx->loop, &c->io);
    free_queue(c);
    free(c->msg);
    c->msg = NULL;
    if (c->flags & WSK__F_FLUSH_LIST) {
        struct wsk_conn **pp = &ctx->flush_list;
        while (*pp && *pp != c)
            pp = &(*pp)->flush_next;
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
    /* conn_dead() runs once per connection (it returns early when DEAD), so
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
    wsk__tls_free(c->tls);
    c->tls = NULL;
    wsk_deflate_free(c->deflate);
    c->deflate = NULL;
    if (c->io.fd >= 0) {
        close(c->io.fd);
        c->io.fd = -1;
    }
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
    conn_dead(c);
}

void wsk__conn_finish(struct wsk_conn *c)
{
    if (c->state == WSK__DEAD || c->state == WSK__LINGER)
        return;
    if (c->out_bytes) {
        /* conn_flush() comes back here once the queue is empty. */
        wsk__conn_want_flush(c);
        return;
    }
    if (c->tls)
        wsk__tls_shutdown(c->tls);
    /* A server answering the client's close closes TCP first (RFC 6455 7.1.1)
     * and has nothing left to read: the client sends nothing after its close
     * frame. Skip the wait for EOF. */
    if (!(c->flags & (WSK__F_CLIENT | WSK__F_FAILED)) && (c->flags & WSK__F_PEER_CLOSED_FIRST) &&
        c->state == WSK__OPEN) {
        conn_dead(c);
        return;
    }
    shutdown(c->io.fd, SHUT_WR);
    c->state = WSK__LINGER;
    c->flags &= ~WSK__F_PAUSED;
    c->deadline = wsk_loop_now(c->ctx->loop) + c->ctx->lim.close_timeout_ms;
    set_events(c);
}

/* ---- input buffer -------------------------------------------------------- */

int wsk__conn_in_append(struct wsk_conn *c, const uint8_t *data, size_t len)
{
    if (len > UINT32_MAX - c->in_len)
        return -ENOMEM;
    if (c->in_len + len > c->in_cap) {
        size_t cap = c->in_cap ? c->in_cap : 512;
        while (cap < c->in_len + len)
            cap *= 2;
        uint8_t *in = realloc(c->in, cap);
        if (!in)
            return -ENOMEM;
        c->in = in;
        c->in_cap = (uint32_t)cap;
    }
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

/* ---- transport ---------------------------------------------------------- */

void wsk__conn_set_detail(struct wsk_conn *c, const char *detail)
{
    if ((c->flags & (WSK__F_DETAIL | WSK__F_GOT_CLOSE)) || !detail || !*detail)
        return;
    wsk__conn_in_drop(c, c->in_len);
    if (wsk__conn_in_append(c, (const uint8_t *)detail, strlen(detail) + 1) == 0)
        c->flags |= WSK__F_DETAIL;
}

/* After a TLS failure, keep OpenSSL's reason for on_close. */
static void tls_detail(struct wsk_conn *c)
{
    if (c->tls)
        wsk__conn_set_detail(c, wsk__tls_error(c->tls));
}

int wsk__conn_start_tls(struct wsk_conn *c, bool is_server, const char *server_name)
{
    int rv = wsk__tls_new(&c->tls, c->ctx->tls_ctx, c->io.fd, is_server, server_name);
    if (rv < 0)
        return rv;
    c->flags |= WSK__F_TLS_HS;
    /* A client speaks first; a server finds out it has to wait. */
    tls_handshake_step(c);
    return 0;
}

/* A read or write failed (a reset, say). After the peer's close frame that
 * is a normal end, not an error: the Autobahn reference server, among
 * others, resets right after the close handshake. */
static void conn_io_error(struct wsk_conn *c, int error)
{
    if ((c->flags & WSK__F_GOT_CLOSE) && !(c->flags & WSK__F_FAILED)) {
        conn_dead(c);
        return;
    }
    tls_detail(c);
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

/* ---- send queue ---------------------------------------------------------- */

static struct wsk__oseg *seg_new(struct wsk__ctx *ctx, size_t need, bool small)
{
    struct wsk__oseg *s;
    if (small && need <= SMALL_SEG_CAP) {
        if (ctx->spool) {
            s = ctx->spool;
            ctx->spool = s->next;
            ctx->spool_len--;
        } else {
            s = malloc(SMALL_SEG_ALLOC);
            if (!s)
                return NULL;
            s->cap = SMALL_SEG_CAP;
        }
    } else if (need <= SEG_SIZE && ctx->pool) {
        s = ctx->pool;
        ctx->pool = s->next;
        ctx->pool_len--;
    } else {
        size_t cap = need <= SEG_SIZE ? SEG_SIZE : need;
        s = malloc(sizeof *s + cap);
        if (!s)
            return NULL;
        s->cap = cap;
    }
    s->next = NULL;
    s->shared = NULL;
    s->off = 0;
    s->len = 0;
    return s;
}

static void seg_append(struct wsk_conn *c, struct wsk__oseg *s)
{
    if (c->out_tail)
        c->out_tail->next = s;
    else
        c->out_head = s;
    c->out_tail = s;
}

/* Returns room for n more bytes at the end of the queue. */
static uint8_t *queue_reserve(struct wsk_conn *c, size_t n)
{
    struct wsk__oseg *t = c->out_tail;
    if (!t || t->shared || t->cap - t->len < n) {
        /* A connection answering its own input tends to send many frames
         * in a burst; one sent to from elsewhere, a few. */
        t = seg_new(c->ctx, n, !c->out_head && !(c->flags & WSK__F_IN_READ));
        if (!t)
            return NULL;
        seg_append(c, t);
    }
    uint8_t *p = t->data + t->len;
    t->len += n;
    c->out_bytes += n;
    return p;
}

int wsk__conn_queue(struct wsk_conn *c, const void *data, size_t len)
{
    uint8_t *p = queue_reserve(c, len);
    if (!p)
        return -ENOMEM;
    memcpy(p, data, len);
    wsk__conn_want_flush(c);
    return 0;
}

int wsk__conn_queue_shared(struct wsk_conn *c, struct wsk__shared *sh)
{
    struct wsk__oseg *s = malloc(sizeof *s);
    if (!s)
        return -ENOMEM;
    s->next = NULL;
    s->shared = sh;
    s->off = 0;
    s->len = sh->len;
    s->cap = 0;
    sh->refs++;
    seg_append(c, s);
    c->out_bytes += sh->len;
    wsk__conn_want_flush(c);
    return 0;
}

void wsk__conn_want_flush(struct wsk_conn *c)
{
    struct wsk__ctx *ctx = c->ctx;
    /* A connection handling its own input is flushed when that ends. */
    if (c->flags & (WSK__F_FLUSH_LIST | WSK__F_IN_READ))
        return;
    c->flags |= WSK__F_FLUSH_LIST;
    c->flush_next = ctx->flush_list;
    ctx->flush_list = c;
    wsk_defer_start(ctx->loop, &ctx->flush_defer);
}

/* The transport: plain TCP or TLS behind two calls. Both return a count,
 * 0 for end of stream (receive only), -EAGAIN when the socket is not ready,
 * or a negative error. TLS may need the other direction's readiness: the
 * flags say so and set_events() watches for it. */
static ssize_t conn_send(struct wsk_conn *c, struct iovec *iov, int n)
{
    if (c->tls) {
        ssize_t w = wsk__tls_writev(c->tls, iov, n);
        if (w == WSK__TLS_WANT_READ) {
            c->flags |= WSK__F_TLS_WR;
            return -EAGAIN;
        }
        c->flags &= ~WSK__F_TLS_WR;
        return w == WSK__TLS_WANT_WRITE ? -EAGAIN : w;
    }
    /* send() and sendmsg() rather than writev() so a vanished peer is
     * -EPIPE, not SIGPIPE; send() for one buffer, the common case, spares
     * the kernel the message header and iovec import. */
    struct msghdr mh = {0};
    mh.msg_iov = iov;
    mh.msg_iovlen = (size_t)n;
    for (;;) {
        ssize_t w = n == 1 ? send(c->io.fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL)
                           : sendmsg(c->io.fd, &mh, MSG_NOSIGNAL);
        if (w >= 0)
            return w;
        if (errno != EINTR)
            return -errno;
    }
}

static ssize_t conn_recv(struct wsk_conn *c, uint8_t *buf, size_t len)
{
    if (c->tls) {
        ssize_t n = wsk__tls_read(c->tls, buf, len);
        if (n == WSK__TLS_WANT_WRITE) {
            c->flags |= WSK__F_TLS_RW;
            return -EAGAIN;
        }
        c->flags &= ~WSK__F_TLS_RW;
        return n == WSK__TLS_WANT_READ ? -EAGAIN : n;
    }
    for (;;) {
        /* recv(), not read(): the socket call skips the VFS layer's checks
         * and notification hooks that read() makes on every call. */
        ssize_t n = recv(c->io.fd, buf, len, 0);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return -errno;
    }
}

/* Writes as much of the queue as the socket takes. */
static void conn_flush(struct wsk_conn *c)
{
    struct wsk__ctx *ctx = c->ctx;
    while (c->out_bytes && c->state != WSK__DEAD) {
        struct iovec iov[IOV_MAX_BATCH];
        int n = 0;
        for (struct wsk__oseg *s = c->out_head; s && n < IOV_MAX_BATCH; s = s->next) {
            const uint8_t *base = s->shared ? s->shared->data : s->data;
            iov[n].iov_base = (void *)(uintptr_t)(base + s->off);
            iov[n].iov_len = s->len - s->off;
            n++;
        }
        ssize_t w = conn_send(c, iov, n);
        if (w == -EAGAIN || w == 0)
            break;
        if (w < 0) {
            conn_io_error(c, (int)w);
            return;
        }
        size_t left = (size_t)w;
        c->out_bytes -= left;
        /* A response times out only when it stops moving (nginx's
         * send_timeout): a slow but steady download goes on. */
        if (c->state == WSK__HTTP_REPLY)
            c->deadline = wsk_loop_now(ctx->loop) + ctx->lim.send_timeout_ms;
        while (left) {
            struct wsk__oseg *s = c->out_head;
            size_t avail = s->len - s->off;
            if (left < avail) {
                s->off += left;
                break;
            }
            left -= avail;
            c->out_head = s->next;
            if (!c->out_head)
                c->out_tail = NULL;
            seg_free(ctx, s);
        }
    }
    if (c->state == WSK__DEAD)
        return;
    size_t low = ctx->lim.max_send_queue / 2;
    if (c->out_bytes <= low) {
        if (c->flags & WSK__F_PAUSED)
            c->flags &= ~WSK__F_PAUSED;
        if ((c->flags & WSK__F_WANT_DRAIN) && c->state == WSK__OPEN) {
            c->flags &= ~WSK__F_WANT_DRAIN;
            if (ctx->h.on_drain) {
                WSK__CALL(ctx, on_drain, c, ctx->user_data);
            }
        }
    }
    if (!c->out_bytes) {
        if (c->state == WSK__HTTP_REPLY)
            wsk__server_on_reply_drained(c);
        else if (c->state == WSK__OPEN && (c->flags & WSK__F_SENT_CLOSE) &&
                 (c->flags & (WSK__F_GOT_CLOSE | WSK__F_FAILED)))
            wsk__conn_finish(c);
    }
    set_events(c);
}

/* Queues one frame. Large server payloads go straight to the socket when
 * nothing is queued before them, saving a copy. */
static int queue_frame(struct wsk_conn *c, uint8_t first_byte, const uint8_t *payload, size_t len)
{
    /* A small unmasked frame joins the tail segment in place when it fits:
     * the common case of many small sends in one read burst. */
    if (len < 126 && !(c->flags & WSK__F_CLIENT)) {
        struct wsk__oseg *t = c->out_tail;
        if (t && !t->shared && t->cap - t->len >= len + 2) {
            uint8_t *p = t->data + t->len;
            p[0] = first_byte;
            p[1] = (uint8_t)len;
            if (len)
                memcpy(p + 2, payload, len);
            t->len += len + 2;
            c->out_bytes += len + 2;
            wsk__conn_want_flush(c);
            return 0;
        }
    }
    uint8_t key[4];
    const uint8_t *mask = NULL;
    if (c->flags & WSK__F_CLIENT) {
        arc4random_buf(key, sizeof key);
        mask = key;
    }
    uint8_t hdr[WSK_FRAME_HEADER_MAX];
    size_t hlen = wsk_frame_header_encode(hdr, first_byte, len, mask);
    size_t skip = 0;
    if (!mask && len >= DIRECT_WRITE_MIN && !c->out_bytes && c->io.fd >= 0 &&
        !(c->flags & WSK__F_TLS_HS) && c->state != WSK__CONNECTING) {
        struct iovec iov[2] = {{hdr, hlen}, {(void *)(uintptr_t)payload, len}};
        ssize_t w = conn_send(c, iov, 2);
        if (w < 0 && w != -EAGAIN) {
            tls_detail(c);
            wsk__conn_abort(c, (int)w);
            return WSK_ECLOSED;
        }
        if (w > 0)
            skip = (size_t)w;
        if (skip == hlen + len)
            return 0;
    }
    size_t total = hlen + len - skip;
    uint8_t *p = queue_reserve(c, total);
    if (!p)
        return -ENOMEM;
    if (skip < hlen) {
        memcpy(p, hdr + skip, hlen - skip);
        p += hlen - skip;
        skip = 0;
    } else {
        skip -= hlen;
    }
    if (mask && len)
        wsk_mask_copy(p, payload, len, mask, 0);
    else if (!mask && len - skip)
        memcpy(p, payload + skip, len - skip);
    wsk__conn_want_flush(c);
    return 0;
}

void wsk__conn_flush_now(struct wsk_conn *c)
{
    if (c->state != WSK__DEAD && c->io.fd >= 0 && c->state != WSK__CONNECTING)
        conn_flush(c);
}

/* Applies the queue limit after a send made by the connection's user. */
static int check_queue(struct wsk_conn *c)
{
    if (c->out_bytes <= c->ctx->lim.max_send_queue)
        return 0;
    /* Coalescing is for small frames: before calling the queue full, give
     * the socket what it will take now. */
    wsk__conn_flush_now(c);
    if (c->out_bytes <= c->ctx->lim.max_send_queue)
        return 0;
    c->flags |= WSK__F_WANT_DRAIN;
    if (c->flags & WSK__F_IN_READ) {
        /* The peer's own requests filled the queue: read no more from it
         * until it reads its answers. */
        c->flags |= WSK__F_PAUSED;
    }
    return WSK_EBACKPRESSURE;
}

int wsk__zbuf_sink(void *arg, const uint8_t *data, size_t len)
{
    struct wsk__ctx *ctx = arg;
    if (ctx->zbuf_len + len > ctx->zbuf_cap) {
        size_t cap = ctx->zbuf_cap ? ctx->zbuf_cap : 16384;
        while (cap < ctx->zbuf_len + len)
            cap *= 2;
        uint8_t *z = realloc(ctx->zbuf, cap);
        if (!z)
            return -ENOMEM;
        ctx->zbuf = z;
        ctx->zbuf_cap = cap;
    }
    memcpy(ctx->zbuf + ctx->zbuf_len, data, len);
    ctx->zbuf_len += len;
    return 0;
}

int wsk__conn_send_message(struct wsk_conn *c, uint8_t opcode, const uint8_t *data, size_t len)
{
    struct wsk__ctx *ctx = c->ctx;
    if (!c->deflate || len < ctx->deflate_min)
        return queue_frame(c, (uint8_t)(WSK_FRAME_FIN | opcode), data, len);
    if (c->flags & WSK__F_Z_RESET) {
        wsk_deflate_reset_send(c->deflate);
        c->flags &= ~WSK__F_Z_RESET;
    }
    ctx->zbuf_len = 0;
    int rv = wsk_deflate_compress(c->deflate, data, len, wsk__zbuf_sink, ctx);
    if (rv < 0)
        return rv;
    rv = queue_frame(c, (uint8_t)(WSK_FRAME_FIN | WSK_FRAME_RSV1 | opcode), ctx->zbuf,
                     ctx->zbuf_len);
    /* One big message should not pin a big buffer for good. */
    if (ctx->zbuf_cap > 1024 * 1024) {
        free(ctx->zbuf);
        ctx->zbuf = NULL;
        ctx->zbuf_cap = 0;
    }
    return rv;
}

int wsk_conn_send(struct wsk_conn *c, enum wsk_opcode opcode, const void *data, size_t len)
{
    if (opcode != WSK_OP_TEXT && opcode != WSK_OP_BINARY)
        return -EINVAL;
    if (c->state != WSK__OPEN || (c->flags & WSK__F_SENT_CLOSE))
        return WSK_ESTATE;
    if (opcode == WSK_OP_TEXT &&
        !(data == c->ctx->valid_text && len == c->ctx->valid_text_len && data) &&
        !wsk_utf8_valid(data, len))
        return WSK_EUTF8;
    int rv = wsk__conn_send_message(c, (uint8_t)opcode, data, len);
    if (rv)
        return rv;
    return check_queue(c);
}

int wsk_conn_ping(struct wsk_conn *c, const void *data, size_t len)
{
    if (len > 125)
        return WSK_ETOOBIG;
    if (c->state != WSK__OPEN || (c->flags & WSK__F_SENT_CLOSE))
        return WSK_ESTATE;
    return queue_frame(c, WSK_FRAME_FIN | WSK_OP_PING, data, len);
}

static int send_close(struct wsk_conn *c, unsigned code, const char *reason, size_t reason_len)
{
    uint8_t payload[125];
    int n = wsk_close_payload_encode(payload, code, reason, reason_len);
    if (n < 0)
        return n;
    int rv = queue_frame(c, WSK_FRAME_FIN | WSK_OP_CLOSE, payload, (size_t)n);
    if (rv)
        return rv;
    c->flags |= WSK__F_SENT_CLOSE;
    return 0;
}

int wsk_conn_close(struct wsk_conn *c, unsigned code, const char *reason)
{
    if (c->state == WSK__DEAD || c->state == WSK__LINGER)
        return 0;
    size_t reason_len = reason ? strlen(reason) : 0;
    if (code && !wsk_close_code_is_valid(code))
        return WSK_EPROTO;
    if (c->state != WSK__OPEN) {
        /* Nothing to hand shake yet: just end it. */
        wsk__conn_abort(c, WSK_ECLOSED);
        return 0;
    }
    if (c->flags & WSK__F_SENT_CLOSE)
        return 0;
    int rv = send_close(c, code, reason, reason_len > 123 ? 123 : reason_len);
    if (rv == WSK_EUTF8)
        rv = send_close(c, code, NULL, 0);
    if (rv < 0) {
        wsk__conn_abort(c, rv);
        return 0;
    }
    c->deadline = wsk_loop_now(c->ctx->loop) + c->ctx->lim.close_timeout_ms;
    if (c->flags & WSK__F_GOT_CLOSE)
        wsk__conn_finish(c);
    return 0;
}

size_t wsk_conn_send_queue(const struct wsk_conn *c)
{
    return c->out_bytes;
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
    if (c->io.fd < 0 || getpeername(c->io.fd, (struct sockaddr *)&ss, &len) != 0)
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

/* ---- receiving frames ---------------------------------------------------- */

/* Fails the connection (RFC 6455 7.1.7): send the close code, drop input. */
static void conn_fail(struct wsk_conn *c, int error, unsigned code, const char *reason)
{
    if (c->flags & WSK__F_FAILED)
        return;
    c->flags |= WSK__F_FAILED;
    c->error = error;
    c->close_code = (uint16_t)code;
    wsk__log(c->ctx, 2, "%s: closing with %u: %s", wsk_conn_peer(c), code, reason);
    if (!(c->flags & WSK__F_SENT_CLOSE))
        send_close(c, code, reason, strlen(reason));
    c->deadline = wsk_loop_now(c->ctx->loop) + c->ctx->lim.close_timeout_ms;
    wsk__conn_finish(c);
}

static void deliver(struct wsk_conn *c, uint8_t opcode, const uint8_t *data, size_t len)
{
    if (!c->ctx->h.on_message)
        return;
    /* An empty message reassembled from nothing has no buffer: never hand out NULL. */
    struct wsk_message m = {(enum wsk_opcode)opcode, data ? data : (const uint8_t *)"", len};
    /* Echoing the very message being delivered needs no second UTF-8 pass. */
    c->ctx->valid_text = opcode == WSK_OP_TEXT ? m.data : NULL;
    c->ctx->valid_text_len = len;
    WSK__CALL(c->ctx, on_message, c, &m, c->ctx->user_data);
    c->ctx->valid_text = NULL;
}

static int msg_reserve(struct wsk_conn *c, size_t len)
{
    if (c->msg_len + len > c->msg_cap) {
        size_t cap = c->msg_cap ? c->msg_cap : 4096;
        while (cap < c->msg_len + len)
            cap *= 2;
        uint8_t *m = realloc(c->msg, cap);
        if (!m)
            return -ENOMEM;
        c->msg = m;
        c->msg_cap = cap;
    }
    return 0;
}

static int msg_append(struct wsk_conn *c, const uint8_t *data, size_t len)
{
    /* Bytes read straight into the message buffer are already in place. */
    if (c->msg && data == c->msg + c->msg_len) {
        c->msg_len += len;
        return 0;
    }
    int rv = msg_reserve(c, len);
    if (rv < 0)
        return rv;
    memcpy(c->msg + c->msg_len, data, len);
    c->msg_len += len;
    return 0;
}

static void on_control(struct wsk_conn *c, uint8_t opcode, const uint8_t *data, size_t len,
                       uint16_t close_code)
{
    struct wsk__ctx *ctx = c->ctx;
    switch (opcode) {
    case WSK_OP_PING:
        if (!(c->flags & WSK__F_SENT_CLOSE)) {
            queue_frame(c, WSK_FRAME_FIN | WSK_OP_PONG, data, len);
            /* A pong counts against the send queue like data: a peer that
             * pings and never reads is paused like one that never reads its
             * echoes, so the pongs queued for it stay under the cap plus one
             * read's worth, and the keepalive then drops it. */
            if (c->out_bytes > ctx->lim.max_send_queue && !(c->flags & WSK__F_PAUSED)) {
                wsk__conn_flush_now(c);
                if (c->state != WSK__DEAD && c->out_bytes > ctx->lim.max_send_queue)
                    c->flags |= WSK__F_PAUSED;
            }
        }
        if (ctx->h.on_ping)
            WSK__CALL(ctx, on_ping, c, data, len, ctx->user_data);
        break;
    case WSK_OP_PONG:
        /* Only the answer to our keepalive ping proves the peer reads: an
         * unprompted pong (RFC 6455 5.5.3 allows them) must not keep alive a
         * peer that never reads. */
        if ((c->flags & WSK__F_PING_SENT) && len == sizeof c->ping_nonce &&
            !memcmp(data, &c->ping_nonce, sizeof c->ping_nonce)) {
            c->flags &= ~WSK__F_PING_SENT;
            if (!(c->flags & WSK__F_SENT_CLOSE))
                c->deadline = ctx->lim.ping_interval_ms == UINT32_MAX
                                  ? 0
                                  : wsk_loop_now(ctx->loop) + ctx->lim.ping_interval_ms;
        }
        if (ctx->h.on_pong)
            WSK__CALL(ctx, on_pong, c, data, len, ctx->user_data);
        break;
    case WSK_OP_CLOSE:
        c->flags |= WSK__F_GOT_CLOSE;
        c->close_code = close_code;
        if (!(c->flags & WSK__F_SENT_CLOSE)) {
            c->flags |= WSK__F_PEER_CLOSED_FIRST;
            /* Echo the code (RFC 6455 5.5.1); an empty close gets an empty one. */
            send_close(c, close_code == WSK_CLOSE_NO_STATUS ? 0 : close_code, NULL, 0);
        }
        /* Keep the reason for on_close in c->in, unused once open. */
        wsk__conn_in_drop(c, c->in_len);
        if (len > 2)
            wsk__conn_in_append(c, data + 2, len - 2);
        wsk__conn_finish(c);
        break;
    }
}

/* The inflate sink: append to the message, checking text as it grows. */
static int inflate_sink(void *arg, const uint8_t *data, size_t len)
{
    struct wsk_conn *c = arg;
    if (c->zopcode == WSK_OP_TEXT && wsk_utf8_feed(&c->zutf8, data, len) != 0)
        return WSK_EUTF8;
    return msg_append(c, data, len);
}

static void on_compressed_chunk(struct wsk_conn *c, const struct wsk_frame_chunk *ch)
{
    if (!c->deflate) {
        conn_fail(c, WSK_EPROTO, WSK_CLOSE_PROTOCOL, "RSV1 without permessage-deflate");
        return;
    }
    if (ch->is_message_start) {
        c->msg_len = 0;
        c->zopcode = ch->msg_opcode;
        wsk_utf8_init(&c->zutf8);
    }
    int rv = wsk_deflate_decompress(c->deflate, ch->data, ch->len, ch->is_message_end,
                                    c->ctx->lim.max_message, inflate_sink, c);
    if (rv == 0 && ch->is_message_end && c->zopcode == WSK_OP_TEXT &&
        !wsk_utf8_is_complete(&c->zutf8))
        rv = WSK_EUTF8;
    if (rv < 0) {
        if (rv == WSK_ETOOBIG)
            conn_fail(c, rv, WSK_CLOSE_TOO_BIG, "message too big");
        else if (rv == -ENOMEM)
            wsk__conn_abort(c, rv);
        else
            conn_fail(c, rv, WSK_CLOSE_INVALID_DATA,
                      rv == WSK_EUTF8 ? "invalid UTF-8" : "invalid compressed data");
        return;
    }
    if (ch->is_message_end) {
        deliver(c, c->zopcode, c->msg, c->msg_len);
        c->msg_len = 0;
        if (c->msg_cap > 64 * 1024) {
            free(c->msg);
            c->msg = NULL;
            c->msg_cap = 0;
        }
    }
}

static void on_chunk(struct wsk_conn *c, const struct wsk_frame_chunk *ch)
{
    if (ch->msg_opcode & 0x8) {
        if (ch->is_frame_start && ch->is_frame_end) {
            on_control(c, ch->msg_opcode, ch->data, ch->len, ch->close_code);
            return;
        }
        /* A control frame split across reads: collect its <= 125 bytes. */
        if (ch->is_frame_start)
            wsk__conn_in_drop(c, c->in_len);
        if (wsk__conn_in_append(c, ch->data, ch->len) < 0) {
            wsk__conn_abort(c, -ENOMEM);
            return;
        }
        if (ch->is_frame_end) {
            uint8_t buf[125];
            size_t n = c->in_len;
            memcpy(buf, c->in, n);
            wsk__conn_in_drop(c, n);
            on_control(c, ch->msg_opcode, buf, n, ch->close_code);
        }
        return;
    }
    if (c->flags & (WSK__F_GOT_CLOSE | WSK__F_FAILED))
        return;
    if (ch->is_compressed) {
        on_compressed_chunk(c, ch);
        return;
    }
    if (ch->is_message_start && ch->is_message_end) {
        deliver(c, ch->msg_opcode, ch->data, ch->len);
        return;
    }
    if (ch->len && msg_append(c, ch->data, ch->len) < 0) {
        wsk__conn_abort(c, -ENOMEM);
        return;
    }
    if (ch->is_frame_end)
        c->flags &= ~WSK__F_ASSEMBLING;
    else
        c->flags |= WSK__F_ASSEMBLING;
    if (ch->is_message_end) {
        deliver(c, ch->msg_opcode, c->msg, c->msg_len);
        c->msg_len = 0;
        /* Keep small buffers for the next fragmented message, give big ones back. */
        if (c->msg_cap > 64 * 1024) {
            free(c->msg);
            c->msg = NULL;
            c->msg_cap = 0;
        }
    }
}

static void feed_frames(struct wsk_conn *c, uint8_t *data, size_t len)
{
    size_t off = 0;
    while (off < len && c->state == WSK__OPEN && !(c->flags & (WSK__F_GOT_CLOSE | WSK__F_FAILED))) {
        struct wsk_frame_chunk ch;
        bool has;
        int64_t n = wsk_frame_parse(&c->parser, data + off, len - off, &ch, &has);
        if (n < 0) {
            uint16_t code = wsk_frame_parser_close_code(&c->parser);
            const char *why = code == WSK_CLOSE_TOO_BIG        ? "message too big"
                              : code == WSK_CLOSE_INVALID_DATA ? "invalid UTF-8"
                                                               : "protocol error";
            conn_fail(c, (int)n, code, why);
            return;
        }
        off += (size_t)n;
        if (has)
            on_chunk(c, &ch);
    }
}

void wsk__conn_open(struct wsk_conn *c, const struct wsk_open_event *ev, const uint8_t *rest,
                    size_t rest_len)
{
    struct wsk__ctx *ctx = c->ctx;
    struct wsk_frame_config fc;
    wsk_frame_config_init(&fc);
    fc.role = (c->flags & WSK__F_CLIENT) ? WSK_ROLE_CLIENT : WSK_ROLE_SERVER;
    fc.max_frame = ctx->lim.max_message;
    fc.max_message = ctx->lim.max_message;
    if (c->deflate) {
        fc.rsv_allowed = WSK_FRAME_RSV1;
        /* Compressed payloads may be smaller than what they inflate to; the
         * inflated size is what max_message limits, in on_compressed_chunk. */
    }
    uint8_t *copy = NULL;
    if (rest_len) {
        /* Frames that came with the head: they sit in c->in, which frames
         * may need, so move them aside first. Before the connection counts
         * as open: a failure here must not report an open that never was. */
        copy = malloc(rest_len);
        if (!copy) {
            wsk__conn_abort(c, -ENOMEM);
            return;
        }
        memcpy(copy, rest, rest_len);
    }
    wsk_frame_parser_init(&c->parser, &fc);
    c->state = WSK__OPEN;
    c->flags |= WSK__F_OPENED;
    ctx->num_open++;
    c->deadline = ctx->lim.ping_interval_ms == UINT32_MAX
                      ? 0
                      : wsk_loop_now(ctx->loop) + ctx->lim.ping_interval_ms;
    if (ctx->h.on_open)
        WSK__CALL(ctx, on_open, c, ev, ctx->user_data);
    /* The head (which ev pointed into) is done with. */
    if (c->state == WSK__OPEN)
        wsk__conn_in_drop(c, c->in_len);
    if (copy && c->state == WSK__OPEN)
        feed_frames(c, copy, rest_len);
    free(copy);
}

/* ---- readiness ------------------------------------------------------------ */

static void on_eof(struct wsk_conn *c)
{
    if (c->state == WSK__LINGER || (c->flags & WSK__F_GOT_CLOSE)) {
        conn_dead(c);
        return;
    }
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
        feed_frames(c, data, n);
        break;
    default:
        break; /* LINGER: input after our close is discarded */
    }
}

static void read_again(struct wsk_conn *c);

/* Where the next read goes: normally the loop's buffer; but when a large
 * uncompressed data frame is half in, the rest goes straight to its place in
 * the message buffer, saving a copy of most of a big message. */
static uint8_t *read_target(struct wsk_conn *c, size_t *cap)
{
    struct wsk__ctx *ctx = c->ctx;
    *cap = ctx->rbuf_cap;
    if (!(c->flags & WSK__F_ASSEMBLING) || c->state != WSK__OPEN)
        return ctx->rbuf;
    uint64_t left = wsk_frame_parser_payload_left(&c->parser);
    if (left < DIRECT_READ_MIN || msg_reserve(c, (size_t)left) < 0)
        return ctx->rbuf;
    *cap = (size_t)left;
    return c->msg + c->msg_len;
}

static void conn_read(struct wsk_conn *c)
{
    for (int i = 0; i < READS_PER_EVENT; i++) {
        size_t cap;
        uint8_t *buf = read_target(c, &cap);
        ssize_t n = conn_recv(c, buf, cap);
        if (n == -EAGAIN)
            return;
        if (n < 0) {
            conn_io_error(c, (int)n);
            return;
        }
        if (n == 0) {
            on_eof(c);
            return;
        }
        feed(c, buf, (size_t)n);
        if (c->state == WSK__DEAD || (c->flags & WSK__F_PAUSED))
            return;
        /* A short read means the socket is drained: save the EAGAIN call.
         * TLS hands out one record at a time, so ask it instead. */
        if (c->tls ? !wsk__tls_pending(c->tls) : (size_t)n < cap)
            return;
    }
    /* Fairness cap reached. Plain sockets stay readable for the next
     * iteration; bytes TLS already decrypted would not show, so come back. */
    if (c->tls && wsk__tls_pending(c->tls))
        read_again(c);
}

/* A server's first look at a TLS connection: plain HTTP sent to the TLS
 * port gets a readable 400, as nginx answers, instead of a reset. A TLS
 * client starts with a handshake record (22); an HTTP request with a
 * letter. Returns true when the connection was answered. */
static bool plain_http_on_tls(struct wsk_conn *c)
{
    uint8_t first;
    ssize_t n = recv(c->io.fd, &first, 1, MSG_PEEK);
    if (n <= 0)
        return false; /* nothing yet (or EOF, which the handshake reports) */
    c->flags |= WSK__F_TLS_SNIFFED;
    if (!((first >= 'A' && first <= 'Z') || (first >= 'a' && first <= 'z')))
        return false;
    static const char answer[] =
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 47\r\nConnection: close\r\n\r\n"
        "400 Bad Request: plain HTTP sent to a TLS port\n";
    wsk__log(c->ctx, 2, "%s: plain HTTP on the TLS port, answering 400", wsk_conn_peer(c));
    wsk__tls_free(c->tls);
    c->tls = NULL;
    c->flags &= ~(WSK__F_TLS_HS | WSK__F_TLS_RW | WSK__F_TLS_WR);
    c->flags |= WSK__F_HTTP_CLOSE;
    c->state = WSK__HTTP_REPLY;
    if (wsk__conn_queue(c, answer, sizeof answer - 1) < 0)
        wsk__conn_abort(c, -ENOMEM);
    else
        conn_flush(c);
    return true;
}

/* The TLS handshake, stepped by readiness. */
static void tls_handshake_step(struct wsk_conn *c)
{
    if (!(c->flags & (WSK__F_CLIENT | WSK__F_TLS_SNIFFED)) && plain_http_on_tls(c))
        return;
    int rv = wsk__tls_handshake(c->tls);
    c->flags &= ~(WSK__F_TLS_WR | WSK__F_TLS_RW);
    if (rv == WSK__TLS_WANT_READ) {
        set_events(c);
        return;
    }
    if (rv == WSK__TLS_WANT_WRITE) {
        c->flags |= WSK__F_TLS_RW; /* "wants writable" */
        set_events(c);
        return;
    }
    if (rv < 0) {
        tls_detail(c);
        wsk__log(c->ctx, 2, "%s: TLS handshake failed: %s", wsk_conn_peer(c),
                 wsk__tls_error(c->tls));
        wsk__conn_abort(c, rv);
        return;
    }
    c->flags &= ~WSK__F_TLS_HS;
    if (c->flags & WSK__F_CLIENT)
        wsk__client_on_tls_done(c);
    if (c->state == WSK__DEAD)
        return;
    /* The peer may have sent its request with the last handshake flight. */
    if (wsk__tls_pending(c->tls))
        read_again(c);
    if (c->out_bytes)
        conn_flush(c);
    else
        set_events(c);
}

static void conn_io_cb(struct wsk_loop *loop, struct wsk_io *io, unsigned events)
{
    (void)loop;
    struct wsk_conn *c = io->data;
    if (c->state == WSK__CONNECTING) {
        wsk__client_on_writable(c);
    } else if (c->flags & WSK__F_TLS_HS) {
        tls_handshake_step(c);
    } else {
        /* TLS may read when writable or write when readable. */
        if ((events & WSK_IO_WRITE) || ((events & WSK_IO_READ) && (c->flags & WSK__F_TLS_WR)))
            conn_flush(c);
        if ((c->flags & WSK__F_TLS_RW) && (events & WSK_IO_WRITE))
            events |= WSK_IO_READ;
        if ((events & WSK_IO_READ) && c->state != WSK__DEAD && !(c->flags & WSK__F_PAUSED)) {
            c->flags |= WSK__F_IN_READ;
            conn_read(c);
            c->flags &= ~WSK__F_IN_READ;
            if (c->state != WSK__DEAD && c->out_bytes)
                conn_flush(c);
            else
                set_events(c);
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
            send_close(c, WSK_CLOSE_INTERNAL, "keepalive ping timeout", 22);
            c->deadline = now + ctx->lim.close_timeout_ms;
            wsk__conn_finish(c);
        } else {
            c->flags |= WSK__F_PING_SENT;
            c->ping_nonce = arc4random();
            queue_frame(c, WSK_FRAME_FIN | WSK_OP_PING, (const uint8_t *)&c->ping_nonce,
                        sizeof c->ping_nonce);
            c->deadline = now + ctx->lim.pong_timeout_ms;
        }
        break;
    case WSK__LINGER:
        /* The close handshake is complete or failed already: just close. */
        conn_dead(c);
        break;
    case WSK__HTTP_REPLY:
        wsk__log(ctx, 2, "%s: response stalled: nothing sent for %u ms, closing", wsk_conn_peer(c),
                 ctx->lim.send_timeout_ms);
        wsk__conn_abort(c, -ETIMEDOUT);
        break;
    default:
        wsk__log(ctx, 3, "%s: handshake timeout", wsk_conn_peer(c));
        wsk__conn_abort(c, -ETIMEDOUT);
        break;
    }
}
