/* gemini_parse.c: a GenerateContentRequest (wire-formats.md §1.3, §1.4) into the canonical
 * request: camelCase and snake_case alike, checked against the model catalog; inline images
 * decoded, sniffed and stored as blobs (on the CPU pool: ig_gemini_store_inline). */
#include "base/base.h"
#include "http/dialects/gemini_int.h"
#include "media/image.h"
#include "net/fetch.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PROMPT_MAX_CHARS 32000 /* the image models take 32768 input tokens */
#define SYSTEM_MAX_CHARS 32000
#define SAFETY_MAX       32 /* safetySettings entries */
#define URL_MAX_BYTES    4096

/* A member by its camelCase or its snake_case name (proto3 JSON accepts both); JSON null reads
 * as absent. */
static const cJSON *field(const cJSON *o, const char *camel, const char *snake)
{
    const cJSON *v;

    if (!cJSON_IsObject(o))
        return NULL;
    v = cJSON_GetObjectItemCaseSensitive(o, camel);
    if (!v && snake)
        v = cJSON_GetObjectItemCaseSensitive(o, snake);
    return cJSON_IsNull(v) ? NULL : v;
}

/* ---- inline references: decoded, checked and stored (on the CPU pool) ------------------- */

enum ig_err ig_gemini_store_inline(struct ig_app *app, const struct ig_gemini_inline *inl, int n,
                                   struct ig_request *q, char *errmsg, size_t errlen)
{
    size_t max = (size_t)app->cfg.ref_max_bytes;
    enum ig_err res = IG_OK;

    for (int i = 0; i < n && !res; i++) {
        const struct ig_gemini_inline *in = &inl[i];
        const char *s = in->b64;
        unsigned char *data = NULL;
        size_t len = 0;
        enum ig_image_type ty;
        int w = 0, h = 0;
        char id[IG_SHA256_HEX_LEN + 1];
        enum ig_err err;

        /* A data: URI where bare base64 belongs is taken too. */
        if (strncasecmp(s, "data:", 5) == 0) {
            const char *comma = strstr(s, ";base64,");

            if (!comma) {
                snprintf(errmsg, errlen, "%s: a data: URI must be base64 (;base64,)", in->where);
                return IG_E_INVALID;
            }
            s = comma + 8;
        }
        err = ig_gemini_b64_decode(s, strlen(s), max, &data, &len);
        if (err == IG_E_TOOBIG) {
            snprintf(errmsg, errlen, "%s: the image is larger than %zu bytes", in->where, max);
            return IG_E_INVALID;
        }
        if (err) {
            snprintf(errmsg, errlen,
                     "Invalid value at '%s.data' (TYPE_BYTES), Base64 decoding failed", in->where);
            return IG_E_INVALID;
        }
        ty = ig_image_sniff(data, len);
        res = IG_E_INVALID;
        if (ty == IG_IMG_UNKNOWN) {
            snprintf(errmsg, errlen, "%s: not a PNG, JPEG, WebP, HEIC or AVIF image", in->where);
        } else if (ig_image_dimensions(data, len, &ty, &w, &h)) {
            snprintf(errmsg, errlen, "%s: the image header is damaged", in->where);
        } else if ((int64_t)w * h > app->cfg.ref_max_pixels) {
            snprintf(errmsg, errlen, "%s: %dx%d exceeds %lld pixels", in->where, w, h,
                     (long long)app->cfg.ref_max_pixels);
        } else if (ig_blob_put(app->blob, data, len, ig_image_ext(ty), id)) {
            snprintf(errmsg, errlen, "Internal error encountered.");
            res = IG_E_INTERNAL;
        } else {
            free(q->refs[in->slot]);
            q->refs[in->slot] = ig_xasprintf("blob:%s.%s", id, ig_image_ext(ty));
            res = IG_OK;
        }
        free(data);
    }
    return res;
}

/* ---- parsing the request ----------------------------------------------------------------- */

/* The text of a Content's parts, joined by '\n', into b (for systemInstruction). */
static bool content_text(const cJSON *content, struct ig_buf *b)
{
    const cJSON *parts = field(content, "parts", NULL), *p;

    if (cJSON_IsString(content)) /* lenient: a bare string */
        return ig_buf_adds(b, content->valuestring) == IG_OK;
    if (!cJSON_IsArray(parts))
        return false;
    cJSON_ArrayForEach(p, parts)
    {
        const cJSON *t = field(p, "text", NULL);

        if (!t)
            continue;
        if (!cJSON_IsString(t))
            return false;
        if ((b->len && ig_buf_add(b, "\n", 1)) || ig_buf_adds(b, t->valuestring))
            return false;
    }
    return true;
}

/* A result of ours (public_url/media/tasks/<hex>/<n>.<ext>) named as a reference: the blob
 * it is, with no download. Returns 1 when url is ours and resolved, 0 when it is not ours,
 * -1 when it is ours but names nothing (an error reply has been sent). */
static int own_media(struct ig_hreq *hr, const char *url, const char *where, char **ref)
{
    const char *pub = hr->app->public_url;
    size_t n = strlen(pub);
    char hex[IG_ID_HEX_LEN + 1], ext[8];
    int idx = -1, used = 0;
    struct ig_id id;
    struct ig_task t;
    int rc = -1;

    if (strncmp(url, pub, n) != 0 || strncmp(url + n, "/media/tasks/", 13) != 0)
        return 0;
    if (sscanf(url + n + 13, "%32[0-9a-f]/%d.%7[a-z]%n", hex, &idx, ext, &used) != 3 ||
        url[n + 13 + used] != '\0' || !ig_id_parse(hex, &id) || idx < 0) {
        ig_http_error(hr, IG_E_INVALID, where, "%s: %.200s is not a result URL of this server",
                      where, url);
        return -1;
    }
    ig_task_init(&t);
    if (ig_store_task_get(hr->store, &id, &t) == IG_OK && t.state == IG_TASK_SUCCEEDED &&
        !t.outputs_expired && idx < t.noutputs && strcmp(t.outputs[idx].ext, ext) == 0) {
        if (t.outputs[idx].bytes > hr->app->cfg.ref_max_bytes) {
            ig_http_error(hr, IG_E_INVALID, where, "%s: the image is larger than %lld bytes", where,
                          (long long)hr->app->cfg.ref_max_bytes);
        } else {
            *ref = ig_xasprintf("blob:%s.%s", t.outputs[idx].blob, t.outputs[idx].ext);
            rc = 1;
        }
    } else {
        ig_http_error(hr, IG_E_INVALID, where,
                      "%s: %.200s names no stored result (expired or unknown)", where, url);
    }
    ig_task_release(&t);
    return rc;
}

/* A URL reference (fileData.fileUri, image_url): ours resolved to a blob, else a public
 * http(s) URL the engine fetches. false: an error reply has been sent. */
static bool url_ref(struct ig_gemini_parse *g, const char *url, const char *where)
{
    struct ig_hreq *hr = g->hr;
    struct ig_request *q = g->q;
    struct ig_errbuf eb;
    char *ref = NULL;
    int own;

    if (strlen(url) > URL_MAX_BYTES) {
        ig_http_error(hr, IG_E_INVALID, where, "%s is longer than %d bytes", where, URL_MAX_BYTES);
        return false;
    }
    own = own_media(hr, url, where, &ref);
    if (own < 0)
        return false;
    if (own == 0) {
        ig_errbuf_clear(&eb);
        if (ig_fetch_check_url(url, &eb)) {
            ig_http_error(hr, IG_E_INVALID, where, "%s: %s (only http(s) URLs are fetched)", where,
                          eb.msg);
            return false;
        }
        ref = ig_xstrdup(url);
    }
    q->refs[q->nrefs++] = ref;
    return true;
}

static bool parse_part(struct ig_gemini_parse *g, cJSON *part, const char *where, bool last_user,
                       struct ig_buf *prompt, int maxrefs)
{
    struct ig_hreq *hr = g->hr;
    struct ig_request *q = g->q;
    const cJSON *text = field(part, "text", NULL);
    cJSON *inl = (cJSON *)field(part, "inlineData", "inline_data");
    const cJSON *fd = field(part, "fileData", "file_data");
    const cJSON *iu = field(part, "image_url", "imageUrl");
    char w[96];

    if (!cJSON_IsObject(part)) {
        ig_http_error(hr, IG_E_INVALID, where, "Invalid value at '%s': a Part must be an object",
                      where);
        return false;
    }
    if (cJSON_IsTrue(field(part, "thought", NULL)))
        return true; /* the model's own reasoning from an earlier turn */
    if ((inl || fd || iu) && q->nrefs >= maxrefs) {
        ig_http_error(hr, IG_E_INVALID, where,
                      "%s: too many images: %s accepts at most %d reference images", where,
                      g->m->id, maxrefs);
        return false;
    }
    if (text) {
        if (!cJSON_IsString(text)) {
            ig_http_error(hr, IG_E_INVALID, where, "Invalid value at '%s.text' (TYPE_STRING)",
                          where);
            return false;
        }
        if (last_user && text->valuestring[0] &&
            ((prompt->len && ig_buf_add(prompt, "\n", 1)) ||
             ig_buf_adds(prompt, text->valuestring))) {
            ig_http_error(hr, IG_E_INVALID, where, "the prompt is longer than %d characters",
                          PROMPT_MAX_CHARS);
            return false;
        }
        return true;
    }
    if (inl) {
        cJSON *data = (cJSON *)field(inl, "data", NULL);
        struct ig_gemini_inline *in;

        snprintf(w, sizeof(w), "%s.inlineData", where);
        if (!cJSON_IsString(data) || !data->valuestring[0]) {
            ig_http_error(hr, IG_E_INVALID, w, "%s.data is required (base64 image bytes)", w);
            return false;
        }
        /* Cheap early refusal of what cannot decode under the cap. */
        if (strlen(data->valuestring) / 4 * 3 > (size_t)hr->app->cfg.ref_max_bytes + 3 &&
            strncasecmp(data->valuestring, "data:", 5) != 0) {
            ig_http_error(hr, IG_E_INVALID, w, "%s: the image is larger than %lld bytes", w,
                          (long long)hr->app->cfg.ref_max_bytes);
            return false;
        }
        in = &g->inl[g->ninline++];
        in->slot = q->nrefs++;
        snprintf(in->where, sizeof(in->where), "%s", w);
        in->b64 = data->valuestring; /* taken over: the tree is freed long before the job */
        data->valuestring = NULL;
        return true;
    }
    if (fd) {
        const cJSON *uri = field(fd, "fileUri", "file_uri");

        snprintf(w, sizeof(w), "%s.fileData.fileUri", where);
        if (!cJSON_IsString(uri)) {
            ig_http_error(hr, IG_E_INVALID, w, "%s is required", w);
            return false;
        }
        return url_ref(g, uri->valuestring, w);
    }
    if (iu) {
        /* 302.AI's extension: {"image_url": "https://..."} (or {"image_url": {"url": ...}}). */
        const cJSON *u = cJSON_IsObject(iu) ? field(iu, "url", NULL) : iu;

        snprintf(w, sizeof(w), "%s.image_url", where);
        if (!cJSON_IsString(u)) {
            ig_http_error(hr, IG_E_INVALID, w, "%s must be a URL", w);
            return false;
        }
        if (strncasecmp(u->valuestring, "data:", 5) == 0) {
            struct ig_gemini_inline *in = &g->inl[g->ninline++];

            in->slot = q->nrefs++;
            snprintf(in->where, sizeof(in->where), "%s", w);
            in->b64 = u->valuestring; /* taken over, as for inlineData */
            ((cJSON *)u)->valuestring = NULL;
            return true;
        }
        return url_ref(g, u->valuestring, w);
    }
    ig_http_error(hr, IG_E_INVALID, where,
                  "%s: only text, inlineData, fileData and image_url parts are supported", where);
    return false;
}

static bool parse_number(struct ig_hreq *hr, const cJSON *v, const char *name, double lo, double hi,
                         double *out)
{
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi) {
        ig_http_error(hr, IG_E_INVALID, name, "generationConfig.%s must be a number from %g to %g",
                      name, lo, hi);
        return false;
    }
    *out = v->valuedouble;
    return true;
}

static bool parse_int(struct ig_hreq *hr, const cJSON *v, const char *name, double lo, double hi,
                      int *out)
{
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi) {
        ig_http_error(hr, IG_E_INVALID, name,
                      "generationConfig.%s must be a whole number from %.0f to %.0f", name, lo, hi);
        return false;
    }
    *out = (int)v->valuedouble;
    return true;
}

static bool parse_generation_config(struct ig_gemini_parse *g, const cJSON *gc)
{
    struct ig_hreq *hr = g->hr;
    struct ig_request *q = g->q;
    const struct ig_model *m = g->m;
    const cJSON *mods = field(gc, "responseModalities", "response_modalities");
    const cJSON *ic = field(gc, "imageConfig", "image_config");
    const cJSON *v, *it;
    char list[256];

    if (!gc)
        return true;
    if (!cJSON_IsObject(gc)) {
        ig_http_error(hr, IG_E_INVALID, "generationConfig", "generationConfig must be an object");
        return false;
    }
    if (mods) {
        bool image = false;

        if (!cJSON_IsArray(mods)) {
            ig_http_error(hr, IG_E_INVALID, "responseModalities",
                          "generationConfig.responseModalities must be an array");
            return false;
        }
        cJSON_ArrayForEach(it, mods)
        {
            if (cJSON_IsString(it) && strcasecmp(it->valuestring, "IMAGE") == 0)
                image = true;
            else if (!cJSON_IsString(it) || strcasecmp(it->valuestring, "TEXT") != 0) {
                ig_http_error(hr, IG_E_INVALID, "responseModalities",
                              "generationConfig.responseModalities: only TEXT and IMAGE are "
                              "supported");
                return false;
            }
        }
        if (!image && cJSON_GetArraySize(mods) > 0) {
            ig_http_error(hr, IG_E_INVALID, "responseModalities",
                          "generationConfig.responseModalities must include IMAGE: %s is an "
                          "image model",
                          m->id);
            return false;
        }
    }
    if ((v = field(gc, "temperature", NULL))) {
        if (!parse_number(hr, v, "temperature", 0, 2, &q->temperature))
            return false;
        q->has_temperature = true;
    }
    if ((v = field(gc, "topP", "top_p"))) {
        if (!parse_number(hr, v, "topP", 0, 1, &q->top_p))
            return false;
        q->has_top_p = true;
    }
    if ((v = field(gc, "topK", "top_k"))) {
        if (!parse_int(hr, v, "topK", 1, 1000000, &q->top_k))
            return false;
        q->has_top_k = true;
    }
    if ((v = field(gc, "seed", NULL))) {
        if (!parse_int(hr, v, "seed", -2147483648.0, 2147483647.0, &q->seed))
            return false;
        q->has_seed = true;
    }
    if ((v = field(gc, "candidateCount", "candidate_count"))) {
        if (!parse_int(hr, v, "candidateCount", 1, m->max_n, &q->n))
            return false;
    }
    if (ic) {
        const cJSON *ar = field(ic, "aspectRatio", "aspect_ratio");
        const cJSON *sz = field(ic, "imageSize", "image_size");

        if (!cJSON_IsObject(ic)) {
            ig_http_error(hr, IG_E_INVALID, "imageConfig",
                          "generationConfig.imageConfig must be an object");
            return false;
        }
        if (ar) {
            if (!cJSON_IsString(ar) || !ig_model_ratio_find(m, ar->valuestring)) {
                ig_model_ratio_list(m, list, sizeof(list));
                ig_http_error(hr, IG_E_INVALID, "aspectRatio",
                              "generationConfig.imageConfig.aspectRatio must be one of %s for %s",
                              list, m->id);
                return false;
            }
            snprintf(q->ratio, sizeof(q->ratio), "%s", ar->valuestring);
        }
        if (sz) {
            char up[8] = "";

            if (cJSON_IsString(sz) && strlen(sz->valuestring) < sizeof(up)) {
                for (size_t i = 0; sz->valuestring[i]; i++)
                    up[i] = sz->valuestring[i] == 'k' ? 'K' : sz->valuestring[i];
            }
            if (!up[0] || ig_model_res_index(m, up) < 0) {
                size_t o = 0;

                list[0] = '\0';
                for (int i = 0; i < m->nres; i++)
                    o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", i ? ", " : "",
                                          m->res[i]);
                ig_http_error(hr, IG_E_INVALID, "imageSize",
                              "generationConfig.imageConfig.imageSize must be %s%s for %s",
                              m->nres > 1 ? "one of " : "", list, m->id);
                return false;
            }
            snprintf(q->resolution, sizeof(q->resolution), "%s", up);
        }
    }
    return true;
}

static bool parse_safety(struct ig_gemini_parse *g, const cJSON *ss)
{
    struct ig_hreq *hr = g->hr;
    cJSON *out;
    const cJSON *s;
    char *printed;

    if (!ss)
        return true;
    if (!cJSON_IsArray(ss) || cJSON_GetArraySize(ss) > SAFETY_MAX) {
        ig_http_error(hr, IG_E_INVALID, "safetySettings",
                      "safetySettings must be an array of at most %d {category, threshold}",
                      SAFETY_MAX);
        return false;
    }
    out = cJSON_CreateArray();
    cJSON_ArrayForEach(s, ss)
    {
        const cJSON *c = field(s, "category", NULL), *t = field(s, "threshold", NULL);
        cJSON *o;

        if (!cJSON_IsString(c) || !cJSON_IsString(t) || strlen(c->valuestring) > 64 ||
            strlen(t->valuestring) > 64) {
            cJSON_Delete(out);
            ig_http_error(hr, IG_E_INVALID, "safetySettings",
                          "each safetySettings entry needs a string category and threshold");
            return false;
        }
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "category", c->valuestring);
        cJSON_AddStringToObject(o, "threshold", t->valuestring);
        cJSON_AddItemToArray(out, o);
    }
    printed = cJSON_PrintUnformatted(out);
    cJSON_Delete(out);
    if (!printed)
        IG_BUG("out of memory");
    g->q->safety = ig_xstrdup(printed);
    cJSON_free(printed);
    return true;
}

bool ig_gemini_parse(struct ig_gemini_parse *g, cJSON *root)
{
    struct ig_hreq *hr = g->hr;
    struct ig_request *q = g->q;
    const cJSON *contents = field(root, "contents", NULL);
    const cJSON *sys = field(root, "systemInstruction", "system_instruction");
    cJSON *c;
    struct ig_buf prompt = IG_BUF_INIT(PROMPT_MAX_CHARS * 4);
    int last_user = -1, i = 0;
    int maxrefs = g->m->max_refs < IG_MAX_REFS ? g->m->max_refs : IG_MAX_REFS;
    long chars;

    q->n = 1;
    snprintf(q->resolution, sizeof(q->resolution), "%s", g->m->default_res);
    snprintf(q->output_format, sizeof(q->output_format), "png");
    if (!cJSON_IsArray(contents) || cJSON_GetArraySize(contents) == 0) {
        ig_http_error(hr, IG_E_INVALID, "contents",
                      contents ? "contents must be a non-empty array of Content"
                               : "* GenerateContentRequest.contents: contents is not specified");
        return false;
    }
    cJSON_ArrayForEach(c, contents)
    {
        const cJSON *role = field(c, "role", NULL);

        if (!cJSON_IsObject(c) || (role && !cJSON_IsString(role))) {
            ig_http_error(hr, IG_E_INVALID, "contents", "contents[%d] must be a Content object", i);
            return false;
        }
        if (role && strcmp(role->valuestring, "user") != 0 &&
            strcmp(role->valuestring, "model") != 0) {
            ig_http_error(hr, IG_E_INVALID, "role", "Please use a valid role: user, model.");
            return false;
        }
        if (!role || strcmp(role->valuestring, "user") == 0)
            last_user = i;
        i++;
    }
    if (last_user < 0) {
        ig_http_error(hr, IG_E_INVALID, "contents", "contents must hold a user turn");
        return false;
    }
    i = 0;
    cJSON_ArrayForEach(c, contents)
    {
        cJSON *parts = (cJSON *)field(c, "parts", NULL), *p;
        int j = 0;

        if (!cJSON_IsArray(parts) || cJSON_GetArraySize(parts) == 0) {
            ig_http_error(hr, IG_E_INVALID, "parts",
                          "* GenerateContentRequest.contents[%d].parts: contents.parts must not "
                          "be empty.",
                          i);
            ig_buf_release(&prompt);
            return false;
        }
        cJSON_ArrayForEach(p, parts)
        {
            char where[48];

            snprintf(where, sizeof(where), "contents[%d].parts[%d]", i, j++);
            if (!parse_part(g, p, where, i == last_user, &prompt, maxrefs)) {
                ig_buf_release(&prompt);
                return false;
            }
        }
        i++;
    }
    if (!prompt.len) {
        ig_http_error(hr, IG_E_INVALID, "contents",
                      "contents[%d] (the last user turn) needs a text part saying what to draw",
                      last_user);
        ig_buf_release(&prompt);
        return false;
    }
    chars = ig_utf8_count(prompt.data, prompt.len);
    if (chars < 0 || chars > PROMPT_MAX_CHARS) {
        if (chars < 0)
            ig_http_error(hr, IG_E_INVALID, "contents", "the prompt is not valid UTF-8");
        else
            ig_http_error(hr, IG_E_INVALID, "contents", "the prompt is longer than %d characters",
                          PROMPT_MAX_CHARS);
        ig_buf_release(&prompt);
        return false;
    }
    q->prompt = ig_buf_detach(&prompt, NULL);
    if (sys) {
        struct ig_buf b = IG_BUF_INIT(SYSTEM_MAX_CHARS * 4);

        if (!content_text(sys, &b) || ig_utf8_count(b.data ? b.data : "", b.len) < 0) {
            ig_buf_release(&b);
            ig_http_error(hr, IG_E_INVALID, "systemInstruction",
                          "systemInstruction must be a Content with text parts (at most %d "
                          "characters)",
                          SYSTEM_MAX_CHARS);
            return false;
        }
        if (b.len)
            q->system = ig_buf_detach(&b, NULL);
        ig_buf_release(&b);
    }
    if (!parse_generation_config(g, field(root, "generationConfig", "generation_config")))
        return false;
    return parse_safety(g, field(root, "safetySettings", "safety_settings"));
}
