/* The client's name resolution runs on a helper thread per connection and
 * hands its answer to the loop with wsk_loop_post(). Many clients connect to
 * "localhost" at once, and some are closed while their thread is still
 * resolving (the thread then finds its job orphaned and posts nothing).
 * Every connection must end in exactly one on_close, opened or not, with no
 * data race: built for ThreadSanitizer too (label "threads").
 */
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "wsk.h"
#include "wsk_test.h"

#define NCLIENTS 16

static struct wsk_loop *loop;

struct client {
    struct wsk_conn *conn;
    int opened, closes, messages;
    int error;
    bool was_open;
};

struct tally {
    int closed;
};

static struct tally tally;

static void cl_open(struct wsk_conn *c, const struct wsk_open_event *ev, void *ud)
{
    (void)ev;
    struct client *s = wsk_conn_get_data(c);
    (void)ud;
    s->opened++;
    CHECK_EQ_INT(wsk_conn_send(c, WSK_OP_TEXT, "hi", 2), 0);
}

static void cl_message(struct wsk_conn *c, const struct wsk_message *m, void *ud)
{
    (void)m;
    (void)ud;
    struct client *s = wsk_conn_get_data(c);
    s->messages++;
    wsk_conn_close(c, 1000, NULL);
}

static void cl_close(struct wsk_conn *c, const struct wsk_close_event *ev, void *ud)
{
    (void)ud;
    struct client *s = wsk_conn_get_data(c);
    s->closes++;
    s->error = ev->error;
    s->was_open = ev->was_open;
    tally.closed++;
}

static void srv_message(struct wsk_conn *c, const struct wsk_message *m, void *ud)
{
    (void)ud;
    wsk_conn_send(c, m->opcode, m->data, m->len);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void stop_cb(struct wsk_loop *l, struct wsk_timer *t)
{
    (void)t;
    wsk_loop_stop(l);
}

/* Runs the loop in 1 ms slices until every client has closed, at most ms. */
static bool run_until_all_closed(int n, uint64_t ms)
{
    uint64_t end = now_ms() + ms;
    struct wsk_timer slice;
    wsk_timer_init(&slice, stop_cb, NULL);
    while (tally.closed < n) {
        if (now_ms() > end)
            return false;
        wsk_timer_start(loop, &slice, 1, 0);
        wsk_loop_run(loop);
        wsk_timer_stop(loop, &slice);
    }
    return true;
}

static void test_many_resolving_clients(void)
{
    struct wsk_server_config sc;
    wsk_server_config_init(&sc);
    sc.handlers.on_message = srv_message;
    struct wsk_server *srv = NULL;
    CHECK_EQ_INT(wsk_server_new(&srv, loop, &sc), 0);
    CHECK(wsk_server_listen(srv, "127.0.0.1", 0) > 0);
    char url[64];
    snprintf(url, sizeof url, "ws://localhost:%u/", wsk_server_port(srv));

    struct wsk_client_config cc;
    wsk_client_config_init(&cc);
    cc.handlers.on_open = cl_open;
    cc.handlers.on_message = cl_message;
    cc.handlers.on_close = cl_close;
    struct client clients[NCLIENTS] = {{0}};
    tally.closed = 0;
    for (int i = 0; i < NCLIENTS; i++) {
        CHECK_EQ_INT(wsk_client_connect(&clients[i].conn, loop, url, &cc), 0);
        wsk_conn_set_data(clients[i].conn, &clients[i]);
    }
    /* Every third one is closed while its thread resolves. */
    for (int i = 0; i < NCLIENTS; i += 3)
        CHECK_EQ_INT(wsk_conn_close(clients[i].conn, 1000, NULL), 0);
    CHECK(run_until_all_closed(NCLIENTS, 20000));
    for (int i = 0; i < NCLIENTS; i++) {
        CHECK_EQ_INT(clients[i].closes, 1);
        if (i % 3 == 0) {
            CHECK_EQ_INT(clients[i].opened, 0);
            CHECK(!clients[i].was_open);
            CHECK(clients[i].error != 0);
        } else {
            CHECK_EQ_INT(clients[i].opened, 1);
            CHECK_EQ_INT(clients[i].messages, 1);
            CHECK_EQ_INT(clients[i].error, 0);
        }
    }
    /* Let the server finish the close handshakes, then free it. */
    uint64_t end = now_ms() + 10000;
    struct wsk_timer slice;
    wsk_timer_init(&slice, stop_cb, NULL);
    while (wsk_server_num_connections(srv) > 0 && now_ms() < end) {
        wsk_timer_start(loop, &slice, 1, 0);
        wsk_loop_run(loop);
        wsk_timer_stop(loop, &slice);
    }
    CHECK_EQ_INT(wsk_server_num_connections(srv), 0);
    wsk_server_free(srv);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    alarm(120);
    CHECK_EQ_INT(wsk_loop_new(&loop, wsk_test_loop_cfg()), 0);
    /* Twice: the second round reuses what the first left (pools, freed
     * jobs) while orphaned threads of the first may still be finishing. */
    WSK_RUN(test_many_resolving_clients);
    WSK_RUN(test_many_resolving_clients);
    wsk_loop_free(loop);
    WSK_TEST_END();
}
