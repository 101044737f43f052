/* Private to the library: a byte stream on the loop, plain TCP or TLS behind
 * one interface. It owns the socket's watcher, reading, the send queue and
 * flushing; it knows nothing of WebSocket or HTTP, so raw TCP, packet
 * protocols and WebSocket connections share it (redis src/connection.h and
 * curl lib/cfilters.h have the same split).
 *
 * The send queue is a list of segments: bytes of the stream's own, or a
 * reference to bytes shared by many streams (a broadcast frame, encoded
 * once). Owned segments come from a pool shared by the streams of one
 * context, so steady traffic does not allocate: 16 KiB segments for streams
 * that send bursts, 256-byte ones for streams sent one small frame now and
 * then (1,000 broadcast receivers then cost 256 KiB, not 16 MiB that malloc
 * would hand back to the kernel at once).
 *
 * TLS may need the other direction's readiness (a read that must write, a
 * write that must read); the stream remembers that and wsk__stream_watch()
 * asks the loop for it. Bytes TLS already decrypted do not show as socket
 * readiness: wsk__stream_pending() tells the owner to read again.
 *
 * Every function that returns ssize_t or int returns a count or 0 on
 * success, -EAGAIN when the socket is not ready (reads and writes), or a
 * negative error (a negative errno, WSK_ETLS).
 */
#ifndef WSK_TRANSPORT_STREAM_H
#define WSK_TRANSPORT_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "wsk/loop.h"

struct wsk__tls;
struct wsk__tls_ctx;
struct wsk__ustream;

/* Bytes shared by several send queues, freed with the last reference. */
struct wsk__shared {
    size_t refs;
    size_t len;
    uint8_t data[];
};

/* Allocates room for len bytes (data[] uninitialised, len set, one
 * reference). Returns NULL when out of memory. */
struct wsk__shared *wsk__shared_new(size_t len);
/* Drops one reference. NULL is fine. */
void wsk__shared_release(struct wsk__shared *sh);

/* A piece of a send queue. */
struct wsk__oseg {
    struct wsk__oseg *next;
    struct wsk__shared *shared; /* NULL: the bytes are in data[] */
    size_t off;                 /* first unsent byte */
    size_t len;                 /* bytes queued (sent ones included) */
    size_t cap;                 /* owned segments: room in data[] */
    uint8_t data[];
};

/* Spare segments shared by the streams of one context (one thread). */
struct wsk__seg_pool {
    struct wsk__oseg *big, *small;
    size_t big_len, small_len;
};

/* Frees the spare segments; the pool stays usable. */
void wsk__seg_pool_free(struct wsk__seg_pool *pool);

/* Gives a segment back to pool, or to malloc when pool is NULL; drops the
 * reference of a shared one. */
void wsk__seg_free(struct wsk__seg_pool *pool, struct wsk__oseg *seg);

enum {
    WSK__STREAM_TLS_HS = 1u << 0,   /* TLS handshake under way */
    WSK__STREAM_TLS_RW = 1u << 1,   /* a TLS read (or the handshake) waits for writable */
    WSK__STREAM_TLS_WR = 1u << 2,   /* a TLS write waits for readable */
    WSK__STREAM_SERVER = 1u << 3,   /* TLS server side */
    WSK__STREAM_SNIFFED = 1u << 4,  /* server: the peer's first byte was seen */
    WSK__STREAM_NO_URING = 1u << 5, /* stays on readiness: TLS will start later */
    WSK__STREAM_URING = 1u << 6,    /* completion I/O: u_ is set, not tls_ */
};

/* The pool is not kept in the stream but passed to the calls that need it:
 * idle connections are the common case, and each byte per stream counts. */
struct wsk__stream {
    struct wsk_io io; /* io.fd < 0: no socket yet (a client resolving a name) */
    /* TLS, or completion I/O on an io_uring loop (stream_uring.c), never
     * both: one pointer, told apart by WSK__STREAM_URING, so that idle
     * connections pay nothing for io_uring. Read with wsk__stream_tls()
     * and wsk__stream_u(). */
    union {
        struct wsk__tls *tls_;
        struct wsk__ustream *u_;
    };
    struct wsk__oseg *out_head, *out_tail;
    size_t out_bytes; /* queued and not yet written */
    uint8_t flags;
};

/* The stream's TLS, or NULL. */
static inline struct wsk__tls *wsk__stream_tls(const struct wsk__stream *s)
{
    return (s->flags & WSK__STREAM_URING) ? NULL : s->tls_;
}

/* The stream's io_uring side, or NULL. */
static inline struct wsk__ustream *wsk__stream_u(const struct wsk__stream *s)
{
    return (s->flags & WSK__STREAM_URING) ? s->u_ : NULL;
}

/* Sets up a stream on fd (may be -1) with no watching yet; cb gets the
 * readiness of fd with data. */
void wsk__stream_init(struct wsk__stream *s, int fd, wsk_io_cb cb, void *data);

/* Watches the socket: readable when want_read or TLS needs it, writable
 * when bytes are queued or TLS needs it; only writable while connecting;
 * only what the handshake needs during a TLS handshake. Returns 0 or the
 * loop's error (then nothing changed). */
int wsk__stream_watch(struct wsk_loop *loop, struct wsk__stream *s, bool want_read,
                      bool connecting);

/* Stops watching (wsk__stream_watch() starts again). On an io_uring loop a
 * plain stream's receive is cancelled too: no callback comes after this. */
void wsk__stream_stop(struct wsk_loop *loop, struct wsk__stream *s);

/* Reads up to len bytes: a count, 0 at end of stream, -EAGAIN, or an error. */
ssize_t wsk__stream_recv(struct wsk__stream *s, uint8_t *buf, size_t len);

/* Writes iov now, bypassing the queue (which must be empty): a count,
 * -EAGAIN, or an error. Never raises SIGPIPE. */
ssize_t wsk__stream_send(struct wsk__stream *s, struct iovec *iov, int n);

/* Returns room for n more bytes at the end of the queue (counted as
 * queued), or NULL when out of memory. small: a stream sent to now and
 * then, not in a burst, which gets a small segment when n fits one. */
uint8_t *wsk__stream_reserve(struct wsk__stream *s, struct wsk__seg_pool *pool, size_t n,
                             bool small);

/* Appends n bytes to the tail segment when they fit there; returns where to
 * write them, or NULL when they do not fit (use wsk__stream_reserve()). The
 * path of many small frames sent in one burst. */
static inline uint8_t *wsk__stream_tail_room(struct wsk__stream *s, size_t n)
{
    struct wsk__oseg *t = s->out_tail;
    if (!t || t->shared || t->cap - t->len < n)
        return NULL;
    uint8_t *p = t->data + t->len;
    t->len += n;
    s->out_bytes += n;
    return p;
}

/* Queues a reference to sh (taking one). Returns 0 or -ENOMEM. */
int wsk__stream_queue_shared(struct wsk__stream *s, struct wsk__shared *sh);

/* Writes as much of the queue as the socket takes. Returns the bytes
 * written (0 when the socket took nothing or nothing was queued) or an
 * error; -EAGAIN is not an error here. On an io_uring loop a plain stream
 * submits a send instead and returns the bytes earlier sends completed;
 * the owner hears of the next completion as WSK_IO_WRITE readiness. */
ssize_t wsk__stream_flush(struct wsk__stream *s, struct wsk__seg_pool *pool);

/* Drops the first n queued bytes, written (n <= out_bytes), freeing the
 * segments they emptied into pool (NULL: to malloc). */
void wsk__stream_consumed(struct wsk__stream *s, struct wsk__seg_pool *pool, size_t n);

/* wsk__stream_flush() that writes now, with a system call, on an io_uring
 * loop too (unless a send is already in flight there): for an owner about
 * to judge a queue full, which must first give the socket what it takes. */
ssize_t wsk__stream_flush_sync(struct wsk__stream *s, struct wsk__seg_pool *pool);

/* Drops everything queued. */
void wsk__stream_drop_queue(struct wsk__stream *s, struct wsk__seg_pool *pool);

/* Starts TLS on the connected socket (server_name: client only). Returns 0
 * or an error; then step the handshake with wsk__stream_handshake(). */
int wsk__stream_start_tls(struct wsk__stream *s, struct wsk__tls_ctx *ctx, bool is_server,
                          const char *server_name);

enum wsk__stream_hs {
    WSK__STREAM_HS_DONE = 0,
    WSK__STREAM_HS_AGAIN = 1, /* come back on readiness (wsk__stream_watch() knows which) */
    WSK__STREAM_HS_PLAIN = 2, /* server: the peer spoke plain text, not TLS; TLS is off now */
};

/* Steps the TLS handshake. A server first peeks at the peer's first byte
 * and lets OpenSSL read nothing before it: a letter means plain HTTP on a
 * TLS port, answered HS_PLAIN with TLS dropped, so that the owner can reply
 * in plain text. Returns an enum wsk__stream_hs value or an error. */
int wsk__stream_handshake(struct wsk__stream *s);

/* TLS holds decrypted bytes that socket readiness will not show. */
bool wsk__stream_pending(const struct wsk__stream *s);

/* With TLS: releases buffers a busy connection kept once it is quiet (see
 * wsk__tls_trim()); call it every WSK__TRIM_MS. Nothing without TLS. */
#define WSK__TRIM_MS 1000
void wsk__stream_trim(struct wsk__stream *s);

/* OpenSSL's reason for the last TLS failure, or "" without TLS. */
const char *wsk__stream_error(const struct wsk__stream *s);

/* Sends TLS close_notify (nothing without TLS). */
void wsk__stream_shutdown_tls(struct wsk__stream *s);

/* The io_uring side (stream_uring.c), called by stream.c for a stream with
 * WSK__STREAM_URING set; see there. */
int wsk__ustream_attach(struct wsk_loop *loop, struct wsk__stream *s);
void wsk__ustream_watch(struct wsk_loop *loop, struct wsk__stream *s, unsigned ev);
ssize_t wsk__ustream_recv(struct wsk__stream *s, uint8_t *buf, size_t len);
bool wsk__ustream_pending(const struct wsk__stream *s);
ssize_t wsk__ustream_flush(struct wsk__stream *s, struct wsk__seg_pool *pool);
ssize_t wsk__ustream_flush_sync(struct wsk__stream *s, struct wsk__seg_pool *pool);
bool wsk__ustream_busy(const struct wsk__stream *s);
void wsk__ustream_kick(struct wsk__stream *s);
int wsk__ustream_set_error(struct wsk__stream *s, int err);
bool wsk__ustream_drop_queue(struct wsk__stream *s);
void wsk__ustream_trim(struct wsk__stream *s);
void wsk__ustream_detach(struct wsk_loop *loop, struct wsk__stream *s);

/* Stops watching, frees TLS and the queue, closes the socket. */
void wsk__stream_close(struct wsk_loop *loop, struct wsk__stream *s, struct wsk__seg_pool *pool);

#endif
