/* store.h: the durable store of tasks and keys, as an ops table behind wrappers.
 *
 * One struct ig_store is one connection: each thread opens its own. Calls are synchronous;
 * the HTTP loops never call the writing ones directly but go through the writer thread
 * (writer.h), which batches many writes into one transaction (group commit). Reads may run
 * on the loops (SQLite WAL readers never block on the writer).
 *
 * Every state change is a compare-and-swap: task_finish and friends succeed only when the
 * task is still in the state (and lease) the caller expects, else IG_E_CONFLICT.
 *
 * Backends: "sqlite" (store_sqlite.c). A PostgreSQL backend implements the same ops. */
#ifndef IG_STORE_H
#define IG_STORE_H

#include "base/base.h"
#include "core/task.h"

struct ig_store;

struct ig_key {
    int64_t id;
    unsigned char hash[IG_SHA256_LEN]; /* SHA-256 of the secret; the secret is never stored */
    char name[64];
    int64_t created_ms;
    int64_t credits;                   /* balance, micro-dollars: the sum of its ledger entries */
    bool metered;                      /* refused when the balance cannot pay; else it records */
    bool revoked;
    int rate_rpm;                      /* submits per minute; -1: the server's default, 0: none */
    int max_tasks;                     /* unfinished tasks; -1: the server's default, 0: none */
    unsigned scopes;                   /* IG_SCOPE_* */
    int64_t expires_ms;                /* refused from then on; 0: never */
    char models[512];                  /* catalog ids it may use, comma-separated; "": all */
};

#define IG_SCOPE_GENERATE 1u /* submit and poll */
#define IG_SCOPE_ADMIN 2u    /* the admin API */

/* The first response to a submit made with an Idempotency-Key, kept to be replayed. */
struct ig_idem_record {
    int64_t key_id;
    char idem_key[256];
    unsigned char request_hash[IG_SHA256_LEN]; /* of the route and the body */
    int status;
    char content_type[64];
    char *response; /* owned; NUL-terminated for convenience */
    size_t len;
    int64_t created_ms;
    bool has_task;
    struct ig_id task; /* the task it admitted (set by idem_get) */
};

/* One line of a usage report: tasks created in [from, to), by UTC day and model (or, for the
 * operator's view, by channel over the whole span: day is then ""). */
struct ig_usage_row {
    char day[11];    /* "2026-11-23" */
    char name[96];   /* the catalog model, or the channel ("" when none ran it) */
    int64_t tasks, succeeded, images, image_tokens, text_tokens;
    int64_t charged; /* micro-dollars captured */
    int64_t cost;    /* micro-dollars the upstreams charged (channels' cost_per_image_usd) */
};
typedef void ig_store_usage_fn(const struct ig_usage_row *row, void *arg);

/* One key (key_list). */
typedef void ig_store_key_fn(const struct ig_key *k, void *arg);
/* One key's balance against its ledger (ledger_check). */
typedef void ig_store_balance_fn(int64_t key_id, int64_t balance, int64_t ledger_sum, void *arg);

/* What the expiry sweep found: a blob that no unexpired task references any more. */
typedef void ig_store_blob_fn(const char *blob, const char *ext, void *arg);

struct ig_store_ops {
    const char *name;
    int abi_version; /* 1 */

    enum ig_err (*open)(struct ig_store *s, const char *dsn, struct ig_errbuf *eb);
    void (*close)(struct ig_store *s);
    /* Apply every schema migration not yet applied (idempotent). */
    enum ig_err (*migrate)(struct ig_store *s, struct ig_errbuf *eb);

    /* Transactions: the writer wraps batches in begin/commit and each job in a savepoint. */
    enum ig_err (*begin)(struct ig_store *s);
    enum ig_err (*commit)(struct ig_store *s);
    enum ig_err (*rollback)(struct ig_store *s);
    enum ig_err (*savepoint)(struct ig_store *s);
    enum ig_err (*release)(struct ig_store *s);
    enum ig_err (*rollback_to)(struct ig_store *s);

    /* Tasks. */
    /* Admission of a queued or running task, all in one transaction: IG_E_RATE_LIMITED when
     * its key already has t->admit_max_tasks unfinished tasks (if > 0), IG_E_INSUFFICIENT when
     * a metered key cannot hold t->price_held; else the row, the hold and, with t->idem, the
     * Idempotency-Key record (IG_E_CONFLICT if the key was used meanwhile). */
    enum ig_err (*task_insert)(struct ig_store *s, const struct ig_task *t);
    /* IG_E_NOT_FOUND when absent. Fills every field of out (out is released first). */
    enum ig_err (*task_get)(struct ig_store *s, const struct ig_id *id, struct ig_task *out);
    /* Claim up to max runnable tasks, oldest first: queued ones, and running ones whose lease
     * ended before now. Each claimed task becomes running with lease (owner, lease_until),
     * attempts + 1, started_ms set if 0. Tasks whose deadline passed, or whose attempts would
     * exceed max_attempts, are not claimed but finished as failed (IG_E_UPSTREAM_TIMEOUT or
     * IG_E_INTERNAL "attempts exhausted") in the same call; their ids are reported in
     * failed/nfailed so waiters can be woken. At most maxfailed are failed per call, so every
     * task failed is reported (the rest wait for the next call). deadline_ms 0 and
     * max_attempts 0 mean "no limit". out[] is written as raw memory; the caller releases the
     * *nout tasks. Outside a transaction the call makes its own (BEGIN IMMEDIATE). */
    enum ig_err (*task_claim)(struct ig_store *s, int64_t now, const char *owner,
                              int64_t lease_until, int max, struct ig_task *out, int *nout,
                              struct ig_id *failed, int maxfailed, int *nfailed);
    /* Extend the lease of a task we hold. IG_E_CONFLICT when we no longer hold it. A negative
     * progress keeps the stored one. */
    enum ig_err (*task_renew)(struct ig_store *s, const struct ig_id *id, const char *owner,
                              int attempt, int64_t lease_until, int progress);
    /* Move a running task we hold (owner, attempt) to a terminal state, writing outputs,
     * usage, text, error and finished_ms from t. IG_E_CONFLICT when the CAS fails. */
    enum ig_err (*task_finish)(struct ig_store *s, const struct ig_task *t, const char *owner,
                               int attempt);
    /* Put a running task we hold back to queued (graceful stop); the attempt is given back
     * when uncount is true. */
    enum ig_err (*task_requeue)(struct ig_store *s, const struct ig_id *id, const char *owner,
                                int attempt, bool uncount);
    /* Cancel a queued or running task (any owner). IG_E_CONFLICT when already terminal,
     * IG_E_NOT_FOUND when there is no such task. */
    enum ig_err (*task_cancel)(struct ig_store *s, const struct ig_id *id, int64_t now);
    /* Start-up on a single node: every running lease belongs to a dead process; end them. */
    enum ig_err (*task_expire_leases)(struct ig_store *s, int64_t now, int *n);
    /* Mark outputs of tasks with expires_ms <= now as expired; report every blob no longer
     * referenced by an unexpired task. fn (may be NULL) runs after the marks are committed when
     * the call made its own transaction; inside the caller's, before the caller commits. */
    enum ig_err (*sweep_expired)(struct ig_store *s, int64_t now, ig_store_blob_fn *fn, void *arg,
                                 int *ntasks);
    /* Count tasks by state (for health and tests); counts has IG_TASK__COUNT slots. */
    enum ig_err (*task_counts)(struct ig_store *s, int64_t *counts);

    /* Keys. */
    /* Sets k->id; a non-zero k->credits is the first top-up, entered in the ledger. */
    enum ig_err (*key_insert)(struct ig_store *s, struct ig_key *k);
    /* Add amount (micro-dollars; negative takes away) to a key's balance as a ledger entry of
     * kind "topup" (amount > 0) or "adjust". A metered key's balance never goes below 0
     * (IG_E_INSUFFICIENT). IG_E_NOT_FOUND for an unknown key. */
    enum ig_err (*key_credit)(struct ig_store *s, int64_t key_id, int64_t amount, int64_t now,
                              const char *note, int64_t *balance);
    /* Revoke a key (refused from its next check; the per-thread caches keep it at most
     * IG_KEY_CACHE_MS unless ig_key_cache_flush_all() is called). IG_E_NOT_FOUND. */
    enum ig_err (*key_revoke)(struct ig_store *s, int64_t key_id);
    enum ig_err (*key_get)(struct ig_store *s, int64_t key_id, struct ig_key *out);
    /* A key's own limits (-1: back to the server's default, 0: none). IG_E_NOT_FOUND. */
    enum ig_err (*key_set_limits)(struct ig_store *s, int64_t key_id, int rate_rpm, int max_tasks);
    /* Idempotency-Key records: the one for (key_id, idem_key) made at or after since_ms
     * (IG_E_NOT_FOUND otherwise; out->response is the caller's to free), and deleting those
     * made before before_ms. A record is written by task_insert, with its task (t->idem). */
    enum ig_err (*idem_get)(struct ig_store *s, int64_t key_id, const char *idem_key,
                            int64_t since_ms, struct ig_idem_record *out);
    enum ig_err (*idem_sweep)(struct ig_store *s, int64_t before_ms, int *n);
    /* Usage of one key (key_id > 0) or of all keys (0), tasks created in [from_ms, to_ms), by
     * day and model, or (by_channel) by channel. */
    enum ig_err (*usage)(struct ig_store *s, int64_t key_id, int64_t from_ms, int64_t to_ms,
                         bool by_channel, ig_store_usage_fn *fn, void *arg);
    /* Every key, by id. */
    enum ig_err (*key_list)(struct ig_store *s, ig_store_key_fn *fn, void *arg);
    /* Every key's balance and the sum of its ledger entries (they must be equal). */
    enum ig_err (*ledger_check)(struct ig_store *s, ig_store_balance_fn *fn, void *arg);
    enum ig_err (*key_by_hash)(struct ig_store *s, const unsigned char hash[IG_SHA256_LEN],
                               struct ig_key *out);
    enum ig_err (*key_count)(struct ig_store *s, int64_t *n);
};

struct ig_store {
    const struct ig_store_ops *ops;
    void *ctx;
    char errmsg[256]; /* last backend error, for logs */
};

/* Open a connection: dsn "sqlite:/path/to/imagegate.db" or a bare path. */
enum ig_err ig_store_open(struct ig_store **out, const char *dsn, struct ig_errbuf *eb);
void ig_store_close(struct ig_store *s);

static inline enum ig_err ig_store_migrate(struct ig_store *s, struct ig_errbuf *eb)
{
    return s->ops->migrate(s, eb);
}
static inline enum ig_err ig_store_begin(struct ig_store *s) { return s->ops->begin(s); }
static inline enum ig_err ig_store_commit(struct ig_store *s) { return s->ops->commit(s); }
static inline enum ig_err ig_store_rollback(struct ig_store *s) { return s->ops->rollback(s); }
static inline enum ig_err ig_store_savepoint(struct ig_store *s) { return s->ops->savepoint(s); }
static inline enum ig_err ig_store_release(struct ig_store *s) { return s->ops->release(s); }
static inline enum ig_err ig_store_rollback_to(struct ig_store *s)
{
    return s->ops->rollback_to(s);
}
static inline enum ig_err ig_store_task_insert(struct ig_store *s, const struct ig_task *t)
{
    return s->ops->task_insert(s, t);
}
static inline enum ig_err ig_store_task_get(struct ig_store *s, const struct ig_id *id,
                                            struct ig_task *out)
{
    return s->ops->task_get(s, id, out);
}
static inline enum ig_err ig_store_task_claim(struct ig_store *s, int64_t now, const char *owner,
                                              int64_t lease_until, int max, struct ig_task *out,
                                              int *nout, struct ig_id *failed, int maxfailed,
                                              int *nfailed)
{
    return s->ops->task_claim(s, now, owner, lease_until, max, out, nout, failed, maxfailed,
                              nfailed);
}
static inline enum ig_err ig_store_task_renew(struct ig_store *s, const struct ig_id *id,
                                              const char *owner, int attempt, int64_t lease_until,
                                              int progress)
{
    return s->ops->task_renew(s, id, owner, attempt, lease_until, progress);
}
static inline enum ig_err ig_store_task_finish(struct ig_store *s, const struct ig_task *t,
                                               const char *owner, int attempt)
{
    return s->ops->task_finish(s, t, owner, attempt);
}
static inline enum ig_err ig_store_task_requeue(struct ig_store *s, const struct ig_id *id,
                                                const char *owner, int attempt, bool uncount)
{
    return s->ops->task_requeue(s, id, owner, attempt, uncount);
}
static inline enum ig_err ig_store_task_cancel(struct ig_store *s, const struct ig_id *id,
                                               int64_t now)
{
    return s->ops->task_cancel(s, id, now);
}
static inline enum ig_err ig_store_task_expire_leases(struct ig_store *s, int64_t now, int *n)
{
    return s->ops->task_expire_leases(s, now, n);
}
static inline enum ig_err ig_store_sweep_expired(struct ig_store *s, int64_t now,
                                                 ig_store_blob_fn *fn, void *arg, int *ntasks)
{
    return s->ops->sweep_expired(s, now, fn, arg, ntasks);
}
static inline enum ig_err ig_store_task_counts(struct ig_store *s, int64_t *counts)
{
    return s->ops->task_counts(s, counts);
}
static inline enum ig_err ig_store_key_insert(struct ig_store *s, struct ig_key *k)
{
    return s->ops->key_insert(s, k);
}
static inline enum ig_err ig_store_key_credit(struct ig_store *s, int64_t key_id, int64_t amount,
                                              int64_t now, const char *note, int64_t *balance)
{
    return s->ops->key_credit(s, key_id, amount, now, note, balance);
}
static inline enum ig_err ig_store_key_set_limits(struct ig_store *s, int64_t key_id,
                                                  int rate_rpm, int max_tasks)
{
    return s->ops->key_set_limits(s, key_id, rate_rpm, max_tasks);
}
static inline enum ig_err ig_store_idem_get(struct ig_store *s, int64_t key_id,
                                            const char *idem_key, int64_t since_ms,
                                            struct ig_idem_record *out)
{
    return s->ops->idem_get(s, key_id, idem_key, since_ms, out);
}
static inline enum ig_err ig_store_idem_sweep(struct ig_store *s, int64_t before_ms, int *n)
{
    return s->ops->idem_sweep(s, before_ms, n);
}
static inline enum ig_err ig_store_key_revoke(struct ig_store *s, int64_t key_id)
{
    return s->ops->key_revoke(s, key_id);
}
static inline enum ig_err ig_store_key_get(struct ig_store *s, int64_t key_id, struct ig_key *out)
{
    return s->ops->key_get(s, key_id, out);
}
static inline enum ig_err ig_store_usage(struct ig_store *s, int64_t key_id, int64_t from_ms,
                                         int64_t to_ms, bool by_channel, ig_store_usage_fn *fn,
                                         void *arg)
{
    return s->ops->usage(s, key_id, from_ms, to_ms, by_channel, fn, arg);
}
static inline enum ig_err ig_store_key_list(struct ig_store *s, ig_store_key_fn *fn, void *arg)
{
    return s->ops->key_list(s, fn, arg);
}
static inline enum ig_err ig_store_ledger_check(struct ig_store *s, ig_store_balance_fn *fn,
                                                void *arg)
{
    return s->ops->ledger_check(s, fn, arg);
}
static inline enum ig_err ig_store_key_by_hash(struct ig_store *s,
                                               const unsigned char hash[IG_SHA256_LEN],
                                               struct ig_key *out)
{
    return s->ops->key_by_hash(s, hash, out);
}
static inline enum ig_err ig_store_key_count(struct ig_store *s, int64_t *n)
{
    return s->ops->key_count(s, n);
}

extern const struct ig_store_ops ig_store_sqlite_ops;

#endif
