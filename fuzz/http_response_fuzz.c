/* Fuzz target for the client side of the opening handshake. The input is a
 * response head and whatever follows it.
 *
 * The head is parsed whole, grown one byte at a time, and grown in steps
 * derived from the data; every way must give the same result and the same
 * slices. A complete response then goes through wsk_handshake_client_verify()
 * for the RFC 6455 section 1.3 key (whose accept value the seeds carry), with
 * and without offered subprotocols, and the verdicts must agree with each
 * other and with the headers. abort() on any inconsistency. */
#include <stdlib.h>
#include <string.h>

#include "wsk/proto.h"

#define RFC_KEY    "dGhlIHNhbXBsZSBub25jZQ=="
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

static const char *const offered[] = {"chat", "superchat"};

static void check(bool ok)
{
    if (!ok)
        abort();
}

static bool within(struct wsk_slice s, const char *buf, size_t len)
{
    return s.ptr != NULL && s.ptr >= buf && s.len <= len && (size_t)(s.ptr - buf) <= len - s.len;
}

static bool same(struct wsk_slice a, struct wsk_slice b)
{
    return a.ptr == b.ptr && a.len == b.len;
}

static bool responses_equal(const struct wsk_http_response *a, const struct wsk_http_response *b)
{
    if (a->status != b->status || !same(a->reason, b->reason) ||
        a->minor_version != b->minor_version || a->num_headers != b->num_headers)
        return false;
    for (size_t i = 0; i < a->num_headers; i++)
        if (!same(a->headers[i].name, b->headers[i].name) ||
            !same(a->headers[i].value, b->headers[i].value))
            return false;
    return true;
}

static void check_response(const char *buf, int head_len, const struct wsk_http_response *resp)
{
    size_t n = (size_t)head_len;
    check(n >= 2 && n <= WSK_HTTP_DEFAULT_MAX_HEAD && buf[n - 1] == '\n');
    check(resp->status >= 100 && resp->status <= 999);
    check(resp->minor_version >= 0 && resp->minor_version <= 9);
    check(within(resp->reason, buf, n));
    check(memchr(resp->reason.ptr, '\r', resp->reason.len) == NULL);
    check(memchr(resp->reason.ptr, '\n', resp->reason.len) == NULL);
    check(resp->num_headers <= WSK_HTTP_MAX_HEADERS);
    for (size_t h = 0; h < resp->num_headers; h++) {
        struct wsk_slice name = resp->headers[h].name, value = resp->headers[h].value;
        check(within(name, buf, n) && within(value, buf, n) && name.len > 0);
        check(name.ptr[name.len] == ':');
        check(memchr(value.ptr, '\r', value.len) == NULL);
        check(memchr(value.ptr, '\n', value.len) == NULL);
    }
}

static uint64_t next_rand(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

static int parse_grown(const char *buf, size_t len, size_t step, uint64_t seed,
                       struct wsk_http_response *resp)
{
    struct wsk_http_parser p;
    wsk_http_parser_init(&p, 0);
    size_t have = 0;
    int rv = 0;
    while (have < len && rv == 0) {
        size_t n = step ? step : 1 + (size_t)(next_rand(&seed) % 97);
        have = n < len - have ? have + n : len;
        rv = wsk_http_response_parse(&p, buf, have, resp);
    }
    return rv;
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

static size_t count(const struct wsk_http_response *resp, const char *name)
{
    size_t n = 0, len = strlen(name);
    for (size_t i = 0; i < resp->num_headers; i++) {
        struct wsk_slice h = resp->headers[i].name;
        if (h.len != len)
            continue;
        size_t j = 0;
        while (j < len && lower(h.ptr[j]) == lower(name[j]))
            j++;
        n += j == len;
    }
    return n;
}

static void verify(const struct wsk_http_response *resp, const char *buf, size_t head_len)
{
    struct wsk_slice chosen, chosen_none;
    int rv = wsk_handshake_client_verify(resp, RFC_KEY, offered, 2, &chosen);
    int rv_none = wsk_handshake_client_verify(resp, RFC_KEY, NULL, 0, &chosen_none);
    int rv_other = wsk_handshake_client_verify(resp, "x3JJHMbDL1EzLkh9GBhXDw==", offered, 2, NULL);
    check(rv == 0 || rv == WSK_EHSTATUS || rv == WSK_EHANDSHAKE || rv == WSK_EHACCEPT ||
          rv == WSK_EHSUBPROTO);
    check((rv == WSK_EHSTATUS) == (resp->status != 101));
    check(rv_none == rv || (rv == 0 && rv_none == WSK_EHSUBPROTO));
    check(chosen_none.len == 0);
    /* Two keys never share an accept value. */
    check(rv != 0 || rv_other == WSK_EHACCEPT);

    if (rv != 0) {
        check(chosen.len == 0);
        return;
    }
    check(wsk_http_header_has_token(resp->headers, resp->num_headers, "Upgrade", "websocket"));
    check(wsk_http_header_has_token(resp->headers, resp->num_headers, "Connection", "upgrade"));
    const struct wsk_slice *accept =
        wsk_http_header_get(resp->headers, resp->num_headers, "Sec-WebSocket-Accept");
    check(accept && accept->len == 28 && memcmp(accept->ptr, RFC_ACCEPT, 28) == 0);
    check(count(resp, "Sec-WebSocket-Accept") == 1);
    if (count(resp, "Sec-WebSocket-Protocol") == 0) {
        check(chosen.len == 0 && rv_none == 0);
    } else {
        check(within(chosen, buf, head_len));
        check((chosen.len == 4 && memcmp(chosen.ptr, "chat", 4) == 0) ||
              (chosen.len == 9 && memcmp(chosen.ptr, "superchat", 9) == 0));
        check(rv_none == WSK_EHSUBPROTO);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    uint64_t seed = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < size; i++)
        seed = (seed ^ data[i]) * 0x100000001b3ull;

    struct wsk_http_parser p;
    struct wsk_http_response whole, again, grown;
    wsk_http_parser_init(&p, 0);
    int rv = wsk_http_response_parse(&p, buf, size, &whole);
    check(rv == 0 || rv == WSK_EHTTP || rv == WSK_EHEADTOOBIG || (rv > 0 && (size_t)rv <= size));
    check(wsk_http_response_parse(&p, buf, size, &again) == rv);
    if (rv > 0) {
        check_response(buf, rv, &whole);
        check(responses_equal(&whole, &again));
    }

    size_t steps[3] = {1, 0, 0};
    for (size_t s = 0; s < 3; s++) {
        check(parse_grown(buf, size, steps[s], seed + s, &grown) == rv);
        if (rv > 0)
            check(responses_equal(&whole, &grown));
    }

    if (rv > 0)
        verify(&whole, buf, (size_t)rv);
    return 0;
}
