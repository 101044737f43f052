#include "wsk.h"

const char *wsk_version(void)
{
    return WSK_VERSION_STRING;
}
