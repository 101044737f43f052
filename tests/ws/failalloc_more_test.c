/* More sessions under a failing allocator (failalloc.h; failalloc_test.c
 * has the first): each scenario runs once to count its allocations, then
 * once for every N with the N-th failing. Every run must end in time
 * without a leak, with on_close exactly once for each connection whose
 * on_open ran (and was_open saying so), once for each client whose
 * wsk_client_connect() returned 0, and with only the errors a failed
 * allocation or a peer that went away explains.
 *
 * - broadcast: a server with permessage-deflate, two deflate clients (two
 *   window sizes, so two broadcast compressors) and a plain one; small
 *   (copied) and large (shared) text and binary broadcasts, compressed and
 *   not; WSK_OVERFLOW_DROP and a raw peer that stops reading after its 101.
 * - dns: a client of ws://localhost:PORT/ (the resolver thread) with
 *   deflate and a subprotocol; one closed while still resolving, one closed
 *   after the resolver answered but before the loop took the answer.
 * - static: GET, pipelined GET + HEAD + 404 on one keep-alive connection.
 * - free_on_message, free_on_open, free_on_close: wsk_server_free() from
 *   inside those callbacks (on_open with frames behind the upgrade head).
 * - topics: topics named in on_upgrade and subscribed in on_open, two
 *   rooms, publishes small and large, compressed and not, an unsubscribe,
 *   and wsk_server_publish_async() from the loop's own thread.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "failalloc.h"

#define BIG_LEN (300u * 1024)
static uint8_t big[BIG_LEN];
static char text[32 * 1024]; /* compressible UTF-8 */

/* ---- bookkeeping common to the scenarios ---------------------------------- */

#define MAX_CLIENTS 4
#define MAX_RAW     2
#define RAW_CAP     (512u * 1024)

struct run;

struct client {
    struct run *r;
    struct wsk_conn *conn; /* NULL once on_close ran */
    int closes;
    bool is_open;
    int messages;
    size_t bytes;
    struct wsk_slice subprotocol;
    struct wsk_slice extensions;
    char proto[16], ext[128];
};

struct raw {
    struct run *r;
    int fd;
    struct wsk_io io;
    bool is_watching, has_eof, has_101;
    bool stop_after_101; /* then read no more: a receiver that does not read */
    void (*on_data)(struct raw *);
    int step;
    uint8_t *buf; /* RAW_CAP bytes, not from the wrapped allocator */
    size_t len;
};

struct run {
    struct wsk_loop *loop;
    struct wsk_server *srv;
    bool srv_gone; /* freed (maybe from a callback): do not touch srv */
    int srv_opens, srv_closes;
    int num_clients;
    struct client cl[MAX_CLIENTS];
    struct raw raw[MAX_RAW];
    int expected; /* broadcasts each live client waits for */
    enum failalloc_outcome out;
    const char *why; /* the first bad thing seen */
};

static uint8_t raw_bufs[MAX_RAW][RAW_CAP];
static int opened_mark, closed_mark;

static void bad(struct run *r, const char *why)
{
    if (r->out == FA_RAN) {
        r->out = FA_BAD;
        r->why = why;
    }
}

/* Errors a connection may end with here: a failed allocation (ours or the
 * peer's, which then drops the connection), the ends of a close handshake,
 * a peer that vanished. */
static bool error_ok(int e)
{
    return e == 0 || e == -ENOMEM || e == WSK_ECLOSED || e == WSK_EABNORMAL || e == -ETIMEDOUT ||
           e == -ECONNRESET || e == -EPIPE;
}

static void srv_open(struct wsk_conn *c, const struct wsk_open_event *ev, void *ud)
{
    (void)ev;
    struct run *r = ud;
    if (wsk_conn_get_data(c))
        bad(r, "server on_open twice");
    wsk_conn_set_data(c, &opened_mark);
    r->srv_opens++;
}

static void srv_close(struct wsk_conn *c, const struct wsk_close_event *ev, void *ud)
{
    struct run *r = ud;
    void *d = wsk_conn_get_data(c);
    if (d == &closed_mark) {
        bad(r, "server on_close twice");
        return;
    }
    if (ev->was_open != (d == &opened_mark))
        bad(r, "server on_close: was_open does not match on_open");
    if (d == &opened_mark)
        r->srv_closes++;
    if (!error_ok(ev->error)) {
        fprintf(stderr, "  server on_close error %s\n", wsk_err_name(ev->error));
        bad(r, "server on_close: unexpected error");
    }
    wsk_conn_set_data(c, &closed_mark);
}

/* Echoes; a send that fails loses the message, so the peer would wait for it
 * forever: end the connection, as an application would. */
static void srv_echo(struct wsk_conn *c, const struct wsk_message *m, void *ud)
{
    (void)ud;
    if (wsk_conn_send(c, m->opcode, m->data, m->len) < 0)
        wsk_conn_close(c, 1011, NULL);
}

static void cl_open(struct wsk_conn *c, const struct wsk_open_event *ev, void *ud)
{
    struct client *k = ud;
    if (k->is_open || wsk_conn_get_data(c))
        bad(k->r, "client on_open twice");
    wsk_conn_set_data(c, &opened_mark);
    k->is_open = true;
    snprintf(k->proto, sizeof k->proto, "%.*s", (int)ev->subprotocol.len, ev->subprotocol.ptr);
    snprintf(k->ext, sizeof k->ext, "%.*s", (int)ev->extensions.len, ev->extensions.ptr);
}

static void cl_message(struct wsk_conn *c, const struct wsk_message *m, void *ud)
{
    (void)c;
    struct client *k = ud;
    k->messages++;
    k->bytes += m->len;
}

static void cl_close(struct wsk_conn *c, const struct wsk_close_event *ev, void *ud)
{
    struct client *k = ud;
    void *d = wsk_conn_get_data(c);
    if (k->closes++ || d == &closed_mark)
        bad(k->r, "client on_close twice");
    if (ev->was_open != (d == &opened_mark) || ev->was_open != k->is_open)
        bad(k->r, "client on_close: was_open does not match on_open");
    if (!error_ok(ev->error) && ev->error != WSK_EDNS && ev->error != -ECONNREFUSED) {
        fprintf(stderr, "  client on_close error %s\n", wsk_err_name(ev->error));
        bad(k->r, "client on_close: unexpected error");
    }
    wsk_conn_set_data(c, &closed_mark);
    k->conn = NULL;
    k->is_open = false;
}

static void client_config(struct wsk_client_config *cc, struct client *k, bool deflate)
{
    wsk_client_config_init(cc);
    cc->handlers.on_open = cl_open;
    cc->handlers.on_message = cl_message;
    cc->handlers.on_close = cl_close;
    cc->user_data = k;
    cc->connect_timeout_ms = 1000;
    cc->limits.close_timeout_ms = 500;
    wsk_deflate_config_init(&cc->deflate);
    cc->deflate.enabled = deflate;
}

/* Starts client i; a connect that fails at once must say -ENOMEM. */
static void client_start(struct run *r, int i, const char *url, const struct wsk_client_config *cc)
{
    struct client *k = &r->cl[i];
    k->r = r;
    int rv = wsk_client_connect(&k->conn, r->loop, url, cc);
    if (rv < 0) {
        k->conn = NULL;
        k->closes = 1; /* nothing to wait for */
        if (rv != -ENOMEM)
            bad(r, "wsk_client_connect: not -ENOMEM");
    }
    if (i >= r->num_clients)
        r->num_clients = i + 1;
}

static void server_config(struct wsk_server_config *sc, struct run *r)
{
    wsk_server_config_init(sc);
    sc->handlers.on_open = srv_open;
    sc->handlers.on_message = srv_echo;
    sc->handlers.on_close = srv_close;
    sc->user_data = r;
    sc->limits.handshake_timeout_ms = 1000;
    sc->limits.close_timeout_ms = 500;
}

static bool server_start(struct run *r, const struct wsk_server_config *sc)
{
    int rv = wsk_server_new(&r->srv, r->loop, sc);
    if (rv == 0) {
        rv = wsk_server_listen(r->srv, "127.0.0.1", 0);
        if (rv < 0) {
            wsk_server_free(r->srv);
            r->srv = NULL;
        }
    }
    if (rv < 0) {
        r->srv = NULL;
        r->srv_gone = true;
        if (rv != -ENOMEM)
            bad(r, "wsk_server_new/listen: not -ENOMEM");
        return false;
    }
    return true;
}

/* ---- raw peers -------------------------------------------------------------- */

static void raw_cb(struct wsk_loop *loop, struct wsk_io *io, unsigned events)
{
    (void)events;
    struct raw *p = io->data;
    for (;;) {
        if (p->len == RAW_CAP) {
            p->len = 0; /* only the start of what we got matters */
        }
        ssize_t n = recv(io->fd, p->buf + p->len, RAW_CAP - p->len, MSG_DONTWAIT);
        if (n > 0) {
            p->len += (size_t)n;
            if (!p->has_101 && memmem(p->buf, p->len, "\r\n\r\n", 4)) {
                p->has_101 = !memcmp(p->buf, "HTTP/1.1 101 ", 13);
                if (p->has_101 && p->stop_after_101) {
                    wsk_io_stop(loop, io);
                    p->is_watching = false;
                    return;
                }
            }
            if (p->on_data)
                p->on_data(p);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        p->has_eof = true;
        wsk_io_stop(loop, io);
        p->is_watching = false;
        return;
    }
}

/* Connects raw peer i and sends n bytes of req. rcvbuf: SO_RCVBUF, 0 for the default. */
static bool raw_start(struct run *r, int i, const char *req, size_t n, int rcvbuf)
{
    struct raw *p = &r->raw[i];
    p->r = r;
    p->buf = raw_bufs[i];
    p->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (p->fd < 0)
        return false;
    if (rcvbuf)
        setsockopt(p->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(wsk_server_port(r->srv)),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(p->fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        send(p->fd, req, n, MSG_NOSIGNAL) != (ssize_t)n)
        return false;
    wsk_io_init(&p->io, p->fd, raw_cb, p);
    if (wsk_io_start(r->loop, &p->io, WSK_IO_READ) < 0)
        return false;
    p->is_watching = true;
    return true;
}

static void raw_end(struct run *r)
{
    for (int i = 0; i < MAX_RAW; i++) {
        struct raw *p = &r->raw[i];
        if (p->is_watching)
            wsk_io_stop(r->loop, &p->io);
        if (p->fd >= 0)
            close(p->fd);
        p->fd = -1;
    }
}

static const char upgrade[] =
    "GET /raw HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n";

/* ---- one run ---------------------------------------------------------------- */

static bool run_begin(struct run *r)
{
    memset(r, 0, sizeof *r);
    for (int i = 0; i < MAX_RAW; i++)
        r->raw[i].fd = -1;
    is_armed = true;
    int rv = wsk_loop_new(&r->loop, wsk_test_loop_cfg());
    if (rv < 0) {
        r->loop = NULL;
        if (rv != -ENOMEM)
            bad(r, "wsk_loop_new: not -ENOMEM");
        return false;
    }
    return true;
}

static bool clients_closed(void *arg)
{
    struct run *r = arg;
    for (int i = 0; i < r->num_clients; i++)
        if (!r->cl[i].closes)
            return false;
    return true;
}

static bool once(void *arg)
{
    bool *has_run = arg;
    bool done = *has_run;
    *has_run = true;
    return done;
}

/* Frees the server (unless a callback did), waits for every client's
 * on_close, frees the loop and checks the counts. */
static enum failalloc_outcome run_end(struct run *r)
{
    if (!r->loop) {
        is_armed = false;
        return r->out;
    }
    if (!r->srv_gone) {
        wsk_server_free(r->srv);
        r->srv_gone = true;
    }
    raw_end(r);
    /* The server is gone: every client sees that and ends. */
    if (!failalloc_run_until(r->loop, clients_closed, r, 2000)) {
        if (r->out != FA_BAD)
            r->out = FA_HUNG;
        r->why = "clients did not end after the server was freed";
        for (int i = 0; i < r->num_clients; i++)
            if (r->cl[i].conn)
                wsk_conn_close(r->cl[i].conn, 1000, NULL);
        failalloc_run_until(r->loop, clients_closed, r, 1000);
    }
    if (r->srv_opens != r->srv_closes)
        bad(r, "server: on_open and on_close counts differ");
    for (int i = 0; i < r->num_clients; i++)
        if (r->cl[i].closes != 1)
            bad(r, "a client's on_close did not run once");
    /* A connection's memory goes at the end of the iteration of its
     * on_close, which may have run outside the loop (a client closed while
     * resolving): one more slice. */
    failalloc_run_until(r->loop, once, &(bool){false}, 100);
    int rv = wsk_loop_free(r->loop);
    if (rv < 0)
        bad(r, "wsk_loop_free refused: something still lives on the loop");
    is_armed = false;
    if (r->out != FA_RAN && r->why)
        fprintf(stderr, "  %s (server opens %d closes %d)\n", r->why, r->srv_opens, r->srv_closes);
    return r->out;
}

static void hung(struct run *r, const char *why)
{
    if (r->out == FA_RAN) {
        r->out = FA_HUNG;
        r->why = why;
    }
}

static char url_buf[96];

static const char *url(struct run *r, const char *host, const char *path)
{
    snprintf(url_buf, sizeof url_buf, "ws://%s:%u%s", host, wsk_server_port(r->srv), path);
    return url_buf;
}

/* ---- scenario: broadcasts ----------------------------------------------------- */

static bool broadcast_ready(void *arg)
{
    struct run *r = arg;
    for (int i = 0; i < r->num_clients; i++)
        if (!r->cl[i].closes && !r->cl[i].is_open)
            return false;
    struct raw *p = &r->raw[0];
    return p->fd < 0 || p->has_101 || p->has_eof;
}

static bool broadcast_delivered(void *arg)
{
    struct run *r = arg;
    for (int i = 0; i < r->num_clients; i++)
        if (!r->cl[i].closes && r->cl[i].messages < r->expected)
            return false;
    return true;
}

struct bcast {
    enum wsk_opcode op;
    const void *data;
    size_t len;
};

static int bcast_counts[8]; /* receivers of each, in the count run */
#define HUGE_LEN (1u << 20)
static uint8_t huge[HUGE_LEN];
static bool has_dropped; /* a broadcast was dropped for the raw peer */

static enum failalloc_outcome scenario_broadcast(void)
{
    struct run r;
    if (!run_begin(&r))
        return run_end(&r);
    struct wsk_server_config sc;
    server_config(&sc, &r);
    wsk_deflate_config_init(&sc.deflate);
    sc.deflate.enabled = true;
    sc.limits.overflow = WSK_OVERFLOW_DROP;
    sc.limits.max_send_queue = 128 * 1024;
    if (!server_start(&r, &sc))
        return run_end(&r);

    struct wsk_client_config cc;
    client_config(&cc, &r.cl[0], true);
    client_start(&r, 0, url(&r, "127.0.0.1", "/a"), &cc);
    client_config(&cc, &r.cl[1], true);
    cc.deflate.server_max_window_bits = 10; /* a second broadcast compressor */
    client_start(&r, 1, url(&r, "127.0.0.1", "/b"), &cc);
    client_config(&cc, &r.cl[2], false);
    client_start(&r, 2, url(&r, "127.0.0.1", "/c"), &cc);
    /* A receiver that takes its 101 and reads no more. */
    r.raw[0].stop_after_101 = true;
    if (!raw_start(&r, 0, upgrade, sizeof upgrade - 1, 4096))
        raw_end(&r);
    if (!failalloc_run_until(r.loop, broadcast_ready, &r, 2000)) {
        hung(&r, "the clients did not open");
        return run_end(&r);
    }

    const struct bcast list[] = {
        {WSK_OP_TEXT, text, 200},     /* small, compressed, copied */
        {WSK_OP_BINARY, big, 40},     /* small, too short to compress */
        {WSK_OP_TEXT, text, 20000},   /* large; compressed small enough to be copied */
        {WSK_OP_BINARY, big, 100000}, /* large, compressed and shared */
        {WSK_OP_BINARY, big, BIG_LEN},    {WSK_OP_BINARY, big + 1, 200000},
        {WSK_OP_TEXT, text, sizeof text},
    };
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++) {
        int rv = wsk_server_broadcast(r.srv, list[i].op, list[i].data, list[i].len);
        if (rv < 0 && rv != -ENOMEM)
            bad(&r, "wsk_server_broadcast: not -ENOMEM");
        if (!fail_at)
            bcast_counts[i] = rv;
        if (rv < 0)
            continue;
        r.expected++;
        if (!failalloc_run_until(r.loop, broadcast_delivered, &r, 2000)) {
            hung(&r, "a broadcast did not arrive");
            return run_end(&r);
        }
    }
    if (!fail_at) {
        /* The clean run is the reference: every client got everything. */
        for (int i = 0; i < 3; i++)
            if (r.cl[i].messages != 7 || !r.cl[i].is_open)
                bad(&r, "a client missed a broadcast");
        if (strncmp(r.cl[0].ext, "permessage-deflate", 18) ||
            strncmp(r.cl[1].ext, "permessage-deflate", 18) || r.cl[2].ext[0])
            bad(&r, "deflate was not negotiated as configured");
    }
    for (int i = 0; i < r.num_clients; i++)
        if (r.cl[i].conn)
            wsk_conn_close(r.cl[i].conn, 1000, NULL);
    if (!failalloc_run_until(r.loop, clients_closed, &r, 2000))
        hung(&r, "the clients' close handshakes did not end");
    /* Only the raw peer is left, and it does not read. The socket takes a
     * few MB (about 3 under gVisor), the queue 128 KiB, then broadcasts are
     * dropped for it. Without running the loop in between, so the flush
     * before the overflow check is what writes. */
    for (int i = 0; i < 8 && r.raw[0].has_101; i++) {
        int rv = wsk_server_broadcast(r.srv, WSK_OP_BINARY, huge, HUGE_LEN);
        if (rv < 0 && rv != -ENOMEM)
            bad(&r, "wsk_server_broadcast: not -ENOMEM");
        if (rv == 0) {
            has_dropped = true;
            break;
        }
    }
    return run_end(&r);
}

/* ---- scenario: a client resolving a name ------------------------------------ */

static void dns_open(struct wsk_conn *c, const struct wsk_open_event *ev, void *ud)
{
    cl_open(c, ev, ud);
    if (wsk_conn_send(c, WSK_OP_TEXT, text, 300) < 0 ||
        wsk_conn_send(c, WSK_OP_BINARY, big, 10000) < 0)
        wsk_conn_close(c, 1011, NULL);
}

static void dns_message(struct wsk_conn *c, const struct wsk_message *m, void *ud)
{
    struct client *k = ud;
    cl_message(c, m, ud);
    if (k->messages == 2)
        wsk_conn_close(c, 1000, "done");
}

static enum failalloc_outcome scenario_dns(void)
{
    struct run r;
    if (!run_begin(&r))
        return run_end(&r);
    struct wsk_server_config sc;
    server_config(&sc, &r);
    wsk_deflate_config_init(&sc.deflate);
    sc.deflate.enabled = true;
    const char *protos[] = {"chat"};
    sc.subprotocols = protos;
    sc.num_subprotocols = 1;
    if (!server_start(&r, &sc))
        return run_end(&r);

    struct wsk_client_config cc;
    client_config(&cc, &r.cl[0], true);
    cc.handlers.on_open = dns_open;
    cc.handlers.on_message = dns_message;
    cc.subprotocols = protos;
    cc.num_subprotocols = 1;
    client_start(&r, 0, url(&r, "localhost", "/dns?x=1"), &cc);
    /* Closed while its name is still being resolved. */
    client_config(&cc, &r.cl[1], true);
    client_start(&r, 1, url(&r, "localhost", "/"), &cc);
    if (r.cl[1].conn)
        wsk_conn_close(r.cl[1].conn, 1000, NULL);
    /* Closed once the resolver has answered (/etc/hosts: well within 30
     * ms), before the loop took the answer: dns_done() finds it orphaned. */
    client_config(&cc, &r.cl[2], true);
    client_start(&r, 2, url(&r, "localhost", "/"), &cc);
    usleep(30000);
    if (r.cl[2].conn)
        wsk_conn_close(r.cl[2].conn, 1000, NULL);
    if (!failalloc_run_until(r.loop, clients_closed, &r, 3000))
        hung(&r, "the clients did not end");
    if (!fail_at && (r.cl[0].messages != 2 || strcmp(r.cl[0].proto, "chat") ||
                     strncmp(r.cl[0].ext, "permessage-deflate", 18) || r.srv_opens != 1))
        bad(&r, "the resolved client's session went wrong");
    return run_end(&r);
}

/* ---- scenario: static files over keep-alive ----------------------------------- */

static char static_dir[64];
#define SMALL_FILE_LEN 100
#define BIG_FILE_LEN   (200u * 1024)

/* A whole response at buf (len bytes): its length, 0 when incomplete.
 * HEAD responses have no body whatever their Content-Length says. */
static size_t response_len(const uint8_t *buf, size_t len, bool is_head, int *status)
{
    const uint8_t *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end || len < 12)
        return 0;
    size_t head = (size_t)(end - buf) + 4;
    *status = atoi((const char *)buf + 9);
    const char *cl = memmem(buf, head, "Content-Length: ", 16);
    size_t body = cl && !is_head ? strtoul(cl + 16, NULL, 10) : 0;
    return len >= head + body ? head + body : 0;
}

static const char pipelined[] = "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n"
                                "HEAD /small.txt HTTP/1.1\r\nHost: x\r\n\r\n"
                                "GET /missing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

/* After the first whole response, the rest goes in one write. */
static void static_data(struct raw *p)
{
    int status;
    if (p->step == 0 && response_len(p->buf, p->len, false, &status)) {
        p->step = 1;
        if (send(p->fd, pipelined, sizeof pipelined - 1, MSG_NOSIGNAL) < 0)
            p->step = 2;
    }
}

static bool static_done(void *arg)
{
    struct run *r = arg;
    return r->raw[0].fd < 0 || r->raw[0].has_eof;
}

static bool static_check(const struct raw *p)
{
    static const int want_status[] = {200, 200, 200, 404};
    static const size_t want_body[] = {SMALL_FILE_LEN, BIG_FILE_LEN, 0, 0};
    size_t off = 0;
    for (int i = 0; i < 4; i++) {
        int status = 0;
        size_t n = response_len(p->buf + off, p->len - off, i == 2, &status);
        if (!n || status != want_status[i])
            return false;
        const uint8_t *end = memmem(p->buf + off, n, "\r\n\r\n", 4);
        if (want_body[i] && n - (size_t)(end + 4 - (p->buf + off)) != want_body[i])
            return false;
        off += n;
    }
    return off == p->len;
}

static enum failalloc_outcome scenario_static(void)
{
    struct run r;
    if (!run_begin(&r))
        return run_end(&r);
    struct wsk_server_config sc;
    server_config(&sc, &r);
    sc.static_dir = static_dir;
    if (!server_start(&r, &sc))
        return run_end(&r);
    r.raw[0].on_data = static_data;
    static const char first[] = "GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n";
    if (raw_start(&r, 0, first, sizeof first - 1, 0)) {
        if (!failalloc_run_until(r.loop, static_done, &r, 3000))
            hung(&r, "the keep-alive exchange did not end");
        else if (!fail_at && (r.raw[0].step != 1 || !static_check(&r.raw[0])))
            bad(&r, "the responses are not the expected four");
    } else if (!fail_at) {
        bad(&r, "cannot connect the raw peer");
    }
    return run_end(&r);
}

/* ---- scenario: the server freed from a callback ---------------------------------- */

/* Which callback frees the server: on_message for client 0's "free"; on_open
 * of a raw peer that sent frames behind its upgrade head (they are fed after
 * on_open returns); on_close of client 2's connection, which it closes. */
enum free_from { FREE_ON_MESSAGE, FREE_ON_OPEN, FREE_ON_CLOSE };
static enum free_from free_from;

static void free_server(struct run *r)
{
    /* A broadcast queued first, then everything ends at once. */
    wsk_server_broadcast(r->srv, WSK_OP_TEXT, text, 5000);
    wsk_server_free(r->srv);
    r->srv_gone = true;
}

static void free_on_message(struct wsk_conn *c, const struct wsk_message *m, void *ud)
{
    struct run *r = ud;
    if (free_from == FREE_ON_MESSAGE && m->len == 4 && !memcmp(m->data, "free", 4)) {
        free_server(r);
        return;
    }
    srv_echo(c, m, ud);
}

static void free_on_open(struct wsk_conn *c, const struct wsk_open_event *ev, void *ud)
{
    struct run *r = ud;
    srv_open(c, ev, ud);
    if (free_from == FREE_ON_OPEN && ev->path.len == 5 && !memcmp(ev->path.ptr, "/free", 5))
        free_server(r);
}

static void free_on_close(struct wsk_conn *c, const struct wsk_close_event *ev, void *ud)
{
    struct run *r = ud;
    bool is_trigger = free_from == FREE_ON_CLOSE && wsk_conn_get_data(c) == &opened_mark &&
                      ev->code == 4000 && !r->srv_gone;
    srv_close(c, ev, ud);
    if (is_trigger)
        free_server(r);
}

static void free_client_open(struct wsk_conn *c, const struct wsk_open_event *ev, void *ud)
{
    struct client *k = ud;
    cl_open(c, ev, ud);
    if (k == &k->r->cl[1] && wsk_conn_send(c, WSK_OP_TEXT, text, 1000) < 0)
        wsk_conn_close(c, 1011, NULL);
}

static bool free_ready(void *arg)
{
    struct run *r = arg;
    return broadcast_ready(arg) && (r->cl[1].closes || r->cl[1].messages);
}

/* Everything ended after the free; or what was to trigger it ended first (a
 * failed allocation), and run_end() frees. */
static bool free_done(void *arg)
{
    struct run *r = arg;
    if (!r->srv_gone) {
        switch (free_from) {
        case FREE_ON_MESSAGE:
            return r->cl[0].closes;
        case FREE_ON_OPEN:
            return r->raw[1].fd < 0 || r->raw[1].has_eof;
        case FREE_ON_CLOSE:
            return r->cl[2].closes;
        }
    }
    for (int i = 0; i < MAX_RAW; i++)
        if (r->raw[i].fd >= 0 && !r->raw[i].has_eof)
            return false;
    return clients_closed(arg);
}

static enum failalloc_outcome scenario_free_in_callback(void)
{
    struct run r;
    if (!run_begin(&r))
        return run_end(&r);
    struct wsk_server_config sc;
    server_config(&sc, &r);
    sc.handlers.on_open = free_on_open;
    sc.handlers.on_message = free_on_message;
    sc.handlers.on_close = free_on_close;
    wsk_deflate_config_init(&sc.deflate);
    sc.deflate.enabled = true;
    if (!server_start(&r, &sc))
        return run_end(&r);
    struct wsk_client_config cc;
    for (int i = 0; i < 3; i++) {
        client_config(&cc, &r.cl[i], i != 2);
        cc.handlers.on_open = free_client_open;
        client_start(&r, i, url(&r, "127.0.0.1", "/"), &cc);
    }
    if (!raw_start(&r, 0, upgrade, sizeof upgrade - 1, 0))
        raw_end(&r);
    /* Everyone open and a message echoed (a compressor and an inflater in
     * use), then the trigger. */
    if (!failalloc_run_until(r.loop, free_ready, &r, 2000)) {
        hung(&r, "the clients did not open");
        return run_end(&r);
    }
    switch (free_from) {
    case FREE_ON_MESSAGE:
        if (r.cl[0].conn && wsk_conn_send(r.cl[0].conn, WSK_OP_TEXT, "free", 4) < 0)
            wsk_conn_close(r.cl[0].conn, 1011, NULL);
        break;
    case FREE_ON_OPEN: {
        /* The upgrade, a text frame and a close in one write. */
        static const uint8_t key[4] = {1, 2, 3, 4};
        char req[512];
        size_t n = (size_t)snprintf(req, sizeof req, "GET /free%s", upgrade + 8);
        n += (size_t)wsk_frame_encode((uint8_t *)req + n, sizeof req - n,
                                      WSK_FRAME_FIN | WSK_OP_TEXT, (const uint8_t *)"hi", 2, key);
        n += (size_t)wsk_frame_encode((uint8_t *)req + n, sizeof req - n,
                                      WSK_FRAME_FIN | WSK_OP_CLOSE, (const uint8_t *)"\x03\xe8", 2,
                                      key);
        if (!raw_start(&r, 1, req, n, 0))
            raw_end(&r);
        break;
    }
    case FREE_ON_CLOSE:
        if (r.cl[2].conn)
            wsk_conn_close(r.cl[2].conn, 4000, NULL);
        break;
    }
    if (!failalloc_run_until(r.loop, free_done, &r, 2000))
        hung(&r, r.srv_gone ? "the server freed in a callback left connections behind"
                            : "the trigger neither arrived nor ended");
    if (!fail_at && !r.srv_gone)
        bad(&r, "the server was not freed from the callback");
    return run_end(&r);
}

/* ---- scenario: topics ----------------------------------------------------------- */

static int topic_want[MAX_CLIENTS]; /* messages each client waits for */
static int topic_counts[6];         /* receivers of each publish, in the count run */

/* The room is the path; a failed allocation ends the connection, as an
 * application would rather than leave it out of its room. */
static int topics_upgrade(struct wsk_conn *c, const struct wsk_upgrade_event *ev, void *ud)
{
    (void)ud;
    char room[64];
    int n = snprintf(room, sizeof room, "room:%.*s", (int)ev->path.len, ev->path.ptr);
    if (wsk_conn_subscribe(c, room, (size_t)n) < 0 || wsk_conn_subscribe(c, "all", 3) < 0)
        wsk_conn_close(c, 1011, NULL);
    return 0;
}

static void topics_open(struct wsk_conn *c, const struct wsk_open_event *ev, void *ud)
{
    srv_open(c, ev, ud);
    if (wsk_conn_subscribe(c, "extra", 5) < 0)
        wsk_conn_close(c, 1011, NULL);
}

static bool topics_delivered(void *arg)
{
    struct run *r = arg;
    for (int i = 0; i < r->num_clients; i++)
        if (!r->cl[i].closes && r->cl[i].messages < topic_want[i])
            return false;
    return true;
}

static enum failalloc_outcome scenario_topics(void)
{
    struct run r;
    if (!run_begin(&r))
        return run_end(&r);
    struct wsk_server_config sc;
    server_config(&sc, &r);
    sc.handlers.on_open = topics_open;
    sc.on_upgrade = topics_upgrade;
    wsk_deflate_config_init(&sc.deflate);
    sc.deflate.enabled = true;
    if (!server_start(&r, &sc))
        return run_end(&r);
    struct wsk_client_config cc;
    const char *paths[] = {"/a", "/a", "/b"};
    for (int i = 0; i < 3; i++) {
        client_config(&cc, &r.cl[i], i == 0);
        client_start(&r, i, url(&r, "127.0.0.1", paths[i]), &cc);
        topic_want[i] = 0;
    }
    if (!failalloc_run_until(r.loop, broadcast_ready, &r, 2000)) {
        hung(&r, "the clients did not open");
        return run_end(&r);
    }
    const struct {
        const char *topic;
        bool to[3];
        enum wsk_opcode op;
        const void *data;
        size_t len;
    } list[] = {
        {"all", {1, 1, 1}, WSK_OP_TEXT, text, 200},
        {"room:/a", {1, 1, 0}, WSK_OP_BINARY, big, 100000},
        {"room:/b", {0, 0, 1}, WSK_OP_TEXT, text, 20000},
        {"extra", {1, 1, 1}, WSK_OP_BINARY, big, 40},
        {"nobody", {0, 0, 0}, WSK_OP_TEXT, text, 10},
    };
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++) {
        int rv = wsk_server_publish(r.srv, list[i].topic, strlen(list[i].topic), list[i].op,
                                    list[i].data, list[i].len);
        if (rv < 0 && rv != -ENOMEM)
            bad(&r, "wsk_server_publish: not -ENOMEM");
        if (!fail_at)
            topic_counts[i] = rv;
        if (rv < 0)
            continue;
        for (int k = 0; k < 3; k++)
            topic_want[k] += list[i].to[k];
        if (!failalloc_run_until(r.loop, topics_delivered, &r, 2000)) {
            hung(&r, "a publish did not arrive");
            return run_end(&r);
        }
    }
    /* A hand-over through the inbox, from the loop's own thread. */
    int rv = wsk_server_publish_async(r.srv, "all", 3, WSK_OP_TEXT, "async", 5);
    if (rv < 0 && rv != -ENOMEM)
        bad(&r, "wsk_server_publish_async: not -ENOMEM");
    if (rv == 0) {
        /* Published on the next iteration, unless that runs out of memory
         * (counted in async_failed). */
        struct wsk_server_stats st;
        failalloc_run_until(r.loop, once, &(bool){false}, 100);
        wsk_server_get_stats(r.srv, &st);
        for (int k = 0; k < 3; k++)
            topic_want[k] += !st.async_failed;
        if (!failalloc_run_until(r.loop, topics_delivered, &r, 2000)) {
            hung(&r, "the hand-over did not arrive");
            return run_end(&r);
        }
    }
    if (!fail_at)
        for (int i = 0; i < 3; i++)
            if (r.cl[i].messages != topic_want[i] || topic_want[i] != 4)
                bad(&r, "a client missed a publish");
    for (int i = 0; i < r.num_clients; i++)
        if (r.cl[i].conn)
            wsk_conn_close(r.cl[i].conn, 1000, NULL);
    if (!failalloc_run_until(r.loop, clients_closed, &r, 2000))
        hung(&r, "the clients' close handshakes did not end");
    struct wsk_server_stats st;
    wsk_server_get_stats(r.srv, &st);
    if (st.subscriptions || st.topics)
        bad(&r, "subscriptions left after every connection ended");
    return run_end(&r);
}

/* ---- main --------------------------------------------------------------------- */

static bool write_file(const char *name, const uint8_t *data, size_t len)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", static_dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return false;
    bool ok = write(fd, data, len) == (ssize_t)len;
    close(fd);
    return ok;
}

static void test_broadcast(void)
{
    has_dropped = false;
    failalloc_every("broadcast", scenario_broadcast);
    printf("broadcast receivers in the clean run:");
    for (int i = 0; i < 7; i++)
        printf(" %d", bcast_counts[i]);
    printf("; then 1 MiB ones %s for the raw peer\n", has_dropped ? "dropped" : "never dropped");
    CHECK_EQ_INT(bcast_counts[0], 4);
    CHECK(has_dropped);
}

static void test_topics(void)
{
    failalloc_every("topics", scenario_topics);
    printf("publish receivers in the clean run: %d %d %d %d %d\n", topic_counts[0], topic_counts[1],
           topic_counts[2], topic_counts[3], topic_counts[4]);
    CHECK_EQ_INT(topic_counts[0], 3);
    CHECK_EQ_INT(topic_counts[1], 2);
    CHECK_EQ_INT(topic_counts[4], 0);
}

static void test_dns(void)
{
    failalloc_every("dns", scenario_dns);
}

static void test_static(void)
{
    failalloc_every("static", scenario_static);
}

static void test_free_in_callback(void)
{
    free_from = FREE_ON_MESSAGE;
    failalloc_every("free_on_message", scenario_free_in_callback);
    free_from = FREE_ON_OPEN;
    failalloc_every("free_on_open", scenario_free_in_callback);
    free_from = FREE_ON_CLOSE;
    failalloc_every("free_on_close", scenario_free_in_callback);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (size_t i = 0; i < BIG_LEN; i++)
        big[i] = (uint8_t)(i % 251 < 120 ? 'a' + i % 7 : i * 13);
    for (size_t i = 0; i < sizeof text; i++)
        text[i] = "hello, compressed world "[i % 24];
    snprintf(static_dir, sizeof static_dir, "/tmp/wsk_failalloc_XXXXXX");
    if (!mkdtemp(static_dir) || !write_file("small.txt", big, SMALL_FILE_LEN) ||
        !write_file("big.bin", big, BIG_FILE_LEN)) {
        perror("static dir");
        return 1;
    }
    WSK_RUN(test_broadcast);
    WSK_RUN(test_topics);
    WSK_RUN(test_dns);
    WSK_RUN(test_static);
    WSK_RUN(test_free_in_callback);
    char path[128];
    snprintf(path, sizeof path, "%s/small.txt", static_dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/big.bin", static_dir);
    unlink(path);
    rmdir(static_dir);
    WSK_TEST_END();
}
