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
    /* Write combining (tls_bio.c): the records of one large write are
     * gathered in the thread's cork buffer for one send(). wbuf[woff..wlen)
     * is ciphertext the socket did not take, in the connection's own memory;
     * hidden is the plaintext it carries, not yet reported as written: the
     * caller's next write must start with those bytes again, as with wpend. */
    unsigned char *wbuf;
    size_t wlen;
    size_t woff;
    size_t wcap;
    size_t hidden;
    bool corking;    /* inside a large write: the BIO appends to the cork */
    bool cork_owner; /* the thread's cork holds this connection's records */
    /* Ciphertext read from the socket that OpenSSL has not asked for yet,
     * moved here from the thread's read window when another connection
     * needed the window: rest[rest_off..rest_len). */
    unsigned char *rest;
    size_t rest_off;
    size_t rest_len;
    size_t rest_cap;
    /* OpenSSL's buffers are kept while large records come (wsk__tls_trim) */
    bool keeps_buffers;
    bool read_large; /* since the last wsk__tls_trim */
    bool bio_eof;    /* recv() returned 0 */
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

/* The largest plaintext of one TLS record, and so of one SSL_write. */
#define WSK__TLS_CHUNK 16384
/* A read or write of at least this much makes a connection keep OpenSSL's
 * buffers until it is quiet (wsk__tls_trim). */
#define WSK__TLS_LARGE 4096
/* Write combining: send when this much ciphertext is gathered (a 64 KiB
 * message, its frame header and the records' overhead go out in one send);
 * wbuf gets room for one more record and its overhead. */
#define WSK__TLS_CORK_SEND (4 * WSK__TLS_CHUNK + 4096)
#define WSK__TLS_CORK_CAP  (WSK__TLS_CORK_SEND + WSK__TLS_CHUNK + 1024)

/* tls_bio.c: a socket BIO for t (set with BIO_set_data), or NULL when out
 * of memory. */
BIO *wsk__tls_bio_new(void);
/* tls_bio.c: drops what the thread's buffers hold for t and t's own
 * buffers; for wsk__tls_free. */
void wsk__tls_bio_forget(struct wsk__tls *t);
/* tls_bio.c: ciphertext of t read from the socket and not yet handed to
 * OpenSSL. */
bool wsk__tls_bio_pending(const struct wsk__tls *t);
/* tls_bio.c, write combining: begin has the BIO gather t's records in the
 * thread's cork (0, or -ENOMEM: then nothing changed); cork_len is how
 * many bytes it holds; end stops gathering (after wsk__tls_wbuf_send). */
int wsk__tls_cork_begin(struct wsk__tls *t);
size_t wsk__tls_cork_len(const struct wsk__tls *t);
void wsk__tls_cork_end(struct wsk__tls *t);
/* tls_bio.c: sends t->wbuf, then the cork. Returns 1 when all of it has
 * gone, 0 when the socket took less (the rest is kept in t->wbuf), or a
 * negative errno. */
int wsk__tls_wbuf_send(struct wsk__tls *t);
/* tls_bio.c: frees t's wbuf and rest when they hold nothing; for
 * wsk__tls_trim(). */
void wsk__tls_bio_trim(struct wsk__tls *t);

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
