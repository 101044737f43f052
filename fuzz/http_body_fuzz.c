/* Fuzz target for response bodies (wsk_http_body_*). The input is a
 * response: a head, then whatever follows it.
 *
 * Byte 0: bits 0-1 the method (GET, HEAD, CONNECT, POST); bit 7: the rest
 * is a chunked body alone, behind a fixed "Transfer-Encoding: chunked"
 * head, so the fuzzer reaches the chunked decoder without having to find a
 * head first. Byte 1: the seed of the random splits.
 *
 * The body is fed whole, byte by byte, in random pieces (each in a buffer
 * of its exact size), and through wsk_http_body_decode() whole and in
 * pieces; abort() unless all five agree on the body bytes, the verdict
 * (error or not), completion and what the end of the stream says, and
 * unless:
 * - every body run lies inside the consumed part of its input;
 * - received() counts exactly the bytes handed out;
 * - a body that fails or completes takes no more input, and finish() is
 *   0 exactly when the body is complete (or read until EOF);
 * - a Content-Length body is never longer than its length, and complete
 *   exactly when it has all of it; no-body framings hand out nothing; a
 *   chunked body is shorter than its input. */
#include <stdlib.h>
#include <string.h>

#include "wsk/http.h"

#define BODY_CAP (1u << 16)

static void check(bool ok)
{
    if (!ok)
        abort();
}

struct run {
    uint8_t body[BODY_CAP]; /* the first BODY_CAP bytes of the body */
    size_t body_len;
    uint64_t received;
    size_t consumed;
    bool failed;
    bool done;
    int finish;
};

static uint64_t next_rand(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

static void add_body(struct run *r, const uint8_t *p, size_t n)
{
    if (n == 0)
        return; /* p may be NULL */
    size_t room = BODY_CAP - r->body_len;
    memcpy(r->body + r->body_len, p, n < room ? n : room);
    r->body_len += n < room ? n : room;
}

/* step 0: whole; 1: byte by byte; else random sizes. */
static void feed(struct wsk_http_body *b, const uint8_t *in, size_t len, size_t step, uint64_t seed,
                 struct run *r)
{
    size_t off = 0;
    while (off < len && !r->failed) {
        size_t n = step == 0 ? len - off : step == 1 ? 1 : 1 + (size_t)(next_rand(&seed) % 61);
        if (n > len - off)
            n = len - off;
        uint8_t *piece = malloc(n);
        check(piece != NULL);
        memcpy(piece, in + off, n);
        size_t at = 0;
        while (at < n) {
            const uint8_t *p;
            size_t plen;
            uint64_t before = wsk_http_body_received(b);
            int64_t rv = wsk_http_body_parse(b, piece + at, n - at, &p, &plen);
            if (rv < 0) {
                check(rv == WSK_EHTTP && p == NULL && plen == 0);
                check(wsk_http_body_received(b) == before);
                r->failed = true;
                break;
            }
            check((size_t)rv <= n - at);
            check(wsk_http_body_received(b) == before + plen);
            if (plen)
                check(p >= piece + at && p + plen <= piece + at + (size_t)rv);
            else
                check(p == NULL);
            add_body(r, p, plen);
            at += (size_t)rv;
            r->consumed += (size_t)rv;
            if (rv == 0) {
                check(wsk_http_body_is_done(b));
                break;
            }
        }
        free(piece);
        if (at < n)
            break;
        off += n;
    }
    if (r->failed) {
        const uint8_t *p;
        size_t plen;
        check(wsk_http_body_parse(b, in, len, &p, &plen) == WSK_EHTTP);
        check(!wsk_http_body_is_done(b));
    }
    r->done = wsk_http_body_is_done(b);
    r->received = wsk_http_body_received(b);
    r->finish = wsk_http_body_finish(b);
    check(wsk_http_body_finish(b) == r->finish);
}

static void decode(struct wsk_http_body *b, const uint8_t *in, size_t len, size_t step,
                   struct run *r)
{
    size_t off = 0;
    while (off < len && !r->failed) {
        size_t n = step && step < len - off ? step : len - off;
        uint8_t *piece = malloc(n);
        check(piece != NULL);
        memcpy(piece, in + off, n);
        size_t consumed = 0;
        int64_t rv = wsk_http_body_decode(b, piece, n, &consumed);
        if (rv < 0) {
            check(rv == WSK_EHTTP);
            r->failed = true;
        } else {
            check(consumed <= n && (size_t)rv <= consumed);
            add_body(r, piece, (size_t)rv);
            r->consumed += consumed;
            if (consumed < n && !wsk_http_body_is_done(b)) {
                check(wsk_http_body_decode(b, piece + consumed, n - consumed, &consumed) ==
                      WSK_EHTTP);
                r->failed = true;
            }
        }
        free(piece);
        if (r->failed || consumed < n)
            break;
        off += n;
    }
    r->done = wsk_http_body_is_done(b);
    r->received = wsk_http_body_received(b);
    r->finish = wsk_http_body_finish(b);
}

static struct run runs[5];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const methods[] = {"GET", "HEAD", "CONNECT", "POST"};
    static const char chunked_head[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    if (size < 2)
        return 0;
    const char *method = methods[data[0] & 3];
    uint64_t seed = data[1];
    const uint8_t *msg = data + 2;
    size_t msg_len = size - 2;

    struct wsk_http_response resp;
    struct wsk_http_parser hp;
    wsk_http_parser_init(&hp, 0);
    const uint8_t *in;
    size_t in_len;
    if (data[0] & 0x80) {
        check(wsk_http_response_parse(&hp, chunked_head, sizeof chunked_head - 1, &resp) > 0);
        method = "GET";
        in = msg;
        in_len = msg_len;
    } else {
        int head_len = wsk_http_response_parse(&hp, (const char *)msg, msg_len, &resp);
        if (head_len <= 0)
            return 0;
        in = msg + head_len;
        in_len = msg_len - (size_t)head_len;
    }

    struct wsk_http_body b;
    int init = wsk_http_body_init(&b, &resp, method);
    check(init == 0 || init == WSK_EHTTP);
    enum wsk_http_framing framing = wsk_http_body_framing(&b);
    const struct wsk_slice *cl =
        wsk_http_header_get(resp.headers, resp.num_headers, "Content-Length");
    uint64_t length = 0;
    if (init == 0 && framing == WSK_HTTP_BODY_LENGTH) {
        /* The first number of the first line (there may be empty list
         * elements before it): they all agree. */
        size_t i = 0;
        while (i < cl->len && (cl->ptr[i] < '0' || cl->ptr[i] > '9'))
            i++;
        for (; i < cl->len && cl->ptr[i] >= '0' && cl->ptr[i] <= '9'; i++)
            length = length * 10 + (uint64_t)(cl->ptr[i] - '0');
    }

    for (int k = 0; k < 5; k++) {
        struct run *r = &runs[k];
        r->body_len = r->consumed = 0;
        r->failed = r->done = false;
        check(wsk_http_body_init(&b, &resp, method) == init);
        if (k < 3)
            feed(&b, in, in_len, (size_t)k, seed, r);
        else
            decode(&b, in, in_len, k == 3 ? 0 : 1 + (size_t)(seed % 7), r);

        check(r->failed == runs[0].failed);
        check(r->received == runs[0].received);
        check(r->body_len == (r->received < BODY_CAP ? r->received : BODY_CAP));
        check(memcmp(r->body, runs[0].body, r->body_len) == 0);
        check(r->done == runs[0].done);
        check(r->finish == runs[0].finish);
        if (!r->failed)
            check(r->consumed == runs[0].consumed);

        check(r->finish == 0 || r->finish == WSK_ETRUNCATED || r->finish == WSK_EHTTP);
        check((r->finish == WSK_EHTTP) == (r->failed || init < 0));
        check(!r->done || r->finish == 0);
        check(r->consumed <= in_len);
        if (!r->failed && r->consumed < in_len)
            check(r->done);
        if (init < 0) {
            check(r->failed || in_len == 0);
            check(r->received == 0);
            continue;
        }
        switch (framing) {
        case WSK_HTTP_BODY_NONE:
            check(r->done && r->received == 0 && r->consumed == 0);
            break;
        case WSK_HTTP_BODY_LENGTH:
            check(r->received <= length && r->done == (r->received == length));
            check(r->consumed == r->received);
            break;
        case WSK_HTTP_BODY_CHUNKED:
            check(r->received < r->consumed || (r->received == 0 && r->consumed == 0) || r->failed);
            break;
        case WSK_HTTP_BODY_EOF:
            check(!r->done && r->finish == 0 && r->received == in_len && r->consumed == in_len);
            break;
        }
    }
    return 0;
}
