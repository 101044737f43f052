/* Private to src/ws: the server object, shared by server.c (listeners, HTTP,
 * the upgrade, shutdown), broadcast.c (one message encoded once for many
 * receivers) and topic.c (subscriptions and publishing).
 */
#ifndef WSK_SERVER_INTERNAL_H
#define WSK_SERVER_INTERNAL_H

#include "transport/listen.h"
#include "ws/static.h"
#include "ws/ws_internal.h"
#include "wsk/topic.h"

struct wsk__topic;
struct wsk__sub;
struct wsk__inbox;

/* A chained hash table of nodes that embed a struct wsk__hnode first. */
struct wsk__hnode {
    struct wsk__hnode *next;
};

struct wsk__htab {
    struct wsk__hnode **buckets;
    size_t mask; /* buckets - 1; buckets is a power of two */
    size_t n;
};

struct wsk__topics {
    struct wsk__htab topics;  /* struct wsk__topic, by name */
    struct wsk__htab subs;    /* struct wsk__sub, by (topic, connection) */
    uint64_t key[2];          /* SipHash key for topic names, random per server */
    struct wsk__inbox *inbox; /* wsk_server_publish_async(): messages from other threads */
};

/* Per-connection state of a plain HTTP exchange (server_http.c). */
struct wsk__http {
    struct wsk_http_parser parser;
    int file_fd;
    uint64_t file_left;
    size_t body_need;   /* head and body bytes awaited in c->in; 0: none */
    bool is_in_app;     /* on_http_request is running: it may reply */
    bool is_head;       /* the request being answered is HEAD */
    bool is_keep_alive; /* and the connection may serve another */
    /* The request being answered, for on_access: slices into c->in, set
     * while it is handled, empty otherwise. */
    struct wsk_slice req_method, req_path;
};

/* A topic named in on_upgrade, joined when the connection opens. */
struct wsk__pending_topic {
    struct wsk__pending_topic *next;
    size_t len;
    uint8_t name[];
};

/* The upgrade on_upgrade is deciding (server.c). */
struct wsk__upgrade {
    struct wsk_conn *conn;
    const struct wsk_http_request *req;
    struct wsk__pending_topic *topics, **topics_tail;
    bool has_subprotocol;
    char subprotocol[128]; /* "" with has_subprotocol: none */
    char refusal[96];      /* wsk_conn_set_refusal(); "" when not given */
};

struct wsk_server {
    struct wsk__ctx ctx;
    struct wsk_server_config cfg; /* strings below are the server's copies */
    char **subprotocols;
    char **origins;
    char *ws_path;
    char *tls_cert, *tls_key;
    struct wsk__static_root root;
    bool has_root;
    struct wsk__listeners listeners;
    bool free_pending; /* freed from a callback: memory goes at the iteration's end */
    struct wsk_defer free_defer;
    struct wsk_deflate *bz[16]; /* broadcast compressors, by window bits */
    size_t bz_used;             /* bytes compressed for broadcasts this iteration */
    struct wsk_defer bz_defer;  /* resets bz_used at the end of the iteration */
    bool is_shutting_down;
    unsigned shutdown_code;
    char *shutdown_reason;
    uint64_t slow_closed, slow_dropped; /* the overflow policy at work */
    uint64_t async_failed;              /* handed-over messages lost on the loop (-ENOMEM) */
    struct wsk__upgrade *upgrading;     /* on_upgrade is running for it */
    struct wsk__topics topics;
};

/* One message on its way to many receivers (a broadcast, a publish):
 * encoded once, compressed at most once per receiver window size. */
struct wsk__fanout {
    struct wsk_server *srv;
    const void *data;
    size_t len;
    uint8_t opcode;
    uint16_t ztried; /* window sizes tried, by bit */
    struct wsk__shared *plain;
    struct wsk__shared *z[16]; /* compressed, by window bits; NULL: none or failed */
};

/* -EINVAL for an opcode other than text and binary, WSK_EUTF8 for text that
 * is not UTF-8, else 0. */
int wsk__fanout_check(enum wsk_opcode opcode, const void *data, size_t len);
/* Encodes the message (checked already). Returns 0 or -ENOMEM. data is
 * borrowed until wsk__fanout_end(). */
int wsk__fanout_begin(struct wsk__fanout *f, struct wsk_server *srv, enum wsk_opcode opcode,
                      const void *data, size_t len);
/* Queues the message to c under the overflow policy. Returns 1 when queued,
 * 0 when not (not open, closing, dropped, closed as slow, or ended). May call
 * user callbacks (on_close). */
int wsk__fanout_to(struct wsk__fanout *f, struct wsk_conn *c);
void wsk__fanout_end(struct wsk__fanout *f);

/* server_http.c: plain HTTP requests (not upgrades). */
/* A complete head (head_len bytes at c->in) that is not an upgrade: the
 * application's handler, static files, the index page, or an error. */
void wsk__server_http(struct wsk_server *srv, struct wsk_conn *c,
                      const struct wsk_http_request *req, size_t head_len);
/* reason: why, for the access log (a static phrase), or NULL. */
void wsk__server_reply_error(struct wsk_conn *c, int status, bool is_head, bool keep_alive,
                             const char *extra, const char *reason);
/* Frees c->http and what it holds. */
void wsk__http_done(struct wsk_conn *c);

/* broadcast.c: the compressors' lifetime. */
void wsk__broadcast_init(struct wsk_server *srv);
void wsk__broadcast_free(struct wsk_server *srv);

/* topic.c */
/* SipHash-2-4 of data under key (k0, k1: the key's bytes 0-7 and 8-15 read
 * little-endian), as in Aumasson and Bernstein's reference. */
uint64_t wsk__siphash(const uint64_t key[2], const void *data, size_t len);
/* Returns 0 or -ENOMEM (the inbox for other threads' messages). */
int wsk__topics_init(struct wsk_server *srv);
/* Every subscription must be gone (the connections ended) first. */
void wsk__topics_free(struct wsk_server *srv);
/* An open connection ended: its subscriptions go. */
void wsk__topics_conn_gone(struct wsk_conn *c);
/* Subscribes c (upgraded: WSK__F_UPGRADED) without the public checks.
 * Returns 1, 0 (already), or -ENOMEM. */
int wsk__topics_join(struct wsk_server *srv, struct wsk_conn *c, const void *topic,
                     size_t topic_len);

/* on_access, if set, for an answer to c's request (method and path empty
 * when unknown; reason NULL when there is nothing to say); also counts an
 * error status for wsk_server_get_stats(). */
void wsk__server_access(struct wsk_conn *c, struct wsk_slice method, struct wsk_slice path,
                        int status, uint64_t bytes, const char *reason);

#endif
