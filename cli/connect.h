/* wsk connect: what connect.c (options, stdin, WebSocket, running),
 * connect_term.c (the terminal) and connect_raw.c (tcp:// and udp://)
 * share. */
#ifndef WSK_CLI_CONNECT_H
#define WSK_CLI_CONNECT_H

#include <stdarg.h>

#include "cli.h"
#include "lineedit.h"

/* Exit status: the server closed with an error or application code. */
#define CONNECT_EXIT_CLOSE_CODE 3

#define BINARY_PREVIEW 32    /* bytes of a binary message shown on a terminal */
#define RAW_UDP_MAX    65507 /* the largest UDP payload over IPv4 */

enum connect_mode {
    MODE_PIPE,
    MODE_TERMINAL,
    MODE_ECHO,
};

struct connect_options {
    const char *url;
    struct cli_strv headers;
    struct cli_strv subprotocols;
    const char *origin;
    bool is_binary;
    bool is_echo;
    enum wsk_backend backend;
    uint64_t max_message;
    uint32_t connect_timeout_ms;
    uint32_t wait_ms;          /* after stdin ends: close once nothing came for this long */
    bool is_no_close;          /* after stdin ends: wait for the server's close */
    bool is_base64;            /* pipe output: "text BASE64" / "binary BASE64" lines */
    const char *user_agent;    /* NULL: no User-Agent header */
    bool is_show_ping;         /* print pings and pongs that arrive */
    uint32_t ping_interval_ms; /* keepalive pings; 0: the library's default */
    const char *ca_file;
    bool is_insecure;
    const char *cert_file; /* --cert, --key: a client certificate */
    const char *key_file;
    bool is_reconnect; /* --reconnect: after a lost connection, again */
    const char *proxy; /* --proxy URL ("": none); else from the environment */
    bool has_proxy;    /* --proxy was given */
    bool has_deflate;
    int verbosity;
};

#define PROXY_SHOWN_MAX 300

enum link_kind {
    LINK_WS,  /* ws://, wss:// */
    LINK_TCP, /* tcp:// */
    LINK_UDP, /* udp:// */
};

struct client {
    struct connect_options opt;
    enum connect_mode mode;
    enum link_kind link;
    struct wsk_loop *loop;
    struct wsk_conn *conn; /* NULL once on_close has run */
    struct wsk_tcp *tcp;   /* likewise, for tcp:// */
    struct wsk_udp *udp;   /* udp://: freed when the client is done */
    bool is_linked;        /* conn, tcp or udp is alive */
    int status;            /* exit status so far */
    bool is_open;
    bool is_closing;     /* our close frame is on its way */
    bool is_interrupted; /* ^C or a signal asked to stop; a second time exits */
    bool is_stdout_broken;

    /* /ping: the pong that answers it shows the round-trip time. */
    uint8_t ping_data[125];
    size_t ping_len;
    uint64_t ping_sent_ns;
    bool is_ping_pending;

    /* stdin. Files cannot be watched (epoll says EPERM and poll says "always
     * ready"), so they are read a chunk per loop iteration from a timer. */
    struct wsk_io stdin_io;
    struct wsk_timer stdin_timer;
    bool is_stdin_watched;
    bool is_stdin_polled;
    bool is_stdin_eof;
    bool is_paused; /* send queue full: wait for on_drain */
    char *in;       /* a chunk read but not sent yet (pipe mode) */
    size_t in_off;
    size_t in_len;
    struct cli_buf partial; /* the start of a line whose newline has not come */
    uint64_t line_no;

    struct wsk_timer linger; /* udp://: replies still come after stdin's end */
    struct wsk_timer quiet;  /* ws://: after stdin's end, the --wait for replies */
    /* --reconnect: the configuration to connect with again, and when. */
    struct wsk_client_config ws_cfg;
    struct wsk_timer retry;
    uint32_t backoff_ms;
    bool was_reconnecting;  /* the open under way follows a lost connection */
    struct cli_buf rx_line; /* tcp:// on a terminal: a line being received */

    char *url_copy;                    /* http(s):// given: the ws(s):// URL used */
    char *user_agent;                  /* the "User-Agent: ..." header line sent */
    char proxy_shown[PROXY_SHOWN_MAX]; /* the proxy setting, password hidden */
    struct lineedit le;                /* terminal mode */
    char first_error[512];             /* the library's first error message */
};

/* ---- connect.c ---- */

/* Closes the link (ws://: with code and reason, NULL for none). */
void client_close(struct client *c, unsigned code, const char *reason);

/* ---- connect_cmd.c ---- */

/* A line typed on the terminal: true when it was a command (/ping, /close,
 * /help, or an unknown one), handled; false to send it ("//x" included:
 * the caller sends "/x"). */
bool client_command(struct client *c, const char *line, size_t len);
/* A ping or pong arrived: shown with --show-ping; the pong of a /ping with
 * its round-trip time. */
void client_on_ping(struct client *c, const uint8_t *data, size_t len);
void client_on_pong(struct client *c, const uint8_t *data, size_t len);

/* ---- connect_options.c ---- */

/* Returns 0 to run, -1 after --help, or an exit status (> 0) for an error. */
int connect_parse_options(struct connect_options *opt, int argc, char **argv);

/* ---- connect_term.c ---- */
void term_restore(void);
int term_raw(void);
unsigned term_columns(void);
/* Writes what the line editor asked for. */
void term_flush(struct client *c);
/* Prints text (ending in a newline) above the prompt line. */
void term_print(struct client *c, int fd, const char *text, size_t len);
void term_log_hook(const char *line, size_t len, void *data);
/* Prints a line to stderr, above the prompt when there is one. */
void client_note(struct client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A message as the interactive client shows it: "< TEXT\n". */
int format_message(struct cli_buf *b, const struct wsk_message *msg);

/* ---- connect.c, for the links ---- */
/* The link is up: set up the terminal, start reading stdin. */
void client_opened(struct client *c);
/* The link is gone (before its report): stop stdin, clear the prompt. */
void client_closed(struct client *c);
/* The end: put the terminal back. */
void client_done(struct client *c);
void stdin_update(struct client *c);
void pipe_process(struct client *c);
/* Writes data (and a newline) to stdout in pipe mode; a broken stdout ends
 * the client. */
void pipe_write(struct client *c, const void *data, size_t len, bool newline);
void client_fail(struct client *c);
/* The link's send queue drained: read stdin again. */
void client_drained(struct client *c);
void client_interrupt(struct client *c, int forced_status);

/* ---- connect_raw.c ---- */
/* Connects to a tcp:// or udp:// URL. Returns 0 or an exit status after
 * saying why. */
int raw_connect(struct client *c, const struct wsk_url *u);
/* One line (no newline) or chunk (--binary). Returns 0, WSK_EBACKPRESSURE
 * (queued; wait for the link to drain), WSK_ESTATE, or an error. */
int raw_send(struct client *c, const char *data, size_t len);
/* The end of stdin, ^C or a local failure: TCP half-closes and reads until
 * the server's EOF; UDP waits --wait for replies. */
void raw_close(struct client *c);
/* Frees what is left (the UDP socket). */
void raw_free(struct client *c);

#endif
