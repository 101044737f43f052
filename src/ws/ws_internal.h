/* Private to src/ws: the connection object and the context it shares with
 * the other connections of one server or of one client loop.
 *
 * Memory per idle connection is the struct below and nothing else: input is
 * read into the context's receive buffer, and only what cannot be handed out
 * at once (a head that is not complete, a message split across reads, bytes
 * the socket refused) is kept per connection, on the heap, and released when
 * it is no longer needed.
 */
#ifndef WSK_WS_INTERNAL_H
#define WSK_WS_INTERNAL_H

#include <sys/uio.h>

#include "transport/stream.h"
#include "wsk/session.h"
#include "wsk/ws.h"

struct wsk__http;
struct wsk__sub;
struct wsk__client_hs;
struct wsk__tls;
struct wsk__tls_ctx;

enum wsk__state {
    WSK__CONNECTING, /* client: DNS or TCP connect under way */
    WSK__HANDSHAKE,  /* client: request sent, reading the response head */
    WSK__HTTP,       /* server: reading a request head */
    WSK__HTTP_REPLY, /* server: sending a plain HTTP response */
    WSK__OPEN,       /* WebSocket open (also after sending or receiving close) */
    WSK__LINGER,     /* all sent and shut down for writing: waiting for EOF */
    WSK__DEAD,       /* closed; freed once no callback is running on it */
};

enum {
    WSK__F_SENT_CLOSE = 1u << 0, /* a close frame is queued */
    WSK__F_GOT_CLOSE = 1u << 1,  /* the peer's close frame arrived */
    WSK__F_FAILED = 1u << 2,     /* protocol error or abort: no clean close */
    WSK__F_IN_READ = 1u << 3,    /* handling this connection's own input */
    WSK__F_PAUSED = 1u << 4,     /* reading stopped: our own queue is full */
    WSK__F_FLUSH_LIST = 1u << 5, /* on the context's list of queues to flush */
    WSK__F_PING_SENT = 1u << 6,  /* keepalive ping sent, pong awaited */
    WSK__F_CLIENT = 1u << 7,
    WSK__F_WANT_DRAIN = 1u << 8,         /* a send returned WSK_EBACKPRESSURE */
    WSK__F_OPENED = 1u << 9,             /* on_open was called */
    WSK__F_FAIL_SOON = 1u << 10,         /* end with c->error on this iteration's flush round */
    WSK__F_HTTP_CLOSE = 1u << 11,        /* close after the HTTP response */
    WSK__F_READ_AGAIN = 1u << 16,        /* TLS holds decrypted bytes: read without readiness */
    WSK__F_DETAIL = 1u << 17,            /* c->in holds a NUL-terminated detail for on_close */
    WSK__F_PEER_CLOSED_FIRST = 1u << 18, /* the peer started the close handshake */
    WSK__F_SESS_BLOCKED = 1u << 19,      /* the session holds pongs until the queue drains */
    WSK__F_Z_RESET = 1u << 20,           /* our compressor must forget its history (a shared
                                            broadcast frame went to the peer in between) */
    WSK__F_USER_PAUSED = 1u << 21,       /* wsk_conn_pause(): the user stopped reading */
    WSK__F_UPGRADED = 1u << 22,          /* server: c->http is gone, c->subs in its place */
};

/* Either pause stops reading. */
#define WSK__F_NO_READ (WSK__F_PAUSED | WSK__F_USER_PAUSED)

struct wsk__ctx;

struct wsk_conn {
    struct wsk__stream st; /* the socket, TLS and the send queue */
    struct wsk__ctx *ctx;
    void *user_data;
    struct wsk_conn *prev, *next; /* the context's list of connections */
    struct wsk_conn *flush_next;  /* the context's list of queues to flush */
    struct wsk_session sess;      /* the WebSocket protocol once open */
    uint8_t *in;                  /* unfinished head, or the peer's close reason */
    uint32_t in_len, in_cap;
    uint64_t deadline; /* loop time (ms) of the next timeout check, 0: none */
    union {
        struct wsk__http *http;    /* server: the HTTP exchange before an upgrade */
        struct wsk__sub *subs;     /* server, once upgraded (WSK__F_UPGRADED): its topics */
        struct wsk__client_hs *hs; /* client: connecting and the handshake */
    };
    uint32_t flags;
    uint16_t close_code; /* the peer's close code (1005 none, 1006 no frame) */
    uint8_t state;
    uint16_t http_status; /* client: status of a refused handshake */
    int error;            /* why it ended, for on_close */
    uint32_t ping_nonce;  /* payload of our keepalive ping: only its pong counts */
};

/* A walk over a context's connections that survives any of them ending
 * under it (a callback made during the walk may end the next one: a dead
 * connection's next pointer then leads into the dead list). Walks nest;
 * each is on the context's list while it runs, and unlinking a connection
 * moves past it every walk about to visit it. */
struct wsk__walk {
    struct wsk_conn *next;
    struct wsk__walk *up;
};

/* What wsk_server_get_stats() reports beyond the topics' counters. */
#define WSK__REFUSED_KINDS 12
struct wsk__counters {
    uint64_t accepted;            /* connections accepted (server) */
    uint64_t opened;              /* WebSocket connections opened */
    uint64_t msgs_in, msgs_out;   /* data messages */
    uint64_t bytes_in, bytes_out; /* on the sockets: HTTP, frames, TLS records */
    uint64_t handshake_timeouts;
    uint64_t tls_failures;
    uint64_t refused[WSK__REFUSED_KINDS]; /* HTTP errors answered, by wsk_stats_refused_code() */
};

struct wsk__ctx {
    struct wsk_loop *loop;
    struct wsk_handlers h;
    void *user_data;
    wsk_log_cb log;
    void *log_data;
    struct wsk_conn_limits lim;
    struct wsk_server *server; /* NULL for clients */
    uint8_t *rbuf;             /* receive buffer shared by every connection */
    size_t rbuf_cap;
    struct wsk_conn *conns;
    struct wsk__walk *walks; /* walks over conns under way, innermost first */
    size_t num_conns;        /* all connections */
    size_t num_open;         /* WebSocket open ones */
    struct wsk_conn *flush_list;
    struct wsk_conn *flush_rest;  /* what the last flush round left for the next */
    struct wsk_timer flush_timer; /* makes flush_rest due in the next iteration */
    bool flush_rest_due;
    struct wsk_defer flush_defer;
    struct wsk_conn *dead_list;
    struct wsk_defer reap_defer;
    struct wsk_timer sweep;
    uint64_t trimmed_ms; /* when the sweep last let quiet TLS connections trim */
    uint32_t sweep_ms;
    struct wsk__tls_ctx *tls_ctx; /* server: for new connections; client: its own */
    const uint8_t *valid_text;    /* the text message on_message is handling: known UTF-8 */
    size_t valid_text_len;
    size_t deflate_min; /* messages shorter than this are not compressed */
    uint8_t *zbuf;      /* compressed output being built, shared */
    uint8_t *mbuf;      /* clients: a large frame being masked for a direct write */
    size_t zbuf_len, zbuf_cap;
    struct wsk__seg_pool pool; /* spare send segments */
    bool is_shutting_down;
    bool in_teardown;
    /* User callbacks running now: an owner freed from inside one (a server
     * from on_message, say) ends its connections at once but keeps its
     * memory until the end of the iteration, since the code that called the
     * callback still holds pointers into it. */
    unsigned cb_depth;
    struct wsk__counters cnt;
};

/* Calls a user callback, counting it in ctx->cb_depth. */
#define WSK__CALL(ctx, fn, ...)                                                                    \
    do {                                                                                           \
        struct wsk__ctx *wsk_ctx_ = (ctx);                                                         \
        wsk_ctx_->cb_depth++;                                                                      \
        wsk_ctx_->h.fn(__VA_ARGS__);                                                               \
        wsk_ctx_->cb_depth--;                                                                      \
    } while (0)

/* The context. */
int wsk__ctx_init(struct wsk__ctx *ctx, struct wsk_loop *loop, const struct wsk_handlers *h,
                  void *user_data, wsk_log_cb log, const struct wsk_conn_limits *lim);
/* Closes every connection at once (no handshake, on_close still called) and
 * frees what the context holds. */
void wsk__ctx_destroy(struct wsk__ctx *ctx);
void wsk__log(struct wsk__ctx *ctx, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Walks: wsk__walk_begin(ctx, &w); while ((c = wsk__walk_next(&w))) ...;
 * wsk__walk_end(ctx, &w). Every begin needs its end. */
void wsk__walk_begin(struct wsk__ctx *ctx, struct wsk__walk *w);
struct wsk_conn *wsk__walk_next(struct wsk__walk *w);
void wsk__walk_end(struct wsk__ctx *ctx, struct wsk__walk *w);

/* Connections. */
/* Returns 0 and *out, -ENOMEM, or the loop's error for watching fd
 * (WSK_EFDSETSIZE with the select backend). */
int wsk__conn_new(struct wsk_conn **out, struct wsk__ctx *ctx, int fd, uint8_t state);
/* Switches to WebSocket framing; leftover bytes after the head are fed. */
void wsk__conn_open(struct wsk_conn *conn, const struct wsk_open_event *ev, const uint8_t *rest,
                    size_t rest_len);
/* Queues raw bytes (an HTTP head, a body). Returns 0 or -ENOMEM. */
int wsk__conn_queue(struct wsk_conn *conn, const void *data, size_t len);
/* Queues a reference to a shared frame. */
int wsk__conn_queue_shared(struct wsk_conn *conn, struct wsk__shared *sh);
/* Arranges for the queue to be written at the end of this loop iteration. */
void wsk__conn_want_flush(struct wsk_conn *conn);
/* Writes what the socket takes now instead of at the end of the iteration. */
void wsk__conn_flush_now(struct wsk_conn *conn);
/* Starts TLS on a connected socket (server side, or client after connect).
 * server_name: client only. Returns 0 or a negative error. */
int wsk__conn_start_tls(struct wsk_conn *conn, bool is_server, const char *server_name);
/* Keeps a human-readable detail of the error for on_close. */
void wsk__conn_set_detail(struct wsk_conn *conn, const char *detail);
/* Queues a message, compressed when the connection has deflate and it is
 * long enough. */
int wsk__conn_send_message(struct wsk_conn *conn, uint8_t opcode, const uint8_t *data, size_t len);
/* Ends the connection at once: no close frame, on_close with error. */
void wsk__conn_abort(struct wsk_conn *conn, int error);
/* After the last queued byte: shut down writing and wait briefly for EOF. */
void wsk__conn_finish(struct wsk_conn *conn);
/* Makes the heap buffer *buf (capacity *cap) hold at least need bytes,
 * doubling from first. Returns 0, or -ENOMEM with *buf and *cap unchanged. */
int wsk__grow(uint8_t **buf, size_t *cap, size_t need, size_t first);
/* Appends bytes to conn->in (grows it). Returns 0 or -ENOMEM. */
int wsk__conn_in_append(struct wsk_conn *conn, const uint8_t *data, size_t len);
void wsk__conn_in_drop(struct wsk_conn *conn, size_t n);

/* Between conn.c (lifecycle, readiness), conn_send.c (the send queue and
 * the socket) and conn_recv.c (frames in). */
/* Watches the socket for what the connection needs now. */
void wsk__conn_set_events(struct wsk_conn *conn);
/* Ends the connection: on_close once, the socket closed, memory freed at the
 * end of the iteration. */
void wsk__conn_dead(struct wsk_conn *conn);
/* A read or write failed: a normal end after the peer's close frame, else
 * an abort with error (and TLS's reason for on_close). */
void wsk__conn_io_error(struct wsk_conn *conn, int error);
/* Keeps OpenSSL's reason for a TLS failure for on_close. */
void wsk__conn_tls_detail(struct wsk_conn *conn);
/* Writes as much of the queue as the socket takes, then watches for the rest. */
void wsk__conn_flush(struct wsk_conn *conn);
/* Queues one frame (masked for clients). Returns 0, -ENOMEM or WSK_ECLOSED
 * (the connection ended on a direct write). */
int wsk__conn_queue_frame(struct wsk_conn *conn, uint8_t first_byte, const uint8_t *payload,
                          size_t len);
/* Queues a close frame and marks it sent. Returns 0 or the error of encoding
 * or queueing it. */
int wsk__conn_send_close(struct wsk_conn *conn, unsigned code, const char *reason,
                         size_t reason_len);
/* How a connection's session reports to it and writes to the queue. */
extern const struct wsk_session_handlers wsk__conn_session;
/* Feeds input received while open to the session. */
void wsk__conn_feed_frames(struct wsk_conn *conn, uint8_t *data, size_t len);
/* The queue drained below half the cap: the session may send its held pong. */
void wsk__conn_session_drained(struct wsk_conn *conn);

/* Hooks implemented by server.c and client.c. */
/* Server: bytes of a request head arrived (state WSK__HTTP). */
void wsk__server_on_head(struct wsk_conn *conn, const uint8_t *data, size_t len);
/* Server: the HTTP response queue drained (state WSK__HTTP_REPLY). */
void wsk__server_on_reply_drained(struct wsk_conn *conn);
void wsk__server_conn_gone(struct wsk_conn *conn);
/* Client: connect finished or response head bytes arrived. */
void wsk__client_on_writable(struct wsk_conn *conn);
/* Client: the TLS handshake completed. */
void wsk__client_on_tls_done(struct wsk_conn *conn);
void wsk__client_on_head(struct wsk_conn *conn, const uint8_t *data, size_t len);
/* The peer closed: a client still talking to its proxy fails with
 * WSK_EPROXY (returns true), else returns false. */
bool wsk__client_proxy_eof(struct wsk_conn *conn);
void wsk__client_conn_gone(struct wsk_conn *conn);
/* Client: the context is empty and may be freed (called from its reap). */
void wsk__client_ctx_empty(struct wsk__ctx *ctx);

/* A wsk_deflate_sink_cb that appends to ctx->zbuf (arg is the context).
 * Returns 0 or -ENOMEM. */
int wsk__zbuf_sink(void *arg, const uint8_t *data, size_t len);

/* Shared frames for broadcasts. */
struct wsk__shared *wsk__shared_frame(uint8_t first_byte, const void *payload, size_t len);

#endif
