/* Static files for `wsk serve --static DIR`: request path to open file. The
 * response head, its date and the file's content type are written by the
 * HTTP/1.1 module, src/proto/http1_write.c.
 *
 * A request is served in four steps, each of which can only narrow what the
 * next one sees:
 *
 *   raw path --decode_path--> relative name --open_beneath--> O_PATH fd
 *            --fstat--> regular file? --open_for_read--> O_RDONLY fd
 *
 * decode_path() works on the bytes alone and refuses everything that could
 * climb (".." in any spelling) or smuggle a separator into a segment, so the
 * name handed to the kernel is plain "seg/seg/seg" with no "..", no leading
 * '/', no NUL. That alone would be enough without symlinks. Symlinks are
 * what open_beneath() is for: with openat2(RESOLVE_BENEATH) the kernel
 * refuses, during the lookup, any step that leaves the directory fd; on
 * kernels before 5.6 (or under a seccomp filter that hides openat2) the file
 * is opened with plain openat() and its kernel-reported path, the target of
 * /proc/self/fd/N, must lie under the root's realpath().
 *
 * The first open is O_PATH, which does not open the file itself: opening a
 * FIFO for reading blocks until a writer appears (a stall of the whole event
 * loop), and opening some devices has side effects (/dev/watchdog arms a
 * reboot). Only once fstat() has shown a regular file is it opened for
 * reading.
 */
#include "ws/static.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "proto/http1_internal.h"
#include "wsk/error.h"

/* openat2() is not in glibc, and <linux/openat2.h> is missing from older
 * kernel headers; the ABI is fixed, so it is spelled out here. */
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#define RESOLVE_NO_MAGICLINKS_ 0x02
#define RESOLVE_BENEATH_       0x08

struct open_how_ {
    uint64_t flags;
    uint64_t mode;
    uint64_t resolve;
};

#define INDEX_NAME "index.html"

/* RESOLVE_BENEATH fails with EAGAIN when a concurrent rename might have let a
 * lookup escape; the kernel expects callers to retry. */
#define OPENAT2_TRIES 8

bool wsk__static_no_openat2;

/* Set once openat2() has returned ENOSYS, so that old kernels pay for the
 * failed system call only once. Atomic because several loops (threads) may
 * serve files at the same time. */
static atomic_bool kernel_lacks_openat2;

int wsk__static_root_open(struct wsk__static_root *root, const char *dir)
{
    root->dirfd = -1;
    root->real = NULL;
    root->real_len = 0;
    if (dir == NULL)
        return -EINVAL;

    char *real = realpath(dir, NULL);
    if (real == NULL)
        return -errno;
    /* Opening the canonical name, not dir, makes the fd and root->real name
     * the same directory (barring a rename in between, which only makes the
     * fallback check refuse files, never accept them). */
    int fd = open(real, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        free(real);
        return -err;
    }
    root->dirfd = fd;
    root->real = real;
    root->real_len = strlen(real);
    return 0;
}

void wsk__static_root_close(struct wsk__static_root *root)
{
    if (root->dirfd >= 0)
        close(root->dirfd);
    free(root->real);
    root->dirfd = -1;
    root->real = NULL;
    root->real_len = 0;
}

/* ---- path decoding ------------------------------------------------------ */

/* Decodes the raw request path into rel as "seg/seg/.../seg" (no leading
 * '/'), NUL-terminated, with a trailing '/' when the path ends in one. Sets
 * *is_dir when it does. Returns 0, or the HTTP status that refuses the path.
 *
 * Every check is on decoded bytes, which is what the file system will see, so
 * no spelling of ".." or of a separator can get through. Empty segments are
 * refused rather than merged: merging would make "//host" name the root and
 * the 301 for it would redirect to the protocol-relative URL "//host/". */
static int decode_path(struct wsk_slice path, char *rel, size_t cap, size_t *rel_len, bool *is_dir)
{
    const unsigned char *p = (const unsigned char *)path.ptr;
    size_t len = path.len;
    size_t i = 1, n = 0;

    *is_dir = false;
    if (len == 0 || p[0] != '/')
        return 400;
    for (;;) {
        size_t seg = n;
        while (i < len && p[i] != '/') {
            unsigned char c = p[i++];
            if (c <= 0x20 || c == 0x7f)
                return 400;
            if (c == '%') {
                if (len - i < 2 || wsk__hex_value(p[i]) < 0 || wsk__hex_value(p[i + 1]) < 0)
                    return 400;
                c = (unsigned char)(wsk__hex_value(p[i]) << 4 | wsk__hex_value(p[i + 1]));
                i += 2;
                if (c == '\0')
                    return 400;
                if (c == '/')
                    return 403;
            }
            /* A backslash is an ordinary byte to Linux but a separator to
             * Windows-minded proxies and to browsers resolving a Location. */
            if (c == '\\')
                return 403;
            if (n + 1 >= cap)
                return 404;
            rel[n++] = (char)c;
        }
        size_t seg_len = n - seg;
        if (seg_len == 0) {
            if (i < len)
                return 404;
            *is_dir = true; /* "/" or a trailing '/' */
            break;
        }
        if (rel[seg] == '.')
            return seg_len == 2 && rel[seg + 1] == '.' ? 403 : 404;
        if (seg_len > NAME_MAX)
            return 404;
        if (i == len)
            break;
        i++; /* the '/' */
        if (n + 1 >= cap)
            return 404;
        rel[n++] = '/';
    }
    rel[n] = '\0';
    *rel_len = n;
    return 0;
}

/* ---- opening ----------------------------------------------------------- */

static int status_for_errno(int err)
{
    switch (err) {
    case ENOENT:
    case ENOTDIR:
    case ENAMETOOLONG:
        return 404;
    case EXDEV: /* RESOLVE_BENEATH: the lookup would leave the root */
    case ELOOP: /* a symlink loop, or a /proc magic link */
    case EACCES:
    case EPERM:
        return 403;
    case EAGAIN:
    case EMFILE:
    case ENFILE:
    case ENOMEM:
        return 503;
    default:
        return 500;
    }
}

/* Returns the fd from openat2(root, rel, flags) confined beneath the root,
 * or -errno; -ENOSYS when openat2 is not to be used. */
static int openat2_beneath(const struct wsk__static_root *root, const char *rel, int flags)
{
    if (wsk__static_no_openat2 || atomic_load_explicit(&kernel_lacks_openat2, memory_order_relaxed))
        return -ENOSYS;
    struct open_how_ how = {
        .flags = (uint64_t)flags,
        .resolve = RESOLVE_BENEATH_ | RESOLVE_NO_MAGICLINKS_,
    };
    for (int tries = 0; tries < OPENAT2_TRIES; tries++) {
        long fd = syscall(SYS_openat2, root->dirfd, rel, &how, sizeof how);
        if (fd >= 0)
            return (int)fd;
        if (errno == EINTR || errno == EAGAIN)
            continue;
        if (errno == ENOSYS)
            atomic_store_explicit(&kernel_lacks_openat2, true, memory_order_relaxed);
        return -errno;
    }
    return -EAGAIN;
}

/* Without openat2: checks that the file behind fd, as the kernel names it
 * after following every symlink, is the root or lies below it. Returns 0,
 * -EXDEV (outside), -ENAMETOOLONG, or -EIO when /proc cannot tell, since then
 * nothing can be served safely. */
static int check_under_root(const struct wsk__static_root *root, int fd)
{
    char proc[32], real[PATH_MAX];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(proc, real, sizeof real);
    if (n < 0)
        return -EIO;
    if ((size_t)n == sizeof real)
        return -ENAMETOOLONG;
    size_t rl = root->real_len;
    /* Compare whole segments: "/srv/www" must not accept "/srv/www-secret". */
    if (rl == 1) /* the root is "/" */
        return real[0] == '/' ? 0 : -EXDEV;
    if ((size_t)n < rl || memcmp(real, root->real, rl) != 0)
        return -EXDEV;
    if ((size_t)n > rl && real[rl] != '/')
        return -EXDEV;
    return 0;
}

/* Opens rel under the root as an O_PATH fd that is known to lie beneath it.
 * Sets *by_openat2 to the method used. Returns the fd or -errno. */
static int open_beneath(const struct wsk__static_root *root, const char *rel, bool *by_openat2)
{
    int fd = openat2_beneath(root, rel, O_PATH | O_CLOEXEC);
    /* A seccomp filter that predates openat2 may answer EPERM instead of
     * ENOSYS. EPERM is not cached like ENOSYS, since it can also be a real
     * answer about this one file; the fallback is safe either way. */
    *by_openat2 = fd != -ENOSYS && fd != -EPERM;
    if (*by_openat2)
        return fd;

    fd = openat(root->dirfd, rel, O_PATH | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rv = check_under_root(root, fd);
    if (rv < 0) {
        close(fd);
        return rv;
    }
    return fd;
}

/* Opens for reading the regular file that path_fd (O_PATH, described by st)
 * refers to. Returns the fd or -errno. */
static int open_for_read(const struct wsk__static_root *root, const char *rel, int path_fd,
                         const struct stat *st, bool by_openat2)
{
    if (!by_openat2) {
        /* /proc is known to work here (check_under_root used it), and
         * reopening through it opens exactly the inode that was checked. */
        char proc[32];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", path_fd);
        int fd = open(proc, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        return fd < 0 ? -errno : fd;
    }

    /* With openat2, /proc may be absent, so look the name up again, still
     * beneath the root. If it was replaced since the fstat(), O_NONBLOCK
     * keeps a FIFO from stalling us before the comparison below notices. */
    int fd = openat2_beneath(root, rel, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return fd;
    struct stat now;
    if (fstat(fd, &now) != 0 || !S_ISREG(now.st_mode) || now.st_dev != st->st_dev ||
        now.st_ino != st->st_ino) {
        close(fd);
        return -ENOENT;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

int wsk__static_open_dir(const struct wsk__static_root *root, struct wsk_slice path, int *dirfd)
{
    char rel[PATH_MAX];
    size_t rel_len;
    bool is_dir, by_openat2;

    *dirfd = -1;
    int status = decode_path(path, rel, sizeof rel, &rel_len, &is_dir);
    if (status != 0)
        return status;
    if (!is_dir)
        return 404;
    int path_fd = open_beneath(root, rel_len ? rel : ".", &by_openat2);
    if (path_fd < 0)
        return status_for_errno(-path_fd);
    struct stat st;
    if (fstat(path_fd, &st) != 0 || !S_ISDIR(st.st_mode)) {
        close(path_fd);
        return 404;
    }
    /* The O_PATH fd was checked to lie beneath the root; "." through it is
     * that same directory. */
    int fd = openat(path_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    status = fd < 0 ? status_for_errno(errno) : 200;
    close(path_fd);
    *dirfd = fd;
    return status;
}

int wsk__static_resolve(const struct wsk__static_root *root, struct wsk_slice path,
                        struct wsk__static_file *out)
{
    char rel[PATH_MAX];
    size_t rel_len;
    bool is_dir, by_openat2;

    out->fd = -1;
    out->size = 0;
    out->mtime = 0;
    out->content_type = NULL;

    int status = decode_path(path, rel, sizeof rel - (sizeof INDEX_NAME - 1), &rel_len, &is_dir);
    if (status != 0)
        return status;
    if (is_dir) {
        memcpy(rel + rel_len, INDEX_NAME, sizeof INDEX_NAME);
        rel_len += sizeof INDEX_NAME - 1;
    }

    int path_fd = open_beneath(root, rel, &by_openat2);
    if (path_fd < 0)
        return status_for_errno(-path_fd);
    struct stat st;
    if (fstat(path_fd, &st) != 0) {
        status = status_for_errno(errno);
        close(path_fd);
        return status;
    }
    if (!S_ISREG(st.st_mode)) {
        close(path_fd);
        /* A directory named by a path without its trailing slash is
         * redirected, so that relative links inside its index resolve
         * against the directory. An index.html that is not a file is no
         * index. */
        if (is_dir)
            return 404;
        return S_ISDIR(st.st_mode) ? 301 : 403;
    }

    int fd = open_for_read(root, rel, path_fd, &st, by_openat2);
    close(path_fd);
    if (fd < 0)
        return status_for_errno(-fd);
    out->fd = fd;
    out->size = (uint64_t)st.st_size;
    out->mtime = (int64_t)st.st_mtim.tv_sec;
    out->content_type = wsk__mime_type(rel, rel_len);
    return 200;
}
