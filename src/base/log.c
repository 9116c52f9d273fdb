/* log.c: timestamped single-line logging; control characters from inputs are escaped so a
 * client cannot forge log lines. */
#include "base/base.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int ig_log_level_cur = IG_LOG_INFO;

static const char *const lvlname[] = {"debug", "info", "warn", "error"};

void ig_log_set_level(enum ig_log_level lvl)
{
    ig_log_level_cur = (int)lvl;
}

int ig_log_level_parse(const char *s)
{
    static const char *const all[] = {"debug", "info", "warn", "error", "off"};
    for (int i = 0; i < 5; i++)
        if (strcmp(s, all[i]) == 0)
            return i;
    return -1;
}

void ig_log_write(enum ig_log_level lvl, const char *fmt, ...)
{
    char line[2048], out[4096 + 64];
    va_list ap;
    struct timespec ts;
    struct tm tm;
    size_t o = 0;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    o = strftime(out, sizeof(out), "%Y-%m-%dT%H:%M:%S", &tm);
    o += (size_t)snprintf(out + o, sizeof(out) - o, ".%03ldZ %s ", ts.tv_nsec / 1000000,
                          lvlname[lvl < IG_LOG_OFF ? lvl : IG_LOG_ERROR]);
    for (const unsigned char *p = (const unsigned char *)line; *p && o < sizeof(out) - 8; p++) {
        if (*p < 0x20 || *p == 0x7f)
            o += (size_t)snprintf(out + o, sizeof(out) - o, "\\x%02x", *p);
        else
            out[o++] = (char)*p;
    }
    out[o++] = '\n';
    fwrite(out, 1, o, stderr);
}
