/* wsk event loop: readiness, timers, deferred work, signals, cross-thread
 * wake-ups. It knows nothing of WebSocket.
 *
 * One loop per thread. Watchers (struct wsk_io, wsk_timer, wsk_defer) live in
 * the caller's memory, usually embedded in a bigger object, and must stay put
 * while started. Only wsk_loop_wakeup() and wsk_loop_post() may be called
 * from another thread; everything else belongs to the loop's thread.
 */
#ifndef WSK_LOOP_H
#define WSK_LOOP_H

#include "wsk/common.h"
#include "wsk/error.h"

#ifdef __cplusplus
extern "C" {
#endif

struct wsk_loop;

enum wsk_backend {
    WSK_BACKEND_DEFAULT = 0, /* epoll */
    WSK_BACKEND_EPOLL,
    WSK_BACKEND_POLL,
    WSK_BACKEND_SELECT,
    /* Completion I/O for plain streams (multishot receives into provided
     * buffers, sends batched into the wait), readiness through epoll for
     * the rest. Falls back to epoll when the kernel, a seccomp policy or a
     * build without liburing refuses it: wsk_loop_backend_name() tells. */
    WSK_BACKEND_IO_URING,
};

/* Parses "epoll", "poll", "select" or "io_uring" (case-sensitive) into *out. Returns 0,
 * or -EINVAL for anything else, NULL included; *out is then left as it was. */
WSK_API int wsk_backend_parse(const char *name, enum wsk_backend *out);

struct wsk_loop_config {
    enum wsk_backend backend;
};

/* Fills cfg with the defaults (all zero: the epoll backend). Cannot fail. */
WSK_API void wsk_loop_config_init(struct wsk_loop_config *cfg);

/* Creates a loop. cfg may be NULL for defaults and is not kept. Returns 0 and
 * sets *out, which the caller frees with wsk_loop_free(); or sets *out to NULL
 * and returns -EINVAL (unknown backend), -ENOMEM, or the errno of the failed
 * system call (epoll_create1(), eventfd(): -EMFILE, -ENFILE, ...). */
WSK_API int wsk_loop_new(struct wsk_loop **out, const struct wsk_loop_config *cfg);

/* Frees the loop. Returns 0 (also for NULL), or -EBUSY and frees nothing
 * while anything still uses it: a started io watcher, an active timer, a
 * pending defer or a queued post (run the loop: it runs them), and
 * WSK_ESTATE when called from inside one of the loop's own callbacks. No
 * thread may post to the loop once this returned 0. Free what lives on a
 * loop first (servers with wsk_server_free(), client connections by closing
 * them and running the loop until wsk_loop_run() returns), then the loop.
 * Signal watchers and the wake-up callback belong to the loop and go with
 * it. */
WSK_API int wsk_loop_free(struct wsk_loop *loop);

/* Runs until wsk_loop_stop() is called or nothing is left (no started io
 * watcher, active timer, pending defer or queued post; signal watchers and
 * the wake-up callback do not count, nor does a thread that may post
 * later). A stop requested before the call makes it
 * return at once. Returns 0, WSK_ESTATE when called from inside a callback of
 * the same loop, or a negative errno when the backend fails. */
WSK_API int wsk_loop_run(struct wsk_loop *loop);

/* Makes wsk_loop_run() return after the current iteration, or at once on its
 * next call when the loop is not running. Loop thread only: use
 * wsk_loop_post() or the wake-up callback to stop a loop from elsewhere. */
WSK_API void wsk_loop_stop(struct wsk_loop *loop);

/* Monotonic milliseconds, refreshed at the start of each iteration, when
 * the loop wakes from waiting, and by wsk_timer_start() outside
 * wsk_loop_run(). */
WSK_API uint64_t wsk_loop_now(const struct wsk_loop *loop);

/* "epoll", "poll", "select" or "io_uring" (the backend in use, after any
 * fallback): a static string, never NULL. */
WSK_API const char *wsk_loop_backend_name(const struct wsk_loop *loop);

/* ---- I/O readiness ---------------------------------------------------- */

enum {
    WSK_IO_READ = 1,
    WSK_IO_WRITE = 2,
};

struct wsk_io;
/* events: WSK_IO_READ and/or WSK_IO_WRITE. Errors and hang-ups are reported
 * as readiness for what the watcher asked, so the next read or write returns
 * the error. */
typedef void (*wsk_io_cb)(struct wsk_loop *loop, struct wsk_io *io, unsigned events);

struct wsk_io {
    int fd;
    unsigned events; /* what is being watched now; read-only for users */
    wsk_io_cb cb;
    void *data;
    int index; /* backend's private slot, -1 when stopped */
};

/* Prepares a stopped watcher for fd, in the caller's memory. Cannot fail.
 * The fd stays the caller's: the loop never closes it. */
WSK_API void wsk_io_init(struct wsk_io *io, int fd, wsk_io_cb cb, void *data);

/* Starts watching io->fd for events, or changes what is watched when already
 * started. events 0 is the same as wsk_io_stop(). One watcher per fd.
 * Returns 0; -EINVAL (unknown event bits), -EBADF (fd < 0, or with epoll a
 * closed fd), -ENOMEM, -EEXIST (epoll: a second watcher on one fd), -EPERM
 * (epoll: a regular file), another errno from epoll_ctl() (-ENOSPC past the
 * user's watch limit), or WSK_EFDSETSIZE (select backend, fd >= FD_SETSIZE).
 * On failure the watcher keeps its previous state. io must stay in place
 * until stopped. */
WSK_API int wsk_io_start(struct wsk_loop *loop, struct wsk_io *io, unsigned events);

/* Stops watching. Safe to call when stopped and from inside any callback;
 * the callback will not run again for this watcher in the current iteration.
 * Stop the watcher before closing its fd. */
WSK_API void wsk_io_stop(struct wsk_loop *loop, struct wsk_io *io);

/* ---- Timers (binary heap: O(log n) start and stop) --------------------- */

struct wsk_timer;
typedef void (*wsk_timer_cb)(struct wsk_loop *loop, struct wsk_timer *timer);

struct wsk_timer {
    uint64_t deadline;
    uint64_t repeat;
    wsk_timer_cb cb;
    void *data;
    size_t heap_index; /* SIZE_MAX when not started */
};

/* Prepares a stopped timer in the caller's memory. Cannot fail. */
WSK_API void wsk_timer_init(struct wsk_timer *t, wsk_timer_cb cb, void *data);

/* Fires after timeout_ms, then every repeat_ms when repeat_ms > 0. Restarts
 * a started timer. A timer started from a timer callback, even with 0 ms,
 * fires in the next iteration at the earliest. Returns 0, or -ENOMEM (only
 * for a timer that was not started; it then stays stopped). t must stay in
 * place until stopped or fired. */
WSK_API int wsk_timer_start(struct wsk_loop *loop, struct wsk_timer *t, uint64_t timeout_ms,
                            uint64_t repeat_ms);

/* Stops t. Safe when it is not started and from inside any callback. */
WSK_API void wsk_timer_stop(struct wsk_loop *loop, struct wsk_timer *t);

/* True while t is started: a one-shot timer is no longer active once its
 * callback runs, a repeating one stays active. */
WSK_API bool wsk_timer_is_active(const struct wsk_timer *t);

/* ---- Deferred callbacks ------------------------------------------------ */

struct wsk_defer;
typedef void (*wsk_defer_cb)(struct wsk_loop *loop, struct wsk_defer *d);

struct wsk_defer {
    wsk_defer_cb cb;
    void *data;
    struct wsk_defer *next;
    bool is_pending;
};

/* Prepares an idle defer in the caller's memory. Cannot fail. */
WSK_API void wsk_defer_init(struct wsk_defer *d, wsk_defer_cb cb, void *data);

/* Runs d->cb once, after the I/O callbacks of the current iteration (or at
 * the start of the next one), before the loop blocks again. Calling it again
 * while pending does nothing. A defer queued from a defer callback runs in the
 * same round, up to 1024 such chained defers; the rest run in the next
 * iteration, which does not block. */
WSK_API void wsk_defer_start(struct wsk_loop *loop, struct wsk_defer *d);

/* Takes d off the queue if pending, else does nothing; O(number pending). */
WSK_API void wsk_defer_cancel(struct wsk_loop *loop, struct wsk_defer *d);

/* ---- Signals ----------------------------------------------------------- */

typedef void (*wsk_signal_cb)(struct wsk_loop *loop, int signo, void *data);

/* Delivers signo (SIGINT, SIGTERM, SIGHUP, ...) to cb on the loop thread
 * instead of its default action (signalfd; the signal is blocked in the
 * calling thread). One callback per signal per loop; cb NULL removes it.
 * A signal watcher alone does not keep wsk_loop_run() alive. Block the signal
 * in every thread (call this before creating threads), or another thread may
 * take the default action. Removing the handler or freeing the loop unblocks
 * it if the loop blocked it. Returns 0; -EINVAL for a signal number out of
 * range, SIGKILL, SIGSTOP or one glibc reserves; or the errno of signalfd(),
 * pthread_sigmask() or watching the signalfd (-EMFILE, -ENOMEM, ...), with
 * the previous handlers left in place. Removing a handler that is not set
 * returns 0. */
WSK_API int wsk_loop_signal(struct wsk_loop *loop, int signo, wsk_signal_cb cb, void *data);

/* ---- Cross-thread wake-up ---------------------------------------------- */

typedef void (*wsk_wakeup_cb)(struct wsk_loop *loop, void *data);

/* Sets the callback (NULL: none) that runs on the loop thread after
 * wsk_loop_wakeup(); replaces the previous one. Always returns 0. Loop thread
 * only: set it before other threads may call wsk_loop_wakeup(). */
WSK_API int wsk_loop_set_wakeup(struct wsk_loop *loop, wsk_wakeup_cb cb, void *data);

/* Thread-safe and async-signal-safe: makes the loop run its wake-up callback
 * soon. Several calls may be merged into one callback. A wake-up does not
 * keep wsk_loop_run() alive. loop must not be freed during the call. */
WSK_API void wsk_loop_wakeup(struct wsk_loop *loop);

/* ---- Work handed over from other threads ------------------------------- */

struct wsk_post;
typedef void (*wsk_post_cb)(struct wsk_loop *loop, struct wsk_post *p);

struct wsk_post {
    wsk_post_cb cb;
    void *data;
    struct wsk_post *next;
};

/* Thread-safe: queues p to run p->cb on the loop thread soon, in the order
 * posted. p is the caller's and must stay valid until its callback runs. Does
 * not use the wake-up callback above. A queued post keeps wsk_loop_run()
 * alive until it has run (and wsk_loop_free() refuses until then); a
 * callback may post p again (it runs in the next iteration). Not
 * async-signal-safe (it takes a mutex). */
WSK_API void wsk_loop_post(struct wsk_loop *loop, struct wsk_post *p);

#ifdef __cplusplus
}
#endif

#endif
