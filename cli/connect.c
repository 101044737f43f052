/* wsk connect: a WebSocket client for terminals, pipes and test suites.
 *
 * Three modes, chosen once at start:
 *
 *   terminal  stdin and stdout are terminals: a line editor in raw mode,
 *             messages printed above the prompt (lineedit.c does the screen).
 *   pipe      each stdin line is a message, each message a stdout line; at
 *             the end of stdin the client closes and drains what is left.
 *   echo      (--echo) every message goes back to the server unchanged.
 *
 * stdin is read on the loop like any socket, so the connection keeps
 * flowing while nothing is typed. When the send queue is full, reading stops
 * until on_drain: a big file piped in never piles up in memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "connect.h"

#define RECONNECT_MIN_MS 500u
#define RECONNECT_MAX_MS 30000u
#define STDIN_CHUNK      65536
#define TERMINAL_CHUNK   1024

/* ---- stdin --------------------------------------------------------------- */

static void on_stdin_io(struct wsk_loop *loop, struct wsk_io *io, unsigned events);
static void on_stdin_timer(struct wsk_loop *loop, struct wsk_timer *t);

static bool wants_stdin(const struct client *c)
{
    if (c->mode == MODE_ECHO || !c->is_linked || !c->is_open || c->is_stdin_eof)
        return false;
    /* A terminal stays readable while closing: a second ^C exits at once. */
    if (c->mode == MODE_TERMINAL)
        return true;
    return !c->is_closing && !c->is_paused && !c->is_stdout_broken && c->in_off == c->in_len;
}

/* Starts or stops reading stdin to match the client's state. */
void stdin_update(struct client *c)
{
    int rv;

    if (!wants_stdin(c)) {
        if (c->is_stdin_watched)
            wsk_io_stop(c->loop, &c->stdin_io);
        c->is_stdin_watched = false;
        wsk_timer_stop(c->loop, &c->stdin_timer);
        return;
    }
    if (!c->is_stdin_polled && !c->is_stdin_watched) {
        rv = wsk_io_start(c->loop, &c->stdin_io, WSK_IO_READ);
        if (rv == 0) {
            c->is_stdin_watched = true;
            return;
        }
        cli_log(CLI_DEBUG, "stdin cannot be watched (%s): reading it as a file", wsk_strerror(rv));
        c->is_stdin_polled = true;
    }
    if (c->is_stdin_polled && !wsk_timer_is_active(&c->stdin_timer)) {
        rv = wsk_timer_start(c->loop, &c->stdin_timer, 0, 0);
        if (rv < 0) {
            cli_error("cannot read stdin: %s", wsk_strerror(rv));
            c->status = CLI_EXIT_FAILURE;
            c->is_stdin_eof = true;
        }
    }
}

static void start_close(struct client *c, unsigned code)
{
    client_close(c, code, NULL);
}

void client_close(struct client *c, unsigned code, const char *reason)
{
    struct wsk_conn *conn = c->conn;

    if (!c->is_linked || c->is_closing)
        return;
    c->is_closing = true;
    if (c->mode == MODE_TERMINAL) {
        if (lineedit_hide(&c->le) < 0)
            lineedit_output_clear(&c->le);
        term_flush(c);
    }
    /* on_close may run inside this call and clear c->conn. */
    if (c->link == LINK_WS)
        wsk_conn_close(conn, code, reason);
    else
        raw_close(c);
    stdin_update(c);
}

/* Gives up after a local problem (bad input, stdout gone): close politely
 * and exit 1 once the server has answered. */
void client_fail(struct client *c)
{
    c->status = CLI_EXIT_FAILURE;
    start_close(c, WSK_CLOSE_GOING_AWAY);
}

static int link_send(struct client *c, const char *data, size_t len)
{
    if (c->link == LINK_WS)
        return wsk_conn_send(c->conn, c->opt.is_binary ? WSK_OP_BINARY : WSK_OP_TEXT, data, len);
    return raw_send(c, data, len);
}

static void send_line(struct client *c, const char *line, size_t len)
{
    int rv;

    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (len > c->opt.max_message) {
        cli_error("line %llu is longer than --max-message (%llu bytes)",
                  (unsigned long long)c->line_no, (unsigned long long)c->opt.max_message);
        client_fail(c);
        return;
    }
    rv = link_send(c, line, len);
    if (rv == WSK_EBACKPRESSURE) {
        c->is_paused = true; /* queued all the same; stop reading until on_drain */
    } else if (rv == WSK_EUTF8) {
        cli_error("line %llu is not valid UTF-8 (use --binary to send bytes)",
                  (unsigned long long)c->line_no);
        client_fail(c);
    } else if (rv == WSK_ESTATE) {
        /* The server's close frame has come (the library answered it), or
         * the connection failed: either way nothing more can be sent, and
         * on_close, which follows, tells which. A server that ends the
         * conversation before stdin does is not an error. */
        start_close(c, WSK_CLOSE_NORMAL);
    } else if (rv < 0) {
        cli_error("cannot send: %s", wsk_strerror(rv));
        client_fail(c);
    }
}

/* tcp:// and udp:// with --binary: stdin's bytes as they come, a chunk (a
 * datagram) at a time. */
static void pipe_process_raw(struct client *c)
{
    while (c->in_off < c->in_len && c->is_linked && !c->is_closing && !c->is_paused) {
        size_t n = c->in_len - c->in_off;
        if (c->link == LINK_UDP && n > RAW_UDP_MAX)
            n = RAW_UDP_MAX;
        int rv = raw_send(c, c->in + c->in_off, n);
        c->in_off += n;
        if (rv == WSK_EBACKPRESSURE) {
            c->is_paused = true;
        } else if (rv < 0) {
            cli_error("cannot send: %s", wsk_strerror(rv));
            client_fail(c);
        }
    }
    if (c->is_stdin_eof && c->in_off == c->in_len && c->is_linked && !c->is_closing &&
        !c->is_paused)
        start_close(c, WSK_CLOSE_NORMAL);
}

/* The last line of stdin is sent. A request/response server may still be
 * answering: wait until it has been quiet for --wait (each message restarts
 * the wait), or with --no-close until it closes; then close. */
static void stdin_done(struct client *c)
{
    if (c->link != LINK_WS) {
        start_close(c, WSK_CLOSE_NORMAL); /* tcp:// shuts down; udp:// lingers */
        return;
    }
    if (c->is_closing || !c->is_linked)
        return;
    if (c->opt.is_no_close) {
        cli_verbose("end of stdin: waiting for the server to close (--no-close)");
        return;
    }
    if (c->opt.wait_ms == 0 || wsk_timer_start(c->loop, &c->quiet, c->opt.wait_ms, 0) < 0)
        start_close(c, WSK_CLOSE_NORMAL);
}

static void on_quiet(struct wsk_loop *loop, struct wsk_timer *t)
{
    struct client *c = t->data;

    (void)loop;
    cli_log(CLI_DEBUG, "no message for %u ms after the end of stdin: closing", c->opt.wait_ms);
    start_close(c, WSK_CLOSE_NORMAL);
}

/* Sends the whole lines of the chunk in c->in, keeping a trailing partial
 * line for later, and closes after the last line of stdin. */
void pipe_process(struct client *c)
{
    if (c->link != LINK_WS && c->opt.is_binary) {
        pipe_process_raw(c);
        return;
    }
    while (c->in_off < c->in_len && c->is_linked && !c->is_closing && !c->is_paused) {
        const char *start = c->in + c->in_off;
        size_t avail = c->in_len - c->in_off;
        const char *nl = memchr(start, '\n', avail);
        size_t seg = nl ? (size_t)(nl - start) : avail;

        /* One more byte than the limit: a '\r' that will be stripped. */
        if (seg > c->opt.max_message + 1 - c->partial.len) {
            c->line_no++;
            cli_error("line %llu is longer than --max-message (%llu bytes)",
                      (unsigned long long)c->line_no, (unsigned long long)c->opt.max_message);
            client_fail(c);
            return;
        }
        if (!nl) {
            if (cli_buf_append(&c->partial, start, seg) < 0) {
                cli_error("out of memory");
                client_fail(c);
                return;
            }
            c->in_off = c->in_len;
            break;
        }
        c->in_off += seg + 1;
        c->line_no++;
        if (c->partial.len == 0) {
            send_line(c, start, seg);
        } else if (cli_buf_append(&c->partial, start, seg) < 0) {
            cli_error("out of memory");
            client_fail(c);
            return;
        } else {
            send_line(c, c->partial.ptr, c->partial.len);
            c->partial.len = 0;
        }
    }
    if (c->is_stdin_eof && c->in_off == c->in_len && c->is_linked && !c->is_closing &&
        !c->is_paused) {
        if (c->partial.len > 0) {
            /* The last line had no newline: it is a line all the same. */
            c->line_no++;
            send_line(c, c->partial.ptr, c->partial.len);
            c->partial.len = 0;
        }
        stdin_done(c);
    }
}

static void pipe_read(struct client *c)
{
    ssize_t n;

    if (c->in_off == c->in_len) {
        n = read(STDIN_FILENO, c->in, STDIN_CHUNK);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                return;
            cli_error("cannot read stdin: %s", wsk_strerror(-errno));
            c->status = CLI_EXIT_FAILURE;
            c->is_stdin_eof = true;
        } else if (n == 0) {
            c->is_stdin_eof = true;
        } else {
            c->in_off = 0;
            c->in_len = (size_t)n;
        }
    }
    pipe_process(c);
}

/* Keys from the terminal. Each readiness gets exactly one read(): stdin is
 * left blocking (O_NONBLOCK would be shared with the shell and with stdout,
 * which is usually the same terminal), and one read after readiness never
 * blocks. */
static void terminal_read(struct client *c)
{
    char buf[TERMINAL_CHUNK];
    ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
    size_t off = 0;

    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        /* The terminal is gone. */
        c->is_stdin_eof = true;
        start_close(c, WSK_CLOSE_GOING_AWAY);
        stdin_update(c);
        return;
    }
    if (c->is_closing) {
        if (memchr(buf, 0x03, (size_t)n))
            client_interrupt(c, 130);
        return;
    }
    while (off < (size_t)n && c->is_linked && !c->is_closing) {
        size_t used, len;
        const char *line;
        int rv, ev = lineedit_feed(&c->le, buf + off, (size_t)n - off, &used);

        off += used;
        term_flush(c);
        switch (ev) {
        case LINEEDIT_LINE:
            line = lineedit_line(&c->le, &len);
            if (client_command(c, line, len))
                break;
            if (c->link == LINK_WS && len >= 2 && line[0] == '/' && line[1] == '/')
                line++, len--; /* "//x" sends "/x" */
            rv = link_send(c, line, len);
            if (rv == WSK_ESTATE)
                cli_info("not sent: the server is closing the connection");
            else if (rv < 0 && rv != WSK_EBACKPRESSURE)
                cli_error("cannot send: %s", wsk_strerror(rv));
            break;
        case LINEEDIT_EOF:
            start_close(c, WSK_CLOSE_NORMAL);
            break;
        case LINEEDIT_INTERRUPT:
            client_interrupt(c, 130);
            break;
        case LINEEDIT_NONE:
            break;
        default:
            cli_error("out of memory");
            break;
        }
    }
}

static void stdin_read(struct client *c)
{
    if (c->mode == MODE_TERMINAL)
        terminal_read(c);
    else
        pipe_read(c);
    stdin_update(c);
}

static void on_stdin_io(struct wsk_loop *loop, struct wsk_io *io, unsigned events)
{
    (void)loop;
    (void)events;
    stdin_read(io->data);
}

static void on_stdin_timer(struct wsk_loop *loop, struct wsk_timer *t)
{
    (void)loop;
    stdin_read(t->data);
}

/* ---- connection events --------------------------------------------------- */

void client_opened(struct client *c)
{
    int rv;

    c->is_open = true;
    c->backoff_ms = RECONNECT_MIN_MS;
    if (c->was_reconnecting) {
        /* Back: what went wrong before is behind us. */
        c->was_reconnecting = false;
        c->status = CLI_EXIT_OK;
        client_note(c, "reconnected to %s", c->opt.url);
    }
    if (c->is_interrupted) {
        start_close(c, WSK_CLOSE_NORMAL);
        return;
    }
    if (c->mode == MODE_TERMINAL) {
        if (c->opt.verbosity > CLI_QUIET) {
            struct cli_buf b = {0};
            if (cli_buf_printf(&b, "Connected to %s.\n", c->opt.url) == 0)
                (void)cli_write_all(STDOUT_FILENO, b.ptr, b.len);
            cli_buf_reset(&b);
        }
        rv = term_raw();
        if (rv < 0) {
            cli_error("cannot set up the terminal: %s", wsk_strerror(rv));
            client_fail(c);
            return;
        }
        cli_log_set_hook(term_log_hook, c);
        lineedit_set_columns(&c->le, term_columns());
        if (lineedit_show(&c->le) < 0)
            lineedit_output_clear(&c->le);
        term_flush(c);
    }
    stdin_update(c);
}

static void on_open(struct wsk_conn *conn, const struct wsk_open_event *ev, void *user_data)
{
    struct client *c = user_data;

    (void)conn;
    if (ev->subprotocol.len || ev->extensions.len)
        cli_verbose("connected to %s (%s%.*s%s%s%.*s)", c->opt.url,
                    ev->subprotocol.len ? "subprotocol " : "", (int)ev->subprotocol.len,
                    ev->subprotocol.ptr, ev->subprotocol.len && ev->extensions.len ? ", " : "",
                    ev->extensions.len ? "extensions " : "", (int)ev->extensions.len,
                    ev->extensions.ptr);
    else
        cli_verbose("connected to %s", c->opt.url);
    client_opened(c);
}

void pipe_write(struct client *c, const void *data, size_t len, bool newline)
{
    if (c->is_stdout_broken)
        return;
    if ((len > 0 && fwrite(data, 1, len, stdout) != len) || (newline && putchar('\n') == EOF) ||
        fflush(stdout) == EOF) {
        int err = errno;
        /* A reader that went away (| head) is not worth a message. */
        if (err != EPIPE)
            cli_error("cannot write to stdout: %s", wsk_strerror(-err));
        c->is_stdout_broken = true;
        client_fail(c);
    }
}

/* --base64: "text " or "binary ", the base64 of the bytes (RFC 4648), a
 * newline: one line per message whatever it holds. */
static void pipe_write_base64(struct client *c, const struct wsk_message *msg)
{
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const uint8_t *in = msg->data;
    size_t len = msg->len, n = 0;
    const char *kind = msg->opcode == WSK_OP_TEXT ? "text " : "binary ";
    size_t klen = strlen(kind);
    char *out = malloc(klen + 4 * ((len + 2) / 3) + 1);

    if (!out) {
        cli_error("out of memory");
        client_fail(c);
        return;
    }
    memcpy(out, kind, klen);
    n = klen;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[n++] = digits[v >> 18];
        out[n++] = digits[(v >> 12) & 63];
        out[n++] = i + 1 < len ? digits[(v >> 6) & 63] : '=';
        out[n++] = i + 2 < len ? digits[v & 63] : '=';
    }
    pipe_write(c, out, n, true);
    free(out);
}

static void on_message(struct wsk_conn *conn, const struct wsk_message *msg, void *user_data)
{
    struct client *c = user_data;
    struct cli_buf b = {0};
    int rv;

    switch (c->mode) {
    case MODE_ECHO:
        rv = wsk_conn_send(conn, msg->opcode, msg->data, msg->len);
        if (rv < 0 && rv != WSK_EBACKPRESSURE && rv != WSK_ESTATE)
            cli_error("cannot echo: %s", wsk_strerror(rv));
        break;
    case MODE_PIPE:
        if (wsk_timer_is_active(&c->quiet))
            (void)wsk_timer_start(c->loop, &c->quiet, c->opt.wait_ms, 0);
        if (c->opt.is_base64)
            pipe_write_base64(c, msg);
        else
            pipe_write(c, msg->data, msg->len, true);
        break;
    case MODE_TERMINAL:
        if (format_message(&b, msg) < 0) {
            cli_error("out of memory");
            break;
        }
        term_print(c, STDOUT_FILENO, b.ptr, b.len);
        cli_buf_reset(&b);
        break;
    }
}

void client_drained(struct client *c)
{
    if (!c->is_paused)
        return;
    c->is_paused = false;
    pipe_process(c);
    stdin_update(c);
}

static void on_ping(struct wsk_conn *conn, const uint8_t *data, size_t len, void *user_data)
{
    (void)conn;
    client_on_ping(user_data, data, len);
}

static void on_pong(struct wsk_conn *conn, const uint8_t *data, size_t len, void *user_data)
{
    (void)conn;
    client_on_pong(user_data, data, len);
}

static void on_drain(struct wsk_conn *conn, void *user_data)
{
    (void)conn;
    client_drained(user_data);
}

static bool is_connection_lost(int err)
{
    return err == WSK_EABNORMAL || err == -ECONNRESET || err == -EPIPE || err == -ECONNABORTED ||
           err == -ETIMEDOUT || err == WSK_ECLOSED;
}

/* The TCP connection was reset after the server's close frame had arrived.
 * The close handshake is then over as far as the server is concerned (many
 * servers, Autobahn's among them, reset right after it), and nothing could
 * have followed the close frame: a normal end, not a lost connection. The
 * close code is the server's when it is not 1006: a connection we failed
 * ourselves carries a protocol error, never a reset. */
static bool is_protocol_error(int err)
{
    return err == WSK_EPROTO || err == WSK_EUTF8 || err == WSK_ETOOBIG || err == WSK_EDEFLATE;
}

/* --reconnect: a connection that failed or ended without us asking is made
 * again, after 0.5 s doubling up to 30 s; not after Ctrl-C, the end of stdin,
 * /close, or a refusal that will not change (HTTP 401, 403, 404). */
static bool wants_reconnect(const struct client *c, const struct wsk_close_event *ev)
{
    if (!c->opt.is_reconnect || c->is_interrupted || c->is_closing || c->is_stdin_eof ||
        c->is_stdout_broken)
        return false;
    return !(ev->http_status == 401 || ev->http_status == 403 || ev->http_status == 404);
}

static void on_retry(struct wsk_loop *loop, struct wsk_timer *t)
{
    struct client *c = t->data;

    (void)loop;
    cli_verbose("reconnecting to %s", c->opt.url);
    c->is_open = c->is_closing = false;
    c->first_error[0] = '\0';
    c->was_reconnecting = true;
    int rv = wsk_client_connect(&c->conn, c->loop, c->opt.url, &c->ws_cfg);
    if (rv == 0) {
        c->is_linked = true;
        return;
    }
    cli_error("cannot reconnect to %s: %s", c->opt.url, wsk_strerror(rv));
    c->status = CLI_EXIT_FAILURE;
}

/* 1000 normal, 1001 going away, 1005 no code given. */
static bool is_normal_close(unsigned code)
{
    return code == WSK_CLOSE_NORMAL || code == WSK_CLOSE_GOING_AWAY || code == 1005;
}

static void on_close(struct wsk_conn *conn, const struct wsk_close_event *ev, void *user_data)
{
    struct client *c = user_data;
    const char *url = c->opt.url;

    (void)conn;
    c->conn = NULL;
    client_closed(c);

    if (!ev->was_open) {
        bool is_plain = strncasecmp(url, "ws://", 5) == 0;
        if (c->is_interrupted) {
            c->status = 130;
        } else if (ev->http_status) {
            int st = ev->http_status;
            cli_error("handshake rejected: HTTP %d%s", st,
                      st >= 200 && st < 400   ? ": not a WebSocket endpoint (a web page or API?)"
                      : st == 404             ? " (no WebSocket at this path?)"
                      : st == 400 && is_plain ? " (if the port speaks TLS, try wss://)"
                                              : "");
            c->status = CLI_EXIT_FAILURE;
        } else {
            /* With TLS, detail says what was wrong with the certificate. */
            int err = ev->error ? ev->error : WSK_EABNORMAL;
            const char *hint = "";
            if (err == -ETIMEDOUT)
                hint = " (no handshake within --connect-timeout)";
            else if (is_plain && err == WSK_EABNORMAL)
                hint = " (if the port speaks TLS, try wss://)";
            else if ((err == WSK_EABNORMAL || (err == -ECONNRESET && !is_plain)) &&
                     !c->opt.cert_file)
                /* A TLS 1.3 server checks the client's certificate after
                 * the client has finished and sent its request: its alert
                 * and close then reach us as an end of stream, or as a
                 * reset when our request was still unread there. */
                hint = " (if the server requires a client certificate: --cert and --key)";
            else if (strstr(ev->detail, "certificate verify failed"))
                hint = " (trust its CA with --cacert FILE, or skip the check with --insecure)";
            else if (c->ws_cfg.proxy && *c->ws_cfg.proxy &&
                     (err == -ECONNREFUSED || err == WSK_EDNS || err == -EHOSTUNREACH ||
                      err == -ENETUNREACH))
                hint = " (connecting to the proxy; --proxy '' for none)";
            cli_error("cannot connect to %s: %s%s%s%s", url, wsk_strerror(err),
                      *ev->detail ? ": " : "", ev->detail, hint);
            c->status = CLI_EXIT_FAILURE;
        }
    } else if (ev->error == 0 && !c->is_closing && !is_normal_close(ev->code)) {
        /* A close handshake the server began, saying something went wrong
         * (or the application had its own reason): said even without -v.
         * When we began it (/close 4000), the server's code echoes ours. */
        cli_error("closed by the server: %u%s%.*s", ev->code, ev->reason.len ? " " : "",
                  (int)ev->reason.len, ev->reason.ptr);
        if (c->status == CLI_EXIT_OK)
            c->status = CONNECT_EXIT_CLOSE_CODE;
    } else if (ev->error == 0) {
        /* The library counts a reset after the server's close frame as a
         * normal end too (the Autobahn reference server does that). */
        if (c->opt.verbosity >= CLI_VERBOSE ||
            (c->opt.verbosity > CLI_QUIET && (c->mode == MODE_TERMINAL || isatty(STDERR_FILENO))))
            client_note(c, "Connection closed: %u%s%.*s.", ev->code, ev->reason.len ? " " : "",
                        (int)ev->reason.len, ev->reason.ptr);
    } else if (is_connection_lost(ev->error)) {
        if (ev->error == WSK_EABNORMAL)
            cli_error("connection lost (%u)", ev->code);
        else
            cli_error("connection lost (%u): %s", ev->code, wsk_strerror(ev->error));
        c->status = CLI_EXIT_FAILURE;
    } else if (is_protocol_error(ev->error)) {
        cli_error("protocol error: %s (%u)", wsk_strerror(ev->error), ev->code);
        c->status = CLI_EXIT_FAILURE;
    } else {
        cli_error("connection failed: %s%s%s (%u)", wsk_strerror(ev->error),
                  *ev->detail ? ": " : "", ev->detail, ev->code);
        c->status = CLI_EXIT_FAILURE;
    }
    if (wants_reconnect(c, ev)) {
        uint32_t wait = c->backoff_ms;
        c->backoff_ms = wait * 2 < RECONNECT_MAX_MS ? wait * 2 : RECONNECT_MAX_MS;
        if (wsk_timer_start(c->loop, &c->retry, wait, 0) == 0) {
            client_note(c, "reconnecting in %.1f s (--reconnect; Ctrl-C to stop)", wait / 1000.0);
            return;
        }
    }
    client_done(c);
}

void client_closed(struct client *c)
{
    c->is_linked = false;
    wsk_timer_stop(c->loop, &c->quiet);
    stdin_update(c);
    if (c->mode == MODE_TERMINAL) {
        if (lineedit_hide(&c->le) < 0)
            lineedit_output_clear(&c->le);
        term_flush(c);
    }
}

void client_done(struct client *c)
{
    (void)c;
    cli_log_set_hook(NULL, NULL);
    term_restore();
}

/* ^C, SIGINT, SIGTERM, SIGHUP: the first one closes cleanly, the second
 * exits at once. */
void client_interrupt(struct client *c, int forced_status)
{
    if (c->is_interrupted) {
        term_restore();
        _exit(forced_status);
    }
    c->is_interrupted = true;
    if (wsk_timer_is_active(&c->retry)) {
        /* Waiting to reconnect: give up now. */
        wsk_timer_stop(c->loop, &c->retry);
        client_done(c);
        return;
    }
    if (!c->is_linked)
        return;
    if (!c->is_open) {
        /* Stop connecting. */
        if (c->link == LINK_WS)
            wsk_conn_close(c->conn, WSK_CLOSE_NORMAL, NULL);
        else
            raw_close(c);
        return;
    }
    start_close(c, WSK_CLOSE_NORMAL);
}

static void on_signal(struct wsk_loop *loop, int signo, void *data)
{
    struct client *c = data;

    (void)loop;
    if (signo == SIGWINCH) {
        lineedit_set_columns(&c->le, term_columns());
        if (lineedit_is_shown(&c->le) && lineedit_show(&c->le) < 0)
            lineedit_output_clear(&c->le);
        term_flush(c);
        return;
    }
    client_interrupt(c, 128 + signo);
}

/* The client reports every failure itself, in one line, from on_close; the
 * library's own account of it is detail for -v. The first error is kept for
 * the failure that has no on_close: wsk_client_connect() refusing a --cacert
 * file. */
/* A proxy setting as it may be shown: without its password. */
static const char *redact_proxy(const char *proxy, char out[PROXY_SHOWN_MAX])
{
    const char *sep = strstr(proxy, "://");
    const char *auth = sep ? sep + 3 : proxy;
    const char *at = strrchr(auth, '@');
    if (!at) {
        snprintf(out, PROXY_SHOWN_MAX, "%s", proxy);
        return out;
    }
    snprintf(out, PROXY_SHOWN_MAX, "%.*s***@%s", (int)(auth - proxy), proxy, at + 1);
    return out;
}

static void log_library(int level, const char *msg, void *user_data)
{
    struct client *c = user_data;

    if (level == 0 && !c->first_error[0])
        snprintf(c->first_error, sizeof c->first_error, "%s", msg);
    if (cli_log_verbosity() >= CLI_VERBOSE)
        cli_log_library(level, msg, NULL);
}

/* ---- options ------------------------------------------------------------- */

/* ---- running ------------------------------------------------------------- */

static int run(struct client *c)
{
    const struct connect_options *opt = &c->opt;
    struct wsk_client_config cfg;
    static const int signals[] = {SIGINT, SIGTERM, SIGHUP};
    int rv;

    if ((rv = cli_loop_new(&c->loop, opt->backend)) != 0)
        return rv;
    for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++) {
        rv = wsk_loop_signal(c->loop, signals[i], on_signal, c);
        if (rv < 0) {
            cli_error("cannot handle signals: %s", wsk_strerror(rv));
            return CLI_EXIT_FAILURE;
        }
    }
    if (c->mode == MODE_TERMINAL && (rv = wsk_loop_signal(c->loop, SIGWINCH, on_signal, c)) < 0) {
        cli_error("cannot handle signals: %s", wsk_strerror(rv));
        return CLI_EXIT_FAILURE;
    }

    /* A page's address where the WebSocket's was meant: the same server. */
    bool is_https = strncasecmp(opt->url, "https://", 8) == 0;
    if (is_https || strncasecmp(opt->url, "http://", 7) == 0) {
        if (asprintf(&c->url_copy, "%s%s", is_https ? "wss" : "ws", strchr(opt->url, ':')) < 0) {
            cli_error("out of memory");
            return CLI_EXIT_FAILURE;
        }
        cli_verbose("%s: connecting to %s", opt->url, c->url_copy);
        c->opt.url = c->url_copy;
    }

    struct wsk_url u;
    if (wsk_url_parse(opt->url, strlen(opt->url), &u) == 0 &&
        (u.scheme == WSK_URL_TCP || u.scheme == WSK_URL_UDP)) {
        const char *ws_only = opt->headers.len                ? "--header"
                              : opt->subprotocols.len         ? "--subprotocol"
                              : opt->origin                   ? "--origin"
                              : opt->ca_file                  ? "--cacert"
                              : opt->is_insecure              ? "--insecure"
                              : opt->cert_file                ? "--cert"
                              : opt->is_reconnect             ? "--reconnect"
                              : opt->has_proxy && *opt->proxy ? "--proxy"
                              : !opt->has_deflate             ? "--no-deflate"
                                                              : NULL;
        if (ws_only) {
            cli_usage_error("%s is for ws:// and wss:// URLs, not %s", ws_only,
                            u.scheme == WSK_URL_TCP ? "tcp://" : "udp://");
            return CLI_EXIT_USAGE;
        }
        c->link = u.scheme == WSK_URL_TCP ? LINK_TCP : LINK_UDP;
        if ((rv = raw_connect(c, &u)) != 0)
            return rv;
        if ((rv = cli_loop_run(c->loop)) != 0)
            return rv;
        return c->is_linked ? CLI_EXIT_FAILURE : c->status;
    }

    /* User-Agent, unless a --header gave one. */
    if (opt->user_agent) {
        bool has = false;
        for (size_t i = 0; i < opt->headers.len; i++)
            has |= strncasecmp(opt->headers.v[i], "User-Agent:", 11) == 0;
        if (!has && (asprintf(&c->user_agent, "User-Agent: %s", opt->user_agent) < 0 ||
                     cli_strv_push(&c->opt.headers, c->user_agent) < 0)) {
            cli_error("out of memory");
            return CLI_EXIT_FAILURE;
        }
    }

    wsk_client_config_init(&cfg);
    cfg.handlers.on_open = on_open;
    cfg.handlers.on_message = on_message;
    cfg.handlers.on_drain = on_drain;
    cfg.handlers.on_ping = on_ping;
    cfg.handlers.on_pong = on_pong;
    cfg.handlers.on_close = on_close;
    cfg.user_data = c;
    cfg.log = log_library;
    cfg.limits.max_message = opt->max_message;
    cfg.limits.ping_interval_ms = opt->ping_interval_ms;
    cfg.subprotocols = opt->subprotocols.v;
    cfg.num_subprotocols = opt->subprotocols.len;
    cfg.headers = opt->headers.v;
    cfg.num_headers = opt->headers.len;
    cfg.origin = opt->origin;
    cfg.connect_timeout_ms = opt->connect_timeout_ms;
    cfg.ca_file = opt->ca_file;
    cfg.insecure = opt->is_insecure;
    cfg.cert_file = opt->cert_file;
    cfg.key_file = opt->key_file;
    cfg.proxy = opt->has_proxy ? opt->proxy : wsk_proxy_from_env(opt->url);
    if (cfg.proxy && *cfg.proxy)
        cli_verbose("through the proxy %s (%s)", redact_proxy(cfg.proxy, c->proxy_shown),
                    opt->has_proxy ? "--proxy" : "from the environment");
    wsk_deflate_config_init(&cfg.deflate);
    cfg.deflate.enabled = opt->has_deflate;

    struct wsk_url parsed;
    if (opt->is_insecure && wsk_url_parse(opt->url, strlen(opt->url), &parsed) == 0 &&
        parsed.scheme == WSK_URL_WSS)
        cli_error("warning: --insecure: the server's certificate is not verified; anyone on "
                  "the path can read and change this connection");
    cli_verbose("connecting to %s", opt->url);
    c->ws_cfg = cfg; /* --reconnect connects with it again */
    rv = wsk_client_connect(&c->conn, c->loop, opt->url, &c->ws_cfg);
    if (rv == WSK_EURL && c->first_error[0] && cfg.proxy && *cfg.proxy) {
        /* The library said what is wrong with the proxy setting. */
        cli_error("%s '%s': %s", opt->has_proxy ? "--proxy" : "proxy from the environment",
                  redact_proxy(cfg.proxy, c->proxy_shown), c->first_error);
        return opt->has_proxy ? CLI_EXIT_USAGE : CLI_EXIT_FAILURE;
    }
    if (rv == WSK_EURL) {
        /* One line, like every other failure: scripts match on it. Say
         * what is wrong when the parser knows. */
        char why[128] = "";
        if (wsk_url_parse(opt->url, strlen(opt->url), &u) < 0)
            snprintf(why, sizeof why, ": %s (at byte %zu)", u.error, u.error_at);
        else if (u.scheme != WSK_URL_WS && u.scheme != WSK_URL_WSS)
            snprintf(why, sizeof why, ": not a WebSocket, TCP or UDP URL");
        else if (u.has_fragment)
            snprintf(why, sizeof why, ": a fragment (#...) means nothing to a WebSocket URL");
        cli_error("'%s' is not a URL wsk can connect to%s (expected ws:// or "
                  "wss://HOST[:PORT][/PATH], tcp:// or udp://HOST:PORT)",
                  opt->url, why);
        return CLI_EXIT_USAGE;
    }
    if (rv == 0) {
        c->link = LINK_WS;
        c->is_linked = true;
    }
    if (rv < 0) {
        /* A --cacert file that cannot be used: the library said why. */
        if (c->first_error[0] && cli_log_verbosity() < CLI_VERBOSE)
            cli_error("%s", c->first_error);
        else if (!c->first_error[0])
            cli_error("cannot connect to %s: %s", opt->url, wsk_strerror(rv));
        return CLI_EXIT_FAILURE;
    }

    if ((rv = cli_loop_run(c->loop)) != 0)
        return rv;
    if (c->is_linked) {
        /* Only a stopped loop gets here with the connection still alive. */
        cli_error("the connection did not finish");
        return CLI_EXIT_FAILURE;
    }
    return c->status;
}

int cli_connect(int argc, char **argv)
{
    struct client c = {0};
    int status;

    cli_log_init("wsk connect", CLI_NORMAL);
    status = connect_parse_options(&c.opt, argc, argv);
    if (status == 0) {
        cli_log_init("wsk connect", c.opt.verbosity);
        if (c.opt.is_echo)
            c.mode = MODE_ECHO;
        else if (isatty(STDIN_FILENO) && isatty(STDOUT_FILENO))
            c.mode = MODE_TERMINAL;
        else
            c.mode = MODE_PIPE;
        wsk_io_init(&c.stdin_io, STDIN_FILENO, on_stdin_io, &c);
        wsk_timer_init(&c.stdin_timer, on_stdin_timer, &c);
        wsk_timer_init(&c.quiet, on_quiet, &c);
        wsk_timer_init(&c.retry, on_retry, &c);
        c.backoff_ms = RECONNECT_MIN_MS;
        lineedit_init(&c.le, "> ", (size_t)c.opt.max_message);
        if (c.mode == MODE_PIPE && !(c.in = malloc(STDIN_CHUNK))) {
            cli_error("out of memory");
            status = CLI_EXIT_FAILURE;
        }
    }
    if (status == 0) {
        /* A closed stdout must show up as EPIPE from write(), not kill us
         * before the close handshake. */
        signal(SIGPIPE, SIG_IGN);
        status = run(&c);
    }
    cli_log_set_hook(NULL, NULL);
    term_restore();
    raw_free(&c);
    wsk_loop_free(c.loop);
    cli_buf_reset(&c.rx_line);
    lineedit_reset(&c.le);
    cli_buf_reset(&c.partial);
    free(c.in);
    cli_strv_reset(&c.opt.headers);
    cli_strv_reset(&c.opt.subprotocols);
    free(c.user_agent);
    free(c.url_copy);
    return status < 0 ? CLI_EXIT_OK : status;
}
