/* One message for many receivers: wsk_server_broadcast() to every open
 * connection, and the fan-out that topic.c's publish shares with it.
 *
 * Server frames are not masked, so one encoding serves every receiver:
 * small frames are copied into each queue (cheaper than a reference), big
 * ones are shared by reference count. With permessage-deflate the message is
 * compressed once per distinct window size, not once per receiver (see
 * compressed_frame()). Each receiver then gets the overflow policy on its
 * own: the cap is on what waits in its queue.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ws/server_internal.h"

#define BROADCAST_SHARE_MIN 4096
/* Input bytes a server compresses for broadcasts per loop iteration. Past
 * it, broadcasts go uncompressed (always valid) until the next iteration, so
 * a burst of big messages cannot stall every other connection: 1 MiB of
 * text deflates in 24-36 ms here (tests/ws/hardening_test.c prints it). */
#define BROADCAST_Z_BUDGET (1u << 20)

static void zbudget_cb(struct wsk_loop *loop, struct wsk_defer *d)
{
    (void)loop;
    struct wsk_server *srv = d->data;
    srv->bz_used = 0;
}

void wsk__broadcast_init(struct wsk_server *srv)
{
    wsk_defer_init(&srv->bz_defer, zbudget_cb, srv);
}

void wsk__broadcast_free(struct wsk_server *srv)
{
    if (srv->ctx.loop)
        wsk_defer_cancel(srv->ctx.loop, &srv->bz_defer);
    for (int i = 0; i < 16; i++) {
        wsk_deflate_free(srv->bz[i]);
        srv->bz[i] = NULL;
    }
}

/* The broadcast compressed once for every receiver whose compressor uses
 * window bits `bits`: with no history (so any receiver's inflater takes it,
 * context takeover or not) and a window no larger than theirs. NULL when
 * out of memory or over this iteration's compression budget: those
 * receivers then get the uncompressed frame, which is always valid. */
static struct wsk__shared *compressed_frame(struct wsk_server *srv, unsigned bits, uint8_t opcode,
                                            const void *data, size_t len)
{
    struct wsk__ctx *ctx = &srv->ctx;
    if (len > BROADCAST_Z_BUDGET - srv->bz_used)
        return NULL;
    struct wsk_deflate **z = &srv->bz[bits & 15];
    if (!*z) {
        struct wsk_deflate_params p = {.server_max_window_bits = (uint8_t)bits,
                                       .client_max_window_bits = 15,
                                       .mem_level = srv->cfg.deflate.mem_level};
        if (wsk_deflate_new(z, &p, WSK_ROLE_SERVER) < 0)
            return NULL;
    }
    if (!srv->bz_used)
        wsk_defer_start(ctx->loop, &srv->bz_defer);
    srv->bz_used += len ? len : 1;
    wsk_deflate_reset_send(*z);
    ctx->zbuf_len = 0;
    if (wsk_deflate_compress(*z, data, len, wsk__zbuf_sink, ctx) < 0)
        return NULL;
    struct wsk__shared *sh = wsk__shared_frame((uint8_t)(WSK_FRAME_FIN | WSK_FRAME_RSV1 | opcode),
                                               ctx->zbuf, ctx->zbuf_len);
    if (ctx->zbuf_cap > 1024 * 1024) {
        free(ctx->zbuf);
        ctx->zbuf = NULL;
        ctx->zbuf_cap = 0;
    }
    return sh;
}

int wsk__fanout_check(enum wsk_opcode opcode, const void *data, size_t len)
{
    if (opcode != WSK_OP_TEXT && opcode != WSK_OP_BINARY)
        return -EINVAL;
    if (opcode == WSK_OP_TEXT && !wsk_utf8_valid(data, len))
        return WSK_EUTF8;
    return 0;
}

int wsk__fanout_begin(struct wsk__fanout *f, struct wsk_server *srv, enum wsk_opcode opcode,
                      const void *data, size_t len)
{
    memset(f, 0, sizeof *f);
    f->srv = srv;
    f->data = data;
    f->len = len;
    f->opcode = (uint8_t)opcode;
    f->plain = wsk__shared_frame((uint8_t)(WSK_FRAME_FIN | opcode), data, len);
    return f->plain ? 0 : -ENOMEM;
}

int wsk__fanout_to(struct wsk__fanout *f, struct wsk_conn *c)
{
    struct wsk_server *srv = f->srv;
    struct wsk__ctx *ctx = &srv->ctx;
    if (c->state != WSK__OPEN || (c->flags & (WSK__F_SENT_CLOSE | WSK__F_GOT_CLOSE)))
        return 0;
    struct wsk__shared *sh = f->plain;
    if (c->sess.deflate && f->len >= ctx->deflate_min) {
        unsigned bits = wsk_deflate_send_window_bits(c->sess.deflate) & 15;
        if (!(f->ztried & (1u << bits))) {
            f->ztried |= (uint16_t)(1u << bits);
            f->z[bits] = compressed_frame(srv, bits, f->opcode, f->data, f->len);
        }
        if (f->z[bits])
            sh = f->z[bits];
    }
    /* The cap is on what waits, not on one message: a receiver with
     * nothing waiting takes any message up to max_message. */
    if (c->st.out_bytes && c->st.out_bytes + sh->len > ctx->lim.max_send_queue)
        wsk__conn_flush_now(c); /* the socket may take some now */
    if (c->state != WSK__OPEN)
        return 0;
    if (c->st.out_bytes && c->st.out_bytes + sh->len > ctx->lim.max_send_queue) {
        if (ctx->lim.overflow == WSK_OVERFLOW_DROP) {
            srv->slow_dropped++;
            return 0;
        }
        srv->slow_closed++;
        wsk__log(ctx, 1, "%s: send queue full (%zu bytes), closing with 1008", wsk_conn_peer(c),
                 c->st.out_bytes);
        wsk_conn_close(c, WSK_CLOSE_POLICY, "send queue full");
        return 0;
    }
    int rv = sh->len < BROADCAST_SHARE_MIN ? wsk__conn_queue(c, sh->data, sh->len)
                                           : wsk__conn_queue_shared(c, sh);
    if (rv < 0) {
        wsk__conn_abort(c, rv);
        return 0;
    }
    ctx->cnt.msgs_out++;
    /* The receiver's inflater now holds bytes its own compressor never
     * saw: that compressor must not reach back past them. */
    if (sh != f->plain)
        c->flags |= WSK__F_Z_RESET;
    /* The sender (the connection being read) gets its own broadcasts
     * too: past half the cap, read no more from it until it has read
     * them. A burst is then paced by how fast the sender itself reads,
     * so receivers that read as fast as it does stay below the cap
     * that closes slow ones. */
    if ((c->flags & WSK__F_IN_READ) && c->st.out_bytes > ctx->lim.max_send_queue / 2)
        c->flags |= WSK__F_PAUSED;
    return 1;
}

void wsk__fanout_end(struct wsk__fanout *f)
{
    wsk__shared_release(f->plain);
    for (int i = 0; i < 16; i++)
        wsk__shared_release(f->z[i]);
}

int wsk_server_broadcast(struct wsk_server *srv, enum wsk_opcode opcode, const void *data,
                         size_t len)
{
    struct wsk__fanout f;
    int rv = wsk__fanout_check(opcode, data, len);
    if (rv < 0 || (rv = wsk__fanout_begin(&f, srv, opcode, data, len)) < 0)
        return rv;
    int count = 0;
    /* Flushing and closing call user callbacks, which may end any
     * connection: walk safely. */
    struct wsk__walk w;
    wsk__walk_begin(&srv->ctx, &w);
    for (struct wsk_conn *c; (c = wsk__walk_next(&w));)
        count += wsk__fanout_to(&f, c);
    wsk__walk_end(&srv->ctx, &w);
    wsk__fanout_end(&f);
    return count;
}
