/* Tests for the URL parser (src/proto/url.c).
 *
 * Every URL is parsed from a copy that ends right before an unreadable page,
 * so a read past len crashes; every slice of a success must lie inside that
 * copy (or be the static "/" of an absent path). */
#include <sys/mman.h>
#include <unistd.h>

#include "wsk/url.h"
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
    memcpy(end - len, s, len);
    return end - len;
}

static bool within(struct wsk_slice s, const char *buf, size_t len)
{
    return s.ptr >= buf && s.len <= len && (size_t)(s.ptr - buf) <= len - s.len;
}

static int parse(const char *url, struct wsk_url *u)
{
    size_t len = strlen(url);
    const char *buf = guarded_copy(url, len);
    int rv = wsk_url_parse(buf, len, u);
    if (rv == 0) {
        CHECK(within(u->host, buf, len) && u->host.len > 0);
        CHECK(within(u->query, buf, len));
        CHECK(within(u->path, buf, len) || (u->path.len == 1 && u->path.ptr[0] == '/'));
        CHECK(u->port > 0);
        CHECK(u->error == NULL);
    } else {
        CHECK_EQ_INT(rv, WSK_EURL);
        CHECK(u->error != NULL && u->error[0] != '\0');
        CHECK(u->error_at <= len);
    }
    return rv;
}

static bool slice_is(struct wsk_slice s, const char *z)
{
    return s.len == strlen(z) && memcmp(s.ptr, z, s.len) == 0;
}

static void expect(const char *url, enum wsk_url_scheme scheme, const char *host, unsigned port,
                   const char *path, const char *query, const char *target, const char *host_header)
{
    struct wsk_url u;
    if (parse(url, &u) != 0) {
        fprintf(stderr, "  refused '%s': %s at %zu\n", url, u.error, u.error_at);
        CHECK(!"URL refused");
        return;
    }
    CHECK_EQ_INT(u.scheme, scheme);
    CHECK(slice_is(u.host, host));
    CHECK_EQ_INT(u.port, port);
    CHECK(slice_is(u.path, path));
    CHECK(slice_is(u.query, query));
    char buf[256];
    CHECK_EQ_INT(wsk_url_request_target(&u, buf, sizeof buf), strlen(target));
    CHECK_STR(buf, target);
    CHECK_EQ_INT(wsk_url_host_header(&u, buf, sizeof buf), strlen(host_header));
    CHECK_STR(buf, host_header);
    if (!slice_is(u.host, host) || u.port != port || !slice_is(u.path, path) ||
        !slice_is(u.query, query))
        fprintf(stderr, "  in '%s'\n", url);
}

static void test_good(void)
{
    expect("ws://example.com", WSK_URL_WS, "example.com", 80, "/", "", "/", "example.com");
    expect("ws://example.com/", WSK_URL_WS, "example.com", 80, "/", "", "/", "example.com");
    expect("wss://example.com/chat", WSK_URL_WSS, "example.com", 443, "/chat", "", "/chat",
           "example.com");
    expect("ws://127.0.0.1:8080/a/b?x=1&y=2", WSK_URL_WS, "127.0.0.1", 8080, "/a/b", "x=1&y=2",
           "/a/b?x=1&y=2", "127.0.0.1:8080");
    expect("http://h", WSK_URL_HTTP, "h", 80, "/", "", "/", "h");
    expect("https://h:443/", WSK_URL_HTTPS, "h", 443, "/", "", "/", "h");
    expect("https://h:80/", WSK_URL_HTTPS, "h", 80, "/", "", "/", "h:80");
    expect("tcp://10.0.0.1:9000", WSK_URL_TCP, "10.0.0.1", 9000, "/", "", "/", "10.0.0.1:9000");
    expect("udp://localhost:53", WSK_URL_UDP, "localhost", 53, "/", "", "/", "localhost:53");
    /* Schemes without case; the host keeps its case. */
    expect("WS://Example.COM", WSK_URL_WS, "Example.COM", 80, "/", "", "/", "Example.COM");
    expect("wSs://a", WSK_URL_WSS, "a", 443, "/", "", "/", "a");
    expect("HTTPS://a", WSK_URL_HTTPS, "a", 443, "/", "", "/", "a");
    /* IPv6: brackets removed, put back in the Host header. */
    expect("ws://[::1]:9001/x", WSK_URL_WS, "::1", 9001, "/x", "", "/x", "[::1]:9001");
    expect("ws://[::1]", WSK_URL_WS, "::1", 80, "/", "", "/", "[::1]");
    expect("wss://[2001:DB8::a]/", WSK_URL_WSS, "2001:DB8::a", 443, "/", "", "/", "[2001:DB8::a]");
    expect("ws://[::ffff:192.0.2.1]:1", WSK_URL_WS, "::ffff:192.0.2.1", 1, "/", "", "/",
           "[::ffff:192.0.2.1]:1");
    /* A query without a path: the target still starts with '/'. */
    expect("ws://h?x", WSK_URL_WS, "h", 80, "/", "x", "/?x", "h");
    expect("ws://h?", WSK_URL_WS, "h", 80, "/", "", "/?", "h");
    expect("ws://h/?", WSK_URL_WS, "h", 80, "/", "", "/?", "h");
    expect("ws://h:81?q=1", WSK_URL_WS, "h", 81, "/", "q=1", "/?q=1", "h:81");
    /* Fragments are dropped. */
    expect("http://h/p?q#frag", WSK_URL_HTTP, "h", 80, "/p", "q", "/p?q", "h");
    expect("http://h#f", WSK_URL_HTTP, "h", 80, "/", "", "/", "h");
    expect("http://h/#a#b?c", WSK_URL_HTTP, "h", 80, "/", "", "/", "h");
    /* '@', ':' and '[' after the authority are path bytes. */
    expect("ws://h/a@b:c[d]", WSK_URL_WS, "h", 80, "/a@b:c[d]", "", "/a@b:c[d]", "h");
    expect("ws://h/p?u=a@b", WSK_URL_WS, "h", 80, "/p", "u=a@b", "/p?u=a@b", "h");
    /* Ports: limits, leading zeros. */
    expect("ws://h:65535", WSK_URL_WS, "h", 65535, "/", "", "/", "h:65535");
    expect("ws://h:1", WSK_URL_WS, "h", 1, "/", "", "/", "h:1");
    expect("ws://h:0080/", WSK_URL_WS, "h", 80, "/", "", "/", "h");
    expect("ws://h:000000000000000000000443", WSK_URL_WS, "h", 443, "/", "", "/", "h:443");
    /* reg-name: sub-delims and unreserved are allowed. */
    expect("ws://a-b_c.d~e!$&'()*+,;=", WSK_URL_WS, "a-b_c.d~e!$&'()*+,;=", 80, "/", "", "/",
           "a-b_c.d~e!$&'()*+,;=");
    /* Non-ASCII and percent escapes pass through in the path untouched. */
    expect("ws://h/caf\xc3\xa9/%20x", WSK_URL_WS, "h", 80, "/caf\xc3\xa9/%20x", "",
           "/caf\xc3\xa9/%20x", "h");

    struct wsk_url u;
    CHECK_EQ_INT(parse("ws://h:80/", &u), 0);
    CHECK(u.has_port && !u.has_query && !u.has_fragment && !u.is_ipv6);
    CHECK_EQ_INT(parse("ws://[::1]?a#b", &u), 0);
    CHECK(!u.has_port && u.has_query && u.has_fragment && u.is_ipv6);
}

static void expect_bad(const char *url, const char *why_part)
{
    struct wsk_url u;
    if (parse(url, &u) == 0) {
        fprintf(stderr, "  accepted '%s'\n", url);
        CHECK(!"URL accepted");
        return;
    }
    if (why_part && !strstr(u.error, why_part)) {
        fprintf(stderr, "  '%s': error '%s', expected it to mention '%s'\n", url, u.error,
                why_part);
        CHECK(!"wrong error");
    }
}

static void test_bad(void)
{
    expect_bad("", "scheme://");
    expect_bad("example.com", "scheme://");
    expect_bad("ws:", "scheme://");
    expect_bad("ws:/h", "scheme://");
    expect_bad("ws:h", "scheme://");
    expect_bad("://h", "scheme://");
    expect_bad("1ws://h", "scheme://");
    expect_bad("ftp://h", "unknown scheme");
    expect_bad("wsx://h", "unknown scheme");
    expect_bad("w://h", "unknown scheme");
    expect_bad("ws+unix://h", "scheme://");
    /* Hosts. */
    expect_bad("ws://", "empty host");
    expect_bad("ws:///path", "empty host");
    expect_bad("ws://:80/", "empty host");
    expect_bad("ws://?q", "empty host");
    expect_bad("ws://[]", "IPv6");
    expect_bad("ws://[::1", "']'");
    expect_bad("ws://[::1/]", "']'");
    expect_bad("ws://[1.2.3.4]", "IPv6");
    expect_bad("ws://[fe80::1%25eth0]", "IPv6");
    expect_bad("ws://[v1.x]", "IPv6");
    expect_bad("ws://[::1]x", "after the host");
    expect_bad("ws://[::1]]", "after the host");
    expect_bad("ws://a[b]", "host");
    expect_bad("ws://a b", "host");
    expect_bad("ws://a\tb", "host");
    expect_bad("ws://a%20b", "host");
    expect_bad("ws://h\x7f", "host");
    expect_bad("ws://caf\xc3\xa9", "host");
    expect_bad("ws://a\\b", "host");
    /* Userinfo, wherever it sits in the authority. */
    expect_bad("ws://user:pass@h/", "userinfo");
    expect_bad("ws://user@h", "userinfo");
    expect_bad("ws://@h", "userinfo");
    expect_bad("ws://h@", "userinfo");
    expect_bad("ws://[::1]@h", "userinfo");
    /* Ports. */
    expect_bad("ws://h:", "empty port");
    expect_bad("ws://h:/", "empty port");
    expect_bad("ws://h:0", "port 0");
    expect_bad("ws://h:00", "port 0");
    expect_bad("ws://h:65536", "65535");
    expect_bad("ws://h:99999999999999999999999", "65535");
    expect_bad("ws://h:-1", "number");
    expect_bad("ws://h:+80", "number");
    expect_bad("ws://h:8o", "number");
    expect_bad("ws://h: 80", "number");
    expect_bad("ws://h:80:81", "number");
    expect_bad("ws://[::1]:", "empty port");
    expect_bad("tcp://h", "port is required");
    expect_bad("udp://h/", "port is required");
    expect_bad("tcp://[::1]", "port is required");
    /* Targets. */
    expect_bad("ws://h/a b", "path");
    expect_bad("ws://h/a\r\nX: y", "path");
    expect_bad("ws://h/\x7f", "path");
    expect_bad("ws://h/?a b", "query");
    expect_bad("ws://h?\n", "query");
    expect_bad("ws://h/#a b", "fragment");

    /* NUL inside len is a control character, not an end. */
    struct wsk_url u;
    static const char nul_path[] = "ws://h/a\0b";
    CHECK_EQ_INT(wsk_url_parse(nul_path, sizeof nul_path - 1, &u), WSK_EURL);
    static const char nul_host[] = "ws://h\0x/";
    CHECK_EQ_INT(wsk_url_parse(nul_host, sizeof nul_host - 1, &u), WSK_EURL);
    /* len is respected: the rest of the string is not read. */
    CHECK_EQ_INT(wsk_url_parse("ws://h:80 junk", 9, &u), 0);
    CHECK_EQ_INT(u.port, 80);
    CHECK_EQ_INT(wsk_url_parse("ws://h/x y", 8, &u), 0);
    CHECK(slice_is(u.path, "/x"));
    CHECK_EQ_INT(wsk_url_parse(NULL, 0, &u), WSK_EURL);
    CHECK_EQ_INT(wsk_url_parse("ws://h", 0, &u), WSK_EURL);
}

static void test_error_position(void)
{
    struct wsk_url u;
    CHECK_EQ_INT(parse("ws://user:pw@host/", &u), WSK_EURL);
    CHECK_EQ_INT(u.error_at, 12);
    CHECK_EQ_INT(parse("ws://host:12x/", &u), WSK_EURL);
    CHECK_EQ_INT(u.error_at, 12);
    CHECK_EQ_INT(parse("ws://host/a b", &u), WSK_EURL);
    CHECK_EQ_INT(u.error_at, 11);
}

static void test_buffers(void)
{
    struct wsk_url u;
    CHECK_EQ_INT(parse("ws://[::1]:8080/path?q", &u), 0);
    const char *target = "/path?q", *host = "[::1]:8080";
    for (size_t cap = 0; cap <= strlen(target); cap++) {
        char buf[16];
        CHECK_EQ_INT(wsk_url_request_target(&u, cap ? buf : NULL, cap), WSK_ENOSPC);
    }
    for (size_t cap = 0; cap <= strlen(host); cap++) {
        char buf[16];
        CHECK_EQ_INT(wsk_url_host_header(&u, cap ? buf : NULL, cap), WSK_ENOSPC);
    }
    char buf[16];
    CHECK_EQ_INT(wsk_url_request_target(&u, buf, strlen(target) + 1), strlen(target));
    CHECK_STR(buf, target);
    CHECK_EQ_INT(wsk_url_host_header(&u, buf, strlen(host) + 1), strlen(host));
    CHECK_STR(buf, host);
    /* The documented bounds: URL length + 1 for the target, host.len + 9 for
     * the Host header. */
    const char *longest = "tcp://[::1]:65535?";
    CHECK_EQ_INT(parse(longest, &u), 0);
    char small[32];
    CHECK(wsk_url_request_target(&u, small, strlen(longest) + 1) > 0);
    CHECK(wsk_url_host_header(&u, small, u.host.len + 9) > 0);

    CHECK_EQ_INT(wsk_url_default_port(WSK_URL_WS), 80);
    CHECK_EQ_INT(wsk_url_default_port(WSK_URL_WSS), 443);
    CHECK_EQ_INT(wsk_url_default_port(WSK_URL_HTTP), 80);
    CHECK_EQ_INT(wsk_url_default_port(WSK_URL_HTTPS), 443);
    CHECK_EQ_INT(wsk_url_default_port(WSK_URL_TCP), 0);
    CHECK_EQ_INT(wsk_url_default_port(WSK_URL_UDP), 0);
}

/* Every prefix of good URLs, and every one-byte change, either parses with
 * slices inside the input or fails with a message: nothing in between. */
static void test_prefixes_and_mutations(void)
{
    static const char *const urls[] = {
        "wss://user@[2001:db8::1]:65535/a/b?c=d#e",
        "tcp://127.0.0.1:9/",
        "ws://example.com:8080/chat?room=1",
    };
    static const char bytes[] = {'\0', ' ', '/', ':', '?', '#',   '@',
                                 '[',  ']', '%', '0', 'a', '\x80'};
    struct wsk_url u;
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        char buf[64];
        size_t len = strlen(urls[i]);
        for (size_t n = 0; n <= len; n++) {
            const char *g = guarded_copy(urls[i], n);
            int rv = wsk_url_parse(g, n, &u);
            CHECK(rv == 0 || rv == WSK_EURL);
            if (rv == 0)
                CHECK(within(u.host, g, n) && within(u.query, g, n) && u.host.len > 0);
        }
        for (size_t at = 0; at < len; at++) {
            for (size_t b = 0; b < sizeof bytes; b++) {
                memcpy(buf, urls[i], len);
                buf[at] = bytes[b];
                const char *g = guarded_copy(buf, len);
                int rv = wsk_url_parse(g, len, &u);
                CHECK(rv == 0 || rv == WSK_EURL);
                if (rv == 0)
                    CHECK(within(u.host, g, len) && within(u.query, g, len) && u.port > 0);
            }
        }
    }
}

/* ---- resolving references ------------------------------------------------ */

/* Resolves ref (from a guarded copy) against base and checks the result
 * against want (NULL: WSK_EURL), the documented bound and every smaller
 * buffer. */
static void expect_resolve(const char *base, const char *ref, const char *want)
{
    size_t base_len = strlen(base), ref_len = strlen(ref), bound = base_len + ref_len + 2;
    const char *g = guarded_copy(ref, ref_len);
    char out[512];
    int rv = wsk_url_resolve(base, base_len, g, ref_len, out, bound);
    if (!want) {
        CHECK_EQ_INT(rv, WSK_EURL);
        if (rv != WSK_EURL)
            fprintf(stderr, "  '%s' against '%s' gave '%s'\n", ref, base, rv > 0 ? out : "");
        return;
    }
    CHECK_EQ_INT(rv, strlen(want));
    if (rv < 0) {
        fprintf(stderr, "  '%s' against '%s' failed: %s\n", ref, base, wsk_strerror(rv));
        return;
    }
    CHECK_STR(out, want);
    struct wsk_url u;
    CHECK_EQ_INT(wsk_url_parse(out, (size_t)rv, &u), 0);
    for (size_t cap = 0; cap <= (size_t)rv; cap++)
        CHECK_EQ_INT(wsk_url_resolve(base, base_len, g, ref_len, cap ? out : NULL, cap),
                     WSK_ENOSPC);
}

/* RFC 3986 section 5.4, all of it, but the two results that are not http
 * URLs ("g:h" and strict "http:g"), which wsk_url_parse() refuses. */
static void test_resolve_rfc3986(void)
{
    static const char *const cases[][2] = {
        {"g:h", NULL},
        {"g", "http://a/b/c/g"},
        {"./g", "http://a/b/c/g"},
        {"g/", "http://a/b/c/g/"},
        {"/g", "http://a/g"},
        {"//g", "http://g"},
        {"?y", "http://a/b/c/d;p?y"},
        {"g?y", "http://a/b/c/g?y"},
        {"#s", "http://a/b/c/d;p?q#s"},
        {"g#s", "http://a/b/c/g#s"},
        {"g?y#s", "http://a/b/c/g?y#s"},
        {";x", "http://a/b/c/;x"},
        {"g;x", "http://a/b/c/g;x"},
        {"g;x?y#s", "http://a/b/c/g;x?y#s"},
        {"", "http://a/b/c/d;p?q"},
        {".", "http://a/b/c/"},
        {"./", "http://a/b/c/"},
        {"..", "http://a/b/"},
        {"../", "http://a/b/"},
        {"../g", "http://a/b/g"},
        {"../..", "http://a/"},
        {"../../", "http://a/"},
        {"../../g", "http://a/g"},
        /* 5.4.2, abnormal examples. */
        {"../../../g", "http://a/g"},
        {"../../../../g", "http://a/g"},
        {"/./g", "http://a/g"},
        {"/../g", "http://a/g"},
        {"g.", "http://a/b/c/g."},
        {".g", "http://a/b/c/.g"},
        {"g..", "http://a/b/c/g.."},
        {"..g", "http://a/b/c/..g"},
        {"./../g", "http://a/b/g"},
        {"./g/.", "http://a/b/c/g/"},
        {"g/./h", "http://a/b/c/g/h"},
        {"g/../h", "http://a/b/c/h"},
        {"g;x=1/./y", "http://a/b/c/g;x=1/y"},
        {"g;x=1/../y", "http://a/b/c/y"},
        {"g?y/./x", "http://a/b/c/g?y/./x"},
        {"g?y/../x", "http://a/b/c/g?y/../x"},
        {"g#s/./x", "http://a/b/c/g#s/./x"},
        {"g#s/../x", "http://a/b/c/g#s/../x"},
        {"http:g", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_resolve("http://a/b/c/d;p?q", cases[i][0], cases[i][1]);
}

static void test_resolve(void)
{
    /* Redirects as servers send them. */
    expect_resolve("http://h:8080/a/b", "https://other.example/x?y", "https://other.example/x?y");
    expect_resolve("https://h/a/b", "//cdn.example:444/p", "https://cdn.example:444/p");
    expect_resolve("http://h:8080/a/b?q#f", "/login?next=%2F", "http://h:8080/login?next=%2F");
    expect_resolve("http://h:8080/a/b", "c", "http://h:8080/a/c");
    expect_resolve("http://h:8080/a/b/", "c", "http://h:8080/a/b/c");
    expect_resolve("http://h:8080", "c", "http://h:8080/c");
    expect_resolve("http://h:8080?x", "", "http://h:8080/?x");
    expect_resolve("http://[::1]:8080/a/b", "../c", "http://[::1]:8080/c");
    expect_resolve("HTTP://H/a", "b", "http://H/b");
    expect_resolve("http://h/a", "HTTPS://O/./p/../q", "HTTPS://O/q");
    expect_resolve("http://h/a#frag", "b", "http://h/b");
    expect_resolve("http://h/%2e%2e/a", "b", "http://h/%2e%2e/b");
    expect_resolve("http://h/a", "b//c/./../d", "http://h/b//d");
    expect_resolve("http://h/a", "/", "http://h/");

    /* What cannot become a URL of ours. */
    expect_resolve("http://h/a", "b c", NULL);
    expect_resolve("http://h/a", "b\r\nSet-Cookie: x", NULL);
    expect_resolve("http://h/a", "ftp://h/", NULL);
    expect_resolve("http://h/a", "//user:pw@evil/", NULL);
    expect_resolve("http://h/a", "//", NULL);
    expect_resolve("http://h/a", "http:/x", NULL);
    expect_resolve("not a url", "b", NULL);
    char out[64];
    CHECK_EQ_INT(wsk_url_resolve("http://h/", 9, NULL, 0, out, sizeof out), WSK_EURL);
    CHECK_EQ_INT(wsk_url_resolve(NULL, 0, "x", 1, out, sizeof out), WSK_EURL);
    /* A NUL in ref is a control character, not an end. */
    CHECK_EQ_INT(wsk_url_resolve("http://h/", 9, "a\0b", 3, out, sizeof out), WSK_EURL);
}

/* Random references from URL-ish bytes: a result parses and fits the
 * documented bound; nothing else but WSK_EURL. */
static void test_resolve_random(void)
{
    static const char alphabet[] = "/./..?#:@[]ab1%; \t";
    static const char *const bases[] = {"http://h/a/b?q", "https://[::1]:1/", "ws://x:9"};
    uint64_t seed = 7;
    for (int round = 0; round < 20000; round++) {
        char ref[24];
        size_t len = wsk_test_rand(&seed) % sizeof ref;
        for (size_t i = 0; i < len; i++)
            ref[i] = alphabet[wsk_test_rand(&seed) % (sizeof alphabet - 1)];
        const char *base = bases[round % 3];
        size_t bound = strlen(base) + len + 2;
        char out[64];
        const char *g = guarded_copy(ref, len);
        int rv = wsk_url_resolve(base, strlen(base), g, len, out, bound);
        CHECK(rv == WSK_EURL || (rv > 0 && (size_t)rv < bound));
        if (rv > 0) {
            struct wsk_url u;
            CHECK_EQ_INT(wsk_url_parse(out, (size_t)rv, &u), 0);
            /* No dot segment is left in the path (the query may have any). */
            char path[64];
            snprintf(path, sizeof path, "%.*s/", (int)u.path.len, u.path.ptr);
            CHECK(strstr(path, "/./") == NULL && strstr(path, "/../") == NULL);
        }
    }
}

int main(void)
{
    WSK_RUN(test_good);
    WSK_RUN(test_bad);
    WSK_RUN(test_error_position);
    WSK_RUN(test_buffers);
    WSK_RUN(test_prefixes_and_mutations);
    WSK_RUN(test_resolve_rfc3986);
    WSK_RUN(test_resolve);
    WSK_RUN(test_resolve_random);
    WSK_TEST_END();
}
