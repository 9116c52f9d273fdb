/* provider.c: lifetimes of the images and jobs every provider shares. */
#include "base/base.h"

#include <stdlib.h>
#include <string.h>

#include "provider/provider.h"

void ig_image_release(struct ig_image *im)
{
    if (!im)
        return;
    free(im->data);
    memset(im, 0, sizeof(*im));
}

void ig_job_release(struct ig_job *job)
{
    if (!job)
        return;
    for (int i = 0; i < job->nrefs; i++)
        ig_image_release(&job->refs[i]);
    free(job->refs);
    job->refs = NULL;
    job->nrefs = 0;
    free(job->attempts);
    job->attempts = NULL;
    job->nattempts = 0;
    for (int i = 0; i < IG_MAX_OUTPUTS; i++)
        ig_image_release(&job->images[i]);
    job->nimages = 0;
    free(job->text);
    job->text = NULL;
}

struct ig_image *ig_job_add_ref(struct ig_job *job)
{
    struct ig_image *im;

    if (job->nrefs >= IG_MAX_REFS)
        return NULL;
    job->refs = ig_xrealloc(job->refs, (size_t)(job->nrefs + 1) * sizeof(*job->refs));
    im = &job->refs[job->nrefs++];
    memset(im, 0, sizeof(*im));
    return im;
}

struct ig_attempt *ig_job_add_attempt(struct ig_job *job)
{
    struct ig_attempt *a;

    if (job->nattempts >= IG_MAX_ATTEMPTS_LOG)
        return NULL;
    job->attempts = ig_xrealloc(job->attempts, (size_t)(job->nattempts + 1) * sizeof(*job->attempts));
    a = &job->attempts[job->nattempts++];
    memset(a, 0, sizeof(*a));
    return a;
}

void ig_job_reset_outputs(struct ig_job *job)
{
    for (int i = 0; i < IG_MAX_OUTPUTS; i++)
        ig_image_release(&job->images[i]);
    job->nimages = 0;
    free(job->text);
    job->text = NULL;
    memset(&job->usage, 0, sizeof(job->usage));
    job->cost = 0;
    ig_job_reset_failure(job);
}

void ig_job_reset_failure(struct ig_job *job)
{
    job->err = IG_OK;
    job->errmsg[0] = '\0';
    job->model_version[0] = '\0';
    job->response_id[0] = '\0';
    job->http_status = 0;
    job->retryable = false;
    job->maybe_executed = false;
    job->auth_failed = false;
    job->retry_after_ms = 0;
    job->bytes_in = 0;
}
