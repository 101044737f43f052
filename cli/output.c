/* Writing a stream to stdout from the loop, with back-pressure: see
 * output.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "output.h"

static void on_writable(struct wsk_loop *loop, struct wsk_io *io, unsigned events);

void cli_out_init(struct cli_out *out, struct wsk_loop *loop, int fd, size_t high,
                  cli_out_drain_cb on_drain, void *data)
{
    memset(out, 0, sizeof *out);
    out->loop = loop;
    out->fd = out->orig_fd = fd;
    out->high = high;
    out->on_drain = on_drain;
    out->data = data;
    out->mode = CLI_OUT_DIRECT;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode)) {
        out->mode = CLI_OUT_SOCKET;
    } else if (fstat(fd, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode))) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        int own = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (own >= 0) {
            out->fd = own;
            out->mode = CLI_OUT_NONBLOCK;
        }
    }
    wsk_io_init(&out->io, out->fd, on_writable, out);
}

/* One write that does not block: a count, -EAGAIN, or an error. */
static ssize_t try_write(struct cli_out *out, const char *p, size_t n)
{
    for (;;) {
        ssize_t w = out->mode == CLI_OUT_SOCKET ? send(out->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL)
                                                : write(out->fd, p, n);
        if (w >= 0)
            return w;
        if (errno == EINTR)
            continue;
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

size_t cli_out_pending(const struct cli_out *out)
{
    return out->buf.len - out->off;
}

static void failed(struct cli_out *out, int error)
{
    out->error = error;
    cli_out_discard(out);
}

/* Writes what waits until the fd would block. Returns 0 or an error. */
static int flush(struct cli_out *out)
{
    while (cli_out_pending(out) > 0) {
        ssize_t w = try_write(out, out->buf.ptr + out->off, cli_out_pending(out));
        if (w == -EAGAIN)
            break;
        if (w < 0)
            return (int)w;
        out->off += (size_t)w;
    }
    if (out->off == out->buf.len)
        out->off = out->buf.len = 0;
    return 0;
}

static void on_writable(struct wsk_loop *loop, struct wsk_io *io, unsigned events)
{
    (void)loop;
    (void)events;
    struct cli_out *out = io->data;
    int rv = flush(out);
    if (rv < 0) {
        failed(out, rv);
        out->on_drain(out, rv, out->data);
        return;
    }
    size_t pending = cli_out_pending(out);
    if (pending == 0)
        wsk_io_stop(out->loop, &out->io);
    if (pending == 0 || (out->is_behind && pending <= out->high / 4)) {
        out->is_behind = false;
        out->on_drain(out, 0, out->data);
    }
}

int cli_out_write(struct cli_out *out, const void *data, size_t len)
{
    const char *p = data;
    if (out->error)
        return out->error;
    if (len == 0)
        return 0;
    if (out->mode == CLI_OUT_DIRECT) {
        int rv = cli_write_all(out->fd, p, len);
        if (rv < 0)
            failed(out, rv);
        return rv;
    }
    if (cli_out_pending(out) == 0) {
        ssize_t w = try_write(out, p, len);
        if (w < 0 && w != -EAGAIN) {
            failed(out, (int)w);
            return (int)w;
        }
        if (w > 0) {
            p += w;
            len -= (size_t)w;
        }
        if (len == 0)
            return 0;
    }
    if (out->off > 0) {
        memmove(out->buf.ptr, out->buf.ptr + out->off, out->buf.len - out->off);
        out->buf.len -= out->off;
        out->off = 0;
    }
    if (cli_buf_append(&out->buf, p, len) < 0) {
        failed(out, -ENOMEM);
        return -ENOMEM;
    }
    if (!out->io.events && wsk_io_start(out->loop, &out->io, WSK_IO_WRITE) < 0) {
        /* The loop cannot watch it: write the rest blocking, to the
         * caller's fd (ours may be non-blocking). */
        int rv = cli_write_all(out->orig_fd, out->buf.ptr, out->buf.len);
        out->off = out->buf.len = 0;
        if (rv < 0)
            failed(out, rv);
        return rv;
    }
    if (cli_out_pending(out) > out->high) {
        out->is_behind = true;
        return 1;
    }
    return 0;
}

void cli_out_discard(struct cli_out *out)
{
    wsk_io_stop(out->loop, &out->io);
    out->off = out->buf.len = 0;
    out->is_behind = false;
}

void cli_out_reset(struct cli_out *out)
{
    cli_out_discard(out);
    if (out->fd != out->orig_fd)
        close(out->fd);
    out->fd = out->orig_fd;
    cli_buf_reset(&out->buf);
}
