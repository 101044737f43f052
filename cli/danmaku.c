/* wsk danmaku: a Douyu live-chat ("barrage", danmaku) client.
 *
 * One link at a time, over raw TCP (tcp://, the classic client's port 8601)
 * or binary WebSocket messages (ws://, wss://, the web client's way); both
 * carry the same packets (wsk/danmaku.h), fed to one decoder. A link goes
 * through these states:
 *
 *   CONNECTING --open--> LOGIN --loginres--> JOINED --(heartbeat timer)--+
 *       |      loginreq sent |   joingroup sent     mrkl every N s <-----+
 *       |                    | no loginres in time       |
 *       +--------------------+---- failure, bad packet --+--> CLOSING --> closed
 *
 * When a link ends for any reason but ours to stop, the next one starts
 * after a delay that doubles from 1 s to 30 s and goes back to 1 s after a
 * login succeeds. SIGINT or SIGTERM sends logout on a logged-in link, closes
 * it and exits 0; a second one exits at once.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "danmaku_format.h"
#include "wsk.h"

#define DEFAULT_SERVER          "wss://danmuproxy.douyu.com:8506"
#define DEFAULT_HEARTBEAT_MS    40000u /* the server drops a client silent for 45 s */
#define DEFAULT_LOGIN_TIMEOUT   10000u
#define DEFAULT_CONNECT_TIMEOUT 10000u
#define CLOSE_TIMEOUT_MS        2000u
#define BACKOFF_MIN_MS          1000u
#define BACKOFF_MAX_MS          30000u
#define MIN_MAX_PACKET          64u
#define MAX_MAX_PACKET          (64u * 1024 * 1024) /* --json needs 6 times that */
#define MAX_ROOM_DIGITS         20
#define GROUP_ID                "-9999" /* every client joins the "all messages" group */
#define SEND_CAP                256     /* our packets: a type, a room id, a group */

static const char danmaku_usage[] =
    "usage: wsk danmaku ROOM [options]\n"
    "\n"
    "Joins the live chat (\"danmaku\") of Douyu room ROOM (its number, digits only)\n"
    "and prints what is said: each chat message as one line 'NICK: TEXT', users\n"
    "entering as '* NICK entered', gifts as '* NICK sent gift GFID x COUNT'. Other\n"
    "kinds of message are shown with -vv only, or with --json. Control characters\n"
    "in names and texts are shown as ^X; bytes that are not UTF-8 as U+FFFD.\n"
    "\n"
    "It logs in (loginreq), joins the room's group (joingroup, gid -9999) once the\n"
    "server answers (loginres), and sends a heartbeat (mrkl) every --heartbeat\n"
    "seconds. When the link drops, the login goes unanswered or the server sends\n"
    "something that is not a valid packet, it connects and logs in again after\n"
    "1 s, then 2, 4, ... up to 30 s between attempts; a successful login resets\n"
    "the delay to 1 s. Ctrl-C (SIGINT) or SIGTERM logs out and exits.\n"
    "\n"
    "Example:\n"
    "  wsk danmaku 9999\n"
    "  wsk danmaku 9999 --server tcp://openbarrage.douyutv.com:8601 --json\n"
    "\n"
    "options:\n"
    "  --server URL            the barrage server (default " DEFAULT_SERVER "):\n"
    "                          tcp://HOST:PORT for raw TCP, or ws://HOST[:PORT][/PATH]\n"
    "                          or wss://... for binary WebSocket messages; Douyu's\n"
    "                          web client uses ports 8501 to 8506\n"
    "  --json                  print every packet from the server, loginres and\n"
    "                          unknown kinds included, as one JSON object per line:\n"
    "                          the STT fields as string members, nested STT left\n"
    "                          as a string (instead of the readable lines)\n"
    "  --heartbeat SECONDS     time between heartbeats (default 40; the server drops\n"
    "                          a client silent for 45)\n"
    "  --login-timeout SECONDS time allowed for the server's loginres (default 10)\n"
    "  --connect-timeout SECONDS\n"
    "                          time allowed for the name lookup, the connection and,\n"
    "                          for ws:// and wss://, TLS and the handshake (default 10)\n"
    "  --max-packet BYTES      largest packet accepted from the server (default 1M,\n"
    "                          at most 64M); a bigger one counts as a protocol\n"
    "                          error. Over WebSocket it also bounds each message\n"
    "  --origin ORIGIN         ws://, wss://: send this Origin header, e.g.\n"
    "                          https://www.douyu.com (default: none)\n"
    "  --cacert FILE           wss://: trust only the CA certificates in FILE (PEM)\n"
    "  --insecure              wss://: do not verify the server's certificate (tests)\n"
    "  -v, --verbose           log connecting, login, heartbeats and closing on\n"
    "                          stderr; twice: every packet's type, and library debug\n"
    "                          messages\n"
    "  -q, --quiet             print only errors (and the chat)\n"
    "  -h, --help              show this help\n"
    "\n"
    "BYTES take an optional k or m suffix (1024-based): 64k, 16M. SECONDS may have a\n"
    "fraction: 0.5.\n"
    "\n"
    "Exit status: 0 after SIGINT or SIGTERM; 1 when it cannot go on (stdout closed,\n"
    "a --cacert file that cannot be used); 2 for a bad command line. Links that\n"
    "fail are retried for ever, each failure reported in one line on stderr.\n";

struct danmaku_options {
    const char *room;
    const char *server;
    bool is_json;
    uint32_t heartbeat_ms;
    uint32_t login_timeout_ms;
    uint32_t connect_timeout_ms;
    uint64_t max_packet;
    const char *origin;
    const char *ca_file;
    bool is_insecure;
    int verbosity;
};

enum link_state {
    LINK_NONE,
    LINK_CONNECTING,
    LINK_LOGIN,   /* loginreq sent, waiting for loginres */
    LINK_JOINED,  /* joingroup sent, heartbeats going */
    LINK_CLOSING, /* we are closing it */
};

struct danmaku {
    struct danmaku_options opt;
    struct wsk_url url; /* slices of opt.server */
    char *tcp_host;     /* tcp://: the host, NUL-terminated */
    struct wsk_loop *loop;
    /* The link: one of these, or neither between links. */
    struct wsk_tcp *tcp;
    struct wsk_conn *conn;
    enum link_state state;
    unsigned link_no;
    struct wsk_danmaku_decoder decoder;
    uint8_t *packet_buf; /* the decoder's, max_packet bytes */
    char *scratch;       /* unescaped values, max_packet bytes */
    char *json;          /* --json: WSK_STT_JSON_MAX(max_packet) bytes */
    size_t json_cap;
    struct cli_buf line;
    struct wsk_timer heartbeat;
    struct wsk_timer login_timer;
    struct wsk_timer retry_timer;
    uint32_t backoff_ms;
    uint64_t heartbeats;
    bool has_reason; /* we closed the link, and reason says why */
    char reason[256];
    bool is_stopping; /* a signal, or a fatal error: no new link */
    int status;
    char first_error[256]; /* the library's first error message */
};

/* ---- output ------------------------------------------------------------- */

/* Writes the line in d->line with a newline and flushes, so a pipe sees each
 * message as it comes. A closed stdout ends the program. */
static void put_line(struct danmaku *d);

/* Seconds for messages: "40", "0.2". */
static const char *seconds_str(uint32_t ms, char buf[24])
{
    if (ms % 1000 == 0)
        snprintf(buf, 24, "%u", ms / 1000);
    else if (ms % 100 == 0)
        snprintf(buf, 24, "%u.%u", ms / 1000, ms % 1000 / 100);
    else
        snprintf(buf, 24, "%u.%03u", ms / 1000, ms % 1000);
    return buf;
}

/* ---- the link ------------------------------------------------------------- */

static bool link_is_open(const struct danmaku *d)
{
    return d->state == LINK_LOGIN || d->state == LINK_JOINED;
}

static void stop_link_timers(struct danmaku *d)
{
    wsk_timer_stop(d->loop, &d->heartbeat);
    wsk_timer_stop(d->loop, &d->login_timer);
}

/* Closes the link, remembering why for the line the close will log. The
 * link's on_close may run inside this call. */
static void close_link(struct danmaku *d, unsigned ws_code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void close_link(struct danmaku *d, unsigned ws_code, const char *fmt, ...)
{
    va_list ap;

    if (d->state == LINK_NONE || d->state == LINK_CLOSING)
        return;
    va_start(ap, fmt);
    vsnprintf(d->reason, sizeof d->reason, fmt, ap);
    va_end(ap);
    d->has_reason = true;
    d->state = LINK_CLOSING;
    stop_link_timers(d);
    if (d->tcp)
        wsk_tcp_close(d->tcp);
    else if (d->conn)
        wsk_conn_close(d->conn, ws_code, NULL);
}

/* Sends one client packet with body "type@=TYPE/" and the given pairs
 * (key, value, key, value, ..., NULL). */
static void send_packet(struct danmaku *d, const char *type, ...)
{
    uint8_t out[SEND_CAP];
    struct wsk_stt_writer w;
    const char *key;
    va_list ap;
    int rv;

    wsk_stt_writer_init(&w, (char *)out + WSK_DANMAKU_HEADER_LEN,
                        sizeof out - WSK_DANMAKU_HEADER_LEN - 1);
    wsk_stt_write(&w, "type", type, strlen(type));
    va_start(ap, type);
    while ((key = va_arg(ap, const char *)) != NULL) {
        const char *value = va_arg(ap, const char *);
        wsk_stt_write(&w, key, value, strlen(value));
    }
    va_end(ap);
    int64_t body_len = wsk_stt_writer_finish(&w);
    int64_t n = body_len < 0 ? body_len
                             : wsk_danmaku_encode(out, sizeof out, WSK_DANMAKU_TYPE_CLIENT,
                                                  (const char *)out + WSK_DANMAKU_HEADER_LEN,
                                                  (size_t)body_len);
    if (n < 0) { /* the room id is at most 20 digits: cannot happen */
        close_link(d, WSK_CLOSE_INTERNAL, "cannot encode %s: %s", type, wsk_strerror((int)n));
        return;
    }
    if (d->tcp)
        rv = wsk_tcp_send(d->tcp, out, (size_t)n);
    else
        rv = wsk_conn_send(d->conn, WSK_OP_BINARY, out, (size_t)n);
    if (rv == WSK_EBACKPRESSURE)
        close_link(d, WSK_CLOSE_POLICY, "the server does not read what is sent (%s)",
                   wsk_strerror(rv));
    else if (rv < 0 && rv != WSK_ESTATE) /* WSK_ESTATE: ending, on_close follows */
        close_link(d, WSK_CLOSE_INTERNAL, "cannot send %s: %s", type, wsk_strerror(rv));
    else if (rv == 0)
        cli_log(CLI_DEBUG, "sent %s", type);
}

static void on_link_open(struct danmaku *d)
{
    if (d->is_stopping) {
        close_link(d, WSK_CLOSE_NORMAL, "stopping");
        return;
    }
    cli_verbose("connected to %s; logging in to room %s", d->opt.server, d->opt.room);
    d->state = LINK_LOGIN;
    send_packet(d, "loginreq", "roomid", d->opt.room, (const char *)NULL);
    if (d->state == LINK_LOGIN &&
        wsk_timer_start(d->loop, &d->login_timer, d->opt.login_timeout_ms, 0) < 0)
        close_link(d, WSK_CLOSE_INTERNAL, "out of memory");
}

static void on_loginres(struct danmaku *d)
{
    char secs[24];

    if (d->state != LINK_LOGIN)
        return; /* a second loginres changes nothing */
    wsk_timer_stop(d->loop, &d->login_timer);
    d->backoff_ms = BACKOFF_MIN_MS;
    d->state = LINK_JOINED;
    d->heartbeats = 0;
    send_packet(d, "joingroup", "rid", d->opt.room, "gid", GROUP_ID, (const char *)NULL);
    if (d->state != LINK_JOINED)
        return;
    cli_verbose("logged in; joined room %s, group %s; heartbeat every %s s", d->opt.room, GROUP_ID,
                seconds_str(d->opt.heartbeat_ms, secs));
    if (wsk_timer_start(d->loop, &d->heartbeat, d->opt.heartbeat_ms, d->opt.heartbeat_ms) < 0)
        close_link(d, WSK_CLOSE_INTERNAL, "out of memory");
}

static void on_packet(struct danmaku *d, const struct wsk_danmaku_packet *pkt)
{
    if (cli_log_verbosity() >= CLI_DEBUG) {
        struct wsk_slice type = {"?", 1};
        wsk_stt_get(pkt->body, pkt->body_len, "type", &type);
        cli_log(CLI_DEBUG, "packet %.*s (%zu bytes)", (int)type.len, type.ptr, pkt->body_len);
    }
    if (d->opt.is_json) {
        int64_t n = wsk_stt_to_json(pkt->body, pkt->body_len, d->json, d->json_cap);
        if (n < 0)
            cli_error("a packet is not an STT map (%s); not printed", wsk_strerror((int)n));
        else if (cli_buf_append(&d->line, d->json, (size_t)n) < 0)
            cli_error("out of memory");
        else
            put_line(d);
    } else {
        int rv = danmaku_format(&d->line, pkt, d->scratch, d->opt.max_packet);
        if (rv == 0)
            put_line(d);
        else if (rv < 0)
            cli_error("out of memory");
    }
    d->line.len = 0;
    if (danmaku_field_is(pkt, "type", "loginres")) {
        on_loginres(d);
    } else if (danmaku_field_is(pkt, "type", "error")) {
        struct wsk_slice code = {"?", 1};
        wsk_stt_get(pkt->body, pkt->body_len, "code", &code);
        close_link(d, WSK_CLOSE_NORMAL, "the server sent error %.*s",
                   (int)(code.len > 20 ? 20 : code.len), code.ptr);
    }
}

/* Bytes from the link, as they come: over TCP a stream, over WebSocket each
 * message's payload (one packet, several or a piece; the decoder does not
 * care). */
static void on_link_bytes(struct danmaku *d, const uint8_t *data, size_t len)
{
    while (len > 0 && link_is_open(d)) {
        struct wsk_danmaku_packet pkt;
        bool has_packet;
        int64_t n = wsk_danmaku_decode(&d->decoder, data, len, &pkt, &has_packet);
        if (n < 0) {
            close_link(d, WSK_CLOSE_POLICY, "protocol error: %s",
                       wsk_danmaku_decoder_reason(&d->decoder));
            return;
        }
        data += n;
        len -= (size_t)n;
        if (has_packet)
            on_packet(d, &pkt);
    }
}

/* The link has ended: say why, then start the next one after the backoff. */
static void on_link_closed(struct danmaku *d, const char *cause)
{
    char secs[24];

    d->tcp = NULL;
    d->conn = NULL;
    d->state = LINK_NONE;
    stop_link_timers(d);
    if (d->is_stopping) {
        cli_verbose("link closed");
        return;
    }
    cli_info("%s; reconnecting in %s s", cause, seconds_str(d->backoff_ms, secs));
    if (wsk_timer_start(d->loop, &d->retry_timer, d->backoff_ms, 0) < 0) {
        cli_error("out of memory");
        d->status = CLI_EXIT_FAILURE;
        d->is_stopping = true;
        return;
    }
    d->backoff_ms = d->backoff_ms >= BACKOFF_MAX_MS / 2 ? BACKOFF_MAX_MS : d->backoff_ms * 2;
}

/* The cause of an end we did not ask for. */
static void lost_cause(struct danmaku *d, bool was_open, int error, char *out, size_t cap)
{
    const char *mid = wsk_danmaku_decoder_is_idle(&d->decoder) ? "" : " in the middle of a packet";

    if (d->has_reason)
        snprintf(out, cap, "%s", d->reason);
    else if (!was_open)
        snprintf(out, cap, "cannot connect to %s: %s", d->opt.server,
                 wsk_strerror(error ? error : WSK_ECLOSED));
    else if (error == WSK_ETOOBIG)
        snprintf(out, cap, "protocol error: a WebSocket message larger than the limit");
    else if (error == WSK_EPROTO || error == WSK_EUTF8 || error == WSK_EDEFLATE)
        snprintf(out, cap, "WebSocket protocol error: %s", wsk_strerror(error));
    else if (error == 0)
        snprintf(out, cap, "the server closed the link%s", mid);
    else
        snprintf(out, cap, "link lost%s: %s", mid, wsk_strerror(error));
}

/* ---- TCP ------------------------------------------------------------------ */

static void on_tcp_open(struct wsk_tcp *t, void *user_data)
{
    (void)t;
    on_link_open(user_data);
}

static void on_tcp_data(struct wsk_tcp *t, const uint8_t *data, size_t len, void *user_data)
{
    (void)t;
    on_link_bytes(user_data, data, len);
}

static void on_tcp_close(struct wsk_tcp *t, int error, void *user_data)
{
    struct danmaku *d = user_data;
    char cause[512];

    (void)t;
    lost_cause(d, d->state != LINK_CONNECTING, error, cause, sizeof cause);
    on_link_closed(d, cause);
}

/* ---- WebSocket ------------------------------------------------------------ */

static void on_ws_open(struct wsk_conn *conn, const struct wsk_open_event *ev, void *user_data)
{
    (void)conn;
    (void)ev;
    on_link_open(user_data);
}

static void on_ws_message(struct wsk_conn *conn, const struct wsk_message *msg, void *user_data)
{
    (void)conn;
    on_link_bytes(user_data, msg->data, msg->len);
}

static void on_ws_close(struct wsk_conn *conn, const struct wsk_close_event *ev, void *user_data)
{
    struct danmaku *d = user_data;
    char cause[512];

    (void)conn;
    if (!d->has_reason && ev->http_status)
        snprintf(cause, sizeof cause, "%s rejected the WebSocket handshake: HTTP %d", d->opt.server,
                 ev->http_status);
    else if (!d->has_reason && !ev->was_open && *ev->detail)
        snprintf(cause, sizeof cause, "cannot connect to %s: %s: %s", d->opt.server,
                 wsk_strerror(ev->error ? ev->error : WSK_ECLOSED), ev->detail);
    else if (!d->has_reason && ev->was_open && ev->error == 0)
        snprintf(cause, sizeof cause, "the server closed the link (%u%s%.*s)", ev->code,
                 ev->reason.len ? " " : "", (int)(ev->reason.len > 100 ? 100 : ev->reason.len),
                 ev->reason.ptr);
    else
        lost_cause(d, ev->was_open, ev->error, cause, sizeof cause);
    on_link_closed(d, cause);
}

/* Library diagnostics: only with -v, since every failure is reported in one
 * line from on_close; the first error is kept for the failure that has no
 * on_close (an unusable --cacert file). */
static void log_library(int level, const char *msg, void *user_data)
{
    struct danmaku *d = user_data;

    if (level == 0 && !d->first_error[0])
        snprintf(d->first_error, sizeof d->first_error, "%s", msg);
    if (cli_log_verbosity() >= CLI_VERBOSE)
        cli_log_library(level, msg, NULL);
}

/* ---- running ------------------------------------------------------------- */

static void stop(struct danmaku *d, int status)
{
    if (d->is_stopping)
        return;
    d->is_stopping = true;
    d->status = status;
    wsk_timer_stop(d->loop, &d->retry_timer);
    if (d->state == LINK_JOINED)
        send_packet(d, "logout", (const char *)NULL);
    if (d->state == LINK_CONNECTING) {
        /* Nothing was said yet: end at once. */
        d->state = LINK_CLOSING;
        if (d->tcp)
            wsk_tcp_close(d->tcp);
        else if (d->conn)
            wsk_conn_close(d->conn, WSK_CLOSE_NORMAL, NULL);
    } else {
        close_link(d, WSK_CLOSE_NORMAL, "stopping");
    }
}

static void put_line(struct danmaku *d)
{
    if (d->is_stopping && d->status != CLI_EXIT_OK)
        return;
    if (cli_buf_append(&d->line, "\n", 1) < 0) {
        cli_error("out of memory");
        return;
    }
    if (fwrite(d->line.ptr, 1, d->line.len, stdout) != d->line.len || fflush(stdout) == EOF) {
        int err = errno;
        /* A reader that went away (| head) is not worth a message. */
        if (err != EPIPE)
            cli_error("cannot write to stdout: %s", wsk_strerror(-err));
        stop(d, CLI_EXIT_FAILURE);
    }
}

static void start_link(struct danmaku *d)
{
    int rv;

    d->link_no++;
    d->has_reason = false;
    d->state = LINK_CONNECTING;
    wsk_danmaku_decoder_init(&d->decoder,
                             &(struct wsk_danmaku_config){.max_packet = d->opt.max_packet,
                                                          .type = WSK_DANMAKU_TYPE_SERVER},
                             d->packet_buf, d->opt.max_packet);
    cli_verbose("connecting to %s (link %u)", d->opt.server, d->link_no);
    if (d->url.scheme == WSK_URL_TCP) {
        struct wsk_tcp_config cfg;
        wsk_tcp_config_init(&cfg);
        cfg.handlers.on_open = on_tcp_open;
        cfg.handlers.on_data = on_tcp_data;
        cfg.handlers.on_close = on_tcp_close;
        cfg.user_data = d;
        cfg.log = log_library;
        cfg.connect_timeout_ms = d->opt.connect_timeout_ms;
        cfg.close_timeout_ms = CLOSE_TIMEOUT_MS;
        rv = wsk_tcp_connect(&d->tcp, d->loop, d->tcp_host, d->url.port, &cfg);
    } else {
        struct wsk_client_config cfg;
        wsk_client_config_init(&cfg);
        cfg.handlers.on_open = on_ws_open;
        cfg.handlers.on_message = on_ws_message;
        cfg.handlers.on_close = on_ws_close;
        cfg.user_data = d;
        cfg.log = log_library;
        cfg.limits.max_message = d->opt.max_packet;
        cfg.limits.close_timeout_ms = CLOSE_TIMEOUT_MS;
        cfg.connect_timeout_ms = d->opt.connect_timeout_ms;
        cfg.origin = d->opt.origin;
        cfg.ca_file = d->opt.ca_file;
        cfg.insecure = d->opt.is_insecure;
        rv = wsk_client_connect(&d->conn, d->loop, d->opt.server, &cfg);
    }
    if (rv < 0) {
        /* Known at once, with no on_close: the TLS setup (--cacert) or
         * memory. Retrying would fail the same way. */
        d->state = LINK_NONE;
        d->tcp = NULL;
        d->conn = NULL;
        if (d->first_error[0] && cli_log_verbosity() < CLI_VERBOSE)
            cli_error("%s", d->first_error);
        else if (!d->first_error[0])
            cli_error("cannot connect to %s: %s", d->opt.server, wsk_strerror(rv));
        stop(d, CLI_EXIT_FAILURE);
    }
}

static void on_retry(struct wsk_loop *loop, struct wsk_timer *t)
{
    (void)loop;
    start_link(t->data);
}

static void on_heartbeat(struct wsk_loop *loop, struct wsk_timer *t)
{
    struct danmaku *d = t->data;

    (void)loop;
    if (d->state != LINK_JOINED)
        return;
    d->heartbeats++;
    cli_log(CLI_VERBOSE, "heartbeat %llu", (unsigned long long)d->heartbeats);
    send_packet(d, "mrkl", (const char *)NULL);
}

static void on_login_timeout(struct wsk_loop *loop, struct wsk_timer *t)
{
    struct danmaku *d = t->data;
    char secs[24];

    (void)loop;
    close_link(d, WSK_CLOSE_NORMAL, "no loginres from the server within %s s",
               seconds_str(d->opt.login_timeout_ms, secs));
}

static void on_signal(struct wsk_loop *loop, int signo, void *data)
{
    struct danmaku *d = data;

    (void)loop;
    if (d->is_stopping)
        _exit(128 + signo); /* the user does not want to wait for the close */
    cli_verbose("%s: logging out", signo == SIGINT ? "interrupted" : "terminated");
    stop(d, CLI_EXIT_OK);
}

/* ---- options ------------------------------------------------------------- */

enum {
    OPT_SERVER = 256,
    OPT_JSON,
    OPT_HEARTBEAT,
    OPT_LOGIN_TIMEOUT,
    OPT_CONNECT_TIMEOUT,
    OPT_MAX_PACKET,
    OPT_ORIGIN,
    OPT_CACERT,
    OPT_INSECURE,
};

static const struct option danmaku_longopts[] = {
    {"server", required_argument, NULL, OPT_SERVER},
    {"json", no_argument, NULL, OPT_JSON},
    {"heartbeat", required_argument, NULL, OPT_HEARTBEAT},
    {"login-timeout", required_argument, NULL, OPT_LOGIN_TIMEOUT},
    {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
    {"max-packet", required_argument, NULL, OPT_MAX_PACKET},
    {"origin", required_argument, NULL, OPT_ORIGIN},
    {"cacert", required_argument, NULL, OPT_CACERT},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    CLI_COMMON_LONGOPTS,
};

static int parse_positive_seconds(const char *name, const char *s, uint32_t *out_ms)
{
    if (cli_parse_seconds(s, out_ms) < 0 || *out_ms == 0)
        return cli_usage_error("%s '%s': expected positive seconds like 40 or 0.5", name, s);
    return 0;
}

/* Checks --server: a URL of a scheme the client speaks. */
static int check_server(struct danmaku *d)
{
    const char *s = d->opt.server;
    struct wsk_url *u = &d->url;

    if (wsk_url_parse(s, strlen(s), u) < 0)
        return cli_usage_error("--server '%s': %s (at byte %zu)", s, u->error, u->error_at);
    switch (u->scheme) {
    case WSK_URL_TCP:
        if (u->path.len > 1 || u->has_query || u->has_fragment)
            return cli_usage_error("--server '%s': a tcp:// server is only HOST:PORT", s);
        d->tcp_host = strndup(u->host.ptr, u->host.len);
        if (!d->tcp_host)
            return cli_usage_error("out of memory");
        return 0;
    case WSK_URL_WS:
    case WSK_URL_WSS:
        if (u->has_fragment)
            return cli_usage_error("--server '%s': a fragment (#...) means nothing to a "
                                   "WebSocket URL",
                                   s);
        return 0;
    default:
        return cli_usage_error("--server '%s': expected tcp://HOST:PORT, ws://HOST[:PORT][/PATH] "
                               "or wss://HOST[:PORT][/PATH]",
                               s);
    }
}

/* Returns 0 to run, -1 after --help, or an exit status (> 0) for an error. */
static int parse_options(struct danmaku *d, int argc, char **argv)
{
    struct danmaku_options *opt = &d->opt;
    int c, rv;

    opt->server = DEFAULT_SERVER;
    opt->heartbeat_ms = DEFAULT_HEARTBEAT_MS;
    opt->login_timeout_ms = DEFAULT_LOGIN_TIMEOUT;
    opt->connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT;
    opt->max_packet = WSK_DANMAKU_DEFAULT_MAX_PACKET;
    opt->verbosity = CLI_NORMAL;

    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":vqh", danmaku_longopts, NULL)) != -1) {
        switch (c) {
        case OPT_SERVER:
            opt->server = optarg;
            break;
        case OPT_JSON:
            opt->is_json = true;
            break;
        case OPT_HEARTBEAT:
            if ((rv = parse_positive_seconds("--heartbeat", optarg, &opt->heartbeat_ms)) != 0)
                return rv;
            break;
        case OPT_LOGIN_TIMEOUT:
            if ((rv = parse_positive_seconds("--login-timeout", optarg, &opt->login_timeout_ms)))
                return rv;
            break;
        case OPT_CONNECT_TIMEOUT:
            if ((rv = parse_positive_seconds("--connect-timeout", optarg,
                                             &opt->connect_timeout_ms)) != 0)
                return rv;
            break;
        case OPT_MAX_PACKET:
            if (cli_parse_bytes(optarg, MAX_MAX_PACKET, &opt->max_packet) < 0 ||
                opt->max_packet < MIN_MAX_PACKET)
                return cli_usage_error("--max-packet '%s': expected a size from 64 to 64M, like "
                                       "65536, 64k or 1M",
                                       optarg);
            break;
        case OPT_ORIGIN:
            if (!*optarg || strpbrk(optarg, "\r\n"))
                return cli_usage_error("--origin '%s': expected an origin like "
                                       "https://www.douyu.com",
                                       optarg);
            opt->origin = optarg;
            break;
        case OPT_CACERT:
            if (!*optarg)
                return cli_usage_error("--cacert needs a file");
            opt->ca_file = optarg;
            break;
        case OPT_INSECURE:
            opt->is_insecure = true;
            break;
        default:
            if ((rv = cli_common_option(c, argv, danmaku_usage, danmaku_longopts, CLI_DEBUG,
                                        &opt->verbosity)) != 0)
                return rv;
            break;
        }
    }
    if (optind >= argc)
        return cli_usage_error("missing the room id (digits, e.g. 9999)");
    opt->room = argv[optind++];
    if (optind < argc)
        return cli_usage_error("unexpected argument '%s'", argv[optind]);
    size_t room_len = strlen(opt->room);
    if (room_len == 0 || room_len > MAX_ROOM_DIGITS || strspn(opt->room, "0123456789") != room_len)
        return cli_usage_error("room id '%s': expected digits (at most %d), e.g. 9999", opt->room,
                               MAX_ROOM_DIGITS);
    if ((rv = check_server(d)) != 0)
        return rv;
    if (d->url.scheme == WSK_URL_TCP && (opt->origin || opt->ca_file || opt->is_insecure))
        return cli_usage_error("--origin, --cacert and --insecure are for ws:// and wss:// "
                               "servers, not tcp://");
    if (opt->ca_file && opt->is_insecure)
        return cli_usage_error("--cacert and --insecure contradict each other: with --insecure "
                               "nothing is verified");
    return 0;
}

static int run(struct danmaku *d)
{
    static const int signals[] = {SIGINT, SIGTERM};
    int rv;

    d->packet_buf = malloc(d->opt.max_packet);
    d->scratch = malloc(d->opt.max_packet);
    if (d->opt.is_json) {
        d->json_cap = WSK_STT_JSON_MAX(d->opt.max_packet);
        d->json = malloc(d->json_cap);
    }
    if (!d->packet_buf || !d->scratch || (d->opt.is_json && !d->json)) {
        cli_error("out of memory");
        return CLI_EXIT_FAILURE;
    }
    if ((rv = cli_loop_new(&d->loop, WSK_BACKEND_DEFAULT)) != 0)
        return rv;
    for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++) {
        if ((rv = wsk_loop_signal(d->loop, signals[i], on_signal, d)) < 0) {
            cli_error("cannot handle signals: %s", wsk_strerror(rv));
            return CLI_EXIT_FAILURE;
        }
    }
    if (d->opt.is_insecure && d->url.scheme == WSK_URL_WSS)
        cli_error("warning: --insecure: the server's certificate is not verified");
    wsk_timer_init(&d->heartbeat, on_heartbeat, d);
    wsk_timer_init(&d->login_timer, on_login_timeout, d);
    wsk_timer_init(&d->retry_timer, on_retry, d);
    d->backoff_ms = BACKOFF_MIN_MS;
    d->status = CLI_EXIT_OK;
    start_link(d);
    if ((rv = cli_loop_run(d->loop)) != 0)
        return rv;
    return d->status;
}

int cli_danmaku(int argc, char **argv)
{
    struct danmaku d = {0};
    int status;

    cli_log_init("wsk danmaku", CLI_NORMAL);
    status = parse_options(&d, argc, argv);
    if (status == 0) {
        cli_log_init("wsk danmaku", d.opt.verbosity);
        /* A closed stdout must show up as EPIPE from write(), not kill us. */
        signal(SIGPIPE, SIG_IGN);
        status = run(&d);
    }
    wsk_loop_free(d.loop);
    cli_buf_reset(&d.line);
    free(d.packet_buf);
    free(d.scratch);
    free(d.json);
    free(d.tcp_host);
    return status < 0 ? CLI_EXIT_OK : status;
}
