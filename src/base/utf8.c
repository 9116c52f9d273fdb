/* utf8.c: strict UTF-8 decoding (RFC 3629). */
#include "base/base.h"

long ig_utf8_count(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    long count = 0;
    size_t i = 0;

    while (i < n) {
        unsigned c = s[i];
        unsigned cp;
        int len;

        if (c < 0x80) {
            i++;
            count++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return -1;
        }
        if (i + (size_t)len > n)
            return -1;
        for (int k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return -1;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return -1;
        i += (size_t)len;
        count++;
    }
    return count;
}
