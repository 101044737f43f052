#include "loop/sock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

#include "wsk/error.h"

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

static int listen_on(const struct sockaddr *addr, socklen_t addr_len, int backlog, bool reuse_port,
                     int *out_fd)
{
    int fd, rv, one = 1;

    fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* Lets a restarted server bind while old connections sit in TIME_WAIT. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) ||
        bind(fd, addr, addr_len) < 0 || listen(fd, backlog > 0 ? backlog : SOMAXCONN) < 0) {
        rv = -errno;
        close(fd);
        return rv;
    }
    *out_fd = fd;
    return 0;
}

int wsk__sock_listen(const char *host, const char *port, int backlog, bool reuse_port, int *out_fd)
{
    struct sockaddr_storage addr;
    socklen_t addr_len;
    int rv;

    rv = wsk__sock_addr(host, port, &addr, &addr_len);
    if (rv < 0)
        return rv;
    return listen_on((struct sockaddr *)&addr, addr_len, backlog, reuse_port, out_fd);
}

/* Errors that say this one address cannot be used on this machine (not one
 * of its addresses, or a family it lacks), so that another address of the
 * same name may do. Anything else (in use, no permission) would fail the
 * same way on the next address, or worse, silently listen elsewhere. */
static bool is_unusable_address(int err)
{
    return err == -EADDRNOTAVAIL || err == -EAFNOSUPPORT || err == -EPROTONOSUPPORT;
}

static int gai_to_error(int gai_error)
{
    if (gai_error == EAI_MEMORY)
        return -ENOMEM;
    if (gai_error == EAI_SYSTEM && errno != 0)
        return -errno;
    /* EAI_NONAME, EAI_NODATA, EAI_AGAIN, EAI_FAIL, EAI_ADDRFAMILY: the name
     * gave no address. */
    return WSK_EDNS;
}

int wsk__sock_listen_host(const char *host, const char *port, int backlog, bool reuse_port,
                          int *out_fd)
{
    struct sockaddr_storage addr;
    struct addrinfo hints, *res;
    socklen_t addr_len;
    in_port_t nport;
    int rv, first_error = 0;

    /* A bad port is the caller's mistake, not a name the resolver missed. */
    if (parse_port(port, &nport) < 0)
        return -EINVAL;
    if (wsk__sock_addr(host, port, &addr, &addr_len) == 0)
        return listen_on((struct sockaddr *)&addr, addr_len, backlog, reuse_port, out_fd);

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    errno = 0;
    rv = getaddrinfo(host, port ? port : "0", &hints, &res);
    if (rv != 0)
        return gai_to_error(rv);
    /* IPv4 addresses first, each family in the resolver's order: a name
     * with both families then behaves like "localhost" always has here
     * (127.0.0.1), and IPv4 is what every client can reach. */
    rv = -EADDRNOTAVAIL;
    for (int pass = 0; pass < 2; pass++) {
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
            if ((ai->ai_family == AF_INET) != (pass == 0))
                continue;
            rv = listen_on(ai->ai_addr, ai->ai_addrlen, backlog, reuse_port, out_fd);
            if (rv == 0 || !is_unusable_address(rv))
                goto done;
            if (!first_error)
                first_error = rv;
        }
    }
    rv = first_error ? first_error : rv;
done:
    freeaddrinfo(res);
    return rv;
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
