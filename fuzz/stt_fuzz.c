/* Fuzz target for STT: the walker, lookup, unescaping, the writer and JSON.
 *
 * The input is an STT text. Walking it must give slices inside it that
 * unescape without error; writing the unescaped items back with the writer
 * must give the input again (escaping is canonical), with a '/' added after
 * a last item that had none. JSON with WSK_STT_JSON_MAX bytes must never
 * run out of room and must be one object, valid UTF-8 with no raw control
 * character; with less room it must stay inside the buffer. The same text
 * cut short must never be read past the cut. abort() on any inconsistency. */
#include <stdlib.h>
#include <string.h>

#include "wsk/danmaku.h"
#include "wsk/proto.h"

static void check(bool ok)
{
    if (!ok)
        abort();
}

static bool within(struct wsk_slice s, const char *buf, size_t len)
{
    return s.ptr >= buf && s.len <= len && (size_t)(s.ptr - buf) <= len - s.len;
}

static void walk_and_rewrite(const char *s, size_t len)
{
    struct wsk_stt_iter it;
    struct wsk_stt_item item;
    struct wsk_stt_writer w;
    char *key = malloc(len + 1), *value = malloc(len + 1), *again = malloc(len + 1);
    bool is_canonical = true, is_first = true;
    int rv;

    check(key && value && again);
    wsk_stt_iter_init(&it, s, len);
    wsk_stt_writer_init(&w, again, len + 1);
    while ((rv = wsk_stt_next(&it, &item)) == 1) {
        check(within(item.value, s, len));
        check(memchr(item.value.ptr, '/', item.value.len) == NULL);
        int64_t vn = wsk_stt_unescape(item.value.ptr, item.value.len, value, len + 1);
        check(vn >= 0 && (size_t)vn <= item.value.len);
        if (item.has_key) {
            check(within(item.key, s, len));
            int64_t kn = wsk_stt_unescape(item.key.ptr, item.key.len, key, len + 1);
            check(kn >= 0 && (size_t)kn <= item.key.len);
            key[kn] = '\0';
            /* A key with a NUL cannot be given to the writer or to get. */
            if (memchr(key, '\0', (size_t)kn)) {
                is_canonical = false;
            } else {
                struct wsk_slice found;
                check(wsk_stt_get(s, len, key, &found) == 1);
                if (is_first)
                    check(found.ptr == item.value.ptr && found.len == item.value.len);
                wsk_stt_write(&w, key, value, (size_t)vn);
            }
        } else {
            check(item.key.len == 0);
            wsk_stt_write(&w, NULL, value, (size_t)vn);
        }
        is_first = false;
    }
    check(rv == 0 || rv == WSK_EPROTO);
    check(wsk_stt_next(&it, &item) == rv);
    if (rv == 0 && is_canonical) {
        int64_t n = wsk_stt_writer_finish(&w);
        bool has_slash = len > 0 && s[len - 1] == '/';
        check(n == (int64_t)(len + (len > 0 && !has_slash)));
        check(len == 0 || memcmp(again, s, len) == 0);
    }
    free(key);
    free(value);
    free(again);
}

static void json(const char *s, size_t len)
{
    size_t cap = WSK_STT_JSON_MAX(len);
    char *out = malloc(cap);
    check(out != NULL);
    int64_t n = wsk_stt_to_json(s, len, out, cap);
    check(n >= 0 || n == WSK_EPROTO);
    if (n >= 0) {
        check(n >= 2 && (size_t)n < cap && out[0] == '{' && out[n - 1] == '}' && out[n] == 0);
        check(wsk_utf8_valid((const uint8_t *)out, (size_t)n));
        for (int64_t i = 0; i < n; i++)
            check((unsigned char)out[i] >= 0x20 && out[i] != 0x7f);
        /* Less room: an exact-size buffer, so ASan sees any write past it. */
        size_t small = (size_t)n / 2 + 1;
        char *tight = malloc(small);
        check(tight != NULL);
        check(wsk_stt_to_json(s, len, tight, small) == WSK_ENOSPC);
        free(tight);
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    walk_and_rewrite(s, size);
    json(s, size);
    if (size > 0) {
        walk_and_rewrite(s, size / 2);
        json(s, size / 2);
    }
    return 0;
}
