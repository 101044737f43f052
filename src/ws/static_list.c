/* Directory listings for `wsk serve --static DIR --list-dirs` (see
 * static.h): what the directory holds that could be served by name, as a
 * small HTML page.
 *
 * Bounded: at most WSK__LIST_MAX entries are kept (the rest are counted),
 * each name at most NAME_MAX bytes, so a page is at most a few MB however
 * large the directory. Names are the file system's bytes: HTML-escaped in
 * the text and percent-encoded in the links, so a file called
 * "<script>.html" is shown, not run.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ws/static.h"

struct entry {
    char *name;
    bool is_dir;
    uint64_t size;
};

struct page {
    char *buf;
    size_t len, cap;
    bool failed;
};

static void put(struct page *p, const char *s, size_t n)
{
    if (p->failed)
        return;
    if (p->len + n + 1 > p->cap) {
        size_t cap = p->cap ? p->cap : 4096;
        while (cap < p->len + n + 1)
            cap *= 2;
        char *b = realloc(p->buf, cap);
        if (!b) {
            p->failed = true;
            return;
        }
        p->buf = b;
        p->cap = cap;
    }
    memcpy(p->buf + p->len, s, n);
    p->len += n;
    p->buf[p->len] = 0;
}

static void puts_(struct page *p, const char *s)
{
    put(p, s, strlen(s));
}

static void put_html(struct page *p, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        switch (s[i]) {
        case '&':
            puts_(p, "&amp;");
            break;
        case '<':
            puts_(p, "&lt;");
            break;
        case '>':
            puts_(p, "&gt;");
            break;
        case '"':
            puts_(p, "&quot;");
            break;
        case '\'':
            puts_(p, "&#39;");
            break;
        default:
            put(p, s + i, 1);
        }
    }
}

/* A path segment for an href: unreserved bytes as they are (RFC 3986
 * section 2.3), everything else %XX. */
static void put_href(struct page *p, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
            *c == '-' || *c == '.' || *c == '_' || *c == '~') {
            put(p, (const char *)c, 1);
        } else {
            char e[3] = {'%', hex[*c >> 4], hex[*c & 15]};
            put(p, e, 3);
        }
    }
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct entry *)a)->name, ((const struct entry *)b)->name);
}

static void free_entries(struct entry *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].name);
    free(v);
}

/* Reads the directory: entries kept, and how many more there were. */
static int read_entries(int fd, struct entry **out, size_t *count, size_t *more)
{
    DIR *d = fdopendir(fd);
    if (!d) {
        int err = errno;
        close(fd);
        return -err;
    }
    struct entry *v = NULL;
    size_t n = 0, cap = 0;
    *more = 0;
    int rv = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            rv = errno ? -errno : 0;
            break;
        }
        if (de->d_name[0] == '.')
            continue;
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)))
            continue;
        if (n == WSK__LIST_MAX) {
            (*more)++;
            continue;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            struct entry *nv = realloc(v, ncap * sizeof *v);
            if (!nv) {
                rv = -ENOMEM;
                break;
            }
            v = nv;
            cap = ncap;
        }
        v[n].name = strdup(de->d_name);
        if (!v[n].name) {
            rv = -ENOMEM;
            break;
        }
        v[n].is_dir = S_ISDIR(st.st_mode);
        v[n].size = (uint64_t)st.st_size;
        n++;
    }
    closedir(d);
    if (rv < 0) {
        free_entries(v, n);
        return rv;
    }
    *out = v;
    *count = n;
    return 0;
}

int wsk__static_list(int fd, struct wsk_slice path, char **html, size_t *len)
{
    struct entry *v = NULL;
    size_t n = 0, more = 0;
    int rv = read_entries(fd, &v, &n, &more);
    if (rv < 0)
        return rv;
    if (n > 1)
        qsort(v, n, sizeof *v, by_name);

    struct page p = {0};
    puts_(&p, "<!doctype html>\n<html><head><meta charset=\"utf-8\">"
              "<meta name=\"viewport\" content=\"width=device-width\"><title>Index of ");
    put_html(&p, path.ptr, path.len);
    puts_(&p, "</title>\n<style>body{font:15px system-ui,sans-serif;margin:2em}"
              "td{padding:.15em 1.5em .15em 0}td.n{text-align:right;font-variant-numeric:"
              "tabular-nums}</style></head>\n<body><h1>Index of ");
    put_html(&p, path.ptr, path.len);
    puts_(&p, "</h1>\n<table>\n");
    if (path.len > 1)
        puts_(&p, "<tr><td><a href=\"../\">../</a></td><td></td></tr>\n");
    for (size_t i = 0; i < n; i++) {
        char size[32] = "";
        if (!v[i].is_dir)
            snprintf(size, sizeof size, "%llu", (unsigned long long)v[i].size);
        puts_(&p, "<tr><td><a href=\"");
        put_href(&p, v[i].name);
        puts_(&p, v[i].is_dir ? "/\">" : "\">");
        put_html(&p, v[i].name, strlen(v[i].name));
        puts_(&p, v[i].is_dir ? "/</a></td><td></td></tr>\n" : "</a></td><td class=\"n\">");
        if (!v[i].is_dir) {
            puts_(&p, size);
            puts_(&p, "</td></tr>\n");
        }
    }
    puts_(&p, "</table>\n");
    if (more) {
        char line[96];
        snprintf(line, sizeof line, "<p>%zu more entries not shown (at most %d are).</p>\n", more,
                 WSK__LIST_MAX);
        puts_(&p, line);
    }
    puts_(&p, "</body></html>\n");
    free_entries(v, n);
    if (p.failed) {
        free(p.buf);
        return -ENOMEM;
    }
    *html = p.buf;
    *len = p.len;
    return 0;
}
