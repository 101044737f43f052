/* poll(2) backend.
 *
 * fds[] is handed to poll() as it is; ios[i] is the watcher of fds[i], and
 * io->index is i. Removing a watcher moves the last slot into its place, so
 * the arrays stay dense without a free list.
 *
 * During dispatch that move is unsafe: a watcher not yet dispatched could
 * land in a slot already passed and lose its event. So a stop during dispatch
 * leaves a hole (ios[i] NULL, fds[i].fd -1) and the holes are closed after the
 * batch, as libuv's posix-poll.c does. Watchers started during dispatch are
 * appended past the slots poll() saw, so they get no event from this batch,
 * even when they reuse the fd number of a watcher just stopped.
 */
#include "loop/loop_internal.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>

struct poll_state {
    struct pollfd *fds;
    struct wsk_io **ios;
    size_t len;
    size_t cap;
    int nready;
    bool is_dispatching;
    bool has_holes;
};

static int poll_be_init(void **out)
{
    struct poll_state *st = calloc(1, sizeof *st);

    if (!st)
        return -ENOMEM;
    *out = st;
    return 0;
}

static void poll_be_destroy(void *state)
{
    struct poll_state *st = state;

    free(st->fds);
    free(st->ios);
    free(st);
}

static int grow(struct poll_state *st)
{
    size_t cap = st->cap ? st->cap * 2 : 64;
    struct pollfd *fds;
    struct wsk_io **ios;

    if (cap > (size_t)INT32_MAX)
        return -ENOMEM;
    fds = realloc(st->fds, cap * sizeof *fds);
    if (!fds)
        return -ENOMEM;
    st->fds = fds;
    ios = realloc(st->ios, cap * sizeof *ios);
    if (!ios)
        return -ENOMEM;
    st->ios = ios;
    st->cap = cap;
    return 0;
}

static int poll_be_start(void *state, struct wsk_io *io, unsigned events)
{
    struct poll_state *st = state;
    short wanted = 0;

    if (events & WSK_IO_READ)
        wanted |= POLLIN;
    if (events & WSK_IO_WRITE)
        wanted |= POLLOUT;
    if (io->index >= 0) {
        st->fds[io->index].events = wanted;
        return 0;
    }
    if (st->len == st->cap && grow(st) < 0)
        return -ENOMEM;
    st->fds[st->len] = (struct pollfd){.fd = io->fd, .events = wanted, .revents = 0};
    st->ios[st->len] = io;
    io->index = (int)st->len++;
    return 0;
}

static void remove_slot(struct poll_state *st, size_t i)
{
    size_t last = --st->len;

    if (i != last) {
        st->fds[i] = st->fds[last];
        st->ios[i] = st->ios[last];
        st->ios[i]->index = (int)i;
    }
}

static void poll_be_stop(void *state, struct wsk_io *io)
{
    struct poll_state *st = state;
    size_t i = (size_t)io->index;

    io->index = -1;
    if (st->is_dispatching) {
        st->ios[i] = NULL;
        st->fds[i] = (struct pollfd){.fd = -1, .events = 0, .revents = 0};
        st->has_holes = true;
        return;
    }
    remove_slot(st, i);
}

static int poll_be_wait(void *state, int timeout_ms)
{
    struct poll_state *st = state;
    int n = poll(st->fds, (nfds_t)st->len, timeout_ms);

    if (n < 0) {
        st->nready = 0;
        return errno == EINTR ? 0 : -errno;
    }
    st->nready = n;
    return 0;
}

static void poll_be_dispatch(void *state, struct wsk_loop *loop)
{
    struct poll_state *st = state;
    size_t polled = st->len;

    if (st->nready == 0)
        return;
    st->is_dispatching = true;
    for (size_t i = 0; i < polled; i++) {
        struct wsk_io *io = st->ios[i];
        short got = st->fds[i].revents;
        unsigned events = 0;

        if (!io || !got)
            continue;
        if (got & POLLIN)
            events |= WSK_IO_READ;
        if (got & POLLOUT)
            events |= WSK_IO_WRITE;
        /* Errors and hang-ups wake whatever is watched; the next read or
         * write returns the error. */
        if (got & (POLLERR | POLLHUP | POLLNVAL))
            events |= io->events;
        events &= io->events;
        if (events)
            io->cb(loop, io, events);
    }
    st->is_dispatching = false;
    st->nready = 0;

    /* Backwards, so the last slot moved into a hole is never a hole itself. */
    if (st->has_holes) {
        for (size_t i = st->len; i-- > 0;) {
            if (!st->ios[i])
                remove_slot(st, i);
        }
        st->has_holes = false;
    }
}

const struct wsk__backend wsk__backend_poll = {
    .name = "poll",
    .init = poll_be_init,
    .destroy = poll_be_destroy,
    .start = poll_be_start,
    .stop = poll_be_stop,
    .wait = poll_be_wait,
    .dispatch = poll_be_dispatch,
};
