/* store_sqlite.c: the embedded store: one SQLite connection in WAL mode per struct ig_store.
 *
 * Every connection belongs to one thread (SQLITE_OPEN_NOMUTEX); statements are prepared once
 * per connection and reset after each use so no read snapshot outlives a call. Operations that
 * take several statements run inside the caller's transaction under a savepoint, or inside a
 * transaction of their own when called in autocommit mode (BEGIN IMMEDIATE for writes, so a
 * read-then-write never loses the race to upgrade its lock). */
#include "base/base.h"

#include "store/store.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A task is runnable when queued, or running under a lease that ended before ?1 (now). */
#define RUNNABLE "(state = 'queued' OR (state = 'running' AND lease_until_ms < ?1))"
/* A runnable task that must not run again: its deadline passed, or its attempts are spent.
 * 0 means "none" for both limits. */
#define DOOMED                                                                                     \
    "((deadline_ms > 0 AND deadline_ms < ?1) OR (max_attempts > 0 AND attempts >= max_attempts))"
/* Outputs of a succeeded task whose expiry time has come (?1 = now). The unary + keeps the
 * planner off the state index (every succeeded task ever) and on the partial tasks_expires
 * index, which holds only tasks whose outputs are still to expire. */
#define EXPIRING                                                                                   \
    "+state = 'succeeded' AND expires_ms > 0 AND expires_ms <= ?1 AND outputs_expired = 0"

/* The sums of a usage report, over one key (?1, 0 = all) and a span of creation times. */
#define USAGE_SUMS                                                                                 \
    "COUNT(*), SUM(state = 'succeeded'), SUM(usage_images), SUM(usage_image_tokens), "            \
    "SUM(usage_text_tokens), SUM(price_captured), SUM(cost) FROM tasks "                                     \
    "WHERE (?1 = 0 OR key_id = ?1) AND created_ms >= ?2 AND created_ms < ?3 "

#define TASK_COLS                                                                                  \
    "id, key_id, model, model_alias, dialect, channel, state, progress, attempts, max_attempts, "  \
    "created_ms, started_ms, finished_ms, deadline_ms, expires_ms, lease_until_ms, lease_owner, "  \
    "request, outputs_expired, usage_prompt_tokens, usage_image_tokens, usage_text_tokens, "       \
    "usage_images, price_held, price_captured, err, err_message, text, offline, upstream, cost"

#define KEY_COLS                                                                                   \
    "id, hash, name, created_ms, credits, revoked, metered, rate_rpm, max_tasks, scopes, "        \
    "expires_ms, models"

/* Column positions of TASK_COLS (bind index = position + 1). */
enum col {
    C_ID,
    C_KEY_ID,
    C_MODEL,
    C_MODEL_ALIAS,
    C_DIALECT,
    C_CHANNEL,
    C_STATE,
    C_PROGRESS,
    C_ATTEMPTS,
    C_MAX_ATTEMPTS,
    C_CREATED_MS,
    C_STARTED_MS,
    C_FINISHED_MS,
    C_DEADLINE_MS,
    C_EXPIRES_MS,
    C_LEASE_UNTIL_MS,
    C_LEASE_OWNER,
    C_REQUEST,
    C_OUTPUTS_EXPIRED,
    C_USAGE_PROMPT,
    C_USAGE_IMAGE,
    C_USAGE_TEXT,
    C_USAGE_IMAGES,
    C_PRICE_HELD,
    C_PRICE_CAPTURED,
    C_ERR,
    C_ERR_MESSAGE,
    C_TEXT,
    C_OFFLINE,
    C_UPSTREAM,
    C_COST,
    C__COUNT
};

/* Schema migrations: migrations[i] takes user_version i to i + 1, in one transaction. Never
 * edit a released entry; append a new one. */
static const char *const migrations[] = {
    /* 1: tasks, their outputs, API keys. */
    "CREATE TABLE tasks ("
    " id TEXT PRIMARY KEY," /* 32 lower-case hex digits */
    " key_id INTEGER NOT NULL,"
    " model TEXT,"
    " model_alias TEXT,"
    " dialect TEXT,"
    " channel TEXT,"
    " state TEXT NOT NULL"
    "  CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),"
    " progress INTEGER NOT NULL DEFAULT 0,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " max_attempts INTEGER NOT NULL DEFAULT 0,"
    " created_ms INTEGER NOT NULL DEFAULT 0,"
    " started_ms INTEGER NOT NULL DEFAULT 0,"
    " finished_ms INTEGER NOT NULL DEFAULT 0,"
    " deadline_ms INTEGER NOT NULL DEFAULT 0,"
    " expires_ms INTEGER NOT NULL DEFAULT 0,"
    " lease_until_ms INTEGER NOT NULL DEFAULT 0,"
    " lease_owner TEXT,"
    " request TEXT," /* ig_request_to_json() */
    " outputs_expired INTEGER NOT NULL DEFAULT 0,"
    " usage_prompt_tokens INTEGER NOT NULL DEFAULT 0,"
    " usage_image_tokens INTEGER NOT NULL DEFAULT 0,"
    " usage_text_tokens INTEGER NOT NULL DEFAULT 0,"
    " usage_images INTEGER NOT NULL DEFAULT 0,"
    " price_held INTEGER NOT NULL DEFAULT 0,"
    " price_captured INTEGER NOT NULL DEFAULT 0,"
    " err TEXT," /* ig_strerror() name, NULL when none */
    " err_message TEXT,"
    " text TEXT,"
    " offline INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE INDEX tasks_claim ON tasks (state, created_ms);"
    "CREATE INDEX tasks_expires ON tasks (expires_ms) WHERE outputs_expired = 0 AND expires_ms > 0;"
    "CREATE TABLE task_outputs ("
    " task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,"
    " idx INTEGER NOT NULL,"
    " blob TEXT NOT NULL,"
    " mime TEXT,"
    " ext TEXT,"
    " width INTEGER,"
    " height INTEGER,"
    " bytes INTEGER,"
    " PRIMARY KEY (task_id, idx)"
    ");"
    "CREATE INDEX task_outputs_blob ON task_outputs (blob);"
    "CREATE TABLE keys ("
    " id INTEGER PRIMARY KEY,"
    " hash BLOB UNIQUE NOT NULL,"
    " name TEXT,"
    " created_ms INTEGER,"
    " credits INTEGER NOT NULL DEFAULT 0,"
    " revoked INTEGER NOT NULL DEFAULT 0"
    ");",
    /* 2: what the upstream did: attempts, modelVersion, responseId (JSON). */
    "ALTER TABLE tasks ADD COLUMN upstream TEXT;",
    /* 3: the credits ledger. keys.credits is the balance, kept equal to the sum of the key's
     * entries in the transaction that adds them. A task has at most one hold, one release and
     * one capture (the unique index): no bug, retry or replay can charge a task twice. */
    "CREATE TABLE ledger ("
    " id INTEGER PRIMARY KEY,"
    " key_id INTEGER NOT NULL,"
    " task_id TEXT," /* NULL for top-ups and adjustments */
    " kind TEXT NOT NULL CHECK (kind IN ('topup', 'hold', 'release', 'capture', 'adjust')),"
    " amount INTEGER NOT NULL," /* micro-dollars: the change to the key's balance */
    " created_ms INTEGER NOT NULL,"
    " note TEXT"
    ");"
    "CREATE INDEX ledger_key ON ledger (key_id, id);"
    "CREATE UNIQUE INDEX ledger_task_kind ON ledger (task_id, kind) WHERE task_id IS NOT NULL;"
    "ALTER TABLE keys ADD COLUMN metered INTEGER NOT NULL DEFAULT 0;",
    /* 4: per-key limits (NULL: the server's default, 0: none), and the index that counts a
     * key's unfinished tasks at admission. */
    "ALTER TABLE keys ADD COLUMN rate_rpm INTEGER;"
    "ALTER TABLE keys ADD COLUMN max_tasks INTEGER;"
    "UPDATE keys SET rate_rpm = 0, max_tasks = 0;" /* keys made before limits keep none */
    "CREATE INDEX tasks_key_state ON tasks (key_id, state);",
    /* 5: Idempotency-Key: the first response to a key's submit, replayed for 24 hours. */
    "CREATE TABLE idempotency ("
    " key_id INTEGER NOT NULL,"
    " idem_key TEXT NOT NULL,"
    " request_hash BLOB NOT NULL," /* SHA-256 of the route and the body */
    " status INTEGER NOT NULL,"
    " content_type TEXT NOT NULL,"
    " response BLOB NOT NULL,"
    " task_id TEXT,"
    " created_ms INTEGER NOT NULL,"
    " PRIMARY KEY (key_id, idem_key)"
    ");"
    "CREATE INDEX idempotency_created ON idempotency (created_ms);",
    /* 6: what a key may do: scopes ("generate", "admin"), an expiry, the models it may use. */
    "ALTER TABLE keys ADD COLUMN scopes INTEGER NOT NULL DEFAULT 1;" /* 1 generate, 2 admin */
    "ALTER TABLE keys ADD COLUMN expires_ms INTEGER NOT NULL DEFAULT 0;" /* 0: never */
    "ALTER TABLE keys ADD COLUMN models TEXT NOT NULL DEFAULT '';" /* '': every model */
    "UPDATE keys SET scopes = 3 WHERE name = 'first key';",
    /* 7: what the upstream charged for a task's images (its channel's cost_per_image_usd). */
    "ALTER TABLE tasks ADD COLUMN cost INTEGER NOT NULL DEFAULT 0;",
};

enum st {
    ST_BEGIN,
    ST_BEGIN_READ,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_SAVEPOINT,
    ST_RELEASE,
    ST_ROLLBACK_TO,
    ST_OP_SAVEPOINT,
    ST_OP_RELEASE,
    ST_OP_ROLLBACK_TO,
    ST_TASK_INSERT,
    ST_TASK_GET,
    ST_TASK_EXISTS,
    ST_OUTPUTS_GET,
    ST_OUTPUTS_DELETE,
    ST_OUTPUT_INSERT,
    ST_CLAIM_DOOMED,
    ST_HOLD,
    ST_BALANCE_ADD,
    ST_LEDGER_ADD,
    ST_TASK_MONEY,
    ST_LEDGER_CHECK,
    ST_KEY_CREDIT,
    ST_KEY_EXISTS,
    ST_KEY_LIST,
    ST_KEY_LIMITS,
    ST_KEY_REVOKE,
    ST_USAGE_BY_MODEL,
    ST_USAGE_BY_CHANNEL,
    ST_KEY_GET,
    ST_IDEM_PUT,
    ST_IDEM_GET,
    ST_IDEM_SWEEP,
    ST_KEY_UNFINISHED,
    ST_CLAIM_FAIL,
    ST_CLAIM_SELECT,
    ST_CLAIM_UPDATE,
    ST_RENEW,
    ST_FINISH,
    ST_REQUEUE,
    ST_CANCEL,
    ST_EXPIRE_LEASES,
    ST_SWEEP_BLOBS,
    ST_SWEEP_MARK,
    ST_BLOB_LIVE,
    ST_COUNTS,
    ST_KEY_INSERT,
    ST_KEY_BY_HASH,
    ST_KEY_COUNT,
    ST__COUNT
};

static const char *const sql[ST__COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_BEGIN_READ] = "BEGIN",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_SAVEPOINT] = "SAVEPOINT job",
    [ST_RELEASE] = "RELEASE job",
    [ST_ROLLBACK_TO] = "ROLLBACK TO job",
    [ST_OP_SAVEPOINT] = "SAVEPOINT op",
    [ST_OP_RELEASE] = "RELEASE op",
    [ST_OP_ROLLBACK_TO] = "ROLLBACK TO op",
    [ST_TASK_INSERT] = "INSERT INTO tasks (" TASK_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
                       "?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, "
                       "?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31)",
    [ST_TASK_GET] = "SELECT " TASK_COLS " FROM tasks WHERE id = ?1",
    [ST_TASK_EXISTS] = "SELECT 1 FROM tasks WHERE id = ?1",
    [ST_OUTPUTS_GET] = "SELECT idx, blob, mime, ext, width, height, bytes FROM task_outputs "
                       "WHERE task_id = ?1 ORDER BY idx",
    [ST_OUTPUTS_DELETE] = "DELETE FROM task_outputs WHERE task_id = ?1",
    [ST_OUTPUT_INSERT] = "INSERT INTO task_outputs (task_id, idx, blob, mime, ext, width, height, "
                         "bytes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    /* A metered key pays only from what it has; an unmetered one's balance may go below 0
     * (it records what was spent). */
    [ST_HOLD] = "UPDATE keys SET credits = credits - ?2 WHERE id = ?1 AND revoked = 0 AND "
                "(metered = 0 OR credits >= ?2)",
    [ST_BALANCE_ADD] = "UPDATE keys SET credits = credits + ?2 WHERE id = ?1",
    [ST_LEDGER_ADD] = "INSERT INTO ledger (key_id, task_id, kind, amount, created_ms, note) "
                      "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_TASK_MONEY] = "SELECT key_id, price_held FROM tasks WHERE id = ?1",
    [ST_LEDGER_CHECK] = "SELECT k.id, k.credits, COALESCE((SELECT SUM(amount) FROM ledger l "
                        "WHERE l.key_id = k.id), 0) FROM keys k ORDER BY k.id",
    [ST_CLAIM_DOOMED] = "SELECT id, attempts, deadline_ms > 0 AND deadline_ms < ?1 FROM tasks "
                        "WHERE " RUNNABLE " AND " DOOMED " ORDER BY created_ms, id LIMIT ?2",
    [ST_CLAIM_FAIL] = "UPDATE tasks SET state = 'failed', err = ?3, err_message = ?4, "
                      "finished_ms = ?1, lease_until_ms = 0 WHERE id = ?2 AND " RUNNABLE,
    [ST_CLAIM_SELECT] = "SELECT id FROM tasks WHERE " RUNNABLE " AND NOT " DOOMED
                        " ORDER BY created_ms, id LIMIT ?2",
    [ST_CLAIM_UPDATE] = "UPDATE tasks SET state = 'running', lease_owner = ?3, "
                        "lease_until_ms = ?4, attempts = attempts + 1, "
                        "started_ms = CASE WHEN started_ms = 0 THEN ?1 ELSE started_ms END "
                        "WHERE id = ?2 AND " RUNNABLE " AND NOT " DOOMED,
    [ST_RENEW] = "UPDATE tasks SET lease_until_ms = ?4, "
                 "progress = CASE WHEN ?5 < 0 THEN progress ELSE ?5 END "
                 "WHERE id = ?1 AND state = 'running' AND lease_owner = ?2 AND attempts = ?3",
    [ST_FINISH] = "UPDATE tasks SET state = ?4, progress = ?5, finished_ms = ?6, channel = ?7, "
                  "offline = ?8, usage_prompt_tokens = ?9, usage_image_tokens = ?10, "
                  "usage_text_tokens = ?11, usage_images = ?12, price_captured = ?13, err = ?14, "
                  "err_message = ?15, text = ?16, expires_ms = ?17, upstream = ?18, "
                  "cost = ?19, lease_until_ms = 0 "
                  "WHERE id = ?1 AND state = 'running' AND lease_owner = ?2 AND attempts = ?3",
    [ST_REQUEUE] = "UPDATE tasks SET state = 'queued', lease_owner = NULL, lease_until_ms = 0, "
                   "attempts = attempts - ?4 "
                   "WHERE id = ?1 AND state = 'running' AND lease_owner = ?2 AND attempts = ?3",
    [ST_CANCEL] = "UPDATE tasks SET state = 'cancelled', err = 'cancelled', "
                  "err_message = 'the task was cancelled', finished_ms = ?2, lease_until_ms = 0 "
                  "WHERE id = ?1 AND state IN ('queued', 'running')",
    [ST_EXPIRE_LEASES] = "UPDATE tasks SET lease_until_ms = 0 WHERE state = 'running'",
    [ST_SWEEP_BLOBS] = "SELECT DISTINCT o.blob, o.ext FROM task_outputs o "
                       "JOIN tasks t ON t.id = o.task_id WHERE " EXPIRING,
    [ST_SWEEP_MARK] = "UPDATE tasks SET outputs_expired = 1 WHERE " EXPIRING,
    [ST_BLOB_LIVE] = "SELECT 1 FROM task_outputs o JOIN tasks t ON t.id = o.task_id "
                     "WHERE o.blob = ?1 AND t.outputs_expired = 0 LIMIT 1",
    [ST_COUNTS] = "SELECT state, COUNT(*) FROM tasks GROUP BY state",
    [ST_KEY_INSERT] = "INSERT INTO keys (hash, name, created_ms, credits, revoked, metered, "
                      "rate_rpm, max_tasks, scopes, expires_ms, models) VALUES (?1, ?2, ?3, ?4, "
                      "?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    [ST_USAGE_BY_MODEL] = "SELECT date(created_ms / 1000, 'unixepoch'), model, " USAGE_SUMS
                          "GROUP BY 1, 2 ORDER BY 1, 2",
    [ST_USAGE_BY_CHANNEL] = "SELECT '', COALESCE(channel, ''), " USAGE_SUMS
                            "GROUP BY 2 ORDER BY 2",
    [ST_KEY_REVOKE] = "UPDATE keys SET revoked = 1 WHERE id = ?1",
    [ST_KEY_GET] = "SELECT " KEY_COLS " FROM keys WHERE id = ?1",
    [ST_KEY_BY_HASH] = "SELECT " KEY_COLS " FROM keys WHERE hash = ?1",
    [ST_IDEM_PUT] = "INSERT INTO idempotency (key_id, idem_key, request_hash, status, "
                    "content_type, response, task_id, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
                    "?7, ?8)",
    [ST_IDEM_GET] = "SELECT request_hash, status, content_type, response, created_ms, task_id FROM "
                    "idempotency WHERE key_id = ?1 AND idem_key = ?2 AND created_ms >= ?3",
    [ST_IDEM_SWEEP] = "DELETE FROM idempotency WHERE created_ms < ?1",
    [ST_KEY_LIMITS] = "UPDATE keys SET rate_rpm = ?2, max_tasks = ?3 WHERE id = ?1",
    [ST_KEY_UNFINISHED] = "SELECT COUNT(*) FROM tasks WHERE key_id = ?1 AND "
                          "state IN ('queued', 'running')",
    [ST_KEY_CREDIT] = "UPDATE keys SET credits = credits + ?2 WHERE id = ?1 AND "
                      "(metered = 0 OR credits + ?2 >= 0) RETURNING credits",
    [ST_KEY_COUNT] = "SELECT COUNT(*) FROM keys",
    [ST_KEY_EXISTS] = "SELECT 1 FROM keys WHERE id = ?1",
    [ST_KEY_LIST] = "SELECT " KEY_COLS " FROM keys ORDER BY id",
};

struct ctx {
    sqlite3 *db;
    sqlite3_stmt *st[ST__COUNT];
};

static sqlite3 *db_of(struct ig_store *s)
{
    return ((struct ctx *)s->ctx)->db;
}

/* Record the connection's last error in s->errmsg and map it. A broken uniqueness rule is a
 * duplicate (IG_E_CONFLICT); everything else (busy, I/O, full, corrupt) is IG_E_STORE. */
static enum ig_err dberr(struct ig_store *s, int rc)
{
    snprintf(s->errmsg, sizeof(s->errmsg), "%s", sqlite3_errmsg(db_of(s)));
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
        return IG_E_CONFLICT;
    return IG_E_STORE;
}

static enum ig_err corrupt(struct ig_store *s, const char *what)
{
    snprintf(s->errmsg, sizeof(s->errmsg), "corrupt row: %s", what);
    return IG_E_STORE;
}

/* The cached statement `id`, reset and with no bindings. */
static enum ig_err prep(struct ig_store *s, enum st id, sqlite3_stmt **out)
{
    struct ctx *c = s->ctx;
    int rc;

    *out = NULL;
    if (!c->st[id]) {
        rc = sqlite3_prepare_v3(c->db, sql[id], -1, SQLITE_PREPARE_PERSISTENT, &c->st[id], NULL);
        if (rc != SQLITE_OK)
            return dberr(s, rc);
    }
    sqlite3_reset(c->st[id]);
    sqlite3_clear_bindings(c->st[id]);
    *out = c->st[id];
    return IG_OK;
}

/* Step a statement that returns no rows, then reset it. */
static enum ig_err step_done(struct ig_store *s, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    enum ig_err err = IG_OK;

    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        err = dberr(s, rc);
    sqlite3_reset(st);
    return err;
}

/* Run a cached statement without parameters. quiet: keep s->errmsg (cleanup after a failure). */
static enum ig_err run(struct ig_store *s, enum st id, bool quiet)
{
    sqlite3_stmt *st;
    enum ig_err err;
    int rc;

    err = prep(s, id, &st);
    if (err)
        return err;
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        err = quiet ? IG_E_STORE : dberr(s, rc);
    sqlite3_reset(st);
    return err;
}

/* Open the scope of a multi-statement operation; see the top of the file. */
static enum ig_err op_begin(struct ig_store *s, bool write, bool *own)
{
    if (sqlite3_get_autocommit(db_of(s))) {
        *own = true;
        return run(s, write ? ST_BEGIN : ST_BEGIN_READ, false);
    }
    *own = false;
    return write ? run(s, ST_OP_SAVEPOINT, false) : IG_OK;
}

/* Close it: keep the work when err is IG_OK, undo it otherwise. Returns the first error. */
static enum ig_err op_end(struct ig_store *s, bool write, bool own, enum ig_err err)
{
    enum ig_err e;

    if (own) {
        if (!err) {
            err = run(s, ST_COMMIT, false);
            if (!err)
                return IG_OK;
        }
        run(s, ST_ROLLBACK, true);
        return err;
    }
    if (!write)
        return err;
    if (err)
        run(s, ST_OP_ROLLBACK_TO, true);
    e = run(s, ST_OP_RELEASE, err != IG_OK);
    return err ? err : e;
}

static void bind_str(sqlite3_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

static void bind_id(sqlite3_stmt *st, int i, const struct ig_id *id)
{
    char hex[IG_ID_HEX_LEN + 1];

    ig_id_hex(id, hex);
    sqlite3_bind_text(st, i, hex, IG_ID_HEX_LEN, SQLITE_TRANSIENT);
}

static void bind_err(sqlite3_stmt *st, int i, enum ig_err err)
{
    bind_str(st, i, err == IG_OK ? NULL : ig_strerror(err));
}

/* Copy a text column into a fixed field (NULL reads as ""). */
static void col_fixed(sqlite3_stmt *st, int col, char *dst, size_t n)
{
    const unsigned char *v = sqlite3_column_text(st, col);

    snprintf(dst, n, "%s", v ? (const char *)v : "");
}

static char *col_dup(sqlite3_stmt *st, int col)
{
    const unsigned char *v = sqlite3_column_text(st, col);

    return v ? ig_xstrdup((const char *)v) : NULL;
}

static bool col_id(sqlite3_stmt *st, int col, struct ig_id *id)
{
    const unsigned char *v = sqlite3_column_text(st, col);

    return v && ig_id_parse((const char *)v, id);
}

/* sqlite3_exec callback: keep the first value of the first row that has one (the journal mode
 * from the PRAGMAs run at open). */
static int first_value(void *arg, int ncol, char **vals, char **names)
{
    char *dst = arg;

    if (!dst[0] && ncol > 0 && vals[0])
        snprintf(dst, 16, "%s", vals[0]);
    return 0;
}

/* Process-wide SQLite settings, before its first use: memory statistics off, since they take
 * a global mutex on every allocation and serialise the HTTP threads' reads. */
static void sqlite_configure(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

static enum ig_err sq_open(struct ig_store *s, const char *dsn, struct ig_errbuf *eb)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;

    struct ctx *c = ig_xcalloc(1, sizeof(*c));
    const char *path = dsn;
    const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    enum ig_err err = IG_OK;
    char mode[16] = "";
    char *msg = NULL;
    int rc;

    if (strncmp(path, "sqlite:", 7) == 0)
        path += 7;
    pthread_once(&once, sqlite_configure);
    rc = sqlite3_open_v2(path, &c->db, flags, NULL);
    if (rc != SQLITE_OK) {
        err = ig_fail(eb, IG_E_STORE, "store", "cannot open database \"%s\": %s", path,
                      c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        goto out;
    }
    sqlite3_extended_result_codes(c->db, 1);
    /* Wait up to 5 s for a lock another connection holds, from the first statement on
     * (switching to WAL takes a lock too); the PRAGMA below says the same. */
    sqlite3_busy_timeout(c->db, 5000);
    /* WAL: readers (the HTTP loops) never wait for the writer thread, nor it for them.
     * synchronous=FULL: in WAL mode NORMAL is safe against application crashes but a commit
     * may roll back after a power loss or OS crash; FULL syncs the WAL on every commit so an
     * acknowledged commit survives both. Commits here hold money (credit holds and captures)
     * and tasks whose ids we already handed to clients, so they must be durable. The writer's
     * group commit (many jobs, one transaction, one fsync) keeps that cheap. */
    rc = sqlite3_exec(c->db,
                      "PRAGMA journal_mode = WAL;"
                      "PRAGMA busy_timeout = 5000;"
                      "PRAGMA synchronous = FULL;"
                      "PRAGMA foreign_keys = ON;",
                      first_value, mode, &msg);
    if (rc != SQLITE_OK) {
        err = ig_fail(eb, IG_E_STORE, "store", "cannot set up database \"%s\": %s", path,
                      msg ? msg : sqlite3_errstr(rc));
        goto out;
    }
    if (strcmp(mode, "wal") != 0 && strcmp(mode, "memory") != 0)
        ig_warn("store: \"%s\" runs in journal mode \"%s\", not WAL: readers will wait for "
                "the writer", path, mode);
    s->ctx = c;
    c = NULL;
out:
    sqlite3_free(msg);
    if (c) {
        sqlite3_close_v2(c->db);
        free(c);
    }
    return err;
}

static void sq_close(struct ig_store *s)
{
    struct ctx *c = s->ctx;

    if (!c)
        return;
    for (int i = 0; i < ST__COUNT; i++)
        sqlite3_finalize(c->st[i]);
    if (sqlite3_close(c->db) != SQLITE_OK)
        IG_BUG("sqlite3_close: %s", sqlite3_errmsg(c->db));
    free(c);
    s->ctx = NULL;
}

static enum ig_err user_version(struct ig_store *s, int *v)
{
    sqlite3_stmt *st = NULL;
    enum ig_err err = IG_OK;
    int rc;

    rc = sqlite3_prepare_v2(db_of(s), "PRAGMA user_version", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *v = sqlite3_column_int(st, 0);
    else
        err = dberr(s, rc);
    sqlite3_finalize(st);
    return err;
}

static enum ig_err sq_migrate(struct ig_store *s, struct ig_errbuf *eb)
{
    const int latest = (int)IG_ARRAY_LEN(migrations);
    enum ig_err err = IG_OK;
    char *msg = NULL;
    char setv[64];
    int v = 0;
    int rc;

    for (;;) {
        /* Read the version under the write lock: another connection may be migrating too. */
        err = run(s, ST_BEGIN, false);
        if (!err)
            err = user_version(s, &v);
        if (err) {
            ig_fail(eb, err, "store", "cannot read the schema version: %s", s->errmsg);
            goto out;
        }
        if (v > latest) {
            err = ig_fail(eb, IG_E_STORE, "store",
                          "database schema version %d is newer than this build knows (%d)", v,
                          latest);
            goto out;
        }
        if (v == latest)
            break;
        snprintf(setv, sizeof(setv), "PRAGMA user_version = %d", v + 1);
        rc = sqlite3_exec(db_of(s), migrations[v], NULL, NULL, &msg);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(db_of(s), setv, NULL, NULL, &msg);
        if (rc == SQLITE_OK)
            rc = run(s, ST_COMMIT, false) ? SQLITE_ERROR : SQLITE_OK;
        else
            snprintf(s->errmsg, sizeof(s->errmsg), "%s", msg ? msg : sqlite3_errstr(rc));
        if (rc != SQLITE_OK) {
            err = ig_fail(eb, IG_E_STORE, "store", "schema migration %d failed: %s", v + 1,
                          s->errmsg);
            goto out;
        }
        ig_info("store: schema migrated to version %d", v + 1);
    }
    err = run(s, ST_COMMIT, false);
    if (err)
        ig_fail(eb, err, "store", "cannot end the schema check: %s", s->errmsg);
out:
    sqlite3_free(msg);
    if (err && !sqlite3_get_autocommit(db_of(s)))
        run(s, ST_ROLLBACK, true);
    return err;
}

static enum ig_err sq_begin(struct ig_store *s)
{
    return run(s, ST_BEGIN, false);
}

static enum ig_err sq_commit(struct ig_store *s)
{
    return run(s, ST_COMMIT, false);
}

static enum ig_err sq_rollback(struct ig_store *s)
{
    return run(s, ST_ROLLBACK, false);
}

static enum ig_err sq_savepoint(struct ig_store *s)
{
    return run(s, ST_SAVEPOINT, false);
}

static enum ig_err sq_release(struct ig_store *s)
{
    return run(s, ST_RELEASE, false);
}

static enum ig_err sq_rollback_to(struct ig_store *s)
{
    return run(s, ST_ROLLBACK_TO, false);
}

static enum ig_err insert_outputs(struct ig_store *s, const struct ig_task *t)
{
    sqlite3_stmt *st;
    enum ig_err err;

    err = prep(s, ST_OUTPUTS_DELETE, &st);
    if (err)
        return err;
    bind_id(st, 1, &t->id);
    err = step_done(s, st);
    for (int i = 0; !err && i < t->noutputs && i < IG_MAX_OUTPUTS; i++) {
        const struct ig_output *o = &t->outputs[i];

        err = prep(s, ST_OUTPUT_INSERT, &st);
        if (err)
            break;
        bind_id(st, 1, &t->id);
        sqlite3_bind_int(st, 2, i);
        bind_str(st, 3, o->blob);
        bind_str(st, 4, o->mime);
        bind_str(st, 5, o->ext);
        sqlite3_bind_int(st, 6, o->width);
        sqlite3_bind_int(st, 7, o->height);
        sqlite3_bind_int64(st, 8, o->bytes);
        err = step_done(s, st);
    }
    return err;
}

/* ---- the ledger: every change of a balance is an entry, in the transaction that causes it --- */

static enum ig_err ledger_entry(struct ig_store *s, int64_t key_id, const struct ig_id *task,
                                const char *kind, int64_t amount, int64_t now, const char *note)
{
    sqlite3_stmt *st;
    enum ig_err err = prep(s, ST_LEDGER_ADD, &st);

    if (err)
        return err;
    sqlite3_bind_int64(st, 1, key_id);
    if (task)
        bind_id(st, 2, task);
    else
        sqlite3_bind_null(st, 2);
    bind_str(st, 3, kind);
    sqlite3_bind_int64(st, 4, amount);
    sqlite3_bind_int64(st, 5, now);
    bind_str(st, 6, note);
    return step_done(s, st);
}

static enum ig_err balance_add(struct ig_store *s, int64_t key_id, int64_t amount)
{
    sqlite3_stmt *st;
    enum ig_err err = prep(s, ST_BALANCE_ADD, &st);

    if (err)
        return err;
    sqlite3_bind_int64(st, 1, key_id);
    sqlite3_bind_int64(st, 2, amount);
    err = step_done(s, st);
    if (!err && sqlite3_changes(db_of(s)) != 1)
        err = IG_E_NOT_FOUND;
    return err;
}

/* The task has just become terminal in this transaction: its hold goes back and what it
 * delivered (captured, at most the hold) is taken. */
static enum ig_err ledger_settle(struct ig_store *s, const struct ig_id *id, int64_t captured,
                                 int64_t now)
{
    sqlite3_stmt *st;
    enum ig_err err = prep(s, ST_TASK_MONEY, &st);
    int64_t key_id = 0, held = 0;
    int rc;

    if (err)
        return err;
    bind_id(st, 1, id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        key_id = sqlite3_column_int64(st, 0);
        held = sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW)
        return rc == SQLITE_DONE ? IG_E_NOT_FOUND : dberr(s, rc);
    if (captured > held)
        captured = held;
    if (captured < 0)
        captured = 0;
    if (held == 0)
        return IG_OK;
    err = ledger_entry(s, key_id, id, "release", held, now, NULL);
    if (!err && captured > 0)
        err = ledger_entry(s, key_id, id, "capture", -captured, now, NULL);
    if (!err)
        err = balance_add(s, key_id, held - captured);
    return err;
}

/* ---- Idempotency-Key records ------------------------------------------------------------ */

static enum ig_err idem_put(struct ig_store *s, const struct ig_idem_record *r,
                            const struct ig_id *task)
{
    sqlite3_stmt *st;
    enum ig_err err = prep(s, ST_IDEM_PUT, &st);

    if (err)
        return err;
    sqlite3_bind_int64(st, 1, r->key_id);
    bind_str(st, 2, r->idem_key);
    sqlite3_bind_blob(st, 3, r->request_hash, IG_SHA256_LEN, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 4, r->status);
    bind_str(st, 5, r->content_type);
    sqlite3_bind_blob(st, 6, r->response ? r->response : "", (int)r->len, SQLITE_TRANSIENT);
    if (task)
        bind_id(st, 7, task);
    else
        sqlite3_bind_null(st, 7);
    sqlite3_bind_int64(st, 8, r->created_ms);
    return step_done(s, st);
}

static enum ig_err sq_idem_get(struct ig_store *s, int64_t key_id, const char *idem_key,
                               int64_t since_ms, struct ig_idem_record *out)
{
    sqlite3_stmt *st;
    enum ig_err err = prep(s, ST_IDEM_GET, &st);
    int rc;

    if (err)
        return err;
    sqlite3_bind_int64(st, 1, key_id);
    bind_str(st, 2, idem_key);
    sqlite3_bind_int64(st, 3, since_ms);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        int n = sqlite3_column_bytes(st, 3);

        if (sqlite3_column_bytes(st, 0) != IG_SHA256_LEN) {
            err = corrupt(s, "idempotency hash");
        } else {
            out->key_id = key_id;
            snprintf(out->idem_key, sizeof(out->idem_key), "%s", idem_key);
            memcpy(out->request_hash, sqlite3_column_blob(st, 0), IG_SHA256_LEN);
            out->status = sqlite3_column_int(st, 1);
            col_fixed(st, 2, out->content_type, sizeof(out->content_type));
            out->response = ig_xmalloc((size_t)n + 1);
            if (n > 0)
                memcpy(out->response, sqlite3_column_blob(st, 3), (size_t)n);
            out->response[n] = '\0';
            out->len = (size_t)n;
            out->created_ms = sqlite3_column_int64(st, 4);
            out->has_task = col_id(st, 5, &out->task);
        }
    } else if (rc == SQLITE_DONE) {
        err = IG_E_NOT_FOUND;
    } else {
        err = dberr(s, rc);
    }
    sqlite3_reset(st);
    return err;
}

static enum ig_err sq_idem_sweep(struct ig_store *s, int64_t before_ms, int *n)
{
    sqlite3_stmt *st;
    enum ig_err err = prep(s, ST_IDEM_SWEEP, &st);

    if (err)
        return err;
    sqlite3_bind_int64(st, 1, before_ms);
    err = step_done(s, st);
    if (!err && n)
        *n = sqlite3_changes(db_of(s));
    return err;
}

static enum ig_err sq_task_insert(struct ig_store *s, const struct ig_task *t)
{
    sqlite3_stmt *st;
    char *req = NULL;
    enum ig_err err;
    bool own;

    if ((unsigned)t->state >= IG_TASK__COUNT)
        return IG_E_INVALID;
    err = op_begin(s, true, &own);
    if (err)
        return err;
    if (t->admit_max_tasks > 0 && !ig_task_state_is_terminal(t->state)) {
        /* the key's unfinished tasks, counted in the transaction that adds one: exact */
        int rc;

        err = prep(s, ST_KEY_UNFINISHED, &st);
        if (err)
            goto out;
        sqlite3_bind_int64(st, 1, t->key_id);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW && sqlite3_column_int64(st, 0) >= t->admit_max_tasks)
            err = IG_E_RATE_LIMITED;
        else if (rc != SQLITE_ROW)
            err = dberr(s, rc);
        sqlite3_reset(st);
        if (err)
            goto out;
    }
    err = prep(s, ST_TASK_INSERT, &st);
    if (err)
        goto out;
    req = ig_request_to_json(&t->req);
    bind_id(st, C_ID + 1, &t->id);
    sqlite3_bind_int64(st, C_KEY_ID + 1, t->key_id);
    bind_str(st, C_MODEL + 1, t->model);
    bind_str(st, C_MODEL_ALIAS + 1, t->model_alias);
    bind_str(st, C_DIALECT + 1, t->dialect);
    bind_str(st, C_CHANNEL + 1, t->channel);
    bind_str(st, C_STATE + 1, ig_task_state_name(t->state));
    sqlite3_bind_int(st, C_PROGRESS + 1, t->progress);
    sqlite3_bind_int(st, C_ATTEMPTS + 1, t->attempts);
    sqlite3_bind_int(st, C_MAX_ATTEMPTS + 1, t->max_attempts);
    sqlite3_bind_int64(st, C_CREATED_MS + 1, t->created_ms);
    sqlite3_bind_int64(st, C_STARTED_MS + 1, t->started_ms);
    sqlite3_bind_int64(st, C_FINISHED_MS + 1, t->finished_ms);
    sqlite3_bind_int64(st, C_DEADLINE_MS + 1, t->deadline_ms);
    sqlite3_bind_int64(st, C_EXPIRES_MS + 1, t->expires_ms);
    sqlite3_bind_int64(st, C_LEASE_UNTIL_MS + 1, t->lease_until_ms);
    bind_str(st, C_LEASE_OWNER + 1, t->lease_owner[0] ? t->lease_owner : NULL);
    bind_str(st, C_REQUEST + 1, req);
    sqlite3_bind_int(st, C_OUTPUTS_EXPIRED + 1, t->outputs_expired);
    sqlite3_bind_int64(st, C_USAGE_PROMPT + 1, t->usage.prompt_tokens);
    sqlite3_bind_int64(st, C_USAGE_IMAGE + 1, t->usage.image_tokens);
    sqlite3_bind_int64(st, C_USAGE_TEXT + 1, t->usage.text_tokens);
    sqlite3_bind_int64(st, C_USAGE_IMAGES + 1, t->usage.images);
    sqlite3_bind_int64(st, C_PRICE_HELD + 1, t->price_held);
    sqlite3_bind_int64(st, C_PRICE_CAPTURED + 1, t->price_captured);
    bind_err(st, C_ERR + 1, t->err);
    bind_str(st, C_ERR_MESSAGE + 1, t->err_message);
    bind_str(st, C_TEXT + 1, t->text);
    sqlite3_bind_int(st, C_OFFLINE + 1, t->offline);
    bind_str(st, C_UPSTREAM + 1, t->upstream);
    sqlite3_bind_int64(st, C_COST + 1, t->cost);
    err = step_done(s, st);
    if (!err)
        err = insert_outputs(s, t);
    if (!err && t->price_held > 0 && !ig_task_state_is_terminal(t->state)) {
        /* the hold, in the task's own transaction: no task without its hold, no hold without
         * its task */
        err = prep(s, ST_HOLD, &st);
        if (!err) {
            sqlite3_bind_int64(st, 1, t->key_id);
            sqlite3_bind_int64(st, 2, t->price_held);
            err = step_done(s, st);
        }
        if (!err && sqlite3_changes(db_of(s)) != 1)
            err = IG_E_INSUFFICIENT;
        if (!err)
            err = ledger_entry(s, t->key_id, &t->id, "hold", -t->price_held, t->created_ms, NULL);
    }
    if (!err && t->idem)
        err = idem_put(s, t->idem, &t->id);
out:
    free(req);
    return op_end(s, true, own, err);
}

static enum ig_err read_task(struct ig_store *s, sqlite3_stmt *st, struct ig_task *t)
{
    const unsigned char *v;
    enum ig_err err;

    if (!col_id(st, C_ID, &t->id))
        return corrupt(s, "task id");
    t->key_id = sqlite3_column_int64(st, C_KEY_ID);
    col_fixed(st, C_MODEL, t->model, sizeof(t->model));
    col_fixed(st, C_MODEL_ALIAS, t->model_alias, sizeof(t->model_alias));
    col_fixed(st, C_DIALECT, t->dialect, sizeof(t->dialect));
    col_fixed(st, C_CHANNEL, t->channel, sizeof(t->channel));
    v = sqlite3_column_text(st, C_STATE);
    if (!v || !ig_task_state_parse((const char *)v, &t->state))
        return corrupt(s, "task state");
    t->progress = sqlite3_column_int(st, C_PROGRESS);
    t->attempts = sqlite3_column_int(st, C_ATTEMPTS);
    t->max_attempts = sqlite3_column_int(st, C_MAX_ATTEMPTS);
    t->created_ms = sqlite3_column_int64(st, C_CREATED_MS);
    t->started_ms = sqlite3_column_int64(st, C_STARTED_MS);
    t->finished_ms = sqlite3_column_int64(st, C_FINISHED_MS);
    t->deadline_ms = sqlite3_column_int64(st, C_DEADLINE_MS);
    t->expires_ms = sqlite3_column_int64(st, C_EXPIRES_MS);
    t->lease_until_ms = sqlite3_column_int64(st, C_LEASE_UNTIL_MS);
    col_fixed(st, C_LEASE_OWNER, t->lease_owner, sizeof(t->lease_owner));
    v = sqlite3_column_text(st, C_REQUEST);
    if (v) {
        err = ig_request_from_json(&t->req, (const char *)v);
        if (err)
            return corrupt(s, "task request");
    }
    t->outputs_expired = sqlite3_column_int(st, C_OUTPUTS_EXPIRED) != 0;
    t->usage.prompt_tokens = sqlite3_column_int64(st, C_USAGE_PROMPT);
    t->usage.image_tokens = sqlite3_column_int64(st, C_USAGE_IMAGE);
    t->usage.text_tokens = sqlite3_column_int64(st, C_USAGE_TEXT);
    t->usage.images = sqlite3_column_int64(st, C_USAGE_IMAGES);
    t->price_held = sqlite3_column_int64(st, C_PRICE_HELD);
    t->price_captured = sqlite3_column_int64(st, C_PRICE_CAPTURED);
    v = sqlite3_column_text(st, C_ERR);
    t->err = v ? ig_err_from_name((const char *)v) : IG_OK;
    t->err_message = col_dup(st, C_ERR_MESSAGE);
    t->text = col_dup(st, C_TEXT);
    t->offline = sqlite3_column_int(st, C_OFFLINE) != 0;
    t->upstream = col_dup(st, C_UPSTREAM);
    t->cost = sqlite3_column_int64(st, C_COST);
    return IG_OK;
}

static enum ig_err read_outputs(struct ig_store *s, struct ig_task *t)
{
    sqlite3_stmt *st;
    enum ig_err err;
    int rc;

    err = prep(s, ST_OUTPUTS_GET, &st);
    if (err)
        return err;
    bind_id(st, 1, &t->id);
    ig_task_clear_outputs(t);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct ig_output *o = ig_task_add_output(t);

        if (!o)
            continue;
        col_fixed(st, 1, o->blob, sizeof(o->blob));
        col_fixed(st, 2, o->mime, sizeof(o->mime));
        col_fixed(st, 3, o->ext, sizeof(o->ext));
        o->width = sqlite3_column_int(st, 4);
        o->height = sqlite3_column_int(st, 5);
        o->bytes = sqlite3_column_int64(st, 6);
    }
    if (rc != SQLITE_DONE)
        err = dberr(s, rc);
    sqlite3_reset(st);
    return err;
}

static enum ig_err sq_task_get(struct ig_store *s, const struct ig_id *id, struct ig_task *out)
{
    sqlite3_stmt *st = NULL;
    enum ig_err err;
    bool own;
    int rc;

    ig_task_release(out);
    /* One read transaction: the row and its outputs come from the same snapshot. */
    err = op_begin(s, false, &own);
    if (err)
        return err;
    err = prep(s, ST_TASK_GET, &st);
    if (err)
        goto out;
    bind_id(st, 1, id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        err = read_task(s, st, out);
    else if (rc == SQLITE_DONE)
        err = IG_E_NOT_FOUND;
    else
        err = dberr(s, rc);
    sqlite3_reset(st);
    if (!err)
        err = read_outputs(s, out);
out:
    err = op_end(s, false, own, err);
    if (err)
        ig_task_release(out);
    return err;
}

/* Finish as failed the runnable tasks that must not run again (at most maxfailed). */
static enum ig_err fail_doomed(struct ig_store *s, int64_t now, struct ig_id *failed,
                               int maxfailed, int *nfailed)
{
    struct doomed {
        struct ig_id id;
        int attempts;
        bool late;
    } *d = NULL;
    sqlite3_stmt *st;
    enum ig_err err;
    int n = 0, rc = SQLITE_DONE;

    if (maxfailed <= 0 || !failed)
        return IG_OK;
    err = prep(s, ST_CLAIM_DOOMED, &st);
    if (err)
        return err;
    d = ig_xcalloc((size_t)maxfailed, sizeof(*d));
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_int(st, 2, maxfailed);
    while (n < maxfailed && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (!col_id(st, 0, &d[n].id)) {
            err = corrupt(s, "task id");
            break;
        }
        d[n].attempts = sqlite3_column_int(st, 1);
        d[n].late = sqlite3_column_int(st, 2) != 0;
        n++;
    }
    if (!err && n < maxfailed && rc != SQLITE_DONE)
        err = dberr(s, rc);
    sqlite3_reset(st);

    for (int i = 0; !err && i < n; i++) {
        char *msg;

        err = prep(s, ST_CLAIM_FAIL, &st);
        if (err)
            break;
        if (d[i].late) {
            msg = ig_xstrdup("task deadline passed before it could run");
            bind_err(st, 3, IG_E_UPSTREAM_TIMEOUT);
        } else {
            msg = ig_xasprintf("attempts exhausted after %d tries: the task failed repeatedly",
                               d[i].attempts);
            bind_err(st, 3, IG_E_INTERNAL);
        }
        sqlite3_bind_int64(st, 1, now);
        bind_id(st, 2, &d[i].id);
        bind_str(st, 4, msg);
        err = step_done(s, st);
        free(msg);
        if (!err && sqlite3_changes(db_of(s)) == 1) {
            err = ledger_settle(s, &d[i].id, 0, now);
            failed[(*nfailed)++] = d[i].id;
        }
    }
    free(d);
    return err;
}

static enum ig_err claim_runnable(struct ig_store *s, int64_t now, const char *owner,
                                  int64_t lease_until, int max, struct ig_task *out, int *nout)
{
    struct ig_id *ids = NULL;
    sqlite3_stmt *st;
    enum ig_err err;
    int n = 0, rc = SQLITE_DONE;

    if (max <= 0)
        return IG_OK;
    err = prep(s, ST_CLAIM_SELECT, &st);
    if (err)
        return err;
    ids = ig_xcalloc((size_t)max, sizeof(*ids));
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_int(st, 2, max);
    while (n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (!col_id(st, 0, &ids[n])) {
            err = corrupt(s, "task id");
            break;
        }
        n++;
    }
    if (!err && n < max && rc != SQLITE_DONE)
        err = dberr(s, rc);
    sqlite3_reset(st);

    for (int i = 0; !err && i < n; i++) {
        err = prep(s, ST_CLAIM_UPDATE, &st);
        if (err)
            break;
        sqlite3_bind_int64(st, 1, now);
        bind_id(st, 2, &ids[i]);
        bind_str(st, 3, owner);
        sqlite3_bind_int64(st, 4, lease_until);
        err = step_done(s, st);
        if (err || sqlite3_changes(db_of(s)) != 1)
            continue;
        ig_task_init(&out[*nout]);
        err = sq_task_get(s, &ids[i], &out[*nout]);
        if (!err)
            (*nout)++;
    }
    free(ids);
    return err;
}

static enum ig_err sq_task_claim(struct ig_store *s, int64_t now, const char *owner,
                                 int64_t lease_until, int max, struct ig_task *out, int *nout,
                                 struct ig_id *failed, int maxfailed, int *nfailed)
{
    enum ig_err err;
    bool own;

    *nout = 0;
    *nfailed = 0;
    err = op_begin(s, true, &own);
    if (err)
        return err;
    err = fail_doomed(s, now, failed, maxfailed, nfailed);
    if (!err)
        err = claim_runnable(s, now, owner, lease_until, max, out, nout);
    err = op_end(s, true, own, err);
    if (err) {
        /* Nothing of it happened: the transaction or savepoint was undone. */
        for (int i = 0; i < *nout; i++)
            ig_task_release(&out[i]);
        *nout = 0;
        *nfailed = 0;
    }
    return err;
}

/* Step a compare-and-swap UPDATE: IG_E_CONFLICT when it matched no row. */
static enum ig_err step_cas(struct ig_store *s, sqlite3_stmt *st)
{
    enum ig_err err = step_done(s, st);

    if (!err && sqlite3_changes(db_of(s)) == 0)
        err = IG_E_CONFLICT;
    return err;
}

static enum ig_err sq_task_renew(struct ig_store *s, const struct ig_id *id, const char *owner,
                                 int attempt, int64_t lease_until, int progress)
{
    sqlite3_stmt *st;
    enum ig_err err;

    err = prep(s, ST_RENEW, &st);
    if (err)
        return err;
    bind_id(st, 1, id);
    bind_str(st, 2, owner);
    sqlite3_bind_int(st, 3, attempt);
    sqlite3_bind_int64(st, 4, lease_until);
    sqlite3_bind_int(st, 5, progress);
    return step_cas(s, st);
}

static enum ig_err sq_task_finish(struct ig_store *s, const struct ig_task *t, const char *owner,
                                  int attempt)
{
    sqlite3_stmt *st;
    enum ig_err err;
    bool own;

    if (!ig_task_state_is_terminal(t->state))
        return IG_E_INVALID;
    err = op_begin(s, true, &own);
    if (err)
        return err;
    err = prep(s, ST_FINISH, &st);
    if (err)
        goto out;
    bind_id(st, 1, &t->id);
    bind_str(st, 2, owner);
    sqlite3_bind_int(st, 3, attempt);
    bind_str(st, 4, ig_task_state_name(t->state));
    sqlite3_bind_int(st, 5, t->progress);
    sqlite3_bind_int64(st, 6, t->finished_ms);
    bind_str(st, 7, t->channel);
    sqlite3_bind_int(st, 8, t->offline);
    sqlite3_bind_int64(st, 9, t->usage.prompt_tokens);
    sqlite3_bind_int64(st, 10, t->usage.image_tokens);
    sqlite3_bind_int64(st, 11, t->usage.text_tokens);
    sqlite3_bind_int64(st, 12, t->usage.images);
    sqlite3_bind_int64(st, 13, t->price_captured);
    bind_err(st, 14, t->err);
    bind_str(st, 15, t->err_message);
    bind_str(st, 16, t->text);
    sqlite3_bind_int64(st, 17, t->expires_ms);
    bind_str(st, 18, t->upstream);
    sqlite3_bind_int64(st, 19, t->cost);
    err = step_cas(s, st);
    if (!err)
        err = insert_outputs(s, t);
    if (!err)
        err = ledger_settle(s, &t->id, t->state == IG_TASK_SUCCEEDED ? t->price_captured : 0,
                            t->finished_ms);
out:
    return op_end(s, true, own, err);
}

static enum ig_err sq_task_requeue(struct ig_store *s, const struct ig_id *id, const char *owner,
                                   int attempt, bool uncount)
{
    sqlite3_stmt *st;
    enum ig_err err;

    err = prep(s, ST_REQUEUE, &st);
    if (err)
        return err;
    bind_id(st, 1, id);
    bind_str(st, 2, owner);
    sqlite3_bind_int(st, 3, attempt);
    sqlite3_bind_int(st, 4, uncount ? 1 : 0);
    return step_cas(s, st);
}

static enum ig_err task_exists(struct ig_store *s, const struct ig_id *id)
{
    sqlite3_stmt *st;
    enum ig_err err;
    int rc;

    err = prep(s, ST_TASK_EXISTS, &st);
    if (err)
        return err;
    bind_id(st, 1, id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        err = IG_E_NOT_FOUND;
    else if (rc != SQLITE_ROW)
        err = dberr(s, rc);
    sqlite3_reset(st);
    return err;
}

static enum ig_err sq_task_cancel(struct ig_store *s, const struct ig_id *id, int64_t now)
{
    sqlite3_stmt *st;
    enum ig_err err;
    bool own;

    err = op_begin(s, true, &own);
    if (err)
        return err;
    err = prep(s, ST_CANCEL, &st);
    if (err)
        goto out;
    bind_id(st, 1, id);
    sqlite3_bind_int64(st, 2, now);
    err = step_cas(s, st);
    if (err == IG_E_CONFLICT && task_exists(s, id) == IG_E_NOT_FOUND)
        err = IG_E_NOT_FOUND;
    if (!err)
        err = ledger_settle(s, id, 0, now);
out:
    return op_end(s, true, own, err);
}

static enum ig_err sq_task_expire_leases(struct ig_store *s, int64_t now, int *n)
{
    sqlite3_stmt *st;
    enum ig_err err;

    *n = 0;
    err = prep(s, ST_EXPIRE_LEASES, &st);
    if (err)
        return err;
    err = step_done(s, st);
    if (!err)
        *n = sqlite3_changes(db_of(s));
    return err;
}

struct blobref {
    char blob[IG_SHA256_HEX_LEN + 1];
    char ext[8];
};

static enum ig_err sq_sweep_expired(struct ig_store *s, int64_t now, ig_store_blob_fn *fn,
                                    void *arg, int *ntasks)
{
    struct blobref *refs = NULL;
    size_t nrefs = 0, cap = 0, ndead = 0;
    sqlite3_stmt *st;
    enum ig_err err;
    bool own;
    int rc;

    *ntasks = 0;
    err = op_begin(s, true, &own);
    if (err)
        return err;

    /* The blobs of the tasks about to expire... */
    err = prep(s, ST_SWEEP_BLOBS, &st);
    if (err)
        goto out;
    sqlite3_bind_int64(st, 1, now);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (nrefs == cap) {
            cap = cap ? 2 * cap : 16;
            refs = ig_xrealloc(refs, cap * sizeof(*refs));
        }
        col_fixed(st, 0, refs[nrefs].blob, sizeof(refs[nrefs].blob));
        col_fixed(st, 1, refs[nrefs].ext, sizeof(refs[nrefs].ext));
        nrefs++;
    }
    if (rc != SQLITE_DONE)
        err = dberr(s, rc);
    sqlite3_reset(st);
    if (err)
        goto out;

    /* ...expire them... */
    err = prep(s, ST_SWEEP_MARK, &st);
    if (err)
        goto out;
    sqlite3_bind_int64(st, 1, now);
    err = step_done(s, st);
    if (err)
        goto out;
    *ntasks = sqlite3_changes(db_of(s));

    /* ...and keep those no unexpired task still shows (a blob is shared by content). */
    for (size_t i = 0; i < nrefs; i++) {
        err = prep(s, ST_BLOB_LIVE, &st);
        if (err)
            goto out;
        bind_str(st, 1, refs[i].blob);
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) {
            if (ndead != i)
                refs[ndead] = refs[i];
            ndead++;
        } else if (rc != SQLITE_ROW)
            err = dberr(s, rc);
        sqlite3_reset(st);
        if (err)
            goto out;
    }
out:
    err = op_end(s, true, own, err);
    /* Report only once the rows say expired (after our commit when the transaction is ours):
     * a crash in between leaks a file rather than losing one a task still points to. */
    for (size_t i = 0; !err && fn && i < ndead; i++)
        fn(refs[i].blob, refs[i].ext, arg);
    if (err)
        *ntasks = 0;
    free(refs);
    return err;
}

static enum ig_err sq_task_counts(struct ig_store *s, int64_t *counts)
{
    sqlite3_stmt *st;
    enum ig_err err;
    int rc;

    for (int i = 0; i < IG_TASK__COUNT; i++)
        counts[i] = 0;
    err = prep(s, ST_COUNTS, &st);
    if (err)
        return err;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *v = sqlite3_column_text(st, 0);
        enum ig_task_state state;

        if (v && ig_task_state_parse((const char *)v, &state))
            counts[state] = sqlite3_column_int64(st, 1);
    }
    if (rc != SQLITE_DONE)
        err = dberr(s, rc);
    sqlite3_reset(st);
    return err;
}

/* A row of KEY_COLS. False when its hash is damaged. */
static bool key_row(sqlite3_stmt *st, struct ig_key *k)
{
    bool ok = sqlite3_column_bytes(st, 1) == IG_SHA256_LEN;

    memset(k, 0, sizeof(*k));
    k->id = sqlite3_column_int64(st, 0);
    if (ok)
        memcpy(k->hash, sqlite3_column_blob(st, 1), IG_SHA256_LEN);
    col_fixed(st, 2, k->name, sizeof(k->name));
    k->created_ms = sqlite3_column_int64(st, 3);
    k->credits = sqlite3_column_int64(st, 4);
    k->revoked = sqlite3_column_int(st, 5) != 0;
    k->metered = sqlite3_column_int(st, 6) != 0;
    k->rate_rpm = sqlite3_column_type(st, 7) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 7);
    k->max_tasks = sqlite3_column_type(st, 8) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 8);
    k->scopes = (unsigned)sqlite3_column_int(st, 9);
    k->expires_ms = sqlite3_column_int64(st, 10);
    col_fixed(st, 11, k->models, sizeof(k->models));
    return ok;
}

static void bind_limit(sqlite3_stmt *st, int i, int v)
{
    if (v < 0)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_int(st, i, v);
}

/* Every row of a read statement, in one read scope: its int64 parameters bound in order, then
 * row(st, arg) for each row. */
typedef void row_fn(sqlite3_stmt *st, void *arg);

static enum ig_err each_row(struct ig_store *s, enum st which, const int64_t *params, int n,
                            row_fn *row, void *arg)
{
    sqlite3_stmt *st;
    enum ig_err err;
    bool own;
    int rc;

    err = op_begin(s, false, &own);
    if (err)
        return err;
    err = prep(s, which, &st);
    if (err)
        goto out;
    for (int i = 0; i < n; i++)
        sqlite3_bind_int64(st, i + 1, params[i]);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        row(st, arg);
    if (rc != SQLITE_DONE)
        err = dberr(s, rc);
    sqlite3_reset(st);
out:
    return op_end(s, false, own, err);
}

struct usage_each {
    ig_store_usage_fn *fn;
    void *arg;
};

static void usage_row(sqlite3_stmt *st, void *arg)
{
    struct usage_each *u = arg;
    struct ig_usage_row r;

    memset(&r, 0, sizeof(r));
    col_fixed(st, 0, r.day, sizeof(r.day));
    col_fixed(st, 1, r.name, sizeof(r.name));
    r.tasks = sqlite3_column_int64(st, 2);
    r.succeeded = sqlite3_column_int64(st, 3);
    r.images = sqlite3_column_int64(st, 4);
    r.image_tokens = sqlite3_column_int64(st, 5);
    r.text_tokens = sqlite3_column_int64(st, 6);
    r.charged = sqlite3_column_int64(st, 7);
    r.cost = sqlite3_column_int64(st, 8);
    u->fn(&r, u->arg);
}

static enum ig_err sq_usage(struct ig_store *s, int64_t key_id, int64_t from_ms, int64_t to_ms,
                            bool by_channel, ig_store_usage_fn *fn, void *arg)
{
    const int64_t params[3] = {key_id, from_ms, to_ms};
    struct usage_each u = {fn, arg};

    return each_row(s, by_channel ? ST_USAGE_BY_CHANNEL : ST_USAGE_BY_MODEL, params, 3, usage_row,
                    &u);
}

static enum ig_err sq_key_revoke(struct ig_store *s, int64_t key_id)
{
    sqlite3_stmt *st;
    enum ig_err err = prep(s, ST_KEY_REVOKE, &st);

    if (err)
        return err;
    sqlite3_bind_int64(st, 1, key_id);
    err = step_done(s, st);
    if (!err && sqlite3_changes(db_of(s)) != 1)
        err = IG_E_NOT_FOUND;
    return err;
}

static enum ig_err sq_key_get(struct ig_store *s, int64_t key_id, struct ig_key *out)
{
    sqlite3_stmt *st;
    enum ig_err err = prep(s, ST_KEY_GET, &st);
    int rc;

    if (err)
        return err;
    sqlite3_bind_int64(st, 1, key_id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        key_row(st, out);
    else
        err = rc == SQLITE_DONE ? IG_E_NOT_FOUND : dberr(s, rc);
    sqlite3_reset(st);
    return err;
}

static enum ig_err sq_key_set_limits(struct ig_store *s, int64_t key_id, int rate_rpm,
                                     int max_tasks)
{
    sqlite3_stmt *st;
    enum ig_err err = prep(s, ST_KEY_LIMITS, &st);

    if (err)
        return err;
    sqlite3_bind_int64(st, 1, key_id);
    bind_limit(st, 2, rate_rpm);
    bind_limit(st, 3, max_tasks);
    err = step_done(s, st);
    if (!err && sqlite3_changes(db_of(s)) != 1)
        err = IG_E_NOT_FOUND;
    return err;
}

static enum ig_err sq_key_insert(struct ig_store *s, struct ig_key *k)
{
    sqlite3_stmt *st;
    enum ig_err err;
    bool own;

    if (k->credits < 0)
        return IG_E_INVALID;
    err = op_begin(s, true, &own);
    if (err)
        return err;
    err = prep(s, ST_KEY_INSERT, &st);
    if (err)
        goto out;
    sqlite3_bind_blob(st, 1, k->hash, IG_SHA256_LEN, SQLITE_TRANSIENT);
    bind_str(st, 2, k->name);
    sqlite3_bind_int64(st, 3, k->created_ms);
    sqlite3_bind_int64(st, 4, k->credits);
    sqlite3_bind_int(st, 5, k->revoked);
    sqlite3_bind_int(st, 6, k->metered);
    bind_limit(st, 7, k->rate_rpm);
    bind_limit(st, 8, k->max_tasks);
    sqlite3_bind_int(st, 9, (int)k->scopes);
    sqlite3_bind_int64(st, 10, k->expires_ms);
    bind_str(st, 11, k->models);
    err = step_done(s, st);
    if (!err)
        k->id = sqlite3_last_insert_rowid(db_of(s));
    if (!err && k->credits > 0)
        err = ledger_entry(s, k->id, NULL, "topup", k->credits, k->created_ms, "initial credits");
out:
    return op_end(s, true, own, err);
}

static bool key_exists(struct ig_store *s, int64_t key_id)
{
    sqlite3_stmt *st;
    bool found;

    if (prep(s, ST_KEY_EXISTS, &st))
        return false;
    sqlite3_bind_int64(st, 1, key_id);
    found = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_reset(st);
    return found;
}

static enum ig_err sq_key_credit(struct ig_store *s, int64_t key_id, int64_t amount, int64_t now,
                                 const char *note, int64_t *balance)
{
    sqlite3_stmt *st;
    enum ig_err err;
    bool own;
    int rc;

    if (amount == 0)
        return IG_E_INVALID;
    err = op_begin(s, true, &own);
    if (err)
        return err;
    err = prep(s, ST_KEY_CREDIT, &st);
    if (err)
        goto out;
    sqlite3_bind_int64(st, 1, key_id);
    sqlite3_bind_int64(st, 2, amount);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && balance)
        *balance = sqlite3_column_int64(st, 0);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        err = dberr(s, rc);
    sqlite3_reset(st);
    if (!err && rc == SQLITE_DONE) /* no such key, or a metered one that would go below 0 */
        err = key_exists(s, key_id) ? IG_E_INSUFFICIENT : IG_E_NOT_FOUND;
    if (!err)
        err = ledger_entry(s, key_id, NULL, amount > 0 ? "topup" : "adjust", amount, now, note);
out:
    return op_end(s, true, own, err);
}

struct key_each {
    ig_store_key_fn *fn;
    void *arg;
};

static void key_list_row(sqlite3_stmt *st, void *arg)
{
    struct key_each *e = arg;
    struct ig_key k;

    key_row(st, &k);
    e->fn(&k, e->arg);
}

static enum ig_err sq_key_list(struct ig_store *s, ig_store_key_fn *fn, void *arg)
{
    struct key_each e = {fn, arg};

    return each_row(s, ST_KEY_LIST, NULL, 0, key_list_row, &e);
}

struct balance_each {
    ig_store_balance_fn *fn;
    void *arg;
};

static void balance_row(sqlite3_stmt *st, void *arg)
{
    struct balance_each *b = arg;

    b->fn(sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 2),
          b->arg);
}

static enum ig_err sq_ledger_check(struct ig_store *s, ig_store_balance_fn *fn, void *arg)
{
    struct balance_each b = {fn, arg};

    return each_row(s, ST_LEDGER_CHECK, NULL, 0, balance_row, &b);
}

static enum ig_err sq_key_by_hash(struct ig_store *s, const unsigned char hash[IG_SHA256_LEN],
                                  struct ig_key *out)
{
    sqlite3_stmt *st;
    enum ig_err err;
    int rc;

    err = prep(s, ST_KEY_BY_HASH, &st);
    if (err)
        return err;
    sqlite3_bind_blob(st, 1, hash, IG_SHA256_LEN, SQLITE_TRANSIENT);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        if (!key_row(st, out))
            err = corrupt(s, "key hash");
    } else if (rc == SQLITE_DONE) {
        err = IG_E_NOT_FOUND;
    } else {
        err = dberr(s, rc);
    }
    sqlite3_reset(st);
    return err;
}

static enum ig_err sq_key_count(struct ig_store *s, int64_t *n)
{
    sqlite3_stmt *st;
    enum ig_err err;
    int rc;

    *n = 0;
    err = prep(s, ST_KEY_COUNT, &st);
    if (err)
        return err;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *n = sqlite3_column_int64(st, 0);
    else
        err = dberr(s, rc);
    sqlite3_reset(st);
    return err;
}

const struct ig_store_ops ig_store_sqlite_ops = {
    .name = "sqlite",
    .abi_version = 1,
    .open = sq_open,
    .close = sq_close,
    .migrate = sq_migrate,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .savepoint = sq_savepoint,
    .release = sq_release,
    .rollback_to = sq_rollback_to,
    .task_insert = sq_task_insert,
    .task_get = sq_task_get,
    .task_claim = sq_task_claim,
    .task_renew = sq_task_renew,
    .task_finish = sq_task_finish,
    .task_requeue = sq_task_requeue,
    .task_cancel = sq_task_cancel,
    .task_expire_leases = sq_task_expire_leases,
    .sweep_expired = sq_sweep_expired,
    .task_counts = sq_task_counts,
    .key_insert = sq_key_insert,
    .key_credit = sq_key_credit,
    .key_list = sq_key_list,
    .key_set_limits = sq_key_set_limits,
    .key_revoke = sq_key_revoke,
    .usage = sq_usage,
    .key_get = sq_key_get,
    .idem_get = sq_idem_get,
    .idem_sweep = sq_idem_sweep,
    .ledger_check = sq_ledger_check,
    .key_by_hash = sq_key_by_hash,
    .key_count = sq_key_count,
};
