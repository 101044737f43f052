/* Private to the library: what the io_uring backend (backend_uring.c) offers
 * the layers above for completion I/O. The loop still knows nothing of
 * streams: it hands out submission entries tagged with a wsk__uop, calls the
 * op's done() with each completion, and owns one ring of provided buffers
 * that multishot receives fill. src/transport/stream_uring.c is the user.
 *
 * Everything here is for the loop's own thread. Entries taken are submitted
 * by the next wait (one io_uring_enter per loop iteration carries them all
 * and the wait), or earlier when the submission queue is full.
 */
#ifndef WSK_LOOP_URING_H
#define WSK_LOOP_URING_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "wsk/loop.h"

struct io_uring_sqe;
struct wsk__uring;
struct wsk__uop;

/* A completion for op: res and flags as in struct io_uring_cqe. Called from
 * the loop's dispatch, and from wsk_loop_free() with res -ECANCELED for ops
 * still in flight then (the callee must then only release memory). */
typedef void (*wsk__uop_cb)(struct wsk_loop *loop, struct wsk__uop *op, int res, unsigned flags);

struct wsk__uop {
    wsk__uop_cb done;
    struct wsk__uop *later; /* next in the list of wsk__uring_later() */
};

/* The res of a call requested with wsk__uring_later() (loop is NULL then). */
#define WSK__UOP_LATER INT_MIN

/* Receive buffers: WSK__URING_BUFS of WSK__URING_BUF_SIZE bytes, group 0. */
#define WSK__URING_BGID     0
#define WSK__URING_BUF_SIZE (32u * 1024)
#define WSK__URING_BUFS     64u

/* The loop's io_uring state, or NULL when its backend is not io_uring or
 * its ring is not set up: that happens in the first wait, in the thread
 * that runs the loop, and may fail there (then the loop goes on with epoll
 * alone). Until then streams stay on readiness. */
struct wsk__uring *wsk__loop_uring(struct wsk_loop *loop);

/* A submission entry whose completions go to op->done (op NULL: ignored,
 * for cancels). An op is in flight from here until a completion without
 * IORING_CQE_F_MORE. Returns NULL only when the kernel refuses a submit to
 * make room (then nothing was taken). */
struct io_uring_sqe *wsk__uring_sqe(struct wsk__uring *u, struct wsk__uop *op);

/* Calls op->done(NULL, op, WSK__UOP_LATER, 0) just before the next wait
 * (or from wsk_loop_free()), once: the place to prepare submissions that
 * should carry all of this iteration's work, such as one send for every
 * reply a connection queued in the iteration. The caller keeps op out of
 * the list while it is there. */
void wsk__uring_later(struct wsk__uring *u, struct wsk__uop *op);

/* The ring is set up. */
bool wsk__uring_ready(const struct wsk__uring *u);

/* The provided buffer bid, and giving it back to the ring once its bytes
 * are used. */
uint8_t *wsk__uring_buf(struct wsk__uring *u, unsigned bid);
void wsk__uring_buf_put(struct wsk__uring *u, unsigned bid);

/* Counts (delta 1) or uncounts (-1) something that keeps wsk_loop_run()
 * going, as a started watcher does: a stream waiting for completions. */
void wsk__loop_ref(struct wsk_loop *loop, int delta);

#endif
