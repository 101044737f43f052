/* wsk connect: the interactive client's commands, and pings shown.
 *
 * On a terminal a line that starts with '/' is a command (ws:// and wss://
 * only; raw links send every line as it is):
 *
 *   /ping [DATA]              a ping (DATA, or the time, as payload); its pong
 *                             is shown with the round-trip time
 *   /close [CODE [REASON]]    close with CODE (default 1000) and REASON
 *   /help                     the commands
 *   //TEXT                    sends "/TEXT"
 *
 * --show-ping prints every ping and pong that arrives (on a terminal above
 * the prompt, otherwise on stderr). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "connect.h"

static const char help_text[] =
    "commands: /ping [DATA]  send a ping; its pong shows the round-trip time\n"
    "          /close [CODE [REASON]]  close with CODE (1000, or 3000-4999) and REASON\n"
    "          /help  this list;  //TEXT sends /TEXT;  Up/Down recall earlier lines";

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Payload as the user sees it: printable ASCII as is, the rest in hex. */
static void describe(char *out, size_t cap, const uint8_t *data, size_t len)
{
    bool printable = true;
    for (size_t i = 0; i < len; i++)
        printable &= data[i] >= 0x20 && data[i] < 0x7f;
    if (!len)
        snprintf(out, cap, "(empty)");
    else if (printable)
        snprintf(out, cap, "'%.*s'", (int)len, (const char *)data);
    else {
        size_t n = 0;
        n += (size_t)snprintf(out, cap, "hex ");
        for (size_t i = 0; i < len && n + 3 < cap; i++)
            n += (size_t)snprintf(out + n, cap - n, "%02x", data[i]);
    }
}

static void cmd_ping(struct client *c, const char *arg, size_t len)
{
    char stamp[32];
    if (!len) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        len = (size_t)snprintf(stamp, sizeof stamp, "%lld.%03ld", (long long)ts.tv_sec,
                               ts.tv_nsec / 1000000);
        arg = stamp;
    }
    if (len > sizeof c->ping_data) {
        client_note(c, "/ping: at most %zu bytes of data (a control frame's limit)",
                    sizeof c->ping_data);
        return;
    }
    int rv = wsk_conn_ping(c->conn, arg, len);
    if (rv < 0) {
        client_note(c, "/ping: %s", wsk_strerror(rv));
        return;
    }
    memcpy(c->ping_data, arg, len);
    c->ping_len = len;
    c->ping_sent_ns = now_ns();
    c->is_ping_pending = true;
}

static void cmd_close(struct client *c, const char *arg, size_t len)
{
    unsigned long code = WSK_CLOSE_NORMAL;
    char buf[160], *end;
    const char *reason = NULL;

    if (len >= sizeof buf) {
        client_note(c, "/close: the reason is too long (at most 123 bytes)");
        return;
    }
    memcpy(buf, arg, len);
    buf[len] = '\0';
    if (len) {
        errno = 0;
        code = strtoul(buf, &end, 10);
        if (end == buf || errno || (*end && *end != ' ') ||
            !(code == WSK_CLOSE_NORMAL || (code >= 3000 && code <= 4999))) {
            client_note(c, "/close: CODE must be 1000 or 3000-4999, e.g. /close 4000 bye");
            return;
        }
        while (*end == ' ')
            end++;
        if (*end)
            reason = end;
        if (reason && strlen(reason) > 123) {
            client_note(c, "/close: the reason is too long (at most 123 bytes)");
            return;
        }
    }
    client_close(c, (unsigned)code, reason);
}

bool client_command(struct client *c, const char *line, size_t len)
{
    if (c->link != LINK_WS || !len || line[0] != '/' || (len > 1 && line[1] == '/'))
        return false;
    size_t name_len = 1;
    while (name_len < len && line[name_len] != ' ')
        name_len++;
    const char *arg = line + name_len;
    size_t arg_len = len - name_len;
    while (arg_len && *arg == ' ')
        arg++, arg_len--;
#define IS(s) (name_len == sizeof(s) - 1 && memcmp(line, s, sizeof(s) - 1) == 0)
    if (IS("/ping"))
        cmd_ping(c, arg, arg_len);
    else if (IS("/close"))
        cmd_close(c, arg, arg_len);
    else if (IS("/help") || IS("/?"))
        client_note(c, "%s", help_text);
    else
        client_note(c, "unknown command %.*s (/help lists them; //%.*s sends it as a message)",
                    (int)name_len, line, (int)(len - 1), line + 1);
#undef IS
    return true;
}

void client_on_ping(struct client *c, const uint8_t *data, size_t len)
{
    if (!c->opt.is_show_ping)
        return;
    char what[300];
    describe(what, sizeof what, data, len);
    client_note(c, "< ping %s", what);
}

void client_on_pong(struct client *c, const uint8_t *data, size_t len)
{
    char what[300];
    bool is_ours = c->is_ping_pending && len == c->ping_len && memcmp(data, c->ping_data, len) == 0;

    if (!is_ours && !c->opt.is_show_ping)
        return;
    describe(what, sizeof what, data, len);
    if (is_ours) {
        c->is_ping_pending = false;
        client_note(c, "< pong %s in %.3f ms", what, (double)(now_ns() - c->ping_sent_ns) / 1e6);
    } else {
        client_note(c, "< pong %s (keepalive)", what);
    }
}
