/* HTTP/1.1 message heads (RFC 9112), parsed in place without I/O or allocation.
 *
 * Each call gets every byte received so far (the same buffer, grown). Work is
 * split in two steps so that a head trickling in byte by byte costs one pass:
 *
 * 1. The scan finds the empty line that ends the head, looking only at bytes
 *    it has not seen before. It follows RFC 9112 section 2.2:
 *
 *                              other
 *                             +-----+
 *                 other       v     |    CR
 *      start --> LINE_START ----> IN_LINE ------> LINE_CR
 *                 |  |  ^         |                 |
 *                 |  |  +--- LF --+-------- LF -----+
 *                 |  |
 *                 |  +--- CR ---> EMPTY_CR --LF--> DONE
 *                 +------ LF ------------------------^
 *
 *    A CR that is not followed by LF (a "bare CR") and any control character
 *    other than HTAB, CR and LF lead to BAD, which fails the head at once. Those bytes are invalid
 *    everywhere in a head, so rejecting them early is safe, and it turns away
 *    binary garbage such as a TLS ClientHello without waiting for max_head
 *    bytes. Which state a byte is read in follows from the two bytes before
 *    it, so p->scanned is all the state the scan has to keep between calls.
 *
 *    Line endings: CRLF, and also a bare LF, which RFC 9112 section 2.2 lets a
 *    recipient accept. Hand-written clients (nc, scripts) send bare LF, and
 *    this parser only ever reads one head per connection as an endpoint, not
 *    as an intermediary that must agree with another parser on where a
 *    message ends. Leading empty lines are not skipped: the upgrade is the
 *    first message on its connection, so there is no previous body whose
 *    stray CRLF could precede it.
 *
 * 2. Once the head is complete it is parsed in one pass, line by line
 *    (RFC 9112 sections 3, 4 and 5; tokens per RFC 9110 section 5.6.2):
 *
 *      request-line = method SP request-target SP HTTP-version
 *      status-line  = HTTP-version SP status-code SP [ reason-phrase ]
 *      field-line   = field-name ":" OWS field-value OWS
 *
 *    Parsing only complete heads keeps the result independent of how the
 *    bytes were split: the same head gives the same answer whole, byte by
 *    byte, or in any other pieces.
 */
#include "wsk/proto.h"

#include <limits.h>
#include <string.h>

#include "proto/http1_internal.h"
#include "proto/text_internal.h"

enum scan_state {
    LINE_START, /* at the first byte of a line */
    IN_LINE,    /* inside a line that has content */
    EMPTY_CR,   /* after the CR of an empty line */
    LINE_CR,    /* after the CR ending a line with content */
    DONE,       /* the LF of the empty line that ends the head */
    BAD,        /* a byte that no head may contain */
};

/* The scan state in which buf[pos] is read, from the bytes before it. */
static enum scan_state state_at(const char *buf, size_t pos)
{
    if (pos == 0 || buf[pos - 1] == '\n')
        return LINE_START;
    if (buf[pos - 1] == '\r')
        return (pos == 1 || buf[pos - 2] == '\n') ? EMPTY_CR : LINE_CR;
    return IN_LINE;
}

static enum scan_state scan_step(enum scan_state s, unsigned char c)
{
    switch (s) {
    case LINE_START:
    case IN_LINE:
        if (c == '\n')
            return s == LINE_START ? DONE : LINE_START;
        if (c == '\r')
            return s == LINE_START ? EMPTY_CR : LINE_CR;
        if (wsk__is_ctl(c) && c != '\t')
            return BAD;
        return IN_LINE;
    case EMPTY_CR:
    case LINE_CR:
        if (c != '\n')
            return BAD; /* bare CR, RFC 9112 section 2.2 */
        return s == EMPTY_CR ? DONE : LINE_START;
    default:
        return s;
    }
}

/* True when none of 8 bytes is a control character (HTAB included, which
 * the byte-wise step then takes): bytes below 0x20 or equal to 0x7F. The
 * classic word tricks; exact for "is there any", which is all that is asked. */
static inline bool block_is_plain(const char *p)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    uint64_t x;
    memcpy(&x, p, 8);
    uint64_t below = (x - ones * 0x20) & ~x & highs;
    uint64_t y = x ^ (ones * 0x7F);
    uint64_t del = (y - ones) & ~y & highs;
    return (below | del) == 0;
}

/* Step 1. Returns the length of the head including its empty line, 0 when the
 * end has not arrived yet, or an error. */
static int find_head_end(struct wsk_http_parser *p, const char *buf, size_t len)
{
    size_t max_head = p->max_head ? p->max_head : WSK_HTTP_DEFAULT_MAX_HEAD;
    if (max_head > INT_MAX)
        max_head = INT_MAX; /* the length must fit the return value */
    if (p->scanned > len)
        p->scanned = 0; /* not the buffer seen before: start over */
    size_t limit = len < max_head ? len : max_head;

    enum scan_state s = state_at(buf, p->scanned);
    for (size_t i = p->scanned; i < limit; i++) {
        /* Inside a line, eight ordinary bytes at a time. */
        while (s == IN_LINE && limit - i >= 8 && block_is_plain(buf + i))
            i += 8;
        if (i == limit)
            break;
        s = scan_step(s, (unsigned char)buf[i]);
        if (s == DONE || s == BAD) {
            /* Stay on this byte so that calling again gives the same answer. */
            p->scanned = i;
            return s == DONE ? (int)(i + 1) : WSK_EHTTP;
        }
    }
    p->scanned = limit;
    return len >= max_head ? WSK_EHEADTOOBIG : 0;
}

/* Cuts the next line off buf[*pos..end) and drops its CRLF or LF. The scan
 * guarantees that every line of a complete head ends with LF. */
static struct wsk_slice next_line(const char *buf, size_t end, size_t *pos)
{
    const char *start = buf + *pos;
    const char *lf = memchr(start, '\n', end - *pos);
    size_t n = (size_t)(lf - start);
    *pos += n + 1;
    if (n > 0 && start[n - 1] == '\r')
        n--;
    return (struct wsk_slice){start, n};
}

/* HTTP-version = "HTTP/1." DIGIT, case-sensitive (RFC 9112 section 2.3). Only
 * major version 1 has this message syntax. */
static bool parse_version(const char *s, size_t len, int *minor)
{
    if (len != 8 || memcmp(s, "HTTP/1.", 7) != 0 || s[7] < '0' || s[7] > '9')
        return false;
    *minor = s[7] - '0';
    return true;
}

/* request-line = method SP request-target SP HTTP-version (RFC 9112 section 3). */
static int parse_request_line(struct wsk_slice line, struct wsk_http_request *req)
{
    const char *s = line.ptr, *end = line.ptr + line.len;
    const char *sp1 = memchr(s, ' ', line.len);
    if (!sp1 || sp1 == s)
        return WSK_EHTTP;
    for (const char *c = s; c < sp1; c++)
        if (!wsk__is_tchar((unsigned char)*c))
            return WSK_EHTTP;

    const char *target = sp1 + 1;
    const char *sp2 = memchr(target, ' ', (size_t)(end - target));
    if (!sp2 || sp2 == target)
        return WSK_EHTTP;
    for (const char *c = target; c < sp2; c++)
        if (wsk__is_ctl((unsigned char)*c))
            return WSK_EHTTP; /* HTAB; the scan already refused the others */

    if (!parse_version(sp2 + 1, (size_t)(end - (sp2 + 1)), &req->minor_version))
        return WSK_EHTTP;

    req->method = (struct wsk_slice){s, (size_t)(sp1 - s)};
    req->target = (struct wsk_slice){target, (size_t)(sp2 - target)};
    const char *q = memchr(target, '?', req->target.len);
    if (q) {
        req->path = (struct wsk_slice){target, (size_t)(q - target)};
        req->query = (struct wsk_slice){q + 1, (size_t)(sp2 - (q + 1))};
    } else {
        req->path = req->target;
        req->query = (struct wsk_slice){sp2, 0};
    }
    return 0;
}

/* status-line = HTTP-version SP status-code SP [ reason-phrase ] (RFC 9112
 * section 4). A line that ends right after the status code is accepted too:
 * servers that omit the empty reason's SP exist, and RFC 9112 tells clients
 * to ignore the reason anyway. */
static int parse_status_line(struct wsk_slice line, struct wsk_http_response *resp)
{
    const char *s = line.ptr;
    if (line.len < 12 || !parse_version(s, 8, &resp->minor_version) || s[8] != ' ')
        return WSK_EHTTP;
    int status = 0;
    for (size_t i = 9; i < 12; i++) {
        if (s[i] < '0' || s[i] > '9')
            return WSK_EHTTP;
        status = status * 10 + (s[i] - '0');
    }
    if (status < 100)
        return WSK_EHTTP;
    if (line.len == 12) {
        resp->reason = (struct wsk_slice){s + 12, 0};
    } else {
        if (s[12] != ' ')
            return WSK_EHTTP;
        resp->reason = (struct wsk_slice){s + 13, line.len - 13};
    }
    resp->status = status;
    return 0;
}

/* field-line = field-name ":" OWS field-value OWS (RFC 9112 section 5). */
static int parse_field_line(struct wsk_slice line, struct wsk_http_header *h)
{
    /* A line that starts with whitespace continues the previous one
     * (obs-fold). RFC 9112 section 5.2 lets a server reject it with 400, which
     * beats guessing how some other parser would join the lines. */
    if (wsk__is_ows(line.ptr[0]))
        return WSK_EHTTP;

    size_t i = 0;
    while (i < line.len && wsk__is_tchar((unsigned char)line.ptr[i]))
        i++;
    /* Whitespace between name and colon is rejected too (RFC 9112 section
     * 5.1): it is a classic request smuggling vector. */
    if (i == 0 || i == line.len || line.ptr[i] != ':')
        return WSK_EHTTP;
    h->name = (struct wsk_slice){line.ptr, i};

    size_t start = i + 1, end = line.len;
    while (start < end && wsk__is_ows(line.ptr[start]))
        start++;
    while (end > start && wsk__is_ows(line.ptr[end - 1]))
        end--;
    /* The scan has already refused every control character but HTAB, so the
     * rest is field-vchar, SP, HTAB or obs-text as RFC 9110 section 5.5
     * allows. */
    h->value = (struct wsk_slice){line.ptr + start, end - start};
    return 0;
}

static int parse_fields(const char *buf, size_t pos, size_t head_len,
                        struct wsk_http_header *headers, size_t *num_headers)
{
    size_t n = 0;
    for (;;) {
        struct wsk_slice line = next_line(buf, head_len, &pos);
        if (line.len == 0)
            break; /* the empty line; the scan made it the last one */
        if (n == WSK_HTTP_MAX_HEADERS)
            return WSK_EHEADTOOBIG;
        int rv = parse_field_line(line, &headers[n]);
        if (rv < 0)
            return rv;
        n++;
    }
    *num_headers = n;
    return 0;
}

void wsk_http_parser_init(struct wsk_http_parser *p, size_t max_head)
{
    p->scanned = 0;
    p->max_head = max_head;
}

int wsk_http_request_parse(struct wsk_http_parser *p, const char *buf, size_t len,
                           struct wsk_http_request *req)
{
    int head_len = find_head_end(p, buf, len);
    if (head_len <= 0)
        return head_len;
    size_t pos = 0;
    int rv = parse_request_line(next_line(buf, (size_t)head_len, &pos), req);
    if (rv < 0)
        return rv;
    rv = parse_fields(buf, pos, (size_t)head_len, req->headers, &req->num_headers);
    return rv < 0 ? rv : head_len;
}

int wsk_http_response_parse(struct wsk_http_parser *p, const char *buf, size_t len,
                            struct wsk_http_response *resp)
{
    int head_len = find_head_end(p, buf, len);
    if (head_len <= 0)
        return head_len;
    size_t pos = 0;
    int rv = parse_status_line(next_line(buf, (size_t)head_len, &pos), resp);
    if (rv < 0)
        return rv;
    rv = parse_fields(buf, pos, (size_t)head_len, resp->headers, &resp->num_headers);
    return rv < 0 ? rv : head_len;
}

const struct wsk_slice *wsk_http_header_get(const struct wsk_http_header *headers,
                                            size_t num_headers, const char *name)
{
    size_t name_len = strlen(name);
    for (size_t i = 0; i < num_headers; i++)
        if (wsk__slice_equals_nocase(headers[i].name, name, name_len))
            return &headers[i].value;
    return NULL;
}

/* Lists are #element rules (RFC 9110 section 5.6.1), walked by
 * wsk__list_next(). A field that may be a list may also be sent as several field lines, which
 * mean the same as one line with the values joined by commas (section 5.3). */
bool wsk_http_header_has_token(const struct wsk_http_header *headers, size_t num_headers,
                               const char *name, const char *token)
{
    size_t name_len = strlen(name), token_len = strlen(token);
    for (size_t i = 0; i < num_headers; i++) {
        if (!wsk__slice_equals_nocase(headers[i].name, name, name_len))
            continue;
        struct wsk__list list = wsk__list_init(headers[i].value);
        struct wsk_slice elem;
        while (wsk__list_next(&list, &elem))
            if (wsk__slice_equals_nocase(elem, token, token_len))
                return true;
    }
    return false;
}

/* ---- conditional and range requests ------------------------------------ */

bool wsk__http_etag_listed(struct wsk_slice v, const char *etag)
{
    size_t elen = strlen(etag), i = 0;
    while (i < v.len) {
        while (i < v.len && (v.ptr[i] == ' ' || v.ptr[i] == '\t' || v.ptr[i] == ','))
            i++;
        size_t start = i;
        while (i < v.len && v.ptr[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (v.ptr[end - 1] == ' ' || v.ptr[end - 1] == '\t'))
            end--;
        if (end - start == 1 && v.ptr[start] == '*')
            return true;
        if (end - start > 2 && v.ptr[start] == 'W' && v.ptr[start + 1] == '/')
            start += 2;
        if (end - start == elen && memcmp(v.ptr + start, etag, elen) == 0)
            return true;
    }
    return false;
}

static bool parse_u64(const char *p, size_t n, uint64_t *out)
{
    if (!n || n > 19)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    *out = v;
    return true;
}

int wsk__http_parse_range(struct wsk_slice v, uint64_t size, uint64_t *start, uint64_t *len)
{
    static const char unit[] = "bytes=";
    if (v.len < 7)
        return 0;
    for (size_t i = 0; i < 6; i++) /* ASCII case-insensitive, whatever the locale */
        if ((v.ptr[i] | (v.ptr[i] >= 'A' && v.ptr[i] <= 'Z' ? 0x20 : 0)) != unit[i])
            return 0;
    const char *p = v.ptr + 6;
    size_t n = v.len - 6;
    while (n && *p == ' ')
        p++, n--;
    while (n && p[n - 1] == ' ')
        n--;
    if (memchr(p, ',', n))
        return 0;
    const char *dash = memchr(p, '-', n);
    if (!dash)
        return 0;
    size_t a_len = (size_t)(dash - p), b_len = n - a_len - 1;
    uint64_t a, b;
    if (!a_len) { /* the last b bytes */
        if (!parse_u64(dash + 1, b_len, &b))
            return 0;
        if (!b || !size)
            return -1;
        *start = b < size ? size - b : 0;
        *len = size - *start;
        return 1;
    }
    if (!parse_u64(p, a_len, &a))
        return 0;
    if (b_len && (!parse_u64(dash + 1, b_len, &b) || b < a))
        return 0;
    if (a >= size)
        return -1;
    if (!b_len || b >= size)
        b = size - 1;
    *start = a;
    *len = b - a + 1;
    return 1;
}
