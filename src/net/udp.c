/* UDP sockets on the loop (wsk/net.h): datagrams in with their sender,
 * datagrams out at once. No queue: a socket buffer that is full drops the
 * datagram, which the sender is told (-EAGAIN), as UDP itself would. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loop/loop_internal.h"
#include "wsk/net.h"

#define DATAGRAMS_PER_EVENT 64
#define MAX_UDP_PAYLOAD     65507

struct wsk_udp {
    struct wsk_io io;
    struct wsk_loop *loop;
    struct wsk_udp_config cfg;
    uint8_t *buf; /* the loop's */
    size_t buf_cap;
    unsigned cb_depth;
    bool free_pending;
    struct wsk_defer free_defer;
};

void wsk_udp_config_init(struct wsk_udp_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->max_datagram = MAX_UDP_PAYLOAD;
}

char *wsk_sockaddr_str(const struct sockaddr *addr, socklen_t len, char *buf, size_t cap)
{
    char host[INET6_ADDRSTRLEN], port[8];
    if (!cap)
        return buf;
    if (getnameinfo(addr, len, host, sizeof host, port, sizeof port,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        snprintf(buf, cap, "(unknown)");
        return buf;
    }
    if (addr->sa_family == AF_INET6)
        snprintf(buf, cap, "[%s]:%s", host, port);
    else
        snprintf(buf, cap, "%s:%s", host, port);
    return buf;
}

static void io_cb(struct wsk_loop *loop, struct wsk_io *io, unsigned events)
{
    (void)loop;
    (void)events;
    struct wsk_udp *u = io->data;
    for (int i = 0; i < DATAGRAMS_PER_EVENT && !u->free_pending; i++) {
        struct sockaddr_storage from;
        struct iovec iov = {u->buf, u->cfg.max_datagram};
        struct msghdr mh = {
            .msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov, .msg_iovlen = 1};
        ssize_t n = recvmsg(io->fd, &mh, MSG_DONTWAIT);
        if (n < 0) {
            int err = -errno;
            if (err == -EAGAIN || err == -EWOULDBLOCK || err == -EINTR)
                return;
            /* ICMP errors on a connected socket: report, go on. */
            if (u->cfg.handlers.on_error) {
                u->cb_depth++;
                u->cfg.handlers.on_error(u, err, u->cfg.user_data);
                u->cb_depth--;
            }
            continue;
        }
        if (u->cfg.handlers.on_datagram) {
            u->cb_depth++;
            u->cfg.handlers.on_datagram(u, u->buf, (size_t)n, (mh.msg_flags & MSG_TRUNC) != 0,
                                        (struct sockaddr *)&from, mh.msg_namelen, u->cfg.user_data);
            u->cb_depth--;
        }
    }
}

static void free_now(struct wsk_udp *u)
{
    if (u->io.fd >= 0) {
        wsk_io_stop(u->loop, &u->io);
        close(u->io.fd);
    }
    wsk_defer_cancel(u->loop, &u->free_defer);
    free(u);
}

static void free_cb(struct wsk_loop *loop, struct wsk_defer *d)
{
    (void)loop;
    free_now(d->data);
}

/* Resolves host (blocking, at startup) and makes a socket bound or
 * connected to it. */
static int open_udp(struct wsk_udp **out, struct wsk_loop *loop, const char *host, uint16_t port,
                    const struct wsk_udp_config *cfg, bool connect_it)
{
    char hostbuf[256], portbuf[8];
    if (!host || !*host)
        host = connect_it ? "127.0.0.1" : "0.0.0.0";
    if (!strcmp(host, "localhost"))
        host = "127.0.0.1";
    size_t hl = strlen(host);
    if (host[0] == '[' && hl >= 2 && host[hl - 1] == ']')
        snprintf(hostbuf, sizeof hostbuf, "%.*s", (int)(hl - 2), host + 1);
    else
        snprintf(hostbuf, sizeof hostbuf, "%s", host);
    snprintf(portbuf, sizeof portbuf, "%u", (unsigned)port);
    if (connect_it && !port)
        return -EINVAL;
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = connect_it ? AI_ADDRCONFIG : AI_PASSIVE;
    int gai = getaddrinfo(hostbuf, portbuf, &hints, &res);
    if (gai != 0)
        return gai == EAI_MEMORY ? -ENOMEM : WSK_EDNS;
    int rv = -EADDRNOTAVAIL, fd = -1;
    /* IPv4 first, as the listeners do. */
    for (int pass = 0; pass < 2 && fd < 0; pass++) {
        for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
            if ((ai->ai_family == AF_INET) != (pass == 0))
                continue;
            fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (fd < 0) {
                rv = -errno;
                continue;
            }
            int one = 1, ok = 0;
            if (!connect_it && cfg && cfg->reuse_port)
                ok = setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
            if (ok == 0)
                ok = connect_it ? connect(fd, ai->ai_addr, ai->ai_addrlen)
                                : bind(fd, ai->ai_addr, ai->ai_addrlen);
            if (ok < 0) {
                rv = -errno;
                close(fd);
                fd = -1;
            }
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        return rv;
    struct wsk_udp *u = calloc(1, sizeof *u);
    if (!u) {
        close(fd);
        return -ENOMEM;
    }
    u->loop = loop;
    if (cfg)
        u->cfg = *cfg;
    else
        wsk_udp_config_init(&u->cfg);
    u->buf = wsk__loop_scratch(loop, &u->buf_cap);
    if (!u->cfg.max_datagram || u->cfg.max_datagram > MAX_UDP_PAYLOAD)
        u->cfg.max_datagram = MAX_UDP_PAYLOAD;
    if (u->cfg.max_datagram > u->buf_cap)
        u->cfg.max_datagram = u->buf_cap;
    wsk_defer_init(&u->free_defer, free_cb, u);
    wsk_io_init(&u->io, fd, io_cb, u);
    rv = u->buf ? wsk_io_start(loop, &u->io, WSK_IO_READ) : -ENOMEM;
    if (rv < 0) {
        close(fd);
        free(u);
        return rv;
    }
    *out = u;
    return 0;
}

int wsk_udp_bind(struct wsk_udp **out, struct wsk_loop *loop, const char *host, uint16_t port,
                 const struct wsk_udp_config *cfg)
{
    return open_udp(out, loop, host, port, cfg, false);
}

int wsk_udp_connect(struct wsk_udp **out, struct wsk_loop *loop, const char *host, uint16_t port,
                    const struct wsk_udp_config *cfg)
{
    return open_udp(out, loop, host, port, cfg, true);
}

int wsk_udp_send_to(struct wsk_udp *u, const void *data, size_t len, const struct sockaddr *addr,
                    socklen_t addr_len)
{
    ssize_t n = sendto(u->io.fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL, addr, addr_len);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    return 0;
}

int wsk_udp_send(struct wsk_udp *u, const void *data, size_t len)
{
    return wsk_udp_send_to(u, data, len, NULL, 0);
}

uint16_t wsk_udp_port(const struct wsk_udp *u)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(u->io.fd, (struct sockaddr *)&ss, &len) < 0)
        return 0;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

void wsk_udp_free(struct wsk_udp *u)
{
    if (!u || u->free_pending)
        return;
    if (u->cb_depth) {
        u->free_pending = true;
        wsk_io_stop(u->loop, &u->io);
        wsk_defer_start(u->loop, &u->free_defer);
        return;
    }
    free_now(u);
}
