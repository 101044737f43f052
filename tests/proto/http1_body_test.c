/* Tests for response bodies (src/proto/http1_body.c): the framing chosen
 * from the head (RFC 9112 section 6.3, smuggling rules included),
 * Content-Length, chunked and until-EOF bodies, and every way the chunked
 * coding can be malformed. Each body is fed whole, byte by byte, in random
 * splits (each piece in a buffer of its own size, so that ASan sees a read
 * past it) and decoded in place; all must agree. */
#include <stdlib.h>

#include "wsk/http.h"
#include "wsk_test.h"

/* What feeding a body gave. */
struct outcome {
    int error;          /* 0, or the first error a parse returned */
    char body[1 << 16]; /* the body runs, joined */
    size_t body_len;
    size_t consumed; /* input bytes consumed */
    bool is_done;    /* before wsk_http_body_finish() */
    int finish;      /* wsk_http_body_finish() */
    uint64_t received;
};

static int parse_head(const char *msg, size_t len, struct wsk_http_response *resp)
{
    struct wsk_http_parser p;
    wsk_http_parser_init(&p, 0);
    return wsk_http_response_parse(&p, msg, len, resp);
}

/* Feeds in[0..len) in pieces: step 0 whole, 1 byte by byte, else random
 * piece sizes from seed. */
static void feed(struct wsk_http_body *b, const char *in, size_t len, size_t step, uint64_t seed,
                 struct outcome *o)
{
    size_t off = 0;
    while (off < len && !o->error) {
        size_t n = step == 0 ? len : step == 1 ? 1 : 1 + wsk_test_rand(&seed) % 23;
        if (n > len - off)
            n = len - off;
        uint8_t *piece = malloc(n);
        memcpy(piece, in + off, n);
        size_t at = 0;
        while (at < n) {
            const uint8_t *run;
            size_t run_len;
            int64_t rv = wsk_http_body_parse(b, piece + at, n - at, &run, &run_len);
            if (rv < 0) {
                o->error = (int)rv;
                CHECK(run == NULL && run_len == 0);
                break;
            }
            CHECK((size_t)rv <= n - at);
            if (run_len) {
                CHECK(run >= piece + at && run + run_len <= piece + at + (size_t)rv);
                CHECK(o->body_len + run_len <= sizeof o->body);
                memcpy(o->body + o->body_len, run, run_len);
                o->body_len += run_len;
            } else {
                CHECK(run == NULL);
            }
            at += (size_t)rv;
            o->consumed += (size_t)rv;
            if (rv == 0) {
                CHECK(wsk_http_body_is_done(b));
                break;
            }
        }
        free(piece);
        if (at < n)
            break; /* done or failed: the rest is not the body's */
        off += n;
    }
    o->is_done = wsk_http_body_is_done(b);
    o->received = wsk_http_body_received(b);
    o->finish = wsk_http_body_finish(b);
    CHECK_EQ_INT(wsk_http_body_finish(b), o->finish); /* the same answer again */
}

/* The same through wsk_http_body_decode(), in pieces of step bytes. */
static void decode(struct wsk_http_body *b, const char *in, size_t len, size_t step,
                   struct outcome *o)
{
    size_t off = 0;
    while (off < len && !o->error) {
        size_t n = step && step < len - off ? step : len - off;
        uint8_t *piece = malloc(n);
        memcpy(piece, in + off, n);
        size_t consumed = 0;
        int64_t rv = wsk_http_body_decode(b, piece, n, &consumed);
        if (rv < 0) {
            o->error = (int)rv;
        } else {
            CHECK(consumed <= n);
            memcpy(o->body + o->body_len, piece, (size_t)rv);
            o->body_len += (size_t)rv;
            o->consumed += consumed;
            if (consumed < n && !wsk_http_body_is_done(b)) {
                /* Stopped at an error: it comes with the next call. */
                rv = wsk_http_body_decode(b, piece + consumed, n - consumed, &consumed);
                CHECK(rv < 0);
                o->error = (int)rv;
            }
        }
        free(piece);
        if (consumed < n)
            break;
        off += n;
    }
    o->is_done = wsk_http_body_is_done(b);
    o->received = wsk_http_body_received(b);
    o->finish = wsk_http_body_finish(b);
}

static struct outcome results[6];

/* Parses the head of msg, then checks its body every way: the init result,
 * the error (0 when none), the body, whether it is done before EOF, and
 * what EOF says. Returns the outcome of the whole feed. */
static const struct outcome *expect_body_n(const char *msg, size_t len, const char *method,
                                           int want_init, int want_error, const char *want_body,
                                           size_t want_len, bool want_done, int want_finish)
{
    struct wsk_http_response resp;
    int head_len = parse_head(msg, len, &resp);
    CHECK(head_len > 0);
    if (head_len <= 0)
        return &results[0];
    const char *in = msg + head_len;
    size_t in_len = len - (size_t)head_len;
    for (int k = 0; k < 6; k++) {
        struct outcome *o = &results[k];
        memset(o, 0, sizeof *o);
        struct wsk_http_body b;
        CHECK_EQ_INT(wsk_http_body_init(&b, &resp, method), want_init);
        if (k < 4)
            feed(&b, in, in_len, k == 3 ? 7 : (size_t)k, 0x1234 + (uint64_t)k, o);
        else
            decode(&b, in, in_len, k == 4 ? 0 : 3, o);
        CHECK_EQ_INT(o->error, want_error);
        CHECK_EQ_INT(o->body_len, want_len);
        CHECK_MEM(o->body, want_body, o->body_len < want_len ? o->body_len : want_len);
        CHECK_EQ_INT(o->is_done, want_done);
        CHECK_EQ_INT(o->finish, want_finish);
        CHECK_EQ_INT(o->received, o->body_len);
        if (!want_error)
            CHECK_EQ_INT(o->consumed, results[0].consumed);
    }
    return &results[0];
}

static const struct outcome *expect_body(const char *msg, size_t len, const char *method,
                                         int want_init, int want_error, const char *want_body,
                                         bool want_done, int want_finish)
{
    return expect_body_n(msg, len, method, want_init, want_error, want_body, strlen(want_body),
                         want_done, want_finish);
}

#define S(lit) lit, sizeof lit - 1

/* ---- framing ------------------------------------------------------------- */

static enum wsk_http_framing framing_of(const char *msg, size_t len, const char *method, int *rv)
{
    struct wsk_http_response resp;
    CHECK(parse_head(msg, len, &resp) > 0);
    struct wsk_http_body b;
    *rv = wsk_http_body_init(&b, &resp, method);
    return wsk_http_body_framing(&b);
}

static void test_framing(void)
{
    int rv;
    CHECK_EQ_INT(framing_of(S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"), NULL, &rv),
                 WSK_HTTP_BODY_LENGTH);
    CHECK_EQ_INT(rv, 0);
    CHECK_EQ_INT(framing_of(S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), "GET", &rv),
                 WSK_HTTP_BODY_CHUNKED);
    CHECK_EQ_INT(framing_of(S("HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\n"), "GET", &rv),
                 WSK_HTTP_BODY_CHUNKED);
    CHECK_EQ_INT(rv, 0);
    CHECK_EQ_INT(framing_of(S("HTTP/1.1 200 OK\r\nServer: x\r\n\r\n"), "POST", &rv),
                 WSK_HTTP_BODY_EOF);
    CHECK_EQ_INT(framing_of(S("HTTP/1.0 200 OK\r\n\r\n"), "GET", &rv), WSK_HTTP_BODY_EOF);

    /* No body whatever the headers say (section 6.3, rules 1 and 2). */
    const char *none[] = {
        "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
        "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 100 Continue\r\n\r\n",
        "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
        CHECK_EQ_INT(framing_of(none[i], strlen(none[i]), "GET", &rv), WSK_HTTP_BODY_NONE);
        CHECK_EQ_INT(rv, 0);
    }
    CHECK_EQ_INT(framing_of(S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"), "HEAD", &rv),
                 WSK_HTTP_BODY_NONE);
    /* Methods are case-sensitive: "head" is some other method. */
    CHECK_EQ_INT(framing_of(S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"), "head", &rv),
                 WSK_HTTP_BODY_LENGTH);
    /* CONNECT: a 2xx is a tunnel, anything else a normal answer. */
    CHECK_EQ_INT(framing_of(S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"), "CONNECT", &rv),
                 WSK_HTTP_BODY_EOF);
    CHECK_EQ_INT(framing_of(S("HTTP/1.1 407 Auth\r\nContent-Length: 5\r\n\r\n"), "CONNECT", &rv),
                 WSK_HTTP_BODY_LENGTH);

    /* Content-Length repeated with one value is one value. */
    CHECK_EQ_INT(framing_of(S("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n"), NULL, &rv),
                 WSK_HTTP_BODY_LENGTH);
    CHECK_EQ_INT(rv, 0);
    CHECK_EQ_INT(
        framing_of(S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\ncontent-length: 005\r\n\r\n"), NULL,
                   &rv),
        WSK_HTTP_BODY_LENGTH);
    CHECK_EQ_INT(rv, 0);
    CHECK_EQ_INT(
        framing_of(S("HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n"), NULL, &rv),
        WSK_HTTP_BODY_LENGTH);
    CHECK_EQ_INT(rv, 0);
}

/* Framing that cannot be trusted: refused at init, and the decoder stays
 * failed. */
static void test_framing_refused(void)
{
    const char *bad[] = {
        /* Both: the request smuggling classic. */
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n",
        /* Content-Length disagreeing or not a number. */
        "HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5a\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5 5\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: ,\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616\r\n\r\n",
        /* Codings we did not ask for, chunked twice, chunked not alone. */
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: \r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked;x=1\r\n\r\n",
        /* HTTP/1.0 with Transfer-Encoding: faulty framing (section 6.1). */
        "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct wsk_http_response resp;
        CHECK(parse_head(bad[i], strlen(bad[i]), &resp) > 0);
        struct wsk_http_body b;
        CHECK_EQ_INT(wsk_http_body_init(&b, &resp, "GET"), WSK_EHTTP);
        const uint8_t *run;
        size_t run_len;
        CHECK_EQ_INT(wsk_http_body_parse(&b, (const uint8_t *)"abc", 3, &run, &run_len), WSK_EHTTP);
        CHECK(!wsk_http_body_is_done(&b));
        CHECK_EQ_INT(wsk_http_body_finish(&b), WSK_EHTTP);
        if (wsk_http_body_finish(&b) != WSK_EHTTP)
            fprintf(stderr, "  accepted: %s\n", bad[i]);
    }
}

/* ---- Content-Length and until EOF ----------------------------------------- */

static void test_content_length(void)
{
    expect_body(S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"), NULL, 0, 0, "hello", true,
                0);
    /* Bytes after the body are not consumed. */
    const struct outcome *o =
        expect_body(S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello, world"), NULL, 0, 0,
                    "hello", true, 0);
    CHECK_EQ_INT(o->consumed, 5);
    /* Empty: done before any byte; a HEAD answer takes none. */
    o = expect_body(S("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nnext"), NULL, 0, 0, "", true, 0);
    CHECK_EQ_INT(o->consumed, 0);
    o = expect_body(S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHTTP/"), "HEAD", 0, 0, "", true,
                    0);
    CHECK_EQ_INT(o->consumed, 0);
    /* Cut short. */
    expect_body(S("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello"), NULL, 0, 0, "hello", false,
                WSK_ETRUNCATED);
    expect_body(S("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n"), NULL, 0, 0, "", false,
                WSK_ETRUNCATED);
    /* Binary bytes pass as they are. */
    static const char bin[] = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n\0\r\n\xff";
    expect_body_n(bin, sizeof bin - 1, NULL, 0, 0, "\0\r\n\xff", 4, true, 0);
}

static void test_until_eof(void)
{
    const struct outcome *o = expect_body(S("HTTP/1.1 200 OK\r\n\r\nall of this\r\n0\r\n\r\n"),
                                          NULL, 0, 0, "all of this\r\n0\r\n\r\n", false, 0);
    CHECK_EQ_INT(o->consumed, strlen("all of this\r\n0\r\n\r\n"));
    expect_body(S("HTTP/1.0 200 OK\r\n\r\n"), NULL, 0, 0, "", false, 0);
}

/* ---- chunked ------------------------------------------------------------- */

static void test_chunked(void)
{
    expect_body(S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n"),
                NULL, 0, 0, "hello, world", true, 0);
    /* Hex in either case, leading zeros, a big chunk. */
    expect_body(S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "000A\r\n0123456789\r\na\r\nabcdefghij\r\n0000\r\n\r\n"),
                NULL, 0, 0, "0123456789abcdefghij", true, 0);
    /* Extensions of every shape, ignored. */
    expect_body(S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "3;a\r\nabc\r\n"
                  "3;a=b;c=\"d;e\\\"f\"\r\nghi\r\n"
                  "2 ; x = y ;z\r\njk\r\n"
                  "1;q=\"\"\r\nl\r\n"
                  "0;last=\"\xc3\xa9\"\r\n\r\n"),
                NULL, 0, 0, "abcghijkl", true, 0);
    /* Trailers, checked and dropped; bytes after the end are not consumed. */
    const struct outcome *o =
        expect_body(S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "4\r\nbody\r\n0\r\nX-Sum: 1234\r\nX-Empty:\r\nX-Tab:\ta b\r\n\r\nHTTP/1.1"),
                    NULL, 0, 0, "body", true, 0);
    CHECK_EQ_INT(o->consumed,
                 strlen("4\r\nbody\r\n0\r\nX-Sum: 1234\r\nX-Empty:\r\nX-Tab:\ta b\r\n\r\n"));
    /* Framing bytes inside the data are data. */
    expect_body(S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "6\r\n0\r\n\r\n\r\n0\r\n\r\n"),
                NULL, 0, WSK_EHTTP, "0\r\n\r\n\r", false, WSK_EHTTP);
    expect_body(S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "5\r\n0\r\n\r\n\r\n0\r\n\r\n"),
                NULL, 0, 0, "0\r\n\r\n", true, 0);
    /* The largest size there is, the line alone. */
    expect_body(S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7fffffffffffffff\r\nab"),
                NULL, 0, 0, "ab", false, WSK_ETRUNCATED);
}

static void test_chunked_truncated(void)
{
    static const char full[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                               "5;e=1\r\nhello\r\n0\r\nT: 1\r\n\r\n";
    size_t head = strlen("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    /* Every prefix of the body but the whole is cut short, not wrong. */
    for (size_t n = head; n < sizeof full - 1; n++) {
        size_t body_bytes = n - head < 7 ? 0 : n - head - 7;
        if (body_bytes > 5)
            body_bytes = 5;
        char want[8];
        memcpy(want, "hello", body_bytes);
        want[body_bytes] = '\0';
        expect_body(full, n, NULL, 0, 0, want, false, WSK_ETRUNCATED);
    }
    expect_body(full, sizeof full - 1, NULL, 0, 0, "hello", true, 0);
}

static void expect_chunked_error(const char *chunks, const char *want_body)
{
    char msg[8192];
    int n = snprintf(msg, sizeof msg, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%s",
                     chunks);
    CHECK(n > 0 && (size_t)n < sizeof msg);
    expect_body(msg, (size_t)n, NULL, 0, WSK_EHTTP, want_body, false, WSK_EHTTP);
    for (int k = 0; k < 6; k++)
        if (results[k].error != WSK_EHTTP)
            fprintf(stderr, "  way %d accepted: %s\n", k, chunks);
}

static void test_chunked_malformed(void)
{
    /* Line ends: CRLF only. */
    expect_chunked_error("5\nhello\r\n0\r\n\r\n", "");
    expect_chunked_error("5\r\nhello\n0\r\n\r\n", "hello");
    expect_chunked_error("5\r\nhello\r0\r\n\r\n", "hello");
    expect_chunked_error("5\r\nhelloX\r\n0\r\n\r\n", "hello");
    expect_chunked_error("5\rhello\r\n", "");
    expect_chunked_error("0\r\n\n", "");
    expect_chunked_error("0\r\n\r\r", "");
    expect_chunked_error("0\r\nA: 1\n\r\n", "");
    expect_chunked_error("\r\nhello\r\n", "");
    /* Sizes. */
    expect_chunked_error("g\r\n", "");
    expect_chunked_error("-1\r\n", "");
    expect_chunked_error("0x5\r\nhello\r\n", "");
    expect_chunked_error(" 5\r\nhello\r\n", "");
    expect_chunked_error("5 \r\nhello\r\n", "");
    expect_chunked_error("8000000000000000\r\n", "");
    expect_chunked_error("10000000000000005\r\nhello\r\n", ""); /* wraps to 5 in 64 bits */
    expect_chunked_error("ffffffffffffffffffffffffffff\r\n", "");
    /* Extensions. */
    expect_chunked_error("5;\r\nhello\r\n", "");
    expect_chunked_error("5;=x\r\nhello\r\n", "");
    expect_chunked_error("5;a=\r\nhello\r\n", "");
    expect_chunked_error("5;a b\r\nhello\r\n", "");
    expect_chunked_error("5;a=b c\r\nhello\r\n", "");
    expect_chunked_error("5;a=\"b\r\nhello\r\n", "");
    expect_chunked_error("5;a=\"b\"c\r\nhello\r\n", "");
    expect_chunked_error("5;a=\"\x01\"\r\nhello\r\n", "");
    expect_chunked_error("5;a=\"\\\x7f\"\r\nhello\r\n", "");
    expect_chunked_error("5;a@\r\nhello\r\n", "");
    expect_chunked_error("5;a=(\r\nhello\r\n", "");
    expect_chunked_error("5;a\x01\r\nhello\r\n", "");
    /* Trailers: field lines only, no obs-fold, no controls. */
    expect_chunked_error("0\r\nA: 1\r\n continued\r\n\r\n", "");
    expect_chunked_error("0\r\n\tA: 1\r\n\r\n", "");
    expect_chunked_error("0\r\nA 1\r\n\r\n", "");
    expect_chunked_error("0\r\nA : 1\r\n\r\n", "");
    expect_chunked_error("0\r\n: 1\r\n\r\n", "");
    expect_chunked_error("0\r\nA: 1\x01\r\n\r\n", "");
    expect_chunked_error("0\r\nA: 1\x7f\r\n\r\n", "");
}

static void test_limits(void)
{
    /* A size line of exactly WSK_HTTP_CHUNK_LINE_MAX bytes passes; one
     * more fails, however it is split. */
    static char msg[WSK_HTTP_CHUNK_LINE_MAX + 256];
    size_t head = (size_t)sprintf(msg, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    char *p = msg + head;
    memcpy(p, "1;", 2);
    size_t ext = WSK_HTTP_CHUNK_LINE_MAX - 4;
    memset(p + 2, 'a', ext);
    memcpy(p + 2 + ext, "\r\nx\r\n0\r\n\r\n", 10);
    expect_body(msg, head + 2 + ext + 10, NULL, 0, 0, "x", true, 0);
    memset(p + 2, 'a', ext + 1);
    memcpy(p + 3 + ext, "\r\nx\r\n0\r\n\r\n", 10);
    expect_body(msg, head + 3 + ext + 10, NULL, 0, WSK_EHTTP, "", false, WSK_EHTTP);

    /* The trailer section: WSK_HTTP_DEFAULT_MAX_HEAD bytes at most. */
    static char big[WSK_HTTP_DEFAULT_MAX_HEAD * 2];
    size_t n = (size_t)sprintf(big, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n");
    while (n < WSK_HTTP_DEFAULT_MAX_HEAD + 200)
        n += (size_t)sprintf(big + n, "X-Padding: %080d\r\n", 0);
    n += (size_t)sprintf(big + n, "\r\n");
    expect_body(big, n, NULL, 0, WSK_EHTTP, "", false, WSK_EHTTP);
}

/* After an error every call fails the same way; body runs handed out
 * before it stay where they were. */
static void test_error_is_sticky(void)
{
    static const char msg[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    struct wsk_http_response resp;
    CHECK(parse_head(msg, sizeof msg - 1, &resp) > 0);
    struct wsk_http_body b;
    CHECK_EQ_INT(wsk_http_body_init(&b, &resp, NULL), 0);
    uint8_t in[] = "3\r\nabc\r\nz\r\n";
    size_t consumed = 99;
    CHECK_EQ_INT(wsk_http_body_decode(&b, in, sizeof in - 1, &consumed), 3);
    CHECK_MEM(in, "abc", 3);
    CHECK_EQ_INT(consumed, 6); /* the run's end; the CRLF went with the failing call */
    CHECK_EQ_INT(wsk_http_body_decode(&b, in + 8, 3, &consumed), WSK_EHTTP);
    CHECK_EQ_INT(consumed, 0);
    const uint8_t *run = in;
    size_t run_len = 1;
    CHECK_EQ_INT(wsk_http_body_parse(&b, (const uint8_t *)"0\r\n\r\n", 5, &run, &run_len),
                 WSK_EHTTP);
    CHECK(run == NULL && run_len == 0);
    CHECK_EQ_INT(wsk_http_body_finish(&b), WSK_EHTTP);
    CHECK_EQ_INT(wsk_http_body_received(&b), 3);

    /* Empty input and NULL are fine. */
    CHECK_EQ_INT(wsk_http_body_init(&b, &resp, NULL), 0);
    CHECK_EQ_INT(wsk_http_body_parse(&b, NULL, 0, &run, &run_len), 0);
    CHECK_EQ_INT(wsk_http_body_decode(&b, NULL, 0, &consumed), 0);
    CHECK_EQ_INT(consumed, 0);
}

/* Random chunked bodies: random sizes and extensions, fed in random
 * pieces, give back the bytes put in. */
static void test_random_chunked(void)
{
    uint64_t seed = 42;
    static char msg[1 << 15], want[1 << 14];
    for (int round = 0; round < 200; round++) {
        size_t n = (size_t)sprintf(msg, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        size_t want_len = 0;
        int chunks = (int)(wsk_test_rand(&seed) % 8);
        for (int c = 0; c < chunks; c++) {
            size_t len = 1 + wsk_test_rand(&seed) % 300;
            n += (size_t)sprintf(msg + n, wsk_test_rand(&seed) % 2 ? "%zx" : "%zX", len);
            if (wsk_test_rand(&seed) % 3 == 0)
                n += (size_t)sprintf(msg + n, ";r=%d", round);
            n += (size_t)sprintf(msg + n, "\r\n");
            for (size_t i = 0; i < len; i++)
                want[want_len++] = msg[n++] =
                    (char)(wsk_test_rand(&seed) % 7 == 0 ? '\r' : 'a' + i % 26);
            n += (size_t)sprintf(msg + n, "\r\n");
        }
        n += (size_t)sprintf(msg + n, "0\r\n\r\n");
        want[want_len] = '\0';
        expect_body(msg, n, NULL, 0, 0, want, true, 0);
    }
}

int main(void)
{
    WSK_RUN(test_framing);
    WSK_RUN(test_framing_refused);
    WSK_RUN(test_content_length);
    WSK_RUN(test_until_eof);
    WSK_RUN(test_chunked);
    WSK_RUN(test_chunked_truncated);
    WSK_RUN(test_chunked_malformed);
    WSK_RUN(test_limits);
    WSK_RUN(test_error_is_sticky);
    WSK_RUN(test_random_chunked);
    WSK_TEST_END();
}
