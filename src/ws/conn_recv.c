/* Frames in (RFC 6455 sections 5.4-5.6 and 7): a connection's input after
 * the upgrade, parsed in place by the frame parser; messages reassembled
 * only when split across frames or reads; control frames answered;
 * permessage-deflate inflated with UTF-8 checked as it grows.
 *
 * A message that fits in one read is handed to on_message straight from the
 * context's receive buffer; only messages split across frames or reads are
 * copied into conn->msg.
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
        wsk__conn_send_close(c, code, reason, strlen(reason));
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

int wsk__conn_msg_reserve(struct wsk_conn *c, size_t len)
{
    return wsk__grow(&c->msg, &c->msg_cap, c->msg_len + len, 4096);
}

static int msg_append(struct wsk_conn *c, const uint8_t *data, size_t len)
{
    /* Bytes read straight into the message buffer are already in place. */
    if (c->msg && data == c->msg + c->msg_len) {
        c->msg_len += len;
        return 0;
    }
    int rv = wsk__conn_msg_reserve(c, len);
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
            wsk__conn_queue_frame(c, WSK_FRAME_FIN | WSK_OP_PONG, data, len);
            /* A pong counts against the send queue like data: a peer that
             * pings and never reads is paused like one that never reads its
             * echoes, so the pongs queued for it stay under the cap plus one
             * read's worth, and the keepalive then drops it. */
            if (c->st.out_bytes > ctx->lim.max_send_queue && !(c->flags & WSK__F_PAUSED)) {
                wsk__conn_flush_now(c);
                if (c->state != WSK__DEAD && c->st.out_bytes > ctx->lim.max_send_queue)
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
            wsk__conn_send_close(c, close_code == WSK_CLOSE_NO_STATUS ? 0 : close_code, NULL, 0);
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

void wsk__conn_feed_frames(struct wsk_conn *c, uint8_t *data, size_t len)
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
        wsk__conn_feed_frames(c, copy, rest_len);
    free(copy);
}
