/* A small test harness: each test file defines test functions, lists them in
 * main() with WSK_RUN(), and ends with WSK_TEST_END(). Failures print
 * file:line and the expression; the run prints "N passed, N failed". */
#ifndef WSK_TEST_H
#define WSK_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int wsk_test_failures_; /* failed checks in the current test */
static int wsk_test_passed_;   /* tests passed */
static int wsk_test_failed_;   /* tests failed */

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            wsk_test_failures_++;                                                                  \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                         \
    do {                                                                                           \
        long long wsk_a_ = (long long)(a), wsk_b_ = (long long)(b);                                \
        if (wsk_a_ != wsk_b_) {                                                                    \
            fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld != %lld)\n", __FILE__, __LINE__,  \
                    #a, #b, wsk_a_, wsk_b_);                                                       \
            wsk_test_failures_++;                                                                  \
        }                                                                                          \
    } while (0)

#define CHECK_MEM(a, b, n)                                                                         \
    do {                                                                                           \
        if (memcmp((a), (b), (n)) != 0) {                                                          \
            fprintf(stderr, "%s:%d: CHECK failed: memory %s == %s (%zu bytes)\n", __FILE__,        \
                    __LINE__, #a, #b, (size_t)(n));                                                \
            wsk_test_failures_++;                                                                  \
        }                                                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *wsk_sa_ = (a), *wsk_sb_ = (b);                                                 \
        if (strcmp(wsk_sa_, wsk_sb_) != 0) {                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s == %s (\"%s\" != \"%s\")\n", __FILE__,        \
                    __LINE__, #a, #b, wsk_sa_, wsk_sb_);                                           \
            wsk_test_failures_++;                                                                  \
        }                                                                                          \
    } while (0)

#define WSK_RUN(fn)                                                                                \
    do {                                                                                           \
        wsk_test_failures_ = 0;                                                                    \
        fn();                                                                                      \
        if (wsk_test_failures_) {                                                                  \
            wsk_test_failed_++;                                                                    \
            fprintf(stderr, "FAIL %s (%d checks)\n", #fn, wsk_test_failures_);                     \
        } else {                                                                                   \
            wsk_test_passed_++;                                                                    \
            printf("ok   %s\n", #fn);                                                              \
        }                                                                                          \
    } while (0)

#define WSK_TEST_END()                                                                             \
    do {                                                                                           \
        printf("%d passed, %d failed\n", wsk_test_passed_, wsk_test_failed_);                      \
        return wsk_test_failed_ ? 1 : 0;                                                           \
    } while (0)

/* Deterministic pseudo-random numbers for random splits (xorshift64*). */
static inline uint64_t wsk_test_rand(uint64_t *s)
{
    uint64_t x = *s ? *s : 0x9E3779B97F4A7C15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* The loop configuration for tests that run the ws and net layers: the
 * backend named by WSK_TEST_BACKEND (CTest runs those tests once more with
 * io_uring), the default otherwise. */
#include "wsk/loop.h"
static inline const struct wsk_loop_config *wsk_test_loop_cfg(void)
{
    static struct wsk_loop_config cfg;
    wsk_loop_config_init(&cfg);
    const char *name = getenv("WSK_TEST_BACKEND");
    if (name && wsk_backend_parse(name, &cfg.backend) < 0) {
        fprintf(stderr, "WSK_TEST_BACKEND=%s: unknown backend\n", name);
        exit(2);
    }
    return &cfg;
}

#endif
