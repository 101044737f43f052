/* wsk: permessage-deflate (RFC 7692), negotiation and per-message transform.
 *
 * I/O-free like the rest of the protocol core: the negotiation functions read
 * and write header values, and the transform takes a message's payload and
 * hands the result to a sink callback. Unlike the rest of the core, the
 * transform allocates: zlib keeps a sliding window and tables on the heap.
 *
 * Use on a server:
 *
 *      n = wsk_deflate_negotiate(req.headers, req.num_headers, &cfg, &params, hdr, sizeof hdr);
 *      n > 0: send "Sec-WebSocket-Extensions: <hdr>", wsk_deflate_new(&d, &params, SERVER),
 *             and allow RSV1 in the frame parser
 *      n == 0: go on without compression; n < 0: answer 400
 *
 * and on a client: wsk_deflate_offer() into the request, wsk_deflate_accept()
 * on the response, wsk_deflate_new() when it returns 1. Then, per message,
 * wsk_deflate_decompress() for messages whose first frame has RSV1 and
 * wsk_deflate_compress() for messages of at least min_compress_size bytes.
 *
 * Memory. With context takeover, each direction has one zlib stream of its
 * own, created on first use, that lives as long as the state. A direction
 * without context takeover borrows a stream from a pool that the states of
 * one thread share (one stream per direction, reset between messages, freed
 * when the thread exits) for each message, and gives it back at the end of
 * the message: a server that negotiates no context takeover both ways holds
 * no compression memory per connection at all, like uWebSockets' shared
 * compressor. A message half received keeps its stream until it ends (another
 * state meanwhile gets a stream of its own, pooled or freed after). zlib
 * needs, per stream:
 *
 *      deflate: (1 << (window_bits + 2)) + (1 << (mem_level + 9)) + ~6 KiB
 *      inflate: (1 << window_bits) + ~7 KiB
 *
 * Measured with zlib 1.2.13 on x86-64 by wsk_deflate_memory() (zlib's
 * allocations plus 16 bytes of bookkeeping on each), same for either role:
 *
 *      window bits 15, mem_level 5 (the defaults):
 *          deflate stream, from the first compress on        153,568 bytes
 *          inflate stream, from the first decompress on       39,992 bytes
 *          idle between messages, both directions used       193,560 bytes
 *      window bits 15, mem_level 8 (zlib's and ws's default): deflate 268,256
 *      window bits 12, mem_level 5 (python websockets' server):
 *          deflate 38,880, inflate 11,320, idle 50,200
 *      no context takeover either way: 0 (the thread's pool holds one
 *          deflate and one inflate stream of the sizes above)
 *
 * mem_level 5 compresses typical JSON messages within 0.5% of mem_level 8 and
 * saves 112 KiB per connection, so it is the default (python websockets
 * chose it too). The window dominates the rest: a server with many idle
 * connections should lower server_max_window_bits and
 * client_max_window_bits (12 gives 50 KiB) or ask for no context takeover.
 * Add about 280 bytes for the state itself, and 16 KiB of stack during each call
 * (the output chunk lives on the stack, so that it costs nothing when idle).
 *
 * Close codes: fail the connection with 1007 on WSK_EDEFLATE and 1009 on
 * WSK_ETOOBIG.
 */
#ifndef WSK_DEFLATE_H
#define WSK_DEFLATE_H

#include "wsk/common.h"
#include "wsk/error.h"
#include "wsk/proto.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Enough for any header value wsk_deflate_negotiate() or wsk_deflate_offer()
 * writes, its terminating NUL included. */
#define WSK_DEFLATE_HEADER_MAX 160

/* The sink receives output in pieces of at most this many bytes. */
#define WSK_DEFLATE_CHUNK 16384

#define WSK_DEFLATE_DEFAULT_MEM_LEVEL 5
#define WSK_DEFLATE_DEFAULT_MIN_SIZE  64

/* What this endpoint wants and allows. Zero means default; fill with
 * wsk_deflate_config_init(). */
struct wsk_deflate_config {
    bool enabled; /* off unless set */
    /* Server: always reset its own compressor after each message (saves the
     * deflate stream between messages). Client: ask the server to do so,
     * which saves our inflate stream between messages. */
    bool server_no_context_takeover;
    /* Server: require the client to reset its compressor, which saves our
     * inflate stream between messages. Client: reset our own compressor and
     * say so in the offer. */
    bool client_no_context_takeover;
    /* Window of the server's compressor, 8..15; 0 means 15. Server: the
     * largest window it will use. Client: the largest window it lets the
     * server use (larger costs our inflate stream memory). */
    uint8_t server_max_window_bits;
    /* Window of the client's compressor, 8..15; 0 means 15. Server: the
     * largest it accepts; below 15, an offer without client_max_window_bits
     * is declined, since such a client may use 15. Client: the largest it
     * will use; the server may choose less. */
    uint8_t client_max_window_bits;
    /* zlib memLevel of our compressor, 1..9; 0 means
     * WSK_DEFLATE_DEFAULT_MEM_LEVEL (5). Local, not negotiated. */
    uint8_t mem_level;
    /* For the connection layer: messages shorter than this are sent
     * uncompressed; 0 means WSK_DEFLATE_DEFAULT_MIN_SIZE (64). */
    size_t min_compress_size;
};

/* Fills cfg with the defaults, spelled out: disabled, context takeover both
 * ways, window bits 15, mem_level 5, min_compress_size 64. Cannot fail. */
WSK_API void wsk_deflate_config_init(struct wsk_deflate_config *cfg);

/* What was negotiated. A value type; wsk_deflate_negotiate() and
 * wsk_deflate_accept() fill it. */
struct wsk_deflate_params {
    bool server_no_context_takeover;
    bool client_no_context_takeover;
    uint8_t server_max_window_bits; /* 8..15 (15 when not given) */
    uint8_t client_max_window_bits; /* 8..15 (15 when not given) */
    uint8_t mem_level;              /* not negotiated: copied from our config, 0 = default */
};

/* Server: chooses permessage-deflate parameters from a request.
 *
 * headers are the request's header lines; every Sec-WebSocket-Extensions
 * line is read, in order, as one list of offers (RFC 6455 section 9.1:
 * offers separated by ',', parameters by ';', values tokens or quoted strings
 * that unescape to tokens). The first permessage-deflate offer the server can
 * accept is chosen. An offer is declined, and the next one tried, when it
 * has an unknown or repeated parameter, a value on server_no_context_takeover
 * or client_no_context_takeover, server_max_window_bits without a value, a
 * window bits value other than 8..15 in decimal without leading zeros, or,
 * when cfg->client_max_window_bits is below 15, no client_max_window_bits
 * (RFC 7692 section 5.1). Other extensions are skipped.
 *
 * On success writes the response header value into out, NUL-terminated
 * (e.g. "permessage-deflate; server_no_context_takeover;
 * client_max_window_bits=12"), fills *params and returns the value's length
 * (> 0). The response grants server_no_context_takeover and
 * client_no_context_takeover when either side asked for them, and the
 * smaller of the offered and configured window bits; it repeats an offered
 * server_max_window_bits even at 15, since strict clients (python
 * websockets, ours) want it back.
 *
 * Returns 0 when there is no acceptable offer or cfg is NULL or disabled:
 * answer without the extension. Returns WSK_EHEXT when a header line does
 * not follow the grammar, anywhere, even after an acceptable offer; we
 * recommend answering 400, as ws does (ignoring the header and answering
 * without compression would also be valid). WSK_ENOSPC when the value and its
 * NUL do not fit in cap (WSK_DEFLATE_HEADER_MAX always suffices), -EINVAL
 * for a cfg with window bits outside 0, 8..15 or a mem_level above 9.
 * A NULL or disabled cfg returns 0, and an invalid one -EINVAL, before any
 * header is read. *params is only written on success. headers and cfg are
 * borrowed for the call.
 *
 * A window of 8 bits is granted when asked for, but zlib cannot compress raw
 * deflate with 8: our compressor then uses 9, which is safe because zlib
 * never reaches back further than the window minus 262 bytes (250 < 256). */
WSK_API int wsk_deflate_negotiate(const struct wsk_http_header *headers, size_t num_headers,
                                  const struct wsk_deflate_config *cfg,
                                  struct wsk_deflate_params *params, char *out, size_t cap);

/* Client: writes our offer, the value of a Sec-WebSocket-Extensions request
 * header, into out, NUL-terminated. It always includes
 * client_max_window_bits (with our limit as a value when it is below 15), so
 * that a server may shrink our window; server_max_window_bits only when cfg
 * limits it below 15.
 *
 * Returns the value's length; 0 (and an empty string when cap > 0) when cfg
 * is NULL or disabled: send no header. WSK_ENOSPC when cap is too small,
 * -EINVAL for an invalid cfg (see wsk_deflate_negotiate()). */
WSK_API int wsk_deflate_offer(char *out, size_t cap, const struct wsk_deflate_config *cfg);

/* Client: checks the server's Sec-WebSocket-Extensions value against the
 * offer made from *offered and fills *params (RFC 7692 section 5.2).
 *
 * value is the response's only Sec-WebSocket-Extensions value; a response
 * with several such lines names several extensions, which the caller must
 * reject with WSK_EHEXT. NULL, empty or blank: the server declined.
 *
 * Returns 1 when permessage-deflate is in use (*params filled), 0 when the
 * server declined it, and WSK_EHEXT when the connection must fail: the value
 * does not follow the grammar, names another extension or more than one,
 * has an unknown or repeated parameter, a value on a no_context_takeover
 * parameter, window bits missing or outside 8..15, server_max_window_bits
 * above what we asked for or missing although we asked for a limit,
 * server_no_context_takeover missing although we asked for it,
 * client_max_window_bits above our limit, or any extension when offered is
 * NULL or disabled. -EINVAL for an invalid *offered (checked first, when it
 * is enabled). *params is only written when it returns 1.
 *
 * Our compressor uses the server's client_max_window_bits when given, else
 * our own limit; client_no_context_takeover holds when either side said it. */
WSK_API int wsk_deflate_accept(const struct wsk_slice *value,
                               const struct wsk_deflate_config *offered,
                               struct wsk_deflate_params *params);

/* Per-connection compression state: one inflate stream for the peer's
 * messages and one deflate stream for ours, each created on first use.
 * Opaque; belongs to one connection and one thread. */
struct wsk_deflate;

/* Creates the state for role (which says which direction is ours) with the
 * negotiated params; window bits 0 mean 15. No zlib stream is created yet.
 *
 * Returns 0 and sets *out, or sets *out to NULL and returns -ENOMEM, or
 * -EINVAL for params out of range (window bits other than 0, 8..15, a
 * mem_level above 9) or an unknown role. params is copied. The caller frees
 * *out with wsk_deflate_free(). */
WSK_API int wsk_deflate_new(struct wsk_deflate **out, const struct wsk_deflate_params *params,
                            enum wsk_role role);

/* Frees the state and its zlib streams. NULL is fine. */
WSK_API void wsk_deflate_free(struct wsk_deflate *d);

/* Receives output: len bytes (1..WSK_DEFLATE_CHUNK) at data, valid until the
 * callback returns. Return 0 to go on, or a negative value to stop: the
 * function that called the sink then returns that value. */
typedef int (*wsk_deflate_sink_cb)(void *ctx, const uint8_t *data, size_t len);

/* Decompresses one piece of an incoming compressed message: call it for
 * each piece of the payload in order (frame boundaries do not matter), with
 * is_last on the message's final piece (which may be empty). On the final
 * piece it appends 00 00 FF FF (RFC 7692 section 7.2.2), checks that the
 * message ended on a deflate block boundary, and gives the inflate stream
 * back to the thread's pool when the peer's direction has no context
 * takeover.
 *
 * The decompressed bytes go to sink in order; they are the same whatever
 * the pieces. max_output bounds the whole message's decompressed size: as
 * soon as the output would exceed it, decompression stops (the rest is never
 * inflated, so the work done is about max_output) and WSK_ETOOBIG is
 * returned; the sink never receives more than max_output bytes per message.
 *
 * Returns 0, WSK_ETOOBIG, WSK_EDEFLATE for data that is not valid deflate
 * (including a message that stops inside a block), -ENOMEM, or the sink's
 * negative value. Any error is final: the inflate stream is freed and every
 * later call returns the same error; fail the connection (1009 for
 * WSK_ETOOBIG, 1007 for WSK_EDEFLATE).
 *
 * in is borrowed for the call; it may be NULL when len is 0.
 *
 * An empty payload is taken as an empty message. A deflate stream that ends
 * (a block with BFINAL set) inside a message is followed by a new one, with
 * the window kept.
 *
 * zlib checks a back-reference against the window plus what the current
 * inflate() call has written, so a peer that reaches further back than the
 * negotiated window (below 15 bits) gets WSK_EDEFLATE or not depending on how
 * the output falls into chunks; a conforming peer's messages always
 * decompress the same, however they are split. */
WSK_API int wsk_deflate_decompress(struct wsk_deflate *d, const uint8_t *in, size_t len,
                                   bool is_last, uint64_t max_output, wsk_deflate_sink_cb sink,
                                   void *ctx);

/* Compresses one whole outgoing message. The sink receives the payload for
 * the frames, which the caller sends with RSV1 on the first one; the trailing
 * 00 00 FF FF is already removed (RFC 7692 section 7.2.1). An empty message
 * becomes the single byte 00 (no zlib call, so only the sink can fail it).
 * With no context takeover for our direction, the deflate stream is the
 * thread's pool's, lent for the call. in is borrowed for the call.
 *
 * Returns 0, -ENOMEM, WSK_EDEFLATE (zlib failed unexpectedly), or the sink's
 * negative value. After an error the compressor starts afresh with the next
 * message, which the peer handles whatever was negotiated, provided no
 * output of the failed message was sent. */
WSK_API int wsk_deflate_compress(struct wsk_deflate *d, const uint8_t *in, size_t len,
                                 wsk_deflate_sink_cb sink, void *ctx);

/* The window our compressor uses, in bits (9..15; a negotiated 8 is
 * compressed with 9, see wsk_deflate_negotiate()). A message compressed
 * elsewhere with this window or a smaller one, starting with no history,
 * is valid for this peer whatever else was negotiated. Cannot fail; d must
 * not be NULL. */
WSK_API unsigned wsk_deflate_send_window_bits(const struct wsk_deflate *d);

/* Makes the next wsk_deflate_compress() start with no history, as after a
 * message with no context takeover. Call it when the peer was sent a
 * message compressed by another state in between (a broadcast compressed
 * once for many receivers): the peer's inflater then holds bytes this
 * compressor never saw, so back-references into the old history would
 * decode wrongly. Keeps the stream's memory. Cannot fail; does nothing when
 * no deflate stream exists yet. */
WSK_API void wsk_deflate_reset_send(struct wsk_deflate *d);

/* Bytes of heap the zlib streams hold now, counted exactly through zlib's
 * allocation hooks (16 bytes of bookkeeping per allocation included); 0 when
 * neither stream exists, as with no context takeover either way (streams
 * lent by the thread's pool are not counted). The state itself (about 280
 * bytes on x86-64) is not included. 0 for NULL. */
WSK_API size_t wsk_deflate_memory(const struct wsk_deflate *d);

#ifdef __cplusplus
}
#endif

#endif
