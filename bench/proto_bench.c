/* Micro-benchmarks for the protocol core's hot loops: masking, UTF-8
 * validation and parsing of small frames, against memcpy as the yardstick;
 * and the opening handshake, in handshakes per second.
 *
 * Each figure repeats its operation for about 0.3 s on a buffer that stays
 * in cache (64 KiB) and on one that does not (16 MiB), and reports the best
 * of ten slices of that time. Results feed a checksum that is printed, so
 * the compiler cannot drop the work.
 *
 *   proto_bench                   all figures
 *   proto_bench SECONDS           a different time per figure
 *   proto_bench handshake ROUNDS  exactly ROUNDS handshakes and nothing else,
 *                                 for callgrind: (Ir(N) - Ir(0)) / N is the
 *                                 cost of one
 */
#include "wsk/deflate.h"
#include "wsk/proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double seconds_per_figure = 0.3;
static uint64_t checksum;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Tells the compiler that memory may have been read and changed, so repeated
 * identical work is neither merged nor dropped. */
static void barrier(void)
{
    __asm__ volatile("" ::: "memory");
}

struct job {
    uint8_t *dst;
    uint8_t *src;
    size_t len;
    uint64_t offset;
};

typedef void bench_fn(const struct job *j);

/* Runs fn for the time per figure, in ten slices, and returns bytes per
 * second in the fastest slice: on a shared machine, the best slice is the
 * one least disturbed by other work, so it is the most repeatable figure. */
static double rate(bench_fn *fn, const struct job *j)
{
    fn(j); /* warm caches and page tables */
    double best = 0, slice = seconds_per_figure / 10, total = now() + seconds_per_figure;
    do {
        uint64_t rounds = 0;
        double start = now(), elapsed;
        do {
            fn(j);
            rounds++;
            elapsed = now() - start;
        } while (elapsed < slice);
        double r = (double)j->len * (double)rounds / elapsed;
        if (r > best)
            best = r;
    } while (now() < total);
    return best;
}

static void run_memcpy(const struct job *j)
{
    memcpy(j->dst, j->src, j->len);
    barrier();
    checksum += j->dst[j->len / 2];
}

static void run_mask(const struct job *j)
{
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    wsk_mask(j->dst, j->len, key, j->offset);
    barrier();
    checksum += j->dst[j->len / 2];
}

static void run_utf8(const struct job *j)
{
    checksum += wsk_utf8_valid(j->src, j->len);
}

/* ---- texts ------------------------------------------------------------------ */

static uint64_t rng = 0x243F6A8885A308D3u;

static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static size_t encode(uint8_t *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | cp >> 6);
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | cp >> 12);
        out[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | cp >> 18);
    out[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

enum text_kind { TEXT_ASCII, TEXT_MIXED, TEXT_ASTRAL };

/* Fills len bytes with valid UTF-8: printable ASCII; or a mix where about
 * 30% of the characters take two or three bytes (text in a Latin, Greek or
 * Cyrillic script with some CJK); or mostly four-byte characters (emoji). */
static void make_text(uint8_t *out, size_t len, enum text_kind kind)
{
    size_t n = 0;
    while (n + 4 <= len) {
        uint32_t r = next_rand(), cp;
        if (kind == TEXT_ASCII || (kind == TEXT_MIXED && r % 100 < 70))
            cp = 0x20 + (r >> 8) % 95;
        else if (kind == TEXT_MIXED && r % 100 < 90)
            cp = 0x80 + (r >> 8) % (0x800 - 0x80);
        else if (kind == TEXT_MIXED)
            cp = 0x4E00 + (r >> 8) % 0x5000;
        else if (r % 10 == 0)
            cp = 0x20 + (r >> 8) % 95;
        else
            cp = 0x1F300 + (r >> 8) % 0x700;
        n += encode(out + n, cp);
    }
    while (n < len)
        out[n++] = 'x';
}

/* ---- figures ---------------------------------------------------------------- */

static void *alloc(size_t len)
{
    /* Cache-line aligned, with room for deliberately misaligned pointers. */
    void *p = aligned_alloc(64, (len + 128 + 63) / 64 * 64);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    memset(p, 0x41, len + 128);
    return p;
}

static void size_name(char *out, size_t cap, size_t len)
{
    if (len >= 1024 * 1024)
        snprintf(out, cap, "%zuMiB", len / (1024 * 1024));
    else
        snprintf(out, cap, "%zuKiB", len / 1024);
}

static void bench_size(size_t len)
{
    char sz[16];
    size_name(sz, sizeof sz, len);
    uint8_t *a = alloc(len), *b = alloc(len);
    for (size_t i = 0; i < len; i++)
        a[i] = (uint8_t)next_rand();

    struct job j = {.dst = b, .src = a, .len = len, .offset = 0};
    double copy = rate(run_memcpy, &j);
    printf("memcpy    %-6s            %6.1f GB/s\n", sz, copy / 1e9);

    double m = rate(run_mask, &j);
    printf("mask      %-6s  aligned   %6.1f GB/s  (memcpy %.1f GB/s, ratio %.2f)\n", sz, m / 1e9,
           copy / 1e9, m / copy);
    j.dst = b + 1;
    j.offset = 1;
    m = rate(run_mask, &j);
    printf("mask      %-6s  offset 1  %6.1f GB/s  (memcpy %.1f GB/s, ratio %.2f)\n", sz, m / 1e9,
           copy / 1e9, m / copy);

    static const struct {
        enum text_kind kind;
        const char *name;
    } texts[] = {{TEXT_ASCII, "ascii"}, {TEXT_MIXED, "mixed"}, {TEXT_ASTRAL, "4-byte"}};
    for (size_t t = 0; t < sizeof texts / sizeof texts[0]; t++) {
        make_text(a, len, texts[t].kind);
        if (!wsk_utf8_valid(a, len)) {
            fprintf(stderr, "bench text %s is not valid UTF-8\n", texts[t].name);
            exit(1);
        }
        j.src = a;
        double u = rate(run_utf8, &j);
        printf("utf8      %-6s  %-8s  %6.1f GB/s  (memcpy %.1f GB/s, ratio %.2f)\n", sz,
               texts[t].name, u / 1e9, copy / 1e9, u / copy);
    }
    free(a);
    free(b);
}

/* Parses a buffer of masked 16-byte text frames (2-byte header, 4-byte key,
 * 10 bytes of payload) as a server would. The parser unmasks in place, so
 * each round starts from a fresh copy; the copy is a few percent of the
 * time and is included. */
static void bench_frames(void)
{
    enum { FRAME = 16, PAYLOAD = 10, COUNT = 4096 };
    static uint8_t pristine[FRAME * COUNT], work[FRAME * COUNT];
    static const uint8_t payload[PAYLOAD] = "hello wsk!";
    uint8_t key[4];
    for (size_t i = 0; i < COUNT; i++) {
        uint32_t r = next_rand();
        memcpy(key, &r, 4);
        int64_t n = wsk_frame_encode(pristine + i * FRAME, FRAME, WSK_FRAME_FIN | WSK_OP_TEXT,
                                     payload, PAYLOAD, key);
        if (n != FRAME) {
            fprintf(stderr, "frame encode returned %lld\n", (long long)n);
            exit(1);
        }
    }

    struct wsk_frame_config cfg;
    wsk_frame_config_init(&cfg);
    cfg.role = WSK_ROLE_SERVER;
    double best = 0, slice = seconds_per_figure / 10, total = now() + seconds_per_figure;
    do {
        uint64_t frames = 0;
        double start = now(), elapsed;
        do {
            memcpy(work, pristine, sizeof work);
            struct wsk_frame_parser p;
            wsk_frame_parser_init(&p, &cfg);
            size_t at = 0;
            while (at < sizeof work) {
                struct wsk_frame_chunk ch;
                bool has_chunk;
                int64_t n = wsk_frame_parse(&p, work + at, sizeof work - at, &ch, &has_chunk);
                if (n < 0) {
                    fprintf(stderr, "frame parse failed: %s\n", wsk_strerror((int)n));
                    exit(1);
                }
                at += (size_t)n;
                if (has_chunk) {
                    frames += ch.is_frame_end;
                    checksum += ch.len ? ch.data[0] : 0;
                }
            }
            elapsed = now() - start;
        } while (elapsed < slice);
        if ((double)frames / elapsed > best)
            best = (double)frames / elapsed;
    } while (now() < total);
    printf("frames    %d x %d B masked text   %6.1f Mframes/s  (%.2f GB/s)\n", COUNT, FRAME,
           best / 1e6, best * FRAME / 1e9);
}

/* One whole opening handshake through the core, both sides, as a server and
 * a client with permessage-deflate would run it: the client writes its
 * request and offer, the server parses the head, checks it, negotiates the
 * extension and writes the 101, the client parses and verifies the answer.
 * Plus, once per round, a 400 rejection, the other head the server writes.
 * No I/O: these are the instructions the handshake itself costs. */
static void handshake_round(void)
{
    static const char *const protos[] = {"chat", "superchat"};
    static const uint8_t random16[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    char key[25], offer[WSK_DEFLATE_HEADER_MAX], extra[64 + WSK_DEFLATE_HEADER_MAX];
    char request[1024], response[1024], reject[512], ext_value[WSK_DEFLATE_HEADER_MAX];
    struct wsk_deflate_config dcfg;
    wsk_deflate_config_init(&dcfg);
    dcfg.enabled = true;

    wsk_handshake_client_key(random16, key);
    int n = wsk_deflate_offer(offer, sizeof offer, &dcfg);
    snprintf(extra, sizeof extra, "Sec-WebSocket-Extensions: %s\r\n", n > 0 ? offer : "");
    struct wsk_handshake_client_request cr = {
        .host = "127.0.0.1:8080",
        .target = "/chat?room=1",
        .key = key,
        .subprotocols = protos,
        .num_subprotocols = 2,
        .origin = "http://127.0.0.1:8080",
        .extra_headers = extra,
    };
    int req_len = wsk_handshake_client_request(request, sizeof request, &cr);

    struct wsk_http_parser p;
    struct wsk_http_request req;
    wsk_http_parser_init(&p, 0);
    int rv = wsk_http_request_parse(&p, request, req_len > 0 ? (size_t)req_len : 0, &req);
    struct wsk_handshake_server_config sc = {.subprotocols = protos + 1, .num_subprotocols = 1};
    struct wsk_handshake_info info;
    int status = rv > 0 ? wsk_handshake_server_check(&req, &sc, &info) : 0;
    struct wsk_deflate_params params;
    int en = wsk_deflate_negotiate(req.headers, req.num_headers, &dcfg, &params, ext_value,
                                   sizeof ext_value);
    snprintf(extra, sizeof extra, "Sec-WebSocket-Extensions: %s\r\n", en > 0 ? ext_value : "");
    int resp_len = wsk_handshake_server_accept(response, sizeof response, &info, extra);

    struct wsk_http_response resp;
    wsk_http_parser_init(&p, 0);
    rv = wsk_http_response_parse(&p, response, resp_len > 0 ? (size_t)resp_len : 0, &resp);
    struct wsk_slice chosen = {0};
    int verdict = rv > 0 ? wsk_handshake_client_verify(&resp, key, protos, 2, &chosen) : -1;
    const struct wsk_slice *ext =
        wsk_http_header_get(resp.headers, resp.num_headers, "Sec-WebSocket-Extensions");
    int accepted = ext ? wsk_deflate_accept(ext, &dcfg, &params) : -1;
    int rej = wsk_handshake_server_reject(reject, sizeof reject, 400);
    if (status != 101 || verdict != 0 || chosen.len != 9 || accepted != 1 || rej <= 0) {
        fprintf(stderr,
                "handshake failed: status %d, verify %d, chosen %zu, deflate %d, "
                "reject %d\n",
                status, verdict, chosen.len, accepted, rej);
        exit(1);
    }
    checksum += (uint64_t)req_len + (uint64_t)resp_len + (uint64_t)rej + (uint8_t)response[40];
}

static void bench_handshake(void)
{
    double best = 0, slice = seconds_per_figure / 10, total = now() + seconds_per_figure;
    handshake_round();
    do {
        uint64_t rounds = 0;
        double start = now(), elapsed;
        do {
            handshake_round();
            rounds++;
            elapsed = now() - start;
        } while (elapsed < slice);
        if ((double)rounds / elapsed > best)
            best = (double)rounds / elapsed;
    } while (now() < total);
    printf("handshake both sides, deflate, a 400   %6.0f k/s  (%.2f us each)\n", best / 1e3,
           1e6 / best);
}

int main(int argc, char **argv)
{
    if (argc > 2 && strcmp(argv[1], "handshake") == 0) {
        long rounds = atol(argv[2]);
        for (long i = 0; i < rounds; i++)
            handshake_round();
        printf("checksum  %llu\n", (unsigned long long)checksum);
        return 0;
    }
    if (argc > 1)
        seconds_per_figure = atof(argv[1]);
    bench_size(64 * 1024);
    bench_size(16 * 1024 * 1024);
    bench_frames();
    bench_handshake();
    printf("checksum  %llu\n", (unsigned long long)checksum);
    return 0;
}
