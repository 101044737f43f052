/* Private to src/proto: the text helpers that HTTP heads need (http1.c,
 * http1_write.c, handshake.c, deflate.c, url.c):
 *
 *   - character classes and a case-insensitive comparison, ASCII only:
 *     header names and tokens are ASCII, and the C library's strncasecmp
 *     follows the locale;
 *   - wsk__list_next(), the one walker for comma-separated header lists;
 *   - struct wsk__wbuf, the one bounded writer that heads and header values
 *     are written with.
 *
 * Everything is inline: these run a few times per handshake, and a call
 * would cost more than most of them do. */
#ifndef WSK_PROTO_TEXT_INTERNAL_H
#define WSK_PROTO_TEXT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <limits.h>
#include <string.h>

#include "wsk/common.h"
#include "wsk/error.h"

static inline bool wsk__is_ctl(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

/* tchar, RFC 9110 section 5.6.2. */
static inline bool wsk__is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Optional white space, RFC 9110 section 5.6.3. */
static inline bool wsk__is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static inline unsigned char wsk__ascii_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* The value of a hex digit (either case), or -1. */
static inline int wsk__hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = wsk__ascii_lower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static inline bool wsk__slice_equals_nocase(struct wsk_slice s, const char *z, size_t z_len)
{
    if (s.len != z_len)
        return false;
    for (size_t i = 0; i < z_len; i++)
        if (wsk__ascii_lower((unsigned char)s.ptr[i]) != wsk__ascii_lower((unsigned char)z[i]))
            return false;
    return true;
}

/* ---- lists --------------------------------------------------------------- */

/* A cursor over one comma-separated field value. */
struct wsk__list {
    const char *pos;
    const char *end;
};

static inline struct wsk__list wsk__list_init(struct wsk_slice value)
{
    return (struct wsk__list){value.ptr, value.ptr + value.len};
}

/* Steps to the next element of a #rule list (RFC 9110 section 5.6.1):
 * elements are separated by commas with optional whitespace around them,
 * and a recipient ignores empty ones ("a, , b" is "a, b"). Sets *elem to the
 * element with its whitespace trimmed and returns true, or returns false at
 * the end.
 *
 * Commas are not looked for inside quoted strings. None of the lists read
 * here can hold one in a valid element (Connection, Upgrade and
 * Sec-WebSocket-Protocol are lists of tokens, and a permessage-deflate
 * parameter value must be a token even when quoted), so splitting first
 * turns a valid list into the same elements and an invalid one into an
 * invalid element. */
static inline bool wsk__list_next(struct wsk__list *l, struct wsk_slice *elem)
{
    const char *s = l->pos, *end = l->end;
    while (s < end) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *e = comma ? comma : end;
        l->pos = comma ? comma + 1 : end;
        while (s < e && wsk__is_ows(*s))
            s++;
        while (e > s && wsk__is_ows(e[-1]))
            e--;
        if (e > s) {
            *elem = (struct wsk_slice){s, (size_t)(e - s)};
            return true;
        }
        s = l->pos;
    }
    l->pos = end;
    return false;
}

/* ---- the bounded writer ---------------------------------------------------- */

/* Appends to a fixed buffer and never writes past its end. Once something
 * does not fit, later appends only count, so a head is written straight
 * through and checked once, by wsk__wbuf_finish(). The caller's buffer is
 * borrowed; nothing allocates. */
struct wsk__wbuf {
    char *ptr;
    size_t cap; /* at most INT_MAX: lengths are returned as int */
    size_t len; /* bytes appended so far; beyond cap once something did not fit */
};

static inline struct wsk__wbuf wsk__wbuf_init(char *out, size_t cap)
{
    return (struct wsk__wbuf){out, cap < INT_MAX ? cap : INT_MAX, 0};
}

static inline void wsk__wbuf_put(struct wsk__wbuf *w, const void *s, size_t n)
{
    /* n > 0 keeps memcpy away from a NULL buffer of capacity 0. */
    if (n > 0 && w->len <= w->cap && n <= w->cap - w->len)
        memcpy(w->ptr + w->len, s, n);
    w->len += n;
}

static inline void wsk__wbuf_str(struct wsk__wbuf *w, const char *s)
{
    wsk__wbuf_put(w, s, strlen(s));
}

static inline void wsk__wbuf_slice(struct wsk__wbuf *w, struct wsk_slice s)
{
    wsk__wbuf_put(w, s.ptr, s.len);
}

static inline void wsk__wbuf_char(struct wsk__wbuf *w, char c)
{
    wsk__wbuf_put(w, &c, 1);
}

/* Appends v in decimal, without leading zeros. */
static inline void wsk__wbuf_u64(struct wsk__wbuf *w, uint64_t v)
{
    char digits[20];
    size_t i = sizeof digits;
    do {
        digits[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    wsk__wbuf_put(w, digits + i, sizeof digits - i);
}

/* Returns the length written, or WSK_ENOSPC when it did not all fit (the
 * buffer then holds a prefix). Not NUL-terminated. */
static inline int wsk__wbuf_finish(const struct wsk__wbuf *w)
{
    return w->len <= w->cap ? (int)w->len : WSK_ENOSPC;
}

/* As wsk__wbuf_finish(), but also NUL-terminates, which takes one more byte
 * of capacity; WSK_ENOSPC (and an unterminated prefix) when that does not
 * fit. */
static inline int wsk__wbuf_finish_cstr(struct wsk__wbuf *w)
{
    if (w->len >= w->cap)
        return WSK_ENOSPC;
    w->ptr[w->len] = '\0';
    return (int)w->len;
}

#endif
