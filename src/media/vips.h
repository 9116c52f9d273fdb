/* vips.h: the one place imagegate sets libvips up, and encoding to PNG/JPEG/WebP.
 *
 * libvips is only ever used on image bytes after ig_vips_init(), which blocks the loaders
 * libvips marks untrusted (SVG, PDF, ImageMagick, JPEG 2000, JPEG XL, ...), turns the
 * operation cache off (memory per task stays flat) and keeps libvips to one worker thread
 * per pipeline: imagegate runs pipelines in parallel on its own pool. Lifetime: process. */
#ifndef IG_VIPS_H
#define IG_VIPS_H

#include <stddef.h>

#include <vips/vips.h>

#include "base/err.h"

/* Idempotent and thread-safe (pthread_once). IG_E_INTERNAL when libvips cannot start; the
 * same answer is given to every later call. */
enum ig_err ig_vips_init(void);
/* At process end, after every thread that used libvips has stopped. */
void ig_vips_shutdown(void);

/* Encode im as "png", "jpeg" or "webp", metadata stripped. quality 1..100 applies to jpeg
 * and webp (0 = the libvips default, 75); an alpha channel is flattened onto white for
 * jpeg. PNG is written for speed (zlib level 1, "up" filter: measured in vips.c). *out is
 * ig_xmalloc'd memory the caller frees. IG_E_INVALID for an unknown format or quality,
 * IG_E_INTERNAL when libvips fails (the image could not be computed: for a pipeline over
 * a decoder, that includes damaged input; the reason is logged). */
enum ig_err ig_vips_encode(VipsImage *im, const char *format, int quality, unsigned char **out,
                           size_t *len);

/* Copy libvips' error text into out on one line, and clear it. libvips keeps one buffer for
 * the process, so failures on two threads at once may mix their texts. */
void ig_vips_error(char *out, size_t outlen);

#endif
