/* Differential fuzz target for the UTF-8 validator (src/proto/utf8.c).
 *
 * The input is the text. It is validated whole, one byte at a time and in
 * pieces whose sizes come from a hash of the input, and every answer is
 * compared with a reference decoder written here without tables: the same
 * verdict, the same failing byte, the same completeness. Any difference
 * aborts.
 */
#include "wsk/proto.h"

#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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

/* Returns the index of the first byte at which s stops being a prefix of
 * valid UTF-8, or -1 (then *complete says whether s ends on a character
 * boundary). After k bytes of an n-byte sequence the code point is known up
 * to its low 6 (n - k) bits; the prefix is dead once that range holds no
 * scalar value that needs n bytes. */
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
                return -1;
            if ((s[i + k] & 0xC0) != 0x80)
                return (long)(i + k);
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        i += n;
    }
    *complete = true;
    return -1;
}

static void fail(const char *what, size_t size)
{
    fprintf(stderr, "utf8_fuzz: %s (input of %zu bytes)\n", what, size);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bool ref_complete;
    long ref_fail = ref_fail_index(data, size, &ref_complete);
    bool ref_ok = ref_fail < 0 && ref_complete;
    struct wsk_utf8 u;

    if (wsk_utf8_valid(data, size) != ref_ok)
        fail("wsk_utf8_valid differs from the reference", size);

    wsk_utf8_init(&u);
    int rv = wsk_utf8_feed(&u, data, size);
    if ((rv == WSK_EUTF8) != (ref_fail >= 0) || (rv != 0 && rv != WSK_EUTF8))
        fail("whole feed differs from the reference", size);
    if (wsk_utf8_is_complete(&u) != ref_ok)
        fail("whole is_complete differs from the reference", size);

    wsk_utf8_init(&u);
    long first = -1;
    for (size_t i = 0; i < size; i++) {
        rv = wsk_utf8_feed(&u, data + i, 1);
        if (rv != 0 && first < 0)
            first = (long)i;
        if (first >= 0 && rv != WSK_EUTF8)
            fail("error not sticky", size);
    }
    if (first != ref_fail)
        fail("byte-by-byte failure index differs from the reference", size);
    if (wsk_utf8_is_complete(&u) != ref_ok)
        fail("byte-by-byte is_complete differs from the reference", size);

    /* Piece sizes from an FNV-1a hash of the input, so a run is repeatable. */
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 0x100000001b3u;
    wsk_utf8_init(&u);
    long failed_piece = -1;
    size_t failed_end = 0;
    for (size_t at = 0; at < size;) {
        h ^= h >> 29;
        h *= 0xbf58476d1ce4e5b9u;
        size_t n = 1 + (size_t)((h >> 32) % 67);
        if (n > size - at)
            n = size - at;
        rv = wsk_utf8_feed(&u, data + at, n);
        if (rv != 0 && failed_piece < 0) {
            failed_piece = (long)at;
            failed_end = at + n;
        }
        at += n;
    }
    if ((failed_piece >= 0) != (ref_fail >= 0))
        fail("split feed verdict differs from the reference", size);
    if (ref_fail >= 0 && (failed_piece > ref_fail || (long)failed_end <= ref_fail))
        fail("split feed failed in the wrong piece", size);
    if (wsk_utf8_is_complete(&u) != ref_ok)
        fail("split is_complete differs from the reference", size);
    return 0;
}
