/* Fuzz target for the URL parser. The input is a URL, not NUL-terminated.
 *
 * A success must describe the input: host non-empty and inside it, path
 * inside it or the static "/", query inside it, the port in range and the
 * scheme's default when none was given; the request-target and Host header
 * must fit the documented bounds and hold no byte that would break a
 * request line or a header. The same URL with its length cut short must
 * never read past the cut (ASan sees to that) and a failure must carry a
 * message and a position inside the input. abort() on any inconsistency. */
#include <stdlib.h>
#include <string.h>

#include "wsk/url.h"

static void check(bool ok)
{
    if (!ok)
        abort();
}

static bool within(struct wsk_slice s, const char *buf, size_t len)
{
    return s.ptr != NULL && s.ptr >= buf && s.len <= len && (size_t)(s.ptr - buf) <= len - s.len;
}

static bool has_ctl_or_space(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f)
            return true;
    return false;
}

static void parse_and_check(const char *buf, size_t len)
{
    struct wsk_url u;
    int rv = wsk_url_parse(buf, len, &u);
    if (rv != 0) {
        check(rv == WSK_EURL);
        check(u.error != NULL && u.error[0] != '\0');
        check(u.error_at <= len);
        return;
    }
    check(u.error == NULL);
    check(u.scheme >= WSK_URL_WS && u.scheme <= WSK_URL_UDP);
    check(within(u.host, buf, len) && u.host.len > 0);
    check(!has_ctl_or_space(u.host.ptr, u.host.len));
    check(memchr(u.host.ptr, '@', u.host.len) == NULL);
    check(memchr(u.host.ptr, '/', u.host.len) == NULL);
    check(u.is_ipv6 == (memchr(u.host.ptr, ':', u.host.len) != NULL));
    check(within(u.path, buf, len) || (u.path.len == 1 && u.path.ptr[0] == '/'));
    check(u.path.len > 0 && u.path.ptr[0] == '/');
    check(!has_ctl_or_space(u.path.ptr, u.path.len));
    check(within(u.query, buf, len));
    check(!has_ctl_or_space(u.query.ptr, u.query.len));
    check(u.has_query || u.query.len == 0);
    check(u.port >= 1);
    check(u.has_port || u.port == wsk_url_default_port(u.scheme));

    char *target = malloc(len + 2), *host = malloc(u.host.len + 9);
    check(target && host);
    int n = wsk_url_request_target(&u, target, len + 2);
    check(n > 0 && (size_t)n <= len + 1 && target[0] == '/' && target[n] == '\0');
    check(!has_ctl_or_space(target, (size_t)n));
    n = wsk_url_host_header(&u, host, u.host.len + 9);
    check(n > 0 && (size_t)n <= u.host.len + 8 && host[n] == '\0');
    check(!has_ctl_or_space(host, (size_t)n));
    free(target);
    free(host);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    parse_and_check(buf, size);
    /* Cut short: the parser must stop at len, wherever that falls. */
    if (size > 0)
        parse_and_check(buf, size / 2);
    return 0;
}
