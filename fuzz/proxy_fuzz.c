/* Fuzz target for the proxy parsers (src/proto/proxy.c): proxy settings,
 * no_proxy lists and SOCKS5 replies, and the CONNECT request written from
 * what parsed.
 *
 * Byte 0 picks the parser; the rest is its input. abort() unless a setting
 * that parses has a host (at most 255 bytes, no NUL inside), a port,
 * credentials only with a user, and its CONNECT request fits the documented
 * bound and is one head ending in an empty line; a no_proxy answer does not
 * change when the list is given twice; a SOCKS5 reply length is between 7
 * and 262 (7: an empty name), never past the bytes given, and the same for every longer input
 * (0 for every shorter one). */
#include <stdlib.h>
#include <string.h>

#include "proto/proxy_internal.h"
#include "wsk/error.h"

static void check(bool ok)
{
    if (!ok)
        abort();
}

static void fuzz_setting(const uint8_t *data, size_t size)
{
    char *spec = malloc(size + 1);
    if (!spec)
        return;
    memcpy(spec, data, size);
    spec[size] = 0;
    struct wsk__proxy p;
    const char *why = NULL;
    int rv = wsk__proxy_parse(spec, &p, &why);
    if (rv < 0) {
        check(rv == WSK_EURL && why && *why);
        free(spec);
        return;
    }
    size_t hlen = strnlen(p.host, sizeof p.host);
    check(hlen > 0 && hlen < sizeof p.host);
    check(p.port > 0);
    check(p.kind >= WSK__PROXY_HTTP && p.kind <= WSK__PROXY_SOCKS5H);
    check(!p.has_auth || (p.user[0] && strnlen(p.user, 256) < 256 && strnlen(p.pass, 256) < 256));
    char req[WSK__CONNECT_REQUEST_MAX];
    int n = wsk__http_connect_request(req, sizeof req, &p, p.host, p.port);
    check(n > 0);
    check(memcmp(req, "CONNECT ", 8) == 0 && memcmp(req + n - 4, "\r\n\r\n", 4) == 0);
    for (int i = 0; i + 4 < n; i++)
        check(memcmp(req + i, "\r\n\r\n", 4) != 0); /* one head, no smuggled one */
    free(spec);
}

static void fuzz_no_proxy(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    if (!nl)
        return;
    size_t list_len = (size_t)(nl - data), host_len = size - list_len - 1;
    char *list = malloc(2 * list_len + 2), *host = malloc(host_len + 1);
    if (list && host) {
        memcpy(list, data, list_len);
        list[list_len] = 0;
        memcpy(host, nl + 1, host_len);
        host[host_len] = 0;
        bool once = wsk__no_proxy_match(list, host);
        list[list_len] = ',';
        memcpy(list + list_len + 1, data, list_len);
        list[2 * list_len + 1] = 0;
        check(wsk__no_proxy_match(list, host) == once);
        (void)wsk__is_loopback_host(host);
    }
    free(list);
    free(host);
}

static void fuzz_reply(const uint8_t *data, size_t size)
{
    int n = wsk__socks5_reply(data, size);
    check(n == 0 || n == WSK_EPROXY || (n >= 7 && n <= 262 && (size_t)n <= size));
    if (n > 0) {
        check(wsk__socks5_reply(data, (size_t)n) == n);
        check(wsk__socks5_reply(data, (size_t)n - 1) == 0);
    }
    (void)wsk__socks5_reply_text(size ? data[0] : 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    switch (data[0] % 3) {
    case 0:
        fuzz_setting(data + 1, size - 1);
        break;
    case 1:
        fuzz_no_proxy(data + 1, size - 1);
        break;
    default:
        fuzz_reply(data + 1, size - 1);
        break;
    }
    return 0;
}
