/* wsk http: an HTTP/1.1 client for scripts, on the library's own HTTP code
 * (wsk/http.h) and the wsk loop. This file has the command line; the
 * transfer itself is http_transfer.c, stdout's back-pressure output.c. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http_client.h"

#define DEFAULT_MAX_REDIRS      5
#define DEFAULT_CONNECT_TIMEOUT 10000u
#define OUT_HIGH                (256u * 1024) /* stdout behind by this much: pause reading */

static const char http_usage[] =
    "usage: wsk http URL [options]\n"
    "\n"
    "Makes one HTTP/1.1 request to URL (http://HOST[:PORT][/PATH][?QUERY] or\n"
    "https://...) and writes the response body to stdout, byte for byte. HOST is a\n"
    "name, an IPv4 address or an IPv6 address in brackets. An https:// server's\n"
    "certificate must be valid for HOST and issued by a CA of the system's store\n"
    "(or of --cacert).\n"
    "\n"
    "options:\n"
    "  -X, --method METHOD     the request method (default GET, or POST with --data)\n"
    "  -d, --data TEXT|@FILE   send TEXT, or the bytes of FILE ('@-': stdin), as the\n"
    "                          request body, with its Content-Length; makes the\n"
    "                          request a POST unless -X says otherwise. Bytes go as\n"
    "                          they are (like curl --data-binary; --data-binary is\n"
    "                          accepted too)\n"
    "  -H, --header 'NAME: VALUE'\n"
    "                          add a request header; repeat for more. A Host,\n"
    "                          User-Agent, Connection or Accept header replaces\n"
    "                          wsk's own (Accept: */*); Content-Length and\n"
    "                          Transfer-Encoding are wsk's\n"
    "  -A, --user-agent TEXT   the User-Agent header (default wsk/VERSION)\n"
    "  -i, --include           write the status line and headers (as received) to\n"
    "                          stdout before the body; with -L, of every response\n"
    "  -I, --head              a HEAD request, printing the head only (-X HEAD -i)\n"
    "  -L, --location          follow redirects (301, 302, 303, 307, 308 with a\n"
    "                          Location), at most --max-redirs times. 303, and 301\n"
    "                          or 302 after a POST, continue as GET without the\n"
    "                          body, as curl and browsers do; 307 and 308 repeat\n"
    "                          the method and body. Authorization and Cookie\n"
    "                          headers are dropped when the host changes\n"
    "      --max-redirs N      redirects -L follows (default 5); one more, or a URL\n"
    "                          visited twice with the same method, is an error\n"
    "      --max-time SECONDS  give up when the whole transfer, redirects included,\n"
    "                          takes longer (default: no limit)\n"
    "      --connect-timeout SECONDS\n"
    "                          time allowed for the name lookup, the TCP\n"
    "                          connection and TLS of each request (default 10)\n"
    "      --cacert FILE       https://: trust only the CA certificates in FILE\n"
    "                          (PEM), e.g. a private CA, instead of the system's\n"
    "      --insecure          https://: do not verify the server's certificate at\n"
    "                          all (for tests)\n"
    "      --backend NAME      event loop: epoll, poll, select or io_uring (default epoll)\n"
    "  -v, --verbose           show the request and response heads on stderr\n"
    "  -q, --quiet             print nothing on stderr but errors\n"
    "  -h, --help              show this help\n"
    "\n"
    "SECONDS may have a fraction: 0.5.\n"
    "\n"
    "examples:\n"
    "  wsk http https://example.com/                       GET, body to stdout\n"
    "  wsk http -i http://127.0.0.1:8080/status            status line and headers too\n"
    "  wsk http -d '{\"a\":1}' -H 'Content-Type: application/json' http://h/api\n"
    "  wsk http --data @photo.jpg -X PUT http://h/upload   a file as the body\n"
    "  wsk http -L http://h/old | sha256sum                follow redirects\n"
    "  wsk http --cacert ca.pem https://localhost:8443/    a private CA\n"
    "\n"
    "Exit status: 0 for a final answer of 1xx, 2xx or 3xx (a redirect not followed);\n"
    "22 for 4xx and 5xx (the body is still written, like curl --fail-with-body);\n"
    "1 when the request fails (name lookup, connection, TLS verification, timeout,\n"
    "a malformed answer, a body cut short, too many redirects), with one line on\n"
    "stderr saying why; 2 for a bad command line.\n";

/* ---- options ------------------------------------------------------------- */

enum {
    OPT_MAX_REDIRS = 256,
    OPT_MAX_TIME,
    OPT_CONNECT_TIMEOUT,
    OPT_CACERT,
    OPT_INSECURE,
    OPT_BACKEND,
};

static const struct option http_longopts[] = {
    {"method", required_argument, NULL, 'X'},
    {"request", required_argument, NULL, 'X'},
    {"data", required_argument, NULL, 'd'},
    {"data-binary", required_argument, NULL, 'd'},
    {"header", required_argument, NULL, 'H'},
    {"user-agent", required_argument, NULL, 'A'},
    {"include", no_argument, NULL, 'i'},
    {"head", no_argument, NULL, 'I'},
    {"location", no_argument, NULL, 'L'},
    {"max-redirs", required_argument, NULL, OPT_MAX_REDIRS},
    {"max-time", required_argument, NULL, OPT_MAX_TIME},
    {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
    {"cacert", required_argument, NULL, OPT_CACERT},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {"backend", required_argument, NULL, OPT_BACKEND},
    CLI_COMMON_LONGOPTS,
};

static bool has_control_chars(const char *s)
{
    for (; *s; s++)
        if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f)
            return true;
    return false;
}

/* "Name: value": a token, a colon, a value without control characters. */
static bool is_header(const char *s)
{
    const char *colon = strchr(s, ':');
    if (!colon || colon == s || has_control_chars(colon + 1))
        return false;
    char *name = strndup(s, (size_t)(colon - s));
    bool is_ok = name && cli_is_token(name);
    free(name);
    return is_ok;
}

static bool is_named(const char *header, const char *name)
{
    size_t n = strlen(name);
    return strncasecmp(header, name, n) == 0 && header[n] == ':';
}

/* --data @FILE: a regular file is streamed from disk (its size is the
 * Content-Length); stdin ('@-') and other files are read whole first, since
 * the length must be known before the body goes. */
static int load_body(struct body_source *b, const char *arg)
{
    b->fd = -1;
    if (arg[0] != '@') {
        b->text = arg;
        b->len = strlen(arg);
        return 0;
    }
    b->path = arg + 1;
    int fd = strcmp(b->path, "-") ? open(b->path, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        return cli_usage_error("--data @%s: %s", b->path, strerror(errno));
    if (S_ISREG(st.st_mode) && fd != STDIN_FILENO) {
        b->fd = fd;
        b->len = (uint64_t)st.st_size;
        return 0;
    }
    struct cli_buf all = {0};
    for (;;) {
        char chunk[65536];
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || (n > 0 && cli_buf_append(&all, chunk, (size_t)n) < 0)) {
            int err = n < 0 ? errno : ENOMEM;
            cli_buf_reset(&all);
            if (fd != STDIN_FILENO)
                close(fd);
            return cli_usage_error("--data @%s: %s", b->path, strerror(err));
        }
        if (n == 0)
            break;
    }
    if (fd != STDIN_FILENO)
        close(fd);
    b->owned = all.ptr;
    b->text = all.ptr ? all.ptr : "";
    b->len = all.len;
    return 0;
}

/* Returns 0 to run, -1 after --help, or an exit status (> 0) for an error. */
static int parse_options(struct http_options *opt, int argc, char **argv)
{
    int c, rv;
    bool is_head = false;
    const char *data = NULL;
    uint64_t n;

    opt->max_redirs = DEFAULT_MAX_REDIRS;
    opt->connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT;
    opt->backend = WSK_BACKEND_DEFAULT;
    opt->verbosity = CLI_NORMAL;
    opt->body.fd = -1;

    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":X:d:H:A:iILvqh", http_longopts, NULL)) != -1) {
        switch (c) {
        case 'X':
            if (!cli_is_token(optarg))
                return cli_usage_error("--method '%s': expected a method like GET or PUT", optarg);
            opt->method = optarg;
            break;
        case 'd':
            if (data)
                return cli_usage_error("--data given twice");
            data = optarg;
            break;
        case 'H':
            if (has_control_chars(optarg))
                return cli_usage_error("--header: a line break or control character in the "
                                       "header (expected 'Name: value')");
            if (!is_header(optarg))
                return cli_usage_error("--header '%s': expected 'Name: value'", optarg);
            if (is_named(optarg, "Content-Length") || is_named(optarg, "Transfer-Encoding"))
                return cli_usage_error("--header '%s': wsk http sets the body's framing itself",
                                       optarg);
            if (cli_strv_push(&opt->headers, optarg) < 0)
                return cli_usage_error("out of memory");
            break;
        case 'A':
            if (has_control_chars(optarg))
                return cli_usage_error("--user-agent: no control characters");
            opt->user_agent = optarg;
            break;
        case 'i':
            opt->is_include = true;
            break;
        case 'I':
            is_head = true;
            break;
        case 'L':
            opt->is_location = true;
            break;
        case OPT_MAX_REDIRS:
            if (cli_parse_count(optarg, 0, 1000, &n) < 0)
                return cli_usage_error("--max-redirs '%s': expected a count from 0 to 1000",
                                       optarg);
            opt->max_redirs = n;
            break;
        case OPT_MAX_TIME:
            if (cli_parse_seconds(optarg, &opt->max_time_ms) < 0 || opt->max_time_ms == 0)
                return cli_usage_error("--max-time '%s': expected positive seconds like 30 "
                                       "or 0.5",
                                       optarg);
            break;
        case OPT_CONNECT_TIMEOUT:
            if (cli_parse_seconds(optarg, &opt->connect_timeout_ms) < 0 ||
                opt->connect_timeout_ms == 0)
                return cli_usage_error("--connect-timeout '%s': expected positive seconds "
                                       "like 10 or 0.5",
                                       optarg);
            break;
        case OPT_CACERT:
            if (!*optarg)
                return cli_usage_error("--cacert needs a file");
            opt->ca_file = optarg;
            break;
        case OPT_INSECURE:
            opt->is_insecure = true;
            break;
        case OPT_BACKEND:
            if (wsk_backend_parse(optarg, &opt->backend) < 0)
                return cli_usage_error("--backend '%s': expected epoll, poll, select or io_uring",
                                       optarg);
            break;
        default:
            if ((rv = cli_common_option(c, argv, http_usage, http_longopts, CLI_DEBUG,
                                        &opt->verbosity)) != 0)
                return rv;
            break;
        }
    }
    if (optind >= argc)
        return cli_usage_error("missing the URL (http://HOST[:PORT]/PATH or https://...)");
    opt->url = argv[optind++];
    if (optind < argc)
        return cli_usage_error("unexpected argument '%s'", argv[optind]);
    if (opt->ca_file && opt->is_insecure)
        return cli_usage_error("--cacert and --insecure contradict each other: with --insecure "
                               "nothing is verified");
    if (is_head) {
        if (data || (opt->method && strcmp(opt->method, "HEAD")))
            return cli_usage_error("--head makes a HEAD request, without a body");
        opt->method = "HEAD";
        opt->is_include = true;
    }
    struct wsk_url u;
    if (wsk_url_parse(opt->url, strlen(opt->url), &u) < 0)
        return cli_usage_error("'%s' is not a URL: %s (at byte %zu)", opt->url, u.error,
                               u.error_at);
    if (u.scheme != WSK_URL_HTTP && u.scheme != WSK_URL_HTTPS)
        return cli_usage_error("'%s' is not an http:// or https:// URL", opt->url);
    if (data) {
        if ((rv = load_body(&opt->body, data)) != 0)
            return rv;
        opt->has_body = true;
    }
    if (!opt->user_agent)
        opt->user_agent = "wsk/" WSK_VERSION_STRING;
    return 0;
}

/* ---- running ------------------------------------------------------------- */

static int run(struct http_client *c)
{
    int rv;
    if ((rv = cli_loop_new(&c->loop, c->opt.backend)) != 0)
        return rv;
    cli_out_init(&c->out, c->loop, STDOUT_FILENO, OUT_HIGH, http_on_out_drain, c);
    wsk_timer_init(&c->max_timer, http_on_max_time, c);
    if (c->opt.max_time_ms)
        wsk_timer_start(c->loop, &c->max_timer, c->opt.max_time_ms, 0);
    c->method = c->opt.method ? c->opt.method : c->opt.has_body ? "POST" : "GET";
    c->sends_body = c->opt.has_body;
    /* Any media type, as curl and Python's requests accept, unless -H sets Accept. */
    bool has_accept = false;
    for (size_t i = 0; i < c->opt.headers.len; i++)
        has_accept |= is_named(c->opt.headers.v[i], "Accept");
    if (!has_accept && cli_strv_push(&c->headers, "Accept: */*") < 0) {
        cli_error("out of memory");
        return CLI_EXIT_FAILURE;
    }
    for (size_t i = 0; i < c->opt.headers.len; i++)
        if (cli_strv_push(&c->headers, c->opt.headers.v[i]) < 0) {
            cli_error("out of memory");
            return CLI_EXIT_FAILURE;
        }
    c->url = strdup(c->opt.url);
    if (!c->url) {
        cli_error("out of memory");
        return CLI_EXIT_FAILURE;
    }
    if (c->opt.is_insecure && !strncasecmp(c->url, "https:", 6))
        cli_info("warning: --insecure: the server's certificate is not verified; anyone on the "
                 "path can read and change this transfer");
    if (http_start_request(c) < 0) {
        wsk_timer_stop(c->loop, &c->max_timer);
        return CLI_EXIT_FAILURE;
    }
    if ((rv = cli_loop_run(c->loop)) != 0)
        return rv;
    if (c->phase != PHASE_DONE) {
        cli_error("the transfer did not finish");
        return CLI_EXIT_FAILURE;
    }
    return c->status;
}

int cli_http(int argc, char **argv)
{
    struct http_client c = {0};
    int status;

    cli_log_init("wsk http", CLI_NORMAL);
    status = parse_options(&c.opt, argc, argv);
    if (status == 0) {
        cli_log_init("wsk http", c.opt.verbosity);
        /* A reader that goes away must show as EPIPE, not kill us. */
        signal(SIGPIPE, SIG_IGN);
        status = run(&c);
    }
    if (c.loop) {
        cli_out_reset(&c.out);
        wsk_loop_free(c.loop);
    }
    cli_buf_reset(&c.visited);
    cli_strv_reset(&c.headers);
    cli_strv_reset(&c.opt.headers);
    cli_buf_reset(&c.head);
    free(c.url);
    free(c.opt.body.owned);
    if (c.opt.body.fd >= 0)
        close(c.opt.body.fd);
    return status < 0 ? CLI_EXIT_OK : status;
}
