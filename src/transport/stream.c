/* A byte stream on the loop: plain TCP or TLS, its watcher, reading, the
 * send queue and flushing. See stream.h. */
#include "transport/stream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loop/uring.h"
#include "transport/tls.h"

#define SEG_SIZE        (16u * 1024)
#define POOL_MAX        64
#define SMALL_SEG_ALLOC 256u
#define SMALL_SEG_CAP   (SMALL_SEG_ALLOC - sizeof(struct wsk__oseg))
#define SPOOL_MAX       4096
#define IOV_MAX_BATCH   64

/* ---- shared bytes and segments ------------------------------------------ */

struct wsk__shared *wsk__shared_new(size_t len)
{
    struct wsk__shared *sh = malloc(sizeof *sh + len);
    if (!sh)
        return NULL;
    sh->len = len;
    sh->refs = 1;
    return sh;
}

void wsk__shared_release(struct wsk__shared *sh)
{
    if (sh && --sh->refs == 0)
        free(sh);
}

void wsk__seg_free(struct wsk__seg_pool *p, struct wsk__oseg *s)
{
    if (s->shared) {
        wsk__shared_release(s->shared);
        free(s);
    } else if (!p) {
        free(s);
    } else if (s->cap == SEG_SIZE && p->big_len < POOL_MAX) {
        s->next = p->big;
        p->big = s;
        p->big_len++;
    } else if (s->cap == SMALL_SEG_CAP && p->small_len < SPOOL_MAX) {
        s->next = p->small;
        p->small = s;
        p->small_len++;
    } else {
        free(s);
    }
}

void wsk__seg_pool_free(struct wsk__seg_pool *p)
{
    struct wsk__oseg *lists[2] = {p->big, p->small};
    for (int i = 0; i < 2; i++) {
        while (lists[i]) {
            struct wsk__oseg *s = lists[i];
            lists[i] = s->next;
            free(s);
        }
    }
    memset(p, 0, sizeof *p);
}

static struct wsk__oseg *seg_new(struct wsk__seg_pool *p, size_t need, bool small)
{
    struct wsk__oseg *s;
    if (small && need <= SMALL_SEG_CAP) {
        if (p->small) {
            s = p->small;
            p->small = s->next;
            p->small_len--;
        } else {
            s = malloc(SMALL_SEG_ALLOC);
            if (!s)
                return NULL;
            s->cap = SMALL_SEG_CAP;
        }
    } else if (need <= SEG_SIZE && p->big) {
        s = p->big;
        p->big = s->next;
        p->big_len--;
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

static void seg_append(struct wsk__stream *s, struct wsk__oseg *seg)
{
    if (s->out_tail)
        s->out_tail->next = seg;
    else
        s->out_head = seg;
    s->out_tail = seg;
}

/* ---- the stream ---------------------------------------------------------- */

void wsk__stream_init(struct wsk__stream *s, int fd, wsk_io_cb cb, void *data)
{
    memset(s, 0, sizeof *s);
    wsk_io_init(&s->io, fd, cb, data);
}

int wsk__stream_watch(struct wsk_loop *loop, struct wsk__stream *s, bool want_read, bool connecting)
{
    if (s->io.fd < 0)
        return 0;
    unsigned ev = 0;
    if (want_read || (s->flags & (WSK__STREAM_TLS_WR | WSK__STREAM_TLS_HS)))
        ev |= WSK_IO_READ;
    if (s->out_bytes || (s->flags & WSK__STREAM_TLS_RW))
        ev |= WSK_IO_WRITE;
    if ((s->flags & WSK__STREAM_TLS_HS) && !(s->flags & WSK__STREAM_TLS_RW))
        ev = WSK_IO_READ; /* the handshake first: queued bytes wait for it */
    if (connecting)
        ev = WSK_IO_WRITE;
    if (wsk__stream_u(s)) {
        wsk__ustream_watch(loop, s, ev);
        return 0;
    }
    /* A plain connected stream on an io_uring loop moves to completion
     * I/O: off the epoll set, onto the ring. */
    if (!wsk__stream_tls(s) && !connecting && !(s->flags & WSK__STREAM_NO_URING) &&
        wsk__loop_uring(loop)) {
        wsk_io_stop(loop, &s->io);
        int rv = wsk__ustream_attach(loop, s);
        if (rv < 0)
            return rv;
        wsk__ustream_watch(loop, s, ev);
        return 0;
    }
    if (ev == s->io.events)
        return 0;
    if (!ev) {
        wsk_io_stop(loop, &s->io);
        return 0;
    }
    return wsk_io_start(loop, &s->io, ev);
}

void wsk__stream_stop(struct wsk_loop *loop, struct wsk__stream *s)
{
    if (wsk__stream_u(s))
        wsk__ustream_watch(loop, s, 0);
    else
        wsk_io_stop(loop, &s->io);
}

ssize_t wsk__stream_recv(struct wsk__stream *s, uint8_t *buf, size_t len)
{
    if (wsk__stream_u(s))
        return wsk__ustream_recv(s, buf, len);
    if (wsk__stream_tls(s)) {
        ssize_t n = wsk__tls_read(wsk__stream_tls(s), buf, len);
        if (n == WSK__TLS_WANT_WRITE) {
            s->flags |= WSK__STREAM_TLS_RW;
            return -EAGAIN;
        }
        s->flags &= (uint8_t)~WSK__STREAM_TLS_RW;
        return n == WSK__TLS_WANT_READ ? -EAGAIN : n;
    }
    for (;;) {
        /* recv(), not read(): the socket call skips the VFS layer's checks
         * and notification hooks that read() makes on every call. */
        ssize_t n = recv(s->io.fd, buf, len, 0);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return -errno;
    }
}

ssize_t wsk__stream_send(struct wsk__stream *s, struct iovec *iov, int n)
{
    if (wsk__stream_tls(s)) {
        ssize_t w = wsk__tls_writev(wsk__stream_tls(s), iov, n);
        if (w == WSK__TLS_WANT_READ) {
            s->flags |= WSK__STREAM_TLS_WR;
            return -EAGAIN;
        }
        s->flags &= (uint8_t)~WSK__STREAM_TLS_WR;
        return w == WSK__TLS_WANT_WRITE ? -EAGAIN : w;
    }
    /* send() and sendmsg() rather than writev() so a vanished peer is
     * -EPIPE, not SIGPIPE; send() for one buffer, the common case, spares
     * the kernel the message header and iovec import. */
    struct msghdr mh = {0};
    mh.msg_iov = iov;
    mh.msg_iovlen = (size_t)n;
    for (;;) {
        ssize_t w = n == 1 ? send(s->io.fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL)
                           : sendmsg(s->io.fd, &mh, MSG_NOSIGNAL);
        if (w >= 0)
            return w;
        if (errno != EINTR)
            return -errno;
    }
}

uint8_t *wsk__stream_reserve(struct wsk__stream *s, struct wsk__seg_pool *pool, size_t n,
                             bool small)
{
    uint8_t *p = wsk__stream_tail_room(s, n);
    if (p)
        return p;
    struct wsk__oseg *t = seg_new(pool, n, small);
    if (!t)
        return NULL;
    seg_append(s, t);
    t->len = n;
    s->out_bytes += n;
    return t->data;
}

int wsk__stream_queue_shared(struct wsk__stream *s, struct wsk__shared *sh)
{
    struct wsk__oseg *seg = malloc(sizeof *seg);
    if (!seg)
        return -ENOMEM;
    seg->next = NULL;
    seg->shared = sh;
    seg->off = 0;
    seg->len = sh->len;
    seg->cap = 0;
    sh->refs++;
    seg_append(s, seg);
    s->out_bytes += sh->len;
    return 0;
}

void wsk__stream_consumed(struct wsk__stream *s, struct wsk__seg_pool *pool, size_t n)
{
    s->out_bytes -= n;
    while (n) {
        struct wsk__oseg *seg = s->out_head;
        size_t avail = seg->len - seg->off;
        if (n < avail) {
            seg->off += n;
            break;
        }
        n -= avail;
        s->out_head = seg->next;
        if (!s->out_head)
            s->out_tail = NULL;
        wsk__seg_free(pool, seg);
    }
}

ssize_t wsk__stream_flush(struct wsk__stream *s, struct wsk__seg_pool *pool)
{
    if (wsk__stream_u(s))
        return wsk__ustream_flush(s, pool);
    return wsk__stream_flush_sync(s, pool);
}

ssize_t wsk__stream_flush_sync(struct wsk__stream *s, struct wsk__seg_pool *pool)
{
    size_t total = 0;
    if (wsk__stream_u(s)) {
        ssize_t done = wsk__ustream_flush_sync(s, pool);
        if (done < 0 || wsk__ustream_busy(s))
            return done;
        total = (size_t)done;
    }
    while (s->out_bytes) {
        struct iovec iov[IOV_MAX_BATCH];
        int n = 0;
        for (struct wsk__oseg *seg = s->out_head; seg && n < IOV_MAX_BATCH; seg = seg->next) {
            const uint8_t *base = seg->shared ? seg->shared->data : seg->data;
            iov[n].iov_base = (void *)(uintptr_t)(base + seg->off);
            iov[n].iov_len = seg->len - seg->off;
            n++;
        }
        ssize_t w = wsk__stream_send(s, iov, n);
        if (w == -EAGAIN || w == 0)
            break;
        if (w < 0)
            return wsk__stream_u(s) ? wsk__ustream_set_error(s, (int)w) : w;
        total += (size_t)w;
        wsk__stream_consumed(s, pool, (size_t)w);
    }
    if (wsk__stream_u(s))
        wsk__ustream_kick(s); /* the rest goes when the socket takes it */
    return (ssize_t)total;
}

void wsk__stream_drop_queue(struct wsk__stream *s, struct wsk__seg_pool *pool)
{
    if (wsk__stream_u(s) && wsk__ustream_drop_queue(s))
        return;
    struct wsk__oseg *seg = s->out_head;
    while (seg) {
        struct wsk__oseg *next = seg->next;
        wsk__seg_free(pool, seg);
        seg = next;
    }
    s->out_head = s->out_tail = NULL;
    s->out_bytes = 0;
}

/* ---- TLS ------------------------------------------------------------------ */

int wsk__stream_start_tls(struct wsk__stream *s, struct wsk__tls_ctx *ctx, bool is_server,
                          const char *server_name)
{
    if (wsk__stream_u(s))
        return WSK_ESTATE; /* completion I/O started: see WSK__STREAM_NO_URING */
    int rv = wsk__tls_new(&s->tls_, ctx, s->io.fd, is_server, server_name);
    if (rv < 0)
        return rv;
    s->flags |= WSK__STREAM_TLS_HS;
    if (is_server)
        s->flags |= WSK__STREAM_SERVER;
    return 0;
}

/* A server's first look at a TLS connection. A TLS client starts with a
 * handshake record (22), an HTTP request with a letter. Until the first
 * byte is there OpenSSL must not read either: it would swallow a plain
 * request that deserves a readable answer. */
static int sniff(struct wsk__stream *s)
{
    uint8_t first;
    ssize_t n = recv(s->io.fd, &first, 1, MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return WSK__STREAM_HS_AGAIN;
    s->flags |= WSK__STREAM_SNIFFED;
    if (n <= 0 || !((first >= 'A' && first <= 'Z') || (first >= 'a' && first <= 'z')))
        return WSK__STREAM_HS_DONE; /* TLS, or an EOF or error the handshake reports */
    wsk__tls_free(wsk__stream_tls(s));
    s->tls_ = NULL;
    s->flags &= (uint8_t) ~(WSK__STREAM_TLS_HS | WSK__STREAM_TLS_RW | WSK__STREAM_TLS_WR);
    return WSK__STREAM_HS_PLAIN;
}

int wsk__stream_handshake(struct wsk__stream *s)
{
    if ((s->flags & (WSK__STREAM_SERVER | WSK__STREAM_SNIFFED)) == WSK__STREAM_SERVER) {
        int rv = sniff(s);
        if (rv != WSK__STREAM_HS_DONE)
            return rv;
    }
    int rv = wsk__tls_handshake(wsk__stream_tls(s));
    s->flags &= (uint8_t) ~(WSK__STREAM_TLS_WR | WSK__STREAM_TLS_RW);
    if (rv == WSK__TLS_WANT_READ)
        return WSK__STREAM_HS_AGAIN;
    if (rv == WSK__TLS_WANT_WRITE) {
        s->flags |= WSK__STREAM_TLS_RW; /* "wants writable" */
        return WSK__STREAM_HS_AGAIN;
    }
    if (rv < 0)
        return rv;
    s->flags &= (uint8_t)~WSK__STREAM_TLS_HS;
    return WSK__STREAM_HS_DONE;
}

bool wsk__stream_pending(const struct wsk__stream *s)
{
    if (wsk__stream_u(s))
        return wsk__ustream_pending(s);
    return wsk__stream_tls(s) && wsk__tls_pending(wsk__stream_tls(s));
}

void wsk__stream_trim(struct wsk__stream *s)
{
    if (wsk__stream_u(s))
        wsk__ustream_trim(s);
    if (wsk__stream_tls(s))
        wsk__tls_trim(wsk__stream_tls(s));
}

const char *wsk__stream_error(const struct wsk__stream *s)
{
    return wsk__stream_tls(s) ? wsk__tls_error(wsk__stream_tls(s)) : "";
}

void wsk__stream_shutdown_tls(struct wsk__stream *s)
{
    if (wsk__stream_tls(s))
        wsk__tls_shutdown(wsk__stream_tls(s));
}

void wsk__stream_close(struct wsk_loop *loop, struct wsk__stream *s, struct wsk__seg_pool *pool)
{
    if (s->io.fd >= 0)
        wsk_io_stop(loop, &s->io);
    wsk__stream_drop_queue(s, pool);
    if (wsk__stream_u(s))
        wsk__ustream_detach(loop, s);
    wsk__tls_free(wsk__stream_tls(s));
    s->tls_ = NULL;
    if (s->io.fd >= 0) {
        close(s->io.fd);
        s->io.fd = -1;
    }
}
