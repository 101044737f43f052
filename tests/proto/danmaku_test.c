/* Tests for the danmaku packet codec (src/proto/danmaku.c).
 *
 * Every stream is decoded whole, one byte at a time and in random splits,
 * each piece copied to end right before an unreadable page, so a read past
 * a piece crashes; all three must give the same packets, or the same error
 * at the same byte. */
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include "wsk/danmaku.h"
#include "wsk_test.h"

static uint8_t *guard_map;
static size_t guard_map_len;

/* A copy of s[0..len) that ends where an unreadable page starts. */
static const uint8_t *guarded_copy(const uint8_t *s, size_t len)
{
    if (guard_map)
        munmap(guard_map, guard_map_len);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    guard_map_len = ((len + page - 1) / page + 1) * page;
    guard_map =
        mmap(NULL, guard_map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (guard_map == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    uint8_t *end = guard_map + guard_map_len - page;
    mprotect(end, page, PROT_NONE);
    if (len)
        memcpy(end - len, s, len);
    return end - len;
}

/* What decoding a stream gave: the bodies, joined with '|', their types,
 * and the error (0 when none) with the stream offset of the call that
 * failed: fed byte by byte, that is the byte that showed the error. */
struct result {
    char bodies[4096];
    size_t bodies_len;
    uint16_t types[32];
    size_t count;
    int error;
    size_t error_at;
    const char *reason;
    bool is_idle;
};

/* Streams longer than this are not fed byte by byte (a page mapped per
 * byte takes seconds). */
#define BIG_STREAM 16384

enum split_mode {
    SPLIT_WHOLE,
    SPLIT_BYTES,
    SPLIT_RANDOM,
};

static void decode_stream(const uint8_t *s, size_t len, enum split_mode mode, uint64_t *seed,
                          const struct wsk_danmaku_config *cfg, size_t cap, struct result *r)
{
    static uint8_t buf[1 << 20];
    struct wsk_danmaku_decoder d;
    /* A page is mapped per piece: long streams get longer pieces. */
    size_t off = 0, max_piece = len > BIG_STREAM ? 4096 : 40;

    memset(r, 0, sizeof *r);
    wsk_danmaku_decoder_init(&d, cfg, buf, cap);
    while (off < len && !r->error) {
        size_t piece = len - off;
        if (mode == SPLIT_BYTES)
            piece = 1;
        else if (mode == SPLIT_RANDOM)
            piece = 1 + wsk_test_rand(seed) % (len - off < max_piece ? len - off : max_piece);
        const uint8_t *in = guarded_copy(s + off, piece);
        size_t used = 0;
        for (;;) {
            struct wsk_danmaku_packet pkt;
            bool has_packet;
            int64_t n = wsk_danmaku_decode(&d, in + used, piece - used, &pkt, &has_packet);
            if (n < 0) {
                r->error = (int)n;
                r->error_at = off + used;
                r->reason = wsk_danmaku_decoder_reason(&d);
                CHECK(!has_packet);
                CHECK(r->reason != NULL);
                /* It stays failed. */
                CHECK_EQ_INT(wsk_danmaku_decode(&d, in, piece, &pkt, &has_packet), n);
                CHECK(!wsk_danmaku_decoder_is_idle(&d));
                break;
            }
            CHECK((size_t)n <= piece - used);
            used += (size_t)n;
            if (!has_packet) {
                CHECK_EQ_INT(used, piece);
                break;
            }
            CHECK_EQ_INT(pkt.body[pkt.body_len], 0);
            if (r->count < 32)
                r->types[r->count] = pkt.type;
            r->count++;
            if (r->bodies_len + pkt.body_len + 1 <= sizeof r->bodies) {
                memcpy(r->bodies + r->bodies_len, pkt.body, pkt.body_len);
                r->bodies_len += pkt.body_len;
                r->bodies[r->bodies_len++] = '|';
            }
            if (used == piece)
                break;
        }
        off += piece;
    }
    r->is_idle = wsk_danmaku_decoder_is_idle(&d);
    CHECK(r->error || wsk_danmaku_decoder_reason(&d) == NULL);
}

/* Decodes s three ways and checks that they agree; returns the whole one,
 * with error_at the byte that showed the error (from the byte-by-byte run;
 * other runs fail in a call that started at or before it). */
static void decode_all_ways(const uint8_t *s, size_t len, const struct wsk_danmaku_config *cfg,
                            size_t cap, struct result *whole)
{
    static struct result other;
    uint64_t seed = len * 7919 + 1;
    size_t error_byte = 0;

    decode_stream(s, len, SPLIT_WHOLE, &seed, cfg, cap, whole);
    for (int mode = SPLIT_BYTES; mode <= SPLIT_RANDOM; mode++) {
        if (mode == SPLIT_BYTES && len > BIG_STREAM)
            continue;
        for (int round = 0; round < (mode == SPLIT_RANDOM ? 20 : 1); round++) {
            decode_stream(s, len, (enum split_mode)mode, &seed, cfg, cap, &other);
            CHECK_EQ_INT(other.count, whole->count);
            CHECK_EQ_INT(other.bodies_len, whole->bodies_len);
            CHECK_MEM(other.bodies, whole->bodies, whole->bodies_len);
            CHECK_EQ_INT(other.error, whole->error);
            if (whole->error) {
                if (mode == SPLIT_BYTES)
                    error_byte = other.error_at;
                CHECK(other.error_at <= error_byte);
                CHECK(whole->error_at <= error_byte);
                CHECK_STR(other.reason, whole->reason);
            }
            CHECK_EQ_INT(other.is_idle, whole->is_idle);
        }
    }
    whole->error_at = error_byte;
}

static size_t append_packet(uint8_t *out, size_t cap, uint16_t type, const char *body)
{
    int64_t n = wsk_danmaku_encode(out, cap, type, body, strlen(body));
    CHECK(n > 0);
    return n > 0 ? (size_t)n : 0;
}

static void test_encode(void)
{
    static const uint8_t mrkl[] = {0x14, 0,   0,   0,   0x14, 0,   0,   0,   0xb1, 0x02, 0,   0,
                                   't',  'y', 'p', 'e', '@',  '=', 'm', 'r', 'k',  'l',  '/', 0};
    uint8_t out[64];

    CHECK_EQ_INT(wsk_danmaku_encode(out, sizeof out, WSK_DANMAKU_TYPE_CLIENT, "type@=mrkl/", 11),
                 sizeof mrkl);
    CHECK_MEM(out, mrkl, sizeof mrkl);
    CHECK_EQ_INT(WSK_DANMAKU_PACKET_LEN(11), sizeof mrkl);

    /* Server type, empty body: L = 9. */
    CHECK_EQ_INT(wsk_danmaku_encode(out, 13, WSK_DANMAKU_TYPE_SERVER, NULL, 0), 13);
    static const uint8_t empty[] = {9, 0, 0, 0, 9, 0, 0, 0, 0xb2, 0x02, 0, 0, 0};
    CHECK_MEM(out, empty, sizeof empty);

    /* Too small: nothing written. */
    memset(out, 0xAA, sizeof out);
    CHECK_EQ_INT(wsk_danmaku_encode(out, 23, WSK_DANMAKU_TYPE_CLIENT, "type@=mrkl/", 11),
                 WSK_ENOSPC);
    CHECK_EQ_INT(out[0], 0xAA);
    CHECK_EQ_INT(wsk_danmaku_encode(out, 0, WSK_DANMAKU_TYPE_CLIENT, NULL, 0), WSK_ENOSPC);
    CHECK_EQ_INT(wsk_danmaku_encode(out, sizeof out, 0, "x", 1), -EINVAL);
    CHECK_EQ_INT(wsk_danmaku_encode(out, sizeof out, 691, "x", 1), -EINVAL);
    CHECK_EQ_INT(wsk_danmaku_encode(out, sizeof out, 688, "x", 1), -EINVAL);
    CHECK_EQ_INT(
        wsk_danmaku_encode(out, SIZE_MAX, WSK_DANMAKU_TYPE_CLIENT, "x", (size_t)UINT32_MAX - 8),
        WSK_ETOOBIG);

    /* The body already in place after the header. */
    memcpy(out + WSK_DANMAKU_HEADER_LEN, "type@=mrkl/", 11);
    CHECK_EQ_INT(wsk_danmaku_encode(out, sizeof out, WSK_DANMAKU_TYPE_CLIENT,
                                    (const char *)out + WSK_DANMAKU_HEADER_LEN, 11),
                 sizeof mrkl);
    CHECK_MEM(out, mrkl, sizeof mrkl);
}

static void test_decode_stream(void)
{
    static uint8_t stream[8192];
    struct result r;
    size_t len = 0;
    const char *bodies[] = {"type@=loginres/", "", "type@=chatmsg/nn@=a@Ab/txt@=\xe4\xbd\xa0/", "x",
                            "type@=mrkl/"};

    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
        len += append_packet(stream + len, sizeof stream - len, WSK_DANMAKU_TYPE_SERVER, bodies[i]);
    /* A NUL inside a body is a byte like any other. */
    len += (size_t)wsk_danmaku_encode(stream + len, sizeof stream - len, WSK_DANMAKU_TYPE_SERVER,
                                      "a\0b", 3);

    decode_all_ways(stream, len, NULL, 1 << 20, &r);
    CHECK_EQ_INT(r.error, 0);
    CHECK_EQ_INT(r.count, 6);
    CHECK(r.is_idle);
    static const char want[] = "type@=loginres/||type@=chatmsg/nn@=a@Ab/txt@=\xe4\xbd\xa0/|x|"
                               "type@=mrkl/|a\0b|";
    CHECK_EQ_INT(r.bodies_len, sizeof want - 1);
    CHECK_MEM(r.bodies, want, sizeof want - 1);
    for (size_t i = 0; i < 6; i++)
        CHECK_EQ_INT(r.types[i], WSK_DANMAKU_TYPE_SERVER);

    /* Cut anywhere: the packets before the cut, no error, not idle inside one. */
    for (size_t cut = 0; cut < len; cut++) {
        decode_all_ways(stream, cut, NULL, 1 << 20, &r);
        CHECK_EQ_INT(r.error, 0);
        CHECK(r.count <= 6);
    }
    decode_stream(stream, 5, SPLIT_WHOLE, NULL, NULL, 1 << 20, &r);
    CHECK(!r.is_idle);
}

static void test_in_place(void)
{
    uint8_t two[64], buf[64];
    size_t len = append_packet(two, sizeof two, WSK_DANMAKU_TYPE_SERVER, "type@=a/");
    len += append_packet(two + len, sizeof two - len, WSK_DANMAKU_TYPE_SERVER, "type@=b/");
    struct wsk_danmaku_decoder d;
    struct wsk_danmaku_packet pkt;
    bool has_packet;

    /* Whole in the input: handed out where it lies, one packet per call. */
    wsk_danmaku_decoder_init(&d, NULL, buf, sizeof buf);
    int64_t n = wsk_danmaku_decode(&d, two, len, &pkt, &has_packet);
    CHECK_EQ_INT(n, 21);
    CHECK(has_packet);
    CHECK(pkt.body == (const char *)two + 12);
    CHECK_EQ_INT(pkt.body_len, 8);
    n = wsk_danmaku_decode(&d, two + 21, len - 21, &pkt, &has_packet);
    CHECK_EQ_INT(n, 21);
    CHECK(has_packet && pkt.body == (const char *)two + 33);
    n = wsk_danmaku_decode(&d, NULL, 0, &pkt, &has_packet);
    CHECK_EQ_INT(n, 0);
    CHECK(!has_packet);

    /* Header whole, body split: collected in the buffer. */
    wsk_danmaku_decoder_init(&d, NULL, buf, sizeof buf);
    CHECK_EQ_INT(wsk_danmaku_decode(&d, two, 15, &pkt, &has_packet), 15);
    CHECK(!has_packet);
    CHECK_EQ_INT(wsk_danmaku_decode(&d, two + 15, len - 15, &pkt, &has_packet), 6);
    CHECK(has_packet && pkt.body == (const char *)buf);
    CHECK_MEM(pkt.body, "type@=a/", 9);

    /* Header split, body whole in the next piece: still in place. */
    wsk_danmaku_decoder_init(&d, NULL, buf, sizeof buf);
    CHECK_EQ_INT(wsk_danmaku_decode(&d, two, 5, &pkt, &has_packet), 5);
    CHECK_EQ_INT(wsk_danmaku_decode(&d, two + 5, len - 5, &pkt, &has_packet), 16);
    CHECK(has_packet && pkt.body == (const char *)two + 12);
}

/* A header with the given fields and body, NUL not added. */
static size_t raw_packet(uint8_t *out, uint32_t l1, uint32_t l2, uint16_t type, uint8_t enc,
                         uint8_t reserved, const char *body, size_t body_len)
{
    uint8_t h[12] = {(uint8_t)l1,
                     (uint8_t)(l1 >> 8),
                     (uint8_t)(l1 >> 16),
                     (uint8_t)(l1 >> 24),
                     (uint8_t)l2,
                     (uint8_t)(l2 >> 8),
                     (uint8_t)(l2 >> 16),
                     (uint8_t)(l2 >> 24),
                     (uint8_t)type,
                     (uint8_t)(type >> 8),
                     enc,
                     reserved};
    memcpy(out, h, 12);
    memcpy(out + 12, body, body_len);
    return 12 + body_len;
}

static void expect_error(const uint8_t *s, size_t len, const struct wsk_danmaku_config *cfg,
                         size_t cap, int error, size_t at, size_t packets_before)
{
    struct result r;
    decode_all_ways(s, len, cfg, cap, &r);
    CHECK_EQ_INT(r.error, error);
    CHECK_EQ_INT(r.error_at, at);
    CHECK_EQ_INT(r.count, packets_before);
}

static void test_errors(void)
{
    uint8_t s[256];
    size_t good, n;
    struct wsk_danmaku_config cfg;

    good = append_packet(s, sizeof s, WSK_DANMAKU_TYPE_SERVER, "type@=ok/");

    /* Each fails at the byte that shows it, after a good packet. */
    n = raw_packet(s + good, 8, 8, 690, 0, 0, "", 0);
    expect_error(s, good + n, NULL, 1 << 20, WSK_EPROTO, good + 3, 1);
    n = raw_packet(s + good, 0, 0, 690, 0, 0, "", 0);
    expect_error(s, good + n, NULL, 1 << 20, WSK_EPROTO, good + 3, 1);
    n = raw_packet(s + good, 12, 13, 690, 0, 0, "abc\0", 4);
    expect_error(s, good + n, NULL, 1 << 20, WSK_EPROTO, good + 7, 1);
    n = raw_packet(s + good, 12, 12, 691, 0, 0, "abc\0", 4);
    expect_error(s, good + n, NULL, 1 << 20, WSK_EPROTO, good + 9, 1);
    n = raw_packet(s + good, 12, 12, 0, 0, 0, "abc\0", 4);
    expect_error(s, good + n, NULL, 1 << 20, WSK_EPROTO, good + 9, 1);
    n = raw_packet(s + good, 12, 12, 690, 1, 0, "abc\0", 4);
    expect_error(s, good + n, NULL, 1 << 20, WSK_EPROTO, good + 10, 1);
    n = raw_packet(s + good, 12, 12, 690, 0, 7, "abc\0", 4);
    expect_error(s, good + n, NULL, 1 << 20, WSK_EPROTO, good + 11, 1);
    /* No NUL at the end: found on the last byte. */
    n = raw_packet(s + good, 12, 12, 690, 0, 0, "abcd", 4);
    expect_error(s, good + n, NULL, 1 << 20, WSK_EPROTO, good + 15, 1);

    /* The type a client wants: a client packet from the server fails. */
    wsk_danmaku_config_init(&cfg);
    cfg.type = WSK_DANMAKU_TYPE_SERVER;
    n = raw_packet(s + good, 12, 12, 689, 0, 0, "abc\0", 4);
    expect_error(s, good + n, &cfg, 1 << 20, WSK_EPROTO, good + 9, 1);
    struct result r;
    decode_all_ways(s, good + n, NULL, 1 << 20, &r);
    CHECK_EQ_INT(r.error, 0);
    CHECK_EQ_INT(r.count, 2);
    CHECK_EQ_INT(r.types[1], WSK_DANMAKU_TYPE_CLIENT);

    /* Limits: the whole packet counts (4 + L), checked on the 4th byte. */
    wsk_danmaku_config_init(&cfg);
    cfg.max_packet = 16;
    n = raw_packet(s, 12, 12, 690, 0, 0, "abc\0", 4); /* 16 bytes: fits */
    expect_error(s, n, &cfg, 1 << 20, 0, 0, 1);
    n = raw_packet(s, 13, 13, 690, 0, 0, "abcd\0", 5); /* 17 */
    expect_error(s, n, &cfg, 1 << 20, WSK_ETOOBIG, 3, 0);
    /* Default: 1 MiB. */
    wsk_danmaku_config_init(&cfg);
    CHECK_EQ_INT(cfg.max_packet, 1024 * 1024);
    CHECK_EQ_INT(cfg.type, 0);
    n = raw_packet(s, 1024 * 1024 - 4, 0, 690, 0, 0, "", 0);
    expect_error(s, 4, NULL, 1 << 20, 0, 0, 0);
    n = raw_packet(s, 1024 * 1024 - 3, 0, 690, 0, 0, "", 0);
    expect_error(s, 4, NULL, 1 << 20, WSK_ETOOBIG, 3, 0);
    n = raw_packet(s, UINT32_MAX, UINT32_MAX, 690, 0, 0, "", 0);
    expect_error(s, 4, NULL, 1 << 20, WSK_ETOOBIG, 3, 0);
    /* The buffer: a body with its NUL must fit, split or not. */
    n = raw_packet(s, 12, 12, 690, 0, 0, "abc\0", 4);
    expect_error(s, n, NULL, 4, 0, 0, 1);
    expect_error(s, n, NULL, 3, WSK_ETOOBIG, 3, 0);

    /* Reasons are phrases. */
    struct wsk_danmaku_decoder d;
    struct wsk_danmaku_packet pkt;
    bool has_packet;
    uint8_t buf[16];
    n = raw_packet(s, 12, 13, 690, 0, 0, "abc\0", 4);
    wsk_danmaku_decoder_init(&d, NULL, buf, sizeof buf);
    CHECK(wsk_danmaku_decoder_reason(&d) == NULL);
    CHECK(wsk_danmaku_decoder_is_idle(&d));
    CHECK_EQ_INT(wsk_danmaku_decode(&d, s, n, &pkt, &has_packet), WSK_EPROTO);
    CHECK_STR(wsk_danmaku_decoder_reason(&d), "the two lengths differ");
    /* init starts over. */
    wsk_danmaku_decoder_init(&d, NULL, buf, sizeof buf);
    CHECK(wsk_danmaku_decoder_reason(&d) == NULL);
}

/* Random bodies of random lengths through encode and decode, in random
 * splits, with a big one among them. */
static void test_round_trip(void)
{
    static uint8_t stream[300000];
    static char body[200000];
    static char want[4096];
    uint64_t seed = 42;

    for (int round = 0; round < 20; round++) {
        size_t len = 0, want_len = 0, count = 0;
        while (len < sizeof stream - 20000 && count < 30) {
            size_t body_len = wsk_test_rand(&seed) % (round == 3 && count == 2 ? 190000 : 60);
            for (size_t i = 0; i < body_len; i++)
                body[i] = (char)(wsk_test_rand(&seed) % 256);
            int64_t n = wsk_danmaku_encode(stream + len, sizeof stream - len,
                                           WSK_DANMAKU_TYPE_SERVER, body, body_len);
            CHECK(n == (int64_t)WSK_DANMAKU_PACKET_LEN(body_len));
            len += (size_t)n;
            count++;
            if (want_len + body_len + 1 <= sizeof want) {
                memcpy(want + want_len, body, body_len);
                want_len += body_len;
                want[want_len++] = '|';
            } else {
                want_len = sizeof want + 1; /* too long to compare */
            }
        }
        struct result r;
        decode_all_ways(stream, len, NULL, 1 << 20, &r);
        CHECK_EQ_INT(r.error, 0);
        CHECK_EQ_INT(r.count, count);
        CHECK(r.is_idle);
        if (want_len <= sizeof want) {
            CHECK_EQ_INT(r.bodies_len, want_len);
            CHECK_MEM(r.bodies, want, want_len);
        }
    }
}

int main(void)
{
    WSK_RUN(test_encode);
    WSK_RUN(test_decode_stream);
    WSK_RUN(test_in_place);
    WSK_RUN(test_errors);
    WSK_RUN(test_round_trip);
    WSK_TEST_END();
}
