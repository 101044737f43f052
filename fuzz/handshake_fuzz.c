/* Fuzz target for the server side of the opening handshake. The input is a
 * request head and whatever follows it.
 *
 * The head is parsed whole, grown one byte at a time, and grown in steps
 * derived from the data; every way must give the same result and the same
 * slices, and a smaller max_head may only turn the result into
 * WSK_EHEADTOOBIG. A complete request then goes through
 * wsk_handshake_server_check() with and without a configuration. A valid
 * upgrade must get a 101 response that parses back and passes
 * wsk_handshake_client_verify(); anything else must get an error response
 * that parses back with the same status. abort() on any inconsistency. */
#include <stdlib.h>
#include <string.h>

#include "wsk/proto.h"

static const char *const subprotocols[] = {"chat", "superchat", "v2.mqtt"};
static const char *const origins[] = {"http://example.com", "https://example.com"};
static const struct wsk_handshake_server_config server_cfg = {
    .subprotocols = subprotocols,
    .num_subprotocols = 3,
    .origins = origins,
    .num_origins = 2,
};

static void check(bool ok)
{
    if (!ok)
        abort();
}

static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool within(struct wsk_slice s, const char *buf, size_t len)
{
    return s.ptr != NULL && s.ptr >= buf && s.len <= len && (size_t)(s.ptr - buf) <= len - s.len;
}

static bool same(struct wsk_slice a, struct wsk_slice b)
{
    return a.ptr == b.ptr && a.len == b.len;
}

static bool requests_equal(const struct wsk_http_request *a, const struct wsk_http_request *b)
{
    if (!same(a->method, b->method) || !same(a->target, b->target) || !same(a->path, b->path) ||
        !same(a->query, b->query) || a->minor_version != b->minor_version ||
        a->num_headers != b->num_headers)
        return false;
    for (size_t i = 0; i < a->num_headers; i++)
        if (!same(a->headers[i].name, b->headers[i].name) ||
            !same(a->headers[i].value, b->headers[i].value))
            return false;
    return true;
}

/* What a successful parse promises about the head it returns. */
static void check_request(const char *buf, int head_len, const struct wsk_http_request *req)
{
    size_t n = (size_t)head_len;
    check(n >= 2 && n <= WSK_HTTP_DEFAULT_MAX_HEAD && buf[n - 1] == '\n');
    check(within(req->method, buf, n) && req->method.len > 0);
    for (size_t i = 0; i < req->method.len; i++)
        check(is_tchar((unsigned char)req->method.ptr[i]));
    check(within(req->target, buf, n) && req->target.len > 0);
    for (size_t i = 0; i < req->target.len; i++)
        check((unsigned char)req->target.ptr[i] > 0x20 && req->target.ptr[i] != 0x7f);
    check(req->path.ptr == req->target.ptr && req->path.len <= req->target.len);
    check(memchr(req->path.ptr, '?', req->path.len) == NULL);
    if (req->path.len < req->target.len)
        check(req->query.ptr == req->path.ptr + req->path.len + 1 &&
              req->path.len + 1 + req->query.len == req->target.len);
    else
        check(req->query.len == 0);
    check(req->minor_version >= 0 && req->minor_version <= 9);
    check(req->num_headers <= WSK_HTTP_MAX_HEADERS);
    for (size_t h = 0; h < req->num_headers; h++) {
        struct wsk_slice name = req->headers[h].name, value = req->headers[h].value;
        check(within(name, buf, n) && within(value, buf, n) && name.len > 0);
        for (size_t i = 0; i < name.len; i++)
            check(is_tchar((unsigned char)name.ptr[i]));
        check(name.ptr[name.len] == ':');
        if (value.len > 0) {
            check(value.ptr[0] != ' ' && value.ptr[0] != '\t');
            check(value.ptr[value.len - 1] != ' ' && value.ptr[value.len - 1] != '\t');
        }
        for (size_t i = 0; i < value.len; i++) {
            unsigned char c = (unsigned char)value.ptr[i];
            check(c == '\t' || (c >= 0x20 && c != 0x7f));
        }
    }
}

static uint64_t next_rand(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

/* Parses buf[0..len) grown in steps; step 0 means random steps from seed. */
static int parse_grown(const char *buf, size_t len, size_t step, uint64_t seed,
                       struct wsk_http_request *req)
{
    struct wsk_http_parser p;
    wsk_http_parser_init(&p, 0);
    size_t have = 0;
    int rv = 0;
    while (have < len && rv == 0) {
        size_t n = step ? step : 1 + (size_t)(next_rand(&seed) % 97);
        have = n < len - have ? have + n : len;
        rv = wsk_http_request_parse(&p, buf, have, req);
        check(rv != 0 || p.scanned <= have);
    }
    return rv;
}

static void check_response_parses(const char *out, int n, int status)
{
    check(n > 0);
    struct wsk_http_parser p;
    struct wsk_http_response resp;
    wsk_http_parser_init(&p, 0);
    int head = wsk_http_response_parse(&p, out, (size_t)n, &resp);
    check(head > 0 && resp.status == status);
    if (status == 101) {
        check(head == n);
        return;
    }
    const struct wsk_slice *cl =
        wsk_http_header_get(resp.headers, resp.num_headers, "Content-Length");
    check(cl != NULL);
    size_t body = 0;
    for (size_t i = 0; i < cl->len; i++)
        body = body * 10 + (size_t)(cl->ptr[i] - '0');
    check((size_t)head + body == (size_t)n);
}

static void check_upgrade(const struct wsk_http_request *req, const struct wsk_handshake_info *info,
                          const char *buf, size_t head_len)
{
    check(wsk_handshake_is_upgrade(req));
    check(within(info->host, buf, head_len) && within(info->key, buf, head_len));
    check(info->key.len == 24);

    char out[2048];
    int n = wsk_handshake_server_accept(out, sizeof out, info, "Server: wsk-fuzz\r\n");
    check_response_parses(out, n, 101);
    check(wsk_handshake_server_accept(out, (size_t)n - 1, info, "Server: wsk-fuzz\r\n") ==
          WSK_ENOSPC);

    struct wsk_http_parser p;
    struct wsk_http_response resp;
    wsk_http_parser_init(&p, 0);
    check(wsk_http_response_parse(&p, out, (size_t)n, &resp) == n);
    char key[25];
    memcpy(key, info->key.ptr, 24);
    key[24] = '\0';
    struct wsk_slice chosen;
    check(wsk_handshake_client_verify(&resp, key, subprotocols, 3, &chosen) == 0);
    check(chosen.len == info->subprotocol.len &&
          memcmp(chosen.ptr, info->subprotocol.ptr, chosen.len) == 0);
    /* A client that offered nothing must refuse any subprotocol. */
    int rv = wsk_handshake_client_verify(&resp, key, NULL, 0, &chosen);
    check(rv == (info->subprotocol.len ? WSK_EHSUBPROTO : 0));
}

static void handshake(const struct wsk_http_request *req, const char *buf, size_t head_len)
{
    struct wsk_handshake_info open_info, info;
    int open_status = wsk_handshake_server_check(req, NULL, &open_info);
    int status = wsk_handshake_server_check(req, &server_cfg, &info);
    check(open_status == 101 || open_status == 400 || open_status == 405 || open_status == 426);
    /* The configuration can only add a 403 and choose a subprotocol. */
    check(status == open_status || (status == 403 && open_status == 101));
    check(open_info.subprotocol.len == 0);
    check(wsk_handshake_server_check(req, &server_cfg, NULL) == status);

    if (status == 101) {
        bool offered = false;
        for (size_t i = 0; i < 3; i++)
            offered |= info.subprotocol.len == strlen(subprotocols[i]) &&
                       memcmp(info.subprotocol.ptr, subprotocols[i], info.subprotocol.len) == 0;
        check(info.subprotocol.len == 0 || offered);
        check(info.subprotocol.len == 0 || within(info.subprotocol, buf, head_len));
        check_upgrade(req, &info, buf, head_len);
    }
    if (open_status == 101)
        check_upgrade(req, &open_info, buf, head_len);

    char out[512];
    if (status != 101)
        check_response_parses(out, wsk_handshake_server_reject(out, sizeof out, status), status);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    uint64_t seed = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < size; i++)
        seed = (seed ^ data[i]) * 0x100000001b3ull;

    struct wsk_http_parser p;
    struct wsk_http_request whole, again, grown;
    wsk_http_parser_init(&p, 0);
    int rv = wsk_http_request_parse(&p, buf, size, &whole);
    check(rv == 0 || rv == WSK_EHTTP || rv == WSK_EHEADTOOBIG || (rv > 0 && (size_t)rv <= size));
    check(wsk_http_request_parse(&p, buf, size, &again) == rv);
    if (rv > 0) {
        check_request(buf, rv, &whole);
        check(requests_equal(&whole, &again));
    }

    size_t steps[3] = {1, 0, 0};
    for (size_t s = 0; s < 3; s++) {
        int g = parse_grown(buf, size, steps[s], seed + s, &grown);
        check(g == rv);
        if (rv > 0)
            check(requests_equal(&whole, &grown));
    }

    /* A smaller limit sees a prefix of the same bytes. */
    size_t small = 16 + (size_t)(seed % 512);
    wsk_http_parser_init(&p, small);
    int limited = wsk_http_request_parse(&p, buf, size, &grown);
    if (limited > 0)
        check(limited == rv && requests_equal(&whole, &grown));
    else if (limited == WSK_EHTTP)
        check(rv == WSK_EHTTP);
    else if (limited == 0)
        check(size < small);
    else
        check(limited == WSK_EHEADTOOBIG && (rv <= 0 || (size_t)rv > small));

    if (rv > 0)
        handshake(&whole, buf, (size_t)rv);
    return 0;
}
