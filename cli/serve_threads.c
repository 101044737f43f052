/* wsk serve --threads N: every core of the machine.
 *
 * N instances of the one-thread server (struct serve), each with its own
 * loop, server, listeners and Redis link, each run by its own thread; the
 * main thread runs instance 0 and handles the signals. Every listener is
 * bound by every instance with SO_REUSEPORT, and the kernel spreads new
 * connections (UDP: senders) across them by a hash of the addresses. The
 * alternative, one thread accepting and handing each socket to another
 * loop, costs a cross-thread hand-over per connection and makes the
 * acceptor a bottleneck for handshake storms; SO_REUSEPORT costs nothing per
 * connection, and its weakness (a busy thread's backlog is not taken by an
 * idle one) matters little when every thread runs the same work.
 * docs/ARCHITECTURE.md has the measurements.
 *
 * Rooms span the threads: a message published in a room on one instance is
 * delivered to its own clients at once, then copied into the inbox of every
 * other instance, which delivers it to its clients of the room on its own
 * loop (a wsk_post). Each inbox is bounded (INBOX_MAX bytes): an instance
 * that falls that far behind loses messages from the others, counted and
 * logged once per episode, rather than memory without bound. Messages from
 * one instance reach another in the order they were published, so each
 * sender's order holds. With --redis, each instance has its own links and
 * the process one node id: a message published here reaches the other
 * threads through the inboxes, the other processes through Redis, and
 * comes back from Redis to no one.
 *
 * Shutdown: SIGTERM on the main thread shuts down instance 0 and posts the
 * same to the others; each thread's loop ends when its connections have
 * closed, and the main thread joins them all. What the inboxes still hold
 * then is dropped. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "serve.h"

#define INBOX_MAX (64u * 1024 * 1024)

/* A message copied for one other instance. */
struct bus_msg {
    struct bus_msg *next;
    size_t len;
    uint16_t room_len;
    uint8_t opcode;
    uint8_t bytes[]; /* the room, then the data */
};

struct serve_inbox {
    pthread_mutex_t lock;
    /* Guarded by lock. */
    struct bus_msg *head, *tail;
    size_t bytes;
    uint64_t dropped;    /* messages refused because the inbox was full */
    bool is_posted;      /* post queued on the loop */
    bool is_closed;      /* the instance's loop is done: refuse */
    bool want_shutdown;  /* SIGTERM reached the main thread */
    bool want_reload;    /* SIGHUP likewise */
    bool is_behind_said; /* the current episode of a full inbox was logged */
    /* The instance's. */
    struct wsk_post post;
    struct serve *s;
};

struct serve_group {
    unsigned n;
    uint8_t node[8];
    struct serve *inst[];
};

unsigned serve_threads_count(const struct serve *s)
{
    return s->group ? s->group->n : 1;
}

struct serve *serve_threads_get(struct serve *s, unsigned i)
{
    return s->group ? s->group->inst[i] : s;
}

const uint8_t *serve_threads_node(const struct serve *s)
{
    return s->group ? s->group->node : NULL;
}

void serve_room_deliver(struct serve *s, const char *room, size_t room_len, enum wsk_opcode opcode,
                        const void *data, size_t len)
{
    if (s->srv) {
        int rv = wsk_server_publish(s->srv, room, room_len, opcode, data, len);
        if (rv < 0)
            cli_log(CLI_NORMAL, "a message for %.*s could not be delivered: %s", (int)room_len,
                    room, wsk_strerror(rv));
    }
    if (room_len == 1 && room[0] == '/')
        serve_room_from_ws(s, data, len);
}

/* ---- the inboxes ------------------------------------------------------------ */

static void inbox_post(struct serve_inbox *in)
{
    /* Under in->lock: one post at a time; its callback takes everything. */
    if (!in->is_posted && !in->is_closed) {
        in->is_posted = true;
        wsk_loop_post(in->s->loop, &in->post);
    }
}

static void inbox_put(struct serve *from, struct serve *to, const char *room, size_t room_len,
                      enum wsk_opcode opcode, const void *data, size_t len)
{
    struct serve_inbox *in = to->inbox;
    size_t cost = sizeof(struct bus_msg) + room_len + len;
    bool say_behind = false;

    pthread_mutex_lock(&in->lock);
    if (in->is_closed) {
        pthread_mutex_unlock(&in->lock);
        return;
    }
    /* One message alone is always taken: the cap is on what waits. */
    if (in->head && in->bytes + cost > INBOX_MAX) {
        in->dropped++;
        say_behind = !in->is_behind_said;
        in->is_behind_said = true;
        pthread_mutex_unlock(&in->lock);
        from->thread_behind++;
        if (say_behind)
            cli_error("thread %u is behind (over %u MiB waiting for it): messages from other "
                      "threads are dropped there until it catches up, counted",
                      to->index + 1, INBOX_MAX >> 20);
        return;
    }
    pthread_mutex_unlock(&in->lock);

    struct bus_msg *m = malloc(cost);
    if (!m) {
        from->thread_behind++;
        cli_error("out of memory: a message did not reach thread %u", to->index + 1);
        return;
    }
    m->next = NULL;
    m->len = len;
    m->room_len = (uint16_t)room_len;
    m->opcode = (uint8_t)opcode;
    memcpy(m->bytes, room, room_len);
    if (len)
        memcpy(m->bytes + room_len, data, len);

    pthread_mutex_lock(&in->lock);
    if (in->is_closed) {
        pthread_mutex_unlock(&in->lock);
        free(m);
        return;
    }
    if (in->tail)
        in->tail->next = m;
    else
        in->head = m;
    in->tail = m;
    in->bytes += cost;
    inbox_post(in);
    pthread_mutex_unlock(&in->lock);
}

/* On the receiving instance's loop: everything waiting, in order. */
static void on_inbox(struct wsk_loop *loop, struct wsk_post *p)
{
    (void)loop;
    struct serve_inbox *in = p->data;
    struct serve *s = in->s;

    pthread_mutex_lock(&in->lock);
    struct bus_msg *m = in->head;
    bool shutdown = in->want_shutdown, reload = in->want_reload, closed = in->is_closed;
    in->head = in->tail = NULL;
    in->bytes = 0;
    in->is_posted = false;
    in->is_behind_said = false;
    in->want_shutdown = in->want_reload = false;
    pthread_mutex_unlock(&in->lock);

    if (reload && !closed)
        serve_reload(s, true);
    while (m) {
        struct bus_msg *next = m->next;
        if (!closed)
            serve_room_deliver(s, (const char *)m->bytes, m->room_len, (enum wsk_opcode)m->opcode,
                               m->bytes + m->room_len, m->len);
        free(m);
        m = next;
    }
    if (shutdown && !closed)
        serve_shutdown(s);
}

void serve_room_others(struct serve *s, const char *room, size_t room_len, enum wsk_opcode opcode,
                       const void *data, size_t len)
{
    if (s->group) {
        for (unsigned i = 0; i < s->group->n; i++)
            if (i != s->index)
                inbox_put(s, s->group->inst[i], room, room_len, opcode, data, len);
    }
    serve_redis_publish(s, room, room_len, opcode, data, len);
}

static void ask_others(struct serve *s, bool shutdown)
{
    if (!s->group || s->index != 0)
        return;
    for (unsigned i = 1; i < s->group->n; i++) {
        struct serve_inbox *in = s->group->inst[i]->inbox;
        pthread_mutex_lock(&in->lock);
        if (shutdown)
            in->want_shutdown = true;
        else
            in->want_reload = true;
        inbox_post(in);
        pthread_mutex_unlock(&in->lock);
    }
}

void serve_threads_shutdown(struct serve *s)
{
    ask_others(s, true);
}

void serve_threads_reload(struct serve *s)
{
    ask_others(s, false);
}

static int inbox_new(struct serve *s)
{
    struct serve_inbox *in = calloc(1, sizeof *in);
    if (!in)
        return -ENOMEM;
    int rv = pthread_mutex_init(&in->lock, NULL);
    if (rv != 0) {
        free(in);
        return -rv;
    }
    in->s = s;
    in->post.cb = on_inbox;
    in->post.data = in;
    s->inbox = in;
    return 0;
}

/* After every thread has ended: nothing more comes in. A post still queued
 * (a message sent after the loop's last round) is run, to free it, on a
 * loop that ended by itself (ran_out: nothing else is left on it, so the
 * run returns at once). */
static void inbox_close(struct serve *s, bool ran_out)
{
    struct serve_inbox *in = s->inbox;
    if (!in)
        return;
    pthread_mutex_lock(&in->lock);
    in->is_closed = true;
    bool posted = in->is_posted;
    pthread_mutex_unlock(&in->lock);
    if (posted && ran_out && s->loop)
        (void)wsk_loop_run(s->loop);
}

static void inbox_free(struct serve *s)
{
    struct serve_inbox *in = s->inbox;
    if (!in)
        return;
    for (struct bus_msg *m = in->head, *next; m; m = next) {
        next = m->next;
        free(m);
    }
    pthread_mutex_destroy(&in->lock);
    free(in);
    s->inbox = NULL;
}

/* ---- running ------------------------------------------------------------------ */

static void *thread_main(void *arg)
{
    struct serve *s = arg;
    cli_log_set_thread(s->index + 1);
    int rv = cli_loop_run(s->loop);
    return (void *)(intptr_t)rv;
}

/* A copy of the main instance's options, on the ports it bound. */
static void copy_options(struct serve *to, const struct serve *from)
{
    to->opt = from->opt;
    for (size_t i = 0; i < to->opt.num_listens; i++)
        to->opt.listens[i].addr.port = from->opt.listens[i].port;
    to->proxy_host = from->proxy_host;
    to->proxy_port = from->proxy_port;
}

int serve_run_threads(struct serve *s)
{
    unsigned n = s->opt.threads;
    struct serve_group *g = calloc(1, sizeof *g + n * sizeof g->inst[0]);
    pthread_t *tids = calloc(n, sizeof *tids);
    bool *ran_out = calloc(n, sizeof *ran_out);
    unsigned started = 0, spawned = 0;
    int status = 0, rv;

    if (!g || !tids || !ran_out) {
        free(g);
        free(tids);
        free(ran_out);
        cli_error("out of memory");
        return CLI_EXIT_FAILURE;
    }
    g->n = n;
    if (getrandom(g->node, sizeof g->node, 0) != sizeof g->node) {
        cli_error("cannot get random bytes for the node id: %s", wsk_strerror(-errno));
        status = CLI_EXIT_FAILURE;
        goto out;
    }
    /* Every listener of every instance shares its port, and the limit on
     * connections is shared out. */
    s->opt.reuse_port = true;
    s->opt.max_connections = (s->opt.max_connections + n - 1) / n;
    g->inst[0] = s;
    for (unsigned i = 0; i < n; i++) {
        struct serve *t = i ? calloc(1, sizeof *t) : s;
        if (!t) {
            cli_error("out of memory");
            status = CLI_EXIT_FAILURE;
            goto out;
        }
        g->inst[i] = t;
        if (i)
            copy_options(t, s);
        t->group = g;
        t->index = i;
        if ((rv = inbox_new(t)) < 0) {
            cli_error("cannot start thread %u: %s", i + 1, wsk_strerror(rv));
            status = CLI_EXIT_FAILURE;
            goto out;
        }
        started = i + 1;
        if ((status = serve_start(t)) != 0)
            goto out;
    }
    if ((status = serve_set_signals(s)) != 0)
        goto out;
    /* The loop blocked the signals it handles in this thread; the threads
     * created now inherit that, so they reach the main loop only. */
    for (unsigned i = 1; i < n; i++) {
        if ((rv = pthread_create(&tids[i], NULL, thread_main, g->inst[i])) != 0) {
            cli_error("cannot start thread %u: %s", i + 1, wsk_strerror(-rv));
            status = CLI_EXIT_FAILURE;
            serve_shutdown(s);
            serve_threads_shutdown(s);
            break;
        }
        spawned = i;
    }
    if (!status)
        serve_print_banner(s);
    cli_log_set_thread(s->index + 1);
    rv = cli_loop_run(s->loop);
    ran_out[0] = rv == 0;
    if (rv != 0 && !status) {
        /* The main loop failed: the others must not run on alone. */
        status = rv;
        serve_shutdown(s);
        serve_threads_shutdown(s);
    }
    for (unsigned i = 1; i <= spawned; i++) {
        void *ret = NULL;
        pthread_join(tids[i], &ret);
        ran_out[i] = (intptr_t)ret == 0;
        if ((intptr_t)ret != 0 && !status)
            status = (int)(intptr_t)ret;
    }
    cli_log_set_thread(0);
    for (unsigned i = 1; i < started; i++) {
        struct serve *t = g->inst[i];
        s->auth_refused += t->auth_refused;
        s->rate_closed += t->rate_closed;
        s->redis_unsent += t->redis_unsent;
        s->thread_behind += t->thread_behind;
    }
    serve_print_counters(s);
    if (!status)
        cli_verbose("stopped");
out:
    for (unsigned i = 0; i < started; i++)
        inbox_close(g->inst[i], ran_out[i]);
    for (unsigned i = 1; i < started; i++) {
        serve_free_instance(g->inst[i]);
        inbox_free(g->inst[i]);
        free(g->inst[i]);
    }
    inbox_free(s);
    s->group = NULL;
    free(g);
    free(tids);
    free(ran_out);
    return status ? status : CLI_EXIT_OK;
}
