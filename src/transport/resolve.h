/* Private to the library: host names resolved off the loop thread, for
 * every client that connects (WebSocket, raw TCP, bridges).
 *
 * getaddrinfo() blocks, so a name goes to a detached thread whose answer
 * comes back to the loop through wsk_loop_post(). A numeric address needs
 * no thread and is answered at once. If the owner stops caring first
 * (wsk__resolve_cancel()), the job is orphaned: the thread then posts
 * nothing (the loop may be gone by then) and the last of the two owners
 * frees it.
 */
#ifndef WSK_TRANSPORT_RESOLVE_H
#define WSK_TRANSPORT_RESOLVE_H

#include <netdb.h>

#include "wsk/loop.h"

struct wsk__resolve;

/* The answer, on the loop thread: res (the callee frees it with
 * freeaddrinfo()) and error 0, or res NULL and error WSK_EDNS with
 * getaddrinfo's words in why. */
typedef void (*wsk__resolve_cb)(void *data, struct addrinfo *res, int error, const char *why);

/* Resolves host (a name or a numeric address, without brackets) and port
 * (decimal) for socktype (SOCK_STREAM or SOCK_DGRAM).
 *
 * Returns 1 with *res set when host is numeric (no thread, no callback:
 * the caller frees *res); 0 with *job set when a thread was started (cb
 * comes later, exactly once, unless the job is cancelled first); or
 * -ENOMEM, or a negative errno from pthread_create(). */
int wsk__resolve_start(struct wsk_loop *loop, const char *host, const char *port, int socktype,
                       wsk__resolve_cb cb, void *data, struct wsk__resolve **job,
                       struct addrinfo **res);

/* The owner no longer wants the answer: cb will not be called. Cannot
 * fail; NULL is fine. */
void wsk__resolve_cancel(struct wsk__resolve *job);

#endif
