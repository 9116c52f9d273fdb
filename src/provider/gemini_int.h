/* gemini_int.h: the generateContent engine of provider_gemini.c, shared with the providers
 * that speak the same wire format at another address (provider_vertex.c).
 *
 * A variant says where the calls go (url) and how they are authorised: the channel's API
 * keys in x-goog-api-key (round robin), a fixed Bearer token, or a Bearer token that arrives
 * later from an asynchronous source (token). Everything else (body, parallel calls, parsing,
 * failure classification, merging) is the Gemini provider's. */
#ifndef IG_GEMINI_INT_H
#define IG_GEMINI_INT_H

#include "base/base.h"
#include "provider/provider.h"

struct ig_channel;

/* Hand the token over (or the failure). token is borrowed for the call only. err IG_OK with a
 * token; IG_E_UNAUTHENTICATED: the credentials were refused (the job is marked auth_failed);
 * anything else: the token source could not be reached (the job is marked retryable). */
typedef void ig_gemini_token_cb(const char *token, enum ig_err err, const char *msg, void *arg);

struct ig_gemini_variant {
    const char *name; /* log and message prefix: "gemini", "vertex" */
    /* The generateContent URL for a model id (already checked: [A-Za-z0-9._-]); heap string,
     * or NULL when none can be made (msg says why). */
    char *(*url)(void *vctx, const struct ig_channel *c, const char *model, char *msg,
                 size_t msglen);
    /* A fixed Bearer token (borrowed, must outlive the provider), or NULL. */
    const char *bearer;
    /* Asynchronous Bearer token, or NULL. Must call cb exactly once, on the job's loop and
     * never inside the call. */
    void (*token)(void *vctx, struct ig_job *job, ig_gemini_token_cb *cb, void *arg);
    /* The upstream answered 401 to a Bearer token from token(): drop it. May be NULL. */
    void (*refused)(void *vctx);
    /* Free vctx with the provider. May be NULL. */
    void (*free)(void *vctx);
    void *vctx;
};

/* A provider that runs generateContent calls for the variant (copied; vctx is owned from now
 * on when free is set). With neither bearer nor token, the channel's keys go in
 * x-goog-api-key. */
struct ig_provider *ig_gemini_provider_new(const struct ig_channel *c,
                                           const struct ig_gemini_variant *v);

#endif
