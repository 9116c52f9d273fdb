/* vips.c: libvips start-up (untrusted loaders blocked, no cache, one thread) and encoders. */
#include "base/base.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "media/vips.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static enum ig_err init_err = IG_OK;

/* libvips reports damaged input (a client's bytes) as GLib warnings: keep them out of
 * stderr's unformatted stream and in the log, at debug level since nobody can act on them. */
static void on_glib_log(const gchar *domain, GLogLevelFlags level, const gchar *message,
                        gpointer data)
{
    ig_debug("vips: %s", message);
}

static void init(void)
{
    char msg[256];

    if (VIPS_INIT("imagegate")) {
        ig_vips_error(msg, sizeof(msg));
        ig_error("vips: cannot start libvips: %s", msg);
        init_err = IG_E_INTERNAL;
        return;
    }
    g_log_set_handler("VIPS", G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO,
                      on_glib_log, NULL);
    /* Only the loaders libvips has fuzzed and trusts may ever see client bytes. */
    vips_block_untrusted_set(TRUE);
    vips_cache_set_max(0);
    vips_concurrency_set(1);
}

enum ig_err ig_vips_init(void)
{
    pthread_once(&init_once, init);
    return init_err;
}

void ig_vips_shutdown(void)
{
    vips_shutdown();
}

void ig_vips_error(char *out, size_t outlen)
{
    const char *e = vips_error_buffer();
    size_t o = 0;

    if (!outlen)
        return;
    for (; e && *e && o + 1 < outlen; e++) {
        char c = *e;

        if (c == '\n') {
            if (!e[1])
                break;
            if (o + 3 >= outlen)
                break;
            out[o++] = ';';
            c = ' ';
        } else if ((unsigned char)c < 0x20) {
            c = ' ';
        }
        out[o++] = c;
    }
    out[o] = '\0';
    if (!o)
        snprintf(out, outlen, "unknown libvips error");
    vips_error_clear();
}

/* PNG is written for speed: results are stored on local disk, and encoding runs once per
 * image on a shared pool. Measured with libvips 8.14 (-O2, one thread, 1024x1024 RGB):
 *
 *   setting              offline image (flat)   photo-like (blurred noise)
 *   level 0              10 ms, 3.2 MB          8 ms, 3.2 MB
 *   level 1, no filter    9 ms, 59 KB          50 ms, 1.11 MB
 *   level 1, up          12 ms, 165 KB         41 ms, 0.86 MB   <- chosen
 *   level 3, no filter    8 ms, 53 KB          86 ms, 0.90 MB
 *   level 6, no filter   17 ms, 31 KB         261 ms, 0.89 MB
 *   level 6, adaptive    46 ms, 46 KB         236 ms, 0.69 MB   (libvips' default)
 *
 * Model output is photographic, where level 1 with the "up" filter is both fastest and
 * smallest of the fast settings; on flat generated images it costs 3 ms more. */
#define PNG_COMPRESSION 1
#define PNG_FILTER      VIPS_FOREIGN_PNG_FILTER_UP

/* JPEG has no alpha: flatten onto white rather than libvips' default black. */
static int save_jpeg(VipsImage *im, int quality, void **buf, size_t *n)
{
    VipsImage *flat = NULL;
    int rc;

    if (vips_image_hasalpha(im)) {
        VipsArrayDouble *white = vips_array_double_newv(3, 255.0, 255.0, 255.0);

        rc = vips_flatten(im, &flat, "background", white, NULL);
        vips_area_unref(VIPS_AREA(white));
        if (rc)
            return rc;
        im = flat;
    }
    if (quality)
        rc = vips_jpegsave_buffer(im, buf, n, "Q", quality, "strip", TRUE, NULL);
    else
        rc = vips_jpegsave_buffer(im, buf, n, "strip", TRUE, NULL);
    if (flat)
        g_object_unref(flat);
    return rc;
}

enum ig_err ig_vips_encode(VipsImage *im, const char *format, int quality, unsigned char **out,
                           size_t *len)
{
    void *buf = NULL;
    size_t n = 0;
    char msg[256];
    int rc;

    if (quality < 0 || quality > 100)
        return IG_E_INVALID;
    if (strcmp(format, "png") == 0)
        rc = vips_pngsave_buffer(im, &buf, &n, "compression", PNG_COMPRESSION, "filter", PNG_FILTER,
                                 "strip", TRUE, NULL);
    else if (strcmp(format, "jpeg") == 0)
        rc = save_jpeg(im, quality, &buf, &n);
    else if (strcmp(format, "webp") == 0 && quality)
        rc = vips_webpsave_buffer(im, &buf, &n, "Q", quality, "strip", TRUE, NULL);
    else if (strcmp(format, "webp") == 0)
        rc = vips_webpsave_buffer(im, &buf, &n, "strip", TRUE, NULL);
    else
        return IG_E_INVALID;
    if (rc) {
        g_free(buf);
        ig_vips_error(msg, sizeof(msg));
        ig_warn("vips: %s encode failed: %s", format, msg);
        return IG_E_INTERNAL;
    }
    /* One allocator for callers: copy out of glib's. */
    *out = ig_xmalloc(n ? n : 1);
    memcpy(*out, buf, n);
    *len = n;
    g_free(buf);
    return IG_OK;
}
