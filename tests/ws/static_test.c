/* Tests for static file serving (src/ws/static.c).
 *
 * A real tree is built under /tmp: the root, and next to it a sibling
 * directory whose name extends the root's ("/tmp/wsk-static-XXXXXX-secret"),
 * so that a prefix check that forgets the '/' would let it through. Every
 * resolution test runs twice: with openat2(RESOLVE_BENEATH) when the kernel
 * has it, and with the /proc/self/fd check used on kernels without it. Each
 * traversal attempt must be refused with the documented status and leave no
 * fd open; at the end the process must hold exactly the fds it started with.
 */
#include "ws/static.h"
#include "wsk/error.h"
#include "wsk_test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

static char base[32];         /* the root, as made by mkdtemp() */
static char secret[48];       /* base + "-secret", outside the root */
static const char *base_name; /* "wsk-static-XXXXXX" */
static struct wsk__static_root root;
static bool kernel_has_openat2;
static bool has_fifo, has_device;

/* ---- helpers -------------------------------------------------------------- */

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    int n = 0;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

static void make_path(char *out, size_t cap, const char *dir, const char *rel)
{
    int n = snprintf(out, cap, "%s/%s", dir, rel);
    if (n < 0 || (size_t)n >= cap) {
        fprintf(stderr, "path too long: %s/%s\n", dir, rel);
        exit(2);
    }
}

static void must(bool ok, const char *what, const char *rel)
{
    if (!ok) {
        fprintf(stderr, "setup: %s %s: %s\n", what, rel, strerror(errno));
        exit(2);
    }
}

static void put_file(const char *dir, const char *rel, const char *content)
{
    char p[PATH_MAX];
    make_path(p, sizeof p, dir, rel);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    must(fd >= 0, "create", p);
    size_t len = strlen(content);
    must(write(fd, content, len) == (ssize_t)len, "write", p);
    close(fd);
}

static void put_dir(const char *dir, const char *rel)
{
    char p[PATH_MAX];
    make_path(p, sizeof p, dir, rel);
    must(mkdir(p, 0755) == 0, "mkdir", p);
}

static void put_link(const char *target, const char *rel)
{
    char p[PATH_MAX];
    make_path(p, sizeof p, base, rel);
    must(symlink(target, p) == 0, "symlink", p);
}

static int resolve_n(const char *path, size_t len, struct wsk__static_file *f)
{
    return wsk__static_resolve(&root, (struct wsk_slice){path, len}, f);
}

static int resolve(const char *path, struct wsk__static_file *f)
{
    return resolve_n(path, strlen(path), f);
}

/* Checks that path is served with exactly this body and type, through an fd
 * opened read-only, close-on-exec and blocking. */
static void expect_file(const char *path, const char *body, const char *type)
{
    struct wsk__static_file f;
    int status = resolve(path, &f);
    if (status != 200) {
        fprintf(stderr, "  path \"%s\"\n", path);
        CHECK_EQ_INT(status, 200);
        return;
    }
    CHECK(f.fd >= 0);
    CHECK_STR(f.content_type, type);
    CHECK_EQ_INT(f.size, strlen(body));
    char buf[256];
    ssize_t n = pread(f.fd, buf, sizeof buf, 0);
    CHECK_EQ_INT(n, strlen(body));
    if (n >= 0 && (size_t)n == strlen(body))
        CHECK_MEM(buf, body, (size_t)n);
    int fl = fcntl(f.fd, F_GETFL);
    CHECK_EQ_INT(fl & O_ACCMODE, O_RDONLY);
    CHECK(!(fl & O_NONBLOCK));
    CHECK(!(fl & O_PATH));
    CHECK(fcntl(f.fd, F_GETFD) & FD_CLOEXEC);
    close(f.fd);
}

/* Checks that path (len bytes) is refused with status and nothing is open. */
static void expect_status_n(const char *path, size_t len, int status)
{
    struct wsk__static_file f;
    int got = resolve_n(path, len, &f);
    if (got != status) {
        fprintf(stderr, "  path \"%.*s\"\n", (int)len, path);
        CHECK_EQ_INT(got, status);
    }
    CHECK_EQ_INT(f.fd, -1);
    CHECK(f.content_type == NULL);
    if (got == 200 && f.fd >= 0)
        close(f.fd);
}

static void expect_status(const char *path, int status)
{
    expect_status_n(path, strlen(path), status);
}

/* openat2 with RESOLVE_BENEATH is in use in this pass. */
static bool beneath(void)
{
    return kernel_has_openat2 && !wsk__static_no_openat2;
}

static bool probe_openat2(void)
{
    uint64_t how[3] = {O_PATH | O_CLOEXEC, 0, 0};
    long fd = syscall(SYS_openat2, AT_FDCWD, "/", how, sizeof how);
    if (fd < 0)
        return false;
    close((int)fd);
    return true;
}

/* ---- the tree --------------------------------------------------------------- */

static void build_tree(void)
{
    snprintf(base, sizeof base, "/tmp/wsk-static-XXXXXX");
    must(mkdtemp(base) != NULL, "mkdtemp", base);
    base_name = base + strlen("/tmp/");
    snprintf(secret, sizeof secret, "%s-secret", base);
    must(mkdir(secret, 0755) == 0, "mkdir", secret);
    put_file(secret, "secret.txt", "secret\n");
    put_file(secret, "index.html", "secret index\n");
    put_file(secret, "x", "secret x\n");

    put_file(base, "index.html", "<h1>index</h1>\n");
    put_file(base, "a.js", "console.log(1);\n");
    put_file(base, "style.css", "body{}\n");
    put_file(base, "data.json", "{}\n");
    put_file(base, "img.png", "\x89PNG\r\n");
    put_file(base, "x.svg", "<svg/>\n");
    put_file(base, "favicon.ico", "ico\n");
    put_file(base, "notes.txt", "notes\n");
    put_file(base, "a b.txt", "space\n");
    put_file(base, "PHOTO.JPG", "jpeg\n");
    put_file(base, "caf\xc3\xa9.txt", "utf-8 name\n");
    put_file(base, "%2e%2e", "literal percent name\n");
    put_file(base, "noext", "no extension\n");
    put_file(base, ".hidden", "hidden\n");
    put_dir(base, ".git");
    put_file(base, ".git/config", "[core]\n");
    put_dir(base, "sub");
    put_file(base, "sub/index.html", "<h1>sub</h1>\n");
    put_file(base, "sub/page.html", "<p>page</p>\n");
    put_dir(base, "empty");
    put_dir(base, "weird");
    put_dir(base, "weird/index.html");

    /* Inside the root: a relative file link and a relative directory link. */
    put_link("a.js", "link.js");
    put_link("sub", "sublink");
    put_link("../notes.txt", "sub/up.txt");
    /* Leading out: absolute and relative, to a file and to directories. */
    put_link("/etc/passwd", "passwd");
    put_link(secret, "outdir");
    char rel[PATH_MAX];
    snprintf(rel, sizeof rel, "../%s-secret", base_name);
    put_link(rel, "outrel");
    snprintf(rel, sizeof rel, "../%s-secret/secret.txt", base_name);
    put_link(rel, "outfile");
    put_link("../../..", "sub/deep");
    put_link("/proc/self/root", "magic");
    put_link("loop", "loop");
    /* Absolute, but pointing back inside the root. */
    char abs_target[PATH_MAX];
    make_path(abs_target, sizeof abs_target, base, "notes.txt");
    put_link(abs_target, "abs.txt");

    char p[PATH_MAX];
    make_path(p, sizeof p, base, "fifo");
    has_fifo = mkfifo(p, 0644) == 0;
    /* A device node needs CAP_MKNOD; /dev/null's numbers are harmless. */
    make_path(p, sizeof p, base, "null");
    has_device = mknod(p, S_IFCHR | 0666, makedev(1, 3)) == 0;

    make_path(p, sizeof p, base, "notes.txt");
    struct timespec times[2] = {{784111777, 0}, {784111777, 0}};
    must(utimensat(AT_FDCWD, p, times, 0) == 0, "utimensat", p);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    if (remove(path) != 0)
        fprintf(stderr, "cleanup: remove %s: %s\n", path, strerror(errno));
    return 0;
}

static void remove_tree(const char *dir)
{
    /* FTW_PHYS: delete the links themselves, never what they point to. */
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- root ------------------------------------------------------------------- */

static void test_root_open(void)
{
    struct wsk__static_root r;
    char p[PATH_MAX];

    make_path(p, sizeof p, base, "missing");
    CHECK_EQ_INT(wsk__static_root_open(&r, p), -ENOENT);
    CHECK_EQ_INT(r.dirfd, -1);
    CHECK(r.real == NULL);
    wsk__static_root_close(&r);

    make_path(p, sizeof p, base, "a.js");
    CHECK_EQ_INT(wsk__static_root_open(&r, p), -ENOTDIR);
    wsk__static_root_close(&r);
    CHECK_EQ_INT(wsk__static_root_open(&r, NULL), -EINVAL);

    /* A symlinked root is canonicalised; a trailing slash is dropped. */
    make_path(p, sizeof p, base, "sublink/");
    CHECK_EQ_INT(wsk__static_root_open(&r, p), 0);
    char want[PATH_MAX];
    make_path(want, sizeof want, base, "sub");
    CHECK_STR(r.real, want);
    CHECK_EQ_INT(r.real_len, strlen(want));
    struct wsk__static_file f;
    CHECK_EQ_INT(wsk__static_resolve(&r, (struct wsk_slice){"/page.html", 10}, &f), 200);
    close(f.fd);
    /* Resolving the link from the sub root leads to the parent. */
    CHECK_EQ_INT(wsk__static_resolve(&r, (struct wsk_slice){"/up.txt", 7}, &f), 403);
    wsk__static_root_close(&r);
    wsk__static_root_close(&r);
    CHECK_EQ_INT(r.dirfd, -1);
}

/* With "/" as the root the fallback's prefix check has no '/' to look for. */
static void test_root_is_slash(void)
{
    struct wsk__static_root r;
    CHECK_EQ_INT(wsk__static_root_open(&r, "/"), 0);
    CHECK_STR(r.real, "/");
    char p[PATH_MAX];
    make_path(p, sizeof p, base, "notes.txt");
    struct wsk__static_file f;
    CHECK_EQ_INT(wsk__static_resolve(&r, (struct wsk_slice){p, strlen(p)}, &f), 200);
    CHECK_EQ_INT(f.size, 6);
    close(f.fd);
    make_path(p, sizeof p, base, "sub");
    CHECK_EQ_INT(wsk__static_resolve(&r, (struct wsk_slice){p, strlen(p)}, &f), 301);
    wsk__static_root_close(&r);
}

/* ---- resolution ------------------------------------------------------------ */

static void test_served(void)
{
    expect_file("/", "<h1>index</h1>\n", "text/html; charset=utf-8");
    expect_file("/index.html", "<h1>index</h1>\n", "text/html; charset=utf-8");
    expect_file("/a.js", "console.log(1);\n", "text/javascript; charset=utf-8");
    expect_file("/style.css", "body{}\n", "text/css; charset=utf-8");
    expect_file("/data.json", "{}\n", "application/json");
    expect_file("/img.png", "\x89PNG\r\n", "image/png");
    expect_file("/x.svg", "<svg/>\n", "image/svg+xml");
    expect_file("/favicon.ico", "ico\n", "image/x-icon");
    expect_file("/notes.txt", "notes\n", "text/plain; charset=utf-8");
    expect_file("/PHOTO.JPG", "jpeg\n", "image/jpeg");
    expect_file("/noext", "no extension\n", "application/octet-stream");
    expect_file("/a%20b.txt", "space\n", "text/plain; charset=utf-8");
    expect_file("/%61.js", "console.log(1);\n", "text/javascript; charset=utf-8");
    expect_file("/caf%C3%A9.txt", "utf-8 name\n", "text/plain; charset=utf-8");
    expect_file("/caf\xc3\xa9.txt", "utf-8 name\n", "text/plain; charset=utf-8");
    /* Decoded once only: "%252e%252e" names the file "%2e%2e". */
    expect_file("/%252e%252e", "literal percent name\n", "application/octet-stream");
    expect_file("/sub/", "<h1>sub</h1>\n", "text/html; charset=utf-8");
    expect_file("/sub/page.html", "<p>page</p>\n", "text/html; charset=utf-8");
    expect_file("/link.js", "console.log(1);\n", "text/javascript; charset=utf-8");
    expect_file("/sublink/page.html", "<p>page</p>\n", "text/html; charset=utf-8");
    expect_file("/sub/up.txt", "notes\n", "text/plain; charset=utf-8");

    struct wsk__static_file f;
    CHECK_EQ_INT(resolve("/notes.txt", &f), 200);
    CHECK_EQ_INT(f.mtime, 784111777);
    close(f.fd);

    expect_status("/sub", 301);
    expect_status("/s%75b", 301);
    expect_status("/sublink", 301);
    expect_status("/empty", 301);
    expect_status("/empty/", 404);
    expect_status("/weird/", 404);
    expect_status("/missing", 404);
    expect_status("/missing/", 404);
    expect_status("/sub/missing.html", 404);
    expect_status("/a.js/", 404);
    expect_status("/a.js/x", 404);
    expect_status("/A.JS", 404);
}

static void test_malformed(void)
{
    expect_status("", 400);
    expect_status("bad", 400);
    expect_status("a.js", 400);
    expect_status("%2fa.js", 400);
    expect_status("/%zz", 400);
    expect_status("/%4", 400);
    expect_status("/%", 400);
    expect_status("/a%", 400);
    expect_status("/%g0", 400);
    expect_status("/%%32%65", 400);
    expect_status("/%00", 400);
    expect_status("/a.js%00.html", 400);
    expect_status("/a b.txt", 400);
    expect_status("/a\tb", 400);
    expect_status("/a.js\r\nX-Evil: 1", 400);
    expect_status("/\x7f", 400);
    expect_status_n("/a.js\0.html", 11, 400);
    expect_status_n("/a.js", 0, 400);
}

static void test_traversal(void)
{
    static const char *const refused[] = {
        "/../",
        "/..",
        "/../secret",
        "/%2e%2e/",
        "/%2e%2e",
        "/%2E%2E/x",
        "/.%2e/",
        "/%2e./",
        "/.%2E",
        "/sub/..",
        "/sub/../",
        "/sub/../a.js",
        "/sub/../../x",
        "/sub/%2e%2e/%2e%2e/x",
        "/%2f..%2fx",
        "/%2F",
        "/sub%2f..%2f..%2fx",
        "/sub%2fpage.html",
        "/..%5cx",
        "/%5c..%5cx",
        "/%5C",
        "/..\\x",
        "/sub\\..\\..\\x",
        "/\\evil.example",
        "/sub/..%2f..%2fsecret",
        "/..%2f..%2fetc%2fpasswd",
        "/a.js/../a.js",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        expect_status(refused[i], 403);

    /* Reaching the sibling by name, in every spelling. */
    char p[PATH_MAX];
    snprintf(p, sizeof p, "/../%s-secret/secret.txt", base_name);
    expect_status(p, 403);
    snprintf(p, sizeof p, "/%%2e%%2e/%s-secret/secret.txt", base_name);
    expect_status(p, 403);
    snprintf(p, sizeof p, "/..%%2f%s-secret%%2fsecret.txt", base_name);
    expect_status(p, 403);
    snprintf(p, sizeof p, "/sub/../../%s-secret/", base_name);
    expect_status(p, 403);

    /* Empty segments are not merged: "//host" must never earn a 301. */
    expect_status("//etc/passwd", 404);
    expect_status("//sub", 404);
    expect_status("//", 404);
    expect_status("/sub//page.html", 404);
    expect_status("/sub//", 404);

    /* Dot-files: 404 whether they exist or not. */
    expect_status("/.hidden", 404);
    expect_status("/.missing", 404);
    expect_status("/.git/config", 404);
    expect_status("/.git/", 404);
    expect_status("/.git", 404);
    expect_status("/%2egit/config", 404);
    expect_status("/.", 404);
    expect_status("/./a.js", 404);
    expect_status("/sub/.", 404);
    expect_status("/...", 404);
    expect_status("/..a", 404);
}

static void test_symlinks_out(void)
{
    expect_status("/passwd", 403);
    expect_status("/outdir", 403);
    expect_status("/outdir/", 403);
    expect_status("/outdir/secret.txt", 403);
    expect_status("/outdir/missing", beneath() ? 403 : 404);
    expect_status("/outrel", 403);
    expect_status("/outrel/", 403);
    expect_status("/outrel/secret.txt", 403);
    expect_status("/outfile", 403);
    expect_status("/sub/deep/etc/passwd", 403);
    expect_status("/sub/deep", 403);
    expect_status("/magic/etc/passwd", 403);
    expect_status("/loop", 403);
    /* RESOLVE_BENEATH refuses every absolute link, even one leading back
     * inside; the fallback sees only where it ends up. */
    if (beneath())
        expect_status("/abs.txt", 403);
    else
        expect_file("/abs.txt", "notes\n", "text/plain; charset=utf-8");
}

static void test_special_files(void)
{
    /* Must return at once: an O_RDONLY open of a FIFO would block. */
    if (has_fifo)
        expect_status("/fifo", 403);
    if (has_device)
        expect_status("/null", 403);
    else
        printf("     (no CAP_MKNOD: device node case skipped)\n");

    /* Root reads anything, so an unreadable file only fails for others. */
    if (geteuid() != 0) {
        char p[PATH_MAX];
        make_path(p, sizeof p, base, "notes.txt");
        chmod(p, 0);
        expect_status("/notes.txt", 403);
        chmod(p, 0644);
    }
}

static void test_long_paths(void)
{
    static char p[3 * PATH_MAX];
    size_t n = 0;
    p[n++] = '/';
    while (n < sizeof p - 3) {
        p[n++] = 'a';
        p[n++] = '/';
    }
    expect_status_n(p, n, 404);

    /* A segment longer than NAME_MAX. */
    memset(p + 1, 'b', NAME_MAX + 1);
    expect_status_n(p, NAME_MAX + 2, 404);
    /* Percent-encoded segments that are long raw but still fit decoded: the
     * name reaches the kernel, which finds nothing. */
    n = 0;
    for (int seg = 0; seg < 19; seg++) {
        p[n++] = '/';
        for (int k = 0; k < 200; k++) {
            memcpy(p + n, "%61", 3);
            n += 3;
        }
    }
    expect_status_n(p, n, 404);
}

/* ---- main ---------------------------------------------------------------- */

int main(void)
{
    /* A resolver that opened the FIFO would hang here, not fail. */
    alarm(60);
    int fds_before = count_fds();
    build_tree();
    kernel_has_openat2 = probe_openat2();
    if (wsk__static_root_open(&root, base) != 0) {
        fprintf(stderr, "cannot open root %s\n", base);
        return 2;
    }

    WSK_RUN(test_root_open);
    for (int pass = 0; pass < 2; pass++) {
        wsk__static_no_openat2 = pass == 1;
        if (pass == 0 && !kernel_has_openat2)
            printf("     (kernel without openat2: both passes use the fallback)\n");
        printf("---- %s\n", pass == 0 ? "openat2 (RESOLVE_BENEATH)" : "fallback (/proc/self/fd)");
        WSK_RUN(test_root_is_slash);
        WSK_RUN(test_served);
        WSK_RUN(test_malformed);
        WSK_RUN(test_traversal);
        WSK_RUN(test_symlinks_out);
        WSK_RUN(test_special_files);
        WSK_RUN(test_long_paths);
    }
    wsk__static_no_openat2 = false;

    wsk__static_root_close(&root);
    remove_tree(base);
    remove_tree(secret);
    struct stat st;
    CHECK(lstat(base, &st) != 0 && lstat(secret, &st) != 0);
    int fds_after = count_fds();
    if (fds_after != fds_before) {
        fprintf(stderr, "fd leak: %d open before, %d after\n", fds_before, fds_after);
        wsk_test_failed_++;
    }
    WSK_TEST_END();
}
