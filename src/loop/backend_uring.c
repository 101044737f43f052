/* io_uring backend: completion I/O for streams, readiness through epoll.
 *
 * Watchers (listeners, TLS streams, the loop's own eventfd and signalfd)
 * keep level-triggered readiness: they live in an epoll set run by the epoll
 * backend's code, and the ring watches that set's fd with a one-shot
 * POLL_ADD, re-armed after it fires. Level triggering is what watchers need
 * (a paused reader leaves data unread); io_uring's multishot poll is edge
 * triggered, and re-arming a poll per watcher per event would cost a
 * submission where epoll costs nothing.
 *
 * Plain streams do their I/O through the ring (src/transport/stream_uring.c):
 * one multishot receive per connection into the provided buffers below, and
 * sends queued as submissions. wait() is one io_uring_enter that submits all
 * that the last iteration queued and waits, so a burst over many connections
 * costs one system call rather than a recv() and a send() per connection.
 *
 * Completions are copied out of the ring in batches before their callbacks
 * run: a callback may queue submissions, and a full submission queue makes
 * wsk__uring_sqe() submit, which may post completions under the reader.
 */
#include "loop/loop_internal.h"
#include "loop/uring.h"

#include <errno.h>
#include <stdlib.h>

#ifdef WSK_HAVE_URING

#include <liburing.h>
#include <poll.h>
#include <sys/mman.h>

#define SQ_ENTRIES       2048u
#define CQ_ENTRIES       16384u
#define BATCH            128
#define MAX_PER_DISPATCH 8192
#define EPOLL_TAG        1u /* user_data of the poll on the epoll fd; ops are pointers */

struct wsk__uring {
    struct io_uring ring;
    bool ready;  /* the ring is set up (by the first wait) */
    bool failed; /* setting it up failed: epoll alone from then on */
    void *ep;    /* the epoll backend's state: the watchers */
    int epfd;
    bool ep_armed;
    bool ep_ready;
    struct io_uring_buf_ring *br;
    uint8_t *bufs;
    size_t inflight;
    struct wsk__uop *later; /* wsk__uring_later(), newest first */
};

static int setup_ring(struct io_uring *ring)
{
    /* SINGLE_ISSUER | DEFER_TASKRUN: completions are collected only when
     * this thread enters to wait, in one batch, instead of as task work
     * that interrupts it (measured: ~5% of a 16 B echo's server time went
     * to task-work lists without it). The ring is tied to the thread that
     * makes it, so it is made by the first wait(), in the thread that runs
     * the loop (wsk serve makes its loops on one thread and runs them on
     * others). SUBMIT_ALL: a refused entry does not drop the ones behind
     * it. Older kernels refuse flags: try with fewer. */
    static const unsigned flag_sets[] = {
        IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN,
        0,
    };
    int rv = -ENOSYS;
    for (size_t i = 0; i < sizeof flag_sets / sizeof flag_sets[0]; i++) {
        struct io_uring_params p = {0};
        p.flags = flag_sets[i] | IORING_SETUP_CQSIZE;
        p.cq_entries = CQ_ENTRIES;
        rv = io_uring_queue_init_params(SQ_ENTRIES, ring, &p);
        if (rv == 0)
            return 0;
        if (rv != -EINVAL)
            break;
    }
    return rv;
}

static int setup_bufs(struct wsk__uring *u)
{
    size_t ring_len = WSK__URING_BUFS * sizeof(struct io_uring_buf);
    void *br = mmap(NULL, ring_len, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (br == MAP_FAILED)
        return -errno;
    /* Pages of the buffers are touched only when a receive fills them. */
    u->bufs = malloc((size_t)WSK__URING_BUFS * WSK__URING_BUF_SIZE);
    if (!u->bufs) {
        munmap(br, ring_len);
        return -ENOMEM;
    }
    struct io_uring_buf_reg reg = {0};
    reg.ring_addr = (uintptr_t)br;
    reg.ring_entries = WSK__URING_BUFS;
    reg.bgid = WSK__URING_BGID;
    int rv = io_uring_register_buf_ring(&u->ring, &reg, 0);
    if (rv < 0) {
        free(u->bufs);
        u->bufs = NULL;
        munmap(br, ring_len);
        return rv;
    }
    u->br = br;
    io_uring_buf_ring_init(u->br);
    int mask = io_uring_buf_ring_mask(WSK__URING_BUFS);
    for (unsigned i = 0; i < WSK__URING_BUFS; i++)
        io_uring_buf_ring_add(u->br, u->bufs + (size_t)i * WSK__URING_BUF_SIZE, WSK__URING_BUF_SIZE,
                              (unsigned short)i, mask, (int)i);
    io_uring_buf_ring_advance(u->br, WSK__URING_BUFS);
    return 0;
}

static int uring_be_init(void **out)
{
    /* A small ring made and dropped at once: does this kernel, under this
     * seccomp policy and io_uring_disabled setting, give us one? If not,
     * wsk_loop_new() falls back to epoll now rather than later. */
    struct io_uring probe;
    int rv = io_uring_queue_init(2, &probe, 0);
    if (rv < 0)
        return rv;
    io_uring_queue_exit(&probe);
    struct wsk__uring *u = calloc(1, sizeof *u);
    if (!u)
        return -ENOMEM;
    rv = wsk__backend_epoll.init(&u->ep);
    if (rv < 0) {
        free(u);
        return rv;
    }
    u->epfd = wsk__epoll_fd(u->ep);
    *out = u;
    return 0;
}

/* The ring and its buffers, in the thread that runs the loop. */
static void setup(struct wsk__uring *u)
{
    if (setup_ring(&u->ring) < 0) {
        u->failed = true;
        return;
    }
    if (setup_bufs(u) < 0) {
        io_uring_queue_exit(&u->ring);
        u->failed = true;
        return;
    }
    u->ready = true;
}

static void run_batch(struct wsk__uring *u, struct wsk_loop *loop, bool cancelled);
static void run_later(struct wsk__uring *u);

static void uring_be_destroy(void *state)
{
    struct wsk__uring *u = state;
    if (!u->ready) {
        wsk__backend_epoll.destroy(u->ep);
        free(u);
        return;
    }
    run_later(u);
    /* Ops still in flight hold memory of their owners' (a closed stream's
     * queue): cancel them all and let their callbacks release it. */
    if (u->inflight) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
        if (!sqe) {
            io_uring_submit(&u->ring);
            sqe = io_uring_get_sqe(&u->ring);
        }
        if (sqe) {
            io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
            io_uring_sqe_set_data64(sqe, 0);
        }
        for (int tries = 0; u->inflight && tries < 100; tries++) {
            struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 10 * 1000 * 1000};
            struct io_uring_cqe *cqe;
            int rv = io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, &ts, NULL);
            run_batch(u, NULL, true);
            if (rv < 0 && rv != -ETIME && rv != -EINTR)
                break; /* another thread than the ring's: leak rather than hang */
        }
    }
    io_uring_queue_exit(&u->ring);
    if (u->br)
        munmap(u->br, WSK__URING_BUFS * sizeof(struct io_uring_buf));
    free(u->bufs);
    wsk__backend_epoll.destroy(u->ep);
    free(u);
}

static int uring_be_start(void *state, struct wsk_io *io, unsigned events)
{
    struct wsk__uring *u = state;
    return wsk__backend_epoll.start(u->ep, io, events);
}

static void uring_be_stop(void *state, struct wsk_io *io)
{
    struct wsk__uring *u = state;
    wsk__backend_epoll.stop(u->ep, io);
}

static struct io_uring_sqe *get_sqe(struct wsk__uring *u)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    if (!sqe && io_uring_submit(&u->ring) >= 0)
        sqe = io_uring_get_sqe(&u->ring);
    return sqe;
}

static void run_later(struct wsk__uring *u)
{
    while (u->later) {
        struct wsk__uop *op = u->later;
        u->later = op->later;
        op->later = NULL;
        op->done(NULL, op, WSK__UOP_LATER, 0);
    }
}

static int uring_be_wait(void *state, int timeout_ms)
{
    struct wsk__uring *u = state;
    if (!u->ready && !u->failed)
        setup(u);
    if (u->failed)
        return wsk__backend_epoll.wait(u->ep, timeout_ms);
    run_later(u);
    if (!u->ep_armed) {
        struct io_uring_sqe *sqe = get_sqe(u);
        if (sqe) {
            io_uring_prep_poll_add(sqe, u->epfd, POLLIN);
            io_uring_sqe_set_data64(sqe, EPOLL_TAG);
            u->ep_armed = true;
        }
    }
    if (io_uring_cq_ready(&u->ring))
        timeout_ms = 0;
    struct __kernel_timespec ts, *tsp = NULL;
    if (timeout_ms >= 0) {
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = (long long)(timeout_ms % 1000) * 1000000;
        tsp = &ts;
    }
    struct io_uring_cqe *cqe;
    int rv = io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, tsp, NULL);
    if (rv < 0 && rv != -ETIME && rv != -EINTR && rv != -EAGAIN && rv != -EBUSY)
        return rv;
    return 0;
}

/* Runs the completions there are, up to MAX_PER_DISPATCH. cancelled: from
 * destroy, where owners only release memory (no loop to call into). */
static void run_batch(struct wsk__uring *u, struct wsk_loop *loop, bool cancelled)
{
    struct {
        uint64_t data;
        int res;
        unsigned flags;
    } got[BATCH];
    for (int total = 0; total < MAX_PER_DISPATCH;) {
        struct io_uring_cqe *cqes[BATCH];
        unsigned n = io_uring_peek_batch_cqe(&u->ring, cqes, BATCH);
        if (!n)
            break;
        for (unsigned i = 0; i < n; i++) {
            got[i].data = cqes[i]->user_data;
            got[i].res = cqes[i]->res;
            got[i].flags = cqes[i]->flags;
        }
        io_uring_cq_advance(&u->ring, n);
        total += (int)n;
        for (unsigned i = 0; i < n; i++) {
            if (got[i].data == EPOLL_TAG) {
                u->ep_armed = false;
                u->ep_ready = true;
                continue;
            }
            if (!got[i].data)
                continue;
            struct wsk__uop *op = (struct wsk__uop *)(uintptr_t)got[i].data;
            if (!(got[i].flags & IORING_CQE_F_MORE))
                u->inflight--;
            op->done(loop, op, cancelled ? -ECANCELED : got[i].res, got[i].flags);
        }
    }
}

static void uring_be_dispatch(void *state, struct wsk_loop *loop)
{
    struct wsk__uring *u = state;
    if (u->failed) {
        wsk__backend_epoll.dispatch(u->ep, loop);
        return;
    }
    run_batch(u, loop, false);
    if (u->ep_ready) {
        u->ep_ready = false;
        if (wsk__backend_epoll.wait(u->ep, 0) == 0)
            wsk__backend_epoll.dispatch(u->ep, loop);
    }
}

bool wsk__uring_ready(const struct wsk__uring *u)
{
    return u->ready;
}

void wsk__uring_later(struct wsk__uring *u, struct wsk__uop *op)
{
    op->later = u->later;
    u->later = op;
}

struct io_uring_sqe *wsk__uring_sqe(struct wsk__uring *u, struct wsk__uop *op)
{
    struct io_uring_sqe *sqe = get_sqe(u);
    if (!sqe)
        return NULL;
    io_uring_sqe_set_data(sqe, op);
    if (op)
        u->inflight++;
    return sqe;
}

uint8_t *wsk__uring_buf(struct wsk__uring *u, unsigned bid)
{
    return u->bufs + (size_t)bid * WSK__URING_BUF_SIZE;
}

void wsk__uring_buf_put(struct wsk__uring *u, unsigned bid)
{
    io_uring_buf_ring_add(u->br, wsk__uring_buf(u, bid), WSK__URING_BUF_SIZE, (unsigned short)bid,
                          io_uring_buf_ring_mask(WSK__URING_BUFS), 0);
    io_uring_buf_ring_advance(u->br, 1);
}

const struct wsk__backend wsk__backend_uring = {
    .name = "io_uring",
    .init = uring_be_init,
    .destroy = uring_be_destroy,
    .start = uring_be_start,
    .stop = uring_be_stop,
    .wait = uring_be_wait,
    .dispatch = uring_be_dispatch,
};

#else /* !WSK_HAVE_URING: built without liburing; wsk_loop_new() falls back */

bool wsk__uring_ready(const struct wsk__uring *u)
{
    (void)u;
    return false;
}

void wsk__uring_later(struct wsk__uring *u, struct wsk__uop *op)
{
    (void)u;
    (void)op;
}

static int uring_be_init(void **out)
{
    (void)out;
    return -ENOSYS;
}

const struct wsk__backend wsk__backend_uring = {
    .name = "io_uring",
    .init = uring_be_init,
};

struct io_uring_sqe *wsk__uring_sqe(struct wsk__uring *u, struct wsk__uop *op)
{
    (void)u;
    (void)op;
    return NULL;
}

uint8_t *wsk__uring_buf(struct wsk__uring *u, unsigned bid)
{
    (void)u;
    (void)bid;
    return NULL;
}

void wsk__uring_buf_put(struct wsk__uring *u, unsigned bid)
{
    (void)u;
    (void)bid;
}

#endif
