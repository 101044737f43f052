/* The public connection API of include/wsk/ws.h over real sockets on
 * 127.0.0.1: pings and pongs, the send queue and its limit
 * (WSK_EBACKPRESSURE, on_drain), read pausing under a peer that sends but
 * does not read, and the WSK_OVERFLOW_DROP policy for broadcasts.
 *
 * A wsk server and wsk clients share one loop. Where a peer must not read, it
 * is a raw non-blocking socket with small kernel buffers, driven from the same
 * thread: either from a wsk_io watcher on the test's loop, or not at all
 * while it plays dead. Every wait runs the loop until a condition holds, with
 * a deadline; nothing waits for a fixed time.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wsk.h"
#include "wsk_test.h"

#define WAIT_MS 20000 /* generous: the machine may be busy, and ASan is slow */

static struct wsk_loop *loop;

/* ---- waiting on conditions ------------------------------------------------ */

typedef bool (*cond_fn)(void *arg);

struct waiter {
    cond_fn cond;
    void *arg;
    bool is_met, is_late;
};

static void waiter_poll(struct wsk_loop *l, struct wsk_timer *t)
{
    struct waiter *w = t->data;
    if (w->cond(w->arg)) {
        w->is_met = true;
        wsk_loop_stop(l);
    }
}

static void waiter_deadline(struct wsk_loop *l, struct wsk_timer *t)
{
    struct waiter *w = t->data;
    w->is_late = true;
    wsk_loop_stop(l);
}

/* Runs the loop until cond(arg) holds (checked every millisecond), at most
 * timeout_ms. Returns whether it held; the caller CHECKs that. */
static bool run_until_(cond_fn cond, void *arg, uint64_t timeout_ms, const char *what)
{
    struct waiter w = {cond, arg, false, false};
    if (cond(arg))
        return true;
    struct wsk_timer poll, deadline;
    wsk_timer_init(&poll, waiter_poll, &w);
    wsk_timer_init(&deadline, waiter_deadline, &w);
    wsk_timer_start(loop, &poll, 1, 1);
    wsk_timer_start(loop, &deadline, timeout_ms, 0);
    while (!w.is_met && !w.is_late) {
        if (wsk_loop_run(loop) != 0)
            break;
        if (!w.is_met && cond(arg))
            w.is_met = true;
    }
    wsk_timer_stop(loop, &poll);
    wsk_timer_stop(loop, &deadline);
    if (!w.is_met)
        fprintf(stderr, "timed out after %" PRIu64 " ms waiting for %s\n", timeout_ms, what);
    return w.is_met;
}

#define run_until(cond, arg) run_until_((cond), (arg), WAIT_MS, #cond)

/* ---- a raw peer: a non-blocking socket the test drives by hand --------------- */

struct peer {
    int fd;
    struct wsk_io io;
    bool has_head, is_eof;
    int status; /* of the HTTP answer */
    uint8_t *in;
    size_t in_len, in_cap;
    size_t frames; /* frames from the server, parsed */
    size_t want_frames;
    size_t bad_frames; /* masked, unfinished or unknown frames */
    void (*on_frame)(struct peer *p, uint8_t first_byte, const uint8_t *data, size_t len);
    void *data;
    const uint8_t *out; /* what is left to send */
    size_t out_len, out_off;
};

static const char upgrade[] =
    "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n";

static void peer_parse(struct peer *p)
{
    size_t off = 0;
    if (!p->has_head) {
        const uint8_t *end = memmem(p->in, p->in_len, "\r\n\r\n", 4);
        if (!end)
            return;
        p->has_head = true;
        if (p->in_len >= 12 && !memcmp(p->in, "HTTP/1.1 ", 9))
            p->status = atoi((const char *)p->in + 9);
        off = (size_t)(end - p->in) + 4;
    }
    while (p->in_len - off >= 2) {
        const uint8_t *h = p->in + off;
        size_t avail = p->in_len - off, hlen = 2;
        uint64_t len = h[1] & 0x7F;
        if (h[1] & 0x80 || !(h[0] & 0x80))
            p->bad_frames++; /* servers do not mask, and wsk does not fragment */
        if (len == 126) {
            if (avail < 4)
                break;
            len = (uint64_t)h[2] << 8 | h[3];
            hlen = 4;
        } else if (len == 127) {
            if (avail < 10)
                break;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = len << 8 | h[2 + i];
            hlen = 10;
        }
        if (avail - hlen < len)
            break;
        p->frames++;
        if (p->on_frame)
            p->on_frame(p, h[0], h + hlen, (size_t)len);
        off += hlen + (size_t)len;
    }
    memmove(p->in, p->in + off, p->in_len - off);
    p->in_len -= off;
}

/* Reads what the socket has, parsing as it goes. */
static void peer_read(struct peer *p)
{
    while (!p->is_eof) {
        if (p->in_cap - p->in_len < 65536) {
            p->in_cap = p->in_len + 65536;
            p->in = realloc(p->in, p->in_cap);
        }
        ssize_t n = recv(p->fd, p->in + p->in_len, p->in_cap - p->in_len, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            p->is_eof = true;
            return;
        }
        p->in_len += (size_t)n;
        peer_parse(p);
    }
}

/* Writes what the socket takes of the rest of p->out. */
static void peer_write(struct peer *p)
{
    while (p->out_off < p->out_len) {
        ssize_t n =
            send(p->fd, p->out + p->out_off, p->out_len - p->out_off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n <= 0)
            return;
        p->out_off += (size_t)n;
    }
}

static void peer_io_cb(struct wsk_loop *l, struct wsk_io *io, unsigned events)
{
    struct peer *p = io->data;
    if (events & WSK_IO_READ)
        peer_read(p);
    if (events & WSK_IO_WRITE)
        peer_write(p);
    unsigned want = io->events;
    if (p->out_off == p->out_len)
        want &= ~(unsigned)WSK_IO_WRITE;
    if (p->is_eof)
        want &= ~(unsigned)WSK_IO_READ;
    if (want != io->events)
        wsk_io_start(l, io, want);
}

/* Connects to port and sends the upgrade request. Small buffers (rcvbuf,
 * sndbuf; 0 keeps the default) make the kernel push back quickly. The peer
 * is not watched: it reads and writes only once peer_watch() says so. */
static void peer_connect(struct peer *p, uint16_t port, int rcvbuf, int sndbuf)
{
    p->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(p->fd >= 0);
    /* Before connect(): the window scale is fixed by the handshake. */
    if (rcvbuf)
        CHECK_EQ_INT(setsockopt(p->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf), 0);
    if (sndbuf)
        CHECK_EQ_INT(setsockopt(p->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf), 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ_INT(connect(p->fd, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_EQ_INT(send(p->fd, upgrade, sizeof upgrade - 1, MSG_NOSIGNAL),
                 (ssize_t)sizeof upgrade - 1);
    CHECK_EQ_INT(fcntl(p->fd, F_SETFL, fcntl(p->fd, F_GETFL) | O_NONBLOCK), 0);
    wsk_io_init(&p->io, p->fd, peer_io_cb, p);
}

static void peer_watch(struct peer *p, unsigned events)
{
    CHECK_EQ_INT(wsk_io_start(loop, &p->io, events), 0);
}

/* "127.0.0.1:port" of the peer's end, as wsk_conn_peer() names it. */
static void peer_name(const struct peer *p, char *out, size_t cap)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    CHECK_EQ_INT(getsockname(p->fd, (struct sockaddr *)&a, &len), 0);
    snprintf(out, cap, "127.0.0.1:%u", ntohs(a.sin_port));
}

static void peer_close(struct peer *p)
{
    wsk_io_stop(loop, &p->io);
    close(p->fd);
    free(p->in);
    p->in = NULL;
}

/* ---- a server that records what happens ------------------------------------ */

struct srv {
    struct wsk_server *srv;
    struct wsk_server_config cfg;
    struct wsk_conn *conns[4];
    int opened, closed;
    int drains;
    size_t queue_at_drain;
    /* test_ping_pong */
    char pings[4][128];
    size_t ping_lens[4];
    int npings, npongs;
    char pong[32];
    /* test_read_pausing */
    size_t max_queue;
    int backpressure, send_errors;
};

static void srv_open(struct wsk_conn *c, const struct wsk_open_event *ev, void *ud)
{
    (void)ev;
    struct srv *s = ud;
    if (s->opened < 4)
        s->conns[s->opened] = c;
    s->opened++;
}

static void srv_close(struct wsk_conn *c, const struct wsk_close_event *ev, void *ud)
{
    (void)ev;
    struct srv *s = ud;
    s->closed++;
    for (int i = 0; i < 4; i++)
        if (s->conns[i] == c)
            s->conns[i] = NULL;
}

static void srv_drain(struct wsk_conn *c, void *ud)
{
    struct srv *s = ud;
    s->drains++;
    s->queue_at_drain = wsk_conn_send_queue(c);
}

/* Echoes, and keeps the largest send queue it saw. */
static void srv_echo(struct wsk_conn *c, const struct wsk_message *m, void *ud)
{
    struct srv *s = ud;
    int rv = wsk_conn_send(c, m->opcode, m->data, m->len);
    if (rv == WSK_EBACKPRESSURE)
        s->backpressure++;
    else if (rv != 0)
        s->send_errors++;
    size_t q = wsk_conn_send_queue(c);
    if (q > s->max_queue)
        s->max_queue = q;
}

static void srv_init(struct srv *s)
{
    memset(s, 0, sizeof *s);
    wsk_server_config_init(&s->cfg);
    s->cfg.handlers.on_open = srv_open;
    s->cfg.handlers.on_close = srv_close;
    s->cfg.handlers.on_drain = srv_drain;
    s->cfg.user_data = s;
}

static void srv_start(struct srv *s)
{
    CHECK_EQ_INT(wsk_server_new(&s->srv, loop, &s->cfg), 0);
    CHECK(wsk_server_listen(s->srv, "127.0.0.1", 0) > 0);
}

static bool srv_has_one(void *arg)
{
    return ((struct srv *)arg)->opened >= 1;
}

static bool srv_all_closed(void *arg)
{
    struct srv *s = arg;
    return s->closed == s->opened;
}

/* ---- a client that records what happens ------------------------------------ */

struct cl {
    struct wsk_conn *conn;
    int opened;
    bool closed;
    int close_error;
    size_t messages;
    size_t bad_messages; /* out of order or damaged */
    bool got_end;
    /* test_ping_pong */
    char pong[4][128];
    size_t pong_lens[4];
    int npongs, npings;
    char ping[32];
};

static void cl_open(struct wsk_conn *c, const struct wsk_open_event *ev, void *ud)
{
    (void)c;
    (void)ev;
    ((struct cl *)ud)->opened++;
}

static void cl_close(struct wsk_conn *c, const struct wsk_close_event *ev, void *ud)
{
    (void)c;
    struct cl *s = ud;
    s->closed = true;
    s->close_error = ev->error;
}

static void cl_connect(struct cl *s, const struct srv *server, struct wsk_client_config *cfg)
{
    struct wsk_client_config local;
    if (!cfg) {
        wsk_client_config_init(&local);
        cfg = &local;
    }
    cfg->handlers.on_open = cl_open;
    cfg->handlers.on_close = cl_close;
    cfg->user_data = s;
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%u/", wsk_server_port(server->srv));
    CHECK_EQ_INT(wsk_client_connect(&s->conn, loop, url, cfg), 0);
}

static bool cl_is_closed(void *arg)
{
    return ((struct cl *)arg)->closed;
}

/* ---- pings ------------------------------------------------------------------- */

static void pp_srv_open(struct wsk_conn *c, const struct wsk_open_event *ev, void *ud)
{
    srv_open(c, ev, ud);
    CHECK_EQ_INT(wsk_conn_ping(c, "srv-ping", 8), 0);
}

static void pp_srv_ping(struct wsk_conn *c, const uint8_t *data, size_t len, void *ud)
{
    (void)c;
    struct srv *s = ud;
    if (s->npings < 4) {
        memcpy(s->pings[s->npings], data, len);
        s->ping_lens[s->npings] = len;
    }
    s->npings++;
}

static void pp_srv_pong(struct wsk_conn *c, const uint8_t *data, size_t len, void *ud)
{
    (void)c;
    struct srv *s = ud;
    snprintf(s->pong, sizeof s->pong, "%.*s", (int)len, (const char *)data);
    s->npongs++;
}

static void pp_cl_ping(struct wsk_conn *c, const uint8_t *data, size_t len, void *ud)
{
    (void)c;
    struct cl *s = ud;
    snprintf(s->ping, sizeof s->ping, "%.*s", (int)len, (const char *)data);
    s->npings++;
}

static void pp_cl_pong(struct wsk_conn *c, const uint8_t *data, size_t len, void *ud)
{
    (void)c;
    struct cl *s = ud;
    if (s->npongs < 4) {
        memcpy(s->pong[s->npongs], data, len);
        s->pong_lens[s->npongs] = len;
    }
    s->npongs++;
}

struct pp_wait {
    struct srv *s;
    struct cl *c;
};

static bool pp_all_answered(void *arg)
{
    struct pp_wait *w = arg;
    return w->c->npongs >= 3 && w->s->npings >= 3 && w->s->npongs >= 1 && w->c->npings >= 1;
}

static bool cl_is_open(void *arg)
{
    return ((struct cl *)arg)->opened > 0;
}

/* Pings both ways: the peer sees the payload, our on_pong sees it echoed. */
static void test_ping_pong(void)
{
    struct srv s;
    srv_init(&s);
    s.cfg.handlers.on_open = pp_srv_open;
    s.cfg.handlers.on_ping = pp_srv_ping;
    s.cfg.handlers.on_pong = pp_srv_pong;
    srv_start(&s);

    struct cl c = {0};
    struct wsk_client_config cc;
    wsk_client_config_init(&cc);
    cc.handlers.on_ping = pp_cl_ping;
    cc.handlers.on_pong = pp_cl_pong;
    cl_connect(&c, &s, &cc);
    CHECK(run_until(cl_is_open, &c));

    uint8_t max[126];
    for (size_t i = 0; i < sizeof max; i++)
        max[i] = (uint8_t)('a' + i % 26);
    CHECK_EQ_INT(wsk_conn_ping(c.conn, max, 126), WSK_ETOOBIG);
    CHECK_EQ_INT(wsk_conn_ping(c.conn, "cl-ping-1", 9), 0);
    CHECK_EQ_INT(wsk_conn_ping(c.conn, NULL, 0), 0);
    CHECK_EQ_INT(wsk_conn_ping(c.conn, max, 125), 0);
    struct pp_wait w = {&s, &c};
    CHECK(run_until(pp_all_answered, &w));

    /* The server saw each payload, and the pongs came back in order. */
    CHECK_EQ_INT(s.npings, 3);
    CHECK_EQ_INT(s.ping_lens[0], 9);
    CHECK_MEM(s.pings[0], "cl-ping-1", 9);
    CHECK_EQ_INT(s.ping_lens[1], 0);
    CHECK_EQ_INT(s.ping_lens[2], 125);
    CHECK_MEM(s.pings[2], max, 125);
    CHECK_EQ_INT(c.npongs, 3);
    CHECK_EQ_INT(c.pong_lens[0], 9);
    CHECK_MEM(c.pong[0], "cl-ping-1", 9);
    CHECK_EQ_INT(c.pong_lens[1], 0);
    CHECK_EQ_INT(c.pong_lens[2], 125);
    CHECK_MEM(c.pong[2], max, 125);
    /* And the other way round. */
    CHECK_STR(c.ping, "srv-ping");
    CHECK_STR(s.pong, "srv-ping");

    /* A closing connection takes no more pings. */
    CHECK_EQ_INT(wsk_conn_close(c.conn, 1000, NULL), 0);
    CHECK_EQ_INT(wsk_conn_ping(c.conn, "late", 4), WSK_ESTATE);
    CHECK(run_until(cl_is_closed, &c));
    CHECK_EQ_INT(c.close_error, 0);
    CHECK(run_until(srv_all_closed, &s));
    CHECK_EQ_INT(s.npings, 3);
    wsk_server_free(s.srv);
}

/* ---- the send queue, WSK_EBACKPRESSURE and on_drain ------------------------------ */

static bool srv_queue_empty(void *arg)
{
    struct srv *s = arg;
    return s->conns[0] && wsk_conn_send_queue(s->conns[0]) == 0;
}

#define BIG_LEN (16u * 1024)

struct bp_peer {
    size_t bad; /* frames that are not the message expected next */
};

static void bp_frame(struct peer *p, uint8_t first_byte, const uint8_t *data, size_t len)
{
    struct bp_peer *b = p->data;
    size_t index = p->frames - 1;
    bool is_ok = first_byte == (0x80 | WSK_OP_BINARY) && len == BIG_LEN;
    for (size_t i = 0; is_ok && i < len; i++)
        is_ok = data[i] == (uint8_t)index;
    if (!is_ok)
        b->bad++;
}

struct bp_wait {
    struct srv *s;
    struct peer *p;
    size_t frames;
};

static bool bp_drained(void *arg)
{
    return ((struct bp_wait *)arg)->s->drains > 0;
}

static bool bp_all_read(void *arg)
{
    struct bp_wait *w = arg;
    return w->p->frames >= w->frames;
}

/* A peer that does not read: the queue grows and reports it, a send past
 * max_send_queue returns WSK_EBACKPRESSURE (still queued), and on_drain runs
 * once the peer reads and the queue is down to half. Nothing is lost. */
static void test_send_queue_backpressure_drain(void)
{
    const size_t limit = 256 * 1024;
    struct srv s;
    srv_init(&s);
    s.cfg.limits.max_send_queue = limit;
    srv_start(&s);
    struct peer p = {0};
    struct bp_peer b = {0};
    p.on_frame = bp_frame;
    p.data = &b;
    peer_connect(&p, wsk_server_port(s.srv), 4096, 0);
    CHECK(run_until(srv_has_one, &s));
    CHECK(run_until(srv_queue_empty, &s));
    struct wsk_conn *c = s.conns[0];
    if (!c)
        goto out;

    uint8_t *msg = malloc(BIG_LEN);
    size_t sent = 0;
    int rv = 0;
    /* The kernel takes some (4 KiB of receive buffer, the server's send
     * buffer), the rest stays queued. 4,096 messages (64 MiB) is far more
     * than both: the limit must be hit before. */
    while (sent < 4096) {
        memset(msg, (uint8_t)sent, BIG_LEN);
        rv = wsk_conn_send(c, WSK_OP_BINARY, msg, BIG_LEN);
        sent++;
        if (rv != 0)
            break;
        CHECK(wsk_conn_send_queue(c) <= limit);
    }
    CHECK_EQ_INT(rv, WSK_EBACKPRESSURE);
    size_t q = wsk_conn_send_queue(c);
    CHECK(q > limit); /* the refused message is queued all the same */
    /* Over the limit, each further send says so, and is queued too. */
    memset(msg, (uint8_t)sent, BIG_LEN);
    CHECK_EQ_INT(wsk_conn_send(c, WSK_OP_BINARY, msg, BIG_LEN), WSK_EBACKPRESSURE);
    sent++;
    CHECK(wsk_conn_send_queue(c) > limit);
    CHECK_EQ_INT(s.drains, 0);

    /* The peer reads: on_drain once the queue is at half the limit or less. */
    peer_watch(&p, WSK_IO_READ);
    struct bp_wait w = {&s, &p, sent};
    CHECK(run_until(bp_drained, &w));
    CHECK_EQ_INT(s.drains, 1);
    CHECK(s.queue_at_drain <= limit / 2);
    CHECK(run_until(bp_all_read, &w));
    CHECK_EQ_INT(p.frames, sent);
    CHECK_EQ_INT(b.bad, 0);
    CHECK_EQ_INT(p.bad_frames, 0);
    CHECK_EQ_INT(p.status, 101);
    CHECK_EQ_INT(s.drains, 1); /* no second on_drain without a second WSK_EBACKPRESSURE */
    CHECK_EQ_INT(wsk_conn_send_queue(c), 0);
    CHECK_EQ_INT(s.closed, 0);
    free(msg);
out:
    peer_close(&p);
    CHECK(run_until(srv_all_closed, &s));
    wsk_server_free(s.srv);
}

struct cq_wait {
    struct srv *s;
    struct cl *c;
};

static void cq_srv_message(struct wsk_conn *c, const struct wsk_message *m, void *ud)
{
    (void)c;
    (void)m;
    ((struct srv *)ud)->npings++; /* counts messages here */
}

static bool cq_arrived(void *arg)
{
    struct cq_wait *w = arg;
    return w->s->npings == 1 && wsk_conn_send_queue(w->c->conn) == 0;
}

/* A client's queue counts the whole frame (header, mask key, payload) until
 * the end of the loop iteration writes it. */
static void test_send_queue_counts_frames(void)
{
    struct srv s;
    srv_init(&s);
    s.cfg.handlers.on_message = cq_srv_message;
    srv_start(&s);
    struct cl c = {0};
    cl_connect(&c, &s, NULL);
    CHECK(run_until(cl_is_open, &c));
    CHECK_EQ_INT(wsk_conn_send_queue(c.conn), 0);
    CHECK_EQ_INT(wsk_conn_send(c.conn, WSK_OP_TEXT, "0123456789", 10), 0);
    CHECK_EQ_INT(wsk_conn_send_queue(c.conn), 2 + 4 + 10);
    struct cq_wait w = {&s, &c};
    CHECK(run_until(cq_arrived, &w));
    wsk_conn_close(c.conn, 1000, NULL);
    CHECK(run_until(cl_is_closed, &c));
    CHECK(run_until(srv_all_closed, &s));
    wsk_server_free(s.srv);
}

/* wsk_conn_pause(): a server that pauses a connection in on_open reads
 * nothing from it (the message waits in the kernel) until it resumes; then
 * the message arrives, and pausing and resuming twice changes nothing. */
static bool up_server_open(void *arg)
{
    return ((struct srv *)arg)->conns[0] != NULL;
}

static bool up_got_one(void *arg)
{
    return ((struct srv *)arg)->npings == 1;
}

static void up_time_passes(struct wsk_loop *l, struct wsk_timer *t)
{
    (void)l;
    *(bool *)t->data = true;
}

static bool up_flag(void *arg)
{
    return *(bool *)arg;
}

static void test_user_pause(void)
{
    struct srv s;
    srv_init(&s);
    s.cfg.handlers.on_message = cq_srv_message;
    srv_start(&s);
    struct cl c = {0};
    cl_connect(&c, &s, NULL);
    CHECK(run_until(cl_is_open, &c));
    CHECK(run_until(up_server_open, &s));
    wsk_conn_pause(s.conns[0], true);
    wsk_conn_pause(s.conns[0], true);
    CHECK_EQ_INT(wsk_conn_send(c.conn, WSK_OP_TEXT, "held", 4), 0);
    bool passed = false;
    struct wsk_timer t;
    wsk_timer_init(&t, up_time_passes, &passed);
    CHECK_EQ_INT(wsk_timer_start(loop, &t, 300, 0), 0);
    CHECK(run_until(up_flag, &passed));
    CHECK_EQ_INT(s.npings, 0); /* paused: not read */
    wsk_conn_pause(s.conns[0], false);
    wsk_conn_pause(s.conns[0], false);
    CHECK(run_until(up_got_one, &s));
    wsk_conn_close(c.conn, 1000, NULL);
    CHECK(run_until(cl_is_closed, &c));
    CHECK(run_until(srv_all_closed, &s));
    wsk_server_free(s.srv);
}

/* The most a socket's kernel send buffer may grow to (tcp_wmem's maximum):
 * a peer that does not read must be sent more than that before the
 * library's queue sees any of it. */
static size_t kernel_wmem_max(void)
{
    size_t lo = 0, def = 0, max = 0;
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_wmem", "r");
    if (f) {
        if (fscanf(f, "%zu %zu %zu", &lo, &def, &max) != 3)
            max = 0;
        fclose(f);
    }
    return max ? max : 4u << 20;
}

/* ---- read pausing ------------------------------------------------------------ */

#define RP_LEN 4000u

struct rp_peer {
    size_t bad;
};

static void rp_payload(uint8_t *out, uint32_t seq)
{
    out[0] = (uint8_t)(seq >> 24);
    out[1] = (uint8_t)(seq >> 16);
    out[2] = (uint8_t)(seq >> 8);
    out[3] = (uint8_t)seq;
    for (size_t i = 4; i < RP_LEN; i++)
        out[i] = (uint8_t)(seq * 31 + i);
}

static void rp_frame(struct peer *p, uint8_t first_byte, const uint8_t *data, size_t len)
{
    struct rp_peer *r = p->data;
    uint8_t want[RP_LEN];
    rp_payload(want, (uint32_t)(p->frames - 1));
    if (first_byte != (0x80 | WSK_OP_BINARY) || len != RP_LEN || memcmp(data, want, RP_LEN))
        r->bad++;
}

static bool rp_paused(void *arg)
{
    return ((struct srv *)arg)->backpressure > 0;
}

static bool rp_all_back(void *arg)
{
    struct peer *p = arg;
    return p->frames >= p->want_frames || p->is_eof;
}

/* A peer sends many requests to an echo server and reads nothing. The
 * server's queue must stay near max_send_queue (it stops reading from that
 * peer, so TCP pushes back), and once the peer reads, every answer arrives,
 * in order. */
static void test_read_pausing(void)
{
    const size_t limit = 64 * 1024;
    struct srv s;
    srv_init(&s);
    s.cfg.limits.max_send_queue = limit;
    s.cfg.handlers.on_message = srv_echo;
    srv_start(&s);

    /* More than the kernel buffers can hold, so the library's queue fills. */
    const uint32_t count = (uint32_t)((2 * kernel_wmem_max() + (2u << 20)) / RP_LEN);
    size_t frame_len = RP_LEN + 8;
    uint8_t *reqs = malloc((size_t)count * frame_len);
    static const uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
    for (uint32_t i = 0; i < count; i++) {
        uint8_t payload[RP_LEN];
        rp_payload(payload, i);
        int64_t n = wsk_frame_encode(reqs + i * frame_len, frame_len, 0x80 | WSK_OP_BINARY, payload,
                                     RP_LEN, key);
        CHECK_EQ_INT(n, (int64_t)frame_len);
    }
    struct peer p = {0};
    struct rp_peer r = {0};
    p.on_frame = rp_frame;
    p.data = &r;
    p.out = reqs;
    p.out_len = (size_t)count * frame_len;
    p.want_frames = count;
    peer_connect(&p, wsk_server_port(s.srv), 4096, 16384);
    CHECK(run_until(srv_has_one, &s));

    /* Only writing: the server's answers pile up until it stops reading. */
    peer_watch(&p, WSK_IO_WRITE);
    CHECK(run_until(rp_paused, &s));
    /* Now reading too: everything comes back. */
    peer_watch(&p, WSK_IO_READ | (p.out_off < p.out_len ? WSK_IO_WRITE : 0));
    CHECK(run_until(rp_all_back, &p));
    CHECK_EQ_INT(p.out_off, p.out_len);
    CHECK_EQ_INT(p.frames, count);
    CHECK_EQ_INT(r.bad, 0);
    CHECK_EQ_INT(p.bad_frames, 0);
    CHECK_EQ_INT(s.send_errors, 0);
    CHECK_EQ_INT(s.closed, 0);
    CHECK(!p.is_eof);
    /* One read burst (the loop's 256 KiB buffer) may be answered past the
     * limit before reading stops; nothing more. */
    size_t bound = limit + 256 * 1024 + 16 * 1024;
    printf("     %u echoes; largest send queue %zu (limit %zu, bound %zu), %d sends over it\n",
           count, s.max_queue, limit, bound, s.backpressure);
    CHECK(s.max_queue > limit);
    CHECK(s.max_queue <= bound);

    peer_close(&p);
    CHECK(run_until(srv_all_closed, &s));
    wsk_server_free(s.srv);
    free(reqs);
}

/* ---- WSK_OVERFLOW_DROP ----------------------------------------------------------- */

#define OD_LEN   RP_LEN
#define OD_BATCH 8u /* 32 KiB: half the limit */

static uint32_t od_seq(const uint8_t *d)
{
    return (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3];
}

static bool od_intact(const uint8_t *d, size_t len)
{
    if (len != OD_LEN)
        return false;
    uint8_t want[OD_LEN];
    rp_payload(want, od_seq(d));
    return !memcmp(d, want, OD_LEN);
}

static void od_cl_message(struct wsk_conn *c, const struct wsk_message *m, void *ud)
{
    (void)c;
    struct cl *s = ud;
    if (m->opcode == WSK_OP_TEXT && m->len == 3 && !memcmp(m->data, "end", 3)) {
        s->got_end = true;
        return;
    }
    if (m->opcode != WSK_OP_BINARY || !od_intact(m->data, m->len) || od_seq(m->data) != s->messages)
        s->bad_messages++;
    s->messages++;
}

struct od_peer {
    size_t binary;
    int64_t last_seq;
    size_t bad;
    bool got_end;
};

static void od_frame(struct peer *p, uint8_t first_byte, const uint8_t *data, size_t len)
{
    struct od_peer *o = p->data;
    if (first_byte == (0x80 | WSK_OP_TEXT) && len == 3 && !memcmp(data, "end", 3)) {
        o->got_end = true;
        return;
    }
    /* Messages may be missing, but what arrives is whole and in order. */
    if (first_byte != (0x80 | WSK_OP_BINARY) || !od_intact(data, len) ||
        (int64_t)od_seq(data) <= o->last_seq)
        o->bad++;
    else
        o->last_seq = od_seq(data);
    o->binary++;
}

struct od_wait {
    struct srv *s;
    struct cl *c;
    size_t messages;
    struct wsk_conn *raw;
    struct od_peer *o;
};

static bool od_open(void *arg)
{
    struct od_wait *w = arg;
    return w->s->opened == 3 && w->c[0].opened && w->c[1].opened;
}

static bool od_clients_have_all(void *arg)
{
    struct od_wait *w = arg;
    return w->c[0].messages >= w->messages && w->c[1].messages >= w->messages;
}

static bool od_raw_drained(void *arg)
{
    struct od_wait *w = arg;
    return wsk_conn_send_queue(w->raw) == 0;
}

static bool od_everyone_has_end(void *arg)
{
    struct od_wait *w = arg;
    return w->c[0].got_end && w->c[1].got_end && w->o->got_end;
}

/* Broadcasts to two reading clients and a peer that does not read: with
 * WSK_OVERFLOW_DROP the peer loses messages but stays connected, and the
 * others get every one. */
static void test_overflow_drop(void)
{
    const size_t limit = 64 * 1024;
    struct srv s;
    srv_init(&s);
    s.cfg.limits.max_send_queue = limit;
    s.cfg.limits.overflow = WSK_OVERFLOW_DROP;
    srv_start(&s);
    struct cl c[2] = {{0}, {0}};
    struct wsk_client_config cc;
    for (int i = 0; i < 2; i++) {
        wsk_client_config_init(&cc);
        cc.handlers.on_message = od_cl_message;
        cl_connect(&c[i], &s, &cc);
    }
    struct peer p = {0};
    struct od_peer o = {.last_seq = -1};
    p.on_frame = od_frame;
    p.data = &o;
    peer_connect(&p, wsk_server_port(s.srv), 4096, 0);
    struct od_wait w = {&s, c, 0, NULL, &o};
    CHECK(run_until(od_open, &w));
    char name[64];
    peer_name(&p, name, sizeof name);
    for (int i = 0; i < 3; i++)
        if (s.conns[i] && !strcmp(wsk_conn_peer(s.conns[i]), name))
            w.raw = s.conns[i];
    CHECK(w.raw != NULL);
    if (!w.raw)
        goto out;

    /* Batches small enough for the reading clients' queues; the loop runs
     * between them until the clients have everything so far. */
    const uint32_t count = (uint32_t)((2 * kernel_wmem_max() + (2u << 20)) / OD_LEN);
    int drops = 0;
    uint8_t msg[OD_LEN];
    for (uint32_t seq = 0; seq < count;) {
        for (uint32_t j = 0; j < OD_BATCH && seq < count; j++, seq++) {
            rp_payload(msg, seq);
            int rv = wsk_server_broadcast(s.srv, WSK_OP_BINARY, msg, OD_LEN);
            CHECK(rv == 2 || rv == 3);
            drops += rv == 2;
            CHECK(wsk_conn_send_queue(w.raw) <= limit);
        }
        w.messages = seq;
        if (!run_until(od_clients_have_all, &w)) {
            CHECK(0);
            break;
        }
    }
    printf("     %u broadcasts, %d dropped for the peer that does not read\n", count, drops);
    CHECK(drops > 0);
    CHECK_EQ_INT(s.closed, 0);
    CHECK_EQ_INT(wsk_server_num_connections(s.srv), 3);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ_INT(c[i].messages, count);
        CHECK_EQ_INT(c[i].bad_messages, 0);
    }

    /* The peer reads what it was given; afterwards it gets broadcasts again. */
    peer_watch(&p, WSK_IO_READ);
    CHECK(run_until(od_raw_drained, &w));
    CHECK_EQ_INT(wsk_server_broadcast(s.srv, WSK_OP_TEXT, "end", 3), 3);
    CHECK(run_until(od_everyone_has_end, &w));
    CHECK_EQ_INT(o.bad, 0);
    CHECK_EQ_INT(p.bad_frames, 0);
    CHECK(o.binary > 0);
    CHECK_EQ_INT(o.binary + (size_t)drops, count);
    CHECK_EQ_INT(s.closed, 0);
    CHECK(!p.is_eof);
out:
    peer_close(&p);
    for (int i = 0; i < 2; i++)
        wsk_conn_close(c[i].conn, 1000, NULL);
    for (int i = 0; i < 2; i++)
        CHECK(run_until(cl_is_closed, &c[i]));
    CHECK(run_until(srv_all_closed, &s));
    wsk_server_free(s.srv);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    CHECK_EQ_INT(wsk_loop_new(&loop, wsk_test_loop_cfg()), 0);
    WSK_RUN(test_ping_pong);
    WSK_RUN(test_send_queue_counts_frames);
    WSK_RUN(test_send_queue_backpressure_drain);
    WSK_RUN(test_read_pausing);
    WSK_RUN(test_user_pause);
    WSK_RUN(test_overflow_drop);
    wsk_loop_free(loop);
    WSK_TEST_END();
}
