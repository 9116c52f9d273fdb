/* idempotency.c: Idempotency-Key (see idempotency.h). */
#include "base/base.h"
#include "base/mailbox.h"
#include "http/idempotency.h"

#include <event2/event.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IDEM_KEY_MAX 255

/* A duplicate waiting for the first use of its key to end (at most --idempotency-wait-ms). */
struct parked {
    struct parked *next;
    struct ig_hreq *hr;
    void (*retry)(struct ig_hreq *hr);
    struct ig_idem_registry *reg;
    struct event *timer; /* on hr's loop */
};

/* A key being admitted now, in this process. */
struct inflight {
    struct inflight *next;
    int64_t key_id;
    char idem_key[IDEM_KEY_MAX + 1];
    struct parked *parked;
};

struct ig_idem_registry {
    pthread_mutex_t mu;
    struct inflight *list; /* few at a time: one per key being admitted right now */
};

struct ig_idem_use {
    struct ig_idem_registry *reg;
    struct ig_idem_record rec;
};

struct ig_idem_registry *ig_idem_registry_new(void)
{
    struct ig_idem_registry *r = ig_xcalloc(1, sizeof(*r));

    pthread_mutex_init(&r->mu, NULL);
    return r;
}

void ig_idem_registry_free(struct ig_idem_registry *r)
{
    if (!r)
        return;
    while (r->list) {
        struct inflight *f = r->list;

        r->list = f->next;
        while (f->parked) { /* (their loops, and timers, are gone with the server) */
            struct parked *p = f->parked;

            f->parked = p->next;
            free(p);
        }
        free(f);
    }
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static bool valid_key(const char *k)
{
    size_t n = strlen(k);

    if (n == 0 || n > IDEM_KEY_MAX)
        return false;
    for (; *k; k++)
        if (*k < 0x20 || *k > 0x7e)
            return false;
    return true;
}

/* SHA-256 over the route, a NUL, and the body. */
static void request_hash(const char *route, const char *body, size_t len,
                         unsigned char out[IG_SHA256_LEN])
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned int n = 0;

    if (!c || !EVP_DigestInit_ex(c, EVP_sha256(), NULL) ||
        !EVP_DigestUpdate(c, route, strlen(route) + 1) || !EVP_DigestUpdate(c, body, len) ||
        !EVP_DigestFinal_ex(c, out, &n))
        IG_BUG("idempotency: SHA-256 failed");
    EVP_MD_CTX_free(c);
}

/* The first use is taking too long to be admitted: 409, as Stripe answers at once. Runs on
 * the duplicate's own loop; if the first ended meanwhile, its retry is already on the way to
 * this loop and answers instead. */
static void on_wait_over(evutil_socket_t fd, short what, void *arg)
{
    struct parked *p = arg;
    struct ig_idem_registry *reg = p->reg;
    bool found = false;

    pthread_mutex_lock(&reg->mu);
    for (struct inflight *f = reg->list; f && !found; f = f->next) {
        for (struct parked **pp = &f->parked; *pp; pp = &(*pp)->next) {
            if (*pp == p) {
                *pp = p->next;
                found = true;
                break;
            }
        }
    }
    pthread_mutex_unlock(&reg->mu);
    if (!found)
        return;
    ig_http_error_status(p->hr, 409, IG_E_CONFLICT, "Idempotency-Key",
                         "a request with this Idempotency-Key is still being admitted; retry "
                         "in a moment");
    event_free(p->timer);
    free(p);
}

enum ig_idem_step ig_idem_begin(struct ig_hreq *hr, const struct ig_key *k, const char *route,
                                void (*retry)(struct ig_hreq *hr), struct ig_idem_use **use)
{
    return ig_idem_begin_sync(hr, k, route, retry, NULL, use);
}

enum ig_idem_step ig_idem_begin_sync(struct ig_hreq *hr, const struct ig_key *k, const char *route,
                                     void (*retry)(struct ig_hreq *hr),
                                     void (*attach)(struct ig_hreq *hr, const struct ig_id *task),
                                     struct ig_idem_use **use)
{
    const char *key = ig_http_get_header(hr, "Idempotency-Key");
    struct ig_idem_registry *reg = hr->app->idem;
    struct ig_idem_record rec;
    unsigned char h[IG_SHA256_LEN];
    const char *body;
    size_t len;
    enum ig_err err;
    struct inflight *f;

    *use = NULL;
    if (!key)
        return IG_IDEM_NONE;
    if (!valid_key(key)) {
        ig_http_error(hr, IG_E_INVALID, "Idempotency-Key",
                      "Idempotency-Key must be 1 to %d printable ASCII characters", IDEM_KEY_MAX);
        return IG_IDEM_DONE;
    }
    body = ig_http_body(hr, &len);
    request_hash(route, body, len, h);
    memset(&rec, 0, sizeof(rec));
    err = ig_store_idem_get(hr->store, k->id, key,
                            ig_now_ms() - (int64_t)hr->app->cfg.idempotency_ttl_s * 1000, &rec);
    if (err == IG_OK) {
        if (memcmp(rec.request_hash, h, IG_SHA256_LEN) != 0) {
            ig_http_error_status(hr, 422, IG_E_CONFLICT, "Idempotency-Key",
                                 "this Idempotency-Key was used with a different request; use a "
                                 "new key for a new request");
        } else if (attach && rec.has_task && strcmp(rec.content_type, IG_IDEM_TASK_CTYPE) == 0) {
            ig_http_header(hr, "Idempotent-Replayed", "true");
            attach(hr, &rec.task);
        } else {
            ig_http_header(hr, "Idempotent-Replayed", "true");
            ig_http_reply_bytes(hr, rec.status, rec.content_type, rec.response, rec.len);
        }
        free(rec.response);
        return IG_IDEM_DONE;
    }
    if (err != IG_E_NOT_FOUND) {
        ig_http_error(hr, IG_E_INTERNAL, NULL, "Internal error — please retry");
        return IG_IDEM_DONE;
    }
    pthread_mutex_lock(&reg->mu);
    for (f = reg->list; f; f = f->next)
        if (f->key_id == k->id && strcmp(f->idem_key, key) == 0)
            break;
    if (f) { /* the first is being admitted: wait for it, a while */
        struct parked *p = ig_xcalloc(1, sizeof(*p));
        int ms = hr->app->cfg.idempotency_wait_ms;
        struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

        p->hr = hr;
        p->retry = retry;
        p->reg = reg;
        p->timer = evtimer_new(ig_mailbox_base(hr->mb), on_wait_over, p);
        if (!p->timer)
            IG_BUG("idempotency: evtimer_new failed");
        p->next = f->parked;
        f->parked = p;
        pthread_mutex_unlock(&reg->mu);
        evtimer_add(p->timer, &tv); /* (on this loop: cannot fire before we return) */
        return IG_IDEM_DONE;
    }
    f = ig_xcalloc(1, sizeof(*f));
    f->key_id = k->id;
    snprintf(f->idem_key, sizeof(f->idem_key), "%s", key);
    f->next = reg->list;
    reg->list = f;
    pthread_mutex_unlock(&reg->mu);

    *use = ig_xcalloc(1, sizeof(**use));
    (*use)->reg = reg;
    (*use)->rec.key_id = k->id;
    snprintf((*use)->rec.idem_key, sizeof((*use)->rec.idem_key), "%s", key);
    memcpy((*use)->rec.request_hash, h, IG_SHA256_LEN);
    return IG_IDEM_PROCEED;
}

const struct ig_idem_record *ig_idem_prepare(struct ig_idem_use *u, int status, const char *ctype,
                                             const char *body, size_t len)
{
    free(u->rec.response);
    u->rec.status = status;
    snprintf(u->rec.content_type, sizeof(u->rec.content_type), "%s", ctype);
    u->rec.response = ig_xmalloc(len + 1);
    memcpy(u->rec.response, body, len);
    u->rec.response[len] = '\0';
    u->rec.len = len;
    u->rec.created_ms = ig_now_ms();
    return &u->rec;
}

static void run_retry(void *arg)
{
    struct parked *p = arg;

    event_free(p->timer);
    p->retry(p->hr);
    free(p);
}

void ig_idem_end(struct ig_idem_use *u)
{
    struct ig_idem_registry *reg = u->reg;
    struct inflight **pp, *f = NULL;
    struct parked *p;

    pthread_mutex_lock(&reg->mu);
    for (pp = &reg->list; *pp; pp = &(*pp)->next) {
        if ((*pp)->key_id == u->rec.key_id && strcmp((*pp)->idem_key, u->rec.idem_key) == 0) {
            f = *pp;
            *pp = f->next;
            break;
        }
    }
    pthread_mutex_unlock(&reg->mu);
    /* Each parked duplicate runs its route again on its own loop: it finds the record and
     * replays it, or (the first was refused) is admitted itself — one of them, the others
     * park behind it. */
    while (f && (p = f->parked)) {
        f->parked = p->next;
        ig_mailbox_post(p->hr->mb, run_retry, p);
    }
    free(f);
    free(u->rec.response);
    free(u);
}
