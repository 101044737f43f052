/* wsk http: one transfer, on the wsk loop with wsk_tcp (TLS for https://).
 *
 * One request per connection ("Connection: close"). The request head comes
 * from wsk_http_request_write(), the response head from
 * wsk_http_response_parse() (capped at MAX_HEAD), the body from the
 * wsk_http_body decoder, and redirects from wsk_url_resolve():
 *
 *   CONNECTING --on_open--> HEAD --head--> (-L and a redirect: next request)
 *                                     \--> BODY --complete--> DONE
 *
 * Every failure ends in DONE too, with one line on stderr. The body streams
 * to stdout through cli_out (output.c): when stdout does not keep up,
 * reading from the server pauses (wsk_tcp_pause()) until it drains, so a
 * download never piles up in memory. A body from --data @FILE is sent from
 * the file in pieces as the send queue drains.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "http_client.h"

#define MAX_HEAD      (64u * 1024)
#define UPLOAD_CHUNK  (64u * 1024)
#define CLOSE_TIMEOUT 500u /* after the answer: for the server's EOF */

/* ---- ending ---------------------------------------------------------------- */

/* The answer is complete or the transfer failed: close the connection (the
 * server's EOF is awaited CLOSE_TIMEOUT at most) and let the loop end once
 * stdout has taken everything. */
static void finish(struct http_client *c, int status)
{
    if (c->phase == PHASE_DONE)
        return;
    c->phase = PHASE_DONE;
    c->status = status;
    if (c->tcp) {
        wsk_tcp_pause(c->tcp, false);
        wsk_tcp_close(c->tcp);
    }
    if (status != CLI_EXIT_OK && status != EXIT_HTTP_ERROR)
        cli_out_discard(&c->out); /* a failure: nothing more reaches stdout */
    if (!cli_out_pending(&c->out))
        wsk_timer_stop(c->loop, &c->max_timer);
}

static void fail(struct http_client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(struct http_client *c, const char *fmt, ...)
{
    if (c->phase == PHASE_DONE)
        return;
    struct cli_buf line = {0};
    va_list ap;
    va_start(ap, fmt);
    int rv = cli_buf_vprintf(&line, fmt, ap);
    va_end(ap);
    cli_error("%s", rv == 0 ? line.ptr : "out of memory");
    cli_buf_reset(&line);
    finish(c, CLI_EXIT_FAILURE);
}

void http_on_max_time(struct wsk_loop *loop, struct wsk_timer *t)
{
    (void)loop;
    struct http_client *c = t->data;
    static const char *const doing[] = {[PHASE_CONNECTING] = "connecting to",
                                        [PHASE_HEAD] = "waiting for the answer of",
                                        [PHASE_BODY] = "reading the body from"};
    if (c->phase == PHASE_DONE) {
        /* Only stdout was left, and it did not take the body in time. */
        cli_out_discard(&c->out);
        cli_error("timed out after %.1f s (--max-time) writing to stdout",
                  c->opt.max_time_ms / 1000.0);
        c->status = CLI_EXIT_FAILURE;
        return;
    }
    fail(c, "timed out after %.1f s (--max-time) %s %s", c->opt.max_time_ms / 1000.0,
         doing[c->phase], c->url);
}

/* stdout drained (or failed): resume reading, or end. */
void http_on_out_drain(struct cli_out *out, int error, void *data)
{
    struct http_client *c = data;
    (void)out;
    if (error) {
        if (c->phase != PHASE_DONE) {
            fail(c, "cannot write to stdout: %s", strerror(-error));
        } else {
            cli_error("cannot write to stdout: %s", strerror(-error));
            c->status = CLI_EXIT_FAILURE;
            wsk_timer_stop(c->loop, &c->max_timer);
        }
        return;
    }
    if (c->is_paused && c->tcp && c->phase != PHASE_DONE) {
        c->is_paused = false;
        wsk_tcp_pause(c->tcp, false);
    }
    if (c->phase == PHASE_DONE && !cli_out_pending(&c->out))
        wsk_timer_stop(c->loop, &c->max_timer);
}

static void write_out(struct http_client *c, const void *data, size_t len)
{
    int rv = cli_out_write(&c->out, data, len);
    if (rv < 0) {
        fail(c, "cannot write to stdout: %s", strerror(-rv));
    } else if (rv > 0 && !c->is_paused && c->tcp) {
        /* stdout is behind: stop reading until it catches up. */
        c->is_paused = true;
        wsk_tcp_pause(c->tcp, true);
    }
}

/* ---- the response ---------------------------------------------------------- */

static bool is_redirect(int status)
{
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

static bool same_origin(const struct wsk_url *a, const struct wsk_url *b)
{
    return a->scheme == b->scheme && a->port == b->port && a->host.len == b->host.len &&
           strncasecmp(a->host.ptr, b->host.ptr, a->host.len) == 0;
}

/* Credentials meant for one host do not follow a redirect to another
 * (curl's --location without --location-trusted does the same). */
static bool is_credential(const char *header)
{
    static const char *const names[] = {"Authorization:", "Cookie:", "Proxy-Authorization:"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strncasecmp(header, names[i], strlen(names[i])) == 0)
            return true;
    return false;
}

/* Follows the redirect in c->resp to location. */
static void follow(struct http_client *c, const struct wsk_slice *location)
{
    int status = c->resp.status;
    if (c->redirects >= c->opt.max_redirs) {
        fail(c,
             "too many redirects: %" PRIu64 " followed, and %s answered %d again "
             "(--max-redirs)",
             c->redirects, c->url, status);
        return;
    }
    size_t cap = strlen(c->url) + location->len + 2;
    char *next = malloc(cap);
    if (!next) {
        fail(c, "out of memory");
        return;
    }
    int n = wsk_url_resolve(c->url, strlen(c->url), location->ptr, location->len, next, cap);
    struct wsk_url nu;
    if (n < 0 || wsk_url_parse(next, (size_t)n, &nu) < 0 ||
        (nu.scheme != WSK_URL_HTTP && nu.scheme != WSK_URL_HTTPS)) {
        fail(c,
             "cannot follow the redirect from %s: Location '%.*s' is not an http:// or "
             "https:// URL",
             c->url, (int)(location->len > 200 ? 200 : location->len), location->ptr);
        free(next);
        return;
    }
    /* 303 means "GET the answer there"; browsers and curl treat 301 and 302
     * after a POST the same way. 307 and 308 repeat the request as it was. */
    if ((status == 303 && strcmp(c->method, "HEAD") != 0) ||
        ((status == 301 || status == 302) && !strcmp(c->method, "POST"))) {
        c->method = "GET";
        c->sends_body = false;
    }
    if (!same_origin(&c->u, &nu)) {
        size_t kept = 0;
        for (size_t i = 0; i < c->headers.len; i++)
            if (!is_credential(c->headers.v[i]))
                c->headers.v[kept++] = c->headers.v[i];
        c->headers.len = kept;
    }
    cli_verbose("following the %d redirect to %s", status, next);
    wsk_tcp_close(c->tcp);
    c->tcp = NULL;
    free(c->url);
    c->url = next;
    c->redirects++;
    int rv = http_start_request(c);
    if (rv < 0)
        finish(c, CLI_EXIT_FAILURE);
}

/* The answer is complete: the exit status follows its status code. */
static void answered(struct http_client *c)
{
    int status = c->resp.status;
    if (status >= 400) {
        cli_error("%s answered %d %.*s", c->url, status, (int)c->resp.reason.len,
                  c->resp.reason.ptr);
        finish(c, EXIT_HTTP_ERROR);
        return;
    }
    finish(c, CLI_EXIT_OK);
}

static void on_body_bytes(struct http_client *c, const uint8_t *data, size_t len)
{
    while (len > 0 && c->phase == PHASE_BODY) {
        const uint8_t *run;
        size_t run_len;
        int64_t n = wsk_http_body_parse(&c->body, data, len, &run, &run_len);
        if (n < 0) {
            fail(c, "malformed answer from %s: bad chunked body (%s)", c->url,
                 wsk_strerror((int)n));
            return;
        }
        if (run_len)
            write_out(c, run, run_len);
        if (n == 0)
            break;
        data += n;
        len -= (size_t)n;
    }
    if (c->phase == PHASE_BODY && wsk_http_body_is_done(&c->body))
        answered(c);
}

static void show_head(const char *head, size_t len)
{
    if (cli_log_verbosity() < CLI_VERBOSE)
        return;
    while (len > 0) {
        const char *nl = memchr(head, '\n', len);
        size_t n = nl ? (size_t)(nl - head) + 1 : len;
        size_t shown = n;
        while (shown > 0 && (head[shown - 1] == '\n' || head[shown - 1] == '\r'))
            shown--;
        if (shown > 0)
            cli_verbose("< %.*s", (int)shown, head);
        head += n;
        len -= n;
    }
}

/* A complete head is at the start of c->head; rest bytes follow it. */
static void on_head(struct http_client *c, size_t head_len)
{
    const char *head = c->head.ptr;
    int status = c->resp.status;
    show_head(head, head_len);
    if (c->opt.is_include)
        write_out(c, head, head_len);

    const struct wsk_slice *location =
        wsk_http_header_get(c->resp.headers, c->resp.num_headers, "Location");
    if (c->opt.is_location && is_redirect(status) && location && location->len > 0) {
        follow(c, location);
        return;
    }
    if (status == 101) {
        fail(c, "%s switched protocols (101), which was not asked for", c->url);
        return;
    }
    if (wsk_http_body_init(&c->body, &c->resp, c->method) < 0) {
        fail(c,
             "malformed answer from %s: conflicting or invalid Content-Length and "
             "Transfer-Encoding",
             c->url);
        return;
    }
    c->phase = PHASE_BODY;
}

/* Bytes of the response while its head is not complete. Interim answers
 * (1xx but 101) are passed over: the real head follows. */
static void on_head_bytes(struct http_client *c, const uint8_t *data, size_t len)
{
    if (cli_buf_append(&c->head, data, len) < 0) {
        fail(c, "out of memory");
        return;
    }
    while (c->phase == PHASE_HEAD) {
        int rv = wsk_http_response_parse(&c->parser, c->head.ptr, c->head.len, &c->resp);
        if (rv == 0)
            return;
        if (rv == WSK_EHEADTOOBIG) {
            fail(c, "malformed answer from %s: the head is over %u KiB or %d lines", c->url,
                 MAX_HEAD / 1024, WSK_HTTP_MAX_HEADERS);
            return;
        }
        if (rv < 0) {
            fail(c, "malformed answer from %s: not an HTTP/1.x response head", c->url);
            return;
        }
        size_t head_len = (size_t)rv;
        if (c->resp.status >= 100 && c->resp.status < 200 && c->resp.status != 101) {
            show_head(c->head.ptr, head_len);
            if (c->opt.is_include)
                write_out(c, c->head.ptr, head_len);
            memmove(c->head.ptr, c->head.ptr + head_len, c->head.len - head_len);
            c->head.len -= head_len;
            wsk_http_parser_init(&c->parser, MAX_HEAD);
            continue;
        }
        on_head(c, head_len);
        if (c->phase == PHASE_BODY)
            on_body_bytes(c, (const uint8_t *)c->head.ptr + head_len, c->head.len - head_len);
        return;
    }
}

/* ---- the connection ------------------------------------------------------- */

/* Sends what the send queue takes of a file body; the rest on on_drain. */
static void send_file_body(struct http_client *c)
{
    static uint8_t chunk[UPLOAD_CHUNK];
    const struct body_source *b = &c->opt.body;
    while (c->body_sent < b->len) {
        uint64_t want = b->len - c->body_sent;
        ssize_t n = pread(b->fd, chunk, want < sizeof chunk ? (size_t)want : sizeof chunk,
                          (off_t)c->body_sent);
        if (n <= 0) {
            fail(c, "cannot read %s: %s", b->path, n < 0 ? strerror(errno) : "it got shorter");
            return;
        }
        c->body_sent += (uint64_t)n;
        int rv = wsk_tcp_send(c->tcp, chunk, (size_t)n);
        if (rv == WSK_EBACKPRESSURE)
            return; /* on_drain brings us back */
        if (rv < 0) {
            fail(c, "cannot send the request body: %s", wsk_strerror(rv));
            return;
        }
    }
}

static void on_open(struct wsk_tcp *t, void *user_data)
{
    struct http_client *c = user_data;
    if (t != c->tcp)
        return;
    cli_verbose("connected to %s (%s)", wsk_tcp_peer(t),
                c->u.scheme == WSK_URL_HTTPS ? "TLS" : "plain TCP");
    const struct body_source *b = &c->opt.body;
    struct wsk_http_request_spec spec = {
        .method = c->method,
        .url = &c->u,
        .headers = c->headers.v,
        .num_headers = c->headers.len,
        .user_agent = c->opt.user_agent,
        .has_body = c->sends_body,
        .body_len = c->sends_body ? b->len : 0,
    };
    char *req = NULL;
    int n = WSK_ENOSPC;
    for (size_t cap = 1024 + strlen(c->url); n == WSK_ENOSPC && cap < (1u << 24); cap *= 2) {
        char *p = realloc(req, cap);
        if (!p)
            break;
        req = p;
        n = wsk_http_request_write(req, cap, &spec);
    }
    if (n < 0) {
        free(req);
        fail(c, "cannot write the request: %s",
             n == -EINVAL ? "invalid method or header" : wsk_strerror(n));
        return;
    }
    if (cli_log_verbosity() >= CLI_VERBOSE) {
        for (const char *line = req; line < req + n - 2;) {
            const char *end = strstr(line, "\r\n");
            cli_verbose("> %.*s", (int)(end - line), line);
            line = end + 2;
        }
    }
    int rv = wsk_tcp_send(t, req, (size_t)n);
    free(req);
    c->phase = PHASE_HEAD;
    c->body_sent = 0;
    bool is_full = rv == WSK_EBACKPRESSURE; /* queued all the same; on_drain follows */
    if ((rv == 0 || is_full) && c->sends_body && b->fd < 0) {
        rv = wsk_tcp_send(t, b->text, (size_t)b->len);
        c->body_sent = b->len;
        is_full |= rv == WSK_EBACKPRESSURE;
    }
    if (rv < 0 && rv != WSK_EBACKPRESSURE) {
        fail(c, "cannot send the request: %s", wsk_strerror(rv));
        return;
    }
    if (c->sends_body && b->fd >= 0 && !is_full)
        send_file_body(c);
}

static void on_data(struct wsk_tcp *t, const uint8_t *data, size_t len, void *user_data)
{
    struct http_client *c = user_data;
    if (t != c->tcp)
        return;
    if (c->phase == PHASE_HEAD)
        on_head_bytes(c, data, len);
    else if (c->phase == PHASE_BODY)
        on_body_bytes(c, data, len);
}

static void on_drain(struct wsk_tcp *t, void *user_data)
{
    struct http_client *c = user_data;
    if (t == c->tcp && c->phase == PHASE_HEAD && c->sends_body && c->opt.body.fd >= 0)
        send_file_body(c);
}

static void on_close(struct wsk_tcp *t, int error, void *user_data)
{
    struct http_client *c = user_data;
    if (t != c->tcp)
        return;
    c->tcp = NULL;
    if (c->phase == PHASE_DONE)
        return;
    const char *detail = wsk_tcp_error_detail(t);
    if (c->phase == PHASE_CONNECTING) {
        if (error == WSK_EDNS)
            fail(c, "cannot resolve %.*s: %s", (int)c->u.host.len, c->u.host.ptr,
                 wsk_strerror(error));
        else if (error == WSK_ETLS)
            fail(c,
                 "TLS with %s failed: %s (--cacert FILE trusts a private CA; --insecure "
                 "skips verification)",
                 c->host_port, *detail ? detail : wsk_strerror(error));
        else if (error == -ETIMEDOUT)
            fail(c, "cannot connect to %s: no answer within %.1f s (--connect-timeout)",
                 c->host_port, c->opt.connect_timeout_ms / 1000.0);
        else
            fail(c, "cannot connect to %s: %s%s%s", c->host_port, wsk_strerror(error),
                 *detail ? ": " : "", detail);
        return;
    }
    if (error && c->phase == PHASE_HEAD) {
        fail(c, "connection to %s lost before the answer: %s%s%s", c->host_port,
             wsk_strerror(error), *detail ? ": " : "", detail);
        return;
    }
    if (c->phase == PHASE_HEAD) {
        fail(c, "malformed answer from %s: the connection closed %s", c->url,
             c->head.len ? "in the middle of the response head" : "without an answer");
        return;
    }
    /* The body: complete when framed by the end of the connection. */
    uint64_t got = wsk_http_body_received(&c->body);
    int rv = error ? error : wsk_http_body_finish(&c->body);
    if (rv == 0) {
        answered(c);
    } else if (rv == WSK_ETRUNCATED || error) {
        const struct wsk_slice *cl =
            wsk_http_header_get(c->resp.headers, c->resp.num_headers, "Content-Length");
        fail(c, "the body from %s was cut short: %s after %" PRIu64 " bytes%s%.*s%s", c->url,
             error ? wsk_strerror(error) : "the connection closed", got, cl ? " of " : "",
             cl ? (int)cl->len : 0, cl ? cl->ptr : "",
             wsk_http_body_framing(&c->body) == WSK_HTTP_BODY_CHUNKED ? " (chunked, no last chunk)"
                                                                      : "");
    } else {
        fail(c, "malformed answer from %s: %s", c->url, wsk_strerror(rv));
    }
}

/* The library's own account of a failure goes to -v; the one line above
 * says it for everyone. The first error is kept for failures that have no
 * on_close: wsk_tcp_connect() refusing a --cacert file. */
static void log_library(int level, const char *msg, void *user_data)
{
    struct http_client *c = user_data;
    if (level == 0 && !c->first_error[0])
        snprintf(c->first_error, sizeof c->first_error, "%s", msg);
    if (cli_log_verbosity() >= CLI_VERBOSE)
        cli_log_library(level, msg, NULL);
}

/* Connects for the request to c->url. Returns 0, or -1 after saying why. */
int http_start_request(struct http_client *c)
{
    if (wsk_url_parse(c->url, strlen(c->url), &c->u) < 0 ||
        (c->u.scheme != WSK_URL_HTTP && c->u.scheme != WSK_URL_HTTPS)) {
        cli_error("'%s' is not an http:// or https:// URL", c->url);
        return -1;
    }
    snprintf(c->host_port, sizeof c->host_port, "%s%.*s%s:%u", c->u.is_ipv6 ? "[" : "",
             (int)c->u.host.len, c->u.host.ptr, c->u.is_ipv6 ? "]" : "", (unsigned)c->u.port);

    /* A loop: the same request again. */
    size_t key_len = strlen(c->method) + 1 + strlen(c->url);
    for (size_t at = 0; at < c->visited.len; at += strlen(c->visited.ptr + at) + 1) {
        const char *seen = c->visited.ptr + at;
        if (strlen(seen) == key_len && !strncmp(seen, c->method, strlen(c->method)) &&
            !strcmp(seen + strlen(c->method) + 1, c->url)) {
            cli_error("redirect loop: back to %s %s after %" PRIu64 " redirects", c->method, c->url,
                      c->redirects);
            return -1;
        }
    }
    if (cli_buf_printf(&c->visited, "%s %s", c->method, c->url) < 0 ||
        cli_buf_append(&c->visited, "", 1) < 0) {
        cli_error("out of memory");
        return -1;
    }

    c->phase = PHASE_CONNECTING;
    c->head.len = 0;
    wsk_http_parser_init(&c->parser, MAX_HEAD);
    c->is_paused = false;

    char host[260];
    snprintf(host, sizeof host, "%.*s", (int)c->u.host.len, c->u.host.ptr);
    struct wsk_tcp_config cfg;
    wsk_tcp_config_init(&cfg);
    cfg.handlers = (struct wsk_tcp_handlers){
        .on_open = on_open, .on_data = on_data, .on_drain = on_drain, .on_close = on_close};
    cfg.user_data = c;
    cfg.log = log_library;
    cfg.connect_timeout_ms = c->opt.connect_timeout_ms;
    cfg.close_timeout_ms = CLOSE_TIMEOUT;
    cfg.tls = c->u.scheme == WSK_URL_HTTPS;
    cfg.ca_file = c->opt.ca_file;
    cfg.insecure = c->opt.is_insecure;
    cli_verbose("connecting to %s", c->host_port);
    int rv = wsk_tcp_connect(&c->tcp, c->loop, host, c->u.port, &cfg);
    if (rv < 0) {
        c->tcp = NULL;
        if (c->first_error[0])
            cli_error("%s", c->first_error); /* an unusable --cacert file */
        else
            cli_error("cannot connect to %s: %s", c->host_port, wsk_strerror(rv));
        return -1;
    }
    return 0;
}
