/* hiredis's asynchronous API on the wsk loop.
 *
 * hiredis does no I/O waiting of its own: a redisAsyncContext asks its event
 * library to start or stop watching its socket for reading and writing
 * (ev.addRead, delRead, addWrite, delWrite) and says when it is done with
 * it (ev.cleanup); the event library calls redisAsyncHandleRead() and
 * redisAsyncHandleWrite() when the socket is ready. Here one wsk_io watcher
 * per context does both directions.
 *
 * hiredis may free the context, and call cleanup, from inside either
 * handler (an error, a disconnect). The watcher's memory must then outlive
 * the handler that is running, so cleanup only marks it, and the loop
 * callback frees it once hiredis has returned. */
#include <hiredis/async.h>
#include <errno.h>
#include <stdlib.h>

#include "redis_adapter.h"

struct redis_watch {
    struct wsk_io io;
    struct wsk_loop *loop;
    redisAsyncContext *ac;
    unsigned events;
    bool is_in_callback;
    bool is_cleaned_up; /* hiredis is done with it: free after the callback */
};

static void watch(struct redis_watch *w, unsigned events)
{
    if (events == w->events)
        return;
    w->events = events;
    /* A failure here (out of memory in the backend) leaves the context
     * without readiness; the link then looks hung, never unsafe. It cannot
     * happen for an fd already watched, the usual case. */
    if (wsk_io_start(w->loop, &w->io, events) < 0)
        w->events = w->io.events;
}

static void add_read(void *data)
{
    struct redis_watch *w = data;
    watch(w, w->events | WSK_IO_READ);
}

static void del_read(void *data)
{
    struct redis_watch *w = data;
    watch(w, w->events & ~(unsigned)WSK_IO_READ);
}

static void add_write(void *data)
{
    struct redis_watch *w = data;
    watch(w, w->events | WSK_IO_WRITE);
}

static void del_write(void *data)
{
    struct redis_watch *w = data;
    watch(w, w->events & ~(unsigned)WSK_IO_WRITE);
}

static void cleanup(void *data)
{
    struct redis_watch *w = data;
    wsk_io_stop(w->loop, &w->io);
    w->events = 0;
    w->ac = NULL;
    if (w->is_in_callback)
        w->is_cleaned_up = true;
    else
        free(w);
}

static void on_ready(struct wsk_loop *loop, struct wsk_io *io, unsigned events)
{
    struct redis_watch *w = io->data;

    (void)loop;
    w->is_in_callback = true;
    /* Write first: it finishes a connect, which a read must not see first. */
    if ((events & WSK_IO_WRITE) && w->ac)
        redisAsyncHandleWrite(w->ac);
    if ((events & WSK_IO_READ) && w->ac)
        redisAsyncHandleRead(w->ac);
    w->is_in_callback = false;
    if (w->is_cleaned_up)
        free(w);
}

int redis_adapter_attach(redisAsyncContext *ac, struct wsk_loop *loop)
{
    if (ac->ev.data)
        return -EBUSY;
    struct redis_watch *w = calloc(1, sizeof *w);
    if (!w)
        return -ENOMEM;
    w->loop = loop;
    w->ac = ac;
    wsk_io_init(&w->io, ac->c.fd, on_ready, w);
    ac->ev.data = w;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    return 0;
}
