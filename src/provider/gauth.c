/* gauth.c: Google service-account authorisation: load the JSON key, sign an RS256 JWT, exchange
 * it for an access token over the curl transport, cache the token, queue the callers that ask
 * while an exchange runs.
 *
 * State (the cached token, the waiters, whether an exchange runs) sits behind one mutex:
 * callers may be on several loops. Every callback is delivered with event_base_once() on the
 * caller's own loop, so a caller is never called back from inside ig_gauth_get(). */
#include "base/base.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "net/transport.h"
#include "provider/gauth.h"

#define KEY_FILE_MAX    (64 * 1024)
#define TOKEN_RESP_MAX  (64 * 1024)
#define TOKEN_MAX       4096
#define JWT_LIFETIME_S  3600
#define XCHG_TIMEOUT_MS 30000
#define XCHG_CONNECT_MS 10000

struct waiter {
    struct waiter *next;
    ig_gauth_cb *cb;
    void *arg;
    struct event_base *base;
    char *token; /* owned copy, wiped on free */
    enum ig_err err;
    char msg[256];
};

struct ig_gauth {
    char email[256];
    char key_id[128];
    char project[128];
    char token_url[512];
    EVP_PKEY *pkey;

    pthread_mutex_t mu;
    char token[TOKEN_MAX]; /* cached access token, "" when none */
    int64_t valid_until_ms;  /* wall clock (ig_now_ms) */
    bool inflight;
    bool dying;              /* freed while an exchange ran: the exchange's end frees it */
    struct waiter *waiters;

    /* the exchange in flight */
    char *post;
    struct curl_slist *headers;
    struct ig_buf resp;
    char errbuf[CURL_ERROR_SIZE];
};

static void wipe_free(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

/* ---- loading ---- */

static char *read_file(const char *path, size_t *len, struct ig_errbuf *eb)
{
    FILE *f = fopen(path, "rb");
    struct ig_buf b = IG_BUF_INIT(KEY_FILE_MAX);
    char chunk[4096];
    size_t n;

    if (!f) {
        ig_fail(eb, IG_E_IO, "service_account_file", "cannot open the service account file %s",
                path);
        return NULL;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (ig_buf_add(&b, chunk, n) != IG_OK) {
            OPENSSL_cleanse(chunk, sizeof(chunk));
            fclose(f);
            if (b.data)
                OPENSSL_cleanse(b.data, b.len);
            ig_buf_release(&b);
            ig_fail(eb, IG_E_TOOBIG, "service_account_file",
                    "the service account file %s exceeds %d bytes", path, KEY_FILE_MAX);
            return NULL;
        }
    }
    OPENSSL_cleanse(chunk, sizeof(chunk));
    fclose(f);
    return ig_buf_detach(&b, len);
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool copy_str(char *dst, size_t n, const char *s)
{
    size_t len = s ? strlen(s) : 0;

    if (len >= n)
        return false;
    memcpy(dst, s ? s : "", len + 1);
    return true;
}

struct ig_gauth *ig_gauth_new(const char *path, const char *token_url, struct ig_errbuf *eb)
{
    struct ig_gauth *ga = NULL;
    size_t len = 0;
    char *text = read_file(path, &len, eb);
    cJSON *root = NULL;
    const char *type, *pem, *uri;
    BIO *bio = NULL;

    if (!text)
        return NULL;
    root = cJSON_ParseWithLength(text, len);
    OPENSSL_cleanse(text, len);
    free(text);
    if (!cJSON_IsObject(root)) {
        ig_fail(eb, IG_E_INVALID, "service_account_file",
                "the service account file %s is not a JSON object", path);
        goto out;
    }
    type = jstr(root, "type");
    if (type && strcmp(type, "service_account") != 0) {
        ig_fail(eb, IG_E_INVALID, "service_account_file",
                "the key file %s is not a service account key (type \"service_account\")", path);
        goto out;
    }
    pem = jstr(root, "private_key");
    if (!jstr(root, "client_email") || !jstr(root, "client_email")[0] || !pem || !pem[0]) {
        ig_fail(eb, IG_E_INVALID, "service_account_file",
                "the service account file %s lacks client_email or private_key", path);
        goto out;
    }
    ga = ig_xcalloc(1, sizeof(*ga));
    if (!copy_str(ga->email, sizeof(ga->email), jstr(root, "client_email")) ||
        !copy_str(ga->key_id, sizeof(ga->key_id), jstr(root, "private_key_id")) ||
        !copy_str(ga->project, sizeof(ga->project), jstr(root, "project_id"))) {
        ig_fail(eb, IG_E_INVALID, "service_account_file",
                "the service account file %s has an over-long field", path);
        goto fail;
    }
    uri = token_url && token_url[0] ? token_url : jstr(root, "token_uri");
    if (!uri || !uri[0])
        uri = IG_GAUTH_DEFAULT_TOKEN_URL;
    if (!copy_str(ga->token_url, sizeof(ga->token_url), uri) ||
        (strncmp(uri, "https://", 8) != 0 && strncmp(uri, "http://", 7) != 0)) {
        ig_fail(eb, IG_E_INVALID, "token_url", "the token URL must be http(s)");
        goto fail;
    }
    bio = BIO_new_mem_buf(pem, -1);
    ga->pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (!ga->pkey || EVP_PKEY_get_base_id(ga->pkey) != EVP_PKEY_RSA) {
        ig_fail(eb, IG_E_INVALID, "service_account_file",
                "the private_key of %s is not an RSA private key in PEM", path);
        goto fail;
    }
    pthread_mutex_init(&ga->mu, NULL);
    goto out;
fail:
    EVP_PKEY_free(ga->pkey);
    free(ga);
    ga = NULL;
out:
    if (root) {
        cJSON *k = cJSON_GetObjectItemCaseSensitive(root, "private_key");

        if (cJSON_IsString(k))
            OPENSSL_cleanse(k->valuestring, strlen(k->valuestring));
    }
    cJSON_Delete(root);
    return ga;
}

static void free_now(struct ig_gauth *ga)
{
    struct waiter *w, *next;

    for (w = ga->waiters; w; w = next) {
        next = w->next;
        wipe_free(w->token);
        free(w);
    }
    OPENSSL_cleanse(ga->token, sizeof(ga->token));
    EVP_PKEY_free(ga->pkey);
    pthread_mutex_destroy(&ga->mu);
    free(ga);
}

void ig_gauth_free(struct ig_gauth *ga)
{
    bool later;

    if (!ga)
        return;
    pthread_mutex_lock(&ga->mu);
    later = ga->inflight;
    ga->dying = later;
    pthread_mutex_unlock(&ga->mu);
    if (!later)
        free_now(ga);
}

const char *ig_gauth_project(const struct ig_gauth *ga)
{
    return ga->project;
}

const char *ig_gauth_email(const struct ig_gauth *ga)
{
    return ga->email;
}

/* ---- the JWT ---- */

/* base64url without padding of p[0..n) appended to b. */
static enum ig_err add_b64url(struct ig_buf *b, const void *p, size_t n)
{
    size_t cap = 4 * ((n + 2) / 3) + 1;
    unsigned char *tmp = ig_xmalloc(cap);
    int m = EVP_EncodeBlock(tmp, p, (int)n);
    enum ig_err err;

    while (m > 0 && tmp[m - 1] == '=')
        m--;
    for (int i = 0; i < m; i++) {
        if (tmp[i] == '+')
            tmp[i] = '-';
        else if (tmp[i] == '/')
            tmp[i] = '_';
    }
    err = ig_buf_add(b, tmp, (size_t)m);
    free(tmp);
    return err;
}

static enum ig_err add_json_b64url(struct ig_buf *b, cJSON *o)
{
    char *s = cJSON_PrintUnformatted(o);
    enum ig_err err;

    if (!s)
        return IG_E_NOMEM;
    err = add_b64url(b, s, strlen(s));
    cJSON_free(s);
    return err;
}

char *ig_gauth_jwt(const struct ig_gauth *ga, int64_t now_s)
{
    struct ig_buf b = IG_BUF_INIT(64 * 1024);
    cJSON *hdr = cJSON_CreateObject(), *cl = cJSON_CreateObject();
    EVP_MD_CTX *md = NULL;
    unsigned char *sig = NULL;
    size_t siglen = 0;
    char *out = NULL;

    if (!hdr || !cl)
        goto out;
    cJSON_AddStringToObject(hdr, "alg", "RS256");
    cJSON_AddStringToObject(hdr, "typ", "JWT");
    if (ga->key_id[0])
        cJSON_AddStringToObject(hdr, "kid", ga->key_id);
    cJSON_AddStringToObject(cl, "iss", ga->email);
    cJSON_AddStringToObject(cl, "scope", IG_GAUTH_SCOPE);
    cJSON_AddStringToObject(cl, "aud", ga->token_url);
    cJSON_AddNumberToObject(cl, "iat", (double)now_s);
    cJSON_AddNumberToObject(cl, "exp", (double)(now_s + JWT_LIFETIME_S));
    if (add_json_b64url(&b, hdr) || ig_buf_adds(&b, ".") || add_json_b64url(&b, cl))
        goto out;

    md = EVP_MD_CTX_new();
    if (!md || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, ga->pkey) != 1 ||
        EVP_DigestSign(md, NULL, &siglen, (const unsigned char *)b.data, b.len) != 1)
        goto out;
    sig = ig_xmalloc(siglen);
    if (EVP_DigestSign(md, sig, &siglen, (const unsigned char *)b.data, b.len) != 1)
        goto out;
    if (ig_buf_adds(&b, ".") || add_b64url(&b, sig, siglen))
        goto out;
    out = ig_buf_detach(&b, NULL);
out:
    EVP_MD_CTX_free(md);
    free(sig);
    ig_buf_release(&b);
    cJSON_Delete(hdr);
    cJSON_Delete(cl);
    return out;
}

/* ---- delivering ---- */

static void deliver_cb(evutil_socket_t fd, short what, void *arg)
{
    struct waiter *w = arg;

    w->cb(w->err == IG_OK ? w->token : NULL, w->err, w->msg, w->arg);
    wipe_free(w->token);
    free(w);
}

/* Call w back on its loop (a zero timer). */
static void deliver(struct waiter *w)
{
    static const struct timeval zero = {0, 0};

    if (event_base_once(w->base, -1, EV_TIMEOUT, deliver_cb, w, &zero) != 0) {
        /* Nothing else can call it back: this is a broken loop, not a runtime condition. */
        IG_BUG("gauth: event_base_once failed");
    }
}

/* Hand the outcome to every waiter of the list (outside the lock). */
static void deliver_all(struct waiter *list, const char *token, enum ig_err err, const char *msg)
{
    struct waiter *next;

    for (; list; list = next) {
        next = list->next;
        list->err = err;
        if (err == IG_OK)
            list->token = ig_xstrdup(token);
        snprintf(list->msg, sizeof(list->msg), "%s", msg ? msg : "");
        deliver(list);
    }
}

/* ---- the exchange ---- */

static size_t write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
    struct ig_gauth *ga = userp;
    size_t n = size * nmemb;

    return ig_buf_add(&ga->resp, data, n) == IG_OK ? n : 0;
}

/* Printable ASCII of s, at most n bytes, into dst (the endpoint's words, never a secret). */
static void copy_printable(char *dst, size_t dstlen, const char *s, size_t n)
{
    size_t k = 0;

    for (size_t i = 0; s && s[i] && i < n && k + 1 < dstlen; i++)
        dst[k++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    dst[k] = '\0';
}

/* Parse the token answer. IG_OK with ga->token and ga->valid_until_ms set (under the lock). */
static enum ig_err parse_answer(struct ig_gauth *ga, long status, char *msg, size_t msglen)
{
    cJSON *root = cJSON_ParseWithLength(ga->resp.data ? ga->resp.data : "", ga->resp.len);
    const char *tok = jstr(root, "access_token");
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(root, "expires_in");
    enum ig_err err;

    if (status == 200 && tok && tok[0] && strlen(tok) < sizeof(ga->token)) {
        int64_t life_ms = cJSON_IsNumber(exp) && exp->valuedouble > 0
                              ? (int64_t)(exp->valuedouble * 1000.0)
                              : (int64_t)JWT_LIFETIME_S * 1000;
        int64_t valid_ms = life_ms > IG_GAUTH_MARGIN_MS ? life_ms - IG_GAUTH_MARGIN_MS : life_ms / 2;

        memcpy(ga->token, tok, strlen(tok) + 1);
        ga->valid_until_ms = ig_now_ms() + valid_ms;
        err = IG_OK;
    } else {
        char e[64], d[140]; /* with the text around them, under the 256 bytes of msg */

        copy_printable(e, sizeof(e), jstr(root, "error"), 60);
        copy_printable(d, sizeof(d), jstr(root, "error_description"), 130);
        if (status == 200)
            snprintf(msg, msglen, "the token endpoint answered without a usable access_token");
        else
            snprintf(msg, msglen, "the token endpoint answered HTTP %ld%s%s%s%s", status,
                     e[0] ? ": " : "", e, d[0] ? ": " : "", d);
        err = status >= 400 && status < 500 && status != 408 && status != 429
                  ? IG_E_UNAUTHENTICATED
                  : IG_E_UPSTREAM_SUBMIT;
    }
    if (tok)
        OPENSSL_cleanse((char *)tok, strlen(tok));
    cJSON_Delete(root);
    if (ga->resp.data)
        OPENSSL_cleanse(ga->resp.data, ga->resp.len);
    return err;
}

static void exchange_done(CURL *easy, CURLcode rc, void *arg)
{
    struct ig_gauth *ga = arg;
    struct waiter *list;
    long status = 0;
    char msg[256] = "";
    char token[TOKEN_MAX] = "";
    enum ig_err err;
    bool dying;

    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(easy);
    curl_slist_free_all(ga->headers);
    ga->headers = NULL;
    wipe_free(ga->post);
    ga->post = NULL;

    pthread_mutex_lock(&ga->mu);
    if (rc != CURLE_OK) {
        snprintf(msg, sizeof(msg), "the token endpoint could not be reached: %s",
                 curl_easy_strerror(rc));
        err = IG_E_UPSTREAM_SUBMIT;
    } else {
        err = parse_answer(ga, status, msg, sizeof(msg));
    }
    if (err == IG_OK)
        memcpy(token, ga->token, sizeof(token));
    ig_buf_release(&ga->resp);
    list = ga->waiters;
    ga->waiters = NULL;
    ga->inflight = false;
    dying = ga->dying;
    pthread_mutex_unlock(&ga->mu);

    if (err == IG_OK)
        ig_debug("gauth: %s: access token obtained", ga->email);
    else
        ig_warn("gauth: %s: %s", ga->email, msg);
    if (dying) {
        ga->waiters = list; /* dropped uncalled: their owner is gone */
        free_now(ga);
    } else {
        deliver_all(list, token, err, msg);
    }
    OPENSSL_cleanse(token, sizeof(token));
}

/* Start an exchange (the lock is held, inflight is set). */
static enum ig_err start_exchange(struct ig_gauth *ga, struct ig_transport *tp, char *msg,
                                  size_t msglen)
{
    char *jwt = ig_gauth_jwt(ga, ig_now_ms() / 1000);
    CURL *e;
    CURLcode rc = CURLE_OK;

    if (!jwt) {
        snprintf(msg, msglen, "signing the JWT failed");
        return IG_E_INTERNAL;
    }
    ga->post = ig_xasprintf("grant_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Agrant-type%%3Ajwt-bearer"
                            "&assertion=%s", jwt); /* base64url needs no escaping */
    wipe_free(jwt);
    ig_buf_init(&ga->resp, TOKEN_RESP_MAX);
    ga->headers = curl_slist_append(NULL, "Content-Type: application/x-www-form-urlencoded");
    e = ga->headers ? curl_easy_init() : NULL;
    if (!e) {
        rc = CURLE_OUT_OF_MEMORY;
        goto fail;
    }
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(e, opt, val);                                                    \
    } while (0)
    SET(CURLOPT_URL, ga->token_url);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_POSTFIELDS, ga->post);
    SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(ga->post));
    SET(CURLOPT_HTTPHEADER, ga->headers);
    SET(CURLOPT_CONNECTTIMEOUT_MS, (long)XCHG_CONNECT_MS);
    SET(CURLOPT_TIMEOUT_MS, (long)XCHG_TIMEOUT_MS);
    SET(CURLOPT_WRITEFUNCTION, write_cb);
    SET(CURLOPT_WRITEDATA, ga);
    SET(CURLOPT_USERAGENT, "imagegate/0.1");
    SET(CURLOPT_ERRORBUFFER, ga->errbuf);
#undef SET
    if (rc != CURLE_OK || ig_transport_add(tp, e, exchange_done, ga) != IG_OK)
        goto fail;
    return IG_OK;
fail:
    if (e)
        curl_easy_cleanup(e);
    curl_slist_free_all(ga->headers);
    ga->headers = NULL;
    wipe_free(ga->post);
    ga->post = NULL;
    ig_buf_release(&ga->resp);
    snprintf(msg, msglen, "the token exchange could not start: %s", curl_easy_strerror(rc));
    return IG_E_UPSTREAM_SUBMIT;
}

void ig_gauth_get(struct ig_gauth *ga, struct event_base *base, struct ig_transport *tp,
                  ig_gauth_cb *cb, void *arg)
{
    struct waiter *w = ig_xcalloc(1, sizeof(*w));
    struct waiter *list = NULL;
    char msg[256] = "";
    enum ig_err err = IG_OK;

    w->cb = cb;
    w->arg = arg;
    w->base = base;
    pthread_mutex_lock(&ga->mu);
    if (ga->token[0] && ig_now_ms() < ga->valid_until_ms) {
        w->token = ig_xstrdup(ga->token);
        pthread_mutex_unlock(&ga->mu);
        deliver(w);
        return;
    }
    w->next = ga->waiters;
    ga->waiters = w;
    if (!ga->inflight) {
        ga->inflight = true;
        err = start_exchange(ga, tp, msg, sizeof(msg));
        if (err) {
            ga->inflight = false;
            list = ga->waiters;
            ga->waiters = NULL;
        }
    }
    pthread_mutex_unlock(&ga->mu);
    if (err) {
        ig_warn("gauth: %s: %s", ga->email, msg);
        deliver_all(list, NULL, err, msg);
    }
}

void ig_gauth_invalidate(struct ig_gauth *ga)
{
    pthread_mutex_lock(&ga->mu);
    OPENSSL_cleanse(ga->token, sizeof(ga->token));
    ga->valid_until_ms = 0;
    pthread_mutex_unlock(&ga->mu);
}
