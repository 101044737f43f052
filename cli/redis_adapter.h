/* hiredis's asynchronous API on the wsk loop (redis_adapter.c). */
#ifndef WSK_CLI_REDIS_ADAPTER_H
#define WSK_CLI_REDIS_ADAPTER_H

#include <hiredis/async.h>

#include "wsk.h"

/* Drives ac's socket from loop: one wsk_io watcher, freed when hiredis
 * frees ac (redisAsyncFree(), or a disconnect). Call it right after
 * redisAsyncConnect() succeeded, before any command. Returns 0; -EBUSY when
 * ac already has an event library; -ENOMEM. On failure the caller frees ac
 * with redisAsyncFree(). */
int redis_adapter_attach(redisAsyncContext *ac, struct wsk_loop *loop);

#endif
