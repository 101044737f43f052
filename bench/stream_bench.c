/* Bulk bytes through a bridge, checked: the client for bench/bridges.sh.
 *
 *   stream_bench ws://HOST:PORT/ MIB [CHUNK]   binary messages of CHUNK bytes
 *   stream_bench tcp://HOST:PORT MIB [CHUNK]   the same bytes over plain TCP
 *   stream_bench udp://HOST:PORT COUNT [SIZE]  COUNT datagrams, 64 in flight
 *
 * Against an echo behind the bridge (wsk serve --proxy to a TCP echo, or a
 * plain relay to it), sends MIB MiB of a counting pattern with at most 4 MiB
 * outstanding and reads it back in whatever pieces it comes (a bridge does
 * not keep message boundaries), checking every byte in order. Prints one
 * line: "MB/s 123.4 (N bytes each way in S s)". For UDP, datagrams of SIZE
 * (default 64) bytes, each checked, with a window of 64: "datagrams/s"; a
 * datagram lost for 1 s is sent again, and counted.
 *
 * Exit status 0 when everything came back as sent, 1 otherwise. Runs on the
 * wsk loop with the library's own client, TCP and UDP. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wsk.h"

#define WINDOW      (4u << 20)
#define UDP_WINDOW  64
#define DEADLINE_MS 120000u

struct bench {
    struct wsk_loop *loop;
    struct wsk_conn *conn;
    struct wsk_tcp *tcp;
    struct wsk_udp *udp;
    uint64_t total, sent, got;
    size_t chunk;
    uint8_t *buf;
    bool failed, done, paused;
    struct wsk_timer deadline, resend;
    /* UDP */
    uint64_t next_seq, acked, resent;
    uint64_t sent_at[UDP_WINDOW];
    bool in_flight[UDP_WINDOW];
};

/* The pattern repeats every PERIOD bytes (a prime, so it never lines up
 * with chunk sizes): sending and checking are memcpy() and memcmp(), fast
 * enough that the client is not what is measured. */
#define PERIOD 65521u
static uint8_t table[PERIOD];

static uint8_t pattern(uint64_t i)
{
    return table[i % PERIOD];
}

static void fill(uint8_t *out, uint64_t at, size_t n)
{
    while (n) {
        size_t off = (size_t)(at % PERIOD), k = PERIOD - off < n ? PERIOD - off : n;
        memcpy(out, table + off, k);
        out += k;
        at += k;
        n -= k;
    }
}

/* The offset of the first wrong byte, or n. */
static size_t check(const uint8_t *in, uint64_t at, size_t n)
{
    size_t done = 0;
    while (done < n) {
        size_t off = (size_t)(at % PERIOD), k = PERIOD - off < n - done ? PERIOD - off : n - done;
        if (memcmp(in + done, table + off, k) != 0) {
            while (in[done] == table[off]) {
                done++;
                off++;
            }
            return done;
        }
        done += k;
        at += k;
    }
    return n;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void finish(struct bench *b, bool failed, const char *why)
{
    if (b->done)
        return;
    b->done = true;
    b->failed = failed;
    if (why)
        fprintf(stderr, "stream_bench: %s\n", why);
    wsk_timer_stop(b->loop, &b->deadline);
    wsk_timer_stop(b->loop, &b->resend);
    if (b->conn)
        wsk_conn_close(b->conn, WSK_CLOSE_NORMAL, NULL);
    if (b->tcp)
        wsk_tcp_close(b->tcp);
    if (b->udp) {
        wsk_udp_free(b->udp);
        b->udp = NULL;
    }
}

static void on_deadline(struct wsk_loop *loop, struct wsk_timer *t)
{
    (void)loop;
    finish(t->data, true, "timed out");
}

/* ---- streams (ws:// and tcp://) --------------------------------------------- */

static void pump(struct bench *b)
{
    while (!b->done && !b->paused && b->sent < b->total && b->sent - b->got < WINDOW) {
        size_t n = b->chunk;
        if (n > b->total - b->sent)
            n = (size_t)(b->total - b->sent);
        fill(b->buf, b->sent, n);
        int rv = b->conn ? wsk_conn_send(b->conn, WSK_OP_BINARY, b->buf, n)
                         : wsk_tcp_send(b->tcp, b->buf, n);
        if (rv < 0 && rv != WSK_EBACKPRESSURE) {
            finish(b, true, wsk_strerror(rv));
            return;
        }
        b->sent += n;
        if (rv == WSK_EBACKPRESSURE)
            b->paused = true;
    }
}

static void received(struct bench *b, const uint8_t *data, size_t len)
{
    if (b->got + len > b->total) {
        finish(b, true, "more bytes came back than were sent");
        return;
    }
    size_t ok = check(data, b->got, len);
    if (ok != len) {
        char why[96];
        snprintf(why, sizeof why, "byte %llu came back wrong", (unsigned long long)(b->got + ok));
        finish(b, true, why);
        return;
    }
    b->got += len;
    if (b->got == b->total)
        finish(b, false, NULL);
    else
        pump(b);
}

static void ws_open(struct wsk_conn *c, const struct wsk_open_event *ev, void *ud)
{
    (void)c;
    (void)ev;
    pump(ud);
}

static void ws_message(struct wsk_conn *c, const struct wsk_message *m, void *ud)
{
    (void)c;
    received(ud, m->data, m->len);
}

static void ws_drain(struct wsk_conn *c, void *ud)
{
    struct bench *b = ud;
    (void)c;
    b->paused = false;
    pump(b);
}

static void ws_close(struct wsk_conn *c, const struct wsk_close_event *ev, void *ud)
{
    struct bench *b = ud;
    (void)c;
    b->conn = NULL;
    if (!b->done)
        finish(b, true, ev->error ? wsk_strerror(ev->error) : "closed early");
}

static void tcp_open(struct wsk_tcp *t, void *ud)
{
    (void)t;
    pump(ud);
}

static void tcp_data(struct wsk_tcp *t, const uint8_t *data, size_t len, void *ud)
{
    (void)t;
    received(ud, data, len);
}

static void tcp_drain(struct wsk_tcp *t, void *ud)
{
    struct bench *b = ud;
    (void)t;
    b->paused = false;
    pump(b);
}

static void tcp_close(struct wsk_tcp *t, int error, void *ud)
{
    struct bench *b = ud;
    (void)t;
    b->tcp = NULL;
    if (!b->done)
        finish(b, true, error ? wsk_strerror(error) : "closed early");
}

/* ---- datagrams -------------------------------------------------------------- */

static void udp_send(struct bench *b, uint64_t seq)
{
    memset(b->buf, 0, b->chunk);
    for (size_t i = 0; i < 8 && i < b->chunk; i++)
        b->buf[i] = (uint8_t)(seq >> (8 * i));
    for (size_t i = 8; i < b->chunk; i++)
        b->buf[i] = pattern(seq + i);
    b->sent_at[seq % UDP_WINDOW] = wsk_loop_now(b->loop);
    b->in_flight[seq % UDP_WINDOW] = true;
    (void)wsk_udp_send(b->udp, b->buf, b->chunk);
}

static void udp_pump(struct bench *b)
{
    while (!b->done && b->next_seq < b->total && b->next_seq < b->acked + UDP_WINDOW)
        udp_send(b, b->next_seq++);
}

static void udp_datagram(struct wsk_udp *u, const uint8_t *data, size_t len, bool truncated,
                         const struct sockaddr *from, socklen_t from_len, void *ud)
{
    struct bench *b = ud;
    uint64_t seq = 0;
    (void)u;
    (void)from;
    (void)from_len;
    if (truncated || len != b->chunk) {
        finish(b, true, "a datagram came back with the wrong size");
        return;
    }
    for (size_t i = 0; i < 8 && i < len; i++)
        seq |= (uint64_t)data[i] << (8 * i);
    for (size_t i = 8; i < len; i++)
        if (data[i] != pattern(seq + i)) {
            finish(b, true, "a datagram came back wrong");
            return;
        }
    if (seq >= b->next_seq || !b->in_flight[seq % UDP_WINDOW])
        return; /* a duplicate of a resent one */
    b->in_flight[seq % UDP_WINDOW] = false;
    b->got++;
    while (b->acked < b->next_seq && !b->in_flight[b->acked % UDP_WINDOW])
        b->acked++;
    if (b->got == b->total)
        finish(b, false, NULL);
    else
        udp_pump(b);
}

static void on_resend(struct wsk_loop *loop, struct wsk_timer *t)
{
    struct bench *b = t->data;
    uint64_t now = wsk_loop_now(loop);
    for (uint64_t s = b->acked; s < b->next_seq; s++)
        if (b->in_flight[s % UDP_WINDOW] && now - b->sent_at[s % UDP_WINDOW] >= 1000) {
            b->resent++;
            udp_send(b, s);
        }
}

/* ---- main ------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    struct bench b = {0};
    struct wsk_url u;
    char host[256];
    int rv;

    if (argc < 3 || argc > 4 || wsk_url_parse(argv[1], strlen(argv[1]), &u) < 0 ||
        (u.scheme != WSK_URL_WS && u.scheme != WSK_URL_TCP && u.scheme != WSK_URL_UDP)) {
        fprintf(stderr, "usage: stream_bench ws://HOST:PORT/|tcp://HOST:PORT MIB [CHUNK]\n"
                        "       stream_bench udp://HOST:PORT COUNT [SIZE]\n");
        return 2;
    }
    bool is_udp = u.scheme == WSK_URL_UDP;
    b.total = strtoull(argv[2], NULL, 10) * (is_udp ? 1 : 1u << 20);
    b.chunk = argc == 4 ? (size_t)strtoull(argv[3], NULL, 10) : is_udp ? 64 : 65536;
    if (!b.total || b.chunk < (is_udp ? 8u : 1u) || b.chunk > (is_udp ? 65507u : 16u << 20)) {
        fprintf(stderr, "stream_bench: bad size\n");
        return 2;
    }
    for (uint32_t i = 0; i < PERIOD; i++)
        table[i] = (uint8_t)(i * 131 + (i >> 7));
    if (!(b.buf = malloc(b.chunk)) || wsk_loop_new(&b.loop, NULL) < 0)
        return 1;
    snprintf(host, sizeof host, "%.*s", (int)u.host.len, u.host.ptr);
    wsk_timer_init(&b.deadline, on_deadline, &b);
    wsk_timer_init(&b.resend, on_resend, &b);
    wsk_timer_start(b.loop, &b.deadline, DEADLINE_MS, 0);
    double t0 = now_s();
    if (u.scheme == WSK_URL_WS) {
        struct wsk_client_config cfg;
        wsk_client_config_init(&cfg);
        cfg.handlers.on_open = ws_open;
        cfg.handlers.on_message = ws_message;
        cfg.handlers.on_drain = ws_drain;
        cfg.handlers.on_close = ws_close;
        cfg.user_data = &b;
        cfg.limits.max_send_queue = WINDOW;
        cfg.deflate.enabled = false;
        rv = wsk_client_connect(&b.conn, b.loop, argv[1], &cfg);
    } else if (u.scheme == WSK_URL_TCP) {
        struct wsk_tcp_config cfg;
        wsk_tcp_config_init(&cfg);
        cfg.handlers.on_open = tcp_open;
        cfg.handlers.on_data = tcp_data;
        cfg.handlers.on_drain = tcp_drain;
        cfg.handlers.on_close = tcp_close;
        cfg.user_data = &b;
        cfg.max_send_queue = WINDOW;
        rv = wsk_tcp_connect(&b.tcp, b.loop, host, u.port, &cfg);
    } else {
        struct wsk_udp_config cfg;
        wsk_udp_config_init(&cfg);
        cfg.handlers.on_datagram = udp_datagram;
        cfg.user_data = &b;
        rv = wsk_udp_connect(&b.udp, b.loop, host, u.port, &cfg);
        if (rv == 0) {
            wsk_timer_start(b.loop, &b.resend, 200, 200);
            udp_pump(&b);
        }
    }
    if (rv < 0) {
        fprintf(stderr, "stream_bench: cannot connect: %s\n", wsk_strerror(rv));
        return 1;
    }
    wsk_loop_run(b.loop);
    double dt = now_s() - t0;
    if (!b.failed && is_udp)
        printf("datagrams/s %.0f (%llu datagrams of %zu bytes in %.2f s, %llu resent)\n",
               (double)b.total / dt, (unsigned long long)b.total, b.chunk, dt,
               (unsigned long long)b.resent);
    else if (!b.failed)
        printf("MB/s %.1f (%llu bytes each way in %.2f s)\n", (double)b.total / dt / 1e6,
               (unsigned long long)b.total, dt);
    wsk_loop_free(b.loop);
    free(b.buf);
    return b.failed ? 1 : 0;
}
