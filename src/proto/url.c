/* URLs (RFC 3986, with the WebSocket schemes of RFC 6455 section 3), split
 * in place: no allocation, no I/O, no decoding.
 *
 * One left-to-right pass, each part ending where the next one's delimiter
 * appears:
 *
 *      SCHEME --"://"--> AUTHORITY --+-- '/' --> PATH --+-- '?' --> QUERY --+
 *                          |         |                  |                   |
 *                          |         +------- '?' ------|-------------------+
 *                          |         |                  |                   v
 *                          |         +------- '#' ------+-------'#'---> FRAGMENT
 *                          v
 *        [ "[" IPv6 "]" | reg-name ] [ ":" port ]       ('@' anywhere: refused)
 *
 * The authority is cut first, at the first '/', '?' or '#' (RFC 3986 section
 * 3.2), so a '@' or ':' in the path can never be read as userinfo or a port.
 * The host is stricter than RFC 3986: a reg-name without percent escapes (a
 * resolver would not decode them) and an IPv6 literal without zone or
 * IPvFuture; getaddrinfo() judges the rest.
 */
#include "wsk/url.h"

#include <stddef.h>

#include "proto/text_internal.h"

static const struct {
    const char *name;
    size_t len;
    enum wsk_url_scheme scheme;
    uint16_t port;
} schemes[] = {
    {"ws", 2, WSK_URL_WS, 80},        {"wss", 3, WSK_URL_WSS, 443}, {"http", 4, WSK_URL_HTTP, 80},
    {"https", 5, WSK_URL_HTTPS, 443}, {"tcp", 3, WSK_URL_TCP, 0},   {"udp", 3, WSK_URL_UDP, 0},
};

uint16_t wsk_url_default_port(enum wsk_url_scheme scheme)
{
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
        if (schemes[i].scheme == scheme)
            return schemes[i].port;
    return 0;
}

static int fail(struct wsk_url *out, const char *why, size_t at)
{
    out->error = why;
    out->error_at = at;
    return WSK_EURL;
}

static bool is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* reg-name = *( unreserved / sub-delims ), RFC 3986 section 3.2.2, less
 * pct-encoded. */
static bool is_name_char(unsigned char c)
{
    return is_alpha(c) || is_digit(c) || (c != '\0' && strchr("-._~!$&'()*+,;=", c) != NULL);
}

static bool is_v6_char(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.';
}

/* Path, query and fragment bytes: anything but what would end or split an
 * HTTP request line. */
static bool is_target_char(unsigned char c)
{
    return c > 0x20 && c != 0x7f;
}

/* Scans url[*pos..len) up to (not including) a byte of stop or the end.
 * Returns false, with *pos at the offending byte, on a byte that is not
 * allowed in a target. */
static bool scan_target(const char *url, size_t len, size_t *pos, const char *stop)
{
    for (size_t i = *pos; i < len; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c != '\0' && strchr(stop, c) != NULL) {
            *pos = i;
            return true;
        }
        if (!is_target_char(c)) {
            *pos = i;
            return false;
        }
    }
    *pos = len;
    return true;
}

static int parse_authority(const char *url, size_t start, size_t end, uint16_t default_port,
                           struct wsk_url *out)
{
    const char *at = memchr(url + start, '@', end - start);
    if (at)
        return fail(out, "userinfo (user:pass@) is not supported", (size_t)(at - url));

    size_t p = start;
    if (p < end && url[p] == '[') {
        const char *close = memchr(url + p + 1, ']', end - p - 1);
        if (!close)
            return fail(out, "'[' without ']' around the IPv6 address", p);
        size_t host_end = (size_t)(close - url);
        bool has_colon = false;
        for (size_t i = p + 1; i < host_end; i++) {
            if (!is_v6_char((unsigned char)url[i]))
                return fail(out, "invalid character in the IPv6 address", i);
            has_colon |= url[i] == ':';
        }
        if (!has_colon)
            return fail(out, "not an IPv6 address in '[' ']'", p + 1);
        out->host = (struct wsk_slice){url + p + 1, host_end - (p + 1)};
        out->is_ipv6 = true;
        p = host_end + 1;
    } else {
        while (p < end && url[p] != ':') {
            if (!is_name_char((unsigned char)url[p]))
                return fail(out, "invalid character in the host", p);
            p++;
        }
        out->host = (struct wsk_slice){url + start, p - start};
    }
    if (out->host.len == 0)
        return fail(out, "empty host", start);

    if (p == end) {
        if (default_port == 0)
            return fail(out, "a port is required for tcp:// and udp://", end);
        out->port = default_port;
        return 0;
    }
    if (url[p] != ':')
        return fail(out, "unexpected character after the host", p);
    size_t port_at = ++p;
    if (p == end)
        return fail(out, "empty port", p);
    uint32_t port = 0;
    for (; p < end; p++) {
        if (!is_digit((unsigned char)url[p]))
            return fail(out, "the port is not a number", p);
        port = port * 10 + (uint32_t)(url[p] - '0');
        if (port > 65535)
            return fail(out, "port above 65535", port_at);
    }
    if (port == 0)
        return fail(out, "port 0", port_at);
    out->port = (uint16_t)port;
    out->has_port = true;
    return 0;
}

int wsk_url_parse(const char *url, size_t len, struct wsk_url *out)
{
    *out = (struct wsk_url){0};
    if (url == NULL)
        return fail(out, "no URL", 0);

    size_t p = 0;
    while (p < len && is_alpha((unsigned char)url[p]))
        p++;
    if (p == 0 || len - p < 3 || memcmp(url + p, "://", 3) != 0)
        return fail(out, "expected scheme://host", p);
    size_t k = 0;
    while (k < sizeof schemes / sizeof schemes[0] &&
           !wsk__slice_equals_nocase((struct wsk_slice){url, p}, schemes[k].name, schemes[k].len))
        k++;
    if (k == sizeof schemes / sizeof schemes[0])
        return fail(out, "unknown scheme (ws, wss, http, https, tcp or udp)", 0);
    out->scheme = schemes[k].scheme;

    size_t auth = p + 3, auth_end = auth;
    while (auth_end < len && url[auth_end] != '/' && url[auth_end] != '?' && url[auth_end] != '#')
        auth_end++;
    int rv = parse_authority(url, auth, auth_end, schemes[k].port, out);
    if (rv < 0)
        return rv;

    p = auth_end;
    if (!scan_target(url, len, &p, "?#"))
        return fail(out, "space or control character in the path", p);
    out->path = p > auth_end ? (struct wsk_slice){url + auth_end, p - auth_end}
                             : (struct wsk_slice){"/", 1};
    out->query = (struct wsk_slice){url + p, 0};
    if (p < len && url[p] == '?') {
        size_t q = ++p;
        if (!scan_target(url, len, &p, "#"))
            return fail(out, "space or control character in the query", p);
        out->query = (struct wsk_slice){url + q, p - q};
        out->has_query = true;
    }
    if (p < len) { /* '#' */
        p++;
        if (!scan_target(url, len, &p, ""))
            return fail(out, "space or control character in the fragment", p);
        out->has_fragment = true;
    }
    return 0;
}

int wsk_url_request_target(const struct wsk_url *u, char *out, size_t cap)
{
    struct wsk__wbuf w = wsk__wbuf_init(out, cap);
    wsk__wbuf_slice(&w, u->path);
    if (u->has_query) {
        wsk__wbuf_char(&w, '?');
        wsk__wbuf_slice(&w, u->query);
    }
    return wsk__wbuf_finish_cstr(&w);
}

int wsk_url_host_header(const struct wsk_url *u, char *out, size_t cap)
{
    struct wsk__wbuf w = wsk__wbuf_init(out, cap);
    if (u->is_ipv6)
        wsk__wbuf_char(&w, '[');
    wsk__wbuf_slice(&w, u->host);
    if (u->is_ipv6)
        wsk__wbuf_char(&w, ']');
    if (u->port != wsk_url_default_port(u->scheme)) {
        wsk__wbuf_char(&w, ':');
        wsk__wbuf_u64(&w, u->port);
    }
    return wsk__wbuf_finish_cstr(&w);
}

/* ---- resolving references (RFC 3986 section 5) --------------------------- */

/* A URI reference split as RFC 3986 appendix B does, before any checks. */
struct ref_parts {
    struct wsk_slice scheme, authority, path, query, fragment;
    bool has_scheme, has_authority, has_query, has_fragment;
};

/* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":" (section 3.1). A
 * first segment with a ':' and no valid scheme before it is a relative path
 * that RFC 3986 says a writer must not produce; it is taken as a path. */
static void split_ref(const char *s, size_t len, struct ref_parts *r)
{
    *r = (struct ref_parts){0};
    size_t p = 0;
    if (len > 0 && is_alpha((unsigned char)s[0])) {
        size_t i = 1;
        while (i < len && (is_alpha((unsigned char)s[i]) || is_digit((unsigned char)s[i]) ||
                           s[i] == '+' || s[i] == '-' || s[i] == '.'))
            i++;
        if (i < len && s[i] == ':') {
            r->scheme = (struct wsk_slice){s, i};
            r->has_scheme = true;
            p = i + 1;
        }
    }
    if (len - p >= 2 && s[p] == '/' && s[p + 1] == '/') {
        size_t a = p + 2;
        p = a;
        while (p < len && s[p] != '/' && s[p] != '?' && s[p] != '#')
            p++;
        r->authority = (struct wsk_slice){s + a, p - a};
        r->has_authority = true;
    }
    size_t start = p;
    while (p < len && s[p] != '?' && s[p] != '#')
        p++;
    r->path = (struct wsk_slice){s + start, p - start};
    if (p < len && s[p] == '?') {
        start = ++p;
        while (p < len && s[p] != '#')
            p++;
        r->query = (struct wsk_slice){s + start, p - start};
        r->has_query = true;
    }
    if (p < len) {
        r->fragment = (struct wsk_slice){s + p + 1, len - p - 1};
        r->has_fragment = true;
    }
}

/* remove_dot_segments (section 5.2.4) on out[start..*end), in place: the
 * result is never longer. The path starts with '/' (every path written here
 * has an authority before it). A "." or ".." that ends the path leaves the
 * '/' before it: "/a/b/.." is "/a/". */
static void remove_dot_segments(char *out, size_t start, size_t *end)
{
    size_t r = start, w = start, len = *end;
    while (r < len) {
        size_t seg = r + 1, seg_end = seg;
        while (seg_end < len && out[seg_end] != '/')
            seg_end++;
        size_t n = seg_end - seg;
        bool is_last = seg_end == len;
        if (n == 1 && out[seg] == '.') {
            if (is_last)
                out[w++] = '/';
        } else if (n == 2 && out[seg] == '.' && out[seg + 1] == '.') {
            while (w > start && out[w - 1] != '/')
                w--;
            if (w > start)
                w--; /* drop the '/' of the segment removed */
            if (is_last)
                out[w++] = '/';
        } else {
            memmove(out + w, out + r, seg_end - r);
            w += seg_end - r;
        }
        r = seg_end;
    }
    *end = w;
}

static void put_scheme(struct wsk__wbuf *w, enum wsk_url_scheme scheme)
{
    for (size_t k = 0; k < sizeof schemes / sizeof schemes[0]; k++)
        if (schemes[k].scheme == scheme)
            wsk__wbuf_put(w, schemes[k].name, schemes[k].len);
}

static void put_scheme_authority(struct wsk__wbuf *w, const struct wsk_url *base)
{
    put_scheme(w, base->scheme);
    wsk__wbuf_str(w, "://");
    if (base->is_ipv6)
        wsk__wbuf_char(w, '[');
    wsk__wbuf_slice(w, base->host);
    if (base->is_ipv6)
        wsk__wbuf_char(w, ']');
    if (base->has_port) {
        wsk__wbuf_char(w, ':');
        wsk__wbuf_u64(w, base->port);
    }
}

/* The directory of the base path: up to and including its last '/'. */
static struct wsk_slice base_directory(const struct wsk_url *base)
{
    size_t n = base->path.len;
    while (n > 0 && base->path.ptr[n - 1] != '/')
        n--;
    return (struct wsk_slice){base->path.ptr, n};
}

int wsk_url_resolve(const char *base, size_t base_len, const char *ref, size_t ref_len, char *out,
                    size_t cap)
{
    struct wsk_url b;
    if (!ref || wsk_url_parse(base, base_len, &b) < 0)
        return WSK_EURL;
    struct ref_parts r;
    split_ref(ref, ref_len, &r);

    /* Section 5.2.2, with the base's scheme and authority written out from
     * the parsed base (its scheme in lower case, the same host and port). */
    struct wsk__wbuf w = wsk__wbuf_init(out, cap);
    struct wsk_slice query = r.query;
    bool has_query = r.has_query;
    size_t path_start;
    if (r.has_scheme || r.has_authority) {
        if (r.has_scheme)
            wsk__wbuf_slice(&w, r.scheme);
        else
            put_scheme(&w, b.scheme);
        wsk__wbuf_char(&w, ':');
        if (r.has_authority) {
            wsk__wbuf_str(&w, "//");
            wsk__wbuf_slice(&w, r.authority);
        }
        path_start = w.len;
        wsk__wbuf_slice(&w, r.path);
    } else {
        put_scheme_authority(&w, &b);
        path_start = w.len;
        if (r.path.len == 0) {
            wsk__wbuf_slice(&w, b.path);
            if (!r.has_query) {
                query = b.query;
                has_query = b.has_query;
            }
        } else if (r.path.ptr[0] == '/') {
            wsk__wbuf_slice(&w, r.path);
        } else {
            wsk__wbuf_slice(&w, base_directory(&b)); /* b.path always starts with '/' */
            wsk__wbuf_slice(&w, r.path);
        }
    }
    if (w.len >= w.cap)
        return WSK_ENOSPC; /* dot removal below needs the bytes in place */
    if (w.len > path_start && out[path_start] == '/')
        remove_dot_segments(out, path_start, &w.len);
    if (has_query) {
        wsk__wbuf_char(&w, '?');
        wsk__wbuf_slice(&w, query);
    }
    if (r.has_fragment) {
        wsk__wbuf_char(&w, '#');
        wsk__wbuf_slice(&w, r.fragment);
    }
    int n = wsk__wbuf_finish_cstr(&w);
    if (n < 0)
        return n;
    struct wsk_url check;
    return wsk_url_parse(out, (size_t)n, &check) < 0 ? WSK_EURL : n;
}
