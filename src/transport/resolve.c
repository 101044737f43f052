/* Name resolution on a detached thread; see resolve.h. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/resolve.h"
#include "wsk/error.h"

struct wsk__resolve {
    struct wsk_post post;
    pthread_mutex_t lock;  /* guards loop, cb and refs */
    struct wsk_loop *loop; /* NULL once orphaned */
    wsk__resolve_cb cb;
    void *data;
    int refs; /* the thread's and the owner's */
    int socktype;
    char host[256];
    char port[8];
    struct addrinfo *res;
    int gai_error;
};

static void job_unref(struct wsk__resolve *job)
{
    pthread_mutex_lock(&job->lock);
    int refs = --job->refs;
    pthread_mutex_unlock(&job->lock);
    if (refs == 0) {
        if (job->res)
            freeaddrinfo(job->res);
        pthread_mutex_destroy(&job->lock);
        free(job);
    }
}

void wsk__resolve_cancel(struct wsk__resolve *job)
{
    if (!job)
        return;
    pthread_mutex_lock(&job->lock);
    job->loop = NULL;
    job->cb = NULL;
    pthread_mutex_unlock(&job->lock);
    job_unref(job);
}

/* On the loop thread. */
static void job_done(struct wsk_loop *loop, struct wsk_post *p)
{
    (void)loop;
    struct wsk__resolve *job = p->data;
    wsk__resolve_cb cb = job->cb;
    if (!cb) {
        /* Orphaned after the thread posted: the thread's reference is ours. */
        job_unref(job);
        return;
    }
    void *data = job->data;
    struct addrinfo *res = job->res;
    job->res = NULL;
    int gai_error = job->gai_error;
    job_unref(job); /* the owner's: the answer is its last use of the job */
    job_unref(job); /* the thread's, handed over with the post */
    if (gai_error || !res) {
        if (res)
            freeaddrinfo(res);
        cb(data, NULL, WSK_EDNS, gai_error ? gai_strerror(gai_error) : "no address");
        return;
    }
    cb(data, res, 0, "");
}

static void *job_thread(void *arg)
{
    struct wsk__resolve *job = arg;
    struct addrinfo hints = {0};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = job->socktype;
    hints.ai_flags = AI_ADDRCONFIG;
    struct addrinfo *res = NULL;
    int err = getaddrinfo(job->host, job->port, &hints, &res);
    pthread_mutex_lock(&job->lock);
    job->res = res;
    job->gai_error = err;
    bool posted = job->loop != NULL;
    if (posted)
        wsk_loop_post(job->loop, &job->post); /* our reference travels with it */
    pthread_mutex_unlock(&job->lock);
    if (!posted)
        job_unref(job);
    return NULL;
}

int wsk__resolve_start(struct wsk_loop *loop, const char *host, const char *port, int socktype,
                       wsk__resolve_cb cb, void *data, struct wsk__resolve **out,
                       struct addrinfo **res)
{
    *out = NULL;
    *res = NULL;
    /* Numeric addresses need no resolver (and no thread). */
    struct addrinfo hints = {0};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = socktype;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    if (getaddrinfo(host, port, &hints, res) == 0)
        return 1;
    *res = NULL;
    struct wsk__resolve *job = calloc(1, sizeof *job);
    if (!job)
        return -ENOMEM;
    job->loop = loop;
    job->cb = cb;
    job->data = data;
    job->refs = 2;
    job->socktype = socktype;
    pthread_mutex_init(&job->lock, NULL);
    job->post.cb = job_done;
    job->post.data = job;
    snprintf(job->host, sizeof job->host, "%s", host);
    snprintf(job->port, sizeof job->port, "%s", port);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    pthread_t tid;
    int rv = pthread_create(&tid, &attr, job_thread, job);
    pthread_attr_destroy(&attr);
    if (rv != 0) {
        pthread_mutex_destroy(&job->lock);
        free(job);
        return -rv;
    }
    *out = job;
    return 0;
}
