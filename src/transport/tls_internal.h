/* Private to src/transport: what tls.c (connections, our socket BIO) and
 * tls_ctx.c (contexts, certificates, error text) share. */
#ifndef WSK_TRANSPORT_TLS_INTERNAL_H
#define WSK_TRANSPORT_TLS_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "transport/tls.h"

/* The ALPN protocol list, in wire format (length-prefixed names). */
static const unsigned char wsk__alpn_http11[] = "\x08http/1.1";
#define WSK__ALPN_HTTP11_LEN (sizeof wsk__alpn_http11 - 1)

#define HOST_MAX 253 /* a DNS name in text form */

struct wsk__tls_ctx {
    SSL_CTX *ssl_ctx;
    atomic_int refs;
    bool is_server;
    bool insecure;
};

struct wsk__tls {
    SSL *ssl;
    struct wsk__tls_ctx *ctx;
    int fd;
    int sys_errno; /* errno of the BIO's last failed send/recv, or 0 */
    int fatal;     /* once nonzero, every call returns it */
    size_t wpend;  /* length of the SSL_write OpenSSL wants repeated, or 0 */
    bool bio_eof;  /* recv() returned 0 */
    bool handshake_done;
    bool eof;       /* read reported end of stream */
    bool eof_clean; /* ... and it was close_notify */
    /* The first certificate verification failure, seen from the verify
     * callback, where the offending certificate is still at hand. */
    int verify_err;
    char verify_who[160]; /* names the certificate: its SANs, CN, issuer */
    char host[HOST_MAX + 1];
    char alpn[32];
    char err[320];
};

/* Formats into err (when err and errlen are non-zero). */
__attribute__((format(printf, 3, 4))) void wsk__tls_put_err(char *err, size_t errlen,
                                                            const char *fmt, ...);
/* The reason text of one packed OpenSSL error code. */
const char *wsk__tls_reason_text(unsigned long e);
/* An ASN1 time as text, e.g. "Jan  2 03:04:05 2030 GMT". */
void wsk__tls_format_time(const ASN1_TIME *at, char *buf, size_t len);
/* The verify callback clients install: remembers the first failure and the
 * certificate it concerns, for the error text. */
int wsk__tls_verify_cb(int ok, X509_STORE_CTX *xs);

#endif
