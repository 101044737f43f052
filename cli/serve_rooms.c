/* wsk serve, broadcast and echo modes: the WebSocket side.
 *
 * Broadcast mode has rooms. The path of a client's upgrade request, as sent
 * (percent-escapes not decoded, no query), is its room: a topic of the
 * library (wsk/topic.h) that the connection joins on open. A message goes
 * to every client of the sender's room, the sender included (the chat page
 * shows its own messages that way). "/" is the lobby: the built-in page's
 * default, and the only room of raw TCP and UDP peers (serve_raw.c), which
 * get the lobby's messages and whose lines go to it.
 *
 * A backend publishes into a room over HTTP: POST /publish/ROOM with the
 * message as the body (up to --max-message; text when it is UTF-8, else
 * binary) goes to the clients of /ROOM ("/publish" alone and "/publish/" to
 * the lobby), answered 200 with the number of WebSocket clients it was
 * queued to. Who may publish: without --publish-token, requests from a
 * loopback address only; with it, only requests that carry
 * "Authorization: Bearer TOKEN", from anywhere, loopback included, because
 * behind a reverse proxy on the same machine every request comes from
 * loopback. Refused: 403; a method but POST: 405; a body too long: 413 (the
 * library's, from max_http_body).
 *
 * With --threads (serve_threads.c) and --redis (serve_redis.c) every message
 * published in a room here also goes to the room's clients on the other
 * threads and processes, and theirs come here (serve_room_others()).
 *
 * Echo mode sends each message back to its sender. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "serve.h"

#define PUBLISH_PREFIX "/publish"

/* Per connection: the room (broadcast mode), the --rate-limit bucket, and
 * for -v the peer's address as on_open knew it. */
struct conn_info {
    struct serve_rate rate;
    bool is_over_rate; /* closed for it: what follows is not relayed */
    bool is_joined;    /* subscribed to the room: --redis counts it */
    size_t room_len;
    char *room;  /* NUL-terminated too, for the log */
    char peer[]; /* "" without -v; then the room */
};

void serve_ws_open(struct serve *s, struct wsk_conn *conn, const struct wsk_open_event *ev)
{
    bool is_verbose = s->opt.verbosity >= CLI_VERBOSE;
    if (!is_verbose && s->opt.mode != SERVE_BROADCAST && !s->opt.rate_limit)
        return; /* echo: nothing to keep, no getpeername() per connection */
    const char *peer = is_verbose ? wsk_conn_peer(conn) : "";
    size_t peer_len = strlen(peer);
    if (is_verbose)
        cli_verbose("%s: open %.*s%s%.*s%s%.*s", peer, (int)ev->path.len, ev->path.ptr,
                    ev->subprotocol.len ? ", subprotocol " : "", (int)ev->subprotocol.len,
                    ev->subprotocol.ptr, ev->extensions.len ? ", extensions " : "",
                    (int)ev->extensions.len, ev->extensions.ptr);
    struct conn_info *info = malloc(sizeof *info + peer_len + 1 + ev->path.len + 1);
    if (!info) {
        if (s->opt.mode == SERVE_BROADCAST) {
            cli_error("%s: out of memory; closing", wsk_conn_peer(conn));
            wsk_conn_close(conn, WSK_CLOSE_INTERNAL, "out of memory");
        }
        return;
    }
    memset(&info->rate, 0, sizeof info->rate);
    info->is_over_rate = false;
    info->is_joined = false;
    memcpy(info->peer, peer, peer_len + 1);
    info->room = info->peer + peer_len + 1;
    info->room_len = ev->path.len;
    memcpy(info->room, ev->path.ptr, ev->path.len);
    info->room[ev->path.len] = '\0';
    wsk_conn_set_data(conn, info);
    if (s->opt.mode != SERVE_BROADCAST)
        return;
    int rv = wsk_conn_subscribe(conn, info->room, info->room_len);
    if (rv < 0) {
        cli_info("%s: cannot join room %.60s%s: %s; closing", wsk_conn_peer(conn), info->room,
                 info->room_len > 60 ? "..." : "",
                 rv == -EINVAL ? "name over 256 bytes" : wsk_strerror(rv));
        wsk_conn_close(conn, WSK_CLOSE_POLICY, rv == -EINVAL ? "room name too long" : NULL);
        return;
    }
    if (rv == 1 && serve_redis_join(s, info->room, info->room_len) < 0) {
        cli_info("%s: out of memory joining room %.60s across processes; closing",
                 wsk_conn_peer(conn), info->room);
        wsk_conn_close(conn, WSK_CLOSE_INTERNAL, "out of memory");
        return;
    }
    info->is_joined = rv == 1;
}

static bool is_lobby(const char *room, size_t len)
{
    return len == 1 && room[0] == '/';
}

/* --rate-limit: false (and the connection closing) when conn sent too much. */
static bool within_rate(struct serve *s, struct wsk_conn *conn, struct conn_info *info)
{
    if (!info)
        return true;
    if (info->is_over_rate)
        return false;
    if (serve_rate_ok(&info->rate, wsk_loop_now(s->loop), s->opt.rate_limit))
        return true;
    info->is_over_rate = true;
    s->rate_closed++;
    cli_info("%s: over --rate-limit %u/s: closing with 1008 (%llu so far)", wsk_conn_peer(conn),
             s->opt.rate_limit, (unsigned long long)s->rate_closed);
    wsk_conn_close(conn, WSK_CLOSE_POLICY, "rate limit exceeded");
    return false;
}

void serve_ws_message(struct serve *s, struct wsk_conn *conn, const struct wsk_message *msg)
{
    if (s->opt.rate_limit && !within_rate(s, conn, wsk_conn_get_data(conn)))
        return;
    if (s->opt.mode == SERVE_ECHO) {
        serve_echo(conn, msg);
        return;
    }
    struct conn_info *info = wsk_conn_get_data(conn);
    if (!info)
        return;
    int rv =
        wsk_server_publish(s->srv, info->room, info->room_len, msg->opcode, msg->data, msg->len);
    if (rv < 0)
        cli_log(CLI_NORMAL, "broadcast failed: %s", wsk_strerror(rv));
    serve_room_others(s, info->room, info->room_len, msg->opcode, msg->data, msg->len);
    if (is_lobby(info->room, info->room_len))
        serve_room_from_ws(s, msg->data, msg->len);
}

void serve_ws_close(struct serve *s, struct wsk_conn *conn, const struct wsk_close_event *ev)
{
    /* Plain echo keeps nothing per connection: nothing to look up. */
    if (s->opt.mode == SERVE_ECHO && !s->opt.rate_limit && s->opt.verbosity < CLI_VERBOSE)
        return;
    struct conn_info *info = wsk_conn_get_data(conn);
    if (s->opt.verbosity >= CLI_VERBOSE && ev->was_open) {
        cli_verbose("%s: closed %s: %u%s%.*s%s%s", info ? info->peer : wsk_conn_peer(conn),
                    info ? info->room : "?", ev->code, ev->reason.len ? " " : "",
                    (int)ev->reason.len, ev->reason.ptr, ev->error ? ", " : "",
                    ev->error ? wsk_strerror(ev->error) : "");
    } else if (s->opt.verbosity >= CLI_DEBUG && ev->error) {
        cli_log(CLI_DEBUG, "%s: handshake failed: %s", wsk_conn_peer(conn),
                wsk_strerror(ev->error));
    }
    if (info && info->is_joined)
        serve_redis_leave(s, info->room, info->room_len);
    free(info);
    wsk_conn_set_data(conn, NULL);
}

/* ---- POST /publish/ROOM ----------------------------------------------------- */

static bool is_loopback(const struct sockaddr *sa, socklen_t len)
{
    if (!sa)
        return false;
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        const uint8_t *a = in6->sin6_addr.s6_addr;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
            return true;
        return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && a[12] == 127;
    }
    return false;
}

static void answer(struct wsk_conn *conn, int status, const char *text, const char *headers)
{
    int rv =
        wsk_conn_http_reply(conn, status, "text/plain; charset=utf-8", text, strlen(text), headers);
    if (rv < 0 && rv != -ENOMEM)
        cli_error("cannot answer an HTTP request: %s", wsk_strerror(rv));
}

void serve_http_request(struct wsk_conn *conn, const struct wsk_http_request_event *req,
                        void *user_data)
{
    struct serve *s = user_data;
    size_t plen = sizeof PUBLISH_PREFIX - 1;
    if (serve_healthz(s, conn, req) || s->opt.mode != SERVE_BROADCAST)
        return;
    if (req->path.len < plen || memcmp(req->path.ptr, PUBLISH_PREFIX, plen) != 0 ||
        (req->path.len > plen && req->path.ptr[plen] != '/'))
        return; /* not ours: static files, the chat page */
    const char *room = req->path.ptr + plen;
    size_t room_len = req->path.len - plen;
    if (!room_len) {
        room = "/";
        room_len = 1;
    }
    const char *peer = wsk_conn_peer(conn);
    if (req->method.len != 4 || memcmp(req->method.ptr, "POST", 4) != 0) {
        answer(conn, 405, "405 Method Not Allowed: POST the message\n", "Allow: POST\r\n");
        return;
    }
    if (s->opt.publish_token
            ? !serve_has_bearer(req->headers, req->num_headers, s->opt.publish_token)
            : !is_loopback(req->peer, req->peer_len)) {
        cli_info("%s: POST %.*s refused (403): %s", peer, (int)req->path.len, req->path.ptr,
                 s->opt.publish_token ? "no valid Authorization: Bearer token"
                                      : "not from loopback (see --publish-token)");
        answer(conn, 403, "403 Forbidden\n", NULL);
        return;
    }
    if (room_len > WSK_TOPIC_MAX) {
        answer(conn, 414, "414 URI Too Long: a room name has at most 256 bytes\n", NULL);
        return;
    }
    enum wsk_opcode op = wsk_utf8_valid(req->body, req->body_len) ? WSK_OP_TEXT : WSK_OP_BINARY;
    int n = wsk_server_publish(s->srv, room, room_len, op, req->body, req->body_len);
    if (n < 0) {
        cli_error("%s: POST %.*s: %s", peer, (int)req->path.len, req->path.ptr, wsk_strerror(n));
        answer(conn, 500, "500 Internal Server Error\n", NULL);
        return;
    }
    serve_room_others(s, room, room_len, op, req->body, req->body_len);
    if (is_lobby(room, room_len))
        serve_room_from_ws(s, req->body, req->body_len);
    cli_verbose("%s: POST %.*s: %zu bytes to %d clients of %.*s", peer, (int)req->path.len,
                req->path.ptr, req->body_len, n, (int)room_len, room);
    char text[32];
    snprintf(text, sizeof text, "%d\n", n);
    answer(conn, 200, text, NULL);
}
