/* Private to the library: a server's listening sockets and its accept loop,
 * shared by the WebSocket and the raw TCP servers.
 *
 * Accepts are bounded per readiness event so one busy listener cannot
 * starve established connections. When the process runs out of file
 * descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM), level-triggered
 * readiness would spin: listening stops for 100 ms and the episode is
 * logged once, through the owner's log callback.
 */
#ifndef WSK_TRANSPORT_LISTEN_H
#define WSK_TRANSPORT_LISTEN_H

#include <stdbool.h>
#include <stdint.h>

#include "wsk/loop.h"

#define WSK__MAX_LISTENERS 8

/* A new connection's fd (non-blocking, close-on-exec); the owner takes it. */
typedef void (*wsk__accept_cb)(void *data, int fd);
/* A line for the owner's log (level 1: warning). */
typedef void (*wsk__listen_log_cb)(void *data, const char *msg);

struct wsk__listener {
    struct wsk_io io;
    struct wsk__listeners *set;
};

struct wsk__listeners {
    struct wsk_loop *loop;
    wsk__accept_cb on_accept;
    wsk__listen_log_cb log;
    void *data;
    struct wsk__listener l[WSK__MAX_LISTENERS];
    size_t n;
    struct wsk_timer retry; /* after EMFILE: try accepting again later */
    bool paused;            /* in an EMFILE episode (logged once) */
    bool closed;
};

/* Sets up an empty set. Cannot fail. */
void wsk__listeners_init(struct wsk__listeners *set, struct wsk_loop *loop,
                         wsk__accept_cb on_accept, wsk__listen_log_cb log, void *data);

/* Listens on host ("localhost" means 127.0.0.1; "[v6]" brackets are
 * removed; other names are resolved now, blocking; NULL or "": 127.0.0.1)
 * and port (0: a free one). Returns 0, -ENOSPC past WSK__MAX_LISTENERS,
 * or wsk__sock_listen_host()'s errors, or the loop's. */
int wsk__listeners_add(struct wsk__listeners *set, const char *host, uint16_t port,
                       bool reuse_port);

/* The port of the first listener, 0 when none. */
uint16_t wsk__listeners_port(const struct wsk__listeners *set);

/* Stops and closes every listener. Cannot fail; may be called again. */
void wsk__listeners_close(struct wsk__listeners *set);

#endif
