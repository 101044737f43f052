/* The loop core. One iteration is
 *
 *     read clock -> expired timers -> wait (backend) -> read clock
 *                -> I/O callbacks (backend) -> deferred callbacks
 *
 * and it repeats while the loop is alive and wsk_loop_stop() has not been
 * called. Alive means a started user io watcher, an active timer, a pending
 * defer or a queued post. The loop's own watchers (the wake-up eventfd and
 * the signalfd) are not counted, so a loop with only those returns from
 * wsk_loop_run(); nor is a thread that may post later, which the loop cannot
 * know.
 *
 * The backend (epoll, poll or select; see loop_internal.h) only waits and
 * reports readiness. Time, timers, defers, signals, wake-ups and posts live
 * here.
 *
 * Timers are in timer.c; struct wsk_loop, which both files use, in
 * loop_core.h.
 *
 * The loop's clock is read at the top of each iteration and again when the
 * wait returns, so timers never start from a time before the loop blocked.
 */
#include "loop/loop_core.h"
#include "loop/loop_internal.h"
#include "loop/uring.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

/* A round of deferred callbacks runs every defer pending when it starts plus
 * at most this many queued by the callbacks themselves. Chains shorter than
 * that finish in the same round, as loop.h promises. A defer that re-queues
 * itself forever is cut off here; it runs again in the next iteration, whose
 * wait does not block while defers are pending, so timers and I/O still get
 * their turn instead of the loop spinning in one round. */
#define DEFER_CHAIN_LIMIT 1024

static bool is_alive(const struct wsk_loop *loop)
{
    return loop->active_ios > 0 || loop->heap_len > 0 || loop->defer_count > 0 ||
           atomic_load_explicit(&loop->posts_queued, memory_order_relaxed) > 0;
}

static bool is_internal(const struct wsk_loop *loop, const struct wsk_io *io)
{
    return io == &loop->wakeup_io || io == &loop->signal_io;
}

/* ---- Loop --------------------------------------------------------------- */

int wsk_backend_parse(const char *name, enum wsk_backend *out)
{
    static const struct {
        const char *name;
        enum wsk_backend backend;
    } names[] = {
        {"epoll", WSK_BACKEND_EPOLL},
        {"poll", WSK_BACKEND_POLL},
        {"select", WSK_BACKEND_SELECT},
        {"io_uring", WSK_BACKEND_IO_URING},
    };

    for (size_t i = 0; name && i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(name, names[i].name) == 0) {
            *out = names[i].backend;
            return 0;
        }
    }
    return -EINVAL;
}

void wsk_loop_config_init(struct wsk_loop_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
}

static void on_wakeup_fd(struct wsk_loop *loop, struct wsk_io *io, unsigned events);

int wsk_loop_new(struct wsk_loop **out, const struct wsk_loop_config *cfg)
{
    struct wsk_loop_config defaults;
    const struct wsk__backend *backend;
    struct wsk_loop *loop;
    int rv;

    *out = NULL;
    if (!cfg) {
        wsk_loop_config_init(&defaults);
        cfg = &defaults;
    }
    switch (cfg->backend) {
    case WSK_BACKEND_DEFAULT:
    case WSK_BACKEND_EPOLL:
        backend = &wsk__backend_epoll;
        break;
    case WSK_BACKEND_POLL:
        backend = &wsk__backend_poll;
        break;
    case WSK_BACKEND_SELECT:
        backend = &wsk__backend_select;
        break;
    case WSK_BACKEND_IO_URING:
        backend = &wsk__backend_uring;
        break;
    default:
        return -EINVAL;
    }

    loop = calloc(1, sizeof *loop);
    if (!loop)
        return -ENOMEM;
    rv = pthread_mutex_init(&loop->post_lock, NULL);
    if (rv != 0) {
        free(loop);
        return -rv;
    }
    atomic_init(&loop->is_wakeup_requested, false);
    loop->backend = backend;
    loop->wakeup_fd = -1;
    loop->signal_fd = -1;
    sigemptyset(&loop->signal_mask);
    sigemptyset(&loop->blocked_by_us);
    wsk_io_init(&loop->wakeup_io, -1, on_wakeup_fd, NULL);
    wsk_io_init(&loop->signal_io, -1, NULL, NULL);

    rv = backend->init(&loop->backend_state);
    if (rv < 0 && backend == &wsk__backend_uring) {
        /* ENOSYS (old kernel, no liburing), EPERM (seccomp, or
         * io_uring_disabled), ENOMEM (locked memory limit): epoll does the
         * same job with a system call per read and write. */
        loop->backend = backend = &wsk__backend_epoll;
        rv = backend->init(&loop->backend_state);
    }
    if (rv < 0)
        goto fail;
    /* Created up front rather than in wsk_loop_set_wakeup(): other threads
     * read wakeup_fd without a lock, so it must never change while they may. */
    loop->wakeup_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop->wakeup_fd < 0) {
        rv = -errno;
        goto fail;
    }
    loop->wakeup_io.fd = loop->wakeup_fd;
    rv = wsk_io_start(loop, &loop->wakeup_io, WSK_IO_READ);
    if (rv < 0)
        goto fail;

    wsk__loop_update_time(loop);
    *out = loop;
    return 0;

fail:
    wsk_loop_free(loop);
    return rv;
}

int wsk_loop_free(struct wsk_loop *loop)
{
    if (!loop)
        return 0;
    /* Freeing under live watchers, timers, defers or queued posts would
     * leave their owners pointing into freed memory (a server's listener) or
     * leak what a post holds (a DNS answer): refuse, as uv_loop_close()
     * does. A thread must not post to a loop it knows is being freed. */
    if (loop->is_running)
        return WSK_ESTATE; /* from a callback: wsk_loop_run() still uses it */
    if (is_alive(loop))
        return -EBUSY;
    /* A signal still pending gets its default action once unblocked: with no
     * loop left to handle it, that is what the process asked for. */
    pthread_sigmask(SIG_UNBLOCK, &loop->blocked_by_us, NULL);
    if (loop->backend_state) {
        wsk_io_stop(loop, &loop->signal_io);
        wsk_io_stop(loop, &loop->wakeup_io);
        loop->backend->destroy(loop->backend_state);
    }
    if (loop->signal_fd >= 0)
        close(loop->signal_fd);
    if (loop->wakeup_fd >= 0)
        close(loop->wakeup_fd);
    pthread_mutex_destroy(&loop->post_lock);
    free(loop->heap);
    free(loop->scratch);
    free(loop);
    return 0;
}

uint8_t *wsk__loop_scratch(struct wsk_loop *loop, size_t *len)
{
    if (!loop->scratch) {
        loop->scratch = malloc(WSK__LOOP_SCRATCH);
        if (!loop->scratch)
            return NULL;
        loop->scratch_len = WSK__LOOP_SCRATCH;
    }
    *len = loop->scratch_len;
    return loop->scratch;
}

uint64_t wsk_loop_now(const struct wsk_loop *loop)
{
    return loop->now;
}

struct wsk__uring *wsk__loop_uring(struct wsk_loop *loop)
{
    if (loop->backend != &wsk__backend_uring || !wsk__uring_ready(loop->backend_state))
        return NULL;
    return loop->backend_state;
}

void wsk__loop_ref(struct wsk_loop *loop, int delta)
{
    loop->active_ios += (size_t)(ptrdiff_t)delta;
}

const char *wsk_loop_backend_name(const struct wsk_loop *loop)
{
    return loop->backend->name;
}

/* A stop requested before wsk_loop_run() makes it return at once (as in
 * libuv); the flag is cleared on return so the loop can be run again. */
void wsk_loop_stop(struct wsk_loop *loop)
{
    loop->stop_flag = true;
}

static void run_defers(struct wsk_loop *loop);

static int wait_timeout(const struct wsk_loop *loop)
{
    uint64_t deadline;

    if (loop->stop_flag || loop->defer_head || !is_alive(loop))
        return 0;
    if (loop->heap_len == 0)
        return -1;
    deadline = loop->heap[0].timer->deadline;
    if (deadline <= loop->now)
        return 0;
    return deadline - loop->now > INT_MAX ? INT_MAX : (int)(deadline - loop->now);
}

int wsk_loop_run(struct wsk_loop *loop)
{
    int rv = 0;

    /* A nested run would dispatch inside a dispatch; no backend allows that. */
    if (loop->is_running)
        return WSK_ESTATE;
    loop->is_running = true;
    while (!loop->stop_flag && is_alive(loop)) {
        wsk__loop_update_time(loop);
        wsk__loop_run_timers(loop);
        rv = loop->backend->wait(loop->backend_state, wait_timeout(loop));
        if (rv < 0)
            break;
        /* Blocking took time: I/O callbacks and timers they start should
         * not see the clock from before the wait. */
        wsk__loop_update_time(loop);
        loop->backend->dispatch(loop->backend_state, loop);
        run_defers(loop);
    }
    loop->is_running = false;
    loop->stop_flag = false;
    return rv;
}

/* ---- I/O watchers --------------------------------------------------------- */

void wsk_io_init(struct wsk_io *io, int fd, wsk_io_cb cb, void *data)
{
    io->fd = fd;
    io->events = 0;
    io->cb = cb;
    io->data = data;
    io->index = -1;
}

int wsk_io_start(struct wsk_loop *loop, struct wsk_io *io, unsigned events)
{
    bool was_started = io->index >= 0;
    int rv;

    if (events & ~(unsigned)(WSK_IO_READ | WSK_IO_WRITE))
        return -EINVAL;
    if (events == 0) {
        wsk_io_stop(loop, io);
        return 0;
    }
    if (io->fd < 0)
        return -EBADF;
    if (was_started && io->events == events)
        return 0;
    rv = loop->backend->start(loop->backend_state, io, events);
    if (rv < 0)
        return rv;
    io->events = events;
    if (!was_started && !is_internal(loop, io))
        loop->active_ios++;
    return 0;
}

void wsk_io_stop(struct wsk_loop *loop, struct wsk_io *io)
{
    if (io->index < 0)
        return;
    loop->backend->stop(loop->backend_state, io);
    io->index = -1;
    io->events = 0;
    if (!is_internal(loop, io))
        loop->active_ios--;
}

/* ---- Deferred callbacks ------------------------------------------------- */

void wsk_defer_init(struct wsk_defer *d, wsk_defer_cb cb, void *data)
{
    d->cb = cb;
    d->data = data;
    d->next = NULL;
    d->is_pending = false;
}

void wsk_defer_start(struct wsk_loop *loop, struct wsk_defer *d)
{
    if (d->is_pending)
        return;
    d->is_pending = true;
    d->next = NULL;
    if (loop->defer_tail)
        loop->defer_tail->next = d;
    else
        loop->defer_head = d;
    loop->defer_tail = d;
    loop->defer_count++;
}

/* The queue is singly linked, so cancelling walks it. Queuing and running
 * are the hot operations, and both are O(1). */
void wsk_defer_cancel(struct wsk_loop *loop, struct wsk_defer *d)
{
    struct wsk_defer **link = &loop->defer_head;
    struct wsk_defer *prev = NULL;

    if (!d->is_pending)
        return;
    while (*link && *link != d) {
        prev = *link;
        link = &prev->next;
    }
    if (!*link)
        return;
    *link = d->next;
    if (loop->defer_tail == d)
        loop->defer_tail = prev;
    d->next = NULL;
    d->is_pending = false;
    loop->defer_count--;
}

static void run_defers(struct wsk_loop *loop)
{
    size_t budget = loop->defer_count + DEFER_CHAIN_LIMIT;

    while (loop->defer_head && budget-- > 0) {
        struct wsk_defer *d = loop->defer_head;

        loop->defer_head = d->next;
        if (!loop->defer_head)
            loop->defer_tail = NULL;
        d->next = NULL;
        d->is_pending = false;
        loop->defer_count--;
        d->cb(loop, d);
    }
}

/* ---- Signals ------------------------------------------------------------ */

static void on_signal_fd(struct wsk_loop *loop, struct wsk_io *io, unsigned events)
{
    struct signalfd_siginfo info[8];

    (void)events;
    for (;;) {
        ssize_t n = read(io->fd, info, sizeof info);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        for (size_t i = 0; i < (size_t)n / sizeof info[0]; i++) {
            uint32_t signo = info[i].ssi_signo;
            /* Look the handler up each time: a callback may remove one. */
            if (signo < NSIG && loop->signals[signo].cb)
                loop->signals[signo].cb(loop, (int)signo, loop->signals[signo].data);
        }
        if ((size_t)n < sizeof info)
            return;
    }
}

/* Points the signalfd at mask, creating it (and its watcher) the first time. */
static int set_signal_mask(struct wsk_loop *loop, const sigset_t *mask)
{
    int fd = signalfd(loop->signal_fd, mask, SFD_NONBLOCK | SFD_CLOEXEC);
    int rv;

    if (fd < 0)
        return -errno;
    if (loop->signal_fd < 0) {
        wsk_io_init(&loop->signal_io, fd, on_signal_fd, NULL);
        rv = wsk_io_start(loop, &loop->signal_io, WSK_IO_READ);
        if (rv < 0) {
            close(fd);
            return rv;
        }
        loop->signal_fd = fd;
    }
    return 0;
}

static int remove_signal(struct wsk_loop *loop, int signo, const sigset_t *one)
{
    sigset_t mask = loop->signal_mask;
    int rv;

    if (!sigismember(&loop->signal_mask, signo))
        return 0;
    sigdelset(&mask, signo);
    rv = set_signal_mask(loop, &mask);
    if (rv < 0)
        return rv;
    loop->signal_mask = mask;
    loop->signals[signo].cb = NULL;
    loop->signals[signo].data = NULL;
    if (sigismember(&loop->blocked_by_us, signo)) {
        sigdelset(&loop->blocked_by_us, signo);
        pthread_sigmask(SIG_UNBLOCK, one, NULL);
    }
    return 0;
}

int wsk_loop_signal(struct wsk_loop *loop, int signo, wsk_signal_cb cb, void *data)
{
    sigset_t one, old, mask;
    int rv;

    if (signo <= 0 || signo >= NSIG || signo == SIGKILL || signo == SIGSTOP)
        return -EINVAL;
    sigemptyset(&one);
    if (sigaddset(&one, signo) < 0) /* glibc refuses the signals it uses itself */
        return -EINVAL;
    if (!cb)
        return remove_signal(loop, signo, &one);

    if (!sigismember(&loop->signal_mask, signo)) {
        /* Block before pointing the signalfd at it: one arriving in between
         * then stays pending and is read, instead of taking its default
         * action. */
        rv = pthread_sigmask(SIG_BLOCK, &one, &old);
        if (rv != 0)
            return -rv;
        mask = loop->signal_mask;
        sigaddset(&mask, signo);
        rv = set_signal_mask(loop, &mask);
        if (rv < 0) {
            if (!sigismember(&old, signo))
                pthread_sigmask(SIG_UNBLOCK, &one, NULL);
            return rv;
        }
        loop->signal_mask = mask;
        if (!sigismember(&old, signo))
            sigaddset(&loop->blocked_by_us, signo);
    }
    loop->signals[signo].cb = cb;
    loop->signals[signo].data = data;
    return 0;
}

/* ---- Cross-thread wake-up and posts ------------------------------------ */

/* Each wsk_loop_wakeup() and wsk_loop_post() sets its state first and writes
 * the eventfd second; this reads the eventfd first and looks at the state
 * second. So whatever was requested before the read is seen now, and whatever
 * comes after it leaves the eventfd readable for the next iteration. */
static void on_wakeup_fd(struct wsk_loop *loop, struct wsk_io *io, unsigned events)
{
    struct wsk_post *p, *next;
    uint64_t count;

    (void)events;
    /* One read clears the counter: all wake-ups so far become one callback. */
    while (read(io->fd, &count, sizeof count) < 0 && errno == EINTR) {
    }

    /* Take the whole queue, so posts made by these callbacks wait for the
     * next iteration instead of growing this one without end. */
    pthread_mutex_lock(&loop->post_lock);
    p = loop->post_head;
    loop->post_head = loop->post_tail = NULL;
    pthread_mutex_unlock(&loop->post_lock);
    for (; p; p = next) {
        next = p->next; /* the callback may free or re-post p */
        p->next = NULL;
        atomic_fetch_sub_explicit(&loop->posts_queued, 1, memory_order_relaxed);
        p->cb(loop, p);
    }

    if (atomic_exchange(&loop->is_wakeup_requested, false) && loop->wakeup_cb)
        loop->wakeup_cb(loop, loop->wakeup_data);
}

int wsk_loop_set_wakeup(struct wsk_loop *loop, wsk_wakeup_cb cb, void *data)
{
    loop->wakeup_cb = cb;
    loop->wakeup_data = data;
    return 0;
}

/* Only write(2): it is async-signal-safe, and the eventfd keeps the count, so
 * no lock is needed. EAGAIN means the counter is saturated, so a wake-up is
 * already due. errno is preserved for the signal handlers that call this. */
static void poke(struct wsk_loop *loop)
{
    int saved_errno = errno;
    uint64_t one = 1;

    while (write(loop->wakeup_fd, &one, sizeof one) < 0 && errno == EINTR) {
    }
    errno = saved_errno;
}

/* A lock-free atomic store and write(2): both are async-signal-safe. */
void wsk_loop_wakeup(struct wsk_loop *loop)
{
    atomic_store(&loop->is_wakeup_requested, true);
    poke(loop);
}

/* A mutex rather than a lock-free list: posts are rare (a DNS answer, a job
 * from a worker thread), and a plain FIFO under a lock is easy to trust. */
void wsk_loop_post(struct wsk_loop *loop, struct wsk_post *p)
{
    p->next = NULL;
    pthread_mutex_lock(&loop->post_lock);
    if (loop->post_tail)
        loop->post_tail->next = p;
    else
        loop->post_head = p;
    loop->post_tail = p;
    atomic_fetch_add_explicit(&loop->posts_queued, 1, memory_order_relaxed);
    pthread_mutex_unlock(&loop->post_lock);
    poke(loop);
}
