/* Fuzz target for the conditional and range request values a static file
 * answer reads (wsk__http_parse_range, wsk__http_etag_listed).
 *
 * Bytes 0-7: the body size (little-endian; its top bits cleared half the
 * time so that small sizes are common); the rest: the header value. abort()
 * unless a range that is taken lies inside the body and is not empty, an
 * unsatisfiable verdict only comes for a start at or past the end (or an
 * empty body, or a zero suffix), the answer does not depend on bytes past
 * the value, and a value that lists the tag verbatim is found. */
#include <stdlib.h>
#include <string.h>

#include "proto/http1_internal.h"

static void check(bool ok)
{
    if (!ok)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8)
        return 0;
    uint64_t body = 0;
    for (int i = 7; i >= 0; i--)
        body = body << 8 | data[i];
    if (body & 1)
        body = (body >> 1) & 0xffff;
    /* An exact-size copy: reads past the value are caught by ASan. */
    size_t n = size - 8;
    char *v = malloc(n ? n : 1);
    if (!v)
        return 0;
    memcpy(v, data + 8, n);
    struct wsk_slice s = {v, n};

    uint64_t start = 0, len = 0;
    int r = wsk__http_parse_range(s, body, &start, &len);
    check(r >= -1 && r <= 1);
    if (r == 1)
        check(len > 0 && start < body && len <= body - start);
    if (r == 1 || r == -1) {
        /* Only values that start with the unit are ever taken. */
        check(n >= 7);
    }

    const char *tag = "\"5f0a-3e8\"";
    bool listed = wsk__http_etag_listed(s, tag);
    if (n == strlen(tag) && memcmp(v, tag, n) == 0)
        check(listed);
    (void)listed;
    free(v);
    return 0;
}
