/* wsk serve --redis: rooms across processes and machines, through Redis.
 *
 * Every process that points at the same Redis is one cluster. A message
 * published in a room on one process (a WebSocket message, POST /publish, a
 * lobby line or datagram) is delivered to the local clients at once, as
 * without Redis, and PUBLISHed to the channel "wsk:room:" + ROOM with an
 * envelope:
 *
 *     version (1 byte, 1) | opcode (1 byte: 1 text, 2 binary) |
 *     node id (8 bytes)   | the message
 *
 * Every process SUBSCRIBEs to the channels of the rooms that have local
 * clients (the first client of a room subscribes, the last one leaving
 * unsubscribes; the lobby stays subscribed while raw TCP or UDP listeners
 * are in it), and delivers what it receives to the room's local clients,
 * except the messages that carry its own node id (8 random bytes per
 * process): those were delivered locally already. So each subscriber gets
 * each message once, and messages of one sender keep their order (one
 * PUBLISH connection per process; Redis keeps the order of a connection).
 *
 * Why SUBSCRIBE per room rather than PSUBSCRIBE to one pattern: with a
 * pattern, every process receives every message of every room, whether or
 * not it has a client there, so the traffic into each process grows with
 * the whole cluster's, and Redis matches each PUBLISH against every
 * pattern subscription (PUBLISH is O(channel subscribers + patterns)). With
 * channels a process receives only what its clients will get, and a PUBLISH
 * costs O(subscribers of that channel). The price is one SUBSCRIBE or
 * UNSUBSCRIBE when a room gains its first or loses its last local client.
 *
 * Two connections, because a connection that has subscribed can only
 * (un)subscribe. Each goes through AUTH and SELECT from the URL, then PING;
 * its PING answer says it is ready. Faults: when Redis cannot be reached or
 * a connection breaks, local delivery goes on; one line is logged per
 * outage; both connections are retried after 100 ms, doubling up to 5 s;
 * once both are back the current rooms are subscribed again and one line
 * says so. Messages that cannot go to Redis (it is down, or more than
 * --redis-max-queue bytes wait for it, or it answered PUBLISH with an
 * error or not at all) are counted, and the count is printed at exit. */
#include <errno.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "redis_adapter.h"
#include "serve.h"

#define CHANNEL_PREFIX     "wsk:room:"
#define CHANNEL_PREFIX_LEN (sizeof CHANNEL_PREFIX - 1)
#define ENVELOPE_VERSION   1
#define ENVELOPE_HEAD      10
#define NODE_ID_LEN        8
#define BACKOFF_MIN_MS     100
#define BACKOFF_MAX_MS     5000
/* After SIGTERM, how long PUBLISHes already queued may take to leave. */
#define STOP_GRACE_MS 2000
/* What a PUBLISH costs besides its channel and envelope: the command's
 * framing and hiredis's callback record. */
#define PUBLISH_OVERHEAD 64

struct redis_room {
    struct redis_room *next;
    size_t refs; /* local subscribers (the lobby: plus one for raw listeners) */
    size_t len;
    char name[];
};

enum link_state {
    LINK_DOWN,
    LINK_CONNECTING, /* connected or connecting; AUTH, SELECT, PING sent */
    LINK_UP,
};

struct redis_link {
    struct serve_redis *r;
    redisAsyncContext *ac;
    enum link_state state;
    bool is_sub;
    char why[128]; /* why we dropped it ourselves (an error reply) */
};

struct serve_redis {
    struct serve *s;
    struct serve_redis_url url;
    struct redis_link sub, pub;
    struct wsk_timer retry;
    struct wsk_timer stop_timer;
    uint32_t backoff_ms;
    bool is_up;          /* both links up */
    bool is_outage;      /* down, and said so */
    bool is_stopping;    /* SIGTERM or exit: no reconnecting */
    bool is_over_cap;    /* refusing for --redis-max-queue, and said so */
    uint64_t down_since; /* loop ms */
    uint64_t unsent_at_down;
    uint8_t node[NODE_ID_LEN];
    uint64_t seed;
    struct redis_room **buckets;
    size_t num_buckets, num_rooms;
    size_t waiting; /* bytes of PUBLISHes not answered yet */
    size_t max_waiting;
    struct cli_buf chan, env;
};

/* ---- the URL ----------------------------------------------------------------- */

void serve_redis_url_reset(struct serve_redis_url *u)
{
    free(u->host);
    free(u->user);
    free(u->password);
    memset(u, 0, sizeof *u);
}

static char *dup_range(const char *p, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, p, n);
        d[n] = '\0';
    }
    return d;
}

/* redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]. Returns 0, -ENOMEM, or -EINVAL
 * with *why saying what is wrong. */
int serve_redis_url_parse(const char *arg, struct serve_redis_url *out, const char **why)
{
    static const char scheme[] = "redis://";
    const char *p, *at, *host, *host_end, *slash;

    memset(out, 0, sizeof *out);
    out->port = 6379;
    if (strncasecmp(arg, "rediss://", 9) == 0)
        return *why = "TLS (rediss://) is not supported", -EINVAL;
    if (strncasecmp(arg, scheme, sizeof scheme - 1) != 0)
        return *why = "not a redis:// URL", -EINVAL;
    p = arg + sizeof scheme - 1;
    if (strpbrk(p, "?#"))
        return *why = "no query or fragment is allowed", -EINVAL;
    /* The password may hold '@' and '/': the host starts after the last '@'. */
    at = strrchr(p, '@');
    host = at ? at + 1 : p;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (!colon)
            return *why = "expected :PASSWORD@ or USER:PASSWORD@ before the host", -EINVAL;
        if (colon + 1 == at)
            return *why = "empty password", -EINVAL;
        if (colon > p && !(out->user = dup_range(p, (size_t)(colon - p))))
            goto oom;
        if (!(out->password = dup_range(colon + 1, (size_t)(at - colon - 1))))
            goto oom;
    }
    slash = strchr(host, '/');
    host_end = slash ? slash : host + strlen(host);
    const char *port = NULL;
    if (*host == '[') {
        const char *rb = memchr(host, ']', (size_t)(host_end - host));
        if (!rb || rb == host + 1)
            goto bad_host;
        if (rb + 1 < host_end && rb[1] != ':')
            goto bad_host;
        port = rb + 1 < host_end ? rb + 2 : NULL;
        out->host = dup_range(host + 1, (size_t)(rb - host - 1));
    } else {
        const char *colon = memchr(host, ':', (size_t)(host_end - host));
        if (colon == host || host == host_end)
            goto bad_host;
        port = colon ? colon + 1 : NULL;
        out->host = dup_range(host, (size_t)((colon ? colon : host_end) - host));
    }
    if (!out->host)
        goto oom;
    if (port) {
        char *end;
        unsigned long n = strtoul(port, &end, 10);
        if (port == host_end || end != host_end || *port < '0' || *port > '9' || n == 0 ||
            n > 65535) {
            serve_redis_url_reset(out);
            return *why = "expected a port from 1 to 65535 after the host", -EINVAL;
        }
        out->port = (uint16_t)n;
    }
    if (slash && slash[1]) {
        char *end;
        unsigned long n = strtoul(slash + 1, &end, 10);
        if (*end || slash[1] < '0' || slash[1] > '9' || n > 1000000) {
            serve_redis_url_reset(out);
            return *why = "expected a database number after the '/', like /0", -EINVAL;
        }
        out->db = (int)n;
    }
    return 0;
bad_host:
    serve_redis_url_reset(out);
    return *why = "expected HOST, HOST:PORT or [IPV6]:PORT", -EINVAL;
oom:
    serve_redis_url_reset(out);
    return -ENOMEM;
}

/* ---- rooms with local subscribers ------------------------------------------ */

/* FNV-1a under a random seed per process: room names come from clients, and
 * the seed keeps them from choosing colliding names. */
static uint64_t room_hash(const struct serve_redis *r, const char *name, size_t len)
{
    uint64_t h = 0xcbf29ce484222325u ^ r->seed;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)name[i]) * 0x100000001b3u;
    return h ^ (h >> 29);
}

static struct redis_room **room_slot(struct serve_redis *r, const char *name, size_t len)
{
    struct redis_room **pp = &r->buckets[room_hash(r, name, len) & (r->num_buckets - 1)];
    while (*pp && ((*pp)->len != len || memcmp((*pp)->name, name, len) != 0))
        pp = &(*pp)->next;
    return pp;
}

static int rooms_grow(struct serve_redis *r)
{
    size_t n = r->num_buckets ? r->num_buckets * 2 : 64;
    struct redis_room **b = calloc(n, sizeof *b);
    if (!b)
        return -ENOMEM;
    struct redis_room **old = r->buckets;
    size_t old_n = r->num_buckets;
    r->buckets = b;
    r->num_buckets = n;
    for (size_t i = 0; i < old_n; i++) {
        while (old[i]) {
            struct redis_room *room = old[i];
            old[i] = room->next;
            struct redis_room **slot = &b[room_hash(r, room->name, room->len) & (n - 1)];
            room->next = *slot;
            *slot = room;
        }
    }
    free(old);
    return 0;
}

static int set_channel(struct serve_redis *r, const char *room, size_t len)
{
    r->chan.len = 0;
    if (cli_buf_append(&r->chan, CHANNEL_PREFIX, CHANNEL_PREFIX_LEN) < 0 ||
        cli_buf_append(&r->chan, room, len) < 0)
        return -ENOMEM;
    return 0;
}

static void on_sub_message(redisAsyncContext *ac, void *reply, void *data);

static void subscribe(struct serve_redis *r, const char *room, size_t len, bool is_sub)
{
    if (r->sub.state != LINK_UP || set_channel(r, room, len) < 0)
        return;
    if (redisAsyncCommand(r->sub.ac, is_sub ? on_sub_message : NULL, r,
                          is_sub ? "SUBSCRIBE %b" : "UNSUBSCRIBE %b", r->chan.ptr,
                          r->chan.len) != REDIS_OK)
        cli_verbose("redis: cannot %s %.*s", is_sub ? "subscribe to" : "unsubscribe from",
                    (int)r->chan.len, r->chan.ptr);
}

int serve_redis_join(struct serve *s, const char *room, size_t len)
{
    struct serve_redis *r = s->redis;
    if (!r)
        return 0;
    if (r->num_rooms >= r->num_buckets && rooms_grow(r) < 0)
        return -ENOMEM;
    struct redis_room **slot = room_slot(r, room, len);
    if (*slot) {
        (*slot)->refs++;
        return 0;
    }
    struct redis_room *nr = malloc(sizeof *nr + len);
    if (!nr)
        return -ENOMEM;
    nr->next = NULL;
    nr->refs = 1;
    nr->len = len;
    memcpy(nr->name, room, len);
    *slot = nr;
    r->num_rooms++;
    subscribe(r, room, len, true);
    return 0;
}

void serve_redis_leave(struct serve *s, const char *room, size_t len)
{
    struct serve_redis *r = s->redis;
    if (!r || !r->num_buckets)
        return;
    struct redis_room **slot = room_slot(r, room, len);
    struct redis_room *old = *slot;
    if (!old || --old->refs)
        return;
    *slot = old->next;
    r->num_rooms--;
    if (!r->is_stopping)
        subscribe(r, old->name, old->len, false);
    free(old);
}

/* ---- messages ---------------------------------------------------------------- */

static void on_published(redisAsyncContext *ac, void *reply, void *data)
{
    struct redis_link *l = ac->data;
    struct serve_redis *r = l->r;
    const redisReply *rep = reply;
    size_t cost = (size_t)(uintptr_t)data;

    r->waiting -= cost < r->waiting ? cost : r->waiting;
    if (r->is_over_cap && r->waiting <= r->max_waiting / 2)
        r->is_over_cap = false;
    /* No reply: the connection went before Redis answered, so the message may
     * or may not have gone out. Count it: it most likely did not. */
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        r->s->redis_unsent++;
        if (rep)
            cli_verbose("redis: PUBLISH refused: %.*s", (int)rep->len, rep->str);
    }
}

void serve_redis_publish(struct serve *s, const char *room, size_t room_len, enum wsk_opcode opcode,
                         const void *data, size_t len)
{
    struct serve_redis *r = s->redis;
    if (!r)
        return;
    size_t cost = CHANNEL_PREFIX_LEN + room_len + ENVELOPE_HEAD + len + PUBLISH_OVERHEAD;
    if (r->pub.state != LINK_UP || r->is_stopping) {
        s->redis_unsent++;
        return;
    }
    /* One message alone is always taken, however large (it passed
     * --max-message); with others waiting, the cap holds. */
    if (r->waiting && r->waiting + cost > r->max_waiting) {
        s->redis_unsent++;
        if (!r->is_over_cap) {
            r->is_over_cap = true;
            cli_error("redis: more than %zu bytes wait to go to Redis (--redis-max-queue): new "
                      "messages stay on this process until it catches up (counted)",
                      r->max_waiting);
        }
        return;
    }
    uint8_t head[ENVELOPE_HEAD] = {ENVELOPE_VERSION, (uint8_t)opcode};
    memcpy(head + 2, r->node, NODE_ID_LEN);
    r->env.len = 0;
    if (set_channel(r, room, room_len) < 0 || cli_buf_append(&r->env, head, sizeof head) < 0 ||
        cli_buf_append(&r->env, data, len) < 0 ||
        redisAsyncCommand(r->pub.ac, on_published, (void *)(uintptr_t)cost, "PUBLISH %b %b",
                          r->chan.ptr, r->chan.len, r->env.ptr, r->env.len) != REDIS_OK) {
        s->redis_unsent++;
        cli_error("redis: out of memory: a message was not sent to other processes");
        return;
    }
    r->waiting += cost;
    /* Large buffers would stay allocated for the process's life. */
    if (r->env.cap > 1024 * 1024)
        cli_buf_reset(&r->env);
}

static bool is_str(const redisReply *rep)
{
    return rep->type == REDIS_REPLY_STRING;
}

/* A message (or a subscribe or unsubscribe confirmation) on the SUBSCRIBE
 * connection. NULL when the connection goes. */
static void on_sub_message(redisAsyncContext *ac, void *reply, void *data)
{
    struct serve_redis *r = data;
    const redisReply *rep = reply;

    (void)ac;
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 || !is_str(rep->element[0]) ||
        rep->element[0]->len != 7 || memcmp(rep->element[0]->str, "message", 7) != 0 ||
        !is_str(rep->element[1]) || !is_str(rep->element[2]))
        return;
    const redisReply *chan = rep->element[1], *env = rep->element[2];
    if (chan->len <= CHANNEL_PREFIX_LEN || chan->len > CHANNEL_PREFIX_LEN + WSK_TOPIC_MAX ||
        memcmp(chan->str, CHANNEL_PREFIX, CHANNEL_PREFIX_LEN) != 0)
        return;
    const uint8_t *e = (const uint8_t *)env->str;
    if (env->len < ENVELOPE_HEAD || e[0] != ENVELOPE_VERSION ||
        (e[1] != WSK_OP_TEXT && e[1] != WSK_OP_BINARY)) {
        cli_verbose("redis: a message on %.*s is not from wsk serve; ignored", (int)chan->len,
                    chan->str);
        return;
    }
    if (memcmp(e + 2, r->node, NODE_ID_LEN) == 0)
        return; /* ours: delivered here already */
    const char *room = chan->str + CHANNEL_PREFIX_LEN;
    size_t room_len = chan->len - CHANNEL_PREFIX_LEN;
    const uint8_t *msg = e + ENVELOPE_HEAD;
    size_t msg_len = env->len - ENVELOPE_HEAD;
    /* Every thread of this process has its own link, and gets this too. */
    serve_room_deliver(r->s, room, room_len, (enum wsk_opcode)e[1], msg, msg_len);
}

/* ---- connections --------------------------------------------------------------- */

static void link_connect(struct redis_link *l);
static void on_stop_timeout(struct wsk_loop *loop, struct wsk_timer *t);

static void on_retry(struct wsk_loop *loop, struct wsk_timer *t)
{
    struct serve_redis *r = t->data;

    (void)loop;
    if (r->is_stopping)
        return;
    if (r->sub.state == LINK_DOWN)
        link_connect(&r->sub);
    if (r->pub.state == LINK_DOWN)
        link_connect(&r->pub);
}

static void schedule_retry(struct serve_redis *r)
{
    if (r->is_stopping || wsk_timer_is_active(&r->retry))
        return;
    uint32_t delay = r->backoff_ms;
    r->backoff_ms = r->backoff_ms >= BACKOFF_MAX_MS / 2 ? BACKOFF_MAX_MS : r->backoff_ms * 2;
    if (wsk_timer_start(r->s->loop, &r->retry, delay, 0) < 0)
        cli_error("redis: out of memory: cannot schedule the reconnection");
}

static void link_lost(struct redis_link *l, const char *why)
{
    struct serve_redis *r = l->r;

    l->ac = NULL;
    l->state = LINK_DOWN;
    if (r->is_stopping) {
        if (!r->sub.ac && !r->pub.ac)
            wsk_timer_stop(r->s->loop, &r->stop_timer);
        return;
    }
    uint64_t now = wsk_loop_now(r->s->loop);
    if (!r->is_outage) {
        r->is_outage = true;
        r->down_since = now;
        r->unsent_at_down = r->s->redis_unsent;
        cli_error("redis: %s %s:%u: %s; messages stay on this process until it is back "
                  "(retrying)",
                  r->is_up ? "lost" : "cannot reach", r->url.host, (unsigned)r->url.port, why);
    } else {
        cli_verbose("redis: %s connection: %s", l->is_sub ? "SUBSCRIBE" : "PUBLISH", why);
    }
    r->is_up = false;
    schedule_retry(r);
}

static void check_up(struct serve_redis *r)
{
    if (r->is_up || r->sub.state != LINK_UP || r->pub.state != LINK_UP)
        return;
    r->is_up = true;
    r->backoff_ms = BACKOFF_MIN_MS;
    if (r->is_outage) {
        uint64_t ms = wsk_loop_now(r->s->loop) - r->down_since;
        cli_info("redis: %s:%u is back after %llu.%llu s: %zu room%s subscribed again; %llu "
                 "message%s did not reach other processes meanwhile",
                 r->url.host, (unsigned)r->url.port, (unsigned long long)(ms / 1000),
                 (unsigned long long)(ms % 1000 / 100), r->num_rooms, r->num_rooms == 1 ? "" : "s",
                 (unsigned long long)(r->s->redis_unsent - r->unsent_at_down),
                 r->s->redis_unsent - r->unsent_at_down == 1 ? "" : "s");
    } else {
        cli_verbose("redis: connected to %s:%u", r->url.host, (unsigned)r->url.port);
    }
    r->is_outage = false;
}

/* AUTH and SELECT answers: OK, or an error that makes the link useless. */
static void on_setup_reply(redisAsyncContext *ac, void *reply, void *data)
{
    struct redis_link *l = data;
    const redisReply *rep = reply;

    if (!rep || rep->type != REDIS_REPLY_ERROR || l->why[0])
        return;
    snprintf(l->why, sizeof l->why, "%.*s", (int)rep->len, rep->str);
    /* Freed by hiredis once this callback returns; on_disconnect follows. */
    redisAsyncFree(ac);
}

static void on_ping_reply(redisAsyncContext *ac, void *reply, void *data)
{
    struct redis_link *l = data;
    struct serve_redis *r = l->r;
    const redisReply *rep = reply;

    if (!rep || l->why[0])
        return;
    if (rep->type == REDIS_REPLY_ERROR) {
        snprintf(l->why, sizeof l->why, "%.*s", (int)rep->len, rep->str);
        redisAsyncFree(ac);
        return;
    }
    l->state = LINK_UP;
    if (l->is_sub) {
        for (size_t i = 0; i < r->num_buckets; i++)
            for (struct redis_room *room = r->buckets[i]; room; room = room->next)
                subscribe(r, room->name, room->len, true);
    }
    check_up(r);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    /* hiredis frees ac after this; ac->errstr is not set yet. */
    if (status != REDIS_OK)
        link_lost(ac->data, ac->c.errstr[0] ? ac->c.errstr : "cannot connect");
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct redis_link *l = ac->data;
    const char *why = l->why[0]            ? l->why
                      : status == REDIS_OK ? "connection closed"
                      : ac->c.errstr[0]    ? ac->c.errstr
                                           : "connection lost";
    char copy[sizeof l->why];
    snprintf(copy, sizeof copy, "%s", why);
    link_lost(l, copy);
}

static void link_connect(struct redis_link *l)
{
    struct serve_redis *r = l->r;
    const struct serve_redis_url *u = &r->url;
    redisAsyncContext *ac = redisAsyncConnect(u->host, u->port);

    l->why[0] = '\0';
    if (!ac) {
        link_lost(l, "out of memory");
        return;
    }
    if (ac->err) {
        char why[sizeof l->why];
        snprintf(why, sizeof why, "%s", ac->errstr);
        redisAsyncFree(ac);
        link_lost(l, why);
        return;
    }
    if (redis_adapter_attach(ac, r->s->loop) < 0) {
        redisAsyncFree(ac);
        link_lost(l, "out of memory");
        return;
    }
    ac->data = l;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    l->ac = ac;
    l->state = LINK_CONNECTING;
    if (u->password && u->user)
        redisAsyncCommand(ac, on_setup_reply, l, "AUTH %s %s", u->user, u->password);
    else if (u->password)
        redisAsyncCommand(ac, on_setup_reply, l, "AUTH %s", u->password);
    if (u->db)
        redisAsyncCommand(ac, on_setup_reply, l, "SELECT %d", u->db);
    redisAsyncCommand(ac, on_ping_reply, l, "PING");
}

/* ---- the whole ------------------------------------------------------------------ */

int serve_redis_start(struct serve *s)
{
    const char *why = NULL;
    struct serve_redis *r = calloc(1, sizeof *r);

    if (!r) {
        cli_error("out of memory");
        return CLI_EXIT_FAILURE;
    }
    s->redis = r;
    r->s = s;
    if (serve_redis_url_parse(s->opt.redis_url, &r->url, &why) < 0) {
        cli_error("--redis: out of memory");
        return CLI_EXIT_FAILURE;
    }
    r->max_waiting = (size_t)s->opt.redis_max_queue;
    r->backoff_ms = BACKOFF_MIN_MS;
    r->sub.r = r->pub.r = r;
    r->sub.is_sub = true;
    wsk_timer_init(&r->retry, on_retry, r);
    wsk_timer_init(&r->stop_timer, on_stop_timeout, r);
    /* One id for every thread of the process: a message published on one
     * reached the others through serve_threads.c already. */
    const uint8_t *node = serve_threads_node(s);
    if (node)
        memcpy(r->node, node, sizeof r->node);
    if ((!node && getrandom(r->node, sizeof r->node, 0) != sizeof r->node) ||
        getrandom(&r->seed, sizeof r->seed, 0) != sizeof r->seed) {
        cli_error("--redis: cannot get random bytes for the node id: %s", wsk_strerror(-errno));
        return CLI_EXIT_FAILURE;
    }
    /* Raw TCP and UDP peers live in the lobby: it always has local clients. */
    if (serve_has_kind(&s->opt, LISTEN_TCP) || serve_has_kind(&s->opt, LISTEN_UDP)) {
        if (serve_redis_join(s, "/", 1) < 0) {
            cli_error("out of memory");
            return CLI_EXIT_FAILURE;
        }
    }
    link_connect(&r->sub);
    link_connect(&r->pub);
    return 0;
}

static void on_stop_timeout(struct wsk_loop *loop, struct wsk_timer *t)
{
    struct serve_redis *r = t->data;

    (void)loop;
    cli_info("redis: PUBLISHes still waiting at exit were dropped");
    if (r->pub.ac)
        redisAsyncFree(r->pub.ac);
    if (r->sub.ac)
        redisAsyncFree(r->sub.ac);
}

void serve_redis_shutdown(struct serve *s)
{
    struct serve_redis *r = s->redis;
    if (!r || r->is_stopping)
        return;
    r->is_stopping = true;
    wsk_timer_stop(s->loop, &r->retry);
    /* The SUBSCRIBE connection has nothing to finish; the PUBLISH one
     * closes once Redis has answered what it sent. */
    if (r->sub.ac)
        redisAsyncDisconnect(r->sub.ac);
    if (r->pub.ac)
        redisAsyncDisconnect(r->pub.ac);
    if (r->sub.ac || r->pub.ac) {
        if (wsk_timer_start(s->loop, &r->stop_timer, STOP_GRACE_MS, 0) < 0)
            on_stop_timeout(s->loop, &r->stop_timer);
    }
}

void serve_redis_free(struct serve *s)
{
    struct serve_redis *r = s->redis;
    if (!r)
        return;
    r->is_stopping = true;
    wsk_timer_stop(s->loop, &r->retry);
    wsk_timer_stop(s->loop, &r->stop_timer);
    if (r->sub.ac)
        redisAsyncFree(r->sub.ac);
    if (r->pub.ac)
        redisAsyncFree(r->pub.ac);
    for (size_t i = 0; i < r->num_buckets; i++) {
        while (r->buckets[i]) {
            struct redis_room *room = r->buckets[i];
            r->buckets[i] = room->next;
            free(room);
        }
    }
    free(r->buckets);
    cli_buf_reset(&r->chan);
    cli_buf_reset(&r->env);
    serve_redis_url_reset(&r->url);
    free(r);
    s->redis = NULL;
}

int serve_redis_check(const struct serve_options *opt)
{
    struct serve_redis_url u;
    const char *why = NULL;

    if (!opt->redis_url)
        return 0;
    if (opt->mode != SERVE_BROADCAST)
        return cli_usage_error("--redis joins the rooms of --broadcast across processes; it "
                               "does not apply to --echo, --exec or --proxy");
    int rv = serve_redis_url_parse(opt->redis_url, &u, &why);
    if (rv == -ENOMEM)
        return cli_usage_error("out of memory");
    if (rv < 0)
        return cli_usage_error("--redis '%s': %s (expected "
                               "redis://[:PASSWORD@]HOST[:PORT][/DB])",
                               opt->redis_url, why);
    serve_redis_url_reset(&u);
    return 0;
}
