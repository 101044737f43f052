/* Writing HTTP/1.1 heads (RFC 9110 sections 5.6.7, 8.3 and 15; RFC 9112
 * sections 3 and 4): reason phrases, status lines, response heads, dates and
 * content types, client requests, and the checks on what callers put into
 * them, for every head the library writes. No I/O, no clock (the time is an
 * argument), no allocation: heads go through the bounded writer of
 * text_internal.h into the caller's buffer. */
#include <errno.h>

#include "proto/http1_internal.h"
#include "wsk/http.h"

/* ---- what callers may put into a head ---------------------------------- */

bool wsk__http_is_field_value(struct wsk_slice s)
{
    for (size_t i = 0; i < s.len; i++)
        if (wsk__is_ctl((unsigned char)s.ptr[i]) && s.ptr[i] != '\t')
            return false;
    return true;
}

bool wsk__http_is_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!wsk__is_tchar((unsigned char)*s))
            return false;
    return true;
}

bool wsk__http_is_field_line(const char *line, size_t len, struct wsk_slice *name)
{
    size_t i = 0;
    while (i < len && wsk__is_tchar((unsigned char)line[i]))
        i++;
    if (i == 0 || i == len || line[i] != ':')
        return false;
    if (!wsk__http_is_field_value((struct wsk_slice){line + i + 1, len - i - 1}))
        return false;
    if (name)
        *name = (struct wsk_slice){line, i};
    return true;
}

/* extra_headers must be whole field lines, "Name: value\r\n" each, so that
 * the head stays well formed whatever the caller passes. */
bool wsk__http_are_header_lines(const char *s)
{
    while (*s) {
        size_t n = strcspn(s, "\r\n");
        if (!wsk__http_is_field_line(s, n, NULL) || s[n] != '\r' || s[n + 1] != '\n')
            return false;
        s += n + 2;
    }
    return true;
}

/* ---- status lines ---------------------------------------------------------- */

/* The reason phrase and its length for the codes RFC 9110 section 15 and
 * RFC 6585 name that a server of ours (or its application, through
 * wsk_conn_http_reply()) may send; NULL for others. */
static const char *known_reason(int status, size_t *len)
{
#define REASON(code, text)                                                                         \
    case code:                                                                                     \
        *len = sizeof text - 1;                                                                    \
        return text;
    switch (status) {
        REASON(100, "Continue")
        REASON(101, "Switching Protocols")
        REASON(200, "OK")
        REASON(201, "Created")
        REASON(202, "Accepted")
        REASON(204, "No Content")
        REASON(206, "Partial Content")
        REASON(301, "Moved Permanently")
        REASON(302, "Found")
        REASON(304, "Not Modified")
        REASON(307, "Temporary Redirect")
        REASON(308, "Permanent Redirect")
        REASON(400, "Bad Request")
        REASON(401, "Unauthorized")
        REASON(403, "Forbidden")
        REASON(404, "Not Found")
        REASON(405, "Method Not Allowed")
        REASON(408, "Request Timeout")
        REASON(411, "Length Required")
        REASON(413, "Content Too Large")
        REASON(414, "URI Too Long")
        REASON(416, "Range Not Satisfiable")
        REASON(426, "Upgrade Required")
        REASON(429, "Too Many Requests")
        REASON(431, "Request Header Fields Too Large")
        REASON(500, "Internal Server Error")
        REASON(501, "Not Implemented")
        REASON(502, "Bad Gateway")
        REASON(503, "Service Unavailable")
        REASON(505, "HTTP Version Not Supported")
    default:
        return NULL;
    }
#undef REASON
}

const char *wsk__http_reason(int status)
{
    static const char *const classes[] = {
        "Informational", "Success", "Redirection", "Client Error", "Server Error",
    };
    size_t len;
    const char *reason = known_reason(status, &len);
    if (reason)
        return reason;
    if (status >= 100 && status <= 599)
        return classes[status / 100 - 1];
    return "Unknown";
}

void wsk__http_status_line(struct wsk__wbuf *w, int status)
{
    size_t len;
    const char *reason = known_reason(status, &len);
    if (status >= 100 && status <= 999) {
        char start[] = "HTTP/1.1 000 ";
        start[9] = (char)('0' + status / 100);
        start[10] = (char)('0' + status / 10 % 10);
        start[11] = (char)('0' + status % 10);
        wsk__wbuf_put(w, start, sizeof start - 1);
    } else {
        /* Not a status code: written as it is rather than cut to three
         * digits, so that the mistake shows. */
        wsk__wbuf_str(w, "HTTP/1.1 ");
        if (status < 0)
            wsk__wbuf_char(w, '-');
        wsk__wbuf_u64(w, status < 0 ? (uint64_t)0 - (uint64_t)(int64_t)status : (uint64_t)status);
        wsk__wbuf_char(w, ' ');
    }
    if (reason)
        wsk__wbuf_put(w, reason, len);
    else
        wsk__wbuf_str(w, wsk__http_reason(status));
    wsk__wbuf_put(w, "\r\n", 2);
}

/* ---- requests ------------------------------------------------------------ */

/* Path, query and host bytes go between spaces and into a header line. */
static bool is_target_text(struct wsk_slice s)
{
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c <= ' ' || c == 0x7f)
            return false;
    }
    return true;
}

/* The index of the caller's header named name, or num when there is none. */
static size_t find_header(const struct wsk_http_request_spec *spec, const char *name)
{
    size_t name_len = strlen(name);
    for (size_t i = 0; i < spec->num_headers; i++) {
        struct wsk_slice h;
        if (wsk__http_is_field_line(spec->headers[i], strlen(spec->headers[i]), &h) &&
            wsk__slice_equals_nocase(h, name, name_len))
            return i;
    }
    return spec->num_headers;
}

static int check_request(const struct wsk_http_request_spec *spec)
{
    const struct wsk_url *u = spec->url;
    if (!wsk__http_is_token(spec->method ? spec->method : "GET") || u->host.len == 0 ||
        !is_target_text(u->host) || !is_target_text(u->path) || !is_target_text(u->query) ||
        u->path.len == 0 || u->path.ptr[0] != '/')
        return -EINVAL;
    if (spec->user_agent &&
        !wsk__http_is_field_value((struct wsk_slice){spec->user_agent, strlen(spec->user_agent)}))
        return -EINVAL;
    for (size_t i = 0; i < spec->num_headers; i++) {
        struct wsk_slice name;
        const char *h = spec->headers[i];
        if (!h || !wsk__http_is_field_line(h, strlen(h), &name) ||
            wsk__slice_equals_nocase(name, "Content-Length", 14) ||
            wsk__slice_equals_nocase(name, "Transfer-Encoding", 17))
            return -EINVAL;
    }
    return 0;
}

int wsk_http_request_write(char *out, size_t cap, const struct wsk_http_request_spec *spec)
{
    if (!spec || !spec->url || (spec->num_headers && !spec->headers))
        return -EINVAL;
    int rv = check_request(spec);
    if (rv < 0)
        return rv;
    const struct wsk_url *u = spec->url;
    struct wsk__wbuf w = wsk__wbuf_init(out, cap);
    wsk__wbuf_str(&w, spec->method ? spec->method : "GET");
    wsk__wbuf_char(&w, ' ');
    wsk__wbuf_slice(&w, u->path);
    if (u->has_query) {
        wsk__wbuf_char(&w, '?');
        wsk__wbuf_slice(&w, u->query);
    }
    wsk__wbuf_str(&w, " HTTP/1.1\r\n");
    if (find_header(spec, "Host") == spec->num_headers) {
        wsk__wbuf_str(&w, u->is_ipv6 ? "Host: [" : "Host: ");
        wsk__wbuf_slice(&w, u->host);
        if (u->is_ipv6)
            wsk__wbuf_char(&w, ']');
        if (u->port != wsk_url_default_port(u->scheme)) {
            wsk__wbuf_char(&w, ':');
            wsk__wbuf_u64(&w, u->port);
        }
        wsk__wbuf_str(&w, "\r\n");
    }
    if (spec->user_agent && *spec->user_agent &&
        find_header(spec, "User-Agent") == spec->num_headers) {
        wsk__wbuf_str(&w, "User-Agent: ");
        wsk__wbuf_str(&w, spec->user_agent);
        wsk__wbuf_str(&w, "\r\n");
    }
    for (size_t i = 0; i < spec->num_headers; i++) {
        wsk__wbuf_str(&w, spec->headers[i]);
        wsk__wbuf_str(&w, "\r\n");
    }
    if (spec->has_body) {
        wsk__wbuf_str(&w, "Content-Length: ");
        wsk__wbuf_u64(&w, spec->body_len);
        wsk__wbuf_str(&w, "\r\n");
    }
    if (!spec->keep_alive && find_header(spec, "Connection") == spec->num_headers)
        wsk__wbuf_str(&w, "Connection: close\r\n");
    wsk__wbuf_str(&w, "\r\n");
    return wsk__wbuf_finish(&w);
}

/* ---- response heads -------------------------------------------------------- */

int wsk__http_head(char *out, size_t cap, int status, const char *content_type,
                   uint64_t content_length, bool keep_alive, const char *extra, int64_t now)
{
    char date[30];
    wsk__http_date(now, date);
    struct wsk__wbuf w = wsk__wbuf_init(out, cap);
    wsk__http_status_line(&w, status);
    wsk__wbuf_str(&w, "Server: wsk\r\nDate: ");
    wsk__wbuf_put(&w, date, 29);
    wsk__wbuf_str(&w, "\r\n");
    if (content_type != NULL) {
        wsk__wbuf_str(&w, "Content-Type: ");
        wsk__wbuf_str(&w, content_type);
        wsk__wbuf_str(&w, "\r\n");
    }
    wsk__wbuf_str(&w, "Content-Length: ");
    wsk__wbuf_u64(&w, content_length);
    wsk__wbuf_str(&w, keep_alive ? "\r\nConnection: keep-alive\r\n" : "\r\nConnection: close\r\n");
    if (extra != NULL)
        wsk__wbuf_str(&w, extra);
    wsk__wbuf_str(&w, "\r\n");
    return wsk__wbuf_finish_cstr(&w);
}

/* ---- dates ----------------------------------------------------------------- */

#define DATE_MIN (-62135596800LL) /* 0001-01-01T00:00:00Z */
#define DATE_MAX 253402300799LL   /* 9999-12-31T23:59:59Z */

static char *put_digits(char *p, int64_t v, int width)
{
    for (int k = width - 1; k >= 0; k--) {
        p[k] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + width;
}

static char *put_str(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

/* Calendar arithmetic by hand rather than gmtime_r(): no dependence on the
 * width of time_t, and the result for any int64_t is defined. The date
 * conversion is Howard Hinnant's days_from_civil inverse ("chrono-Compatible
 * Low-Level Date Algorithms"), which counts in 400-year eras from 0000-03-01
 * so that the leap day falls at the end of each year. */
void wsk__http_date(int64_t t, char out[30])
{
    static const char wdays[7][4] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    if (t < DATE_MIN)
        t = DATE_MIN;
    if (t > DATE_MAX)
        t = DATE_MAX;
    int64_t days = t / 86400, secs = t % 86400;
    if (secs < 0) {
        secs += 86400;
        days--;
    }
    int wday = (int)(((days % 7) + 7) % 7); /* 1970-01-01 was a Thursday */

    int64_t z = days + 719468; /* days since 0000-03-01 */
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;                                      /* [0, 146096] */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365] */
    int64_t mp = (5 * doy + 2) / 153;                                    /* March = 0 */
    int64_t mday = doy - (153 * mp + 2) / 5 + 1;
    int64_t month = mp < 10 ? mp + 3 : mp - 9;
    int64_t year = yoe + era * 400 + (month <= 2);

    char *p = out;
    p = put_str(p, wdays[wday], 3);
    p = put_str(p, ", ", 2);
    p = put_digits(p, mday, 2);
    *p++ = ' ';
    p = put_str(p, months[month - 1], 3);
    *p++ = ' ';
    p = put_digits(p, year, 4);
    *p++ = ' ';
    p = put_digits(p, secs / 3600, 2);
    *p++ = ':';
    p = put_digits(p, secs / 60 % 60, 2);
    *p++ = ':';
    p = put_digits(p, secs % 60, 2);
    p = put_str(p, " GMT", 4);
    *p = '\0';
}

/* ---- content types ------------------------------------------------------ */

static const struct {
    const char *ext;
    const char *type;
} mime_types[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"json", "application/json"},
    {"map", "application/json"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"ico", "image/x-icon"},
    {"txt", "text/plain; charset=utf-8"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"wasm", "application/wasm"},
    {"webp", "image/webp"},
    {"woff2", "font/woff2"},
    {"woff", "font/woff"},
    {"ttf", "font/ttf"},
    {"otf", "font/otf"},
    {"avif", "image/avif"},
    {"bmp", "image/bmp"},
    {"tif", "image/tiff"},
    {"tiff", "image/tiff"},
    {"mp4", "video/mp4"},
    {"webm", "video/webm"},
    {"ogv", "video/ogg"},
    {"mp3", "audio/mpeg"},
    {"ogg", "audio/ogg"},
    {"oga", "audio/ogg"},
    {"opus", "audio/ogg"},
    {"wav", "audio/wav"},
    {"flac", "audio/flac"},
    {"m4a", "audio/mp4"},
    {"csv", "text/csv; charset=utf-8"},
    {"md", "text/markdown; charset=utf-8"},
    {"xml", "application/xml"},
    {"pdf", "application/pdf"},
    {"zip", "application/zip"},
    {"gz", "application/gzip"},
    {"tar", "application/x-tar"},
    {"webmanifest", "application/manifest+json"},
    {"jsonld", "application/ld+json"},
    {"ics", "text/calendar; charset=utf-8"},
    {"vtt", "text/vtt; charset=utf-8"},
};

/* ASCII only: strncasecmp() would consult the locale. */
static bool ext_equals(const char *ext, size_t len, const char *lower)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)ext[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        if (lower[i] == '\0' || c != (unsigned char)lower[i])
            return false;
    }
    return lower[len] == '\0';
}

const char *wsk__mime_type(const char *path, size_t len)
{
    size_t i = len;
    while (i > 0 && path[i - 1] != '.' && path[i - 1] != '/')
        i--;
    if (i > 0 && path[i - 1] == '.') {
        for (size_t k = 0; k < sizeof mime_types / sizeof mime_types[0]; k++) {
            if (ext_equals(path + i, len - i, mime_types[k].ext))
                return mime_types[k].type;
        }
    }
    return "application/octet-stream";
}
