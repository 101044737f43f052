/* Raw TCP and UDP (wsk/net.h) on real sockets on 127.0.0.1: echo both
 * ways, connect failures reported after the call, names resolved off the
 * loop, back-pressure and on_drain, broadcast, graceful close and the
 * peer's EOF, idle timeouts, shutdown, freeing from callbacks, UDP echo and
 * truncation. */
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ws/ws_loop.h"

/* ---- a TCP server and its clients, recorded ------------------------------ */

#define MAX_SIDE 8

struct side {
    struct wsk_tcp *t[MAX_SIDE];
    int n_open, n_closed;
    int close_error[MAX_SIDE];
    uint8_t got[1 << 20];
    size_t got_len;
    int drains;
    bool echo;
    bool pause_on_open;
    bool free_server_on_data;
    bool on_eof_reply; /* on_eof: send "late reply" and close */
    int eofs;
    struct wsk_tcp_server *srv;
};

static void s_open(struct wsk_tcp *t, void *ud)
{
    struct side *s = ud;
    if (s->n_open < MAX_SIDE)
        s->t[s->n_open] = t;
    s->n_open++;
    if (s->pause_on_open)
        wsk_tcp_pause(t, true);
}

static void s_data(struct wsk_tcp *t, const uint8_t *data, size_t len, void *ud)
{
    struct side *s = ud;
    if (s->got_len + len <= sizeof s->got) {
        memcpy(s->got + s->got_len, data, len);
        s->got_len += len;
    }
    if (s->echo)
        wsk_tcp_send(t, data, len);
    if (s->free_server_on_data) {
        wsk_tcp_server_free(s->srv);
        s->srv = NULL;
    }
}

static void s_eof(struct wsk_tcp *t, void *ud)
{
    struct side *s = ud;
    s->eofs++;
    CHECK_EQ_INT(wsk_tcp_send(t, "late reply", 10), 0);
    CHECK_EQ_INT(wsk_tcp_close(t), 0);
}

static void s_drain(struct wsk_tcp *t, void *ud)
{
    (void)t;
    ((struct side *)ud)->drains++;
}

static void s_close(struct wsk_tcp *t, int error, void *ud)
{
    (void)t;
    struct side *s = ud;
    if (s->n_closed < MAX_SIDE)
        s->close_error[s->n_closed] = error;
    s->n_closed++;
}

static struct wsk_tcp_config config(struct side *s)
{
    struct wsk_tcp_config cfg;
    wsk_tcp_config_init(&cfg);
    cfg.handlers = (struct wsk_tcp_handlers){
        .on_open = s_open, .on_data = s_data, .on_drain = s_drain, .on_close = s_close};
    if (s->on_eof_reply)
        cfg.handlers.on_eof = s_eof;
    cfg.user_data = s;
    return cfg;
}

static struct wsk_tcp_server *server(struct side *s)
{
    struct wsk_tcp_config cfg = config(s);
    struct wsk_tcp_server *srv = NULL;
    CHECK_EQ_INT(wsk_tcp_server_new(&srv, loop, &cfg), 0);
    int port = wsk_tcp_server_listen(srv, "127.0.0.1", 0);
    CHECK(port > 0);
    CHECK_EQ_INT(wsk_tcp_server_port(srv), port);
    s->srv = srv;
    return srv;
}

static struct wsk_tcp *client(struct side *c, const char *host, uint16_t port)
{
    struct wsk_tcp_config cfg = config(c);
    struct wsk_tcp *t = NULL;
    CHECK_EQ_INT(wsk_tcp_connect(&t, loop, host, port, &cfg), 0);
    return t;
}

static struct side S, C; /* big: static */

static void reset(void)
{
    memset(&S, 0, sizeof S);
    memset(&C, 0, sizeof C);
}

static void test_echo_and_close(void)
{
    reset();
    S.echo = true;
    struct wsk_tcp_server *srv = server(&S);
    /* A name, resolved off the loop thread. */
    struct wsk_tcp *t = client(&C, "localhost", wsk_tcp_server_port(srv));
    CHECK_EQ_INT(C.n_closed, 0); /* nothing reported inside the call */
    CHECK_EQ_INT(wsk_tcp_send(t, "early", 5), WSK_ESTATE);
    RUN_UNTIL(C.n_open == 1 && S.n_open == 1, 5000);
    CHECK_EQ_INT(wsk_tcp_server_count(srv), 1);
    CHECK_EQ_INT(wsk_tcp_send(t, "hello, ", 7), 0);
    CHECK_EQ_INT(wsk_tcp_send(t, "world", 5), 0);
    RUN_UNTIL(C.got_len == 12, 5000);
    CHECK_MEM(C.got, "hello, world", 12);
    CHECK(strncmp(wsk_tcp_peer(S.t[0]), "127.0.0.1:", 10) == 0);
    /* Our close: FIN after the queue; the server sees EOF, answers with its
     * own, both end cleanly. */
    CHECK_EQ_INT(wsk_tcp_send(t, "bye", 3), 0);
    CHECK_EQ_INT(wsk_tcp_close(t), 0);
    CHECK_EQ_INT(wsk_tcp_send(t, "late", 4), WSK_ESTATE);
    RUN_UNTIL(C.n_closed == 1 && S.n_closed == 1, 5000);
    CHECK_EQ_INT(C.close_error[0], 0);
    CHECK_EQ_INT(S.close_error[0], 0);
    CHECK_MEM(S.got + S.got_len - 3, "bye", 3);
    wsk_tcp_server_free(srv);
}

/* Half-close: after wsk_tcp_shutdown() the server gets EOF once the queue
 * is out, and the client still receives the echo of everything it sent
 * (wsk_tcp_close() would discard it), then the server's EOF ends both. */
static void test_shutdown_reads_on(void)
{
    reset();
    S.echo = true;
    struct wsk_tcp_server *srv = server(&S);
    struct wsk_tcp *t = client(&C, "127.0.0.1", wsk_tcp_server_port(srv));
    CHECK_EQ_INT(wsk_tcp_shutdown(t), WSK_ESTATE); /* not open yet */
    RUN_UNTIL(C.n_open == 1 && S.n_open == 1, 5000);
    static uint8_t big[300000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 7);
    CHECK_EQ_INT(wsk_tcp_send(t, big, sizeof big), 0);
    CHECK_EQ_INT(wsk_tcp_shutdown(t), 0);
    CHECK_EQ_INT(wsk_tcp_shutdown(t), 0);
    CHECK_EQ_INT(wsk_tcp_send(t, "late", 4), WSK_ESTATE);
    RUN_UNTIL(C.n_closed == 1 && S.n_closed == 1, 10000);
    CHECK_EQ_INT(C.close_error[0], 0);
    CHECK_EQ_INT(S.close_error[0], 0);
    CHECK_EQ_INT(C.got_len, sizeof big);
    CHECK_MEM(C.got, big, sizeof big);
    wsk_tcp_server_free(srv);
}

/* on_eof: the server sees the client's half-close, the connection stays
 * open for its answer, which the client (reading on after
 * wsk_tcp_shutdown()) gets before both end normally. */
static void test_on_eof_answers_after_half_close(void)
{
    reset();
    S.on_eof_reply = true;
    struct wsk_tcp_server *srv = server(&S);
    struct wsk_tcp *t = client(&C, "127.0.0.1", wsk_tcp_server_port(srv));
    RUN_UNTIL(C.n_open == 1 && S.n_open == 1, 5000);
    CHECK_EQ_INT(wsk_tcp_send(t, "question", 8), 0);
    CHECK_EQ_INT(wsk_tcp_shutdown(t), 0);
    RUN_UNTIL(C.n_closed == 1 && S.n_closed == 1, 5000);
    CHECK_EQ_INT(S.eofs, 1);
    CHECK_EQ_INT(S.got_len, 8);
    CHECK_EQ_INT(C.got_len, 10);
    CHECK_MEM(C.got, "late reply", 10);
    CHECK_EQ_INT(C.close_error[0], 0);
    CHECK_EQ_INT(S.close_error[0], 0);
    wsk_tcp_server_free(srv);
}

static void test_connect_refused(void)
{
    reset();
    /* A port nobody listens on: bind one, close it. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &al);
    close(fd);
    client(&C, "127.0.0.1", ntohs(a.sin_port));
    CHECK_EQ_INT(C.n_closed, 0);
    RUN_UNTIL(C.n_closed == 1, 5000);
    CHECK_EQ_INT(C.close_error[0], -ECONNREFUSED);
    CHECK_EQ_INT(C.n_open, 0);
    struct wsk_tcp *t;
    CHECK_EQ_INT(wsk_tcp_connect(&t, loop, "", 80, NULL), -EINVAL);
    CHECK_EQ_INT(wsk_tcp_connect(&t, loop, "127.0.0.1", 0, NULL), -EINVAL);
    /* A name that does not resolve. */
    reset();
    client(&C, "no-such-host.invalid", 80);
    RUN_UNTIL(C.n_closed == 1, 10000);
    CHECK_EQ_INT(C.close_error[0], WSK_EDNS);
}

/* A client that does not read: the server's sends report back-pressure,
 * then on_drain once the client reads. */
static void test_backpressure(void)
{
    reset();
    C.pause_on_open = true;
    struct wsk_tcp_config cfg = config(&S);
    cfg.max_send_queue = 64 * 1024;
    struct wsk_tcp_server *srv = NULL;
    CHECK_EQ_INT(wsk_tcp_server_new(&srv, loop, &cfg), 0);
    CHECK(wsk_tcp_server_listen(srv, NULL, 0) > 0);
    struct wsk_tcp *t = client(&C, "127.0.0.1", wsk_tcp_server_port(srv));
    RUN_UNTIL(S.n_open == 1 && C.n_open == 1, 5000);
    static uint8_t chunk[16384];
    int rv = 0, sent = 0;
    while ((rv = wsk_tcp_send(S.t[0], chunk, sizeof chunk)) == 0 && sent < 4096) {
        sent++;
        run_for(1); /* let it flush into the socket buffers */
    }
    CHECK_EQ_INT(rv, WSK_EBACKPRESSURE);
    CHECK(sent < 4096);
    CHECK(wsk_tcp_send_queue(S.t[0]) > 64 * 1024);
    CHECK_EQ_INT(S.drains, 0);
    wsk_tcp_pause(t, false);
    RUN_UNTIL(S.drains == 1, 10000);
    wsk_tcp_server_free(srv);
    RUN_UNTIL(C.n_closed == 1, 5000);
}

static void test_broadcast(void)
{
    reset();
    struct wsk_tcp_server *srv = server(&S);
    struct side c2 = {0}, c3 = {0};
    memset(&C, 0, sizeof C);
    client(&C, "127.0.0.1", wsk_tcp_server_port(srv));
    struct wsk_tcp_config cfg2 = config(&c2), cfg3 = config(&c3);
    struct wsk_tcp *t2, *t3;
    CHECK_EQ_INT(wsk_tcp_connect(&t2, loop, "127.0.0.1", wsk_tcp_server_port(srv), &cfg2), 0);
    CHECK_EQ_INT(wsk_tcp_connect(&t3, loop, "127.0.0.1", wsk_tcp_server_port(srv), &cfg3), 0);
    RUN_UNTIL(S.n_open == 3 && C.n_open == 1 && c2.n_open == 1 && c3.n_open == 1, 5000);
    CHECK_EQ_INT(wsk_tcp_server_broadcast(srv, "all\n", 4, S.t[0]), 2);
    RUN_UNTIL(C.got_len + c2.got_len + c3.got_len == 8, 5000);
    run_for(20);
    CHECK_EQ_INT(C.got_len + c2.got_len + c3.got_len, 8);
    /* Shutdown: every connection closed gracefully, the clients see EOF. */
    wsk_tcp_server_shutdown(srv);
    RUN_UNTIL(S.n_closed == 3 && C.n_closed == 1 && c2.n_closed == 1 && c3.n_closed == 1, 5000);
    CHECK_EQ_INT(S.close_error[0] | S.close_error[1] | S.close_error[2], 0);
    CHECK_EQ_INT(c2.close_error[0], 0);
    wsk_tcp_server_free(srv);
}

static void test_idle_timeout(void)
{
    reset();
    struct wsk_tcp_config cfg = config(&S);
    cfg.idle_timeout_ms = 100;
    struct wsk_tcp_server *srv = NULL;
    CHECK_EQ_INT(wsk_tcp_server_new(&srv, loop, &cfg), 0);
    CHECK(wsk_tcp_server_listen(srv, "127.0.0.1", 0) > 0);
    client(&C, "127.0.0.1", wsk_tcp_server_port(srv));
    RUN_UNTIL(S.n_closed == 1, 5000);
    CHECK_EQ_INT(S.close_error[0], -ETIMEDOUT);
    RUN_UNTIL(C.n_closed == 1, 5000);
    wsk_tcp_server_free(srv);
}

/* Freeing the server from on_data: every connection ends at once. */
static void test_free_from_callback(void)
{
    reset();
    S.free_server_on_data = true;
    struct wsk_tcp_server *srv = server(&S);
    struct wsk_tcp *t = client(&C, "127.0.0.1", wsk_tcp_server_port(srv));
    RUN_UNTIL(C.n_open == 1 && S.n_open == 1, 5000);
    wsk_tcp_send(t, "x", 1);
    RUN_UNTIL(S.srv == NULL && S.n_closed == 1, 5000);
    CHECK_EQ_INT(S.close_error[0], WSK_ECLOSED);
    RUN_UNTIL(C.n_closed == 1, 5000);
}

/* ---- UDP ----------------------------------------------------------------- */

struct udp_side {
    int n;
    size_t len;
    bool truncated;
    uint8_t data[256];
    bool echo;
};

static void u_datagram(struct wsk_udp *u, const uint8_t *data, size_t len, bool truncated,
                       const struct sockaddr *from, socklen_t from_len, void *ud)
{
    struct udp_side *s = ud;
    s->n++;
    s->len = len;
    s->truncated = truncated;
    memcpy(s->data, data, len < sizeof s->data ? len : sizeof s->data);
    if (s->echo)
        CHECK_EQ_INT(wsk_udp_send_to(u, data, len, from, from_len), 0);
}

static void test_udp(void)
{
    struct udp_side us = {.echo = true}, uc = {0};
    struct wsk_udp_config cfg;
    wsk_udp_config_init(&cfg);
    cfg.handlers.on_datagram = u_datagram;
    cfg.user_data = &us;
    cfg.max_datagram = 16;
    struct wsk_udp *srv = NULL, *cl = NULL;
    CHECK_EQ_INT(wsk_udp_bind(&srv, loop, "127.0.0.1", 0, &cfg), 0);
    CHECK(wsk_udp_port(srv) > 0);
    cfg.user_data = &uc;
    cfg.max_datagram = 0;
    CHECK_EQ_INT(wsk_udp_connect(&cl, loop, "localhost", wsk_udp_port(srv), &cfg), 0);
    CHECK_EQ_INT(wsk_udp_send(cl, "ping", 4), 0);
    RUN_UNTIL(uc.n == 1, 5000);
    CHECK_EQ_INT(uc.len, 4);
    CHECK_MEM(uc.data, "ping", 4);
    CHECK(!us.truncated);
    /* Longer than the server's max_datagram: cut, and said so. */
    CHECK_EQ_INT(wsk_udp_send(cl, "0123456789abcdefXYZ", 19), 0);
    RUN_UNTIL(uc.n == 2, 5000);
    CHECK(us.truncated);
    CHECK_EQ_INT(us.len, 16);
    CHECK_EQ_INT(wsk_udp_send(srv, "x", 1), -EDESTADDRREQ);
    char buf[64];
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(80)};
    a.sin_addr.s_addr = htonl(0x7f000001);
    CHECK_STR(wsk_sockaddr_str((struct sockaddr *)&a, sizeof a, buf, sizeof buf), "127.0.0.1:80");
    wsk_udp_free(cl);
    wsk_udp_free(srv);
}

int main(void)
{
    CHECK_EQ_INT(wsk_loop_new(&loop, wsk_test_loop_cfg()), 0);
    WSK_RUN(test_echo_and_close);
    WSK_RUN(test_shutdown_reads_on);
    WSK_RUN(test_on_eof_answers_after_half_close);
    WSK_RUN(test_connect_refused);
    WSK_RUN(test_backpressure);
    WSK_RUN(test_broadcast);
    WSK_RUN(test_idle_timeout);
    WSK_RUN(test_free_from_callback);
    WSK_RUN(test_udp);
    run_for(10);
    CHECK_EQ_INT(wsk_loop_free(loop), 0);
    WSK_TEST_END();
}
