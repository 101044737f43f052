/* Private to src/proto: the code paths of wsk_mask_copy(), reachable one by
 * one so the portable paths are tested on machines that have AVX2 as well,
 * and the scalar masker, which the frame parser inlines for small frames. */
#ifndef WSK_PROTO_MASK_INTERNAL_H
#define WSK_PROTO_MASK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum mask_isa {
    MASK_ISA_SCALAR = 0, /* 8-byte words only */
    MASK_ISA_VEC16 = 1,  /* 16-byte vectors */
    MASK_ISA_AVX2 = 2,   /* 32-byte vectors, when the CPU has them */
    MASK_ISA_BEST = 3,
};

/* The key as a 32-bit word in memory order, rotated so that its first byte
 * masks payload position pos. */
static inline uint32_t wsk__mask_key_word(const uint8_t key[4], uint64_t pos)
{
    uint32_t w;
    memcpy(&w, key, 4);
    unsigned r = 8 * (unsigned)(pos & 3);
    /* Moving byte j to position j - r/8 in memory is a right rotation on a
     * little-endian machine and a left one on a big-endian machine. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return (w << r) | (w >> ((32 - r) & 31));
#else
    return (w >> r) | (w << ((32 - r) & 31));
#endif
}

/* Masks 8-byte words, then single bytes: the whole job for short buffers,
 * and the head and tail around the vector loops for long ones. */
static inline void wsk__mask_scalar(uint8_t *dst, const uint8_t *src, size_t len,
                                    const uint8_t key[4], uint64_t pos)
{
    size_t i = 0;
    if (len >= 8) {
        /* Two copies of the key side by side, whatever the byte order. */
        uint64_t k64 = (uint64_t)wsk__mask_key_word(key, pos) * 0x100000001u;
        for (; len - i >= 8; i += 8) {
            uint64_t w;
            memcpy(&w, src + i, 8);
            w ^= k64;
            memcpy(dst + i, &w, 8);
        }
    }
    for (; i < len; i++)
        dst[i] = src[i] ^ key[(pos + i) & 3];
}

void wsk__mask_copy_isa(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t key[4],
                        uint64_t offset, int isa);

#endif
