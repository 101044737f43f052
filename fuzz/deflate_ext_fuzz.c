/* Fuzz target for permessage-deflate negotiation. The first byte picks the
 * server's and the client's settings; the rest is Sec-WebSocket-Extensions
 * text, one header line per '\n'.
 *
 * The lines go through wsk_deflate_negotiate() as separate headers and
 * joined into one line with ','; both must give the same result. Whatever
 * the server answers must pass wsk_deflate_accept() for a client that
 * offered anything, with the same params, within the server's limits. The
 * text as a response goes through wsk_deflate_accept() for the chosen
 * client, whose limits a success must respect. Finally the chosen client's
 * own offer must be taken by the chosen server and accepted back. abort() on
 * any inconsistency. */
#include <stdlib.h>
#include <string.h>

#include "wsk/deflate.h"

#define MAX_LINES 16

static void check(bool ok)
{
    if (!ok)
        abort();
}

static const uint8_t bits_choice[4] = {0, 8, 12, 15};

static void configs(uint8_t opts, struct wsk_deflate_config *server,
                    struct wsk_deflate_config *client)
{
    wsk_deflate_config_init(server);
    wsk_deflate_config_init(client);
    server->enabled = client->enabled = true;
    server->server_no_context_takeover = opts & 1;
    server->client_no_context_takeover = opts & 2;
    server->server_max_window_bits = bits_choice[(opts >> 2) & 3];
    server->client_max_window_bits = bits_choice[(opts >> 4) & 3];
    client->server_no_context_takeover = opts & 0x40;
    client->client_no_context_takeover = opts & 0x80;
    client->server_max_window_bits = bits_choice[(opts >> 4) & 3];
    client->client_max_window_bits = bits_choice[(opts >> 2) & 3];
}

static uint8_t or15(uint8_t bits)
{
    return bits ? bits : 15;
}

static bool params_valid(const struct wsk_deflate_params *p)
{
    return p->server_max_window_bits >= 8 && p->server_max_window_bits <= 15 &&
           p->client_max_window_bits >= 8 && p->client_max_window_bits <= 15;
}

static bool params_same(const struct wsk_deflate_params *a, const struct wsk_deflate_params *b)
{
    return a->server_no_context_takeover == b->server_no_context_takeover &&
           a->client_no_context_takeover == b->client_no_context_takeover &&
           a->server_max_window_bits == b->server_max_window_bits &&
           a->client_max_window_bits == b->client_max_window_bits;
}

/* A server answer must be accepted by a client that offered everything,
 * with the same params. */
static void check_answer(int n, const char *resp, const struct wsk_deflate_params *sp,
                         const struct wsk_deflate_config *server)
{
    check(n == WSK_EHEXT || n >= 0);
    if (n <= 0)
        return;
    check(n < WSK_DEFLATE_HEADER_MAX && resp[n] == '\0' && strlen(resp) == (size_t)n);
    check(params_valid(sp));
    check(sp->server_max_window_bits <= or15(server->server_max_window_bits));
    check(sp->client_max_window_bits <= or15(server->client_max_window_bits));
    check(sp->server_no_context_takeover >= server->server_no_context_takeover);
    check(sp->client_no_context_takeover >= server->client_no_context_takeover);
    struct wsk_deflate_config any;
    wsk_deflate_config_init(&any);
    any.enabled = true;
    struct wsk_deflate_params cp;
    struct wsk_slice v = {resp, (size_t)n};
    check(wsk_deflate_accept(&v, &any, &cp) == 1);
    check(params_same(sp, &cp));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct wsk_deflate_config server, client;
    configs(data[0], &server, &client);
    const char *text = (const char *)data + 1;
    size_t len = size - 1;

    /* Lines as headers; past MAX_LINES the rest stays in the last line. */
    struct wsk_http_header h[MAX_LINES + 1];
    size_t n = 0, start = 0;
    h[n++].name = (struct wsk_slice){"Sec-WebSocket-Extensions", 24};
    for (size_t i = 0; i < len && n < MAX_LINES; i++) {
        if (text[i] == '\n') {
            h[n - 1].value = (struct wsk_slice){text + start, i - start};
            h[n++].name = (struct wsk_slice){"sec-websocket-extensions", 24};
            start = i + 1;
        }
    }
    h[n - 1].value = (struct wsk_slice){text + start, len - start};
    /* An unrelated header with a permessage-deflate offer changes nothing. */
    h[n].name = (struct wsk_slice){"X-Sec-WebSocket-Extensions", 26};
    h[n].value = (struct wsk_slice){"permessage-deflate", 18};

    char resp[WSK_DEFLATE_HEADER_MAX];
    struct wsk_deflate_params sp;
    int rv = wsk_deflate_negotiate(h, n + 1, &server, &sp, resp, sizeof resp);
    check_answer(rv, resp, &sp, &server);

    /* The same lines joined with ',' form the same list. */
    char *joined = malloc(len + MAX_LINES + 1);
    size_t jlen = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            joined[jlen++] = ',';
        if (h[i].value.len)
            memcpy(joined + jlen, h[i].value.ptr, h[i].value.len);
        jlen += h[i].value.len;
    }
    struct wsk_http_header one = {h[0].name, {joined, jlen}};
    char resp2[WSK_DEFLATE_HEADER_MAX];
    struct wsk_deflate_params sp2;
    int rv2 = wsk_deflate_negotiate(&one, 1, &server, &sp2, resp2, sizeof resp2);
    check(rv2 == rv);
    if (rv > 0)
        check(strcmp(resp, resp2) == 0 && params_same(&sp, &sp2));
    free(joined);

    /* A response too big for the buffer is refused, never truncated. */
    if (rv > 0) {
        char small[WSK_DEFLATE_HEADER_MAX];
        struct wsk_deflate_params sp3;
        check(wsk_deflate_negotiate(h, n, &server, &sp3, small, (size_t)rv) == WSK_ENOSPC);
    }

    /* The text as the server's response to the chosen client. */
    struct wsk_slice v = {text, len};
    struct wsk_deflate_params cp;
    rv = wsk_deflate_accept(&v, &client, &cp);
    check(rv == 0 || rv == 1 || rv == WSK_EHEXT);
    if (rv == 1) {
        check(params_valid(&cp));
        check(cp.server_max_window_bits <= or15(client.server_max_window_bits));
        check(cp.client_max_window_bits <= or15(client.client_max_window_bits));
        check(cp.server_no_context_takeover >= client.server_no_context_takeover);
        check(cp.client_no_context_takeover >= client.client_no_context_takeover);
    }

    /* The chosen client's own offer, to the chosen server and back. */
    char offer[WSK_DEFLATE_HEADER_MAX];
    int on = wsk_deflate_offer(offer, sizeof offer, &client);
    check(on > 0);
    struct wsk_http_header oh = {h[0].name, {offer, (size_t)on}};
    rv = wsk_deflate_negotiate(&oh, 1, &server, &sp, resp, sizeof resp);
    check(rv > 0);
    check_answer(rv, resp, &sp, &server);
    v = (struct wsk_slice){resp, (size_t)rv};
    check(wsk_deflate_accept(&v, &client, &cp) == 1);
    check(cp.server_no_context_takeover == sp.server_no_context_takeover);
    check(cp.client_no_context_takeover == sp.client_no_context_takeover);
    check(cp.server_max_window_bits == sp.server_max_window_bits);
    check(cp.client_max_window_bits <= sp.client_max_window_bits);
    return 0;
}
