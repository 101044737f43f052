/* wsk: URLs of the form scheme://host[:port][/path][?query][#fragment].
 *
 * One I/O-free parser for every URL the library and the wsk command take:
 * WebSocket (ws, wss), HTTP (http, https) and raw sockets (tcp, udp). It
 * splits and checks; it does not resolve names, decode percent escapes or
 * normalise paths. The caller decides which schemes it accepts.
 */
#ifndef WSK_URL_H
#define WSK_URL_H

#include "wsk/common.h"
#include "wsk/error.h"

#ifdef __cplusplus
extern "C" {
#endif

enum wsk_url_scheme {
    WSK_URL_WS = 1, /* default port 80 */
    WSK_URL_WSS,    /* 443 */
    WSK_URL_HTTP,   /* 80 */
    WSK_URL_HTTPS,  /* 443 */
    WSK_URL_TCP,    /* no default: the port is required */
    WSK_URL_UDP,    /* likewise */
};

/* A parsed URL. Slices point into the string that was parsed (path may
 * instead point to a static "/"); nothing is allocated or copied. */
struct wsk_url {
    enum wsk_url_scheme scheme;
    struct wsk_slice host;  /* a name, an IPv4 address, or an IPv6 address without brackets */
    struct wsk_slice path;  /* from the '/' on, before '?' or '#'; "/" when absent */
    struct wsk_slice query; /* after '?', before '#'; empty when absent */
    uint16_t port;          /* given, or the scheme's default: 1..65535 */
    bool is_ipv6;           /* host was written in brackets */
    bool has_port;          /* the URL gave the port */
    bool has_query;         /* the URL has a '?', even with an empty query */
    bool has_fragment;      /* the URL has a '#'; the fragment itself is dropped */
    /* On failure: what is wrong, as a static English phrase ("userinfo
     * (user:pass@) is not supported"), and the byte offset where. */
    const char *error;
    size_t error_at;
};

/* Parses url[0..len). Returns 0 with *out filled (its slices borrow url,
 * which must outlive them), or WSK_EURL with out->error and out->error_at set
 * (other fields unspecified) when:
 *   - url is NULL ("no URL");
 *   - the scheme is not one of the six above (compared without case), or
 *     "://" does not follow it;
 *   - the host is empty, contains a byte other than letters, digits and
 *     "-._~!$&'()*+,;=" (so no spaces, control characters, '%' escapes or
 *     non-ASCII bytes), or, in brackets, is not made of hex digits, ':' and
 *     '.' with at least one ':' (no zone identifiers);
 *   - userinfo ("user:pass@host") is present: credentials in URLs end up in
 *     logs and histories, and neither WebSocket nor wsk uses them;
 *   - the port is empty, not all digits, 0 or above 65535, or missing for
 *     tcp and udp;
 *   - the path, query or fragment contains a space, a control character or
 *     DEL (bytes 0x80 and above pass, for UTF-8 paths).
 * A NUL byte anywhere inside len is a control character. Port 0 is refused
 * because nothing can be reached there; to listen on any port, pass the
 * port separately. */
WSK_API int wsk_url_parse(const char *url, size_t len, struct wsk_url *out);

/* Writes the request-target of an HTTP request line for u (RFC 9112
 * section 3.2.1, origin-form): the path, then '?' and the query when the URL
 * had a '?'. NUL-terminated. Returns its length (without the NUL), or
 * WSK_ENOSPC when it does not fit in cap bytes with the NUL (the contents of out
 * are then unspecified). A target is never longer than the URL
 * plus one byte (the '/' of a URL without a path), so a buffer that size
 * always suffices. */
WSK_API int wsk_url_request_target(const struct wsk_url *u, char *out, size_t cap);

/* Writes the value of a Host header for u (RFC 9110 section 7.2): the host,
 * in brackets when it is IPv6, then ':' and the port unless the port is the
 * scheme's default. NUL-terminated. Returns its length (without the NUL), or
 * WSK_ENOSPC when it does not fit in cap bytes with the NUL (the contents of out
 * are then unspecified); host.len + 9 always suffices. */
WSK_API int wsk_url_host_header(const struct wsk_url *u, char *out, size_t cap);

/* Resolves the reference ref[0..ref_len) against the URL base[0..base_len)
 * (RFC 3986 section 5.2, strict), for a redirect's Location: an absolute URL
 * ("https://other/x"), a scheme-relative one ("//other/x", which keeps
 * base's scheme), an absolute path ("/x", base's scheme, host and port), a
 * relative path ("x", "../x": against the directory of base's path), a query
 * alone ("?q") or nothing but a fragment. Dot segments are removed from the
 * path ("/a/./b/../c" is "/a/c"); the query is the reference's, or base's
 * when the reference has no path and no query; the fragment is the
 * reference's (base's is dropped). Percent escapes are left as they are.
 *
 * Writes the result into out, NUL-terminated; it always parses with
 * wsk_url_parse(). Returns its length (without the NUL); WSK_ENOSPC when it
 * does not fit in cap bytes with the NUL (base_len + ref_len + 2 always
 * suffices; out is then unspecified); WSK_EURL when base does not parse,
 * ref is NULL, or the result is not a URL wsk_url_parse() accepts (another
 * scheme, userinfo, a space or control character in ref, ...). out must
 * not overlap base or ref. */
WSK_API int wsk_url_resolve(const char *base, size_t base_len, const char *ref, size_t ref_len,
                            char *out, size_t cap);

/* The scheme's default port: 80 for ws and http, 443 for wss and https, 0
 * for tcp and udp (which have none) and for a value outside the enum. */
WSK_API uint16_t wsk_url_default_port(enum wsk_url_scheme scheme);

#ifdef __cplusplus
}
#endif

#endif
