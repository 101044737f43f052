/* TLS for non-blocking sockets on OpenSSL 3. See tls.h for the contract.
 *
 * Shape: one SSL per connection, reading and writing the fd through a small
 * BIO of our own (sock_bio_*), never blocking. Every SSL_* call that can
 * fail is wrapped the same way: clear the thread's error queue and our
 * saved errno, call, and on failure turn SSL_get_error() plus the queue into
 * a WANT code, a negative errno or WSK_ETLS with a one-line reason
 * (fail()). A fatal result is remembered, since OpenSSL forbids further I/O
 * (and SSL_shutdown) on an SSL that failed.
 *
 * Why a BIO of our own rather than BIO_new_socket(): the socket BIO writes
 * with write(2), which raises SIGPIPE when the peer has gone, and a library
 * must not make every program ignore that signal. Ours sends with
 * MSG_NOSIGNAL, keeps the errno of the failing call where fail() can find it
 * (OpenSSL may call libc in between), and answers BIO_CTRL_EOF, which is how
 * OpenSSL 3 tells a truncated stream (SSL_R_UNEXPECTED_EOF_WHILE_READING)
 * from other errors.
 */
#include "transport/tls.h"

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

/* The ALPN protocol list, in wire format (length-prefixed names). */
static const unsigned char alpn_http11[] = "\x08http/1.1";
#define ALPN_HTTP11_LEN (sizeof alpn_http11 - 1)

/* The largest plaintext of one TLS record, and so of one SSL_write. */
#define CHUNK 16384

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

/* ---- error text ----------------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static void put_err(char *err, size_t errlen, const char *fmt,
                                                          ...)
{
    va_list ap;

    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* The reason text of one packed OpenSSL error code. */
static const char *reason_text(unsigned long e)
{
    const char *s;

    if (ERR_SYSTEM_ERROR(e))
        return wsk_strerror(-(int)ERR_GET_REASON(e));
    s = ERR_reason_error_string(e);
    return s ? s : "unknown OpenSSL error";
}

/* Writes an ASN1_TIME as "2024-01-31 12:00:00 UTC". */
static void format_time(const ASN1_TIME *at, char *buf, size_t len)
{
    struct tm tm;

    if (!at || !ASN1_TIME_to_tm(at, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm))
        snprintf(buf, len, "?");
}

/* Appends bytes of a certificate field to buf, replacing anything that is
 * not printable ASCII, so that a hostile certificate cannot put control
 * characters into a log line. */
static void append_printable(char *buf, size_t len, const unsigned char *s, size_t n)
{
    size_t used = strlen(buf);

    for (size_t i = 0; i < n && used + 1 < len; i++)
        buf[used++] = (s[i] >= 0x20 && s[i] < 0x7f) ? (char)s[i] : '?';
    buf[used] = '\0';
}

static void append_str(char *buf, size_t len, const char *s)
{
    append_printable(buf, len, (const unsigned char *)s, strlen(s));
}

/* Appends the common name of a name ("CN=example.com"), or nothing. */
static bool append_cn(char *buf, size_t len, const X509_NAME *name)
{
    int i = name ? X509_NAME_get_index_by_NID(name, NID_commonName, -1) : -1;
    const ASN1_STRING *s;

    if (i < 0)
        return false;
    s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
    append_str(buf, len, "CN=");
    append_printable(buf, len, ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s));
    return true;
}

/* Appends the names a certificate is valid for: its DNS and IP
 * subjectAltNames, or its CN when it has none (as verification would). */
static void append_names(char *buf, size_t len, X509 *cert)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    int count = 0;

    for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        char ip[INET6_ADDRSTRLEN];

        if (gn->type != GEN_DNS && gn->type != GEN_IPADD)
            continue;
        if (count++)
            append_str(buf, len, ", ");
        if (gn->type == GEN_DNS) {
            append_printable(buf, len, ASN1_STRING_get0_data(gn->d.dNSName),
                             (size_t)ASN1_STRING_length(gn->d.dNSName));
        } else {
            int n = ASN1_STRING_length(gn->d.iPAddress);
            const unsigned char *p = ASN1_STRING_get0_data(gn->d.iPAddress);

            if ((n == 4 && inet_ntop(AF_INET, p, ip, sizeof ip)) ||
                (n == 16 && inet_ntop(AF_INET6, p, ip, sizeof ip)))
                append_str(buf, len, ip);
            else
                append_str(buf, len, "(bad IP address)");
        }
    }
    GENERAL_NAMES_free(names);
    if (count == 0 && !append_cn(buf, len, X509_get_subject_name(cert)))
        append_str(buf, len, "(no names)");
}

/* ---- our socket BIO --------------------------------------------------------- */

static BIO_METHOD *sock_bio_method;
static pthread_once_t sock_bio_once = PTHREAD_ONCE_INIT;

static int sock_bio_write(BIO *b, const char *data, size_t len, size_t *written)
{
    struct wsk__tls *t = BIO_get_data(b);
    ssize_t n;

    BIO_clear_retry_flags(b);
    do
        n = send(t->fd, data, len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n >= 0) {
        *written = (size_t)n;
        return 1;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        BIO_set_retry_write(b);
    else
        t->sys_errno = errno;
    return 0;
}

static int sock_bio_read(BIO *b, char *data, size_t len, size_t *nread)
{
    struct wsk__tls *t = BIO_get_data(b);
    ssize_t n;

    BIO_clear_retry_flags(b);
    do
        n = recv(t->fd, data, len, 0);
    while (n < 0 && errno == EINTR);
    if (n > 0) {
        *nread = (size_t)n;
        return 1;
    }
    if (n == 0)
        t->bio_eof = true;
    else if (errno == EAGAIN || errno == EWOULDBLOCK)
        BIO_set_retry_read(b);
    else
        t->sys_errno = errno;
    return 0;
}

static long sock_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    struct wsk__tls *t = BIO_get_data(b);

    (void)num;
    switch (cmd) {
    case BIO_CTRL_FLUSH: /* nothing is buffered here */
        return 1;
    case BIO_CTRL_EOF:
        return t->bio_eof;
    case BIO_C_GET_FD:
        if (ptr)
            *(int *)ptr = t->fd;
        return t->fd;
    default: /* not supported: kTLS, push/pop, dup, ... */
        return 0;
    }
}

static void sock_bio_init_once(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
                                 "wsk socket");

    if (m && BIO_meth_set_write_ex(m, sock_bio_write) && BIO_meth_set_read_ex(m, sock_bio_read) &&
        BIO_meth_set_ctrl(m, sock_bio_ctrl)) {
        sock_bio_method = m;
        return;
    }
    BIO_meth_free(m);
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
    const char *reason = reason_text(ERR_peek_error());
    const char *problem = pem_problem(path, want_key);

    put_err(err, errlen, "cannot read %s %s: %s", what, path, problem ? problem : reason);
}

static int ctx_alloc(struct wsk__tls_ctx **out, bool is_server, char *err, size_t errlen)
{
    struct wsk__tls_ctx *c = calloc(1, sizeof *c);
    long mode = SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                SSL_MODE_RELEASE_BUFFERS;

    *out = NULL;
    if (!c) {
        put_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    c->ssl_ctx = SSL_CTX_new(is_server ? TLS_server_method() : TLS_client_method());
    if (!c->ssl_ctx) {
        free(c);
        put_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    atomic_init(&c->refs, 1);
    c->is_server = is_server;
    if (!SSL_CTX_set_min_proto_version(c->ssl_ctx, TLS1_2_VERSION) ||
        !SSL_CTX_set_cipher_list(c->ssl_ctx, CIPHERS_TLS12)) {
        put_err(err, errlen, "cannot configure TLS: %s", reason_text(ERR_peek_error()));
        SSL_CTX_free(c->ssl_ctx);
        free(c);
        return WSK_ETLS;
    }
    SSL_CTX_set_options(c->ssl_ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    /* Partial writes and a moving buffer make SSL_write fit wsk__tls_writev;
     * releasing buffers keeps idle connections small (about 34 KiB less). */
    SSL_CTX_set_mode(c->ssl_ctx, mode);
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
        if (in[i] == ALPN_HTTP11_LEN - 1 && i + 1u + in[i] <= inlen &&
            memcmp(in + i + 1, alpn_http11 + 1, in[i]) == 0) {
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
        format_time(X509_get0_notAfter(cert), when, sizeof when);
        put_err(err, errlen, "certificate %s has expired (notAfter %s)", cert_file, when);
        return WSK_ETLS;
    }
    if (X509_cmp_current_time(X509_get0_notBefore(cert)) > 0) {
        format_time(X509_get0_notBefore(cert), when, sizeof when);
        put_err(err, errlen, "certificate %s is not valid yet (notBefore %s)", cert_file, when);
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
        put_err(err, errlen, "cannot read private key %s: %s", key_file, wsk_strerror(-rv));
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
        put_err(err, errlen, "private key %s does not match the certificate %s", key_file,
                cert_file);
        return WSK_ETLS;
    }
    return 0;
}

int wsk__tls_server_ctx_new(struct wsk__tls_ctx **out, const char *cert_file, const char *key_file,
                            char *err, size_t errlen)
{
    struct wsk__tls_ctx *c;
    X509 *cert;
    int rv;

    put_err(err, errlen, "%s", "");
    *out = NULL;
    if (!cert_file || !key_file) {
        put_err(err, errlen, "a TLS server needs a certificate file and a key file");
        return WSK_ETLS;
    }
    ERR_clear_error();
    rv = ctx_alloc(&c, true, err, errlen);
    if (rv < 0)
        goto done;
    rv = check_file(cert_file);
    if (rv) {
        put_err(err, errlen, "cannot read certificate %s: %s", cert_file, wsk_strerror(-rv));
        rv = WSK_ETLS;
        goto done;
    }
    if (!SSL_CTX_use_certificate_chain_file(c->ssl_ctx, cert_file)) {
        pem_error(err, errlen, "certificate", cert_file, false);
        rv = WSK_ETLS;
        goto done;
    }
    cert = SSL_CTX_get0_certificate(c->ssl_ctx);
    rv = check_validity(cert, cert_file, err, errlen);
    if (rv < 0)
        goto done;
    rv = load_key(c, cert_file, key_file, err, errlen);
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

static int verify_cb(int ok, X509_STORE_CTX *xs);

int wsk__tls_client_ctx_new(struct wsk__tls_ctx **out, const char *cafile, bool insecure, char *err,
                            size_t errlen)
{
    struct wsk__tls_ctx *c;
    int rv;

    put_err(err, errlen, "%s", "");
    *out = NULL;
    ERR_clear_error();
    rv = ctx_alloc(&c, false, err, errlen);
    if (rv < 0)
        goto done;
    c->insecure = insecure;
    if (insecure) {
        SSL_CTX_set_verify(c->ssl_ctx, SSL_VERIFY_NONE, NULL);
    } else if (cafile) {
        rv = check_file(cafile);
        if (rv) {
            put_err(err, errlen, "cannot read CA file %s: %s", cafile, wsk_strerror(-rv));
            rv = WSK_ETLS;
            goto done;
        }
        if (!SSL_CTX_load_verify_locations(c->ssl_ctx, cafile, NULL)) {
            pem_error(err, errlen, "CA file", cafile, false);
            rv = WSK_ETLS;
            goto done;
        }
    } else if (!SSL_CTX_set_default_verify_paths(c->ssl_ctx)) {
        put_err(err, errlen, "cannot load the system CA store: %s", reason_text(ERR_peek_error()));
        rv = WSK_ETLS;
        goto done;
    }
    if (!insecure)
        SSL_CTX_set_verify(c->ssl_ctx, SSL_VERIFY_PEER, verify_cb);
    /* Unlike everything else here, this one returns 0 on success. */
    if (SSL_CTX_set_alpn_protos(c->ssl_ctx, alpn_http11, ALPN_HTTP11_LEN) != 0) {
        put_err(err, errlen, "out of memory");
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

/* ---- connections -------------------------------------------------------------- */

/* Notes the first failure (OpenSSL stops at it, since ok is passed through)
 * while the certificate it concerns is at hand; fail() words the message. */
static int verify_cb(int ok, X509_STORE_CTX *xs)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct wsk__tls *t = ssl ? SSL_get_app_data(ssl) : NULL;
    X509 *cert = X509_STORE_CTX_get_current_cert(xs);
    bool expired;
    char when[40];
    size_t len;

    if (ok || !t || t->verify_err)
        return ok;
    t->verify_err = X509_STORE_CTX_get_error(xs);
    t->verify_who[0] = '\0';
    if (!cert)
        return ok;
    len = sizeof t->verify_who;
    switch (t->verify_err) {
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        append_names(t->verify_who, len, cert);
        break;
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
        if (append_cn(t->verify_who, len, X509_get_subject_name(cert)))
            append_str(t->verify_who, len, ", ");
        expired = t->verify_err == X509_V_ERR_CERT_HAS_EXPIRED;
        format_time(expired ? X509_get0_notAfter(cert) : X509_get0_notBefore(cert), when,
                    sizeof when);
        append_str(t->verify_who, len, expired ? "notAfter " : "notBefore ");
        append_str(t->verify_who, len, when);
        break;
    default:
        /* Trust problems are about who issued the certificate. */
        append_str(t->verify_who, len, "issuer ");
        if (!append_cn(t->verify_who, len, X509_get_issuer_name(cert)))
            append_str(t->verify_who, len, "without CN");
        break;
    }
    return ok;
}

/* Words a failed certificate verification (client side). */
static void verify_message(struct wsk__tls *t)
{
    long vr = t->verify_err ? t->verify_err : SSL_get_verify_result(t->ssl);
    const char *what = X509_verify_cert_error_string(vr);

    if (vr == X509_V_ERR_HOSTNAME_MISMATCH)
        put_err(t->err, sizeof t->err, "hostname mismatch: certificate is for %s, not %s",
                t->verify_who, t->host);
    else if (vr == X509_V_ERR_IP_ADDRESS_MISMATCH)
        put_err(t->err, sizeof t->err, "IP address mismatch: certificate is for %s, not %s",
                t->verify_who, t->host);
    else if (t->verify_who[0])
        put_err(t->err, sizeof t->err, "certificate verify failed: %s (%s)", what, t->verify_who);
    else
        put_err(t->err, sizeof t->err, "certificate verify failed: %s", what);
}

/* Words an SSL_ERROR_SSL from the thread's error queue. */
static void ssl_message(struct wsk__tls *t, unsigned long e)
{
    int reason = ERR_GET_REASON(e);
    bool in_handshake = !t->handshake_done;

    if (ERR_GET_LIB(e) != ERR_LIB_SSL) {
        put_err(t->err, sizeof t->err, "TLS error: %s", reason_text(e));
        return;
    }
    switch (reason) {
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
        verify_message(t);
        return;
    case SSL_R_UNEXPECTED_EOF_WHILE_READING:
        put_err(t->err, sizeof t->err, "peer closed the connection %s",
                in_handshake ? "during the TLS handshake" : "without close_notify");
        return;
    case SSL_R_HTTP_REQUEST:
        put_err(t->err, sizeof t->err, "peer did not speak TLS (it sent a plain HTTP request)");
        return;
    case SSL_R_HTTPS_PROXY_REQUEST:
        put_err(t->err, sizeof t->err, "peer did not speak TLS (it sent an HTTP CONNECT request)");
        return;
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_UNKNOWN_PROTOCOL:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_RECORD_LENGTH_MISMATCH:
        if (in_handshake) {
            put_err(t->err, sizeof t->err, "peer did not speak TLS (%s)", reason_text(e));
            return;
        }
        break;
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_NO_PROTOCOLS_AVAILABLE:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
        put_err(t->err, sizeof t->err, "peer does not support TLS 1.2 or newer (%s)",
                reason_text(e));
        return;
    case SSL_R_NO_SHARED_CIPHER:
        put_err(t->err, sizeof t->err, "no cipher suite in common with the peer");
        return;
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
        put_err(t->err, sizeof t->err, "peer rejected our certificate (%s)", reason_text(e));
        return;
    default:
        break;
    }
    if (reason > SSL_AD_REASON_OFFSET && reason < SSL_AD_REASON_OFFSET + 256)
        put_err(t->err, sizeof t->err, "peer sent a TLS alert: %s", reason_text(e));
    else
        put_err(t->err, sizeof t->err, "TLS error: %s", reason_text(e));
}

/* Turns a failed SSL_* call (its return value ret) into our result. Fatal
 * results are remembered and leave t->err set and the error queue empty. */
static int fail(struct wsk__tls *t, int ret)
{
    int code = SSL_get_error(t->ssl, ret);
    unsigned long e;

    switch (code) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        ERR_clear_error();
        return code == SSL_ERROR_WANT_READ ? WSK__TLS_WANT_READ : WSK__TLS_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN: /* close_notify where none may come */
        put_err(t->err, sizeof t->err, "peer closed the TLS session%s",
                t->handshake_done ? "" : " during the handshake");
        t->fatal = WSK_ETLS;
        break;
    case SSL_ERROR_SYSCALL:
    case SSL_ERROR_SSL:
        e = ERR_peek_error();
        if (e) {
            ssl_message(t, e);
            t->fatal = WSK_ETLS;
        } else if (code == SSL_ERROR_SSL) {
            put_err(t->err, sizeof t->err, "TLS error (no details from OpenSSL)");
            t->fatal = WSK_ETLS;
        } else if (t->sys_errno) {
            put_err(t->err, sizeof t->err, "%s%s", wsk_strerror(-t->sys_errno),
                    t->handshake_done ? "" : " during the TLS handshake");
            t->fatal = -t->sys_errno;
        } else {
            /* What OpenSSL before 3.0 said for a truncated stream. */
            put_err(t->err, sizeof t->err, "peer closed the connection %s",
                    t->handshake_done ? "without close_notify" : "during the TLS handshake");
            t->fatal = WSK_ETLS;
        }
        break;
    default:
        put_err(t->err, sizeof t->err, "unexpected OpenSSL state %d", code);
        t->fatal = WSK_ETLS;
        break;
    }
    ERR_clear_error();
    return t->fatal;
}

/* Prepares a call into OpenSSL, as SSL_get_error() requires. */
static void before_call(struct wsk__tls *t)
{
    ERR_clear_error();
    t->sys_errno = 0;
}

static int set_peer_name(struct wsk__tls *t, const char *name)
{
    bool verify = !t->ctx->insecure;
    unsigned char addr[16];
    size_t len;
    int ok = 1;

    if (!name || !*name)
        return verify ? -EINVAL : 0;
    len = strlen(name);
    if (len > HOST_MAX)
        return -EINVAL;
    memcpy(t->host, name, len + 1);
    /* An IPv6 literal may name its zone ("fe80::1%eth0"); certificates
     * carry the address alone. */
    t->host[strcspn(t->host, "%")] = '\0';
    if (inet_pton(AF_INET, t->host, addr) == 1 || inet_pton(AF_INET6, t->host, addr) == 1) {
        if (verify)
            ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), t->host);
        return ok ? 0 : -EINVAL;
    }
    memcpy(t->host, name, len + 1);
    /* SNI leaves out the final dot of a fully qualified name (RFC 6066
     * section 3), and certificates do not carry it either. */
    if (len > 1 && t->host[len - 1] == '.')
        t->host[len - 1] = '\0';
    ok = SSL_set_tlsext_host_name(t->ssl, t->host);
    if (ok && verify) {
        SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        ok = SSL_set1_host(t->ssl, t->host);
    }
    return ok ? 0 : -EINVAL;
}

int wsk__tls_new(struct wsk__tls **out, struct wsk__tls_ctx *ctx, int fd, bool is_server,
                 const char *server_name)
{
    struct wsk__tls *t;
    BIO *bio;
    int rv;

    *out = NULL;
    if (fd < 0 || is_server != ctx->is_server)
        return -EINVAL;
    pthread_once(&sock_bio_once, sock_bio_init_once);
    if (!sock_bio_method)
        return -ENOMEM;
    t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    ERR_clear_error();
    t->fd = fd;
    t->ctx = ctx;
    wsk__tls_ctx_ref(ctx);
    t->ssl = SSL_new(ctx->ssl_ctx);
    bio = BIO_new(sock_bio_method);
    if (!t->ssl || !bio) {
        BIO_free(bio);
        rv = -ENOMEM;
        goto fail;
    }
    BIO_set_data(bio, t);
    BIO_set_init(bio, 1);
    SSL_set_bio(t->ssl, bio, bio); /* the SSL owns it from here */
    SSL_set_app_data(t->ssl, t);
    if (is_server) {
        SSL_set_accept_state(t->ssl);
    } else {
        SSL_set_connect_state(t->ssl);
        rv = set_peer_name(t, server_name);
        if (rv < 0)
            goto fail;
    }
    ERR_clear_error();
    *out = t;
    return 0;
fail:
    wsk__tls_free(t);
    ERR_clear_error();
    return rv;
}

void wsk__tls_free(struct wsk__tls *t)
{
    if (!t)
        return;
    SSL_free(t->ssl);
    wsk__tls_ctx_unref(t->ctx);
    free(t);
}

int wsk__tls_handshake(struct wsk__tls *t)
{
    const unsigned char *proto;
    unsigned int proto_len;
    int ret;

    if (t->fatal)
        return t->fatal;
    if (t->handshake_done)
        return 0;
    before_call(t);
    ret = SSL_do_handshake(t->ssl);
    if (ret != 1)
        return fail(t, ret);
    t->handshake_done = true;
    SSL_get0_alpn_selected(t->ssl, &proto, &proto_len);
    if (proto && proto_len < sizeof t->alpn) {
        memcpy(t->alpn, proto, proto_len);
        t->alpn[proto_len] = '\0';
    }
    return 0;
}

/* True when a failed SSL_read means that the TCP stream ended without
 * close_notify: OpenSSL 3 reports SSL_R_UNEXPECTED_EOF_WHILE_READING (as our
 * BIO answers BIO_CTRL_EOF), older versions a bare SSL_ERROR_SYSCALL. */
static bool is_unclean_eof(const struct wsk__tls *t, int code)
{
    unsigned long e = ERR_peek_error();

    if (code == SSL_ERROR_SSL)
        return ERR_GET_LIB(e) == ERR_LIB_SSL &&
               ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING;
    return code == SSL_ERROR_SYSCALL && e == 0 && t->sys_errno == 0 && t->bio_eof;
}

ssize_t wsk__tls_read(struct wsk__tls *t, void *buf, size_t len)
{
    size_t n = 0;
    int ret, code;

    if (t->eof)
        return 0;
    if (t->fatal)
        return t->fatal;
    if (len == 0)
        return -EINVAL;
    if (!t->handshake_done) {
        ret = wsk__tls_handshake(t);
        if (ret != 0)
            return ret;
    }
    if (len > SSIZE_MAX)
        len = SSIZE_MAX;
    before_call(t);
    ret = SSL_read_ex(t->ssl, buf, len, &n);
    if (ret == 1)
        return (ssize_t)n;
    code = SSL_get_error(t->ssl, ret);
    if (code == SSL_ERROR_ZERO_RETURN || is_unclean_eof(t, code)) {
        t->eof = true;
        t->eof_clean = code == SSL_ERROR_ZERO_RETURN;
        if (!t->eof_clean)
            put_err(t->err, sizeof t->err, "peer closed the connection without close_notify");
        ERR_clear_error();
        return 0;
    }
    return fail(t, ret);
}

/* The coalescing buffer. It need not survive a call: when OpenSSL wants a
 * write repeated, the bytes are gathered again from the caller's iovecs
 * (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER allows another address). One per
 * thread, since connections on different loops write concurrently. */
static _Thread_local unsigned char gather_buf[CHUNK];

/* Copies len bytes starting at iov[i] + off into gather_buf. The caller has
 * checked that they are there. */
static void gather(const struct iovec *iov, int iovcnt, int i, size_t off, size_t len)
{
    size_t done = 0;

    for (; i < iovcnt && done < len; i++, off = 0) {
        size_t n = iov[i].iov_len - off;

        if (n > len - done)
            n = len - done;
        memcpy(gather_buf + done, (const unsigned char *)iov[i].iov_base + off, n);
        done += n;
    }
}

ssize_t wsk__tls_writev(struct wsk__tls *t, const struct iovec *iov, int iovcnt)
{
    size_t total = 0, consumed = 0, off = 0;
    int i = 0;

    if (t->fatal)
        return t->fatal;
    if (iovcnt < 0 || (iovcnt > 0 && !iov))
        return -EINVAL;
    for (int k = 0; k < iovcnt; k++) {
        if (iov[k].iov_len > SSIZE_MAX - total)
            return -EINVAL;
        total += iov[k].iov_len;
    }
    if (t->wpend > total)
        return -EINVAL; /* a retry without the bytes OpenSSL is waiting for */
    if (total == 0)
        return 0;
    if (!t->handshake_done) {
        int rv = wsk__tls_handshake(t);

        if (rv != 0)
            return rv;
    }

    while (consumed < total) {
        size_t avail, len, written = 0;
        const void *src;
        int ret;

        while (i < iovcnt && off == iov[i].iov_len) {
            i++;
            off = 0;
        }
        avail = iov[i].iov_len - off;
        /* Repeat the pending piece exactly; start a new one as one record
         * when the bytes are contiguous, else gather up to a record. */
        if (t->wpend)
            len = t->wpend;
        else if (avail >= CHUNK || avail == total - consumed)
            len = avail < CHUNK ? avail : CHUNK;
        else
            len = total - consumed < CHUNK ? total - consumed : CHUNK;
        if (len <= avail) {
            src = (const unsigned char *)iov[i].iov_base + off;
        } else {
            gather(iov, iovcnt, i, off, len);
            src = gather_buf;
        }

        before_call(t);
        ret = SSL_write_ex(t->ssl, src, len, &written);
        if (ret != 1) {
            int rv = fail(t, ret);

            if (rv == WSK__TLS_WANT_READ || rv == WSK__TLS_WANT_WRITE)
                t->wpend = len;
            return consumed ? (ssize_t)consumed : rv;
        }
        t->wpend = 0;
        if (written == 0) /* never seen; it would loop forever */
            return consumed ? (ssize_t)consumed : WSK__TLS_WANT_WRITE;
        consumed += written;
        /* Advance (i, off) by written bytes. */
        while (written) {
            size_t n = iov[i].iov_len - off;

            if (n > written)
                n = written;
            off += n;
            written -= n;
            if (off == iov[i].iov_len && written) {
                i++;
                off = 0;
            }
        }
    }
    return (ssize_t)consumed;
}

bool wsk__tls_pending(const struct wsk__tls *t)
{
    return !t->fatal && !t->eof && SSL_pending(t->ssl) > 0;
}

void wsk__tls_shutdown(struct wsk__tls *t)
{
    if (!t || t->fatal || !t->handshake_done || (t->eof && !t->eof_clean))
        return;
    before_call(t);
    (void)SSL_shutdown(t->ssl);
    ERR_clear_error();
}

const char *wsk__tls_error(const struct wsk__tls *t)
{
    return t->err;
}

bool wsk__tls_eof_was_clean(const struct wsk__tls *t)
{
    return t->eof && t->eof_clean;
}

const char *wsk__tls_alpn(const struct wsk__tls *t)
{
    return t->alpn;
}
