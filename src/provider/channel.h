/* channel.h: channels: the upstreams a model can be sent to, and the router that picks one,
 * retries and fails over.
 *
 * A channel is one upstream endpoint with its own type (gemini, vertex, openai), keys,
 * priority, weight, concurrency cap, timeouts and model-name mapping. They come from the
 * "channels" array of the config file, or from GEMINI_API_KEY / GEMINI_BASE_URL.
 *
 * The router is itself a provider (provider.h): the engine starts a job on it; it picks the
 * highest-priority tier of channels that serve the model (weighted random inside a tier),
 * starts the job on that channel's provider, and on a failure that provably never ran upstream
 * (connection refused, 429, 502, 503) retries with exponential backoff and full jitter, moving
 * to another channel when one is available, within an attempt cap and a time budget. A channel
 * whose key is refused (401/403) is disabled; one answering 429 cools down. A model no channel
 * serves goes to the offline provider, and the job says so (job->offline). */
#ifndef IG_CHANNEL_H
#define IG_CHANNEL_H

#include "base/base.h"
#include "core/catalog.h"
#include "provider/provider.h"

#define IG_CHANNEL_MAX 32
#define IG_CHANNEL_MAX_KEYS 8
#define IG_CHANNEL_MAX_MODELS 16

enum ig_channel_type { IG_CHANNEL_GEMINI = 0, IG_CHANNEL_VERTEX, IG_CHANNEL_OPENAI };

struct ig_channel {
    char name[64];
    enum ig_channel_type type;
    char base_url[512];               /* no trailing slash */
    int nkeys;
    char keys[IG_CHANNEL_MAX_KEYS][256]; /* secrets: never logged */
    int priority;                     /* higher first */
    int weight;                       /* share inside a priority tier */
    int max_concurrency;              /* in-flight calls, 0 = unlimited */
    int timeout_ms;                   /* total per attempt */
    int connect_timeout_ms;
    int64_t max_response_bytes;       /* response body cap */
    bool official;                    /* what the -official model names pin */
    int64_t cost_per_image;           /* micro-dollars the upstream charges per image (0 =
                                       * unknown): recorded per task beside the price */
    /* Vertex AI: {base_url}/v1/projects/{project}/locations/{location}/publishers/google/models/
     * {model}:generateContent, authorised by one of: keys (API key, "express mode": no project
     * needed), access_token (a fixed Bearer token), service_account_file (a JSON key: imagegate
     * signs an RS256 JWT and exchanges it at token_url, caching the access token). */
    char project[128];
    char location[64];                /* "global" by default */
    char access_token[2048];
    char service_account_file[512];
    char token_url[512];              /* default https://oauth2.googleapis.com/token */
    int nmodels;                      /* 0 = every model of the catalog */
    struct {
        char model[96];               /* catalog id */
        char upstream[96];            /* name to send upstream ("" = the catalog's upstream) */
    } models[IG_CHANNEL_MAX_MODELS];
};

struct ig_channels {
    int n;
    struct ig_channel ch[IG_CHANNEL_MAX];
};

/* Channels from the config file's "channels" array (path may be ""), then a "gemini" channel
 * from GEMINI_API_KEY (+ GEMINI_BASE_URL, default Google's) when no configured channel has
 * that name. IG_E_INVALID with the field named in eb. */
enum ig_err ig_channels_load(struct ig_channels *out, const char *config_path,
                             struct ig_errbuf *eb);
/* Parse a JSON array of channel objects. */
enum ig_err ig_channels_parse(struct ig_channels *out, const char *json, size_t len,
                              struct ig_errbuf *eb);
/* Every model a channel maps must be a catalog id (not an alias). */
enum ig_err ig_channels_check(const struct ig_channels *chs, const struct ig_catalog *cat,
                              struct ig_errbuf *eb);
/* Does the channel serve this catalog model? Writes the upstream model name. */
bool ig_channel_serves(const struct ig_channel *c, const struct ig_model *m, char *upstream,
                       size_t len);
const char *ig_channel_type_name(enum ig_channel_type t);

struct ig_router_opts {
    int max_attempts;         /* upstream attempts per job (5) */
    int budget_ms;            /* total time for retries (30000) */
    int backoff_base_ms;      /* first backoff cap (500) */
    int backoff_max_ms;       /* largest backoff (8000) */
    int cooldown_ms;          /* a 429 without Retry-After cools a channel this long (10000) */
    bool retry_maybe_executed;/* retry timeouts after send and 504s (may double-bill) */
};

void ig_router_opts_default(struct ig_router_opts *o);

/* The router as a provider. Takes copies of the channels; the offline provider is used for
 * models no channel serves (owned by the router from now on). */
struct ig_provider *ig_router_new(const struct ig_channels *chs, const struct ig_router_opts *o,
                                  struct ig_provider *offline);
/* Does any configured channel serve this model? (false: offline) */
bool ig_router_serves(struct ig_provider *router, const struct ig_model *m);

/* What the upstream did (attempts, modelVersion, responseId) as JSON for the task row;
 * cJSON-allocated (free with cJSON_free). */
char *ig_job_upstream_json(const struct ig_job *job);

/* Providers for channel types. The channel must outlive the provider. */
struct ig_provider *ig_provider_gemini_new(const struct ig_channel *c);
struct ig_provider *ig_provider_vertex_new(const struct ig_channel *c);
struct ig_provider *ig_provider_openai_new(const struct ig_channel *c);

#endif
