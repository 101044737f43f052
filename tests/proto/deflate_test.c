/* permessage-deflate (src/proto/deflate.c): negotiation from both ends with
 * the RFC 7692 examples and every malformed case, round trips at all sizes
 * and window sizes, random input splits, context takeover, the bomb limit,
 * corrupt input, interop with raw zlib, and the memory accounting. */
#include <errno.h>

#include <zlib.h>

#include "wsk/deflate.h"
#include "wsk_test.h"

/* ---- helpers ------------------------------------------------------------- */

/* A growing byte buffer used as a sink. */
struct buf {
    uint8_t *p;
    size_t len;
    size_t cap;
    size_t calls;
    size_t max_piece;
};

static int buf_sink(void *ctx, const uint8_t *data, size_t len)
{
    struct buf *b = ctx;
    if (len == 0 || len > WSK_DEFLATE_CHUNK)
        return -1000000; /* the sink contract */
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + len)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p)
            return -ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
    b->calls++;
    if (len > b->max_piece)
        b->max_piece = len;
    return 0;
}

static void buf_free(struct buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

static void buf_clear(struct buf *b)
{
    b->len = 0;
    b->calls = 0;
    b->max_piece = 0;
}

static struct wsk_slice z(const char *s)
{
    return (struct wsk_slice){s, strlen(s)};
}

static struct wsk_deflate_config enabled_config(void)
{
    struct wsk_deflate_config cfg;
    wsk_deflate_config_init(&cfg);
    cfg.enabled = true;
    return cfg;
}

/* Runs the server side on request header values, all named
 * Sec-WebSocket-Extensions except where a value starts with "!" (then the
 * header is "X-Other"). Returns the negotiate result; *resp holds the
 * response value. */
static int negotiate_lines(const char *const *values, size_t n,
                           const struct wsk_deflate_config *cfg, struct wsk_deflate_params *params,
                           char resp[WSK_DEFLATE_HEADER_MAX])
{
    struct wsk_http_header h[8];
    for (size_t i = 0; i < n; i++) {
        bool is_other = values[i][0] == '!';
        h[i].name = z(is_other ? "X-Other" : "Sec-WebSocket-Extensions");
        h[i].value = z(values[i] + is_other);
    }
    resp[0] = '\0';
    return wsk_deflate_negotiate(h, n, cfg, params, resp, WSK_DEFLATE_HEADER_MAX);
}

static int negotiate1(const char *value, const struct wsk_deflate_config *cfg,
                      struct wsk_deflate_params *params, char resp[WSK_DEFLATE_HEADER_MAX])
{
    return negotiate_lines(&value, 1, cfg, params, resp);
}

/* Negotiate with the default server config; returns the result and leaves
 * the response in last_resp. */
static char last_resp[WSK_DEFLATE_HEADER_MAX];
static struct wsk_deflate_params last_params;

static int neg(const char *value)
{
    struct wsk_deflate_config cfg = enabled_config();
    return negotiate1(value, &cfg, &last_params, last_resp);
}

static int accept_default(const char *value, struct wsk_deflate_params *params)
{
    struct wsk_deflate_config cfg = enabled_config();
    struct wsk_slice v = z(value);
    return wsk_deflate_accept(&v, &cfg, params);
}

static void fill_random(uint8_t *p, size_t n, uint64_t *seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(wsk_test_rand(seed) >> 56);
}

/* Text-like bytes from a small vocabulary: compresses about 3 to 1. */
static void fill_text(uint8_t *p, size_t n, uint64_t *seed)
{
    static const char *const words[] = {"alpha ",  "beta ",  "gamma ",   "delta ", "{\"id\":",
                                        "\"msg\"", "price ", "update\n", "order ", "book "};
    size_t i = 0;
    while (i < n) {
        const char *w = words[wsk_test_rand(seed) % 10];
        for (size_t k = 0; w[k] && i < n; k++)
            p[i++] = (uint8_t)w[k];
        if (i < n && wsk_test_rand(seed) % 4 == 0)
            p[i++] = (uint8_t)('0' + wsk_test_rand(seed) % 10);
    }
}

static struct wsk_deflate_params params_of(bool snct, bool cnct, uint8_t sbits, uint8_t cbits)
{
    struct wsk_deflate_params p = {snct, cnct, sbits, cbits, 0};
    return p;
}

/* A server and a client state for params. */
struct pair {
    struct wsk_deflate *server;
    struct wsk_deflate *client;
};

static bool pair_new(struct pair *p, const struct wsk_deflate_params *params)
{
    p->server = p->client = NULL;
    if (wsk_deflate_new(&p->server, params, WSK_ROLE_SERVER) != 0)
        return false;
    if (wsk_deflate_new(&p->client, params, WSK_ROLE_CLIENT) != 0)
        return false;
    return true;
}

static void pair_free(struct pair *p)
{
    wsk_deflate_free(p->server);
    wsk_deflate_free(p->client);
}

/* Compresses msg with from, decompresses with to (in pieces of at most
 * split bytes, or random pieces when split is 0), and checks the result.
 * Returns the compressed size. */
static size_t round_trip(struct wsk_deflate *from, struct wsk_deflate *to, const uint8_t *msg,
                         size_t len, size_t split, uint64_t *seed)
{
    struct buf c = {0}, d = {0};
    CHECK_EQ_INT(wsk_deflate_compress(from, msg, len, buf_sink, &c), 0);
    CHECK(c.len > 0);
    CHECK(c.len < 4 || memcmp(c.p + c.len - 4, "\x00\x00\xff\xff", 4) != 0);
    size_t pos = 0;
    int rv = 0;
    while (rv == 0 && pos < c.len) {
        size_t piece = split ? split : 1 + wsk_test_rand(seed) % (c.len / 4 + 2);
        if (piece > c.len - pos)
            piece = c.len - pos;
        rv = wsk_deflate_decompress(to, c.p + pos, piece, false, len, buf_sink, &d);
        pos += piece;
    }
    if (rv == 0)
        rv = wsk_deflate_decompress(to, NULL, 0, true, len, buf_sink, &d);
    CHECK_EQ_INT(rv, 0);
    CHECK_EQ_INT(d.len, len);
    if (d.len == len && len > 0)
        CHECK_MEM(d.p, msg, len);
    CHECK(d.max_piece <= WSK_DEFLATE_CHUNK);
    size_t n = c.len;
    buf_free(&c);
    buf_free(&d);
    return n;
}

/* Decompresses a whole message given as one piece. */
static int inflate_msg(struct wsk_deflate *d, const uint8_t *in, size_t len, uint64_t max,
                       struct buf *out)
{
    return wsk_deflate_decompress(d, in, len, true, max, buf_sink, out);
}

/* ---- negotiation ------------------------------------------------------- */

/* RFC 7692 section 5 and 7.1.3 style exchanges. */
static void test_negotiate_rfc_examples(void)
{
    CHECK_EQ_INT(neg("permessage-deflate"), 18);
    CHECK_STR(last_resp, "permessage-deflate");
    CHECK(!last_params.server_no_context_takeover && !last_params.client_no_context_takeover);
    CHECK_EQ_INT(last_params.server_max_window_bits, 15);
    CHECK_EQ_INT(last_params.client_max_window_bits, 15);

    /* Section 5: two offers, the first with a parameter the server may not
     * support; ours supports both, so it takes the first. */
    CHECK(neg("permessage-deflate; client_max_window_bits; server_max_window_bits=10, "
              "permessage-deflate; client_max_window_bits") > 0);
    CHECK_STR(last_resp, "permessage-deflate; server_max_window_bits=10");
    CHECK_EQ_INT(last_params.server_max_window_bits, 10);
    CHECK_EQ_INT(last_params.client_max_window_bits, 15);

    /* A server that limits the client's window answers a bare
     * client_max_window_bits with a value. */
    struct wsk_deflate_config cfg = enabled_config();
    cfg.client_max_window_bits = 10;
    struct wsk_deflate_params p;
    char resp[WSK_DEFLATE_HEADER_MAX];
    CHECK(negotiate1("permessage-deflate; client_max_window_bits", &cfg, &p, resp) > 0);
    CHECK_STR(resp, "permessage-deflate; client_max_window_bits=10");
    CHECK_EQ_INT(p.client_max_window_bits, 10);

    CHECK(neg("permessage-deflate; server_no_context_takeover") > 0);
    CHECK_STR(last_resp, "permessage-deflate; server_no_context_takeover");
    CHECK(last_params.server_no_context_takeover);

    /* A browser's offer. */
    CHECK(neg("permessage-deflate; client_max_window_bits") > 0);
    CHECK_STR(last_resp, "permessage-deflate");

    /* The longest response fits the documented size. */
    cfg = enabled_config();
    cfg.server_no_context_takeover = cfg.client_no_context_takeover = true;
    cfg.client_max_window_bits = 12;
    int n = negotiate1("permessage-deflate; server_max_window_bits=15; client_max_window_bits=15",
                       &cfg, &p, resp);
    CHECK_STR(resp, "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                    "server_max_window_bits=15; client_max_window_bits=12");
    CHECK(n > 0 && n < WSK_DEFLATE_HEADER_MAX);
}

static void test_negotiate_several_offers(void)
{
    /* Unknown extensions and declined offers are skipped. */
    CHECK(neg("x-webkit-deflate-frame, permessage-deflate; foo=1, "
              "permessage-deflate; server_no_context_takeover") > 0);
    CHECK_STR(last_resp, "permessage-deflate; server_no_context_takeover");

    /* Across header lines, with an unrelated header in between. */
    const char *lines[] = {"foo; bar=baz", "!permessage-deflate",
                           "permessage-deflate; server_max_window_bits=7",
                           "permessage-deflate; client_no_context_takeover",
                           "permessage-deflate; server_no_context_takeover"};
    struct wsk_deflate_config cfg = enabled_config();
    struct wsk_deflate_params p;
    char resp[WSK_DEFLATE_HEADER_MAX];
    CHECK(negotiate_lines(lines, 5, &cfg, &p, resp) > 0);
    CHECK_STR(resp, "permessage-deflate; client_no_context_takeover");
    CHECK(p.client_no_context_takeover && !p.server_no_context_takeover);

    /* Names without case, empty list elements, whitespace everywhere. */
    CHECK(neg(" , ,PerMessage-Deflate \t;\tServer_Max_Window_Bits = 12 ;CLIENT_MAX_WINDOW_BITS ,") >
          0);
    CHECK_STR(last_resp, "permessage-deflate; server_max_window_bits=12");

    /* No header at all, or only other extensions. */
    CHECK_EQ_INT(negotiate_lines(NULL, 0, &cfg, &p, resp), 0);
    CHECK_EQ_INT(neg("foo, bar; baz"), 0);
    CHECK_EQ_INT(neg(""), 0);
}

static void test_negotiate_quoted(void)
{
    CHECK(neg("permessage-deflate; client_max_window_bits=\"10\"") > 0);
    CHECK_STR(last_resp, "permessage-deflate; client_max_window_bits=10");
    CHECK_EQ_INT(last_params.client_max_window_bits, 10);
    CHECK(neg("permessage-deflate; server_max_window_bits=\"1\\2\"") > 0);
    CHECK_STR(last_resp, "permessage-deflate; server_max_window_bits=12");
    /* Quoted values of other extensions must unescape to tokens too. */
    CHECK(neg("foo; bar=\"b\\az\", permessage-deflate") > 0);
    CHECK_EQ_INT(neg("foo; bar=\"a,b\", permessage-deflate"), WSK_EHEXT);
    CHECK_EQ_INT(neg("foo; bar=\"a b\", permessage-deflate"), WSK_EHEXT);
    CHECK_EQ_INT(neg("foo; bar=\"\", permessage-deflate"), WSK_EHEXT);
    CHECK_EQ_INT(neg("permessage-deflate; client_max_window_bits=\"10"), WSK_EHEXT);
    CHECK_EQ_INT(neg("permessage-deflate; client_max_window_bits=\"10\\"), WSK_EHEXT);
}

/* Offers the server declines (RFC 7692 section 5.1): alone they give 0,
 * followed by a good offer that one is taken. */
static void test_negotiate_declined(void)
{
    static const char *const bad[] = {
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        "permessage-deflate; server_max_window_bits=10; server_max_window_bits=11",
        "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
        "permessage-deflate; x-unknown",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; client_max_window_bits=16",
        "permessage-deflate; client_max_window_bits=\"16\"",
        "permessage-deflate; server_max_window_bits=08",
        "permessage-deflate; server_max_window_bits=+9",
        "permessage-deflate; server_max_window_bits=9a",
        "permessage-deflate; server_max_window_bits=0",
        "permessage-deflate; server_max_window_bits=99999999999999999999",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; client_no_context_takeover=\"x\"",
        "permessage-deflate; server_max_window_bits",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rv = neg(bad[i]);
        if (rv != 0)
            fprintf(stderr, "  offer: %s -> %d\n", bad[i], rv);
        CHECK_EQ_INT(rv, 0);
        char two[256];
        snprintf(two, sizeof two, "%s, permessage-deflate; client_max_window_bits=9", bad[i]);
        CHECK(neg(two) > 0);
        CHECK_STR(last_resp, "permessage-deflate; client_max_window_bits=9");
    }
}

/* Syntax errors fail the whole header, wherever they are. */
static void test_negotiate_malformed(void)
{
    static const char *const bad[] = {
        "permessage-deflate;",
        ";",
        "permessage-deflate; ;server_no_context_takeover",
        "permessage-deflate; server_max_window_bits=",
        "permessage-deflate; server_max_window_bits==10",
        "permessage-deflate x",
        "permessage deflate",
        "permessage-deflate; a=b=c",
        "permessage-deflate; a=b c",
        "permessage-deflate, \"quoted\"",
        "permessage-deflate; a\x01",
        "perm\xc3\xa9ssage-deflate",
        "permessage-deflate; =10",
        "permessage-deflate, foo; bar=\"unterminated",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rv = neg(bad[i]);
        if (rv != WSK_EHEXT)
            fprintf(stderr, "  header: %s -> %d\n", bad[i], rv);
        CHECK_EQ_INT(rv, WSK_EHEXT);
    }
    const char *lines[] = {"permessage-deflate", "foo;"};
    struct wsk_deflate_config cfg = enabled_config();
    struct wsk_deflate_params p;
    char resp[WSK_DEFLATE_HEADER_MAX];
    CHECK_EQ_INT(negotiate_lines(lines, 2, &cfg, &p, resp), WSK_EHEXT);
    /* Disabled: not even parsed. */
    cfg.enabled = false;
    CHECK_EQ_INT(negotiate_lines(lines, 2, &cfg, &p, resp), 0);
    CHECK_EQ_INT(negotiate_lines(lines, 2, NULL, &p, resp), 0);
}

static void test_negotiate_config(void)
{
    struct wsk_deflate_config cfg = enabled_config();
    struct wsk_deflate_params p;
    char resp[WSK_DEFLATE_HEADER_MAX];

    cfg.server_no_context_takeover = true;
    cfg.client_no_context_takeover = true;
    cfg.server_max_window_bits = 12;
    cfg.mem_level = 3;
    CHECK(negotiate1("permessage-deflate", &cfg, &p, resp) > 0);
    CHECK_STR(resp, "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                    "server_max_window_bits=12");
    CHECK(p.server_no_context_takeover && p.client_no_context_takeover);
    CHECK_EQ_INT(p.server_max_window_bits, 12);
    CHECK_EQ_INT(p.mem_level, 3);
    /* The smaller of offered and configured. */
    CHECK(negotiate1("permessage-deflate; server_max_window_bits=9", &cfg, &p, resp) > 0);
    CHECK_EQ_INT(p.server_max_window_bits, 9);
    /* Window 8 is granted as asked for. */
    CHECK(negotiate1("permessage-deflate; server_max_window_bits=8; client_max_window_bits=8", &cfg,
                     &p, resp) > 0);
    CHECK_EQ_INT(p.server_max_window_bits, 8);
    CHECK_EQ_INT(p.client_max_window_bits, 8);
    /* An offered server_max_window_bits comes back even at 15. */
    cfg = enabled_config();
    CHECK(negotiate1("permessage-deflate; server_max_window_bits=15", &cfg, &p, resp) > 0);
    CHECK_STR(resp, "permessage-deflate; server_max_window_bits=15");

    /* A bound on the client's window needs client_max_window_bits. */
    cfg.client_max_window_bits = 12;
    CHECK_EQ_INT(negotiate1("permessage-deflate", &cfg, &p, resp), 0);
    CHECK(negotiate1("permessage-deflate; client_max_window_bits=10", &cfg, &p, resp) > 0);
    CHECK_STR(resp, "permessage-deflate; client_max_window_bits=10");
    CHECK(negotiate1("permessage-deflate; client_max_window_bits=14", &cfg, &p, resp) > 0);
    CHECK_STR(resp, "permessage-deflate; client_max_window_bits=12");

    /* Buffer too small: no write past cap, no params. */
    cfg = enabled_config();
    struct wsk_http_header h = {z("Sec-WebSocket-Extensions"), z("permessage-deflate")};
    char small[18];
    memset(&p, 0x5a, sizeof p);
    CHECK_EQ_INT(wsk_deflate_negotiate(&h, 1, &cfg, &p, small, sizeof small), WSK_ENOSPC);
    CHECK_EQ_INT(p.server_max_window_bits, 0x5a);
    char exact[19];
    CHECK_EQ_INT(wsk_deflate_negotiate(&h, 1, &cfg, &p, exact, sizeof exact), 18);
    CHECK_STR(exact, "permessage-deflate");

    /* Invalid configs. */
    cfg.server_max_window_bits = 7;
    CHECK_EQ_INT(wsk_deflate_negotiate(&h, 1, &cfg, &p, resp, sizeof resp), -EINVAL);
    cfg = enabled_config();
    cfg.client_max_window_bits = 16;
    CHECK_EQ_INT(wsk_deflate_negotiate(&h, 1, &cfg, &p, resp, sizeof resp), -EINVAL);
    cfg = enabled_config();
    cfg.mem_level = 10;
    CHECK_EQ_INT(wsk_deflate_negotiate(&h, 1, &cfg, &p, resp, sizeof resp), -EINVAL);

    /* config_init spells out the defaults. */
    wsk_deflate_config_init(&cfg);
    CHECK(!cfg.enabled);
    CHECK_EQ_INT(cfg.server_max_window_bits, 15);
    CHECK_EQ_INT(cfg.client_max_window_bits, 15);
    CHECK_EQ_INT(cfg.mem_level, WSK_DEFLATE_DEFAULT_MEM_LEVEL);
    CHECK_EQ_INT(cfg.min_compress_size, 64);
}

static void test_offer(void)
{
    char out[WSK_DEFLATE_HEADER_MAX];
    struct wsk_deflate_config cfg = enabled_config();
    CHECK_EQ_INT(wsk_deflate_offer(out, sizeof out, &cfg), 42);
    CHECK_STR(out, "permessage-deflate; client_max_window_bits");

    cfg.server_no_context_takeover = cfg.client_no_context_takeover = true;
    cfg.server_max_window_bits = 10;
    cfg.client_max_window_bits = 9;
    int n = wsk_deflate_offer(out, sizeof out, &cfg);
    CHECK_STR(out, "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                   "server_max_window_bits=10; client_max_window_bits=9");
    CHECK_EQ_INT(n, (int)strlen(out));
    CHECK_EQ_INT(wsk_deflate_offer(out, (size_t)n, &cfg), WSK_ENOSPC);
    CHECK_EQ_INT(wsk_deflate_offer(out, (size_t)n + 1, &cfg), n);

    cfg.enabled = false;
    CHECK_EQ_INT(wsk_deflate_offer(out, sizeof out, &cfg), 0);
    CHECK_STR(out, "");
    CHECK_EQ_INT(wsk_deflate_offer(NULL, 0, NULL), 0);
    cfg = enabled_config();
    cfg.server_max_window_bits = 200;
    CHECK_EQ_INT(wsk_deflate_offer(out, sizeof out, &cfg), -EINVAL);
}

static void test_accept(void)
{
    struct wsk_deflate_params p;
    CHECK_EQ_INT(accept_default("permessage-deflate", &p), 1);
    CHECK(!p.server_no_context_takeover && !p.client_no_context_takeover);
    CHECK_EQ_INT(p.server_max_window_bits, 15);
    CHECK_EQ_INT(p.client_max_window_bits, 15);

    CHECK_EQ_INT(accept_default("permessage-deflate; server_no_context_takeover; "
                                "client_no_context_takeover; server_max_window_bits=10; "
                                "client_max_window_bits=\"9\"",
                                &p),
                 1);
    CHECK(p.server_no_context_takeover && p.client_no_context_takeover);
    CHECK_EQ_INT(p.server_max_window_bits, 10);
    CHECK_EQ_INT(p.client_max_window_bits, 9);

    /* Declined. */
    struct wsk_deflate_config cfg = enabled_config();
    CHECK_EQ_INT(wsk_deflate_accept(NULL, &cfg, &p), 0);
    CHECK_EQ_INT(accept_default("", &p), 0);
    CHECK_EQ_INT(accept_default(" , ", &p), 0);

    static const char *const bad[] = {
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_max_window_bits=10; client_max_window_bits=10",
        "permessage-deflate; x-unknown",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; client_max_window_bits=16",
        "permessage-deflate; client_max_window_bits",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; client_no_context_takeover=\"1\"",
        "permessage-deflate, permessage-deflate",
        "permessage-deflate, foo",
        "foo",
        "x-webkit-deflate-frame",
        "permessage-deflate;",
        "permessage-deflate; a=\"b",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&p, 0x5a, sizeof p);
        int rv = accept_default(bad[i], &p);
        if (rv != WSK_EHEXT)
            fprintf(stderr, "  response: %s -> %d\n", bad[i], rv);
        CHECK_EQ_INT(rv, WSK_EHEXT);
        CHECK_EQ_INT(p.server_max_window_bits, 0x5a);
    }

    /* Checked against what was offered. */
    struct wsk_slice v = z("permessage-deflate");
    cfg.enabled = false;
    CHECK_EQ_INT(wsk_deflate_accept(&v, &cfg, &p), WSK_EHEXT);
    CHECK_EQ_INT(wsk_deflate_accept(&v, NULL, &p), WSK_EHEXT);

    cfg = enabled_config();
    cfg.server_max_window_bits = 10;
    CHECK_EQ_INT(wsk_deflate_accept(&v, &cfg, &p), WSK_EHEXT); /* limit not granted */
    v = z("permessage-deflate; server_max_window_bits=11");
    CHECK_EQ_INT(wsk_deflate_accept(&v, &cfg, &p), WSK_EHEXT); /* larger than asked */
    v = z("permessage-deflate; server_max_window_bits=10");
    CHECK_EQ_INT(wsk_deflate_accept(&v, &cfg, &p), 1);
    v = z("permessage-deflate; server_max_window_bits=9");
    CHECK_EQ_INT(wsk_deflate_accept(&v, &cfg, &p), 1);
    CHECK_EQ_INT(p.server_max_window_bits, 9);

    cfg = enabled_config();
    cfg.server_no_context_takeover = true;
    v = z("permessage-deflate");
    CHECK_EQ_INT(wsk_deflate_accept(&v, &cfg, &p), WSK_EHEXT); /* not granted */
    v = z("permessage-deflate; server_no_context_takeover");
    CHECK_EQ_INT(wsk_deflate_accept(&v, &cfg, &p), 1);

    cfg = enabled_config();
    cfg.client_max_window_bits = 10;
    v = z("permessage-deflate; client_max_window_bits=11");
    CHECK_EQ_INT(wsk_deflate_accept(&v, &cfg, &p), WSK_EHEXT); /* above our limit */
    v = z("permessage-deflate");
    CHECK_EQ_INT(wsk_deflate_accept(&v, &cfg, &p), 1);
    CHECK_EQ_INT(p.client_max_window_bits, 10); /* our own limit holds */
    v = z("permessage-deflate; client_max_window_bits=9");
    CHECK_EQ_INT(wsk_deflate_accept(&v, &cfg, &p), 1);
    CHECK_EQ_INT(p.client_max_window_bits, 9);

    /* Our client_no_context_takeover holds even when not echoed. */
    cfg = enabled_config();
    cfg.client_no_context_takeover = true;
    cfg.mem_level = 7;
    v = z("permessage-deflate");
    CHECK_EQ_INT(wsk_deflate_accept(&v, &cfg, &p), 1);
    CHECK(p.client_no_context_takeover);
    CHECK_EQ_INT(p.mem_level, 7);

    cfg.mem_level = 12;
    CHECK_EQ_INT(wsk_deflate_accept(&v, &cfg, &p), -EINVAL);
}

/* Every combination of client and server settings: what the client offers,
 * the server answers and the client accepts gives both the same params. */
static void test_offer_negotiate_accept(void)
{
    static const uint8_t bits[] = {0, 8, 9, 12, 15};
    size_t runs = 0, used = 0;
    for (unsigned flags = 0; flags < 16; flags++) {
        for (size_t a = 0; a < 5; a++) {
            for (size_t b = 0; b < 5; b++) {
                for (size_t c = 0; c < 5; c++) {
                    struct wsk_deflate_config client = enabled_config(), server = enabled_config();
                    client.server_no_context_takeover = flags & 1;
                    client.client_no_context_takeover = flags & 2;
                    server.server_no_context_takeover = flags & 4;
                    server.client_no_context_takeover = flags & 8;
                    client.server_max_window_bits = bits[a];
                    client.client_max_window_bits = bits[b];
                    server.server_max_window_bits = bits[c];
                    server.client_max_window_bits = bits[(a + b + c) % 5];
                    char offer[WSK_DEFLATE_HEADER_MAX], resp[WSK_DEFLATE_HEADER_MAX];
                    CHECK(wsk_deflate_offer(offer, sizeof offer, &client) > 0);
                    struct wsk_deflate_params sp, cp;
                    int n = negotiate1(offer, &server, &sp, resp);
                    CHECK(n > 0); /* we always offer client_max_window_bits */
                    struct wsk_slice v = {resp, (size_t)n};
                    CHECK_EQ_INT(wsk_deflate_accept(&v, &client, &cp), 1);
                    CHECK_EQ_INT(sp.server_no_context_takeover, cp.server_no_context_takeover);
                    CHECK_EQ_INT(sp.client_no_context_takeover, cp.client_no_context_takeover);
                    CHECK_EQ_INT(sp.server_max_window_bits, cp.server_max_window_bits);
                    CHECK(cp.client_max_window_bits <= sp.client_max_window_bits);
                    runs++;
                    used += sp.server_max_window_bits < 15;
                }
            }
        }
    }
    CHECK_EQ_INT(runs, 2000);
    CHECK(used > 0);
}

/* ---- the transform --------------------------------------------------------- */

static void test_round_trip_sizes(void)
{
    static const size_t sizes[] = {0, 1, 100, 64 * 1024, 1024 * 1024};
    uint64_t seed = 1;
    size_t max = 1024 * 1024;
    uint8_t *msg = malloc(max);
    for (int takeover = 0; takeover < 2; takeover++) {
        struct wsk_deflate_params params = params_of(!takeover, !takeover, 15, 15);
        struct pair p;
        CHECK(pair_new(&p, &params));
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            for (int kind = 0; kind < 2; kind++) {
                if (kind)
                    fill_text(msg, sizes[s], &seed);
                else
                    fill_random(msg, sizes[s], &seed);
                size_t n1 = round_trip(p.server, p.client, msg, sizes[s], sizes[s] + 1, &seed);
                size_t n2 = round_trip(p.client, p.server, msg, sizes[s], sizes[s] + 1, &seed);
                if (sizes[s] == 0)
                    CHECK(n1 == 1 && n2 == 1);
                if (kind == 1 && sizes[s] >= 64 * 1024)
                    CHECK(n1 < sizes[s] / 2);
                if (kind == 0 && sizes[s] >= 64 * 1024)
                    CHECK(n1 < sizes[s] + sizes[s] / 100); /* stored blocks, little overhead */
            }
        }
        CHECK_EQ_INT(wsk_deflate_memory(p.server) == 0, !takeover);
        pair_free(&p);
    }
    free(msg);
}

/* Data with repeats at every distance up to 32 KiB. */
static void fill_far_repeats(uint8_t *msg, size_t len, uint64_t *seed)
{
    fill_random(msg, len, seed);
    for (size_t i = 40000; i + 64 < len; i += 5000) {
        size_t dist = 200 + wsk_test_rand(seed) % 32000;
        memcpy(msg + i, msg + i - dist, 64);
    }
}

static void test_window_bits(void)
{
    uint64_t seed = 2;
    size_t len = 200 * 1024;
    uint8_t *msg = malloc(len);
    fill_far_repeats(msg, len, &seed);
    for (uint8_t s = 8; s <= 15; s++) {
        for (uint8_t c = 8; c <= 15; c += (uint8_t)(s == 15 ? 1 : 7)) {
            for (int takeover = 0; takeover < 2; takeover++) {
                struct wsk_deflate_params params = params_of(!takeover, !takeover, s, c);
                struct pair p;
                CHECK(pair_new(&p, &params));
                for (int i = 0; i < 2; i++) {
                    round_trip(p.server, p.client, msg, len, 0, &seed);
                    round_trip(p.client, p.server, msg, len, 0, &seed);
                }
                pair_free(&p);
            }
        }
    }

    /* The window is really applied, in the right direction: what a 15-bit
     * server compressor makes of far repeats does not inflate in a client
     * that agreed to a 9-bit server window. */
    struct wsk_deflate_params wide = params_of(false, false, 15, 15);
    struct wsk_deflate_params narrow = params_of(false, false, 9, 15);
    struct wsk_deflate *server, *client;
    CHECK_EQ_INT(wsk_deflate_new(&server, &wide, WSK_ROLE_SERVER), 0);
    CHECK_EQ_INT(wsk_deflate_new(&client, &narrow, WSK_ROLE_CLIENT), 0);
    struct buf c = {0}, d = {0};
    CHECK_EQ_INT(wsk_deflate_compress(server, msg, len, buf_sink, &c), 0);
    CHECK_EQ_INT(inflate_msg(client, c.p, c.len, len, &d), WSK_EDEFLATE);
    wsk_deflate_free(server);
    wsk_deflate_free(client);
    /* And a narrow compressor never reaches that far. */
    CHECK_EQ_INT(wsk_deflate_new(&server, &narrow, WSK_ROLE_SERVER), 0);
    CHECK_EQ_INT(wsk_deflate_new(&client, &narrow, WSK_ROLE_CLIENT), 0);
    buf_clear(&c);
    buf_clear(&d);
    CHECK_EQ_INT(wsk_deflate_compress(server, msg, len, buf_sink, &c), 0);
    CHECK_EQ_INT(inflate_msg(client, c.p, c.len, len, &d), 0);
    CHECK_EQ_INT(d.len, len);
    wsk_deflate_free(server);
    wsk_deflate_free(client);
    buf_free(&c);
    buf_free(&d);
    free(msg);
}

/* The same compressed message fed whole, in random pieces and one byte at a
 * time decompresses to the same bytes. */
static void test_splits(void)
{
    uint64_t seed = 3;
    size_t len = 1024 * 1024;
    uint8_t *msg = malloc(len);
    fill_text(msg, len / 2, &seed);
    fill_random(msg + len / 2, len / 2, &seed);
    struct wsk_deflate_params params = params_of(false, false, 15, 15);
    struct pair p;
    CHECK(pair_new(&p, &params));
    /* Context takeover: each message refers to the ones before. */
    round_trip(p.server, p.client, msg, len, len, &seed);
    round_trip(p.server, p.client, msg, len, 0, &seed);
    round_trip(p.server, p.client, msg, len, 0, &seed);
    round_trip(p.server, p.client, msg, 64 * 1024, 1, &seed);
    round_trip(p.server, p.client, msg + len / 2, 64 * 1024, 1, &seed);
    round_trip(p.server, p.client, msg, 1000, 1, &seed);
    pair_free(&p);

    /* The last piece may carry data or be empty. */
    CHECK(pair_new(&p, &params));
    struct buf c = {0}, d = {0};
    CHECK_EQ_INT(wsk_deflate_compress(p.server, msg, 5000, buf_sink, &c), 0);
    CHECK_EQ_INT(wsk_deflate_decompress(p.client, c.p, c.len / 2, false, 5000, buf_sink, &d), 0);
    CHECK_EQ_INT(wsk_deflate_decompress(p.client, c.p + c.len / 2, c.len - c.len / 2, true, 5000,
                                        buf_sink, &d),
                 0);
    CHECK_EQ_INT(d.len, 5000);
    CHECK_MEM(d.p, msg, 5000);
    pair_free(&p);
    buf_free(&c);
    buf_free(&d);
    free(msg);
}

static void test_context_takeover(void)
{
    uint64_t seed = 4;
    uint8_t a[4000], b[4000];
    fill_random(a, sizeof a, &seed);
    memcpy(b, a, sizeof b);
    b[100] ^= 1;
    b[3000] ^= 1;
    for (int takeover = 0; takeover < 2; takeover++) {
        struct wsk_deflate_params params = params_of(!takeover, !takeover, 15, 15);
        struct pair p, fresh;
        CHECK(pair_new(&p, &params));
        CHECK(pair_new(&fresh, &params));
        round_trip(p.server, p.client, a, sizeof a, 0, &seed);
        size_t second = round_trip(p.server, p.client, b, sizeof b, 0, &seed);
        size_t alone = round_trip(fresh.server, fresh.client, b, sizeof b, 0, &seed);
        if (takeover)
            CHECK(second < alone / 10); /* B is A with two bits changed */
        else
            CHECK_EQ_INT(second, alone);
        /* Same the other way. */
        round_trip(p.client, p.server, a, sizeof a, 0, &seed);
        second = round_trip(p.client, p.server, b, sizeof b, 0, &seed);
        if (takeover)
            CHECK(second < alone / 10);
        pair_free(&p);
        pair_free(&fresh);
    }

    /* Context takeover in one direction only. */
    struct wsk_deflate_params params = params_of(true, false, 15, 15);
    struct pair p;
    CHECK(pair_new(&p, &params));
    round_trip(p.server, p.client, a, sizeof a, 0, &seed);
    CHECK(round_trip(p.server, p.client, b, sizeof b, 0, &seed) > sizeof b / 2);
    round_trip(p.client, p.server, a, sizeof a, 0, &seed);
    CHECK(round_trip(p.client, p.server, b, sizeof b, 0, &seed) < sizeof b / 10);
    CHECK_EQ_INT(wsk_deflate_memory(p.client) > 0, true);
    pair_free(&p);
}

/* No context takeover either way: the states hold no zlib memory between
 * messages (the thread's pool lends the streams), messages half inflated
 * on several connections at once do not disturb each other, and pooled
 * streams serve states of other window sizes correctly. */
static void test_shared_streams(void)
{
    uint64_t seed = 9;
    enum { N = 4, LEN = 3000 };
    uint8_t msg[N][LEN];
    struct buf c[N] = {{0}}, out[N] = {{0}};
    struct wsk_deflate *srv[N], *cli[N];

    for (int i = 0; i < N; i++) {
        /* Window bits differ from state to state: 9, 11, 13, 15. */
        uint8_t bits = (uint8_t)(9 + 2 * i);
        struct wsk_deflate_params params = params_of(true, true, bits, bits);
        CHECK_EQ_INT(wsk_deflate_new(&srv[i], &params, WSK_ROLE_SERVER), 0);
        CHECK_EQ_INT(wsk_deflate_new(&cli[i], &params, WSK_ROLE_CLIENT), 0);
        fill_text(msg[i], LEN, &seed);
        CHECK_EQ_INT(wsk_deflate_compress(cli[i], msg[i], LEN, buf_sink, &c[i]), 0);
        CHECK(c[i].len < LEN);
        CHECK_EQ_INT(wsk_deflate_memory(cli[i]), 0);
    }
    /* The first half of every message, then the second halves in reverse:
     * each state keeps its own stream while its message is open. */
    for (int i = 0; i < N; i++)
        CHECK_EQ_INT(
            wsk_deflate_decompress(srv[i], c[i].p, c[i].len / 2, false, LEN, buf_sink, &out[i]), 0);
    for (int i = N - 1; i >= 0; i--) {
        CHECK_EQ_INT(wsk_deflate_decompress(srv[i], c[i].p + c[i].len / 2, c[i].len - c[i].len / 2,
                                            true, LEN, buf_sink, &out[i]),
                     0);
        CHECK_EQ_INT(out[i].len, LEN);
        if (out[i].len == LEN)
            CHECK_MEM(out[i].p, msg[i], LEN);
        CHECK_EQ_INT(wsk_deflate_memory(srv[i]), 0);
    }
    /* Many whole messages through the pooled streams, both ways, each
     * compressed alone: the same message compresses to the same size. */
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < N; i++) {
            size_t a = round_trip(srv[i], cli[i], msg[i], LEN, 0, &seed);
            size_t b = round_trip(srv[i], cli[i], msg[i], LEN, 0, &seed);
            CHECK_EQ_INT(a, b);
            round_trip(cli[i], srv[i], msg[i], LEN, 700, &seed);
            CHECK_EQ_INT(wsk_deflate_memory(srv[i]) + wsk_deflate_memory(cli[i]), 0);
        }
    /* A state freed with a message half inflated gives its stream back. */
    CHECK_EQ_INT(
        wsk_deflate_decompress(srv[0], c[0].p, c[0].len / 2, false, LEN, buf_sink, &out[0]), 0);
    for (int i = 0; i < N; i++) {
        wsk_deflate_free(srv[i]);
        wsk_deflate_free(cli[i]);
        buf_free(&c[i]);
        buf_free(&out[i]);
    }
}

/* RFC 7692 section 7.2.3: the example payloads, each "Hello". */
static void test_rfc_payloads(void)
{
    struct wsk_deflate_params params = params_of(false, false, 15, 15);
    struct wsk_deflate *d;
    CHECK_EQ_INT(wsk_deflate_new(&d, &params, WSK_ROLE_CLIENT), 0);
    struct buf out = {0};
    static const uint8_t hello[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
    static const uint8_t shared[] = {0xf2, 0x00, 0x11, 0x00, 0x00};
    static const uint8_t stored[] = {0x00, 0x05, 0x00, 0xfa, 0xff, 0x48,
                                     0x65, 0x6c, 0x6c, 0x6f, 0x00};
    static const uint8_t bfinal[] = {0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00};
    static const uint8_t two_blocks[] = {0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff,
                                         0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00};
    struct {
        const uint8_t *p;
        size_t len;
    } cases[] = {
        {hello, sizeof hello},   {shared, sizeof shared},         {stored, sizeof stored},
        {bfinal, sizeof bfinal}, {two_blocks, sizeof two_blocks}, {bfinal, 7},
        {hello, sizeof hello},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        buf_clear(&out);
        int rv = inflate_msg(d, cases[i].p, cases[i].len, 100, &out);
        if (rv != 0)
            fprintf(stderr, "  case %zu -> %d\n", i, rv);
        CHECK_EQ_INT(rv, 0);
        CHECK_EQ_INT(out.len, 5);
        if (out.len == 5)
            CHECK_MEM(out.p, "Hello", 5);
    }
    /* Fragmented across two frames (section 7.2.3.1). */
    buf_clear(&out);
    CHECK_EQ_INT(wsk_deflate_decompress(d, hello, 3, false, 100, buf_sink, &out), 0);
    CHECK_EQ_INT(wsk_deflate_decompress(d, hello + 3, 4, true, 100, buf_sink, &out), 0);
    CHECK_EQ_INT(out.len, 5);
    wsk_deflate_free(d);

    /* zlib makes the RFC's bytes, and the second message refers to the
     * first. */
    struct pair p;
    CHECK(pair_new(&p, &params));
    buf_clear(&out);
    CHECK_EQ_INT(wsk_deflate_compress(p.server, (const uint8_t *)"Hello", 5, buf_sink, &out), 0);
    CHECK_EQ_INT(out.len, sizeof hello);
    CHECK_MEM(out.p, hello, sizeof hello);
    buf_clear(&out);
    CHECK_EQ_INT(wsk_deflate_compress(p.server, (const uint8_t *)"Hello", 5, buf_sink, &out), 0);
    CHECK_EQ_INT(out.len, sizeof shared);
    CHECK_MEM(out.p, shared, sizeof shared);
    pair_free(&p);
    buf_free(&out);
}

/* A final block ends one deflate stream; the message (or the next one, with
 * context takeover) may start another that refers to the old window. */
static void test_bfinal_keeps_window(void)
{
    uint64_t seed = 5;
    uint8_t a[3000], b[3000];
    fill_random(a, sizeof a, &seed);
    memcpy(b, a, sizeof b);
    b[7] ^= 0x40;
    uint8_t c1[4000], c2[4000];
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    CHECK_EQ_INT(deflateInit2(&zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    zs.next_in = a;
    zs.avail_in = sizeof a;
    zs.next_out = c1;
    zs.avail_out = sizeof c1;
    CHECK_EQ_INT(deflate(&zs, Z_FINISH), Z_STREAM_END);
    size_t n1 = sizeof c1 - zs.avail_out;
    CHECK_EQ_INT(deflateReset(&zs), Z_OK);
    CHECK_EQ_INT(deflateSetDictionary(&zs, a, sizeof a), Z_OK);
    zs.next_in = b;
    zs.avail_in = sizeof b;
    zs.next_out = c2;
    zs.avail_out = sizeof c2;
    CHECK_EQ_INT(deflate(&zs, Z_SYNC_FLUSH), Z_OK);
    size_t n2 = sizeof c2 - zs.avail_out - 4;
    deflateEnd(&zs);
    CHECK(n2 < 100);

    struct wsk_deflate_params params = params_of(false, false, 15, 15);
    struct wsk_deflate *d;
    CHECK_EQ_INT(wsk_deflate_new(&d, &params, WSK_ROLE_SERVER), 0);
    struct buf out = {0};
    CHECK_EQ_INT(inflate_msg(d, c1, n1, sizeof a, &out), 0);
    CHECK_EQ_INT(inflate_msg(d, c2, n2, sizeof b, &out), 0);
    CHECK_EQ_INT(out.len, sizeof a + sizeof b);
    CHECK_MEM(out.p, a, sizeof a);
    CHECK_MEM(out.p + sizeof a, b, sizeof b);
    /* Both streams in one message. */
    uint8_t both[8000];
    memcpy(both, c1, n1);
    memcpy(both + n1, c2, n2);
    buf_clear(&out);
    CHECK_EQ_INT(inflate_msg(d, both, n1 + n2, 10000, &out), 0);
    CHECK_EQ_INT(out.len, sizeof a + sizeof b);
    wsk_deflate_free(d);
    buf_free(&out);
}

static void test_bomb(void)
{
    size_t len = 16 * 1024 * 1024;
    uint8_t *zeros = calloc(1, len);
    struct wsk_deflate_params params = params_of(false, false, 15, 15);
    struct pair p;
    CHECK(pair_new(&p, &params));
    struct buf c = {0}, d = {0};
    CHECK_EQ_INT(wsk_deflate_compress(p.server, zeros, len, buf_sink, &c), 0);
    CHECK(c.len < 20 * 1024);
    uint64_t max = 1024 * 1024;
    CHECK_EQ_INT(inflate_msg(p.client, c.p, c.len, max, &d), WSK_ETOOBIG);
    CHECK(d.len <= max);
    CHECK(d.len + WSK_DEFLATE_CHUNK >= max);
    /* Sticky, and the inflate stream is gone. */
    CHECK_EQ_INT(inflate_msg(p.client, c.p, 1, max, &d), WSK_ETOOBIG);
    CHECK_EQ_INT(wsk_deflate_memory(p.client), 0);
    pair_free(&p);

    /* Fed in 1 KiB pieces, it stops within the first few: the rest is never
     * inflated. */
    CHECK(pair_new(&p, &params));
    buf_clear(&c);
    buf_clear(&d);
    CHECK_EQ_INT(wsk_deflate_compress(p.server, zeros, len, buf_sink, &c), 0);
    size_t fed = 0;
    int rv = 0;
    while (rv == 0 && fed < c.len) {
        size_t piece = c.len - fed < 1024 ? c.len - fed : 1024;
        rv = wsk_deflate_decompress(p.client, c.p + fed, piece, false, max, buf_sink, &d);
        fed += piece;
    }
    CHECK_EQ_INT(rv, WSK_ETOOBIG);
    CHECK(fed <= 4 * 1024);
    CHECK(d.len <= max);
    pair_free(&p);

    /* Exactly at the limit is fine; one byte over is not. */
    CHECK(pair_new(&p, &params));
    buf_clear(&c);
    CHECK_EQ_INT(wsk_deflate_compress(p.server, zeros, 100000, buf_sink, &c), 0);
    buf_clear(&d);
    CHECK_EQ_INT(inflate_msg(p.client, c.p, c.len, 100000, &d), 0);
    CHECK_EQ_INT(d.len, 100000);
    pair_free(&p);
    CHECK(pair_new(&p, &params));
    buf_clear(&c);
    CHECK_EQ_INT(wsk_deflate_compress(p.server, zeros, 100000, buf_sink, &c), 0);
    buf_clear(&d);
    CHECK_EQ_INT(inflate_msg(p.client, c.p, c.len, 99999, &d), WSK_ETOOBIG);
    CHECK(d.len <= 99999);
    /* max 0 allows only empty messages. */
    pair_free(&p);
    CHECK(pair_new(&p, &params));
    buf_clear(&d);
    CHECK_EQ_INT(inflate_msg(p.client, (const uint8_t *)"\x00", 1, 0, &d), 0);
    CHECK_EQ_INT(inflate_msg(p.client, (const uint8_t *)"\x02\x00", 2, 0, &d), 0);
    CHECK_EQ_INT(inflate_msg(p.client, c.p, c.len, 0, &d), WSK_ETOOBIG);
    CHECK_EQ_INT(d.len, 0);
    pair_free(&p);
    buf_free(&c);
    buf_free(&d);
    free(zeros);
}

static void test_corrupt(void)
{
    struct wsk_deflate_params params = params_of(false, false, 15, 15);
    struct wsk_deflate *d;
    struct buf out = {0};
    /* Block type 3 is reserved. */
    CHECK_EQ_INT(wsk_deflate_new(&d, &params, WSK_ROLE_SERVER), 0);
    CHECK_EQ_INT(inflate_msg(d, (const uint8_t *)"\x07\x00", 2, 1000, &out), WSK_EDEFLATE);
    /* Sticky, even for a good message; nothing held. */
    CHECK_EQ_INT(inflate_msg(d, (const uint8_t *)"\xf2\x48\xcd\xc9\xc9\x07\x00", 7, 1000, &out),
                 WSK_EDEFLATE);
    CHECK_EQ_INT(wsk_deflate_memory(d), 0);
    wsk_deflate_free(d);

    /* A stored block whose NLEN does not match. */
    CHECK_EQ_INT(wsk_deflate_new(&d, &params, WSK_ROLE_SERVER), 0);
    CHECK_EQ_INT(inflate_msg(d,
                             (const uint8_t *)"\x00\x05\x00\xfa\xfe"
                                              "Hello",
                             10, 1000, &out),
                 WSK_EDEFLATE);
    wsk_deflate_free(d);

    /* A distance before the start of the data. */
    CHECK_EQ_INT(wsk_deflate_new(&d, &params, WSK_ROLE_SERVER), 0);
    CHECK_EQ_INT(inflate_msg(d, (const uint8_t *)"\xf2\x00\x11\x00\x00", 5, 1000, &out),
                 WSK_EDEFLATE);
    wsk_deflate_free(d);

    /* A message cut inside a block. */
    uint64_t seed = 6;
    uint8_t msg[10000];
    fill_text(msg, sizeof msg, &seed);
    struct wsk_deflate *s;
    CHECK_EQ_INT(wsk_deflate_new(&s, &params, WSK_ROLE_CLIENT), 0);
    struct buf c = {0};
    CHECK_EQ_INT(wsk_deflate_compress(s, msg, sizeof msg, buf_sink, &c), 0);
    wsk_deflate_free(s);
    for (size_t cut = 1; cut < 40; cut += 7) {
        CHECK_EQ_INT(wsk_deflate_new(&d, &params, WSK_ROLE_SERVER), 0);
        buf_clear(&out);
        /* The tail may decode as a few more symbols: room for them. */
        int rv = inflate_msg(d, c.p, c.len - cut, 2 * sizeof msg, &out);
        if (rv != WSK_EDEFLATE)
            fprintf(stderr, "  cut %zu of %zu -> %d, %zu bytes\n", cut, c.len, rv, out.len);
        CHECK(rv == WSK_EDEFLATE);
        wsk_deflate_free(d);
    }

    /* Random garbage: an error or some output, never a crash or more than
     * the limit. */
    uint8_t junk[512];
    int errors = 0;
    for (int i = 0; i < 200; i++) {
        fill_random(junk, sizeof junk, &seed);
        CHECK_EQ_INT(wsk_deflate_new(&d, &params, WSK_ROLE_SERVER), 0);
        buf_clear(&out);
        int rv = inflate_msg(d, junk, sizeof junk, 4096, &out);
        CHECK(rv == 0 || rv == WSK_EDEFLATE || rv == WSK_ETOOBIG);
        CHECK(out.len <= 4096);
        errors += rv != 0;
        wsk_deflate_free(d);
    }
    CHECK(errors > 150);
    buf_free(&out);
    buf_free(&c);
}

/* Raw zlib with Z_SYNC_FLUSH on the other end, both ways, several messages
 * with context takeover. */
static void test_interop_zlib(void)
{
    uint64_t seed = 7;
    struct wsk_deflate_params params = params_of(false, false, 15, 15);
    struct wsk_deflate *d;
    CHECK_EQ_INT(wsk_deflate_new(&d, &params, WSK_ROLE_SERVER), 0);
    z_stream def, inf;
    memset(&def, 0, sizeof def);
    memset(&inf, 0, sizeof inf);
    CHECK_EQ_INT(deflateInit2(&def, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY), Z_OK);
    CHECK_EQ_INT(inflateInit2(&inf, -15), Z_OK);
    size_t len = 100000;
    uint8_t *msg = malloc(len), *comp = malloc(2 * len), *back = malloc(len + 1);
    struct buf out = {0};
    for (int i = 0; i < 5; i++) {
        fill_text(msg, len, &seed);
        /* zlib -> wsk */
        def.next_in = msg;
        def.avail_in = (unsigned)len;
        def.next_out = comp;
        def.avail_out = (unsigned)(2 * len);
        CHECK_EQ_INT(deflate(&def, Z_SYNC_FLUSH), Z_OK);
        size_t n = 2 * len - def.avail_out;
        CHECK_MEM(comp + n - 4, "\x00\x00\xff\xff", 4);
        buf_clear(&out);
        CHECK_EQ_INT(inflate_msg(d, comp, n - 4, len, &out), 0);
        CHECK_EQ_INT(out.len, len);
        CHECK_MEM(out.p, msg, len);
        /* wsk -> zlib */
        buf_clear(&out);
        CHECK_EQ_INT(wsk_deflate_compress(d, msg, len, buf_sink, &out), 0);
        CHECK(buf_sink(&out, (const uint8_t *)"\x00\x00\xff\xff", 4) == 0);
        inf.next_in = out.p;
        inf.avail_in = (unsigned)out.len;
        inf.next_out = back;
        inf.avail_out = (unsigned)(len + 1);
        CHECK_EQ_INT(inflate(&inf, Z_SYNC_FLUSH), Z_OK);
        CHECK_EQ_INT(inf.avail_in, 0);
        CHECK_EQ_INT(len + 1 - inf.avail_out, len);
        CHECK_MEM(back, msg, len);
    }
    deflateEnd(&def);
    inflateEnd(&inf);
    wsk_deflate_free(d);
    buf_free(&out);
    free(msg);
    free(comp);
    free(back);
}

static int abort_sink(void *ctx, const uint8_t *data, size_t len)
{
    (void)ctx;
    (void)data;
    (void)len;
    return -42;
}

static void test_sink_abort_and_empty(void)
{
    uint64_t seed = 8;
    uint8_t msg[3000];
    fill_text(msg, sizeof msg, &seed);
    struct wsk_deflate_params params = params_of(false, false, 15, 15);
    struct pair p;
    CHECK(pair_new(&p, &params));
    round_trip(p.server, p.client, msg, sizeof msg, 0, &seed);
    /* A compress whose sink gives up: the peer never sees it, and the next
     * message still decompresses on the peer's side. */
    CHECK_EQ_INT(wsk_deflate_compress(p.server, msg, sizeof msg, abort_sink, NULL), -42);
    round_trip(p.server, p.client, msg, sizeof msg, 0, &seed);
    /* Empty messages between others, with context takeover. */
    round_trip(p.server, p.client, msg, 0, 0, &seed);
    round_trip(p.server, p.client, msg, 0, 0, &seed);
    round_trip(p.server, p.client, msg, sizeof msg, 0, &seed);
    round_trip(p.client, p.server, msg, 0, 0, &seed);
    round_trip(p.client, p.server, msg, sizeof msg, 0, &seed);
    /* An empty payload is an empty message and leaves the stream intact. */
    struct buf out = {0};
    CHECK_EQ_INT(inflate_msg(p.client, NULL, 0, 100, &out), 0);
    CHECK_EQ_INT(out.len, 0);
    round_trip(p.server, p.client, msg, sizeof msg, 0, &seed);
    /* A decompress whose sink gives up: sticky. */
    struct buf c = {0};
    CHECK_EQ_INT(wsk_deflate_compress(p.server, msg, sizeof msg, buf_sink, &c), 0);
    CHECK_EQ_INT(wsk_deflate_decompress(p.client, c.p, c.len, true, sizeof msg, abort_sink, NULL),
                 -42);
    CHECK_EQ_INT(inflate_msg(p.client, c.p, c.len, sizeof msg, &out), -42);
    pair_free(&p);
    buf_free(&c);
    buf_free(&out);
}

static void test_new_and_args(void)
{
    struct wsk_deflate *d = (struct wsk_deflate *)&d;
    struct wsk_deflate_params params = params_of(false, false, 7, 15);
    CHECK_EQ_INT(wsk_deflate_new(&d, &params, WSK_ROLE_SERVER), -EINVAL);
    CHECK(d == NULL);
    params = params_of(false, false, 15, 16);
    CHECK_EQ_INT(wsk_deflate_new(&d, &params, WSK_ROLE_SERVER), -EINVAL);
    params = params_of(false, false, 15, 15);
    params.mem_level = 10;
    CHECK_EQ_INT(wsk_deflate_new(&d, &params, WSK_ROLE_SERVER), -EINVAL);
    CHECK_EQ_INT(wsk_deflate_new(&d, &params, (enum wsk_role)7), -EINVAL);
    /* Zero window bits mean 15. */
    params = params_of(false, false, 0, 0);
    CHECK_EQ_INT(wsk_deflate_new(&d, &params, WSK_ROLE_CLIENT), 0);
    CHECK_EQ_INT(wsk_deflate_memory(d), 0);
    wsk_deflate_free(d);
    wsk_deflate_free(NULL);
    CHECK_EQ_INT(wsk_deflate_memory(NULL), 0);
}

/* Compresses and decompresses one message each way, then reports what the
 * two states hold while idle. */
static void measure(const char *what, const struct wsk_deflate_params *params, size_t *server_idle,
                    size_t *server_compress, size_t *server_inflate)
{
    uint64_t seed = 9;
    uint8_t msg[8192];
    fill_text(msg, sizeof msg, &seed);
    struct pair p;
    CHECK(pair_new(&p, params));
    struct buf c = {0}, d = {0};
    CHECK_EQ_INT(wsk_deflate_compress(p.server, msg, sizeof msg, buf_sink, &c), 0);
    size_t after_compress = wsk_deflate_memory(p.server);
    CHECK_EQ_INT(inflate_msg(p.client, c.p, c.len, sizeof msg, &d), 0);
    size_t client_inflate = wsk_deflate_memory(p.client);
    buf_clear(&c);
    CHECK_EQ_INT(wsk_deflate_compress(p.client, msg, sizeof msg, buf_sink, &c), 0);
    size_t client_idle = wsk_deflate_memory(p.client);
    /* The inflate stream's peak, before a no-context-takeover release. */
    CHECK_EQ_INT(wsk_deflate_decompress(p.server, c.p, c.len, false, sizeof msg, buf_sink, &d), 0);
    size_t inflating = wsk_deflate_memory(p.server) - after_compress;
    CHECK_EQ_INT(wsk_deflate_decompress(p.server, NULL, 0, true, sizeof msg, buf_sink, &d), 0);
    size_t idle = wsk_deflate_memory(p.server);
    printf("     %-34s server: deflate %zu inflate %zu idle %zu; client idle %zu (inflate %zu)\n",
           what, after_compress, inflating, idle, client_idle, client_inflate);
    *server_idle = idle;
    *server_compress = after_compress;
    *server_inflate = inflating;
    pair_free(&p);
    buf_free(&c);
    buf_free(&d);
}

static void test_memory(void)
{
    size_t idle, def, inf;
    struct wsk_deflate_params params = params_of(false, false, 15, 15);
    measure("defaults (15 bits, mem_level 5)", &params, &idle, &def, &inf);
    CHECK(def > 128 * 1024 && def < 160 * 1024);
    CHECK(inf > 32 * 1024 && inf < 48 * 1024);
    CHECK_EQ_INT(idle, def + inf);

    params.mem_level = 8;
    measure("15 bits, mem_level 8", &params, &idle, &def, &inf);
    CHECK(def > 256 * 1024 && def < 280 * 1024);

    params = params_of(false, false, 12, 12);
    measure("12 bits, mem_level 5", &params, &idle, &def, &inf);
    CHECK(def < 48 * 1024 && inf < 16 * 1024);

    /* No context takeover: nothing between messages, in both roles, and
     * nothing during one either: the streams are the thread's pool's. */
    params = params_of(true, true, 15, 15);
    measure("no context takeover", &params, &idle, &def, &inf);
    CHECK_EQ_INT(idle, 0);
    CHECK_EQ_INT(def, 0);
    CHECK_EQ_INT(inf, 0);

    /* One direction each: the server keeps only its inflate stream. */
    params = params_of(true, false, 15, 15);
    measure("server_no_context_takeover", &params, &idle, &def, &inf);
    CHECK(idle > 32 * 1024 && idle < 48 * 1024);
}

int main(void)
{
    WSK_RUN(test_negotiate_rfc_examples);
    WSK_RUN(test_negotiate_several_offers);
    WSK_RUN(test_negotiate_quoted);
    WSK_RUN(test_negotiate_declined);
    WSK_RUN(test_negotiate_malformed);
    WSK_RUN(test_negotiate_config);
    WSK_RUN(test_offer);
    WSK_RUN(test_accept);
    WSK_RUN(test_offer_negotiate_accept);
    WSK_RUN(test_round_trip_sizes);
    WSK_RUN(test_window_bits);
    WSK_RUN(test_splits);
    WSK_RUN(test_context_takeover);
    WSK_RUN(test_rfc_payloads);
    WSK_RUN(test_bfinal_keeps_window);
    WSK_RUN(test_bomb);
    WSK_RUN(test_corrupt);
    WSK_RUN(test_interop_zlib);
    WSK_RUN(test_sink_abort_and_empty);
    WSK_RUN(test_new_and_args);
    WSK_RUN(test_memory);
    WSK_RUN(test_shared_streams);
    WSK_TEST_END();
}
