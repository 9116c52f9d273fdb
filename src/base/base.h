/* base.h: the base layer every imagegate file includes first. */
#ifndef IG_BASE_H
#define IG_BASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/err.h"
#include "base/hash.h"
#include "base/id.h"
#include "base/log.h"
#include "base/money.h"
#include "base/mailbox.h"
#include "base/pool.h"
#include "base/time.h"
#include "base/utf8.h"

#include "base/banned.h"

#define IG_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* static unless built for unit tests, which reach the helper directly (curl's UNITTEST). */
#ifdef IG_UNITTEST
#define IG_STATIC
#else
#define IG_STATIC static
#endif

#endif
