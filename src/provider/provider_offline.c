/* provider_offline.c: the "offline" provider: deterministic local images, no network.
 *
 * For development, demos, tests and load tests. A text-to-image job renders a diagonal
 * two-colour gradient with a few shapes, every colour and place drawn from a seed; an edit
 * decodes the first reference, covers the output size with it (centre crop), tints it
 * towards a seed colour and frames it, so the result is visibly derived from the reference.
 * The seed is SHA-256(prompt, width, height, image index, SHA-256 of the first reference):
 * the same request gives byte-identical PNGs, another prompt other images.
 *
 * The pixels are made on the CPU pool; the optional latency is then a timer on the engine
 * loop (no pool thread sleeps), and done always runs on the engine loop, never in start. */
#include "base/base.h"

#include <event2/event.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "media/image.h"
#include "media/vips.h"
#include "provider/provider.h"

#define MAX_SIDE       16384
#define MAX_PIXELS     (64 * 1024 * 1024)  /* per output */
#define MAX_REF_PIXELS (100 * 1000 * 1000) /* header check before decoding a reference */
#define BORDER         8                   /* px, the frame drawn around an edit */
#define TINT           90                  /* /256: an edit moves 35% towards its colour */

struct offline {
    int latency_ms;
    double failure_rate;
};

/* Per-job state (job->pctx) from start until done. */
struct ojob {
    int latency_ms;
    double failure_rate;
    struct event *timer;
};

struct rng {
    uint64_t s;
};

/* splitmix64: a tiny deterministic stream from the seed. */
static uint64_t rng_next(struct rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int rng_below(struct rng *r, int n)
{
    return n > 0 ? (int)(rng_next(r) % (uint64_t)n) : 0;
}

static void seed_for(const struct ig_job *job, const char *refhash, int index,
                     unsigned char seed[IG_SHA256_LEN])
{
    const char *prompt = job->task->req.prompt ? job->task->req.prompt : "";
    char *s = ig_xasprintf("%s\n%dx%d\n%d\n%s", prompt, job->width, job->height, index, refhash);

    ig_sha256(s, strlen(s), seed);
    free(s);
}

/* Blend col over the pixel with weight a/256. */
static void blend(unsigned char *px, const unsigned char col[3], int a)
{
    for (int c = 0; c < 3; c++)
        px[c] = (unsigned char)((px[c] * (256 - a) + col[c] * a) >> 8);
}

static void fill_rect(unsigned char *rgb, int w, int h, int x0, int y0, int x1, int y1,
                      const unsigned char col[3], int a)
{
    x0 = x0 < 0 ? 0 : x0;
    y0 = y0 < 0 ? 0 : y0;
    x1 = x1 > w ? w : x1;
    y1 = y1 > h ? h : y1;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            blend(rgb + ((size_t)y * (size_t)w + (size_t)x) * 3, col, a);
}

static void fill_circle(unsigned char *rgb, int w, int h, int cx, int cy, int r,
                        const unsigned char col[3], int a)
{
    for (int y = cy - r; y <= cy + r; y++) {
        int dy = y - cy, span;

        if (y < 0 || y >= h)
            continue;
        span = (int)sqrt((double)r * r - (double)dy * dy);
        fill_rect(rgb, w, h, cx - span, y, cx + span + 1, y + 1, col, a);
    }
}

/* A text-to-image picture: gradient from c0 (top left) to c1 (bottom right), then three
 * circles and two rectangles, all placed and coloured by the seed. */
static void paint(unsigned char *rgb, int w, int h, const unsigned char seed[IG_SHA256_LEN])
{
    const unsigned char *c0 = seed, *c1 = seed + 3;
    int64_t den = (int64_t)w + h - 2 > 0 ? (int64_t)w + h - 2 : 1;
    int m = w < h ? w : h;
    struct rng r;

    memcpy(&r.s, seed + 8, sizeof(r.s));
    for (int y = 0; y < h; y++) {
        unsigned char *row = rgb + (size_t)y * (size_t)w * 3;

        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                row[x * 3 + c] = (unsigned char)(c0[c] + (c1[c] - c0[c]) * (x + y) / den);
    }
    for (int i = 0; i < 3; i++) {
        unsigned char col[3] = {seed[16 + 3 * i], seed[17 + 3 * i], seed[18 + 3 * i]};
        int rad = m / 16 + rng_below(&r, m / 5 + 1);

        fill_circle(rgb, w, h, rng_below(&r, w), rng_below(&r, h), rad, col, 192);
    }
    for (int i = 0; i < 2; i++) {
        unsigned char col[3] = {seed[25 + 3 * i], seed[26 + 3 * i], seed[27 + 3 * i]};
        int x = rng_below(&r, w), y = rng_below(&r, h);
        int rw = w / 10 + rng_below(&r, w / 4 + 1), rh = h / 10 + rng_below(&r, h / 4 + 1);

        fill_rect(rgb, w, h, x, y, x + rw, y + rh, col, 160);
    }
}

/* An edit: tint every pixel towards the seed colour, then a frame of that colour. */
static void derive(unsigned char *rgb, int w, int h, const unsigned char seed[IG_SHA256_LEN])
{
    const unsigned char *col = seed;

    for (size_t i = 0; i < (size_t)w * (size_t)h; i++)
        blend(rgb + i * 3, col, TINT);
    fill_rect(rgb, w, h, 0, 0, w, BORDER, col, 256);
    fill_rect(rgb, w, h, 0, h - BORDER, w, h, col, 256);
    fill_rect(rgb, w, h, 0, 0, BORDER, h, col, 256);
    fill_rect(rgb, w, h, w - BORDER, 0, w, h, col, 256);
}

static enum ig_err encode_rgb(struct ig_job *job, const unsigned char *rgb, struct ig_image *out)
{
    size_t n = (size_t)job->width * (size_t)job->height * 3;
    VipsImage *im;
    enum ig_err err;

    im = vips_image_new_from_memory(rgb, n, job->width, job->height, 3, VIPS_FORMAT_UCHAR);
    if (!im)
        return IG_E_INTERNAL;
    err = ig_vips_encode(im, "png", 0, &out->data, &out->len);
    g_object_unref(im);
    if (err)
        return err;
    snprintf(out->mime, sizeof(out->mime), "image/png");
    out->width = job->width;
    out->height = job->height;
    return IG_OK;
}

typedef int load_fn(void *buf, size_t len, VipsImage **out, ...);

/* Decode the reference with the loader its signature names (only the five formats the
 * gateway accepts; block_untrusted stays on regardless), sequentially and failing on the
 * first decode error, and make it exactly w x h sRGB uchar, 3 bands, alpha flattened on
 * white. The pixels are g_malloc'd into *rgb; on failure msg says why. */
static enum ig_err decode_ref(const struct ig_image *ref, int w, int h, void **rgb, char *msg,
                              size_t msglen)
{
    VipsImage *ctx = vips_image_new();
    VipsImage **t = (VipsImage **)vips_object_local_array(VIPS_OBJECT(ctx), 8);
    VipsArrayDouble *white = vips_array_double_newv(3, 255.0, 255.0, 255.0);
    VipsImage *in;
    load_fn *load = NULL;
    size_t size = 0;
    bool said = false;
    enum ig_err err = IG_E_REFERENCE;

    switch (ig_image_sniff(ref->data, ref->len)) {
    case IG_IMG_PNG:
        load = vips_pngload_buffer;
        break;
    case IG_IMG_JPEG:
        load = vips_jpegload_buffer;
        break;
    case IG_IMG_WEBP:
        load = vips_webpload_buffer;
        break;
    case IG_IMG_HEIF:
    case IG_IMG_AVIF:
        load = vips_heifload_buffer;
        break;
    case IG_IMG_UNKNOWN:
        break;
    }
    if (!load) {
        snprintf(msg, msglen, "not a PNG, JPEG, WebP, HEIF or AVIF image");
        said = true;
        goto out;
    }
    if (load(ref->data, ref->len, &t[0], "access", VIPS_ACCESS_SEQUENTIAL, "fail_on",
             VIPS_FAIL_ON_ERROR, NULL))
        goto out;
    in = t[0];
    if ((int64_t)in->Xsize * in->Ysize > MAX_REF_PIXELS) {
        snprintf(msg, msglen, "%dx%d is more than %d pixels", in->Xsize, in->Ysize, MAX_REF_PIXELS);
        said = true;
        goto out;
    }
    /* Autorotates (EXIF orientation), imports an ICC profile to sRGB, scales to cover
     * w x h and crops the centre. */
    if (vips_thumbnail_image(in, &t[1], w, "height", h, "crop", VIPS_INTERESTING_CENTRE, NULL) ||
        vips_colourspace(t[1], &t[2], VIPS_INTERPRETATION_sRGB, NULL))
        goto out;
    in = t[2];
    if (vips_image_hasalpha(in)) {
        if (vips_flatten(in, &t[3], "background", white, NULL))
            goto out;
        in = t[3];
    }
    if (vips_cast_uchar(in, &t[4], NULL))
        goto out;
    in = t[4];
    if (in->Bands != 3) {
        if (vips_extract_band(in, &t[5], 0, "n", in->Bands > 3 ? 3 : 1, NULL))
            goto out;
        in = t[5];
    }
    if (in->Bands == 1) {
        VipsImage *b3[3] = {in, in, in};

        if (vips_bandjoin(b3, &t[6], 3, NULL))
            goto out;
        in = t[6];
    }
    /* thumbnail may round a side by a pixel: pad or trim so the size is exact. */
    if (in->Xsize != w || in->Ysize != h) {
        if (vips_gravity(in, &t[7], VIPS_COMPASS_DIRECTION_CENTRE, w, h, "extend", VIPS_EXTEND_COPY,
                         NULL))
            goto out;
        in = t[7];
    }
    /* The decode happens here: damaged data fails now (fail_on=error). */
    *rgb = vips_image_write_to_memory(in, &size);
    if (!*rgb)
        goto out;
    if (size != (size_t)w * (size_t)h * 3) {
        g_free(*rgb);
        *rgb = NULL;
        snprintf(msg, msglen, "decoded to %zu bytes, not %dx%d RGB", size, w, h);
        said = true;
        goto out;
    }
    err = IG_OK;
out:
    if (err && !said)
        ig_vips_error(msg, msglen);
    vips_area_unref(VIPS_AREA(white));
    g_object_unref(ctx);
    return err;
}

static void set_error(struct ig_job *job, enum ig_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_error(struct ig_job *job, enum ig_err err, const char *fmt, ...)
{
    va_list ap;

    job->err = err;
    va_start(ap, fmt);
    vsnprintf(job->errmsg, sizeof(job->errmsg), fmt, ap);
    va_end(ap);
}

/* Make job->images[0..n) (n = task->req.n); on failure none are kept. */
static enum ig_err render(struct ig_job *job, int n)
{
    size_t npx = (size_t)job->width * (size_t)job->height * 3;
    char refhash[IG_SHA256_HEX_LEN + 1] = "";
    unsigned char seed[IG_SHA256_LEN];
    unsigned char *rgb = ig_xmalloc(npx);
    void *base = NULL;
    char msg[300];
    enum ig_err err = IG_OK;

    if (job->nrefs > 0) {
        ig_sha256_hex(job->refs[0].data ? (const void *)job->refs[0].data : "", job->refs[0].len,
                      refhash);
        err = decode_ref(&job->refs[0], job->width, job->height, &base, msg, sizeof(msg));
        if (err) {
            set_error(job, err, "offline provider: reference 0 could not be used: %s", msg);
            goto out;
        }
    }
    for (int i = 0; i < n; i++) {
        seed_for(job, refhash, i, seed);
        if (base) {
            memcpy(rgb, base, npx);
            derive(rgb, job->width, job->height, seed);
        } else {
            paint(rgb, job->width, job->height, seed);
        }
        err = encode_rgb(job, rgb, &job->images[i]);
        if (err) {
            set_error(job, err, "offline provider: PNG encoding failed");
            goto out;
        }
        job->nimages = i + 1;
    }
out:
    if (err) {
        for (int i = 0; i < job->nimages; i++)
            ig_image_release(&job->images[i]);
        job->nimages = 0;
    }
    g_free(base);
    free(rgb);
    return err;
}

/* Deterministic by task id: the first 4 bytes of SHA-256 of its 32-hex form, as a fraction
 * of 2^32, below the rate. */
static bool injected_failure(const struct ig_task *task, double rate)
{
    char hex[IG_ID_HEX_LEN + 1];
    unsigned char d[IG_SHA256_LEN];
    uint32_t v;

    if (rate <= 0)
        return false;
    ig_id_hex(&task->id, hex);
    ig_sha256(hex, strlen(hex), d);
    v = (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3];
    return (double)v / 4294967296.0 < rate;
}

static int64_t image_tokens(const struct ig_model *m, const char *res)
{
    for (int i = 0; m && i < m->nres && i < IG_CATALOG_MAX_RES; i++)
        if (strcmp(m->res[i], res) == 0)
            return m->image_tokens[i];
    return 0;
}

/* Pool thread. */
static void work(void *arg)
{
    struct ig_job *job = arg;
    struct ojob *oj = job->pctx;
    const struct ig_request *req = &job->task->req;
    int n = req->n > 0 ? req->n : 1;
    long chars;

    snprintf(job->channel, sizeof(job->channel), "offline");
    if (injected_failure(job->task, oj->failure_rate)) {
        set_error(job, IG_E_UPSTREAM_FAILED,
                  "offline provider: injected failure (failure_rate=%.2f)", oj->failure_rate);
        return;
    }
    if (render(job, n))
        return;
    /* prompt_tokens is an estimate: one token per 4 characters, rounded up. */
    chars = req->prompt ? ig_utf8_count(req->prompt, strlen(req->prompt)) : 0;
    if (chars < 0)
        chars = (long)strlen(req->prompt);
    memset(&job->usage, 0, sizeof(job->usage));
    job->usage.prompt_tokens = (chars + 3) / 4;
    job->usage.images = n;
    job->usage.image_tokens = n * image_tokens(job->model, req->resolution);
    job->err = IG_OK;
}

static void finish(struct ig_job *job)
{
    struct ojob *oj = job->pctx;

    if (oj->timer)
        event_free(oj->timer);
    free(oj);
    job->pctx = NULL;
    job->done(job);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    finish(arg);
}

/* Engine loop, after work. */
static void work_done(void *arg)
{
    struct ig_job *job = arg;
    struct ojob *oj = job->pctx;
    struct timeval tv;

    if (oj->latency_ms > 0) {
        tv.tv_sec = oj->latency_ms / 1000;
        tv.tv_usec = (oj->latency_ms % 1000) * 1000;
        oj->timer = evtimer_new(job->base, on_timer, job);
        if (oj->timer && evtimer_add(oj->timer, &tv) == 0)
            return;
    }
    finish(job);
}

static enum ig_err offline_start(struct ig_provider *p, struct ig_job *job)
{
    struct offline *o = p->ctx;
    struct ojob *oj;
    enum ig_err err;

    if (!job->task || !job->done || !job->pool || !job->mb || !job->base)
        return IG_E_INTERNAL;
    if (job->width < 1 || job->height < 1 || job->width > MAX_SIDE || job->height > MAX_SIDE ||
        (int64_t)job->width * job->height > MAX_PIXELS || job->task->req.n > IG_MAX_OUTPUTS)
        return IG_E_INVALID;
    err = ig_vips_init();
    if (err)
        return err;
    oj = ig_xcalloc(1, sizeof(*oj));
    oj->latency_ms = o->latency_ms;
    oj->failure_rate = o->failure_rate;
    job->pctx = oj;
    job->err = IG_OK;
    job->errmsg[0] = '\0';
    ig_pool_submit(job->pool, work, work_done, job->mb, job);
    return IG_OK;
}

static void offline_free(struct ig_provider *p)
{
    free(p->ctx);
    free(p);
}

static const struct ig_provider_ops offline_ops = {
    .name = "offline",
    .abi_version = 1,
    .start = offline_start,
    .free = offline_free,
};

struct ig_provider *ig_provider_offline_new(int latency_ms, double failure_rate)
{
    struct ig_provider *p = ig_xcalloc(1, sizeof(*p));
    struct offline *o = ig_xcalloc(1, sizeof(*o));

    /* Start libvips on this (main) thread; a failure is reported again by start. */
    if (ig_vips_init())
        ig_error("offline provider: libvips did not start, every job will fail");
    o->latency_ms = latency_ms > 0 ? latency_ms : 0;
    o->failure_rate = failure_rate > 0 ? failure_rate : 0;
    p->ops = &offline_ops;
    p->ctx = o;
    return p;
}
