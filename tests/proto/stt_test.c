/* Tests for STT (src/proto/stt.c): the walker, lookup, unescaping, the
 * escaping writer and JSON.
 *
 * Inputs are copied to end right before an unreadable page, so a read past
 * the text crashes. */
#include <sys/mman.h>
#include <unistd.h>

#include "wsk/danmaku.h"
#include "wsk/proto.h"
#include "wsk_test.h"

static char *guard_map;
static size_t guard_map_len;

static const char *guarded_copy(const char *s, size_t len)
{
    if (guard_map)
        munmap(guard_map, guard_map_len);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    guard_map_len = ((len + page - 1) / page + 1) * page;
    guard_map =
        mmap(NULL, guard_map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (guard_map == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    char *end = guard_map + guard_map_len - page;
    mprotect(end, page, PROT_NONE);
    if (len)
        memcpy(end - len, s, len);
    return end - len;
}

static bool slice_is(struct wsk_slice s, const char *z)
{
    return s.len == strlen(z) && memcmp(s.ptr, z, s.len) == 0;
}

/* Walks text and writes its items as "key=value;" (list elements as
 * "value;"), still escaped, into out; returns the walker's last answer. */
static int walk(const char *text, char *out, size_t cap)
{
    size_t len = strlen(text), n = 0;
    const char *s = guarded_copy(text, len);
    struct wsk_stt_iter it;
    struct wsk_stt_item item;
    int rv;

    out[0] = '\0';
    wsk_stt_iter_init(&it, s, len);
    while ((rv = wsk_stt_next(&it, &item)) == 1) {
        CHECK(item.value.ptr >= s && item.value.ptr + item.value.len <= s + len);
        if (item.has_key)
            n += (size_t)snprintf(out + n, cap - n, "%.*s=", (int)item.key.len, item.key.ptr);
        else
            CHECK_EQ_INT(item.key.len, 0);
        n += (size_t)snprintf(out + n, cap - n, "%.*s;", (int)item.value.len, item.value.ptr);
    }
    if (rv < 0)
        CHECK_EQ_INT(wsk_stt_next(&it, &item), rv); /* stays failed */
    else
        CHECK_EQ_INT(wsk_stt_next(&it, &item), 0);
    return rv;
}

static void expect_walk(const char *text, const char *want)
{
    char got[512];
    CHECK_EQ_INT(walk(text, got, sizeof got), 0);
    CHECK_STR(got, want);
}

static void test_iter(void)
{
    expect_walk("", "");
    expect_walk("type@=chatmsg/nn@=a@Ab@Sc/txt@=hi/", "type=chatmsg;nn=a@Ab@Sc;txt=hi;");
    /* The last '/' may be missing. */
    expect_walk("type@=mrkl", "type=mrkl;");
    expect_walk("a@=1/b@=", "a=1;b=;");
    /* Empty keys, empty values, list elements, an empty list element. */
    expect_walk("@=x/", "=x;");
    expect_walk("a@=/", "a=;");
    expect_walk("x/y/z/", "x;y;z;");
    expect_walk("a@=1//", "a=1;;");
    expect_walk("/", ";");
    /* A nested map escaped once: "@A=" is not a separator. */
    expect_walk("list@=id@A=1@Snn@A=x@S/", "list=id@A=1@Snn@A=x@S;");
    /* Non-ASCII and a NUL are bytes. */
    expect_walk("nn@=\xe4\xbd\xa0\xe5\xa5\xbd/", "nn=\xe4\xbd\xa0\xe5\xa5\xbd;");

    char got[512];
    /* Bad escapes fail at their item, after the good ones. */
    CHECK_EQ_INT(walk("a@=1/b@x/", got, sizeof got), WSK_EPROTO);
    CHECK_STR(got, "a=1;");
    CHECK_EQ_INT(walk("a@=1/b@", got, sizeof got), WSK_EPROTO);
    CHECK_EQ_INT(walk("a@=1/b@/", got, sizeof got), WSK_EPROTO);
    CHECK_EQ_INT(walk("a@=b@=c/", got, sizeof got), WSK_EPROTO);
    CHECK_EQ_INT(walk("a@a=b/", got, sizeof got), WSK_EPROTO);
    CHECK_EQ_INT(walk("@", got, sizeof got), WSK_EPROTO);
    CHECK_EQ_INT(walk("a@s/", got, sizeof got), WSK_EPROTO);

    /* NULL with length 0 is the empty text. */
    struct wsk_stt_iter it;
    struct wsk_stt_item item;
    wsk_stt_iter_init(&it, NULL, 0);
    CHECK_EQ_INT(wsk_stt_next(&it, &item), 0);
}

static void test_get(void)
{
    static const char text[] = "type@=chatmsg/a@Ab@=1/a@=2/x/nn@=n@Sm/a@=3/";
    const char *s = guarded_copy(text, sizeof text - 1);
    struct wsk_slice v;

    CHECK_EQ_INT(wsk_stt_get(s, sizeof text - 1, "type", &v), 1);
    CHECK(slice_is(v, "chatmsg"));
    /* Keys compare unescaped; the first match wins. */
    CHECK_EQ_INT(wsk_stt_get(s, sizeof text - 1, "a@b", &v), 1);
    CHECK(slice_is(v, "1"));
    CHECK_EQ_INT(wsk_stt_get(s, sizeof text - 1, "a", &v), 1);
    CHECK(slice_is(v, "2"));
    CHECK_EQ_INT(wsk_stt_get(s, sizeof text - 1, "nn", &v), 1);
    CHECK(slice_is(v, "n@Sm"));
    /* A list element is not a key; prefixes are not matches. */
    CHECK_EQ_INT(wsk_stt_get(s, sizeof text - 1, "x", &v), 0);
    CHECK_EQ_INT(wsk_stt_get(s, sizeof text - 1, "typ", &v), 0);
    CHECK_EQ_INT(wsk_stt_get(s, sizeof text - 1, "types", &v), 0);
    CHECK_EQ_INT(wsk_stt_get(s, sizeof text - 1, "", &v), 0);
    CHECK_EQ_INT(wsk_stt_get(s, sizeof text - 1, "a@Ab", NULL), 0);
    CHECK_EQ_INT(wsk_stt_get(s, sizeof text - 1, "type", NULL), 1);
    CHECK_EQ_INT(wsk_stt_get(NULL, 0, "type", &v), 0);
    /* A malformed item before the key fails; after it, it is not reached. */
    s = guarded_copy("a@x/type@=t/", 12);
    CHECK_EQ_INT(wsk_stt_get(s, 12, "type", &v), WSK_EPROTO);
    s = guarded_copy("type@=t/a@x/", 12);
    CHECK_EQ_INT(wsk_stt_get(s, 12, "type", &v), 1);
    /* An empty key. */
    s = guarded_copy("@=e/", 4);
    CHECK_EQ_INT(wsk_stt_get(s, 4, "", &v), 1);
    CHECK(slice_is(v, "e"));
}

static void test_unescape(void)
{
    char out[64];
    const char *s = guarded_copy("a@Ab@Sc@A@S", 11);

    CHECK_EQ_INT(wsk_stt_unescape(s, 11, out, sizeof out), 7);
    CHECK_MEM(out, "a@b/c@/", 7);
    CHECK_EQ_INT(wsk_stt_unescape(s, 11, out, 7), 7);
    CHECK_EQ_INT(wsk_stt_unescape(s, 11, out, 6), WSK_ENOSPC);
    CHECK_MEM(out, "a@b/c@", 6);
    CHECK_EQ_INT(wsk_stt_unescape(NULL, 0, NULL, 0), 0);
    /* Bad escapes win over a small buffer. */
    CHECK_EQ_INT(wsk_stt_unescape(guarded_copy("abc@", 4), 4, out, 0), WSK_EPROTO);
    CHECK_EQ_INT(wsk_stt_unescape(guarded_copy("a@=b", 4), 4, out, sizeof out), WSK_EPROTO);
    CHECK_EQ_INT(wsk_stt_unescape(guarded_copy("@a", 2), 2, out, sizeof out), WSK_EPROTO);
    /* In place, and two levels: a list of maps. */
    char nested[] = "id@AA=1@AS@Snn@AA=x@AAy@AS@S";
    int64_t n = wsk_stt_unescape(nested, strlen(nested), nested, sizeof nested);
    CHECK_EQ_INT(n, strlen("id@A=1@S/nn@A=x@Ay@S/"));
    CHECK_MEM(nested, "id@A=1@S/nn@A=x@Ay@S/", (size_t)n);
    char got[128];
    nested[n] = '\0';
    CHECK_EQ_INT(walk(nested, got, sizeof got), 0);
    CHECK_STR(got, "id@A=1@S;nn@A=x@Ay@S;");
    n = wsk_stt_unescape(nested, 8, nested, 8);
    CHECK_EQ_INT(n, 6);
    CHECK_MEM(nested, "id@=1/", 6);
}

static void test_writer(void)
{
    char out[128];
    struct wsk_stt_writer w;

    wsk_stt_writer_init(&w, out, sizeof out);
    wsk_stt_write(&w, "type", "loginreq", 8);
    wsk_stt_write(&w, "roomid", "9999", 4);
    wsk_stt_write(&w, "n@/k", "a/b@c", 5);
    wsk_stt_write(&w, NULL, "li/st", 5);
    wsk_stt_write(&w, "", NULL, 0);
    wsk_stt_write(&w, NULL, NULL, 0);
    static const char want[] = "type@=loginreq/roomid@=9999/n@A@Sk@=a@Sb@Ac/li@Sst/@=//";
    CHECK_EQ_INT(wsk_stt_writer_finish(&w), sizeof want - 1);
    CHECK_MEM(out, want, sizeof want - 1);

    /* Nested: the inner text is escaped once more, and comes back. */
    char inner[64], outer[128], back[64];
    wsk_stt_writer_init(&w, inner, sizeof inner);
    wsk_stt_write(&w, "nn", "a@b", 3);
    wsk_stt_write(&w, "lv", "5", 1);
    int64_t inner_len = wsk_stt_writer_finish(&w);
    CHECK_EQ_INT(inner_len, strlen("nn@=a@Ab/lv@=5/"));
    wsk_stt_writer_init(&w, outer, sizeof outer);
    wsk_stt_write(&w, "list", inner, (size_t)inner_len);
    int64_t outer_len = wsk_stt_writer_finish(&w);
    CHECK_MEM(outer, "list@=nn@A=a@AAb@Slv@A=5@S/", (size_t)outer_len);
    struct wsk_slice v;
    CHECK_EQ_INT(wsk_stt_get(outer, (size_t)outer_len, "list", &v), 1);
    CHECK_EQ_INT(wsk_stt_unescape(v.ptr, v.len, back, sizeof back), inner_len);
    CHECK_MEM(back, inner, (size_t)inner_len);

    /* Too small: a prefix, and the full length still counted. */
    wsk_stt_writer_init(&w, out, 10);
    wsk_stt_write(&w, "type", "loginreq", 8);
    CHECK_EQ_INT(wsk_stt_writer_finish(&w), WSK_ENOSPC);
    CHECK_MEM(out, "type@=logi", 10);
    CHECK_EQ_INT(w.len, 15);
    wsk_stt_writer_init(&w, NULL, 0);
    CHECK_EQ_INT(wsk_stt_writer_finish(&w), 0);
    wsk_stt_write(&w, NULL, NULL, 0);
    CHECK_EQ_INT(wsk_stt_writer_finish(&w), WSK_ENOSPC);
}

/* Random keys and values through the writer, the walker and unescaping. */
static void test_round_trip(void)
{
    static char text[1 << 16];
    char keys[8][40], values[8][40], buf[64];
    size_t value_lens[8];
    uint64_t seed = 7;
    static const char alphabet[] = "@/=aA Sz\xe4\xbd\xa0\x00";

    for (int round = 0; round < 2000; round++) {
        struct wsk_stt_writer w;
        size_t count = 1 + wsk_test_rand(&seed) % 8;
        wsk_stt_writer_init(&w, text, sizeof text);
        for (size_t i = 0; i < count; i++) {
            size_t klen = wsk_test_rand(&seed) % 10, vlen = wsk_test_rand(&seed) % 39;
            for (size_t j = 0; j < klen; j++)
                keys[i][j] = alphabet[wsk_test_rand(&seed) % (sizeof alphabet - 2)];
            keys[i][klen] = '\0';
            for (size_t j = 0; j < vlen; j++)
                values[i][j] = alphabet[wsk_test_rand(&seed) % (sizeof alphabet - 1)];
            value_lens[i] = vlen;
            wsk_stt_write(&w, keys[i], values[i], vlen);
        }
        int64_t len = wsk_stt_writer_finish(&w);
        CHECK(len > 0);
        const char *s = guarded_copy(text, (size_t)len);
        struct wsk_stt_iter it;
        struct wsk_stt_item item;
        wsk_stt_iter_init(&it, s, (size_t)len);
        for (size_t i = 0; i < count; i++) {
            CHECK_EQ_INT(wsk_stt_next(&it, &item), 1);
            CHECK(item.has_key);
            int64_t n = wsk_stt_unescape(item.key.ptr, item.key.len, buf, sizeof buf);
            CHECK_EQ_INT(n, strlen(keys[i]));
            CHECK_MEM(buf, keys[i], strlen(keys[i]));
            n = wsk_stt_unescape(item.value.ptr, item.value.len, buf, sizeof buf);
            CHECK_EQ_INT(n, value_lens[i]);
            CHECK_MEM(buf, values[i], value_lens[i]);
            struct wsk_slice v;
            CHECK_EQ_INT(wsk_stt_get(s, (size_t)len, keys[i], &v), 1);
        }
        CHECK_EQ_INT(wsk_stt_next(&it, &item), 0);
        if (wsk_test_failures_)
            break;
    }
}

static void expect_json(const char *stt, size_t len, const char *want)
{
    char out[1024];
    const char *s = guarded_copy(stt, len);
    int64_t n = wsk_stt_to_json(s, len, out, sizeof out);
    CHECK_EQ_INT(n, strlen(want));
    if (n >= 0) {
        CHECK_STR(out, want);
        CHECK(wsk_utf8_valid((const uint8_t *)out, (size_t)n));
    }
}

#define EXPECT_JSON(stt, want) expect_json(stt, sizeof stt - 1, want)

static void test_json(void)
{
    EXPECT_JSON("", "{}");
    EXPECT_JSON("type@=chatmsg/nn@=a@Ab@Sc/txt@=hi/", "{\"type\":\"chatmsg\",\"nn\":\"a@b/c\","
                                                      "\"txt\":\"hi\"}");
    EXPECT_JSON("type@=mrkl", "{\"type\":\"mrkl\"}");
    EXPECT_JSON("@=/", "{\"\":\"\"}");
    /* Repeated keys stay; nested STT stays a string, unescaped once. */
    EXPECT_JSON("a@=1/a@=2/", "{\"a\":\"1\",\"a\":\"2\"}");
    EXPECT_JSON("list@=id@A=1@S/", "{\"list\":\"id@=1/\"}");
    /* JSON escapes: quotes, backslashes, C0, DEL, C1. */
    EXPECT_JSON("q@=\"\\/", "{\"q\":\"\\\"\\\\\"}");
    EXPECT_JSON("c@=\n\r\t\x01\x1b\x7f/", "{\"c\":\"\\n\\r\\t\\u0001\\u001b\\u007f\"}");
    EXPECT_JSON("c@=\xc2\x80\xc2\x9b\xc2\xa0/", "{\"c\":\"\\u0080\\u009b\xc2\xa0\"}");
    EXPECT_JSON("z@=a\0b/", "{\"z\":\"a\\u0000b\"}");
    /* UTF-8 as it is; each ill-formed sequence's maximal subpart is one
     * U+FFFD. */
    EXPECT_JSON("nn@=\xe4\xbd\xa0\xf0\x9f\x98\x80/", "{\"nn\":\"\xe4\xbd\xa0\xf0\x9f\x98\x80\"}");
    EXPECT_JSON("b@=\xff/", "{\"b\":\"\xef\xbf\xbd\"}");
    EXPECT_JSON("b@=\xe4\xbd/", "{\"b\":\"\xef\xbf\xbd\"}");
    EXPECT_JSON("b@=\xe4\xbd@A/", "{\"b\":\"\xef\xbf\xbd@\"}");
    EXPECT_JSON("b@=\xc0\xaf/", "{\"b\":\"\xef\xbf\xbd\xef\xbf\xbd\"}");
    EXPECT_JSON("b@=\xed\xa0\x80/", "{\"b\":\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"}");
    EXPECT_JSON("b@=\xf4\x90\x80\x80/",
                "{\"b\":\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"}");
    EXPECT_JSON("b@=\xf0\x9f\x98/", "{\"b\":\"\xef\xbf\xbd\"}");
    EXPECT_JSON("b@=\xe0\x80\x80/", "{\"b\":\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"}");
    EXPECT_JSON("b@=\xe0\xa0/", "{\"b\":\"\xef\xbf\xbd\"}");
    EXPECT_JSON("b@=\xef\xbf\xbf/", "{\"b\":\"\xef\xbf\xbf\"}");

    char out[64];
    CHECK_EQ_INT(wsk_stt_to_json(NULL, 0, out, 3), 2);
    CHECK_STR(out, "{}");
    CHECK_EQ_INT(wsk_stt_to_json(NULL, 0, out, 2), WSK_ENOSPC);
    /* Not a map, or not STT: refused, whatever the buffer. */
    CHECK_EQ_INT(wsk_stt_to_json(guarded_copy("a@=1/x/", 7), 7, out, sizeof out), WSK_EPROTO);
    CHECK_EQ_INT(wsk_stt_to_json(guarded_copy("a@=1//", 6), 6, out, sizeof out), WSK_EPROTO);
    CHECK_EQ_INT(wsk_stt_to_json(guarded_copy("a@=1@", 5), 5, out, 1), WSK_EPROTO);
    /* Exactly the size, and one short. */
    const char *s = guarded_copy("a@=1/", 5);
    CHECK_EQ_INT(wsk_stt_to_json(s, 5, out, 10), 9);
    CHECK_EQ_INT(wsk_stt_to_json(s, 5, out, 9), WSK_ENOSPC);
}

/* WSK_STT_JSON_MAX always suffices, and the output is valid UTF-8 without
 * raw control characters, whatever the bytes. */
static void test_json_bound(void)
{
    static char in[512], out[WSK_STT_JSON_MAX(512)];
    static const char worst[] = "\x01@=\x01/";
    uint64_t seed = 99;

    /* The worst case: every byte a control character. */
    for (size_t len = 0; len + 5 <= sizeof in; len += 5)
        memcpy(in + len, worst, 5);
    int64_t n = wsk_stt_to_json(in, 510, out, WSK_STT_JSON_MAX(510));
    CHECK(n > 0);
    for (int round = 0; round < 20000; round++) {
        size_t len = wsk_test_rand(&seed) % sizeof in;
        for (size_t i = 0; i < len; i++) {
            uint64_t r = wsk_test_rand(&seed);
            /* Mostly bytes that make valid STT, some anything. */
            in[i] = r % 5 == 0 ? "@=/@A@S"[r % 7] : (char)(r >> 8);
        }
        const char *s = guarded_copy(in, len);
        n = wsk_stt_to_json(s, len, out, WSK_STT_JSON_MAX(len));
        CHECK(n != WSK_ENOSPC);
        if (n == WSK_EPROTO)
            continue;
        CHECK(n >= 2 && out[0] == '{' && out[n - 1] == '}' && out[n] == '\0');
        CHECK(wsk_utf8_valid((const uint8_t *)out, (size_t)n));
        for (int64_t i = 0; i < n; i++)
            CHECK((unsigned char)out[i] >= 0x20 && out[i] != 0x7f);
        if (wsk_test_failures_)
            break;
    }
}

int main(void)
{
    WSK_RUN(test_iter);
    WSK_RUN(test_get);
    WSK_RUN(test_unescape);
    WSK_RUN(test_writer);
    WSK_RUN(test_round_trip);
    WSK_RUN(test_json);
    WSK_RUN(test_json_bound);
    WSK_TEST_END();
}
