/* TLS for non-blocking sockets on OpenSSL 3: connections (contexts are
 * tls_ctx.c's). See tls.h for the contract.
 *
 * Shape: one SSL per connection, reading and writing the fd through a small
 * BIO of our own (sock_bio_*), never blocking. Every SSL_* call that can
 * fail is wrapped the same way: clear the thread's error queue and our
 * saved errno, call, and on failure turn SSL_get_error() plus the queue into
 * a WANT code, a negative errno or WSK_ETLS with a one-line reason
 * (fail()). A fatal result is remembered, since OpenSSL forbids further I/O
 * (and SSL_shutdown) on an SSL that failed.
 *
 * Our socket BIO, and the write combining it does for large writes, are
 * tls_bio.c's.
 */
#include "transport/tls_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
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

#define CHUNK WSK__TLS_CHUNK

/* ---- naming a certificate in error text ---------------------------------- */

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

/* ---- connections -------------------------------------------------------------- */

/* Notes the first failure (OpenSSL stops at it, since ok is passed through)
 * while the certificate it concerns is at hand; fail() words the message. */
int wsk__tls_verify_cb(int ok, X509_STORE_CTX *xs)
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
        wsk__tls_format_time(expired ? X509_get0_notAfter(cert) : X509_get0_notBefore(cert), when,
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
        wsk__tls_put_err(t->err, sizeof t->err, "hostname mismatch: certificate is for %s, not %s",
                         t->verify_who, t->host);
    else if (vr == X509_V_ERR_IP_ADDRESS_MISMATCH)
        wsk__tls_put_err(t->err, sizeof t->err,
                         "IP address mismatch: certificate is for %s, not %s", t->verify_who,
                         t->host);
    else if (t->verify_who[0])
        wsk__tls_put_err(t->err, sizeof t->err, "certificate verify failed: %s (%s)", what,
                         t->verify_who);
    else
        wsk__tls_put_err(t->err, sizeof t->err, "certificate verify failed: %s", what);
}

/* Words an SSL_ERROR_SSL from the thread's error queue. */
static void ssl_message(struct wsk__tls *t, unsigned long e)
{
    int reason = ERR_GET_REASON(e);
    bool in_handshake = !t->handshake_done;

    if (ERR_GET_LIB(e) != ERR_LIB_SSL) {
        wsk__tls_put_err(t->err, sizeof t->err, "TLS error: %s", wsk__tls_reason_text(e));
        return;
    }
    switch (reason) {
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
        verify_message(t);
        return;
    case SSL_R_UNEXPECTED_EOF_WHILE_READING:
        wsk__tls_put_err(t->err, sizeof t->err, "peer closed the connection %s",
                         in_handshake ? "during the TLS handshake" : "without close_notify");
        return;
    case SSL_R_HTTP_REQUEST:
        wsk__tls_put_err(t->err, sizeof t->err,
                         "peer did not speak TLS (it sent a plain HTTP request)");
        return;
    case SSL_R_HTTPS_PROXY_REQUEST:
        wsk__tls_put_err(t->err, sizeof t->err,
                         "peer did not speak TLS (it sent an HTTP CONNECT request)");
        return;
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_UNKNOWN_PROTOCOL:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_RECORD_LENGTH_MISMATCH:
        if (in_handshake) {
            wsk__tls_put_err(t->err, sizeof t->err, "peer did not speak TLS (%s)",
                             wsk__tls_reason_text(e));
            return;
        }
        break;
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_NO_PROTOCOLS_AVAILABLE:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
        wsk__tls_put_err(t->err, sizeof t->err, "peer does not support TLS 1.2 or newer (%s)",
                         wsk__tls_reason_text(e));
        return;
    case SSL_R_NO_SHARED_CIPHER:
        wsk__tls_put_err(t->err, sizeof t->err, "no cipher suite in common with the peer");
        return;
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
        wsk__tls_put_err(t->err, sizeof t->err, "peer rejected our certificate (%s)",
                         wsk__tls_reason_text(e));
        return;
    default:
        break;
    }
    if (reason > SSL_AD_REASON_OFFSET && reason < SSL_AD_REASON_OFFSET + 256)
        wsk__tls_put_err(t->err, sizeof t->err, "peer sent a TLS alert: %s",
                         wsk__tls_reason_text(e));
    else
        wsk__tls_put_err(t->err, sizeof t->err, "TLS error: %s", wsk__tls_reason_text(e));
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
        wsk__tls_put_err(t->err, sizeof t->err, "peer closed the TLS session%s",
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
            wsk__tls_put_err(t->err, sizeof t->err, "TLS error (no details from OpenSSL)");
            t->fatal = WSK_ETLS;
        } else if (t->sys_errno) {
            wsk__tls_put_err(t->err, sizeof t->err, "%s%s", wsk_strerror(-t->sys_errno),
                             t->handshake_done ? "" : " during the TLS handshake");
            t->fatal = -t->sys_errno;
        } else {
            /* What OpenSSL before 3.0 said for a truncated stream. */
            wsk__tls_put_err(t->err, sizeof t->err, "peer closed the connection %s",
                             t->handshake_done ? "without close_notify"
                                               : "during the TLS handshake");
            t->fatal = WSK_ETLS;
        }
        break;
    default:
        wsk__tls_put_err(t->err, sizeof t->err, "unexpected OpenSSL state %d", code);
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
    t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    ERR_clear_error();
    t->fd = fd;
    t->ctx = ctx;
    wsk__tls_ctx_ref(ctx);
    t->ssl = SSL_new(ctx->ssl_ctx);
    bio = wsk__tls_bio_new();
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
    wsk__tls_bio_forget(t);
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

/* A large record came: keep OpenSSL's buffers until wsk__tls_trim() finds
 * the connection quiet. */
static void keep_buffers(struct wsk__tls *t)
{
    t->read_large = true;
    if (!t->keeps_buffers) {
        SSL_clear_mode(t->ssl, SSL_MODE_RELEASE_BUFFERS);
        t->keeps_buffers = true;
    }
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
    if (ret == 1) {
        if (n >= WSK__TLS_LARGE)
            keep_buffers(t);
        return (ssize_t)n;
    }
    code = SSL_get_error(t->ssl, ret);
    if (code == SSL_ERROR_ZERO_RETURN || is_unclean_eof(t, code)) {
        t->eof = true;
        t->eof_clean = code == SSL_ERROR_ZERO_RETURN;
        if (!t->eof_clean)
            wsk__tls_put_err(t->err, sizeof t->err,
                             "peer closed the connection without close_notify");
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

/* Advances (*i, *off) over n bytes of iov. */
static void iov_advance(const struct iovec *iov, int iovcnt, int *i, size_t *off, size_t n)
{
    while (n && *i < iovcnt) {
        size_t k = iov[*i].iov_len - *off;

        if (k > n)
            k = n;
        *off += k;
        n -= k;
        if (*off == iov[*i].iov_len && n) {
            (*i)++;
            *off = 0;
        }
    }
}

/* Write combining: sends wbuf. When all of it has gone, the plaintext it
 * carried (*uncommitted) counts as consumed. Returns 1 then, 0 when some
 * is left (the plaintext becomes hidden), or a negative errno. */
static int cork_send(struct wsk__tls *t, size_t *consumed, size_t *uncommitted)
{
    int rv = wsk__tls_wbuf_send(t);

    if (rv == 1) {
        *consumed += *uncommitted;
        *uncommitted = 0;
    } else if (rv == 0) {
        t->hidden = *uncommitted;
        *uncommitted = 0;
    } else {
        t->fatal = rv;
        wsk__tls_put_err(t->err, sizeof t->err, "send: %s", strerror(-rv));
    }
    return rv;
}

ssize_t wsk__tls_writev(struct wsk__tls *t, const struct iovec *iov, int iovcnt)
{
    size_t total = 0, consumed = 0, off = 0, uncommitted = 0;
    int i = 0, rv = 0;

    if (t->fatal)
        return t->fatal;
    if (iovcnt < 0 || (iovcnt > 0 && !iov))
        return -EINVAL;
    for (int k = 0; k < iovcnt; k++) {
        if (iov[k].iov_len > SSIZE_MAX - total)
            return -EINVAL;
        total += iov[k].iov_len;
    }
    if (t->wpend > total || t->hidden > total)
        return -EINVAL; /* a retry without the bytes already encrypted */
    if (total == 0)
        return 0;
    if (!t->handshake_done) {
        rv = wsk__tls_handshake(t);
        if (rv != 0)
            return rv;
    }
    /* Ciphertext from an earlier call first; its plaintext is at the front
     * of iov and is consumed once it has gone. */
    if (t->woff < t->wlen) {
        uncommitted = t->hidden;
        t->hidden = 0;
        rv = cork_send(t, &consumed, &uncommitted);
        if (rv < 0)
            return rv;
        if (rv == 0)
            return WSK__TLS_WANT_WRITE;
        iov_advance(iov, iovcnt, &i, &off, consumed);
        rv = 0;
    }
    if (total - consumed > CHUNK && !t->wpend) {
        keep_buffers(t);
        (void)wsk__tls_cork_begin(t); /* without memory for it: no combining */
    }

    while (consumed + uncommitted < total) {
        size_t avail, len, written = 0, done = consumed + uncommitted;
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
        else if (avail >= CHUNK || avail == total - done)
            len = avail < CHUNK ? avail : CHUNK;
        else
            len = total - done < CHUNK ? total - done : CHUNK;
        if (len <= avail) {
            src = (const unsigned char *)iov[i].iov_base + off;
        } else {
            gather(iov, iovcnt, i, off, len);
            src = gather_buf;
        }

        before_call(t);
        ret = SSL_write_ex(t->ssl, src, len, &written);
        if (ret != 1) {
            rv = fail(t, ret);
            if (rv == WSK__TLS_WANT_READ || rv == WSK__TLS_WANT_WRITE)
                t->wpend = len;
            break;
        }
        t->wpend = 0;
        if (written == 0) { /* never seen; it would loop forever */
            rv = WSK__TLS_WANT_WRITE;
            break;
        }
        iov_advance(iov, iovcnt, &i, &off, written);
        if (!t->corking) {
            consumed += written;
            continue;
        }
        uncommitted += written;
        if (wsk__tls_cork_len(t) >= WSK__TLS_CORK_SEND) {
            rv = cork_send(t, &consumed, &uncommitted);
            if (rv <= 0)
                break;
        }
        rv = 0;
    }
    if (t->corking) {
        if (wsk__tls_cork_len(t) && uncommitted) {
            int sent = cork_send(t, &consumed, &uncommitted);
            if (sent < 0)
                rv = sent;
        }
        wsk__tls_cork_end(t);
    }
    if (consumed)
        return (ssize_t)consumed; /* an error comes again at the next call */
    return rv ? rv : WSK__TLS_WANT_WRITE;
}

void wsk__tls_trim(struct wsk__tls *t)
{
    if (!t->read_large) {
        wsk__tls_bio_trim(t);
        if (t->keeps_buffers && !t->fatal) {
            SSL_set_mode(t->ssl, SSL_MODE_RELEASE_BUFFERS);
            if (SSL_free_buffers(t->ssl)) /* 0: bytes in them, try next time */
                t->keeps_buffers = false;
        }
    }
    t->read_large = false;
}

bool wsk__tls_pending(const struct wsk__tls *t)
{
    /* SSL_has_pending: decrypted bytes, or bytes of a record OpenSSL has
     * not processed; wsk__tls_bio_pending: ciphertext read from the socket
     * and not yet handed to OpenSSL. Either may end in a partial record:
     * then the next read asks the socket again, which is what waiting
     * would do. */
    return !t->fatal && !t->eof && (SSL_has_pending(t->ssl) || wsk__tls_bio_pending(t));
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
