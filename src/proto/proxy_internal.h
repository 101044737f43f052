/* Private to libwsk: the client side of the two tunnelling proxies that
 * curl and browsers speak, HTTP CONNECT (RFC 9110 section 9.3.6) and SOCKS5
 * (RFC 1928, with RFC 1929 username/password), and the proxy settings of
 * the environment as curl reads them. I/O-free and allocation-free: the
 * client (src/ws/client_proxy.c) sends what is written here and feeds back
 * what it reads; fuzz/proxy_fuzz.c drives every parser.
 */
#ifndef WSK_PROTO_PROXY_INTERNAL_H
#define WSK_PROTO_PROXY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum wsk__proxy_kind {
    WSK__PROXY_HTTP = 1, /* http://: CONNECT host:port */
    WSK__PROXY_SOCKS5,   /* socks5://: the client resolves the name, sends the address */
    WSK__PROXY_SOCKS5H,  /* socks5h://: the proxy resolves the name */
};

#define WSK__PROXY_DEFAULT_PORT 1080 /* curl's, for every scheme */

/* A proxy setting, split and decoded. Lengths are bounded by the buffers
 * (SOCKS5 carries at most 255 bytes of each). */
struct wsk__proxy {
    enum wsk__proxy_kind kind;
    char host[256]; /* a name or an address, IPv6 without brackets */
    uint16_t port;
    bool has_auth;
    char user[256]; /* percent-decoded, NUL-terminated */
    char pass[256];
};

/* Parses a proxy setting: [SCHEME://][USER[:PASSWORD]@]HOST[:PORT][/], with
 * SCHEME http (the default, as curl), socks5 or socks5h (without case),
 * USER and PASSWORD percent-decoded (each at most 255 bytes once decoded,
 * no NUL), HOST a name, an IPv4 address or [IPv6], PORT 1..65535 (default
 * 1080). Returns 0 with *out filled; WSK_EURL with *why set to a static
 * English phrase otherwise (https:// and socks4:// proxies are named as
 * unsupported). */
int wsk__proxy_parse(const char *spec, struct wsk__proxy *out, const char **why);

/* Whether host (a name or an address, IPv6 without brackets) is exempt from
 * the proxy by a no_proxy value as curl reads it: comma-separated entries,
 * whitespace around them ignored; "*" alone exempts every host; a name
 * matches itself and its subdomains (a leading '.' is optional), without
 * case; an address matches itself, or its network when written with a
 * prefix length (192.168.0.0/16, fe80::/10). NULL or empty: nothing. */
bool wsk__no_proxy_match(const char *no_proxy, const char *host);

/* Whether host is a loopback destination: "localhost" or a name under
 * ".localhost" (RFC 6761), 127.0.0.0/8, ::1. */
bool wsk__is_loopback_host(const char *host);

/* Writes the CONNECT request for host:port (host an IPv6 address is put in
 * brackets), with Proxy-Authorization: Basic when p->has_auth. Returns its
 * length, or WSK_ENOSPC when it does not fit in cap (WSK__CONNECT_REQUEST_MAX
 * always does: a 255-byte host twice, and 255-byte credentials in base64). */
#define WSK__CONNECT_REQUEST_MAX 1300
int wsk__http_connect_request(char *out, size_t cap, const struct wsk__proxy *p, const char *host,
                              uint16_t port);

/* SOCKS5 (RFC 1928). The greeting offers "no authentication", and
 * username/password too when p->has_auth. Returns its length (3 or 4). */
size_t wsk__socks5_greeting(uint8_t out[4], const struct wsk__proxy *p);

/* The proxy's choice of method: 2 bytes. Returns 0 for "none", 2 for
 * username/password (only when offered), WSK_EPROXY for "no acceptable
 * method" (0xFF), another method, or a version other than 5. */
int wsk__socks5_method(const uint8_t in[2], const struct wsk__proxy *p);

/* The username/password request (RFC 1929): at most 513 bytes. Returns its
 * length. */
size_t wsk__socks5_auth(uint8_t out[513], const struct wsk__proxy *p);

/* The CONNECT request for a domain name (socks5h: at most 255 bytes,
 * else WSK_EURL) or an address (addr of family AF_INET or AF_INET6, the
 * port taken from the argument). Returns its length (at most 262). */
int wsk__socks5_connect_name(uint8_t out[262], const char *name, uint16_t port);
int wsk__socks5_connect_addr(uint8_t out[262], const void *sockaddr, uint16_t port);

/* How much of in[0..len) a SOCKS5 reply takes: 0 when more is needed (a
 * reply is 7 to 262 bytes), its length once complete, or WSK_EPROXY for a
 * version other than 5, a reserved byte other than 0 or an unknown address
 * type. The reply code is in[1] (0 succeeded). */
int wsk__socks5_reply(const uint8_t *in, size_t len);

/* The RFC 1928 words for a SOCKS5 reply code ("connection refused"). */
const char *wsk__socks5_reply_text(unsigned code);

#endif
