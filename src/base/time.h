/* time.h: wall and monotonic clocks in milliseconds.
 *
 * ig_now_ms() is the wall clock every stored time uses. Tests move it with
 * ig_time_set_offset_ms() (or the IMAGEGATE_CLOCK_OFFSET_MS environment variable read at
 * start) to exercise expiry without waiting. */
#ifndef IG_TIME_H
#define IG_TIME_H

#include <stddef.h>
#include <stdint.h>

int64_t ig_now_ms(void);
int64_t ig_mono_ms(void);
void ig_time_set_offset_ms(int64_t off);
/* "2026-02-25T12:00:00Z" into out (at least 25 bytes). */
void ig_time_iso8601(int64_t ms, char *out, size_t outlen);

#endif
