/* wsk connect tcp:// and udp:// (article 003's TCP and UDP clients), on the
 * same stdin, terminal and pipe handling as the WebSocket client.
 *
 * TCP: a line goes out with its newline; bytes that arrive are written as
 * they come (pipe mode) or shown a line at a time (terminal). At the end of
 * stdin the client half-closes and reads on until the server's EOF, as
 * `nc -N` does, so replies to the last lines are not lost.
 *
 * UDP: a line is one datagram, a datagram one line. There is no end to wait
 * for, so after the end of stdin replies are awaited for --wait seconds. An
 * ICMP "port unreachable" (nothing listens) ends the client with an error. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "connect.h"

/* A line as the interactive client shows it. */
static void term_line(struct client *c, const uint8_t *line, size_t len)
{
    struct wsk_message m = {wsk_utf8_valid(line, len) ? WSK_OP_TEXT : WSK_OP_BINARY, line, len};
    struct cli_buf b = {0};

    if (format_message(&b, &m) == 0)
        term_print(c, STDOUT_FILENO, b.ptr, b.len);
    cli_buf_reset(&b);
}

/* Reports how the link ended, once. */
static void report_end(struct client *c, bool was_open, int error)
{
    if (!was_open) {
        if (c->is_interrupted) {
            c->status = 130;
        } else {
            cli_error("cannot connect to %s: %s", c->opt.url,
                      wsk_strerror(error ? error : WSK_ECLOSED));
            c->status = CLI_EXIT_FAILURE;
        }
    } else if (error == 0) {
        if (c->opt.verbosity >= CLI_VERBOSE ||
            (c->opt.verbosity > CLI_QUIET && c->mode == MODE_TERMINAL))
            client_note(c, "Connection closed.");
    } else {
        cli_error("connection lost: %s", wsk_strerror(error));
        c->status = CLI_EXIT_FAILURE;
    }
    client_done(c);
}

/* ---- TCP ----------------------------------------------------------------- */

static void tcp_open(struct wsk_tcp *t, void *user_data)
{
    struct client *c = user_data;

    (void)t;
    cli_verbose("connected to %s", c->opt.url);
    client_opened(c);
}

/* Terminal mode: whole lines, a line longer than --max-message shown in
 * pieces of that size. */
static void tcp_term_data(struct client *c, const uint8_t *data, size_t len)
{
    while (len) {
        const uint8_t *nl = memchr(data, '\n', len);
        size_t seg = nl ? (size_t)(nl - data) : len;
        size_t room = (size_t)c->opt.max_message - c->rx_line.len;

        if (seg > room)
            seg = room;
        if (cli_buf_append(&c->rx_line, data, seg) < 0) {
            cli_error("out of memory");
            client_fail(c);
            return;
        }
        data += seg;
        len -= seg;
        if (nl && data == nl) {
            data++;
            len--;
        } else if (c->rx_line.len < c->opt.max_message) {
            continue; /* the rest of the line comes later */
        }
        size_t n = c->rx_line.len;
        if (n && c->rx_line.ptr[n - 1] == '\r')
            n--;
        term_line(c, (const uint8_t *)c->rx_line.ptr, n);
        c->rx_line.len = 0;
    }
}

static void tcp_data(struct wsk_tcp *t, const uint8_t *data, size_t len, void *user_data)
{
    struct client *c = user_data;

    switch (c->mode) {
    case MODE_ECHO:
        /* Past the queue cap, read no more until the server reads. */
        if (wsk_tcp_send(t, data, len) == WSK_EBACKPRESSURE)
            wsk_tcp_pause(t, true);
        break;
    case MODE_PIPE:
        pipe_write(c, data, len, false);
        break;
    case MODE_TERMINAL:
        tcp_term_data(c, data, len);
        break;
    }
}

static void tcp_drain(struct wsk_tcp *t, void *user_data)
{
    struct client *c = user_data;

    if (c->mode == MODE_ECHO)
        wsk_tcp_pause(t, false);
    else
        client_drained(c);
}

static void tcp_close(struct wsk_tcp *t, int error, void *user_data)
{
    struct client *c = user_data;

    (void)t;
    c->tcp = NULL;
    if (c->mode == MODE_TERMINAL && c->rx_line.len) {
        term_line(c, (const uint8_t *)c->rx_line.ptr, c->rx_line.len);
        c->rx_line.len = 0;
    }
    client_closed(c);
    report_end(c, c->is_open, error);
}

/* ---- UDP ----------------------------------------------------------------- */

static void udp_finish(struct client *c, int error)
{
    if (!c->udp)
        return;
    wsk_timer_stop(c->loop, &c->linger);
    wsk_udp_free(c->udp); /* safe from its own callbacks */
    c->udp = NULL;
    client_closed(c);
    report_end(c, true, error);
}

static void udp_datagram(struct wsk_udp *u, const uint8_t *data, size_t len, bool truncated,
                         const struct sockaddr *from, socklen_t from_len, void *user_data)
{
    struct client *c = user_data;

    (void)from;
    (void)from_len;
    if (truncated) {
        cli_error("a datagram longer than --max-message (%llu bytes) was dropped",
                  (unsigned long long)c->opt.max_message);
        return;
    }
    switch (c->mode) {
    case MODE_ECHO: {
        int rv = wsk_udp_send(u, data, len);
        if (rv < 0)
            cli_error("cannot echo: %s", wsk_strerror(rv));
        break;
    }
    case MODE_PIPE:
        pipe_write(c, data, len, !c->opt.is_binary);
        break;
    case MODE_TERMINAL:
        term_line(c, data, len);
        break;
    }
}

static void udp_error(struct wsk_udp *u, int error, void *user_data)
{
    struct client *c = user_data;

    (void)u;
    if (error == -ECONNREFUSED) {
        /* ICMP port unreachable: nobody listens on the server's port. */
        cli_error("%s: nothing listens there (ICMP port unreachable)", c->opt.url);
        c->status = CLI_EXIT_FAILURE;
        udp_finish(c, 0);
        return;
    }
    cli_verbose("udp: %s", wsk_strerror(error));
}

static void on_linger(struct wsk_loop *loop, struct wsk_timer *t)
{
    (void)loop;
    udp_finish(t->data, 0);
}

/* ---- the link ------------------------------------------------------------ */

int raw_connect(struct client *c, const struct wsk_url *u)
{
    char host[256];
    int rv;

    if (u->path.len > 1 || u->has_query || u->has_fragment) {
        cli_usage_error("'%s': a %s URL has no path or query (expected %s://HOST:PORT)", c->opt.url,
                        u->scheme == WSK_URL_TCP ? "tcp://" : "udp://",
                        u->scheme == WSK_URL_TCP ? "tcp" : "udp");
        return CLI_EXIT_USAGE;
    }
    if (u->host.len >= sizeof host) {
        cli_usage_error("'%s': the host name is too long", c->opt.url);
        return CLI_EXIT_USAGE;
    }
    memcpy(host, u->host.ptr, u->host.len);
    host[u->host.len] = '\0';
    cli_verbose("connecting to %s", c->opt.url);

    if (c->link == LINK_TCP) {
        struct wsk_tcp_config cfg;
        wsk_tcp_config_init(&cfg);
        cfg.handlers.on_open = tcp_open;
        cfg.handlers.on_data = tcp_data;
        cfg.handlers.on_drain = tcp_drain;
        cfg.handlers.on_close = tcp_close;
        cfg.user_data = c;
        cfg.log = cli_log_library;
        cfg.connect_timeout_ms = c->opt.connect_timeout_ms;
        rv = wsk_tcp_connect(&c->tcp, c->loop, host, u->port, &cfg);
        if (rv < 0) {
            cli_error("cannot connect to %s: %s", c->opt.url, wsk_strerror(rv));
            return CLI_EXIT_FAILURE;
        }
        c->is_linked = true;
        return 0;
    }

    struct wsk_udp_config cfg;
    wsk_udp_config_init(&cfg);
    cfg.handlers.on_datagram = udp_datagram;
    cfg.handlers.on_error = udp_error;
    cfg.user_data = c;
    cfg.max_datagram = c->opt.max_message < RAW_UDP_MAX ? (size_t)c->opt.max_message : RAW_UDP_MAX;
    if (cfg.max_datagram == 0)
        cfg.max_datagram = 1;
    wsk_timer_init(&c->linger, on_linger, c);
    rv = wsk_udp_connect(&c->udp, c->loop, host, u->port, &cfg);
    if (rv < 0) {
        cli_error("cannot connect to %s: %s", c->opt.url, wsk_strerror(rv));
        return CLI_EXIT_FAILURE;
    }
    c->is_linked = true;
    cli_verbose("ready to send to %s", c->opt.url);
    client_opened(c);
    return 0;
}

int raw_send(struct client *c, const char *data, size_t len)
{
    int rv;

    if (c->link == LINK_UDP) {
        if (!c->udp)
            return WSK_ESTATE;
        if (len > RAW_UDP_MAX)
            return -EMSGSIZE;
        rv = wsk_udp_send(c->udp, data, len);
        if (rv == -EAGAIN) {
            /* UDP has no queue: the socket buffer is full and the datagram is
             * gone. Say so rather than lose it quietly. */
            cli_error("a datagram was dropped: the socket's send buffer is full");
            return 0;
        }
        return rv;
    }
    if (!c->tcp)
        return WSK_ESTATE;
    rv = wsk_tcp_send(c->tcp, data, len);
    if (rv < 0 && rv != WSK_EBACKPRESSURE)
        return rv;
    if (c->opt.is_binary)
        return rv;
    int nl = wsk_tcp_send(c->tcp, "\n", 1);
    return nl < 0 ? nl : rv;
}

void raw_close(struct client *c)
{
    if (c->link == LINK_TCP) {
        if (!c->tcp)
            return;
        if (!c->is_open)
            wsk_tcp_close(c->tcp); /* stop connecting: on_close follows */
        else
            wsk_tcp_shutdown(c->tcp);
        return;
    }
    if (!c->udp || wsk_timer_is_active(&c->linger))
        return;
    if (c->is_interrupted || c->opt.wait_ms == 0 ||
        wsk_timer_start(c->loop, &c->linger, c->opt.wait_ms, 0) < 0)
        udp_finish(c, 0);
}

void raw_free(struct client *c)
{
    if (c->udp) {
        wsk_timer_stop(c->loop, &c->linger);
        wsk_udp_free(c->udp);
        c->udp = NULL;
    }
}
