/* Rooms with a door: who may join is decided in on_upgrade, the room is a
 * topic, and a thread that runs no loop publishes into a room.
 *
 *   rooms_auth [PORT] [SECRET]    127.0.0.1:PORT (0 or none: any free port);
 *                                 SECRET defaults to "letmein"
 *
 * Prints "rooms_auth: listening on ws://127.0.0.1:PORT/ (rooms)". A client
 * gets in with the cookie "session=SECRET" (a browser that logged in) or
 * "Authorization: Bearer SECRET" (a program); anyone else gets HTTP 401.
 * ws://HOST:PORT/ROOM joins ROOM: what a client sends goes to everyone in
 * its room. A client that offers the subprotocol "chat.v2" gets it, else
 * none. Every second a clock thread, with no loop of its own, publishes
 * the time into the room "/clock" with wsk_server_publish_async(). SIGINT
 * or SIGTERM stops it. Try:
 *
 *   rooms_auth 8080 &
 *   wsk connect -H 'Cookie: session=letmein' ws://127.0.0.1:8080/clock
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "wsk.h"

static const char *secret = "letmein";
static atomic_bool is_stopping;

/* "session=SECRET" among the Cookie header's pairs. */
static bool has_session(const struct wsk_http_header *headers, size_t n)
{
    char want[300];
    int len = snprintf(want, sizeof want, "session=%s", secret);
    for (size_t i = 0; i < n; i++) {
        if (headers[i].name.len != 6 || strncasecmp(headers[i].name.ptr, "Cookie", 6) != 0)
            continue;
        const char *p = headers[i].value.ptr, *end = p + headers[i].value.len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == ';'))
                p++;
            const char *q = memchr(p, ';', (size_t)(end - p));
            size_t pair = (size_t)((q ? q : end) - p);
            if (pair == (size_t)len && !memcmp(p, want, pair))
                return true;
            p += pair;
        }
    }
    return false;
}

static int on_upgrade(struct wsk_conn *conn, const struct wsk_upgrade_event *ev, void *ud)
{
    (void)ud;
    const struct wsk_slice *auth =
        wsk_http_header_get(ev->headers, ev->num_headers, "Authorization");
    size_t slen = strlen(secret);
    bool bearer = auth && auth->len == 7 + slen && !strncasecmp(auth->ptr, "Bearer ", 7) &&
                  !memcmp(auth->ptr + 7, secret, slen);
    if (!bearer && !has_session(ev->headers, ev->num_headers)) {
        fprintf(stderr, "rooms_auth: %s: 401 for %.*s\n", wsk_conn_peer(conn), (int)ev->path.len,
                ev->path.ptr);
        return 401;
    }
    /* A client may offer several; we speak chat.v2 only. */
    wsk_conn_choose_subprotocol(conn, "chat.v2"); /* -EINVAL when not offered: none */
    /* The room is the path; joined before on_open. */
    if (wsk_conn_subscribe(conn, ev->path.ptr, ev->path.len) < 0)
        return 414; /* over WSK_TOPIC_MAX bytes (or out of memory) */
    return 0;
}

/* Each connection is in exactly one room: the path on_open reports. */
static void on_open(struct wsk_conn *conn, const struct wsk_open_event *ev, void *ud)
{
    (void)ud;
    char *room = strndup(ev->path.ptr, ev->path.len);
    wsk_conn_set_data(conn, room);
}

static void on_message(struct wsk_conn *conn, const struct wsk_message *msg, void *ud)
{
    struct wsk_server *srv = *(struct wsk_server **)ud;
    const char *room = wsk_conn_get_data(conn);
    if (room)
        wsk_server_publish(srv, room, strlen(room), msg->opcode, msg->data, msg->len);
}

static void on_close(struct wsk_conn *conn, const struct wsk_close_event *ev, void *ud)
{
    (void)ev;
    (void)ud;
    free(wsk_conn_get_data(conn));
}

static void *clock_thread(void *arg)
{
    struct wsk_server *srv = arg;
    while (!atomic_load(&is_stopping)) {
        char now[64];
        time_t t = time(NULL);
        struct tm tm;
        size_t n = strftime(now, sizeof now, "%H:%M:%S", localtime_r(&t, &tm));
        /* -EAGAIN: the loop is far behind; this tick can go. */
        wsk_server_publish_async(srv, "/clock", 6, WSK_OP_TEXT, now, n);
        sleep(1);
    }
    return NULL;
}

static void on_signal(struct wsk_loop *loop, int signo, void *data)
{
    (void)loop;
    (void)signo;
    wsk_server_shutdown(*(struct wsk_server **)data, WSK_CLOSE_GOING_AWAY, NULL);
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 0;
    if (argc > 2)
        secret = argv[2];
    struct wsk_loop *loop;
    struct wsk_server *srv = NULL;
    if (wsk_loop_new(&loop, NULL) < 0)
        return 1;
    struct wsk_server_config cfg;
    wsk_server_config_init(&cfg);
    cfg.on_upgrade = on_upgrade;
    cfg.handlers.on_open = on_open;
    cfg.handlers.on_message = on_message;
    cfg.handlers.on_close = on_close;
    cfg.user_data = &srv;
    int rv = wsk_server_new(&srv, loop, &cfg);
    if (rv == 0)
        rv = wsk_server_listen(srv, "127.0.0.1", (uint16_t)port);
    if (rv < 0) {
        fprintf(stderr, "rooms_auth: %s\n", wsk_strerror(rv));
        return 1;
    }
    /* Signals first: the handler blocks them in this thread, and the clock
     * thread created after inherits the mask. */
    wsk_loop_signal(loop, SIGINT, on_signal, &srv);
    wsk_loop_signal(loop, SIGTERM, on_signal, &srv);
    pthread_t clock;
    pthread_create(&clock, NULL, clock_thread, srv);
    printf("rooms_auth: listening on ws://127.0.0.1:%u/ (rooms)\n", wsk_server_port(srv));
    fflush(stdout);
    wsk_loop_run(loop);
    /* The clock must stop before the server goes. */
    atomic_store(&is_stopping, true);
    pthread_join(clock, NULL);
    wsk_server_free(srv);
    wsk_loop_run(loop); /* a hand-over the clock queued last */
    wsk_loop_free(loop);
    return 0;
}
