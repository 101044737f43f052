/* wsk serve --proxy tcp://HOST:PORT (websockify's job, the bridge noVNC
 * uses): each WebSocket connection opens a TCP connection to the backend,
 * and bytes are copied both ways, as binary messages toward the client
 * (text or binary messages from the client are passed on as bytes).
 *
 * Back-pressure both ways, so that neither a slow browser nor a slow
 * backend makes the server buffer without bound: when the WebSocket send
 * queue passes --max-queue the backend is not read until it drains, and
 * when the backend's send queue does, the client is not read. Until the
 * backend connection is up the client is not read either.
 *
 * Ends: the backend's EOF closes the WebSocket with 1000 once everything is
 * sent (1011 if the backend failed or could not be reached, with the
 * reason); the client's close closes the backend connection once what was
 * queued for it is written. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"

struct proxy_link {
    struct serve *s;
    struct wsk_conn *conn; /* NULL once the WebSocket side has closed */
    struct wsk_tcp *tcp;   /* NULL once the backend side has closed */
    bool is_tcp_open;
    bool is_tcp_paused;  /* the WebSocket queue is full */
    bool is_conn_paused; /* the backend queue is full, or not connected yet */
    bool is_busy;        /* in a close handler: the other side's may run inside */
    char peer[64];
};

static void link_maybe_free(struct proxy_link *l)
{
    if (!l->conn && !l->tcp && !l->is_busy)
        free(l);
}

/* ---- the backend ---------------------------------------------------------- */

static void be_open(struct wsk_tcp *t, void *user_data)
{
    struct proxy_link *l = user_data;

    (void)t;
    l->is_tcp_open = true;
    cli_verbose("%s: backend %s connected", l->peer, l->s->opt.proxy_url);
    if (l->conn && l->is_conn_paused) {
        l->is_conn_paused = false;
        wsk_conn_pause(l->conn, false);
    }
}

static void be_data(struct wsk_tcp *t, const uint8_t *data, size_t len, void *user_data)
{
    struct proxy_link *l = user_data;

    if (!l->conn)
        return;
    int rv = wsk_conn_send(l->conn, WSK_OP_BINARY, data, len);
    if (rv == WSK_EBACKPRESSURE) {
        l->is_tcp_paused = true;
        wsk_tcp_pause(t, true);
    }
}

static void be_drain(struct wsk_tcp *t, void *user_data)
{
    struct proxy_link *l = user_data;

    (void)t;
    if (l->conn && l->is_conn_paused && l->is_tcp_open) {
        l->is_conn_paused = false;
        wsk_conn_pause(l->conn, false);
    }
}

static void be_close(struct wsk_tcp *t, int error, void *user_data)
{
    struct proxy_link *l = user_data;

    (void)t;
    bool was_busy = l->is_busy;
    l->is_busy = true;
    l->tcp = NULL;
    if (l->conn) {
        if (!l->is_tcp_open) {
            char why[120];
            snprintf(why, sizeof why, "backend unreachable: %s", wsk_strerror(error));
            cli_info("%s: %s: %s", l->peer, l->s->opt.proxy_url, why);
            wsk_conn_close(l->conn, WSK_CLOSE_INTERNAL, why);
        } else if (error) {
            char why[120];
            snprintf(why, sizeof why, "backend connection lost: %s", wsk_strerror(error));
            cli_verbose("%s: %s", l->peer, why);
            wsk_conn_close(l->conn, WSK_CLOSE_INTERNAL, why);
        } else {
            cli_verbose("%s: the backend closed", l->peer);
            wsk_conn_close(l->conn, WSK_CLOSE_NORMAL, NULL);
        }
        if (l->conn && l->is_conn_paused) {
            /* Read on, for the client's close frame. */
            l->is_conn_paused = false;
            wsk_conn_pause(l->conn, false);
        }
    }
    l->is_busy = was_busy;
    link_maybe_free(l);
}

/* ---- the WebSocket side ----------------------------------------------------- */

void serve_proxy_open(struct serve *s, struct wsk_conn *conn)
{
    struct proxy_link *l = calloc(1, sizeof *l);
    struct wsk_tcp_config cfg;
    int rv;

    if (!l) {
        wsk_conn_close(conn, WSK_CLOSE_INTERNAL, "out of memory");
        return;
    }
    l->s = s;
    l->conn = conn;
    snprintf(l->peer, sizeof l->peer, "%s", wsk_conn_peer(conn));
    wsk_tcp_config_init(&cfg);
    cfg.handlers.on_open = be_open;
    cfg.handlers.on_data = be_data;
    cfg.handlers.on_drain = be_drain;
    cfg.handlers.on_close = be_close;
    cfg.user_data = l;
    cfg.log = cli_log_library;
    cfg.max_send_queue = (size_t)s->opt.max_queue;
    cfg.connect_timeout_ms = s->opt.handshake_timeout_ms;
    wsk_conn_set_data(conn, l);
    /* Nothing is read from the client until the backend is there. */
    l->is_conn_paused = true;
    wsk_conn_pause(conn, true);
    rv = wsk_tcp_connect(&l->tcp, s->loop, s->proxy_host, s->proxy_port, &cfg);
    if (rv < 0) {
        cli_error("%s: cannot connect to %s: %s", l->peer, s->opt.proxy_url, wsk_strerror(rv));
        wsk_conn_set_data(conn, NULL);
        free(l);
        wsk_conn_pause(conn, false);
        wsk_conn_close(conn, WSK_CLOSE_INTERNAL, "backend unreachable");
        return;
    }
    cli_verbose("%s: open, connecting to %s", l->peer, s->opt.proxy_url);
}

void serve_proxy_message(struct serve *s, struct wsk_conn *conn, const struct wsk_message *msg)
{
    struct proxy_link *l = wsk_conn_get_data(conn);

    (void)s;
    if (!l || !l->tcp || !l->is_tcp_open)
        return;
    int rv = wsk_tcp_send(l->tcp, msg->data, msg->len);
    if (rv == WSK_EBACKPRESSURE) {
        l->is_conn_paused = true;
        wsk_conn_pause(conn, true);
    } else if (rv < 0 && rv != WSK_ESTATE) {
        cli_error("%s: cannot pass a message to the backend: %s", l->peer, wsk_strerror(rv));
        wsk_conn_close(conn, WSK_CLOSE_INTERNAL, "backend error");
    }
}

void serve_proxy_drain(struct serve *s, struct wsk_conn *conn)
{
    struct proxy_link *l = wsk_conn_get_data(conn);

    (void)s;
    if (l && l->tcp && l->is_tcp_paused) {
        l->is_tcp_paused = false;
        wsk_tcp_pause(l->tcp, false);
    }
}

void serve_proxy_close(struct serve *s, struct wsk_conn *conn)
{
    struct proxy_link *l = wsk_conn_get_data(conn);

    (void)s;
    if (!l)
        return;
    wsk_conn_set_data(conn, NULL);
    l->conn = NULL;
    bool was_busy = l->is_busy;
    l->is_busy = true;
    if (l->tcp) {
        /* What the client sent is written, then FIN; the backend's own
         * EOF (or the close timeout) ends it. */
        if (l->is_tcp_paused)
            wsk_tcp_pause(l->tcp, false);
        wsk_tcp_close(l->tcp); /* on_close may run inside */
    }
    l->is_busy = was_busy;
    link_maybe_free(l);
}

/* ---- raw TCP listeners: a plain relay ------------------------------------------ */

/* With --listen tcp:// the same backend is reached without WebSocket: a TCP
 * port forwarder, and the baseline bench/bridges.sh measures --proxy
 * against. An EOF passes through as a half-close (FIN on the other side
 * once what is queued is written); a connection that ends ends the other. */
struct relay {
    struct serve *s;
    struct wsk_tcp *front, *back;
    bool is_back_open;
    bool is_front_paused, is_back_paused;
    bool is_busy;
};

static void relay_maybe_free(struct relay *r)
{
    if (!r->front && !r->back && !r->is_busy)
        free(r);
}

static void rb_open(struct wsk_tcp *t, void *user_data)
{
    struct relay *r = user_data;

    (void)t;
    r->is_back_open = true;
    if (r->front && r->is_front_paused) {
        r->is_front_paused = false;
        wsk_tcp_pause(r->front, false);
    }
}

static void rb_data(struct wsk_tcp *t, const uint8_t *data, size_t len, void *user_data)
{
    struct relay *r = user_data;

    if (r->front && wsk_tcp_send(r->front, data, len) == WSK_EBACKPRESSURE) {
        r->is_back_paused = true;
        wsk_tcp_pause(t, true);
    }
}

static void rb_drain(struct wsk_tcp *t, void *user_data)
{
    struct relay *r = user_data;

    (void)t;
    if (r->front && r->is_front_paused && r->is_back_open) {
        r->is_front_paused = false;
        wsk_tcp_pause(r->front, false);
    }
}

/* The backend is done sending: pass its EOF on, and the client's ends the
 * relay. */
static void rb_eof(struct wsk_tcp *t, void *user_data)
{
    struct relay *r = user_data;

    if (r->front)
        wsk_tcp_shutdown(r->front);
    else
        wsk_tcp_close(t);
}

static void rb_close(struct wsk_tcp *t, int error, void *user_data)
{
    struct relay *r = user_data;

    (void)t;
    bool was_busy = r->is_busy;
    r->is_busy = true;
    r->back = NULL;
    if (!r->is_back_open)
        cli_info("tcp %s: %s unreachable: %s", r->front ? wsk_tcp_peer(r->front) : "?",
                 r->s->opt.proxy_url, wsk_strerror(error));
    if (r->front) {
        if (r->is_front_paused)
            wsk_tcp_pause(r->front, false);
        wsk_tcp_close(r->front);
    }
    r->is_busy = was_busy;
    relay_maybe_free(r);
}

void serve_proxy_tcp_open(struct serve *s, struct wsk_tcp *front)
{
    struct relay *r = calloc(1, sizeof *r);
    struct wsk_tcp_config cfg;

    if (!r) {
        wsk_tcp_close(front);
        return;
    }
    r->s = s;
    r->front = front;
    wsk_tcp_set_data(front, r);
    wsk_tcp_config_init(&cfg);
    cfg.handlers = (struct wsk_tcp_handlers){
        .on_open = rb_open,
        .on_data = rb_data,
        .on_drain = rb_drain,
        .on_close = rb_close,
        .on_eof = rb_eof,
    };
    cfg.user_data = r;
    cfg.log = cli_log_library;
    cfg.max_send_queue = (size_t)s->opt.max_queue;
    cfg.connect_timeout_ms = s->opt.handshake_timeout_ms;
    r->is_front_paused = true;
    wsk_tcp_pause(front, true);
    if (wsk_tcp_connect(&r->back, s->loop, s->proxy_host, s->proxy_port, &cfg) < 0) {
        wsk_tcp_set_data(front, NULL);
        free(r);
        wsk_tcp_close(front);
    }
}

void serve_proxy_tcp_data(struct wsk_tcp *front, const uint8_t *data, size_t len)
{
    struct relay *r = wsk_tcp_get_data(front);

    if (r && r->back && r->is_back_open && wsk_tcp_send(r->back, data, len) == WSK_EBACKPRESSURE) {
        r->is_front_paused = true;
        wsk_tcp_pause(front, true);
    }
}

void serve_proxy_tcp_drain(struct wsk_tcp *front)
{
    struct relay *r = wsk_tcp_get_data(front);

    if (r && r->back && r->is_back_paused) {
        r->is_back_paused = false;
        wsk_tcp_pause(r->back, false);
    }
}

void serve_proxy_tcp_eof(struct wsk_tcp *front)
{
    struct relay *r = wsk_tcp_get_data(front);

    /* Half-close passes through: the backend gets EOF once what the
     * client sent is written, and its answer still comes back. */
    if (r && r->back && r->is_back_open)
        wsk_tcp_shutdown(r->back);
    else
        wsk_tcp_close(front);
}

void serve_proxy_tcp_close(struct wsk_tcp *front)
{
    struct relay *r = wsk_tcp_get_data(front);

    if (!r)
        return;
    wsk_tcp_set_data(front, NULL);
    bool was_busy = r->is_busy;
    r->is_busy = true;
    r->front = NULL;
    if (r->back) {
        if (r->is_back_paused)
            wsk_tcp_pause(r->back, false);
        wsk_tcp_close(r->back); /* on_close may run inside */
    }
    r->is_busy = was_busy;
    relay_maybe_free(r);
}

int serve_proxy_check(struct serve_options *opt, char **host, uint16_t *port)
{
    struct wsk_url u;

    if (wsk_url_parse(opt->proxy_url, strlen(opt->proxy_url), &u) < 0)
        return cli_usage_error("--proxy '%s': %s (expected tcp://HOST:PORT)", opt->proxy_url,
                               u.error);
    if (u.scheme != WSK_URL_TCP)
        return cli_usage_error("--proxy '%s': expected tcp://HOST:PORT", opt->proxy_url);
    if (u.path.len > 1 || u.has_query || u.has_fragment)
        return cli_usage_error("--proxy '%s': a tcp:// URL has no path or query", opt->proxy_url);
    if (!(*host = strndup(u.host.ptr, u.host.len)))
        return cli_usage_error("out of memory");
    *port = u.port;
    return 0;
}
