/* log.h: one-line structured logs to stderr (redis serverLog, curl infof).
 *
 * The level is tested before formatting. Messages start with the module ("store: ..."),
 * lower case, no trailing full stop. Never pass a key, an Authorization header or base64
 * image data: ig_log_redact() exists for the rare caller that must show a secret's shape. */
#ifndef IG_LOG_H
#define IG_LOG_H

enum ig_log_level { IG_LOG_DEBUG = 0, IG_LOG_INFO, IG_LOG_WARN, IG_LOG_ERROR, IG_LOG_OFF };

extern int ig_log_level_cur;

#define ig_log(lvl, ...)                                                                           \
    do {                                                                                           \
        if ((lvl) >= ig_log_level_cur)                                                             \
            ig_log_write((lvl), __VA_ARGS__);                                                      \
    } while (0)
#define ig_debug(...) ig_log(IG_LOG_DEBUG, __VA_ARGS__)
#define ig_info(...) ig_log(IG_LOG_INFO, __VA_ARGS__)
#define ig_warn(...) ig_log(IG_LOG_WARN, __VA_ARGS__)
#define ig_error(...) ig_log(IG_LOG_ERROR, __VA_ARGS__)

void ig_log_write(enum ig_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "debug", "info", "warn", "error", "off"; returns -1 when unknown. */
int ig_log_level_parse(const char *s);
void ig_log_set_level(enum ig_log_level lvl);

#endif
