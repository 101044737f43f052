/* SHA-1 and base64; see sha1_internal.h. Written from FIPS 180-4 and
 * RFC 4648. The compression function keeps the 16-word message schedule in
 * a ring (W[t & 15]) and runs the rounds five at a time, renaming the
 * working variables instead of moving them. */
#include "proto/sha1_internal.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define WSK_SHA1_SHANI 1
#include <cpuid.h>
#include <immintrin.h>
#include <stdatomic.h>
#endif

static uint32_t rol(uint32_t x, unsigned n)
{
    return (x << n) | (x >> (32 - n));
}

static uint32_t load_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* One round: e += rol(a, 5) + f(b, c, d) + K + W; b = rol(b, 30); the five
 * variables then rotate by renaming in the next call, so no moves. */
#define ROUND(a, b, c, d, e, f, k, w)                                                              \
    do {                                                                                           \
        e += rol(a, 5) + (f) + (k) + (w);                                                          \
        b = rol(b, 30);                                                                            \
    } while (0)

#define F1(b, c, d) (d ^ (b & (c ^ d)))
#define F2(b, c, d) (b ^ c ^ d)
#define F3(b, c, d) ((b & c) | (d & (b | c)))

/* W[t] for t >= 16, in the 16-word ring. */
#define SCHED(t)                                                                                   \
    (w[(t)&15] = rol(w[((t) + 13) & 15] ^ w[((t) + 8) & 15] ^ w[((t) + 2) & 15] ^ w[(t)&15], 1))

/* Five rounds with the variables rotated by renaming; W from wexpr(t). */
#define FIVE(t, f, k, W)                                                                           \
    do {                                                                                           \
        ROUND(a, b, c, d, e, f(b, c, d), k, W(t));                                                 \
        ROUND(e, a, b, c, d, f(a, b, c), k, W((t) + 1));                                           \
        ROUND(d, e, a, b, c, f(e, a, b), k, W((t) + 2));                                           \
        ROUND(c, d, e, a, b, f(d, e, a), k, W((t) + 3));                                           \
        ROUND(b, c, d, e, a, f(c, d, e), k, W((t) + 4));                                           \
    } while (0)

#define WLOAD(t) w[t]

static void compress_portable(uint32_t h[5], const uint8_t block[64])
{
    uint32_t w[16];
    for (int t = 0; t < 16; t++)
        w[t] = load_be32(block + 4 * t);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    FIVE(0, F1, 0x5A827999u, WLOAD);
    FIVE(5, F1, 0x5A827999u, WLOAD);
    FIVE(10, F1, 0x5A827999u, WLOAD);
    /* Rounds 15..19 straddle the end of the loaded words. */
    ROUND(a, b, c, d, e, F1(b, c, d), 0x5A827999u, w[15]);
    ROUND(e, a, b, c, d, F1(a, b, c), 0x5A827999u, SCHED(16));
    ROUND(d, e, a, b, c, F1(e, a, b), 0x5A827999u, SCHED(17));
    ROUND(c, d, e, a, b, F1(d, e, a), 0x5A827999u, SCHED(18));
    ROUND(b, c, d, e, a, F1(c, d, e), 0x5A827999u, SCHED(19));
    for (int t = 20; t < 40; t += 5)
        FIVE(t, F2, 0x6ED9EBA1u, SCHED);
    for (int t = 40; t < 60; t += 5)
        FIVE(t, F3, 0x8F1BBCDCu, SCHED);
    for (int t = 60; t < 80; t += 5)
        FIVE(t, F2, 0xCA62C1D6u, SCHED);
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

#ifdef WSK_SHA1_SHANI
/* The same compression with the SHA extensions (Intel SDM, SHA1RNDS4 and
 * friends). ABCD live in one register with A in the top lane; E rides in the
 * top lane of a second one. Each SHA1RNDS4 does four rounds; its immediate
 * picks f and K (0..3 for rounds 0-19, 20-39, ...). SHA1NEXTE derives the next
 * group's E, rol(A, 30) from the ABCD before the previous group, and adds it
 * to that group's top schedule word. Message words are kept four per register
 * with the earliest in the top lane, so W[t..t+3] for t >= 16 is
 * msg2(msg1(W[t-16..], W[t-12..]) ^ W[t-8..], W[t-4..]). */
__attribute__((target("sha,sse4.1"))) static void compress_shani(uint32_t h[5],
                                                                 const uint8_t block[64])
{
    /* pshufb mask reversing all 16 bytes: big-endian words, W[0] on top. */
    const __m128i bswap = _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m128i abcd_in = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)h), 0x1B);
    const __m128i e_in = _mm_set_epi32((int)h[4], 0, 0, 0);
    __m128i m0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)block), bswap);
    __m128i m1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(block + 16)), bswap);
    __m128i m2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(block + 32)), bswap);
    __m128i m3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(block + 48)), bswap);
    __m128i abcd = abcd_in, prev, ew;

/* Four rounds on the words in m with function/constant selector f. */
#define SHANI4(f, m)                                                                               \
    do {                                                                                           \
        ew = _mm_sha1nexte_epu32(prev, m);                                                         \
        prev = abcd;                                                                               \
        abcd = _mm_sha1rnds4_epu32(abcd, ew, f);                                                   \
    } while (0)
/* The next four schedule words, replacing the oldest four in a. */
#define SHANI_SCHED(a, b, c, d)                                                                    \
    (a = _mm_sha1msg2_epu32(_mm_xor_si128(_mm_sha1msg1_epu32(a, b), c), d))

    /* Rounds 0-3: E comes straight from the state, not from SHA1NEXTE. */
    prev = abcd;
    abcd = _mm_sha1rnds4_epu32(abcd, _mm_add_epi32(e_in, m0), 0);
    SHANI4(0, m1);
    SHANI4(0, m2);
    SHANI4(0, m3);
    /* Rounds 16-79: schedule four words, then run four rounds on them. */
    SHANI_SCHED(m0, m1, m2, m3);
    SHANI4(0, m0); /* rounds 16-19 */
    SHANI_SCHED(m1, m2, m3, m0);
    SHANI4(1, m1); /* rounds 20-23 */
    SHANI_SCHED(m2, m3, m0, m1);
    SHANI4(1, m2); /* rounds 24-27 */
    SHANI_SCHED(m3, m0, m1, m2);
    SHANI4(1, m3); /* rounds 28-31 */
    SHANI_SCHED(m0, m1, m2, m3);
    SHANI4(1, m0); /* rounds 32-35 */
    SHANI_SCHED(m1, m2, m3, m0);
    SHANI4(1, m1); /* rounds 36-39 */
    SHANI_SCHED(m2, m3, m0, m1);
    SHANI4(2, m2); /* rounds 40-43 */
    SHANI_SCHED(m3, m0, m1, m2);
    SHANI4(2, m3); /* rounds 44-47 */
    SHANI_SCHED(m0, m1, m2, m3);
    SHANI4(2, m0); /* rounds 48-51 */
    SHANI_SCHED(m1, m2, m3, m0);
    SHANI4(2, m1); /* rounds 52-55 */
    SHANI_SCHED(m2, m3, m0, m1);
    SHANI4(2, m2); /* rounds 56-59 */
    SHANI_SCHED(m3, m0, m1, m2);
    SHANI4(3, m3); /* rounds 60-63 */
    SHANI_SCHED(m0, m1, m2, m3);
    SHANI4(3, m0); /* rounds 64-67 */
    SHANI_SCHED(m1, m2, m3, m0);
    SHANI4(3, m1); /* rounds 68-71 */
    SHANI_SCHED(m2, m3, m0, m1);
    SHANI4(3, m2); /* rounds 72-75 */
    SHANI_SCHED(m3, m0, m1, m2);
    SHANI4(3, m3); /* rounds 76-79 */
#undef SHANI4
#undef SHANI_SCHED

    /* E after round 79 is rol(A before rounds 76-79, 30); add the input E. */
    ew = _mm_sha1nexte_epu32(prev, e_in);
    abcd = _mm_add_epi32(abcd, abcd_in);
    _mm_storeu_si128((__m128i *)h, _mm_shuffle_epi32(abcd, 0x1B));
    h[4] = (uint32_t)_mm_extract_epi32(ew, 3);
}

/* Whether the CPU has the SHA extensions (CPUID.(EAX=7,ECX=0):EBX bit 29)
 * and SSE4.1 (CPUID.1:ECX bit 19). They use only XMM state, which every
 * x86-64 OS saves, so no XGETBV check is needed. The answer is cached as
 * 0 = not yet asked, 1 = no, 2 = yes. Relaxed atomics suffice: every
 * thread computes the same value, so racing first calls just ask CPUID
 * twice and store the same answer, and nothing else is published through
 * this variable. */
static atomic_int sha_ni_cached;

static int have_sha_ni(void)
{
    int v = atomic_load_explicit(&sha_ni_cached, memory_order_relaxed);
    if (v == 0) {
        unsigned eax, ebx, ecx, edx;
        int sse41 = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 19));
        int sha = __get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) && (ebx & (1u << 29));
        v = sse41 && sha ? 2 : 1;
        atomic_store_explicit(&sha_ni_cached, v, memory_order_relaxed);
    }
    return v == 2;
}
#endif

static void compress(uint32_t h[5], const uint8_t block[64])
{
#ifdef WSK_SHA1_SHANI
    if (have_sha_ni()) {
        compress_shani(h, block);
        return;
    }
#endif
    compress_portable(h, block);
}

void wsk__sha1_init(struct wsk__sha1 *s)
{
    static const uint32_t iv[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    memcpy(s->h, iv, sizeof iv);
    s->total = 0;
    s->block_len = 0;
}

void wsk__sha1_update(struct wsk__sha1 *s, const void *data, size_t len)
{
    const uint8_t *p = data;
    s->total += len;
    if (s->block_len) {
        size_t take = 64 - s->block_len < len ? 64 - s->block_len : len;
        memcpy(s->block + s->block_len, p, take);
        s->block_len += take;
        p += take;
        len -= take;
        if (s->block_len < 64)
            return;
        compress(s->h, s->block);
        s->block_len = 0;
    }
    for (; len >= 64; p += 64, len -= 64)
        compress(s->h, p);
    if (len)
        memcpy(s->block, p, len);
    s->block_len = len;
}

void wsk__sha1_final(struct wsk__sha1 *s, uint8_t out[20])
{
    uint64_t bits = s->total * 8;
    /* 0x80, zeros up to 56 mod 64, then the length in bits, big-endian. */
    s->block[s->block_len++] = 0x80;
    if (s->block_len > 56) {
        memset(s->block + s->block_len, 0, 64 - s->block_len);
        compress(s->h, s->block);
        s->block_len = 0;
    }
    memset(s->block + s->block_len, 0, 56 - s->block_len);
    for (int i = 0; i < 8; i++)
        s->block[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
    compress(s->h, s->block);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (uint8_t)(s->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)s->h[i];
    }
}

void wsk__base64_encode(char *out, const uint8_t *in, size_t len)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i = 0;
    for (; len - i >= 3; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *out++ = abc[v >> 18];
        *out++ = abc[(v >> 12) & 63];
        *out++ = abc[(v >> 6) & 63];
        *out++ = abc[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        *out++ = abc[v >> 18];
        *out++ = abc[(v >> 12) & 63];
        *out++ = '=';
        *out++ = '=';
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        *out++ = abc[v >> 18];
        *out++ = abc[(v >> 12) & 63];
        *out++ = abc[(v >> 6) & 63];
        *out++ = '=';
    }
    *out = '\0';
}
