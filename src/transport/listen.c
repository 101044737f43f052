/* Listening sockets and the accept loop; see listen.h. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "loop/sock.h"
#include "transport/listen.h"
#include "wsk/error.h"

static void say(struct wsk__listeners *set, const char *what, const char *more)
{
    if (!set->log)
        return;
    char msg[256];
    snprintf(msg, sizeof msg, "accept: %s%s", what, more);
    set->log(set->data, msg);
}

static void listener_cb(struct wsk_loop *loop, struct wsk_io *io, unsigned events)
{
    (void)events;
    struct wsk__listener *l = io->data;
    struct wsk__listeners *set = l->set;
    for (int i = 0; i < 64 && !set->closed; i++) {
        int fd;
        int rv = wsk__sock_accept(io->fd, &fd);
        if (rv == -EAGAIN || rv == -ECONNABORTED || rv == -EINTR)
            return;
        if (rv == -EMFILE || rv == -ENFILE || rv == -ENOBUFS || rv == -ENOMEM) {
            if (!set->paused)
                say(set, wsk_strerror(rv), "; pausing accepts until it passes");
            set->paused = true;
            for (size_t j = 0; j < set->n; j++)
                wsk_io_stop(loop, &set->l[j].io);
            wsk_timer_start(loop, &set->retry, 100, 0);
            return;
        }
        if (rv < 0) {
            say(set, wsk_strerror(rv), "");
            return;
        }
        if (set->paused) {
            set->paused = false;
            say(set, "accepting again", "");
        }
        set->on_accept(set->data, fd);
    }
}

static void retry_cb(struct wsk_loop *loop, struct wsk_timer *t)
{
    struct wsk__listeners *set = t->data;
    if (set->closed)
        return;
    for (size_t j = 0; j < set->n; j++)
        if (set->l[j].io.fd >= 0)
            wsk_io_start(loop, &set->l[j].io, WSK_IO_READ);
}

void wsk__listeners_init(struct wsk__listeners *set, struct wsk_loop *loop,
                         wsk__accept_cb on_accept, wsk__listen_log_cb log, void *data)
{
    memset(set, 0, sizeof *set);
    set->loop = loop;
    set->on_accept = on_accept;
    set->log = log;
    set->data = data;
    wsk_timer_init(&set->retry, retry_cb, set);
}

int wsk__listeners_add(struct wsk__listeners *set, const char *host, uint16_t port, bool reuse_port)
{
    if (set->n == WSK__MAX_LISTENERS)
        return -ENOSPC;
    char hostbuf[64];
    if (!host || !*host)
        host = "127.0.0.1";
    /* Loopback by definition (RFC 6761), so no lookup, and IPv4. */
    if (!strcmp(host, "localhost"))
        host = "127.0.0.1";
    size_t hl = strlen(host);
    if (host[0] == '[' && hl >= 2 && host[hl - 1] == ']' && hl - 2 < sizeof hostbuf) {
        memcpy(hostbuf, host + 1, hl - 2);
        hostbuf[hl - 2] = 0;
        host = hostbuf;
    }
    char portbuf[8];
    snprintf(portbuf, sizeof portbuf, "%u", (unsigned)port);
    int fd;
    int rv = wsk__sock_listen_host(host, portbuf, 0, reuse_port, &fd);
    if (rv < 0)
        return rv;
    /* Linux copies TCP_NODELAY to accepted sockets. */
    wsk__sock_set_nodelay(fd);
    struct wsk__listener *l = &set->l[set->n];
    l->set = set;
    wsk_io_init(&l->io, fd, listener_cb, l);
    rv = wsk_io_start(set->loop, &l->io, WSK_IO_READ);
    if (rv < 0) {
        close(fd);
        return rv;
    }
    set->n++;
    set->closed = false;
    return 0;
}

uint16_t wsk__listeners_port(const struct wsk__listeners *set)
{
    for (size_t i = 0; i < set->n; i++) {
        int p = wsk__sock_local_port(set->l[i].io.fd);
        if (p > 0)
            return (uint16_t)p;
    }
    return 0;
}

void wsk__listeners_close(struct wsk__listeners *set)
{
    for (size_t i = 0; i < set->n; i++) {
        struct wsk__listener *l = &set->l[i];
        if (l->io.fd >= 0) {
            wsk_io_stop(set->loop, &l->io);
            close(l->io.fd);
            l->io.fd = -1;
        }
    }
    set->closed = true;
    if (set->loop)
        wsk_timer_stop(set->loop, &set->retry);
}
