/* wsk serve: who may join (--auth-token) and how much they may send
 * (--rate-limit).
 *
 * --auth-token TOKEN: the server's on_upgrade. A client presents the token
 * as "Authorization: Bearer TOKEN" (programs) or as ?token=TOKEN in the URL
 * (browsers, which cannot set headers on a WebSocket; percent-escapes are
 * decoded first); anything else is refused with 401 and logged. The chat
 * page passes on a ?token= of its own address.
 *
 * --rate-limit N/s: a token bucket per connection, N messages a second
 * with bursts of up to N at once (a second's worth), so a client typing or
 * a dashboard sending a few updates a second never notices, and one that
 * floods a room is closed with 1008 after about N messages. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "serve.h"

/* Compares in time that does not depend on where they differ. */
bool serve_same_secret(const char *a, size_t a_len, const char *b, size_t b_len)
{
    unsigned char diff = a_len != b_len;
    for (size_t i = 0; i < a_len; i++)
        diff |= (unsigned char)(a[i] ^ (i < b_len ? b[i] : 0));
    return diff == 0;
}

bool serve_has_bearer(const struct wsk_http_header *headers, size_t num_headers, const char *token)
{
    const struct wsk_slice *v = wsk_http_header_get(headers, num_headers, "Authorization");
    if (!v || v->len < 7 || strncasecmp(v->ptr, "Bearer ", 7) != 0)
        return false;
    return serve_same_secret(v->ptr + 7, v->len - 7, token, strlen(token));
}

static int hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
        return (c | 0x20) - 'a' + 10;
    return -1;
}

/* token=VALUE among the query's &-separated pairs, percent-decoded. */
static bool query_has_token(struct wsk_slice query, const char *token)
{
    const char *p = query.ptr, *end = query.ptr + query.len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pair_end = amp ? amp : end;
        if (pair_end - p >= 6 && !memcmp(p, "token=", 6)) {
            char value[512];
            size_t n = 0;
            for (const char *q = p + 6; q < pair_end; q++) {
                if (n == sizeof value)
                    return false;
                if (*q == '%' && pair_end - q >= 3 && hex(q[1]) >= 0 && hex(q[2]) >= 0) {
                    value[n++] = (char)(hex(q[1]) << 4 | hex(q[2]));
                    q += 2;
                } else {
                    value[n++] = *q == '+' ? ' ' : *q;
                }
            }
            return serve_same_secret(value, n, token, strlen(token));
        }
        p = pair_end + 1;
    }
    return false;
}

/* Whether the client tried: an Authorization header or a token= in the
 * query. */
static bool token_given(const struct wsk_upgrade_event *ev)
{
    if (wsk_http_header_get(ev->headers, ev->num_headers, "Authorization"))
        return true;
    for (size_t i = 0; i + 6 <= ev->query.len; i++)
        if ((i == 0 || ev->query.ptr[i - 1] == '&') && !memcmp(ev->query.ptr + i, "token=", 6))
            return true;
    return false;
}

int serve_upgrade(struct wsk_conn *conn, const struct wsk_upgrade_event *ev, void *user_data)
{
    struct serve *s = user_data;
    const char *token = s->opt.auth_token;
    if (!token || serve_has_bearer(ev->headers, ev->num_headers, token) ||
        query_has_token(ev->query, token))
        return 0;
    s->auth_refused++;
    wsk_conn_set_refusal(conn, token_given(ev) ? "wrong token" : "no token");
    cli_info("%s: upgrade to %.*s refused (401): no valid token (Authorization: Bearer or "
             "?token=)",
             wsk_conn_peer(conn), (int)(ev->path.len > 200 ? 200 : ev->path.len), ev->path.ptr);
    return 401;
}

bool serve_rate_ok(struct serve_rate *r, uint64_t now_ms, uint32_t per_s)
{
    if (!r->last_ms) {
        r->tokens = per_s;
        r->last_ms = now_ms;
    }
    r->tokens += (double)(now_ms - r->last_ms) * per_s / 1000.0;
    r->last_ms = now_ms;
    if (r->tokens > per_s)
        r->tokens = per_s;
    if (r->tokens < 1.0)
        return false;
    r->tokens -= 1.0;
    return true;
}

void serve_print_counters(const struct serve *s)
{
    struct wsk_server_stats st = {0};
    char line[512];
    size_t n = 0;

    if (s->srv)
        wsk_server_get_stats(s->srv, &st);
#define ADD(cond, ...)                                                                             \
    do {                                                                                           \
        if ((cond) && n < sizeof line)                                                             \
            n += (size_t)snprintf(line + n, sizeof line - n, __VA_ARGS__);                         \
    } while (0)
    ADD(s->auth_refused, "%s%llu upgrade%s refused without the --auth-token", n ? ", " : "",
        (unsigned long long)s->auth_refused, s->auth_refused == 1 ? "" : "s");
    ADD(s->rate_closed, "%s%llu connection%s closed over the --rate-limit", n ? ", " : "",
        (unsigned long long)s->rate_closed, s->rate_closed == 1 ? "" : "s");
    ADD(st.slow_closed, "%s%llu slow receiver%s closed (1008)", n ? ", " : "",
        (unsigned long long)st.slow_closed, st.slow_closed == 1 ? "" : "s");
    ADD(st.slow_dropped, "%s%llu message%s dropped for slow receivers", n ? ", " : "",
        (unsigned long long)st.slow_dropped, st.slow_dropped == 1 ? "" : "s");
    ADD(s->redis_unsent, "%s%llu message%s not sent to other processes (Redis down or behind)",
        n ? ", " : "", (unsigned long long)s->redis_unsent, s->redis_unsent == 1 ? "" : "s");
    ADD(s->thread_behind, "%s%llu message%s not handed to a thread that was behind", n ? ", " : "",
        (unsigned long long)s->thread_behind, s->thread_behind == 1 ? "" : "s");
#undef ADD
    if (n)
        cli_info("%s", line);
}
