/* task.h: the canonical request and task that every dialect, the engine and the store share.
 *
 * A dialect parses its wire format into a struct ig_request; admission wraps it in a struct
 * ig_task that the store persists before its id is given to anyone. Lifetime: a task struct
 * owns its strings and outputs (ig_task_release frees them); copies are made with ig_task_copy. */
#ifndef IG_TASK_H
#define IG_TASK_H

#include "base/base.h"

#define IG_MAX_REFS 16      /* references per request (dialects cap lower) */
#define IG_MAX_OUTPUTS 10   /* images per task */
#define IG_MODEL_NAME_MAX 96

enum ig_task_state {
    IG_TASK_QUEUED = 0,
    IG_TASK_RUNNING,
    IG_TASK_SUCCEEDED,
    IG_TASK_FAILED,
    IG_TASK_CANCELLED,
    IG_TASK__COUNT
};

/* "queued", "running", "succeeded", "failed", "cancelled". */
const char *ig_task_state_name(enum ig_task_state s);
bool ig_task_state_parse(const char *name, enum ig_task_state *out);
bool ig_task_state_is_terminal(enum ig_task_state s);

/* Progress steps the engine reports (percent). */
enum ig_progress {
    IG_PROGRESS_QUEUED = 0,
    IG_PROGRESS_FETCHING = 10,
    IG_PROGRESS_SUBMITTED = 30,
    IG_PROGRESS_RECEIVING = 70,
    IG_PROGRESS_STORING = 90,
    IG_PROGRESS_DONE = 100,
};

struct ig_idem_record;

/* What the client asked for, in canonical form. */
struct ig_request {
    char *prompt;            /* UTF-8, required */
    char ratio[8];           /* "16:9"; "" = inherit from the first reference, else 1:1 */
    char resolution[8];      /* "1K", "2K", "4K" */
    int n;                   /* images requested */
    bool has_temperature, has_top_p;
    double temperature, top_p;
    int nrefs;
    char *refs[IG_MAX_REFS]; /* reference image URLs, in order */
    char output_format[8];   /* "png" (default), "jpeg", "webp" */
    int output_quality;      /* 0 = default */
    bool official;           /* pinned to the official channel (`-official` model names) */
    /* Gemini-dialect passthroughs for Gemini channels (other providers ignore them). */
    char *system;            /* systemInstruction text, NULL when none */
    char *safety;            /* safetySettings as a compact JSON array, NULL when none */
    bool has_top_k, has_seed;
    int top_k, seed;
};

struct ig_output {
    char blob[IG_SHA256_HEX_LEN + 1]; /* content address in the blob store */
    char mime[24];
    char ext[8];                      /* "png", "jpeg", "webp" */
    int width, height;
    int64_t bytes;
};

struct ig_usage {
    int64_t prompt_tokens, image_tokens, text_tokens, images;
};

struct ig_task {
    struct ig_id id;
    int64_t key_id;
    char model[IG_MODEL_NAME_MAX];       /* catalog model id, e.g. "gemini-2.5-flash-image" */
    char model_alias[IG_MODEL_NAME_MAX]; /* the name the client sent, echoed back */
    char dialect[16];                    /* "reapi", ... */
    char channel[64];                    /* channel that ran it ("offline", ...) */
    enum ig_task_state state;
    int progress;
    int attempts, max_attempts;
    int64_t created_ms, started_ms, finished_ms;
    int64_t deadline_ms;   /* the task fails with IG_E_UPSTREAM_TIMEOUT past this */
    int64_t expires_ms;    /* outputs are deleted after this (0 = never) */
    int64_t lease_until_ms;
    char lease_owner[40];
    struct ig_request req;
    int noutputs;
    struct ig_output *outputs;           /* noutputs of them, heap (ig_task_add_output) */
    bool outputs_expired;
    struct ig_usage usage;
    int64_t price_held, price_captured; /* micro-dollars */
    int64_t cost;                       /* micro-dollars the upstream charged (operator's cost) */
    int admit_max_tasks;                /* admission only, not stored: the key's limit of
                                         * unfinished tasks the insert enforces (0 = none) */
    const struct ig_idem_record *idem;  /* admission only: the Idempotency-Key record the
                                         * insert writes with the task (not copied) */
    enum ig_err err;                    /* IG_OK unless failed/cancelled */
    char *err_message;
    char *text;                         /* text parts the model returned, if any */
    char *upstream;                     /* JSON: attempts, modelVersion, responseId */
    bool offline;                       /* produced by the offline provider */
};

void ig_request_release(struct ig_request *r);
void ig_task_init(struct ig_task *t);
void ig_task_release(struct ig_task *t);
void ig_task_copy(struct ig_task *dst, const struct ig_task *src);
void ig_task_set_error(struct ig_task *t, enum ig_err err, const char *msg);
/* Append an empty output (at most IG_MAX_OUTPUTS; NULL past that); drop them all. */
struct ig_output *ig_task_add_output(struct ig_task *t);
void ig_task_clear_outputs(struct ig_task *t);

/* Serialise the request to compact JSON (heap string) and back. Used by the store. */
char *ig_request_to_json(const struct ig_request *r);
enum ig_err ig_request_from_json(struct ig_request *r, const char *json);

#endif
