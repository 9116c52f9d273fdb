/* utf8.h: UTF-8 validation and character counting (limits count characters, not bytes). */
#ifndef IG_UTF8_H
#define IG_UTF8_H

#include <stddef.h>

/* Number of code points in s[0..n), or -1 when s is not valid UTF-8 (overlongs, surrogates
 * and code points above U+10FFFF are invalid). */
long ig_utf8_count(const char *s, size_t n);

#endif
