/* The server's on_upgrade handler (src/ws/server.c): what it sees of the
 * request, refusing with a status, choosing the subprotocol, topics joined
 * before on_open, data carried to on_open, and closing the connection or
 * freeing the server from inside it. wsk clients on the same loop.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>

#include "wsk.h"
#include "wsk_test.h"

#include "ws/ws_loop.h"

#define WAIT_MS 20000

static struct wsk_server *srv;

static struct {
    int calls, opened, closed;
    char path[64], query[64], offered[64], cookie[64];
    bool is_loopback;
    int subscribers_at_open; /* of "room:PATH" when on_open ran */
    void *data_at_open;
    char subprotocol_at_open[32];
    int choose_bad, choose_none_rv;
} seen;

static int marker;

static int on_upgrade(struct wsk_conn *c, const struct wsk_upgrade_event *ev, void *ud)
{
    (void)ud;
    seen.calls++;
    snprintf(seen.path, sizeof seen.path, "%.*s", (int)ev->path.len, ev->path.ptr);
    snprintf(seen.query, sizeof seen.query, "%.*s", (int)ev->query.len, ev->query.ptr);
    snprintf(seen.offered, sizeof seen.offered, "%.*s", (int)ev->subprotocols.len,
             ev->subprotocols.ptr);
    const struct wsk_slice *cookie = wsk_http_header_get(ev->headers, ev->num_headers, "Cookie");
    snprintf(seen.cookie, sizeof seen.cookie, "%.*s", cookie ? (int)cookie->len : 0,
             cookie ? cookie->ptr : "");
    const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)ev->peer;
    seen.is_loopback =
        ev->peer && ev->peer->sa_family == AF_INET && ntohl(in->sin_addr.s_addr) == INADDR_LOOPBACK;
    if (!strcmp(seen.path, "/deny"))
        return 401;
    if (!strcmp(seen.path, "/odd"))
        return 302; /* not a refusal status: 500 */
    if (!strcmp(seen.path, "/close")) {
        wsk_conn_close(c, 1000, NULL);
        return 0;
    }
    if (!strcmp(seen.path, "/free")) {
        wsk_server_free(srv);
        srv = NULL;
        return 0;
    }
    seen.choose_bad = wsk_conn_choose_subprotocol(c, "not-offered");
    if (!strcmp(seen.path, "/none"))
        seen.choose_none_rv = wsk_conn_choose_subprotocol(c, NULL);
    else
        CHECK_EQ_INT(wsk_conn_choose_subprotocol(c, "second"), 0);
    char room[80];
    int n = snprintf(room, sizeof room, "room:%s", seen.path); /* a local: copied */
    CHECK_EQ_INT(wsk_conn_subscribe(c, room, (size_t)n), 1);
    CHECK_EQ_INT(wsk_conn_subscribe(c, "all", 3), 1);
    CHECK_EQ_INT(wsk_conn_subscribe(c, "", 0), -EINVAL);
    wsk_conn_set_data(c, &marker);
    return 0;
}

static void srv_open(struct wsk_conn *c, const struct wsk_open_event *ev, void *ud)
{
    (void)ud;
    seen.opened++;
    char room[80];
    int n = snprintf(room, sizeof room, "room:%.*s", (int)ev->path.len, ev->path.ptr);
    seen.subscribers_at_open = (int)wsk_server_subscribers(srv, room, (size_t)n);
    seen.data_at_open = wsk_conn_get_data(c);
    snprintf(seen.subprotocol_at_open, sizeof seen.subprotocol_at_open, "%.*s",
             (int)ev->subprotocol.len, ev->subprotocol.ptr);
    /* Outside on_upgrade it says so. */
    CHECK_EQ_INT(wsk_conn_choose_subprotocol(c, "first"), WSK_ESTATE);
}

static void srv_close(struct wsk_conn *c, const struct wsk_close_event *ev, void *ud)
{
    (void)c;
    (void)ev;
    (void)ud;
    seen.closed++;
}

static void start(void)
{
    struct wsk_server_config cfg;
    wsk_server_config_init(&cfg);
    static const char *const protos[] = {"first", "second"};
    cfg.subprotocols = protos;
    cfg.num_subprotocols = 2;
    cfg.on_upgrade = on_upgrade;
    cfg.handlers.on_open = srv_open;
    cfg.handlers.on_close = srv_close;
    CHECK_EQ_INT(wsk_server_new(&srv, loop, &cfg), 0);
    CHECK(wsk_server_listen(srv, "127.0.0.1", 0) > 0);
    memset(&seen, 0, sizeof seen);
}

struct cl {
    struct wsk_conn *conn;
    bool opened, closed;
    int http_status, error, messages;
    char subprotocol[32];
};

static void cl_open(struct wsk_conn *c, const struct wsk_open_event *ev, void *ud)
{
    (void)c;
    struct cl *t = ud;
    t->opened = true;
    snprintf(t->subprotocol, sizeof t->subprotocol, "%.*s", (int)ev->subprotocol.len,
             ev->subprotocol.ptr);
}

static void cl_message(struct wsk_conn *c, const struct wsk_message *m, void *ud)
{
    (void)c;
    (void)m;
    ((struct cl *)ud)->messages++;
}

static void cl_close(struct wsk_conn *c, const struct wsk_close_event *ev, void *ud)
{
    (void)c;
    struct cl *t = ud;
    t->closed = true;
    t->http_status = ev->http_status;
    t->error = ev->error;
}

static void connect_to(struct cl *t, const char *path_query)
{
    memset(t, 0, sizeof *t);
    struct wsk_client_config cc;
    wsk_client_config_init(&cc);
    static const char *const offer[] = {"first", "second"};
    static const char *const headers[] = {"Cookie: session=abc"};
    cc.subprotocols = offer;
    cc.num_subprotocols = 2;
    cc.headers = headers;
    cc.num_headers = 1;
    cc.handlers.on_open = cl_open;
    cc.handlers.on_message = cl_message;
    cc.handlers.on_close = cl_close;
    cc.user_data = t;
    char url[160];
    snprintf(url, sizeof url, "ws://127.0.0.1:%u%s", wsk_server_port(srv), path_query);
    CHECK_EQ_INT(wsk_client_connect(&t->conn, loop, url, &cc), 0);
    RUN_UNTIL(t->opened || t->closed, WAIT_MS);
}

static void test_accept(void)
{
    start();
    struct cl a;
    connect_to(&a, "/team/a?token=x&y=1");
    CHECK(a.opened);
    CHECK_EQ_INT(seen.calls, 1);
    CHECK_STR(seen.path, "/team/a");
    CHECK_STR(seen.query, "token=x&y=1");
    CHECK_STR(seen.offered, "first, second");
    CHECK_STR(seen.cookie, "session=abc");
    CHECK(seen.is_loopback);
    CHECK_EQ_INT(seen.choose_bad, -EINVAL);
    /* The handler's choice over the server's preference ("first"). */
    CHECK_STR(a.subprotocol, "second");
    CHECK_STR(seen.subprotocol_at_open, "second");
    CHECK_EQ_INT(seen.subscribers_at_open, 1);
    CHECK(seen.data_at_open == &marker);
    CHECK_EQ_INT(wsk_server_publish(srv, "room:/team/a", 12, WSK_OP_TEXT, "hi", 2), 1);
    CHECK_EQ_INT(wsk_server_publish(srv, "all", 3, WSK_OP_TEXT, "hi", 2), 1);
    RUN_UNTIL(a.messages == 2, WAIT_MS);

    struct cl b;
    connect_to(&b, "/none");
    CHECK(b.opened);
    CHECK_EQ_INT(seen.choose_none_rv, 0);
    CHECK_STR(b.subprotocol, ""); /* none, though both sides know "first" */
    CHECK_EQ_INT(wsk_server_publish(srv, "all", 3, WSK_OP_TEXT, "hi", 2), 2);

    wsk_conn_close(a.conn, 1000, NULL);
    wsk_conn_close(b.conn, 1000, NULL);
    RUN_UNTIL(a.closed && b.closed && seen.closed == 2, WAIT_MS);
    struct wsk_server_stats st;
    wsk_server_get_stats(srv, &st);
    CHECK_EQ_INT(st.subscriptions, 0);
    wsk_server_free(srv);
    run_for(10);
}

static void test_refuse(void)
{
    start();
    struct cl c;
    connect_to(&c, "/deny");
    CHECK(c.closed && !c.opened);
    CHECK_EQ_INT(c.http_status, 401);
    connect_to(&c, "/odd");
    CHECK(c.closed && !c.opened);
    CHECK_EQ_INT(c.http_status, 500);
    connect_to(&c, "/close");
    CHECK(c.closed && !c.opened);
    CHECK_EQ_INT(seen.opened, 0);
    CHECK_EQ_INT(seen.closed, 0); /* never open: no on_close */
    CHECK_EQ_INT(wsk_server_num_connections(srv), 0);
    connect_to(&c, "/free");
    CHECK(c.closed && !c.opened);
    CHECK(srv == NULL);
    run_for(10);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    alarm(110);
    CHECK_EQ_INT(wsk_loop_new(&loop, wsk_test_loop_cfg()), 0);
    WSK_RUN(test_accept);
    WSK_RUN(test_refuse);
    CHECK_EQ_INT(wsk_loop_free(loop), 0);
    WSK_TEST_END();
}
