/* wsk danmaku: Douyu's live-chat ("barrage", danmaku) packets and the STT
 * text they carry, I/O-free and clock-free (article 004).
 *
 * A packet on the wire, over TCP or inside binary WebSocket messages:
 *
 *     0       4       8     10  11  12                 12+n  13+n
 *     +-------+-------+------+---+---+------------------+----+
 *     |   L   |   L   | type | 0 | 0 | body (STT text)  | \0 |
 *     +-------+-------+------+---+---+------------------+----+
 *
 * L (4 bytes, little-endian) counts everything after the first length
 * field, so L = 9 + n; it is repeated. type (2 bytes, little-endian) is 689
 * from client to server and 690 from server to client; the encryption and
 * reserved bytes are 0. The body is STT ("serialised text"):
 * "key@=value/key@=value/", where '@' inside a key or value is written "@A"
 * and '/' is written "@S". A value can itself be STT (a map "k@=v/" or a list
 * "v/v/"), escaped once more.
 *
 * The decoder takes bytes split anywhere and gives whole packets: in place
 * when a packet lies whole in the input, else from a buffer the caller
 * provides. The STT functions read and write slices of the caller's
 * buffers. Nothing here allocates, keeps global state or touches a socket.
 */
#ifndef WSK_DANMAKU_H
#define WSK_DANMAKU_H

#include "wsk/common.h"
#include "wsk/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Packets                                                                   */
/* ------------------------------------------------------------------------ */

#define WSK_DANMAKU_TYPE_CLIENT 689 /* client to server */
#define WSK_DANMAKU_TYPE_SERVER 690 /* server to client */

/* The fixed part before the body: two lengths, the type, two zero bytes. */
#define WSK_DANMAKU_HEADER_LEN 12

/* Bytes a packet with a body of n bytes takes on the wire: header, body, NUL. */
#define WSK_DANMAKU_PACKET_LEN(n) ((size_t)(n) + WSK_DANMAKU_HEADER_LEN + 1)

/* Default for wsk_danmaku_config.max_packet. */
#define WSK_DANMAKU_DEFAULT_MAX_PACKET (1024u * 1024)

/* Writes the packet of type (WSK_DANMAKU_TYPE_CLIENT or _SERVER) with
 * body[0..body_len) into out: header, body, terminating NUL. Returns its
 * length, WSK_DANMAKU_PACKET_LEN(body_len); WSK_ENOSPC when cap is smaller
 * (out is then untouched); -EINVAL for another type; WSK_ETOOBIG when
 * body_len does not fit the 4-byte length (above 2^32 - 10). The body is
 * copied as it is (it is not checked as STT) and may already lie at
 * out + WSK_DANMAKU_HEADER_LEN: write the STT there (struct wsk_stt_writer)
 * and encode in place, without a second buffer. Otherwise it must not
 * overlap out. body may be NULL when body_len is 0. */
WSK_API int64_t wsk_danmaku_encode(uint8_t *out, size_t cap, uint16_t type, const char *body,
                                   size_t body_len);

/* Decoder configuration. Zero means default; fill with
 * wsk_danmaku_config_init(). */
struct wsk_danmaku_config {
    /* Largest packet accepted, counted whole on the wire (4 + L bytes);
     * 0: WSK_DANMAKU_DEFAULT_MAX_PACKET. */
    size_t max_packet;
    /* The only type accepted: WSK_DANMAKU_TYPE_SERVER for a client,
     * WSK_DANMAKU_TYPE_CLIENT for a server; 0: either. */
    uint16_t type;
};

/* Fills cfg with the defaults: 1 MiB, either type. Cannot fail. */
WSK_API void wsk_danmaku_config_init(struct wsk_danmaku_config *cfg);

/* Incremental decoder: a value type in the caller's memory (72 bytes on
 * x86-64). The fields are private. */
struct wsk_danmaku_decoder {
    uint8_t *buf; /* the caller's: a packet split across feeds is collected here */
    size_t cap;
    size_t max_packet;
    size_t body_need;   /* body bytes of the current packet, the NUL included */
    size_t body_have;   /* how many are in buf */
    const char *reason; /* once failed: what was wrong */
    uint16_t want_type; /* 0: either */
    uint16_t type;      /* type of the current packet */
    uint8_t hdr[WSK_DANMAKU_HEADER_LEN];
    uint8_t hdr_len; /* header bytes collected so far */
    uint8_t state;   /* header, body or failed */
    int error;       /* once failed: WSK_EPROTO or WSK_ETOOBIG */
};

/* One whole packet. */
struct wsk_danmaku_packet {
    uint16_t type;    /* 689 or 690 */
    const char *body; /* the STT text; body[body_len] is the terminating NUL */
    size_t body_len;  /* without the NUL */
};

/* Prepares d for a new stream. cfg may be NULL for the defaults and is not
 * kept. buf[0..cap) is where a packet that arrives in pieces is put back
 * together; it is borrowed for d's lifetime. A packet's body and NUL must fit
 * in it, so cap = max_packet lets every packet the limit allows through;
 * with less, packets that would not fit fail with WSK_ETOOBIG, whether or
 * not they arrive in pieces. Cannot fail. */
WSK_API void wsk_danmaku_decoder_init(struct wsk_danmaku_decoder *d,
                                      const struct wsk_danmaku_config *cfg, uint8_t *buf,
                                      size_t cap);

/* Consumes bytes from in[0..len) and stops after at most one packet.
 *
 * Returns the number of bytes consumed (0..len) and sets *has_packet; when
 * true, *pkt is the packet just completed. Its body points into in (a
 * packet that lay whole in in) or into the decoder's buffer, and is valid
 * until the next call with d and as long as in is. Call again with the rest
 * of in: several packets in one read come out one per call. A return of len
 * with *has_packet false means everything was taken in; more is needed.
 *
 * Fails, and keeps failing the same way on every later call until
 * wsk_danmaku_decoder_init(), with *has_packet false and nothing more
 * consumed:
 *   - WSK_EPROTO when L is below 9, the two lengths differ, the type is
 *     neither 689 nor 690 or not the configured one, the encryption or the
 *     reserved byte is not 0, or the last byte of the body is not a NUL;
 *   - WSK_ETOOBIG when the packet exceeds max_packet or the buffer.
 * Each header byte is checked as soon as it arrives, so a bad length fails
 * after 4 bytes, before any body is read; the reason is
 * wsk_danmaku_decoder_reason(). The same stream split anywhere gives the
 * same packets and the same error at the same byte. A NUL inside the body is
 * passed on as a byte. */
WSK_API int64_t wsk_danmaku_decode(struct wsk_danmaku_decoder *d, const uint8_t *in, size_t len,
                                   struct wsk_danmaku_packet *pkt, bool *has_packet);

/* True between packets: no byte of an unfinished packet is held (a link
 * that ends now ends cleanly). False inside a packet and after an error. */
WSK_API bool wsk_danmaku_decoder_is_idle(const struct wsk_danmaku_decoder *d);

/* Once decoding failed: what was wrong, a static English phrase ("the two
 * lengths differ"); NULL while it has not failed. */
WSK_API const char *wsk_danmaku_decoder_reason(const struct wsk_danmaku_decoder *d);

/* ------------------------------------------------------------------------ */
/* STT text                                                                  */
/* ------------------------------------------------------------------------ */

/* A cursor over the items of one STT text. A value type; the fields are
 * private. */
struct wsk_stt_iter {
    const char *pos;
    const char *end;
    bool is_failed;
};

/* One item, as it is in the text (still escaped: see wsk_stt_unescape()). */
struct wsk_stt_item {
    struct wsk_slice key; /* empty for a list element */
    struct wsk_slice value;
    bool has_key; /* "key@=value": a map entry; else "value": a list element */
};

/* Starts walking s[0..len), which must outlive the walk. s may be NULL when
 * len is 0. Cannot fail. */
WSK_API void wsk_stt_iter_init(struct wsk_stt_iter *it, const char *s, size_t len);

/* Steps to the next item: everything up to the next '/' (the '/' after the
 * last item may be missing; "a@=1//" has a second, empty list element).
 * Returns 1 and fills *item with slices of the text; 0 at the end; or
 * WSK_EPROTO for an item with an '@' that is not followed by 'A', 'S', or
 * (once, between the key and the value) '=', and then again on every later
 * call. The slices of an item it returned always unescape without error. */
WSK_API int wsk_stt_next(struct wsk_stt_iter *it, struct wsk_stt_item *item);

/* Finds the first map entry whose key, unescaped, is key (NUL-terminated,
 * plain text) and sets *value to its value, still escaped. Returns 1 when
 * found, 0 when not, WSK_EPROTO when an item before it is malformed (as
 * wsk_stt_next()). value may be NULL. */
WSK_API int wsk_stt_get(const char *s, size_t len, const char *key, struct wsk_slice *value);

/* Undoes one level of escaping: "@A" becomes '@' and "@S" becomes '/'.
 * Writes in[0..len) unescaped into out and returns its length (at most len,
 * not NUL-terminated); WSK_EPROTO when an '@' is followed by anything else
 * or ends the input (checked first, whatever cap is); WSK_ENOSPC when the
 * result exceeds cap (out then holds a prefix). out may be in itself
 * (unescaping in place); otherwise they must not overlap. A nested value,
 * unescaped once, is STT again. */
WSK_API int64_t wsk_stt_unescape(const char *in, size_t len, char *out, size_t cap);

/* A bounded writer that escapes: appends to the caller's buffer, never
 * past its end. Once something did not fit, later writes only count, and
 * wsk_stt_writer_finish() says WSK_ENOSPC. A value type; the fields are
 * private. */
struct wsk_stt_writer {
    char *ptr;
    size_t cap;
    size_t len; /* bytes written so far; beyond cap once something did not fit */
};

/* Starts writing into out[0..cap), borrowed while writing. Cannot fail. */
WSK_API void wsk_stt_writer_init(struct wsk_stt_writer *w, char *out, size_t cap);

/* Appends "key@=value/", with '@' and '/' in key and value escaped; key NULL
 * appends the list element "value/". key is NUL-terminated; value may be
 * NULL when value_len is 0. To nest, write the inner STT into another buffer
 * and pass it as the value: it is escaped once more. Cannot fail (see
 * wsk_stt_writer_finish()). */
WSK_API void wsk_stt_write(struct wsk_stt_writer *w, const char *key, const char *value,
                           size_t value_len);

/* Returns the length written (not NUL-terminated), or WSK_ENOSPC when it did
 * not all fit (the buffer then holds a prefix). */
WSK_API int64_t wsk_stt_writer_finish(const struct wsk_stt_writer *w);

/* A cap that always suffices for wsk_stt_to_json() on len bytes of STT,
 * the NUL included (len at most SIZE_MAX / 6 - 1). */
#define WSK_STT_JSON_MAX(len) (6 * (size_t)(len) + 3)

/* Writes s[0..len), a map, as one JSON object (RFC 8259) on one line into
 * out, NUL-terminated: each entry's key and value, unescaped once, become a
 * JSON member name and a JSON string, in order (a repeated key stays
 * repeated). Nested STT values stay strings: whether "a/b" is a list or text
 * cannot be told from the text. In strings, '"', '\\' and control
 * characters (C0, DEL, and C1 U+0080..U+009F, so a terminal never acts on
 * them) are escaped, and each ill-formed UTF-8 sequence becomes U+FFFD, so
 * the output is always valid UTF-8 and valid JSON. Returns the length
 * without the NUL; WSK_EPROTO when s is not valid STT or has a list element
 * at its top level (not a map); WSK_ENOSPC when the object and its NUL do
 * not fit in cap, which WSK_STT_JSON_MAX(len) always does (out then holds a
 * prefix). s may be NULL when len is 0: the empty map is "{}". */
WSK_API int64_t wsk_stt_to_json(const char *s, size_t len, char *out, size_t cap);

#ifdef __cplusplus
}
#endif

#endif
