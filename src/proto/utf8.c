/* Incremental, fail-fast UTF-8 validation (RFC 3629 section 4; the Unicode
 * Standard, Table 3-7 "Well-Formed UTF-8 Byte Sequences").
 *
 * A deterministic automaton reads one byte at a time. Its states are the
 * places inside a character where the set of allowed next bytes differs;
 * Cn means "n continuation bytes 80..BF still to come":
 *
 *   OK --00..7F---------> OK
 *   OK --C2..DF---------> C1 --80..BF--> OK
 *   OK --E1..EC,EE..EF--> C2 --80..BF--> C1
 *   OK --F1..F3---------> C3 --80..BF--> C2
 *   OK --E0--> E0 --A0..BF--> C1
 *   OK --ED--> ED --80..9F--> C1
 *   OK --F0--> F0 --90..BF--> C2
 *   OK --F4--> F4 --80..8F--> C2
 *
 * Every transition not drawn goes to BAD, which never leaves. E0, ED, F0 and
 * F4 exist only to narrow the second byte: that is what excludes overlong
 * forms (E0 80..9F, F0 80..8F), surrogates (ED A0..BF) and code points above
 * U+10FFFF (F4 90..BF). C0, C1 and F5..FF lead nowhere. Because the automaton
 * reaches BAD on the first byte that no valid text could continue with, the
 * validator fails at exactly that byte.
 *
 * The automaton is encoded as one 64-bit row per input byte (the technique
 * Per Vognsen described as a "shift-based DFA"): a state is a bit offset that
 * is a multiple of 6, and the row for byte b holds, at bit offset s, the
 * 6-bit offset of the state that b leads to from s. A step is then a single
 * table load and a shift, `s = row[b] >> (s & 63)`, and x86 shifts ignore
 * the upper count bits, so the mask costs nothing. The loop's dependency
 * chain is one shift per byte.
 *
 * Runs of ASCII at a character boundary are skipped 16 or 64 bytes at a
 * time with SSE2 (8 without) before the automaton sees them.
 */
#include "wsk/proto.h"

#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* States, as bit offsets into a row. OK is 0 so that a zeroed struct wsk_utf8
 * is a fresh validator. */
enum {
    S_OK = 0,  /* at a character boundary */
    S_BAD = 6, /* failed; sticky */
    S_C1 = 12, /* one more continuation byte 80..BF */
    S_C2 = 18, /* two more */
    S_C3 = 24, /* three more */
    S_E0 = 30, /* after E0: A0..BF, then one more */
    S_ED = 36, /* after ED: 80..9F, then one more */
    S_F0 = 42, /* after F0: 90..BF, then two more */
    S_F4 = 48, /* after F4: 80..8F, then two more */
};

#define T(from, to) ((uint64_t)(to) << (from))

/* A row lists the next state for each live state; BAD always stays BAD. */
#define ROW(ok, c1, c2, c3, e0, ed, f0, f4)                                                        \
    (T(S_OK, ok) | T(S_BAD, S_BAD) | T(S_C1, c1) | T(S_C2, c2) | T(S_C3, c3) | T(S_E0, e0) |       \
     T(S_ED, ed) | T(S_F0, f0) | T(S_F4, f4))

#define B S_BAD
/* Byte classes, each named after the bytes it covers. */
#define R_ASCII ROW(S_OK, B, B, B, B, B, B, B)
#define R_80_8F ROW(B, S_OK, S_C1, S_C2, B, S_C1, B, S_C2)
#define R_90_9F ROW(B, S_OK, S_C1, S_C2, B, S_C1, S_C2, B)
#define R_A0_BF ROW(B, S_OK, S_C1, S_C2, S_C1, B, S_C2, B)
#define R_NEVER ROW(B, B, B, B, B, B, B, B) /* C0, C1, F5..FF */
#define R_C2_DF ROW(S_C1, B, B, B, B, B, B, B)
#define R_E0    ROW(S_E0, B, B, B, B, B, B, B)
#define R_E1_EF ROW(S_C2, B, B, B, B, B, B, B) /* except ED */
#define R_ED    ROW(S_ED, B, B, B, B, B, B, B)
#define R_F0    ROW(S_F0, B, B, B, B, B, B, B)
#define R_F1_F3 ROW(S_C3, B, B, B, B, B, B, B)
#define R_F4    ROW(S_F4, B, B, B, B, B, B, B)

#define X2(r)  r, r
#define X4(r)  X2(r), X2(r)
#define X8(r)  X4(r), X4(r)
#define X16(r) X8(r), X8(r)

static const uint64_t utf8_rows[] = {
    X16(R_ASCII), X16(R_ASCII), X16(R_ASCII), X16(R_ASCII), /* 00..3F */
    X16(R_ASCII), X16(R_ASCII), X16(R_ASCII), X16(R_ASCII), /* 40..7F */
    X16(R_80_8F),                                           /* 80..8F */
    X16(R_90_9F),                                           /* 90..9F */
    X16(R_A0_BF), X16(R_A0_BF),                             /* A0..BF */
    X2(R_NEVER),                                            /* C0..C1 */
    X2(R_C2_DF),  X4(R_C2_DF),  X8(R_C2_DF),  X16(R_C2_DF), /* C2..DF */
    R_E0,                                                   /* E0 */
    X8(R_E1_EF),  X4(R_E1_EF),                              /* E1..EC */
    R_ED,                                                   /* ED */
    X2(R_E1_EF),                                            /* EE..EF */
    R_F0,                                                   /* F0 */
    R_F1_F3,      X2(R_F1_F3),                              /* F1..F3 */
    R_F4,                                                   /* F4 */
    R_NEVER,      X2(R_NEVER),  X8(R_NEVER),                /* F5..FF */
};

#undef B

/* A miscounted class would silently leave rows zero, which means "OK". */
_Static_assert(sizeof utf8_rows == 256 * sizeof utf8_rows[0], "one row per byte value");

/* The automaton runs over a block of bytes between checks for BAD and
 * chances to go back to the ASCII path. Right after a long ASCII run the
 * block is short, so a lone accented letter costs little; each time the
 * ASCII path finds next to nothing, the block doubles, so dense non-ASCII
 * text is not interrupted by checks that keep failing. */
#define UTF8_BLOCK_MIN 16
#define UTF8_BLOCK_MAX 256

#define STEP(st, b) ((st) = utf8_rows[(b)] >> ((st)&63))

/* Runs the automaton over s[0..len) from state st. Unrolling lets the loads
 * of later bytes and rows run ahead of the chain of shifts. */
static uint64_t run(const uint8_t *s, size_t len, uint64_t st)
{
    size_t i = 0;
    for (; len - i >= 8; i += 8) {
        STEP(st, s[i]);
        STEP(st, s[i + 1]);
        STEP(st, s[i + 2]);
        STEP(st, s[i + 3]);
        STEP(st, s[i + 4]);
        STEP(st, s[i + 5]);
        STEP(st, s[i + 6]);
        STEP(st, s[i + 7]);
    }
    for (; i < len; i++)
        STEP(st, s[i]);
    return st & 63;
}

#ifdef __SSE2__
static inline __m128i load16(const uint8_t *p)
{
    return _mm_loadu_si128((const __m128i *)p);
}
#endif

/* Returns the length of the run of ASCII bytes at the start of s. It looks
 * only at whole 16-byte groups (8-byte ones without SSE2), so it may stop
 * short of the first non-ASCII byte; the automaton handles ASCII too. */
static size_t ascii_prefix(const uint8_t *s, size_t len)
{
    size_t i = 0;
#ifdef __SSE2__
    for (; len - i >= 64; i += 64) {
        __m128i a = load16(s + i), b = load16(s + i + 16);
        __m128i c = load16(s + i + 32), d = load16(s + i + 48);
        if (_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(a, b), _mm_or_si128(c, d))) != 0)
            break;
    }
    for (; len - i >= 16; i += 16) {
        int m = _mm_movemask_epi8(load16(s + i));
        if (m != 0)
            return i + (size_t)__builtin_ctz((unsigned)m);
    }
#else
    for (; len - i >= 8; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if (w & 0x8080808080808080u)
            break;
    }
#endif
    return i;
}

void wsk_utf8_init(struct wsk_utf8 *u)
{
    u->state = S_OK;
}

int wsk_utf8_feed(struct wsk_utf8 *u, const uint8_t *s, size_t len)
{
    uint64_t st = u->state;
    size_t i = 0;

    size_t block = UTF8_BLOCK_MIN;
    while (st != S_BAD && i < len) {
        if (st == S_OK) {
            size_t ascii = ascii_prefix(s + i, len - i);
            i += ascii;
            if (i == len)
                break;
            if (ascii >= 16)
                block = UTF8_BLOCK_MIN;
            else if (block < UTF8_BLOCK_MAX)
                block *= 2;
        }
        size_t n = len - i < block ? len - i : block;
        st = run(s + i, n, st);
        i += n;
    }

    u->state = (uint8_t)st;
    return st == S_BAD ? WSK_EUTF8 : 0;
}

bool wsk_utf8_is_complete(const struct wsk_utf8 *u)
{
    return u->state == S_OK;
}

bool wsk_utf8_valid(const uint8_t *s, size_t len)
{
    struct wsk_utf8 u;
    wsk_utf8_init(&u);
    return wsk_utf8_feed(&u, s, len) == 0 && wsk_utf8_is_complete(&u);
}
