/* wsk net: raw TCP and UDP on a wsk_loop, beside WebSocket (article 003's
 * echo servers and clients, line chats, bridges to sockets).
 *
 * A TCP connection (struct wsk_tcp) is the same object for servers and
 * clients: bytes in through on_data, bytes out through wsk_tcp_send() into
 * a bounded send queue, the same loop, streams and segment pools as
 * WebSocket connections. A client may speak TLS (cfg.tls), verified as the
 * WebSocket client verifies wss:// servers. A UDP socket (struct wsk_udp) delivers datagrams
 * with their sender and sends at once (UDP has no queue: a full socket
 * buffer drops the datagram and says so).
 *
 * Rules as for wsk/ws.h: everything belongs to the loop's thread; data
 * handed to a callback is valid until it returns; closing, sending or
 * freeing from inside any callback is safe; a connection's memory goes at
 * the end of the iteration that called its on_close.
 */
#ifndef WSK_NET_H
#define WSK_NET_H

#include <sys/socket.h>

#include "wsk/common.h"
#include "wsk/error.h"
#include "wsk/loop.h"

#ifdef __cplusplus
extern "C" {
#endif

struct wsk_tcp;
struct wsk_tcp_server;
struct wsk_udp;

/* ---- TCP ---------------------------------------------------------------- */

/* Handlers; any may be NULL. user_data is the config's. */
struct wsk_tcp_handlers {
    /* Server: a connection was accepted. Client: connected (and, with
     * TLS, the handshake done and the certificate verified). */
    void (*on_open)(struct wsk_tcp *t, void *user_data);
    /* Bytes from the peer, in order, as they come (no framing). */
    void (*on_data)(struct wsk_tcp *t, const uint8_t *data, size_t len, void *user_data);
    /* The send queue fell to half of max_send_queue or below after a send
     * returned WSK_EBACKPRESSURE. */
    void (*on_drain)(struct wsk_tcp *t, void *user_data);
    /* Exactly once for every connection on_open was called for, and for
     * every client connection (failed attempts too). error 0: a normal end
     * (the peer's EOF once everything queued was written, or
     * wsk_tcp_close() completed); else why: -ECONNREFUSED, WSK_EDNS,
     * -ECONNRESET, -ETIMEDOUT (connect, idle or close timeout), WSK_ETLS
     * (the TLS handshake failed: wsk_tcp_error_detail() says why), ... */
    void (*on_close)(struct wsk_tcp *t, int error, void *user_data);
    /* The peer shut down its side (EOF). Without this handler the
     * connection ends once what is queued is written. With it, the
     * connection stays open for sending until wsk_tcp_shutdown() or
     * wsk_tcp_close() (a relay passes the EOF on and waits for the other
     * side's); nothing more is read. */
    void (*on_eof)(struct wsk_tcp *t, void *user_data);
};

/* Zero means default; fill with wsk_tcp_config_init(). */
struct wsk_tcp_config {
    struct wsk_tcp_handlers handlers;
    void *user_data;
    wsk_log_cb log;
    size_t max_send_queue;       /* default 1 MiB: sends past it return WSK_EBACKPRESSURE */
    uint32_t idle_timeout_ms;    /* no byte either way for this long: -ETIMEDOUT; 0: never */
    uint32_t close_timeout_ms;   /* default 5000: after wsk_tcp_close(), to flush and see EOF */
    uint32_t connect_timeout_ms; /* client, default 10000: name lookup, connect and TLS */
    size_t max_connections;      /* server, default 100000: more are closed at accept */
    bool reuse_port;             /* server: SO_REUSEPORT on listeners */
    /* Client TLS, as for wss:// in wsk/ws.h; servers ignore these. With
     * tls, the handshake follows the connection and on_open follows the
     * handshake. The server's certificate is verified against the system's
     * CA store, or only against ca_file (PEM) when set, and must be valid
     * for server_name, or when that is NULL or empty for the host given to
     * wsk_tcp_connect(): a name is sent as SNI and must match a DNS name of
     * the certificate (a wildcard only as the whole left-most label); an IP
     * address must be one of its IP addresses. insecure skips all
     * verification (tests only). The strings are read during
     * wsk_tcp_connect() only. */
    bool tls;
    bool insecure;
    const char *ca_file;
    const char *server_name;
    /* A client certificate and its key (PEM), both or neither. */
    const char *cert_file;
    const char *key_file;
};

/* Fills cfg with the defaults above. Cannot fail. */
WSK_API void wsk_tcp_config_init(struct wsk_tcp_config *cfg);

/* Creates a server on loop (which must outlive it), not yet listening. cfg
 * may be NULL for defaults; it is copied. Returns 0 and sets *out, or
 * -ENOMEM (*out untouched). */
WSK_API int wsk_tcp_server_new(struct wsk_tcp_server **out, struct wsk_loop *loop,
                               const struct wsk_tcp_config *cfg);

/* Listens on host (a name, resolved now and blocking, or a numeric IPv4 or
 * IPv6 address, brackets allowed; NULL: 127.0.0.1) and port (0: any free
 * one). May be called more than once. Returns the port bound (1..65535),
 * WSK_EDNS, -EINVAL for a bad host, -ENOSPC past 8 listeners, or the
 * socket's error (-EADDRINUSE, -EACCES, ...). */
WSK_API int wsk_tcp_server_listen(struct wsk_tcp_server *srv, const char *host, uint16_t port);

/* The port of the first listener, 0 when none. Cannot fail. */
WSK_API uint16_t wsk_tcp_server_port(const struct wsk_tcp_server *srv);

/* Connections open now. Cannot fail. */
WSK_API size_t wsk_tcp_server_count(const struct wsk_tcp_server *srv);

/* Sends len bytes to every connection but except (may be NULL). A
 * connection whose queue already holds more than max_send_queue is closed
 * (a chat must not lose lines silently or hold memory for a reader that
 * does not read); the rest get the bytes. Returns how many got them, or
 * -ENOMEM (some may have got them). */
WSK_API int wsk_tcp_server_broadcast(struct wsk_tcp_server *srv, const void *data, size_t len,
                                     const struct wsk_tcp *except);

/* Stops listening and closes every connection with wsk_tcp_close(); the
 * loop returns once they are gone. Cannot fail; calling it again does
 * nothing. */
WSK_API void wsk_tcp_server_shutdown(struct wsk_tcp_server *srv);

/* Closes the listeners and ends every connection at once (on_close with
 * WSK_ECLOSED), then frees the server. From inside a callback the memory
 * goes at the end of the loop iteration. NULL is fine. */
WSK_API void wsk_tcp_server_free(struct wsk_tcp_server *srv);

/* Connects to host (a name, resolved off the loop thread, or a numeric
 * address, IPv6 with or without brackets) and port, trying each address in
 * turn, then runs the TLS handshake when cfg->tls. cfg may be NULL. Returns
 * 0 and sets *out: on_open or on_close follows, never before this call
 * returns; connect_timeout_ms covers the lookup, the connection and TLS.
 * Or, with no callback and *out untouched: -EINVAL for a NULL or empty host
 * or port 0, or with TLS a server name over 253 bytes; WSK_ETLS when the
 * TLS context cannot be set up, e.g. an unusable ca_file (the reason, such
 * as "cannot read CA file ca.pem: No such file or directory", goes to the
 * log callback at level 0); -ENOMEM; or the loop's error. */
WSK_API int wsk_tcp_connect(struct wsk_tcp **out, struct wsk_loop *loop, const char *host,
                            uint16_t port, const struct wsk_tcp_config *cfg);

/* Sends len bytes: 16 KiB or more with nothing queued go to the socket at
 * once, the rest is queued and written at the end of the loop iteration.
 * Returns 0; WSK_EBACKPRESSURE when they were queued but the queue is now
 * past max_send_queue (wait for on_drain; memory is the caller's to bound
 * from here); WSK_ESTATE before on_open, after wsk_tcp_close() or
 * wsk_tcp_shutdown(), or once ended; WSK_ECLOSED when the socket failed
 * (on_close follows, on the flush round); -ENOMEM (nothing queued). */
WSK_API int wsk_tcp_send(struct wsk_tcp *t, const void *data, size_t len);

/* Stops (true) or resumes (false) reading from the peer: back-pressure
 * on a sender whose bytes cannot be passed on now. Cannot fail. */
WSK_API void wsk_tcp_pause(struct wsk_tcp *t, bool paused);

/* Ends the connection gracefully: what is queued is written, then our side
 * is shut down (FIN) and input is discarded until the peer's EOF (or
 * close_timeout_ms), then on_close (error 0). Calling it again does
 * nothing. Returns 0. */
WSK_API int wsk_tcp_close(struct wsk_tcp *t);

/* Half-closes: once everything queued is written, the peer gets EOF (FIN),
 * and bytes keep arriving through on_data until the peer's own EOF, which
 * ends the connection normally (on_close, error 0), as does close_timeout_ms
 * without it. What a client does at the end of its input. Sends after this
 * return WSK_ESTATE. Returns 0 (also when called again), or WSK_ESTATE before
 * on_open or once closing. */
WSK_API int wsk_tcp_shutdown(struct wsk_tcp *t);

/* Bytes queued and not yet written. Cannot fail. */
WSK_API size_t wsk_tcp_send_queue(const struct wsk_tcp *t);

/* More about the error on_close reports, when known: with TLS, OpenSSL's
 * reason in one line ("certificate verify failed: unable to get local
 * issuer certificate (issuer CN=...)", "hostname mismatch: certificate is
 * for other.example, not localhost", "peer closed the connection during
 * the TLS handshake"); "" otherwise. Valid until on_close returns. Never
 * NULL. */
WSK_API const char *wsk_tcp_error_detail(const struct wsk_tcp *t);

/* The peer's address, "1.2.3.4:5678" or "[::1]:5678", valid until the next
 * call from this thread; "(unknown)" when not connected. */
WSK_API const char *wsk_tcp_peer(const struct wsk_tcp *t);

WSK_API void wsk_tcp_set_data(struct wsk_tcp *t, void *data);
WSK_API void *wsk_tcp_get_data(const struct wsk_tcp *t);

/* ---- UDP ---------------------------------------------------------------- */

struct wsk_udp_handlers {
    /* One datagram and its sender (valid during the call). A datagram
     * longer than max_datagram arrives cut to it, with truncated set. */
    void (*on_datagram)(struct wsk_udp *u, const uint8_t *data, size_t len, bool truncated,
                        const struct sockaddr *from, socklen_t from_len, void *user_data);
    /* An error the socket reported, e.g. -ECONNREFUSED on a connected
     * socket when the peer's port is closed (ICMP). The socket stays
     * usable. */
    void (*on_error)(struct wsk_udp *u, int error, void *user_data);
};

struct wsk_udp_config {
    struct wsk_udp_handlers handlers;
    void *user_data;
    size_t max_datagram; /* default 65507 (the largest UDP payload over IPv4) */
    bool reuse_port;     /* wsk_udp_bind(): SO_REUSEPORT, so that sockets of several
                            threads or processes share the port (the kernel picks one
                            per sender by its address, so a sender keeps to one) */
};

/* Fills cfg with the defaults. Cannot fail. */
WSK_API void wsk_udp_config_init(struct wsk_udp_config *cfg);

/* A socket bound to host and port (as wsk_tcp_server_listen(): a name is
 * resolved now, blocking; port 0 picks one). Returns 0 and sets *out,
 * WSK_EDNS, -EINVAL, -ENOMEM or the socket's error. */
WSK_API int wsk_udp_bind(struct wsk_udp **out, struct wsk_loop *loop, const char *host,
                         uint16_t port, const struct wsk_udp_config *cfg);

/* A socket connected to host and port (a name is resolved now, blocking:
 * call it at startup): wsk_udp_send() goes there, and only its datagrams
 * come in. Same returns as wsk_udp_bind(). */
WSK_API int wsk_udp_connect(struct wsk_udp **out, struct wsk_loop *loop, const char *host,
                            uint16_t port, const struct wsk_udp_config *cfg);

/* Sends one datagram (to the connected peer). Returns 0, -EAGAIN when the
 * socket's buffer is full (the datagram was dropped: UDP has no queue),
 * -EMSGSIZE, -EDESTADDRREQ on an unconnected socket, or another send
 * error. */
WSK_API int wsk_udp_send(struct wsk_udp *u, const void *data, size_t len);

/* Sends one datagram to addr. Same returns as wsk_udp_send(). */
WSK_API int wsk_udp_send_to(struct wsk_udp *u, const void *data, size_t len,
                            const struct sockaddr *addr, socklen_t addr_len);

/* The local port. Cannot fail. */
WSK_API uint16_t wsk_udp_port(const struct wsk_udp *u);

/* Closes the socket and frees it; safe from inside its callbacks. NULL is
 * fine. */
WSK_API void wsk_udp_free(struct wsk_udp *u);

/* Writes addr as "1.2.3.4:5678" or "[::1]:5678" into buf (NUL-terminated,
 * cut to cap). Returns buf. */
WSK_API char *wsk_sockaddr_str(const struct sockaddr *addr, socklen_t len, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif

#endif
