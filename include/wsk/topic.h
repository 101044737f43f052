/* wsk topics: publish/subscribe on one server.
 *
 * A server connection subscribes to any number of topics; a message
 * published to a topic goes to every connection subscribed to it on that
 * server, encoded once and shared as wsk_server_broadcast() does (one
 * compression per distinct permessage-deflate window, the overflow policy
 * per receiver, the cap on what waits). A topic is a byte string of 1 to
 * WSK_TOPIC_MAX bytes, compared byte for byte: any bytes, NUL included. A
 * topic exists while it has a subscriber; the last one leaving frees it.
 *
 * Costs: subscribing, unsubscribing and finding a topic are O(1) on average
 * (hash tables; topic names are hashed with SipHash under a random key per
 * server, so names chosen by clients cannot make chains long). A publish
 * costs O(subscribers of the topic), whatever the number of connections or
 * topics. A connection's subscriptions go when it ends, in O(its
 * subscriptions). Memory: docs/ARCHITECTURE.md has the figures (about 80
 * bytes per subscription and 64 plus the name per topic on glibc x86-64).
 *
 * Callbacks that run during a publish (on_close of a receiver that was
 * ended or closed) may subscribe, unsubscribe, close, publish or free the
 * server: the publish walks safely. A connection subscribed during a publish
 * to the same topic does not get that message.
 *
 * Threads: everything here belongs to the server's loop thread except
 * wsk_server_publish_async(), which any thread may call.
 */
#ifndef WSK_TOPIC_H
#define WSK_TOPIC_H

#include "wsk/ws.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The longest topic name, in bytes. */
#define WSK_TOPIC_MAX 256

/* Subscribes an open server connection to topic (topic_len bytes, copied).
 * Call it from on_open or any time later while the connection is open, or
 * from the server's on_upgrade handler (wsk/ws.h): the topic is then joined
 * as the connection opens, before on_open, if the upgrade is accepted.
 *
 * Returns 1 when the connection is now subscribed (from on_upgrade: will
 * be), 0 when it already was;
 * -EINVAL for a topic_len of 0 or over WSK_TOPIC_MAX, or a client
 * connection; WSK_ESTATE when the connection is not open (it ended, or its
 * on_open has not run); -ENOMEM, and then nothing changed. */
WSK_API int wsk_conn_subscribe(struct wsk_conn *conn, const void *topic, size_t topic_len);

/* Unsubscribes conn from topic. Returns 1 when it was subscribed, 0 when it
 * was not (a client connection, one that ended, or a topic_len out of range
 * included). Cannot fail. */
WSK_API int wsk_conn_unsubscribe(struct wsk_conn *conn, const void *topic, size_t topic_len);

/* Unsubscribes conn from every topic (as its end does). Returns how many
 * subscriptions it had. */
WSK_API size_t wsk_conn_unsubscribe_all(struct wsk_conn *conn);

/* Number of connections subscribed to topic on srv (0 for an unknown topic
 * or a topic_len out of range). */
WSK_API size_t wsk_server_subscribers(const struct wsk_server *srv, const void *topic,
                                      size_t topic_len);

/* Sends one message to every subscriber of topic that is open and has not
 * sent or received a close frame (encoded once, shared; data is copied).
 * Slow receivers get the overflow policy. A receiver whose queueing runs out
 * of memory is ended at once, so on_close may run inside this call.
 *
 * Returns the number of connections it was queued to (0 when the topic has
 * no subscriber; receivers closed or dropped by the overflow policy, or
 * ended, are not counted); -EINVAL for an opcode other than WSK_OP_TEXT and
 * WSK_OP_BINARY or a topic_len of 0 or over WSK_TOPIC_MAX; WSK_EUTF8 for
 * text that is not UTF-8; or -ENOMEM; and then nothing was sent. */
WSK_API int wsk_server_publish(struct wsk_server *srv, const void *topic, size_t topic_len,
                               enum wsk_opcode opcode, const void *data, size_t len);

/* Thread-safe: the same as wsk_server_publish(), from any thread (threads
 * that run no loop included). The topic and the message are copied and
 * handed to the server's loop (wsk_loop_post()), which publishes them soon,
 * in the order they were queued: messages from one thread arrive in the
 * order that thread published them. The caller does not learn how many
 * receivers there were.
 *
 * Bounded: at most the config's max_publish_queue bytes (16 MiB by default;
 * each message counts its topic, its data and 24 bytes) wait for the
 * loop. A message that would pass it while others wait is refused; one
 * alone is always taken.
 *
 * Once queued, a message can still be lost on the loop if the frame
 * cannot be allocated there: counted in wsk_server_get_stats()'s
 * async_failed, and logged.
 *
 * Returns 0 when queued; -EAGAIN, and nothing was queued, when the queue is
 * full (the loop is behind: try again later); -EINVAL or WSK_EUTF8 as
 * wsk_server_publish(); or -ENOMEM.
 *
 * srv must stay alive during the call: stop (join) the publishing threads
 * before wsk_server_free(). Messages still waiting when the server is freed
 * are dropped; if the hand-over is queued on the loop then, the loop must
 * run once more before wsk_loop_free() succeeds (it says -EBUSY until). */
WSK_API int wsk_server_publish_async(struct wsk_server *srv, const void *topic, size_t topic_len,
                                     enum wsk_opcode opcode, const void *data, size_t len);

/* Slots of wsk_server_stats.refused, and the HTTP status each counts:
 * 400, 401, 403, 404, 405, 413, 414, 426, 431, 500, 503, then 0 for any
 * other. wsk_stats_refused_code(i) returns 0 for i out of range. */
#define WSK_STATS_REFUSED 12
WSK_API unsigned wsk_stats_refused_code(size_t i);

/* Counters of one server. */
struct wsk_server_stats {
    uint64_t slow_closed;   /* receivers closed with 1008 by WSK_OVERFLOW_CLOSE */
    uint64_t slow_dropped;  /* messages not queued to a receiver by WSK_OVERFLOW_DROP */
    uint64_t async_refused; /* wsk_server_publish_async() calls refused (-EAGAIN) */
    uint64_t async_failed;  /* messages it queued that the loop could not publish (out of
                               memory for the frame), each also logged */
    size_t topics;          /* topics with at least one subscriber */
    size_t subscriptions;
    size_t async_waiting; /* bytes queued by wsk_server_publish_async(), not yet published */
    /* Connections and traffic. Messages count data messages (not control
     * frames); a broadcast or publish counts once per receiver it was
     * queued to. Bytes are what went through the sockets: HTTP, frame
     * headers, compressed payloads, TLS records. */
    uint64_t connections_total; /* TCP (and TLS) connections accepted */
    size_t connections;         /* open now: HTTP, upgrading and WebSocket */
    size_t websockets_open;     /* WebSocket connections open now */
    uint64_t websockets_total;  /* upgrades accepted */
    uint64_t messages_in, bytes_in, messages_out, bytes_out;
    uint64_t handshake_timeouts; /* connections that did not finish their request in time */
    uint64_t tls_failures;       /* TLS handshakes that failed */
    /* HTTP error answers (refused upgrades, bad requests, missing files...)
     * by status: refused[i] counts wsk_stats_refused_code(i), the last one
     * every other status. */
    uint64_t refused[WSK_STATS_REFUSED];
    size_t queued_bytes; /* in every send queue now (O(connections) to sum) */
};

/* Fills *out with srv's counters (broadcasts and publishes both count
 * towards slow_closed and slow_dropped). O(connections). Cannot fail. */
WSK_API void wsk_server_get_stats(const struct wsk_server *srv, struct wsk_server_stats *out);

#ifdef __cplusplus
}
#endif

#endif
