/* pool.c: worker threads pulling from one FIFO. */
#include "base/base.h"

#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdbool.h>
#include <stdlib.h>

struct job {
    struct job *next;
    ig_pool_fn *work, *done;
    struct ig_mailbox *mb;
    void *arg;
};

struct ig_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *head, *tail;
    bool stopping;
    int n;
    pthread_t *threads;
};

static void *run(void *arg)
{
    struct ig_pool *p = arg;

    /* Image work yields to the event loops: a burst of encoding never delays the API. On Linux
     * the nice value is per thread. */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10) != 0)
        ig_debug("pool: could not lower the priority of a worker thread");

    for (;;) {
        struct job *j;

        pthread_mutex_lock(&p->mu);
        while (!p->head && !p->stopping)
            pthread_cond_wait(&p->cv, &p->mu);
        j = p->head;
        if (!j) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        p->head = j->next;
        if (!p->head)
            p->tail = NULL;
        pthread_mutex_unlock(&p->mu);
        j->work(j->arg);
        if (j->done)
            ig_mailbox_post(j->mb, j->done, j->arg);
        free(j);
    }
}

struct ig_pool *ig_pool_new(int nthreads)
{
    struct ig_pool *p = ig_xcalloc(1, sizeof(*p));

    if (nthreads < 1)
        nthreads = 1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->n = nthreads;
    p->threads = ig_xcalloc((size_t)nthreads, sizeof(*p->threads));
    for (int i = 0; i < nthreads; i++)
        if (pthread_create(&p->threads[i], NULL, run, p) != 0)
            IG_BUG("pthread_create failed");
    return p;
}

void ig_pool_free(struct ig_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n; i++)
        pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p);
}

void ig_pool_submit(struct ig_pool *p, ig_pool_fn *work, ig_pool_fn *done, struct ig_mailbox *mb,
                    void *arg)
{
    struct job *j = ig_xmalloc(sizeof(*j));

    j->next = NULL;
    j->work = work;
    j->done = done;
    j->mb = mb;
    j->arg = arg;
    pthread_mutex_lock(&p->mu);
    if (p->tail)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}
