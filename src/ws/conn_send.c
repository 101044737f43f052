/* Frames out (RFC 6455 section 5): encoding into the connection's stream
 * (src/transport/stream.c, which owns the queue and the socket), the queue
 * limit, compression, pings and the close frame.
 *
 * Sends append frames to the connection's queue and put it on the context's
 * flush list; the queue is written with one writev() at the end of the read
 * burst that caused it (or at the end of the loop iteration), so a burst of
 * 32 requests costs one read and one write. What the socket refuses stays
 * queued, up to max_send_queue: past it a connection's own traffic stops
 * reading from that peer until the queue drains (TCP pushes back); others'
 * traffic (broadcasts) meets the overflow policy.
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

#define DIRECT_WRITE_MIN (16u * 1024)

struct wsk__shared *wsk__shared_frame(uint8_t first_byte, const void *payload, size_t len)
{
    struct wsk__shared *sh = wsk__shared_new(WSK_FRAME_HEADER_MAX + len);
    if (!sh)
        return NULL;
    size_t h = wsk_frame_header_encode(sh->data, first_byte, len, NULL);
    if (len)
        memcpy(sh->data + h, payload, len);
    sh->len = h + len;
    return sh;
}

/* Returns room for n more bytes at the end of the queue. */
static uint8_t *queue_reserve(struct wsk_conn *c, size_t n)
{
    /* A connection answering its own input tends to send many frames in a
     * burst; one sent to from elsewhere, a few. */
    return wsk__stream_reserve(&c->st, &c->ctx->pool, n,
                               !c->st.out_head && !(c->flags & WSK__F_IN_READ));
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
    if (wsk__stream_queue_shared(&c->st, sh) < 0)
        return -ENOMEM;
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

static void flush(struct wsk_conn *c, bool now);

/* Writes as much of the queue as the socket takes (on an io_uring loop:
 * submits it, to go with the next wait). */
void wsk__conn_flush(struct wsk_conn *c)
{
    flush(c, false);
}

static void flush(struct wsk_conn *c, bool now)
{
    struct wsk__ctx *ctx = c->ctx;
    ssize_t w =
        now ? wsk__stream_flush_sync(&c->st, &ctx->pool) : wsk__stream_flush(&c->st, &ctx->pool);
    if (w < 0) {
        wsk__conn_io_error(c, (int)w);
        return;
    }
    ctx->cnt.bytes_out += (uint64_t)w;
    /* A response times out only when it stops moving (nginx's
     * send_timeout): a slow but steady download goes on. */
    if (w > 0 && c->state == WSK__HTTP_REPLY)
        c->deadline = wsk_loop_now(ctx->loop) + ctx->lim.send_timeout_ms;
    if (c->state == WSK__DEAD)
        return;
    size_t low = ctx->lim.max_send_queue / 2;
    if (c->st.out_bytes <= low) {
        if (c->flags & WSK__F_PAUSED)
            c->flags &= ~WSK__F_PAUSED;
        if (c->flags & WSK__F_SESS_BLOCKED) {
            wsk__conn_session_drained(c);
            if (c->state == WSK__DEAD)
                return;
        }
        if ((c->flags & WSK__F_WANT_DRAIN) && c->state == WSK__OPEN) {
            c->flags &= ~WSK__F_WANT_DRAIN;
            if (ctx->h.on_drain) {
                WSK__CALL(ctx, on_drain, c, ctx->user_data);
            }
        }
    }
    if (!c->st.out_bytes) {
        if (c->state == WSK__HTTP_REPLY)
            wsk__server_on_reply_drained(c);
        else if (c->state == WSK__OPEN && (c->flags & WSK__F_SENT_CLOSE) &&
                 (c->flags & (WSK__F_GOT_CLOSE | WSK__F_FAILED)))
            wsk__conn_finish(c);
    }
    wsk__conn_set_events(c);
}

#define MASK_SCRATCH (64u * 1024)

/* Writes a masked frame's header and as much of its payload as the socket
 * takes, masking MASK_SCRATCH bytes at a time into the context's scratch
 * buffer. Sets *sent to the bytes written (header first). Returns 0, or
 * WSK_ECLOSED after ending the connection on a socket error. */
static int send_masked_direct(struct wsk_conn *c, const uint8_t *hdr, size_t hlen,
                              const uint8_t *payload, size_t len, const uint8_t *mask, size_t *sent)
{
    struct wsk__ctx *ctx = c->ctx;
    if (!ctx->mbuf && !(ctx->mbuf = malloc(MASK_SCRATCH)))
        return 0;               /* no scratch: the queue does it */
    size_t done = 0, hsent = 0; /* payload bytes written, header bytes written */
    while (done < len) {
        size_t n = len - done < MASK_SCRATCH ? len - done : MASK_SCRATCH;
        wsk_mask_copy(ctx->mbuf, payload + done, n, mask, done);
        struct iovec iov[2] = {{(void *)(uintptr_t)(hdr + hsent), hlen - hsent}, {ctx->mbuf, n}};
        int first = hsent == hlen ? 1 : 0;
        ssize_t w = wsk__stream_send(&c->st, iov + first, 2 - first);
        if (w < 0 && w != -EAGAIN) {
            wsk__conn_tls_detail(c);
            wsk__conn_abort(c, (int)w);
            return WSK_ECLOSED;
        }
        size_t wrote = w > 0 ? (size_t)w : 0, hpart = hlen - hsent;
        ctx->cnt.bytes_out += wrote;
        if (wrote < hpart) {
            hsent += wrote;
            break;
        }
        hsent = hlen;
        done += wrote - hpart;
        if (wrote - hpart < n)
            break; /* the socket is full */
    }
    /* With TLS the record written holds the masked bytes: what was not
     * taken is masked again from payload into the queue, from offset done,
     * which the key's position depends on only modulo 4. */
    *sent = hsent + done;
    return 0;
}

/* Queues one frame. Large payloads go straight to the socket when nothing
 * is queued before them, saving a copy (a client's through a scratch buffer
 * for the masking). */
int wsk__conn_queue_frame(struct wsk_conn *c, uint8_t first_byte, const uint8_t *payload,
                          size_t len)
{
    /* A small unmasked frame joins the tail segment in place when it fits:
     * the common case of many small sends in one read burst. */
    if (len < 126 && !(c->flags & WSK__F_CLIENT)) {
        uint8_t *p = wsk__stream_tail_room(&c->st, len + 2);
        if (p) {
            p[0] = first_byte;
            p[1] = (uint8_t)len;
            if (len)
                memcpy(p + 2, payload, len);
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
    if (!mask && len >= DIRECT_WRITE_MIN && !c->st.out_bytes && c->st.io.fd >= 0 &&
        !(c->st.flags & WSK__STREAM_TLS_HS) && c->state != WSK__CONNECTING) {
        struct iovec iov[2] = {{hdr, hlen}, {(void *)(uintptr_t)payload, len}};
        ssize_t w = wsk__stream_send(&c->st, iov, 2);
        if (w < 0 && w != -EAGAIN) {
            wsk__conn_tls_detail(c);
            wsk__conn_abort(c, (int)w);
            return WSK_ECLOSED;
        }
        if (w > 0) {
            skip = (size_t)w;
            c->ctx->cnt.bytes_out += skip;
        }
        if (skip == hlen + len)
            return 0;
    }
    if (mask && len >= DIRECT_WRITE_MIN && !c->st.out_bytes && c->st.io.fd >= 0 &&
        !(c->st.flags & WSK__STREAM_TLS_HS) && c->state != WSK__CONNECTING) {
        /* A client's large frame: masked a slice at a time into a scratch
         * buffer and written from there, rather than masked into fresh
         * queue segments and copied again by the kernel later. */
        int rv = send_masked_direct(c, hdr, hlen, payload, len, mask, &skip);
        if (rv < 0)
            return rv;
        if (skip == hlen + len)
            return 0;
    }
    size_t total = hlen + len - skip;
    uint8_t *p = queue_reserve(c, total);
    if (!p) {
        /* Part of the frame is on the wire already: the stream cannot go
         * on without the rest. */
        if (skip) {
            wsk__conn_abort(c, -ENOMEM);
            return WSK_ECLOSED;
        }
        return -ENOMEM;
    }
    if (skip < hlen) {
        memcpy(p, hdr + skip, hlen - skip);
        p += hlen - skip;
        skip = 0;
    } else {
        skip -= hlen;
    }
    if (mask && len - skip)
        wsk_mask_copy(p, payload + skip, len - skip, mask, skip);
    else if (!mask && len - skip)
        memcpy(p, payload + skip, len - skip);
    wsk__conn_want_flush(c);
    return 0;
}

void wsk__conn_flush_now(struct wsk_conn *c)
{
    if (c->state != WSK__DEAD && c->st.io.fd >= 0 && c->state != WSK__CONNECTING)
        flush(c, true);
}

/* Applies the queue limit after a send made by the connection's user. */
static int check_queue(struct wsk_conn *c)
{
    if (c->st.out_bytes <= c->ctx->lim.max_send_queue)
        return 0;
    /* Coalescing is for small frames: before calling the queue full, give
     * the socket what it will take now. */
    wsk__conn_flush_now(c);
    if (c->state == WSK__DEAD)
        return WSK_ECLOSED; /* the socket failed: the message went nowhere */
    if (c->st.out_bytes <= c->ctx->lim.max_send_queue)
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
    if (wsk__grow(&ctx->zbuf, &ctx->zbuf_cap, ctx->zbuf_len + len, 16384) < 0)
        return -ENOMEM;
    memcpy(ctx->zbuf + ctx->zbuf_len, data, len);
    ctx->zbuf_len += len;
    return 0;
}

int wsk__conn_send_message(struct wsk_conn *c, uint8_t opcode, const uint8_t *data, size_t len)
{
    struct wsk__ctx *ctx = c->ctx;
    if (!c->sess.deflate || len < ctx->deflate_min)
        return wsk__conn_queue_frame(c, (uint8_t)(WSK_FRAME_FIN | opcode), data, len);
    if (c->flags & WSK__F_Z_RESET) {
        wsk_deflate_reset_send(c->sess.deflate);
        c->flags &= ~WSK__F_Z_RESET;
    }
    ctx->zbuf_len = 0;
    int rv = wsk_deflate_compress(c->sess.deflate, data, len, wsk__zbuf_sink, ctx);
    if (rv < 0)
        return rv;
    rv = wsk__conn_queue_frame(c, (uint8_t)(WSK_FRAME_FIN | WSK_FRAME_RSV1 | opcode), ctx->zbuf,
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
    c->ctx->cnt.msgs_out++;
    return check_queue(c);
}

int wsk_conn_ping(struct wsk_conn *c, const void *data, size_t len)
{
    if (len > 125)
        return WSK_ETOOBIG;
    if (c->state != WSK__OPEN || (c->flags & WSK__F_SENT_CLOSE))
        return WSK_ESTATE;
    return wsk__conn_queue_frame(c, WSK_FRAME_FIN | WSK_OP_PING, data, len);
}

int wsk__conn_send_close(struct wsk_conn *c, unsigned code, const char *reason, size_t reason_len)
{
    int rv = wsk_session_close(&c->sess, code, reason, reason_len, &wsk__conn_session, c);
    if (rv == WSK_EBACKPRESSURE || rv == WSK_ESTATE)
        rv = 0; /* sent, or the session had sent its own close */
    if (wsk_session_state(&c->sess) & WSK_SESSION_SENT_CLOSE)
        c->flags |= WSK__F_SENT_CLOSE;
    return rv;
}

int wsk_conn_close(struct wsk_conn *c, unsigned code, const char *reason)
{
    if (c->state == WSK__DEAD || c->state == WSK__LINGER)
        return 0;
    /* A reason needs a code (RFC 6455 5.5.1): without one it is left out. */
    size_t reason_len = reason && code ? strlen(reason) : 0;
    if (code && !wsk_close_code_is_valid(code))
        return WSK_EPROTO;
    if (c->state != WSK__OPEN) {
        /* Nothing to hand shake yet: just end it. */
        wsk__conn_abort(c, WSK_ECLOSED);
        return 0;
    }
    if (c->flags & WSK__F_SENT_CLOSE)
        return 0;
    int rv = wsk__conn_send_close(c, code, reason, reason_len > 123 ? 123 : reason_len);
    if (rv == WSK_EUTF8)
        rv = wsk__conn_send_close(c, code, NULL, 0);
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
    return c->st.out_bytes;
}
