/* wsk: the command-line tool. A thin user of <wsk.h>.
 *
 * main() dispatches to a subcommand (serve.c, connect.c, bench.c, danmaku.c); this file
 * also holds the helpers they share (cli.h): logging, option values, common options, the
 * event loop, buffers. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "wsk.h"

static const char usage[] =
    "usage: wsk <command> [options]\n"
    "\n"
    "WebSocket Kit: a fast, strict WebSocket toolkit.\n"
    "\n"
    "commands:\n"
    "  serve            run a WebSocket server: chat page, broadcast, echo, files;\n"
    "                   raw TCP and UDP listeners; bridges to programs (--exec)\n"
    "                   and to TCP servers (--proxy)\n"
    "  connect URL      a WebSocket, TCP or UDP client: interactive, or piping\n"
    "                   stdin and stdout\n"
    "  bench URL        a load generator: echo, handshake, idle and fanout benchmarks\n"
    "  danmaku ROOM     a Douyu live-chat client: a room's chat as lines or JSON\n"
    "  http URL         an HTTP/1.1 client: GET, POST, headers, redirects, https\n"
    "  help             show this help\n"
    "  version          print the version\n"
    "\n"
    "Run 'wsk <command> --help' for a command's options.\n";

/* A program started with stdin, stdout or stderr closed would get its first
 * sockets as fds 0-2, and then read keys from a socket or log into one. Fill
 * the gaps with /dev/null first. */
static void open_std_fds(void)
{
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
            int null_fd = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
            if (null_fd >= 0 && null_fd != fd) {
                dup2(null_fd, fd);
                close(null_fd);
            }
        }
    }
}

int main(int argc, char **argv)
{
    open_std_fds();
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        fputs(usage, stdout);
        return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("wsk %s\n", wsk_version());
        return CLI_EXIT_OK;
    }
    if (!strcmp(argv[1], "serve"))
        return cli_serve(argc - 1, argv + 1);
    if (!strcmp(argv[1], "connect"))
        return cli_connect(argc - 1, argv + 1);
    if (!strcmp(argv[1], "bench"))
        return cli_bench(argc - 1, argv + 1);
    if (!strcmp(argv[1], "danmaku"))
        return cli_danmaku(argc - 1, argv + 1);
    if (!strcmp(argv[1], "http"))
        return cli_http(argc - 1, argv + 1);
    fprintf(stderr, "wsk: unknown command '%s' (try 'wsk --help')\n", argv[1]);
    return CLI_EXIT_USAGE;
}

/* ---- logging ------------------------------------------------------------ */

/* Set once before any thread starts, read by all: the only global state the
 * helpers keep. The hook is for one-thread commands (wsk connect). */
static struct {
    const char *prog;
    int verbosity;
    cli_log_hook hook;
    void *hook_data;
} log_state = {"wsk", CLI_NORMAL, NULL, NULL};

/* wsk serve --threads: which thread said it, as " [thread 2]". */
static _Thread_local char log_tag[24];
static _Thread_local unsigned log_thread;

/* --log-format json: every line a JSON object. Set once at start. */
static bool log_is_json;

void cli_log_set_json(bool is_json)
{
    log_is_json = is_json;
}

/* "2026-12-05T13:04:05.123Z" */
static void log_time(char out[32])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, 24, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ts.tv_nsec / 1000000) % 1000);
}

/* s[0..len) as a JSON string, quotes included; bytes that are not UTF-8
 * text pass as they are, control characters as \u escapes. */
static int json_str(struct cli_buf *b, const char *s, size_t len)
{
    int rv = cli_buf_append(b, "\"", 1);
    for (size_t i = 0; i < len && rv == 0; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\')
            rv = cli_buf_printf(b, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f)
            rv = cli_buf_printf(b, "\\u%04x", ch);
        else
            rv = cli_buf_append(b, s + i, 1);
    }
    return rv == 0 ? cli_buf_append(b, "\"", 1) : rv;
}

static void log_write(struct cli_buf *line)
{
    if (log_state.hook)
        log_state.hook(line->ptr, line->len, log_state.hook_data);
    else
        (void)cli_write_all(STDERR_FILENO, line->ptr, line->len);
}

/* {"time":...,"prog":...,"thread":N,"level":...,"msg":...} */
static int json_line(struct cli_buf *b, const char *level, const char *msg, size_t msg_len)
{
    char when[32];
    log_time(when);
    int rv = cli_buf_printf(b, "{\"time\":\"%s\",\"prog\":", when);
    if (rv == 0)
        rv = json_str(b, log_state.prog, strlen(log_state.prog));
    if (rv == 0 && log_thread)
        rv = cli_buf_printf(b, ",\"thread\":%u", log_thread);
    if (rv == 0)
        rv = cli_buf_printf(b, ",\"level\":\"%s\",\"msg\":", level);
    if (rv == 0)
        rv = json_str(b, msg, msg_len);
    return rv == 0 ? cli_buf_append(b, "}\n", 2) : rv;
}

void cli_log_set_thread(unsigned n)
{
    log_thread = n;
    if (n)
        snprintf(log_tag, sizeof log_tag, " [thread %u]", n);
    else
        log_tag[0] = '\0';
}

void cli_log_init(const char *prog, int verbosity)
{
    log_state.prog = prog;
    log_state.verbosity = verbosity;
}

int cli_log_verbosity(void)
{
    return log_state.verbosity;
}

const char *cli_log_prog(void)
{
    return log_state.prog;
}

void cli_log_set_hook(cli_log_hook hook, void *data)
{
    log_state.hook = hook;
    log_state.hook_data = data;
}

static void log_line(const char *label, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* Formats the whole line first so it reaches the terminal in one write and
 * never interleaves with other output. */
static void log_line(const char *label, const char *fmt, va_list ap)
{
    struct cli_buf line = {0};
    va_list ap2;

    va_copy(ap2, ap);
    if (log_is_json) {
        struct cli_buf msg = {0};
        const char *level = !strcmp(label, "error: ")     ? "error"
                            : !strcmp(label, "warning: ") ? "warning"
                                                          : "info";
        if (cli_buf_vprintf(&msg, fmt, ap2) == 0 && json_line(&line, level, msg.ptr, msg.len) == 0)
            log_write(&line);
        cli_buf_reset(&msg);
    } else if (cli_buf_printf(&line, "%s%s: %s", log_state.prog, log_tag, label) < 0 ||
               cli_buf_vprintf(&line, fmt, ap2) < 0 || cli_buf_append(&line, "\n", 1) < 0) {
        /* Out of memory: still say something. */
        fprintf(stderr, "%s: %s", log_state.prog, label);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
    } else {
        log_write(&line);
    }
    va_end(ap2);
    cli_buf_reset(&line);
}

void cli_log_access(const char *peer, const char *method, size_t method_len, const char *path,
                    size_t path_len, int status, uint64_t bytes, const char *reason)
{
    if (log_state.verbosity < CLI_VERBOSE)
        return;
    struct cli_buf b = {0};
    char when[32];
    int rv;
    log_time(when);
    if (log_is_json) {
        rv = cli_buf_printf(&b, "{\"time\":\"%s\",\"prog\":", when);
        if (rv == 0)
            rv = json_str(&b, log_state.prog, strlen(log_state.prog));
        if (rv == 0 && log_thread)
            rv = cli_buf_printf(&b, ",\"thread\":%u", log_thread);
        if (rv == 0)
            rv = cli_buf_printf(&b, ",\"type\":\"access\",\"peer\":\"%s\",\"method\":", peer);
        if (rv == 0)
            rv = json_str(&b, method, method_len);
        if (rv == 0)
            rv = cli_buf_append(&b, ",\"path\":", 8);
        if (rv == 0)
            rv = json_str(&b, path, path_len);
        if (rv == 0)
            rv = cli_buf_printf(&b, ",\"status\":%d,\"bytes\":%llu", status,
                                (unsigned long long)bytes);
        if (rv == 0 && reason && *reason) {
            rv = cli_buf_append(&b, ",\"reason\":", 10);
            if (rv == 0)
                rv = json_str(&b, reason, strlen(reason));
        }
        if (rv == 0)
            rv = cli_buf_append(&b, "}\n", 2);
    } else {
        /* Printable bytes only: a request line is the client's to choose. */
        rv = cli_buf_printf(&b, "%s%s: %s %s \"", log_state.prog, log_tag, when, peer);
        for (size_t i = 0; rv == 0 && i < method_len + 1 + path_len; i++) {
            char ch = i < method_len ? method[i] : i == method_len ? ' ' : path[i - method_len - 1];
            rv = (unsigned char)ch < 0x20 || ch == 0x7f || ch == '"'
                     ? cli_buf_printf(&b, "\\x%02x", (unsigned char)ch)
                     : cli_buf_append(&b, &ch, 1);
        }
        if (rv == 0)
            rv = cli_buf_printf(&b, "\" %d %llu", status, (unsigned long long)bytes);
        /* The library's phrases are printable ASCII without quotes. */
        if (rv == 0 && reason && *reason)
            rv = cli_buf_printf(&b, " \"%s\"", reason);
        if (rv == 0)
            rv = cli_buf_append(&b, "\n", 1);
    }
    if (rv == 0)
        log_write(&b);
    cli_buf_reset(&b);
}

void cli_log(int level, const char *fmt, ...)
{
    va_list ap;

    if (level > 0 && level > log_state.verbosity)
        return;
    va_start(ap, fmt);
    log_line("", fmt, ap);
    va_end(ap);
}

static void log_labelled(const char *label, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void log_labelled(const char *label, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_line(label, fmt, ap);
    va_end(ap);
}

void cli_log_library(int level, const char *msg, void *user_data)
{
    (void)user_data;
    if (level > 0 && level > log_state.verbosity)
        return;
    log_labelled(level == 0 ? "error: " : level == 1 ? "warning: " : "", "%s", msg);
}

int cli_usage_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_line("", fmt, ap);
    va_end(ap);
    fprintf(stderr, "Try '%s --help' for more information.\n", log_state.prog);
    return CLI_EXIT_USAGE;
}

/* ---- option values ------------------------------------------------------ */

/* Leading digits of s as a number; *end points past them. strtoull() would
 * also take signs, spaces and hex, which no option wants. */
static int parse_digits(const char *s, const char **end, uint64_t *out)
{
    uint64_t v = 0;

    if (*s < '0' || *s > '9')
        return -EINVAL;
    for (; *s >= '0' && *s <= '9'; s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -ERANGE;
        v = v * 10 + d;
    }
    *end = s;
    *out = v;
    return 0;
}

int cli_parse_count(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    const char *end;
    uint64_t v;
    int rv = parse_digits(s, &end, &v);

    if (rv < 0)
        return rv;
    if (*end)
        return -EINVAL;
    if (v < min || v > max)
        return -ERANGE;
    *out = v;
    return 0;
}

int cli_parse_bytes(const char *s, uint64_t max, uint64_t *out)
{
    const char *end;
    uint64_t v, unit = 1;
    int rv = parse_digits(s, &end, &v);

    if (rv < 0)
        return rv;
    switch (*end) {
    case '\0':
        break;
    case 'k':
    case 'K':
        unit = 1024;
        break;
    case 'm':
    case 'M':
        unit = 1024 * 1024;
        break;
    case 'g':
    case 'G':
        unit = 1024 * 1024 * 1024;
        break;
    default:
        return -EINVAL;
    }
    if (*end && end[1])
        return -EINVAL;
    if (v > UINT64_MAX / unit)
        return -ERANGE;
    v *= unit;
    if (v < 1 || v > max)
        return -ERANGE;
    *out = v;
    return 0;
}

int cli_parse_seconds(const char *s, uint32_t *out_ms)
{
    const uint64_t max_ms = UINT32_MAX - 1;
    uint64_t ms = 0;
    bool has_digits = false, is_positive = false;
    const char *p = s;

    for (; *p >= '0' && *p <= '9'; p++) {
        ms = ms * 10 + (uint64_t)(*p - '0') * 1000;
        if (ms > max_ms)
            return -ERANGE;
        has_digits = true;
        is_positive |= *p != '0';
    }
    if (*p == '.') {
        uint64_t scale = 100; /* milliseconds per unit of the next digit */
        for (p++; *p >= '0' && *p <= '9'; p++) {
            ms += (uint64_t)(*p - '0') * scale;
            scale /= 10;
            has_digits = true;
            is_positive |= *p != '0';
        }
    }
    if (*p || !has_digits)
        return -EINVAL;
    if (ms > max_ms)
        return -ERANGE;
    /* "0.0001" is positive: make it the shortest timer there is. */
    if (ms == 0 && is_positive)
        ms = 1;
    *out_ms = (uint32_t)ms;
    return 0;
}

/* The port of a --listen value, or why it is not one. */
static const char *listen_port(const char *s, uint64_t *port)
{
    int rv;

    if (!*s)
        return "no port after ':'";
    rv = cli_parse_count(s, 0, 65535, port);
    if (rv == -ERANGE)
        return "the port is not from 0 to 65535";
    if (rv < 0)
        return "the port is not a number";
    return NULL;
}

int cli_parse_listen_addr(const char *s, const char *default_host, struct cli_listen_addr *out,
                          const char **why)
{
    const char *host = default_host, *port_str = s, *reason;
    size_t host_len = strlen(default_host);
    bool is_ipv6 = strchr(default_host, ':') != NULL;
    uint64_t port;
    char *copy;

    *why = NULL;
    if (!*s) {
        *why = "empty";
        return -EINVAL;
    }
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close)
            *why = "no ']' after the IPv6 address";
        else if (close == s + 1)
            *why = "no IPv6 address between the brackets";
        else if (!memchr(s + 1, ':', (size_t)(close - s - 1)))
            *why = "brackets are for IPv6 addresses only";
        else if (close[1] != ':')
            *why = "no ':PORT' after ']'";
        if (*why)
            return -EINVAL;
        host = s + 1;
        host_len = (size_t)(close - host);
        port_str = close + 2;
        is_ipv6 = true;
    } else if (strchr(s, ':')) {
        const char *colon = strrchr(s, ':');
        host = s;
        host_len = (size_t)(colon - s);
        port_str = colon + 1;
        /* "::1:8080" cannot be split safely; RFC 3986 wants brackets. */
        if (memchr(host, ':', host_len)) {
            *why = "more than one ':'";
            return -EINVAL;
        }
        is_ipv6 = false;
    } else if (strchr(s, '.') || !strchr("0123456789+-", s[0])) {
        /* A host alone, like "example.com" or "1.2.3.4"; "-1" is a port. */
        *why = "no ':PORT'";
        return -EINVAL;
    }
    if ((reason = listen_port(port_str, &port)) != NULL) {
        *why = reason;
        return -EINVAL;
    }
    if (host_len == 0) {
        *why = "no host before ':'";
        return -EINVAL;
    }
    copy = malloc(host_len + 1);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, host, host_len);
    copy[host_len] = '\0';
    out->host = copy;
    out->port = (uint16_t)port;
    out->is_ipv6 = is_ipv6;
    return 0;
}

void cli_listen_addr_reset(struct cli_listen_addr *a)
{
    free(a->host);
    a->host = NULL;
}

bool cli_is_token(const char *s)
{
    static const char specials[] = "!#$%&'*+-.^_`|~";

    if (!*s)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c && strchr(specials, c))))
            return false;
    }
    return true;
}

int cli_strv_push(struct cli_strv *l, const char *s)
{
    if (l->len == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        const char **v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->len++] = s;
    return 0;
}

void cli_strv_reset(struct cli_strv *l)
{
    free(l->v);
    l->v = NULL;
    l->len = l->cap = 0;
}

/* ---- what every subcommand does ------------------------------------------ */

/* Levenshtein distance of a[0..an) and b, up to 32 bytes each (longer: far). */
static size_t edit_distance(const char *a, size_t an, const char *b)
{
    size_t bn = strlen(b), row[33];
    if (an > 32 || bn > 32)
        return SIZE_MAX;
    for (size_t j = 0; j <= bn; j++)
        row[j] = j;
    for (size_t i = 1; i <= an; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= bn; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            if (up + 1 < best)
                best = up + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[bn];
}

/* The long option nearest to arg ("--treads=2" -> "threads"), or NULL when
 * none is within two edits (or one, for short names). */
static const char *nearest_option(const char *arg, const struct option *longopts)
{
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    if (!longopts || strncmp(arg, "--", 2) != 0)
        return NULL;
    arg += 2;
    size_t n = strcspn(arg, "=");
    for (const struct option *o = longopts; o->name; o++) {
        size_t d = edit_distance(arg, n, o->name);
        if (d < best_d) {
            best_d = d;
            best = o->name;
        }
    }
    return best && best_d <= (n > 4 ? 2u : 1u) ? best : NULL;
}

int cli_common_option(int c, char **argv, const char *help, const struct option *longopts,
                      int max_verbosity, int *verbosity)
{
    switch (c) {
    case 'v':
        *verbosity = *verbosity < CLI_VERBOSE ? CLI_VERBOSE : CLI_DEBUG;
        if (*verbosity > max_verbosity)
            *verbosity = max_verbosity;
        return 0;
    case 'q':
        *verbosity = CLI_QUIET;
        return 0;
    case 'h':
        fputs(help, stdout);
        return -1;
    case ':':
        return cli_usage_error("option '%s' needs a value", argv[optind - 1]);
    default: {
        const char *near = nearest_option(argv[optind - 1], longopts);
        if (near)
            return cli_usage_error("unknown option '%s' (did you mean --%s?)", argv[optind - 1],
                                   near);
        return cli_usage_error("unknown option '%s'", argv[optind - 1]);
    }
    }
}

int cli_add_subprotocol(struct cli_strv *list, const char *name)
{
    if (!cli_is_token(name))
        return cli_usage_error("--subprotocol '%s': expected a token like chat.v1 (no "
                               "spaces or commas)",
                               name);
    if (cli_strv_push(list, name) < 0)
        return cli_usage_error("out of memory");
    return 0;
}

int cli_loop_new(struct wsk_loop **out, enum wsk_backend backend)
{
    struct wsk_loop_config cfg;
    int rv;

    wsk_loop_config_init(&cfg);
    cfg.backend = backend;
    rv = wsk_loop_new(out, &cfg);
    if (rv < 0) {
        cli_error("cannot create the event loop: %s", wsk_strerror(rv));
        return CLI_EXIT_FAILURE;
    }
    static bool told;
    if (backend == WSK_BACKEND_IO_URING && strcmp(wsk_loop_backend_name(*out), "io_uring") != 0 &&
        !told) {
        told = true;
        cli_info("io_uring is not available here (kernel, seccomp policy or build): using %s",
                 wsk_loop_backend_name(*out));
    }
    return 0;
}

int cli_loop_run(struct wsk_loop *loop)
{
    int rv = wsk_loop_run(loop);

    if (rv < 0) {
        cli_error("event loop failed: %s", wsk_strerror(rv));
        return CLI_EXIT_FAILURE;
    }
    return CLI_EXIT_OK;
}

/* ---- bytes -------------------------------------------------------------- */

static int buf_reserve(struct cli_buf *b, size_t extra)
{
    size_t cap;
    char *p;

    if (extra <= b->cap - b->len)
        return 0;
    if (extra > SIZE_MAX - b->len)
        return -ENOMEM;
    cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra)
        cap = cap > SIZE_MAX / 2 ? b->len + extra : cap * 2;
    p = realloc(b->ptr, cap);
    if (!p)
        return -ENOMEM;
    b->ptr = p;
    b->cap = cap;
    return 0;
}

int cli_buf_append(struct cli_buf *b, const void *data, size_t len)
{
    if (len == 0)
        return 0;
    if (buf_reserve(b, len) < 0)
        return -ENOMEM;
    memcpy(b->ptr + b->len, data, len);
    b->len += len;
    return 0;
}

int cli_buf_vprintf(struct cli_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    int n;

    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return -EINVAL;
    if (buf_reserve(b, (size_t)n + 1) < 0)
        return -ENOMEM;
    vsnprintf(b->ptr + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int cli_buf_printf(struct cli_buf *b, const char *fmt, ...)
{
    va_list ap;
    int rv;

    va_start(ap, fmt);
    rv = cli_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rv;
}

void cli_buf_reset(struct cli_buf *b)
{
    free(b->ptr);
    b->ptr = NULL;
    b->len = b->cap = 0;
}

int cli_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;

    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}
