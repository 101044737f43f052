/* RFC 6455 section 5.3 masking: byte i of a frame payload is XORed with
 * key[i % 4]. The payload may arrive in pieces, so every entry point takes the
 * offset of its first byte within the payload and starts from the key rotated
 * by that offset.
 *
 * Speed matters because a server unmasks every byte it receives. Past a
 * short head, the work is done a vector at a time with the rotated key
 * broadcast into every 32-bit lane (a whole number of keys fits in every
 * vector and word, so the rotation stays the same across them): 32 bytes with
 * AVX2 when the CPU has it, 16 bytes with the generic vector extension
 * otherwise (SSE2 on x86_64, NEON on arm64), then 8-byte words, then single
 * bytes. Loads and stores go through memcpy, which compiles to unaligned moves
 * and keeps every access well defined for any alignment.
 */
#include "wsk/proto.h"
#include "proto/mask_internal.h"

#include <string.h>

/* Below this length the vector loops cost more in setup than they save. */
#define MASK_VECTOR_MIN 64

/* From this length on, a scalar head that brings dst to a 32-byte boundary
 * pays for itself: aligned stores never straddle two cache lines. */
#define MASK_ALIGN_MIN 256

typedef uint32_t mask_v16 __attribute__((vector_size(16)));

/* Each mask_* helper masks a prefix of len with the pre-rotated key word k
 * and returns the number of bytes it did, a multiple of its vector width. */

static size_t mask_vec16(uint8_t *dst, const uint8_t *src, size_t len, uint32_t k)
{
    const mask_v16 kv = {k, k, k, k};
    size_t i = 0;
    /* Four independent vectors per round keep loads, XORs and stores in
     * flight together. All four are loaded before any is stored, which keeps
     * dst == src correct. */
    for (; len - i >= 64; i += 64) {
        mask_v16 a, b, c, d;
        memcpy(&a, src + i, 16);
        memcpy(&b, src + i + 16, 16);
        memcpy(&c, src + i + 32, 16);
        memcpy(&d, src + i + 48, 16);
        a ^= kv;
        b ^= kv;
        c ^= kv;
        d ^= kv;
        memcpy(dst + i, &a, 16);
        memcpy(dst + i + 16, &b, 16);
        memcpy(dst + i + 32, &c, 16);
        memcpy(dst + i + 48, &d, 16);
    }
    for (; len - i >= 16; i += 16) {
        mask_v16 a;
        memcpy(&a, src + i, 16);
        a ^= kv;
        memcpy(dst + i, &a, 16);
    }
    return i;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define MASK_HAVE_AVX2 1

/* 32-byte vectors stay inside the AVX2 function: passing them to or from code
 * built without AVX would change the calling convention. */
typedef uint32_t mask_v32 __attribute__((vector_size(32)));

__attribute__((target("avx2"))) static size_t mask_avx2(uint8_t *dst, const uint8_t *src,
                                                        size_t len, uint32_t k)
{
    const mask_v32 kv = {k, k, k, k, k, k, k, k};
    size_t i = 0;
    for (; len - i >= 128; i += 128) {
        mask_v32 a, b, c, d;
        memcpy(&a, src + i, 32);
        memcpy(&b, src + i + 32, 32);
        memcpy(&c, src + i + 64, 32);
        memcpy(&d, src + i + 96, 32);
        a ^= kv;
        b ^= kv;
        c ^= kv;
        d ^= kv;
        memcpy(dst + i, &a, 32);
        memcpy(dst + i + 32, &b, 32);
        memcpy(dst + i + 64, &c, 32);
        memcpy(dst + i + 96, &d, 32);
    }
    for (; len - i >= 32; i += 32) {
        mask_v32 a;
        memcpy(&a, src + i, 32);
        a ^= kv;
        memcpy(dst + i, &a, 32);
    }
    return i;
}

static bool cpu_has_avx2(void)
{
#ifdef __AVX2__
    return true;
#else
    /* Reads a word that libgcc (or compiler-rt) fills in at startup: cheap
     * enough to ask on every call, and no state of our own. Asked before
     * that constructor has run, it says no, which only means the 16-byte
     * loop. */
    return __builtin_cpu_supports("avx2");
#endif
}
#else
#define MASK_HAVE_AVX2 0
#endif

void wsk__mask_copy_isa(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t key[4],
                        uint64_t offset, int isa)
{
    size_t i = 0;

    if (len >= MASK_VECTOR_MIN && isa != MASK_ISA_SCALAR) {
        if (len >= MASK_ALIGN_MIN) {
            i = (size_t)(-(uintptr_t)dst & 31);
            wsk__mask_scalar(dst, src, i, key, offset);
        }
        uint32_t k = wsk__mask_key_word(key, offset + i);
#if MASK_HAVE_AVX2
        if (isa >= MASK_ISA_AVX2 && cpu_has_avx2())
            i += mask_avx2(dst + i, src + i, len - i, k);
#endif
        i += mask_vec16(dst + i, src + i, len - i, k);
    }

    wsk__mask_scalar(dst + i, src + i, len - i, key, offset + i);
}

void wsk_mask_copy(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t key[4],
                   uint64_t offset)
{
    if (len == 0)
        return; /* buffers may be NULL then */
    wsk__mask_copy_isa(dst, src, len, key, offset, MASK_ISA_BEST);
}

void wsk_mask(uint8_t *buf, size_t len, const uint8_t key[4], uint64_t offset)
{
    if (len == 0)
        return;
    wsk__mask_copy_isa(buf, buf, len, key, offset, MASK_ISA_BEST);
}
