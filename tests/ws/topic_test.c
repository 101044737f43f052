/* Topics (wsk/topic.h) over real sockets on 127.0.0.1: subscribe,
 * unsubscribe and publish counts; binary topic names; a connection's end
 * removing its subscriptions; callbacks that unsubscribe, close, publish or
 * free the server in the middle of a publish; a slow subscriber closed or
 * skipped by the overflow policy while the others get everything;
 * permessage-deflate receivers; many topics; and the memory a topic and a
 * subscription cost (printed, and bounded).
 *
 * A wsk server and wsk clients share one loop. Slow or vanishing
 * subscribers are raw sockets that send the upgrade request and then never
 * read, or reset the connection.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wsk.h"
#include "wsk_test.h"

#include "ws/server_internal.h"
#include "ws/ws_loop.h"

#define WAIT_MS 20000
#define MAXC    16

/* ---- a server that records its connections ------------------------------- */

struct tsrv {
    struct wsk_server *srv;
    struct wsk_conn *conns[MAXC]; /* by open order; NULL once closed */
    int opened, closed;
    void (*close_hook)(struct wsk_conn *c);
    struct wsk_conn *hooked; /* close_hook runs for this one */
};

static struct tsrv S;

static void srv_open(struct wsk_conn *c, const struct wsk_open_event *ev, void *ud)
{
    (void)ev;
    (void)ud;
    if (S.opened < MAXC)
        S.conns[S.opened] = c;
    S.opened++;
}

static void srv_close(struct wsk_conn *c, const struct wsk_close_event *ev, void *ud)
{
    (void)ev;
    (void)ud;
    S.closed++;
    /* Its subscriptions are gone before on_close, and it takes no new ones. */
    CHECK_EQ_INT(wsk_conn_unsubscribe_all(c), 0);
    CHECK_EQ_INT(wsk_conn_subscribe(c, "t", 1), WSK_ESTATE);
    for (int i = 0; i < MAXC; i++)
        if (S.conns[i] == c)
            S.conns[i] = NULL;
    if (S.close_hook && c == S.hooked)
        S.close_hook(c);
}

static void srv_start(struct wsk_server_config *cfg)
{
    struct wsk_server_config local;
    if (!cfg) {
        wsk_server_config_init(&local);
        cfg = &local;
    }
    memset(&S, 0, sizeof S);
    cfg->handlers.on_open = srv_open;
    cfg->handlers.on_close = srv_close;
    CHECK_EQ_INT(wsk_server_new(&S.srv, loop, cfg), 0);
    CHECK(wsk_server_listen(S.srv, "127.0.0.1", 0) > 0);
}

static void srv_stop(void)
{
    wsk_server_free(S.srv);
    S.srv = NULL;
    run_for(20); /* the memory of the connections goes */
}

/* ---- clients that record what they get ----------------------------------- */

struct tcl {
    struct wsk_conn *conn;
    bool opened, closed;
    int messages;
    size_t bytes;
    enum wsk_opcode last_op;
    uint8_t last[64];
    size_t last_len;
    char log[512];   /* short messages, each followed by '|' */
    uint8_t *expect; /* when set, every message must be these expect_len bytes */
    size_t expect_len;
    int bad;
    char extensions[128];
};

static void cl_open(struct wsk_conn *c, const struct wsk_open_event *ev, void *ud)
{
    (void)c;
    struct tcl *t = ud;
    t->opened = true;
    snprintf(t->extensions, sizeof t->extensions, "%.*s", (int)ev->extensions.len,
             ev->extensions.ptr);
}

static void cl_message(struct wsk_conn *c, const struct wsk_message *m, void *ud)
{
    (void)c;
    struct tcl *t = ud;
    t->messages++;
    t->bytes += m->len;
    t->last_op = m->opcode;
    t->last_len = m->len < sizeof t->last ? m->len : sizeof t->last;
    memcpy(t->last, m->data, t->last_len);
    if (t->expect && (m->len != t->expect_len || memcmp(m->data, t->expect, m->len)))
        t->bad++;
    size_t used = strlen(t->log);
    if (m->len < 32 && used + m->len + 2 < sizeof t->log) {
        memcpy(t->log + used, m->data, m->len);
        t->log[used + m->len] = '|';
        t->log[used + m->len + 1] = '\0';
    }
}

static void cl_close(struct wsk_conn *c, const struct wsk_close_event *ev, void *ud)
{
    (void)c;
    (void)ev;
    struct tcl *t = ud;
    t->closed = true;
}

/* Connects t and returns the server's side of its connection. */
static struct wsk_conn *cl_connect(struct tcl *t, struct wsk_client_config *cc)
{
    struct wsk_client_config local;
    if (!cc) {
        wsk_client_config_init(&local);
        cc = &local;
    }
    memset(t, 0, sizeof *t);
    cc->handlers.on_open = cl_open;
    cc->handlers.on_message = cl_message;
    cc->handlers.on_close = cl_close;
    cc->user_data = t;
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%u/", wsk_server_port(S.srv));
    int before = S.opened;
    CHECK_EQ_INT(wsk_client_connect(&t->conn, loop, url, cc), 0);
    RUN_UNTIL(t->opened && S.opened == before + 1, WAIT_MS);
    return before < MAXC ? S.conns[before] : NULL;
}

static void cl_close_all(struct tcl *cl, int n)
{
    for (int i = 0; i < n; i++)
        if (!cl[i].closed)
            wsk_conn_close(cl[i].conn, 1000, NULL);
    for (int i = 0; i < n; i++)
        RUN_UNTIL(cl[i].closed, WAIT_MS);
}

/* ---- raw peers: an upgrade, then nothing ------------------------------------ */

static const char upgrade[] =
    "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n";

/* Returns the socket, and the server's side in *conn. A small receive
 * buffer makes the kernel push back soon. */
static int raw_connect(int rcvbuf, struct wsk_conn **conn)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    if (rcvbuf)
        CHECK_EQ_INT(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf), 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(wsk_server_port(S.srv)),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ_INT(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_EQ_INT(send(fd, upgrade, sizeof upgrade - 1, MSG_NOSIGNAL), (ssize_t)sizeof upgrade - 1);
    int before = S.opened;
    RUN_UNTIL(S.opened == before + 1, WAIT_MS);
    *conn = before < MAXC ? S.conns[before] : NULL;
    return fd;
}

/* Closes with a reset: the server's next write to it fails at once. */
static void raw_reset(int fd)
{
    struct linger l = {1, 0};
    CHECK_EQ_INT(setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l), 0);
    close(fd);
}

static struct wsk_server_stats stats(void)
{
    struct wsk_server_stats st;
    wsk_server_get_stats(S.srv, &st);
    return st;
}

/* ---- SipHash ------------------------------------------------------------------ */

/* The reference implementation's vectors: key 00..0f, message 00..len-1. */
static void test_siphash(void)
{
    uint8_t kb[16], msg[64];
    for (int i = 0; i < 16; i++)
        kb[i] = (uint8_t)i;
    for (int i = 0; i < 64; i++)
        msg[i] = (uint8_t)i;
    uint64_t key[2] = {0, 0};
    for (int i = 7; i >= 0; i--) {
        key[0] = key[0] << 8 | kb[i];
        key[1] = key[1] << 8 | kb[8 + i];
    }
    CHECK(wsk__siphash(key, msg, 0) == 0x726fdb47dd0e0e31ull);
    CHECK(wsk__siphash(key, msg, 1) == 0x74f839c593dc67fdull);
    CHECK(wsk__siphash(key, msg, 15) == 0xa129ca6149be45e5ull);
}

/* ---- counts ------------------------------------------------------------------- */

static void test_counts(void)
{
    srv_start(NULL);
    struct tcl cl[3];
    struct wsk_conn *a = cl_connect(&cl[0], NULL);
    struct wsk_conn *b = cl_connect(&cl[1], NULL);
    struct wsk_conn *c = cl_connect(&cl[2], NULL);
    CHECK(a && b && c);
    if (!a || !b || !c)
        goto out;

    CHECK_EQ_INT(wsk_conn_subscribe(a, "x", 1), 1);
    CHECK_EQ_INT(wsk_conn_subscribe(a, "x", 1), 0);
    CHECK_EQ_INT(wsk_conn_subscribe(b, "x", 1), 1);
    CHECK_EQ_INT(wsk_conn_subscribe(b, "y", 1), 1);
    CHECK_EQ_INT(wsk_conn_subscribe(c, "y", 1), 1);
    CHECK_EQ_INT(wsk_server_subscribers(S.srv, "x", 1), 2);
    CHECK_EQ_INT(wsk_server_subscribers(S.srv, "y", 1), 2);
    CHECK_EQ_INT(wsk_server_subscribers(S.srv, "z", 1), 0);
    struct wsk_server_stats st = stats();
    CHECK_EQ_INT(st.topics, 2);
    CHECK_EQ_INT(st.subscriptions, 4);

    CHECK_EQ_INT(wsk_server_publish(S.srv, "x", 1, WSK_OP_TEXT, "m1", 2), 2);
    CHECK_EQ_INT(wsk_server_publish(S.srv, "y", 1, WSK_OP_BINARY, "m2", 2), 2);
    CHECK_EQ_INT(wsk_server_publish(S.srv, "z", 1, WSK_OP_TEXT, "m3", 2), 0);
    RUN_UNTIL(cl[0].messages == 1 && cl[1].messages == 2 && cl[2].messages == 1, WAIT_MS);
    CHECK_STR(cl[0].log, "m1|");
    /* The traffic counters: 3 connections, 4 deliveries, socket bytes both
     * ways; a refused plain request counted by its status. */
    st = stats();
    CHECK_EQ_INT(st.connections_total, 3);
    CHECK_EQ_INT(st.connections, 3);
    CHECK_EQ_INT(st.websockets_open, 3);
    CHECK_EQ_INT(st.websockets_total, 3);
    CHECK_EQ_INT(st.messages_out, 4);
    CHECK_EQ_INT(st.messages_in, 0);
    CHECK(st.bytes_in >= 3 * 100 && st.bytes_out >= 3 * 129 + 4 * 4);
    CHECK_EQ_INT(wsk_stats_refused_code(3), 404);
    CHECK_EQ_INT(wsk_stats_refused_code(WSK_STATS_REFUSED - 1), 0);
    CHECK_EQ_INT(wsk_stats_refused_code(WSK_STATS_REFUSED), 0);
    for (size_t i = 0; i < WSK_STATS_REFUSED; i++)
        CHECK_EQ_INT(st.refused[i], 0);
    CHECK_STR(cl[1].log, "m1|m2|");
    CHECK_STR(cl[2].log, "m2|");
    CHECK_EQ_INT(cl[2].last_op, WSK_OP_BINARY);

    CHECK_EQ_INT(wsk_conn_unsubscribe(a, "x", 1), 1);
    CHECK_EQ_INT(wsk_conn_unsubscribe(a, "x", 1), 0);
    CHECK_EQ_INT(wsk_conn_unsubscribe(a, "nope", 4), 0);
    CHECK_EQ_INT(wsk_server_publish(S.srv, "x", 1, WSK_OP_TEXT, "m4", 2), 1);
    CHECK_EQ_INT(wsk_conn_unsubscribe_all(b), 2);
    st = stats();
    CHECK_EQ_INT(st.topics, 1);
    CHECK_EQ_INT(st.subscriptions, 1);
    CHECK_EQ_INT(wsk_server_publish(S.srv, "x", 1, WSK_OP_TEXT, "m5", 2), 0);

    /* Arguments. */
    char longname[WSK_TOPIC_MAX + 1];
    memset(longname, 'n', sizeof longname);
    CHECK_EQ_INT(wsk_server_publish(S.srv, "", 0, WSK_OP_TEXT, "m", 1), -EINVAL);
    CHECK_EQ_INT(wsk_server_publish(S.srv, longname, sizeof longname, WSK_OP_TEXT, "m", 1),
                 -EINVAL);
    CHECK_EQ_INT(wsk_server_publish(S.srv, "y", 1, WSK_OP_PING, "m", 1), -EINVAL);
    CHECK_EQ_INT(wsk_server_publish(S.srv, "y", 1, WSK_OP_TEXT, "\xff", 1), WSK_EUTF8);
    CHECK_EQ_INT(wsk_server_publish(S.srv, "none", 4, WSK_OP_TEXT, "\xff", 1), WSK_EUTF8);
    CHECK_EQ_INT(wsk_conn_subscribe(a, "", 0), -EINVAL);
    CHECK_EQ_INT(wsk_conn_subscribe(a, longname, sizeof longname), -EINVAL);
    CHECK_EQ_INT(wsk_conn_subscribe(cl[0].conn, "x", 1), -EINVAL); /* a client's */
    CHECK_EQ_INT(wsk_conn_unsubscribe(cl[0].conn, "x", 1), 0);
    CHECK_EQ_INT(wsk_conn_unsubscribe_all(cl[0].conn), 0);
    CHECK_EQ_INT(wsk_server_subscribers(S.srv, "", 0), 0);

    /* Binary names: bytes, NULs included, up to WSK_TOPIC_MAX. */
    uint8_t bin[WSK_TOPIC_MAX];
    for (size_t i = 0; i < sizeof bin; i++)
        bin[i] = (uint8_t)(255 - i);
    CHECK_EQ_INT(wsk_conn_subscribe(a, "a\0b", 3), 1);
    CHECK_EQ_INT(wsk_conn_subscribe(b, "a\0c", 3), 1);
    CHECK_EQ_INT(wsk_conn_subscribe(b, "a", 1), 1);
    CHECK_EQ_INT(wsk_conn_subscribe(c, bin, sizeof bin), 1);
    CHECK_EQ_INT(wsk_conn_subscribe(c, bin, sizeof bin - 1), 1);
    CHECK_EQ_INT(wsk_server_publish(S.srv, "a\0b", 3, WSK_OP_TEXT, "b1", 2), 1);
    CHECK_EQ_INT(wsk_server_publish(S.srv, "a\0c", 3, WSK_OP_TEXT, "b2", 2), 1);
    CHECK_EQ_INT(wsk_server_publish(S.srv, bin, sizeof bin, WSK_OP_TEXT, "b3", 2), 1);
    CHECK_EQ_INT(wsk_server_subscribers(S.srv, bin, sizeof bin - 1), 1);
    CHECK_EQ_INT(wsk_server_subscribers(S.srv, "a\0", 2), 0);
    RUN_UNTIL(cl[0].messages == 2 && cl[1].messages == 4 && cl[2].messages == 2, WAIT_MS);
    CHECK_STR(cl[0].log, "m1|b1|");
    CHECK_STR(cl[1].log, "m1|m2|m4|b2|");
    CHECK_STR(cl[2].log, "m2|b3|");

    /* A connection's end takes its subscriptions: c had "y" and two names. */
    st = stats();
    CHECK_EQ_INT(st.subscriptions, 6);
    wsk_conn_close(cl[2].conn, 1000, NULL);
    RUN_UNTIL(S.closed == 1, WAIT_MS);
    st = stats();
    CHECK_EQ_INT(st.subscriptions, 3);
    CHECK_EQ_INT(st.topics, 3);
    CHECK_EQ_INT(wsk_server_subscribers(S.srv, "y", 1), 0);
    CHECK_EQ_INT(wsk_server_publish(S.srv, bin, sizeof bin, WSK_OP_TEXT, "b4", 2), 0);
out:
    cl_close_all(cl, 3);
    st = stats();
    CHECK_EQ_INT(st.topics, 0);
    CHECK_EQ_INT(st.subscriptions, 0);
    srv_stop();
}

/* ---- callbacks during a publish -------------------------------------------- */

#define CB_LEN 3000

static struct {
    struct wsk_conn *unsub, *closing, *late;
    int nested;
    bool free_server;
} cb;

/* Runs inside the publish, when the reset peer's connection ends. */
static void cb_hook(struct wsk_conn *c)
{
    (void)c;
    if (cb.free_server) {
        wsk_server_free(S.srv); /* ends everyone now, memory at the end of the iteration */
        S.srv = NULL;
        return;
    }
    CHECK_EQ_INT(wsk_conn_unsubscribe(cb.unsub, "t", 1), 1); /* the next one the walk visits */
    CHECK_EQ_INT(wsk_conn_close(cb.closing, 1000, NULL), 0);
    CHECK_EQ_INT(wsk_conn_subscribe(cb.late, "t", 1), 1);
    /* A publish inside the publish: the late one gets it, the closing
     * one does not. */
    cb.nested = wsk_server_publish(S.srv, "t", 1, WSK_OP_TEXT, "nested", 6);
}

static void callbacks_during_publish(bool free_server)
{
    struct wsk_server_config cfg;
    wsk_server_config_init(&cfg);
    cfg.limits.max_send_queue = 4096;
    srv_start(&cfg);
    S.close_hook = cb_hook;
    struct tcl cl[5];
    struct wsk_conn *sc[5];
    for (int i = 0; i < 5; i++)
        sc[i] = cl_connect(&cl[i], NULL);
    struct wsk_conn *r = NULL;
    int fd = raw_connect(0, &r);
    CHECK(r && sc[0] && sc[1] && sc[2] && sc[3] && sc[4]);
    if (!r)
        return;
    /* The walk goes newest first: sc[0], r, sc[1], sc[2], sc[3]. */
    CHECK_EQ_INT(wsk_conn_subscribe(sc[3], "t", 1), 1);
    CHECK_EQ_INT(wsk_conn_subscribe(sc[2], "t", 1), 1);
    CHECK_EQ_INT(wsk_conn_subscribe(sc[1], "t", 1), 1);
    CHECK_EQ_INT(wsk_conn_subscribe(r, "t", 1), 1);
    CHECK_EQ_INT(wsk_conn_subscribe(sc[0], "t", 1), 1);
    S.hooked = r;
    cb.unsub = sc[1];
    cb.closing = sc[2];
    cb.late = sc[4];
    cb.nested = -1;
    cb.free_server = free_server;

    static uint8_t m1[CB_LEN], m2[CB_LEN];
    memset(m1, '1', sizeof m1);
    memset(m2, '2', sizeof m2);
    /* Without running the loop: every queue holds m1, so m2 takes each
     * receiver past the cap and makes the server write to it now; for the
     * reset peer that write fails and its connection ends, calling
     * on_close inside the publish. */
    CHECK_EQ_INT(wsk_server_publish(S.srv, "t", 1, WSK_OP_TEXT, m1, sizeof m1), 5);
    raw_reset(fd);
    int n = wsk_server_publish(S.srv, "t", 1, WSK_OP_TEXT, m2, sizeof m2);
    if (free_server) {
        CHECK(S.srv == NULL);
        CHECK_EQ_INT(n, 1); /* sc[0] only: the walk found nobody after */
        for (int i = 0; i < 5; i++)
            RUN_UNTIL(cl[i].closed, WAIT_MS);
        CHECK_EQ_INT(S.closed, 6);
        run_for(20);
        return;
    }
    CHECK_EQ_INT(n, 2); /* sc[0] before the reset one, sc[3] after; sc[1] left, sc[2] closing */
    CHECK_EQ_INT(cb.nested, 3); /* sc[4] (late), sc[0], sc[3] */
    CHECK_EQ_INT(S.closed, 1);
    CHECK_EQ_INT(wsk_server_subscribers(S.srv, "t", 1), 4);
    RUN_UNTIL(cl[0].messages == 3 && cl[1].messages == 1 && cl[3].messages == 3 &&
                  cl[4].messages == 1 && cl[2].closed,
              WAIT_MS);
    CHECK_EQ_INT(cl[2].messages, 1);
    /* sc[0] had m2 queued before the nested publish, sc[3] gets it after. */
    CHECK_EQ_INT(cl[4].last_len, 6);
    CHECK_EQ_INT(cl[0].last_len, 6);
    CHECK_MEM(cl[0].last, "nested", 6);
    CHECK_EQ_INT(cl[3].last_len, sizeof cl[3].last);
    CHECK_MEM(cl[3].last, m2, sizeof cl[3].last);
    cl_close_all(cl, 5);
    CHECK_EQ_INT(stats().topics, 0);
    srv_stop();
}

static void test_callbacks_during_publish(void)
{
    callbacks_during_publish(false);
}

static void test_free_during_publish(void)
{
    callbacks_during_publish(true);
}

/* ---- the slow subscriber ------------------------------------------------------ */

#define SLOW_LEN 16000

static void slow_subscriber(enum wsk_overflow_policy policy)
{
    struct wsk_server_config cfg;
    wsk_server_config_init(&cfg);
    cfg.limits.max_send_queue = 64 * 1024;
    cfg.limits.overflow = policy;
    srv_start(&cfg);
    struct tcl cl[2];
    struct wsk_conn *sc0 = cl_connect(&cl[0], NULL), *sc1 = cl_connect(&cl[1], NULL);
    struct wsk_conn *r = NULL;
    int fd = raw_connect(4096, &r);
    CHECK(r && sc0 && sc1);
    if (!r)
        return;
    CHECK_EQ_INT(wsk_conn_subscribe(sc0, "s", 1), 1);
    CHECK_EQ_INT(wsk_conn_subscribe(sc1, "s", 1), 1);
    CHECK_EQ_INT(wsk_conn_subscribe(r, "s", 1), 1);
    CHECK_EQ_INT(wsk_conn_subscribe(sc1, "other", 5), 1);

    /* Publish in batches the readers' queues take, running the loop
     * between them, until the raw peer's kernel buffers are full and the
     * policy has had to act a few times. */
    static uint8_t msg[SLOW_LEN];
    int sent = 0, acted = 0;
    for (int batch = 0; batch < 2000 && acted < 4; batch++) {
        for (int j = 0; j < 3; j++) {
            msg[0] = (uint8_t)sent;
            int n = wsk_server_publish(S.srv, "s", 1, WSK_OP_BINARY, msg, sizeof msg);
            CHECK(n == 2 || n == 3);
            sent++;
        }
        RUN_UNTIL(cl[0].messages == sent && cl[1].messages == sent, WAIT_MS);
        struct wsk_server_stats st = stats();
        acted = (int)(policy == WSK_OVERFLOW_DROP ? st.slow_dropped : st.slow_closed * 4);
    }
    struct wsk_server_stats st = stats();
    printf("     %d messages published; slow subscriber: %llu closed, %llu dropped\n", sent,
           (unsigned long long)st.slow_closed, (unsigned long long)st.slow_dropped);
    if (policy == WSK_OVERFLOW_DROP) {
        CHECK(st.slow_dropped >= 4);
        CHECK_EQ_INT(st.slow_closed, 0);
        CHECK_EQ_INT(S.closed, 0);
        CHECK(wsk_conn_send_queue(r) <= 64 * 1024);
    } else {
        CHECK_EQ_INT(st.slow_closed, 1);
        CHECK_EQ_INT(st.slow_dropped, 0);
    }
    CHECK_EQ_INT(cl[0].messages, sent);
    CHECK_EQ_INT(cl[1].messages, sent);
    CHECK_EQ_INT(wsk_server_publish(S.srv, "other", 5, WSK_OP_TEXT, "end", 3), 1);
    RUN_UNTIL(cl[1].messages == sent + 1, WAIT_MS);
    close(fd);
    cl_close_all(cl, 2);
    RUN_UNTIL(S.closed == 3, WAIT_MS);
    srv_stop();
}

static void test_slow_closed(void)
{
    slow_subscriber(WSK_OVERFLOW_CLOSE);
}

static void test_slow_dropped(void)
{
    slow_subscriber(WSK_OVERFLOW_DROP);
}

/* ---- permessage-deflate receivers -------------------------------------------- */

static void test_deflate(void)
{
    struct wsk_server_config cfg;
    wsk_server_config_init(&cfg);
    wsk_deflate_config_init(&cfg.deflate);
    cfg.deflate.enabled = true;
    srv_start(&cfg);
    struct tcl cl[3];
    struct wsk_conn *sc[3];
    struct wsk_client_config cc;
    for (int i = 0; i < 3; i++) {
        wsk_client_config_init(&cc);
        wsk_deflate_config_init(&cc.deflate);
        cc.deflate.enabled = i < 2; /* two windows, then none */
        if (i == 1)
            cc.deflate.server_max_window_bits = 10;
        sc[i] = cl_connect(&cl[i], &cc);
        CHECK(sc[i] != NULL);
        if (sc[i])
            CHECK_EQ_INT(wsk_conn_subscribe(sc[i], "z", 1), 1);
    }
    CHECK(strstr(cl[0].extensions, "permessage-deflate") != NULL);
    CHECK(strstr(cl[1].extensions, "server_max_window_bits=10") != NULL);
    CHECK_STR(cl[2].extensions, "");

    size_t len = 20000;
    uint8_t *text = malloc(len);
    for (size_t i = 0; i < len; i++)
        text[i] = (uint8_t) "the quick brown fox jumps over the lazy dog "[i % 44];
    for (int i = 0; i < 3; i++) {
        cl[i].expect = text;
        cl[i].expect_len = len;
    }
    /* A publish, then each receiver's own compressor (which must forget
     * its history), then a publish again. */
    CHECK_EQ_INT(wsk_server_publish(S.srv, "z", 1, WSK_OP_TEXT, text, len), 3);
    for (int i = 0; i < 3; i++)
        if (sc[i])
            CHECK_EQ_INT(wsk_conn_send(sc[i], WSK_OP_TEXT, text, len), 0);
    CHECK_EQ_INT(wsk_server_publish(S.srv, "z", 1, WSK_OP_TEXT, text, len), 3);
    RUN_UNTIL(cl[0].messages == 3 && cl[1].messages == 3 && cl[2].messages == 3, WAIT_MS);
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(cl[i].bad, 0);
    cl_close_all(cl, 3);
    free(text);
    srv_stop();
}

/* ---- many topics --------------------------------------------------------------- */

#define MANY 20000

static void test_many_topics(void)
{
    srv_start(NULL);
    struct tcl all, part[10];
    struct wsk_conn *sa = cl_connect(&all, NULL), *sp[10];
    for (int k = 0; k < 10; k++)
        sp[k] = cl_connect(&part[k], NULL);
    char name[32];
    for (int i = 0; i < MANY; i++) {
        int n = snprintf(name, sizeof name, "topic-%d", i);
        CHECK_EQ_INT(wsk_conn_subscribe(sa, name, (size_t)n), 1);
        if (sp[i % 10])
            CHECK_EQ_INT(wsk_conn_subscribe(sp[i % 10], name, (size_t)n), 1);
    }
    struct wsk_server_stats st = stats();
    CHECK_EQ_INT(st.topics, MANY);
    CHECK_EQ_INT(st.subscriptions, 2 * MANY);
    int sent = 0, expected[10] = {0};
    for (int i = 0; i < MANY; i += 7) {
        int n = snprintf(name, sizeof name, "topic-%d", i);
        CHECK_EQ_INT(wsk_server_publish(S.srv, name, (size_t)n, WSK_OP_TEXT, name, (size_t)n), 2);
        expected[i % 10]++;
        sent++;
    }
    RUN_UNTIL(all.messages == sent, WAIT_MS);
    for (int k = 0; k < 10; k++) {
        RUN_UNTIL(part[k].messages == expected[k], WAIT_MS);
        CHECK_EQ_INT(part[k].bad, 0);
    }
    CHECK_EQ_INT(wsk_conn_unsubscribe_all(sa), MANY);
    st = stats();
    CHECK_EQ_INT(st.topics, MANY);
    CHECK_EQ_INT(st.subscriptions, MANY);
    for (int i = 0; i < MANY; i += 2) {
        int n = snprintf(name, sizeof name, "topic-%d", i);
        CHECK_EQ_INT(wsk_conn_unsubscribe(sp[i % 10], name, (size_t)n), 1);
    }
    st = stats();
    CHECK_EQ_INT(st.topics, MANY / 2);
    CHECK_EQ_INT(wsk_server_publish(S.srv, "topic-1", 7, WSK_OP_TEXT, "x", 1), 1);
    CHECK_EQ_INT(wsk_server_publish(S.srv, "topic-2", 7, WSK_OP_TEXT, "x", 1), 0);
    cl_close_all(part, 10);
    st = stats();
    CHECK_EQ_INT(st.topics, 0);
    CHECK_EQ_INT(st.subscriptions, 0);
    cl_close_all(&all, 1);
    srv_stop();
}

/* ---- what a topic and a subscription cost ------------------------------------- */

#define MEM_N 100000

static size_t heap_used(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd; /* big bucket arrays are mmap()ed */
}

/* One connection in MEM_N topics (each a new topic), then a second in the
 * same ones (subscriptions only): the two differences give the heap bytes,
 * allocator overhead and hash buckets included, per topic and per
 * subscription. Names are "room-NNNNN", 10 bytes. */
static void test_memory(void)
{
    srv_start(NULL);
    struct tcl cl[2];
    struct wsk_conn *a = cl_connect(&cl[0], NULL), *b = cl_connect(&cl[1], NULL);
    char name[32];
    size_t h0 = heap_used();
    for (int i = 0; i < MEM_N; i++) {
        int n = snprintf(name, sizeof name, "room-%05d", i);
        CHECK_EQ_INT(wsk_conn_subscribe(a, name, (size_t)n), 1);
    }
    size_t h1 = heap_used();
    for (int i = 0; i < MEM_N; i++) {
        int n = snprintf(name, sizeof name, "room-%05d", i);
        CHECK_EQ_INT(wsk_conn_subscribe(b, name, (size_t)n), 1);
    }
    size_t h2 = heap_used();
    double per_sub = (double)(h2 - h1) / MEM_N;
    double per_topic = (double)(h1 - h0) / MEM_N - per_sub;
    printf("     heap per subscription %.1f bytes, per topic (10-byte name) %.1f bytes "
           "(%d of each)\n",
           per_sub, per_topic, MEM_N);
    /* Sanitizer builds keep their own heap: mallinfo2() then sees nothing. */
    if (h2 > h1) {
        CHECK(per_sub < 112);
        CHECK(per_topic < 112);
    }
    CHECK_EQ_INT(wsk_conn_unsubscribe_all(a), MEM_N);
    CHECK_EQ_INT(wsk_conn_unsubscribe_all(b), MEM_N);
    cl_close_all(cl, 2);
    srv_stop();
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    alarm(110);
    CHECK_EQ_INT(wsk_loop_new(&loop, wsk_test_loop_cfg()), 0);
    WSK_RUN(test_siphash);
    WSK_RUN(test_counts);
    WSK_RUN(test_callbacks_during_publish);
    WSK_RUN(test_free_during_publish);
    WSK_RUN(test_slow_closed);
    WSK_RUN(test_slow_dropped);
    WSK_RUN(test_deflate);
    WSK_RUN(test_many_topics);
    WSK_RUN(test_memory);
    CHECK_EQ_INT(wsk_loop_free(loop), 0);
    WSK_TEST_END();
}
