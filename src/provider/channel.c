/* channel.c: channels from the config file and from GEMINI_API_KEY / GEMINI_BASE_URL. */
#include "base/base.h"
#include "provider/channel.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GOOGLE_BASE_URL "https://generativelanguage.googleapis.com"

const char *ig_channel_type_name(enum ig_channel_type t)
{
    switch (t) {
    case IG_CHANNEL_GEMINI:
        return "gemini";
    case IG_CHANNEL_VERTEX:
        return "vertex";
    case IG_CHANNEL_OPENAI:
        return "openai";
    }
    return "?";
}

static void defaults(struct ig_channel *c)
{
    memset(c, 0, sizeof(*c));
    c->type = IG_CHANNEL_GEMINI;
    c->priority = 0;
    c->weight = 1;
    c->timeout_ms = 120000;
    c->connect_timeout_ms = 10000;
    c->max_response_bytes = 64LL << 20; /* a 4K image is tens of MB of base64 */
}

static enum ig_err get_str(const cJSON *o, const char *key, char *dst, size_t size, bool required,
                           int idx, struct ig_errbuf *eb)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    if (!v && !required)
        return IG_OK;
    if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) >= size)
        return ig_fail(eb, IG_E_INVALID, key,
                       "channels[%d].%s must be a non-empty string under %zu bytes", idx, key, size);
    memcpy(dst, v->valuestring, strlen(v->valuestring) + 1);
    return IG_OK;
}

static enum ig_err get_num(const cJSON *o, const char *key, double lo, double hi, int64_t *dst,
                           int idx, struct ig_errbuf *eb)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    if (!v)
        return IG_OK;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi)
        return ig_fail(eb, IG_E_INVALID, key, "channels[%d].%s must be a whole number %.0f..%.0f",
                       idx, key, lo, hi);
    *dst = (int64_t)v->valuedouble;
    return IG_OK;
}

static enum ig_err parse_one(struct ig_channel *c, const cJSON *o, int idx, struct ig_errbuf *eb)
{
    const cJSON *v;
    char type[16] = "gemini";
    int64_t n;
    enum ig_err err;

    defaults(c);
    if (!cJSON_IsObject(o))
        return ig_fail(eb, IG_E_INVALID, "channels", "channels[%d] must be an object", idx);
    if ((err = get_str(o, "name", c->name, sizeof(c->name), true, idx, eb)) ||
        (err = get_str(o, "type", type, sizeof(type), false, idx, eb)))
        return err;
    if (strcmp(type, "gemini") == 0)
        c->type = IG_CHANNEL_GEMINI;
    else if (strcmp(type, "vertex") == 0)
        c->type = IG_CHANNEL_VERTEX;
    else if (strcmp(type, "openai") == 0)
        c->type = IG_CHANNEL_OPENAI;
    else
        return ig_fail(eb, IG_E_INVALID, "type",
                       "channels[%d].type must be gemini, vertex or openai", idx);
    for (const cJSON *k = o->child; k; k = k->next) {
        static const char *const known[] = {"name", "type", "base_url", "keys", "key", "priority",
                                            "weight", "max_concurrency", "timeout_ms",
                                            "connect_timeout_ms", "max_response_bytes",
                                            "official", "models", "project", "location",
                                            "access_token", "service_account_file",
                                            "token_url", "cost_per_image_usd"};
        bool ok = false;

        for (size_t i = 0; i < IG_ARRAY_LEN(known) && !ok; i++)
            ok = strcmp(k->string, known[i]) == 0;
        if (!ok)
            return ig_fail(eb, IG_E_INVALID, k->string, "channels[%d]: unknown field \"%.64s\"",
                           idx, k->string);
    }
    if ((err = get_str(o, "base_url", c->base_url, sizeof(c->base_url), c->type == IG_CHANNEL_OPENAI,
                       idx, eb)) ||
        (err = get_str(o, "project", c->project, sizeof(c->project), false, idx, eb)) ||
        (err = get_str(o, "location", c->location, sizeof(c->location), false, idx, eb)) ||
        (err = get_str(o, "access_token", c->access_token, sizeof(c->access_token), false, idx,
                       eb)) ||
        (err = get_str(o, "service_account_file", c->service_account_file,
                       sizeof(c->service_account_file), false, idx, eb)) ||
        (err = get_str(o, "token_url", c->token_url, sizeof(c->token_url), false, idx, eb)))
        return err;
    if (c->type == IG_CHANNEL_VERTEX) {
        if (!c->location[0])
            snprintf(c->location, sizeof(c->location), "global");
        /* no token_url: the key file's token_uri, else Google's (gauth.c) */
        if (!c->base_url[0]) {
            if (strcmp(c->location, "global") == 0)
                snprintf(c->base_url, sizeof(c->base_url), "https://aiplatform.googleapis.com");
            else {
                char loc[sizeof(c->location)]; /* a copy: GCC cannot tell the fields apart */

                memcpy(loc, c->location, sizeof(loc));
                snprintf(c->base_url, sizeof(c->base_url), "https://%s-aiplatform.googleapis.com",
                         loc);
            }
        }
    }
    if (!c->base_url[0])
        snprintf(c->base_url, sizeof(c->base_url), "%s", GOOGLE_BASE_URL);
    if (strncmp(c->base_url, "http://", 7) != 0 && strncmp(c->base_url, "https://", 8) != 0)
        return ig_fail(eb, IG_E_INVALID, "base_url", "channels[%d].base_url must be http(s)", idx);
    while (c->base_url[0] && c->base_url[strlen(c->base_url) - 1] == '/')
        c->base_url[strlen(c->base_url) - 1] = '\0';

    v = cJSON_GetObjectItemCaseSensitive(o, "keys");
    if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "key")) && !v) {
        if ((err = get_str(o, "key", c->keys[0], sizeof(c->keys[0]), true, idx, eb)))
            return err;
        c->nkeys = 1;
    } else if (v) {
        const cJSON *k;

        if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > IG_CHANNEL_MAX_KEYS)
            return ig_fail(eb, IG_E_INVALID, "keys", "channels[%d].keys must be an array of at most "
                           "%d strings", idx, IG_CHANNEL_MAX_KEYS);
        cJSON_ArrayForEach(k, v)
        {
            if (!cJSON_IsString(k) || !k->valuestring[0] ||
                strlen(k->valuestring) >= sizeof(c->keys[0]))
                return ig_fail(eb, IG_E_INVALID, "keys", "channels[%d].keys[%d] must be a "
                               "non-empty string", idx, c->nkeys);
            memcpy(c->keys[c->nkeys++], k->valuestring, strlen(k->valuestring) + 1);
        }
    }
    if (c->type == IG_CHANNEL_VERTEX) {
        int ways = (c->nkeys > 0) + (c->access_token[0] != 0) + (c->service_account_file[0] != 0);

        if (ways != 1)
            return ig_fail(eb, IG_E_INVALID, "keys",
                           "channels[%d] (%s): a vertex channel needs exactly one of \"keys\" "
                           "(express mode), \"access_token\" or \"service_account_file\"",
                           idx, c->name);
        if (c->nkeys == 0 && !c->project[0] && !c->service_account_file[0])
            return ig_fail(eb, IG_E_INVALID, "project",
                           "channels[%d] (%s): a vertex channel with an access token needs "
                           "\"project\"", idx, c->name);
    } else if (c->nkeys == 0) {
        return ig_fail(eb, IG_E_INVALID, "keys", "channels[%d] (%s) needs \"keys\" or \"key\"", idx,
                       c->name);
    }

    n = c->priority;
    if ((err = get_num(o, "priority", -1000000, 1000000, &n, idx, eb)))
        return err;
    c->priority = (int)n;
    n = c->weight;
    if ((err = get_num(o, "weight", 1, 1000000, &n, idx, eb)))
        return err;
    c->weight = (int)n;
    n = c->max_concurrency;
    if ((err = get_num(o, "max_concurrency", 0, 1000000, &n, idx, eb)))
        return err;
    c->max_concurrency = (int)n;
    n = c->timeout_ms;
    if ((err = get_num(o, "timeout_ms", 100, 3600000, &n, idx, eb)))
        return err;
    c->timeout_ms = (int)n;
    n = c->connect_timeout_ms;
    if ((err = get_num(o, "connect_timeout_ms", 100, 600000, &n, idx, eb)))
        return err;
    c->connect_timeout_ms = (int)n;
    if ((err = get_num(o, "max_response_bytes", 1024, 1LL << 31, &c->max_response_bytes, idx, eb)))
        return err;
    v = cJSON_GetObjectItemCaseSensitive(o, "official");
    if (v && !cJSON_IsBool(v))
        return ig_fail(eb, IG_E_INVALID, "official", "channels[%d].official must be true or false",
                       idx);
    c->official = cJSON_IsTrue(v);
    v = cJSON_GetObjectItemCaseSensitive(o, "cost_per_image_usd");
    if (v && (!cJSON_IsString(v) || !ig_usd_parse(v->valuestring, false, &c->cost_per_image)))
        return ig_fail(eb, IG_E_INVALID, "cost_per_image_usd",
                       "channels[%d].cost_per_image_usd must be US dollars as a decimal string, "
                       "e.g. \"0.039\"", idx);

    v = cJSON_GetObjectItemCaseSensitive(o, "models");
    if (v) {
        const cJSON *m;

        if (!cJSON_IsObject(v) || cJSON_GetArraySize(v) > IG_CHANNEL_MAX_MODELS)
            return ig_fail(eb, IG_E_INVALID, "models", "channels[%d].models must map at most %d "
                           "catalog model ids to upstream names", idx, IG_CHANNEL_MAX_MODELS);
        cJSON_ArrayForEach(m, v)
        {
            if (!cJSON_IsString(m) || strlen(m->string) >= sizeof(c->models[0].model) ||
                strlen(m->valuestring) >= sizeof(c->models[0].upstream))
                return ig_fail(eb, IG_E_INVALID, "models", "channels[%d].models[\"%.64s\"] must be "
                               "an upstream model name (\"\" for the catalog's)", idx, m->string);
            snprintf(c->models[c->nmodels].model, sizeof(c->models[0].model), "%s", m->string);
            snprintf(c->models[c->nmodels].upstream, sizeof(c->models[0].upstream), "%s",
                     m->valuestring);
            c->nmodels++;
        }
    }
    return IG_OK;
}

enum ig_err ig_channels_parse(struct ig_channels *out, const char *json, size_t len,
                              struct ig_errbuf *eb)
{
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, NULL, 0);
    const cJSON *o;
    enum ig_err err = IG_OK;

    memset(out, 0, sizeof(*out));
    if (!cJSON_IsArray(root)) {
        cJSON_Delete(root);
        return ig_fail(eb, IG_E_INVALID, "channels", "channels must be an array of objects");
    }
    cJSON_ArrayForEach(o, root)
    {
        if (out->n >= IG_CHANNEL_MAX) {
            err = ig_fail(eb, IG_E_TOOBIG, "channels", "at most %d channels", IG_CHANNEL_MAX);
            break;
        }
        err = parse_one(&out->ch[out->n], o, out->n, eb);
        if (err)
            break;
        for (int i = 0; i < out->n; i++)
            if (strcmp(out->ch[i].name, out->ch[out->n].name) == 0) {
                err = ig_fail(eb, IG_E_INVALID, "name", "two channels are named '%s'",
                              out->ch[i].name);
                break;
            }
        if (err)
            break;
        out->n++;
    }
    cJSON_Delete(root);
    return err;
}

enum ig_err ig_channels_load(struct ig_channels *out, const char *config_path, struct ig_errbuf *eb)
{
    const char *key = getenv("GEMINI_API_KEY"), *base = getenv("GEMINI_BASE_URL");
    enum ig_err err;

    memset(out, 0, sizeof(*out));
    if (config_path && config_path[0]) {
        FILE *f = fopen(config_path, "rb");
        struct ig_buf b = IG_BUF_INIT(1 << 20);
        char chunk[4096];
        size_t n;
        cJSON *root, *chs;

        if (!f)
            return ig_fail(eb, IG_E_IO, "config", "cannot open config file '%s'", config_path);
        while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
            if (ig_buf_add(&b, chunk, n)) {
                fclose(f);
                ig_buf_release(&b);
                return ig_fail(eb, IG_E_TOOBIG, "config", "config file exceeds 1 MiB");
            }
        fclose(f);
        root = cJSON_ParseWithLengthOpts(b.data ? b.data : "", b.len, NULL, 0);
        ig_buf_release(&b);
        chs = cJSON_GetObjectItemCaseSensitive(root, "channels");
        if (chs) {
            char *text = cJSON_PrintUnformatted(chs);

            err = ig_channels_parse(out, text, strlen(text), eb);
            cJSON_free(text);
            if (err) {
                cJSON_Delete(root);
                return err;
            }
        }
        cJSON_Delete(root);
    }
    if (key && key[0]) {
        struct ig_channel *c;

        for (int i = 0; i < out->n; i++)
            if (strcmp(out->ch[i].name, "gemini") == 0)
                return IG_OK; /* the config file's own "gemini" channel wins */
        if (out->n >= IG_CHANNEL_MAX)
            return ig_fail(eb, IG_E_TOOBIG, "channels", "at most %d channels", IG_CHANNEL_MAX);
        c = &out->ch[out->n];
        defaults(c);
        snprintf(c->name, sizeof(c->name), "gemini");
        if (strlen(key) >= sizeof(c->keys[0]))
            return ig_fail(eb, IG_E_INVALID, "GEMINI_API_KEY", "GEMINI_API_KEY is too long");
        memcpy(c->keys[0], key, strlen(key) + 1);
        c->nkeys = 1;
        snprintf(c->base_url, sizeof(c->base_url), "%s", base && base[0] ? base : GOOGLE_BASE_URL);
        if (strncmp(c->base_url, "http://", 7) != 0 && strncmp(c->base_url, "https://", 8) != 0)
            return ig_fail(eb, IG_E_INVALID, "GEMINI_BASE_URL", "GEMINI_BASE_URL must be http(s)");
        while (c->base_url[0] && c->base_url[strlen(c->base_url) - 1] == '/')
            c->base_url[strlen(c->base_url) - 1] = '\0';
        c->official = true;
        out->n++;
    }
    return IG_OK;
}

enum ig_err ig_channels_check(const struct ig_channels *chs, const struct ig_catalog *cat,
                              struct ig_errbuf *eb)
{
    for (int i = 0; i < chs->n; i++)
        for (int k = 0; k < chs->ch[i].nmodels; k++) {
            const struct ig_model *m = ig_catalog_find(cat, chs->ch[i].models[k].model, NULL);

            if (!m || strcmp(m->id, chs->ch[i].models[k].model) != 0)
                return ig_fail(eb, IG_E_INVALID, "models",
                               "channel %s maps \"%s\", which is not a model id of the catalog",
                               chs->ch[i].name, chs->ch[i].models[k].model);
        }
    return IG_OK;
}

bool ig_channel_serves(const struct ig_channel *c, const struct ig_model *m, char *upstream,
                       size_t len)
{
    if (c->nmodels == 0) {
        snprintf(upstream, len, "%s", m->upstream);
        return true;
    }
    for (int i = 0; i < c->nmodels; i++)
        if (strcmp(c->models[i].model, m->id) == 0) {
            snprintf(upstream, len, "%s", c->models[i].upstream[0] ? c->models[i].upstream
                                                                   : m->upstream);
            return true;
        }
    return false;
}
