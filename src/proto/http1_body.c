/* HTTP/1.1 response bodies (RFC 9112 sections 6 and 7), decoded in place
 * without I/O or allocation.
 *
 * wsk_http_body_init() picks the framing from the parsed head (section 6.3);
 * then bytes go in, and body bytes come out as pointers into them. Content-
 * Length and read-until-EOF bodies are counted, not scanned. The chunked
 * coding (section 7.1) is a byte-wise state machine over its framing, and a
 * bulk step over chunk data:
 *
 *   chunked-body = *chunk last-chunk trailer-section CRLF
 *   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   chunk-ext    = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
 *
 *   SIZE_FIRST --hex--> SIZE --CR--> SIZE_LF --LF--> DATA            (size > 0)
 *                        |         ^               \--> TRAILER_START   (size 0)
 *                        |         | CR
 *                        +--";", or BWS ";" (SIZE_WS)--> the extension states
 *
 *   EXT_NAME_START --tchar--> EXT_NAME --"="--> EXT_VALUE_START --tchar--> EXT_VALUE
 *                  (BWS, "=": EXT_AFTER_NAME)        | DQUOTE
 *                                                    v
 *                              EXT_QUOTED <--"\\"--> EXT_ESCAPE
 *                                  | DQUOTE
 *                                  v
 *                              EXT_VALUE_END
 *
 *   From EXT_NAME, EXT_VALUE and EXT_VALUE_END: ";" starts the next
 *   extension, BWS must be followed by ";" (SIZE_WS), CR ends the line.
 *
 *   DATA --size bytes--> DATA_CR --CR--> DATA_LF --LF--> SIZE_FIRST
 *
 *   TRAILER_START --tchar--> TRAILER_NAME --":"--> TRAILER_VALUE --CR--> TRAILER_LF
 *        | CR      ^                                                        |
 *        v         +--------------------------- LF -------------------------+
 *     END_LF --LF--> DONE
 *
 * Every byte not drawn fails: line ends are CRLF only (a bare LF in chunked
 * framing is a classic smuggling vector: two parsers disagree on where the
 * body ends), obs-fold in trailers is refused, and the lengths of the size
 * line and the trailer section are bounded. Trailers are checked and
 * dropped: a client has no use for them that is worth trusting them.
 */
#include "wsk/http.h"

#include <string.h>

#include "proto/text_internal.h"

enum body_state {
    SIZE_FIRST,
    SIZE,
    SIZE_WS,
    EXT_NAME_START,
    EXT_NAME,
    EXT_AFTER_NAME,
    EXT_VALUE_START,
    EXT_VALUE,
    EXT_QUOTED,
    EXT_ESCAPE,
    EXT_VALUE_END,
    SIZE_LF,
    DATA,
    DATA_CR,
    DATA_LF,
    TRAILER_START,
    TRAILER_NAME,
    TRAILER_VALUE,
    TRAILER_LF,
    END_LF,
    DONE,
    FAILED,
};

/* ---- choosing the framing ------------------------------------------------ */

static bool is_named(const struct wsk_http_header *h, const char *name)
{
    return wsk__slice_equals_nocase(h->name, name, strlen(name));
}

/* Content-Length = 1*DIGIT, RFC 9110 section 8.6. */
static bool parse_length(struct wsk_slice s, uint64_t *out)
{
    uint64_t v = 0;
    if (s.len == 0)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c < '0' || c > '9' || v > (UINT64_MAX - (c - '0')) / 10)
            return false;
        v = v * 10 + (c - '0');
    }
    *out = v;
    return true;
}

/* Every Content-Length line, and every element of a list in one ("42, 42"),
 * must say the same number (RFC 9110 section 8.6 lets a recipient take such
 * repeats as one value; anything else is refused). */
static int content_length(const struct wsk_http_response *resp, bool *has, uint64_t *out)
{
    *has = false;
    for (size_t i = 0; i < resp->num_headers; i++) {
        if (!is_named(&resp->headers[i], "Content-Length"))
            continue;
        struct wsk__list list = wsk__list_init(resp->headers[i].value);
        struct wsk_slice elem;
        bool any = false;
        while (wsk__list_next(&list, &elem)) {
            uint64_t v;
            if (!parse_length(elem, &v) || (*has && v != *out))
                return WSK_EHTTP;
            *out = v;
            *has = any = true;
        }
        if (!any)
            return WSK_EHTTP; /* an empty value */
    }
    return 0;
}

/* Transfer-Encoding must be exactly one coding, chunked. We never send TE,
 * so a server has no business applying another coding (RFC 9112 section
 * 7.4), and decoding gzip or the like is not this layer's job. */
static int transfer_encoding(const struct wsk_http_response *resp, bool *has)
{
    size_t codings = 0;
    bool is_chunked = false;
    *has = false;
    for (size_t i = 0; i < resp->num_headers; i++) {
        if (!is_named(&resp->headers[i], "Transfer-Encoding"))
            continue;
        *has = true;
        struct wsk__list list = wsk__list_init(resp->headers[i].value);
        struct wsk_slice elem;
        while (wsk__list_next(&list, &elem)) {
            codings++;
            is_chunked = wsk__slice_equals_nocase(elem, "chunked", 7);
        }
    }
    if (*has && (codings != 1 || !is_chunked))
        return WSK_EHTTP;
    return 0;
}

static void set(struct wsk_http_body *b, enum wsk_http_framing framing, enum body_state state)
{
    b->framing = (uint8_t)framing;
    b->state = (uint8_t)state;
}

int wsk_http_body_init(struct wsk_http_body *b, const struct wsk_http_response *resp,
                       const char *method)
{
    memset(b, 0, sizeof *b);
    if (!method)
        method = "GET";
    int status = resp->status;
    if (!strcmp(method, "HEAD") || (status >= 100 && status < 200) || status == 204 ||
        status == 304) {
        set(b, WSK_HTTP_BODY_NONE, DONE);
        return 0;
    }
    if (!strcmp(method, "CONNECT") && status >= 200 && status < 300) {
        set(b, WSK_HTTP_BODY_EOF, DATA);
        return 0;
    }

    bool has_te, has_cl;
    uint64_t length = 0;
    if (transfer_encoding(resp, &has_te) < 0 || content_length(resp, &has_cl, &length) < 0 ||
        (has_te && has_cl) || (has_te && resp->minor_version == 0)) {
        set(b, WSK_HTTP_BODY_NONE, FAILED);
        return WSK_EHTTP;
    }
    if (has_te) {
        set(b, WSK_HTTP_BODY_CHUNKED, SIZE_FIRST);
    } else if (has_cl) {
        b->left = length;
        set(b, WSK_HTTP_BODY_LENGTH, length ? DATA : DONE);
    } else {
        set(b, WSK_HTTP_BODY_EOF, DATA);
    }
    return 0;
}

/* ---- the chunked coding -------------------------------------------------- */

static bool is_ws(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* qdtext and the bytes a quoted-pair may escape (RFC 9110 section 5.6.4),
 * both obs-text included; the escape also takes '"' and '\'. */
static bool is_qdtext(unsigned char c)
{
    return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5B) ||
           (c >= 0x5D && c <= 0x7E) || c >= 0x80;
}

static bool is_escapable(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7F);
}

/* Where a byte of a chunk-size line leads from the extension states: the
 * states after which ';' starts another extension and CR ends the line. */
static enum body_state after_ext(unsigned char c)
{
    if (c == ';')
        return EXT_NAME_START;
    if (c == '\r')
        return SIZE_LF;
    if (is_ws(c))
        return SIZE_WS;
    return FAILED;
}

/* One framing byte. Returns the next state; FAILED on a byte that no
 * chunked body may have there. */
static enum body_state step(struct wsk_http_body *b, unsigned char c)
{
    enum body_state s = (enum body_state)b->state;
    if (s <= SIZE_LF && ++b->line_len > WSK_HTTP_CHUNK_LINE_MAX)
        return FAILED;
    if (s >= TRAILER_START && s <= END_LF && ++b->line_len > WSK_HTTP_DEFAULT_MAX_HEAD)
        return FAILED;

    switch (s) {
    case SIZE_FIRST:
    case SIZE: {
        int v = wsk__hex_value(c);
        if (v >= 0) {
            /* The size must stay below 2^63, as a frame's length does. */
            if (b->left > (UINT64_MAX >> 1) >> 4)
                return FAILED;
            b->left = b->left << 4 | (uint64_t)v;
            return SIZE;
        }
        if (s == SIZE_FIRST)
            return FAILED;
        return after_ext(c);
    }
    case SIZE_WS:
        /* BWS only before ';': "1 \r\n" is not a chunk-size line. */
        return is_ws(c) ? SIZE_WS : c == ';' ? EXT_NAME_START : FAILED;
    case EXT_NAME_START:
        if (is_ws(c))
            return EXT_NAME_START;
        return wsk__is_tchar(c) ? EXT_NAME : FAILED;
    case EXT_NAME:
        if (wsk__is_tchar(c))
            return EXT_NAME;
        if (c == '=')
            return EXT_VALUE_START;
        return is_ws(c) ? EXT_AFTER_NAME : after_ext(c);
    case EXT_AFTER_NAME:
        if (is_ws(c))
            return EXT_AFTER_NAME;
        if (c == '=')
            return EXT_VALUE_START;
        return c == ';' ? EXT_NAME_START : FAILED;
    case EXT_VALUE_START:
        if (is_ws(c))
            return EXT_VALUE_START;
        if (c == '"')
            return EXT_QUOTED;
        return wsk__is_tchar(c) ? EXT_VALUE : FAILED;
    case EXT_VALUE:
        return wsk__is_tchar(c) ? EXT_VALUE : after_ext(c);
    case EXT_QUOTED:
        if (c == '"')
            return EXT_VALUE_END;
        if (c == '\\')
            return EXT_ESCAPE;
        return is_qdtext(c) ? EXT_QUOTED : FAILED;
    case EXT_ESCAPE:
        return is_escapable(c) ? EXT_QUOTED : FAILED;
    case EXT_VALUE_END:
        return after_ext(c);
    case SIZE_LF:
        if (c != '\n')
            return FAILED;
        b->line_len = 0;
        return b->left ? DATA : TRAILER_START;
    case DATA_CR:
        return c == '\r' ? DATA_LF : FAILED;
    case DATA_LF:
        return c == '\n' ? SIZE_FIRST : FAILED;
    case TRAILER_START:
        if (c == '\r')
            return END_LF;
        return wsk__is_tchar(c) ? TRAILER_NAME : FAILED; /* SP or HTAB: obs-fold */
    case TRAILER_NAME:
        if (wsk__is_tchar(c))
            return TRAILER_NAME;
        return c == ':' ? TRAILER_VALUE : FAILED;
    case TRAILER_VALUE:
        if (c == '\r')
            return TRAILER_LF;
        return wsk__is_ctl(c) && c != '\t' ? FAILED : TRAILER_VALUE;
    case TRAILER_LF:
        return c == '\n' ? TRAILER_START : FAILED;
    case END_LF:
        return c == '\n' ? DONE : FAILED;
    default:
        return FAILED; /* DATA, DONE and FAILED never get here */
    }
}

static int64_t parse_chunked(struct wsk_http_body *b, const uint8_t *in, size_t len,
                             const uint8_t **body, size_t *body_len)
{
    size_t i = 0;
    while (i < len && b->state != DONE) {
        if (b->state == DATA) {
            size_t n = len - i;
            if (n > b->left)
                n = (size_t)b->left;
            *body = in + i;
            *body_len = n;
            b->left -= n;
            b->received += n;
            if (b->left == 0)
                b->state = DATA_CR;
            return (int64_t)(i + n);
        }
        enum body_state next = step(b, in[i]);
        if (next == FAILED) {
            b->state = FAILED;
            return WSK_EHTTP;
        }
        b->state = (uint8_t)next;
        i++;
    }
    return (int64_t)i;
}

/* ---- feeding ------------------------------------------------------------- */

int64_t wsk_http_body_parse(struct wsk_http_body *b, const uint8_t *in, size_t len,
                            const uint8_t **body, size_t *body_len)
{
    *body = NULL;
    *body_len = 0;
    if (b->state == FAILED)
        return WSK_EHTTP;
    if (b->state == DONE || len == 0)
        return 0;
    switch (b->framing) {
    case WSK_HTTP_BODY_CHUNKED:
        return parse_chunked(b, in, len, body, body_len);
    case WSK_HTTP_BODY_LENGTH:
        if (len > b->left)
            len = (size_t)b->left;
        b->left -= len;
        if (b->left == 0)
            b->state = DONE;
        break;
    default: /* WSK_HTTP_BODY_EOF; NONE is always DONE or FAILED */
        break;
    }
    b->received += len;
    *body = in;
    *body_len = len;
    return (int64_t)len;
}

int64_t wsk_http_body_decode(struct wsk_http_body *b, uint8_t *buf, size_t len, size_t *consumed)
{
    size_t in = 0, out = 0;
    while (in < len) {
        const uint8_t *run;
        size_t run_len;
        int64_t n = wsk_http_body_parse(b, buf + in, len - in, &run, &run_len);
        if (n < 0) {
            *consumed = in;
            return out > 0 ? (int64_t)out : n;
        }
        if (n == 0)
            break; /* done: the rest is not ours */
        if (run_len > 0 && run != buf + out)
            memmove(buf + out, run, run_len);
        out += run_len;
        in += (size_t)n;
    }
    *consumed = in;
    return (int64_t)out;
}

bool wsk_http_body_is_done(const struct wsk_http_body *b)
{
    return b->state == DONE;
}

int wsk_http_body_finish(struct wsk_http_body *b)
{
    if (b->state == FAILED)
        return WSK_EHTTP;
    if (b->framing == WSK_HTTP_BODY_EOF)
        b->state = DONE;
    return b->state == DONE ? 0 : WSK_ETRUNCATED;
}

enum wsk_http_framing wsk_http_body_framing(const struct wsk_http_body *b)
{
    return (enum wsk_http_framing)b->framing;
}

uint64_t wsk_http_body_received(const struct wsk_http_body *b)
{
    return b->received;
}
