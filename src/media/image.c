/* image.c: image type by signature and dimensions from the header, without decoding.
 *
 * Every function here parses hostile bytes: each read is checked against n first, offsets
 * are compared by subtraction so nothing can overflow, and nothing is allocated. */
#include "base/base.h"

#include <limits.h>
#include <string.h>

#include "media/image.h"

static uint32_t be16(const unsigned char *p)
{
    return (uint32_t)p[0] << 8 | p[1];
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const unsigned char *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

static uint32_t le16(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t le24(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
}

static uint32_t le32(const unsigned char *p)
{
    return le24(p) | (uint32_t)p[3] << 24;
}

/* ISO BMFF (HEIF/AVIF) box: [start, end) is the whole box, body the first byte after the
 * header. */
struct box {
    char type[4];
    size_t start, body, end;
};

/* Read the box at off inside [off, lim). A size of 0 means "to the end of the parent";
 * size 1 means a 64-bit size follows the type. False when the header is cut short or the
 * box claims to be smaller than its header or to extend past lim. */
static bool box_read(const unsigned char *p, size_t off, size_t lim, struct box *b)
{
    uint64_t size;
    size_t hdr = 8;

    if (lim - off < 8)
        return false;
    size = be32(p + off);
    memcpy(b->type, p + off + 4, 4);
    if (size == 1) {
        if (lim - off < 16)
            return false;
        size = be64(p + off + 8);
        hdr = 16;
    } else if (size == 0) {
        size = lim - off;
    }
    if (size < hdr || size > lim - off)
        return false;
    b->start = off;
    b->body = off + hdr;
    b->end = off + (size_t)size;
    return true;
}

static bool box_is(const struct box *b, const char *type)
{
    return memcmp(b->type, type, 4) == 0;
}

/* Find the first child of the given type among the boxes in [off, lim). */
static bool box_find(const unsigned char *p, size_t off, size_t lim, const char *type,
                     struct box *out)
{
    struct box b;

    while (off < lim) {
        if (!box_read(p, off, lim, &b))
            return false;
        if (box_is(&b, type)) {
            *out = b;
            return true;
        }
        off = b.end;
    }
    return false;
}

static bool brand_in(const unsigned char *brand, const char *const *list, size_t nlist)
{
    for (size_t i = 0; i < nlist; i++)
        if (memcmp(brand, list[i], 4) == 0)
            return true;
    return false;
}

/* Does the ftyp box (major brand or any compatible brand) name one of the brands? */
static bool ftyp_has(const unsigned char *p, const struct box *ftyp, const char *const *list,
                     size_t nlist)
{
    size_t off = ftyp->body;

    if (ftyp->end - off < 8)
        return false;
    if (brand_in(p + off, list, nlist))
        return true;
    /* major brand (4), minor version (4), then compatible brands */
    for (off += 8; ftyp->end - off >= 4; off += 4)
        if (brand_in(p + off, list, nlist))
            return true;
    return false;
}

static enum ig_image_type sniff_bmff(const unsigned char *p, size_t n)
{
    static const char *const avif[] = {"avif", "avis"};
    static const char *const heif[] = {"heic", "heix", "hevc", "hevx",
                                       "heim", "heis", "mif1", "msf1"};
    struct box ftyp;

    if (n < 12 || memcmp(p + 4, "ftyp", 4) != 0)
        return IG_IMG_UNKNOWN;
    /* A file cut inside ftyp still sniffs by what is there. */
    if (!box_read(p, 0, n, &ftyp)) {
        uint32_t size = be32(p);

        if (size < 16 || size == 1)
            return IG_IMG_UNKNOWN;
        ftyp.start = 0;
        ftyp.body = 8;
        ftyp.end = n;
    }
    if (ftyp_has(p, &ftyp, avif, IG_ARRAY_LEN(avif)))
        return IG_IMG_AVIF;
    if (ftyp_has(p, &ftyp, heif, IG_ARRAY_LEN(heif)))
        return IG_IMG_HEIF;
    return IG_IMG_UNKNOWN;
}

enum ig_image_type ig_image_sniff(const unsigned char *p, size_t n)
{
    static const unsigned char png[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};

    if (!p)
        return IG_IMG_UNKNOWN;
    if (n >= 8 && memcmp(p, png, 8) == 0)
        return IG_IMG_PNG;
    if (n >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff)
        return IG_IMG_JPEG;
    if (n >= 12 && memcmp(p, "RIFF", 4) == 0 && memcmp(p + 8, "WEBP", 4) == 0)
        return IG_IMG_WEBP;
    return sniff_bmff(p, n);
}

const char *ig_image_mime(enum ig_image_type t)
{
    switch (t) {
    case IG_IMG_PNG:
        return "image/png";
    case IG_IMG_JPEG:
        return "image/jpeg";
    case IG_IMG_WEBP:
        return "image/webp";
    case IG_IMG_HEIF:
        return "image/heif";
    case IG_IMG_AVIF:
        return "image/avif";
    case IG_IMG_UNKNOWN:
        break;
    }
    return NULL;
}

const char *ig_image_ext(enum ig_image_type t)
{
    switch (t) {
    case IG_IMG_PNG:
        return "png";
    case IG_IMG_JPEG:
        return "jpeg";
    case IG_IMG_WEBP:
        return "webp";
    case IG_IMG_HEIF:
        return "heif";
    case IG_IMG_AVIF:
        return "avif";
    case IG_IMG_UNKNOWN:
        break;
    }
    return NULL;
}

/* PNG: the IHDR chunk must come first and be 13 bytes long; width and height are 31-bit. */
static enum ig_err png_dims(const unsigned char *p, size_t n, uint32_t *w, uint32_t *h)
{
    if (n < 8 + 8 + 13 || be32(p + 8) != 13 || memcmp(p + 12, "IHDR", 4) != 0)
        return IG_E_INVALID;
    *w = be32(p + 16);
    *h = be32(p + 20);
    return IG_OK;
}

static bool jpeg_is_sof(unsigned m)
{
    return m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc;
}

/* JPEG: walk the marker segments after SOI to the first start-of-frame. */
static enum ig_err jpeg_dims(const unsigned char *p, size_t n, uint32_t *w, uint32_t *h)
{
    size_t i = 2;

    for (;;) {
        unsigned m;
        size_t len;

        /* Like libjpeg, skip stray bytes up to the next marker, then any fill bytes. */
        while (i < n && p[i] != 0xff)
            i++;
        while (i < n && p[i] == 0xff)
            i++;
        if (i >= n)
            return IG_E_INVALID;
        m = p[i++];
        if (m == 0x01 || (m >= 0xd0 && m <= 0xd8))
            continue; /* TEM, RST0-7, SOI: no length */
        if (m == 0x00 || m == 0xd9 || m == 0xda)
            return IG_E_INVALID; /* stuffed zero, EOI or scan data before any frame */
        if (n - i < 2)
            return IG_E_INVALID;
        len = be16(p + i);
        if (len < 2 || len > n - i)
            return IG_E_INVALID;
        if (jpeg_is_sof(m)) {
            /* length(2) precision(1) height(2) width(2) */
            if (len < 7)
                return IG_E_INVALID;
            *h = be16(p + i + 3);
            *w = be16(p + i + 5);
            return IG_OK;
        }
        i += len;
    }
}

/* WebP: RIFF header, then the first chunk says which bitstream follows. */
static enum ig_err webp_dims(const unsigned char *p, size_t n, uint32_t *w, uint32_t *h)
{
    const unsigned char *d = p + 20; /* chunk payload */

    if (n < 20)
        return IG_E_INVALID;
    if (memcmp(p + 12, "VP8 ", 4) == 0) {
        /* frame tag (3 bytes, bit 0 clear on a key frame), start code, 14-bit sizes */
        if (n < 30 || (d[0] & 1) || d[3] != 0x9d || d[4] != 0x01 || d[5] != 0x2a)
            return IG_E_INVALID;
        *w = le16(d + 6) & 0x3fff;
        *h = le16(d + 8) & 0x3fff;
        return IG_OK;
    }
    if (memcmp(p + 12, "VP8L", 4) == 0) {
        uint32_t v;

        if (n < 25 || d[0] != 0x2f)
            return IG_E_INVALID;
        v = le32(d + 1);
        *w = (v & 0x3fff) + 1;
        *h = ((v >> 14) & 0x3fff) + 1;
        return IG_OK;
    }
    if (memcmp(p + 12, "VP8X", 4) == 0) {
        /* flags(1) reserved(3) canvas width-1 (24) canvas height-1 (24) */
        if (n < 30)
            return IG_E_INVALID;
        *w = le24(d + 4) + 1;
        *h = le24(d + 7) + 1;
        return IG_OK;
    }
    return IG_E_INVALID;
}

/* Width and height of an 'ispe' property box (a full box). */
static bool ispe_read(const unsigned char *p, const struct box *b, uint32_t *w, uint32_t *h)
{
    if (b->end - b->body < 12)
        return false;
    *w = be32(p + b->body + 4);
    *h = be32(p + b->body + 8);
    return true;
}

/* The primary item's id from 'pitm' (full box: 16-bit id in version 0, else 32-bit). */
static bool pitm_read(const unsigned char *p, const struct box *b, uint32_t *id)
{
    size_t avail = b->end - b->body;

    if (avail < 6)
        return false;
    if (p[b->body] == 0) {
        *id = be16(p + b->body + 4);
        return true;
    }
    if (avail < 8)
        return false;
    *id = be32(p + b->body + 4);
    return true;
}

/* The 1-based indexes into 'ipco' of the properties associated with item `id` in 'ipma'.
 * Returns how many were written to idx (at most max), or -1 when the box is damaged. */
static int ipma_props(const unsigned char *p, const struct box *b, uint32_t id, uint32_t *idx,
                      int max)
{
    size_t off = b->body, end = b->end;
    unsigned version, flags;
    uint32_t count;

    if (end - off < 8)
        return -1;
    version = p[off];
    flags = p[off + 3];
    count = be32(p + off + 4);
    off += 8;
    for (uint32_t e = 0; e < count; e++) {
        size_t idlen = version < 1 ? 2 : 4, alen = (flags & 1) ? 2 : 1;
        uint32_t item;
        unsigned nassoc;

        if (end - off < idlen + 1)
            return -1;
        item = idlen == 2 ? be16(p + off) : be32(p + off);
        nassoc = p[off + idlen];
        off += idlen + 1;
        if ((end - off) / alen < nassoc)
            return -1;
        if (item == id) {
            int k = 0;

            for (unsigned a = 0; a < nassoc && k < max; a++) {
                const unsigned char *q = p + off + a * alen;

                idx[k++] = alen == 2 ? be16(q) & 0x7fff : q[0] & 0x7fu;
            }
            return k;
        }
        off += nassoc * alen;
    }
    return 0;
}

/* The ipco child with 1-based index idx. */
static bool ipco_nth(const unsigned char *p, const struct box *ipco, uint32_t idx, struct box *out)
{
    size_t off = ipco->body;

    for (uint32_t i = 1; off < ipco->end; i++) {
        if (!box_read(p, off, ipco->end, out))
            return false;
        if (i == idx)
            return true;
        off = out->end;
    }
    return false;
}

/* HEIF/AVIF: meta -> iprp -> ipco holds the 'ispe' (image spatial extents) properties. The
 * one associated (ipma) with the primary item (pitm) gives the size; files without those
 * boxes fall back to the first ispe. The size is the coded one, before any 'irot'. */
static enum ig_err bmff_dims(const unsigned char *p, size_t n, uint32_t *w, uint32_t *h)
{
    struct box meta, iprp, ipco, ipma, pitm, ispe;
    size_t mbody;
    uint32_t primary, idx[32];
    int k;

    if (!box_find(p, 0, n, "meta", &meta) || meta.end - meta.body < 4)
        return IG_E_INVALID;
    mbody = meta.body + 4; /* version and flags */
    if (!box_find(p, mbody, meta.end, "iprp", &iprp) ||
        !box_find(p, iprp.body, iprp.end, "ipco", &ipco))
        return IG_E_INVALID;
    if (box_find(p, mbody, meta.end, "pitm", &pitm) && pitm_read(p, &pitm, &primary) &&
        box_find(p, iprp.body, iprp.end, "ipma", &ipma)) {
        k = ipma_props(p, &ipma, primary, idx, (int)IG_ARRAY_LEN(idx));
        if (k < 0)
            return IG_E_INVALID;
        for (int i = 0; i < k; i++) {
            if (ipco_nth(p, &ipco, idx[i], &ispe) && box_is(&ispe, "ispe"))
                return ispe_read(p, &ispe, w, h) ? IG_OK : IG_E_INVALID;
        }
    }
    if (!box_find(p, ipco.body, ipco.end, "ispe", &ispe) || !ispe_read(p, &ispe, w, h))
        return IG_E_INVALID;
    return IG_OK;
}

enum ig_err ig_image_dimensions(const unsigned char *p, size_t n, enum ig_image_type *type,
                                int *width, int *height)
{
    enum ig_image_type t = ig_image_sniff(p, n);
    uint32_t w = 0, h = 0;
    enum ig_err err;

    switch (t) {
    case IG_IMG_PNG:
        err = png_dims(p, n, &w, &h);
        break;
    case IG_IMG_JPEG:
        err = jpeg_dims(p, n, &w, &h);
        break;
    case IG_IMG_WEBP:
        err = webp_dims(p, n, &w, &h);
        break;
    case IG_IMG_HEIF:
    case IG_IMG_AVIF:
        err = bmff_dims(p, n, &w, &h);
        break;
    default:
        err = IG_E_INVALID;
        break;
    }
    if (err)
        return err;
    if (w == 0 || h == 0 || w > INT_MAX || h > INT_MAX)
        return IG_E_INVALID;
    if (type)
        *type = t;
    *width = (int)w;
    *height = (int)h;
    return IG_OK;
}
