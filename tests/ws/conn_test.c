/* Servers, clients and connections in one process over 127.0.0.1: echo,
 * close handshakes both ways, broadcast, rejected handshakes, connection
 * errors, keepalive, timeouts and shutdown. Raw-socket peers run on a
 * second thread with blocking sockets, so the loop under test is the only
 * non-blocking party. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <zlib.h>

#include "wsk.h"
#include "wsk_test.h"

#include "ws/ws_loop.h"

/* ---- an echo server ------------------------------------------------------ */

struct server_state {
    int opened, closed, pongs;
    unsigned last_code;
    char last_reason[128];
    bool broadcast;
    struct wsk_server *srv;
};

static void srv_open(struct wsk_conn *c, const struct wsk_open_event *ev, void *ud)
{
    (void)c;
    (void)ev;
    struct server_state *s = ud;
    s->opened++;
}

static void srv_message(struct wsk_conn *c, const struct wsk_message *m, void *ud)
{
    struct server_state *s = ud;
    if (m->opcode == WSK_OP_TEXT && m->len == 8 && !memcmp(m->data, "close-me", 8)) {
        wsk_conn_close(c, 4000, "bye");
        return;
    }
    if (s->broadcast)
        wsk_server_broadcast(s->srv, m->opcode, m->data, m->len);
    else
        CHECK_EQ_INT(wsk_conn_send(c, m->opcode, m->data, m->len), 0);
}

static void srv_pong(struct wsk_conn *c, const uint8_t *d, size_t n, void *ud)
{
    (void)c;
    (void)d;
    (void)n;
    struct server_state *s = ud;
    s->pongs++;
}

static void srv_close(struct wsk_conn *c, const struct wsk_close_event *ev, void *ud)
{
    (void)c;
    struct server_state *s = ud;
    s->closed++;
    s->last_code = ev->code;
    snprintf(s->last_reason, sizeof s->last_reason, "%.*s", (int)ev->reason.len, ev->reason.ptr);
}

static struct wsk_server *start_server(struct server_state *st, struct wsk_server_config *cfg)
{
    struct wsk_server_config local;
    if (!cfg) {
        wsk_server_config_init(&local);
        cfg = &local;
    }
    cfg->handlers.on_open = srv_open;
    cfg->handlers.on_message = srv_message;
    cfg->handlers.on_pong = srv_pong;
    cfg->handlers.on_close = srv_close;
    cfg->user_data = st;
    struct wsk_server *srv = NULL;
    CHECK_EQ_INT(wsk_server_new(&srv, loop, cfg), 0);
    CHECK(wsk_server_listen(srv, "127.0.0.1", 0) > 0);
    CHECK(wsk_server_port(srv) > 0);
    st->srv = srv;
    return srv;
}

/* ---- a scripted client -------------------------------------------------- */

struct client_state {
    int step;
    struct wsk_conn *conn;
    int opened, messages;
    bool closed;
    struct wsk_close_event close;
    char reason[128];
    uint8_t *big;
    size_t big_len;
    bool stop_loop_on_close;
    char subprotocol[32];
};

static void cl_open(struct wsk_conn *c, const struct wsk_open_event *ev, void *ud)
{
    struct client_state *s = ud;
    s->conn = c;
    s->opened++;
    snprintf(s->subprotocol, sizeof s->subprotocol, "%.*s", (int)ev->subprotocol.len,
             ev->subprotocol.ptr);
    CHECK_EQ_INT(wsk_conn_send(c, WSK_OP_TEXT, "hello", 5), 0);
}

static void cl_message(struct wsk_conn *c, const struct wsk_message *m, void *ud)
{
    struct client_state *s = ud;
    s->messages++;
    switch (s->step++) {
    case 0:
        CHECK_EQ_INT(m->opcode, WSK_OP_TEXT);
        CHECK_EQ_INT(m->len, 5);
        CHECK_MEM(m->data, "hello", 5);
        CHECK_EQ_INT(wsk_conn_send(c, WSK_OP_BINARY, s->big, s->big_len), 0);
        break;
    case 1:
        CHECK_EQ_INT(m->opcode, WSK_OP_BINARY);
        CHECK_EQ_INT(m->len, s->big_len);
        if (m->len == s->big_len)
            CHECK_MEM(m->data, s->big, s->big_len);
        CHECK_EQ_INT(wsk_conn_send(c, WSK_OP_TEXT, "", 0), 0);
        break;
    case 2:
        CHECK_EQ_INT(m->opcode, WSK_OP_TEXT);
        CHECK_EQ_INT(m->len, 0);
        /* Invalid UTF-8 is refused before it leaves. */
        CHECK_EQ_INT(wsk_conn_send(c, WSK_OP_TEXT, "\xc0\x80", 2), WSK_EUTF8);
        CHECK_EQ_INT(wsk_conn_close(c, 1000, "done"), 0);
        /* After close, sending is an error; closing again is harmless. */
        CHECK_EQ_INT(wsk_conn_send(c, WSK_OP_TEXT, "x", 1), WSK_ESTATE);
        CHECK_EQ_INT(wsk_conn_close(c, 1000, NULL), 0);
        break;
    default:
        break;
    }
}

static void cl_close(struct wsk_conn *c, const struct wsk_close_event *ev, void *ud)
{
    (void)c;
    struct client_state *s = ud;
    s->closed = true;
    s->close = *ev;
    snprintf(s->reason, sizeof s->reason, "%.*s", (int)ev->reason.len, ev->reason.ptr);
    s->close.reason.ptr = NULL;
    if (s->stop_loop_on_close)
        wsk_loop_stop(loop);
}

static struct wsk_conn *connect_to(const char *host, uint16_t port, const char *path,
                                   struct client_state *s, struct wsk_client_config *cfg)
{
    struct wsk_client_config local;
    if (!cfg) {
        wsk_client_config_init(&local);
        cfg = &local;
    }
    cfg->handlers.on_open = cl_open;
    cfg->handlers.on_message = cl_message;
    cfg->handlers.on_close = cl_close;
    cfg->user_data = s;
    char url[128];
    snprintf(url, sizeof url, "ws://%s:%u%s", host, port, path);
    struct wsk_conn *c = NULL;
    CHECK_EQ_INT(wsk_client_connect(&c, loop, url, cfg), 0);
    return c;
}

static void test_echo_and_client_close(void)
{
    struct server_state st = {0};
    struct wsk_server *srv = start_server(&st, NULL);
    struct client_state cs = {0};
    cs.big_len = 300000;
    cs.big = malloc(cs.big_len);
    for (size_t i = 0; i < cs.big_len; i++)
        cs.big[i] = (uint8_t)(i * 7 + i / 256);
    cs.stop_loop_on_close = true;
    connect_to("127.0.0.1", wsk_server_port(srv), "/chat?room=1", &cs, NULL);
    RUN_UNTIL(cs.closed, 10000);
    CHECK_EQ_INT(cs.opened, 1);
    CHECK_EQ_INT(cs.messages, 3);
    CHECK(cs.closed);
    CHECK_EQ_INT(cs.close.code, 1000);
    CHECK_EQ_INT(cs.close.error, 0);
    CHECK(cs.close.was_open);
    /* Let the server finish its side. */
    RUN_UNTIL(st.closed == 1, 5000);
    CHECK_EQ_INT(st.opened, 1);
    CHECK_EQ_INT(st.closed, 1);
    CHECK_EQ_INT(st.last_code, 1000);
    CHECK_STR(st.last_reason, "done");
    CHECK_EQ_INT(wsk_server_num_connections(srv), 0);
    wsk_server_free(srv);
    free(cs.big);
}

/* A client frame far bigger than the socket takes at once goes out partly
 * straight from the masking scratch buffer and partly through the queue:
 * every byte must come back (the key's position continues across both). */
static void test_big_client_frame(void)
{
    struct server_state st = {0};
    struct wsk_server_config sc;
    wsk_server_config_init(&sc);
    sc.limits.max_send_queue = 32u << 20; /* the echo is queued whole */
    struct wsk_server *srv = start_server(&st, &sc);
    struct client_state cs = {0};
    cs.big_len = (9u << 20) + 12345;
    cs.big = malloc(cs.big_len);
    for (size_t i = 0; i < cs.big_len; i++)
        cs.big[i] = (uint8_t)(i * 131 + i / 4093);
    cs.stop_loop_on_close = true;
    struct wsk_client_config cc;
    wsk_client_config_init(&cc);
    cc.limits.max_send_queue = 32u << 20;
    connect_to("127.0.0.1", wsk_server_port(srv), "/", &cs, &cc);
    RUN_UNTIL(cs.closed, 30000);
    CHECK_EQ_INT(cs.messages, 3);
    CHECK_EQ_INT(cs.close.code, 1000);
    RUN_UNTIL(st.closed == 1, 5000);
    wsk_server_free(srv);
    free(cs.big);
}

static void test_server_close_with_reason(void)
{
    struct server_state st = {0};
    struct wsk_server *srv = start_server(&st, NULL);
    struct client_state cs = {0};
    cs.step = 100; /* script off: just watch */
    cs.stop_loop_on_close = true;
    struct wsk_conn *c = connect_to("127.0.0.1", wsk_server_port(srv), "/", &cs, NULL);
    (void)c;
    /* cl_open sends "hello"; make the server close instead. */
    /* Once "hello" is echoed, nothing is in flight when the server closes. */
    RUN_UNTIL(cs.messages == 1 && st.opened == 1, 5000);
    CHECK_EQ_INT(cs.opened, 1);
    wsk_server_shutdown(srv, 1001, "going away");
    RUN_UNTIL(cs.closed, 10000);
    CHECK(cs.closed);
    CHECK_EQ_INT(cs.close.code, 1001);
    CHECK_STR(cs.reason, "going away");
    CHECK_EQ_INT(cs.close.error, 0);
    wsk_server_free(srv);
}

static void test_loop_ends_after_shutdown(void)
{
    struct server_state st = {0};
    struct wsk_server *srv = start_server(&st, NULL);
    struct client_state cs = {0};
    cs.step = 100;
    connect_to("127.0.0.1", wsk_server_port(srv), "/", &cs, NULL);
    RUN_UNTIL(st.opened == 1 && cs.messages == 1, 5000);
    CHECK_EQ_INT(st.opened, 1);
    wsk_server_shutdown(srv, 1001, NULL);
    /* Nothing is left once the close handshake completes: run returns by
     * itself (alarm() only guards against a hang). */
    alarm(10);
    CHECK_EQ_INT(wsk_loop_run(loop), 0);
    alarm(0);
    CHECK(cs.closed);
    CHECK_EQ_INT(cs.close.code, 1001);
    CHECK_EQ_INT(st.closed, 1);
    wsk_server_free(srv);
}

static void test_broadcast(void)
{
    struct server_state st = {0};
    st.broadcast = true;
    struct wsk_server *srv = start_server(&st, NULL);
    struct client_state cs[3] = {{0}};
    for (int i = 0; i < 3; i++) {
        cs[i].step = 100;
        connect_to("127.0.0.1", wsk_server_port(srv), "/", &cs[i], NULL);
    }
    /* Each client said hello once, and everyone hears all three. */
    RUN_UNTIL(cs[0].messages == 3 && cs[1].messages == 3 && cs[2].messages == 3, 5000);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(cs[i].opened, 1);
        CHECK_EQ_INT(cs[i].messages, 3);
    }
    CHECK_EQ_INT(wsk_server_broadcast(srv, WSK_OP_TEXT, "\xff", 1), WSK_EUTF8);
    uint8_t *big = calloc(1, 100000);
    CHECK_EQ_INT(wsk_server_broadcast(srv, WSK_OP_BINARY, big, 100000), 3);
    free(big);
    RUN_UNTIL(cs[0].messages == 4 && cs[1].messages == 4 && cs[2].messages == 4, 5000);
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(cs[i].messages, 4);
    wsk_server_shutdown(srv, 1001, NULL);
    RUN_UNTIL(cs[0].closed && cs[1].closed && cs[2].closed, 5000);
    for (int i = 0; i < 3; i++)
        CHECK(cs[i].closed);
    wsk_server_free(srv);
}

static void test_rejected_handshakes(void)
{
    struct server_state st = {0};
    struct wsk_server_config cfg;
    wsk_server_config_init(&cfg);
    const char *origins[] = {"http://good.example"};
    cfg.origins = origins;
    cfg.num_origins = 1;
    cfg.ws_path = "/ws";
    const char *protos[] = {"chat.v2", "chat.v1"};
    cfg.subprotocols = protos;
    cfg.num_subprotocols = 2;
    struct wsk_server *srv = start_server(&st, &cfg);
    uint16_t port = wsk_server_port(srv);

    struct client_state bad_origin = {0}, bad_path = {0}, good = {0};
    struct wsk_client_config cc;
    wsk_client_config_init(&cc);
    cc.origin = "http://evil.example";
    connect_to("127.0.0.1", port, "/ws", &bad_origin, &cc);
    connect_to("127.0.0.1", port, "/other", &bad_path, NULL);
    wsk_client_config_init(&cc);
    cc.origin = "http://good.example";
    const char *offer[] = {"chat.v1", "chat.v2"};
    cc.subprotocols = offer;
    cc.num_subprotocols = 2;
    good.step = 100;
    connect_to("127.0.0.1", port, "/ws", &good, &cc);
    /* Wait for the echo of good's "hello" too: a server freed with unread
     * input would reset the connection (-ECONNRESET) instead of ending it. */
    RUN_UNTIL(bad_origin.closed && bad_path.closed && good.messages == 1 && st.opened, 5000);
    CHECK(bad_origin.closed);
    CHECK(!bad_origin.close.was_open);
    CHECK_EQ_INT(bad_origin.close.error, WSK_EHSTATUS);
    CHECK_EQ_INT(bad_origin.close.http_status, 403);
    CHECK(bad_path.closed);
    CHECK_EQ_INT(bad_path.close.http_status, 404);
    CHECK_EQ_INT(good.opened, 1);
    CHECK_STR(good.subprotocol, "chat.v2"); /* the server's preference wins */
    CHECK_EQ_INT(st.opened, 1);
    wsk_server_free(srv);
    RUN_UNTIL(good.closed, 5000);
    CHECK(good.closed);
    CHECK_EQ_INT(good.close.error, WSK_EABNORMAL);
}

static void test_connect_errors(void)
{
    struct wsk_conn *c;
    CHECK_EQ_INT(wsk_client_connect(&c, loop, "http://127.0.0.1/", NULL), WSK_EURL);
    CHECK_EQ_INT(wsk_client_connect(&c, loop, "ws://", NULL), WSK_EURL);
    CHECK_EQ_INT(wsk_client_connect(&c, loop, "ws://host:99999/", NULL), WSK_EURL);
    CHECK_EQ_INT(wsk_client_connect(&c, loop, "ws://host/#frag", NULL), WSK_EURL);
    CHECK_EQ_INT(wsk_client_connect(&c, loop, "ws://[::1/", NULL), WSK_EURL);

    /* A port nobody listens on: take one from the kernel and close it. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(fd, (struct sockaddr *)&a, sizeof a);
    socklen_t al = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &al);
    uint16_t port = ntohs(a.sin_port);
    close(fd);
    struct client_state refused = {0};
    refused.stop_loop_on_close = true;
    connect_to("127.0.0.1", port, "/", &refused, NULL);
    /* on_close never runs inside wsk_client_connect(). */
    CHECK(!refused.closed);
    RUN_UNTIL(refused.closed, 10000);
    CHECK(refused.closed);
    CHECK_EQ_INT(refused.close.error, -ECONNREFUSED);
    CHECK(!refused.close.was_open);

    struct client_state dns = {0};
    dns.stop_loop_on_close = true;
    connect_to("nonexistent.invalid", 80, "/", &dns, NULL);
    RUN_UNTIL(dns.closed, 20000);
    CHECK(dns.closed);
    CHECK_EQ_INT(dns.close.error, WSK_EDNS);
}

static void test_localhost_name(void)
{
    /* "localhost" is a name: resolved on the helper thread. */
    struct server_state st = {0};
    struct wsk_server *srv = start_server(&st, NULL);
    struct client_state cs = {0};
    cs.step = 100;
    connect_to("localhost", wsk_server_port(srv), "/", &cs, NULL);
    RUN_UNTIL(cs.messages == 1, 10000);
    CHECK_EQ_INT(cs.opened, 1);
    CHECK_EQ_INT(cs.messages, 1);
    wsk_server_free(srv);
    RUN_UNTIL(cs.closed, 5000);
    CHECK(cs.closed);
}

static void test_keepalive_ping(void)
{
    struct server_state st = {0};
    struct wsk_server_config cfg;
    wsk_server_config_init(&cfg);
    cfg.limits.ping_interval_ms = 50;
    cfg.limits.pong_timeout_ms = 1000;
    struct wsk_server *srv = start_server(&st, &cfg);
    struct client_state cs = {0};
    cs.step = 100;
    connect_to("127.0.0.1", wsk_server_port(srv), "/", &cs, NULL);
    /* Pings every 50 ms: three pongs arrive in 150 ms or so. */
    RUN_UNTIL(st.pongs >= 3 || cs.closed, 10000);
    CHECK(st.pongs >= 3);
    if (cs.closed)
        fprintf(stderr, "closed: code %u error %s\n", cs.close.code, wsk_err_name(cs.close.error));
    CHECK(!cs.closed);
    wsk_server_free(srv);
    RUN_UNTIL(cs.closed, 5000);
    CHECK(cs.closed);
}

/* ---- raw peers on a thread ------------------------------------------------- */

struct raw {
    uint16_t port;
    const uint8_t *send;
    size_t send_len;
    int behaviour; /* 0: send then read until EOF; 1: send nothing; 2: handshake then mute */
    uint8_t got[4096];
    size_t got_len;
    double seconds; /* until EOF */
    atomic_bool is_done;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *raw_thread(void *arg)
{
    struct raw *r = arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {8, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(r->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    double t0 = now_s();
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        atomic_store(&r->is_done, true);
        return NULL;
    }
    if (r->send_len)
        send(fd, r->send, r->send_len, MSG_NOSIGNAL);
    for (;;) {
        ssize_t n = recv(fd, r->got + r->got_len, sizeof r->got - r->got_len, 0);
        if (n <= 0)
            break;
        r->got_len += (size_t)n;
        if (r->got_len == sizeof r->got)
            break;
    }
    r->seconds = now_s() - t0;
    close(fd);
    atomic_store(&r->is_done, true);
    return NULL;
}

static const char upgrade[] =
    "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n";

/* Runs the loop while a raw peer talks to srv; returns when the peer is done. */
static void run_raw(struct raw *r)
{
    pthread_t t;
    pthread_create(&t, NULL, raw_thread, r);
    /* The loop must serve the peer until the thread is done. The peer gives
     * up after 8 s without data, so this bound is only for a failure. */
    RUN_UNTIL(atomic_load(&r->is_done), 15000);
    pthread_join(t, NULL);
}

/* Finds the close frame the server sent and returns its code, or -1. */
static int server_close_code(const struct raw *r)
{
    const uint8_t *p = r->got, *end = r->got + r->got_len;
    const uint8_t *body = memmem(p, r->got_len, "\r\n\r\n", 4);
    if (!body)
        return -1;
    p = body + 4;
    while (p + 2 <= end) {
        uint8_t op = p[0] & 0x0F;
        size_t len = p[1] & 0x7F, h = 2;
        if (len == 126) {
            len = (size_t)p[2] << 8 | p[3];
            h = 4;
        } else if (len == 127) {
            return -1;
        }
        if (p + h + len > end)
            return -1;
        if (op == 8)
            return len >= 2 ? (p[h] << 8 | p[h + 1]) : 1005;
        p += h + len;
    }
    return -1;
}

static void test_protocol_errors_over_sockets(void)
{
    struct server_state st = {0};
    struct wsk_server_config cfg;
    wsk_server_config_init(&cfg);
    cfg.limits.max_message = 1000;
    struct wsk_server *srv = start_server(&st, &cfg);
    struct {
        const char *name;
        uint8_t frame[24];
        size_t len;
        int code;
    } cases[] = {
        {"unmasked", {0x81, 0x01, 'a'}, 3, 1002},
        {"reserved opcode", {0x83, 0x80, 0, 0, 0, 0}, 6, 1002},
        {"rsv1", {0xc1, 0x80, 0, 0, 0, 0}, 6, 1002},
        {"fragmented ping", {0x09, 0x80, 0, 0, 0, 0}, 6, 1002},
        {"bad utf8", {0x81, 0x82, 0, 0, 0, 0, 0xc0, 0x80}, 8, 1007},
        {"close 1005", {0x88, 0x82, 0, 0, 0, 0, 0x03, 0xed}, 8, 1002},
        {"too big", {0x82, 0xfe, 0x03, 0xe9, 0, 0, 0, 0}, 8, 1009},
        {"normal close", {0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8}, 8, 1000},
        {"fragmented text",
         {0x01, 0x81, 0, 0, 0, 0, 'a', 0x80, 0x81, 0, 0, 0, 0, 'b', 0x88, 0x80, 0, 0, 0, 0},
         20,
         1005},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t buf[512];
        memcpy(buf, upgrade, sizeof upgrade - 1);
        memcpy(buf + sizeof upgrade - 1, cases[i].frame, cases[i].len);
        struct raw r = {.port = wsk_server_port(srv),
                        .send = buf,
                        .send_len = sizeof upgrade - 1 + cases[i].len};
        run_raw(&r);
        int code = server_close_code(&r);
        if (code != cases[i].code)
            fprintf(stderr, "case %s: close code %d, want %d\n", cases[i].name, code,
                    cases[i].code);
        CHECK_EQ_INT(code, cases[i].code);
    }
    /* The fragmented text was echoed whole before the close. */
    wsk_server_free(srv);
}

static void test_handshake_timeout(void)
{
    struct server_state st = {0};
    struct wsk_server_config cfg;
    wsk_server_config_init(&cfg);
    cfg.limits.handshake_timeout_ms = 300;
    struct wsk_server *srv = start_server(&st, &cfg);
    struct raw r = {.port = wsk_server_port(srv)};
    run_raw(&r);
    CHECK_EQ_INT(r.got_len, 0);
    CHECK(r.seconds > 0.2 && r.seconds < 3);
    wsk_server_free(srv);
}

static void test_pong_timeout(void)
{
    struct server_state st = {0};
    struct wsk_server_config cfg;
    wsk_server_config_init(&cfg);
    cfg.limits.ping_interval_ms = 100;
    cfg.limits.pong_timeout_ms = 200;
    struct wsk_server *srv = start_server(&st, &cfg);
    struct raw r = {.port = wsk_server_port(srv),
                    .send = (const uint8_t *)upgrade,
                    .send_len = sizeof upgrade - 1};
    run_raw(&r);
    /* It got the 101 and a ping with a 4-byte nonce, never answered, and
     * was closed with 1011 (not a bare TCP close). */
    CHECK(memmem(r.got, r.got_len, "101 Switching", 13) != NULL);
    CHECK(memmem(r.got, r.got_len, "\x89\x04", 2) != NULL);
    CHECK_EQ_INT(server_close_code(&r), 1011);
    CHECK(r.seconds > 0.2 && r.seconds < 3);
    /* The server ends it when it sees the peer's EOF. */
    for (int i = 0; i < 300 && !st.closed; i++)
        run_for(10);
    CHECK_EQ_INT(st.closed, 1);
    wsk_server_free(srv);
}

static void test_http_on_same_port(void)
{
    struct server_state st = {0};
    struct wsk_server_config cfg;
    wsk_server_config_init(&cfg);
    static const uint8_t page[] = "<!doctype html><title>t</title>";
    cfg.index_page = page;
    cfg.index_page_len = sizeof page - 1;
    struct wsk_server *srv = start_server(&st, &cfg);
    static const char reqs[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
                               "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
                               "DELETE / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    struct raw r = {
        .port = wsk_server_port(srv), .send = (const uint8_t *)reqs, .send_len = sizeof reqs - 1};
    run_raw(&r);
    r.got[r.got_len < sizeof r.got ? r.got_len : sizeof r.got - 1] = 0;
    const char *g = (const char *)r.got;
    const char *a = strstr(g, "HTTP/1.1 200");
    const char *b = strstr(g, "HTTP/1.1 404");
    const char *c = strstr(g, "HTTP/1.1 405");
    CHECK(a && b && c && a < b && b < c);
    CHECK(strstr(g, "<!doctype html>") != NULL);
    CHECK(strstr(g, "Allow: GET, HEAD") != NULL);
    /* An oversized head gets 431. */
    char big[10000];
    int n = snprintf(big, sizeof big, "GET / HTTP/1.1\r\nHost: x\r\nX: ");
    memset(big + n, 'a', sizeof big - (size_t)n);
    struct raw r2 = {
        .port = wsk_server_port(srv), .send = (const uint8_t *)big, .send_len = sizeof big};
    run_raw(&r2);
    CHECK(r2.got_len > 12 && !memcmp(r2.got, "HTTP/1.1 431", 12));
    wsk_server_free(srv);
}

/* ---- permessage-deflate ------------------------------------------------------ */

struct z_client {
    int opened, got;
    bool closed;
    unsigned code;
    char ext[160];
    size_t sizes[8];
    size_t nsizes, next;
    uint8_t *data;
};

static void z_open(struct wsk_conn *c, const struct wsk_open_event *ev, void *ud)
{
    struct z_client *z = ud;
    z->opened++;
    snprintf(z->ext, sizeof z->ext, "%.*s", (int)ev->extensions.len, ev->extensions.ptr);
    CHECK_EQ_INT(wsk_conn_send(c, WSK_OP_TEXT, z->data, z->sizes[0]), 0);
}

static void z_message(struct wsk_conn *c, const struct wsk_message *m, void *ud)
{
    struct z_client *z = ud;
    size_t want = z->sizes[z->next];
    CHECK_EQ_INT(m->len, want);
    if (m->len == want)
        CHECK_MEM(m->data, z->data, want);
    z->got++;
    if (++z->next < z->nsizes)
        CHECK_EQ_INT(
            wsk_conn_send(c, z->next & 1 ? WSK_OP_BINARY : WSK_OP_TEXT, z->data, z->sizes[z->next]),
            0);
    else
        wsk_conn_close(c, 1000, NULL);
}

static void z_close(struct wsk_conn *c, const struct wsk_close_event *ev, void *ud)
{
    (void)c;
    struct z_client *z = ud;
    z->closed = true;
    z->code = ev->code;
    wsk_loop_stop(loop);
}

static void test_deflate_roundtrip(void)
{
    struct server_state st = {0};
    struct wsk_server_config cfg;
    wsk_server_config_init(&cfg);
    wsk_deflate_config_init(&cfg.deflate);
    cfg.deflate.enabled = true;
    struct wsk_server *srv = start_server(&st, &cfg);
    struct z_client z = {0};
    size_t sizes[] = {0, 1, 100, 70000, 1 << 20};
    memcpy(z.sizes, sizes, sizeof sizes);
    z.nsizes = 5;
    z.data = malloc(1 << 20);
    for (size_t i = 0; i < (1u << 20); i++)
        z.data[i] = (uint8_t) "abcdefghij klmnop\n"[i % 18];
    struct wsk_client_config cc;
    wsk_client_config_init(&cc);
    wsk_deflate_config_init(&cc.deflate);
    cc.deflate.enabled = true;
    cc.handlers.on_open = z_open;
    cc.handlers.on_message = z_message;
    cc.handlers.on_close = z_close;
    cc.user_data = &z;
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%u/", wsk_server_port(srv));
    struct wsk_conn *c;
    CHECK_EQ_INT(wsk_client_connect(&c, loop, url, &cc), 0);
    RUN_UNTIL(z.closed, 20000);
    CHECK_EQ_INT(z.opened, 1);
    CHECK(strstr(z.ext, "permessage-deflate") != NULL);
    CHECK_EQ_INT(z.got, 5);
    CHECK(z.closed);
    CHECK_EQ_INT(z.code, 1000);
    wsk_server_free(srv);
    free(z.data);
}

/* A raw client sends a small compressed frame that inflates to 16 MiB. */
static void test_deflate_bomb(void)
{
    struct server_state st = {0};
    struct wsk_server_config cfg;
    wsk_server_config_init(&cfg);
    wsk_deflate_config_init(&cfg.deflate);
    cfg.deflate.enabled = true;
    cfg.limits.max_message = 1 << 20;
    struct wsk_server *srv = start_server(&st, &cfg);

    size_t plain_len = 16u << 20;
    uint8_t *plain = calloc(1, plain_len);
    uint8_t *z = malloc(64 * 1024);
    z_stream zs = {0};
    CHECK_EQ_INT(deflateInit2(&zs, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    zs.next_in = plain;
    zs.avail_in = (uInt)plain_len;
    zs.next_out = z;
    zs.avail_out = 64 * 1024;
    CHECK_EQ_INT(deflate(&zs, Z_SYNC_FLUSH), Z_OK);
    size_t zlen = 64 * 1024 - zs.avail_out - 4; /* drop 00 00 ff ff */
    deflateEnd(&zs);
    free(plain);
    CHECK(zlen < 20000);

    static const char up[] =
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n";
    size_t cap = sizeof up + 14 + zlen;
    uint8_t *buf = malloc(cap);
    memcpy(buf, up, sizeof up - 1);
    static const uint8_t key[4] = {0, 0, 0, 0};
    int64_t n = wsk_frame_encode(buf + sizeof up - 1, cap - (sizeof up - 1),
                                 WSK_FRAME_FIN | WSK_FRAME_RSV1 | WSK_OP_BINARY, z, zlen, key);
    CHECK(n > 0);
    struct raw r = {
        .port = wsk_server_port(srv), .send = buf, .send_len = sizeof up - 1 + (size_t)n};
    run_raw(&r);
    CHECK(memmem(r.got, r.got_len, "permessage-deflate", 18) != NULL);
    CHECK_EQ_INT(server_close_code(&r), 1009);
    CHECK(r.seconds < 3);
    free(buf);
    free(z);
    wsk_server_free(srv);
}

/* ---- TLS ------------------------------------------------------------------- */

static char tls_dir[64];

/* A throwaway CA and a certificate for localhost and 127.0.0.1, made with the
 * openssl command. */
static bool make_certs(void)
{
    strcpy(tls_dir, "/tmp/wsk-tls-XXXXXX");
    if (!mkdtemp(tls_dir))
        return false;
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "-keyout ca.key -out ca.pem -days 2 -subj /CN=wsk-test-ca >/dev/null 2>&1 && "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout srv.key "
             "-out srv.csr -subj /CN=localhost >/dev/null 2>&1 && "
             "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ext.cnf && "
             "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
             "-out srv.pem -days 2 -extfile ext.cnf >/dev/null 2>&1",
             tls_dir);
    return system(cmd) == 0;
}

static void test_tls_echo_and_verify(void)
{
    if (!make_certs()) {
        printf("skip: openssl could not make certificates\n");
        return;
    }
    char cert[128], key[128], ca[128];
    snprintf(cert, sizeof cert, "%s/srv.pem", tls_dir);
    snprintf(key, sizeof key, "%s/srv.key", tls_dir);
    snprintf(ca, sizeof ca, "%s/ca.pem", tls_dir);

    struct server_state st = {0};
    struct wsk_server_config cfg;
    wsk_server_config_init(&cfg);
    cfg.tls_cert_file = cert;
    cfg.tls_key_file = key;
    cfg.limits.max_send_queue = 16u << 20; /* the 3 MiB echo is queued whole */
    struct wsk_server *srv = start_server(&st, &cfg);
    uint16_t port = wsk_server_port(srv);

    /* Verified against the test CA, by name and by address. */
    struct client_state ok = {0}, ok_ip = {0}, untrusted = {0}, insecure = {0};
    ok.big_len = 3u << 20; /* past the socket: partly direct, partly queued */
    ok.big = malloc(ok.big_len);
    for (size_t i = 0; i < ok.big_len; i++)
        ok.big[i] = (uint8_t)(i * 7 + i / 999);
    ok.stop_loop_on_close = true;
    struct wsk_client_config cc;
    wsk_client_config_init(&cc);
    cc.limits.max_send_queue = 16u << 20;
    cc.ca_file = ca;
    char url[96];
    snprintf(url, sizeof url, "wss://localhost:%u/", port);
    cc.handlers.on_open = cl_open;
    cc.handlers.on_message = cl_message;
    cc.handlers.on_close = cl_close;
    cc.user_data = &ok;
    struct wsk_conn *c;
    CHECK_EQ_INT(wsk_client_connect(&c, loop, url, &cc), 0);
    RUN_UNTIL(ok.closed, 10000);
    CHECK_EQ_INT(ok.opened, 1);
    CHECK_EQ_INT(ok.messages, 3);
    CHECK_EQ_INT(ok.close.code, 1000);
    CHECK_EQ_INT(ok.close.error, 0);

    ok_ip.step = 100;
    cc.user_data = &ok_ip;
    snprintf(url, sizeof url, "wss://127.0.0.1:%u/", port);
    CHECK_EQ_INT(wsk_client_connect(&c, loop, url, &cc), 0);
    RUN_UNTIL(ok_ip.messages == 1, 5000);
    CHECK_EQ_INT(ok_ip.opened, 1);

    /* The system store does not know the test CA. */
    wsk_client_config_init(&cc);
    cc.handlers.on_open = cl_open;
    cc.handlers.on_message = cl_message;
    cc.handlers.on_close = cl_close;
    untrusted.stop_loop_on_close = true;
    cc.user_data = &untrusted;
    snprintf(url, sizeof url, "wss://localhost:%u/", port);
    CHECK_EQ_INT(wsk_client_connect(&c, loop, url, &cc), 0);
    RUN_UNTIL(untrusted.closed, 10000);
    CHECK(untrusted.closed);
    CHECK(!untrusted.close.was_open);
    CHECK_EQ_INT(untrusted.close.error, WSK_ETLS);

    /* Unless verification is off. */
    cc.insecure = true;
    insecure.step = 100;
    cc.user_data = &insecure;
    CHECK_EQ_INT(wsk_client_connect(&c, loop, url, &cc), 0);
    RUN_UNTIL(insecure.messages == 1, 5000);
    CHECK_EQ_INT(insecure.opened, 1);

    /* Reloading keeps the open connections: they still echo. */
    CHECK_EQ_INT(wsk_server_reload_tls(srv), 0);
    if (insecure.conn && ok_ip.conn) {
        CHECK_EQ_INT(wsk_conn_send(insecure.conn, WSK_OP_TEXT, "again", 5), 0);
        CHECK_EQ_INT(wsk_conn_send(ok_ip.conn, WSK_OP_TEXT, "again", 5), 0);
        RUN_UNTIL((insecure.messages == 2 && ok_ip.messages == 2) || insecure.closed ||
                      ok_ip.closed,
                  5000);
    }
    CHECK(!insecure.closed);
    CHECK(!ok_ip.closed);
    CHECK_EQ_INT(insecure.messages, 2);
    CHECK_EQ_INT(ok_ip.messages, 2);

    wsk_server_free(srv);
    RUN_UNTIL(insecure.closed && ok_ip.closed, 5000);
    free(ok.big);
    snprintf(url, sizeof url, "rm -rf %s", tls_dir);
    CHECK_EQ_INT(system(url), 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    CHECK_EQ_INT(wsk_loop_new(&loop, wsk_test_loop_cfg()), 0);
    WSK_RUN(test_echo_and_client_close);
    WSK_RUN(test_big_client_frame);
    WSK_RUN(test_server_close_with_reason);
    WSK_RUN(test_loop_ends_after_shutdown);
    WSK_RUN(test_broadcast);
    WSK_RUN(test_rejected_handshakes);
    WSK_RUN(test_connect_errors);
    WSK_RUN(test_localhost_name);
    WSK_RUN(test_keepalive_ping);
    WSK_RUN(test_protocol_errors_over_sockets);
    WSK_RUN(test_handshake_timeout);
    WSK_RUN(test_pong_timeout);
    WSK_RUN(test_http_on_same_port);
    WSK_RUN(test_deflate_roundtrip);
    WSK_RUN(test_deflate_bomb);
    WSK_RUN(test_tls_echo_and_verify);
    wsk_loop_free(loop);
    WSK_TEST_END();
}
