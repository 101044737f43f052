/* A plain stream on the io_uring backend: completion I/O behind the same
 * readiness-shaped interface as the rest of stream.h.
 *
 * Receiving: one multishot RECV per connection picks a provided buffer from
 * the loop's ring for each arrival. Its completion calls the owner's
 * callback with WSK_IO_READ while the buffer is "current", so the owner's
 * wsk__stream_recv() copies straight out of it; whatever the owner leaves
 * (a paused reader, a read budget) moves to a per-stream stash and the
 * buffer goes back to the ring at once. A provided buffer is therefore
 * never held across iterations, and one connection that stops reading
 * cannot starve the others of buffers. When the owner stops wanting to
 * read, the receive is cancelled, so the kernel's socket buffer, not the
 * stash, holds what the peer sends next and TCP pushes back on it.
 *
 * Sending: wsk__stream_flush() turns the head of the queue into one SEND (or
 * SENDMSG over several segments) submitted with the next wait, and reports
 * bytes as their completions arrive; a completion calls the owner with
 * WSK_IO_WRITE when it watches for that, exactly where epoll would have
 * reported the socket writable. One send per stream is in flight at a time,
 * which keeps the order, and the segments it points into stay in the queue
 * (nothing before out_bytes reaches zero frees them). Appending to the tail
 * segment while it is in flight is safe: the kernel reads only the bytes
 * the submission named.
 *
 * Closing while an op is in flight: the ops are cancelled, the queue the
 * send points into moves to the ustream, and the ustream is freed by the
 * last completion. The socket itself is closed by the caller at once; the
 * kernel keeps the file open for the ops until they end.
 */
#include "transport/stream.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "loop/uring.h"

#ifdef WSK_HAVE_URING

#include <liburing.h>

#define SEND_IOV  8
#define STASH_MAX (256u * 1024) /* stop receiving above this much unread */

struct wsk__ustream {
    struct wsk__uop recv_op, send_op, notify_op, flush_op;
    struct wsk__uring *ring;
    struct wsk__stream *s;      /* NULL once the stream is closed */
    struct wsk__seg_pool *pool; /* the owner's, from its last flush */
    struct wsk__oseg *orphans;  /* a dropped queue the send in flight points into */
    const uint8_t *cur;         /* the provided buffer being delivered */
    size_t cur_len;
    uint8_t *stash; /* received, not yet read: stash[stash_off, +stash_len) */
    size_t stash_off, stash_len, stash_cap;
    size_t sent; /* bytes the completed sends wrote, not yet reported */
    int rerr, serr;
    unsigned events; /* what the owner watches */
    bool counted, recv_armed, send_busy, notify_busy, flush_later, in_cb, eof;
    struct sendmsg_args *msg; /* a send over several segments; freed when quiet */
};

/* SENDMSG's arguments, which must live until its completion. Apart, since a
 * send of one segment (the common case) needs none and an idle connection
 * should not carry 184 bytes for it. */
struct sendmsg_args {
    struct msghdr msg;
    struct iovec iov[SEND_IOV];
};

#define CONTAINER(ptr, field)                                                                      \
    ((struct wsk__ustream *)(void *)((char *)(ptr)-offsetof(struct wsk__ustream, field)))

static void free_orphans(struct wsk__ustream *u)
{
    while (u->orphans) {
        struct wsk__oseg *seg = u->orphans;
        u->orphans = seg->next;
        wsk__seg_free(NULL, seg);
    }
}

static void maybe_free(struct wsk__ustream *u)
{
    if (u->s || u->recv_armed || u->send_busy || u->notify_busy || u->flush_later || u->in_cb)
        return;
    free_orphans(u);
    free(u->stash);
    free(u->msg);
    free(u);
}

static void arm_recv(struct wsk__ustream *u)
{
    struct io_uring_sqe *sqe = wsk__uring_sqe(u->ring, &u->recv_op);
    if (!sqe) {
        u->rerr = -EBUSY;
        return;
    }
    io_uring_prep_recv_multishot(sqe, u->s->io.fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = WSK__URING_BGID;
    u->recv_armed = true;
}

static void cancel(struct wsk__ustream *u, struct wsk__uop *op)
{
    struct io_uring_sqe *sqe = wsk__uring_sqe(u->ring, NULL);
    if (sqe)
        io_uring_prep_cancel(sqe, op, 0);
}

/* Receives again when the owner wants to read and nothing stops it. */
static void want_recv(struct wsk__ustream *u)
{
    if (!u->s)
        return;
    bool want = (u->events & WSK_IO_READ) && !u->eof && !u->rerr && u->stash_len < STASH_MAX;
    if (want && !u->recv_armed)
        arm_recv(u);
    else if (!want && u->recv_armed)
        cancel(u, &u->recv_op);
}

static int stash_add(struct wsk__ustream *u, const uint8_t *p, size_t n)
{
    if (u->stash_off + u->stash_len + n > u->stash_cap) {
        if (u->stash_off) {
            memmove(u->stash, u->stash + u->stash_off, u->stash_len);
            u->stash_off = 0;
        }
        if (u->stash_len + n > u->stash_cap) {
            size_t cap = u->stash_cap ? u->stash_cap : 4096;
            while (cap < u->stash_len + n)
                cap *= 2;
            uint8_t *b = realloc(u->stash, cap);
            if (!b)
                return -ENOMEM;
            u->stash = b;
            u->stash_cap = cap;
        }
    }
    memcpy(u->stash + u->stash_off + u->stash_len, p, n);
    u->stash_len += n;
    return 0;
}

static void deliver(struct wsk__ustream *u, struct wsk_loop *loop, unsigned ev)
{
    if (!u->s || !loop || !(u->events & ev))
        return;
    u->in_cb = true;
    u->s->io.cb(loop, &u->s->io, ev);
    u->in_cb = false;
}

static void on_recv(struct wsk_loop *loop, struct wsk__uop *op, int res, unsigned flags)
{
    struct wsk__ustream *u = CONTAINER(op, recv_op);
    if (!(flags & IORING_CQE_F_MORE))
        u->recv_armed = false;
    if (res > 0 && (flags & IORING_CQE_F_BUFFER)) {
        unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
        const uint8_t *data = wsk__uring_buf(u->ring, bid);
        if (u->s && loop) {
            if (u->stash_len) {
                if (stash_add(u, data, (size_t)res) < 0)
                    u->rerr = -ENOMEM;
            } else {
                u->cur = data;
                u->cur_len = (size_t)res;
            }
            deliver(u, loop, WSK_IO_READ);
            if (u->cur_len && u->s && stash_add(u, u->cur, u->cur_len) < 0)
                u->rerr = -ENOMEM;
            u->cur = NULL;
            u->cur_len = 0;
        }
        wsk__uring_buf_put(u->ring, bid);
    } else if (res == 0) {
        u->eof = true;
        deliver(u, loop, WSK_IO_READ);
    } else if (res < 0 && res != -ENOBUFS && res != -ECANCELED) {
        u->rerr = res;
        deliver(u, loop, WSK_IO_READ);
    }
    if (loop)
        want_recv(u);
    maybe_free(u);
}

static void submit_send(struct wsk__ustream *u)
{
    struct wsk__stream *s = u->s;
    struct wsk__oseg *seg = s->out_head;
    int fd = s->io.fd;
    struct io_uring_sqe *sqe;
    if (!seg->next || (!u->msg && !(u->msg = malloc(sizeof *u->msg)))) {
        /* One segment (or no memory for more): a plain SEND of it. */
        const uint8_t *base = seg->shared ? seg->shared->data : seg->data;
        if (!(sqe = wsk__uring_sqe(u->ring, &u->send_op)))
            goto busy;
        io_uring_prep_send(sqe, fd, base + seg->off, seg->len - seg->off, MSG_NOSIGNAL);
    } else {
        struct sendmsg_args *m = u->msg;
        size_t n = 0;
        for (; seg && n < SEND_IOV; seg = seg->next) {
            const uint8_t *base = seg->shared ? seg->shared->data : seg->data;
            m->iov[n].iov_base = (void *)(uintptr_t)(base + seg->off);
            m->iov[n].iov_len = seg->len - seg->off;
            n++;
        }
        memset(&m->msg, 0, sizeof m->msg);
        m->msg.msg_iov = m->iov;
        m->msg.msg_iovlen = n;
        if (!(sqe = wsk__uring_sqe(u->ring, &u->send_op)))
            goto busy;
        io_uring_prep_sendmsg(sqe, fd, &m->msg, MSG_NOSIGNAL);
    }
    u->send_busy = true;
    return;
busy:
    u->serr = -EBUSY;
}

/* The send goes just before the wait, so that it carries every reply the
 * iteration queued (a burst of requests read in several completions gets
 * one send, not one per completion). */
static void send_later(struct wsk__ustream *u)
{
    if (u->s && u->s->out_bytes && !u->send_busy && !u->serr && !u->flush_later) {
        u->flush_later = true;
        wsk__uring_later(u->ring, &u->flush_op);
    }
}

static void on_flush(struct wsk_loop *loop, struct wsk__uop *op, int res, unsigned flags)
{
    (void)loop;
    (void)res;
    (void)flags;
    struct wsk__ustream *u = CONTAINER(op, flush_op);
    u->flush_later = false;
    if (u->s && u->s->out_bytes && !u->send_busy && !u->serr)
        submit_send(u);
    maybe_free(u);
}

static void on_send(struct wsk_loop *loop, struct wsk__uop *op, int res, unsigned flags)
{
    (void)flags;
    struct wsk__ustream *u = CONTAINER(op, send_op);
    u->send_busy = false;
    if (u->orphans) {
        free_orphans(u); /* the queue was dropped while this send was out */
    } else if (u->s && res > 0) {
        u->sent += (size_t)res;
        wsk__stream_consumed(u->s, u->pool, (size_t)res);
    }
    if (u->s && loop) {
        if (res < 0 && res != -EAGAIN && res != -EINTR && !u->serr)
            u->serr = res;
        send_later(u);
        deliver(u, loop, WSK_IO_WRITE);
    }
    maybe_free(u);
}

static void on_notify(struct wsk_loop *loop, struct wsk__uop *op, int res, unsigned flags)
{
    (void)res;
    (void)flags;
    struct wsk__ustream *u = CONTAINER(op, notify_op);
    u->notify_busy = false;
    if (u->s && (u->stash_len || u->eof || u->rerr))
        deliver(u, loop, WSK_IO_READ);
    maybe_free(u);
}

int wsk__ustream_attach(struct wsk_loop *loop, struct wsk__stream *s)
{
    struct wsk__ustream *u = calloc(1, sizeof *u);
    if (!u)
        return -ENOMEM;
    u->recv_op.done = on_recv;
    u->send_op.done = on_send;
    u->notify_op.done = on_notify;
    u->flush_op.done = on_flush;
    u->ring = wsk__loop_uring(loop);
    u->s = s;
    s->u_ = u;
    s->flags |= WSK__STREAM_URING;
    return 0;
}

void wsk__ustream_watch(struct wsk_loop *loop, struct wsk__stream *s, unsigned ev)
{
    struct wsk__ustream *u = s->u_;
    bool was_reading = u->events & WSK_IO_READ;
    u->events = ev;
    if (ev && !u->counted)
        wsk__loop_ref(loop, 1);
    else if (!ev && u->counted)
        wsk__loop_ref(loop, -1);
    u->counted = ev != 0;
    want_recv(u);
    /* Bytes already stashed show as no completion: a reader that resumes
     * outside its own callback is called back for them. */
    if ((ev & WSK_IO_READ) && !was_reading && !u->in_cb && !u->notify_busy &&
        (u->stash_len || u->eof || u->rerr)) {
        struct io_uring_sqe *sqe = wsk__uring_sqe(u->ring, &u->notify_op);
        if (sqe) {
            io_uring_prep_nop(sqe);
            u->notify_busy = true;
        }
    }
}

ssize_t wsk__ustream_recv(struct wsk__stream *s, uint8_t *buf, size_t len)
{
    struct wsk__ustream *u = s->u_;
    if (u->stash_len) {
        size_t n = u->stash_len < len ? u->stash_len : len;
        memcpy(buf, u->stash + u->stash_off, n);
        u->stash_off += n;
        u->stash_len -= n;
        if (!u->stash_len) {
            u->stash_off = 0;
            if (!u->in_cb)
                want_recv(u); /* it may have stopped at STASH_MAX */
        }
        return (ssize_t)n;
    }
    if (u->cur_len) {
        size_t n = u->cur_len < len ? u->cur_len : len;
        memcpy(buf, u->cur, n);
        u->cur += n;
        u->cur_len -= n;
        return (ssize_t)n;
    }
    if (u->rerr)
        return u->rerr;
    return u->eof ? 0 : -EAGAIN;
}

bool wsk__ustream_pending(const struct wsk__stream *s)
{
    return s->u_->stash_len || s->u_->cur_len;
}

/* The completed bytes not yet reported (or the send error); the caller
 * then writes the rest itself when no send is in flight. */
ssize_t wsk__ustream_flush_sync(struct wsk__stream *s, struct wsk__seg_pool *pool)
{
    struct wsk__ustream *u = s->u_;
    u->pool = pool;
    if (u->serr)
        return u->serr;
    ssize_t done = (ssize_t)u->sent;
    u->sent = 0;
    return done;
}

ssize_t wsk__ustream_flush(struct wsk__stream *s, struct wsk__seg_pool *pool)
{
    ssize_t done = wsk__ustream_flush_sync(s, pool);
    if (done >= 0)
        send_later(s->u_);
    return done;
}

bool wsk__ustream_busy(const struct wsk__stream *s)
{
    return s->u_->send_busy;
}

void wsk__ustream_kick(struct wsk__stream *s)
{
    send_later(s->u_);
}

int wsk__ustream_set_error(struct wsk__stream *s, int err)
{
    s->u_->serr = err;
    return err;
}

bool wsk__ustream_drop_queue(struct wsk__stream *s)
{
    struct wsk__ustream *u = s->u_;
    if (!u->send_busy)
        return false;
    /* The send in flight points into the queue: keep it until it ends. */
    if (s->out_tail) {
        s->out_tail->next = u->orphans;
        u->orphans = s->out_head;
    }
    s->out_head = s->out_tail = NULL;
    s->out_bytes = 0;
    return true;
}

void wsk__ustream_trim(struct wsk__stream *s)
{
    struct wsk__ustream *u = s->u_;
    if (!u->send_busy && u->msg) {
        free(u->msg);
        u->msg = NULL;
    }
    if (!u->stash_len && u->stash) {
        free(u->stash);
        u->stash = NULL;
        u->stash_cap = u->stash_off = 0;
    }
}

void wsk__ustream_detach(struct wsk_loop *loop, struct wsk__stream *s)
{
    struct wsk__ustream *u = s->u_;
    if (u->counted)
        wsk__loop_ref(loop, -1);
    u->counted = false;
    u->events = 0;
    if (u->recv_armed)
        cancel(u, &u->recv_op);
    if (u->send_busy)
        cancel(u, &u->send_op);
    wsk__ustream_drop_queue(s);
    u->s = NULL;
    s->u_ = NULL;
    s->flags &= (uint8_t)~WSK__STREAM_URING;
    maybe_free(u);
}

#else /* !WSK_HAVE_URING: no loop is ever io_uring, so no stream attaches */

int wsk__ustream_attach(struct wsk_loop *loop, struct wsk__stream *s)
{
    (void)loop;
    (void)s;
    return -ENOSYS;
}

void wsk__ustream_watch(struct wsk_loop *loop, struct wsk__stream *s, unsigned ev)
{
    (void)loop;
    (void)s;
    (void)ev;
}

ssize_t wsk__ustream_recv(struct wsk__stream *s, uint8_t *buf, size_t len)
{
    (void)s;
    (void)buf;
    (void)len;
    return -ENOSYS;
}

bool wsk__ustream_pending(const struct wsk__stream *s)
{
    (void)s;
    return false;
}

ssize_t wsk__ustream_flush(struct wsk__stream *s, struct wsk__seg_pool *pool)
{
    (void)s;
    (void)pool;
    return -ENOSYS;
}

ssize_t wsk__ustream_flush_sync(struct wsk__stream *s, struct wsk__seg_pool *pool)
{
    (void)s;
    (void)pool;
    return -ENOSYS;
}

bool wsk__ustream_busy(const struct wsk__stream *s)
{
    (void)s;
    return false;
}

void wsk__ustream_kick(struct wsk__stream *s)
{
    (void)s;
}

int wsk__ustream_set_error(struct wsk__stream *s, int err)
{
    (void)s;
    return err;
}

bool wsk__ustream_drop_queue(struct wsk__stream *s)
{
    (void)s;
    return false;
}

void wsk__ustream_trim(struct wsk__stream *s)
{
    (void)s;
}

void wsk__ustream_detach(struct wsk_loop *loop, struct wsk__stream *s)
{
    (void)loop;
    (void)s;
}

#endif
