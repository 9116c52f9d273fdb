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
    for (int i = 0; i < IG_MAX_REFS; i++)
        ig_image_release(&job->refs[i]);
    job->nrefs = 0;
    for (int i = 0; i < IG_MAX_OUTPUTS; i++)
        ig_image_release(&job->images[i]);
    job->nimages = 0;
    free(job->text);
    job->text = NULL;
}

void ig_job_reset_outputs(struct ig_job *job)
{
    for (int i = 0; i < IG_MAX_OUTPUTS; i++)
        ig_image_release(&job->images[i]);
    job->nimages = 0;
    free(job->text);
    job->text = NULL;
    memset(&job->usage, 0, sizeof(job->usage));
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
