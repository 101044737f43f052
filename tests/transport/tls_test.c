/* Tests for the TLS transport (src/transport/tls.c).
 *
 * main() makes a throwaway PKI in a mkdtemp() directory with OpenSSL's X509
 * API (a CA, a second unrelated CA, a server certificate for localhost and
 * 127.0.0.1, one for other.example, an expired one, an encrypted key, a
 * file that is not PEM) and removes it at the end. Each test then drives
 * both ends of real non-blocking TCP connections on 127.0.0.1 from one
 * poll() loop, pump(), as the connection layer will from its event loop.
 *
 * No test may hang: pump() gives up after a deadline and a number of
 * rounds, every other loop has an iteration bound, and alarm() ends the
 * whole program if something still blocks. SIGPIPE keeps its default action
 * on purpose: a write to a reset connection must return -EPIPE, not kill us.
 */
#include "transport/tls.h"
#include "transport/tls_internal.h"
#include "wsk/error.h"
#include "wsk_test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define MIB (1024u * 1024)

/* ---- the throwaway PKI ------------------------------------------------------ */

static char g_dir[256];
static char g_files[24][320];
static int g_nfiles;

static EVP_PKEY *g_ca_key;
static X509 *g_ca;
static long g_serial = 1;

/* Paths, filled by make_pki(). */
static const char *p_ca, *p_ca2, *p_srv, *p_srv_key, *p_other, *p_other_key, *p_expired,
    *p_expired_key, *p_enc_key, *p_garbage, *p_missing;

static void die(const char *what)
{
    fprintf(stderr, "test setup failed: %s (%s)\n", what, strerror(errno));
    exit(1);
}

/* Returns DIR/name; the file is removed at the end if it was created. */
static const char *path_of(const char *name)
{
    char *p = g_files[g_nfiles++];

    snprintf(p, sizeof g_files[0], "%s/%s", g_dir, name);
    return p;
}

static void add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509_EXTENSION *ext;

    X509V3_set_ctx(&v3, issuer ? issuer : cert, cert, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (!ext || !X509_add_ext(cert, ext, -1))
        die("X509_add_ext");
    X509_EXTENSION_free(ext);
}

/* A certificate for key, valid from now + not_before to now + not_after
 * seconds, signed by issuer (NULL: self-signed). */
static X509 *make_cert(EVP_PKEY *key, const char *cn, const char *san, X509 *issuer,
                       EVP_PKEY *issuer_key, long not_before, long not_after)
{
    X509 *cert = X509_new();
    X509_NAME *name = X509_NAME_new();

    if (!cert || !name)
        die("X509_new");
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), g_serial++);
    X509_gmtime_adj(X509_getm_notBefore(cert), not_before);
    X509_gmtime_adj(X509_getm_notAfter(cert), not_after);
    X509_set_pubkey(cert, key);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_subject_name(cert, name);
    X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : name);
    X509_NAME_free(name);
    if (san) {
        add_ext(cert, issuer, NID_basic_constraints, "critical,CA:FALSE");
        add_ext(cert, issuer, NID_ext_key_usage, "serverAuth");
        add_ext(cert, issuer, NID_subject_alt_name, san);
    } else {
        add_ext(cert, issuer, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(cert, issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
    }
    if (!X509_sign(cert, issuer_key ? issuer_key : key, EVP_sha256()))
        die("X509_sign");
    return cert;
}

static EVP_PKEY *make_key(void)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

    if (!key)
        die("EVP_PKEY_Q_keygen");
    return key;
}

static void write_cert(const char *path, X509 *cert)
{
    FILE *f = fopen(path, "w");

    if (!f || !PEM_write_X509(f, cert))
        die(path);
    fclose(f);
}

static void write_key(const char *path, EVP_PKEY *key, const char *passphrase)
{
    FILE *f = fopen(path, "w");
    int ok;

    if (!f)
        die(path);
    if (passphrase)
        ok = PEM_write_PrivateKey(f, key, EVP_aes_128_cbc(), (const unsigned char *)passphrase,
                                  (int)strlen(passphrase), NULL, NULL);
    else
        ok = PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    if (!ok)
        die(path);
    fclose(f);
}

/* A leaf certificate signed by the CA, written to DIR/name.pem and .key. */
static void make_leaf(const char *name, const char *cn, const char *san, long not_before,
                      long not_after, const char **cert_path, const char **key_path,
                      X509 **keep_cert)
{
    char file[64];
    EVP_PKEY *key = make_key();
    X509 *cert = make_cert(key, cn, san, g_ca, g_ca_key, not_before, not_after);

    snprintf(file, sizeof file, "%s.pem", name);
    *cert_path = path_of(file);
    write_cert(*cert_path, cert);
    snprintf(file, sizeof file, "%s.key", name);
    *key_path = path_of(file);
    write_key(*key_path, key, NULL);
    if (keep_cert)
        *keep_cert = cert;
    else
        X509_free(cert);
    EVP_PKEY_free(key);
}

static void make_pki(void)
{
    const char *tmp = getenv("TMPDIR");
    EVP_PKEY *key2;
    X509 *ca2;
    FILE *f;

    snprintf(g_dir, sizeof g_dir, "%s/wsk-tls-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(g_dir))
        die("mkdtemp");

    g_ca_key = make_key();
    g_ca = make_cert(g_ca_key, "wsk test CA", NULL, NULL, NULL, -3600, 86400);
    p_ca = path_of("ca.pem");
    write_cert(p_ca, g_ca);

    key2 = make_key();
    ca2 = make_cert(key2, "unrelated CA", NULL, NULL, NULL, -3600, 86400);
    p_ca2 = path_of("ca2.pem");
    write_cert(p_ca2, ca2);
    X509_free(ca2);
    EVP_PKEY_free(key2);

    make_leaf("server", "localhost", "DNS:localhost,IP:127.0.0.1", -3600, 86400, &p_srv, &p_srv_key,
              NULL);
    make_leaf("other", "other.example", "DNS:other.example", -3600, 86400, &p_other, &p_other_key,
              NULL);
    make_leaf("expired", "localhost", "DNS:localhost,IP:127.0.0.1", -2 * 86400, -86400, &p_expired,
              &p_expired_key, NULL);

    key2 = make_key();
    p_enc_key = path_of("encrypted.key");
    write_key(p_enc_key, key2, "secret");
    EVP_PKEY_free(key2);

    p_garbage = path_of("garbage.pem");
    f = fopen(p_garbage, "w");
    if (!f)
        die(p_garbage);
    fputs("this is not a certificate\n", f);
    fclose(f);

    p_missing = path_of("missing.pem");
}

static void remove_pki(void)
{
    for (int i = 0; i < g_nfiles; i++)
        unlink(g_files[i]);
    if (rmdir(g_dir) < 0)
        fprintf(stderr, "cannot remove %s: %s\n", g_dir, strerror(errno));
    X509_free(g_ca);
    EVP_PKEY_free(g_ca_key);
}

/* ---- sockets and the pump ----------------------------------------------------- */

static void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        die("fcntl");
}

/* A connected pair of non-blocking TCP sockets on 127.0.0.1. bufsize > 0
 * shrinks both socket buffers of both ends, so that writes block soon. */
static void tcp_pair(int *cfd, int *sfd, int bufsize)
{
    struct sockaddr_in addr = {.sin_family = AF_INET};
    socklen_t addr_len = sizeof addr;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 4) < 0 ||
        getsockname(lfd, (struct sockaddr *)&addr, &addr_len) < 0)
        die("listen");
    if (bufsize > 0 && (setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &bufsize, sizeof bufsize) < 0 ||
                        setsockopt(lfd, SOL_SOCKET, SO_SNDBUF, &bufsize, sizeof bufsize) < 0))
        die("setsockopt");
    *cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (*cfd < 0)
        die("socket");
    if (bufsize > 0 && (setsockopt(*cfd, SOL_SOCKET, SO_RCVBUF, &bufsize, sizeof bufsize) < 0 ||
                        setsockopt(*cfd, SOL_SOCKET, SO_SNDBUF, &bufsize, sizeof bufsize) < 0))
        die("setsockopt");
    if (connect(*cfd, (struct sockaddr *)&addr, sizeof addr) < 0)
        die("connect");
    *sfd = accept(lfd, NULL, NULL);
    if (*sfd < 0)
        die("accept");
    close(lfd);
    set_nonblock(*cfd);
    set_nonblock(*sfd);
}

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* One end of a connection as the pump drives it: handshake, then write out
 * [out_off, out_len) and read into in[0, in_cap). */
struct end {
    struct wsk__tls *tls;
    int fd;
    short events; /* what the last step is waiting for */
    bool hs_done;
    int err;  /* the fatal result of a handshake, read or write, or 0 */
    bool eof; /* read returned 0 */
    const unsigned char *out;
    size_t out_len, out_off;
    unsigned char *in;
    size_t in_cap, in_len;
    uint64_t seed;          /* random iovec splits */
    unsigned want_writes;   /* writev returned WANT_WRITE */
    unsigned short_writes;  /* writev consumed less than offered */
    bool checked_bad_retry; /* -EINVAL for a retry without the pending bytes */
    bool check_bad_retry;   /* ... to be checked at the first WANT_WRITE */
    size_t must_offer;      /* bytes the last write was given and did not take */
};

static void end_init(struct end *e, struct wsk__tls *tls, int fd)
{
    memset(e, 0, sizeof *e);
    e->tls = tls;
    e->fd = fd;
    e->seed = (uint64_t)fd * 7919 + 1;
}

/* Offers the unsent bytes as up to 8 iovecs of random sizes, in total
 * 16..64 KiB (or all that is left): the boundaries change from call to call,
 * also between a WANT and its retry, which the contract allows. */
static int split_out(struct end *e, struct iovec *iov)
{
    size_t left = e->out_len - e->out_off, off = e->out_off;
    size_t offer = 16384 + wsk_test_rand(&e->seed) % 49152;
    int n = 0;

    /* The retry contract: what the last call was given and did not take
     * comes again, all of it. */
    if (offer < e->must_offer)
        offer = e->must_offer;
    if (offer > left)
        offer = left;
    while (offer > 0) {
        size_t len = n == 7 ? offer : 1 + wsk_test_rand(&e->seed) % offer;

        /* Mostly small pieces, to exercise gathering, sometimes large ones. */
        if (n < 7 && wsk_test_rand(&e->seed) % 4 != 0 && len > 3000)
            len = 1 + len % 3000;
        iov[n].iov_base = (void *)(uintptr_t)(e->out + off);
        iov[n].iov_len = len;
        off += len;
        offer -= len;
        n++;
    }
    return n;
}

static void step(struct end *e)
{
    e->events = 0;
    if (e->err)
        return;
    if (!e->hs_done) {
        int rv = wsk__tls_handshake(e->tls);

        if (rv == WSK__TLS_WANT_READ) {
            e->events = POLLIN;
            return;
        }
        if (rv == WSK__TLS_WANT_WRITE) {
            e->events = POLLOUT;
            return;
        }
        if (rv != 0) {
            e->err = rv;
            return;
        }
        e->hs_done = true;
    }
    for (int guard = 0; e->out_off < e->out_len && guard < 1000; guard++) {
        struct iovec iov[8];
        int cnt = split_out(e, iov);
        size_t offered = 0;
        ssize_t n;

        for (int i = 0; i < cnt; i++)
            offered += iov[i].iov_len;
        n = wsk__tls_writev(e->tls, iov, cnt);
        e->must_offer = offered - (n > 0 ? (size_t)n : 0);
        if (n > 0) {
            CHECK((size_t)n <= offered);
            e->short_writes += (size_t)n < offered;
            e->out_off += (size_t)n;
            continue;
        }
        if (n == WSK__TLS_WANT_WRITE || n == WSK__TLS_WANT_READ) {
            e->events |= n == WSK__TLS_WANT_WRITE ? POLLOUT : POLLIN;
            e->want_writes += n == WSK__TLS_WANT_WRITE;
            if (e->check_bad_retry && !e->checked_bad_retry && iov[0].iov_len > 1) {
                struct iovec one = {iov[0].iov_base, 1};

                CHECK_EQ_INT(wsk__tls_writev(e->tls, &one, 1), -EINVAL);
                e->checked_bad_retry = true;
            }
            break;
        }
        e->err = (int)n;
        return;
    }
    for (int guard = 0; !e->eof && e->in_len < e->in_cap && guard < 1000; guard++) {
        ssize_t n = wsk__tls_read(e->tls, e->in + e->in_len, e->in_cap - e->in_len);

        if (n > 0) {
            e->in_len += (size_t)n;
        } else if (n == 0) {
            e->eof = true;
        } else if (n == WSK__TLS_WANT_READ) {
            e->events |= POLLIN;
            break;
        } else if (n == WSK__TLS_WANT_WRITE) {
            e->events |= POLLOUT;
            break;
        } else {
            e->err = (int)n;
            return;
        }
    }
}

typedef bool done_fn(const struct end *a, const struct end *b);

static bool both_handshaken(const struct end *a, const struct end *b)
{
    return (a->hs_done && b->hs_done) || a->err || b->err;
}

static bool one_failed(const struct end *a, const struct end *b)
{
    return a->err || b->err;
}

static bool both_failed(const struct end *a, const struct end *b)
{
    return a->err && b->err;
}

static bool all_transferred(const struct end *a, const struct end *b)
{
    return (a->out_off == a->out_len && b->out_off == b->out_len && a->in_len == b->out_len &&
            b->in_len == a->out_len) ||
           a->err || b->err;
}

/* Steps both ends and polls their fds until done() or ms have passed.
 * Returns whether done() was reached. */
static bool pump(struct end *a, struct end *b, done_fn *done, int ms)
{
    double deadline = now_ms() + ms;

    for (int round = 0; round < 200000; round++) {
        struct pollfd p[2] = {{a->fd, 0, 0}, {b->fd, 0, 0}};

        step(a);
        step(b);
        if (done(a, b))
            return true;
        if (now_ms() > deadline)
            break;
        p[0].events = a->events;
        p[1].events = b->events;
        if (a->err || !a->events)
            p[0].fd = -1;
        if (b->err || !b->events)
            p[1].fd = -1;
        poll(p, 2, 20);
    }
    fprintf(stderr, "pump: gave up (a: hs %d err %d, b: hs %d err %d)\n", a->hs_done, a->err,
            b->hs_done, b->err);
    return false;
}

/* A client and a server end over a fresh TCP pair. */
struct pair {
    struct end c, s;
    int cfd, sfd;
};

static bool pair_open(struct pair *p, struct wsk__tls_ctx *cctx, struct wsk__tls_ctx *sctx,
                      const char *server_name, int bufsize)
{
    struct wsk__tls *ct = NULL, *st = NULL;

    tcp_pair(&p->cfd, &p->sfd, bufsize);
    CHECK_EQ_INT(wsk__tls_new(&ct, cctx, p->cfd, false, server_name), 0);
    CHECK_EQ_INT(wsk__tls_new(&st, sctx, p->sfd, true, NULL), 0);
    end_init(&p->c, ct, p->cfd);
    end_init(&p->s, st, p->sfd);
    return ct && st;
}

static void pair_close(struct pair *p)
{
    wsk__tls_free(p->c.tls);
    wsk__tls_free(p->s.tls);
    if (p->cfd >= 0)
        close(p->cfd);
    if (p->sfd >= 0)
        close(p->sfd);
}

static struct wsk__tls_ctx *server_ctx(const char *cert, const char *key)
{
    struct wsk__tls_ctx *c = NULL;
    char err[256];
    int rv = wsk__tls_server_ctx_new(&c, cert, key, err, sizeof err);

    if (rv < 0)
        fprintf(stderr, "server ctx: %s\n", err);
    CHECK_EQ_INT(rv, 0);
    return c;
}

static struct wsk__tls_ctx *client_ctx(const char *cafile, bool insecure)
{
    struct wsk__tls_ctx *c = NULL;
    char err[256];
    int rv = wsk__tls_client_ctx_new(&c, cafile, insecure, NULL, NULL, err, sizeof err);

    if (rv < 0)
        fprintf(stderr, "client ctx: %s\n", err);
    CHECK_EQ_INT(rv, 0);
    return c;
}

static void fill_pattern(unsigned char *buf, size_t len, uint64_t seed)
{
    for (size_t i = 0; i < len; i += 8) {
        uint64_t r = wsk_test_rand(&seed);
        size_t n = len - i < 8 ? len - i : 8;

        memcpy(buf + i, &r, n);
    }
}

#define CHECK_HAS(s, sub)                                                                          \
    do {                                                                                           \
        const char *wsk_s_ = (s);                                                                  \
        if (!strstr(wsk_s_, (sub))) {                                                              \
            fprintf(stderr, "%s:%d: CHECK failed: \"%s\" contains \"%s\"\n", __FILE__, __LINE__,   \
                    wsk_s_, (sub));                                                                \
            wsk_test_failures_++;                                                                  \
        }                                                                                          \
    } while (0)

/* Runs a handshake between a client (verifying with cafile, or insecure)
 * and a server on cert/key; returns the pair for more checks. */
static bool handshake_pair(struct pair *p, const char *cafile, bool insecure,
                           const char *server_name, const char *cert, const char *key)
{
    struct wsk__tls_ctx *cctx = client_ctx(cafile, insecure);
    struct wsk__tls_ctx *sctx = server_ctx(cert, key);
    bool ok = false;

    memset(p, 0, sizeof *p);
    p->cfd = p->sfd = -1;
    if (cctx && sctx && pair_open(p, cctx, sctx, server_name, 0))
        ok = pump(&p->c, &p->s, both_handshaken, 5000);
    /* The connections hold their own references from here on. */
    wsk__tls_ctx_unref(cctx);
    wsk__tls_ctx_unref(sctx);
    return ok;
}

/* ---- tests --------------------------------------------------------------------- */

static void test_handshake_alpn(void)
{
    /* A final dot (a fully qualified name) is dropped, as SNI requires. */
    const char *names[] = {"localhost", "127.0.0.1", "localhost."};

    for (int i = 0; i < 3; i++) {
        struct pair p;

        CHECK(handshake_pair(&p, p_ca, false, names[i], p_srv, p_srv_key));
        CHECK_EQ_INT(p.c.err, 0);
        CHECK_EQ_INT(p.s.err, 0);
        if (p.c.tls && p.s.tls) {
            CHECK_STR(wsk__tls_alpn(p.c.tls), "http/1.1");
            CHECK_STR(wsk__tls_alpn(p.s.tls), "http/1.1");
            CHECK_STR(wsk__tls_error(p.c.tls), "");
            CHECK_STR(wsk__tls_error(p.s.tls), "");
            /* Complete stays complete. */
            CHECK_EQ_INT(wsk__tls_handshake(p.c.tls), 0);
            CHECK_EQ_INT(wsk__tls_handshake(p.s.tls), 0);
            CHECK(!wsk__tls_pending(p.s.tls));
            CHECK(!wsk__tls_eof_was_clean(p.s.tls));
        }
        pair_close(&p);
    }
}

static void test_new_arguments(void)
{
    struct wsk__tls_ctx *cctx = client_ctx(p_ca, false), *ictx = client_ctx(NULL, true);
    struct wsk__tls_ctx *sctx = server_ctx(p_srv, p_srv_key);
    struct wsk__tls *t = NULL;
    char long_name[300];
    int fds[2];

    if (!cctx || !ictx || !sctx)
        goto out;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) < 0)
        die("socketpair");
    /* A verifying client must say whom it expects. */
    CHECK_EQ_INT(wsk__tls_new(&t, cctx, fds[0], false, NULL), -EINVAL);
    CHECK(t == NULL);
    CHECK_EQ_INT(wsk__tls_new(&t, cctx, fds[0], false, ""), -EINVAL);
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    CHECK_EQ_INT(wsk__tls_new(&t, cctx, fds[0], false, long_name), -EINVAL);
    /* The role must match the context. */
    CHECK_EQ_INT(wsk__tls_new(&t, sctx, fds[0], false, "localhost"), -EINVAL);
    CHECK_EQ_INT(wsk__tls_new(&t, cctx, fds[0], true, NULL), -EINVAL);
    CHECK_EQ_INT(wsk__tls_new(&t, cctx, -1, false, "localhost"), -EINVAL);
    /* An insecure client needs no name. */
    CHECK_EQ_INT(wsk__tls_new(&t, ictx, fds[0], false, NULL), 0);
    CHECK_STR(wsk__tls_alpn(t), "");
    CHECK_EQ_INT(wsk__tls_writev(t, NULL, 0), 0);
    wsk__tls_free(t);
    wsk__tls_free(NULL);
    close(fds[0]);
    close(fds[1]);
out:
    wsk__tls_ctx_unref(cctx);
    wsk__tls_ctx_unref(ictx);
    wsk__tls_ctx_unref(sctx);
    wsk__tls_ctx_unref(NULL);
}

static void test_small_data_both_ways(void)
{
    static const char hello[] = "hello from the client", reply[] = "and hello back";
    unsigned char cin[64], sin_[64];
    struct pair p;

    CHECK(handshake_pair(&p, p_ca, false, "localhost", p_srv, p_srv_key));
    if (p.c.hs_done && p.s.hs_done) {
        p.c.out = (const unsigned char *)hello;
        p.c.out_len = sizeof hello;
        p.s.out = (const unsigned char *)reply;
        p.s.out_len = sizeof reply;
        p.c.in = cin;
        p.c.in_cap = sizeof cin;
        p.s.in = sin_;
        p.s.in_cap = sizeof sin_;
        CHECK(pump(&p.c, &p.s, all_transferred, 5000));
        CHECK_EQ_INT(p.c.err, 0);
        CHECK_EQ_INT(p.s.err, 0);
        CHECK_EQ_INT(p.s.in_len, sizeof hello);
        CHECK_EQ_INT(p.c.in_len, sizeof reply);
        CHECK_MEM(sin_, hello, sizeof hello);
        CHECK_MEM(cin, reply, sizeof reply);
    }
    pair_close(&p);
}

/* 1 MiB each way at once, over 4 KiB socket buffers, with random iovec
 * splits: writes block and resume many times, with the iovec boundaries
 * moving between a WANT_WRITE and its retry. */
static void test_one_mib_both_ways(void)
{
    struct wsk__tls_ctx *cctx = client_ctx(p_ca, false), *sctx = server_ctx(p_srv, p_srv_key);
    unsigned char *c_out = malloc(MIB), *s_out = malloc(MIB);
    unsigned char *c_in = malloc(MIB + 1), *s_in = malloc(MIB + 1);
    struct pair p = {.cfd = -1, .sfd = -1};

    if (!cctx || !sctx || !c_out || !s_out || !c_in || !s_in)
        goto out;
    fill_pattern(c_out, MIB, 1);
    fill_pattern(s_out, MIB, 2);
    if (!pair_open(&p, cctx, sctx, "localhost", 4096))
        goto out;
    CHECK(pump(&p.c, &p.s, both_handshaken, 5000));
    p.c.out = c_out;
    p.c.out_len = MIB;
    p.s.out = s_out;
    p.s.out_len = MIB;
    p.c.in = c_in;
    p.c.in_cap = MIB + 1; /* one more: a byte too many would show */
    p.s.in = s_in;
    p.s.in_cap = MIB + 1;
    p.c.check_bad_retry = true;
    CHECK(pump(&p.c, &p.s, all_transferred, 20000));
    CHECK_EQ_INT(p.c.err, 0);
    CHECK_EQ_INT(p.s.err, 0);
    CHECK_EQ_INT(p.s.in_len, MIB);
    CHECK_EQ_INT(p.c.in_len, MIB);
    CHECK(memcmp(s_in, c_out, MIB) == 0);
    CHECK(memcmp(c_in, s_out, MIB) == 0);
    /* The small buffers did make writes wait, on both sides. */
    CHECK(p.c.want_writes > 0);
    CHECK(p.s.want_writes > 0);
    CHECK(p.c.checked_bad_retry);
    printf("     1 MiB each way: client %u WANT_WRITE, %u short writes; server %u, %u\n",
           p.c.want_writes, p.c.short_writes, p.s.want_writes, p.s.short_writes);
    /* The sockets took parts of combined writes, so the rest waited in the
     * connection's own buffer, kept (not freed per message) while busy and
     * freed by the trim that finds the connection quiet. */
    CHECK(p.c.tls->wbuf != NULL);
    CHECK(p.c.tls->woff == p.c.tls->wlen);
    wsk__tls_trim(p.c.tls);
    wsk__tls_trim(p.c.tls);
    CHECK(p.c.tls->wbuf == NULL);
    CHECK(!p.c.tls->keeps_buffers);
out:
    pair_close(&p);
    wsk__tls_ctx_unref(cctx);
    wsk__tls_ctx_unref(sctx);
    free(c_out);
    free(s_out);
    free(c_in);
    free(s_in);
}

/* Waits until fd has at least min bytes queued; returns how many. */
static int queued_bytes(int fd, int min)
{
    int n = 0;

    for (int i = 0; i < 200; i++) {
        struct pollfd p = {fd, POLLIN, 0};

        poll(&p, 1, 10);
        if (ioctl(fd, FIONREAD, &n) < 0)
            die("FIONREAD");
        if (n >= min)
            break;
    }
    return n;
}

/* 100 iovecs of 7 bytes go out as one TLS record: the server's socket
 * receives 700 bytes plus one record's overhead (22 bytes in TLS 1.3, 29 in
 * TLS 1.2), not 100 records (2200+ bytes of overhead). */
static void test_writev_coalescing(void)
{
    struct iovec iov[100];
    unsigned char data[700], got[800];
    size_t got_len = 0;
    struct pair p;
    int queued;

    fill_pattern(data, sizeof data, 3);
    for (int i = 0; i < 100; i++) {
        iov[i].iov_base = data + 7 * i;
        iov[i].iov_len = 7;
    }
    CHECK(handshake_pair(&p, p_ca, false, "localhost", p_srv, p_srv_key));
    if (p.c.hs_done && p.s.hs_done) {
        CHECK_EQ_INT(queued_bytes(p.sfd, 0), 0);
        CHECK_EQ_INT(wsk__tls_writev(p.c.tls, iov, 100), 700);
        queued = queued_bytes(p.sfd, 700);
        CHECK(queued >= 700 + 16);
        CHECK(queued <= 700 + 29);
        for (int i = 0; i < 100 && got_len < sizeof data; i++) {
            ssize_t n = wsk__tls_read(p.s.tls, got + got_len, sizeof got - got_len);

            if (n > 0)
                got_len += (size_t)n;
            else if (n != WSK__TLS_WANT_READ)
                break;
            else
                queued_bytes(p.sfd, 1);
        }
        CHECK_EQ_INT(got_len, sizeof data);
        CHECK_MEM(got, data, sizeof data);
    }
    pair_close(&p);
}

/* Writes all of data (more than one record: combined for one send) and
 * returns whether it went. */
static bool write_all(struct wsk__tls *t, int peer_fd, const unsigned char *data, size_t len)
{
    size_t off = 0;

    for (int i = 0; i < 1000 && off < len; i++) {
        struct iovec iov = {(void *)(uintptr_t)(data + off), len - off};
        ssize_t n = wsk__tls_writev(t, &iov, 1);

        if (n > 0)
            off += (size_t)n;
        else if (n != WSK__TLS_WANT_WRITE)
            return false;
        else
            queued_bytes(peer_fd, 1);
    }
    return off == len;
}

/* Reads into got until want bytes came; returns how many did. */
static size_t read_upto(struct wsk__tls *t, int fd, unsigned char *got, size_t want)
{
    size_t got_len = 0;

    for (int i = 0; i < 1000 && got_len < want; i++) {
        ssize_t n = wsk__tls_read(t, got + got_len, want - got_len);

        if (n > 0)
            got_len += (size_t)n;
        else if (n != WSK__TLS_WANT_READ)
            break;
        else
            queued_bytes(fd, 1);
    }
    return got_len;
}

/* The connections of one thread share one read window (tls_bio.c): what
 * one connection's recv() brought in and it has not read yet survives
 * another connection's read, is reported by wsk__tls_pending and is read
 * without the socket (which has nothing left). */
static void test_shared_read_window(void)
{
    enum { LEN = 40000 };
    unsigned char *d1 = malloc(LEN), *d2 = malloc(LEN), *g1 = malloc(LEN), *g2 = malloc(LEN);
    struct pair p1, p2;
    size_t n1;

    if (!d1 || !d2 || !g1 || !g2)
        die("malloc");
    fill_pattern(d1, LEN, 5);
    fill_pattern(d2, LEN, 6);
    CHECK(handshake_pair(&p1, p_ca, false, "localhost", p_srv, p_srv_key));
    CHECK(handshake_pair(&p2, p_ca, false, "localhost", p_srv, p_srv_key));
    if (p1.c.hs_done && p1.s.hs_done && p2.c.hs_done && p2.s.hs_done) {
        CHECK(write_all(p1.s.tls, p1.cfd, d1, LEN));
        CHECK(write_all(p2.s.tls, p2.cfd, d2, LEN));
        queued_bytes(p1.cfd, LEN + 3 * 22);
        /* One record in, the rest of p1's bytes wait in the window. */
        n1 = read_upto(p1.c.tls, p1.cfd, g1, 100);
        CHECK_EQ_INT(n1, 100);
        CHECK(wsk__tls_pending(p1.c.tls));
        CHECK_EQ_INT(queued_bytes(p1.cfd, 0), 0);
        /* p2 reads through the same window. */
        CHECK_EQ_INT(read_upto(p2.c.tls, p2.cfd, g2, LEN), LEN);
        CHECK_MEM(g2, d2, LEN);
        /* p1's bytes moved to its own memory and are all still there. */
        CHECK(wsk__tls_pending(p1.c.tls));
        while (n1 < LEN && wsk__tls_pending(p1.c.tls)) {
            ssize_t n = wsk__tls_read(p1.c.tls, g1 + n1, LEN - n1);
            if (n <= 0)
                break;
            n1 += (size_t)n;
        }
        CHECK_EQ_INT(n1, LEN);
        CHECK_MEM(g1, d1, LEN);
        CHECK(!wsk__tls_pending(p1.c.tls));
        /* A quiet connection gives its buffers back; one that just read a
         * large record keeps them until the next trim. */
        CHECK(p1.c.tls->keeps_buffers);
        wsk__tls_trim(p1.c.tls);
        CHECK(p1.c.tls->keeps_buffers);
        wsk__tls_trim(p1.c.tls);
        CHECK(!p1.c.tls->keeps_buffers);
    }
    pair_close(&p1);
    pair_close(&p2);
    free(d1);
    free(d2);
    free(g1);
    free(g2);
}

/* Decrypted bytes left inside OpenSSL are reported by wsk__tls_pending and
 * read without waiting for the fd. */
static void test_pending(void)
{
    unsigned char data[1000], got[1000];
    struct iovec iov = {data, sizeof data};
    size_t got_len = 0;
    struct pair p;
    ssize_t n = 0;

    fill_pattern(data, sizeof data, 4);
    CHECK(handshake_pair(&p, p_ca, false, "localhost", p_srv, p_srv_key));
    if (p.c.hs_done && p.s.hs_done) {
        CHECK_EQ_INT(wsk__tls_writev(p.s.tls, &iov, 1), sizeof data);
        /* The client may first have session tickets to read (TLS 1.3). */
        for (int i = 0; i < 100; i++) {
            queued_bytes(p.cfd, 1);
            n = wsk__tls_read(p.c.tls, got, 10);
            if (n != WSK__TLS_WANT_READ)
                break;
        }
        CHECK_EQ_INT(n, 10);
        got_len = 10;
        CHECK(wsk__tls_pending(p.c.tls));
        while (got_len < sizeof got && wsk__tls_pending(p.c.tls)) {
            n = wsk__tls_read(p.c.tls, got + got_len, 10);
            CHECK(n > 0);
            if (n <= 0)
                break;
            got_len += (size_t)n;
        }
        CHECK_EQ_INT(got_len, sizeof data);
        CHECK(!wsk__tls_pending(p.c.tls));
        CHECK_MEM(got, data, sizeof data);
        CHECK_EQ_INT(wsk__tls_read(p.c.tls, got, sizeof got), WSK__TLS_WANT_READ);
    }
    pair_close(&p);
}

static void test_wrong_ca(void)
{
    struct pair p;

    handshake_pair(&p, p_ca2, false, "localhost", p_srv, p_srv_key);
    CHECK(pump(&p.c, &p.s, both_failed, 5000));
    CHECK_EQ_INT(p.c.err, WSK_ETLS);
    CHECK_EQ_INT(p.s.err, WSK_ETLS);
    if (p.c.tls && p.s.tls) {
        CHECK_STR(wsk__tls_error(p.c.tls), "certificate verify failed: unable to get local "
                                           "issuer certificate (issuer CN=wsk test CA)");
        CHECK_STR(wsk__tls_error(p.s.tls),
                  "peer rejected our certificate (tlsv1 alert unknown ca)");
        /* Failures stick. */
        CHECK_EQ_INT(wsk__tls_handshake(p.c.tls), WSK_ETLS);
        CHECK_EQ_INT(wsk__tls_read(p.c.tls, (char[8]){0}, 8), WSK_ETLS);
        wsk__tls_shutdown(p.c.tls); /* a no-op after a failure */
    }
    pair_close(&p);

    /* The system store does not know our CA either. */
    handshake_pair(&p, NULL, false, "localhost", p_srv, p_srv_key);
    CHECK(pump(&p.c, &p.s, one_failed, 5000));
    CHECK_EQ_INT(p.c.err, WSK_ETLS);
    if (p.c.tls)
        CHECK_HAS(wsk__tls_error(p.c.tls), "certificate verify failed: ");
    pair_close(&p);
}

static void test_hostname_mismatch(void)
{
    struct pair p;

    handshake_pair(&p, p_ca, false, "localhost", p_other, p_other_key);
    CHECK(pump(&p.c, &p.s, one_failed, 5000));
    CHECK_EQ_INT(p.c.err, WSK_ETLS);
    if (p.c.tls)
        CHECK_STR(wsk__tls_error(p.c.tls),
                  "hostname mismatch: certificate is for other.example, not localhost");
    pair_close(&p);

    handshake_pair(&p, p_ca, false, "127.0.0.1", p_other, p_other_key);
    CHECK(pump(&p.c, &p.s, one_failed, 5000));
    CHECK_EQ_INT(p.c.err, WSK_ETLS);
    if (p.c.tls)
        CHECK_STR(wsk__tls_error(p.c.tls),
                  "IP address mismatch: certificate is for other.example, not 127.0.0.1");
    pair_close(&p);

    /* A partial wildcard or a suffix must not pass either. */
    handshake_pair(&p, p_ca, false, "xlocalhost", p_srv, p_srv_key);
    CHECK(pump(&p.c, &p.s, one_failed, 5000));
    CHECK_EQ_INT(p.c.err, WSK_ETLS);
    if (p.c.tls)
        CHECK_STR(wsk__tls_error(p.c.tls), "hostname mismatch: certificate is for localhost, "
                                           "127.0.0.1, not xlocalhost");
    pair_close(&p);
}

/* insecure = true accepts the wrong name and an unknown CA alike. */
static void test_insecure(void)
{
    static const char msg[] = "insecure but encrypted";
    unsigned char got[64];
    struct pair p;

    CHECK(handshake_pair(&p, NULL, true, "localhost", p_other, p_other_key));
    CHECK_EQ_INT(p.c.err, 0);
    CHECK_EQ_INT(p.s.err, 0);
    if (p.c.hs_done && p.s.hs_done) {
        CHECK_STR(wsk__tls_alpn(p.c.tls), "http/1.1");
        p.c.out = (const unsigned char *)msg;
        p.c.out_len = sizeof msg;
        p.s.in = got;
        p.s.in_cap = sizeof got;
        CHECK(pump(&p.c, &p.s, all_transferred, 5000));
        CHECK_EQ_INT(p.s.in_len, sizeof msg);
        CHECK_MEM(got, msg, sizeof msg);
    }
    pair_close(&p);

    CHECK(handshake_pair(&p, p_ca2, true, NULL, p_srv, p_srv_key));
    CHECK_EQ_INT(p.c.err, 0);
    pair_close(&p);
}

static void test_expired(void)
{
    struct wsk__tls_ctx *c = NULL;
    const char *crt, *key;
    char err[256], want[512];
    X509 *cert = NULL;
    struct pair p;

    /* A server refuses to start with an expired certificate... */
    CHECK_EQ_INT(wsk__tls_server_ctx_new(&c, p_expired, p_expired_key, err, sizeof err), WSK_ETLS);
    CHECK(c == NULL);
    snprintf(want, sizeof want, "certificate %s has expired (notAfter ", p_expired);
    CHECK(strncmp(err, want, strlen(want)) == 0);
    CHECK_HAS(err, " UTC)");

    /* ... and a client refuses one that expired while the server ran: this
     * one is valid for three more seconds. */
    make_leaf("shortlived", "localhost", "DNS:localhost", -60, 3, &crt, &key, &cert);
    CHECK_EQ_INT(wsk__tls_server_ctx_new(&c, crt, key, err, sizeof err), 0);
    for (int i = 0; i < 60 && X509_cmp_current_time(X509_get0_notAfter(cert)) >= 0; i++)
        usleep(100 * 1000);
    CHECK(X509_cmp_current_time(X509_get0_notAfter(cert)) < 0);
    if (c) {
        struct wsk__tls_ctx *cctx = client_ctx(p_ca, false);

        p.cfd = p.sfd = -1;
        p.c.tls = p.s.tls = NULL;
        if (cctx && pair_open(&p, cctx, c, "localhost", 0)) {
            CHECK(pump(&p.c, &p.s, one_failed, 5000));
            CHECK_EQ_INT(p.c.err, WSK_ETLS);
            CHECK_HAS(wsk__tls_error(p.c.tls), "certificate verify failed: certificate has "
                                               "expired (CN=localhost, notAfter ");
        }
        pair_close(&p);
        wsk__tls_ctx_unref(cctx);
        wsk__tls_ctx_unref(c);
    }
    X509_free(cert);
}

static void expect_server_err(const char *cert, const char *key, const char *fmt_prefix,
                              const char *file, const char *suffix)
{
    static int dummy;
    struct wsk__tls_ctx *c = (struct wsk__tls_ctx *)(void *)&dummy; /* must become NULL */
    char err[512], want[512];

    snprintf(want, sizeof want, "%s%s%s", fmt_prefix, file, suffix);
    CHECK_EQ_INT(wsk__tls_server_ctx_new(&c, cert, key, err, sizeof err), WSK_ETLS);
    CHECK(c == NULL);
    CHECK_STR(err, want);
}

static void test_bad_files(void)
{
    struct wsk__tls_ctx *c = NULL;
    char err[512], want[512];

    expect_server_err(p_missing, p_srv_key, "cannot read certificate ", p_missing,
                      ": No such file or directory");
    expect_server_err(p_srv, p_missing, "cannot read private key ", p_missing,
                      ": No such file or directory");
    expect_server_err(p_garbage, p_srv_key, "cannot read certificate ", p_garbage,
                      ": no PEM certificate in the file");
    expect_server_err(p_srv, p_garbage, "cannot read private key ", p_garbage,
                      ": no PEM private key in the file");
    expect_server_err(g_dir, p_srv_key, "cannot read certificate ", g_dir, ": Is a directory");
    expect_server_err(p_srv, p_enc_key, "cannot read private key ", p_enc_key,
                      ": the key is encrypted (passphrases are not supported)");
    /* The two files swapped. */
    expect_server_err(p_srv_key, p_srv, "cannot read certificate ", p_srv_key,
                      ": it holds a private key, not a certificate");
    expect_server_err(p_srv, p_srv, "cannot read private key ", p_srv,
                      ": it holds a certificate, not a private key");

    snprintf(want, sizeof want, "private key %s does not match the certificate %s", p_other_key,
             p_srv);
    CHECK_EQ_INT(wsk__tls_server_ctx_new(&c, p_srv, p_other_key, err, sizeof err), WSK_ETLS);
    CHECK_STR(err, want);

    /* No room for the message is fine. */
    CHECK_EQ_INT(wsk__tls_server_ctx_new(&c, p_missing, p_srv_key, NULL, 0), WSK_ETLS);

    snprintf(want, sizeof want, "cannot read CA file %s: No such file or directory", p_missing);
    CHECK_EQ_INT(wsk__tls_client_ctx_new(&c, p_missing, false, NULL, NULL, err, sizeof err),
                 WSK_ETLS);
    CHECK(c == NULL);
    CHECK_STR(err, want);
    snprintf(want, sizeof want, "cannot read CA file %s: no PEM certificate in the file",
             p_garbage);
    CHECK_EQ_INT(wsk__tls_client_ctx_new(&c, p_garbage, false, NULL, NULL, err, sizeof err),
                 WSK_ETLS);
    CHECK_STR(err, want);
    /* insecure ignores the CA file. */
    CHECK_EQ_INT(wsk__tls_client_ctx_new(&c, p_missing, true, NULL, NULL, err, sizeof err), 0);
    CHECK_STR(err, "");
    wsk__tls_ctx_unref(c);

    /* A client certificate: both files or neither, and a key that fits. */
    CHECK_EQ_INT(wsk__tls_client_ctx_new(&c, NULL, true, p_srv, NULL, err, sizeof err), WSK_ETLS);
    CHECK_STR(err, "a client certificate needs a key file too");
    CHECK_EQ_INT(wsk__tls_client_ctx_new(&c, NULL, true, NULL, p_srv_key, err, sizeof err),
                 WSK_ETLS);
    CHECK_STR(err, "a client certificate needs a certificate file too");
    snprintf(want, sizeof want, "private key %s does not match the certificate %s", p_other_key,
             p_srv);
    CHECK_EQ_INT(wsk__tls_client_ctx_new(&c, NULL, true, p_srv, p_other_key, err, sizeof err),
                 WSK_ETLS);
    CHECK_STR(err, want);
    CHECK_EQ_INT(wsk__tls_client_ctx_new(&c, NULL, true, p_srv, p_srv_key, err, sizeof err), 0);
    wsk__tls_ctx_unref(c);
}

/* A client that connects and sends nothing, or a few bytes: the server's
 * handshake returns WANT_READ at once, every time. */
static void test_stalled_client(void)
{
    struct wsk__tls_ctx *sctx = server_ctx(p_srv, p_srv_key);
    struct wsk__tls *st = NULL;
    int cfd, sfd;

    if (!sctx)
        return;
    tcp_pair(&cfd, &sfd, 0);
    CHECK_EQ_INT(wsk__tls_new(&st, sctx, sfd, true, NULL), 0);
    wsk__tls_ctx_unref(sctx);
    for (int i = 0; st && i < 5; i++) {
        struct pollfd p = {sfd, POLLIN, 0};
        double t0 = now_ms();

        if (i == 3) /* the start of a record header, and no more */
            CHECK_EQ_INT(write(cfd, "\x16\x03\x01", 3), 3);
        CHECK_EQ_INT(wsk__tls_handshake(st), WSK__TLS_WANT_READ);
        CHECK(now_ms() - t0 < 500);
        CHECK_EQ_INT(wsk__tls_read(st, (char[8]){0}, 8), WSK__TLS_WANT_READ);
        if (i < 3)
            CHECK_EQ_INT(poll(&p, 1, 30), 0);
    }
    CHECK_STR(wsk__tls_error(st), "");
    wsk__tls_free(st);
    close(cfd);
    close(sfd);
}

/* Plain HTTP to a TLS server fails at once; so does TLS to an HTTP server. */
static void test_not_tls(void)
{
    static const char get[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    static const char resp[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
    struct wsk__tls_ctx *sctx = server_ctx(p_srv, p_srv_key), *cctx = client_ctx(p_ca, false);
    struct wsk__tls *t = NULL;
    double t0;
    int cfd, sfd, rv = 0;
    char buf[4096];

    if (!sctx || !cctx)
        goto out;

    tcp_pair(&cfd, &sfd, 0);
    CHECK_EQ_INT(wsk__tls_new(&t, sctx, sfd, true, NULL), 0);
    CHECK_EQ_INT(write(cfd, get, sizeof get - 1), sizeof get - 1);
    t0 = now_ms();
    for (int i = 0; t && i < 100; i++) {
        struct pollfd p = {sfd, POLLIN, 0};

        rv = wsk__tls_handshake(t);
        if (rv != WSK__TLS_WANT_READ)
            break;
        poll(&p, 1, 20);
    }
    CHECK_EQ_INT(rv, WSK_ETLS);
    CHECK(now_ms() - t0 < 1000);
    if (t)
        CHECK_STR(wsk__tls_error(t), "peer did not speak TLS (it sent a plain HTTP request)");
    wsk__tls_free(t);
    t = NULL;
    close(cfd);
    close(sfd);

    /* Other bytes that are not TLS either. */
    tcp_pair(&cfd, &sfd, 0);
    CHECK_EQ_INT(wsk__tls_new(&t, sctx, sfd, true, NULL), 0);
    CHECK_EQ_INT(write(cfd, "SSH-2.0-OpenSSH_9.2\r\n", 21), 21);
    for (int i = 0; t && i < 100; i++) {
        struct pollfd p = {sfd, POLLIN, 0};

        rv = wsk__tls_handshake(t);
        if (rv != WSK__TLS_WANT_READ)
            break;
        poll(&p, 1, 20);
    }
    CHECK_EQ_INT(rv, WSK_ETLS);
    if (t)
        CHECK_HAS(wsk__tls_error(t), "peer did not speak TLS");
    wsk__tls_free(t);
    t = NULL;
    close(cfd);
    close(sfd);

    /* A TLS client talking to a plain HTTP server. */
    tcp_pair(&cfd, &sfd, 0);
    CHECK_EQ_INT(wsk__tls_new(&t, cctx, cfd, false, "localhost"), 0);
    CHECK_EQ_INT(t ? wsk__tls_handshake(t) : 0, WSK__TLS_WANT_READ); /* hello sent */
    queued_bytes(sfd, 1);
    CHECK(read(sfd, buf, sizeof buf) > 0);
    CHECK_EQ_INT(write(sfd, resp, sizeof resp - 1), sizeof resp - 1);
    for (int i = 0; t && i < 100; i++) {
        struct pollfd p = {cfd, POLLIN, 0};

        rv = wsk__tls_handshake(t);
        if (rv != WSK__TLS_WANT_READ)
            break;
        poll(&p, 1, 20);
    }
    CHECK_EQ_INT(rv, WSK_ETLS);
    if (t)
        CHECK_HAS(wsk__tls_error(t), "peer did not speak TLS");
    wsk__tls_free(t);
    close(cfd);
    close(sfd);
out:
    wsk__tls_ctx_unref(sctx);
    wsk__tls_ctx_unref(cctx);
}

/* Reads on e until it returns something other than WANT_READ (bounded). */
static ssize_t read_until(struct end *e, unsigned char *buf, size_t len)
{
    ssize_t n = WSK__TLS_WANT_READ;

    for (int i = 0; i < 100 && n == WSK__TLS_WANT_READ; i++) {
        struct pollfd p = {e->fd, POLLIN, 0};

        n = wsk__tls_read(e->tls, buf, len);
        if (n == WSK__TLS_WANT_READ)
            poll(&p, 1, 20);
    }
    return n;
}

/* Reads whatever has arrived (session tickets) without expecting data. */
static void drain(struct end *e)
{
    unsigned char buf[256];

    for (int i = 0; i < 5; i++) {
        struct pollfd p = {e->fd, POLLIN, 0};

        if (poll(&p, 1, 20) > 0)
            CHECK_EQ_INT(wsk__tls_read(e->tls, buf, sizeof buf), WSK__TLS_WANT_READ);
    }
}

static void test_eof(void)
{
    unsigned char buf[64];
    struct pair p;

    /* close_notify: a clean end of stream, then the reply. */
    CHECK(handshake_pair(&p, p_ca, false, "localhost", p_srv, p_srv_key));
    if (p.c.hs_done && p.s.hs_done) {
        wsk__tls_shutdown(p.c.tls);
        CHECK_EQ_INT(read_until(&p.s, buf, sizeof buf), 0);
        CHECK(wsk__tls_eof_was_clean(p.s.tls));
        CHECK_STR(wsk__tls_error(p.s.tls), "");
        CHECK_EQ_INT(wsk__tls_read(p.s.tls, buf, sizeof buf), 0); /* and it stays */
        CHECK(!wsk__tls_pending(p.s.tls));
        wsk__tls_shutdown(p.s.tls);
        CHECK_EQ_INT(read_until(&p.c, buf, sizeof buf), 0);
        CHECK(wsk__tls_eof_was_clean(p.c.tls));
    }
    pair_close(&p);

    /* The TCP stream ends without close_notify: also 0, but unclean. */
    CHECK(handshake_pair(&p, p_ca, false, "localhost", p_srv, p_srv_key));
    if (p.c.hs_done && p.s.hs_done) {
        drain(&p.c);
        CHECK_EQ_INT(shutdown(p.cfd, SHUT_WR), 0);
        CHECK_EQ_INT(read_until(&p.s, buf, sizeof buf), 0);
        CHECK(!wsk__tls_eof_was_clean(p.s.tls));
        CHECK_STR(wsk__tls_error(p.s.tls), "peer closed the connection without close_notify");
        CHECK_EQ_INT(wsk__tls_read(p.s.tls, buf, sizeof buf), 0);
        wsk__tls_shutdown(p.s.tls); /* a no-op, harmless */
    }
    pair_close(&p);

    /* A reset is an error, not an end of stream. */
    CHECK(handshake_pair(&p, p_ca, false, "localhost", p_srv, p_srv_key));
    if (p.c.hs_done && p.s.hs_done) {
        struct linger lg = {1, 0};

        CHECK_EQ_INT(setsockopt(p.cfd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
        close(p.cfd);
        p.cfd = -1;
        CHECK_EQ_INT(read_until(&p.s, buf, sizeof buf), -ECONNRESET);
        CHECK_STR(wsk__tls_error(p.s.tls), "Connection reset by peer");
        CHECK_EQ_INT(wsk__tls_read(p.s.tls, buf, sizeof buf), -ECONNRESET);
        CHECK(!wsk__tls_eof_was_clean(p.s.tls));
    }
    pair_close(&p);

    /* An end of stream in the middle of the handshake is an error. */
    {
        struct wsk__tls_ctx *sctx = server_ctx(p_srv, p_srv_key);
        struct wsk__tls *t = NULL;
        int cfd, sfd, rv = 0;

        tcp_pair(&cfd, &sfd, 0);
        CHECK_EQ_INT(wsk__tls_new(&t, sctx, sfd, true, NULL), 0);
        wsk__tls_ctx_unref(sctx);
        CHECK_EQ_INT(write(cfd, "\x16\x03\x01\x00\x50", 5), 5);
        close(cfd);
        for (int i = 0; t && i < 100; i++) {
            struct pollfd pfd = {sfd, POLLIN, 0};

            rv = wsk__tls_handshake(t);
            if (rv != WSK__TLS_WANT_READ)
                break;
            poll(&pfd, 1, 20);
        }
        CHECK_EQ_INT(rv, WSK_ETLS);
        if (t)
            CHECK_STR(wsk__tls_error(t), "peer closed the connection during the TLS handshake");
        wsk__tls_free(t);
        close(sfd);
    }
}

/* Writing to a connection the peer has reset returns an error instead of
 * raising SIGPIPE (which would end this program). */
static void test_no_sigpipe(void)
{
    unsigned char *data = calloc(1, 65536);
    struct iovec iov = {data, 65536};
    struct linger lg = {1, 0};
    ssize_t n = 0;
    struct pair p;

    CHECK(handshake_pair(&p, p_ca, false, "localhost", p_srv, p_srv_key));
    if (data && p.c.hs_done && p.s.hs_done) {
        CHECK_EQ_INT(setsockopt(p.sfd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
        close(p.sfd);
        p.sfd = -1;
        usleep(20 * 1000);
        for (int i = 0; i < 100; i++) {
            struct pollfd pfd = {p.cfd, POLLOUT, 0};

            n = wsk__tls_writev(p.c.tls, &iov, 1);
            if (n < 0 && n != WSK__TLS_WANT_WRITE && n != WSK__TLS_WANT_READ)
                break;
            poll(&pfd, 1, 20);
        }
        CHECK(n == -EPIPE || n == -ECONNRESET);
        CHECK_EQ_INT(wsk__tls_writev(p.c.tls, &iov, 1), n); /* it sticks */
    }
    pair_close(&p);
    free(data);
}

/* A context may be dropped while connections use it (a reload): they keep
 * it alive until they are freed. ASan would see a use after free. */
static void test_ctx_refcount(void)
{
    static const char msg[] = "still works";
    struct wsk__tls_ctx *cctx = client_ctx(p_ca, false), *sctx = server_ctx(p_srv, p_srv_key);
    unsigned char got[32];
    struct pair p = {.cfd = -1, .sfd = -1};

    if (!cctx || !sctx)
        goto out;
    wsk__tls_ctx_ref(sctx); /* two references ... */
    wsk__tls_ctx_unref(sctx);
    if (!pair_open(&p, cctx, sctx, "localhost", 0))
        goto out;
    wsk__tls_ctx_unref(cctx); /* ... and now only the connections hold them */
    wsk__tls_ctx_unref(sctx);
    cctx = sctx = NULL;
    CHECK(pump(&p.c, &p.s, both_handshaken, 5000));
    p.c.out = (const unsigned char *)msg;
    p.c.out_len = sizeof msg;
    p.s.in = got;
    p.s.in_cap = sizeof got;
    CHECK(pump(&p.c, &p.s, all_transferred, 5000));
    CHECK_EQ_INT(p.s.in_len, sizeof msg);
    CHECK_MEM(got, msg, sizeof msg);
out:
    pair_close(&p); /* frees both contexts */
    wsk__tls_ctx_unref(cctx);
    wsk__tls_ctx_unref(sctx);
}

extern char **environ;

/* What a wsk server saw of one `openssl s_client` run. */
struct cli_result {
    int rv; /* the server's handshake result; 1: openssl is not installed */
    char alpn[32];
    char err[320];
};

/* Runs `openssl s_client` with the given options against a wsk server:
 * another client, and one whose protocol versions and cipher suites can be
 * chosen (tls.h has no knob for that). */
static void cli_client(struct wsk__tls_ctx *sctx, char *const opts[], struct cli_result *res)
{
    struct sockaddr_in addr = {.sin_family = AF_INET};
    socklen_t addr_len = sizeof addr;
    char *argv[16] = {"openssl", "s_client", "-connect", NULL, "-servername", "localhost"};
    char target[32];
    posix_spawn_file_actions_t fa;
    struct wsk__tls *t = NULL;
    int lfd, fd = -1, argc = 6, status;
    double deadline;
    pid_t pid;

    memset(res, 0, sizeof *res);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 4) < 0 ||
        getsockname(lfd, (struct sockaddr *)&addr, &addr_len) < 0)
        die("listen");
    snprintf(target, sizeof target, "127.0.0.1:%d", ntohs(addr.sin_port));
    argv[3] = target;
    for (int i = 0; opts[i] && argc < 15; i++)
        argv[argc++] = opts[i];
    argv[argc] = NULL;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    if (posix_spawnp(&pid, "openssl", &fa, NULL, argv, environ) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        close(lfd);
        res->rv = 1;
        return;
    }
    posix_spawn_file_actions_destroy(&fa);

    deadline = now_ms() + 5000;
    res->rv = WSK__TLS_WANT_READ;
    while (fd < 0 && now_ms() < deadline) {
        struct pollfd p = {lfd, POLLIN, 0};

        poll(&p, 1, 50);
        fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    }
    if (fd >= 0 && wsk__tls_new(&t, sctx, fd, true, NULL) == 0) {
        while (now_ms() < deadline) {
            struct pollfd p = {fd, POLLIN, 0};

            res->rv = wsk__tls_handshake(t);
            if (res->rv == WSK__TLS_WANT_WRITE)
                p.events = POLLOUT;
            else if (res->rv != WSK__TLS_WANT_READ)
                break;
            poll(&p, 1, 50);
        }
        snprintf(res->alpn, sizeof res->alpn, "%s", wsk__tls_alpn(t));
        snprintf(res->err, sizeof res->err, "%s", wsk__tls_error(t));
        wsk__tls_shutdown(t);
        wsk__tls_free(t);
    }
    if (fd >= 0)
        close(fd);
    close(lfd);
    for (int i = 0; i < 100 && waitpid(pid, &status, WNOHANG) == 0; i++)
        usleep(50 * 1000);
    if (waitpid(pid, &status, WNOHANG) == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
}

/* The server's TLS 1.2 side, seen from the openssl command: ECDHE with AEAD
 * is accepted; TLS 1.1 and RSA key exchange are not; ALPN without
 * http/1.1 goes on without ALPN. */
static void test_openssl_client(void)
{
    char *tls12[] = {"-tls1_2", "-cipher",  "ECDHE-ECDSA-AES128-GCM-SHA256",
                     "-alpn",   "http/1.1", NULL};
    char *tls12_chacha[] = {"-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305", NULL};
    char *tls13_h2[] = {"-tls1_3", "-alpn", "h2,spdy/3", NULL};
    char *tls11[] = {"-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0", NULL};
    char *rsa_kx[] = {"-tls1_2", "-cipher", "AES128-GCM-SHA256", NULL};
    char *cbc[] = {"-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA256", NULL};
    struct wsk__tls_ctx *sctx = server_ctx(p_srv, p_srv_key);
    struct cli_result r;

    if (!sctx)
        return;
    cli_client(sctx, tls12, &r);
    if (r.rv == 1) {
        printf("     (skipped: no openssl command)\n");
        wsk__tls_ctx_unref(sctx);
        return;
    }
    CHECK_EQ_INT(r.rv, 0);
    CHECK_STR(r.alpn, "http/1.1");

    cli_client(sctx, tls12_chacha, &r);
    CHECK_EQ_INT(r.rv, 0);
    CHECK_STR(r.alpn, "");

    cli_client(sctx, tls13_h2, &r);
    CHECK_EQ_INT(r.rv, 0);
    CHECK_STR(r.alpn, "");

    cli_client(sctx, tls11, &r);
    CHECK_EQ_INT(r.rv, WSK_ETLS);
    CHECK_HAS(r.err, "peer does not support TLS 1.2 or newer");
    printf("     TLS 1.1 client: %s\n", r.err);

    cli_client(sctx, rsa_kx, &r);
    CHECK_EQ_INT(r.rv, WSK_ETLS);
    CHECK_STR(r.err, "no cipher suite in common with the peer");

    cli_client(sctx, cbc, &r);
    CHECK_EQ_INT(r.rv, WSK_ETLS);
    CHECK_STR(r.err, "no cipher suite in common with the peer");
    wsk__tls_ctx_unref(sctx);
}

int main(void)
{
    alarm(100); /* below CTest's timeout: a hang ends here, loudly */
    make_pki();

    WSK_RUN(test_handshake_alpn);
    WSK_RUN(test_new_arguments);
    WSK_RUN(test_small_data_both_ways);
    WSK_RUN(test_one_mib_both_ways);
    WSK_RUN(test_writev_coalescing);
    WSK_RUN(test_pending);
    WSK_RUN(test_shared_read_window);
    WSK_RUN(test_wrong_ca);
    WSK_RUN(test_hostname_mismatch);
    WSK_RUN(test_insecure);
    WSK_RUN(test_expired);
    WSK_RUN(test_bad_files);
    WSK_RUN(test_stalled_client);
    WSK_RUN(test_not_tls);
    WSK_RUN(test_eof);
    WSK_RUN(test_no_sigpipe);
    WSK_RUN(test_ctx_refcount);
    WSK_RUN(test_openssl_client);

    remove_pki();
    WSK_TEST_END();
}
