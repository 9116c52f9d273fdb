/* task.c: the canonical task: state names, lifetimes and the request's JSON form. */
#include "base/base.h"

#include "core/task.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const state_names[IG_TASK__COUNT] = {
    [IG_TASK_QUEUED] = "queued",
    [IG_TASK_RUNNING] = "running",
    [IG_TASK_SUCCEEDED] = "succeeded",
    [IG_TASK_FAILED] = "failed",
    [IG_TASK_CANCELLED] = "cancelled",
};

const char *ig_task_state_name(enum ig_task_state s)
{
    if ((unsigned)s >= IG_TASK__COUNT)
        return "unknown";
    return state_names[s];
}

bool ig_task_state_parse(const char *name, enum ig_task_state *out)
{
    for (int i = 0; name && i < IG_TASK__COUNT; i++) {
        if (strcmp(state_names[i], name) == 0) {
            *out = (enum ig_task_state)i;
            return true;
        }
    }
    return false;
}

bool ig_task_state_is_terminal(enum ig_task_state s)
{
    return s == IG_TASK_SUCCEEDED || s == IG_TASK_FAILED || s == IG_TASK_CANCELLED;
}

void ig_request_release(struct ig_request *r)
{
    free(r->prompt);
    free(r->system);
    free(r->safety);
    for (int i = 0; i < IG_MAX_REFS; i++)
        free(r->refs[i]);
    memset(r, 0, sizeof(*r));
}

void ig_task_init(struct ig_task *t)
{
    memset(t, 0, sizeof(*t));
    t->state = IG_TASK_QUEUED;
    t->err = IG_OK;
}

void ig_task_release(struct ig_task *t)
{
    ig_request_release(&t->req);
    free(t->err_message);
    free(t->text);
    free(t->upstream);
    free(t->outputs);
    ig_task_init(t);
}

static char *dup_or_null(const char *s)
{
    return s ? ig_xstrdup(s) : NULL;
}

void ig_task_copy(struct ig_task *dst, const struct ig_task *src)
{
    if (dst == src)
        return;
    memcpy(dst, src, sizeof(*dst));
    dst->idem = NULL;
    dst->req.prompt = dup_or_null(src->req.prompt);
    dst->req.system = dup_or_null(src->req.system);
    dst->req.safety = dup_or_null(src->req.safety);
    for (int i = 0; i < IG_MAX_REFS; i++)
        dst->req.refs[i] = dup_or_null(src->req.refs[i]);
    dst->err_message = dup_or_null(src->err_message);
    dst->text = dup_or_null(src->text);
    dst->upstream = dup_or_null(src->upstream);
    dst->outputs = NULL;
    if (src->noutputs > 0) {
        dst->outputs = ig_xmalloc((size_t)src->noutputs * sizeof(*dst->outputs));
        memcpy(dst->outputs, src->outputs, (size_t)src->noutputs * sizeof(*dst->outputs));
    }
}

struct ig_output *ig_task_add_output(struct ig_task *t)
{
    struct ig_output *o;

    if (t->noutputs >= IG_MAX_OUTPUTS)
        return NULL;
    t->outputs = ig_xrealloc(t->outputs, (size_t)(t->noutputs + 1) * sizeof(*t->outputs));
    o = &t->outputs[t->noutputs++];
    memset(o, 0, sizeof(*o));
    return o;
}

void ig_task_clear_outputs(struct ig_task *t)
{
    free(t->outputs);
    t->outputs = NULL;
    t->noutputs = 0;
}

void ig_task_set_error(struct ig_task *t, enum ig_err err, const char *msg)
{
    char *copy = dup_or_null(msg);

    free(t->err_message);
    t->err = err;
    t->err_message = copy;
}

/* cJSON prints a double with 15 digits when that reads back within an epsilon, which is not
 * exact (0.30000000000000004 comes back as 0.3). Print the shortest of %.15g/%.17g that reads
 * back bit for bit instead. */
static void add_double(cJSON *o, const char *key, double d)
{
    char num[32];

    if (!isfinite(d)) {
        cJSON_AddNullToObject(o, key);
        return;
    }
    snprintf(num, sizeof(num), "%.15g", d);
    if (strtod(num, NULL) != d)
        snprintf(num, sizeof(num), "%.17g", d);
    cJSON_AddRawToObject(o, key, num);
}

char *ig_request_to_json(const struct ig_request *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *refs;
    char *printed, *out;

    if (!o)
        IG_BUG("cJSON_CreateObject failed");
    if (r->prompt)
        cJSON_AddStringToObject(o, "prompt", r->prompt);
    cJSON_AddStringToObject(o, "ratio", r->ratio);
    cJSON_AddStringToObject(o, "resolution", r->resolution);
    cJSON_AddNumberToObject(o, "n", r->n);
    if (r->has_temperature)
        add_double(o, "temperature", r->temperature);
    if (r->has_top_p)
        add_double(o, "top_p", r->top_p);
    refs = cJSON_AddArrayToObject(o, "refs");
    for (int i = 0; refs && i < r->nrefs && i < IG_MAX_REFS; i++)
        cJSON_AddItemToArray(refs, cJSON_CreateString(r->refs[i] ? r->refs[i] : ""));
    cJSON_AddStringToObject(o, "output_format", r->output_format);
    cJSON_AddNumberToObject(o, "output_quality", r->output_quality);
    cJSON_AddBoolToObject(o, "official", r->official);
    if (r->system)
        cJSON_AddStringToObject(o, "system", r->system);
    if (r->safety)
        cJSON_AddStringToObject(o, "safety", r->safety);
    if (r->has_top_k)
        cJSON_AddNumberToObject(o, "top_k", r->top_k);
    if (r->has_seed)
        cJSON_AddNumberToObject(o, "seed", r->seed);

    printed = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!printed)
        IG_BUG("cJSON_PrintUnformatted failed");
    /* Hand back memory from our own allocator whatever hooks cJSON was given. */
    out = ig_xstrdup(printed);
    cJSON_free(printed);
    return out;
}

/* Copy an optional string member into a fixed field; absent leaves it empty. */
static bool get_fixed(const cJSON *o, const char *key, char *dst, size_t dstlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    if (!v)
        return true;
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= dstlen)
        return false;
    snprintf(dst, dstlen, "%s", v->valuestring);
    return true;
}

static bool get_int(const cJSON *o, const char *key, int *dst)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    double d;

    if (!v)
        return true;
    if (!cJSON_IsNumber(v))
        return false;
    d = v->valuedouble;
    if (!isfinite(d) || d != floor(d) || d < -2147483648.0 || d > 2147483647.0)
        return false;
    *dst = (int)d;
    return true;
}

static bool get_double(const cJSON *o, const char *key, double *dst, bool *has)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    if (!v || cJSON_IsNull(v)) /* null: a non-finite value was stored; read as absent */
        return true;
    if (!cJSON_IsNumber(v))
        return false;
    *dst = v->valuedouble;
    *has = true;
    return true;
}

enum ig_err ig_request_from_json(struct ig_request *r, const char *json)
{
    cJSON *o = NULL;
    const cJSON *v, *ref;
    enum ig_err err = IG_E_INVALID;

    memset(r, 0, sizeof(*r));
    if (!json)
        goto out;
    /* The length counts the terminator: cJSON then rejects trailing garbage. */
    o = cJSON_ParseWithLengthOpts(json, strlen(json) + 1, NULL, 1);
    if (!cJSON_IsObject(o))
        goto out;

    v = cJSON_GetObjectItemCaseSensitive(o, "prompt");
    if (v) {
        if (!cJSON_IsString(v))
            goto out;
        r->prompt = ig_xstrdup(v->valuestring);
    }
    if (!get_fixed(o, "ratio", r->ratio, sizeof(r->ratio)) ||
        !get_fixed(o, "resolution", r->resolution, sizeof(r->resolution)) ||
        !get_fixed(o, "output_format", r->output_format, sizeof(r->output_format)) ||
        !get_int(o, "n", &r->n) || !get_int(o, "output_quality", &r->output_quality) ||
        !get_double(o, "temperature", &r->temperature, &r->has_temperature) ||
        !get_double(o, "top_p", &r->top_p, &r->has_top_p))
        goto out;

    v = cJSON_GetObjectItemCaseSensitive(o, "system");
    if (v) {
        if (!cJSON_IsString(v))
            goto out;
        r->system = ig_xstrdup(v->valuestring);
    }
    v = cJSON_GetObjectItemCaseSensitive(o, "safety");
    if (v) {
        if (!cJSON_IsString(v))
            goto out;
        r->safety = ig_xstrdup(v->valuestring);
    }
    r->has_top_k = cJSON_GetObjectItemCaseSensitive(o, "top_k") != NULL;
    r->has_seed = cJSON_GetObjectItemCaseSensitive(o, "seed") != NULL;
    if (!get_int(o, "top_k", &r->top_k) || !get_int(o, "seed", &r->seed))
        goto out;

    v = cJSON_GetObjectItemCaseSensitive(o, "official");
    if (v) {
        if (!cJSON_IsBool(v))
            goto out;
        r->official = cJSON_IsTrue(v);
    }

    v = cJSON_GetObjectItemCaseSensitive(o, "refs");
    if (v) {
        if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > IG_MAX_REFS)
            goto out;
        cJSON_ArrayForEach(ref, v)
        {
            if (!cJSON_IsString(ref))
                goto out;
            r->refs[r->nrefs++] = ig_xstrdup(ref->valuestring);
        }
    }
    err = IG_OK;
out:
    cJSON_Delete(o);
    if (err)
        ig_request_release(r);
    return err;
}
