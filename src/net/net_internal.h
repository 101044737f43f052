/* Private to src/net: the raw TCP connection and its context, shared by
 * tcp.c (connections and servers) and tcp_client.c (clients). */
#ifndef WSK_NET_INTERNAL_H
#define WSK_NET_INTERNAL_H

#include <netdb.h>

#include "transport/stream.h"
#include "wsk/net.h"

struct wsk__resolve;
struct wsk__tls_ctx;

enum wsk__tcp_state {
    WSK__TCP_CONNECTING, /* client: resolving or connecting */
    WSK__TCP_HANDSHAKE,  /* client: the TLS handshake */
    WSK__TCP_OPEN,
    WSK__TCP_CLOSING, /* wsk_tcp_close(): writing what is queued */
    WSK__TCP_LINGER,  /* written and shut down for writing: waiting for EOF */
    WSK__TCP_DEAD,
};

enum {
    WSK__TCP_OPENED = 1u << 0,      /* on_open was called */
    WSK__TCP_PAUSED = 1u << 1,      /* wsk_tcp_pause() */
    WSK__TCP_PEER_EOF = 1u << 2,    /* the peer shut down its side */
    WSK__TCP_WANT_DRAIN = 1u << 3,  /* a send returned WSK_EBACKPRESSURE */
    WSK__TCP_FLUSH_LIST = 1u << 4,  /* on the context's flush list */
    WSK__TCP_FAIL_SOON = 1u << 5,   /* end with error on the flush round */
    WSK__TCP_IN_CONNECT = 1u << 6,  /* inside wsk_tcp_connect(): report failures later */
    WSK__TCP_IN_READ = 1u << 7,     /* in on_data */
    WSK__TCP_SHUT_WR = 1u << 8,     /* wsk_tcp_shutdown(): FIN once the queue is written */
    WSK__TCP_WR_DONE = 1u << 9,     /* ... and sent: reading until the peer's EOF */
    WSK__TCP_READ_AGAIN = 1u << 10, /* TLS holds decrypted bytes: read on the flush round */
};

struct wsk__tcp_ctx;

struct wsk_tcp {
    struct wsk__stream st;
    struct wsk__tcp_ctx *ctx;
    void *user_data;
    struct wsk_tcp *prev, *next; /* the context's connections; next: dead list once dead */
    struct wsk_tcp *flush_next;
    uint64_t deadline; /* loop ms of the next timeout, 0: none */
    /* Client, while connecting. */
    struct wsk__resolve *job;
    struct addrinfo *addrs, *next_addr;
    int last_error;
    int error; /* for a failure reported on the flush round */
    uint16_t flags;
    uint8_t state;
};

/* A walk over the connections that survives any of them ending under it
 * (see src/ws/ws_internal.h, struct wsk__walk). */
struct wsk__tcp_walk {
    struct wsk_tcp *next;
    struct wsk__tcp_walk *up;
};

struct wsk__tcp_ctx {
    struct wsk_loop *loop;
    struct wsk_tcp_config cfg;
    struct wsk__seg_pool pool;
    uint8_t *rbuf; /* the loop's */
    size_t rbuf_cap;
    struct wsk_tcp *conns;
    size_t count;
    struct wsk__tcp_walk *walks;
    struct wsk_tcp *flush_list;
    struct wsk_defer flush_defer;
    struct wsk_tcp *dead;
    struct wsk_defer reap_defer;
    struct wsk_timer sweep;
    uint64_t trimmed_ms; /* when the sweep last let quiet TLS connections trim */
    unsigned cb_depth;
    bool in_teardown;
    bool is_client;
    void (*on_empty)(struct wsk__tcp_ctx *ctx); /* client: free the context */
    /* Client with TLS: the context, and the name the certificate must be
     * valid for. cfg.ca_file and cfg.server_name are not kept. */
    struct wsk__tls_ctx *tls_ctx;
    char *server_name;
};

int wsk__tcp_ctx_init(struct wsk__tcp_ctx *ctx, struct wsk_loop *loop,
                      const struct wsk_tcp_config *cfg);
void wsk__tcp_ctx_destroy(struct wsk__tcp_ctx *ctx);
int wsk__tcp_new(struct wsk_tcp **out, struct wsk__tcp_ctx *ctx, int fd, uint8_t state);
void wsk__tcp_walk_begin(struct wsk__tcp_ctx *ctx, struct wsk__tcp_walk *w);
struct wsk_tcp *wsk__tcp_walk_next(struct wsk__tcp_walk *w);
void wsk__tcp_walk_end(struct wsk__tcp_ctx *ctx, struct wsk__tcp_walk *w);

/* Ends t: on_close once (when it is reported), the socket closed, the
 * memory freed at the end of the iteration. */
void wsk__tcp_dead(struct wsk_tcp *t, int error);
/* Puts t on the flush round of this iteration. */
void wsk__tcp_want_flush(struct wsk_tcp *t);
/* Reads on the flush round (bytes TLS decrypted show no readiness). */
void wsk__tcp_read_again(struct wsk_tcp *t);
/* Watches what t needs now; ends t when the loop refuses. */
void wsk__tcp_set_events(struct wsk_tcp *t);
/* Pushes an open connection's idle deadline ahead. */
void wsk__tcp_touch(struct wsk_tcp *t);
void wsk__tcp_log(struct wsk__tcp_ctx *ctx, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* tcp_client.c: readiness of a client still connecting or in its TLS
 * handshake. */
void wsk__tcp_client_io(struct wsk_tcp *t);

#endif
