/* Fuzz target for the frame parser. The first byte picks the role, the
 * limits and the RSV1 permission; the rest is the stream. The stream is
 * parsed whole and in splits derived from the data, and both parses must
 * yield the same payload bytes, the same message boundaries and the same
 * error. Every chunk must point inside the input. */
#include <stdlib.h>
#include <string.h>

#include "wsk/proto.h"

struct digest {
    uint64_t hash; /* FNV-1a over payload bytes and boundary markers */
    size_t bytes;  /* payload bytes */
    size_t messages;
    int error;
    uint16_t close_code;
};

struct pending {
    uint64_t hash;
    size_t bytes;
};

static void mix(uint64_t *h, uint8_t b)
{
    *h = (*h ^ b) * 0x100000001b3ull;
}

static void parse(const uint8_t *data, size_t size, uint8_t opts, const uint8_t *cuts, size_t ncuts,
                  struct digest *d)
{
    struct wsk_frame_config cfg;
    wsk_frame_config_init(&cfg);
    cfg.role = (opts & 1) ? WSK_ROLE_CLIENT : WSK_ROLE_SERVER;
    if (opts & 2)
        cfg.rsv_allowed = WSK_FRAME_RSV1;
    if (opts & 4) {
        cfg.max_frame = 64;
        cfg.max_message = 200;
    }
    struct wsk_frame_parser p;
    wsk_frame_parser_init(&p, &cfg);
    memset(d, 0, sizeof *d);
    d->hash = 0xcbf29ce484222325ull;
    uint8_t *buf = malloc(size ? size : 1);
    if (size)
        memcpy(buf, data, size);
    size_t pos = 0, cut = 0;
    struct pending msg = {0, 0}, ctl = {0, 0};
    while (pos < size) {
        size_t piece = size - pos;
        if (ncuts) {
            size_t c = 1 + cuts[cut++ % ncuts] % 17;
            if (c < piece)
                piece = c;
        }
        size_t end = pos + piece;
        while (pos < end) {
            struct wsk_frame_chunk ch;
            bool has;
            int64_t n = wsk_frame_parse(&p, buf + pos, end - pos, &ch, &has);
            if (n < 0) {
                d->error = (int)n;
                d->close_code = wsk_frame_parser_close_code(&p);
                if (d->close_code != 1002 && d->close_code != 1007 && d->close_code != 1009)
                    abort();
                free(buf);
                return;
            }
            if ((size_t)n > end - pos)
                abort();
            if (has) {
                if (ch.len && (ch.data < buf + pos || ch.data + ch.len > buf + pos + (size_t)n))
                    abort();
                /* Only whole messages count: how much of a broken message was
                 * handed out before the error depends on the splits. Control
                 * frames interleave with data, so each has its own pending. */
                struct pending *pd = (ch.msg_opcode & 0x8) ? &ctl : &msg;
                if (ch.is_message_start) {
                    pd->hash = 0xcbf29ce484222325ull;
                    pd->bytes = 0;
                }
                for (size_t i = 0; i < ch.len; i++)
                    mix(&pd->hash, ch.data[i]);
                pd->bytes += ch.len;
                if (ch.is_message_end) {
                    mix(&pd->hash, (uint8_t)(0xF0 | ch.msg_opcode));
                    mix(&pd->hash, (uint8_t)ch.close_code);
                    d->hash ^= pd->hash + d->messages;
                    d->bytes += pd->bytes;
                    d->messages++;
                }
            } else if (n == 0) {
                abort(); /* no progress and no chunk: the caller would spin */
            }
            pos += (size_t)n;
        }
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t opts = data[0];
    struct digest whole, split, bytes;
    parse(data + 1, size - 1, opts, NULL, 0, &whole);
    parse(data + 1, size - 1, opts, data, size, &split);
    static const uint8_t one = 0;
    parse(data + 1, size - 1, opts, &one, 1, &bytes);
    if (memcmp(&whole, &split, sizeof whole) || memcmp(&whole, &bytes, sizeof whole))
        abort();
    return 0;
}
