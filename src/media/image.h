/* image.h: what an image is, read from its bytes: the type by signature (never by name or
 * declared MIME type) and the dimensions from the header, before any decode. */
#ifndef IG_IMAGE_H
#define IG_IMAGE_H

#include "base/base.h"

enum ig_image_type {
    IG_IMG_UNKNOWN = 0,
    IG_IMG_PNG,
    IG_IMG_JPEG,
    IG_IMG_WEBP,
    IG_IMG_HEIF, /* HEIC/HEIF */
    IG_IMG_AVIF,
};

enum ig_image_type ig_image_sniff(const unsigned char *p, size_t n);
const char *ig_image_mime(enum ig_image_type t); /* "image/png"...; NULL for unknown */
const char *ig_image_ext(enum ig_image_type t);  /* "png"... */

/* Read width and height from the header. IG_E_INVALID when the header is damaged or absent. */
enum ig_err ig_image_dimensions(const unsigned char *p, size_t n, enum ig_image_type *type,
                                int *width, int *height);

#endif
