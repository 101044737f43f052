/* Tests for the HTTP/1.1 head parser (src/proto/http1.c).
 *
 * Every input goes through parse_every_way(): whole, grown one byte at a
 * time, and grown in random steps, each time from a buffer that ends right
 * before an unreadable page, so a read past the end crashes. All ways must
 * agree on the result and on every slice. */
#include <sys/mman.h>
#include <unistd.h>

#include "wsk/proto.h"
#include "wsk_test.h"

/* The buffer of the last parse_every_way() call. Slices point into it, so it
 * stays mapped until the next call. */
static char *guard_map;
static size_t guard_map_len;

static const char *guarded_copy(const char *s, size_t len)
{
    if (guard_map)
        munmap(guard_map, guard_map_len);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t data_pages = (len + page - 1) / page;
    guard_map_len = (data_pages + 1) * page;
    guard_map =
        mmap(NULL, guard_map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (guard_map == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    if (mprotect(guard_map + data_pages * page, page, PROT_NONE) != 0) {
        perror("mprotect");
        exit(1);
    }
    char *buf = guard_map + data_pages * page - len;
    if (len)
        memcpy(buf, s, len);
    return buf;
}

/* Either kind of head, so one driver can run both parsers. */
struct head {
    bool is_response;
    struct wsk_http_request req;
    struct wsk_http_response resp;
};

static int parse_head(struct wsk_http_parser *p, const char *buf, size_t len, struct head *h)
{
    return h->is_response ? wsk_http_response_parse(p, buf, len, &h->resp)
                          : wsk_http_request_parse(p, buf, len, &h->req);
}

static bool slice_same(struct wsk_slice a, struct wsk_slice b)
{
    return a.ptr == b.ptr && a.len == b.len;
}

static bool heads_equal(const struct head *a, const struct head *b)
{
    const struct wsk_http_header *ha, *hb;
    size_t n;
    if (a->is_response) {
        if (a->resp.status != b->resp.status || !slice_same(a->resp.reason, b->resp.reason) ||
            a->resp.minor_version != b->resp.minor_version ||
            a->resp.num_headers != b->resp.num_headers)
            return false;
        ha = a->resp.headers, hb = b->resp.headers, n = a->resp.num_headers;
    } else {
        if (!slice_same(a->req.method, b->req.method) ||
            !slice_same(a->req.target, b->req.target) || !slice_same(a->req.path, b->req.path) ||
            !slice_same(a->req.query, b->req.query) ||
            a->req.minor_version != b->req.minor_version ||
            a->req.num_headers != b->req.num_headers)
            return false;
        ha = a->req.headers, hb = b->req.headers, n = a->req.num_headers;
    }
    for (size_t i = 0; i < n; i++)
        if (!slice_same(ha[i].name, hb[i].name) || !slice_same(ha[i].value, hb[i].value))
            return false;
    return true;
}

/* Parses s[0..len) every way and checks that the results agree. Returns the
 * result; *out holds the whole parse, with slices into the guarded copy. */
static int parse_every_way(bool is_response, const char *s, size_t len, size_t max_head,
                           struct head *out)
{
    const char *buf = guarded_copy(s, len);
    struct wsk_http_parser p;
    out->is_response = is_response;

    wsk_http_parser_init(&p, max_head);
    int whole = parse_head(&p, buf, len, out);
    /* Asking again with the same bytes gives the same answer. */
    struct head again = {.is_response = is_response};
    CHECK_EQ_INT(parse_head(&p, buf, len, &again), whole);
    if (whole > 0)
        CHECK(heads_equal(out, &again));

    /* One byte at a time: each call scans only the new byte. */
    struct head trickle = {.is_response = is_response};
    wsk_http_parser_init(&p, max_head);
    int rv = 0;
    size_t limit = max_head ? max_head : WSK_HTTP_DEFAULT_MAX_HEAD;
    for (size_t i = 1; i <= len && rv == 0; i++) {
        rv = parse_head(&p, buf, i, &trickle);
        if (rv == 0 && p.scanned != (i < limit ? i : limit)) {
            CHECK(!"p->scanned does not follow the input");
            break;
        }
    }
    CHECK_EQ_INT(rv, whole);
    if (whole > 0)
        CHECK(heads_equal(out, &trickle));

    /* Random steps, several seeds. */
    for (uint64_t seed = 1; seed <= 8; seed++) {
        uint64_t state = seed * 0x9E3779B97F4A7C15ull + len;
        struct head split = {.is_response = is_response};
        wsk_http_parser_init(&p, max_head);
        size_t have = 0;
        rv = 0;
        while (have < len && rv == 0) {
            size_t step = 1 + (size_t)(wsk_test_rand(&state) % (seed * 8));
            have = have + step < len ? have + step : len;
            rv = parse_head(&p, buf, have, &split);
        }
        CHECK_EQ_INT(rv, whole);
        if (whole > 0)
            CHECK(heads_equal(out, &split));
    }
    return whole;
}

static int parse_req(const char *s, struct wsk_http_request *req)
{
    struct head h;
    int rv = parse_every_way(false, s, strlen(s), 0, &h);
    *req = h.req;
    return rv;
}

static int parse_resp(const char *s, struct wsk_http_response *resp)
{
    struct head h;
    int rv = parse_every_way(true, s, strlen(s), 0, &h);
    *resp = h.resp;
    return rv;
}

static bool slice_is(struct wsk_slice s, const char *z)
{
    return s.len == strlen(z) && memcmp(s.ptr, z, s.len) == 0;
}

#define CHECK_SLICE(s, z)                                                                          \
    do {                                                                                           \
        if (!slice_is((s), (z))) {                                                                 \
            fprintf(stderr, "%s:%d: CHECK failed: %s == \"%s\" (got \"%.*s\")\n", __FILE__,        \
                    __LINE__, #s, (z), (int)(s).len, (s).ptr);                                     \
            wsk_test_failures_++;                                                                  \
        }                                                                                          \
    } while (0)

static void test_request_basic(void)
{
    static const char in[] = "GET /chat HTTP/1.1\r\n"
                             "Host: server.example.com\r\n"
                             "Upgrade: websocket\r\n"
                             "Connection: Upgrade\r\n"
                             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                             "Origin: http://example.com\r\n"
                             "Sec-WebSocket-Protocol: chat, superchat\r\n"
                             "Sec-WebSocket-Version: 13\r\n"
                             "\r\n";
    struct wsk_http_request req;
    CHECK_EQ_INT(parse_req(in, &req), strlen(in));
    CHECK_SLICE(req.method, "GET");
    CHECK_SLICE(req.target, "/chat");
    CHECK_SLICE(req.path, "/chat");
    CHECK_SLICE(req.query, "");
    CHECK_EQ_INT(req.minor_version, 1);
    CHECK_EQ_INT(req.num_headers, 7);
    CHECK_SLICE(req.headers[0].name, "Host");
    CHECK_SLICE(req.headers[0].value, "server.example.com");
    CHECK_SLICE(req.headers[5].name, "Sec-WebSocket-Protocol");
    CHECK_SLICE(req.headers[5].value, "chat, superchat");
    CHECK_SLICE(req.headers[6].value, "13");
}

static void test_request_no_headers(void)
{
    struct wsk_http_request req;
    CHECK_EQ_INT(parse_req("OPTIONS * HTTP/1.0\r\n\r\n", &req), 22);
    CHECK_SLICE(req.method, "OPTIONS");
    CHECK_SLICE(req.target, "*");
    CHECK_EQ_INT(req.minor_version, 0);
    CHECK_EQ_INT(req.num_headers, 0);
}

static void test_target_split(void)
{
    struct wsk_http_request req;
    CHECK(parse_req("GET /a/b?x=1&y=2?z HTTP/1.1\r\n\r\n", &req) > 0);
    CHECK_SLICE(req.target, "/a/b?x=1&y=2?z");
    CHECK_SLICE(req.path, "/a/b");
    CHECK_SLICE(req.query, "x=1&y=2?z");

    CHECK(parse_req("GET /? HTTP/1.1\r\n\r\n", &req) > 0);
    CHECK_SLICE(req.path, "/");
    CHECK_SLICE(req.query, "");

    CHECK(parse_req("GET ?q HTTP/1.1\r\n\r\n", &req) > 0);
    CHECK_SLICE(req.path, "");
    CHECK_SLICE(req.query, "q");

    /* Absolute form and bytes beyond ASCII pass through as sent. */
    CHECK(parse_req("GET http://h:1/p\xc3\xa9 HTTP/1.1\r\n\r\n", &req) > 0);
    CHECK_SLICE(req.path, "http://h:1/p\xc3\xa9");
}

static void test_value_trimming(void)
{
    struct wsk_http_request req;
    CHECK(parse_req("GET / HTTP/1.1\r\n"
                    "A:   spaced  out \t \r\n"
                    "B:\r\n"
                    "C: \t \r\n"
                    "D:x\r\n"
                    "E: tab\tinside\r\n"
                    "F: caf\xc3\xa9\r\n"
                    "\r\n",
                    &req) > 0);
    CHECK_EQ_INT(req.num_headers, 6);
    CHECK_SLICE(req.headers[0].value, "spaced  out");
    CHECK_SLICE(req.headers[1].value, "");
    CHECK_SLICE(req.headers[2].value, "");
    CHECK_SLICE(req.headers[3].value, "x");
    CHECK_SLICE(req.headers[4].value, "tab\tinside");
    CHECK_SLICE(req.headers[5].value, "caf\xc3\xa9");
    CHECK(req.headers[1].value.ptr != NULL);
}

static void test_bare_lf(void)
{
    struct wsk_http_request req;
    static const char lf[] = "GET /x HTTP/1.1\nHost: a\nB: c\n\n";
    CHECK_EQ_INT(parse_req(lf, &req), strlen(lf));
    CHECK_SLICE(req.target, "/x");
    CHECK_EQ_INT(req.num_headers, 2);
    CHECK_SLICE(req.headers[0].value, "a");

    static const char mixed[] = "GET / HTTP/1.1\r\nHost: a\n\r\n";
    CHECK_EQ_INT(parse_req(mixed, &req), strlen(mixed));
    CHECK_SLICE(req.headers[0].value, "a");
    static const char mixed2[] = "GET / HTTP/1.1\nHost: a\r\n\n";
    CHECK_EQ_INT(parse_req(mixed2, &req), strlen(mixed2));
    CHECK_SLICE(req.headers[0].value, "a");
}

static void test_bad_bytes(void)
{
    struct wsk_http_request req;
    /* A bare CR, anywhere. */
    CHECK_EQ_INT(parse_req("GET / HTTP/1.1\rHost: a\r\n\r\n", &req), WSK_EHTTP);
    CHECK_EQ_INT(parse_req("GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", &req), WSK_EHTTP);
    CHECK_EQ_INT(parse_req("GET / HTTP/1.1\r\n\r\r\n", &req), WSK_EHTTP);
    CHECK_EQ_INT(parse_req("GET / HTTP/1.1\r\r\n\r\n", &req), WSK_EHTTP);
    /* Control characters in a value. */
    CHECK_EQ_INT(parse_req("GET / HTTP/1.1\r\nA: b\x01\r\n\r\n", &req), WSK_EHTTP);
    CHECK_EQ_INT(parse_req("GET / HTTP/1.1\r\nA: b\x7f\r\n\r\n", &req), WSK_EHTTP);
    static const char nul[] = "GET / HTTP/1.1\r\nA: b\0c\r\n\r\n";
    struct head h;
    CHECK_EQ_INT(parse_every_way(false, nul, sizeof nul - 1, 0, &h), WSK_EHTTP);

    /* Binary garbage fails on its first byte, not after max_head bytes. */
    struct wsk_http_parser p;
    wsk_http_parser_init(&p, 0);
    static const char tls[] = "\x16\x03\x01\x02\x00\x01";
    CHECK_EQ_INT(wsk_http_request_parse(&p, tls, 1, &req), WSK_EHTTP);
    /* A control character after the head is not the head's business. */
    CHECK(parse_req("GET / HTTP/1.1\r\n\r\n\x01\x02", &req) == 18);
}

static void test_field_line_errors(void)
{
    struct wsk_http_request req;
    /* obs-fold, RFC 9112 section 5.2. */
    CHECK_EQ_INT(parse_req("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", &req), WSK_EHTTP);
    CHECK_EQ_INT(parse_req("GET / HTTP/1.1\r\nA: b\r\n\tc\r\n\r\n", &req), WSK_EHTTP);
    CHECK_EQ_INT(parse_req("GET / HTTP/1.1\r\n Host: a\r\n\r\n", &req), WSK_EHTTP);
    /* Whitespace between name and colon. */
    CHECK_EQ_INT(parse_req("GET / HTTP/1.1\r\nHost : a\r\n\r\n", &req), WSK_EHTTP);
    CHECK_EQ_INT(parse_req("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", &req), WSK_EHTTP);
    /* Empty name, no colon, non-token characters. */
    CHECK_EQ_INT(parse_req("GET / HTTP/1.1\r\n: a\r\n\r\n", &req), WSK_EHTTP);
    CHECK_EQ_INT(parse_req("GET / HTTP/1.1\r\nHost\r\n\r\n", &req), WSK_EHTTP);
    CHECK_EQ_INT(parse_req("GET / HTTP/1.1\r\nHo(st: a\r\n\r\n", &req), WSK_EHTTP);
    CHECK_EQ_INT(parse_req("GET / HTTP/1.1\r\nHo\"st: a\r\n\r\n", &req), WSK_EHTTP);
    CHECK_EQ_INT(parse_req("GET / HTTP/1.1\r\nH\xc3\xa9: a\r\n\r\n", &req), WSK_EHTTP);
    CHECK_EQ_INT(parse_req("GET / HTTP/1.1\r\nA b: c\r\n\r\n", &req), WSK_EHTTP);
    /* Every tchar is fine in a name. */
    CHECK(parse_req("GET / HTTP/1.1\r\n!#$%&'*+-.^_`|~09azAZ: a\r\n\r\n", &req) > 0);
    CHECK_SLICE(req.headers[0].name, "!#$%&'*+-.^_`|~09azAZ");
    /* A colon in the value is just a byte. */
    CHECK(parse_req("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", &req) > 0);
    CHECK_SLICE(req.headers[0].value, "[::1]:80");
}

static void test_request_line_errors(void)
{
    static const char *const bad[] = {
        "\r\n",                            /* empty request line */
        "\r\nGET / HTTP/1.1\r\n\r\n",      /* leading empty line */
        "GET\r\n\r\n",                     /* no target */
        "GET HTTP/1.1\r\n\r\n",            /* no target */
        "GET  HTTP/1.1\r\n\r\n",           /* empty target */
        "GET  / HTTP/1.1\r\n\r\n",         /* two spaces */
        "GET /  HTTP/1.1\r\n\r\n",         /* two spaces */
        "GET / HTTP/1.1 \r\n\r\n",         /* trailing space */
        " GET / HTTP/1.1\r\n\r\n",         /* leading space */
        "GET /a b HTTP/1.1\r\n\r\n",       /* space in target */
        "GET /a\tb HTTP/1.1\r\n\r\n",      /* HTAB in target */
        "GET\t/ HTTP/1.1\r\n\r\n",         /* HTAB as separator */
        "G(T / HTTP/1.1\r\n\r\n",          /* method not a token */
        "G\xc3\x89T / HTTP/1.1\r\n\r\n",   /* method not a token */
        "GET / HTTP/2.0\r\n\r\n",          /* other major version */
        "GET / HTTP/1.10\r\n\r\n",         /* two-digit minor */
        "GET / HTTP/1.\r\n\r\n",           /* no minor */
        "GET / HTTP/1\r\n\r\n",            /* no minor */
        "GET / http/1.1\r\n\r\n",          /* HTTP-name is case-sensitive */
        "GET / HTTP/1.x\r\n\r\n",          /* minor not a digit */
        "GET / \r\n\r\n",                  /* no version */
        "GET /\r\n\r\n",                   /* HTTP/0.9 style */
        "HTTP/1.1 101 Switching\r\n\r\n",  /* a response */
        "GET / HTTP/1.1\r\nHost: a\r\n\r", /* incomplete, see below */
    };
    for (size_t i = 0; i + 1 < sizeof bad / sizeof bad[0]; i++) {
        struct wsk_http_request req;
        int rv = parse_req(bad[i], &req);
        if (rv != WSK_EHTTP) {
            fprintf(stderr, "input %zu gave %d\n", i, rv);
            CHECK_EQ_INT(rv, WSK_EHTTP);
        }
    }
    struct wsk_http_request req;
    CHECK_EQ_INT(parse_req(bad[sizeof bad / sizeof bad[0] - 1], &req), 0);
    /* Any token is a method here; the handshake decides which it accepts. */
    CHECK(parse_req("get / HTTP/1.1\r\n\r\n", &req) > 0);
    CHECK_SLICE(req.method, "get");
    CHECK(parse_req("M-SEARCH * HTTP/1.1\r\n\r\n", &req) > 0);
    CHECK(parse_req("GET / HTTP/1.9\r\n\r\n", &req) > 0);
    CHECK_EQ_INT(req.minor_version, 9);
}

static void test_incomplete(void)
{
    static const char full[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    struct wsk_http_request req;
    for (size_t len = 0; len < sizeof full - 1; len++) {
        struct head h;
        CHECK_EQ_INT(parse_every_way(false, full, len, 0, &h), 0);
    }
    CHECK_EQ_INT(parse_req(full, &req), sizeof full - 1);
}

static void test_bytes_after_head(void)
{
    /* Frames may follow the head in the same read; they are not consumed. */
    static const char in[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n\x81\x85\x37\xfa\x21\x3d";
    struct head h;
    CHECK_EQ_INT(parse_every_way(false, in, sizeof in - 1, 0, &h), 27);
    CHECK_SLICE(h.req.headers[0].value, "a");
}

/* Writes a request whose head is exactly len bytes into buf. */
static size_t make_request_of_len(char *buf, size_t len)
{
    static const char start[] = "GET / HTTP/1.1\r\nX: ";
    size_t n = sizeof start - 1;
    memcpy(buf, start, n);
    while (n < len - 4)
        buf[n++] = 'x';
    memcpy(buf + n, "\r\n\r\n", 4);
    return len;
}

static void test_head_too_big(void)
{
    static char buf[3 * WSK_HTTP_DEFAULT_MAX_HEAD];
    struct head h;
    /* Exactly the limit is fine; one more byte is not. */
    size_t n = make_request_of_len(buf, WSK_HTTP_DEFAULT_MAX_HEAD);
    CHECK_EQ_INT(parse_every_way(false, buf, n, 0, &h), WSK_HTTP_DEFAULT_MAX_HEAD);
    CHECK_EQ_INT(h.req.headers[0].value.len, WSK_HTTP_DEFAULT_MAX_HEAD - 23);
    n = make_request_of_len(buf, WSK_HTTP_DEFAULT_MAX_HEAD + 1);
    CHECK_EQ_INT(parse_every_way(false, buf, n, 0, &h), WSK_EHEADTOOBIG);

    /* No end in sight: fails once max_head bytes are in. */
    memset(buf, 'a', sizeof buf);
    memcpy(buf, "GET / HTTP/1.1\r\nX: ", 19);
    CHECK_EQ_INT(parse_every_way(false, buf, WSK_HTTP_DEFAULT_MAX_HEAD - 1, 0, &h), 0);
    CHECK_EQ_INT(parse_every_way(false, buf, WSK_HTTP_DEFAULT_MAX_HEAD, 0, &h), WSK_EHEADTOOBIG);
    CHECK_EQ_INT(parse_every_way(false, buf, sizeof buf, 0, &h), WSK_EHEADTOOBIG);

    /* Many short lines count the same as one long one. */
    n = 0;
    n += (size_t)sprintf(buf, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 60; i++)
        n += (size_t)sprintf(buf + n, "X-Long-Header-%02d: %0128d\r\n", i, 0);
    n += (size_t)sprintf(buf + n, "\r\n");
    CHECK(n > WSK_HTTP_DEFAULT_MAX_HEAD);
    CHECK_EQ_INT(parse_every_way(false, buf, n, 0, &h), WSK_EHEADTOOBIG);
    CHECK_EQ_INT(parse_every_way(false, buf, n, n, &h), (int)n);

    /* A custom limit. */
    static const char small[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    CHECK_EQ_INT(parse_every_way(false, small, 27, 27, &h), 27);
    CHECK_EQ_INT(parse_every_way(false, small, 27, 26, &h), WSK_EHEADTOOBIG);
    CHECK_EQ_INT(parse_every_way(false, small, 25, 26, &h), 0);
    CHECK_EQ_INT(parse_every_way(true, "HTTP/1.1 200 OK\r\n\r\n", 19, 10, &h), WSK_EHEADTOOBIG);
}

static void test_too_many_headers(void)
{
    static char buf[4096];
    struct head h;
    for (int count = 63; count <= 66; count++) {
        size_t n = (size_t)sprintf(buf, "GET / HTTP/1.1\r\n");
        for (int i = 0; i < count; i++)
            n += (size_t)sprintf(buf + n, "H%d: %d\r\n", i, i);
        n += (size_t)sprintf(buf + n, "\r\n");
        int rv = parse_every_way(false, buf, n, 0, &h);
        if (count <= WSK_HTTP_MAX_HEADERS) {
            CHECK_EQ_INT(rv, (int)n);
            CHECK_EQ_INT(h.req.num_headers, count);
            CHECK_SLICE(h.req.headers[count - 1].value, count == 63 ? "62" : "63");
        } else {
            CHECK_EQ_INT(rv, WSK_EHEADTOOBIG);
        }
    }
    /* The same limit for responses. */
    size_t n = (size_t)sprintf(buf, "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i < 65; i++)
        n += (size_t)sprintf(buf + n, "H: %d\r\n", i);
    n += (size_t)sprintf(buf + n, "\r\n");
    CHECK_EQ_INT(parse_every_way(true, buf, n, 0, &h), WSK_EHEADTOOBIG);
}

static void test_response_basic(void)
{
    static const char in[] = "HTTP/1.1 101 Switching Protocols\r\n"
                             "Upgrade: websocket\r\n"
                             "Connection: Upgrade\r\n"
                             "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                             "Sec-WebSocket-Protocol: chat\r\n"
                             "\r\n";
    struct wsk_http_response resp;
    CHECK_EQ_INT(parse_resp(in, &resp), strlen(in));
    CHECK_EQ_INT(resp.status, 101);
    CHECK_EQ_INT(resp.minor_version, 1);
    CHECK_SLICE(resp.reason, "Switching Protocols");
    CHECK_EQ_INT(resp.num_headers, 4);
    CHECK_SLICE(resp.headers[2].name, "Sec-WebSocket-Accept");
    CHECK_SLICE(resp.headers[2].value, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");

    CHECK(parse_resp("HTTP/1.0 404 Not Found\n\n", &resp) > 0);
    CHECK_EQ_INT(resp.status, 404);
    CHECK_EQ_INT(resp.minor_version, 0);
    CHECK(parse_resp("HTTP/1.1 200 \r\n\r\n", &resp) > 0);
    CHECK_EQ_INT(resp.status, 200);
    CHECK_SLICE(resp.reason, "");
    /* The SP before an empty reason is tolerated missing. */
    CHECK(parse_resp("HTTP/1.1 200\r\n\r\n", &resp) > 0);
    CHECK_SLICE(resp.reason, "");
    CHECK(parse_resp("HTTP/1.1 599 Any \t thing \xff\r\n\r\n", &resp) > 0);
    CHECK_EQ_INT(resp.status, 599);
    CHECK_SLICE(resp.reason, "Any \t thing \xff");
    CHECK(parse_resp("HTTP/1.1 999 x\r\n\r\n", &resp) > 0);
}

static void test_response_errors(void)
{
    static const char *const bad[] = {
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 099 OK\r\n\r\n",
        "HTTP/1.1  200 OK\r\n\r\n",
        "HTTP/1.1 200OK\r\n\r\n",
        "HTTP/1.1 2x0 OK\r\n\r\n",
        "HTTP/2 200 OK\r\n\r\n",
        "HTTP/1.1\r\n\r\n",
        "ICY 200 OK\r\n\r\n",
        "http/1.1 200 OK\r\n\r\n",
        "\r\n",
        "GET / HTTP/1.1\r\n\r\n",
        "HTTP/1.1 101 OK\r\nUpgrade : websocket\r\n\r\n",
        "HTTP/1.1 101 OK\r\nA: b\r\n c\r\n\r\n",
        "HTTP/1.1 200 O\x01K\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct wsk_http_response resp;
        int rv = parse_resp(bad[i], &resp);
        if (rv != WSK_EHTTP) {
            fprintf(stderr, "input %zu gave %d\n", i, rv);
            CHECK_EQ_INT(rv, WSK_EHTTP);
        }
    }
}

static void test_header_get(void)
{
    struct wsk_http_request req;
    CHECK(parse_req("GET / HTTP/1.1\r\nhost: one\r\nHOST: two\r\nHostname: x\r\n\r\n", &req) > 0);
    const struct wsk_slice *v = wsk_http_header_get(req.headers, req.num_headers, "Host");
    CHECK(v != NULL && slice_is(*v, "one"));
    v = wsk_http_header_get(req.headers, req.num_headers, "hostname");
    CHECK(v != NULL && slice_is(*v, "x"));
    CHECK(wsk_http_header_get(req.headers, req.num_headers, "Hos") == NULL);
    CHECK(wsk_http_header_get(req.headers, req.num_headers, "Origin") == NULL);
    CHECK(wsk_http_header_get(req.headers, 0, "Host") == NULL);
}

static void test_has_token(void)
{
    struct wsk_http_request req;
    CHECK(parse_req("GET / HTTP/1.1\r\n"
                    "Connection: keep-alive, Upgrade\r\n"
                    "Upgrade: WEBSOCKET\r\n"
                    "X: ,, a ,\t b\t,,c,\r\n"
                    "x: d\r\n"
                    "Y: upgrade2, pre-upgrade, up grade\r\n"
                    "Z:\r\n"
                    "\r\n",
                    &req) > 0);
    const struct wsk_http_header *hs = req.headers;
    size_t n = req.num_headers;
    CHECK(wsk_http_header_has_token(hs, n, "Connection", "upgrade"));
    CHECK(wsk_http_header_has_token(hs, n, "connection", "KEEP-ALIVE"));
    CHECK(!wsk_http_header_has_token(hs, n, "Connection", "close"));
    CHECK(wsk_http_header_has_token(hs, n, "Upgrade", "websocket"));
    CHECK(wsk_http_header_has_token(hs, n, "X", "a"));
    CHECK(wsk_http_header_has_token(hs, n, "X", "b"));
    CHECK(wsk_http_header_has_token(hs, n, "X", "c"));
    CHECK(wsk_http_header_has_token(hs, n, "X", "d")); /* from the second X line */
    CHECK(!wsk_http_header_has_token(hs, n, "X", "a , b"));
    CHECK(!wsk_http_header_has_token(hs, n, "Y", "upgrade"));
    CHECK(!wsk_http_header_has_token(hs, n, "Y", "up"));
    CHECK(wsk_http_header_has_token(hs, n, "Y", "up grade"));
    CHECK(!wsk_http_header_has_token(hs, n, "Z", "upgrade"));
    CHECK(!wsk_http_header_has_token(hs, n, "Absent", "upgrade"));

    /* Repeated Connection lines act as one list. */
    CHECK(parse_req("GET / HTTP/1.1\r\nConnection: keep-alive\r\nConnection: upgrade\r\n\r\n",
                    &req) > 0);
    CHECK(wsk_http_header_has_token(req.headers, req.num_headers, "Connection", "Upgrade"));
}

/* A mixed bag through every split, including error cases, so that splitting
 * never changes an answer. */
static void test_splits_agree(void)
{
    static const char *const inputs[] = {
        "GET /chat?room=1 HTTP/1.1\r\nHost: example.com:8080\r\nUpgrade: websocket\r\n"
        "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n",
        "GET / HTTP/1.1\nA: b\n\nrest",
        "GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n",
        "GET / HTTP/1.1\r\nA: b\rc\r\n\r\n",
        "GET / HTTP/1.1\r\n\r",
        "GET / HTTP/1.1\r\n\n",
        "\n",
        "\r\n\r\n",
        "GET / HTTP/1.1\r\nA : b\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        struct head h;
        (void)parse_every_way(false, inputs[i], strlen(inputs[i]), 0, &h);
        (void)parse_every_way(false, inputs[i], strlen(inputs[i]), 20, &h);
        (void)parse_every_way(true, inputs[i], strlen(inputs[i]), 0, &h);
    }
}

static void test_parser_reuse(void)
{
    /* After a complete head the parser stays put; init starts over. */
    static const char a[] = "GET /a HTTP/1.1\r\n\r\n";
    static const char b[] = "GET /bb HTTP/1.1\r\n\r\n";
    struct wsk_http_parser p;
    struct wsk_http_request req;
    wsk_http_parser_init(&p, 0);
    CHECK_EQ_INT(wsk_http_request_parse(&p, a, strlen(a), &req), strlen(a));
    CHECK_EQ_INT(wsk_http_request_parse(&p, a, strlen(a), &req), strlen(a));
    wsk_http_parser_init(&p, 0);
    CHECK_EQ_INT(wsk_http_request_parse(&p, b, strlen(b), &req), strlen(b));
    CHECK_SLICE(req.target, "/bb");
}

int main(void)
{
    WSK_RUN(test_request_basic);
    WSK_RUN(test_request_no_headers);
    WSK_RUN(test_target_split);
    WSK_RUN(test_value_trimming);
    WSK_RUN(test_bare_lf);
    WSK_RUN(test_bad_bytes);
    WSK_RUN(test_field_line_errors);
    WSK_RUN(test_request_line_errors);
    WSK_RUN(test_incomplete);
    WSK_RUN(test_bytes_after_head);
    WSK_RUN(test_head_too_big);
    WSK_RUN(test_too_many_headers);
    WSK_RUN(test_response_basic);
    WSK_RUN(test_response_errors);
    WSK_RUN(test_header_get);
    WSK_RUN(test_has_token);
    WSK_RUN(test_splits_agree);
    WSK_RUN(test_parser_reuse);
    WSK_TEST_END();
}
