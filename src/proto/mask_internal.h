/* Private to src/proto/mask.c and its test: the code paths of wsk_mask_copy(),
 * reachable one by one so the portable paths are tested on machines that have
 * AVX2 as well. */
#ifndef WSK_PROTO_MASK_INTERNAL_H
#define WSK_PROTO_MASK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

enum mask_isa {
    MASK_ISA_SCALAR = 0, /* 8-byte words only */
    MASK_ISA_VEC16 = 1,  /* 16-byte vectors */
    MASK_ISA_AVX2 = 2,   /* 32-byte vectors, when the CPU has them */
    MASK_ISA_BEST = 3,
};

void wsk__mask_copy_isa(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t key[4],
                        uint64_t offset, int isa);

#endif
