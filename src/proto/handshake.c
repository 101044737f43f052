/* The WebSocket opening handshake (RFC 6455 section 4), without I/O.
 *
 * Both sides work on heads that http1.c has already parsed and write their
 * answers into caller buffers; nothing here allocates. SHA-1 and base64 are
 * the core's own (sha1.c), so the core needs no crypto library.
 *
 * Server (section 4.2.1): wsk_handshake_server_check() runs the checks in the
 * order below and answers with the first status that applies:
 *
 *      method GET ...................................... else 405
 *      HTTP/1.1 or later, exactly one Host ............. else 400
 *      Upgrade lists "websocket" ....................... else 400
 *      Connection lists "upgrade" ...................... else 400
 *      Sec-WebSocket-Version exactly "13" .............. else 426 (400 if repeated)
 *      one Sec-WebSocket-Key, base64 of 16 bytes ....... else 400
 *      every Origin in the allowed list, if any ........ else 403
 *      Sec-WebSocket-Protocol: pick by server preference
 *
 * Client (sections 4.1 and 4.2.2): wsk_handshake_client_verify() wants status
 * 101, Upgrade "websocket", Connection "upgrade", the exact
 * Sec-WebSocket-Accept for its key, and at most one subprotocol that it
 * offered.
 */
#include "wsk/proto.h"

#include <errno.h>
#include <string.h>

#include "proto/http1_internal.h"
#include "proto/sha1_internal.h"
#include "proto/text_internal.h"

/* RFC 6455 section 1.3. */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

#define ACCEPT_LEN 28 /* base64 of a 20-byte SHA-1 digest */
#define KEY_LEN    24 /* base64 of 16 bytes */

static const struct wsk_slice empty_slice = {"", 0};

static bool slice_equals_nocase(struct wsk_slice a, struct wsk_slice b)
{
    return wsk__slice_equals_nocase(a, b.ptr, b.len);
}

static bool slice_equals(struct wsk_slice a, struct wsk_slice b)
{
    return a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0;
}

static struct wsk_slice cstr_slice(const char *s)
{
    return (struct wsk_slice){s, strlen(s)};
}

static size_t header_count(const struct wsk_http_header *headers, size_t num_headers,
                           const char *name)
{
    struct wsk_slice n = cstr_slice(name);
    size_t count = 0;
    for (size_t i = 0; i < num_headers; i++)
        count += slice_equals_nocase(headers[i].name, n);
    return count;
}

static void compute_accept(const char *key, size_t key_len, char out[ACCEPT_LEN + 1])
{
    /* The key and the GUID are hashed in two steps, so a key of any length
     * works without a concatenation buffer. */
    struct wsk__sha1 sha;
    uint8_t md[20];
    wsk__sha1_init(&sha);
    wsk__sha1_update(&sha, key, key_len);
    wsk__sha1_update(&sha, ws_guid, sizeof ws_guid - 1);
    wsk__sha1_final(&sha, md);
    wsk__base64_encode(out, md, sizeof md);
}

void wsk_handshake_accept_key(const char *key, size_t key_len, char out[29])
{
    compute_accept(key, key_len, out);
}

void wsk_handshake_client_key(const uint8_t random16[16], char out[25])
{
    wsk__base64_encode(out, random16, 16);
}

static int base64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Sec-WebSocket-Key must decode to 16 bytes (RFC 6455 section 4.1, step 7).
 * Only the canonical encoding is accepted: 22 characters, the last of which
 * carries two data bits and four zero bits, then "==". */
static bool key_is_valid(struct wsk_slice key)
{
    if (key.len != KEY_LEN || key.ptr[22] != '=' || key.ptr[23] != '=')
        return false;
    for (size_t i = 0; i < 22; i++)
        if (base64_value((unsigned char)key.ptr[i]) < 0)
            return false;
    return (base64_value((unsigned char)key.ptr[21]) & 0x0f) == 0;
}

static bool origin_allowed(struct wsk_slice origin, const struct wsk_handshake_server_config *cfg)
{
    for (size_t i = 0; i < cfg->num_origins; i++)
        if (slice_equals_nocase(origin, cstr_slice(cfg->origins[i])))
            return true;
    return false;
}

/* The first of the server's subprotocols, in its order of preference, that
 * the client offered in any of its Sec-WebSocket-Protocol lines. Subprotocol
 * names are compared exactly, as browsers do (RFC 6455 section 4.1 makes them
 * tokens but no case rule). */
static struct wsk_slice choose_subprotocol(const struct wsk_http_request *req,
                                           const struct wsk_handshake_server_config *cfg)
{
    struct wsk_slice name = cstr_slice("Sec-WebSocket-Protocol");
    for (size_t i = 0; i < cfg->num_subprotocols; i++) {
        struct wsk_slice want = cstr_slice(cfg->subprotocols[i]);
        for (size_t h = 0; h < req->num_headers; h++) {
            if (!slice_equals_nocase(req->headers[h].name, name))
                continue;
            struct wsk__list list = wsk__list_init(req->headers[h].value);
            struct wsk_slice offered;
            while (wsk__list_next(&list, &offered))
                if (slice_equals(offered, want))
                    return offered;
        }
    }
    return empty_slice;
}

bool wsk_handshake_is_upgrade(const struct wsk_http_request *req)
{
    return wsk_http_header_has_token(req->headers, req->num_headers, "Upgrade", "websocket");
}

static int refuse(struct wsk_handshake_info *info, int status, const char *why)
{
    info->refusal = why;
    return status;
}

int wsk_handshake_server_check(const struct wsk_http_request *req,
                               const struct wsk_handshake_server_config *cfg,
                               struct wsk_handshake_info *info)
{
    static const struct wsk_handshake_server_config no_cfg;
    struct wsk_handshake_info scratch;
    if (!cfg)
        cfg = &no_cfg;
    if (!info)
        info = &scratch;
    const struct wsk_http_header *hs = req->headers;
    size_t n = req->num_headers;

    *info = (struct wsk_handshake_info){
        .refusal = "",
        .path = req->path,
        .query = req->query,
        .host = empty_slice,
        .origin = empty_slice,
        .key = empty_slice,
        .subprotocol = empty_slice,
        .extensions = empty_slice,
    };

    /* Methods are case-sensitive (RFC 9110 section 9.1). */
    if (!slice_equals(req->method, cstr_slice("GET")))
        return refuse(info, 405, "method not GET");
    if (req->minor_version < 1)
        return refuse(info, 400, "HTTP/1.0");
    /* RFC 9112 section 3.2: 400 for no Host or more than one. */
    if (header_count(hs, n, "Host") != 1)
        return refuse(info, 400, "no Host or more than one");
    info->host = *wsk_http_header_get(hs, n, "Host");
    if (!wsk_http_header_has_token(hs, n, "Upgrade", "websocket"))
        return refuse(info, 400, "no Upgrade: websocket");
    if (!wsk_http_header_has_token(hs, n, "Connection", "upgrade"))
        return refuse(info, 400, "no Connection: upgrade");

    /* A missing version is answered like an unknown one: 426 with the
     * version we speak, so the client can retry (RFC 6455 section 4.4). Two
     * version lines are a malformed request (section 11.3.5). */
    size_t versions = header_count(hs, n, "Sec-WebSocket-Version");
    if (versions > 1)
        return refuse(info, 400, "Sec-WebSocket-Version repeated");
    const struct wsk_slice *version = wsk_http_header_get(hs, n, "Sec-WebSocket-Version");
    if (!version || !slice_equals(*version, cstr_slice("13")))
        return refuse(info, 426, "Sec-WebSocket-Version not 13");

    /* The key must appear once (section 11.3.1). */
    if (header_count(hs, n, "Sec-WebSocket-Key") != 1)
        return refuse(info, 400, "no Sec-WebSocket-Key or more than one");
    const struct wsk_slice *key = wsk_http_header_get(hs, n, "Sec-WebSocket-Key");
    if (!key_is_valid(*key))
        return refuse(info, 400, "Sec-WebSocket-Key not base64 of 16 bytes");
    info->key = *key;

    /* Origin protects browsers from cross-site WebSocket hijacking (section
     * 10.2). Clients other than browsers need not send it, so its absence
     * passes; when several lines are present, all must pass. */
    const struct wsk_slice *origin = wsk_http_header_get(hs, n, "Origin");
    if (origin) {
        info->origin = *origin;
        if (cfg->num_origins > 0) {
            struct wsk_slice name = cstr_slice("Origin");
            for (size_t i = 0; i < n; i++)
                if (slice_equals_nocase(hs[i].name, name) && !origin_allowed(hs[i].value, cfg))
                    return refuse(info, 403, "Origin not allowed");
        }
    }

    const struct wsk_slice *ext = wsk_http_header_get(hs, n, "Sec-WebSocket-Extensions");
    if (ext)
        info->extensions = *ext;
    info->subprotocol = choose_subprotocol(req, cfg);
    return 101;
}

int wsk_handshake_server_accept(char *out, size_t cap, const struct wsk_handshake_info *info,
                                const char *extra_headers)
{
    if (!wsk__http_is_field_value(info->subprotocol) ||
        (extra_headers && !wsk__http_are_header_lines(extra_headers)))
        return -EINVAL;
    char accept[ACCEPT_LEN + 1];
    compute_accept(info->key.ptr, info->key.len, accept);

    struct wsk__wbuf w = wsk__wbuf_init(out, cap);
    wsk__wbuf_str(&w, WSK__HTTP_STATUS_LINE_101 "Upgrade: websocket\r\n"
                                                "Connection: Upgrade\r\n"
                                                "Sec-WebSocket-Accept: ");
    wsk__wbuf_put(&w, accept, ACCEPT_LEN);
    wsk__wbuf_str(&w, "\r\n");
    if (info->subprotocol.len > 0) {
        wsk__wbuf_str(&w, "Sec-WebSocket-Protocol: ");
        wsk__wbuf_slice(&w, info->subprotocol);
        wsk__wbuf_str(&w, "\r\n");
    }
    if (extra_headers)
        wsk__wbuf_str(&w, extra_headers);
    wsk__wbuf_str(&w, "\r\n");
    return wsk__wbuf_finish(&w);
}

int wsk_handshake_server_reject(char *out, size_t cap, int status)
{
    /* Only errors: anything else would need headers or a body we cannot
     * know. */
    if (status < 400 || status > 599)
        return -EINVAL;
    /* The body repeats the status line's tail: "426 Upgrade Required\n". */
    const char *reason = wsk__http_reason(status);
    size_t reason_len = strlen(reason);

    struct wsk__wbuf w = wsk__wbuf_init(out, cap);
    wsk__http_status_line(&w, status);
    wsk__wbuf_str(&w, "Content-Type: text/plain\r\nContent-Length: ");
    wsk__wbuf_u64(&w, 3 + 1 + reason_len + 1);
    wsk__wbuf_str(&w, "\r\nConnection: close\r\n");
    if (status == 426)
        wsk__wbuf_str(&w, "Sec-WebSocket-Version: 13\r\n");
    else if (status == 405)
        wsk__wbuf_str(&w, "Allow: GET\r\n");
    wsk__wbuf_str(&w, "\r\n");
    wsk__wbuf_u64(&w, (uint64_t)status);
    wsk__wbuf_char(&w, ' ');
    wsk__wbuf_put(&w, reason, reason_len);
    wsk__wbuf_char(&w, '\n');
    return wsk__wbuf_finish(&w);
}

int wsk_handshake_client_request(char *out, size_t cap,
                                 const struct wsk_handshake_client_request *r)
{
    const char *target = r->target && r->target[0] ? r->target : "/";
    if (!r->host || !r->key || !wsk__http_is_field_value(cstr_slice(r->host)) ||
        !wsk__http_is_field_value(cstr_slice(r->key)) ||
        (r->origin && !wsk__http_is_field_value(cstr_slice(r->origin))) ||
        (r->extra_headers && !wsk__http_are_header_lines(r->extra_headers)))
        return -EINVAL;
    /* The target sits between two spaces in the request line. */
    for (const char *c = target; *c; c++)
        if (*c == ' ' || wsk__is_ctl((unsigned char)*c))
            return -EINVAL;
    /* Offered subprotocols must be tokens (RFC 6455 section 4.1, step 10):
     * a comma or space inside one would change the list. */
    for (size_t i = 0; i < r->num_subprotocols; i++)
        if (!wsk__http_is_token(r->subprotocols[i]))
            return -EINVAL;

    struct wsk__wbuf w = wsk__wbuf_init(out, cap);
    wsk__wbuf_str(&w, "GET ");
    wsk__wbuf_str(&w, target);
    wsk__wbuf_str(&w, " HTTP/1.1\r\nHost: ");
    wsk__wbuf_str(&w, r->host);
    wsk__wbuf_str(&w, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ");
    wsk__wbuf_str(&w, r->key);
    wsk__wbuf_str(&w, "\r\nSec-WebSocket-Version: 13\r\n");
    if (r->num_subprotocols > 0) {
        wsk__wbuf_str(&w, "Sec-WebSocket-Protocol: ");
        for (size_t i = 0; i < r->num_subprotocols; i++) {
            if (i > 0)
                wsk__wbuf_str(&w, ", ");
            wsk__wbuf_str(&w, r->subprotocols[i]);
        }
        wsk__wbuf_str(&w, "\r\n");
    }
    if (r->origin) {
        wsk__wbuf_str(&w, "Origin: ");
        wsk__wbuf_str(&w, r->origin);
        wsk__wbuf_str(&w, "\r\n");
    }
    if (r->extra_headers)
        wsk__wbuf_str(&w, r->extra_headers);
    wsk__wbuf_str(&w, "\r\n");
    return wsk__wbuf_finish(&w);
}

int wsk_handshake_client_verify(const struct wsk_http_response *resp, const char *key,
                                const char *const *subprotocols, size_t num_subprotocols,
                                struct wsk_slice *chosen)
{
    const struct wsk_http_header *hs = resp->headers;
    size_t n = resp->num_headers;
    if (chosen)
        *chosen = empty_slice;

    if (resp->status != 101)
        return WSK_EHSTATUS;
    if (!wsk_http_header_has_token(hs, n, "Upgrade", "websocket") ||
        !wsk_http_header_has_token(hs, n, "Connection", "upgrade"))
        return WSK_EHANDSHAKE;

    /* Exactly one accept line (RFC 6455 section 11.3.3), byte for byte. */
    if (header_count(hs, n, "Sec-WebSocket-Accept") != 1)
        return WSK_EHACCEPT;
    char expected[ACCEPT_LEN + 1];
    compute_accept(key, strlen(key), expected);
    if (!slice_equals(*wsk_http_header_get(hs, n, "Sec-WebSocket-Accept"),
                      (struct wsk_slice){expected, ACCEPT_LEN}))
        return WSK_EHACCEPT;

    /* At most one line naming one protocol, and only one that was offered
     * (RFC 6455 sections 4.1 and 11.3.4). */
    size_t protocols = header_count(hs, n, "Sec-WebSocket-Protocol");
    if (protocols == 0)
        return 0;
    if (protocols > 1)
        return WSK_EHSUBPROTO;
    struct wsk_slice proto = *wsk_http_header_get(hs, n, "Sec-WebSocket-Protocol");
    for (size_t i = 0; i < num_subprotocols; i++) {
        if (slice_equals(proto, cstr_slice(subprotocols[i]))) {
            if (chosen)
                *chosen = proto;
            return 0;
        }
    }
    return WSK_EHSUBPROTO;
}
