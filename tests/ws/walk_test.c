/* Walks over a context's connections (wsk__walk_*) while callbacks end
 * connections under them: the walk visits every connection still alive,
 * once, and never one that ended, even when the one ended is the next to
 * visit (whose next pointer then leads into the dead list: the broadcast,
 * shutdown and sweep loops used to follow it and skip everyone after). */
#include <sys/socket.h>
#include <unistd.h>

#include "wsk.h"
#include "wsk_test.h"

#include "ws/ws_internal.h"

#define N 6

struct fixture {
    struct wsk_loop *loop;
    struct wsk__ctx ctx;
    struct wsk_conn *c[N]; /* c[N-1] first in the context's list: newest first */
    int peer[N];
};

static void setup(struct fixture *f)
{
    CHECK_EQ_INT(wsk_loop_new(&f->loop, wsk_test_loop_cfg()), 0);
    CHECK_EQ_INT(wsk__ctx_init(&f->ctx, f->loop, NULL, NULL, NULL, NULL), 0);
    for (int i = 0; i < N; i++) {
        int sv[2];
        CHECK_EQ_INT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
        CHECK_EQ_INT(wsk__conn_new(&f->c[i], &f->ctx, sv[0], WSK__HTTP), 0);
        f->peer[i] = sv[1];
    }
}

static void teardown(struct fixture *f)
{
    wsk__ctx_destroy(&f->ctx);
    for (int i = 0; i < N; i++)
        close(f->peer[i]);
    CHECK_EQ_INT(wsk_loop_free(f->loop), 0);
}

static int index_of(struct fixture *f, struct wsk_conn *c)
{
    for (int i = 0; i < N; i++)
        if (f->c[i] == c)
            return i;
    return -1;
}

/* Ending the next connection from inside the walk. */
static void test_end_next(void)
{
    struct fixture f;
    setup(&f);
    bool seen[N] = {0};
    int visits = 0;
    struct wsk__walk w;
    wsk__walk_begin(&f.ctx, &w);
    for (struct wsk_conn *c; (c = wsk__walk_next(&w));) {
        int i = index_of(&f, c);
        CHECK(i >= 0 && !seen[i] && c->state != WSK__DEAD);
        if (i >= 0)
            seen[i] = true;
        visits++;
        if (i == N - 1)
            wsk__conn_abort(f.c[N - 2], WSK_ECLOSED); /* the next one */
        if (i == N - 3)
            wsk__conn_abort(f.c[N - 3], WSK_ECLOSED); /* itself */
    }
    wsk__walk_end(&f.ctx, &w);
    CHECK_EQ_INT(visits, N - 1);
    CHECK(!seen[N - 2]);
    for (int i = 0; i < N - 3; i++)
        CHECK(seen[i]); /* the ones after it were not skipped */
    CHECK(f.ctx.walks == NULL);
    teardown(&f);
}

/* A walk inside a walk (a broadcast from a callback of a broadcast) that
 * ends the outer walk's next connection, and the inner one's. */
static void test_nested(void)
{
    struct fixture f;
    setup(&f);
    int outer = 0, inner = 0;
    struct wsk__walk w;
    wsk__walk_begin(&f.ctx, &w);
    for (struct wsk_conn *c; (c = wsk__walk_next(&w));) {
        CHECK(c->state != WSK__DEAD);
        outer++;
        if (c != f.c[N - 1])
            continue;
        struct wsk__walk w2;
        wsk__walk_begin(&f.ctx, &w2);
        for (struct wsk_conn *d; (d = wsk__walk_next(&w2));) {
            CHECK(d->state != WSK__DEAD);
            inner++;
            if (d == f.c[N - 1]) {
                wsk__conn_abort(f.c[N - 2], WSK_ECLOSED); /* next of both walks */
                wsk__conn_abort(f.c[1], WSK_ECLOSED);
            }
        }
        wsk__walk_end(&f.ctx, &w2);
    }
    wsk__walk_end(&f.ctx, &w);
    CHECK_EQ_INT(inner, N - 2);
    CHECK_EQ_INT(outer, N - 2);
    teardown(&f);
}

int main(void)
{
    WSK_RUN(test_end_next);
    WSK_RUN(test_nested);
    WSK_TEST_END();
}
