/* Private to src/ws: the static-file half of `wsk serve --static DIR`.
 *
 * Everything here is synchronous and loop-free: the server maps a request
 * path to an open file (or to a status), then writes the response head with
 * the HTTP/1.1 module (proto/http1_internal.h) and sends the head and the
 * file's bytes on its own.
 *
 * Safety model: a request can only ever name a regular file under the root.
 *   - The path is decoded once and checked segment by segment before any
 *     system call: ".." segments, encoded or literal separators inside a
 *     segment, NUL and raw control bytes never reach the file system.
 *   - The file is opened relative to the root's directory fd, never by
 *     absolute path, with openat2(RESOLVE_BENEATH) when the kernel has it.
 *     Without openat2 the opened file's kernel-reported path is checked to
 *     lie under the root, so symlinks cannot lead out either way.
 *   - Only an O_PATH descriptor is taken until fstat() has shown a regular
 *     file, so FIFOs and device nodes are never opened for reading (opening
 *     a FIFO blocks; opening some devices has side effects).
 */
#ifndef WSK_WS_STATIC_H
#define WSK_WS_STATIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wsk/common.h"

/* The directory that files are served from. */
struct wsk__static_root {
    int dirfd;       /* O_PATH|O_DIRECTORY|O_CLOEXEC */
    char *real;      /* realpath() of the directory, malloc()ed */
    size_t real_len; /* strlen(real) */
};

/* Opens the static root: realpath()s dir and keeps an O_PATH|O_DIRECTORY fd
 * on it.
 *
 * Returns 0, or a negative errno: -ENOENT, -ENOTDIR, -EACCES, -ENOMEM, ...,
 * and -EINVAL when dir is NULL. On failure root->dirfd is -1 and root->real
 * NULL, so wsk__static_root_close() is safe after any call to this function.
 *
 * If the directory is renamed or moved while open, requests keep resolving
 * from the same directory, but without openat2() (Linux < 5.6) every file is
 * then refused with 403, because root->real no longer names it. */
int wsk__static_root_open(struct wsk__static_root *root, const char *dir);

/* Closes the fd and frees root->real. Safe to call twice. */
void wsk__static_root_close(struct wsk__static_root *root);

struct wsk__static_file {
    int fd;                   /* O_RDONLY|O_CLOEXEC regular file; -1 unless status is 200 */
    uint64_t size;            /* bytes, for Content-Length */
    int64_t mtime;            /* seconds since the epoch, for Last-Modified */
    const char *content_type; /* static string; NULL unless status is 200 */
};

/* Resolves an HTTP request path under root and, for 200, opens the file.
 *
 * path is the raw request path: still percent-encoded, without the query. It
 * is borrowed for the call and need not be NUL-terminated. On 200 the caller
 * owns out->fd and must close it; for every other status out->fd is -1.
 *
 * Returns the HTTP status for the response:
 *   200  a regular file was opened. A path ending in '/' names a directory
 *        and serves its index.html.
 *   301  the path names a directory but lacks the trailing slash; the caller
 *        redirects to the raw path + "/". Only returned for paths that start
 *        with exactly one '/', so the Location can never be a
 *        protocol-relative URL ("//host/").
 *   400  malformed: empty, no leading '/', a bad %XX escape, %00, or a raw
 *        control byte, space or DEL (which would also be unsafe to echo in
 *        a Location header).
 *   403  refused: a ".." segment (also %2e%2e, .%2e, %2e.), even one that
 *        would stay inside the root; an encoded separator (%2F, %5C) or a
 *        literal backslash in a segment; a symlink that leads out of the root
 *        (with openat2 this includes every absolute symlink, even one that
 *        points back inside: use relative links); anything that is not a
 *        regular file or a directory (FIFO, socket, device); a file the
 *        process may not read.
 *   404  not found: missing files, a directory without index.html, a path
 *        through a regular file ("/a.js/"), an empty segment ("//x", "/a//b"),
 *        any segment that starts with '.' other than ".." (".git", ".env",
 *        "."), so dot-files are refused without revealing whether they
 *        exist; a path or segment too long to name a file.
 *   500  the file system failed unexpectedly (EIO, ...) or, without
 *        openat2(), /proc is not mounted so the check cannot be made.
 *   503  out of file descriptors or memory, or a rename race persisted;
 *        worth retrying later.
 *
 * Segments are decoded once: "%252e" names a file called "%2e". Raw bytes
 * >= 0x80 are passed through, so UTF-8 file names work both raw and encoded.
 * Hard links cannot be told apart from the file they link to: a hard link in
 * the root to a file elsewhere is served. */
int wsk__static_resolve(const struct wsk__static_root *root, struct wsk_slice path,
                        struct wsk__static_file *out);

/* For a directory listing: opens the directory that path (raw, ending in
 * '/') names under root, with the same checks as wsk__static_resolve().
 * Returns 200 with *dirfd an O_RDONLY|O_DIRECTORY fd the caller closes, or
 * the status to answer (404 for a path without the trailing '/' or not a
 * directory; 400, 403, 500, 503 as above) with *dirfd -1. */
int wsk__static_open_dir(const struct wsk__static_root *root, struct wsk_slice path, int *dirfd);

/* Builds the HTML listing of fd (a directory, which it closes) for the request path
 * path: subdirectories (with '/') and regular files with their sizes,
 * sorted by name; names that start with '.' and anything else (symlinks,
 * FIFOs, ...) are left out, as they are never served by name either. At
 * most WSK__LIST_MAX entries (a line says how many more there were).
 * Returns 0 with *html (malloc()ed, the caller frees) and *len, or
 * -ENOMEM, or a negative errno from reading the directory. */
#define WSK__LIST_MAX 10000
int wsk__static_list(int fd, struct wsk_slice path, char **html, size_t *len);

/* Test hook: when true, wsk__static_resolve() behaves as on a kernel without
 * openat2(). Only tests set it, before resolving; it is not synchronised. */
extern bool wsk__static_no_openat2;

#endif
