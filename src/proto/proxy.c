/* HTTP CONNECT and SOCKS5 client messages, proxy settings and no_proxy
 * (see proxy_internal.h). Written into caller buffers; nothing allocates.
 */
#include "proto/proxy_internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "proto/sha1_internal.h"
#include "proto/text_internal.h"
#include "wsk/error.h"

static int bad(const char **why, const char *what)
{
    *why = what;
    return WSK_EURL;
}

/* Percent-decodes s[0..len) into out (cap 256). Returns false when a
 * '%' is not followed by two hex digits, the result holds a NUL or does
 * not fit in 255 bytes. */
static bool decode(const char *s, size_t len, char out[256])
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (len - i < 3 || wsk__hex_value((unsigned char)s[i + 1]) < 0 ||
                wsk__hex_value((unsigned char)s[i + 2]) < 0)
                return false;
            c = wsk__hex_value((unsigned char)s[i + 1]) * 16 +
                wsk__hex_value((unsigned char)s[i + 2]);
            i += 2;
        }
        if (c == 0 || n == 255)
            return false;
        out[n++] = (char)c;
    }
    out[n] = 0;
    return true;
}

static bool is_host_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_';
}

int wsk__proxy_parse(const char *spec, struct wsk__proxy *out, const char **why)
{
    static const struct {
        const char *name;
        enum wsk__proxy_kind kind;
    } schemes[] = {
        {"http", WSK__PROXY_HTTP}, {"socks5", WSK__PROXY_SOCKS5}, {"socks5h", WSK__PROXY_SOCKS5H}};
    memset(out, 0, sizeof *out);
    *why = NULL;
    if (!spec || !*spec)
        return bad(why, "empty proxy");
    const char *p = spec, *sep = strstr(spec, "://");
    out->kind = WSK__PROXY_HTTP;
    if (sep) {
        struct wsk_slice s = {spec, (size_t)(sep - spec)};
        size_t k = 0;
        while (k < 3 && !wsk__slice_equals_nocase(s, schemes[k].name, strlen(schemes[k].name)))
            k++;
        if (k == 3) {
            if (wsk__slice_equals_nocase(s, "https", 5) ||
                wsk__slice_equals_nocase(s, "socks4", 6) ||
                wsk__slice_equals_nocase(s, "socks4a", 7))
                return bad(why, "unsupported proxy scheme (http, socks5 or socks5h)");
            return bad(why, "unknown proxy scheme (http, socks5 or socks5h)");
        }
        out->kind = schemes[k].kind;
        p = sep + 3;
    }
    size_t auth_len = strcspn(p, "/?#");
    const char *end = p + auth_len;
    if (*end && strcmp(end, "/") != 0)
        return bad(why, "a proxy has no path: [SCHEME://][USER[:PASSWORD]@]HOST[:PORT]");
    /* The last '@' ends the userinfo: a password may hold an unescaped '@'. */
    const char *at = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == '@')
            at = q;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        size_t ulen = colon ? (size_t)(colon - p) : (size_t)(at - p);
        if (!decode(p, ulen, out->user) ||
            (colon && !decode(colon + 1, (size_t)(at - colon - 1), out->pass)))
            return bad(why, "bad proxy user or password (at most 255 bytes, %XX escapes)");
        if (!*out->user)
            return bad(why, "empty proxy user");
        out->has_auth = true;
        p = at + 1;
    }
    const char *host = p, *host_end;
    if (*p == '[') {
        host = p + 1;
        host_end = memchr(host, ']', (size_t)(end - host));
        if (!host_end)
            return bad(why, "'[' without ']' around the proxy's IPv6 address");
        p = host_end + 1;
        char tmp[64];
        struct in6_addr a6;
        size_t n = (size_t)(host_end - host);
        if (n >= sizeof tmp)
            return bad(why, "bad IPv6 address for the proxy");
        memcpy(tmp, host, n);
        tmp[n] = 0;
        if (inet_pton(AF_INET6, tmp, &a6) != 1)
            return bad(why, "bad IPv6 address for the proxy");
    } else {
        while (p < end && *p != ':') {
            if (!is_host_char((unsigned char)*p))
                return bad(why, "invalid character in the proxy host");
            p++;
        }
        host_end = p;
    }
    size_t hlen = (size_t)(host_end - host);
    if (hlen == 0)
        return bad(why, "no proxy host");
    if (hlen > 255)
        return bad(why, "proxy host over 255 bytes");
    memcpy(out->host, host, hlen);
    out->host[hlen] = 0;
    out->port = WSK__PROXY_DEFAULT_PORT;
    if (p < end) {
        if (*p != ':' || p + 1 == end)
            return bad(why, "bad proxy port (1-65535)");
        unsigned long v = 0;
        for (p++; p < end; p++) {
            if (*p < '0' || *p > '9' || (v = v * 10 + (unsigned long)(*p - '0')) > 65535)
                return bad(why, "bad proxy port (1-65535)");
        }
        if (v == 0)
            return bad(why, "bad proxy port (1-65535)");
        out->port = (uint16_t)v;
    }
    return 0;
}

/* ---- no_proxy -------------------------------------------------------------- */

/* host within the network entry[0..len) "ADDR/BITS" or equal to "ADDR". */
static bool addr_match(struct wsk_slice entry, const char *host)
{
    char e[64];
    unsigned bits = 0;
    bool has_bits = false;
    size_t n = entry.len;
    const char *slash = memchr(entry.ptr, '/', entry.len);
    if (slash) {
        n = (size_t)(slash - entry.ptr);
        size_t blen = entry.len - n - 1;
        if (blen == 0 || blen > 3)
            return false;
        for (size_t i = 0; i < blen; i++) {
            char c = slash[1 + i];
            if (c < '0' || c > '9')
                return false;
            bits = bits * 10 + (unsigned)(c - '0');
        }
        has_bits = true;
    }
    if (n >= 2 && entry.ptr[0] == '[' && entry.ptr[n - 1] == ']') {
        entry.ptr++;
        n -= 2;
    }
    if (n == 0 || n >= sizeof e)
        return false;
    memcpy(e, entry.ptr, n);
    e[n] = 0;
    uint8_t want[16], have[16];
    size_t alen;
    if (inet_pton(AF_INET, e, want) == 1) {
        if (inet_pton(AF_INET, host, have) != 1)
            return false;
        alen = 4;
    } else if (inet_pton(AF_INET6, e, want) == 1) {
        if (inet_pton(AF_INET6, host, have) != 1)
            return false;
        alen = 16;
    } else {
        return false;
    }
    if (!has_bits)
        bits = (unsigned)alen * 8;
    if (bits > alen * 8)
        return false;
    size_t whole = bits / 8;
    if (memcmp(want, have, whole) != 0)
        return false;
    unsigned rest = bits % 8;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (want[whole] & mask) == (have[whole] & mask);
}

static bool name_match(struct wsk_slice entry, const char *host)
{
    if (entry.len && entry.ptr[0] == '.') {
        entry.ptr++;
        entry.len--;
    }
    size_t hlen = strlen(host);
    if (hlen && host[hlen - 1] == '.')
        hlen--; /* a fully qualified "example.com." */
    if (entry.len == 0 || hlen < entry.len)
        return false;
    const char *tail = host + hlen - entry.len;
    if (!wsk__slice_equals_nocase(entry, tail, entry.len))
        return false;
    return hlen == entry.len || tail[-1] == '.';
}

bool wsk__no_proxy_match(const char *no_proxy, const char *host)
{
    if (!no_proxy || !host)
        return false;
    struct wsk__list l = wsk__list_init((struct wsk_slice){no_proxy, strlen(no_proxy)});
    struct wsk_slice e;
    while (wsk__list_next(&l, &e)) {
        /* curl also separates entries by spaces. */
        const char *s = e.ptr, *end = e.ptr + e.len;
        while (s < end) {
            const char *sp = memchr(s, ' ', (size_t)(end - s));
            struct wsk_slice one = {s, (size_t)((sp ? sp : end) - s)};
            s = sp ? sp + 1 : end;
            if (one.len == 0)
                continue;
            if (one.len == 1 && one.ptr[0] == '*')
                return true;
            if (addr_match(one, host) || name_match(one, host))
                return true;
        }
    }
    return false;
}

bool wsk__is_loopback_host(const char *host)
{
    if (name_match((struct wsk_slice){"localhost", 9}, host))
        return true;
    return addr_match((struct wsk_slice){"127.0.0.0/8", 11}, host) ||
           addr_match((struct wsk_slice){"::1", 3}, host);
}

/* ---- HTTP CONNECT ---------------------------------------------------------- */

int wsk__http_connect_request(char *out, size_t cap, const struct wsk__proxy *p, const char *host,
                              uint16_t port)
{
    char authority[300];
    struct wsk__wbuf a = wsk__wbuf_init(authority, sizeof authority);
    bool v6 = strchr(host, ':') != NULL;
    if (v6)
        wsk__wbuf_char(&a, '[');
    wsk__wbuf_str(&a, host);
    if (v6)
        wsk__wbuf_char(&a, ']');
    wsk__wbuf_char(&a, ':');
    wsk__wbuf_u64(&a, port);
    if (wsk__wbuf_finish_cstr(&a) < 0)
        return WSK_ENOSPC;
    struct wsk__wbuf w = wsk__wbuf_init(out, cap);
    wsk__wbuf_str(&w, "CONNECT ");
    wsk__wbuf_str(&w, authority);
    wsk__wbuf_str(&w, " HTTP/1.1\r\nHost: ");
    wsk__wbuf_str(&w, authority);
    wsk__wbuf_str(&w, "\r\n");
    if (p->has_auth) {
        char cred[512], b64[4 * ((sizeof cred + 2) / 3) + 1];
        size_t ul = strlen(p->user), pl = strlen(p->pass);
        memcpy(cred, p->user, ul);
        cred[ul] = ':';
        memcpy(cred + ul + 1, p->pass, pl);
        wsk__base64_encode(b64, (const uint8_t *)cred, ul + 1 + pl);
        wsk__wbuf_str(&w, "Proxy-Authorization: Basic ");
        wsk__wbuf_str(&w, b64);
        wsk__wbuf_str(&w, "\r\n");
    }
    wsk__wbuf_str(&w, "\r\n");
    return wsk__wbuf_finish(&w);
}

/* ---- SOCKS5 ---------------------------------------------------------------- */

size_t wsk__socks5_greeting(uint8_t out[4], const struct wsk__proxy *p)
{
    out[0] = 5;
    out[1] = p->has_auth ? 2 : 1;
    out[2] = 0; /* no authentication */
    out[3] = 2; /* username/password */
    return p->has_auth ? 4 : 3;
}

int wsk__socks5_method(const uint8_t in[2], const struct wsk__proxy *p)
{
    if (in[0] != 5)
        return WSK_EPROXY;
    if (in[1] == 0)
        return 0;
    if (in[1] == 2 && p->has_auth)
        return 2;
    return WSK_EPROXY;
}

size_t wsk__socks5_auth(uint8_t out[513], const struct wsk__proxy *p)
{
    size_t ul = strlen(p->user), pl = strlen(p->pass);
    out[0] = 1;
    out[1] = (uint8_t)ul;
    memcpy(out + 2, p->user, ul);
    out[2 + ul] = (uint8_t)pl;
    memcpy(out + 3 + ul, p->pass, pl);
    return 3 + ul + pl;
}

static size_t put_head(uint8_t *out, uint8_t atyp)
{
    out[0] = 5; /* version */
    out[1] = 1; /* CONNECT */
    out[2] = 0; /* reserved */
    out[3] = atyp;
    return 4;
}

static size_t put_port(uint8_t *out, uint16_t port)
{
    out[0] = (uint8_t)(port >> 8);
    out[1] = (uint8_t)port;
    return 2;
}

int wsk__socks5_connect_name(uint8_t out[262], const char *name, uint16_t port)
{
    size_t n = strlen(name);
    if (n == 0 || n > 255)
        return WSK_EURL;
    size_t off = put_head(out, 3);
    out[off++] = (uint8_t)n;
    memcpy(out + off, name, n);
    off += n;
    return (int)(off + put_port(out + off, port));
}

int wsk__socks5_connect_addr(uint8_t out[262], const void *sockaddr, uint16_t port)
{
    const struct sockaddr *sa = sockaddr;
    size_t off;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = sockaddr;
        off = put_head(out, 1);
        memcpy(out + off, &a->sin_addr, 4);
        off += 4;
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = sockaddr;
        off = put_head(out, 4);
        memcpy(out + off, &a->sin6_addr, 16);
        off += 16;
    } else {
        return WSK_EURL;
    }
    return (int)(off + put_port(out + off, port));
}

int wsk__socks5_reply(const uint8_t *in, size_t len)
{
    if (len >= 1 && in[0] != 5)
        return WSK_EPROXY;
    if (len >= 3 && in[2] != 0)
        return WSK_EPROXY;
    if (len < 5)
        return 0;
    size_t need;
    switch (in[3]) {
    case 1:
        need = 4 + 4 + 2;
        break;
    case 3:
        need = 4 + 1 + (size_t)in[4] + 2;
        break;
    case 4:
        need = 4 + 16 + 2;
        break;
    default:
        return WSK_EPROXY;
    }
    return len >= need ? (int)need : 0;
}

const char *wsk__socks5_reply_text(unsigned code)
{
    static const char *const text[] = {
        "succeeded",
        "general SOCKS server failure",
        "connection not allowed by ruleset",
        "network unreachable",
        "host unreachable",
        "connection refused",
        "TTL expired",
        "command not supported",
        "address type not supported",
    };
    return code < sizeof text / sizeof text[0] ? text[code] : "unknown reply code";
}
