/* wsk command-line tool: what the subcommands share. Option values, logging,
 * the common options, the event loop and small growable buffers; the helpers
 * live in main.c. The tool uses only the public API in <wsk.h>, except
 * wsk bench's TLS (bench_tls.c calls OpenSSL directly; see there why). */
#ifndef WSK_CLI_H
#define WSK_CLI_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wsk.h"

/* Exit statuses shared by every subcommand. */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAILURE = 1, /* the network or the peer failed */
    CLI_EXIT_USAGE = 2,   /* bad command line */
};

/* -q, default, -v, -vv. Library diagnostics of level N show at verbosity N. */
enum cli_verbosity {
    CLI_QUIET = 0,
    CLI_NORMAL = 1,
    CLI_VERBOSE = 2,
    CLI_DEBUG = 3,
};

/* Subcommands: argv[0] is the subcommand's name. They return the exit status. */
int cli_serve(int argc, char **argv);
int cli_connect(int argc, char **argv);
int cli_bench(int argc, char **argv);
int cli_danmaku(int argc, char **argv);
int cli_http(int argc, char **argv);

/* ---- logging ------------------------------------------------------------ */

/* Every line on stderr starts with prog ("wsk serve"). */
void cli_log_init(const char *prog, int verbosity);
int cli_log_verbosity(void);
const char *cli_log_prog(void);

/* Receives each finished diagnostic line (with its '\n') instead of stderr;
 * the interactive client uses it to print above its prompt. NULL restores
 * stderr. */
typedef void (*cli_log_hook)(const char *line, size_t len, void *data);
void cli_log_set_hook(cli_log_hook hook, void *data);
/* Tags this thread's lines (wsk serve --threads: " [thread 2]", and
 * "thread":2 in JSON); 0: none. */
void cli_log_set_thread(unsigned n);
/* --log-format json: every line a JSON object with time, prog, thread (with
 * --threads), level and msg. Call before threads start. */
void cli_log_set_json(bool is_json);
/* With -v, one access-log line for an answer to a request: text
 * 'prog: TIME PEER "METHOD PATH" STATUS BYTES', then ' "REASON"' when a
 * refusal has one, or a JSON object with "type":"access" (and "reason"). */
void cli_log_access(const char *peer, const char *method, size_t method_len, const char *path,
                    size_t path_len, int status, uint64_t bytes, const char *reason);

/* Writes "prog: message\n" when verbosity >= level. Errors (level 0) always
 * show. */
void cli_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define cli_error(...)   cli_log(0, __VA_ARGS__)
#define cli_info(...)    cli_log(CLI_NORMAL, __VA_ARGS__)
#define cli_verbose(...) cli_log(CLI_VERBOSE, __VA_ARGS__)

/* A wsk_log_cb: library diagnostics, error and warning levels labelled. */
void cli_log_library(int level, const char *msg, void *user_data);

/* Prints "prog: message" and a hint to run --help; returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- option values ------------------------------------------------------ */

/* Each returns 0, or -EINVAL / -ERANGE with *out untouched. */

/* A decimal count in [min, max]. */
int cli_parse_count(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* A byte size in [1, max]: "4096", "64k", "16M" (k and m are 1024-based; g
 * is accepted too). */
int cli_parse_bytes(const char *s, uint64_t max, uint64_t *out);

/* Seconds with an optional fraction ("10", "0.5") as milliseconds, at most
 * UINT32_MAX - 1. A positive value never rounds down to 0 ms. */
int cli_parse_seconds(const char *s, uint32_t *out_ms);

/* "HOST:PORT", "[IPV6]:PORT" or a bare "PORT" (host default_host). host is a
 * copy without brackets; free it with cli_listen_addr_reset(). Returns 0,
 * -ENOMEM, or -EINVAL with *why saying what is wrong ("no port after ':'"). */
struct cli_listen_addr {
    char *host;
    uint16_t port;
    bool is_ipv6; /* needs brackets in a URL */
};
int cli_parse_listen_addr(const char *s, const char *default_host, struct cli_listen_addr *out,
                          const char **why);
void cli_listen_addr_reset(struct cli_listen_addr *a);

/* An RFC 9110 token (a subprotocol name, a header name). */
bool cli_is_token(const char *s);

/* Repeated options (--origin A --origin B), borrowed from argv. */
struct cli_strv {
    const char **v;
    size_t len;
    size_t cap;
};
int cli_strv_push(struct cli_strv *l, const char *s);
void cli_strv_reset(struct cli_strv *l);

/* ---- what every subcommand does ------------------------------------------ */

/* The long options behind cli_common_option(); they end each subcommand's
 * table. The including file needs <getopt.h>. */
#define CLI_COMMON_LONGOPTS                                                                        \
    {"verbose", no_argument, NULL, 'v'}, {"quiet", no_argument, NULL, 'q'},                        \
        {"help", no_argument, NULL, 'h'},                                                          \
    {                                                                                              \
        NULL, 0, NULL, 0                                                                           \
    }

/* Handles an option the subcommand's own switch does not: -v (each one a
 * step up, to at most max_verbosity), -q, -h (prints help to stdout), and
 * getopt_long()'s ':' and '?' when opterr is 0 and the optstring starts with
 * ':' (an unknown option is answered with the nearest of longopts, if one is
 * within two edits). Returns 0 to go on, -1 after -h, or CLI_EXIT_USAGE. */
struct option;
int cli_common_option(int c, char **argv, const char *help, const struct option *longopts,
                      int max_verbosity, int *verbosity);

/* --subprotocol NAME: a token, added to list. Returns 0, or CLI_EXIT_USAGE
 * after saying why. */
int cli_add_subprotocol(struct cli_strv *list, const char *name);

/* A new loop with the chosen backend into *out. Returns 0, or
 * CLI_EXIT_FAILURE after saying why. */
int cli_loop_new(struct wsk_loop **out, enum wsk_backend backend);

/* Runs the loop until it stops. Returns CLI_EXIT_OK, or CLI_EXIT_FAILURE
 * after saying why. */
int cli_loop_run(struct wsk_loop *loop);

/* ---- bytes -------------------------------------------------------------- */

struct cli_buf {
    char *ptr;
    size_t len;
    size_t cap;
};
/* Both return 0 or -ENOMEM (the buffer is unchanged then). */
int cli_buf_append(struct cli_buf *b, const void *data, size_t len);
int cli_buf_printf(struct cli_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cli_buf_vprintf(struct cli_buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
void cli_buf_reset(struct cli_buf *b);

/* write(2) until everything is out, retrying on EINTR. 0 or a negative errno. */
int cli_write_all(int fd, const void *data, size_t len);

#endif
