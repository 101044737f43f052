/* TLS on raw TCP clients (src/net/tcp_client.c, cfg.tls in wsk/net.h),
 * against the library's own TLS server (a wsk_server with a certificate and
 * static files) and plain TCP servers that do not speak TLS: verification
 * by name and by address, an untrusted CA, a name mismatch, --insecure, an
 * unusable CA file, a peer that closes or stalls during the handshake, and
 * a 512 KiB download read with pauses (bytes TLS decrypted while paused
 * must still arrive). Certificates come from the openssl command, as in
 * tests/ws/conn_test.c. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "ws/ws_loop.h"

#define FILE_LEN (512 * 1024)

struct client {
    struct wsk_tcp *t;
    int n_open, n_closed, error;
    char detail[256];
    uint8_t *got;
    size_t got_len;
    bool pause_on_data;
    const char *request;
};

static void c_open(struct wsk_tcp *t, void *ud)
{
    struct client *c = ud;
    c->n_open++;
    if (c->request)
        CHECK_EQ_INT(wsk_tcp_send(t, c->request, strlen(c->request)), 0);
}

static void c_data(struct wsk_tcp *t, const uint8_t *data, size_t len, void *ud)
{
    struct client *c = ud;
    if (c->got_len + len <= FILE_LEN + 4096) {
        memcpy(c->got + c->got_len, data, len);
        c->got_len += len;
    }
    if (c->pause_on_data)
        wsk_tcp_pause(t, true);
}

static void c_close(struct wsk_tcp *t, int error, void *ud)
{
    struct client *c = ud;
    c->n_closed++;
    c->error = error;
    snprintf(c->detail, sizeof c->detail, "%s", wsk_tcp_error_detail(t));
    c->t = NULL;
}

static char log_first[512];

static void log_cb(int level, const char *msg, void *ud)
{
    (void)ud;
    if (level == 0 && !log_first[0])
        snprintf(log_first, sizeof log_first, "%s", msg);
}

static char dir[64], ca[96], cert[96], key[96];
static uint16_t tls_port; /* the TLS server's */

static struct wsk_tcp *connect_to(struct client *c, const char *host, uint16_t port,
                                  const char *ca_file, const char *server_name, bool insecure)
{
    struct wsk_tcp_config cfg;
    wsk_tcp_config_init(&cfg);
    cfg.handlers =
        (struct wsk_tcp_handlers){.on_open = c_open, .on_data = c_data, .on_close = c_close};
    cfg.user_data = c;
    cfg.log = log_cb;
    cfg.tls = true;
    cfg.ca_file = ca_file;
    cfg.server_name = server_name;
    cfg.insecure = insecure;
    cfg.connect_timeout_ms = 5000;
    CHECK_EQ_INT(wsk_tcp_connect(&c->t, loop, host, port, &cfg), 0);
    return c->t;
}

/* A throwaway CA, a certificate for localhost and 127.0.0.1, and a static
 * directory holding big.bin. */
static bool make_pki(void)
{
    strcpy(dir, "/tmp/wsk-tcp-tls-XXXXXX");
    if (!mkdtemp(dir))
        return false;
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "-keyout ca.key -out ca.pem -days 2 -subj /CN=wsk-test-ca >/dev/null 2>&1 && "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout srv.key "
             "-out srv.csr -subj /CN=localhost >/dev/null 2>&1 && "
             "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ext.cnf && "
             "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
             "-out srv.pem -days 2 -extfile ext.cnf >/dev/null 2>&1 && mkdir www",
             dir);
    if (system(cmd) != 0)
        return false;
    snprintf(ca, sizeof ca, "%s/ca.pem", dir);
    snprintf(cert, sizeof cert, "%s/srv.pem", dir);
    snprintf(key, sizeof key, "%s/srv.key", dir);
    char path[128];
    snprintf(path, sizeof path, "%s/www/big.bin", dir);
    FILE *f = fopen(path, "wb");
    if (!f)
        return false;
    for (size_t i = 0; i < FILE_LEN; i++)
        fputc((int)((i * 7 + i / 4096) & 0xff), f);
    return fclose(f) == 0;
}

static bool body_is_file(const struct client *c)
{
    if (c->got_len < FILE_LEN)
        return false;
    const uint8_t *body = c->got + c->got_len - FILE_LEN;
    for (size_t i = 0; i < FILE_LEN; i++)
        if (body[i] != (uint8_t)((i * 7 + i / 4096) & 0xff))
            return false;
    return true;
}

static const char get_big[] =
    "GET /big.bin HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

static void test_tls_download(void)
{
    uint16_t port = tls_port;
    /* Verified by name, read straight through. */
    struct client c = {.got = malloc(FILE_LEN + 4096), .request = get_big};
    connect_to(&c, "localhost", port, ca, NULL, false);
    CHECK_EQ_INT(c.n_closed, 0);
    RUN_UNTIL(c.n_closed == 1, 10000);
    CHECK_EQ_INT(c.n_open, 1);
    CHECK_EQ_INT(c.error, 0);
    CHECK(c.got_len > 12 && memcmp(c.got, "HTTP/1.1 200", 12) == 0);
    CHECK(body_is_file(&c));

    /* By address, pausing after every read: records TLS decrypted while we
     * were paused come out when we resume. */
    memset(c.got, 0, FILE_LEN + 4096);
    c.got_len = 0;
    c.n_open = c.n_closed = 0;
    c.pause_on_data = true;
    connect_to(&c, "127.0.0.1", port, ca, NULL, false);
    uint64_t end = now_ms() + 20000;
    while (c.n_closed == 0 && now_ms() < end) {
        run_for(1);
        if (c.t)
            wsk_tcp_pause(c.t, false);
    }
    CHECK_EQ_INT(c.n_closed, 1);
    CHECK_EQ_INT(c.error, 0);
    CHECK(body_is_file(&c));
    free(c.got);
}

static void test_tls_verification(void)
{
    uint16_t port = tls_port;
    /* The system's store does not know the test CA. */
    struct client c = {0};
    connect_to(&c, "localhost", port, NULL, NULL, false);
    RUN_UNTIL(c.n_closed == 1, 10000);
    CHECK_EQ_INT(c.n_open, 0);
    CHECK_EQ_INT(c.error, WSK_ETLS);
    CHECK(strstr(c.detail, "certificate verify failed") != NULL);

    /* The right CA, the wrong name. */
    memset(&c, 0, sizeof c);
    connect_to(&c, "127.0.0.1", port, ca, "other.example", false);
    RUN_UNTIL(c.n_closed == 1, 10000);
    CHECK_EQ_INT(c.n_open, 0);
    CHECK_EQ_INT(c.error, WSK_ETLS);
    CHECK(strstr(c.detail, "hostname mismatch") != NULL);
    if (!strstr(c.detail, "hostname mismatch"))
        fprintf(stderr, "  detail: %s\n", c.detail);

    /* Unless nothing is verified. */
    memset(&c, 0, sizeof c);
    c.request = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    c.got = malloc(FILE_LEN + 4096);
    connect_to(&c, "127.0.0.1", port, NULL, "other.example", true);
    RUN_UNTIL(c.n_closed == 1, 10000);
    CHECK_EQ_INT(c.n_open, 1);
    CHECK(c.got_len > 9 && memcmp(c.got, "HTTP/1.1 ", 9) == 0);
    free(c.got);

    /* A CA file that cannot be read: refused at once, no on_close. */
    memset(&c, 0, sizeof c);
    log_first[0] = '\0';
    struct wsk_tcp_config cfg;
    wsk_tcp_config_init(&cfg);
    cfg.handlers.on_close = c_close;
    cfg.user_data = &c;
    cfg.log = log_cb;
    cfg.tls = true;
    cfg.ca_file = "/nonexistent/ca.pem";
    struct wsk_tcp *t = NULL;
    CHECK_EQ_INT(wsk_tcp_connect(&t, loop, "localhost", port, &cfg), WSK_ETLS);
    CHECK(t == NULL);
    CHECK(strstr(log_first, "cannot read CA file /nonexistent/ca.pem") != NULL);
    /* A name TLS cannot carry. */
    char long_name[300];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    cfg.ca_file = NULL;
    cfg.server_name = long_name;
    CHECK_EQ_INT(wsk_tcp_connect(&t, loop, "localhost", port, &cfg), -EINVAL);
    run_for(5);
    CHECK_EQ_INT(c.n_closed, 0);
}

/* Plain TCP servers: one that closes at once, one that never answers. */
static int plain_opened;
static bool plain_close_at_once;

static void plain_open(struct wsk_tcp *t, void *ud)
{
    (void)ud;
    plain_opened++;
    if (plain_close_at_once)
        wsk_tcp_close(t);
}

static void test_tls_against_plain_servers(void)
{
    struct wsk_tcp_config scfg;
    wsk_tcp_config_init(&scfg);
    scfg.handlers.on_open = plain_open;
    struct wsk_tcp_server *srv = NULL;
    CHECK_EQ_INT(wsk_tcp_server_new(&srv, loop, &scfg), 0);
    int port = wsk_tcp_server_listen(srv, "127.0.0.1", 0);
    CHECK(port > 0);

    plain_close_at_once = true;
    struct client c = {0};
    connect_to(&c, "127.0.0.1", (uint16_t)port, ca, NULL, false);
    RUN_UNTIL(c.n_closed == 1, 10000);
    CHECK_EQ_INT(c.n_open, 0);
    CHECK(c.error == WSK_ETLS || c.error == -ECONNRESET);
    CHECK(c.detail[0] != '\0');

    /* A peer that accepts and says nothing: the connect timeout covers the
     * handshake. */
    plain_close_at_once = false;
    memset(&c, 0, sizeof c);
    struct wsk_tcp_config cfg;
    wsk_tcp_config_init(&cfg);
    cfg.handlers =
        (struct wsk_tcp_handlers){.on_open = c_open, .on_data = c_data, .on_close = c_close};
    cfg.user_data = &c;
    cfg.tls = true;
    cfg.ca_file = ca;
    cfg.connect_timeout_ms = 200;
    uint64_t t0 = now_ms();
    CHECK_EQ_INT(wsk_tcp_connect(&c.t, loop, "127.0.0.1", (uint16_t)port, &cfg), 0);
    RUN_UNTIL(c.n_closed == 1, 5000);
    CHECK_EQ_INT(c.error, -ETIMEDOUT);
    CHECK_EQ_INT(c.n_open, 0);
    CHECK(now_ms() - t0 >= 150);

    /* Closing a client in its handshake ends it at once. */
    memset(&c, 0, sizeof c);
    cfg.connect_timeout_ms = 5000;
    CHECK_EQ_INT(wsk_tcp_connect(&c.t, loop, "127.0.0.1", (uint16_t)port, &cfg), 0);
    int opened_before = plain_opened;
    RUN_UNTIL(plain_opened > opened_before, 5000);
    run_for(20);
    CHECK_EQ_INT(c.n_closed, 0);
    if (c.t)
        CHECK_EQ_INT(wsk_tcp_close(c.t), 0);
    CHECK_EQ_INT(c.n_closed, 1);
    CHECK_EQ_INT(c.error, WSK_ECLOSED);

    wsk_tcp_server_free(srv);
    run_for(10);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    CHECK_EQ_INT(wsk_loop_new(&loop, wsk_test_loop_cfg()), 0);
    if (!make_pki()) {
        printf("skip: openssl could not make certificates\n");
        WSK_TEST_END();
    }
    char www[96];
    snprintf(www, sizeof www, "%s/www", dir);
    struct wsk_server_config cfg;
    wsk_server_config_init(&cfg);
    cfg.tls_cert_file = cert;
    cfg.tls_key_file = key;
    cfg.static_dir = www;
    struct wsk_server *srv = NULL;
    CHECK_EQ_INT(wsk_server_new(&srv, loop, &cfg), 0);
    CHECK(wsk_server_listen(srv, "127.0.0.1", 0) > 0);
    tls_port = wsk_server_port(srv);

    WSK_RUN(test_tls_download);
    WSK_RUN(test_tls_verification);
    WSK_RUN(test_tls_against_plain_servers);

    wsk_server_free(srv);
    run_for(20);
    CHECK_EQ_INT(wsk_loop_free(loop), 0);
    char rm[128];
    snprintf(rm, sizeof rm, "rm -rf %s", dir);
    CHECK_EQ_INT(system(rm), 0);
    WSK_TEST_END();
}
