/* permessage-deflate (RFC 7692): the per-message transform. Negotiation is
 * deflate_negotiate.c's.
 *
 * Transform (section 7.2): a message is compressed with one deflate call
 * ending in Z_SYNC_FLUSH, whose output always ends with the empty stored
 * block 00 00 FF FF; the sink gets everything but those four bytes. The
 * receiver inflates the pieces as they come and the four bytes at the end.
 *
 * zlib allocates through z_alloc()/z_free(), which count every byte, so
 * wsk_deflate_memory() is exact. Output goes through a chunk on the stack so
 * that an idle state owns nothing but what zlib holds.
 *
 * A direction without context takeover borrows its stream from the
 * thread's pool for each message (struct pooled): a server that negotiates
 * no context takeover both ways, like uWebSockets' shared compressor,
 * holds no zlib state per connection at all (wsk_deflate_memory() is 0).
 */
#define ZLIB_CONST
#include "wsk/deflate.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "proto/deflate_internal.h"

static const uint8_t sync_tail[4] = {0x00, 0x00, 0xff, 0xff};

/* ------------------------------------------------------------------------ */
/* The transform                                                             */
/* ------------------------------------------------------------------------ */

/* A stream lent by the thread's pool: under no context takeover a stream
 * lives only for one message, so the connections of a thread share one per
 * direction instead of each allocating and freeing its own (zlib's deflate
 * state is over 100 KiB) for every message. A connection with a message
 * half inflated keeps its stream until the message ends; another one
 * meanwhile gets a new stream, which the pool keeps or frees after use. */
struct pooled {
    z_stream z;
    uint8_t bits;  /* window bits it was made with */
    uint8_t level; /* deflate: memLevel */
};

struct wsk_deflate {
    z_stream inflater;         /* the peer's messages, under context takeover */
    z_stream deflater;         /* ours, under context takeover */
    z_stream *zin;             /* the inflate stream in use, or NULL */
    struct pooled *zin_pooled; /* when zin is lent by the pool */
    size_t mem;                /* heap held through z_alloc(), headers included */
    uint64_t msg_in;           /* compressed bytes of the current incoming message */
    uint64_t msg_out;          /* bytes inflated from it so far */
    int in_error;              /* sticky decompress error, 0 when none */
    uint8_t in_bits;           /* window bits of the inflate stream */
    uint8_t out_bits;          /* window bits of the deflate stream (9..15) */
    uint8_t mem_level;         /* of the deflate stream */
    bool in_takeover;          /* keep the inflate stream between messages */
    bool out_takeover;         /* keep the deflate stream between messages */
    bool has_deflater;         /* deflater is initialised */
    bool in_stream_done;       /* a final block ended the input seen so far */
};

/* Prefix of every allocation, so that z_free() knows the size it returns. */
union alloc_head {
    size_t size;
    max_align_t align;
};

/* opaque: the counter of the stream's owner (NULL for pooled streams). */
static void *z_alloc(void *opaque, unsigned items, unsigned size)
{
    size_t *mem = opaque;
    if (size && items > (SIZE_MAX - sizeof(union alloc_head)) / size)
        return NULL;
    size_t n = sizeof(union alloc_head) + (size_t)items * size;
    union alloc_head *h = malloc(n);
    if (!h)
        return NULL;
    h->size = n;
    if (mem)
        *mem += n;
    return h + 1;
}

static void z_free(void *opaque, void *ptr)
{
    size_t *mem = opaque;
    if (!ptr)
        return;
    union alloc_head *h = (union alloc_head *)ptr - 1;
    if (mem)
        *mem -= h->size;
    free(h);
}

static void stream_hooks(size_t *mem, z_stream *z)
{
    memset(z, 0, sizeof *z);
    z->zalloc = z_alloc;
    z->zfree = z_free;
    z->opaque = mem;
}

/* ---- the thread's pool of streams --------------------------------------- */

static _Thread_local struct pooled *pool_in, *pool_out;
static pthread_key_t pool_key;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;
static bool has_pool_key;

static void pool_destroy(void *unused)
{
    (void)unused;
    if (pool_in) {
        inflateEnd(&pool_in->z);
        free(pool_in);
        pool_in = NULL;
    }
    if (pool_out) {
        deflateEnd(&pool_out->z);
        free(pool_out);
        pool_out = NULL;
    }
}

static void pool_make_key(void)
{
    has_pool_key = pthread_key_create(&pool_key, pool_destroy) == 0;
}

/* A stream for one message, from the pool or new; NULL when out of memory.
 * is_deflate: a compressor of level, else a decompressor. */
static struct pooled *pool_take(bool is_deflate, uint8_t bits, uint8_t level, int *zr)
{
    struct pooled **slot = is_deflate ? &pool_out : &pool_in, *p = *slot;
    *slot = NULL;
    *zr = Z_OK;
    if (p && (p->bits != bits || p->level != level)) {
        if (is_deflate) {
            deflateEnd(&p->z);
            free(p);
            p = NULL;
        } else if (inflateReset2(&p->z, -(int)bits) == Z_OK) {
            p->bits = bits;
        } else {
            inflateEnd(&p->z);
            free(p);
            p = NULL;
        }
    }
    if (p)
        return p;
    p = malloc(sizeof *p);
    if (!p) {
        *zr = Z_MEM_ERROR;
        return NULL;
    }
    stream_hooks(NULL, &p->z);
    p->bits = bits;
    p->level = level;
    *zr = is_deflate ? deflateInit2(&p->z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -(int)bits, level,
                                    Z_DEFAULT_STRATEGY)
                     : inflateInit2(&p->z, -(int)bits);
    if (*zr != Z_OK) {
        free(p);
        return NULL;
    }
    pthread_once(&pool_once, pool_make_key);
    if (has_pool_key)
        (void)pthread_setspecific(pool_key, &pool_in); /* non-NULL: the destructor runs */
    return p;
}

/* Gives a stream back after its message: reset into the pool when it is
 * empty and the message went well, else freed. */
static void pool_give(struct pooled *p, bool is_deflate, bool is_ok)
{
    struct pooled **slot = is_deflate ? &pool_out : &pool_in;
    if (is_ok && !*slot && (is_deflate ? deflateReset(&p->z) : inflateReset(&p->z)) == Z_OK) {
        *slot = p;
        return;
    }
    if (is_deflate)
        deflateEnd(&p->z);
    else
        inflateEnd(&p->z);
    free(p);
}

int wsk_deflate_new(struct wsk_deflate **out, const struct wsk_deflate_params *params,
                    enum wsk_role role)
{
    *out = NULL;
    if (!bits_ok(params->server_max_window_bits) || !bits_ok(params->client_max_window_bits) ||
        params->mem_level > 9 || (role != WSK_ROLE_SERVER && role != WSK_ROLE_CLIENT))
        return -EINVAL;
    struct wsk_deflate *d = calloc(1, sizeof *d);
    if (!d)
        return -ENOMEM;
    uint8_t s = bits_or_default(params->server_max_window_bits);
    uint8_t c = bits_or_default(params->client_max_window_bits);
    bool is_server = role == WSK_ROLE_SERVER;
    d->in_bits = is_server ? c : s;
    /* zlib refuses 8 for raw deflate; 9 is safe (see the header). */
    d->out_bits = is_server ? s : c;
    if (d->out_bits < 9)
        d->out_bits = 9;
    d->in_takeover =
        !(is_server ? params->client_no_context_takeover : params->server_no_context_takeover);
    d->out_takeover =
        !(is_server ? params->server_no_context_takeover : params->client_no_context_takeover);
    d->mem_level = params->mem_level ? params->mem_level : WSK_DEFLATE_DEFAULT_MEM_LEVEL;
    *out = d;
    return 0;
}

/* Ends the connection's use of its inflate stream: the pool's goes back
 * (into the pool when is_ok), its own is freed. */
static void inflater_end(struct wsk_deflate *d, bool is_ok)
{
    if (d->zin_pooled)
        pool_give(d->zin_pooled, false, is_ok);
    else if (d->zin)
        inflateEnd(d->zin);
    d->zin = NULL;
    d->zin_pooled = NULL;
}

static void deflater_end(struct wsk_deflate *d)
{
    if (d->has_deflater)
        deflateEnd(&d->deflater);
    d->has_deflater = false;
}

void wsk_deflate_free(struct wsk_deflate *d)
{
    if (!d)
        return;
    inflater_end(d, false);
    deflater_end(d);
    free(d);
}

size_t wsk_deflate_memory(const struct wsk_deflate *d)
{
    return d ? d->mem : 0;
}

static int zlib_error(int zr)
{
    return zr == Z_MEM_ERROR ? -ENOMEM : WSK_EDEFLATE;
}

/* After a final block, the next bytes of the message start a new deflate
 * stream that may still refer to the window, so the window is carried over
 * into the reset stream. */
static int inflater_restart(struct wsk_deflate *d)
{
    z_stream *z = d->zin;
    unsigned dict_len = 0;
    if (inflateGetDictionary(z, NULL, &dict_len) != Z_OK)
        return WSK_EDEFLATE;
    uint8_t *dict = NULL;
    if (dict_len > 0) {
        dict = z_alloc(&d->mem, dict_len, 1);
        if (!dict)
            return -ENOMEM;
        inflateGetDictionary(z, dict, &dict_len);
    }
    int zr = inflateReset(z);
    if (zr == Z_OK && dict_len > 0)
        zr = inflateSetDictionary(z, dict, dict_len);
    z_free(&d->mem, dict);
    return zr == Z_OK ? 0 : zlib_error(zr);
}

/* Inflates in[0..len) into the sink, within max_output for the message. */
static int inflate_input(struct wsk_deflate *d, const uint8_t *in, size_t len, uint64_t max_output,
                         wsk_deflate_sink_cb sink, void *ctx)
{
    if (len == 0)
        return 0;
    if (!d->zin && d->in_takeover) {
        stream_hooks(&d->mem, &d->inflater);
        int zr = inflateInit2(&d->inflater, -(int)d->in_bits);
        if (zr != Z_OK)
            return zlib_error(zr);
        d->zin = &d->inflater;
    } else if (!d->zin) {
        int zr;
        d->zin_pooled = pool_take(false, d->in_bits, 0, &zr);
        if (!d->zin_pooled)
            return zlib_error(zr);
        d->zin = &d->zin_pooled->z;
    }
    z_stream *z = d->zin;
    uint8_t buf[WSK_DEFLATE_CHUNK];
    if (d->msg_out > max_output)
        return WSK_ETOOBIG; /* max_output shrank between pieces */
    d->msg_in += len;
    d->in_stream_done = false;
    while (len > 0) {
        unsigned piece = len > UINT_MAX ? UINT_MAX : (unsigned)len;
        z->next_in = in;
        z->avail_in = piece;
        in += piece;
        len -= piece;
        do {
            /* One byte of room past the limit tells "exactly max_output"
             * from "more", and bounds the work to about max_output. */
            uint64_t room = max_output - d->msg_out;
            unsigned cap = room >= sizeof buf ? (unsigned)sizeof buf : (unsigned)room + 1;
            z->next_out = buf;
            z->avail_out = cap;
            int zr = inflate(z, Z_SYNC_FLUSH);
            size_t n = cap - z->avail_out;
            /* The limit first: zlib decodes one code past a full output
             * buffer, so an error there depends on how the input was split,
             * while crossing the limit does not. */
            if (n > room)
                return WSK_ETOOBIG;
            if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR)
                return zlib_error(zr);
            d->msg_out += n;
            if (n > 0) {
                int rv = sink(ctx, buf, n);
                if (rv < 0)
                    return rv;
            }
            if (zr == Z_STREAM_END) {
                int rv = inflater_restart(d);
                if (rv < 0)
                    return rv;
                d->in_stream_done = z->avail_in == 0 && len == 0;
            } else if (zr == Z_BUF_ERROR && n == 0 && z->avail_in > 0) {
                return WSK_EDEFLATE; /* no progress: cannot happen, but never spin */
            }
        } while (z->avail_in > 0 || z->avail_out == 0);
    }
    return 0;
}

/* Ends an incoming message: the sync tail, the boundary check, and the
 * inflate stream's release under no context takeover. */
static int inflate_finish(struct wsk_deflate *d, uint64_t max_output, wsk_deflate_sink_cb sink,
                          void *ctx)
{
    /* An empty payload is an empty message: feeding the tail alone would
     * leave the stream inside a stored block. After a final block that
     * ended the input, the message is complete already. */
    if (d->msg_in > 0 && !d->in_stream_done) {
        int rv = inflate_input(d, sync_tail, sizeof sync_tail, max_output, sink, ctx);
        if (rv < 0)
            return rv;
        /* Bit 128 of data_type: inflate stopped between blocks. Anywhere
         * else the message was cut inside a block. */
        if (!d->in_stream_done && !(d->zin->data_type & 128))
            return WSK_EDEFLATE;
    }
    d->msg_in = 0;
    d->msg_out = 0;
    d->in_stream_done = false;
    if (!d->in_takeover)
        inflater_end(d, true);
    return 0;
}

int wsk_deflate_decompress(struct wsk_deflate *d, const uint8_t *in, size_t len, bool is_last,
                           uint64_t max_output, wsk_deflate_sink_cb sink, void *ctx)
{
    if (d->in_error)
        return d->in_error;
    int rv = inflate_input(d, in, len, max_output, sink, ctx);
    if (rv == 0 && is_last)
        rv = inflate_finish(d, max_output, sink, ctx);
    if (rv < 0) {
        d->in_error = rv;
        inflater_end(d, false);
    }
    return rv;
}

/* Runs the deflate loop over in[0..len) and hands all output but the final
 * sync tail to the sink. */
static int deflate_message(z_stream *z, const uint8_t *in, size_t len, wsk_deflate_sink_cb sink,
                           void *ctx)
{
    uint8_t buf[WSK_DEFLATE_CHUNK];
    size_t held = 0; /* output bytes kept at buf[0..held), maybe the tail */
    z->avail_in = 0;
    for (;;) {
        if (z->avail_in == 0 && len > 0) {
            unsigned piece = len > UINT_MAX ? UINT_MAX : (unsigned)len;
            z->next_in = in;
            z->avail_in = piece;
            in += piece;
            len -= piece;
        }
        int flush = len > 0 ? Z_NO_FLUSH : Z_SYNC_FLUSH;
        z->next_out = buf + held;
        z->avail_out = (unsigned)(sizeof buf - held);
        int zr = deflate(z, flush);
        if (zr != Z_OK && zr != Z_BUF_ERROR)
            return zlib_error(zr);
        size_t n = sizeof buf - z->avail_out;
        if (n > sizeof sync_tail) {
            int rv = sink(ctx, buf, n - sizeof sync_tail);
            if (rv < 0)
                return rv;
            memmove(buf, buf + n - sizeof sync_tail, sizeof sync_tail);
            held = sizeof sync_tail;
        } else {
            held = n;
        }
        /* Room left after a sync flush means everything is out. */
        if (flush == Z_SYNC_FLUSH && z->avail_in == 0 && z->avail_out > 0)
            break;
    }
    if (held != sizeof sync_tail || memcmp(buf, sync_tail, sizeof sync_tail) != 0)
        return WSK_EDEFLATE;
    return 0;
}

int wsk_deflate_compress(struct wsk_deflate *d, const uint8_t *in, size_t len,
                         wsk_deflate_sink_cb sink, void *ctx)
{
    /* zlib answers a second sync flush without input with Z_BUF_ERROR and
     * nothing, so the empty message is written by hand: the header byte of
     * an empty stored block, whose remaining bytes are the removed tail. */
    if (len == 0) {
        static const uint8_t empty_block = 0x00;
        int rv = sink(ctx, &empty_block, 1);
        return rv < 0 ? rv : 0;
    }
    if (!d->out_takeover) {
        int zr;
        struct pooled *p = pool_take(true, d->out_bits, d->mem_level, &zr);
        if (!p)
            return zlib_error(zr);
        int rv = deflate_message(&p->z, in, len, sink, ctx);
        pool_give(p, true, rv == 0);
        return rv;
    }
    if (!d->has_deflater) {
        stream_hooks(&d->mem, &d->deflater);
        int zr = deflateInit2(&d->deflater, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -(int)d->out_bits,
                              d->mem_level, Z_DEFAULT_STRATEGY);
        if (zr != Z_OK)
            return zlib_error(zr);
        d->has_deflater = true;
    }
    int rv = deflate_message(&d->deflater, in, len, sink, ctx);
    /* After an error the peer has not seen this message, and a fresh stream
     * is always acceptable to its inflater, so start over. */
    if (rv < 0)
        deflater_end(d);
    return rv;
}

unsigned wsk_deflate_send_window_bits(const struct wsk_deflate *d)
{
    return d->out_bits;
}

void wsk_deflate_reset_send(struct wsk_deflate *d)
{
    /* deflateReset() keeps the stream's memory and forgets its history. */
    if (d->has_deflater)
        deflateReset(&d->deflater);
}
