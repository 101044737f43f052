/* TLS contexts on OpenSSL 3: the server's certificate and key (checked up
 * front, with errors a person can act on), the client's trust store, the
 * protocol and cipher policy, and the error text both sides share. See
 * tls.h for the contract. */
#include "transport/tls_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "wsk/error.h"

/* The TLS 1.2 suites: forward secrecy (ECDHE) and AEAD only. TLS 1.3 suites
 * are all of that kind and keep OpenSSL's defaults. */
#define CIPHERS_TLS12                                                                              \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* ---- error text ----------------------------------------------------------- */

void wsk__tls_put_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* The reason text of one packed OpenSSL error code. */
const char *wsk__tls_reason_text(unsigned long e)
{
    const char *s;

    if (ERR_SYSTEM_ERROR(e))
        return wsk_strerror(-(int)ERR_GET_REASON(e));
    s = ERR_reason_error_string(e);
    return s ? s : "unknown OpenSSL error";
}

/* Writes an ASN1_TIME as "2024-01-31 12:00:00 UTC". */
void wsk__tls_format_time(const ASN1_TIME *at, char *buf, size_t len)
{
    struct tm tm;

    if (!at || !ASN1_TIME_to_tm(at, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm))
        snprintf(buf, len, "?");
}
/* ---- contexts ----------------------------------------------------------------- */

/* Refuses every passphrase request: a server must start unattended, and
 * OpenSSL's default would prompt on the terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

/* Checks that path names a readable regular file, so that the message can
 * carry the system's reason ("No such file or directory", "Permission
 * denied") rather than OpenSSL's. Returns 0 or an errno. */
static int check_file(const char *path)
{
    struct stat st;
    FILE *f = fopen(path, "r");

    if (!f)
        return errno;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        return EISDIR;
    }
    fclose(f);
    return 0;
}

/* Says what is wrong with a PEM file OpenSSL could not load, from the
 * blocks in it: OpenSSL 3's key decoders report little more than
 * "unsupported". Returns NULL when the file looks right, so that the error
 * must be in the contents. Clears the thread's error queue. */
static const char *pem_problem(const char *path, bool want_key)
{
    BIO *bio = BIO_new_file(path, "r");
    bool has_key = false, has_encrypted = false, has_cert = false;
    unsigned char *data;
    char *name, *header;
    long len;

    for (int i = 0; bio && i < 1000 && PEM_read_bio(bio, &name, &header, &data, &len); i++) {
        if (strstr(name, "PRIVATE KEY")) {
            has_key = true;
            has_encrypted |= strstr(name, "ENCRYPTED") || strstr(header, "ENCRYPTED");
        } else if (strstr(name, "CERTIFICATE")) {
            has_cert = true;
        }
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(data);
    }
    BIO_free(bio);
    ERR_clear_error();
    if (want_key && has_encrypted)
        return "the key is encrypted (passphrases are not supported)";
    if (want_key && !has_key)
        return has_cert ? "it holds a certificate, not a private key"
                        : "no PEM private key in the file";
    if (!want_key && !has_cert)
        return has_key ? "it holds a private key, not a certificate"
                       : "no PEM certificate in the file";
    return NULL;
}

/* The reason a PEM file failed to load: pem_problem() or else OpenSSL's. */
static void pem_error(char *err, size_t errlen, const char *what, const char *path, bool want_key)
{
    const char *reason = wsk__tls_reason_text(ERR_peek_error());
    const char *problem = pem_problem(path, want_key);

    wsk__tls_put_err(err, errlen, "cannot read %s %s: %s", what, path, problem ? problem : reason);
}

static int ctx_alloc(struct wsk__tls_ctx **out, bool is_server, char *err, size_t errlen)
{
    struct wsk__tls_ctx *c = calloc(1, sizeof *c);
    long mode = SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                SSL_MODE_RELEASE_BUFFERS;

    *out = NULL;
    if (!c) {
        wsk__tls_put_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    c->ssl_ctx = SSL_CTX_new(is_server ? TLS_server_method() : TLS_client_method());
    if (!c->ssl_ctx) {
        free(c);
        wsk__tls_put_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    atomic_init(&c->refs, 1);
    c->is_server = is_server;
    if (!SSL_CTX_set_min_proto_version(c->ssl_ctx, TLS1_2_VERSION) ||
        !SSL_CTX_set_cipher_list(c->ssl_ctx, CIPHERS_TLS12)) {
        wsk__tls_put_err(err, errlen, "cannot configure TLS: %s",
                         wsk__tls_reason_text(ERR_peek_error()));
        SSL_CTX_free(c->ssl_ctx);
        free(c);
        return WSK_ETLS;
    }
    SSL_CTX_set_options(c->ssl_ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    /* Partial writes and a moving buffer make SSL_write fit wsk__tls_writev;
     * releasing buffers keeps idle connections small (about 34 KiB less). */
    SSL_CTX_set_mode(c->ssl_ctx, mode);
    /* No read-ahead: our BIO reads up to 256 KiB per recv() into a window
     * the thread's connections share (tls_bio.c), which saves the system
     * calls read-ahead would, without a 64 KiB buffer allocated and freed
     * by OpenSSL per read. */
    SSL_CTX_set_default_passwd_cb(c->ssl_ctx, no_passphrase);
    *out = c;
    return 0;
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    for (unsigned int i = 0; i < inlen; i += 1u + in[i]) {
        if (in[i] == WSK__ALPN_HTTP11_LEN - 1 && i + 1u + in[i] <= inlen &&
            memcmp(in + i + 1, wsk__alpn_http11 + 1, in[i]) == 0) {
            *out = in + i + 1;
            *outlen = in[i];
            return SSL_TLSEXT_ERR_OK;
        }
    }
    return SSL_TLSEXT_ERR_NOACK; /* go on without ALPN */
}

/* Refuses a certificate that no verifying client would accept today. */
static int check_validity(X509 *cert, const char *cert_file, char *err, size_t errlen)
{
    char when[40];

    if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0) {
        wsk__tls_format_time(X509_get0_notAfter(cert), when, sizeof when);
        wsk__tls_put_err(err, errlen, "certificate %s has expired (notAfter %s)", cert_file, when);
        return WSK_ETLS;
    }
    if (X509_cmp_current_time(X509_get0_notBefore(cert)) > 0) {
        wsk__tls_format_time(X509_get0_notBefore(cert), when, sizeof when);
        wsk__tls_put_err(err, errlen, "certificate %s is not valid yet (notBefore %s)", cert_file,
                         when);
        return WSK_ETLS;
    }
    return 0;
}

static int load_key(struct wsk__tls_ctx *c, const char *cert_file, const char *key_file, char *err,
                    size_t errlen)
{
    EVP_PKEY *key = NULL;
    FILE *f;
    int rv;

    rv = check_file(key_file);
    if (rv) {
        wsk__tls_put_err(err, errlen, "cannot read private key %s: %s", key_file,
                         wsk_strerror(-rv));
        return WSK_ETLS;
    }
    f = fopen(key_file, "r");
    if (f) {
        key = PEM_read_PrivateKey(f, NULL, no_passphrase, NULL);
        fclose(f);
    }
    if (!key) {
        pem_error(err, errlen, "private key", key_file, true);
        return WSK_ETLS;
    }
    /* SSL_CTX_use_PrivateKey compares the key with a certificate of the same
     * type; SSL_CTX_check_private_key also catches a key of another type
     * (an EC key for an RSA certificate), which lands in an empty slot. */
    rv = SSL_CTX_use_PrivateKey(c->ssl_ctx, key) && SSL_CTX_check_private_key(c->ssl_ctx);
    EVP_PKEY_free(key);
    if (!rv) {
        wsk__tls_put_err(err, errlen, "private key %s does not match the certificate %s", key_file,
                         cert_file);
        return WSK_ETLS;
    }
    return 0;
}

/* The certificate chain in cert_file (expired or not yet valid: refused)
 * and its private key. */
static int load_cert_and_key(struct wsk__tls_ctx *c, const char *cert_file, const char *key_file,
                             char *err, size_t errlen)
{
    int rv = check_file(cert_file);
    if (rv) {
        wsk__tls_put_err(err, errlen, "cannot read certificate %s: %s", cert_file,
                         wsk_strerror(-rv));
        return WSK_ETLS;
    }
    if (!SSL_CTX_use_certificate_chain_file(c->ssl_ctx, cert_file)) {
        pem_error(err, errlen, "certificate", cert_file, false);
        return WSK_ETLS;
    }
    rv = check_validity(SSL_CTX_get0_certificate(c->ssl_ctx), cert_file, err, errlen);
    if (rv < 0)
        return rv;
    return load_key(c, cert_file, key_file, err, errlen);
}

int wsk__tls_server_ctx_new(struct wsk__tls_ctx **out, const char *cert_file, const char *key_file,
                            char *err, size_t errlen)
{
    struct wsk__tls_ctx *c;
    int rv;

    wsk__tls_put_err(err, errlen, "%s", "");
    *out = NULL;
    if (!cert_file || !key_file) {
        wsk__tls_put_err(err, errlen, "a TLS server needs a certificate file and a key file");
        return WSK_ETLS;
    }
    ERR_clear_error();
    rv = ctx_alloc(&c, true, err, errlen);
    if (rv < 0)
        goto done;
    rv = load_cert_and_key(c, cert_file, key_file, err, errlen);
    if (rv < 0)
        goto done;
    SSL_CTX_set_alpn_select_cb(c->ssl_ctx, alpn_select, NULL);
    *out = c;
    c = NULL;
done:
    wsk__tls_ctx_unref(c);
    ERR_clear_error();
    return rv;
}

int wsk__tls_client_ctx_new(struct wsk__tls_ctx **out, const char *cafile, bool insecure,
                            const char *cert_file, const char *key_file, char *err, size_t errlen)
{
    struct wsk__tls_ctx *c;
    int rv;

    wsk__tls_put_err(err, errlen, "%s", "");
    *out = NULL;
    if (!cert_file != !key_file) {
        wsk__tls_put_err(err, errlen, "a client certificate needs %s too",
                         cert_file ? "a key file" : "a certificate file");
        return WSK_ETLS;
    }
    ERR_clear_error();
    rv = ctx_alloc(&c, false, err, errlen);
    if (rv < 0)
        goto done;
    if (cert_file && (rv = load_cert_and_key(c, cert_file, key_file, err, errlen)) < 0)
        goto done;
    c->insecure = insecure;
    if (insecure) {
        SSL_CTX_set_verify(c->ssl_ctx, SSL_VERIFY_NONE, NULL);
    } else if (cafile) {
        rv = check_file(cafile);
        if (rv) {
            wsk__tls_put_err(err, errlen, "cannot read CA file %s: %s", cafile, wsk_strerror(-rv));
            rv = WSK_ETLS;
            goto done;
        }
        if (!SSL_CTX_load_verify_locations(c->ssl_ctx, cafile, NULL)) {
            pem_error(err, errlen, "CA file", cafile, false);
            rv = WSK_ETLS;
            goto done;
        }
    } else if (!SSL_CTX_set_default_verify_paths(c->ssl_ctx)) {
        wsk__tls_put_err(err, errlen, "cannot load the system CA store: %s",
                         wsk__tls_reason_text(ERR_peek_error()));
        rv = WSK_ETLS;
        goto done;
    }
    if (!insecure)
        SSL_CTX_set_verify(c->ssl_ctx, SSL_VERIFY_PEER, wsk__tls_verify_cb);
    /* Unlike everything else here, this one returns 0 on success. */
    if (SSL_CTX_set_alpn_protos(c->ssl_ctx, wsk__alpn_http11, WSK__ALPN_HTTP11_LEN) != 0) {
        wsk__tls_put_err(err, errlen, "out of memory");
        rv = -ENOMEM;
        goto done;
    }
    *out = c;
    c = NULL;
done:
    wsk__tls_ctx_unref(c);
    ERR_clear_error();
    return rv;
}

void wsk__tls_ctx_ref(struct wsk__tls_ctx *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

void wsk__tls_ctx_unref(struct wsk__tls_ctx *c)
{
    /* Release/acquire so that one thread's last use of the context happens
     * before another thread frees it. */
    if (!c || atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    SSL_CTX_free(c->ssl_ctx);
    free(c);
}
