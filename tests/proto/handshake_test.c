/* Tests for the opening handshake (src/proto/handshake.c): RFC 6455 section 4
 * from both ends, with requests parsed by src/proto/http1.c. */
#include <errno.h>

#include <openssl/evp.h>

#include "proto/sha1_internal.h"
#include "wsk/proto.h"
#include "wsk_test.h"

/* The RFC 6455 section 1.3 example, line by line, so that crafted requests
 * can leave one out or replace it. */
#define RL     "GET /chat HTTP/1.1\r\n"
#define HOST   "Host: server.example.com\r\n"
#define UPG    "Upgrade: websocket\r\n"
#define CONN   "Connection: Upgrade\r\n"
#define KEY    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
#define ORIGIN "Origin: http://example.com\r\n"
#define PROTO  "Sec-WebSocket-Protocol: chat, superchat\r\n"
#define VER    "Sec-WebSocket-Version: 13\r\n"
#define END    "\r\n"

#define RFC_KEY    "dGhlIHNhbXBsZSBub25jZQ=="
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

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

/* The request and info of the last server_status() call; slices point into
 * the caller's string. */
static struct wsk_http_request last_req;
static struct wsk_handshake_info last_info;

/* What a server answers to head: 400 or 431 when it does not parse, else the
 * status of the handshake check. */
static int server_status(const char *head, const struct wsk_handshake_server_config *cfg)
{
    struct wsk_http_parser p;
    wsk_http_parser_init(&p, 0);
    int rv = wsk_http_request_parse(&p, head, strlen(head), &last_req);
    if (rv == WSK_EHTTP)
        return 400;
    if (rv == WSK_EHEADTOOBIG)
        return 431;
    if (rv != (int)strlen(head)) {
        fprintf(stderr, "head did not parse whole: %d\n", rv);
        return -1;
    }
    int status = wsk_handshake_server_check(&last_req, cfg, &last_info);
    /* Every refusal says why (for access logs); an acceptance says nothing. */
    CHECK(last_info.refusal != NULL);
    if (last_info.refusal)
        CHECK((status == 101) == (last_info.refusal[0] == '\0'));
    return status;
}

#define CHECK_STATUS(head, cfg, status)                                                            \
    do {                                                                                           \
        int got_ = server_status((head), (cfg));                                                   \
        if (got_ != (status)) {                                                                    \
            fprintf(stderr, "%s:%d: status %d, want %d for:\n%s", __FILE__, __LINE__, got_,        \
                    (status), (head));                                                             \
            wsk_test_failures_++;                                                                  \
        }                                                                                          \
    } while (0)

static void test_accept_key(void)
{
    char out[29];
    wsk_handshake_accept_key(RFC_KEY, 24, out);
    CHECK_STR(out, RFC_ACCEPT);
    /* The example from the Wikipedia article on WebSocket. */
    wsk_handshake_accept_key("x3JJHMbDL1EzLkh9GBhXDw==", 24, out);
    CHECK_STR(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
    /* Only key_len bytes count. */
    wsk_handshake_accept_key(RFC_KEY "garbage", 24, out);
    CHECK_STR(out, RFC_ACCEPT);
}

static void test_client_key(void)
{
    char out[25];
    wsk_handshake_client_key((const uint8_t *)"the sample nonce", out);
    CHECK_STR(out, RFC_KEY);
    static const uint8_t zeros[16] = {0};
    wsk_handshake_client_key(zeros, out);
    CHECK_STR(out, "AAAAAAAAAAAAAAAAAAAAAA==");
    uint8_t ones[16];
    memset(ones, 0xff, sizeof ones);
    wsk_handshake_client_key(ones, out);
    CHECK_STR(out, "/////////////////////w==");
}

static void test_server_check_rfc_example(void)
{
    CHECK_STATUS(RL HOST UPG CONN KEY ORIGIN PROTO VER END, NULL, 101);
    CHECK_SLICE(last_info.path, "/chat");
    CHECK_SLICE(last_info.query, "");
    CHECK_SLICE(last_info.host, "server.example.com");
    CHECK_SLICE(last_info.origin, "http://example.com");
    CHECK_SLICE(last_info.key, RFC_KEY);
    CHECK_SLICE(last_info.subprotocol, ""); /* the server offered none */
    CHECK_SLICE(last_info.extensions, "");
    CHECK(last_info.subprotocol.ptr != NULL && last_info.extensions.ptr != NULL);

    /* info may be NULL. */
    CHECK_EQ_INT(wsk_handshake_server_check(&last_req, NULL, NULL), 101);

    CHECK_STATUS("GET /a/b?x=1&y HTTP/1.1\r\n" HOST UPG CONN KEY VER
                 "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                 "Sec-WebSocket-Extensions: x-other\r\n" END,
                 NULL, 101);
    CHECK_SLICE(last_info.path, "/a/b");
    CHECK_SLICE(last_info.query, "x=1&y");
    CHECK_SLICE(last_info.origin, "");
    CHECK_SLICE(last_info.extensions, "permessage-deflate; client_max_window_bits");
}

static void test_server_check_method(void)
{
    CHECK_STATUS("POST /chat HTTP/1.1\r\n" HOST UPG CONN KEY VER END, NULL, 405);
    CHECK_STATUS("HEAD /chat HTTP/1.1\r\n" HOST UPG CONN KEY VER END, NULL, 405);
    CHECK_STATUS("get /chat HTTP/1.1\r\n" HOST UPG CONN KEY VER END, NULL, 405);
    /* The method is checked first. */
    CHECK_STATUS("PUT /chat HTTP/1.0\r\n" END, NULL, 405);
}

static void test_server_check_version_and_host(void)
{
    CHECK_STATUS("GET /chat HTTP/1.0\r\n" HOST UPG CONN KEY VER END, NULL, 400);
    CHECK_STATUS("GET /chat HTTP/1.2\r\n" HOST UPG CONN KEY VER END, NULL, 101);
    CHECK_STATUS(RL UPG CONN KEY VER END, NULL, 400);
    CHECK_STATUS(RL HOST HOST UPG CONN KEY VER END, NULL, 400);
    CHECK_STATUS(RL "host: a\r\nHOST: a\r\n" UPG CONN KEY VER END, NULL, 400);
    CHECK_STATUS(RL "Host:\r\n" UPG CONN KEY VER END, NULL, 101);
    CHECK_SLICE(last_info.host, "");
    CHECK_STATUS(RL "Host: [::1]:9001\r\n" UPG CONN KEY VER END, NULL, 101);
    CHECK_SLICE(last_info.host, "[::1]:9001");
}

static void test_server_check_upgrade_connection(void)
{
    CHECK_STATUS(RL HOST CONN KEY VER END, NULL, 400);
    CHECK_STATUS(RL HOST "Upgrade: h2c\r\n" CONN KEY VER END, NULL, 400);
    CHECK_STATUS(RL HOST "Upgrade: websockets\r\n" CONN KEY VER END, NULL, 400);
    CHECK_STATUS(RL HOST "Upgrade: WebSocket\r\n" CONN KEY VER END, NULL, 101);
    CHECK_STATUS(RL HOST "Upgrade: WEBSOCKET\r\n" CONN KEY VER END, NULL, 101);
    CHECK_STATUS(RL HOST "Upgrade: h2c, websocket\r\n" CONN KEY VER END, NULL, 101);
    CHECK_STATUS(RL HOST "Upgrade: h2c\r\nUpgrade: websocket\r\n" CONN KEY VER END, NULL, 101);

    CHECK_STATUS(RL HOST UPG KEY VER END, NULL, 400);
    CHECK_STATUS(RL HOST UPG "Connection: keep-alive\r\n" KEY VER END, NULL, 400);
    CHECK_STATUS(RL HOST UPG "Connection: upgrades\r\n" KEY VER END, NULL, 400);
    CHECK_STATUS(RL HOST UPG "Connection: keep-alive, Upgrade\r\n" KEY VER END, NULL, 101);
    CHECK_STATUS(RL HOST UPG "Connection: UPGRADE\r\n" KEY VER END, NULL, 101);
    CHECK_STATUS(RL HOST UPG "Connection: keep-alive\r\nConnection: upgrade\r\n" KEY VER END, NULL,
                 101);
    /* Upgrade is checked before the version. */
    CHECK_STATUS(RL HOST CONN KEY END, NULL, 400);
}

static void test_server_check_ws_version(void)
{
    CHECK_STATUS(RL HOST UPG CONN KEY END, NULL, 426);
    CHECK_STATUS(RL HOST UPG CONN KEY "Sec-WebSocket-Version: 8\r\n" END, NULL, 426);
    CHECK_STATUS(RL HOST UPG CONN KEY "Sec-WebSocket-Version: 13, 8\r\n" END, NULL, 426);
    CHECK_STATUS(RL HOST UPG CONN KEY "Sec-WebSocket-Version: 013\r\n" END, NULL, 426);
    CHECK_STATUS(RL HOST UPG CONN KEY "Sec-WebSocket-Version:\r\n" END, NULL, 426);
    CHECK_STATUS(RL HOST UPG CONN KEY "sec-websocket-version:  13 \r\n" END, NULL, 101);
    CHECK_STATUS(RL HOST UPG CONN KEY VER VER END, NULL, 400);
    /* The version is checked before the key. */
    CHECK_STATUS(RL HOST UPG CONN "Sec-WebSocket-Key: x\r\n" END, NULL, 426);
}

static void test_server_check_key(void)
{
    static const char *const bad[] = {
        "dGhlIHNhbXBsZSBub25jZQ=",     /* 23 characters */
        "dGhlIHNhbXBsZSBub25jZQ===",   /* 25 characters */
        "dGhlIHNhbXBsZSBub25jZQA=",    /* wrong padding */
        "dGhlIHNhbXBsZSBub25jZQAA",    /* no padding */
        "AAAAAAAAAAAAAAAAAAAAAAA=",    /* base64 of 17 bytes */
        "dGhlIHNhbXBsZSBub25jZR==",    /* trailing bits not zero */
        "dGhlIHNhbXBsZSBub25jZf==",    /* trailing bits not zero */
        "dGhlIHNhbXBsZSBub25j-Q==",    /* base64url, not base64 */
        "dGhlIHNhbXBsZSBub25j_Q==",    /* base64url, not base64 */
        "dGhlIHNhbXBsZSBub25j.Q==",    /* not base64 */
        "dGhlIHNhbXBs ZSBub25jQ==",    /* space inside */
        "dGhlIHNhbXBsZSBub25jZQ=\xc3", /* not ASCII */
        "=GhlIHNhbXBsZSBub25jZQ==",    /* padding in front */
        "",                            /* empty */
    };
    char head[512];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(head, sizeof head, RL HOST UPG CONN "Sec-WebSocket-Key: %s\r\n" VER END, bad[i]);
        CHECK_STATUS(head, NULL, 400);
    }
    static const char *const good[] = {
        RFC_KEY,
        "AAAAAAAAAAAAAAAAAAAAAA==",
        "/////////////////////w==",
        "+++++++++++++++++++++g==",
        "x3JJHMbDL1EzLkh9GBhXDw==",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        snprintf(head, sizeof head, RL HOST UPG CONN "Sec-WebSocket-Key: %s\r\n" VER END, good[i]);
        CHECK_STATUS(head, NULL, 101);
        CHECK_SLICE(last_info.key, good[i]);
    }
    /* Whitespace around the value is not part of it. */
    CHECK_STATUS(RL HOST UPG CONN "Sec-WebSocket-Key: \t" RFC_KEY " \r\n" VER END, NULL, 101);
    CHECK_SLICE(last_info.key, RFC_KEY);
    CHECK_STATUS(RL HOST UPG CONN VER END, NULL, 400);
    CHECK_STATUS(RL HOST UPG CONN KEY KEY VER END, NULL, 400);
    CHECK_STATUS(RL HOST UPG CONN KEY "sec-websocket-key: AAAAAAAAAAAAAAAAAAAAAA==\r\n" VER END,
                 NULL, 400);
}

static void test_server_check_origin(void)
{
    static const char *const origins[] = {"http://example.com", "https://app.example.com"};
    struct wsk_handshake_server_config cfg = {.origins = origins, .num_origins = 2};
    CHECK_STATUS(RL HOST UPG CONN KEY ORIGIN VER END, &cfg, 101);
    CHECK_SLICE(last_info.origin, "http://example.com");
    CHECK_STATUS(RL HOST UPG CONN KEY "Origin: https://app.example.com\r\n" VER END, &cfg, 101);
    CHECK_STATUS(RL HOST UPG CONN KEY "Origin: HTTP://Example.COM\r\n" VER END, &cfg, 101);
    CHECK_STATUS(RL HOST UPG CONN KEY "Origin: http://evil.example\r\n" VER END, &cfg, 403);
    CHECK_STATUS(RL HOST UPG CONN KEY "Origin: http://example.com.evil\r\n" VER END, &cfg, 403);
    CHECK_STATUS(RL HOST UPG CONN KEY "Origin: http://example.co\r\n" VER END, &cfg, 403);
    CHECK_STATUS(RL HOST UPG CONN KEY "Origin: https://example.com\r\n" VER END, &cfg, 403);
    CHECK_STATUS(RL HOST UPG CONN KEY "Origin: null\r\n" VER END, &cfg, 403);
    CHECK_STATUS(RL HOST UPG CONN KEY "Origin:\r\n" VER END, &cfg, 403);
    /* Each Origin line must pass. */
    CHECK_STATUS(RL HOST UPG CONN KEY ORIGIN "Origin: http://evil.example\r\n" VER END, &cfg, 403);
    /* No Origin: not a browser, nothing to protect. */
    CHECK_STATUS(RL HOST UPG CONN KEY VER END, &cfg, 101);
    CHECK_SLICE(last_info.origin, "");
    /* No list: any origin. */
    struct wsk_handshake_server_config open = {0};
    CHECK_STATUS(RL HOST UPG CONN KEY "Origin: http://evil.example\r\n" VER END, &open, 101);
    CHECK_SLICE(last_info.origin, "http://evil.example");
    /* The key is checked before the origin. */
    CHECK_STATUS(RL HOST UPG CONN "Origin: http://evil.example\r\n" VER END, &cfg, 400);
}

static void test_server_check_subprotocol(void)
{
    static const char *const prefs[] = {"superchat", "chat", "v2.mqtt"};
    struct wsk_handshake_server_config cfg = {.subprotocols = prefs, .num_subprotocols = 3};
    /* The server's order wins over the client's. */
    CHECK_STATUS(RL HOST UPG CONN KEY PROTO VER END, &cfg, 101);
    CHECK_SLICE(last_info.subprotocol, "superchat");
    CHECK_STATUS(RL HOST UPG CONN KEY "Sec-WebSocket-Protocol: chat\r\n" VER END, &cfg, 101);
    CHECK_SLICE(last_info.subprotocol, "chat");
    CHECK_STATUS(RL HOST UPG CONN KEY "Sec-WebSocket-Protocol: a , ,chat\t,b\r\n" VER END, &cfg,
                 101);
    CHECK_SLICE(last_info.subprotocol, "chat");
    /* Several lines form one list. */
    CHECK_STATUS(RL HOST UPG CONN KEY "Sec-WebSocket-Protocol: a, b\r\n"
                                      "Sec-WebSocket-Protocol: v2.mqtt\r\n" VER END,
                 &cfg, 101);
    CHECK_SLICE(last_info.subprotocol, "v2.mqtt");
    CHECK(last_info.subprotocol.ptr > last_req.headers[0].name.ptr); /* points into the request */
    /* Names match exactly, whole. */
    CHECK_STATUS(RL HOST UPG CONN KEY "Sec-WebSocket-Protocol: Chat, SUPERCHAT\r\n" VER END, &cfg,
                 101);
    CHECK_SLICE(last_info.subprotocol, "");
    CHECK_STATUS(RL HOST UPG CONN KEY "Sec-WebSocket-Protocol: cha, chatt, super chat\r\n" VER END,
                 &cfg, 101);
    CHECK_SLICE(last_info.subprotocol, "");
    /* Nothing offered, or nothing configured: no subprotocol. */
    CHECK_STATUS(RL HOST UPG CONN KEY VER END, &cfg, 101);
    CHECK_SLICE(last_info.subprotocol, "");
    struct wsk_handshake_server_config none = {0};
    CHECK_STATUS(RL HOST UPG CONN KEY PROTO VER END, &none, 101);
    CHECK_SLICE(last_info.subprotocol, "");
}

static void test_server_check_unparsable(void)
{
    /* Heads the parser refuses get 400 or 431 before any handshake check. */
    CHECK_STATUS(RL HOST UPG CONN KEY VER "X: a\r\n b\r\n" END, NULL, 400);
    CHECK_STATUS(RL HOST "Upgrade : websocket\r\n" CONN KEY VER END, NULL, 400);
    CHECK_STATUS("GET /chat HTTP/2\r\n" HOST UPG CONN KEY VER END, NULL, 400);
    CHECK_STATUS("GET HTTP/1.1\r\n" HOST UPG CONN KEY VER END, NULL, 400);

    static char big[WSK_HTTP_DEFAULT_MAX_HEAD + 256];
    size_t n = (size_t)snprintf(big, sizeof big, RL HOST UPG CONN KEY VER "X-Pad: ");
    while (n < WSK_HTTP_DEFAULT_MAX_HEAD)
        big[n++] = 'p';
    memcpy(big + n, "\r\n\r\n", 5);
    CHECK_STATUS(big, NULL, 431);

    n = (size_t)snprintf(big, sizeof big, RL HOST UPG CONN KEY VER);
    for (int i = 0; i < WSK_HTTP_MAX_HEADERS; i++)
        n += (size_t)snprintf(big + n, sizeof big - n, "X-%d: %d\r\n", i, i);
    snprintf(big + n, sizeof big - n, "\r\n");
    CHECK(n < WSK_HTTP_DEFAULT_MAX_HEAD);
    CHECK_STATUS(big, NULL, 431);
}

static void test_is_upgrade(void)
{
    CHECK_STATUS(RL HOST UPG CONN KEY VER END, NULL, 101);
    CHECK(wsk_handshake_is_upgrade(&last_req));
    CHECK_STATUS(RL HOST "Upgrade: WebSocket\r\n" END, NULL, 400);
    CHECK(wsk_handshake_is_upgrade(&last_req));
    CHECK_STATUS(RL HOST "Upgrade: h2c\r\n" END, NULL, 400);
    CHECK(!wsk_handshake_is_upgrade(&last_req));
    CHECK_STATUS(RL HOST END, NULL, 400);
    CHECK(!wsk_handshake_is_upgrade(&last_req));
}

/* The writers under test, behind one signature, for the buffer-size checks. */
typedef int writer_cb(char *out, size_t cap, const void *arg);

/* Calls w with no buffer, then with every cap from 0 to the length it needs.
 * Below that length it must fail with WSK_ENOSPC, at it it must succeed, and
 * it must never write at or past cap. Returns the length. */
static int check_caps(writer_cb *w, const void *arg)
{
    static char full[4096];
    int len = w(full, sizeof full, arg);
    CHECK(len > 0 && (size_t)len < sizeof full);
    if (len <= 0)
        return len;
    CHECK_EQ_INT(w(NULL, 0, arg), WSK_ENOSPC);
    static char buf[4096 + 64];
    for (size_t cap = 0; cap <= (size_t)len; cap++) {
        memset(buf, 0xA5, sizeof buf);
        int rv = w(buf, cap, arg);
        CHECK_EQ_INT(rv, cap == (size_t)len ? len : WSK_ENOSPC);
        size_t canary = 0;
        while (cap + canary < sizeof buf && (unsigned char)buf[cap + canary] == 0xA5)
            canary++;
        if (cap + canary != sizeof buf) {
            fprintf(stderr, "wrote past cap %zu\n", cap);
            CHECK(!"wrote past cap");
            break;
        }
        if (rv == len)
            CHECK_MEM(buf, full, (size_t)len);
    }
    return len;
}

struct accept_args {
    const struct wsk_handshake_info *info;
    const char *extra;
};

static int write_accept(char *out, size_t cap, const void *arg)
{
    const struct accept_args *a = arg;
    return wsk_handshake_server_accept(out, cap, a->info, a->extra);
}

static int write_reject(char *out, size_t cap, const void *arg)
{
    return wsk_handshake_server_reject(out, cap, *(const int *)arg);
}

static int write_request(char *out, size_t cap, const void *arg)
{
    return wsk_handshake_client_request(out, cap, arg);
}

static void test_server_accept(void)
{
    static const char *const prefs[] = {"chat"};
    struct wsk_handshake_server_config cfg = {.subprotocols = prefs, .num_subprotocols = 1};
    CHECK_STATUS(RL HOST UPG CONN KEY ORIGIN PROTO VER END, &cfg, 101);
    char out[512];
    int n = wsk_handshake_server_accept(out, sizeof out, &last_info, NULL);
    static const char want[] = "HTTP/1.1 101 Switching Protocols\r\n"
                               "Upgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n"
                               "Sec-WebSocket-Protocol: chat\r\n"
                               "\r\n";
    CHECK_EQ_INT(n, sizeof want - 1);
    CHECK_MEM(out, want, sizeof want - 1);

    struct accept_args args = {&last_info, NULL};
    CHECK_EQ_INT(check_caps(write_accept, &args), sizeof want - 1);

    /* No subprotocol, extra headers. */
    CHECK_STATUS(RL HOST UPG CONN KEY VER END, &cfg, 101);
    n = wsk_handshake_server_accept(out, sizeof out, &last_info, "Server: wsk\r\nX-A: 1\r\n");
    static const char want2[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                "Upgrade: websocket\r\n"
                                "Connection: Upgrade\r\n"
                                "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n"
                                "Server: wsk\r\n"
                                "X-A: 1\r\n"
                                "\r\n";
    CHECK_EQ_INT(n, sizeof want2 - 1);
    CHECK_MEM(out, want2, sizeof want2 - 1);
    CHECK_EQ_INT(wsk_handshake_server_accept(out, sizeof out, &last_info, ""), n - 21);
    args.extra = "Server: wsk\r\n";
    check_caps(write_accept, &args);

    /* Extra headers must be whole lines. */
    static const char *const bad_extra[] = {
        "Server: wsk",  "Server wsk\r\n", "Server: a\r\nb\r\n", "A: 1\nB: 2\r\n", ": x\r\n",
        "A: 1\r\n\r\n", "A: b\rc\r\n",    "A: b\x01\r\n",       "A b: c\r\n",     "\r\n",
    };
    for (size_t i = 0; i < sizeof bad_extra / sizeof bad_extra[0]; i++)
        CHECK_EQ_INT(wsk_handshake_server_accept(out, sizeof out, &last_info, bad_extra[i]),
                     -EINVAL);
    /* A hand-made info cannot inject lines either. */
    struct wsk_handshake_info forged = last_info;
    forged.subprotocol = (struct wsk_slice){"chat\r\nX: y", 10};
    CHECK_EQ_INT(wsk_handshake_server_accept(out, sizeof out, &forged, NULL), -EINVAL);
}

static void test_server_reject(void)
{
    static const struct {
        int status;
        const char *reason;
        const char *extra; /* the status's own header, or NULL */
    } cases[] = {
        {400, "Bad Request", NULL},
        {403, "Forbidden", NULL},
        {404, "Not Found", NULL},
        {405, "Method Not Allowed", "Allow"},
        {426, "Upgrade Required", "Sec-WebSocket-Version"},
        {431, "Request Header Fields Too Large", NULL},
        {500, "Internal Server Error", NULL},
        {503, "Service Unavailable", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[512];
        int n = wsk_handshake_server_reject(out, sizeof out, cases[i].status);
        CHECK(n > 0);
        if (n <= 0)
            continue;
        struct wsk_http_parser p;
        struct wsk_http_response resp;
        wsk_http_parser_init(&p, 0);
        int head = wsk_http_response_parse(&p, out, (size_t)n, &resp);
        CHECK(head > 0);
        if (head <= 0)
            continue;
        CHECK_EQ_INT(resp.status, cases[i].status);
        CHECK_EQ_INT(resp.minor_version, 1);
        CHECK_SLICE(resp.reason, cases[i].reason);
        const struct wsk_http_header *hs = resp.headers;
        size_t nh = resp.num_headers;
        const struct wsk_slice *v = wsk_http_header_get(hs, nh, "Content-Type");
        CHECK(v && slice_is(*v, "text/plain"));
        CHECK(wsk_http_header_has_token(hs, nh, "Connection", "close"));
        char body[128];
        snprintf(body, sizeof body, "%d %s\n", cases[i].status, cases[i].reason);
        CHECK_EQ_INT(n - head, strlen(body));
        CHECK_MEM(out + head, body, strlen(body));
        char length[24]; /* any size_t */
        snprintf(length, sizeof length, "%zu", strlen(body));
        v = wsk_http_header_get(hs, nh, "Content-Length");
        CHECK(v && slice_is(*v, length));
        v = wsk_http_header_get(hs, nh, "Sec-WebSocket-Version");
        CHECK(cases[i].status == 426 ? (v && slice_is(*v, "13")) : !v);
        v = wsk_http_header_get(hs, nh, "Allow");
        CHECK(cases[i].status == 405 ? (v && slice_is(*v, "GET")) : !v);
        CHECK_EQ_INT(nh, cases[i].extra ? 4 : 3);
        check_caps(write_reject, &cases[i].status);
    }

    char out[512];
    static const char want[] = "HTTP/1.1 400 Bad Request\r\n"
                               "Content-Type: text/plain\r\n"
                               "Content-Length: 16\r\n"
                               "Connection: close\r\n"
                               "\r\n"
                               "400 Bad Request\n";
    CHECK_EQ_INT(wsk_handshake_server_reject(out, sizeof out, 400), sizeof want - 1);
    CHECK_MEM(out, want, sizeof want - 1);
    static const char want426[] = "HTTP/1.1 426 Upgrade Required\r\n"
                                  "Content-Type: text/plain\r\n"
                                  "Content-Length: 21\r\n"
                                  "Connection: close\r\n"
                                  "Sec-WebSocket-Version: 13\r\n"
                                  "\r\n"
                                  "426 Upgrade Required\n";
    CHECK_EQ_INT(wsk_handshake_server_reject(out, sizeof out, 426), sizeof want426 - 1);
    CHECK_MEM(out, want426, sizeof want426 - 1);

    /* Unlisted errors still get a status line; non-errors are refused. */
    CHECK(wsk_handshake_server_reject(out, sizeof out, 418) > 0);
    CHECK(memcmp(out, "HTTP/1.1 418 Client Error\r\n", 27) == 0);
    CHECK(wsk_handshake_server_reject(out, sizeof out, 599) > 0);
    CHECK(memcmp(out, "HTTP/1.1 599 Server Error\r\n", 27) == 0);
    CHECK_EQ_INT(wsk_handshake_server_reject(out, sizeof out, 101), -EINVAL);
    CHECK_EQ_INT(wsk_handshake_server_reject(out, sizeof out, 200), -EINVAL);
    CHECK_EQ_INT(wsk_handshake_server_reject(out, sizeof out, 600), -EINVAL);
    CHECK_EQ_INT(wsk_handshake_server_reject(out, sizeof out, -1), -EINVAL);
}

static void test_client_request(void)
{
    static const char *const protos[] = {"chat", "superchat"};
    struct wsk_handshake_client_request r = {
        .host = "server.example.com",
        .target = "/chat",
        .key = RFC_KEY,
        .subprotocols = protos,
        .num_subprotocols = 2,
        .origin = "http://example.com",
    };
    char out[512];
    static const char want[] = "GET /chat HTTP/1.1\r\n"
                               "Host: server.example.com\r\n"
                               "Upgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Key: " RFC_KEY "\r\n"
                               "Sec-WebSocket-Version: 13\r\n"
                               "Sec-WebSocket-Protocol: chat, superchat\r\n"
                               "Origin: http://example.com\r\n"
                               "\r\n";
    CHECK_EQ_INT(wsk_handshake_client_request(out, sizeof out, &r), sizeof want - 1);
    CHECK_MEM(out, want, sizeof want - 1);
    check_caps(write_request, &r);

    struct wsk_handshake_client_request min = {.host = "h:1", .key = RFC_KEY};
    static const char want_min[] = "GET / HTTP/1.1\r\n"
                                   "Host: h:1\r\n"
                                   "Upgrade: websocket\r\n"
                                   "Connection: Upgrade\r\n"
                                   "Sec-WebSocket-Key: " RFC_KEY "\r\n"
                                   "Sec-WebSocket-Version: 13\r\n"
                                   "\r\n";
    CHECK_EQ_INT(wsk_handshake_client_request(out, sizeof out, &min), sizeof want_min - 1);
    CHECK_MEM(out, want_min, sizeof want_min - 1);
    min.target = "";
    CHECK_EQ_INT(wsk_handshake_client_request(out, sizeof out, &min), sizeof want_min - 1);
    min.extra_headers = "Authorization: Bearer x\r\nUser-Agent: wsk\r\n";
    int n = wsk_handshake_client_request(out, sizeof out, &min);
    CHECK_EQ_INT(n, sizeof want_min - 1 + 42);
    CHECK_MEM(out + n - 44, "Authorization: Bearer x\r\nUser-Agent: wsk\r\n\r\n", 44);
    check_caps(write_request, &min);
}

static void test_client_request_invalid(void)
{
    char out[512];
    static const char *const bad_protos[][1] = {{"ch\rat"}, {"ch\nat"}, {"a b"},
                                                {"a,b"},    {""},       {"a\"b"}};
    static const char *const good_protos[] = {"chat"};
    const struct wsk_handshake_client_request base = {
        .host = "h",
        .target = "/",
        .key = RFC_KEY,
        .subprotocols = good_protos,
        .num_subprotocols = 1,
        .origin = "http://o",
    };
    struct wsk_handshake_client_request r = base;
    CHECK(wsk_handshake_client_request(out, sizeof out, &r) > 0);

    r = base, r.host = "h\r\nX: y";
    CHECK_EQ_INT(wsk_handshake_client_request(out, sizeof out, &r), -EINVAL);
    r = base, r.host = "h\n";
    CHECK_EQ_INT(wsk_handshake_client_request(out, sizeof out, &r), -EINVAL);
    r = base, r.host = NULL;
    CHECK_EQ_INT(wsk_handshake_client_request(out, sizeof out, &r), -EINVAL);
    r = base, r.target = "/a\r\n";
    CHECK_EQ_INT(wsk_handshake_client_request(out, sizeof out, &r), -EINVAL);
    r = base, r.target = "/a b";
    CHECK_EQ_INT(wsk_handshake_client_request(out, sizeof out, &r), -EINVAL);
    r = base, r.key = RFC_KEY "\r";
    CHECK_EQ_INT(wsk_handshake_client_request(out, sizeof out, &r), -EINVAL);
    r = base, r.key = NULL;
    CHECK_EQ_INT(wsk_handshake_client_request(out, sizeof out, &r), -EINVAL);
    r = base, r.origin = "http://o\r\nEvil: 1";
    CHECK_EQ_INT(wsk_handshake_client_request(out, sizeof out, &r), -EINVAL);
    for (size_t i = 0; i < sizeof bad_protos / sizeof bad_protos[0]; i++) {
        r = base, r.subprotocols = bad_protos[i];
        CHECK_EQ_INT(wsk_handshake_client_request(out, sizeof out, &r), -EINVAL);
    }
    static const char *const bad_extra[] = {"X: 1",          "X 1\r\n", "X: 1\n",
                                            "X: 1\r\nY\r\n", "\r\n",    "X: \r\r\n"};
    for (size_t i = 0; i < sizeof bad_extra / sizeof bad_extra[0]; i++) {
        r = base, r.extra_headers = bad_extra[i];
        CHECK_EQ_INT(wsk_handshake_client_request(out, sizeof out, &r), -EINVAL);
    }
    /* Validation comes before the size check. */
    r = base, r.host = "h\r\n";
    CHECK_EQ_INT(wsk_handshake_client_request(out, 0, &r), -EINVAL);
}

/* Parses a response head that must be complete. */
static int parse_response(const char *s, size_t len, struct wsk_http_response *resp)
{
    struct wsk_http_parser p;
    wsk_http_parser_init(&p, 0);
    return wsk_http_response_parse(&p, s, len, resp);
}

/* client_request -> parse -> server_check -> server_accept -> parse ->
 * client_verify, for a client offering offered[] to a server preferring
 * prefs[]. Returns the status of the check and sets chosen. */
static int round_trip(const uint8_t random16[16], const char *const *offered, size_t num_offered,
                      const char *const *prefs, size_t num_prefs, char *chosen, size_t chosen_cap)
{
    char key[25];
    wsk_handshake_client_key(random16, key);
    struct wsk_handshake_client_request r = {
        .host = "example.com:8080",
        .target = "/ws?token=abc",
        .key = key,
        .subprotocols = offered,
        .num_subprotocols = num_offered,
        .origin = "https://example.com",
        .extra_headers = "User-Agent: wsk-test\r\n",
    };
    char request[1024];
    int n = wsk_handshake_client_request(request, sizeof request, &r);
    CHECK(n > 0);
    if (n <= 0)
        return -1;
    struct wsk_http_parser p;
    struct wsk_http_request req;
    wsk_http_parser_init(&p, 0);
    CHECK_EQ_INT(wsk_http_request_parse(&p, request, (size_t)n, &req), n);

    static const char *const origins[] = {"https://example.com"};
    struct wsk_handshake_server_config cfg = {
        .subprotocols = prefs,
        .num_subprotocols = num_prefs,
        .origins = origins,
        .num_origins = 1,
    };
    struct wsk_handshake_info info;
    int status = wsk_handshake_server_check(&req, &cfg, &info);
    if (status != 101)
        return status;
    CHECK_SLICE(info.path, "/ws");
    CHECK_SLICE(info.query, "token=abc");
    CHECK_SLICE(info.host, "example.com:8080");
    CHECK_SLICE(info.origin, "https://example.com");
    CHECK_SLICE(info.key, key);

    char response[1024];
    n = wsk_handshake_server_accept(response, sizeof response, &info, "Server: wsk\r\n");
    CHECK(n > 0);
    if (n <= 0)
        return -1;
    struct wsk_http_response resp;
    CHECK_EQ_INT(parse_response(response, (size_t)n, &resp), n);
    struct wsk_slice got;
    CHECK_EQ_INT(wsk_handshake_client_verify(&resp, key, offered, num_offered, &got), 0);
    CHECK(slice_is(got, "") || (got.ptr >= response && got.ptr + got.len <= response + n));
    snprintf(chosen, chosen_cap, "%.*s", (int)got.len, got.ptr);
    return status;
}

static void test_round_trips(void)
{
    static const char *const offered[] = {"chat", "superchat", "v2.mqtt"};
    static const char *const prefs[] = {"v2.mqtt", "superchat"};
    static const char *const other[] = {"graphql-ws"};
    char chosen[64];
    uint64_t seed = 42;
    for (int i = 0; i < 200; i++) {
        uint8_t random16[16];
        for (int b = 0; b < 16; b++)
            random16[b] = (uint8_t)wsk_test_rand(&seed);
        CHECK_EQ_INT(round_trip(random16, offered, 3, prefs, 2, chosen, sizeof chosen), 101);
        CHECK_STR(chosen, "v2.mqtt");
        CHECK_EQ_INT(round_trip(random16, offered, 2, prefs, 2, chosen, sizeof chosen), 101);
        CHECK_STR(chosen, "superchat");
        CHECK_EQ_INT(round_trip(random16, offered, 3, other, 1, chosen, sizeof chosen), 101);
        CHECK_STR(chosen, "");
        CHECK_EQ_INT(round_trip(random16, NULL, 0, prefs, 2, chosen, sizeof chosen), 101);
        CHECK_STR(chosen, "");
    }
}

#define RESP_OK  "HTTP/1.1 101 Switching Protocols\r\n"
#define R_UPG    "Upgrade: websocket\r\n"
#define R_CONN   "Connection: Upgrade\r\n"
#define R_ACCEPT "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n"
#define R_PROTO  "Sec-WebSocket-Protocol: chat\r\n"

static int verify(const char *response, const char *const *offered, size_t num_offered,
                  struct wsk_slice *chosen, struct wsk_http_response *resp)
{
    int head = parse_response(response, strlen(response), resp);
    if (head != (int)strlen(response)) {
        fprintf(stderr, "response did not parse: %d\n", head);
        return -1;
    }
    return wsk_handshake_client_verify(resp, RFC_KEY, offered, num_offered, chosen);
}

static void test_client_verify(void)
{
    static const char *const offered[] = {"chat", "superchat"};
    struct wsk_http_response resp;
    struct wsk_slice chosen;
    CHECK_EQ_INT(verify(RESP_OK R_UPG R_CONN R_ACCEPT END, offered, 2, &chosen, &resp), 0);
    CHECK_SLICE(chosen, "");
    CHECK(chosen.ptr != NULL);
    CHECK_EQ_INT(verify(RESP_OK R_UPG R_CONN R_ACCEPT R_PROTO END, offered, 2, &chosen, &resp), 0);
    CHECK_SLICE(chosen, "chat");
    CHECK_EQ_INT(verify(RESP_OK "upgrade: WebSocket\r\nconnection: UPGRADE\r\n"
                                "sec-websocket-accept:  " RFC_ACCEPT " \r\n"
                                "Sec-WebSocket-Extensions: permessage-deflate\r\n"
                                "Sec-WebSocket-Protocol: superchat\r\n" END,
                        offered, 2, &chosen, &resp),
                 0);
    CHECK_SLICE(chosen, "superchat");
    CHECK_EQ_INT(verify("HTTP/1.1 101 \r\nConnection: keep-alive, Upgrade\r\n" R_UPG R_ACCEPT END,
                        NULL, 0, NULL, &resp),
                 0);
}

static void test_client_verify_failures(void)
{
    static const char *const offered[] = {"chat", "superchat"};
    struct wsk_http_response resp;
    struct wsk_slice chosen;

    /* Not 101: the status is there to report. */
    CHECK_EQ_INT(
        verify("HTTP/1.1 200 OK\r\n" R_UPG R_CONN R_ACCEPT END, offered, 2, &chosen, &resp),
        WSK_EHSTATUS);
    CHECK_EQ_INT(resp.status, 200);
    CHECK_SLICE(chosen, "");
    CHECK_EQ_INT(
        verify("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n" END, offered, 2, &chosen, &resp),
        WSK_EHSTATUS);
    CHECK_EQ_INT(resp.status, 403);

    /* Upgrade and Connection. */
    CHECK_EQ_INT(verify(RESP_OK R_CONN R_ACCEPT END, offered, 2, &chosen, &resp), WSK_EHANDSHAKE);
    CHECK_EQ_INT(verify(RESP_OK "Upgrade: h2c\r\n" R_CONN R_ACCEPT END, offered, 2, &chosen, &resp),
                 WSK_EHANDSHAKE);
    CHECK_EQ_INT(verify(RESP_OK R_UPG R_ACCEPT END, offered, 2, &chosen, &resp), WSK_EHANDSHAKE);
    CHECK_EQ_INT(
        verify(RESP_OK R_UPG "Connection: close\r\n" R_ACCEPT END, offered, 2, &chosen, &resp),
        WSK_EHANDSHAKE);

    /* Accept. */
    CHECK_EQ_INT(verify(RESP_OK R_UPG R_CONN END, offered, 2, &chosen, &resp), WSK_EHACCEPT);
    CHECK_EQ_INT(verify(RESP_OK R_UPG R_CONN
                        "Sec-WebSocket-Accept: HSmrc0sMlYUkAGmm5OPpG2HaGWk=\r\n" END,
                        offered, 2, &chosen, &resp),
                 WSK_EHACCEPT);
    CHECK_EQ_INT(verify(RESP_OK R_UPG R_CONN
                        "Sec-WebSocket-Accept: S3PPLMBITXAQ9KYGZZHZRBK+XOO=\r\n" END,
                        offered, 2, &chosen, &resp),
                 WSK_EHACCEPT);
    CHECK_EQ_INT(verify(RESP_OK R_UPG R_CONN "Sec-WebSocket-Accept: " RFC_ACCEPT "=\r\n" END,
                        offered, 2, &chosen, &resp),
                 WSK_EHACCEPT);
    CHECK_EQ_INT(
        verify(RESP_OK R_UPG R_CONN "Sec-WebSocket-Accept:\r\n" END, offered, 2, &chosen, &resp),
        WSK_EHACCEPT);
    CHECK_EQ_INT(verify(RESP_OK R_UPG R_CONN R_ACCEPT R_ACCEPT END, offered, 2, &chosen, &resp),
                 WSK_EHACCEPT);

    /* Subprotocol. */
    CHECK_EQ_INT(verify(RESP_OK R_UPG R_CONN R_ACCEPT "Sec-WebSocket-Protocol: mqtt\r\n" END,
                        offered, 2, &chosen, &resp),
                 WSK_EHSUBPROTO);
    CHECK_SLICE(chosen, "");
    CHECK_EQ_INT(verify(RESP_OK R_UPG R_CONN R_ACCEPT R_PROTO END, NULL, 0, &chosen, &resp),
                 WSK_EHSUBPROTO);
    CHECK_EQ_INT(verify(RESP_OK R_UPG R_CONN R_ACCEPT "Sec-WebSocket-Protocol: Chat\r\n" END,
                        offered, 2, &chosen, &resp),
                 WSK_EHSUBPROTO);
    CHECK_EQ_INT(verify(RESP_OK R_UPG R_CONN R_ACCEPT
                        "Sec-WebSocket-Protocol: chat, superchat\r\n" END,
                        offered, 2, &chosen, &resp),
                 WSK_EHSUBPROTO);
    CHECK_EQ_INT(
        verify(RESP_OK R_UPG R_CONN R_ACCEPT R_PROTO R_PROTO END, offered, 2, &chosen, &resp),
        WSK_EHSUBPROTO);
    CHECK_EQ_INT(verify(RESP_OK R_UPG R_CONN R_ACCEPT "Sec-WebSocket-Protocol:\r\n" END, offered, 2,
                        &chosen, &resp),
                 WSK_EHSUBPROTO);
}

/* The core's own SHA-1 and base64: FIPS 180-4 / RFC 3174 vectors, RFC 4648
 * vectors, and agreement with OpenSSL over random inputs fed in random
 * pieces. */
static void sha1_hex(const void *data, size_t len, char hex[41])
{
    struct wsk__sha1 s;
    uint8_t md[20];
    wsk__sha1_init(&s);
    wsk__sha1_update(&s, data, len);
    wsk__sha1_final(&s, md);
    for (int i = 0; i < 20; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

static void test_sha1_vectors(void)
{
    char hex[41];
    sha1_hex("abc", 3, hex);
    CHECK_STR(hex, "a9993e364706816aba3e25717850c26c9cd0d89d");
    sha1_hex("", 0, hex);
    CHECK_STR(hex, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha1_hex(m448, strlen(m448), hex);
    CHECK_STR(hex, "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    const char *m896 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
                       "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
    sha1_hex(m896, strlen(m896), hex);
    CHECK_STR(hex, "a49b2446a02c645bf419f995b67091253a04a259");
    size_t mlen = 1000000;
    char *million = malloc(mlen);
    memset(million, 'a', mlen);
    sha1_hex(million, mlen, hex);
    CHECK_STR(hex, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
    free(million);

    static const struct {
        const char *in, *out;
    } b64[] = {{"", ""},
               {"f", "Zg=="},
               {"fo", "Zm8="},
               {"foo", "Zm9v"},
               {"foob", "Zm9vYg=="},
               {"fooba", "Zm9vYmE="},
               {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < sizeof b64 / sizeof *b64; i++) {
        char out[16];
        wsk__base64_encode(out, (const uint8_t *)b64[i].in, strlen(b64[i].in));
        CHECK_STR(out, b64[i].out);
    }
}

static void test_sha1_against_openssl(void)
{
    uint64_t seed = 4242;
    uint8_t buf[700];
    for (int iter = 0; iter < 3000; iter++) {
        size_t len = wsk_test_rand(&seed) % sizeof buf;
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)wsk_test_rand(&seed);
        struct wsk__sha1 s;
        wsk__sha1_init(&s);
        for (size_t off = 0; off < len;) {
            size_t piece = 1 + wsk_test_rand(&seed) % (len - off < 130 ? len - off : 130);
            wsk__sha1_update(&s, buf + off, piece);
            off += piece;
        }
        uint8_t ours[20], theirs[EVP_MAX_MD_SIZE];
        unsigned theirs_len = 0;
        wsk__sha1_final(&s, ours);
        CHECK(EVP_Digest(buf, len, theirs, &theirs_len, EVP_sha1(), NULL) == 1);
        CHECK_EQ_INT(theirs_len, 20);
        CHECK_MEM(ours, theirs, 20);

        size_t blen = len % 64;
        char ours64[100], theirs64[100];
        wsk__base64_encode(ours64, buf, blen);
        EVP_EncodeBlock((unsigned char *)theirs64, buf, (int)blen);
        CHECK_STR(ours64, theirs64);
    }
}

int main(void)
{
    WSK_RUN(test_accept_key);
    WSK_RUN(test_client_key);
    WSK_RUN(test_server_check_rfc_example);
    WSK_RUN(test_server_check_method);
    WSK_RUN(test_server_check_version_and_host);
    WSK_RUN(test_server_check_upgrade_connection);
    WSK_RUN(test_server_check_ws_version);
    WSK_RUN(test_server_check_key);
    WSK_RUN(test_server_check_origin);
    WSK_RUN(test_server_check_subprotocol);
    WSK_RUN(test_server_check_unparsable);
    WSK_RUN(test_is_upgrade);
    WSK_RUN(test_server_accept);
    WSK_RUN(test_server_reject);
    WSK_RUN(test_client_request);
    WSK_RUN(test_client_request_invalid);
    WSK_RUN(test_round_trips);
    WSK_RUN(test_client_verify);
    WSK_RUN(test_client_verify_failures);
    WSK_RUN(test_sha1_vectors);
    WSK_RUN(test_sha1_against_openssl);
    WSK_TEST_END();
}
