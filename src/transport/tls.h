/* TLS over a non-blocking socket, for the connection layer (src/ws) and its
 * own readiness loop. Internal: not part of the public API.
 *
 * tls.c is the only file of the project that includes <openssl/ssl.h>; no
 * OpenSSL type appears here. Nothing in this module blocks, waits or touches
 * the event loop: every call does what it can at once and, when the socket
 * is not ready, returns WSK__TLS_WANT_READ or WSK__TLS_WANT_WRITE. The caller
 * then waits for that readiness of the fd (not necessarily the direction of
 * the call: a read may need the socket writable, a write readable) and calls
 * the same function again.
 *
 * The WANT codes are negative, like every error: test for them before
 * treating a negative return as fatal. Any other negative return is fatal
 * for the connection: WSK_ETLS (protocol, certificate or configuration
 * trouble; wsk__tls_error() says which in one line) or a negative errno the
 * socket reported (-ECONNRESET, -EPIPE, ...). Once a call has failed, every
 * later call returns the same code; only wsk__tls_free() remains to do.
 *
 * No SIGPIPE: the module sends through its own OpenSSL BIO, which uses
 * send(MSG_NOSIGNAL) and recv() on the fd, so writing to a connection the
 * peer has reset returns -EPIPE instead of killing the process. Callers need
 * not ignore SIGPIPE on account of this module.
 *
 * Threads: a context may be shared by connections on several threads (its
 * reference count is atomic). A connection belongs to one thread. OpenSSL
 * keeps an error queue per thread; each call here clears it before it starts
 * and leaves it empty when it returns.
 */
#ifndef WSK_TRANSPORT_TLS_H
#define WSK_TRANSPORT_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Not errors: "call again once the fd is readable / writable". They lie
 * outside both the errno range and wsk's own codes (-1000...). */
enum { WSK__TLS_WANT_READ = -2000, WSK__TLS_WANT_WRITE = -2001 };

/* ---- contexts ------------------------------------------------------------
 *
 * A context holds what connections share: protocol versions, ciphers,
 * certificate and key, trust store, ALPN. It is reference counted so that a
 * configuration reload can build a new context and drop its own reference to
 * the old one while connections made from the old one keep it alive.
 */
struct wsk__tls_ctx;

/* Creates a server context from a certificate chain file (PEM: the server's
 * certificate first, then any intermediates) and a private key file (PEM,
 * unencrypted). TLS 1.2 and 1.3 only; for TLS 1.2, ECDHE key exchange with
 * AEAD ciphers only; no renegotiation, no compression. Session tickets are
 * on. ALPN: "http/1.1" is selected when the client offers it; a client that
 * offers only other protocols is served without ALPN.
 *
 * The certificate is refused when it has expired or is not valid yet: every
 * verifying client would reject it, so it is better to fail when starting
 * (or reloading) with a message naming the file and the date than on every
 * connection.
 *
 * Returns 0 and sets *out (holding one reference), or WSK_ETLS with a
 * one-line reason in err[errlen] (err may be NULL when errlen is 0), e.g.
 *   "cannot read certificate /etc/wsk/cert.pem: No such file or directory"
 *   "cannot read certificate cert.pem: no PEM certificate in the file"
 *   "cannot read certificate key.pem: it holds a private key, not a
 *    certificate"
 *   "cannot read private key key.pem: the key is encrypted (passphrases are
 *    not supported)"
 *   "private key key.pem does not match the certificate cert.pem"
 *   "certificate cert.pem has expired (notAfter 2024-01-01 00:00:00 UTC)"
 * or -ENOMEM ("out of memory"). The file names are only borrowed. */
int wsk__tls_server_ctx_new(struct wsk__tls_ctx **out, const char *cert_file, const char *key_file,
                            char *err, size_t errlen);

/* Creates a client context. The server's certificate is verified against
 * the certificates in cafile (PEM; may hold several) when cafile is not
 * NULL, otherwise against the system's default CA store. insecure = true
 * turns verification off entirely (chain and host name: anyone in the path
 * can read and alter the traffic; for tests and self-signed setups only),
 * and cafile is then ignored. TLS 1.2 minimum, ALPN offers "http/1.1".
 *
 * With cert_file and key_file (PEM, both or neither) the client presents
 * that certificate when the server asks for one.
 *
 * Returns 0 and sets *out (holding one reference), or WSK_ETLS with a reason
 * in err[errlen] ("cannot read CA file ca.pem: No such file or directory",
 * "cannot read CA file ca.pem: no PEM certificate in the file", "private
 * key k.pem does not match the certificate c.pem", "a client certificate
 * needs a key file too"), or -ENOMEM. */
int wsk__tls_client_ctx_new(struct wsk__tls_ctx **out, const char *cafile, bool insecure,
                            const char *cert_file, const char *key_file, char *err, size_t errlen);

/* Takes one more reference on c. Thread-safe. */
void wsk__tls_ctx_ref(struct wsk__tls_ctx *c);

/* Drops one reference; the context is freed when the last one goes (each
 * connection holds one until wsk__tls_free). NULL is fine. Thread-safe. */
void wsk__tls_ctx_unref(struct wsk__tls_ctx *c);

/* ---- connections ---------------------------------------------------------- */
struct wsk__tls;

/* Creates the TLS state of one connection over fd, a connected non-blocking
 * stream socket the caller keeps owning (this module never closes it).
 * is_server selects the role; it must match the kind of ctx.
 *
 * server_name is for clients and ignored on servers. A host name is sent as
 * SNI and, unless ctx is insecure, the certificate must be valid for it
 * (its subjectAltName DNS entries, or its CN when it has none; a wildcard
 * only as a whole left-most label; a final dot in the name is dropped).
 * An IP literal ("127.0.0.1", "::1", "fe80::1%eth0", without brackets) is
 * not sent as SNI (RFC 6066 forbids it) and the certificate must carry the
 * address as an IP subjectAltName. A verifying client must give a
 * server_name: without one, anybody with any trusted certificate could pose
 * as the server, so NULL or "" is refused with -EINVAL (insecure clients
 * may pass NULL).
 *
 * Takes a reference on ctx, dropped by wsk__tls_free; the caller may unref
 * its own at once. Nothing is sent yet: call wsk__tls_handshake().
 * Returns 0 and sets *out, -EINVAL (see above, or a server_name longer than
 * 253 bytes), or -ENOMEM. */
int wsk__tls_new(struct wsk__tls **out, struct wsk__tls_ctx *ctx, int fd, bool is_server,
                 const char *server_name);

/* Frees the connection state and drops its context reference. Sends nothing
 * (call wsk__tls_shutdown first for a polite close) and does not close the
 * fd. NULL is fine. */
void wsk__tls_free(struct wsk__tls *t);

/* Advances the handshake as far as the socket allows. Returns 0 once it is
 * complete (and at every later call), WSK__TLS_WANT_READ/WANT_WRITE, or a
 * fatal error: WSK_ETLS, with wsk__tls_error() saying e.g.
 *   "certificate verify failed: unable to get local issuer certificate
 *    (issuer CN=Some CA)"
 *   "hostname mismatch: certificate is for other.example, not localhost"
 *   "certificate verify failed: certificate has expired (CN=localhost,
 *    notAfter 2024-01-01 00:00:00 UTC)"
 *   "peer did not speak TLS (it sent a plain HTTP request)"
 *   "peer closed the connection during the TLS handshake"
 *   "peer rejected our certificate (tlsv1 alert unknown ca)"
 * or a negative errno from the socket (-ECONNRESET, ...). A peer that sends
 * nothing leaves the handshake in WANT_READ forever: the caller owns the
 * handshake timeout. */
int wsk__tls_handshake(struct wsk__tls *t);

/* Reads up to len (> 0) decrypted bytes into buf, after the handshake.
 * Returns:
 *   > 0  bytes read (at most one TLS record, 16 KiB, per call);
 *   0    end of stream, now and at every later call. Either the peer sent
 *        close_notify (a clean close), or the TCP stream ended without one
 *        (an unclean close: the data received so far is intact, but the
 *        peer, or someone in the path, may have cut it short). Both are
 *        reported as 0; wsk__tls_eof_was_clean() tells them apart. Protocols
 *        that frame their own end (a WebSocket close frame, a
 *        Content-Length) can usually accept an unclean close.
 *   WSK__TLS_WANT_READ / WANT_WRITE (TLS 1.3 post-handshake messages can
 *        make a read write);
 *   < 0  a fatal error: WSK_ETLS or a negative errno (-ECONNRESET).
 * Read until WANT_READ, or check wsk__tls_pending() when stopping early:
 * decrypted bytes may sit inside OpenSSL where the fd's readiness cannot
 * show them. len == 0 returns -EINVAL. */
ssize_t wsk__tls_read(struct wsk__tls *t, void *buf, size_t len);

/* Encrypts and sends bytes from iov[0..iovcnt), after the handshake.
 *
 * Small iovecs are gathered into one buffer of up to 16 KiB per TLS record
 * (a frame header and its payload, or many tiny frames, cost one record and
 * one send instead of one each); an iovec with 16 KiB or more left, or the
 * last one, is encrypted in place.
 *
 * Returns the number of bytes consumed from the front of the sequence (> 0,
 * possibly fewer than offered), WSK__TLS_WANT_WRITE / WANT_READ when nothing
 * was consumed, or a fatal error (WSK_ETLS, -EPIPE, -ECONNRESET, ...). When
 * an error follows some progress, the progress is returned and the error
 * comes at the next call. An empty sequence returns 0.
 *
 * Retry contract. Once OpenSSL has begun to send a piece of data (here at
 * most 16 KiB), it must be offered that piece again until it is through;
 * this module remembers the piece's length, and the caller's part is:
 *   1. Bytes consumed are gone: advance past them; their memory is free.
 *   2. Bytes not consumed (after a short count or a WANT) must come again,
 *      unchanged and in order, at the front of the next wsk__tls_writev on
 *      this connection: at least 16 KiB of them or all if fewer are left,
 *      and after a call that was given more than 16 KiB, every byte it was
 *      given and did not consume (such a call gathers up to 85 KiB of
 *      records for one send() and counts their bytes as consumed only once
 *      they have gone).
 *      The iovec boundaries and addresses may differ (the bytes may have
 *      been copied or moved) and new bytes may follow them. Never put other
 *      bytes in front of them or drop them: a call with fewer bytes than the
 *      pending piece returns -EINVAL and changes nothing; one with other
 *      bytes in front would send the old piece and count it as theirs.
 *   3. A short count does not say what to wait for: call again with the
 *      rest; that call consumes more or returns the WANT to wait for
 *      (usually at once, after one send() that fails with EAGAIN).
 *   4. Unsent bytes can only be dropped with the connection (wsk__tls_free).
 * A caller that keeps one ordered queue of unsent bytes, offers its head
 * (all of it, or at least 16 KiB) and advances by the return value
 * satisfies all of this without further thought. Reads may be made in
 * between; they do not disturb a pending write. */
ssize_t wsk__tls_writev(struct wsk__tls *t, const struct iovec *iov, int iovcnt);

/* True when bytes are waiting inside OpenSSL or our BIO: the next
 * wsk__tls_read() returns data (or, when they end in a partial record,
 * WANT_READ) without the fd becoming readable. */
bool wsk__tls_pending(const struct wsk__tls *t);

/* OpenSSL's buffers (about 34 KiB a connection) are released whenever they
 * are empty, so idle connections keep none; but allocating and freeing them
 * for every large record made glibc hand the pages back to the kernel and
 * fault them in again, half the CPU of a 64 KiB wss echo. So a connection
 * that reads a large record keeps them, until a call to this function
 * finds that it has read none since the previous call. Call it every
 * second or so, e.g. from a sweep over the connections. */
void wsk__tls_trim(struct wsk__tls *t);

/* Sends close_notify if the handshake completed and nothing failed; best
 * effort: when the socket is full the alert is dropped, and nothing waits
 * for the peer's reply. Sending more data afterwards is an error. Call it
 * before closing the fd to tell the peer the stream ended cleanly. */
void wsk__tls_shutdown(struct wsk__tls *t);

/* The one-line reason for the last fatal error (and, after an unclean end
 * of stream, a note that it was unclean), or "" when there is none. Valid
 * until the next call on t or until wsk__tls_free. */
const char *wsk__tls_error(const struct wsk__tls *t);

/* After wsk__tls_read() returned 0: true when the peer sent close_notify,
 * false when the stream just ended. False before the end of stream. */
bool wsk__tls_eof_was_clean(const struct wsk__tls *t);

/* The ALPN protocol agreed in the handshake ("http/1.1"), or "" when none
 * was (or the handshake is not complete). Valid until wsk__tls_free. */
const char *wsk__tls_alpn(const struct wsk__tls *t);

#endif
