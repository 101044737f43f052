/* Tests for writing HTTP/1.1 heads (src/proto/http1_write.c): reason
 * phrases, status lines, whole heads, dates and content types, client
 * requests and the checks against header injection; and for the bounded
 * writer and the list walker of src/proto/text_internal.h that every head
 * and header list in src/proto goes through. */
#include <errno.h>
#include <time.h>

#include "proto/http1_internal.h"
#include "wsk/http.h"
#include "wsk_test.h"

/* ---- the bounded writer --------------------------------------------------- */

static void test_wbuf(void)
{
    char out[16];
    struct wsk__wbuf w = wsk__wbuf_init(out, sizeof out);
    wsk__wbuf_str(&w, "ab");
    wsk__wbuf_char(&w, '-');
    wsk__wbuf_u64(&w, 0);
    wsk__wbuf_char(&w, '-');
    wsk__wbuf_u64(&w, 1234567);
    wsk__wbuf_slice(&w, (struct wsk_slice){"xyz", 2});
    CHECK_EQ_INT(wsk__wbuf_finish(&w), 14);
    CHECK_MEM(out, "ab-0-1234567xy", 14);
    CHECK_EQ_INT(wsk__wbuf_finish_cstr(&w), 14);
    CHECK_STR(out, "ab-0-1234567xy");

    /* Exactly full: fine without a NUL, too small with one. */
    w = wsk__wbuf_init(out, 4);
    wsk__wbuf_str(&w, "abcd");
    CHECK_EQ_INT(wsk__wbuf_finish(&w), 4);
    CHECK_EQ_INT(wsk__wbuf_finish_cstr(&w), WSK_ENOSPC);

    /* Past the end nothing is written, and later small appends that would
     * fit the room left do not sneak in after a gap. */
    memset(out, '.', sizeof out);
    w = wsk__wbuf_init(out, 6);
    wsk__wbuf_str(&w, "abc");
    wsk__wbuf_str(&w, "defg");
    wsk__wbuf_char(&w, 'h');
    CHECK_EQ_INT(wsk__wbuf_finish(&w), WSK_ENOSPC);
    CHECK_MEM(out, "abc......", 9);

    char big[32];
    w = wsk__wbuf_init(big, sizeof big);
    wsk__wbuf_u64(&w, UINT64_MAX);
    CHECK_EQ_INT(wsk__wbuf_finish_cstr(&w), 20);
    CHECK_STR(big, "18446744073709551615");

    /* A NULL buffer of capacity 0 only counts. */
    w = wsk__wbuf_init(NULL, 0);
    wsk__wbuf_str(&w, "x");
    wsk__wbuf_str(&w, "");
    CHECK_EQ_INT(wsk__wbuf_finish(&w), WSK_ENOSPC);
    w = wsk__wbuf_init(NULL, 0);
    wsk__wbuf_str(&w, "");
    CHECK_EQ_INT(wsk__wbuf_finish(&w), 0);
}

/* ---- the list walker ------------------------------------------------------ */

/* Joins the elements of value with '|'. */
static const char *walk(const char *value)
{
    static char out[256];
    struct wsk__list l = wsk__list_init((struct wsk_slice){value, strlen(value)});
    struct wsk_slice e;
    size_t n = 0;
    while (wsk__list_next(&l, &e)) {
        CHECK(e.len > 0);
        CHECK(e.ptr[0] != ' ' && e.ptr[0] != '\t' && e.ptr[0] != ',');
        CHECK(e.ptr[e.len - 1] != ' ' && e.ptr[e.len - 1] != '\t');
        if (n > 0)
            out[n++] = '|';
        memcpy(out + n, e.ptr, e.len);
        n += e.len;
    }
    CHECK(!wsk__list_next(&l, &e)); /* stays at the end */
    out[n] = '\0';
    return out;
}

static void test_list(void)
{
    CHECK_STR(walk(""), "");
    CHECK_STR(walk(" \t "), "");
    CHECK_STR(walk(",,, ,\t,"), "");
    CHECK_STR(walk("a"), "a");
    CHECK_STR(walk("a,b"), "a|b");
    CHECK_STR(walk(" a , b\t,\tc "), "a|b|c");
    /* RFC 9110 section 5.6.1's examples of valid lists with empty elements. */
    CHECK_STR(walk("foo,bar"), "foo|bar");
    CHECK_STR(walk("foo ,bar,"), "foo|bar");
    CHECK_STR(walk("foo , ,bar,charlie"), "foo|bar|charlie");
    CHECK_STR(walk(",a,,b,"), "a|b");
    /* Whitespace inside an element stays; quotes are not special. */
    CHECK_STR(walk("keep-alive, Upgrade x"), "keep-alive|Upgrade x");
    CHECK_STR(walk("x; a=\"1,2\""), "x; a=\"1|2\"");
    /* Only the slice is read. */
    struct wsk__list l = wsk__list_init((struct wsk_slice){"ab,cd", 4});
    struct wsk_slice e;
    CHECK(wsk__list_next(&l, &e) && e.len == 2 && memcmp(e.ptr, "ab", 2) == 0);
    CHECK(wsk__list_next(&l, &e) && e.len == 1 && e.ptr[0] == 'c');
    CHECK(!wsk__list_next(&l, &e));
}

/* ---- status lines ----------------------------------------------------------- */

static void test_status_line(void)
{
    char out[64];
    static const struct {
        int status;
        const char *line;
    } cases[] = {
        {101, "HTTP/1.1 101 Switching Protocols\r\n"},
        {200, "HTTP/1.1 200 OK\r\n"},
        {426, "HTTP/1.1 426 Upgrade Required\r\n"},
        {418, "HTTP/1.1 418 Client Error\r\n"},
        {999, "HTTP/1.1 999 Unknown\r\n"},
        {1000, "HTTP/1.1 1000 Unknown\r\n"},
        {7, "HTTP/1.1 7 Unknown\r\n"},
        {-42, "HTTP/1.1 -42 Unknown\r\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct wsk__wbuf w = wsk__wbuf_init(out, sizeof out);
        wsk__http_status_line(&w, cases[i].status);
        CHECK_EQ_INT(wsk__wbuf_finish_cstr(&w), strlen(cases[i].line));
        CHECK_STR(out, cases[i].line);
    }
    struct wsk__wbuf w = wsk__wbuf_init(out, sizeof out);
    wsk__http_status_line(&w, 101);
    CHECK_EQ_INT(wsk__wbuf_finish_cstr(&w), strlen(WSK__HTTP_STATUS_LINE_101));
    CHECK_STR(out, WSK__HTTP_STATUS_LINE_101);
}

/* ---- content types, reasons, heads, dates -------------------------------------------- */

static void test_mime(void)
{
    static const struct {
        const char *path, *type;
    } cases[] = {
        {"index.html", "text/html; charset=utf-8"},
        {"INDEX.HTM", "text/html; charset=utf-8"},
        {"a.Js", "text/javascript; charset=utf-8"},
        {"m.MJS", "text/javascript; charset=utf-8"},
        {"s.CSS", "text/css; charset=utf-8"},
        {"d.json", "application/json"},
        {"app.js.map", "application/json"},
        {"x.SVG", "image/svg+xml"},
        {"i.PNG", "image/png"},
        {"favicon.ico", "image/x-icon"},
        {"r.TXT", "text/plain; charset=utf-8"},
        {"p.jpg", "image/jpeg"},
        {"p.JPEG", "image/jpeg"},
        {"g.gif", "image/gif"},
        {"m.wasm", "application/wasm"},
        {"w.WebP", "image/webp"},
        {"f.woff2", "font/woff2"},
        {"f.woff", "font/woff"},
        {"a.tar.gz", "application/gzip"},
        {"v.MP4", "video/mp4"},
        {"site.webmanifest", "application/manifest+json"},
        {"a.webmanifes", "application/octet-stream"},
        {"s.vtt", "text/vtt; charset=utf-8"},
        {"x.exe", "application/octet-stream"},
        {"noext", "application/octet-stream"},
        {"dir.html/file", "application/octet-stream"},
        {"dir/", "application/octet-stream"},
        {"trailing.", "application/octet-stream"},
        {"a.htmlx", "application/octet-stream"},
        {"a.htm_", "application/octet-stream"},
        {"a.h", "application/octet-stream"},
        {"", "application/octet-stream"},
        {".html", "text/html; charset=utf-8"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK_STR(wsk__mime_type(cases[i].path, strlen(cases[i].path)), cases[i].type);
    /* Only len bytes are read. */
    CHECK_STR(wsk__mime_type("a.css.png", 5), "text/css; charset=utf-8");
    CHECK_STR(wsk__mime_type(NULL, 0), "application/octet-stream");
}

static void test_reason(void)
{
    CHECK_STR(wsk__http_reason(200), "OK");
    CHECK_STR(wsk__http_reason(301), "Moved Permanently");
    CHECK_STR(wsk__http_reason(304), "Not Modified");
    CHECK_STR(wsk__http_reason(400), "Bad Request");
    CHECK_STR(wsk__http_reason(403), "Forbidden");
    CHECK_STR(wsk__http_reason(404), "Not Found");
    CHECK_STR(wsk__http_reason(405), "Method Not Allowed");
    CHECK_STR(wsk__http_reason(431), "Request Header Fields Too Large");
    CHECK_STR(wsk__http_reason(426), "Upgrade Required");
    CHECK_STR(wsk__http_reason(500), "Internal Server Error");
    CHECK_STR(wsk__http_reason(503), "Service Unavailable");
    /* Codes without an entry get their class's name (RFC 9110 section 15),
     * the fallback the handshake's rejections always had. */
    CHECK_STR(wsk__http_reason(101), "Switching Protocols");
    CHECK_STR(wsk__http_reason(413), "Content Too Large");
    CHECK_STR(wsk__http_reason(502), "Bad Gateway");
    CHECK_STR(wsk__http_reason(199), "Informational");
    CHECK_STR(wsk__http_reason(299), "Success");
    CHECK_STR(wsk__http_reason(399), "Redirection");
    CHECK_STR(wsk__http_reason(418), "Client Error");
    CHECK_STR(wsk__http_reason(599), "Server Error");
    CHECK_STR(wsk__http_reason(99), "Unknown");
    CHECK_STR(wsk__http_reason(600), "Unknown");
    CHECK_STR(wsk__http_reason(-1), "Unknown");
}

static void test_head(void)
{
    char out[512];
    const char *want = "HTTP/1.1 200 OK\r\n"
                       "Server: wsk\r\n"
                       "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                       "Content-Type: text/html; charset=utf-8\r\n"
                       "Content-Length: 1234\r\n"
                       "Connection: keep-alive\r\n"
                       "\r\n";
    int n = wsk__http_head(out, sizeof out, 200, "text/html; charset=utf-8", 1234, true, NULL,
                           784111777);
    CHECK_EQ_INT(n, strlen(want));
    CHECK_STR(out, want);

    want = "HTTP/1.1 301 Moved Permanently\r\n"
           "Server: wsk\r\n"
           "Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n"
           "Content-Length: 0\r\n"
           "Connection: close\r\n"
           "Location: /sub/\r\n"
           "Cache-Control: no-cache\r\n"
           "\r\n";
    n = wsk__http_head(out, sizeof out, 301, NULL, 0, false,
                       "Location: /sub/\r\nCache-Control: no-cache\r\n", 0);
    CHECK_EQ_INT(n, strlen(want));
    CHECK_STR(out, want);

    n = wsk__http_head(out, sizeof out, 404, "text/plain; charset=utf-8", UINT64_MAX, true, "",
                       951782400);
    CHECK_STR(out, "HTTP/1.1 404 Not Found\r\n"
                   "Server: wsk\r\n"
                   "Date: Tue, 29 Feb 2000 00:00:00 GMT\r\n"
                   "Content-Type: text/plain; charset=utf-8\r\n"
                   "Content-Length: 18446744073709551615\r\n"
                   "Connection: keep-alive\r\n"
                   "\r\n");

    /* Every capacity up to the length plus the NUL is too small. */
    size_t len = strlen(want);
    for (size_t cap = 0; cap <= len; cap++) {
        char *small = malloc(cap ? cap : 1);
        CHECK_EQ_INT(wsk__http_head(small, cap, 301, NULL, 0, false,
                                    "Location: /sub/\r\nCache-Control: no-cache\r\n", 0),
                     WSK_ENOSPC);
        free(small);
    }
    CHECK_EQ_INT(wsk__http_head(NULL, 0, 200, NULL, 0, true, NULL, 0), WSK_ENOSPC);
    char *exact = malloc(len + 1);
    CHECK_EQ_INT(wsk__http_head(exact, len + 1, 301, NULL, 0, false,
                                "Location: /sub/\r\nCache-Control: no-cache\r\n", 0),
                 len);
    CHECK_STR(exact, want);
    free(exact);
}

static void check_date(int64_t t, const char *want)
{
    char out[30];
    memset(out, 'x', sizeof out);
    wsk__http_date(t, out);
    CHECK_STR(out, want);
}

static void test_date(void)
{
    check_date(0, "Thu, 01 Jan 1970 00:00:00 GMT");
    check_date(784111777, "Sun, 06 Nov 1994 08:49:37 GMT");
    check_date(-1, "Wed, 31 Dec 1969 23:59:59 GMT");
    check_date(951782400, "Tue, 29 Feb 2000 00:00:00 GMT");
    check_date(4107542399, "Sun, 28 Feb 2100 23:59:59 GMT");
    check_date(4107542400, "Mon, 01 Mar 2100 00:00:00 GMT");
    check_date(2147483648, "Tue, 19 Jan 2038 03:14:08 GMT");
    check_date(253402300799, "Fri, 31 Dec 9999 23:59:59 GMT");
    check_date(INT64_MAX, "Fri, 31 Dec 9999 23:59:59 GMT");
    check_date(-62135596800, "Mon, 01 Jan 0001 00:00:00 GMT");
    check_date(INT64_MIN, "Mon, 01 Jan 0001 00:00:00 GMT");

    /* Against the C library over the whole clamped range. */
    uint64_t seed = 0x5EED;
    for (int i = 0; i < 20000; i++) {
        int64_t t = (int64_t)(wsk_test_rand(&seed) % 315537897600ull) - 62135596800ll;
        time_t tt = (time_t)t;
        struct tm tm;
        char wday[8], mon[8], want[128], got[30];
        if (gmtime_r(&tt, &tm) == NULL)
            continue;
        /* strftime's %Y does not pad years before 1000. */
        strftime(wday, sizeof wday, "%a", &tm);
        strftime(mon, sizeof mon, "%b", &tm);
        snprintf(want, sizeof want, "%s, %02d %s %04d %02d:%02d:%02d GMT", wday, tm.tm_mday, mon,
                 tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
        wsk__http_date(t, got);
        if (strcmp(got, want) != 0) {
            CHECK_STR(got, want);
            break;
        }
    }
}

/* ---- requests ------------------------------------------------------------ */

static struct wsk_url url_of(const char *s)
{
    struct wsk_url u;
    CHECK_EQ_INT(wsk_url_parse(s, strlen(s), &u), 0);
    return u;
}

/* Writes spec and compares with want; every smaller buffer is WSK_ENOSPC. */
static void expect_request(const struct wsk_http_request_spec *spec, const char *want)
{
    char out[512];
    int n = wsk_http_request_write(out, sizeof out, spec);
    CHECK_EQ_INT(n, strlen(want));
    if (n < 0)
        return;
    out[n] = '\0';
    CHECK_STR(out, want);
    /* It parses as a request, with the same target. */
    struct wsk_http_parser p;
    struct wsk_http_request req;
    wsk_http_parser_init(&p, 0);
    CHECK_EQ_INT(wsk_http_request_parse(&p, out, (size_t)n, &req), n);
    for (int cap = 0; cap < n; cap++)
        CHECK_EQ_INT(wsk_http_request_write(cap ? out : NULL, (size_t)cap, spec), WSK_ENOSPC);
}

static void test_request(void)
{
    struct wsk_url u = url_of("http://example.com/path?q=1#frag");
    struct wsk_http_request_spec spec = {.url = &u};
    expect_request(&spec,
                   "GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n");

    /* The port only when it is not the scheme's. */
    u = url_of("http://h:8080");
    expect_request(&spec, "GET / HTTP/1.1\r\nHost: h:8080\r\nConnection: close\r\n\r\n");
    u = url_of("https://h:443/?");
    expect_request(&spec, "GET /? HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    u = url_of("https://h:80/");
    expect_request(&spec, "GET / HTTP/1.1\r\nHost: h:80\r\nConnection: close\r\n\r\n");
    u = url_of("http://[::1]:81/x");
    expect_request(&spec, "GET /x HTTP/1.1\r\nHost: [::1]:81\r\nConnection: close\r\n\r\n");

    /* Everything. */
    u = url_of("http://127.0.0.1:9000/post");
    const char *headers[] = {"Content-Type: application/json", "X-Empty:", "X-Tab:\ta\tb"};
    spec = (struct wsk_http_request_spec){
        .method = "POST",
        .url = &u,
        .headers = headers,
        .num_headers = 3,
        .user_agent = "wsk/1.0",
        .has_body = true,
        .body_len = 12345678901234ull,
        .keep_alive = true,
    };
    expect_request(&spec, "POST /post HTTP/1.1\r\nHost: 127.0.0.1:9000\r\nUser-Agent: wsk/1.0\r\n"
                          "Content-Type: application/json\r\nX-Empty:\r\nX-Tab:\ta\tb\r\n"
                          "Content-Length: 12345678901234\r\n\r\n");
    spec.body_len = 0;
    spec.keep_alive = false;
    spec.num_headers = 0;
    expect_request(&spec, "POST /post HTTP/1.1\r\nHost: 127.0.0.1:9000\r\nUser-Agent: wsk/1.0\r\n"
                          "Content-Length: 0\r\nConnection: close\r\n\r\n");

    /* The caller's Host, User-Agent and Connection replace ours. */
    const char *mine[] = {"host: virtual", "USER-AGENT: curl/8", "Connection: keep-alive"};
    spec = (struct wsk_http_request_spec){
        .method = "HEAD", .url = &u, .headers = mine, .num_headers = 3, .user_agent = "wsk"};
    expect_request(&spec, "HEAD /post HTTP/1.1\r\nhost: virtual\r\nUSER-AGENT: curl/8\r\n"
                          "Connection: keep-alive\r\n\r\n");
    spec.user_agent = "";
    spec.num_headers = 0;
    expect_request(&spec,
                   "HEAD /post HTTP/1.1\r\nHost: 127.0.0.1:9000\r\nConnection: close\r\n\r\n");
}

static void expect_refused(const struct wsk_http_request_spec *spec)
{
    char out[256];
    memset(out, '.', sizeof out);
    CHECK_EQ_INT(wsk_http_request_write(out, sizeof out, spec), -EINVAL);
    CHECK(out[0] == '.'); /* nothing written */
}

/* Nothing a caller passes can add a line, end the head, or frame a body
 * behind the writer's back. */
static void test_request_injection(void)
{
    struct wsk_url u = url_of("http://h/p");
    struct wsk_http_request_spec spec = {.url = &u};
    expect_refused(NULL);
    struct wsk_http_request_spec no_url = {0};
    expect_refused(&no_url);

    const char *methods[] = {"", "GE T", "GET\r\nX: y", "G\tT", "GET/", "(GET)"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        spec.method = methods[i];
        expect_refused(&spec);
    }
    spec.method = "M-SEARCH";
    char out[256];
    CHECK(wsk_http_request_write(out, sizeof out, &spec) > 0);

    const char *bad_headers[] = {
        "X: a\r\nInjected: 1",
        "X: a\nInjected: 1",
        "X: a\r",
        "X: a\x01",
        "X: \x7f",
        "NoColon",
        ": no name",
        "X : space before colon",
        " X: obs-fold",
        "X\r\n: y",
        "Content-Length: 5",
        "content-length: 5",
        "Transfer-Encoding: chunked",
    };
    for (size_t i = 0; i < sizeof bad_headers / sizeof bad_headers[0]; i++) {
        const char *h[] = {"Good: yes", bad_headers[i]};
        spec = (struct wsk_http_request_spec){.url = &u, .headers = h, .num_headers = 2};
        expect_refused(&spec);
    }
    const char *null_header[] = {NULL};
    spec = (struct wsk_http_request_spec){.url = &u, .headers = null_header, .num_headers = 1};
    expect_refused(&spec);
    spec = (struct wsk_http_request_spec){.url = &u, .num_headers = 1};
    expect_refused(&spec);

    spec = (struct wsk_http_request_spec){.url = &u, .user_agent = "wsk\r\nX: injected"};
    expect_refused(&spec);
    spec.user_agent = "wsk\x00ignored"; /* a C string ends at its NUL: fine */
    CHECK(wsk_http_request_write(out, sizeof out, &spec) > 0);

    /* A URL filled by hand: its slices carry what wsk_url_parse() refuses. */
    spec = (struct wsk_http_request_spec){.url = &u};
    struct wsk_url hand = u;
    hand.host = (struct wsk_slice){"h\r\nX: y", 7};
    spec.url = &hand;
    expect_refused(&spec);
    hand.host = (struct wsk_slice){"h\0x", 3};
    expect_refused(&spec);
    hand.host = (struct wsk_slice){"", 0};
    expect_refused(&spec);
    hand = u;
    hand.path = (struct wsk_slice){"/a b", 4};
    expect_refused(&spec);
    hand.path = (struct wsk_slice){"/a\0", 3};
    expect_refused(&spec);
    hand.path = (struct wsk_slice){"a", 1};
    expect_refused(&spec);
    hand.path = (struct wsk_slice){"", 0};
    expect_refused(&spec);
    hand = u;
    hand.has_query = true;
    hand.query = (struct wsk_slice){"x\r\n", 3};
    expect_refused(&spec);
}

/* The checks the handshake and the request writer share. */
static void test_field_checks(void)
{
    CHECK(wsk__http_is_field_value((struct wsk_slice){"a b\tc\x80\xff", 7}));
    CHECK(!wsk__http_is_field_value((struct wsk_slice){"a\0", 2}));
    CHECK(!wsk__http_is_field_value((struct wsk_slice){"a\r", 2}));
    CHECK(wsk__http_is_token("X-Y.z~1"));
    CHECK(!wsk__http_is_token(""));
    CHECK(!wsk__http_is_token("a b"));
    struct wsk_slice name;
    CHECK(wsk__http_is_field_line("Name: v", 7, &name));
    CHECK_EQ_INT(name.len, 4);
    CHECK(wsk__http_is_field_line("N:", 2, NULL));
    CHECK(wsk__http_is_field_line("N: v", 3, NULL)); /* "N: " */
    CHECK(!wsk__http_is_field_line("N", 1, NULL));
    CHECK(!wsk__http_is_field_line(":v", 2, NULL));
    CHECK(wsk__http_are_header_lines(""));
    CHECK(wsk__http_are_header_lines("A: 1\r\nB: 2\r\n"));
    CHECK(!wsk__http_are_header_lines("A: 1\r\nB: 2"));
    CHECK(!wsk__http_are_header_lines("A: 1\nB: 2\r\n"));
    CHECK(!wsk__http_are_header_lines("A: 1\r\n\r\n"));
}

int main(void)
{
    WSK_RUN(test_wbuf);
    WSK_RUN(test_list);
    WSK_RUN(test_status_line);
    WSK_RUN(test_mime);
    WSK_RUN(test_reason);
    WSK_RUN(test_head);
    WSK_RUN(test_date);
    WSK_RUN(test_request);
    WSK_RUN(test_request_injection);
    WSK_RUN(test_field_checks);
    WSK_TEST_END();
}
