/* echo_client: sends one text message to a WebSocket server and checks that
 * the same message comes back (run it against `wsk serve --echo`).
 *
 *   echo_client ws://127.0.0.1:9001/ [MESSAGE]
 *
 * Prints the echo; exits 0 when it matched, 1 otherwise. */
#include <stdio.h>
#include <string.h>
#include <wsk.h>

struct state {
    const char *text;
    int matched;
};

static void on_open(struct wsk_conn *conn, const struct wsk_open_event *ev, void *user_data)
{
    struct state *st = user_data;
    (void)ev;
    int rv = wsk_conn_send(conn, WSK_OP_TEXT, st->text, strlen(st->text));
    if (rv < 0) {
        fprintf(stderr, "send: %s\n", wsk_strerror(rv));
        wsk_conn_close(conn, 1011, "send failed");
    }
}

static void on_message(struct wsk_conn *conn, const struct wsk_message *msg, void *user_data)
{
    struct state *st = user_data;
    st->matched = msg->opcode == WSK_OP_TEXT && msg->len == strlen(st->text) &&
                  memcmp(msg->data, st->text, msg->len) == 0;
    printf("%.*s\n", (int)msg->len, (const char *)msg->data);
    wsk_conn_close(conn, 1000, "done");
}

static void on_close(struct wsk_conn *conn, const struct wsk_close_event *ev, void *user_data)
{
    (void)conn;
    (void)user_data;
    if (ev->error)
        fprintf(stderr, "connection ended: %s%s%s\n", wsk_strerror(ev->error),
                ev->detail[0] ? ": " : "", ev->detail);
}

int main(int argc, char **argv)
{
    struct state st = {argc > 2 ? argv[2] : "hello from libwsk " WSK_VERSION_STRING, 0};
    struct wsk_client_config cfg;
    struct wsk_loop *loop;
    struct wsk_conn *conn;
    int rv;

    if (argc < 2) {
        fprintf(stderr, "usage: echo_client ws://HOST:PORT/ [MESSAGE]\n");
        return 2;
    }
    if ((rv = wsk_loop_new(&loop, NULL)) < 0) {
        fprintf(stderr, "loop: %s\n", wsk_strerror(rv));
        return 1;
    }
    wsk_client_config_init(&cfg);
    cfg.handlers.on_open = on_open;
    cfg.handlers.on_message = on_message;
    cfg.handlers.on_close = on_close;
    cfg.user_data = &st;
    if ((rv = wsk_client_connect(&conn, loop, argv[1], &cfg)) < 0) {
        fprintf(stderr, "%s: %s\n", argv[1], wsk_strerror(rv));
    } else {
        /* Returns once the connection has ended: nothing is left on the loop. */
        wsk_loop_run(loop);
    }
    wsk_loop_free(loop);
    return st.matched ? 0 : 1;
}
