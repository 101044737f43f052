#include "wsk/error.h"

#include <errno.h>
#include <string.h>

const char *wsk_strerror(int err)
{
    switch (err) {
#define WSK__ERR_MSG(name, value, msg)                                                             \
    case value:                                                                                    \
        return msg;
        WSK_ERRNO_MAP(WSK__ERR_MSG)
#undef WSK__ERR_MSG
    default:
        break;
    }
    if (err < 0 && err > -4096)
        return strerror(-err); /* glibc: static strings for known codes */
    return "unknown error";
}

const char *wsk_err_name(int err)
{
    switch (err) {
#define WSK__ERR_NAME(name, value, msg)                                                            \
    case value:                                                                                    \
        return "WSK_E" #name;
        WSK_ERRNO_MAP(WSK__ERR_NAME)
#undef WSK__ERR_NAME
    default:
        break;
    }
    if (err < 0 && err > -4096) {
        const char *name = strerrorname_np(-err);
        if (name)
            return name;
    }
    return "UNKNOWN";
}
