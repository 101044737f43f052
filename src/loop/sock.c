#include "loop/sock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

static int parse_port(const char *port, in_port_t *out)
{
    unsigned long value = 0;

    if (!port) {
        *out = 0;
        return 0;
    }
    /* Digits only: strtoul would also take signs, spaces and "0x". */
    if (!*port || strlen(port) > 5)
        return -EINVAL;
    for (const char *p = port; *p; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        value = value * 10 + (unsigned long)(*p - '0');
    }
    if (value > 65535)
        return -EINVAL;
    *out = htons((in_port_t)value);
    return 0;
}

int wsk__sock_addr(const char *host, const char *port, struct sockaddr_storage *out,
                   socklen_t *out_len)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)out;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;
    in_port_t nport;

    if (parse_port(port, &nport) < 0)
        return -EINVAL;
    if (!host)
        host = "0.0.0.0";
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = nport;
        *out_len = sizeof *sin;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = nport;
        *out_len = sizeof *sin6;
        return 0;
    }
    return -EINVAL;
}

int wsk__sock_listen(const char *host, const char *port, int backlog, bool reuse_port, int *out_fd)
{
    struct sockaddr_storage addr;
    socklen_t addr_len;
    int fd, rv, one = 1;

    rv = wsk__sock_addr(host, port, &addr, &addr_len);
    if (rv < 0)
        return rv;
    fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* Lets a restarted server bind while old connections sit in TIME_WAIT. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) ||
        bind(fd, (struct sockaddr *)&addr, addr_len) < 0 ||
        listen(fd, backlog > 0 ? backlog : SOMAXCONN) < 0) {
        rv = -errno;
        close(fd);
        return rv;
    }
    *out_fd = fd;
    return 0;
}

int wsk__sock_local_port(int fd)
{
    struct sockaddr_storage addr;
    socklen_t addr_len = sizeof addr;

    if (getsockname(fd, (struct sockaddr *)&addr, &addr_len) < 0)
        return -errno;
    if (addr.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&addr)->sin_port);
    if (addr.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&addr)->sin6_port);
    return -EAFNOSUPPORT;
}

int wsk__sock_accept(int listen_fd, int *out_fd)
{
    int fd;

    do {
        fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    *out_fd = fd;
    return 0;
}

int wsk__sock_connect_start(const struct sockaddr *addr, socklen_t addr_len, int *out_fd)
{
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int rv;

    if (fd < 0)
        return -errno;
    if (connect(fd, addr, addr_len) == 0) {
        *out_fd = fd;
        return 0;
    }
    /* An interrupted non-blocking connect carries on in the background, so
     * EINTR is reported like EINPROGRESS. */
    if (errno == EINPROGRESS || errno == EINTR) {
        *out_fd = fd;
        return -EINPROGRESS;
    }
    rv = -errno;
    close(fd);
    return rv;
}

int wsk__sock_connect_finish(int fd)
{
    int err = 0;
    socklen_t len = sizeof err;

    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return -errno;
    return -err;
}

int wsk__sock_set_nodelay(int fd)
{
    int one = 1;

    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
        return -errno;
    return 0;
}
