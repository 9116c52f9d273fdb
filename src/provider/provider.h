/* provider.h: the upstream interface, as an ops table behind wrappers.
 *
 * The engine turns one task into one struct ig_job and starts it on a provider. A provider
 * builds its upstream request from the canonical request and the references (already
 * fetched, checked and in memory), runs it without blocking the engine loop (curl multi on
 * the loop, or CPU work on the pool), and calls job->done on the engine loop exactly once,
 * with images or an error. Providers know nothing of clients or dialects.
 *
 * Backends: "offline" (deterministic local images, no network). Gemini and OpenAI-compatible
 * providers implement the same ops. */
#ifndef IG_PROVIDER_H
#define IG_PROVIDER_H

#define IG_MAX_ATTEMPTS_LOG 16

#include "base/base.h"
#include "core/catalog.h"
#include "core/task.h"

struct event_base;
struct ig_transport;
struct ig_channel;

/* An image in memory: a reference going up or a result coming back. */
struct ig_image {
    unsigned char *data; /* owned */
    size_t len;
    char mime[24];       /* from the bytes' signature */
    int width, height;
};

void ig_image_release(struct ig_image *im);

struct ig_attempt {
    char channel[64];
    int http_status;
    enum ig_err err;
    int64_t latency_ms;
    int64_t bytes;
};

struct ig_job;
typedef void ig_job_done_fn(struct ig_job *job);

struct ig_job {
    /* Inputs, set by the engine, read-only for the provider. */
    const struct ig_task *task;
    const struct ig_model *model;
    int width, height;            /* the exact output size asked for */
    int nrefs;
    struct ig_image *refs;        /* nrefs of them, heap (ig_job_add_ref) */
    struct event_base *base;      /* the engine loop */
    struct ig_mailbox *mb;        /* the engine loop's mailbox */
    struct ig_pool *pool;         /* CPU pool */
    struct ig_transport *tp;      /* curl multi on the engine loop */
    const struct ig_channel *ch;  /* the channel this attempt goes to (the router sets it) */
    int want;                     /* images this attempt should add (0 = task->req.n); images
                                   * already in images[] from an earlier attempt are kept */
    char upstream_model[96];      /* the model id to ask the upstream for */
    ig_job_done_fn *done;
    void *arg;
    /* Set by the engine when the task has left its hands (finished by its deadline, put back
     * in the queue, lease lost): nothing this job still produces will be used. Providers
     * start no further attempt; done still runs exactly once. */
    bool cancelled;
    void *rctx;                   /* the router's per-job state */

    /* Outputs, set by the provider before done. */
    int nimages;
    struct ig_image images[IG_MAX_OUTPUTS];
    struct ig_usage usage;
    int64_t cost;                 /* micro-dollars the upstreams charged for the images kept
                                   * (their channels' cost_per_image; the router adds it) */
    char *text;                   /* model text parts, owned, may be NULL */
    enum ig_err err;              /* IG_OK, or what went wrong */
    char errmsg[512];
    char channel[64];             /* which channel answered */
    bool offline;                 /* the offline provider made the images */
    char model_version[96];       /* upstream's modelVersion, if any */
    char response_id[96];         /* upstream's responseId, if any */

    /* How the last upstream attempt failed, for the router's retry decision. With err == IG_OK
     * and fewer images than wanted, these describe the calls that failed. */
    int http_status;              /* 0 when no HTTP answer arrived */
    bool retryable;               /* provably never ran upstream: retry/fail over freely */
    bool maybe_executed;          /* may have run (and billed) upstream: timeout after send, 504 */
    bool auth_failed;             /* the channel's key was refused (401/403) */
    int64_t retry_after_ms;       /* Retry-After / RetryInfo.retryDelay, 0 if none */
    int64_t bytes_in;             /* response bytes of the attempt */

    /* Every upstream attempt, in order (the router appends; at most IG_MAX_ATTEMPTS_LOG).
     * Heap, so a job waiting on its first call carries none of it. */
    int nattempts;
    struct ig_attempt *attempts;

    void *pctx;                   /* provider's per-job state */
};

struct ig_provider;

struct ig_provider_ops {
    const char *name;
    int abi_version; /* 1 */
    /* Start the job; done runs later on the engine loop (never inside start). Returns an
     * error only if nothing was started (then done never runs). */
    enum ig_err (*start)(struct ig_provider *p, struct ig_job *job);
    void (*free)(struct ig_provider *p);
    /* Optional. job->cancelled has just been set: stop waiting for anything that is not
     * already under way (a backoff, a queue for a slot). done still runs once, later (never
     * inside cancel). A call already sent is left to end (or to ig_transport_abort_all). */
    void (*cancel)(struct ig_provider *p, struct ig_job *job);
};

struct ig_provider {
    const struct ig_provider_ops *ops;
    void *ctx;
};

static inline enum ig_err ig_provider_start(struct ig_provider *p, struct ig_job *job)
{
    return p->ops->start(p, job);
}
static inline void ig_provider_cancel(struct ig_provider *p, struct ig_job *job)
{
    if (p->ops->cancel)
        p->ops->cancel(p, job);
}
static inline void ig_provider_free(struct ig_provider *p)
{
    if (p)
        p->ops->free(p);
}

/* Release the job's inputs, outputs and attempt log (not the struct itself). */
void ig_job_release(struct ig_job *job);
/* Append an empty reference (at most IG_MAX_REFS; NULL past that). */
struct ig_image *ig_job_add_ref(struct ig_job *job);
/* Append an attempt record (at most IG_MAX_ATTEMPTS_LOG; NULL past that). */
struct ig_attempt *ig_job_add_attempt(struct ig_job *job);
/* Drop the outputs and failure details of an attempt before the next one (keeps inputs and
 * the attempt log). */
void ig_job_reset_outputs(struct ig_job *job);
/* Drop only the failure details (keeps images, usage and text gathered so far). */
void ig_job_reset_failure(struct ig_job *job);

/* The offline provider. latency_ms: added delay before done; failure_rate: 0..1 chance of
 * a deterministic failure (IG_E_UPSTREAM_FAILED), decided by the task id. */
struct ig_provider *ig_provider_offline_new(int latency_ms, double failure_rate);

#endif
