/* wsk_server_publish_async() from threads that run no loop: several threads
 * publish numbered messages at once into a small queue (so some calls are
 * refused with -EAGAIN and retried), and every subscriber must get every
 * message exactly once, each thread's in the order it published them.
 * Also: a server freed while its hand-over is queued on the loop. Built for
 * ThreadSanitizer too (label "threads").
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

#include "wsk.h"
#include "wsk_test.h"

#include "ws/ws_loop.h"

#define NTHREADS 4
#define NMSG     3000
#define NCLIENTS 3
#define WAIT_MS  60000

static struct wsk_server *srv;
static atomic_int refused;
static int server_opened;

static void srv_open(struct wsk_conn *c, const struct wsk_open_event *ev, void *ud)
{
    (void)ev;
    (void)ud;
    CHECK_EQ_INT(wsk_conn_subscribe(c, "news", 4), 1);
    server_opened++;
}

struct client {
    struct wsk_conn *conn;
    bool opened, closed;
    int messages, bad;
    int next[NTHREADS]; /* the sequence number expected from each thread */
};

static void cl_open(struct wsk_conn *c, const struct wsk_open_event *ev, void *ud)
{
    (void)c;
    (void)ev;
    ((struct client *)ud)->opened = true;
}

/* Messages are "T SEQ". */
static void cl_message(struct wsk_conn *c, const struct wsk_message *m, void *ud)
{
    (void)c;
    struct client *cl = ud;
    char buf[32];
    int t, seq;
    snprintf(buf, sizeof buf, "%.*s", (int)m->len, (const char *)m->data);
    cl->messages++;
    if (sscanf(buf, "%d %d", &t, &seq) != 2 || t < 0 || t >= NTHREADS || seq != cl->next[t])
        cl->bad++;
    else
        cl->next[t]++;
}

static void cl_close(struct wsk_conn *c, const struct wsk_close_event *ev, void *ud)
{
    (void)c;
    (void)ev;
    ((struct client *)ud)->closed = true;
}

static void *publisher(void *arg)
{
    int t = (int)(intptr_t)arg;
    char buf[32];
    for (int seq = 0; seq < NMSG; seq++) {
        int n = snprintf(buf, sizeof buf, "%d %d", t, seq);
        int rv;
        while ((rv = wsk_server_publish_async(srv, "news", 4, WSK_OP_TEXT, buf, (size_t)n)) ==
               -EAGAIN) {
            atomic_fetch_add(&refused, 1);
            sched_yield();
        }
        CHECK_EQ_INT(rv, 0);
        /* To a topic nobody is in: published to no one, in between. */
        if (seq % 100 == 0) {
            rv = wsk_server_publish_async(srv, "void", 4, WSK_OP_BINARY, buf, 1);
            CHECK(rv == 0 || rv == -EAGAIN);
        }
    }
    /* Refused whatever the queue: these are checked on this thread. */
    CHECK_EQ_INT(wsk_server_publish_async(srv, "news", 4, WSK_OP_TEXT, "\xff", 1), WSK_EUTF8);
    CHECK_EQ_INT(wsk_server_publish_async(srv, "", 0, WSK_OP_TEXT, "x", 1), -EINVAL);
    return NULL;
}

static void test_threads_publish(void)
{
    struct wsk_server_config cfg;
    wsk_server_config_init(&cfg);
    cfg.handlers.on_open = srv_open;
    cfg.max_publish_queue = 2048; /* small: publishers outrun the loop */
    CHECK_EQ_INT(wsk_server_new(&srv, loop, &cfg), 0);
    CHECK(wsk_server_listen(srv, "127.0.0.1", 0) > 0);
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%u/", wsk_server_port(srv));

    struct client cl[NCLIENTS] = {{0}};
    struct wsk_client_config cc;
    wsk_client_config_init(&cc);
    cc.handlers.on_open = cl_open;
    cc.handlers.on_message = cl_message;
    cc.handlers.on_close = cl_close;
    for (int i = 0; i < NCLIENTS; i++) {
        cc.user_data = &cl[i];
        CHECK_EQ_INT(wsk_client_connect(&cl[i].conn, loop, url, &cc), 0);
    }
    RUN_UNTIL(server_opened == NCLIENTS && cl[0].opened && cl[1].opened && cl[2].opened, WAIT_MS);

    pthread_t th[NTHREADS];
    for (int t = 0; t < NTHREADS; t++)
        CHECK_EQ_INT(pthread_create(&th[t], NULL, publisher, (void *)(intptr_t)t), 0);
    RUN_UNTIL(cl[0].messages == NTHREADS * NMSG && cl[1].messages == NTHREADS * NMSG &&
                  cl[2].messages == NTHREADS * NMSG,
              WAIT_MS);
    for (int t = 0; t < NTHREADS; t++)
        pthread_join(th[t], NULL);
    run_for(5);
    for (int i = 0; i < NCLIENTS; i++) {
        CHECK_EQ_INT(cl[i].messages, NTHREADS * NMSG);
        CHECK_EQ_INT(cl[i].bad, 0);
    }
    struct wsk_server_stats st;
    wsk_server_get_stats(srv, &st);
    printf("     %d messages from %d threads; %d calls refused (-EAGAIN) and retried\n",
           NTHREADS * NMSG, NTHREADS, atomic_load(&refused));
    CHECK(st.async_refused >= (uint64_t)atomic_load(&refused));
    CHECK_EQ_INT(st.async_waiting, 0);
    CHECK_EQ_INT(st.topics, 1);

    for (int i = 0; i < NCLIENTS; i++)
        wsk_conn_close(cl[i].conn, 1000, NULL);
    RUN_UNTIL(cl[0].closed && cl[1].closed && cl[2].closed, WAIT_MS);
    wsk_server_free(srv);
    srv = NULL;
}

/* The server goes while its hand-over is queued: the waiting messages are
 * dropped, and the loop refuses to be freed until the post has run. */
static void test_free_with_post_queued(void)
{
    struct wsk_loop *l;
    CHECK_EQ_INT(wsk_loop_new(&l, wsk_test_loop_cfg()), 0);
    struct wsk_server *s;
    CHECK_EQ_INT(wsk_server_new(&s, l, NULL), 0);
    CHECK_EQ_INT(wsk_server_publish_async(s, "t", 1, WSK_OP_TEXT, "one", 3), 0);
    CHECK_EQ_INT(wsk_server_publish_async(s, "t", 1, WSK_OP_TEXT, "two", 3), 0);
    struct wsk_server_stats st;
    wsk_server_get_stats(s, &st);
    CHECK(st.async_waiting > 6);
    wsk_server_free(s);
    CHECK_EQ_INT(wsk_loop_free(l), -EBUSY);
    CHECK_EQ_INT(wsk_loop_run(l), 0);
    CHECK_EQ_INT(wsk_loop_free(l), 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    alarm(110);
    CHECK_EQ_INT(wsk_loop_new(&loop, wsk_test_loop_cfg()), 0);
    WSK_RUN(test_threads_publish);
    WSK_RUN(test_free_with_post_queued);
    CHECK_EQ_INT(wsk_loop_free(loop), 0);
    WSK_TEST_END();
}
