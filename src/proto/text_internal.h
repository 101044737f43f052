/* Private to src/proto: the character classes and the case-insensitive
 * comparison that HTTP header parsing needs (http1.c, handshake.c,
 * deflate.c). ASCII only: header names and tokens are ASCII, and the C
 * library's strncasecmp follows the locale. */
#ifndef WSK_PROTO_TEXT_INTERNAL_H
#define WSK_PROTO_TEXT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "wsk/common.h"

static inline bool wsk__is_ctl(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

/* tchar, RFC 9110 section 5.6.2. */
static inline bool wsk__is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Optional white space, RFC 9110 section 5.6.3. */
static inline bool wsk__is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static inline unsigned char wsk__ascii_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

static inline bool wsk__slice_equals_nocase(struct wsk_slice s, const char *z, size_t z_len)
{
    if (s.len != z_len)
        return false;
    for (size_t i = 0; i < z_len; i++)
        if (wsk__ascii_lower((unsigned char)s.ptr[i]) != wsk__ascii_lower((unsigned char)z[i]))
            return false;
    return true;
}

#endif
