/* tmpdir.c: scratch directories, stores and event-loop runs for the unit tests (support.h). */
#include "base/base.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "store/store.h"
#include "support/support.h"

void ig_test_tmpdir(char *out, size_t n, const char *prefix)
{
    const char *base = getenv("IG_TEST_TMP");

    if (!base || !*base)
        base = "/tmp";
    if (mkdir(base, 0700) != 0 && errno != EEXIST)
        fail_msg("cannot create %s", base);
    snprintf(out, n, "%s/%s.XXXXXX", base, prefix);
    assert_non_null(mkdtemp(out));
}

void ig_test_rmdir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[PATH_MAX + 300];

    if (!d)
        return;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

struct ig_store *ig_test_open_store(const char *dsn)
{
    struct ig_store *s = NULL;
    struct ig_errbuf eb;

    ig_errbuf_clear(&eb);
    if (ig_store_open(&s, dsn, &eb) || ig_store_migrate(s, &eb))
        fail_msg("store: %s", eb.msg);
    return s;
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    event_base_loopbreak(arg);
}

void ig_test_run_until(struct event_base *base, const int *count, int want, int timeout_s)
{
    struct timeval tv = {timeout_s, 0};
    struct event *timer = evtimer_new(base, on_timeout, base);

    evtimer_add(timer, &tv);
    while (*count < want)
        if (event_base_loop(base, EVLOOP_ONCE) != 0 || !evtimer_pending(timer, NULL))
            break;
    event_free(timer);
}
