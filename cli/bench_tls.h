/* wsk bench over wss://: TLS on the generator's own non-blocking sockets.
 *
 * The generator drives its sockets itself (see bench.c) rather than through
 * the streams of net.h, so its TLS is OpenSSL called directly, kept behind
 * this small interface so that bench.c never sees an OpenSSL type. This is
 * the one place where the command-line tool goes past the public API of
 * <wsk.h>: a load generator has to spend less than the server it measures.
 *
 * Every connection does a full handshake (no session resumption: that is
 * what a fleet of new clients costs a server), reads ahead up to 64 KiB per
 * recv(), and is drained until OpenSSL asks for more bytes, so no record is
 * left buffered without a readiness event to come for it. */
#ifndef WSK_CLI_BENCH_TLS_H
#define WSK_CLI_BENCH_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct bench_tls_ctx; /* one per run, shared by the threads (OpenSSL's SSL_CTX) */
struct bench_tls;     /* one per connection (OpenSSL's SSL) */

/* Results of the calls below besides a byte count. */
enum {
    BENCH_TLS_WANT_READ = -1,  /* wait until the socket is readable */
    BENCH_TLS_WANT_WRITE = -2, /* wait until the socket is writable */
    BENCH_TLS_EOF = -3,        /* the peer closed (close_notify or TCP FIN) */
    BENCH_TLS_ERROR = -4,      /* see the err text */
};

/* Verifies the server's certificate against ca_file (PEM) or, when NULL,
 * the system's store; insecure verifies nothing. keep_buffers: each
 * connection keeps OpenSSL's buffers (about 80 KiB) instead of allocating
 * and freeing them per read and write, which glibc makes costly for large
 * records (page faults); for busy connections, not for many idle ones.
 * Returns NULL and writes the reason to err when the context cannot be set
 * up (an unusable ca_file). */
struct bench_tls_ctx *bench_tls_ctx_new(const char *ca_file, bool insecure, bool keep_buffers,
                                        char *err, size_t cap);
void bench_tls_ctx_free(struct bench_tls_ctx *ctx);

/* A client session on the connected socket fd for server name host (sent as
 * SNI unless it is an IP address, and checked against the certificate).
 * Returns NULL when out of memory. */
struct bench_tls *bench_tls_new(struct bench_tls_ctx *ctx, int fd, const char *host);
/* Frees the session (after one attempt at close_notify when is_clean); does
 * not close fd. NULL is allowed. */
void bench_tls_free(struct bench_tls *t, bool is_clean);

/* Advances the handshake: 0 when done, BENCH_TLS_WANT_READ/WRITE, or
 * BENCH_TLS_EOF/ERROR with the reason in err. */
int bench_tls_handshake(struct bench_tls *t, char *err, size_t cap);

/* Like recv() and send(): the number of bytes (> 0), or one of the results
 * above. write() may take part of len and must then be called again with
 * the rest (the buffer may have moved in between). */
ssize_t bench_tls_read(struct bench_tls *t, void *buf, size_t len, char *err, size_t cap);
ssize_t bench_tls_write(struct bench_tls *t, const void *buf, size_t len, char *err, size_t cap);
/* Whether OpenSSL holds bytes already read from the socket: read() again
 * before waiting for readiness. */
bool bench_tls_has_pending(const struct bench_tls *t);

#endif
