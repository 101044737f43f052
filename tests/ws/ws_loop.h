/* The loop the ws tests run, and ways to run it for a while or until a
 * condition holds. Included by one test file each (the state is static). */
#ifndef WSK_TESTS_WS_LOOP_H
#define WSK_TESTS_WS_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "wsk.h"
#include "wsk_test.h"

static struct wsk_loop *loop;
static struct wsk_timer guard;
static bool timed_out;

static void guard_cb(struct wsk_loop *l, struct wsk_timer *t)
{
    (void)t;
    timed_out = true;
    wsk_loop_stop(l);
}

/* Runs the loop until stopped, at most ms. */
static void run_for(uint64_t ms)
{
    timed_out = false;
    wsk_timer_init(&guard, guard_cb, NULL);
    wsk_timer_start(loop, &guard, ms, 0);
    wsk_loop_run(loop);
    wsk_timer_stop(loop, &guard);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Runs the loop in slices of a millisecond until cond holds; fails the test
 * when it still does not after ms. The deadlines are generous: they only
 * bound a failure, a passing run never waits for them. */
#define RUN_UNTIL(cond, ms)                                                                        \
    do {                                                                                           \
        uint64_t run_until_end_ = now_ms() + (ms);                                                 \
        while (!(cond)) {                                                                          \
            if (now_ms() > run_until_end_) {                                                       \
                fprintf(stderr, "%s:%d: timed out after %d ms waiting for %s\n", __FILE__,         \
                        __LINE__, (int)(ms), #cond);                                               \
                wsk_test_failures_++;                                                              \
                break;                                                                             \
            }                                                                                      \
            run_for(1);                                                                            \
        }                                                                                          \
    } while (0)

#endif
