/* money.c: see money.h. */
#include "base/base.h"
#include "base/money.h"

#include <stdio.h>

bool ig_usd_parse(const char *s, bool allow_negative, int64_t *out)
{
    int64_t whole = 0, frac = 0;
    bool neg = false;
    int nf = 0, nw = 0;

    if (allow_negative && *s == '-') {
        neg = true;
        s++;
    }
    for (; *s >= '0' && *s <= '9'; s++, nw++) {
        whole = whole * 10 + (*s - '0');
        if (whole > 1000000000)
            return false;
    }
    if (!nw) /* "5", "5.25", never ".25" */
        return false;
    if (*s == '.') {
        for (s++; *s >= '0' && *s <= '9'; s++) {
            if (++nf > 6)
                return false;
            frac = frac * 10 + (*s - '0');
        }
        if (!nf)
            return false;
    }
    if (*s)
        return false;
    while (nf++ < 6)
        frac *= 10;
    *out = (whole * 1000000 + frac) * (neg ? -1 : 1);
    return true;
}

void ig_usd_format(int64_t micro, char *out, size_t n)
{
    uint64_t a = micro < 0 ? (uint64_t)0 - (uint64_t)micro : (uint64_t)micro;

    snprintf(out, n, "%s%llu.%06llu", micro < 0 ? "-" : "", (unsigned long long)(a / 1000000),
             (unsigned long long)(a % 1000000));
}
