/* SHA-1 (FIPS 180-4 section 6.1) for the opening handshake's
 * Sec-WebSocket-Accept, and base64 (RFC 4648 section 4). Internal to libwsk.
 *
 * RFC 6455 uses SHA-1 as a fixed transform, not for security, so a small
 * implementation here keeps the protocol core free of libcrypto: no
 * allocation, nothing that can fail. On x86-64 CPUs with the SHA extensions
 * the block function uses them (about 3x faster); the only process-wide
 * state is the cached CPUID answer that picks it. */
#ifndef WSK_PROTO_SHA1_INTERNAL_H
#define WSK_PROTO_SHA1_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

struct wsk__sha1 {
    uint32_t h[5];
    uint64_t total;    /* bytes hashed so far */
    uint8_t block[64]; /* a partial block */
    size_t block_len;
};

void wsk__sha1_init(struct wsk__sha1 *s);
void wsk__sha1_update(struct wsk__sha1 *s, const void *data, size_t len);
void wsk__sha1_final(struct wsk__sha1 *s, uint8_t out[20]);

/* Writes the base64 of in[0..len) and a NUL: 4 * ((len + 2) / 3) + 1 bytes. */
void wsk__base64_encode(char *out, const uint8_t *in, size_t len);

#endif
