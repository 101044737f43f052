/* The ceiling for echo benchmarks: a TCP echo server with no framing at all.
 *
 *   rawecho_bench PORT     listens on 127.0.0.1:PORT (0: any free port)
 *
 * Prints "listening on PORT" (the port bound) on stdout, then echoes every
 * byte on every connection until SIGTERM or SIGINT. A UDP socket on the same
 * port echoes each datagram to its sender (recvfrom and sendto, until
 * EAGAIN): the ceiling for `wsk serve --echo --listen udp://`. It does the least an echo
 * server on this machine can do: one level-triggered epoll, one read into a
 * shared 256 KiB buffer and one write back per readiness. What a socket does
 * not take waits in that connection's own buffer, and the connection is read
 * on while less than 1 MiB waits (as `wsk serve --echo` does with its default
 * --max-queue): stopping at the first short write would make the ceiling
 * stop-and-go and slower than the servers it is meant to bound.
 *
 * It does not speak WebSocket: `wsk bench --mode raw-echo tcp://127.0.0.1:PORT`
 * sends it the same masked frames it sends a WebSocket server, without the
 * opening handshake, and checks the frames that come back (masked, as sent). So
 * the difference between this and a WebSocket echo server is exactly the
 * server's WebSocket work: handshake aside, parsing, unmasking, validating,
 * framing and buffering.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_CHUNK  (256 * 1024)
#define MAX_PENDING (1024 * 1024)
#define MAX_EVENTS  256

struct conn {
    int fd;
    unsigned events;        /* what epoll watches now */
    unsigned char *pending; /* echoes the socket refused: pending[off..len) */
    size_t off;
    size_t len;
    size_t cap;
};

static int epfd;

static int watch(int op, int fd, unsigned events, void *ptr)
{
    struct epoll_event ev = {.events = events, .data.ptr = ptr};
    return epoll_ctl(epfd, op, fd, &ev);
}

static void conn_close(struct conn *c)
{
    close(c->fd); /* also leaves the epoll set */
    free(c->pending);
    free(c);
}

/* Sends what it can of data; returns the bytes sent, or -1 when the
 * connection broke. */
static ssize_t send_some(struct conn *c, const unsigned char *data, size_t len)
{
    size_t done = 0;

    while (done < len) {
        ssize_t n = send(c->fd, data + done, len - done, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                break;
            return -1;
        }
        done += (size_t)n;
    }
    return (ssize_t)done;
}

static int queue(struct conn *c, const unsigned char *data, size_t len)
{
    if (len == 0)
        return 0;
    if (c->off && c->cap - c->len < len) {
        memmove(c->pending, c->pending + c->off, c->len - c->off);
        c->len -= c->off;
        c->off = 0;
    }
    if (c->cap - c->len < len) {
        size_t cap = c->cap ? c->cap : 65536;
        while (cap - c->len < len)
            cap *= 2;
        unsigned char *p = realloc(c->pending, cap);
        if (!p)
            return -1;
        c->pending = p;
        c->cap = cap;
    }
    memcpy(c->pending + c->len, data, len);
    c->len += len;
    return 0;
}

static int flush(struct conn *c)
{
    ssize_t n = send_some(c, c->pending + c->off, c->len - c->off);

    if (n < 0)
        return -1;
    c->off += (size_t)n;
    if (c->off == c->len)
        c->off = c->len = 0;
    return 0;
}

static void on_event(struct conn *c, unsigned events, unsigned char *buf)
{
    if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && c->len > c->off && flush(c) < 0) {
        conn_close(c);
        return;
    }
    if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && c->len - c->off < MAX_PENDING) {
        ssize_t n = recv(c->fd, buf, READ_CHUNK, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            conn_close(c);
            return;
        }
        if (n > 0) {
            /* Echoes keep their order: behind whatever already waits. */
            ssize_t sent = c->len > c->off ? 0 : send_some(c, buf, (size_t)n);
            if (sent < 0 || queue(c, buf + sent, (size_t)(n - sent)) < 0) {
                conn_close(c);
                return;
            }
        }
    }
    /* Read while less than MAX_PENDING waits; wait for writability while
     * anything does. */
    size_t waiting = c->len - c->off;
    unsigned want = (waiting < MAX_PENDING ? EPOLLIN : 0) | (waiting ? EPOLLOUT : 0);
    if (want != c->events) {
        c->events = want;
        if (watch(EPOLL_CTL_MOD, c->fd, want, c) < 0)
            conn_close(c);
    }
}

int main(int argc, char **argv)
{
    struct sockaddr_in sin = {0};
    socklen_t sin_len = sizeof sin;
    int one = 1, lfd, sfd;
    sigset_t signals;
    static struct conn listener, signaller, udp; /* markers for epoll data */
    int ufd;
    unsigned char *buf;
    char *end;

    if (argc != 2) {
        fprintf(stderr, "usage: rawecho_bench PORT\n");
        return 2;
    }
    long port = strtol(argv[1], &end, 10);
    if (*end || port < 0 || port > 65535) {
        fprintf(stderr, "rawecho_bench: bad port '%s'\n", argv[1]);
        return 2;
    }
    buf = malloc(READ_CHUNK);
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (!buf || lfd < 0) {
        perror("rawecho_bench");
        return 1;
    }
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons((uint16_t)port);
    if (bind(lfd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(lfd, SOMAXCONN) < 0 ||
        getsockname(lfd, (struct sockaddr *)&sin, &sin_len) < 0) {
        perror("rawecho_bench: listen");
        return 1;
    }

    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    sigprocmask(SIG_BLOCK, &signals, NULL);
    sfd = signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (sfd < 0 || epfd < 0 || watch(EPOLL_CTL_ADD, lfd, EPOLLIN, &listener) < 0 ||
        watch(EPOLL_CTL_ADD, sfd, EPOLLIN, &signaller) < 0) {
        perror("rawecho_bench");
        return 1;
    }
    ufd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (ufd < 0 || bind(ufd, (struct sockaddr *)&sin, sizeof sin) < 0 ||
        watch(EPOLL_CTL_ADD, ufd, EPOLLIN, &udp) < 0) {
        perror("rawecho_bench: udp");
        return 1;
    }
    printf("listening on %u\n", (unsigned)ntohs(sin.sin_port));
    fflush(stdout);

    for (;;) {
        struct epoll_event events[MAX_EVENTS];
        int n = epoll_wait(epfd, events, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("rawecho_bench: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (c == &signaller)
                return 0;
            if (c == &udp) {
                struct sockaddr_storage from;
                socklen_t from_len = sizeof from;
                ssize_t r;
                while ((r = recvfrom(ufd, buf, READ_CHUNK, 0, (struct sockaddr *)&from,
                                     &from_len)) >= 0) {
                    (void)sendto(ufd, buf, (size_t)r, 0, (struct sockaddr *)&from, from_len);
                    from_len = sizeof from;
                }
                continue;
            }
            if (c == &listener) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    struct conn *nc = calloc(1, sizeof *nc);
                    if (!nc) {
                        close(fd);
                        continue;
                    }
                    nc->fd = fd;
                    nc->events = EPOLLIN;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    if (watch(EPOLL_CTL_ADD, fd, EPOLLIN, nc) < 0)
                        conn_close(nc);
                }
                continue;
            }
            on_event(c, events[i].events, buf);
        }
    }
}
