/* wsk connect: the terminal (raw mode, restored on every exit path, even a
 * crash) and how messages show on it. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "connect.h"

/* The terminal settings to put back: kept outside struct client because the
 * exit paths that need them (atexit, fatal signals) cannot be handed one. */
static const int fatal_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};

static struct {
    struct termios saved;
    volatile sig_atomic_t is_raw;
    bool is_registered;
    struct sigaction old_actions[sizeof fatal_signals / sizeof fatal_signals[0]];
} term;

/* ---- the terminal -------------------------------------------------------- */

/* Async-signal-safe: tcsetattr() is on the POSIX list. */
void term_restore(void)
{
    if (term.is_raw) {
        tcsetattr(STDIN_FILENO, TCSANOW, &term.saved);
        term.is_raw = false;
    }
}

/* A crash must not leave the shell without echo: put the terminal back,
 * then let the previous handler (the default: a core dump, or a sanitizer's
 * report) deal with the signal. */
static void on_fatal_signal(int signo)
{
    term_restore();
    for (size_t i = 0; i < sizeof fatal_signals / sizeof fatal_signals[0]; i++)
        if (fatal_signals[i] == signo)
            sigaction(signo, &term.old_actions[i], NULL);
    raise(signo);
}

/* Raw mode: keys arrive one by one, unechoed, and ^C is a byte rather than
 * SIGINT (so it closes the connection cleanly). Output processing stays on,
 * so "\n" still moves to the start of the next line. */
int term_raw(void)
{
    struct termios raw;

    if (tcgetattr(STDIN_FILENO, &term.saved) < 0)
        return -errno;
    raw = term.saved;
    raw.c_iflag &= ~(tcflag_t)(BRKINT | ICRNL | INPCK | ISTRIP | IXON);
    raw.c_cflag |= CS8;
    raw.c_lflag &= ~(tcflag_t)(ECHO | ICANON | IEXTEN | ISIG);
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    if (!term.is_registered) {
        struct sigaction sa;

        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_fatal_signal;
        sigemptyset(&sa.sa_mask);
        for (size_t i = 0; i < sizeof fatal_signals / sizeof fatal_signals[0]; i++)
            sigaction(fatal_signals[i], &sa, &term.old_actions[i]);
        atexit(term_restore);
        term.is_registered = true;
    }
    if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) < 0)
        return -errno;
    term.is_raw = true;
    return 0;
}

unsigned term_columns(void)
{
    struct winsize ws;

    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) < 0 || ws.ws_col == 0)
        return 0;
    return ws.ws_col;
}

void term_flush(struct client *c)
{
    size_t len;
    const char *out = lineedit_output(&c->le, &len);

    if (len > 0)
        (void)cli_write_all(STDOUT_FILENO, out, len);
    lineedit_output_clear(&c->le);
}

void term_print(struct client *c, int fd, const char *text, size_t len)
{
    bool was_shown = lineedit_is_shown(&c->le);

    if (lineedit_hide(&c->le) < 0)
        lineedit_output_clear(&c->le);
    term_flush(c);
    (void)cli_write_all(fd, text, len);
    if (was_shown && lineedit_show(&c->le) < 0)
        lineedit_output_clear(&c->le);
    term_flush(c);
}

void term_log_hook(const char *line, size_t len, void *data)
{
    term_print(data, STDERR_FILENO, line, len);
}

void client_note(struct client *c, const char *fmt, ...)
{
    struct cli_buf b = {0};
    va_list ap;
    int rv;

    va_start(ap, fmt);
    rv = cli_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    if (rv == 0 && cli_buf_append(&b, "\n", 1) == 0) {
        if (c->mode == MODE_TERMINAL)
            term_print(c, STDERR_FILENO, b.ptr, b.len);
        else
            (void)cli_write_all(STDERR_FILENO, b.ptr, b.len);
    }
    cli_buf_reset(&b);
}

/* A message as the interactive client shows it. Control characters are made
 * visible (^[ for ESC) so a server cannot move the cursor or retitle the
 * window; continuation lines of a multi-line message are indented. */
int format_message(struct cli_buf *b, const struct wsk_message *msg)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *p = msg->data;

    if (msg->opcode == WSK_OP_BINARY) {
        size_t n = msg->len < BINARY_PREVIEW ? msg->len : BINARY_PREVIEW;
        if (cli_buf_printf(b, "< (binary, %zu bytes)%s", msg->len, n ? " " : "") < 0)
            return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
            char pair[2] = {hex[p[i] >> 4], hex[p[i] & 15]};
            if (cli_buf_append(b, pair, 2) < 0)
                return -ENOMEM;
        }
        if (msg->len > n && cli_buf_append(b, "...", 3) < 0)
            return -ENOMEM;
        return cli_buf_append(b, "\n", 1);
    }
    if (cli_buf_append(b, "< ", 2) < 0)
        return -ENOMEM;
    for (size_t i = 0; i < msg->len; i++) {
        int rv;
        if (p[i] == '\n') {
            rv = cli_buf_append(b, "\n  ", 3);
        } else if (p[i] < 0x20 && p[i] != '\t') {
            char caret[2] = {'^', (char)(p[i] + 0x40)};
            rv = cli_buf_append(b, caret, 2);
        } else if (p[i] == 0x7f) {
            rv = cli_buf_append(b, "^?", 2);
        } else if (p[i] == 0xc2 && i + 1 < msg->len && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f) {
            rv = cli_buf_append(b, "\xef\xbf\xbd", 3); /* C1 control: U+FFFD */
            i++;
        } else {
            rv = cli_buf_append(b, &p[i], 1);
        }
        if (rv < 0)
            return -ENOMEM;
    }
    return cli_buf_append(b, "\n", 1);
}
