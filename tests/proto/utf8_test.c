/* Tests for the incremental UTF-8 validator (src/proto/utf8.c).
 *
 * Every input is checked whole, one byte at a time (the failing byte must be
 * exactly the first one no valid text could continue with), split in two at
 * every position and in random pieces. Expected results come from a table of
 * vectors (boundaries, Autobahn TestSuite case 6 style inputs) and, for
 * random inputs, from two reference decoders written here without tables:
 * one decodes whole code points, the other computes which code points a
 * partial sequence could still become.
 */
#include "wsk/proto.h"
#include "wsk_test.h"

#include <sys/mman.h>
#include <unistd.h>

static uint64_t seed = 0x0C0FFEE5;

/* ---- reference decoders ------------------------------------------------ */

/* Decodes code point by code point and rejects what RFC 3629 forbids:
 * overlong forms, surrogates, values above U+10FFFF, bad or missing
 * continuation bytes. */
static bool ref_valid(const uint8_t *s, size_t len)
{
    static const uint32_t min_for_len[5] = {0, 0, 0x80, 0x800, 0x10000};
    size_t i = 0;
    while (i < len) {
        uint8_t b = s[i];
        size_t n;
        uint32_t cp;
        if (b < 0x80) {
            i++;
            continue;
        } else if ((b & 0xE0) == 0xC0) {
            n = 2;
            cp = b & 0x1F;
        } else if ((b & 0xF0) == 0xE0) {
            n = 3;
            cp = b & 0x0F;
        } else if ((b & 0xF8) == 0xF0) {
            n = 4;
            cp = b & 0x07;
        } else {
            return false;
        }
        if (len - i < n)
            return false;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min_for_len[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += n;
    }
    return true;
}

/* True when some Unicode scalar value lies in [lo, hi] and is at least min. */
static bool range_has_scalar(uint32_t lo, uint32_t hi, uint32_t min)
{
    if (lo < min)
        lo = min;
    if (hi > 0x10FFFF)
        hi = 0x10FFFF;
    if (lo > hi)
        return false;
    return !(lo >= 0xD800 && hi <= 0xDFFF);
}

/* Returns the index of the first byte after which s[0..index] is no longer a
 * prefix of any valid UTF-8 text, or -1 when all of s is such a prefix; then
 * *complete says whether s ends on a character boundary. After k bytes of an
 * n-byte sequence, the code point lies in [bits << r, bits << r | (2^r - 1)]
 * with r = 6 (n - k); the prefix is dead once that range holds no scalar value
 * encodable in n bytes. */
static long ref_fail_index(const uint8_t *s, size_t len, bool *complete)
{
    size_t i = 0;
    *complete = false;
    while (i < len) {
        uint8_t b = s[i];
        size_t n;
        uint32_t cp, min;
        if (b < 0x80) {
            i++;
            continue;
        } else if ((b & 0xE0) == 0xC0) {
            n = 2, cp = b & 0x1F, min = 0x80;
        } else if ((b & 0xF0) == 0xE0) {
            n = 3, cp = b & 0x0F, min = 0x800;
        } else if ((b & 0xF8) == 0xF0) {
            n = 4, cp = b & 0x07, min = 0x10000;
        } else {
            return (long)i;
        }
        for (size_t k = 1;; k++) {
            unsigned rest = 6 * (unsigned)(n - k);
            uint32_t lo = cp << rest, hi = lo | ((1u << rest) - 1);
            if (!range_has_scalar(lo, hi, min))
                return (long)(i + k - 1);
            if (k == n)
                break;
            if (i + k == len)
                return -1; /* truncated: a prefix, not complete */
            if ((s[i + k] & 0xC0) != 0x80)
                return (long)(i + k);
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        i += n;
    }
    *complete = true;
    return -1;
}

/* ---- checking one input every way ---------------------------------------- */

static int mismatches;

#define EXPECT(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            if (mismatches++ < 20) {                                                               \
                fprintf(stderr, "%s:%d: %s: ", __FILE__, __LINE__, #cond);                         \
                fprintf(stderr, __VA_ARGS__);                                                      \
                fputc('\n', stderr);                                                               \
            }                                                                                      \
        }                                                                                          \
    } while (0)

/* The input in hex for messages; only evaluated when a check fails. */
static const char *hex(const uint8_t *s, size_t len)
{
    static char out[200];
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < len && o + 4 < sizeof out; i++)
        o += (size_t)snprintf(out + o, sizeof out - o, "%02X ", s[i]);
    return out;
}
#define H hex(s, len)

/* Feeds s in the pieces that end at cuts[0..ncuts) (then the rest). Returns
 * where the piece in which the validator first failed starts, or -1, and
 * sets *fail_piece_end to where it ends: a feed reports only whether its
 * piece failed, not where. Checks that the error is sticky. */
static long feed_pieces(const uint8_t *s, size_t len, const size_t *cuts, size_t ncuts,
                        bool *complete, size_t *fail_piece_end)
{
    struct wsk_utf8 u;
    long failed = -1;
    size_t at = 0;
    wsk_utf8_init(&u);
    *fail_piece_end = 0;
    for (size_t c = 0; c <= ncuts; c++) {
        size_t end = c < ncuts ? cuts[c] : len;
        int rv = wsk_utf8_feed(&u, s + at, end - at);
        EXPECT(rv == 0 || rv == WSK_EUTF8, "rv %d", rv);
        if (failed >= 0) {
            EXPECT(rv == WSK_EUTF8, "error not sticky");
        } else if (rv != 0) {
            failed = (long)at;
            *fail_piece_end = end;
        }
        at = end;
    }
    if (failed >= 0) {
        EXPECT(wsk_utf8_feed(&u, (const uint8_t *)"a", 1) == WSK_EUTF8, "not sticky on ASCII");
        EXPECT(wsk_utf8_feed(&u, s, 0) == WSK_EUTF8, "not sticky on empty feed");
    }
    *complete = wsk_utf8_is_complete(&u);
    return failed;
}

/* Checks s every way against the expected failure index (-1: none) and
 * completeness. */
static void check_input(const uint8_t *s, size_t len, long want_fail, bool want_complete,
                        bool every_split)
{
    bool want_valid = want_fail < 0 && want_complete;
    bool complete;
    size_t piece_end;

    EXPECT(wsk_utf8_valid(s, len) == want_valid, "valid(%s)", H);

    /* Whole. */
    long f = feed_pieces(s, len, NULL, 0, &complete, &piece_end);
    EXPECT((f >= 0) == (want_fail >= 0), "whole feed of %s", H);
    EXPECT(complete == want_valid, "whole is_complete of %s", H);

    /* Byte by byte: the exact failing byte. For short inputs, is_complete
     * after every byte must also match the reference on that prefix. */
    {
        struct wsk_utf8 u = {0};
        long first = -1;
        for (size_t i = 0; i < len; i++) {
            int rv = wsk_utf8_feed(&u, s + i, 1);
            if (rv != 0 && first < 0)
                first = (long)i;
            if (first >= 0) {
                EXPECT(rv == WSK_EUTF8 && !wsk_utf8_is_complete(&u), "sticky at %zu in %s", i, H);
            } else if (every_split) {
                bool prefix_complete;
                ref_fail_index(s, i + 1, &prefix_complete);
                EXPECT(wsk_utf8_is_complete(&u) == prefix_complete, "is_complete after %zu of %s",
                       i, H);
            }
        }
        EXPECT(first == want_fail, "bytewise fails at %ld, want %ld: %s", first, want_fail, H);
        EXPECT(wsk_utf8_is_complete(&u) == want_valid, "bytewise is_complete of %s", H);
    }

    /* Two pieces, split everywhere. */
    if (every_split) {
        for (size_t cut = 0; cut <= len; cut++) {
            f = feed_pieces(s, len, &cut, 1, &complete, &piece_end);
            long want_piece = want_fail < 0 ? -1 : (size_t)want_fail < cut ? 0 : (long)cut;
            EXPECT(f == want_piece, "split at %zu of %s: fails in piece at %ld, want %ld", cut, H,
                   f, want_piece);
            EXPECT(complete == want_valid, "split at %zu of %s: is_complete", cut, H);
        }
    }

    /* Random pieces: the failure shows up in the piece holding the byte. */
    for (int round = 0; round < 3; round++) {
        size_t cuts[16] = {0}, n = 0, at = 0;
        while (n < 16 && at < len) {
            at += 1 + (size_t)(wsk_test_rand(&seed) % (len - at < 40 ? len - at : 40));
            if (at < len)
                cuts[n++] = at;
        }
        f = feed_pieces(s, len, cuts, n, &complete, &piece_end);
        if (want_fail < 0)
            EXPECT(f < 0, "random split of %s fails", H);
        else
            EXPECT(f >= 0 && f <= want_fail && (long)piece_end > want_fail,
                   "random split of %s: piece [%ld, %zu) does not hold byte %ld", H, f, piece_end,
                   want_fail);
        EXPECT(complete == want_valid, "random split of %s: is_complete", H);
    }
}

/* Checks an input against the reference decoders, and them against each
 * other. */
static void check_against_ref(const uint8_t *s, size_t len, bool every_split)
{
    bool complete;
    long fail = ref_fail_index(s, len, &complete);
    EXPECT(ref_valid(s, len) == (fail < 0 && complete), "references disagree on %s", H);
    check_input(s, len, fail, complete, every_split);
}

/* ---- vectors ----------------------------------------------------------------- */

struct vector {
    const char *name;
    const char *bytes;
    size_t len;
    long fail_at;  /* index of the failing byte, -1 when none */
    bool complete; /* ends on a character boundary (when it does not fail) */
};

#define OK(name, lit)                                                                              \
    {                                                                                              \
        name, lit, sizeof(lit) - 1, -1, true                                                       \
    }
#define PARTIAL(name, lit)                                                                         \
    {                                                                                              \
        name, lit, sizeof(lit) - 1, -1, false                                                      \
    }
#define BAD(name, lit, index)                                                                      \
    {                                                                                              \
        name, lit, sizeof(lit) - 1, index, false                                                   \
    }

#define KOSME "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"

static const struct vector vectors[] = {
    /* Valid. */
    OK("empty", ""),
    OK("ascii", "Hello, world"),
    OK("nul", "\x00"),
    OK("ascii 40", "0123456789012345678901234567890123456789"),
    OK("autobahn 6.2", "Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!"),
    OK("kosme", KOSME),
    OK("U+007F", "\x7f"),
    OK("U+0080", "\xc2\x80"),
    OK("U+07FF", "\xdf\xbf"),
    OK("U+0800", "\xe0\xa0\x80"),
    OK("U+0FFF", "\xe0\xbf\xbf"),
    OK("U+1000", "\xe1\x80\x80"),
    OK("U+D7FF", "\xed\x9f\xbf"),
    OK("U+E000", "\xee\x80\x80"),
    OK("U+FFFD", "\xef\xbf\xbd"),
    OK("U+FFFE", "\xef\xbf\xbe"),
    OK("U+FFFF", "\xef\xbf\xbf"),
    OK("U+10000", "\xf0\x90\x80\x80"),
    OK("U+3FFFF", "\xf0\xbf\xbf\xbf"),
    OK("U+40000", "\xf1\x80\x80\x80"),
    OK("U+FFFFF", "\xf3\xbf\xbf\xbf"),
    OK("U+100000", "\xf4\x80\x80\x80"),
    OK("U+10FFFF", "\xf4\x8f\xbf\xbf"),
    OK("U+1F600", "\xf0\x9f\x98\x80"),
    OK("noncharacters", "\xef\xb7\x90\xef\xb7\xaf\xf0\x9f\xbf\xbe\xf4\x8f\xbf\xbe"),
    OK("mixed", "a\xc3\xa9" KOSME "\xf0\x9f\x98\x80z"),
    OK("ascii then 2-byte at 17", "0123456789abcdefg\xc3\xa9"),
    OK("ascii 70 then 4-byte",
       "0123456789012345678901234567890123456789012345678901234567890123456789"
       "\xf4\x8f\xbf\xbf"),

    /* Valid prefixes that stop inside a character. */
    PARTIAL("C2", "\xc2"),
    PARTIAL("DF", "\xdf"),
    PARTIAL("E0", "\xe0"),
    PARTIAL("E0 A0", "\xe0\xa0"),
    PARTIAL("ED 9F", "\xed\x9f"),
    PARTIAL("EF BF", "\xef\xbf"),
    PARTIAL("F0 90", "\xf0\x90"),
    PARTIAL("F0 90 80", "\xf0\x90\x80"),
    PARTIAL("F4 8F BF", "\xf4\x8f\xbf"),
    PARTIAL("kosme then CE", KOSME "\xce"),
    PARTIAL("kosme then E1 BD", KOSME "\xe1\xbd"),
    PARTIAL("ascii 20 then F1", "01234567890123456789\xf1"),

    /* Leads that can never start a character. */
    BAD("C0", "\xc0", 0),
    BAD("C1", "\xc1", 0),
    BAD("F5", "\xf5", 0),
    BAD("F7 BF BF BF", "\xf7\xbf\xbf\xbf", 0),
    BAD("F8 5-byte", "\xf8\x88\x80\x80\x80", 0),
    BAD("FC 6-byte", "\xfc\x84\x80\x80\x80\x80", 0),
    BAD("FE", "\xfe", 0),
    BAD("FF", "\xff", 0),
    BAD("FE FE FF FF", "\xfe\xfe\xff\xff", 0),
    BAD("a C0 b",
        "a\xc0"
        "b",
        1),
    BAD("lonely starts C0 20", "\xc0\x20\xc1\x20", 0),

    /* Lone or extra continuation bytes. */
    BAD("80", "\x80", 0),
    BAD("BF", "\xbf", 0),
    BAD("80 BF", "\x80\xbf", 0),
    BAD("a 80", "a\x80", 1),
    BAD("C2 80 80", "\xc2\x80\x80", 2),
    BAD("E1 80 80 80", "\xe1\x80\x80\x80", 3),
    BAD("F1 80 80 80 80", "\xf1\x80\x80\x80\x80", 4),
    BAD("kosme then 80", KOSME "\x80", 11),

    /* Missing continuation bytes: the next byte is not one. */
    BAD("C2 41",
        "\xc2"
        "A",
        1),
    BAD("E0 20", "\xe0\x20", 1),
    BAD("E1 80 41",
        "\xe1\x80"
        "A",
        2),
    BAD("F1 80 80 41",
        "\xf1\x80\x80"
        "A",
        3),
    BAD("C2 C2", "\xc2\xc2", 1),
    BAD("DF E0", "\xdf\xe0", 1),

    /* Overlong forms fail at the first byte that makes them overlong. */
    BAD("C0 80", "\xc0\x80", 0),
    BAD("C0 AF", "\xc0\xaf", 0),
    BAD("C1 BF", "\xc1\xbf", 0),
    BAD("E0 80 80", "\xe0\x80\x80", 1),
    BAD("E0 80 AF", "\xe0\x80\xaf", 1),
    BAD("E0 9F BF", "\xe0\x9f\xbf", 1),
    BAD("F0 80 80 80", "\xf0\x80\x80\x80", 1),
    BAD("F0 80 80 AF", "\xf0\x80\x80\xaf", 1),
    BAD("F0 8F BF BF", "\xf0\x8f\xbf\xbf", 1),
    BAD("F0 80 (truncated)", "\xf0\x80", 1),

    /* Surrogates. */
    BAD("ED A0 80", "\xed\xa0\x80", 1),
    BAD("ED AD BF", "\xed\xad\xbf", 1),
    BAD("ED AE 80", "\xed\xae\x80", 1),
    BAD("ED AF BF", "\xed\xaf\xbf", 1),
    BAD("ED B0 80", "\xed\xb0\x80", 1),
    BAD("ED BE 80", "\xed\xbe\x80", 1),
    BAD("ED BF BF", "\xed\xbf\xbf", 1),
    BAD("ED A0 (truncated)", "\xed\xa0", 1),
    BAD("paired surrogates", "\xed\xa0\x80\xed\xb0\x80", 1),
    BAD("kosme surrogate edited (autobahn 6.4.3)",
        KOSME "\xed\xa0\x80"
              "edited",
        12),

    /* Above U+10FFFF. */
    BAD("F4 90 80 80", "\xf4\x90\x80\x80", 1),
    BAD("F4 BF BF BF", "\xf4\xbf\xbf\xbf", 1),
    BAD("F4 90 (truncated)", "\xf4\x90", 1),
    BAD("kosme F4 90 80 80 edited (autobahn 6.4.1)",
        KOSME "\xf4\x90\x80\x80"
              "edited",
        12),

    /* Fast-path boundaries: errors after whole ASCII blocks. */
    BAD("ascii 16 then 80", "0123456789abcdef\x80", 16),
    BAD("ascii 31 then FF", "0123456789abcdef0123456789abcde\xff", 31),
    BAD("ascii 64 then ED A0",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\xed\xa0", 65),
    BAD("ascii 70 then E0 80",
        "0123456789012345678901234567890123456789012345678901234567890123456789\xe0\x80", 71),
};

static void test_utf8_vectors(void)
{
    mismatches = 0;
    for (size_t v = 0; v < sizeof vectors / sizeof vectors[0]; v++) {
        const struct vector *t = &vectors[v];
        const uint8_t *s = (const uint8_t *)t->bytes;
        bool complete;
        long fail = ref_fail_index(s, t->len, &complete);
        EXPECT(fail == t->fail_at, "reference fails %s at %ld", t->name, fail);
        if (fail < 0)
            EXPECT(complete == t->complete, "reference is_complete of %s", t->name);
        EXPECT(ref_valid(s, t->len) == (t->fail_at < 0 && t->complete), "ref_valid(%s)", t->name);
        check_input(s, t->len, t->fail_at, t->complete, true);
    }
    CHECK_EQ_INT(mismatches, 0);
}

/* A zeroed struct is a fresh validator, and init clears an error. */
static void test_utf8_init_and_zero(void)
{
    struct wsk_utf8 u = {0};
    CHECK(wsk_utf8_is_complete(&u));
    CHECK_EQ_INT(wsk_utf8_feed(&u, (const uint8_t *)"\xc3", 1), 0);
    CHECK(!wsk_utf8_is_complete(&u));
    CHECK_EQ_INT(wsk_utf8_feed(&u, (const uint8_t *)"\xa9", 1), 0);
    CHECK(wsk_utf8_is_complete(&u));
    CHECK_EQ_INT(wsk_utf8_feed(&u, (const uint8_t *)"\xff", 1), WSK_EUTF8);
    CHECK(!wsk_utf8_is_complete(&u));
    CHECK_EQ_INT(wsk_utf8_feed(&u, (const uint8_t *)"abc", 3), WSK_EUTF8);
    wsk_utf8_init(&u);
    CHECK(wsk_utf8_is_complete(&u));
    CHECK_EQ_INT(wsk_utf8_feed(&u, (const uint8_t *)"abc", 3), 0);
    CHECK(wsk_utf8_valid(NULL, 0));
}

/* Every one- and two-byte input, every three-byte input that starts with a
 * non-ASCII byte, and four-byte inputs built from the bytes where the
 * allowed ranges change. */
static void test_utf8_exhaustive_short(void)
{
    static const uint8_t edges[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF,
                                    0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE,
                                    0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xF7, 0xF8, 0xFF};
    enum { NE = sizeof edges };
    uint8_t s[4];
    mismatches = 0;
    for (unsigned a = 0; a < 256; a++) {
        s[0] = (uint8_t)a;
        check_against_ref(s, 1, true);
        for (unsigned b = 0; b < 256; b++) {
            s[1] = (uint8_t)b;
            check_against_ref(s, 2, true);
        }
    }
    /* Three bytes: whole and byte by byte only, against the references. */
    for (unsigned a = 0x80; a < 256; a++) {
        for (unsigned b = 0; b < 256; b++) {
            for (unsigned c = 0; c < 256; c++) {
                s[0] = (uint8_t)a, s[1] = (uint8_t)b, s[2] = (uint8_t)c;
                bool complete;
                long fail = ref_fail_index(s, 3, &complete);
                bool want = fail < 0 && complete;
                EXPECT(ref_valid(s, 3) == want, "references disagree on %02X %02X %02X", a, b, c);
                EXPECT(wsk_utf8_valid(s, 3) == want, "valid(%02X %02X %02X)", a, b, c);
                struct wsk_utf8 u = {0};
                long first = -1;
                for (int i = 0; i < 3 && first < 0; i++) {
                    if (wsk_utf8_feed(&u, s + i, 1) != 0)
                        first = i;
                }
                EXPECT(first == fail, "%02X %02X %02X fails at %ld, want %ld", a, b, c, first,
                       fail);
            }
        }
    }
    for (unsigned a = 0; a < NE; a++)
        for (unsigned b = 0; b < NE; b++)
            for (unsigned c = 0; c < NE; c++)
                for (unsigned d = 0; d < NE; d++) {
                    s[0] = edges[a], s[1] = edges[b], s[2] = edges[c], s[3] = edges[d];
                    check_against_ref(s, 4, true);
                }
    CHECK_EQ_INT(mismatches, 0);
}

/* ---- random inputs ----------------------------------------------------------- */

/* Writes cp in the UTF-8 bit pattern of n bytes, even when that is overlong or
 * encodes a surrogate or a value above U+10FFFF. */
static size_t encode_n(uint8_t *out, uint32_t cp, size_t n)
{
    static const uint8_t lead[5] = {0, 0x00, 0xC0, 0xE0, 0xF0};
    for (size_t k = n - 1; k > 0; k--) {
        out[k] = (uint8_t)(0x80 | (cp & 0x3F));
        cp >>= 6;
    }
    out[0] = (uint8_t)(lead[n] | cp);
    return n;
}

static size_t encode(uint8_t *out, uint32_t cp)
{
    return encode_n(out, cp, cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4);
}

/* A code point near a boundary where the encoding changes, or anywhere. */
static uint32_t interesting_cp(void)
{
    static const uint32_t edges[] = {0x0,      0x7F,     0x80,     0x7FF,   0x800,   0xFFF,
                                     0x1000,   0xD7FF,   0xD800,   0xDFFF,  0xE000,  0xFFFD,
                                     0xFFFF,   0x10000,  0x3FFFF,  0x40000, 0xFFFFF, 0x100000,
                                     0x10FFFF, 0x110000, 0x13FFFF, 0x1FFFFF};
    uint64_t r = wsk_test_rand(&seed);
    switch (r % 4) {
    case 0: {
        uint32_t e = edges[(r >> 8) % (sizeof edges / sizeof edges[0])];
        int delta = (int)((r >> 16) % 5) - 2;
        uint32_t cp = (uint32_t)((int64_t)e + delta);
        return cp > 0x1FFFFF ? e : cp;
    }
    case 1:
        return (uint32_t)((r >> 8) % 0x800);
    case 2:
        return (uint32_t)((r >> 8) % 0x10000);
    default:
        return (uint32_t)((r >> 8) % 0x110000);
    }
}

/* Builds a random input of at most cap bytes: mostly ASCII runs and
 * characters (occasionally surrogates or out of range), with some overlong
 * forms, truncated characters and bytes where the rules change. */
static size_t random_text(uint8_t *out, size_t cap)
{
    static const uint8_t hot[] = {0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2,
                                  0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1,
                                  0xF3, 0xF4, 0xF5, 0xF7, 0xF8, 0xFE, 0xFF, 0x00, 0x7F};
    size_t target = (size_t)(wsk_test_rand(&seed) % (wsk_test_rand(&seed) % 8 ? 24 : cap));
    size_t len = 0;
    bool clean = wsk_test_rand(&seed) % 3 == 0; /* only well-formed characters */
    while (len + 4 <= cap && len < target) {
        uint64_t r = wsk_test_rand(&seed);
        unsigned kind = clean ? (unsigned)(r % 3) : (unsigned)(r % 16);
        r >>= 8;
        if (kind == 0) {
            size_t n = 1 + (size_t)(r % (r % 4 ? 4 : 40));
            for (size_t i = 0; i < n && len + 4 < cap; i++)
                out[len++] = (uint8_t)(0x20 + (wsk_test_rand(&seed) % 95));
        } else if (kind <= 8) {
            uint32_t cp = interesting_cp();
            if (clean && (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)))
                cp = 0xFFFD;
            len += encode(out + len, cp);
        } else if (kind <= 10) {
            out[len++] = hot[r % sizeof hot];
        } else if (kind == 11) {
            out[len++] = (uint8_t)r;
        } else if (kind == 12) {
            /* Overlong: one byte more than needed. */
            uint32_t cp = interesting_cp() & 0xFFFF;
            size_t n = cp < 0x80 ? 2 : cp < 0x800 ? 3 : 4;
            len += encode_n(out + len, cp, n);
        } else {
            /* A character cut short. */
            uint8_t tmp[4];
            size_t n = encode(tmp, interesting_cp());
            size_t keep = n > 1 ? 1 + (size_t)(r % (n - 1)) : 1;
            memcpy(out + len, tmp, keep);
            len += keep;
        }
    }
    /* Some well-formed texts stop inside their last character. */
    if (clean && wsk_test_rand(&seed) % 3 == 0 && len + 4 <= cap) {
        uint8_t tmp[4];
        uint32_t cp = 0x80 + (uint32_t)(wsk_test_rand(&seed) % (0x110000 - 0x80));
        if (cp >= 0xD800 && cp <= 0xDFFF)
            cp = 0xFFFD;
        size_t n = encode(tmp, cp);
        size_t keep = 1 + (size_t)(wsk_test_rand(&seed) % (n - 1));
        memcpy(out + len, tmp, keep);
        len += keep;
    }
    return len;
}

static void test_utf8_random_differential(void)
{
    enum { ROUNDS = 200000, CAP = 300 };
    uint8_t buf[CAP];
    long valid = 0, partial = 0, failed = 0;
    mismatches = 0;
    for (int round = 0; round < ROUNDS; round++) {
        size_t len = random_text(buf, CAP);
        bool complete;
        long fail = ref_fail_index(buf, len, &complete);
        if (fail >= 0)
            failed++;
        else if (complete)
            valid++;
        else
            partial++;
        check_against_ref(buf, len, len <= 24);
    }
    printf("     %ld valid, %ld valid prefixes, %ld invalid\n", valid, partial, failed);
    /* The generator must exercise all three outcomes in earnest. */
    CHECK(valid > ROUNDS / 10);
    CHECK(partial > ROUNDS / 50);
    CHECK(failed > ROUNDS / 10);
    CHECK_EQ_INT(mismatches, 0);
}

/* Long texts exercise the ASCII path and the block sizes of the automaton:
 * ASCII, dense two-byte and mixed backgrounds with characters and errors
 * inserted at every position around the block boundaries (an insertion may
 * also cut a background character in two). */
static void test_utf8_long_runs(void)
{
    static const char *const inserts[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
                                          "\x80",     "\xc0\xaf",     "\xed\xa0\x80",
                                          "\xf4\x90", "\xe2\x82",     "\xff"};
    static const char *const backgrounds[] = {"x", "\xc3\xa9",
                                              "ab\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"};
    static const size_t tails[] = {0, 1, 5, 40};
    uint8_t buf[700];
    mismatches = 0;
    for (size_t bg = 0; bg < sizeof backgrounds / sizeof backgrounds[0]; bg++) {
        size_t bg_len = strlen(backgrounds[bg]);
        for (size_t ins = 0; ins < sizeof inserts / sizeof inserts[0]; ins++) {
            size_t ilen = strlen(inserts[ins]);
            for (size_t pos = 0; pos < 600; pos += pos < 100 ? 1 : 7) {
                for (size_t t = 0; t < sizeof tails / sizeof tails[0]; t++) {
                    size_t len = pos + ilen + tails[t];
                    for (size_t i = 0; i < len; i++)
                        buf[i] = (uint8_t)backgrounds[bg][i % bg_len];
                    memcpy(buf + pos, inserts[ins], ilen);
                    check_against_ref(buf, len, false);
                }
            }
        }
    }
    CHECK_EQ_INT(mismatches, 0);
}

/* Texts that end right before a PROT_NONE page: no byte past the end is
 * read, whatever the length. */
static void test_utf8_guard_page(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uint8_t *map = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(map != MAP_FAILED);
    if (map == MAP_FAILED)
        return;
    CHECK(mprotect(map + page, page, PROT_NONE) == 0);
    uint8_t *end = map + page;
    mismatches = 0;
    for (size_t len = 0; len <= 1000; len++) {
        uint8_t *s = end - len;
        memset(s, 'a', len);
        EXPECT(wsk_utf8_valid(s, len), "ascii %zu", len);
        if (len >= 2) {
            memcpy(end - 2, "\xc3\xa9", 2);
            EXPECT(wsk_utf8_valid(s, len), "ascii then e-acute %zu", len);
            end[-1] = 0xF0;
            EXPECT(!wsk_utf8_valid(s, len), "truncated %zu", len);
            end[-2] = 0xF0;
            end[-1] = 'a';
            EXPECT(!wsk_utf8_valid(s, len), "F0 then ASCII %zu", len);
        }
    }
    CHECK_EQ_INT(mismatches, 0);
    munmap(map, 2 * page);
}

int main(void)
{
    WSK_RUN(test_utf8_vectors);
    WSK_RUN(test_utf8_init_and_zero);
    WSK_RUN(test_utf8_exhaustive_short);
    WSK_RUN(test_utf8_random_differential);
    WSK_RUN(test_utf8_long_runs);
    WSK_RUN(test_utf8_guard_page);
    WSK_TEST_END();
}
