/* transport.c: libcurl multi_socket driven by libevent (curl docs/examples/multi-event.c).
 *
 * One struct event per socket curl asks us to watch (found again through curl_multi_assign),
 * one timer for curl's timeout, one struct xfer per easy handle (found through
 * CURLOPT_PRIVATE): every event costs O(1) whatever the number of transfers. */
#include "base/base.h"

#include <stdlib.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "net/transport.h"

struct sock {
    struct event ev;
    curl_socket_t fd;
    struct ig_transport *tp;
    struct sock *prev, *next;
};

struct xfer {
    struct ig_transport *tp;
    CURL *easy;
    ig_transport_done_fn *done;
    void *arg;
    bool in_multi;          /* still added to the multi handle */
    bool cancelled;
    struct event *cancel_ev; /* zero-timeout event that runs done after a cancel */
    struct xfer *prev, *next;
};

struct ig_transport {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    struct xfer *xfers;     /* every transfer whose done has not run */
    struct sock *socks;     /* every socket being watched */
    int active;
};

static void xfer_link(struct ig_transport *tp, struct xfer *x)
{
    x->prev = NULL;
    x->next = tp->xfers;
    if (tp->xfers)
        tp->xfers->prev = x;
    tp->xfers = x;
    tp->active++;
}

static void xfer_unlink(struct ig_transport *tp, struct xfer *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        tp->xfers = x->next;
    if (x->next)
        x->next->prev = x->prev;
    x->prev = x->next = NULL;
    tp->active--;
}

static void xfer_remove_from_multi(struct xfer *x)
{
    CURLMcode mc;

    if (!x->in_multi)
        return;
    mc = curl_multi_remove_handle(x->tp->multi, x->easy);
    if (mc == CURLM_OK)
        x->in_multi = false;
    else
        ig_debug("transport: remove handle deferred: %s", curl_multi_strerror(mc));
}

/* Unlink, free and call done. The easy handle is out of the multi and belongs to done. */
static void xfer_finish(struct xfer *x, CURLcode result)
{
    CURL *easy = x->easy;
    ig_transport_done_fn *done = x->done;
    void *arg = x->arg;

    xfer_unlink(x->tp, x);
    if (x->cancel_ev)
        event_free(x->cancel_ev);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
    free(x);
    if (done)
        done(easy, result, arg);
}

static struct xfer *xfer_of(CURL *easy)
{
    char *p = NULL;

    if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, &p) != CURLE_OK)
        return NULL;
    return (struct xfer *)(void *)p;
}

static void check_multi_info(struct ig_transport *tp)
{
    CURLMsg *msg;
    int pending;

    while ((msg = curl_multi_info_read(tp->multi, &pending))) {
        CURL *easy;
        CURLcode result;
        struct xfer *x;

        if (msg->msg != CURLMSG_DONE)
            continue;
        easy = msg->easy_handle;
        result = msg->data.result;
        x = xfer_of(easy);
        if (!x) {
            curl_multi_remove_handle(tp->multi, easy);
            continue;
        }
        xfer_remove_from_multi(x); /* msg is invalid from here on */
        if (x->cancelled)
            continue; /* the cancel event runs done */
        xfer_finish(x, result);
    }
}

static void socket_action(struct ig_transport *tp, curl_socket_t fd, int ev_bitmask)
{
    int running = 0;
    CURLMcode mc = curl_multi_socket_action(tp->multi, fd, ev_bitmask, &running);

    if (mc != CURLM_OK)
        ig_warn("transport: socket action failed: %s", curl_multi_strerror(mc));
    check_multi_info(tp);
}

static void on_socket_event(evutil_socket_t fd, short what, void *arg)
{
    struct ig_transport *tp = arg;
    int action = 0;

    if (what & EV_READ)
        action |= CURL_CSELECT_IN;
    if (what & EV_WRITE)
        action |= CURL_CSELECT_OUT;
    socket_action(tp, fd, action);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    socket_action(arg, CURL_SOCKET_TIMEOUT, 0);
}

static void sock_free(struct ig_transport *tp, struct sock *s)
{
    event_del(&s->ev);
    if (s->prev)
        s->prev->next = s->next;
    else
        tp->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    free(s);
}

/* CURLMOPT_SOCKETFUNCTION: watch fd for what curl asks, or stop watching it. */
static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct ig_transport *tp = userp;
    struct sock *s = socketp;
    short kind = EV_PERSIST;

    if (what == CURL_POLL_REMOVE) {
        if (s) {
            curl_multi_assign(tp->multi, fd, NULL);
            sock_free(tp, s);
        }
        return 0;
    }
    if (!s) {
        s = ig_xcalloc(1, sizeof(*s));
        s->fd = fd;
        s->tp = tp;
        s->next = tp->socks;
        if (tp->socks)
            tp->socks->prev = s;
        tp->socks = s;
        curl_multi_assign(tp->multi, fd, s);
    } else {
        event_del(&s->ev);
    }
    if (what & CURL_POLL_IN)
        kind |= EV_READ;
    if (what & CURL_POLL_OUT)
        kind |= EV_WRITE;
    event_assign(&s->ev, tp->base, fd, kind, on_socket_event, tp);
    event_add(&s->ev, NULL);
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: (re)arm or stop the one timer. Never act on curl from here. */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct ig_transport *tp = userp;
    struct timeval tv;

    if (timeout_ms < 0) {
        evtimer_del(tp->timer);
        return 0;
    }
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    evtimer_add(tp->timer, &tv);
    return 0;
}

struct ig_transport *ig_transport_new(struct event_base *base)
{
    struct ig_transport *tp = ig_xcalloc(1, sizeof(*tp));

    tp->base = base;
    tp->multi = curl_multi_init();
    if (!tp->multi)
        IG_BUG("curl_multi_init failed");
    tp->timer = evtimer_new(base, on_timer, tp);
    if (!tp->timer)
        IG_BUG("evtimer_new failed");
    curl_multi_setopt(tp->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(tp->multi, CURLMOPT_SOCKETDATA, tp);
    curl_multi_setopt(tp->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(tp->multi, CURLMOPT_TIMERDATA, tp);
    return tp;
}

void ig_transport_free(struct ig_transport *tp)
{
    if (!tp)
        return;
    /* Abort what is still running: out of the multi first, then done. A done may add no
     * new transfer to a transport being freed. */
    while (tp->xfers) {
        struct xfer *x = tp->xfers;

        xfer_remove_from_multi(x);
        if (x->in_multi)
            IG_BUG("transport: cannot remove a handle while freeing");
        xfer_finish(x, CURLE_ABORTED_BY_CALLBACK);
    }
    curl_multi_cleanup(tp->multi);
    /* Sockets curl did not report removed (e.g. closed during cleanup). */
    while (tp->socks)
        sock_free(tp, tp->socks);
    event_free(tp->timer);
    free(tp);
}

enum ig_err ig_transport_add(struct ig_transport *tp, CURL *easy, ig_transport_done_fn *done,
                             void *arg)
{
    struct xfer *x = ig_xcalloc(1, sizeof(*x));
    CURLMcode mc;

    x->tp = tp;
    x->easy = easy;
    x->done = done;
    x->arg = arg;
    curl_easy_setopt(easy, CURLOPT_PRIVATE, (void *)x);
    mc = curl_multi_add_handle(tp->multi, easy);
    if (mc != CURLM_OK) {
        ig_warn("transport: add handle failed: %s", curl_multi_strerror(mc));
        curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
        free(x);
        return IG_E_INTERNAL;
    }
    x->in_multi = true;
    xfer_link(tp, x);
    return IG_OK;
}

static void on_cancel(evutil_socket_t fd, short what, void *arg)
{
    struct xfer *x = arg;

    /* Removal was refused if cancel ran inside a curl callback: do it now. */
    xfer_remove_from_multi(x);
    if (x->in_multi)
        IG_BUG("transport: cannot remove a cancelled handle");
    xfer_finish(x, CURLE_ABORTED_BY_CALLBACK);
}

void ig_transport_cancel(struct ig_transport *tp, CURL *easy)
{
    struct xfer *x = easy ? xfer_of(easy) : NULL;
    struct timeval zero = {0, 0};

    if (!x || x->tp != tp || x->cancelled)
        return;
    x->cancelled = true;
    xfer_remove_from_multi(x);
    x->cancel_ev = evtimer_new(tp->base, on_cancel, x);
    if (!x->cancel_ev)
        IG_BUG("evtimer_new failed");
    evtimer_add(x->cancel_ev, &zero);
}

void ig_transport_cancel_all(struct ig_transport *tp)
{
    for (struct xfer *x = tp->xfers; x; x = x->next)
        ig_transport_cancel(tp, x->easy);
}

int ig_transport_active(struct ig_transport *tp)
{
    return tp ? tp->active : 0;
}
