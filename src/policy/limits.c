/* limits.c: GCRA per key (see limits.h). Times are kept in microseconds so that rates that do
 * not divide a minute evenly (7 per minute) do not drift. */
#include "base/base.h"
#include "policy/limits.h"

#include <pthread.h>
#include <stdlib.h>

#define BUCKETS 1024

struct cell {
    struct cell *next;
    int64_t key_id;
    int64_t tat_us; /* theoretical arrival time of the next conforming request */
};

struct ig_limiter {
    pthread_mutex_t mu;
    struct cell *b[BUCKETS];
};

struct ig_limiter *ig_limiter_new(void)
{
    struct ig_limiter *l = ig_xcalloc(1, sizeof(*l));

    pthread_mutex_init(&l->mu, NULL);
    return l;
}

void ig_limiter_free(struct ig_limiter *l)
{
    if (!l)
        return;
    for (int i = 0; i < BUCKETS; i++) {
        while (l->b[i]) {
            struct cell *c = l->b[i];

            l->b[i] = c->next;
            free(c);
        }
    }
    pthread_mutex_destroy(&l->mu);
    free(l);
}

bool ig_admit_rate(struct ig_app *app, const struct ig_key *k, int64_t *retry_after_ms)
{
    int rpm = k->rate_rpm >= 0 ? k->rate_rpm : app->cfg.rate_rpm;

    return ig_limiter_allow(app->limiter, k->id, rpm, app->cfg.rate_burst, ig_now_ms(),
                            retry_after_ms);
}

int ig_admit_max_tasks(const struct ig_app *app, const struct ig_key *k)
{
    return k->max_tasks >= 0 ? k->max_tasks : app->cfg.max_tasks_per_key;
}

bool ig_limiter_allow(struct ig_limiter *l, int64_t key_id, int rpm, int burst, int64_t now_ms,
                      int64_t *retry_after_ms)
{
    int64_t now = now_ms * 1000, t, tau, tat;
    struct cell *c;
    bool ok;

    *retry_after_ms = 0;
    if (rpm <= 0)
        return true;
    if (burst < 1)
        burst = 1;
    t = INT64_C(60000000) / rpm;      /* emission interval */
    tau = t * (int64_t)(burst - 1);   /* how far ahead of schedule a burst may run */
    pthread_mutex_lock(&l->mu);
    for (c = l->b[(uint64_t)key_id % BUCKETS]; c && c->key_id != key_id; c = c->next)
        ;
    if (!c) {
        c = ig_xcalloc(1, sizeof(*c));
        c->key_id = key_id;
        c->tat_us = now;
        c->next = l->b[(uint64_t)key_id % BUCKETS];
        l->b[(uint64_t)key_id % BUCKETS] = c;
    }
    tat = c->tat_us > now ? c->tat_us : now;
    ok = tat - now <= tau;
    if (ok)
        c->tat_us = tat + t;
    else
        *retry_after_ms = (tat - tau - now + 999) / 1000;
    pthread_mutex_unlock(&l->mu);
    return ok;
}
