/* catalog.c: loading and querying the model catalog (etc/models.json). */
#include "base/base.h"
#include "core/catalog.h"
#include "core/task.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MODELS 32
#define MAX_NAMES 16

extern const unsigned char ig_catalog_json[];
extern const size_t ig_catalog_json_len;

struct entry {
    struct ig_model m;
    int nnames;
    char *names[MAX_NAMES + 1];  /* id, aliases, official aliases; NULL-terminated */
    bool official[MAX_NAMES];
};

struct ig_catalog {
    int n;
    struct entry e[MAX_MODELS];
};

void ig_catalog_free(struct ig_catalog *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->n; i++)
        for (int k = 0; k < c->e[i].nnames; k++)
            free(c->e[i].names[k]);
    free(c);
}

static enum ig_err copy_str(char *dst, size_t size, const cJSON *o, const char *key, bool required,
                            const char *model, struct ig_errbuf *eb)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    if (!v && !required) {
        dst[0] = '\0';
        return IG_OK;
    }
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= size)
        return ig_fail(eb, IG_E_INVALID, key, "catalog: model '%s': '%s' must be a string under %zu bytes",
                       model, key, size);
    memcpy(dst, v->valuestring, strlen(v->valuestring) + 1);
    return IG_OK;
}

static enum ig_err get_int(int *dst, const cJSON *o, const char *key, int lo, int hi,
                           const char *model, struct ig_errbuf *eb)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi)
        return ig_fail(eb, IG_E_INVALID, key, "catalog: model '%s': '%s' must be a whole number %d..%d",
                       model, key, lo, hi);
    *dst = (int)v->valuedouble;
    return IG_OK;
}

static enum ig_err add_names(struct entry *e, const cJSON *arr, bool official, const char *key,
                             struct ig_errbuf *eb)
{
    const cJSON *it;

    if (!arr)
        return IG_OK;
    if (!cJSON_IsArray(arr))
        return ig_fail(eb, IG_E_INVALID, key, "catalog: model '%s': '%s' must be an array",
                       e->m.id, key);
    cJSON_ArrayForEach(it, arr)
    {
        if (!cJSON_IsString(it) || !it->valuestring[0] || strlen(it->valuestring) >= IG_MODEL_NAME_MAX)
            return ig_fail(eb, IG_E_INVALID, key, "catalog: model '%s': bad name in '%s'", e->m.id,
                           key);
        if (e->nnames >= MAX_NAMES)
            return ig_fail(eb, IG_E_TOOBIG, key, "catalog: model '%s': more than %d names",
                           e->m.id, MAX_NAMES);
        e->official[e->nnames] = official;
        e->names[e->nnames++] = ig_xstrdup(it->valuestring);
    }
    return IG_OK;
}

static enum ig_err parse_model(struct entry *e, const cJSON *o, struct ig_errbuf *eb)
{
    struct ig_model *m = &e->m;
    const cJSON *res, *ratios, *it, *tokens, *prices;
    enum ig_err err;

    if ((err = copy_str(m->id, sizeof(m->id), o, "id", true, "?", eb)))
        return err;
    if ((err = copy_str(m->upstream, sizeof(m->upstream), o, "upstream", false, m->id, eb)) ||
        (err = copy_str(m->display_name, sizeof(m->display_name), o, "display_name", false, m->id, eb)) ||
        (err = copy_str(m->description, sizeof(m->description), o, "description", false, m->id, eb)) ||
        (err = copy_str(m->default_res, sizeof(m->default_res), o, "default_resolution", true, m->id, eb)) ||
        (err = get_int(&m->max_refs, o, "max_refs", 0, IG_MAX_REFS, m->id, eb)) ||
        (err = get_int(&m->max_n, o, "max_n", 1, IG_MAX_OUTPUTS, m->id, eb)))
        return err;
    if (!m->upstream[0])
        memcpy(m->upstream, m->id, sizeof(m->id));
    e->official[0] = false;
    e->names[e->nnames++] = ig_xstrdup(m->id);
    if ((err = add_names(e, cJSON_GetObjectItemCaseSensitive(o, "aliases"), false, "aliases", eb)) ||
        (err = add_names(e, cJSON_GetObjectItemCaseSensitive(o, "official_aliases"), true,
                         "official_aliases", eb)))
        return err;

    res = cJSON_GetObjectItemCaseSensitive(o, "resolutions");
    if (!cJSON_IsArray(res) || cJSON_GetArraySize(res) < 1 || cJSON_GetArraySize(res) > IG_CATALOG_MAX_RES)
        return ig_fail(eb, IG_E_INVALID, "resolutions",
                       "catalog: model '%s': 'resolutions' must list 1..%d values", m->id,
                       IG_CATALOG_MAX_RES);
    cJSON_ArrayForEach(it, res)
    {
        if (!cJSON_IsString(it) || strlen(it->valuestring) >= sizeof(m->res[0]))
            return ig_fail(eb, IG_E_INVALID, "resolutions", "catalog: model '%s': bad resolution",
                           m->id);
        memcpy(m->res[m->nres++], it->valuestring, strlen(it->valuestring) + 1);
    }
    if (ig_model_res_index(m, m->default_res) < 0)
        return ig_fail(eb, IG_E_INVALID, "default_resolution",
                       "catalog: model '%s': default_resolution is not listed", m->id);

    tokens = cJSON_GetObjectItemCaseSensitive(o, "image_tokens");
    prices = cJSON_GetObjectItemCaseSensitive(o, "price_per_image_usd");
    for (int r = 0; r < m->nres; r++) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(tokens, m->res[r]);
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(prices, m->res[r]);

        if (!cJSON_IsNumber(t) || t->valuedouble < 0 || t->valuedouble > 1e6)
            return ig_fail(eb, IG_E_INVALID, "image_tokens",
                           "catalog: model '%s': image_tokens[%s] missing", m->id, m->res[r]);
        m->image_tokens[r] = (int)t->valuedouble;
        if (!cJSON_IsString(p) || !ig_usd_parse(p->valuestring, false, &m->price_per_image[r]))
            return ig_fail(eb, IG_E_INVALID, "price_per_image_usd",
                           "catalog: model '%s': price_per_image_usd[%s] must be a decimal string",
                           m->id, m->res[r]);
    }
    /* Optional: charge by the tokens the upstream reports instead, image and text apart. */
    prices = cJSON_GetObjectItemCaseSensitive(o, "price_per_1m_tokens_usd");
    if (prices) {
        const cJSON *img = cJSON_GetObjectItemCaseSensitive(prices, "image");
        const cJSON *txt = cJSON_GetObjectItemCaseSensitive(prices, "text");

        if (!cJSON_IsObject(prices) || !cJSON_IsString(img) ||
            !ig_usd_parse(img->valuestring, false, &m->price_per_mtok_image) ||
            (txt && (!cJSON_IsString(txt) ||
                     !ig_usd_parse(txt->valuestring, false, &m->price_per_mtok_text))))
            return ig_fail(eb, IG_E_INVALID, "price_per_1m_tokens_usd",
                           "catalog: model '%s': price_per_1m_tokens_usd must be {\"image\": "
                           "\"30.00\", \"text\": \"2.50\"} (decimal strings; text optional)",
                           m->id);
        m->token_priced = true;
    }

    ratios = cJSON_GetObjectItemCaseSensitive(o, "ratios");
    if (!cJSON_IsArray(ratios) || cJSON_GetArraySize(ratios) < 1 ||
        cJSON_GetArraySize(ratios) > IG_CATALOG_MAX_RATIOS)
        return ig_fail(eb, IG_E_INVALID, "ratios", "catalog: model '%s': 'ratios' must list 1..%d",
                       m->id, IG_CATALOG_MAX_RATIOS);
    cJSON_ArrayForEach(it, ratios)
    {
        struct ig_model_ratio *mr = &m->ratios[m->nratios++];
        const cJSON *sizes = cJSON_GetObjectItemCaseSensitive(it, "sizes");

        if ((err = copy_str(mr->ratio, sizeof(mr->ratio), it, "ratio", true, m->id, eb)))
            return err;
        for (int r = 0; r < m->nres; r++) {
            const cJSON *wh = cJSON_GetObjectItemCaseSensitive(sizes, m->res[r]);
            const cJSON *w, *h;

            if (!wh)
                continue;
            w = cJSON_GetArrayItem(wh, 0);
            h = cJSON_GetArrayItem(wh, 1);
            if (!cJSON_IsArray(wh) || cJSON_GetArraySize(wh) != 2 || !cJSON_IsNumber(w) ||
                !cJSON_IsNumber(h) || w->valuedouble < 1 || h->valuedouble < 1 ||
                w->valuedouble > 16384 || h->valuedouble > 16384)
                return ig_fail(eb, IG_E_INVALID, "ratios",
                               "catalog: model '%s': ratio %s size for %s must be [w, h]", m->id,
                               mr->ratio, m->res[r]);
            mr->w[r] = (int)w->valuedouble;
            mr->h[r] = (int)h->valuedouble;
        }
    }
    return IG_OK;
}

enum ig_err ig_catalog_parse(struct ig_catalog **out, const char *json, size_t len,
                             struct ig_errbuf *eb)
{
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, NULL, 0);
    const cJSON *models, *it;
    struct ig_catalog *c = NULL;
    enum ig_err err = IG_OK;

    models = cJSON_GetObjectItemCaseSensitive(root, "models");
    if (!cJSON_IsArray(models)) {
        err = ig_fail(eb, IG_E_INVALID, "models", "catalog: expected an object with a 'models' array");
        goto out;
    }
    c = ig_xcalloc(1, sizeof(*c));
    cJSON_ArrayForEach(it, models)
    {
        if (c->n >= MAX_MODELS) {
            err = ig_fail(eb, IG_E_TOOBIG, "models", "catalog: more than %d models", MAX_MODELS);
            goto out;
        }
        err = parse_model(&c->e[c->n++], it, eb);
        if (err)
            goto out;
    }
    /* Every name must resolve to one model. */
    for (int i = 0; i < c->n; i++)
        for (int k = 0; k < c->e[i].nnames; k++)
            for (int j = 0; j <= i; j++)
                for (int l = 0; l < c->e[j].nnames; l++)
                    if ((j != i || l != k) && strcmp(c->e[i].names[k], c->e[j].names[l]) == 0) {
                        err = ig_fail(eb, IG_E_INVALID, "models", "catalog: name '%s' used twice",
                                      c->e[i].names[k]);
                        goto out;
                    }
out:
    cJSON_Delete(root);
    if (err) {
        ig_catalog_free(c);
        return err;
    }
    *out = c;
    return IG_OK;
}

enum ig_err ig_catalog_load_default(struct ig_catalog **out, struct ig_errbuf *eb)
{
    return ig_catalog_parse(out, (const char *)ig_catalog_json, ig_catalog_json_len, eb);
}

enum ig_err ig_catalog_load_file(struct ig_catalog **out, const char *path, struct ig_errbuf *eb)
{
    FILE *f = fopen(path, "rb");
    struct ig_buf b = IG_BUF_INIT(4 << 20);
    char chunk[4096];
    size_t n;
    enum ig_err err = IG_OK;

    if (!f)
        return ig_fail(eb, IG_E_IO, "catalog", "cannot open catalog '%s'", path);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        if (ig_buf_add(&b, chunk, n)) {
            err = ig_fail(eb, IG_E_TOOBIG, "catalog", "catalog '%s' exceeds 4 MiB", path);
            break;
        }
    fclose(f);
    if (!err)
        err = ig_catalog_parse(out, b.data ? b.data : "", b.len, eb);
    ig_buf_release(&b);
    return err;
}

const struct ig_model *ig_catalog_find(const struct ig_catalog *c, const char *name, bool *official)
{
    for (int i = 0; i < c->n; i++)
        for (int k = 0; k < c->e[i].nnames; k++)
            if (strcmp(c->e[i].names[k], name) == 0) {
                if (official)
                    *official = c->e[i].official[k];
                return &c->e[i].m;
            }
    return NULL;
}

int ig_catalog_count(const struct ig_catalog *c)
{
    return c->n;
}

const struct ig_model *ig_catalog_at(const struct ig_catalog *c, int i)
{
    return i >= 0 && i < c->n ? &c->e[i].m : NULL;
}

const char *const *ig_catalog_names(const struct ig_catalog *c, int i)
{
    return (const char *const *)c->e[i].names;
}

int ig_model_res_index(const struct ig_model *m, const char *res)
{
    for (int i = 0; i < m->nres; i++)
        if (strcmp(m->res[i], res) == 0)
            return i;
    return -1;
}

const struct ig_model_ratio *ig_model_ratio_find(const struct ig_model *m, const char *ratio)
{
    for (int i = 0; i < m->nratios; i++)
        if (strcmp(m->ratios[i].ratio, ratio) == 0)
            return &m->ratios[i];
    return NULL;
}

bool ig_model_output_size(const struct ig_model *m, const char *ratio, const char *res, int *w,
                          int *h)
{
    const struct ig_model_ratio *r = ig_model_ratio_find(m, ratio);
    int ri = ig_model_res_index(m, res);

    if (!r || ri < 0 || !r->w[ri])
        return false;
    *w = r->w[ri];
    *h = r->h[ri];
    return true;
}

const char *ig_model_nearest_ratio(const struct ig_model *m, int w, int h)
{
    double want, best = INFINITY;
    const char *pick = m->ratios[0].ratio;

    if (w < 1 || h < 1)
        return pick;
    want = log((double)w / h);
    for (int i = 0; i < m->nratios; i++) {
        int a = 0, b = 0;
        double d;

        if (sscanf(m->ratios[i].ratio, "%d:%d", &a, &b) != 2 || a < 1 || b < 1)
            continue;
        d = fabs(log((double)a / b) - want);
        if (d < best - 1e-12) {
            best = d;
            pick = m->ratios[i].ratio;
        }
    }
    return pick;
}

void ig_model_ratio_list(const struct ig_model *m, char *out, size_t outlen)
{
    size_t o = 0;

    out[0] = '\0';
    for (int i = 0; i < m->nratios && o < outlen; i++)
        o += (size_t)snprintf(out + o, outlen - o, "%s%s", i ? ", " : "", m->ratios[i].ratio);
}

static int64_t tokens_price(int64_t tokens, int64_t per_million)
{
    return (tokens * per_million + 500000) / 1000000;
}

int64_t ig_model_hold(const struct ig_model *m, int ri, int n)
{
    if (ri < 0 || ri >= m->nres || n <= 0)
        return 0;
    if (m->token_priced)
        return tokens_price((int64_t)n * m->image_tokens[ri],
                            m->price_per_mtok_image + m->price_per_mtok_text);
    return m->price_per_image[ri] * n;
}

int64_t ig_model_capture(const struct ig_model *m, int64_t held, int n, int delivered,
                         int64_t image_tokens, int64_t text_tokens)
{
    int64_t c;

    if (n <= 0 || delivered <= 0)
        return 0;
    if (delivered > n)
        delivered = n;
    if (m && m->token_priced)
        c = tokens_price(image_tokens, m->price_per_mtok_image) +
            tokens_price(text_tokens, m->price_per_mtok_text);
    else
        c = held / n * delivered;
    return c < held ? c : held;
}
