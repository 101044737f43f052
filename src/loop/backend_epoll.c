/* epoll backend, level-triggered.
 *
 * Level-triggered because callers may leave data unread (a paused reader, a
 * read budget per iteration): edge-triggered would never report it again.
 *
 * Stale events. One epoll_wait() returns a batch, and the callback for event
 * i may stop the watcher of a later event j, free it, close its fd, and start
 * a new watcher on the same fd number, even in the same struct. Each event
 * carries its watcher's pointer, so stop() clears that pointer in the batch
 * and dispatch() skips cleared events (libuv does the same in
 * uv__platform_invalidate_fd). A watcher restarted after the stop gets no
 * event from this batch; level triggering reports it in the next one. An event
 * for a watcher that only changed what it watches is masked with io->events,
 * as redis ae.c masks with fe->mask, so a watcher switched to write-only does
 * not see the read readiness found before the switch.
 */
#include "loop/loop_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#define MAX_EVENTS 256

struct epoll_state {
    int epfd;
    int nready; /* events[0..nready) await dispatch */
    struct epoll_event events[MAX_EVENTS];
};

static int epoll_be_init(void **out)
{
    struct epoll_state *st = malloc(sizeof *st);

    if (!st)
        return -ENOMEM;
    st->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (st->epfd < 0) {
        int rv = -errno;
        free(st);
        return rv;
    }
    st->nready = 0;
    *out = st;
    return 0;
}

static void epoll_be_destroy(void *state)
{
    struct epoll_state *st = state;

    close(st->epfd);
    free(st);
}

static int epoll_be_start(void *state, struct wsk_io *io, unsigned events)
{
    struct epoll_state *st = state;
    struct epoll_event ev = {.events = 0, .data.ptr = io};

    /* No EPOLLRDHUP: with level triggering a peer's shutdown already shows as
     * EPOLLIN, and the read that returns 0 tells the caller. */
    if (events & WSK_IO_READ)
        ev.events |= EPOLLIN;
    if (events & WSK_IO_WRITE)
        ev.events |= EPOLLOUT;
    if (epoll_ctl(st->epfd, io->index < 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, io->fd, &ev) < 0)
        return -errno;
    io->index = 0; /* the kernel keeps the table; 0 only means "started" */
    return 0;
}

static void epoll_be_stop(void *state, struct wsk_io *io)
{
    struct epoll_state *st = state;

    /* Failure means the fd was closed first; the kernel then forgot it. */
    (void)epoll_ctl(st->epfd, EPOLL_CTL_DEL, io->fd, NULL);
    for (int i = 0; i < st->nready; i++) {
        if (st->events[i].data.ptr == io)
            st->events[i].data.ptr = NULL;
    }
    io->index = -1;
}

static int epoll_be_wait(void *state, int timeout_ms)
{
    struct epoll_state *st = state;
    int n = epoll_wait(st->epfd, st->events, MAX_EVENTS, timeout_ms);

    if (n < 0) {
        st->nready = 0;
        return errno == EINTR ? 0 : -errno;
    }
    st->nready = n;
    return 0;
}

static void epoll_be_dispatch(void *state, struct wsk_loop *loop)
{
    struct epoll_state *st = state;

    for (int i = 0; i < st->nready; i++) {
        struct wsk_io *io = st->events[i].data.ptr;
        uint32_t got = st->events[i].events;
        unsigned events = 0;

        if (!io)
            continue;
        if (got & EPOLLIN)
            events |= WSK_IO_READ;
        if (got & EPOLLOUT)
            events |= WSK_IO_WRITE;
        /* Errors and hang-ups wake whatever is watched; the next read or
         * write returns the error. */
        if (got & (EPOLLERR | EPOLLHUP))
            events |= io->events;
        events &= io->events;
        if (events)
            io->cb(loop, io, events);
    }
    st->nready = 0;
}

int wsk__epoll_fd(void *state)
{
    return ((struct epoll_state *)state)->epfd;
}

const struct wsk__backend wsk__backend_epoll = {
    .name = "epoll",
    .init = epoll_be_init,
    .destroy = epoll_be_destroy,
    .start = epoll_be_start,
    .stop = epoll_be_stop,
    .wait = epoll_be_wait,
    .dispatch = epoll_be_dispatch,
};
