/* money.h: amounts of US dollars as integer micro-dollars, written as decimals ("5.00",
 * "-2.50", at most six decimals) on the CLI and in the admin API; never floating point. */
#ifndef IG_MONEY_H
#define IG_MONEY_H

#include "base/base.h"

/* "5.00" -> 5000000; a leading '-' when negative is allowed; at most 10^9 dollars. Nothing
 * is written to *out on failure. */
bool ig_usd_parse(const char *s, bool allow_negative, int64_t *out);
/* 5000000 -> "5.000000" (out has at least 32 bytes). */
void ig_usd_format(int64_t micro, char *out, size_t n);

#endif
