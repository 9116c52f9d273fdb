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
