/* wsk http, private to cli/: the options, and the state of one transfer
 * (a request and its answer, redirects followed). http.c parses the
 * command line and runs the loop; http_transfer.c makes the requests and
 * reads the answers. */
#ifndef WSK_CLI_HTTP_CLIENT_H
#define WSK_CLI_HTTP_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "cli.h"
#include "output.h"
#include "wsk.h"

#define EXIT_HTTP_ERROR 22 /* a 4xx or 5xx answer, as curl --fail */

/* Where the request body comes from. */
struct body_source {
    const char *text; /* --data TEXT, or the whole of a file that cannot be streamed */
    char *owned;      /* text when read into memory */
    uint64_t len;
    int fd; /* --data @FILE of a regular file: streamed; else -1 */
    const char *path;
};

struct http_options {
    const char *url;
    const char *method; /* NULL: GET, or POST with a body */
    bool has_body;
    struct body_source body;
    struct cli_strv headers;
    const char *user_agent;
    bool is_include;
    bool is_location;
    uint64_t max_redirs;
    uint32_t max_time_ms;
    uint32_t connect_timeout_ms;
    const char *ca_file;
    bool is_insecure;
    enum wsk_backend backend;
    int verbosity;
};

enum phase {
    PHASE_CONNECTING,
    PHASE_HEAD, /* the request is out (or going), the response head not in */
    PHASE_BODY,
    PHASE_DONE, /* the answer is complete, or the transfer failed */
};

struct http_client {
    struct http_options opt;
    struct wsk_loop *loop;
    struct wsk_timer max_timer;
    struct cli_out out;
    int status; /* the exit status */

    /* The current request. */
    char *url;
    struct wsk_url u;
    char host_port[300]; /* for messages: "host:port" */
    const char *method;
    bool sends_body;
    struct cli_strv headers; /* opt.headers less those dropped on a redirect */
    struct wsk_tcp *tcp;     /* NULL once ended */
    enum phase phase;
    uint64_t body_sent;
    bool is_paused;

    /* The response. */
    struct cli_buf head;
    struct wsk_http_parser parser;
    struct wsk_http_response resp;
    struct wsk_http_body body;

    /* Redirects: the requests made so far, "METHOD URL" each. */
    struct cli_buf visited; /* "METHOD URL\0" for each request made */
    uint64_t redirects;
    char first_error[512]; /* the library's first error message */
};

/* Connects for the request to c->url with c->method. Returns 0, or -1
 * after saying why. */
int http_start_request(struct http_client *c);

/* The --max-time timer's callback (data: the client). */
void http_on_max_time(struct wsk_loop *loop, struct wsk_timer *t);

/* cli_out's drain callback (data: the client). */
void http_on_out_drain(struct cli_out *out, int error, void *data);

#endif
