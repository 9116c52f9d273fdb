/* test_vertex.c: Google service-account auth (gauth.c: key loading, the RS256 JWT, the token
 * exchange and its cache) and the "vertex" provider against a fake on loopback.
 *
 * An RSA 2048 key is generated at test time and written as a service-account JSON file into a
 * temporary directory. The fake is an evhttp server on 127.0.0.1 (port 0) on its own thread:
 * POST /token is the OAuth token endpoint, every other path is Vertex AI. No test contacts an
 * address outside 127.0.0.0/8 (proxy variables are cleared). */
#include "base/base.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "core/catalog.h"
#include "core/task.h"
#include "net/transport.h"
#include "provider/channel.h"
#include "provider/gauth.h"
#include "provider/provider.h"
#include "support/support.h"

#define MODEL "gemini-2.5-flash-image"

static EVP_PKEY *g_key;          /* the service account's key */
static char g_dir[256];          /* temp dir */
static char g_sa_path[300];      /* service-account file (project_id "proj-from-file") */

/* ---- helpers ---- */

static char *b64(const void *p, size_t n)
{
    char *out = ig_xmalloc(4 * ((n + 2) / 3) + 1);

    EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    return out;
}

/* base64url (no padding) to bytes. */
static unsigned char *unb64url(const char *s, size_t slen, size_t *n)
{
    size_t padded = (slen + 3) / 4 * 4;
    char *t = ig_xmalloc(padded + 1);
    unsigned char *out = ig_xmalloc(padded / 4 * 3 + 1);
    int m;

    for (size_t i = 0; i < slen; i++) {
        assert_true(s[i] != '=' && s[i] != '+' && s[i] != '/');
        t[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
    }
    for (size_t i = slen; i < padded; i++)
        t[i] = '=';
    t[padded] = '\0';
    m = EVP_DecodeBlock(out, (unsigned char *)t, (int)padded);
    assert_true(m >= 0);
    *n = (size_t)m - (padded - slen);
    out[*n] = '\0';
    free(t);
    return out;
}

static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

static unsigned char *image_bytes(const char *tag, size_t n)
{
    unsigned char *p = ig_xmalloc(n);
    size_t tl = strlen(tag);

    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 7 + 3);
    memcpy(p, png_sig, 8);
    memcpy(p + 8, tag, tl);
    return p;
}

static char *pem_of(EVP_PKEY *k)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL, *out;
    long n;

    assert_int_equal(PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL), 1);
    n = BIO_get_mem_data(bio, &data);
    out = ig_xstrndup(data, (size_t)n);
    BIO_free(bio);
    return out;
}

static void write_text(const char *p, const char *text)
{
    FILE *f = fopen(p, "wb");

    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    fclose(f);
}

/* A service-account file; type NULL leaves it out. */
static void write_sa(const char *p, const char *type, const char *pem, const char *project)
{
    cJSON *o = cJSON_CreateObject();
    char *s;

    if (type)
        cJSON_AddStringToObject(o, "type", type);
    cJSON_AddStringToObject(o, "project_id", project);
    cJSON_AddStringToObject(o, "private_key_id", "kid-0123456789abcdef");
    cJSON_AddStringToObject(o, "private_key", pem);
    cJSON_AddStringToObject(o, "client_email", "imagegate@proj-from-file.iam.gserviceaccount.com");
    cJSON_AddStringToObject(o, "client_id", "1234567890");
    cJSON_AddStringToObject(o, "token_uri", "https://oauth2.googleapis.com/token");
    s = cJSON_Print(o);
    write_text(p, s);
    cJSON_free(s);
    cJSON_Delete(o);
}

static const cJSON *item(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

    assert_non_null(v);
    return v;
}

/* Check a JWT: three parts, exact header and claims, signature by g_key. */
static void check_jwt(const char *jwt, const char *aud, int64_t now)
{
    const char *d1 = strchr(jwt, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    size_t hl, cl, sl;
    unsigned char *h, *c, *sig;
    cJSON *hj, *cj;
    EVP_MD_CTX *md = EVP_MD_CTX_new();

    assert_non_null(d1);
    assert_non_null(d2);
    assert_null(strchr(d2 + 1, '.'));
    h = unb64url(jwt, (size_t)(d1 - jwt), &hl);
    c = unb64url(d1 + 1, (size_t)(d2 - d1 - 1), &cl);
    sig = unb64url(d2 + 1, strlen(d2 + 1), &sl);
    hj = cJSON_Parse((char *)h);
    cj = cJSON_Parse((char *)c);
    assert_non_null(hj);
    assert_non_null(cj);
    assert_int_equal(cJSON_GetArraySize(hj), 3);
    assert_string_equal(item(hj, "alg")->valuestring, "RS256");
    assert_string_equal(item(hj, "typ")->valuestring, "JWT");
    assert_string_equal(item(hj, "kid")->valuestring, "kid-0123456789abcdef");
    assert_int_equal(cJSON_GetArraySize(cj), 5);
    assert_string_equal(item(cj, "iss")->valuestring,
                        "imagegate@proj-from-file.iam.gserviceaccount.com");
    assert_string_equal(item(cj, "scope")->valuestring,
                        "https://www.googleapis.com/auth/cloud-platform");
    assert_string_equal(item(cj, "aud")->valuestring, aud);
    if (now >= 0) {
        assert_true(item(cj, "iat")->valuedouble == (double)now);
        assert_true(item(cj, "exp")->valuedouble == (double)(now + 3600));
    } else {
        assert_true(item(cj, "exp")->valuedouble - item(cj, "iat")->valuedouble == 3600.0);
    }
    assert_int_equal(sl, 256); /* RSA 2048 */
    assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, g_key), 1);
    assert_int_equal(EVP_DigestVerify(md, sig, sl, (const unsigned char *)jwt, (size_t)(d2 - jwt)),
                     1);
    /* A changed byte of the signed part fails verification. */
    {
        char *bad = ig_xstrdup(jwt);

        bad[5] = bad[5] == 'A' ? 'B' : 'A';
        assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, g_key), 1);
        assert_int_not_equal(
            EVP_DigestVerify(md, sig, sl, (const unsigned char *)bad, (size_t)(d2 - jwt)), 1);
        free(bad);
    }
    EVP_MD_CTX_free(md);
    cJSON_Delete(hj);
    cJSON_Delete(cj);
    free(h);
    free(c);
    free(sig);
}

/* ---- gauth offline ---- */

static void test_vertex__jwt(void **state)
{
    struct ig_errbuf eb;
    struct ig_gauth *ga;
    char *jwt;

    ig_errbuf_clear(&eb);
    ga = ig_gauth_new(g_sa_path, "http://127.0.0.1:9/token", &eb);
    assert_non_null(ga);
    assert_string_equal(ig_gauth_project(ga), "proj-from-file");
    assert_string_equal(ig_gauth_email(ga), "imagegate@proj-from-file.iam.gserviceaccount.com");
    jwt = ig_gauth_jwt(ga, 1700000000);
    assert_non_null(jwt);
    check_jwt(jwt, "http://127.0.0.1:9/token", 1700000000);
    free(jwt);
    ig_gauth_free(ga);

    /* No token_url: the file's token_uri. */
    ga = ig_gauth_new(g_sa_path, "", &eb);
    assert_non_null(ga);
    jwt = ig_gauth_jwt(ga, 42);
    check_jwt(jwt, "https://oauth2.googleapis.com/token", 42);
    free(jwt);
    ig_gauth_free(ga);
}

static void test_vertex__load_errors(void **state)
{
    struct ig_errbuf eb;
    char p[700];
    char *pem = pem_of(g_key);

    ig_errbuf_clear(&eb);
    snprintf(p, sizeof(p), "%s/missing.json", g_dir);
    assert_null(ig_gauth_new(p, NULL, &eb));
    assert_string_equal(eb.field, "service_account_file");

    snprintf(p, sizeof(p), "%s/user.json", g_dir);
    write_sa(p, "authorized_user", pem, "x");
    assert_null(ig_gauth_new(p, NULL, &eb));
    assert_non_null(strstr(eb.msg, "not a service account"));

    snprintf(p, sizeof(p), "%s/badpem.json", g_dir);
    write_sa(p, "service_account", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
             "x");
    assert_null(ig_gauth_new(p, NULL, &eb));
    assert_non_null(strstr(eb.msg, "not an RSA private key"));
    assert_null(strstr(eb.msg, "AAAA"));

    snprintf(p, sizeof(p), "%s/notjson.json", g_dir);
    write_text(p, "not json");
    assert_null(ig_gauth_new(p, NULL, &eb));

    /* type may be absent */
    snprintf(p, sizeof(p), "%s/notype.json", g_dir);
    write_sa(p, NULL, pem, "x");
    {
        struct ig_gauth *ga = ig_gauth_new(p, NULL, &eb);

        assert_non_null(ga);
        ig_gauth_free(ga);
    }
    free(pem);
}

/* ---- the fake: token endpoint + Vertex ---- */

#define MAX_SEEN 16

struct server {
    struct ig_fake_http http;
    /* token endpoint */
    int token_status;       /* 200, or an error status */
    int expires_in;
    int ntoken;             /* exchanges answered */
    char *token_body[MAX_SEEN];
    char token_ctype[MAX_SEEN][96];
    /* vertex */
    int vertex_status;      /* 200: an image; else an error envelope */
    int nvertex;
    char path[MAX_SEEN][256];
    char key[MAX_SEEN][64];
    char auth[MAX_SEEN][128];
};

static struct server srv;

static void handle(struct ig_fake_req *rq, void *arg)
{
    struct server *s = arg;
    char *body;

    ig_fake_http_lock(&s->http);
    if (strcmp(rq->uri, "/token") == 0) {
        int idx = s->ntoken++;
        int status = s->token_status, exp = s->expires_in;

        if (idx < MAX_SEEN) {
            s->token_body[idx] = ig_xmalloc(rq->body_len + 1);
            memcpy(s->token_body[idx], rq->body, rq->body_len + 1);
            ig_fake_header_copy(rq, "Content-Type", s->token_ctype[idx],
                                sizeof(s->token_ctype[idx]));
        }
        ig_fake_http_unlock(&s->http);
        if (status == 200) {
            body = ig_xasprintf("{\"access_token\":\"ya29.tok-%d\",\"expires_in\":%d,"
                                "\"token_type\":\"Bearer\"}",
                                idx + 1, exp);
            ig_fake_reply_str(rq, 200, "application/json", body);
            free(body);
        } else {
            ig_fake_reply_str(
                rq, status, "application/json",
                "{\"error\":\"invalid_grant\",\"error_description\":\"Invalid JWT Signature.\"}");
        }
        return;
    }
    {
        int idx = s->nvertex++;
        int status = s->vertex_status;

        if (idx < MAX_SEEN) {
            snprintf(s->path[idx], sizeof(s->path[idx]), "%s", rq->uri);
            ig_fake_header_copy(rq, "x-goog-api-key", s->key[idx], sizeof(s->key[idx]));
            ig_fake_header_copy(rq, "Authorization", s->auth[idx], sizeof(s->auth[idx]));
        }
        ig_fake_http_unlock(&s->http);
        if (status == 200) {
            unsigned char *img = image_bytes("vtx0", 120);
            char *d = b64(img, 120);

            body = ig_xasprintf(
                "{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"inlineData\":"
                "{\"mimeType\":\"image/png\",\"data\":\"%s\"}}]},\"finishReason\":\"STOP\"}],"
                "\"usageMetadata\":{\"promptTokenCount\":7,\"trafficType\":\"ON_DEMAND\"},"
                "\"modelVersion\":\"" MODEL "\",\"createTime\":\"2026-01-01T00:00:00Z\","
                "\"responseId\":\"vx-1\"}",
                d);
            ig_fake_reply_str(rq, 200, "application/json", body);
            free(body);
            free(d);
            free(img);
        } else {
            ig_fake_reply_str(rq, status, "application/json",
                              "{\"error\":{\"code\":401,\"message\":\"Request had invalid "
                              "authentication credentials: ya29.tok-1\",\"status\":"
                              "\"UNAUTHENTICATED\"}}");
        }
    }
}

static void server_reset(int token_status, int expires_in, int vertex_status)
{
    ig_fake_http_lock(&srv.http);
    for (int i = 0; i < MAX_SEEN; i++) {
        free(srv.token_body[i]);
        srv.token_body[i] = NULL;
    }
    srv.token_status = token_status;
    srv.expires_in = expires_in;
    srv.vertex_status = vertex_status;
    srv.ntoken = srv.nvertex = 0;
    ig_fake_http_unlock(&srv.http);
}

static void server_stop(struct server *s)
{
    server_reset(200, 0, 200); /* frees the recorded token bodies */
    ig_fake_http_stop(&s->http);
}

/* ---- the client side ---- */

#define NJOBS 5

struct jobfx {
    struct ig_task task;
    struct ig_model model;
    struct ig_job job;
};

struct live {
    struct event_base *base;
    struct ig_transport *tp;
    struct ig_channel ch;
    struct ig_provider *p;
    struct jobfx f[NJOBS];
    int done_calls;
};

static void on_done(struct ig_job *job)
{
    struct live *l = job->arg;

    l->done_calls++;
}

static void on_guard(evutil_socket_t fd, short what, void *arg)
{
    event_base_loopbreak(arg);
}

static void jobfx_init(struct live *l, struct jobfx *f)
{
    memset(f, 0, sizeof(*f));
    ig_task_init(&f->task);
    f->task.req.prompt = ig_xstrdup("a lighthouse at dusk");
    f->task.req.n = 1;
    snprintf(f->task.req.ratio, sizeof(f->task.req.ratio), "1:1");
    snprintf(f->model.id, sizeof(f->model.id), MODEL);
    snprintf(f->model.upstream, sizeof(f->model.upstream), MODEL);
    f->model.nres = 1;
    snprintf(f->model.res[0], sizeof(f->model.res[0]), "1K");
    f->job.task = &f->task;
    f->job.model = &f->model;
    f->job.base = l->base;
    f->job.tp = l->tp;
    f->job.done = on_done;
    f->job.arg = l;
    snprintf(f->job.upstream_model, sizeof(f->job.upstream_model), MODEL);
}

static void jobfx_release(struct jobfx *f)
{
    ig_job_release(&f->job);
    ig_task_release(&f->task);
}

static int live_setup(void **state)
{
    struct live *l = ig_xcalloc(1, sizeof(*l));
    struct ig_channel *c = &l->ch;

    l->base = event_base_new();
    l->tp = ig_transport_new(l->base);
    snprintf(c->name, sizeof(c->name), "vx-test");
    c->type = IG_CHANNEL_VERTEX;
    snprintf(c->base_url, sizeof(c->base_url), "http://127.0.0.1:%d", srv.http.port);
    snprintf(c->location, sizeof(c->location), "us-central1");
    snprintf(c->token_url, sizeof(c->token_url), "http://127.0.0.1:%d/token", srv.http.port);
    c->timeout_ms = 5000;
    c->connect_timeout_ms = 2000;
    c->max_response_bytes = 1 << 20;
    for (int i = 0; i < NJOBS; i++)
        jobfx_init(l, &l->f[i]);
    server_reset(200, 3600, 200);
    *state = l;
    return 0;
}

static int live_teardown(void **state)
{
    struct live *l = *state;

    for (int i = 0; i < NJOBS; i++)
        jobfx_release(&l->f[i]);
    ig_provider_free(l->p);
    ig_transport_free(l->tp);
    event_base_free(l->base);
    ig_time_set_offset_ms(0);
    free(l);
    return 0;
}

/* Start jobs [0, n) together and run the loop until all are done (or 15 s). */
static void run_jobs(struct live *l, int n)
{
    struct timeval tv = {15, 0};
    struct event *guard = evtimer_new(l->base, on_guard, l->base);

    l->done_calls = 0;
    for (int i = 0; i < n; i++) {
        ig_job_reset_outputs(&l->f[i].job);
        assert_int_equal(ig_provider_start(l->p, &l->f[i].job), IG_OK);
    }
    assert_int_equal(l->done_calls, 0); /* never inside start */
    evtimer_add(guard, &tv);
    while (l->done_calls < n && evtimer_pending(guard, NULL))
        event_base_loop(l->base, EVLOOP_ONCE);
    event_free(guard);
    assert_int_equal(l->done_calls, n);
    for (int i = 0; i < n; i++) {
        assert_null(l->f[i].job.pctx);
        assert_string_equal(l->f[i].job.channel, "vx-test");
    }
    assert_int_equal(ig_transport_active(l->tp), 0);
}

static void assert_image(const struct ig_job *job)
{
    assert_int_equal(job->err, IG_OK);
    assert_int_equal(job->http_status, 200);
    assert_int_equal(job->nimages, 1);
    assert_int_equal(job->images[0].len, 120);
    assert_memory_equal(job->images[0].data, png_sig, 8);
    assert_memory_equal(job->images[0].data + 8, "vtx0", 4);
    assert_int_equal(job->usage.prompt_tokens, 7);
    assert_string_equal(job->response_id, "vx-1");
}

static void use_service_account(struct live *l)
{
    snprintf(l->ch.service_account_file, sizeof(l->ch.service_account_file), "%s", g_sa_path);
    l->p = ig_provider_vertex_new(&l->ch);
}

#define SA_PATH                                                                                    \
    "/v1/projects/proj-from-file/locations/us-central1/publishers/google/models/" MODEL          \
    ":generateContent"

static void test_vertex__sa_one_exchange_for_parallel_jobs(void **state)
{
    struct live *l = *state;
    const char *prefix = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
                         "&assertion=";
    char aud[600];

    use_service_account(l);
    run_jobs(l, NJOBS);
    for (int i = 0; i < NJOBS; i++)
        assert_image(&l->f[i].job);
    ig_fake_http_lock(&srv.http);
    assert_int_equal(srv.ntoken, 1);
    assert_int_equal(srv.nvertex, NJOBS);
    assert_string_equal(srv.token_ctype[0], "application/x-www-form-urlencoded");
    assert_true(strncmp(srv.token_body[0], prefix, strlen(prefix)) == 0);
    snprintf(aud, sizeof(aud), "http://127.0.0.1:%d/token", srv.http.port);
    check_jwt(srv.token_body[0] + strlen(prefix), aud, -1);
    for (int i = 0; i < NJOBS; i++) {
        assert_string_equal(srv.path[i], SA_PATH);
        assert_string_equal(srv.auth[i], "Bearer ya29.tok-1");
        assert_string_equal(srv.key[i], "");
    }
    ig_fake_http_unlock(&srv.http);

    /* Later jobs use the cached token. */
    run_jobs(l, 2);
    ig_fake_http_lock(&srv.http);
    assert_int_equal(srv.ntoken, 1);
    assert_int_equal(srv.nvertex, NJOBS + 2);
    assert_string_equal(srv.auth[NJOBS + 1], "Bearer ya29.tok-1");
    ig_fake_http_unlock(&srv.http);
}

static void test_vertex__sa_refresh_after_expiry(void **state)
{
    struct live *l = *state;

    server_reset(200, 301, 200); /* 301 s - the 5-minute margin: good for 1 s */
    snprintf(l->ch.project, sizeof(l->ch.project), "my-proj");
    use_service_account(l);
    run_jobs(l, 1);
    assert_image(&l->f[0].job);
    run_jobs(l, 1); /* still good */
    ig_time_set_offset_ms(2000);
    run_jobs(l, 1);
    assert_image(&l->f[0].job);
    ig_fake_http_lock(&srv.http);
    assert_int_equal(srv.ntoken, 2);
    assert_int_equal(srv.nvertex, 3);
    assert_string_equal(srv.auth[1], "Bearer ya29.tok-1");
    assert_string_equal(srv.auth[2], "Bearer ya29.tok-2");
    /* The channel's project wins over the key file's. */
    assert_string_equal(srv.path[2], "/v1/projects/my-proj/locations/us-central1/publishers/"
                                     "google/models/" MODEL ":generateContent");
    ig_fake_http_unlock(&srv.http);
}

static void test_vertex__sa_401_drops_token(void **state)
{
    struct live *l = *state;
    struct ig_job *job = &l->f[0].job;

    server_reset(200, 3600, 401);
    use_service_account(l);
    run_jobs(l, 1);
    /* A token refused once may just have been revoked or expired early: the call (which never
     * ran) is retried with a new one, and the channel is not given up yet. */
    assert_int_equal(job->err, IG_E_UPSTREAM_SUBMIT);
    assert_false(job->auth_failed);
    assert_true(job->retryable);
    assert_int_equal(job->http_status, 401);
    assert_null(strstr(job->errmsg, "ya29"));
    assert_non_null(strstr(job->errmsg, "vx-test"));
    /* The router records that attempt; a fresh token refused as well: the credentials are. */
    {
        struct ig_attempt *a = ig_job_add_attempt(job);

        snprintf(a->channel, sizeof(a->channel), "vx-test");
        a->http_status = 401;
    }
    run_jobs(l, 1);
    assert_true(job->auth_failed);
    assert_false(job->retryable);
    ig_fake_http_lock(&srv.http);
    assert_int_equal(srv.ntoken, 2); /* the first token was dropped: exchanged again */
    ig_fake_http_unlock(&srv.http);
    free(job->attempts);
    job->attempts = NULL;
    job->nattempts = 0;

    /* The refused token is dropped: the next job exchanges again. */
    server_reset(200, 3600, 200);
    run_jobs(l, 1);
    assert_image(job);
    ig_fake_http_lock(&srv.http);
    assert_int_equal(srv.ntoken, 1);
    assert_string_equal(srv.auth[0], "Bearer ya29.tok-1");
    ig_fake_http_unlock(&srv.http);
}

static void test_vertex__sa_token_refused(void **state)
{
    struct live *l = *state;
    struct ig_job *job = &l->f[0].job;

    server_reset(400, 3600, 200);
    use_service_account(l);
    run_jobs(l, 2);
    for (int i = 0; i < 2; i++) {
        job = &l->f[i].job;
        assert_int_equal(job->err, IG_E_UPSTREAM_SUBMIT);
        assert_true(job->auth_failed);
        assert_int_equal(job->nimages, 0);
        assert_non_null(strstr(job->errmsg, "invalid_grant"));
    }
    ig_fake_http_lock(&srv.http);
    assert_int_equal(srv.ntoken, 1);
    assert_int_equal(srv.nvertex, 0);
    ig_fake_http_unlock(&srv.http);
}

static void test_vertex__sa_token_endpoint_down(void **state)
{
    struct live *l = *state;
    struct ig_job *job = &l->f[0].job;

    snprintf(l->ch.token_url, sizeof(l->ch.token_url), "http://127.0.0.1:1/token");
    use_service_account(l);
    run_jobs(l, 1);
    assert_int_not_equal(job->err, IG_OK);
    assert_true(job->retryable);
    assert_false(job->auth_failed);
    ig_fake_http_lock(&srv.http);
    assert_int_equal(srv.nvertex, 0);
    ig_fake_http_unlock(&srv.http);
}

static void test_vertex__sa_bad_file(void **state)
{
    struct live *l = *state;
    struct ig_job *job = &l->f[0].job;

    snprintf(l->ch.project, sizeof(l->ch.project), "p");
    snprintf(l->ch.service_account_file, sizeof(l->ch.service_account_file), "%s/nope.json",
             g_dir);
    l->p = ig_provider_vertex_new(&l->ch);
    run_jobs(l, 1);
    assert_int_not_equal(job->err, IG_OK);
    assert_true(job->auth_failed);
}

/* The key file cannot be loaded and the channel names no project (it would have come from the
 * file): the job still starts and ends as a refused credential with the reason, so the router
 * records the attempt and disables the channel, instead of failing to start every job. */
static void test_vertex__sa_bad_file_no_project(void **state)
{
    struct live *l = *state;
    struct ig_job *job = &l->f[0].job;

    snprintf(l->ch.service_account_file, sizeof(l->ch.service_account_file), "%s/nope.json",
             g_dir);
    l->p = ig_provider_vertex_new(&l->ch);
    run_jobs(l, 2);
    for (int i = 0; i < 2; i++) {
        job = &l->f[i].job;
        assert_int_equal(job->err, IG_E_UPSTREAM_SUBMIT);
        assert_true(job->auth_failed);
        assert_false(job->retryable);
        assert_int_equal(job->nimages, 0);
        assert_non_null(strstr(job->errmsg, "vx-test"));
        assert_non_null(strstr(job->errmsg, "cannot open the service account file"));
        assert_non_null(strstr(job->errmsg, "nope.json"));
    }
    ig_fake_http_lock(&srv.http);
    assert_int_equal(srv.ntoken, 0);
    assert_int_equal(srv.nvertex, 0);
    ig_fake_http_unlock(&srv.http);
}

static void test_vertex__express_mode(void **state)
{
    struct live *l = *state;

    l->ch.nkeys = 1;
    snprintf(l->ch.keys[0], sizeof(l->ch.keys[0]), "AQ.express-secret");
    l->p = ig_provider_vertex_new(&l->ch);
    run_jobs(l, 1);
    assert_image(&l->f[0].job);
    ig_fake_http_lock(&srv.http);
    assert_int_equal(srv.ntoken, 0);
    assert_string_equal(srv.path[0], "/v1/publishers/google/models/" MODEL ":generateContent");
    assert_string_equal(srv.key[0], "AQ.express-secret");
    assert_string_equal(srv.auth[0], "");
    ig_fake_http_unlock(&srv.http);
}

static void test_vertex__access_token(void **state)
{
    struct live *l = *state;
    struct ig_job *job = &l->f[0].job;

    snprintf(l->ch.project, sizeof(l->ch.project), "p-123");
    snprintf(l->ch.location, sizeof(l->ch.location), "global");
    snprintf(l->ch.access_token, sizeof(l->ch.access_token), "fixed-token-xyz");
    l->p = ig_provider_vertex_new(&l->ch);
    run_jobs(l, 1);
    assert_image(job);
    ig_fake_http_lock(&srv.http);
    assert_int_equal(srv.ntoken, 0);
    assert_string_equal(srv.path[0], "/v1/projects/p-123/locations/global/publishers/google/"
                                     "models/" MODEL ":generateContent");
    assert_string_equal(srv.auth[0], "Bearer fixed-token-xyz");
    assert_string_equal(srv.key[0], "");
    ig_fake_http_unlock(&srv.http);

    /* 401: the channel's credentials were refused. */
    server_reset(200, 3600, 401);
    run_jobs(l, 1);
    assert_true(job->auth_failed);
    assert_int_equal(job->http_status, 401);
    assert_null(strstr(job->errmsg, "fixed-token"));
}

static void test_vertex__bad_project(void **state)
{
    struct live *l = *state;
    struct ig_job *job = &l->f[0].job;

    snprintf(l->ch.project, sizeof(l->ch.project), "p/../x");
    snprintf(l->ch.access_token, sizeof(l->ch.access_token), "t");
    l->p = ig_provider_vertex_new(&l->ch);
    assert_int_equal(ig_provider_start(l->p, job), IG_E_INVALID);
    assert_null(job->pctx);
}

/* ---- setup ---- */

static int group_setup(void **state)
{
    static const char *const proxies[] = {"http_proxy",  "HTTP_PROXY", "https_proxy",
                                          "HTTPS_PROXY", "all_proxy",  "ALL_PROXY",
                                          "no_proxy",    "NO_PROXY"};
    const char *tmp = getenv("IG_TEST_TMP");
    char *pem;

    if (getenv("IG_TEST_DEBUG"))
        ig_log_set_level(IG_LOG_DEBUG);
    for (size_t i = 0; i < IG_ARRAY_LEN(proxies); i++)
        unsetenv(proxies[i]);
    if (tmp)
        mkdir(tmp, 0700);
    snprintf(g_dir, sizeof(g_dir), "%s/test_vertex.XXXXXX", tmp ? tmp : "/tmp");
    if (!mkdtemp(g_dir))
        return -1;
    g_key = EVP_RSA_gen(2048);
    if (!g_key)
        return -1;
    pem = pem_of(g_key);
    snprintf(g_sa_path, sizeof(g_sa_path), "%s/sa.json", g_dir);
    write_sa(g_sa_path, "service_account", pem, "proj-from-file");
    free(pem);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return -1;
    if (evthread_use_pthreads() != 0)
        return -1;
    return ig_fake_http_start(&srv.http, handle, &srv);
}

static int group_teardown(void **state)
{
    static const char *const files[] = {"sa.json",      "user.json",    "badpem.json",
                                        "notjson.json", "notype.json"};
    char p[700];

    server_stop(&srv);
    for (size_t i = 0; i < IG_ARRAY_LEN(files); i++) {
        snprintf(p, sizeof(p), "%s/%s", g_dir, files[i]);
        unlink(p);
    }
    rmdir(g_dir);
    EVP_PKEY_free(g_key);
    curl_global_cleanup();
    libevent_global_shutdown();
    return 0;
}

#define L(name) cmocka_unit_test_setup_teardown(name, live_setup, live_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vertex__jwt),
        cmocka_unit_test(test_vertex__load_errors),
        L(test_vertex__sa_one_exchange_for_parallel_jobs),
        L(test_vertex__sa_refresh_after_expiry),
        L(test_vertex__sa_401_drops_token),
        L(test_vertex__sa_token_refused),
        L(test_vertex__sa_token_endpoint_down),
        L(test_vertex__sa_bad_file),
        L(test_vertex__sa_bad_file_no_project),
        L(test_vertex__express_mode),
        L(test_vertex__access_token),
        L(test_vertex__bad_project),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
