/* STT, the text inside Douyu danmaku packets (wsk/danmaku.h): a walker, a
 * lookup, unescaping, an escaping writer and a JSON writer. No allocation:
 * everything is a slice of the caller's text or goes into the caller's
 * buffer.
 *
 * The grammar, as Douyu's clients write it:
 *
 *     text  = *( item "/" ) [ item ]        the last '/' may be missing
 *     item  = key "@=" value | value        a map entry or a list element
 *     key, value = *( byte except '@' and '/' | "@A" | "@S" )
 *
 * '/' is never escaped inside an item, so an item ends at the first '/':
 * memchr() finds it, and one pass over the item checks every '@'. A value
 * that holds STT holds it escaped once more ("a@AA=1@AS" is "a@A=1@S", and
 * that is "a@=1/"); one level is undone at a time, by the caller's choice.
 */
#include "wsk/danmaku.h"

#include <string.h>

/* Checks the '@' sequences of one item p[0..n) (no '/' in it): each '@' is
 * followed by 'A' or 'S', or, once, by '=' where the key ends. Sets *sep to
 * the offset of that "@=" or to n when there is none. */
static int scan_item(const char *p, size_t n, size_t *sep)
{
    const char *at = memchr(p, '@', n), *end = p + n;

    *sep = n;
    while (at) {
        if (at + 1 == end)
            return WSK_EPROTO;
        if (at[1] == '=' && *sep == n)
            *sep = (size_t)(at - p);
        else if (at[1] != 'A' && at[1] != 'S')
            return WSK_EPROTO;
        at += 2;
        at = at < end ? memchr(at, '@', (size_t)(end - at)) : NULL;
    }
    return 0;
}

void wsk_stt_iter_init(struct wsk_stt_iter *it, const char *s, size_t len)
{
    it->pos = s;
    it->end = s ? s + len : s;
    it->is_failed = false;
}

int wsk_stt_next(struct wsk_stt_iter *it, struct wsk_stt_item *item)
{
    const char *start = it->pos;
    size_t n, sep;

    if (it->is_failed)
        return WSK_EPROTO;
    if (start == it->end)
        return 0;
    const char *slash = memchr(start, '/', (size_t)(it->end - start));
    n = slash ? (size_t)(slash - start) : (size_t)(it->end - start);
    if (scan_item(start, n, &sep) < 0) {
        it->is_failed = true;
        return WSK_EPROTO;
    }
    it->pos = slash ? slash + 1 : it->end;
    item->has_key = sep < n;
    if (item->has_key) {
        item->key = (struct wsk_slice){start, sep};
        item->value = (struct wsk_slice){start + sep + 2, n - sep - 2};
    } else {
        item->key = (struct wsk_slice){start, 0};
        item->value = (struct wsk_slice){start, n};
    }
    return 1;
}

/* True when the escaped slice, unescaped, is the plain NUL-terminated key.
 * The slice comes from wsk_stt_next(), so its escapes are well formed. */
static bool key_equals(struct wsk_slice escaped, const char *key)
{
    for (size_t i = 0; i < escaped.len; i++, key++) {
        char c = escaped.ptr[i];
        if (c == '@')
            c = escaped.ptr[++i] == 'A' ? '@' : '/';
        if (*key == '\0' || *key != c)
            return false;
    }
    return *key == '\0';
}

int wsk_stt_get(const char *s, size_t len, const char *key, struct wsk_slice *value)
{
    struct wsk_stt_iter it;
    struct wsk_stt_item item;
    int rv;

    wsk_stt_iter_init(&it, s, len);
    while ((rv = wsk_stt_next(&it, &item)) == 1) {
        if (item.has_key && key_equals(item.key, key)) {
            if (value)
                *value = item.value;
            return 1;
        }
    }
    return rv;
}

/* True when every '@' of s[0..len) starts "@A" or "@S". */
static bool escapes_ok(const char *s, size_t len)
{
    if (len == 0)
        return true; /* s may be NULL */
    const char *at = memchr(s, '@', len), *end = s + len;

    while (at) {
        if (at + 1 == end || (at[1] != 'A' && at[1] != 'S'))
            return false;
        at += 2;
        at = at < end ? memchr(at, '@', (size_t)(end - at)) : NULL;
    }
    return true;
}

int64_t wsk_stt_unescape(const char *in, size_t len, char *out, size_t cap)
{
    size_t n = 0;

    if (!escapes_ok(in, len))
        return WSK_EPROTO;
    /* Reading runs ahead of writing (n <= i), so out may be in. */
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '@')
            c = in[++i] == 'A' ? '@' : '/';
        if (n < cap)
            out[n] = c;
        n++;
    }
    return n <= cap ? (int64_t)n : WSK_ENOSPC;
}

/* ---- writing ---------------------------------------------------------- */

void wsk_stt_writer_init(struct wsk_stt_writer *w, char *out, size_t cap)
{
    w->ptr = out;
    w->cap = (uint64_t)cap > INT64_MAX ? (size_t)INT64_MAX : cap;
    w->len = 0;
}

static void put(struct wsk_stt_writer *w, const void *s, size_t n)
{
    if (n > 0 && w->len <= w->cap && n <= w->cap - w->len)
        memcpy(w->ptr + w->len, s, n);
    /* Saturate rather than wrap: a length past cap only has to stay past it. */
    w->len = n <= SIZE_MAX - w->len ? w->len + n : SIZE_MAX;
}

static void put_escaped(struct wsk_stt_writer *w, const char *s, size_t n)
{
    const char *end = s + n;

    while (s < end) {
        const char *run = s;
        while (s < end && *s != '@' && *s != '/')
            s++;
        put(w, run, (size_t)(s - run));
        if (s < end) {
            put(w, *s == '@' ? "@A" : "@S", 2);
            s++;
        }
    }
}

void wsk_stt_write(struct wsk_stt_writer *w, const char *key, const char *value, size_t value_len)
{
    if (key) {
        put_escaped(w, key, strlen(key));
        put(w, "@=", 2);
    }
    if (value_len)
        put_escaped(w, value, value_len);
    put(w, "/", 1);
}

int64_t wsk_stt_writer_finish(const struct wsk_stt_writer *w)
{
    return w->len <= w->cap ? (int64_t)w->len : WSK_ENOSPC;
}

/* ---- JSON --------------------------------------------------------------- */

/* The length of the well-formed UTF-8 sequence at p[0..n) (Unicode Table
 * 3-7), or 0 with *bad set to the length of its maximal subpart (at least 1),
 * which becomes one U+FFFD, as the WHATWG decoder does. */
static size_t utf8_sequence(const uint8_t *p, size_t n, size_t *bad)
{
    uint8_t b = p[0], lo = 0x80, hi = 0xBF;
    size_t need, i;

    if (b >= 0xC2 && b <= 0xDF) {
        need = 2;
    } else if (b >= 0xE0 && b <= 0xEF) {
        need = 3;
        if (b == 0xE0)
            lo = 0xA0; /* overlong */
        else if (b == 0xED)
            hi = 0x9F; /* surrogates */
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 4;
        if (b == 0xF0)
            lo = 0x90; /* overlong */
        else if (b == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
    } else {
        *bad = 1;
        return 0;
    }
    for (i = 1; i < need && i < n; i++) {
        if (p[i] < lo || p[i] > hi)
            break;
        lo = 0x80;
        hi = 0xBF;
    }
    if (i == need)
        return need;
    *bad = i;
    return 0;
}

static void put_u_escape(struct wsk_stt_writer *w, unsigned c)
{
    static const char hex[] = "0123456789abcdef";
    char e[6] = {'\\', 'u', '0', '0', hex[(c >> 4) & 15], hex[c & 15]};
    put(w, e, sizeof e);
}

/* Writes an escaped STT slice, unescaped once, as a JSON string. The STT
 * escapes turn into '@' and '/', which need no JSON escape; they cannot be
 * part of a multi-byte sequence, so decoding UTF-8 on the escaped bytes
 * finds the same sequences as on the unescaped ones. At most 6 bytes out
 * per byte in, plus the quotes. */
static void put_json_string(struct wsk_stt_writer *w, struct wsk_slice s)
{
    const uint8_t *p = (const uint8_t *)s.ptr, *end = p + s.len;

    put(w, "\"", 1);
    while (p < end) {
        const uint8_t *run = p;
        /* Plain printable ASCII goes out as it is, a run at a time. */
        while (p < end && *p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\' && *p != '@')
            p++;
        put(w, run, (size_t)(p - run));
        if (p == end)
            break;
        uint8_t b = *p;
        size_t len, bad;
        if (b == '@') {
            put(w, p[1] == 'A' ? "@" : "/", 1);
            p += 2;
        } else if (b == '"' || b == '\\') {
            put(w, b == '"' ? "\\\"" : "\\\\", 2);
            p++;
        } else if (b < 0x80) {
            switch (b) {
            case '\n':
                put(w, "\\n", 2);
                break;
            case '\r':
                put(w, "\\r", 2);
                break;
            case '\t':
                put(w, "\\t", 2);
                break;
            default:
                put_u_escape(w, b);
                break;
            }
            p++;
        } else if ((len = utf8_sequence(p, (size_t)(end - p), &bad)) == 0) {
            put(w, "\xef\xbf\xbd", 3);
            p += bad;
        } else if (len == 2 && b == 0xC2 && p[1] <= 0x9F) {
            put_u_escape(w, p[1]); /* C1 control */
            p += 2;
        } else {
            put(w, p, len);
            p += len;
        }
    }
    put(w, "\"", 1);
}

int64_t wsk_stt_to_json(const char *s, size_t len, char *out, size_t cap)
{
    struct wsk_stt_writer w;
    struct wsk_stt_iter it;
    struct wsk_stt_item item;
    bool is_first = true;
    int rv;

    wsk_stt_writer_init(&w, out, cap);
    wsk_stt_iter_init(&it, s, len);
    put(&w, "{", 1);
    while ((rv = wsk_stt_next(&it, &item)) == 1) {
        if (!item.has_key)
            return WSK_EPROTO;
        if (!is_first)
            put(&w, ",", 1);
        is_first = false;
        put_json_string(&w, item.key);
        put(&w, ":", 1);
        put_json_string(&w, item.value);
    }
    if (rv < 0)
        return rv;
    put(&w, "}", 1);
    if (w.len >= w.cap)
        return WSK_ENOSPC;
    out[w.len] = '\0';
    return (int64_t)w.len;
}
