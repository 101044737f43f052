/* Timers: a binary min-heap in one array. Each node points at the caller's
 * struct wsk_timer, which knows its own heap_index, so start and stop are
 * O(log n) and the next deadline is heap[0] (libuv src/heap-inl.h has the
 * same shape as a pointer-linked tree). A node also holds the timer's start
 * sequence, because struct wsk_timer has no room for it. */
#include "loop/loop_core.h"
#include "loop/loop_internal.h"

#include <errno.h>
#include <stdlib.h>

static bool node_less(const struct timer_node *a, const struct timer_node *b)
{
    if (a->timer->deadline != b->timer->deadline)
        return a->timer->deadline < b->timer->deadline;
    return a->seq < b->seq;
}

static void heap_put(struct wsk_loop *loop, size_t i, struct timer_node node)
{
    loop->heap[i] = node;
    node.timer->heap_index = i;
}

static void sift_up(struct wsk_loop *loop, size_t i)
{
    struct timer_node node = loop->heap[i];

    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!node_less(&node, &loop->heap[parent]))
            break;
        heap_put(loop, i, loop->heap[parent]);
        i = parent;
    }
    heap_put(loop, i, node);
}

static void sift_down(struct wsk_loop *loop, size_t i)
{
    struct timer_node node = loop->heap[i];

    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= loop->heap_len)
            break;
        if (child + 1 < loop->heap_len && node_less(&loop->heap[child + 1], &loop->heap[child]))
            child++;
        if (!node_less(&loop->heap[child], &node))
            break;
        heap_put(loop, i, loop->heap[child]);
        i = child;
    }
    heap_put(loop, i, node);
}

/* The caller has made room: pushing never fails, so a repeating timer can
 * always be re-armed. */
static void heap_push(struct wsk_loop *loop, struct wsk_timer *t)
{
    size_t i = loop->heap_len++;

    loop->heap[i] = (struct timer_node){.timer = t, .seq = loop->timer_seq++};
    sift_up(loop, i);
}

static void heap_remove(struct wsk_loop *loop, struct wsk_timer *t)
{
    size_t i = t->heap_index;
    size_t last = --loop->heap_len;

    t->heap_index = SIZE_MAX;
    if (i == last)
        return;
    heap_put(loop, i, loop->heap[last]);
    if (i > 0 && node_less(&loop->heap[i], &loop->heap[(i - 1) / 2]))
        sift_up(loop, i);
    else
        sift_down(loop, i);
}

static int heap_reserve_one(struct wsk_loop *loop)
{
    struct timer_node *heap;
    size_t cap;

    if (loop->heap_len < loop->heap_cap)
        return 0;
    if (loop->heap_cap > SIZE_MAX / 2 / sizeof *heap)
        return -ENOMEM;
    cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
    heap = realloc(loop->heap, cap * sizeof *heap);
    if (!heap)
        return -ENOMEM;
    loop->heap = heap;
    loop->heap_cap = cap;
    return 0;
}

static uint64_t deadline_after(const struct wsk_loop *loop, uint64_t ms)
{
    return ms > UINT64_MAX - loop->now ? UINT64_MAX : loop->now + ms;
}

void wsk_timer_init(struct wsk_timer *t, wsk_timer_cb cb, void *data)
{
    t->deadline = 0;
    t->repeat = 0;
    t->cb = cb;
    t->data = data;
    t->heap_index = SIZE_MAX;
}

int wsk_timer_start(struct wsk_loop *loop, struct wsk_timer *t, uint64_t timeout_ms,
                    uint64_t repeat_ms)
{
    if (wsk_timer_is_active(t)) {
        heap_remove(loop, t);
    } else {
        int rv = heap_reserve_one(loop);
        if (rv < 0)
            return rv;
    }
    /* Outside wsk_loop_run() the cached time may be arbitrarily old (setup
     * work between wsk_loop_new() and the first run); inside it, every timer
     * started in one iteration shares the iteration's clock. */
    if (!loop->is_running)
        wsk__loop_update_time(loop);
    t->deadline = deadline_after(loop, timeout_ms);
    t->repeat = repeat_ms;
    heap_push(loop, t);
    return 0;
}

void wsk_timer_stop(struct wsk_loop *loop, struct wsk_timer *t)
{
    if (wsk_timer_is_active(t))
        heap_remove(loop, t);
}

bool wsk_timer_is_active(const struct wsk_timer *t)
{
    return t->heap_index != SIZE_MAX;
}

/* Runs the timers that were due when the round began. A timer started by one
 * of these callbacks, even with timeout 0, waits for the next iteration: a
 * callback that re-arms itself at 0 ms cannot starve I/O. A repeating timer is
 * re-armed from now, before its callback, so the callback may stop or restart
 * it; a late loop therefore skips missed periods instead of bursting. */
void wsk__loop_run_timers(struct wsk_loop *loop)
{
    uint64_t seq_limit = loop->timer_seq;

    while (loop->heap_len > 0) {
        struct timer_node top = loop->heap[0];
        struct wsk_timer *t = top.timer;

        if (t->deadline > loop->now || top.seq >= seq_limit)
            break;
        heap_remove(loop, t);
        if (t->repeat > 0) {
            t->deadline = deadline_after(loop, t->repeat);
            heap_push(loop, t);
        }
        t->cb(loop, t);
    }
}

int wsk__loop_check_timers(const struct wsk_loop *loop)
{
    for (size_t i = 0; i < loop->heap_len; i++) {
        if (loop->heap[i].timer->heap_index != i)
            return -1;
        if (i > 0 && node_less(&loop->heap[i], &loop->heap[(i - 1) / 2]))
            return -1;
    }
    return 0;
}
