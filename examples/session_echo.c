/* A WebSocket echo server on a plain poll() loop, built from libwsk's
 * I/O-free pieces only: the HTTP parser and the handshake (wsk/proto.h),
 * permessage-deflate negotiation (wsk/deflate.h) and the session
 * (wsk/session.h). No wsk_loop, no wsk_server: this is how a program with
 * its own event loop uses wsk.
 *
 *   session_echo [PORT]      listens on 127.0.0.1:PORT (0 or none: any free port)
 *
 * Prints "session_echo: listening on ws://127.0.0.1:PORT/ (echo)", then
 * echoes every message of up to 16 MiB to up to 64 clients at once. Each
 * client's send queue is capped at 1 MiB: past it the client is not read
 * until its queue drains (and the session holds its pongs). SIGINT or
 * SIGTERM stops it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wsk/deflate.h"
#include "wsk/proto.h"
#include "wsk/session.h"

#define MAX_CLIENTS 64
#define QUEUE_CAP   (1u << 20)

struct client {
    int fd;
    bool open;    /* handshake done: bytes go to the session */
    bool closing; /* close when the queue is written */
    char head[WSK_HTTP_DEFAULT_MAX_HEAD];
    size_t head_len;
    struct wsk_http_parser hp;
    struct wsk_session s;
    struct wsk_deflate *deflate;
    uint8_t *out; /* bytes to write */
    size_t out_len, out_cap;
};

static struct client clients[MAX_CLIENTS];
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

/* The session's output and our handshake replies: appended to the queue. */
static int queue(void *ud, const uint8_t *data, size_t len)
{
    struct client *c = ud;
    if (c->out_len + len > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < c->out_len + len)
            cap *= 2;
        uint8_t *p = realloc(c->out, cap);
        if (!p)
            return -ENOMEM;
        c->out = p;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
    return c->out_len > QUEUE_CAP ? WSK_EBACKPRESSURE : 0;
}

static int on_message(void *ud, enum wsk_opcode opcode, const uint8_t *data, size_t len);

static int on_close(void *ud, unsigned code, const uint8_t *reason, size_t len)
{
    struct client *c = ud;
    (void)code, (void)reason, (void)len;
    c->closing = true; /* our echo of the close is queued */
    return 1;
}

static const struct wsk_session_handlers handlers = {
    .on_message = on_message,
    .on_close = on_close,
    .send = queue,
};

static int on_message(void *ud, enum wsk_opcode opcode, const uint8_t *data, size_t len)
{
    struct client *c = ud;
    int rv = wsk_session_send(&c->s, opcode, data, len, &handlers, c);
    if (rv < 0 && rv != WSK_EBACKPRESSURE)
        c->closing = true;
    return 0;
}

static void drop(struct client *c)
{
    close(c->fd);
    wsk_session_clear(&c->s);
    wsk_deflate_free(c->deflate);
    free(c->out);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

/* Bytes of the request head: answer it once complete. */
static void on_head(struct client *c)
{
    struct wsk_http_request req;
    int n = wsk_http_request_parse(&c->hp, c->head, c->head_len, &req);
    if (n == 0)
        return;
    char reply[1024];
    int status = n < 0 ? (n == WSK_EHEADTOOBIG ? 431 : 400) : 0;
    struct wsk_handshake_info info;
    if (!status)
        status = wsk_handshake_server_check(&req, NULL, &info);
    char ext[WSK_DEFLATE_HEADER_MAX], extra[WSK_DEFLATE_HEADER_MAX + 40] = "";
    struct wsk_deflate_params params;
    if (status == 101) {
        struct wsk_deflate_config dc;
        wsk_deflate_config_init(&dc);
        dc.enabled = true;
        int e = wsk_deflate_negotiate(req.headers, req.num_headers, &dc, &params, ext, sizeof ext);
        if (e < 0)
            status = 400;
        else if (e > 0 && wsk_deflate_new(&c->deflate, &params, WSK_ROLE_SERVER) == 0)
            snprintf(extra, sizeof extra, "Sec-WebSocket-Extensions: %s\r\n", ext);
    }
    if (status != 101) {
        int len = wsk_handshake_server_reject(reply, sizeof reply, status);
        if (len > 0)
            queue(c, (const uint8_t *)reply, (size_t)len);
        c->closing = true;
        return;
    }
    int len = wsk_handshake_server_accept(reply, sizeof reply, &info, extra);
    if (len < 0 || queue(c, (const uint8_t *)reply, (size_t)len) < 0) {
        c->closing = true;
        return;
    }
    struct wsk_session_config cfg;
    wsk_session_config_init(&cfg);
    cfg.deflate = c->deflate;
    wsk_session_init(&c->s, &cfg);
    c->open = true;
    /* Frames that came right behind the head. */
    size_t rest = c->head_len - (size_t)n;
    if (rest && wsk_session_feed(&c->s, (uint8_t *)c->head + n, rest, &handlers, c) < 0)
        c->closing = true;
}

static void on_readable(struct client *c)
{
    uint8_t buf[65536];
    if (!c->open) {
        /* The parser refuses a head of sizeof head bytes (431) before the
         * buffer is full. */
        ssize_t r = read(c->fd, c->head + c->head_len, sizeof c->head - c->head_len);
        if (r <= 0) {
            drop(c);
            return;
        }
        c->head_len += (size_t)r;
        on_head(c);
        return;
    }
    ssize_t r = read(c->fd, buf, sizeof buf);
    if (r <= 0) {
        if (r == 0 || (errno != EAGAIN && errno != EINTR))
            drop(c);
        return;
    }
    /* A handler never stops this feed, so everything is consumed; an error
     * means the session sent its close code: write it, then hang up. */
    if (wsk_session_feed(&c->s, buf, (size_t)r, &handlers, c) < 0)
        c->closing = true;
}

static void on_writable(struct client *c)
{
    ssize_t w = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
    if (w < 0) {
        if (errno != EAGAIN && errno != EINTR)
            drop(c);
        return;
    }
    memmove(c->out, c->out + w, c->out_len - (size_t)w);
    bool was_full = c->out_len > QUEUE_CAP;
    c->out_len -= (size_t)w;
    /* Room again: the session may send the pong it held. */
    if (was_full && c->out_len <= QUEUE_CAP / 2 && c->open)
        wsk_session_drained(&c->s, &handlers, c);
    if (!c->out_len && c->closing)
        drop(c);
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 0;
    if (argc > 2 || port < 0 || port > 65535) {
        fprintf(stderr, "usage: session_echo [PORT]\n");
        return 2;
    }
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t slen = sizeof sa;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 128) < 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &slen) < 0) {
        perror("session_echo: listen");
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    for (int i = 0; i < MAX_CLIENTS; i++)
        clients[i].fd = -1;
    printf("session_echo: listening on ws://127.0.0.1:%u/ (echo)\n", ntohs(sa.sin_port));
    fflush(stdout);

    while (!stop) {
        struct pollfd pfd[MAX_CLIENTS + 1];
        int who[MAX_CLIENTS + 1], n = 0;
        pfd[n] = (struct pollfd){.fd = lfd, .events = POLLIN};
        who[n++] = -1;
        for (int i = 0; i < MAX_CLIENTS; i++) {
            struct client *c = &clients[i];
            if (c->fd < 0)
                continue;
            short ev = c->out_len ? POLLOUT : 0;
            /* A full queue stops reading: back-pressure on the peer. */
            if (c->out_len <= QUEUE_CAP && !c->closing)
                ev |= POLLIN;
            pfd[n] = (struct pollfd){.fd = c->fd, .events = ev};
            who[n++] = i;
        }
        if (poll(pfd, (nfds_t)n, -1) < 0) {
            if (errno == EINTR)
                continue;
            perror("session_echo: poll");
            return 1;
        }
        for (int k = 0; k < n; k++) {
            if (!pfd[k].revents)
                continue;
            if (who[k] < 0) {
                int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
                int i = 0;
                while (fd >= 0 && i < MAX_CLIENTS && clients[i].fd >= 0)
                    i++;
                if (fd >= 0 && i == MAX_CLIENTS) {
                    close(fd); /* full */
                } else if (fd >= 0) {
                    clients[i].fd = fd;
                    wsk_http_parser_init(&clients[i].hp, 0);
                }
                continue;
            }
            struct client *c = &clients[who[k]];
            if (c->fd >= 0 && (pfd[k].revents & POLLOUT))
                on_writable(c);
            if (c->fd >= 0 && (pfd[k].revents & (POLLIN | POLLHUP | POLLERR)))
                on_readable(c);
        }
    }
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (clients[i].fd >= 0)
            drop(&clients[i]);
    close(lfd);
    return 0;
}
