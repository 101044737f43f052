/* wsk: common definitions shared by every public header. */
#ifndef WSK_COMMON_H
#define WSK_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(WSK_BUILDING) && defined(__GNUC__)
#define WSK_API __attribute__((visibility("default")))
#else
#define WSK_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Library diagnostics ("client 127.0.0.1:5000: send queue full, closing 1008").
 * level: 0 error, 1 warning, 2 info, 3 debug. */
typedef void (*wsk_log_cb)(int level, const char *msg, void *user_data);

/* A borrowed run of bytes: never owns memory, never NUL-terminated unless said. */
struct wsk_slice {
    const char *ptr;
    size_t len;
};

#ifdef __cplusplus
}
#endif

#endif
