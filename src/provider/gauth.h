/* gauth.h: Google service-account authorisation (OAuth 2.0 JWT bearer grant, RFC 7523).
 *
 * A service-account JSON key file ({type:"service_account", client_email, private_key (PEM),
 * private_key_id, project_id, token_uri}) is loaded once. To get an access token imagegate
 * signs an RS256 JWT ({"iss":client_email,"scope":cloud-platform,"aud":token_url,"iat","exp":
 * iat+3600}) and POSTs it to token_url over the caller's curl transport. The token is cached
 * until expires_in minus a 5-minute margin, so it is refreshed before it expires; callers that
 * ask while an exchange runs wait for that one exchange.
 *
 * Secrets (the private key, the JWT, the access token) never reach a log line or a message.
 * Lifetime: process (one per channel); ig_gauth_free() while an exchange runs defers the free
 * to the exchange's end and drops the waiters without calling them. Thread-safe: callers on
 * several loops may share one. */
#ifndef IG_GAUTH_H
#define IG_GAUTH_H

#include "base/base.h"

struct event_base;
struct ig_transport;
struct ig_gauth;

#define IG_GAUTH_DEFAULT_TOKEN_URL "https://oauth2.googleapis.com/token"
#define IG_GAUTH_SCOPE             "https://www.googleapis.com/auth/cloud-platform"
#define IG_GAUTH_MARGIN_MS         (5 * 60 * 1000)

/* The token (borrowed for the call), or err with a message (no secret in it): IG_E_UNAUTHENTICATED
 * when the token endpoint refused the credentials (4xx), IG_E_UPSTREAM_SUBMIT when it could not
 * be reached or answered something else. */
typedef void ig_gauth_cb(const char *token, enum ig_err err, const char *msg, void *arg);

/* Load the key file. token_url: where to exchange the JWT ("" or NULL: the file's token_uri,
 * else IG_GAUTH_DEFAULT_TOKEN_URL). NULL with eb filled when the file is unreadable, not a
 * service-account key or its private key is not an RSA PEM key. */
struct ig_gauth *ig_gauth_new(const char *path, const char *token_url, struct ig_errbuf *eb);
void ig_gauth_free(struct ig_gauth *ga);

/* Get an access token. cb always runs later on base's loop (a zero timer when the cached
 * token is still good), never inside this call. An exchange, when one is needed, runs on tp
 * (which must belong to base's loop). */
void ig_gauth_get(struct ig_gauth *ga, struct event_base *base, struct ig_transport *tp,
                  ig_gauth_cb *cb, void *arg);
/* Forget the cached token (the upstream refused it): the next get exchanges again. */
void ig_gauth_invalidate(struct ig_gauth *ga);

/* The key file's project_id ("" if none), client_email. */
const char *ig_gauth_project(const struct ig_gauth *ga);
const char *ig_gauth_email(const struct ig_gauth *ga);

/* The signed JWT for now_s (seconds since the epoch): header.claims.signature in base64url
 * without padding. Heap string (a secret while it is valid), NULL if signing failed. */
char *ig_gauth_jwt(const struct ig_gauth *ga, int64_t now_s);

#endif
