/* Error codes: every wsk code has a message and a name, errno values pass
 * through, unknown values are named as such. */
#include <errno.h>

#include "wsk.h"
#include "wsk_test.h"

static void test_wsk_codes(void)
{
#define CHECK_CODE(name, value, msg)                                                               \
    CHECK_STR(wsk_strerror(value), msg);                                                           \
    CHECK_STR(wsk_err_name(value), "WSK_E" #name);                                                 \
    CHECK((value) <= -1000);
    WSK_ERRNO_MAP(CHECK_CODE)
#undef CHECK_CODE
}

static void test_errno_passthrough(void)
{
    CHECK_STR(wsk_err_name(-ECONNREFUSED), "ECONNREFUSED");
    CHECK_STR(wsk_strerror(-ECONNREFUSED), strerror(ECONNREFUSED));
    CHECK_STR(wsk_err_name(-ETIMEDOUT), "ETIMEDOUT");
}

static void test_unknown(void)
{
    CHECK_STR(wsk_err_name(1), "UNKNOWN");
    CHECK_STR(wsk_err_name(-999999), "UNKNOWN");
    CHECK(wsk_strerror(-999999) != NULL);
    CHECK(strlen(wsk_strerror(12345)) > 0);
}

static void test_version(void)
{
    CHECK_STR(wsk_version(), WSK_VERSION_STRING);
}

int main(void)
{
    WSK_RUN(test_wsk_codes);
    WSK_RUN(test_errno_passthrough);
    WSK_RUN(test_unknown);
    WSK_RUN(test_version);
    WSK_TEST_END();
}
