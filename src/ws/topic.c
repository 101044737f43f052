/* Topics: publish/subscribe on one server (wsk/topic.h).
 *
 * Two hash tables and two lists per subscription:
 *
 *   topics  name -> struct wsk__topic      (SipHash, random key per server)
 *   subs    (topic, conn) -> struct wsk__sub  (for O(1) unsubscribe and the
 *                                             "already subscribed" check)
 *
 * Each subscription is on its topic's list (what a publish walks) and on its
 * connection's list (what the connection's end walks), both doubly linked so
 * that either end removes it in O(1). A topic lives while it has a
 * subscriber or a publish is walking it.
 *
 * A publish calls back into user code (on_close of a receiver ended by the
 * overflow policy or out of memory), which may remove any subscription,
 * including the next one the walk would visit. As with connections
 * (wsk__walk), each walk registers on its topic, and removing a
 * subscription moves past it every walk about to visit it.
 *
 * Other threads hand messages over through the inbox: a list under a mutex,
 * bounded in bytes, drained by one wsk_loop_post() at a time.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "ws/server_internal.h"

#define HTAB_MIN_BUCKETS      16
#define DEFAULT_MAX_PUBLISH_Q (16u * 1024 * 1024)

struct topic_walk {
    struct wsk__sub *next;
    struct topic_walk *up;
};

struct wsk__topic {
    struct wsk__hnode h;
    struct wsk__sub *subs;    /* newest first */
    struct topic_walk *walks; /* publishes walking subs now, innermost first */
    uint64_t hash;
    uint32_t num_subs;
    uint16_t len;
    uint8_t name[];
};

struct wsk__sub {
    struct wsk__hnode h;
    struct wsk__topic *topic;
    struct wsk_conn *conn;
    struct wsk__sub *tprev, *tnext; /* the topic's list */
    struct wsk__sub *cprev, *cnext; /* the connection's list */
};

/* A message from another thread, waiting for the loop. */
struct pending {
    struct pending *next;
    size_t len;
    uint16_t topic_len;
    uint8_t opcode;
    uint8_t bytes[]; /* the topic, then the data */
};

struct wsk__inbox {
    pthread_mutex_t lock;
    /* Guarded by lock. */
    struct pending *head, *tail;
    size_t bytes;
    uint64_t refused;
    bool is_posted; /* post is queued on the loop or about to be */
    bool is_orphan; /* the server is gone: the post callback frees this */
    /* Set once at creation. */
    size_t cap;
    struct wsk_loop *loop;
    struct wsk_server *srv;
    struct wsk_post post;
};

/* ---- SipHash-2-4 ------------------------------------------------------------ */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

static uint64_t load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

uint64_t wsk__siphash(const uint64_t key[2], const void *data, size_t len)
{
    const uint8_t *in = data;
    uint64_t v0 = 0x736f6d6570736575ull ^ key[0];
    uint64_t v1 = 0x646f72616e646f6dull ^ key[1];
    uint64_t v2 = 0x6c7967656e657261ull ^ key[0];
    uint64_t v3 = 0x7465646279746573ull ^ key[1];
    size_t whole = len & ~(size_t)7;
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = load_le64(in + i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t i = 0; i < (len & 7); i++)
        b |= (uint64_t)in[whole + i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- hash tables ------------------------------------------------------------ */

typedef uint64_t (*hash_fn)(const struct wsk__hnode *n);

static uint64_t topic_node_hash(const struct wsk__hnode *n)
{
    return ((const struct wsk__topic *)(const void *)n)->hash;
}

/* Pointers are not chosen by peers: a multiplicative mix spreads them. */
static uint64_t sub_hash(const struct wsk__topic *t, const struct wsk_conn *c)
{
    uint64_t x = (uint64_t)(uintptr_t)t * 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)c;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static uint64_t sub_node_hash(const struct wsk__hnode *n)
{
    const struct wsk__sub *s = (const struct wsk__sub *)(const void *)n;
    return sub_hash(s->topic, s->conn);
}

static void htab_resize(struct wsk__htab *t, size_t nb, hash_fn hash)
{
    struct wsk__hnode **b = calloc(nb, sizeof *b);
    if (!b)
        return; /* chains grow longer, nothing breaks */
    for (size_t i = 0; i <= t->mask; i++) {
        for (struct wsk__hnode *n = t->buckets[i], *next; n; n = next) {
            next = n->next;
            size_t j = (size_t)hash(n) & (nb - 1);
            n->next = b[j];
            b[j] = n;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->mask = nb - 1;
}

/* Makes room for one more node: 0, or -ENOMEM when the table has no
 * buckets at all and none can be had. Growing keeps at most one node per
 * bucket on average. */
static int htab_reserve(struct wsk__htab *t, hash_fn hash)
{
    if (!t->buckets) {
        t->buckets = calloc(HTAB_MIN_BUCKETS, sizeof *t->buckets);
        if (!t->buckets)
            return -ENOMEM;
        t->mask = HTAB_MIN_BUCKETS - 1;
    }
    if (t->n > t->mask)
        htab_resize(t, (t->mask + 1) * 2, hash);
    return 0;
}

static void htab_insert(struct wsk__htab *t, struct wsk__hnode *n, uint64_t h)
{
    struct wsk__hnode **b = &t->buckets[h & t->mask];
    n->next = *b;
    *b = n;
    t->n++;
}

/* A table that emptied out shrinks, so a spike of subscriptions does not
 * hold its buckets for ever. */
static void htab_remove(struct wsk__htab *t, struct wsk__hnode *n, uint64_t h, hash_fn hash)
{
    struct wsk__hnode **pp = &t->buckets[h & t->mask];
    while (*pp != n)
        pp = &(*pp)->next;
    *pp = n->next;
    t->n--;
    if (t->mask + 1 > HTAB_MIN_BUCKETS && t->n < (t->mask + 1) / 8)
        htab_resize(t, (t->mask + 1) / 2, hash);
}

static void htab_free(struct wsk__htab *t)
{
    free(t->buckets);
    t->buckets = NULL;
    t->mask = 0;
    t->n = 0;
}

/* ---- topics and subscriptions ----------------------------------------------- */

static struct wsk__topic *topic_find(const struct wsk__topics *T, const void *name, size_t len,
                                     uint64_t h)
{
    if (!T->topics.buckets)
        return NULL;
    for (struct wsk__hnode *n = T->topics.buckets[h & T->topics.mask]; n; n = n->next) {
        struct wsk__topic *t = (struct wsk__topic *)(void *)n;
        if (t->hash == h && t->len == len && !memcmp(t->name, name, len))
            return t;
    }
    return NULL;
}

static struct wsk__sub *sub_find(const struct wsk__topics *T, const struct wsk__topic *t,
                                 const struct wsk_conn *c)
{
    if (!T->subs.buckets)
        return NULL;
    for (struct wsk__hnode *n = T->subs.buckets[sub_hash(t, c) & T->subs.mask]; n; n = n->next) {
        struct wsk__sub *s = (struct wsk__sub *)(void *)n;
        if (s->topic == t && s->conn == c)
            return s;
    }
    return NULL;
}

static void topic_free(struct wsk__topics *T, struct wsk__topic *t)
{
    htab_remove(&T->topics, &t->h, t->hash, topic_node_hash);
    free(t);
}

static void sub_remove(struct wsk__topics *T, struct wsk__sub *s)
{
    struct wsk__topic *t = s->topic;
    struct wsk_conn *c = s->conn;
    for (struct topic_walk *w = t->walks; w; w = w->up)
        if (w->next == s)
            w->next = s->tnext;
    if (s->tprev)
        s->tprev->tnext = s->tnext;
    else
        t->subs = s->tnext;
    if (s->tnext)
        s->tnext->tprev = s->tprev;
    if (s->cprev)
        s->cprev->cnext = s->cnext;
    else
        c->subs = s->cnext;
    if (s->cnext)
        s->cnext->cprev = s->cprev;
    htab_remove(&T->subs, &s->h, sub_hash(t, c), sub_node_hash);
    free(s);
    if (--t->num_subs == 0 && !t->walks)
        topic_free(T, t);
}

/* The connection's server, or NULL when it is not an open server
 * connection (before on_open c->subs is c->http: not ours to read). */
static struct wsk_server *open_server(const struct wsk_conn *c)
{
    if (!c->ctx->server || !(c->flags & WSK__F_OPENED) || c->state == WSK__DEAD)
        return NULL;
    return c->ctx->server;
}

/* From on_upgrade: remembered, joined when the connection opens. */
static int subscribe_later(struct wsk__upgrade *u, const void *topic, size_t topic_len)
{
    struct wsk__pending_topic *p = malloc(sizeof *p + topic_len);
    if (!p)
        return -ENOMEM;
    p->next = NULL;
    p->len = topic_len;
    memcpy(p->name, topic, topic_len);
    *u->topics_tail = p;
    u->topics_tail = &p->next;
    return 1;
}

int wsk_conn_subscribe(struct wsk_conn *c, const void *topic, size_t topic_len)
{
    if (!topic_len || topic_len > WSK_TOPIC_MAX || !c->ctx->server)
        return -EINVAL;
    struct wsk__upgrade *u = c->ctx->server->upgrading;
    if (u && u->conn == c)
        return subscribe_later(u, topic, topic_len);
    struct wsk_server *srv = open_server(c);
    if (!srv || c->state != WSK__OPEN)
        return WSK_ESTATE;
    return wsk__topics_join(srv, c, topic, topic_len);
}

int wsk__topics_join(struct wsk_server *srv, struct wsk_conn *c, const void *topic,
                     size_t topic_len)
{
    struct wsk__topics *T = &srv->topics;
    uint64_t h = wsk__siphash(T->key, topic, topic_len);
    struct wsk__topic *t = topic_find(T, topic, topic_len, h);
    if (t && sub_find(T, t, c))
        return 0;
    /* Everything that can fail first, so a failure changes nothing. */
    if (htab_reserve(&T->subs, sub_node_hash) < 0 ||
        (!t && htab_reserve(&T->topics, topic_node_hash) < 0))
        return -ENOMEM;
    struct wsk__sub *s = malloc(sizeof *s);
    if (!s)
        return -ENOMEM;
    if (!t) {
        t = malloc(sizeof *t + topic_len);
        if (!t) {
            free(s);
            return -ENOMEM;
        }
        t->subs = NULL;
        t->walks = NULL;
        t->hash = h;
        t->num_subs = 0;
        t->len = (uint16_t)topic_len;
        memcpy(t->name, topic, topic_len);
        htab_insert(&T->topics, &t->h, h);
    }
    s->topic = t;
    s->conn = c;
    s->tprev = NULL;
    s->tnext = t->subs;
    if (t->subs)
        t->subs->tprev = s;
    t->subs = s;
    t->num_subs++;
    s->cprev = NULL;
    s->cnext = c->subs;
    if (c->subs)
        c->subs->cprev = s;
    c->subs = s;
    htab_insert(&T->subs, &s->h, sub_hash(t, c));
    return 1;
}

int wsk_conn_unsubscribe(struct wsk_conn *c, const void *topic, size_t topic_len)
{
    struct wsk_server *srv = open_server(c);
    if (!srv || !topic_len || topic_len > WSK_TOPIC_MAX)
        return 0;
    struct wsk__topics *T = &srv->topics;
    struct wsk__topic *t = topic_find(T, topic, topic_len, wsk__siphash(T->key, topic, topic_len));
    struct wsk__sub *s = t ? sub_find(T, t, c) : NULL;
    if (!s)
        return 0;
    sub_remove(T, s);
    return 1;
}

size_t wsk_conn_unsubscribe_all(struct wsk_conn *c)
{
    struct wsk_server *srv = open_server(c);
    size_t n = 0;
    if (!srv)
        return 0;
    while (c->subs) {
        sub_remove(&srv->topics, c->subs);
        n++;
    }
    return n;
}

void wsk__topics_conn_gone(struct wsk_conn *c)
{
    struct wsk__topics *T = &c->ctx->server->topics;
    while (c->subs)
        sub_remove(T, c->subs);
}

size_t wsk_server_subscribers(const struct wsk_server *srv, const void *topic, size_t topic_len)
{
    if (!topic_len || topic_len > WSK_TOPIC_MAX)
        return 0;
    const struct wsk__topics *T = &srv->topics;
    struct wsk__topic *t = topic_find(T, topic, topic_len, wsk__siphash(T->key, topic, topic_len));
    return t ? t->num_subs : 0;
}

/* ---- publishing ------------------------------------------------------------- */

int wsk_server_publish(struct wsk_server *srv, const void *topic, size_t topic_len,
                       enum wsk_opcode opcode, const void *data, size_t len)
{
    if (!topic_len || topic_len > WSK_TOPIC_MAX)
        return -EINVAL;
    int rv = wsk__fanout_check(opcode, data, len);
    if (rv < 0)
        return rv;
    struct wsk__topics *T = &srv->topics;
    struct wsk__topic *t = topic_find(T, topic, topic_len, wsk__siphash(T->key, topic, topic_len));
    if (!t)
        return 0;
    struct wsk__fanout f;
    if ((rv = wsk__fanout_begin(&f, srv, opcode, data, len)) < 0)
        return rv;
    int count = 0;
    struct topic_walk w = {t->subs, t->walks};
    t->walks = &w;
    while (w.next) {
        struct wsk__sub *s = w.next;
        w.next = s->tnext;
        count += wsk__fanout_to(&f, s->conn);
    }
    /* Walks nest (a publish from a callback of a publish) and end in
     * reverse order, so this one is innermost. */
    t->walks = w.up;
    if (!t->num_subs && !t->walks)
        topic_free(T, t);
    wsk__fanout_end(&f);
    return count;
}

/* ---- from other threads ----------------------------------------------------- */

static void free_pending(struct pending *m)
{
    while (m) {
        struct pending *next = m->next;
        free(m);
        m = next;
    }
}

static void inbox_destroy(struct wsk__inbox *in)
{
    free_pending(in->head);
    pthread_mutex_destroy(&in->lock);
    free(in);
}

/* On the loop thread: publishes what waited, in order. */
static void inbox_cb(struct wsk_loop *loop, struct wsk_post *p)
{
    (void)loop;
    struct wsk__inbox *in = p->data;
    pthread_mutex_lock(&in->lock);
    struct pending *list = in->head;
    in->head = in->tail = NULL;
    in->is_posted = false;
    bool is_orphan = in->is_orphan;
    pthread_mutex_unlock(&in->lock);
    if (is_orphan) {
        free_pending(list);
        inbox_destroy(in);
        return;
    }
    struct wsk_server *srv = in->srv;
    size_t done = 0;
    /* Counted as a callback, so that a wsk_server_free() from a receiver's
     * on_close keeps the server's memory until this returns. */
    srv->ctx.cb_depth++;
    while (list) {
        struct pending *m = list;
        list = m->next;
        if (!srv->free_pending &&
            wsk_server_publish(srv, m->bytes, m->topic_len, (enum wsk_opcode)m->opcode,
                               m->bytes + m->topic_len, m->len) < 0) {
            srv->async_failed++;
            wsk__log(&srv->ctx, 1, "a message published from another thread was lost: %s",
                     wsk_strerror(-ENOMEM));
        }
        done += sizeof *m + m->topic_len + m->len;
        free(m);
    }
    srv->ctx.cb_depth--;
    pthread_mutex_lock(&in->lock);
    in->bytes -= done;
    pthread_mutex_unlock(&in->lock);
}

int wsk_server_publish_async(struct wsk_server *srv, const void *topic, size_t topic_len,
                             enum wsk_opcode opcode, const void *data, size_t len)
{
    if (!topic_len || topic_len > WSK_TOPIC_MAX)
        return -EINVAL;
    int rv = wsk__fanout_check(opcode, data, len);
    if (rv < 0)
        return rv;
    struct wsk__inbox *in = srv->topics.inbox;
    if (len > SIZE_MAX - sizeof(struct pending) - topic_len)
        return -ENOMEM;
    size_t cost = sizeof(struct pending) + topic_len + len;
    struct pending *m = malloc(cost);
    if (!m)
        return -ENOMEM;
    m->next = NULL;
    m->len = len;
    m->topic_len = (uint16_t)topic_len;
    m->opcode = (uint8_t)opcode;
    memcpy(m->bytes, topic, topic_len);
    if (len)
        memcpy(m->bytes + topic_len, data, len);

    pthread_mutex_lock(&in->lock);
    /* The cap is on what waits: a message alone is always taken. */
    if (in->bytes && (cost > in->cap || in->bytes > in->cap - cost)) {
        in->refused++;
        pthread_mutex_unlock(&in->lock);
        free(m);
        return -EAGAIN;
    }
    if (in->tail)
        in->tail->next = m;
    else
        in->head = m;
    in->tail = m;
    in->bytes += cost;
    bool must_post = !in->is_posted;
    in->is_posted = true;
    pthread_mutex_unlock(&in->lock);
    /* One post at a time carries the whole list: while it is queued, later
     * messages only join the list. Until its callback runs, is_posted keeps
     * the inbox alive (see wsk__topics_free()). */
    if (must_post)
        wsk_loop_post(in->loop, &in->post);
    return 0;
}

/* ---- the server's side ------------------------------------------------------ */

int wsk__topics_init(struct wsk_server *srv)
{
    struct wsk__topics *T = &srv->topics;
    uint8_t k[16];
    if (getrandom(k, sizeof k, GRND_NONBLOCK) != (ssize_t)sizeof k) {
        /* No entropy yet (early boot): still a key an outsider cannot
         * easily guess. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t a = (uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)srv,
                 b = (uint64_t)ts.tv_sec ^ ((uint64_t)(uintptr_t)&ts << 7);
        memcpy(k, &a, 8);
        memcpy(k + 8, &b, 8);
    }
    T->key[0] = load_le64(k);
    T->key[1] = load_le64(k + 8);
    struct wsk__inbox *in = calloc(1, sizeof *in);
    if (!in)
        return -ENOMEM;
    if (pthread_mutex_init(&in->lock, NULL) != 0) {
        free(in);
        return -ENOMEM;
    }
    in->cap = srv->cfg.max_publish_queue ? srv->cfg.max_publish_queue : DEFAULT_MAX_PUBLISH_Q;
    in->loop = srv->ctx.loop;
    in->srv = srv;
    in->post.cb = inbox_cb;
    in->post.data = in;
    T->inbox = in;
    return 0;
}

void wsk__topics_free(struct wsk_server *srv)
{
    struct wsk__topics *T = &srv->topics;
    htab_free(&T->subs);
    htab_free(&T->topics);
    struct wsk__inbox *in = T->inbox;
    if (!in)
        return;
    T->inbox = NULL;
    pthread_mutex_lock(&in->lock);
    struct pending *list = in->head;
    in->head = in->tail = NULL;
    in->bytes = 0;
    bool is_posted = in->is_posted;
    in->is_orphan = true;
    pthread_mutex_unlock(&in->lock);
    free_pending(list);
    /* A queued post still points here: its callback frees the inbox. */
    if (!is_posted)
        inbox_destroy(in);
}

void wsk_server_get_stats(const struct wsk_server *srv, struct wsk_server_stats *out)
{
    memset(out, 0, sizeof *out);
    out->slow_closed = srv->slow_closed;
    out->slow_dropped = srv->slow_dropped;
    out->async_failed = srv->async_failed;
    out->topics = srv->topics.topics.n;
    out->subscriptions = srv->topics.subs.n;
    const struct wsk__counters *k = &srv->ctx.cnt;
    out->connections_total = k->accepted;
    out->connections = srv->ctx.num_conns;
    out->websockets_open = srv->ctx.num_open;
    out->websockets_total = k->opened;
    out->messages_in = k->msgs_in;
    out->bytes_in = k->bytes_in;
    out->messages_out = k->msgs_out;
    out->bytes_out = k->bytes_out;
    out->handshake_timeouts = k->handshake_timeouts;
    out->tls_failures = k->tls_failures;
    for (size_t i = 0; i < WSK_STATS_REFUSED; i++)
        out->refused[i] = k->refused[i];
    for (const struct wsk_conn *c = srv->ctx.conns; c; c = c->next)
        out->queued_bytes += c->st.out_bytes;
    struct wsk__inbox *in = srv->topics.inbox;
    if (in) {
        pthread_mutex_lock(&in->lock);
        out->async_refused = in->refused;
        out->async_waiting = in->bytes;
        pthread_mutex_unlock(&in->lock);
    }
}
