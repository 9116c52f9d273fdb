/* catalog.h: the model catalog: names, aliases, channel pins, ratios with exact output
 * sizes per resolution, limits and prices. It is data (etc/models.json, compiled in as the
 * default and replaceable with --catalog FILE), not code. Lifetime: process, read-only
 * after load, so every thread may read it without locks. */
#ifndef IG_CATALOG_H
#define IG_CATALOG_H

#include "base/base.h"

#define IG_CATALOG_MAX_RATIOS 16
#define IG_CATALOG_MAX_RES 4

struct ig_model_ratio {
    char ratio[8];                  /* "16:9" */
    int w[IG_CATALOG_MAX_RES];      /* output width per resolution index (0 = not offered) */
    int h[IG_CATALOG_MAX_RES];
};

struct ig_model {
    char id[96];                    /* canonical id, e.g. "gemini-2.5-flash-image" */
    char upstream[96];              /* upstream model id for Gemini channels */
    char display_name[96];
    char description[256];
    int nres;
    char res[IG_CATALOG_MAX_RES][8];/* e.g. "512", "1K", "2K", "4K", smallest first */
    char default_res[8];            /* "1K" */
    int nratios;
    struct ig_model_ratio ratios[IG_CATALOG_MAX_RATIOS];
    int max_refs;                   /* reference images accepted */
    int max_n;                      /* images per request */
    int image_tokens[IG_CATALOG_MAX_RES];      /* output tokens per image, per resolution */
    int64_t price_per_image[IG_CATALOG_MAX_RES]; /* micro-dollars, per resolution */
    /* With "price_per_1m_tokens_usd": charged by the tokens the upstream reports, image and
     * text tokens apart (micro-dollars per million tokens); price_per_image is unused then. */
    bool token_priced;
    int64_t price_per_mtok_image, price_per_mtok_text;
};

struct ig_catalog;

/* Parse a catalog from JSON text. */
enum ig_err ig_catalog_parse(struct ig_catalog **out, const char *json, size_t len,
                             struct ig_errbuf *eb);
/* The compiled-in catalog (etc/models.json). */
enum ig_err ig_catalog_load_default(struct ig_catalog **out, struct ig_errbuf *eb);
enum ig_err ig_catalog_load_file(struct ig_catalog **out, const char *path, struct ig_errbuf *eb);
void ig_catalog_free(struct ig_catalog *c);

/* Resolve a client's model name (id or alias). *official is set when the name pins the
 * official channel. NULL when unknown. */
const struct ig_model *ig_catalog_find(const struct ig_catalog *c, const char *name, bool *official);
int ig_catalog_count(const struct ig_catalog *c);
const struct ig_model *ig_catalog_at(const struct ig_catalog *c, int i);
/* Every name a client may send for model i (id, aliases, official aliases), NULL-terminated. */
const char *const *ig_catalog_names(const struct ig_catalog *c, int i);

/* What a task of this model pays. The hold at admission for n images at resolution index
 * ri, and what is captured at the end for `delivered` images with the usage reported
 * (never more than held). Micro-dollars. Per image: price_per_image[ri] each. By tokens:
 * the tokens times their prices, rounded half up; the hold assumes each image's
 * image_tokens[ri] and as many text tokens. */
int64_t ig_model_hold(const struct ig_model *m, int ri, int n);
int64_t ig_model_capture(const struct ig_model *m, int64_t held, int n, int delivered,
                         int64_t image_tokens, int64_t text_tokens);

/* Index of a resolution in m->res, or -1. */
int ig_model_res_index(const struct ig_model *m, const char *res);
/* The ratio row, or NULL when the model does not offer it. */
const struct ig_model_ratio *ig_model_ratio_find(const struct ig_model *m, const char *ratio);
/* Output size for (ratio, resolution); false when not offered. */
bool ig_model_output_size(const struct ig_model *m, const char *ratio, const char *res, int *w,
                          int *h);
/* The offered ratio nearest to w:h (by log of the aspect). */
const char *ig_model_nearest_ratio(const struct ig_model *m, int w, int h);
/* "1:1, 2:3, ..." into out. */
void ig_model_ratio_list(const struct ig_model *m, char *out, size_t outlen);

#endif
