/* engine.c: claims tasks, runs them through fetch -> provider -> blob store, completes them.
 *
 * Everything here runs on the engine thread's loop. A struct run lives from claim until its
 * task is terminal in the store AND every asynchronous step it started has called back
 * (run->busy == 0): callbacks never find freed memory. */
#include "base/base.h"
#include "core/engine.h"
#include "media/blob.h"
#include "media/image.h"
#include "net/fetch.h"
#include "net/transport.h"
#include "provider/channel.h"
#include "provider/provider.h"

#include <cjson/cJSON.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CLAIM_BATCH 64
#define TICK_MS 1000
#define WAIT_BUCKETS 256

/* A client waiting for a task's end (ig_engine_wait). In the table until fired or unwaited;
 * once fired, its delivery is posted to mb and frees it there. */
struct ig_waiter {
    struct ig_waiter *next;
    struct ig_id id;
    struct ig_mailbox *mb;
    ig_waiter_fn *fn;
    void *arg;
    struct ig_task *task; /* the completed task, or NULL: read the store */
    bool fired;           /* guarded by the table's mutex */
    bool gone;            /* unwaited after it fired (mb's loop only) */
};

struct run;

struct ig_engine {
    struct ig_app *app;
    struct ig_provider *provider;
    pthread_t thread;
    struct event_base *base;
    struct ig_mailbox *mb;
    struct ig_transport *tp;
    struct ig_pool *pool;
    struct event *tick;
    struct event *sweep_ev;
    struct event *grace_ev;
    char owner[40];
    bool claiming;
    bool stopping;
    bool grace_over;
    bool calls_aborted;     /* stopping: the calls of tasks already given back were aborted */
    int writer_pending;     /* writer jobs not yet called back */
    int inflight;           /* runs holding a task (engine loop only) */
    /* Slots of max_inflight taken: runs, claims under way and tasks reserved at submission
     * (any thread takes one with take_slots; the engine loop gives them back). */
    atomic_int held;
    atomic_int adopting;    /* reserved at submission, not yet handed over (blocks the exit) */
    atomic_bool accepting;  /* false once stopping: submissions are no longer reserved */
    pthread_mutex_t wmu;    /* guards waiters */
    struct ig_waiter *waiters[WAIT_BUCKETS];
    atomic_int nwaiters;
    struct run *runs;       /* tasks held now */
    int nalive;             /* runs not yet freed (held, or waiting for callbacks) */
};

struct run {
    struct ig_engine *e;
    struct run *next, *prev;
    struct ig_task task;
    const struct ig_model *model;
    struct ig_job job;
    struct event *deadline_ev, *renew_ev;
    int busy;               /* callbacks still to come */
    int refs_pending;
    bool in_provider;       /* the provider has the job and has not called back */
    bool waiters_fired;     /* its waiters have been told */
    bool finishing;         /* a terminal write is under way or done */
    bool terminal;          /* nothing more to do but wait for callbacks */
};

/* ---- writer jobs ------------------------------------------------------------------------ */

struct wjob {
    struct ig_engine *e;
    struct run *run;
    void (*then)(struct wjob *w, enum ig_err err);
    /* claim */
    int max;
    int64_t now, lease_until;
    struct ig_task *tasks;
    int ntasks;
    struct ig_id failed[CLAIM_BATCH];
    int nfailed;
    /* finish / renew / requeue */
    struct ig_task *fin;
    int progress;
};

static void wjob_done(enum ig_err err, void *arg)
{
    struct wjob *w = arg;

    w->e->writer_pending--;
    w->then(w, err);
    free(w);
}

static void wjob_submit(struct ig_engine *e, struct wjob *w, ig_writer_job_fn *fn)
{
    w->e = e;
    e->writer_pending++;
    ig_writer_submit(e->app->writer, fn, wjob_done, e->mb, w);
}

static void maybe_claim(struct ig_engine *e);
static void maybe_exit(struct ig_engine *e);
static void on_grace(evutil_socket_t fd, short what, void *arg);
static void run_finish(struct run *r, enum ig_task_state state, enum ig_err err, const char *msg);

/* ---- waiters (synchronous dialects) ---------------------------------------------------- */

static unsigned wbucket(const struct ig_id *id)
{
    /* the random tail of the UUIDv7, not its clock */
    return ((unsigned)id->b[14] << 8 | id->b[15]) % WAIT_BUCKETS;
}

struct ig_waiter *ig_engine_wait(struct ig_engine *e, const struct ig_id *id,
                                 struct ig_mailbox *mb, ig_waiter_fn *fn, void *arg)
{
    struct ig_waiter *w = ig_xcalloc(1, sizeof(*w));
    unsigned b = wbucket(id);

    w->id = *id;
    w->mb = mb;
    w->fn = fn;
    w->arg = arg;
    pthread_mutex_lock(&e->wmu);
    w->next = e->waiters[b];
    e->waiters[b] = w;
    atomic_fetch_add(&e->nwaiters, 1);
    pthread_mutex_unlock(&e->wmu);
    return w;
}

void ig_engine_unwait(struct ig_engine *e, struct ig_waiter *w)
{
    bool in_table = false;

    pthread_mutex_lock(&e->wmu);
    if (!w->fired) {
        for (struct ig_waiter **p = &e->waiters[wbucket(&w->id)]; *p; p = &(*p)->next) {
            if (*p == w) {
                *p = w->next;
                in_table = true;
                atomic_fetch_sub(&e->nwaiters, 1);
                break;
            }
        }
    }
    pthread_mutex_unlock(&e->wmu);
    if (in_table)
        free(w);
    else
        w->gone = true; /* its delivery is on the way to this loop: it frees w */
}

static void waiter_deliver(void *arg)
{
    struct ig_waiter *w = arg;

    if (!w->gone)
        w->fn(w->task, w->arg);
    if (w->task) {
        ig_task_release(w->task);
        free(w->task);
    }
    free(w);
}

/* Tell everyone waiting for this task (id NULL: everyone) that it ended: t is the completed
 * task, or NULL when the store has the answer. Engine loop. */
static void fire_waiters(struct ig_engine *e, const struct ig_id *id, const struct ig_task *t)
{
    struct ig_waiter *out = NULL;

    if (atomic_load(&e->nwaiters) == 0)
        return;
    pthread_mutex_lock(&e->wmu);
    for (unsigned b = id ? wbucket(id) : 0; b < (id ? wbucket(id) + 1 : WAIT_BUCKETS); b++) {
        for (struct ig_waiter **p = &e->waiters[b]; *p;) {
            struct ig_waiter *w = *p;

            if (id && !ig_id_equal(&w->id, id)) {
                p = &w->next;
                continue;
            }
            *p = w->next;
            w->fired = true;
            w->next = out;
            out = w;
            atomic_fetch_sub(&e->nwaiters, 1);
        }
    }
    pthread_mutex_unlock(&e->wmu);
    while (out) {
        struct ig_waiter *w = out;

        out = w->next;
        if (t) {
            w->task = ig_xcalloc(1, sizeof(*w->task));
            ig_task_copy(w->task, t);
        }
        ig_mailbox_post(w->mb, waiter_deliver, w);
    }
}

/* ---- run lifetime ----------------------------------------------------------------------- */

static void run_free(struct run *r)
{
    r->e->nalive--;
    if (r->deadline_ev)
        event_free(r->deadline_ev);
    if (r->renew_ev)
        event_free(r->renew_ev);
    ig_job_release(&r->job);
    ig_task_release(&r->task);
    free(r);
}

/* Drop a callback reference; free the run when it is terminal and nothing else will call. */
static void run_unref(struct run *r)
{
    struct ig_engine *e = r->e;

    r->busy--;
    if (r->terminal && r->busy == 0) {
        run_free(r);
        maybe_exit(e);
    }
}

/* The task left our hands (terminal, requeued or lease lost): stop its timers, count it out. */
static void run_detach(struct run *r)
{
    struct ig_engine *e = r->e;

    if (r->terminal)
        return;
    r->terminal = true;
    if (!r->waiters_fired) { /* it left our hands without a completion: the store knows */
        r->waiters_fired = true;
        fire_waiters(e, &r->task.id, NULL);
    }
    if (r->deadline_ev)
        event_del(r->deadline_ev);
    if (r->renew_ev)
        event_del(r->renew_ev);
    if (r->prev)
        r->prev->next = r->next;
    else
        e->runs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    e->inflight--;
    atomic_fetch_sub(&e->held, 1);
    r->job.cancelled = true; /* no retry, no failover: nobody will use what it brings */
    if (r->in_provider)
        ig_provider_cancel(e->provider, &r->job);
    r->busy++;
    run_unref(r); /* frees now when nothing is outstanding */
    maybe_claim(e);
    maybe_exit(e);
}

/* ---- finishing ---------------------------------------------------------------------------- */

static enum ig_err finish_job(struct ig_store *s, void *arg)
{
    struct wjob *w = arg;
    struct run *r = w->run;

    /* An expiry sweep (also on this thread) may have removed a blob with the same content
     * between our put and now; put it back so the row never names a missing file. */
    for (int i = 0; i < w->fin->noutputs && i < r->job.nimages; i++) {
        struct ig_output *o = &w->fin->outputs[i];
        int64_t size;
        char id[IG_SHA256_HEX_LEN + 1];

        if (ig_blob_stat(r->e->app->blob, o->blob, o->ext, &size) == IG_OK)
            continue; /* (a HEAD on S3, not a download) */
        if (ig_blob_put(r->e->app->blob, r->job.images[i].data, r->job.images[i].len, o->ext, id))
            return IG_E_IO;
    }
    return ig_store_task_finish(s, w->fin, r->e->owner, r->task.attempts);
}

static void finish_then(struct wjob *w, enum ig_err err)
{
    struct run *r = w->run;
    char hex[IG_ID_HEX_LEN + 1];

    ig_id_hex(&r->task.id, hex);
    if (err == IG_E_CONFLICT)
        ig_info("engine: task %s was cancelled or re-leased meanwhile; result discarded", hex);
    else if (err) /* the lease runs out and the task is taken up again */
        ig_error("engine: task %s: finishing failed: %s", hex, ig_strerror(err));
    else
        ig_info("engine: task %s %s in %lld ms (attempt %d)%s%s", hex,
                ig_task_state_name(w->fin->state),
                (long long)(w->fin->finished_ms - r->task.created_ms), r->task.attempts,
                w->fin->err ? ": " : "", w->fin->err ? ig_strerror(w->fin->err) : "");
    if (!err) {
        r->waiters_fired = true;
        fire_waiters(r->e, &r->task.id, w->fin);
    }
    ig_task_release(w->fin);
    free(w->fin);
    run_detach(r);
    run_unref(r);
}

static void run_finish(struct run *r, enum ig_task_state state, enum ig_err err, const char *msg)
{
    struct ig_engine *e = r->e;
    struct wjob *w;
    struct ig_task *t;

    if (r->finishing || r->terminal)
        return;
    r->finishing = true;
    t = ig_xcalloc(1, sizeof(*t));
    ig_task_copy(t, &r->task);
    t->state = state;
    t->finished_ms = ig_now_ms();
    t->progress = state == IG_TASK_SUCCEEDED ? IG_PROGRESS_DONE : t->progress;
    if (err)
        ig_task_set_error(t, err, msg);
    t->offline = r->job.offline;
    if (r->job.nattempts > 0 || r->job.model_version[0]) {
        char *js = ig_job_upstream_json(&r->job);

        free(t->upstream);
        t->upstream = ig_xstrdup(js);
        cJSON_free(js);
    }
    if (state == IG_TASK_SUCCEEDED) {
        /* what was delivered is paid, at the held price per image; the rest goes back */
        int delivered = t->noutputs < t->req.n ? t->noutputs : t->req.n;

        t->price_captured = ig_model_capture(r->model, t->price_held, t->req.n, delivered,
                                             r->job.usage.image_tokens, r->job.usage.text_tokens);
        t->cost = r->job.cost;
        t->expires_ms = t->finished_ms + ig_app_expiry_s(e->app, t->dialect) * 1000;
        t->usage = r->job.usage;
        if (r->job.text) {
            free(t->text);
            t->text = ig_xstrdup(r->job.text);
        }
    }
    if (r->job.channel[0])
        snprintf(t->channel, sizeof(t->channel), "%s", r->job.channel);
    w = ig_xcalloc(1, sizeof(*w));
    w->run = r;
    w->fin = t;
    w->then = finish_then;
    r->busy++;
    wjob_submit(e, w, finish_job);
}

/* ---- storing outputs (pool thread) ----------------------------------------------------- */

/* Made on the pool thread, handed to the run on the engine loop (the engine may read
 * r->task meanwhile, e.g. a deadline finishing it). */
struct store_out {
    struct run *r;
    enum ig_err err;
    int n;
    struct ig_output out[IG_MAX_OUTPUTS];
};

static void store_work(void *arg)
{
    struct store_out *so = arg;
    struct run *r = so->r;

    for (int i = 0; i < r->job.nimages && i < IG_MAX_OUTPUTS; i++) {
        struct ig_image *im = &r->job.images[i];
        enum ig_image_type ty = ig_image_sniff(im->data, im->len);
        struct ig_output *o = &so->out[so->n];
        int w = 0, h = 0;

        if (ty == IG_IMG_UNKNOWN || ig_image_dimensions(im->data, im->len, &ty, &w, &h)) {
            so->err = IG_E_UPSTREAM_FAILED;
            return;
        }
        so->err = ig_blob_put(r->e->app->blob, im->data, im->len, ig_image_ext(ty), o->blob);
        if (so->err)
            return;
        snprintf(o->mime, sizeof(o->mime), "%s", ig_image_mime(ty));
        snprintf(o->ext, sizeof(o->ext), "%s", ig_image_ext(ty));
        o->width = w;
        o->height = h;
        o->bytes = (int64_t)im->len;
        so->n++;
    }
}

static void store_done(void *arg)
{
    struct store_out *so = arg;
    struct run *r = so->r;
    enum ig_err err = so->err;

    if (!r->terminal && !err) {
        ig_task_clear_outputs(&r->task);
        for (int i = 0; i < so->n; i++)
            *ig_task_add_output(&r->task) = so->out[i];
    }
    free(so);
    if (!r->terminal) {
        if (err == IG_E_UPSTREAM_FAILED)
            run_finish(r, IG_TASK_FAILED, err, "the provider returned data that is not an image");
        else if (err)
            run_finish(r, IG_TASK_FAILED, IG_E_INTERNAL, "could not store the result images");
        else
            run_finish(r, IG_TASK_SUCCEEDED, IG_OK, NULL);
    }
    run_unref(r);
}

/* ---- provider ---------------------------------------------------------------------------- */

static void provider_done(struct ig_job *job)
{
    struct run *r = job->arg;

    r->in_provider = false;
    if (!r->terminal && !r->finishing) {
        if (job->err == IG_E_MODERATED)
            run_finish(r, IG_TASK_FAILED, IG_E_MODERATED, job->errmsg);
        else if (job->err)
            run_finish(r, IG_TASK_FAILED, job->err, job->errmsg[0] ? job->errmsg : ig_strerror(job->err));
        else if (job->nimages == 0)
            run_finish(r, IG_TASK_FAILED, IG_E_UPSTREAM_FAILED,
                       job->text ? job->text : "the provider returned no image");
        else {
            struct store_out *so = ig_xcalloc(1, sizeof(*so));

            so->r = r;
            r->busy++;
            r->task.progress = IG_PROGRESS_STORING;
            ig_pool_submit(r->e->pool, store_work, store_done, r->e->mb, so);
        }
    }
    run_unref(r);
}

static void run_provider(struct run *r)
{
    struct ig_engine *e = r->e;
    struct ig_request *q = &r->task.req;
    enum ig_err err;

    if (!q->ratio[0]) {
        const char *ratio = "1:1";
        if (r->job.nrefs > 0)
            ratio = ig_model_nearest_ratio(r->model, r->job.refs[0].width, r->job.refs[0].height);
        snprintf(q->ratio, sizeof(q->ratio), "%s", ratio);
    }
    if (!ig_model_output_size(r->model, q->ratio, q->resolution, &r->job.width, &r->job.height)) {
        run_finish(r, IG_TASK_FAILED, IG_E_INVALID, "the model does not offer this ratio and resolution");
        return;
    }
    r->job.task = &r->task;
    r->job.model = r->model;
    r->job.base = e->base;
    r->job.mb = e->mb;
    r->job.pool = e->pool;
    r->job.tp = e->tp;
    r->job.done = provider_done;
    r->job.arg = r;
    r->task.progress = IG_PROGRESS_SUBMITTED;
    r->busy++;
    r->in_provider = true;
    err = ig_provider_start(e->provider, &r->job);
    if (err) {
        r->in_provider = false;
        r->busy--;
        run_finish(r, IG_TASK_FAILED, IG_E_UPSTREAM_SUBMIT, "the provider could not start the request");
    }
}

/* ---- references ------------------------------------------------------------------------- */

struct fetch_ctx {
    struct run *r;
    int index;
};

static void fetch_done(struct ig_fetch_result *res, void *arg)
{
    struct fetch_ctx *fc = arg;
    struct run *r = fc->r;
    int i = fc->index;
    char msg[400];

    free(fc);
    r->refs_pending--;
    if (!r->terminal && !r->finishing) {
        if (res->err) {
            snprintf(msg, sizeof(msg), "image_urls[%d]: %s", i, res->errmsg);
            run_finish(r, IG_TASK_FAILED, IG_E_REFERENCE, msg);
        } else {
            struct ig_image *im = &r->job.refs[i];
            enum ig_image_type ty = ig_image_sniff((unsigned char *)res->body.data, res->body.len);
            int w = 0, h = 0;

            if (ty == IG_IMG_UNKNOWN) {
                snprintf(msg, sizeof(msg),
                         "image_urls[%d]: not a PNG, JPEG, WebP, HEIF or AVIF image", i);
                run_finish(r, IG_TASK_FAILED, IG_E_REFERENCE, msg);
            } else if (ig_image_dimensions((unsigned char *)res->body.data, res->body.len, &ty,
                                           &w, &h)) {
                snprintf(msg, sizeof(msg), "image_urls[%d]: the image header is damaged", i);
                run_finish(r, IG_TASK_FAILED, IG_E_REFERENCE, msg);
            } else if ((int64_t)w * h > r->e->app->cfg.ref_max_pixels) {
                snprintf(msg, sizeof(msg), "image_urls[%d]: %dx%d exceeds %lld pixels", i, w, h,
                         (long long)r->e->app->cfg.ref_max_pixels);
                run_finish(r, IG_TASK_FAILED, IG_E_REFERENCE, msg);
            } else {
                size_t len;

                im->data = (unsigned char *)ig_buf_detach(&res->body, &len);
                im->len = len;
                im->width = w;
                im->height = h;
                snprintf(im->mime, sizeof(im->mime), "%s", ig_image_mime(ty));
                if (r->refs_pending == 0)
                    run_provider(r);
            }
        }
    }
    ig_buf_release(&res->body);
    run_unref(r);
}

/* A `blob:<64 hex>.<ext>` reference: an image a dialect received inline and stored; read
 * from the blob store on the pool, never fetched. */
struct blob_ref {
    struct fetch_ctx *fc;
    struct ig_blob *blob;
    size_t max;
    char id[IG_SHA256_HEX_LEN + 1];
    char ext[8];
    struct ig_fetch_result res;
};

static bool parse_blob_ref(const char *ref, char *id, char *ext, size_t extlen)
{
    const char *p = ref + 5, *dot;

    if (strncmp(ref, "blob:", 5) != 0 || !(dot = strchr(p, '.')) || dot - p != IG_SHA256_HEX_LEN)
        return false;
    memcpy(id, p, IG_SHA256_HEX_LEN);
    id[IG_SHA256_HEX_LEN] = '\0';
    snprintf(ext, extlen, "%s", dot + 1);
    return ig_blob_id_ok(id) && ig_blob_ext_ok(dot + 1) && strlen(dot + 1) < extlen;
}

static void blob_ref_work(void *arg)
{
    struct blob_ref *br = arg;
    unsigned char *data = NULL;
    size_t len = 0;

    br->res.err = ig_blob_get(br->blob, br->id, br->ext, br->max, &data, &len);
    if (br->res.err) {
        snprintf(br->res.errmsg, sizeof(br->res.errmsg), "%s",
                 br->res.err == IG_E_NOT_FOUND ? "the stored image is gone"
                                               : "the stored image could not be read");
        br->res.err = IG_E_REFERENCE;
        return;
    }
    br->res.status = 200;
    br->res.body.data = (char *)data;
    br->res.body.len = len;
    br->res.body.cap = len;
    br->res.body.max = len;
}

static void blob_ref_done(void *arg)
{
    struct blob_ref *br = arg;

    fetch_done(&br->res, br->fc);
    free(br);
}

static void run_fetch_refs(struct run *r)
{
    struct ig_app *app = r->e->app;
    struct ig_fetch_opts o;
    char msg[300];

    ig_fetch_opts_default(&o);
    o.max_bytes = (size_t)app->cfg.ref_max_bytes;
    o.connect_timeout_ms = app->cfg.fetch_connect_timeout_ms;
    o.total_timeout_ms = app->cfg.fetch_timeout_ms;
    o.max_redirects = app->cfg.fetch_max_redirects;
    o.allow_loopback = app->cfg.fetch_allow_loopback;
    r->task.progress = IG_PROGRESS_FETCHING;
    for (int i = 0; i < r->task.req.nrefs; i++)
        ig_job_add_ref(&r->job);
    r->refs_pending = r->task.req.nrefs;
    for (int i = 0; i < r->task.req.nrefs; i++) {
        struct fetch_ctx *fc = ig_xcalloc(1, sizeof(*fc));

        fc->r = r;
        fc->index = i;
        r->busy++;
        if (strncmp(r->task.req.refs[i], "blob:", 5) == 0) {
            struct blob_ref *br = ig_xcalloc(1, sizeof(*br));

            br->fc = fc;
            br->blob = app->blob;
            br->max = o.max_bytes;
            if (parse_blob_ref(r->task.req.refs[i], br->id, br->ext, sizeof(br->ext))) {
                ig_pool_submit(r->e->pool, blob_ref_work, blob_ref_done, r->e->mb, br);
                continue;
            }
            free(br);
        } else if (ig_fetch_start(r->e->tp, r->task.req.refs[i], &o, fetch_done, fc) == IG_OK) {
            continue;
        }
        free(fc);
        r->busy--;
        r->refs_pending -= r->task.req.nrefs - i;
        snprintf(msg, sizeof(msg), "image_urls[%d]: not a fetchable http(s) URL", i);
        run_finish(r, IG_TASK_FAILED, IG_E_REFERENCE, msg);
        return;
    }
}

/* ---- timers --------------------------------------------------------------------------- */

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct run *r = arg;
    char msg[128];

    snprintf(msg, sizeof(msg), "the task did not finish within its deadline of %d s",
             r->e->app->cfg.task_timeout_s);
    run_finish(r, IG_TASK_FAILED, IG_E_UPSTREAM_TIMEOUT, msg);
}

static enum ig_err renew_job(struct ig_store *s, void *arg)
{
    struct wjob *w = arg;

    return ig_store_task_renew(s, &w->run->task.id, w->e->owner, w->run->task.attempts,
                               w->lease_until, w->progress);
}

static void renew_then(struct wjob *w, enum ig_err err)
{
    struct run *r = w->run;

    if (err == IG_E_CONFLICT && !r->finishing) {
        char hex[IG_ID_HEX_LEN + 1];

        ig_id_hex(&r->task.id, hex);
        ig_info("engine: task %s is no longer ours (cancelled or re-leased); stopping it", hex);
        run_detach(r);
    }
    run_unref(r);
}

static void on_renew(evutil_socket_t fd, short what, void *arg)
{
    struct run *r = arg;
    struct wjob *w;

    if (r->finishing || r->terminal)
        return;
    w = ig_xcalloc(1, sizeof(*w));
    w->run = r;
    w->then = renew_then;
    w->lease_until = ig_now_ms() + (int64_t)r->e->app->cfg.lease_s * 1000;
    w->progress = r->task.progress;
    r->busy++;
    wjob_submit(r->e, w, renew_job);
}

/* ---- claiming --------------------------------------------------------------------------- */

static void run_start(struct ig_engine *e, struct ig_task *t)
{
    struct run *r = ig_xcalloc(1, sizeof(*r));
    int64_t left = t->deadline_ms - ig_now_ms();
    struct timeval tv;
    int64_t renew_ms = (int64_t)e->app->cfg.lease_s * 1000 / 3;

    r->e = e;
    e->nalive++;
    r->task = *t; /* takes over the strings */
    ig_task_init(t);
    r->next = e->runs;
    if (e->runs)
        e->runs->prev = r;
    e->runs = r;
    e->inflight++;
    r->model = ig_catalog_find(e->app->catalog, r->task.model, NULL);
    r->deadline_ev = evtimer_new(e->base, on_deadline, r);
    r->renew_ev = event_new(e->base, -1, EV_PERSIST, on_renew, r);
    tv.tv_sec = left > 0 ? left / 1000 : 0;
    tv.tv_usec = left > 0 ? (left % 1000) * 1000 : 0;
    evtimer_add(r->deadline_ev, &tv);
    tv.tv_sec = renew_ms / 1000;
    tv.tv_usec = (renew_ms % 1000) * 1000;
    evtimer_add(r->renew_ev, &tv);
    if (!r->model) {
        run_finish(r, IG_TASK_FAILED, IG_E_INVALID, "the model is no longer in the catalog");
        return;
    }
    if (r->task.req.nrefs > 0)
        run_fetch_refs(r);
    else
        run_provider(r);
}

static enum ig_err claim_job(struct ig_store *s, void *arg)
{
    struct wjob *w = arg;

    w->now = ig_now_ms();
    w->lease_until = w->now + (int64_t)w->e->app->cfg.lease_s * 1000;
    return ig_store_task_claim(s, w->now, w->e->owner, w->lease_until, w->max, w->tasks,
                               &w->ntasks, w->failed, CLAIM_BATCH, &w->nfailed);
}

static void claim_then(struct wjob *w, enum ig_err err)
{
    struct ig_engine *e = w->e;

    e->claiming = false;
    if (err) {
        ig_error("engine: claiming tasks failed: %s", ig_strerror(err));
        w->ntasks = 0;
    }
    for (int i = 0; i < w->nfailed; i++) {
        char hex[IG_ID_HEX_LEN + 1];

        ig_id_hex(&w->failed[i], hex);
        ig_info("engine: task %s failed before it could run (deadline or attempts)", hex);
        fire_waiters(e, &w->failed[i], NULL);
    }
    atomic_fetch_sub(&e->held, w->max - w->ntasks); /* the slots it did not fill */
    for (int i = 0; i < w->ntasks; i++)
        run_start(e, &w->tasks[i]);
    if (e->grace_over) /* claimed while a stop was ending: put them straight back */
        on_grace(-1, 0, e);
    for (int i = 0; i < w->ntasks; i++)
        ig_task_release(&w->tasks[i]);
    free(w->tasks);
    if (w->ntasks == w->max && !err)
        maybe_claim(e);
    maybe_exit(e);
}

/* Take up to `want` of the max_inflight slots (any thread). Returns how many were taken. */
static int take_slots(struct ig_engine *e, int want)
{
    int held = atomic_load(&e->held), n;

    do {
        n = e->app->cfg.max_inflight - held;
        if (n <= 0)
            return 0;
        if (n > want)
            n = want;
    } while (!atomic_compare_exchange_weak(&e->held, &held, held + n));
    return n;
}

static void maybe_claim(struct ig_engine *e)
{
    struct wjob *w;
    int n;

    if (e->claiming || e->stopping || (n = take_slots(e, CLAIM_BATCH)) == 0)
        return;
    w = ig_xcalloc(1, sizeof(*w));
    w->max = n;
    w->tasks = ig_xcalloc((size_t)w->max, sizeof(*w->tasks));
    w->then = claim_then;
    e->claiming = true;
    wjob_submit(e, w, claim_job);
}

/* ---- admission: a new task stored and, when there is room, started without a claim ------ */

struct esub {
    struct ig_engine *e;
    struct ig_task task;
    struct ig_mailbox *mb;
    ig_engine_submit_fn *done;
    void *arg;
    enum ig_err err;
    bool reserved;
};

struct adopt {
    struct ig_engine *e;
    struct ig_task task;
    bool stored;
};

static void on_adopt(void *arg)
{
    struct adopt *a = arg;
    struct ig_engine *e = a->e;

    atomic_fetch_sub(&e->adopting, 1);
    if (a->stored) {
        run_start(e, &a->task);
        if (e->grace_over) /* handed over while a stop was ending: put it straight back */
            on_grace(-1, 0, e);
    } else {
        atomic_fetch_sub(&e->held, 1);
    }
    ig_task_release(&a->task);
    free(a);
    maybe_exit(e);
}

static enum ig_err esub_insert(struct ig_store *s, void *arg)
{
    struct esub *sb = arg;

    return ig_store_task_insert(s, &sb->task);
}

static void esub_reply(void *arg)
{
    struct esub *sb = arg;

    sb->done(sb->err, &sb->task, sb->arg);
    ig_task_release(&sb->task);
    free(sb);
}

/* On the writer thread, right after the commit: the engine gets its copy of a reserved task
 * directly (one hop, not two), the dialect its reply on its own loop. */
static void esub_committed(enum ig_err err, void *arg)
{
    struct esub *sb = arg;
    struct ig_engine *e = sb->e;

    sb->err = err;
    if (sb->reserved) {
        struct adopt *a = ig_xcalloc(1, sizeof(*a));

        a->e = e;
        a->stored = !err;
        ig_task_init(&a->task);
        if (!err)
            ig_task_copy(&a->task, &sb->task);
        ig_mailbox_post(e->mb, on_adopt, a);
    } else if (!err) {
        ig_engine_wake(e);
    }
    ig_mailbox_post(sb->mb, esub_reply, sb);
}

int64_t ig_engine_price(const struct ig_app *app, const struct ig_task *t)
{
    const struct ig_model *m = ig_catalog_find(app->catalog, t->model, NULL);
    int ri = m ? ig_model_res_index(m, t->req.resolution[0] ? t->req.resolution : m->default_res)
               : -1;

    return m ? ig_model_hold(m, ri, t->req.n) : 0;
}

void ig_engine_submit(struct ig_engine *e, struct ig_task *t, struct ig_mailbox *mb,
                      ig_engine_submit_fn *done, void *arg)
{
    struct esub *sb = ig_xcalloc(1, sizeof(*sb));

    sb->e = e;
    sb->task = *t; /* takes over the strings */
    ig_task_init(t);
    sb->task.price_held = ig_engine_price(e->app, &sb->task);
    sb->mb = mb;
    sb->done = done;
    sb->arg = arg;
    if (sb->task.state == IG_TASK_QUEUED && atomic_load(&e->accepting) && take_slots(e, 1)) {
        struct ig_task *st = &sb->task;

        atomic_fetch_add(&e->adopting, 1);
        if (!atomic_load(&e->accepting)) { /* a stop began in between: leave it to the queue */
            atomic_fetch_sub(&e->adopting, 1);
            atomic_fetch_sub(&e->held, 1);
        } else {
            sb->reserved = true;
            st->state = IG_TASK_RUNNING;
            st->attempts = 1;
            st->started_ms = ig_now_ms();
            st->lease_until_ms = st->started_ms + (int64_t)e->app->cfg.lease_s * 1000;
            snprintf(st->lease_owner, sizeof(st->lease_owner), "%s", e->owner);
        }
    }
    ig_writer_submit(e->app->writer, esub_insert, esub_committed, NULL, sb);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    maybe_claim(arg);
}

/* ---- expiry sweep (runs on the writer thread, so it never interleaves with a finish) ------ */

static void sweep_delete(const char *blob, const char *ext, void *arg)
{
    struct ig_blob *b = arg;

    if (ig_blob_del(b, blob, ext))
        ig_warn("engine: sweep could not delete blob %.12s…", blob);
}

static enum ig_err sweep_job(struct ig_store *s, void *arg)
{
    struct wjob *w = arg;

    int64_t now = ig_now_ms();
    enum ig_err err;

    w->ntasks = 0;
    err = ig_store_sweep_expired(s, now, sweep_delete, w->e->app->blob, &w->ntasks);
    if (!err) /* Idempotency-Key records past their time */
        err = ig_store_idem_sweep(s, now - (int64_t)w->e->app->cfg.idempotency_ttl_s * 1000, NULL);
    return err;
}

static void sweep_then(struct wjob *w, enum ig_err err)
{
    if (err)
        ig_error("engine: expiry sweep failed: %s", ig_strerror(err));
    else if (w->ntasks)
        ig_info("engine: expiry sweep: results of %d task(s) expired and removed", w->ntasks);
    maybe_exit(w->e);
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    struct ig_engine *e = arg;
    struct wjob *w;

    if (e->stopping)
        return;
    w = ig_xcalloc(1, sizeof(*w));
    w->then = sweep_then;
    wjob_submit(e, w, sweep_job);
}

static void on_wake(void *arg)
{
    maybe_claim(arg);
}

/* ---- stopping ------------------------------------------------------------------------- */

static void maybe_exit(struct ig_engine *e)
{
    if (!e->stopping || e->runs || e->writer_pending > 0 || e->claiming ||
        atomic_load(&e->adopting) > 0)
        return;
    if (e->nalive == 0) {
        fire_waiters(e, NULL, NULL); /* tasks still queued: their clients get the store's answer */
        event_base_loopexit(e->base, NULL);
    } else if (!e->calls_aborted) {
        /* Every task is finished or back in the queue; what is still under way (an upstream
         * call, a reference download) serves nobody: abort it rather than wait for its
         * timeout. The aborted calls' callbacks free the last runs. */
        e->calls_aborted = true;
        ig_info("engine: stopping: aborting %d upstream call(s) of tasks given back", e->nalive);
        ig_transport_cancel_all(e->tp);
    }
}

static enum ig_err requeue_job(struct ig_store *s, void *arg)
{
    struct wjob *w = arg;

    return ig_store_task_requeue(s, &w->run->task.id, w->e->owner, w->run->task.attempts, true);
}

static void requeue_then(struct wjob *w, enum ig_err err)
{
    char hex[IG_ID_HEX_LEN + 1];

    ig_id_hex(&w->run->task.id, hex);
    if (!err)
        ig_info("engine: task %s put back in the queue for the next start", hex);
    run_detach(w->run);
    run_unref(w->run);
}

static void on_grace(evutil_socket_t fd, short what, void *arg)
{
    struct ig_engine *e = arg;

    e->grace_over = true;
    for (struct run *r = e->runs; r; r = r->next) {
        struct wjob *w;

        if (r->finishing)
            continue;
        r->finishing = true;
        w = ig_xcalloc(1, sizeof(*w));
        w->run = r;
        w->then = requeue_then;
        r->busy++;
        wjob_submit(e, w, requeue_job);
    }
    maybe_exit(e);
}

static void on_stop(void *arg)
{
    struct ig_engine *e = arg;
    struct timeval tv = {0, 0};

    e->stopping = true;
    atomic_store(&e->accepting, false);
    /* The tick stays: it claims nothing now, but keeps the loop from running dry (a run
     * waiting on the CPU pool has no event of its own on this loop) before maybe_exit. */
    event_del(e->sweep_ev);
    if (e->runs)
        ig_info("engine: stopping: %d task(s) running, waiting up to %d s",
                e->inflight, e->app->cfg.grace_s);
    tv.tv_sec = e->app->cfg.grace_s;
    evtimer_add(e->grace_ev, &tv);
    maybe_exit(e);
}

/* ---- thread ----------------------------------------------------------------------------- */

static void *engine_main(void *arg)
{
    struct ig_engine *e = arg;
    struct timeval tv = {TICK_MS / 1000, (TICK_MS % 1000) * 1000};

    evtimer_add(e->tick, &tv);
    tv.tv_sec = e->app->cfg.sweep_interval_s;
    tv.tv_usec = 0;
    evtimer_add(e->sweep_ev, &tv);
    on_sweep(-1, 0, e);
    maybe_claim(e);
    event_base_dispatch(e->base);
    return NULL;
}

struct ig_engine *ig_engine_start(struct ig_app *app, struct ig_provider *provider)
{
    struct ig_engine *e = ig_xcalloc(1, sizeof(*e));
    unsigned char rnd[4];
    char hex[9];

    e->app = app;
    e->provider = provider;
    atomic_init(&e->held, 0);
    atomic_init(&e->adopting, 0);
    atomic_init(&e->accepting, true);
    atomic_init(&e->nwaiters, 0);
    pthread_mutex_init(&e->wmu, NULL);
    e->base = event_base_new();
    if (!e->base)
        IG_BUG("event_base_new failed");
    e->mb = ig_mailbox_new(e->base);
    e->tp = ig_transport_new(e->base);
    e->pool = ig_pool_new(app->cfg.cpu_threads > 0 ? app->cfg.cpu_threads
                                                   : (int)sysconf(_SC_NPROCESSORS_ONLN));
    e->tick = event_new(e->base, -1, EV_PERSIST, on_tick, e);
    e->grace_ev = evtimer_new(e->base, on_grace, e);
    e->sweep_ev = event_new(e->base, -1, EV_PERSIST, on_sweep, e);
    ig_random_bytes(rnd, sizeof(rnd));
    ig_hex_encode(rnd, sizeof(rnd), hex);
    snprintf(e->owner, sizeof(e->owner), "node-%s-%d", hex, (int)getpid());
    if (pthread_create(&e->thread, NULL, engine_main, e) != 0)
        IG_BUG("pthread_create failed");
    return e;
}

void ig_engine_wake(struct ig_engine *e)
{
    ig_mailbox_post(e->mb, on_wake, e);
}


void ig_engine_stop(struct ig_engine *e, int grace_s)
{
    e->app->cfg.grace_s = grace_s;
    ig_mailbox_post(e->mb, on_stop, e);
    pthread_join(e->thread, NULL);
}

void ig_engine_free(struct ig_engine *e)
{
    if (!e)
        return;
    /* Abort what is left; their callbacks run now and release the runs. */
    ig_transport_free(e->tp);
    ig_pool_free(e->pool);
    ig_mailbox_free(e->mb);
    while (e->runs) {
        struct run *r = e->runs;
        e->runs = r->next;
        run_free(r);
    }
    if (e->nalive)
        ig_warn("engine: %d task run(s) still waiting for callbacks at exit", e->nalive);
    for (int b = 0; b < WAIT_BUCKETS; b++) { /* registered after the loop ended */
        while (e->waiters[b]) {
            struct ig_waiter *w = e->waiters[b];

            e->waiters[b] = w->next;
            free(w);
        }
    }
    pthread_mutex_destroy(&e->wmu);
    event_free(e->tick);
    event_free(e->sweep_ev);
    event_free(e->grace_ev);
    ig_provider_free(e->provider);
    event_base_free(e->base);
    free(e);
}
