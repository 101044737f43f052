/* Douyu danmaku packets (wsk/danmaku.h): the encoder and an incremental
 * decoder. The STT text inside the packets is stt.c's.
 *
 * The decoder is a two-state machine driven by whatever bytes arrive:
 *
 *        +-----------+  12 bytes, all checked      +-----------+
 *   ---> |  HEADER   | --------------------------> |   BODY    |
 *        | 0..12 B   | <-------------------------- | into buf  |
 *        +-----------+  body and NUL complete      +-----------+
 *              |      (or whole in the input:           |
 *              |       handed out in place)             |
 *              +--> any violation --> FAILED <----------+
 *
 * Each header byte is checked the moment it arrives: the length against 9
 * and the limits once its 4 bytes are in, the copy of the length on the
 * 8th byte, the type on the 10th, the two zero bytes on theirs. So a peer
 * that announces a 4 GiB packet fails after 4 bytes, and nothing is ever
 * read into the buffer that it could not hold. A body that lies whole in
 * the input is handed out where it lies; only a body split across feeds is
 * copied, once, into the caller's buffer.
 *
 * Douyu's notes for third-party clients call the encryption and reserved
 * bytes unused and 0; a packet with either set is refused rather than
 * misread, as is anything else the format does not allow.
 */
#include "wsk/danmaku.h"

#include <errno.h>
#include <string.h>

enum {
    STATE_HEADER = 0,
    STATE_BODY = 1,
    STATE_FAILED = 2,
};

/* L counts the second length (4), the type (2), two zero bytes and the
 * body's NUL: 9 for an empty body. */
#define MIN_LENGTH 9u

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static bool is_known_type(uint16_t type)
{
    return type == WSK_DANMAKU_TYPE_CLIENT || type == WSK_DANMAKU_TYPE_SERVER;
}

int64_t wsk_danmaku_encode(uint8_t *out, size_t cap, uint16_t type, const char *body,
                           size_t body_len)
{
    if (!is_known_type(type))
        return -EINVAL;
    if (body_len > UINT32_MAX - MIN_LENGTH || body_len > SIZE_MAX - WSK_DANMAKU_HEADER_LEN - 1)
        return WSK_ETOOBIG;
    size_t total = WSK_DANMAKU_PACKET_LEN(body_len);
    if (cap < total)
        return WSK_ENOSPC;
    /* memmove: the body may already be in place, written by an STT writer. */
    if (body_len)
        memmove(out + WSK_DANMAKU_HEADER_LEN, body, body_len);
    uint32_t length = (uint32_t)(body_len + MIN_LENGTH);
    put_le32(out, length);
    put_le32(out + 4, length);
    out[8] = (uint8_t)type;
    out[9] = (uint8_t)(type >> 8);
    out[10] = 0; /* encryption: none */
    out[11] = 0; /* reserved */
    out[WSK_DANMAKU_HEADER_LEN + body_len] = 0;
    return (int64_t)total;
}

void wsk_danmaku_config_init(struct wsk_danmaku_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->max_packet = WSK_DANMAKU_DEFAULT_MAX_PACKET;
}

void wsk_danmaku_decoder_init(struct wsk_danmaku_decoder *d, const struct wsk_danmaku_config *cfg,
                              uint8_t *buf, size_t cap)
{
    memset(d, 0, sizeof *d);
    d->buf = buf;
    d->cap = buf ? cap : 0;
    d->max_packet = cfg && cfg->max_packet ? cfg->max_packet : WSK_DANMAKU_DEFAULT_MAX_PACKET;
    d->want_type = cfg ? cfg->type : 0;
    d->state = STATE_HEADER;
}

bool wsk_danmaku_decoder_is_idle(const struct wsk_danmaku_decoder *d)
{
    return d->state == STATE_HEADER && d->hdr_len == 0;
}

const char *wsk_danmaku_decoder_reason(const struct wsk_danmaku_decoder *d)
{
    return d->state == STATE_FAILED ? d->reason : NULL;
}

static int fail(struct wsk_danmaku_decoder *d, int error, const char *reason)
{
    d->state = STATE_FAILED;
    d->error = error;
    d->reason = reason;
    return error;
}

/* Checks header byte i, just stored, with the bytes before it. */
static int check_header_byte(struct wsk_danmaku_decoder *d, unsigned i)
{
    const uint8_t *h = d->hdr;
    uint32_t length;
    uint16_t type;

    switch (i) {
    case 3:
        length = get_le32(h);
        if (length < MIN_LENGTH)
            return fail(d, WSK_EPROTO, "length below 9");
        if ((uint64_t)length + 4 > d->max_packet)
            return fail(d, WSK_ETOOBIG, "packet larger than the limit");
        if (length - 8 > d->cap)
            return fail(d, WSK_ETOOBIG, "packet larger than the decoder's buffer");
        break;
    case 7:
        if (get_le32(h + 4) != get_le32(h))
            return fail(d, WSK_EPROTO, "the two lengths differ");
        break;
    case 9:
        type = (uint16_t)(h[8] | h[9] << 8);
        if (!is_known_type(type))
            return fail(d, WSK_EPROTO, "unknown packet type (not 689 or 690)");
        if (d->want_type && type != d->want_type)
            return fail(d, WSK_EPROTO,
                        type == WSK_DANMAKU_TYPE_CLIENT ? "client packet (689) from the server"
                                                        : "server packet (690) from the client");
        break;
    case 10:
        if (h[10] != 0)
            return fail(d, WSK_EPROTO, "encrypted packet (encryption byte not 0)");
        break;
    case 11:
        if (h[11] != 0)
            return fail(d, WSK_EPROTO, "reserved byte not 0");
        break;
    default:
        break;
    }
    return 0;
}

/* The body and its NUL are complete at body: hand the packet out. */
static int64_t finish_packet(struct wsk_danmaku_decoder *d, const uint8_t *body, size_t consumed,
                             struct wsk_danmaku_packet *pkt, bool *has_packet)
{
    if (body[d->body_need - 1] != 0)
        return fail(d, WSK_EPROTO, "no NUL at the end of the body");
    pkt->type = d->type;
    pkt->body = (const char *)body;
    pkt->body_len = d->body_need - 1;
    d->state = STATE_HEADER;
    d->hdr_len = 0;
    *has_packet = true;
    return (int64_t)consumed;
}

int64_t wsk_danmaku_decode(struct wsk_danmaku_decoder *d, const uint8_t *in, size_t len,
                           struct wsk_danmaku_packet *pkt, bool *has_packet)
{
    size_t off = 0;
    int rv;

    *has_packet = false;
    if (d->state == STATE_FAILED)
        return d->error;
    if (d->state == STATE_HEADER) {
        while (d->hdr_len < WSK_DANMAKU_HEADER_LEN) {
            if (off == len)
                return (int64_t)off;
            d->hdr[d->hdr_len] = in[off++];
            if ((rv = check_header_byte(d, d->hdr_len++)) < 0)
                return rv;
        }
        d->body_need = get_le32(d->hdr) - 8;
        d->body_have = 0;
        d->type = (uint16_t)(d->hdr[8] | d->hdr[9] << 8);
        if (len - off >= d->body_need)
            return finish_packet(d, in + off, off + d->body_need, pkt, has_packet);
        d->state = STATE_BODY;
    }
    size_t n = d->body_need - d->body_have;
    if (n > len - off)
        n = len - off;
    if (n > 0) {
        memcpy(d->buf + d->body_have, in + off, n);
        d->body_have += n;
        off += n;
    }
    if (d->body_have < d->body_need)
        return (int64_t)off;
    return finish_packet(d, d->buf, off, pkt, has_packet);
}
