/* Plain HTTP on a WebSocket server: requests that are not upgrades. The
 * application's handler (on_http_request) sees them first, with their body;
 * then static files, the built-in page, and the errors. Keep-alive and
 * pipelining: what follows a request in c->in waits for the reply to drain.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "proto/http1_internal.h"
#include "ws/server_internal.h"

#define FILE_CHUNK            (64u * 1024)
#define FILE_QUEUE_TARGET     (256u * 1024)
#define DEFAULT_MAX_HTTP_BODY (64u * 1024)

void wsk__http_done(struct wsk_conn *c)
{
    if (c->http) {
        if (c->http->file_fd >= 0)
            close(c->http->file_fd);
        free(c->http);
        c->http = NULL;
    }
}

/* Queues a whole response: head, then body unless the request was HEAD. */
static void access_now(struct wsk_conn *c, int status, uint64_t bytes, const char *reason);

static void reply(struct wsk_conn *c, int status, const char *ctype, const void *body,
                  size_t body_len, bool is_head, bool keep_alive, const char *extra,
                  const char *reason)
{
    char head[1024];
    int n = wsk__http_head(head, sizeof head, status, ctype, body_len, keep_alive, extra,
                           (int64_t)time(NULL));
    if (n < 0) {
        wsk__conn_abort(c, n);
        return;
    }
    if (!keep_alive)
        c->flags |= WSK__F_HTTP_CLOSE;
    c->state = WSK__HTTP_REPLY;
    access_now(c, status, body_len, reason);
    if (wsk__conn_queue(c, head, (size_t)n) < 0 ||
        (!is_head && body_len && wsk__conn_queue(c, body, body_len) < 0))
        wsk__conn_abort(c, -ENOMEM);
}

static const uint16_t refused_codes[WSK__REFUSED_KINDS] = {400, 401, 403, 404, 405, 413,
                                                           414, 426, 431, 500, 503, 0};

unsigned wsk_stats_refused_code(size_t i)
{
    return i < WSK__REFUSED_KINDS ? refused_codes[i] : 0;
}

void wsk__server_access(struct wsk_conn *c, struct wsk_slice method, struct wsk_slice path,
                        int status, uint64_t bytes, const char *reason)
{
    struct wsk__ctx *ctx = c->ctx;
    if (status >= 400) {
        size_t k = 0;
        while (k < WSK__REFUSED_KINDS - 1 && refused_codes[k] != status)
            k++;
        ctx->cnt.refused[k]++;
    }
    wsk_access_cb cb = ctx->server ? ctx->server->cfg.on_access : NULL;
    if (!cb)
        return;
    struct wsk_access_event ev = {method, path, status, bytes, reason ? reason : ""};
    ctx->cb_depth++;
    cb(c, &ev, ctx->user_data);
    ctx->cb_depth--;
}

/* The request c is answering, when known. */
static void access_now(struct wsk_conn *c, int status, uint64_t bytes, const char *reason)
{
    struct wsk_slice none = {NULL, 0};
    struct wsk__http *h = c->http;
    wsk__server_access(c, h ? h->req_method : none, h ? h->req_path : none, status, bytes, reason);
}

void wsk__server_reply_error(struct wsk_conn *c, int status, bool is_head, bool keep_alive,
                             const char *extra, const char *reason)
{
    char body[96];
    int n = snprintf(body, sizeof body, "%d %s\n", status, wsk__http_reason(status));
    reply(c, status, "text/plain; charset=utf-8", body, (size_t)n, is_head, keep_alive, extra,
          reason);
}

/* Reads the next pieces of a file into the queue. */
static void pump_file(struct wsk_conn *c)
{
    struct wsk__http *h = c->http;
    uint8_t buf[FILE_CHUNK];
    while (h->file_left && c->st.out_bytes < FILE_QUEUE_TARGET) {
        size_t want = h->file_left < sizeof buf ? (size_t)h->file_left : sizeof buf;
        ssize_t n = read(h->file_fd, buf, want);
        if (n <= 0) {
            /* The file shrank or failed under us: the length is promised,
             * so the only honest end is to drop the connection. */
            wsk__conn_abort(c, n < 0 ? -errno : -EIO);
            return;
        }
        h->file_left -= (uint64_t)n;
        if (wsk__conn_queue(c, buf, (size_t)n) < 0) {
            wsk__conn_abort(c, -ENOMEM);
            return;
        }
    }
}

static bool slice_eq(struct wsk_slice s, const char *z)
{
    size_t n = strlen(z);
    return s.len == n && !memcmp(s.ptr, z, n);
}

/* ---- conditional and partial GETs of files --------------------------------- */

/* The file's validator, strong, as nginx writes it: mtime and size in hex. */
static void etag_of(char out[48], const struct wsk__static_file *f)
{
    snprintf(out, 48, "\"%llx-%llx\"", (unsigned long long)f->mtime, (unsigned long long)f->size);
}

/* A file found: 200, 304 for a current copy, 206 for a range, 416 for a
 * range past its end. Takes f->fd. */
static void serve_file(struct wsk_conn *c, const struct wsk_http_request *req,
                       struct wsk__static_file *f, bool is_head, bool keep_alive)
{
    char etag[48], modified[30], extra[256];
    etag_of(etag, f);
    wsk__http_date(f->mtime, modified);
    int status = 200;
    uint64_t start = 0, len = f->size;
    const struct wsk_slice *inm =
        wsk_http_header_get(req->headers, req->num_headers, "If-None-Match");
    const struct wsk_slice *range = wsk_http_header_get(req->headers, req->num_headers, "Range");
    const struct wsk_slice *if_range =
        wsk_http_header_get(req->headers, req->num_headers, "If-Range");
    if (inm && wsk__http_etag_listed(*inm, etag)) {
        status = 304;
    } else if (range && slice_eq(req->method, "GET") &&
               (!if_range || (if_range->len == strlen(etag) &&
                              memcmp(if_range->ptr, etag, if_range->len) == 0))) {
        int r = wsk__http_parse_range(*range, f->size, &start, &len);
        if (r < 0) {
            close(f->fd);
            snprintf(extra, sizeof extra, "Content-Range: bytes */%llu\r\n",
                     (unsigned long long)f->size);
            wsk__server_reply_error(c, 416, is_head, keep_alive, extra, NULL);
            return;
        }
        if (r > 0)
            status = 206;
    }
    int n = snprintf(extra, sizeof extra,
                     "ETag: %s\r\nLast-Modified: %s\r\nAccept-Ranges: bytes\r\n", etag, modified);
    if (status == 206)
        snprintf(extra + n, sizeof extra - (size_t)n, "Content-Range: bytes %llu-%llu/%llu\r\n",
                 (unsigned long long)start, (unsigned long long)(start + len - 1),
                 (unsigned long long)f->size);
    char head[1024];
    int hn = wsk__http_head(head, sizeof head, status, status == 304 ? NULL : f->content_type, len,
                            keep_alive, extra, (int64_t)time(NULL));
    if (hn < 0 || wsk__conn_queue(c, head, (size_t)hn) < 0) {
        close(f->fd);
        wsk__conn_abort(c, hn < 0 ? hn : -ENOMEM);
        return;
    }
    if (!keep_alive)
        c->flags |= WSK__F_HTTP_CLOSE;
    c->state = WSK__HTTP_REPLY;
    access_now(c, status, status == 304 ? 0 : len, NULL);
    if (is_head || status == 304 || len == 0 ||
        (start && lseek(f->fd, (off_t)start, SEEK_SET) != (off_t)start)) {
        close(f->fd);
        return;
    }
    c->http->file_fd = f->fd;
    c->http->file_left = len;
    pump_file(c);
}

/* --list-dirs: a directory without an index gets a listing. Returns false
 * when path names no directory (the caller answers 404). */
static bool list_dir(struct wsk_server *srv, struct wsk_conn *c, const struct wsk_http_request *req,
                     bool is_head, bool keep_alive)
{
    int fd;
    int status = wsk__static_open_dir(&srv->root, req->path, &fd);
    if (status == 404)
        return false;
    char *html = NULL;
    size_t len = 0;
    if (status == 200 && wsk__static_list(fd, req->path, &html, &len) < 0)
        status = 503;
    if (status != 200) {
        wsk__server_reply_error(c, status, is_head, keep_alive, NULL, NULL);
        return true;
    }
    reply(c, 200, "text/html; charset=utf-8", html, len, is_head, keep_alive,
          "Cache-Control: no-cache\r\n", NULL);
    free(html);
    return true;
}

static void serve_get(struct wsk_server *srv, struct wsk_conn *c,
                      const struct wsk_http_request *req, bool keep_alive)
{
    bool is_head = slice_eq(req->method, "HEAD");
    if (srv->has_root) {
        struct wsk__static_file f;
        int status = wsk__static_resolve(&srv->root, req->path, &f);
        if (status == 200) {
            serve_file(c, req, &f, is_head, keep_alive);
            return;
        }
        if (status == 301) {
            char loc[1024];
            int n =
                snprintf(loc, sizeof loc, "Location: %.*s/\r\n", (int)req->path.len, req->path.ptr);
            if (n > 0 && (size_t)n < sizeof loc) {
                wsk__server_reply_error(c, 301, is_head, keep_alive, loc, NULL);
                return;
            }
            status = 404;
        }
        if (status == 404 && srv->cfg.list_dirs &&
            !(srv->cfg.index_page && slice_eq(req->path, "/")) &&
            list_dir(srv, c, req, is_head, keep_alive))
            return;
        if (status != 404 || !srv->cfg.index_page) {
            wsk__server_reply_error(c, status, is_head, keep_alive, NULL, NULL);
            return;
        }
    }
    if (srv->cfg.index_page && (slice_eq(req->path, "/") || slice_eq(req->path, "/index.html"))) {
        reply(c, 200, "text/html; charset=utf-8", srv->cfg.index_page, srv->cfg.index_page_len,
              is_head, keep_alive, "Cache-Control: no-cache\r\n", NULL);
        return;
    }
    wsk__server_reply_error(c, 404, is_head, keep_alive, NULL, NULL);
}

/* ---- the application's handler ---------------------------------------------- */

/* The body's length from Content-Length: 0 when there is none, -1 when it
 * cannot be trusted (not digits, too big, several that disagree), -2 with
 * a Transfer-Encoding (chunked bodies are not read here). */
static int64_t body_length(const struct wsk_http_request *req)
{
    if (wsk_http_header_get(req->headers, req->num_headers, "Transfer-Encoding"))
        return -2;
    int64_t len = 0;
    bool seen = false;
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct wsk_http_header *h = &req->headers[i];
        if (h->name.len != 14 || strncasecmp(h->name.ptr, "Content-Length", 14))
            continue;
        if (!h->value.len || h->value.len > 18)
            return -1;
        int64_t v = 0;
        for (size_t j = 0; j < h->value.len; j++) {
            char ch = h->value.ptr[j];
            if (ch < '0' || ch > '9')
                return -1;
            v = v * 10 + (ch - '0');
        }
        if (seen && v != len)
            return -1;
        len = v;
        seen = true;
    }
    return len;
}

static bool is_own_header(const char *line, size_t len)
{
    static const char *const own[] = {"Content-Length:", "Transfer-Encoding:", "Connection:"};
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) {
        size_t n = strlen(own[i]);
        if (len >= n && !strncasecmp(line, own[i], n))
            return true;
    }
    return false;
}

int wsk_conn_http_reply(struct wsk_conn *c, int status, const char *content_type, const void *body,
                        size_t body_len, const char *headers)
{
    struct wsk__http *h = c->http;
    if (!c->ctx->server || c->state != WSK__HTTP || !h || !h->is_in_app)
        return WSK_ESTATE;
    if (status < 200 || status > 599)
        return -EINVAL;
    size_t extra_len = headers ? strlen(headers) : 0;
    size_t ctype_len = content_type ? strlen(content_type) : 0;
    if (content_type &&
        (!ctype_len || !wsk__http_is_field_value((struct wsk_slice){content_type, ctype_len})))
        return -EINVAL;
    if (headers) {
        if (!wsk__http_are_header_lines(headers))
            return -EINVAL;
        for (const char *line = headers; *line;) {
            const char *end = strstr(line, "\r\n");
            if (is_own_header(line, (size_t)(end - line)))
                return -EINVAL;
            line = end + 2;
        }
    }
    size_t cap = 256 + ctype_len + extra_len;
    char *head = malloc(cap);
    int n = head ? wsk__http_head(head, cap, status, content_type, body_len, h->is_keep_alive,
                                  headers, (int64_t)time(NULL))
                 : -ENOMEM;
    h->is_in_app = false;
    if (!h->is_keep_alive)
        c->flags |= WSK__F_HTTP_CLOSE;
    c->state = WSK__HTTP_REPLY;
    if (n >= 0)
        access_now(c, status, body_len, NULL);
    if (n < 0 || wsk__conn_queue(c, head, (size_t)n) < 0 ||
        (!h->is_head && body_len && wsk__conn_queue(c, body, body_len) < 0)) {
        free(head);
        wsk__conn_abort(c, -ENOMEM);
        return -ENOMEM;
    }
    free(head);
    return 0;
}

/* Reads the body, then calls the handler. Returns the bytes of c->in the
 * request took (head and body), or 0 when its body is still coming (or the
 * request was refused and the connection is closing). */
static size_t app_request(struct wsk_server *srv, struct wsk_conn *c,
                          const struct wsk_http_request *req, size_t head_len, bool keep_alive)
{
    size_t max = srv->cfg.max_http_body ? srv->cfg.max_http_body : DEFAULT_MAX_HTTP_BODY;
    int64_t len = body_length(req);
    int refuse = len == -2 ? 411 : len < 0 ? 400 : (uint64_t)len > max ? 413 : 0;
    if (refuse) {
        wsk__log(c->ctx, 3, "%s: HTTP request refused with %d", wsk_conn_peer(c), refuse);
        wsk__server_reply_error(c, refuse, false, false, NULL,
                                refuse == 411   ? "a body without a length"
                                : refuse == 413 ? "body over --max-http-body"
                                                : "bad Content-Length or Transfer-Encoding");
        return 0;
    }
    size_t need = head_len + (size_t)len;
    if (c->in_len < need) {
        if (!c->http->body_need &&
            wsk_http_header_has_token(req->headers, req->num_headers, "Expect", "100-continue")) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            if (wsk__conn_queue(c, cont, sizeof cont - 1) < 0) {
                wsk__conn_abort(c, -ENOMEM);
                return 0;
            }
        }
        c->http->body_need = need;
        return 0;
    }
    c->http->body_need = 0;
    struct sockaddr_storage peer;
    socklen_t peer_len = sizeof peer;
    bool has_peer = getpeername(c->st.io.fd, (struct sockaddr *)&peer, &peer_len) == 0;
    struct wsk_http_request_event ev = {
        .method = req->method,
        .path = req->path,
        .query = req->query,
        .headers = req->headers,
        .num_headers = req->num_headers,
        .body = len ? c->in + head_len : NULL,
        .body_len = (size_t)len,
        .peer = has_peer ? (const struct sockaddr *)&peer : NULL,
        .peer_len = has_peer ? peer_len : 0,
    };
    c->http->is_in_app = true;
    c->http->is_head = req->method.len == 4 && !memcmp(req->method.ptr, "HEAD", 4);
    c->http->is_keep_alive = keep_alive;
    c->ctx->cb_depth++;
    srv->cfg.on_http_request(c, &ev, srv->cfg.user_data);
    c->ctx->cb_depth--;
    if (c->state != WSK__DEAD && c->http)
        c->http->is_in_app = false;
    return need;
}

/* ---- requests ------------------------------------------------------------------ */

void wsk__server_http(struct wsk_server *srv, struct wsk_conn *c,
                      const struct wsk_http_request *req, size_t head_len)
{
    bool keep_alive =
        req->minor_version >= 1 &&
        !wsk_http_header_has_token(req->headers, req->num_headers, "Connection", "close") &&
        !srv->is_shutting_down;
    size_t used = head_len;
    c->http->req_method = req->method;
    c->http->req_path = req->path;
    if (srv->cfg.on_http_request) {
        used = app_request(srv, c, req, head_len, keep_alive);
        if (!used || c->state != WSK__HTTP)
            goto done; /* waiting for the body, refused, answered, or ended */
    } else {
        /* A body we do not read would be taken for the next request. */
        const struct wsk_slice *cl =
            wsk_http_header_get(req->headers, req->num_headers, "Content-Length");
        if ((cl && !(cl->len == 1 && cl->ptr[0] == '0')) ||
            wsk_http_header_get(req->headers, req->num_headers, "Transfer-Encoding"))
            keep_alive = false;
    }
    if (wsk_http_header_get(req->headers, req->num_headers, "Sec-WebSocket-Key") ||
        wsk_http_header_get(req->headers, req->num_headers, "Sec-WebSocket-Version")) {
        /* A WebSocket handshake without "Upgrade: websocket" (a proxy that
         * dropped the hop-by-hop headers, say): say what is missing rather
         * than serve the page (RFC 9110 15.5.22). */
        wsk__server_reply_error(c, 426, false, false,
                                "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n",
                                "WebSocket headers without Upgrade: websocket");
    } else if (slice_eq(req->method, "GET") || slice_eq(req->method, "HEAD"))
        serve_get(srv, c, req, keep_alive);
    else
        wsk__server_reply_error(c, 405, false, keep_alive, "Allow: GET, HEAD\r\n", NULL);
done:
    if (c->state == WSK__DEAD)
        return;
    c->http->req_method = (struct wsk_slice){NULL, 0};
    c->http->req_path = (struct wsk_slice){NULL, 0};
    if (!used)
        return;
    /* Pipelined bytes after this request wait in c->in for the next round. */
    wsk__conn_in_drop(c, used);
    wsk_http_parser_init(&c->http->parser, srv->cfg.max_head);
}

void wsk__server_on_reply_drained(struct wsk_conn *c)
{
    if (c->http && c->http->file_left) {
        pump_file(c);
        return;
    }
    if (c->http && c->http->file_fd >= 0) {
        close(c->http->file_fd);
        c->http->file_fd = -1;
    }
    if (c->flags & WSK__F_HTTP_CLOSE) {
        wsk__conn_finish(c);
        return;
    }
    /* Keep-alive: the next request, which may already be here. */
    c->state = WSK__HTTP;
    c->deadline = wsk_loop_now(c->ctx->loop) + c->ctx->lim.handshake_timeout_ms;
    if (c->in_len)
        wsk__server_on_head(c, NULL, 0);
}
