/* Private to src/loop: the interface between the loop core (loop.c) and the
 * readiness backends (backend_epoll.c, backend_poll.c, backend_select.c).
 *
 * The core owns time, timers, defers, signals and wake-ups, and decides how
 * long to block. A backend only knows which fds are watched for what: it
 * waits, then reports readiness by calling io->cb. Keeping the two apart is
 * what lets the backend be chosen at run time (compare redis ae.c, which
 * picks one ae_*.c at compile time).
 *
 * Rules every backend follows, so that callbacks may start and stop any
 * watcher at any time:
 *   - start() is called with io->index < 0 to add a watcher and with
 *     io->index >= 0 to change the events of a started one; io->events still
 *     holds the old events during the call. The backend owns io->index; the
 *     core sets io->events once start() succeeds, and clears it on stop.
 *   - After stop() returns, the backend holds no pointer to io: a callback may
 *     free the watcher, close its fd, and a new watcher may get the same fd
 *     number, all before dispatch() has finished with the current batch.
 *   - dispatch() never reports an event the watcher does not watch now
 *     (readiness is masked with io->events at the moment of the call).
 *   - Callers keep to one watcher per fd. epoll refuses a second (-EEXIST);
 *     poll and select accept it, but select's stop() would clear both.
 */
#ifndef WSK_LOOP_INTERNAL_H
#define WSK_LOOP_INTERNAL_H

#include "wsk/loop.h"

struct wsk__backend {
    const char *name;
    /* Allocates the backend's state into *out. Returns 0 or a negative errno. */
    int (*init)(void **out);
    void (*destroy)(void *state);
    /* Adds io or changes its events (events is never 0). Sets io->index. */
    int (*start)(void *state, struct wsk_io *io, unsigned events);
    /* Removes a started io. Sets io->index to -1. */
    void (*stop)(void *state, struct wsk_io *io);
    /* Blocks up to timeout_ms (-1: no limit) for readiness. Returns 0 (also
     * when interrupted by a signal) or a negative errno. */
    int (*wait)(void *state, int timeout_ms);
    /* Runs the callbacks for what the last wait() found. */
    void (*dispatch)(void *state, struct wsk_loop *loop);
};

extern const struct wsk__backend wsk__backend_epoll;
extern const struct wsk__backend wsk__backend_poll;
extern const struct wsk__backend wsk__backend_select;
extern const struct wsk__backend wsk__backend_uring;

/* The epoll backend's epoll fd, for the io_uring backend, which keeps its
 * watchers in an epoll set and polls that set's fd through the ring. */
int wsk__epoll_fd(void *epoll_state);

/* For the layers above: one receive buffer per loop, allocated on first use
 * and freed with the loop. Every connection on the loop reads into it and
 * hands its contents out before returning to the loop, so idle connections
 * hold no receive buffer. Not for keeping data across callbacks. Returns NULL
 * when out of memory. */
#define WSK__LOOP_SCRATCH (256u * 1024)
uint8_t *wsk__loop_scratch(struct wsk_loop *loop, size_t *len);

/* For tests: checks the timer heap (order and every heap_index). Returns 0
 * when it is consistent, -1 otherwise. O(n). */
int wsk__loop_check_timers(const struct wsk_loop *loop);

#endif
