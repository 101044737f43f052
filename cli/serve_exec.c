/* wsk serve --exec COMMAND: each WebSocket connection runs COMMAND (through
 * /bin/sh -c) with a CGI-style environment, as websocketd does. Each line
 * the program writes to stdout becomes a text message (binary when it is
 * not UTF-8; --binary: each read a binary message), and each message
 * received is written to its stdin with a newline (--binary: as is).
 *
 * Lifetimes. The program's exit closes the connection once its stdout is
 * drained (1000 for status 0, else 1011). The connection's close gives the
 * program EOF on stdin, then SIGTERM after --exec-grace, then SIGKILL after
 * as long again, sent to its process group so that what the shell started
 * goes too. Every child is reaped (SIGCHLD, and a timer as a backstop while
 * a child outlives its connection); a child record lives until its process
 * is reaped and its stdout closed, so --max-procs counts real processes.
 *
 * Bounds. Input for the program waits in a queue of at most --max-queue
 * bytes; past it the connection is paused (TCP pushes back on the client).
 * Output waits in the connection's send queue; past its cap, stdout is not
 * read (the pipe pushes back on the program). A line longer than
 * --max-message goes out in pieces of that size.
 *
 * The environment: the server's own, plus REMOTE_ADDR, REMOTE_PORT,
 * REQUEST_METHOD, REQUEST_URI, PATH_INFO, QUERY_STRING, SCRIPT_NAME,
 * SERVER_PROTOCOL, SERVER_SOFTWARE, GATEWAY_INTERFACE and HTTP_* for the
 * request headers (HTTP_PROXY excepted: "httpoxy", a client choosing the
 * proxy of the program's own HTTP requests). stderr is the server's. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "serve.h"

extern char **environ;

#define READ_CHUNK    65536
#define REAP_POLL_MS  100u
#define AFTER_EXIT_MS 1000u /* reading what a program wrote before it exited */
#define MAX_ENV_EXTRA (12 + WSK_HTTP_MAX_HEADERS)

struct exec_child {
    struct serve *s;
    struct exec_child *next, **pprev;
    struct wsk_conn *conn; /* NULL once the connection has closed */
    pid_t pid;
    int wait_status;
    bool is_reaped;
    struct wsk_io in;  /* the program's stdin; fd -1 once closed */
    struct wsk_io out; /* its stdout; fd -1 once closed */
    bool is_out_paused;
    bool is_conn_paused;
    struct cli_buf inq; /* for stdin, from inq_off on */
    size_t inq_off;
    struct cli_buf line; /* a stdout line whose newline has not come */
    struct wsk_timer timer;
    int kill_stage; /* 0, then SIGTERM sent (1), then SIGKILL (2) */
    char peer[64];
};

static void child_maybe_free(struct exec_child *ch);

/* ---- helpers --------------------------------------------------------------- */

static void close_io(struct exec_child *ch, struct wsk_io *io)
{
    if (io->fd < 0)
        return;
    wsk_io_stop(ch->s->loop, io);
    close(io->fd);
    io->fd = -1;
}

static void kill_group(struct exec_child *ch, int sig)
{
    if (ch->is_reaped)
        return;
    /* The program runs in its own process group: the shell's children go
     * too. The group may be gone already while the shell is a zombie. */
    if (kill(-ch->pid, sig) < 0)
        kill(ch->pid, sig);
}

static void describe_status(int st, char *buf, size_t cap)
{
    if (WIFEXITED(st))
        snprintf(buf, cap, "exited with status %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(buf, cap, "killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else
        snprintf(buf, cap, "ended (wait status %d)", st);
}

/* The program is gone and its output read: end the connection the way its
 * exit says. */
static void close_conn_for_exit(struct exec_child *ch)
{
    char why[96];

    if (!ch->conn)
        return;
    if (ch->line.len) {
        enum wsk_opcode op = wsk_utf8_valid((const uint8_t *)ch->line.ptr, ch->line.len)
                                 ? WSK_OP_TEXT
                                 : WSK_OP_BINARY;
        (void)wsk_conn_send(ch->conn, op, ch->line.ptr, ch->line.len);
        ch->line.len = 0;
    }
    describe_status(ch->wait_status, why, sizeof why);
    bool ok = WIFEXITED(ch->wait_status) && WEXITSTATUS(ch->wait_status) == 0;
    cli_verbose("%s: program %d %s", ch->peer, (int)ch->pid, why);
    struct wsk_conn *conn = ch->conn;
    wsk_conn_close(conn, ok ? WSK_CLOSE_NORMAL : WSK_CLOSE_INTERNAL, ok ? NULL : why);
}

/* ---- the program's stdout -------------------------------------------------- */

static bool send_out(struct exec_child *ch, const void *data, size_t len, enum wsk_opcode op)
{
    if (!ch->conn)
        return true; /* nobody to tell: drained and dropped */
    if (op == WSK_OP_TEXT && !wsk_utf8_valid(data, len))
        op = WSK_OP_BINARY;
    int rv = wsk_conn_send(ch->conn, op, data, len);
    if (rv == WSK_EBACKPRESSURE) {
        /* Queued; read no more until the client catches up (on_drain). */
        ch->is_out_paused = true;
        wsk_io_stop(ch->s->loop, &ch->out);
        return false;
    }
    return true;
}

/* Lines out of a chunk, the rest kept; a line past --max-message goes out
 * in pieces of that size. */
static void out_lines(struct exec_child *ch, const char *p, size_t n)
{
    size_t max = (size_t)ch->s->opt.max_message;

    while (n) {
        const char *nl = memchr(p, '\n', n);
        size_t seg = nl ? (size_t)(nl - p) : n;
        if (seg > max - ch->line.len)
            seg = max - ch->line.len;
        bool whole = nl && p + seg == nl;
        const char *msg = p;
        size_t msg_len = seg;
        if (ch->line.len || !whole) {
            if (cli_buf_append(&ch->line, p, seg) < 0) {
                cli_error("%s: out of memory for the program's output", ch->peer);
                ch->line.len = 0;
                return;
            }
            msg = ch->line.ptr;
            msg_len = ch->line.len;
        }
        p += seg + (whole ? 1 : 0);
        n -= seg + (whole ? 1 : 0);
        if (!whole && ch->line.len < max)
            break; /* the rest of the line comes later */
        if (whole && msg_len && msg[msg_len - 1] == '\r')
            msg_len--;
        send_out(ch, msg, msg_len, WSK_OP_TEXT);
        ch->line.len = 0;
    }
}

static void on_out(struct wsk_loop *loop, struct wsk_io *io, unsigned events)
{
    struct exec_child *ch = io->data;
    char buf[READ_CHUNK];

    (void)loop;
    (void)events;
    /* A few reads per readiness: fair to the other connections. */
    for (int i = 0; i < 4 && ch->out.fd >= 0 && !ch->is_out_paused; i++) {
        ssize_t n = read(ch->out.fd, buf, sizeof buf);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            return;
        if (n <= 0) {
            close_io(ch, &ch->out);
            if (ch->is_reaped) {
                wsk_timer_stop(ch->s->loop, &ch->timer);
                close_conn_for_exit(ch);
            }
            child_maybe_free(ch);
            return;
        }
        if (ch->s->opt.is_binary)
            send_out(ch, buf, (size_t)n, WSK_OP_BINARY);
        else
            out_lines(ch, buf, (size_t)n);
    }
}

/* ---- the program's stdin --------------------------------------------------- */

static void in_write(struct exec_child *ch)
{
    while (ch->in.fd >= 0 && ch->inq_off < ch->inq.len) {
        ssize_t n = write(ch->in.fd, ch->inq.ptr + ch->inq_off, ch->inq.len - ch->inq_off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            wsk_io_start(ch->s->loop, &ch->in, WSK_IO_WRITE);
            return;
        }
        if (n < 0) {
            /* EPIPE: the program closed its stdin or exited. What it was
             * sent is dropped; its exit, when it comes, closes the
             * connection. */
            cli_verbose("%s: program %d does not read its stdin any more (%s)", ch->peer,
                        (int)ch->pid, wsk_strerror(-errno));
            close_io(ch, &ch->in);
            break;
        }
        ch->inq_off += (size_t)n;
    }
    if (ch->inq_off == ch->inq.len) {
        ch->inq.len = ch->inq_off = 0;
        if (ch->in.fd >= 0)
            wsk_io_stop(ch->s->loop, &ch->in);
    }
    size_t pending = ch->inq.len - ch->inq_off;
    if (ch->is_conn_paused && ch->conn && pending <= ch->s->opt.max_queue / 2) {
        ch->is_conn_paused = false;
        wsk_conn_pause(ch->conn, false);
    }
    if (ch->in.fd < 0) {
        ch->inq.len = ch->inq_off = 0;
        if (ch->is_conn_paused && ch->conn) {
            ch->is_conn_paused = false;
            wsk_conn_pause(ch->conn, false);
        }
    }
}

static void on_in(struct wsk_loop *loop, struct wsk_io *io, unsigned events)
{
    (void)loop;
    (void)events;
    in_write(io->data);
}

/* ---- timers: kill grace, reaping, the end of the output ---------------------- */

static void reap(struct serve *s);

static void on_timer(struct wsk_loop *loop, struct wsk_timer *t)
{
    struct exec_child *ch = t->data;
    struct serve *s = ch->s;

    (void)loop;
    if (ch->is_reaped) {
        /* Exited a while ago and stdout still open (a grandchild holds it):
         * the connection ends now. */
        close_io(ch, &ch->out);
        close_conn_for_exit(ch);
        child_maybe_free(ch);
        return;
    }
    if (ch->kill_stage == 0) {
        cli_verbose("%s: program %d still running after its connection closed; SIGTERM", ch->peer,
                    (int)ch->pid);
        kill_group(ch, SIGTERM);
        ch->kill_stage = 1;
        wsk_timer_start(s->loop, &ch->timer, s->opt.exec_grace_ms, 0);
    } else if (ch->kill_stage == 1) {
        cli_info("%s: program %d ignored SIGTERM; SIGKILL", ch->peer, (int)ch->pid);
        kill_group(ch, SIGKILL);
        ch->kill_stage = 2;
        wsk_timer_start(s->loop, &ch->timer, REAP_POLL_MS, 0);
    } else {
        /* A backstop for a lost SIGCHLD: keeps the loop alive until the
         * child is reaped. */
        reap(s);
        if (!ch->is_reaped)
            wsk_timer_start(s->loop, &ch->timer, REAP_POLL_MS, 0);
    }
}

/* ---- children ---------------------------------------------------------------- */

static void child_maybe_free(struct exec_child *ch)
{
    if (ch->conn || !ch->is_reaped || ch->out.fd >= 0)
        return;
    close_io(ch, &ch->in);
    wsk_timer_stop(ch->s->loop, &ch->timer);
    *ch->pprev = ch->next;
    if (ch->next)
        ch->next->pprev = ch->pprev;
    cli_buf_reset(&ch->inq);
    cli_buf_reset(&ch->line);
    free(ch);
}

static void child_reaped(struct exec_child *ch, int status)
{
    ch->is_reaped = true;
    ch->wait_status = status;
    ch->s->num_procs--;
    if (ch->out.fd < 0) {
        wsk_timer_stop(ch->s->loop, &ch->timer);
        close_conn_for_exit(ch);
    } else {
        /* Read what it wrote before exiting, for a while. */
        wsk_timer_start(ch->s->loop, &ch->timer, AFTER_EXIT_MS, 0);
    }
    child_maybe_free(ch);
}

static void reap(struct serve *s)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0)
            return;
        for (struct exec_child *ch = s->children; ch; ch = ch->next) {
            if (ch->pid == pid && !ch->is_reaped) {
                child_reaped(ch, status);
                break;
            }
        }
    }
}

static void on_sigchld(struct wsk_loop *loop, int signo, void *data)
{
    (void)loop;
    (void)signo;
    reap(data);
}

/* Splits "1.2.3.4:5678" or "[::1]:5678" into address and port. */
static void split_peer(const char *peer, char *addr, size_t cap, const char **port)
{
    const char *colon = strrchr(peer, ':');
    size_t n = colon ? (size_t)(colon - peer) : strlen(peer);

    *port = colon ? colon + 1 : "";
    if (n >= 2 && peer[0] == '[' && peer[n - 1] == ']') {
        peer++;
        n -= 2;
    }
    if (n >= cap)
        n = cap - 1;
    memcpy(addr, peer, n);
    addr[n] = '\0';
}

/* environ plus the CGI variables, in one allocation's worth of strings.
 * Returns the array (NULL-terminated; free each added string and the
 * array), or NULL when out of memory. */
static char **make_env(const struct exec_child *ch, const struct wsk_open_event *ev,
                       size_t *num_added)
{
    size_t n_env = 0;
    char addr[64];
    const char *port;

    while (environ[n_env])
        n_env++;
    char **env = calloc(n_env + MAX_ENV_EXTRA + 1, sizeof *env);
    if (!env)
        return NULL;
    size_t k = 0;
    bool oom = false;
#define ADD(...)                                                                                   \
    do {                                                                                           \
        struct cli_buf b_ = {0};                                                                   \
        if (cli_buf_printf(&b_, __VA_ARGS__) < 0)                                                  \
            oom = true;                                                                            \
        else                                                                                       \
            env[k++] = b_.ptr;                                                                     \
    } while (0)
    split_peer(ch->peer, addr, sizeof addr, &port);
    ADD("REMOTE_ADDR=%s", addr);
    ADD("REMOTE_PORT=%s", port);
    ADD("REQUEST_METHOD=GET");
    ADD("REQUEST_URI=%.*s%s%.*s", (int)ev->path.len, ev->path.ptr, ev->query.len ? "?" : "",
        (int)ev->query.len, ev->query.ptr);
    ADD("PATH_INFO=%.*s", (int)ev->path.len, ev->path.ptr);
    ADD("QUERY_STRING=%.*s", (int)ev->query.len, ev->query.ptr);
    ADD("SCRIPT_NAME=");
    ADD("SERVER_PROTOCOL=HTTP/1.1");
    ADD("SERVER_SOFTWARE=wsk/%s", WSK_VERSION_STRING);
    ADD("GATEWAY_INTERFACE=CGI/1.1");
    for (size_t i = 0; i < ev->num_headers && k < MAX_ENV_EXTRA; i++) {
        const struct wsk_http_header *h = &ev->headers[i];
        char name[80];
        size_t j;
        if (h->name.len == 0 || h->name.len >= sizeof name - 5)
            continue;
        for (j = 0; j < h->name.len; j++) {
            char c = h->name.ptr[j];
            if (c == '-')
                c = '_';
            else if (c >= 'a' && c <= 'z')
                c = (char)(c - 'a' + 'A');
            else if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
                break;
            name[j] = c;
        }
        name[j] = '\0';
        if (j != h->name.len || strcmp(name, "PROXY") == 0)
            continue; /* not a plain name, or httpoxy */
        ADD("HTTP_%s=%.*s", name, (int)h->value.len, h->value.ptr);
    }
#undef ADD
    *num_added = k;
    if (oom) {
        for (size_t i = 0; i < k; i++)
            free(env[i]);
        free(env);
        return NULL;
    }
    /* The server's own variables after ours: getenv() takes the first. */
    for (size_t i = 0; i < n_env; i++)
        env[k + i] = environ[i];
    return env;
}

static int spawn(struct exec_child *ch, const struct wsk_open_event *ev)
{
    int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, all;
    size_t added = 0;
    char **env;
    int rv;

    if (pipe2(in_pipe, O_CLOEXEC) < 0 || pipe2(out_pipe, O_CLOEXEC) < 0) {
        rv = -errno;
        goto fail_pipes;
    }
    if (!(env = make_env(ch, ev, &added))) {
        rv = -ENOMEM;
        goto fail_pipes;
    }
    char *argv[] = {"sh", "-c", ch->s->opt.exec_command, NULL};
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in_pipe[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&fa, out_pipe[1], STDOUT_FILENO);
    posix_spawnattr_init(&attr);
    /* The loop blocks the signals it handles, and the server ignores
     * SIGPIPE: the program starts with neither. Its own process group lets
     * SIGTERM and SIGKILL reach what the shell starts. */
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                        POSIX_SPAWN_SETPGROUP);
    rv = -posix_spawn(&ch->pid, "/bin/sh", &fa, &attr, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    for (size_t i = 0; i < added; i++)
        free(env[i]);
    free(env);
    if (rv < 0)
        goto fail_pipes;
    close(in_pipe[0]);
    close(out_pipe[1]);
    fcntl(in_pipe[1], F_SETFL, O_NONBLOCK);
    fcntl(out_pipe[0], F_SETFL, O_NONBLOCK);
    wsk_io_init(&ch->in, in_pipe[1], on_in, ch);
    wsk_io_init(&ch->out, out_pipe[0], on_out, ch);
    return 0;

fail_pipes:
    for (int i = 0; i < 2; i++) {
        if (in_pipe[i] >= 0)
            close(in_pipe[i]);
        if (out_pipe[i] >= 0)
            close(out_pipe[i]);
    }
    return rv;
}

/* ---- the connection's side ----------------------------------------------- */

void serve_exec_open(struct serve *s, struct wsk_conn *conn, const struct wsk_open_event *ev)
{
    struct exec_child *ch;
    int rv;

    if (s->num_procs >= s->opt.max_procs) {
        cli_info("%s: --max-procs (%llu) programs running; closing with 1013", wsk_conn_peer(conn),
                 (unsigned long long)s->opt.max_procs);
        wsk_conn_close(conn, WSK_CLOSE_TRY_AGAIN_LATER, "too many programs running");
        return;
    }
    if (!(ch = calloc(1, sizeof *ch))) {
        wsk_conn_close(conn, WSK_CLOSE_INTERNAL, "out of memory");
        return;
    }
    ch->s = s;
    ch->conn = conn;
    snprintf(ch->peer, sizeof ch->peer, "%s", wsk_conn_peer(conn));
    wsk_io_init(&ch->in, -1, on_in, ch);
    wsk_io_init(&ch->out, -1, on_out, ch);
    wsk_timer_init(&ch->timer, on_timer, ch);
    if ((rv = spawn(ch, ev)) < 0) {
        cli_error("%s: cannot start the program: %s", ch->peer, wsk_strerror(rv));
        free(ch);
        wsk_conn_close(conn, WSK_CLOSE_INTERNAL, "cannot start the program");
        return;
    }
    ch->next = s->children;
    if (ch->next)
        ch->next->pprev = &ch->next;
    ch->pprev = &s->children;
    s->children = ch;
    s->num_procs++;
    wsk_conn_set_data(conn, ch);
    if ((rv = wsk_io_start(s->loop, &ch->out, WSK_IO_READ)) < 0) {
        cli_error("%s: cannot watch the program's output: %s", ch->peer, wsk_strerror(rv));
        kill_group(ch, SIGKILL);
        close_io(ch, &ch->out);
    }
    cli_verbose("%s: open %.*s, program %d started", ch->peer, (int)ev->path.len, ev->path.ptr,
                (int)ch->pid);
}

void serve_exec_message(struct serve *s, struct wsk_conn *conn, const struct wsk_message *msg)
{
    struct exec_child *ch = wsk_conn_get_data(conn);

    if (!ch || ch->in.fd < 0)
        return; /* the program does not read any more */
    if (cli_buf_append(&ch->inq, msg->data, msg->len) < 0 ||
        (!s->opt.is_binary && cli_buf_append(&ch->inq, "\n", 1) < 0)) {
        cli_error("%s: out of memory for the program's input; closing", ch->peer);
        wsk_conn_close(conn, WSK_CLOSE_INTERNAL, "out of memory");
        return;
    }
    in_write(ch);
    if (ch->inq.len - ch->inq_off > s->opt.max_queue && !ch->is_conn_paused) {
        /* The program reads slower than the client sends: read no more
         * from the client until it catches up. */
        ch->is_conn_paused = true;
        wsk_conn_pause(conn, true);
    }
}

void serve_exec_drain(struct serve *s, struct wsk_conn *conn)
{
    struct exec_child *ch = wsk_conn_get_data(conn);

    if (!ch || !ch->is_out_paused)
        return;
    ch->is_out_paused = false;
    if (ch->out.fd >= 0)
        wsk_io_start(s->loop, &ch->out, WSK_IO_READ);
}

void serve_exec_close(struct serve *s, struct wsk_conn *conn)
{
    struct exec_child *ch = wsk_conn_get_data(conn);

    if (!ch)
        return;
    wsk_conn_set_data(conn, NULL);
    ch->conn = NULL;
    /* EOF on stdin; output is still read (and dropped) so that a program
     * blocked writing can see it and exit. */
    close_io(ch, &ch->in);
    ch->inq.len = ch->inq_off = 0;
    if (ch->is_out_paused && ch->out.fd >= 0) {
        ch->is_out_paused = false;
        wsk_io_start(s->loop, &ch->out, WSK_IO_READ);
    }
    if (!ch->is_reaped)
        wsk_timer_start(s->loop, &ch->timer, s->opt.exec_grace_ms, 0);
    child_maybe_free(ch);
}

/* ---- the server's side ------------------------------------------------------ */

int serve_exec_start(struct serve *s)
{
    int rv = wsk_loop_signal(s->loop, SIGCHLD, on_sigchld, s);
    if (rv < 0) {
        cli_error("cannot handle SIGCHLD: %s", wsk_strerror(rv));
        return CLI_EXIT_FAILURE;
    }
    return 0;
}

void serve_exec_kill_all(struct serve *s)
{
    for (struct exec_child *ch = s->children; ch; ch = ch->next)
        kill_group(ch, SIGKILL);
}

void serve_exec_free(struct serve *s)
{
    /* Normally none is left: the loop ran until every child was reaped. */
    while (s->children) {
        struct exec_child *ch = s->children;
        if (!ch->is_reaped) {
            kill_group(ch, SIGKILL);
            int status;
            while (waitpid(ch->pid, &status, 0) < 0 && errno == EINTR)
                ;
            ch->is_reaped = true;
        }
        ch->conn = NULL;
        close_io(ch, &ch->out);
        child_maybe_free(ch);
    }
}
