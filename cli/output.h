/* wsk command-line tool: writing a stream to stdout from the loop, with
 * back-pressure.
 *
 * A producer (a download) hands bytes to cli_out_write(); when stdout does
 * not take them at once they wait in a buffer while the loop watches the
 * fd, and once more than `high` bytes wait, the write says so: the producer
 * stops (wsk_tcp_pause()) until on_drain. So the buffer holds at most
 * `high` bytes and one more write, however slow the reader.
 *
 * stdout is never made non-blocking itself: O_NONBLOCK belongs to the open
 * file description, which the shell and the other programs of a pipeline
 * share. A pipe or a terminal is opened again through /proc/self/fd/1, a
 * description of our own that may be non-blocking; a socket is written with
 * MSG_DONTWAIT; a regular file (or anything else) is written at once,
 * blocking, as files do not make writers wait for long.
 */
#ifndef WSK_CLI_OUTPUT_H
#define WSK_CLI_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>

#include "cli.h"

struct cli_out;

/* Called once the waiting bytes fell to high / 4 or below after a write
 * that was behind, and whenever they are all written (error 0); or when
 * writing failed (error: a negative errno, -EPIPE for a reader that went
 * away), after which every write fails and nothing waits any more. */
typedef void (*cli_out_drain_cb)(struct cli_out *out, int error, void *data);

enum cli_out_mode {
    CLI_OUT_DIRECT,   /* blocking writes to the caller's fd */
    CLI_OUT_NONBLOCK, /* our own non-blocking description of it */
    CLI_OUT_SOCKET,   /* send(MSG_DONTWAIT) */
};

struct cli_out {
    struct wsk_loop *loop;
    struct wsk_io io; /* watches fd while bytes wait */
    int fd;           /* where writes go */
    int orig_fd;      /* the caller's */
    enum cli_out_mode mode;
    struct cli_buf buf; /* bytes waiting: buf.ptr[off..buf.len) */
    size_t off;
    size_t high;
    int error;
    bool is_behind; /* a write returned 1 */
    cli_out_drain_cb on_drain;
    void *data;
};

/* Sets out up to write to fd (STDOUT_FILENO) on loop, telling the producer
 * to wait once more than high bytes wait. Cannot fail: what cannot be
 * watched is written blocking. */
void cli_out_init(struct cli_out *out, struct wsk_loop *loop, int fd, size_t high,
                  cli_out_drain_cb on_drain, void *data);

/* Writes len bytes, or keeps what the fd does not take now. Returns 0; 1
 * when more than high bytes now wait (the producer should stop until
 * on_drain); or a negative errno when writing failed (now or before). */
int cli_out_write(struct cli_out *out, const void *data, size_t len);

/* Bytes waiting to be written. */
size_t cli_out_pending(const struct cli_out *out);

/* Drops the waiting bytes and stops watching. */
void cli_out_discard(struct cli_out *out);

/* Stops watching, closes our own fd and frees the buffer. */
void cli_out_reset(struct cli_out *out);

#endif
