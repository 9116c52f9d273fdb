/* app.h: the process-wide context of a running server: configuration, catalog, writer,
 * blob store, engine. Built by `imagegate serve`, read-only after start except through the
 * thread-safe objects it points to. Lifetime: process. */
#ifndef IG_APP_H
#define IG_APP_H

#include "config/config.h"
#include "core/catalog.h"
#include "media/blob.h"
#include "store/writer.h"

struct ig_engine;
struct ig_idem_registry;
struct ig_limiter;
struct ig_pool;
struct ig_provider;

struct ig_app {
    struct ig_config cfg;
    struct ig_catalog *catalog;
    struct ig_writer *writer;
    struct ig_blob *blob;
    struct ig_engine *engine;
    struct ig_limiter *limiter;  /* per-key request rates, shared by the HTTP threads */
    struct ig_idem_registry *idem; /* Idempotency-Keys being admitted now */
    struct ig_pool *pool;        /* CPU work of the HTTP threads (decoding and storing uploaded
                                  * references, base64 of replies); started before the HTTP
                                  * server, freed after it */
    struct ig_provider *router;  /* borrowed: owned by the engine */
    char db_path[600];
    char public_url[512];   /* no trailing slash */
    bool offline;           /* no channel at all: the offline provider serves every model */
};

/* Seconds a finished task's outputs stay available, by dialect. */
int64_t ig_app_expiry_s(const struct ig_app *app, const char *dialect);

#endif
