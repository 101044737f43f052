/* A minimal libwebsockets echo (or broadcast) server for bench/run.sh.
 *
 *   lws_echo PORT [--broadcast]      listens on 127.0.0.1:PORT (0: any port)
 *
 * Prints "listening on PORT" on stdout and runs until SIGTERM or SIGINT.
 *
 * CMake does not build this file (it would make libwebsockets a build
 * dependency); bench/run.sh compiles it when libwebsockets-dev is installed:
 *   cc -O2 bench/lws_echo.c $(pkg-config --cflags --libs libwebsockets)
 *
 * It follows lws's own minimal examples: what arrives is queued per session
 * with LWS_PRE bytes of headroom, and written from the WRITEABLE callback,
 * as many writes per callback as the socket takes (lws_send_pipe_choked()).
 * Echo mode echoes fragment by fragment with the same first/final flags, so
 * big messages stream through without being reassembled; reading pauses
 * (lws_rx_flow_control) while a session has more than 1 MiB queued.
 * Broadcast mode reassembles each message, puts it once in a shared ring of
 * the last 4096 messages, and each session writes from its own position in
 * the ring (a session that falls a whole ring behind loses messages, which
 * wsk bench reports).
 */
#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QUEUE_HIGH (1024 * 1024)
#define QUEUE_LOW  (256 * 1024)
#define RING_SIZE  4096

struct frag {
    struct frag *next;
    size_t len;
    int is_first;
    int is_final;
    int is_binary;
    unsigned char buf[]; /* LWS_PRE bytes of headroom, then the payload */
};

struct bmsg {
    unsigned char *buf; /* LWS_PRE + payload */
    size_t len;
    int is_binary;
};

struct pss {
    /* echo */
    struct frag *head, *tail;
    size_t queued;
    int is_paused;
    /* broadcast */
    unsigned long long next; /* ring sequence this session writes next */
    unsigned char *rx;       /* a message being reassembled, with headroom */
    size_t rx_len;
    size_t rx_cap;
};

static int is_broadcast;
static volatile sig_atomic_t is_interrupted;
static struct lws_context *context;
static struct bmsg ring[RING_SIZE];
static unsigned long long ring_head; /* sequence of the next message put in the ring */

static int echo_receive(struct lws *wsi, struct pss *pss, const void *in, size_t len)
{
    struct frag *f = malloc(sizeof *f + LWS_PRE + len);
    if (!f)
        return -1;
    f->next = NULL;
    f->len = len;
    f->is_first = lws_is_first_fragment(wsi);
    f->is_final = lws_is_final_fragment(wsi);
    f->is_binary = lws_frame_is_binary(wsi);
    memcpy(f->buf + LWS_PRE, in, len);
    if (pss->tail)
        pss->tail->next = f;
    else
        pss->head = f;
    pss->tail = f;
    pss->queued += len;
    if (pss->queued > QUEUE_HIGH && !pss->is_paused) {
        pss->is_paused = 1;
        lws_rx_flow_control(wsi, 0);
    }
    lws_callback_on_writable(wsi);
    return 0;
}

static int echo_writeable(struct lws *wsi, struct pss *pss)
{
    do {
        struct frag *f = pss->head;
        if (!f)
            break;
        int flags = lws_write_ws_flags(f->is_binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT,
                                       f->is_first, f->is_final);
        if (lws_write(wsi, f->buf + LWS_PRE, f->len, (enum lws_write_protocol)flags) < (int)f->len)
            return -1;
        pss->head = f->next;
        if (!pss->head)
            pss->tail = NULL;
        pss->queued -= f->len;
        free(f);
    } while (!lws_send_pipe_choked(wsi));
    if (pss->head)
        lws_callback_on_writable(wsi);
    if (pss->is_paused && pss->queued < QUEUE_LOW) {
        pss->is_paused = 0;
        lws_rx_flow_control(wsi, 1);
    }
    return 0;
}

static int broadcast_receive(struct lws *wsi, struct pss *pss, const void *in, size_t len)
{
    if (pss->rx_len + len > pss->rx_cap) {
        size_t cap = pss->rx_cap ? pss->rx_cap : 1024;
        while (cap < pss->rx_len + len)
            cap *= 2;
        unsigned char *p = realloc(pss->rx, LWS_PRE + cap);
        if (!p)
            return -1;
        pss->rx = p;
        pss->rx_cap = cap;
    }
    memcpy(pss->rx + LWS_PRE + pss->rx_len, in, len);
    pss->rx_len += len;
    if (!lws_is_final_fragment(wsi))
        return 0;

    struct bmsg *m = &ring[ring_head % RING_SIZE];
    free(m->buf);
    m->buf = malloc(LWS_PRE + pss->rx_len);
    if (!m->buf)
        return -1;
    memcpy(m->buf + LWS_PRE, pss->rx + LWS_PRE, pss->rx_len);
    m->len = pss->rx_len;
    m->is_binary = lws_frame_is_binary(wsi);
    pss->rx_len = 0;
    ring_head++;
    lws_callback_on_writable_all_protocol(context, lws_get_protocol(wsi));
    return 0;
}

static int broadcast_writeable(struct lws *wsi, struct pss *pss)
{
    if (ring_head - pss->next > RING_SIZE)
        pss->next = ring_head - RING_SIZE; /* fell a whole ring behind: skip */
    while (pss->next < ring_head) {
        struct bmsg *m = &ring[pss->next % RING_SIZE];
        if (lws_write(wsi, m->buf + LWS_PRE, m->len,
                      m->is_binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT) < (int)m->len)
            return -1;
        pss->next++;
        if (lws_send_pipe_choked(wsi))
            break;
    }
    if (pss->next < ring_head)
        lws_callback_on_writable(wsi);
    return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct pss *pss = user;

    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        pss->next = ring_head;
        break;
    case LWS_CALLBACK_RECEIVE:
        return is_broadcast ? broadcast_receive(wsi, pss, in, len)
                            : echo_receive(wsi, pss, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return is_broadcast ? broadcast_writeable(wsi, pss) : echo_writeable(wsi, pss);
    case LWS_CALLBACK_CLOSED:
        while (pss->head) {
            struct frag *f = pss->head;
            pss->head = f->next;
            free(f);
        }
        pss->tail = NULL;
        free(pss->rx);
        pss->rx = NULL;
        break;
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols protocols[] = {
    {"bench", callback, sizeof(struct pss), 65536, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void on_signal(int sig)
{
    (void)sig;
    is_interrupted = 1;
    lws_cancel_service(context);
}

int main(int argc, char **argv)
{
    struct lws_context_creation_info info;
    char *end;

    if (argc < 2 || argc > 3 || (argc == 3 && strcmp(argv[2], "--broadcast"))) {
        fprintf(stderr, "usage: lws_echo PORT [--broadcast]\n");
        return 2;
    }
    long port = strtol(argv[1], &end, 10);
    if (*end || port < 0 || port > 65535) {
        fprintf(stderr, "lws_echo: bad port '%s'\n", argv[1]);
        return 2;
    }
    is_broadcast = argc == 3;
    lws_set_log_level(LLL_ERR, NULL);
    memset(&info, 0, sizeof info);
    info.port = (int)port;
    info.iface = "127.0.0.1";
    info.protocols = protocols;
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
    context = lws_create_context(&info);
    if (!context) {
        fprintf(stderr, "lws_echo: cannot create the context\n");
        return 1;
    }
    struct lws_vhost *vh = lws_get_vhost_by_name(context, "default");
    printf("listening on %d\n", vh ? lws_get_vhost_listen_port(vh) : (int)port);
    fflush(stdout);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    while (!is_interrupted && lws_service(context, 0) >= 0) {
    }
    lws_context_destroy(context);
    for (size_t i = 0; i < RING_SIZE; i++)
        free(ring[i].buf);
    return 0;
}
