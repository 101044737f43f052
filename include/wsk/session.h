/* wsk session: one WebSocket connection's protocol after the opening
 * handshake, with no I/O and no clock (what wslay's event layer is).
 *
 * Bytes from the peer go in with wsk_session_feed(); whole messages, pings,
 * pongs and the peer's close come out through handlers; the frames the
 * protocol itself must send (pongs, the close echo, the close that answers
 * a protocol error) and the frames you send come out, as bytes, through the
 * send handler. The session does reassembly of fragmented messages, control
 * frames split across reads, permessage-deflate (given a wsk_deflate), UTF-8
 * checks across fragments and inflated output, the close handshake, and
 * bounded automatic pongs.
 *
 * A program with its own event loop drives a connection with it:
 *
 *     wsk_session_init(&s, &cfg);               after the handshake
 *     on readable:  n = read(fd, buf, cap);
 *                   wsk_session_feed(&s, buf, n, &handlers, ud);
 *     to send:      wsk_session_send(&s, WSK_OP_TEXT, "hi", 2, &handlers, ud);
 *     at the end:   wsk_session_clear(&s);
 *
 * (examples/session_echo.c is a complete poll() server built this way.) The
 * loop in src/ws drives every wsk_conn with a session in the same way.
 *
 * Back-pressure: the send handler returns WSK_EBACKPRESSURE when it took
 * the bytes but its queue is full. From then on the session answers pings
 * with one pong only, for the latest ping (RFC 6455 5.5.3 allows it), kept
 * in the session until wsk_session_drained(). A peer that pings and never
 * reads therefore costs at most one pending pong, whatever it sends.
 *
 * Memory: the struct lives in the caller's memory. The session allocates
 * (malloc) only for a message split across frames or reads (up to
 * max_message, released after the message when it grew past 64 KiB) and,
 * lazily, 250 bytes for control frames split across reads and a held pong.
 * A message that arrives whole in one feed is handed out in place.
 */
#ifndef WSK_SESSION_H
#define WSK_SESSION_H

#include "wsk/proto.h"

#ifdef __cplusplus
extern "C" {
#endif

struct wsk_deflate;

/* What the session reports and asks for. Every handler but send may be
 * NULL. The event handlers return 0 to go on, or non-zero to make
 * wsk_session_feed() return at once, after the bytes of the event (call
 * it again later with the rest). Pointers passed to handlers are valid
 * during the call only. Handlers may call the session's own functions
 * (wsk_session_send(), wsk_session_close(), ...). */
struct wsk_session_handlers {
    /* A whole data message: TEXT (valid UTF-8) or BINARY, inflated. */
    int (*on_message)(void *ud, enum wsk_opcode opcode, const uint8_t *data, size_t len);
    /* A ping; its pong is already on its way (or held, see back-pressure). */
    int (*on_ping)(void *ud, const uint8_t *data, size_t len);
    int (*on_pong)(void *ud, const uint8_t *data, size_t len);
    /* The peer's close frame: code (1005 when it had none) and reason
     * (valid UTF-8). Our close echo was sent first, unless we had sent a
     * close already. The session takes no more input afterwards. */
    int (*on_close)(void *ud, unsigned code, const uint8_t *reason, size_t len);
    /* Required: bytes to write to the peer, in order. A frame may come in
     * several calls (header, payload pieces). Return 0; WSK_EBACKPRESSURE
     * when the bytes were taken but the caller's queue is full; or another
     * negative value when they could not be taken, which fails the session
     * (the function that sent returns that value). */
    int (*send)(void *ud, const uint8_t *data, size_t len);
};

/* Zero means default; fill with wsk_session_config_init(). */
struct wsk_session_config {
    enum wsk_role role;          /* ours: a client masks and receives unmasked */
    uint64_t max_message;        /* largest message (inflated size); 0: 16 MiB */
    struct wsk_deflate *deflate; /* negotiated permessage-deflate, or NULL; borrowed */
    uint32_t min_compress;       /* wsk_session_send() compresses messages this long
                                    and longer; 0: WSK_DEFLATE_DEFAULT_MIN_SIZE (64) */
};

/* Fills cfg with the defaults: server role, 16 MiB, no deflate. Cannot fail. */
WSK_API void wsk_session_config_init(struct wsk_session_config *cfg);

/* One connection's session. A value type in the caller's memory; the fields
 * are private. */
struct wsk_session {
    struct wsk_frame_parser parser;
    struct wsk_deflate *deflate;
    uint8_t *msg; /* message being assembled */
    size_t msg_len, msg_cap;
    uint8_t *aux; /* [0, 125): control frame split across reads; [125, 250): held pong */
    uint32_t min_compress;
    uint16_t code;    /* the peer's close code, or the one we failed with */
    uint16_t flags;   /* WSK_SESSION_* and private bits */
    uint8_t zopcode;  /* opcode of the message being inflated */
    uint8_t ctl_len;  /* bytes of a split control frame so far */
    uint8_t pong_len; /* payload of the held pong */
    struct wsk_utf8 zutf8;
};

/* Bits of wsk_session_state(). */
enum {
    WSK_SESSION_SENT_CLOSE = 1u << 0,  /* our close frame went to send: nothing follows it */
    WSK_SESSION_GOT_CLOSE = 1u << 1,   /* the peer's close arrived: input is over */
    WSK_SESSION_FAILED = 1u << 2,      /* a protocol error or a failed send: the session is over */
    WSK_SESSION_PEER_CLOSED = 1u << 3, /* the peer started the close handshake */
    WSK_SESSION_BLOCKED = 1u << 4,     /* send said WSK_EBACKPRESSURE: pongs are held */
};

/* Starts a session for a connection whose handshake is done. cfg may be
 * NULL for defaults; it is not kept (the deflate state is, borrowed: free it
 * after wsk_session_clear()). Cannot fail; allocates nothing. */
WSK_API void wsk_session_init(struct wsk_session *s, const struct wsk_session_config *cfg);

/* Frees what the session allocated. It can then be initialized again.
 * Cannot fail. */
WSK_API void wsk_session_clear(struct wsk_session *s);

/* Feeds bytes received from the peer. data is modified in place (unmasked)
 * and may be handed to on_message as it is.
 *
 * Returns the number of bytes consumed: len, or fewer when a handler
 * returned non-zero, when the peer's close frame ended the input, or when
 * the session is over (nothing is consumed after GOT_CLOSE or FAILED).
 * Returns a negative error when the input broke the protocol: WSK_EPROTO
 * (close 1002 sent), WSK_EUTF8 or WSK_EDEFLATE (1007), WSK_ETOOBIG (1009);
 * -ENOMEM (nothing sent: the caller should drop the connection); or the
 * send handler's error. The close code is then wsk_session_close_code().
 * After an error the session is FAILED and every later feed returns 0. */
WSK_API int64_t wsk_session_feed(struct wsk_session *s, uint8_t *data, size_t len,
                                 const struct wsk_session_handlers *h, void *ud);

/* Where the rest of a large uncompressed data frame can be read straight
 * into the message buffer, saving a copy: returns a pointer with room for
 * *cap bytes (the rest of the frame) when at least min bytes of it are
 * missing; NULL otherwise, or when the buffer cannot grow. Read into it,
 * then feed exactly the bytes read from that pointer. */
WSK_API uint8_t *wsk_session_read_target(struct wsk_session *s, size_t min, size_t *cap);

/* Sends one data message (TEXT or BINARY) as one frame, compressed when the
 * session has deflate and len >= min_compress (then as several frames when
 * the compressed payload exceeds WSK_DEFLATE_CHUNK; this needs about 32 KiB
 * of stack). Client frames are masked with keys from arc4random_buf().
 * Returns 0; WSK_EBACKPRESSURE when all was taken but send's queue is full;
 * -EINVAL for another opcode; WSK_ESTATE after our close or a failure;
 * WSK_EUTF8 for text that is not UTF-8; -ENOMEM or WSK_EDEFLATE from
 * compression (nothing sent); or the send handler's error (the session
 * then FAILED). */
WSK_API int wsk_session_send(struct wsk_session *s, enum wsk_opcode opcode, const void *data,
                             size_t len, const struct wsk_session_handlers *h, void *ud);

/* Sends a ping with up to 125 bytes of payload. Returns 0,
 * WSK_EBACKPRESSURE, WSK_ETOOBIG, WSK_ESTATE or the send handler's error, as
 * wsk_session_send(). */
WSK_API int wsk_session_ping(struct wsk_session *s, const void *data, size_t len,
                             const struct wsk_session_handlers *h, void *ud);

/* Starts the close handshake: sends a close frame with code (0: none) and
 * an optional reason (at most 123 bytes, UTF-8). Nothing may be sent after
 * it; input goes on until the peer's close (on_close). Returns 0,
 * WSK_EBACKPRESSURE, WSK_ESTATE when a close was sent already or the
 * session failed, the errors of wsk_close_payload_encode() (nothing sent),
 * or the send handler's error. */
WSK_API int wsk_session_close(struct wsk_session *s, unsigned code, const char *reason,
                              size_t reason_len, const struct wsk_session_handlers *h, void *ud);

/* Tells the session that the caller's send queue has room again: clears
 * BLOCKED and sends the held pong, if any. Returns 0, WSK_EBACKPRESSURE
 * (blocked again) or the send handler's error. */
WSK_API int wsk_session_drained(struct wsk_session *s, const struct wsk_session_handlers *h,
                                void *ud);

/* WSK_SESSION_* bits. Cannot fail. */
WSK_API unsigned wsk_session_state(const struct wsk_session *s);

/* The peer's close code once it closed (1005 for an empty close), the code
 * we sent when the session failed, else 0. Cannot fail. */
WSK_API unsigned wsk_session_close_code(const struct wsk_session *s);

#ifdef __cplusplus
}
#endif

#endif
