/* The WebSocket session (RFC 6455 sections 5 to 7, RFC 7692 for
 * permessage-deflate): frames in, events and frames out, no I/O, no clock.
 *
 * A data message that fits in one feed is handed to on_message in place;
 * only messages split across frames or feeds are copied into s->msg.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "wsk/deflate.h"
#include "wsk/session.h"

enum {
    S_PUBLIC = 0xff,
    S_ASSEMBLING = 1u << 8, /* an uncompressed data frame is being copied into msg */
    S_PONG_HELD = 1u << 9,  /* aux + 125 holds the pong for the latest ping */
};

#define AUX_SIZE   250
#define BIG_BUFFER (64 * 1024)

void wsk_session_config_init(struct wsk_session_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->role = WSK_ROLE_SERVER;
    cfg->max_message = 16u << 20;
    cfg->min_compress = WSK_DEFLATE_DEFAULT_MIN_SIZE;
}

void wsk_session_init(struct wsk_session *s, const struct wsk_session_config *cfg)
{
    struct wsk_session_config def;
    if (!cfg) {
        wsk_session_config_init(&def);
        cfg = &def;
    }
    memset(s, 0, sizeof *s);
    struct wsk_frame_config fc;
    wsk_frame_config_init(&fc);
    fc.role = cfg->role;
    fc.max_frame = cfg->max_message;
    fc.max_message = cfg->max_message;
    /* Compressed payloads may be shorter than what they inflate to; the
     * inflated size is what max_message limits, as it grows. */
    fc.rsv_allowed = cfg->deflate ? WSK_FRAME_RSV1 : 0;
    wsk_frame_parser_init(&s->parser, &fc);
    s->deflate = cfg->deflate;
    s->min_compress = cfg->min_compress ? cfg->min_compress : WSK_DEFLATE_DEFAULT_MIN_SIZE;
}

void wsk_session_clear(struct wsk_session *s)
{
    free(s->msg);
    free(s->aux);
    s->msg = s->aux = NULL;
    s->msg_len = s->msg_cap = 0;
}

unsigned wsk_session_state(const struct wsk_session *s)
{
    return s->flags & S_PUBLIC;
}

unsigned wsk_session_close_code(const struct wsk_session *s)
{
    return s->code;
}

static bool is_client(const struct wsk_session *s)
{
    return s->parser.flags & 1; /* the parser's role bit: WSK_ROLE_CLIENT */
}

/* ---- output ------------------------------------------------------------ */

/* Hands bytes to the caller; a refusal fails the session. */
static int out(struct wsk_session *s, const uint8_t *data, size_t len,
               const struct wsk_session_handlers *h, void *ud)
{
    int rv = h->send(ud, data, len);
    if (rv == WSK_EBACKPRESSURE) {
        s->flags |= WSK_SESSION_BLOCKED;
        return 0;
    }
    if (rv < 0)
        s->flags |= WSK_SESSION_FAILED;
    return rv;
}

/* Writes one frame: the header, then the payload, masked in pieces for a
 * client. */
static int out_frame(struct wsk_session *s, uint8_t first_byte, const uint8_t *payload, size_t len,
                     const struct wsk_session_handlers *h, void *ud)
{
    uint8_t key[4];
    const uint8_t *mask = NULL;
    if (is_client(s)) {
        arc4random_buf(key, sizeof key);
        mask = key;
    }
    uint8_t buf[4096];
    size_t hlen = wsk_frame_header_encode(buf, first_byte, len, mask);
    if (!mask) {
        /* Small frames go out in one piece, large payloads without a copy. */
        if (len <= sizeof buf - hlen) {
            if (len)
                memcpy(buf + hlen, payload, len);
            return out(s, buf, hlen + len, h, ud);
        }
        int rv = out(s, buf, hlen, h, ud);
        return rv ? rv : out(s, payload, len, h, ud);
    }
    size_t off = 0, at = hlen;
    do {
        size_t n = len - off < sizeof buf - at ? len - off : sizeof buf - at;
        if (n)
            wsk_mask_copy(buf + at, payload + off, n, mask, off);
        int rv = out(s, buf, at + n, h, ud);
        if (rv)
            return rv;
        off += n;
        at = 0;
    } while (off < len);
    return 0;
}

static int out_control(struct wsk_session *s, uint8_t opcode, const uint8_t *payload, size_t len,
                       const struct wsk_session_handlers *h, void *ud)
{
    return out_frame(s, (uint8_t)(WSK_FRAME_FIN | opcode), payload, len, h, ud);
}

static int ensure_aux(struct wsk_session *s)
{
    if (!s->aux && !(s->aux = malloc(AUX_SIZE)))
        return -ENOMEM;
    return 0;
}

/* ---- input ------------------------------------------------------------- */

/* Fails the session: sends code with a short reason unless our close went
 * out already (or memory ran out: the caller then drops the connection). */
static int fail(struct wsk_session *s, int error, unsigned code,
                const struct wsk_session_handlers *h, void *ud)
{
    bool send_close = !(s->flags & (WSK_SESSION_SENT_CLOSE | WSK_SESSION_FAILED));
    s->flags |= WSK_SESSION_FAILED | WSK_SESSION_SENT_CLOSE;
    s->flags &= (uint16_t)~S_PONG_HELD;
    s->code = (uint16_t)code;
    if (!send_close || error == -ENOMEM)
        return error;
    const char *why = error == WSK_EUTF8           ? "invalid UTF-8"
                      : error == WSK_EDEFLATE      ? "invalid compressed data"
                      : error == WSK_ETOOBIG       ? "message too big"
                      : code == WSK_CLOSE_PROTOCOL ? "protocol error"
                                                   : "";
    uint8_t payload[125];
    int n = wsk_close_payload_encode(payload, code, why, strlen(why));
    if (n < 0)
        return error;
    int rv = out_control(s, WSK_OP_CLOSE, payload, (size_t)n, h, ud);
    return rv < 0 ? rv : error;
}

static int msg_reserve(struct wsk_session *s, size_t len)
{
    size_t need = s->msg_len + len;
    if (need <= s->msg_cap)
        return 0;
    size_t cap = s->msg_cap ? s->msg_cap : 4096;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    uint8_t *p = realloc(s->msg, cap);
    if (!p)
        return -ENOMEM;
    s->msg = p;
    s->msg_cap = cap;
    return 0;
}

static int msg_append(struct wsk_session *s, const uint8_t *data, size_t len)
{
    /* Bytes read straight into the message buffer are already in place. */
    if (s->msg && data == s->msg + s->msg_len) {
        s->msg_len += len;
        return 0;
    }
    int rv = msg_reserve(s, len);
    if (rv < 0)
        return rv;
    memcpy(s->msg + s->msg_len, data, len);
    s->msg_len += len;
    return 0;
}

/* The message in s->msg is delivered: keep small buffers for the next one,
 * give big ones back. */
static void msg_done(struct wsk_session *s)
{
    s->msg_len = 0;
    if (s->msg_cap > BIG_BUFFER) {
        free(s->msg);
        s->msg = NULL;
        s->msg_cap = 0;
    }
}

static int deliver(const struct wsk_session_handlers *h, void *ud, uint8_t opcode,
                   const uint8_t *data, size_t len)
{
    if (!h->on_message)
        return 0;
    /* An empty message reassembled from nothing has no buffer: never hand out NULL. */
    return h->on_message(ud, (enum wsk_opcode)opcode, data ? data : (const uint8_t *)"", len);
}

/* A whole control frame. Returns 0 to go on, 1 to stop, or an error. */
static int on_control(struct wsk_session *s, uint8_t opcode, const uint8_t *data, size_t len,
                      uint16_t close_code, const struct wsk_session_handlers *h, void *ud)
{
    int rv = 0;
    switch (opcode) {
    case WSK_OP_PING:
        if (s->flags & WSK_SESSION_SENT_CLOSE) {
            /* Nothing may follow our close. */
        } else if (s->flags & WSK_SESSION_BLOCKED) {
            /* The caller's queue is full: answer only the latest ping. */
            if (ensure_aux(s) < 0)
                return fail(s, -ENOMEM, WSK_CLOSE_INTERNAL, h, ud);
            memcpy(s->aux + 125, data, len);
            s->pong_len = (uint8_t)len;
            s->flags |= S_PONG_HELD;
        } else if ((rv = out_control(s, WSK_OP_PONG, data, len, h, ud)) < 0) {
            return rv;
        }
        return h->on_ping && h->on_ping(ud, data, len) ? 1 : 0;
    case WSK_OP_PONG:
        return h->on_pong && h->on_pong(ud, data, len) ? 1 : 0;
    default: /* WSK_OP_CLOSE; the parser lets no other opcode through */
        s->flags |= WSK_SESSION_GOT_CLOSE;
        s->code = close_code;
        if (!(s->flags & WSK_SESSION_SENT_CLOSE)) {
            s->flags |= WSK_SESSION_PEER_CLOSED | WSK_SESSION_SENT_CLOSE;
            s->flags &= (uint16_t)~S_PONG_HELD;
            /* Echo the code (RFC 6455 5.5.1); an empty close gets an empty one. */
            uint8_t payload[2] = {(uint8_t)(close_code >> 8), (uint8_t)close_code};
            size_t n = close_code == WSK_CLOSE_NO_STATUS ? 0 : 2;
            if ((rv = out_control(s, WSK_OP_CLOSE, payload, n, h, ud)) < 0)
                return rv;
        }
        if (h->on_close)
            h->on_close(ud, close_code, len > 2 ? data + 2 : (const uint8_t *)"",
                        len > 2 ? len - 2 : 0);
        return 1;
    }
}

/* The inflate sink: append to the message, checking text as it grows. */
static int inflate_sink(void *arg, const uint8_t *data, size_t len)
{
    struct wsk_session *s = arg;
    if (s->zopcode == WSK_OP_TEXT && wsk_utf8_feed(&s->zutf8, data, len) != 0)
        return WSK_EUTF8;
    return msg_append(s, data, len);
}

static int on_compressed_chunk(struct wsk_session *s, const struct wsk_frame_chunk *ch,
                               const struct wsk_session_handlers *h, void *ud)
{
    if (ch->is_message_start) {
        s->msg_len = 0;
        s->zopcode = ch->msg_opcode;
        wsk_utf8_init(&s->zutf8);
    }
    int rv = wsk_deflate_decompress(s->deflate, ch->data, ch->len, ch->is_message_end,
                                    s->parser.max_message, inflate_sink, s);
    if (rv == 0 && ch->is_message_end && s->zopcode == WSK_OP_TEXT &&
        !wsk_utf8_is_complete(&s->zutf8))
        rv = WSK_EUTF8;
    if (rv < 0)
        return fail(s, rv,
                    rv == WSK_ETOOBIG ? WSK_CLOSE_TOO_BIG
                    : rv == -ENOMEM   ? WSK_CLOSE_INTERNAL
                                      : WSK_CLOSE_INVALID_DATA,
                    h, ud);
    if (!ch->is_message_end)
        return 0;
    rv = deliver(h, ud, s->zopcode, s->msg, s->msg_len) ? 1 : 0;
    msg_done(s);
    return rv;
}

/* One chunk from the parser. Returns 0 to go on, 1 to stop, or an error. */
static int on_chunk(struct wsk_session *s, const struct wsk_frame_chunk *ch,
                    const struct wsk_session_handlers *h, void *ud)
{
    if (ch->msg_opcode & 0x8) {
        if (ch->is_frame_start && ch->is_frame_end)
            return on_control(s, ch->msg_opcode, ch->data, ch->len, ch->close_code, h, ud);
        /* A control frame split across feeds: collect its <= 125 bytes. */
        if (ensure_aux(s) < 0)
            return fail(s, -ENOMEM, WSK_CLOSE_INTERNAL, h, ud);
        if (ch->is_frame_start)
            s->ctl_len = 0;
        memcpy(s->aux + s->ctl_len, ch->data, ch->len);
        s->ctl_len = (uint8_t)(s->ctl_len + ch->len);
        if (!ch->is_frame_end)
            return 0;
        return on_control(s, ch->msg_opcode, s->aux, s->ctl_len, ch->close_code, h, ud);
    }
    if (ch->is_compressed)
        return on_compressed_chunk(s, ch, h, ud);
    if (ch->is_message_start && ch->is_message_end)
        return deliver(h, ud, ch->msg_opcode, ch->data, ch->len) ? 1 : 0;
    if (ch->len && msg_append(s, ch->data, ch->len) < 0)
        return fail(s, -ENOMEM, WSK_CLOSE_INTERNAL, h, ud);
    if (ch->is_frame_end)
        s->flags &= (uint16_t)~S_ASSEMBLING;
    else
        s->flags |= S_ASSEMBLING;
    if (!ch->is_message_end)
        return 0;
    int rv = deliver(h, ud, ch->msg_opcode, s->msg, s->msg_len) ? 1 : 0;
    msg_done(s);
    return rv;
}

int64_t wsk_session_feed(struct wsk_session *s, uint8_t *data, size_t len,
                         const struct wsk_session_handlers *h, void *ud)
{
    size_t off = 0;
    while (off < len && !(s->flags & (WSK_SESSION_GOT_CLOSE | WSK_SESSION_FAILED))) {
        struct wsk_frame_chunk ch;
        bool has;
        int64_t n = wsk_frame_parse(&s->parser, data + off, len - off, &ch, &has);
        if (n < 0)
            return fail(s, (int)n, wsk_frame_parser_close_code(&s->parser), h, ud);
        off += (size_t)n;
        if (!has)
            continue;
        int rv = on_chunk(s, &ch, h, ud);
        if (rv < 0)
            return rv;
        if (rv)
            break;
    }
    return (int64_t)off;
}

uint8_t *wsk_session_read_target(struct wsk_session *s, size_t min, size_t *cap)
{
    if (!(s->flags & S_ASSEMBLING) || (s->flags & (WSK_SESSION_GOT_CLOSE | WSK_SESSION_FAILED)))
        return NULL;
    uint64_t left = wsk_frame_parser_payload_left(&s->parser);
    if (!left || left < min || left > SIZE_MAX || msg_reserve(s, (size_t)left) < 0)
        return NULL;
    *cap = (size_t)left;
    return s->msg + s->msg_len;
}

/* ---- sending ----------------------------------------------------------- */

/* Compressed output is framed one chunk behind, so that the last chunk,
 * known only when compression returns, carries FIN. */
struct zframer {
    struct wsk_session *s;
    const struct wsk_session_handlers *h;
    void *ud;
    uint8_t first_byte; /* of the next frame: RSV1 | opcode, then CONT */
    size_t held_len;
    uint8_t held[WSK_DEFLATE_CHUNK];
};

static int zframer_sink(void *arg, const uint8_t *data, size_t len)
{
    struct zframer *z = arg;
    if (z->held_len) {
        int rv = out_frame(z->s, z->first_byte, z->held, z->held_len, z->h, z->ud);
        if (rv)
            return rv;
        z->first_byte = WSK_OP_CONT;
    }
    memcpy(z->held, data, len);
    z->held_len = len;
    return 0;
}

static int check_send(const struct wsk_session *s, const struct wsk_session_handlers *h)
{
    if (!h || !h->send)
        return -EINVAL;
    if (s->flags & (WSK_SESSION_SENT_CLOSE | WSK_SESSION_FAILED))
        return WSK_ESTATE;
    return 0;
}

static int send_result(const struct wsk_session *s, int rv)
{
    if (rv)
        return rv;
    return (s->flags & WSK_SESSION_BLOCKED) ? WSK_EBACKPRESSURE : 0;
}

int wsk_session_send(struct wsk_session *s, enum wsk_opcode opcode, const void *data, size_t len,
                     const struct wsk_session_handlers *h, void *ud)
{
    if (opcode != WSK_OP_TEXT && opcode != WSK_OP_BINARY)
        return -EINVAL;
    int rv = check_send(s, h);
    if (rv)
        return rv;
    if (opcode == WSK_OP_TEXT && !wsk_utf8_valid(data, len))
        return WSK_EUTF8;
    if (!s->deflate || len < s->min_compress)
        return send_result(s, out_frame(s, (uint8_t)(WSK_FRAME_FIN | opcode), data, len, h, ud));
    struct zframer z = {s, h, ud, (uint8_t)(WSK_FRAME_RSV1 | opcode), 0, {0}};
    rv = wsk_deflate_compress(s->deflate, data, len, zframer_sink, &z);
    if (rv == 0)
        rv = out_frame(s, (uint8_t)(WSK_FRAME_FIN | z.first_byte), z.held, z.held_len, h, ud);
    else if (z.first_byte == WSK_OP_CONT)
        s->flags |= WSK_SESSION_FAILED; /* half a message went out: the stream is broken */
    return send_result(s, rv);
}

int wsk_session_ping(struct wsk_session *s, const void *data, size_t len,
                     const struct wsk_session_handlers *h, void *ud)
{
    if (len > 125)
        return WSK_ETOOBIG;
    int rv = check_send(s, h);
    if (rv)
        return rv;
    return send_result(s, out_control(s, WSK_OP_PING, data, len, h, ud));
}

int wsk_session_close(struct wsk_session *s, unsigned code, const char *reason, size_t reason_len,
                      const struct wsk_session_handlers *h, void *ud)
{
    int rv = check_send(s, h);
    if (rv)
        return rv;
    uint8_t payload[125];
    int n = wsk_close_payload_encode(payload, code, reason, reason_len);
    if (n < 0)
        return n;
    s->flags |= WSK_SESSION_SENT_CLOSE;
    s->flags &= (uint16_t)~S_PONG_HELD;
    return send_result(s, out_control(s, WSK_OP_CLOSE, payload, (size_t)n, h, ud));
}

int wsk_session_drained(struct wsk_session *s, const struct wsk_session_handlers *h, void *ud)
{
    s->flags &= (uint16_t)~WSK_SESSION_BLOCKED;
    if (!(s->flags & S_PONG_HELD))
        return 0;
    s->flags &= (uint16_t)~S_PONG_HELD;
    if (s->flags & (WSK_SESSION_SENT_CLOSE | WSK_SESSION_FAILED))
        return 0;
    return send_result(s, out_control(s, WSK_OP_PONG, s->aux + 125, s->pong_len, h, ud));
}
