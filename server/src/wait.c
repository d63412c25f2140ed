/*
 * Parking and waking requests (see wait.h). The host core keeps the wake
 * state (csgi__response_park() and csgi__response_resume()); this file adds
 * what libmicrohttpd needs: a suspended connection is resumed once, after it
 * was suspended (hence one lock for both), and none is left suspended when
 * the daemon stops (libmicrohttpd forbids MHD_stop_daemon() then).
 */
#define _GNU_SOURCE
#include <pthread.h>

#include <microhttpd.h>

#include "request.h"
#include "wait.h"

static void
parked_unlink(struct srv_http *h, struct csgi_request *r)
{
    if (r->park_prev)
        r->park_prev->park_next = r->park_next;
    else
        h->parked = r->park_next;
    if (r->park_next)
        r->park_next->park_prev = r->park_prev;
    r->park_prev = r->park_next = NULL;
    r->parked = 0;
    h->n_parked--;
}

int
srv_wait_park(struct csgi_request *r)
{
    struct srv_http *h = r->h;
    int rc;

    pthread_mutex_lock(&h->wake_lock);
    if (h->stopping) {
        rc = -1;
    } else {
        rc = csgi__response_park(&r->core);
        if (rc == 1) {
            r->parked = 1;
            r->park_prev = NULL;
            r->park_next = h->parked;
            if (h->parked)
                h->parked->park_prev = r;
            h->parked = r;
            h->n_parked++;
            MHD_suspend_connection(r->conn);
        }
    }
    pthread_mutex_unlock(&h->wake_lock);
    return rc;
}

int
srv_wait_resume(struct csgi_request *r)
{
    struct srv_http *h;
    int rc;

    if (!r)
        return CSGI_EINVAL;
    h = r->h;
    pthread_mutex_lock(&h->wake_lock);
    rc = csgi__response_resume(&r->core);
    /* r->parked: not woken already by srv_wait_stop(), which leaves the core's bits alone. */
    if (rc == 1 && r->parked) {
        parked_unlink(h, r);
        MHD_resume_connection(r->conn);
    }
    pthread_mutex_unlock(&h->wake_lock);
    return rc < 0 ? rc : CSGI_OK;
}

void
srv_wait_stop(struct srv_http *h)
{
    pthread_mutex_lock(&h->wake_lock);
    h->stopping = 1;
    while (h->parked) {
        struct csgi_request *r = h->parked;

        /* Woken by the host, not the application: the wake bits stay as they are. */
        parked_unlink(h, r);
        r->stopped = 1;
        MHD_resume_connection(r->conn);
    }
    pthread_mutex_unlock(&h->wake_lock);
}

unsigned
srv_wait_parked(struct srv_http *h)
{
    unsigned n;

    pthread_mutex_lock(&h->wake_lock);
    n = h->n_parked;
    pthread_mutex_unlock(&h->wake_lock);
    return n;
}
