/* select(2) backend: the portable baseline, limited to fds below FD_SETSIZE.
 *
 * FD_SET with a larger fd writes past the fd_set, so start() refuses such
 * fds with WSK_EFDSETSIZE before any fd_set is touched.
 *
 * The watched sets are kept up to date on start and stop and copied for each
 * select(). Watchers sit in a dense array, ios[io->index], so dispatch visits
 * only started watchers instead of every fd up to maxfd. Stops during
 * dispatch leave holes that are closed afterwards, and watchers started during
 * dispatch are appended past the slots select() saw, exactly as in the poll
 * backend; this matters more here, because a new watcher on a just-closed fd
 * number would otherwise find that number set in the ready sets.
 */
#include "loop/loop_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/select.h>

struct select_state {
    fd_set want_read;
    fd_set want_write;
    fd_set ready_read;
    fd_set ready_write;
    struct wsk_io **ios;
    size_t len;
    size_t cap;
    int maxfd;        /* highest watched fd, -1 when none */
    bool maxfd_stale; /* the highest was stopped; find the new one before waiting */
    int nready;
    bool is_dispatching;
    bool has_holes;
};

static int select_be_init(void **out)
{
    struct select_state *st = calloc(1, sizeof *st);

    if (!st)
        return -ENOMEM;
    FD_ZERO(&st->want_read);
    FD_ZERO(&st->want_write);
    st->maxfd = -1;
    *out = st;
    return 0;
}

static void select_be_destroy(void *state)
{
    struct select_state *st = state;

    free(st->ios);
    free(st);
}

static int select_be_start(void *state, struct wsk_io *io, unsigned events)
{
    struct select_state *st = state;

    if (io->fd >= FD_SETSIZE)
        return WSK_EFDSETSIZE;
    if (io->index < 0) {
        if (st->len == st->cap) {
            size_t cap = st->cap ? st->cap * 2 : 64;
            struct wsk_io **ios = realloc(st->ios, cap * sizeof *ios);
            if (!ios)
                return -ENOMEM;
            st->ios = ios;
            st->cap = cap;
        }
        st->ios[st->len] = io;
        io->index = (int)st->len++;
        if (io->fd > st->maxfd)
            st->maxfd = io->fd;
    }
    FD_CLR(io->fd, &st->want_read);
    FD_CLR(io->fd, &st->want_write);
    if (events & WSK_IO_READ)
        FD_SET(io->fd, &st->want_read);
    if (events & WSK_IO_WRITE)
        FD_SET(io->fd, &st->want_write);
    return 0;
}

static void remove_slot(struct select_state *st, size_t i)
{
    size_t last = --st->len;

    if (i != last) {
        st->ios[i] = st->ios[last];
        st->ios[i]->index = (int)i;
    }
}

static void select_be_stop(void *state, struct wsk_io *io)
{
    struct select_state *st = state;
    size_t i = (size_t)io->index;

    FD_CLR(io->fd, &st->want_read);
    FD_CLR(io->fd, &st->want_write);
    if (io->fd == st->maxfd)
        st->maxfd_stale = true;
    io->index = -1;
    if (st->is_dispatching) {
        st->ios[i] = NULL;
        st->has_holes = true;
        return;
    }
    remove_slot(st, i);
}

static int select_be_wait(void *state, int timeout_ms)
{
    struct select_state *st = state;
    struct timeval tv, *tvp = NULL;
    int n;

    if (st->maxfd_stale) {
        st->maxfd = -1;
        for (size_t i = 0; i < st->len; i++) {
            if (st->ios[i]->fd > st->maxfd)
                st->maxfd = st->ios[i]->fd;
        }
        st->maxfd_stale = false;
    }
    if (timeout_ms >= 0) {
        tv.tv_sec = timeout_ms / 1000;
        tv.tv_usec = (timeout_ms % 1000) * 1000;
        tvp = &tv;
    }
    st->ready_read = st->want_read;
    st->ready_write = st->want_write;
    n = select(st->maxfd + 1, &st->ready_read, &st->ready_write, NULL, tvp);
    if (n < 0) {
        st->nready = 0;
        return errno == EINTR ? 0 : -errno;
    }
    st->nready = n;
    return 0;
}

static void select_be_dispatch(void *state, struct wsk_loop *loop)
{
    struct select_state *st = state;
    size_t selected = st->len;

    if (st->nready == 0)
        return;
    st->is_dispatching = true;
    for (size_t i = 0; i < selected; i++) {
        struct wsk_io *io = st->ios[i];
        unsigned events = 0;

        if (!io)
            continue;
        /* select() reports errors and hang-ups as readable or writable. */
        if (FD_ISSET(io->fd, &st->ready_read))
            events |= WSK_IO_READ;
        if (FD_ISSET(io->fd, &st->ready_write))
            events |= WSK_IO_WRITE;
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

const struct wsk__backend wsk__backend_select = {
    .name = "select",
    .init = select_be_init,
    .destroy = select_be_destroy,
    .start = select_be_start,
    .stop = select_be_stop,
    .wait = select_be_wait,
    .dispatch = select_be_dispatch,
};
