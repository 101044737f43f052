/* RFC 6455 section 5: frame parser and encoder.
 *
 * The parser is a two-state machine driven by whatever bytes arrive:
 *
 *        +-----------+  header complete, len > 0   +-----------+
 *   ---> |  HEADER   | --------------------------> |  PAYLOAD  |
 *        | 2..14 B   | <-------------------------- | chunks    |
 *        +-----------+     frame payload done      +-----------+
 *              |   len == 0: one empty chunk            |
 *              +--> any violation --> FAILED <----------+
 *
 * Every header byte is checked the moment it arrives (fail fast): RSV bits,
 * reserved opcodes, fragmentation order and control-frame rules on the first
 * byte; the mask bit and control lengths on the second; length encoding and
 * limits when the extended length is complete. Payload is never copied: it
 * is unmasked where it lies and handed out as chunks, with text validated as
 * UTF-8 across frames and close payloads checked as they stream by, so the
 * parser's memory stays constant whatever the frame size.
 */
#include "wsk/proto.h"

#include <string.h>

#include "proto/mask_internal.h"

enum {
    STATE_HEADER = 0,
    STATE_PAYLOAD = 1,
    STATE_FAILED = 2,
};

enum {
    FLAG_CLIENT = 0x01,     /* we are the client: frames must be unmasked */
    FLAG_NO_UTF8 = 0x02,    /* the caller validates text itself */
    FLAG_MASKED = 0x04,     /* the current frame carries a mask */
    FLAG_FIN = 0x08,        /* the current frame has FIN */
    FLAG_COMPRESSED = 0x10, /* the current data message had RSV1 on its first frame */
    FLAG_MSG_START = 0x20,  /* the current frame starts a data message */
};

#define DEFAULT_LIMIT (16u * 1024 * 1024)

bool wsk_close_code_is_valid(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

void wsk_frame_config_init(struct wsk_frame_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->max_frame = DEFAULT_LIMIT;
    cfg->max_message = DEFAULT_LIMIT;
}

void wsk_frame_parser_init(struct wsk_frame_parser *p, const struct wsk_frame_config *cfg)
{
    struct wsk_frame_config defaults;
    if (!cfg) {
        wsk_frame_config_init(&defaults);
        cfg = &defaults;
    }
    memset(p, 0, sizeof *p);
    p->max_frame = cfg->max_frame ? cfg->max_frame : DEFAULT_LIMIT;
    p->max_message = cfg->max_message ? cfg->max_message : DEFAULT_LIMIT;
    p->rsv_allowed = cfg->rsv_allowed & 0x70;
    if (cfg->role == WSK_ROLE_CLIENT)
        p->flags |= FLAG_CLIENT;
    if (cfg->no_utf8_check)
        p->flags |= FLAG_NO_UTF8;
}

uint64_t wsk_frame_parser_payload_left(const struct wsk_frame_parser *p)
{
    return p->state == STATE_PAYLOAD ? p->frame_len - p->frame_off : 0;
}

uint16_t wsk_frame_parser_close_code(const struct wsk_frame_parser *p)
{
    return p->state == STATE_FAILED ? p->error_close : 0;
}

static int error_for(uint16_t close_code)
{
    switch (close_code) {
    case WSK_CLOSE_INVALID_DATA:
        return WSK_EUTF8;
    case WSK_CLOSE_TOO_BIG:
        return WSK_ETOOBIG;
    default:
        return WSK_EPROTO;
    }
}

static int fail(struct wsk_frame_parser *p, uint16_t close_code)
{
    p->state = STATE_FAILED;
    p->error_close = close_code;
    return error_for(close_code);
}

static bool is_control(uint8_t opcode)
{
    return (opcode & 0x8) != 0;
}

/* Header length implied by the second byte: 2, plus 2 or 8 for an extended
 * length, plus 4 for a mask. */
static uint8_t header_need(uint8_t b1)
{
    uint8_t len7 = b1 & 0x7F;
    return (uint8_t)(2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((b1 & 0x80) ? 4 : 0));
}

/* Checks the first byte: RFC 6455 5.2 (RSV, opcodes), 5.4 (fragmentation),
 * 5.5 (control frames are not fragmented), RFC 7692 6.1 (RSV1 only on a
 * message's first frame). */
static int check_byte0(struct wsk_frame_parser *p, uint8_t b0)
{
    uint8_t opcode = b0 & 0x0F;
    uint8_t rsv = b0 & 0x70;
    if (rsv & ~p->rsv_allowed)
        return fail(p, WSK_CLOSE_PROTOCOL);
    switch (opcode) {
    case WSK_OP_CONT:
        if (!p->msg_opcode || rsv)
            return fail(p, WSK_CLOSE_PROTOCOL);
        break;
    case WSK_OP_TEXT:
    case WSK_OP_BINARY:
        if (p->msg_opcode)
            return fail(p, WSK_CLOSE_PROTOCOL);
        break;
    case WSK_OP_CLOSE:
    case WSK_OP_PING:
    case WSK_OP_PONG:
        if (!(b0 & WSK_FRAME_FIN) || rsv)
            return fail(p, WSK_CLOSE_PROTOCOL);
        break;
    default:
        return fail(p, WSK_CLOSE_PROTOCOL);
    }
    return 0;
}

static int check_byte1(struct wsk_frame_parser *p, uint8_t b1)
{
    bool masked = (b1 & 0x80) != 0;
    uint8_t len7 = b1 & 0x7F;
    /* RFC 6455 5.1: clients mask every frame, servers never do. */
    if (masked == ((p->flags & FLAG_CLIENT) != 0))
        return fail(p, WSK_CLOSE_PROTOCOL);
    if (is_control(p->hdr[0] & 0x0F)) {
        if (len7 > 125)
            return fail(p, WSK_CLOSE_PROTOCOL);
        /* RFC 6455 5.5.1: a close body, if any, starts with a 2-byte code. */
        if ((p->hdr[0] & 0x0F) == WSK_OP_CLOSE && len7 == 1)
            return fail(p, WSK_CLOSE_PROTOCOL);
    }
    return 0;
}

/* Called once the whole header is in p->hdr. */
static int begin_frame(struct wsk_frame_parser *p)
{
    uint8_t b0 = p->hdr[0], b1 = p->hdr[1];
    uint8_t len7 = b1 & 0x7F;
    uint64_t len = len7;
    if (len7 == 126) {
        len = (uint64_t)p->hdr[2] << 8 | p->hdr[3];
        if (len < 126) /* RFC 6455 5.2: the minimal number of bytes MUST be used */
            return fail(p, WSK_CLOSE_PROTOCOL);
    } else if (len7 == 127) {
        len = 0;
        for (int i = 2; i < 10; i++)
            len = len << 8 | p->hdr[i];
        if ((len >> 63) || len <= 0xFFFF)
            return fail(p, WSK_CLOSE_PROTOCOL);
    }
    uint8_t opcode = b0 & 0x0F;
    if (len > p->max_frame)
        return fail(p, WSK_CLOSE_TOO_BIG);
    p->flags &= (uint8_t) ~(FLAG_MASKED | FLAG_FIN | FLAG_MSG_START);
    if (b1 & 0x80)
        p->flags |= FLAG_MASKED;
    if (b0 & WSK_FRAME_FIN)
        p->flags |= FLAG_FIN;
    p->opcode = opcode;
    p->frame_len = len;
    p->frame_off = 0;
    if (opcode == WSK_OP_TEXT || opcode == WSK_OP_BINARY) {
        p->msg_opcode = opcode;
        p->msg_len = 0;
        p->flags |= FLAG_MSG_START;
        p->flags &= (uint8_t)~FLAG_COMPRESSED;
        if (b0 & WSK_FRAME_RSV1)
            p->flags |= FLAG_COMPRESSED;
        wsk_utf8_init(&p->utf8);
    }
    if (!is_control(opcode) && len > p->max_message - p->msg_len)
        return fail(p, WSK_CLOSE_TOO_BIG);
    if (opcode == WSK_OP_CLOSE) {
        p->close_len = 0;
        p->close_code = 0;
        wsk_utf8_init(&p->utf8_ctl);
    }
    p->state = STATE_PAYLOAD;
    return 0;
}

/* Validates a piece of payload that was just unmasked. */
static int check_payload(struct wsk_frame_parser *p, const uint8_t *data, size_t n)
{
    if (p->opcode == WSK_OP_CLOSE) {
        while (n && p->close_len < 2) {
            p->close_code = (uint16_t)(p->close_code << 8 | *data++);
            n--;
            if (++p->close_len == 2 && !wsk_close_code_is_valid(p->close_code))
                return fail(p, WSK_CLOSE_PROTOCOL);
        }
        if (n && wsk_utf8_feed(&p->utf8_ctl, data, n) != 0)
            return fail(p, WSK_CLOSE_INVALID_DATA);
    } else if (!is_control(p->opcode) && p->msg_opcode == WSK_OP_TEXT &&
               !(p->flags & (FLAG_NO_UTF8 | FLAG_COMPRESSED))) {
        if (wsk_utf8_feed(&p->utf8, data, n) != 0)
            return fail(p, WSK_CLOSE_INVALID_DATA);
    }
    return 0;
}

/* Hands out up to avail bytes of payload at in as one chunk. */
static int emit(struct wsk_frame_parser *p, uint8_t *in, size_t avail,
                struct wsk_frame_chunk *chunk)
{
    uint64_t left = p->frame_len - p->frame_off;
    size_t n = avail < left ? avail : (size_t)left;
    bool control = is_control(p->opcode);
    if (n && (p->flags & FLAG_MASKED))
        wsk_mask(in, n, p->hdr + header_need(p->hdr[1]) - 4, p->frame_off);
    int rv = check_payload(p, in, n);
    if (rv)
        return rv;

    chunk->data = in;
    chunk->len = n;
    chunk->frame_len = p->frame_len;
    chunk->opcode = p->opcode;
    chunk->msg_opcode = control ? p->opcode : p->msg_opcode;
    chunk->is_frame_start = p->frame_off == 0;
    p->frame_off += n;
    chunk->is_frame_end = p->frame_off == p->frame_len;
    chunk->is_fin = (p->flags & FLAG_FIN) != 0;
    chunk->is_compressed = !control && (p->flags & FLAG_COMPRESSED);
    chunk->close_code = 0;
    if (control) {
        chunk->is_message_start = chunk->is_frame_start;
        chunk->is_message_end = chunk->is_frame_end;
    } else {
        p->msg_len += n;
        chunk->is_message_start = chunk->is_frame_start && (p->flags & FLAG_MSG_START);
        chunk->is_message_end = chunk->is_frame_end && chunk->is_fin;
    }

    if (chunk->is_frame_end) {
        if (p->opcode == WSK_OP_CLOSE) {
            if (p->frame_len && !wsk_utf8_is_complete(&p->utf8_ctl))
                return fail(p, WSK_CLOSE_INVALID_DATA);
            chunk->close_code = p->frame_len ? p->close_code : WSK_CLOSE_NO_STATUS;
        } else if (!control && chunk->is_message_end) {
            if (p->msg_opcode == WSK_OP_TEXT && !(p->flags & (FLAG_NO_UTF8 | FLAG_COMPRESSED)) &&
                !wsk_utf8_is_complete(&p->utf8))
                return fail(p, WSK_CLOSE_INVALID_DATA);
            p->msg_opcode = 0;
        }
        p->state = STATE_HEADER;
        p->hdr_len = 0;
    }
    return (int)n;
}

/* True when all of a short buffer is ASCII, hence valid UTF-8. */
static inline bool is_ascii_small(const uint8_t *s, size_t n)
{
    uint64_t acc = 0;
    size_t i = 0;
    for (; n - i >= 8; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        acc |= w;
    }
    for (; i < n; i++)
        acc |= s[i];
    return (acc & 0x8080808080808080u) == 0;
}

/* The common case in one step: a whole unfragmented text or binary frame
 * with a 7-bit length and no RSV bits, entirely in the input, while no
 * message is open. Every check the general path makes still applies; the
 * ones that cannot fail for such a frame (RSV, opcode order, length
 * encoding) are implied by the tests that select it. The parser's state
 * does not change: it is between frames before and after. Returns the bytes
 * consumed, 0 when the frame is not such a frame, or an error. */
static int64_t parse_small(struct wsk_frame_parser *p, uint8_t *in, size_t len,
                           struct wsk_frame_chunk *chunk)
{
    uint8_t b0 = in[0], b1 = in[1];
    size_t n = b1 & 0x7F;
    bool masked = (b1 & 0x80) != 0;
    size_t hl = masked ? 6 : 2;
    if ((b0 != (WSK_FRAME_FIN | WSK_OP_TEXT) && b0 != (WSK_FRAME_FIN | WSK_OP_BINARY)) ||
        n >= 126 || masked == ((p->flags & FLAG_CLIENT) != 0) || p->msg_opcode ||
        len - 2 < hl - 2 + n || n > p->max_frame || n > p->max_message)
        return 0;
    uint8_t *data = in + hl;
    if (masked)
        wsk__mask_scalar(data, data, n, in + 2, 0); /* inlined: cheaper than the dispatch */
    uint8_t opcode = b0 & 0x0F;
    if (opcode == WSK_OP_TEXT && !(p->flags & FLAG_NO_UTF8) && !is_ascii_small(data, n) &&
        !wsk_utf8_valid(data, n))
        return fail(p, WSK_CLOSE_INVALID_DATA);
    chunk->data = data;
    chunk->len = n;
    chunk->frame_len = n;
    chunk->opcode = opcode;
    chunk->msg_opcode = opcode;
    chunk->is_frame_start = true;
    chunk->is_frame_end = true;
    chunk->is_fin = true;
    chunk->is_message_start = true;
    chunk->is_message_end = true;
    chunk->is_compressed = false;
    chunk->close_code = 0;
    return (int64_t)(hl + n);
}

int64_t wsk_frame_parse(struct wsk_frame_parser *p, uint8_t *in, size_t len,
                        struct wsk_frame_chunk *chunk, bool *has_chunk)
{
    size_t off = 0;
    *has_chunk = false;
    if (p->state == STATE_FAILED)
        return error_for(p->error_close);

    if (p->state == STATE_HEADER && p->hdr_len == 0 && len >= 2) {
        int64_t small = parse_small(p, in, len, chunk);
        if (small) {
            *has_chunk = small > 0;
            return small;
        }
    }

    if (p->state == STATE_HEADER && p->hdr_len == 0 && len >= 2 && len >= header_need(in[1])) {
        /* Fast path: the whole header is here. The same checks, in the same
         * order, as byte by byte below. */
        uint8_t need = header_need(in[1]);
        memcpy(p->hdr, in, need);
        p->hdr_len = need;
        int rv = check_byte0(p, in[0]);
        if (!rv)
            rv = check_byte1(p, in[1]);
        if (!rv)
            rv = begin_frame(p);
        if (rv)
            return rv;
        off = need;
    } else if (p->state == STATE_HEADER) {
        while (off < len) {
            uint8_t b = in[off++];
            p->hdr[p->hdr_len++] = b;
            int rv = 0;
            if (p->hdr_len == 1)
                rv = check_byte0(p, b);
            else if (p->hdr_len == 2)
                rv = check_byte1(p, b);
            if (rv)
                return rv;
            if (p->hdr_len >= 2 && p->hdr_len == header_need(p->hdr[1])) {
                rv = begin_frame(p);
                if (rv)
                    return rv;
                break;
            }
        }
        if (p->state == STATE_HEADER)
            return (int64_t)off;
    }
    if (off && p->frame_len == 0) {
        /* A header just completed an empty frame: its one (empty) chunk. */
        int rv = emit(p, in + off, 0, chunk);
        if (rv < 0)
            return rv;
        *has_chunk = true;
        return (int64_t)off;
    }

    if (off == len)
        return (int64_t)off;
    int n = 0;
    /* emit() takes at most INT_MAX bytes per call so its count fits its return. */
    size_t avail = len - off;
    if (avail > 0x40000000u)
        avail = 0x40000000u;
    n = emit(p, in + off, avail, chunk);
    if (n < 0)
        return n;
    *has_chunk = true;
    return (int64_t)(off + (size_t)n);
}

size_t wsk_frame_header_encode(uint8_t out[WSK_FRAME_HEADER_MAX], uint8_t first_byte,
                               uint64_t payload_len, const uint8_t *mask)
{
    size_t n = 2;
    uint8_t mask_bit = mask ? 0x80 : 0;
    out[0] = first_byte;
    if (payload_len < 126) {
        out[1] = (uint8_t)(mask_bit | payload_len);
    } else if (payload_len <= 0xFFFF) {
        out[1] = mask_bit | 126;
        out[2] = (uint8_t)(payload_len >> 8);
        out[3] = (uint8_t)payload_len;
        n = 4;
    } else {
        out[1] = mask_bit | 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)(payload_len >> (56 - 8 * i));
        n = 10;
    }
    if (mask) {
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

int64_t wsk_frame_encode(uint8_t *out, size_t cap, uint8_t first_byte, const uint8_t *payload,
                         size_t payload_len, const uint8_t *mask)
{
    uint8_t hdr[WSK_FRAME_HEADER_MAX];
    size_t hlen = wsk_frame_header_encode(hdr, first_byte, payload_len, mask);
    if (cap < hlen || cap - hlen < payload_len)
        return WSK_ENOSPC;
    memcpy(out, hdr, hlen);
    if (payload_len) {
        if (mask)
            wsk_mask_copy(out + hlen, payload, payload_len, mask, 0);
        else
            memcpy(out + hlen, payload, payload_len);
    }
    return (int64_t)(hlen + payload_len);
}

int wsk_close_payload_encode(uint8_t out[125], unsigned code, const char *reason, size_t reason_len)
{
    if (code == 0)
        return reason_len ? WSK_EPROTO : 0;
    if (!wsk_close_code_is_valid(code))
        return WSK_EPROTO;
    if (reason_len > 123)
        return WSK_ETOOBIG;
    if (reason_len && !wsk_utf8_valid((const uint8_t *)reason, reason_len))
        return WSK_EUTF8;
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    if (reason_len)
        memcpy(out + 2, reason, reason_len);
    return (int)(2 + reason_len);
}
