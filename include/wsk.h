/* wsk: WebSocket Kit. The whole public API.
 *
 *   wsk/error.h   error codes, wsk_strerror()
 *   wsk/proto.h   I/O-free RFC 6455 core: frames, masking, UTF-8, handshake
 *   wsk/deflate.h permessage-deflate (RFC 7692): negotiation and the transform
 *   wsk/session.h I/O-free WebSocket session: bytes in, messages and frames out
 *   wsk/url.h     ws://, wss://, http(s)://, tcp://, udp:// URLs, split in place
 *   wsk/http.h    I/O-free HTTP/1.1 client messages: requests, response bodies
 *   wsk/loop.h    event loop: epoll, poll, select; timers; signals
 *   wsk/ws.h      WebSocket servers, clients and connections
 *   wsk/topic.h   publish/subscribe: topics on a server, publishing from any thread
 *   wsk/net.h     raw TCP servers, clients and connections; UDP sockets
 *   wsk/danmaku.h I/O-free Douyu live-chat packets and their STT text
 */
#ifndef WSK_H
#define WSK_H

#include "wsk/common.h"
#include "wsk/error.h"
#include "wsk/version.h"
#include "wsk/proto.h"
#include "wsk/deflate.h"
#include "wsk/session.h"
#include "wsk/url.h"
#include "wsk/http.h"
#include "wsk/loop.h"
#include "wsk/ws.h"
#include "wsk/topic.h"
#include "wsk/net.h"
#include "wsk/danmaku.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The library's version, "MAJOR.MINOR.PATCH", as built (may differ from the
 * WSK_VERSION_STRING a program was compiled against). A static string, never
 * NULL. */
WSK_API const char *wsk_version(void);

#ifdef __cplusplus
}
#endif

#endif
