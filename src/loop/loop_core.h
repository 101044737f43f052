/* Private to src/loop: struct wsk_loop, for the core (loop.c) and the
 * timers (timer.c). The backends see only loop_internal.h. */
#ifndef WSK_LOOP_CORE_H
#define WSK_LOOP_CORE_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "wsk/loop.h"

struct timer_node {
    struct wsk_timer *timer;
    /* Start order. It breaks ties, so timers with equal deadlines fire in the
     * order they were started, and it tells timers started during a round
     * of expired timers from those that were due when it began. */
    uint64_t seq;
};

struct signal_handler {
    wsk_signal_cb cb;
    void *data;
};

struct wsk_loop {
    const struct wsk__backend *backend;
    void *backend_state;
    uint64_t now;
    bool is_running;
    bool stop_flag;
    size_t active_ios; /* started io watchers, not counting the loop's own */

    struct timer_node *heap;
    size_t heap_len;
    size_t heap_cap;
    uint64_t timer_seq;

    struct wsk_defer *defer_head;
    struct wsk_defer *defer_tail;
    size_t defer_count;

    /* One eventfd serves wsk_loop_wakeup() and wsk_loop_post(); the flag
     * tells whether the wake-up callback was asked for. */
    int wakeup_fd;
    struct wsk_io wakeup_io;
    wsk_wakeup_cb wakeup_cb;
    void *wakeup_data;
    atomic_bool is_wakeup_requested;

    pthread_mutex_t post_lock; /* guards post_head and post_tail */
    struct wsk_post *post_head;
    struct wsk_post *post_tail;
    /* Posts queued and not yet run: they keep the loop alive, since each may
     * hold a reference to something (a DNS answer and its job). */
    atomic_size_t posts_queued;

    int signal_fd; /* -1 until the first wsk_loop_signal() */
    struct wsk_io signal_io;
    sigset_t signal_mask;   /* signals routed to signal_fd */
    sigset_t blocked_by_us; /* the ones among them that were not blocked before */
    struct signal_handler signals[NSIG];

    uint8_t *scratch; /* see wsk__loop_scratch() */
    size_t scratch_len;
};

/* Reads the monotonic clock into loop->now (milliseconds). */
static inline void wsk__loop_update_time(struct wsk_loop *loop)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    loop->now = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Runs the timers that were due when the round began (timer.c). */
void wsk__loop_run_timers(struct wsk_loop *loop);

#endif
