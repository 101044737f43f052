/* The failing allocator shared by the failalloc tests: an executable that
 * includes this (once) and is linked with
 * -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup (see
 * CMakeLists.txt) sends every allocation made by libwsk's objects (and its
 * own) through the __wrap_ functions below, which count them and fail the
 * fail_at-th. Allocations inside libc, zlib and OpenSSL are not wrapped,
 * except zlib's through wsk's own zalloc.
 *
 * failalloc_every() runs a scenario once to count its allocations, then
 * once for every N with the N-th failing, with a leak check after each run
 * under ASan. WSK_FAILALLOC_N=n runs only that N.
 */
#ifndef WSK_TEST_FAILALLOC_H
#define WSK_TEST_FAILALLOC_H

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wsk.h"
#include "wsk_test.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);

/* Only the loop thread counts: a helper thread (the client's resolver)
 * allocates through libc, which is not wrapped. */
static bool is_armed;
static unsigned long alloc_count, fail_at; /* fail_at 0: never */
static bool has_failed;
static size_t failed_size;
static void *failed_caller; /* who called the allocator */

static bool should_fail(size_t n, void *caller)
{
    if (!is_armed)
        return false;
    alloc_count++;
    if (fail_at && alloc_count == fail_at) {
        has_failed = true;
        failed_size = n;
        failed_caller = caller;
        return true;
    }
    return false;
}

void *__wrap_malloc(size_t n)
{
    return should_fail(n, __builtin_return_address(0)) ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return should_fail(n * size, __builtin_return_address(0)) ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    return should_fail(n, __builtin_return_address(0)) ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = __wrap_malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* With ASan, a leak check after each run; without, nothing. */
int __lsan_do_recoverable_leak_check(void) __attribute__((weak));

static inline uint64_t failalloc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void failalloc_stop_cb(struct wsk_loop *l, struct wsk_timer *t)
{
    (void)t;
    wsk_loop_stop(l);
}

/* Runs loop in slices of 2 ms until done(arg) or ms have passed. Returns
 * whether done(arg) became true. */
static inline bool failalloc_run_until(struct wsk_loop *loop, bool (*done)(void *), void *arg,
                                       uint64_t ms)
{
    uint64_t end = failalloc_now_ms() + ms;
    struct wsk_timer slice;
    wsk_timer_init(&slice, failalloc_stop_cb, NULL);
    while (!done(arg)) {
        if (failalloc_now_ms() > end)
            return false;
        if (wsk_timer_start(loop, &slice, 2, 0) < 0)
            continue; /* the timer heap could not grow: it may next time */
        wsk_loop_run(loop);
        wsk_timer_stop(loop, &slice);
    }
    return true;
}

enum failalloc_outcome { FA_RAN, FA_HUNG, FA_BAD };

/* Counts the scenario's allocations in one clean run (which must end FA_RAN),
 * then runs it failing each allocation in turn. Returns the clean run's
 * count; the CHECKs say what went wrong and for which N. */
static unsigned long failalloc_every(const char *name, enum failalloc_outcome (*run)(void))
{
    uint64_t t0 = failalloc_now_ms();
    alloc_count = fail_at = 0;
    CHECK_EQ_INT(run(), FA_RAN);
    unsigned long total = alloc_count;
    if (__lsan_do_recoverable_leak_check)
        CHECK_EQ_INT(__lsan_do_recoverable_leak_check(), 0);

    unsigned long first = 1, last = total;
    const char *only = getenv("WSK_FAILALLOC_N");
    if (only)
        first = last = strtoul(only, NULL, 10);
    int hung = 0, bad = 0, leaked = 0, not_reached = 0;
    uint64_t slowest_ms = 0;
    unsigned long slowest_n = 0;
    for (unsigned long n = first; n <= last; n++) {
        alloc_count = 0;
        fail_at = n;
        has_failed = false;
        uint64_t start = failalloc_now_ms();
        enum failalloc_outcome o = run();
        uint64_t took = failalloc_now_ms() - start;
        fail_at = 0;
        if (took > slowest_ms) {
            slowest_ms = took;
            slowest_n = n;
        }
        if (!has_failed)
            not_reached++; /* this run allocated less: timing differs */
        if (o == FA_HUNG) {
            fprintf(stderr, "%s N=%lu: did not end in time (%zu bytes, caller %p)\n", name, n,
                    failed_size, failed_caller);
            hung++;
        } else if (o == FA_BAD) {
            fprintf(stderr, "%s N=%lu: bad result (%zu bytes, caller %p)\n", name, n, failed_size,
                    failed_caller);
            bad++;
        }
        if (__lsan_do_recoverable_leak_check && __lsan_do_recoverable_leak_check()) {
            fprintf(stderr, "%s N=%lu: leak (report above)\n", name, n);
            leaked++;
        }
    }
    printf("%s: %lu wrapped allocations; failing 1..%lu: %d hung, %d bad, %d leaked, %d runs "
           "with fewer allocations; %.1f s, slowest run N=%lu %llu ms\n",
           name, total, total, hung, bad, leaked, not_reached,
           (double)(failalloc_now_ms() - t0) / 1000.0, slowest_n, (unsigned long long)slowest_ms);
    CHECK_EQ_INT(hung, 0);
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(leaked, 0);
    return total;
}

#endif
