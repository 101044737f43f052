/* The I/O-free session: two sessions (client and server) talk through
 * memory. Messages whole and split at every byte, control frames inside
 * fragmented messages, pongs held under back-pressure, the close
 * handshake from both sides, protocol errors and their close codes,
 * permessage-deflate both ways, handlers that stop the feed, and reading
 * straight into the message buffer. */
#include <errno.h>

#include "wsk/deflate.h"
#include "wsk/session.h"
#include "wsk_test.h"

/* ---- one endpoint: its session, what it sent, what it saw --------------- */

#define MAX_EVENTS 64

struct event {
    char kind; /* 'm' message, 'p' ping, 'o' pong, 'c' close */
    uint8_t opcode;
    unsigned code;
    size_t len;
    uint8_t *data;
};

struct end {
    struct wsk_session s;
    uint8_t *out; /* bytes the session sent */
    size_t out_len, out_cap;
    size_t send_calls;
    int send_rv;    /* what send returns (0, WSK_EBACKPRESSURE, an error) */
    int stop_after; /* event handlers return 1 after this many events (-1 never) */
    struct event ev[MAX_EVENTS];
    size_t num_ev;
};

static int record(struct end *e, char kind, uint8_t opcode, unsigned code, const uint8_t *data,
                  size_t len)
{
    if (e->num_ev < MAX_EVENTS) {
        struct event *v = &e->ev[e->num_ev];
        v->kind = kind;
        v->opcode = opcode;
        v->code = code;
        v->len = len;
        v->data = malloc(len ? len : 1);
        if (len)
            memcpy(v->data, data, len);
    }
    e->num_ev++;
    return e->stop_after >= 0 && (int)e->num_ev >= e->stop_after;
}

static int h_message(void *ud, enum wsk_opcode op, const uint8_t *data, size_t len)
{
    CHECK(data != NULL);
    return record(ud, 'm', (uint8_t)op, 0, data, len);
}

static int h_ping(void *ud, const uint8_t *data, size_t len)
{
    return record(ud, 'p', WSK_OP_PING, 0, data, len);
}

static int h_pong(void *ud, const uint8_t *data, size_t len)
{
    return record(ud, 'o', WSK_OP_PONG, 0, data, len);
}

static int h_close(void *ud, unsigned code, const uint8_t *reason, size_t len)
{
    return record(ud, 'c', WSK_OP_CLOSE, code, reason, len);
}

static int h_send(void *ud, const uint8_t *data, size_t len)
{
    struct end *e = ud;
    e->send_calls++;
    if (e->send_rv < 0 && e->send_rv != WSK_EBACKPRESSURE)
        return e->send_rv;
    if (e->out_len + len > e->out_cap) {
        size_t cap = e->out_cap ? e->out_cap : 1024;
        while (cap < e->out_len + len)
            cap *= 2;
        e->out = realloc(e->out, cap);
        e->out_cap = cap;
    }
    memcpy(e->out + e->out_len, data, len);
    e->out_len += len;
    return e->send_rv;
}

static const struct wsk_session_handlers H = {h_message, h_ping, h_pong, h_close, h_send};

static void end_init(struct end *e, enum wsk_role role, struct wsk_deflate *d)
{
    memset(e, 0, sizeof *e);
    e->stop_after = -1;
    struct wsk_session_config cfg;
    wsk_session_config_init(&cfg);
    cfg.role = role;
    cfg.deflate = d;
    cfg.max_message = 1 << 20;
    wsk_session_init(&e->s, &cfg);
}

static void end_free(struct end *e)
{
    wsk_session_clear(&e->s);
    size_t n = e->num_ev < MAX_EVENTS ? e->num_ev : MAX_EVENTS;
    for (size_t i = 0; i < n; i++)
        free(e->ev[i].data);
    free(e->out);
}

/* Moves what from sent to to, in pieces of step bytes (0: at once).
 * Returns the last feed's result, or the first error. */
static int64_t pass(struct end *from, struct end *to, size_t step)
{
    size_t n = from->out_len, off = 0;
    uint8_t *buf = malloc(n ? n : 1);
    memcpy(buf, from->out, n);
    from->out_len = 0;
    int64_t rv = 0;
    while (off < n) {
        size_t k = step && n - off > step ? step : n - off;
        rv = wsk_session_feed(&to->s, buf + off, k, &H, to);
        if (rv < 0)
            break;
        CHECK(rv == (int64_t)k || (wsk_session_state(&to->s) & WSK_SESSION_GOT_CLOSE));
        off += k;
        if (wsk_session_state(&to->s) & WSK_SESSION_GOT_CLOSE)
            break;
    }
    free(buf);
    return rv;
}

/* Appends a raw frame to e's output, masked when e is a client. */
static void raw_frame(struct end *e, uint8_t first_byte, const void *payload, size_t len,
                      bool masked)
{
    uint8_t buf[WSK_FRAME_HEADER_MAX + 512];
    const uint8_t key[4] = {1, 2, 3, 4};
    int64_t n = wsk_frame_encode(buf, sizeof buf, first_byte, payload, len, masked ? key : NULL);
    CHECK(n > 0);
    h_send(e, buf, (size_t)n);
}

/* ---- tests --------------------------------------------------------------- */

static void test_messages_any_split(void)
{
    static const char *const texts[] = {"", "a", "hello, world", "h\xc3\xa9llo \xe2\x82\xac"};
    size_t steps[] = {0, 1, 2, 3, 7};
    for (size_t t = 0; t < sizeof texts / sizeof *texts; t++) {
        for (size_t k = 0; k < sizeof steps / sizeof *steps; k++) {
            struct end c, s;
            end_init(&c, WSK_ROLE_CLIENT, NULL);
            end_init(&s, WSK_ROLE_SERVER, NULL);
            size_t len = strlen(texts[t]);
            CHECK_EQ_INT(wsk_session_send(&c.s, WSK_OP_TEXT, texts[t], len, &H, &c), 0);
            CHECK_EQ_INT(wsk_session_send(&c.s, WSK_OP_BINARY, "\0\1\2", 3, &H, &c), 0);
            CHECK(pass(&c, &s, steps[k]) >= 0);
            CHECK_EQ_INT(s.num_ev, 2);
            CHECK_EQ_INT(s.ev[0].opcode, WSK_OP_TEXT);
            CHECK_EQ_INT(s.ev[0].len, len);
            CHECK_MEM(s.ev[0].data, texts[t], len);
            CHECK_EQ_INT(s.ev[1].opcode, WSK_OP_BINARY);
            CHECK_MEM(s.ev[1].data, "\0\1\2", 3);
            /* And back: the server's frames are unmasked, the client takes them. */
            CHECK_EQ_INT(wsk_session_send(&s.s, WSK_OP_TEXT, texts[t], len, &H, &s), 0);
            CHECK(pass(&s, &c, steps[k]) >= 0);
            CHECK_EQ_INT(c.num_ev, 1);
            CHECK_EQ_INT(c.ev[0].len, len);
            end_free(&c);
            end_free(&s);
        }
    }
}

static void test_large_message(void)
{
    size_t len = 300 * 1000;
    uint8_t *big = malloc(len);
    for (size_t i = 0; i < len; i++)
        big[i] = (uint8_t)(i * 7 + (i >> 9));
    struct end c, s;
    end_init(&c, WSK_ROLE_CLIENT, NULL);
    end_init(&s, WSK_ROLE_SERVER, NULL);
    CHECK_EQ_INT(wsk_session_send(&c.s, WSK_OP_BINARY, big, len, &H, &c), 0);
    CHECK(c.send_calls > 1); /* masked in pieces */
    CHECK(pass(&c, &s, 10000) >= 0);
    CHECK_EQ_INT(s.num_ev, 1);
    CHECK_EQ_INT(s.ev[0].len, len);
    CHECK_MEM(s.ev[0].data, big, len);
    free(big);
    end_free(&c);
    end_free(&s);
}

/* A fragmented text with a ping between its frames, a UTF-8 character cut
 * by the fragment boundary, everything fed a byte at a time. */
static void test_fragments_and_control(void)
{
    struct end c, s;
    end_init(&c, WSK_ROLE_CLIENT, NULL);
    end_init(&s, WSK_ROLE_SERVER, NULL);
    raw_frame(&c, WSK_OP_TEXT, "caf\xc3", 4, true);
    raw_frame(&c, WSK_FRAME_FIN | WSK_OP_PING, "are you there", 13, true);
    raw_frame(&c, WSK_OP_CONT, "\xa9 ", 2, true);
    raw_frame(&c, WSK_FRAME_FIN | WSK_OP_CONT, "ok", 2, true);
    CHECK(pass(&c, &s, 1) >= 0);
    CHECK_EQ_INT(s.num_ev, 2);
    CHECK(s.ev[0].kind == 'p');
    CHECK_MEM(s.ev[0].data, "are you there", 13);
    CHECK(s.ev[1].kind == 'm');
    CHECK_EQ_INT(s.ev[1].len, 8);
    CHECK_MEM(s.ev[1].data, "caf\xc3\xa9 ok", 8);
    /* The pong went out: the client sees it. */
    CHECK(pass(&s, &c, 0) >= 0);
    CHECK_EQ_INT(c.num_ev, 1);
    CHECK(c.ev[0].kind == 'o');
    CHECK_MEM(c.ev[0].data, "are you there", 13);
    end_free(&c);
    end_free(&s);
}

/* Under back-pressure a thousand pings cost one held pong, for the latest
 * ping, sent on wsk_session_drained(). */
static void test_pongs_held_under_backpressure(void)
{
    struct end c, s;
    end_init(&c, WSK_ROLE_CLIENT, NULL);
    end_init(&s, WSK_ROLE_SERVER, NULL);
    s.send_rv = WSK_EBACKPRESSURE;
    for (int i = 0; i < 1000; i++) {
        char p[16];
        int n = snprintf(p, sizeof p, "ping %d", i);
        raw_frame(&c, WSK_FRAME_FIN | WSK_OP_PING, p, (size_t)n, true);
    }
    CHECK(pass(&c, &s, 0) >= 0);
    CHECK_EQ_INT(s.num_ev, 1000);
    CHECK_EQ_INT(s.send_calls, 1); /* the first pong, then blocked */
    CHECK(wsk_session_state(&s.s) & WSK_SESSION_BLOCKED);
    size_t before = s.out_len;
    s.send_rv = 0;
    CHECK_EQ_INT(wsk_session_drained(&s.s, &H, &s), 0);
    CHECK_EQ_INT(s.send_calls, 2);
    CHECK(!(wsk_session_state(&s.s) & WSK_SESSION_BLOCKED));
    CHECK_EQ_INT(s.out_len - before, 2 + 8);
    CHECK_MEM(s.out + before + 2, "ping 999", 8);
    /* Nothing more is held. */
    CHECK_EQ_INT(wsk_session_drained(&s.s, &H, &s), 0);
    CHECK_EQ_INT(s.send_calls, 2);
    /* A send that hits back-pressure says so, and blocks pongs again. */
    s.send_rv = WSK_EBACKPRESSURE;
    CHECK_EQ_INT(wsk_session_send(&s.s, WSK_OP_TEXT, "x", 1, &H, &s), WSK_EBACKPRESSURE);
    CHECK(wsk_session_state(&s.s) & WSK_SESSION_BLOCKED);
    end_free(&c);
    end_free(&s);
}

static void test_close_handshake(void)
{
    struct end c, s;
    end_init(&c, WSK_ROLE_CLIENT, NULL);
    end_init(&s, WSK_ROLE_SERVER, NULL);
    CHECK_EQ_INT(wsk_session_close(&s.s, 1001, "bye", 3, &H, &s), 0);
    CHECK(wsk_session_state(&s.s) & WSK_SESSION_SENT_CLOSE);
    /* Nothing after our close. */
    CHECK_EQ_INT(wsk_session_send(&s.s, WSK_OP_TEXT, "x", 1, &H, &s), WSK_ESTATE);
    CHECK_EQ_INT(wsk_session_ping(&s.s, "x", 1, &H, &s), WSK_ESTATE);
    CHECK_EQ_INT(wsk_session_close(&s.s, 1000, NULL, 0, &H, &s), WSK_ESTATE);
    CHECK(pass(&s, &c, 1) >= 0);
    CHECK_EQ_INT(c.num_ev, 1);
    CHECK(c.ev[0].kind == 'c');
    CHECK_EQ_INT(c.ev[0].code, 1001);
    CHECK_MEM(c.ev[0].data, "bye", 3);
    unsigned cs = wsk_session_state(&c.s);
    CHECK(cs & WSK_SESSION_GOT_CLOSE);
    CHECK(cs & WSK_SESSION_SENT_CLOSE);
    CHECK(cs & WSK_SESSION_PEER_CLOSED);
    CHECK_EQ_INT(wsk_session_close_code(&c.s), 1001);
    /* The client's input is over: more bytes are not consumed. */
    uint8_t more[] = {0x81, 0x00};
    CHECK_EQ_INT(wsk_session_feed(&c.s, more, 2, &H, &c), 0);
    /* A ping in the server's input after its close gets no pong; the echo
     * then ends the handshake. */
    uint8_t ping[16];
    const uint8_t key[4] = {9, 9, 9, 9};
    int64_t n = wsk_frame_encode(ping, sizeof ping, WSK_FRAME_FIN | WSK_OP_PING,
                                 (const uint8_t *)"p", 1, key);
    size_t before = s.out_len;
    CHECK_EQ_INT(wsk_session_feed(&s.s, ping, (size_t)n, &H, &s), n);
    CHECK_EQ_INT(s.out_len, before);
    CHECK(pass(&c, &s, 0) >= 0);
    CHECK(!(wsk_session_state(&s.s) & WSK_SESSION_PEER_CLOSED));
    CHECK(wsk_session_state(&s.s) & WSK_SESSION_GOT_CLOSE);
    CHECK_EQ_INT(s.out_len, before); /* no second close */
    CHECK(s.ev[s.num_ev - 1].kind == 'c');
    CHECK_EQ_INT(s.ev[s.num_ev - 1].code, 1001);
    end_free(&c);
    end_free(&s);

    /* An empty close is echoed empty and reported as 1005. */
    end_init(&c, WSK_ROLE_CLIENT, NULL);
    end_init(&s, WSK_ROLE_SERVER, NULL);
    raw_frame(&c, WSK_FRAME_FIN | WSK_OP_CLOSE, NULL, 0, true);
    CHECK(pass(&c, &s, 0) >= 0);
    CHECK_EQ_INT(s.ev[0].code, 1005);
    CHECK_EQ_INT(s.out_len, 2);
    CHECK_EQ_INT(s.out[0], 0x88);
    CHECK_EQ_INT(s.out[1], 0);
    end_free(&c);
    end_free(&s);
}

/* Each violation: the error, the close code sent, nothing after it. */
static void test_errors(void)
{
    struct {
        enum wsk_role peer;
        uint8_t first_byte;
        const char *payload;
        bool masked;
        int error;
        unsigned code;
    } cases[] = {
        {WSK_ROLE_CLIENT, WSK_FRAME_FIN | WSK_OP_TEXT, "x", false, WSK_EPROTO, 1002}, /* unmasked */
        {WSK_ROLE_CLIENT, WSK_FRAME_FIN | WSK_OP_TEXT, "\xc3\x28", true, WSK_EUTF8, 1007},
        {WSK_ROLE_CLIENT, WSK_FRAME_FIN | WSK_FRAME_RSV1 | WSK_OP_TEXT, "x", true, WSK_EPROTO,
         1002}, /* RSV1 without deflate */
        {WSK_ROLE_SERVER, WSK_FRAME_FIN | WSK_OP_BINARY, "x", true, WSK_EPROTO, 1002}, /* masked */
        {WSK_ROLE_CLIENT, WSK_FRAME_FIN | 0x3, "x", true, WSK_EPROTO, 1002}, /* reserved opcode */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct end p, me;
        end_init(&p, cases[i].peer, NULL);
        end_init(&me, cases[i].peer == WSK_ROLE_CLIENT ? WSK_ROLE_SERVER : WSK_ROLE_CLIENT, NULL);
        raw_frame(&p, cases[i].first_byte, cases[i].payload, strlen(cases[i].payload),
                  cases[i].masked);
        raw_frame(&p, WSK_FRAME_FIN | WSK_OP_PING, "p", 1, cases[i].masked);
        CHECK_EQ_INT(pass(&p, &me, 0), cases[i].error);
        CHECK_EQ_INT(wsk_session_close_code(&me.s), cases[i].code);
        CHECK(wsk_session_state(&me.s) & WSK_SESSION_FAILED);
        CHECK_EQ_INT(me.num_ev, 0);
        /* What went out is one close frame with that code. */
        CHECK(me.out_len >= 4);
        if (me.out_len >= 4) {
            CHECK_EQ_INT(me.out[0], 0x88);
            size_t at = (me.out[1] & 0x80) ? 6 : 2;
            CHECK_EQ_INT(me.out_len, at + (me.out[1] & 0x7f));
        }
        uint8_t more[] = {0x89, 0x80, 0, 0, 0, 0};
        CHECK_EQ_INT(wsk_session_feed(&me.s, more, sizeof more, &H, &me), 0);
        end_free(&p);
        end_free(&me);
    }

    /* Too big: 1009. */
    struct end c, s;
    end_init(&c, WSK_ROLE_CLIENT, NULL);
    end_init(&s, WSK_ROLE_SERVER, NULL);
    size_t len = (1 << 20) + 1;
    uint8_t *big = calloc(1, len);
    CHECK_EQ_INT(wsk_session_send(&c.s, WSK_OP_BINARY, big, len, &H, &c), 0);
    CHECK_EQ_INT(pass(&c, &s, 0), WSK_ETOOBIG);
    CHECK_EQ_INT(wsk_session_close_code(&s.s), 1009);
    free(big);
    end_free(&c);
    end_free(&s);

    /* A send handler that fails fails the session. */
    end_init(&c, WSK_ROLE_CLIENT, NULL);
    c.send_rv = -ENOMEM;
    CHECK_EQ_INT(wsk_session_send(&c.s, WSK_OP_TEXT, "x", 1, &H, &c), -ENOMEM);
    CHECK(wsk_session_state(&c.s) & WSK_SESSION_FAILED);
    CHECK_EQ_INT(wsk_session_send(&c.s, WSK_OP_TEXT, "x", 1, &H, &c), WSK_ESTATE);
    CHECK_EQ_INT(wsk_session_send(&c.s, WSK_OP_TEXT, "\xff", 1, &H, &c), WSK_ESTATE);
    CHECK_EQ_INT(wsk_session_send(&c.s, WSK_OP_CLOSE, "x", 1, &H, &c), -EINVAL);
    end_free(&c);
}

static void deflate_pair(struct wsk_deflate **cd, struct wsk_deflate **sd, bool no_takeover)
{
    struct wsk_deflate_params p = {no_takeover, no_takeover, 15, 15, 0};
    CHECK_EQ_INT(wsk_deflate_new(cd, &p, WSK_ROLE_CLIENT), 0);
    CHECK_EQ_INT(wsk_deflate_new(sd, &p, WSK_ROLE_SERVER), 0);
}

static void test_deflate(void)
{
    for (int takeover = 0; takeover < 2; takeover++) {
        struct wsk_deflate *cd, *sd;
        deflate_pair(&cd, &sd, takeover);
        struct end c, s;
        end_init(&c, WSK_ROLE_CLIENT, cd);
        end_init(&s, WSK_ROLE_SERVER, sd);
        /* Text that compresses well, and bytes that do not (several
         * compressed frames), each way, fed in odd pieces. */
        size_t len = 200 * 1000;
        uint8_t *text = malloc(len), *noise = malloc(len);
        uint32_t x = 12345;
        for (size_t i = 0; i < len; i++) {
            text[i] = (uint8_t) "abcdefgh "[i % 9];
            x = x * 1103515245 + 12345;
            noise[i] = (uint8_t)(x >> 16);
        }
        for (int round = 0; round < 2; round++) {
            CHECK_EQ_INT(wsk_session_send(&c.s, WSK_OP_TEXT, text, len, &H, &c), 0);
            CHECK_EQ_INT(wsk_session_send(&c.s, WSK_OP_BINARY, noise, len, &H, &c), 0);
            CHECK_EQ_INT(wsk_session_send(&c.s, WSK_OP_TEXT, "short", 5, &H, &c), 0);
            CHECK(c.out[0] == (0x80 | 0x40 | WSK_OP_TEXT) || round); /* RSV1 on the first */
            CHECK(pass(&c, &s, 4097) >= 0);
            CHECK_EQ_INT(wsk_session_send(&s.s, WSK_OP_BINARY, noise, len, &H, &s), 0);
            CHECK(pass(&s, &c, 333) >= 0);
        }
        CHECK_EQ_INT(s.num_ev, 6);
        for (size_t i = 0; i < 6 && i < s.num_ev; i += 3) {
            CHECK_EQ_INT(s.ev[i].len, len);
            CHECK_MEM(s.ev[i].data, text, len);
            CHECK_MEM(s.ev[i + 1].data, noise, len);
            CHECK_EQ_INT(s.ev[i + 2].len, 5);
        }
        CHECK_EQ_INT(c.num_ev, 2);
        CHECK_MEM(c.ev[1].data, noise, len);
        /* A broken compressed message: 1007. */
        raw_frame(&c, WSK_FRAME_FIN | WSK_FRAME_RSV1 | WSK_OP_BINARY, "\xff\xff\xff", 3, true);
        CHECK_EQ_INT(pass(&c, &s, 0), WSK_EDEFLATE);
        CHECK_EQ_INT(wsk_session_close_code(&s.s), 1007);
        free(text);
        free(noise);
        end_free(&c);
        end_free(&s);
        wsk_deflate_free(cd);
        wsk_deflate_free(sd);
    }
}

/* A handler that returns non-zero stops the feed after its event; the rest
 * is fed later. */
static void test_stop(void)
{
    struct end c, s;
    end_init(&c, WSK_ROLE_CLIENT, NULL);
    end_init(&s, WSK_ROLE_SERVER, NULL);
    CHECK_EQ_INT(wsk_session_send(&c.s, WSK_OP_TEXT, "one", 3, &H, &c), 0);
    size_t first = c.out_len;
    CHECK_EQ_INT(wsk_session_send(&c.s, WSK_OP_TEXT, "two", 3, &H, &c), 0);
    s.stop_after = 1;
    CHECK_EQ_INT(wsk_session_feed(&s.s, c.out, c.out_len, &H, &s), first);
    CHECK_EQ_INT(s.num_ev, 1);
    s.stop_after = -1;
    CHECK_EQ_INT(wsk_session_feed(&s.s, c.out + first, c.out_len - first, &H, &s),
                 c.out_len - first);
    CHECK_EQ_INT(s.num_ev, 2);
    CHECK_MEM(s.ev[1].data, "two", 3);
    end_free(&c);
    end_free(&s);
}

/* The rest of a big frame read straight into the message buffer. */
static void test_read_target(void)
{
    struct end c, s;
    end_init(&c, WSK_ROLE_CLIENT, NULL);
    end_init(&s, WSK_ROLE_SERVER, NULL);
    size_t len = 100000;
    uint8_t *big = malloc(len);
    for (size_t i = 0; i < len; i++)
        big[i] = (uint8_t)i;
    CHECK_EQ_INT(wsk_session_send(&c.s, WSK_OP_BINARY, big, len, &H, &c), 0);
    size_t cap = 0;
    CHECK(wsk_session_read_target(&s.s, 1, &cap) == NULL); /* no frame under way */
    CHECK_EQ_INT(wsk_session_feed(&s.s, c.out, 1000, &H, &s), 1000);
    size_t left = c.out_len - 1000;
    CHECK(wsk_session_read_target(&s.s, left + 1, &cap) == NULL); /* under min */
    uint8_t *p = wsk_session_read_target(&s.s, 1024, &cap);
    CHECK(p != NULL);
    CHECK_EQ_INT(cap, left);
    if (p) {
        memcpy(p, c.out + 1000, left);
        CHECK_EQ_INT(wsk_session_feed(&s.s, p, left, &H, &s), left);
    }
    CHECK_EQ_INT(s.num_ev, 1);
    CHECK_EQ_INT(s.ev[0].len, len);
    CHECK_MEM(s.ev[0].data, big, len);
    free(big);
    end_free(&c);
    end_free(&s);
}

int main(void)
{
    WSK_RUN(test_messages_any_split);
    WSK_RUN(test_large_message);
    WSK_RUN(test_fragments_and_control);
    WSK_RUN(test_pongs_held_under_backpressure);
    WSK_RUN(test_close_handshake);
    WSK_RUN(test_errors);
    WSK_RUN(test_deflate);
    WSK_RUN(test_stop);
    WSK_RUN(test_read_target);
    WSK_TEST_END();
}
