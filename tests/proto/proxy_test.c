/* Proxy settings, no_proxy, the CONNECT request and the SOCKS5 messages
 * (src/proto/proxy.c), and wsk_proxy_from_env()'s reading of the
 * environment. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>

#include "proto/proxy_internal.h"
#include "wsk/ws.h"
#include "wsk_test.h"

static void test_parse_good(void)
{
    struct wsk__proxy p;
    const char *why;
    CHECK_EQ_INT(wsk__proxy_parse("proxy.example", &p, &why), 0);
    CHECK_EQ_INT(p.kind, WSK__PROXY_HTTP);
    CHECK_STR(p.host, "proxy.example");
    CHECK_EQ_INT(p.port, 1080);
    CHECK(!p.has_auth);

    CHECK_EQ_INT(wsk__proxy_parse("HTTP://10.0.0.1:3128/", &p, &why), 0);
    CHECK_EQ_INT(p.kind, WSK__PROXY_HTTP);
    CHECK_STR(p.host, "10.0.0.1");
    CHECK_EQ_INT(p.port, 3128);

    CHECK_EQ_INT(wsk__proxy_parse("socks5://[::1]:9050", &p, &why), 0);
    CHECK_EQ_INT(p.kind, WSK__PROXY_SOCKS5);
    CHECK_STR(p.host, "::1");
    CHECK_EQ_INT(p.port, 9050);

    /* The last '@' ends the userinfo; escapes are decoded. */
    CHECK_EQ_INT(wsk__proxy_parse("socks5h://us%3Aer:p@ss%40word@h:1", &p, &why), 0);
    CHECK_EQ_INT(p.kind, WSK__PROXY_SOCKS5H);
    CHECK(p.has_auth);
    CHECK_STR(p.user, "us:er");
    CHECK_STR(p.pass, "p@ss@word");
    CHECK_STR(p.host, "h");
    CHECK_EQ_INT(wsk__proxy_parse("http://user@h", &p, &why), 0);
    CHECK(p.has_auth);
    CHECK_STR(p.user, "user");
    CHECK_STR(p.pass, "");
}

static void test_parse_bad(void)
{
    static const char *const bad[] = {
        "",
        "https://h:443",
        "socks4://h",
        "ftp://h",
        "h:0",
        "h:65536",
        "h:",
        "h:12x",
        "http://h/path",
        "http://h?q",
        "http://[::1",
        "http://[zz]:1",
        "http://:1",
        "http://h h:1",
        "http://%zz@h",
        "http://u%00@h",
        "http://:pass@h",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct wsk__proxy p;
        const char *why = NULL;
        int rv = wsk__proxy_parse(bad[i], &p, &why);
        if (rv != WSK_EURL || !why || !*why)
            fprintf(stderr, "accepted or no reason: '%s'\n", bad[i]);
        CHECK_EQ_INT(rv, WSK_EURL);
        CHECK(why && *why);
    }
    struct wsk__proxy p;
    const char *why;
    CHECK_EQ_INT(wsk__proxy_parse(NULL, &p, &why), WSK_EURL);
    /* 255 bytes of user decode; 256 do not. */
    char spec[600] = "http://";
    memset(spec + 7, 'u', 255);
    strcpy(spec + 7 + 255, "@h");
    CHECK_EQ_INT(wsk__proxy_parse(spec, &p, &why), 0);
    CHECK_EQ_INT(strlen(p.user), 255);
    memset(spec + 7, 'u', 256);
    strcpy(spec + 7 + 256, "@h");
    CHECK_EQ_INT(wsk__proxy_parse(spec, &p, &why), WSK_EURL);
}

static void test_no_proxy(void)
{
    CHECK(!wsk__no_proxy_match(NULL, "a.example"));
    CHECK(!wsk__no_proxy_match("", "a.example"));
    CHECK(wsk__no_proxy_match("*", "anything"));
    CHECK(wsk__no_proxy_match("example.com", "example.com"));
    CHECK(wsk__no_proxy_match("example.com", "a.b.EXAMPLE.com"));
    CHECK(wsk__no_proxy_match(".example.com", "a.example.com"));
    CHECK(wsk__no_proxy_match("example.com", "example.com."));
    CHECK(!wsk__no_proxy_match("example.com", "badexample.com"));
    CHECK(!wsk__no_proxy_match("a.example.com", "example.com"));
    CHECK(wsk__no_proxy_match("foo, example.com ,bar", "x.example.com"));
    CHECK(wsk__no_proxy_match("foo example.com", "x.example.com"));
    CHECK(wsk__no_proxy_match("10.1.2.3", "10.1.2.3"));
    CHECK(!wsk__no_proxy_match("10.1.2.3", "10.1.2.4"));
    CHECK(wsk__no_proxy_match("10.0.0.0/8", "10.200.1.1"));
    CHECK(!wsk__no_proxy_match("10.0.0.0/8", "11.0.0.1"));
    CHECK(wsk__no_proxy_match("192.168.4.0/22", "192.168.7.255"));
    CHECK(!wsk__no_proxy_match("192.168.4.0/22", "192.168.8.0"));
    CHECK(wsk__no_proxy_match("fe80::/10", "fe80::1"));
    CHECK(wsk__no_proxy_match("[2001:db8::1]", "2001:db8::1"));
    CHECK(!wsk__no_proxy_match("fe80::/10", "10.0.0.1"));
    CHECK(!wsk__no_proxy_match("10.0.0.0/33", "10.0.0.1"));
    CHECK(!wsk__no_proxy_match("*.example.com", "a.example.com")); /* curl: no wildcards */

    CHECK(wsk__is_loopback_host("localhost"));
    CHECK(wsk__is_loopback_host("a.localhost"));
    CHECK(wsk__is_loopback_host("127.0.0.1"));
    CHECK(wsk__is_loopback_host("127.255.0.9"));
    CHECK(wsk__is_loopback_host("::1"));
    CHECK(!wsk__is_loopback_host("128.0.0.1"));
    CHECK(!wsk__is_loopback_host("localhost.example"));
}

static void test_connect_request(void)
{
    struct wsk__proxy p;
    const char *why;
    char out[1200];
    CHECK_EQ_INT(wsk__proxy_parse("http://h:1", &p, &why), 0);
    int n = wsk__http_connect_request(out, sizeof out, &p, "example.com", 443);
    const char want[] = "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n";
    CHECK_EQ_INT(n, sizeof want - 1);
    CHECK_MEM(out, want, sizeof want - 1);
    CHECK_EQ_INT(wsk__proxy_parse("http://Aladdin:open%20sesame@h:1", &p, &why), 0);
    n = wsk__http_connect_request(out, sizeof out, &p, "::1", 80);
    const char want6[] = "CONNECT [::1]:80 HTTP/1.1\r\nHost: [::1]:80\r\n"
                         "Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n";
    CHECK_EQ_INT(n, sizeof want6 - 1);
    CHECK_MEM(out, want6, sizeof want6 - 1);
    CHECK_EQ_INT(wsk__http_connect_request(out, 20, &p, "::1", 80), WSK_ENOSPC);

    /* The longest: 255-byte credentials and host fit the documented bound. */
    char spec[800] = "http://", host[256], big[WSK__CONNECT_REQUEST_MAX];
    memset(spec + 7, 'u', 255);
    spec[7 + 255] = ':';
    memset(spec + 7 + 256, 'p', 255);
    strcpy(spec + 7 + 256 + 255, "@h");
    CHECK_EQ_INT(wsk__proxy_parse(spec, &p, &why), 0);
    memset(host, 'h', 255);
    host[255] = 0;
    n = wsk__http_connect_request(big, sizeof big, &p, host, 65535);
    CHECK(n > 1200 && n <= WSK__CONNECT_REQUEST_MAX);
}

static void test_socks5(void)
{
    struct wsk__proxy p;
    const char *why;
    uint8_t buf[600];
    CHECK_EQ_INT(wsk__proxy_parse("socks5h://h", &p, &why), 0);
    CHECK_EQ_INT(wsk__socks5_greeting(buf, &p), 3);
    CHECK_MEM(buf, "\x05\x01\x00", 3);
    CHECK_EQ_INT(wsk__socks5_method((const uint8_t *)"\x05\x00", &p), 0);
    CHECK_EQ_INT(wsk__socks5_method((const uint8_t *)"\x05\x02", &p), WSK_EPROXY); /* not offered */
    CHECK_EQ_INT(wsk__socks5_method((const uint8_t *)"\x05\xff", &p), WSK_EPROXY);
    CHECK_EQ_INT(wsk__socks5_method((const uint8_t *)"\x04\x00", &p), WSK_EPROXY);

    CHECK_EQ_INT(wsk__proxy_parse("socks5://ab:cde@h", &p, &why), 0);
    CHECK_EQ_INT(wsk__socks5_greeting(buf, &p), 4);
    CHECK_MEM(buf, "\x05\x02\x00\x02", 4);
    CHECK_EQ_INT(wsk__socks5_method((const uint8_t *)"\x05\x02", &p), 2);
    CHECK_EQ_INT(wsk__socks5_auth(buf, &p), 8);
    CHECK_MEM(buf,
              "\x01\x02"
              "ab"
              "\x03"
              "cde",
              8);

    CHECK_EQ_INT(wsk__socks5_connect_name(buf, "example.com", 8080), 4 + 1 + 11 + 2);
    CHECK_MEM(buf,
              "\x05\x01\x00\x03\x0b"
              "example.com"
              "\x1f\x90",
              18);
    char long_name[300];
    memset(long_name, 'a', 256);
    long_name[256] = 0;
    CHECK_EQ_INT(wsk__socks5_connect_name(buf, long_name, 1), WSK_EURL);

    struct sockaddr_in a4 = {.sin_family = AF_INET};
    inet_pton(AF_INET, "192.0.2.7", &a4.sin_addr);
    CHECK_EQ_INT(wsk__socks5_connect_addr(buf, &a4, 443), 10);
    CHECK_MEM(buf, "\x05\x01\x00\x01\xc0\x00\x02\x07\x01\xbb", 10);
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, "::1", &a6.sin6_addr);
    CHECK_EQ_INT(wsk__socks5_connect_addr(buf, &a6, 80), 22);
    CHECK_EQ_INT(buf[3], 4);
    CHECK_EQ_INT(buf[19], 1);

    /* Replies: complete only when the whole address is in. */
    const uint8_t r4[] = {5, 0, 0, 1, 127, 0, 0, 1, 0x04, 0x38};
    for (size_t i = 0; i < sizeof r4; i++)
        CHECK_EQ_INT(wsk__socks5_reply(r4, i), 0);
    CHECK_EQ_INT(wsk__socks5_reply(r4, sizeof r4), 10);
    CHECK_EQ_INT(wsk__socks5_reply(r4, sizeof r4 + 0), 10);
    const uint8_t rn[] = {5, 5, 0, 3, 3, 'a', 'b', 'c', 0, 80, 0xEE};
    CHECK_EQ_INT(wsk__socks5_reply(rn, 9), 0);
    CHECK_EQ_INT(wsk__socks5_reply(rn, 10), 10);
    CHECK_EQ_INT(wsk__socks5_reply(rn, 11), 10);
    const uint8_t r6[22] = {5, 0, 0, 4};
    CHECK_EQ_INT(wsk__socks5_reply(r6, 21), 0);
    CHECK_EQ_INT(wsk__socks5_reply(r6, 22), 22);
    CHECK_EQ_INT(wsk__socks5_reply((const uint8_t *)"\x04", 1), WSK_EPROXY);
    CHECK_EQ_INT(wsk__socks5_reply((const uint8_t *)"\x05\x00\x01", 3), WSK_EPROXY);
    CHECK_EQ_INT(wsk__socks5_reply((const uint8_t *)"\x05\x00\x00\x02\x00", 5), WSK_EPROXY);
    CHECK_STR(wsk__socks5_reply_text(5), "connection refused");
    CHECK_STR(wsk__socks5_reply_text(200), "unknown reply code");
}

static void clear_env(void)
{
    static const char *const vars[] = {"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
                                       "all_proxy",  "ALL_PROXY",  "no_proxy",    "NO_PROXY"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
}

static const char *from_env(const char *url)
{
    const char *p = wsk_proxy_from_env(url);
    return p ? p : "(none)";
}

static void test_from_env(void)
{
    clear_env();
    CHECK_STR(from_env("ws://a.example/"), "(none)");
    setenv("http_proxy", "http://hp:1", 1);
    setenv("https_proxy", "http://sp:1", 1);
    CHECK_STR(from_env("ws://a.example/"), "http://hp:1");
    CHECK_STR(from_env("wss://a.example/"), "http://sp:1");
    CHECK_STR(from_env("https://a.example/"), "http://sp:1");
    /* Loopback is never proxied. */
    CHECK_STR(from_env("ws://127.0.0.1:9/"), "(none)");
    CHECK_STR(from_env("wss://localhost/"), "(none)");
    CHECK_STR(from_env("ws://[::1]:9/"), "(none)");
    /* HTTP_PROXY is ignored; HTTPS_PROXY and ALL_PROXY are read. */
    clear_env();
    setenv("HTTP_PROXY", "http://cgi:1", 1);
    CHECK_STR(from_env("ws://a.example/"), "(none)");
    setenv("ALL_PROXY", "socks5h://all:1", 1);
    CHECK_STR(from_env("ws://a.example/"), "socks5h://all:1");
    setenv("HTTPS_PROXY", "http://S:1", 1);
    CHECK_STR(from_env("wss://a.example/"), "http://S:1");
    setenv("all_proxy", "socks5://lower:1", 1);
    CHECK_STR(from_env("ws://a.example/"), "socks5://lower:1");
    /* An empty variable counts as unset. */
    setenv("https_proxy", "", 1);
    CHECK_STR(from_env("wss://a.example/"), "http://S:1");
    /* no_proxy, then NO_PROXY. */
    setenv("NO_PROXY", "example", 1);
    CHECK_STR(from_env("ws://a.example/"), "(none)");
    CHECK_STR(from_env("ws://a.example.org/"), "socks5://lower:1");
    setenv("no_proxy", "10.0.0.0/8", 1);
    CHECK_STR(from_env("ws://a.example/"), "socks5://lower:1"); /* no_proxy wins over NO_PROXY */
    CHECK_STR(from_env("ws://10.9.8.7/"), "(none)");
    setenv("no_proxy", "*", 1);
    CHECK_STR(from_env("wss://anything/"), "(none)");
    CHECK(wsk_proxy_from_env(NULL) == NULL);
    CHECK(wsk_proxy_from_env("not a url") == NULL);
    clear_env();
}

int main(void)
{
    WSK_RUN(test_parse_good);
    WSK_RUN(test_parse_bad);
    WSK_RUN(test_no_proxy);
    WSK_RUN(test_connect_request);
    WSK_RUN(test_socks5);
    WSK_RUN(test_from_env);
    WSK_TEST_END();
}
