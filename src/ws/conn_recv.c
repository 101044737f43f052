/* Frames in: a connection's input after the upgrade goes to its session
 * (src/proto/session.c), which parses, reassembles, inflates and answers
 * control frames; the handlers here turn its events into the user's
 * callbacks and its output into the send queue.
 *
 * A message that fits in one read is handed to on_message straight from the
 * context's receive buffer.
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

/* The session failed the connection (RFC 6455 7.1.7): it sent the close
 * code; drop the rest of the input and wait for the peer to close. */
static void conn_failed(struct wsk_conn *c, int error)
{
    if (c->flags & WSK__F_FAILED)
        return;
    c->flags |= WSK__F_FAILED | WSK__F_SENT_CLOSE;
    c->error = error;
    c->close_code = (uint16_t)wsk_session_close_code(&c->sess);
    wsk__log(c->ctx, 2, "%s: closing with %u: %s", wsk_conn_peer(c), c->close_code,
             wsk_strerror(error));
    c->deadline = wsk_loop_now(c->ctx->loop) + c->ctx->lim.close_timeout_ms;
    wsk__conn_finish(c);
}

static int sess_message(void *ud, enum wsk_opcode opcode, const uint8_t *data, size_t len)
{
    struct wsk_conn *c = ud;
    struct wsk__ctx *ctx = c->ctx;
    if (ctx->h.on_message) {
        struct wsk_message m = {opcode, data, len};
        ctx->cnt.msgs_in++;
        /* Echoing the very message being delivered needs no second UTF-8 pass. */
        ctx->valid_text = opcode == WSK_OP_TEXT ? data : NULL;
        ctx->valid_text_len = len;
        WSK__CALL(ctx, on_message, c, &m, ctx->user_data);
        ctx->valid_text = NULL;
    }
    return c->state != WSK__OPEN;
}

static int sess_ping(void *ud, const uint8_t *data, size_t len)
{
    struct wsk_conn *c = ud;
    struct wsk__ctx *ctx = c->ctx;
    if (ctx->h.on_ping)
        WSK__CALL(ctx, on_ping, c, data, len, ctx->user_data);
    return c->state != WSK__OPEN;
}

static int sess_pong(void *ud, const uint8_t *data, size_t len)
{
    struct wsk_conn *c = ud;
    struct wsk__ctx *ctx = c->ctx;
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
    return c->state != WSK__OPEN;
}

static int sess_close(void *ud, unsigned code, const uint8_t *reason, size_t len)
{
    struct wsk_conn *c = ud;
    /* The session echoed the close unless ours went first. */
    c->flags |= WSK__F_GOT_CLOSE | WSK__F_SENT_CLOSE;
    if (wsk_session_state(&c->sess) & WSK_SESSION_PEER_CLOSED)
        c->flags |= WSK__F_PEER_CLOSED_FIRST;
    c->close_code = (uint16_t)code;
    /* Keep the reason for on_close in c->in, unused once open. */
    wsk__conn_in_drop(c, c->in_len);
    if (len)
        wsk__conn_in_append(c, reason, len);
    wsk__conn_finish(c);
    return 1;
}

/* The session's output joins the send queue. Past the queue's cap the
 * connection stops reading, as when its echoes pile up, and the session
 * holds at most one pong until the queue drains: a peer that pings and
 * never reads costs one pong, and the keepalive then drops it. */
static int sess_send(void *ud, const uint8_t *data, size_t len)
{
    struct wsk_conn *c = ud;
    if (c->state == WSK__DEAD)
        return WSK_ECLOSED;
    if (wsk__conn_queue(c, data, len) < 0)
        return -ENOMEM;
    size_t cap = c->ctx->lim.max_send_queue;
    if (c->st.out_bytes <= cap)
        return 0;
    wsk__conn_flush_now(c);
    if (c->state == WSK__DEAD)
        return WSK_ECLOSED;
    if (c->st.out_bytes <= cap)
        return 0;
    if (c->flags & WSK__F_IN_READ)
        c->flags |= WSK__F_PAUSED;
    c->flags |= WSK__F_SESS_BLOCKED;
    return WSK_EBACKPRESSURE;
}

const struct wsk_session_handlers wsk__conn_session = {
    .on_message = sess_message,
    .on_ping = sess_ping,
    .on_pong = sess_pong,
    .on_close = sess_close,
    .send = sess_send,
};

void wsk__conn_feed_frames(struct wsk_conn *c, uint8_t *data, size_t len)
{
    if (c->flags & (WSK__F_GOT_CLOSE | WSK__F_FAILED))
        return;
    int64_t n = wsk_session_feed(&c->sess, data, len, &wsk__conn_session, c);
    if (n >= 0 || c->state == WSK__DEAD)
        return;
    if (n == -ENOMEM)
        wsk__conn_abort(c, -ENOMEM);
    else if (n == WSK_ECLOSED)
        wsk__conn_abort(c, WSK_ECLOSED);
    else
        conn_failed(c, (int)n);
}

void wsk__conn_session_drained(struct wsk_conn *c)
{
    c->flags &= ~WSK__F_SESS_BLOCKED;
    int rv = wsk_session_drained(&c->sess, &wsk__conn_session, c);
    if (rv < 0 && rv != WSK_EBACKPRESSURE && c->state != WSK__DEAD)
        wsk__conn_abort(c, rv);
}

void wsk__conn_open(struct wsk_conn *c, const struct wsk_open_event *ev, const uint8_t *rest,
                    size_t rest_len)
{
    struct wsk__ctx *ctx = c->ctx;
    struct wsk_session_config sc;
    wsk_session_config_init(&sc);
    sc.role = (c->flags & WSK__F_CLIENT) ? WSK_ROLE_CLIENT : WSK_ROLE_SERVER;
    sc.max_message = ctx->lim.max_message;
    sc.deflate = c->sess.deflate;
    sc.min_compress = (uint32_t)(ctx->deflate_min > UINT32_MAX ? UINT32_MAX : ctx->deflate_min);
    uint8_t *copy = NULL;
    if (rest_len) {
        /* Frames that came with the head: they sit in c->in, which a close
         * reason may need, so move them aside first. Before the connection counts
         * as open: a failure here must not report an open that never was. */
        copy = malloc(rest_len);
        if (!copy) {
            wsk__conn_abort(c, -ENOMEM);
            return;
        }
        memcpy(copy, rest, rest_len);
    }
    wsk_session_init(&c->sess, &sc);
    c->state = WSK__OPEN;
    c->flags |= WSK__F_OPENED;
    ctx->num_open++;
    ctx->cnt.opened++;
    c->deadline = ctx->lim.ping_interval_ms == UINT32_MAX
                      ? 0
                      : wsk_loop_now(ctx->loop) + ctx->lim.ping_interval_ms;
    if (ctx->h.on_open)
        WSK__CALL(ctx, on_open, c, ev, ctx->user_data);
    /* The head (which ev pointed into) is done with. */
    if (c->state == WSK__OPEN)
        wsk__conn_in_drop(c, c->in_len);
    if (copy && c->state == WSK__OPEN)
        wsk__conn_feed_frames(c, copy, rest_len);
    free(copy);
}
