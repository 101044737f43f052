/* permessage-deflate (RFC 7692): negotiation. The transform is deflate.c's.
 *
 * Negotiation reads Sec-WebSocket-Extensions values (RFC 6455 section 9.1),
 * whitespace allowed around every separator:
 *
 *      extension-list = 1#extension              ; empty elements skipped
 *      extension      = token *( ";" param )
 *      param          = token [ "=" ( token / quoted-string ) ]
 *                       ; a quoted value must unescape to a token
 *
 * wsk__list_next() (text_internal.h) cuts the list into elements, and
 * ext_parse() walks one element with a cursor, through these states:
 *
 *      NAME --";"--> PARAM --"="--> VALUE
 *        |             ^              |
 *        |             +-----";"------+
 *        +--- end, from NAME, PARAM or VALUE: element done
 *
 * A syntax error anywhere fails the whole header (WSK_EHEXT); a well-formed
 * permessage-deflate element with parameters that section 7.1 forbids is an
 * offer the server declines, or a response the client rejects.
 */
#include "wsk/deflate.h"

#include <errno.h>
#include <string.h>

#include "proto/deflate_internal.h"
#include "proto/text_internal.h"

static const char ext_name[] = "permessage-deflate";

/* ------------------------------------------------------------------------ */
/* Header lexing                                                             */
/* ------------------------------------------------------------------------ */

/* Extension and parameter names compare without case, in ASCII only. */
static bool slice_is(struct wsk_slice s, const char *z)
{
    return wsk__slice_equals_nocase(s, z, strlen(z));
}

struct lexer {
    const char *p;
    const char *end;
};

static void skip_ows(struct lexer *lx)
{
    while (lx->p < lx->end && wsk__is_ows(*lx->p))
        lx->p++;
}

static bool lex_token(struct lexer *lx, struct wsk_slice *tok)
{
    const char *s = lx->p;
    while (lx->p < lx->end && wsk__is_tchar((unsigned char)*lx->p))
        lx->p++;
    *tok = (struct wsk_slice){s, (size_t)(lx->p - s)};
    return tok->len > 0;
}

/* A window bits value is the only kind of value permessage-deflate knows;
 * any other value parses but reads as BITS_INVALID. */
#define BITS_INVALID 0

/* Adds the digit c to the decimal number *v built so far, or marks it
 * invalid for a non-digit or a leading zero. Numbers above 99 stay invalid
 * without overflowing. */
static void bits_digit(int *v, bool *is_first, unsigned char c)
{
    if (*v < 0)
        return;
    if (c < '0' || c > '9' || (*is_first && c == '0') || *v > 9)
        *v = -1;
    else
        *v = *v * 10 + (c - '0');
    *is_first = false;
}

/* Reads a parameter value (token or quoted-string) at lx. Returns false on a
 * syntax error; else sets *bits to the value when it is a window bits value
 * 8..15 in decimal without leading zeros, otherwise to BITS_INVALID. */
static bool lex_value(struct lexer *lx, uint8_t *bits)
{
    int v = 0;
    bool is_first = true;
    size_t n = 0;
    if (lx->p < lx->end && *lx->p == '"') {
        lx->p++;
        for (;;) {
            if (lx->p >= lx->end)
                return false; /* unterminated */
            unsigned char c = (unsigned char)*lx->p++;
            if (c == '"')
                break;
            if (c == '\\') {
                if (lx->p >= lx->end)
                    return false;
                c = (unsigned char)*lx->p++;
            }
            if (!wsk__is_tchar(c))
                return false; /* unescaped, the value must be a token */
            bits_digit(&v, &is_first, c);
            n++;
        }
        if (n == 0)
            return false;
    } else {
        struct wsk_slice tok;
        if (!lex_token(lx, &tok))
            return false;
        for (size_t i = 0; i < tok.len; i++)
            bits_digit(&v, &is_first, (unsigned char)tok.ptr[i]);
    }
    *bits = (v >= MIN_BITS && v <= MAX_BITS) ? (uint8_t)v : BITS_INVALID;
    return true;
}

/* One permessage-deflate element, offer or response, as parsed. */
struct pmd_ext {
    bool is_valid; /* no unknown or repeated parameter, no bad value */
    bool snct;     /* server_no_context_takeover */
    bool cnct;     /* client_no_context_takeover */
    bool has_cmwb; /* client_max_window_bits present */
    uint8_t smwb;  /* server_max_window_bits, 0 when absent */
    uint8_t cmwb;  /* client_max_window_bits value, 0 when absent or bare */
    uint8_t seen;  /* PARAM_* bits */
};

enum {
    PARAM_SNCT = 1,
    PARAM_CNCT = 2,
    PARAM_SMWB = 4,
    PARAM_CMWB = 8,
};

/* Applies one parameter to e (RFC 7692 section 7.1). A response must give
 * client_max_window_bits a value; an offer may leave it bare. */
static void pmd_param(struct pmd_ext *e, struct wsk_slice name, bool has_value, uint8_t bits,
                      bool is_response)
{
    uint8_t which;
    bool is_ok;
    if (slice_is(name, "server_no_context_takeover")) {
        which = PARAM_SNCT;
        is_ok = !has_value;
        e->snct = true;
    } else if (slice_is(name, "client_no_context_takeover")) {
        which = PARAM_CNCT;
        is_ok = !has_value;
        e->cnct = true;
    } else if (slice_is(name, "server_max_window_bits")) {
        which = PARAM_SMWB;
        is_ok = has_value && bits != BITS_INVALID;
        e->smwb = bits;
    } else if (slice_is(name, "client_max_window_bits")) {
        which = PARAM_CMWB;
        is_ok = has_value ? bits != BITS_INVALID : !is_response;
        e->has_cmwb = true;
        e->cmwb = has_value ? bits : 0;
    } else {
        e->is_valid = false;
        return;
    }
    if (!is_ok || (e->seen & which))
        e->is_valid = false;
    e->seen |= which;
}

/* Parses one element of an extension list, as cut out by wsk__list_next().
 * Returns 0 with *name set (and *e filled when the name is
 * permessage-deflate), or WSK_EHEXT on a syntax error. */
static int ext_parse(struct wsk_slice elem, struct wsk_slice *name, struct pmd_ext *e,
                     bool is_response)
{
    struct lexer lx = {elem.ptr, elem.ptr + elem.len};
    if (!lex_token(&lx, name))
        return WSK_EHEXT;
    bool is_pmd = slice_is(*name, ext_name);
    memset(e, 0, sizeof *e);
    e->is_valid = true;
    for (;;) {
        skip_ows(&lx);
        if (lx.p == lx.end)
            return 0;
        if (*lx.p != ';')
            return WSK_EHEXT;
        lx.p++;
        skip_ows(&lx);
        struct wsk_slice param;
        if (!lex_token(&lx, &param))
            return WSK_EHEXT;
        skip_ows(&lx);
        bool has_value = false;
        uint8_t bits = BITS_INVALID;
        if (lx.p < lx.end && *lx.p == '=') {
            lx.p++;
            skip_ows(&lx);
            if (!lex_value(&lx, &bits))
                return WSK_EHEXT;
            has_value = true;
        }
        if (is_pmd)
            pmd_param(e, param, has_value, bits, is_response);
    }
}

/* ------------------------------------------------------------------------ */
/* Negotiation                                                               */
/* ------------------------------------------------------------------------ */

void wsk_deflate_config_init(struct wsk_deflate_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->server_max_window_bits = DEFAULT_BITS;
    cfg->client_max_window_bits = DEFAULT_BITS;
    cfg->mem_level = WSK_DEFLATE_DEFAULT_MEM_LEVEL;
    cfg->min_compress_size = WSK_DEFLATE_DEFAULT_MIN_SIZE;
}

static bool config_ok(const struct wsk_deflate_config *cfg)
{
    return bits_ok(cfg->server_max_window_bits) && bits_ok(cfg->client_max_window_bits) &&
           cfg->mem_level <= 9;
}

static uint8_t min_bits(uint8_t a, uint8_t b)
{
    return a < b ? a : b;
}

/* Decides whether the server takes offer e; fills *p when it does. */
static bool server_takes(const struct pmd_ext *e, const struct wsk_deflate_config *cfg,
                         struct wsk_deflate_params *p)
{
    if (!e->is_valid)
        return false;
    uint8_t our_s = bits_or_default(cfg->server_max_window_bits);
    uint8_t our_c = bits_or_default(cfg->client_max_window_bits);
    /* Without client_max_window_bits the client may use a 15-bit window,
     * more than the configured bound on our inflate stream. */
    if (our_c < DEFAULT_BITS && !e->has_cmwb)
        return false;
    memset(p, 0, sizeof *p);
    p->server_no_context_takeover = cfg->server_no_context_takeover || e->snct;
    p->client_no_context_takeover = cfg->client_no_context_takeover || e->cnct;
    p->server_max_window_bits = e->smwb ? min_bits(e->smwb, our_s) : our_s;
    p->client_max_window_bits =
        e->has_cmwb ? min_bits(e->cmwb ? e->cmwb : DEFAULT_BITS, our_c) : DEFAULT_BITS;
    p->mem_level = cfg->mem_level;
    return true;
}

static void put_bits(struct wsk__wbuf *w, const char *name, uint8_t bits)
{
    wsk__wbuf_str(w, "; ");
    wsk__wbuf_str(w, name);
    wsk__wbuf_char(w, '=');
    wsk__wbuf_u64(w, bits);
}

int wsk_deflate_negotiate(const struct wsk_http_header *headers, size_t num_headers,
                          const struct wsk_deflate_config *cfg, struct wsk_deflate_params *params,
                          char *out, size_t cap)
{
    if (!cfg || !cfg->enabled)
        return 0;
    if (!config_ok(cfg))
        return -EINVAL;
    struct wsk_deflate_params chosen;
    struct pmd_ext offer = {0};
    bool has_chosen = false;
    /* Every line is parsed to the end, so that a malformed header fails the
     * same way wherever the acceptable offer sits. */
    for (size_t i = 0; i < num_headers; i++) {
        if (!slice_is(headers[i].name, "sec-websocket-extensions"))
            continue;
        struct wsk__list list = wsk__list_init(headers[i].value);
        struct wsk_slice elem;
        while (wsk__list_next(&list, &elem)) {
            struct wsk_slice name;
            struct pmd_ext e;
            int rv = ext_parse(elem, &name, &e, false);
            if (rv < 0)
                return rv;
            if (!has_chosen && slice_is(name, ext_name) && server_takes(&e, cfg, &chosen)) {
                has_chosen = true;
                offer = e;
            }
        }
    }
    if (!has_chosen)
        return 0;
    struct wsk__wbuf w = wsk__wbuf_init(out, cap);
    wsk__wbuf_str(&w, ext_name);
    if (chosen.server_no_context_takeover)
        wsk__wbuf_str(&w, "; server_no_context_takeover");
    if (chosen.client_no_context_takeover)
        wsk__wbuf_str(&w, "; client_no_context_takeover");
    /* A client that asked for server_max_window_bits needs it back, even
     * at 15 (section 7.1.2.1); a client_max_window_bits value is echoed too,
     * as ws does, though only a smaller one binds the client. */
    if (offer.smwb || chosen.server_max_window_bits < DEFAULT_BITS)
        put_bits(&w, "server_max_window_bits", chosen.server_max_window_bits);
    if (offer.cmwb || chosen.client_max_window_bits < DEFAULT_BITS)
        put_bits(&w, "client_max_window_bits", chosen.client_max_window_bits);
    int n = wsk__wbuf_finish_cstr(&w);
    if (n > 0)
        *params = chosen;
    return n;
}

int wsk_deflate_offer(char *out, size_t cap, const struct wsk_deflate_config *cfg)
{
    if (!cfg || !cfg->enabled) {
        if (cap > 0)
            out[0] = '\0';
        return 0;
    }
    if (!config_ok(cfg))
        return -EINVAL;
    struct wsk__wbuf w = wsk__wbuf_init(out, cap);
    wsk__wbuf_str(&w, ext_name);
    if (cfg->server_no_context_takeover)
        wsk__wbuf_str(&w, "; server_no_context_takeover");
    if (cfg->client_no_context_takeover)
        wsk__wbuf_str(&w, "; client_no_context_takeover");
    uint8_t s = bits_or_default(cfg->server_max_window_bits);
    uint8_t c = bits_or_default(cfg->client_max_window_bits);
    if (s < DEFAULT_BITS)
        put_bits(&w, "server_max_window_bits", s);
    if (c < DEFAULT_BITS)
        put_bits(&w, "client_max_window_bits", c);
    else
        wsk__wbuf_str(&w, "; client_max_window_bits");
    return wsk__wbuf_finish_cstr(&w);
}

int wsk_deflate_accept(const struct wsk_slice *value, const struct wsk_deflate_config *offered,
                       struct wsk_deflate_params *params)
{
    if (offered && offered->enabled && !config_ok(offered))
        return -EINVAL;
    if (!value || value->len == 0)
        return 0;
    struct wsk__list list = wsk__list_init(*value);
    struct wsk_slice elem, name;
    struct pmd_ext e;
    if (!wsk__list_next(&list, &elem))
        return 0; /* blank: declined */
    int rv = ext_parse(elem, &name, &e, true);
    if (rv < 0)
        return rv;
    if (wsk__list_next(&list, &elem))
        return WSK_EHEXT; /* a second extension */
    if (!offered || !offered->enabled || !slice_is(name, ext_name) || !e.is_valid)
        return WSK_EHEXT;
    uint8_t our_s = bits_or_default(offered->server_max_window_bits);
    uint8_t our_c = bits_or_default(offered->client_max_window_bits);
    /* Section 7.1.1.1 and 7.1.2.1: a server accepts these requests by
     * repeating them, so a response without them refuses what we asked. */
    if (offered->server_no_context_takeover && !e.snct)
        return WSK_EHEXT;
    if (our_s < DEFAULT_BITS && !e.smwb)
        return WSK_EHEXT;
    if (e.smwb > our_s || e.cmwb > our_c)
        return WSK_EHEXT;
    memset(params, 0, sizeof *params);
    params->server_no_context_takeover = e.snct;
    params->client_no_context_takeover = e.cnct || offered->client_no_context_takeover;
    params->server_max_window_bits = e.smwb ? e.smwb : DEFAULT_BITS;
    params->client_max_window_bits = e.cmwb ? e.cmwb : our_c;
    params->mem_level = offered->mem_level;
    return 1;
}
