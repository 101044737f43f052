/* wsk serve: what serve.c (options, the WebSocket side, running) and
 * serve_raw.c (raw TCP and UDP listeners and the room they share) share. */
#ifndef WSK_CLI_SERVE_H
#define WSK_CLI_SERVE_H

#include <sys/socket.h>

#include "cli.h"
#include "wsk.h"

#define SERVE_MAX_LISTENS 8

enum serve_mode {
    SERVE_BROADCAST,
    SERVE_ECHO,
    SERVE_EXEC,  /* --exec: a program per connection */
    SERVE_PROXY, /* --proxy: a TCP connection per connection */
};

enum serve_kind {
    LISTEN_WS,
    LISTEN_TCP,
    LISTEN_UDP,
};

struct serve_listen {
    enum serve_kind kind;
    struct cli_listen_addr addr;
    uint16_t port; /* bound */
};

struct serve_options {
    struct serve_listen listens[SERVE_MAX_LISTENS];
    size_t num_listens;
    enum serve_mode mode;
    const char *static_dir;
    bool is_list_dirs; /* --list-dirs */
    const char *path;
    enum wsk_backend backend;
    uint64_t max_message;
    uint64_t max_queue;
    uint64_t max_connections;
    uint32_t ping_interval_ms; /* UINT32_MAX: no pings */
    uint32_t handshake_timeout_ms;
    uint32_t idle_timeout_ms;     /* TCP; 0: none */
    uint32_t udp_peer_timeout_ms; /* UDP broadcast: peers seen this recently */
    struct cli_strv origins;
    struct cli_strv subprotocols;
    const char *tls_cert;
    const char *tls_key;
    bool has_deflate;
    bool is_deflate_shared; /* --deflate-shared */
    bool reuse_port;
    uint8_t deflate_window; /* 0: not given */
    int verbosity;
    /* --exec */
    char *exec_command; /* argv's, mutable as execve() wants */
    uint64_t max_procs;
    uint32_t exec_grace_ms;
    bool is_binary;
    /* --proxy */
    const char *proxy_url;
    /* broadcast: POST /publish/ROOM needs "Authorization: Bearer" this */
    const char *publish_token;
    const char *auth_token; /* upgrades need it (Bearer or ?token=) */
    uint32_t rate_limit;    /* messages a second per connection; 0: none */
    const char *redis_url;  /* --redis: rooms across processes */
    uint64_t redis_max_queue;
    unsigned threads;               /* --threads: loops (and threads) in the process, >= 1 */
    struct cli_listen_addr metrics; /* --metrics: host NULL when not given */
    bool is_log_json;               /* --log-format json */
};

/* A token bucket: --rate-limit per connection. */
struct serve_rate {
    double tokens;
    uint64_t last_ms; /* 0: not started */
};

struct exec_child;
struct serve_redis;
struct serve_group;
struct serve_inbox;
struct serve_snapshot;

struct udp_listener {
    struct wsk_udp *sock;
    struct serve *s;
};

struct udp_peer {
    struct sockaddr_storage addr;
    socklen_t len;
    struct udp_listener *listener; /* the socket it was heard on */
    uint64_t seen;                 /* loop ms */
};

struct serve {
    struct serve_options opt;
    struct wsk_loop *loop;
    struct wsk_server *srv;         /* WebSocket listeners, if any */
    struct wsk_tcp_server *tcp_srv; /* raw TCP listeners, if any */
    struct udp_listener udp[SERVE_MAX_LISTENS];
    size_t num_udp;
    struct udp_peer *peers; /* UDP peers seen, for broadcast */
    size_t num_peers, peers_cap;
    struct cli_buf scratch;      /* a message as a TCP line */
    struct cli_buf page;         /* the chat page, when --path changes it */
    struct exec_child *children; /* --exec: until reaped */
    char *proxy_host;            /* --proxy */
    uint16_t proxy_port;
    size_t num_procs;
    bool is_shutting_down;
    uint64_t auth_refused; /* upgrades refused for want of the --auth-token */
    uint64_t rate_closed;  /* connections closed over the --rate-limit */
    struct serve_redis *redis;
    uint64_t redis_unsent; /* messages that did not reach other processes */
    /* --threads (serve_threads.c): the process's other instances, and what
     * they hand this one. NULL with one thread. */
    struct serve_group *group;
    struct serve_inbox *inbox;
    unsigned index;         /* 0: the main thread's, which handles signals */
    uint64_t thread_behind; /* messages not handed to another thread (its inbox full) */
    /* --metrics (serve_metrics.c): the listener (main instance), and the
     * figures a thread copies out every second for it. */
    struct wsk_server *metrics_srv;
    uint16_t metrics_port;
    struct serve_snapshot *snapshot;
    /* While the server is created or its certificate reloaded, the library's
     * errors are kept here, not printed, so that the failure is reported as
     * one line. */
    bool is_capturing_log;
    char log_error[512];
};

/* Creates s's loop, server, listeners and Redis link (serve.c). Returns 0
 * or an exit status after saying why. */
int serve_start(struct serve *s);
/* Sets the signal handlers (on the main instance) and says where it listens. */
int serve_set_signals(struct serve *s);
void serve_print_banner(const struct serve *s);
/* SIGTERM's work on one instance; SIGHUP's. */
void serve_shutdown(struct serve *s);
void serve_reload(struct serve *s, bool is_quiet);
/* Frees what serve_start() made, the options excepted. */
void serve_free_instance(struct serve *s);

/* A message published in room here (already delivered to this instance's
 * clients): to the other threads' clients and the other processes'. */
void serve_room_others(struct serve *s, const char *room, size_t room_len, enum wsk_opcode opcode,
                       const void *data, size_t len);
/* A message from another thread or process: to this instance's clients of
 * room (the lobby's TCP and UDP peers too). */
void serve_room_deliver(struct serve *s, const char *room, size_t room_len, enum wsk_opcode opcode,
                        const void *data, size_t len);

/* --threads N (serve_threads.c): runs s and N - 1 copies of it, each on its
 * own loop and thread, all listening on the same ports (SO_REUSEPORT).
 * Returns an exit status. */
int serve_run_threads(struct serve *s);
/* The main instance's signals, passed to the others. */
void serve_threads_shutdown(struct serve *s);
void serve_threads_reload(struct serve *s);
/* The node id every instance of this process gives Redis (8 bytes), or
 * NULL with one thread. */
const uint8_t *serve_threads_node(const struct serve *s);

/* The instances of the process (s alone without --threads): how many, and
 * the i-th. */
unsigned serve_threads_count(const struct serve *s);
struct serve *serve_threads_get(struct serve *s, unsigned i);

/* /healthz and --metrics (serve_metrics.c). serve_healthz() answers
 * GET /healthz (200 ok, or 503 once shutting down) and returns true, or
 * returns false for another path. */
bool serve_healthz(struct serve *s, struct wsk_conn *conn,
                   const struct wsk_http_request_event *req);
/* The --metrics listener on s's loop. Returns 0 or an exit status. */
int serve_metrics_start(struct serve *s);
/* A thread's snapshot of its figures every second, for the listener on the
 * main thread. Returns 0 or an exit status. */
int serve_metrics_snapshots(struct serve *s);
void serve_metrics_stop(struct serve *s);
void serve_metrics_shutdown(struct serve *s);
void serve_metrics_free(struct serve *s);

/* Options (serve_options.c). Returns 0 to run, -1 after --help, or an exit
 * status (> 0) for an error, after saying why. */
int serve_parse_options(struct serve_options *opt, int argc, char **argv);
bool serve_has_kind(const struct serve_options *opt, enum serve_kind kind);

/* " (not an address of this machine)" and the like for a listen error. */
const char *serve_listen_hint(int err, uint16_t port);

/* Starts the TCP and UDP listeners of opt. Returns 0, or CLI_EXIT_FAILURE
 * after saying why. */
int serve_raw_start(struct serve *s);
/* SIGTERM: stop listening, close TCP connections gracefully, close UDP. */
void serve_raw_shutdown(struct serve *s);
void serve_raw_free(struct serve *s);
/* A message for the lobby from its WebSocket side: to the TCP and UDP peers. */
void serve_room_from_ws(struct serve *s, const uint8_t *data, size_t len);

/* Echo the message. When the peer does not read its echoes, the send queue
 * passes its cap and the library stops reading from that peer until it
 * catches up (WSK_EBACKPRESSURE says so): TCP pushes back on the sender and
 * memory stays bounded, so there is nothing more to do here. Inline: it is
 * the whole of --echo's hot path. */
static inline void serve_echo(struct wsk_conn *conn, const struct wsk_message *msg)
{
    int rv = wsk_conn_send(conn, msg->opcode, msg->data, msg->len);
    if (rv < 0 && rv != WSK_EBACKPRESSURE && rv != WSK_ESTATE)
        cli_log(CLI_NORMAL, "%s: cannot echo: %s", wsk_conn_peer(conn), wsk_strerror(rv));
}

/* Broadcast and echo modes (serve_rooms.c): the WebSocket events, rooms,
 * and POST /publish/ROOM (the server's on_http_request in broadcast mode). */
void serve_ws_open(struct serve *s, struct wsk_conn *conn, const struct wsk_open_event *ev);
void serve_ws_message(struct serve *s, struct wsk_conn *conn, const struct wsk_message *msg);
void serve_ws_close(struct serve *s, struct wsk_conn *conn, const struct wsk_close_event *ev);
void serve_http_request(struct wsk_conn *conn, const struct wsk_http_request_event *req,
                        void *user_data);

/* Who may join and how much they may send (serve_guard.c). */
bool serve_same_secret(const char *a, size_t a_len, const char *b, size_t b_len);
/* "Authorization: Bearer TOKEN" among the headers. */
bool serve_has_bearer(const struct wsk_http_header *headers, size_t num_headers, const char *token);
/* The server's on_upgrade with --auth-token. */
int serve_upgrade(struct wsk_conn *conn, const struct wsk_upgrade_event *ev, void *user_data);
/* Takes one message from the bucket: false when it is empty. */
bool serve_rate_ok(struct serve_rate *r, uint64_t now_ms, uint32_t per_s);
/* One line of the counters that are not zero (at exit). */
void serve_print_counters(const struct serve *s);

/* --redis (serve_redis.c; without hiredis, --redis is refused). */
struct serve_redis_url {
    char *host;
    char *user;     /* NULL: none (AUTH PASSWORD) */
    char *password; /* NULL: no AUTH */
    uint16_t port;
    int db;
};
#ifdef WSK_HAVE_HIREDIS
/* Checks --redis after the other options. Returns 0 or a usage error's
 * exit status after saying why. */
int serve_redis_check(const struct serve_options *opt);
/* redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] into *out (freed with
 * serve_redis_url_reset()). Returns 0, -ENOMEM, or -EINVAL with *why set. */
int serve_redis_url_parse(const char *arg, struct serve_redis_url *out, const char **why);
void serve_redis_url_reset(struct serve_redis_url *u);
/* Connects to Redis (in the background: a Redis that is down is retried).
 * Returns 0 or an exit status after saying why. */
int serve_redis_start(struct serve *s);
/* A room gained or lost a local client: the first subscribes to its
 * channel, the last unsubscribes. join returns 0 or -ENOMEM. */
int serve_redis_join(struct serve *s, const char *room, size_t len);
void serve_redis_leave(struct serve *s, const char *room, size_t len);
/* A message published here to room, already delivered locally: to the
 * other processes. Counted in redis_unsent when it cannot go. */
void serve_redis_publish(struct serve *s, const char *room, size_t room_len, enum wsk_opcode opcode,
                         const void *data, size_t len);
/* SIGTERM: close the connections once what was sent is answered. */
void serve_redis_shutdown(struct serve *s);
void serve_redis_free(struct serve *s);
#else
static inline int serve_redis_check(const struct serve_options *opt)
{
    return opt->redis_url ? cli_usage_error("--redis: this wsk was built without hiredis "
                                            "(libhiredis-dev); rebuild with it to use Redis")
                          : 0;
}
static inline int serve_redis_start(struct serve *s)
{
    (void)s;
    return 0;
}
static inline int serve_redis_join(struct serve *s, const char *room, size_t len)
{
    (void)s, (void)room, (void)len;
    return 0;
}
static inline void serve_redis_leave(struct serve *s, const char *room, size_t len)
{
    (void)s, (void)room, (void)len;
}
static inline void serve_redis_publish(struct serve *s, const char *room, size_t room_len,
                                       enum wsk_opcode opcode, const void *data, size_t len)
{
    (void)s, (void)room, (void)room_len, (void)opcode, (void)data, (void)len;
}
static inline void serve_redis_shutdown(struct serve *s)
{
    (void)s;
}
static inline void serve_redis_free(struct serve *s)
{
    (void)s;
}
#endif

/* --exec (serve_exec.c): the program per connection. */
int serve_exec_start(struct serve *s);
void serve_exec_open(struct serve *s, struct wsk_conn *conn, const struct wsk_open_event *ev);
void serve_exec_message(struct serve *s, struct wsk_conn *conn, const struct wsk_message *msg);
void serve_exec_drain(struct serve *s, struct wsk_conn *conn);
void serve_exec_close(struct serve *s, struct wsk_conn *conn);
/* A second SIGTERM: no waiting, and no orphans either. */
void serve_exec_kill_all(struct serve *s);
void serve_exec_free(struct serve *s);

/* --proxy (serve_proxy.c): a backend TCP connection per connection. */
int serve_proxy_check(struct serve_options *opt, char **host, uint16_t *port);
void serve_proxy_open(struct serve *s, struct wsk_conn *conn);
void serve_proxy_message(struct serve *s, struct wsk_conn *conn, const struct wsk_message *msg);
void serve_proxy_drain(struct serve *s, struct wsk_conn *conn);
void serve_proxy_close(struct serve *s, struct wsk_conn *conn);
/* --proxy with tcp:// listeners: a plain TCP relay. */
void serve_proxy_tcp_open(struct serve *s, struct wsk_tcp *front);
void serve_proxy_tcp_data(struct wsk_tcp *front, const uint8_t *data, size_t len);
void serve_proxy_tcp_drain(struct wsk_tcp *front);
void serve_proxy_tcp_eof(struct wsk_tcp *front);
void serve_proxy_tcp_close(struct wsk_tcp *front);

#endif
