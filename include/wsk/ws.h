/* wsk WebSocket endpoints: servers and clients on a wsk_loop.
 *
 * A connection (struct wsk_conn) is the same object on both sides. Events
 * arrive through one typed callback each, with the user_data given in the
 * config; per-connection data hangs off wsk_conn_set_data(). Data handed to a
 * callback is borrowed and valid until the callback returns. Closing, sending
 * or freeing the server from inside any callback is safe. A connection's
 * memory goes away after its on_close callback returns.
 *
 * Teardown order: wsk_server_free() (or wsk_server_shutdown() and run the
 * loop until it returns), close client connections and run the loop until
 * wsk_loop_run() returns (a connection's memory goes at the end of the
 * iteration that called its on_close), then wsk_loop_free(), which refuses
 * with -EBUSY while anything still lives on the loop.

 * Threads: servers, connections and their callbacks belong to the loop's
 * thread. No function here may be called from another thread; hand work over
 * with wsk_loop_post() instead.
 */
#ifndef WSK_WS_H
#define WSK_WS_H

#include <sys/socket.h>

#include "wsk/common.h"
#include "wsk/deflate.h"
#include "wsk/error.h"
#include "wsk/loop.h"
#include "wsk/proto.h"

#ifdef __cplusplus
extern "C" {
#endif

struct wsk_conn;
struct wsk_server;

/* ---- events ----------------------------------------------------------- */

/* The opening handshake, on both sides. Slices are valid during on_open. */
struct wsk_open_event {
    struct wsk_slice path;                 /* server: request path; client: the URL's path */
    struct wsk_slice query;                /* without '?', empty when none */
    struct wsk_slice subprotocol;          /* negotiated, empty when none */
    struct wsk_slice origin;               /* server: the Origin header, empty when absent */
    struct wsk_slice extensions;           /* negotiated Sec-WebSocket-Extensions value, or empty */
    const struct wsk_http_header *headers; /* request (server) or response (client) headers */
    size_t num_headers;
};

/* One whole message, reassembled from its fragments. */
struct wsk_message {
    enum wsk_opcode opcode; /* WSK_OP_TEXT (valid UTF-8) or WSK_OP_BINARY */
    const uint8_t *data;
    size_t len;
};

struct wsk_close_event {
    unsigned code; /* the peer's close code, 1005 when it sent none, 1006 when no
                      close frame was exchanged */
    struct wsk_slice reason;
    int error;       /* 0 after a clean close handshake, else why the connection ended:
                        -ECONNREFUSED, WSK_EDNS, WSK_EHSTATUS, WSK_EPROXY, -ETIMEDOUT,
                        WSK_EPROTO... */
    int http_status; /* client: the status of a rejected handshake, else 0 */
    /* More about error when known, e.g. TLS "certificate verify failed: ..."
     * or "hostname mismatch: ..."; "" otherwise. */
    const char *detail;
    bool was_open; /* on_open had been called */
};

/* Handlers. Any may be NULL. user_data is the config's. */
struct wsk_handlers {
    void (*on_open)(struct wsk_conn *conn, const struct wsk_open_event *ev, void *user_data);
    void (*on_message)(struct wsk_conn *conn, const struct wsk_message *msg, void *user_data);
    /* Pings are answered automatically; on_ping only observes them. */
    void (*on_ping)(struct wsk_conn *conn, const uint8_t *data, size_t len, void *user_data);
    void (*on_pong)(struct wsk_conn *conn, const uint8_t *data, size_t len, void *user_data);
    /* The send queue fell to half of max_send_queue or below after a send
     * returned WSK_EBACKPRESSURE: sending may resume. */
    void (*on_drain)(struct wsk_conn *conn, void *user_data);
    /* Called exactly once for every client connection (failed attempts too)
     * and for every server connection that reached on_open; server
     * connections that never upgraded (plain HTTP, refused handshakes) get
     * none. wsk_conn_peer() still works here; the memory goes after it
     * returns. */
    void (*on_close)(struct wsk_conn *conn, const struct wsk_close_event *ev, void *user_data);
};

/* What happens when a message sent to a connection by someone else (a
 * broadcast, a publish to a topic: wsk/topic.h) would grow its send queue
 * past max_send_queue. wsk_server_get_stats() counts both outcomes. */
enum wsk_overflow_policy {
    WSK_OVERFLOW_CLOSE = 0, /* close the slow connection with 1008 (default) */
    WSK_OVERFLOW_DROP,      /* drop the message for that connection */
};

/* Limits and timers shared by servers and clients. Zero means default. */
struct wsk_conn_limits {
    uint64_t max_message;  /* default 16 MiB; exceeded: close 1009 */
    size_t max_send_queue; /* default 1 MiB */
    enum wsk_overflow_policy overflow;
    uint32_t handshake_timeout_ms; /* default 10000 */
    /* Keepalive: after ping_interval_ms without a keepalive in flight, a
     * ping with a 4-byte nonce is sent; only a pong with that payload
     * counts. Without it in pong_timeout_ms the connection is closed with
     * 1011 "keepalive ping timeout" and, if the peer does not answer that
     * within close_timeout_ms, dropped; on_close then reports code 1006
     * and error -ETIMEDOUT. */
    uint32_t ping_interval_ms; /* default 20000; UINT32_MAX disables */
    uint32_t pong_timeout_ms;  /* default: ping_interval_ms, at most 20000 */
    uint32_t close_timeout_ms; /* default 5000: wait for the peer's close */
    /* default 30000: a plain HTTP response (a static file) that makes no
     * progress for this long is dropped; a slow but steady one goes on. */
    uint32_t send_timeout_ms;
};

/* ---- server ----------------------------------------------------------- */

/* A plain HTTP request (not a WebSocket upgrade), complete with its body,
 * for the server's on_http_request handler. Everything is valid during the
 * call only. */
struct wsk_http_request_event {
    struct wsk_slice method; /* as sent: "GET", "POST", ... */
    struct wsk_slice path;   /* as sent: percent-escapes are not decoded */
    struct wsk_slice query;  /* without '?', empty when none */
    const struct wsk_http_header *headers;
    size_t num_headers;
    const uint8_t *body;         /* the Content-Length bytes that followed the head */
    size_t body_len;             /* 0 (body NULL) when there were none */
    const struct sockaddr *peer; /* the client's address (getpeername()), NULL if unknown */
    socklen_t peer_len;
};

/* An upgrade request that passed the protocol's checks (method, version,
 * key, Origin against origins, ws_path, max_connections), for the server's
 * on_upgrade handler. Everything is valid during the call only. */
struct wsk_upgrade_event {
    struct wsk_slice path;   /* as sent: percent-escapes are not decoded */
    struct wsk_slice query;  /* without '?', empty when none */
    struct wsk_slice origin; /* the Origin header, empty when absent */
    /* The first Sec-WebSocket-Protocol header as sent ("chat, superchat"),
     * empty when the client offered none. */
    struct wsk_slice subprotocols;
    const struct wsk_http_header *headers; /* Cookie, Authorization, ... */
    size_t num_headers;
    const struct sockaddr *peer; /* the client's address (getpeername()), NULL if unknown */
    socklen_t peer_len;
};

/* Decides an upgrade: who may join, with which subprotocol, in which
 * topics. Returns 0 to accept, or an HTTP status from 400 to 599 to refuse
 * (401 for a missing or wrong token, 403, 429, ...): the client gets that
 * status and the connection closes, with no on_open and no on_close. Any
 * other value refuses with 500 (and is logged).
 *
 * During the call, and only then, on conn: wsk_conn_choose_subprotocol()
 * overrides the server's choice; wsk_conn_subscribe() (wsk/topic.h) names
 * topics the connection joins as it opens, before on_open; and
 * wsk_conn_set_data() sets what on_open and every later callback get
 * (free it yourself when refusing); wsk_conn_set_refusal() says why a
 * refusal is, for the access log. wsk_conn_peer() works; closing conn or
 * freeing the server refuses the upgrade. */
typedef int (*wsk_upgrade_cb)(struct wsk_conn *conn, const struct wsk_upgrade_event *ev,
                              void *user_data);

/* Handles one request. conn is the HTTP connection, good only for
 * wsk_conn_http_reply() and wsk_conn_peer() during the call. To answer,
 * call wsk_conn_http_reply() before returning; to leave the request to the
 * server (static files, index_page, 404, 405), return without it. The
 * answer cannot come later: this hook is for answers the loop thread knows
 * at once (publishing a message, a health check, a small API). */
typedef void (*wsk_http_request_cb)(struct wsk_conn *conn, const struct wsk_http_request_event *req,
                                    void *user_data);

/* One answer the server wrote to a request, for an access log: a plain
 * HTTP response (static file, page, error, the application's), a refused
 * upgrade, or an accepted one (101). Valid during the call only. */
struct wsk_access_event {
    struct wsk_slice method; /* as sent; empty when the request could not be parsed */
    struct wsk_slice path;   /* as sent, without the query; likewise */
    int status;
    uint64_t bytes; /* the body's length (Content-Length); 0 for 101 */
    /* Why a request or an upgrade was refused, for the log: a static phrase
     * ("Origin not allowed", "not the WebSocket path", "request head over
     * --max-head") or on_upgrade's wsk_conn_set_refusal() ("refused by the
     * application" without one); "" when there is nothing to say. */
    const char *reason;
};
/* Called on the loop thread as the answer is queued. It may only look:
 * wsk_conn_peer() works; sending, closing or freeing from it is not
 * allowed. */
typedef void (*wsk_access_cb)(struct wsk_conn *conn, const struct wsk_access_event *ev,
                              void *user_data);

struct wsk_server_config {
    struct wsk_handlers handlers;
    void *user_data;
    wsk_log_cb log;
    struct wsk_conn_limits limits;
    size_t max_head;                 /* HTTP header block limit, default 8 KiB (431 beyond) */
    size_t max_connections;          /* default 100000; beyond it: HTTP 503 */
    const char *const *subprotocols; /* in order of preference */
    size_t num_subprotocols;
    const char *const *origins; /* allowed Origin values; none: any (403 otherwise) */
    size_t num_origins;
    const char *ws_path; /* only upgrades on this path; NULL: any path */
    /* SO_REUSEPORT on listeners: several servers (processes or threads, same
     * user) listen on one port and the kernel spreads connections. */
    bool reuse_port;
    const char *static_dir; /* serve GET/HEAD files from here; NULL: none */
    /* static_dir: a directory without index.html gets an HTML listing of
     * its files and subdirectories (dot-files and symlinks left out, at most
     * 10,000 entries) instead of 404. */
    bool list_dirs;
    /* TLS: with both set, every connection is https:// / wss://. PEM files:
     * the certificate chain (server certificate first) and an unencrypted
     * key. A file that cannot be used fails wsk_server_new() with WSK_ETLS and
     * the reason goes to the log callback. */
    const char *tls_cert_file;
    const char *tls_key_file;
    /* permessage-deflate (RFC 7692): off unless deflate.enabled. Memory per
     * connection: see wsk/deflate.h (window 15: about 190 KB once both
     * directions were used; window 12: about 50 KB; no context takeover: 0
     * between messages). */
    struct wsk_deflate_config deflate;
    /* A built-in document served for GET / (and /index.html) when no file
     * matches; borrowed, must outlive the server. */
    const uint8_t *index_page;
    size_t index_page_len;
    /* wsk_server_publish_async() (wsk/topic.h): bytes that may wait for the
     * loop; default 16 MiB. */
    size_t max_publish_queue;
    /* Plain HTTP requests go to this handler first when set, once head and
     * body are in. The body is read only with a handler: a Content-Length
     * up to max_http_body (default 64 KiB); a longer one is answered 413, a
     * chunked or other Transfer-Encoding 411, a malformed or conflicting
     * Content-Length 400, all without calling the handler, and the
     * connection closed. "Expect: 100-continue" gets its 100 when the body
     * will be read. The whole request must arrive within
     * limits.handshake_timeout_ms. */
    wsk_http_request_cb on_http_request;
    size_t max_http_body;
    /* Upgrades go to this handler, when set, after the protocol's checks
     * and before the 101: see wsk_upgrade_cb. */
    wsk_upgrade_cb on_upgrade;
    /* Every answer written to a request, when set: see wsk_access_cb. */
    wsk_access_cb on_access;
};

/* Fills cfg with the defaults: max_head 8 KiB, max_connections 100000,
 * everything else zero (default limits, no TLS, no static files, no
 * compression). Cannot fail. */
WSK_API void wsk_server_config_init(struct wsk_server_config *cfg);

/* Creates a server on loop, which must outlive it. cfg may be NULL for the
 * defaults. The config is copied (strings too), except index_page, which is
 * borrowed; static_dir is opened now and the TLS files are read now.
 *
 * Returns 0 and sets *out, which the caller frees with wsk_server_free().
 * On failure *out is not written, and it returns -ENOMEM; -EINVAL when only
 * one of tls_cert_file and tls_key_file is set; WSK_ETLS when they cannot be used
 * (the reason goes to the log callback); or the errno of opening static_dir
 * (-ENOENT, -ENOTDIR, -EACCES, ...). */
WSK_API int wsk_server_new(struct wsk_server **out, struct wsk_loop *loop,
                           const struct wsk_server_config *cfg);

/* Listens on host and port (0: any free port; see wsk_server_port()). May be
 * called several times, for at most 8 listeners.
 *
 * host is an IPv4 or IPv6 address ("127.0.0.1", "::1", "0.0.0.0" or "::" for
 * every interface; brackets around IPv6 are accepted: "[::1]"), or a name.
 * NULL or "" means 127.0.0.1, and "localhost" means 127.0.0.1, without a
 * lookup. Any other name is resolved with getaddrinfo(), which BLOCKS the
 * calling thread until the resolver answers: call this at startup, before
 * the loop has connections to serve. Of the name's addresses, IPv4 ones are
 * tried first, then IPv6 ones, each in the resolver's order, and the first
 * that can be bound is listened on; only that one (to listen on several
 * addresses, call this once for each). Addresses that are not on this
 * machine or of a family it lacks are skipped.
 *
 * Returns the port bound (1..65535: port, or the one the kernel picked for
 * 0); WSK_EDNS when the name has no address; -ENOSPC past 8
 * listeners; -ENOMEM; the socket error (-EADDRINUSE, -EACCES, -EADDRNOTAVAIL
 * when no address of the name is on this machine, ...); or the error of
 * watching the socket (WSK_EFDSETSIZE with the select backend). host is
 * borrowed for the call. */
WSK_API int wsk_server_listen(struct wsk_server *srv, const char *host, uint16_t port);

/* The port of the first listener (useful after listening on port 0); 0 when
 * nothing listens, also after wsk_server_shutdown(). */
WSK_API uint16_t wsk_server_port(const struct wsk_server *srv);

/* Sends one message to every open connection that has not sent or received
 * a close frame (encoded once, shared; data is copied). Slow receivers get
 * the overflow policy. A receiver whose queueing runs out of memory is ended
 * at once, so on_close may run inside this call.
 *
 * Returns the number of connections it was queued to (receivers closed or
 * dropped by the overflow policy, or ended, are not counted); -EINVAL for an
 * opcode other than WSK_OP_TEXT and WSK_OP_BINARY, WSK_EUTF8 for text that is
 * not UTF-8, or -ENOMEM, and then nothing was sent. */
WSK_API int wsk_server_broadcast(struct wsk_server *srv, enum wsk_opcode opcode, const void *data,
                                 size_t len);

/* Stops accepting, closes every connection with code (1001 for a shutdown)
 * and reason, as wsk_conn_close() does, and lets the close handshakes finish
 * (at most close_timeout). Connections still sending their request head end
 * at once; plain HTTP replies in flight finish. Then the server holds nothing
 * on the loop and wsk_loop_run() can return; it still has to be freed with
 * wsk_server_free(). A code that is neither 0 nor valid
 * (wsk_close_code_is_valid()) is replaced by 1001. */
WSK_API void wsk_server_shutdown(struct wsk_server *srv, unsigned code, const char *reason);

/* Reads the TLS certificate and key files again (after they were renewed,
 * e.g. on SIGHUP). New connections use the new ones; open connections keep
 * the old until they end. On failure the old ones stay in use, the reason
 * goes to the log callback, and WSK_ETLS (or -ENOMEM) is returned; -EINVAL
 * when the server has no TLS. Returns 0 on success. */
WSK_API int wsk_server_reload_tls(struct wsk_server *srv);

/* Number of open WebSocket connections: on_open called, on_close not yet.
 * Plain HTTP connections are not counted. */
WSK_API size_t wsk_server_num_connections(const struct wsk_server *srv);

/* Closes everything at once (no close handshake; on_close is called for
 * each open connection) and frees the server. NULL is fine, and so is a call
 * from inside any of the server's callbacks: the connections end at once,
 * the memory goes at the end of the loop iteration (srv must not be used
 * after the call either way). Free servers before their loop:
 * wsk_loop_free() refuses (-EBUSY) while a server still listens. A server
 * stopped with wsk_server_shutdown() is freed with this too. */
WSK_API void wsk_server_free(struct wsk_server *srv);

/* From inside on_upgrade: answer the upgrade with subprotocol name (which
 * the client must have offered) instead of the server's choice from its
 * subprotocols list; NULL: none. Returns 0; -EINVAL for a name the client
 * did not offer or that is not a token (nothing changes); WSK_ESTATE
 * outside on_upgrade. */
WSK_API int wsk_conn_choose_subprotocol(struct wsk_conn *conn, const char *name);

/* From inside on_upgrade, before refusing: why, for the access log
 * (wsk_access_event.reason; the client is not told). Copied, at most 95
 * bytes, bytes outside printable ASCII (and '"', '\\') as '?'. Returns 0; WSK_ESTATE
 * outside on_upgrade. */
WSK_API int wsk_conn_set_refusal(struct wsk_conn *conn, const char *reason);

/* Answers the plain HTTP request that on_http_request is handling on conn:
 * status (200..599 but 101), Content-Type content_type (NULL: none), body
 * (body_len bytes, copied; not sent for HEAD, whose Content-Length still
 * says body_len) and extra header lines in headers ("Name: value\r\n" each,
 * NULL: none; Content-Length, Transfer-Encoding and Connection are the
 * server's own). The connection stays open for the next request when the
 * client allows it.
 *
 * Returns 0; -EINVAL for a status out of range, a content_type with a
 * control character, or headers that are not whole lines or name a header
 * the server writes itself, and nothing was sent (return from the handler
 * without answering, and the server answers as it would without one, or
 * call again); WSK_ESTATE when conn has no request being handled (outside
 * on_http_request, or answered already); -ENOMEM, and then the connection
 * has ended. */
WSK_API int wsk_conn_http_reply(struct wsk_conn *conn, int status, const char *content_type,
                                const void *body, size_t body_len, const char *headers);

/* ---- client ----------------------------------------------------------- */

struct wsk_client_config {
    struct wsk_handlers handlers;
    void *user_data;
    wsk_log_cb log;
    struct wsk_conn_limits limits;
    const char *const *subprotocols; /* offered, in order */
    size_t num_subprotocols;
    const char *const *headers; /* extra request headers, each "Name: value" */
    size_t num_headers;
    const char *origin;          /* NULL: no Origin header */
    uint32_t connect_timeout_ms; /* DNS + TCP + proxy + TLS + handshake; default 10000 */
    /* wss://: the server's certificate is verified against the system's CA
     * store, or only against ca_file (PEM) when set, and must be valid for the
     * URL's host. insecure skips all verification (tests only). */
    const char *ca_file;
    bool insecure;
    /* wss://: a client certificate (PEM chain) and its key (PEM, not
     * encrypted), both or neither, presented when the server asks. */
    const char *cert_file;
    const char *key_file;
    /* permessage-deflate offer: off unless deflate.enabled. */
    struct wsk_deflate_config deflate;
    /* NULL or "": connect directly. Otherwise the proxy to tunnel through,
     * [SCHEME://][USER[:PASSWORD]@]HOST[:PORT] as curl takes it: http (the
     * default scheme) asks with CONNECT host:port (Basic credentials when
     * given), socks5 resolves the server's name here and sends the proxy its
     * address, socks5h lets the proxy resolve it (RFC 1928, RFC 1929 for the
     * credentials); PORT defaults to 1080; USER and PASSWORD may hold %XX
     * escapes. wss:// runs TLS with the server inside the tunnel. The
     * environment is not read here: see wsk_proxy_from_env(). */
    const char *proxy;
};

/* Fills cfg with the defaults: connect_timeout_ms 10000, everything else zero
 * (default limits, no subprotocols, certificate verification on, no
 * compression). Cannot fail. */
WSK_API void wsk_client_config_init(struct wsk_client_config *cfg);

/* Starts connecting to url (ws:// or wss://host[:port][/path][?query]; host
 * may be a name, IPv4 or [IPv6]). Name resolution runs on a helper thread so
 * the loop never blocks. cfg may be NULL for the defaults; url and cfg are
 * not kept (what is needed is copied or read now, the CA file included).
 *
 * Returns 0 and sets *out, a connection that reports on_open or on_close
 * later: every failure from then on, even one known at once, reaches
 * on_close after this call returned, and the memory goes after on_close.
 * Or, at once and with no on_close, *out not written: WSK_EURL for a NULL
 * url, a scheme other than ws or wss, a fragment or a host over 255 bytes,
 * and also when cfg's headers, origin or subprotocols cannot go into a
 * request (a control character, a header not "Name: value", a subprotocol
 * that is not a token), or for a cfg->proxy that does not parse (the reason
 * goes to the log callback); -EINVAL for an invalid cfg->deflate; WSK_ETLS when
 * the TLS context for wss:// cannot be set up, e.g. an unusable ca_file (the
 * reason goes to the log callback); or -ENOMEM. */
WSK_API int wsk_client_connect(struct wsk_conn **out, struct wsk_loop *loop, const char *url,
                               const struct wsk_client_config *cfg);

/* The proxy the environment sets for url, as curl reads it: https_proxy
 * (or HTTPS_PROXY) for wss:// and https://, http_proxy (lower case only:
 * CGI servers set HTTP_PROXY from a request header) for ws:// and http://,
 * else all_proxy (or ALL_PROXY); none when the host matches no_proxy (or
 * NO_PROXY: comma-separated names, which match their subdomains too,
 * addresses, networks such as 10.0.0.0/8, or "*"). Unlike curl, a loopback
 * host (localhost, 127.0.0.0/8, ::1) is never proxied, as Go's net/http
 * does: a proxy elsewhere cannot reach this machine's loopback.
 *
 * Returns the variable's value (owned by the environment: valid until it is
 * changed) for wsk_client_config.proxy, or NULL for a direct connection,
 * and for a url that does not parse. Not thread-safe against setenv(). */
WSK_API const char *wsk_proxy_from_env(const char *url);

/* ---- connections ------------------------------------------------------ */

/* Queues a text or binary message; data is copied (or written) before the
 * call returns. Messages sent while the connection handles one read burst
 * leave together in one write.
 *
 * Returns 0; WSK_EBACKPRESSURE when the send queue is over its limit (the
 * message is still queued: stop sending until on_drain). Else nothing was
 * queued: -EINVAL for an opcode other than WSK_OP_TEXT and WSK_OP_BINARY;
 * WSK_EUTF8 for text that is not UTF-8; WSK_ESTATE when the connection is not
 * open or a close frame was already sent (by wsk_conn_close() or in answer
 * to the peer's); -ENOMEM; WSK_EDEFLATE when compression failed; WSK_ECLOSED
 * when writing a large message straight to the socket failed: the
 * connection has then ended and its on_close ran inside this call. */
WSK_API int wsk_conn_send(struct wsk_conn *conn, enum wsk_opcode opcode, const void *data,
                          size_t len);

/* Queues a ping with data (at most 125 bytes, copied); its pong arrives
 * through on_pong. Returns 0; WSK_ETOOBIG over 125 bytes; WSK_ESTATE as for
 * wsk_conn_send(); or -ENOMEM. Pings are not held to max_send_queue, so it
 * never returns WSK_EBACKPRESSURE. */
WSK_API int wsk_conn_ping(struct wsk_conn *conn, const void *data, size_t len);

/* Starts the close handshake with code (0: no code) and reason (UTF-8, at
 * most 123 bytes, may be NULL; copied). on_close follows. Safe to call
 * repeatedly and from any callback: once a close frame is queued or the
 * connection has ended, it does nothing more.
 *
 * Returns 0, or WSK_EPROTO, and nothing else happens, for a code that is
 * neither 0 nor valid (wsk_close_code_is_valid()). A longer reason is cut to
 * 123 bytes, and a reason that is not UTF-8 (also after the cut) is left
 * out, and so is any reason with code 0 (a reason needs a code, RFC 6455
 * 5.5.1). A connection that is not open
 * yet (a client still connecting, a server connection before its upgrade)
 * ends at once with WSK_ECLOSED, and a client's on_close runs inside this
 * call; so does on_close when the close frame cannot be queued (-ENOMEM).
 * Both still return 0. */
WSK_API int wsk_conn_close(struct wsk_conn *conn, unsigned code, const char *reason);

/* Bytes waiting in the send queue (frames, or HTTP bytes before an
 * upgrade); 0 once the connection has ended. */
WSK_API size_t wsk_conn_send_queue(const struct wsk_conn *conn);

/* Stops (true) or resumes (false) reading from the peer, for a bridge whose
 * other side cannot take more now: TCP then pushes back on the peer.
 * Messages already read may still arrive after pausing from inside
 * on_message. While paused, pongs are not read either: a pause longer than
 * the ping interval ends the connection by the keepalive (1011). Separate
 * from the library's own pause when the send queue is full; reading resumes
 * when neither holds. Cannot fail; does nothing once the connection has
 * ended. */
WSK_API void wsk_conn_pause(struct wsk_conn *conn, bool paused);

/* A pointer for the user, NULL until set. The library never uses what it
 * points to; free it in on_close at the latest. */
WSK_API void wsk_conn_set_data(struct wsk_conn *conn, void *data);
WSK_API void *wsk_conn_get_data(const struct wsk_conn *conn);

/* The peer's address as "127.0.0.1:5000" or "[::1]:5000", in a per-thread
 * buffer that the next call on the same thread overwrites; "(peer gone)"
 * when there is no connected socket (a client still resolving, a connection
 * that has ended). Works inside on_close. Never NULL. */
WSK_API const char *wsk_conn_peer(const struct wsk_conn *conn);

#ifdef __cplusplus
}
#endif

#endif
