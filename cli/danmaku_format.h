/* wsk danmaku: the readable lines printed for packets from the server.
 * Kept apart from the link handling in danmaku.c. */
#ifndef WSK_CLI_DANMAKU_FORMAT_H
#define WSK_CLI_DANMAKU_FORMAT_H

#include "cli.h"
#include "wsk.h"

/* Appends text from the server for a terminal: valid UTF-8 as it is, control
 * characters as ^X (a server must not move the cursor or retitle the
 * window), C1 controls and each byte that is not part of valid UTF-8 as
 * U+FFFD. Returns 0 or -ENOMEM. */
int danmaku_append_printable(struct cli_buf *b, const char *s, size_t len);

/* True when the packet's body has key (plain text) with exactly the value
 * want, compared as escaped: for words without '@' or '/' only. */
bool danmaku_field_is(const struct wsk_danmaku_packet *pkt, const char *key, const char *want);

/* Appends the readable line for pkt to b, without a newline:
 *   chatmsg  "NICK: TEXT"
 *   uenter   "* NICK entered"
 *   dgb      "* NICK sent gift GFID x GFCNT" and " (combo HITS)" when given
 * with each field unescaped (into scratch, cap bytes: at least the body's
 * length) and made printable. A missing nick shows as "?". Returns 0, 1 for
 * kinds that have no line (b untouched), or -ENOMEM. */
int danmaku_format(struct cli_buf *b, const struct wsk_danmaku_packet *pkt, char *scratch,
                   size_t cap);

#endif
