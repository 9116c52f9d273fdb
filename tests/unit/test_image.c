/* test_image.c: type sniffing and header-only dimensions on real and hand-made images. */
#include "base/base.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "media/image.h"
#include "media/vips.h"

struct bytes {
    unsigned char *p;
    size_t n;
};

static void bytes_free(struct bytes *b)
{
    g_free(b->p);
    b->p = NULL;
    b->n = 0;
}

/* A w x h test image with `bands` bands: a ramp, so encoders have something to code. */
static VipsImage *ramp(int w, int h, int bands)
{
    VipsImage *xyz = NULL, *sum = NULL, *u = NULL, *out = NULL;
    VipsImage *b[4];

    assert_int_equal(vips_xyz(&xyz, w, h, NULL), 0);
    assert_int_equal(vips_linear1(xyz, &sum, 1.0, 7.0, NULL), 0);
    assert_int_equal(vips_cast_uchar(sum, &u, NULL), 0);
    g_object_unref(xyz);
    g_object_unref(sum);
    /* two bands (x, y) -> take x for every band */
    for (int i = 0; i < bands; i++)
        assert_int_equal(vips_extract_band(u, &b[i], i % 2, NULL), 0);
    assert_int_equal(vips_bandjoin(b, &out, bands, NULL), 0);
    for (int i = 0; i < bands; i++)
        g_object_unref(b[i]);
    g_object_unref(u);
    assert_int_equal(vips_copy(out, &u, "interpretation", VIPS_INTERPRETATION_sRGB, NULL), 0);
    g_object_unref(out);
    return u;
}

enum fmt { F_PNG, F_JPEG, F_JPEG_PROG, F_WEBP, F_WEBP_LOSSLESS, F_WEBP_ALPHA, F_HEIF, F_AVIF };

/* libvips 8.14 always writes the extended format (VP8X, with an EXIF chunk even when
 * stripping): rebuild the simple format, RIFF + the one VP8/VP8L chunk, as other encoders
 * (cwebp) write it. */
static void simple_webp(void **buf, size_t *n)
{
    const unsigned char *p = *buf;
    size_t off = 12;

    while (*n - off >= 8) {
        uint32_t size = (uint32_t)p[off + 4] | (uint32_t)p[off + 5] << 8 |
                        (uint32_t)p[off + 6] << 16 | (uint32_t)p[off + 7] << 24;
        size_t whole = 8 + (size_t)size + (size & 1);

        assert_true(whole <= *n - off);
        if (memcmp(p + off, "VP8 ", 4) == 0 || memcmp(p + off, "VP8L", 4) == 0) {
            unsigned char *q = g_malloc(12 + whole);
            uint32_t riff = (uint32_t)(4 + whole);

            memcpy(q, "RIFF", 4);
            for (int i = 0; i < 4; i++)
                q[4 + i] = (unsigned char)(riff >> (8 * i));
            memcpy(q + 8, "WEBP", 4);
            memcpy(q + 12, p + off, whole);
            g_free(*buf);
            *buf = q;
            *n = 12 + whole;
            return;
        }
        off += whole;
    }
    fail_msg("no VP8/VP8L chunk");
}

/* Encode a ramp; false when the local libvips cannot write this format (heif/avif). */
static bool encode(enum fmt f, int w, int h, struct bytes *out)
{
    VipsImage *im = ramp(w, h, f == F_WEBP_ALPHA ? 4 : 3);
    void *buf = NULL;
    size_t n = 0;
    int rc = -1;

    switch (f) {
    case F_PNG:
        rc = vips_pngsave_buffer(im, &buf, &n, NULL);
        break;
    case F_JPEG:
        rc = vips_jpegsave_buffer(im, &buf, &n, NULL);
        break;
    case F_JPEG_PROG:
        rc = vips_jpegsave_buffer(im, &buf, &n, "interlace", TRUE, NULL);
        break;
    case F_WEBP_ALPHA:
        rc = vips_webpsave_buffer(im, &buf, &n, NULL);
        break;
    case F_WEBP:
        rc = vips_webpsave_buffer(im, &buf, &n, "strip", TRUE, NULL);
        if (!rc)
            simple_webp(&buf, &n);
        break;
    case F_WEBP_LOSSLESS:
        rc = vips_webpsave_buffer(im, &buf, &n, "lossless", TRUE, "strip", TRUE, NULL);
        if (!rc)
            simple_webp(&buf, &n);
        break;
    case F_HEIF:
        rc = vips_heifsave_buffer(im, &buf, &n, "compression", VIPS_FOREIGN_HEIF_COMPRESSION_HEVC,
                                  NULL);
        break;
    case F_AVIF:
        rc = vips_heifsave_buffer(im, &buf, &n, "compression", VIPS_FOREIGN_HEIF_COMPRESSION_AV1,
                                  NULL);
        break;
    }
    g_object_unref(im);
    if (rc) {
        char msg[256];

        ig_vips_error(msg, sizeof(msg));
        print_message("(encoder %d unavailable for %dx%d: %s)\n", (int)f, w, h, msg);
        return false;
    }
    {
        /* libheif can write a file without the image (x265 and a 3-pixel height): only a
         * file libvips reads back is a test case (this also checks simple_webp). */
        VipsImage *back = vips_image_new_from_buffer(buf, n, "", NULL);

        if (!back || back->Xsize != w || back->Ysize != h) {
            print_message("(encoder %d wrote no readable %dx%d image)\n", (int)f, w, h);
            assert_true(f == F_HEIF || f == F_AVIF);
            vips_error_clear();
            if (back)
                g_object_unref(back);
            g_free(buf);
            return false;
        }
        g_object_unref(back);
    }
    out->p = buf;
    out->n = n;
    return true;
}

/* Dimensions read from an exactly-sized heap copy, so ASan sees any read past the end. */
static enum ig_err dims_exact(const unsigned char *p, size_t n, enum ig_image_type *t, int *w,
                              int *h)
{
    unsigned char *copy = malloc(n ? n : 1);
    enum ig_err err;

    assert_non_null(copy);
    if (n)
        memcpy(copy, p, n);
    err = ig_image_dimensions(copy, n, t, w, h);
    free(copy);
    return err;
}

/* Sniff and dimensions of a real encoded image; false when it could not be made here. */
static bool check(enum fmt f, int w, int h, enum ig_image_type want)
{
    struct bytes b = {0};
    enum ig_image_type t = IG_IMG_UNKNOWN;
    int gw = 0, gh = 0;

    if (!encode(f, w, h, &b))
        return false;
    assert_int_equal(ig_image_sniff(b.p, b.n), want);
    assert_int_equal(dims_exact(b.p, b.n, &t, &gw, &gh), IG_OK);
    assert_int_equal(t, want);
    assert_int_equal(gw, w);
    assert_int_equal(gh, h);
    bytes_free(&b);
    return true;
}

static const int sizes[][2] = {{1, 1}, {1024, 768}, {7000, 3}};

static void test_image__png_sizes(void **state)
{
    for (size_t i = 0; i < IG_ARRAY_LEN(sizes); i++)
        assert_true(check(F_PNG, sizes[i][0], sizes[i][1], IG_IMG_PNG));
}

static void test_image__jpeg_sizes(void **state)
{
    for (size_t i = 0; i < IG_ARRAY_LEN(sizes); i++)
        assert_true(check(F_JPEG, sizes[i][0], sizes[i][1], IG_IMG_JPEG));
}

static void test_image__webp_sizes(void **state)
{
    for (size_t i = 0; i < IG_ARRAY_LEN(sizes); i++) {
        assert_true(check(F_WEBP, sizes[i][0], sizes[i][1], IG_IMG_WEBP));
        assert_true(check(F_WEBP_LOSSLESS, sizes[i][0], sizes[i][1], IG_IMG_WEBP));
        assert_true(check(F_WEBP_ALPHA, sizes[i][0], sizes[i][1], IG_IMG_WEBP));
    }
}

/* The three WebP bitstreams are each covered: VP8, VP8L and VP8X. */
static void test_image__webp_chunk_kinds(void **state)
{
    static const struct {
        enum fmt f;
        const char *chunk;
    } cases[] = {{F_WEBP, "VP8 "}, {F_WEBP_LOSSLESS, "VP8L"}, {F_WEBP_ALPHA, "VP8X"}};

    for (size_t i = 0; i < IG_ARRAY_LEN(cases); i++) {
        struct bytes b = {0};

        assert_true(encode(cases[i].f, 33, 17, &b));
        assert_memory_equal(b.p + 12, cases[i].chunk, 4);
        bytes_free(&b);
    }
}

/* HEIF and AVIF depend on the local libheif's encoders: sizes it cannot write are left
 * out (said on stdout), the test is skipped only when it can write none. */
static void bmff_sizes(enum fmt f, enum ig_image_type want)
{
    int made = 0;

    for (size_t i = 0; i < IG_ARRAY_LEN(sizes); i++)
        made += check(f, sizes[i][0], sizes[i][1], want);
    if (!made)
        skip();
}

static void test_image__heif_sizes(void **state)
{
    bmff_sizes(F_HEIF, IG_IMG_HEIF);
}

static void test_image__avif_sizes(void **state)
{
    bmff_sizes(F_AVIF, IG_IMG_AVIF);
}

static void test_image__progressive_jpeg(void **state)
{
    struct bytes b = {0};
    bool sof2 = false;
    int w = 0, h = 0;

    assert_true(encode(F_JPEG_PROG, 640, 480, &b));
    for (size_t i = 0; i + 1 < b.n; i++)
        if (b.p[i] == 0xff && b.p[i + 1] == 0xc2)
            sof2 = true;
    assert_true(sof2);
    assert_int_equal(dims_exact(b.p, b.n, NULL, &w, &h), IG_OK);
    assert_int_equal(w, 640);
    assert_int_equal(h, 480);
    bytes_free(&b);
}

/* An APP1 Exif segment before the frame, whose payload contains a fake SOF0 marker that a
 * byte scanner would take; and fill bytes before the next marker. */
static void test_image__jpeg_exif_before_sof(void **state)
{
    static const unsigned char app1[] = {0xff, 0xe1, 0x00, 0x16, 'E',  'x',  'i',  'f',
                                         0,    0,    'I',  'I',  0x2a, 0x00, 0xff, 0xc0,
                                         0x00, 0x11, 0x08, 0x00, 0x01, 0x00, 0x01, 0x03};
    struct bytes b = {0};
    unsigned char *p;
    size_t n;
    int w = 0, h = 0;

    assert_true(encode(F_JPEG, 300, 200, &b));
    n = b.n + sizeof(app1) + 3;
    p = malloc(n);
    assert_non_null(p);
    memcpy(p, b.p, 2);
    memcpy(p + 2, app1, sizeof(app1));
    memset(p + 2 + sizeof(app1), 0xff, 3); /* fill bytes */
    memcpy(p + 2 + sizeof(app1) + 3, b.p + 2, b.n - 2);
    assert_int_equal(ig_image_sniff(p, n), IG_IMG_JPEG);
    assert_int_equal(dims_exact(p, n, NULL, &w, &h), IG_OK);
    assert_int_equal(w, 300);
    assert_int_equal(h, 200);
    free(p);
    bytes_free(&b);
}

/* Standalone markers (RST, TEM) between segments have no length. */
static void test_image__jpeg_standalone_markers(void **state)
{
    static const unsigned char j[] = {0xff, 0xd8, 0xff, 0xd0, 0xff, 0x01, 0xff, 0xdb, 0x00, 0x04,
                                      0x00, 0x00, 0xff, 0xc4, 0x00, 0x02, 0xff, 0xc1, 0x00, 0x0b,
                                      0x08, 0x01, 0x2c, 0x02, 0x58, 0x01, 0x01, 0x11, 0x00};
    int w = 0, h = 0;

    assert_int_equal(dims_exact(j, sizeof(j), NULL, &w, &h), IG_OK);
    assert_int_equal(w, 600);
    assert_int_equal(h, 300);
}

static void test_image__jpeg_sos_before_sof(void **state)
{
    static const unsigned char j[] = {0xff, 0xd8, 0xff, 0xda, 0x00, 0x08, 1, 2, 3, 4, 5, 6};
    int w, h;

    assert_int_equal(dims_exact(j, sizeof(j), NULL, &w, &h), IG_E_INVALID);
}

static size_t png_header(unsigned char *p, uint32_t w, uint32_t h)
{
    static const unsigned char sig[] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a,
                                        0,    0,   0,   13,  'I',  'H',  'D',  'R'};
    size_t o = 0;

    memcpy(p, sig, sizeof(sig));
    o = sizeof(sig);
    for (int i = 3; i >= 0; i--)
        p[o++] = (unsigned char)(w >> (8 * i));
    for (int i = 3; i >= 0; i--)
        p[o++] = (unsigned char)(h >> (8 * i));
    memcpy(p + o, "\x08\x02\x00\x00\x00", 5); /* depth, colour type, ... */
    o += 5;
    memset(p + o, 0, 4); /* CRC, not checked */
    return o + 4;
}

/* A bomb's header reads fine: rejecting it is the caller's job, before any decoder. */
static void test_image__png_huge_declared(void **state)
{
    unsigned char p[64];
    size_t n = png_header(p, 100000, 100000);
    int w = 0, h = 0;

    assert_int_equal(dims_exact(p, n, NULL, &w, &h), IG_OK);
    assert_int_equal(w, 100000);
    assert_int_equal(h, 100000);
}

static void test_image__zero_size_invalid(void **state)
{
    unsigned char p[64];
    size_t n;
    int w, h;

    n = png_header(p, 0, 0);
    assert_int_equal(dims_exact(p, n, NULL, &w, &h), IG_E_INVALID);
    n = png_header(p, 10, 0);
    assert_int_equal(dims_exact(p, n, NULL, &w, &h), IG_E_INVALID);
    n = png_header(p, 0x80000000u, 1); /* beyond PNG's 31 bits */
    assert_int_equal(dims_exact(p, n, NULL, &w, &h), IG_E_INVALID);
}

static void test_image__png_ihdr_not_first(void **state)
{
    unsigned char p[64];
    size_t n = png_header(p, 10, 10);
    int w, h;

    memcpy(p + 12, "tEXt", 4);
    assert_int_equal(dims_exact(p, n, NULL, &w, &h), IG_E_INVALID);
    n = png_header(p, 10, 10);
    p[11] = 14;
    assert_int_equal(dims_exact(p, n, NULL, &w, &h), IG_E_INVALID);
}

static void webp_header(unsigned char *p, const char *chunk)
{
    memcpy(p, "RIFF\x40\x00\x00\x00WEBP", 12);
    memcpy(p + 12, chunk, 4);
    memcpy(p + 16, "\x20\x00\x00\x00", 4);
}

static void test_image__webp_vp8x_extremes(void **state)
{
    unsigned char p[40] = {0};
    int w = 0, h = 0;

    webp_header(p, "VP8X");
    memcpy(p + 24, "\xff\xff\xff\xff\xff\xff", 6); /* canvas 2^24 x 2^24 */
    assert_int_equal(dims_exact(p, sizeof(p), NULL, &w, &h), IG_OK);
    assert_int_equal(w, 1 << 24);
    assert_int_equal(h, 1 << 24);
    memset(p + 24, 0, 6); /* stored minus one: 1 x 1 */
    assert_int_equal(dims_exact(p, sizeof(p), NULL, &w, &h), IG_OK);
    assert_int_equal(w, 1);
    assert_int_equal(h, 1);
}

static void test_image__webp_vp8_bad_start_code(void **state)
{
    unsigned char p[40] = {0};
    int w, h;

    webp_header(p, "VP8 ");
    memcpy(p + 23, "\x9d\x01\x2b", 3);
    assert_int_equal(dims_exact(p, sizeof(p), NULL, &w, &h), IG_E_INVALID);
    webp_header(p, "ALPH"); /* no bitstream chunk first */
    assert_int_equal(dims_exact(p, sizeof(p), NULL, &w, &h), IG_E_INVALID);
}

/* Truncated at every length: never a read past the end (ASan), never a wrong success. */
static void truncate_all(enum fmt f, int w, int h)
{
    struct bytes b = {0};
    int ok = 0;

    if (!encode(f, w, h, &b))
        skip();
    for (size_t n = 0; n <= b.n; n++) {
        int gw = -1, gh = -1;
        enum ig_err err = dims_exact(b.p, n, NULL, &gw, &gh);

        assert_true(err == IG_OK || err == IG_E_INVALID);
        if (err == IG_OK) {
            assert_int_equal(gw, w);
            assert_int_equal(gh, h);
            ok++;
        }
    }
    assert_true(ok > 0);
    bytes_free(&b);
}

static void test_image__truncated_png(void **state)
{
    truncate_all(F_PNG, 37, 21);
}

static void test_image__truncated_jpeg(void **state)
{
    truncate_all(F_JPEG, 37, 21);
    truncate_all(F_JPEG_PROG, 37, 21);
}

static void test_image__truncated_webp(void **state)
{
    truncate_all(F_WEBP, 37, 21);
    truncate_all(F_WEBP_LOSSLESS, 37, 21);
    truncate_all(F_WEBP_ALPHA, 37, 21);
}

static void test_image__truncated_heif(void **state)
{
    truncate_all(F_HEIF, 37, 21);
}

/* Every single-byte corruption of a small image: any answer, but no out-of-bounds read. */
static void test_image__corrupted_bytes(void **state)
{
    static const enum fmt fmts[] = {F_PNG, F_JPEG, F_WEBP, F_WEBP_LOSSLESS, F_HEIF};

    for (size_t k = 0; k < IG_ARRAY_LEN(fmts); k++) {
        struct bytes b = {0};

        if (!encode(fmts[k], 9, 7, &b))
            continue;
        for (size_t i = 0; i < b.n && i < 1024; i++) {
            static const unsigned char vals[] = {0x00, 0xff, 0x01, 0x80};

            for (size_t v = 0; v < IG_ARRAY_LEN(vals); v++) {
                unsigned char keep = b.p[i];
                int w, h;

                b.p[i] = vals[v];
                (void)dims_exact(b.p, b.n, NULL, &w, &h);
                b.p[i] = keep;
            }
        }
        bytes_free(&b);
    }
}

static void test_image__unknown_types(void **state)
{
    static const struct {
        const char *s;
        size_t n;
    } cases[] = {
        {"GIF87a\x01\x00\x01\x00\x00\x00\x00", 13},
        {"GIF89a\x01\x00\x01\x00\x00\x00\x00", 13},
        {"%PDF-1.7\n", 9},
        {"<svg xmlns=\"http://www.w3.org/2000/svg\"/>", 41},
        {"<?xml version=\"1.0\"?><svg/>", 27},
        {"<html><body></body></html>", 26},
        {"II*\0\x08\0\0\0", 8},
        {"MM\0*\0\0\0\x08", 8},
        {"BM\x3a\0\0\0", 6},
        {"\x89PNG\r\n\x1a", 7},                     /* PNG signature cut short */
        {"\xff\xd8", 2},                            /* JPEG SOI alone */
        {"RIFF\0\0\0\0WAVE", 12},                   /* RIFF but not WebP */
        {"\0\0\0\030ftypmp42\0\0\0\0mp42isom", 24}, /* an MP4 */
        {"", 0},
    };

    for (size_t i = 0; i < IG_ARRAY_LEN(cases); i++) {
        int w, h;

        assert_int_equal(ig_image_sniff((const unsigned char *)cases[i].s, cases[i].n),
                         IG_IMG_UNKNOWN);
        assert_int_equal(dims_exact((const unsigned char *)cases[i].s, cases[i].n, NULL, &w, &h),
                         IG_E_INVALID);
    }
    assert_int_equal(ig_image_sniff(NULL, 0), IG_IMG_UNKNOWN);
}

static void test_image__mime_and_ext(void **state)
{
    assert_string_equal(ig_image_mime(IG_IMG_PNG), "image/png");
    assert_string_equal(ig_image_mime(IG_IMG_JPEG), "image/jpeg");
    assert_string_equal(ig_image_mime(IG_IMG_WEBP), "image/webp");
    assert_string_equal(ig_image_mime(IG_IMG_HEIF), "image/heif");
    assert_string_equal(ig_image_mime(IG_IMG_AVIF), "image/avif");
    assert_null(ig_image_mime(IG_IMG_UNKNOWN));
    assert_string_equal(ig_image_ext(IG_IMG_PNG), "png");
    assert_string_equal(ig_image_ext(IG_IMG_JPEG), "jpeg");
    assert_string_equal(ig_image_ext(IG_IMG_WEBP), "webp");
    assert_string_equal(ig_image_ext(IG_IMG_HEIF), "heif");
    assert_string_equal(ig_image_ext(IG_IMG_AVIF), "avif");
    assert_null(ig_image_ext(IG_IMG_UNKNOWN));
}

/* Hand-made ISO BMFF files. */
struct bmff {
    unsigned char p[512];
    size_t n;
};

static void put32(struct bmff *b, uint32_t v)
{
    for (int i = 3; i >= 0; i--)
        b->p[b->n++] = (unsigned char)(v >> (8 * i));
}

static void put16(struct bmff *b, uint32_t v)
{
    b->p[b->n++] = (unsigned char)(v >> 8);
    b->p[b->n++] = (unsigned char)v;
}

static void putb(struct bmff *b, const void *s, size_t n)
{
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

/* Open a box; box_end() patches its 32-bit size. */
static size_t box_begin(struct bmff *b, const char *type)
{
    size_t at = b->n;

    put32(b, 0);
    putb(b, type, 4);
    return at;
}

static void box_end(struct bmff *b, size_t at)
{
    size_t size = b->n - at;

    for (int i = 0; i < 4; i++)
        b->p[at + (size_t)i] = (unsigned char)(size >> (8 * (3 - i)));
}

static void ftyp(struct bmff *b, const char *major, const char *compat)
{
    size_t at = box_begin(b, "ftyp");

    putb(b, major, 4);
    put32(b, 0);
    putb(b, compat, strlen(compat));
    box_end(b, at);
}

static void ispe(struct bmff *b, uint32_t w, uint32_t h)
{
    size_t at = box_begin(b, "ispe");

    put32(b, 0);
    put32(b, w);
    put32(b, h);
    box_end(b, at);
}

/* meta { hdlr, [pitm primary], iprp { ipco { ispe 64x64, ispe 4032x3024 },
 * ipma item 1 -> prop 1, item 2 -> prop 2 } } */
static void heic(struct bmff *b, bool with_pitm, uint32_t primary, bool large_meta)
{
    size_t meta, at, iprp;

    memset(b, 0, sizeof(*b));
    ftyp(b, "heic", "mif1heic");
    meta = b->n;
    if (large_meta) {
        put32(b, 1);
        putb(b, "meta", 4);
        put32(b, 0);
        put32(b, 0); /* 64-bit size, patched below */
    } else {
        box_begin(b, "meta");
    }
    put32(b, 0); /* version, flags */
    at = box_begin(b, "hdlr");
    put32(b, 0);
    put32(b, 0);
    putb(b, "pict", 4);
    put32(b, 0);
    put32(b, 0);
    put32(b, 0);
    b->p[b->n++] = 0;
    box_end(b, at);
    if (with_pitm) {
        at = box_begin(b, "pitm");
        put32(b, 0);
        put16(b, primary);
        box_end(b, at);
    }
    iprp = box_begin(b, "iprp");
    at = box_begin(b, "ipco");
    ispe(b, 64, 64);
    ispe(b, 4032, 3024);
    box_end(b, at);
    at = box_begin(b, "ipma");
    put32(b, 0); /* version 0, flags 0: 16-bit item ids, 8-bit associations */
    put32(b, 2);
    put16(b, 1);
    b->p[b->n++] = 1;
    b->p[b->n++] = 0x81; /* essential, property 1 */
    put16(b, 2);
    b->p[b->n++] = 1;
    b->p[b->n++] = 0x02; /* property 2 */
    box_end(b, at);
    box_end(b, iprp);
    if (large_meta) {
        size_t size = b->n - meta;

        b->p[meta + 12] = (unsigned char)(size >> 24);
        b->p[meta + 13] = (unsigned char)(size >> 16);
        b->p[meta + 14] = (unsigned char)(size >> 8);
        b->p[meta + 15] = (unsigned char)size;
    } else {
        box_end(b, meta);
    }
    /* mdat to the end of the file (size 0) */
    put32(b, 0);
    putb(b, "mdat", 4);
    put32(b, 0xdeadbeef);
}

static void test_image__heif_primary_item(void **state)
{
    struct bmff b;
    int w = 0, h = 0;
    enum ig_image_type t;

    heic(&b, true, 2, false);
    assert_int_equal(dims_exact(b.p, b.n, &t, &w, &h), IG_OK);
    assert_int_equal(t, IG_IMG_HEIF);
    assert_int_equal(w, 4032);
    assert_int_equal(h, 3024);
    heic(&b, true, 1, false);
    assert_int_equal(dims_exact(b.p, b.n, &t, &w, &h), IG_OK);
    assert_int_equal(w, 64);
    heic(&b, false, 0, false); /* no pitm: the first ispe */
    assert_int_equal(dims_exact(b.p, b.n, &t, &w, &h), IG_OK);
    assert_int_equal(w, 64);
    assert_int_equal(h, 64);
}

static void test_image__heif_large_box_size(void **state)
{
    struct bmff b;
    int w = 0, h = 0;

    heic(&b, true, 2, true);
    assert_int_equal(dims_exact(b.p, b.n, NULL, &w, &h), IG_OK);
    assert_int_equal(w, 4032);
    assert_int_equal(h, 3024);
    for (size_t n = 0; n < b.n; n++)
        (void)dims_exact(b.p, n, NULL, &w, &h);
}

static void test_image__heif_zero_ispe(void **state)
{
    struct bmff b;
    size_t at;
    int w, h;

    memset(&b, 0, sizeof(b));
    ftyp(&b, "heic", "mif1");
    at = box_begin(&b, "meta");
    put32(&b, 0);
    {
        size_t iprp = box_begin(&b, "iprp"), ipco = box_begin(&b, "ipco");

        ispe(&b, 0, 0);
        box_end(&b, ipco);
        box_end(&b, iprp);
    }
    box_end(&b, at);
    assert_int_equal(dims_exact(b.p, b.n, NULL, &w, &h), IG_E_INVALID);
}

/* AVIF brands win over HEIF ones, wherever they appear. */
static void test_image__bmff_brands(void **state)
{
    static const struct {
        const char *major, *compat;
        enum ig_image_type want;
    } cases[] = {
        {"avif", "mif1miaf", IG_IMG_AVIF}, {"mif1", "miafavif", IG_IMG_AVIF},
        {"avis", "msf1", IG_IMG_AVIF},     {"heic", "mif1heic", IG_IMG_HEIF},
        {"mif1", "heic", IG_IMG_HEIF},     {"heix", "", IG_IMG_HEIF},
        {"msf1", "hevc", IG_IMG_HEIF},     {"isom", "mp41", IG_IMG_UNKNOWN},
        {"crx ", "isom", IG_IMG_UNKNOWN},
    };

    for (size_t i = 0; i < IG_ARRAY_LEN(cases); i++) {
        struct bmff b;

        memset(&b, 0, sizeof(b));
        ftyp(&b, cases[i].major, cases[i].compat);
        assert_int_equal(ig_image_sniff(b.p, b.n), cases[i].want);
    }
}

/* ig_vips_encode: each format comes back as itself, at the same size. */
static void test_image__encode_formats(void **state)
{
    static const struct {
        const char *format;
        int quality, bands;
        enum ig_image_type want;
    } cases[] = {
        {"png", 0, 3, IG_IMG_PNG},    {"png", 0, 4, IG_IMG_PNG},   {"jpeg", 0, 3, IG_IMG_JPEG},
        {"jpeg", 40, 4, IG_IMG_JPEG}, {"webp", 0, 3, IG_IMG_WEBP}, {"webp", 90, 4, IG_IMG_WEBP},
    };
    unsigned char *out = NULL;
    size_t len = 0;

    for (size_t i = 0; i < IG_ARRAY_LEN(cases); i++) {
        VipsImage *im = ramp(301, 97, cases[i].bands), *back;
        enum ig_image_type t;
        int w = 0, h = 0;

        assert_int_equal(ig_vips_encode(im, cases[i].format, cases[i].quality, &out, &len), IG_OK);
        assert_int_equal(ig_image_dimensions(out, len, &t, &w, &h), IG_OK);
        assert_int_equal(t, cases[i].want);
        assert_int_equal(w, 301);
        assert_int_equal(h, 97);
        back = vips_image_new_from_buffer(out, len, "", NULL);
        assert_non_null(back);
        if (cases[i].want == IG_IMG_JPEG)
            assert_int_equal(back->Bands, 3);
        g_object_unref(back);
        free(out);
        out = NULL;
        g_object_unref(im);
    }
    {
        VipsImage *im = ramp(8, 8, 3);

        assert_int_equal(ig_vips_encode(im, "gif", 0, &out, &len), IG_E_INVALID);
        assert_int_equal(ig_vips_encode(im, "jpeg", 101, &out, &len), IG_E_INVALID);
        assert_null(out);
        g_object_unref(im);
    }
}

/* After ig_vips_init libvips refuses its untrusted loaders (here SVG through librsvg). */
static void test_image__untrusted_loaders_blocked(void **state)
{
    static const char svg[] = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"9\" "
                              "height=\"9\"><rect width=\"9\" height=\"9\"/></svg>";
    VipsImage *im = vips_image_new_from_buffer(svg, sizeof(svg) - 1, "", NULL);

    assert_null(im);
    vips_error_clear();
}

static int setup(void **state)
{
    return ig_vips_init() == IG_OK ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_image__png_sizes),
        cmocka_unit_test(test_image__jpeg_sizes),
        cmocka_unit_test(test_image__webp_sizes),
        cmocka_unit_test(test_image__webp_chunk_kinds),
        cmocka_unit_test(test_image__heif_sizes),
        cmocka_unit_test(test_image__avif_sizes),
        cmocka_unit_test(test_image__progressive_jpeg),
        cmocka_unit_test(test_image__jpeg_exif_before_sof),
        cmocka_unit_test(test_image__jpeg_standalone_markers),
        cmocka_unit_test(test_image__jpeg_sos_before_sof),
        cmocka_unit_test(test_image__png_huge_declared),
        cmocka_unit_test(test_image__zero_size_invalid),
        cmocka_unit_test(test_image__png_ihdr_not_first),
        cmocka_unit_test(test_image__webp_vp8x_extremes),
        cmocka_unit_test(test_image__webp_vp8_bad_start_code),
        cmocka_unit_test(test_image__truncated_png),
        cmocka_unit_test(test_image__truncated_jpeg),
        cmocka_unit_test(test_image__truncated_webp),
        cmocka_unit_test(test_image__truncated_heif),
        cmocka_unit_test(test_image__corrupted_bytes),
        cmocka_unit_test(test_image__unknown_types),
        cmocka_unit_test(test_image__mime_and_ext),
        cmocka_unit_test(test_image__heif_primary_item),
        cmocka_unit_test(test_image__heif_large_box_size),
        cmocka_unit_test(test_image__heif_zero_ispe),
        cmocka_unit_test(test_image__bmff_brands),
        cmocka_unit_test(test_image__encode_formats),
        cmocka_unit_test(test_image__untrusted_loaders_blocked),
    };
    int rc = cmocka_run_group_tests(tests, setup, NULL);

    ig_vips_shutdown();
    return rc;
}
