/* The loop's thread-safe entry points under contention: several threads post
 * and wake one loop at once while it runs. Every post must run exactly once,
 * on the loop thread, in order per posting thread, and see what its poster
 * wrote before posting; the last wake-up of each thread must be followed by a
 * callback that sees what that thread did before it. Built for
 * ThreadSanitizer too (label "threads"), which checks that the hand-over
 * orders memory as well as events. Every backend is run.
 */
#include "wsk/loop.h"
#include "wsk_test.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

#define NTHREADS 4
#define NPOSTS   5000 /* per thread: bounded, quick even under TSan */

struct poster;

struct job {
    struct wsk_post post;
    struct poster *owner;
    int index;
    uint64_t value; /* written by the poster before posting, plain memory */
};

struct hammer {
    struct wsk_loop *loop;
    pthread_t loop_thread;
    struct poster *posters;
    int total, wakeups;
    int bad_order, bad_value, wrong_thread;
    bool saw_all_done; /* a wake-up callback saw every thread's last flag */
    /* A post the loop thread keeps re-posting while the threads post. */
    struct wsk_post self;
    int self_runs;
};

struct poster {
    struct hammer *h;
    int id;
    pthread_t thread;
    struct job *jobs;
    int next_expected; /* loop thread only */
    atomic_bool is_done;
};

static void job_cb(struct wsk_loop *loop, struct wsk_post *p)
{
    struct job *j = p->data;
    struct poster *o = j->owner;
    struct hammer *h = o->h;

    if (!pthread_equal(pthread_self(), h->loop_thread))
        h->wrong_thread++;
    if (j->index != o->next_expected)
        h->bad_order++;
    if (j->value != ((uint64_t)o->id << 32 | (uint64_t)j->index) * 2654435761u)
        h->bad_value++;
    o->next_expected = j->index + 1;
    if (++h->total == NTHREADS * NPOSTS && h->saw_all_done)
        wsk_loop_stop(loop);
}

static void wakeup_cb(struct wsk_loop *loop, void *data)
{
    struct hammer *h = data;
    bool all = true;

    if (!pthread_equal(pthread_self(), h->loop_thread))
        h->wrong_thread++;
    h->wakeups++;
    for (int i = 0; i < NTHREADS; i++)
        all = all && atomic_load(&h->posters[i].is_done);
    if (all)
        h->saw_all_done = true;
    if (h->saw_all_done && h->total == NTHREADS * NPOSTS)
        wsk_loop_stop(loop);
}

static void self_cb(struct wsk_loop *loop, struct wsk_post *p)
{
    struct hammer *h = p->data;

    /* Re-posted from its own callback: runs again in the next iteration. */
    if (++h->self_runs < 200)
        wsk_loop_post(loop, p);
}

static void *poster_main(void *arg)
{
    struct poster *o = arg;

    for (int i = 0; i < NPOSTS; i++) {
        struct job *j = &o->jobs[i];
        j->value = ((uint64_t)o->id << 32 | (uint64_t)i) * 2654435761u;
        wsk_loop_post(o->h->loop, &j->post);
        if (i % 7 == 0)
            wsk_loop_wakeup(o->h->loop);
        if (i % 500 == 0)
            sched_yield();
    }
    /* The flag first, then the wake-up: some callback must see the flag. */
    atomic_store(&o->is_done, true);
    wsk_loop_wakeup(o->h->loop);
    return NULL;
}

static void on_guard(struct wsk_loop *loop, struct wsk_timer *t)
{
    fprintf(stderr, "guard timer fired: the test waited too long\n");
    *(bool *)t->data = true;
    wsk_loop_stop(loop);
}

static void run_hammer(enum wsk_backend backend)
{
    struct wsk_loop_config cfg;
    struct hammer h = {0};
    struct poster posters[NTHREADS];
    struct wsk_timer guard;
    bool timed_out = false;

    wsk_loop_config_init(&cfg);
    cfg.backend = backend;
    CHECK_EQ_INT(wsk_loop_new(&h.loop, &cfg), 0);
    if (!h.loop)
        return;
    h.loop_thread = pthread_self();
    h.posters = posters;
    CHECK_EQ_INT(wsk_loop_set_wakeup(h.loop, wakeup_cb, &h), 0);
    h.self.cb = self_cb;
    h.self.data = &h;
    wsk_loop_post(h.loop, &h.self);
    for (int i = 0; i < NTHREADS; i++) {
        struct poster *o = &posters[i];
        o->h = &h;
        o->id = i;
        o->next_expected = 0;
        atomic_init(&o->is_done, false);
        o->jobs = calloc(NPOSTS, sizeof *o->jobs);
        for (int k = 0; k < NPOSTS; k++) {
            o->jobs[k].post.cb = job_cb;
            o->jobs[k].post.data = &o->jobs[k];
            o->jobs[k].owner = o;
            o->jobs[k].index = k;
        }
    }
    for (int i = 0; i < NTHREADS; i++)
        CHECK_EQ_INT(pthread_create(&posters[i].thread, NULL, poster_main, &posters[i]), 0);

    /* Posts do not keep the loop alive: the guard timer does, and bounds
     * the wait. */
    wsk_timer_init(&guard, on_guard, &timed_out);
    CHECK_EQ_INT(wsk_timer_start(h.loop, &guard, 60000, 0), 0);
    CHECK_EQ_INT(wsk_loop_run(h.loop), 0);
    wsk_timer_stop(h.loop, &guard);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(posters[i].thread, NULL);

    CHECK(!timed_out);
    CHECK_EQ_INT(h.total, NTHREADS * NPOSTS);
    for (int i = 0; i < NTHREADS; i++)
        CHECK_EQ_INT(posters[i].next_expected, NPOSTS);
    CHECK_EQ_INT(h.bad_order, 0);
    CHECK_EQ_INT(h.bad_value, 0);
    CHECK_EQ_INT(h.wrong_thread, 0);
    CHECK(h.saw_all_done);
    CHECK(h.wakeups >= 1);
    CHECK(h.self_runs >= 1);
    /* The loop thread's own post may still be queued: freeing drops it. */
    wsk_loop_free(h.loop);
    for (int i = 0; i < NTHREADS; i++)
        free(posters[i].jobs);
}

static void test_hammer_epoll(void)
{
    run_hammer(WSK_BACKEND_EPOLL);
}

static void test_hammer_poll(void)
{
    run_hammer(WSK_BACKEND_POLL);
}

static void test_hammer_select(void)
{
    run_hammer(WSK_BACKEND_SELECT);
}

/* Threads post to a loop that is not running; the loop is freed after they
 * are joined, with their posts still queued: they are dropped, not run. */
struct idle_poster {
    struct wsk_loop *loop;
    struct wsk_post posts[100];
    int runs;
};

static void idle_cb(struct wsk_loop *loop, struct wsk_post *p)
{
    (void)loop;
    ((struct idle_poster *)p->data)->runs++;
}

static void *idle_main(void *arg)
{
    struct idle_poster *ip = arg;

    for (int i = 0; i < 100; i++)
        wsk_loop_post(ip->loop, &ip->posts[i]);
    wsk_loop_wakeup(ip->loop);
    return NULL;
}

static void test_queued_posts_run_before_free(void)
{
    struct idle_poster ip[2];
    pthread_t th[2];
    struct wsk_loop *loop = NULL;

    CHECK_EQ_INT(wsk_loop_new(&loop, NULL), 0);
    if (!loop)
        return;
    for (int t = 0; t < 2; t++) {
        ip[t].loop = loop;
        ip[t].runs = 0;
        for (int i = 0; i < 100; i++) {
            ip[t].posts[i].cb = idle_cb;
            ip[t].posts[i].data = &ip[t];
        }
        CHECK_EQ_INT(pthread_create(&th[t], NULL, idle_main, &ip[t]), 0);
    }
    for (int t = 0; t < 2; t++)
        pthread_join(th[t], NULL);
    /* Queued posts may hold references (a DNS answer): the loop refuses to
     * go before they ran, and running it runs them all. */
    CHECK_EQ_INT(wsk_loop_free(loop), -EBUSY);
    CHECK_EQ_INT(ip[0].runs + ip[1].runs, 0);
    CHECK_EQ_INT(wsk_loop_run(loop), 0);
    CHECK_EQ_INT(ip[0].runs + ip[1].runs, 200);
    CHECK_EQ_INT(wsk_loop_free(loop), 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    alarm(120); /* ends the program if a guard could not */
    WSK_RUN(test_hammer_epoll);
    WSK_RUN(test_hammer_poll);
    WSK_RUN(test_hammer_select);
    WSK_RUN(test_queued_posts_run_before_free);
    WSK_TEST_END();
}
