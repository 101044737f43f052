/* Small socket helpers for the layers above the loop (transport, ws, cli),
 * in the spirit of redis anet.c. Internal: not part of the public API.
 *
 * Every fd they create is non-blocking and close-on-exec. Every function
 * returns 0 (or a port number, for wsk__sock_local_port) on success and a
 * negative errno on failure. Hosts are numeric addresses only ("127.0.0.1",
 * "::1"), except for wsk__sock_listen_host(): listeners are made at startup,
 * where a blocking name lookup is acceptable. Connecting resolves names
 * without blocking the loop, in the layer that knows about DNS (ws/client.c).
 */
#ifndef WSK_LOOP_SOCK_H
#define WSK_LOOP_SOCK_H

#include <stdbool.h>
#include <sys/socket.h>

/* Fills *out with host (numeric IPv4 or IPv6; NULL means "0.0.0.0") and port
 * (decimal; NULL means 0). Returns 0 or -EINVAL. */
int wsk__sock_addr(const char *host, const char *port, struct sockaddr_storage *out,
                   socklen_t *out_len);

/* Creates a TCP listener with SO_REUSEADDR bound to host and port (see
 * wsk__sock_addr; port NULL picks a free one, see wsk__sock_local_port).
 * backlog <= 0 means SOMAXCONN. With reuse_port, SO_REUSEPORT too: several
 * listeners of the same user share the port and the kernel spreads new
 * connections over them. On success *out_fd is the listener. */
int wsk__sock_listen(const char *host, const char *port, int backlog, bool reuse_port, int *out_fd);

/* wsk__sock_listen(), but host may also be a name: numeric hosts are used
 * as they are, and anything else goes to getaddrinfo() (AI_PASSIVE), which
 * BLOCKS until the resolver answers. Of the name's addresses, IPv4 ones are
 * tried first, then the others, each family in the resolver's order; the
 * first that can be bound is the one listened on (only that one). An address
 * not on this machine (-EADDRNOTAVAIL) or of a family the system lacks is
 * skipped; any other error stops the search and is returned. Returns 0,
 * -EINVAL for a bad port, WSK_EDNS when the name has no address, -ENOMEM, or
 * the error of the first address tried when none could be used. */
int wsk__sock_listen_host(const char *host, const char *port, int backlog, bool reuse_port,
                          int *out_fd);

/* Returns the local port of a bound socket (1..65535), or a negative errno. */
int wsk__sock_local_port(int fd);

/* Accepts one connection into *out_fd. Returns -EAGAIN when none is waiting;
 * other errors (-ECONNABORTED, -EMFILE, ...) are the caller's to judge. */
int wsk__sock_accept(int listen_fd, int *out_fd);

/* Starts a TCP connect to addr. Returns 0 when connected at once, or
 * -EINPROGRESS: then watch *out_fd for WSK_IO_WRITE and call
 * wsk__sock_connect_finish(). In both cases the caller owns *out_fd. Any
 * other error leaves no fd behind. */
int wsk__sock_connect_start(const struct sockaddr *addr, socklen_t addr_len, int *out_fd);

/* Once the fd of a pending connect is writable: 0 when connected, or the
 * connect's error (-ECONNREFUSED, -ETIMEDOUT, ...). */
int wsk__sock_connect_finish(int fd);

/* Disables Nagle's algorithm (TCP_NODELAY). */
int wsk__sock_set_nodelay(int fd);

#endif
