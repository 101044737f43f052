/* wsk danmaku: what the client prints for a packet (danmaku_format.h). */
#include <errno.h>
#include <string.h>

#include "danmaku_format.h"

int danmaku_append_printable(struct cli_buf *b, const char *s, size_t len)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;

    while (i < len) {
        size_t run = i;
        while (i < len && p[i] >= 0x20 && p[i] < 0x7f)
            i++;
        if (cli_buf_append(b, s + run, i - run) < 0)
            return -ENOMEM;
        if (i == len)
            break;
        uint8_t c = p[i];
        size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        int rv;
        if (c < 0x20 || c == 0x7f) {
            char caret[2] = {'^', (char)(c == 0x7f ? '?' : c + 0x40)};
            rv = cli_buf_append(b, caret, 2);
            n = 1;
        } else if (n > 1 && n <= len - i && wsk_utf8_valid(p + i, n) &&
                   !(c == 0xC2 && p[i + 1] <= 0x9F)) {
            rv = cli_buf_append(b, s + i, n);
        } else {
            rv = cli_buf_append(b, "\xef\xbf\xbd", 3);
            /* A C1 control is one character; a bad byte is replaced alone. */
            n = (n == 2 && c == 0xC2 && n <= len - i && wsk_utf8_valid(p + i, 2)) ? 2 : 1;
        }
        if (rv < 0)
            return -ENOMEM;
        i += n;
    }
    return 0;
}

/* Appends the value of key in the packet's body, unescaped and printable;
 * dflt when it is absent. */
static int append_field(struct cli_buf *b, const struct wsk_danmaku_packet *pkt, const char *key,
                        const char *dflt, char *scratch, size_t cap)
{
    struct wsk_slice v;
    int64_t n;

    if (wsk_stt_get(pkt->body, pkt->body_len, key, &v) != 1)
        return cli_buf_append(b, dflt, strlen(dflt));
    n = wsk_stt_unescape(v.ptr, v.len, scratch, cap);
    if (n < 0) /* cannot happen: the slice came from the walker, and fits */
        return cli_buf_append(b, dflt, strlen(dflt));
    return danmaku_append_printable(b, scratch, (size_t)n);
}

bool danmaku_field_is(const struct wsk_danmaku_packet *pkt, const char *key, const char *want)
{
    struct wsk_slice v;
    size_t len = strlen(want);

    /* The values compared here are words without '@' or '/', so the escaped
     * form is the text. */
    return wsk_stt_get(pkt->body, pkt->body_len, key, &v) == 1 && v.len == len &&
           memcmp(v.ptr, want, len) == 0;
}

int danmaku_format(struct cli_buf *b, const struct wsk_danmaku_packet *pkt, char *scratch,
                   size_t cap)
{
    int rv;

    if (danmaku_field_is(pkt, "type", "chatmsg")) {
        if ((rv = append_field(b, pkt, "nn", "?", scratch, cap)) < 0 ||
            (rv = cli_buf_append(b, ": ", 2)) < 0)
            return rv;
        return append_field(b, pkt, "txt", "", scratch, cap);
    }
    if (danmaku_field_is(pkt, "type", "uenter")) {
        if ((rv = cli_buf_append(b, "* ", 2)) < 0 ||
            (rv = append_field(b, pkt, "nn", "?", scratch, cap)) < 0)
            return rv;
        return cli_buf_append(b, " entered", 8);
    }
    if (danmaku_field_is(pkt, "type", "dgb")) {
        if ((rv = cli_buf_append(b, "* ", 2)) < 0 ||
            (rv = append_field(b, pkt, "nn", "?", scratch, cap)) < 0 ||
            (rv = cli_buf_append(b, " sent gift ", 11)) < 0 ||
            (rv = append_field(b, pkt, "gfid", "?", scratch, cap)) < 0 ||
            (rv = cli_buf_append(b, " x ", 3)) < 0 ||
            (rv = append_field(b, pkt, "gfcnt", "1", scratch, cap)) < 0)
            return rv;
        if (wsk_stt_get(pkt->body, pkt->body_len, "hits", NULL) == 1) {
            if ((rv = cli_buf_append(b, " (combo ", 8)) < 0 ||
                (rv = append_field(b, pkt, "hits", "", scratch, cap)) < 0 ||
                (rv = cli_buf_append(b, ")", 1)) < 0)
                return rv;
        }
        return 0;
    }
    return 1;
}
