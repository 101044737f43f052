/* Fuzz target for the danmaku packet decoder and encoder.
 *
 * The first input byte picks the configuration (limit, type filter, buffer
 * size); the rest is a byte stream from a peer. It is decoded whole, then
 * again in splits taken from the input itself, and both runs must give the
 * same packets and the same error. Each packet decoded from the whole
 * stream must be exactly the bytes it came from when encoded again, end in
 * a NUL, and respect the limit. The stream's bytes are also encoded as one
 * body and must decode back to themselves. ASan catches any read past the
 * input (the replay program passes an exact-size copy). abort() on any
 * inconsistency. */
#include <stdlib.h>
#include <string.h>

#include "wsk/danmaku.h"

static void check(bool ok)
{
    if (!ok)
        abort();
}

struct run {
    uint8_t *bodies; /* every body, each followed by its type's low byte */
    size_t bodies_len;
    size_t count;
    int error;
    bool is_idle;
};

static void decode(const uint8_t *in, size_t len, const struct wsk_danmaku_config *cfg,
                   uint8_t *buf, size_t cap, const uint8_t *splits, size_t num_splits,
                   struct run *r)
{
    struct wsk_danmaku_decoder d;
    size_t off = 0, split_i = 0;

    r->bodies_len = r->count = 0;
    r->error = 0;
    wsk_danmaku_decoder_init(&d, cfg, buf, cap);
    while (off < len) {
        size_t piece = len - off;
        if (num_splits) {
            size_t want = (size_t)splits[split_i++ % num_splits] % 64 + 1;
            piece = want < piece ? want : piece;
        }
        size_t used = 0;
        for (;;) {
            struct wsk_danmaku_packet pkt;
            bool has_packet;
            size_t start = off + used;
            int64_t n = wsk_danmaku_decode(&d, in + start, piece - used, &pkt, &has_packet);
            if (n < 0) {
                check(n == WSK_EPROTO || n == WSK_ETOOBIG);
                check(!has_packet && wsk_danmaku_decoder_reason(&d) != NULL);
                r->error = (int)n;
                r->is_idle = wsk_danmaku_decoder_is_idle(&d);
                check(!r->is_idle);
                return;
            }
            check((size_t)n <= piece - used);
            used += (size_t)n;
            if (!has_packet) {
                check(used == piece);
                break;
            }
            check(pkt.type == WSK_DANMAKU_TYPE_CLIENT || pkt.type == WSK_DANMAKU_TYPE_SERVER);
            check(!cfg->type || pkt.type == cfg->type);
            check(pkt.body[pkt.body_len] == '\0');
            check(WSK_DANMAKU_PACKET_LEN(pkt.body_len) <= cfg->max_packet);
            check(pkt.body_len < cap);
            /* Whole in the input: the packet's own bytes, encoded again. */
            if (!num_splits) {
                size_t plen = WSK_DANMAKU_PACKET_LEN(pkt.body_len);
                check((size_t)n == plen && start + plen <= len);
                check(pkt.body == (const char *)in + start + WSK_DANMAKU_HEADER_LEN);
                uint8_t *again = malloc(plen);
                check(again != NULL);
                check(wsk_danmaku_encode(again, plen, pkt.type, pkt.body, pkt.body_len) ==
                      (int64_t)plen);
                check(memcmp(again, in + start, plen) == 0);
                free(again);
            }
            memcpy(r->bodies + r->bodies_len, pkt.body, pkt.body_len);
            r->bodies_len += pkt.body_len;
            r->bodies[r->bodies_len++] = (uint8_t)pkt.type;
            r->count++;
            if (used == piece)
                break;
        }
        off += piece;
    }
    check(wsk_danmaku_decoder_reason(&d) == NULL);
    r->is_idle = wsk_danmaku_decoder_is_idle(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    const uint8_t *in = data + 1;
    size_t len = size - 1;
    struct wsk_danmaku_config cfg;

    wsk_danmaku_config_init(&cfg);
    static const size_t limits[] = {13, 40, 300, 4096};
    cfg.max_packet = limits[mode & 3];
    cfg.type = (mode & 4) ? WSK_DANMAKU_TYPE_SERVER : (mode & 8) ? WSK_DANMAKU_TYPE_CLIENT : 0;
    size_t cap = (mode & 16) ? cfg.max_packet / 2 : cfg.max_packet;

    uint8_t *buf = malloc(cap), *bodies_a = malloc(len + 1), *bodies_b = malloc(len + 1);
    check(buf && bodies_a && bodies_b);
    struct run whole = {bodies_a, 0, 0, 0, false}, split = {bodies_b, 0, 0, 0, false};
    decode(in, len, &cfg, buf, cap, NULL, 0, &whole);
    decode(in, len, &cfg, buf, cap, in, len, &split);
    check(whole.error == split.error && whole.count == split.count);
    check(whole.bodies_len == split.bodies_len);
    check(whole.bodies_len == 0 || memcmp(bodies_a, bodies_b, whole.bodies_len) == 0);
    check(whole.is_idle == split.is_idle);
    free(buf);
    free(bodies_a);
    free(bodies_b);

    /* The input as a body: encoded, then decoded whole and byte by byte. */
    size_t plen = WSK_DANMAKU_PACKET_LEN(len);
    uint8_t *packet = malloc(plen), *big = malloc(plen);
    check(packet && big);
    check(wsk_danmaku_encode(packet, plen - 1, WSK_DANMAKU_TYPE_CLIENT, (const char *)in, len) ==
          WSK_ENOSPC);
    check(wsk_danmaku_encode(packet, plen, WSK_DANMAKU_TYPE_CLIENT, (const char *)in, len) ==
          (int64_t)plen);
    struct wsk_danmaku_decoder d;
    struct wsk_danmaku_packet pkt;
    bool has_packet = false;
    wsk_danmaku_config_init(&cfg);
    cfg.max_packet = plen;
    wsk_danmaku_decoder_init(&d, &cfg, big, plen);
    check(wsk_danmaku_decode(&d, packet, plen, &pkt, &has_packet) == (int64_t)plen);
    check(has_packet && pkt.body_len == len && pkt.type == WSK_DANMAKU_TYPE_CLIENT);
    check(len == 0 || memcmp(pkt.body, in, len) == 0);
    wsk_danmaku_decoder_init(&d, &cfg, big, plen);
    for (size_t i = 0; i < plen; i++) {
        check(wsk_danmaku_decode(&d, packet + i, 1, &pkt, &has_packet) == 1);
        check(has_packet == (i == plen - 1));
    }
    check(pkt.body_len == len && (len == 0 || memcmp(pkt.body, in, len) == 0));
    check(wsk_danmaku_decoder_is_idle(&d));
    free(packet);
    free(big);
    return 0;
}
