/* mailbox.h: hand a function call to another thread's event loop (redis bio.c completions).
 *
 * Each event-loop thread owns one mailbox. Any thread may post; the call runs later on the
 * owner's loop, in posting order. Lifetime: process (created with the loop, freed after it
 * stops); calls still queued at ig_mailbox_free() are run first so nothing posted is lost. */
#ifndef IG_MAILBOX_H
#define IG_MAILBOX_H

struct event_base;
struct ig_mailbox;

typedef void ig_mailbox_fn(void *arg);

struct ig_mailbox *ig_mailbox_new(struct event_base *base);
void ig_mailbox_free(struct ig_mailbox *mb);
/* Thread-safe. Never fails (allocation aborts). */
void ig_mailbox_post(struct ig_mailbox *mb, ig_mailbox_fn *fn, void *arg);
struct event_base *ig_mailbox_base(struct ig_mailbox *mb);

#endif
