/* curl_floor.c: how much memory libcurl itself holds per waiting transfer, with nothing of
 * imagegate around it: N POSTs added to one multi handle against an upstream that answers
 * late, then the process's RSS. The floor under imagegate's per-task figure.
 *   cc -O2 bench/curl_floor.c -o /tmp/curl_floor -lcurl && /tmp/curl_floor URL N */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = 0;

    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            v = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

int main(int argc, char **argv)
{
    const char *body = "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"wait\"}]}]}";
    int n = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 1000, running = 1;
    CURLM *m;
    long before;

    if (argc < 2)
        return 2;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    m = curl_multi_init();
    before = rss_kb();
    for (int i = 0; i < n; i++) {
        CURL *e = curl_easy_init();

        curl_easy_setopt(e, CURLOPT_URL, argv[1]);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 4096L);
        curl_multi_add_handle(m, e);
    }
    for (int k = 0; k < 300; k++) {
        curl_multi_perform(m, &running);
        curl_multi_wait(m, NULL, 0, 10, NULL);
    }
    printf("%d transfers waiting: RSS %ld -> %ld KB, %.1f KB each\n", n, before, rss_kb(),
           (double)(rss_kb() - before) / n);
    return 0;
}
