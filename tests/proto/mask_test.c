/* Tests for RFC 6455 masking (src/proto/mask.c): every length up to a few
 * vectors, every key offset, every alignment of source and destination, each
 * code path, and buffers that end at an unreadable page. */
#include "proto/mask_internal.h"
#include "wsk/proto.h"
#include "wsk_test.h"

#include <sys/mman.h>
#include <unistd.h>

#define MAX_LEN 300
#define SLACK   64 /* guard bytes on each side of every buffer */

static uint64_t seed = 0x5EED0001;

static void fill_random(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)wsk_test_rand(&seed);
}

static void random_key(uint8_t key[4])
{
    uint64_t r = wsk_test_rand(&seed);
    memcpy(key, &r, 4);
}

static void naive_mask(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t key[4],
                       uint64_t offset)
{
    for (size_t i = 0; i < len; i++)
        dst[i] = src[i] ^ key[(offset + i) % 4];
}

static bool all_equal(const uint8_t *p, size_t n, uint8_t v)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != v)
            return false;
    }
    return true;
}

/* RFC 6455 section 5.7: a masked "Hello". */
static void test_mask_rfc_example(void)
{
    const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    const uint8_t masked[5] = {0x7f, 0x9f, 0x4d, 0x51, 0x58};
    uint8_t buf[5];
    memcpy(buf, "Hello", 5);
    wsk_mask(buf, 5, key, 0);
    CHECK_MEM(buf, masked, 5);
    wsk_mask(buf, 5, key, 0);
    CHECK_MEM(buf, "Hello", 5);

    /* The same payload unmasked in two pieces. */
    memcpy(buf, masked, 5);
    wsk_mask(buf, 2, key, 0);
    wsk_mask(buf + 2, 3, key, 2);
    CHECK_MEM(buf, "Hello", 5);
}

/* wsk_mask() in place against the byte loop, for every length, offset and
 * alignment, with guard bytes that must stay untouched. */
static void test_mask_in_place(void)
{
    static uint8_t buf[16 + MAX_LEN + 2 * SLACK];
    uint8_t orig[MAX_LEN], want[MAX_LEN], key[4];
    int bad = 0;
    for (size_t len = 0; len <= MAX_LEN; len++) {
        for (uint64_t offset = 0; offset < 8; offset++) {
            for (size_t align = 0; align < 16; align++) {
                uint8_t *p = buf + SLACK + align;
                random_key(key);
                fill_random(orig, len);
                naive_mask(want, orig, len, key, offset);
                memset(buf, 0xA5, sizeof buf);
                memcpy(p, orig, len);
                wsk_mask(p, len, key, offset);
                if (memcmp(p, want, len) != 0 || !all_equal(buf, SLACK + align, 0xA5) ||
                    !all_equal(p + len, sizeof buf - (SLACK + align + len), 0xA5)) {
                    if (bad++ < 5)
                        fprintf(stderr, "mask: len %zu offset %d align %zu wrong\n", len,
                                (int)offset, align);
                }
                /* Twice restores. */
                wsk_mask(p, len, key, offset);
                if (memcmp(p, orig, len) != 0 && bad++ < 5)
                    fprintf(stderr, "mask twice: len %zu offset %d align %zu\n", len, (int)offset,
                            align);
            }
        }
    }
    CHECK_EQ_INT(bad, 0);
}

/* wsk_mask_copy() with dst == src, and with separate buffers at every pair
 * of alignments. */
static void test_mask_copy(void)
{
    static uint8_t in[16 + MAX_LEN + 2 * SLACK], out[16 + MAX_LEN + 2 * SLACK];
    uint8_t orig[MAX_LEN], want[MAX_LEN], key[4];
    int bad = 0;
    for (size_t len = 0; len <= MAX_LEN; len++) {
        for (uint64_t offset = 0; offset < 8; offset++) {
            random_key(key);
            fill_random(orig, len);
            naive_mask(want, orig, len, key, offset);
            for (size_t in_align = 0; in_align < 16; in_align++) {
                uint8_t *src = in + SLACK + in_align;
                memset(in, 0x5A, sizeof in);
                memcpy(src, orig, len);

                for (size_t out_align = 0; out_align < 16; out_align++) {
                    uint8_t *dst = out + SLACK + out_align;
                    memset(out, 0xA5, sizeof out);
                    wsk_mask_copy(dst, src, len, key, offset);
                    if (memcmp(dst, want, len) != 0 || !all_equal(out, SLACK + out_align, 0xA5) ||
                        !all_equal(dst + len, sizeof out - (SLACK + out_align + len), 0xA5) ||
                        memcmp(src, orig, len) != 0) {
                        if (bad++ < 5)
                            fprintf(stderr, "copy: len %zu offset %d align %zu/%zu wrong\n", len,
                                    (int)offset, in_align, out_align);
                    }
                }

                wsk_mask_copy(src, src, len, key, offset);
                if (memcmp(src, want, len) != 0 || !all_equal(in, SLACK + in_align, 0x5A) ||
                    !all_equal(src + len, sizeof in - (SLACK + in_align + len), 0x5A)) {
                    if (bad++ < 5)
                        fprintf(stderr, "copy in place: len %zu offset %d align %zu wrong\n", len,
                                (int)offset, in_align);
                }
            }
        }
    }
    CHECK_EQ_INT(bad, 0);
}

/* Each code path on its own, so the portable vector loop is covered on a
 * machine where the AVX2 loop would be chosen. Lengths reach past the point
 * where the destination gets aligned first. */
static void test_mask_each_path(void)
{
    enum { N = 1200 };
    static uint8_t src[N + 32], dst[N + 32], want[N + 32];
    uint8_t key[4];
    int bad = 0;
    for (int isa = 0; isa <= 3; isa++) {
        for (size_t len = 0; len <= N; len += (len < 300 ? 1 : 7)) {
            size_t align = wsk_test_rand(&seed) % 32;
            uint64_t offset = wsk_test_rand(&seed);
            random_key(key);
            fill_random(src, len + align);
            naive_mask(want, src + align, len, key, offset);
            wsk__mask_copy_isa(dst + (31 - align), src + align, len, key, offset, isa);
            if (memcmp(dst + (31 - align), want, len) != 0 && bad++ < 5)
                fprintf(stderr, "isa %d len %zu align %zu wrong\n", isa, len, align);
            wsk__mask_copy_isa(src + align, src + align, len, key, offset, isa);
            if (memcmp(src + align, want, len) != 0 && bad++ < 5)
                fprintf(stderr, "isa %d in place len %zu align %zu wrong\n", isa, len, align);
        }
    }
    CHECK_EQ_INT(bad, 0);
}

/* A large payload unmasked in random pieces, each with its running offset,
 * equals the payload unmasked whole; offsets near 2^64 wrap correctly. */
static void test_mask_pieces(void)
{
    enum { N = 70000 };
    static uint8_t orig[N], whole[N], pieces[N], want[N];
    uint8_t key[4];
    for (int round = 0; round < 20; round++) {
        uint64_t base = round & 1 ? UINT64_MAX - (wsk_test_rand(&seed) % 64) : 0;
        size_t len = (size_t)(wsk_test_rand(&seed) % N);
        random_key(key);
        fill_random(orig, len);
        naive_mask(want, orig, len, key, base);

        memcpy(whole, orig, len);
        wsk_mask(whole, len, key, base);
        CHECK_MEM(whole, want, len);

        memcpy(pieces, orig, len);
        for (size_t at = 0; at < len;) {
            size_t n = (size_t)(wsk_test_rand(&seed) % 3000);
            if (n > len - at)
                n = len - at;
            wsk_mask(pieces + at, n, key, base + at);
            at += n;
        }
        CHECK_MEM(pieces, want, len);

        wsk_mask_copy(pieces, whole, len, key, base);
        CHECK_MEM(pieces, orig, len);
    }
}

/* Buffers that end right before a PROT_NONE page: any access past the end
 * faults. Source and destination each get their own guard. */
static void test_mask_guard_page(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uint8_t *map = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(map != MAP_FAILED);
    if (map == MAP_FAILED)
        return;
    CHECK(mprotect(map + page, page, PROT_NONE) == 0);
    CHECK(mprotect(map + 3 * page, page, PROT_NONE) == 0);
    uint8_t *src_end = map + page, *dst_end = map + 3 * page;
    uint8_t orig[1100], want[1100], key[4];
    int bad = 0;
    for (size_t len = 0; len <= sizeof orig; len++) {
        uint64_t offset = len % 5;
        random_key(key);
        fill_random(orig, len);
        naive_mask(want, orig, len, key, offset);
        memcpy(dst_end - len, orig, len);
        wsk_mask(dst_end - len, len, key, offset);
        bad += memcmp(dst_end - len, want, len) != 0;
        memcpy(src_end - len, orig, len);
        wsk_mask_copy(dst_end - len, src_end - len, len, key, offset);
        bad += memcmp(dst_end - len, want, len) != 0;
    }
    CHECK_EQ_INT(bad, 0);
    munmap(map, 4 * page);
}

int main(void)
{
    WSK_RUN(test_mask_rfc_example);
    WSK_RUN(test_mask_in_place);
    WSK_RUN(test_mask_copy);
    WSK_RUN(test_mask_each_path);
    WSK_RUN(test_mask_pieces);
    WSK_RUN(test_mask_guard_page);
    WSK_TEST_END();
}
