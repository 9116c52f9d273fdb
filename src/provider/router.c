/* router.c: the channel router: pick a channel, retry with backoff, fail over (channel.h).
 * Runs on the engine loop only. */
#include "base/base.h"
#include "provider/channel.h"

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FULL_RECHECK_MS 25

struct chstate {
    struct ig_provider *prov;
    bool disabled;              /* key refused */
    int64_t cooldown_until;     /* monotonic ms; after a 429 */
    int inflight;
};

struct rjob;

struct router {
    struct ig_channels chs;
    struct chstate st[IG_CHANNEL_MAX];
    struct ig_provider *offline;
    struct ig_router_opts o;
    uint64_t rng;
    struct rjob *pending;       /* jobs between attempts or in one */
};

struct rjob {
    struct router *r;
    struct rjob *next, *prev;
    struct ig_job *job;
    ig_job_done_fn *done;       /* the engine's */
    void *arg;
    int64_t start;              /* monotonic ms */
    int64_t attempt_start;
    int cur;                    /* channel index of the attempt under way, -1 between */
    int images_before;          /* images the job held when the attempt started */
    uint64_t tried;             /* channels tried, as a bit set */
    struct event *timer;
};

void ig_router_opts_default(struct ig_router_opts *o)
{
    o->max_attempts = 5;
    o->budget_ms = 30000;
    o->backoff_base_ms = 500;
    o->backoff_max_ms = 8000;
    o->cooldown_ms = 10000;
    o->retry_maybe_executed = false;
}

static uint64_t rnd(struct router *r)
{
    /* xorshift64*: choice and jitter, not secrets */
    r->rng ^= r->rng >> 12;
    r->rng ^= r->rng << 25;
    r->rng ^= r->rng >> 27;
    return r->rng * 2685821657736338717ULL;
}

static bool serves(const struct router *r, int i, const struct ig_job *job, char *up, size_t len)
{
    const struct ig_channel *c = &r->chs.ch[i];

    if (!ig_channel_serves(c, job->model, up, len))
        return false;
    return !job->task->req.official || c->official;
}

bool ig_router_serves(struct ig_provider *p, const struct ig_model *m)
{
    struct router *r = p->ctx;
    char up[96];

    for (int i = 0; i < r->chs.n; i++)
        if (ig_channel_serves(&r->chs.ch[i], m, up, sizeof(up)))
            return true;
    return false;
}

/* Can channel i take an attempt of this job now? Sets *wait_ms to the shortest cool-down left
 * among channels that would otherwise do. */
static bool usable(struct router *r, int i, const struct ig_job *job, int64_t now, int64_t *wait_ms)
{
    const struct ig_channel *c = &r->chs.ch[i];
    const struct chstate *s = &r->st[i];
    char up[96];

    if (s->disabled || !serves(r, i, job, up, sizeof(up)))
        return false;
    if (s->cooldown_until > now) {
        if (!*wait_ms || s->cooldown_until - now < *wait_ms)
            *wait_ms = s->cooldown_until - now;
        return false;
    }
    if (c->max_concurrency && s->inflight >= c->max_concurrency) {
        /* full: look again shortly (an attempt ends, a slot frees) */
        if (!*wait_ms || *wait_ms > FULL_RECHECK_MS)
            *wait_ms = FULL_RECHECK_MS;
        return false;
    }
    return true;
}

/* The channel for the next attempt: channels this job has not tried come before ones it has
 * (failover), then the highest priority; inside that tier, weighted random. -1 when none is
 * usable now; *wait_ms then says how long until a cooling one is (0 = never). */
static int pick(struct router *r, struct rjob *rj, int64_t now, int64_t *wait_ms)
{
    bool ok[IG_CHANNEL_MAX], have = false, best_fresh = false;
    int best_prio = 0;
    int64_t total = 0, roll;

    *wait_ms = 0;
    for (int i = 0; i < r->chs.n; i++) {
        bool fresh = !(rj->tried & (1ULL << i));

        ok[i] = usable(r, i, rj->job, now, wait_ms);
        if (!ok[i])
            continue;
        if (!have || (fresh && !best_fresh) ||
            (fresh == best_fresh && r->chs.ch[i].priority > best_prio)) {
            have = true;
            best_fresh = fresh;
            best_prio = r->chs.ch[i].priority;
        }
    }
    if (!have)
        return -1;
    for (int i = 0; i < r->chs.n; i++)
        if (ok[i] && r->chs.ch[i].priority == best_prio &&
            !(rj->tried & (1ULL << i)) == best_fresh)
            total += r->chs.ch[i].weight;
    roll = (int64_t)(rnd(r) % (uint64_t)total);
    for (int i = 0; i < r->chs.n; i++) {
        if (!ok[i] || r->chs.ch[i].priority != best_prio || !(rj->tried & (1ULL << i)) != best_fresh)
            continue;
        roll -= r->chs.ch[i].weight;
        if (roll < 0)
            return i;
    }
    IG_BUG("router: weighted pick fell through");
}

static void unlink_rj(struct rjob *rj)
{
    struct router *r = rj->r;

    if (rj->prev)
        rj->prev->next = rj->next;
    else if (r->pending == rj)
        r->pending = rj->next;
    if (rj->next)
        rj->next->prev = rj->prev;
    rj->next = rj->prev = NULL;
}

/* Hand the job back to the engine. Images gathered by earlier attempts make it a (partial)
 * success even when the last attempt failed: they were delivered, the rest never came. */
static void finish(struct rjob *rj)
{
    struct ig_job *job = rj->job;
    ig_job_done_fn *done = rj->done;

    if (job->err && job->nimages > 0) {
        job->err = IG_OK;
        snprintf(job->errmsg, sizeof(job->errmsg), "%d of %d images were produced",
                 job->nimages, job->task->req.n);
    }
    job->done = rj->done;
    job->arg = rj->arg;
    job->rctx = NULL;
    unlink_rj(rj);
    if (rj->timer)
        event_free(rj->timer);
    free(rj);
    done(job);
}

static void attempt(struct rjob *rj);

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct rjob *rj = arg;

    if (rj->job->cancelled) {
        if (!rj->job->err && rj->job->nimages == 0) {
            rj->job->err = IG_E_CANCELLED;
            snprintf(rj->job->errmsg, sizeof(rj->job->errmsg), "cancelled");
        }
        finish(rj);
        return;
    }
    attempt(rj);
}

static void fail_now(struct rjob *rj, enum ig_err err, const char *msg)
{
    rj->job->err = err;
    snprintf(rj->job->errmsg, sizeof(rj->job->errmsg), "%s", msg);
    finish(rj);
}

static void attempt_done(struct ig_job *job);

static void attempt(struct rjob *rj)
{
    struct router *r = rj->r;
    struct ig_job *job = rj->job;
    int64_t now = ig_mono_ms(), wait_ms = 0;
    int i = pick(r, rj, now, &wait_ms);
    struct ig_channel *c;

    if (i < 0) {
        /* Waiting for a slot or a cool-down before the first attempt is queueing, not retrying:
         * the budget starts with the first attempt. */
        if (job->nattempts == 0 && wait_ms > 0)
            rj->start = now + wait_ms;
        if (wait_ms > 0 && now + wait_ms - rj->start < r->o.budget_ms) {
            struct timeval tv = {wait_ms / 1000, (wait_ms % 1000) * 1000};

            evtimer_add(rj->timer, &tv);
            return;
        }
        if (job->nattempts > 0) { /* keep the last attempt's error */
            finish(rj);
            return;
        }
        fail_now(rj, IG_E_UPSTREAM_SUBMIT,
                 job->task->req.official
                     ? "no official channel is available for this model"
                     : "no channel is available for this model (disabled, cooling down or full)");
        return;
    }
    c = &r->chs.ch[i];
    rj->cur = i;
    rj->tried |= 1ULL << i;
    r->st[i].inflight++;
    if (job->nimages > 0) {
        /* an earlier attempt delivered some of the images: ask only for the rest */
        ig_job_reset_failure(job);
        job->want = job->task->req.n - job->nimages;
    } else {
        ig_job_reset_outputs(job);
        job->want = 0;
    }
    job->ch = c;
    rj->images_before = job->nimages;
    ig_channel_serves(c, job->model, job->upstream_model, sizeof(job->upstream_model));
    job->done = attempt_done;
    job->arg = rj;
    rj->attempt_start = now;
    if (ig_provider_start(r->st[i].prov, job)) {
        r->st[i].inflight--;
        rj->cur = -1;
        fail_now(rj, IG_E_UPSTREAM_SUBMIT, "the channel could not start the request");
    }
}

static void log_attempt(const struct rjob *rj, const struct ig_channel *c, int64_t latency)
{
    const struct ig_job *job = rj->job;
    char hex[IG_ID_HEX_LEN + 1];

    ig_id_hex(&job->task->id, hex);
    ig_info("upstream: task=%s channel=%s attempt=%d status=%d result=%s latency_ms=%lld "
            "bytes=%lld",
            hex, c->name, job->nattempts, job->http_status,
            job->err ? ig_strerror(job->err) : "ok", (long long)latency,
            (long long)job->bytes_in);
}

static void attempt_done(struct ig_job *job)
{
    struct rjob *rj = job->arg;
    struct router *r = rj->r;
    int i = rj->cur;
    struct ig_channel *c = &r->chs.ch[i];
    int64_t now = ig_mono_ms(), delay;
    struct ig_attempt *a = ig_job_add_attempt(job);
    bool again;

    r->st[i].inflight--;
    rj->cur = -1;
    if (a) {
        snprintf(a->channel, sizeof(a->channel), "%s", c->name);
        a->http_status = job->http_status;
        a->err = job->err;
        a->latency_ms = now - rj->attempt_start;
        a->bytes = job->bytes_in;
    }
    snprintf(job->channel, sizeof(job->channel), "%s", c->name);
    if (job->nimages > rj->images_before) /* what this channel delivered, at its cost */
        job->cost += (int64_t)(job->nimages - rj->images_before) * c->cost_per_image;
    log_attempt(rj, c, now - rj->attempt_start);
    if ((!job->err && job->nimages >= job->task->req.n) || job->cancelled) {
        finish(rj); /* done, or nobody waits for more */
        return;
    }
    if (!job->err && !job->retryable) {
        finish(rj); /* some images, and the calls that failed may have run: keep what came */
        return;
    }
    if (job->auth_failed && !r->st[i].disabled) {
        r->st[i].disabled = true;
        ig_error("upstream: channel %s disabled: the upstream refused its key (HTTP %d); "
                 "fix its keys and restart",
                 c->name, job->http_status);
    }
    if (job->http_status == 429)
        r->st[i].cooldown_until = now + (job->retry_after_ms > 0 ? job->retry_after_ms
                                                                  : r->o.cooldown_ms);
    again = job->retryable || job->auth_failed ||
            (job->maybe_executed && r->o.retry_maybe_executed);
    if (!again || job->nattempts >= r->o.max_attempts || job->nattempts >= IG_MAX_ATTEMPTS_LOG) {
        finish(rj);
        return;
    }
    /* Full jitter (AWS architecture blog): uniform in [0, min(max, base * 2^k)]. A fresh channel
     * is tried at once: failing over needs no backoff. */
    {
        int64_t cap = r->o.backoff_base_ms;
        int64_t wait = 0;
        bool fresh = false;

        for (int k = 1; k < job->nattempts && cap < r->o.backoff_max_ms; k++)
            cap *= 2;
        if (cap > r->o.backoff_max_ms)
            cap = r->o.backoff_max_ms;
        delay = cap > 0 ? (int64_t)(rnd(r) % (uint64_t)(cap + 1)) : 0;
        if (job->retry_after_ms > delay)
            delay = job->retry_after_ms;
        for (int k = 0; k < r->chs.n && !fresh; k++) {
            int64_t ignore = 0;

            fresh = !(rj->tried & (1ULL << k)) && usable(r, k, job, now, &ignore);
        }
        if (fresh)
            delay = 0;
        if (now + delay - rj->start >= r->o.budget_ms) {
            finish(rj);
            return;
        }
        wait = delay;
        {
            struct timeval tv = {wait / 1000, (wait % 1000) * 1000};
            evtimer_add(rj->timer, &tv);
        }
    }
}

static enum ig_err router_start(struct ig_provider *p, struct ig_job *job)
{
    struct router *r = p->ctx;
    struct rjob *rj;
    char up[96];
    bool any = false;

    for (int i = 0; i < r->chs.n && !any; i++)
        any = ig_channel_serves(&r->chs.ch[i], job->model, up, sizeof(up));
    if (!any) {
        job->offline = true;
        return ig_provider_start(r->offline, job);
    }
    job->offline = false;
    rj = ig_xcalloc(1, sizeof(*rj));
    rj->r = r;
    rj->job = job;
    rj->done = job->done;
    rj->arg = job->arg;
    rj->start = ig_mono_ms();
    rj->cur = -1;
    rj->timer = evtimer_new(job->base, on_timer, rj);
    job->rctx = rj;
    rj->next = r->pending;
    if (r->pending)
        r->pending->prev = rj;
    r->pending = rj;
    /* The first attempt starts on the next loop turn: done never runs inside start. */
    {
        struct timeval tv = {0, 0};
        evtimer_add(rj->timer, &tv);
    }
    return IG_OK;
}

/* Between attempts (a backoff, a wait for a slot or a cool-down) the job ends on the next loop
 * turn; during one, when that attempt ends. */
static void router_cancel(struct ig_provider *p, struct ig_job *job)
{
    struct rjob *rj = job->rctx;
    struct timeval tv = {0, 0};

    (void)p;
    if (rj && rj->cur < 0)
        evtimer_add(rj->timer, &tv);
}

static void router_free(struct ig_provider *p)
{
    struct router *r = p->ctx;

    /* Jobs still here belong to runs the engine has already freed: drop our state only. */
    while (r->pending) {
        struct rjob *rj = r->pending;

        unlink_rj(rj);
        if (rj->timer)
            event_free(rj->timer);
        free(rj);
    }
    for (int i = 0; i < r->chs.n; i++)
        ig_provider_free(r->st[i].prov);
    ig_provider_free(r->offline);
    free(r);
    free(p);
}

static const struct ig_provider_ops router_ops = {
    .name = "router",
    .abi_version = 1,
    .start = router_start,
    .free = router_free,
    .cancel = router_cancel,
};

static struct ig_provider *make_provider(const struct ig_channel *c)
{
    switch (c->type) {
    case IG_CHANNEL_GEMINI:
        return ig_provider_gemini_new(c);
    case IG_CHANNEL_VERTEX:
        return ig_provider_vertex_new(c);
    case IG_CHANNEL_OPENAI:
        return ig_provider_openai_new(c);
    default:
        IG_BUG("channel type %d has no provider", (int)c->type);
    }
}

/* Unit tests replace this to put scripted providers behind the channels. */
IG_STATIC struct ig_provider *(*router_make_provider)(const struct ig_channel *c) = make_provider;

struct ig_provider *ig_router_new(const struct ig_channels *chs, const struct ig_router_opts *o,
                                  struct ig_provider *offline)
{
    struct ig_provider *p = ig_xcalloc(1, sizeof(*p));
    struct router *r = ig_xcalloc(1, sizeof(*r));

    r->chs = *chs;
    r->o = *o;
    r->offline = offline;
    ig_random_bytes(&r->rng, sizeof(r->rng));
    r->rng |= 1;
    for (int i = 0; i < r->chs.n; i++)
        r->st[i].prov = router_make_provider(&r->chs.ch[i]);
    p->ops = &router_ops;
    p->ctx = r;
    return p;
}

/* What the upstream did, as the JSON stored on the task ("upstream" column). */
char *ig_job_upstream_json(const struct ig_job *job)
{
    cJSON *root = cJSON_CreateObject(), *arr;
    char *s;

    if (job->model_version[0])
        cJSON_AddStringToObject(root, "model_version", job->model_version);
    if (job->response_id[0])
        cJSON_AddStringToObject(root, "response_id", job->response_id);
    arr = cJSON_AddArrayToObject(root, "attempts");
    for (int i = 0; i < job->nattempts; i++) {
        cJSON *a = cJSON_CreateObject();

        cJSON_AddStringToObject(a, "channel", job->attempts[i].channel);
        cJSON_AddNumberToObject(a, "status", job->attempts[i].http_status);
        cJSON_AddStringToObject(a, "result",
                                job->attempts[i].err ? ig_strerror(job->attempts[i].err) : "ok");
        cJSON_AddNumberToObject(a, "latency_ms", (double)job->attempts[i].latency_ms);
        cJSON_AddNumberToObject(a, "bytes", (double)job->attempts[i].bytes);
        cJSON_AddItemToArray(arr, a);
    }
    s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}
