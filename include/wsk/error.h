/* wsk: error codes.
 *
 * Every wsk function that can fail returns zero or a count on success and a
 * negative value on failure. Failures from the operating system pass through
 * as negative errno values (-ECONNREFUSED, ...). wsk's own codes start at
 * -1000 and are listed once, below; wsk_strerror() and wsk_err_name() are
 * generated from the same table.
 */
#ifndef WSK_ERROR_H
#define WSK_ERROR_H

#include "wsk/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, value, message) */
#define WSK_ERRNO_MAP(X)                                                                           \
    X(PROTO, -1000, "WebSocket protocol error")                                                    \
    X(UTF8, -1001, "invalid UTF-8 in a text message or close reason")                              \
    X(TOOBIG, -1002, "frame or message exceeds the configured limit")                              \
    X(NOSPC, -1003, "output buffer too small")                                                     \
    X(HTTP, -1004, "malformed HTTP message")                                                       \
    X(HEADTOOBIG, -1005, "HTTP header block too large")                                            \
    X(HANDSHAKE, -1006, "WebSocket handshake rejected")                                            \
    X(HSTATUS, -1007, "server did not answer 101 Switching Protocols")                             \
    X(HACCEPT, -1008, "server sent a wrong Sec-WebSocket-Accept")                                  \
    X(HSUBPROTO, -1009, "server chose a subprotocol that was not offered")                         \
    X(HEXT, -1010, "server chose an extension that was not offered or is malformed")               \
    X(CLOSED, -1011, "connection closed")                                                          \
    X(DNS, -1012, "host name could not be resolved")                                               \
    X(URL, -1013, "invalid or unsupported URL")                                                    \
    X(FDSETSIZE, -1014, "file descriptor too large for the select backend (FD_SETSIZE)")           \
    X(BACKPRESSURE, -1015, "send queue limit reached")                                             \
    X(STATE, -1016, "operation not valid in the current state")                                    \
    X(TLS, -1017, "TLS error")                                                                     \
    X(ABNORMAL, -1018, "connection closed without a close frame")                                  \
    X(DEFLATE, -1019, "permessage-deflate data error")                                             \
    X(TRUNCATED, -1020, "connection closed before the end of the HTTP body")                       \
    X(PROXY, -1021, "the proxy did not open a tunnel")

enum wsk_errno {
#define WSK__ERR_ENUM(name, value, msg) WSK_E##name = (value),
    WSK_ERRNO_MAP(WSK__ERR_ENUM)
#undef WSK__ERR_ENUM
};

/* Returns a human-readable description of err: a wsk code from the table
 * above or a negative errno; "unknown error" for anything else (0 and
 * positive values included). Never returns NULL. The text is static, except
 * that an errno value the C library does not know may use its per-thread
 * buffer, valid until its next strerror() call. */
WSK_API const char *wsk_strerror(int err);

/* Returns the symbolic name of err ("WSK_EPROTO", "ECONNREFUSED"), or
 * "UNKNOWN" when it is neither. A static string, never NULL. */
WSK_API const char *wsk_err_name(int err);

#ifdef __cplusplus
}
#endif

#endif
