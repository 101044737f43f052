/* wsk serve: raw TCP and UDP listeners (--listen tcp://, udp://), and the
 * lobby they share with the WebSocket clients of "/" in broadcast mode.
 *
 * Echo: TCP bytes go back as they come (a client that does not read its
 * echoes is not read from until it does: the send queue's back-pressure,
 * as for WebSocket); each UDP datagram goes back to its sender.
 *
 * Broadcast: the lobby. A TCP client's line (up to '\n', one '\r' before it
 * dropped) goes to every other TCP client as LINE "\n", to every WebSocket
 * client of the lobby (path "/") as a text message (binary when it is not
 * UTF-8) and to every UDP peer as one datagram. A UDP datagram goes to every
 * other peer heard from within --udp-peer-timeout, to TCP clients as a line
 * and to the lobby's WebSocket clients as a message. A message of a
 * WebSocket client of the lobby (or one POSTed to it) goes to TCP clients
 * as a line and to UDP peers as a datagram (the WebSocket side publishes it
 * itself, sender included, as the chat page expects); other rooms
 * (serve_rooms.c) stay among their WebSocket clients. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"

/* Per TCP connection: the line being read, in broadcast mode. */
struct tcp_client {
    struct serve *s;
    struct cli_buf line;
    char peer[64];
};

/* The largest UDP payload over IPv4: bigger messages cannot go to UDP. */
#define UDP_MAX_PAYLOAD 65507u

/* ---- the room ------------------------------------------------------------ */

/* Remembers (or refreshes) a UDP peer; the table is bounded by
 * --max-connections, and peers not heard from within --udp-peer-timeout are
 * dropped first. */
static void udp_peer_touch(struct serve *s, struct udp_listener *l, const struct sockaddr *from,
                           socklen_t from_len)
{
    uint64_t now = wsk_loop_now(s->loop);
    size_t i, oldest = 0;

    for (i = 0; i < s->num_peers; i++) {
        struct udp_peer *p = &s->peers[i];
        if (p->listener == l && p->len == from_len && memcmp(&p->addr, from, from_len) == 0) {
            p->seen = now;
            return;
        }
        if (p->seen < s->peers[oldest].seen)
            oldest = i;
    }
    if (from_len > sizeof s->peers[0].addr)
        return;
    if (s->num_peers == s->peers_cap) {
        size_t cap = s->peers_cap ? s->peers_cap * 2 : 16;
        if (cap > s->opt.max_connections)
            cap = (size_t)s->opt.max_connections;
        if (cap <= s->peers_cap) {
            /* Full: the peer heard from least recently makes room. */
            i = oldest;
            goto store;
        }
        struct udp_peer *np = realloc(s->peers, cap * sizeof *np);
        if (!np)
            return;
        s->peers = np;
        s->peers_cap = cap;
    }
    i = s->num_peers++;
store:
    memset(&s->peers[i].addr, 0, sizeof s->peers[i].addr);
    memcpy(&s->peers[i].addr, from, from_len);
    s->peers[i].len = from_len;
    s->peers[i].listener = l;
    s->peers[i].seen = now;
    if (s->opt.verbosity >= CLI_VERBOSE) {
        char name[64];
        cli_verbose("udp %s: joined", wsk_sockaddr_str(from, from_len, name, sizeof name));
    }
}

/* Sends to every UDP peer still in the room but from; forgets the others. */
static void room_to_udp(struct serve *s, const uint8_t *data, size_t len,
                        const struct sockaddr *from, socklen_t from_len)
{
    uint64_t now = wsk_loop_now(s->loop);
    size_t i = 0;

    if (len > UDP_MAX_PAYLOAD)
        return; /* cannot be one datagram */
    while (i < s->num_peers) {
        struct udp_peer *p = &s->peers[i];
        if (now - p->seen > s->opt.udp_peer_timeout_ms) {
            *p = s->peers[--s->num_peers];
            continue;
        }
        i++;
        if (from && p->len == from_len && memcmp(&p->addr, from, from_len) == 0)
            continue;
        int rv = wsk_udp_send_to(p->listener->sock, data, len, (const struct sockaddr *)&p->addr,
                                 p->len);
        if (rv < 0 && s->opt.verbosity >= CLI_VERBOSE) {
            char name[64];
            cli_verbose(
                "udp %s: datagram dropped: %s",
                wsk_sockaddr_str((const struct sockaddr *)&p->addr, p->len, name, sizeof name),
                wsk_strerror(rv));
        }
    }
}

/* To every TCP client but except, as one line. */
static void room_to_tcp(struct serve *s, const uint8_t *data, size_t len,
                        const struct wsk_tcp *except)
{
    if (!s->tcp_srv || wsk_tcp_server_count(s->tcp_srv) == 0)
        return;
    s->scratch.len = 0;
    if (cli_buf_append(&s->scratch, data, len) < 0 || cli_buf_append(&s->scratch, "\n", 1) < 0) {
        cli_error("out of memory: a message was not sent to TCP clients");
        return;
    }
    if (wsk_tcp_server_broadcast(s->tcp_srv, s->scratch.ptr, s->scratch.len, except) < 0)
        cli_error("out of memory: a message did not reach every TCP client");
}

/* To the WebSocket clients of the lobby, "/". */
static void room_to_ws(struct serve *s, const uint8_t *data, size_t len)
{
    if (!s->srv)
        return;
    enum wsk_opcode op = wsk_utf8_valid(data, len) ? WSK_OP_TEXT : WSK_OP_BINARY;
    int rv = wsk_server_publish(s->srv, "/", 1, op, data, len);
    if (rv < 0)
        cli_log(CLI_NORMAL, "broadcast failed: %s", wsk_strerror(rv));
}

/* A lobby line or datagram: to the lobby on the other threads and processes. */
static void room_to_others(struct serve *s, const uint8_t *data, size_t len)
{
    if (!s->group && !s->redis)
        return;
    enum wsk_opcode op = wsk_utf8_valid(data, len) ? WSK_OP_TEXT : WSK_OP_BINARY;
    serve_room_others(s, "/", 1, op, data, len);
}

void serve_room_from_ws(struct serve *s, const uint8_t *data, size_t len)
{
    room_to_tcp(s, data, len, NULL);
    room_to_udp(s, data, len, NULL, 0);
}

/* ---- TCP ----------------------------------------------------------------- */

static void tcp_on_open(struct wsk_tcp *t, void *user_data)
{
    struct serve *s = user_data;

    if (s->opt.mode == SERVE_PROXY) {
        cli_verbose("tcp %s: open, relaying to %s", wsk_tcp_peer(t), s->opt.proxy_url);
        serve_proxy_tcp_open(s, t);
        return;
    }
    struct tcp_client *c = calloc(1, sizeof *c);

    if (!c) {
        cli_error("out of memory: closing a new TCP connection");
        wsk_tcp_close(t);
        return;
    }
    c->s = s;
    snprintf(c->peer, sizeof c->peer, "%s", wsk_tcp_peer(t));
    wsk_tcp_set_data(t, c);
    cli_verbose("tcp %s: open", c->peer);
}

static void tcp_echo(struct wsk_tcp *t, const uint8_t *data, size_t len)
{
    int rv = wsk_tcp_send(t, data, len);
    /* Past the queue cap the bytes are queued still; stop reading until the
     * client reads its echoes (on_drain), so memory stays bounded. */
    if (rv == WSK_EBACKPRESSURE)
        wsk_tcp_pause(t, true);
    else if (rv < 0 && rv != WSK_ESTATE)
        cli_log(CLI_NORMAL, "tcp %s: cannot echo: %s", wsk_tcp_peer(t), wsk_strerror(rv));
}

static void tcp_line(struct serve *s, struct wsk_tcp *t, const uint8_t *line, size_t len)
{
    if (len && line[len - 1] == '\r')
        len--;
    room_to_tcp(s, line, len, t);
    room_to_ws(s, line, len);
    room_to_udp(s, line, len, NULL, 0);
    room_to_others(s, line, len);
}

static void tcp_on_data(struct wsk_tcp *t, const uint8_t *data, size_t len, void *user_data)
{
    struct serve *s = user_data;
    struct tcp_client *c = wsk_tcp_get_data(t);
    const uint8_t *nl;

    if (s->opt.mode == SERVE_ECHO) {
        tcp_echo(t, data, len);
        return;
    }
    if (s->opt.mode == SERVE_PROXY) {
        serve_proxy_tcp_data(t, data, len);
        return;
    }
    if (!c)
        return;
    while (len && (nl = memchr(data, '\n', len)) != NULL) {
        size_t n = (size_t)(nl - data);
        if (c->line.len + n > s->opt.max_message)
            goto too_long;
        if (c->line.len) {
            if (cli_buf_append(&c->line, data, n) < 0)
                goto oom;
            tcp_line(s, t, (const uint8_t *)c->line.ptr, c->line.len);
            c->line.len = 0;
        } else {
            tcp_line(s, t, data, n);
        }
        data += n + 1;
        len -= n + 1;
    }
    if (!len)
        return;
    if (c->line.len + len > s->opt.max_message)
        goto too_long;
    if (cli_buf_append(&c->line, data, len) < 0)
        goto oom;
    return;
too_long:
    cli_info("tcp %s: line over --max-message (%llu bytes); closing", c->peer,
             (unsigned long long)s->opt.max_message);
    c->line.len = 0;
    wsk_tcp_close(t);
    return;
oom:
    cli_error("tcp %s: out of memory for a line; closing", c->peer);
    c->line.len = 0;
    wsk_tcp_close(t);
}

static void tcp_on_drain(struct wsk_tcp *t, void *user_data)
{
    struct serve *s = user_data;

    if (s->opt.mode == SERVE_PROXY)
        serve_proxy_tcp_drain(t);
    else
        wsk_tcp_pause(t, false);
}

static void tcp_on_close(struct wsk_tcp *t, int error, void *user_data)
{
    struct serve *s = user_data;

    if (s->opt.mode == SERVE_PROXY) {
        cli_verbose("tcp: relay closed%s%s", error ? ": " : "", error ? wsk_strerror(error) : "");
        serve_proxy_tcp_close(t);
        return;
    }
    struct tcp_client *c = wsk_tcp_get_data(t);

    if (!c)
        return;
    /* The last line of a client that ended without a newline still counts
     * (printf 'hi' | nc ...), but not one cut by an error. */
    if (!error && c->line.len && s->opt.mode == SERVE_BROADCAST)
        tcp_line(s, t, (const uint8_t *)c->line.ptr, c->line.len);
    if (error)
        cli_verbose("tcp %s: closed: %s", c->peer, wsk_strerror(error));
    else
        cli_verbose("tcp %s: closed", c->peer);
    cli_buf_reset(&c->line);
    free(c);
    wsk_tcp_set_data(t, NULL);
}

static void tcp_on_eof(struct wsk_tcp *t, void *user_data)
{
    (void)user_data;
    serve_proxy_tcp_eof(t);
}

static int tcp_start(struct serve *s)
{
    struct wsk_tcp_config cfg;
    int rv;

    wsk_tcp_config_init(&cfg);
    cfg.handlers.on_open = tcp_on_open;
    cfg.handlers.on_data = tcp_on_data;
    cfg.handlers.on_drain = tcp_on_drain;
    cfg.handlers.on_close = tcp_on_close;
    if (s->opt.mode == SERVE_PROXY)
        cfg.handlers.on_eof = tcp_on_eof; /* a relay passes half-closes on */
    cfg.user_data = s;
    cfg.log = cli_log_library;
    cfg.max_send_queue = (size_t)s->opt.max_queue;
    cfg.idle_timeout_ms = s->opt.idle_timeout_ms;
    cfg.max_connections = (size_t)s->opt.max_connections;
    cfg.reuse_port = s->opt.reuse_port;
    if ((rv = wsk_tcp_server_new(&s->tcp_srv, s->loop, &cfg)) < 0) {
        cli_error("cannot create the TCP server: %s", wsk_strerror(rv));
        return CLI_EXIT_FAILURE;
    }
    return 0;
}

/* ---- UDP ----------------------------------------------------------------- */

static void udp_on_datagram(struct wsk_udp *u, const uint8_t *data, size_t len, bool truncated,
                            const struct sockaddr *from, socklen_t from_len, void *user_data)
{
    struct udp_listener *l = user_data;
    struct serve *s = l->s;
    char name[64];

    if (truncated) {
        cli_verbose("udp %s: datagram over --max-message dropped",
                    wsk_sockaddr_str(from, from_len, name, sizeof name));
        return;
    }
    if (s->opt.mode == SERVE_ECHO) {
        int rv = wsk_udp_send_to(u, data, len, from, from_len);
        if (rv < 0)
            cli_verbose("udp %s: echo dropped: %s",
                        wsk_sockaddr_str(from, from_len, name, sizeof name), wsk_strerror(rv));
        return;
    }
    if (s->is_shutting_down)
        return;
    udp_peer_touch(s, l, from, from_len);
    room_to_udp(s, data, len, from, from_len);
    room_to_tcp(s, data, len, NULL);
    room_to_ws(s, data, len);
    room_to_others(s, data, len);
}

static void udp_on_error(struct wsk_udp *u, int error, void *user_data)
{
    (void)u;
    (void)user_data;
    /* An ICMP "port unreachable" from a peer that left: not the server's
     * problem, and not worth a line unless asked. */
    cli_verbose("udp: %s", wsk_strerror(error));
}

/* ---- starting and stopping ----------------------------------------------- */

int serve_raw_start(struct serve *s)
{
    const struct serve_options *opt = &s->opt;
    int rv;

    for (size_t i = 0; i < opt->num_listens; i++) {
        struct serve_listen *sl = &s->opt.listens[i];
        const char *lb = sl->addr.is_ipv6 ? "[" : "", *rb = sl->addr.is_ipv6 ? "]" : "";

        if (sl->kind == LISTEN_TCP) {
            if (!s->tcp_srv && (rv = tcp_start(s)) != 0)
                return rv;
            rv = wsk_tcp_server_listen(s->tcp_srv, sl->addr.host, sl->addr.port);
        } else if (sl->kind == LISTEN_UDP) {
            struct udp_listener *l = &s->udp[s->num_udp];
            struct wsk_udp_config cfg;
            wsk_udp_config_init(&cfg);
            cfg.handlers.on_datagram = udp_on_datagram;
            cfg.handlers.on_error = udp_on_error;
            cfg.user_data = l;
            cfg.reuse_port = opt->reuse_port;
            cfg.max_datagram =
                opt->max_message < UDP_MAX_PAYLOAD ? (size_t)opt->max_message : UDP_MAX_PAYLOAD;
            if (cfg.max_datagram == 0)
                cfg.max_datagram = 1;
            l->s = s;
            rv = wsk_udp_bind(&l->sock, s->loop, sl->addr.host, sl->addr.port, &cfg);
            if (rv == 0) {
                s->num_udp++;
                rv = wsk_udp_port(l->sock);
            }
        } else {
            continue;
        }
        if (rv < 0) {
            cli_error("cannot listen on %s://%s%s%s:%u: %s%s",
                      sl->kind == LISTEN_TCP ? "tcp" : "udp", lb, sl->addr.host, rb,
                      (unsigned)sl->addr.port, wsk_strerror(rv),
                      serve_listen_hint(rv, sl->addr.port));
            return CLI_EXIT_FAILURE;
        }
        sl->port = (uint16_t)rv;
    }
    return 0;
}

void serve_raw_shutdown(struct serve *s)
{
    if (s->tcp_srv)
        wsk_tcp_server_shutdown(s->tcp_srv);
    /* UDP has no connections to close: the sockets go now, so the loop can
     * end when the TCP and WebSocket clients are gone. */
    for (size_t i = 0; i < s->num_udp; i++) {
        wsk_udp_free(s->udp[i].sock);
        s->udp[i].sock = NULL;
    }
    s->num_udp = 0;
    s->num_peers = 0;
}

void serve_raw_free(struct serve *s)
{
    wsk_tcp_server_free(s->tcp_srv);
    s->tcp_srv = NULL;
    for (size_t i = 0; i < s->num_udp; i++)
        wsk_udp_free(s->udp[i].sock);
    s->num_udp = 0;
    free(s->peers);
    s->peers = NULL;
    s->num_peers = s->peers_cap = 0;
    cli_buf_reset(&s->scratch);
}
