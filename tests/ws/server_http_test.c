/* Plain HTTP requests to a WebSocket server (src/ws/server_http.c) with the
 * application's handler, on_http_request: the request and its body as the
 * handler sees them, wsk_conn_http_reply() and what it refuses, requests
 * left to the server, bodies too long (413), chunked (411) or with a bad
 * Content-Length (400), bodies in pieces, "Expect: 100-continue",
 * keep-alive and pipelining, HEAD, and a server freed from the handler.
 *
 * The loop runs on the main thread; each client is a blocking socket on a
 * second thread that sends a script of pieces and reads the answers.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "wsk.h"
#include "wsk_test.h"

#include "ws/ws_loop.h"

#define WAIT_MS 20000

static struct wsk_server *srv;
static uint16_t port;

/* ---- the handler -------------------------------------------------------------- */

static struct {
    int calls;
    char method[16], path[64], query[64], body[256];
    size_t body_len;
    bool is_loopback;
    bool free_server; /* free the server instead of answering */
    int reply_rv;
} seen;

static void on_request(struct wsk_conn *c, const struct wsk_http_request_event *req, void *ud)
{
    (void)ud;
    seen.calls++;
    snprintf(seen.method, sizeof seen.method, "%.*s", (int)req->method.len, req->method.ptr);
    snprintf(seen.path, sizeof seen.path, "%.*s", (int)req->path.len, req->path.ptr);
    snprintf(seen.query, sizeof seen.query, "%.*s", (int)req->query.len, req->query.ptr);
    seen.body_len = req->body_len;
    snprintf(seen.body, sizeof seen.body, "%.*s", (int)req->body_len, (const char *)req->body);
    const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)req->peer;
    seen.is_loopback = req->peer && req->peer->sa_family == AF_INET &&
                       ntohl(in->sin_addr.s_addr) == INADDR_LOOPBACK;
    if (seen.free_server) {
        wsk_server_free(srv);
        srv = NULL;
        return;
    }
    if (req->path.len >= 6 && !memcmp(req->path.ptr, "/leave", 6))
        return; /* to the server */
    if (req->path.len == 4 && !memcmp(req->path.ptr, "/bad", 4)) {
        CHECK_EQ_INT(wsk_conn_http_reply(c, 101, NULL, NULL, 0, NULL), -EINVAL);
        CHECK_EQ_INT(wsk_conn_http_reply(c, 199, NULL, NULL, 0, NULL), -EINVAL);
        CHECK_EQ_INT(wsk_conn_http_reply(c, 600, NULL, NULL, 0, NULL), -EINVAL);
        CHECK_EQ_INT(wsk_conn_http_reply(c, 200, "text/plain\r\nX: 1", NULL, 0, NULL), -EINVAL);
        CHECK_EQ_INT(wsk_conn_http_reply(c, 200, NULL, NULL, 0, "X: 1"), -EINVAL);
        CHECK_EQ_INT(wsk_conn_http_reply(c, 200, NULL, NULL, 0, "X: 1\r\nY\r\n"), -EINVAL);
        CHECK_EQ_INT(wsk_conn_http_reply(c, 200, NULL, NULL, 0, "content-length: 9\r\n"), -EINVAL);
        CHECK_EQ_INT(wsk_conn_http_reply(c, 200, NULL, NULL, 0, "Connection: close\r\n"), -EINVAL);
    }
    char body[300];
    int n = snprintf(body, sizeof body, "%s %s got %zu", seen.method, seen.path, req->body_len);
    seen.reply_rv = wsk_conn_http_reply(c, 201, "text/plain", body, (size_t)n, "X-Test: yes\r\n");
    CHECK_EQ_INT(wsk_conn_http_reply(c, 200, NULL, NULL, 0, NULL), WSK_ESTATE);
}

static void start(size_t max_body)
{
    struct wsk_server_config cfg;
    wsk_server_config_init(&cfg);
    static const uint8_t page[] = "<p>index</p>";
    cfg.index_page = page;
    cfg.index_page_len = sizeof page - 1;
    cfg.on_http_request = on_request;
    cfg.max_http_body = max_body;
    CHECK_EQ_INT(wsk_server_new(&srv, loop, &cfg), 0);
    int p = wsk_server_listen(srv, "127.0.0.1", 0);
    CHECK(p > 0);
    port = (uint16_t)p;
    memset(&seen, 0, sizeof seen);
}

static void stop(void)
{
    wsk_server_free(srv);
    srv = NULL;
    run_for(10);
}

/* ---- a client on a second thread ---------------------------------------------- */

struct script {
    const char *pieces[4]; /* sent in turn, 30 ms apart */
    int answers;           /* final answers to read */
    bool wait_continue;    /* read "100 Continue" before sending pieces[1] */
    /* results */
    char out[4096];
    size_t out_len;
    int finals, interims;
    bool eof;
    atomic_bool done;
};

/* Counts the complete answers in s->out: interim 1xx heads, and final
 * heads with the Content-Length bytes after them (HEAD answers: none). */
static void count_answers(struct script *s, bool is_head)
{
    s->finals = s->interims = 0;
    const char *p = s->out, *end = s->out + s->out_len;
    for (;;) {
        const char *h = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
        if (!h || end - p < 12)
            return;
        int status = atoi(p + 9);
        size_t head = (size_t)(h + 4 - p), cl = 0;
        const char *clh = memmem(p, head, "Content-Length: ", 16);
        if (clh)
            cl = (size_t)strtoul(clh + 16, NULL, 10);
        if (status < 200) {
            s->interims++;
            p += head;
            continue;
        }
        if (is_head)
            cl = 0;
        if ((size_t)(end - p) < head + cl)
            return;
        s->finals++;
        p += head + cl;
    }
}

static void *client_main(void *arg)
{
    struct script *s = arg;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
        bool is_head = !strncmp(s->pieces[0], "HEAD", 4);
        for (int i = 0; i < 4 && s->pieces[i]; i++) {
            if (i > 0 && s->wait_continue && i == 1) {
                while (s->interims == 0 && !s->eof) {
                    ssize_t n = recv(fd, s->out + s->out_len, sizeof s->out - 1 - s->out_len, 0);
                    if (n <= 0) {
                        s->eof = true;
                        break;
                    }
                    s->out_len += (size_t)n;
                    count_answers(s, is_head);
                }
            } else if (i > 0) {
                usleep(30000);
            }
            send(fd, s->pieces[i], strlen(s->pieces[i]), MSG_NOSIGNAL);
        }
        while (!s->eof && s->finals < s->answers && s->out_len < sizeof s->out - 1) {
            ssize_t n = recv(fd, s->out + s->out_len, sizeof s->out - 1 - s->out_len, 0);
            if (n <= 0) {
                s->eof = true;
                break;
            }
            s->out_len += (size_t)n;
            count_answers(s, is_head);
        }
        /* Is the connection kept? A closed one reads EOF at once. */
        if (!s->eof) {
            struct timeval shorter = {0, 100000};
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &shorter, sizeof shorter);
            char extra;
            s->eof = recv(fd, &extra, 1, 0) == 0;
        }
    }
    s->out[s->out_len] = '\0';
    close(fd);
    atomic_store(&s->done, true);
    return NULL;
}

static void exchange(struct script *s)
{
    pthread_t th;
    atomic_store(&s->done, false);
    CHECK_EQ_INT(pthread_create(&th, NULL, client_main, s), 0);
    RUN_UNTIL(atomic_load(&s->done), WAIT_MS);
    pthread_join(th, NULL);
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_post(void)
{
    start(0);
    struct script s = {.pieces = {"POST /api/x?a=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n"
                                  "hello"},
                       .answers = 1};
    exchange(&s);
    CHECK_EQ_INT(seen.calls, 1);
    CHECK_STR(seen.method, "POST");
    CHECK_STR(seen.path, "/api/x");
    CHECK_STR(seen.query, "a=1");
    CHECK_STR(seen.body, "hello");
    CHECK(seen.is_loopback);
    CHECK_EQ_INT(seen.reply_rv, 0);
    CHECK(!strncmp(s.out, "HTTP/1.1 201 Created\r\n", 22));
    CHECK(strstr(s.out, "\r\nX-Test: yes\r\n") != NULL);
    CHECK(strstr(s.out, "\r\nContent-Type: text/plain\r\n") != NULL);
    CHECK(strstr(s.out, "\r\n\r\nPOST /api/x got 5") != NULL);
    CHECK(!s.eof); /* kept alive */
    stop();
}

static void test_left_to_server(void)
{
    start(0);
    struct script s = {.pieces = {"GET /leave HTTP/1.1\r\nHost: h\r\n\r\n"
                                  "POST /leave HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi"
                                  "GET / HTTP/1.1\r\nHost: h\r\n\r\n"},
                       .answers = 3};
    exchange(&s);
    CHECK_EQ_INT(seen.calls, 3);
    CHECK_EQ_INT(s.finals, 3);
    const char *a = strstr(s.out, "404 Not Found");
    const char *b = strstr(s.out, "405 Method Not Allowed");
    const char *c = strstr(s.out, "201 Created");
    CHECK(a && b && c && a < b && b < c); /* in order, on one connection */
    if (!(a && b && c && a < b && b < c))
        printf("%s\n", s.out);
    CHECK(!s.eof);
    stop();
}

static void test_refused(void)
{
    start(10);
    struct {
        const char *req;
        const char *status;
    } cases[] = {
        {"POST /x HTTP/1.1\r\nContent-Length: 11\r\n\r\n01234567890", "413 "},
        {"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n", "411 "},
        {"POST /x HTTP/1.1\r\nContent-Length: 1x\r\n\r\nab", "400 "},
        {"POST /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "400 "},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct script s = {.pieces = {cases[i].req}, .answers = 1};
        exchange(&s);
        CHECK(!strncmp(s.out + 9, cases[i].status, 4));
        CHECK(s.eof);
    }
    CHECK_EQ_INT(seen.calls, 0);
    struct script s = {.pieces = {"POST /x HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789"},
                       .answers = 1};
    exchange(&s);
    CHECK_EQ_INT(seen.calls, 1);
    CHECK_STR(seen.body, "0123456789");
    stop();
}

static void test_pieces_and_continue(void)
{
    start(0);
    struct script s = {
        .pieces = {"POST /p HTTP/1.1\r\nContent-Length: 12\r\n", "\r\nhello ", "world!"},
        .answers = 1};
    exchange(&s);
    CHECK_STR(seen.body, "hello world!");
    CHECK(strstr(s.out, "got 12") != NULL);
    CHECK_EQ_INT(s.interims, 0);

    struct script e = {.pieces = {"POST /e HTTP/1.1\r\nContent-Length: 4\r\n"
                                  "Expect: 100-continue\r\n\r\n",
                                  "body"},
                       .answers = 1,
                       .wait_continue = true};
    exchange(&e);
    CHECK_EQ_INT(e.interims, 1);
    CHECK(!strncmp(e.out, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 ", 34));
    CHECK_STR(seen.body, "body");
    stop();
}

static void test_head_and_errors(void)
{
    start(0);
    struct script s = {.pieces = {"HEAD /h HTTP/1.1\r\n\r\n"}, .answers = 1};
    exchange(&s);
    CHECK(strstr(s.out, "Content-Length: 13\r\n") != NULL); /* "HEAD /h got 0", not sent */
    CHECK(strstr(s.out, "\r\n\r\n") == s.out + s.out_len - 4);
    struct script b = {.pieces = {"GET /bad HTTP/1.0\r\n\r\n"}, .answers = 1};
    exchange(&b);
    CHECK(!strncmp(b.out, "HTTP/1.1 201 ", 13));
    CHECK(strstr(b.out, "Connection: close\r\n") != NULL);
    CHECK(b.eof);
    stop();
}

static void test_free_from_handler(void)
{
    start(0);
    seen.free_server = true;
    struct script s = {.pieces = {"POST /f HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"}, .answers = 1};
    exchange(&s);
    CHECK_EQ_INT(seen.calls, 1);
    CHECK(srv == NULL);
    CHECK_EQ_INT(s.out_len, 0);
    CHECK(s.eof);
    run_for(10);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    alarm(110);
    CHECK_EQ_INT(wsk_loop_new(&loop, wsk_test_loop_cfg()), 0);
    WSK_RUN(test_post);
    WSK_RUN(test_left_to_server);
    WSK_RUN(test_refused);
    WSK_RUN(test_pieces_and_continue);
    WSK_RUN(test_head_and_errors);
    WSK_RUN(test_free_from_handler);
    CHECK_EQ_INT(wsk_loop_free(loop), 0);
    WSK_TEST_END();
}
