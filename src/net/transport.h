/* transport.h: libcurl's multi_socket interface driven by a libevent loop, so thousands of
 * transfers share one thread (curl's docs/examples/multi-event.c pairing).
 *
 * The caller configures a CURL easy handle and hands it over; when the transfer ends, done
 * runs on the same loop with curl's result code. Lifetime: one transport per loop, process
 * long; a handle belongs to the transport from ig_transport_add until done runs. */
#ifndef IG_TRANSPORT_H
#define IG_TRANSPORT_H

#include <curl/curl.h>

#include "base/base.h"

struct event_base;
struct ig_transport;

typedef void ig_transport_done_fn(CURL *easy, CURLcode result, void *arg);

struct ig_transport *ig_transport_new(struct event_base *base);
/* Aborts transfers still running (their done runs with CURLE_ABORTED_BY_CALLBACK). */
void ig_transport_free(struct ig_transport *tp);
enum ig_err ig_transport_add(struct ig_transport *tp, CURL *easy, ig_transport_done_fn *done,
                             void *arg);
/* Abort one transfer; its done runs (later, on the loop) with CURLE_ABORTED_BY_CALLBACK. */
void ig_transport_cancel(struct ig_transport *tp, CURL *easy);
/* Abort every transfer running now, the same way (a stopping engine's calls for tasks it has
 * already put back in the queue). */
void ig_transport_cancel_all(struct ig_transport *tp);
int ig_transport_active(struct ig_transport *tp);

#endif
