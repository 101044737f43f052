/* TLS for non-blocking sockets: the socket BIO under every SSL of tls.c.
 *
 * Why a BIO of our own rather than BIO_new_socket(): the socket BIO writes
 * with write(2), which raises SIGPIPE when the peer has gone, and a library
 * must not make every program ignore that signal. Ours sends with
 * MSG_NOSIGNAL, keeps the errno of the failing call where fail() can find it
 * (OpenSSL may call libc in between), and answers BIO_CTRL_EOF, which is how
 * OpenSSL 3 tells a truncated stream (SSL_R_UNEXPECTED_EOF_WHILE_READING)
 * from other errors.
 *
 * Large writes are combined: OpenSSL writes one record (16 KiB of
 * plaintext) per BIO call, which made a 64 KiB message five send() calls.
 * A write of more than one record instead has the BIO append the records to
 * a buffer (wbuf) that goes out in one send() per 64 KiB (uSockets does the
 * same through a memory BIO). What the socket does not take stays in wbuf,
 * and the plaintext it carries is not reported as written until it has
 * gone, so the stream above keeps those bytes queued, keeps watching for
 * writability and presents them again, like OpenSSL's own partial writes.
 * wbuf exists only during such a write or while its tail waits, so idle
 * connections keep nothing.
 */
#include "transport/tls_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/bio.h>

static BIO_METHOD *sock_bio_method;
static pthread_once_t sock_bio_once = PTHREAD_ONCE_INIT;

/* ---- the thread's buffers --------------------------------------------------- */

/* One read window and one cork buffer per thread: connections of one loop
 * take turns with them, so a busy connection allocates nothing per read or
 * write and an idle one holds nothing. */
#define WINDOW_CAP (256u * 1024)

struct thread_bufs {
    unsigned char *in; /* WINDOW_CAP: ciphertext read from owner's socket */
    size_t in_off;     /* in[in_off..in_len) not yet handed to OpenSSL */
    size_t in_len;
    struct wsk__tls *owner; /* whose bytes in[] holds, or NULL */
    unsigned char *cork;    /* WSK__TLS_CORK_CAP: records gathered for one send */
    size_t cork_len;
};

static _Thread_local struct thread_bufs tb;
static pthread_key_t tb_key;
static bool has_tb_key;

static void tb_free(void *unused)
{
    (void)unused;
    free(tb.in);
    free(tb.cork);
    memset(&tb, 0, sizeof tb);
}

/* The thread's buffers, allocated on first use and freed when the thread
 * exits. Returns false when out of memory. */
static bool tb_ready(void)
{
    if (tb.in && tb.cork)
        return true;
    if (!tb.in)
        tb.in = malloc(WINDOW_CAP);
    if (!tb.cork)
        tb.cork = malloc(WSK__TLS_CORK_CAP);
    if (has_tb_key)
        (void)pthread_setspecific(tb_key, &tb); /* non-NULL: the destructor runs */
    return tb.in && tb.cork;
}

/* Moves what the window holds for its owner into the owner's own memory,
 * before another connection reads into the window. */
static void tb_evict(void)
{
    struct wsk__tls *o = tb.owner;
    size_t n = tb.in_len - tb.in_off;

    tb.owner = NULL;
    if (!o || n == 0)
        return;
    size_t kept = o->rest_len - o->rest_off;
    if (o->rest_off) {
        memmove(o->rest, o->rest + o->rest_off, kept);
        o->rest_off = 0;
        o->rest_len = kept;
    }
    if (o->rest_cap - kept < n) {
        unsigned char *p = realloc(o->rest, kept + n);
        if (!p) {
            o->fatal = -ENOMEM; /* its stream lost bytes: it must end */
            tb.in_off = tb.in_len = 0;
            return;
        }
        o->rest = p;
        o->rest_cap = kept + n;
    }
    memcpy(o->rest + kept, tb.in + tb.in_off, n);
    o->rest_len = kept + n;
    tb.in_off = tb.in_len = 0;
}

void wsk__tls_bio_forget(struct wsk__tls *t)
{
    if (tb.owner == t) {
        tb.owner = NULL;
        tb.in_off = tb.in_len = 0;
    }
    if (t->cork_owner && tb.cork_len)
        tb.cork_len = 0;
    t->cork_owner = false;
    free(t->rest);
    t->rest = NULL;
    free(t->wbuf);
    t->wbuf = NULL;
}

void wsk__tls_bio_trim(struct wsk__tls *t)
{
    if (t->rest && t->rest_off == t->rest_len) {
        free(t->rest);
        t->rest = NULL;
        t->rest_off = t->rest_len = t->rest_cap = 0;
    }
    if (t->wbuf && t->woff == t->wlen) {
        free(t->wbuf);
        t->wbuf = NULL;
        t->woff = t->wlen = t->wcap = 0;
    }
}

bool wsk__tls_bio_pending(const struct wsk__tls *t)
{
    return t->rest_off < t->rest_len || (tb.owner == t && tb.in_off < tb.in_len);
}

/* ---- writing -------------------------------------------------------------------- */

/* Appends to the connection's own wbuf, growing it. Returns false when out
 * of memory. */
static bool wbuf_append(struct wsk__tls *t, const void *data, size_t len)
{
    if (t->wcap - t->wlen < len) {
        size_t cap = t->wlen + len > WSK__TLS_CORK_CAP ? t->wlen + len : WSK__TLS_CORK_CAP;
        unsigned char *p = realloc(t->wbuf, cap);

        if (!p)
            return false;
        t->wbuf = p;
        t->wcap = cap;
    }
    memcpy(t->wbuf + t->wlen, data, len);
    t->wlen += len;
    return true;
}

/* send() until done or EAGAIN. Returns the bytes sent or a negative errno
 * (-EAGAIN when nothing went). */
static ssize_t send_some(int fd, const unsigned char *p, size_t len)
{
    size_t done = 0;

    while (done < len) {
        ssize_t n = send(fd, p + done, len - done, MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            return -errno;
        }
        done += (size_t)n;
    }
    return done ? (ssize_t)done : -EAGAIN;
}

int wsk__tls_cork_begin(struct wsk__tls *t)
{
    if (!tb_ready())
        return -ENOMEM;
    t->corking = true;
    t->cork_owner = true;
    tb.cork_len = 0;
    return 0;
}

size_t wsk__tls_cork_len(const struct wsk__tls *t)
{
    return t->cork_owner ? tb.cork_len : 0;
}

int wsk__tls_wbuf_send(struct wsk__tls *t)
{
    /* The connection's own tail first: it was written before the cork. */
    if (t->woff < t->wlen) {
        ssize_t n = send_some(t->fd, t->wbuf + t->woff, t->wlen - t->woff);

        if (n < 0 && n != -EAGAIN)
            return (int)n;
        if (n > 0)
            t->woff += (size_t)n;
        if (t->woff < t->wlen) {
            /* Keep the cork's records behind the tail. */
            if (t->cork_owner && tb.cork_len) {
                if (!wbuf_append(t, tb.cork, tb.cork_len))
                    return -ENOMEM;
                tb.cork_len = 0;
            }
            return 0;
        }
        /* Kept for the next partial send: a busy connection would
         * otherwise allocate and free up to 85 KiB per message, which
         * glibc trims and page-faults back in. wsk__tls_trim() frees it
         * once the connection is quiet. */
        t->wlen = t->woff = 0;
    }
    if (t->cork_owner && tb.cork_len) {
        ssize_t n = send_some(t->fd, tb.cork, tb.cork_len);

        if (n < 0 && n != -EAGAIN)
            return (int)n;
        size_t sent = n > 0 ? (size_t)n : 0;
        if (sent < tb.cork_len) {
            /* What the socket did not take waits in the connection's own
             * memory: the cork belongs to the thread. */
            if (!wbuf_append(t, tb.cork + sent, tb.cork_len - sent))
                return -ENOMEM;
            tb.cork_len = 0;
            return 0;
        }
        tb.cork_len = 0;
    }
    return 1;
}

void wsk__tls_cork_end(struct wsk__tls *t)
{
    t->corking = false;
    t->cork_owner = false;
}

static int sock_bio_write(BIO *b, const char *data, size_t len, size_t *written)
{
    struct wsk__tls *t = BIO_get_data(b);
    ssize_t n;

    BIO_clear_retry_flags(b);
    if (t->corking) {
        /* wsk__tls_writev sends before the cork fills; a record never
         * exceeds the room it leaves. */
        if (WSK__TLS_CORK_CAP - tb.cork_len < len) {
            t->sys_errno = EOVERFLOW;
            return 0;
        }
        memcpy(tb.cork + tb.cork_len, data, len);
        tb.cork_len += len;
        *written = len;
        return 1;
    }
    /* Behind ciphertext still waiting (a record that a read produced, say
     * a key update): keep the order. */
    if (t->woff < t->wlen) {
        if (!wbuf_append(t, data, len)) {
            t->sys_errno = ENOMEM;
            return 0;
        }
        *written = len;
        return 1;
    }
    do
        n = send(t->fd, data, len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n >= 0) {
        *written = (size_t)n;
        return 1;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        BIO_set_retry_write(b);
    else
        t->sys_errno = errno;
    return 0;
}

/* ---- reading -------------------------------------------------------------------- */

/* Serves OpenSSL from memory: the connection's saved bytes, then the
 * thread's window; when both are empty, one recv() of up to 256 KiB fills
 * the window (read-ahead stays off, so OpenSSL's own buffer is one record,
 * and the window is what saves the system calls). */
static int sock_bio_read(BIO *b, char *data, size_t len, size_t *nread)
{
    struct wsk__tls *t = BIO_get_data(b);
    ssize_t n;

    BIO_clear_retry_flags(b);
    if (t->rest_off < t->rest_len) {
        size_t k = t->rest_len - t->rest_off < len ? t->rest_len - t->rest_off : len;
        memcpy(data, t->rest + t->rest_off, k);
        t->rest_off += k;
        if (t->rest_off == t->rest_len)
            t->rest_off = t->rest_len = 0; /* the memory stays until a trim */
        *nread = k;
        return 1;
    }
    if (tb.owner == t && tb.in_off < tb.in_len) {
        size_t k = tb.in_len - tb.in_off < len ? tb.in_len - tb.in_off : len;
        memcpy(data, tb.in + tb.in_off, k);
        tb.in_off += k;
        *nread = k;
        return 1;
    }
    if (!tb_ready()) {
        /* No window: read straight into OpenSSL's buffer. */
        do
            n = recv(t->fd, data, len, 0);
        while (n < 0 && errno == EINTR);
    } else {
        tb_evict();
        do
            n = recv(t->fd, tb.in, WINDOW_CAP, 0);
        while (n < 0 && errno == EINTR);
        if (n > 0) {
            size_t k = (size_t)n < len ? (size_t)n : len;
            tb.owner = t;
            tb.in_len = (size_t)n;
            memcpy(data, tb.in, k);
            tb.in_off = k;
            *nread = k;
            return 1;
        }
    }
    if (n > 0) {
        *nread = (size_t)n;
        return 1;
    }
    if (n == 0)
        t->bio_eof = true;
    else if (errno == EAGAIN || errno == EWOULDBLOCK)
        BIO_set_retry_read(b);
    else
        t->sys_errno = errno;
    return 0;
}

static long sock_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    struct wsk__tls *t = BIO_get_data(b);

    (void)num;
    switch (cmd) {
    case BIO_CTRL_FLUSH: /* nothing is buffered here */
        return 1;
    case BIO_CTRL_EOF:
        return t->bio_eof;
    case BIO_C_GET_FD:
        if (ptr)
            *(int *)ptr = t->fd;
        return t->fd;
    default: /* not supported: kTLS, push/pop, dup, ... */
        return 0;
    }
}

static void sock_bio_init_once(void)
{
    has_tb_key = pthread_key_create(&tb_key, tb_free) == 0;
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
                                 "wsk socket");

    if (m && BIO_meth_set_write_ex(m, sock_bio_write) && BIO_meth_set_read_ex(m, sock_bio_read) &&
        BIO_meth_set_ctrl(m, sock_bio_ctrl)) {
        sock_bio_method = m;
        return;
    }
    BIO_meth_free(m);
}

BIO *wsk__tls_bio_new(void)
{
    pthread_once(&sock_bio_once, sock_bio_init_once);
    return sock_bio_method ? BIO_new(sock_bio_method) : NULL;
}
