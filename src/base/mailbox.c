/* mailbox.c: mutex-guarded FIFO drained by an event activated with event_active(). */
#include "base/base.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>

struct msg {
    struct msg *next;
    ig_mailbox_fn *fn;
    void *arg;
};

struct ig_mailbox {
    struct event_base *base;
    struct event *ev;
    pthread_mutex_t mu;
    struct msg *head, *tail;
    int armed;
};

static void drain(struct ig_mailbox *mb)
{
    for (;;) {
        struct msg *m;

        pthread_mutex_lock(&mb->mu);
        m = mb->head;
        mb->head = NULL;
        mb->tail = NULL;
        mb->armed = 0;
        pthread_mutex_unlock(&mb->mu);
        if (!m)
            return;
        while (m) {
            struct msg *next = m->next;
            m->fn(m->arg);
            free(m);
            m = next;
        }
    }
}

static void on_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    drain(arg);
}

struct ig_mailbox *ig_mailbox_new(struct event_base *base)
{
    struct ig_mailbox *mb = ig_xcalloc(1, sizeof(*mb));

    mb->base = base;
    pthread_mutex_init(&mb->mu, NULL);
    mb->ev = event_new(base, -1, 0, on_event, mb);
    if (!mb->ev)
        IG_BUG("event_new failed");
    return mb;
}

void ig_mailbox_free(struct ig_mailbox *mb)
{
    if (!mb)
        return;
    drain(mb);
    event_free(mb->ev);
    pthread_mutex_destroy(&mb->mu);
    free(mb);
}

void ig_mailbox_post(struct ig_mailbox *mb, ig_mailbox_fn *fn, void *arg)
{
    struct msg *m = ig_xmalloc(sizeof(*m));
    int wake;

    m->next = NULL;
    m->fn = fn;
    m->arg = arg;
    pthread_mutex_lock(&mb->mu);
    if (mb->tail)
        mb->tail->next = m;
    else
        mb->head = m;
    mb->tail = m;
    wake = !mb->armed;
    mb->armed = 1;
    pthread_mutex_unlock(&mb->mu);
    if (wake)
        event_active(mb->ev, EV_READ, 0);
}

struct event_base *ig_mailbox_base(struct ig_mailbox *mb)
{
    return mb->base;
}
