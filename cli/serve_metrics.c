/* wsk serve: /healthz, and --metrics: Prometheus text for operators.
 *
 * /healthz on every WebSocket listener answers 200 "ok" while the server
 * takes connections and 503 "shutting down" once SIGTERM has come, so a
 * load balancer stops sending new clients during the drain.
 *
 * --metrics [HOST:]PORT opens a separate HTTP listener (127.0.0.1 unless a
 * host is given: the figures are for operators, not for the clients) whose
 * GET /metrics is the Prometheus text format, version 0.0.4, and /healthz as
 * above. With --threads each thread's figures carry a thread="N" label;
 * the main thread reads its own at the scrape and the others' from a
 * snapshot each thread takes every second (a server's counters belong to
 * its loop and are not read across threads), so theirs may be a second old.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"

#define SNAPSHOT_MS 1000u

struct serve_snapshot {
    pthread_mutex_t lock;
    /* Guarded by lock. */
    struct wsk_server_stats st;
    uint64_t auth_refused, rate_closed, redis_unsent, thread_behind;
    bool has_data;
    /* The instance's. */
    struct wsk_timer timer;
    struct serve *s;
};

static void take(struct serve *s, struct wsk_server_stats *st, uint64_t cli[4])
{
    if (s->srv)
        wsk_server_get_stats(s->srv, st);
    else
        memset(st, 0, sizeof *st);
    cli[0] = s->auth_refused;
    cli[1] = s->rate_closed;
    cli[2] = s->redis_unsent;
    cli[3] = s->thread_behind;
}

static void on_snapshot(struct wsk_loop *loop, struct wsk_timer *t)
{
    (void)loop;
    struct serve_snapshot *sn = t->data;
    struct wsk_server_stats st;
    uint64_t cli[4];
    take(sn->s, &st, cli);
    pthread_mutex_lock(&sn->lock);
    sn->st = st;
    sn->auth_refused = cli[0];
    sn->rate_closed = cli[1];
    sn->redis_unsent = cli[2];
    sn->thread_behind = cli[3];
    sn->has_data = true;
    pthread_mutex_unlock(&sn->lock);
    if (sn->s->is_shutting_down)
        wsk_timer_stop(sn->s->loop, t); /* the loop must be able to end */
}

int serve_metrics_snapshots(struct serve *s)
{
    struct serve_snapshot *sn = calloc(1, sizeof *sn);
    if (!sn || pthread_mutex_init(&sn->lock, NULL) != 0) {
        free(sn);
        cli_error("out of memory");
        return CLI_EXIT_FAILURE;
    }
    sn->s = s;
    wsk_timer_init(&sn->timer, on_snapshot, sn);
    s->snapshot = sn;
    /* The first right away, on the thread's loop, then every second. */
    if (wsk_timer_start(s->loop, &sn->timer, 0, SNAPSHOT_MS) < 0) {
        cli_error("cannot start the metrics timer");
        return CLI_EXIT_FAILURE;
    }
    return 0;
}

void serve_metrics_stop(struct serve *s)
{
    if (s->snapshot)
        wsk_timer_stop(s->loop, &s->snapshot->timer);
}

void serve_metrics_free(struct serve *s)
{
    if (s->snapshot) {
        pthread_mutex_destroy(&s->snapshot->lock);
        free(s->snapshot);
        s->snapshot = NULL;
    }
    wsk_server_free(s->metrics_srv);
    s->metrics_srv = NULL;
}

bool serve_healthz(struct serve *s, struct wsk_conn *conn, const struct wsk_http_request_event *req)
{
    if (req->path.len != 8 || memcmp(req->path.ptr, "/healthz", 8) != 0)
        return false;
    const char *text = s->is_shutting_down ? "shutting down\n" : "ok\n";
    (void)wsk_conn_http_reply(conn, s->is_shutting_down ? 503 : 200, "text/plain; charset=utf-8",
                              text, strlen(text), "Cache-Control: no-store\r\n");
    return true;
}

/* ---- the text ---------------------------------------------------------------- */

struct family {
    const char *name, *type, *help;
};

static const struct family families[] = {
    {"wsk_connections_open", "gauge", "Connections open now: HTTP, upgrading and WebSocket."},
    {"wsk_websockets_open", "gauge", "WebSocket connections open now."},
    {"wsk_connections_total", "counter", "Connections accepted."},
    {"wsk_websockets_total", "counter", "WebSocket upgrades accepted."},
    {"wsk_messages_received_total", "counter", "Data messages received."},
    {"wsk_received_bytes_total", "counter",
     "Bytes received on the sockets (HTTP, frames, compressed payloads, TLS)."},
    {"wsk_messages_sent_total", "counter",
     "Data messages queued to clients (a broadcast once per receiver)."},
    {"wsk_sent_bytes_total", "counter", "Bytes written to the sockets."},
    {"wsk_send_queue_bytes", "gauge", "Bytes waiting in send queues now."},
    {"wsk_http_errors_total", "counter",
     "HTTP error answers, refused upgrades included, by status (code=\"other\": the rest)."},
    {"wsk_handshake_timeouts_total", "counter",
     "Connections that did not finish their request in time."},
    {"wsk_tls_handshake_failures_total", "counter", "TLS handshakes that failed."},
    {"wsk_slow_consumers_closed_total", "counter",
     "Receivers closed (1008) with a full send queue."},
    {"wsk_slow_consumer_drops_total", "counter",
     "Messages dropped for receivers with a full queue."},
    {"wsk_topics", "gauge", "Rooms with at least one client."},
    {"wsk_subscriptions", "gauge", "Clients in rooms."},
    {"wsk_auth_refused_total", "counter", "Upgrades refused without the --auth-token."},
    {"wsk_rate_limited_total", "counter", "Connections closed over the --rate-limit."},
    {"wsk_redis_unsent_total", "counter", "Messages that did not reach other processes (--redis)."},
    {"wsk_thread_dropped_total", "counter", "Messages not handed to a thread that was behind."},
};

enum { F_COUNT = sizeof families / sizeof families[0] };

struct sample {
    struct wsk_server_stats st;
    uint64_t cli[4];
};

static double value(const struct sample *x, size_t f)
{
    const struct wsk_server_stats *st = &x->st;
    switch (f) {
    case 0:
        return (double)st->connections;
    case 1:
        return (double)st->websockets_open;
    case 2:
        return (double)st->connections_total;
    case 3:
        return (double)st->websockets_total;
    case 4:
        return (double)st->messages_in;
    case 5:
        return (double)st->bytes_in;
    case 6:
        return (double)st->messages_out;
    case 7:
        return (double)st->bytes_out;
    case 8:
        return (double)st->queued_bytes;
    case 10:
        return (double)st->handshake_timeouts;
    case 11:
        return (double)st->tls_failures;
    case 12:
        return (double)st->slow_closed;
    case 13:
        return (double)st->slow_dropped;
    case 14:
        return (double)st->topics;
    case 15:
        return (double)st->subscriptions;
    default:
        return (double)x->cli[f - 16];
    }
}

static void metrics_text(struct serve *s, struct cli_buf *b)
{
    unsigned n = serve_threads_count(s);
    struct sample *xs = calloc(n, sizeof *xs);
    if (!xs)
        return;
    for (unsigned i = 0; i < n; i++) {
        struct serve *t = serve_threads_get(s, i);
        if (t == s || !t->snapshot) {
            take(t, &xs[i].st, xs[i].cli);
            continue;
        }
        pthread_mutex_lock(&t->snapshot->lock);
        xs[i].st = t->snapshot->st;
        xs[i].cli[0] = t->snapshot->auth_refused;
        xs[i].cli[1] = t->snapshot->rate_closed;
        xs[i].cli[2] = t->snapshot->redis_unsent;
        xs[i].cli[3] = t->snapshot->thread_behind;
        pthread_mutex_unlock(&t->snapshot->lock);
    }
    for (size_t f = 0; f < F_COUNT; f++) {
        const struct family *fam = &families[f];
        cli_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", fam->name, fam->help, fam->name,
                       fam->type);
        for (unsigned i = 0; i < n; i++) {
            char label[32] = "";
            if (n > 1)
                snprintf(label, sizeof label, "thread=\"%u\"", i + 1);
            if (f == 9) {
                for (size_t k = 0; k < WSK_STATS_REFUSED; k++) {
                    unsigned code = wsk_stats_refused_code(k);
                    char codes[16];
                    if (code)
                        snprintf(codes, sizeof codes, "%u", code);
                    else
                        snprintf(codes, sizeof codes, "other");
                    cli_buf_printf(b, "%s{%s%scode=\"%s\"} %llu\n", fam->name, label,
                                   *label ? "," : "", codes,
                                   (unsigned long long)xs[i].st.refused[k]);
                }
                continue;
            }
            cli_buf_printf(b, "%s%s%s%s %.0f\n", fam->name, *label ? "{" : "", label,
                           *label ? "}" : "", value(&xs[i], f));
        }
    }
    free(xs);
}

static void on_metrics_request(struct wsk_conn *conn, const struct wsk_http_request_event *req,
                               void *user_data)
{
    struct serve *s = user_data;
    if (serve_healthz(s, conn, req))
        return;
    if (req->path.len != 8 || memcmp(req->path.ptr, "/metrics", 8) != 0)
        return; /* the library answers 404 */
    struct cli_buf b = {0};
    metrics_text(s, &b);
    if (!b.ptr) {
        (void)wsk_conn_http_reply(conn, 500, "text/plain; charset=utf-8", "out of memory\n", 14,
                                  NULL);
        return;
    }
    (void)wsk_conn_http_reply(conn, 200, "text/plain; version=0.0.4; charset=utf-8", b.ptr, b.len,
                              "Cache-Control: no-store\r\n");
    cli_buf_reset(&b);
}

/* The metrics listener takes no WebSocket. */
static int refuse_upgrade(struct wsk_conn *conn, const struct wsk_upgrade_event *ev,
                          void *user_data)
{
    (void)conn, (void)ev, (void)user_data;
    return 404;
}

int serve_metrics_start(struct serve *s)
{
    const struct serve_options *opt = &s->opt;
    struct wsk_server_config cfg;
    wsk_server_config_init(&cfg);
    cfg.user_data = s;
    cfg.on_http_request = on_metrics_request;
    cfg.on_upgrade = refuse_upgrade;
    cfg.max_connections = 64;
    cfg.log = cli_log_library;
    int rv = wsk_server_new(&s->metrics_srv, s->loop, &cfg);
    if (rv < 0) {
        cli_error("--metrics: cannot create the listener: %s", wsk_strerror(rv));
        return CLI_EXIT_FAILURE;
    }
    rv = wsk_server_listen(s->metrics_srv, opt->metrics.host, opt->metrics.port);
    if (rv < 0) {
        cli_error("--metrics: cannot listen on %s:%u: %s%s", opt->metrics.host,
                  (unsigned)opt->metrics.port, wsk_strerror(rv),
                  serve_listen_hint(rv, opt->metrics.port));
        return CLI_EXIT_FAILURE;
    }
    s->metrics_port = (uint16_t)rv;
    return 0;
}

void serve_metrics_shutdown(struct serve *s)
{
    if (s->metrics_srv)
        wsk_server_shutdown(s->metrics_srv, WSK_CLOSE_GOING_AWAY, NULL);
}
