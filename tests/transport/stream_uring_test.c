/* Tests for a plain stream on the io_uring backend (src/transport/
 * stream_uring.c): the paths the ws and net tests, which also run on
 * io_uring, reach rarely or never. A reader that pauses with bytes in hand
 * and resumes outside its callback; a peer's reset; end of stream; closing
 * with a send in flight to a peer that never reads, then freeing the loop
 * with that send still out (the orphaned queue is freed by the cancel's
 * completion: ASan's leak check runs at exit).
 *
 * Each test drives a real TCP connection on 127.0.0.1: the stream on one
 * end, a blocking-free plain socket on the other. Waits are bounded by a
 * timer; alarm() ends the program if something still blocks.
 */
#include "loop/uring.h"
#include "transport/stream.h"
#include "wsk/loop.h"
#include "wsk_test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#define TOTAL (200u * 1024)

static struct wsk_loop *loop;
static struct wsk_timer guard;

static void guard_cb(struct wsk_loop *l, struct wsk_timer *t)
{
    (void)t;
    wsk_loop_stop(l);
}

/* Runs the loop for about ms (it stops earlier when a callback stops it). */
static void run_for(uint64_t ms)
{
    wsk_timer_init(&guard, guard_cb, NULL);
    wsk_timer_start(loop, &guard, ms, 0);
    wsk_loop_run(loop);
    wsk_timer_stop(loop, &guard);
}

/* A connected pair on 127.0.0.1: *ours non-blocking, *peer blocking. */
static int tcp_pair(int *ours, int *peer)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 1) < 0 ||
        getsockname(l, (struct sockaddr *)&a, &len) < 0)
        return -1;
    *peer = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (*peer < 0 || connect(*peer, (struct sockaddr *)&a, sizeof a) < 0)
        return -1;
    *ours = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    close(l);
    return *ours < 0 ? -1 : 0;
}

struct reader {
    struct wsk__stream st;
    struct wsk__seg_pool pool;
    uint8_t *got;
    size_t len;
    size_t pause_at; /* stop reading (and watching) once this much is in */
    bool paused;
    int calls_paused; /* read callbacks while paused: must stay 0 */
    int error;
    bool eof;
    bool writable;
};

static void reader_cb(struct wsk_loop *l, struct wsk_io *io, unsigned events)
{
    struct reader *r = io->data;
    if (events & WSK_IO_WRITE)
        r->writable = true;
    if (!(events & WSK_IO_READ))
        return;
    if (r->paused) {
        r->calls_paused++;
        return;
    }
    for (;;) {
        size_t room = TOTAL - r->len;
        if (r->pause_at)
            room = r->len < r->pause_at ? r->pause_at - r->len : 0;
        if (!room) {
            /* Paused with bytes still in the current buffer: they must
             * move to the stash and come back, in order, after resume. */
            r->paused = true;
            wsk__stream_watch(l, &r->st, false, false);
            return;
        }
        ssize_t n = wsk__stream_recv(&r->st, r->got + r->len, room);
        if (n == -EAGAIN)
            return;
        if (n < 0) {
            r->error = (int)n;
            wsk__stream_watch(l, &r->st, false, false);
            return;
        }
        if (n == 0) {
            r->eof = true;
            wsk__stream_watch(l, &r->st, false, false);
            return;
        }
        r->len += (size_t)n;
        if (r->len == TOTAL)
            wsk_loop_stop(l);
    }
}

static bool on_uring(void)
{
    if (strcmp(wsk_loop_backend_name(loop), "io_uring") != 0)
        return false;
    run_for(1); /* the first wait makes the ring */
    return wsk__loop_uring(loop) != NULL;
}

static void reader_open(struct reader *r, int fd)
{
    memset(r, 0, sizeof *r);
    r->got = malloc(TOTAL);
    wsk__stream_init(&r->st, fd, reader_cb, r);
}

static void reader_close(struct reader *r)
{
    wsk__stream_close(loop, &r->st, &r->pool);
    wsk__seg_pool_free(&r->pool);
    free(r->got);
}

static void write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void test_pause_resume_keeps_order(void)
{
    int ours, peer;
    CHECK_EQ_INT(tcp_pair(&ours, &peer), 0);
    struct reader r;
    reader_open(&r, ours);
    r.pause_at = 1000;
    CHECK_EQ_INT(wsk__stream_watch(loop, &r.st, true, false), 0);
    CHECK(wsk__stream_u(&r.st) != NULL);
    static uint8_t data[TOTAL];
    for (size_t i = 0; i < TOTAL; i++)
        data[i] = (uint8_t)(i * 7 + i / 251);
    write_all(peer, data, 64 * 1024);
    run_for(100);
    CHECK(r.paused);
    CHECK_EQ_INT(r.len, 1000);
    CHECK(wsk__stream_pending(&r.st)); /* the rest of the buffer is stashed */
    CHECK_EQ_INT(r.calls_paused, 0);
    write_all(peer, data + 64 * 1024, TOTAL - 64 * 1024);
    run_for(50);
    CHECK_EQ_INT(r.calls_paused, 0); /* no receive while not watching */
    CHECK_EQ_INT(r.len, 1000);
    /* Resume outside any callback: the stashed bytes show as no
     * completion, so the stream calls back for them. */
    r.paused = false;
    r.pause_at = 0;
    CHECK_EQ_INT(wsk__stream_watch(loop, &r.st, true, false), 0);
    run_for(2000);
    CHECK_EQ_INT(r.len, TOTAL);
    CHECK(memcmp(r.got, data, TOTAL) == 0);
    CHECK_EQ_INT(r.error, 0);
    wsk__stream_trim(&r.st);
    reader_close(&r);
    close(peer);
}

static void test_eof_and_reset(void)
{
    int ours, peer;
    CHECK_EQ_INT(tcp_pair(&ours, &peer), 0);
    struct reader r;
    reader_open(&r, ours);
    CHECK_EQ_INT(wsk__stream_watch(loop, &r.st, true, false), 0);
    write_all(peer, (const uint8_t *)"bye", 3);
    shutdown(peer, SHUT_WR);
    run_for(200);
    CHECK_EQ_INT(r.len, 3);
    CHECK(r.eof);
    reader_close(&r);
    close(peer);

    CHECK_EQ_INT(tcp_pair(&ours, &peer), 0);
    reader_open(&r, ours);
    CHECK_EQ_INT(wsk__stream_watch(loop, &r.st, true, false), 0);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(peer, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(peer); /* a reset */
    run_for(200);
    CHECK_EQ_INT(r.error, -ECONNRESET);
    CHECK(!r.eof);
    reader_close(&r);
}

/* Queues 16 MiB to a peer that never reads: the send stays in flight. */
static void fill_queue(struct reader *r)
{
    for (int i = 0; i < 256; i++) {
        uint8_t *p = wsk__stream_reserve(&r->st, &r->pool, 64 * 1024, false);
        if (!p)
            return;
        memset(p, 'x', 64 * 1024);
    }
}

static void test_close_with_send_in_flight(void)
{
    int ours, peer;
    CHECK_EQ_INT(tcp_pair(&ours, &peer), 0);
    struct reader r;
    reader_open(&r, ours);
    CHECK_EQ_INT(wsk__stream_watch(loop, &r.st, true, false), 0);
    fill_queue(&r);
    CHECK_EQ_INT(wsk__stream_flush(&r.st, &r.pool), 0); /* scheduled, nothing done yet */
    run_for(50);
    /* The socket took what it could; the rest waits in the send. */
    ssize_t done = wsk__stream_flush(&r.st, &r.pool);
    CHECK(done > 0 && r.st.out_bytes > 0);
    /* Closing now leaves the send's segments to its cancel's completion. */
    reader_close(&r);
    run_for(50);
    close(peer);
}

static void test_free_loop_with_send_in_flight(void)
{
    int ours, peer;
    CHECK_EQ_INT(tcp_pair(&ours, &peer), 0);
    struct reader r;
    reader_open(&r, ours);
    CHECK_EQ_INT(wsk__stream_watch(loop, &r.st, true, false), 0);
    fill_queue(&r);
    CHECK_EQ_INT(wsk__stream_flush(&r.st, &r.pool), 0);
    run_for(50);
    CHECK(r.st.out_bytes > 0);
    reader_close(&r);
    /* No run in between: the cancels and the send's completion are for
     * wsk_loop_free() to collect. */
    CHECK_EQ_INT(wsk_loop_free(loop), 0);
    loop = NULL;
    close(peer);
    struct wsk_loop_config cfg;
    wsk_loop_config_init(&cfg);
    cfg.backend = WSK_BACKEND_IO_URING;
    CHECK_EQ_INT(wsk_loop_new(&loop, &cfg), 0);
}

/* More connections with bytes waiting than the ring has buffers: the
 * receives past the 64th end with ENOBUFS and are armed again, and every
 * byte still arrives. */
#define MANY 150
static void test_more_readers_than_buffers(void)
{
    static struct reader rs[MANY];
    int peers[MANY];
    uint8_t data[3000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 13 + 5);
    int n = 0;
    for (; n < MANY; n++) {
        int ours;
        if (tcp_pair(&ours, &peers[n]) < 0)
            break;
        reader_open(&rs[n], ours);
        /* Bytes wait before the receive is armed: all complete at once. */
        write_all(peers[n], data, sizeof data);
        write_all(peers[n], data, sizeof data);
        shutdown(peers[n], SHUT_WR);
        CHECK_EQ_INT(wsk__stream_watch(loop, &rs[n].st, true, false), 0);
    }
    CHECK_EQ_INT(n, MANY);
    for (int round = 0; round < 200; round++) {
        int done = 0;
        for (int i = 0; i < n; i++)
            done += rs[i].eof;
        if (done == n)
            break;
        run_for(10);
    }
    for (int i = 0; i < n; i++) {
        CHECK(rs[i].eof);
        CHECK_EQ_INT(rs[i].len, 2 * sizeof data);
        CHECK(memcmp(rs[i].got, data, sizeof data) == 0);
        CHECK(memcmp(rs[i].got + sizeof data, data, sizeof data) == 0);
        reader_close(&rs[i]);
        close(peers[i]);
    }
}

static void on_alarm(int signo)
{
    static const char msg[] = "stream_uring_test: timed out\n";
    (void)signo;
    (void)!write(2, msg, sizeof msg - 1);
    _exit(2);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    signal(SIGALRM, on_alarm);
    alarm(60);
    struct wsk_loop_config cfg;
    wsk_loop_config_init(&cfg);
    cfg.backend = WSK_BACKEND_IO_URING;
    if (wsk_loop_new(&loop, &cfg) != 0 || !on_uring()) {
        printf("# io_uring is not available here: nothing to test\n");
        wsk_loop_free(loop);
        return 0;
    }
    WSK_RUN(test_pause_resume_keeps_order);
    WSK_RUN(test_eof_and_reset);
    WSK_RUN(test_more_readers_than_buffers);
    WSK_RUN(test_close_with_send_in_flight);
    WSK_RUN(test_free_loop_with_send_in_flight);
    CHECK_EQ_INT(wsk_loop_free(loop), 0);
    WSK_TEST_END();
}
