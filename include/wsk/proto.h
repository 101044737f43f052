/* wsk protocol core: RFC 6455 framing, masking, UTF-8, HTTP/1.1 heads and the
 * opening handshake.
 *
 * Everything here is I/O-free and clock-free: bytes go in, events and bytes
 * come out. Nothing allocates, nothing keeps global state, every state object
 * lives in the caller's memory. A program with its own event loop drives a
 * WebSocket with these pieces and wsk/session.h, which puts them together.
 */
#ifndef WSK_PROTO_H
#define WSK_PROTO_H

#include "wsk/common.h"
#include "wsk/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Masking (RFC 6455 section 5.3)                                            */
/* ------------------------------------------------------------------------ */

/* XORs len bytes of buf in place with the 4-byte masking key. offset is the
 * position of buf[0] within the frame payload, so a payload can be unmasked in
 * pieces: byte i is XORed with key[(offset + i) % 4]. Any alignment of buf,
 * any offset. Applying it twice restores the input. Cannot fail; buf may be
 * NULL when len is 0. */
WSK_API void wsk_mask(uint8_t *buf, size_t len, const uint8_t key[4], uint64_t offset);

/* As wsk_mask(), but reads src and writes the masked bytes to dst (which may
 * equal src; otherwise the ranges must not overlap). Cannot fail; both may
 * be NULL when len is 0. */
WSK_API void wsk_mask_copy(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t key[4],
                           uint64_t offset);

/* ------------------------------------------------------------------------ */
/* UTF-8 validation (RFC 3629), incremental and fail-fast                    */
/* ------------------------------------------------------------------------ */

/* Validator state. A value type: zero it or call wsk_utf8_init(). */
struct wsk_utf8 {
    uint8_t state;
};

/* Resets u to the start of a text. Cannot fail. */
WSK_API void wsk_utf8_init(struct wsk_utf8 *u);

/* Feeds len more bytes of one text. Returns 0 while the bytes seen so far are
 * a prefix of some valid UTF-8 text, WSK_EUTF8 as soon as they cannot be
 * (overlong forms, surrogates U+D800..U+DFFF, code points above U+10FFFF,
 * stray or missing continuation bytes, bytes C0, C1, F5..FF). Once it has
 * failed it keeps failing until wsk_utf8_init(). */
WSK_API int wsk_utf8_feed(struct wsk_utf8 *u, const uint8_t *s, size_t len);

/* True when the bytes fed so far end on a character boundary, that is, the
 * text may end here; false after an error. */
WSK_API bool wsk_utf8_is_complete(const struct wsk_utf8 *u);

/* True when s[0..len) is one whole valid UTF-8 text (the empty text is).
 * s may be NULL when len is 0 (likewise for wsk_utf8_feed()). */
WSK_API bool wsk_utf8_valid(const uint8_t *s, size_t len);

/* ------------------------------------------------------------------------ */
/* Frames (RFC 6455 section 5)                                               */
/* ------------------------------------------------------------------------ */

enum wsk_opcode {
    WSK_OP_CONT = 0x0,
    WSK_OP_TEXT = 0x1,
    WSK_OP_BINARY = 0x2,
    WSK_OP_CLOSE = 0x8,
    WSK_OP_PING = 0x9,
    WSK_OP_PONG = 0xA,
};

/* Close codes (RFC 6455 section 7.4.1 and the IANA registry). */
enum wsk_close_code {
    WSK_CLOSE_NORMAL = 1000,
    WSK_CLOSE_GOING_AWAY = 1001,
    WSK_CLOSE_PROTOCOL = 1002,
    WSK_CLOSE_UNSUPPORTED = 1003,
    WSK_CLOSE_NO_STATUS = 1005, /* never on the wire */
    WSK_CLOSE_ABNORMAL = 1006,  /* never on the wire */
    WSK_CLOSE_INVALID_DATA = 1007,
    WSK_CLOSE_POLICY = 1008,
    WSK_CLOSE_TOO_BIG = 1009,
    WSK_CLOSE_EXTENSION = 1010,
    WSK_CLOSE_INTERNAL = 1011,
    WSK_CLOSE_TRY_AGAIN_LATER = 1013, /* overloaded: come back later */
};

/* True for codes an endpoint may put in a close frame: 1000-1003, 1007-1014,
 * 3000-4999. */
WSK_API bool wsk_close_code_is_valid(unsigned code);

/* Bits of a frame's first byte besides the opcode. */
#define WSK_FRAME_FIN  0x80
#define WSK_FRAME_RSV1 0x40

enum wsk_role {
    WSK_ROLE_SERVER = 0, /* receives masked frames */
    WSK_ROLE_CLIENT = 1, /* receives unmasked frames */
};

/* Parser configuration. Zero means default; fill with wsk_frame_config_init(). */
struct wsk_frame_config {
    enum wsk_role role;
    uint64_t max_frame;   /* largest frame payload accepted; 0: 16 MiB */
    uint64_t max_message; /* largest data message (all fragments); 0: 16 MiB */
    uint8_t rsv_allowed;  /* RSV bits an extension negotiated: WSK_FRAME_RSV1 */
    bool no_utf8_check;   /* skip UTF-8 validation of text (the caller does it) */
};

/* Fills cfg with the defaults: server role, 16 MiB limits, no RSV bits,
 * UTF-8 checked. Cannot fail. */
WSK_API void wsk_frame_config_init(struct wsk_frame_config *cfg);

/* Incremental frame parser (RFC 6455 section 5.2). A value type in the
 * caller's memory, about 80 bytes; it never buffers payload: payload is handed
 * out in place, unmasked, as it arrives. The fields are private. */
struct wsk_frame_parser {
    uint64_t max_frame;
    uint64_t max_message;
    uint64_t frame_len;       /* payload length of the current frame */
    uint64_t frame_off;       /* payload bytes of the current frame seen */
    uint64_t msg_len;         /* payload bytes of the current data message */
    uint8_t hdr[14];          /* header bytes collected so far */
    uint8_t hdr_len;          /* how many of them */
    uint8_t state;            /* header, payload or failed */
    uint8_t flags;            /* role, options, current frame and message bits */
    uint8_t rsv_allowed;      /* RSV bits allowed on data frames */
    uint8_t opcode;           /* opcode of the current frame */
    uint8_t msg_opcode;       /* TEXT or BINARY while a data message is open, else 0 */
    uint8_t close_len;        /* close code bytes seen (0..2) */
    struct wsk_utf8 utf8;     /* current text message */
    struct wsk_utf8 utf8_ctl; /* current close reason */
    uint16_t close_code;      /* code of the current close frame */
    uint16_t error_close;     /* close code that answers the error, once failed */
};

/* One piece of a frame's payload. Every frame yields at least one chunk (an
 * empty frame yields one empty chunk with is_frame_start and is_frame_end). */
struct wsk_frame_chunk {
    uint8_t *data; /* unmasked payload bytes, pointing into the input */
    size_t len;
    uint64_t frame_len;    /* whole payload length of this frame */
    uint8_t opcode;        /* opcode of this frame as sent (CONT for continuations) */
    uint8_t msg_opcode;    /* TEXT/BINARY for data frames, the opcode for control frames */
    bool is_frame_start;   /* first chunk of this frame */
    bool is_frame_end;     /* last chunk of this frame */
    bool is_fin;           /* the frame has FIN set */
    bool is_message_start; /* first chunk of a message (first frame, first chunk) */
    bool is_message_end;   /* last chunk of a message (FIN frame, last chunk) */
    bool is_compressed;    /* RSV1 on the message's first frame */
    uint16_t close_code;   /* close frames, on the last chunk: the code, or 1005 if empty */
};

/* Prepares p to parse a new stream. cfg may be NULL for defaults and is not
 * kept; rsv_allowed bits other than RSV1..RSV3 are ignored. Cannot fail. */
WSK_API void wsk_frame_parser_init(struct wsk_frame_parser *p, const struct wsk_frame_config *cfg);

/* Consumes bytes from in[0..len) and stops after at most one chunk.
 *
 * Returns the number of bytes consumed (0..len) and sets *has_chunk; when
 * true, *chunk describes payload bytes that lie in the consumed part of in,
 * unmasked in place (hence in is not const), valid as long as in is. Call
 * again with the rest. A return of len with *has_chunk false means
 * everything was taken into the parser's header state. At most 1 GiB of
 * payload is handed out per call.
 *
 * Returns WSK_EPROTO, WSK_EUTF8 or WSK_ETOOBIG on a violation; the close
 * code to send is then wsk_frame_parser_close_code() (1002, 1007, 1009),
 * *has_chunk is false, and every later call fails the same way. WSK_EUTF8
 * comes with 1007, WSK_ETOOBIG with 1009, WSK_EPROTO with 1002.
 *
 * The same byte stream split anywhere gives the same chunks' bytes and
 * flags, except that chunk boundaries follow the splits. */
WSK_API int64_t wsk_frame_parse(struct wsk_frame_parser *p, uint8_t *in, size_t len,
                                struct wsk_frame_chunk *chunk, bool *has_chunk);

/* Payload bytes of the current frame not yet handed out (0 between frames,
 * while its header is incomplete, and after an error). Lets a caller read a
 * large frame's rest straight into its final buffer. */
WSK_API uint64_t wsk_frame_parser_payload_left(const struct wsk_frame_parser *p);

/* The close code that answers the parser's error (1002, 1007 or 1009), 0
 * while it has not failed. */
WSK_API uint16_t wsk_frame_parser_close_code(const struct wsk_frame_parser *p);

/* Largest frame header: 2 + 8 (length) + 4 (mask). */
#define WSK_FRAME_HEADER_MAX 14

/* Writes a frame header for a payload of payload_len bytes into out and
 * returns its length (2 to 14). first_byte is the opcode ORed with
 * WSK_FRAME_FIN / WSK_FRAME_RSV1. mask is NULL for server frames, else the
 * 4-byte key written after the length (the payload must then be masked with
 * wsk_mask_copy()). Cannot fail. payload_len must be below 2^63 (RFC 6455
 * 5.2); it is not checked. */
WSK_API size_t wsk_frame_header_encode(uint8_t out[WSK_FRAME_HEADER_MAX], uint8_t first_byte,
                                       uint64_t payload_len, const uint8_t *mask);

/* Writes a whole frame (header then payload, masked when mask is non-NULL)
 * into out, which must not overlap payload. Returns its length, or
 * WSK_ENOSPC when cap is too small (out is then untouched). payload may be
 * NULL when payload_len is 0. */
WSK_API int64_t wsk_frame_encode(uint8_t *out, size_t cap, uint8_t first_byte,
                                 const uint8_t *payload, size_t payload_len, const uint8_t *mask);

/* Writes a close payload (code in network order, then reason) into out,
 * which must hold 125 bytes. code 0 with no reason makes an empty payload.
 * Returns the length (0, or 2 + reason_len); WSK_EPROTO when code is not
 * valid on the wire (wsk_close_code_is_valid()) or is 0 with a reason;
 * WSK_ETOOBIG when the reason exceeds 123 bytes; WSK_EUTF8 when reason is not
 * UTF-8; checked in that order. reason may be NULL when reason_len is 0. */
WSK_API int wsk_close_payload_encode(uint8_t out[125], unsigned code, const char *reason,
                                     size_t reason_len);

/* ------------------------------------------------------------------------ */
/* HTTP/1.1 heads (RFC 9112) for the opening handshake                       */
/* ------------------------------------------------------------------------ */

#define WSK_HTTP_MAX_HEADERS      64
#define WSK_HTTP_DEFAULT_MAX_HEAD 8192

struct wsk_http_header {
    struct wsk_slice name;
    struct wsk_slice value; /* leading and trailing whitespace removed */
};

struct wsk_http_request {
    struct wsk_slice method;
    struct wsk_slice target; /* request-target as sent */
    struct wsk_slice path;   /* target up to '?' */
    struct wsk_slice query;  /* after '?', empty when none */
    int minor_version;       /* HTTP/1.x */
    size_t num_headers;
    struct wsk_http_header headers[WSK_HTTP_MAX_HEADERS];
};

struct wsk_http_response {
    int status;
    struct wsk_slice reason;
    int minor_version;
    size_t num_headers;
    struct wsk_http_header headers[WSK_HTTP_MAX_HEADERS];
};

/* Incremental head scanner: remembers how far the end of the head was
 * searched, so a head that trickles in byte by byte is scanned once. */
struct wsk_http_parser {
    size_t scanned;
    size_t max_head; /* 0: WSK_HTTP_DEFAULT_MAX_HEAD */
};

/* Prepares p for a new head; max_head 0 means WSK_HTTP_DEFAULT_MAX_HEAD,
 * values above INT_MAX act as INT_MAX. Cannot fail. */
WSK_API void wsk_http_parser_init(struct wsk_http_parser *p, size_t max_head);

/* Parses a request head from buf[0..len), all bytes received so far
 * (the same buffer grown, not only new bytes). Returns the length of the head
 * including its final empty line when it is complete and well formed (the
 * slices in req point into buf); 0 when more bytes are needed; WSK_EHTTP when
 * malformed (answer 400); WSK_EHEADTOOBIG when the head exceeds max_head or
 * has more than WSK_HTTP_MAX_HEADERS lines (answer 431). Bare LF line ends
 * are accepted (RFC 9112 2.2); a bare CR or another control character fails
 * as soon as it arrives; leading blank lines are not skipped. After an error
 * *req is unspecified; calling again with the same buffer gives the same
 * result. A buffer shorter than the one seen before restarts the scan. */
WSK_API int wsk_http_request_parse(struct wsk_http_parser *p, const char *buf, size_t len,
                                   struct wsk_http_request *req);

/* The same for a response head: status-line "HTTP/1.x NNN [reason]" with a
 * status of 100 to 999; the same returns (WSK_EHTTP, WSK_EHEADTOOBIG). */
WSK_API int wsk_http_response_parse(struct wsk_http_parser *p, const char *buf, size_t len,
                                    struct wsk_http_response *resp);

/* Case-insensitive lookup of the first header named name (NUL-terminated).
 * Returns a pointer to its value inside headers, or NULL when absent. */
WSK_API const struct wsk_slice *wsk_http_header_get(const struct wsk_http_header *headers,
                                                    size_t num_headers, const char *name);

/* True when any header named name carries token in its comma-separated
 * list (case-insensitive, optional whitespace around elements, several
 * lines of that name read as one list). name and token are NUL-terminated. */
WSK_API bool wsk_http_header_has_token(const struct wsk_http_header *headers, size_t num_headers,
                                       const char *name, const char *token);

/* ------------------------------------------------------------------------ */
/* Opening handshake (RFC 6455 section 4)                                    */
/* ------------------------------------------------------------------------ */

/* Writes base64(SHA-1(key + the RFC 6455 GUID)) as 28 characters and a NUL.
 * Cannot fail: the digest is computed in place, with no allocation. key is
 * taken as it is (any length, not checked). */
WSK_API void wsk_handshake_accept_key(const char *key, size_t key_len, char out[29]);

struct wsk_handshake_server_config {
    const char *const *subprotocols; /* in the server's order of preference */
    size_t num_subprotocols;
    const char *const *origins; /* allowed Origin values; none: any */
    size_t num_origins;
};

/* What a valid upgrade request asked for; slices point into the request. */
struct wsk_handshake_info {
    struct wsk_slice path;
    struct wsk_slice query;
    struct wsk_slice host;
    struct wsk_slice origin; /* empty when absent */
    struct wsk_slice key;
    struct wsk_slice subprotocol; /* chosen by the server, empty when none */
    struct wsk_slice extensions;  /* first Sec-WebSocket-Extensions value, empty when absent */
    /* Why the status is not 101, for a log: a static English phrase ("no
     * Upgrade: websocket", "Origin not allowed", ...); "" for 101. */
    const char *refusal;
};

/* Checks an upgrade request. Returns 101 when it is a valid WebSocket
 * upgrade (info filled), else the HTTP status to answer: 405 for a method
 * other than GET, 426 for a missing or unsupported Sec-WebSocket-Version,
 * 403 for an Origin not in the allowed list, 400 for anything else malformed
 * (missing Upgrade: websocket or Connection: upgrade, Host missing, a key that
 * is not base64 of 16 bytes, HTTP older than 1.1, a repeated Host,
 * Sec-WebSocket-Version or Sec-WebSocket-Key). With an origin list, every
 * Origin line must be in it. cfg and info may be NULL. The slices in info point
 * into req's buffer (subprotocol too, not into cfg). Absent fields are empty,
 * non-NULL slices; for a status other than 101 only path and query are sure to
 * be filled. Never returns a negative value. */
WSK_API int wsk_handshake_server_check(const struct wsk_http_request *req,
                                       const struct wsk_handshake_server_config *cfg,
                                       struct wsk_handshake_info *info);

/* True when req asks for a WebSocket upgrade at all (an Upgrade header listing
 * websocket, in any case), so a server can route other requests to plain
 * HTTP handling. */
WSK_API bool wsk_handshake_is_upgrade(const struct wsk_http_request *req);

/* Writes the 101 response for info into out (not NUL-terminated).
 * extra_headers (may be NULL) are whole header lines ("Name: value\r\n"...),
 * checked, then appended verbatim. Returns the length, WSK_ENOSPC,
 * or -EINVAL when extra_headers is not a run of such lines or the subprotocol
 * contains a control character. info->key is hashed as it is: pass one that
 * wsk_handshake_server_check() accepted. */
WSK_API int wsk_handshake_server_accept(char *out, size_t cap,
                                        const struct wsk_handshake_info *info,
                                        const char *extra_headers);

/* Writes a complete error response for status (400, 403, 404, 405, 426, 431,
 * 503, ...) with a short text body, Connection: close, and the headers the
 * status calls for (Sec-WebSocket-Version: 13 with 426, Allow: GET with 405).
 * Returns the length, WSK_ENOSPC, or -EINVAL for a status outside 400-599
 * (unlisted codes get the reason "Client Error" or "Server Error"). */
WSK_API int wsk_handshake_server_reject(char *out, size_t cap, int status);

/* Makes a Sec-WebSocket-Key from 16 random bytes the caller provides
 * (24 characters and a NUL). Cannot fail. */
WSK_API void wsk_handshake_client_key(const uint8_t random16[16], char out[25]);

struct wsk_handshake_client_request {
    const char *host;                /* Host header value: "name:port" or "[::1]:port" */
    const char *target;              /* path and query, "/" when empty */
    const char *key;                 /* from wsk_handshake_client_key() */
    const char *const *subprotocols; /* offered, may be none */
    size_t num_subprotocols;
    const char *origin;        /* NULL: no Origin header */
    const char *extra_headers; /* whole lines "Name: value\r\n", may be NULL */
};

/* Writes the upgrade request. Returns its length, WSK_ENOSPC, or -EINVAL when
 * host or key is NULL, a field contains a control character, the target
 * contains a space, a subprotocol is not a token, or extra_headers is
 * malformed. A NULL or empty target means "/". The strings are copied into
 * out; nothing is kept. */
WSK_API int wsk_handshake_client_request(char *out, size_t cap,
                                         const struct wsk_handshake_client_request *r);

/* Validates the server's answer to a request made with key and the offered
 * subprotocols. Returns 0 and sets *chosen (empty when none) on success;
 * WSK_EHSTATUS when the status is not 101 (resp->status says which),
 * WSK_EHANDSHAKE when Upgrade or Connection is wrong, WSK_EHACCEPT for a
 * wrong, missing or repeated Sec-WebSocket-Accept, WSK_EHSUBPROTO for a
 * subprotocol that was not offered (or a repeated header or a list). key and
 * the subprotocols are NUL-terminated. chosen may be NULL; it points into
 * resp's buffer and is set to empty first, whatever the result. */
WSK_API int wsk_handshake_client_verify(const struct wsk_http_response *resp, const char *key,
                                        const char *const *subprotocols, size_t num_subprotocols,
                                        struct wsk_slice *chosen);

#ifdef __cplusplus
}
#endif

#endif
