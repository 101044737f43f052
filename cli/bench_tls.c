/* wsk bench over wss://: see bench_tls.h. */
#include "bench_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define READ_AHEAD (64u * 1024) /* as the server side: one recv() for up to four records */

struct bench_tls_ctx {
    SSL_CTX *ssl_ctx;
};

/* The reason of the last failure, from OpenSSL's error queue (emptied, so
 * the next call's SSL_get_error() sees only its own errors) or errno. */
static void describe(SSL *ssl, int ssl_err, char *err, size_t cap)
{
    unsigned long e = ERR_peek_last_error();
    char buf[256];

    if (ssl && SSL_get_verify_result(ssl) != X509_V_OK && !SSL_is_init_finished(ssl)) {
        snprintf(err, cap, "certificate verify failed: %s",
                 X509_verify_cert_error_string(SSL_get_verify_result(ssl)));
    } else if (e) {
        ERR_error_string_n(e, buf, sizeof buf);
        snprintf(err, cap, "TLS: %.150s", buf);
    } else if (ssl_err == SSL_ERROR_SYSCALL && errno) {
        snprintf(err, cap, "TLS: %s", strerror(errno));
    } else {
        snprintf(err, cap, "TLS error %d", ssl_err);
    }
    ERR_clear_error();
}

struct bench_tls_ctx *bench_tls_ctx_new(const char *ca_file, bool insecure, bool keep_buffers,
                                        char *err, size_t cap)
{
    struct bench_tls_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    ctx->ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx->ssl_ctx) {
        describe(NULL, 0, err, cap);
        free(ctx);
        return NULL;
    }
    SSL_CTX *s = ctx->ssl_ctx;
    SSL_CTX_set_min_proto_version(s, TLS1_2_VERSION);
    SSL_CTX_set_mode(s, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            (keep_buffers ? 0 : SSL_MODE_RELEASE_BUFFERS));
    SSL_CTX_set_options(s, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_session_cache_mode(s, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_read_ahead(s, 1);
    SSL_CTX_set_default_read_buffer_len(s, READ_AHEAD);
    if (insecure) {
        SSL_CTX_set_verify(s, SSL_VERIFY_NONE, NULL);
    } else {
        int ok = ca_file ? SSL_CTX_load_verify_locations(s, ca_file, NULL)
                         : SSL_CTX_set_default_verify_paths(s);
        if (ok != 1) {
            char why[200];
            describe(NULL, 0, why, sizeof why);
            snprintf(err, cap, "cannot load the CA certificates%s%s: %s", ca_file ? " of " : "",
                     ca_file ? ca_file : "", why);
            bench_tls_ctx_free(ctx);
            return NULL;
        }
        SSL_CTX_set_verify(s, SSL_VERIFY_PEER, NULL);
    }
    return ctx;
}

void bench_tls_ctx_free(struct bench_tls_ctx *ctx)
{
    if (!ctx)
        return;
    SSL_CTX_free(ctx->ssl_ctx);
    free(ctx);
}

static bool is_ip_address(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

struct bench_tls *bench_tls_new(struct bench_tls_ctx *ctx, int fd, const char *host)
{
    SSL *ssl = SSL_new(ctx->ssl_ctx);
    if (!ssl)
        goto fail;
    if (SSL_set_fd(ssl, fd) != 1)
        goto fail;
    if (is_ip_address(host)) {
        X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
        if (X509_VERIFY_PARAM_set1_ip_asc(param, host) != 1)
            goto fail;
    } else {
        /* SSL_set_tlsext_host_name() is a macro that casts away const. */
        union {
            const char *c;
            char *m;
        } name = {.c = host};
        if (SSL_set_tlsext_host_name(ssl, name.m) != 1 || SSL_set1_host(ssl, host) != 1)
            goto fail;
    }
    SSL_set_connect_state(ssl);
    return (struct bench_tls *)ssl;
fail:
    SSL_free(ssl);
    ERR_clear_error();
    return NULL;
}

void bench_tls_free(struct bench_tls *t, bool is_clean)
{
    SSL *ssl = (SSL *)t;
    if (!ssl)
        return;
    if (is_clean && SSL_is_init_finished(ssl))
        (void)SSL_shutdown(ssl); /* one try: never waits */
    SSL_free(ssl);
    ERR_clear_error();
}

static int map_error(SSL *ssl, int rv, char *err, size_t cap)
{
    int e = SSL_get_error(ssl, rv);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        return BENCH_TLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return BENCH_TLS_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        return BENCH_TLS_EOF;
    default:
        describe(ssl, e, err, cap);
        return BENCH_TLS_ERROR;
    }
}

int bench_tls_handshake(struct bench_tls *t, char *err, size_t cap)
{
    SSL *ssl = (SSL *)t;
    int rv = SSL_do_handshake(ssl);
    if (rv == 1)
        return 0;
    rv = map_error(ssl, rv, err, cap);
    if (rv == BENCH_TLS_EOF) {
        snprintf(err, cap, "the server closed the connection during the TLS handshake");
        return BENCH_TLS_ERROR;
    }
    return rv;
}

ssize_t bench_tls_read(struct bench_tls *t, void *buf, size_t len, char *err, size_t cap)
{
    SSL *ssl = (SSL *)t;
    size_t n = 0;
    int rv = SSL_read_ex(ssl, buf, len, &n);
    if (rv == 1)
        return (ssize_t)n;
    return map_error(ssl, rv, err, cap);
}

ssize_t bench_tls_write(struct bench_tls *t, const void *buf, size_t len, char *err, size_t cap)
{
    SSL *ssl = (SSL *)t;
    size_t n = 0;
    int rv = SSL_write_ex(ssl, buf, len, &n);
    if (rv == 1)
        return (ssize_t)n;
    return map_error(ssl, rv, err, cap);
}

bool bench_tls_has_pending(const struct bench_tls *t)
{
    return SSL_has_pending((const SSL *)t) == 1;
}
