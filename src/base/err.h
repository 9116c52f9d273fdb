/* err.h: the one error vocabulary of imagegate (curl's CURLcode model).
 *
 * Every action returns an enum ig_err; 0 is success so `if (err)` reads naturally.
 * Detail for humans goes into a caller-supplied struct ig_errbuf: which field, which rule. */
#ifndef IG_ERR_H
#define IG_ERR_H

#include <stddef.h>

enum ig_err {
    IG_OK = 0,
    IG_E_NOMEM,             /* allocation failed */
    IG_E_AGAIN,             /* would block, call again */
    IG_E_INVALID,           /* invalid request: a field broke a rule */
    IG_E_UNAUTHENTICATED,   /* missing or invalid API key */
    IG_E_FORBIDDEN,         /* key valid but not allowed */
    IG_E_INSUFFICIENT,      /* insufficient credits */
    IG_E_RATE_LIMITED,      /* too many requests */
    IG_E_NOT_FOUND,         /* no such resource (or not visible to this key) */
    IG_E_METHOD,            /* method not allowed on this route */
    IG_E_CONFLICT,          /* state changed under us (CAS lost) or duplicate */
    IG_E_TOOBIG,            /* a size or count cap was exceeded */
    IG_E_GONE,              /* existed but expired */
    IG_E_MODERATED,         /* refused by the model's safety system */
    IG_E_UPSTREAM_SUBMIT,   /* upstream 5xx / network before an answer */
    IG_E_UPSTREAM_TIMEOUT,  /* wall-clock cap reached */
    IG_E_UPSTREAM_FAILED,   /* upstream answered with a terminal failure */
    IG_E_REFERENCE,         /* a reference image could not be fetched or used */
    IG_E_BLOCKED,           /* address refused by the SSRF policy */
    IG_E_IO,                /* local I/O failed */
    IG_E_STORE,             /* the store failed */
    IG_E_CANCELLED,         /* cancelled by the client or shutdown */
    IG_E_INTERNAL,          /* a bug or an unexpected condition */
    IG_E__COUNT
};

/* Stable lower-case name of an error, e.g. "invalid_request". Never NULL. */
const char *ig_strerror(enum ig_err err);
/* Parse the name back (for rows in the store); IG_E_INTERNAL when unknown. */
enum ig_err ig_err_from_name(const char *name);

/* Where detail text goes: the field at fault (may be empty) and a message. */
struct ig_errbuf {
    char field[64];
    char msg[512];
};

void ig_errbuf_clear(struct ig_errbuf *eb);
/* Set field and message; returns err so callers can `return ig_fail(eb, ...)`. */
enum ig_err ig_fail(struct ig_errbuf *eb, enum ig_err err, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
