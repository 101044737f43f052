/* Private to src/proto: what the negotiation of permessage-deflate
 * (deflate_negotiate.c) and its transform (deflate.c) share. */
#ifndef WSK_PROTO_DEFLATE_INTERNAL_H
#define WSK_PROTO_DEFLATE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#define DEFAULT_BITS 15
#define MIN_BITS     8
#define MAX_BITS     15

/* Window bits as configured: 0 (the default) or 8..15. */
static inline bool bits_ok(uint8_t bits)
{
    return bits == 0 || (bits >= MIN_BITS && bits <= MAX_BITS);
}

static inline uint8_t bits_or_default(uint8_t bits)
{
    return bits ? bits : DEFAULT_BITS;
}

#endif
