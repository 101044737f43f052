/* Fuzz target for the permessage-deflate receive path. Byte 0 picks the
 * window bits (8 + low 3 bits), context takeover (0x08), the role (0x10) and
 * the number of messages (1 + the top 3 bits); byte 1 the limit
 * (byte * 61 bytes, so 0 to 15555) and the compressor's mem_level; the rest
 * is compressed data: every message but the last is a length byte and that
 * many bytes, the last one takes what remains.
 *
 * The messages are decompressed fed whole, in splits derived from the data,
 * and one byte at a time: each message must end with the same result and,
 * when it succeeds, the same bytes. One exception: zlib accepts a distance
 * reaching past the window into the output of the same inflate() call, so
 * with a window below 15 bits a stream that reaches too far back may fail
 * in one run and not in another; the runs are then compared up to the first
 * message that fails with WSK_EDEFLATE in any of them. (With 15 bits the
 * window holds all the output up to the format's 32 KiB maximum, so there is
 * no exception.) The sink never sees more than the limit per message nor a
 * piece larger than WSK_DEFLATE_CHUNK; errors are only WSK_EDEFLATE and
 * WSK_ETOOBIG, and stick. Finally the data itself must survive a
 * compress/decompress round trip. abort() on any inconsistency. */
#include <stdlib.h>
#include <string.h>

#include "wsk/deflate.h"

#define MAX_MESSAGES 8

static void check(bool ok)
{
    if (!ok)
        abort();
}

struct digest {
    uint64_t hash; /* FNV-1a of the current message's output */
    uint64_t len;
    uint64_t limit;
};

static int digest_sink(void *ctx, const uint8_t *data, size_t len)
{
    struct digest *d = ctx;
    check(len > 0 && len <= WSK_DEFLATE_CHUNK);
    for (size_t i = 0; i < len; i++)
        d->hash = (d->hash ^ data[i]) * 0x100000001b3ull;
    d->len += len;
    check(d->len <= d->limit);
    return 0;
}

struct result {
    int rv[MAX_MESSAGES];
    uint64_t hash[MAX_MESSAGES];
    uint64_t len[MAX_MESSAGES];
};

struct message {
    const uint8_t *data;
    size_t len;
};

static void run(const struct wsk_deflate_params *params, enum wsk_role role,
                const struct message *msgs, size_t nmsg, uint64_t limit, const uint8_t *cuts,
                size_t ncuts, bool one_byte, struct result *r)
{
    memset(r, 0, sizeof *r);
    struct wsk_deflate *d;
    check(wsk_deflate_new(&d, params, role) == 0);
    size_t cut = 0;
    int error = 0;
    for (size_t m = 0; m < nmsg; m++) {
        const uint8_t *msg = msgs[m].data;
        size_t len = msgs[m].len;
        struct digest dg = {0xcbf29ce484222325ull, 0, limit};
        size_t pos = 0;
        int rv = 0;
        do {
            size_t piece = len - pos;
            if (one_byte && piece > 1)
                piece = 1;
            else if (ncuts) {
                size_t c = 1 + cuts[cut++ % ncuts] % 300;
                if (c < piece)
                    piece = c;
            }
            bool is_last = pos + piece == len;
            rv = wsk_deflate_decompress(d, msg + pos, piece, is_last, limit, digest_sink, &dg);
            pos += piece;
            if (is_last)
                break;
        } while (rv == 0);
        check(rv == 0 || rv == WSK_EDEFLATE || rv == WSK_ETOOBIG);
        if (error)
            check(rv == error);
        if (rv != 0) {
            error = rv;
            check(wsk_deflate_memory(d) == 0);
        }
        r->rv[m] = rv;
        r->hash[m] = rv == 0 ? dg.hash : 0;
        r->len[m] = rv == 0 ? dg.len : 0;
    }
    bool takeover = role == WSK_ROLE_SERVER ? !params->client_no_context_takeover
                                            : !params->server_no_context_takeover;
    if (!takeover || error)
        check(wsk_deflate_memory(d) == 0);
    wsk_deflate_free(d);
}

struct buf {
    uint8_t *p;
    size_t len;
    size_t cap;
};

static int buf_sink(void *ctx, const uint8_t *data, size_t len)
{
    struct buf *b = ctx;
    check(len > 0 && len <= WSK_DEFLATE_CHUNK);
    if (b->len + len > b->cap) {
        b->cap = 2 * (b->len + len);
        b->p = realloc(b->p, b->cap);
        check(b->p != NULL);
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
    return 0;
}

/* Compresses the data and decompresses it back, twice, so that the second
 * message may refer to the first. */
static void round_trip(const struct wsk_deflate_params *params, enum wsk_role role,
                       const uint8_t *data, size_t size)
{
    struct wsk_deflate *a, *b;
    check(wsk_deflate_new(&a, params, role) == 0);
    check(wsk_deflate_new(&b, params,
                          role == WSK_ROLE_SERVER ? WSK_ROLE_CLIENT : WSK_ROLE_SERVER) == 0);
    struct buf c = {NULL, 0, 0}, out = {NULL, 0, 0};
    for (int i = 0; i < 2; i++) {
        c.len = out.len = 0;
        check(wsk_deflate_compress(a, data, size, buf_sink, &c) == 0);
        check(wsk_deflate_decompress(b, c.p, c.len, true, size, buf_sink, &out) == 0);
        check(out.len == size && (size == 0 || memcmp(out.p, data, size) == 0));
    }
    free(c.p);
    free(out.p);
    wsk_deflate_free(a);
    wsk_deflate_free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t opts = data[0];
    uint8_t bits = (uint8_t)(8 + (opts & 7));
    bool takeover = opts & 0x08;
    enum wsk_role role = (opts & 0x10) ? WSK_ROLE_CLIENT : WSK_ROLE_SERVER;
    size_t want = 1 + (opts >> 5);
    uint64_t limit = (uint64_t)data[1] * 61;
    struct wsk_deflate_params params = {!takeover, !takeover, bits, bits, 1 + data[1] % 9};
    data += 2;
    size -= 2;

    struct message msgs[MAX_MESSAGES];
    size_t nmsg = 0, pos = 0;
    while (nmsg + 1 < want && pos < size) {
        size_t len = data[pos++];
        if (len > size - pos)
            len = size - pos;
        msgs[nmsg++] = (struct message){data + pos, len};
        pos += len;
    }
    msgs[nmsg++] = (struct message){data + pos, size - pos};

    static struct result whole, split, bytes;
    run(&params, role, msgs, nmsg, limit, NULL, 0, false, &whole);
    run(&params, role, msgs, nmsg, limit, data, size, false, &split);
    if (size <= 4096)
        run(&params, role, msgs, nmsg, limit, NULL, 0, true, &bytes);
    else
        bytes = whole;
    for (size_t m = 0; m < nmsg; m++) {
        if (bits < 15 && (whole.rv[m] == WSK_EDEFLATE || split.rv[m] == WSK_EDEFLATE ||
                          bytes.rv[m] == WSK_EDEFLATE))
            break;
        check(whole.rv[m] == split.rv[m] && whole.rv[m] == bytes.rv[m]);
        check(whole.hash[m] == split.hash[m] && whole.hash[m] == bytes.hash[m]);
        check(whole.len[m] == split.len[m] && whole.len[m] == bytes.len[m]);
    }

    round_trip(&params, role, data, size);
    return 0;
}
