/* Regressions for what a hostile or unlucky peer found (issue 9, section 1):
 * each test here failed before its fix. Raw peers are non-blocking sockets
 * driven from the test's own thread between slices of the loop, so a test
 * controls exactly what the peer reads and when. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "wsk.h"
#include "wsk_test.h"

#include "ws/ws_loop.h"

/* Runs the loop in 5 ms slices until *flag is set or timeout_ms passes.
 * Returns whether the flag was set. */
static bool wait_flag(const bool *flag, double timeout_ms)
{
    double end = now_ms() + timeout_ms;
    while (!*flag && now_ms() < end)
        run_for(5);
    return *flag;
}

/* ---- a server that records what happens --------------------------------- */

struct srv_state {
    struct wsk_server *srv;
    struct wsk_conn *last; /* the last opened connection */
    int opened, closed, messages;
    unsigned last_code;
    int last_error;
    bool broadcast, free_on_message, is_closed;
    size_t max_queue_seen;
    int log_pausing, log_again;
};

static void s_open(struct wsk_conn *c, const struct wsk_open_event *ev, void *ud)
{
    (void)ev;
    struct srv_state *s = ud;
    s->opened++;
    s->last = c;
}

static void s_message(struct wsk_conn *c, const struct wsk_message *m, void *ud)
{
    struct srv_state *s = ud;
    s->messages++;
    if (s->free_on_message) {
        wsk_server_free(s->srv);
        s->srv = NULL;
        /* The connection is gone; sending on it must be refused, not crash. */
        CHECK_EQ_INT(wsk_conn_send(c, WSK_OP_TEXT, "x", 1), WSK_ESTATE);
        return;
    }
    if (m->len == 6 && !memcmp(m->data, "close0", 6)) {
        /* A reason without a code: the reason is left out, the close
         * handshake still happens. */
        CHECK_EQ_INT(wsk_conn_close(c, 0, "why"), 0);
        return;
    }
    if (s->broadcast)
        wsk_server_broadcast(s->srv, m->opcode, m->data, m->len);
}

static void s_close(struct wsk_conn *c, const struct wsk_close_event *ev, void *ud)
{
    struct srv_state *s = ud;
    s->closed++;
    s->is_closed = true;
    s->last_code = ev->code;
    s->last_error = ev->error;
    if (c == s->last)
        s->last = NULL;
}

static void s_log(int level, const char *msg, void *ud)
{
    (void)level;
    struct srv_state *s = ud;
    if (strstr(msg, "pausing accepts"))
        s->log_pausing++;
    if (strstr(msg, "accepting again"))
        s->log_again++;
}

static struct wsk_server *start(struct srv_state *st, struct wsk_server_config *cfg)
{
    cfg->handlers.on_open = s_open;
    cfg->handlers.on_message = s_message;
    cfg->handlers.on_close = s_close;
    cfg->user_data = st;
    cfg->log = s_log;
    CHECK_EQ_INT(wsk_server_new(&st->srv, loop, cfg), 0);
    CHECK(wsk_server_listen(st->srv, "127.0.0.1", 0) > 0);
    return st->srv;
}

/* ---- raw peers ----------------------------------------------------------- */

static const char upgrade[] =
    "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n";

/* Connects with a small receive buffer (so the server's sends back up soon)
 * and makes the socket non-blocking. */
static int raw_connect(uint16_t port, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (rcvbuf)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ_INT(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

/* Reads what is there (non-blocking) into buf; returns bytes read, 0 at EOF
 * with *eof set. */
static size_t raw_read(int fd, uint8_t *buf, size_t cap, bool *eof)
{
    size_t got = 0;
    while (got < cap) {
        ssize_t n = recv(fd, buf + got, cap - got, 0);
        if (n == 0) {
            *eof = true;
            break;
        }
        if (n < 0)
            break;
        got += (size_t)n;
    }
    return got;
}

/* Sends the upgrade and reads exactly the 101 head, serving the loop. */
static int raw_ws_open(uint16_t port, int rcvbuf)
{
    int fd = raw_connect(port, rcvbuf);
    CHECK_EQ_INT(send(fd, upgrade, sizeof upgrade - 1, MSG_NOSIGNAL), (long)sizeof upgrade - 1);
    char head[1024];
    size_t len = 0;
    double end = now_ms() + 3000;
    while (now_ms() < end) {
        ssize_t n = recv(fd, head + len, 1, 0); /* byte by byte: stop at the head's end */
        if (n != 1) {
            run_for(2);
            continue;
        }
        len++;
        if ((len >= 4 && !memcmp(head + len - 4, "\r\n\r\n", 4)) || len == sizeof head)
            break;
    }
    CHECK(len > 12 && !memcmp(head, "HTTP/1.1 101", 12));
    return fd;
}

/* A masked client frame (key 0, so the payload reads as is). */
static size_t client_frame(uint8_t *out, uint8_t op, const void *payload, size_t len)
{
    size_t h = 0;
    out[h++] = (uint8_t)(0x80 | op);
    if (len < 126) {
        out[h++] = (uint8_t)(0x80 | len);
    } else {
        out[h++] = 0x80 | 126;
        out[h++] = (uint8_t)(len >> 8);
        out[h++] = (uint8_t)len;
    }
    memset(out + h, 0, 4);
    h += 4;
    if (len)
        memcpy(out + h, payload, len);
    return h + len;
}

/* ---- 1. pongs count against the send queue ------------------------------- */

/* A peer floods pings and never reads, and sends an unprompted pong now and
 * then. Before: the server queued a pong per ping without limit and the
 * unprompted pongs kept the connection alive for ever. Now: the queue stays
 * under the cap plus one read's worth, and the keepalive closes it. */
static void test_ping_flood_never_reading(void)
{
    struct srv_state st = {0};
    struct wsk_server_config cfg;
    wsk_server_config_init(&cfg);
    cfg.limits.max_send_queue = 64 * 1024;
    cfg.limits.ping_interval_ms = 300;
    cfg.limits.pong_timeout_ms = 300;
    cfg.limits.close_timeout_ms = 300;
    start(&st, &cfg);
    int fd = raw_ws_open(wsk_server_port(st.srv), 4096);
    CHECK_EQ_INT(st.opened, 1);

    uint8_t ping[256], pong[64];
    uint8_t payload[125];
    memset(payload, 'p', sizeof payload);
    size_t ping_len = client_frame(ping, 0x9, payload, sizeof payload);
    size_t pong_len = client_frame(pong, 0xA, "unasked", 7);
    uint8_t burst[64 * 1024];
    size_t burst_len = 0;
    while (burst_len + ping_len <= sizeof burst) {
        memcpy(burst + burst_len, ping, ping_len);
        burst_len += ping_len;
    }
    double start_ms = now_ms(), last_pong = 0;
    size_t sent_total = 0;
    while (!st.is_closed && now_ms() - start_ms < 5000) {
        ssize_t n = send(fd, burst, burst_len, MSG_NOSIGNAL);
        if (n > 0)
            sent_total += (size_t)n;
        if (now_ms() - last_pong > 50) {
            /* Whole frames only: a pong inside a half-sent burst would
             * corrupt the stream, so only when the last burst went whole. */
            if (n == (ssize_t)burst_len)
                send(fd, pong, pong_len, MSG_NOSIGNAL);
            last_pong = now_ms();
        }
        run_for(2);
        if (st.last && wsk_conn_send_queue(st.last) > st.max_queue_seen)
            st.max_queue_seen = wsk_conn_send_queue(st.last);
    }
    fprintf(stderr, "  sent %zu bytes of pings; largest queue %zu bytes; closed after %.0f ms\n",
            sent_total, st.max_queue_seen, now_ms() - start_ms);
    CHECK(sent_total > 64 * 1024); /* the flood happened */
    /* Cap plus the pongs for one 256 KiB read. */
    CHECK(st.max_queue_seen <= 64 * 1024 + 260 * 1024);
    CHECK(st.is_closed);
    CHECK_EQ_INT(st.last_error, -ETIMEDOUT);
    close(fd);
    wsk_server_free(st.srv);
}

/* Dead-peer detection follows --ping-interval: the pong timeout defaults to
 * the interval (at most 20 s), and the peer is told with 1011. */
static void test_pong_timeout_follows_interval(void)
{
    struct srv_state st = {0};
    struct wsk_server_config cfg;
    wsk_server_config_init(&cfg);
    cfg.limits.ping_interval_ms = 200; /* pong_timeout_ms left at 0: default */
    start(&st, &cfg);
    int fd = raw_ws_open(wsk_server_port(st.srv), 0);
    double t0 = now_ms();
    uint8_t got[4096];
    size_t got_len = 0;
    bool eof = false;
    while (!eof && now_ms() - t0 < 5000) {
        run_for(5);
        got_len += raw_read(fd, got + got_len, sizeof got - got_len, &eof);
    }
    double took = now_ms() - t0;
    fprintf(stderr, "  ping, then close after %.0f ms\n", took);
    CHECK(eof);
    CHECK(took >= 350 && took < 2500); /* interval + timeout, not 20 s */
    /* A ping with a 4-byte nonce, then a close frame with 1011. */
    CHECK(got_len >= 6 && got[0] == 0x89 && got[1] == 4);
    CHECK(got_len >= 10 && got[6] == 0x88 && got[8] == 0x03 && got[9] == 0xF3);
    close(fd);
    wait_flag(&st.is_closed, 2000);
    CHECK_EQ_INT(st.last_error, -ETIMEDOUT);
    wsk_server_free(st.srv);
}

/* ---- 2. one big broadcast ------------------------------------------------- */

struct cl_state {
    int opened, messages;
    size_t last_len;
    bool closed;
    unsigned code;
    int error;
    uint64_t close_ms;
};

static void c_open(struct wsk_conn *c, const struct wsk_open_event *ev, void *ud)
{
    (void)c;
    (void)ev;
    ((struct cl_state *)ud)->opened++;
}

static void c_message(struct wsk_conn *c, const struct wsk_message *m, void *ud)
{
    (void)c;
    struct cl_state *s = ud;
    s->messages++;
    s->last_len = m->len;
}

static void c_close(struct wsk_conn *c, const struct wsk_close_event *ev, void *ud)
{
    (void)c;
    struct cl_state *s = ud;
    s->closed = true;
    s->code = ev->code;
    s->error = ev->error;
    s->close_ms = wsk_loop_now(loop);
}

static struct wsk_conn *client(const char *url, struct cl_state *s)
{
    struct wsk_client_config cfg;
    wsk_client_config_init(&cfg);
    cfg.handlers.on_open = c_open;
    cfg.handlers.on_message = c_message;
    cfg.handlers.on_close = c_close;
    cfg.user_data = s;
    struct wsk_conn *c = NULL;
    CHECK_EQ_INT(wsk_client_connect(&c, loop, url, &cfg), 0);
    return c;
}

/* A message larger than max_send_queue (within max_message) reaches every
 * receiver whose queue was empty, the sender included. Before: everyone was
 * closed with 1008. */
static void test_broadcast_bigger_than_queue_cap(void)
{
    struct srv_state st = {0};
    struct wsk_server_config cfg;
    wsk_server_config_init(&cfg);
    cfg.limits.max_send_queue = 64 * 1024;
    st.broadcast = true;
    start(&st, &cfg);
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%u/", wsk_server_port(st.srv));
    struct cl_state cs[3] = {{0}};
    struct wsk_conn *conns[3];
    for (int i = 0; i < 3; i++)
        conns[i] = client(url, &cs[i]);
    double end = now_ms() + 3000;
    while ((cs[0].opened + cs[1].opened + cs[2].opened < 3 || st.opened < 3) && now_ms() < end)
        run_for(5);
    size_t big_len = 200 * 1024;
    uint8_t *big = malloc(big_len);
    memset(big, 'b', big_len);
    CHECK_EQ_INT(wsk_conn_send(conns[0], WSK_OP_BINARY, big, big_len), 0);
    free(big);
    end = now_ms() + 3000;
    while ((cs[0].messages + cs[1].messages + cs[2].messages < 3) && now_ms() < end)
        run_for(5);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(cs[i].messages, 1);
        CHECK_EQ_INT(cs[i].last_len, big_len);
        CHECK(!cs[i].closed);
        wsk_conn_close(conns[i], 1000, NULL);
    }
    end = now_ms() + 3000;
    while (!(cs[0].closed && cs[1].closed && cs[2].closed) && now_ms() < end)
        run_for(5);
    wsk_server_free(st.srv);
}

/* ---- 3. compressed broadcasts ------------------------------------------- */

struct z_state {
    int opened, messages, bad;
    bool closed;
    const uint8_t *expect[3];
    size_t expect_len[3];
};

static void z_open(struct wsk_conn *c, const struct wsk_open_event *ev, void *ud)
{
    (void)c;
    (void)ev;
    ((struct z_state *)ud)->opened++;
}

static void z_message(struct wsk_conn *c, const struct wsk_message *m, void *ud)
{
    (void)c;
    struct z_state *s = ud;
    int i = s->messages++ % 3;
    if (m->len != s->expect_len[i] || memcmp(m->data, s->expect[i], m->len) != 0)
        s->bad++;
}

static void z_close(struct wsk_conn *c, const struct wsk_close_event *ev, void *ud)
{
    (void)c;
    (void)ev;
    ((struct z_state *)ud)->closed = true;
}

struct zsrv {
    struct wsk_conn *conns[64];
    int n;
};

static void zs_open(struct wsk_conn *c, const struct wsk_open_event *ev, void *ud)
{
    (void)ev;
    struct zsrv *z = ud;
    if (z->n < 64)
        z->conns[z->n++] = c;
}

static int count_sink(void *arg, const uint8_t *data, size_t len)
{
    (void)data;
    *(size_t *)arg += len;
    return 0;
}

/* Text that compresses like real text: words from a small vocabulary. */
static void fill_text(uint8_t *buf, size_t len, uint64_t seed)
{
    static const char *words[] = {"alpha ",   "beta ",  "gamma ", "delta ",   "room ", "chat ",
                                  "message ", "hello ", "world ", "{\"id\":", "42, ",  "\n"};
    size_t i = 0;
    while (i < len) {
        const char *w = words[wsk_test_rand(&seed) % 12];
        size_t n = strlen(w);
        if (n > len - i)
            n = len - i;
        memcpy(buf + i, w, n);
        i += n;
    }
}

/* One big message to many compressing receivers is compressed once, not
 * once per receiver (before: 200 receivers and 1,000 KiB froze the server
 * for seconds); every receiver decodes it, and a message the server then
 * sends each of them with its own compressor (context takeover) still
 * decodes. */
static void test_compressed_broadcast_once(void)
{
    const int receivers = 40;
    const size_t len = 1000 * 1024;
    uint8_t *big = malloc(len), *after = malloc(4096);
    fill_text(big, len, 1);
    memcpy(after, big + 1000, 4096); /* back-references into the broadcast would be wrong */

    /* What one compression costs here. */
    struct wsk_deflate *d;
    struct wsk_deflate_params p = {.server_max_window_bits = 12, .client_max_window_bits = 15};
    CHECK_EQ_INT(wsk_deflate_new(&d, &p, WSK_ROLE_SERVER), 0);
    size_t zlen = 0;
    double t0 = now_ms();
    CHECK_EQ_INT(wsk_deflate_compress(d, big, len, count_sink, &zlen), 0);
    double one = now_ms() - t0;
    wsk_deflate_free(d);

    struct zsrv zs = {0};
    struct wsk_server_config cfg;
    wsk_server_config_init(&cfg);
    wsk_deflate_config_init(&cfg.deflate);
    cfg.deflate.enabled = true;
    cfg.deflate.server_max_window_bits = 12;
    cfg.limits.max_send_queue = 4u << 20;
    cfg.handlers.on_open = zs_open;
    cfg.user_data = &zs;
    struct wsk_server *srv;
    CHECK_EQ_INT(wsk_server_new(&srv, loop, &cfg), 0);
    CHECK(wsk_server_listen(srv, "127.0.0.1", 0) > 0);
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%u/", wsk_server_port(srv));
    struct z_state zst[40] = {{0}};
    for (int i = 0; i < receivers; i++) {
        struct wsk_client_config cc;
        wsk_client_config_init(&cc);
        wsk_deflate_config_init(&cc.deflate);
        cc.deflate.enabled = true;
        cc.handlers.on_open = z_open;
        cc.handlers.on_message = z_message;
        cc.handlers.on_close = z_close;
        cc.user_data = &zst[i];
        zst[i].expect[0] = after;
        zst[i].expect_len[0] = 4096;
        zst[i].expect[1] = big;
        zst[i].expect_len[1] = len;
        zst[i].expect[2] = after;
        zst[i].expect_len[2] = 4096;
        struct wsk_conn *c;
        CHECK_EQ_INT(wsk_client_connect(&c, loop, url, &cc), 0);
    }
    double end = now_ms() + 5000;
    while (zs.n < receivers && now_ms() < end)
        run_for(5);
    CHECK_EQ_INT(zs.n, receivers);
    /* Each connection's own compressor gets some history first. */
    for (int i = 0; i < zs.n; i++)
        CHECK(wsk_conn_send(zs.conns[i], WSK_OP_TEXT, after, 4096) >= 0);
    t0 = now_ms();
    CHECK_EQ_INT(wsk_server_broadcast(srv, WSK_OP_TEXT, big, len), receivers);
    double took = now_ms() - t0;
    for (int i = 0; i < zs.n; i++)
        CHECK(wsk_conn_send(zs.conns[i], WSK_OP_TEXT, after, 4096) >= 0);
    fprintf(stderr, "  one compression %.1f ms (%zu -> %zu bytes); broadcast to %d took %.1f ms\n",
            one, len, zlen, receivers, took);
    CHECK(took < one * 8 + 20);
    end = now_ms() + 10000;
    int done = 0;
    while (done < receivers && now_ms() < end) {
        run_for(5);
        done = 0;
        for (int i = 0; i < receivers; i++)
            done += zst[i].messages == 3 || zst[i].closed;
    }
    for (int i = 0; i < receivers; i++) {
        CHECK_EQ_INT(zst[i].messages, 3);
        CHECK_EQ_INT(zst[i].bad, 0);
        CHECK(!zst[i].closed);
    }
    wsk_server_free(srv);
    end = now_ms() + 3000;
    done = 0;
    while (done < receivers && now_ms() < end) {
        run_for(5);
        done = 0;
        for (int i = 0; i < receivers; i++)
            done += zst[i].closed;
    }
    free(big);
    free(after);
}

/* ---- 4. static downloads time out on stalls, not on length ---------------- */

static char tmpdir[64];

static void make_file(const char *name, size_t size)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    for (size_t i = 0; i < size; i++)
        fputc('a' + (int)(i % 26), f);
    fclose(f);
}

/* Reads from fd for at most ms, at most per_slice bytes each 10 ms.
 * Returns the bytes read; *eof says whether the server closed. */
static size_t read_paced(int fd, size_t per_slice, double ms, bool *eof)
{
    static uint8_t buf[256 * 1024];
    size_t total = 0;
    double end = now_ms() + ms;
    *eof = false;
    while (!*eof && now_ms() < end) {
        run_for(10);
        size_t want = per_slice < sizeof buf ? per_slice : sizeof buf;
        total += raw_read(fd, buf, want, eof);
    }
    return total;
}

/* A big file, larger than the kernel's socket buffers hold, read steadily
 * but slowly: it takes several handshake timeouts and must arrive whole.
 * Before: cut at the handshake timeout, logged as a handshake timeout. */
static void test_slow_download_is_not_cut(void)
{
    const size_t size = 24u << 20;
    make_file("huge.bin", size);
    struct srv_state st = {0};
    struct wsk_server_config cfg;
    wsk_server_config_init(&cfg);
    cfg.static_dir = tmpdir;
    cfg.limits.handshake_timeout_ms = 200;
    cfg.limits.send_timeout_ms = 400;
    start(&st, &cfg);
    static const char get[] = "GET /huge.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    int fd = raw_connect(wsk_server_port(st.srv), 0);
    CHECK_EQ_INT(send(fd, get, sizeof get - 1, MSG_NOSIGNAL), (long)sizeof get - 1);
    double t0 = now_ms();
    bool eof;
    size_t total = read_paced(fd, 192 * 1024, 20000, &eof);
    fprintf(stderr, "  %zu bytes in %.0f ms\n", total, now_ms() - t0);
    CHECK(eof);
    CHECK(now_ms() - t0 > 600);
    CHECK(total > size); /* the head and the whole file */
    close(fd);

    /* A reader that stops reading is dropped after the send timeout. */
    fd = raw_connect(wsk_server_port(st.srv), 4096);
    CHECK_EQ_INT(send(fd, get, sizeof get - 1, MSG_NOSIGNAL), (long)sizeof get - 1);
    run_for(1500);
    total = read_paced(fd, 256 * 1024, 3000, &eof);
    fprintf(stderr, "  stalled reader got %zu bytes before the cut\n", total);
    CHECK(eof);
    CHECK(total < size);
    close(fd);
    wsk_server_free(st.srv);
}

/* ---- 9. at the open-file limit, say so once ------------------------------- */

static void test_emfile_logged_once(void)
{
    struct srv_state st = {0};
    struct wsk_server_config cfg;
    wsk_server_config_init(&cfg);
    start(&st, &cfg);
    uint16_t port = wsk_server_port(st.srv);
    struct rlimit old;
    getrlimit(RLIMIT_NOFILE, &old);
    /* Room for the clients below but not for the server's accepted ends. */
    int probe = dup(0);
    struct rlimit low = {(rlim_t)probe + 4, old.rlim_max};
    close(probe);
    CHECK_EQ_INT(setrlimit(RLIMIT_NOFILE, &low), 0);
    int fds[4];
    int n = 0;
    for (int i = 0; i < 4; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0)
            break;
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons(port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        connect(fd, (struct sockaddr *)&a, sizeof a);
        fds[n++] = fd;
    }
    run_for(700); /* about seven retries of the paused accept */
    CHECK(n >= 2);
    fprintf(stderr, "  %d clients; 'pausing' logged %d times\n", n, st.log_pausing);
    CHECK_EQ_INT(st.log_pausing, 1);
    setrlimit(RLIMIT_NOFILE, &old);
    run_for(400);
    CHECK_EQ_INT(st.log_again, 1);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    run_for(50);
    wsk_server_free(st.srv);
}

/* ---- 10. WebSocket headers without Upgrade ------------------------------- */

static void test_handshake_without_upgrade_gets_426(void)
{
    struct srv_state st = {0};
    struct wsk_server_config cfg;
    wsk_server_config_init(&cfg);
    static const uint8_t page[] = "<!doctype html><title>t</title>";
    cfg.index_page = page;
    cfg.index_page_len = sizeof page - 1;
    start(&st, &cfg);
    int fd = raw_connect(wsk_server_port(st.srv), 0);
    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Version: 13\r\n\r\n";
    send(fd, req, sizeof req - 1, MSG_NOSIGNAL);
    char got[2048];
    size_t len = 0;
    bool eof = false;
    double end = now_ms() + 3000;
    while (!eof && now_ms() < end) {
        run_for(5);
        len += raw_read(fd, (uint8_t *)got + len, sizeof got - 1 - len, &eof);
    }
    got[len] = 0;
    CHECK(!strncmp(got, "HTTP/1.1 426 ", 13));
    CHECK(strstr(got, "\r\nUpgrade: websocket\r\n") != NULL);
    CHECK(strstr(got, "<title>") == NULL);
    close(fd);
    wsk_server_free(st.srv);
}

/* ---- 11. freeing the server from a callback ------------------------------ */

static void test_free_server_from_on_message(void)
{
    struct srv_state st = {0};
    struct wsk_server_config cfg;
    wsk_server_config_init(&cfg);
    st.free_on_message = true;
    start(&st, &cfg);
    int fd = raw_ws_open(wsk_server_port(st.srv), 0);
    /* Two messages in one read: the second must not reach a freed server. */
    uint8_t frames[64];
    size_t n = client_frame(frames, 0x1, "one", 3);
    n += client_frame(frames + n, 0x1, "two", 3);
    send(fd, frames, n, MSG_NOSIGNAL);
    double end = now_ms() + 3000;
    while (st.srv && now_ms() < end)
        run_for(5);
    CHECK(st.srv == NULL);
    CHECK_EQ_INT(st.messages, 1);
    CHECK_EQ_INT(st.closed, 1);
    run_for(20);
    close(fd);
}

/* Reads until EOF or timeout_ms; returns the bytes read. */
static size_t read_all(int fd, uint8_t *buf, size_t cap, double timeout_ms)
{
    size_t len = 0;
    bool eof = false;
    double end = now_ms() + timeout_ms;
    while (!eof && len < cap && now_ms() < end) {
        run_for(5);
        len += raw_read(fd, buf + len, cap - len, &eof);
    }
    return len;
}

/* wsk_conn_close(c, 0, reason) sends an empty close frame. Before: the
 * encoder refused the reason and the connection was dropped without one. */
static void test_close_without_code_drops_reason(void)
{
    struct srv_state st = {0};
    struct wsk_server_config cfg;
    wsk_server_config_init(&cfg);
    start(&st, &cfg);
    int fd = raw_ws_open(wsk_server_port(st.srv), 0);
    uint8_t frame[32];
    size_t n = client_frame(frame, 0x1, "close0", 6);
    send(fd, frame, n, MSG_NOSIGNAL);
    uint8_t got[64];
    size_t len = read_all(fd, got, 2, 3000);
    CHECK(len == 2 && got[0] == 0x88 && got[1] == 0);
    n = client_frame(frame, 0x8, NULL, 0);
    send(fd, frame, n, MSG_NOSIGNAL);
    wait_flag(&st.is_closed, 3000);
    CHECK_EQ_INT(st.last_error, 0);
    close(fd);
    wsk_server_free(st.srv);
}

/* A shutdown with an invalid code still closes everyone, with 1001.
 * Before: the connections were left open. */
static void test_shutdown_with_invalid_code(void)
{
    struct srv_state st = {0};
    struct wsk_server_config cfg;
    wsk_server_config_init(&cfg);
    start(&st, &cfg);
    int fd = raw_ws_open(wsk_server_port(st.srv), 0);
    wsk_server_shutdown(st.srv, 999, "bye");
    uint8_t got[64];
    size_t len = read_all(fd, got, 4, 3000);
    CHECK(len == 4 && got[0] == 0x88 && got[2] == 0x03 && got[3] == 0xE9);
    close(fd);
    wait_flag(&st.is_closed, 3000);
    wsk_server_free(st.srv);
}

/* A NULL subprotocol in a client config is refused, not dereferenced (the
 * server side already took NULL as ""). */
static void test_client_null_subprotocol(void)
{
    struct wsk_client_config cfg;
    wsk_client_config_init(&cfg);
    const char *protos[] = {"chat", NULL};
    cfg.subprotocols = protos;
    cfg.num_subprotocols = 2;
    struct wsk_conn *c = NULL;
    CHECK_EQ_INT(wsk_client_connect(&c, loop, "ws://127.0.0.1:9/", &cfg), WSK_EURL);
}

/* The loop refuses to be freed under a live server. */
static void test_loop_free_refused_while_busy(void)
{
    struct wsk_loop *l;
    CHECK_EQ_INT(wsk_loop_new(&l, wsk_test_loop_cfg()), 0);
    struct wsk_server *srv;
    CHECK_EQ_INT(wsk_server_new(&srv, l, NULL), 0);
    CHECK(wsk_server_listen(srv, "127.0.0.1", 0) > 0);
    CHECK_EQ_INT(wsk_loop_free(l), -EBUSY);
    wsk_server_free(srv);
    CHECK_EQ_INT(wsk_loop_free(l), 0);
}

/* ---- 12. failures are reported at once ----------------------------------- */

/* A connect that fails inside wsk_client_connect() (a link-local IPv6
 * address without a scope: EINVAL from connect(), nothing is sent) is
 * reported on the same iteration. Before: by the timeout sweep, up to a
 * second later. */
static void test_failure_in_connect_call_reported_at_once(void)
{
    struct cl_state cs = {0};
    uint64_t t0 = wsk_loop_now(loop);
    client("ws://[fe80::1]:9/", &cs);
    CHECK(!cs.closed); /* never from inside wsk_client_connect() */
    wait_flag(&cs.closed, 3000);
    fprintf(stderr, "  on_close after %u ms: %s\n", (unsigned)(cs.close_ms - t0),
            wsk_strerror(cs.error));
    CHECK(cs.closed);
    CHECK(cs.error < 0);
    CHECK(cs.close_ms - t0 < 100);
}

static void test_refused_connect_reported_at_once(void)
{
    /* A port nobody listens on: bind one, note it, close it. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(fd, (struct sockaddr *)&a, sizeof a);
    socklen_t al = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &al);
    close(fd);
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%u/", ntohs(a.sin_port));
    struct cl_state cs = {0};
    uint64_t t0 = wsk_loop_now(loop);
    double w0 = now_ms();
    client(url, &cs);
    CHECK(!cs.closed); /* never from inside wsk_client_connect() */
    wait_flag(&cs.closed, 3000);
    fprintf(stderr, "  on_close after %.1f ms\n", now_ms() - w0);
    CHECK(cs.closed);
    CHECK_EQ_INT(cs.error, -ECONNREFUSED);
    CHECK(cs.close_ms - t0 < 100);
}

int main(void)
{
    CHECK_EQ_INT(wsk_loop_new(&loop, wsk_test_loop_cfg()), 0);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/wsk-hardening-XXXXXX");
    CHECK(mkdtemp(tmpdir) != NULL);
    WSK_RUN(test_ping_flood_never_reading);
    WSK_RUN(test_pong_timeout_follows_interval);
    WSK_RUN(test_broadcast_bigger_than_queue_cap);
    WSK_RUN(test_compressed_broadcast_once);
    WSK_RUN(test_slow_download_is_not_cut);
    WSK_RUN(test_emfile_logged_once);
    WSK_RUN(test_handshake_without_upgrade_gets_426);
    WSK_RUN(test_free_server_from_on_message);
    WSK_RUN(test_loop_free_refused_while_busy);
    WSK_RUN(test_close_without_code_drops_reason);
    WSK_RUN(test_shutdown_with_invalid_code);
    WSK_RUN(test_client_null_subprotocol);
    WSK_RUN(test_refused_connect_reported_at_once);
    WSK_RUN(test_failure_in_connect_call_reported_at_once);
    char path[128];
    snprintf(path, sizeof path, "%s/huge.bin", tmpdir);
    unlink(path);
    rmdir(tmpdir);
    run_for(50);
    CHECK_EQ_INT(wsk_loop_free(loop), 0);
    WSK_TEST_END();
}
