/* gemini_int.h: what the Gemini dialect's two files share (gemini.c: routes, parsing, the
 * wait; gemini_render.c: GenerateContentResponse bodies built from a finished task).
 *
 * Rendering reads the result images from the blob store and base64-encodes them, so it runs
 * on the CPU pool; everything else runs on the request's loop. */
#ifndef IG_GEMINI_INT_H
#define IG_GEMINI_INT_H

#include "base/base.h"
#include "core/app.h"
#include "core/task.h"
#include "http/server.h"
#include "media/blob.h"

struct cJSON;

/* A GenerateContentResponse never carries more than this (IG_MAX_OUTPUTS images of at most
 * 64 MB each, in base64, with room for the rest). */
#define IG_GEMINI_MAX_IMAGE_BYTES (64u * 1024 * 1024)
#define IG_GEMINI_MAX_REPLY       (IG_MAX_OUTPUTS * (IG_GEMINI_MAX_IMAGE_BYTES / 3 * 4 + 1024) + 65536u)
/* Output tokens of an image when the task recorded none (wire-formats.md §1.7). */
#define IG_GEMINI_IMAGE_TOKENS 1290

/* ---- gemini_parse.c ---- */

/* An inlineData part (or a data: URI in image_url) waiting to be decoded and stored. */
struct ig_gemini_inline {
    int slot;       /* its index in the request's refs[] */
    char *b64;      /* taken from the cJSON tree: free with cJSON_free */
    char where[96]; /* "contents[0].parts[1].inlineData", for messages */
};

struct ig_gemini_parse {
    struct ig_hreq *hr;           /* for the error reply and the store (own media URLs) */
    const struct ig_model *m;     /* the model of the path */
    struct ig_request *q;         /* filled in */
    struct ig_gemini_inline *inl; /* IG_MAX_REFS slots */
    int ninline;
};

/* The body into p->q (prompt = the last user turn's text parts joined by '\n'; references
 * in order from every turn; systemInstruction, generationConfig, safetySettings). URL
 * references are checked (our own result URLs become blob: refs at once); inline ones are
 * queued in p->inl with their slot in q->refs reserved. false: an error reply in Google's
 * envelope has been sent. The root is modified: the inline base64 strings are taken out. */
bool ig_gemini_parse(struct ig_gemini_parse *p, struct cJSON *root);
/* On the CPU pool: decode, sniff (PNG, JPEG, WebP, HEIC, AVIF only), cap (--ref-max-bytes,
 * --ref-max-pixels) and store each inline image, putting "blob:<sha256>.<ext>" in its slot of
 * q->refs. IG_E_INVALID (errmsg for the client) or IG_E_INTERNAL. */
enum ig_err ig_gemini_store_inline(struct ig_app *app, const struct ig_gemini_inline *inl, int n,
                                   struct ig_request *q, char *errmsg, size_t errlen);

/* ---- gemini_render.c ---- */

/* What a successful task is rendered from. Borrowed pointers: they outlive the call. */
struct ig_gemini_render {
    const struct ig_task *t;
    struct ig_blob *blob;
    const char *public_url; /* for response_format=url */
    const char *model_version;
    const char *response_id; /* "task_<hex>" */
    bool urls;               /* response_format=url: fileData parts pointing at stored media */
    int image_tokens;        /* per image, when the task recorded no image tokens */
};

/* The events of a successful task, each a complete GenerateContentResponse: the text first
 * (when the model said anything), then one event per image (never split), the last one
 * carrying finishReason and usageMetadata. chunks[] receive heap strings (caller frees);
 * *n their count. With whole set, one response holding everything instead (*n = 1).
 * IG_E_IO when a result image cannot be read (errmsg says which). */
enum ig_err ig_gemini_render_success(const struct ig_gemini_render *r, bool whole, char **chunks,
                                     size_t *lens, int *n, char *errmsg, size_t errlen);

/* What a moderated task says, as Google says it: blockReason (prompt refused; *finish set to
 * "") or finishReason (output refused; *block ""), and the model's words if it gave any
 * (text, may be empty). Read from the task's error message. */
void ig_gemini_moderation(const struct ig_task *t, char *block, size_t blocklen, char *finish,
                          size_t finishlen, char *text, size_t textlen);

/* Standard base64, written into b in bounded chunks. */
enum ig_err ig_gemini_add_base64(struct ig_buf *b, const unsigned char *p, size_t n);
/* Decode base64 in the standard or URL-safe alphabet, padding optional (protobuf JSON's
 * rules for bytes). *out is heap (caller frees). IG_E_INVALID for anything else, IG_E_TOOBIG
 * past max decoded bytes. */
enum ig_err ig_gemini_b64_decode(const char *s, size_t n, size_t max, unsigned char **out,
                                 size_t *outlen);

#endif
