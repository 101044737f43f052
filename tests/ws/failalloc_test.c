/* A failing allocator over a whole session: a server and a client on one
 * loop (handshake with permessage-deflate, text, binary, a large message
 * split across reads, a ping, a close) plus a raw peer sending a fragmented
 * message. The session runs once to count allocations, then once for every
 * N with the N-th allocation failing. Each run must end cleanly: wsk_*_new
 * and wsk_client_connect return -ENOMEM or succeed, connections end with one
 * on_close, nothing hangs (each run has a deadline) and, under the ASan
 * build, nothing leaks (a leak check after every run names the N).
 *
 * The library has no allocation hooks, so this executable is linked with
 * -Wl,--wrap=malloc,... (see CMakeLists.txt and failalloc.h, which has the
 * allocator and the driver; failalloc_more_test.c has more scenarios).
 *
 * WSK_FAILALLOC_N=n runs only that N (for debugging one failure).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "failalloc.h"
#include "loop/loop_internal.h"

/* ---- the session ------------------------------------------------------------- */

#define BIG_LEN (300u * 1024)
static uint8_t big[BIG_LEN];

struct session {
    struct wsk_loop *loop;
    struct wsk_server *srv;
    struct wsk_conn *client;
    int client_closes, client_messages, client_pongs;
    bool client_open;
    int server_opens, server_closes;
    /* the raw peer */
    int raw_fd;
    struct wsk_io raw_io;
    bool raw_done;
};

static int opened_marker;
static int phantom_opens; /* see srv_close */

static void srv_open(struct wsk_conn *c, const struct wsk_open_event *ev, void *ud)
{
    (void)ev;
    wsk_conn_set_data(c, &opened_marker);
    ((struct session *)ud)->server_opens++;
}

static void srv_message(struct wsk_conn *c, const struct wsk_message *m, void *ud)
{
    (void)ud;
    /* A send that fails (-ENOMEM) loses the message: the peer would wait
     * for it forever, so end the connection as an application would. */
    if (wsk_conn_send(c, m->opcode, m->data, m->len) < 0)
        wsk_conn_close(c, 1011, NULL);
}

/* on_close must never report was_open for a connection whose on_open did
 * not run (it did when the copy of frames that came with the upgrade
 * request could not be allocated: fixed in wsk__conn_open()). */
static void srv_close(struct wsk_conn *c, const struct wsk_close_event *ev, void *ud)
{
    bool had_open = wsk_conn_get_data(c) == &opened_marker;
    if (ev->was_open && !had_open) {
        phantom_opens++;
        return;
    }
    if (had_open)
        ((struct session *)ud)->server_closes++;
}

static void cl_open(struct wsk_conn *c, const struct wsk_open_event *ev, void *ud)
{
    (void)ev;
    struct session *s = ud;
    s->client_open = true;
    if (wsk_conn_send(c, WSK_OP_TEXT, "hello, compressed hello, hello", 30) < 0 ||
        wsk_conn_send(c, WSK_OP_BINARY, big, 3000) < 0 || wsk_conn_ping(c, "ping", 4) < 0 ||
        wsk_conn_send(c, WSK_OP_BINARY, big, BIG_LEN) < 0)
        wsk_conn_close(c, 1011, NULL);
}

static void cl_message(struct wsk_conn *c, const struct wsk_message *m, void *ud)
{
    (void)m;
    struct session *s = ud;
    if (++s->client_messages == 3)
        wsk_conn_close(c, 1000, "done");
}

static void cl_pong(struct wsk_conn *c, const uint8_t *d, size_t n, void *ud)
{
    (void)c;
    (void)d;
    (void)n;
    ((struct session *)ud)->client_pongs++;
}

static void cl_close(struct wsk_conn *c, const struct wsk_close_event *ev, void *ud)
{
    (void)c;
    (void)ev;
    struct session *s = ud;
    s->client_closes++;
    s->client = NULL;
}

/* The raw peer sent everything at connect time; it reads until EOF. */
static void raw_cb(struct wsk_loop *loop, struct wsk_io *io, unsigned events)
{
    (void)events;
    struct session *s = io->data;
    uint8_t buf[4096];
    for (;;) {
        ssize_t n = recv(io->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        s->raw_done = true;
        wsk_io_stop(loop, io);
        return;
    }
}

static const char upgrade[] =
    "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n";

/* The upgrade, "frag" + "mented" in two frames, and a close. */
static bool raw_start(struct session *s, uint16_t port)
{
    static const uint8_t key[4] = {1, 2, 3, 4};
    uint8_t out[512];
    size_t n = sizeof upgrade - 1;
    memcpy(out, upgrade, n);
    n += (size_t)wsk_frame_encode(out + n, sizeof out - n, WSK_OP_TEXT, (const uint8_t *)"frag", 4,
                                  key);
    n += (size_t)wsk_frame_encode(out + n, sizeof out - n, WSK_FRAME_FIN | WSK_OP_CONT,
                                  (const uint8_t *)"mented", 6, key);
    n += (size_t)wsk_frame_encode(out + n, sizeof out - n, WSK_FRAME_FIN | WSK_OP_CLOSE,
                                  (const uint8_t *)"\x03\xe8", 2, key);
    s->raw_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (s->raw_fd < 0)
        return false;
    if (connect(s->raw_fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        send(s->raw_fd, out, n, MSG_NOSIGNAL) != (ssize_t)n)
        return false;
    wsk_io_init(&s->raw_io, s->raw_fd, raw_cb, s);
    return wsk_io_start(s->loop, &s->raw_io, WSK_IO_READ) == 0;
}

static bool (*session_done)(const struct session *);

static bool session_pred(void *arg)
{
    return session_done(arg);
}

/* Runs the loop in short slices until done(s) or the deadline. */
static bool run_until(struct session *s, bool (*done)(const struct session *), uint64_t ms)
{
    session_done = done;
    return failalloc_run_until(s->loop, session_pred, s, ms);
}

static bool session_over(const struct session *s)
{
    return s->client_closes && (s->raw_fd < 0 || s->raw_done) && s->srv &&
           s->server_closes == s->server_opens && wsk_server_num_connections(s->srv) == 0;
}

static bool client_gone(const struct session *s)
{
    return !s->client;
}

/* One session; allocations are counted (and the fail_at-th fails) from start
 * to end, the clean-up included. */
static enum failalloc_outcome session_run(void)
{
    struct session s = {.raw_fd = -1};
    enum failalloc_outcome out = FA_RAN;
    is_armed = true;
    int rv = wsk_loop_new(&s.loop, wsk_test_loop_cfg());
    if (rv < 0) {
        is_armed = false;
        return rv == -ENOMEM ? FA_RAN : FA_BAD;
    }

    struct wsk_server_config sc;
    wsk_server_config_init(&sc);
    sc.handlers.on_open = srv_open;
    sc.handlers.on_message = srv_message;
    sc.handlers.on_close = srv_close;
    sc.user_data = &s;
    sc.limits.handshake_timeout_ms = 1000;
    sc.limits.close_timeout_ms = 1000;
    wsk_deflate_config_init(&sc.deflate);
    sc.deflate.enabled = true;
    const char *protos[] = {"chat"};
    sc.subprotocols = protos;
    sc.num_subprotocols = 1;
    rv = wsk_server_new(&s.srv, s.loop, &sc);
    if (rv == 0)
        rv = wsk_server_listen(s.srv, "127.0.0.1", 0);
    if (rv < 0) {
        if (rv != -ENOMEM)
            out = FA_BAD;
        goto done;
    }

    struct wsk_client_config cc;
    wsk_client_config_init(&cc);
    cc.handlers.on_open = cl_open;
    cc.handlers.on_message = cl_message;
    cc.handlers.on_pong = cl_pong;
    cc.handlers.on_close = cl_close;
    cc.user_data = &s;
    cc.connect_timeout_ms = 2000;
    cc.limits.close_timeout_ms = 1000;
    cc.subprotocols = protos;
    cc.num_subprotocols = 1;
    wsk_deflate_config_init(&cc.deflate);
    cc.deflate.enabled = true;
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%u/chat?x=1", wsk_server_port(s.srv));
    rv = wsk_client_connect(&s.client, s.loop, url, &cc);
    if (rv < 0) {
        s.client = NULL;
        s.client_closes = 1; /* nothing to wait for */
        if (rv != -ENOMEM)
            out = FA_BAD;
    }
    if (!raw_start(&s, wsk_server_port(s.srv))) {
        if (s.raw_fd >= 0)
            close(s.raw_fd);
        s.raw_fd = -1;
    }

    if (!run_until(&s, session_over, 4000)) {
        out = FA_HUNG;
        fprintf(stderr,
                "  stuck: client closes %d, raw peer %s, server opens %d closes %d, "
                "connections %zu\n",
                s.client_closes,
                s.raw_fd < 0 ? "none"
                : s.raw_done ? "done"
                             : "waiting",
                s.server_opens, s.server_closes, wsk_server_num_connections(s.srv));
    }
done:
    if (s.raw_fd >= 0) {
        wsk_io_stop(s.loop, &s.raw_io);
        close(s.raw_fd);
    }
    wsk_server_free(s.srv);
    if (s.client) {
        /* The server is gone: the client sees that and ends. */
        if (!run_until(&s, client_gone, 5000)) {
            out = FA_HUNG;
            wsk_conn_close(s.client, 1000, NULL);
            run_until(&s, client_gone, 2000);
        }
    }
    wsk_loop_free(s.loop);
    is_armed = false;
    if (s.client_closes > 1)
        out = FA_BAD;
    return out;
}

static void test_every_allocation_fails_once(void)
{
    unsigned long total = failalloc_every("session", session_run);
    CHECK(total > 20);
    printf("%d on_close with was_open but no on_open\n", phantom_opens);
    CHECK_EQ_INT(phantom_opens, 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (size_t i = 0; i < BIG_LEN; i++)
        big[i] = (uint8_t)(i % 251 < 120 ? 'a' + i % 7 : i * 13);
    WSK_RUN(test_every_allocation_fails_once);
    WSK_TEST_END();
}
