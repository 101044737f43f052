/* wsk: HTTP/1.1 client messages without I/O (RFC 9112): a request writer
 * and a response body decoder.
 *
 * The response head is parsed by wsk_http_response_parse() (wsk/proto.h);
 * this header adds what a client needs around it: writing the request, and
 * the body that follows the head, framed by Content-Length, by the chunked
 * transfer coding, or by the end of the connection. Like the rest of the
 * core, nothing here allocates, touches a socket or reads a clock; every
 * state object lives in the caller's memory.
 *
 * A client's round trip:
 *
 *   wsk_http_request_write()     the head, then the body bytes as they are
 *   wsk_http_response_parse()    until it returns the head's length
 *   wsk_http_body_init()         from the parsed head and the method sent
 *   wsk_http_body_parse()        (or _decode()) on every byte after the head
 *   wsk_http_body_finish()       at the end of the stream: complete or cut?
 */
#ifndef WSK_HTTP_H
#define WSK_HTTP_H

#include "wsk/common.h"
#include "wsk/error.h"
#include "wsk/proto.h"
#include "wsk/url.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Requests (RFC 9112 section 3)                                             */
/* ------------------------------------------------------------------------ */

/* What to write. Zero means default. */
struct wsk_http_request_spec {
    const char *method;         /* a token: "GET", "POST", ...; NULL: "GET" */
    const struct wsk_url *url;  /* the request-target and Host come from here */
    const char *const *headers; /* extra header lines, each "Name: value" without CRLF */
    size_t num_headers;
    const char *user_agent; /* User-Agent value; NULL or "": none */
    bool has_body;          /* a body of body_len bytes follows the head */
    uint64_t body_len;
    bool keep_alive; /* false: "Connection: close" (one request per connection) */
};

/* Writes a request head into out (not NUL-terminated):
 *
 *   METHOD TARGET HTTP/1.1\r\n
 *   Host: HOST[:PORT]\r\n             the port only when not the scheme's default
 *   User-Agent: ...\r\n               when user_agent is set
 *   <headers>\r\n ...                 in order
 *   Content-Length: N\r\n             when has_body
 *   Connection: close\r\n             unless keep_alive
 *   \r\n
 *
 * TARGET is the URL's path and query (wsk_url_request_target()), HOST its
 * host (IPv6 in brackets). A header of the caller's named Host, User-Agent
 * or Connection replaces the one the writer would add.
 *
 * Returns the length of the head, WSK_ENOSPC when it does not fit in cap
 * bytes (out then holds a prefix), or -EINVAL, with nothing written, when
 * spec or spec->url is NULL or a field could change the head's structure:
 * a method that is not a token; a host, path or query with a space, a
 * control character or a NUL (possible only in a struct wsk_url not made by
 * wsk_url_parse()), or a path not starting with '/'; a header that is not a
 * token, ':' and a value without control characters (HTAB aside), so no CR,
 * LF or NUL can inject a line; a user_agent with a control character; or a
 * header named Content-Length or Transfer-Encoding: the framing is the
 * writer's (has_body), since a second framing header is how requests are
 * smuggled. The strings are read during the call only. */
WSK_API int wsk_http_request_write(char *out, size_t cap, const struct wsk_http_request_spec *spec);

/* ------------------------------------------------------------------------ */
/* Response bodies (RFC 9112 sections 6 and 7)                               */
/* ------------------------------------------------------------------------ */

/* How the body of a response is delimited (RFC 9112 section 6.3). */
enum wsk_http_framing {
    WSK_HTTP_BODY_NONE = 0, /* no body: a HEAD request, or status 1xx, 204, 304 */
    WSK_HTTP_BODY_LENGTH,   /* Content-Length bytes */
    WSK_HTTP_BODY_CHUNKED,  /* Transfer-Encoding: chunked */
    WSK_HTTP_BODY_EOF,      /* everything until the connection ends */
};

/* Longest chunk-size line accepted, extensions and CRLF included (Go's
 * net/http has the same limit); a longer one fails with WSK_EHTTP. The
 * trailer section may take up to WSK_HTTP_DEFAULT_MAX_HEAD bytes. */
#define WSK_HTTP_CHUNK_LINE_MAX 4096

/* Decoder state. A value type in the caller's memory (24 bytes); it never
 * buffers: body bytes are handed out where they lie in the input. The
 * fields are private. */
struct wsk_http_body {
    uint64_t left;     /* LENGTH: bytes to come; CHUNKED: the chunk's size, then its bytes left */
    uint64_t received; /* body bytes handed out so far */
    uint32_t line_len; /* bytes of the current chunk-size line, or of the trailer section */
    uint8_t framing;   /* enum wsk_http_framing */
    uint8_t state;     /* where in the framing, done or failed */
};

/* Prepares b for the body of resp, the answer to a request made with
 * method (NULL: "GET"; compared case-sensitively, as methods are).
 *
 * The framing follows RFC 9112 section 6.3, in this order: no body for a
 * HEAD request and for status 1xx, 204 and 304 (whatever the headers say);
 * a 2xx answer to CONNECT is a tunnel: WSK_HTTP_BODY_EOF; Transfer-Encoding
 * must then be exactly "chunked" (one element, in one line, any case);
 * else Content-Length, whose lines and list elements must all be the same
 * decimal number; else the body runs until the connection ends. A 1xx other
 * than 101 is an interim response: the real one's head follows.
 *
 * Returns 0, or WSK_EHTTP, and every later call on b fails, when the
 * framing cannot be trusted: both Transfer-Encoding and Content-Length
 * (a request smuggling and response splitting vector, which RFC 9112
 * section 6.3 lets a client refuse), Transfer-Encoding in an HTTP/1.0
 * response (section 6.1: faulty framing), a transfer coding other than
 * chunked alone (none was asked for: we never send TE), or a Content-Length
 * that is not digits, overflows 64 bits, or disagrees with another one.
 * resp and method are read during the call only. */
WSK_API int wsk_http_body_init(struct wsk_http_body *b, const struct wsk_http_response *resp,
                               const char *method);

/* Consumes bytes from in[0..len) and stops after at most one run of body
 * bytes. Returns the number of bytes consumed (0..len) and sets *body and
 * *body_len to the body bytes among them (in place: *body points into in,
 * valid as long as in is; NULL and 0 when none). Call again with the rest.
 * Framing bytes (chunk sizes, extensions, CRLFs, trailers, which are
 * checked and dropped) are consumed without a body run.
 *
 * A return below len with no body run means the body is complete
 * (wsk_http_body_is_done()): the bytes left are not part of it (the next
 * response on a kept-alive connection, or garbage after a
 * Content-Length). Once done, every call consumes 0.
 *
 * Returns WSK_EHTTP on malformed chunked framing, and on every later call:
 * a chunk-size that is not hex, has no digit or exceeds 2^63 - 1; an
 * extension that is not ";name[=token|quoted-string]"; any line end other
 * than CRLF (a bare LF or CR, or a missing CRLF after chunk data); a
 * chunk-size line over WSK_HTTP_CHUNK_LINE_MAX or a trailer section over
 * WSK_HTTP_DEFAULT_MAX_HEAD bytes; a trailer line that is not a field line
 * (obs-fold included). Body runs handed out before the error stay valid.
 *
 * The same bytes split anywhere give the same body bytes, the same verdict
 * and the same point of completion; only the runs' boundaries follow the
 * splits. in may be NULL when len is 0. */
WSK_API int64_t wsk_http_body_parse(struct wsk_http_body *b, const uint8_t *in, size_t len,
                                    const uint8_t **body, size_t *body_len);

/* wsk_http_body_parse() over all of buf[0..len), the body bytes moved to
 * the front of buf (in place, no copy when there is no framing to drop).
 * Returns how many body bytes are now at buf[0..), and sets *consumed to the
 * input bytes used: len, or less when the body ended inside buf (the rest
 * is not part of it). On a framing error it returns the body bytes decoded
 * before it, if any, with *consumed at the end of the last of them, and
 * WSK_EHTTP from the next call; else WSK_EHTTP at once (*consumed then says
 * nothing useful). buf may be NULL when len is 0. */
WSK_API int64_t wsk_http_body_decode(struct wsk_http_body *b, uint8_t *buf, size_t len,
                                     size_t *consumed);

/* True once the whole body has been consumed: at once for
 * WSK_HTTP_BODY_NONE and a Content-Length of 0, after the last byte for
 * WSK_HTTP_BODY_LENGTH, after the final CRLF of the trailer section for
 * chunked, and only after wsk_http_body_finish() for WSK_HTTP_BODY_EOF.
 * False after an error. */
WSK_API bool wsk_http_body_is_done(const struct wsk_http_body *b);

/* The stream ended (the peer closed the connection). Returns 0 when the body
 * is complete, which for WSK_HTTP_BODY_EOF is now (b is done from here);
 * WSK_ETRUNCATED when the stream ended before the body did: fewer bytes than
 * Content-Length, or chunked without its last chunk and trailer section;
 * WSK_EHTTP after a framing error. Calling it again gives the same answer. */
WSK_API int wsk_http_body_finish(struct wsk_http_body *b);

/* The framing wsk_http_body_init() chose. Cannot fail. */
WSK_API enum wsk_http_framing wsk_http_body_framing(const struct wsk_http_body *b);

/* Body bytes handed out so far. Cannot fail. */
WSK_API uint64_t wsk_http_body_received(const struct wsk_http_body *b);

#ifdef __cplusplus
}
#endif

#endif
