/* test_openai.c: the "openai" provider (OpenAI Images API) against a fake upstream on loopback.
 *
 * The fake upstream is an evhttp server on 127.0.0.1 (port 0) on its own thread and
 * event_base; it answers API calls from a script indexed by request count, serves result
 * files under /files/ (for url answers), and records what it got. The transport runs on the
 * test thread's event_base. No test contacts an address outside 127.0.0.0/8 (the proxy
 * variables are cleared so a developer's proxy is not used). */
#include "base/base.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/evp.h>

#include "core/catalog.h"
#include "core/task.h"
#include "net/transport.h"
#include "provider/channel.h"
#include "provider/provider.h"
#include "support/support.h"

/* ---- helpers ---- */

static char *b64(const void *p, size_t n)
{
    char *out = ig_xmalloc(4 * ((n + 2) / 3) + 1);

    EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    return out;
}

static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
static const unsigned char jpeg_sig[4] = {0xff, 0xd8, 0xff, 0xe0};

/* Image bytes: a signature, then a tag, then filler up to n bytes. */
static unsigned char *image_bytes_sig(const unsigned char *sig, size_t sl, const char *tag,
                                      size_t n)
{
    unsigned char *p = ig_xmalloc(n);
    size_t tl = strlen(tag);

    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 7 + 3);
    memcpy(p, sig, n < sl ? n : sl);
    if (n > 8 + tl)
        memcpy(p + 8, tag, tl);
    return p;
}

static unsigned char *image_bytes(const char *tag, size_t n)
{
    return image_bytes_sig(png_sig, sizeof(png_sig), tag, n);
}

static const cJSON *path(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

    assert_non_null(v);
    return v;
}

struct jobfx {
    struct ig_task task;
    struct ig_model model;
    struct ig_job job;
};

static void jobfx_init(struct jobfx *f, const char *prompt)
{
    memset(f, 0, sizeof(*f));
    ig_task_init(&f->task);
    f->task.req.prompt = ig_xstrdup(prompt);
    f->task.req.n = 1;
    snprintf(f->model.id, sizeof(f->model.id), "gpt-image-1");
    snprintf(f->model.upstream, sizeof(f->model.upstream), "gpt-image-1");
    f->job.task = &f->task;
    f->job.model = &f->model;
    f->job.width = 1344;
    f->job.height = 768;
}

static void jobfx_release(struct jobfx *f)
{
    ig_job_release(&f->job);
    ig_task_release(&f->task);
}

static void add_ref(struct jobfx *f, const char *mime, const unsigned char *p, size_t n)
{
    struct ig_image *im = ig_job_add_ref(&f->job);

    im->data = ig_xmalloc(n ? n : 1);
    memcpy(im->data, p, n);
    im->len = n;
    snprintf(im->mime, sizeof(im->mime), "%s", mime);
}

/* ---- the fake upstream ---- */

enum reply_kind { R_JSON, R_STALL, R_BIG };

struct reply {
    enum reply_kind kind;
    int status;
    const char *body; /* "%PORT%" is replaced by the server's port */
    const char *retry_after;
    const char *retry_after_ms;
};

#define MAX_SCRIPT 8
#define MAX_SEEN   8
#define FILE_LEN   777

struct server {
    struct ig_fake_http http;
    atomic_int requests; /* API calls */
    atomic_int files;    /* /files/ downloads */
    struct reply script[MAX_SCRIPT]; /* reply i to API call i (the last repeats) */
    int nscript;
    char path[MAX_SEEN][256];
    char auth[MAX_SEEN][128];
    char ctype[MAX_SEEN][128];
    char *body[MAX_SEEN];
    size_t body_len[MAX_SEEN];
};

static struct server srv;

/* The file served at /files/<tag>: PNG bytes tagged with the name. */
static unsigned char *file_bytes(const char *tag)
{
    return image_bytes(tag, FILE_LEN);
}

static char *subst_port(const char *body, int port)
{
    struct ig_buf b = IG_BUF_INIT(1 << 24);
    const char *p = body, *q;
    size_t len;

    while ((q = strstr(p, "%PORT%")) != NULL) {
        ig_buf_add(&b, p, (size_t)(q - p));
        ig_buf_addf(&b, "%d", port);
        p = q + 6;
    }
    ig_buf_adds(&b, p);
    return ig_buf_detach(&b, &len);
}

static void handle(struct ig_fake_req *rq, void *arg)
{
    struct server *s = arg;
    struct reply r;
    int idx;

    if (strncmp(rq->uri, "/files/", 7) == 0) {
        unsigned char *img = file_bytes(rq->uri + 7);

        atomic_fetch_add(&s->files, 1);
        ig_fake_reply(rq, 200, "image/png", img, FILE_LEN);
        free(img);
        return;
    }
    idx = atomic_fetch_add(&s->requests, 1);
    ig_fake_http_lock(&s->http);
    if (idx < MAX_SEEN) {
        snprintf(s->path[idx], sizeof(s->path[idx]), "%s", rq->uri);
        ig_fake_header_copy(rq, "Authorization", s->auth[idx], sizeof(s->auth[idx]));
        ig_fake_header_copy(rq, "Content-Type", s->ctype[idx], sizeof(s->ctype[idx]));
        free(s->body[idx]);
        s->body[idx] = ig_xmalloc(rq->body_len + 1);
        memcpy(s->body[idx], rq->body, rq->body_len + 1);
        s->body_len[idx] = rq->body_len;
    }
    r = s->script[idx < s->nscript ? idx : s->nscript - 1];
    ig_fake_http_unlock(&s->http);

    switch (r.kind) {
    case R_JSON: {
        char *body = subst_port(r.body, s->http.port);

        if (r.retry_after)
            ig_fake_reply_header(rq, "Retry-After", r.retry_after);
        if (r.retry_after_ms)
            ig_fake_reply_header(rq, "retry-after-ms", r.retry_after_ms);
        ig_fake_reply_str(rq, r.status, "application/json", body);
        free(body);
        break;
    }
    case R_BIG: {
        char *data = ig_xmalloc(64 * 1024);

        memset(data, ' ', 64 * 1024);
        ig_fake_reply(rq, 200, NULL, data, 64 * 1024);
        free(data);
        break;
    }
    case R_STALL:
        break; /* never answer: ig_fake_http_stop() reclaims it */
    }
}

static void server_stop(struct server *s)
{
    ig_fake_http_stop(&s->http);
    for (int i = 0; i < MAX_SEEN; i++)
        free(s->body[i]);
}

static void script(int n, ...)
{
    va_list ap;

    ig_fake_http_lock(&srv.http);
    va_start(ap, n);
    for (int i = 0; i < n && i < MAX_SCRIPT; i++)
        srv.script[i] = va_arg(ap, struct reply);
    va_end(ap);
    srv.nscript = n;
    ig_fake_http_unlock(&srv.http);
    atomic_store(&srv.requests, 0);
    atomic_store(&srv.files, 0);
}

/* A copy of what the server saw for API call idx (assertions never run under the lock: a
 * failed one would leave the server thread blocked). */
struct seen {
    char path[256], auth[128], ctype[128];
    char *body;
    size_t len;
};

static void seen_get(int idx, struct seen *sn)
{
    ig_fake_http_lock(&srv.http);
    memcpy(sn->path, srv.path[idx], sizeof(sn->path));
    memcpy(sn->auth, srv.auth[idx], sizeof(sn->auth));
    memcpy(sn->ctype, srv.ctype[idx], sizeof(sn->ctype));
    sn->len = srv.body_len[idx];
    sn->body = ig_xmalloc(sn->len + 1);
    memcpy(sn->body, srv.body[idx] ? srv.body[idx] : "", srv.body[idx] ? sn->len + 1 : 1);
    ig_fake_http_unlock(&srv.http);
}

/* An ImagesResponse with the given data items. */
static char *images_response(int nimg, const char *const *tags, size_t len)
{
    struct ig_buf b = IG_BUF_INIT(1 << 24);
    size_t n;

    ig_buf_adds(&b, "{\"created\":1713833628,\"data\":[");
    for (int i = 0; i < nimg; i++) {
        unsigned char *img = image_bytes(tags[i], len);
        char *d = b64(img, len);

        ig_buf_addf(&b, "%s{\"b64_json\":\"%s\"}", i ? "," : "", d);
        free(d);
        free(img);
    }
    ig_buf_adds(&b, "],\"usage\":{\"total_tokens\":100,\"input_tokens\":40,\"output_tokens\":60,"
                    "\"input_tokens_details\":{\"text_tokens\":10,\"image_tokens\":30}}}");
    return ig_buf_detach(&b, &n);
}

/* ---- the client side ---- */

struct live {
    struct event_base *base;
    struct ig_transport *tp;
    struct ig_channel ch;
    struct ig_provider *p;
    struct jobfx f;
    int done_calls;
};

static void on_done(struct ig_job *job)
{
    struct live *l = job->arg;

    l->done_calls++;
    event_base_loopbreak(l->base);
}

static void on_guard(evutil_socket_t fd, short what, void *arg)
{
    event_base_loopbreak(arg);
}

static int live_setup(void **state)
{
    struct live *l = ig_xcalloc(1, sizeof(*l));
    struct ig_channel *c = &l->ch;

    l->base = event_base_new();
    l->tp = ig_transport_new(l->base);
    snprintf(c->name, sizeof(c->name), "oa-test");
    c->type = IG_CHANNEL_OPENAI;
    snprintf(c->base_url, sizeof(c->base_url), "http://127.0.0.1:%d", srv.http.port);
    c->nkeys = 2;
    snprintf(c->keys[0], sizeof(c->keys[0]), "sk-KEY-one-secret");
    snprintf(c->keys[1], sizeof(c->keys[1]), "sk-KEY-two-secret");
    c->timeout_ms = 5000;
    c->connect_timeout_ms = 2000;
    c->max_response_bytes = 1 << 20;
    l->p = ig_provider_openai_new(c);
    jobfx_init(&l->f, "a banana in space");
    l->f.job.base = l->base;
    l->f.job.tp = l->tp;
    l->f.job.done = on_done;
    l->f.job.arg = l;
    snprintf(l->f.job.upstream_model, sizeof(l->f.job.upstream_model), "gpt-image-1.5");
    *state = l;
    return 0;
}

static int live_teardown(void **state)
{
    struct live *l = *state;

    jobfx_release(&l->f);
    ig_provider_free(l->p);
    ig_transport_free(l->tp);
    event_base_free(l->base);
    free(l);
    return 0;
}

/* Start the job and run the loop until done (or 15 s). */
static void run_job(struct live *l)
{
    struct timeval tv = {15, 0};
    struct event *guard = evtimer_new(l->base, on_guard, l->base);

    l->done_calls = 0;
    assert_int_equal(ig_provider_start(l->p, &l->f.job), IG_OK);
    assert_int_equal(l->done_calls, 0); /* never inside start */
    evtimer_add(guard, &tv);
    while (l->done_calls == 0 && evtimer_pending(guard, NULL))
        event_base_loop(l->base, EVLOOP_ONCE);
    event_free(guard);
    assert_int_equal(l->done_calls, 1);
    assert_null(l->f.job.pctx);
    assert_int_equal(ig_transport_active(l->tp), 0);
    assert_string_equal(l->f.job.channel, "oa-test");
}

static void assert_no_key(const struct ig_job *job)
{
    assert_null(strstr(job->errmsg, "sk-KEY"));
    assert_null(strstr(job->errmsg, "secret"));
}

static void test_openai__provider_name(void **state)
{
    struct ig_channel c;
    struct ig_provider *p;

    memset(&c, 0, sizeof(c));
    snprintf(c.base_url, sizeof(c.base_url), "https://api.openai.com");
    p = ig_provider_openai_new(&c);
    assert_string_equal(p->ops->name, "openai");
    assert_int_equal(p->ops->abi_version, 1);
    ig_provider_free(p);
}

static void test_openai__generations_two_images(void **state)
{
    struct live *l = *state;
    struct ig_job *job = &l->f.job;
    static const char *const tags[] = {"gen0", "gen1"};
    char *resp = images_response(2, tags, 300);
    struct seen sn;
    cJSON *root;

    l->f.task.req.n = 2;
    script(1, (struct reply){R_JSON, 200, resp, NULL, NULL});
    run_job(l);
    assert_int_equal(job->err, IG_OK);
    assert_string_equal(job->errmsg, "");
    assert_int_equal(job->http_status, 200);
    assert_int_equal(job->nimages, 2);
    for (int i = 0; i < 2; i++) {
        unsigned char *want = image_bytes(tags[i], 300);

        assert_int_equal(job->images[i].len, 300);
        assert_memory_equal(job->images[i].data, want, 300);
        assert_string_equal(job->images[i].mime, "image/png");
        free(want);
    }
    assert_int_equal(job->usage.prompt_tokens, 40);
    assert_int_equal(job->usage.image_tokens, 60);
    assert_int_equal(job->usage.images, 2);
    assert_true(job->bytes_in > 600);
    assert_false(job->retryable);
    assert_false(job->maybe_executed);
    assert_false(job->auth_failed);

    assert_int_equal(atomic_load(&srv.requests), 1); /* one call for n images */
    seen_get(0, &sn);
    assert_string_equal(sn.path, "/v1/images/generations");
    assert_string_equal(sn.auth, "Bearer sk-KEY-one-secret");
    assert_string_equal(sn.ctype, "application/json");
    root = cJSON_Parse(sn.body);
    free(sn.body);
    assert_non_null(root);
    assert_int_equal(cJSON_GetArraySize(root), 5);
    assert_string_equal(path(root, "model")->valuestring, "gpt-image-1.5");
    assert_string_equal(path(root, "prompt")->valuestring, "a banana in space");
    assert_true(cJSON_IsNumber(path(root, "n")));
    assert_int_equal(path(root, "n")->valueint, 2);
    assert_string_equal(path(root, "size")->valuestring, "1344x768");
    assert_string_equal(path(root, "response_format")->valuestring, "b64_json");
    cJSON_Delete(root);

    /* The next call uses the next key. */
    ig_job_reset_outputs(job);
    run_job(l);
    assert_int_equal(job->err, IG_OK);
    assert_int_equal(job->nimages, 2);
    seen_get(1, &sn);
    assert_string_equal(sn.auth, "Bearer sk-KEY-two-secret");
    free(sn.body);
    free(resp);
}

static void test_openai__want_appends_after_existing(void **state)
{
    struct live *l = *state;
    struct ig_job *job = &l->f.job;
    static const char *const tags[] = {"new0"};
    char *resp = images_response(1, tags, 100);
    unsigned char *old = image_bytes("old0", 50);
    unsigned char *want = image_bytes("new0", 100);
    struct seen sn;
    cJSON *root;

    l->f.task.req.n = 3;
    job->want = 1;
    job->images[0].data = old;
    job->images[0].len = 50;
    job->nimages = 1;
    job->usage.prompt_tokens = 5;
    script(1, (struct reply){R_JSON, 200, resp, NULL, NULL});
    run_job(l);
    assert_int_equal(job->err, IG_OK);
    assert_string_equal(job->errmsg, "");
    assert_int_equal(job->nimages, 2);
    assert_ptr_equal(job->images[0].data, old);
    assert_memory_equal(job->images[1].data, want, 100);
    assert_int_equal(job->usage.prompt_tokens, 45);
    assert_int_equal(job->usage.images, 2);
    seen_get(0, &sn);
    root = cJSON_Parse(sn.body);
    free(sn.body);
    assert_non_null(root);
    assert_int_equal(path(root, "n")->valueint, 1);
    cJSON_Delete(root);
    free(want);
    free(resp);
}

/* ---- multipart, parsed by boundary ---- */

struct mpart {
    char name[64];
    char filename[64];
    char ctype[64];
    const char *data;
    size_t len;
};

static void header_param(const char *h, size_t hl, const char *key, char *out, size_t outlen)
{
    char pat[32];
    const char *p, *e;

    out[0] = '\0';
    snprintf(pat, sizeof(pat), "%s=\"", key);
    for (p = h; p + strlen(pat) <= h + hl; p++) {
        if (strncmp(p, pat, strlen(pat)) == 0 && (p == h || p[-1] == ' ' || p[-1] == ';')) {
            p += strlen(pat);
            e = memchr(p, '"', (size_t)(h + hl - p));
            assert_non_null(e);
            snprintf(out, outlen, "%.*s", (int)(e - p), p);
            return;
        }
    }
}

static const char *memfind(const char *h, size_t hl, const char *n, size_t nl)
{
    for (size_t i = 0; i + nl <= hl; i++)
        if (memcmp(h + i, n, nl) == 0)
            return h + i;
    return NULL;
}

static int parse_multipart(const char *ctype, const char *body, size_t len, struct mpart *parts,
                           int max)
{
    const char *b = strstr(ctype, "boundary=");
    char delim[128];
    size_t dl;
    const char *p, *end = body + len;
    int n = 0;

    assert_non_null(b);
    assert_int_equal(strncmp(ctype, "multipart/form-data", 19), 0);
    snprintf(delim, sizeof(delim), "--%s", b + 9);
    dl = strlen(delim);
    p = memfind(body, len, delim, dl);
    assert_ptr_equal(p, body);
    for (;;) {
        const char *hdr_end, *next;

        p += dl;
        if (end - p >= 2 && p[0] == '-' && p[1] == '-')
            break; /* the closing delimiter */
        assert_true(end - p >= 2 && p[0] == '\r' && p[1] == '\n');
        p += 2;
        hdr_end = memfind(p, (size_t)(end - p), "\r\n\r\n", 4);
        assert_non_null(hdr_end);
        assert_true(n < max);
        memset(&parts[n], 0, sizeof(parts[n]));
        header_param(p, (size_t)(hdr_end - p), "name", parts[n].name, sizeof(parts[n].name));
        header_param(p, (size_t)(hdr_end - p), "filename", parts[n].filename,
                     sizeof(parts[n].filename));
        {
            const char *ct = memfind(p, (size_t)(hdr_end - p), "Content-Type: ", 14);

            if (ct) {
                const char *ce = memfind(ct, (size_t)(hdr_end - ct) + 2, "\r\n", 2);

                snprintf(parts[n].ctype, sizeof(parts[n].ctype), "%.*s", (int)(ce - ct - 14),
                         ct + 14);
            }
        }
        p = hdr_end + 4;
        {
            char crlfdelim[132];

            snprintf(crlfdelim, sizeof(crlfdelim), "\r\n%s", delim);
            next = memfind(p, (size_t)(end - p), crlfdelim, dl + 2);
        }
        assert_non_null(next);
        parts[n].data = p;
        parts[n].len = (size_t)(next - p);
        n++;
        p = next + 2;
    }
    return n;
}

static const struct mpart *find_part(const struct mpart *parts, int n, const char *name, int nth)
{
    for (int i = 0; i < n; i++)
        if (strcmp(parts[i].name, name) == 0 && nth-- == 0)
            return &parts[i];
    return NULL;
}

static void assert_field(const struct mpart *parts, int n, const char *name, const char *value)
{
    const struct mpart *m = find_part(parts, n, name, 0);

    assert_non_null(m);
    assert_int_equal(m->len, strlen(value));
    assert_memory_equal(m->data, value, m->len);
    assert_string_equal(m->filename, "");
}

static void run_edit(struct live *l, int nrefs, const unsigned char *const *refs,
                     const size_t *lens, const char *const *mimes)
{
    struct ig_job *job = &l->f.job;
    static const char *const tags[] = {"edit0"};
    char *resp = images_response(1, tags, 120);
    struct mpart parts[16];
    struct seen sn;
    int n;

    for (int i = 0; i < nrefs; i++)
        add_ref(&l->f, mimes[i], refs[i], lens[i]);
    script(1, (struct reply){R_JSON, 200, resp, NULL, NULL});
    run_job(l);
    assert_int_equal(job->err, IG_OK);
    assert_int_equal(job->nimages, 1);

    seen_get(0, &sn);
    assert_string_equal(sn.path, "/v1/images/edits");
    assert_string_equal(sn.auth, "Bearer sk-KEY-one-secret");
    n = parse_multipart(sn.ctype, sn.body, sn.len, parts, 16);
    assert_int_equal(n, 5 + nrefs);
    assert_field(parts, n, "model", "gpt-image-1.5");
    assert_field(parts, n, "prompt", "a banana in space");
    assert_field(parts, n, "n", "1");
    assert_field(parts, n, "size", "1344x768");
    assert_field(parts, n, "response_format", "b64_json");
    for (int i = 0; i < nrefs; i++) {
        const struct mpart *m = find_part(parts, n, nrefs == 1 ? "image" : "image[]", i);
        char fname[32];

        assert_non_null(m);
        assert_int_equal(m->len, lens[i]);
        assert_memory_equal(m->data, refs[i], lens[i]);
        snprintf(fname, sizeof(fname), "image-%d.%s", i,
                 strcmp(mimes[i], "image/jpeg") == 0 ? "jpeg" : "png");
        assert_string_equal(m->filename, fname);
        assert_string_equal(m->ctype, mimes[i]);
    }
    assert_null(find_part(parts, n, nrefs == 1 ? "image[]" : "image", 0));
    free(sn.body);
    free(resp);
}

static void test_openai__edits_one_reference(void **state)
{
    /* Bytes that contain CRLF and a dash run, as real images do. */
    unsigned char *r0 = image_bytes("ref0\r\n--x", 5001);
    const unsigned char *refs[] = {r0};
    size_t lens[] = {5001};
    const char *mimes[] = {"image/png"};

    run_edit(*state, 1, refs, lens, mimes);
    free(r0);
}

static void test_openai__edits_two_references(void **state)
{
    unsigned char *r0 = image_bytes("ref0", 3000);
    unsigned char *r1 = image_bytes_sig(jpeg_sig, sizeof(jpeg_sig), "ref1", 2049);
    const unsigned char *refs[] = {r0, r1};
    size_t lens[] = {3000, 2049};
    const char *mimes[] = {"image/png", "image/jpeg"};

    run_edit(*state, 2, refs, lens, mimes);
    free(r0);
    free(r1);
}

static void test_openai__url_result_downloaded(void **state)
{
    struct live *l = *state;
    struct ig_job *job = &l->f.job;
    unsigned char *a = file_bytes("a.png"), *b0 = image_bytes("inl", 64);
    char *d = b64(b0, 64);
    char *body = ig_xasprintf("{\"created\":1,\"data\":[{\"url\":\"http://127.0.0.1:%%PORT%%/"
                              "files/a.png\",\"revised_prompt\":\"x\"},{\"b64_json\":\"%s\"}]}",
                              d);

    l->f.task.req.n = 2;
    script(1, (struct reply){R_JSON, 200, body, NULL, NULL});
    run_job(l);
    assert_int_equal(job->err, IG_OK);
    assert_string_equal(job->errmsg, "");
    assert_int_equal(atomic_load(&srv.files), 1);
    assert_int_equal(job->nimages, 2);
    /* data[] order is kept: the downloaded one first */
    assert_int_equal(job->images[0].len, FILE_LEN);
    assert_memory_equal(job->images[0].data, a, FILE_LEN);
    assert_string_equal(job->images[0].mime, "image/png");
    assert_int_equal(job->images[1].len, 64);
    assert_memory_equal(job->images[1].data, b0, 64);
    assert_int_equal(job->usage.images, 2);
    free(body);
    free(d);
    free(a);
    free(b0);
}

static void test_openai__url_result_over_cap_fails(void **state)
{
    struct live *l = *state;
    struct ig_job *job = &l->f.job;

    l->ch.max_response_bytes = 500; /* the file is 777 bytes */
    script(1, (struct reply){R_JSON, 200,
                             "{\"created\":1,\"data\":[{\"url\":\"http://127.0.0.1:%PORT%/files/"
                             "big.png\"}]}",
                             NULL, NULL});
    run_job(l);
    assert_int_equal(job->err, IG_E_UPSTREAM_FAILED);
    assert_int_equal(job->nimages, 0);
    assert_true(job->maybe_executed);
    assert_false(job->retryable);
    assert_non_null(strstr(job->errmsg, "could not be downloaded"));
}

static void test_openai__partial(void **state)
{
    struct live *l = *state;
    struct ig_job *job = &l->f.job;
    static const char *const tags[] = {"p0", "p1"};
    char *resp = images_response(2, tags, 90);

    l->f.task.req.n = 3;
    script(1, (struct reply){R_JSON, 200, resp, NULL, NULL});
    run_job(l);
    assert_int_equal(job->err, IG_OK);
    assert_int_equal(job->nimages, 2);
    assert_string_equal(job->errmsg, "2 of 3 images were produced");
    free(resp);
}

static void test_openai__429_retry_after(void **state)
{
    struct live *l = *state;
    struct ig_job *job = &l->f.job;
    static const char body[] = "{\"error\":{\"message\":\"Rate limit reached\",\"type\":"
                               "\"requests\",\"param\":null,\"code\":\"rate_limit_exceeded\"}}";

    script(1, (struct reply){R_JSON, 429, body, "7", "1500"});
    run_job(l);
    assert_int_equal(job->err, IG_E_UPSTREAM_SUBMIT);
    assert_int_equal(job->http_status, 429);
    assert_true(job->retryable);
    assert_false(job->maybe_executed);
    assert_int_equal(job->retry_after_ms, 1500); /* retry-after-ms wins */
    assert_string_equal(job->errmsg, "upstream 429: Rate limit reached");
    ig_job_reset_outputs(job);

    script(1, (struct reply){R_JSON, 429, body, "3", NULL});
    run_job(l);
    assert_true(job->retryable);
    assert_int_equal(job->retry_after_ms, 3000);
}

static void test_openai__503_retryable(void **state)
{
    struct live *l = *state;
    struct ig_job *job = &l->f.job;

    script(1, (struct reply){R_JSON, 503,
                             "{\"error\":{\"message\":\"The engine is currently overloaded\","
                             "\"type\":\"server_error\",\"param\":null,\"code\":null}}",
                             NULL, NULL});
    run_job(l);
    assert_int_equal(job->err, IG_E_UPSTREAM_SUBMIT);
    assert_int_equal(job->http_status, 503);
    assert_true(job->retryable);
    assert_false(job->maybe_executed);
    assert_false(job->auth_failed);
    assert_string_equal(job->errmsg, "upstream 503: The engine is currently overloaded");
}

static void test_openai__500_504_maybe_executed(void **state)
{
    struct live *l = *state;
    struct ig_job *job = &l->f.job;

    script(1, (struct reply){R_JSON, 500, "{\"error\":{\"message\":\"boom\"}}", NULL, NULL});
    run_job(l);
    assert_int_equal(job->err, IG_E_UPSTREAM_SUBMIT);
    assert_true(job->maybe_executed);
    assert_false(job->retryable);
    ig_job_reset_outputs(job);

    script(1, (struct reply){R_JSON, 504, "not json", NULL, NULL});
    run_job(l);
    assert_int_equal(job->err, IG_E_UPSTREAM_TIMEOUT);
    assert_true(job->maybe_executed);
    assert_false(job->retryable);
    assert_string_equal(job->errmsg, "upstream 504");
}

static void test_openai__401_auth_failed(void **state)
{
    struct live *l = *state;
    struct ig_job *job = &l->f.job;

    script(1, (struct reply){R_JSON, 401,
                             "{\"error\":{\"message\":\"Incorrect API key provided: "
                             "sk-KEY-one-secret.\",\"type\":\"invalid_request_error\",\"param\":"
                             "null,\"code\":\"invalid_api_key\"}}",
                             NULL, NULL});
    run_job(l);
    assert_int_equal(job->err, IG_E_UPSTREAM_SUBMIT);
    assert_true(job->auth_failed);
    assert_false(job->retryable);
    assert_false(job->maybe_executed);
    assert_int_equal(job->http_status, 401);
    assert_non_null(strstr(job->errmsg, "refused the API key of channel oa-test"));
    assert_no_key(job);
    ig_job_reset_outputs(job);

    script(1, (struct reply){R_JSON, 403, "{}", NULL, NULL});
    run_job(l);
    assert_true(job->auth_failed);
}

static void test_openai__400_terminal(void **state)
{
    struct live *l = *state;
    struct ig_job *job = &l->f.job;

    script(1, (struct reply){R_JSON, 400,
                             "{\"error\":{\"message\":\"Invalid value: '1344x768'. Supported "
                             "values are: '1024x1024'.\",\"type\":\"invalid_request_error\","
                             "\"param\":\"size\",\"code\":\"invalid_value\"}}",
                             NULL, "5000"});
    run_job(l);
    assert_int_equal(job->err, IG_E_UPSTREAM_FAILED);
    assert_int_equal(job->http_status, 400);
    assert_false(job->retryable);
    assert_false(job->maybe_executed);
    assert_false(job->auth_failed);
    assert_int_equal(job->retry_after_ms, 0);
    assert_string_equal(job->errmsg, "upstream 400: Invalid value: '1344x768'. Supported values "
                                     "are: '1024x1024'.");
}

static void test_openai__moderated(void **state)
{
    struct live *l = *state;
    struct ig_job *job = &l->f.job;

    script(1, (struct reply){R_JSON, 400,
                             "{\"error\":{\"message\":\"Your request was rejected as a result of "
                             "our safety system.\",\"type\":\"invalid_request_error\",\"param\":"
                             "null,\"code\":\"content_policy_violation\"}}",
                             NULL, NULL});
    run_job(l);
    assert_int_equal(job->err, IG_E_MODERATED);
    assert_int_equal(job->http_status, 400);
    assert_false(job->retryable);
    assert_false(job->maybe_executed);
    assert_non_null(strstr(job->errmsg, "safety system"));
    ig_job_reset_outputs(job);

    script(1, (struct reply){R_JSON, 400,
                             "{\"error\":{\"message\":\"rejected\",\"type\":"
                             "\"image_generation_user_error\",\"param\":null,\"code\":null}}",
                             NULL, NULL});
    run_job(l);
    assert_int_equal(job->err, IG_E_MODERATED);
}

static void test_openai__malformed(void **state)
{
    struct live *l = *state;
    struct ig_job *job = &l->f.job;
    static const char *const bodies[] = {
        "{\"created\":1,\"data\":[{\"b64_json\":\"iVBO",
        "[1,2]",
        "{\"data\":{}}",
        "{\"data\":[{\"b64_json\":\"!!!!\"}]}",
        "{\"data\":[{\"b64_json\":\"iVBORw0\"}]}",
        "{\"data\":[{\"b64_json\":\"iV=ORw==\"}]}",
        "{\"data\":[]}",
    };

    for (size_t i = 0; i < IG_ARRAY_LEN(bodies); i++) {
        script(1, (struct reply){R_JSON, 200, bodies[i], NULL, NULL});
        run_job(l);
        assert_int_equal(job->err, IG_E_UPSTREAM_FAILED);
        assert_int_equal(job->nimages, 0);
        assert_false(job->retryable);
        assert_int_equal(job->http_status, 200);
        ig_job_reset_outputs(job);
    }
}

static void test_openai__response_too_big(void **state)
{
    struct live *l = *state;
    struct ig_job *job = &l->f.job;

    l->ch.max_response_bytes = 4096;
    script(1, (struct reply){R_BIG, 200, NULL, NULL, NULL});
    run_job(l);
    assert_int_equal(job->err, IG_E_UPSTREAM_FAILED);
    assert_string_equal(job->errmsg, "upstream response exceeds 4096 bytes");
    assert_true(job->maybe_executed);
    assert_false(job->retryable);
}

static void test_openai__timeout_after_send(void **state)
{
    struct live *l = *state;
    struct ig_job *job = &l->f.job;
    int64_t t0 = ig_mono_ms();

    l->ch.timeout_ms = 300;
    script(1, (struct reply){R_STALL, 0, NULL, NULL, NULL});
    run_job(l);
    assert_true(ig_mono_ms() - t0 < 3000);
    assert_int_equal(job->err, IG_E_UPSTREAM_TIMEOUT);
    assert_true(job->maybe_executed);
    assert_false(job->retryable);
    assert_int_equal(job->http_status, 0);
    assert_string_equal(job->errmsg, "the upstream did not answer within 300 ms");
}

static void test_openai__connection_refused(void **state)
{
    struct live *l = *state;
    struct ig_job *job = &l->f.job;
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    /* A port that was free a moment ago and has no listener. */
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    close(fd);
    snprintf(l->ch.base_url, sizeof(l->ch.base_url), "http://127.0.0.1:%d", ntohs(sin.sin_port));
    run_job(l);
    assert_int_equal(job->err, IG_E_UPSTREAM_SUBMIT);
    assert_true(job->retryable);
    assert_false(job->maybe_executed);
    assert_int_equal(job->http_status, 0);
}

static int group_setup(void **state)
{
    static const char *const proxies[] = {"http_proxy",  "HTTP_PROXY", "https_proxy",
                                          "HTTPS_PROXY", "all_proxy",  "ALL_PROXY"};

    if (getenv("IG_TEST_DEBUG"))
        ig_log_set_level(IG_LOG_DEBUG);
    for (size_t i = 0; i < IG_ARRAY_LEN(proxies); i++)
        unsetenv(proxies[i]);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return -1;
    if (evthread_use_pthreads() != 0)
        return -1;
    return ig_fake_http_start(&srv.http, handle, &srv);
}

static int group_teardown(void **state)
{
    server_stop(&srv);
    curl_global_cleanup();
    libevent_global_shutdown();
    return 0;
}

#define L(name) cmocka_unit_test_setup_teardown(name, live_setup, live_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openai__provider_name),
        L(test_openai__generations_two_images),
        L(test_openai__want_appends_after_existing),
        L(test_openai__edits_one_reference),
        L(test_openai__edits_two_references),
        L(test_openai__url_result_downloaded),
        L(test_openai__url_result_over_cap_fails),
        L(test_openai__partial),
        L(test_openai__429_retry_after),
        L(test_openai__503_retryable),
        L(test_openai__500_504_maybe_executed),
        L(test_openai__401_auth_failed),
        L(test_openai__400_terminal),
        L(test_openai__moderated),
        L(test_openai__malformed),
        L(test_openai__response_too_big),
        L(test_openai__timeout_after_send),
        L(test_openai__connection_refused),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
