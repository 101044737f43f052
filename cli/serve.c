/* wsk serve: a WebSocket server in one command.
 *
 * Broadcast mode relays every message to every client of the sender's room
 * (the sender too, which is how the built-in chat page shows your own
 * messages; serve_rooms.c); echo mode sends each message back to its
 * sender; --exec and --proxy have their own files. The HTTP side serves the
 * chat page, or a directory with --static. With --tls-cert and --tls-key the
 * same port speaks https:// and wss:// only, and SIGHUP reloads the
 * certificate; without TLS, SIGHUP is logged and ignored, never fatal.
 * Everything else is the library's: this file turns options
 * (serve_options.c) into a wsk_server_config, hands events to the mode, and
 * runs the loop. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chat_page.h"
#include "serve.h"

/* permessage-deflate is on by default with python websockets' server
 * settings: 12-bit windows both ways and zlib memLevel 5 cost about 50 KB per
 * connection that has sent and received compressed messages (wsk/deflate.h
 * has the measurements), against about 190 KB with 15-bit windows, and chat
 * messages still shrink several-fold. Browsers offer client_max_window_bits,
 * so they accept the smaller window. */
#define DEFAULT_DEFLATE_WINDOW 12

/* ---- events -------------------------------------------------------------- */

static void on_open(struct wsk_conn *conn, const struct wsk_open_event *ev, void *user_data)
{
    struct serve *s = user_data;

    if (s->opt.mode == SERVE_EXEC)
        serve_exec_open(s, conn, ev);
    else if (s->opt.mode == SERVE_PROXY)
        serve_proxy_open(s, conn);
    else
        serve_ws_open(s, conn, ev);
}

static void on_message(struct wsk_conn *conn, const struct wsk_message *msg, void *user_data)
{
    struct serve *s = user_data;

    if (s->opt.mode == SERVE_EXEC) {
        serve_exec_message(s, conn, msg);
    } else if (s->opt.mode == SERVE_PROXY) {
        serve_proxy_message(s, conn, msg);
    } else if (s->opt.mode == SERVE_ECHO && !s->opt.rate_limit) {
        serve_echo(conn, msg);
    } else {
        serve_ws_message(s, conn, msg);
    }
}

static void on_close(struct wsk_conn *conn, const struct wsk_close_event *ev, void *user_data)
{
    struct serve *s = user_data;

    if (s->opt.mode == SERVE_EXEC) {
        if (s->opt.verbosity >= CLI_VERBOSE && ev->was_open)
            cli_verbose("%s: closed: %u%s%.*s", wsk_conn_peer(conn), ev->code,
                        ev->reason.len ? " " : "", (int)ev->reason.len, ev->reason.ptr);
        serve_exec_close(s, conn);
        return;
    }
    if (s->opt.mode == SERVE_PROXY) {
        if (s->opt.verbosity >= CLI_VERBOSE && ev->was_open)
            cli_verbose("%s: closed: %u%s%.*s", wsk_conn_peer(conn), ev->code,
                        ev->reason.len ? " " : "", (int)ev->reason.len, ev->reason.ptr);
        serve_proxy_close(s, conn);
        return;
    }
    serve_ws_close(s, conn, ev);
}

static void on_drain(struct wsk_conn *conn, void *user_data)
{
    struct serve *s = user_data;

    if (s->opt.mode == SERVE_EXEC)
        serve_exec_drain(s, conn);
    else if (s->opt.mode == SERVE_PROXY)
        serve_proxy_drain(s, conn);
}

/* -v: one access-log line per answer to a request. */
static void on_access(struct wsk_conn *conn, const struct wsk_access_event *ev, void *user_data)
{
    (void)user_data;
    cli_log_access(wsk_conn_peer(conn), ev->method.ptr, ev->method.len, ev->path.ptr, ev->path.len,
                   ev->status, ev->bytes, ev->reason);
}

/* The server's wsk_log_cb: library diagnostics as usual, except while a
 * certificate is being loaded, when errors are kept for a one-line report. */
static void on_library_log(int level, const char *msg, void *user_data)
{
    struct serve *s = user_data;

    if (s->is_capturing_log) {
        if (level == 0 && !s->log_error[0])
            snprintf(s->log_error, sizeof s->log_error, "%s", msg);
        return;
    }
    cli_log_library(level, msg, NULL);
}

/* SIGHUP: by convention "reread your configuration". The only thing wsk serve
 * can reread is its certificate and key, renewed on disk; connections already
 * open go on with the old ones. Without TLS there is nothing to do, but the
 * signal is still handled: its default action would kill the server with no
 * close frames, and an operator running `kill -HUP` after a renewal should
 * not lose every client for it. */
void serve_reload(struct serve *s, bool is_quiet)
{
    int rv;

    if (!s->opt.tls_cert) {
        if (!is_quiet)
            cli_info("SIGHUP: nothing to reload (no TLS)");
        return;
    }
    s->is_capturing_log = true;
    s->log_error[0] = '\0';
    rv = wsk_server_reload_tls(s->srv);
    s->is_capturing_log = false;
    if (rv < 0)
        cli_error("SIGHUP: cannot reload the TLS certificate and key, still using the old ones: "
                  "%s",
                  s->log_error[0] ? s->log_error : wsk_strerror(rv));
    else if (!is_quiet)
        cli_info("SIGHUP: TLS certificate and key reloaded");
}

static void on_reload(struct wsk_loop *loop, int signo, void *data)
{
    struct serve *s = data;

    (void)loop;
    (void)signo;
    serve_reload(s, false);
    serve_threads_reload(s); /* the other threads' servers, quietly */
}

void serve_shutdown(struct serve *s)
{
    if (s->is_shutting_down)
        return;
    s->is_shutting_down = true;
    if (s->srv)
        wsk_server_shutdown(s->srv, WSK_CLOSE_GOING_AWAY, "server shutting down");
    serve_raw_shutdown(s);
    serve_redis_shutdown(s);
    serve_metrics_stop(s);
    serve_metrics_shutdown(s);
}

static void on_signal(struct wsk_loop *loop, int signo, void *data)
{
    struct serve *s = data;

    (void)loop;
    if (s->is_shutting_down) {
        /* The user does not want to wait for the close handshakes. _exit:
         * nothing left is worth flushing, and leak checkers would only
         * report the server we deliberately did not free. Programs of
         * --exec must not outlive it. */
        serve_exec_kill_all(s);
        _exit(128 + signo);
    }
    cli_info("shutting down (%s again to exit at once)",
             signo == SIGINT ? "Ctrl-C" : "the same signal");
    serve_shutdown(s);
    serve_threads_shutdown(s);
}

/* ---- running ------------------------------------------------------------- */

static int check_static_dir(const char *dir)
{
    struct stat st;

    if (stat(dir, &st) < 0)
        return cli_usage_error("--static '%s': %s", dir, wsk_strerror(-errno));
    if (!S_ISDIR(st.st_mode))
        return cli_usage_error("--static '%s': not a directory", dir);
    if (access(dir, R_OK | X_OK) < 0)
        return cli_usage_error("--static '%s': %s", dir, wsk_strerror(-errno));
    return 0;
}

/* What the usual wsk_server_listen() failures mean for the user; the OS's
 * own words ("Cannot assign requested address") do not say. */
const char *serve_listen_hint(int err, uint16_t port)
{
    if (err == -EADDRNOTAVAIL)
        return " (not an address of this machine)";
    if (err == -EACCES && port > 0 && port < 1024)
        return " (ports below 1024 need privileges)";
    return "";
}

/* One line per listener, in the order given, with the port bound. */
void serve_print_banner(const struct serve *s)
{
    const struct serve_options *opt = &s->opt;
    const char *tls = opt->tls_cert ? "s" : "";
    const char *mode_name = opt->mode == SERVE_ECHO    ? "echo"
                            : opt->mode == SERVE_EXEC  ? "exec"
                            : opt->mode == SERVE_PROXY ? "proxy"
                                                       : "broadcast";
    const struct serve_listen *first_ws = NULL;
    char mode[48];

    if (opt->threads > 1)
        snprintf(mode, sizeof mode, "%s, %u threads", mode_name, opt->threads);
    else
        snprintf(mode, sizeof mode, "%s", mode_name);

    for (size_t i = 0; i < opt->num_listens; i++) {
        const struct serve_listen *sl = &opt->listens[i];
        const char *lb = sl->addr.is_ipv6 ? "[" : "", *rb = sl->addr.is_ipv6 ? "]" : "";
        unsigned port = sl->port;

        if (sl->kind == LISTEN_WS) {
            printf("wsk serve: listening on http%s://%s%s%s:%u/ (WebSocket ws%s://%s%s%s:%u%s, "
                   "%s)\n",
                   tls, lb, sl->addr.host, rb, port, tls, lb, sl->addr.host, rb, port,
                   opt->path ? opt->path : "/", mode);
            if (!first_ws)
                first_ws = sl;
        } else {
            printf("wsk serve: listening on %s://%s%s%s:%u (%s)\n",
                   sl->kind == LISTEN_TCP ? "tcp" : "udp", lb, sl->addr.host, rb, port, mode);
        }
    }
    if (s->metrics_srv) {
        const char *lb = opt->metrics.is_ipv6 ? "[" : "", *rb = opt->metrics.is_ipv6 ? "]" : "";
        printf("wsk serve: metrics at http://%s%s%s:%u/metrics\n", lb, opt->metrics.host, rb,
               (unsigned)s->metrics_port);
    }
    if (first_ws && opt->mode == SERVE_BROADCAST && !opt->static_dir &&
        opt->verbosity > CLI_QUIET) {
        const char *lb = first_ws->addr.is_ipv6 ? "[" : "", *rb = first_ws->addr.is_ipv6 ? "]" : "";
        printf("open http%s://%s%s%s:%u/ in two browser tabs to chat\n", tls, lb,
               first_ws->addr.host, rb, (unsigned)first_ws->port);
    }
    fflush(stdout);
}

/* The chat page with --path in its wsk-path meta tag (HTML-escaped). */
static int chat_page_with_path(struct serve *s)
{
    static const char tag[] = "<meta name=\"wsk-path\" content=\"";
    const char *page = (const char *)wsk_cli_chat_page;
    size_t len = (size_t)wsk_cli_chat_page_len;
    const char *at = memmem(page, len, tag, sizeof tag - 1);
    if (!at)
        return cli_buf_append(&s->page, page, len);
    size_t head = (size_t)(at - page) + sizeof tag - 1;
    if (cli_buf_append(&s->page, page, head) < 0)
        return -ENOMEM;
    for (const char *p = s->opt.path; *p; p++) {
        const char *esc = *p == '&'   ? "&amp;"
                          : *p == '"' ? "&quot;"
                          : *p == '<' ? "&lt;"
                          : *p == '>' ? "&gt;"
                                      : NULL;
        if ((esc ? cli_buf_append(&s->page, esc, strlen(esc)) : cli_buf_append(&s->page, p, 1)) < 0)
            return -ENOMEM;
    }
    return cli_buf_append(&s->page, page + head, len - head);
}

/* The WebSocket server and its listeners. Returns 0 or an exit status. */
static int ws_start(struct serve *s)
{
    const struct serve_options *opt = &s->opt;
    struct wsk_server_config cfg;
    int rv;

    wsk_server_config_init(&cfg);
    cfg.handlers.on_open = on_open;
    cfg.handlers.on_message = on_message;
    cfg.handlers.on_close = on_close;
    cfg.handlers.on_drain = on_drain;
    cfg.user_data = s;
    cfg.log = on_library_log;
    cfg.limits.max_message = opt->max_message;
    cfg.limits.max_send_queue = (size_t)opt->max_queue;
    cfg.limits.handshake_timeout_ms = opt->handshake_timeout_ms;
    cfg.limits.ping_interval_ms = opt->ping_interval_ms;
    cfg.max_connections = (size_t)opt->max_connections;
    cfg.subprotocols = opt->subprotocols.v;
    cfg.num_subprotocols = opt->subprotocols.len;
    cfg.origins = opt->origins.v;
    cfg.num_origins = opt->origins.len;
    cfg.ws_path = opt->path;
    cfg.static_dir = opt->static_dir;
    cfg.list_dirs = opt->is_list_dirs;
    cfg.reuse_port = opt->reuse_port;
    if (!opt->static_dir) {
        cfg.index_page = wsk_cli_chat_page;
        cfg.index_page_len = (size_t)wsk_cli_chat_page_len;
        if (opt->path) {
            /* --path: the page must use it; it reads it from a meta tag. */
            if (chat_page_with_path(s) < 0) {
                cli_error("out of memory");
                return CLI_EXIT_FAILURE;
            }
            cfg.index_page = (const uint8_t *)s->page.ptr;
            cfg.index_page_len = s->page.len;
        }
    }
    cfg.tls_cert_file = opt->tls_cert;
    cfg.tls_key_file = opt->tls_key;
    if (opt->auth_token)
        cfg.on_upgrade = serve_upgrade;
    if (opt->verbosity >= CLI_VERBOSE)
        cfg.on_access = on_access;
    /* GET /healthz in every mode; POST /publish/ROOM, whose body is one
     * message, in broadcast mode. */
    cfg.on_http_request = serve_http_request;
    if (opt->mode == SERVE_BROADCAST)
        cfg.max_http_body = opt->max_message < SIZE_MAX ? (size_t)opt->max_message : SIZE_MAX;
    wsk_deflate_config_init(&cfg.deflate);
    cfg.deflate.enabled = opt->has_deflate;
    cfg.deflate.server_max_window_bits =
        opt->deflate_window ? opt->deflate_window : DEFAULT_DEFLATE_WINDOW;
    cfg.deflate.client_max_window_bits = cfg.deflate.server_max_window_bits;
    /* No context takeover either way: the library then lends each message
     * a compressor and a decompressor from the thread's pool. */
    cfg.deflate.server_no_context_takeover = opt->is_deflate_shared;
    cfg.deflate.client_no_context_takeover = opt->is_deflate_shared;
    s->is_capturing_log = true;
    s->log_error[0] = '\0';
    rv = wsk_server_new(&s->srv, s->loop, &cfg);
    s->is_capturing_log = false;
    if (rv < 0) {
        /* The library's reason, such as "private key key.pem does not match
         * the certificate cert.pem", says it all. */
        if (s->log_error[0])
            cli_error("%s", s->log_error);
        else
            cli_error("cannot create the server: %s", wsk_strerror(rv));
        return CLI_EXIT_FAILURE;
    }

    for (size_t i = 0; i < opt->num_listens; i++) {
        struct serve_listen *sl = &s->opt.listens[i];
        if (sl->kind != LISTEN_WS)
            continue;
        rv = wsk_server_listen(s->srv, sl->addr.host, sl->addr.port);
        if (rv < 0) {
            const char *lb = sl->addr.is_ipv6 ? "[" : "", *rb = sl->addr.is_ipv6 ? "]" : "";
            cli_error("cannot listen on %s%s%s:%u: %s%s", lb, sl->addr.host, rb,
                      (unsigned)sl->addr.port, wsk_strerror(rv),
                      serve_listen_hint(rv, sl->addr.port));
            return CLI_EXIT_FAILURE;
        }
        sl->port = (uint16_t)rv;
    }
    return 0;
}

int serve_start(struct serve *s)
{
    const struct serve_options *opt = &s->opt;
    int rv;

    if ((rv = cli_loop_new(&s->loop, opt->backend)) != 0)
        return rv;
    if (opt->mode == SERVE_EXEC && (rv = serve_exec_start(s)) != 0)
        return rv;
    if (serve_has_kind(opt, LISTEN_WS) && (rv = ws_start(s)) != 0)
        return rv;
    if ((rv = serve_raw_start(s)) != 0)
        return rv;
    if (opt->redis_url && (rv = serve_redis_start(s)) != 0)
        return rv;
    if (opt->metrics.host) {
        /* One listener, on the main thread; the others keep snapshots. */
        rv = s->index == 0 ? serve_metrics_start(s) : serve_metrics_snapshots(s);
        if (rv != 0)
            return rv;
    }
    return 0;
}

int serve_set_signals(struct serve *s)
{
    int rv;

    if ((rv = wsk_loop_signal(s->loop, SIGINT, on_signal, s)) < 0 ||
        (rv = wsk_loop_signal(s->loop, SIGTERM, on_signal, s)) < 0 ||
        (rv = wsk_loop_signal(s->loop, SIGHUP, on_reload, s)) < 0) {
        cli_error("cannot handle signals: %s", wsk_strerror(rv));
        return CLI_EXIT_FAILURE;
    }
    return 0;
}

void serve_free_instance(struct serve *s)
{
    wsk_server_free(s->srv);
    s->srv = NULL;
    serve_raw_free(s);
    serve_exec_free(s);
    serve_redis_free(s);
    serve_metrics_free(s);
    cli_buf_reset(&s->scratch);
    cli_buf_reset(&s->page);
    if (s->loop && wsk_loop_free(s->loop) == 0)
        s->loop = NULL;
}

static int run(struct serve *s)
{
    int rv;

    if (s->opt.threads > 1)
        return serve_run_threads(s);
    if ((rv = serve_start(s)) != 0 || (rv = serve_set_signals(s)) != 0)
        return rv;
    serve_print_banner(s);
    rv = cli_loop_run(s->loop);
    serve_print_counters(s);
    if (rv != 0)
        return rv;
    cli_verbose("stopped");
    return CLI_EXIT_OK;
}

int cli_serve(int argc, char **argv)
{
    struct serve s = {0};
    int status;

    cli_log_init("wsk serve", CLI_NORMAL);
    status = serve_parse_options(&s.opt, argc, argv);
    if (status == 0 && s.opt.mode == SERVE_PROXY)
        status = serve_proxy_check(&s.opt, &s.proxy_host, &s.proxy_port);
    if (status == 0) {
        cli_log_init("wsk serve", s.opt.verbosity);
        cli_log_set_json(s.opt.is_log_json);
        if (s.opt.static_dir)
            status = check_static_dir(s.opt.static_dir);
    }
    if (status == 0) {
        /* A peer that vanishes must not kill the server through a write. */
        signal(SIGPIPE, SIG_IGN);
        status = run(&s);
    }
    serve_free_instance(&s);
    free(s.proxy_host);
    for (size_t i = 0; i < s.opt.num_listens; i++)
        cli_listen_addr_reset(&s.opt.listens[i].addr);
    cli_listen_addr_reset(&s.opt.metrics);
    cli_strv_reset(&s.opt.origins);
    cli_strv_reset(&s.opt.subprotocols);
    return status < 0 ? CLI_EXIT_OK : status;
}
