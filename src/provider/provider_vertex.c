/* provider_vertex.c: the "vertex" provider: generateContent on Vertex AI (wire-formats.md §1.10).
 *
 * Vertex takes the Gemini API's body and answers with its response, so the calls run on the
 * Gemini provider's engine (gemini_int.h); only the address and the authorisation differ:
 *   API key ("express mode"): {base_url}/v1/publishers/google/models/{model}:generateContent
 *                             with x-goog-api-key;
 *   project (access_token or service account):
 *     {base_url}/v1/projects/{project}/locations/{location}/publishers/google/models/{model}
 *     :generateContent with Authorization: Bearer <token>. A service account's token comes
 *     from gauth.c (cached, shared by the channel's calls); its project_id is the project
 *     when the channel names none. A 401 drops the cached token.
 * Tokens and keys are secrets: never logged, never in a message. */
#include "base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "provider/channel.h"
#include "provider/gauth.h"
#include "provider/gemini_int.h"
#include "provider/provider.h"

struct vertex {
    const struct ig_channel *c;
    struct ig_gauth *ga;   /* service account, or NULL */
    char project[128];     /* the channel's, else the key file's */
    char load_err[512];    /* why the service account could not be loaded, "" if it could */
};

/* Project and location go into the path: [A-Za-z0-9._-] only (nothing to escape). */
static bool segment_ok(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '-' || *s == '_'))
            return false;
    return true;
}

static char *vertex_url(void *vctx, const struct ig_channel *c, const char *model, char *msg,
                        size_t msglen)
{
    struct vertex *vx = vctx;

    if (c->nkeys > 0)
        return ig_xasprintf("%s/v1/publishers/google/models/%s:generateContent", c->base_url,
                            model);
    if (vx->load_err[0]) {
        /* The key file could not be loaded, and with it went the project_id a channel without
         * "project" takes from it. No call goes out: vertex_token fails the job as a refused
         * credential (the router records the attempt with the reason and disables the
         * channel), so this address is never used. Failing here instead would lose the reason
         * and leave the channel enabled to fail every task. */
        return ig_xasprintf("%s/v1/projects/-/locations/-/publishers/google/models/%s"
                            ":generateContent",
                            c->base_url, model);
    }
    if (!segment_ok(vx->project) || !segment_ok(c->location)) {
        snprintf(msg, msglen, "the project or location is missing or not [A-Za-z0-9._-]");
        return NULL;
    }
    return ig_xasprintf("%s/v1/projects/%s/locations/%s/publishers/google/models/%s"
                        ":generateContent",
                        c->base_url, vx->project, c->location, model);
}

/* ---- service-account tokens ---- */

struct failed {
    ig_gemini_token_cb *cb;
    void *arg;
    char msg[512];
};

static void failed_cb(evutil_socket_t fd, short what, void *arg)
{
    struct failed *f = arg;

    f->cb(NULL, IG_E_UNAUTHENTICATED, f->msg, f->arg);
    free(f);
}

static void vertex_token(void *vctx, struct ig_job *job, ig_gemini_token_cb *cb, void *arg)
{
    struct vertex *vx = vctx;

    if (!vx->ga) {
        /* The key file could not be loaded: fail as a refused credential (the router disables
         * the channel), later on the loop as the contract asks. */
        static const struct timeval zero = {0, 0};
        struct failed *f = ig_xcalloc(1, sizeof(*f));

        f->cb = cb;
        f->arg = arg;
        snprintf(f->msg, sizeof(f->msg), "%s", vx->load_err);
        if (event_base_once(job->base, -1, EV_TIMEOUT, failed_cb, f, &zero) != 0)
            IG_BUG("vertex: event_base_once failed");
        return;
    }
    ig_gauth_get(vx->ga, job->base, job->tp, cb, arg);
}

static void vertex_refused(void *vctx)
{
    struct vertex *vx = vctx;

    if (vx->ga)
        ig_gauth_invalidate(vx->ga);
}

static void vertex_free(void *vctx)
{
    struct vertex *vx = vctx;

    if (!vx)
        return;
    ig_gauth_free(vx->ga);
    free(vx);
}

struct ig_provider *ig_provider_vertex_new(const struct ig_channel *c)
{
    struct vertex *vx = ig_xcalloc(1, sizeof(*vx));
    struct ig_gemini_variant v = {
        .name = "vertex",
        .url = vertex_url,
        .free = vertex_free,
        .vctx = vx,
    };

    vx->c = c;
    snprintf(vx->project, sizeof(vx->project), "%s", c->project);
    if (c->nkeys == 0 && c->access_token[0]) {
        v.bearer = c->access_token;
    } else if (c->nkeys == 0 && c->service_account_file[0]) {
        struct ig_errbuf eb;

        ig_errbuf_clear(&eb);
        vx->ga = ig_gauth_new(c->service_account_file, c->token_url, &eb);
        if (!vx->ga) {
            snprintf(vx->load_err, sizeof(vx->load_err), "%s",
                     eb.msg[0] ? eb.msg : "the service account file could not be loaded");
            ig_warn("vertex: channel %s: %s", c->name, vx->load_err);
        } else if (!vx->project[0]) {
            snprintf(vx->project, sizeof(vx->project), "%s", ig_gauth_project(vx->ga));
        }
        v.token = vertex_token;
        v.refused = vertex_refused;
    }
    return ig_gemini_provider_new(c, &v);
}
