/* Private to the library: writing HTTP/1.1 heads (http1_write.c).
 *
 * Reason phrases, status lines, whole response heads, IMF-fixdates and
 * content types live here, in one place, for every head the library writes:
 * the handshake's 101 and its rejections (handshake.c), the server's plain
 * HTTP replies and static files (src/ws/server.c, src/ws/static.c), and
 * client requests (wsk_http_request_write(), handshake.c). So do the checks
 * on what callers pass in to be written into a head. Like the rest of
 * src/proto it is I/O-free and clock-free: the time for the Date header is
 * passed in. */
#ifndef WSK_PROTO_HTTP1_INTERNAL_H
#define WSK_PROTO_HTTP1_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/text_internal.h"

/* ---- what callers may put into a head -------------------------------------
 *
 * Bytes a caller passes in to be written into a head must not be able to
 * change its structure: a CR or LF would inject header lines (or a whole
 * second message), a NUL cuts some readers short. These are the checks,
 * shared by every writer. */

/* True when s may be a field value: no control character but HTAB
 * (RFC 9110 section 5.5; obs-text, bytes 0x80 and above, passes). */
bool wsk__http_is_field_value(struct wsk_slice s);

/* True when s (NUL-terminated) is a non-empty token (RFC 9110 section
 * 5.6.2): a method, a header name, a subprotocol. */
bool wsk__http_is_token(const char *s);

/* True when line[0..len) is one field line without its CRLF: a token, ':',
 * then a field value (whitespace around it allowed). Sets *name to the
 * name when true; name may be NULL. */
bool wsk__http_is_field_line(const char *line, size_t len, struct wsk_slice *name);

/* True when s (NUL-terminated) is a run of whole field lines, each
 * "Name: value\r\n"; the empty string is. */
bool wsk__http_are_header_lines(const char *s);

/* Returns the RFC 9110 reason phrase for status ("OK", "Not Found", ...).
 * A code without an entry gets its class's name from RFC 9110 section 15
 * ("Informational", "Success", "Redirection", "Client Error", "Server
 * Error"), and one outside 100-599 "Unknown". Never returns NULL; the result
 * is a static string. */
const char *wsk__http_reason(int status);

/* Appends "HTTP/1.1 <status> <reason>\r\n" to w. */
void wsk__http_status_line(struct wsk__wbuf *w, int status);

/* The 101's status line as a string constant, so that the handshake's
 * answer joins it to the constant header lines after it and copies them at
 * once; it is the one head written on every connection. Tests hold it equal
 * to wsk__http_status_line(w, 101). */
#define WSK__HTTP_STATUS_LINE_101 "HTTP/1.1 101 Switching Protocols\r\n"

/* Writes a response head into out:
 *
 *   HTTP/1.1 <status> <reason>\r\n
 *   Server: wsk\r\n
 *   Date: <IMF-fixdate of now>\r\n
 *   Content-Type: <content_type>\r\n        (only when content_type != NULL)
 *   Content-Length: <content_length>\r\n
 *   Connection: keep-alive|close\r\n
 *   <extra>                                  (whole CRLF-terminated lines, may be NULL)
 *   \r\n
 *
 * now is the Unix time for the Date header; passing it in keeps the function
 * clock-free. status should be a three-digit code. content_type and extra are
 * copied verbatim and must not contain untrusted bytes.
 *
 * Returns the length of the head, or WSK_ENOSPC when it does not fit in cap
 * bytes including a terminating NUL (out then holds a truncated head). On
 * success out is NUL-terminated. */
int wsk__http_head(char *out, size_t cap, int status, const char *content_type,
                   uint64_t content_length, bool keep_alive, const char *extra, int64_t now);

/* Formats t (Unix time) as an IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT",
 * into out, NUL-terminated. The format has exactly four year digits, so t is
 * clamped to years 0001 to 9999. */
void wsk__http_date(int64_t t, char out[30]);

/* Returns the Content-Type for the extension of path (the part after the
 * last '.' of the last segment; ASCII case-insensitive), or
 * "application/octet-stream" when there is none or it is unknown. Never
 * returns NULL; the result is a static string. path may be NULL when len is
 * 0. */
const char *wsk__mime_type(const char *path, size_t len);

/* If-None-Match value v: "*", or a list of entity tags compared weakly with
 * etag (a quoted tag; W/ prefixes ignored, RFC 9110 section 13.1.2). */
bool wsk__http_etag_listed(struct wsk_slice v, const char *etag);

/* A Range value for a body of size bytes: "bytes=A-B", "bytes=A-" or
 * "bytes=-N", one range (several are answered whole, as RFC 9110 allows).
 * Returns 1 with *start and *len (> 0, start + len <= size) set; 0 to
 * ignore the header (not bytes=, malformed, several ranges, B < A); -1
 * when the range is unsatisfiable (A >= size, a suffix of 0, an empty
 * body). */
int wsk__http_parse_range(struct wsk_slice v, uint64_t size, uint64_t *start, uint64_t *len);

#endif
