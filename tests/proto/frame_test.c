/* Frame parser and encoder: RFC 6455 section 5.7 examples, every rule of
 * section 5, every close code, limits, and the same results whatever the
 * input splits. */
#include "wsk/proto.h"
#include "wsk_test.h"

/* ---- a recorder that reassembles messages from chunks ------------------- */

#define MAX_MSGS 64

struct msg {
    uint8_t opcode;
    bool compressed;
    uint16_t close_code;
    size_t len;
    uint8_t *data;
};

struct record {
    struct msg msgs[MAX_MSGS];
    size_t num_msgs;
    int error;          /* 0 or the parser's error */
    uint16_t err_close; /* close code that answers it */
    uint8_t *cur;       /* message being reassembled */
    size_t cur_len;
};

static void record_free(struct record *r)
{
    for (size_t i = 0; i < r->num_msgs; i++)
        free(r->msgs[i].data);
    free(r->cur);
    memset(r, 0, sizeof *r);
}

static void record_chunk(struct record *r, const struct wsk_frame_chunk *c)
{
    if (c->is_message_start && !(c->msg_opcode & 0x8)) {
        free(r->cur);
        r->cur = NULL;
        r->cur_len = 0;
    }
    if (c->msg_opcode & 0x8) {
        /* Control frames interleave: reassemble them apart from data. */
        static uint8_t ctl[125];
        static size_t ctl_len;
        if (c->is_frame_start)
            ctl_len = 0;
        memcpy(ctl + ctl_len, c->data, c->len);
        ctl_len += c->len;
        if (c->is_frame_end && r->num_msgs < MAX_MSGS) {
            struct msg *m = &r->msgs[r->num_msgs++];
            m->opcode = c->msg_opcode;
            m->compressed = false;
            m->close_code = c->close_code;
            m->len = ctl_len;
            m->data = malloc(ctl_len + 1);
            memcpy(m->data, ctl, ctl_len);
        }
        return;
    }
    r->cur = realloc(r->cur, r->cur_len + c->len + 1);
    if (c->len)
        memcpy(r->cur + r->cur_len, c->data, c->len);
    r->cur_len += c->len;
    if (c->is_message_end && r->num_msgs < MAX_MSGS) {
        struct msg *m = &r->msgs[r->num_msgs++];
        m->opcode = c->msg_opcode;
        m->compressed = c->is_compressed;
        m->close_code = 0;
        m->len = r->cur_len;
        m->data = r->cur;
        r->cur = NULL;
        r->cur_len = 0;
    }
}

enum split { SPLIT_WHOLE, SPLIT_BYTES, SPLIT_RANDOM };

/* Feeds a private copy of in[0..len) to a fresh parser, cut as split says. */
static void run(const struct wsk_frame_config *cfg, const uint8_t *in, size_t len, enum split split,
                uint64_t seed, struct record *r)
{
    memset(r, 0, sizeof *r);
    uint8_t *buf = malloc(len ? len : 1);
    memcpy(buf, in, len);
    struct wsk_frame_parser p;
    wsk_frame_parser_init(&p, cfg);
    size_t pos = 0;
    while (pos < len) {
        size_t piece = len - pos;
        if (split == SPLIT_BYTES)
            piece = 1;
        else if (split == SPLIT_RANDOM)
            piece = 1 + wsk_test_rand(&seed) % (piece < 40 ? piece : 40);
        size_t end = pos + piece;
        /* Consume the piece completely, one chunk per call. */
        while (pos < end) {
            struct wsk_frame_chunk c;
            bool has;
            int64_t n = wsk_frame_parse(&p, buf + pos, end - pos, &c, &has);
            if (n < 0) {
                r->error = (int)n;
                r->err_close = wsk_frame_parser_close_code(&p);
                free(buf);
                return;
            }
            pos += (size_t)n;
            if (has)
                record_chunk(r, &c);
            else if (n == 0)
                break;
        }
    }
    free(buf);
}

static bool records_equal(const struct record *a, const struct record *b)
{
    if (a->error != b->error || a->err_close != b->err_close || a->num_msgs != b->num_msgs)
        return false;
    for (size_t i = 0; i < a->num_msgs; i++) {
        const struct msg *x = &a->msgs[i], *y = &b->msgs[i];
        if (x->opcode != y->opcode || x->compressed != y->compressed ||
            x->close_code != y->close_code || x->len != y->len ||
            (x->len && memcmp(x->data, y->data, x->len)))
            return false;
    }
    return true;
}

/* Parses in with every split strategy, checks they agree, returns the whole
 * parse in *out (caller frees). */
static void parse_all_ways(const struct wsk_frame_config *cfg, const uint8_t *in, size_t len,
                           struct record *out)
{
    run(cfg, in, len, SPLIT_WHOLE, 0, out);
    struct record other;
    run(cfg, in, len, SPLIT_BYTES, 0, &other);
    CHECK(records_equal(out, &other));
    record_free(&other);
    for (uint64_t seed = 1; seed <= 8; seed++) {
        run(cfg, in, len, SPLIT_RANDOM, seed * 7919, &other);
        CHECK(records_equal(out, &other));
        record_free(&other);
    }
}

static void cfg_role(struct wsk_frame_config *cfg, enum wsk_role role)
{
    wsk_frame_config_init(cfg);
    cfg->role = role;
}

/* Expects in to fail with err and close code, all ways. */
static void expect_error(enum wsk_role role, const uint8_t *in, size_t len, int err,
                         uint16_t close_code)
{
    struct wsk_frame_config cfg;
    cfg_role(&cfg, role);
    struct record r;
    parse_all_ways(&cfg, in, len, &r);
    CHECK_EQ_INT(r.error, err);
    CHECK_EQ_INT(r.err_close, close_code);
    record_free(&r);
}

static void expect_ok(enum wsk_role role, const uint8_t *in, size_t len, size_t num_msgs)
{
    struct wsk_frame_config cfg;
    cfg_role(&cfg, role);
    struct record r;
    parse_all_ways(&cfg, in, len, &r);
    CHECK_EQ_INT(r.error, 0);
    CHECK_EQ_INT(r.num_msgs, num_msgs);
    record_free(&r);
}

/* ---- RFC 6455 section 5.7 ---------------------------------------------- */

static const uint8_t hello_unmasked[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
static const uint8_t hello_masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                       0x7f, 0x9f, 0x4d, 0x51, 0x58};
static const uint8_t hello_fragmented[] = {0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f};
static const uint8_t ping_hello[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
static const uint8_t pong_hello_masked[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                            0x7f, 0x9f, 0x4d, 0x51, 0x58};
static const uint8_t mask_key[4] = {0x37, 0xfa, 0x21, 0x3d};

static void test_rfc_examples_parse(void)
{
    struct wsk_frame_config client, server;
    cfg_role(&client, WSK_ROLE_CLIENT);
    cfg_role(&server, WSK_ROLE_SERVER);
    struct record r;

    parse_all_ways(&client, hello_unmasked, sizeof hello_unmasked, &r);
    CHECK_EQ_INT(r.error, 0);
    CHECK_EQ_INT(r.num_msgs, 1);
    CHECK_EQ_INT(r.msgs[0].opcode, WSK_OP_TEXT);
    CHECK_EQ_INT(r.msgs[0].len, 5);
    CHECK_MEM(r.msgs[0].data, "Hello", 5);
    record_free(&r);

    parse_all_ways(&server, hello_masked, sizeof hello_masked, &r);
    CHECK_EQ_INT(r.error, 0);
    CHECK_EQ_INT(r.num_msgs, 1);
    CHECK_MEM(r.msgs[0].data, "Hello", 5);
    record_free(&r);

    parse_all_ways(&client, hello_fragmented, sizeof hello_fragmented, &r);
    CHECK_EQ_INT(r.error, 0);
    CHECK_EQ_INT(r.num_msgs, 1);
    CHECK_EQ_INT(r.msgs[0].opcode, WSK_OP_TEXT);
    CHECK_EQ_INT(r.msgs[0].len, 5);
    CHECK_MEM(r.msgs[0].data, "Hello", 5);
    record_free(&r);

    parse_all_ways(&client, ping_hello, sizeof ping_hello, &r);
    CHECK_EQ_INT(r.num_msgs, 1);
    CHECK_EQ_INT(r.msgs[0].opcode, WSK_OP_PING);
    CHECK_MEM(r.msgs[0].data, "Hello", 5);
    record_free(&r);

    parse_all_ways(&server, pong_hello_masked, sizeof pong_hello_masked, &r);
    CHECK_EQ_INT(r.num_msgs, 1);
    CHECK_EQ_INT(r.msgs[0].opcode, WSK_OP_PONG);
    CHECK_MEM(r.msgs[0].data, "Hello", 5);
    record_free(&r);

    /* 256 bytes and 64 KiB binary messages in a single unmasked frame. */
    size_t sizes[] = {256, 65536};
    for (size_t s = 0; s < 2; s++) {
        size_t n = sizes[s];
        size_t hlen = n == 256 ? 4 : 10;
        uint8_t *f = malloc(hlen + n);
        f[0] = 0x82;
        if (n == 256) {
            memcpy(f + 1, "\x7e\x01\x00", 3);
        } else {
            memcpy(f + 1, "\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 9);
        }
        for (size_t i = 0; i < n; i++)
            f[hlen + i] = (uint8_t)(i * 31);
        run(&client, f, hlen + n, SPLIT_WHOLE, 0, &r);
        CHECK_EQ_INT(r.error, 0);
        CHECK_EQ_INT(r.num_msgs, 1);
        CHECK_EQ_INT(r.msgs[0].opcode, WSK_OP_BINARY);
        CHECK_EQ_INT(r.msgs[0].len, n);
        CHECK_MEM(r.msgs[0].data, f + hlen, n);
        record_free(&r);
        struct record r2;
        run(&client, f, hlen + n, SPLIT_RANDOM, 99, &r2);
        run(&client, f, hlen + n, SPLIT_WHOLE, 0, &r);
        CHECK(records_equal(&r, &r2));
        record_free(&r);
        record_free(&r2);
        free(f);
    }
}

static void test_rfc_examples_encode(void)
{
    uint8_t out[64];
    CHECK_EQ_INT(wsk_frame_encode(out, sizeof out, WSK_FRAME_FIN | WSK_OP_TEXT,
                                  (const uint8_t *)"Hello", 5, NULL),
                 sizeof hello_unmasked);
    CHECK_MEM(out, hello_unmasked, sizeof hello_unmasked);
    CHECK_EQ_INT(wsk_frame_encode(out, sizeof out, WSK_FRAME_FIN | WSK_OP_TEXT,
                                  (const uint8_t *)"Hello", 5, mask_key),
                 sizeof hello_masked);
    CHECK_MEM(out, hello_masked, sizeof hello_masked);
    int64_t n = wsk_frame_encode(out, sizeof out, WSK_OP_TEXT, (const uint8_t *)"Hel", 3, NULL);
    n += wsk_frame_encode(out + n, sizeof out - (size_t)n, WSK_FRAME_FIN | WSK_OP_CONT,
                          (const uint8_t *)"lo", 2, NULL);
    CHECK_EQ_INT(n, sizeof hello_fragmented);
    CHECK_MEM(out, hello_fragmented, sizeof hello_fragmented);
    CHECK_EQ_INT(wsk_frame_encode(out, sizeof out, WSK_FRAME_FIN | WSK_OP_PONG,
                                  (const uint8_t *)"Hello", 5, mask_key),
                 sizeof pong_hello_masked);
    CHECK_MEM(out, pong_hello_masked, sizeof pong_hello_masked);

    uint8_t hdr[WSK_FRAME_HEADER_MAX];
    CHECK_EQ_INT(wsk_frame_header_encode(hdr, 0x82, 125, NULL), 2);
    CHECK_EQ_INT(hdr[1], 125);
    CHECK_EQ_INT(wsk_frame_header_encode(hdr, 0x82, 126, NULL), 4);
    CHECK_MEM(hdr, "\x82\x7e\x00\x7e", 4);
    CHECK_EQ_INT(wsk_frame_header_encode(hdr, 0x82, 256, NULL), 4);
    CHECK_MEM(hdr, "\x82\x7e\x01\x00", 4);
    CHECK_EQ_INT(wsk_frame_header_encode(hdr, 0x82, 65535, NULL), 4);
    CHECK_EQ_INT(wsk_frame_header_encode(hdr, 0x82, 65536, NULL), 10);
    CHECK_MEM(hdr, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
    CHECK_EQ_INT(wsk_frame_header_encode(hdr, 0x82, 65536, mask_key), 14);
    CHECK_MEM(hdr + 10, mask_key, 4);
    CHECK_EQ_INT(wsk_frame_header_encode(hdr, 0x82, 0x7FFFFFFFFFFFFFFFull, NULL), 10);
    CHECK_MEM(hdr, "\x82\x7f\x7f\xff\xff\xff\xff\xff\xff\xff", 10);

    /* Too small an output buffer writes nothing past its end. */
    memset(out, 0xAA, sizeof out);
    CHECK_EQ_INT(wsk_frame_encode(out, 6, 0x81, (const uint8_t *)"Hello", 5, NULL), WSK_ENOSPC);
    CHECK_EQ_INT(wsk_frame_encode(out, 1, 0x81, (const uint8_t *)"", 0, NULL), WSK_ENOSPC);
    CHECK_EQ_INT(out[6], 0xAA);
}

/* ---- section 5 rules ---------------------------------------------------- */

static void test_rsv_and_opcodes(void)
{
    uint8_t f[2] = {0, 0x00};
    for (unsigned rsv = 1; rsv < 8; rsv++) {
        f[0] = (uint8_t)(0x80 | rsv << 4 | WSK_OP_TEXT);
        expect_error(WSK_ROLE_CLIENT, f, 2, WSK_EPROTO, 1002);
    }
    for (unsigned op = 0; op < 16; op++) {
        f[0] = (uint8_t)(0x80 | op);
        bool known = op == 1 || op == 2 || op == 8 || op == 9 || op == 10;
        if (op == 0)
            expect_error(WSK_ROLE_CLIENT, f, 2, WSK_EPROTO, 1002); /* nothing to continue */
        else if (known)
            expect_ok(WSK_ROLE_CLIENT, f, 2, 1);
        else
            expect_error(WSK_ROLE_CLIENT, f, 2, WSK_EPROTO, 1002);
    }
    /* Fail fast: the first byte alone is enough to fail. */
    struct wsk_frame_parser p;
    wsk_frame_parser_init(&p, NULL);
    uint8_t b = 0x83;
    struct wsk_frame_chunk c;
    bool has;
    CHECK_EQ_INT(wsk_frame_parse(&p, &b, 1, &c, &has), WSK_EPROTO);
    CHECK_EQ_INT(wsk_frame_parser_close_code(&p), 1002);
    /* Sticky. */
    uint8_t ok[] = {0x81, 0x00};
    CHECK_EQ_INT(wsk_frame_parse(&p, ok, 2, &c, &has), WSK_EPROTO);
}

static void test_masking_role(void)
{
    expect_error(WSK_ROLE_SERVER, hello_unmasked, sizeof hello_unmasked, WSK_EPROTO, 1002);
    expect_error(WSK_ROLE_CLIENT, hello_masked, sizeof hello_masked, WSK_EPROTO, 1002);
    expect_ok(WSK_ROLE_SERVER, hello_masked, sizeof hello_masked, 1);
}

static void test_control_frames(void)
{
    /* Control frames must have FIN and at most 125 bytes. */
    uint8_t nofin[] = {0x09, 0x00};
    expect_error(WSK_ROLE_CLIENT, nofin, 2, WSK_EPROTO, 1002);
    uint8_t big[4 + 126] = {0x89, 0x7e, 0x00, 0x7e};
    expect_error(WSK_ROLE_CLIENT, big, sizeof big, WSK_EPROTO, 1002);
    uint8_t ok125[2 + 125] = {0x89, 125};
    expect_ok(WSK_ROLE_CLIENT, ok125, sizeof ok125, 1);
    /* Control frames may come between the fragments of a message. */
    uint8_t inter[] = {0x01, 0x01, 'a', 0x89, 0x01, 'p', 0x8a, 0x00, 0x80, 0x01, 'b'};
    struct wsk_frame_config cfg;
    cfg_role(&cfg, WSK_ROLE_CLIENT);
    struct record r;
    parse_all_ways(&cfg, inter, sizeof inter, &r);
    CHECK_EQ_INT(r.error, 0);
    CHECK_EQ_INT(r.num_msgs, 3);
    CHECK_EQ_INT(r.msgs[0].opcode, WSK_OP_PING);
    CHECK_EQ_INT(r.msgs[1].opcode, WSK_OP_PONG);
    CHECK_EQ_INT(r.msgs[2].opcode, WSK_OP_TEXT);
    CHECK_EQ_INT(r.msgs[2].len, 2);
    CHECK_MEM(r.msgs[2].data, "ab", 2);
    record_free(&r);
}

static void test_fragmentation_rules(void)
{
    uint8_t cont_first[] = {0x80, 0x01, 'a'};
    expect_error(WSK_ROLE_CLIENT, cont_first, sizeof cont_first, WSK_EPROTO, 1002);
    uint8_t text_inside[] = {0x01, 0x01, 'a', 0x81, 0x01, 'b'};
    expect_error(WSK_ROLE_CLIENT, text_inside, sizeof text_inside, WSK_EPROTO, 1002);
    uint8_t bin_inside[] = {0x02, 0x01, 'a', 0x02, 0x01, 'b'};
    expect_error(WSK_ROLE_CLIENT, bin_inside, sizeof bin_inside, WSK_EPROTO, 1002);
    uint8_t cont_after_end[] = {0x81, 0x01, 'a', 0x80, 0x01, 'b'};
    expect_error(WSK_ROLE_CLIENT, cont_after_end, sizeof cont_after_end, WSK_EPROTO, 1002);
    /* Many fragments, some empty. */
    uint8_t many[] = {0x02, 0x00, 0x00, 0x01, 'x', 0x00, 0x00, 0x80, 0x01, 'y'};
    struct wsk_frame_config cfg;
    cfg_role(&cfg, WSK_ROLE_CLIENT);
    struct record r;
    parse_all_ways(&cfg, many, sizeof many, &r);
    CHECK_EQ_INT(r.error, 0);
    CHECK_EQ_INT(r.num_msgs, 1);
    CHECK_EQ_INT(r.msgs[0].opcode, WSK_OP_BINARY);
    CHECK_EQ_INT(r.msgs[0].len, 2);
    record_free(&r);
    /* Empty text message. */
    uint8_t empty[] = {0x81, 0x00};
    expect_ok(WSK_ROLE_CLIENT, empty, 2, 1);
}

static void test_length_encoding(void)
{
    /* 64-bit length with the top bit set. */
    uint8_t top[] = {0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0};
    expect_error(WSK_ROLE_CLIENT, top, sizeof top, WSK_EPROTO, 1002);
    /* Non-minimal encodings. */
    uint8_t nm16[] = {0x82, 0x7e, 0x00, 0x05, 1, 2, 3, 4, 5};
    expect_error(WSK_ROLE_CLIENT, nm16, sizeof nm16, WSK_EPROTO, 1002);
    uint8_t nm64[] = {0x82, 0x7f, 0, 0, 0, 0, 0, 0, 0x01, 0x00};
    expect_error(WSK_ROLE_CLIENT, nm64, sizeof nm64, WSK_EPROTO, 1002);
}

static void test_close_frames(void)
{
    /* Every close code: valid on the wire or a protocol error. */
    for (unsigned code = 0; code < 5100; code++) {
        bool valid = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
                     (code >= 3000 && code <= 4999);
        CHECK(wsk_close_code_is_valid(code) == valid);
        uint8_t f[4] = {0x88, 0x02, (uint8_t)(code >> 8), (uint8_t)code};
        struct wsk_frame_config cfg;
        cfg_role(&cfg, WSK_ROLE_CLIENT);
        struct record r;
        run(&cfg, f, 4, SPLIT_BYTES, 0, &r);
        if (valid) {
            CHECK_EQ_INT(r.error, 0);
            CHECK_EQ_INT(r.num_msgs, 1);
            CHECK_EQ_INT(r.msgs[0].close_code, code);
        } else {
            CHECK_EQ_INT(r.error, WSK_EPROTO);
            CHECK_EQ_INT(r.err_close, 1002);
        }
        record_free(&r);
    }
    /* Classes named by the issue. */
    unsigned bad[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(!wsk_close_code_is_valid(bad[i]));
    unsigned good[] = {1000, 1001, 1002, 1003, 1007, 1010, 1011, 1012, 1013, 1014, 3000, 4999};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        CHECK(wsk_close_code_is_valid(good[i]));

    /* Empty close: code 1005 reported, nothing on the wire. */
    uint8_t empty[] = {0x88, 0x00};
    struct wsk_frame_config cfg;
    cfg_role(&cfg, WSK_ROLE_CLIENT);
    struct record r;
    parse_all_ways(&cfg, empty, 2, &r);
    CHECK_EQ_INT(r.num_msgs, 1);
    CHECK_EQ_INT(r.msgs[0].close_code, 1005);
    record_free(&r);
    /* One byte of payload cannot hold a code. */
    uint8_t one[] = {0x88, 0x01, 0x03};
    expect_error(WSK_ROLE_CLIENT, one, sizeof one, WSK_EPROTO, 1002);
    /* Reason must be UTF-8, validated across splits; truncated is invalid too. */
    uint8_t reason_ok[] = {0x88, 0x06, 0x03, 0xe8, 'o', 0xce, 0xba, 'k'};
    expect_ok(WSK_ROLE_CLIENT, reason_ok, sizeof reason_ok, 1);
    uint8_t reason_bad[] = {0x88, 0x04, 0x03, 0xe8, 0xff, 'k'};
    expect_error(WSK_ROLE_CLIENT, reason_bad, sizeof reason_bad, WSK_EUTF8, 1007);
    uint8_t reason_cut[] = {0x88, 0x03, 0x03, 0xe8, 0xce};
    expect_error(WSK_ROLE_CLIENT, reason_cut, sizeof reason_cut, WSK_EUTF8, 1007);
    /* A masked close from a client, parsed by a server. */
    uint8_t payload[] = {0x03, 0xe8, 'b', 'y', 'e'};
    uint8_t f[32];
    int64_t n = wsk_frame_encode(f, sizeof f, 0x88, payload, sizeof payload, mask_key);
    cfg_role(&cfg, WSK_ROLE_SERVER);
    parse_all_ways(&cfg, f, (size_t)n, &r);
    CHECK_EQ_INT(r.error, 0);
    CHECK_EQ_INT(r.msgs[0].close_code, 1000);
    CHECK_EQ_INT(r.msgs[0].len, 5);
    CHECK_MEM(r.msgs[0].data + 2, "bye", 3);
    record_free(&r);
}

static void test_close_payload_encode(void)
{
    uint8_t out[125];
    CHECK_EQ_INT(wsk_close_payload_encode(out, 1000, "bye", 3), 5);
    CHECK_MEM(out,
              "\x03\xe8"
              "bye",
              5);
    CHECK_EQ_INT(wsk_close_payload_encode(out, 0, NULL, 0), 0);
    CHECK_EQ_INT(wsk_close_payload_encode(out, 1005, NULL, 0), WSK_EPROTO);
    CHECK_EQ_INT(wsk_close_payload_encode(out, 999, NULL, 0), WSK_EPROTO);
    CHECK_EQ_INT(wsk_close_payload_encode(out, 4999, NULL, 0), 2);
    char big[124];
    memset(big, 'x', sizeof big);
    CHECK_EQ_INT(wsk_close_payload_encode(out, 1000, big, 123), 125);
    CHECK_EQ_INT(wsk_close_payload_encode(out, 1000, big, 124), WSK_ETOOBIG);
    CHECK_EQ_INT(wsk_close_payload_encode(out, 1000, "\xff", 1), WSK_EUTF8);
}

static void test_utf8_in_text(void)
{
    /* Invalid UTF-8 in a text frame: 1007, even before the frame ends. */
    uint8_t bad[] = {0x81, 0x03, 'a', 0xc0, 0x80};
    expect_error(WSK_ROLE_CLIENT, bad, sizeof bad, WSK_EUTF8, 1007);
    struct wsk_frame_parser p;
    struct wsk_frame_config cfg;
    cfg_role(&cfg, WSK_ROLE_CLIENT);
    wsk_frame_parser_init(&p, &cfg);
    uint8_t prefix[] = {0x81, 0x10, 'a', 0xc0}; /* 16-byte frame, fails at byte 2 */
    struct wsk_frame_chunk c;
    bool has;
    CHECK_EQ_INT(wsk_frame_parse(&p, prefix, sizeof prefix, &c, &has), WSK_EUTF8);
    /* A character split across fragments is fine. */
    uint8_t split[] = {0x01, 0x02, 'a', 0xce, 0x80, 0x02, 0xba, 'b'};
    expect_ok(WSK_ROLE_CLIENT, split, sizeof split, 1);
    /* A message ending inside a character is not. */
    uint8_t cut[] = {0x01, 0x02, 'a', 0xce, 0x80, 0x00};
    expect_error(WSK_ROLE_CLIENT, cut, sizeof cut, WSK_EUTF8, 1007);
    /* Binary is not checked. */
    uint8_t bin[] = {0x82, 0x02, 0xc0, 0x80};
    expect_ok(WSK_ROLE_CLIENT, bin, sizeof bin, 1);
    /* Opting out leaves text to the caller. */
    cfg.no_utf8_check = true;
    struct record r;
    parse_all_ways(&cfg, bad, sizeof bad, &r);
    CHECK_EQ_INT(r.error, 0);
    CHECK_EQ_INT(r.num_msgs, 1);
    record_free(&r);
    /* Invalid bytes in a later fragment, after a ping in between. */
    uint8_t later[] = {0x01, 0x01, 'a', 0x89, 0x00, 0x80, 0x01, 0xff};
    expect_error(WSK_ROLE_CLIENT, later, sizeof later, WSK_EUTF8, 1007);
}

static void test_limits(void)
{
    struct wsk_frame_config cfg;
    cfg_role(&cfg, WSK_ROLE_CLIENT);
    cfg.max_frame = 100;
    cfg.max_message = 150;
    struct record r;
    /* A frame over max_frame fails on its header alone: nothing buffered. */
    uint8_t big_hdr[] = {0x82, 0x7e, 0x00, 200};
    parse_all_ways(&cfg, big_hdr, sizeof big_hdr, &r);
    CHECK_EQ_INT(r.error, WSK_ETOOBIG);
    CHECK_EQ_INT(r.err_close, 1009);
    record_free(&r);
    uint8_t huge_hdr[] = {0x82, 0x7f, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0};
    parse_all_ways(&cfg, huge_hdr, sizeof huge_hdr, &r);
    CHECK_EQ_INT(r.error, WSK_ETOOBIG);
    record_free(&r);
    /* Exactly at the limits is fine: 100 + 50 = 150. */
    uint8_t *f = calloc(1, 300);
    f[0] = 0x02;
    f[1] = 100;
    f[102] = 0x80;
    f[103] = 50;
    parse_all_ways(&cfg, f, 154, &r);
    CHECK_EQ_INT(r.error, 0);
    CHECK_EQ_INT(r.num_msgs, 1);
    CHECK_EQ_INT(r.msgs[0].len, 150);
    record_free(&r);
    /* One byte more across fragments: 1009 at the second header. */
    f[103] = 51;
    parse_all_ways(&cfg, f, 104, &r);
    CHECK_EQ_INT(r.error, WSK_ETOOBIG);
    CHECK_EQ_INT(r.err_close, 1009);
    record_free(&r);
    free(f);
    /* Defaults: 16 MiB. */
    struct wsk_frame_config def;
    wsk_frame_config_init(&def);
    CHECK_EQ_INT(def.max_frame, 16u << 20);
    CHECK_EQ_INT(def.max_message, 16u << 20);
    uint8_t over[] = {0x82, 0x7f, 0, 0, 0, 0, 0x01, 0x00, 0x00, 0x01};
    expect_error(WSK_ROLE_CLIENT, over, sizeof over, WSK_ETOOBIG, 1009);
}

static void test_compressed_rsv1(void)
{
    struct wsk_frame_config cfg;
    cfg_role(&cfg, WSK_ROLE_CLIENT);
    cfg.rsv_allowed = WSK_FRAME_RSV1;
    struct record r;
    /* RSV1 on the first frame marks the message compressed; text is then
     * not checked here (the inflated bytes are). */
    uint8_t ok[] = {0x41, 0x01, 0xff, 0x80, 0x01, 0xfe};
    parse_all_ways(&cfg, ok, sizeof ok, &r);
    CHECK_EQ_INT(r.error, 0);
    CHECK_EQ_INT(r.num_msgs, 1);
    CHECK(r.msgs[0].compressed);
    record_free(&r);
    uint8_t cont_rsv1[] = {0x41, 0x01, 0x00, 0xc0, 0x01, 0x00};
    parse_all_ways(&cfg, cont_rsv1, sizeof cont_rsv1, &r);
    CHECK_EQ_INT(r.error, WSK_EPROTO);
    record_free(&r);
    uint8_t ctl_rsv1[] = {0xc9, 0x00};
    parse_all_ways(&cfg, ctl_rsv1, sizeof ctl_rsv1, &r);
    CHECK_EQ_INT(r.error, WSK_EPROTO);
    record_free(&r);
    uint8_t rsv2[] = {0xa1, 0x00};
    parse_all_ways(&cfg, rsv2, sizeof rsv2, &r);
    CHECK_EQ_INT(r.error, WSK_EPROTO);
    record_free(&r);
    /* The next uncompressed text message is checked again. */
    uint8_t next[] = {0xc1, 0x01, 0xff, 0x81, 0x01, 0xff};
    parse_all_ways(&cfg, next, sizeof next, &r);
    CHECK_EQ_INT(r.error, WSK_EUTF8);
    CHECK_EQ_INT(r.num_msgs, 1);
    record_free(&r);
}

/* Random conversations: encode, then parse with random splits. */
static void test_random_roundtrip(void)
{
    uint64_t seed = 12345;
    for (int iter = 0; iter < 300; iter++) {
        bool masked = iter & 1;
        size_t cap = 1 << 20, len = 0;
        uint8_t *stream = malloc(cap);
        struct msg expect[MAX_MSGS];
        size_t nexpect = 0;
        int nmsg = 1 + (int)(wsk_test_rand(&seed) % 12);
        for (int m = 0; m < nmsg && nexpect < MAX_MSGS - 8; m++) {
            size_t mlen = wsk_test_rand(&seed) % 4 ? wsk_test_rand(&seed) % 200
                                                   : wsk_test_rand(&seed) % 70000;
            uint8_t *data = malloc(mlen + 1);
            bool text = wsk_test_rand(&seed) & 1;
            for (size_t i = 0; i < mlen; i++)
                data[i] = text ? (uint8_t)('a' + i % 26) : (uint8_t)wsk_test_rand(&seed);
            size_t off = 0;
            int frag = 0;
            do {
                size_t piece = mlen - off;
                if (wsk_test_rand(&seed) % 3 == 0)
                    piece = wsk_test_rand(&seed) % (piece + 1);
                bool fin = off + piece == mlen;
                uint8_t op = frag == 0 ? (text ? WSK_OP_TEXT : WSK_OP_BINARY) : WSK_OP_CONT;
                uint8_t key[4];
                uint64_t k = wsk_test_rand(&seed);
                memcpy(key, &k, 4);
                int64_t n = wsk_frame_encode(stream + len, cap - len,
                                             (uint8_t)(op | (fin ? WSK_FRAME_FIN : 0)), data + off,
                                             piece, masked ? key : NULL);
                CHECK(n > 0);
                len += (size_t)n;
                off += piece;
                frag++;
                if (!fin && wsk_test_rand(&seed) % 4 == 0) {
                    uint8_t pl[8] = "pingpng";
                    n = wsk_frame_encode(stream + len, cap - len, WSK_FRAME_FIN | WSK_OP_PING, pl,
                                         wsk_test_rand(&seed) % 8, masked ? key : NULL);
                    len += (size_t)n;
                    expect[nexpect].opcode = WSK_OP_PING;
                    expect[nexpect].len = 0;
                    expect[nexpect++].data = NULL;
                }
                if (fin)
                    break;
            } while (1);
            expect[nexpect].opcode = text ? WSK_OP_TEXT : WSK_OP_BINARY;
            expect[nexpect].len = mlen;
            expect[nexpect++].data = data;
        }
        struct wsk_frame_config cfg;
        cfg_role(&cfg, masked ? WSK_ROLE_SERVER : WSK_ROLE_CLIENT);
        struct record a, b;
        run(&cfg, stream, len, SPLIT_WHOLE, 0, &a);
        run(&cfg, stream, len, SPLIT_RANDOM, seed, &b);
        CHECK(records_equal(&a, &b));
        CHECK_EQ_INT(a.error, 0);
        CHECK_EQ_INT(a.num_msgs, nexpect);
        for (size_t i = 0; i < nexpect && i < a.num_msgs; i++) {
            CHECK_EQ_INT(a.msgs[i].opcode, expect[i].opcode);
            if (expect[i].data) {
                CHECK_EQ_INT(a.msgs[i].len, expect[i].len);
                if (a.msgs[i].len == expect[i].len && expect[i].len)
                    CHECK_MEM(a.msgs[i].data, expect[i].data, expect[i].len);
            }
            free(expect[i].data);
        }
        record_free(&a);
        record_free(&b);
        free(stream);
    }
}

/* The one-step path for whole small frames must agree with the byte-by-byte
 * path on everything: random first and second bytes, payloads that are
 * ASCII, valid UTF-8 or broken, tiny limits, both roles, with and without
 * the parser's UTF-8 check. */
static void test_small_frame_path(void)
{
    static const uint8_t b0s[] = {0x81, 0x82, 0x01, 0x02, 0x80, 0x00, 0x89, 0x8a,
                                  0x88, 0xc1, 0x91, 0x83, 0x8b, 0x41, 0x0f, 0xff};
    static const char *texts[] = {"",
                                  "hello",
                                  "caf\xc3\xa9",
                                  "\xe2\x82",
                                  "\xc0\xaf",
                                  "0123456789abcdef0123456789",
                                  "\xf0\x9f\x98\x80 ok",
                                  "\xed\xa0\x80",
                                  "plain ascii text that is longer than 8"};
    uint64_t seed = 99;
    for (int iter = 0; iter < 20000; iter++) {
        struct wsk_frame_config cfg;
        cfg_role(&cfg, (iter & 1) ? WSK_ROLE_SERVER : WSK_ROLE_CLIENT);
        cfg.no_utf8_check = (iter % 7) == 0;
        if (iter % 5 == 0)
            cfg.max_message = wsk_test_rand(&seed) % 12;
        if (iter % 11 == 0)
            cfg.max_frame = wsk_test_rand(&seed) % 12;
        cfg.rsv_allowed = (iter % 3 == 0) ? WSK_FRAME_RSV1 : 0;
        uint8_t stream[1024];
        size_t len = 0;
        int nframes = 1 + (int)(wsk_test_rand(&seed) % 4);
        for (int f = 0; f < nframes; f++) {
            const char *t = texts[wsk_test_rand(&seed) % (sizeof texts / sizeof *texts)];
            size_t n = strlen(t);
            if (wsk_test_rand(&seed) % 4 == 0)
                n = wsk_test_rand(&seed) % 126;
            uint8_t payload[126];
            for (size_t i = 0; i < n; i++)
                payload[i] = i < strlen(t) ? (uint8_t)t[i] : (uint8_t)wsk_test_rand(&seed);
            bool masked = wsk_test_rand(&seed) % 8 ? (iter & 1) : !(iter & 1);
            uint8_t key[4];
            uint64_t k = wsk_test_rand(&seed);
            memcpy(key, &k, 4);
            uint8_t b0 = b0s[wsk_test_rand(&seed) % sizeof b0s];
            int64_t w = wsk_frame_encode(stream + len, sizeof stream - len, b0, payload, n,
                                         masked ? key : NULL);
            CHECK(w > 0);
            len += (size_t)w;
        }
        /* Sometimes cut the last frame short. */
        if (wsk_test_rand(&seed) % 6 == 0 && len > 1)
            len -= 1 + wsk_test_rand(&seed) % (len - 1);
        struct record whole, bytes;
        run(&cfg, stream, len, SPLIT_WHOLE, 0, &whole);
        run(&cfg, stream, len, SPLIT_BYTES, 0, &bytes);
        CHECK(records_equal(&whole, &bytes));
        record_free(&whole);
        record_free(&bytes);
    }
}

int main(void)
{
    WSK_RUN(test_rfc_examples_parse);
    WSK_RUN(test_rfc_examples_encode);
    WSK_RUN(test_rsv_and_opcodes);
    WSK_RUN(test_masking_role);
    WSK_RUN(test_control_frames);
    WSK_RUN(test_fragmentation_rules);
    WSK_RUN(test_length_encoding);
    WSK_RUN(test_close_frames);
    WSK_RUN(test_close_payload_encode);
    WSK_RUN(test_utf8_in_text);
    WSK_RUN(test_limits);
    WSK_RUN(test_compressed_rsv1);
    WSK_RUN(test_random_roundtrip);
    WSK_RUN(test_small_frame_path);
    WSK_TEST_END();
}
