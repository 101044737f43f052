/* Fuzz target for the session: the input is a peer's byte stream, fed in
 * pieces of random sizes, to a session of either role, with
 * permessage-deflate on or off, a send handler that reports back-pressure
 * or not, and short messages of our own sent between pieces.
 *
 * Byte 0: bit 0 client role, bit 1 deflate, bit 2 no context takeover,
 * bit 3 back-pressure once 64 bytes wait, bit 4 send our own messages,
 * bit 5 handlers stop the feed now and then. Byte 1: seed of the splits.
 *
 * abort() when an invariant breaks:
 * - nothing is sent after our close frame, nothing reported after the
 *   peer's close or a failure;
 * - while the handler reports back-pressure, feeding sends no pong;
 *   wsk_session_drained() sends at most one frame;
 * - messages are within max_message, text is UTF-8, close codes valid;
 * - everything sent parses, for the peer's role, as control frames and our
 *   own messages, with the close frame last;
 * - the feed consumes every byte unless a handler stopped it or the
 *   session ended. */
#include <stdlib.h>
#include <string.h>

#include "wsk/deflate.h"
#include "wsk/session.h"

#define MAX_MESSAGE 65536
#define OUT_CAP     (1u << 20)

static void check(bool ok)
{
    if (!ok)
        abort();
}

struct fz {
    struct wsk_session s;
    size_t out_len;
    size_t waiting; /* bytes "queued" since the last drain */
    bool backpressure, blocked, in_drained, in_user_send, sent_close, ended, stop;
    unsigned drained_sends;
    unsigned events;
    uint8_t out[OUT_CAP]; /* last: not cleared per input */
};

static struct fz F; /* big: keep it off the stack */

static int event(struct fz *f)
{
    check(!f->ended);
    f->events++;
    return f->stop && f->events % 3 == 0;
}

static int on_message(void *ud, enum wsk_opcode op, const uint8_t *data, size_t len)
{
    struct fz *f = ud;
    check(data != NULL && len <= MAX_MESSAGE);
    check(op == WSK_OP_TEXT || op == WSK_OP_BINARY);
    check(op != WSK_OP_TEXT || wsk_utf8_valid(data, len));
    return event(f);
}

static int on_control(void *ud, const uint8_t *data, size_t len)
{
    check(data != NULL && len <= 125);
    return event(ud);
}

static int on_close(void *ud, unsigned code, const uint8_t *reason, size_t len)
{
    struct fz *f = ud;
    check(code == WSK_CLOSE_NO_STATUS || wsk_close_code_is_valid(code));
    check(reason != NULL && len <= 123 && wsk_utf8_valid(reason, len));
    int rv = event(f);
    f->ended = true;
    return rv;
}

static int on_send(void *ud, const uint8_t *data, size_t len)
{
    struct fz *f = ud;
    check(!f->sent_close);
    /* Control frames the session makes go out in one call. */
    uint8_t op = data[0] & 0x0f;
    if (!f->in_user_send) {
        check(op & 0x8);
        if (op == WSK_OP_PONG && f->blocked)
            check(f->in_drained); /* held while blocked */
        if (f->in_drained)
            check(++f->drained_sends <= 1);
        if (op == WSK_OP_CLOSE)
            f->sent_close = true;
    }
    check(f->out_len + len <= OUT_CAP);
    memcpy(f->out + f->out_len, data, len);
    f->out_len += len;
    f->waiting += len;
    if (f->backpressure && f->waiting > 64) {
        f->blocked = true;
        return WSK_EBACKPRESSURE;
    }
    return 0;
}

static const struct wsk_session_handlers H = {on_message, on_control, on_control, on_close,
                                              on_send};

/* What we sent must parse for the peer, the close frame last. */
static void check_output(struct fz *f, bool client, bool deflate)
{
    struct wsk_frame_config fc;
    wsk_frame_config_init(&fc);
    fc.role = client ? WSK_ROLE_SERVER : WSK_ROLE_CLIENT; /* the peer's */
    fc.rsv_allowed = deflate ? WSK_FRAME_RSV1 : 0;
    struct wsk_frame_parser p;
    wsk_frame_parser_init(&p, &fc);
    size_t off = 0;
    bool closed = false;
    while (off < f->out_len) {
        struct wsk_frame_chunk ch;
        bool has;
        int64_t n = wsk_frame_parse(&p, f->out + off, f->out_len - off, &ch, &has);
        check(n > 0);
        off += (size_t)n;
        if (has && ch.is_frame_start) {
            check(!closed);
            closed = ch.opcode == WSK_OP_CLOSE;
        }
    }
    check(wsk_frame_parser_payload_left(&p) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t opts = data[0];
    uint32_t seed = data[1] * 2654435761u + 1;
    data += 2;
    size -= 2;
    bool client = opts & 1, deflate = opts & 2;
    struct fz *f = &F;
    memset(f, 0, sizeof *f - sizeof f->out);
    f->out_len = 0;
    f->backpressure = opts & 8;
    f->stop = opts & 32;

    struct wsk_deflate *d = NULL;
    if (deflate) {
        struct wsk_deflate_params params = {opts & 4, opts & 4, 15, 15, 1};
        if (wsk_deflate_new(&d, &params, client ? WSK_ROLE_CLIENT : WSK_ROLE_SERVER) < 0)
            return 0;
    }
    struct wsk_session_config cfg;
    wsk_session_config_init(&cfg);
    cfg.role = client ? WSK_ROLE_CLIENT : WSK_ROLE_SERVER;
    cfg.max_message = MAX_MESSAGE;
    cfg.deflate = d;
    cfg.min_compress = 8;
    wsk_session_init(&f->s, &cfg);

    size_t off = 0;
    unsigned round = 0;
    while (off < size) {
        seed = seed * 1103515245u + 12345u;
        size_t piece = (seed >> 16) % 4 == 0 ? 1 + (seed >> 8) % 7 : 1 + (seed >> 8) % 300;
        if (piece > size - off)
            piece = size - off;
        uint8_t *buf = malloc(piece); /* exact size: ASan sees any overread */
        check(buf != NULL);
        memcpy(buf, data + off, piece);
        unsigned before = wsk_session_state(&f->s);
        int64_t n = wsk_session_feed(&f->s, buf, piece, &H, f);
        unsigned after = wsk_session_state(&f->s);
        free(buf);
        if (n < 0) {
            check(after & WSK_SESSION_FAILED);
            check(wsk_session_close_code(&f->s) != 0);
            f->ended = true;
            break;
        }
        check((size_t)n <= piece);
        if ((size_t)n < piece)
            check(f->stop || (after & (WSK_SESSION_GOT_CLOSE | WSK_SESSION_FAILED)));
        if (before & (WSK_SESSION_GOT_CLOSE | WSK_SESSION_FAILED))
            check(n == 0);
        if (n == 0 && (after & (WSK_SESSION_GOT_CLOSE | WSK_SESSION_FAILED)))
            break;
        off += (size_t)n;
        round++;
        if ((opts & 16) && round % 2 == 0) {
            static const char *const texts[] = {"hello", "", "h\xc3\xa9llo, world, hello!"};
            const char *t = texts[round % 3];
            f->in_user_send = true;
            int rv = wsk_session_send(&f->s, round % 4 ? WSK_OP_TEXT : WSK_OP_BINARY, t, strlen(t),
                                      &H, f);
            f->in_user_send = false;
            if (wsk_session_state(&f->s) & WSK_SESSION_SENT_CLOSE)
                check(rv == WSK_ESTATE || rv == 0 || rv == WSK_EBACKPRESSURE);
            else
                check(rv == 0 || rv == WSK_EBACKPRESSURE);
        }
        if (f->blocked && round % 3 == 0) {
            f->blocked = false;
            f->waiting = 0;
            f->in_drained = true;
            f->drained_sends = 0;
            int rv = wsk_session_drained(&f->s, &H, f);
            f->in_drained = false;
            check(rv == 0 || rv == WSK_EBACKPRESSURE);
        }
    }
    check_output(f, client, deflate);
    wsk_session_clear(&f->s);
    wsk_deflate_free(d);
    return 0;
}
