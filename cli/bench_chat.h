/* wsk bench --payload chat: message bodies like a chat application's JSON.
 *
 * A benchmark of compression needs payloads that compress like real ones:
 * the default pattern repeats every 61 bytes and deflates to almost nothing.
 * A chat body is a JSON object whose keys repeat from message to message and
 * whose text is different words every time:
 *
 *   {"type":"message","room":"general","user":"user0042","text":"so we can
 *   ship it after lunch ...","ts":1765000123456}
 *
 * The body of sequence number seq is always the same bytes, so the receiver
 * can check every byte it gets back without keeping what was sent. */
#ifndef WSK_CLI_BENCH_CHAT_H
#define WSK_CLI_BENCH_CHAT_H

#include <stddef.h>
#include <stdint.h>

/* Writes exactly len bytes of printable ASCII, the body of message seq, to
 * out. Bodies of at least 80 bytes are whole JSON objects; shorter ones are
 * words only. */
void bench_chat_body(uint8_t *out, size_t len, uint64_t seq);

#endif
